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
