"""Host-side connect retries for :func:`rpcplugin.connect` and :func:`rpcplugin.reattach`.

::

    conn = await rpcplugin.connect("10.0.0.5:7000", tls=..., retry=RetryPolicy(deadline=30))

or, without touching code, ``RPCPLUGIN_CONNECT_ATTEMPTS=10 RPCPLUGIN_CONNECT_DEADLINE=30``.

An attempt is: reach the address (a plain TCP or unix-socket connect), dial it, and pass a
health check. A failed attempt is retried after an exponential backoff with *full jitter*
(a random wait between 0 and ``min(max_backoff, backoff × 2^n)``), until the attempts are used
up or the total ``deadline`` has passed, whichever comes first; then the last error is raised
as a :class:`~rpcplugin.errors.TransportError` that says how many attempts were made and for
how long. Only failures to reach a server are retried: a server that is reachable but refuses
our certificate, speaks the wrong protocol or is misconfigured fails at once.

Retries apply to direct connections and reattachment only. :func:`rpcplugin.launch` never
retries: relaunching a subprocess behind the caller's back would hide crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import ConfigError, PluginError, SecurityError, TransportError

if TYPE_CHECKING:
    from .._wire.dial import TLSFiles
    from .._wire.transport import Endpoint

log = logging.getLogger("rpcplugin.retry")

T = TypeVar("T")

ATTEMPT_TIMEOUT = 5.0
"""Longest time one attempt's health check may take (less when the deadline is nearer)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try to connect: at most ``attempts`` attempts within ``deadline`` seconds,
    waiting ``backoff`` × 2^n seconds (capped at ``max_backoff``, fully jittered) between
    them."""

    attempts: int = 5
    backoff: float = 0.1
    max_backoff: float = 2.0
    deadline: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigError("attempts", self.attempts, "a whole number, at least 1")
        if self.attempts < 1:
            raise ConfigError("attempts", self.attempts, "a whole number, at least 1")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if not _finite_number(value) or value < 0:
                raise ConfigError(name, value, "a number of seconds, 0 or more")
        if self.max_backoff < self.backoff:
            raise ConfigError("max_backoff", self.max_backoff, f"at least backoff={self.backoff}")
        if not _finite_number(self.deadline) or self.deadline <= 0:
            raise ConfigError("deadline", self.deadline, "a number of seconds above 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetryPolicy:
        """The policy the ``RPCPLUGIN_CONNECT_*`` settings describe (one attempt when
        ``RPCPLUGIN_CONNECT_ATTEMPTS`` is unset)."""
        from ..config import ConnectSettings

        settings = ConnectSettings.from_env(env)
        return cls(
            attempts=settings.attempts,
            backoff=settings.backoff,
            max_backoff=settings.max_backoff,
            deadline=settings.deadline,
        )

    def backoff_ceiling(self, failures: int) -> float:
        """The longest wait after the ``failures``-th failed attempt (1-based)."""
        exponent = min(failures - 1, 64)
        return min(self.max_backoff, self.backoff * math.pow(2, exponent))


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def retryable(exc: BaseException) -> bool:
    """Whether a failed attempt may succeed later: the server could not be reached, or was
    reachable but not serving yet. TLS, handshake and configuration errors are final."""
    return type(exc) is TransportError


async def run(
    policy: RetryPolicy,
    attempt: Callable[[float], Awaitable[T]],
    *,
    what: str,
    is_retryable: Callable[[BaseException], bool] = retryable,
    rng: random.Random | None = None,
) -> T:
    """Run ``attempt(timeout)`` until it succeeds, as ``policy`` allows.

    ``timeout`` is the time the attempt may take (at most :data:`ATTEMPT_TIMEOUT`, never past
    the deadline). ``what`` names the target in messages ("connect to 10.0.0.5:7000").
    """
    rand = rng or random.Random()
    started = time.monotonic()
    deadline = started + policy.deadline
    failures = 0
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(
                attempt(min(ATTEMPT_TIMEOUT, remaining)), max(remaining, 0.001) + 0.5
            )
        except PluginError as exc:
            if not is_retryable(exc):
                raise
            last: BaseException = exc
        except TimeoutError:
            last = TransportError(f"{what}: no answer before the deadline")
        failures += 1
        remaining = deadline - time.monotonic()
        if failures >= policy.attempts or remaining <= 0:
            break
        pause = min(rand.uniform(0, policy.backoff_ceiling(failures)), remaining)
        log.debug(
            "%s failed (attempt %d of %d): %s; retrying in %.2f s",
            what,
            failures,
            policy.attempts,
            last,
            pause,
        )
        await asyncio.sleep(pause)
        if deadline - time.monotonic() <= 0:
            break
    elapsed = time.monotonic() - started
    if policy.attempts == 1:
        raise last
    raise TransportError(
        f"{what} failed after {failures} attempt(s) in {elapsed:.1f} s "
        f"(limit {policy.attempts} attempts, {policy.deadline:g} s): {last}"
    ) from last


async def reachable(network: str, address: str, timeout: float) -> None:
    """Open and close a plain connection to a unix socket or ``host:port``; raise
    :class:`TransportError` if nothing accepts it within ``timeout`` seconds."""
    try:
        if network == "unix":
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(address), timeout)
        else:
            host, _, port = address.rpartition(":")
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), timeout
            )
    except (TimeoutError, OSError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise TransportError(f"cannot reach {network}:{address}: {reason}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def tls_refusal(endpoint: Endpoint, files: TLSFiles, timeout: float) -> SecurityError | None:
    """Why a grpcio-TLS attempt failed with only "Socket closed", if TLS was the reason.

    Under TLS 1.3 a server refuses a client certificate after the client's side of the
    handshake is done, and grpcio then reports nothing but a closed socket — which looks like
    a server that is not up yet. This asks the same server again through OpenSSL (the relay
    path), which does see the refusal. Used only when retrying, so a refusal fails at once
    instead of using up the deadline. Returns the refusal, or None.
    """
    import grpc

    from .._wire import dial
    from ..services import health

    try:
        dialed = await dial.with_files(endpoint, files, "openssl")
    except SecurityError as exc:
        return exc
    except PluginError:
        return None
    try:
        await health.check(dialed.channel, timeout=max(timeout, 0.1))
    except grpc.aio.AioRpcError:
        problem = dialed.tls_error()
        if problem is not None:
            return SecurityError(f"connect to {endpoint}: {problem}")
    except Exception:
        return None
    finally:
        await dialed.close()
    return None
