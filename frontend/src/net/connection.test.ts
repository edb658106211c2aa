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

  describe('subscription replies', () => {
    const subscribes = () => latest().sent.filter((m) => m.type === 'subscribe');

    it('all-or-nothing refusal: asks for each topic alone, so only the unknown one is refused', async () => {
      const conn = connect();
      latest().open();
      const btc: string[] = [];
      const gone: Array<string | undefined> = [];
      conn.subscribe('BTCUSDT', '1m', vi.fn(), (s) => btc.push(s.state));
      conn.subscribe('GONEUSDT', '1m', vi.fn(), (s) => gone.push(s.state === 'refused' ? s.reason : s.state));
      await flush();
      const [batch] = subscribes();
      expect(batch.trading_pairs).toEqual(['BTCUSDT', 'GONEUSDT']);
      latest().receive({ type: 'error', code: 'unknown_symbol', message: 'unknown symbol(s): GONEUSDT; nothing was subscribed', id: batch.id });
      const singles = subscribes().slice(1);
      expect(singles.map((m) => m.trading_pairs)).toEqual([['BTCUSDT'], ['GONEUSDT']]);
      latest().receive({ type: 'subscribed', trading_pairs: ['BTCUSDT'], interval: '1m', id: singles[0].id });
      latest().receive({ type: 'error', code: 'unknown_symbol', message: 'unknown symbol(s): GONEUSDT', id: singles[1].id });
      expect(btc).toEqual(['pending', 'subscribed']);
      expect(gone).toEqual(['pending', 'unknown symbol(s): GONEUSDT']);
      expect(conn.topicStatus('GONEUSDT', '1m').state).toBe('refused');
    });

    it('per-topic refusal list: the named topics are refused, the others subscribed', async () => {
      const conn = connect();
      latest().open();
      conn.subscribe('BTCUSDT', '1m', vi.fn());
      conn.subscribe('GONEUSDT', '1m', vi.fn());
      conn.subscribe('OLDUSDT', '1m', vi.fn());
      await flush();
      const [batch] = subscribes();
      latest().receive({
        type: 'subscribed',
        trading_pairs: ['BTCUSDT'],
        refused: [{ trading_pair: 'GONEUSDT', code: 'unknown_symbol', message: 'unknown symbol GONEUSDT' }, 'OLDUSDT'],
        interval: '1m',
        id: batch.id,
      });
      expect(subscribes()).toHaveLength(1);
      expect(conn.topicStatus('BTCUSDT', '1m')).toEqual({ state: 'subscribed' });
      expect(conn.topicStatus('GONEUSDT', '1m')).toEqual({ state: 'refused', reason: 'unknown symbol GONEUSDT' });
      expect(conn.topicStatus('OLDUSDT', '1m').state).toBe('refused');
    });

    it('a topic left out of the granted list counts as refused', async () => {
      const conn = connect();
      latest().open();
      conn.subscribe('BTCUSDT', '1m', vi.fn());
      conn.subscribe('GONEUSDT', '1m', vi.fn());
      await flush();
      latest().receive({ type: 'subscribed', trading_pairs: ['btcusdt'], interval: '1m', id: subscribes()[0].id });
      expect(conn.topicStatus('BTCUSDT', '1m').state).toBe('subscribed');
      expect(conn.topicStatus('GONEUSDT', '1m').state).toBe('refused');
    });

    it('a refused topic is asked for again on retry and after a reconnect', async () => {
      const conn = connect();
      latest().open();
      conn.subscribe('GONEUSDT', '1m', vi.fn());
      await flush();
      latest().receive({ type: 'error', code: 'unknown_symbol', message: 'no', id: subscribes()[0].id });
      expect(conn.topicStatus('GONEUSDT', '1m').state).toBe('refused');
      conn.retry('GONEUSDT', '1m');
      expect(conn.topicStatus('GONEUSDT', '1m').state).toBe('pending');
      await flush();
      expect(subscribes()).toHaveLength(2);
      latest().receive({ type: 'subscribed', trading_pairs: ['GONEUSDT'], interval: '1m', id: subscribes()[1].id });
      expect(conn.topicStatus('GONEUSDT', '1m').state).toBe('subscribed');
      latest().close();
      expect(conn.topicStatus('GONEUSDT', '1m').state).toBe('pending');
    });
  });
});
