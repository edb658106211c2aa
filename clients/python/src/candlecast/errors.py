"""Exceptions raised by the client. All derive from :class:`CandlecastError`."""

from __future__ import annotations

from typing import Optional


class CandlecastError(Exception):
    """Base class of every error this package raises."""


class ApiError(CandlecastError):
    """The server refused a request: its error ``code`` (``invalid_parameter``, ``unknown_symbol``, ...),
    the HTTP ``status`` when it came over REST, and the server's explanation."""

    def __init__(self, code: str, detail: str, status: Optional[int] = None, retry_after: Optional[float] = None):
        where = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{where}{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        #: Seconds the server asked to wait (``Retry-After`` of 429 and 503 answers), if it said.
        self.retry_after = retry_after


class UnknownSymbol(ApiError):
    """The symbol does not exist on the server (REST 404, or ``unknown_symbol`` over /ws)."""


class Unauthorized(ApiError):
    """A push was refused for want of a valid script key (Socket.IO ``unauthorized``, REST 401/403)."""


class AuthenticationFailed(CandlecastError):
    """The server refused the connection itself, e.g. a wrong script key (``invalid API key``)."""


class ConnectionLost(CandlecastError):
    """A one-shot request could not complete because the connection closed or the server is unreachable."""


def api_error(code: str, detail: str, status: Optional[int] = None, retry_after: Optional[float] = None) -> ApiError:
    """The most specific :class:`ApiError` subclass for an error code."""
    if code == "unknown_symbol":
        return UnknownSymbol(code, detail, status, retry_after)
    if code in ("unauthorized", "scripts_disabled") or status == 401:
        return Unauthorized(code, detail, status, retry_after)
    return ApiError(code, detail, status, retry_after)
