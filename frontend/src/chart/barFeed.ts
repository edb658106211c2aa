/**
 * The data flow of one chart, without the chart: subscribe to the topic, load the history, buffer live
 * bars until it is in, merge them (drawn at most once per frame, and only while the chart is on screen),
 * fill the gap after a reconnect, page older bars in on scroll-back and let them go again at the live
 * edge, and fetch the bar 24 h back for the change %. What is drawn, and how, is the view's (FeedView,
 * implemented by ChartView).
 *
 * States: `loading` (first history request in flight), `live`, `syncing` (after a reconnect, fetching
 * the bars that were missed) and `error`. Live updates that arrive while loading or syncing are buffered
 * and applied after the history, so they never land in front of a hole.
 */
import type { LogicalRange } from 'lightweight-charts';
import { Connection, RequestError, TopicStatus } from '../net/connection';
import type { ClientMessage, HistoricalReply, PriceUpdate } from '../net/protocol';
import { MAX_HISTORY_LIMIT } from '../net/protocol';
import { Bar, BarSeries, UpsertOutcome, barsToKeep, isBar, referenceCutoff } from '../state/bars';
import type { Interval } from '../state/intervals';
import type { DataState } from './chartHealth';
import { chartFrames } from './frameScheduler';

/**
 * Bars asked for on first load and per scroll-back page. The first load fills a grid chart several times
 * over (a 1920 px wide chart shows ~320 bars and at once asks for the page before). Kept small because
 * lightweight-charts rebuilds a drawing item for every bar a series holds on each update: heap sampling of
 * eight live charts, 611 MB allocated per 10 s with 1,000 bars each, 243 MB with 300 (docs/BENCHMARKS.md).
 */
export const INITIAL_BARS = 300;
export const PAGE_BARS = 500;
/** Back at the live edge, a chart holding more bars than this lets the scrolled-in ones go (see barsToKeep). */
export const KEEP_AT_MOST_BARS = INITIAL_BARS + PAGE_BARS;
/** How often, at most, the bar 24 h back is fetched again for the "change %" (ms). */
const DAY_AGO_REFRESH_MS = 60_000;
/** Start loading older bars when fewer than this many are left of the view. */
export const LOAD_MORE_THRESHOLD = 50;
/** Retries of a history request that came back empty (server warming up). */
const EMPTY_HISTORY_RETRIES = 6;
/** More pending bars than this (a chart off-screen for a while) are loaded with one setData. */
const BULK_FLUSH_BARS = 200;

/** What the feed asks of the chart that draws it. */
export interface FeedView {
  /** A new topic: nothing is drawn any more. */
  cleared(): void;
  /** Bars to ask for on the first load (more to reach a restored scroll position). */
  initialLimit(): number;
  /** The first history is in `bars`: draw it and place the view. */
  historyLoaded(): void;
  /** One bar was merged with this outcome: make the matching chart call. */
  barMerged(bar: Bar, outcome: UpsertOutcome): void;
  /** Many bars merged at once: redraw everything, view kept. */
  redrawAll(): void;
  /** Bars were prepended (`delta` > 0) or dropped (< 0): redraw, and shift `before` by `delta` bars. */
  reindexed(delta: number, before: LogicalRange | null): void;
  /** Buffered bars applied, state `live`: quote, markers, drawings. */
  wentLive(): void;
  /** State, subscription or error changed. */
  stateChanged(): void;
  /** The 24 h reference bar arrived. */
  referenceChanged(): void;
  /** Scroll-back page in flight (for the tests' `data-loading-older`). */
  loadingOlderChanged(on: boolean): void;
  /** The chart's visible logical range. */
  visibleRange(): LogicalRange | null;
  /** A live update of the topic arrived (counted by the page). */
  updateReceived(): void;
}

export class BarFeed {
  private stateValue: DataState = 'loading';
  /** The failed load's message (state `error`). */
  dataError = '';
  subscription: TopicStatus = { state: 'pending' };
  /** performance.now() of the last live update, or of going live when none came since. */
  lastActivityAt: number | null = null;
  /** Live updates received for this topic (debug hook). */
  received = 0;
  private buffered: Bar[] = [];
  /**
   * Live bars received but not drawn yet, by open time (the newest state of a bar wins). Drawn when
   * the shared frame scheduler says so, and only while the chart is on screen.
   */
  private readonly pendingBars = new Map<number, Bar>();
  private onScreen = true;
  private readonly flushTarget = { flush: () => this.flushPending() };
  /** Bumped on every symbol/interval change; replies for an older one are dropped. */
  private gen = 0;
  private loadingOlder = false;
  private historyExhausted = false;
  /** The bar 24 h before the last, fetched on its own when not loaded (the "change %" reference). */
  dayAgo: Bar | undefined;
  private dayAgoAskedAt = Number.NEGATIVE_INFINITY;
  private dayAgoInFlight = false;
  /** What the last gap fill brought (debug hook: explains a hole if one shows up). */
  lastResync: Record<string, number | null> | null = null;
  private unsubscribe: (() => void) | null = null;
  private symbol = '';
  private interval: Interval = '1m';

