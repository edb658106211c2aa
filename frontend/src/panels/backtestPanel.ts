/**
 * The Backtest view (seed 002's backtesting and optimization pages): one setup
 * block (strategy, market, costs, fill model, shorting) and two tabs.
 *
 *  - Backtest: parameter values → POST /api/backtest/run → poll
 *    /api/backtest/results/{id} → metrics, equity curve with the trades as
 *    markers, and the trade list.
 *  - Optimize: a grid or range per parameter and a metric to rank by →
 *    POST /api/optimize/start → progress from /api/optimize/status/{id}
 *    (cancellable) → the ranked table from /api/optimize/results/{id}.
 *
 * Input is checked against the catalogue's ranges first; what only the server
 * can judge (fast < slow, unknown symbol, no data) comes back as a 400/404/503
 * whose `detail` is shown next to the form as is.
 */
import { button, h } from '../dom';
import { ApiRequestError, JobStatus, api } from '../net/api';
import type { CatalogStore } from '../net/catalogStore';
import type { StrategyInfo } from '../state/catalog';
import { INTERVALS } from '../state/intervals';
import { SYMBOL_DATALIST_ID } from '../state/symbols';
import type { ThemeState } from '../theme';
import { TEST_BUILD, exposeForTests } from '../testBuild';
import { ParamFields } from '../ui/paramFields';
import {
  BacktestRequestBody,
  BacktestResult,
  METRIC_ROWS,
  Metrics,
  RANK_METRICS,
  buildBacktestRequest,
  buildOptimizeRequest,
  formatAmount,
  formatMetric,
  metricDirection,
  progressPercent,
  resultLimitsNote,
  TradeRecord,
} from './backtestModel';
import { BacktestPriceChart } from './backtestPriceChart';
import { EquityChart } from './equityChart';

/** How often a running job is polled, and for how long at most. */
const POLL_MS = 300;
const POLL_LIMIT_MS = 10 * 60_000;
/** Trades listed under the curve (newest last); the curve has all of them. */
const MAX_TRADE_ROWS = 300;

interface OptimizeRow {
  rank: number;
  params: Record<string, number>;
  score: number | null;
  metrics: Metrics;
}

