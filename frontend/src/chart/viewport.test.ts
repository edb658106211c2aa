import { describe, expect, it } from 'vitest';
import type { Bar } from '../state/bars';
import { barsToLoad, captureViewport, isScrolledBack, restoredScrollPosition } from './viewport';

const M = 60_000;
const bars: Bar[] = Array.from({ length: 300 }, (_, i) => ({ timestamp: i * M, open: 1, high: 1, low: 1, close: 1, volume: 0, trades: 1 }) as Bar);

describe('viewport', () => {
  it('at the live edge keeps only the zoom', () => {
    expect(captureViewport(bars, M, 8, 5, 304)).toEqual({ barSpacing: 8 });
    expect(isScrolledBack(0)).toBe(false);
    expect(isScrolledBack(-3)).toBe(true);
  });

  it('scrolled back keeps the time at the right edge, and restores it after more bars came', () => {
    const view = captureViewport(bars, M, 10, -50, 249.5);
    expect(view).toEqual({ barSpacing: 10, rightTime: 249.5 * M });
    // After a reload, 20 more bars exist and the first loaded one is older: same time, same place.
    const later: Bar[] = Array.from({ length: 400 }, (_, i) => ({ ...bars[0], timestamp: (i - 80) * M }));
    // Right edge at index 329.5 of 400 bars: 69.5 bars left of the newest.
    expect(restoredScrollPosition(view, later, M)).toBe(329.5 - 399);
    // Not among the loaded bars: not restored.
    expect(restoredScrollPosition({ barSpacing: 10, rightTime: -100 * M }, later, M)).toBeNull();
    expect(restoredScrollPosition({ barSpacing: 10 }, later, M)).toBeNull();
  });

  it('loads enough bars to reach the stored right edge, within a cap', () => {
    expect(barsToLoad(undefined, 1000 * M, M, 100, 300)).toBe(300);
    expect(barsToLoad({ barSpacing: 6, rightTime: 900 * M }, 1000 * M, M, 100, 300)).toBe(300);
    expect(barsToLoad({ barSpacing: 6, rightTime: 500 * M }, 1000 * M, M, 100, 300)).toBe(650);
    expect(barsToLoad({ barSpacing: 6, rightTime: 0 }, 1e9 * M, M, 100, 300)).toBe(300);
    expect(barsToLoad({ barSpacing: 6, rightTime: 1 }, 1e9 * M, M, 100, 300)).toBe(2000);
  });
});
