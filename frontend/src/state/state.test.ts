import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from './backoff';
import { Bar, BarSeries, barsToKeep, findGaps, normalize, referenceCutoff, referencePrice } from './bars';
import { ema, emaNext, sma, smaLast } from './indicators';
import { INTERVALS, intervalMs, isInterval } from './intervals';
import { LAYOUT_KEY, MAX_CHARTS, defaultLayout, deserializeLayout, loadLayout, nextChartId, saveLayout, serializeLayout } from './layout';
import { MAX_MARKERS_PER_CHART, markerFromMessage, markersFromExecutedTrades, mergeMarkers } from './markers';
import { memoryStore } from './storage';

const bar = (timestamp: number, close = 1, extra: Partial<Bar> = {}): Bar => ({
  timestamp, open: close, high: close, low: close, close, volume: 1, ...extra,
});

describe('intervals', () => {
  it('knows all sixteen and their lengths', () => {
    expect(INTERVALS).toHaveLength(16);
    expect(intervalMs('1s')).toBe(1000);
    expect(intervalMs('15m')).toBe(900_000);
    expect(intervalMs('12h')).toBe(43_200_000);
    expect(intervalMs('1w')).toBe(604_800_000);
    expect(isInterval('3m')).toBe(true);
    expect(isInterval('2m')).toBe(false);
  });
});

describe('BarSeries upsert and merge', () => {
  it('classifies every kind of update', () => {
    const s = new BarSeries();
    s.reset([bar(120), bar(60), bar(0), bar(60, 2)]);
    expect(s.bars.map((b) => b.timestamp)).toEqual([0, 60, 120]);
    expect(s.at(60)!.close).toBe(2); // the later duplicate wins
    expect(s.upsert(bar(120, 5))).toBe('replace-last');
    expect(s.upsert(bar(180, 6))).toBe('append');
    expect(s.upsert(bar(60, 7, { closed: true }))).toBe('replace');
    expect(s.at(60)!.close).toBe(7);
    expect(s.upsert(bar(-60))).toBe('ignored');
    expect(s.upsert(bar(90))).toBe('insert');
    expect(s.bars.map((b) => b.timestamp)).toEqual([0, 60, 90, 120, 180]);
  });

  it('prepends only bars older than the first and reports how many', () => {
    const s = new BarSeries();
    s.reset([bar(100), bar(110)]);
    expect(s.prepend([bar(90), bar(80), bar(100, 9), bar(80)])).toBe(2);
    expect(s.bars.map((b) => b.timestamp)).toEqual([80, 90, 100, 110]);
    expect(s.at(100)!.close).toBe(1); // an overlapping bar does not overwrite
    expect(s.prepend([])).toBe(0);
  });

  it('finds the bar containing a time', () => {
    const s = new BarSeries();
    s.reset([bar(0), bar(60), bar(120)]);
    expect(s.barContaining(59)!.timestamp).toBe(0);
    expect(s.barContaining(60)!.timestamp).toBe(60);
    expect(s.barContaining(1000)!.timestamp).toBe(120);
    expect(s.barContaining(-1)).toBeUndefined();
  });

  it('normalize sorts and dedupes', () => {
    expect(normalize([bar(3), bar(1), bar(2), bar(1, 5)]).map((b) => [b.timestamp, b.close])).toEqual([[1, 5], [2, 1], [3, 1]]);
  });

  it('findGaps reports holes larger than one interval', () => {
    expect(findGaps([bar(0), bar(60), bar(120)], 60)).toEqual([]);
    expect(findGaps([bar(0), bar(60), bar(240), bar(300)], 60)).toEqual([[60, 240]]);
  });

  it('referencePrice: 24 h back when loaded, else the first open', () => {
    const H = 3_600_000;
    const hourly = Array.from({ length: 30 }, (_, i) => bar(i * H, 100 + i));
    // Last bar at 29h: the reference is the close of the bar that opened 24 h earlier (5h).
    expect(referencePrice(hourly, H)).toBe(105);
    const short = [bar(0, 10, { open: 9 }), bar(H, 11)];
    expect(referencePrice(short, H)).toBe(9);
    expect(referencePrice([bar(0, 10), bar(86_400_000, 12)], 86_400_000)).toBe(10);
    expect(referencePrice([], H)).toBeUndefined();
  });

  it('dropOlder keeps the newest bars and says how many went', () => {
    const s = new BarSeries();
    s.reset([bar(1), bar(2), bar(3), bar(4)]);
    expect(s.dropOlder(2)).toBe(2);
    expect(s.bars.map((b) => b.timestamp)).toEqual([3, 4]);
    expect(s.dropOlder(5)).toBe(0);
  });

  it('barsToKeep: lets scrolled-in bars go only at the live edge, never visible ones', () => {
    // 1,300 bars held, limit 900, keep 300, margin 50.
    expect(barsToKeep(1300, { from: 1220, to: 1302 }, 900, 300, 50), 'at the live edge').toBe(300);
    expect(barsToKeep(1300, { from: 200, to: 1302 }, 900, 300, 50), 'zoomed out: the visible ones and the margin stay').toBe(1150);
    expect(barsToKeep(1300, { from: 0, to: 1302 }, 900, 300, 50), 'everything visible: nothing to drop').toBeUndefined();
    expect(barsToKeep(1300, { from: 500, to: 600 }, 900, 300, 50), 'looking at history').toBeUndefined();
    expect(barsToKeep(800, { from: 720, to: 802 }, 900, 300, 50), 'under the limit').toBeUndefined();
    expect(barsToKeep(1300, null, 900, 300, 50)).toBeUndefined();
  });

  it('referenceCutoff: asks for the bar 24 h back only when it is not loaded, and referencePrice uses it', () => {
    const H = 3_600_000;
    const hourly = Array.from({ length: 30 }, (_, i) => bar(i * H, 100 + i));
    expect(referenceCutoff(hourly, H)).toBeUndefined();
    const recent = hourly.slice(20);
    expect(referenceCutoff(recent, H)).toBe(5 * H);
    expect(referencePrice(recent, H, bar(5 * H, 105))).toBe(105);
    expect(referencePrice(recent, H), 'nothing fetched: the first loaded open').toBe(120);
    expect(referencePrice(recent, H, bar(25 * H, 125)), 'a bar inside the loaded ones is not a reference').toBe(120);
    expect(referenceCutoff([bar(0, 10), bar(86_400_000, 12)], 86_400_000)).toBeUndefined();
    expect(referenceCutoff([], H)).toBeUndefined();
  });
});

