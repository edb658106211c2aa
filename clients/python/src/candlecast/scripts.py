"""Pushing from scripts over Socket.IO (``/socket.io/``, seed 003): trades and CSVs, with a script key."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, Type, Union

import socketio

from .errors import ApiError, AuthenticationFailed, ConnectionLost, api_error
from .frames import csv_text
from .models import PushResult, Trade, TradingDataReport

if TYPE_CHECKING:
    import pandas

#: Trades per ``trades`` event: about 80 bytes each as JSON, well under the server's 1,000,000-byte maxPayload.
BATCH_SIZE = 5000
# Refusals that mean "later": the event is sent again after a pause.
_TRANSIENT = frozenset({"rate_limited", "busy"})


class AsyncScriptClient:
    """A script's Socket.IO connection to candlecast at ``url``, presenting ``key`` (from ``[scripts] keys``).

    Without a key the server treats the connection as a dashboard: every push is refused and raises
    :class:`~candlecast.Unauthorized`. A wrong key is refused at :meth:`connect` with
    :class:`~candlecast.AuthenticationFailed`. python-socketio reconnects by itself after a disconnect;
    a push made while disconnected raises :class:`~candlecast.ConnectionLost` (nothing was sent).
    """

    def __init__(
        self,
        url: str = "http://localhost:8000",
        key: Optional[str] = None,
        *,
        timeout: float = 30.0,
        transports: Optional[Sequence[str]] = None,
        retries: int = 5,
    ):
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.transports = list(transports) if transports else None
        self.retries = retries
        self._sio: Optional[Any] = None
        self._refusal: Optional[str] = None

    async def __aenter__(self) -> AsyncScriptClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._sio is not None and bool(self._sio.connected)

    async def connect(self) -> None:
        """Connects (HTTP long-polling, upgraded to WebSocket) and joins the script room when there is a key."""
        sio = socketio.AsyncClient()
        self._refusal = None

        async def on_connect_error(data: Any = None) -> None:
            self._refusal = str(data.get("message", data)) if isinstance(data, dict) else str(data)

        sio.on("connect_error", on_connect_error)
        auth = {"token": self.key} if self.key else None
        try:
            await sio.connect(self.url, auth=auth, transports=self.transports, wait_timeout=self.timeout)
        except socketio.exceptions.ConnectionError as e:
            if self._refusal is not None:
                # The key itself is never part of the message.
                raise AuthenticationFailed(f"the server refused the connection: {self._refusal}") from e
            raise ConnectionLost(f"cannot connect to {self.url}: {e}") from e
        self._sio = sio
        if self.key:
            await self._call("join_script", None)

    async def close(self) -> None:
        if self._sio is not None:
            await self._sio.disconnect()
            self._sio = None

    async def _call(self, event: str, data: Any) -> Mapping[str, Any]:
        """Sends ``event`` and waits for its acknowledgement; refusals become exceptions."""
        for attempt in range(self.retries + 1):
            sio = self._sio
            if sio is None or not sio.connected:
                raise ConnectionLost(f"{event}: not connected (call connect(), or wait for the reconnection)")
            try:
                reply = await sio.call(event, data, timeout=self.timeout) if data is not None else await sio.call(
                    event, timeout=self.timeout
                )
            except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError) as e:
                # It may have been applied: not sent again, so nothing is pushed twice.
                raise ConnectionLost(f"{event}: no acknowledgement ({type(e).__name__})") from e
            if not isinstance(reply, dict):
                return {}
            if reply.get("ok") is False:
                code = str(reply.get("error", "refused"))
                if code in _TRANSIENT and attempt < self.retries:
                    await asyncio.sleep(min(5.0, 0.5 * 2**attempt))
                    continue
                raise api_error(code, str(reply.get("message", "")))
            return reply
        raise ApiError("rate_limited", f"{event}: still refused after {self.retries} retries")

    async def send_trade(
        self,
        symbol: str,
        price: float,
        qty: float,
        side: Optional[str] = None,
        timestamp: Optional[int] = None,
    ) -> PushResult:
        """One market trade into the engine (``timestamp``: epoch ms, default now). A new symbol is created
        with source ``script``; its bars reach ``/ws`` and ``/api/historical`` like any other's."""
        trade: dict[str, Any] = {"symbol": symbol, "price": price, "qty": qty}
        if side is not None:
            trade["side"] = side
        if timestamp is not None:
            trade["timestamp"] = timestamp
        return PushResult.from_json(await self._call("trade", trade))

    async def send_trades(self, trades: Iterable[Union[Trade, Mapping[str, Any]]]) -> PushResult:
        """Many trades, in batches of :data:`BATCH_SIZE`. ``rejected`` indexes refer to positions in ``trades``."""
        accepted = late = 0
        rejected: list[Mapping[str, Any]] = []
        batch: list[dict[str, Any]] = []
        offset = 0

        async def flush() -> None:
            nonlocal accepted, late, offset
            r = PushResult.from_json(await self._call("trades", batch))
            accepted += r.accepted
            late += r.late_dropped
            rejected.extend({**x, "index": int(x.get("index", 0)) + offset} for x in r.rejected)
            offset += len(batch)
            batch.clear()

        for t in trades:
            batch.append(t.to_json() if isinstance(t, Trade) else dict(t))
            if len(batch) >= BATCH_SIZE:
                await flush()
        if batch:
            await flush()
        return PushResult(accepted=accepted, late_dropped=late, rejected=rejected)

    async def send_trading_data(
        self,
        trades_csv: Union[str, bytes, pandas.DataFrame, None] = None,
        market_data_csv: Union[str, bytes, pandas.DataFrame, None] = None,
        timestamp: Optional[str] = None,
    ) -> TradingDataReport:
        """Seed 003's ``send_trading_data``: a trades CSV and/or a market-data CSV (text, bytes or DataFrames).
        Returns the server's ``data_received`` report (rows kept, each refused row with its line number);
        dashboards get the kept rows as ``trading_update``."""
        data: dict[str, Any] = {}
        for name, value in (("trades_csv", trades_csv), ("market_data_csv", market_data_csv)):
            text = csv_text(value)
            if text is not None:
                data[name] = text
        if timestamp is not None:
            data["timestamp"] = timestamp
        return TradingDataReport.from_json(await self._call("send_trading_data", data))
