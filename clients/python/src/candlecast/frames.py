"""pandas helpers (optional: ``pip install candlecast[pandas]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from .models import Bar

if TYPE_CHECKING:
    import pandas


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install 'candlecast[pandas]'") from None
    return pandas


def bars_to_frame(bars: Sequence[Bar]) -> pandas.DataFrame:
    """Bars as a DataFrame indexed by open time (UTC ``DatetimeIndex`` named ``time``), with the columns
    ``timestamp open high low close volume trades closed`` and one column per indicator a script pushed."""
    pd = _pandas()
    rows = []
    for b in bars:
        row: dict[str, Any] = {
            "timestamp": b.timestamp,
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
            "trades": b.trades,
            "closed": b.closed,
        }
        if b.indicators:
            row.update(b.indicators)
        rows.append(row)
    columns = ["timestamp", "open", "high", "low", "close", "volume", "trades", "closed"]
    frame: pandas.DataFrame = pd.DataFrame(rows, columns=None if rows else columns)
    frame.index = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    frame.index.name = "time"
    return frame


def csv_text(value: Union[str, bytes, "pandas.DataFrame", None]) -> Optional[str]:
    """A CSV given as text, bytes or a DataFrame (written without its index), as text; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    to_csv = getattr(value, "to_csv", None)
    if to_csv is None:
        raise TypeError(f"expected CSV text, bytes or a DataFrame, got {type(value).__name__}")
    return str(to_csv(index=False))