describe('SMA / EMA', () => {
  it('sma is undefined until the period is full', () => {
    expect(sma([1, 2, 3, 4, 5], 3)).toEqual([undefined, undefined, 2, 3, 4]);
    expect(smaLast([1, 2, 3, 4, 5], 2)).toBe(4.5);
    expect(smaLast([1], 2)).toBeUndefined();
  });

  it('ema seeds with the SMA and then smooths with 2/(n+1)', () => {
    const out = ema([1, 2, 3, 4, 5], 3);
    expect(out.slice(0, 2)).toEqual([undefined, undefined]);
    expect(out[2]).toBe(2);
    expect(out[3]).toBe(3); // 0.5*4 + 0.5*2
    expect(out[4]).toBe(4);
    expect(emaNext(2, 4, 3)).toBe(3);
    expect(ema([1, 2], 3)).toEqual([undefined, undefined]);
  });

  it('the incremental EMA matches the full pass', () => {
    const values = Array.from({ length: 100 }, (_, i) => Math.sin(i / 5) * 10 + i);
    const full = ema(values, 10);
    const partial = ema(values.slice(0, 99), 10);
    expect(emaNext(partial[98]!, values[99], 10)).toBeCloseTo(full[99]!, 10);
  });
});

describe('reconnect backoff', () => {
  const opts = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
  it('grows exponentially up to the cap', () => {
    const top = (a: number) => backoffDelay(a, opts, () => 1);
    expect([0, 1, 2, 3, 4, 10].map(top)).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it('jitter stays within [half, full] of the step', () => {
    for (let a = 0; a < 8; a++) {
      const full = Math.min(1000, 100 * 2 ** a);
      expect(backoffDelay(a, opts, () => 0)).toBe(full / 2);
      const r = backoffDelay(a, opts);
      expect(r).toBeGreaterThanOrEqual(full / 2);
      expect(r).toBeLessThanOrEqual(full);
    }
  });
  it('counts attempts and resets', () => {
    const b = new Backoff(opts, () => 1);
    expect([b.next(), b.next(), b.next()]).toEqual([100, 200, 400]);
    b.reset();
    expect(b.next()).toBe(100);
  });
});

describe('layout persistence', () => {
  it('round-trips', () => {
    const store = memoryStore();
    const layout = { version: 1, charts: [{ id: 'c7', symbol: 'SOLUSDT', interval: '4h' as const, sma: true, ema: false }] };
    saveLayout(store, layout);
    expect(loadLayout(store)).toEqual(layout);
    expect(deserializeLayout(serializeLayout(defaultLayout()))).toEqual(defaultLayout());
  });

  it('falls back to the default for missing, corrupt or foreign data', () => {
    for (const raw of [null, '', '{', 'null', '42', '[]', '{"version":2,"charts":[]}', '{"version":1}', '{"version":1,"charts":{}}']) {
      expect(deserializeLayout(raw)).toEqual(defaultLayout());
    }
  });

  it('keeps valid charts and drops invalid ones', () => {
    const raw = JSON.stringify({
      version: 1,
      charts: [
        { id: 'c1', symbol: 'BTCUSDT', interval: '1m', sma: true, ema: 'yes' },
        { id: 'c1', symbol: 'ETHUSDT', interval: '1m' }, // duplicate id
        { id: 'c2', symbol: 'btc usdt', interval: '1m' },
        { id: 'c3', symbol: 'ETHUSDT', interval: '2m' },
        { id: '<script>', symbol: 'ETHUSDT', interval: '1m' },
        'junk',
        { id: 'c4', symbol: 'XRPUSDT', interval: '1w' },
      ],
    });
    expect(deserializeLayout(raw).charts).toEqual([
      { id: 'c1', symbol: 'BTCUSDT', interval: '1m', sma: true, ema: false },
      { id: 'c4', symbol: 'XRPUSDT', interval: '1w', sma: false, ema: false },
    ]);
  });

  it('keeps an intentionally empty grid and caps the number of charts', () => {
    expect(deserializeLayout('{"version":1,"charts":[]}').charts).toEqual([]);
    const many = Array.from({ length: 40 }, (_, i) => ({ id: `c${i}`, symbol: 'BTCUSDT', interval: '1m' }));
    expect(deserializeLayout(JSON.stringify({ version: 1, charts: many })).charts).toHaveLength(MAX_CHARTS);
  });

  it('uses the layout key and makes fresh ids', () => {
    const store = memoryStore({ [LAYOUT_KEY]: '{broken' });
    expect(loadLayout(store)).toEqual(defaultLayout());
    expect(nextChartId([])).toBe('c1');
    expect(nextChartId(defaultLayout().charts)).toBe('c3');
  });
});

describe('executed-trade markers (GET /api/trades)', () => {
  it('turns each executed trade into a trade marker and skips malformed ones', () => {
    const reply = {
      symbol: 'AAPL',
      trades: [
        { timestamp: 1672567200000, time: '2023-01-01T10:00:00.000Z', symbol: 'AAPL', side: 'BUY', quantity: 100, price: 150, profit_loss: 25.5, strategy: 'Three Red Bodies' },
        { timestamp: 1672567500000, symbol: 'AAPL', side: 'SELL', quantity: 50, price: 151.5, profit_loss: null, strategy: '' },
        { symbol: 'AAPL', side: 'BUY' },
        'garbage',
      ],
    };
    expect(markersFromExecutedTrades(reply)).toEqual([
      { time: 1672567200000, kind: 'trade', side: 'buy', text: 'BUY 100 @ 150', price: 150 },
      { time: 1672567500000, kind: 'trade', side: 'sell', text: 'SELL 50 @ 151.5', price: 151.5 },
    ]);
    expect(markersFromExecutedTrades({ error: 'x' })).toEqual([]);
    expect(markersFromExecutedTrades(null)).toEqual([]);
  });
});

describe('marker messages', () => {
  it('reads trade_marker and signal messages', () => {
    expect(
      markerFromMessage({ type: 'trade_marker', symbol: 'BTCUSDT', data: { timestamp: 5, side: 'BUY', price: 10, quantity: 2 } }),
    ).toEqual({ symbol: 'BTCUSDT', interval: undefined, marker: { time: 5, kind: 'trade', side: 'buy', text: 'BUY 2 @ 10', price: 10 } });
    expect(
      markerFromMessage({ type: 'signal', symbol: 'ETHUSDT', interval: '1m', data: { timestamp: 7, direction: 'short', strategy: 'ema_cross' } }),
    ).toMatchObject({ symbol: 'ETHUSDT', interval: '1m', marker: { kind: 'signal', side: 'short', text: 'ema_cross short' } });
  });

  it('rejects malformed messages', () => {
    expect(markerFromMessage({ type: 'trade_marker', symbol: 'BTCUSDT', data: { side: 'buy' } })).toBeNull();
    expect(markerFromMessage({ type: 'trade_marker', symbol: 'BTCUSDT', data: { timestamp: 1, side: 'hold' } })).toBeNull();
    expect(markerFromMessage({ type: 'signal', data: { timestamp: 1, direction: 'long' } })).toBeNull();
    expect(markerFromMessage({ type: 'price_update', symbol: 'X', data: { timestamp: 1, side: 'buy' } })).toBeNull();
  });

  it('merge keeps time order and caps the count', () => {
    const m = (time: number) => ({ time, kind: 'trade' as const, side: 'buy' as const });
    expect(mergeMarkers([m(3), m(1)], [m(2)]).map((x) => x.time)).toEqual([1, 2, 3]);
    const many = Array.from({ length: MAX_MARKERS_PER_CHART + 5 }, (_, i) => m(i));
    const merged = mergeMarkers(many, []);
    expect(merged).toHaveLength(MAX_MARKERS_PER_CHART);
    expect(merged[0].time).toBe(5);
  });
});
