/**
 * Where the trader left the chart: its zoom and scroll position are stored in the layout once the chart
 * stops moving, put back after a reload (loading enough bars to reach them), and a "Live" button shows
 * while scrolled back. The arithmetic is viewport.ts; this is its timing and its calls on the time scale.
 */
import type { ITimeScaleApi, LogicalRange, Time } from 'lightweight-charts';
import type { Bar } from '../state/bars';
import type { ChartViewport } from '../state/layout';
import { barsToLoad, captureViewport, isScrolledBack, restoredScrollPosition } from './viewport';

/** Quiet time after the last move before the viewport is stored, ms (a drag moves it every frame). */
export const SAVE_AFTER_MS = 500;

export type TimeScale = Pick<
  ITimeScaleApi<Time>,
  'getVisibleLogicalRange' | 'scrollPosition' | 'options' | 'applyOptions' | 'scrollToPosition' | 'scrollToRealTime' | 'width'
>;

export interface ViewportDeps {
  timeScale: TimeScale;
  bars(): readonly Bar[];
  stepMs(): number;
  /** Only a live chart's view is worth storing (a loading one is about to move). */
  isLive(): boolean;
  /** The viewport stored in the layout now. */
  stored(): ChartViewport | undefined;
  save(view: ChartViewport): void;
  /** Scrolled back from the live edge, or back at it: the Live button shows or hides. */
  scrolledBack(back: boolean): void;
}

export class ViewportKeeper {
  private back = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  /** `restore`: the stored viewport to put back after the first load (a reload); used once. */
  constructor(
    private readonly deps: ViewportDeps,
    private restore: ChartViewport | undefined,
  ) {}

  /** Bars to ask for on the first load: at least `minimum`, more to reach a restored scroll position. */
  initialLimit(minimum: number): number {
    const ts = this.deps.timeScale;
    return barsToLoad(this.restore, Date.now(), this.deps.stepMs(), ts.width() / ts.options().barSpacing, minimum);
  }

  /** The first history is drawn: the zoom and scrolled-back position the trader left, else the live edge. */
  placeAfterLoad(): void {
    const ts = this.deps.timeScale;
    const restore = this.restore;
    this.restore = undefined;
    if (restore) ts.applyOptions({ barSpacing: restore.barSpacing });
    const position = restore ? restoredScrollPosition(restore, this.deps.bars(), this.deps.stepMs()) : null;
    if (position !== null) ts.scrollToPosition(position, false);
    else ts.scrollToRealTime();
  }

  rangeChanged(range: LogicalRange | null): void {
    if (!range || !this.deps.isLive()) return;
    const back = isScrolledBack(this.deps.timeScale.scrollPosition());
    if (back !== this.back) {
      this.back = back;
      this.deps.scrolledBack(back);
    }
    this.scheduleSave();
  }

  /**
   * The newest bars at the right edge, at once: scrollToRealTime animates, and a live update or a resize
   * during its animation leaves the view part of the way back.
   */
  backToLive(): void {
    const ts = this.deps.timeScale;
    ts.scrollToPosition(ts.options().rightOffset, false);
  }

  destroy(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private scheduleSave(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      const ts = this.deps.timeScale;
      const range = ts.getVisibleLogicalRange();
      if (!range || !this.deps.isLive()) return;
      const view = captureViewport(this.deps.bars(), this.deps.stepMs(), ts.options().barSpacing, ts.scrollPosition(), range.to);
      if (JSON.stringify(view) !== JSON.stringify(this.deps.stored())) this.deps.save(view);
    }, SAVE_AFTER_MS);
  }
}
