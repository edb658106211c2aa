/**
 * Pointer and keyboard handling for one chart's drawings: create with
 * clicks, select, drag (whole drawing or one handle), delete. Events are
 * caught in the capture phase on the chart's host element so that, when a
 * drawing is being created or dragged, the chart itself does not also pan.
 */
import { Point, hitTestAll } from './geometry';
import { Anchor, Drawing, DrawingKind, anchorCount, moveAnchor, newDrawingId, translateDrawing } from './model';
import type { DrawingsPrimitive } from './primitive';

export interface ControllerHost {
  /** The element the chart was created in. */
  element: HTMLElement;
  /** Pixel → (time, price) in the main pane; null outside it. */
  toAnchor(p: Point): Anchor | null;
  /** Size of the main price pane (without the price axis and volume pane). */
  paneSize(): { width: number; height: number };
  /** Turns the chart's own scroll/zoom handling off while we drag. */
  setChartInteractive(on: boolean): void;
  /** Drawings changed by the user: persist them. */
  onChange(drawings: Drawing[]): void;
  /** Tool or selection changed: update the toolbar. */
  onUiChange(): void;
}

interface DragState {
  pointerId: number;
  start: Anchor;
  original: Drawing;
  part: 'anchor' | 'body';
  index: number;
  moved: boolean;
}

/** The one controller whose selection the Delete key acts on. */
let activeController: DrawingController | null = null;
let keyListenerInstalled = false;

function installKeyListener(): void {
  if (keyListenerInstalled) return;
  keyListenerInstalled = true;
  document.addEventListener('keydown', (ev) => {
    const t = ev.target as HTMLElement | null;
    // Typing a symbol must not delete a drawing.
    if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    if (ev.key === 'Escape') activeController?.cancel();
    if ((ev.key === 'Delete' || ev.key === 'Backspace') && activeController?.deleteSelected()) ev.preventDefault();
  });
}

