/** How a chart shows its legend and markers; kept apart from the data flow in chartView.ts. */
import type { SeriesMarker, Time, UTCTimestamp } from 'lightweight-charts';
import { h } from '../dom';
import type { Bar, BarSeries } from '../state/bars';
import type { Marker } from '../state/markers';
import { formatPrice, formatVolume } from './format';

/** Fills the OHLCV legend for one bar (the one under the crosshair, or the last). */
export function renderLegend(el: HTMLElement, title: string, bar: Bar | undefined, precision: number): void {
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
    const bullish = m.side === 'buy' || m.side === 'long';
    out.push({
      time: (bar.timestamp / 1000) as UTCTimestamp,
      position: m.side === 'exit' ? 'aboveBar' : bullish ? 'belowBar' : 'aboveBar',
      shape: m.kind === 'trade' ? (bullish ? 'arrowUp' : 'arrowDown') : m.side === 'exit' ? 'square' : 'circle',
      color: m.kind === 'trade' ? (bullish ? '#26a69a' : '#ef5350') : bullish ? '#2962ff' : '#ff9800',
      text: m.text,
      id: `${m.kind}-${m.time}-${m.side}`,
    });
  }
  return out;
}