interface OptimizeOutcome {
  rank_by: string;
  direction: string;
  combinations: number;
  evaluated: number;
  skipped: number;
  results: OptimizeRow[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function describeError(err: unknown): string {
  if (err instanceof ApiRequestError) return err.detail;
  return err instanceof Error ? err.message : String(err);
}

export class BacktestPanel {
  readonly root: HTMLElement;
  private catalog: StrategyInfo[] = [];
  private readonly strategySelect = h('select', { 'data-testid': 'bt-strategy', 'aria-label': 'Strategy' });
  private readonly strategyNote = h('p', { class: 'muted panel-note' });
  private readonly symbol = h('input', { class: 'symbol-input', 'data-testid': 'bt-symbol', list: SYMBOL_DATALIST_ID, value: 'BTCUSDT', 'aria-label': 'Symbol', spellcheck: 'false', autocomplete: 'off' });
  private readonly interval = h('select', { 'data-testid': 'bt-interval', 'aria-label': 'Interval' }, ...INTERVALS.map((i) => h('option', { value: i, selected: i === '1m' }, i)));
  private readonly fee = h('input', { type: 'number', 'data-testid': 'bt-fee', min: 0, max: 1000, step: 'any', value: '5', 'aria-label': 'Fee (bps)' });
  private readonly slippage = h('input', { type: 'number', 'data-testid': 'bt-slippage', min: 0, max: 1000, step: 'any', value: '1', 'aria-label': 'Slippage (bps)' });
  private readonly fill = h(
    'select',
    { 'data-testid': 'bt-fill', 'aria-label': 'Fill model' },
    h('option', { value: 'next_open', selected: true }, 'next bar open'),
    h('option', { value: 'close' }, 'signal bar close (optimistic)'),
  );
  private readonly allowShort = h('input', { type: 'checkbox', 'data-testid': 'bt-short' });
  // The tested range (in the browser's time zone; empty: every bar the server holds, within the budget).
  private readonly start = h('input', { type: 'datetime-local', 'data-testid': 'bt-start', 'aria-label': 'From' });
  private readonly end = h('input', { type: 'datetime-local', 'data-testid': 'bt-end', 'aria-label': 'To' });
  private readonly capital = h('input', { type: 'number', 'data-testid': 'bt-capital', min: 0, step: 'any', value: '10000', 'aria-label': 'Starting capital' });
  private readonly priceHost = h('div', { class: 'equity-host', 'data-testid': 'bt-price' });
  private price: BacktestPriceChart | null = null;
  private readonly error = h('p', { class: 'form-error', 'data-testid': 'bt-error', role: 'alert' });
  private readonly limitsNote = h('p', { class: 'form-note', 'data-testid': 'bt-limits' });
  private readonly setupErrors = new Map<string, HTMLElement>();

  // Backtest tab
  private params: ParamFields | null = null;
  private readonly paramsSlot = h('div');
  private readonly runBtn: HTMLButtonElement;
  private readonly runStatus = h('span', { class: 'muted', 'data-testid': 'bt-status' });
  private readonly results = h('div', { class: 'bt-results', 'data-testid': 'bt-results', hidden: true });
  private readonly summary = h('p', { class: 'panel-note', 'data-testid': 'bt-summary' });
  private readonly metricsGrid = h('div', { class: 'stat-grid', 'data-testid': 'bt-metrics' });
  private readonly equityHost = h('div', { class: 'equity-host', 'data-testid': 'bt-equity' });
  private readonly tradesBody = h('tbody');
  private equity: EquityChart | null = null;
  private runGen = 0;
  private lastResult: BacktestResult | null = null;

  // Optimize tab
  private grids = new Map<string, HTMLInputElement>();
  private readonly gridSlot = h('div', { class: 'param-fields' });
  private readonly rankBy = h('select', { 'data-testid': 'opt-rank', 'aria-label': 'Rank by' }, ...RANK_METRICS.map((m) => h('option', { value: m }, m)));
  private readonly direction = h(
    'select',
    { 'data-testid': 'opt-direction', 'aria-label': 'Direction' },
    h('option', { value: 'auto' }, 'auto'),
    h('option', { value: 'max' }, 'max'),
    h('option', { value: 'min' }, 'min'),
  );
  private readonly top = h('input', { type: 'number', 'data-testid': 'opt-top', min: 1, max: 100, step: 1, value: '20', 'aria-label': 'Results kept' });
  private readonly combos = h('span', { class: 'muted', 'data-testid': 'opt-combinations' });
  private readonly optStart: HTMLButtonElement;
  private readonly optCancel: HTMLButtonElement;
  private readonly progress = h('progress', { 'data-testid': 'opt-progress', max: 100, value: 0, hidden: true });
  private readonly optStatus = h('span', { class: 'muted', 'data-testid': 'opt-status' });
  private readonly optBody = h('tbody');
  private readonly optResults = h('div', { class: 'table-wrap', 'data-testid': 'opt-results', hidden: true });
  private optJob: string | null = null;
  private optGen = 0;

  private readonly tabs: Record<'backtest' | 'optimize', { btn: HTMLButtonElement; el: HTMLElement }>;

  constructor(
    private readonly catalogStore: CatalogStore,
    private readonly theme: ThemeState,
  ) {
    // Read-only state for the browser tests (test builds only, see ../testBuild.ts).
    if (TEST_BUILD) {
      exposeForTests(this, () => ({
        strategies: this.catalog.map((s) => s.name),
        result: this.lastResult
          ? {
              metrics: this.lastResult.metrics,
              equityPoints: this.equity?.pointCount ?? 0,
              trades: this.lastResult.trades.length,
              equityFrom: this.lastResult.equity[0]?.time ?? null,
              equityTo: this.lastResult.equity[this.lastResult.equity.length - 1]?.time ?? null,
              tradeTimes: this.lastResult.trades.map((t) => [t.entry_time, t.exit_time]),
            }
          : null,
        error: this.error.textContent,
        optimizeJob: this.optJob,
        price: this.price ? { ...this.price.info, visibleRange: this.price.visibleRange() } : null,
      }));
    }
    this.strategySelect.addEventListener('change', () => this.renderStrategy());
    this.runBtn = button('bt-run', 'Run backtest', 'Run the backtest on the server', () => void this.run());
    this.runBtn.classList.add('primary');
    this.optStart = button('opt-start', 'Start optimization', 'Run one backtest per grid point on the server', () => void this.startOptimize());
    this.optStart.classList.add('primary');
    this.optCancel = button('opt-cancel', 'Cancel', 'Stop the running optimization', () => void this.cancelOptimize());
    this.optCancel.disabled = true;

    const field = (label: string, el: HTMLElement, key?: string) => {
      const err = h('span', { class: 'field-error' });
      if (key) this.setupErrors.set(key, err);
      return h('label', { class: 'form-field' }, h('span', { class: 'param-name' }, label), el, err);
    };
    const setup = h(
      'div',
      { class: 'bt-setup' },
      h('div', { class: 'form-row' }, field('Strategy', this.strategySelect, 'strategy'), field('Symbol', this.symbol, 'symbol'), field('Interval', this.interval, 'interval')),
      this.strategyNote,
      h(
        'div',
        { class: 'form-row' },
        field('Fee (bps)', this.fee, 'fee_bps'),
        field('Slippage (bps)', this.slippage, 'slippage_bps'),
        field('Fill', this.fill, 'fill'),
        h('label', { class: 'form-check' }, this.allowShort, ' Allow short'),
      ),
      h(
        'div',
        { class: 'form-row' },
        field('From', this.start, 'start_time'),
        field('To', this.end, 'end_time'),
        field('Starting capital', this.capital, 'initial_capital'),
      ),
    );

    const btTab = h(
      'section',
      { class: 'bt-tab', 'data-testid': 'bt-tab' },
      h('h3', {}, 'Parameters'),
      this.paramsSlot,
      h('div', { class: 'form-row actions' }, this.runBtn, this.runStatus),
      this.results,
    );
    this.results.append(
      this.summary,
      this.limitsNote,
      this.metricsGrid,
      h('h3', {}, 'Trades on the price'),
      this.priceHost,
      h('h3', {}, 'Equity'),
      this.equityHost,
      h('h3', {}, 'Trades'),
      h('p', { class: 'muted panel-note' }, 'Click a trade to see it on the price chart.'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data-table', 'data-testid': 'bt-trades' },
          h('thead', {}, h('tr', {}, ...['#', 'Side', 'Entry', 'Entry price', 'Exit', 'Exit price', 'PnL', 'Return'].map((t) => h('th', {}, t)))),
          this.tradesBody,
        ),
      ),
    );

    const optTab = h(
      'section',
      { class: 'bt-tab', 'data-testid': 'opt-tab', hidden: true },
      h('h3', {}, 'Grid'),
      h('p', { class: 'muted panel-note' }, 'Per parameter a range start:end:step (inclusive) or a list 50, 100, 200; empty keeps the default.'),
      this.gridSlot,
      h('div', { class: 'form-row' }, field('Rank by', this.rankBy), field('Direction', this.direction), field('Keep top', this.top), this.combos),
      h('div', { class: 'form-row actions' }, this.optStart, this.optCancel, this.progress, this.optStatus),
      this.optResults,
    );
    this.optResults.append(
      h(
        'table',
        { class: 'data-table', 'data-testid': 'opt-table' },
        h('thead', {}, h('tr', {}, ...['Rank', 'Parameters', 'Score', 'Net PnL', 'Return', 'Sharpe', 'Max DD', 'Trades', ''].map((t) => h('th', {}, t)))),
        this.optBody,
      ),
    );
    this.gridSlot.addEventListener('input', () => this.updateCombinations());

    this.tabs = {
      backtest: { btn: button('bt-tab-backtest', 'Backtest', 'Single backtest', () => this.showTab('backtest')), el: btTab },
      optimize: { btn: button('bt-tab-optimize', 'Optimize', 'Parameter optimization', () => this.showTab('optimize')), el: optTab },
    };
    this.root = h(
      'div',
      { class: 'panel backtest-panel', 'data-testid': 'backtest-panel' },
      h('p', { class: 'panel-note' }, 'Runs a strategy over the server’s bar history for one symbol and interval.'),
      setup,
      this.error,
      h('div', { class: 'tabs', role: 'tablist' }, this.tabs.backtest.btn, this.tabs.optimize.btn),
      btTab,
      optTab,
    );
    this.showTab('backtest');
  }

  /** Loads the strategy catalogue the first time the view is shown. */
  async setVisible(visible: boolean): Promise<void> {
    if (!visible) return;
    if (!this.equity) this.equity = new EquityChart(this.equityHost, this.theme);
    if (!this.price) this.price = new BacktestPriceChart(this.priceHost, this.theme);
    if (this.catalog.length) return;
    try {
      this.catalog = await this.catalogStore.strategies();
      this.strategySelect.replaceChildren(...this.catalog.map((s) => h('option', { value: s.name }, s.name)));
      this.renderStrategy();
    } catch (err) {
      this.error.textContent = `Could not load the strategies: ${describeError(err)}`;
    }
  }

  private showTab(name: 'backtest' | 'optimize'): void {
    for (const [k, t] of Object.entries(this.tabs)) {
      t.el.hidden = k !== name;
      t.btn.classList.toggle('active', k === name);
      t.btn.setAttribute('aria-selected', String(k === name));
    }
  }

  private strategy(): StrategyInfo | undefined {
    return this.catalog.find((s) => s.name === this.strategySelect.value);
  }

  private renderStrategy(): void {
    const s = this.strategy();
    this.strategyNote.textContent = s?.description ?? '';
    this.params = s ? new ParamFields(s.params, 'bt-param-') : null;
    this.paramsSlot.replaceChildren(...(this.params ? [this.params.root] : []));
    this.grids = new Map();
    this.gridSlot.replaceChildren(
      ...(s?.params ?? []).map((p) => {
        const input = h('input', {
          'data-testid': `opt-param-${p.name}`,
          placeholder: `default ${p.default}`,
          title: `${p.description ?? p.name} (${p.min}–${p.max})`,
          spellcheck: 'false',
        });
        this.grids.set(p.name, input);
        return h('label', { class: 'param-field' }, h('span', { class: 'param-name' }, p.name), input, h('span', { class: 'field-error', 'data-testid': `opt-param-${p.name}-error` }));
      }),
    );
    this.error.textContent = '';
    this.updateCombinations();
  }

  private setupValues() {
    return {
      strategy: this.strategySelect.value,
      symbol: this.symbol.value,
      interval: this.interval.value,
      feeBps: this.fee.value,
      slippageBps: this.slippage.value,
      fill: this.fill.value,
      allowShort: this.allowShort.checked,
      start: this.start.value,
      end: this.end.value,
      capital: this.capital.value,
    };
  }

  private showSetupErrors(errors: Record<string, string>): void {
    for (const [k, el] of this.setupErrors) el.textContent = errors[k] ?? '';
    const generic = errors.grid ?? errors.rank_by;
    this.error.textContent = Object.keys(errors).length ? generic ?? 'Fix the highlighted fields.' : '';
  }

  // ---- backtest --------------------------------------------------------------

  private async run(): Promise<void> {
    if (!this.params) return;
    const built = buildBacktestRequest({ ...this.setupValues(), params: this.params.read() }, this.catalog);
    this.params.showErrors(Object.fromEntries(Object.entries(built.errors).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v])));
    this.showSetupErrors(built.errors);
    if (!built.body) return;
    const gen = ++this.runGen;
    this.runBtn.disabled = true;
    this.runStatus.textContent = 'Starting…';
    try {
      const { job_id } = await api.backtestRun(built.body);
      this.runStatus.textContent = 'Running…';
      const done = await this.poll(() => api.backtestResults<BacktestResult>(job_id), () => gen !== this.runGen);
      if (!done || gen !== this.runGen) return;
      if (done.status !== 'done' || !done.result) {
        this.error.textContent = done.error ?? `The backtest ${done.status}.`;
        this.runStatus.textContent = '';
        return;
      }
      this.showResult(done.result, built.body);
      this.runStatus.textContent = `Done (${job_id}).`;
    } catch (err) {
      // The server's own words: a 400 names the bad parameter or constraint.
      this.error.textContent = describeError(err);
      this.runStatus.textContent = '';
    } finally {
      if (gen === this.runGen) this.runBtn.disabled = false;
    }
  }

  private async poll<R>(fetchStatus: () => Promise<JobStatus<R>>, stale: () => boolean, onProgress?: (s: JobStatus<R>) => void): Promise<JobStatus<R> | null> {
    const deadline = Date.now() + POLL_LIMIT_MS;
    for (;;) {
      const s = await fetchStatus();
      if (stale()) return null;
      onProgress?.(s);
      if (s.status !== 'running') return s;
      if (Date.now() > deadline) throw new Error('the job is taking too long; try a shorter range or a smaller grid');
      await sleep(POLL_MS);
      if (stale()) return null;
    }
  }

  private showResult(r: BacktestResult, request: BacktestRequestBody): void {
    this.lastResult = r;
    this.results.hidden = false;
    const m = r.metrics;
    this.summary.textContent = `${r.strategy ?? ''} on ${r.symbol ?? ''} ${r.interval ?? ''} · ${(r.bars ?? m.bars ?? r.equity.length).toLocaleString('en-US')} bars · initial ${formatMetric(m.initial_equity, 'ratio')} → final ${formatMetric(m.final_equity, 'ratio')}`;
    this.metricsGrid.replaceChildren(
      ...METRIC_ROWS.map(({ key, label, format }) => {
        const value = m[key] as number | null | undefined;
        return h(
          'div',
          { class: 'stat-card' },
          h('span', { class: 'stat-label' }, label),
          h('span', { class: 'stat-value', 'data-testid': `bt-metric-${key}`, 'data-direction': metricDirection(key, value) }, formatMetric(value, format)),
          // The drawdown in money too, under its percentage.
          key === 'max_drawdown_pct' ? h('span', { class: 'stat-sub', 'data-testid': 'bt-metric-max_drawdown' }, formatAmount(m.max_drawdown)) : null,
        );
      }),
    );
    this.equity?.show(r.equity, r.trades);
    void this.price?.show(r.symbol ?? request.symbol, r.interval ?? request.interval, { start: request.start_time, end: request.end_time }, r.trades);
    this.limitsNote.textContent = resultLimitsNote(r);
    const rows = r.trades.slice(-MAX_TRADE_ROWS);
    const offset = r.trades.length - rows.length;
    const time = (t: number) => new Date(t).toISOString().replace('T', ' ').slice(0, 19);
    this.tradesBody.replaceChildren(
      ...(rows.length
        ? rows.map((t, i) =>
            h(
              'tr',
              {
                'data-side': t.side === 'long' ? 'buy' : 'sell',
                'data-trade': String(offset + i),
                class: 'clickable',
                tabindex: 0,
                title: 'Show on the price chart',
              },
              h('td', {}, String(offset + i + 1)),
              h('td', { 'data-col': 'side' }, t.side),
              h('td', {}, time(t.entry_time)),
              h('td', {}, t.entry_price.toFixed(2)),
              h('td', {}, time(t.exit_time)),
              h('td', {}, t.exit_price.toFixed(2)),
              h('td', {}, formatMetric(t.pnl, 'money')),
              h('td', {}, formatMetric(t.return_pct, 'pct')),
            ),
          )
        : [h('tr', {}, h('td', { class: 'empty', colspan: 8 }, 'No closed trades.'))]),
    );
    for (const row of this.tradesBody.querySelectorAll<HTMLElement>('tr[data-trade]')) {
      const index = Number(row.dataset.trade);
      const trade = r.trades[index];
      row.addEventListener('click', () => this.focusTrade(trade, index, row));
      row.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') this.focusTrade(trade, index, row);
      });
    }
  }

  /** Scrolls the price chart to a trade and marks its row. */
  private focusTrade(t: TradeRecord, index: number, row: HTMLElement): void {
    for (const r of this.tradesBody.querySelectorAll('tr[aria-selected]')) r.removeAttribute('aria-selected');
    row.setAttribute('aria-selected', 'true');
    this.price?.focus(t, index);
    this.priceHost.scrollIntoView({ block: 'nearest' });
  }

  // ---- optimize --------------------------------------------------------------

  private optimizeValues() {
    return {
      ...this.setupValues(),
      grids: Object.fromEntries([...this.grids].map(([k, el]) => [k, el.value])),
      rankBy: this.rankBy.value,
      direction: this.direction.value,
      // The server's default `[jobs] max_top` is 100.
      top: Math.max(1, Math.min(100, Math.round(Number(this.top.value) || 20))),
    };
  }

  private updateCombinations(): void {
    const built = buildOptimizeRequest(this.optimizeValues(), this.catalog);
    this.combos.textContent = `${built.combinations.toLocaleString('en-US')} combination${built.combinations === 1 ? '' : 's'}`;
  }

  private async startOptimize(): Promise<void> {
    const built = buildOptimizeRequest(this.optimizeValues(), this.catalog);
    for (const [name] of this.grids) {
      const el = this.gridSlot.querySelector(`[data-testid="opt-param-${name}-error"]`);
      if (el) el.textContent = built.errors[`param:${name}`] ?? '';
    }
    this.showSetupErrors(built.errors);
    if (!built.body) return;
    const gen = ++this.optGen;
    this.optStart.disabled = true;
    this.optResults.hidden = true;
    this.progress.hidden = false;
    this.progress.value = 0;
    this.optStatus.textContent = 'Starting…';
    try {
      const { job_id } = await api.optimizeStart(built.body);
      this.optJob = job_id;
      this.optCancel.disabled = false;
      const status = await this.poll(
        () => api.optimizeStatus(job_id),
        () => gen !== this.optGen,
        (s) => {
          this.progress.value = progressPercent(s);
          this.optStatus.textContent = `${s.done ?? 0} / ${s.total ?? built.combinations}`;
        },
      );
      if (!status || gen !== this.optGen) return;
      if (status.status !== 'done') {
        this.optStatus.textContent = status.status === 'cancelled' ? 'Cancelled.' : `Failed: ${status.error ?? status.status}`;
        return;
      }
      const res = await api.optimizeResults<OptimizeOutcome>(job_id);
      if (gen !== this.optGen || !res.result) return;
      this.showOptimize(res.result);
      this.optStatus.textContent = `Done: ${res.result.evaluated} evaluated, ${res.result.skipped} skipped.`;
    } catch (err) {
      this.error.textContent = describeError(err);
      this.optStatus.textContent = '';
    } finally {
      if (gen === this.optGen) {
        this.optStart.disabled = false;
        this.optCancel.disabled = true;
        this.optJob = null;
      }
    }
  }

  private async cancelOptimize(): Promise<void> {
    if (!this.optJob) return;
    this.optCancel.disabled = true;
    try {
      await api.optimizeCancel(this.optJob);
      this.optStatus.textContent = 'Cancelling…';
    } catch (err) {
      this.error.textContent = describeError(err);
    }
  }

  private showOptimize(o: OptimizeOutcome): void {
    this.optResults.hidden = false;
    const rankFormat = METRIC_ROWS.find((r) => r.key === o.rank_by)?.format ?? 'ratio';
    this.optBody.replaceChildren(
      ...(o.results.length
        ? o.results.map((row) =>
            h(
              'tr',
              { 'data-rank': row.rank },
              h('td', {}, String(row.rank)),
              h('td', {}, Object.entries(row.params).map(([k, v]) => `${k}=${v}`).join(', ')),
              h('td', {}, formatMetric(row.score, rankFormat)),
              h('td', {}, formatMetric(row.metrics.net_pnl, 'money')),
              h('td', {}, formatMetric(row.metrics.return_pct, 'pct')),
              h('td', {}, formatMetric(row.metrics.sharpe, 'ratio')),
              h('td', {}, formatMetric(row.metrics.max_drawdown_pct, 'pct')),
              h('td', {}, formatMetric(row.metrics.trades, 'count')),
              h('td', {}, button('opt-use', 'Backtest', 'Backtest these parameters', () => this.useParams(row.params))),
            ),
          )
        : [h('tr', {}, h('td', { class: 'empty', colspan: 9 }, 'No result.'))]),
    );
  }

  /** Copies a ranked row's parameters into the Backtest tab and runs it. */
  private useParams(params: Record<string, number>): void {
    const s = this.strategy();
    if (!s) return;
    this.params = new ParamFields(s.params, 'bt-param-', params);
    this.paramsSlot.replaceChildren(this.params.root);
    this.showTab('backtest');
    void this.run();
  }
}
