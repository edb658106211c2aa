/**
 * A backtest's trades on the price: the symbol's candles over the tested range, each trade's entry
 * (arrow) and exit (square, with its return) as markers. `focus` scrolls to one trade (the trade list's
 * rows call it). Follows the page theme.
 */
import {
  CandlestickSeries,
  ColorType,
  IChartApi,
  ISeriesApi,
  ISeriesMarkersPluginApi,
  Time,
  UTCTimestamp,
  createChart,
  createSeriesMarkers,
} from 'lightweight-charts';
import { markerStyle } from '../chart/presentation';
import { api } from '../net/api';
import { Bar, isBar, lowerBound } from '../state/bars';
import { intervalMs, isInterval } from '../state/intervals';
import type { Palette, ThemeState } from '../theme';
import { TradeRecord, tradesToMarkers } from './backtestModel';

/** Most bars shown (the server's history limit per request). */
export const MAX_PRICE_BARS = 5000;
/** Bars shown either side of a focused trade. */
export const FOCUS_MARGIN_BARS = 20;

/** The visible range (s) that shows a trade with `margin` bars either side. */
export function focusRange(trade: Pick<TradeRecord, 'entry_time' | 'exit_time'>, stepMs: number, margin = FOCUS_MARGIN_BARS) {
  return { from: (trade.entry_time - margin * stepMs) / 1000, to: (trade.exit_time + margin * stepMs) / 1000 };
}

/** Markers on the bars that hold them (a marker between bars goes to the bar it falls in). */
export function markersOnBars(trades: readonly TradeRecord[], bars: readonly Bar[]) {
  const out = [];
  for (const m of tradesToMarkers(trades)) {
    const i = lowerBound(bars, m.time);
    const bar = bars[i]?.timestamp === m.time ? bars[i] : bars[i - 1];
    if (!bar) continue;
    out.push({ time: (bar.timestamp / 1000) as UTCTimestamp, ...markerStyle(m), text: m.text });
  }
  return out;
}

export class BacktestPriceChart {
  private readonly chart: IChartApi;
  private readonly candles: ISeriesApi<'Candlestick'>;
  private readonly markers: ISeriesMarkersPluginApi<Time>;
  private readonly unsubscribeTheme: () => void;
  private bars: Bar[] = [];
  private stepMs = 60_000;
  private gen = 0;
  /** For the browser tests: what is shown. */
  info = { symbol: '', interval: '', bars: 0, markers: 0, focused: null as number | null };

  constructor(host: HTMLElement, theme: ThemeState) {
    this.chart = createChart(host, {
      autoSize: true,
      layout: { attributionLogo: true },
      timeScale: { timeVisible: true, rightOffset: 3, minBarSpacing: 0.01 },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, { priceLineVisible: false });
    this.markers = createSeriesMarkers(this.candles, []);
    this.applyPalette(theme.palette);
    this.unsubscribeTheme = theme.onChange(() => this.applyPalette(theme.palette));
  }

  /** Loads the bars of the tested range and draws the trades on them. */
  async show(symbol: string, interval: string, range: { start?: number; end?: number }, trades: readonly TradeRecord[]): Promise<void> {
    const gen = ++this.gen;
    if (!isInterval(interval)) return;
    this.stepMs = intervalMs(interval);
    // The newest MAX_PRICE_BARS of the range: the end is exclusive, one step past the last trade at least.
    const lastTrade = trades.length ? trades[trades.length - 1].exit_time + this.stepMs : undefined;
    const end = range.end ?? lastTrade;
    let reply: { data?: unknown[] };
    try {
      reply = await api.historical(symbol, interval, { start: range.start, end, limit: MAX_PRICE_BARS });
    } catch {
      reply = { data: [] };
    }
    if (gen !== this.gen) return;
    this.bars = (reply.data ?? []).filter(isBar);
    this.candles.setData(this.bars.map((b) => ({ time: (b.timestamp / 1000) as UTCTimestamp, open: b.open, high: b.high, low: b.low, close: b.close })));
    const markers = markersOnBars(trades, this.bars);
    this.markers.setMarkers(markers);
    this.info = { symbol, interval, bars: this.bars.length, markers: markers.length, focused: null };
    this.chart.timeScale().fitContent();
    requestAnimationFrame(() => requestAnimationFrame(() => this.chart.timeScale().fitContent()));
  }

  /** Scrolls (and zooms) to one trade. */
  focus(trade: TradeRecord, index: number): void {
    this.chart.timeScale().setVisibleRange(focusRange(trade, this.stepMs) as { from: Time; to: Time });
    this.info = { ...this.info, focused: index };
  }

  visibleRange(): { from: number; to: number } | null {
    const r = this.chart.timeScale().getVisibleRange();
    return r ? { from: Number(r.from), to: Number(r.to) } : null;
  }

  destroy(): void {
    this.unsubscribeTheme();
    this.chart.remove();
  }

  private applyPalette(p: Palette): void {
    this.chart.applyOptions({
      layout: { background: { type: ColorType.Solid, color: p.background }, textColor: p.text },
      grid: { vertLines: { color: p.grid }, horzLines: { color: p.grid } },
      rightPriceScale: { borderColor: p.border },
      timeScale: { borderColor: p.border },
    });
    this.candles.applyOptions({ upColor: p.up, downColor: p.down, wickUpColor: p.up, wickDownColor: p.down, borderVisible: false });
  }
}
