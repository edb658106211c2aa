/**
 * One chart card: candlesticks + volume pane, live bars from the shared
 * connection, history loading when scrolling left, gap filling after a
 * reconnect, overlays (page SMA/EMA and server indicators), markers (the
 * hook's and the strategy signals of its topic) and drawings.
 *
 * The data flow (subscription, history, live merge, gap fill, scroll-back
 * paging) is barFeed.ts; this class draws what it brings. What the chart
 * shows about its data (live, stale, refused, failed, offline) is decided
 * in chartHealth.ts; drawings live in chartDrawings.ts; the read-only
 * debug hooks the browser tests use are in ../debug.ts (test builds only).
 */
import type { MarketState } from '../state/marketSession';
import {
  CandlestickData,
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramData,
  HistogramSeries,
  IChartApi,
  ISeriesApi,
  ISeriesMarkersPluginApi,
  LogicalRange,
  MouseEventParams,
  Time,
  UTCTimestamp,
  createChart,
  createSeriesMarkers,
} from 'lightweight-charts';
import { button, h } from '../dom';
import type { SymbolDrawings } from '../drawings/symbolDrawings';
import type { CatalogStore } from '../net/catalogStore';
import type { Connection } from '../net/connection';
import type { StreamHub } from '../net/streams';
import { Bar, UpsertOutcome, lowerBound, referencePrice } from '../state/bars';
import { Interval, intervalMs } from '../state/intervals';
import { ChartConfig, ChartViewport, IndicatorConfig, MAX_INDICATORS_PER_CHART } from '../state/layout';
import { Marker, markersFromExecutedTrades, mergeMarkers } from '../state/markers';
import { api } from '../net/api';
import { markersFromSignals, parseSignal, signalToMarker } from '../state/signals';
import { indicatorStreamKey } from '../net/streams';
import type { Params } from '../state/catalog';
import type { SymbolMatch } from '../state/symbolSearch';
import type { KeyValueStore } from '../state/storage';
import type { Palette, ThemeState } from '../theme';
import { ChartHeader } from './chartHeader';
import { changePercent, formatPercent, formatPrice, pricePrecision } from './format';
import { LegendStudy, renderLegend, toSeriesMarkers } from './presentation';
import { Overlay } from './overlays';
import { IndicatorMenu } from './indicatorMenu';
import { ServerIndicator } from './serverIndicators';
import { BarFeed, FeedView, INITIAL_BARS } from './barFeed';
import { barsToLoad, captureViewport, isScrolledBack, restoredScrollPosition } from './viewport';
import { ChartDrawings } from './chartDrawings';
import { LabelInput, MarkerLabels } from './markerLabels';
import { nameAttributionLogo } from './attribution';
import { HealthView, chartHealth } from './chartHealth';

export { INITIAL_BARS, KEEP_AT_MOST_BARS, PAGE_BARS } from './barFeed';

export interface ChartDeps {
  conn: Connection;
  /** Indicator and signal streams on the same socket. */
  streams: StreamHub;
  catalog: CatalogStore;
  store: KeyValueStore;
  /** Drawings per symbol, shared by every chart of the symbol. */
  drawings: SymbolDrawings;
  theme: ThemeState;
  /** The ticker meant by what was typed (`xrp` -> XRPUSDT), or why there is none. */
  resolveSymbol(input: string): Promise<SymbolMatch>;
  onConfigChange(cfg: ChartConfig): void;
  onRemove(id: string): void;
  onDuplicate(id: string): void;
  /** Counts applied live updates (debug hook / performance test). */
  countUpdate(): void;
  /** The chart's health changed (the connection dot sums them up). */
  onHealthChange(): void;
  /** Whether the symbol's exchange is open now; undefined for markets open around the clock. */
  marketState?(symbol: string): MarketState | null | undefined;
}

