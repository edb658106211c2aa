/**
 * One chart card: candlesticks + volume pane, live bars from the shared connection, history loading when
 * scrolling left, gap filling after a reconnect, overlays (page SMA/EMA and server indicators), markers
 * (the hook's and the strategy signals of its topic) and drawings.
 *
 * This class puts the pieces together and keeps the chart's layout entry (ChartConfig); each piece is
 * its own module: the data flow is barFeed.ts (this class is its FeedView), the bars' drawing
 * priceSeries.ts, markers chartMarkers.ts, server indicators chartIndicators.ts, header quote and legend
 * quoteLegend.ts, the stored zoom and scroll viewportKeeper.ts, what the chart says about its data
 * chartHealth.ts and chartNotices.ts, drawings chartDrawings.ts. The debug hooks of the browser-test
 * build read its parts through ../testBuild.ts; production builds carry none of that.
 */
import type { IChartApi, LogicalRange } from 'lightweight-charts';
import { Bar, UpsertOutcome, referencePrice } from '../state/bars';
import { Interval, intervalMs } from '../state/intervals';
import type { ChartConfig } from '../state/layout';
import type { Marker } from '../state/markers';
import type { Params } from '../state/catalog';
import type { Palette } from '../theme';
import type { ChartDeps } from './chartDeps';
import { TEST_BUILD, exposeForTests } from '../testBuild';
import { ChartHeader } from './chartHeader';
import { formatPrice, pricePrecision } from './format';
import { IndicatorMenu } from './indicatorMenu';
import { BarFeed, FeedView, INITIAL_BARS } from './barFeed';
import { ChartDrawings } from './chartDrawings';
import { nameAttributionLogo } from './attribution';
import type { HealthView } from './chartHealth';
import { buildChartCard } from './chartCard';
import { ErrorNotice, HealthBanner } from './chartNotices';
import { HealthMonitor } from './healthMonitor';
import { IndicatorSet, planIndicator } from './chartIndicators';
import { MarkerLayer } from './chartMarkers';
import { OverlayKind, PriceSeries } from './priceSeries';
import { QuoteLegend, legendStudies } from './quoteLegend';
import { ViewportKeeper } from './viewportKeeper';

export { INITIAL_BARS, KEEP_AT_MOST_BARS, PAGE_BARS } from './barFeed';
export type { ChartDeps } from './chartDeps';

/** What the browser tests read of a chart (test builds only, see ../testBuild.ts and ../debug.ts). */
export interface ChartParts {
  cfg: ChartConfig;
  chart: IChartApi;
  feed: BarFeed;
  series: PriceSeries;
  health: HealthView;
  drawings: ChartDrawings;
  markers: MarkerLayer;
  indicators: IndicatorSet;
  stepMs: number;
}

export class ChartView implements FeedView {
  readonly root: HTMLElement;
  private cfg: ChartConfig;
  private readonly header: ChartHeader;
  private readonly host: HTMLElement;
  private readonly banner: HealthBanner;
  private readonly notice = new ErrorNotice();
  private readonly chart: IChartApi;
  private readonly healthMonitor: HealthMonitor;
  private readonly series: PriceSeries;
  private readonly markers: MarkerLayer;
  private readonly indicators: IndicatorSet;
  private readonly indicatorMenu: IndicatorMenu;
  private readonly drawings: ChartDrawings;
  private readonly quote: QuoteLegend;
  private readonly viewport: ViewportKeeper;
  private readonly feed: BarFeed;
  private readonly cleanups: Array<() => void> = [];

