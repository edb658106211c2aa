/**
 * The chart's zoom and scroll position as stored in the layout (state/layout.ts `ChartViewport`): read
 * from the chart when the trader stops scrolling, and put back after a reload. At the live edge only the
 * zoom is kept (the view then follows new bars); scrolled back, the time at the right edge is kept too,
 * and enough history is loaded to show it.
 */
import { MAX_HISTORY_LIMIT } from '../net/protocol';
import type { Bar } from '../state/bars';
import type { ChartViewport } from '../state/layout';
import { logicalToTime, timeToLogical } from '../drawings/timeMap';

/** Further back than this many bars is not restored exactly (the first page would be too large). */
export const MAX_RESTORE_BARS = 2000;

/**
 * The viewport to store. `scrollPosition`: bars between the newest bar and the right edge (lightweight-
 * charts' `scrollPosition()`, negative when the newest bar is off to the right); `rightLogical`: the
 * logical index at the right edge.
 */
export function captureViewport(
  bars: readonly Bar[],
  stepMs: number,
  barSpacing: number,
  scrollPosition: number,
  rightLogical: number,
): ChartViewport {
  if (!isScrolledBack(scrollPosition)) return { barSpacing };
  const rightTime = logicalToTime(bars, stepMs, rightLogical);
  return rightTime === null ? { barSpacing } : { barSpacing, rightTime: Math.round(rightTime) };
}

/** The newest bar is off the right edge: the trader is looking at the past ("Back to live" shows). */
export function isScrolledBack(scrollPosition: number): boolean {
  return scrollPosition < -0.5;
}

/** Bars to ask for on load so that the stored right edge is among them, and a screen more before it. */
export function barsToLoad(view: ChartViewport | undefined, nowMs: number, stepMs: number, visibleBars: number, minimum: number): number {
  if (!view?.rightTime) return minimum;
  const back = Math.ceil((nowMs - view.rightTime) / stepMs) + Math.ceil(visibleBars) + 50;
  return Math.max(minimum, Math.min(back, MAX_RESTORE_BARS, MAX_HISTORY_LIMIT));
}

/**
 * The scroll position (lightweight-charts' `scrollToPosition`: bars from the newest bar to the right edge)
 * that puts `view.rightTime` at the right edge; null when it is not among the loaded bars. Independent of
 * the chart's width, which may not be laid out yet when the first bars arrive.
 */
export function restoredScrollPosition(view: ChartViewport, bars: readonly Bar[], stepMs: number): number | null {
  if (!view.rightTime || bars.length === 0 || view.rightTime < bars[0].timestamp) return null;
  const to = timeToLogical(bars, stepMs, view.rightTime);
  return to === null ? null : to - (bars.length - 1);
}
