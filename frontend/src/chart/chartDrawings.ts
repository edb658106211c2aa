/**
 * The drawings part of one chart: the primitive that paints them, the controller that edits them, and
 * the mapping between their (time, price) anchors and the chart's pixels. Anchors are times, not bar
 * numbers: a point between two bars (or past the last one) is placed by interpolating between the bars'
 * times (or extrapolating by the interval), so a line drawn on 1m lands on the same instant on 5m or 1h.
 * The list is the symbol's (SymbolDrawings), shared with every other chart of that symbol.
 */
import type { IChartApi, ISeriesApi } from 'lightweight-charts';
import { DrawingController } from '../drawings/controller';
import type { Drawing, DrawingKind } from '../drawings/model';
import { DrawingsPrimitive } from '../drawings/primitive';
import type { SymbolDrawings } from '../drawings/symbolDrawings';
import { logicalToTime, logicalToX, timeToLogical, xToLogical } from '../drawings/timeMap';
import type { ScreenDrawing } from '../drawings/geometry';
import type { Bar } from '../state/bars';
import type { Palette } from '../theme';
import { TEST_BUILD, exposeForTests } from '../testBuild';

/** What the browser tests read of a chart's drawings (test builds only, see ../testBuild.ts). */
export interface DrawingParts {
  /** Each drawing as painted now, in pixels inside the chart host. */
  screen: ScreenDrawing[];
}

export interface DrawingSurface {
  host: HTMLElement;
  chart: IChartApi;
  candles: ISeriesApi<'Candlestick'>;
  bars(): readonly Bar[];
  stepMs(): number;
  formatPrice(p: number): string;
  /** Tool or selection changed. */
  onUiChange(tool: DrawingKind | null, hasSelection: boolean): void;
}

export class ChartDrawings {
  private readonly primitive: DrawingsPrimitive;
  private readonly controller: DrawingController;
  private symbol: string;
  private unwatch: () => void = () => {};
  private readonly onOthersChange = (list: Drawing[]) => this.controller.replaceAll(list);

  constructor(
    private readonly surface: DrawingSurface,
    private readonly store: SymbolDrawings,
    symbol: string,
    palette: Palette,
  ) {
    const { chart, candles, host } = surface;
    this.symbol = symbol;
    this.primitive = new DrawingsPrimitive((d) => this.project(d), palette, (p) => surface.formatPrice(p), () => chart.timeScale().width());
    candles.attachPrimitive(this.primitive);
    if (TEST_BUILD) {
      // Where each drawing is painted now: the browser tests compare it with the bars' times.
      exposeForTests(this, (): DrawingParts => ({
        screen: this.controller.list().map((d) => this.project(d)).filter((s): s is ScreenDrawing => s !== null),
      }));
    }
    this.controller = new DrawingController(
      {
        element: host,
        toAnchor: (p) => {
          const ts = chart.timeScale();
          const logical = xToLogical(p.x, (x) => ts.coordinateToLogical(x), (i) => ts.logicalToCoordinate(i as never));
          const price = candles.coordinateToPrice(p.y);
          if (logical === null || price === null) return null;
          const time = logicalToTime(surface.bars(), surface.stepMs(), logical);
          return time === null ? null : { time: Math.round(time), price };
        },
        paneSize: () => ({ width: chart.timeScale().width(), height: chart.panes()[0]?.getHeight() ?? 0 }),
        setChartInteractive: (on) => chart.applyOptions({ handleScroll: on, handleScale: on }),
        onChange: (list) => this.store.set(this.symbol, list, this.onOthersChange),
        onUiChange: () => surface.onUiChange(this.controller.currentTool, this.controller.selected !== null),
      },
      this.primitive,
      store.get(symbol),
    );
    this.unwatch = store.watch(symbol, this.onOthersChange);
    surface.onUiChange(null, false);
  }

  get currentTool(): DrawingKind | null {
    return this.controller.currentTool;
  }

  list(): readonly Drawing[] {
    return this.controller.list();
  }

  /** The chart shows another symbol: show that symbol's drawings. */
  setSymbol(symbol: string): void {
    if (symbol === this.symbol) return;
    this.unwatch();
    this.symbol = symbol;
    this.controller.setTool(null);
    this.controller.replaceAll(this.store.get(symbol));
    this.unwatch = this.store.watch(symbol, this.onOthersChange);
  }

  toggleTool(kind: DrawingKind): void {
    this.controller.setTool(this.controller.currentTool === kind ? null : kind);
  }

  deleteSelected(): void {
    this.controller.deleteSelected();
  }

  setPalette(p: Palette): void {
    this.primitive.setPalette(p);
  }

  /** Bars changed under the drawings (history, scroll-back): repaint at the new positions. */
  render(): void {
    this.controller.render();
  }

  destroy(): void {
    this.unwatch();
    this.controller.destroy();
  }

  /** Pixel x of a time (ms) on this chart: fractional between bars, extrapolated past either end. */
  timeToX(time: number): number | null {
    const logical = timeToLogical(this.surface.bars(), this.surface.stepMs(), time);
    const ts = this.surface.chart.timeScale();
    return logical === null ? null : logicalToX(logical, (i) => ts.logicalToCoordinate(i as never));
  }

  private project(d: Drawing): ScreenDrawing | null {
    const points: Array<{ x: number; y: number }> = [];
    for (const a of d.points) {
      const y = this.surface.candles.priceToCoordinate(a.price);
      if (y === null) return null;
      if (d.kind === 'hline') {
        points.push({ x: 0, y });
        continue;
      }
      const x = this.timeToX(a.time);
      if (x === null) return null;
      points.push({ x, y });
    }
    return { id: d.id, kind: d.kind, points, prices: d.points.map((a) => a.price) };
  }
}
