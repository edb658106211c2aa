/** The bar intervals the server aggregates, in the order the picker shows them. */
export const INTERVALS = [
  '1s', '5s', '15s', '30s',
  '1m', '3m', '5m', '15m', '30m',
  '1h', '2h', '4h', '6h', '12h',
  '1d', '1w',
] as const;

export type Interval = (typeof INTERVALS)[number];

const UNIT_MS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

export function isInterval(value: unknown): value is Interval {
  return typeof value === 'string' && (INTERVALS as readonly string[]).includes(value);
}

/** Nominal length of one bar in milliseconds. */
export function intervalMs(interval: Interval): number {
  const unit = interval.slice(-1);
  return Number(interval.slice(0, -1)) * UNIT_MS[unit];
}
