"""A long-lived async iterator that owns a connection: iterate it, and close it (or use ``async with``)."""

from __future__ import annotations

from types import TracebackType
from typing import AsyncGenerator, Generic, Optional, Type, TypeVar

T = TypeVar("T")


class Stream(Generic[T]):
    """Items of a live subscription. The connection is opened on the first ``__anext__`` and reopened by
    itself after a disconnect; ``aclose()`` (or leaving ``async with``) ends it."""

    def __init__(self, gen: AsyncGenerator[T, None]):
        self._gen = gen

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()
