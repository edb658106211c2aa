/**
 * Read-only debug hooks for the browser tests (`window.candlecast.debug`). Only test builds have them
 * (`npm run build:test`, Vite mode `browsertest`): main.ts installs them behind a compile-time check,
 * so the production bundle carries none of this code.
 */
import type { App } from './app';
import type { ChartView } from './chart/chartView';
import { chartFrames } from './chart/frameScheduler';
import { referencePrice } from './state/bars';

export function chartDebugInfo(view: ChartView) {
  const c = view.inspect();
  const ts = c.chart.timeScale();
  const range = ts.getVisibleRange();
  return {
    id: c.cfg.id,
    symbol: c.cfg.symbol,
    interval: c.cfg.interval,
    state: c.state,
    health: c.health.health,
    healthDetail: c.health.detail,
    subscription: c.subscription,
    received: c.received,
    barCount: c.bars.length,
    first: c.bars.first()?.timestamp ?? null,
    last: c.bars.last() ?? null,
    visibleRange: range ? { from: Number(range.from), to: Number(range.to) } : null,
    visibleLogicalRange: ts.getVisibleLogicalRange(),
    drawings: c.drawings.list(),
    markers: c.markers.length,
    signalMarkers: c.signalMarkers.length,
    /** Markers drawn on the chart now (trade markers, and signals unless hidden). */
    shownMarkers: c.markersApi?.markers().length ?? 0,
    signalsShown: c.cfg.signals !== false,
    /** Marker labels the last frame drew, in pane pixels, and the pane's width. */
    markerLabels: c.markerLabels?.lastDrawn ?? null,
    signals: c.signalMarkers.map((m) => ({ time: m.time, side: m.side, text: m.text })),
    overlays: { sma: c.overlays.sma.enabled, ema: c.overlays.ema.enabled },
    indicators: c.indicators.map((i) => i.debugInfo()),
    panes: c.chart.panes().length,
    lastResync: c.lastResync,
    dayAgo: c.dayAgo ?? null,
    changeReference: referencePrice(c.bars.bars, c.stepMs, c.dayAgo) ?? null,
  };
}

export function createDebugHooks(app: App) {
  const view = (id: string) => app.dashboard.chart(id);
  return {
    charts: () => app.dashboard.charts().map(chartDebugInfo),
    /** Timestamps of every loaded bar (browser tests check for holes). */
    timestamps: (chartId: string) => {
      const v = view(chartId);
      return v ? v.inspect().bars.bars.map((b) => b.timestamp) : null;
    },
    /** Pixel position of a (time ms, price) point inside the chart host, as the drawings place it. */
    toPixel: (chartId: string, time: number, price: number) => {
      const v = view(chartId);
      if (!v) return null;
      const c = v.inspect();
      const x = c.drawings.timeToX(time);
      const y = c.candles.priceToCoordinate(price);
      return x === null || y === null ? null : { x, y };
    },
    /** Pixel x of an exact bar open time (ms), straight from lightweight-charts; null if no such bar. */
    barX: (chartId: string, time: number) => {
      const v = view(chartId);
      return v ? v.inspect().chart.timeScale().timeToCoordinate((time / 1000) as never) : null;
    },
    /** Where each drawing is painted now (pixels inside the chart host). */
    drawingPixels: (chartId: string) => view(chartId)?.inspect().drawings.screen() ?? null,
    /**
     * Scrolls the view by whole bars (negative = towards older bars). lightweight-charts applies a new
     * range on its next frame, so this resolves after two frames: the caller then reads the moved view.
     */
    scrollBars: async (chartId: string, delta: number) => {
      const v = view(chartId);
      if (!v) return;
      const ts = v.inspect().chart.timeScale();
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
    backtest: () => app.backtest.debugInfo(),
    symbols: () => app.symbols.list(),
  };
}
