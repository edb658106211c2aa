import { describe, expect, it } from 'vitest';
import type { StrategyInfo } from '../state/catalog';
import {
  BacktestFormValues,
  MAX_LABELLED_TRADES,
  TradeRecord,
  buildBacktestRequest,
  buildOptimizeRequest,
  formatAmount,
  formatMetric,
  metricDirection,
  parseGrid,
  progressPercent,
  tradesToMarkers,
} from './backtestModel';

const catalog: StrategyInfo[] = [
  {
    name: 'ema_cross',
    params: [
      { name: 'fast', type: 'integer', min: 1, max: 1000, default: 9 },
      { name: 'slow', type: 'integer', min: 2, max: 5000, default: 21 },
    ],
  },
];

const form = (over: Partial<BacktestFormValues> = {}): BacktestFormValues => ({
  strategy: 'ema_cross',
  params: { fast: '12', slow: '' },
  symbol: ' btcusdt ',
  interval: '1h',
  feeBps: '7.5',
  slippageBps: '',
  fill: 'next_open',
  allowShort: true,
  ...over,
});

describe('backtest request', () => {
  it('builds the body the server expects', () => {
    expect(buildBacktestRequest(form(), catalog)).toEqual({
      body: {
        strategy: 'ema_cross',
        params: { fast: 12, slow: 21 },
        symbol: 'BTCUSDT',
        interval: '1h',
        config: { fill: 'next_open', fee_bps: 7.5, slippage_bps: 0, allow_short: true },
      },
      errors: {},
    });
  });

  it('names every bad field and sends nothing', () => {
    const r = buildBacktestRequest(form({ params: { fast: '0', slow: '2.5' }, feeBps: '1001', symbol: '', interval: '2m', fill: 'vwap' }), catalog);
    expect(r.body).toBeNull();
    expect(Object.keys(r.errors).sort()).toEqual(['fee_bps', 'fill', 'interval', 'param:fast', 'param:slow', 'symbol']);
    expect(r.errors['param:fast']).toBe('fast must be within [1, 1000]');
    expect(buildBacktestRequest(form({ strategy: 'nope' }), catalog).errors.strategy).toMatch(/unknown strategy/);
  });

  it('leaves cross-parameter rules (fast < slow) to the server', () => {
    expect(buildBacktestRequest(form({ params: { fast: '30', slow: '26' } }), catalog).body?.params).toEqual({ fast: 30, slow: 26 });
  });
});

describe('result formatting', () => {
  it('formats metrics by kind, null as a dash', () => {
    expect(formatMetric(590.666, 'money')).toBe('+590.67');
    expect(formatMetric(-4305, 'money')).toBe('-4,305.00');
    expect(formatMetric(5.9066, 'pct')).toBe('5.91%');
    expect(formatMetric(3.42716, 'ratio')).toBe('3.43');
    expect(formatMetric(240, 'count')).toBe('240');
    expect(formatMetric(null, 'ratio')).toBe('—');
    expect(formatMetric(undefined, 'pct')).toBe('—');
    expect(formatAmount(1260.331)).toBe('1,260.33');
    expect(metricDirection('net_pnl', -1)).toBe('down');
    expect(metricDirection('sharpe', -1)).toBe('flat');
  });

  it('marks entries and exits of trades, labels only while they stay readable', () => {
    const t = (i: number, side: 'long' | 'short', ret: number): TradeRecord => ({ side, entry_time: i * 10, exit_time: i * 10 + 5, entry_price: 1, exit_price: 1, units: 1, pnl: ret, return_pct: ret });
    const m = tradesToMarkers([t(1, 'long', 2.04), t(2, 'short', -1)]);
    expect(m.map((x) => [x.time, x.side, x.text])).toEqual([[10, 'buy', 'Long'], [15, 'exit', '+2.0%'], [20, 'sell', 'Short'], [25, 'exit', '-1.0%']]);
    const many = tradesToMarkers(Array.from({ length: MAX_LABELLED_TRADES + 1 }, (_, i) => t(i, 'long', 1)));
    expect(many.every((x) => x.text === undefined)).toBe(true);
  });

  it('turns job status into a percentage', () => {
    expect(progressPercent({ progress: 42.5 })).toBe(42.5);
    expect(progressPercent({ done: 3, total: 12 })).toBe(25);
    expect(progressPercent({})).toBe(0);
  });
});

