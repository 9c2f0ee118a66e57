"""Plugin-side rate limiting: a token bucket in front of the app's services.

::

    rpcplugin.serve(HANDSHAKE, versions={1: [...]}, rate_limit=RateLimit(rate=100, burst=20))

or, without touching code, ``RPCPLUGIN_RATE_LIMIT=100 RPCPLUGIN_RATE_BURST=20``.

Each call (a unary call, or a whole stream) takes one token; the bucket holds at most ``burst``
tokens and refills at ``rate`` tokens per second. A call that finds the bucket empty fails with
``RESOURCE_EXHAUSTED`` and the details ``rate limit exceeded: 100 calls/s, burst 20`` before its
servicer runs; the trailing metadata ``rpcplugin-retry-after-ms`` says when a token will be
there. The control services (health, controller, stdio, broker) are never throttled, so a busy
plugin still answers its host's health checks and shuts down when asked.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import grpc

from ..errors import ConfigError
from ..ops.interception import CONTROL_SERVICES, ThrottledWarning, denying, split_method

log = logging.getLogger("rpcplugin.rate_limit")

RETRY_AFTER_KEY = "rpcplugin-retry-after-ms"
"""Trailing metadata of a throttled call: milliseconds until the next token."""

LOG_EVERY = 10.0
"""Seconds between two warnings about throttled calls (the first one is logged at once)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate`` calls per second on average, bursts of up to ``burst`` calls."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (isinstance(self.rate, int | float) and math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError("rate", self.rate, "a number of calls per second above 0")
        if not isinstance(self.burst, int) or isinstance(self.burst, bool) or self.burst < 1:
            raise ConfigError("burst", self.burst, "a whole number of calls, at least 1")

    def describe(self) -> str:
        """``"5 calls/s, burst 5"``."""
        return f"{self.rate:g} calls/s, burst {self.burst}"


class TokenBucket:
    """A thread-safe token bucket. ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(float(self.limit.burst), self._tokens + elapsed * self.limit.rate)
        self._stamp = now

    def try_acquire(self) -> bool:
        """Take one token if there is one."""
        with self._lock:
            self._refill(self._clock())
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def wait_time(self) -> float:
        """Seconds until a token will be available (0 if one is now)."""
        with self._lock:
            self._refill(self._clock())
            missing = 1.0 - self._tokens
            return max(0.0, missing / self.limit.rate)


class RateLimitInterceptor(grpc.aio.ServerInterceptor):
    """A ``grpc.aio`` server interceptor that rejects calls over the bucket's limit.

    ``exempt`` names the services that are never throttled (default: the control services).
    Calls to unknown methods are left to gRPC (UNIMPLEMENTED) and take no token.
    """

    def __init__(
        self,
        limit: RateLimit | TokenBucket,
        *,
        exempt: Collection[str] = CONTROL_SERVICES,
    ) -> None:
        self.bucket = limit if isinstance(limit, TokenBucket) else TokenBucket(limit)
        self.exempt = frozenset(exempt)
        self.rejected = 0
        """How many calls were rejected so far."""
        self._message = f"rate limit exceeded: {self.bucket.limit.describe()}"
        self._warning = ThrottledWarning(log, LOG_EVERY)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _ = split_method(handler_call_details.method)
        if service in self.exempt or self.bucket.try_acquire():
            return handler
        self.rejected += 1
        self._warning.note("%s; latest: %s", self._message, handler_call_details.method)
        retry_ms = max(1, math.ceil(self.bucket.wait_time() * 1000))
        return denying(
            handler,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            self._message,
            ((RETRY_AFTER_KEY, str(retry_ms)),),
        )
