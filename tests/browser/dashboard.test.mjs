// The dashboard against the real server: loading, live updates, grid
// management, interval switching, scroll-back, theme, panels.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

const SCRIPT_KEY = 'browser-test-script-key';

let server;
let browser;
let page;
let errors;

before(async () => {
  // A script key, so the test can push trades as seed 003's scripts do.
  server = await startServer({ env: { CANDLECAST__SCRIPTS__KEYS: JSON.stringify([SCRIPT_KEY]) } });
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const cardCount = () => page.locator('[data-testid="chart-card"]').count();

test('page loads without console errors and a chart shows candles within 3 s', async () => {
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m')]);
  const t0 = Date.now();
  await waitChartLive(page, 'c1', 3000);
  const info = await chartInfo(page, 'c1');
  assert.ok(info.barCount > 10, `expected history, got ${info.barCount} bars`);
  assert.ok(Date.now() - t0 < 3000);
  await page.waitForSelector('[data-testid="connection-status"][data-state="connected"]');
  // The legend and header show real numbers once data is in.
  await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid="last-price"]')?.textContent ?? ''));
  assert.match(await page.locator('[data-testid="legend"]').first().innerText(), /O .*H .*L .*C .*V /s);
  await screenshot(page, '01-loaded-dark');
  assert.deepEqual(errors, []);
});

test('live updates move the last candle', async () => {
  const before = (await chartInfo(page, 'c1')).last;
  await page.waitForFunction(
    (b) => {
      const last = window.candlecast.debug.charts().find((c) => c.id === 'c1').last;
      return last.timestamp !== b.timestamp || last.close !== b.close || last.volume !== b.volume;
    },
    before,
    { timeout: 10_000 },
  );
  assert.ok((await page.evaluate(() => window.candlecast.debug.updateCount())) > 0);
});

test('change % is measured against the bar 24 h back, fetched when the chart has not loaded it', async () => {
  await page.waitForFunction(() => window.candlecast.debug.charts().find((c) => c.id === 'c1').dayAgo !== null, null, { timeout: 10_000 });
  const info = await chartInfo(page, 'c1');
  const DAY = 86_400_000;
  assert.ok(info.dayAgo.timestamp < info.first, `the reference is older than the ${info.barCount} loaded bars`);
  assert.ok(info.dayAgo.timestamp <= info.last.timestamp - DAY + 60_000, 'at most a minute younger than 24 h (refetched each minute)');
  assert.ok(info.dayAgo.timestamp > info.last.timestamp - DAY - 5 * 60_000, 'and not much older');
  assert.equal(info.changeReference, info.dayAgo.close);
  const res = await fetch(`${server.url}/api/historical/${info.symbol}?interval=${info.interval}&start_time=${info.dayAgo.timestamp}&end_time=${info.dayAgo.timestamp + 1}`);
  const stored = (await res.json()).data[0];
  assert.equal(stored.timestamp, info.dayAgo.timestamp);
  assert.equal(stored.close, info.dayAgo.close, 'the close of the server’s bar at that time');
});

test('add, duplicate and remove charts; the layout survives a reload', async () => {
  const n0 = await cardCount();
  await page.click('[data-testid="preset-ETHUSDT"]');
  assert.equal(await cardCount(), n0 + 1);
  const added = page.locator('[data-testid="chart-card"]').last();
  assert.equal(await added.getAttribute('data-symbol'), 'ETHUSDT');
  const addedId = await added.getAttribute('data-chart-id');
  await waitChartLive(page, addedId, 5000);

  // Duplicate the first chart: the copy appears right after it, same settings.
  await page.locator('[data-testid="chart-card"]').first().locator('[data-testid="chart-duplicate"]').click();
  assert.equal(await cardCount(), n0 + 2);
  const copy = page.locator('[data-testid="chart-card"]').nth(1);
  assert.equal(await copy.getAttribute('data-symbol'), 'BTCUSDT');
  assert.equal(await copy.getAttribute('data-interval'), '1m');
  const copyId = await copy.getAttribute('data-chart-id');
  await waitChartLive(page, copyId, 5000);
  await screenshot(page, '02-three-charts');

  // Two charts on BTCUSDT@1m share one server subscription.
  const topics = await page.evaluate(() => window.candlecast.debug.topics());
  assert.deepEqual([...topics].sort(), ['BTCUSDT@1m', 'ETHUSDT@1m']);

  await page.locator(`[data-chart-id="${addedId}"] [data-testid="chart-remove"]`).click();
  assert.equal(await cardCount(), n0 + 1);

  await page.reload();
  await waitChartLive(page, copyId, 5000);
  const ids = await page.locator('[data-testid="chart-card"]').evaluateAll((els) => els.map((e) => e.dataset.chartId));
  assert.deepEqual(ids, ['c1', copyId]);
  await page.locator(`[data-chart-id="${copyId}"] [data-testid="chart-remove"]`).click();
  assert.equal(await cardCount(), 1);
});

test('switching the interval refetches bars of that interval', async () => {
  await page.selectOption('[data-chart-id="c1"] [data-testid="interval-select"]', '5m');
  await page.waitForFunction(() => {
    const c = window.candlecast.debug.charts().find((x) => x.id === 'c1');
    return c.interval === '5m' && c.state === 'live' && c.barCount > 10;
  });
  const ts = await page.evaluate(() => window.candlecast.debug.timestamps('c1'));
  for (let i = 1; i < ts.length; i++) assert.equal(ts[i] - ts[i - 1], 300_000, `5m spacing at ${i}`);
  const topics = await page.evaluate(() => window.candlecast.debug.topics());
  assert.deepEqual(topics, ['BTCUSDT@5m']);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('candlecast.layout.v1')));
  assert.equal(stored.charts[0].interval, '5m');
  await screenshot(page, '03-interval-5m');
  await page.selectOption('[data-chart-id="c1"] [data-testid="interval-select"]', '1m');
  await waitChartLive(page, 'c1', 5000);
});

