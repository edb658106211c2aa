import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LogicalRange } from 'lightweight-charts';
import type { Bar } from '../state/bars';
import type { ChartViewport } from '../state/layout';
import { SAVE_AFTER_MS, TimeScale, ViewportKeeper } from './viewportKeeper';

const M = 60_000;
const bars: Bar[] = Array.from({ length: 300 }, (_, i) => ({ timestamp: i * M, open: 1, high: 1, low: 1, close: 1, volume: 0, trades: 1 }));
const range = (from: number, to: number) => ({ from, to }) as LogicalRange;

/** The time scale calls the keeper makes, as state a test can move. */
function scale() {
  const s = {
    barSpacing: 6,
    rightOffset: 5,
    position: 0,
    range: range(250, 304) as LogicalRange | null,
    calls: [] as string[],
  };
  const api = {
    getVisibleLogicalRange: () => s.range,
    scrollPosition: () => s.position,
    options: () => ({ barSpacing: s.barSpacing, rightOffset: s.rightOffset }),
    applyOptions: (o: { barSpacing?: number }) => {
      if (o.barSpacing) s.barSpacing = o.barSpacing;
      s.calls.push(`spacing ${o.barSpacing}`);
    },
    scrollToPosition: (p: number) => s.calls.push(`position ${p}`),
    scrollToRealTime: () => s.calls.push('realtime'),
    width: () => 600,
  } as unknown as TimeScale;
  return { s, api };
}

function setup(restore?: ChartViewport) {
  const { s, api } = scale();
  const saved: ChartViewport[] = [];
  const back: boolean[] = [];
  let live = true;
  let stored: ChartViewport | undefined = restore;
  const keeper = new ViewportKeeper(
    {
      timeScale: api,
      bars: () => bars,
      stepMs: () => M,
      isLive: () => live,
      stored: () => stored,
      save: (v) => {
        saved.push(v);
        stored = v;
      },
      scrolledBack: (b) => back.push(b),
    },
    restore,
  );
  return { s, keeper, saved, back, setLive: (on: boolean) => (live = on) };
}

describe('ViewportKeeper', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('stores the view once the chart stops moving, not on every move', () => {
    const t = setup();
    t.s.barSpacing = 9;
    for (let i = 0; i < 5; i++) {
      t.keeper.rangeChanged(range(250 + i, 304 + i));
      vi.advanceTimersByTime(SAVE_AFTER_MS - 1);
    }
    expect(t.saved).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(t.saved).toEqual([{ barSpacing: 9 }]);
  });

  it('does not store the same view again, nor the view of a chart that is not live', () => {
    const t = setup({ barSpacing: 6 });
    t.keeper.rangeChanged(range(250, 304));
    vi.advanceTimersByTime(SAVE_AFTER_MS);
    expect(t.saved).toEqual([]);
    t.s.barSpacing = 12;
    t.keeper.rangeChanged(range(250, 304));
    t.setLive(false);
    vi.advanceTimersByTime(SAVE_AFTER_MS);
    expect(t.saved).toEqual([]);
  });

  it('stores a scrolled-back view by the time at its right edge, and shows the Live button once', () => {
    const t = setup();
    t.s.position = -50;
    t.s.range = range(200, 249.5);
    t.keeper.rangeChanged(t.s.range);
    t.keeper.rangeChanged(t.s.range);
    vi.advanceTimersByTime(SAVE_AFTER_MS);
    expect(t.saved).toEqual([{ barSpacing: 6, rightTime: 249.5 * M }]);
    expect(t.back).toEqual([true]);
    t.s.position = 0;
    t.keeper.rangeChanged(range(250, 304));
    expect(t.back).toEqual([true, false]);
  });

  it('puts a stored view back after the first load only', () => {
    const t = setup({ barSpacing: 10, rightTime: 249.5 * M });
    t.keeper.placeAfterLoad();
    // Right edge at bar 249.5 of 300: 49.5 bars left of the newest one.
    expect(t.s.calls).toEqual(['spacing 10', 'position -49.5']);
    t.keeper.placeAfterLoad();
    expect(t.s.calls.slice(2)).toEqual(['realtime']);
  });

  it('back to live jumps to the right offset without an animation', () => {
    const t = setup();
    t.keeper.backToLive();
    expect(t.s.calls).toEqual(['position 5']);
  });

  it('asks for enough bars to reach a restored position, else for the minimum', () => {
    expect(setup().keeper.initialLimit(300)).toBe(300);
    const old = Date.now() - 1000 * M;
    expect(setup({ barSpacing: 6, rightTime: old }).keeper.initialLimit(300)).toBeGreaterThan(1000);
  });
});
