// permessage-deflate (issue 16) with a real browser: Chromium offers the extension on every WebSocket by
// itself; with `[ws] permessage_deflate` on, the server accepts it and the dashboard's charts must still load
// their history and move with live updates (every frame it gets is then compressed and inflated by Chromium).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, setLayout, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer({ env: { CANDLECAST__WS__PERMESSAGE_DEFLATE: 'true' } });
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const stats = async () => (await (await fetch(`${server.url}/api/stats`)).json()).stats;

test('with permessage-deflate on, Chromium negotiates it and the charts load and update', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m'), chartCfg('c2', 'ETHUSDT', '1s')]);
  await waitChartLive(page, 'c1', 10_000);
  await waitChartLive(page, 'c2', 10_000);
  assert.ok((await chartInfo(page, 'c1')).barCount > 10, 'the history reply (compressed) was read');
  const s = await stats();
  assert.ok(s.ws_deflate_connections >= 1, `Chromium's connection negotiated deflate: ${JSON.stringify(s)}`);

  const before = (await chartInfo(page, 'c2')).last;
  await page.waitForFunction(
    (b) => {
      const last = window.candlecast.debug.charts().find((c) => c.id === 'c2').last;
      return last.timestamp !== b.timestamp || last.close !== b.close || last.volume !== b.volume;
    },
    before,
    { timeout: 10_000 },
  );
  await page.waitForSelector('[data-testid="connection-status"][data-state="connected"]');
  assert.deepEqual(errors, []);
});
