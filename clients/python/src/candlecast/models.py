"""Typed values the server sends: bars, indicator values, signals, push reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Optional, Sequence

#: What a live update is: a bar's final state, a revision of an already closed bar, or the forming bar.
UpdateKind = Literal["closed", "correction", "forming"]


def _float(v: Any) -> float:
    return float(v) if v is not None else float("nan")


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar. ``timestamp`` is its open time (UTC ms), aligned to its interval."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    #: False for the forming bar (its bucket has not ended yet).
    closed: bool
    #: True when this is a revision of an already closed bar by a late trade: upsert by ``timestamp``.
    correction: bool = False
    #: Indicator columns a script pushed with the bar (``rsi``, ``signal_strength``, ...), if any.
    indicators: Optional[Mapping[str, float]] = None

    @property
    def time(self) -> datetime:
        """The open time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp / 1000, tz=timezone.utc)

    def same_values(self, other: Bar) -> bool:
        """Whether both carry the same OHLCV and trade count (flags aside)."""
        return (self.open, self.high, self.low, self.close, self.volume, self.trades) == (
            other.open,
            other.high,
            other.low,
            other.close,
            other.volume,
            other.trades,
        )

    @classmethod
    def from_json(cls, d: Mapping[str, Any], correction: bool = False) -> Bar:
        ind = d.get("indicators")
        return cls(
            timestamp=int(d["timestamp"]),
            open=_float(d.get("open")),
            high=_float(d.get("high")),
            low=_float(d.get("low")),
            close=_float(d.get("close")),
            volume=_float(d.get("volume")),
            trades=int(d.get("trades") or 0),
            closed=bool(d.get("closed", True)),
            correction=bool(d.get("correction", correction)),
            indicators={str(k): float(v) for k, v in ind.items() if v is not None} if isinstance(ind, dict) else None,
        )


@dataclass(frozen=True)
class BarUpdate:
    """One item of :meth:`AsyncClient.live_bars`: a bar of ``symbol`` at ``interval``, and what it is."""

    symbol: str
    interval: str
    bar: Bar
    kind: UpdateKind


@dataclass(frozen=True)
class SymbolInfo:
    """An entry of ``GET /api/symbols``: where the symbol comes from, its last price and trade rate."""

    symbol: str
    source: str
    price: Optional[float]
    trade_rate: Optional[float]


@dataclass(frozen=True)
class IndicatorValue:
    """One indicator value on a bar. ``values`` holds the indicator's outputs: ``{"value": ...}`` for
    single-output indicators, ``{"macd", "signal", "histogram"}``, ``{"upper", "middle", "lower"}``, ..."""

    symbol: str
    interval: str
    indicator: str
    params: Mapping[str, Any]
    timestamp: int
    closed: bool
    values: Mapping[str, Optional[float]]
    #: True when a closed bar's value changed after it was first sent (the bar was revised).
    correction: bool = False

    @property
    def value(self) -> Optional[float]:
        """The single output of single-output indicators (``sma``, ``ema``, ``rsi``, ...)."""
        return self.values.get("value")

    @classmethod
    def from_json(cls, msg: Mapping[str, Any], d: Mapping[str, Any]) -> IndicatorValue:
        values = {
            str(k): (float(v) if isinstance(v, (int, float)) else None)
            for k, v in d.items()
            if k not in ("timestamp", "closed")
        }
        return cls(
            symbol=str(msg.get("symbol", "")),
            interval=str(msg.get("interval", "")),
            indicator=str(msg.get("indicator", "")),
            params=dict(msg.get("params") or {}),
            timestamp=int(d["timestamp"]),
            closed=bool(d.get("closed", True)),
            values=values,
        )


@dataclass(frozen=True)
class Signal:
    """A signal of a strategy running live on the server. ``time`` is the open time of the closed bar that
    produced it, ``price`` its close."""

    symbol: str
    interval: str
    time: int
    side: str
    price: float
    strategy: str
    reason: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any], symbol: str = "", interval: str = "") -> Signal:
        return cls(
            symbol=str(d.get("symbol", symbol)),
            interval=str(d.get("interval", interval)),
            time=int(d["time"]),
            side=str(d.get("side", "")),
            price=_float(d.get("price")),
            strategy=str(d.get("strategy", "")),
            reason=str(d.get("reason", "")),
        )


@dataclass(frozen=True)
class Trade:
    """A market trade pushed by a script. ``timestamp``: epoch ms (default: now, set by the server)."""

    symbol: str
    price: float
    qty: float
    side: Optional[Literal["buy", "sell"]] = None
    timestamp: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"symbol": self.symbol, "price": self.price, "qty": self.qty}
        if self.side is not None:
            d["side"] = self.side
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp
        return d


@dataclass(frozen=True)
class PushResult:
    """The server's answer to pushed trades: how many entered the engine, how many were too late, and the
    refused ones (``{"index": position in what you sent, "reason": ...}``)."""

    accepted: int
    late_dropped: int
    rejected: Sequence[Mapping[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PushResult:
        return cls(
            accepted=int(d.get("accepted", 0)),
            late_dropped=int(d.get("late_dropped", 0)),
            rejected=list(d.get("rejected") or []),
        )


@dataclass(frozen=True)
class TradingDataReport:
    """``data_received``: what the server kept of a trades / market-data CSV pair. ``status`` is ``success``,
    ``partial`` or ``error``; ``errors`` names each refused row (``csv``, ``line``, ``reason``)."""

    status: str
    message: str
    trades: int
    market_data: int
    rejected: int
    errors: Sequence[Mapping[str, Any]]
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TradingDataReport:
        return cls(
            status=str(d.get("status", "")),
            message=str(d.get("message", "")),
            trades=int(d.get("trades", 0)),
            market_data=int(d.get("market_data", 0)),
            rejected=int(d.get("rejected", 0)),
            errors=list(d.get("errors") or []),
            raw=dict(d),
        )
