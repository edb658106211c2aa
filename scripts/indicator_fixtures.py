#!/usr/bin/env python3
"""Reference values for candlecast's indicators, computed independently with pandas/numpy.

Writes a deterministic OHLCV series and, for each indicator case, the textbook formula's values to
actors/tests/fixtures/indicators/. The Rust tests (actors/src/strategy/indicators/fixture_tests.rs) run
the incremental indicators over the same bars and compare every value within 1e-9 relative.

The formulas here are written from their definitions (pandas rolling/ewm and plain loops), not ported
from the Rust code; conventions that differ between sources are pinned to the ones docs/STRATEGIES.md
documents:
  * EMA / Wilder smoothing start from the SMA of the first `period` inputs (pandas' ewm would start from
    the first input), then follow y_t = (1 - alpha) y_{t-1} + alpha x_t (ewm adjust=False).
  * RSI: 50 when there are neither gains nor losses, 100 when there are no losses.
  * Bollinger: population standard deviation (ddof=0).
  * ATR: the first bar's true range is high - low.
  * VWAP: typical price, sums reset at 00:00 UTC.
  * SuperTrend: starts in a down trend on the first ATR bar (TradingView's convention).

Usage:  pip install -r scripts/requirements.txt && python3 scripts/indicator_fixtures.py
"""

import json
import pathlib

import numpy as np
import pandas as pd

SEED = 20240101
BARS = 600
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
STEP_MS = 15 * 60 * 1000  # 15-minute bars: 600 bars cross six UTC midnights (VWAP resets)
DAY_MS = 86_400_000
OUT = pathlib.Path(__file__).resolve().parent.parent / "actors" / "tests" / "fixtures" / "indicators"


def make_bars() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    log_ret = rng.normal(0.0, 0.004, BARS)
    close = 100.0 * np.exp(np.cumsum(log_ret))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick_up = np.abs(rng.normal(0.0, 0.002, BARS))
    wick_down = np.abs(rng.normal(0.0, 0.002, BARS))
    high = np.maximum(open_, close) * (1.0 + wick_up)
    low = np.minimum(open_, close) * (1.0 - wick_down)
    volume = rng.lognormal(mean=3.0, sigma=0.7, size=BARS)
    df = pd.DataFrame(
        {
            "open_time": START_MS + STEP_MS * np.arange(BARS, dtype=np.int64),
            "open": np.round(open_, 4),
            "high": np.round(high, 4),
            "low": np.round(low, 4),
            "close": np.round(close, 4),
            "volume": np.round(volume, 6),
        }
    )
    # Rounding must not break low <= open, close <= high.
    df["high"] = df[["open", "high", "close"]].max(axis=1)
    df["low"] = df[["open", "low", "close"]].min(axis=1)
    return df


def smoothed(x: pd.Series, period: int, alpha: float) -> pd.Series:
    """Exponential smoothing seeded with the SMA of the first `period` valid inputs."""
    values = x.to_numpy(dtype=float)
    valid = np.flatnonzero(~np.isnan(values))
    out = pd.Series(np.nan, index=x.index)
    if len(valid) < period:
        return out
    first = valid[0]
    seed_pos = first + period - 1
    seeded = x.copy()
    seeded.iloc[:seed_pos] = np.nan
    seeded.iloc[seed_pos] = x.iloc[first : seed_pos + 1].mean()
    return seeded.ewm(alpha=alpha, adjust=False).mean()


def ema(x: pd.Series, period: int) -> pd.Series:
    return smoothed(x, period, 2.0 / (period + 1.0))


def wilder(x: pd.Series, period: int) -> pd.Series:
    return smoothed(x, period, 1.0 / period)


def sma(df, period):
    return df["close"].rolling(period).mean()


def rsi(df, period):
    delta = df["close"].diff()
    avg_gain = wilder(delta.clip(lower=0.0), period)
    avg_loss = wilder((-delta).clip(lower=0.0), period)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    value = value.where(avg_loss != 0.0, np.where(avg_gain == 0.0, 50.0, 100.0))
    return value.where(avg_gain.notna())


def macd(df, fast, slow, signal):
    line = ema(df["close"], fast) - ema(df["close"], slow)
    sig = ema(line, signal)
    frame = pd.DataFrame({"macd": line, "signal": sig, "histogram": line - sig})
    return frame.where(sig.notna())