  constructor(
    cfg: ChartConfig,
    private readonly deps: ChartDeps,
  ) {
    this.cfg = { ...cfg };
    this.feed = new BarFeed(deps.conn, this);
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
    this.banner = new HealthBanner(() => this.retry());
    this.indicatorMenu = new IndicatorMenu(deps.catalog, {
      onAdd: (name, params) => this.addIndicator(name, params),
      onRemove: (id) => this.removeIndicator(id),
    });
    const card = buildChartCard(cfg.id, {
      header: this.header,
      menu: this.indicatorMenu,
      notice: this.notice,
      banner: this.banner,
      onBackToLive: () => this.viewport.backToLive(),
    });
    this.root = card.root;
    this.host = card.host;
    this.updateDataset();

    this.healthMonitor = new HealthMonitor({
      feed: this.feed,
      conn: deps.conn,
      topic: () => this.cfg,
      stepMs: () => this.step(),
      marketState: deps.marketState,
      show: (v) => this.showHealth(v),
      counted: () => deps.onHealthChange(),
    });
    const palette = deps.theme.palette;
    this.series = new PriceSeries(this.host, cfg.interval, cfg.view, palette);
    this.chart = this.series.chart;
    this.cleanups.push(nameAttributionLogo(this.host, cfg.id));
    this.markers = new MarkerLayer(this.series.candles, this.feed.bars, cfg.signals !== false);
    this.indicators = new IndicatorSet({
      chart: this.chart,
      streams: deps.streams,
      menu: this.indicatorMenu,
      host: this.host,
      palette: () => deps.theme.palette,
      onRefused: (ind, err) => {
        this.notice.show(`${ind.label}: ${err.message}`);
        this.removeIndicator(ind.cfg.id);
      },
    });
    this.drawings = new ChartDrawings(
      {
        host: this.host,
        chart: this.chart,
        candles: this.series.candles,
        bars: () => this.feed.bars.bars,
        stepMs: () => this.step(),
        formatPrice: (p) => formatPrice(p, this.precision()),
        onUiChange: (tool, selected) => this.header.setDrawingUi(tool, selected),
      },
      deps.drawings,
      cfg.symbol,
      palette,
    );
    this.quote = new QuoteLegend(card.legend, {
      bars: this.feed.bars,
      reference: () => this.reference(),
      precision: () => this.precision(),
      title: () => `${this.cfg.symbol} · ${this.cfg.interval}`,
      studiesAt: (bar) => legendStudies(bar, this.feed.bars.bars, Object.values(this.series.overlays), this.indicators),
      setQuote: (price, change, direction) => this.header.setQuote(price, change, direction),
    });
    this.viewport = new ViewportKeeper(
      {
        timeScale: this.chart.timeScale(),
        bars: () => this.feed.bars.bars,
        stepMs: () => this.step(),
        isLive: () => this.feed.state === 'live',
        stored: () => this.cfg.view,
        save: (view) => this.updateConfig({ view }),
        scrolledBack: (back) => (card.liveButton.hidden = !back),
      },
      cfg.view,
    );

    this.applyPalette(palette);
    this.cleanups.push(deps.theme.onChange(() => this.applyPalette(deps.theme.palette)));
    this.cleanups.push(deps.conn.onOpen(() => void this.feed.resync()));
    this.cleanups.push(deps.conn.onState(() => this.refreshHealth()));
    this.watchVisibility();
    this.chart.timeScale().subscribeVisibleLogicalRangeChange(this.onRangeChange);
    this.chart.subscribeCrosshairMove(this.quote.onCrosshair);

    for (const k of ['sma', 'ema'] as const) this.header.setToggle(k, cfg[k]);
    this.header.setSignalsShown(cfg.signals !== false);
    if (TEST_BUILD) {
      exposeForTests(this, (): ChartParts => {
        // Live bars still pending a frame are drawn first: what the tests read is what is on screen.
        this.feed.flushPending();
        const { chart, feed, series, drawings, markers, indicators } = this;
        return { cfg: this.config, chart, feed, series, health: this.healthMonitor.current, drawings, markers, indicators, stepMs: this.step() };
      });
    }
    this.start();
  }

  get config(): ChartConfig {
    return { ...this.cfg };
  }

  /** What the chart shows about its data now. */
  get health(): HealthView {
    return this.healthMonitor.current;
  }

