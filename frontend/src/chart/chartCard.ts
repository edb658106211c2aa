/**
 * The DOM of one chart card: header, toolbar, and the stage where lightweight-charts draws (the host)
 * under the legend, indicator chips and menu, notices and the "Live" button. The browser tests and the
 * styles find the parts by these classes and `data-testid`s.
 */
import { button, h } from '../dom';
import type { ChartHeader } from './chartHeader';
import type { ErrorNotice, HealthBanner } from './chartNotices';
import type { IndicatorMenu } from './indicatorMenu';

export interface ChartCard {
  root: HTMLElement;
  /** Where lightweight-charts draws. */
  host: HTMLElement;
  legend: HTMLElement;
  /** Shown while scrolled back: one click returns to the newest bars. */
  liveButton: HTMLButtonElement;
}

export function buildChartCard(
  id: string,
  parts: { header: ChartHeader; menu: IndicatorMenu; notice: ErrorNotice; banner: HealthBanner; onBackToLive(): void },
): ChartCard {
  const { header, menu, notice, banner } = parts;
  const liveButton = button('chart-back-to-live', 'Live ⇥', 'Back to the newest bars', parts.onBackToLive);
  liveButton.classList.add('chart-back-to-live');
  liveButton.hidden = true;
  const legend = h('div', { class: 'legend', 'data-testid': 'legend' });
  const host = h('div', { class: 'chart-host', 'data-testid': 'chart-host' });
  header.addAction(menu.toggle);
  const overlayTop = h('div', { class: 'chart-overlay-top' }, legend, menu.chips);
  const stage = h('div', { class: 'chart-stage' }, host, overlayTop, menu.popover, notice.root, banner.root, liveButton);
  const root = h(
    'section',
    { class: 'chart-card', 'data-testid': 'chart-card', 'data-chart-id': id },
    header.root,
    h('div', { class: 'chart-body' }, header.toolbar, stage),
  );
  return { root, host, legend, liveButton };
}
