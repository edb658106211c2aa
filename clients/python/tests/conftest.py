"""The real candlecast server as a child process: the binary from `cargo build --bin candlecast` (or
$CANDLECAST_BIN), on a free port of 127.0.0.1, with its own store directory and a small backfill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT_KEY = "pytest-script-key"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
# Generous: the machine is shared; these bound waits, they are not performance claims.
TIMEOUT = 120.0

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
static_dir = "/nonexistent-candlecast-dist"
workers = 2

[feed]
symbols = ["BTCUSDT", "ETHUSDT"]

[feed.simulated]
backfill_days = 1
backfill_fine_hours = 2

[store]
path = "{store}"

[scripts]
keys = ["{key}"]

[strategies]
live = [{{ strategy = "ema_cross", symbol = "BTCUSDT", interval = "1s", params = {{ fast = 2, slow = 3 }} }}]

[log]
level = "warn"
"""


def binary() -> Path:
    path = Path(os.environ.get("CANDLECAST_BIN", REPO / "target" / "debug" / "candlecast"))
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run `cargo build --bin candlecast` first (or set CANDLECAST_BIN)")
    return path


class Server:
    """One candlecast process; :meth:`stop` and :meth:`start` again keep its port and store directory."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.store = workdir / "store"
        self.port = 0
        self.proc: Optional[subprocess.Popen[str]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.workdir / "candlecast.toml"
        config.write_text(CONFIG.format(port=self.port, store=self.store, key=SCRIPT_KEY))
        # The test's own settings only: no CANDLECAST__* from the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLECAST__")}
        self.proc = subprocess.Popen(
            [str(binary()), "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "stderr.log", "a"),
            text=True,
            env=env,
        )
        found = threading.Event()
        proc = self.proc

        def read() -> None:
            # Reads the "listening on" line, then keeps draining stdout so the child never blocks on it.
            assert proc.stdout is not None
            for line in proc.stdout:
                prefix = "candlecast listening on http://"
                if line.startswith(prefix):
                    self.port = int(line[len(prefix) :].strip().rsplit(":", 1)[1])
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + TIMEOUT
        while not found.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"candlecast did not start: {(self.workdir / 'stderr.log').read_text()[-2000:]}")
        # Ready once it serves the backfilled history of every symbol (it answers /health before that).
        for path in [f"/api/historical/{s}?interval={i}&limit=2" for s in SYMBOLS for i in ("1s", "1m")]:
            while True:
                try:
                    with urllib.request.urlopen(self.url + path, timeout=5) as r:
                        if len(json.load(r).get("data", [])) >= 2:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"candlecast did not serve {path}")
                time.sleep(0.1)
        # The backfill older than the in-memory window is served from the store once written (in batches,
        # after the start): wait until the store has taken everything.
        while True:
            try:
                with urllib.request.urlopen(self.url + "/api/stats", timeout=5) as r:
                    p = json.load(r)["stats"]["persistence"]
                    if p["written_bars"] > 0 and p["buffered_bars"] == 0 and p["journal_bars"] == 0:
                        if all(self._beyond_window(s) for s in SYMBOLS):
                            return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("candlecast did not write its backfill to the store")
            time.sleep(0.1)

    def _beyond_window(self, symbol: str) -> bool:
        """Whether 1s bars older than the newest 5,000 (the in-memory window) are served."""
        base = f"{self.url}/api/historical/{symbol}?interval=1s"
        with urllib.request.urlopen(f"{base}&limit=5000", timeout=5) as r:
            data = json.load(r)["data"]
        if len(data) < 5000:
            return False
        with urllib.request.urlopen(f"{base}&limit=1&end_time={data[0]['timestamp']}", timeout=5) as r:
            return bool(json.load(r)["data"])

    def stop(self) -> None:
        """SIGTERM (a clean shutdown that flushes the store), SIGKILL if it does not end."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def fresh_server() -> Iterator[Server]:
    """A server of the test's own, for tests that stop and restart it."""
    with tempfile.TemporaryDirectory(prefix="candlecast-py-") as d:
        server = Server(Path(d))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server shared by the tests that only read or push."""
    with tempfile.TemporaryDirectory(prefix="candlecast-py-") as d:
        s = Server(Path(d))
        s.start()
        try:
            yield s
        finally:
            s.stop()
