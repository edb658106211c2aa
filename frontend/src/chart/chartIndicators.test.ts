import { describe, expect, it } from 'vitest';
import { IndicatorConfig, MAX_INDICATORS_PER_CHART } from '../state/layout';
import type { IChartApi } from 'lightweight-charts';
import { RequestError } from '../net/connection';
import type { StreamHub } from '../net/streams';
import type { Params } from '../state/catalog';
import { PALETTES } from '../theme';
import { IndicatorSet, freeColorSlot, planIndicator } from './chartIndicators';
import type { IndicatorChip, IndicatorMenu } from './indicatorMenu';

const rsi: IndicatorConfig = { id: 'i1', name: 'rsi', params: { period: 14 } };

describe('planIndicator', () => {
  it('gives the first indicator the id i1 and its own copy of the parameters', () => {
    const params = { period: 14 };
    const plan = planIndicator([], 'rsi', params);
    expect(plan).toEqual({ config: { id: 'i1', name: 'rsi', params: { period: 14 } } });
    if ('config' in plan) expect(plan.config.params).not.toBe(params);
  });

  it('refuses the same indicator with the same parameters twice, not with other parameters', () => {
    expect(planIndicator([rsi], 'rsi', { period: 14 })).toEqual({ error: 'That indicator is already on this chart.' });
    expect(planIndicator([rsi], 'rsi', { period: 7 })).toMatchObject({ config: { id: 'i2' } });
  });

  it('reuses the lowest free id (a removed indicator leaves a hole)', () => {
    const list: IndicatorConfig[] = [{ ...rsi, id: 'i2' }, { id: 'i3', name: 'ema', params: { period: 9 } }];
    expect(planIndicator(list, 'macd', {})).toMatchObject({ config: { id: 'i1' } });
  });

  it('stops at the per-chart budget and says the limit', () => {
    const full = Array.from({ length: MAX_INDICATORS_PER_CHART }, (_, i) => ({ id: `i${i + 1}`, name: 'sma', params: { period: i + 2 } }));
    expect(planIndicator(full, 'rsi', { period: 14 })).toEqual({ error: `At most ${MAX_INDICATORS_PER_CHART} indicators per chart.` });
  });
});

describe('freeColorSlot', () => {
  it('hands out the first colour no indicator uses', () => {
    expect(freeColorSlot([])).toBe(0);
    expect(freeColorSlot([0, 1])).toBe(2);
    expect(freeColorSlot([0, 2])).toBe(1);
  });
});

describe('IndicatorSet', () => {
  /** The streams it opens and closes (a stand-in for the socket's StreamHub), and what the chart is told. */
  function setup() {
    const open = new Map<string, { onError(err: RequestError): void }>();
    const streams = {
      openIndicator: (symbol: string, interval: string, name: string, params: Params, _history: number, listener: { onError(err: RequestError): void }) => {
        const key = `${symbol} ${interval} ${name} ${JSON.stringify(params)}`;
        open.set(key, listener);
        return () => open.delete(key);
      },
    };
    const changes: Array<IndicatorConfig[] | undefined> = [];
    const chips: string[][] = [];
    const refused: string[] = [];
    const set = new IndicatorSet({
      chart: {} as IChartApi,
      topic: () => ({ symbol: 'ETHUSDT', interval: '5m' }),
      firstBarTime: () => undefined,
      onChange: (c) => changes.push(c),
      streams: streams as unknown as StreamHub,
      menu: { setChips: (c: readonly IndicatorChip[]) => chips.push(c.map((x) => x.label)) } as unknown as IndicatorMenu,
      host: { style: { setProperty: () => {} } } as unknown as HTMLElement,
      palette: () => PALETTES.dark,
      onRefused: (ind, err) => refused.push(`${ind.label}: ${err.message}`),
    });
    return { set, open, changes, chips, refused };
  }

  it('opens a stream on the chart topic for an added indicator and hands back the layout entries', () => {
    const t = setup();
    expect(t.set.add('rsi', { period: 14 })).toBeNull();
    expect([...t.open.keys()]).toEqual(['ETHUSDT 5m rsi {"period":14}']);
    expect(t.changes).toEqual([[{ id: 'i1', name: 'rsi', params: { period: 14 } }]]);
    expect(t.chips.at(-1)).toHaveLength(1);
    expect(t.set.add('rsi', { period: 14 })).toBe('That indicator is already on this chart.');
    expect(t.open.size).toBe(1);
  });

  it('closes the stream of a removed indicator; no entries left is no entry at all', () => {
    const t = setup();
    t.set.add('rsi', { period: 14 });
    t.set.remove('i1');
    expect(t.open.size).toBe(0);
    expect(t.changes.at(-1)).toBeUndefined();
    expect(t.chips.at(-1)).toEqual([]);
  });

  it('drops an indicator the server refused, after saying why', () => {
    const t = setup();
    t.set.add('macd', { fast: 26, slow: 12, signal: 9 });
    const [listener] = t.open.values();
    listener.onError(new RequestError('invalid_params', 'fast must be below slow'));
    expect(t.refused).toHaveLength(1);
    expect(t.refused[0]).toContain('fast must be below slow');
    expect(t.open.size).toBe(0);
    expect(t.set.all).toHaveLength(0);
    expect(t.changes.at(-1)).toBeUndefined();
  });

  it('reopens every entry on a new topic, closing the old streams', () => {
    const t = setup();
    t.set.open([
      { id: 'i1', name: 'rsi', params: { period: 14 } },
      { id: 'i2', name: 'ema', params: { period: 9 } },
    ]);
    expect(t.open.size).toBe(2);
    t.set.open([{ id: 'i2', name: 'ema', params: { period: 9 } }]);
    expect([...t.open.keys()]).toEqual(['ETHUSDT 5m ema {"period":9}']);
    // Opening is not a change of the layout: the entries came from it.
    expect(t.changes).toEqual([]);
  });
});
