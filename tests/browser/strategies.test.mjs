// Strategy features against the real server: live signal markers on a chart,
// server indicator overlays (menu, panes, persistence), the Backtest form and
// its results, the server's 400 detail, and the optimizer with its cancel.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, sleep, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer({
    env: {
      // A fast crossover on 1s bars signals every few seconds (TOML inline tables in the env value).
      CANDLECAST__STRATEGIES__LIVE: '[{strategy="ema_cross",symbol="BTCUSDT",interval="1s",params={fast=2,slow=3}}]',
      // The cancelled optimization below is a large grid (80,400 points), beyond the anonymous budget.
      CANDLECAST__JOBS__MAX_COMBINATIONS_ANONYMOUS: '100000',
    },
  });
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const debug = (fn, arg) => page.evaluate(fn, arg);
/** Console errors other than the 400s this file provokes on purpose. */
const unexpectedErrors = () => errors.filter((e) => !/status of 400/.test(e));

test('strategy signals appear as markers on a BTCUSDT 1s chart, live, and follow the interval', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1s')], { theme: 'dark' });
  await waitChartLive(page, 'c1', 5000);
  assert.ok((await debug(() => window.candlecast.debug.streams())).includes('signals|BTCUSDT|1s'));
  // The history of signals the strategy produced over the seeded bars, then live ones.
  await page.waitForFunction(() => window.candlecast.debug.charts()[0].signalMarkers > 0, null, { timeout: 15_000 });
  const first = await chartInfo(page, 'c1');
  for (const s of first.signals) {
    assert.ok(s.side === 'buy' || s.side === 'sell', `side ${s.side}`);
    assert.equal(s.text, 'ema_cross');
  }
  const newest = first.signals[first.signals.length - 1].time;
  await page.waitForFunction(
    (t) => window.candlecast.debug.charts()[0].signals.some((s) => s.time > t),
    newest,
    { timeout: 20_000 },
  );
  await screenshot(page, 'strategies-01-signals-dark');

  // Another interval: the 1s stream is dropped, the 5s one (no strategy there) opened.
  await page.selectOption('[data-chart-id="c1"] [data-testid="interval-select"]', '5s');
  await waitChartLive(page, 'c1', 5000);
  await page.waitForFunction(() => window.candlecast.debug.streams().includes('signals|BTCUSDT|5s'));
  const streams = await debug(() => window.candlecast.debug.streams());
  assert.ok(!streams.includes('signals|BTCUSDT|1s'), `still subscribed: ${streams}`);
  assert.equal((await chartInfo(page, 'c1')).signalMarkers, 0);
  await page.selectOption('[data-chart-id="c1"] [data-testid="interval-select"]', '1s');
  await page.waitForFunction(() => window.candlecast.debug.charts()[0].signalMarkers > 0, null, { timeout: 10_000 });
  assert.deepEqual(unexpectedErrors(), []);
});

