import { describe, expect, it } from 'vitest';
import { ScreenDrawing, boxOf, distanceToSegment, fibScreenLevels, hitTestAll, hitTestDrawing } from './geometry';
import { FIB_LEVELS, fibLevels, moveAnchor, translateDrawing } from './model';

const trend: ScreenDrawing = { id: 't', kind: 'trend', points: [{ x: 0, y: 0 }, { x: 100, y: 100 }], prices: [10, 20] };
const hline: ScreenDrawing = { id: 'h', kind: 'hline', points: [{ x: 0, y: 50 }], prices: [15] };
const rect: ScreenDrawing = { id: 'r', kind: 'rect', points: [{ x: 200, y: 200 }, { x: 100, y: 100 }], prices: [1, 2] };
const fib: ScreenDrawing = { id: 'f', kind: 'fib', points: [{ x: 0, y: 200 }, { x: 100, y: 0 }], prices: [100, 200] };

describe('distanceToSegment', () => {
  it('measures to the closest point, clamped to the ends', () => {
    expect(distanceToSegment({ x: 50, y: 0 }, { x: 0, y: 0 }, { x: 100, y: 0 })).toBe(0);
    expect(distanceToSegment({ x: 50, y: 7 }, { x: 0, y: 0 }, { x: 100, y: 0 })).toBe(7);
    expect(distanceToSegment({ x: 103, y: 4 }, { x: 0, y: 0 }, { x: 100, y: 0 })).toBe(5);
    expect(distanceToSegment({ x: 3, y: 4 }, { x: 0, y: 0 }, { x: 0, y: 0 })).toBe(5);
  });
});

describe('hit tests', () => {
  it('trend line: body near the segment, handles at the ends, nothing beyond', () => {
    expect(hitTestDrawing(trend, { x: 50, y: 53 }, 500)).toMatchObject({ part: 'body' });
    expect(hitTestDrawing(trend, { x: 101, y: 99 }, 500)).toMatchObject({ part: 'anchor', index: 1 });
    expect(hitTestDrawing(trend, { x: 150, y: 150 }, 500)).toBeNull();
    expect(hitTestDrawing(trend, { x: 50, y: 80 }, 500)).toBeNull();
  });

  it('horizontal line spans the pane and has no handles', () => {
    expect(hitTestDrawing(hline, { x: 400, y: 52 }, 500)).toMatchObject({ part: 'body' });
    expect(hitTestDrawing(hline, { x: 0, y: 50 }, 500)).toMatchObject({ part: 'body' });
    expect(hitTestDrawing(hline, { x: 400, y: 60 }, 500)).toBeNull();
    expect(hitTestDrawing(hline, { x: 600, y: 50 }, 500)).toBeNull();
  });

  it('rectangle: grabbed inside or on an edge, corners are handles', () => {
    expect(boxOf(rect.points[0], rect.points[1])).toEqual({ left: 100, right: 200, top: 100, bottom: 200 });
    expect(hitTestDrawing(rect, { x: 150, y: 150 }, 500)).toMatchObject({ part: 'body' });
    expect(hitTestDrawing(rect, { x: 204, y: 150 }, 500)).toMatchObject({ part: 'body' });
    expect(hitTestDrawing(rect, { x: 100, y: 101 }, 500)).toMatchObject({ part: 'anchor', index: 1 });
    expect(hitTestDrawing(rect, { x: 250, y: 150 }, 500)).toBeNull();
  });

  it('fibonacci: every level line is grabbable, gaps between are not', () => {
    const ys = fibScreenLevels(fib).map((l) => l.y);
    // Level 0 at the end anchor (y=0), level 1 at the start anchor (y=200).
    expect(ys[0]).toBe(0);
    expect(ys[ys.length - 1]).toBe(200);
    expect(hitTestDrawing(fib, { x: 60, y: 100 + 1 }, 500)).toMatchObject({ part: 'body' }); // 0.5
    expect(hitTestDrawing(fib, { x: 20, y: 0.618 * 200 }, 500)).toMatchObject({ part: 'body' });
    expect(hitTestDrawing(fib, { x: 90, y: 0.42 * 200 + 3 }, 500)).toBeNull(); // between 0.382 and 0.5, off the diagonal
    expect(hitTestDrawing(fib, { x: 300, y: 100 }, 500)).toBeNull();
  });

  it('hitTestAll prefers handles, then the closest body', () => {
    const near = hitTestAll([trend, hline], { x: 50, y: 52 }, 500)!;
    expect(near.id).toBe('t'); // 2px from the trend line (diagonal ~1.4) vs 2 from the hline
    expect(hitTestAll([hline, trend], { x: 0, y: 1 }, 500)).toMatchObject({ id: 't', part: 'anchor' });
    expect(hitTestAll([trend, hline], { x: 400, y: 400 }, 500)).toBeNull();
  });
});

describe('fibonacci levels', () => {
  it('has the seven standard ratios between the two prices', () => {
    const levels = fibLevels(100, 200);
    expect(levels.map((l) => l.level)).toEqual([...FIB_LEVELS]);
    expect(levels.map((l) => l.level)).toEqual([0, 0.236, 0.382, 0.5, 0.618, 0.786, 1]);
    expect(levels[0].price).toBe(200);
    expect(levels[6].price).toBe(100);
    expect(levels[3].price).toBe(150);
    expect(levels[4].price).toBeCloseTo(138.2, 10);
    expect(levels[1].price).toBeCloseTo(176.4, 10);
  });

  it('works for a downward move too', () => {
    const levels = fibLevels(200, 100);
    expect(levels[0].price).toBe(100);
    expect(levels[2].price).toBeCloseTo(138.2, 10);
  });
});

describe('moving drawings', () => {
  const d = { id: 'x', kind: 'trend' as const, points: [{ time: 1000, price: 10 }, { time: 2000, price: 20 }] };
  it('translate shifts every anchor and leaves the original alone', () => {
    const moved = translateDrawing(d, 500, -1);
    expect(moved.points).toEqual([{ time: 1500, price: 9 }, { time: 2500, price: 19 }]);
    expect(d.points[0]).toEqual({ time: 1000, price: 10 });
  });
  it('moveAnchor moves one end only', () => {
    expect(moveAnchor(d, 1, { time: 3000, price: 5 }).points).toEqual([{ time: 1000, price: 10 }, { time: 3000, price: 5 }]);
  });
});
