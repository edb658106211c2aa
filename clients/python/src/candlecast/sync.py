"""Blocking wrappers for scripts without asyncio: :class:`Client` and :class:`ScriptClient` run their async
counterparts on an event loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Awaitable, Iterable, Iterator, Mapping, Optional, Sequence, Type, TypeVar, Union

from .client import AsyncClient, Quote
from .models import Bar, BarUpdate, IndicatorValue, PushResult, Signal, SymbolInfo, Trade, TradingDataReport
from .scripts import AsyncScriptClient
from .stream import Stream

if TYPE_CHECKING:
    import pandas

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="candlecast-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


class SyncStream(Iterator[T]):
    """A :class:`~candlecast.stream.Stream` iterated from blocking code; ``close()`` ends it."""

    def __init__(self, loop: _Loop, stream: Stream[T]):
        self._loop = loop
        self._stream = stream

    def __iter__(self) -> SyncStream[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._loop.run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._loop.run(self._stream.aclose())

    def __enter__(self) -> SyncStream[T]:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()


class Client:
    """The blocking form of :class:`~candlecast.AsyncClient` (same methods and arguments)."""

    def __init__(self, url: str = "http://localhost:8000", **options: Any):
        self._loop = _Loop()
        self._client = AsyncClient(url, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run(self._client.close())
        self._loop.stop()

    def symbols(self) -> list[str]:
        return self._loop.run(self._client.symbols())

    def symbol_details(self) -> list[SymbolInfo]:
        return self._loop.run(self._client.symbol_details())

    def price(self, symbol: str) -> Quote:
        return self._loop.run(self._client.price(symbol))

    def history(self, symbol: str, interval: str = "1m", limit: int = 1000, **kw: Any) -> list[Bar]:
        return self._loop.run(self._client.history(symbol, interval, limit, **kw))

    def history_frame(self, symbol: str, interval: str = "1m", limit: int = 1000, **kw: Any) -> pandas.DataFrame:
        return self._loop.run(self._client.history_frame(symbol, interval, limit, **kw))

    def changes(self, symbol: str, interval: str, since: int) -> tuple[list[Bar], int]:
        return self._loop.run(self._client.changes(symbol, interval, since))

    def executed_trades(self, symbol: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._loop.run(self._client.executed_trades(symbol, limit))

    def upload_trading_data(self, key: str, **kw: Any) -> TradingDataReport:
        return self._loop.run(self._client.upload_trading_data(key, **kw))

    def live_bars(self, symbols: Union[str, Sequence[str]], interval: str = "1m", **kw: Any) -> SyncStream[BarUpdate]:
        return SyncStream(self._loop, self._client.live_bars(symbols, interval, **kw))

    def indicators(
        self, symbol: str, interval: str, indicator: str, params: Optional[Mapping[str, Any]] = None, **kw: Any
    ) -> SyncStream[IndicatorValue]:
        return SyncStream(self._loop, self._client.indicators(symbol, interval, indicator, params, **kw))

    def signals(self, symbol: str, interval: str, **kw: Any) -> SyncStream[Signal]:
        return SyncStream(self._loop, self._client.signals(symbol, interval, **kw))


class ScriptClient:
    """The blocking form of :class:`~candlecast.AsyncScriptClient`; connects at construction."""

    def __init__(self, url: str = "http://localhost:8000", key: Optional[str] = None, **options: Any):
        self._loop = _Loop()
        self._client = AsyncScriptClient(url, key, **options)
        try:
            self._loop.run(self._client.connect())
        except BaseException:
            self._loop.stop()
            raise

    def __enter__(self) -> ScriptClient:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run(self._client.close())
        self._loop.stop()

    def send_trade(self, symbol: str, price: float, qty: float, **kw: Any) -> PushResult:
        return self._loop.run(self._client.send_trade(symbol, price, qty, **kw))

    def send_trades(self, trades: Iterable[Union[Trade, Mapping[str, Any]]]) -> PushResult:
        return self._loop.run(self._client.send_trades(trades))

    def send_trading_data(
        self,
        trades_csv: Union[str, bytes, pandas.DataFrame, None] = None,
        market_data_csv: Union[str, bytes, pandas.DataFrame, None] = None,
        timestamp: Optional[str] = None,
    ) -> TradingDataReport:
        return self._loop.run(self._client.send_trading_data(trades_csv, market_data_csv, timestamp))
