// Issue #15: the add bar searches the server's symbol master as you type. The server runs a Kite feed
// whose instruments master is a saved copy in Kite's CSV format (`file:`); Kite's ticker is a closed port
// here (no internet), so the feed's symbol exists without ticks. Typing `rel` lists the master's matches
// with their exchange; picking the live one opens its chart, which subscribes `NSE:RELIANCE` on /ws; picking
// one without a feed says so instead of opening a dead chart.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launch, openPage, screenshot, setLayout } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

const MASTER = `instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE
738561,2885,RELIANCE,RELIANCE INDUSTRIES,0,,0,0.05,1,EQ,NSE,NSE
128083204,500325,RELIANCE,RELIANCE INDUSTRIES,0,,0,0.05,1,EQ,BSE,BSE
3649281,14255,RELAXO,RELAXO FOOTWEARS,0,,0,0.05,1,EQ,NSE,NSE
13368834,52222,NIFTY25DECFUT,NIFTY,0,2025-12-30,0,0.1,75,FUT,NFO-FUT,NFO
`;

let server;
let browser;
let page;
let errors;
let dir;

/** A port nothing listens on. */
const closedPort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'candlecast-master-'));
  const master = path.join(dir, 'instruments.csv');
  writeFileSync(master, MASTER);
  const port = await closedPort();
  server = await startServer({
    env: {
      CANDLECAST__FEED__SOURCE: 'kite',
      CANDLECAST__FEED__SYMBOLS: '["NSE:RELIANCE"]',
      CANDLECAST__FEED__KITE__API_KEY: 'kitetestkey',
      CANDLECAST__FEED__KITE__ACCESS_TOKEN: 'tok-browser-test',
      CANDLECAST__FEED__KITE__WS_URL: `ws://127.0.0.1:${port}`,
      CANDLECAST__FEED__KITE__API_URL: `http://127.0.0.1:${port}`,
      CANDLECAST__FEED__KITE__INSTRUMENTS_URL: `file:${master}`,
      CANDLECAST__FEED__KITE__BACKFILL_DAYS: '0',
      CANDLECAST__FEED__KITE__BACKFILL_DAILY_DAYS: '0',
    },
  });
  // The master is in once the search finds what only the master lists.
  for (let i = 0; i < 300; i++) {
    const r = await fetch(`${server.url}/api/symbols?q=RELAXO`).then((x) => x.json());
    if (r.total === 1) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
  await setLayout(page, []);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const hits = () =>
  page.$$eval('[data-testid="symbol-hit"]', (lis) =>
    lis.map((li) => ({ symbol: li.dataset.symbol, exchange: li.querySelector('[data-testid="hit-exchange"]').textContent, live: li.dataset.live })),
  );

test('typing lists the master with exchanges; picking the live one opens its chart', async () => {
  const requests = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/symbols?q=')) requests.push(new URL(r.url()).searchParams.get('q'));
  });
  await page.fill('[data-testid="add-symbol"]', '');
  await page.type('[data-testid="add-symbol"]', 'rel', { delay: 30 });
  await page.locator('[data-testid="symbol-results"]').waitFor({ state: 'visible', timeout: 5000 });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="symbol-hit"]').length === 3, null, { timeout: 5000 });
  assert.deepEqual(await hits(), [
    { symbol: 'NSE:RELAXO', exchange: 'NSE', live: 'false' },
    { symbol: 'BSE:RELIANCE', exchange: 'BSE', live: 'false' },
    { symbol: 'NSE:RELIANCE', exchange: 'NSE', live: 'true' },
  ]);
  assert.deepEqual(requests, ['rel'], 'one request for three keys (debounced)');
  await screenshot(page, '60-symbol-master-search');

  await page.click('[data-testid="symbol-hit"][data-symbol="NSE:RELIANCE"]');
  await page.waitForFunction(() => window.candlecast.debug.charts().some((c) => c.symbol === 'NSE:RELIANCE'), null, { timeout: 5000 });
  assert.ok(await page.locator('[data-testid="symbol-results"]').isHidden());
  // The chart's /ws subscription reached the server.
  let subscribers = {};
  for (let i = 0; i < 100 && !subscribers['NSE:RELIANCE']; i++) {
    subscribers = (await fetch(`${server.url}/api/stats`).then((r) => r.json())).stats.trading_pair_subscribers ?? {};
    if (!subscribers['NSE:RELIANCE']) await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(subscribers['NSE:RELIANCE'] >= 1, JSON.stringify(subscribers));
});

test('an instrument without a feed is named, not opened; arrow keys and Enter pick', async () => {
  const before = await page.evaluate(() => window.candlecast.debug.charts().length);
  await page.fill('[data-testid="add-symbol"]', '');
  await page.type('[data-testid="add-symbol"]', 'bse:reli', { delay: 30 });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="symbol-hit"]').length === 1, null, { timeout: 5000 });
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  const err = page.locator('[data-testid="add-error"]');
  await err.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await err.innerText(), /BSE:RELIANCE is in kite's master but has no feed/);
  assert.equal(await page.evaluate(() => window.candlecast.debug.charts().length), before, 'no chart added');
  assert.deepEqual(errors, []);
});
