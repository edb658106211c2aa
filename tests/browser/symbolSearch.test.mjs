// Issue #17, item 6: symbol search. `xrp` finds XRPUSDT (case-insensitive, base asset, unique prefix),
// an unknown symbol is said to be unknown in the add bar and in a chart's picker, and a symbol a script
// creates shows up in the pickers without a reload.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

const KEY = 'browser-test-key';
let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer({ env: { CANDLECAST__SCRIPTS__KEYS: KEY } });
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m')]);
  await waitChartLive(page, 'c1', 8000);
  // The list is in once the pickers offer more than the presets.
  await page.waitForFunction(() => document.querySelectorAll('#symbol-list option').length >= 6);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const chartSymbols = () => page.evaluate(() => window.candlecast.debug.charts().map((c) => c.symbol));

test('the add bar takes `xrp` for XRPUSDT and says so when a symbol is unknown', async () => {
  await page.fill('[data-testid="add-symbol"]', 'xrp');
  await page.click('[data-testid="add-chart"]');
  await page.waitForFunction(() => window.candlecast.debug.charts().some((c) => c.symbol === 'XRPUSDT'), null, { timeout: 5000 });
  assert.ok(await page.locator('[data-testid="add-error"]').isHidden());

  const before = await chartSymbols();
  await page.fill('[data-testid="add-symbol"]', 'zzz');
  await page.press('[data-testid="add-symbol"]', 'Enter');
  const err = page.locator('[data-testid="add-error"]');
  await err.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await err.innerText(), /Unknown symbol ZZZ/);
  assert.deepEqual(await chartSymbols(), before, 'no chart added');
  await screenshot(page, '44-unknown-symbol');
});

test("a chart's picker takes a base asset in lower case", async () => {
  await page.fill('[data-chart-id="c1"] [data-testid="symbol-input"]', 'eth');
  await page.press('[data-chart-id="c1"] [data-testid="symbol-input"]', 'Enter');
  await page.waitForFunction(() => window.candlecast.debug.charts().find((c) => c.id === 'c1').symbol === 'ETHUSDT', null, { timeout: 5000 });
  assert.equal(await page.inputValue('[data-chart-id="c1"] [data-testid="symbol-input"]'), 'ETHUSDT');
  await waitChartLive(page, 'c1', 8000);
  assert.equal((await chartInfo(page, 'c1')).symbol, 'ETHUSDT');

  await page.fill('[data-chart-id="c1"] [data-testid="symbol-input"]', 'nosuchcoin');
  await page.press('[data-chart-id="c1"] [data-testid="symbol-input"]', 'Enter');
  const err = page.locator('[data-chart-id="c1"] [data-testid="chart-error"]');
  await err.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await err.innerText(), /Unknown symbol NOSUCHCOIN/);
  assert.equal(await page.inputValue('[data-chart-id="c1"] [data-testid="symbol-input"]'), 'ETHUSDT');
});

test('a symbol created by a script appears in the pickers without a reload', async () => {
  const ts = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 60_000).toISOString().replace(/\.\d+Z$/, '');
  const res = await fetch(`${server.url}/api/trading-data`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ market_data_csv: `timestamp,symbol,open,high,low,close,volume\n${ts},NEWCOIN,10,11,9,10.5,100\n` }),
  });
  assert.equal(res.status, 200, await res.text());
  await page.waitForFunction(() => [...document.querySelectorAll('#symbol-list option')].some((o) => o.value === 'NEWCOIN'), null, { timeout: 8000 });
  await page.fill('[data-testid="add-symbol"]', 'newc');
  await page.click('[data-testid="add-chart"]');
  await page.waitForFunction(() => window.candlecast.debug.charts().some((c) => c.symbol === 'NEWCOIN'), null, { timeout: 5000 });
  assert.deepEqual(errors.filter((e) => !/404|Failed to load resource/.test(e)), []);
});
