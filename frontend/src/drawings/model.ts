/**
 * Drawings as data: anchored in (time, price) so they survive zooming,
 * scrolling, history loading and a change of interval, and stored per chart.
 */
import type { KeyValueStore } from '../state/storage';

export type DrawingKind = 'trend' | 'hline' | 'fib' | 'rect';

export const DRAWING_KINDS: readonly DrawingKind[] = ['trend', 'hline', 'fib', 'rect'];

/** A point on the chart: bar time in ms (UTC) and price. */
export interface Anchor {
  time: number;
  price: number;
}

export interface Drawing {
  id: string;
  kind: DrawingKind;
  /** One anchor for `hline` (only its price matters), two for the others. */
  points: Anchor[];
}

/** Clicks needed to create each kind. */
export function anchorCount(kind: DrawingKind): number {
  return kind === 'hline' ? 1 : 2;
}

export const FIB_LEVELS = [0, 0.236, 0.382, 0.5, 0.618, 0.786, 1] as const;

/**
 * Retracement levels between the first anchor (where the move started) and
 * the second (where it ended): level 0 sits on the end of the move, level 1
 * on its start, as in most charting tools.
 */
export function fibLevels(startPrice: number, endPrice: number): Array<{ level: number; price: number }> {
  return FIB_LEVELS.map((level) => ({ level, price: endPrice + (startPrice - endPrice) * level }));
}

/** Moves every anchor by the same time and price offset (dragging the body). */
export function translateDrawing(d: Drawing, dTime: number, dPrice: number): Drawing {
  return { ...d, points: d.points.map((p) => ({ time: p.time + dTime, price: p.price + dPrice })) };
}

/** Moves one anchor (dragging a handle). */
export function moveAnchor(d: Drawing, index: number, to: Anchor): Drawing {
  return { ...d, points: d.points.map((p, i) => (i === index ? { ...to } : p)) };
}

export function drawingsKey(chartId: string): string {
  return `candlecast.drawings.v1.${chartId}`;
}

function isAnchor(v: unknown): v is Anchor {
  if (typeof v !== 'object' || v === null) return false;
  const a = v as Record<string, unknown>;
  return typeof a.time === 'number' && Number.isFinite(a.time) && typeof a.price === 'number' && Number.isFinite(a.price);
}

/** Validates stored drawings; anything malformed is dropped, not fatal. */
export function parseDrawings(raw: string | null): Drawing[] {
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const out: Drawing[] = [];
  const ids = new Set<string>();
  for (const item of parsed) {
    if (typeof item !== 'object' || item === null) continue;
    const d = item as Record<string, unknown>;
    if (typeof d.id !== 'string' || ids.has(d.id)) continue;
    if (!DRAWING_KINDS.includes(d.kind as DrawingKind)) continue;
    const kind = d.kind as DrawingKind;
    if (!Array.isArray(d.points) || d.points.length !== anchorCount(kind) || !d.points.every(isAnchor)) continue;
    ids.add(d.id);
    out.push({ id: d.id, kind, points: (d.points as Anchor[]).map((p) => ({ time: p.time, price: p.price })) });
  }
  return out;
}

export function loadDrawings(store: KeyValueStore, chartId: string): Drawing[] {
  return parseDrawings(store.getItem(drawingsKey(chartId)));
}

export function saveDrawings(store: KeyValueStore, chartId: string, drawings: readonly Drawing[]): void {
  if (drawings.length === 0) store.removeItem(drawingsKey(chartId));
  else store.setItem(drawingsKey(chartId), JSON.stringify(drawings));
}

let counter = 0;
export function newDrawingId(): string {
  counter = (counter + 1) % 1_000_000;
  return `d${Date.now().toString(36)}${counter.toString(36)}`;
}
