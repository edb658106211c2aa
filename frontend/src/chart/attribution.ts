/**
 * lightweight-charts (Apache-2.0) asks for its attribution logo, which we keep. It gives every chart's logo
 * link the same id (`tv-attr-logo`, duplicated with two charts or more) and no accessible name beyond a
 * tooltip. Each logo link gets an id of its own chart and a name saying where it leads; the library
 * re-creates the link when the theme changes, so this watches for it. Its own stylesheet targets the id,
 * so styles.css carries the same rules for the class.
 */
export const LOGO_ID = 'tv-attr-logo';

export function nameAttributionLogo(host: HTMLElement, chartId: string): () => void {
  const fix = () => {
    for (const a of host.querySelectorAll<HTMLAnchorElement>(`a#${LOGO_ID}`)) {
      a.id = `${LOGO_ID}-${chartId}`;
      a.classList.add(LOGO_ID);
      a.setAttribute('aria-label', 'Charting by TradingView (opens tradingview.com in a new tab)');
      a.rel = 'noopener';
    }
  };
  fix();
  if (typeof MutationObserver === 'undefined') return () => {};
  const observer = new MutationObserver(fix);
  observer.observe(host, { childList: true, subtree: true });
  return () => observer.disconnect();
}