test('scrolling left loads older bars and the view does not move', async () => {
  // A second page whose WebSocket goes through Playwright, so that replies to
  // scroll-back requests can be held back: the view is read after the scroll
  // has settled but before the older bars arrive.
  const p2 = await browser.context.newPage();
  const held = new Set();
  await p2.routeWebSocket(/\/ws$/, (ws) => {
    const srv = ws.connectToServer();
    ws.onMessage((m) => {
      try {
        const j = JSON.parse(String(m));
        if (j.type === 'get_historical' && j.end_time !== undefined) held.add(String(j.id));
      } catch {}
      srv.send(m);
    });
    srv.onMessage((m) => {
      let j = null;
      try {
        j = JSON.parse(String(m));
      } catch {}
      if (j && j.id !== undefined && held.has(String(j.id))) setTimeout(() => ws.send(m), 800);
      else ws.send(m);
    });
  });
  await p2.goto(server.url);
  await waitChartLive(p2, 'c1', 5000);
  await p2.waitForFunction(() => window.candlecast.debug.charts()[0].barCount >= 300);
  const before = await p2.evaluate(async () => {
    const d = window.candlecast.debug;
    const c = d.charts()[0];
    // Scroll so that 10 bars are left of the view: crosses the load threshold.
    d.scrollBars('c1', -(c.visibleLogicalRange.from - 10));
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const now = d.charts()[0];
    return { first: now.first, barCount: now.barCount, range: now.visibleRange };
  });
  assert.equal(before.barCount, (await chartInfo(p2, 'c1')).barCount, 'older bars not in yet');
  await p2.waitForFunction(
    (n) => {
      const c = window.candlecast.debug.charts()[0];
      return c.barCount > n && !document.querySelector('[data-chart-id="c1"]').dataset.loadingOlder;
    },
    before.barCount,
    { timeout: 10_000 },
  );
  assert.ok(held.size >= 1, 'a get_historical with end_time was sent');
  const now = await chartInfo(p2, 'c1');
  assert.ok(now.first < before.first, 'older bars were prepended');
  assert.deepEqual(now.visibleRange, before.range, 'visible time range unchanged by the prepend');
  const ts = await p2.evaluate(() => window.candlecast.debug.timestamps('c1'));
  for (let i = 1; i < ts.length; i++) assert.ok(ts[i] > ts[i - 1], 'strictly ascending, no duplicates');
  await screenshot(p2, '04-scrolled-back');

  // A real mouse drag towards older bars loads more: put the view just short
  // of the threshold, then drag the last stretch by hand.
  await p2.evaluate(() => {
    const d = window.candlecast.debug;
    return d.scrollBars('c1', -(d.charts()[0].visibleLogicalRange.from - 70));
  });
  const box = await p2.locator('[data-chart-id="c1"] [data-testid="chart-host"]').boundingBox();
  const count = now.barCount;
  await p2.mouse.move(box.x + 60, box.y + 100);
  await p2.mouse.down();
  await p2.mouse.move(box.x + box.width - 120, box.y + 100, { steps: 10 });
  await p2.mouse.up();
  await p2.waitForFunction((n) => window.candlecast.debug.charts()[0].barCount > n, count, { timeout: 10_000 });
  await p2.close();
});

