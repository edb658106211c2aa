import { describe, expect, it } from 'vitest';
import { markerStyle } from '../chart/presentation';
import { checkParam, defaultParams, indicatorLabel, paramsKey, parseIndicatorCatalog, parseStrategyCatalog, validateParams } from './catalog';
import { IndicatorPoints, MAX_INDICATOR_POINTS, outputFields, plotFor } from './indicatorPlot';
import { MAX_INDICATORS_PER_CHART, deserializeLayout, parseIndicators } from './layout';
import { mergeMarkers } from './markers';
import { markersFromSignals, parseSignal, signalToMarker } from './signals';

const period = { name: 'period', type: 'integer', min: 1, max: 5000, default: 20 };
const k = { name: 'k', type: 'float', min: 0, max: 10, default: 2 };

describe('signals as markers', () => {
  const raw = { symbol: 'BTCUSDT', interval: '1s', time: 5000, side: 'buy', price: 10, strategy: 'ema_cross', reason: 'x' };

  it('turns buys and sells into arrows labelled with the strategy', () => {
    const m = signalToMarker(parseSignal(raw)!);
    expect(m).toEqual({ time: 5000, kind: 'signal', side: 'buy', text: 'ema_cross', price: 10 });
    expect(markerStyle(m)).toMatchObject({ position: 'belowBar', shape: 'arrowUp' });
    expect(markerStyle({ kind: 'signal', side: 'sell' })).toMatchObject({ position: 'aboveBar', shape: 'arrowDown' });
    // Trades stay green/red arrows; exits are squares.
    expect(markerStyle({ kind: 'trade', side: 'buy' }).color).not.toBe(markerStyle(m).color);
    expect(markerStyle({ kind: 'trade', side: 'exit' }).shape).toBe('square');
  });

  it('skips malformed entries of a history', () => {
    const out = markersFromSignals([raw, { ...raw, side: 'hold' }, { ...raw, time: 'x' }, null, { ...raw, side: 'SELL', time: 6000 }]);
    expect(out.map((m) => [m.time, m.side])).toEqual([[5000, 'buy'], [6000, 'sell']]);
  });

  it('a history received twice (reconnect, second chart) does not double the markers', () => {
    const once = markersFromSignals([raw, { ...raw, time: 6000, side: 'sell' }]);
    expect(mergeMarkers(once, markersFromSignals([raw, { ...raw, time: 7000 }]))).toHaveLength(3);
  });
});

describe('catalogue and parameter validation', () => {
  it('parses the catalogues and drops broken entries', () => {
    const ind = parseIndicatorCatalog({ indicators: [{ name: 'bollinger', outputs: ['upper', 'middle', 'lower'], params: [period, k, { name: 'bad' }] }, { nope: 1 }] });
    expect(ind).toHaveLength(1);
    expect(ind[0].params.map((p) => p.name)).toEqual(['period', 'k']);
    expect(parseStrategyCatalog({ strategies: [{ name: 'ema_cross', params: [] }] })[0].name).toBe('ema_cross');
    expect(parseStrategyCatalog(null)).toEqual([]);
  });

  it('checks type and range, fills defaults for empty fields', () => {
    expect(validateParams([period, k], { period: '14', k: '' })).toEqual({ params: { period: 14, k: 2 }, errors: {}, ok: true });
    const bad = validateParams([period, k], { period: '0', k: '2.5' });
    expect(bad.ok).toBe(false);
    expect(bad.errors.period).toBe('period must be within [1, 5000]');
    expect(validateParams([period], { period: '10.5' }).errors.period).toMatch(/whole number/);
    expect(validateParams([period], { period: 'abc' }).errors.period).toMatch(/number/);
    expect(validateParams([k], { k: '10.01' }).errors.k).toMatch(/within \[0, 10\]/);
    expect(checkParam(k, 0.5)).toBeNull();
    expect(defaultParams([period, k])).toEqual({ period: 20, k: 2 });
  });

  it('keys and labels parameter sets', () => {
    expect(paramsKey({ slow: 26, fast: 12 })).toBe('fast=12,slow=26');
    expect(indicatorLabel('macd', { fast: 12, slow: 26, signal: 9 })).toBe('MACD 12,26,9');
    expect(indicatorLabel('vwap', {})).toBe('VWAP');
  });
});