export class DrawingController {
  private drawings: Drawing[];
  private selectedId: string | null = null;
  private tool: DrawingKind | null = null;
  private pendingAnchors: Anchor[] = [];
  private preview: Drawing | null = null;
  private drag: DragState | null = null;
  /** Set on pointerdown when we own the gesture, so mousedown/touchstart are swallowed too. */
  private consuming = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly host: ControllerHost,
    private readonly primitive: DrawingsPrimitive,
    initial: Drawing[],
  ) {
    this.drawings = initial;
    installKeyListener();
    const el = host.element;
    const opts = { capture: true, signal: this.abort.signal };
    el.addEventListener('pointerdown', (e) => this.onPointerDown(e), opts);
    el.addEventListener('pointermove', (e) => this.onHover(e), { signal: this.abort.signal });
    for (const type of ['mousedown', 'touchstart'] as const) {
      el.addEventListener(type, (e) => this.consuming && e.stopPropagation(), opts);
    }
    window.addEventListener('pointermove', (e) => this.onDragMove(e), { signal: this.abort.signal });
    window.addEventListener('pointerup', (e) => this.onPointerUp(e), { signal: this.abort.signal });
    window.addEventListener('pointercancel', (e) => this.onPointerUp(e), { signal: this.abort.signal });
    this.render();
  }

  destroy(): void {
    this.abort.abort();
    if (activeController === this) activeController = null;
  }

  get currentTool(): DrawingKind | null {
    return this.tool;
  }

  get selected(): string | null {
    return this.selectedId;
  }

  list(): readonly Drawing[] {
    return this.drawings;
  }

  setTool(tool: DrawingKind | null): void {
    this.tool = tool;
    this.pendingAnchors = [];
    this.preview = null;
    if (tool) this.select(null);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the one controller that owns the keyboard, module-wide
    activeController = this;
    this.render();
    this.host.onUiChange();
  }

  /** Escape: abandon a half-made drawing and leave the tool. */
  cancel(): void {
    if (this.tool || this.pendingAnchors.length) this.setTool(null);
    else this.select(null);
  }

  deleteSelected(): boolean {
    if (!this.selectedId) return false;
    const id = this.selectedId;
    this.drawings = this.drawings.filter((d) => d.id !== id);
    this.select(null);
    this.host.onChange(this.drawings);
    return true;
  }

  replaceAll(drawings: Drawing[]): void {
    this.drawings = drawings;
    this.selectedId = null;
    this.render();
  }

  /** Chart re-laid out (data prepended, theme): repaint at new positions. */
  render(): void {
    this.primitive.setState(this.drawings, this.selectedId, this.preview);
  }

  private select(id: string | null): void {
    this.selectedId = id;
    if (id) {
      if (activeController && activeController !== this) activeController.select(null);
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- the one controller that owns the keyboard, module-wide
      activeController = this;
    }
    this.render();
    this.host.onUiChange();
  }

  private localPoint(e: PointerEvent): Point {
    const rect = this.host.element.getBoundingClientRect();
    return { x: e.clientX - rect.left, y: e.clientY - rect.top };
  }

  private inPane(p: Point): boolean {
    const { width, height } = this.host.paneSize();
    return p.x >= 0 && p.y >= 0 && p.x <= width && p.y <= height;
  }

  private swallow(e: PointerEvent): void {
    this.consuming = true;
    e.stopPropagation();
    e.preventDefault();
  }

  private onPointerDown(e: PointerEvent): void {
    this.consuming = false;
    if (e.button !== 0) return;
    const p = this.localPoint(e);
    if (!this.inPane(p)) return;
    if (this.tool) {
      const anchor = this.host.toAnchor(p);
      if (!anchor) return;
      this.swallow(e);
      this.pendingAnchors.push(anchor);
      if (this.pendingAnchors.length >= anchorCount(this.tool)) this.finishCreate();
      else this.updatePreview(anchor);
      return;
    }
    const hit = hitTestAll(this.primitive.screenDrawings(), p, this.host.paneSize().width);
    if (!hit) {
      if (this.selectedId) this.select(null);
      return; // let the chart pan
    }
    const original = this.drawings.find((d) => d.id === hit.id);
    const start = this.host.toAnchor(p);
    if (!original || !start) return;
    this.swallow(e);
    this.select(hit.id);
    this.drag = { pointerId: e.pointerId, start, original, part: hit.part, index: hit.index, moved: false };
    this.host.setChartInteractive(false);
  }

  private onHover(e: PointerEvent): void {
    if (!this.tool || this.pendingAnchors.length === 0) return;
    const anchor = this.host.toAnchor(this.localPoint(e));
    if (anchor) this.updatePreview(anchor);
  }

  private updatePreview(cursor: Anchor): void {
    if (!this.tool) return;
    const points = [...this.pendingAnchors, cursor].slice(0, anchorCount(this.tool));
    this.preview = { id: '__preview__', kind: this.tool, points };
    this.render();
  }

  private finishCreate(): void {
    if (!this.tool) return;
    const drawing: Drawing = { id: newDrawingId(), kind: this.tool, points: this.pendingAnchors.slice() };
    this.drawings = [...this.drawings, drawing];
    this.pendingAnchors = [];
    this.preview = null;
    this.tool = null; // one drawing per tool click, like most charting tools
    this.select(drawing.id);
    this.host.onChange(this.drawings);
  }

  private onDragMove(e: PointerEvent): void {
    const drag = this.drag;
    if (!drag || e.pointerId !== drag.pointerId) return;
    const now = this.host.toAnchor(this.localPoint(e));
    if (!now) return;
    drag.moved = true;
    const updated =
      drag.part === 'anchor'
        ? moveAnchor(drag.original, drag.index, now)
        : translateDrawing(drag.original, now.time - drag.start.time, now.price - drag.start.price);
    this.drawings = this.drawings.map((d) => (d.id === updated.id ? updated : d));
    this.render();
  }

  private onPointerUp(e: PointerEvent): void {
    this.consuming = false;
    const drag = this.drag;
    if (!drag || e.pointerId !== drag.pointerId) return;
    this.drag = null;
    this.host.setChartInteractive(true);
    if (drag.moved) this.host.onChange(this.drawings);
  }
}
