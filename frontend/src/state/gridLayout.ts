/**
 * How the chart grid uses the window: columns for the number of charts (TradingView's 1, 2, 2x2, 3x2 and
 * 4x2 layouts on a wide screen, fewer columns on narrower ones, one on a phone), and the chart height
 * that makes the rows fill the height left under the toolbar.
 */

/** Below this width (px) one column, and charts keep a fixed height (the page scrolls). */
export const PHONE_MAX_WIDTH = 700;
/** Charts never get shorter than this (px), however many rows there are; the page scrolls instead. */
export const MIN_CHART_HEIGHT = 220;

export function gridColumns(count: number, widthPx: number): number {
  if (count <= 1 || widthPx < PHONE_MAX_WIDTH) return 1;
  const wanted = count <= 4 ? 2 : count <= 6 ? 3 : 4;
  // A chart narrower than ~340 px is hard to read: fewer columns on a narrow window.
  return Math.max(1, Math.min(wanted, Math.floor(widthPx / 340)));
}

/**
 * Height (px) of each chart's drawing area so that `rows` rows fill `availablePx`; `chromePx` is what
 * each card adds around it (header, borders), `gapPx` the space between rows. Null on a phone.
 */
export function chartHeight(count: number, cols: number, widthPx: number, availablePx: number, chromePx: number, gapPx: number): number | null {
  if (widthPx < PHONE_MAX_WIDTH || count === 0) return null;
  const rows = Math.ceil(count / cols);
  const perRow = (availablePx - (rows - 1) * gapPx) / rows;
  return Math.max(MIN_CHART_HEIGHT, Math.floor(perRow - chromePx));
}
