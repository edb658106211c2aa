/**
 * The dashboard's seat in seed 003's Socket.IO flow: connects to the server's Socket.IO endpoint, joins
 * the `frontend` room and hands every `trading_update` (the CSV rows scripts sent with
 * `send_trading_data` or POST /api/trading-data) to the Script activity panel. socket.io-client reconnects
 * with its own backoff; the room is joined again on every connect.
 */
import { io, type Socket } from 'socket.io-client';
import type { TradingUpdate } from '../panels/activityModel';

export type ScriptFeedState = 'connecting' | 'live' | 'refused';

export interface ScriptFeedHandlers {
  onUpdate(update: TradingUpdate): void;
  /** `detail`: why the server refused the connection (e.g. it requires a key from dashboards). */
  onState(state: ScriptFeedState, detail?: string): void;
}

export function connectScriptFeed(handlers: ScriptFeedHandlers, url: string = location.origin): Socket {
  // WebSocket only: the page already holds one for /ws, and long-polling would only add requests.
  const socket = io(url, { transports: ['websocket'], reconnectionDelayMax: 10_000 });
  handlers.onState('connecting');
  socket.on('connect', () => {
    socket.emit('join_frontend');
    handlers.onState('live');
  });
  socket.on('disconnect', () => handlers.onState('connecting'));
  socket.on('connect_error', (err: Error) => {
    // socket.io-client retries transport errors itself; a refusal by the server (a namespace connect
    // error) it does not, so say so instead of staying "connecting" for ever.
    if (!socket.active) handlers.onState('refused', err.message);
  });
  socket.on('trading_update', (update: unknown) => {
    if (update && typeof update === 'object') handlers.onUpdate(update as TradingUpdate);
  });
  return socket;
}
