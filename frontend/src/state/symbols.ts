/**
 * The symbol list from `/api/symbols`, shared by every chart's searchable
 * picker through one <datalist>. Retries until the server answers, then
 * fetches the list again every minute and soon after script activity (a
 * script may have created a symbol), and before calling a typed symbol
 * unknown. Matching what is typed: symbolSearch.ts.
 */
import { api } from '../net/api';
import { MarketState, marketState, SessionSpec } from './marketSession';
import { PRESET_SYMBOLS } from './layout';
import { SymbolMatch, normalizeQuery, resolveSymbol } from './symbolSearch';

export const SYMBOL_DATALIST_ID = 'symbol-list';

/** How often the list is fetched again (ms). */
const REFRESH_EVERY_MS = 60_000;
/** Script activity asks for a refresh this long after it (several updates in a burst: one fetch). */
const ACTIVITY_REFRESH_DELAY_MS = 1000;

export class SymbolDirectory {
  private symbols: string[] = [];
  /** Exchange sessions by symbol (`details[].session` of `/api/symbols`); crypto symbols have none. */
  private sessions = new Map<string, SessionSpec>();
  private readonly datalist: HTMLDataListElement;
  private loaded = false;
  private refreshing: Promise<void> | null = null;
  private activityTimer: ReturnType<typeof setTimeout> | null = null;

  constructor() {
    this.datalist = document.createElement('datalist');
    this.datalist.id = SYMBOL_DATALIST_ID;
    document.body.append(this.datalist);
    // Until the server answers, offer the presets so the picker is never empty.
    this.render([...PRESET_SYMBOLS]);
  }

  async load(): Promise<void> {
    for (let delay = 1000; !this.loaded; delay = Math.min(delay * 2, 15_000)) {
      await this.refresh();
      if (!this.loaded) await new Promise((r) => setTimeout(r, delay));
    }
    setInterval(() => void this.refresh(), REFRESH_EVERY_MS);
  }

  /** Fetches the list again (one request at a time); a failure keeps the old list. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const res = await api.symbols();
        if (Array.isArray(res.symbols)) {
          const list = res.symbols.filter((s): s is string => typeof s === 'string').sort();
          this.loaded = true;
          this.sessions = new Map(
            (res.details ?? []).filter((d) => d.session && typeof d.session.timezone === 'string').map((d) => [d.symbol, d.session as SessionSpec]),
          );
          if (list.join() !== this.symbols.join()) {
            this.symbols = list;
            this.render(list);
          }
        }
      } catch {
        /* server away: keep what we have */
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** A script reported trades or market data: a symbol may have been created. */
  noteActivity(): void {
    if (this.activityTimer) return;
    this.activityTimer = setTimeout(() => {
      this.activityTimer = null;
      void this.refresh();
    }, ACTIVITY_REFRESH_DELAY_MS);
  }

  /**
   * The ticker meant by what was typed, or why there is none. An unknown one is checked against a fresh
   * list first (it may have been created since); before the list is known, the input is taken as typed.
   */
  async resolve(input: string): Promise<SymbolMatch> {
    if (!this.loaded) {
      const q = normalizeQuery(input);
      return q ? { symbol: q } : { error: 'Type a symbol.' };
    }
    const first = resolveSymbol(input, this.symbols);
    if ('symbol' in first) return first;
    await this.refresh();
    return resolveSymbol(input, this.symbols);
  }

  /** True when the symbol is known, or when the list is not known yet. */
  accepts(symbol: string): boolean {
    return !this.loaded || this.symbols.includes(symbol);
  }

  /** The symbol's market now, when it trades in sessions; undefined for markets open around the clock. */
  marketState(symbol: string, nowMs = Date.now()): MarketState | null | undefined {
    const spec = this.sessions.get(symbol);
    return spec ? marketState(spec, nowMs) : undefined;
  }

  list(): readonly string[] {
    return this.symbols;
  }

  private render(list: string[]): void {
    this.datalist.replaceChildren(...list.map((s) => Object.assign(document.createElement('option'), { value: s })));
  }
}
