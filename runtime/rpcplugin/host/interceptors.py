"""The interceptors a host's channel gets from ``connect``/``launch``/``reattach`` arguments.

Order, outermost first: default metadata (credentials), then metrics, so the metrics see the
call as it is sent. Nothing is installed unless asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from ..ops.auth import MetadataPairs
    from ..ops.metrics import Metrics


def build(
    plugin: str, *, metadata: MetadataPairs | None = None, metrics: Metrics | None = None
) -> list[grpc.aio.ClientInterceptor]:
    """The client interceptors for a connection to ``plugin`` (empty when none is needed)."""
    chain: list[grpc.aio.ClientInterceptor] = []
    if metadata:
        from ..ops.auth import DefaultMetadata

        chain.extend(DefaultMetadata(metadata).interceptors())
    if metrics is not None and metrics.enabled:
        from ..ops.metrics import MetricsClientInterceptor

        chain.extend(MetricsClientInterceptor(metrics, plugin=plugin).interceptors())
    return chain
