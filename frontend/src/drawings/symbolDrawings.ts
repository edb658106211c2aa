/**
 * Drawings belong to a symbol, not to a chart (as on TradingView): every chart of BTCUSDT, whatever its
 * interval, shows the same lines, and a change on one is seen at once on the others. Stored per symbol
 * (`candlecast.drawings.v2.<SYMBOL>`); the per-chart lists of older versions are folded into their
 * chart's symbol the first time that chart loads.
 */
import type { KeyValueStore } from '../state/storage';
import { Drawing, drawingsKey, parseDrawings } from './model';

export function symbolDrawingsKey(symbol: string): string {
  return `candlecast.drawings.v2.${symbol.toUpperCase()}`;
}

type Listener = (drawings: Drawing[]) => void;

export class SymbolDrawings {
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(private readonly store: KeyValueStore) {}

  get(symbol: string): Drawing[] {
    return parseDrawings(this.store.getItem(symbolDrawingsKey(symbol)));
  }

  /** Saves the symbol's drawings and tells every other chart of the symbol (not `from`). */
  set(symbol: string, drawings: readonly Drawing[], from?: Listener): void {
    const key = symbolDrawingsKey(symbol);
    if (drawings.length === 0) this.store.removeItem(key);
    else this.store.setItem(key, JSON.stringify(drawings));
    for (const fn of this.listeners.get(key) ?? []) if (fn !== from) fn(drawings.map((d) => ({ ...d, points: d.points.map((p) => ({ ...p })) })));
  }

  /** Called with the symbol's drawings whenever another chart changes them. */
  watch(symbol: string, fn: Listener): () => void {
    const key = symbolDrawingsKey(symbol);
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(fn);
    return () => {
      set!.delete(fn);
      if (set!.size === 0) this.listeners.delete(key);
    };
  }

  /** Moves a chart's drawings of the per-chart format (v1) into its symbol's list, keeping both sets. */
  migrateChart(chartId: string, symbol: string): void {
    const old = parseDrawings(this.store.getItem(drawingsKey(chartId)));
    this.store.removeItem(drawingsKey(chartId));
    if (old.length === 0) return;
    const current = this.get(symbol);
    const ids = new Set(current.map((d) => d.id));
    this.set(symbol, [...current, ...old.filter((d) => !ids.has(d.id))]);
  }
}
