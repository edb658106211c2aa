// Eight live charts at once: how busy is the main thread? Collects long
// tasks (PerformanceObserver 'longtask') for ~10 s and reports them. Nothing
// timing-based is asserted (machines are noisy); the figures go to
// artifacts/performance.json and into docs/BENCHMARKS.md by hand.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ARTIFACTS, chartCfg, launch, openPage, screenshot, setLayout, sleep, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

const MEASURE_MS = Number(process.env.PERF_MEASURE_MS ?? 10_000);
// PERF_TRACE=1 also records a DevTools trace of the window (artifacts/performance-trace.json) to see
// what a long task was made of; open it in chrome://tracing or DevTools' Performance panel.
const TRACE = process.env.PERF_TRACE === '1';
const TRACE_CATEGORIES = ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'v8.execute', 'blink', 'blink.user_timing', 'toplevel', 'disabled-by-default-v8.gc'];
const CHARTS = [
  chartCfg('c1', 'BTCUSDT', '1s'),
  chartCfg('c2', 'ETHUSDT', '1s'),
  chartCfg('c3', 'ADAUSDT', '1s'),
  chartCfg('c4', 'BNBUSDT', '1s'),
  chartCfg('c5', 'XRPUSDT', '1s'),
  chartCfg('c6', 'SOLUSDT', '1s'),
  chartCfg('c7', 'BTCUSDT', '1m', { sma: true, ema: true }),
  chartCfg('c8', 'ETHUSDT', '5m'),
];

let server;
let browser;
let page;

before(async () => {
  // Every topic at its full 10 updates/s: a trade batch every 20 ms on every symbol. (The helper's shorter
  // simulated history matters here: with the default 7 days the debug server wrote its backfill at a full core
  // through the whole measured window.)
  server = await startServer({ env: { CANDLECAST__FEED__SIMULATED__TRADES_PER_SECOND: '200', CANDLECAST__FEED__SIMULATED__TICK_MS: '20' } });
  browser = await launch({ viewport: { width: 1920, height: 1080 }, gpu: process.env.PERF_GPU === '1' });
  ({ page } = await openPage(browser.context));
  // Installed before any page script runs, so nothing is missed.
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  });
  await page.goto(server.url);
  await setLayout(page, CHARTS);
  for (const c of CHARTS) await waitChartLive(page, c.id, 10_000);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('eight live charts: long tasks over a measurement window', async () => {
  await sleep(1000); // let the first paint settle
  const cdp = TRACE ? await page.context().newCDPSession(page) : null;
  const traceEvents = [];
  if (cdp) {
    cdp.on('Tracing.dataCollected', (e) => traceEvents.push(...e.value));
    await cdp.send('Tracing.start', { traceConfig: { includedCategories: TRACE_CATEGORIES }, transferMode: 'ReportEvents' });
  }
  const start = await page.evaluate(() => {
    window.__longTasks = [];
    return { t: performance.now(), updates: window.candlecast.debug.updateCount(), flushes: window.candlecast.debug.flushCount() };
  });
  await sleep(MEASURE_MS);
  const res = await page.evaluate(
    (s) => {
      const elapsed = performance.now() - s.t;
      const tasks = window.__longTasks;
      return {
        elapsedMs: Math.round(elapsed),
        updates: window.candlecast.debug.updateCount() - s.updates,
        flushes: window.candlecast.debug.flushCount() - s.flushes,
        longTasks: tasks.length,
        maxLongTaskMs: tasks.reduce((m, x) => Math.max(m, x.duration), 0),
        totalLongTaskMs: Math.round(tasks.reduce((m, x) => m + x.duration, 0)),
      };
    },
    start,
  );
  if (cdp) {
    const done = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
    await cdp.send('Tracing.end');
    await done;
    writeFileSync(path.join(ARTIFACTS, 'performance-trace.json'), JSON.stringify({ traceEvents }));
  }
  res.updatesPerSecond = +(res.updates / (res.elapsedMs / 1000)).toFixed(1);
  res.updatesPerChartPerSecond = +(res.updatesPerSecond / CHARTS.length).toFixed(1);
  // Draws: how often a chart actually drew its newest bars (several updates between two draws are drawn once).
  res.drawsPerChartPerSecond = +(res.flushes / (res.elapsedMs / 1000) / CHARTS.length).toFixed(1);
  res.charts = CHARTS.length;
  res.rendering = process.env.PERF_GPU === '1' ? 'swiftshader' : 'disable-gpu';
  res.at = new Date().toISOString();
  writeFileSync(path.join(ARTIFACTS, 'performance.json'), JSON.stringify(res, null, 2));
  console.log(`performance: ${JSON.stringify(res)}`);
  await screenshot(page, '16-eight-charts');
  // Only sanity: data really flowed during the window.
  assert.ok(res.updates > 0, 'live updates arrived while measuring');
});
