/**
 * The controls above and beside one chart: symbol picker, interval,
 * last price / change, overlay toggles, drawing tools and chart actions.
 */
import { button, h, icon } from '../dom';
import type { DrawingKind } from '../drawings/model';
import { INTERVALS, Interval } from '../state/intervals';
import { SYMBOL_DATALIST_ID } from '../state/symbols';

export interface HeaderActions {
  onSymbol(symbol: string): void;
  onInterval(interval: Interval): void;
  onToggle(kind: 'sma' | 'ema'): void;
  /** Show or hide the strategy signal markers (e.g. ema_cross) of this chart. */
  onToggleSignals(): void;
  onTool(kind: DrawingKind): void;
  onDeleteDrawing(): void;
  onDuplicate(): void;
  onRemove(): void;
}

const TOOLS: Array<{ kind: DrawingKind; label: string; title: string }> = [
  { kind: 'trend', label: '╱', title: 'Trend line (2 clicks)' },
  { kind: 'hline', label: '─', title: 'Horizontal line (1 click)' },
  { kind: 'fib', label: 'Fib', title: 'Fibonacci retracement (2 clicks: start, end)' },
  { kind: 'rect', label: '▭', title: 'Rectangle (2 clicks: corners)' },
];

export class ChartHeader {
  readonly root: HTMLElement;
  readonly toolbar: HTMLElement;
  private readonly symbolInput: HTMLInputElement;
  private readonly intervalSelect: HTMLSelectElement;
  private readonly price: HTMLElement;
  private readonly change: HTMLElement;
  private readonly toggles: Record<'sma' | 'ema', HTMLButtonElement>;
  private readonly tools = new Map<DrawingKind, HTMLButtonElement>();
  private readonly deleteBtn: HTMLButtonElement;
  private readonly healthBadge: HTMLElement;
  private readonly signalsToggle: HTMLButtonElement;

  constructor(symbol: string, interval: Interval, actions: HeaderActions) {
    this.symbolInput = h('input', {
      class: 'symbol-input',
      'data-testid': 'symbol-input',
      list: SYMBOL_DATALIST_ID,
      value: symbol,
      spellcheck: 'false',
      autocomplete: 'off',
      'aria-label': 'Symbol',
    });
    const commit = () => {
      const v = this.symbolInput.value.trim().toUpperCase();
      if (v) actions.onSymbol(v);
    };
    this.symbolInput.addEventListener('change', commit);
    this.symbolInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') this.symbolInput.blur();
    });
    // Select-all on focus makes typing a new symbol a one-step action.
    this.symbolInput.addEventListener('focus', () => this.symbolInput.select());

    this.intervalSelect = h(
      'select',
      { class: 'interval-select', 'data-testid': 'interval-select', 'aria-label': 'Interval' },
      ...INTERVALS.map((i) => h('option', { value: i, selected: i === interval }, i)),
    );
    this.intervalSelect.addEventListener('change', () => actions.onInterval(this.intervalSelect.value as Interval));

    this.price = h('span', { class: 'last-price', 'data-testid': 'last-price' }, '—');
    this.change = h('span', { class: 'change-pct', 'data-testid': 'change-pct', title: 'Change over 24 h (or since the first loaded bar)' }, '—');

    this.toggles = {
      sma: button('toggle-sma', 'SMA', 'Simple moving average (20)', () => actions.onToggle('sma')),
      ema: button('toggle-ema', 'EMA', 'Exponential moving average (50)', () => actions.onToggle('ema')),
    };

    this.signalsToggle = button('toggle-signals', 'Signals', 'Show or hide strategy signal markers', () => actions.onToggleSignals());

    for (const t of TOOLS) {
      this.tools.set(t.kind, button(`tool-${t.kind}`, t.label, t.title, () => actions.onTool(t.kind)));
    }
    this.deleteBtn = button('drawing-delete', icon('trash'), 'Delete selected drawing (Delete key)', () => actions.onDeleteDrawing());
    this.deleteBtn.disabled = true;

    // Live / Loading / Stale / Not live / Error / Offline, always visible next to the price it qualifies.
    this.healthBadge = h('span', { class: 'chart-health', 'data-testid': 'chart-health', 'data-health': 'loading' }, 'Loading');

    this.root = h(
      'header',
      { class: 'chart-head' },
      h('div', { class: 'chart-head-left' }, this.symbolInput, this.intervalSelect, this.price, this.change, this.healthBadge),
      h(
        'div',
        { class: 'chart-head-right' },
        this.toggles.sma,
        this.toggles.ema,
        this.signalsToggle,
        button('chart-duplicate', icon('duplicate'), 'Duplicate chart', () => actions.onDuplicate()),
        button('chart-remove', '✕', 'Remove chart', () => actions.onRemove()),
      ),
    );
    this.toolbar = h('div', { class: 'draw-toolbar', role: 'toolbar', 'aria-label': 'Drawing tools' }, ...this.tools.values(), this.deleteBtn);
  }

  /** Adds a button next to the overlay toggles (e.g. the indicator menu). */
  addAction(el: HTMLElement): void {
    this.toggles.ema.after(el);
  }

  setSymbol(symbol: string): void {
    this.symbolInput.value = symbol;
  }

  setQuote(price: string, change: string, direction: 'up' | 'down' | 'flat'): void {
    if (this.price.textContent !== price) this.price.textContent = price;
    if (this.change.textContent !== change) this.change.textContent = change;
    this.change.dataset.direction = direction;
  }

  setHealth(health: string, label: string, detail: string): void {
    this.healthBadge.dataset.health = health;
    this.healthBadge.textContent = label;
    this.healthBadge.title = detail || 'Receiving live updates';
  }

  setSignalsShown(on: boolean): void {
    this.signalsToggle.classList.toggle('active', on);
    this.signalsToggle.setAttribute('aria-pressed', String(on));
  }

  setToggle(kind: 'sma' | 'ema', on: boolean): void {
    this.toggles[kind].classList.toggle('active', on);
    this.toggles[kind].setAttribute('aria-pressed', String(on));
  }

  setDrawingUi(tool: DrawingKind | null, hasSelection: boolean): void {
    for (const [kind, b] of this.tools) {
      b.classList.toggle('active', kind === tool);
      b.setAttribute('aria-pressed', String(kind === tool));
    }
    this.deleteBtn.disabled = !hasSelection;
  }
}
