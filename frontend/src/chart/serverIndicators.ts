/**
 * Server-computed indicators drawn on one chart (subscribe_indicator): the
 * history reply first, then live values, where `closed:false` previews replace
 * each other on the forming bar and `closed:true` finals settle it. Which
 * series and which pane is decided from the values' output fields
 * (state/indicatorPlot.ts), so the series are made when the first value lands.
 */
import {
  HistogramData,
  HistogramSeries,
  IChartApi,
  IPriceLine,
  ISeriesApi,
  LineData,
  LineSeries,
  LineStyle,
  Time,
  UTCTimestamp,
  WhitespaceData,
} from 'lightweight-charts';
import type { RequestError } from '../net/connection';
import type { StreamHub } from '../net/streams';
import { indicatorLabel } from '../state/catalog';
import type { Interval } from '../state/intervals';
import type { IndicatorConfig } from '../state/layout';
import { IndicatorPlot, IndicatorPoints, PlotLine, TimedPoint, fieldValue, outputFields, plotFor } from '../state/indicatorPlot';
import type { Palette } from '../theme';
import { TEST_BUILD, exposeForTests } from '../testBuild';

/** Values asked for with the subscription: as many as a chart's first page of bars. */
export const INDICATOR_HISTORY = 1000;
/** Height share of an indicator pane, against 1 for the price pane and 0.3 for volume. */
const PANE_STRETCH = 0.45;

/** What the browser tests read of an indicator (test builds only, see ../testBuild.ts). */
export interface IndicatorParts {
  id: string;
  name: string;
  params: IndicatorConfig['params'];
  label: string;
  /** Values received. */
  points: number;
  last: TimedPoint | null;
  /** The pane its first series is in; null before the first value. */
  pane: number | null;
  /** The value fields it draws. */
  series: string[];
  error: string | null;
}

type AnySeries = ISeriesApi<'Line'> | ISeriesApi<'Histogram'>;

export class ServerIndicator {
  readonly label: string;
  private readonly points = new IndicatorPoints();
  private plot: IndicatorPlot | null = null;
  private series: Array<{ line: PlotLine; api: AnySeries }> = [];
  private levels: IPriceLine[] = [];
  private minTime = -Infinity;
  private readonly close: () => void;
  /** Why the server refused it, if it did. */
  error: string | null = null;

  constructor(
    private readonly chart: IChartApi,
    hub: StreamHub,
    readonly cfg: IndicatorConfig,
    symbol: string,
    interval: Interval,
    /** Which of the palette's indicator colours is this one's. */
    readonly colorSlot: number,
    private palette: Palette,
    private readonly onLayout: () => void,
    onError: (ind: ServerIndicator, err: RequestError) => void,
  ) {
    this.label = indicatorLabel(cfg.name, cfg.params);
    if (TEST_BUILD) {
      exposeForTests(this, (): IndicatorParts => ({
        id: this.cfg.id,
        name: this.cfg.name,
        params: this.cfg.params,
        label: this.label,
        points: this.points.length,
        last: this.points.points[this.points.length - 1] ?? null,
        pane: this.series[0] ? this.series[0].api.getPane().paneIndex() : null,
        series: this.series.map((s) => s.line.field),
        error: this.error,
      }));
    }
    this.close = hub.openIndicator(symbol, interval, cfg.name, cfg.params, INDICATOR_HISTORY, {
      onHistory: (items) => {
        this.points.mergeHistory(items);
        this.renderAll();
      },
      onLive: (item) => this.onLive(item),
      onError: (err) => {
        this.error = err.message;
        onError(this, err);
      },
    });
  }

  /** The colour of its first line (menu chips use it). */
  get color(): string {
    return this.colorFor(0);
  }

  get pane(): 'price' | 'separate' | null {
    return this.plot?.pane ?? null;
  }

  /** Hides values older than the chart's first bar, so they never widen the time scale. */
  setMinTime(t: number): void {
    if (t === this.minTime) return;
    this.minTime = t;
    this.renderAll();
  }

  setPalette(p: Palette): void {
    this.palette = p;
    for (const { line, api } of this.series) api.applyOptions({ color: this.colorFor(line.shade) });
    for (const l of this.levels) l.applyOptions({ color: p.level });
    this.renderAll(); // per-point colours (histogram, SuperTrend) depend on the palette
  }

