/**
 * Turns what a trader types into a ticker the server knows: case-insensitive, the full ticker, the base
 * asset (`xrp` -> XRPUSDT, preferring the USDT pair as TradingView's crypto search does), or a unique
 * prefix. Anything else is an error that says what was meant or that nothing matches.
 */

/** Quote assets tried after a bare base asset, best first. */
const QUOTES = ['USDT', 'USDC', 'USD', 'BUSD', 'EUR', 'BTC', 'ETH'];

export type SymbolMatch = { symbol: string } | { error: string };

/** Keeps letters, digits and the separators some tickers use; drops spaces and a leading `$`. */
export function normalizeQuery(input: string): string {
  return input.trim().toUpperCase().replace(/^\$/, '').replace(/\s+/g, '');
}

export function resolveSymbol(input: string, known: readonly string[]): SymbolMatch {
  const q = normalizeQuery(input);
  if (!q) return { error: 'Type a symbol, e.g. BTCUSDT or btc.' };
  const list = known.map((s) => s.toUpperCase());
  if (list.includes(q)) return { symbol: q };
  // Separators people type (btc/usdt, btc-usdt) that tickers do not have.
  const joined = q.replace(/[/_\-:]/g, '');
  if (list.includes(joined)) return { symbol: joined };
  for (const quote of QUOTES) if (list.includes(joined + quote)) return { symbol: joined + quote };
  const prefixed = list.filter((s) => s.startsWith(joined));
  if (prefixed.length === 1) return { symbol: prefixed[0] };
  if (prefixed.length > 1) {
    const shown = prefixed.slice(0, 5).join(', ');
    return { error: `${q} matches ${prefixed.length} symbols (${shown}${prefixed.length > 5 ? ', …' : ''}): pick one.` };
  }
  return { error: `Unknown symbol ${q}: no symbol on this server matches it.` };
}
