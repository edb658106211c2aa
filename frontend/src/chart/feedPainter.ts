/**
 * What a chart does with what its bar feed brings (the FeedView of barFeed.ts): the cheapest chart call
 * for each kind of change, then whatever sits on the bars (markers, drawings, indicator clipping, quote
 * and legend), and the card's `data-*` attributes the browser tests wait on. The pieces it moves are
 * the chart's (priceSeries.ts, chartMarkers.ts, …); this is only the order in which they are told.
 */
import type { ITimeScaleApi, LogicalRange, Time } from 'lightweight-charts';
import type { Bar, UpsertOutcome } from '../state/bars';
import type { ChartConfig } from '../state/layout';
import type { BarFeed, FeedView } from './barFeed';
import { INITIAL_BARS } from './barFeed';
import type { ChartDrawings } from './chartDrawings';
import type { IndicatorSet } from './chartIndicators';
import type { MarkerLayer } from './chartMarkers';
import type { ErrorNotice } from './chartNotices';
import type { HealthMonitor } from './healthMonitor';
import type { PriceSeries } from './priceSeries';
import type { QuoteLegend } from './quoteLegend';
import type { ViewportKeeper } from './viewportKeeper';

/** The chart's pieces, as far as the painter uses them. */
export interface PainterParts {
  /** The feed being painted (it is built with its painter, hence a getter). */
  feed(): Pick<BarFeed, 'bars' | 'state' | 'generation'>;
  config(): Pick<ChartConfig, 'symbol' | 'interval' | 'sma' | 'ema'>;
  timeScale: Pick<ITimeScaleApi<Time>, 'getVisibleLogicalRange' | 'setVisibleLogicalRange'>;
  series: Pick<PriceSeries, 'clear' | 'drawAll' | 'drawMerged' | 'setOverlay' | 'setPrecision'>;
  markers: Pick<MarkerLayer, 'render' | 'loadTrades'>;
  indicators: Pick<IndicatorSet, 'clip'>;
  drawings: Pick<ChartDrawings, 'render'>;
  quote: Pick<QuoteLegend, 'schedule' | 'renderQuote'>;
  viewport: Pick<ViewportKeeper, 'initialLimit' | 'placeAfterLoad'>;
  health: Pick<HealthMonitor, 'refresh' | 'updateReceived'>;
  notice: Pick<ErrorNotice, 'hide'>;
  /** The card's `data-*` attributes. */
  dataset: DOMStringMap;
  /** Decimals of the instrument's prices. */
  precision(): number;
  /** Counts applied live updates (the page's figure for the performance test). */
  countUpdate(): void;
}

export class FeedPainter implements FeedView {
  constructor(private readonly p: PainterParts) {}

  /** Pushes every bar to the chart; optionally keeps the view where it was. */
  drawAll(keepView = false): void {
    const ts = this.p.timeScale;
    const range = keepView ? ts.getVisibleLogicalRange() : null;
    const bars = this.p.feed().bars;
    this.p.series.drawAll(bars.bars);
    this.p.indicators.clip(bars.first()?.timestamp);
    if (range) ts.setVisibleLogicalRange(range);
  }

  cleared(): void {
    const { symbol, interval } = this.p.config();
    Object.assign(this.p.dataset, { symbol, interval, state: this.p.feed().state });
    this.p.notice.hide();
    this.p.series.clear();
  }

  initialLimit(): number {
    return this.p.viewport.initialLimit(INITIAL_BARS);
  }

  historyLoaded(): void {
    const { series, viewport, markers } = this.p;
    const feed = this.p.feed();
    const cfg = this.p.config();
    series.setPrecision(this.p.precision());
    this.drawAll();
    for (const k of ['sma', 'ema'] as const) if (cfg[k]) series.setOverlay(k, true, feed.bars.bars);
    viewport.placeAfterLoad();
    // The trades arrive later: drop them if the chart moved to another topic meanwhile.
    const gen = feed.generation;
    void markers.loadTrades(cfg.symbol, () => gen === this.p.feed().generation);
  }

  /** Makes the chart call that matches how the bar was merged, the cheapest one. */
  barMerged(bar: Bar, outcome: UpsertOutcome): void {
    if (outcome === 'ignored') return;
    if (outcome === 'insert') this.drawAll(true);
    else this.p.series.drawMerged(bar, outcome, this.p.feed().bars.bars);
    // A new bar may be the one a marker was waiting for.
    if (outcome === 'append') this.p.markers.render();
    this.p.quote.schedule();
  }

  redrawAll(): void {
    this.drawAll(true);
    this.p.markers.render();
    this.p.quote.schedule();
  }

  reindexed(delta: number, before: LogicalRange | null): void {
    this.drawAll();
    // The same bars stay in view: their indices moved by `delta`.
    if (before) this.p.timeScale.setVisibleLogicalRange({ from: before.from + delta, to: before.to + delta });
    this.p.markers.render();
    this.p.drawings.render();
  }

  wentLive(): void {
    this.p.quote.schedule();
    this.p.markers.render();
    this.p.drawings.render();
  }

  stateChanged(): void {
    this.p.dataset.state = this.p.feed().state;
    this.p.health.refresh();
  }

  referenceChanged(): void {
    this.p.quote.renderQuote();
  }

  loadingOlderChanged(on: boolean): void {
    if (on) this.p.dataset.loadingOlder = 'true';
    else delete this.p.dataset.loadingOlder;
  }

  visibleRange(): LogicalRange | null {
    return this.p.timeScale.getVisibleLogicalRange();
  }

  updateReceived(): void {
    this.p.countUpdate();
    this.p.health.updateReceived();
  }
}
