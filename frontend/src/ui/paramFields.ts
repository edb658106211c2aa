/**
 * Number inputs for a catalogue's parameters (indicator menu, Backtest form):
 * min / max / step from the spec, the default as value and placeholder, the
 * spec's description as tooltip, and a slot for a per-field error.
 */
import { h } from '../dom';
import type { ParamSpec } from '../state/catalog';

export class ParamFields {
  readonly root: HTMLElement;
  private readonly inputs = new Map<string, HTMLInputElement>();
  private readonly errors = new Map<string, HTMLElement>();

  /** `testIdPrefix` + name is each input's data-testid (e.g. `bt-param-fast`). */
  constructor(
    readonly specs: readonly ParamSpec[],
    testIdPrefix: string,
    values: Record<string, number> = {},
  ) {
    this.root = h('div', { class: 'param-fields' });
    if (specs.length === 0) this.root.append(h('span', { class: 'muted' }, 'No parameters.'));
    for (const s of specs) {
      const input = h('input', {
        type: 'number',
        'data-testid': `${testIdPrefix}${s.name}`,
        name: s.name,
        min: s.min,
        max: s.max,
        step: s.type === 'integer' ? 1 : 'any',
        value: values[s.name] ?? s.default,
        placeholder: String(s.default),
        title: s.description ? `${s.description} (${s.min}–${s.max})` : `${s.min}–${s.max}`,
        inputmode: s.type === 'integer' ? 'numeric' : 'decimal',
      });
      const err = h('span', { class: 'field-error', 'data-testid': `${testIdPrefix}${s.name}-error` });
      this.inputs.set(s.name, input);
      this.errors.set(s.name, err);
      this.root.append(h('label', { class: 'param-field' }, h('span', { class: 'param-name' }, s.name), input, err));
    }
  }

  /** The raw text of every field, for validateParams. */
  read(): Record<string, string> {
    return Object.fromEntries([...this.inputs].map(([k, el]) => [k, el.value]));
  }

  showErrors(errors: Record<string, string>): void {
    for (const [name, el] of this.errors) {
      el.textContent = errors[name] ?? '';
      this.inputs.get(name)!.toggleAttribute('aria-invalid', Boolean(errors[name]));
    }
  }
}
