/** Server statistics from `GET /api/stats`, polled while the view is open. */
import { h } from '../dom';
import { StatsResponse, api } from '../net/api';

export const STATS_REFRESH_MS = 3000;

const CARDS: Array<{ key: string; label: string; fmt?: (v: number) => string }> = [
  { key: 'total_clients', label: 'Clients' },
  { key: 'total_subscriptions', label: 'Subscriptions' },
  { key: 'messages_per_second', label: 'Messages/s', fmt: (v) => v.toFixed(1) },
  { key: 'messages_sent', label: 'Messages sent' },
  { key: 'messages_dropped', label: 'Dropped' },
  { key: 'late_dropped', label: 'Late trades dropped' },
  { key: 'slow_client_disconnects', label: 'Slow-client disconnects' },
  { key: 'uptime_seconds', label: 'Uptime', fmt: formatUptime },
];

export function formatUptime(s: number): string {
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = Math.floor(s % 60);
  return d > 0 ? `${d}d ${hh}h ${mm}m` : hh > 0 ? `${hh}h ${mm}m ${ss}s` : `${mm}m ${ss}s`;
}

export class StatsPanel {
  readonly root: HTMLElement;
  private readonly values = new Map<string, HTMLElement>();
  private readonly pairsBody = h('tbody');
  private readonly updated = h('span', { 'data-testid': 'stats-updated' }, 'not loaded');
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor() {
    const cards = CARDS.map(({ key, label }) => {
      const v = h('span', { class: 'stat-value', 'data-testid': `stat-${key}` }, '—');
      this.values.set(key, v);
      return h('div', { class: 'stat-card' }, h('span', { class: 'stat-label' }, label), v);
    });
    this.root = h(
      'div',
      { class: 'panel', 'data-testid': 'stats-panel' },
      h('p', { class: 'panel-note' }, 'Server statistics, refreshed every few seconds. Last refresh: ', this.updated),
      h('div', { class: 'stat-grid' }, ...cards),
      h('h3', {}, 'Per pair'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data-table', 'data-testid': 'stats-pairs' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Pair'), h('th', {}, 'Subscribers'), h('th', {}, 'Trades/s'))),
          this.pairsBody,
        ),
      ),
    );
  }

  /** Polls only while visible: no point loading the server for a hidden view. */
  setVisible(visible: boolean): void {
    if (visible && !this.timer) {
      void this.refresh();
      this.timer = setInterval(() => void this.refresh(), STATS_REFRESH_MS);
    } else if (!visible && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  async refresh(): Promise<void> {
    try {
      this.render(await api.stats());
    } catch (err) {
      this.updated.textContent = `failed (${err instanceof Error ? err.message : err})`;
    }
  }

  render(res: StatsResponse): void {
    const s = res.stats ?? {};
    for (const { key, fmt } of CARDS) {
      const v = s[key];
      this.values.get(key)!.textContent = typeof v === 'number' ? (fmt ? fmt(v) : v.toLocaleString('en-US')) : '—';
    }
    const subs = s.trading_pair_subscribers ?? {};
    const rates = s.trade_rate ?? {};
    const pairs = [...new Set([...Object.keys(subs), ...Object.keys(rates)])].sort();
    this.pairsBody.replaceChildren(
      ...pairs.map((p) =>
        h(
          'tr',
          { 'data-pair': p },
          h('td', {}, p),
          h('td', {}, String(subs[p] ?? 0)),
          h('td', {}, typeof rates[p] === 'number' ? rates[p].toFixed(1) : '—'),
        ),
      ),
    );
    this.updated.textContent = new Date().toLocaleTimeString();
  }
}
