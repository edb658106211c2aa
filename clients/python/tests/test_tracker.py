"""Live-bar bookkeeping on fake message sequences (no server): corrections replace by timestamp, repeats
are dropped, gaps are fetched before the bar that reveals them."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from candlecast import Bar, BarTracker
from candlecast.client import AsyncClient, _BarsHandler

S = 1000  # 1s bars


def bar(ts: int, close: float = 100.0, closed: bool = True, correction: bool = False) -> Bar:
    return Bar(ts, close, close, close, close, 1.0, 1, closed, correction)


def msg(ts: int, close: float = 100.0, closed: bool = True, correction: bool = False) -> dict[str, Any]:
    data = {"timestamp": ts, "open": close, "high": close, "low": close, "close": close, "volume": 1.0, "trades": 1}
    data["closed"] = closed
    if correction:
        data["correction"] = True
    return {"type": "price_update", "symbol": "BTCUSDT", "interval": "1s", "data": data}


def test_closed_once_then_corrections_by_timestamp() -> None:
    t = BarTracker(S)
    assert t.apply(bar(0, closed=False)) == "forming"
    assert t.apply(bar(0)) == "closed"
    assert t.apply(bar(0)) is None  # the same closed bar again
    assert t.apply(bar(0, 101.0, correction=True)) == "correction"
    assert t.apply(bar(0, 101.0, correction=True)) is None  # that correction again
    assert t.apply(bar(0, 101.0)) is None  # a closed repeat with the corrected values
    assert t.apply(bar(0, 100.0)) == "correction"  # back to the old values: a change, so reported
    assert t.apply(bar(0, closed=False)) is None  # a stale forming state of a closed bucket
    assert t.apply(bar(S)) == "closed"
    assert t.last_closed == S


def test_gap_before() -> None:
    t = BarTracker(S)
    assert t.gap_before(bar(5 * S)) is None  # nothing known yet: no gap to speak of
    t.prime(bar(5 * S))
    assert t.gap_before(bar(6 * S)) is None
    assert t.gap_before(bar(9 * S)) == (6 * S, 9 * S)
    assert t.gap_before(bar(9 * S, closed=False)) is None  # forming bars reveal nothing
    assert t.gap_before(bar(3 * S)) is None


class FakeClient(AsyncClient):
    """Answers the gap fetches from a dict of server-side bars."""

    def __init__(self, bars: dict[int, Bar]):
        super().__init__("http://fake")
        self.bars = bars
        self.fetches: list[tuple[Optional[int], Optional[int]]] = []

    async def history(self, symbol: str, interval: str = "1m", limit: int = 1000, **kw: Any) -> list[Bar]:
        start, end = kw.get("start_time"), kw.get("end_time")
        self.fetches.append((start, end))
        return [
            b for ts, b in sorted(self.bars.items()) if (start is None or ts >= start) and (end is None or ts < end)
        ]


def run(handler: _BarsHandler, messages: list[dict[str, Any]]) -> list[tuple[int, str, float]]:
    async def go() -> list[tuple[int, str, float]]:
        out: list[tuple[int, str, float]] = []
        for m in messages:
            out.extend((u.bar.timestamp, u.kind, u.bar.close) for u in await handler.handle(m))
        return out

    return asyncio.run(go())


def test_handler_fake_sequence_across_a_reconnect() -> None:
    server = {ts: bar(ts, 100.0 + ts / S) for ts in range(0, 20 * S, S)}
    client = FakeClient(server)
    h = _BarsHandler(client, ["BTCUSDT"], "1s", history=2, after=None, include_forming=False)
    history = {
        "type": "historical",
        "symbol": "BTCUSDT",
        "interval": "1s",
        "data": [msg(ts, 100.0 + ts / S)["data"] for ts in (0, S, 2 * S)] + [msg(3 * S, 103.0, closed=False)["data"]],
    }
    got = run(
        h,
        [
            history,  # the newest 2 closed bars are shown, the forming one is not
            msg(3 * S, 103.0, closed=False),
            msg(3 * S, 103.0),  # closes
            msg(3 * S, 103.0),  # the same again (a hand-over repeat): dropped
            msg(3 * S, 103.5, correction=True),  # a late trade revised it
            msg(4 * S, 104.0),
            # The connection dropped here; the client reconnected and asked for history from before the
            # last bar (the lookback): repeats are dropped, and the reply ends at 6 s.
            {
                "type": "historical",
                "symbol": "BTCUSDT",
                "data": [msg(ts, 100.0 + ts / S)["data"] for ts in (2 * S, 4 * S, 5 * S, 6 * S)]
                + [msg(3 * S, 103.5, correction=True)["data"]],
            },
            # Bars 7..9 were never sent (beyond the hand-over): fetched before bar 10.
            msg(10 * S, 110.0),
            msg(9 * S, 109.0),  # late repeat of a fetched bar: dropped
            msg(9 * S, 109.25, correction=True),
        ],
    )
    assert got == [
        (1 * S, "closed", 101.0),
        (2 * S, "closed", 102.0),
        (3 * S, "closed", 103.0),
        (3 * S, "correction", 103.5),
        (4 * S, "closed", 104.0),
        (5 * S, "closed", 105.0),
        (6 * S, "closed", 106.0),
        (7 * S, "closed", 107.0),
        (8 * S, "closed", 108.0),
        (9 * S, "closed", 109.0),
        (10 * S, "closed", 110.0),
        (9 * S, "correction", 109.25),
    ]
    assert client.fetches == [(7 * S, 10 * S)]
    closed = [ts for ts, kind, _ in got if kind == "closed"]
    assert closed == sorted(set(closed))


def test_handler_after_starts_with_what_follows() -> None:
    client = FakeClient({ts: bar(ts) for ts in range(0, 10 * S, S)})
    h = _BarsHandler(client, ["BTCUSDT"], "1s", history=0, after=4 * S, include_forming=False)
    opening = h.opening()
    assert opening[0]["start_time"] < 4 * S and "end_time" not in opening[0]
    assert opening[-1]["type"] == "subscribe"
    got = run(h, [{"type": "historical", "symbol": "BTCUSDT", "data": [msg(8 * S)["data"]]}])
    assert [ts for ts, _, _ in got] == [5 * S, 6 * S, 7 * S, 8 * S]


def test_error_codes_end_or_retry() -> None:
    h = _BarsHandler(FakeClient({}), ["NOPE"], "1s", history=0, after=None, include_forming=False)
    try:
        run(h, [{"type": "error", "code": "unknown_symbol", "message": "unknown symbol(s): NOPE"}])
    except Exception as e:
        assert type(e).__name__ == "UnknownSymbol"
    else:
        raise AssertionError("unknown_symbol must end the stream")
