// Issue #17, item 5: a backtest over a date range with a starting capital, its trades drawn as markers
// on a price chart of the symbol and interval, and the trade list linked to it (a click on a row
// scrolls the chart to that trade).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launch, openPage, screenshot } from './helpers/browser.mjs';
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
  await browser?.close();
  await server?.stop();
});

const backtest = () => page.evaluate(() => window.candlecast.debug.backtest());

test('a backtest over a date range and a starting capital draws its trades on the price chart', async () => {
  await page.click('[data-testid="nav-backtest"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="bt-strategy"] option').length >= 2);
  await page.selectOption('[data-testid="bt-strategy"]', 'ema_cross');
  await page.fill('[data-testid="bt-param-fast"]', '5');
  await page.fill('[data-testid="bt-param-slow"]', '13');
  await page.fill('[data-testid="bt-symbol"]', 'BTCUSDT');
  await page.selectOption('[data-testid="bt-interval"]', '1m');
  // From three days ago to two days ago, whole minutes, as the browser's datetime-local fields take them.
  const range = await page.evaluate(() => {
    const minute = 60_000;
    const end = Math.floor(Date.now() / minute) * minute - 2 * 86_400_000;
    const start = end - 86_400_000;
    const local = (ms) => {
      const d = new Date(ms);
      const p = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
    };
    return { start, end, startText: local(start), endText: local(end) };
  });
  await page.fill('[data-testid="bt-start"]', range.startText);
  await page.fill('[data-testid="bt-end"]', range.endText);
  await page.fill('[data-testid="bt-capital"]', '2500');
  await page.click('[data-testid="bt-run"]');
  await page.waitForSelector('[data-testid="bt-results"]:not([hidden])', { timeout: 60_000 });
  await page.waitForFunction(() => (window.candlecast.debug.backtest().price?.bars ?? 0) > 0, null, { timeout: 15_000 });

  const bt = await backtest();
  const m = bt.result.metrics;
  assert.equal(m.initial_equity, 2500, 'the starting capital reached the server');
  assert.ok(Math.abs(m.return_pct - (m.net_pnl / 2500) * 100) < 1e-6, `return on the given capital: ${JSON.stringify(m)}`);
  assert.ok(bt.result.equityFrom >= range.start && bt.result.equityTo < range.end, `equity inside the range: ${JSON.stringify(bt.result)}`);
  assert.ok(bt.result.trades > 0, 'the crossover trades in a day of 1m bars');

  // The price chart: that symbol and interval, the bars of the range, an entry and an exit per trade.
  assert.equal(bt.price.symbol, 'BTCUSDT');
  assert.equal(bt.price.interval, '1m');
  assert.ok(bt.price.bars >= 1000 && bt.price.bars <= 1440, `a day of 1m bars: ${bt.price.bars}`);
  assert.equal(bt.price.markers, 2 * bt.result.trades);
  await page.locator('[data-testid="bt-price"]').scrollIntoViewIfNeeded();
  await screenshot(page, '62-backtest-price-chart');

  // A click on the first trade's row scrolls the chart to it.
  const [entry, exit] = bt.result.tradeTimes[0];
  const before = bt.price.visibleRange;
  assert.ok(before.from * 1000 < entry - 3_600_000 || before.to * 1000 > exit + 3_600_000, 'not already zoomed on it');
  await page.click('[data-testid="bt-trades"] tbody tr[data-trade="0"]');
  await page.waitForFunction(() => window.candlecast.debug.backtest().price.focused === 0);
  await page.waitForFunction(
    ([entry, exit]) => {
      const r = window.candlecast.debug.backtest().price.visibleRange;
      return r && r.from * 1000 <= entry && r.to * 1000 >= exit && (r.to - r.from) * 1000 <= exit - entry + 50 * 60_000;
    },
    [entry, exit],
    { timeout: 5000 },
  );
  assert.equal(await page.getAttribute('[data-testid="bt-trades"] tbody tr[data-trade="0"]', 'aria-selected'), 'true');
  await screenshot(page, '63-backtest-trade-focused');

  // A range the wrong way round is refused in the form, naming the field.
  await page.fill('[data-testid="bt-start"]', range.endText);
  await page.fill('[data-testid="bt-end"]', range.startText);
  await page.click('[data-testid="bt-run"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="bt-error"]')?.textContent !== '');
  assert.match(await page.locator('[data-testid="backtest-panel"]').innerText(), /end must be after the start/);
  assert.deepEqual(errors, []);
});
