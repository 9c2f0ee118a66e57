"""``Opening``: what every host-side opener returns (await it, or ``async with`` it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

from ..lifecycle import Closable

ConnT = TypeVar("ConnT", bound=Closable)


class Opening(Generic[ConnT]):
    """What :func:`launch`, :func:`reattach`, :func:`connect` and ``connect_balanced`` return:
    await it for a connection, or use it as ``async with`` (which closes the connection on
    exit). It opens the connection once, however it is used."""

    def __init__(self, opener: Callable[[], Awaitable[ConnT]]) -> None:
        self._opener = opener
        self._task: asyncio.Future[ConnT] | None = None

    def _open(self) -> asyncio.Future[ConnT]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._opener())
        return self._task

    def __await__(self) -> Generator[Any, None, ConnT]:
        return self._open().__await__()

    async def __aenter__(self) -> ConnT:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None and self._task.done() and not self._task.exception():
            await self._task.result().close()
