/**
 * Renders a chart's drawings as one lightweight-charts series primitive
 * (`series.attachPrimitive`). It only paints: geometry and hit tests live in
 * geometry.ts, pointer handling in controller.ts.
 */
import type {
  IPrimitivePaneRenderer,
  IPrimitivePaneView,
  ISeriesPrimitive,
  PrimitiveHoveredItem,
  SeriesAttachedParameter,
  Time,
} from 'lightweight-charts';
import type { Palette } from '../theme';
import { HANDLE_RADIUS_PX, ScreenDrawing, boxOf, fibScreenLevels, hitTestAll } from './geometry';
import type { Drawing } from './model';

type DrawTarget = Parameters<IPrimitivePaneRenderer['draw']>[0];

/** Maps stored anchors to pixels; null while the chart cannot place them yet. */
export type Projector = (d: Drawing) => ScreenDrawing | null;

interface Snapshot {
  items: ScreenDrawing[];
  selectedId: string | null;
  palette: Palette;
  formatPrice: (p: number) => string;
}

class DrawingsRenderer implements IPrimitivePaneRenderer {
  constructor(private readonly snap: Snapshot) {}

  draw(target: DrawTarget): void {
    target.useMediaCoordinateSpace(({ context: ctx, mediaSize }) => {
      const { palette, selectedId } = this.snap;
      for (const d of this.snap.items) {
        const selected = d.id === selectedId;
        const color = selected ? palette.drawingSelected : palette.drawing;
        ctx.save();
        ctx.strokeStyle = color;
        ctx.fillStyle = color;
        ctx.lineWidth = selected ? 2 : 1.5;
        ctx.font = '11px system-ui, sans-serif';
        switch (d.kind) {
          case 'trend':
            line(ctx, d.points[0].x, d.points[0].y, d.points[1].x, d.points[1].y);
            break;
          case 'hline': {
            const y = d.points[0].y;
            line(ctx, 0, y, mediaSize.width, y);
            ctx.textBaseline = 'bottom';
            ctx.fillText(this.snap.formatPrice(d.prices[0]), 4, y - 2);
            break;
          }
          case 'rect': {
            const b = boxOf(d.points[0], d.points[1]);
            ctx.fillStyle = palette.fill;
            ctx.fillRect(b.left, b.top, b.right - b.left, b.bottom - b.top);
            ctx.strokeRect(b.left, b.top, b.right - b.left, b.bottom - b.top);
            break;
          }
          case 'fib': {
            const left = Math.min(d.points[0].x, d.points[1].x);
            const right = Math.max(d.points[0].x, d.points[1].x, left + 40);
            ctx.setLineDash([4, 3]);
            line(ctx, d.points[0].x, d.points[0].y, d.points[1].x, d.points[1].y);
            ctx.setLineDash([]);
            ctx.textBaseline = 'bottom';
            fibScreenLevels(d).forEach(({ level, price, y }, i) => {
              ctx.strokeStyle = palette.fib[i % palette.fib.length];
              ctx.fillStyle = ctx.strokeStyle;
              line(ctx, left, y, right, y);
              ctx.fillText(`${level} (${this.snap.formatPrice(price)})`, left + 2, y - 2);
            });
            break;
          }
        }
        // Handles show what can be grabbed, only on the selected drawing.
        if (selected && d.kind !== 'hline') {
          for (const p of d.points) {
            ctx.beginPath();
            ctx.arc(p.x, p.y, HANDLE_RADIUS_PX, 0, Math.PI * 2);
            ctx.fillStyle = palette.background;
            ctx.fill();
            ctx.strokeStyle = color;
            ctx.lineWidth = 1.5;
            ctx.stroke();
          }
        }
        ctx.restore();
      }
    });
  }
}

function line(ctx: CanvasRenderingContext2D, x1: number, y1: number, x2: number, y2: number): void {
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x2, y2);
  ctx.stroke();
}

class DrawingsPaneView implements IPrimitivePaneView {
  constructor(private readonly owner: DrawingsPrimitive) {}

  zOrder(): 'top' {
    return 'top';
  }

  renderer(): IPrimitivePaneRenderer {
    return new DrawingsRenderer(this.owner.snapshot());
  }
}

export class DrawingsPrimitive implements ISeriesPrimitive<Time> {
  private drawings: Drawing[] = [];
  private preview: Drawing | null = null;
  private selectedId: string | null = null;
  private screen: ScreenDrawing[] = [];
  private requestUpdate: (() => void) | null = null;
  private readonly views = [new DrawingsPaneView(this)];
  private paneWidth = 0;

  constructor(
    private readonly project: Projector,
    private palette: Palette,
    private readonly formatPrice: (p: number) => string,
    private readonly width: () => number,
  ) {}

  attached(param: SeriesAttachedParameter<Time>): void {
    this.requestUpdate = param.requestUpdate;
  }

  detached(): void {
    this.requestUpdate = null;
  }

  /** Called by the library whenever the viewport changed: re-project. */
  updateAllViews(): void {
    this.reproject();
  }

  paneViews(): readonly IPrimitivePaneView[] {
    return this.views;
  }

  /** Lets the chart show a grab cursor over drawings. */
  hitTest(x: number, y: number): PrimitiveHoveredItem | null {
    const hit = hitTestAll(this.screen, { x, y }, this.paneWidth);
    if (!hit) return null;
    return {
      externalId: hit.id,
      zOrder: 'top',
      cursorStyle: hit.part === 'anchor' ? 'crosshair' : 'move',
      distance: hit.distance,
      itemType: 'primitive',
    };
  }

  setState(drawings: Drawing[], selectedId: string | null, preview: Drawing | null): void {
    this.drawings = drawings;
    this.selectedId = selectedId;
    this.preview = preview;
    this.reproject();
    this.requestUpdate?.();
  }

  setPalette(palette: Palette): void {
    this.palette = palette;
    this.requestUpdate?.();
  }

  /** Current screen geometry, used by the controller for its hit tests. */
  screenDrawings(): readonly ScreenDrawing[] {
    return this.screen;
  }

  snapshot(): Snapshot {
    return { items: this.screen, selectedId: this.selectedId, palette: this.palette, formatPrice: this.formatPrice };
  }

  private reproject(): void {
    this.paneWidth = this.width();
    const all = this.preview ? [...this.drawings, this.preview] : this.drawings;
    this.screen = all.map(this.project).filter((d): d is ScreenDrawing => d !== null);
  }
}
