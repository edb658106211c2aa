/**
 * What one chart can honestly claim about its data, shown on the chart itself (badge and banner) and
 * summed up by the connection dot. A chart is only "Live" when the connection is up, its history is in,
 * the server accepted its subscription and bars keep arriving at its interval's cadence; anything else
 * is said in words, so a frozen chart never passes for a live one.
 */
import type { TopicStatus } from '../net/connection';
import type { MarketState } from '../state/marketSession';

/** The chart's own data flow: first history, live, gap fill after a reconnect, failed load. */
export type DataState = 'loading' | 'live' | 'syncing' | 'error';

export type Health = 'loading' | 'live' | 'syncing' | 'stale' | 'closed' | 'refused' | 'error' | 'offline';

export interface HealthInput {
  data: DataState;
  /** The failed load's message (data `error`). */
  dataError?: string;
  subscription: TopicStatus;
  connected: boolean;
  /** When the last live update arrived, or when the chart went live if none came since (ms, any clock). */
  lastActivityAt: number | null;
  now: number;
  stepMs: number;
  /** The symbol's exchange session now (see marketSession.ts); absent for markets open around the clock. */
  market?: MarketState | null;
}

export interface HealthView {
  health: Health;
  /** Short badge text. */
  label: string;
  /** The sentence for the banner; empty when the chart is fine. */
  detail: string;
  /** Counts against the connection dot (amber). */
  degraded: boolean;
}

/**
 * How long a chart may go without an update before it is called stale: the server sends at least one
 * update per bar (flat bars included), so one interval plus slack for a late bar close.
 */
export function staleAfterMs(stepMs: number): number {
  return stepMs + Math.max(5000, stepMs / 2);
}

export function formatSilence(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min`;
  return `${Math.floor(m / 60)} h`;
}

export function chartHealth(i: HealthInput): HealthView {
  if (!i.connected) {
    return { health: 'offline', label: 'Offline', detail: 'Disconnected from the server: this chart is not updating.', degraded: true };
  }
  if (i.data === 'error') {
    return { health: 'error', label: 'Error', detail: i.dataError ? `Could not load: ${i.dataError}` : 'Could not load this chart.', degraded: true };
  }
  if (i.subscription.state === 'refused') {
    const why = i.subscription.reason ? ` (${i.subscription.reason})` : '';
    return { health: 'refused', label: 'Not live', detail: `The server refused live updates for this chart${why}.`, degraded: true };
  }
  if (i.data === 'loading') return { health: 'loading', label: 'Loading', detail: '', degraded: false };
  if (i.data === 'syncing') return { health: 'syncing', label: 'Syncing', detail: '', degraded: false };
  // The server sends no bars while the market is closed: that silence is not staleness.
  if (i.market && !i.market.open) {
    return { health: 'closed', label: 'Closed', detail: 'The market is closed: bars resume when it opens.', degraded: false };
  }
  if (i.lastActivityAt !== null) {
    // Just after the open the last update is from the previous session: count from the open.
    const silent = Math.min(i.now - i.lastActivityAt, i.market ? i.market.openedAgoMs : Infinity);
    if (silent > staleAfterMs(i.stepMs)) {
      return { health: 'stale', label: 'Stale', detail: `No update for ${formatSilence(silent)}: the prices shown may be out of date.`, degraded: true };
    }
  }
  return { health: 'live', label: 'Live', detail: '', degraded: false };
}
