/**
 * One chart card: candlesticks + volume pane, live bars from the shared connection, history loading when
 * scrolling left, gap filling after a reconnect, overlays (page SMA/EMA and server indicators), markers
 * (the hook's and the strategy signals of its topic) and drawings.
 *
 * This class builds the pieces, wires them to each other and keeps the chart's layout entry
 * (ChartConfig). Each piece is its own module: the data flow barFeed.ts, what is drawn for each of its
 * changes feedPainter.ts, the bars priceSeries.ts, markers chartMarkers.ts, server indicators
 * chartIndicators.ts, quote and legend quoteLegend.ts, the stored zoom and scroll viewportKeeper.ts,
 * health healthMonitor.ts and chartNotices.ts, drawings chartDrawings.ts, the DOM chartCard.ts. The
 * debug hooks of the browser-test build read its parts through ../testBuild.ts; production has none.
 */
import type { IChartApi, LogicalRange } from 'lightweight-charts';
import { BarSeries, referencePrice } from '../state/bars';
import { Interval, intervalMs } from '../state/intervals';
import type { ChartConfig } from '../state/layout';
import type { Marker } from '../state/markers';
import { TEST_BUILD, exposeForTests } from '../testBuild';
import type { Palette } from '../theme';
import { nameAttributionLogo } from './attribution';
import { BarFeed } from './barFeed';
import { buildChartCard } from './chartCard';
import type { ChartDeps } from './chartDeps';
import { ChartDrawings } from './chartDrawings';
import { ChartHeader } from './chartHeader';
import type { HealthView } from './chartHealth';
import { IndicatorSet } from './chartIndicators';
import { MarkerLayer } from './chartMarkers';
import { ErrorNotice, HealthBanner } from './chartNotices';
import { FeedPainter } from './feedPainter';
import { formatPrice, pricePrecision } from './format';
import { HealthMonitor } from './healthMonitor';
import { IndicatorMenu } from './indicatorMenu';
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

export class ChartView {
  readonly root: HTMLElement;
  private cfg: ChartConfig;
  private readonly header: ChartHeader;
  private readonly notice = new ErrorNotice();
  private readonly indicatorMenu: IndicatorMenu;
  private readonly series: PriceSeries;
  private readonly chart: IChartApi;
  private readonly markers: MarkerLayer;
  private readonly indicators: IndicatorSet;
  private readonly drawings: ChartDrawings;
  private readonly quote: QuoteLegend;
  private readonly viewport: ViewportKeeper;
  private readonly healthMonitor: HealthMonitor;
  private readonly painter: FeedPainter;
  private readonly feed: BarFeed;
  private readonly cleanups: Array<() => void> = [];