test('back at the live edge, a chart lets the bars it scrolled in go again, and the view stays', async () => {
  // 5m bars: a new bar (which moves the live view) comes rarely during the test.
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '5m')]);
  await waitChartLive(page, 'c1', 5000);
  const initial = (await chartInfo(page, 'c1')).barCount;
  // Scroll back page by page until the chart holds more than 800 bars (300 first, then 500 a page).
  for (let i = 0; i < 4 && (await chartInfo(page, 'c1')).barCount <= 800; i++) {
    const n = (await chartInfo(page, 'c1')).barCount;
    await page.evaluate(() => {
      const d = window.candlecast.debug;
      d.scrollBars('c1', -(d.charts()[0].visibleLogicalRange.from - 10));
    });
    await page.waitForFunction((k) => window.candlecast.debug.charts()[0].barCount > k, n, { timeout: 10_000 });
  }
  const loaded = await chartInfo(page, 'c1');
  assert.ok(loaded.barCount > 800, `scrolled in ${loaded.barCount} bars`);
  // Back to the newest bar (as a drag would: the view's right end on the last bar).
  await page.evaluate(() => {
    const d = window.candlecast.debug;
    const c = d.charts()[0];
    d.scrollBars('c1', c.barCount - 1 - c.visibleLogicalRange.to);
  });
  const atEdge = await page.evaluate(async () => {
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return window.candlecast.debug.charts()[0];
  });
  // The next live update lets the old bars go.
  await page.waitForFunction(() => window.candlecast.debug.charts()[0].barCount < 800, null, { timeout: 10_000 });
  const after = await chartInfo(page, 'c1');
  assert.ok(after.barCount >= initial && after.barCount < loaded.barCount, `kept ${after.barCount} of ${loaded.barCount}`);
  assert.ok(after.first > loaded.first, 'the oldest bars went');
  if (after.last.timestamp === atEdge.last.timestamp) {
    assert.deepEqual(after.visibleRange, atEdge.visibleRange, 'visible time range unchanged');
  }
  const ts = await page.evaluate(() => window.candlecast.debug.timestamps('c1'));
  for (let i = 1; i < ts.length; i++) assert.equal(ts[i] - ts[i - 1], 300_000, `no hole at ${i}`);
  // Scroll-back brings them in again.
  await page.evaluate(() => {
    const d = window.candlecast.debug;
    d.scrollBars('c1', -(d.charts()[0].visibleLogicalRange.from - 10));
  });
  await page.waitForFunction((k) => window.candlecast.debug.charts()[0].barCount > k, after.barCount, { timeout: 10_000 });
});

