/**
 * The Backtest and Optimize forms' pure logic: request bodies checked against
 * the strategy catalogue's ranges and the documented config limits, metric
 * formatting, trades as equity-curve markers, and optimizer grids typed as
 * text (`5:50:5` for a range, `50, 100, 200` for a list).
 */
import { ParamSpec, StrategyInfo, checkParam, validateParams } from '../state/catalog';
import { Interval, isInterval } from '../state/intervals';
import type { Marker } from '../state/markers';

export type FillModel = 'next_open' | 'close';

/** What the Backtest form holds, as typed. */
export interface BacktestFormValues {
  strategy: string;
  params: Record<string, string>;
  symbol: string;
  interval: string;
  feeBps: string;
  slippageBps: string;
  fill: string;
  allowShort: boolean;
  /** `datetime-local` values (the browser's time zone); empty: from the oldest / up to the newest bar. */
  start?: string;
  end?: string;
  /** Starting capital; empty: the server's default (10,000). */
  capital?: string;
}

export interface BacktestRequestBody {
  strategy: string;
  params: Record<string, number>;
  symbol: string;
  interval: Interval;
  start_time?: number;
  end_time?: number;
  config: { fill: FillModel; fee_bps: number; slippage_bps: number; allow_short: boolean; initial_capital?: number };
}

/** The largest starting capital the form sends: beyond it equity figures lose their cents. */
export const MAX_CAPITAL = 1e12;

/** A `datetime-local` value as UTC ms (read in the browser's zone); undefined when empty. */
function dateField(text: string | undefined, name: string, errors: Record<string, string>): number | undefined {
  const t = (text ?? '').trim();
  if (t === '') return undefined;
  const ms = new Date(t).getTime();
  if (!Number.isFinite(ms) || ms < 0) {
    errors[name] = `${name} is not a date`;
    return undefined;
  }
  return ms;
}

/** The optional date range and capital of a backtest form, checked; `errors` gets what is wrong. */
export function rangeAndCapital(v: Pick<BacktestFormValues, 'start' | 'end' | 'capital'>, errors: Record<string, string>) {
  const start_time = dateField(v.start, 'start_time', errors);
  const end_time = dateField(v.end, 'end_time', errors);
  if (start_time !== undefined && end_time !== undefined && start_time >= end_time) errors.end_time = 'the end must be after the start';
  const c = (v.capital ?? '').trim();
  let initial_capital: number | undefined;
  if (c !== '') {
    initial_capital = Number(c);
    if (!Number.isFinite(initial_capital) || initial_capital <= 0 || initial_capital > MAX_CAPITAL) {
      errors.initial_capital = `starting capital must be above 0 and at most ${MAX_CAPITAL.toExponential()}`;
    }
  }
  return { start_time, end_time, initial_capital };
}

export interface Built<T> {
  body: T | null;
  /** Per field (`param:<name>`, `symbol`, `fee_bps`, ...), what is wrong. */
  errors: Record<string, string>;
}

/** fee_bps and slippage_bps: 0–1000 basis points (docs/STRATEGIES.md). */
export const BPS_MAX = 1000;

function bps(text: string, name: string, errors: Record<string, string>): number {
  const t = text.trim();
  const v = t === '' ? 0 : Number(t);
  if (!Number.isFinite(v) || v < 0 || v > BPS_MAX) errors[name] = `${name} must be within [0, ${BPS_MAX}] bps`;
  return v;
}

function common(v: { strategy: string; symbol: string; interval: string }, catalog: readonly StrategyInfo[], errors: Record<string, string>) {
  const strategy = catalog.find((s) => s.name === v.strategy);
  if (!strategy) errors.strategy = `unknown strategy ${JSON.stringify(v.strategy)}`;
  const symbol = v.symbol.trim().toUpperCase();
  if (!/^[A-Z0-9][A-Z0-9._:-]{0,31}$/.test(symbol)) errors.symbol = 'symbol is required';
  if (!isInterval(v.interval)) errors.interval = `unknown interval ${JSON.stringify(v.interval)}`;
  return { strategy, symbol, interval: v.interval as Interval };
}

export function buildBacktestRequest(v: BacktestFormValues, catalog: readonly StrategyInfo[]): Built<BacktestRequestBody> {
  const errors: Record<string, string> = {};
  const { strategy, symbol, interval } = common(v, catalog, errors);
  const checked = strategy ? validateParams(strategy.params, v.params) : null;
  for (const [k, e] of Object.entries(checked?.errors ?? {})) errors[`param:${k}`] = e;
  const fee = bps(v.feeBps, 'fee_bps', errors);
  const slip = bps(v.slippageBps, 'slippage_bps', errors);
  if (v.fill !== 'next_open' && v.fill !== 'close') errors.fill = 'fill must be next_open or close';
  const { start_time, end_time, initial_capital } = rangeAndCapital(v, errors);
  if (Object.keys(errors).length || !strategy || !checked) return { body: null, errors };
  const config: BacktestRequestBody['config'] = { fill: v.fill as FillModel, fee_bps: fee, slippage_bps: slip, allow_short: v.allowShort };
  if (initial_capital !== undefined) config.initial_capital = initial_capital;
  const body: BacktestRequestBody = { strategy: strategy.name, params: checked.params, symbol, interval, config };
  if (start_time !== undefined) body.start_time = start_time;
  if (end_time !== undefined) body.end_time = end_time;
  return { body, errors };
}

