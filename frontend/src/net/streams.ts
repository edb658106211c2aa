/**
 * Indicator and signal streams, multiplexed on the page's one WebSocket like
 * the bar topics are:
 *
 *  - reference-counted: two charts on the same stream share one server
 *    subscription, and `unsubscribe_*` is sent when the last one leaves;
 *  - every listener gets a history: the first through the subscribe reply,
 *    later ones by subscribing again (the server keeps one subscription per
 *    client and stream, so a repeated subscribe only resends the history);
 *  - after a reconnect every open stream is subscribed again and all its
 *    listeners get the fresh history (they merge it with what they hold).
 */
import type { Interval } from '../state/intervals';
import { paramsKey } from '../state/catalog';
import { Connection, RequestError } from './connection';
import type { ClientMessage, IndicatorPoint, ServerMessage, SignalMessage } from './protocol';

export interface StreamListener<H, L> {
  /** The stream's history (first subscribe, a later listener joining, or a reconnect). */
  onHistory(items: H[]): void;
  onLive(item: L): void;
  /** The server refused the subscription (bad parameter, unknown symbol, ...). */
  onError?(err: RequestError): void;
}

export type SignalListener = StreamListener<SignalMessage, SignalMessage>;
export type IndicatorListener = StreamListener<IndicatorPoint, IndicatorPoint>;

interface Stream {
  key: string;
  subscribe: ClientMessage;
  unsubscribe: ClientMessage;
  listeners: Set<StreamListener<unknown, unknown>>;
}

/** A refused subscribe is retried after this long when the cause was the server's rate limit. */
const RATE_LIMIT_RETRY_MS = 1100;
/**
 * Stream subscribes sent per second at most: the server allows 50 control
 * messages a second for everything (bars, history pages, pings too), and a
 * reload of a big layout opens many streams at once.
 */
export const STREAM_SUBSCRIBES_PER_SECOND = 20;

export function signalStreamKey(symbol: string, interval: string): string {
  return `signals|${symbol.toUpperCase()}|${interval}`;
}

export function indicatorStreamKey(symbol: string, interval: string, indicator: string, params: Record<string, unknown>): string {
  return `indicator|${symbol.toUpperCase()}|${interval}|${indicator}|${paramsKey(params)}`;
}

function dataArray(msg: ServerMessage): unknown[] {
  return Array.isArray(msg.data) ? msg.data : [];
}

