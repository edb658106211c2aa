/**
 * The WebSocket protocol spoken with the candlecast server at `/ws`
 * (JSON text frames). Any client message may carry an `id`; the server
 * echoes it in the direct reply so replies can be matched to requests.
 */
import type { Bar } from '../state/bars';
import type { Interval } from '../state/intervals';

export type RequestId = string | number;

export type ClientMessage =
  | { type: 'subscribe'; trading_pairs: string[]; interval: Interval; id?: RequestId }
  | { type: 'unsubscribe'; trading_pairs: string[]; interval: Interval; id?: RequestId }
  | {
      type: 'get_historical';
      trading_pair: string;
      interval: Interval;
      limit?: number;
      /** Exclusive. */
      end_time?: number;
      /** Inclusive. */
      start_time?: number;
      id?: RequestId;
    }
  | { type: 'ping'; id?: RequestId }
  | {
      type: 'subscribe_indicator' | 'unsubscribe_indicator';
      trading_pair: string;
      interval: Interval;
      indicator: string;
      params: Record<string, number>;
      /** Values of history sent first (server default 500). */
      history?: number;
      id?: RequestId;
    }
  | { type: 'subscribe_signals' | 'unsubscribe_signals'; trading_pair: string; interval: Interval; id?: RequestId };

export interface PriceUpdate {
  type: 'price_update';
  symbol: string;
  interval: Interval;
  data: Bar;
  ts_sent?: number;
  /** Revises an older, already closed bar. */
  correction?: boolean;
}

export interface HistoricalReply {
  type: 'historical';
  symbol: string;
  interval: Interval;
  data: Bar[];
  id?: RequestId;
}

export interface ErrorReply {
  type: 'error';
  code: string;
  message?: string;
  id?: RequestId;
  /** Set when a budget that refills refused the request (history reads): ask again after this many seconds. */
  retry_after?: number;
}

/** One strategy signal (`signal` push, and each entry of `signals_history.data`). */
export interface SignalMessage {
  symbol: string;
  interval: string;
  /** Open time of the closed bar that produced the signal (ms). */
  time: number;
  side: 'buy' | 'sell';
  price: number;
  strategy: string;
  reason?: string;
}

/**
 * An executed trade a script reported, pushed to every client holding a topic of its symbol
 * (docs/protocol.md, `trade_marker`); read by `markerFromMessage` in state/markers.ts.
 */
export interface TradeMarkerMessage {
  type: 'trade_marker';
  symbol: string;
  data: {
    timestamp: number;
    symbol: string;
    side: 'BUY' | 'SELL';
    quantity: number;
    price: number;
    profit_loss: number | null;
    strategy: string;
  };
}

/**
 * One indicator value: `timestamp`, `closed` and the indicator's output fields
 * (`value`; `macd`/`signal`/`histogram`; `upper`/`middle`/`lower`; `value`/`direction`).
 */
export interface IndicatorPoint {
  timestamp: number;
  closed: boolean;
  [field: string]: number | string | boolean;
}

/** Any message from the server; `type` decides the rest. */
export interface ServerMessage {
  type: string;
  id?: RequestId;
  [key: string]: unknown;
}

/** Parses one frame; null when it is not a JSON object with a string `type`. */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const msg = value as ServerMessage;
  return typeof msg.type === 'string' ? msg : null;
}

/** Topic key used to route price updates: one per (symbol, interval). */
export function topicKey(symbol: string, interval: string): string {
  return `${symbol}@${interval}`;
}

/** Largest `limit` the server accepts for get_historical. */
export const MAX_HISTORY_LIMIT = 5000;
