"""The plugin's AutoMTLS certificate, made by the ``openssl`` command while Python starts.

With AutoMTLS a plugin must make a fresh key and self-signed certificate on every launch.
Through ``cryptography`` that is ~40 ms of imports and work on the start-up path, after grpc has
loaded. ``openssl req`` makes the same P-256 certificate (go-plugin's profile, see
:func:`rpcplugin._wire.mtls.generate_certificate`) in a child process on another core, so
:func:`start` runs it as early as possible (``guard_stdout()``, the first thing a generated
``__main__`` does) and :func:`collect` picks the result up when the server needs it. The key
travels through a pipe, never a file. Without ``openssl`` on PATH, or when it fails,
:func:`collect` returns None and the caller makes the certificate with ``cryptography``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import SecurityError

if TYPE_CHECKING:
    from .mtls import CertificateAndKey

log = logging.getLogger("rpcplugin.certs")

VALIDITY_DAYS = 10957
"""~30 years, as go-plugin's certificates (262,980 hours)."""

COLLECT_TIMEOUT = 10.0
"""Seconds :func:`collect` waits for ``openssl`` before giving up on it."""

_pending: tuple[subprocess.Popen[bytes], int] | None = None


def wanted(env: Mapping[str, str]) -> bool:
    """Whether this launch will serve AutoMTLS: the host sent its certificate, and the plugin is
    neither in debug mode nor in server mode (those never use it)."""
    if not env.get("PLUGIN_CLIENT_CERT"):
        return False
    if env.get("RPCPLUGIN_LISTEN", "").strip():
        return False
    return env.get("RPCPLUGIN_DEBUG", "").strip().lower() not in ("1", "true", "yes", "on")


def start() -> None:
    """Start ``openssl req`` in the background (once); a no-op without ``openssl``."""
    global _pending
    if _pending is not None:
        return
    program = shutil.which("openssl")
    if program is None:
        return
    read_key, write_key = os.pipe()
    argv = [
        program,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-sha256",
        "-keyout",
        f"/dev/fd/{write_key}",
        "-days",
        str(VALIDITY_DAYS),
        "-subj",
        "/O=HashiCorp/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement,keyCertSign",
        "-addext",
        "extendedKeyUsage=clientAuth,serverAuth",
    ]
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_key,),
        )
    except OSError as exc:
        log.debug("openssl could not start (%s); the certificate comes from cryptography", exc)
        os.close(read_key)
        return
    finally:
        os.close(write_key)
    _pending = (child, read_key)


def collect() -> CertificateAndKey | None:
    """The certificate :func:`start` asked for, or None (not started, or ``openssl`` failed:
    the reason is logged at debug level)."""
    global _pending
    if _pending is None:
        return None
    child, read_key = _pending
    _pending = None
    try:
        cert_pem, errors = child.communicate(timeout=COLLECT_TIMEOUT)
        with os.fdopen(read_key, "rb") as key_pipe:
            read_key = -1
            key_pem = key_pipe.read()
    except (OSError, subprocess.TimeoutExpired) as exc:
        child.kill()
        child.wait()
        log.debug("openssl did not finish (%s); the certificate comes from cryptography", exc)
        return None
    finally:
        if read_key >= 0:
            with contextlib.suppress(OSError):
                os.close(read_key)
    if child.returncode != 0 or b"PRIVATE KEY-----" not in key_pem:
        log.debug(
            "openssl req failed (exit %s): %s; the certificate comes from cryptography",
            child.returncode,
            errors.decode(errors="replace").strip()[-300:],
        )
        return None
    return _identity(cert_pem, key_pem)


def _identity(cert_pem: bytes, key_pem: bytes) -> CertificateAndKey | None:
    from . import der
    from .mtls import CertificateAndKey

    try:
        cert_der = der.der_of_pem(cert_pem, source="openssl's certificate")
        key = der.key_description(cert_der)
    except SecurityError as exc:
        log.debug("openssl's output is unusable (%s); the certificate comes from cryptography", exc)
        return None
    if key != "EC secp256r1":
        log.debug("openssl made a %s key, not P-256; the certificate comes from cryptography", key)
        return None
    return CertificateAndKey(cert_pem=cert_pem, key_pem=key_pem, cert_der=cert_der)