test('SMA/EMA overlays toggle and persist', async () => {
  await page.click('[data-chart-id="c1"] [data-testid="toggle-sma"]');
  await page.click('[data-chart-id="c1"] [data-testid="toggle-ema"]');
  let info = await chartInfo(page, 'c1');
  assert.deepEqual(info.overlays, { sma: true, ema: true });
  await page.reload();
  await waitChartLive(page, 'c1', 5000);
  info = await chartInfo(page, 'c1');
  assert.deepEqual(info.overlays, { sma: true, ema: true });
  await screenshot(page, '05-overlays');
});

test('theme toggle switches and is remembered', async () => {
  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  const first = await theme();
  await page.click('[data-testid="theme-toggle"]');
  const second = await theme();
  assert.notEqual(first, second);
  await page.reload();
  await waitChartLive(page, 'c1', 5000);
  assert.equal(await theme(), second);
  await screenshot(page, `06-theme-${second}`);
  await page.click('[data-testid="theme-toggle"]');
  assert.equal(await theme(), first);
  await screenshot(page, `06-theme-${first}`);
});

test('markers hook, script activity panel and stats view', async () => {
  const last = (await chartInfo(page, 'c1')).last;
  const ok = await page.evaluate(
    (t) =>
      window.candlecast.addMarkers('c1', [
        { time: t, kind: 'trade', side: 'buy', text: 'BUY 0.1' },
        { time: t, kind: 'signal', side: 'short', text: 'ema_cross short' },
      ]),
    last.timestamp,
  );
  assert.equal(ok, true);
  assert.equal((await chartInfo(page, 'c1')).markers, 2);
  assert.equal(await page.evaluate(() => window.candlecast.addMarkers('nope', [])), false);
  await screenshot(page, '07-markers');

  // Live, as seed 003's dashboard: a script's CSV reaches the panel as a Socket.IO trading_update.
  await page.click('[data-testid="nav-activity"]');
  await page.waitForSelector('[data-testid="activity-feed-state"][data-state="live"]', { timeout: 8000 });
  const pushed = await fetch(`${server.url}/api/trading-data`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SCRIPT_KEY}` },
    body: JSON.stringify({
      trades_csv:
        'timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,AAPL,BUY,100,150.00,25.50,Three Red Bodies\n2023-01-01T10:05:00,TSLA,SELL,50,800.00,-15.25,Three Red Bodies',
      market_data_csv:
        'timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n2023-01-01T10:00:00,AAPL,149.50,151.00,149.00,150.00,50000,65.5,0.75',
      timestamp: '2023-01-01T10:05:00',
    }),
  });
  assert.equal(pushed.status, 200, await pushed.text());
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="activity-trades"] tbody tr').length === 2, null, { timeout: 8000 });
  assert.equal(await page.locator('[data-testid="activity-trades"] tbody tr').count(), 2);
  assert.equal(await page.locator('[data-testid="activity-market"] tbody tr').count(), 1);
  assert.equal(await page.locator('[data-testid="activity-total-trades"]').innerText(), '2');
  assert.equal(await page.locator('[data-testid="activity-total-pnl"]').innerText(), '10.25');
  await screenshot(page, '08-activity');

  await page.click('[data-testid="nav-stats"]');
  await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid="stat-total_clients"]').textContent), null, { timeout: 8000 });
  assert.ok(Number(await page.locator('[data-testid="stat-total_clients"]').innerText()) >= 1);
  await screenshot(page, '09-stats');
  await page.click('[data-testid="nav-charts"]');
});

test('usable at phone width', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  // The layout follows on the next frames: wait for it rather than for a time.
  await page.waitForFunction(() => document.querySelector('[data-chart-id="c1"]').getBoundingClientRect().width <= 390, null, { timeout: 3000 }).catch(() => {});
  const box = await page.locator('[data-chart-id="c1"]').boundingBox();
  assert.ok(box.width <= 390, `card fits the screen (${box.width})`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scroll (${overflow}px)`);
  await screenshot(page, '10-phone');
  await page.setViewportSize({ width: 1400, height: 900 });
  assert.deepEqual(errors, []);
});
