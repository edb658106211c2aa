import { describe, expect, it } from 'vitest';
import type { SeriesMarker, Time } from 'lightweight-charts';
import type { Marker } from '../state/markers';
import { markersToDraw, splitLabels } from './chartMarkers';

const trade = (time: number): Marker => ({ time, kind: 'trade', side: 'buy' });
const signal = (time: number): Marker => ({ time, kind: 'signal', side: 'sell' });

describe('markersToDraw', () => {
  it('draws trades and signals together in time order', () => {
    const all = markersToDraw([trade(10), trade(30)], [signal(20), signal(5)], true);
    expect(all.map((m) => [m.time, m.kind])).toEqual([
      [5, 'signal'],
      [10, 'trade'],
      [20, 'signal'],
      [30, 'trade'],
    ]);
  });

  it('leaves hidden signals out, trades stay', () => {
    expect(markersToDraw([trade(10)], [signal(20)], false).map((m) => m.kind)).toEqual(['trade']);
  });

  it('does not copy the trades when there are no signals to add', () => {
    const trades = [trade(10)];
    expect(markersToDraw(trades, [], true)).toBe(trades);
  });
});

describe('splitLabels', () => {
  it('takes the text off the shapes and places each label on the side of its shape', () => {
    const series: SeriesMarker<Time>[] = [
      { time: 60 as Time, position: 'aboveBar', shape: 'arrowDown', color: '#ef5350', text: 'SELL' },
      { time: 120 as Time, position: 'belowBar', shape: 'arrowUp', color: '#26a69a', text: 'BUY' },
      { time: 180 as Time, position: 'belowBar', shape: 'circle', color: '#2962ff' },
    ];
    const { shapes, labels } = splitLabels(series);
    expect(shapes).toHaveLength(3);
    expect(shapes.every((s) => !('text' in s))).toBe(true);
    expect(labels).toEqual([
      { time: 60, text: 'SELL', above: true, color: '#ef5350' },
      { time: 120, text: 'BUY', above: false, color: '#26a69a' },
    ]);
  });
});
