// Issue #17, items 3, 4 and 8 (marker labels): script data in the dashboard.
//  - a script's executed trade appears as a marker on an open chart of its symbol at once, over the
//    page's /ws connection, with no reload; its label is drawn inside the pane, not under the price axis;
//  - the Script activity panel shows the kept trades after a reload;
//  - after a server restart on the same data directory, a script-created symbol charts again with its
//    bars and its trade markers, and the activity panel still lists its trades.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

const KEY = 'browser-script-key';
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'candlecast-scriptdata-'));
const env = { CANDLECAST__SCRIPTS__KEYS: KEY };
let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer({ env, dataDir });
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function push(trades_csv, market_data_csv = '') {
  const r = await fetch(`${server.url}/api/trading-data`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ trades_csv, market_data_csv }),
  });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

async function waitFor(check, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${check}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const iso = (ms) => new Date(ms).toISOString();
const TRADES_HEADER = 'timestamp,symbol,side,quantity,price,profit_loss,strategy\n';
const minute = 60_000;
// SCRIPTX's bars: six closed minutes, the newest two minutes ago (inside the chart's first view).
const base = Math.floor(Date.now() / minute) * minute - 8 * minute;
const scriptBars =
  'timestamp,symbol,open,high,low,close,volume\n' +
  Array.from({ length: 6 }, (_, i) => `${iso(base + i * minute)},SCRIPTX,${100 + i},${102 + i},${99 + i},${101 + i},10\n`).join('');

const markerCount = (id) => page.evaluate((id) => window.candlecast.debug.charts().find((c) => c.id === id)?.markers ?? 0, id);

test('a script trade appears live on the open chart of its symbol, its label inside the pane', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m')]);
  await waitChartLive(page, 'c1', 15_000);
  assert.equal(await markerCount('c1'), 0);
  const last = (await chartInfo(page, 'c1')).last.timestamp;
  // On the newest bar, with a long label: the one lightweight-charts centred under the price axis.
  await push(`${TRADES_HEADER}${iso(last + 1000)},BTCUSDT,SELL,1.25,${(await chartInfo(page, 'c1')).last.close},12.5,live marker\n`);
  await page.waitForFunction(() => window.candlecast.debug.charts().find((c) => c.id === 'c1')?.markers === 1, null, { timeout: 5000 });
  await page.waitForFunction(() => (window.candlecast.debug.charts().find((c) => c.id === 'c1')?.markerLabels?.labels.length ?? 0) > 0, null, { timeout: 5000 });
  const { markerLabels } = await chartInfo(page, 'c1');
  const label = markerLabels.labels.find((l) => l.text.startsWith('SELL 1.25'));
  assert.ok(label, JSON.stringify(markerLabels));
  assert.ok(label.left >= 0 && label.left + label.width <= markerLabels.paneWidth, `label inside the pane: ${JSON.stringify(markerLabels)}`);
  await screenshot(page, '60-live-trade-marker');
});

test('script data survives a restart: the symbol charts with its bars and markers, activity keeps its trades', async () => {
  const created = await push(`${TRADES_HEADER}${iso(base + 2 * minute)},SCRIPTX,BUY,3,102,,restart check\n`, scriptBars);
  assert.equal(created.market_data, 6, JSON.stringify(created));
  await page.reload();
  await page.click('[data-testid="nav-activity"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="activity-trades"] tbody tr[data-side]').length >= 2, null, { timeout: 10_000 });

  // The store has what the persister was given (the start's backfill goes first), then a clean stop
  // with time to flush: a restart, not a crash.
  await waitFor(async () => (await (await fetch(`${server.url}/api/stats`)).json()).stats.persistence.buffered_bars === 0);
  await page.goto('about:blank');
  await server.stop({ graceMs: 60_000 });
  server = await startServer({ env, dataDir });
  await page.goto(server.url);
  await setLayout(page, [chartCfg('c2', 'SCRIPTX', '1m')]);
  await waitChartLive(page, 'c2', 15_000).catch(async (e) => {
    throw new Error(`${e.message}: ${JSON.stringify(await chartInfo(page, 'c2'))}`);
  });
  const info = await chartInfo(page, 'c2');
  assert.ok(info.barCount >= 6, `the stored bars: ${info.barCount}`);
  await page.waitForFunction(() => window.candlecast.debug.charts().find((c) => c.id === 'c2')?.markers === 1, null, { timeout: 10_000 });
  await page.click('[data-testid="nav-activity"]');
  const rows = () => page.locator('[data-testid="activity-trades"] tbody tr[data-side]').allInnerTexts();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="activity-trades"] tbody tr[data-side]').length >= 2, null, { timeout: 10_000 });
  const texts = await rows();
  assert.ok(texts.some((t) => t.includes('SCRIPTX') && t.includes('restart check')), texts.join('\n'));
  assert.ok(texts.some((t) => t.includes('BTCUSDT') && t.includes('live marker')), texts.join('\n'));
  await screenshot(page, '61-activity-after-restart');
  assert.deepEqual(errors.filter((e) => !/Failed to load resource|WebSocket/.test(e)), []);
});