  addMarkers(markers: readonly Marker[]): void {
    this.markers.addTrades(markers);
  }

  destroy(): void {
    this.feed.destroy();
    this.viewport.destroy();
    this.notice.destroy();
    this.indicatorMenu.close();
    this.markers.destroy();
    this.indicators.destroy();
    this.cleanups.forEach((fn) => fn());
    this.drawings.destroy();
    this.chart.timeScale().unsubscribeVisibleLogicalRangeChange(this.onRangeChange);
    this.chart.unsubscribeCrosshairMove(this.quote.onCrosshair);
    this.chart.remove();
    this.root.remove();
  }

  /** Re-evaluates the chart's health (the dashboard calls it once a second: silence turns a chart stale). */
  refreshHealth(now = performance.now()): void {
    this.healthMonitor.refresh(now);
  }

  // ---- FeedView: what the bar feed asks of the chart -------------------------

  cleared(): void {
    this.updateDataset();
    this.notice.hide();
    this.series.clear();
  }

  initialLimit(): number {
    return this.viewport.initialLimit(INITIAL_BARS);
  }

  historyLoaded(): void {
    this.series.setPrecision(this.precision());
    this.drawAll();
    for (const k of ['sma', 'ema'] as const) if (this.cfg[k]) this.series.setOverlay(k, true, this.feed.bars.bars);
    this.viewport.placeAfterLoad();
    const gen = this.feed.generation;
    void this.markers.loadTrades(this.cfg.symbol, () => gen === this.feed.generation);
  }

  /** Makes the chart call that matches how the bar was merged, the cheapest one. */
  barMerged(bar: Bar, outcome: UpsertOutcome): void {
    if (outcome === 'ignored') return;
    if (outcome === 'insert') this.drawAll(true);
    else this.series.drawMerged(bar, outcome, this.feed.bars.bars);
    // A new bar may be the one a marker waited for.
    if (outcome === 'append') this.markers.render();
    this.quote.schedule();
  }

  redrawAll(): void {
    this.drawAll(true);
    this.markers.render();
    this.quote.schedule();
  }

  reindexed(delta: number, before: LogicalRange | null): void {
    this.drawAll();
    if (before) this.chart.timeScale().setVisibleLogicalRange({ from: before.from + delta, to: before.to + delta });
    this.markers.render();
    this.drawings.render();
  }

  wentLive(): void {
    this.quote.schedule();
    this.markers.render();
    this.drawings.render();
  }

  stateChanged(): void {
    this.root.dataset.state = this.feed.state;
    this.refreshHealth();
  }

  referenceChanged(): void {
    this.quote.renderQuote();
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
    this.healthMonitor.updateReceived();
  }

  // ---- configuration -------------------------------------------------------

  private async changeSymbol(input: string): Promise<void> {
    const gen = this.feed.generation;
    const match = await this.deps.resolveSymbol(input);
    if (gen !== this.feed.generation) return;
    if ('error' in match) {
      this.notice.show(match.error);
      this.header.setSymbol(this.cfg.symbol);
      return;
    }
    this.header.setSymbol(match.symbol);
    this.reconfigure(match.symbol, this.cfg.interval);
  }

  private reconfigure(symbol: string, interval: Interval): void {
    if (symbol === this.cfg.symbol && interval === this.cfg.interval) return;
    this.markers.clearTrades();
    this.header.setSymbol(symbol);
    this.drawings.setSymbol(symbol);
    this.series.setInterval(interval);
    this.updateConfig({ symbol, interval });
    this.start();
  }

  /** Strategy signal markers on or off for this chart (kept in the layout; on by default). */
  private toggleSignals(): void {
    const shown = this.cfg.signals === false;
    this.cfg = { ...this.cfg, signals: shown ? undefined : false };
    this.header.setSignalsShown(shown);
    this.markers.setSignalsShown(shown);
    this.deps.onConfigChange(this.config);
  }

