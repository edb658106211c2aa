#!/usr/bin/env python3
"""Measures the Redis memory the today-cache takes for one symbol's whole day, per interval.

Starts a throwaway redis-server on a free port, fills one symbol's today-sets with a full day of bars in
candlecast's cached format ([open_time, open, high, low, close, volume, trades, closed], realistic prices),
and prints MEMORY USAGE per interval and used_memory in total. Usage: python3 scripts/today_cache_memory.py
"""
import random
import socket
import subprocess
import tempfile
import time

INTERVALS = {"1s": 1, "5s": 5, "10s": 10, "15s": 15, "30s": 30, "1m": 60, "3m": 180, "5m": 300, "15m": 900,
             "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400, "6h": 21600, "12h": 43200, "1d": 86400}


def cli(port, *args, stdin=None):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], input=stdin, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", d], stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    cli(port, "PING")
                    break
                except subprocess.CalledProcessError:
                    time.sleep(0.05)
            before = int(cli(port, "INFO", "memory").split("used_memory:")[1].split()[0])
            rng, price, day = random.Random(42), 97_000.0, 1_765_238_400_000
            print(f"{'interval':>8} {'bars':>7} {'bytes':>11} {'bytes/bar':>9}")
            for name, seconds in INTERVALS.items():
                key = f"candlecast:today:2025-12-09:BTCUSDT:{name}"
                lines = []
                for i in range(86_400 // seconds):
                    price *= 1 + rng.gauss(0, 0.0002)
                    o, h, l, c = (round(price * f, 2) for f in (1, 1.0003, 0.9997, 1.0001))
                    t = day + i * seconds * 1000
                    member = f"[{t},{o},{h},{l},{c},{round(rng.uniform(0.1, 50), 8)},{rng.randint(0, 60)},true]"
                    lines.append(f"ZADD {key} {t} {member}")
                cli(port, stdin="\n".join(lines) + "\n")
                usage = int(cli(port, "MEMORY", "USAGE", key, "SAMPLES", "0"))
                n = len(lines)
                print(f"{name:>8} {n:>7} {usage:>11,} {usage / n:>9.0f}")
            after = int(cli(port, "INFO", "memory").split("used_memory:")[1].split()[0])
            print(f"one symbol, all 16 intervals, a whole day: {(after - before) / 2**20:.1f} MiB of used_memory")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