def bollinger(df, period, k):
    mid = df["close"].rolling(period).mean()
    sd = df["close"].rolling(period).std(ddof=0)
    return pd.DataFrame({"upper": mid + k * sd, "middle": mid, "lower": mid - k * sd})


def true_range(df):
    prev_close = df["close"].shift(1)
    parts = pd.concat(
        [df["high"] - df["low"], (df["high"] - prev_close).abs(), (df["low"] - prev_close).abs()], axis=1
    )
    return parts.max(axis=1)  # skipna: the first bar has only high - low


def atr(df, period):
    return wilder(true_range(df), period)


def vwap(df):
    day = df["open_time"] // DAY_MS
    typical = (df["high"] + df["low"] + df["close"]) / 3.0
    pv = (typical * df["volume"]).groupby(day).cumsum()
    v = df["volume"].groupby(day).cumsum()
    return (pv / v).where(v > 0.0)


def supertrend(df, period, multiplier):
    atr_values = atr(df, period).to_numpy()
    high, low, close = (df[c].to_numpy() for c in ("high", "low", "close"))
    rows = [None] * len(df)
    upper = lower = trend = None
    for i in range(len(df)):
        if np.isnan(atr_values[i]):
            continue
        hl2 = (high[i] + low[i]) / 2.0
        basic_upper = hl2 + multiplier * atr_values[i]
        basic_lower = hl2 - multiplier * atr_values[i]
        if trend is None:
            upper, lower, trend = basic_upper, basic_lower, "down"
        else:
            prev_upper, prev_lower, prev_close = upper, lower, close[i - 1]
            upper = basic_upper if (basic_upper < prev_upper or prev_close > prev_upper) else prev_upper
            lower = basic_lower if (basic_lower > prev_lower or prev_close < prev_lower) else prev_lower
            if trend == "down" and close[i] > upper:
                trend = "up"
            elif trend == "up" and close[i] < lower:
                trend = "down"
        rows[i] = {"value": lower if trend == "up" else upper, "direction": trend}
    return rows


def single(series: pd.Series):
    return [None if np.isnan(v) else {"value": float(v)} for v in series.to_numpy(dtype=float)]


def multi(frame: pd.DataFrame):
    out = []
    for row in frame.itertuples(index=False):
        values = row._asdict()
        out.append(None if any(np.isnan(v) for v in values.values()) else {k: float(v) for k, v in values.items()})
    return out


def cases(df):
    return [
        ("sma_20", "sma", {"period": 20}, single(sma(df, 20))),
        ("sma_1", "sma", {"period": 1}, single(sma(df, 1))),
        ("ema_9", "ema", {"period": 9}, single(ema(df["close"], 9))),
        ("ema_50", "ema", {"period": 50}, single(ema(df["close"], 50))),
        ("rsi_14", "rsi", {"period": 14}, single(rsi(df, 14))),
        ("rsi_2", "rsi", {"period": 2}, single(rsi(df, 2))),
        ("macd_12_26_9", "macd", {"fast": 12, "slow": 26, "signal": 9}, multi(macd(df, 12, 26, 9))),
        ("bollinger_20_2", "bollinger", {"period": 20, "k": 2.0}, multi(bollinger(df, 20, 2.0))),
        ("atr_14", "atr", {"period": 14}, single(atr(df, 14))),
        ("vwap", "vwap", {}, single(vwap(df))),
        ("supertrend_10_3", "supertrend", {"period": 10, "multiplier": 3.0}, supertrend(df, 10, 3.0)),
        ("supertrend_7_1.5", "supertrend", {"period": 7, "multiplier": 1.5}, supertrend(df, 7, 1.5)),
    ]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    df = make_bars()
    bars = [
        {k: (int(v) if k == "open_time" else float(v)) for k, v in row._asdict().items()}
        for row in df.itertuples(index=False)
    ]
    (OUT / "bars.json").write_text(json.dumps({"interval": "15m", "bars": bars}, separators=(",", ":")) + "\n")
    for file, name, params, values in cases(df):
        warmup = next(i for i, v in enumerate(values) if v is not None)
        doc = {"indicator": name, "params": params, "warmup": warmup, "values": values}
        (OUT / f"{file}.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"{file}: warm-up {warmup}, {sum(v is not None for v in values)} values")


if __name__ == "__main__":
    main()