// ---- results -----------------------------------------------------------------

export interface Metrics {
  initial_equity?: number;
  final_equity?: number;
  net_pnl: number;
  return_pct: number;
  sharpe: number | null;
  sortino: number | null;
  max_drawdown: number;
  max_drawdown_pct: number;
  win_rate_pct: number | null;
  profit_factor: number | null;
  trades: number;
  exposure_pct: number;
  bars?: number;
}

export interface TradeRecord {
  side: 'long' | 'short';
  entry_time: number;
  exit_time: number;
  entry_price: number;
  exit_price: number;
  units: number;
  pnl: number;
  return_pct: number;
}

export interface BacktestResult {
  symbol?: string;
  interval?: string;
  strategy?: string;
  bars?: number;
  metrics: Metrics;
  /** At most the server's `[jobs] max_equity_points` (downsampled beyond, first/last/extremes kept). */
  equity: Array<{ time: number; equity: number }>;
  /** The first `[jobs] max_trades` trades; `metrics.trades` counts them all. */
  trades: TradeRecord[];
  equity_downsampled?: boolean;
  trades_truncated?: boolean;
  /** Only the newest bars of the range were used (the caller's bar budget). */
  bars_limited?: boolean;
}

/** A line saying what the server left out of a result, or '' when it is complete. */
export function resultLimitsNote(r: Pick<BacktestResult, 'equity_downsampled' | 'trades_truncated' | 'bars_limited' | 'trades' | 'metrics'>): string {
  const notes: string[] = [];
  if (r.bars_limited) notes.push('only the newest bars of the range were used (bar budget)');
  if (r.trades_truncated) notes.push(`the first ${r.trades.length} of ${r.metrics.trades} trades are listed`);
  if (r.equity_downsampled) notes.push('the equity curve is downsampled');
  return notes.length ? `Note: ${notes.join('; ')}.` : '';
}

type MetricFormat = 'money' | 'pct' | 'ratio' | 'count';

/** The metrics table, in the order seed 002's users read it. */
export const METRIC_ROWS: ReadonlyArray<{ key: keyof Metrics; label: string; format: MetricFormat }> = [
  { key: 'net_pnl', label: 'Net PnL', format: 'money' },
  { key: 'return_pct', label: 'Return', format: 'pct' },
  { key: 'sharpe', label: 'Sharpe', format: 'ratio' },
  { key: 'sortino', label: 'Sortino', format: 'ratio' },
  { key: 'max_drawdown_pct', label: 'Max drawdown', format: 'pct' },
  { key: 'win_rate_pct', label: 'Win rate', format: 'pct' },
  { key: 'profit_factor', label: 'Profit factor', format: 'ratio' },
  { key: 'trades', label: 'Trades', format: 'count' },
  { key: 'exposure_pct', label: 'Exposure', format: 'pct' },
];

