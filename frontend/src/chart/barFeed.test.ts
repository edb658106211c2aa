import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LogicalRange } from 'lightweight-charts';
import { Backoff } from '../state/backoff';
import type { Bar, UpsertOutcome } from '../state/bars';
import { Connection } from '../net/connection';
import { FakeSocket, latest } from '../net/fakeSocket';
import { BarFeed, FeedView } from './barFeed';

const M = 60_000;
const bar = (i: number, close = 100): Bar => ({ timestamp: i * M, open: close, high: close, low: close, close, volume: 1, trades: 1 }) as Bar;
const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

class View implements FeedView {
  merged: Array<[number, UpsertOutcome]> = [];
  log: string[] = [];
  range: LogicalRange | null = { from: 0, to: 10 } as LogicalRange;
  cleared() {
    this.log.push('cleared');
  }
  initialLimit() {
    return 300;
  }
  historyLoaded() {
    this.log.push('history');
  }
  barMerged(b: Bar, o: UpsertOutcome) {
    this.merged.push([b.timestamp / M, o]);
  }
  redrawAll() {
    this.log.push('redraw');
  }
  reindexed(delta: number) {
    this.log.push(`reindexed ${delta}`);
  }
  wentLive() {
    this.log.push('live');
  }
  stateChanged() {}
  referenceChanged() {}
  loadingOlderChanged() {}
  visibleRange() {
    return this.range;
  }
  updateReceived() {}
}

function setup() {
  const conn = new Connection({
    url: 'ws://test/ws',
    backoff: new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 }),
    createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
  });
  conn.connect();
  latest().open();
  const view = new View();
  const feed = new BarFeed(conn, view);
  return { conn, view, feed };
}

const requests = (type: string) => latest().sent.filter((m) => m.type === type);
const push = (b: Bar) => latest().receive({ type: 'price_update', symbol: 'BTCUSDT', interval: '1m', data: b });

describe('BarFeed', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('subscribes first, buffers live bars until the history is in, then applies them after it', async () => {
    const { view, feed } = setup();
    feed.start('BTCUSDT', '1m');
    await settle();
    expect(feed.state).toBe('loading');
    expect(requests('subscribe')).toHaveLength(1);
    const [hist] = requests('get_historical');
    expect(hist).toMatchObject({ trading_pair: 'BTCUSDT', interval: '1m', limit: 300 });
    push(bar(3, 103)); // arrives before the history
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: [bar(1), bar(2), bar(3)], id: hist.id });
    await settle();
    expect(feed.state).toBe('live');
    expect(view.log).toEqual(['cleared', 'history', 'live']);
    // The buffered update replaced the history's last bar, after it.
    expect(view.merged).toEqual([[3, 'replace-last']]);
    expect(feed.bars.last()?.close).toBe(103);
    expect(feed.received).toBe(1);
  });

  it('draws live bars once per frame, and keeps them while off screen', async () => {
    const { view, feed } = setup();
    feed.start('BTCUSDT', '1m');
    await settle();
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: [bar(1)], id: requests('get_historical')[0].id });
    await settle();
    feed.setOnScreen(false);
    push(bar(2, 1));
    push(bar(2, 2));
    await vi.advanceTimersByTimeAsync(100);
    expect(view.merged).toEqual([]);
    feed.setOnScreen(true);
    await vi.advanceTimersByTimeAsync(100);
    // The newest state of bar 2 only.
    expect(view.merged).toEqual([[2, 'append']]);
    expect(feed.bars.last()?.close).toBe(2);
  });

  it('a failed history is state error with the server message', async () => {
    const { feed } = setup();
    feed.start('GONEUSDT', '1m');
    await settle();
    latest().receive({ type: 'error', code: 'unknown_symbol', message: 'unknown symbol "GONEUSDT"', id: requests('get_historical')[0].id });
    await settle();
    expect(feed.state).toBe('error');
    expect(feed.dataError).toBe('unknown symbol "GONEUSDT"');
  });

  it('a history refused by the server budget is asked again after retry_after, not shown as an error', async () => {
    const { feed } = setup();
    feed.start('BTCUSDT', '1m');
    await settle();
    const first = requests('get_historical')[0];
    latest().receive({ type: 'error', code: 'rate_limited', message: 'limit history_bars_per_host', retry_after: 2, id: first.id });
    await settle();
    expect(feed.state).not.toBe('error');
    await vi.advanceTimersByTimeAsync(1500);
    expect(requests('get_historical')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(600);
    const again = requests('get_historical');
    expect(again).toHaveLength(2);
    expect(again[1].limit).toBe(first.limit);
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: [bar(1), bar(2)], id: again[1].id });
    await settle();
    expect(feed.state).toBe('live');
    expect(feed.bars.length).toBe(2);
  });

  it('after a reconnect fills the gap from its last bar, then is live again', async () => {
    const { view, feed } = setup();
    feed.start('BTCUSDT', '1m');
    await settle();
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: [bar(1), bar(2)], id: requests('get_historical')[0].id });
    await settle();
    const done = feed.resync();
    expect(feed.state).toBe('syncing');
    push(bar(5)); // live while syncing: buffered
    const fill = requests('get_historical')[1];
    expect(fill).toMatchObject({ start_time: 2 * M });
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: [bar(2), bar(3), bar(4)], id: fill.id });
    await done;
    expect(feed.state).toBe('live');
    expect(feed.bars.bars.map((b) => b.timestamp / M)).toEqual([1, 2, 3, 4, 5]);
    expect(feed.lastResync).toMatchObject({ count: 3, buffered: 1 });
    expect(view.log.filter((l) => l === 'live')).toHaveLength(2);
  });

  it('pages older bars in near the left edge and reports how many were added', async () => {
    const { view, feed } = setup();
    feed.start('BTCUSDT', '1m');
    await settle();
    const first = Array.from({ length: 300 }, (_, i) => bar(1000 + i));
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: first, id: requests('get_historical')[0].id });
    await settle();
    feed.viewMoved({ from: 10, to: 60 } as never);
    const page = requests('get_historical')[1];
    expect(page).toMatchObject({ end_time: 1000 * M, limit: 500 });
    view.range = { from: 100, to: 150 } as LogicalRange; // far from the edge once shifted: no second page
    latest().receive({ type: 'historical', symbol: 'BTCUSDT', interval: '1m', data: [bar(998), bar(999)], id: page.id });
    await settle();
    expect(view.log).toContain('reindexed 2');
    expect(feed.bars.length).toBe(302);
  });
});
