/**
 * A chart's indicator menu: a popover to add any indicator of the server's
 * catalogue with its parameters (checked against the catalogue's ranges
 * before anything is sent), and a row of chips for the active ones, each with
 * a remove button.
 */
import { button, h } from '../dom';
import type { CatalogStore } from '../net/catalogStore';
import { IndicatorInfo, Params, validateParams } from '../state/catalog';
import { ParamFields } from '../ui/paramFields';

export interface IndicatorChip {
  id: string;
  label: string;
  color: string;
  error: string | null;
}

export interface IndicatorMenuActions {
  /** Adds the indicator; returns why it cannot (e.g. too many), or null. */
  onAdd(name: string, params: Params): string | null;
  onRemove(id: string): void;
}

export class IndicatorMenu {
  /** The header button that opens the popover. */
  readonly toggle: HTMLButtonElement;
  /** Popover and chips, placed over the chart. */
  readonly popover: HTMLElement;
  readonly chips: HTMLElement;
  private readonly select: HTMLSelectElement;
  private readonly fieldsSlot: HTMLElement;
  private readonly description: HTMLElement;
  private readonly error: HTMLElement;
  private fields: ParamFields | null = null;
  private catalog: IndicatorInfo[] = [];

  constructor(
    private readonly catalogStore: CatalogStore,
    private readonly actions: IndicatorMenuActions,
  ) {
    this.toggle = button('indicator-menu', 'ƒx', 'Add an indicator computed by the server', () => this.setOpen(this.popover.hidden));
    this.toggle.setAttribute('aria-haspopup', 'dialog');
    this.select = h('select', { 'data-testid': 'indicator-select', 'aria-label': 'Indicator' });
    this.select.addEventListener('change', () => this.renderFields());
    this.fieldsSlot = h('div');
    this.description = h('p', { class: 'muted popover-note' });
    this.error = h('p', { class: 'form-error', 'data-testid': 'indicator-error', role: 'alert' });
    this.popover = h(
      'div',
      { class: 'indicator-popover', 'data-testid': 'indicator-popover', role: 'dialog', 'aria-label': 'Add indicator', hidden: true },
      h('div', { class: 'popover-row' }, this.select, button('indicator-close', '✕', 'Close', () => this.setOpen(false))),
      this.description,
      this.fieldsSlot,
      this.error,
      h('div', { class: 'popover-row' }, button('indicator-add', 'Add', 'Add this indicator to the chart', () => this.submit())),
    );
    this.popover.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.target as HTMLElement).tagName === 'INPUT') this.submit();
    });
    this.chips = h('div', { class: 'indicator-chips', 'data-testid': 'indicator-chips' });
  }

  setChips(chips: readonly IndicatorChip[]): void {
    this.chips.replaceChildren(
      ...chips.map((c) => {
        const remove = button('indicator-remove', '✕', `Remove ${c.label}`, () => this.actions.onRemove(c.id));
        return h(
          'span',
          { class: 'indicator-chip', 'data-testid': 'indicator-chip', 'data-indicator-id': c.id, title: c.error ?? c.label, 'data-error': c.error ? 'true' : undefined },
          h('i', { class: 'swatch', style: `background:${c.color}` }),
          c.error ? `${c.label} (refused)` : c.label,
          remove,
        );
      }),
    );
  }

  /** Closes the popover (and drops its document listeners), e.g. when the chart goes. */
  close(): void {
    this.setOpen(false);
  }

  private setOpen(open: boolean): void {
    if (open === !this.popover.hidden) return;
    this.popover.hidden = !open;
    // While open: Esc anywhere, or a click outside the popover and its button, closes it.
    if (open) {
      document.addEventListener('keydown', this.onDocKey, true);
      document.addEventListener('pointerdown', this.onDocPointer, true);
    } else {
      document.removeEventListener('keydown', this.onDocKey, true);
      document.removeEventListener('pointerdown', this.onDocPointer, true);
    }
    this.toggle.classList.toggle('active', open);
    this.toggle.setAttribute('aria-expanded', String(open));
    if (open) void this.load();
  }

  private readonly onDocKey = (e: KeyboardEvent): void => {
    if (e.key !== 'Escape') return;
    const inside = this.popover.contains(document.activeElement);
    this.setOpen(false);
    // Focus was in the popover, now hidden: give it back to the button that opened it.
    if (inside) this.toggle.focus();
  };

  private readonly onDocPointer = (e: PointerEvent): void => {
    const t = e.target as Node | null;
    if (t && (this.popover.contains(t) || this.toggle.contains(t))) return;
    this.setOpen(false);
  };

  private async load(): Promise<void> {
    if (this.catalog.length) return;
    this.error.textContent = 'Loading the indicator list…';
    try {
      this.catalog = await this.catalogStore.indicators();
      this.error.textContent = '';
      this.select.replaceChildren(...this.catalog.map((i) => h('option', { value: i.name }, i.name.toUpperCase())));
      this.renderFields();
    } catch (err) {
      this.error.textContent = `Could not load the indicator list: ${err instanceof Error ? err.message : err}`;
    }
  }

  private current(): IndicatorInfo | undefined {
    return this.catalog.find((i) => i.name === this.select.value);
  }

  private renderFields(): void {
    const info = this.current();
    this.fields = info ? new ParamFields(info.params, 'indicator-param-') : null;
    this.fieldsSlot.replaceChildren(...(this.fields ? [this.fields.root] : []));
    this.description.textContent = info?.description ?? '';
    this.error.textContent = '';
  }

  private submit(): void {
    const info = this.current();
    if (!info || !this.fields) return;
    const v = validateParams(info.params, this.fields.read());
    this.fields.showErrors(v.errors);
    if (!v.ok) {
      this.error.textContent = 'Fix the highlighted parameters.';
      return;
    }
    const refused = this.actions.onAdd(info.name, v.params);
    this.error.textContent = refused ?? '';
    if (!refused) this.setOpen(false);
  }
}
