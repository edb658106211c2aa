#!/usr/bin/env python3
"""Abuse benchmark: what each anonymous attack costs candlecast and its healthy clients.

For every row a fresh release server starts (simulated market, default settings, a script key and an
admin key set, a temporary store), 1,000 healthy /ws clients run under candlecast-loadgen for a fixed
window, and the attack runs during that window. Recorded per row: the server's RSS before the attack,
its peak while the attack ran (sampled every 100 ms) and after it ended; the healthy clients' latency
p50/p99 against the quiet run; what the attacker got back; what `/metrics` counted; and the log lines
the server wrote.

Healthy clients connect from 127.0.0.1, which the default config exempts from per-host limits (so a load
test can open 19,000 connections). Attackers connect from 127.0.0.2 (still loopback on Linux, but not
exempt): they meet the per-host limits of the default config, as a host on the internet would.

Standard library only, so it runs wherever python3 does. Usage: scripts/abuse.sh (make abuse).
"""

import argparse
import statistics
import asyncio
import base64
import collections
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ATTACKER = "127.0.0.2"
HOST = "127.0.0.1"
SCRIPT_KEY = "abuse-bench-script-key"
ADMIN_KEY = "abuse-bench-admin-key"
WARMUP = 5.0


# ---------------------------------------------------------------- server


class Server:
    def __init__(self, binary, workdir, name, extra_env=None):
        self.binary, self.workdir, self.name = binary, workdir, name
        self.store = tempfile.mkdtemp(prefix="candlecast-abuse-")
        env = dict(os.environ)
        env.update(
            {
                "CANDLECAST__SERVER__HOST": HOST,
                "CANDLECAST__SERVER__PORT": "0",
                # As scripts/bench.sh: every topic updates 10 times a second.
                "CANDLECAST__FEED__SIMULATED__TRADES_PER_SECOND": "200",
                "CANDLECAST__FEED__SIMULATED__TICK_MS": "20",
                "CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS": "1",
                "CANDLECAST__FEED__SIMULATED__BACKFILL_FINE_HOURS": "1",
                "CANDLECAST__STORE__PATH": self.store,
                "CANDLECAST__SCRIPTS__KEYS": json.dumps([SCRIPT_KEY]),
                "CANDLECAST__ADMIN__KEYS": json.dumps([ADMIN_KEY]),
            }
        )
        env.pop("RUST_LOG", None)
        env.update(extra_env or {})
        self.out_path = os.path.join(workdir, f"{name}.server.out")
        self.err_path = os.path.join(workdir, f"{name}.server.err")
        self.proc = subprocess.Popen(
            PIN_MEASURED + [binary], env=env, stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"), cwd=self.store
        )
        self.pid = self.proc.pid
        self.port = None
        for _ in range(300):
            m = re.search(r"http://127\.0\.0\.1:(\d+)", open(self.out_path).read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {open(self.err_path).read()[-2000:]}")
            time.sleep(0.1)
        if not self.port:
            raise RuntimeError("server did not print its address")
        for _ in range(600):
            try:
                if http_req(self.port, "GET", "/api/price/SOLUSDT", src=HOST)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)

    def log_lines(self):
        n = 0
        for p in (self.out_path, self.err_path):
            with open(p, "rb") as f:
                n += sum(1 for _ in f)
        return n

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.store, ignore_errors=True)


def rss_kb(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":")
                    vals[k] = int(v.split()[0])
    except OSError:
        pass
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.halt = pid, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, rss_kb(self.pid)[0])
            time.sleep(0.1)


def scrape(port):
    """Every sample of /metrics: {'name{labels}': value}."""
    status, body = http_req(port, "GET", "/metrics", src=HOST)
    out, counters = {}, set()
    if status != 200:
        return out
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            counters.add(line.split()[2])
        if not line or line.startswith("#"):
            continue
        if line.split("{")[0].split(" ")[0] not in counters:
            continue
        key, _, val = line.rpartition(" ")
        try:
            out[key] = float(val)
        except ValueError:
            pass
    return out


# Counters worth showing beside the refusals: the ones that say a client was refused, cut off or dropped.
INTERESTING = re.compile(r"refus|reject|slow|malformed|oversize|rate_limit|suppress|expired|disconnect|dropped|dead_letter|error|closed|invalid", re.I)


def metric_deltas(before, after):
    refused, other = {}, {}
    for k, v in after.items():
        d = v - before.get(k, 0.0)
        if d <= 0:
            continue
        if k.startswith("candlecast_refused_total"):
            m = re.search(r'limit="([^"]*)"', k)
            refused[m.group(1) if m else k] = int(d)
        elif INTERESTING.search(k):
            other[k] = int(d)
    return refused, other


# ---------------------------------------------------------------- HTTP and WebSocket clients


def http_req(port, method, path, body=None, headers=None, src=ATTACKER, timeout=30):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout, source_address=(src, 0))
    try:
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def error_code(status, body):
    """A short label of an answer: status plus the error code / limit it names."""
    label = str(status)
    try:
        j = json.loads(body)
        if isinstance(j, dict):
            code = j.get("limit") or j.get("error")
            if not code and j.get("message"):
                code = j["message"] + (f": {str(j['detail'])[:70]}" if j.get("detail") else "")
            if code and status >= 300:
                label += f" {code}"
    except (ValueError, UnicodeDecodeError):
        txt = body[:60].decode(errors="replace").strip()
        if status >= 300 and txt:
            label += f" {txt}"
    return label


