// Launches Debian's Chromium through playwright-core (never a downloaded
// browser) with a fresh profile, and collects console errors per page.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * `gpu`: composite and draw canvases through SwiftShader (software GL in the GPU process) instead of on
 * the page's main thread (`--disable-gpu`, the default and what the performance test measures). On this
 * 2-core machine SwiftShader saturates the GPU process and the page then blocks waiting for it, so it is
 * kept only for comparison (`PERF_GPU=1`).
 */
const GPU_ARGS = ['--use-angle=swiftshader', '--enable-unsafe-swiftshader'];

export async function launch({ viewport = { width: 1400, height: 900 }, gpu = false } = {}) {
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), 'candlecast-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [...ARGS, ...(gpu ? GPU_ARGS : ['--disable-gpu'])],
    viewport,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Opens a page that records console errors and uncaught exceptions. */
export async function openPage(context, url) {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('pageerror', (err) => errors.push(String(err)));
  if (url) await page.goto(url);
  return { page, errors };
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/** Replaces the stored layout and reloads, so a test starts from known charts. */
export async function setLayout(page, charts, { theme } = {}) {
  await page.evaluate(
    ({ charts, theme }) => {
      localStorage.clear();
      localStorage.setItem('candlecast.layout.v1', JSON.stringify({ version: 1, charts }));
      if (theme) localStorage.setItem('candlecast.theme', theme);
    },
    { charts, theme },
  );
  await page.reload();
}

export function chartCfg(id, symbol, interval = '1m', extra = {}) {
  return { id, symbol, interval, sma: false, ema: false, ...extra };
}

/** Waits until the chart has bars and is live. */
export async function waitChartLive(page, chartId, timeout = 3000) {
  await page.waitForFunction(
    (id) => {
      const c = window.candlecast?.debug.charts().find((x) => x.id === id);
      return c && c.state === 'live' && c.barCount > 0;
    },
    chartId,
    { timeout },
  );
}

export async function chartInfo(page, chartId) {
  return page.evaluate((id) => window.candlecast.debug.charts().find((x) => x.id === id) ?? null, chartId);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
