/**
 * Read-only debug hooks for the browser tests (`window.candlecast.debug`). Only test builds have them
 * (`npm run build:test`, Vite mode `browsertest`): main.ts installs them behind a compile-time check,
 * and the charts and panels expose their parts to them the same way (testBuild.ts), so the production
 * bundle carries none of this code (productionBundle.test.ts checks it).
 */
import type { App } from './app';
import type { DrawingParts } from './chart/chartDrawings';
import type { MarkerParts } from './chart/chartMarkers';
import type { ChartParts, ChartView } from './chart/chartView';
import { chartFrames } from './chart/frameScheduler';
import type { IndicatorParts } from './chart/serverIndicators';
import { referencePrice } from './state/bars';
import { exposedParts } from './testBuild';

/** A part the test build exposes; a missing one means the build is not a test build. */
function partsOf<P>(owner: object): P {
  const parts = exposedParts<P>(owner);
  if (parts === undefined) throw new Error('debug hooks need the browser-test build (npm run build:test)');
  return parts;
}

function inspect(view: ChartView): ChartParts {
  return partsOf<ChartParts>(view);
}

export function chartDebugInfo(view: ChartView) {
  const c = inspect(view);
  const bars = c.feed.bars;
  const markers = partsOf<MarkerParts>(c.markers);
  const ts = c.chart.timeScale();
  const range = ts.getVisibleRange();
  return {
    id: c.cfg.id,
    symbol: c.cfg.symbol,
    interval: c.cfg.interval,
    state: c.feed.state,
    health: c.health.health,
    healthDetail: c.health.detail,
    subscription: c.feed.subscription,
    received: c.feed.received,
    barCount: bars.length,
    first: bars.first()?.timestamp ?? null,
    last: bars.last() ?? null,
    visibleRange: range ? { from: Number(range.from), to: Number(range.to) } : null,
    visibleLogicalRange: ts.getVisibleLogicalRange(),
    drawings: c.drawings.list(),
    markers: markers.trades.length,
    signalMarkers: markers.signals.length,
    /** Markers drawn on the chart now (trade markers, and signals unless hidden). */
    shownMarkers: markers.shown,
    signalsShown: c.cfg.signals !== false,
    /** Marker labels the last frame drew, in pane pixels, and the pane's width. */
    markerLabels: markers.labels,
    signals: markers.signals.map((m) => ({ time: m.time, side: m.side, text: m.text })),
    overlays: { sma: c.series.overlays.sma.enabled, ema: c.series.overlays.ema.enabled },
    indicators: c.indicators.all.map((i) => partsOf<IndicatorParts>(i)),
    panes: c.chart.panes().length,
    lastResync: c.feed.lastResync,
    dayAgo: c.feed.dayAgo ?? null,
    changeReference: referencePrice(bars.bars, c.stepMs, c.feed.dayAgo) ?? null,
  };
}

export function createDebugHooks(app: App) {
  const view = (id: string) => app.dashboard.chart(id);
  return {
    charts: () => app.dashboard.charts().map(chartDebugInfo),
    /** Timestamps of every loaded bar (browser tests check for holes). */
    timestamps: (chartId: string) => {
      const v = view(chartId);
      return v ? inspect(v).feed.bars.bars.map((b) => b.timestamp) : null;
    },
    /** Pixel position of a (time ms, price) point inside the chart host, as the drawings place it. */
    toPixel: (chartId: string, time: number, price: number) => {
      const v = view(chartId);
      if (!v) return null;
      const c = inspect(v);
      const x = c.drawings.timeToX(time);
      const y = c.series.candles.priceToCoordinate(price);
      return x === null || y === null ? null : { x, y };
    },
    /** Pixel x of an exact bar open time (ms), straight from lightweight-charts; null if no such bar. */
    barX: (chartId: string, time: number) => {
      const v = view(chartId);
      return v ? inspect(v).chart.timeScale().timeToCoordinate((time / 1000) as never) : null;
    },
    /** Where each drawing is painted now (pixels inside the chart host). */
    drawingPixels: (chartId: string) => {
      const v = view(chartId);
      return v ? partsOf<DrawingParts>(inspect(v).drawings).screen : null;
    },
    /**
     * Scrolls the view by whole bars (negative = towards older bars). lightweight-charts applies a new
     * range on its next frame, so this resolves after two frames: the caller then reads the moved view.
     */
    scrollBars: async (chartId: string, delta: number) => {
      const v = view(chartId);
      if (!v) return;
      const ts = inspect(v).chart.timeScale();
      const r = ts.getVisibleLogicalRange();
      if (r) ts.setVisibleLogicalRange({ from: r.from + delta, to: r.to + delta });
      for (let i = 0; i < 2; i++) await new Promise((done) => requestAnimationFrame(() => done(null)));
    },
    updateCount: () => app.dashboard.updateCount,
    /** Chart flushes (a chart drawing its pending bars) run by the page's frame scheduler. */
    flushCount: () => chartFrames.flushes,
    connectionState: () => app.conn.currentState,
    topics: () => app.conn.activeTopics(),
    /** Open indicator / signal streams (`signals|SYMBOL|interval`, `indicator|…`). */
    streams: () => app.streams.activeStreams(),
    backtest: () => partsOf<unknown>(app.backtest),
    symbols: () => app.symbols.list(),
  };
}
