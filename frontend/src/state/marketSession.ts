/**
 * Whether an exchange's market is open now, from the session the server describes in `/api/symbols`
 * (`[aggregator.sessions]`): local open and close in the exchange's IANA time zone, trading weekdays and
 * holidays. The server sends no bars while a market is closed, so a chart of it is not "stale" then: it is
 * closed. Computed in the browser with `Intl` (the exchange's clock, daylight saving included), so it
 * stays right for as long as the page is open.
 */

export interface SessionSpec {
  timezone: string;
  /** Local `HH:MM`. */
  open: string;
  /** Local `HH:MM`, exclusive; `24:00` for midnight. */
  close: string;
  /** `mon` ... `sun`. */
  weekdays: string[];
  /** `YYYY-MM-DD`. */
  holidays: string[];
}

export interface MarketState {
  open: boolean;
  /** While open: milliseconds since today's session opened. */
  openedAgoMs: number;
}

const WEEKDAYS: Record<string, string> = { Mon: 'mon', Tue: 'tue', Wed: 'wed', Thu: 'thu', Fri: 'fri', Sat: 'sat', Sun: 'sun' };
const formats = new Map<string, Intl.DateTimeFormat>();

function format(timezone: string): Intl.DateTimeFormat {
  let f = formats.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formats.set(timezone, f);
  }
  return f;
}

function minutesOf(hhmm: string): number | null {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
}

/** The exchange's market at `nowMs` (wall clock); null when the session cannot be read (then no claim). */
export function marketState(spec: SessionSpec, nowMs: number): MarketState | null {
  const open = minutesOf(spec.open);
  const close = minutesOf(spec.close);
  if (open === null || close === null) return null;
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = format(spec.timezone).formatToParts(new Date(nowMs));
  } catch {
    return null; // an unknown time zone in this browser
  }
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  const date = `${part('year')}-${part('month')}-${part('day')}`;
  const minute = Number(part('hour')) * 60 + Number(part('minute'));
  const second = Number(part('second'));
  const tradingDay = spec.weekdays.includes(WEEKDAYS[part('weekday')] ?? '') && !spec.holidays.includes(date);
  if (!tradingDay || minute < open || minute >= close) return { open: false, openedAgoMs: 0 };
  return { open: true, openedAgoMs: ((minute - open) * 60 + second) * 1000 + (nowMs % 1000) };
}
