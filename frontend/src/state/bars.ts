/**
 * The bars one chart holds, kept sorted by timestamp, and the rules for
 * merging what the server sends into them. Pure: the chart view turns the
 * returned outcome into lightweight-charts calls.
 */

/** One OHLCV bar as the server sends it; `timestamp` is the open time in ms (UTC). */
export interface Bar {
  timestamp: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades?: number;
  closed?: boolean;
}

/**
 * What an upsert did, so the caller knows which chart call is valid:
 * - `append`: a new last bar (plain `series.update`),
 * - `replace-last`: the last bar changed (plain `series.update`),
 * - `replace`: an older bar changed in place (`series.update(bar, true)`),
 * - `insert`: a bar landed between existing ones (only `setData` can show it),
 * - `ignored`: older than anything loaded; history loading will bring it.
 */
export type UpsertOutcome = 'append' | 'replace-last' | 'replace' | 'insert' | 'ignored';

export function isBar(value: unknown): value is Bar {
  if (typeof value !== 'object' || value === null) return false;
  const b = value as Record<string, unknown>;
  return ['timestamp', 'open', 'high', 'low', 'close', 'volume'].every(
    (k) => typeof b[k] === 'number' && Number.isFinite(b[k] as number),
  );
}

/** Index of the first bar whose timestamp is >= ts (bars.length if none). */
export function lowerBound(bars: readonly Bar[], ts: number): number {
  let lo = 0;
  let hi = bars.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (bars[mid].timestamp < ts) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class BarSeries {
  private items: Bar[] = [];

  get bars(): readonly Bar[] {
    return this.items;
  }

  get length(): number {
    return this.items.length;
  }

  first(): Bar | undefined {
    return this.items[0];
  }

  last(): Bar | undefined {
    return this.items[this.items.length - 1];
  }

  /** Replaces everything (initial load); input may be unsorted or hold duplicates. */
  reset(bars: readonly Bar[]): void {
    this.items = normalize(bars);
  }

  clear(): void {
    this.items = [];
  }

  /** Finds the bar that opened exactly at `ts`. */
  at(ts: number): Bar | undefined {
    const i = lowerBound(this.items, ts);
    const bar = this.items[i];
    return bar && bar.timestamp === ts ? bar : undefined;
  }

  /** The last bar that opened at or before `ts` (for placing markers on a bar). */
  barContaining(ts: number): Bar | undefined {
    const i = lowerBound(this.items, ts);
    if (this.items[i]?.timestamp === ts) return this.items[i];
    return i > 0 ? this.items[i - 1] : undefined;
  }

  /** Merges one live or corrected bar. */
  upsert(bar: Bar): UpsertOutcome {
    const n = this.items.length;
    const last = this.items[n - 1];
    if (!last || bar.timestamp > last.timestamp) {
      this.items.push(bar);
      return 'append';
    }
    if (bar.timestamp === last.timestamp) {
      this.items[n - 1] = bar;
      return 'replace-last';
    }
    if (bar.timestamp < this.items[0].timestamp) return 'ignored';
    const i = lowerBound(this.items, bar.timestamp);
    if (this.items[i].timestamp === bar.timestamp) {
      this.items[i] = bar;
      return 'replace';
    }
    this.items.splice(i, 0, bar);
    return 'insert';
  }

  /**
   * Adds older bars in front (scroll-back). Returns how many bars were really
   * new, which is exactly how far the visible logical range must shift.
   */
  prepend(older: readonly Bar[]): number {
    const firstTs = this.items[0]?.timestamp ?? Infinity;
    const fresh = normalize(older).filter((b) => b.timestamp < firstTs);
    this.items = fresh.concat(this.items);
    return fresh.length;
  }

  /** Drops all but the newest `keep` bars; returns how many went (the visible logical range shifts back by that). */
  dropOlder(keep: number): number {
    const dropped = Math.max(0, this.items.length - Math.max(0, keep));
    if (dropped > 0) this.items = this.items.slice(dropped);
    return dropped;
  }
}

/**
 * How many bars a chart watching the live edge keeps after scroll-back made it hold many: undefined while
 * it should keep all of them. A chart's every update costs work for each bar it holds (lightweight-charts
 * rebuilds a drawing item per bar), so bars scrolled in and left behind are let go again once the view is
 * back at the newest ones and they are more than `limit`; then `keep` stay, and at least the visible bars
 * plus `margin` (scroll-back pages them in again when wanted).
 */
export function barsToKeep(
  length: number,
  view: { from: number; to: number } | null,
  limit: number,
  keep: number,
  margin: number,
): number | undefined {
  if (length <= limit || view === null) return undefined;
  // At the live edge: the view's right end at (or past) the newest bar.
  if (view.to < length - 2) return undefined;
  const needed = Math.ceil(length - Math.max(0, view.from)) + margin;
  const k = Math.max(keep, needed);
  return k < length ? k : undefined;
}

/** Sorts ascending and keeps the last copy of each timestamp. */
export function normalize(bars: readonly Bar[]): Bar[] {
  const byTs = new Map<number, Bar>();
  for (const b of bars) byTs.set(b.timestamp, b);
  return [...byTs.values()].sort((a, b) => a.timestamp - b.timestamp);
}

/**
 * Timestamps where consecutive bars are further apart than one interval.
 * The feed emits flat bars for empty buckets, so at the live end any gap
 * means data was lost (the reconnect test relies on this).
 */
export function findGaps(bars: readonly Bar[], stepMs: number): Array<[number, number]> {
  const gaps: Array<[number, number]> = [];
  for (let i = 1; i < bars.length; i++) {
    if (bars[i].timestamp - bars[i - 1].timestamp > stepMs) {
      gaps.push([bars[i - 1].timestamp, bars[i].timestamp]);
    }
  }
  return gaps;
}

/**
 * The price the "change %" is measured against: the close of the bar that opened 24 hours before the last
 * bar (or the newest before that) when that much is loaded, else `dayAgo` (that bar fetched on its own,
 * see {@link referenceCutoff}), else the first loaded open; for daily and weekly bars, the previous bar's
 * close.
 */
export function referencePrice(bars: readonly Bar[], stepMs: number, dayAgo?: Bar): number | undefined {
  const last = bars[bars.length - 1];
  if (!last) return undefined;
  if (stepMs >= DAY_MS) return bars.length > 1 ? bars[bars.length - 2].close : last.open;
  const i = lowerBound(bars, last.timestamp - DAY_MS + 1);
  if (i > 0) return bars[i - 1].close;
  if (dayAgo && dayAgo.timestamp < bars[0].timestamp) return dayAgo.close;
  return bars[0].open;
}

/**
 * When the loaded bars do not reach back 24 hours before the last one (a chart loads a few hundred bars),
 * the open time the reference bar must not be after; undefined when they do, or for daily and longer bars.
 */
export function referenceCutoff(bars: readonly Bar[], stepMs: number): number | undefined {
  const last = bars[bars.length - 1];
  if (!last || stepMs >= DAY_MS) return undefined;
  const cutoff = last.timestamp - DAY_MS;
  return bars[0].timestamp <= cutoff ? undefined : cutoff;
}

const DAY_MS = 86_400_000;
