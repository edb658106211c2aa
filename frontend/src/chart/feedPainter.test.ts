import { describe, expect, it } from 'vitest';
import type { LogicalRange } from 'lightweight-charts';
import { Bar, BarSeries } from '../state/bars';
import type { DataState } from './chartHealth';
import { FeedPainter, PainterParts } from './feedPainter';

const bar = (i: number): Bar => ({ timestamp: i * 60_000, open: 1, high: 1, low: 1, close: 1, volume: 1 });

/** The chart's pieces as call logs: the painter's job is which of them it tells, and in what order. */
function setup() {
  const calls: string[] = [];
  const log = (name: string) => () => void calls.push(name);
  const bars = new BarSeries();
  bars.reset([bar(0), bar(1), bar(2)]);
  const feed = { bars, state: 'live' as DataState, generation: 1 };
  const cfg = { symbol: 'BTCUSDT', interval: '1m' as const, sma: true, ema: false };
  let view: LogicalRange | null = { from: 10, to: 20 } as LogicalRange;
  const trades: Array<() => boolean> = [];
  const dataset: DOMStringMap = {};
  const parts: PainterParts = {
    feed: () => feed,
    config: () => cfg,
    timeScale: {
      getVisibleLogicalRange: () => view,
      setVisibleLogicalRange: (r) => {
        view = r as LogicalRange;
        calls.push(`range ${r.from}-${r.to}`);
      },
    },
    series: {
      clear: log('clear'),
      drawAll: (b) => void calls.push(`drawAll ${b.length}`),
      drawMerged: (b, outcome) => void calls.push(`merged ${b.timestamp / 60_000} ${outcome}`),
      setOverlay: (k, on) => void calls.push(`overlay ${k} ${on}`),
      setPrecision: (p) => void calls.push(`precision ${p}`),
    },
    markers: {
      render: log('markers'),
      loadTrades: async (symbol, stillCurrent) => {
        calls.push(`trades ${symbol}`);
        trades.push(stillCurrent);
      },
    },
    indicators: { clip: (t) => void calls.push(`clip ${t}`) },
    drawings: { render: log('drawings') },
    quote: { schedule: log('quote'), renderQuote: log('renderQuote') },
    viewport: { initialLimit: (min) => min, placeAfterLoad: log('place') },
    health: { refresh: log('health'), updateReceived: log('health?') },
    notice: { hide: log('hide notice') },
    dataset,
    precision: () => 2,
    countUpdate: log('count'),
  };
  return { painter: new FeedPainter(parts), calls, feed, dataset, trades, view: () => view };
}

describe('FeedPainter', () => {
  it('draws a tick in place, and only a new bar brings the markers along', () => {
    const t = setup();
    t.painter.barMerged(bar(2), 'replace-last');
    expect(t.calls).toEqual(['merged 2 replace-last', 'quote']);
    t.calls.length = 0;
    t.painter.barMerged(bar(3), 'append');
    expect(t.calls).toEqual(['merged 3 append', 'markers', 'quote']);
  });

  it('redraws every bar for an inserted one, keeping the view; draws nothing for an ignored one', () => {
    const t = setup();
    t.painter.barMerged(bar(1), 'insert');
    expect(t.calls).toEqual(['drawAll 3', 'clip 0', 'range 10-20', 'quote']);
    t.calls.length = 0;
    t.painter.barMerged(bar(1), 'ignored');
    expect(t.calls).toEqual([]);
  });

  it('keeps the same bars in view when older ones were prepended', () => {
    const t = setup();
    t.painter.reindexed(500, { from: 10, to: 20 } as LogicalRange);
    expect(t.view()).toEqual({ from: 510, to: 520 });
    expect(t.calls).toEqual(['drawAll 3', 'clip 0', 'range 510-520', 'markers', 'drawings']);
  });

  it('after the first history: precision, bars, the overlays of the layout, the view, then trade markers of this topic only', () => {
    const t = setup();
    t.painter.historyLoaded();
    expect(t.calls).toEqual(['precision 2', 'drawAll 3', 'clip 0', 'overlay sma true', 'place', 'trades BTCUSDT']);
    expect(t.trades[0]()).toBe(true);
    t.feed.generation = 2;
    expect(t.trades[0]()).toBe(false);
  });

  it('marks the card for the tests: topic and state when cleared, state changes, older bars loading', () => {
    const t = setup();
    t.feed.state = 'loading';
    t.painter.cleared();
    expect(t.dataset).toEqual({ symbol: 'BTCUSDT', interval: '1m', state: 'loading' });
    expect(t.calls).toEqual(['hide notice', 'clear']);
    t.feed.state = 'live';
    t.painter.stateChanged();
    expect(t.dataset.state).toBe('live');
    expect(t.calls).toContain('health');
    t.painter.loadingOlderChanged(true);
    expect(t.dataset.loadingOlder).toBe('true');
    t.painter.loadingOlderChanged(false);
    expect('loadingOlder' in t.dataset).toBe(false);
  });

  it('counts each live update and lets the health see it', () => {
    const t = setup();
    t.painter.updateReceived();
    expect(t.calls).toEqual(['count', 'health?']);
  });
});