  destroy(): void {
    this.close();
    for (const { api } of this.series) this.chart.removeSeries(api);
    this.series = [];
    this.levels = [];
  }

  /**
   * Its values at a bar's open time (ms), one per plotted line, or at its newest point when `time` is
   * null (the legend); null when it has none there.
   */
  valuesAt(time: number | null): number[] | null {
    const pts = this.points.points;
    if (!this.plot || pts.length === 0) return null;
    let p = pts[pts.length - 1];
    if (time !== null) {
      let lo = 0;
      let hi = pts.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (pts[mid].timestamp < time) lo = mid + 1;
        else hi = mid;
      }
      if (pts[lo]?.timestamp !== time) return null;
      p = pts[lo];
    }
    const values = this.plot.lines.map((l) => fieldValue(p, l.field));
    return values.every((v) => v === undefined) ? null : values.map((v) => v ?? NaN);
  }

  private onLive(item: unknown): void {
    const outcome = this.points.upsert(item);
    if (outcome === 'ignored') return;
    if (!this.plot || outcome === 'insert') {
      this.renderAll();
      return;
    }
    const p = this.points.points[this.points.length - 1];
    if (p.timestamp < this.minTime) return;
    for (const { line, api } of this.series) (api as ISeriesApi<'Line'>).update(this.toData(p, line) as LineData<Time>);
  }

  private renderAll(): void {
    if (!this.ensureSeries()) return;
    const visible = this.points.points.filter((p) => p.timestamp >= this.minTime);
    for (const { line, api } of this.series) {
      (api as ISeriesApi<'Line'>).setData(visible.map((p) => this.toData(p, line)) as LineData<Time>[]);
    }
  }

  /** Creates the series from the first value's output fields; false while there is none. */
  private ensureSeries(): boolean {
    if (this.plot) return true;
    const first = this.points.points[0];
    if (!first) return false;
    this.plot = plotFor(this.cfg.name, outputFields(first));
    let paneIndex = this.plot.pane === 'price' ? 0 : this.chart.panes().length;
    for (const line of this.plot.lines) {
      const common = {
        color: this.colorFor(line.shade),
        priceLineVisible: false,
        // A separate pane has its own scale: its last value is worth reading there.
        lastValueVisible: this.plot.pane === 'separate',
        title: this.plot.pane === 'separate' && line === this.plot.lines[0] ? this.label : '',
      };
      const api: AnySeries =
        line.style === 'histogram'
          ? this.chart.addSeries(HistogramSeries, common, paneIndex)
          : this.chart.addSeries(
              LineSeries,
              { ...common, lineWidth: 2, lineStyle: line.dashed ? LineStyle.Dashed : LineStyle.Solid, crosshairMarkerVisible: false },
              paneIndex,
            );
      // Later series of this indicator share the pane the first one got.
      paneIndex = api.getPane().paneIndex();
      this.series.push({ line, api });
    }
    if (this.plot.pane === 'separate') this.series[0]?.api.getPane().setStretchFactor(PANE_STRETCH);
    const main = this.series.find((s) => s.line.style === 'line')?.api;
    if (main) {
      this.levels = this.plot.levels.map((price) =>
        main.createPriceLine({ price, color: this.palette.level, lineWidth: 1, lineStyle: LineStyle.Dashed, axisLabelVisible: false, title: '' }),
      );
    }
    this.onLayout();
    return true;
  }

  private colorFor(shade: number): string {
    const list = this.palette.indicators;
    return list[(this.colorSlot + shade) % list.length];
  }

  private toData(p: TimedPoint, line: PlotLine): LineData<Time> | HistogramData<Time> | WhitespaceData<Time> {
    const time = (p.timestamp / 1000) as UTCTimestamp;
    const value = fieldValue(p, line.field);
    if (value === undefined) return { time };
    if (line.style === 'histogram') {
      return { time, value, color: value >= 0 ? this.palette.volumeUp : this.palette.volumeDown };
    }
    if (this.plot?.colorByDirection && typeof p.direction === 'string') {
      return { time, value, color: p.direction === 'up' ? this.palette.up : this.palette.down };
    }
    return { time, value };
  }
}
