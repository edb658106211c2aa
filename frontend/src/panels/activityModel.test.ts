import { describe, expect, it } from 'vitest';
import { ActivityModel, MAX_ROWS, csvRecords, parseCsv } from './activityModel';
import { formatUptime } from './statsPanel';

// The sample payload from seed 003's README.
const SEED = {
  trades_csv:
    'timestamp,symbol,side,quantity,price,profit_loss,strategy\n' +
    '2023-01-01T10:00:00,AAPL,BUY,100,150.00,25.50,Three Red Bodies\n' +
    '2023-01-01T10:05:00,TSLA,SELL,50,800.00,-15.25,Three Red Bodies',
  market_data_csv:
    'timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n' +
    '2023-01-01T10:00:00,AAPL,149.50,151.00,149.00,150.00,50000,65.5,0.75\n' +
    '2023-01-01T10:05:00,TSLA,799.00,805.00,795.00,800.00,25000,45.2,0.85',
  timestamp: '2023-01-01T10:05:00',
};

describe('CSV parsing', () => {
  it('handles quotes, embedded commas, CRLF and blank lines', () => {
    expect(parseCsv('a,b\r\n"x, y","say ""hi"""\n\n1,2\n')).toEqual([['a', 'b'], ['x, y', 'say "hi"'], ['1', '2']]);
    expect(csvRecords(' A ,B\n1,2')).toEqual([{ a: '1', b: '2' }]);
    expect(csvRecords('')).toEqual([]);
  });
});

describe('ActivityModel', () => {
  it("ingests seed 003's payload", () => {
    const m = new ActivityModel();
    expect(m.ingest(SEED)).toEqual({ trades: 2, marketData: 2 });
    expect(m.totalTrades).toBe(2);
    expect(m.totalDataPoints).toBe(2);
    expect(m.totalPnl).toBeCloseTo(10.25);
    expect(m.lastUpdate).toBe('2023-01-01T10:05:00');
    // Newest first.
    expect(m.trades[0]).toEqual({
      timestamp: '2023-01-01T10:05:00', symbol: 'TSLA', side: 'SELL', quantity: 50, price: 800, profit_loss: -15.25, strategy: 'Three Red Bodies',
    });
    expect(m.marketData[1]).toMatchObject({ symbol: 'AAPL', close: 150, rsi: 65.5, signal_strength: 0.75 });
  });

  it('accepts parsed records, tolerates missing fields and caps rows', () => {
    const m = new ActivityModel();
    m.ingest({ trades: [{ symbol: 'X', side: 'buy' }], market_data: [{ symbol: 'X', close: 1 }] }, new Date(0));
    expect(m.trades[0]).toMatchObject({ symbol: 'X', side: 'BUY', quantity: 0, profit_loss: 0 });
    expect(m.marketData[0].rsi).toBeNull();
    expect(m.lastUpdate).toBe('1970-01-01T00:00:00.000Z');
    const many = Array.from({ length: MAX_ROWS + 10 }, () => ({ symbol: 'Y' }));
    m.ingest({ trades: many });
    expect(m.trades).toHaveLength(MAX_ROWS);
    expect(m.totalTrades).toBe(MAX_ROWS + 11);
  });
});

describe('stats formatting', () => {
  it('formats uptime', () => {
    expect(formatUptime(65)).toBe('1m 5s');
    expect(formatUptime(3725)).toBe('1h 2m 5s');
    expect(formatUptime(90061)).toBe('1d 1h 1m');
  });
});

describe('ActivityModel history', () => {
  it('puts the kept trades under the live ones, once, and counts them', () => {
    const m = new ActivityModel();
    m.ingest({ trades_csv: 'timestamp,symbol,side,quantity,price,profit_loss\n2023-01-01T10:05:00Z,AAPL,SELL,1,151,2\n', timestamp: 'live' });
    const reply = {
      trades: [
        { timestamp: 1672567200000, time: '2023-01-01T10:00:00.000Z', symbol: 'AAPL', side: 'BUY', quantity: 1, price: 150, profit_loss: null, strategy: 's' },
        { timestamp: 1672567500000, time: '2023-01-01T10:05:00.000Z', symbol: 'AAPL', side: 'SELL', quantity: 1, price: 151, profit_loss: 2, strategy: '' },
        'junk',
      ],
    };
    expect(m.loadHistory(reply)).toBe(1);
    expect(m.trades.map((t) => [t.side, t.timestamp])).toEqual([
      ['SELL', '2023-01-01T10:05:00Z'],
      ['BUY', '2023-01-01T10:00:00.000Z'],
    ]);
    expect([m.totalTrades, m.totalPnl, m.lastUpdate]).toEqual([2, 2, 'live']);
    expect(new ActivityModel().loadHistory({ error: 'x' })).toBe(0);
  });
});
