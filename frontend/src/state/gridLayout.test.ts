import { describe, expect, it } from 'vitest';
import { MIN_CHART_HEIGHT, chartHeight, gridColumns } from './gridLayout';

describe('grid layout', () => {
  it('1, 2, 2x2, 3x2 and 4x2 at 1400 px; one column on a phone', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => gridColumns(n, 1400))).toEqual([1, 2, 2, 2, 3, 3, 4, 4]);
    expect([1, 2, 4, 6, 8].map((n) => gridColumns(n, 1920))).toEqual([1, 2, 2, 3, 4]);
    expect(gridColumns(8, 390)).toBe(1);
    expect(gridColumns(8, 900)).toBe(2);
  });

  it('rows fill the height left, down to a minimum', () => {
    // 800 px left, 2 rows, 10 px gap, 50 px of card chrome: (800 - 10) / 2 - 50.
    expect(chartHeight(4, 2, 1400, 800, 50, 10)).toBe(345);
    expect(chartHeight(1, 1, 1400, 800, 50, 10)).toBe(750);
    expect(chartHeight(24, 3, 1400, 800, 50, 10)).toBe(MIN_CHART_HEIGHT);
    expect(chartHeight(2, 1, 390, 700, 50, 10)).toBeNull();
  });
});
