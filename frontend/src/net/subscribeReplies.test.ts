import { describe, expect, it } from 'vitest';
import type { ServerMessage } from './protocol';
import { batchByInterval, readSubscribeReply, refusedPairs } from './subscribeReplies';

const reply = (m: Record<string, unknown>) => m as unknown as ServerMessage;

describe('readSubscribeReply', () => {
  it('subscribes each named topic the server did not refuse', () => {
    const r = readSubscribeReply(reply({ type: 'subscribed', trading_pairs: ['BTCUSDT', 'ethusdt'] }), ['BTCUSDT', 'ETHUSDT']);
    expect(r).toEqual({ kind: 'verdicts', verdicts: [{ state: 'subscribed' }, { state: 'subscribed' }] });
  });

  it('refuses the topics named as refused, with the reason, and those left out of trading_pairs', () => {
    const r = readSubscribeReply(
      reply({ type: 'subscribed', trading_pairs: ['BTCUSDT'], refused: [{ trading_pair: 'NOPEUSDT', message: 'unknown symbol' }] }),
      ['BTCUSDT', 'NOPEUSDT', 'XRPUSDT'],
    );
    expect(r).toEqual({
      kind: 'verdicts',
      verdicts: [{ state: 'subscribed' }, { state: 'refused', reason: 'unknown symbol' }, { state: 'refused', reason: 'XRPUSDT was not subscribed' }],
    });
  });

  it('asks again later when rate limited, and topic by topic when an older server refused the whole request', () => {
    expect(readSubscribeReply(reply({ type: 'error', code: 'rate_limited' }), ['A', 'B'])).toEqual({ kind: 'retry-later' });
    expect(readSubscribeReply(reply({ type: 'error', code: 'invalid_symbol' }), ['A', 'B'])).toEqual({ kind: 'one-by-one' });
    expect(readSubscribeReply(reply({ type: 'error', code: 'invalid_symbol', message: 'A is unknown' }), ['A'])).toEqual({
      kind: 'verdicts',
      verdicts: [{ state: 'refused', reason: 'A is unknown' }],
    });
  });
});

describe('refusedPairs', () => {
  it('reads names or objects, under refused or rejected, upper-cased', () => {
    expect([...refusedPairs(reply({ type: 'subscribed', rejected: ['abc'] }))]).toEqual([['ABC', 'ABC refused by the server']]);
    expect(refusedPairs(reply({ type: 'subscribed', refused: [{ symbol: 'x', reason: 'gone' }, { nothing: 1 }] }))).toEqual(new Map([['X', 'gone']]));
  });
});

describe('batchByInterval', () => {
  it('makes one batch per interval and skips keys no longer known', () => {
    const topics: Record<string, { symbol: string; interval: '1m' | '5m' }> = {
      'BTCUSDT@1m': { symbol: 'BTCUSDT', interval: '1m' },
      'ETHUSDT@1m': { symbol: 'ETHUSDT', interval: '1m' },
      'BTCUSDT@5m': { symbol: 'BTCUSDT', interval: '5m' },
    };
    const out = batchByInterval(['BTCUSDT@1m', 'GONE@1m', 'BTCUSDT@5m', 'ETHUSDT@1m'], (k) => topics[k]);
    expect([...out]).toEqual([
      ['1m', { pairs: ['BTCUSDT', 'ETHUSDT'], keys: ['BTCUSDT@1m', 'ETHUSDT@1m'] }],
      ['5m', { pairs: ['BTCUSDT'], keys: ['BTCUSDT@5m'] }],
    ]);
  });
});
