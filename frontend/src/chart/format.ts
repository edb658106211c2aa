/** Number formatting shared by the chart header, legend and panels. */

/** Decimals that show a price's meaningful digits (BTC, BNB ~ 2; ADA ~ 4; sub-cent ~ 8). */
export function pricePrecision(price: number): number {
  const abs = Math.abs(price);
  if (!Number.isFinite(abs) || abs === 0) return 2;
  if (abs >= 100) return 2;
  if (abs >= 1) return 4;
  // Keep about four significant digits below 1.
  return Math.min(10, Math.ceil(-Math.log10(abs)) + 3);
}

export function formatPrice(price: number, precision = pricePrecision(price)): string {
  return price.toLocaleString('en-US', { minimumFractionDigits: precision, maximumFractionDigits: precision });
}

/** Percent change from `reference` to `price`, or null when undefined. */
export function changePercent(price: number, reference: number | undefined): number | null {
  if (reference === undefined || reference === 0 || !Number.isFinite(reference)) return null;
  return ((price - reference) / reference) * 100;
}

export function formatPercent(pct: number | null): string {
  if (pct === null) return '—';
  const sign = pct > 0 ? '+' : '';
  return `${sign}${pct.toFixed(2)}%`;
}

/** Volume with K/M/B suffixes so the legend stays short. */
export function formatVolume(v: number): string {
  const abs = Math.abs(v);
  if (abs >= 1e9) return `${(v / 1e9).toFixed(2)}B`;
  if (abs >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (abs >= 1e3) return `${(v / 1e3).toFixed(2)}K`;
  return v.toFixed(abs >= 1 ? 2 : 4);
}
