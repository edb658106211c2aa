// socket.io-client scenarios the Rust integration tests run against a real candlecast (tests/socketio_*.rs).
//
// Usage: node client.mjs SCENARIO URL TOKEN [ARGS...]   (TOKEN "-" means no key)
// Prints one JSON object per line, {"event": ..., "data": ...}; the Rust test asserts on them.
import { io } from 'socket.io-client';

const [scenario, url, rawToken, ...args] = process.argv.slice(2);
const token = rawToken === '-' ? undefined : rawToken;

function out(event, data = null) {
  process.stdout.write(JSON.stringify({ event, data }) + '\n');
}

function connect(options) {
  const socket = io(url, { reconnection: false, auth: token ? { token } : undefined, ...options });
  socket.on('error', (data) => out('error', data));
  socket.on('connect_error', (err) => out('connect_error', err.message));
  return new Promise((resolve) => {
    socket.on('connect', () => {
      out('connected', { transport: socket.io.engine.transport.name, id: socket.id });
      resolve(socket);
    });
  });
}

/** Disconnects and waits until the engine has closed (its close packet is sent), at most `ms`. */
function disconnect(socket, ms = 5000) {
  const engine = socket.io.engine;
  const closed = new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    engine.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  socket.disconnect();
  return closed;
}

function next(socket, event, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (data) => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}

/** The first `event` whose data satisfies `pred`, within `ms`. */
function first(socket, event, pred, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching ${event} within ${ms} ms`)), ms);
    const listener = (data) => {
      if (!pred(data)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(data);
    };
    socket.on(event, listener);
  });
}

/** One transport only ("polling" or "websocket"): acks, streaming trades, live bars. */
async function transport(name) {
  const socket = await connect({ transports: [name] });
  out('ack_join_script', await socket.timeout(20000).emitWithAck('join_script'));
  // One trade creates the symbol so that it can be subscribed to before the batch: the batch's bar then reaches
  // the client whether its second ends before or after the subscription (a loaded machine may take that long).
  const trade = (price, timestamp) => ({ symbol: 'JSTEST', price, qty: 1, side: 'buy', timestamp });
  await socket.timeout(20000).emitWithAck('trades', [trade(50, Date.now())]);
  out('ack_subscribe', await socket.timeout(20000).emitWithAck('subscribe', { trading_pairs: ['JSTEST'], interval: '1s' }));
  const now = Date.now();
  const second = Math.floor(now / 1000) * 1000;
  const update = first(socket, 'price_update', (u) => u.data?.timestamp === second && u.data?.trades >= 20);
  const trades = Array.from({ length: 20 }, (_, i) => trade(50 + i, now));
  out('ack_trades', await socket.timeout(20000).emitWithAck('trades', trades));
  out('price_update', await update);
  out('transport_at_end', socket.io.engine.transport.name);
  await disconnect(socket);
}

/** A dashboard without a key: join_frontend, live bars, then the trading_update a script causes. */
async function dashboard() {
  const socket = await connect({});
  const status = next(socket, 'status');
  socket.emit('join_frontend');
  out('status', await status);
  const update = next(socket, 'price_update');
  socket.emit('subscribe', { trading_pairs: [args[0] ?? 'BTCUSDT'], interval: '1s' });
  out('price_update', await update);
  const trading = next(socket, 'trading_update', 60000);
  out('ready');
  out('trading_update', await trading);
  await disconnect(socket);
}

try {
  if (scenario === 'transport') await transport(args[0]);
  else if (scenario === 'dashboard') await dashboard();
  else throw new Error(`unknown scenario ${scenario}`);
  out('done');
  process.exit(0);
} catch (e) {
  out('failed', String(e));
  process.exit(1);
}
