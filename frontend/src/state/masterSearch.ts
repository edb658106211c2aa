/**
 * Search-as-you-type over the server's symbol master (`GET /api/symbols?q=`): what the add bar's result
 * list shows. Typing is debounced (one request per pause, not per key), a newer query aborts the older
 * request and an answer that arrives late is dropped, so the list always matches what is in the box.
 * Queries the server would refuse (too long, other characters) are not sent. No DOM here: the list is
 * drawn by ui/symbolResults.ts.
 */
import type { InstrumentHit, SymbolSearchResponse } from '../net/api';

/** Pause after the last key before asking (ms). */
export const SEARCH_DEBOUNCE_MS = 200;
/** Results asked for: a list to pick from, not a catalogue (the server allows up to 100). */
export const SEARCH_LIMIT = 20;
/** The server's own bound on `q` (docs/SECURITY.md). */
const MAX_QUERY = 32;

export type Search = (q: string, limit: number, signal: AbortSignal) => Promise<SymbolSearchResponse>;

export interface SearchView {
  query: string;
  hits: InstrumentHit[];
  total: number;
  /** Why there are no hits, when a search failed. */
  error?: string;
}

/** What a query is sent as, or null when it should not be sent. */
export function searchQuery(input: string): string | null {
  const q = input.trim().replace(/^\$/, '');
  if (!q || q.length > MAX_QUERY || !/^([A-Za-z0-9]{1,8}:)?[A-Za-z0-9 ._&-]*$/.test(q)) return null;
  return q;
}

/** How a hit is shown: the symbol, then its exchange, name, type and source. */
export function describeHit(hit: InstrumentHit): { symbol: string; exchange: string; detail: string } {
  const detail = [hit.name, hit.kind, hit.source, hit.live ? '' : 'no feed'].filter(Boolean).join(' · ');
  return { symbol: hit.symbol, exchange: hit.exchange || '—', detail };
}

export class MasterSearch {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inflight: AbortController | null = null;
  /** Bumped by every input: an answer for an older one is not shown. */
  private generation = 0;

  constructor(
    private readonly search: Search,
    private readonly show: (view: SearchView) => void,
    private readonly debounceMs = SEARCH_DEBOUNCE_MS,
  ) {}

  /** The box now holds `input`. */
  input(input: string): void {
    const gen = ++this.generation;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.inflight?.abort();
    this.inflight = null;
    const q = searchQuery(input);
    if (q === null) {
      this.show({ query: input, hits: [], total: 0 });
      return;
    }
    this.timer = setTimeout(() => void this.run(q, gen), this.debounceMs);
  }

  /** Stops any pending search (the list was closed). */
  cancel(): void {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.inflight?.abort();
    this.inflight = null;
  }

  private async run(q: string, gen: number): Promise<void> {
    this.timer = null;
    const ctl = new AbortController();
    this.inflight = ctl;
    try {
      const res = await this.search(q, SEARCH_LIMIT, ctl.signal);
      if (gen !== this.generation) return;
      const hits = Array.isArray(res.results) ? res.results.filter((h) => typeof h?.symbol === 'string') : [];
      this.show({ query: q, hits, total: typeof res.total === 'number' ? res.total : hits.length });
    } catch (e) {
      if (gen !== this.generation || ctl.signal.aborted) return;
      this.show({ query: q, hits: [], total: 0, error: e instanceof Error ? e.message : String(e) });
    } finally {
      if (this.inflight === ctl) this.inflight = null;
    }
  }
}
