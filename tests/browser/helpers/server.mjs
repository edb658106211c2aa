// Starts the real candlecast server for a test file and stops it afterwards.
// Binary: $CANDLECAST_BIN, default target/debug/candlecast under the repo root.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/**
 * The test build of the dashboard (`npm run build:test`, Vite mode `browsertest`): the production build
 * without the `window.candlecast.debug` hooks these tests read.
 */
export const DIST_DIR = path.join(REPO_ROOT, 'frontend', 'dist-test');
const SRC_DIR = path.join(REPO_ROOT, 'frontend', 'src');

/** Newest modification time under `dir` (ms). */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const LISTENING = /candlecast listening on (http:\/\/[^\s]+)/;
const START_TIMEOUT_MS = 30_000;

function binaryPath() {
  const bin = process.env.CANDLECAST_BIN ?? 'target/debug/candlecast';
  return path.isAbsolute(bin) ? bin : path.join(REPO_ROOT, bin);
}

/**
 * Starts the server on `port` (0 = a free one) and resolves once it prints
 * its listening line. Returns { url, port, stop(), output() }.
 */
export async function startServer({ port = 0, env = {}, dataDir: keptDir } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`candlecast binary not found at ${bin}: run \`cargo build --bin candlecast\` or set CANDLECAST_BIN`);
  const index = path.join(DIST_DIR, 'index.html');
  if (!existsSync(index)) {
    throw new Error(`${index} missing: run \`cd frontend && npm ci && npm run build:test\``);
  }
  // Testing an old bundle proves nothing about the sources.
  if (existsSync(SRC_DIR) && newest(SRC_DIR) > statSync(index).mtimeMs) {
    throw new Error(`${DIST_DIR} is older than frontend/src: run \`cd frontend && npm run build:test\``);
  }
  // Each server keeps its stored history in a directory of its own (test files run side by side).
  // A `dataDir` the caller passes outlives the server (a restart test starts a second one on it).
  const dataDir = keptDir ?? mkdtempSync(path.join(os.tmpdir(), 'candlecast-browser-'));
  const child = spawn(bin, [], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      CANDLECAST__STORE__PATH: dataDir,
      CANDLECAST__SERVER__HOST: '127.0.0.1',
      CANDLECAST__SERVER__PORT: String(port),
      CANDLECAST__SERVER__STATIC_DIR: DIST_DIR,
      // Enough trades that every topic ticks several times a second.
      CANDLECAST__FEED__SIMULATED__TRADES_PER_SECOND: '50',
      // Four days of simulated history, 1s bars for the last hour: over 1,000 bars for every chart the tests
      // open, and scroll-back room. The default 7 days keep a debug server writing its store at a full core
      // for over a minute after the start (81 s of CPU in its first 90 s), half of this machine taken from the browser.
      CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS: '4',
      CANDLECAST__FEED__SIMULATED__BACKFILL_FINE_HOURS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${START_TIMEOUT_MS} ms:\n${log}`)), START_TIMEOUT_MS);
    const onData = (chunk) => {
      log += chunk;
      const m = LISTENING.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', (c) => {
      log += c;
      if (log.length > 200_000) log = log.slice(-100_000);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${signal}):\n${log}`));
    });
  });
  // Keep draining stdout so the server never blocks on a full pipe.
  child.stdout.removeAllListeners('data');
  child.stdout.on('data', (c) => {
    log += c;
    if (log.length > 200_000) log = log.slice(-100_000);
  });
  return {
    url,
    port: Number(new URL(url).port),
    /** The server's process id (tests pause it with SIGSTOP to make its streams go silent). */
    pid: child.pid,
    output: () => log,
    /** SIGTERM, then SIGKILL after `graceMs` (a restart test lets the store flush). */
    async stop({ graceMs = 5000 } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      if (!keptDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