test('indicator overlays from the server: menu, validation, panes, live values, reload', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m')], { theme: 'light' });
  await waitChartLive(page, 'c1', 5000);
  const card = page.locator('[data-chart-id="c1"]');
  await card.locator('[data-testid="indicator-menu"]').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="indicator-select"] option').length >= 8);

  // Out of the catalogue's range: refused in the page, nothing subscribed.
  await card.locator('[data-testid="indicator-select"]').selectOption('ema');
  await card.locator('[data-testid="indicator-param-period"]').fill('0');
  await card.locator('[data-testid="indicator-add"]').click();
  assert.match(await card.locator('[data-testid="indicator-param-period-error"]').innerText(), /within \[1, 5000\]/);
  assert.equal((await chartInfo(page, 'c1')).indicators.length, 0);

  await card.locator('[data-testid="indicator-param-period"]').fill('10');
  await card.locator('[data-testid="indicator-add"]').click();
  await page.waitForFunction(() => window.candlecast.debug.charts()[0].indicators[0]?.points > 10, null, { timeout: 10_000 });
  let info = await chartInfo(page, 'c1');
  assert.deepEqual(info.indicators[0].series, ['value']);
  assert.equal(info.indicators[0].pane, 0, 'EMA is drawn on the price pane');
  assert.match(await card.locator('[data-testid="indicator-chip"]').first().innerText(), /EMA 10/);

  // RSI and MACD get panes of their own; MACD is two lines and a histogram.
  for (const name of ['rsi', 'macd']) {
    await card.locator('[data-testid="indicator-menu"]').click();
    await card.locator('[data-testid="indicator-select"]').selectOption(name);
    await card.locator('[data-testid="indicator-add"]').click();
  }
  await page.waitForFunction(() => window.candlecast.debug.charts()[0].indicators.filter((i) => i.points > 0).length === 3, null, { timeout: 10_000 });
  info = await chartInfo(page, 'c1');
  const [ema, rsi, macd] = info.indicators;
  assert.equal(info.panes, 4, 'price, volume, RSI, MACD');
  assert.ok(rsi.pane >= 2 && macd.pane >= 2 && rsi.pane !== macd.pane);
  assert.deepEqual([...macd.series].sort(), ['histogram', 'macd', 'signal']);

  // Live: previews move the last value of the forming bar.
  const last = ema.last;
  await page.waitForFunction(
    (l) => {
      const p = window.candlecast.debug.charts()[0].indicators[0].last;
      return p.timestamp !== l.timestamp || p.value !== l.value;
    },
    last,
    { timeout: 10_000 },
  );
  await screenshot(page, 'strategies-02-indicators-light');

  // Persisted per chart and restored after a reload.
  const stored = await debug(() => JSON.parse(localStorage.getItem('candlecast.layout.v1')).charts[0].indicators);
  assert.deepEqual(stored.map((i) => [i.name, i.params]), [['ema', { period: 10 }], ['rsi', { period: 14 }], ['macd', { fast: 12, slow: 26, signal: 9 }]]);
  await page.reload();
  await waitChartLive(page, 'c1', 5000);
  await page.waitForFunction(() => window.candlecast.debug.charts()[0].indicators.filter((i) => i.points > 10).length === 3, null, { timeout: 10_000 });
  assert.equal((await chartInfo(page, 'c1')).panes, 4);

  // Removing one drops its pane and its stream.
  await page.locator('[data-chart-id="c1"] [data-testid="indicator-chip"]').nth(1).locator('[data-testid="indicator-remove"]').click();
  info = await chartInfo(page, 'c1');
  assert.deepEqual(info.indicators.map((i) => i.name), ['ema', 'macd']);
  assert.equal(info.panes, 3);
  const streams = await debug(() => window.candlecast.debug.streams());
  assert.ok(!streams.some((s) => s.includes('|rsi|')), `rsi still subscribed: ${streams}`);

  await page.click('[data-testid="theme-toggle"]');
  await sleep(300);
  await screenshot(page, 'strategies-03-indicators-dark');
  assert.deepEqual(unexpectedErrors(), []);
});

async function openBacktest() {
  await page.click('[data-testid="nav-backtest"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="bt-strategy"] option').length >= 2);
}

