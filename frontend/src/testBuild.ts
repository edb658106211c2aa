/**
 * What only the browser-test build of the dashboard has (`npm run build:test`, Vite mode `browsertest`):
 * the parts of a chart or panel that the debug hooks (debug.ts) read. Production code registers them
 * behind `if (TEST_BUILD)`; Vite turns `import.meta.env.MODE` into a string literal, so in a production
 * build the condition is a constant `false` and Rollup drops the branch, its closure and this module.
 * productionBundle.test.ts checks that none of it ships.
 */

/** True in the browser-test build only. */
export const TEST_BUILD = import.meta.env.MODE === 'browsertest';

const exposed = new WeakMap<object, () => unknown>();

/** Lets the debug hooks read `owner`'s parts (call it only under `if (TEST_BUILD)`). */
export function exposeForTests<Parts>(owner: object, parts: () => Parts): void {
  exposed.set(owner, parts);
}

/**
 * The parts `owner` exposed, read now; undefined outside test builds. `Parts` is the type the owner's
 * module exports for them (ChartParts, IndicatorParts, …).
 */
export function exposedParts<Parts>(owner: object): Parts | undefined {
  return exposed.get(owner)?.() as Parts | undefined;
}
