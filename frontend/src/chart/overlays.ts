/**
 * SMA/EMA overlay lines of one chart, computed from the bars it has loaded.
 * A full pass runs when the bars are replaced; live ticks only touch the last
 * point (O(period) for the SMA, O(1) for the EMA).
 */
import { IChartApi, ISeriesApi, LineSeries, LineData, UTCTimestamp, WhitespaceData } from 'lightweight-charts';
import type { Bar } from '../state/bars';
import { ema, emaNext, sma, smaLast } from '../state/indicators';

export const SMA_PERIOD = 20;
export const EMA_PERIOD = 50;

type Kind = 'sma' | 'ema';

function toLine(bars: readonly Bar[], values: Array<number | undefined>): Array<LineData | WhitespaceData> {
  return bars.map((b, i) => {
    const time = (b.timestamp / 1000) as UTCTimestamp;
    const v = values[i];
    return v === undefined ? { time } : { time, value: v };
  });
}

export class Overlay {
  private series: ISeriesApi<'Line'> | null = null;
  /** EMA values aligned with the bars, so a tick can step from the previous one. */
  private emaValues: Array<number | undefined> = [];

  constructor(
    private readonly chart: IChartApi,
    readonly kind: Kind,
    private color: string,
  ) {}

  get enabled(): boolean {
    return this.series !== null;
  }

  get period(): number {
    return this.kind === 'sma' ? SMA_PERIOD : EMA_PERIOD;
  }

  enable(bars: readonly Bar[]): void {
    if (!this.series) {
      this.series = this.chart.addSeries(
        LineSeries,
        {
          color: this.color,
          lineWidth: 2,
          priceLineVisible: false,
          lastValueVisible: false,
          crosshairMarkerVisible: false,
          title: `${this.kind.toUpperCase()} ${this.period}`,
        },
        0,
      );
    }
    this.reset(bars);
  }

  /** Its value on the bar at `index` of the series' bars (the legend); undefined before it has one. */
  valueAt(index: number): number | undefined {
    const d = this.series?.dataByIndex(index);
    return d && 'value' in d ? d.value : undefined;
  }

  /** The colour its line is drawn in. */
  get lineColor(): string {
    return this.color;
  }

  disable(): void {
    if (this.series) this.chart.removeSeries(this.series);
    this.series = null;
    this.emaValues = [];
  }

  setColor(color: string): void {
    this.color = color;
    this.series?.applyOptions({ color });
  }

  /** Full recomputation (history loaded, prepended, or corrected). */
  reset(bars: readonly Bar[]): void {
    if (!this.series) return;
    const closes = bars.map((b) => b.close);
    const values = this.kind === 'sma' ? sma(closes, this.period) : ema(closes, this.period);
    if (this.kind === 'ema') this.emaValues = values;
    this.series.setData(toLine(bars, values));
  }

  /** The last bar was appended or changed. */
  updateLast(bars: readonly Bar[], appended: boolean): void {
    if (!this.series) return;
    const n = bars.length;
    const last = bars[n - 1];
    let value: number | undefined;
    if (this.kind === 'sma') {
      value = smaLast(bars.slice(Math.max(0, n - this.period)).map((b) => b.close), this.period);
    } else {
      if (appended) this.emaValues.push(undefined);
      const prev = this.emaValues[n - 2];
      value = prev === undefined ? undefined : emaNext(prev, last.close, this.period);
      this.emaValues[n - 1] = value;
      if (value === undefined && n >= this.period) {
        // Not enough history when enabled: recompute once the period is reached.
        this.reset(bars);
        return;
      }
    }
    const time = (last.timestamp / 1000) as UTCTimestamp;
    this.series.update(value === undefined ? { time } : { time, value });
  }
}
