/**
 * Entry point: builds the page and exposes the small public hook
 * `window.candlecast` (markers, script activity) plus read-only debug
 * helpers that the browser tests use. See docs/DASHBOARD.md.
 */
import './styles.css';
import { buildApp } from './app';
import type { TradingUpdate } from './panels/activityModel';
import type { Marker } from './state/markers';
import { safeStore } from './state/storage';
import { chartFrames } from './chart/frameScheduler';

const app = buildApp(document.getElementById('app')!, safeStore());

const hook = {
  /** Adds trade / signal markers to one chart; false if the chart id is unknown. */
  addMarkers: (chartId: string, markers: Marker[]) => app.dashboard.addMarkers(chartId, markers),
  /** Feeds one seed-003 trading update into the Script activity panel. */
  ingestTradingUpdate: (update: TradingUpdate) => app.activity.ingest(update),
  debug: {
    charts: () => app.dashboard.charts().map((c) => c.debugInfo()),
    timestamps: (chartId: string) => app.dashboard.chart(chartId)?.debugTimestamps() ?? null,
    toPixel: (chartId: string, time: number, price: number) => app.dashboard.chart(chartId)?.debugToPixel(time, price) ?? null,
    scrollBars: (chartId: string, delta: number) => app.dashboard.chart(chartId)?.debugScrollBars(delta),
    updateCount: () => app.dashboard.updateCount,
    /** Chart flushes (a chart drawing its pending bars) run by the page's frame scheduler. */
    flushCount: () => chartFrames.flushes,
    connectionState: () => app.conn.currentState,
    topics: () => app.conn.activeTopics(),
    /** Open indicator / signal streams (`signals|SYMBOL|interval`, `indicator|…`). */
    streams: () => app.streams.activeStreams(),
    backtest: () => app.backtest.debugInfo(),
  },
};

declare global {
  interface Window {
    candlecast: typeof hook;
  }
}
window.candlecast = hook;
