"""One shape for everything that is closed: ``await x.close()``, or leave ``async with x``."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Protocol, Self


class Closable(Protocol):
    """Anything with an async ``close()`` (what an :class:`~rpcplugin.Opening` opens)."""

    async def close(self) -> None: ...


class AsyncClosable(abc.ABC):
    """Base of the runtime's connections and servers: ``async with`` closes on exit."""

    __slots__ = ()

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what this object holds; calling it again does nothing."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