  constructor(
    private readonly conn: Connection,
    private readonly view: FeedView,
    /** The bars it loads and merges; given by a chart whose parts draw them before the feed exists. */
    readonly bars: BarSeries = new BarSeries(),
  ) {}

  get state(): DataState {
    return this.stateValue;
  }

  /** Changes with every (re)start; async work for an older one is dropped. */
  get generation(): number {
    return this.gen;
  }

  /** (Re)starts the data flow for a symbol and interval. */
  start(symbol: string, interval: Interval): void {
    const gen = ++this.gen;
    this.symbol = symbol;
    this.interval = interval;
    this.unsubscribe?.();
    this.bars.clear();
    this.buffered = [];
    this.pendingBars.clear();
    this.historyExhausted = false;
    this.loadingOlder = false;
    this.dayAgo = undefined;
    this.dayAgoAskedAt = Number.NEGATIVE_INFINITY;
    this.dayAgoInFlight = false;
    this.dataError = '';
    this.lastActivityAt = null;
    this.setState('loading');
    this.view.cleared();
    // Subscribe first: updates are buffered until the history is in.
    this.unsubscribe = this.conn.subscribe(
      symbol,
      interval,
      (u) => this.onUpdate(u, gen),
      (status) => {
        if (gen !== this.gen) return;
        this.subscription = status;
        this.view.stateChanged();
      },
    );
    void this.loadInitial(gen);
  }

  destroy(): void {
    this.gen++;
    chartFrames.cancel(this.flushTarget);
    this.pendingBars.clear();
    this.unsubscribe?.();
  }

  /** Off-screen charts keep their bars pending and draw them when they scroll back into view. */
  setOnScreen(visible: boolean): void {
    if (visible === this.onScreen) return;
    this.onScreen = visible;
    if (visible) chartFrames.request(this.flushTarget);
    else chartFrames.cancel(this.flushTarget);
  }

  /** The view moved: page older bars in when fewer than LOAD_MORE_THRESHOLD are left of it. */
  viewMoved(range: LogicalRange | null): void {
    if (!range || this.stateValue !== 'live' || this.loadingOlder || this.historyExhausted) return;
    if (range.from < LOAD_MORE_THRESHOLD) void this.loadOlder();
  }

  /**
   * After a reconnect: fetch everything from the last bar we have (inclusive:
   * it may have changed) up to now, so the chart has no hole.
   */
  async resync(): Promise<void> {
    if (this.bars.length === 0) {
      if (this.stateValue !== 'error') this.start(this.symbol, this.interval);
      return;
    }
    const gen = this.gen;
    this.setState('syncing');
    const since = this.bars.last()!.timestamp;
    try {
      const missed = await this.fetchUntilNonEmpty(gen, { start_time: since, limit: MAX_HISTORY_LIMIT });
      if (missed === null) return;
      this.lastResync = { since, at: Date.now(), count: missed.length, first: missed[0]?.timestamp ?? null, last: missed[missed.length - 1]?.timestamp ?? null, buffered: this.buffered.length };
      if (missed.length >= MAX_HISTORY_LIMIT) {
        // Away longer than one page: a clean reload is simpler than paging.
        this.start(this.symbol, this.interval);
        return;
      }
      for (const bar of missed) this.applyBar(bar);
      this.goLive();
    } catch {
      // Disconnected again: the next reconnect retries; keep buffering.
    }
  }

  /** Draws the live bars received since the last flush. */
  flushPending(): void {
    if (this.pendingBars.size === 0) return;
    const bars = [...this.pendingBars.values()];
    this.pendingBars.clear();
    if (bars.length <= BULK_FLUSH_BARS) {
      for (const bar of bars) this.applyBar(bar);
    } else {
      for (const bar of bars) this.bars.upsert(bar);
      this.view.redrawAll();
    }
    this.letGoOfOldBars();
  }

  /**
   * Fetches the bar 24 h before the last when the loaded bars do not reach back that far; again a minute
   * later at the earliest, as the 24 h mark moves on (so the reference is at most a minute old).
   */
  refreshDayAgo(stepMs: number): void {
    const cutoff = referenceCutoff(this.bars.bars, stepMs);
    if (cutoff === undefined || this.dayAgoInFlight || performance.now() - this.dayAgoAskedAt < DAY_AGO_REFRESH_MS) return;
    const gen = this.gen;
    this.dayAgoInFlight = true;
    this.dayAgoAskedAt = performance.now();
    this.history({ trading_pair: this.symbol, interval: this.interval, end_time: cutoff + 1, limit: 1 })
      .then((reply) => {
        if (gen !== this.gen) return;
        this.dayAgo = (reply.data ?? []).filter(isBar).pop();
        if (this.dayAgo) this.view.referenceChanged();
      })
      .catch(() => {
        // Disconnected: the next quote after a minute asks again; meanwhile the first loaded open stands in.
      })
      .finally(() => {
        if (gen === this.gen) this.dayAgoInFlight = false;
      });
  }

  private setState(state: DataState): void {
    // Bars received live are older than anything a gap fill or reload brings next: draw them first.
    if (state !== 'live') this.flushPending();
    if (state === 'live' && this.stateValue !== 'live') this.lastActivityAt = performance.now();
    this.stateValue = state;
    this.view.stateChanged();
  }

