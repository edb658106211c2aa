/**
 * The chart grid: add, remove, duplicate; persists the layout on every
 * change, routes markers to charts, and sums up the charts' health for the
 * connection dot (re-checked once a second, which is what turns a chart
 * that stopped receiving updates stale).
 */
import { ChartDeps, ChartView } from './chart/chartView';
import { button, h } from './dom';
import { SymbolDrawings } from './drawings/symbolDrawings';
import { chartHeight, gridColumns } from './state/gridLayout';
import type { CatalogStore } from './net/catalogStore';
import type { Connection } from './net/connection';
import type { StreamHub } from './net/streams';
import type { Interval } from './state/intervals';
import { ChartConfig, Layout, MAX_CHARTS, nextChartId, saveLayout } from './state/layout';
import { Marker, markerFromMessage } from './state/markers';
import type { KeyValueStore } from './state/storage';
import type { SymbolDirectory } from './state/symbols';
import type { ThemeState } from './theme';

/** How long "Undo" is offered after removing a chart (ms). */
const UNDO_MS = 15_000;

/** How often every chart checks whether its updates stopped (ms). */
const HEALTH_TICK_MS = 1000;

/** Charts that are not live, for the connection dot. */
export interface GridHealth {
  total: number;
  /** `SYMBOL interval: Label` of each chart that is not live and will not get there on its own. */
  degraded: string[];
}

