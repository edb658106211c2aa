/**
 * Markers for executed trades and strategy signals. The data arrives in later
 * issues; this is the hook they plug into (see docs/DASHBOARD.md):
 *  - in the page: `addMarkers(chartId, markers)`,
 *  - over the WebSocket: `trade_marker` and `signal` messages, routed to every
 *    chart showing that symbol (and that interval, when the message names one),
 *  - from `GET /api/trades`: the executed trades scripts reported, when a chart loads.
 */

export type MarkerKind = 'trade' | 'signal';
export type MarkerSide = 'buy' | 'sell' | 'long' | 'short' | 'exit';

export interface Marker {
  /** Event time in ms (UTC); drawn on the bar that contains it. */
  time: number;
  kind: MarkerKind;
  side: MarkerSide;
  /** Short label drawn next to the marker. */
  text?: string;
  price?: number;
}

/** Most markers kept per chart; oldest are dropped first. */
export const MAX_MARKERS_PER_CHART = 1000;

export interface RoutedMarker {
  symbol: string;
  interval?: string;
  marker: Marker;
}

const SIDES: readonly MarkerSide[] = ['buy', 'sell', 'long', 'short', 'exit'];

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * Reads a `trade_marker` or `signal` message; null when malformed, so a bad
 * message is dropped instead of breaking the chart.
 *
 * `{"type":"trade_marker","symbol":"BTCUSDT","data":{"timestamp":1700000040000,"side":"buy","price":65000.5,"quantity":0.1,"strategy":"ema_cross"}}`
 * `{"type":"signal","symbol":"BTCUSDT","interval":"1m","data":{"timestamp":1700000040000,"direction":"long","strategy":"ema_cross","strength":0.8}}`
 */
export function markerFromMessage(msg: Record<string, unknown>): RoutedMarker | null {
  const symbol = str(msg.symbol);
  const data = msg.data as Record<string, unknown> | undefined;
  if (!symbol || typeof data !== 'object' || data === null) return null;
  const time = num(data.timestamp);
  if (time === undefined) return null;
  const kind: MarkerKind | null = msg.type === 'trade_marker' ? 'trade' : msg.type === 'signal' ? 'signal' : null;
  if (!kind) return null;
  const rawSide = String((kind === 'trade' ? data.side : data.direction) ?? '').toLowerCase();
  if (!SIDES.includes(rawSide as MarkerSide)) return null;
  const side = rawSide as MarkerSide;
  const price = num(data.price);
  const label =
    str(data.text) ??
    (kind === 'trade'
      ? `${side.toUpperCase()}${num(data.quantity) !== undefined ? ` ${data.quantity}` : ''}${price !== undefined ? ` @ ${price}` : ''}`
      : `${str(data.strategy) ?? 'signal'} ${side}`);
  return { symbol, interval: str(msg.interval), marker: { time, kind, side, text: label, price } };
}

/**
 * Trade markers for the executed trades scripts reported (`GET /api/trades`):
 * `{"trades":[{"timestamp":1672567200000,"symbol":"AAPL","side":"BUY","quantity":100,"price":150,"strategy":"…"}]}`.
 * Malformed entries are skipped.
 */
export function markersFromExecutedTrades(reply: unknown): Marker[] {
  const trades = typeof reply === 'object' && reply !== null ? (reply as { trades?: unknown }).trades : undefined;
  if (!Array.isArray(trades)) return [];
  return trades.flatMap((t) => {
    if (typeof t !== 'object' || t === null) return [];
    const routed = markerFromMessage({ type: 'trade_marker', symbol: (t as { symbol?: unknown }).symbol, data: t });
    return routed ? [routed.marker] : [];
  });
}

/** Identity of a marker: a history sent again (reconnect, second chart) must not double it. */
export function markerKey(m: Marker): string {
  return `${m.kind}|${m.time}|${m.side}|${m.text ?? ''}`;
}

/** Adds markers to a list kept sorted by time, without exact duplicates, capped to the newest ones. */
export function mergeMarkers(existing: readonly Marker[], added: readonly Marker[]): Marker[] {
  const seen = new Set<string>();
  const all: Marker[] = [];
  for (const m of existing.concat(added)) {
    const k = markerKey(m);
    if (seen.has(k)) continue;
    seen.add(k);
    all.push(m);
  }
  all.sort((a, b) => a.time - b.time);
  return all.length > MAX_MARKERS_PER_CHART ? all.slice(all.length - MAX_MARKERS_PER_CHART) : all;
}
