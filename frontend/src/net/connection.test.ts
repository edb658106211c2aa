import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Backoff } from '../state/backoff';
import { Connection, RequestError } from './connection';
import { FakeSocket, latest } from './fakeSocket';

const flush = () => new Promise((r) => queueMicrotask(() => r(undefined)));

function connect() {
  const conn = new Connection({
    url: 'ws://test/ws',
    backoff: new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 }),
    createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
  });
  conn.connect();
  return conn;
}

describe('Connection', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('batches subscriptions per interval and shares a topic between listeners', async () => {
    const conn = connect();
    latest().open();
    const a = vi.fn();
    const b = vi.fn();
    const offA = conn.subscribe('BTCUSDT', '1m', a);
    const offB = conn.subscribe('BTCUSDT', '1m', b);
    conn.subscribe('ETHUSDT', '1m', vi.fn());
    conn.subscribe('ETHUSDT', '5m', vi.fn());
    await flush();
    const subs = latest().sent.filter((m) => m.type === 'subscribe');
    expect(subs.map((m) => [m.interval, m.trading_pairs])).toEqual([
      ['1m', ['BTCUSDT', 'ETHUSDT']],
      ['5m', ['ETHUSDT']],
    ]);
    latest().receive({ type: 'price_update', symbol: 'BTCUSDT', interval: '1m', data: { timestamp: 1 } });
    expect(a).toHaveBeenCalledTimes(1);
    expect(b).toHaveBeenCalledTimes(1);
    offA();
    await flush();
    expect(latest().sent.some((m) => m.type === 'unsubscribe')).toBe(false);
    offB();
    await flush();
    expect(latest().sent.filter((m) => m.type === 'unsubscribe')).toEqual([
      { type: 'unsubscribe', trading_pairs: ['BTCUSDT'], interval: '1m' },
    ]);
  });

  it('matches replies by id and turns error replies into rejections', async () => {
    const conn = connect();
    latest().open();
    const p = conn.request({ type: 'get_historical', trading_pair: 'BTCUSDT', interval: '1m' });
    const q = conn.request({ type: 'get_historical', trading_pair: 'NOPE', interval: '1m' });
    const [r1, r2] = latest().sent.map((m) => m.id);
    latest().receive({ type: 'error', code: 'unknown_symbol', message: 'no', id: r2 });
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: [], id: r1 });
    await expect(p).resolves.toMatchObject({ type: 'historical' });
    await expect(q).rejects.toMatchObject({ code: 'unknown_symbol' });
  });

  it('rejects requests when not connected, and pending ones on close', async () => {
    const conn = connect();
    await expect(conn.request({ type: 'ping' })).rejects.toBeInstanceOf(RequestError);
    latest().open();
    const p = conn.request({ type: 'ping' });
    latest().close();
    await expect(p).rejects.toMatchObject({ code: 'disconnected' });
  });

  it('reconnects with backoff, resubscribes everything and reports state', async () => {
    const conn = connect();
    const states: string[] = [];
    const opens: boolean[] = [];
    conn.onState((s) => states.push(s));
    conn.onOpen((re) => opens.push(re));
    conn.subscribe('BTCUSDT', '1s', vi.fn());
    latest().open();
    await flush();
    latest().close();
    expect(conn.currentState).toBe('disconnected');
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all).toHaveLength(2);
    latest().close(); // refused again: next delay doubles
    vi.advanceTimersByTime(150);
    expect(FakeSocket.all).toHaveLength(2);
    vi.advanceTimersByTime(50);
    expect(FakeSocket.all).toHaveLength(3);
    latest().open();
    expect(latest().sent).toEqual([{ type: 'subscribe', trading_pairs: ['BTCUSDT'], interval: '1s', id: expect.any(String) }]);
    expect(opens).toEqual([false, true]);
    expect(states).toContain('disconnected');
    expect(states[states.length - 1]).toBe('connected');
    // After a successful open the backoff starts from the beginning again.
    latest().close();
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all).toHaveLength(4);
  });

  it('ignores unknown message types and routes marker types to listeners', () => {
    const conn = connect();
    latest().open();
    const fn = vi.fn();
    conn.onMessage('trade_marker', fn);
    latest().receive({ type: 'something_new', x: 1 });
    latest().receive({ type: 'trade_marker', symbol: 'BTCUSDT', data: {} });
    latest().onmessage?.({ data: 'not json' });
    expect(fn).toHaveBeenCalledTimes(1);
  });
});
