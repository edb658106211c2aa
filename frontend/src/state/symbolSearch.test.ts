import { describe, expect, it } from 'vitest';
import { normalizeQuery, resolveSymbol } from './symbolSearch';

const KNOWN = ['BTCUSDT', 'ETHUSDT', 'ETHBTC', 'XRPUSDT', 'SOLUSDT', 'SOLEUR', 'AAPL', 'DOGEUSDT', 'DOTUSDT'];

describe('resolveSymbol', () => {
  it('takes the full ticker in any case', () => {
    expect(resolveSymbol('btcusdt', KNOWN)).toEqual({ symbol: 'BTCUSDT' });
    expect(resolveSymbol(' aapl ', KNOWN)).toEqual({ symbol: 'AAPL' });
  });

  it('takes a base asset, preferring its USDT pair', () => {
    expect(resolveSymbol('xrp', KNOWN)).toEqual({ symbol: 'XRPUSDT' });
    expect(resolveSymbol('eth', KNOWN)).toEqual({ symbol: 'ETHUSDT' });
    expect(resolveSymbol('sol', KNOWN)).toEqual({ symbol: 'SOLUSDT' });
    expect(resolveSymbol('$doge', KNOWN)).toEqual({ symbol: 'DOGEUSDT' });
  });

  it('takes pairs written with a separator', () => {
    expect(resolveSymbol('eth/btc', KNOWN)).toEqual({ symbol: 'ETHBTC' });
    expect(resolveSymbol('sol-eur', KNOWN)).toEqual({ symbol: 'SOLEUR' });
  });

  it('takes a unique prefix, and names the candidates of an ambiguous one', () => {
    expect(resolveSymbol('aap', KNOWN)).toEqual({ symbol: 'AAPL' });
    const amb = resolveSymbol('do', KNOWN);
    expect(amb).toHaveProperty('error');
    expect((amb as { error: string }).error).toMatch(/DOGEUSDT, DOTUSDT/);
  });

  it('says so for an unknown one, or an empty one', () => {
    expect(resolveSymbol('zzz', KNOWN)).toEqual({ error: 'Unknown symbol ZZZ: no symbol on this server matches it.' });
    expect(resolveSymbol('  ', KNOWN)).toHaveProperty('error');
  });

  it('normalizes', () => {
    expect(normalizeQuery(' $btc usdt ')).toBe('BTCUSDT');
  });
});
