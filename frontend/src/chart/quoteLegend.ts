/**
 * The chart's numbers in words: the header's last price and change over 24 h, and the legend's OHLCV
 * with each overlay's and indicator's value at the bar under the crosshair (the newest bar otherwise).
 * Both are DOM, so live ticks update them at most once per frame.
 */
import type { MouseEventParams, Time } from 'lightweight-charts';
import { Bar, BarSeries, lowerBound } from '../state/bars';
import { changePercent, formatPercent, formatPrice } from './format';
import { LegendStudy, renderLegend } from './presentation';

export type Direction = 'up' | 'down' | 'flat';

/** The header's quote: the last close, its change against the reference price, and which way it went. */
export function quoteOf(last: Bar | undefined, reference: number | undefined, precision: number): { price: string; change: string; direction: Direction } {
  if (!last) return { price: '—', change: '—', direction: 'flat' };
  const pct = changePercent(last.close, reference);
  const direction = pct === null || pct === 0 ? 'flat' : pct > 0 ? 'up' : 'down';
  return { price: formatPrice(last.close, precision), change: formatPercent(pct), direction };
}

/** What the legend needs of an SMA/EMA overlay (overlays.ts). */
export interface OverlayStudy {
  readonly enabled: boolean;
  readonly kind: string;
  readonly period: number;
  readonly lineColor: string;
  valueAt(index: number): number | undefined;
}

/**
 * The overlays' values at `bar` (one of `bars`), then the server indicators'. The newest bar is the
 * common case (no crosshair): found without a search, and the indicators give their newest point.
 */
export function legendStudies(
  bar: Bar,
  bars: readonly Bar[],
  overlays: Iterable<OverlayStudy>,
  indicators: { studiesAt(time: number | null): LegendStudy[] },
): LegendStudy[] {
  const newest = bar === bars[bars.length - 1];
  const index = newest ? bars.length - 1 : lowerBound(bars, bar.timestamp);
  const out: LegendStudy[] = [];
  for (const o of overlays) {
    if (!o.enabled) continue;
    const v = o.valueAt(index);
    if (v !== undefined) out.push({ label: `${o.kind.toUpperCase()} ${o.period}`, color: o.lineColor, values: [v] });
  }
  return out.concat(indicators.studiesAt(newest ? null : bar.timestamp));
}

export interface QuoteSource {
  readonly bars: BarSeries;
  /** The price the change is measured against (the bar 24 h back, fetched again when old). */
  reference(): number | undefined;
  precision(): number;
  /** `SYMBOL · interval`. */
  title(): string;
  studiesAt(bar: Bar): LegendStudy[];
  setQuote(price: string, change: string, direction: Direction): void;
}

export class QuoteLegend {
  /** The crosshair is on a bar: the legend shows that one, not the newest. */
  private hovering = false;
  private queued = false;

  constructor(
    readonly legend: HTMLElement,
    private readonly src: QuoteSource,
  ) {}

  /** Quote and legend on the next frame, once however many ticks come before it. */
  schedule(): void {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.renderQuote();
      if (!this.hovering) this.renderLegend(this.src.bars.last());
    });
  }

  renderQuote(): void {
    const last = this.src.bars.last();
    // The reference may fetch the bar 24 h back: not asked for before there is a bar to compare.
    const q = quoteOf(last, last ? this.src.reference() : undefined, this.src.precision());
    this.src.setQuote(q.price, q.change, q.direction);
  }

  readonly onCrosshair = (param: MouseEventParams<Time>): void => {
    const bar = param.time !== undefined ? this.src.bars.at(Number(param.time) * 1000) : undefined;
    this.hovering = bar !== undefined;
    this.renderLegend(bar ?? this.src.bars.last());
  };

  private renderLegend(bar: Bar | undefined): void {
    renderLegend(this.legend, this.src.title(), bar, this.src.precision(), bar ? this.src.studiesAt(bar) : []);
  }
}
