// Issue #17, item 2: drawings are anchored in time and price and belong to the symbol. A trend line drawn
// on 1m between bar boundaries stays on the same instants on 5m and 1h (between the bars around them, in
// proportion to time, or past the last bar by the interval), comes back unchanged on 1m, shows on every
// chart of its symbol (and on none of another), and survives a reload and a duplication.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chartCfg, chartInfo, launch, openPage, screenshot, setLayout, waitChartLive } from './helpers/browser.mjs';
import { startServer } from './helpers/server.mjs';

let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer();
  browser = await launch();
  ({ page, errors } = await openPage(browser.context, server.url));
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m'), chartCfg('c2', 'BTCUSDT', '1h'), chartCfg('c3', 'ETHUSDT', '1m')]);
  for (const id of ['c1', 'c2', 'c3']) await waitChartLive(page, id, 8000);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const card = (id) => `[data-chart-id="${id}"]`;
const STEP = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000 };

/**
 * Where each anchor of `drawing` must be on chart `id`, from lightweight-charts' own positions of the bars
 * around its time: between two bars in proportion to time, past the last one (or before the first) at one
 * bar spacing per interval. Read in one go with what the chart paints, so no re-layout falls in between.
 */
async function measure(id, drawing) {
  return page.evaluate(
    ([id, drawing, STEP]) => {
      const dbg = window.candlecast.debug;
      const info = dbg.charts().find((c) => c.id === id);
      const ts = dbg.timestamps(id);
      const x = (t) => dbg.barX(id, t);
      const n = ts.length;
      const expected = drawing.points.map(({ time }) => {
        let i = ts.findIndex((t) => t > time);
        if (time >= ts[n - 1]) i = n - 1;
        else if (time <= ts[0]) i = 1;
        const [a, b] = [ts[i - 1], ts[i]];
        const [xa, xb] = [x(a), x(b)];
        // Neighbouring bars are one bar spacing apart whatever the time between them.
        const spacing = xb - xa;
        if (time >= ts[n - 1]) return xb + ((time - b) / STEP[info.interval]) * spacing;
        if (time <= ts[0]) return xa + ((time - a) / STEP[info.interval]) * spacing;
        return xa + ((time - a) / (b - a)) * spacing;
      });
      const painted = dbg.drawingPixels(id).find((s) => s.id === drawing.id) ?? null;
      const ys = drawing.points.map((p) => dbg.toPixel(id, p.time, p.price)?.y ?? null);
      return { expected, painted, ys };
    },
    [id, drawing, STEP],
  );
}

async function assertPlacedByTime(id, drawing) {
  const { interval } = await chartInfo(page, id);
  const { expected, painted, ys } = await measure(id, drawing);
  assert.ok(painted, `${id} paints drawing ${drawing.id}`);
  for (const [i, want] of expected.entries()) {
    const got = painted.points[i];
    assert.ok(Math.abs(got.x - want) < 1, `${id} (${interval}) point ${i}: x ${got.x} vs ${want} from the bars' times`);
    assert.ok(Math.abs(got.y - ys[i]) < 0.5);
  }
  return painted;
}

async function setInterval_(id, interval) {
  await page.selectOption(`${card(id)} [data-testid="interval-select"]`, interval);
  await page.waitForFunction(
    ([c, iv]) => {
      const x = window.candlecast.debug.charts().find((v) => v.id === c);
      return x && x.interval === iv && x.state === 'live' && x.barCount > 1;
    },
    [id, interval],
    { timeout: 8000 },
  );
}

let drawn;

test('a line drawn on 1m off the 5m/1h boundaries keeps its instants on 5m, 1h and back on 1m', async () => {
  const box = await page.locator(`${card('c1')} [data-testid="chart-host"]`).boundingBox();
  await page.click(`${card('c1')} [data-testid="tool-trend"]`);
  // Two points inside the newest 1m bars, between (not on) bar times.
  await page.mouse.click(box.x + box.width * 0.52 + 3, box.y + box.height * 0.3);
  await page.mouse.click(box.x + box.width * 0.78 + 3, box.y + box.height * 0.5);
  [drawn] = (await chartInfo(page, 'c1')).drawings;
  assert.equal(drawn.kind, 'trend');
  for (const p of drawn.points) assert.notEqual(p.time % STEP['5m'], 0, 'not on a 5m boundary');
  const on1m = await assertPlacedByTime('c1', drawn);

  for (const interval of ['5m', '1h']) {
    await setInterval_('c1', interval);
    assert.deepEqual((await chartInfo(page, 'c1')).drawings, [drawn], `anchors unchanged on ${interval}`);
    const d = await assertPlacedByTime('c1', drawn);
    // The two points stay apart in time order: nothing snapped onto the same bar or the left edge.
    assert.ok(d.points[1].x > d.points[0].x, `${interval}: second point right of the first`);
    await screenshot(page, `43-drawing-${interval}`);
  }
  await setInterval_('c1', '1m');
  assert.deepEqual((await chartInfo(page, 'c1')).drawings, [drawn]);
  const back = await assertPlacedByTime('c1', drawn);
  // Same instants, same place once the view is back where it was (the chart returns to the live edge).
  assert.ok(Math.abs(back.points[0].x - on1m.points[0].x) < 60, 'back near where it was drawn');
});

test('drawings belong to the symbol: every BTCUSDT chart shows them, ETHUSDT none', async () => {
  assert.deepEqual((await chartInfo(page, 'c2')).drawings, [drawn]);
  await assertPlacedByTime('c2', drawn);
  assert.deepEqual((await chartInfo(page, 'c3')).drawings, []);
  // A change on one chart shows on the other at once.
  const box = await page.locator(`${card('c2')} [data-testid="chart-host"]`).boundingBox();
  await page.click(`${card('c2')} [data-testid="tool-hline"]`);
  await page.mouse.click(box.x + box.width * 0.3, box.y + box.height * 0.4);
  const both = (await chartInfo(page, 'c2')).drawings;
  assert.equal(both.length, 2);
  assert.deepEqual((await chartInfo(page, 'c1')).drawings, both);
});

test('exact across a reload and a duplication', async () => {
  const saved = (await chartInfo(page, 'c1')).drawings;
  await page.reload();
  for (const id of ['c1', 'c2', 'c3']) await waitChartLive(page, id, 8000);
  assert.deepEqual((await chartInfo(page, 'c1')).drawings, saved);
  await assertPlacedByTime('c1', saved[0]);
  await page.click(`${card('c2')} [data-testid="chart-duplicate"]`);
  const copy = (await page.evaluate(() => window.candlecast.debug.charts())).find((c) => !['c1', 'c2', 'c3'].includes(c.id));
  await waitChartLive(page, copy.id, 8000);
  assert.deepEqual((await chartInfo(page, copy.id)).drawings, saved);
  await assertPlacedByTime(copy.id, saved[0]);
  // Removing a chart keeps the symbol's drawings for its other charts.
  await page.click(`${card('c1')} [data-testid="chart-remove"]`);
  await page.reload();
  await waitChartLive(page, 'c2', 8000);
  assert.deepEqual((await chartInfo(page, 'c2')).drawings, saved);
  assert.deepEqual(errors, []);
});
