/**
 * Keeps a chart's health current: re-evaluated on every data or connection change and once a second
 * from the dashboard (what turns a silent chart stale), shown only when it changed, and counted by the
 * page's connection dot only when the health itself or its degradation changed. What the health is, for
 * given facts, is chartHealth.ts; what is shown is the chart's (`show`).
 */
import type { Connection } from '../net/connection';
import type { Interval } from '../state/intervals';
import type { MarketState } from '../state/marketSession';
import type { BarFeed } from './barFeed';
import { HealthView, chartHealth } from './chartHealth';
import { healthChange } from './chartNotices';

export interface HealthMonitorDeps {
  /** The chart's feed (read on each refresh: the chart builds it after its parts). */
  feed(): Pick<BarFeed, 'state' | 'dataError' | 'subscription' | 'lastActivityAt'>;
  conn: Pick<Connection, 'currentState' | 'retry'>;
  topic(): { symbol: string; interval: Interval };
  stepMs(): number;
  /** Whether the symbol's exchange is open now; undefined for markets open around the clock. */
  marketState?(symbol: string): MarketState | null | undefined;
  /** Badge and banner say this now. */
  show(v: HealthView): void;
  /** The page's connection dot sums the charts' health up: it has to look again. */
  counted(): void;
}

export class HealthMonitor {
  private last: HealthView | null = null;

  constructor(private readonly deps: HealthMonitorDeps) {}

  /** The health shown now (evaluated afresh before the first refresh). */
  get current(): HealthView {
    return this.last ?? this.evaluate(performance.now());
  }

  refresh(now = performance.now()): void {
    const v = this.evaluate(now);
    const change = healthChange(this.last, v);
    this.last = v;
    // A subscribe the server never answered (a rate-limited one is refused without our id): ask again.
    if (v.health === 'stale' && this.deps.feed().subscription.state === 'pending') {
      const { symbol, interval } = this.deps.topic();
      this.deps.conn.retry(symbol, interval);
    }
    if (!change.shown) return;
    this.deps.show(v);
    if (change.counted) this.deps.counted();
  }

  /** A live update arrived: back from stale is said at once rather than at the next tick. */
  updateReceived(): void {
    if (this.last?.health === 'stale') this.refresh();
  }

  private evaluate(now: number): HealthView {
    const { conn } = this.deps;
    const feed = this.deps.feed();
    return chartHealth({
      data: feed.state,
      dataError: feed.dataError,
      subscription: feed.subscription,
      connected: conn.currentState === 'connected',
      lastActivityAt: feed.lastActivityAt,
      now,
      stepMs: this.deps.stepMs(),
      market: this.deps.marketState?.(this.deps.topic().symbol),
    });
  }
}
