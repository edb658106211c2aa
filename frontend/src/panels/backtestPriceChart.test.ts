import { describe, expect, it } from 'vitest';
import type { Bar } from '../state/bars';
import { focusRange, markersOnBars } from './backtestPriceChart';
import type { TradeRecord } from './backtestModel';

const bar = (timestamp: number): Bar => ({ timestamp, open: 1, high: 2, low: 0.5, close: 1.5, volume: 1, trades: 1, closed: true });
const trade = (entry_time: number, exit_time: number, side: 'long' | 'short' = 'long'): TradeRecord =>
  ({ side, entry_time, exit_time, entry_price: 1, exit_price: 2, units: 1, pnl: 1, return_pct: 5 }) as TradeRecord;

describe('backtest trades on the price chart', () => {
  it('puts entries and exits on the bars that hold them, dropping those before the first bar', () => {
    const bars = [bar(60_000), bar(120_000), bar(180_000)];
    const m = markersOnBars([trade(0, 90_000), trade(120_000, 185_000, 'short')], bars);
    // The first entry (0) is before the first bar: dropped; 90 s lands on the 60 s bar, 185 s on 180 s.
    expect(m.map((x) => [x.time, x.shape])).toEqual([
      [60, 'square'],
      [120, 'arrowDown'],
      [180, 'square'],
    ]);
  });

  it('focuses a trade with bars either side', () => {
    expect(focusRange({ entry_time: 600_000, exit_time: 900_000 }, 60_000, 2)).toEqual({ from: 480, to: 1020 });
  });
});
