/**
 * The browser tests' debug hooks (`window.candlecast.debug`, the charts' and panels' exposed parts) must
 * not ship: the production bundle (`npm run build`) is built here, in memory, and searched for the hooks'
 * names. The browser-test bundle (`npm run build:test`) is built too and must have every one of them, so a
 * renamed hook cannot make this check pass by no longer matching anything.
 */
import { describe, expect, it } from 'vitest';
import { build, type Rollup } from 'vite';

/** frontend/, where vite.config.ts is (no Node typings in this project: the URL's path is enough). */
const root = decodeURIComponent(new URL('..', import.meta.url).pathname);

/**
 * Property names only the debug hooks use. Property names survive minification (function and variable
 * names do not), so these are what a production bundle that still carried the hooks would show.
 */
const DEBUG_NAMES = [
  // window.candlecast.debug
  'drawingPixels',
  'scrollBars',
  'flushCount',
  'connectionState',
  // a chart's debug figures (debug.ts)
  'healthDetail',
  'shownMarkers',
  'changeReference',
  'visibleLogicalRange',
  // a server indicator's and the backtest panel's
  'equityPoints',
  'tradeTimes',
];

/** Debug methods of earlier builds (ChartView.inspect, ServerIndicator/BacktestPanel.debugInfo): gone for good. */
const RETIRED_NAMES = ['inspect', 'debugInfo'];

async function bundleText(mode: 'production' | 'browsertest'): Promise<string> {
  const out = await build({
    root,
    mode,
    logLevel: 'silent',
    build: { write: false, minify: true },
  });
  const outputs = (Array.isArray(out) ? out : [out]) as Rollup.RollupOutput[];
  return outputs
    .flatMap((o) => o.output)
    .map((f) => (f.type === 'chunk' ? f.code : ''))
    .join('\n');
}

/** The names of `names` found in `code` as a property or method (`name:`, `.name`, `name(`). */
function found(code: string, names: readonly string[]): string[] {
  return names.filter((n) => new RegExp(`(\\.${n}\\b|\\b${n}\\s*[:(])`).test(code));
}

describe('debug hooks', () => {
  // Two real Vite builds: minutes, not seconds, on a loaded machine; this is a ceiling, not a measure.
  const BUILD_CEILING_MS = 300_000;

  it(
    'are in the browser-test bundle and nowhere in the production bundle',
    async () => {
      const testBundle = await bundleText('browsertest');
      expect(found(testBundle, DEBUG_NAMES)).toEqual(DEBUG_NAMES);
      const production = await bundleText('production');
      expect(found(production, [...DEBUG_NAMES, ...RETIRED_NAMES])).toEqual([]);
    },
    BUILD_CEILING_MS,
  );
});
