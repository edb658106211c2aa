// Issue #17, item 10: the grid fills the window (1, 2, 2x2, 3x2, 4x2 at 1400x900; one column on a phone),
// the shown view is marked for screen readers, every chart's logo link has a name and an id of its own,
// and the indicator menu closes on Esc and on a click outside it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, launch, openPage, screenshot, setLayout, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'ADAUSDT', 'BNBUSDT', 'XRPUSDT', 'SOLUSDT', 'BTCUSDT', 'ETHUSDT'];
let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer();
  browser = await launch({ viewport: { width: 1400, height: 900 } });
  ({ page, errors } = await openPage(browser.context, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Lays out `n` charts and returns the cards' boxes and the page's scroll size once the grid settled. */
async function gridWith(n) {
  await setLayout(page, SYMBOLS.slice(0, n).map((s, i) => chartCfg(`c${i + 1}`, s, '1h')));
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="chart-card"]').length === n, n);
  await waitChartLive(page, 'c1', 8000);
  // Two frames: the grid is fitted in one, the charts resize in the next.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  return page.evaluate(() => ({
    cards: [...document.querySelectorAll('[data-testid="chart-card"]')].map((c) => {
      const r = c.getBoundingClientRect();
      return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
    }),
    scrollHeight: document.documentElement.scrollHeight,
    innerHeight: window.innerHeight,
    innerWidth: window.innerWidth,
  }));
}

test('at 1400x900 the charts fill the window: 1, 2, 2x2, 3x2, 4x2', async () => {
  for (const [n, cols] of [[1, 1], [2, 2], [4, 2], [6, 3], [8, 4]]) {
    const g = await gridWith(n);
    const lefts = new Set(g.cards.map((c) => Math.round(c.left)));
    assert.equal(lefts.size, cols, `${n} charts: ${cols} columns`);
    const bottom = Math.max(...g.cards.map((c) => c.bottom));
    const right = Math.max(...g.cards.map((c) => c.right));
    assert.ok(g.scrollHeight <= g.innerHeight + 1, `${n} charts: no page scroll (${g.scrollHeight} > ${g.innerHeight})`);
    assert.ok(bottom >= g.innerHeight - 24, `${n} charts: the rows reach the bottom (${bottom} of ${g.innerHeight})`);
    assert.ok(right >= g.innerWidth - 24, `${n} charts: the columns reach the right edge`);
    if (n === 4 || n === 8) await screenshot(page, `46-grid-${n}`);
  }
});

test('the shown view is aria-current; logo links have names and ids of their own; the indicator menu closes on Esc and outside clicks', async () => {
  assert.equal(await page.getAttribute('[data-testid="nav-charts"]', 'aria-current'), 'page');
  await page.click('[data-testid="nav-stats"]');
  assert.equal(await page.getAttribute('[data-testid="nav-stats"]', 'aria-current'), 'page');
  assert.equal(await page.getAttribute('[data-testid="nav-charts"]', 'aria-current'), null);
  await page.click('[data-testid="nav-charts"]');

  const logos = await page.evaluate(() =>
    [...document.querySelectorAll('[data-testid="chart-host"] a[href*="tradingview"]')].map((a) => ({ id: a.id, name: a.getAttribute('aria-label') ?? '' })),
  );
  assert.equal(logos.length, 8, 'one logo per chart (kept: the library asks for its attribution)');
  assert.equal(new Set(logos.map((l) => l.id)).size, 8, 'ids unique');
  assert.ok(logos.every((l) => l.name.length > 10), 'each link has a name');
  assert.equal(await page.locator('#tv-attr-logo').count(), 0);

  const menu = '[data-chart-id="c1"] [data-testid="indicator-menu"]';
  const popover = page.locator('[data-chart-id="c1"] [data-testid="indicator-popover"]');
  await page.click(menu);
  assert.ok(await popover.isVisible());
  await page.click('.brand'); // somewhere else on the page
  assert.ok(await popover.isHidden(), 'closed by a click outside');
  await page.click(menu);
  assert.ok(await popover.isVisible());
  await page.mouse.click(5, 5); // focus leaves the popover...
  await page.click(menu);
  await page.keyboard.press('Escape'); // ...and Esc still closes it
  assert.ok(await popover.isHidden(), 'closed by Esc');
  assert.deepEqual(errors, []);
});

test('at 390x844 one column, charts full width', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const g = await gridWith(2);
  assert.equal(new Set(g.cards.map((c) => Math.round(c.left))).size, 1);
  for (const c of g.cards) assert.ok(c.right - c.left >= 360, 'full width');
  await screenshot(page, '47-phone');
});
