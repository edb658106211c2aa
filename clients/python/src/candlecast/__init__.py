"""candlecast: a Python client for the candlecast market-data server.

- :class:`AsyncClient` (asyncio) and :class:`Client` (blocking): symbols, history (any length, paged; as
  typed bars or pandas DataFrames), live bars that survive disconnects without a gap or a duplicate,
  indicator and signal streams, CSV uploads over REST.
- :class:`AsyncScriptClient` and :class:`ScriptClient`: push trades and seed 003's CSVs over Socket.IO with
  a script key.
"""

from .client import MAX_PAGE, AsyncClient, Quote
from .errors import ApiError, AuthenticationFailed, CandlecastError, ConnectionLost, Unauthorized, UnknownSymbol
from .frames import bars_to_frame
from .intervals import INTERVALS, interval_ms
from .models import Bar, BarUpdate, IndicatorValue, PushResult, Signal, SymbolInfo, Trade, TradingDataReport, UpdateKind
from .scripts import AsyncScriptClient
from .stream import Stream
from .sync import Client, ScriptClient, SyncStream
from .tracker import BarTracker

__version__ = "0.1.0"

__all__ = [
    "MAX_PAGE",
    "INTERVALS",
    "ApiError",
    "AsyncClient",
    "AsyncScriptClient",
    "AuthenticationFailed",
    "Bar",
    "BarTracker",
    "BarUpdate",
    "CandlecastError",
    "Client",
    "ConnectionLost",
    "IndicatorValue",
    "PushResult",
    "Quote",
    "ScriptClient",
    "Signal",
    "Stream",
    "SymbolInfo",
    "SyncStream",
    "Trade",
    "TradingDataReport",
    "Unauthorized",
    "UnknownSymbol",
    "UpdateKind",
    "bars_to_frame",
    "interval_ms",
]