describe('indicator series routing by output fields', () => {
  it('puts price-like single values on the price pane', () => {
    for (const name of ['sma', 'ema', 'vwap']) expect(plotFor(name, ['value'])).toMatchObject({ pane: 'price', lines: [{ field: 'value', style: 'line' }] });
    expect(plotFor('supertrend', ['value'])).toMatchObject({ pane: 'price', colorByDirection: true });
  });

  it('gives oscillators and unknown single values a pane of their own', () => {
    expect(plotFor('rsi', ['value'])).toMatchObject({ pane: 'separate', levels: [30, 70] });
    expect(plotFor('atr', ['value'])).toMatchObject({ pane: 'separate', levels: [] });
    expect(plotFor('newthing', ['value']).pane).toBe('separate');
  });

  it('draws MACD as two lines and a histogram, Bollinger as three lines', () => {
    const macd = plotFor('macd', ['macd', 'signal', 'histogram']);
    expect(macd.pane).toBe('separate');
    expect(macd.lines.map((l) => [l.field, l.style])).toEqual([['histogram', 'histogram'], ['macd', 'line'], ['signal', 'line']]);
    const bb = plotFor('bollinger', ['upper', 'middle', 'lower']);
    expect(bb.pane).toBe('price');
    expect(bb.lines.map((l) => l.field)).toEqual(['upper', 'middle', 'lower']);
    expect(plotFor('x', ['a', 'b']).lines.map((l) => l.field)).toEqual(['a', 'b']);
  });

  it('reads output fields from a value', () => {
    expect(outputFields({ timestamp: 1, closed: true, value: 2, direction: 'up' })).toEqual(['value']);
    expect(outputFields({ timestamp: 1, closed: false, macd: 1, signal: 2, histogram: -1 })).toEqual(['macd', 'signal', 'histogram']);
  });

  it('merges history and live previews by bar time', () => {
    const pts = new IndicatorPoints();
    pts.mergeHistory([{ timestamp: 120, closed: true, value: 3 }, { timestamp: 60, closed: true, value: 2 }, { bad: 1 }]);
    expect(pts.points.map((p) => p.timestamp)).toEqual([60, 120]);
    expect(pts.upsert({ timestamp: 180, closed: false, value: 4 })).toBe('append');
    expect(pts.upsert({ timestamp: 180, closed: true, value: 5 })).toBe('replace-last');
    expect(pts.upsert({ timestamp: 90, closed: true, value: 9 })).toBe('insert');
    expect(pts.upsert({ nope: 1 })).toBe('ignored');
    // A reconnect's history overlaps what is held: newer values win, nothing doubles.
    pts.mergeHistory([{ timestamp: 180, closed: true, value: 6 }]);
    expect(pts.points.map((p) => [p.timestamp, p.value])).toEqual([[60, 2], [90, 9], [120, 3], [180, 6]]);
    const big = new IndicatorPoints();
    big.mergeHistory(Array.from({ length: MAX_INDICATOR_POINTS + 10 }, (_, i) => ({ timestamp: i, closed: true, value: i })));
    expect(big.length).toBe(MAX_INDICATOR_POINTS);
  });
});

describe('indicators in the stored layout', () => {
  it('keeps valid entries and drops the rest', () => {
    const list = parseIndicators([
      { id: 'i1', name: 'ema', params: { period: 20 } },
      { id: 'i1', name: 'sma', params: { period: 5 } }, // duplicate id
      { id: 'i2', name: 'EMA!', params: {} },
      { id: 'i3', name: 'rsi', params: { period: '14' } },
      { id: 'i4', name: 'vwap', params: {} },
    ]);
    expect(list).toEqual([{ id: 'i1', name: 'ema', params: { period: 20 } }, { id: 'i4', name: 'vwap', params: {} }]);
    expect(parseIndicators(Array.from({ length: 20 }, (_, i) => ({ id: `i${i}`, name: 'ema', params: { period: i + 1 } })))).toHaveLength(MAX_INDICATORS_PER_CHART);
    const layout = deserializeLayout(JSON.stringify({ version: 1, charts: [{ id: 'c1', symbol: 'BTCUSDT', interval: '1m', indicators: [{ id: 'i1', name: 'ema', params: { period: 9 } }] }] }));
    expect(layout.charts[0].indicators).toEqual([{ id: 'i1', name: 'ema', params: { period: 9 } }]);
  });
});
