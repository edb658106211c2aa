/**
 * "Script activity" (seed 003): what external scripts sent — a live trades
 * table, a market data table, totals and the last update time. Fed by
 * `trading_update` events from the server's Socket.IO endpoint
 * (net/scriptFeed.ts), which calls `ingest`; the executed trades the server
 * kept (`GET /api/trades`, which survive restarts) are loaded when the page opens.
 */

/** Executed trades loaded when the page opens. */
export const HISTORY_TRADES = 200;
import { h } from '../dom';
import { api } from '../net/api';
import type { ScriptFeedState } from '../net/scriptFeed';
import { ActivityModel, TradingUpdate } from './activityModel';

const TRADE_COLS = ['timestamp', 'symbol', 'side', 'quantity', 'price', 'profit_loss', 'strategy'] as const;
const MARKET_COLS = ['timestamp', 'symbol', 'open', 'high', 'low', 'close', 'volume', 'rsi', 'signal_strength'] as const;
const LABELS: Record<string, string> = { profit_loss: 'P&L', signal_strength: 'Signal', rsi: 'RSI' };

function table(testId: string, cols: readonly string[]): { el: HTMLTableElement; body: HTMLTableSectionElement } {
  const body = h('tbody');
  const el = h(
    'table',
    { class: 'data-table', 'data-testid': testId },
    h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', {}, LABELS[c] ?? c[0].toUpperCase() + c.slice(1).replace(/_/g, ' '))))),
    body,
  );
  return { el, body };
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 4 : 2);
  return String(v);
}

export class ActivityPanel {
  readonly root: HTMLElement;
  private readonly model = new ActivityModel();
  private readonly trades = table('activity-trades', TRADE_COLS);
  private readonly market = table('activity-market', MARKET_COLS);
  private readonly totals: Record<'trades' | 'points' | 'pnl' | 'last', HTMLElement>;
  private readonly feedState = h('span', { class: 'muted', 'data-testid': 'activity-feed-state' }, 'Connecting…');

  constructor() {
    const stat = (testId: string, label: string) => {
      const value = h('span', { class: 'stat-value', 'data-testid': testId }, '0');
      return { value, el: h('div', { class: 'stat-card' }, h('span', { class: 'stat-label' }, label), value) };
    };
    const t = stat('activity-total-trades', 'Total trades');
    const p = stat('activity-total-points', 'Data points');
    const pnl = stat('activity-total-pnl', 'Total P&L');
    const last = stat('activity-last-update', 'Last update');
    last.value.textContent = 'never';
    this.totals = { trades: t.value, points: p.value, pnl: pnl.value, last: last.value };
    this.root = h(
      'div',
      { class: 'panel', 'data-testid': 'activity-panel' },
      h('p', { class: 'panel-note' }, 'Trades and market data sent by external scripts (send_trading_data over Socket.IO, or POST /api/trading-data). ', this.feedState),
      h('div', { class: 'stat-grid' }, t.el, p.el, pnl.el, last.el),
      h('h3', {}, 'Live trades'),
      h('div', { class: 'table-wrap' }, this.trades.el),
      h('h3', {}, 'Market data'),
      h('div', { class: 'table-wrap' }, this.market.el),
    );
    this.render();
  }

  /** Adds one seed-003 trading update (CSV text or parsed records) and redraws. */
  /** Shows whether the live feed of script activity is connected. */
  setFeedState(state: ScriptFeedState, detail?: string): void {
    this.feedState.dataset.state = state;
    this.feedState.textContent = { connecting: 'Connecting…', live: 'Live.', refused: `Not connected: ${detail ?? 'refused by the server'}.` }[state];
  }

  /** Loads the executed trades the server kept; a failed request leaves the live rows as they are. */
  async loadHistory(): Promise<void> {
    try {
      if (this.model.loadHistory(await api.recentTrades(HISTORY_TRADES)) > 0) this.render();
    } catch {
      // An older server without /api/trades, or offline: the panel fills from the live feed.
    }
  }

  ingest(update: TradingUpdate): { trades: number; marketData: number } {
    const counts = this.model.ingest(update);
    this.render();
    return counts;
  }

  private render(): void {
    const m = this.model;
    this.totals.trades.textContent = String(m.totalTrades);
    this.totals.points.textContent = String(m.totalDataPoints);
    this.totals.pnl.textContent = m.totalPnl.toFixed(2);
    this.totals.pnl.dataset.direction = m.totalPnl > 0 ? 'up' : m.totalPnl < 0 ? 'down' : 'flat';
    this.totals.last.textContent = m.lastUpdate ?? 'never';
    const empty = (cols: number, text: string) => h('tr', {}, h('td', { colspan: cols, class: 'empty' }, text));
    this.trades.body.replaceChildren(
      ...(m.trades.length
        ? m.trades.map((r) =>
            h('tr', { 'data-side': r.side.toLowerCase() }, ...TRADE_COLS.map((c) => h('td', { 'data-col': c }, cell(r[c])))),
          )
        : [empty(TRADE_COLS.length, 'No trades yet')]),
    );
    this.market.body.replaceChildren(
      ...(m.marketData.length
        ? m.marketData.map((r) => h('tr', {}, ...MARKET_COLS.map((c) => h('td', { 'data-col': c }, cell(r[c])))))
        : [empty(MARKET_COLS.length, 'No market data yet')]),
    );
  }
}
