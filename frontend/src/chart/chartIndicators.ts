/**
 * The server indicators of one chart (subscribe_indicator): which may be added (a budget per chart, no
 * duplicates), which colour each gets, their chips in the indicator menu and the room their panes take,
 * and their entries in the chart's layout (`ChartConfig.indicators`), handed back on every change.
 */
import type { IChartApi } from 'lightweight-charts';
import type { RequestError } from '../net/connection';
import { StreamHub, indicatorStreamKey } from '../net/streams';
import type { Params } from '../state/catalog';
import type { Interval } from '../state/intervals';
import { IndicatorConfig, MAX_INDICATORS_PER_CHART } from '../state/layout';
import type { Palette } from '../theme';
import type { IndicatorMenu } from './indicatorMenu';
import type { LegendStudy } from './presentation';
import { ServerIndicator } from './serverIndicators';

/** The layout entry of an indicator to add, or why it may not be added. */
export function planIndicator(list: readonly IndicatorConfig[], name: string, params: Params): { config: IndicatorConfig } | { error: string } {
  if (list.length >= MAX_INDICATORS_PER_CHART) return { error: `At most ${MAX_INDICATORS_PER_CHART} indicators per chart.` };
  // Same name and parameters is the same stream: a second one would only draw the same line again.
  const key = (c: { name: string; params: Params }) => indicatorStreamKey('', '', c.name, c.params);
  if (list.some((c) => key(c) === key({ name, params }))) return { error: 'That indicator is already on this chart.' };
  let n = 1;
  while (list.some((c) => c.id === `i${n}`)) n++;
  return { config: { id: `i${n}`, name, params: { ...params } } };
}

/** The first colour slot no indicator of the chart uses (a removed one's slot is given out again). */
export function freeColorSlot(used: Iterable<number>): number {
  const taken = new Set(used);
  let slot = 0;
  while (taken.has(slot)) slot++;
  return slot;
}

export interface IndicatorSetDeps {
  chart: IChartApi;
  /** The chart's topic now. */
  topic(): { symbol: string; interval: Interval };
  /** Open time of the first loaded bar: older values are not drawn. */
  firstBarTime(): number | undefined;
  /** The layout entries changed (undefined: none left). */
  onChange(configs: IndicatorConfig[] | undefined): void;
  streams: StreamHub;
  menu: IndicatorMenu;
  /** Grows by one `--extra-panes` per indicator drawn below the price. */
  host: HTMLElement;
  palette(): Palette;
  /** The server refused the indicator (e.g. macd fast >= slow; it is removed): say why. */
  onRefused(ind: ServerIndicator, err: RequestError): void;
}

export class IndicatorSet {
  private list: ServerIndicator[] = [];
  private configs: IndicatorConfig[] = [];

  constructor(private readonly deps: IndicatorSetDeps) {}

  get all(): readonly ServerIndicator[] {
    return this.list;
  }

  /** The streams of the current topic for these layout entries; the previous ones are closed. */
  open(configs: readonly IndicatorConfig[]): void {
    this.closeAll();
    this.configs = [...configs];
    for (const c of configs) this.mount(c);
    this.changed();
  }

  /** Adds an indicator (the indicator menu's Add); the reason when it may not be added. */
  add(name: string, params: Params): string | null {
    const plan = planIndicator(this.configs, name, params);
    if ('error' in plan) return plan.error;
    this.configs = [...this.configs, plan.config];
    this.mount(plan.config);
    this.changed();
    this.deps.onChange(this.configs);
    return null;
  }

  remove(id: string): void {
    const ind = this.list.find((i) => i.cfg.id === id);
    ind?.destroy();
    this.list = this.list.filter((i) => i !== ind);
    this.configs = this.configs.filter((c) => c.id !== id);
    this.changed();
    this.deps.onChange(this.configs.length ? this.configs : undefined);
  }

  /** Values older than the first loaded bar are not drawn (they would stretch the time axis). */
  clip(firstBarTime: number | undefined): void {
    if (firstBarTime !== undefined) for (const ind of this.list) ind.setMinTime(firstBarTime);
  }

  setPalette(p: Palette): void {
    for (const ind of this.list) ind.setPalette(p);
  }

  /** Each indicator with its values at a bar's open time (null: at its newest point), for the legend. */
  studiesAt(time: number | null): LegendStudy[] {
    const out: LegendStudy[] = [];
    for (const ind of this.list) {
      const values = ind.valuesAt(time);
      if (values) out.push({ label: ind.label, color: ind.color, values });
    }
    return out;
  }

  destroy(): void {
    this.closeAll();
  }

  private closeAll(): void {
    for (const ind of this.list) ind.destroy();
    this.list = [];
  }

  private mount(cfg: IndicatorConfig): void {
    const { chart, streams, palette, onRefused } = this.deps;
    const { symbol, interval } = this.deps.topic();
    const slot = freeColorSlot(this.list.map((i) => i.colorSlot));
    const ind = new ServerIndicator(chart, streams, cfg, symbol, interval, slot, palette(), () => this.changed(), (i, err) => {
      onRefused(i, err);
      this.remove(i.cfg.id);
    });
    const first = this.deps.firstBarTime();
    if (first !== undefined) ind.setMinTime(first);
    this.list.push(ind);
  }

  /** Chips, and room for the indicator panes: each one below the price adds height. */
  private changed(): void {
    this.deps.menu.setChips(this.list.map((i) => ({ id: i.cfg.id, label: i.label, color: i.color, error: i.error })));
    const extra = this.list.filter((i) => i.pane === 'separate').length;
    this.deps.host.style.setProperty('--extra-panes', String(extra));
  }
}
