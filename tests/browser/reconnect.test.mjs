// The server goes away and comes back on the same port: the status dot
// turns red then green, the chart resubscribes, and the bars missed while
// disconnected are fetched so the live end has no hole.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, sleep, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

let server;
let browser;
let page;

before(async () => {
  server = await startServer();
  browser = await launch();
  ({ page } = await openPage(browser.context, server.url));
  // 1-second bars: a few seconds of outage leaves a visible hole if gap filling fails.
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1s'), chartCfg('c2', 'ETHUSDT', '1m')]);
  await waitChartLive(page, 'c1', 5000);
  await waitChartLive(page, 'c2', 5000);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const dot = () => page.getAttribute('[data-testid="connection-status"]', 'data-state');

function gaps(ts, step) {
  const out = [];
  for (let i = 1; i < ts.length; i++) if (ts[i] - ts[i - 1] !== step) out.push([ts[i - 1], ts[i]]);
  return out;
}

test('server restart: red, then green, then live again with no missing bars', async () => {
  assert.equal(await dot(), 'connected');
  const port = server.port;
  // Let a few live bars pass so the window below starts after this server's own start.
  await sleep(3000);
  const lastBefore = (await chartInfo(page, 'c1')).last.timestamp;

  await server.stop();
  await page.waitForSelector('[data-testid="connection-status"][data-state="disconnected"]', { timeout: 5000 });
  await screenshot(page, '14-disconnected');
  await sleep(4000); // several 1s bars happen while we are away

  server = await startServer({ port });
  const restartedAt = Date.now();
  await page.waitForSelector('[data-testid="connection-status"][data-state="connected"]', { timeout: 20_000 });
  // Both charts fill their gap and go live again.
  await waitChartLive(page, 'c1', 10_000);
  await waitChartLive(page, 'c2', 10_000);
  // Updates resume: a bar newer than the restart arrives.
  await page.waitForFunction(
    (t) => window.candlecast.debug.charts().find((c) => c.id === 'c1').last.timestamp > t,
    restartedAt,
    { timeout: 10_000 },
  );
  await sleep(2000); // a few more live bars after the restart
  const ts = await page.evaluate(() => window.candlecast.debug.timestamps('c1'));
  const live = ts.filter((t) => t >= lastBefore - 3000);
  assert.ok(live.length > 5, `bars around the outage (${live.length})`);
  // The page has every bar the server has for that stretch (the gap fill worked)...
  const serverTs = await fetch(`${server.url}/api/historical/BTCUSDT?interval=1s&limit=5000&start_time=${live[0]}`)
    .then((r) => r.json())
    .then((b) => b.data.map((x) => x.timestamp));
  const onPage = new Set(live);
  const missing = serverTs.filter((t) => t <= live[live.length - 1] && !onPage.has(t));
  assert.deepEqual(missing, [], 'bars the server has but the page lacks');
  // ...and together there is no hole at the live end. If this fails while the
  // check above passes, the hole is in the server's own history.
  assert.deepEqual(
    gaps(live, 1000),
    [],
    `consecutive 1s bars across the outage (server's own gaps: ${JSON.stringify(gaps(serverTs, 1000))})`,
  );
  const ts2 = await page.evaluate(() => window.candlecast.debug.timestamps('c2'));
  assert.deepEqual(gaps(ts2.slice(-30), 60_000), [], 'consecutive 1m bars');
  await screenshot(page, '15-reconnected');
});
