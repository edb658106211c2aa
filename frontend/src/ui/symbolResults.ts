/**
 * The add bar's result list: instruments of the server's symbol master matching what is typed (search
 * logic: state/masterSearch.ts), each with its exchange, name, type and source. Clicking one, or
 * Arrow keys then Enter, picks it. A list, not the <datalist> the pickers share: a datalist cannot show
 * an exchange beside a symbol in every browser, and tens of thousands of instruments do not fit in one.
 */
import { h } from '../dom';
import { api, InstrumentHit } from '../net/api';
import { describeHit, MasterSearch, SearchView } from '../state/masterSearch';

export class SymbolResults {
  readonly root: HTMLUListElement;
  private hits: InstrumentHit[] = [];
  private active = -1;
  private readonly search: MasterSearch;

  constructor(
    private readonly input: HTMLInputElement,
    private readonly pick: (hit: InstrumentHit) => void,
  ) {
    this.root = h('ul', { class: 'symbol-results', 'data-testid': 'symbol-results', role: 'listbox', hidden: true });
    this.search = new MasterSearch((q, limit, signal) => api.searchSymbols(q, limit, signal), (v) => this.render(v));
    input.setAttribute('aria-autocomplete', 'list');
    input.addEventListener('input', () => this.search.input(input.value));
    input.addEventListener('keydown', (e) => this.key(e));
    // A click on a result lands before the blur hides the list (mousedown, below).
    input.addEventListener('blur', () => this.close());
  }

  /** Whether Enter was taken by the list (a result was highlighted). */
  private key(e: KeyboardEvent): void {
    if (this.root.hidden) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = this.hits.length;
      if (n === 0) return;
      this.active = e.key === 'ArrowDown' ? (this.active + 1) % n : (this.active - 1 + n) % n;
      this.highlight();
    } else if (e.key === 'Enter' && this.active >= 0) {
      e.preventDefault();
      e.stopImmediatePropagation();
      this.choose(this.hits[this.active]);
    } else if (e.key === 'Escape') {
      this.close();
    }
  }

  private choose(hit: InstrumentHit): void {
    this.input.value = hit.symbol;
    this.close();
    this.pick(hit);
  }

  close(): void {
    this.search.cancel();
    this.root.hidden = true;
    this.active = -1;
  }

  private highlight(): void {
    [...this.root.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === this.active)));
  }

  private render(view: SearchView): void {
    this.hits = view.hits;
    this.active = -1;
    const items = view.hits.map((hit) => {
      const d = describeHit(hit);
      const li = h(
        'li',
        { role: 'option', 'data-testid': 'symbol-hit', 'data-symbol': d.symbol, 'data-live': String(hit.live), 'aria-selected': 'false' },
        h('span', { class: 'hit-symbol' }, hit.tradingsymbol || d.symbol),
        h('span', { class: 'hit-exchange', 'data-testid': 'hit-exchange' }, d.exchange),
        h('span', { class: 'hit-detail muted' }, d.detail),
      );
      li.addEventListener('mousedown', (e) => {
        e.preventDefault();
        this.choose(hit);
      });
      return li;
    });
    if (view.error) items.push(h('li', { class: 'hit-note muted' }, view.error));
    else if (view.total > view.hits.length) items.push(h('li', { class: 'hit-note muted' }, `${view.total - view.hits.length} more: type more to narrow`));
    this.root.replaceChildren(...items);
    this.root.hidden = items.length === 0 || document.activeElement !== this.input;
  }
}
