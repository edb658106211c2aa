/**
 * Spreads chart repaints over animation frames.
 *
 * lightweight-charts repaints a chart's canvases in the frame after the chart is updated. Eight charts
 * at 10 updates/s each, updated as messages arrive, often all repaint in the same frame; with software
 * rendering that one frame becomes a long task. Charts ask for a flush here instead: each frame runs the
 * flushes of at most `perFrame` charts, oldest request first, so repaints are spread over frames, and a
 * chart that changed several times between two of its flushes is drawn once.
 */
export interface Flushable {
  flush(): void;
}

export type RequestFrame = (callback: () => void) => void;

export class FrameScheduler {
  /** Waiting charts, in request order (a Set keeps the first position of a repeated request). */
  private readonly waiting = new Set<Flushable>();
  private frameRequested = false;

  constructor(
    private readonly perFrame: number,
    private readonly requestFrame: RequestFrame = (cb) => requestAnimationFrame(() => cb()),
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
    this.requestFrame(() => this.runFrame());
  }

  private runFrame(): void {
    this.frameRequested = false;
    // Taken before flushing: a chart that asks again while flushing waits for a later frame.
    const due = [...this.waiting].slice(0, this.perFrame);
    for (const target of due) {
      this.waiting.delete(target);
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

/** Charts per frame: eight charts still get ≥ 15 flushes/s each at 60 frames/s, above their 10 updates/s. */
export const CHARTS_PER_FRAME = 2;

/** The scheduler every chart of the page shares. */
export const chartFrames = new FrameScheduler(CHARTS_PER_FRAME);