export class StreamHub {
  private readonly streams = new Map<string, Stream>();
  /** Server-canonical key → our key, when the server spelled the params differently. */
  private readonly aliases = new Map<string, string>();
  /** Subscribes waiting for room in this second's budget. */
  private readonly queue: Array<() => void> = [];
  private sentTimes: number[] = [];
  private drainTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly conn: Connection) {
    conn.onMessage('signal', (msg) => {
      const key = signalStreamKey(String(msg.symbol ?? ''), String(msg.interval ?? ''));
      this.deliverLive(key, msg);
    });
    conn.onMessage('indicator', (msg) => {
      const key = indicatorStreamKey(String(msg.symbol ?? ''), String(msg.interval ?? ''), String(msg.indicator ?? ''), (msg.params ?? {}) as Record<string, unknown>);
      if (msg.data && typeof msg.data === 'object') this.deliverLive(key, msg.data);
    });
    // A new socket has no streams: subscribe each again; every listener gets the new history.
    conn.onOpen(() => {
      for (const s of this.streams.values()) this.requestHistory(s, null);
    });
  }

  /** Signals of the strategies running live on `symbol@interval`. */
  openSignals(symbol: string, interval: Interval, listener: SignalListener): () => void {
    return this.open(
      signalStreamKey(symbol, interval),
      { type: 'subscribe_signals', trading_pair: symbol, interval },
      { type: 'unsubscribe_signals', trading_pair: symbol, interval },
      listener as StreamListener<unknown, unknown>,
    );
  }

  /** One indicator on `symbol@interval`; `params` should be complete (defaults filled in). */
  openIndicator(
    symbol: string,
    interval: Interval,
    indicator: string,
    params: Record<string, number>,
    history: number,
    listener: IndicatorListener,
  ): () => void {
    return this.open(
      indicatorStreamKey(symbol, interval, indicator, params),
      { type: 'subscribe_indicator', trading_pair: symbol, interval, indicator, params, history },
      { type: 'unsubscribe_indicator', trading_pair: symbol, interval, indicator, params },
      listener as StreamListener<unknown, unknown>,
    );
  }

  /** Open stream keys (debug hook). */
  activeStreams(): string[] {
    return [...this.streams.keys()];
  }

  private open(key: string, subscribe: ClientMessage, unsubscribe: ClientMessage, listener: StreamListener<unknown, unknown>): () => void {
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { key, subscribe, unsubscribe, listeners: new Set() };
      this.streams.set(key, stream);
    }
    stream.listeners.add(listener);
    this.requestHistory(stream, listener);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const s = this.streams.get(key);
      if (!s || !s.listeners.delete(listener) || s.listeners.size > 0) return;
      this.streams.delete(key);
      if (this.conn.currentState === 'connected') this.conn.send(s.unsubscribe);
    };
  }

  /** Subscribes (again) and hands the history to `only`, or to every listener when null. */
  private requestHistory(stream: Stream, only: StreamListener<unknown, unknown> | null): void {
    if (this.conn.currentState !== 'connected') return; // onOpen will do it
    this.queue.push(() => this.sendSubscribe(stream, only));
    this.drain();
  }

  /** Sends queued subscribes within the per-second budget; the rest wait for the window to move. */
  private drain(): void {
    if (this.drainTimer) return;
    const now = Date.now();
    this.sentTimes = this.sentTimes.filter((t) => now - t < 1000);
    while (this.queue.length && this.sentTimes.length < STREAM_SUBSCRIBES_PER_SECOND) {
      this.sentTimes.push(now);
      this.queue.shift()!();
    }
    if (this.queue.length) {
      this.drainTimer = setTimeout(() => {
        this.drainTimer = null;
        this.drain();
      }, 1000 - (now - this.sentTimes[0]));
    }
  }

  private sendSubscribe(stream: Stream, only: StreamListener<unknown, unknown> | null): void {
    if (this.streams.get(stream.key) !== stream) return; // closed while queued
    if (only && !stream.listeners.has(only)) return;
    if (this.conn.currentState !== 'connected') return; // onOpen will do it
    this.conn
      .request(stream.subscribe)
      .then((reply) => {
        if (this.streams.get(stream.key) !== stream) return; // closed meanwhile
        this.noteAlias(stream.key, reply);
        const items = dataArray(reply);
        for (const l of only ? [only] : stream.listeners) if (stream.listeners.has(l)) l.onHistory(items);
      })
      .catch((err: unknown) => {
        if (!(err instanceof RequestError) || err.code === 'disconnected') return; // resubscribed on open
        if (this.streams.get(stream.key) !== stream) return;
        if (err.code === 'rate_limited' || err.code === 'timeout') {
          setTimeout(() => {
            if (this.streams.get(stream.key) === stream) this.requestHistory(stream, only);
          }, RATE_LIMIT_RETRY_MS);
          return;
        }
        for (const l of only ? [only] : [...stream.listeners]) if (stream.listeners.has(l)) l.onError?.(err);
      });
  }

  /** Live indicator messages name the server's canonical params; map them to our stream. */
  private noteAlias(key: string, reply: ServerMessage): void {
    if (reply.type !== 'indicator_history') return;
    const canonical = indicatorStreamKey(String(reply.symbol ?? ''), String(reply.interval ?? ''), String(reply.indicator ?? ''), (reply.params ?? {}) as Record<string, unknown>);
    if (canonical !== key) this.aliases.set(canonical, key);
  }

  private deliverLive(key: string, item: unknown): void {
    const stream = this.streams.get(key) ?? this.streams.get(this.aliases.get(key) ?? '');
    if (!stream) return;
    for (const l of stream.listeners) l.onLive(item);
  }
}
