"""The metrics interface (:class:`Metrics`, a no-op) and what it is handed (:class:`CallRecord`).

Implementations (``metrics.InMemoryMetrics``, ``metrics_otel.OpenTelemetryMetrics``) import
this module; :mod:`rpcplugin.ops.metrics` re-exports every name here.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import grpc

Side = Literal["client", "server"]
"""``client``: measured by the caller (the host); ``server``: by the plugin serving the call."""


@dataclass(slots=True)
class CallRecord:
    """One call, as the interceptors saw it. Filled in while the call runs."""

    side: Side
    service: str
    method: str
    plugin: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK
    seconds: float = 0.0
    bytes_in: int = 0
    """Bytes this side received (requests on the server, responses on the client)."""
    bytes_out: int = 0
    """Bytes this side sent."""

    @property
    def full_method(self) -> str:
        """``pkg.Service/Method``."""
        return f"{self.service}/{self.method}"


class Metrics:
    """The metrics interface, and the no-op default. Subclass it and override what you need.

    Implementations must be cheap and must not raise (an exception is logged and ignored).
    """

    enabled: bool = False
    """Whether calls are recorded at all: the runtime installs no interceptor when False.
    Every subclass is enabled unless it says otherwise."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "enabled" not in cls.__dict__:
            cls.enabled = True

    def call_started(self, call: CallRecord, headers: MutableMapping[str, str]) -> object:
        """A call begins. ``headers``: on the client, metadata to add to the call (e.g. trace
        context); on the server, the call's text metadata. Returns a state for
        :meth:`call_finished` (a span, say)."""
        return None

    def call_finished(self, call: CallRecord, state: object) -> None:
        """A call ended: ``call`` has its code, duration and byte counts."""

    def plugin_started(self, plugin: str, seconds: float, *, side: Side) -> None:
        """A plugin is up: ``side="client"`` from the host (exec to healthy), ``"server"`` from
        the plugin itself (``serve()`` to listening)."""


NO_METRICS = Metrics()
"""The shared no-op instance."""
