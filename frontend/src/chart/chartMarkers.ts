/**
 * The markers of one chart: trades (the public hook, `trade_marker` pushes and the executed trades
 * scripts reported) and the strategy signals of its topic (subscribe_signals), which the trader can hide.
 * Shapes are lightweight-charts' markers plugin; their text is drawn by MarkerLabels, inside the pane.
 */
import type { ISeriesApi, ISeriesMarkersPluginApi, SeriesMarker, Time, UTCTimestamp } from 'lightweight-charts';
import { createSeriesMarkers } from 'lightweight-charts';
import { api } from '../net/api';
import type { StreamHub } from '../net/streams';
import type { BarSeries } from '../state/bars';
import type { Interval } from '../state/intervals';
import { Marker, markersFromExecutedTrades, mergeMarkers } from '../state/markers';
import { markersFromSignals, parseSignal, signalToMarker } from '../state/signals';
import { TEST_BUILD, exposeForTests } from '../testBuild';
import { LabelInput, MarkerLabels, PlacedLabel } from './markerLabels';
import { toSeriesMarkers } from './presentation';

/** A label's colour when its marker has none. */
const DEFAULT_LABEL_COLOR = '#787b86';

/** What the browser tests read of the markers (test builds only, see ../testBuild.ts). */
export interface MarkerParts {
  trades: readonly Marker[];
  signals: readonly Marker[];
  /** Shapes on the chart now. */
  shown: number;
  /** Labels the last frame drew, in pane pixels; null before the first marker. */
  labels: { paneWidth: number; labels: PlacedLabel[] } | null;
}

/** The markers to draw, in time order: the trades, and the signals unless they are hidden. */
export function markersToDraw(trades: readonly Marker[], signals: readonly Marker[], signalsShown: boolean): readonly Marker[] {
  if (!signalsShown || signals.length === 0) return trades;
  return trades.concat(signals).sort((a, b) => a.time - b.time);
}

/** Series markers split into the shapes lightweight-charts draws and the labels MarkerLabels draws. */
export function splitLabels(series: readonly SeriesMarker<Time>[]): { shapes: SeriesMarker<Time>[]; labels: LabelInput[] } {
  const labels: LabelInput[] = [];
  const shapes = series.map(({ text, ...shape }) => {
    if (text) labels.push({ time: shape.time as UTCTimestamp, text, above: shape.position === 'aboveBar', color: shape.color ?? DEFAULT_LABEL_COLOR });
    return shape;
  });
  return { shapes, labels };
}

export class MarkerLayer {
  private trades: Marker[] = [];
  private signals: Marker[] = [];
  /**
   * Created with the first marker, not before: lightweight-charts' markers plugin maps the series' whole
   * data (every bar, as new objects) after each update, even with no markers — a third of the page's
   * allocations with eight live charts, and so of its garbage collections.
   */
  private shapes: ISeriesMarkersPluginApi<Time> | null = null;
  /** The markers' text, drawn inside the pane (created with the first marker too). */
  private labels: MarkerLabels | null = null;
  private closeSignals: (() => void) | null = null;

  constructor(
    private readonly candles: ISeriesApi<'Candlestick'>,
    private readonly bars: BarSeries,
    private signalsShown: boolean,
  ) {
    if (TEST_BUILD) {
      exposeForTests(this, (): MarkerParts => ({
        trades: this.trades,
        signals: this.signals,
        shown: this.shapes?.markers().length ?? 0,
        labels: this.labels?.lastDrawn ?? null,
      }));
    }
  }

  addTrades(markers: readonly Marker[]): void {
    this.trades = mergeMarkers(this.trades, markers);
    this.render();
  }

  /** Trade markers are times on one symbol's bars: they mean nothing on another topic. */
  clearTrades(): void {
    this.trades = [];
  }

  setSignalsShown(on: boolean): void {
    this.signalsShown = on;
    this.render();
  }

  /** (Re)opens the signal stream of a topic; the previous topic's signals are dropped. */
  openSignals(streams: StreamHub, symbol: string, interval: Interval): void {
    this.closeSignals?.();
    this.signals = [];
    this.closeSignals = streams.openSignals(symbol, interval, {
      onHistory: (items) => this.addSignals(markersFromSignals(items)),
      onLive: (item) => {
        const s = parseSignal(item);
        if (s) this.addSignals([signalToMarker(s)]);
      },
    });
  }

  /** Markers for the executed trades scripts reported on `symbol`, unless the chart moved on meanwhile. */
  async loadTrades(symbol: string, stillCurrent: () => boolean): Promise<void> {
    try {
      const markers = markersFromExecutedTrades(await api.executedTrades(symbol));
      if (stillCurrent() && markers.length > 0) this.addTrades(markers);
    } catch {
      // No trades endpoint (an older server) or a failed request: the chart simply has no trade markers.
    }
  }

  /** Draws the markers on the loaded bars (again after bars came or went: a marker sits on its bar). */
  render(): void {
    const all = markersToDraw(this.trades, this.signals, this.signalsShown);
    if (all.length === 0 && this.shapes === null) return;
    this.shapes ??= createSeriesMarkers(this.candles, []);
    if (!this.labels) {
      this.labels = new MarkerLabels((t) => this.bars.at(t));
      this.candles.attachPrimitive(this.labels);
    }
    const { shapes, labels } = splitLabels(toSeriesMarkers(all, this.bars));
    this.shapes.setMarkers(shapes);
    this.labels.set(labels);
  }

  destroy(): void {
    this.closeSignals?.();
    this.closeSignals = null;
  }

  private addSignals(markers: readonly Marker[]): void {
    if (markers.length === 0) return;
    this.signals = mergeMarkers(this.signals, markers);
    this.render();
  }
}
