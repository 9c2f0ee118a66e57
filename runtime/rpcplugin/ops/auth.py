"""Per-client credentials: call metadata a client sends, and a server-side check of it.

Host side — every call on the connection carries the token::

    conn = await rpcplugin.connect("10.0.0.5:7000", tls=..., metadata=auth.bearer("s3cret"))

Plugin side — the check runs before any servicer, and the client's name is available to it::

    rpcplugin.serve(HANDSHAKE, versions={1: [...]},
                    auth=auth.BearerTokens({"ci": "s3cret", "ops": "0ther"}))
    ...
    async def get(self, request):            # in the servicer
        who = auth.current_client()          # "ci"

Or by the certificate the client presented over mutual TLS (:class:`CertificateFingerprints`,
or any check reading :attr:`AuthRequest.peer`)::

    rpcplugin.serve(HANDSHAKE, versions={1: [...]},
                    auth=auth.CertificateFingerprints({"ci": "3f5a...e1"}))

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
    AsyncIterator,
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
    behaviour_of,
    client_interceptors_for,
    denying,
    metadata_value,
    rebuild,
    split_method,
)
from ..peer import Peer, peer_of

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
    """What a check sees of a call: its method path, its metadata, and who is calling
    (``peer``: the transport's security and the verified client certificate, whether
    grpcio's TLS or the OpenSSL relay carried the call; None only for handlers grpcio runs
    synchronously)."""

    method: str
    metadata: MetadataPairs
    peer: Peer | None = None

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


class CertificateFingerprints:
    """An :data:`Authenticator` accepting calls whose client presented, over mutual TLS, one
    of the known certificates; the client's name is the one its certificate is listed under.

    ``fingerprints`` maps each client's name to the SHA-256 of its certificate (DER), in hex;
    colons and case do not matter (``openssl x509 -noout -fingerprint -sha256`` prints one).
    """

    refusal = "no known client certificate: present one of the allowed certificates over TLS"
    """The ``UNAUTHENTICATED`` details of a refused call."""

    def __init__(self, fingerprints: Mapping[str, str]) -> None:
        known: dict[str, str] = {}
        for name, fingerprint in fingerprints.items():
            digest = fingerprint.replace(":", "").strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError("fingerprints", fingerprint, "a SHA-256 fingerprint in hex")
            if not name:
                raise ConfigError("fingerprints", digest, "a non-empty client name for each one")
            known[digest] = name
        if not known:
            raise ConfigError("fingerprints", "<none>", "at least one fingerprint")
        self._known = known

    def __repr__(self) -> str:
        return f"CertificateFingerprints(clients={sorted(self._known.values())})"

    def __call__(self, request: AuthRequest) -> str | None:
        peer = request.peer
        if peer is None or peer.security != "tls" or peer.fingerprint is None:
            return None
        return self._known.get(peer.fingerprint)


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
        behaviour = behaviour_of(handler)
        if inspect.isasyncgenfunction(behaviour):

            async def guarded_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                await self._admit(AuthRequest(method, metadata, peer_of(context)), context)
                async for reply in behaviour(request, context):
                    yield reply

            return rebuild(handler, guarded_stream)
        if inspect.iscoroutinefunction(behaviour):

            async def guarded(request: Any, context: Any) -> Any:
                await self._admit(AuthRequest(method, metadata, peer_of(context)), context)
                return await behaviour(request, context)

            return rebuild(handler, guarded)
        # a synchronous behaviour (grpcio runs it on a thread): checked here, without the peer
        request = AuthRequest(method, metadata)
        client = await self._verdict(request)
        if client is not None:
            _CLIENT.set(client)
            return handler
        return denying(handler, grpc.StatusCode.UNAUTHENTICATED, self._refused(request))

    async def _verdict(self, request: AuthRequest) -> str | None:
        try:
            verdict = self.check(request)
            return await verdict if inspect.isawaitable(verdict) else verdict
        except Exception:
            log.exception(
                "the authentication check failed on %s; refusing the call", request.method
            )
            return None

    async def _admit(self, request: AuthRequest, context: Any) -> None:
        """Let the call go on as the checked client, or end it with ``UNAUTHENTICATED``."""
        client = await self._verdict(request)
        if client is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, self._refused(request))
        _CLIENT.set(client)

    def _refused(self, request: AuthRequest) -> str:
        self.refused += 1
        custom = getattr(self.check, "refusal", None)
        if isinstance(custom, str):
            details = custom
        elif request.get(AUTHORIZATION) is None:
            details = f"missing credentials: send '{AUTHORIZATION}' metadata"
        else:
            details = "invalid credentials"
        self._warning.note("refused a call to %s: %s", request.method, details)
        return details