  constructor(
    cfg: ChartConfig,
    private readonly deps: ChartDeps,
  ) {
    this.cfg = { ...cfg };
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
    this.indicatorMenu = new IndicatorMenu(deps.catalog, {
      onAdd: (name, params) => this.indicators.add(name, params),
      onRemove: (id) => this.indicators.remove(id),
    });
    const banner = new HealthBanner(() => this.retry());
    const card = buildChartCard(cfg.id, {
      header: this.header,
      menu: this.indicatorMenu,
      notice: this.notice,
      banner,
      onBackToLive: () => this.viewport.backToLive(),
    });
    this.root = card.root;
    const palette = deps.theme.palette;
    this.series = new PriceSeries(card.host, cfg.interval, cfg.view, palette);
    this.chart = this.series.chart;
    this.cleanups.push(nameAttributionLogo(card.host, cfg.id));

    // The feed's bars, shared by the pieces that draw them (the feed itself is built last, with its painter).
    const bars = new BarSeries();
    this.markers = new MarkerLayer(this.series.candles, bars, cfg.signals !== false);
    this.indicators = new IndicatorSet({
      chart: this.chart,
      topic: () => this.cfg,
      firstBarTime: () => bars.first()?.timestamp,
      onChange: (indicators) => this.updateConfig({ indicators }),
      streams: deps.streams,
      menu: this.indicatorMenu,
      host: card.host,
      palette: () => deps.theme.palette,
      onRefused: (ind, err) => this.notice.show(`${ind.label}: ${err.message}`),
    });
    this.drawings = new ChartDrawings(
      {
        host: card.host,
        chart: this.chart,
        candles: this.series.candles,
        bars: () => bars.bars,
        stepMs: () => this.step(),
        formatPrice: (p) => formatPrice(p, this.precision()),
        onUiChange: (tool, selected) => this.header.setDrawingUi(tool, selected),
      },
      deps.drawings,
      cfg.symbol,
      palette,
    );
    this.quote = new QuoteLegend(card.legend, {
      bars,
      reference: () => this.reference(),
      precision: () => this.precision(),
      title: () => `${this.cfg.symbol} · ${this.cfg.interval}`,
      studiesAt: (bar) => legendStudies(bar, bars.bars, Object.values(this.series.overlays), this.indicators),
      setQuote: (price, change, direction) => this.header.setQuote(price, change, direction),
    });
    this.viewport = new ViewportKeeper(
      {
        timeScale: this.chart.timeScale(),
        bars: () => bars.bars,
        stepMs: () => this.step(),
        isLive: () => this.feed.state === 'live',
        stored: () => this.cfg.view,
        save: (view) => this.updateConfig({ view }),
        scrolledBack: (back) => (card.liveButton.hidden = !back),
      },
      cfg.view,
    );
    this.healthMonitor = new HealthMonitor({
      feed: () => this.feed,
      conn: deps.conn,
      topic: () => this.cfg,
      stepMs: () => this.step(),
      marketState: deps.marketState,
      show: (v) => {
        this.root.dataset.health = v.health;
        this.header.setHealth(v.health, v.label, v.detail);
        banner.show(v);
      },
      counted: () => deps.onHealthChange(),
    });
    this.painter = new FeedPainter({
      feed: () => this.feed,
      config: () => this.cfg,
      timeScale: this.chart.timeScale(),
      series: this.series,
      markers: this.markers,
      indicators: this.indicators,
      drawings: this.drawings,
      quote: this.quote,
      viewport: this.viewport,
      health: this.healthMonitor,
      notice: this.notice,
      dataset: this.root.dataset,
      precision: () => this.precision(),
      countUpdate: () => deps.countUpdate(),
    });
    this.feed = new BarFeed(deps.conn, this.painter, bars);
    Object.assign(this.root.dataset, { symbol: cfg.symbol, interval: cfg.interval, state: this.feed.state });

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
        return { cfg: this.config, chart, feed, series, health: this.health, drawings, markers, indicators, stepMs: this.step() };
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

  /** Re-evaluates the chart's health (the dashboard calls it once a second: silence turns a chart stale). */
  refreshHealth(now = performance.now()): void {
    this.healthMonitor.refresh(now);
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

  // ---- the layout entry: what the trader changes -----------------------------

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
    // The new topic first: the drawings re-project with its interval.
    this.cfg = { ...this.cfg, symbol, interval };
    this.markers.clearTrades();
    this.header.setSymbol(symbol);
    this.drawings.setSymbol(symbol);
    this.series.setInterval(interval);
    this.deps.onConfigChange(this.config);
    this.start();
  }

  /** Strategy signal markers on or off for this chart (kept in the layout; on by default). */
  private toggleSignals(): void {
    const shown = this.cfg.signals === false;
    this.header.setSignalsShown(shown);
    this.markers.setSignalsShown(shown);
    this.updateConfig({ signals: shown ? undefined : false });
  }

  private toggleOverlay(kind: OverlayKind): void {
    const on = !this.cfg[kind];
    this.series.setOverlay(kind, on, this.feed.bars.bars);
    this.header.setToggle(kind, on);
    this.updateConfig({ [kind]: on });
  }

  /** Changes the layout entry and tells the dashboard, which stores it. */
  private updateConfig(change: Partial<ChartConfig>): void {
    this.cfg = { ...this.cfg, ...change };
    this.deps.onConfigChange(this.config);
  }

  // ---- data flow -------------------------------------------------------------

  /** (Re)starts the data flow, the signal stream and the server indicators for the current topic. */
  private start(): void {
    const { symbol, interval } = this.cfg;
    this.feed.start(symbol, interval);
    this.markers.openSignals(this.deps.streams, symbol, interval);
    this.indicators.open(this.cfg.indicators ?? []);
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

  private applyPalette(p: Palette): void {
    this.series.setPalette(p);
    this.indicators.setPalette(p);
    this.drawings.setPalette(p);
    // Per-bar colours (volume, flat bars) depend on the palette too.
    if (this.feed.bars.length) this.painter.drawAll(true);
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
}
