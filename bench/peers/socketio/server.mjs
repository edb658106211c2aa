// The fan-out peer: a plain socket.io server doing what candlecast's hub does, for the same load.
// Clients emit "subscribe" {symbol, interval}; each topic (room) gets a price_update of the same shape and
// size as candlecast's 10 times a second, stamped with ts_sent in microseconds. Prints its port on start.
import { createServer } from "node:http";
import { Server } from "socket.io";

const UPDATES_PER_SECOND = 10;
const SYMBOLS = (process.env.SYMBOLS ?? "BTCUSDT,ETHUSDT,ADAUSDT,BNBUSDT,XRPUSDT,SOLUSDT").split(",");
const INTERVAL = process.env.INTERVAL ?? "1s";

const http = createServer();
// WebSocket only and no compression: the same transport candlecast's clients use.
const io = new Server(http, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });

io.on("connection", (socket) => {
  socket.on("subscribe", (msg) => {
    const symbol = String(msg?.symbol ?? "");
    const interval = String(msg?.interval ?? INTERVAL);
    socket.join(`${symbol}:${interval}`);
    socket.emit("subscribed", { type: "subscribed", trading_pairs: [symbol], interval });
  });
});

const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const price = Object.fromEntries(SYMBOLS.map((s, i) => [s, 100 + i]));

setInterval(() => {
  const openTime = Math.floor(Date.now() / 1000) * 1000;
  for (const symbol of SYMBOLS) {
    price[symbol] *= 1 + (Math.random() - 0.5) * 0.001;
    const p = Number(price[symbol].toPrecision(6));
    io.to(`${symbol}:${INTERVAL}`).emit("price_update", {
      type: "price_update",
      symbol,
      interval: INTERVAL,
      data: { timestamp: openTime, open: p, high: p, low: p, close: p, volume: 12.345678, trades: 20, closed: false },
      ts_sent: nowMicros(),
    });
  }
}, 1000 / UPDATES_PER_SECOND);

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`peer listening on http://127.0.0.1:${http.address().port}`);
});
