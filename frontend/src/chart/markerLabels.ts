/**
 * Text labels of a chart's trade and signal markers, drawn by the page instead of lightweight-charts
 * (which centres a marker's text on its bar, so the label of the newest bar ran under the price axis
 * and was cut off). The shapes stay lightweight-charts' markers; this series primitive writes each
 * label beside its shape, kept inside the pane: a label that would cross the right (or left) edge is
 * shifted in, and a label that would overlap one already placed on its side of the bars is skipped
 * (the shape still shows, and the nearer label wins).
 */
import type {
  IChartApi,
  IPrimitivePaneRenderer,
  IPrimitivePaneView,
  ISeriesApi,
  ISeriesPrimitive,
  SeriesAttachedParameter,
  SeriesType,
  Time,
  UTCTimestamp,
} from 'lightweight-charts';

/** Space kept between a label and the pane's edges, px. */
export const EDGE_PAD_PX = 2;
/** Vertical distance from the bar's high (above) or low (below) to the label's near edge, px. */
export const LABEL_OFFSET_PX = 20;
export const LABEL_HEIGHT_PX = 12;
const FONT = '11px system-ui, sans-serif';

export interface LabelInput {
  /** Open time of the marker's bar, s (the series' time). */
  time: UTCTimestamp;
  text: string;
  above: boolean;
  color: string;
}

/** The high and low of the bar opening at `timeMs`, read when drawing (the live bar keeps moving). */
export type BarRange = (timeMs: number) => { high: number; low: number } | undefined;

export interface PlacedLabel {
  text: string;
  left: number;
  top: number;
  width: number;
  height: number;
  color: string;
}

/** Left edge of a label of `width` centred on `centerX`, moved inside [pad, paneWidth - pad]. */
export function clampLabelLeft(centerX: number, width: number, paneWidth: number, pad = EDGE_PAD_PX): number {
  const left = centerX - width / 2;
  const max = paneWidth - pad - width;
  if (max < pad) return pad; // wider than the pane: start at its left edge
  return Math.min(Math.max(left, pad), max);
}

function overlaps(a: PlacedLabel, b: PlacedLabel): boolean {
  return a.left < b.left + b.width && b.left < a.left + a.width && a.top < b.top + b.height && b.top < a.top + a.height;
}

export interface ScreenLabel {
  text: string;
  x: number;
  /** y of the bar's high (above) or low (below). */
  y: number;
  above: boolean;
  width: number;
  color: string;
}

/**
 * Places labels (in any order) inside a pane of `paneWidth`: off-screen ones (bar outside the pane)
 * are left out, edges clamped, and of labels that would overlap the later one (newer, as markers come
 * sorted by time) is kept.
 */
export function placeLabels(labels: readonly ScreenLabel[], paneWidth: number): PlacedLabel[] {
  const placed: PlacedLabel[] = [];
  for (let i = labels.length - 1; i >= 0; i--) {
    const l = labels[i];
    if (!Number.isFinite(l.x) || !Number.isFinite(l.y) || l.x < 0 || l.x > paneWidth) continue;
    const top = l.above ? l.y - LABEL_OFFSET_PX - LABEL_HEIGHT_PX : l.y + LABEL_OFFSET_PX;
    const p: PlacedLabel = {
      text: l.text,
      left: clampLabelLeft(l.x, l.width, paneWidth),
      top,
      width: l.width,
      height: LABEL_HEIGHT_PX,
      color: l.color,
    };
    if (placed.some((q) => overlaps(p, q))) continue;
    placed.push(p);
  }
  return placed.reverse();
}

class LabelsRenderer implements IPrimitivePaneRenderer {
  constructor(private readonly owner: MarkerLabels) {}

  draw(target: Parameters<IPrimitivePaneRenderer['draw']>[0]): void {
    target.useMediaCoordinateSpace(({ context: ctx, mediaSize }) => {
      ctx.font = FONT;
      const placed = this.owner.layout(mediaSize.width, (t) => ctx.measureText(t).width);
      ctx.textBaseline = 'top';
      for (const p of placed) {
        ctx.fillStyle = p.color;
        ctx.fillText(p.text, p.left, p.top);
      }
    });
  }
}

class LabelsPaneView implements IPrimitivePaneView {
  private readonly r: LabelsRenderer;
  constructor(owner: MarkerLabels) {
    this.r = new LabelsRenderer(owner);
  }
  zOrder(): 'top' {
    return 'top';
  }
  renderer(): IPrimitivePaneRenderer {
    return this.r;
  }
}

export class MarkerLabels implements ISeriesPrimitive<Time> {
  private labels: LabelInput[] = [];
  private chart: IChartApi | null = null;
  private series: ISeriesApi<SeriesType> | null = null;
  private requestUpdate: (() => void) | null = null;
  private readonly views = [new LabelsPaneView(this)];
  private readonly widths = new Map<string, number>();
  /** What the last frame drew, with the pane's width (read by the browser tests). */
  lastDrawn: { paneWidth: number; labels: PlacedLabel[] } = { paneWidth: 0, labels: [] };

  constructor(private readonly barRange: BarRange) {}

  attached(param: SeriesAttachedParameter<Time>): void {
    this.chart = param.chart;
    this.series = param.series;
    this.requestUpdate = param.requestUpdate;
  }

  detached(): void {
    this.chart = this.series = this.requestUpdate = null;
  }

  paneViews(): readonly IPrimitivePaneView[] {
    return this.views;
  }

  set(labels: LabelInput[]): void {
    this.labels = labels;
    this.requestUpdate?.();
  }

  /** Screen positions of the labels now, placed inside the pane. */
  layout(paneWidth: number, measure: (text: string) => number): PlacedLabel[] {
    const chart = this.chart;
    const series = this.series;
    if (!chart || !series || this.labels.length === 0) {
      this.lastDrawn = { paneWidth, labels: [] };
      return [];
    }
    const ts = chart.timeScale();
    const screen: ScreenLabel[] = [];
    for (const l of this.labels) {
      const x = ts.timeToCoordinate(l.time);
      if (x === null || x < 0 || x > paneWidth) continue;
      const bar = this.barRange(l.time * 1000);
      if (!bar) continue;
      const y = series.priceToCoordinate(l.above ? bar.high : bar.low);
      if (y === null) continue;
      let width = this.widths.get(l.text);
      if (width === undefined) {
        width = measure(l.text);
        if (this.widths.size > 2000) this.widths.clear();
        this.widths.set(l.text, width);
      }
      screen.push({ text: l.text, x, y, above: l.above, width, color: l.color });
    }
    const placed = placeLabels(screen, paneWidth);
    this.lastDrawn = { paneWidth, labels: placed };
    return placed;
  }
}
