// Issue #17, item 8: the legend shows each overlay's and indicator's value (at the last bar, and at the
// bar under the cursor); strategy signal markers (the always-on ema_cross labels) can be hidden per
// chart, stay hidden after a reload, and come back on demand; other charts keep theirs.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer({
    env: { CANDLECAST__STRATEGIES__LIVE: '[{strategy="ema_cross",symbol="BTCUSDT",interval="1s",params={fast=2,slow=3}}]' },
  });
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the legend shows the values of the SMA and of a server indicator, at the last bar and under the cursor', async () => {
  await setLayout(page, [chartCfg('c3', 'ETHUSDT', '1m', { sma: true, indicators: [{ id: 'i1', name: 'ema', params: { period: 20 } }] })]);
  const studies = () => page.locator('[data-chart-id="c3"] [data-testid="legend-study"]').allInnerTexts();
  await page.waitForFunction(() => document.querySelectorAll('[data-chart-id="c3"] [data-testid="legend-study"]').length === 2, null, { timeout: 15_000 });
  const [sma, ema] = await studies();
  assert.match(sma, /^SMA 20 [\d,]+\.\d+$/);
  assert.match(ema, /^EMA.*20.* [\d,]+\.\d+$/);
  // Under the cursor, far left of the last bar: the values of that bar.
  const box = await page.locator('[data-chart-id="c3"] [data-testid="chart-host"]').boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
  await page.waitForFunction((before) => document.querySelector('[data-chart-id="c3"] [data-testid="legend-study"]')?.textContent !== before, sma, { timeout: 3000 });
  const [smaHovered] = await studies();
  assert.match(smaHovered, /^SMA 20 [\d,]+\.\d+$/);
  await screenshot(page, '49-legend-values');
  await page.mouse.move(0, 0);
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1s'), chartCfg('c2', 'BTCUSDT', '1s')]);
});

const shown = (id) => page.evaluate((id) => window.candlecast.debug.charts().find((c) => c.id === id).shownMarkers, id);
const toggle = '[data-chart-id="c1"] [data-testid="toggle-signals"]';

test('signal markers can be hidden on one chart, stay hidden after a reload, and come back', async () => {
  for (const id of ['c1', 'c2']) {
    await page.waitForFunction((id) => window.candlecast.debug.charts().find((c) => c.id === id)?.shownMarkers > 0, id, { timeout: 15_000 });
  }
  assert.equal(await page.getAttribute(toggle, 'aria-pressed'), 'true');
  await page.click(toggle);
  assert.equal(await page.getAttribute(toggle, 'aria-pressed'), 'false');
  assert.equal(await shown('c1'), 0, 'no signal marker drawn on c1');
  assert.ok(await shown('c2') > 0, 'c2 keeps its markers');
  await screenshot(page, '48-signals-hidden');

  await page.reload();
  await page.waitForFunction(() => window.candlecast.debug.charts().find((c) => c.id === 'c2')?.shownMarkers > 0, null, { timeout: 15_000 });
  const c1 = await chartInfo(page, 'c1');
  assert.equal(c1.signalsShown, false);
  assert.ok(c1.signalMarkers > 0, 'signals still received');
  assert.equal(c1.shownMarkers, 0, 'still hidden after the reload');

  await page.click(toggle);
  assert.ok(await shown('c1') > 0, 'shown again');
  assert.deepEqual(errors, []);
});