  private async loadInitial(gen: number): Promise<void> {
    try {
      const limit = this.view.initialLimit();
      const data = await this.fetchUntilNonEmpty(gen, { limit });
      if (data === null) return;
      this.bars.reset(data);
      this.historyExhausted = this.bars.length < limit;
      this.view.historyLoaded();
      this.goLive();
    } catch (err) {
      if (gen !== this.gen) return;
      if (err instanceof RequestError && err.code === 'disconnected') {
        // The reconnect will call resync(), which loads from scratch when empty.
        this.setState('syncing');
        return;
      }
      // Shown until a retry or another symbol: a failed chart must not look merely empty.
      this.dataError = err instanceof Error ? err.message : String(err);
      this.setState('error');
    }
  }

  /**
   * get_historical without end_time always ends with the current bar, so an
   * empty reply means the server is still warming up (just restarted): ask
   * again a few times before taking it as final. Null when superseded.
   */
  private async fetchUntilNonEmpty(gen: number, range: { start_time?: number; limit: number }): Promise<Bar[] | null> {
    const { symbol, interval } = this;
    for (let attempt = 0; ; attempt++) {
      const reply = await this.history({ trading_pair: symbol, interval, ...range });
      if (gen !== this.gen) return null;
      const bars = (reply.data ?? []).filter(isBar);
      if (bars.length > 0 || attempt >= EMPTY_HISTORY_RETRIES) return bars;
      await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
      if (gen !== this.gen) return null;
    }
  }

  /**
   * One get_historical. The server budgets history per host (docs/SECURITY.md); a refusal carries
   * `retry_after`, and the request is asked again after that delay instead of failing the chart.
   */
  private async history(fields: Omit<Extract<ClientMessage, { type: 'get_historical' }>, 'type'>): Promise<HistoricalReply> {
    for (;;) {
      try {
        return await this.conn.request<HistoricalReply>({ type: 'get_historical', ...fields });
      } catch (err) {
        const retryAfter = err instanceof RequestError && err.code === 'rate_limited' ? err.retryAfter : undefined;
        if (retryAfter === undefined) throw err;
        await new Promise((r) => setTimeout(r, Math.max(1, retryAfter) * 1000));
      }
    }
  }

  private goLive(): void {
    const pending = this.buffered;
    this.buffered = [];
    for (const bar of pending) this.applyBar(bar);
    this.setState('live');
    this.view.wentLive();
  }

  private onUpdate(u: PriceUpdate, gen: number): void {
    if (gen !== this.gen || !isBar(u.data)) return;
    this.received++;
    this.lastActivityAt = performance.now();
    this.view.updateReceived();
    if (this.stateValue !== 'live') {
      this.buffered.push(u.data);
      return;
    }
    this.pendingBars.set(u.data.timestamp, u.data);
    if (this.onScreen) chartFrames.request(this.flushTarget);
  }

  private applyBar(bar: Bar): void {
    const outcome = this.bars.upsert(bar);
    if (outcome !== 'ignored') this.view.barMerged(bar, outcome);
  }

  /**
   * Scroll-back leaves a chart holding many bars, and each live update costs work for every one of them.
   * Once the view is back at the newest bars, those it does not show go again (scroll-back pages them in
   * when wanted); the view stays exactly where it was.
   */
  private letGoOfOldBars(): void {
    if (this.bars.length <= KEEP_AT_MOST_BARS || this.loadingOlder) return;
    const view = this.view.visibleRange();
    const keep = barsToKeep(this.bars.length, view, KEEP_AT_MOST_BARS, INITIAL_BARS, 2 * LOAD_MORE_THRESHOLD);
    if (keep === undefined || view === null) return;
    const dropped = this.bars.dropOlder(keep);
    this.historyExhausted = false;
    this.view.reindexed(-dropped, view);
  }

  /**
   * Scroll-back: fetch the page before the first bar and prepend it. The
   * chart keeps logical indexes, so the visible range is shifted by exactly
   * the number of bars added and the user sees no jump.
   */
  private async loadOlder(): Promise<void> {
    const first = this.bars.first();
    if (!first) return;
    const gen = this.gen;
    this.loadingOlder = true;
    this.view.loadingOlderChanged(true);
    try {
      const reply = await this.history({
        trading_pair: this.symbol,
        interval: this.interval,
        end_time: first.timestamp,
        limit: PAGE_BARS,
      });
      if (gen !== this.gen) return;
      const added = this.bars.prepend((reply.data ?? []).filter(isBar));
      if (added === 0) {
        this.historyExhausted = true;
        return;
      }
      this.view.reindexed(added, this.view.visibleRange());
    } catch {
      // Retry happens on the next scroll.
    } finally {
      if (gen === this.gen) {
        this.loadingOlder = false;
        this.view.loadingOlderChanged(false);
      }
    }
    // The user may still be at the left edge: keep going.
    if (gen === this.gen && !this.historyExhausted) this.viewMoved(this.view.visibleRange());
  }
}
