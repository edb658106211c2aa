"""Live bars against the real server, across a server restart: no duplicate and no missing closed bar."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from candlecast import AsyncClient, BarUpdate, Client

from conftest import TIMEOUT, Server


def test_live_bars_survive_a_restart_without_gap_or_duplicate(fresh_server: Server) -> None:
    server = fresh_server
    updates: list[BarUpdate] = []
    marks: dict[str, int] = {}

    def closed() -> list[int]:
        return [u.bar.timestamp for u in updates if u.kind == "closed"]

    async def until(pred: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not pred():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; got {len(updates)} updates"
            await asyncio.sleep(0.05)

    async def go() -> None:
        async with AsyncClient(server.url, reconnect_initial=0.1, reconnect_max=1.0) as c:
            stream = c.live_bars("BTCUSDT", "1s", include_forming=True)

            async def consume() -> None:
                async for u in stream:
                    updates.append(u)

            task = asyncio.create_task(consume())
            try:
                await until(lambda: len(closed()) >= 3, "3 closed bars")
                marks["stop"] = int(time.time() * 1000)
                await asyncio.to_thread(server.stop)
                # Down for a few bars' time, so the gap has bars to fetch; no claim depends on how long.
                await asyncio.sleep(3)
                await asyncio.to_thread(server.start)
                marks["start"] = int(time.time() * 1000)
                await until(lambda: bool(closed()) and closed()[-1] >= marks["start"] + 3000, "bars after the restart")
            finally:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                await stream.aclose()
            assert c.connections >= 2, "the stream reconnected"

            ts = closed()
            assert len(ts) == len(set(ts)), "no closed bar twice"
            assert all(b - a == 1000 for a, b in zip(ts, ts[1:])), f"no closed bar missing: {ts}"
            assert ts[0] < marks["stop"] - 1000 and ts[-1] > marks["start"], "the series spans the downtime"
            assert any(marks["stop"] < t < marks["start"] - 1000 for t in ts), "bars of the downtime were fetched"

            # What the stream gave, corrections applied, is what the server holds now.
            final = {}
            for u in updates:
                if u.kind != "forming":
                    final[u.bar.timestamp] = u.bar
            server_bars = await c.history("BTCUSDT", "1s", len(ts) + 5, start_time=ts[0], end_time=ts[-1] + 1)
            assert [b.timestamp for b in server_bars] == ts
            for b in server_bars:
                assert final[b.timestamp].same_values(b), (b, final[b.timestamp])

    asyncio.run(go())


def test_history_then_live_in_order_and_sync(server: Server) -> None:
    with Client(server.url) as c:
        with c.live_bars(["BTCUSDT", "ETHUSDT"], "1s", history=5) as stream:
            per_symbol: dict[str, list[int]] = {"BTCUSDT": [], "ETHUSDT": []}
            for u in stream:
                if u.kind == "closed":
                    per_symbol[u.symbol].append(u.bar.timestamp)
                if all(len(v) >= 7 for v in per_symbol.values()):
                    break
    for ts in per_symbol.values():
        assert all(b - a == 1000 for a, b in zip(ts, ts[1:])), ts


def test_after_resumes_from_a_bar_you_hold(server: Server) -> None:
    async def go() -> None:
        async with AsyncClient(server.url) as c:
            held = await c.history("ETHUSDT", "1s", 30, closed_only=True)
            after = held[9].timestamp  # as if our own database ended here
            got: list[int] = []
            async with c.live_bars("ETHUSDT", "1s", after=after) as stream:
                async for u in stream:
                    if u.kind == "closed":
                        got.append(u.bar.timestamp)
                    if len(got) >= 25:
                        break
            assert got == [after + 1000 * (i + 1) for i in range(25)]

    asyncio.run(asyncio.wait_for(go(), TIMEOUT))