/** `null` (undefined by definition, e.g. Sharpe of a flat curve) reads as an em dash. */
export function formatMetric(value: number | null | undefined, format: MetricFormat): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  switch (format) {
    case 'money':
      return `${value > 0 ? '+' : ''}${value.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
    case 'pct':
      return `${value.toFixed(2)}%`;
    case 'ratio':
      return value.toFixed(2);
    case 'count':
      return Math.round(value).toLocaleString('en-US');
  }
}

/** Which way a metric leans, for colouring: PnL and return by sign, the rest neutral. */
export function metricDirection(key: keyof Metrics, value: number | null | undefined): 'up' | 'down' | 'flat' {
  if ((key !== 'net_pnl' && key !== 'return_pct') || typeof value !== 'number' || value === 0) return 'flat';
  return value > 0 ? 'up' : 'down';
}

/** The absolute max drawdown, shown under its percentage: `1,260.33`. */
export function formatAmount(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : '—';
}

/** Above this many trades the markers go without labels: they would only overlap. */
export const MAX_LABELLED_TRADES = 40;

/**
 * Entry and exit of every trade as markers on the equity curve: entries as
 * arrows (`Long` / `Short`), exits as squares with the trade's return.
 */
export function tradesToMarkers(trades: readonly TradeRecord[]): Marker[] {
  const labels = trades.length <= MAX_LABELLED_TRADES;
  const out: Marker[] = [];
  for (const t of trades) {
    const long = t.side === 'long';
    const ret = `${t.return_pct >= 0 ? '+' : ''}${t.return_pct.toFixed(1)}%`;
    out.push({ time: t.entry_time, kind: 'trade', side: long ? 'buy' : 'sell', text: labels ? (long ? 'Long' : 'Short') : undefined, price: t.entry_price });
    out.push({ time: t.exit_time, kind: 'trade', side: 'exit', text: labels ? ret : undefined, price: t.exit_price });
  }
  return out.sort((a, b) => a.time - b.time);
}

// ---- optimizer -----------------------------------------------------------------

export type GridValue = number[] | { start: number; end: number; step: number };

/** Metrics the optimizer ranks by (docs/STRATEGIES.md). */
export const RANK_METRICS = [
  'sharpe', 'sortino', 'net_pnl', 'return_pct', 'profit_factor', 'win_rate_pct',
  'max_drawdown', 'max_drawdown_pct', 'trades', 'exposure_pct',
] as const;

/** Largest grid the server accepts. */
export const MAX_GRID = 100_000;

/**
 * One parameter's grid as typed: empty = keep the default; `start:end:step`
 * (inclusive) or a comma-separated list. Every value must fit the spec.
 */
export function parseGrid(text: string, spec: ParamSpec): { grid: GridValue | null; count: number; error: string | null } {
  const t = text.trim();
  if (t === '') return { grid: null, count: 1, error: null };
  const range = /^(-?[\d.]+)\s*:\s*(-?[\d.]+)\s*:\s*(-?[\d.]+)$/.exec(t);
  if (range) {
    const [start, end, step] = range.slice(1).map(Number);
    if (![start, end, step].every(Number.isFinite) || step <= 0) return { grid: null, count: 0, error: `${spec.name}: step must be above 0` };
    if (end < start) return { grid: null, count: 0, error: `${spec.name}: end must not be below start` };
    for (const v of [start, end]) {
      const e = checkParam(spec, v);
      if (e) return { grid: null, count: 0, error: e };
    }
    if (spec.type === 'integer' && !Number.isInteger(step)) return { grid: null, count: 0, error: `${spec.name}: step must be a whole number` };
    return { grid: { start, end, step }, count: Math.floor((end - start) / step + 1e-9) + 1, error: null };
  }
  const values = t.split(/[\s,;]+/).filter(Boolean).map(Number);
  for (const v of values) {
    const e = checkParam(spec, v);
    if (e) return { grid: null, count: 0, error: e };
  }
  return { grid: values, count: values.length, error: null };
}

export interface OptimizeFormValues {
  strategy: string;
  grids: Record<string, string>;
  symbol: string;
  interval: string;
  feeBps: string;
  slippageBps: string;
  fill: string;
  allowShort: boolean;
  rankBy: string;
  direction: string;
  top: number;
}

export interface OptimizeRequestBody {
  strategy: string;
  params: Record<string, GridValue>;
  symbol: string;
  interval: Interval;
  rank_by: string;
  direction?: 'max' | 'min';
  top: number;
  backtest: BacktestRequestBody['config'];
}

export function buildOptimizeRequest(v: OptimizeFormValues, catalog: readonly StrategyInfo[]): Built<OptimizeRequestBody> & { combinations: number } {
  const errors: Record<string, string> = {};
  const { strategy, symbol, interval } = common(v, catalog, errors);
  const params: Record<string, GridValue> = {};
  let combinations = 1;
  for (const spec of strategy?.params ?? []) {
    const g = parseGrid(v.grids[spec.name] ?? '', spec);
    if (g.error) errors[`param:${spec.name}`] = g.error;
    else if (g.grid) params[spec.name] = g.grid;
    combinations *= g.count;
  }
  if (!errors.strategy && Object.keys(params).length === 0) errors.grid = 'give at least one parameter a range or a list';
  if (combinations > MAX_GRID) errors.grid = `${combinations.toLocaleString('en-US')} combinations; at most ${MAX_GRID.toLocaleString('en-US')}`;
  if (!(RANK_METRICS as readonly string[]).includes(v.rankBy)) errors.rank_by = `unknown metric ${JSON.stringify(v.rankBy)}`;
  const fee = bps(v.feeBps, 'fee_bps', errors);
  const slip = bps(v.slippageBps, 'slippage_bps', errors);
  if (Object.keys(errors).length || !strategy) return { body: null, errors, combinations };
  return {
    body: {
      strategy: strategy.name,
      params,
      symbol,
      interval,
      rank_by: v.rankBy,
      // "auto" leaves the server's default: min for the drawdowns, max otherwise.
      ...(v.direction === 'max' || v.direction === 'min' ? { direction: v.direction } : {}),
      top: v.top,
      backtest: { fill: v.fill === 'close' ? 'close' : 'next_open', fee_bps: fee, slippage_bps: slip, allow_short: v.allowShort },
    },
    errors,
    combinations,
  };
}

/** Progress of a job as a whole percent for the progress bar. */
export function progressPercent(status: { progress?: number; done?: number; total?: number }): number {
  if (typeof status.progress === 'number' && Number.isFinite(status.progress)) return Math.max(0, Math.min(100, status.progress));
  if (status.total) return Math.max(0, Math.min(100, ((status.done ?? 0) / status.total) * 100));
  return 0;
}