export class ChartView implements FeedView {
  readonly root: HTMLElement;
  private cfg: ChartConfig;
  private readonly header: ChartHeader;
  private readonly host: HTMLElement;
  private readonly legend: HTMLElement;
  private readonly errorBox: HTMLElement;
  /** Says, in words, why the chart is not live (stale, refused, failed, offline); hidden when it is. */
  private readonly banner: HTMLElement;
  private readonly bannerText: HTMLElement;
  private readonly chart: IChartApi;
  private readonly candles: ISeriesApi<'Candlestick'>;
  private readonly volume: ISeriesApi<'Histogram'>;
  /**
   * Created with the first marker, not before: lightweight-charts' markers plugin maps the series' whole
   * data (every bar, as new objects) after each update, even with no markers — a third of the page's
   * allocations with eight live charts, and so of its garbage collections.
   */
  private markersApi: ISeriesMarkersPluginApi<Time> | null = null;
  /** The markers' text, drawn inside the pane (created with the first marker too). */
  private markerLabels: MarkerLabels | null = null;
  private readonly overlays: Record<'sma' | 'ema', Overlay>;
  private readonly drawings: ChartDrawings;
  private readonly feed: BarFeed;
  /** Markers from the public hook and `trade_marker` pushes. */
  private markers: Marker[] = [];
  /** Strategy signals of this chart's topic (subscribe_signals); dropped on a symbol/interval change. */
  private signalMarkers: Marker[] = [];
  private closeSignals: (() => void) | null = null;
  private indicators: ServerIndicator[] = [];
  private readonly indicatorMenu: IndicatorMenu;
  private healthView: HealthView | null = null;
  private hovering = false;
  private quoteQueued = false;
  private readonly cleanups: Array<() => void> = [];
  /** Shown while scrolled back: one click returns to the newest bars. */
  private readonly liveButton: HTMLButtonElement;
  /** The stored viewport to put back after the first load (a reload); used once. */
  private restoreView: ChartViewport | undefined;
  private viewportTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    cfg: ChartConfig,
    private readonly deps: ChartDeps,
  ) {
    this.cfg = { ...cfg };
    this.feed = new BarFeed(deps.conn, this);
    this.restoreView = cfg.view;
    this.liveButton = button('chart-back-to-live', 'Live ⇥', 'Back to the newest bars', () => this.backToLive());
    this.liveButton.classList.add('chart-back-to-live');
    this.liveButton.hidden = true;
    this.header = new ChartHeader(cfg.symbol, cfg.interval, {
      onSymbol: (s) => this.changeSymbol(s),
      onInterval: (i) => this.reconfigure(this.cfg.symbol, i),
      onToggle: (k) => this.toggleOverlay(k),
      onToggleSignals: () => this.toggleSignals(),
      onTool: (k) => this.drawings.toggleTool(k),
      onDeleteDrawing: () => this.drawings.deleteSelected(),
      onDuplicate: () => deps.onDuplicate(this.cfg.id),
      onRemove: () => deps.onRemove(this.cfg.id),
    });
    this.legend = h('div', { class: 'legend', 'data-testid': 'legend' });
    this.errorBox = h('div', { class: 'chart-error', 'data-testid': 'chart-error', role: 'alert', hidden: true });
    this.bannerText = h('span', { 'data-testid': 'chart-banner-text' });
    this.banner = h(
      'div',
      { class: 'chart-banner', 'data-testid': 'chart-banner', role: 'status', hidden: true },
      this.bannerText,
      button('chart-retry', 'Retry', 'Load this chart again', () => this.retry()),
    );
    this.host = h('div', { class: 'chart-host', 'data-testid': 'chart-host' });
    this.indicatorMenu = new IndicatorMenu(deps.catalog, {
      onAdd: (name, params) => this.addIndicator(name, params),
      onRemove: (id) => this.removeIndicator(id),
    });
    this.header.addAction(this.indicatorMenu.toggle);
    this.root = h(
      'section',
      { class: 'chart-card', 'data-testid': 'chart-card', 'data-chart-id': cfg.id },
      this.header.root,
      h(
        'div',
        { class: 'chart-body' },
        this.header.toolbar,
        h('div', { class: 'chart-stage' }, this.host, h('div', { class: 'chart-overlay-top' }, this.legend, this.indicatorMenu.chips), this.indicatorMenu.popover, this.errorBox, this.banner, this.liveButton),
      ),
    );
    this.updateDataset();

    const palette = deps.theme.palette;
    this.chart = createChart(this.host, {
      autoSize: true,
      // lightweight-charts is Apache-2.0 and asks for its attribution: keep the logo on.
      layout: { attributionLogo: true },
      crosshair: { mode: CrosshairMode.Normal },
      timeScale: { timeVisible: true, secondsVisible: cfg.interval.endsWith('s'), rightOffset: 5, ...(cfg.view ? { barSpacing: cfg.view.barSpacing } : {}) },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, { borderVisible: false });
    this.volume = this.chart.addSeries(
      HistogramSeries,
      { priceFormat: { type: 'volume' }, priceLineVisible: false, lastValueVisible: false },
      1,
    );
    // Volume gets a quarter of the height; pane 0 keeps its default factor of 1.
    this.chart.panes()[1]?.setStretchFactor(0.3);
    this.cleanups.push(nameAttributionLogo(this.host, cfg.id));
    this.overlays = {
      sma: new Overlay(this.chart, 'sma', palette.sma),
      ema: new Overlay(this.chart, 'ema', palette.ema),
    };

    this.drawings = new ChartDrawings(
      {
        host: this.host,
        chart: this.chart,
        candles: this.candles,
        bars: () => this.feed.bars.bars,
        stepMs: () => this.step(),
        formatPrice: (p) => formatPrice(p, this.precision()),
        onUiChange: (tool, selected) => this.header.setDrawingUi(tool, selected),
      },
      deps.drawings,
      cfg.symbol,
      palette,
    );

    this.applyPalette(palette);
    this.cleanups.push(deps.theme.onChange(() => this.applyPalette(deps.theme.palette)));
    this.cleanups.push(deps.conn.onOpen(() => void this.feed.resync()));
    this.cleanups.push(deps.conn.onState(() => this.refreshHealth()));
    this.watchVisibility();

    this.chart.timeScale().subscribeVisibleLogicalRangeChange(this.onRangeChange);
    this.chart.subscribeCrosshairMove(this.onCrosshair);

    for (const k of ['sma', 'ema'] as const) this.header.setToggle(k, cfg[k]);
    this.header.setSignalsShown(cfg.signals !== false);
    this.start();
  }

  get config(): ChartConfig {
    return { ...this.cfg };
  }

  /** What the chart shows about its data now. */
  get health(): HealthView {
    return this.healthView ?? this.computeHealth();
  }

  /**
   * The chart's parts, read by the debug hooks of test builds (../debug.ts); nothing else uses it. Live
   * bars still pending a frame are drawn first, so what is read is what is on screen.
   */
  inspect() {
    this.feed.flushPending();
    return {
      cfg: this.config,
      chart: this.chart,
      candles: this.candles,
      bars: this.feed.bars,
      state: this.feed.state,
      health: this.health,
      subscription: this.feed.subscription,
      received: this.feed.received,
      drawings: this.drawings,
      markers: this.markers,
      signalMarkers: this.signalMarkers,
      markersApi: this.markersApi,
      markerLabels: this.markerLabels,
      overlays: this.overlays,
      indicators: this.indicators,
      lastResync: this.feed.lastResync,
      dayAgo: this.feed.dayAgo,
      stepMs: this.step(),
    };
  }

  addMarkers(markers: readonly Marker[]): void {
    this.markers = mergeMarkers(this.markers, markers);
    this.renderMarkers();
  }

  destroy(): void {
    this.feed.destroy();
    if (this.viewportTimer) clearTimeout(this.viewportTimer);
    this.indicatorMenu.close();
    this.closeSignals?.();
    for (const ind of this.indicators) ind.destroy();
    this.indicators = [];
    this.cleanups.forEach((fn) => fn());
    this.drawings.destroy();
    this.chart.timeScale().unsubscribeVisibleLogicalRangeChange(this.onRangeChange);
    this.chart.unsubscribeCrosshairMove(this.onCrosshair);
    this.chart.remove();
    this.root.remove();
  }

  private step(): number {
    return intervalMs(this.cfg.interval);
  }

  private precision(): number {
    const last = this.feed.bars.last();
    return last ? pricePrecision(last.close) : 2;
  }

  private updateDataset(): void {
    const d = this.root.dataset;
    d.symbol = this.cfg.symbol;
    d.interval = this.cfg.interval;
    d.state = this.feed.state;
  }

  private computeHealth(now = performance.now()): HealthView {
    return chartHealth({
      data: this.feed.state,
      dataError: this.feed.dataError,
      subscription: this.feed.subscription,
      connected: this.deps.conn.currentState === 'connected',
      lastActivityAt: this.feed.lastActivityAt,
      now,
      stepMs: this.step(),
      market: this.deps.marketState?.(this.cfg.symbol),
    });
  }

  /**
   * Re-evaluates the chart's health (on every state change and once a second from the dashboard, which
   * is what turns a silent chart stale) and shows it; touches the DOM only when something changed.
   */
  refreshHealth(now = performance.now()): void {
    const v = this.computeHealth(now);
    const old = this.healthView;
    this.healthView = v;
    // A subscribe the server never answered (a rate-limited one is refused without our id): ask again.
    if (v.health === 'stale' && this.feed.subscription.state === 'pending') this.deps.conn.retry(this.cfg.symbol, this.cfg.interval);
    if (old && old.health === v.health && old.detail === v.detail) return;
    this.root.dataset.health = v.health;
    this.header.setHealth(v.health, v.label, v.detail);
    // A closed market is said on the badge; a banner would only cover the last session's bars.
    this.banner.hidden = v.detail === '' || v.health === 'closed';
    this.banner.dataset.health = v.health;
    this.bannerText.textContent = v.detail;
    const retry = this.banner.querySelector<HTMLButtonElement>('.chart-retry');
    if (retry) retry.hidden = v.health !== 'error' && v.health !== 'refused' && v.health !== 'stale';
    if (!old || old.degraded !== v.degraded || old.health !== v.health) this.deps.onHealthChange();
  }

  /** The banner's Retry: load again and ask the server for the live topic again. */
  private retry(): void {
    this.deps.conn.retry(this.cfg.symbol, this.cfg.interval);
    if (this.feed.state === 'error' || this.feed.bars.length === 0) this.start();
    else void this.feed.resync();
  }

  // ---- configuration -------------------------------------------------------

  private async changeSymbol(input: string): Promise<void> {
    const gen = this.feed.generation;
    const match = await this.deps.resolveSymbol(input);
    if (gen !== this.feed.generation) return;
    if ('error' in match) {
      this.showError(match.error);
      this.header.setSymbol(this.cfg.symbol);
      return;
    }
    this.header.setSymbol(match.symbol);
    this.reconfigure(match.symbol, this.cfg.interval);
  }

  private reconfigure(symbol: string, interval: Interval): void {
    if (symbol === this.cfg.symbol && interval === this.cfg.interval) return;
    this.cfg = { ...this.cfg, symbol, interval };
    // Markers are times on this symbol's bars: they mean nothing on another topic.
    this.markers = [];
    this.header.setSymbol(symbol);
    this.drawings.setSymbol(symbol);
    this.chart.applyOptions({ timeScale: { secondsVisible: interval.endsWith('s') } });
    this.deps.onConfigChange(this.config);
    this.start();
  }

  /** Strategy signal markers on or off for this chart (kept in the layout; on by default). */
  private toggleSignals(): void {
    const shown = this.cfg.signals === false;
    this.cfg = { ...this.cfg, signals: shown ? undefined : false };
    this.header.setSignalsShown(shown);
    this.renderMarkers();
    this.deps.onConfigChange(this.config);
  }

  private toggleOverlay(kind: 'sma' | 'ema'): void {
    const on = !this.cfg[kind];
    this.cfg = { ...this.cfg, [kind]: on };
    if (on) this.overlays[kind].enable(this.feed.bars.bars);
    else this.overlays[kind].disable();
    this.header.setToggle(kind, on);
    this.deps.onConfigChange(this.config);
  }

  // ---- data flow -----------------------------------------------------------

  /** (Re)starts the data flow for the current symbol and interval. */
  private start(): void {
    this.feed.start(this.cfg.symbol, this.cfg.interval);
    this.startStreams();
  }

  // ---- FeedView: what the bar feed asks of the chart -------------------------

  cleared(): void {
    this.updateDataset();
    this.hideError();
    this.candles.setData([]);
    this.volume.setData([]);
    for (const o of Object.values(this.overlays)) o.disable();
  }

  initialLimit(): number {
    const ts = this.chart.timeScale();
    return barsToLoad(this.restoreView, Date.now(), this.step(), ts.width() / ts.options().barSpacing, INITIAL_BARS);
  }

  historyLoaded(): void {
    const ts = this.chart.timeScale();
    this.candles.applyOptions({ priceFormat: { type: 'price', precision: this.precision(), minMove: 10 ** -this.precision() } });
    this.setAllData();
    for (const k of ['sma', 'ema'] as const) if (this.cfg[k]) this.overlays[k].enable(this.feed.bars.bars);
    // After a reload: the zoom and the scrolled-back position the trader left.
    const restore = this.restoreView;
    this.restoreView = undefined;
    if (restore) ts.applyOptions({ barSpacing: restore.barSpacing });
    const position = restore ? restoredScrollPosition(restore, this.feed.bars.bars, this.step()) : null;
    if (position !== null) ts.scrollToPosition(position, false);
    else ts.scrollToRealTime();
    void this.loadTradeMarkers(this.feed.generation);
  }

  /** Makes the chart call that matches how the bar was merged, the cheapest one. */
  barMerged(bar: Bar, outcome: UpsertOutcome): void {
    const bars = this.feed.bars.bars;
    switch (outcome) {
      case 'append':
      case 'replace-last':
        this.candles.update(this.toCandle(bar));
        this.volume.update(this.toVolume(bar));
        for (const o of Object.values(this.overlays)) o.updateLast(bars, outcome === 'append');
        if (outcome === 'append') this.renderMarkers();
        break;
      case 'replace':
        // A correction of a closed bar: lightweight-charts v5 allows historical updates.
        this.candles.update(this.toCandle(bar), true);
        this.volume.update(this.toVolume(bar), true);
        for (const o of Object.values(this.overlays)) o.reset(bars);
        break;
      case 'insert':
        this.setAllData(true);
        break;
      case 'ignored':
        return;
    }
    this.scheduleQuote();
  }

  redrawAll(): void {
    this.setAllData(true);
    this.renderMarkers();
    this.scheduleQuote();
  }

  reindexed(delta: number, before: LogicalRange | null): void {
    this.setAllData();
    if (before) this.chart.timeScale().setVisibleLogicalRange({ from: before.from + delta, to: before.to + delta });
    this.renderMarkers();
    this.drawings.render();
  }

  wentLive(): void {
    this.scheduleQuote();
    this.renderMarkers();
    this.drawings.render();
  }

  stateChanged(): void {
    this.root.dataset.state = this.feed.state;
    this.refreshHealth();
  }

  referenceChanged(): void {
    this.renderQuote();
  }

  loadingOlderChanged(on: boolean): void {
    if (on) this.root.dataset.loadingOlder = 'true';
    else delete this.root.dataset.loadingOlder;
  }

  visibleRange(): LogicalRange | null {
    return this.chart.timeScale().getVisibleLogicalRange();
  }

  updateReceived(): void {
    this.deps.countUpdate();
    // Back from stale: say so at once rather than at the next tick.
    if (this.healthView?.health === 'stale') this.refreshHealth();
  }

  /** (Re)opens the signal stream and the server indicators for the current topic. */
  private startStreams(): void {
    const { symbol, interval } = this.cfg;
    this.closeSignals?.();
    this.signalMarkers = [];
    this.closeSignals = this.deps.streams.openSignals(symbol, interval, {
      onHistory: (items) => this.addSignalMarkers(markersFromSignals(items)),
      onLive: (item) => {
        const s = parseSignal(item);
        if (s) this.addSignalMarkers([signalToMarker(s)]);
      },
    });
    for (const ind of this.indicators) ind.destroy();
    this.indicators = [];
    for (const c of this.cfg.indicators ?? []) this.mountIndicator(c);
    this.indicatorsChanged();
  }

  private addSignalMarkers(markers: readonly Marker[]): void {
    if (markers.length === 0) return;
    this.signalMarkers = mergeMarkers(this.signalMarkers, markers);
    this.renderMarkers();
  }

  // ---- server indicators ---------------------------------------------------

  private addIndicator(name: string, params: Params): string | null {
    const list = this.cfg.indicators ?? [];
    if (list.length >= MAX_INDICATORS_PER_CHART) return `At most ${MAX_INDICATORS_PER_CHART} indicators per chart.`;
    const key = (c: { name: string; params: Params }) => indicatorStreamKey('', '', c.name, c.params);
    if (list.some((c) => key(c) === key({ name, params }))) return 'That indicator is already on this chart.';
    let n = 1;
    while (list.some((c) => c.id === `i${n}`)) n++;
    const cfg: IndicatorConfig = { id: `i${n}`, name, params: { ...params } };
    this.cfg = { ...this.cfg, indicators: [...list, cfg] };
    this.mountIndicator(cfg);
    this.indicatorsChanged();
    this.deps.onConfigChange(this.config);
    return null;
  }

  private removeIndicator(id: string): void {
    const ind = this.indicators.find((i) => i.cfg.id === id);
    ind?.destroy();
    this.indicators = this.indicators.filter((i) => i !== ind);
    const rest = (this.cfg.indicators ?? []).filter((c) => c.id !== id);
    this.cfg = { ...this.cfg, indicators: rest.length ? rest : undefined };
    this.indicatorsChanged();
    this.deps.onConfigChange(this.config);
  }

  private mountIndicator(cfg: IndicatorConfig): void {
    // The first colour no other indicator of this chart uses.
    const used = new Set(this.indicators.map((i) => i.colorSlot));
    let slot = 0;
    while (used.has(slot)) slot++;
    const ind = new ServerIndicator(
      this.chart,
      this.deps.streams,
      cfg,
      this.cfg.symbol,
      this.cfg.interval,
      slot,
      this.deps.theme.palette,
      () => this.indicatorsChanged(),
      (i, err) => {
        // Refused by the server (e.g. macd fast >= slow): say why and drop it.
        this.showError(`${i.label}: ${err.message}`);
        this.removeIndicator(i.cfg.id);
      },
    );
    const first = this.feed.bars.first();
    if (first) ind.setMinTime(first.timestamp);
    this.indicators.push(ind);
  }

  /** Chips, and room for the indicator panes: each one below the price adds height. */
  private indicatorsChanged(): void {
    this.indicatorMenu.setChips(this.indicators.map((i) => ({ id: i.cfg.id, label: i.label, color: i.color, error: i.error })));
    const extra = this.indicators.filter((i) => i.pane === 'separate').length;
    this.host.style.setProperty('--extra-panes', String(extra));
  }

  private clipIndicators(): void {
    const first = this.feed.bars.first();
    if (first) for (const ind of this.indicators) ind.setMinTime(first.timestamp);
  }

  /** Markers for the executed trades scripts reported on this symbol. */
  private async loadTradeMarkers(gen: number): Promise<void> {
    try {
      const markers = markersFromExecutedTrades(await api.executedTrades(this.cfg.symbol));
      if (gen === this.feed.generation && markers.length > 0) this.addMarkers(markers);
    } catch {
      // No trades endpoint (an older server) or a failed request: the chart simply has no trade markers.
    }
  }

  /** Off-screen charts keep their bars pending and draw them when they scroll back into view. */
  private watchVisibility(): void {
    if (typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver((entries) => {
      const visible = entries.some((e) => e.isIntersecting);
      this.feed.setOnScreen(visible);
    });
    observer.observe(this.root);
    this.cleanups.push(() => observer.disconnect());
  }

  /** Pushes every bar to the chart; optionally keeps the view where it was. */
  private setAllData(keepView = false): void {
    const range = keepView ? this.chart.timeScale().getVisibleLogicalRange() : null;
    this.candles.setData(this.feed.bars.bars.map((b) => this.toCandle(b)));
    this.volume.setData(this.feed.bars.bars.map((b) => this.toVolume(b)));
    for (const o of Object.values(this.overlays)) o.reset(this.feed.bars.bars);
    this.clipIndicators();
    if (range) this.chart.timeScale().setVisibleLogicalRange(range);
  }

  private readonly onRangeChange = (range: LogicalRange | null): void => {
    if (range && this.feed.state === 'live') {
      const back = isScrolledBack(this.chart.timeScale().scrollPosition());
      if (this.liveButton.hidden === back) this.liveButton.hidden = !back;
      this.scheduleViewportSave();
    }
    this.feed.viewMoved(range);
  };

  /**
   * The newest bars at the right edge, at once: scrollToRealTime animates, and a live update or a resize
   * during its animation leaves the view part of the way back.
   */
  private backToLive(): void {
    const ts = this.chart.timeScale();
    ts.scrollToPosition(ts.options().rightOffset, false);
  }

  /** Stores the zoom and scroll position once the trader stops moving the chart (kept across reloads). */
  private scheduleViewportSave(): void {
    if (this.viewportTimer) clearTimeout(this.viewportTimer);
    this.viewportTimer = setTimeout(() => {
      this.viewportTimer = null;
      const ts = this.chart.timeScale();
      const range = ts.getVisibleLogicalRange();
      if (!range || this.feed.state !== 'live') return;
      const view = captureViewport(this.feed.bars.bars, this.step(), ts.options().barSpacing, ts.scrollPosition(), range.to);
      if (JSON.stringify(view) === JSON.stringify(this.cfg.view)) return;
      this.cfg = { ...this.cfg, view };
      this.deps.onConfigChange(this.config);
    }, 500);
  }

  // ---- presentation --------------------------------------------------------

  private toCandle(b: Bar): CandlestickData<Time> {
    const time = (b.timestamp / 1000) as UTCTimestamp;
    if (b.trades === 0) {
      // A flat bar (no trade in the bucket): grey, so it does not read as a real move.
      const c = this.deps.theme.palette.flat;
      return { time, open: b.open, high: b.high, low: b.low, close: b.close, color: c, wickColor: c, borderColor: c };
    }
    return { time, open: b.open, high: b.high, low: b.low, close: b.close };
  }

  private toVolume(b: Bar): HistogramData<Time> {
    const p = this.deps.theme.palette;
    return { time: (b.timestamp / 1000) as UTCTimestamp, value: b.volume, color: b.close >= b.open ? p.volumeUp : p.volumeDown };
  }

  private applyPalette(p: Palette): void {
    this.chart.applyOptions({
      layout: {
        background: { type: ColorType.Solid, color: p.background },
        textColor: p.text,
        panes: { separatorColor: p.border },
      },
      grid: { vertLines: { color: p.grid }, horzLines: { color: p.grid } },
      rightPriceScale: { borderColor: p.border },
      timeScale: { borderColor: p.border },
    });
    this.candles.applyOptions({ upColor: p.up, downColor: p.down, wickUpColor: p.up, wickDownColor: p.down });
    this.overlays.sma.setColor(p.sma);
    this.overlays.ema.setColor(p.ema);
    for (const ind of this.indicators) ind.setPalette(p);
    this.drawings.setPalette(p);
    // Per-bar colours (volume, flat bars) depend on the palette too.
    if (this.feed.bars.length) this.setAllData(true);
  }

  private renderMarkers(): void {
    const signals = this.cfg.signals === false ? [] : this.signalMarkers;
    const all = signals.length ? this.markers.concat(signals).sort((a, b) => a.time - b.time) : this.markers;
    if (all.length === 0 && this.markersApi === null) return;
    this.markersApi ??= createSeriesMarkers(this.candles, []);
    if (!this.markerLabels) {
      this.markerLabels = new MarkerLabels((t) => this.feed.bars.at(t));
      this.candles.attachPrimitive(this.markerLabels);
    }
    const series = toSeriesMarkers(all, this.feed.bars);
    const labels: LabelInput[] = [];
    const shapes = series.map(({ text, ...shape }) => {
      if (text) labels.push({ time: shape.time as UTCTimestamp, text, above: shape.position === 'aboveBar', color: shape.color ?? '#787b86' });
      return shape;
    });
    this.markersApi.setMarkers(shapes);
    this.markerLabels.set(labels);
  }

  private scheduleQuote(): void {
    // Header and legend are DOM: update at most once per frame, not per tick.
    if (this.quoteQueued) return;
    this.quoteQueued = true;
    requestAnimationFrame(() => {
      this.quoteQueued = false;
      this.renderQuote();
      if (!this.hovering) this.renderLegend(this.feed.bars.last());
    });
  }

  private renderQuote(): void {
    const last = this.feed.bars.last();
    if (!last) {
      this.header.setQuote('—', '—', 'flat');
      return;
    }
    this.feed.refreshDayAgo(this.step());
    const pct = changePercent(last.close, referencePrice(this.feed.bars.bars, this.step(), this.feed.dayAgo));
    const dir = pct === null || pct === 0 ? 'flat' : pct > 0 ? 'up' : 'down';
    this.header.setQuote(formatPrice(last.close, this.precision()), formatPercent(pct), dir);
  }

  private readonly onCrosshair = (param: MouseEventParams<Time>): void => {
    const bar = param.time !== undefined ? this.feed.bars.at(Number(param.time) * 1000) : undefined;
    this.hovering = bar !== undefined;
    this.renderLegend(bar ?? this.feed.bars.last());
  };

  private renderLegend(bar: Bar | undefined): void {
    renderLegend(this.legend, `${this.cfg.symbol} · ${this.cfg.interval}`, bar, this.precision(), bar ? this.studiesAt(bar) : []);
  }

  /** The page overlays and server indicators with their values on `bar`, for the legend. */
  private studiesAt(bar: Bar): LegendStudy[] {
    const out: LegendStudy[] = [];
    const bars = this.feed.bars.bars;
    const index = bar === bars[bars.length - 1] ? bars.length - 1 : lowerBound(bars, bar.timestamp);
    for (const o of Object.values(this.overlays)) {
      if (!o.enabled) continue;
      const v = o.valueAt(index);
      if (v !== undefined) out.push({ label: `${o.kind.toUpperCase()} ${o.period}`, color: o.lineColor, values: [v] });
    }
    const last = bar === bars[bars.length - 1];
    for (const ind of this.indicators) {
      const values = ind.valuesAt(last ? null : bar.timestamp);
      if (values) out.push({ label: ind.label, color: ind.color, values });
    }
    return out;
  }

  private showError(text: string): void {
    this.errorBox.textContent = text;
    this.errorBox.hidden = false;
    setTimeout(() => this.hideError(), 5000);
  }

  private hideError(): void {
    this.errorBox.hidden = true;
  }
}
