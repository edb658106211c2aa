/**
 * A backtest's equity curve: a lightweight-charts line series with the trades
 * as markers (entries as arrows, exits as squares labelled with the trade's
 * return). Follows the page theme.
 */
import { ColorType, IChartApi, ISeriesApi, ISeriesMarkersPluginApi, LineSeries, Time, UTCTimestamp, createChart, createSeriesMarkers } from 'lightweight-charts';
import { markerStyle } from '../chart/presentation';
import type { Palette, ThemeState } from '../theme';
import { TradeRecord, tradesToMarkers } from './backtestModel';

export class EquityChart {
  private readonly chart: IChartApi;
  private readonly line: ISeriesApi<'Line'>;
  private readonly markers: ISeriesMarkersPluginApi<Time>;
  private points = 0;
  private readonly unsubscribeTheme: () => void;

  constructor(host: HTMLElement, theme: ThemeState) {
    this.chart = createChart(host, {
      autoSize: true,
      // lightweight-charts is Apache-2.0 and asks for its attribution: keep the logo on.
      layout: { attributionLogo: true },
      // A 1m backtest has thousands of points: let fitContent squeeze them all in.
      timeScale: { timeVisible: true, rightOffset: 3, minBarSpacing: 0.01 },
    });
    this.line = this.chart.addSeries(LineSeries, { lineWidth: 2, priceLineVisible: false, title: 'Equity' });
    this.markers = createSeriesMarkers(this.line, []);
    this.applyPalette(theme.palette);
    this.unsubscribeTheme = theme.onChange(() => this.applyPalette(theme.palette));
  }

  get pointCount(): number {
    return this.points;
  }

  show(equity: ReadonlyArray<{ time: number; equity: number }>, trades: readonly TradeRecord[]): void {
    // Times must be strictly increasing for the series; the engine gives one point per bar.
    const data = equity.map((p) => ({ time: (p.time / 1000) as UTCTimestamp, value: p.equity }));
    this.line.setData(data);
    this.points = data.length;
    const times = new Set(data.map((d) => d.time as number));
    this.markers.setMarkers(
      tradesToMarkers(trades)
        .filter((m) => times.has(m.time / 1000))
        .map((m) => ({ time: (m.time / 1000) as UTCTimestamp, ...markerStyle(m), text: m.text })),
    );
    this.chart.timeScale().fitContent();
    // The host may have just been unhidden: fit again once autoSize has measured it.
    requestAnimationFrame(() => requestAnimationFrame(() => this.chart.timeScale().fitContent()));
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
    this.line.applyOptions({ color: p.ema });
  }
}
