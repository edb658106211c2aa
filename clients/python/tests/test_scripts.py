"""Pushing over Socket.IO with a script key against the real server; without a key it is refused."""

from __future__ import annotations

import asyncio
import time

import pandas as pd
import pytest

from candlecast import (
    AsyncClient,
    AsyncScriptClient,
    AuthenticationFailed,
    ScriptClient,
    Trade,
    Unauthorized,
)

from conftest import SCRIPT_KEY, TIMEOUT, Server


def test_push_trades_with_a_key(server: Server) -> None:
    async def go() -> None:
        async with AsyncScriptClient(server.url, SCRIPT_KEY) as script, AsyncClient(server.url) as c:
            now = int(time.time() * 1000)
            r = await script.send_trade("PYBOT", 1.25, 10, side="buy", timestamp=now)
            assert (r.accepted, r.late_dropped, list(r.rejected)) == (1, 0, [])
            r = await script.send_trades(
                [
                    Trade("PYBOT", 1.30, 2, "sell", now),
                    {"symbol": "PYBOT", "price": -1, "qty": 1},
                    Trade("PYBOT", 1.2, 1),
                ]
            )
            assert r.accepted == 2 and [x["index"] for x in r.rejected] == [1]
            assert "PYBOT" in await c.symbols()
            # The pushed trades became bars like a feed's.
            deadline = time.monotonic() + TIMEOUT
            while True:
                bars = await c.history("PYBOT", "1s", 50)
                if sum(b.trades for b in bars) >= 3:
                    break
                assert time.monotonic() < deadline, bars
                await asyncio.sleep(0.2)
            assert min(b.low for b in bars if b.trades) == pytest.approx(1.2)

    asyncio.run(go())


def test_push_csvs_as_dataframes(server: Server) -> None:
    trades = pd.DataFrame(
        [
            ["2023-01-01T10:00:00", "PYCSV", "BUY", 100, 150.0, 25.5, "Three Red Bodies"],
            ["2023-01-01T10:05:00", "PYCSV", "HOLD", 50, 151.0, -1.0, "Three Red Bodies"],
        ],
        columns=["timestamp", "symbol", "side", "quantity", "price", "profit_loss", "strategy"],
    )
    market = pd.DataFrame(
        [["2023-01-01T10:00:00", "PYCSV", 149.5, 151.0, 149.0, 150.0, 50000, 65.5, 0.75]],
        columns=["timestamp", "symbol", "open", "high", "low", "close", "volume", "rsi", "signal_strength"],
    )
    with ScriptClient(server.url, SCRIPT_KEY) as script:
        report = script.send_trading_data(trades, market, timestamp="2023-01-01T10:00:00")
    assert (report.status, report.trades, report.market_data, report.rejected) == ("partial", 1, 1, 1)
    assert report.errors[0]["line"] == 3

    async def go() -> None:
        async with AsyncClient(server.url) as c:
            kept = await c.executed_trades("PYCSV")
            assert len(kept) == 1 and kept[0]["symbol"] == "PYCSV"
            bars = await c.history("PYCSV", "1m", 10, end_time=1672567200000 + 60_000)
            assert bars[-1].indicators == {"rsi": 65.5, "signal_strength": 0.75}
            report = await c.upload_trading_data(SCRIPT_KEY, trades_csv=trades.iloc[:1])
            assert report.status == "success"
            with pytest.raises(Unauthorized):
                await c.upload_trading_data("not-the-key", trades_csv=trades.iloc[:1])

    asyncio.run(go())


def test_without_a_key_pushes_are_refused_clearly(server: Server) -> None:
    async def go() -> None:
        async with AsyncScriptClient(server.url) as anonymous:
            with pytest.raises(Unauthorized, match="needs a script key"):
                await anonymous.send_trade("PYBOT", 1.25, 10)
            with pytest.raises(Unauthorized):
                await anonymous.send_trading_data(trades_csv="timestamp,symbol,side,quantity,price\n")
        with pytest.raises(AuthenticationFailed, match="invalid API key"):
            await AsyncScriptClient(server.url, "wrong-key").connect()

    asyncio.run(go())
