"""Indicator and signal streams against the real server."""

from __future__ import annotations

import asyncio

import pytest

from candlecast import AsyncClient, IndicatorValue, Signal, UnknownSymbol

from conftest import Server


def test_indicator_history_then_live_values_once_each(server: Server) -> None:
    async def go() -> None:
        got: list[IndicatorValue] = []
        async with AsyncClient(server.url) as c:
            async with c.indicators("BTCUSDT", "1s", "ema", {"period": 5}, history=10) as stream:
                async for v in stream:
                    got.append(v)
                    if len(got) >= 13:
                        break
        assert all(v.closed and v.indicator == "ema" and v.value is not None for v in got)
        assert got[0].params == {"period": 5}
        ts = [v.timestamp for v in got]
        assert ts == sorted(set(ts)) and all(b - a == 1000 for a, b in zip(ts, ts[1:])), ts

    asyncio.run(asyncio.wait_for(go(), 120))


def test_signals_of_a_live_strategy(server: Server) -> None:
    async def go() -> None:
        got: list[Signal] = []
        async with AsyncClient(server.url) as c:
            async with c.signals("BTCUSDT", "1s", history=True) as stream:
                async for s in stream:
                    got.append(s)
                    if len(got) >= 3:
                        break
        assert all(s.strategy == "ema_cross" and s.side in ("buy", "sell") for s in got)
        keys = [(s.time, s.side) for s in got]
        assert len(keys) == len(set(keys))

    asyncio.run(asyncio.wait_for(go(), 120))


def test_unknown_symbol_ends_the_stream(server: Server) -> None:
    async def go() -> None:
        async with AsyncClient(server.url) as c:
            with pytest.raises(UnknownSymbol):
                async for _ in c.live_bars("NOSUCHSYM", "1m"):
                    pass

    asyncio.run(asyncio.wait_for(go(), 120))
