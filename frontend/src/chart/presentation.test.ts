import { describe, expect, it } from 'vitest';
import { BarSeries } from '../state/bars';
import { toSeriesMarkers } from './presentation';

describe('toSeriesMarkers', () => {
  const bars = new BarSeries();
  bars.reset([0, 60_000, 120_000].map((timestamp) => ({ timestamp, open: 1, high: 1, low: 1, close: 1, volume: 1 })));

  it('puts each marker on the bar containing its time, styled by kind and side', () => {
    const out = toSeriesMarkers(
      [
        { time: 61_000, kind: 'trade', side: 'buy', text: 'BUY' },
        { time: 130_000, kind: 'signal', side: 'short' },
        { time: -5, kind: 'trade', side: 'sell' }, // before the loaded history
      ],
      bars,
    );
    expect(out).toHaveLength(2);
    expect(out[0]).toMatchObject({ time: 60, position: 'belowBar', shape: 'arrowUp', text: 'BUY' });
    expect(out[1]).toMatchObject({ time: 120, position: 'aboveBar', shape: 'circle' });
  });

  it('returns nothing without bars', () => {
    expect(toSeriesMarkers([{ time: 1, kind: 'trade', side: 'buy' }], new BarSeries())).toEqual([]);
  });
});
