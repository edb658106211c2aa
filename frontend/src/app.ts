/**
 * Builds the page: top bar (views, connection dot, theme toggle), the chart
 * grid with its add controls, and the activity and stats views.
 */
import { Dashboard } from './dashboard';
import { button, h } from './dom';
import { CatalogStore } from './net/catalogStore';
import { Connection } from './net/connection';
import { StreamHub } from './net/streams';
import { ActivityPanel } from './panels/activityPanel';
import { connectScriptFeed } from './net/scriptFeed';
import { BacktestPanel } from './panels/backtestPanel';
import { StatsPanel } from './panels/statsPanel';
import { renderStatus } from './panels/statusDot';
import { INTERVALS, Interval } from './state/intervals';
import { MAX_CHARTS, PRESET_SYMBOLS, loadLayout } from './state/layout';
import type { KeyValueStore } from './state/storage';
import { SYMBOL_DATALIST_ID, SymbolDirectory } from './state/symbols';
import { ThemeState } from './theme';
import { SymbolResults } from './ui/symbolResults';

type ViewName = 'charts' | 'backtest' | 'activity' | 'stats';

export interface App {
  dashboard: Dashboard;
  activity: ActivityPanel;
  stats: StatsPanel;
  backtest: BacktestPanel;
  conn: Connection;
  streams: StreamHub;
  catalog: CatalogStore;
  theme: ThemeState;
  symbols: SymbolDirectory;
}

export function buildApp(root: HTMLElement, store: KeyValueStore): App {
  const theme = new ThemeState(store);
  const conn = new Connection({ url: Connection.defaultUrl() });
  const streams = new StreamHub(conn);
  const catalog = new CatalogStore();
  const symbols = new SymbolDirectory();

  const status = h(
    'span',
    { class: 'status', 'data-testid': 'connection-status', 'data-state': 'disconnected', role: 'status' },
    h('i', { class: 'dot' }),
    h('span', { class: 'status-text' }, 'Offline'),
  );
  const themeBtn = button('theme-toggle', '', 'Toggle dark / light theme', () => theme.toggle());
  const paintThemeBtn = () => {
    themeBtn.textContent = theme.theme === 'dark' ? '☀' : '☾';
    themeBtn.dataset.theme = theme.theme;
  };
  paintThemeBtn();
  theme.onChange(paintThemeBtn);

  const grid = h('div', { class: 'chart-grid', 'data-testid': 'chart-grid' });
  const dashboard = new Dashboard(grid, conn, streams, catalog, store, theme, symbols, loadLayout(store));

  const addSymbol = h('input', {
    class: 'symbol-input',
    'data-testid': 'add-symbol',
    list: SYMBOL_DATALIST_ID,
    value: 'BTCUSDT',
    'aria-label': 'Symbol for the new chart',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const addInterval = h(
    'select',
    { 'data-testid': 'add-interval', 'aria-label': 'Interval for the new chart' },
    ...INTERVALS.map((i) => h('option', { value: i, selected: i === '1m' }, i)),
  );
  // Why the last add did nothing (unknown or ambiguous symbol, grid full): said, not swallowed.
  const addError = h('span', { class: 'add-error', 'data-testid': 'add-error', role: 'alert', hidden: true });
  const add = async (input: string) => {
    const match = await symbols.resolve(input);
    const id = 'symbol' in match ? dashboard.add(match.symbol, addInterval.value as Interval) : null;
    addError.textContent = 'error' in match ? match.error : id === null ? `At most ${MAX_CHARTS} charts: remove one first.` : '';
    addError.hidden = addError.textContent === '';
    if ('symbol' in match) addSymbol.value = match.symbol;
  };
  // Search-as-you-type over the server's symbol master; a pick opens the chart when the symbol has a feed.
  const results = new SymbolResults(addSymbol, (hit) => {
    if (hit.live) void add(hit.symbol);
    else {
      addError.textContent = `${hit.symbol} is in ${hit.source}'s master but has no feed on this server: an admin can start one (POST /api/feeds).`;
      addError.hidden = false;
    }
  });
  addSymbol.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      results.close();
      void add(addSymbol.value);
    }
  });
  addSymbol.addEventListener('input', () => (addError.hidden = true));
  const toolbar = h(
    'div',
    { class: 'grid-toolbar' },
    h(
      'div',
      { class: 'add-group' },
      h('div', { class: 'symbol-search' }, addSymbol, results.root),
      addInterval,
      button('add-chart', '+ Add chart', 'Add a chart', () => void add(addSymbol.value)),
      addError,
    ),
    h(
      'div',
      { class: 'preset-group' },
      h('span', { class: 'muted' }, 'Quick add:'),
      ...PRESET_SYMBOLS.map((s) => button(`preset-${s}`, s.replace(/USDT$/, ''), `Add ${s}`, () => void add(s))),
    ),
    dashboard.undoBar,
  );

  const activity = new ActivityPanel();
  const stats = new StatsPanel();
  const backtest = new BacktestPanel(catalog, theme);
  const views: Record<ViewName, HTMLElement> = {
    charts: h('section', { class: 'view', 'data-testid': 'view-charts' }, toolbar, grid, h('p', { class: 'empty-grid' }, 'No charts yet: add one above.')),
    backtest: h('section', { class: 'view', 'data-testid': 'view-backtest', hidden: true }, backtest.root),
    activity: h('section', { class: 'view', 'data-testid': 'view-activity', hidden: true }, activity.root),
    stats: h('section', { class: 'view', 'data-testid': 'view-stats', hidden: true }, stats.root),
  };
  const navButtons = (Object.keys(views) as ViewName[]).map((name) =>
    button(`nav-${name}`, { charts: 'Charts', backtest: 'Backtest', activity: 'Script activity', stats: 'Stats' }[name], `Show ${name}`, () => show(name)),
  );
  const show = (name: ViewName) => {
    for (const [n, el] of Object.entries(views)) el.hidden = n !== name;
    for (const b of navButtons) {
      const on = b.dataset.testid === `nav-${name}`;
      b.classList.toggle('active', on);
      // Screen readers announce the shown view as the current one.
      if (on) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
    stats.setVisible(name === 'stats');
    if (name === 'charts') dashboard.queueLayout();
    void backtest.setVisible(name === 'backtest');
  };

  root.append(
    h(
      'header',
      { class: 'topbar' },
      h('span', { class: 'brand' }, 'candlecast'),
      h('nav', { class: 'nav' }, ...navButtons),
      h('span', { class: 'spacer' }),
      status,
      themeBtn,
    ),
    h('main', {}, ...Object.values(views)),
  );
  show('charts');

  let connState = conn.currentState;
  let retryInMs: number | undefined;
  let charts = dashboard.health();
  const paintStatus = () => renderStatus(status, connState, retryInMs, charts);
  conn.onState((s, info) => {
    connState = s;
    retryInMs = info.retryInMs;
    paintStatus();
  });
  dashboard.onHealth((h) => {
    charts = h;
    paintStatus();
  });
  connectScriptFeed({
    onUpdate: (u) => {
      activity.ingest(u);
      // A script's trades may be on a symbol it just created: have it in the pickers.
      symbols.noteActivity();
    }, onState: (s, detail) => activity.setFeedState(s, detail) });
  conn.connect();
  void symbols.load();
  void activity.loadHistory();

  return { dashboard, activity, stats, backtest, conn, streams, catalog, theme, symbols };
}
