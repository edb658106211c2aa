import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { InstrumentHit, SymbolSearchResponse } from '../net/api';
import { describeHit, MasterSearch, searchQuery, SearchView, SEARCH_LIMIT } from './masterSearch';

const hit = (symbol: string, name = '', live = false): InstrumentHit => ({
  symbol,
  exchange: symbol.includes(':') ? symbol.split(':')[0] : '',
  tradingsymbol: symbol.split(':').pop() as string,
  name,
  kind: 'EQ',
  source: 'kite',
  live,
});

/** A server whose answers the test releases one by one, in any order. */
function fakeServer() {
  const calls: Array<{ q: string; limit: number; signal: AbortSignal; answer: (r: SymbolSearchResponse) => void }> = [];
  const search = (q: string, limit: number, signal: AbortSignal) =>
    new Promise<SymbolSearchResponse>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      calls.push({ q, limit, signal, answer: resolve });
    });
  return { calls, search };
}

describe('MasterSearch', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('asks once per pause in typing, not once per key', async () => {
    const server = fakeServer();
    const views: SearchView[] = [];
    const s = new MasterSearch(server.search, (v) => views.push(v), 200);
    for (const typed of ['r', 're', 'rel']) {
      s.input(typed);
      await vi.advanceTimersByTimeAsync(50);
    }
    expect(server.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(server.calls.map((c) => [c.q, c.limit])).toEqual([['rel', SEARCH_LIMIT]]);
    server.calls[0].answer({ total: 2, results: [hit('NSE:RELIANCE', 'RELIANCE INDUSTRIES', true), hit('BSE:RELIANCE')] });
    await vi.advanceTimersByTimeAsync(0);
    expect(views.at(-1)).toEqual({ query: 'rel', total: 2, hits: [hit('NSE:RELIANCE', 'RELIANCE INDUSTRIES', true), hit('BSE:RELIANCE')] });
  });

  it('drops the answer of a query the box no longer holds', async () => {
    const server = fakeServer();
    const views: SearchView[] = [];
    const s = new MasterSearch(server.search, (v) => views.push(v), 200);
    s.input('inf');
    await vi.advanceTimersByTimeAsync(200);
    s.input('tcs');
    expect(server.calls[0].signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    // The old answer arrives after all: not shown.
    server.calls[0].answer({ total: 1, results: [hit('NSE:INFY')] });
    server.calls[1].answer({ total: 1, results: [hit('NSE:TCS')] });
    await vi.advanceTimersByTimeAsync(0);
    expect(views.map((v) => v.hits.map((h) => h.symbol))).toEqual([['NSE:TCS']]);
  });

  it('does not send what the server would refuse, and clears the list', async () => {
    const server = fakeServer();
    const views: SearchView[] = [];
    const s = new MasterSearch(server.search, (v) => views.push(v), 200);
    for (const bad of ['', '   ', 'a'.repeat(33), '<script>', 'a%b']) s.input(bad);
    await vi.advanceTimersByTimeAsync(1000);
    expect(server.calls).toHaveLength(0);
    expect(views.every((v) => v.hits.length === 0)).toBe(true);
  });

  it('says why when the search fails', async () => {
    const views: SearchView[] = [];
    const s = new MasterSearch(() => Promise.reject(new Error('symbol search: HTTP 503')), (v) => views.push(v), 10);
    s.input('rel');
    await vi.advanceTimersByTimeAsync(10);
    expect(views.at(-1)).toMatchObject({ hits: [], error: 'symbol search: HTTP 503' });
  });
});

describe('searchQuery and describeHit', () => {
  it('keeps exchange prefixes and index names with spaces', () => {
    expect(searchQuery(' nse:rel ')).toBe('nse:rel');
    expect(searchQuery('NIFTY 50')).toBe('NIFTY 50');
    expect(searchQuery('$btc')).toBe('btc');
    expect(searchQuery('a:b:c')).toBeNull();
  });

  it('shows the exchange and says when a symbol has no feed', () => {
    expect(describeHit(hit('NSE:RELIANCE', 'RELIANCE INDUSTRIES', true))).toEqual({
      symbol: 'NSE:RELIANCE',
      exchange: 'NSE',
      detail: 'RELIANCE INDUSTRIES · EQ · kite',
    });
    expect(describeHit(hit('BTCUSDT')).exchange).toBe('—');
    expect(describeHit(hit('BSE:RELIANCE')).detail).toBe('EQ · kite · no feed');
  });
});
