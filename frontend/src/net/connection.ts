/**
 * The page's one WebSocket. Every chart's subscriptions are multiplexed on
 * it: topics are reference-counted (two charts on BTCUSDT@1m share one
 * server subscription), subscribe/unsubscribe calls made in the same tick
 * are batched into one message per interval (the server allows 50 control
 * messages/s), and after a reconnect every live topic is subscribed again.
 */
import { Backoff } from '../state/backoff';
import type { Interval } from '../state/intervals';
import { batchByInterval, readSubscribeReply } from './subscribeReplies';
import {
  ClientMessage,
  ErrorReply,
  PriceUpdate,
  RequestId,
  ServerMessage,
  parseServerMessage,
  topicKey,
} from './protocol';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected';

/**
 * What the server said about one topic's subscription: `pending` until its reply, `subscribed`, or
 * `refused` (with the server's reason) when the server would not stream it, e.g. a script-created symbol
 * it no longer knows after a restart. A refused topic is asked for again after a reconnect or `retry`.
 */
export type TopicState = 'pending' | 'subscribed' | 'refused';
export interface TopicStatus {
  state: TopicState;
  reason?: string;
}
type StatusListener = (status: TopicStatus) => void;

interface Topic {
  symbol: string;
  interval: Interval;
  listeners: Set<UpdateListener>;
  statusListeners: Set<StatusListener>;
  status: TopicStatus;
}

type UpdateListener = (msg: PriceUpdate) => void;
type MessageListener = (msg: ServerMessage) => void;

interface Pending {
  resolve: (msg: ServerMessage) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Error carrying the server's error `code` (or `disconnected` / `timeout`). */
export class RequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** Seconds after which the same request should pass (a refilling budget refused it). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** WebSocket.OPEN, spelled out so the module also loads where WebSocket is not global (tests). */
const OPEN = 1;
const REQUEST_TIMEOUT_MS = 15_000;
/** A ping this often keeps proxies from closing an idle socket... */
const PING_EVERY_MS = 15_000;
/** ...and silence this long means the connection is dead even if no close came. */
const SILENCE_LIMIT_MS = 40_000;

export interface ConnectionOptions {
  url: string;
  backoff?: Backoff;
  /** Injectable for tests. */
  createSocket?: (url: string) => WebSocket;
}

export class Connection {
  private socket: WebSocket | null = null;
  private state: ConnectionState = 'disconnected';
  private readonly backoff: Backoff;
  private readonly createSocket: (url: string) => WebSocket;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly topics = new Map<string, Topic>();
  /** Subscribe requests awaiting their reply: request id -> the topic keys it named. */
  private readonly inFlight = new Map<string, string[]>();
  private readonly toSubscribe = new Set<string>();
  private readonly toUnsubscribe = new Set<string>();
  private flushQueued = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastMessageAt = 0;
  private everConnected = false;
  private closedByUser = false;
  private readonly stateListeners = new Set<(s: ConnectionState, info: { retryInMs?: number }) => void>();
  private readonly openListeners = new Set<(reconnect: boolean) => void>();
  private readonly typeListeners = new Map<string, Set<MessageListener>>();

  constructor(private readonly opts: ConnectionOptions) {
    this.backoff = opts.backoff ?? new Backoff();
    this.createSocket = opts.createSocket ?? ((url) => new WebSocket(url));
  }

