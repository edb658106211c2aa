/**
 * Spreads chart repaints over animation frames, and keeps the frames that draw few.
 *
 * lightweight-charts repaints a chart's canvases in the frame after the chart is updated. Eight charts
 * at 10 updates/s each, updated as messages arrive, often all repaint in the same frame; with software
 * rendering that one frame becomes a long task. Charts ask for a flush here instead: a frame runs the
 * flushes of at most `perFrame` charts, oldest request first, and a chart that changed several times
 * between two of its flushes is drawn once.
 *
 * Frames that flush are also at least `minGapMs` apart. Every frame that changes anything ends in a
 * commit of the page's canvases to the compositor, which costs about as much as painting a chart (a
 * DevTools trace of eight live charts: ~6-8 ms per commit, ~1-2 ms per chart paint): flushing a few
 * charts every frame paid that commit 60 times a second. See docs/BENCHMARKS.md.
 */
export interface Flushable {
  flush(): void;
}

export type RequestFrame = (callback: () => void) => void;

export class FrameScheduler {
  /** Waiting charts, in request order (a Set keeps the first position of a repeated request). */
  private readonly waiting = new Set<Flushable>();
  private frameRequested = false;
  /** When the last frame that flushed anything ran (`now()` time); -Infinity before the first. */
  private lastFlush = Number.NEGATIVE_INFINITY;
  /** Flushes run so far (for the dashboard's debug figures). */
  flushes = 0;

  constructor(
    private readonly perFrame: number,
    private readonly requestFrame: RequestFrame = (cb) => requestAnimationFrame(() => cb()),
    /** Frames that flush are at least this far apart (ms); the frames between draw nothing new. */
    private readonly minGapMs = 0,
    private readonly now: () => number = () => performance.now(),
    private readonly delay: (callback: () => void, ms: number) => void = (cb, ms) => void setTimeout(cb, ms),
  ) {}

  /** Flushes `target` in a coming frame; a second request before then changes nothing. */
  request(target: Flushable): void {
    this.waiting.add(target);
    this.ensureFrame();
  }

  /** Forgets a pending request (the chart was removed or went off-screen). */
  cancel(target: Flushable): void {
    this.waiting.delete(target);
  }

  get pending(): number {
    return this.waiting.size;
  }

  private ensureFrame(): void {
    if (this.frameRequested || this.waiting.size === 0) return;
    this.frameRequested = true;
    // Waiting with a timer, not frame after frame: a frame that runs a callback is a frame to commit.
    const wait = this.lastFlush + this.minGapMs - this.now();
    if (wait > 0) this.delay(() => this.requestFrame(() => this.runFrame()), wait);
    else this.requestFrame(() => this.runFrame());
  }

  private runFrame(): void {
    this.frameRequested = false;
    this.lastFlush = this.now();
    // Taken before flushing: a chart that asks again while flushing waits for a later frame.
    const due = [...this.waiting].slice(0, this.perFrame);
    for (const target of due) {
      this.waiting.delete(target);
      this.flushes++;
      try {
        target.flush();
      } catch (e) {
        // One broken chart must not stop the others from drawing.
        console.error('chart flush failed', e);
      }
    }
    this.ensureFrame();
  }
}

/**
 * Four charts per frame, frames 50 ms apart: 80 chart flushes a second, what eight charts at 10 updates/s
 * need, in 20 frames. Measured against 1-3 charts per frame and 0-100 ms gaps in docs/BENCHMARKS.md.
 */
export const CHARTS_PER_FRAME = 4;
export const FLUSH_GAP_MS = 50;

/**
 * The scheduler every chart of the page shares. Its flushes run as timer tasks, not animation-frame
 * callbacks: lightweight-charts paints in the next animation frame anyway, and a flush run inside a frame
 * made that frame commit too (one more canvas commit per flush; 46 -> 36 commits/s in a trace).
 */
export const chartFrames = new FrameScheduler(CHARTS_PER_FRAME, (cb) => void setTimeout(cb, 0), FLUSH_GAP_MS);
