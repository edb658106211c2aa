/**
 * Records of the "Script activity" panel (seed 003's trading-update
 * payload): external scripts send CSV text for trades and market data. A
 * later issue wires the Socket.IO `trading_update` event to `ingest`.
 */

export interface TradeRecord {
  timestamp: string;
  symbol: string;
  side: string;
  quantity: number;
  price: number;
  profit_loss: number;
  strategy: string;
}

export interface MarketDataRecord {
  timestamp: string;
  symbol: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  rsi: number | null;
  signal_strength: number | null;
}

/** The payload of seed 003's `send_trading_data` / `trading_update`. */
export interface TradingUpdate {
  trades_csv?: string;
  market_data_csv?: string;
  timestamp?: string;
  /** Already parsed records are accepted too. */
  trades?: Partial<TradeRecord>[];
  market_data?: Partial<MarketDataRecord>[];
}

/** Splits CSV text into rows of fields; handles quoted fields and CRLF. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.some((f) => f.trim() !== '')) rows.push(row);
      row = [];
    } else field += c;
  }
  row.push(field);
  if (row.some((f) => f.trim() !== '')) rows.push(row);
  return rows;
}

/** CSV with a header line into objects keyed by (trimmed, lower-case) header. */
export function csvRecords(text: string): Array<Record<string, string>> {
  const [header, ...body] = parseCsv(text);
  if (!header) return [];
  const keys = header.map((h) => h.trim().toLowerCase());
  return body.map((fields) => Object.fromEntries(keys.map((k, i) => [k, (fields[i] ?? '').trim()])));
}

function toNum(v: unknown): number {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
}

function toNumOrNull(v: unknown): number | null {
  if (v === undefined || v === null || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

export function toTrade(r: Record<string, unknown>): TradeRecord {
  return {
    timestamp: String(r.timestamp ?? ''),
    symbol: String(r.symbol ?? ''),
    side: String(r.side ?? '').toUpperCase(),
    quantity: toNum(r.quantity),
    price: toNum(r.price),
    profit_loss: toNum(r.profit_loss),
    strategy: String(r.strategy ?? ''),
  };
}

export function toMarketData(r: Record<string, unknown>): MarketDataRecord {
  return {
    timestamp: String(r.timestamp ?? ''),
    symbol: String(r.symbol ?? ''),
    open: toNum(r.open),
    high: toNum(r.high),
    low: toNum(r.low),
    close: toNum(r.close),
    volume: toNum(r.volume),
    rsi: toNumOrNull(r.rsi),
    signal_strength: toNumOrNull(r.signal_strength),
  };
}

/** Rows kept for display; totals still count everything. */
export const MAX_ROWS = 200;

export class ActivityModel {
  trades: TradeRecord[] = [];
  marketData: MarketDataRecord[] = [];
  totalTrades = 0;
  totalDataPoints = 0;
  totalPnl = 0;
  lastUpdate: string | null = null;

  /**
   * Adds the executed trades the server kept (`GET /api/trades`, oldest first: `timestamp` in ms, `time`
   * in ISO 8601) below the rows already shown, which are newer: the panel's history after a reload.
   * A trade already shown (the live feed was quicker than the request) is not added twice.
   */
  loadHistory(reply: unknown): number {
    const raw = typeof reply === 'object' && reply !== null ? (reply as { trades?: unknown }).trades : undefined;
    if (!Array.isArray(raw)) return 0;
    const key = (t: TradeRecord) => `${t.symbol}|${t.side}|${t.quantity}|${t.price}|${Date.parse(t.timestamp)}`;
    const shown = new Set(this.trades.map(key));
    const older = raw
      .filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null)
      .map((r) => toTrade({ ...r, timestamp: typeof r.time === 'string' ? r.time : r.timestamp }))
      .filter((t) => !shown.has(key(t)));
    this.trades = this.trades.concat(older.reverse()).slice(0, MAX_ROWS);
    this.totalTrades += older.length;
    this.totalPnl += older.reduce((s, t) => s + t.profit_loss, 0);
    if (this.lastUpdate === null && older.length > 0) this.lastUpdate = older[0].timestamp;
    return older.length;
  }

  /** Adds one update; returns how many trade and market rows it carried. */
  ingest(update: TradingUpdate, now: Date = new Date()): { trades: number; marketData: number } {
    const trades = [
      ...(update.trades_csv ? csvRecords(update.trades_csv) : []),
      ...(update.trades ?? []),
    ].map((r) => toTrade(r as Record<string, unknown>));
    const market = [
      ...(update.market_data_csv ? csvRecords(update.market_data_csv) : []),
      ...(update.market_data ?? []),
    ].map((r) => toMarketData(r as Record<string, unknown>));
    // Newest first, as the seed's dashboard showed them.
    this.trades = trades.reverse().concat(this.trades).slice(0, MAX_ROWS);
    this.marketData = market.reverse().concat(this.marketData).slice(0, MAX_ROWS);
    this.totalTrades += trades.length;
    this.totalDataPoints += market.length;
    this.totalPnl += trades.reduce((s, t) => s + t.profit_loss, 0);
    this.lastUpdate = update.timestamp ?? now.toISOString();
    return { trades: trades.length, marketData: market.length };
  }
}
