import { describe, expect, it } from 'vitest';
import { memoryStore } from '../state/storage';
import { Drawing, drawingsKey, loadDrawings, parseDrawings, saveDrawings } from './model';
import { logicalToTime, timeToLogical } from './timeMap';

const bars = [0, 60_000, 120_000, 240_000].map((timestamp) => ({ timestamp, open: 1, high: 1, low: 1, close: 1, volume: 0 }));

describe('drawing persistence', () => {
  const drawings: Drawing[] = [
    { id: 'a', kind: 'trend', points: [{ time: 1, price: 2 }, { time: 3, price: 4 }] },
    { id: 'b', kind: 'hline', points: [{ time: 1, price: 5 }] },
  ];

  it('round-trips through the store, per chart', () => {
    const store = memoryStore();
    saveDrawings(store, 'c1', drawings);
    expect(loadDrawings(store, 'c1')).toEqual(drawings);
    expect(loadDrawings(store, 'c2')).toEqual([]);
    saveDrawings(store, 'c1', []);
    expect(store.getItem(drawingsKey('c1'))).toBeNull();
  });

  it('drops malformed entries instead of failing', () => {
    const raw = JSON.stringify([
      drawings[0],
      { id: 'a', kind: 'hline', points: [{ time: 1, price: 1 }] }, // duplicate id
      { id: 'c', kind: 'circle', points: [] },
      { id: 'd', kind: 'trend', points: [{ time: 1, price: 2 }] }, // too few anchors
      { id: 'e', kind: 'rect', points: [{ time: 1, price: 'x' }, { time: 2, price: 3 }] },
      null,
      drawings[1],
    ]);
    expect(parseDrawings(raw)).toEqual(drawings);
    expect(parseDrawings('{not json')).toEqual([]);
    expect(parseDrawings('{"a":1}')).toEqual([]);
    expect(parseDrawings(null)).toEqual([]);
  });
});

describe('time <-> logical index', () => {
  it('maps bar times to their index and interpolates inside gaps', () => {
    expect(timeToLogical(bars, 60_000, 0)).toBe(0);
    expect(timeToLogical(bars, 60_000, 120_000)).toBe(2);
    expect(timeToLogical(bars, 60_000, 90_000)).toBe(1.5);
    expect(timeToLogical(bars, 60_000, 180_000)).toBe(2.5); // inside the 2-minute gap
  });

  it('extrapolates past both ends with the interval', () => {
    expect(timeToLogical(bars, 60_000, 360_000)).toBe(5);
    expect(timeToLogical(bars, 60_000, -120_000)).toBe(-2);
    expect(logicalToTime(bars, 60_000, 5)).toBe(360_000);
    expect(logicalToTime(bars, 60_000, -2)).toBe(-120_000);
  });

  it('is its own inverse', () => {
    for (const t of [-60_000, 0, 30_000, 120_000, 200_000, 240_000, 500_000]) {
      expect(logicalToTime(bars, 60_000, timeToLogical(bars, 60_000, t)!)).toBeCloseTo(t, 6);
    }
  });

  it('returns null without bars', () => {
    expect(timeToLogical([], 60_000, 0)).toBeNull();
    expect(logicalToTime([], 60_000, 0)).toBeNull();
  });
});
