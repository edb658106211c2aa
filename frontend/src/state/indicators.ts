/**
 * Moving averages computed in the browser from the bars a chart has loaded.
 * Output arrays line up with the input: `undefined` until enough values exist.
 */

export function sma(values: readonly number[], period: number): Array<number | undefined> {
  const out: Array<number | undefined> = new Array(values.length).fill(undefined);
  if (period < 1) return out;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= period) sum -= values[i - period];
    if (i >= period - 1) out[i] = sum / period;
  }
  return out;
}

/** Smoothing factor used by the usual EMA definition. */
export function emaAlpha(period: number): number {
  return 2 / (period + 1);
}

/** One EMA step; the chart uses it to update the live end without a full pass. */
export function emaNext(prev: number, value: number, period: number): number {
  const a = emaAlpha(period);
  return a * value + (1 - a) * prev;
}

/** EMA seeded with the SMA of the first `period` values. */
export function ema(values: readonly number[], period: number): Array<number | undefined> {
  const out: Array<number | undefined> = new Array(values.length).fill(undefined);
  if (period < 1 || values.length < period) return out;
  let seed = 0;
  for (let i = 0; i < period; i++) seed += values[i];
  let prev = seed / period;
  out[period - 1] = prev;
  for (let i = period; i < values.length; i++) {
    prev = emaNext(prev, values[i], period);
    out[i] = prev;
  }
  return out;
}

/** SMA of the last `period` values only (live end of the chart). */
export function smaLast(values: readonly number[], period: number): number | undefined {
  if (period < 1 || values.length < period) return undefined;
  let sum = 0;
  for (let i = values.length - period; i < values.length; i++) sum += values[i];
  return sum / period;
}
