/** How a chart shows its legend and markers; kept apart from the data flow in chartView.ts. */
import type { SeriesMarker, SeriesMarkerBarPosition, SeriesMarkerShape, Time, UTCTimestamp } from 'lightweight-charts';
import { h } from '../dom';
import type { Bar, BarSeries } from '../state/bars';
import { Marker, markerKey } from '../state/markers';
import { formatPrice, formatVolume } from './format';

/** Fills the OHLCV legend for one bar (the one under the crosshair, or the last). */
/** One overlay or indicator in the legend: its name, colour and values at the shown bar. */
export interface LegendStudy {
  label: string;
  color: string;
  values: number[];
}

/** Values of a study in the legend: prices in the chart's precision, others (RSI, MACD) in up to 4 digits. */
export function formatStudyValue(v: number, precision: number): string {
  if (!Number.isFinite(v)) return '—';
  return Math.abs(v) >= 1000 || precision > 4 ? formatPrice(v, precision) : formatPrice(v, Math.min(Math.max(precision, 2), 4));
}

export function renderLegend(el: HTMLElement, title: string, bar: Bar | undefined, precision: number, studies: readonly LegendStudy[] = []): void {
  if (!bar) {
    el.textContent = title;
    return;
  }
  const f = (v: number) => formatPrice(v, precision);
  el.dataset.direction = bar.close >= bar.open ? 'up' : 'down';
  el.replaceChildren(
    h('span', { class: 'legend-title' }, title),
    ...([
      ['O', f(bar.open)],
      ['H', f(bar.high)],
      ['L', f(bar.low)],
      ['C', f(bar.close)],
      ['V', formatVolume(bar.volume)],
    ] as const).map(([k, v]) => h('span', { class: 'legend-item', 'data-field': k }, h('b', {}, k), ` ${v}`)),
    // Each overlay and indicator with its value(s) at this bar, in its line's colour.
    ...studies.map((s) =>
      h(
        'span',
        { class: 'legend-study', 'data-testid': 'legend-study', style: `color:${s.color}` },
        h('b', {}, s.label),
        ` ${s.values.map((v) => formatStudyValue(v, precision)).join(' / ')}`,
      ),
    ),
  );
}

/**
 * Trade and signal markers as lightweight-charts markers, each placed on the
 * bar that contains its time (the library needs an exact bar time). Markers
 * older than the loaded history are skipped until scroll-back loads them.
 */
export function toSeriesMarkers(markers: readonly Marker[], bars: BarSeries): SeriesMarker<Time>[] {
  const first = bars.first();
  if (!first) return [];
  const out: SeriesMarker<Time>[] = [];
  for (const m of markers) {
    const bar = bars.barContaining(m.time);
    if (!bar || m.time < first.timestamp) continue;
    out.push({ time: (bar.timestamp / 1000) as UTCTimestamp, ...markerStyle(m), text: m.text, id: markerKey(m) });
  }
  return out;
}

/**
 * Shape, side and colour of a marker. Trades: green / red arrows. Strategy
 * signals (`buy` / `sell`, from subscribe_signals): blue arrow up below the bar
 * / orange arrow down above it, so they read apart from trades. Position-style
 * signals (`long` / `short`) stay circles and exits squares.
 */
export function markerStyle(m: Pick<Marker, 'kind' | 'side'>): { position: SeriesMarkerBarPosition; shape: SeriesMarkerShape; color: string } {
  const bullish = m.side === 'buy' || m.side === 'long';
  if (m.side === 'exit') return { position: 'aboveBar', shape: 'square', color: m.kind === 'trade' ? '#787b86' : '#ff9800' };
  if (m.kind === 'trade') return { position: bullish ? 'belowBar' : 'aboveBar', shape: bullish ? 'arrowUp' : 'arrowDown', color: bullish ? '#26a69a' : '#ef5350' };
  const arrow = m.side === 'buy' || m.side === 'sell';
  return {
    position: bullish ? 'belowBar' : 'aboveBar',
    shape: arrow ? (bullish ? 'arrowUp' : 'arrowDown') : 'circle',
    color: bullish ? '#2962ff' : '#ff9800',
  };
}
