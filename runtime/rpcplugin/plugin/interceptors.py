"""The interceptors :func:`rpcplugin.serve` installs, from its arguments and the settings.

Order, outermost first: metrics (so refused calls are counted too), authentication (so an
unauthenticated client cannot use up the rate limit), the rate limit, then the application's
own ``interceptors``. Nothing is installed — and none of these modules is imported — unless
asked for, so a plain plugin pays nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from ..config import PluginSettings
    from ..ops.auth import Authenticator
    from ..ops.metrics import Metrics
    from ..ops.rate_limit import RateLimit


def build(
    settings: PluginSettings,
    *,
    plugin: str,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    rate_limit: RateLimit | None = None,
    auth: Authenticator | None = None,
    metrics: Metrics | None = None,
) -> tuple[list[grpc.aio.ServerInterceptor], Metrics | None]:
    """The interceptor chain and the metrics in use (None when there are none).

    Arguments win over settings: ``rate_limit`` over ``RPCPLUGIN_RATE_LIMIT``/``_BURST``,
    ``metrics`` over ``RPCPLUGIN_METRICS``.
    """
    chain: list[grpc.aio.ServerInterceptor] = []
    active = metrics
    if active is None and settings.metrics != "off":
        from ..ops.metrics import from_setting

        active = from_setting(settings.metrics)
    if active is not None and active.enabled:
        from ..ops.metrics import MetricsServerInterceptor, start_guarded

        chain.append(MetricsServerInterceptor(active, plugin=plugin))
        active = start_guarded(active)
    else:
        active = None
    if auth is not None:
        from ..ops.auth import AuthInterceptor

        chain.append(AuthInterceptor(auth))
    limit = rate_limit
    if limit is None and settings.rate_limit is not None:
        from ..ops.rate_limit import RateLimit

        limit = RateLimit(settings.rate_limit, settings.rate_burst or 1)
    if limit is not None:
        from ..ops.rate_limit import RateLimitInterceptor

        chain.append(RateLimitInterceptor(limit))
    chain.extend(interceptors)
    return chain, active
