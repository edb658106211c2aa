import { describe, expect, it } from 'vitest';
import { FrameScheduler, Flushable } from './frameScheduler';

/** A frame clock the test advances by hand. */
function fakeFrames() {
  const queued: Array<() => void> = [];
  return {
    request: (cb: () => void) => queued.push(cb),
    get queued() {
      return queued.length;
    },
    tick() {
      const cbs = queued.splice(0);
      cbs.forEach((cb) => cb());
    },
  };
}

function chart(log: string[], name: string): Flushable {
  return { flush: () => log.push(name) };
}

describe('FrameScheduler', () => {
  it('runs at most perFrame flushes per frame, oldest request first', () => {
    const frames = fakeFrames();
    const s = new FrameScheduler(2, frames.request);
    const log: string[] = [];
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((n) => chart(log, n));
    for (const x of [a, b, c, d, e]) s.request(x);
    expect(frames.queued).toBe(1);
    frames.tick();
    expect(log).toEqual(['a', 'b']);
    frames.tick();
    expect(log).toEqual(['a', 'b', 'c', 'd']);
    frames.tick();
    expect(log).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(frames.queued).toBe(0);
  });

  it('flushes a chart that asked several times once, keeping its place in the line', () => {
    const frames = fakeFrames();
    const s = new FrameScheduler(1, frames.request);
    const log: string[] = [];
    const [a, b] = ['a', 'b'].map((n) => chart(log, n));
    s.request(a);
    s.request(b);
    s.request(a);
    frames.tick();
    frames.tick();
    frames.tick();
    expect(log).toEqual(['a', 'b']);
  });

  it('drops cancelled requests and keeps going after a failing flush', () => {
    const frames = fakeFrames();
    const s = new FrameScheduler(3, frames.request);
    const log: string[] = [];
    const broken: Flushable = {
      flush: () => {
        throw new Error('boom');
      },
    };
    const [a, b] = ['a', 'b'].map((n) => chart(log, n));
    const quiet = console.error;
    console.error = () => {};
    try {
      s.request(broken);
      s.request(a);
      s.request(b);
      s.cancel(a);
      frames.tick();
    } finally {
      console.error = quiet;
    }
    expect(log).toEqual(['b']);
    expect(s.pending).toBe(0);
  });

  it('a request made during a flush lands in a later frame', () => {
    const frames = fakeFrames();
    const s = new FrameScheduler(2, frames.request);
    const log: string[] = [];
    const again: Flushable = {
      flush: () => {
        log.push('again');
        if (log.length < 3) s.request(again);
      },
    };
    s.request(again);
    frames.tick();
    expect(log).toEqual(['again']);
    frames.tick();
    frames.tick();
    expect(log).toEqual(['again', 'again', 'again']);
  });

  it('keeps frames that flush minGapMs apart, waiting with a timer rather than frame after frame', () => {
    const frames = fakeFrames();
    let now = 0;
    const timers: Array<{ at: number; cb: () => void }> = [];
    const s = new FrameScheduler(2, frames.request, 50, () => now, (cb, ms) => timers.push({ at: now + ms, cb }));
    const log: string[] = [];
    const [a, b, c] = ['a', 'b', 'c'].map((n) => chart(log, n));
    for (const x of [a, b, c]) s.request(x);
    frames.tick();
    expect(log).toEqual(['a', 'b']);
    // c waits for the gap on a timer: no frame is requested before then.
    expect(frames.queued).toBe(0);
    expect(timers.map((t) => t.at)).toEqual([50]);
    now = 50;
    timers.shift()!.cb();
    expect(frames.queued).toBe(1);
    frames.tick();
    expect(log).toEqual(['a', 'b', 'c']);
    expect(s.flushes).toBe(3);
    // Long after the last flush, a request gets the next frame at once.
    now = 500;
    s.request(a);
    expect(timers).toHaveLength(0);
    expect(frames.queued).toBe(1);
  });
});