export class Dashboard {
  private readonly views = new Map<string, ChartView>();
  private order: string[] = [];
  /** Live updates applied since load (debug hook / performance test). */
  updateCount = 0;
  private readonly drawings: SymbolDrawings;
  private readonly healthListeners = new Set<(h: GridHealth) => void>();
  private healthQueued = false;
  private layoutQueued = false;
  private readonly headerObserver = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(() => this.queueLayout());
  /** The last removed chart and the chart it followed, for "Undo". */
  private removed: { cfg: ChartConfig; after?: string } | null = null;
  private readonly undoText = h('span', { 'data-testid': 'undo-text' });
  /** "Removed BTCUSDT 1m — Undo", for a few seconds after a removal; placed by the page. */
  readonly undoBar = h(
    'div',
    { class: 'undo-bar', 'data-testid': 'undo-bar', role: 'status', hidden: true },
    this.undoText,
    button('undo-remove', 'Undo', 'Put the removed chart back', () => this.undoRemove()),
  );
  private undoTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly grid: HTMLElement,
    private readonly conn: Connection,
    private readonly streams: StreamHub,
    private readonly catalog: CatalogStore,
    private readonly store: KeyValueStore,
    private readonly theme: ThemeState,
    private readonly symbols: SymbolDirectory,
    layout: Layout,
  ) {
    this.drawings = new SymbolDrawings(store);
    window.addEventListener('resize', () => this.queueLayout());
    for (const cfg of layout.charts) this.mount(cfg);
    setInterval(() => {
      const now = performance.now();
      for (const v of this.views.values()) v.refreshHealth(now);
    }, HEALTH_TICK_MS);
    this.updateEmptyState();
    // Trade markers, and signals in the `data` envelope, pushed by the server to
    // every chart of their symbol. Strategy signals of subscribe_signals (flat,
    // no `data`) are ignored here: each chart gets those from its own stream.
    for (const type of ['trade_marker', 'signal']) {
      conn.onMessage(type, (msg) => {
        const routed = markerFromMessage(msg);
        if (!routed) return;
        for (const v of this.views.values()) {
          const c = v.config;
          if (c.symbol === routed.symbol && (!routed.interval || routed.interval === c.interval)) {
            v.addMarkers([routed.marker]);
          }
        }
      });
    }
  }

  charts(): ChartView[] {
    return this.order.map((id) => this.views.get(id)!);
  }

  chart(id: string): ChartView | undefined {
    return this.views.get(id);
  }

  add(symbol: string, interval: Interval = '1m'): string | null {
    if (this.order.length >= MAX_CHARTS) return null;
    const id = nextChartId(this.configs());
    this.mount({ id, symbol, interval, sma: false, ema: false });
    this.persist();
    return id;
  }

  duplicate(id: string): string | null {
    const src = this.views.get(id);
    if (!src || this.order.length >= MAX_CHARTS) return null;
    const newId = nextChartId(this.configs());
    // Drawings are the symbol's: the copy shows (and edits) the same ones.
    const cfg = src.config;
    this.mount({ ...cfg, id: newId, indicators: cfg.indicators?.map((i) => ({ ...i, params: { ...i.params } })) }, id);
    this.persist();
    return newId;
  }

  remove(id: string): void {
    const v = this.views.get(id);
    if (!v) return;
    // Kept for "Undo" (drawings are the symbol's and stay anyway).
    const index = this.order.indexOf(id);
    this.removed = { cfg: v.config, after: index > 0 ? this.order[index - 1] : undefined };
    this.showUndo(`Removed ${v.config.symbol} ${v.config.interval}`);
    this.headerObserver?.unobserve(v.root.querySelector('.chart-head') ?? v.root);
    v.destroy();
    this.views.delete(id);
    this.order = this.order.filter((x) => x !== id);
    this.persist();
    this.healthChanged();
    this.updateEmptyState();
  }

  /**
   * Public hook for trade and strategy-signal markers (see docs/DASHBOARD.md).
   * Returns false when no chart has that id.
   */
  addMarkers(chartId: string, markers: Marker[]): boolean {
    const v = this.views.get(chartId);
    if (!v) return false;
    v.addMarkers(markers);
    return true;
  }


  /** Puts the last removed chart back where it was, with its settings and zoom; false if none. */
  undoRemove(): boolean {
    const r = this.removed;
    this.removed = null;
    this.hideUndo();
    if (!r || this.order.length >= MAX_CHARTS) return false;
    const id = this.views.has(r.cfg.id) ? nextChartId(this.configs()) : r.cfg.id;
    const before = r.after && this.views.has(r.after) ? r.after : undefined;
    if (before) this.mount({ ...r.cfg, id }, before);
    else this.mountFirst({ ...r.cfg, id });
    this.persist();
    return true;
  }

  private showUndo(text: string): void {
    this.undoText.textContent = text;
    this.undoBar.hidden = false;
    this.queueLayout();
    if (this.undoTimer) clearTimeout(this.undoTimer);
    this.undoTimer = setTimeout(() => this.hideUndo(), UNDO_MS);
  }

  private hideUndo(): void {
    if (this.undoTimer) clearTimeout(this.undoTimer);
    this.undoTimer = null;
    this.undoBar.hidden = true;
    this.queueLayout();
  }

  /** Called with the grid's health now and whenever a chart's changes. */
  onHealth(fn: (h: GridHealth) => void): () => void {
    this.healthListeners.add(fn);
    fn(this.health());
    return () => this.healthListeners.delete(fn);
  }

  health(): GridHealth {
    const charts = this.charts();
    const degraded = charts
      .filter((v) => v.health.degraded)
      .map((v) => `${v.config.symbol} ${v.config.interval}: ${v.health.label}`);
    return { total: charts.length, degraded };
  }

  /** Several charts change at once (a disconnect): one repaint of the dot. */
  private healthChanged(): void {
    if (this.healthQueued) return;
    this.healthQueued = true;
    queueMicrotask(() => {
      this.healthQueued = false;
      const h = this.health();
      for (const fn of this.healthListeners) fn(h);
    });
  }

  private configs(): ChartConfig[] {
    return this.charts().map((v) => v.config);
  }

  /** Mounts a chart at the front of the grid (an undone removal of the first chart). */
  private mountFirst(cfg: ChartConfig): void {
    const first = this.order[0];
    this.mount(cfg);
    if (first === undefined) return;
    this.order = [cfg.id, ...this.order.filter((x) => x !== cfg.id)];
    this.views.get(first)!.root.before(this.views.get(cfg.id)!.root);
  }

  private mount(cfg: ChartConfig, after?: string): void {
    const deps: ChartDeps = {
      conn: this.conn,
      streams: this.streams,
      catalog: this.catalog,
      store: this.store,
      drawings: this.drawings,
      theme: this.theme,
      resolveSymbol: (s) => this.symbols.resolve(s),
      marketState: (s) => this.symbols.marketState(s),
      onConfigChange: () => this.persist(),
      onRemove: (id) => this.remove(id),
      onDuplicate: (id) => this.duplicate(id),
      countUpdate: () => {
        this.updateCount++;
      },
      onHealthChange: () => this.healthChanged(),
    };
    // Drawings of older versions were kept per chart: they become the symbol's.
    this.drawings.migrateChart(cfg.id, cfg.symbol);
    const view = new ChartView(cfg, deps);
    // A header that wraps onto another line (a longer price) changes what the card adds: fit again.
    this.headerObserver?.observe(view.root.querySelector('.chart-head') ?? view.root);
    this.views.set(cfg.id, view);
    const afterIdx = after ? this.order.indexOf(after) : -1;
    if (afterIdx >= 0) {
      this.order.splice(afterIdx + 1, 0, cfg.id);
      this.views.get(after!)!.root.after(view.root);
    } else {
      this.order.push(cfg.id);
      this.grid.append(view.root);
    }
    this.updateEmptyState();
    this.healthChanged();
  }

  private persist(): void {
    saveLayout(this.store, { version: 1, charts: this.configs() });
    this.updateEmptyState();
  }

  private updateEmptyState(): void {
    this.grid.dataset.count = String(this.order.length);
    this.queueLayout();
  }

  /** Re-fits the grid to the window once per frame at most (resizes, charts added or removed). */
  queueLayout(): void {
    if (this.layoutQueued) return;
    this.layoutQueued = true;
    requestAnimationFrame(() => {
      this.layoutQueued = false;
      this.layoutGrid();
    });
  }

  /** Columns for the number of charts, and chart heights that fill the window's height under the toolbar. */
  private layoutGrid(): void {
    const n = this.order.length;
    const width = window.innerWidth;
    const cols = gridColumns(n, width);
    this.grid.style.setProperty('--cols', String(cols));
    if (n === 0 || !this.grid.isConnected || this.grid.offsetParent === null) return;
    // What a card adds around its chart (header, borders): the most any card does, as headers wrap on
    // narrow cards.
    let chrome = 0;
    for (const v of this.views.values()) {
      const host = v.root.querySelector<HTMLElement>('[data-testid="chart-host"]');
      if (host) chrome = Math.max(chrome, v.root.offsetHeight - host.offsetHeight);
    }
    const top = this.grid.getBoundingClientRect().top + window.scrollY;
    const gap = parseFloat(getComputedStyle(this.grid).rowGap) || 0;
    const bottom = parseFloat(getComputedStyle(this.grid.parentElement?.parentElement ?? this.grid).paddingBottom) || 0;
    const h = chartHeight(n, cols, width, window.innerHeight - top - bottom - 1, chrome, gap);
    if (h === null) this.grid.style.removeProperty('--cell-h');
    else this.grid.style.setProperty('--cell-h', `${h}px`);
  }
}
