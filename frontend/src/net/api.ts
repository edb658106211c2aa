/** REST calls to the candlecast server (same origin as the page). */
import type { SessionSpec } from '../state/marketSession';
import { jobKey } from './jobKey';

export interface SymbolsResponse {
  symbols: string[];
  details?: Array<{ symbol: string; source?: string; price?: number; session?: SessionSpec | null }>;
}

/** One instrument of a symbol search (`GET /api/symbols?q=`): what feeds and charts call it, and where. */
export interface InstrumentHit {
  symbol: string;
  exchange: string;
  tradingsymbol: string;
  name: string;
  kind: string;
  source: string;
  /** Has bars here now (a running feed): its chart streams. */
  live: boolean;
}

export interface SymbolSearchResponse {
  total: number;
  results: InstrumentHit[];
}

export interface StatsResponse {
  service: string;
  stats: {
    total_clients?: number;
    total_subscriptions?: number;
    trading_pair_subscribers?: Record<string, number>;
    messages_sent?: number;
    messages_per_second?: number;
    messages_dropped?: number;
    slow_client_disconnects?: number;
    late_dropped?: number;
    trade_rate?: Record<string, number>;
    uptime_seconds?: number;
    [key: string]: unknown;
  };
}

/** A REST call that failed: `detail` is the server's own explanation (`{"error","detail"}` bodies). */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    /** The whole error body (e.g. `limit`, `config`, `anonymous_budget` of a budget refusal). */
    readonly body: Record<string, unknown> = {},
  ) {
    super(detail);
  }
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, extra: Record<string, string> = {}): Promise<T> {
  // Relative URL: works when the page is mounted under a path prefix.
  const res = await fetch(path.replace(/^\//, ''), {
    method,
    headers: {
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...extra,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    let code = `http_${res.status}`;
    let detail = `${path}: HTTP ${res.status}`;
    let body: Record<string, unknown> = {};
    try {
      const err = (await res.json()) as { error?: unknown; detail?: unknown };
      if (err && typeof err === 'object') body = err as Record<string, unknown>;
      if (typeof err.error === 'string') code = err.error;
      if (typeof err.detail === 'string' && err.detail) detail = err.detail;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiRequestError(res.status, code, detail, body);
  }
  return (await res.json()) as T;
}

const getJson = <T>(path: string) => call<T>('GET', path);

/** `{"job_id","status","progress","done","total", "result"|"error"}` of a backtest or optimization. */
export interface JobStatus<R = unknown> {
  job_id: string;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  progress?: number;
  done?: number;
  total?: number;
  result?: R;
  error?: string;
}

const job = (id: string) => encodeURIComponent(id);

export const api = {
  symbols: () => getJson<SymbolsResponse>('/api/symbols'),
  /** The symbol master's instruments matching `q` (best first), at most `limit`. */
  searchSymbols: (q: string, limit: number, signal?: AbortSignal) =>
    fetch(`/api/symbols?q=${encodeURIComponent(q)}&limit=${limit}`, { signal }).then(async (res) => {
      if (!res.ok) throw new ApiRequestError(res.status, 'search', `symbol search: HTTP ${res.status}`);
      return (await res.json()) as SymbolSearchResponse;
    }),
  stats: () => getJson<StatsResponse>('/api/stats'),
  indicators: () => getJson<unknown>('/api/indicators'),
  strategies: () => getJson<unknown>('/api/strategies'),
  // Starting and cancelling jobs go through the trader key (asked for on 401/403, see jobKey.ts).
  backtestRun: (body: unknown) => jobKey.run((h) => call<{ job_id: string }>('POST', '/api/backtest/run', body, h)),
  backtestResults: <R>(id: string) => getJson<JobStatus<R>>(`/api/backtest/results/${job(id)}`),
  optimizeStart: (body: unknown) =>
    jobKey.run((h) => call<{ job_id: string; combinations?: number }>('POST', '/api/optimize/start', body, h)),
  optimizeStatus: (id: string) => getJson<JobStatus>(`/api/optimize/status/${job(id)}`),
  optimizeResults: <R>(id: string) => getJson<JobStatus<R>>(`/api/optimize/results/${job(id)}`),
  optimizeCancel: (id: string) => jobKey.run((h) => call<JobStatus>('POST', `/api/optimize/cancel/${job(id)}`, undefined, h)),
  /** Executed trades scripts reported for a symbol (seed 003's trades CSV), oldest first. */
  /** Bars of a symbol and interval, ascending: `{"data":[{timestamp,open,high,low,close,volume,...}]}`. */
  historical: (symbol: string, interval: string, q: { start?: number; end?: number; limit: number }) =>
    getJson<{ data?: unknown[] }>(
      `/api/historical/${encodeURIComponent(symbol)}?interval=${interval}&limit=${q.limit}` +
        (q.start !== undefined ? `&start_time=${q.start}` : '') +
        (q.end !== undefined ? `&end_time=${q.end}` : ''),
    ),
  /** The newest executed trades of every symbol, oldest first. */
  recentTrades: (limit: number) => getJson<unknown>(`/api/trades?limit=${limit}`),
  executedTrades: (symbol: string, limit = 1000) => getJson<unknown>(`/api/trades?symbol=${encodeURIComponent(symbol)}&limit=${limit}`),
};