test('a backtest runs from the form and shows metrics, an equity curve and trades', async () => {
  await openBacktest();
  await page.selectOption('[data-testid="bt-strategy"]', 'ema_cross');
  await page.fill('[data-testid="bt-param-fast"]', '9');
  await page.fill('[data-testid="bt-param-slow"]', '21');
  await page.fill('[data-testid="bt-symbol"]', 'BTCUSDT');
  await page.selectOption('[data-testid="bt-interval"]', '1m');
  await page.fill('[data-testid="bt-fee"]', '7.5');
  await page.check('[data-testid="bt-short"]');
  await page.click('[data-testid="bt-run"]');
  await page.waitForSelector('[data-testid="bt-results"]:not([hidden])', { timeout: 30_000 });
  for (const key of ['net_pnl', 'return_pct', 'sharpe', 'sortino', 'max_drawdown_pct', 'win_rate_pct', 'profit_factor', 'trades', 'exposure_pct']) {
    const text = await page.locator(`[data-testid="bt-metric-${key}"]`).innerText();
    assert.match(text, /\d|—/, `${key}: ${text}`);
  }
  const bt = await debug(() => window.candlecast.debug.backtest());
  assert.ok(bt.result.equityPoints > 100, `equity points: ${bt.result.equityPoints}`);
  assert.ok(bt.result.trades > 0);
  assert.equal(await page.locator('[data-testid="bt-metric-trades"]').innerText(), String(bt.result.metrics.trades));
  assert.ok((await page.locator('[data-testid="bt-trades"] tbody tr').count()) > 0);
  assert.equal(await page.locator('[data-testid="bt-error"]').innerText(), '');
  await page.locator('[data-testid="bt-equity"]').scrollIntoViewIfNeeded();
  await sleep(200);
  await screenshot(page, 'strategies-04-backtest-dark');
  await page.click('[data-testid="theme-toggle"]');
  await sleep(300);
  await screenshot(page, 'strategies-05-backtest-light');
  await page.click('[data-testid="theme-toggle"]');
});

test('a bad parameter: the range is checked in the page, the server’s 400 detail is shown', async () => {
  await openBacktest();
  await page.selectOption('[data-testid="bt-strategy"]', 'ema_cross');
  await page.fill('[data-testid="bt-param-fast"]', '0');
  await page.click('[data-testid="bt-run"]');
  assert.match(await page.locator('[data-testid="bt-param-fast-error"]').innerText(), /within \[1, 1000\]/);

  // Each value is in range, but fast >= slow only the server knows: its 400 detail, verbatim.
  await page.fill('[data-testid="bt-param-fast"]', '30');
  await page.fill('[data-testid="bt-param-slow"]', '26');
  await page.click('[data-testid="bt-run"]');
  await page.waitForFunction(() => /must be below/.test(document.querySelector('[data-testid="bt-error"]').textContent));
  assert.equal(await page.locator('[data-testid="bt-error"]').innerText(), 'invalid parameters: fast (30) must be below slow (26)');
  await screenshot(page, 'strategies-06-backtest-400');
});

test('optimize: ranked results, and a large grid can be cancelled', async () => {
  await openBacktest();
  await page.click('[data-testid="bt-tab-optimize"]');
  await page.selectOption('[data-testid="bt-strategy"]', 'ema_cross');
  await page.fill('[data-testid="opt-param-fast"]', '2:10:2');
  await page.fill('[data-testid="opt-param-slow"]', '20, 30');
  assert.match(await page.locator('[data-testid="opt-combinations"]').innerText(), /^10 combinations/);
  await page.selectOption('[data-testid="opt-rank"]', 'sharpe');
  await page.click('[data-testid="opt-start"]');
  await page.waitForSelector('[data-testid="opt-results"]:not([hidden])', { timeout: 60_000 });
  const rows = page.locator('[data-testid="opt-table"] tbody tr');
  assert.equal(await rows.count(), 10);
  assert.equal(await rows.first().getAttribute('data-rank'), '1');
  await screenshot(page, 'strategies-07-optimize');

  await page.fill('[data-testid="opt-param-fast"]', '1:400:1');
  await page.fill('[data-testid="opt-param-slow"]', '500:700:1');
  await page.click('[data-testid="opt-start"]');
  await page.waitForFunction(() => !document.querySelector('[data-testid="opt-cancel"]').disabled, null, { timeout: 10_000 });
  await page.click('[data-testid="opt-cancel"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="opt-status"]').textContent === 'Cancelled.', null, { timeout: 15_000 });
  assert.deepEqual(unexpectedErrors(), []);
});
