/** REST calls to the candlecast server (same origin as the page). */

export interface SymbolsResponse {
  symbols: string[];
  details?: Array<{ symbol: string; source?: string; price?: number }>;
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

async function getJson<T>(path: string): Promise<T> {
  // Relative URL: works when the page is mounted under a path prefix.
  const res = await fetch(path.replace(/^\//, ''), { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

export const api = {
  symbols: () => getJson<SymbolsResponse>('/api/symbols'),
  stats: () => getJson<StatsResponse>('/api/stats'),
};
