import { describe, expect, it } from 'vitest';
import { changePercent, formatPercent, formatPrice, formatVolume, pricePrecision } from './format';

describe('format', () => {
  it('picks a precision by magnitude', () => {
    expect(pricePrecision(65000.1)).toBe(2);
    expect(pricePrecision(572.11)).toBe(2);
    expect(pricePrecision(3.5)).toBe(4);
    expect(pricePrecision(0.45)).toBe(4);
    expect(pricePrecision(0.00001234)).toBe(8);
    expect(pricePrecision(0)).toBe(2);
  });
  it('formats prices, changes and volumes', () => {
    expect(formatPrice(65000.123)).toBe('65,000.12');
    expect(changePercent(110, 100)).toBeCloseTo(10);
    expect(changePercent(1, 0)).toBeNull();
    expect(formatPercent(1.234)).toBe('+1.23%');
    expect(formatPercent(-0.5)).toBe('-0.50%');
    expect(formatPercent(null)).toBe('—');
    expect(formatVolume(1_234_567)).toBe('1.23M');
    expect(formatVolume(0.5)).toBe('0.5000');
  });
});
