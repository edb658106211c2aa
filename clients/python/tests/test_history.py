"""History against the real server: any number of bars, paged back with end_time beyond the server's
per-request maximum, distinct and ascending."""

from __future__ import annotations

import asyncio

import pytest

from candlecast import MAX_PAGE, AsyncClient, Client, UnknownSymbol

from conftest import Server


def test_symbols(server: Server) -> None:
    async def go() -> None:
        async with AsyncClient(server.url) as c:
            assert {"BTCUSDT", "ETHUSDT"} <= set(await c.symbols())
            details = {d.symbol: d for d in await c.symbol_details()}
            assert details["BTCUSDT"].source == "simulated"

    asyncio.run(go())


def test_more_bars_than_one_request_returns_n_distinct_ascending(server: Server) -> None:
    n = MAX_PAGE + 1500  # beyond the server's limit per request: two pages

    async def go() -> None:
        async with AsyncClient(server.url) as c:
            bars = await c.history("BTCUSDT", "1s", n)
            assert len(bars) == n
            ts = [b.timestamp for b in bars]
            assert ts == sorted(set(ts)), "distinct and ascending"
            assert all(b - a == 1000 for a, b in zip(ts, ts[1:])), "pages neither overlap nor leave gaps"
            assert bars[-1].closed is False and all(b.closed for b in bars[:-1])

            closed = await c.history("BTCUSDT", "1s", 10, closed_only=True)
            assert len(closed) == 10 and all(b.closed for b in closed)

    asyncio.run(go())


def test_small_pages_give_the_same_bars_as_one_request(server: Server) -> None:
    async def go() -> None:
        async with AsyncClient(server.url) as one, AsyncClient(server.url, page_size=97) as paged:
            newest = await one.history("BTCUSDT", "1m", 1, closed_only=True)
            end = newest[-1].timestamp  # a fixed, exclusive end: both see the same range
            a = await one.history("BTCUSDT", "1m", 1000, end_time=end)
            b = await paged.history("BTCUSDT", "1m", 1000, end_time=end)
            assert len(a) == 1000 and a == b
            assert all(x.timestamp < end for x in a)
            # Scroll-back: the page before the oldest bar held ends exactly where the first began.
            older = await paged.history("BTCUSDT", "1m", 300, end_time=a[0].timestamp)
            assert len(older) == 300 and older[-1].timestamp + 60_000 == a[0].timestamp

    asyncio.run(go())


def test_fewer_bars_only_when_the_server_has_no_more(server: Server) -> None:
    async def go() -> None:
        async with AsyncClient(server.url, page_size=500) as c:
            last = (await c.history("ETHUSDT", "1h", 1, closed_only=True))[-1].timestamp
            start = last - 9 * 3_600_000
            bars = await c.history("ETHUSDT", "1h", 5000, start_time=start, end_time=last + 1)
            assert [b.timestamp for b in bars] == [start + i * 3_600_000 for i in range(10)]

    asyncio.run(go())


def test_dataframe_and_sync_client(server: Server) -> None:
    with Client(server.url) as c:
        frame = c.history_frame("ETHUSDT", "1m", 1200)
        assert len(frame) == 1200
        assert frame.index.is_monotonic_increasing and frame.index.is_unique
        assert str(getattr(frame.index, "tz", None)) == "UTC"
        assert list(frame.columns[:6]) == ["timestamp", "open", "high", "low", "close", "volume"]
        with pytest.raises(UnknownSymbol):
            c.history("NOSUCHSYM", "1m", 10)