describe('optimizer grids', () => {
  const fast = catalog[0].params[0];

  it('reads ranges and lists, checks them against the spec', () => {
    expect(parseGrid('', fast)).toEqual({ grid: null, count: 1, error: null });
    expect(parseGrid('5:50:5', fast)).toEqual({ grid: { start: 5, end: 50, step: 5 }, count: 10, error: null });
    expect(parseGrid('50, 100;200', fast)).toEqual({ grid: [50, 100, 200], count: 3, error: null });
    expect(parseGrid('0:10:1', fast).error).toMatch(/within \[1, 1000\]/);
    expect(parseGrid('10:5:1', fast).error).toMatch(/end/);
    expect(parseGrid('1:10:0', fast).error).toMatch(/step/);
    expect(parseGrid('1:10:0.5', fast).error).toMatch(/whole/);
    expect(parseGrid('5, 2000', fast).error).toMatch(/within/);
  });

  it('builds the spec, counts combinations and caps the grid', () => {
    const base = { strategy: 'ema_cross', symbol: 'BTCUSDT', interval: '1m', feeBps: '', slippageBps: '', fill: 'close', allowShort: false, rankBy: 'sharpe', direction: 'auto', top: 5 };
    const r = buildOptimizeRequest({ ...base, grids: { fast: '2:10:2', slow: '20,30' } }, catalog);
    expect(r.combinations).toBe(10);
    expect(r.body).toEqual({
      strategy: 'ema_cross',
      params: { fast: { start: 2, end: 10, step: 2 }, slow: [20, 30] },
      symbol: 'BTCUSDT',
      interval: '1m',
      rank_by: 'sharpe',
      top: 5,
      backtest: { fill: 'close', fee_bps: 0, slippage_bps: 0, allow_short: false },
    });
    expect(buildOptimizeRequest({ ...base, direction: 'min', grids: { fast: '5' } }, catalog).body?.direction).toBe('min');
    expect(buildOptimizeRequest({ ...base, grids: {} }, catalog).errors.grid).toMatch(/at least one/);
    expect(buildOptimizeRequest({ ...base, grids: { fast: '1:1000:1', slow: '2:5000:1' } }, catalog).errors.grid).toMatch(/at most 100,000/);
    expect(buildOptimizeRequest({ ...base, rankBy: 'luck', grids: { fast: '5' } }, catalog).errors.rank_by).toBeDefined();
  });
});

describe('resultLimitsNote', () => {
  it('says what the server left out, and nothing for a complete result', async () => {
    const { resultLimitsNote } = await import('./backtestModel');
    const metrics = { trades: 40 } as never;
    expect(resultLimitsNote({ trades: [], metrics })).toBe('');
    const note = resultLimitsNote({ trades: new Array(5), metrics, trades_truncated: true, equity_downsampled: true, bars_limited: true });
    expect(note).toContain('first 5 of 40 trades');
    expect(note).toContain('downsampled');
    expect(note).toContain('newest bars');
  });
});

describe('backtest date range and starting capital', () => {
  it('are sent as start_time, end_time (ms) and config.initial_capital', () => {
    const start = '2026-01-02T03:04';
    const end = '2026-01-05T00:00';
    const r = buildBacktestRequest(form({ start, end, capital: '2500' }), catalog);
    expect(r.errors).toEqual({});
    expect(r.body?.start_time).toBe(new Date(start).getTime());
    expect(r.body?.end_time).toBe(new Date(end).getTime());
    expect(r.body?.config.initial_capital).toBe(2500);
  });

  it('are left out when empty, and refused when wrong', () => {
    const r = buildBacktestRequest(form({ start: '', end: '', capital: '' }), catalog);
    expect(r.body && ('start_time' in r.body || 'end_time' in r.body || 'initial_capital' in r.body.config)).toBe(false);
    const bad = buildBacktestRequest(form({ start: '2026-01-05T00:00', end: '2026-01-02T00:00', capital: '-5' }), catalog);
    expect(bad.body).toBeNull();
    expect(Object.keys(bad.errors).sort()).toEqual(['end_time', 'initial_capital']);
    expect(buildBacktestRequest(form({ capital: '1e13' }), catalog).errors.initial_capital).toMatch(/at most/);
  });
});