class Outcomes:
    """What the attacker got back, counted by label, thread-safe."""

    def __init__(self):
        self.c, self.lock = collections.Counter(), threading.Lock()

    def add(self, label, n=1):
        with self.lock:
            self.c[label] += n

    def summary(self, limit=6):
        items = self.c.most_common()
        s = ", ".join(f"{k}: {v}" for k, v in items[:limit])
        if len(items) > limit:
            s += f", … ({len(items) - limit} more kinds)"
        return s


async def ws_open(port, path="/ws", headers=None, src=ATTACKER):
    """Opens a WebSocket; returns (status, (reader, writer)) or (status, body)."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(src, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status == 101:
        return status, (reader, writer)
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    writer.close()
    return status, body


def ws_frame(text, opcode=1):
    data = text.encode() if isinstance(text, str) else text
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def ws_read(reader):
    """One frame: (opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(n)


def run_async(coro_fn, stop):
    asyncio.run(coro_fn(stop))


def threads(n, target, *args):
    ts = [threading.Thread(target=target, args=(i, *args), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    return ts


# ---------------------------------------------------------------- Engine.IO polling


class Polling:
    """A minimal Engine.IO 4 long-polling client."""

    def __init__(self, port, token=None):
        self.port = port
        status, body = http_req(port, "GET", "/socket.io/?EIO=4&transport=polling")
        self.status, self.body = status, body
        self.sid = None
        if status == 200 and body.startswith(b"0"):
            self.sid = json.loads(body[1:])["sid"]
            auth = json.dumps({"token": token}) if token else ""
            self.post(f"40{auth}")

    def post(self, payload):
        return http_req(
            self.port,
            "POST",
            f"/socket.io/?EIO=4&transport=polling&sid={self.sid}",
            body=payload,
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )

    def poll(self):
        return http_req(self.port, "GET", f"/socket.io/?EIO=4&transport=polling&sid={self.sid}")


# ---------------------------------------------------------------- attacks
# Each takes (port, stop: threading.Event, out: Outcomes, notes: list) and runs until stop is set.


def attack_jobs(port, stop, out, notes):
    grid20k = {"fast": {"start": 1, "end": 100, "step": 1}, "slow": {"start": 101, "end": 300, "step": 1}}
    base = {"symbol": "BTCUSDT", "interval": "1s", "strategy": "ema_cross", "rank_by": "sharpe"}
    for label, params, top in (
        ("optimize 20,000 combos top=100000", grid20k, 100000),
        ("optimize 20,000 combos", grid20k, None),
        ("optimize 1,000 combos top=100000", {"fast": {"start": 1, "end": 10, "step": 1}, "slow": {"start": 101, "end": 200, "step": 1}}, 100000),
    ):
        spec = dict(base, params=params)
        if top:
            spec["top"] = top
        s, b = http_req(port, "POST", "/api/optimize/start", body=spec)
        out.add(f"{label}: {error_code(s, b)}")

    def backtester(i):
        body = {"symbol": "BTCUSDT", "interval": "1s", "strategy": "ema_cross", "params": {"fast": 5 + i, "slow": 50 + i}}
        while not stop.is_set():
            s, b = http_req(port, "POST", "/api/backtest/run", body=body)
            out.add(f"backtest: {error_code(s, b)}")
            time.sleep(0.1)  # 10 tries a second per thread: ignores Retry-After, but is not an HTTP flood

    ts = threads(30, backtester)
    for t in ts:
        t.join()
    notes.append("30 threads each POST a 1s backtest (fast/slow distinct) every 100 ms for the window")


def attack_sio_pings(port, stop, out, notes):
    payload = "\x1e".join(["2"] * 499_000)  # 998,999 bytes: under maxPayload (1,000,000)

    def session(i):
        while not stop.is_set():
            p = Polling(port)
            if not p.sid:
                out.add(f"handshake: {error_code(p.status, p.body)}")
                time.sleep(0.2)
                continue
            for _ in range(3):  # never polls
                if stop.is_set():
                    break
                s, b = p.post(payload)
                out.add(f"POST 499k pings: {error_code(s, b)}")
                if s != 200:
                    break

    ts = threads(20, session)
    for t in ts:
        t.join()
    notes.append("20 threads: handshake, `40`, then POSTs of 499,000 `2` packets (998,999 bytes), never polling; a new session when closed")


def attack_sio_events(port, stop, out, notes):
    ev = '42["trade",{"symbol":"ABUSEUSD","price":100.5,"qty":0.01,"side":"buy"}]'
    payload = "\x1e".join([ev] * 13_000)  # ~0.95 MB

    def session(i):
        while not stop.is_set():
            p = Polling(port, token=SCRIPT_KEY)
            if not p.sid:
                out.add(f"handshake: {error_code(p.status, p.body)}")
                time.sleep(0.2)
                continue
            while not stop.is_set():  # never polls: the refusals queue up
                s, b = p.post(payload)
                out.add(f"POST 13k trade events: {error_code(s, b)}")
                if s != 200:
                    break

    ts = threads(20, session)
    for t in ts:
        t.join()
    notes.append("20 keyed polling sessions each POST 13,000 `trade` events per request (~0.95 MB), never polling")


def attack_indicators(port, stop, out, notes, hosts=1):
    async def conn(i, stop):
        await asyncio.sleep(i / 15)  # 15 connections a second: under a per-host handshake rate of 20/s
        src = ATTACKER if hosts == 1 else f"127.0.1.{1 + i % hosts}"
        try:
            status, rw = await ws_open(port, src=src)
        except OSError as e:
            out.add(f"connect: {type(e).__name__}")
            return
        if status != 101:
            out.add(f"upgrade: {status}")
            return
        reader, writer = rw

        async def read():
            try:
                while True:
                    op, data = await ws_read(reader)
                    if op == 8:
                        code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
                        out.add(f"closed by server {code}")
                        return
                    if op == 1:
                        try:
                            m = json.loads(data)
                            t = m.get("type")
                            out.add(f"error {m.get('code')}" if t == "error" else t)
                        except ValueError:
                            pass
            except (asyncio.IncompleteReadError, ConnectionError):
                return

        rt = asyncio.ensure_future(read())
        n = 0
        syms = ["BTCUSDT", "ETHUSDT", "ADAUSDT", "BNBUSDT", "XRPUSDT", "SOLUSDT"]
        while not stop.is_set() and not rt.done():
            n += 1
            # A new value every time: 0.01 apart (computations are keyed by floats rounded to 0.01), plus a
            # millionth so that the exact value never repeats either.
            v = round(0.2 + ((i * 331 + n) % 950) * 0.01, 2) + n * 1e-6
            ind, params = (("bollinger", {"period": 20, "k": v}) if n % 2 else ("supertrend", {"period": 10, "multiplier": v}))
            msg = {"type": "subscribe_indicator", "trading_pair": syms[n % 6], "interval": "1s", "indicator": ind, "params": params, "history": 500}
            try:
                writer.write(ws_frame(json.dumps(msg)))
                await writer.drain()
            except ConnectionError:
                break
            out.add("sent subscribe_indicator")
            await asyncio.sleep(1 / 40)  # under the 50 messages/s control budget
        rt.cancel()
        writer.close()

    async def main(stop):
        await asyncio.gather(*(conn(i, stop) for i in range(40)))

    run_async(main, stop)
    notes.append(("40 /ws connections from 40 hosts (127.0.1.1–40)" if hosts > 1 else "40 /ws connections") + " (opened 15 a second) each subscribe_indicator 40 times a second, each with a new float (bollinger k / supertrend multiplier 0.01 apart in 0.2–9.7, plus n·10⁻⁶), history 500, on 1s")


def attack_indicators_hosts(port, stop, out, notes):
    attack_indicators(port, stop, out, notes, hosts=40)


def attack_ws_flood(port, stop, out, notes, origin=None):
    opened = []

    async def one():
        try:
            status, rw = await ws_open(port, headers={"Origin": origin} if origin else None)
        except (OSError, asyncio.IncompleteReadError) as e:
            out.add(f"connect: {type(e).__name__}")
            return
        if status == 101:
            out.add("101 upgraded")
            if origin:
                rw[1].close()
            else:
                opened.append(rw[1])
        else:
            out.add(error_code(status, rw))

    async def main(stop):
        while not stop.is_set():
            if len(opened) >= 10_000:
                await asyncio.sleep(0.2)
                continue
            await asyncio.gather(*(one() for _ in range(100)))
            await asyncio.sleep(0.05)
        for w in opened:
            w.close()

    run_async(main, stop)
    if origin:
        notes.append(f"batches of 100 upgrades with `Origin: {origin}`, ~every 50 ms; upgraded ones closed at once")
    else:
        notes.append("batches of 100 /ws upgrades ~every 50 ms, kept open idle (never read), up to 10,000")
    notes.append(f"connections held open at the end: {len(opened)}")


def attack_ws_origin(port, stop, out, notes):
    attack_ws_flood(port, stop, out, notes, origin="https://evil.example")


def attack_poison(port, stop, out, notes):
    auth = {"Authorization": f"Bearer {SCRIPT_KEY}"}
    trades_csv = "timestamp,symbol,side,quantity,price\n" + "".join(
        f"{int(time.time() * 1000)},POISONUSD,BUY,{q},{p}\n"
        for q, p in (("1e308", "100"), ("NaN", "100"), ("inf", "100"), ("1e400", "100"), ("1", "1e308"), ("-1", "NaN"))
    )
    md_csv = "timestamp,symbol,open,high,low,close,volume,rsi\n" + "".join(
        f"2026-01-01T00:0{i}:00,POISONUSD,{v},{v},{v},{v},1,{v}\n" for i, v in enumerate(("NaN", "inf", "1e308", "1e400", "-0"))
    )
    wide = ",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("1" for _ in range(100_000)) + "\n"

    def csvs(i):
        while not stop.is_set():
            s, b = http_req(port, "POST", "/api/trading-data", body={"trades_csv": trades_csv, "market_data_csv": md_csv}, headers=auth)
            label = error_code(s, b)
            if s == 200:
                try:
                    j = json.loads(b)
                    label += f" status={j.get('status')} kept={j.get('trades')}+{j.get('market_data')}"
                except ValueError:
                    pass
            out.add(f"poison CSVs: {label}")
            s, b = http_req(port, "POST", "/api/trading-data", body={"trades_csv": wide}, headers=auth)
            out.add(f"100,000-column CSV: {error_code(s, b)}")
            time.sleep(0.05)

    def sio(i):
        now = int(time.time() * 1000)
        bad = [
            {"symbol": "POISONUSD", "price": 100.0, "qty": 1e308},
            {"symbol": "POISONUSD", "price": "NaN", "qty": 1},
            {"symbol": "POISONUSD", "price": 100.0, "qty": "NaN"},
            {"symbol": "POISONUSD", "price": 100.0, "qty": "Infinity"},
            {"symbol": "BTCUSDT", "price": 1e308, "qty": 1e308, "timestamp": now},
        ]
        while not stop.is_set():
            p = Polling(port, token=SCRIPT_KEY)
            if not p.sid:
                out.add(f"sio handshake: {error_code(p.status, p.body)}")
                time.sleep(0.2)
                continue
            p.poll()  # the connect answer
            for k in range(50):
                if stop.is_set():
                    break
                s, b = p.post(f"42{k}" + json.dumps(["trades", bad]) + "\x1e" + f"42{k + 1000}" + '["trade",{"symbol":"POISONUSD","price":100,"qty":1e999}]')
                if s != 200:
                    out.add(f"sio POST: {error_code(s, b)}")
                    break
                s, b = p.poll()
                for pkt in b.decode(errors="replace").split("\x1e"):
                    m = re.match(r"43(\d+)(.*)", pkt)
                    if m:
                        try:
                            a = json.loads(m.group(2))[0]
                            out.add(f"sio ack ok={a.get('ok')} accepted={a.get('accepted')} rejected={len(a.get('rejected') or [])} {a.get('error') or ''}".strip())
                        except (ValueError, IndexError, AttributeError):
                            out.add("sio ack (unparsed)")
                    elif pkt.startswith("44") or pkt.startswith("1"):
                        out.add(f"sio {pkt[:60]}")
                        break
                time.sleep(0.05)

    ts = threads(2, csvs) + threads(2, sio)
    for t in ts:
        t.join()
    notes.append("2 threads POST /api/trading-data (script key): trades and market-data CSVs of 1e308 / NaN / inf / 1e400 values, then a 100,000-column CSV (~690 KB), every 50 ms; 2 Socket.IO polling sessions send `trades` (qty 1e308, \"NaN\", \"Infinity\", price 1e308) and `trade` (qty 1e999) with acks")


def attack_keys(port, stop, out, notes):
    targets = [
        ("POST", "/api/feeds", {"source": "simulated", "symbol": "EVILUSDT"}, "admin"),
        ("POST", "/api/trading-data", {"trades_csv": "timestamp,symbol,side,quantity,price\n"}, "script"),
        ("POST", "/api/strategies/live", {"strategy": "ema_cross", "symbol": "BTCUSDT", "interval": "1m"}, "admin"),
        ("POST", "/api/backtest/run", {"symbol": "BTCUSDT", "interval": "1m", "strategy": "ema_cross"}, "trader"),
    ]

    def flood(i):
        n = 0
        while not stop.is_set():
            m, path, body, kind = targets[n % len(targets)]
            n += 1
            s, b = http_req(port, m, path, body=body, headers={"Authorization": f"Bearer wrong-{i}-{n}"})
            out.add(f"{kind} key {path}: {error_code(s, b)}")

    ts = threads(8, flood)
    for t in ts:
        t.join()
    notes.append("8 threads, back to back, wrong bearer keys (a new one each request) on admin, script and trader endpoints")


def attack_history(port, stop, out, notes):
    def flood(i):
        syms = ["BTCUSDT", "ETHUSDT", "ADAUSDT", "BNBUSDT", "XRPUSDT", "SOLUSDT"]
        n = 0
        while not stop.is_set():
            n += 1
            s, b = http_req(port, "GET", f"/api/historical/{syms[n % 6]}?interval=1s&limit=5000")
            out.add(f"GET historical 1s limit=5000: {error_code(s, b)} ({len(b) // 1024} KiB)" if s != 200 else "GET historical: 200")

    ts = threads(10, flood)
    for t in ts:
        t.join()
    notes.append("10 threads, back to back, GET /api/historical/<sym>?interval=1s&limit=5000")


def attack_slowloris(port, stop, out, notes):
    async def one(i, stop):
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(ATTACKER, 0))
        except OSError as e:
            out.add(f"connect: {type(e).__name__}")
            return
        try:
            writer.write(f"GET /api/symbols HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            while not stop.is_set():
                await asyncio.sleep(1.0)
                writer.write(b"X-a: b\r\n")
                await writer.drain()
                if reader.at_eof():
                    break
            if stop.is_set():
                out.add("still open at the end")
            else:
                data = await reader.read(100)
                out.add(f"closed by server after ~{round(time.monotonic() - t0)} s ({data[:12].decode(errors='replace').strip() or 'no answer'})")
        except (ConnectionError, OSError):
            out.add(f"closed by server after ~{round(time.monotonic() - t0)} s (reset)")
        finally:
            writer.close()

    async def main(stop):
        await asyncio.gather(*(one(i, stop) for i in range(2000)))

    run_async(main, stop)
    notes.append("2,000 TCP connections send a request line and one header line a second, never finishing the headers")


def attack_http_flood(port, stop, out, notes):
    async def one(i, stop):
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(HOST, port, local_addr=(ATTACKER, 0))
            except OSError as e:
                out.add(f"connect: {type(e).__name__}")
                await asyncio.sleep(0.5)
                continue
            try:
                writer.write(f"GET /api/price/BTCUSDT HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                await writer.drain()
                head = await asyncio.wait_for(reader.read(4096), timeout=10)
                status = head[9:12].decode(errors="replace") if head.startswith(b"HTTP/1.1") else "no answer"
                m = re.search(rb'"error":"([a-z_]+)"', head) if status != "200" else None
                out.add(f"{status} {m.group(1).decode()}" if m else status)
                # Held open (keep-alive) until the server closes it.
                while not stop.is_set():
                    if not await asyncio.wait_for(reader.read(4096), timeout=30):
                        break
            except (ConnectionError, OSError, asyncio.TimeoutError):
                out.add("reset")
            finally:
                writer.close()
            if not stop.is_set():
                await asyncio.sleep(0.2)

    async def main(stop):
        await asyncio.gather(*(one(i, stop) for i in range(3000)))

    run_async(main, stop)
    notes.append("3,000 TCP connections from one host each send a complete GET and hold the keep-alive connection open, reconnecting when closed")


ATTACKS = [
    ("jobs", "jobs: anonymous 20,000-combination optimization on 1s bars (top=100000), then 30 concurrent 1s backtests", attack_jobs),
    ("sio_pings", "Socket.IO: 20 polling sessions POST 499,000 `2` packets each, never polling", attack_sio_pings),
    ("sio_events", "Socket.IO: event flood (20 keyed sessions, 13,000 `trade` events per POST, never polling)", attack_sio_events),
    ("indicators", "/ws: indicator streams with ever-new float parameters (40 connections)", attack_indicators),
    ("indicators_hosts", "/ws: the same from 40 hosts (one connection each): the total computation budget", attack_indicators_hosts),
    ("ws_flood", "/ws: connection flood from one host (127.0.0.2)", attack_ws_flood),
    ("ws_origin", "/ws: cross-origin upgrades (`Origin: https://evil.example`)", attack_ws_origin),
    ("poison", "poison values: script trades/CSVs with 1e308, NaN, inf, 1e400; a 100,000-column CSV", attack_poison),
    ("keys", "refused-key flood: wrong admin / script / trader keys", attack_keys),
    ("history", "history flood: GET /api/historical 1s limit=5000, 10 threads", attack_history),
    ("slowloris", "slowloris: 2,000 connections that never finish their headers", attack_slowloris),
    ("http_flood", "HTTP connection flood: 3,000 keep-alive connections held from one host", attack_http_flood),
]


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


# With --pin: the server and the healthy clients on CPU 0, the attacker (this process) on CPU 1, as if the
# attacker were another machine: its own CPU is then not taken from the server it attacks.
PIN_MEASURED = []


# ---------------------------------------------------------------- one row


def run_row(args, name, title, attack):
    print(f"== {name}: {title}", flush=True)
    srv = Server(args.server, args.out, name)
    try:
        time.sleep(1.0)
        m0, lines0 = scrape(srv.port), srv.log_lines()
        jpath = os.path.join(args.out, f"{name}.loadgen.json")
        lg = subprocess.Popen(
            PIN_MEASURED + [args.loadgen, "--url", f"ws://{HOST}:{srv.port}/ws", "--clients", str(args.clients), "--connect-rate", "2000",
             "--duration", str(args.window), "--warmup", str(WARMUP), "--interval", "1s", "--server-pid", str(srv.pid),
             "--json", jpath],
            stdout=open(os.path.join(args.out, f"{name}.loadgen.txt"), "w"), stderr=subprocess.STDOUT,
        )
        # The measured window starts after the connections (0.5 s at 2,000/s) and the warm-up.
        time.sleep(args.clients / 2000 + WARMUP)
        rss_before, _ = rss_kb(srv.pid)
        sampler = RssSampler(srv.pid)
        sampler.start()
        cpu0_server, cpu0_attacker = cpu_seconds(srv.pid), sum(os.times()[:2])
        stop, out, notes = threading.Event(), Outcomes(), []
        t_attack = None
        if attack:
            t_attack = threading.Thread(target=attack, args=(srv.port, stop, out, notes), daemon=True)
            t_attack.start()
        lg.wait()
        cpu_server, cpu_attacker = cpu_seconds(srv.pid) - cpu0_server, sum(os.times()[:2]) - cpu0_attacker
        stop.set()
        if t_attack:
            t_attack.join(timeout=40)
        time.sleep(2.0)
        sampler.halt.set()
        sampler.join()
        rss_after, hwm = rss_kb(srv.pid)
        alive = srv.proc.poll() is None
        m1, lines1 = scrape(srv.port) if alive else {}, srv.log_lines()
        refused, other = metric_deltas(m0, m1)
        try:
            rep = json.load(open(jpath))
        except (OSError, ValueError):
            rep = {}
        row = {
            "name": name, "title": title,
            "rss_before_mb": rss_before / 1024, "rss_peak_mb": max(sampler.peak, rss_before) / 1024,
            "rss_after_mb": rss_after / 1024, "vm_hwm_mb": hwm / 1024,
            "p50": rep.get("latency_ms", {}).get("p50"), "p99": rep.get("latency_ms", {}).get("p99"),
            "p99_by_second": rep.get("latency_p99_by_second_ms", []),
            "healthy_connected": rep.get("connected"), "healthy_disconnects": rep.get("disconnects"),
            "healthy_msgs_per_s": rep.get("messages_per_second"),
            "server_alive": alive, "attacker": dict(out.c), "attacker_summary": out.summary(),
            "cpu_server_s": cpu_server, "cpu_attacker_s": cpu_attacker,
            "notes": notes, "refused": refused, "other_counters": other, "log_lines": lines1 - lines0,
        }
        print(json.dumps({k: row[k] for k in ("rss_before_mb", "rss_peak_mb", "rss_after_mb", "p50", "p99", "refused", "log_lines")}), flush=True)
        print("   p99 per second (ms):", " ".join(f"{v:.1f}" for v in row["p99_by_second"]), flush=True)
        print("   attacker:", row["attacker_summary"], flush=True)
        return row
    finally:
        srv.stop()


# ---------------------------------------------------------------- the table


def fmt_counts(d, limit=6):
    items = sorted(d.items(), key=lambda kv: -kv[1])
    s = ", ".join(f"`{k}` {v:,}" for k, v in items[:limit])
    if len(items) > limit:
        s += f", … (+{len(items) - limit})"
    return s or "none"


def write_doc(rows, args, doc_path, command, rounds=None):
    # The table's ratios: against the lower of this round's quiet runs. With several rounds the verdict below is
    # over all of them (see repeat_summary).
    quiet = [r["p99"] for r in rows if r["name"].startswith("quiet") and r["p99"]]
    q1 = min(quiet) if quiet else None
    rounds = rounds if rounds and len(rounds) > 1 else [rows]
    all_quiet = [r["p99"] for rs in rounds for r in rs if r["name"].startswith("quiet") and r["p99"]]
    quiet_median = statistics.median(all_quiet) if all_quiet else None
    lines = [
        f"Command: `{command}` (scripts/abuse.sh → scripts/abuse.py; raw results in `bench/results/abuse/`).",
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(os.path.getmtime(os.path.join(args.out, 'rows.json'))))}, commit `{args.commit}`, on the team's machine: "
        + (f"{os.cpu_count()} cores, nothing else running." if args.idle_machine else f"{os.cpu_count()} cores shared with other engineers' builds and tests, so latency ratios are noisy."),
        "",
        "Each row starts a fresh release server (simulated market at 200 trades/s per symbol and 10 updates/s per topic "
        "as in `make bench`, 1 day of 1m and 1 hour of 1s backfill, a temporary embedded store, default limits, one script "
        f"key and one admin key configured). {args.clients:,} healthy `/ws` clients (candlecast-loadgen, 1s bars, hot/cold symbols) "
        f"connect from 127.0.0.1 and are measured for {args.window:g} s after a {WARMUP:g} s warm-up; the attack runs "
        "during that window from **127.0.0.2**, which is loopback but not in the default per-host exemption lists, so every "
        "per-host limit applies to the attacker as to a host on the internet, with the default configuration (no override). "
        "RSS is the server's VmRSS just before the attack, its peak (sampled every 100 ms) while it ran, and 2 s after it "
        "stopped. p99 is the healthy clients' delivery latency (server `ts_sent` to receipt); the ratio is against the **lower** of the two quiet runs (one before the attacks, one after). "
        "Refusals are the increase of `candlecast_refused_total{limit}` over the row; other counters are those whose name "
        "says refused, rejected, dropped, slow, malformed, expired, … CPU is the server's and the attacker's (the script's "
        "process) user + system seconds over the measured window. "
        + ("**Pinned** (`--pin`): the server and the healthy clients run on CPU 0 and the attacker on CPU 1, as if the "
           "attacker were another machine: what the server spends on the attack still competes with its healthy "
           "clients, the attacker's own CPU does not." if args.pin else
           "The attacker and the healthy clients share the 2 cores with the server, so part of a p99 increase is the "
           "attacker's own CPU."),
        "",
        "| attack | RSS before → peak → after (MB) | healthy p50 / p99 (ms) | p99 vs quiet | CPU s in the window: server / attacker | attacker got back | refusals in `/metrics` | other counters | log lines |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['p99'] / q1:.2f}×" if (q1 and r["p99"]) else "n/a"
        p = f"{r['p50']:.1f} / {r['p99']:.1f}" if r["p50"] is not None else "n/a"
        if r["healthy_disconnects"]:
            p += f" ({r['healthy_disconnects']} healthy disconnects)"
        rss = f"{r['rss_before_mb']:.0f} → {r['rss_peak_mb']:.0f} → {r['rss_after_mb']:.0f}"
        if not r["server_alive"]:
            rss += " **(server died)**"
        got = r["attacker_summary"] or "—"
        # Short names, as in the rows before counters took Prometheus' `_total` suffix (docs/OPERATIONS.md).
        other = fmt_counts({re.sub(r"_total(?=\{|$)", "", k.replace("candlecast_", "")): v for k, v in r["other_counters"].items()}, 4)
        cpu = f"{r['cpu_server_s']:.1f} / {r['cpu_attacker_s']:.1f}" if "cpu_server_s" in r else "n/a"
        lines.append(f"| {r['title']} | {rss} | {p} | {ratio} | {cpu} | {got} | {fmt_counts(r['refused'])} | {other} | {r['log_lines']:,} |")
    if len(rounds) > 1:
        lines += ["", f"The table above is the last of {len(rounds)} rounds (its ratios against that round's lower quiet run). "
                  "**The verdict is over all rounds**: each row's median p99 over the rounds against the median p99 of "
                  "every quiet run, the same statistic on both sides; each round against its own lower quiet run is "
                  "given beside it.", "", repeat_summary(rounds)]
    lines += ["", "Targets, per row (computed by the script" + (f", over all {len(rounds)} rounds" if len(rounds) > 1 else "") + "):", ""]
    for r in rows:
        if r["name"].startswith("quiet"):
            continue
        same = [x for rs in rounds for x in rs if x["name"] == r["name"]]
        growth = max(x["rss_peak_mb"] - x["rss_before_mb"] for x in same)
        p99s = [x["p99"] for x in same if x["p99"]]
        ratio = statistics.median(p99s) / quiet_median if (quiet_median and p99s) else None
        lines.append(
            f"- {r['name']}: RSS growth (peak − before) {growth:+.0f} MB ({'met' if growth <= 256 else '**not met**'}, ≤ 256 MB); "
            f"healthy p99 {('%.2f×' % ratio) if ratio else 'n/a'} the quiet runs ({'met' if ratio and ratio <= 1.2 else '**not met**'}, ≤ 1.20×); "
            f"refusals in `candlecast_refused_total`: {sum(sum(x['refused'].values()) for x in same):,}"
            + (f" over {len(same)} rounds" if len(same) > 1 else "")
        )
    lines += ["", "What each attacker did:", ""]
    for r in rows:
        if r["notes"]:
            lines.append(f"- **{r['name']}**: " + "; ".join(r["notes"]) + ".")
    lines.append("")
    return lines


BEGIN, END = "<!-- abuse-benchmark:begin (scripts/abuse.py writes between these markers) -->", "<!-- abuse-benchmark:end -->"


def splice(doc_path, generated):
    """Replaces the generated part of '## Abuse benchmark' (between the markers), keeping the rest of the file."""
    text = open(doc_path).read() if os.path.exists(doc_path) else "# Reliability\n"
    block = BEGIN + "\n" + "\n".join(generated).rstrip() + "\n" + END
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip() + "\n\n## Abuse benchmark\n\n" + block + "\n"
    open(doc_path, "w").write(text)


def splice_rows(doc_path, rows, args):
    """After an --only run: replaces the rows that ran (by title) in the existing table, adds new ones before the
    last quiet row, and notes which rows were rerun against which quiet run; every other row stays as it was."""
    text = open(doc_path).read()
    if BEGIN not in text or END not in text:
        return splice(doc_path, write_doc(rows, args, doc_path, args.command))
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    old = text[a:b].split("\n")
    new = write_doc(rows, args, doc_path, args.command)
    fresh = [r for r in rows if not r["name"].startswith("quiet")]

    def find(lines, prefix):
        return next((i for i, l in enumerate(lines) if l.startswith(prefix)), None)

    for r in fresh:
        for prefix in (f"| {r['title']} |", f"- {r['name']}: ", f"- **{r['name']}**: "):
            j = find(new, prefix)
            if j is None:
                continue
            i = find(old, prefix)
            if i is not None:
                old[i] = new[j]
            elif prefix.startswith("|"):
                k = find(old, "| quiet again")
                old.insert(k if k is not None else len(old), new[j])
            else:
                # After the last line of the same kind: a target bullet (`- name: `) or a note (`- **name**: `).
                note = prefix.startswith("- **")
                same = [i for i, l in enumerate(old) if l.startswith("- ") and l.startswith("- **") == note]
                old.insert(same[-1] + 1 if same else len(old), new[j])
    quiet = [r for r in rows if r["name"].startswith("quiet")]
    note = (
        f"Rows {', '.join(r['name'] for r in fresh)} rerun on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{args.commit}`, "
        f"with `{args.command}` (the machine shared with other engineers' builds and tests); their p99 ratios are against that run's own quiet runs "
        f"(p99 {' / '.join('%.1f' % r['p99'] for r in quiet if r['p99'])} ms), not the quiet rows above."
    )
    old = [l for l in old if not l.startswith(f"Rows {', '.join(r['name'] for r in fresh)} rerun")]
    k = find(old, "Targets, per row")
    old.insert(k if k is not None else len(old), note)
    if k is not None:
        old.insert(k + 1, "")
    open(doc_path, "w").write(text[:a] + "\n".join(old) + text[b:])


def repeat_summary(rounds):
    """The verdict over several rounds: each row's median p99 over the rounds against the median p99 of every
    quiet run (two per round), the same statistic on both sides. Beside it, for reference, each round's ratio
    against that round's lower quiet p99 and their median: dividing by the lower of two noisy runs compares a
    typical attacked run with the better quiet one, which reads high by the quiet runs' own spread (one quiet
    run of 1.99 ms beside 2.47 ms raised every row of that round by 24 %)."""
    quiet = [r["p99"] for rows in rounds for r in rows if r["name"].startswith("quiet") and r["p99"]]
    ratios, p99s = {}, {}
    for rows in rounds:
        q = min((r["p99"] for r in rows if r["name"].startswith("quiet") and r["p99"]), default=None)
        for r in rows:
            if not r["name"].startswith("quiet") and r["p99"]:
                p99s.setdefault(r["name"], []).append(r["p99"])
                if q:
                    ratios.setdefault(r["name"], []).append(r["p99"] / q)
    quiet_median = statistics.median(quiet) if quiet else None
    lines = [
        f"Quiet runs' p99: {', '.join(f'{q:.2f}' for q in sorted(quiet))} ms, median {quiet_median or 0:.2f} ms.",
        "",
        "| attack | p99 each round (ms) | median p99 | **vs the quiet median** | target ≤ 1.20× | each round vs its lower quiet run (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name, ps in p99s.items():
        med = statistics.median(ps)
        ratio = med / quiet_median if quiet_median else None
        verdict = "n/a" if ratio is None else ("met" if ratio <= 1.2 else "**not met**")
        rs = ratios.get(name, [])
        each = ", ".join(f"{x:.2f}" for x in rs)
        lines.append(
            f"| {name} | {', '.join(f'{p:.2f}' for p in ps)} | {med:.2f} | **{ratio:.2f}×** | {verdict} | "
            f"{each} ({statistics.median(rs):.2f}×) |" if ratio is not None and rs else f"| {name} | – | – | – | n/a | – |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--out", default="bench/results/abuse")
    ap.add_argument("--window", type=float, default=15.0)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--only", default="", help="comma-separated rows to run (default: all)")
    ap.add_argument("--doc", default="", help="write the table into this file's '## Abuse benchmark' section")
    ap.add_argument("--commit", default="")
    ap.add_argument("--command", default="make abuse")
    ap.add_argument("--pin", action="store_true",
                    help="server and healthy clients on CPU 0, the attacker on CPU 1 (the attacker as another machine)")
    ap.add_argument("--render", action="store_true", help="only rewrite --doc from <out>/rows.json")
    ap.add_argument("--idle-machine", action="store_true", help="say in the doc that nothing else ran on the machine")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the plan this many times and print each row's median p99 ratio (a 0.4 ms target "
                         "moves between two runs of the same binary); the doc gets the last round's table")
    args = ap.parse_args()
    args.server, args.loadgen, args.out = map(os.path.abspath, (args.server, args.loadgen, args.out))
    if args.pin:
        global PIN_MEASURED
        PIN_MEASURED = ["taskset", "-c", "0"]
        os.sched_setaffinity(0, {1})
    os.makedirs(args.out, exist_ok=True)
    if args.render:
        rows = json.load(open(os.path.join(args.out, "rows.json")))
        rounds_file = os.path.join(args.out, "rounds.json")
        rounds = json.load(open(rounds_file)) if os.path.exists(rounds_file) else None
        splice(args.doc, write_doc(rows, args, args.doc, args.command, rounds))
        return
    only = set(filter(None, args.only.split(",")))
    plan = [("quiet-1", "quiet (no attack)", None)]
    plan += [a for a in ATTACKS if not only or a[0] in only]
    plan += [("quiet-2", "quiet again (no attack), for the noise", None)]
    rounds = []
    for k in range(max(args.repeat, 1)):
        if args.repeat > 1:
            print(f"#### round {k + 1} of {args.repeat}", flush=True)
        rows = []
        for name, title, fn in plan:
            row = run_row(args, name, title, fn)
            rows.append(row)
            json.dump(rows, open(os.path.join(args.out, "rows.json"), "w"), indent=1)
        rounds.append(rows)
    if args.repeat > 1:
        json.dump(rounds, open(os.path.join(args.out, "rounds.json"), "w"), indent=1)
        print(repeat_summary(rounds), flush=True)
    if args.doc:
        if only:
            splice_rows(args.doc, rows, args)
        else:
            splice(args.doc, write_doc(rows, args, args.doc, args.command, rounds))
        print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
