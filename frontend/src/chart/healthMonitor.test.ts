import { describe, expect, it } from 'vitest';
import type { TopicStatus } from '../net/connection';
import type { Interval } from '../state/intervals';
import type { DataState, HealthView } from './chartHealth';
import { HealthMonitor } from './healthMonitor';

const MIN = 60_000;

/** A chart's facts as plain data, and what the monitor did with them. */
function setup() {
  const feed = { state: 'live' as DataState, dataError: '', subscription: { state: 'subscribed' } as TopicStatus, lastActivityAt: 0 as number | null };
  const conn = { currentState: 'connected' as 'connected' | 'disconnected', retries: [] as string[] };
  const shown: HealthView[] = [];
  let counted = 0;
  const monitor = new HealthMonitor({
    feed: () => feed,
    conn: { get currentState() { return conn.currentState; }, retry: (s: string, i: Interval) => conn.retries.push(`${s} ${i}`) } as never,
    topic: () => ({ symbol: 'BTCUSDT', interval: '1m' }),
    stepMs: () => MIN,
    show: (v) => shown.push(v),
    counted: () => counted++,
  });
  return { feed, conn, shown, monitor, counted: () => counted };
}

describe('HealthMonitor', () => {
  it('shows a health once, and again only when it changes', () => {
    const t = setup();
    t.monitor.refresh(1000);
    t.monitor.refresh(2000);
    expect(t.shown.map((v) => v.health)).toEqual(['live']);
    t.conn.currentState = 'disconnected';
    t.monitor.refresh(3000);
    expect(t.shown.map((v) => v.health)).toEqual(['live', 'offline']);
    expect(t.counted()).toBe(2);
  });

  it('rewords a stale chart as its silence grows without making the page recount', () => {
    const t = setup();
    t.monitor.refresh(2 * MIN);
    t.monitor.refresh(3 * MIN);
    expect(t.shown.map((v) => v.health)).toEqual(['stale', 'stale']);
    expect(t.shown[0].detail).not.toBe(t.shown[1].detail);
    expect(t.counted()).toBe(1);
  });

  it('asks for the topic again when a subscribe was never answered and the chart went stale', () => {
    const t = setup();
    t.feed.subscription = { state: 'pending' };
    t.monitor.refresh(1000);
    expect(t.conn.retries).toEqual([]);
    t.monitor.refresh(2 * MIN);
    expect(t.conn.retries).toEqual(['BTCUSDT 1m']);
  });

  it('says a live update ended the silence at once, and ignores updates of a live chart', () => {
    const t = setup();
    t.monitor.refresh(1000);
    t.monitor.updateReceived();
    expect(t.shown).toHaveLength(1);
    // Silent for two intervals, then an update: performance.now() is far past lastActivityAt = 0...
    t.monitor.refresh(2 * MIN);
    expect(t.monitor.current.health).toBe('stale');
    // ...so the update moves lastActivityAt to now, as the feed does.
    t.feed.lastActivityAt = performance.now();
    t.monitor.updateReceived();
    expect(t.monitor.current.health).toBe('live');
    expect(t.shown.map((v) => v.health)).toEqual(['live', 'stale', 'live']);
  });
});
