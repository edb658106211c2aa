"""The asyncio client: REST (symbols, history, uploads) and the ``/ws`` streams (bars, indicators, signals)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncGenerator,
    Generic,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
)

import aiohttp

from .errors import ApiError, ConnectionLost, api_error
from .intervals import interval_ms
from .models import Bar, BarUpdate, IndicatorValue, Signal, SymbolInfo, TradingDataReport
from .stream import Stream
from .tracker import BarTracker

if TYPE_CHECKING:
    import pandas

log = logging.getLogger("candlecast")

T = TypeVar("T")

#: The server's largest ``limit`` per history request.
MAX_PAGE = 5000
#: On reconnect, closed bars are fetched again from this far before the last one seen, so revisions made
#: while the connection was down (a late trade revises a bar up to the server's ``grace_ms``, 2 s by
#: default, after it closed) are not missed; unchanged repeats are dropped.
RECONNECT_LOOKBACK_MS = 10_000
#: Times a gap fetch is repeated while the server has fewer bars than buckets in the gap.
GAP_RETRIES = 6
# Server error codes that retrying cannot fix: the stream ends with the error instead of reconnecting.
_FATAL_CODES = frozenset(
    {"unknown_symbol", "invalid_parameter", "too_many_subscriptions", "unknown_type", "invalid_json", "frame_too_large"}
)
_CSV = Union[str, bytes, "pandas.DataFrame", None]


@dataclass(frozen=True)
class Quote:
    """The last trade of a symbol (``GET /api/price/{symbol}``)."""

    symbol: str
    price: float
    timestamp: int


class _Retry(Exception):
    """A transient failure inside a stream: reconnect after the backoff."""


class AsyncClient:
    """A candlecast server at ``url`` (``http://host:port``).

    Use it as ``async with AsyncClient(url) as client: ...`` or call :meth:`close` at the end.
    Streams reconnect by themselves, waiting ``reconnect_initial`` seconds after the first failure and
    doubling up to ``reconnect_max`` (each wait randomly shortened by up to half).
    """

    def __init__(
        self,
        url: str = "http://localhost:8000",
        *,
        timeout: float = 30.0,
        page_size: int = MAX_PAGE,
        reconnect_initial: float = 0.25,
        reconnect_max: float = 10.0,
        heartbeat: float = 20.0,
    ):
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE}")
        self.url = url.rstrip("/")
        self.ws_url = ("ws" + self.url[4:] if self.url.startswith("http") else self.url) + "/ws"
        self.timeout = timeout
        self.page_size = page_size
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.heartbeat = heartbeat
        #: Connections the streams of this client have opened (the first one included).
        self.connections = 0
        self._session: Optional[aiohttp.ClientSession] = None
        self._ws_session: Optional[aiohttp.ClientSession] = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for session in (self._session, self._ws_session):
            if session is not None:
                await session.close()
        self._session = self._ws_session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def _ws(self) -> aiohttp.ClientSession:
        # Its own session: a WebSocket lives for hours, so only connecting is timed; the heartbeat
        # (a ping every `heartbeat` seconds, closed without a pong) finds dead connections.
        if self._ws_session is None or self._ws_session.closed:
            timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_connect=self.timeout)
            self._ws_session = aiohttp.ClientSession(timeout=timeout)
        return self._ws_session

    # ---------------------------------------------------------------- REST

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self._http().request(method, self.url + path, **kwargs) as r:
                if r.status >= 400:
                    raise await _error_from(r)
                return await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise ConnectionLost(f"{method} {path}: {type(e).__name__}: {e}") from e

    async def symbols(self) -> list[str]:
        """The symbols the server runs (``GET /api/symbols``)."""
        body = await self._request("GET", "/api/symbols")
        return [str(s) for s in body.get("symbols", [])]

    async def symbol_details(self) -> list[SymbolInfo]:
        """Every symbol with its source (``simulated``, ``binance``, ``script``, ...), last price and trade rate."""
        body = await self._request("GET", "/api/symbols")
        return [
            SymbolInfo(
                symbol=str(d["symbol"]),
                source=str(d.get("source", "")),
                price=None if d.get("price") is None else float(d["price"]),
                trade_rate=None if d.get("trade_rate") is None else float(d["trade_rate"]),
            )
            for d in body.get("details", [])
        ]

    async def price(self, symbol: str) -> Quote:
        """The last trade of ``symbol``."""
        d = await self._request("GET", f"/api/price/{symbol}")
        return Quote(symbol=str(d["symbol"]), price=float(d["price"]), timestamp=int(d["timestamp"]))

    async def _history_page(
        self, symbol: str, interval: str, limit: int, end_time: Optional[int], start_time: Optional[int]
    ) -> list[Bar]:
        params: dict[str, str] = {"interval": interval, "limit": str(limit)}
        if end_time is not None:
            params["end_time"] = str(end_time)
        if start_time is not None:
            params["start_time"] = str(start_time)
        body = await self._request("GET", f"/api/historical/{symbol}", params=params)
        return [Bar.from_json(d) for d in body.get("data", [])]

    async def history(
        self,
        symbol: str,
        interval: str = "1m",
        limit: int = 1000,
        *,
        end_time: Optional[int] = None,
        start_time: Optional[int] = None,
        closed_only: bool = False,
    ) -> list[Bar]:
        """The newest ``limit`` bars of ``symbol`` with ``start_time <= timestamp < end_time`` (both optional,
        UTC ms), ascending, one per open time. Any ``limit``: beyond the server's 5,000 per request it pages
        back with ``end_time``. Fewer come back only when the server has no more in the range. Without
        ``end_time`` the last bar is the forming one, unless ``closed_only``."""
        interval_ms(interval)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        pages: list[list[Bar]] = []
        got = 0
        end = end_time
        while got < limit:
            n = min(self.page_size, limit - got)
            raw = await self._history_page(symbol, interval, n, end, start_time)
            in_range = [b for b in raw if end is None or b.timestamp < end]
            page = [b for b in in_range if b.closed] if closed_only else in_range
            if page:
                pages.append(page)
                got += len(page)
            # Fewer than asked: the server has no more in the range. (An answer without progress ends
            # the paging too, rather than asking the same page forever.)
            if len(raw) < n or not in_range:
                break
            end = in_range[0].timestamp
        bars = [b for page in reversed(pages) for b in page]
        return bars[-limit:]

    async def history_frame(
        self,
        symbol: str,
        interval: str = "1m",
        limit: int = 1000,
        *,
        end_time: Optional[int] = None,
        start_time: Optional[int] = None,
        closed_only: bool = False,
    ) -> pandas.DataFrame:
        """:meth:`history` as a pandas DataFrame indexed by open time (needs ``pip install candlecast[pandas]``)."""
        from .frames import bars_to_frame

        bars = await self.history(
            symbol, interval, limit, end_time=end_time, start_time=start_time, closed_only=closed_only
        )
        return bars_to_frame(bars)

    async def changes(self, symbol: str, interval: str, since: int, limit: int = MAX_PAGE) -> tuple[list[Bar], int]:
        """Bars created or revised at or after server time ``since`` (ms), and the ``as_of`` to pass as the next
        ``since`` (upsert polling: upsert the bars by timestamp, and no revision is missed between polls)."""
        params = {"interval": interval, "limit": str(limit), "since": str(since)}
        body = await self._request("GET", f"/api/historical/{symbol}", params=params)
        return [Bar.from_json(d) for d in body.get("data", [])], int(body.get("as_of", since))

    async def executed_trades(self, symbol: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        """The executed trades scripts reported in trades CSVs (``GET /api/trades``), oldest first."""
        params = {"limit": str(limit)}
        if symbol is not None:
            params["symbol"] = symbol
        body = await self._request("GET", "/api/trades", params=params)
        rows = body.get("trades", body) if isinstance(body, dict) else body
        return [dict(r) for r in rows] if isinstance(rows, list) else []

    async def upload_trading_data(
        self,
        key: str,
        trades_csv: _CSV = None,
        market_data_csv: _CSV = None,
        timestamp: Optional[str] = None,
    ) -> TradingDataReport:
        """Seed 003's CSV pair over REST (``POST /api/trading-data``) with a script key. Either CSV may be
        omitted; DataFrames are written with ``to_csv(index=False)``. Raises :class:`~candlecast.Unauthorized`
        without a valid key."""
        from .frames import csv_text

        body: dict[str, Any] = {}
        for name, value in (("trades_csv", trades_csv), ("market_data_csv", market_data_csv)):
            text = csv_text(value)
            if text is not None:
                body[name] = text
        if timestamp is not None:
            body["timestamp"] = timestamp
        headers = {"Authorization": f"Bearer {key}"}
        d = await self._request("POST", "/api/trading-data", json=body, headers=headers)
        return TradingDataReport.from_json(d)

    # ---------------------------------------------------------------- /ws streams

    def live_bars(
        self,
        symbols: Union[str, Sequence[str]],
        interval: str = "1m",
        *,
        history: int = 0,
        after: Optional[int] = None,
        include_forming: bool = False,
    ) -> Stream[BarUpdate]:
        """Live bars of one or more symbols at ``interval``, as :class:`BarUpdate` items.

        Per symbol, every closed bar comes exactly once (``kind == "closed"``), in order and without a gap,
        also across disconnects: the stream reconnects with backoff, subscribes again, and first fetches the
        closed bars it missed. A revision of a bar already sent comes as ``kind == "correction"``: replace
        the bar with the same ``timestamp``. Unchanged repeats are dropped.

        ``history``: first yield the newest ``history`` closed bars. ``after``: the open time of the newest
        closed bar you already hold; the stream starts with the closed bars after it. Otherwise it starts
        with the next bar to close. ``include_forming``: also yield the forming bar's updates
        (``kind == "forming"``, at most 10 a second per topic).
        """
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        handler = _BarsHandler(self, [s.upper() for s in names], interval, history, after, include_forming)
        return Stream(self._run(handler))

    def indicators(
        self,
        symbol: str,
        interval: str,
        indicator: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        history: int = 0,
        include_forming: bool = False,
    ) -> Stream[IndicatorValue]:
        """Values of a server-computed indicator (``sma``, ``ema``, ``rsi``, ``macd``, ``bollinger``, ``atr``,
        ``vwap``, ``supertrend``; see ``GET /api/indicators``) on each closed bar, once each, across
        reconnects. ``history``: first yield up to that many past values. ``include_forming``: also the
        previews on the forming bar (``closed == False``)."""
        handler = _IndicatorHandler(
            self, symbol.upper(), interval, indicator, dict(params or {}), history, include_forming
        )
        return Stream(self._run(handler))

    def signals(self, symbol: str, interval: str, *, history: bool = False) -> Stream[Signal]:
        """Signals of the strategies running live on (``symbol``, ``interval``), once each, across reconnects.
        ``history``: first yield the recent signals the server keeps."""
        return Stream(self._run(_SignalsHandler(symbol.upper(), interval, history)))

    async def _run(self, handler: _Handler[T]) -> AsyncGenerator[T, None]:
        """Connects, sends the handler's opening messages, yields what it makes of each message; on any
        transient failure waits (capped exponential backoff with jitter) and starts over."""
        attempt = 0
        while True:
            ws: Optional[aiohttp.ClientWebSocketResponse] = None
            try:
                ws = await self._ws().ws_connect(self.ws_url, heartbeat=self.heartbeat)
                self.connections += 1
                for m in handler.opening():
                    await ws.send_str(json.dumps(m))
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        log.warning("candlecast: a message that is not JSON, skipped: %.200s", msg.data)
                        continue
                    items = await handler.handle(data)
                    # The connection works (no error reply): the next failure starts the backoff afresh.
                    attempt = 0
                    for item in items:
                        yield item
                log.info("candlecast: connection closed (%s); reconnecting", ws.close_code)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ConnectionLost, _Retry) as e:
                log.info("candlecast: %s: %s; reconnecting", type(e).__name__, e)
            finally:
                if ws is not None:
                    await ws.close()
            delay = min(self.reconnect_max, self.reconnect_initial * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            await asyncio.sleep(delay)


class _Handler(Generic[T]):
    """What one stream sends on each (re)connect and makes of each server message."""

    def opening(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def handle(self, msg: Mapping[str, Any]) -> list[T]:
        raise NotImplementedError


def _raise_error(msg: Mapping[str, Any]) -> None:
    code = str(msg.get("code", "internal"))
    text = str(msg.get("message", ""))
    if code in _FATAL_CODES:
        raise api_error(code, text)
    raise _Retry(f"{code}: {text}")


class _BarsHandler(_Handler[BarUpdate]):
    def __init__(
        self,
        client: AsyncClient,
        symbols: list[str],
        interval: str,
        history: int,
        after: Optional[int],
        include_forming: bool,
    ):
        if not symbols:
            raise ValueError("live_bars needs at least one symbol")
        if history < 0:
            raise ValueError("history must be 0 or more")
        self.client = client
        self.symbols = symbols
        self.interval = interval
        self.step = interval_ms(interval)
        self.history = history
        self.include_forming = include_forming
        self.trackers = {s: BarTracker(self.step, last_closed=after) for s in symbols}
        # Symbols whose initial history (the starting point) has not arrived yet.
        self.starting = {s for s in symbols if after is None}

    def opening(self) -> list[dict[str, Any]]:
        # History first, on this connection and without end_time, then subscribe: the server then sends
        # every bar that closes between the two (docs/protocol.md, "History, then subscribe").
        msgs: list[dict[str, Any]] = []
        for s in self.symbols:
            req: dict[str, Any] = {"type": "get_historical", "trading_pair": s, "interval": self.interval}
            req["id"] = f"h:{s}"
            last = self.trackers[s].last_closed
            if last is None:
                req["limit"] = min(MAX_PAGE, self.history + 2)
            else:
                lookback = max(1, math.ceil(RECONNECT_LOOKBACK_MS / self.step)) * self.step
                req["start_time"] = last - lookback
                req["limit"] = MAX_PAGE
            msgs.append(req)
        msgs.append({"type": "subscribe", "trading_pairs": self.symbols, "interval": self.interval, "id": "sub"})
        return msgs

    async def handle(self, msg: Mapping[str, Any]) -> list[BarUpdate]:
        kind = msg.get("type")
        if kind == "price_update" and msg.get("interval", self.interval) == self.interval:
            symbol = str(msg.get("symbol", "")).upper()
            if symbol in self.trackers:
                return await self._feed(symbol, [Bar.from_json(msg["data"])])
        elif kind == "historical":
            symbol = str(msg.get("symbol", "")).upper()
            if symbol in self.trackers:
                bars = [Bar.from_json(d) for d in msg.get("data", [])]
                if symbol in self.starting:
                    self.starting.discard(symbol)
                    return self._start(symbol, bars)
                return await self._feed(symbol, bars)
        elif kind == "error":
            _raise_error(msg)
        return []

    def _start(self, symbol: str, bars: list[Bar]) -> list[BarUpdate]:
        """The first history of a symbol: its newest ``history`` closed bars are yielded, older ones only
        mark the starting point."""
        tracker = self.trackers[symbol]
        closed = [b for b in bars if b.closed]
        shown = closed[len(closed) - self.history :] if self.history else []
        for b in closed[: len(closed) - len(shown)]:
            tracker.prime(b)
        out = []
        for b in shown + [b for b in bars if not b.closed]:
            kind = tracker.apply(b)
            if kind is not None and (kind != "forming" or self.include_forming):
                out.append(BarUpdate(symbol, self.interval, b, kind))
        return out

    async def _feed(self, symbol: str, bars: list[Bar]) -> list[BarUpdate]:
        tracker = self.trackers[symbol]
        out: list[BarUpdate] = []
        for bar in bars:
            gap = tracker.gap_before(bar)
            if gap is not None:
                # Closed bars missed while disconnected (or beyond one history reply): fetched over REST,
                # so they come out before this one, in order.
                for b in await self._fetch_gap(symbol, gap):
                    k = tracker.apply(b)
                    if k is not None:
                        out.append(BarUpdate(symbol, self.interval, b, k))
            kind = tracker.apply(bar)
            if kind is not None and (kind != "forming" or self.include_forming):
                out.append(BarUpdate(symbol, self.interval, bar, kind))
        return out


    async def _fetch_gap(self, symbol: str, gap: tuple[int, int]) -> list[Bar]:
        """The closed bars with open times in ``[gap)``. The server closes a bar for every bucket (flat ones
        without trades), so fewer than the bucket count means the server has not caught up yet (a restarted
        server is still loading what it missed): asked again after a pause, a few times, then taken as is."""
        count = max(1, (gap[1] - gap[0]) // self.step)
        for attempt in range(GAP_RETRIES + 1):
            missed = await self.client.history(
                symbol, self.interval, count, start_time=gap[0], end_time=gap[1], closed_only=True
            )
            if len(missed) >= count or attempt == GAP_RETRIES:
                if len(missed) < count:
                    log.warning("candlecast: %s %s: only %d of %d missed bars exist", symbol, self.interval,
                                len(missed), count)
                return missed
            log.debug("candlecast: %s %s: %d of %d missed bars so far; asking again", symbol, self.interval,
                      len(missed), count)
            await asyncio.sleep(min(self.client.reconnect_max, self.client.reconnect_initial * 2**attempt))
        return []


class _IndicatorHandler(_Handler[IndicatorValue]):
    def __init__(
        self,
        client: AsyncClient,
        symbol: str,
        interval: str,
        indicator: str,
        params: dict[str, Any],
        history: int,
        include_forming: bool,
    ):
        self.symbol = symbol
        self.interval = interval
        self.step = interval_ms(interval)
        self.indicator = indicator
        self.params = params
        self.history = history
        self.include_forming = include_forming
        self.last_closed: Optional[int] = None
        self.seen: dict[int, Mapping[str, Optional[float]]] = {}

    def opening(self) -> list[dict[str, Any]]:
        if self.last_closed is None:
            history = self.history
        else:
            # Enough values to cover the time since the last one we have, plus the revision lookback.
            missed = (int(time.time() * 1000) - self.last_closed + RECONNECT_LOOKBACK_MS) // self.step + 2
            history = int(min(MAX_PAGE, max(missed, 1)))
        return [
            {
                "type": "subscribe_indicator",
                "trading_pair": self.symbol,
                "interval": self.interval,
                "indicator": self.indicator,
                "params": self.params,
                "history": history,
                "id": "ind",
            }
        ]

    async def handle(self, msg: Mapping[str, Any]) -> list[IndicatorValue]:
        kind = msg.get("type")
        if kind == "error":
            _raise_error(msg)
        if kind == "indicator_history":
            values = [IndicatorValue.from_json(msg, d) for d in msg.get("data", [])]
            if self.last_closed is None and not self.history:
                for v in values:
                    if v.closed:
                        self._remember(v)
                return []
            return self._apply(values)
        if kind == "indicator" and str(msg.get("indicator")) == self.indicator:
            return self._apply([IndicatorValue.from_json(msg, msg["data"])])
        return []

    def _remember(self, v: IndicatorValue) -> None:
        self.seen[v.timestamp] = v.values
        self.last_closed = v.timestamp if self.last_closed is None else max(self.last_closed, v.timestamp)
        if len(self.seen) > 2048:
            for ts in sorted(self.seen)[:1024]:
                del self.seen[ts]

    def _apply(self, values: list[IndicatorValue]) -> list[IndicatorValue]:
        out: list[IndicatorValue] = []
        for v in values:
            if not v.closed:
                if self.include_forming and (self.last_closed is None or v.timestamp > self.last_closed):
                    out.append(v)
                continue
            if self.last_closed is not None and v.timestamp <= self.last_closed:
                if self.seen.get(v.timestamp) == v.values:
                    continue
                v = dataclasses.replace(v, correction=True)
            self._remember(v)
            out.append(v)
        return out


class _SignalsHandler(_Handler[Signal]):
    def __init__(self, symbol: str, interval: str, history: bool):
        self.symbol = symbol
        self.interval = interval
        interval_ms(interval)
        self.history = history
        self.started = False
        self.last_time: Optional[int] = None
        self.seen: set[tuple[int, str, str]] = set()

    def opening(self) -> list[dict[str, Any]]:
        return [{"type": "subscribe_signals", "trading_pair": self.symbol, "interval": self.interval, "id": "sig"}]

    async def handle(self, msg: Mapping[str, Any]) -> list[Signal]:
        kind = msg.get("type")
        if kind == "error":
            _raise_error(msg)
        if kind == "signals_history":
            signals = [Signal.from_json(d, self.symbol, self.interval) for d in msg.get("data", [])]
            if not self.started:
                self.started = True
                if not self.history:
                    for s in signals:
                        self._remember(s)
                    return []
            return [s for s in signals if self._new(s)]
        if kind == "signal":
            s = Signal.from_json(msg, self.symbol, self.interval)
            return [s] if self._new(s) else []
        return []

    def _remember(self, s: Signal) -> None:
        self.seen.add((s.time, s.strategy, s.side))
        self.last_time = s.time if self.last_time is None else max(self.last_time, s.time)

    def _new(self, s: Signal) -> bool:
        key = (s.time, s.strategy, s.side)
        if key in self.seen or (self.last_time is not None and s.time < self.last_time):
            return False
        self._remember(s)
        # Only signals at the newest time can repeat; older keys are never consulted again.
        if self.last_time is not None and len(self.seen) > 256:
            newest = self.last_time
            self.seen = {k for k in self.seen if k[0] >= newest}
        return True


async def _error_from(r: aiohttp.ClientResponse) -> ApiError:
    text = await r.text()
    retry = r.headers.get("Retry-After")
    retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return api_error(str(body["error"]), str(body.get("detail", body.get("message", ""))), r.status, retry_after)
    return api_error(f"http_{r.status}", text[:500], r.status, retry_after)
