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
  /** Overlay toggles (computed in the page). */
  sma: boolean;
  ema: boolean;
  /** Server indicator overlays (subscribe_indicator); absent when none. */
  indicators?: IndicatorConfig[];
  /** Strategy signal markers: false = hidden on this chart; absent = shown. */
  signals?: boolean;
  /** Zoom and scroll position, restored on reload; absent = default zoom at the live edge. */
  view?: ChartViewport;
}

/**
 * Where the chart was looking: the zoom as pixels per bar, and the open time (ms) of the bar at the right
 * edge when scrolled back (absent at the live edge, which then follows new bars).
 */
export interface ChartViewport {
  barSpacing: number;
  rightTime?: number;
}

/** One server indicator on a chart: its name and complete parameters (defaults filled in). */
export interface IndicatorConfig {
  /** Unique within the chart; names the overlay's DOM and debug entries. */
  id: string;
  name: string;
  params: Record<string, number>;
}

/** Server indicators per chart: each costs a topic of the server's 200 per client. */
export const MAX_INDICATORS_PER_CHART = 8;
const INDICATOR_NAME_RE = /^[a-z][a-z0-9_]{0,31}$/;

export interface Layout {
  version: number;
  charts: ChartConfig[];
}

export const PRESET_SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'ADAUSDT', 'BNBUSDT', 'XRPUSDT'] as const;

const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._:&-]{0,31}$/;
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
  const chart: ChartConfig = { id: c.id, symbol: c.symbol, interval: c.interval, sma: c.sma === true, ema: c.ema === true };
  const indicators = parseIndicators(c.indicators);
  if (indicators.length) chart.indicators = indicators;
  if (c.signals === false) chart.signals = false;
  const view = parseViewport(c.view);
  if (view) chart.view = view;
  return chart;
}

/** A stored viewport, or undefined when it is absent or not sane (a hand-edited value). */
export function parseViewport(raw: unknown): ChartViewport | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const v = raw as Record<string, unknown>;
  if (typeof v.barSpacing !== 'number' || !Number.isFinite(v.barSpacing) || v.barSpacing < 0.5 || v.barSpacing > 100) return undefined;
  const out: ChartViewport = { barSpacing: v.barSpacing };
  if (typeof v.rightTime === 'number' && Number.isFinite(v.rightTime) && v.rightTime > 0) out.rightTime = v.rightTime;
  return out;
}

/** Keeps the stored indicators that are well-formed (name, finite numeric params, unique id). */
export function parseIndicators(raw: unknown): IndicatorConfig[] {
  if (!Array.isArray(raw)) return [];
  const out: IndicatorConfig[] = [];
  const ids = new Set<string>();
  for (const item of raw) {
    if (out.length >= MAX_INDICATORS_PER_CHART) break;
    if (typeof item !== 'object' || item === null) continue;
    const o = item as Record<string, unknown>;
    if (typeof o.id !== 'string' || !ID_RE.test(o.id) || ids.has(o.id)) continue;
    if (typeof o.name !== 'string' || !INDICATOR_NAME_RE.test(o.name)) continue;
    if (typeof o.params !== 'object' || o.params === null || Array.isArray(o.params)) continue;
    const entries = Object.entries(o.params as Record<string, unknown>);
    if (!entries.every(([k, v]) => /^[a-z_][a-z0-9_]{0,31}$/.test(k) && typeof v === 'number' && Number.isFinite(v))) continue;
    ids.add(o.id);
    out.push({ id: o.id, name: o.name, params: Object.fromEntries(entries) as Record<string, number> });
  }
  return out;
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
