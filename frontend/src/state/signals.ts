/**
 * Strategy signals from `subscribe_signals` (`signals_history`, then `signal`
 * pushes) as chart markers: a buy is an arrow up below the bar, a sell an arrow
 * down above it, labelled with the strategy's name.
 */
import type { SignalMessage } from '../net/protocol';
import type { Marker } from './markers';

/** Reads one signal; null when malformed, so one bad entry never breaks a chart. */
export function parseSignal(raw: unknown): SignalMessage | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const s = raw as Record<string, unknown>;
  const side = typeof s.side === 'string' ? s.side.toLowerCase() : '';
  if (typeof s.time !== 'number' || !Number.isFinite(s.time)) return null;
  if (side !== 'buy' && side !== 'sell') return null;
  return {
    symbol: typeof s.symbol === 'string' ? s.symbol : '',
    interval: typeof s.interval === 'string' ? s.interval : '',
    time: s.time,
    side,
    price: typeof s.price === 'number' ? s.price : NaN,
    strategy: typeof s.strategy === 'string' && s.strategy ? s.strategy : 'strategy',
    reason: typeof s.reason === 'string' ? s.reason : undefined,
  };
}

export function signalToMarker(s: SignalMessage): Marker {
  return {
    time: s.time,
    kind: 'signal',
    side: s.side,
    text: s.strategy,
    price: Number.isFinite(s.price) ? s.price : undefined,
  };
}

/** Markers for a batch of raw signals (a history reply), malformed ones skipped. */
export function markersFromSignals(raw: readonly unknown[]): Marker[] {
  return raw.map(parseSignal).filter((s): s is SignalMessage => s !== null).map(signalToMarker);
}
