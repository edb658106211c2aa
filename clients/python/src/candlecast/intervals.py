"""Bar intervals and their lengths. Buckets are aligned to the UTC epoch (weeks: Monday 00:00 UTC), and every
interval has a fixed length, so consecutive closed bars are exactly one length apart."""

from __future__ import annotations

INTERVALS: dict[str, int] = {
    "1s": 1_000,
    "5s": 5_000,
    "15s": 15_000,
    "30s": 30_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}


def interval_ms(interval: str) -> int:
    """The length of one bar of ``interval`` in milliseconds; ``ValueError`` for an unknown interval."""
    try:
        return INTERVALS[interval]
    except KeyError:
        raise ValueError(f"unknown interval {interval!r}; one of {', '.join(INTERVALS)}") from None