  private toggleOverlay(kind: OverlayKind): void {
    const on = !this.cfg[kind];
    this.series.setOverlay(kind, on, this.feed.bars.bars);
    this.header.setToggle(kind, on);
    this.updateConfig({ [kind]: on });
  }

  private addIndicator(name: string, params: Params): string | null {
    const plan = planIndicator(this.cfg.indicators ?? [], name, params);
    if ('error' in plan) return plan.error;
    this.indicators.add(plan.config, this.cfg.symbol, this.cfg.interval, this.feed.bars.first()?.timestamp);
    this.updateConfig({ indicators: [...(this.cfg.indicators ?? []), plan.config] });
    return null;
  }

  private removeIndicator(id: string): void {
    this.indicators.remove(id);
    const rest = (this.cfg.indicators ?? []).filter((c) => c.id !== id);
    this.updateConfig({ indicators: rest.length ? rest : undefined });
  }

  /** Changes the layout entry and tells the dashboard, which stores it. */
  private updateConfig(change: Partial<ChartConfig>): void {
    this.cfg = { ...this.cfg, ...change };
    this.deps.onConfigChange(this.config);
  }

  // ---- data flow -----------------------------------------------------------

  /** (Re)starts the data flow, the signal stream and the server indicators for the current topic. */
  private start(): void {
    const { symbol, interval } = this.cfg;
    this.feed.start(symbol, interval);
    this.markers.openSignals(this.deps.streams, symbol, interval);
    this.indicators.open(this.cfg.indicators ?? [], symbol, interval, this.feed.bars.first()?.timestamp);
  }

  /** The banner's Retry: load again and ask the server for the live topic again. */
  private retry(): void {
    this.deps.conn.retry(this.cfg.symbol, this.cfg.interval);
    if (this.feed.state === 'error' || this.feed.bars.length === 0) this.start();
    else void this.feed.resync();
  }

  /** Off-screen charts keep their bars pending and draw them when they scroll back into view. */
  private watchVisibility(): void {
    if (typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver((entries) => this.feed.setOnScreen(entries.some((e) => e.isIntersecting)));
    observer.observe(this.root);
    this.cleanups.push(() => observer.disconnect());
  }

  private readonly onRangeChange = (range: LogicalRange | null): void => {
    this.viewport.rangeChanged(range);
    this.feed.viewMoved(range);
  };

  // ---- presentation --------------------------------------------------------

  /** Pushes every bar to the chart; optionally keeps the view where it was. */
  private drawAll(keepView = false): void {
    const range = keepView ? this.chart.timeScale().getVisibleLogicalRange() : null;
    this.series.drawAll(this.feed.bars.bars);
    this.indicators.clip(this.feed.bars.first()?.timestamp);
    if (range) this.chart.timeScale().setVisibleLogicalRange(range);
  }

  private applyPalette(p: Palette): void {
    this.series.setPalette(p);
    this.indicators.setPalette(p);
    this.drawings.setPalette(p);
    // Per-bar colours (volume, flat bars) depend on the palette too.
    if (this.feed.bars.length) this.drawAll(true);
  }

  private step(): number {
    return intervalMs(this.cfg.interval);
  }

  private precision(): number {
    const last = this.feed.bars.last();
    return last ? pricePrecision(last.close) : 2;
  }

  /** The price the change % is measured against: the bar 24 h back (fetched again when old). */
  private reference(): number | undefined {
    this.feed.refreshDayAgo(this.step());
    return referencePrice(this.feed.bars.bars, this.step(), this.feed.dayAgo);
  }

  private showHealth(v: HealthView): void {
    this.root.dataset.health = v.health;
    this.header.setHealth(v.health, v.label, v.detail);
    this.banner.show(v);
  }

  private updateDataset(): void {
    const d = this.root.dataset;
    d.symbol = this.cfg.symbol;
    d.interval = this.cfg.interval;
    d.state = this.feed.state;
  }
}
