/**
 * How a server indicator is drawn, decided from its name and the output fields
 * of its values (pure, so it is unit-tested):
 *
 *  - `value` of a price-like indicator (sma, ema, vwap, supertrend): one line on
 *    the price pane; SuperTrend's line is coloured by its `direction`;
 *  - `upper` / `middle` / `lower` (bollinger): three lines on the price pane;
 *  - `macd` / `signal` / `histogram`: two lines and a histogram in a pane of their own;
 *  - `value` of an oscillator (rsi, atr) or of an indicator this page does not
 *    know: a line in a pane of its own, so an unknown scale never squashes the
 *    candles. RSI gets its 30 / 70 levels.
 */

export type PlotPane = 'price' | 'separate';

export interface PlotLine {
  /** Output field drawn by this series. */
  field: string;
  style: 'line' | 'histogram';
  /** Index into the palette's indicator colours, relative to the indicator's own colour. */
  shade: number;
  dashed?: boolean;
}

export interface IndicatorPlot {
  pane: PlotPane;
  lines: PlotLine[];
  /** Horizontal reference levels (RSI 30 / 70). */
  levels: number[];
  /** Colour the line by the `direction` field (SuperTrend). */
  colorByDirection: boolean;
}

/** Indicators whose single value lives on the price scale. */
export const PRICE_OVERLAYS: ReadonlySet<string> = new Set(['sma', 'ema', 'vwap', 'supertrend']);

/** Fields of a value that are not outputs. */
const META_FIELDS = new Set(['timestamp', 'closed']);

/** Numeric output fields of one indicator value, in the order they came. */
export function outputFields(point: Record<string, unknown>): string[] {
  return Object.keys(point).filter((k) => !META_FIELDS.has(k) && typeof point[k] === 'number');
}

export function plotFor(name: string, fields: readonly string[]): IndicatorPlot {
  const has = (f: string) => fields.includes(f);
  const base = { levels: [] as number[], colorByDirection: false };
  if (has('macd') && has('signal')) {
    const lines: PlotLine[] = [];
    if (has('histogram')) lines.push({ field: 'histogram', style: 'histogram', shade: 0 });
    lines.push({ field: 'macd', style: 'line', shade: 0 }, { field: 'signal', style: 'line', shade: 1 });
    return { ...base, pane: 'separate', lines };
  }
  if (has('upper') && has('lower')) {
    const lines: PlotLine[] = [{ field: 'upper', style: 'line', shade: 0 }];
    if (has('middle')) lines.push({ field: 'middle', style: 'line', shade: 0, dashed: true });
    lines.push({ field: 'lower', style: 'line', shade: 0 });
    return { ...base, pane: 'price', lines };
  }
  if (has('value')) {
    return {
      pane: PRICE_OVERLAYS.has(name) ? 'price' : 'separate',
      lines: [{ field: 'value', style: 'line', shade: 0 }],
      levels: name === 'rsi' ? [30, 70] : [],
      colorByDirection: name === 'supertrend' || fields.includes('direction'),
    };
  }
  // Unknown shape: every numeric output as its own line, apart from the candles.
  return { ...base, pane: 'separate', lines: fields.map((field, i) => ({ field, style: 'line' as const, shade: i })) };
}

export interface TimedPoint {
  timestamp: number;
  closed: boolean;
  [field: string]: number | string | boolean;
}

/** Most values kept per indicator (the chart keeps at most a few thousand bars in view anyway). */
export const MAX_INDICATOR_POINTS = 5000;

export type PointUpsert = 'append' | 'replace-last' | 'insert' | 'ignored';

/**
 * The values of one indicator, sorted by bar time: the history reply, then live
 * previews (`closed:false`, replacing each other on the forming bar) and finals.
 */
export class IndicatorPoints {
  private list: TimedPoint[] = [];

  get points(): readonly TimedPoint[] {
    return this.list;
  }

  get length(): number {
    return this.list.length;
  }

  /** Merges a history (initial, or again after a reconnect): newer data for the same bar wins. */
  mergeHistory(points: readonly unknown[]): void {
    const byTime = new Map<number, TimedPoint>();
    for (const p of this.list) byTime.set(p.timestamp, p);
    for (const raw of points) {
      const p = asPoint(raw);
      if (p) byTime.set(p.timestamp, p);
    }
    this.list = [...byTime.values()].sort((a, b) => a.timestamp - b.timestamp);
    this.trim();
  }

  upsert(raw: unknown): PointUpsert {
    const p = asPoint(raw);
    if (!p) return 'ignored';
    const last = this.list[this.list.length - 1];
    if (!last || p.timestamp > last.timestamp) {
      this.list.push(p);
      this.trim();
      return 'append';
    }
    if (p.timestamp === last.timestamp) {
      this.list[this.list.length - 1] = p;
      return 'replace-last';
    }
    this.mergeHistory([p]);
    return 'insert';
  }

  clear(): void {
    this.list = [];
  }

  private trim(): void {
    if (this.list.length > MAX_INDICATOR_POINTS) this.list = this.list.slice(this.list.length - MAX_INDICATOR_POINTS);
  }
}

function asPoint(raw: unknown): TimedPoint | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const p = raw as TimedPoint;
  return typeof p.timestamp === 'number' && Number.isFinite(p.timestamp) ? p : null;
}

/** The number a series draws for `field`, or undefined (whitespace) when missing. */
export function fieldValue(p: TimedPoint, field: string): number | undefined {
  const v = p[field];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
