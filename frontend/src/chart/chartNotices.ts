/**
 * What a chart says over its bars: the health banner (why it is not live: stale, refused, failed,
 * offline; with a Retry where one can help) and short-lived error notices (an unknown symbol, an
 * indicator the server refused).
 */
import { button, h } from '../dom';
import type { HealthView } from './chartHealth';

/** How long an error notice stays up, ms. */
const NOTICE_MS = 5000;

/** Whether the banner shows for a health, and whether its Retry does. */
export function bannerFor(v: HealthView): { hidden: boolean; retry: boolean } {
  return {
    // A closed market is said on the badge; a banner would only cover the last session's bars.
    hidden: v.detail === '' || v.health === 'closed',
    // Loading again helps a failed load, a refusal (a rate limit passes) and a silent topic; nothing else.
    retry: v.health === 'error' || v.health === 'refused' || v.health === 'stale',
  };
}

/**
 * What a new health changes: `shown`, what the badge and banner say; `counted`, what the page's
 * connection dot sums up (only on a change of health or of degradation, not of wording).
 */
export function healthChange(old: HealthView | null, v: HealthView): { shown: boolean; counted: boolean } {
  if (old && old.health === v.health && old.detail === v.detail) return { shown: false, counted: false };
  return { shown: true, counted: !old || old.degraded !== v.degraded || old.health !== v.health };
}

export class HealthBanner {
  readonly root: HTMLElement;
  private readonly text: HTMLElement;
  private readonly retry: HTMLButtonElement;

  constructor(onRetry: () => void) {
    this.text = h('span', { 'data-testid': 'chart-banner-text' });
    this.retry = button('chart-retry', 'Retry', 'Load this chart again', onRetry);
    this.root = h('div', { class: 'chart-banner', 'data-testid': 'chart-banner', role: 'status', hidden: true }, this.text, this.retry);
  }

  show(v: HealthView): void {
    const b = bannerFor(v);
    this.root.hidden = b.hidden;
    this.root.dataset.health = v.health;
    this.text.textContent = v.detail;
    this.retry.hidden = !b.retry;
  }
}

export class ErrorNotice {
  readonly root: HTMLElement = h('div', { class: 'chart-error', 'data-testid': 'chart-error', role: 'alert', hidden: true });
  private timer: ReturnType<typeof setTimeout> | null = null;

  show(text: string): void {
    this.root.textContent = text;
    this.root.hidden = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.hide(), NOTICE_MS);
  }

  hide(): void {
    this.root.hidden = true;
  }

  destroy(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
