/**
 * The bars as lightweight-charts draws them: candlesticks, the volume pane below them and the SMA/EMA
 * overlays. Each change of the bar series is passed on with the cheapest call that shows it (an update of
 * the last point for a tick, a full setData only when bars were inserted or the colours changed).
 */
import {
  CandlestickData,
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramData,
  HistogramSeries,
  IChartApi,
  ISeriesApi,
  Time,
  UTCTimestamp,
  createChart,
} from 'lightweight-charts';
import type { Bar, UpsertOutcome } from '../state/bars';
import type { Interval } from '../state/intervals';
import type { ChartViewport } from '../state/layout';
import type { Palette } from '../theme';
import { Overlay } from './overlays';

export type OverlayKind = 'sma' | 'ema';
/** How a merged bar reaches the chart without a full redraw ('insert' redraws, 'ignored' draws nothing). */
export type InPlaceOutcome = Extract<UpsertOutcome, 'append' | 'replace-last' | 'replace'>;

/** Height share of the volume pane, against the price pane's default 1. */
const VOLUME_STRETCH = 0.3;

/** A bar as a candlestick; a flat bar (no trade in the bucket) is grey, so it does not read as a real move. */
export function toCandle(b: Bar, p: Palette): CandlestickData<Time> {
  const time = (b.timestamp / 1000) as UTCTimestamp;
  if (b.trades === 0) {
    const c = p.flat;
    return { time, open: b.open, high: b.high, low: b.low, close: b.close, color: c, wickColor: c, borderColor: c };
  }
  return { time, open: b.open, high: b.high, low: b.low, close: b.close };
}

/** A bar's volume, coloured by the bar's direction. */
export function toVolume(b: Bar, p: Palette): HistogramData<Time> {
  return { time: (b.timestamp / 1000) as UTCTimestamp, value: b.volume, color: b.close >= b.open ? p.volumeUp : p.volumeDown };
}

export class PriceSeries {
  readonly chart: IChartApi;
  readonly candles: ISeriesApi<'Candlestick'>;
  private readonly volume: ISeriesApi<'Histogram'>;
  readonly overlays: Record<OverlayKind, Overlay>;

  /** A chart in `host`, zoomed as the stored viewport says (`view`), with seconds shown on second intervals. */
  constructor(host: HTMLElement, interval: Interval, view: ChartViewport | undefined, private palette: Palette) {
    const chart = createChart(host, {
      autoSize: true,
      // lightweight-charts is Apache-2.0 and asks for its attribution: keep the logo on.
      layout: { attributionLogo: true },
      crosshair: { mode: CrosshairMode.Normal },
      timeScale: { timeVisible: true, secondsVisible: interval.endsWith('s'), rightOffset: 5, ...(view ? { barSpacing: view.barSpacing } : {}) },
    });
    this.chart = chart;
    this.candles = chart.addSeries(CandlestickSeries, { borderVisible: false });
    this.volume = chart.addSeries(HistogramSeries, { priceFormat: { type: 'volume' }, priceLineVisible: false, lastValueVisible: false }, 1);
    chart.panes()[1]?.setStretchFactor(VOLUME_STRETCH);
    this.overlays = { sma: new Overlay(chart, 'sma', palette.sma), ema: new Overlay(chart, 'ema', palette.ema) };
  }

  /** Nothing drawn (a new topic): the overlays go too, and come back with the next history. */
  clear(): void {
    this.candles.setData([]);
    this.volume.setData([]);
    for (const o of Object.values(this.overlays)) o.disable();
  }

  drawAll(bars: readonly Bar[]): void {
    this.candles.setData(bars.map((b) => toCandle(b, this.palette)));
    this.volume.setData(bars.map((b) => toVolume(b, this.palette)));
    for (const o of Object.values(this.overlays)) o.reset(bars);
  }

  /** One merged bar, `bars` being the series after the merge. */
  drawMerged(bar: Bar, outcome: InPlaceOutcome, bars: readonly Bar[]): void {
    if (outcome === 'replace') {
      // A correction of a closed bar: lightweight-charts v5 allows historical updates.
      this.candles.update(toCandle(bar, this.palette), true);
      this.volume.update(toVolume(bar, this.palette), true);
      for (const o of Object.values(this.overlays)) o.reset(bars);
      return;
    }
    this.candles.update(toCandle(bar, this.palette));
    this.volume.update(toVolume(bar, this.palette));
    for (const o of Object.values(this.overlays)) o.updateLast(bars, outcome === 'append');
  }

  /** A new interval: seconds on the time axis for second bars only. */
  setInterval(interval: Interval): void {
    this.chart.applyOptions({ timeScale: { secondsVisible: interval.endsWith('s') } });
  }

  setOverlay(kind: OverlayKind, on: boolean, bars: readonly Bar[]): void {
    if (on) this.overlays[kind].enable(bars);
    else this.overlays[kind].disable();
  }

  /** Price axis in the instrument's precision (known once the first bars are in). */
  setPrecision(precision: number): void {
    this.candles.applyOptions({ priceFormat: { type: 'price', precision, minMove: 10 ** -precision } });
  }

  /**
   * Chart, series and overlay colours. Per-bar colours (volume, flat bars) depend on the palette too:
   * the caller redraws the bars after this.
   */
  setPalette(p: Palette): void {
    this.palette = p;
    // Theme colours on top of the options the constructor gave.
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
  }
}