  /** ws:// or wss:// on the page's own host, matching the page's scheme. */
  static defaultUrl(loc: Location = window.location): string {
    const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${loc.host}/ws`;
  }

  get currentState(): ConnectionState {
    return this.state;
  }

  connect(): void {
    this.closedByUser = false;
    if (this.socket) return;
    this.setState('connecting');
    let ws: WebSocket;
    try {
      ws = this.createSocket(this.opts.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = ws;
    ws.onopen = () => this.handleOpen();
    ws.onmessage = (ev) => this.handleFrame(ev.data);
    // `error` is always followed by `close`; reconnect logic lives there.
    ws.onerror = () => {};
    ws.onclose = () => this.handleClose(ws);
  }

  close(): void {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.socket?.close();
  }

  onState(fn: (s: ConnectionState, info: { retryInMs?: number }) => void): () => void {
    this.stateListeners.add(fn);
    fn(this.state, {});
    return () => this.stateListeners.delete(fn);
  }

  /**
   * Called on every open, after the topics were subscribed again; `reconnect`
   * is false for the first one. Charts load or fill their gap here.
   */
  onOpen(fn: (reconnect: boolean) => void): () => void {
    this.openListeners.add(fn);
    return () => this.openListeners.delete(fn);
  }

  /** Listens to one server push type (e.g. `trade_marker`, `signal`). */
  onMessage(type: string, fn: MessageListener): () => void {
    let set = this.typeListeners.get(type);
    if (!set) this.typeListeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  /**
   * Listens to live bars of one topic. The server subscription is made for
   * the first listener and dropped after the last one leaves.
   */
  subscribe(symbol: string, interval: Interval, fn: UpdateListener, onStatus?: StatusListener): () => void {
    const key = topicKey(symbol, interval);
    let topic = this.topics.get(key);
    if (!topic) {
      topic = { symbol, interval, listeners: new Set(), statusListeners: new Set(), status: { state: 'pending' } };
      this.topics.set(key, topic);
      if (this.toUnsubscribe.delete(key)) {
        // Dropped and re-taken in the same tick: the server never needs to know.
        this.retired.delete(key);
      } else {
        this.toSubscribe.add(key);
        this.queueFlush();
      }
    }
    topic.listeners.add(fn);
    if (onStatus) {
      topic.statusListeners.add(onStatus);
      onStatus(topic.status);
    }
    return () => {
      const t = this.topics.get(key);
      if (onStatus) t?.statusListeners.delete(onStatus);
      if (!t || !t.listeners.delete(fn) || t.listeners.size > 0) return;
      this.topics.delete(key);
      if (!this.toSubscribe.delete(key)) {
        this.toUnsubscribe.add(key);
        this.queueFlush();
      }
      // Keep the pair so the batched unsubscribe can name it.
      this.retired.set(key, { symbol: t.symbol, interval: t.interval });
    };
  }

  private readonly retired = new Map<string, { symbol: string; interval: Interval }>();

  /** The server's word on one topic (pending when nobody listens to it). */
  topicStatus(symbol: string, interval: Interval): TopicStatus {
    return this.topics.get(topicKey(symbol, interval))?.status ?? { state: 'pending' };
  }

  /**
   * Asks again for a topic that was refused (the symbol may exist again) or never answered (a rate-limited
   * subscribe gets an error without our id).
   */
  retry(symbol: string, interval: Interval): void {
    const key = topicKey(symbol, interval);
    const t = this.topics.get(key);
    if (!t || t.status.state === 'subscribed') return;
    this.setTopicStatus(t, { state: 'pending' });
    this.toSubscribe.add(key);
    this.queueFlush();
  }

  /** Sends a request and resolves with the reply that echoes its id. */
  request<T extends { type: string } = ServerMessage>(msg: ClientMessage): Promise<T> {
    const id: RequestId = `r${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      if (!this.sendRaw({ ...msg, id })) {
        reject(new RequestError('disconnected', 'not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(String(id));
        reject(new RequestError('timeout', `no reply to ${msg.type}`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(String(id), { resolve: resolve as (m: ServerMessage) => void, reject, timer });
    });
  }

  /** Sends a message that expects no reply (e.g. an unsubscribe); false when not connected. */
  send(msg: ClientMessage): boolean {
    return this.sendRaw(msg);
  }

  /** Topics with at least one listener (for the debug hook and tests). */
  activeTopics(): string[] {
    return [...this.topics.keys()];
  }

  private sendRaw(msg: ClientMessage): boolean {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(msg));
    return true;
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flushSubscriptions();
    });
  }

  /** Sends queued (un)subscriptions, one message per interval. */
  private flushSubscriptions(): void {
    if (this.state !== 'connected') return; // resent in full on open
    const unsubscribe = batchByInterval(this.toUnsubscribe, (k) => this.retired.get(k));
    this.toUnsubscribe.clear();
    this.retired.clear();
    for (const [interval, { pairs }] of unsubscribe) this.sendRaw({ type: 'unsubscribe', trading_pairs: pairs, interval });
    const subscribe = batchByInterval(this.toSubscribe, (k) => this.topics.get(k));
    this.toSubscribe.clear();
    for (const [interval, { pairs, keys }] of subscribe) this.sendSubscribe(interval, pairs, keys);
  }

  private sendSubscribe(interval: Interval, pairs: string[], keys: string[]): void {
    const id = `s${this.nextId++}`;
    if (this.sendRaw({ type: 'subscribe', trading_pairs: pairs, interval, id })) this.inFlight.set(id, keys);
  }

  /** The reply to one of our subscribe requests (subscribeReplies.ts reads it). */
  private handleSubscribeReply(msg: ServerMessage, keys: string[]): void {
    const topics = keys.map((k) => this.topics.get(k)).filter((t): t is Topic => t !== undefined);
    const reply = readSubscribeReply(msg, topics.map((t) => t.symbol));
    if (reply.kind === 'retry-later') setTimeout(() => this.resubscribe(topics), 1000);
    else if (reply.kind === 'one-by-one') this.resubscribe(topics, true);
    else topics.forEach((t, i) => this.setTopicStatus(t, reply.verdicts[i]));
  }

  private resubscribe(topics: Topic[], oneByOne = false): void {
    if (this.state !== 'connected') return; // resent in full on open
    const live = topics.filter((t) => this.topics.get(topicKey(t.symbol, t.interval)) === t);
    if (oneByOne) {
      for (const t of live) this.sendSubscribe(t.interval, [t.symbol], [topicKey(t.symbol, t.interval)]);
    } else {
      for (const t of live) this.toSubscribe.add(topicKey(t.symbol, t.interval));
      this.queueFlush();
    }
  }

  private setTopicStatus(t: Topic, status: TopicStatus): void {
    if (t.status.state === status.state && t.status.reason === status.reason) return;
    t.status = status;
    for (const fn of t.statusListeners) fn(status);
  }

  private handleOpen(): void {
    const wasReconnect = this.everConnected;
    this.everConnected = true;
    this.backoff.reset();
    this.lastMessageAt = Date.now();
    this.setState('connected');
    // A new socket has no subscriptions: send every live topic again.
    this.toUnsubscribe.clear();
    this.retired.clear();
    this.inFlight.clear();
    for (const [key, t] of this.topics) {
      this.setTopicStatus(t, { state: 'pending' });
      this.toSubscribe.add(key);
    }
    this.flushSubscriptions();
    this.startPing();
    for (const fn of this.openListeners) fn(wasReconnect);
  }

  private handleFrame(data: unknown): void {
    this.lastMessageAt = Date.now();
    if (typeof data !== 'string') return;
    const msg = parseServerMessage(data);
    if (!msg) return;
    if (msg.id !== undefined) {
      const keys = this.inFlight.get(String(msg.id));
      if (keys && (msg.type === 'subscribed' || msg.type === 'error')) {
        this.inFlight.delete(String(msg.id));
        this.handleSubscribeReply(msg, keys);
        return;
      }
      const p = this.pending.get(String(msg.id));
      if (p) {
        this.pending.delete(String(msg.id));
        clearTimeout(p.timer);
        if (msg.type === 'error') {
          const e = msg as unknown as ErrorReply;
          p.reject(new RequestError(e.code, e.message ?? e.code, typeof e.retry_after === 'number' ? e.retry_after : undefined));
        } else {
          p.resolve(msg);
        }
        return;
      }
    }
    if (msg.type === 'price_update') {
      const u = msg as unknown as PriceUpdate;
      const topic = this.topics.get(topicKey(u.symbol, u.interval));
      if (topic) for (const fn of topic.listeners) fn(u);
      return;
    }
    if (msg.type === 'error') {
      // Not tied to a request (e.g. rate_limited on a subscribe): visible, not fatal.
      console.warn('candlecast server error', msg.code, msg.message);
    }
    const listeners = this.typeListeners.get(msg.type);
    // Unknown types are ignored on purpose: newer servers may push more.
    if (listeners) for (const fn of listeners) fn(msg);
  }

  private handleClose(ws: WebSocket): void {
    if (this.socket !== ws) return;
    this.socket = null;
    this.inFlight.clear();
    for (const t of this.topics.values()) this.setTopicStatus(t, { state: 'pending' });
    this.stopPing();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RequestError('disconnected', 'connection closed'));
      this.pending.delete(id);
    }
    if (this.closedByUser) {
      this.setState('disconnected');
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = this.backoff.next();
    this.setState('disconnected', { retryInMs: delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private startPing(): void {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) {
        // Half-open connection: force the close path, which reconnects.
        this.socket?.close();
        return;
      }
      this.sendRaw({ type: 'ping' });
    }, PING_EVERY_MS);
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private setState(state: ConnectionState, info: { retryInMs?: number } = {}): void {
    this.state = state;
    for (const fn of this.stateListeners) fn(state, info);
  }
}
