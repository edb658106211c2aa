// Drawing tools in a real browser: create each kind by clicking, drag it,
// delete it (key and button), and find it again after a reload.
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
  await setLayout(page, [chartCfg('c1', 'BTCUSDT', '1m')], { theme: 'dark' });
  await waitChartLive(page, 'c1', 5000);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const host = () => page.locator('[data-chart-id="c1"] [data-testid="chart-host"]').boundingBox();
const drawings = async () => (await chartInfo(page, 'c1')).drawings;

/** Page coordinates of a stored anchor. */
async function anchorAt(a) {
  const box = await host();
  const p = await page.evaluate(([t, pr]) => window.candlecast.debug.toPixel('c1', t, pr), [a.time, a.price]);
  return { x: box.x + p.x, y: box.y + p.y };
}

/** A point on the drawing's body that grabs it (not a handle). */
async function grabPoint(d) {
  const box = await host();
  if (d.kind === 'hline') return { x: box.x + box.width * 0.4, y: (await anchorAt(d.points[0])).y };
  const a = await anchorAt(d.points[0]);
  const b = await anchorAt(d.points[1]);
  return { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
}

const PLAN = [
  { kind: 'trend', clicks: [[0.2, 0.15], [0.45, 0.35]] },
  { kind: 'hline', clicks: [[0.5, 0.5]] },
  { kind: 'fib', clicks: [[0.55, 0.55], [0.75, 0.2]] },
  { kind: 'rect', clicks: [[0.1, 0.45], [0.3, 0.6]] },
];

test('each tool creates its drawing by clicking', async () => {
  const box = await host();
  for (const [i, step] of PLAN.entries()) {
    await page.click(`[data-chart-id="c1"] [data-testid="tool-${step.kind}"]`);
    assert.equal(await page.getAttribute(`[data-chart-id="c1"] [data-testid="tool-${step.kind}"]`, 'aria-pressed'), 'true');
    for (const [fx, fy] of step.clicks) await page.mouse.click(box.x + box.width * fx, box.y + box.height * fy);
    const list = await drawings();
    assert.equal(list.length, i + 1, `${step.kind} created`);
    assert.equal(list[i].kind, step.kind);
    assert.equal(list[i].points.length, step.clicks.length);
  }
  const fib = (await drawings())[2];
  assert.ok(fib.points[1].price > fib.points[0].price, 'fib drawn upwards');
  await screenshot(page, '11-drawings-created');
});

test('each drawing can be dragged', async () => {
  for (const d of await drawings()) {
    const from = await grabPoint(d);
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move(from.x + 20, from.y + 15, { steps: 3 });
    await page.mouse.move(from.x + 40, from.y + 30, { steps: 3 });
    await page.mouse.up();
    const moved = (await drawings()).find((x) => x.id === d.id);
    assert.ok(moved.points[0].price < d.points[0].price, `${d.kind} moved down`);
    if (d.kind !== 'hline') assert.ok(moved.points[0].time > d.points[0].time, `${d.kind} moved right`);
    // Moved as a whole: both anchors shift by the same amount.
    if (d.points.length === 2) {
      assert.ok(Math.abs((moved.points[1].price - moved.points[0].price) - (d.points[1].price - d.points[0].price)) < 1e-6 * Math.abs(d.points[0].price));
    }
  }
  await screenshot(page, '12-drawings-moved');
});

test('drawings survive a reload', async () => {
  const saved = await drawings();
  await page.reload();
  await waitChartLive(page, 'c1', 5000);
  assert.deepEqual(await drawings(), saved);
  await screenshot(page, '13-drawings-reloaded');
});

test('delete with the Delete key, Backspace and the button', async () => {
  const ways = ['Delete', 'button', 'Backspace', 'button'];
  for (const [i, way] of ways.entries()) {
    const [d] = await drawings();
    const at = await grabPoint(d);
    await page.mouse.click(at.x, at.y); // selects
    if (way === 'button') await page.click('[data-chart-id="c1"] [data-testid="drawing-delete"]');
    else await page.keyboard.press(way);
    const left = await drawings();
    assert.equal(left.length, ways.length - i - 1, `${d.kind} deleted with ${way}`);
    assert.ok(!left.some((x) => x.id === d.id));
  }
  await page.reload();
  await waitChartLive(page, 'c1', 5000);
  assert.deepEqual(await drawings(), []);
  assert.deepEqual(errors, []);
});
