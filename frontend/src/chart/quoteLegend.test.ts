import { describe, expect, it } from 'vitest';
import type { Bar } from '../state/bars';
import type { LegendStudy } from './presentation';
import { OverlayStudy, legendStudies, quoteOf } from './quoteLegend';

const bar = (timestamp: number, close: number): Bar => ({ timestamp, open: close, high: close, low: close, close, volume: 1 });
const bars = [bar(0, 100), bar(60_000, 101), bar(120_000, 102)];

describe('quoteOf', () => {
  it('shows dashes before the first bar', () => {
    expect(quoteOf(undefined, 100, 2)).toEqual({ price: '—', change: '—', direction: 'flat' });
  });

  it('gives the last close and its change against the reference, with its direction', () => {
    expect(quoteOf(bar(0, 110), 100, 2)).toEqual({ price: '110.00', change: '+10.00%', direction: 'up' });
    expect(quoteOf(bar(0, 95), 100, 2)).toEqual({ price: '95.00', change: '-5.00%', direction: 'down' });
    expect(quoteOf(bar(0, 100), 100, 2).direction).toBe('flat');
  });

  it('has no change without a reference (too little history)', () => {
    expect(quoteOf(bar(0, 100.5), undefined, 4)).toEqual({ price: '100.5000', change: '—', direction: 'flat' });
  });
});

describe('legendStudies', () => {
  /** An overlay whose value at bar i is 10 + i. */
  const overlay = (kind: string, enabled: boolean): OverlayStudy => ({ enabled, kind, period: 20, lineColor: '#123', valueAt: (i) => 10 + i });
  const asked: Array<number | null> = [];
  const indicators = {
    studiesAt(time: number | null): LegendStudy[] {
      asked.push(time);
      return [{ label: 'RSI 14', color: '#abc', values: [55] }];
    },
  };

  it('gives each shown overlay its value at the bar, then the indicators at the bar time', () => {
    asked.length = 0;
    const out = legendStudies(bars[1], bars, [overlay('sma', true), overlay('ema', false)], indicators);
    expect(out).toEqual([
      { label: 'SMA 20', color: '#123', values: [11] },
      { label: 'RSI 14', color: '#abc', values: [55] },
    ]);
    expect(asked).toEqual([60_000]);
  });

  it('on the newest bar reads the last overlay value and the indicators newest point', () => {
    asked.length = 0;
    expect(legendStudies(bars[2], bars, [overlay('ema', true)], indicators)[0]).toEqual({ label: 'EMA 20', color: '#123', values: [12] });
    expect(asked).toEqual([null]);
  });
});
