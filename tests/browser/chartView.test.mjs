// Issue #17, item 9: removing a chart can be undone, the zoom and scroll position survive a reload, and
// a chart scrolled into the past offers "Live" to return to the newest bars.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer();
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m', { sma: true }), chartCfg('c2', 'ETHUSDT', '5m'), chartCfg('c3', 'XRPUSDT', '1h')]);
  for (const id of ['c1', 'c2', 'c3']) await waitChartLive(page, id, 8000);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const card = (id) => `[data-chart-id="${id}"]`;
const order = () => page.evaluate(() => window.candlecast.debug.charts().map((c) => `${c.id}:${c.symbol}:${c.interval}`));

test('a removed chart comes back with Undo, in its place and with its settings', async () => {
  const before = await order();
  await page.click(`${card('c2')} [data-testid="chart-remove"]`);
  assert.deepEqual(await order(), before.filter((x) => !x.startsWith('c2:')));
  const bar = page.locator('[data-testid="undo-bar"]');
  assert.ok(await bar.isVisible());
  assert.match(await bar.innerText(), /Removed ETHUSDT 5m/);
  await page.click('[data-testid="undo-remove"]');
  assert.deepEqual(await order(), before);
  assert.ok(await bar.isHidden());
  await waitChartLive(page, 'c2', 8000);
  // And the restored layout is what a reload shows.
  await page.reload();
  await waitChartLive(page, 'c2', 8000);
  assert.deepEqual(await order(), before);
  assert.equal((await chartInfo(page, 'c1')).overlays.sma, true);
});

test('scrolled back: "Live" shows and returns to the newest bars; zoom and position survive a reload', async () => {
  const live = page.locator(`${card('c1')} [data-testid="chart-back-to-live"]`);
  assert.ok(await live.isHidden(), 'at the live edge: no button');
  // Zoom in, then scroll 120 bars into the past.
  const host = await page.locator(`${card('c1')} [data-testid="chart-host"]`).boundingBox();
  await page.mouse.move(host.x + host.width / 2, host.y + host.height / 3);
  const span = (info) => info.visibleLogicalRange.to - info.visibleLogicalRange.from;
  const unzoomed = span(await chartInfo(page, 'c1'));
  for (let i = 0; i < 3; i++) await page.mouse.wheel(0, -200);
  // Wheel events and range changes reach the chart on its own frames: wait for each step to show.
  await page.waitForFunction(
    ({ unzoomed }) => {
      const c = window.candlecast.debug.charts().find((x) => x.id === 'c1');
      return c.visibleLogicalRange.to - c.visibleLogicalRange.from < unzoomed - 1;
    },
    { unzoomed },
    { timeout: 3000 },
  );
  await page.evaluate(() => window.candlecast.debug.scrollBars('c1', -120));
  await page.waitForFunction(() => {
    const c = window.candlecast.debug.charts().find((x) => x.id === 'c1');
    return c.visibleRange && c.visibleRange.to <= c.last.timestamp / 1000 - 100 * 60;
  }, null, { timeout: 3000 });
  await live.waitFor({ state: 'visible', timeout: 3000 });
  const before = await chartInfo(page, 'c1');
  const spanBefore = before.visibleRange.to - before.visibleRange.from;
  // The position is stored once scrolling stops: wait until the stored layout has this right edge.
  await page.waitForFunction(
    ({ to }) => {
      const layout = JSON.parse(localStorage.getItem('candlecast.layout.v1') ?? 'null');
      const view = layout?.charts?.find((c) => c.id === 'c1')?.view;
      return view?.rightTime !== undefined && Math.abs(view.rightTime / 1000 - to) <= 60;
    },
    { to: before.visibleRange.to },
    { timeout: 5000 },
  );
  await page.reload();
  await waitChartLive(page, 'c1', 8000);
  // The stored view is put back on the chart's next frames; give it those, then check it.
  await page
    .waitForFunction(({ to }) => Math.abs(window.candlecast.debug.charts().find((x) => x.id === 'c1').visibleRange.to - to) <= 60, { to: before.visibleRange.to }, { timeout: 3000 })
    .catch(() => {});
  const after = await chartInfo(page, 'c1');
  // Same right edge (to the bar) and the same zoom.
  assert.ok(Math.abs(after.visibleRange.to - before.visibleRange.to) <= 60, `right edge ${after.visibleRange.to} vs ${before.visibleRange.to}`);
  assert.ok(Math.abs(after.visibleRange.to - after.visibleRange.from - spanBefore) <= 2 * 60, 'same zoom');
  assert.ok(await live.isVisible(), 'still scrolled back after the reload');
  await screenshot(page, '45-restored-view');

  await live.click();
  await page.waitForFunction(() => {
    const c = window.candlecast.debug.charts().find((x) => x.id === 'c1');
    return c.visibleRange && c.visibleRange.to >= c.last.timestamp / 1000;
  }, null, { timeout: 3000 });
  await live.waitFor({ state: 'hidden', timeout: 3000 });
  assert.deepEqual(errors, []);
});
