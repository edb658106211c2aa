// Issue #17, items 1 and 7: a chart that does not get live data says so, on the chart and in the
// connection dot. One symbol the server does not know (a script-created one after a restart) must not
// freeze the other charts of its interval, which the page used to subscribe in one all-or-nothing
// message; a chart whose updates stop turns "Stale"; a failed chart keeps its error in view.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, sleep, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer();
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
});

after(async () => {
  if (server?.pid) {
    try {
      process.kill(server.pid, 'SIGCONT');
    } catch {
      /* already gone */
    }
  }
  await browser?.close();
  await server?.stop();
});

const card = (id) => `[data-chart-id="${id}"]`;
const dot = '[data-testid="connection-status"]';

test('an unknown symbol in the layout: the other chart of its interval stays live, the bad one says why', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m'), chartCfg('c2', 'GONEUSDT', '1m')]);
  await waitChartLive(page, 'c1', 8000);
  // Live updates reach BTCUSDT although GONEUSDT was asked for alongside it.
  const before = await page.evaluate(() => window.candlecast.debug.updateCount());
  await page.waitForFunction((n) => window.candlecast.debug.updateCount() > n + 3, before, { timeout: 8000 });
  assert.ok((await chartInfo(page, 'c1')).received > 0, 'BTCUSDT receives its own updates');
  assert.equal(await page.getAttribute(`${card('c1')} [data-testid="chart-health"]`, 'data-health'), 'live');

  // The unknown one is visibly not live, with the server's reason, and the dot is amber.
  await page.waitForSelector(`${card('c2')} [data-testid="chart-health"][data-health="error"]`, { timeout: 8000 });
  const banner = page.locator(`${card('c2')} [data-testid="chart-banner"]`);
  assert.ok(await banner.isVisible());
  assert.match(await banner.innerText(), /GONEUSDT/i);
  await page.waitForSelector(`${dot}[data-health="degraded"]`, { timeout: 3000 });
  assert.equal(await page.getAttribute(dot, 'data-state'), 'connected');
  assert.match(await page.innerText(`${dot} .status-text`), /1 chart not live/);
  assert.match(await page.getAttribute(dot, 'title'), /GONEUSDT 1m/);
  await screenshot(page, '40-unknown-symbol');

  // Item 7: the error stays in view (it used to vanish after 5 s, leaving a blank chart).
  await sleep(6000);
  assert.ok(await banner.isVisible(), 'error still shown');

  // Removing the bad chart turns the dot green again.
  await page.click(`${card('c2')} [data-testid="chart-remove"]`);
  await page.waitForSelector(`${dot}[data-health="ok"]`, { timeout: 3000 });
  assert.equal(await page.innerText(`${dot} .status-text`), 'Live');
});

test('a chart whose updates stop turns stale (and the dot amber), then live again', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1s'), chartCfg('c2', 'ETHUSDT', '1m')]);
  await waitChartLive(page, 'c1', 8000);
  await page.waitForSelector(`${card('c1')} [data-testid="chart-health"][data-health="live"]`, { timeout: 5000 });
  // The server freezes: the socket stays open (no close, no ping failure for 40 s) but nothing arrives.
  process.kill(server.pid, 'SIGSTOP');
  try {
    // A 1s chart expects an update every second: stale after 1 s + 5 s of slack.
    await page.waitForSelector(`${card('c1')} [data-testid="chart-health"][data-health="stale"]`, { timeout: 12_000 });
    assert.match(await page.innerText(`${card('c1')} [data-testid="chart-banner"]`), /No update for \d+ s/);
    await page.waitForSelector(`${dot}[data-health="degraded"]`, { timeout: 3000 });
    // The 1m chart is not stale yet: a minute has not passed.
    assert.equal(await page.getAttribute(`${card('c2')} [data-testid="chart-health"]`, 'data-health'), 'live');
    await screenshot(page, '41-stale');
  } finally {
    process.kill(server.pid, 'SIGCONT');
  }
  await page.waitForSelector(`${card('c1')} [data-testid="chart-health"][data-health="live"]`, { timeout: 15_000 });
  await page.waitForSelector(`${dot}[data-health="ok"]`, { timeout: 3000 });
  assert.ok(await page.locator(`${card('c1')} [data-testid="chart-banner"]`).isHidden());
});

test('every chart says Offline while the server is away', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m'), chartCfg('c2', 'ETHUSDT', '5m')]);
  await waitChartLive(page, 'c1', 8000);
  await waitChartLive(page, 'c2', 8000);
  const port = server.port;
  await server.stop();
  for (const id of ['c1', 'c2']) {
    await page.waitForSelector(`${card(id)} [data-testid="chart-health"][data-health="offline"]`, { timeout: 5000 });
    assert.match(await page.innerText(`${card(id)} [data-testid="chart-banner"]`), /Disconnected/);
  }
  await screenshot(page, '42-offline');
  server = await startServer({ port });
  for (const id of ['c1', 'c2']) {
    await page.waitForSelector(`${card(id)} [data-testid="chart-health"][data-health="live"]`, { timeout: 20_000 });
  }
  assert.deepEqual(errors.filter((e) => !/WebSocket|ERR_CONNECTION|Failed to load resource|GONEUSDT|unknown/i.test(e)), []);
});
