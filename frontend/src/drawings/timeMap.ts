/**
 * Converts between bar time and the chart's logical index (bar number,
 * fractional between bars, extrapolated past either end). Drawings are
 * stored by time, the chart positions by logical index, and indexes change
 * whenever older bars are prepended, so this runs on every repaint.
 */
import { Bar, lowerBound } from '../state/bars';

export function timeToLogical(bars: readonly Bar[], stepMs: number, time: number): number | null {
  const n = bars.length;
  if (n === 0) return null;
  const first = bars[0].timestamp;
  const last = bars[n - 1].timestamp;
  if (time <= first) return (time - first) / stepMs;
  if (time >= last) return n - 1 + (time - last) / stepMs;
  const i = lowerBound(bars, time);
  const right = bars[i];
  if (right.timestamp === time) return i;
  const left = bars[i - 1];
  return i - 1 + (time - left.timestamp) / (right.timestamp - left.timestamp);
}

export function logicalToTime(bars: readonly Bar[], stepMs: number, logical: number): number | null {
  const n = bars.length;
  if (n === 0) return null;
  if (logical <= 0) return bars[0].timestamp + logical * stepMs;
  if (logical >= n - 1) return bars[n - 1].timestamp + (logical - (n - 1)) * stepMs;
  const i = Math.floor(logical);
  const frac = logical - i;
  return bars[i].timestamp + frac * (bars[i + 1].timestamp - bars[i].timestamp);
}

/**
 * Pixel x of a fractional logical index. lightweight-charts places whole indexes only (its
 * `logicalToCoordinate` answers 0, the left edge, for 7.5), which is what sent every drawing point that
 * fell between two bars (any 1m point on a 5m or 1h chart) to the left edge: interpolate between the two
 * whole indexes around it instead.
 */
export function logicalToX(logical: number, indexToX: (index: number) => number | null): number | null {
  const i = Math.floor(logical);
  const x0 = indexToX(i);
  if (x0 === null || logical === i) return x0;
  const x1 = indexToX(i + 1);
  return x1 === null ? null : x0 + (logical - i) * (x1 - x0);
}

/**
 * Fractional logical index under pixel x (lightweight-charts' `coordinateToLogical` rounds to a whole
 * bar), so a point is anchored where it was clicked, not on the nearest bar.
 */
export function xToLogical(x: number, wholeIndexAt: (x: number) => number | null, indexToX: (index: number) => number | null): number | null {
  const i = wholeIndexAt(x);
  if (i === null) return null;
  const xi = indexToX(i);
  const next = indexToX(i + 1);
  if (xi === null || next === null || next === xi) return i;
  return i + (x - xi) / (next - xi);
}
