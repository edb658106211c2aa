/**
 * The subscribe protocol's rules, apart from the socket (connection.ts): how queued topics are batched
 * into one message per interval, and what a reply to one of our subscribe requests says about each topic
 * it named. Servers that subscribe every valid topic of a request name the refused ones (`refused`:
 * names or `{trading_pair, message}`) or leave them out of `trading_pairs`; older ones refuse the whole
 * request with one error, in which case each topic is asked for on its own so one unknown symbol cannot
 * freeze the other charts of its interval.
 */
import type { Interval } from '../state/intervals';
import type { ErrorReply, ServerMessage } from './protocol';

/** The server's word on one topic (connection.ts keeps it per topic). */
export interface TopicVerdict {
  state: 'subscribed' | 'refused';
  reason?: string;
}

export type SubscribeReply =
  /** Too many control messages at once: ask for the same topics again a little later. */
  | { kind: 'retry-later' }
  /** One error for a request of several topics: ask for each on its own. */
  | { kind: 'one-by-one' }
  /** A verdict per topic, in the order of the request's symbols. */
  | { kind: 'verdicts'; verdicts: TopicVerdict[] };

/** Reads the reply to a subscribe request that named `symbols`. */
export function readSubscribeReply(msg: ServerMessage, symbols: readonly string[]): SubscribeReply {
  if (msg.type === 'error') {
    const e = msg as unknown as ErrorReply;
    if (e.code === 'rate_limited') return { kind: 'retry-later' };
    if (symbols.length > 1) return { kind: 'one-by-one' };
    return { kind: 'verdicts', verdicts: symbols.map(() => ({ state: 'refused', reason: e.message ?? e.code })) };
  }
  const refused = refusedPairs(msg);
  const granted = Array.isArray(msg.trading_pairs)
    ? new Set((msg.trading_pairs as unknown[]).filter((p): p is string => typeof p === 'string').map((p) => p.toUpperCase()))
    : null;
  const verdicts = symbols.map((symbol): TopicVerdict => {
    const name = symbol.toUpperCase();
    const reason = refused.get(name);
    if (reason !== undefined) return { state: 'refused', reason };
    if (granted && !granted.has(name)) return { state: 'refused', reason: `${symbol} was not subscribed` };
    return { state: 'subscribed' };
  });
  return { kind: 'verdicts', verdicts };
}

/** Refused symbols of a `subscribed` reply and why: `refused` (or `rejected`) as names or objects. */
export function refusedPairs(msg: ServerMessage): Map<string, string> {
  const out = new Map<string, string>();
  const list = Array.isArray(msg.refused) ? msg.refused : Array.isArray(msg.rejected) ? msg.rejected : [];
  for (const item of list as unknown[]) {
    if (typeof item === 'string') {
      out.set(item.toUpperCase(), `${item.toUpperCase()} refused by the server`);
    } else if (typeof item === 'object' && item !== null) {
      const r = item as Record<string, unknown>;
      const name = [r.trading_pair, r.symbol, r.pair].find((v): v is string => typeof v === 'string');
      if (!name) continue;
      const why = [r.message, r.reason, r.detail, r.code, r.error].find((v): v is string => typeof v === 'string');
      out.set(name.toUpperCase(), why ?? `${name.toUpperCase()} refused by the server`);
    }
  }
  return out;
}

/**
 * Queued topic keys grouped into one message per interval (the server counts control messages, not
 * topics). Keys `lookup` no longer knows are skipped.
 */
export function batchByInterval(
  keys: Iterable<string>,
  lookup: (key: string) => { symbol: string; interval: Interval } | undefined,
): Map<Interval, { pairs: string[]; keys: string[] }> {
  const byInterval = new Map<Interval, { pairs: string[]; keys: string[] }>();
  for (const k of keys) {
    const t = lookup(k);
    if (!t) continue;
    const batch = byInterval.get(t.interval) ?? { pairs: [], keys: [] };
    batch.pairs.push(t.symbol);
    batch.keys.push(k);
    byInterval.set(t.interval, batch);
  }
  return byInterval;
}
