"""Per-client credentials: call metadata a client sends, and a server-side check of it.

Host side — every call on the connection carries the token::

    conn = await rpcplugin.connect("10.0.0.5:7000", tls=..., metadata=auth.bearer("s3cret"))

Plugin side — the check runs before any servicer, and the client's name is available to it::

    rpcplugin.serve(HANDSHAKE, versions={1: [...]},
                    auth=auth.BearerTokens({"ci": "s3cret", "ops": "0ther"}))
    ...
    async def get(self, request):            # in the servicer
        who = auth.current_client()          # "ci"

A call without valid credentials fails with ``UNAUTHENTICATED`` and never reaches the servicer.
Health checks are exempt by default so that probes keep working; everything else, including
``GRPCController/Shutdown``, needs credentials. A plugin launched by a go-plugin host (which
sends no token) should pass ``exempt=CONTROL_SERVICES`` to :class:`AuthInterceptor` instead.

Tokens are compared in constant time and never logged. Send them only over TLS (or a unix
socket): on plaintext TCP anyone on the path can read them.
"""

from __future__ import annotations

import contextvars
import hmac
import inspect
import logging
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc

from ..errors import ConfigError
from ..ops.interception import (
    HEALTH_SERVICE,
    ThrottledWarning,
    client_interceptors_for,
    denying,
    metadata_value,
    split_method,
)

log = logging.getLogger("rpcplugin.auth")

AUTHORIZATION = "authorization"

MetadataPairs: TypeAlias = Sequence[tuple[str, str | bytes]]
"""Call metadata as ``(key, value)`` pairs; keys are lower case."""

_CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rpcplugin_auth_client", default=None
)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that presents ``token``: ``(("authorization", "Bearer <token>"),)``."""
    if not token or any(c.isspace() for c in token):
        raise ConfigError("token", "<hidden>", "a non-empty token without whitespace")
    return ((AUTHORIZATION, f"Bearer {token}"),)


def current_client() -> str | None:
    """The name of the client whose call is being served (set by :class:`AuthInterceptor`)."""
    return _CLIENT.get()


# -- client side ------------------------------------------------------------------------------


class DefaultMetadata:
    """Adds ``metadata`` to every call on a channel, except for keys the call sets itself (so
    one call can present other credentials). Give a channel :meth:`interceptors`::

        grpc.aio.secure_channel(target, creds, interceptors=DefaultMetadata(pairs).interceptors())
    """

    def __init__(self, metadata: MetadataPairs) -> None:
        pairs = tuple((str(k).lower(), v) for k, v in metadata)
        for key, _ in pairs:
            if not key or key.startswith("grpc-") or key != key.strip():
                raise ConfigError("metadata", key, "lower-case keys not starting with 'grpc-'")
        self.metadata = pairs

    def __repr__(self) -> str:  # never show the values: they are credentials
        return f"DefaultMetadata(keys={[k for k, _ in self.metadata]})"

    def interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """The ``grpc.aio`` client interceptors (one per call kind) that apply this."""
        return client_interceptors_for(self)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        existing = list(details.metadata or ())
        present = {item[0] for item in existing}
        merged = grpc.aio.Metadata(*existing)
        for key, value in self.metadata:
            if key not in present:
                merged.add(key, value)
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            merged,
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_stream_unary(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)

    async def intercept_stream_stream(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


# -- server side ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What a check sees of a call: its method path and its metadata."""

    method: str
    metadata: MetadataPairs

    def get(self, key: str) -> str | None:
        """The first value of ``key`` (lower case), or None."""
        return metadata_value(self.metadata, key)


Authenticator: TypeAlias = Callable[[AuthRequest], "str | Awaitable[str | None] | None"]
"""A check: the client's name when the call may go on, None to refuse it. May be async."""


class BearerTokens:
    """An :data:`Authenticator` accepting ``authorization: Bearer <token>`` for known tokens.

    ``tokens`` maps each client's name to its token (or is a collection of tokens, and the
    clients are then named ``client-1``, ``client-2``, ...).
    """

    def __init__(self, tokens: Mapping[str, str] | Collection[str]) -> None:
        named = (
            dict(tokens)
            if isinstance(tokens, Mapping)
            else {f"client-{i}": t for i, t in enumerate(tokens, 1)}
        )
        if not named:
            raise ConfigError("tokens", "<none>", "at least one token")
        for name, token in named.items():
            bearer(token)  # validates
            if not name:
                raise ConfigError("tokens", "<hidden>", "a non-empty client name for each token")
        self._tokens = tuple((name, token.encode()) for name, token in named.items())

    def __repr__(self) -> str:
        return f"BearerTokens(clients={[name for name, _ in self._tokens]})"

    def __call__(self, request: AuthRequest) -> str | None:
        header = request.get(AUTHORIZATION)
        if header is None:
            return None
        scheme, _, presented = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        candidate = presented.strip().encode()
        found = None
        for name, token in self._tokens:  # compare with all of them: no timing hint
            if hmac.compare_digest(candidate, token):
                found = name
        return found


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """A ``grpc.aio`` server interceptor running ``check`` before every call's servicer.

    ``exempt`` names services that need no credentials (default: health only).
    """

    def __init__(
        self, check: Authenticator, *, exempt: Collection[str] = frozenset({HEALTH_SERVICE})
    ) -> None:
        self.check = check
        self.exempt = frozenset(exempt)
        self.refused = 0
        """How many calls were refused so far."""
        self._warning = ThrottledWarning(log)

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
        method = handler_call_details.method
        if split_method(method)[0] in self.exempt:
            return handler
        metadata = tuple(handler_call_details.invocation_metadata or ())
        request = AuthRequest(method, metadata)
        try:
            verdict = self.check(request)
            client = await verdict if inspect.isawaitable(verdict) else verdict
        except Exception:
            log.exception("the authentication check failed on %s; refusing the call", method)
            client = None
        if client is not None:
            _CLIENT.set(client)
            return handler
        self.refused += 1
        if request.get(AUTHORIZATION) is None:
            details = f"missing credentials: send '{AUTHORIZATION}' metadata"
        else:
            details = "invalid credentials"
        self._warning.note("refused a call to %s: %s", method, details)
        return denying(handler, grpc.StatusCode.UNAUTHENTICATED, details)
