import { beforeEach, describe, expect, it, vi } from 'vitest';
import { Backoff } from '../state/backoff';
import { Connection } from './connection';
import { StreamHub, indicatorStreamKey, signalStreamKey } from './streams';
import { FakeSocket, latest } from './fakeSocket';

const settle = () => new Promise((r) => setTimeout(r, 0));
const ofType = (type: string) => latest().sent.filter((m) => m.type === type);

function setup() {
  const conn = new Connection({
    url: 'ws://test/ws',
    backoff: new Backoff({ initialMs: 1, maxMs: 2, factor: 2, jitter: 0 }),
    createSocket: () => new FakeSocket() as unknown as WebSocket,
  });
  const hub = new StreamHub(conn);
  conn.connect();
  latest().open();
  return { conn, hub };
}

const listener = () => ({ onHistory: vi.fn(), onLive: vi.fn(), onError: vi.fn() });

describe('StreamHub', () => {
  beforeEach(() => {
    FakeSocket.all = [];
  });

  it('shares a signal stream, gives each listener a history, unsubscribes after the last', async () => {
    const { hub } = setup();
    const a = listener();
    const b = listener();
    const offA = hub.openSignals('BTCUSDT', '1s', a);
    const [sub] = ofType('subscribe_signals');
    expect(sub).toMatchObject({ trading_pair: 'BTCUSDT', interval: '1s' });
    const sig = { symbol: 'BTCUSDT', interval: '1s', time: 1000, side: 'buy', price: 1, strategy: 'ema_cross' };
    latest().receive({ type: 'signals_history', symbol: 'BTCUSDT', interval: '1s', data: [sig], id: sub.id });
    await settle();
    expect(a.onHistory).toHaveBeenCalledWith([sig]);

    // A second chart: subscribes again to get its own history; live messages reach both once.
    const offB = hub.openSignals('BTCUSDT', '1s', b);
    const second = ofType('subscribe_signals')[1];
    latest().receive({ type: 'signals_history', symbol: 'BTCUSDT', interval: '1s', data: [sig], id: second.id });
    await settle();
    expect(b.onHistory).toHaveBeenCalledTimes(1);
    expect(a.onHistory).toHaveBeenCalledTimes(1);
    latest().receive({ type: 'signal', ...sig, time: 2000 });
    expect(a.onLive).toHaveBeenCalledTimes(1);
    expect(b.onLive).toHaveBeenCalledTimes(1);
    latest().receive({ type: 'signal', ...sig, interval: '1m' }); // another topic
    expect(a.onLive).toHaveBeenCalledTimes(1);

    offA();
    expect(ofType('unsubscribe_signals')).toHaveLength(0);
    offB();
    expect(ofType('unsubscribe_signals')).toEqual([{ type: 'unsubscribe_signals', trading_pair: 'BTCUSDT', interval: '1s' }]);
    expect(hub.activeStreams()).toEqual([]);
  });

  it('routes indicator values by canonical params and resubscribes after a reconnect', async () => {
    const { hub } = setup();
    const a = listener();
    hub.openIndicator('BTCUSDT', '1m', 'bollinger', { period: 20, k: 2 }, 500, a);
    const [sub] = ofType('subscribe_indicator');
    expect(sub).toMatchObject({ indicator: 'bollinger', params: { period: 20, k: 2 }, history: 500 });
    // The server writes 2.0 and sorts the keys: still the same stream.
    const params = { k: 2.0, period: 20 };
    latest().receive({ type: 'indicator_history', symbol: 'BTCUSDT', interval: '1m', indicator: 'bollinger', params, data: [{ timestamp: 0, closed: true, upper: 3, middle: 2, lower: 1 }], id: sub.id });
    await settle();
    expect(a.onHistory).toHaveBeenCalledTimes(1);
    latest().receive({ type: 'indicator', symbol: 'BTCUSDT', interval: '1m', indicator: 'bollinger', params, data: { timestamp: 60_000, closed: false, upper: 4, middle: 2, lower: 0 } });
    expect(a.onLive).toHaveBeenCalledWith({ timestamp: 60_000, closed: false, upper: 4, middle: 2, lower: 0 });

    latest().close();
    await new Promise((r) => setTimeout(r, 10));
    latest().open();
    const [again] = ofType('subscribe_indicator');
    expect(again).toMatchObject({ indicator: 'bollinger', trading_pair: 'BTCUSDT' });
    latest().receive({ type: 'indicator_history', symbol: 'BTCUSDT', interval: '1m', indicator: 'bollinger', params, data: [], id: again.id });
    await settle();
    expect(a.onHistory).toHaveBeenCalledTimes(2);
  });

  it('reports a refused subscription to its listener', async () => {
    const { hub } = setup();
    const a = listener();
    hub.openIndicator('BTCUSDT', '1m', 'macd', { fast: 30, slow: 26, signal: 9 }, 500, a);
    const [sub] = ofType('subscribe_indicator');
    latest().receive({ type: 'error', code: 'invalid_parameter', message: 'invalid parameters: fast (30) must be below slow (26)', id: sub.id });
    await settle();
    expect(a.onError).toHaveBeenCalledTimes(1);
    expect(a.onError.mock.calls[0][0].message).toMatch(/must be below/);
  });

  it('builds keys that ignore key order and 20 vs 20.0', () => {
    expect(indicatorStreamKey('btcusdt', '1m', 'macd', { slow: 26, fast: 12, signal: 9 })).toBe(indicatorStreamKey('BTCUSDT', '1m', 'macd', { fast: 12.0, signal: 9, slow: 26 }));
    expect(signalStreamKey('btcusdt', '1s')).toBe('signals|BTCUSDT|1s');
  });
});

describe('StreamHub pacing', () => {
  it('sends at most 20 subscribes a second and the rest a second later', async () => {
    FakeSocket.all = [];
    vi.useFakeTimers();
    try {
      const { hub } = setup();
      for (let i = 1; i <= 25; i++) hub.openIndicator('BTCUSDT', '1m', 'ema', { period: i }, 10, listener());
      expect(ofType('subscribe_indicator')).toHaveLength(20);
      await vi.advanceTimersByTimeAsync(1000);
      expect(ofType('subscribe_indicator')).toHaveLength(25);
    } finally {
      vi.useRealTimers();
    }
  });
});
