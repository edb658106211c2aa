/**
 * Screen-space geometry of drawings: where each one is on the pane and what
 * the pointer is over. Everything here works on plain pixel points so the
 * hit tests can be unit-tested without a chart.
 */
import { DrawingKind, fibLevels } from './model';

export interface Point {
  x: number;
  y: number;
}

/** A drawing projected onto the pane (pixels). */
export interface ScreenDrawing {
  id: string;
  kind: DrawingKind;
  points: Point[];
  /** Prices of the anchors, needed to place Fibonacci levels. */
  prices: number[];
}

/** What was hit: an anchor handle (`index`), or the body (drag moves it all). */
export interface Hit {
  id: string;
  part: 'anchor' | 'body';
  index: number;
  distance: number;
}

export const HIT_TOLERANCE_PX = 6;
export const HANDLE_RADIUS_PX = 5;

export function distance(a: Point, b: Point): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}

/** Distance from `p` to the segment a–b. */
export function distanceToSegment(p: Point, a: Point, b: Point): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len2 = dx * dx + dy * dy;
  if (len2 === 0) return distance(p, a);
  const t = Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / len2));
  return distance(p, { x: a.x + t * dx, y: a.y + t * dy });
}

/** Rectangle spanned by two corners, normalised. */
export function boxOf(a: Point, b: Point): { left: number; right: number; top: number; bottom: number } {
  return {
    left: Math.min(a.x, b.x),
    right: Math.max(a.x, b.x),
    top: Math.min(a.y, b.y),
    bottom: Math.max(a.y, b.y),
  };
}

/**
 * y of each Fibonacci level on screen. Prices map linearly to y on a linear
 * price scale, so the levels are interpolated between the two anchors.
 */
export function fibScreenLevels(d: ScreenDrawing): Array<{ level: number; price: number; y: number }> {
  const [a, b] = d.points;
  const [pa, pb] = d.prices;
  return fibLevels(pa, pb).map(({ level, price }) => ({ level, price, y: b.y + (a.y - b.y) * level }));
}

/** Distance from `p` to the drawing's body, or Infinity when it is off it. */
export function bodyDistance(d: ScreenDrawing, p: Point, paneWidth: number): number {
  switch (d.kind) {
    case 'trend':
      return distanceToSegment(p, d.points[0], d.points[1]);
    case 'hline':
      return p.x >= 0 && p.x <= paneWidth ? Math.abs(p.y - d.points[0].y) : Infinity;
    case 'rect': {
      const box = boxOf(d.points[0], d.points[1]);
      const inside = p.x >= box.left && p.x <= box.right && p.y >= box.top && p.y <= box.bottom;
      const edge = Math.min(
        distanceToSegment(p, { x: box.left, y: box.top }, { x: box.right, y: box.top }),
        distanceToSegment(p, { x: box.right, y: box.top }, { x: box.right, y: box.bottom }),
        distanceToSegment(p, { x: box.right, y: box.bottom }, { x: box.left, y: box.bottom }),
        distanceToSegment(p, { x: box.left, y: box.bottom }, { x: box.left, y: box.top }),
      );
      // Inside counts as a hit so a filled box can be grabbed anywhere.
      return inside ? Math.min(edge, HIT_TOLERANCE_PX - 1) : edge;
    }
    case 'fib': {
      const left = Math.min(d.points[0].x, d.points[1].x);
      const right = Math.max(d.points[0].x, d.points[1].x);
      let best = distanceToSegment(p, d.points[0], d.points[1]);
      for (const { y } of fibScreenLevels(d)) {
        best = Math.min(best, distanceToSegment(p, { x: left, y }, { x: right, y }));
      }
      return best;
    }
  }
}

/** Hit test of one drawing: anchors win over the body. */
export function hitTestDrawing(
  d: ScreenDrawing,
  p: Point,
  paneWidth: number,
  tolerance = HIT_TOLERANCE_PX,
): Hit | null {
  // A horizontal line has no visible handle: grabbing it anywhere moves it.
  if (d.kind !== 'hline') {
    for (let i = 0; i < d.points.length; i++) {
      const dist = distance(p, d.points[i]);
      if (dist <= HANDLE_RADIUS_PX + 2) return { id: d.id, part: 'anchor', index: i, distance: dist };
    }
  }
  const dist = bodyDistance(d, p, paneWidth);
  return dist <= tolerance ? { id: d.id, part: 'body', index: -1, distance: dist } : null;
}

/** The closest hit among all drawings; later (topmost) drawings win ties. */
export function hitTestAll(
  drawings: readonly ScreenDrawing[],
  p: Point,
  paneWidth: number,
  tolerance = HIT_TOLERANCE_PX,
): Hit | null {
  let best: Hit | null = null;
  for (const d of drawings) {
    const hit = hitTestDrawing(d, p, paneWidth, tolerance);
    if (!hit) continue;
    const better =
      !best ||
      (hit.part === 'anchor' && best.part !== 'anchor') ||
      (hit.part === best.part && hit.distance <= best.distance);
    if (better) best = hit;
  }
  return best;
}
