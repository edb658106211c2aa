/**
 * The dashboard layout (which charts, in which order, with which settings),
 * and its round trip through localStorage. Anything stored may be stale or
 * hand-edited, so deserialisation validates every field and drops what it
 * cannot trust instead of failing the page.
 */
import { Interval, isInterval } from './intervals';
import type { KeyValueStore } from './storage';

export const LAYOUT_KEY = 'candlecast.layout.v1';
export const LAYOUT_VERSION = 1;
/** A cap on stored charts: each costs a canvas and subscriptions (server allows 200 topics). */
export const MAX_CHARTS = 24;

export interface ChartConfig {
  /** Stable id; keys the chart's drawings in storage and routes markers. */
  id: string;
  symbol: string;
  interval: Interval;
  /** Overlay toggles. */
  sma: boolean;
  ema: boolean;
}

export interface Layout {
  version: number;
  charts: ChartConfig[];
}

export const PRESET_SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'ADAUSDT', 'BNBUSDT', 'XRPUSDT'] as const;

const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._:-]{0,31}$/;
const ID_RE = /^[A-Za-z0-9_-]{1,40}$/;

export function isSymbol(value: unknown): value is string {
  return typeof value === 'string' && SYMBOL_RE.test(value);
}

export function defaultLayout(): Layout {
  return {
    version: LAYOUT_VERSION,
    charts: [
      { id: 'c1', symbol: 'BTCUSDT', interval: '1m', sma: false, ema: false },
      { id: 'c2', symbol: 'ETHUSDT', interval: '1m', sma: false, ema: false },
    ],
  };
}

export function serializeLayout(layout: Layout): string {
  return JSON.stringify({ version: LAYOUT_VERSION, charts: layout.charts });
}

/**
 * Parses a stored layout. Returns the default layout when the text is
 * missing, not JSON, or of another version; drops single charts that are
 * invalid or carry a duplicate id. An explicitly empty grid stays empty.
 */
export function deserializeLayout(raw: string | null): Layout {
  if (raw === null) return defaultLayout();
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return defaultLayout();
  }
  if (typeof parsed !== 'object' || parsed === null) return defaultLayout();
  const obj = parsed as Record<string, unknown>;
  if (obj.version !== LAYOUT_VERSION || !Array.isArray(obj.charts)) return defaultLayout();
  const seen = new Set<string>();
  const charts: ChartConfig[] = [];
  for (const item of obj.charts.slice(0, MAX_CHARTS)) {
    const chart = parseChart(item);
    if (!chart || seen.has(chart.id)) continue;
    seen.add(chart.id);
    charts.push(chart);
  }
  return { version: LAYOUT_VERSION, charts };
}

function parseChart(item: unknown): ChartConfig | null {
  if (typeof item !== 'object' || item === null) return null;
  const c = item as Record<string, unknown>;
  if (typeof c.id !== 'string' || !ID_RE.test(c.id)) return null;
  if (!isSymbol(c.symbol) || !isInterval(c.interval)) return null;
  return { id: c.id, symbol: c.symbol, interval: c.interval, sma: c.sma === true, ema: c.ema === true };
}

export function loadLayout(store: KeyValueStore): Layout {
  return deserializeLayout(store.getItem(LAYOUT_KEY));
}

export function saveLayout(store: KeyValueStore, layout: Layout): void {
  store.setItem(LAYOUT_KEY, serializeLayout(layout));
}

/** A fresh id not used by any chart in the layout. */
export function nextChartId(charts: readonly ChartConfig[]): string {
  let max = 0;
  for (const c of charts) {
    const m = /^c(\d+)$/.exec(c.id);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return `c${max + 1}`;
}
