import { describe, expect, it } from 'vitest';
import { IndicatorConfig, MAX_INDICATORS_PER_CHART } from '../state/layout';
import { freeColorSlot, planIndicator } from './chartIndicators';

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
