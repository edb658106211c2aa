/**
 * The symbol list from `/api/symbols`, shared by every chart's searchable
 * picker through one <datalist>. Retries until the server answers.
 */
import { api } from '../net/api';
import { PRESET_SYMBOLS } from './layout';

export const SYMBOL_DATALIST_ID = 'symbol-list';

export class SymbolDirectory {
  private symbols: string[] = [];
  private readonly datalist: HTMLDataListElement;
  private loaded = false;

  constructor() {
    this.datalist = document.createElement('datalist');
    this.datalist.id = SYMBOL_DATALIST_ID;
    document.body.append(this.datalist);
    // Until the server answers, offer the presets so the picker is never empty.
    this.render([...PRESET_SYMBOLS]);
  }

  async load(): Promise<void> {
    for (let delay = 1000; !this.loaded; delay = Math.min(delay * 2, 15_000)) {
      try {
        const res = await api.symbols();
        if (Array.isArray(res.symbols)) {
          this.symbols = res.symbols.filter((s) => typeof s === 'string').sort();
          this.loaded = true;
          this.render(this.symbols);
          return;
        }
      } catch {
        /* server not up yet: retry below */
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** True when the symbol is known, or when the list is not known yet. */
  accepts(symbol: string): boolean {
    return !this.loaded || this.symbols.includes(symbol);
  }

  list(): readonly string[] {
    return this.symbols;
  }

  private render(list: string[]): void {
    this.datalist.replaceChildren(...list.map((s) => Object.assign(document.createElement('option'), { value: s })));
  }
}
