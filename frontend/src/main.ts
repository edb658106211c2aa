/**
 * Entry point: builds the page and exposes the small public hook
 * `window.candlecast` (markers, script activity). Test builds
 * (`npm run build:test`) add read-only debug helpers for the browser tests
 * (`window.candlecast.debug`, see debug.ts and docs/DASHBOARD.md).
 */
import './styles.css';
import { buildApp } from './app';
import type { TradingUpdate } from './panels/activityModel';
import type { Marker } from './state/markers';
import { safeStore } from './state/storage';
import { createDebugHooks } from './debug';
import { TEST_BUILD } from './testBuild';

const app = buildApp(document.getElementById('app')!, safeStore());

const hook: {
  addMarkers(chartId: string, markers: Marker[]): boolean;
  ingestTradingUpdate(update: TradingUpdate): void;
  debug?: ReturnType<typeof createDebugHooks>;
} = {
  /** Adds trade / signal markers to one chart; false if the chart id is unknown. */
  addMarkers: (chartId: string, markers: Marker[]) => app.dashboard.addMarkers(chartId, markers),
  /** Feeds one seed-003 trading update into the Script activity panel. */
  ingestTradingUpdate: (update: TradingUpdate) => app.activity.ingest(update),
};
// A compile-time constant: in a production build the branch, and with it debug.ts, is dropped.
if (TEST_BUILD) hook.debug = createDebugHooks(app);

declare global {
  interface Window {
    candlecast: typeof hook;
  }
}
window.candlecast = hook;
