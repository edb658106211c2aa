import { describe, expect, it, vi } from 'vitest';
import { memoryStore } from '../state/storage';
import type { Bar } from '../state/bars';
import { Drawing, drawingsKey, saveDrawings } from './model';
import { SymbolDrawings, symbolDrawingsKey } from './symbolDrawings';
import { logicalToTime, logicalToX, timeToLogical, xToLogical } from './timeMap';

const trend = (id: string, t0 = 90_000, t1 = 330_000): Drawing => ({ id, kind: 'trend', points: [{ time: t0, price: 1 }, { time: t1, price: 2 }] });

describe('SymbolDrawings', () => {
  it('keeps drawings per symbol, shared by every chart of that symbol', () => {
    const store = memoryStore();
    const sd = new SymbolDrawings(store);
    const chartA = vi.fn();
    const chartB = vi.fn();
    const other = vi.fn();
    sd.watch('BTCUSDT', chartA);
    sd.watch('BTCUSDT', chartB);
    sd.watch('ETHUSDT', other);
    sd.set('BTCUSDT', [trend('d1')], chartA);
    // The chart that made the change already has it; the other chart of the symbol is told.
    expect(chartA).not.toHaveBeenCalled();
    expect(chartB).toHaveBeenCalledWith([trend('d1')]);
    expect(other).not.toHaveBeenCalled();
    expect(sd.get('btcusdt')).toEqual([trend('d1')]);
    expect(sd.get('ETHUSDT')).toEqual([]);
    sd.set('BTCUSDT', []);
    expect(store.getItem(symbolDrawingsKey('BTCUSDT'))).toBeNull();
  });

  it('stops telling a chart that no longer watches', () => {
    const sd = new SymbolDrawings(memoryStore());
    const fn = vi.fn();
    const off = sd.watch('BTCUSDT', fn);
    off();
    sd.set('BTCUSDT', [trend('d1')]);
    expect(fn).not.toHaveBeenCalled();
  });

  it('folds the per-chart drawings of older versions into the symbol, once', () => {
    const store = memoryStore();
    saveDrawings(store, 'c1', [trend('d1')]);
    saveDrawings(store, 'c2', [trend('d1'), trend('d2')]);
    const sd = new SymbolDrawings(store);
    sd.migrateChart('c1', 'BTCUSDT');
    sd.migrateChart('c2', 'BTCUSDT');
    sd.migrateChart('c1', 'BTCUSDT');
    expect(sd.get('BTCUSDT').map((d) => d.id)).toEqual(['d1', 'd2']);
    expect(store.getItem(drawingsKey('c1'))).toBeNull();
    expect(store.getItem(drawingsKey('c2'))).toBeNull();
  });
});

const bars = (from: number, step: number, n: number): Bar[] =>
  Array.from({ length: n }, (_, i) => ({ timestamp: from + i * step, open: 1, high: 1, low: 1, close: 1, volume: 0, trades: 1 }) as Bar);

describe('anchoring across intervals', () => {
  const M = 60_000;
  const m1 = bars(0, M, 600);
  const m5 = bars(0, 5 * M, 120);
  const h1 = bars(0, 60 * M, 10);

  it('a point between 5m bars sits between them in proportion to its time, not on a bar', () => {
    const t = 7 * M + 30_000; // 00:07:30: half way from the 00:05 bar to the 00:10 one
    expect(timeToLogical(m1, M, t)).toBe(7.5);
    expect(timeToLogical(m5, 5 * M, t)).toBe(1.5);
    expect(timeToLogical(h1, 60 * M, t)).toBe(0.125);
  });

  it('a point past the last bar extrapolates by the interval', () => {
    const last5 = m5[m5.length - 1].timestamp;
    expect(timeToLogical(m5, 5 * M, last5 + 12.5 * M)).toBe(m5.length - 1 + 2.5);
    expect(timeToLogical(h1, 60 * M, h1[9].timestamp + 90 * M)).toBe(10.5);
  });

  it('time -> position -> time is exact on every interval (1m -> 5m -> 1h -> 1m)', () => {
    for (const t of [0, 61_234, 7 * M + 30_000, 599 * M, 700 * M + 17]) {
      let back = t;
      for (const [b, step] of [[m1, M], [m5, 5 * M], [h1, 60 * M], [m1, M]] as const) {
        back = logicalToTime(b, step, timeToLogical(b, step, back)!)!;
      }
      expect(back).toBeCloseTo(t, 6);
    }
  });
});

describe('pixels of fractional positions', () => {
  // What lightweight-charts does: whole indexes only, 0 (the left edge) for anything else.
  const indexToX = (i: number) => (Number.isInteger(i) ? 100 + i * 8 : 0);
  const wholeIndexAt = (x: number) => Math.ceil((x - 100) / 8);

  it('places a point between two bars between their pixels, not at the left edge', () => {
    expect(logicalToX(7.5, indexToX)).toBe(160);
    expect(logicalToX(7, indexToX)).toBe(156);
    expect(logicalToX(-2.25, indexToX)).toBe(82);
  });

  it('reads a click between two bars as a fractional index, and back to the same pixel', () => {
    expect(xToLogical(161, wholeIndexAt, indexToX)).toBeCloseTo(7.625, 9);
    for (const x of [100, 133.3, 161, 250]) expect(logicalToX(xToLogical(x, wholeIndexAt, indexToX)!, indexToX)).toBeCloseTo(x, 9);
  });
});
