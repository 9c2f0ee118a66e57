"""Security (issue 7 §3): who may connect, what reaches the disk and the logs, what is run.

Already proven elsewhere and not repeated here (the soak test at the end repeats the
handshake refusals many times over with a leak count):

- no certificate / another key's certificate refused by a TLS plugin, both backends, unix and
  tcp, TLS 1.2 and 1.3: ``tests/plugin/test_p15_p19_tls.py::test_p15_refuses_*``;
- the final mode of the socket (0660 + chgrp, or owner-only):
  ``tests/plugin/test_p11_p14_transport.py::test_p12_*``;
- a certificate the host did not ask for, a handshake line over 64 KiB, one with a NUL:
  ``tests/host/test_misbehaving.py::test_certificate_the_host_did_not_ask_for``,
  ``::test_handshake_line_over_64_kib_is_refused``, ``::test_handshake_line_with_nul_is_refused``;
- a wrong checksum runs nothing: ``tests/host/test_h_lines.py::test_h09_checksum_mismatch_*``.
"""

from __future__ import annotations

import asyncio
import datetime
import grp
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from gopeers import go_plugin_binary
from hostkit import MB_HANDSHAKE, Snapshot, mb
from peers.harness import Identity, Launcher, client_context, dial, health_check, tls_probe

import rpcplugin
from rpcplugin._wire import mtls
from rpcplugin.errors import ChecksumError

from .figures import record, scaled
from .kit import (
    HERE,
    REL_ARGV,
    check_leaks,
    files_under,
    launch_rel,
    quiet_logs,
    read_events,
    unary,
)
from .watch import TreeWatch

BACKENDS = {"grpc": "secp256r1", "openssl": "secp521r1"}
"""The plugin's TLS backend, chosen by the host certificate's curve (as in tests/plugin)."""


# -- TLS: who may connect -----------------------------------------------------------------
def _certificate(
    key: ec.EllipticCurvePrivateKey,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    """go-plugin's AutoMTLS profile, with the given key and validity."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    digest = hashes.SHA512() if key.curve.name == "secp521r1" else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, digest)
    )


def _identity(directory: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> Identity:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    material = mtls.CertificateAndKey(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem,
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )
    fd, cert_path = tempfile.mkstemp(suffix=".crt", dir=directory)
    os.write(fd, material.cert_pem)
    os.close(fd)
    fd, key_path = tempfile.mkstemp(suffix=".key", dir=directory)
    os.write(fd, key_pem)
    os.close(fd)
    return Identity(material, cert_path, key_path)


NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
PAST = (NOW - 400 * DAY, NOW - DAY)
FUTURE = (NOW + DAY, NOW + 400 * DAY)
VALID = (NOW - DAY, NOW + 400 * DAY)


def _clients(host: Identity, directory: str) -> dict[str, Identity | None]:
    """Certificates a local process could present to a plugin serving ``host``."""
    host_key = serialization.load_pem_private_key(host.material.key_pem, None)
    assert isinstance(host_key, ec.EllipticCurvePrivateKey)
    own_key = ec.generate_private_key(host_key.curve)

    def with_key(key: ec.EllipticCurvePrivateKey, valid: tuple[datetime.datetime, ...]) -> Any:
        return _identity(directory, key, _certificate(key, not_before=valid[0], not_after=valid[1]))

    return {
        "no certificate": None,
        "self-signed, its own key": with_key(own_key, VALID),
        "expired, its own key": with_key(own_key, PAST),
        "not yet valid, its own key": with_key(own_key, FUTURE),
        # the host's key and name in another certificate: the plugin pins the certificate
        "reissued with the host's key": with_key(host_key, VALID),
        "expired, the host's key": with_key(host_key, PAST),
    }


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("backend", BACKENDS)
async def test_tls_plugin_refuses_strangers_and_expired_certificates(
    launch: Launcher, backend: str, transport: str
) -> None:
    """A local process dialling a TLS plugin is refused without a certificate, with a
    self-signed one of its own, with an expired or not yet valid one, and even with another
    certificate for the host's own key: the plugin trusts exactly the certificate its host
    announced. Checked at the TLS level (TLS 1.3 and 1.2) and with a gRPC health check through
    the backend; the host itself is still served afterwards."""
    import ssl

    host = launch.identity(BACKENDS[backend])
    plugin = launch({"PLUGIN_CLIENT_CERT": host.pem, "RPCPLUGIN_TRANSPORT": transport})
    assert plugin.hs is not None
    for name, client in _clients(host, launch.tmpdir()).items():
        served = []
        for maximum in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            served.append(tls_probe(plugin.hs, client_context(plugin.hs, client, maximum=maximum)))
        async with dial(plugin.hs, client, via=backend) as dialed:
            try:
                status: int | str = await health_check(dialed.channel)
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
        print(f"\n{backend}/{transport} {name}: served={[r.served for r in served]} {status}")
        assert not any(r.served for r in served), (name, [r.error for r in served])
        assert status == "UNAVAILABLE", (name, status)
        record("security", cases=3, faults=1)
    assert tls_probe(plugin.hs, client_context(plugin.hs, host)).served


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_pinned_certificate_itself_is_served_only_while_valid(
    launch: Launcher, backend: str
) -> None:
    """The plugin is given certificate C as its host's and the client presents exactly C with
    its key: served (the control). A C that has expired or is not valid yet never gets that
    far: the plugin exits 3 before its handshake (see the certificate edge cases below)."""
    curve = ec.SECP256R1() if BACKENDS[backend] == "secp256r1" else ec.SECP521R1()
    key = ec.generate_private_key(curve)
    pinned = _identity(
        launch.tmpdir(), key, _certificate(key, not_before=VALID[0], not_after=VALID[1])
    )
    plugin = launch({"PLUGIN_CLIENT_CERT": pinned.pem})
    assert plugin.hs is not None
    assert tls_probe(plugin.hs, client_context(plugin.hs, pinned)).served
    record("security", cases=1)


# -- certificate edge cases: PLUGIN_CLIENT_CERT fails fast, and a bundle is trusted whole -----
SOURCE = "PLUGIN_CLIENT_CERT (the host's AutoMTLS certificate)"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _exits_with(plugin: Any, status: int) -> str:
    """The one stderr line of a plugin that must exit ``status`` before its handshake."""
    assert plugin.wait(30) == status, plugin.stderr_text()
    assert plugin.read_rest_of_stdout(1) == b"", "no handshake line"
    lines = plugin.stderr_lines()
    assert len(lines) == 1, lines
    return str(lines[0])


def _dates(cert: x509.Certificate) -> tuple[str, str]:
    return cert.not_valid_before_utc.isoformat(), cert.not_valid_after_utc.isoformat()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_expired_client_cert_exits_3_naming_its_dates(launch: Launcher, backend: str) -> None:
    """Not a plugin that starts and then fails every connection as ``UNAVAILABLE``."""
    curve = ec.SECP256R1() if backend == "grpc" else ec.SECP521R1()
    cert = _certificate(ec.generate_private_key(curve), not_before=PAST[0], not_after=PAST[1])
    before, after = _dates(cert)
    line = _exits_with(launch({"PLUGIN_CLIENT_CERT": _pem(cert)}, handshake=False), 3)
    assert line == (
        f"[ERROR] rpcplugin: {SOURCE} expired on {after} (valid from {before} to {after}); "
        "the host must send a current certificate"
    )
    record("certificates", cases=1, faults=1)


def test_a_client_cert_not_yet_valid_exits_3_naming_its_dates(launch: Launcher) -> None:
    cert = _certificate(
        ec.generate_private_key(ec.SECP256R1()), not_before=FUTURE[0], not_after=FUTURE[1]
    )
    before, after = _dates(cert)
    line = _exits_with(launch({"PLUGIN_CLIENT_CERT": _pem(cert)}, handshake=False), 3)
    assert line == (
        f"[ERROR] rpcplugin: {SOURCE} is not valid before {before} (valid from {before} to "
        f"{after}); check this machine's clock"
    )
    record("certificates", cases=1, faults=1)


def test_one_expired_certificate_in_a_bundle_exits_3_naming_which(launch: Launcher) -> None:
    good = _certificate(
        ec.generate_private_key(ec.SECP256R1()), not_before=VALID[0], not_after=VALID[1]
    )
    bad = _certificate(
        ec.generate_private_key(ec.SECP256R1()), not_before=PAST[0], not_after=PAST[1]
    )
    before, after = _dates(bad)
    bundle = _pem(good) + _pem(bad)
    line = _exits_with(launch({"PLUGIN_CLIENT_CERT": bundle}, handshake=False), 3)
    assert line == (
        f"[ERROR] rpcplugin: {SOURCE}, certificate 2 of 2, expired on {after} (valid from "
        f"{before} to {after}); the host must send a current certificate"
    )
    record("certificates", cases=1, faults=1)


@pytest.mark.parametrize(
    "curves",
    [("secp256r1", "secp256r1"), ("secp256r1", "secp521r1")],
    ids=["grpcio-tls", "mixed-openssl-relay"],
)
def test_every_certificate_of_a_bundle_is_trusted_and_no_other(
    launch: Launcher, curves: tuple[str, str]
) -> None:
    """Two concatenated PEM certificates: a client presenting either is served (go-plugin
    trusts them all; before, only the first was), a stranger is not. A P-521 one among them
    puts the whole listener on the OpenSSL relay, which verifies every key."""
    first, second = (launch.identity(curve) for curve in curves)
    bundle = first.pem + second.pem
    plugin = launch({"PLUGIN_CLIENT_CERT": bundle})
    assert plugin.hs is not None
    stranger = launch.identity(curves[1])
    served = {
        name: tls_probe(plugin.hs, client_context(plugin.hs, who)).served
        for name, who in (("first", first), ("second", second), ("stranger", stranger))
    }
    print(f"\nbundle of {curves}: {served}")
    assert served == {"first": True, "second": True, "stranger": False}
    record("certificates", cases=3, faults=1)


def test_a_bundle_with_grpcio_tls_forced_exits_2(launch: Launcher) -> None:
    """grpcio's TLS would trust only the first of two same-named certificates: refused."""
    bundle = launch.identity().pem + launch.identity().pem
    plugin = launch(
        {"PLUGIN_CLIENT_CERT": bundle, "RPCPLUGIN_TLS_BACKEND": "grpc"}, handshake=False
    )
    assert _exits_with(plugin, 2) == (
        "[ERROR] rpcplugin: plugin configuration: RPCPLUGIN_TLS_BACKEND='grpc' is invalid: "
        "grpcio's TLS cannot trust all 2 certificates of PLUGIN_CLIENT_CERT; use 'auto' or "
        "'openssl'"
    )
    record("certificates", cases=1, faults=1)


def test_a_bundle_that_is_not_pem_exits_3(launch: Launcher) -> None:
    line = _exits_with(launch({"PLUGIN_CLIENT_CERT": "not a certificate"}, handshake=False), 3)
    assert line.startswith(f"[ERROR] rpcplugin: {SOURCE} is not a PEM certificate: "), line
    record("certificates", cases=1, faults=1)


# -- unix sockets: never wider than owner-only (or 0660 with a group) ---------------------
def _other_group() -> tuple[int, str]:
    own = os.getegid()
    if os.geteuid() == 0:
        for entry in grp.getgrall():
            if entry.gr_gid != own:
                return entry.gr_gid, entry.gr_name
    return own, grp.getgrgid(own).gr_name


@pytest.mark.parametrize("group", [False, True], ids=["owner-only", "group"])
@pytest.mark.parametrize("variant", ["plaintext", "grpc-tls", "openssl-tls"])
async def test_unix_sockets_are_never_wider_than_allowed_not_even_for_a_moment(
    warm_grpc: None, short_dir: str, monkeypatch: pytest.MonkeyPatch, variant: str, group: bool
) -> None:
    """The plugin runs with umask 0 (the worst it can inherit) and records the permission bits
    of every unix socket right after it is bound, before anything else can touch it, and
    after every chmod/chown of one: never any bit for others, never a group bit without a
    socket group, and exactly 0660 + the group at the end with one. A control socket bound
    outside the runtime comes out 0777 under the same umask: the recording sees a wide socket.
    The host side is checked the same way in this process (umask 0 while it launches): its
    OpenSSL relay socket, whose plaintext side reaches the plugin authenticated."""
    events = os.path.join(short_dir, "events")
    control_dir = os.path.join(short_dir, "control")
    os.mkdir(control_dir)
    gid, gname = _other_group()
    host_binds: list[tuple[str, int]] = []
    original_bind = socket.socket.bind

    def recording_bind(self: socket.socket, address: Any) -> None:
        original_bind(self, address)
        if isinstance(address, str) and address.startswith("/"):
            host_binds.append((address, stat.S_IMODE(os.lstat(address).st_mode)))

    monkeypatch.setattr(socket.socket, "bind", recording_bind)
    env = {"REL_EVENTS": events, "REL_WATCH_MODES": "1", "REL_CONTROL_DIR": control_dir}
    old_umask = os.umask(0)
    try:
        opening = launch_rel(
            env=env,
            variant=variant,
            unix_socket_group=gname if group else None,
            unix_socket_dir=short_dir,
        )
        async with opening as conn:
            assert await unary(conn, "Echo", b"x") == b"x"
            endpoint = conn.endpoint.address
            private = os.stat(os.path.dirname(endpoint))
    finally:
        os.umask(old_umask)
    modes = [d.split() for _, name, d in read_events(events) if name == "mode"]
    print(f"\n{variant} group={group}: plugin {modes}; host {host_binds}")
    control = [int(m, 8) for kind, _, m in modes if kind == "control"]
    assert control == [0o777], "the recording must be able to see a wide socket"
    seen = [(kind, path, int(m, 8)) for kind, path, m in modes if kind != "control"]
    assert any(kind == "bind" and path == endpoint for kind, path, _ in seen), seen
    if variant == "openssl-tls":  # gRPC's plaintext socket behind the plugin's relay
        assert any(kind == "bind" and path.endswith("/grpc.sock") for kind, path, _ in seen)
    for kind, path, mode in seen:
        assert mode & 0o007 == 0, f"{path} was {mode:o} after {kind}"
        if not group or path != endpoint:
            assert mode & 0o077 == 0, f"{path} was {mode:o} after {kind}"
        else:
            assert mode & ~0o760 == 0, f"{path} was {mode:o} after {kind}"
    if group:
        # (the OpenSSL relay binds a client socket per connection after that: owner-only)
        assert [mode for _, path, mode in seen if path == endpoint][-1] == 0o660
        assert stat.S_IMODE(private.st_mode) == 0o770 and private.st_gid == gid
    else:
        assert stat.S_IMODE(private.st_mode) == 0o700
    if variant == "openssl-tls":
        assert [m for path, m in host_binds if path.endswith("/relay.sock")] == [0o700]
    assert all(mode & 0o077 == 0 for _, mode in host_binds), host_binds
    record("security", cases=len(seen) + len(host_binds))


# -- private keys never on disk, never logged; the cookie never logged ---------------------
def _fresh_home(root: str) -> dict[str, str]:
    dirs = {name: os.path.join(root, name) for name in ("tmp", "home", "cwd", "xdg")}
    for path in dirs.values():
        os.mkdir(path)
    return dirs


def _key_markers(pem: str) -> list[bytes]:
    """What would betray a key in some output: the PEM label and each full base64 line."""
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [b"PRIVATE KEY", *(line.encode() for line in lines if len(line) >= 40)]


TEMPFILE_PROBE = "tempfile:_get_default_tempdir"
HOST_MARKER_WRITER = "watchdog:mark_owner"
"""Who writes the ``host.pid`` marker of a launched plugin's directories (the audit's caller)."""


def _socket_or_private_dir(path: str) -> bool:
    name = os.path.basename(path)
    relay_client = name[:1] == "c" and name[1:].isalnum()  # the OpenSSL relay's, per connection
    return (
        name.startswith(("rpcplugin-", "plugin"))
        or name in ("relay.sock", "grpc.sock")
        or relay_client
    )


def _open_files(pid: int) -> list[str]:
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return found


async def _run_and_scan(
    short_dir: str, transport: str, variant: str, plugin_env: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Run a host process and its TLS plugin under a fresh TMPDIR, HOME, XDG dirs and working
    directory with everything logged at TRACE on both sides, and report every way a private
    key or the cookie got out (each list empty when none did)."""
    dirs = _fresh_home(short_dir)
    audit_dir = tempfile.mkdtemp(prefix="rel-audit-")
    cookie = "cookie-" + os.urandom(12).hex()
    config = {
        "transport": transport,
        "variant": variant,
        "log": "all",
        "expose_keys": True,
        "audit": os.path.join(audit_dir, "host"),
        "cookie": cookie,
        "env": {
            "REL_AUDIT": os.path.join(audit_dir, "plugin"),
            "REL_EXPOSE_KEY": "1",
            "RPCPLUGIN_LOG_LEVEL": "trace",
            "GRPC_VERBOSITY": "debug",
            **(plugin_env or {}),
        },
    }
    env = {
        **os.environ,
        "TMPDIR": dirs["tmp"],
        "HOME": dirs["home"],
        "XDG_CACHE_HOME": dirs["xdg"],
        "XDG_CONFIG_HOME": dirs["xdg"],
        "XDG_RUNTIME_DIR": dirs["xdg"],
        "PYTHONDONTWRITEBYTECODE": "1",
        "GRPC_VERBOSITY": "debug",
    }
    try:
        with TreeWatch(*dirs.values()) as watch:
            host = subprocess.Popen(
                [sys.executable, str(HERE / "host_proc.py"), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=dirs["cwd"],
            )
            assert host.stdout is not None and host.stdin is not None
            line = await asyncio.to_thread(host.stdout.readline)
            assert line, host.communicate(timeout=30)
            report = json.loads(line)
            host.stdin.write("calls 20\n")
            host.stdin.flush()
            assert json.loads(await asyncio.to_thread(host.stdout.readline)) == {"calls": 20}
            held = {pid: _open_files(pid) for pid in (report["host_pid"], report["pid"])}
            stdout, stderr = await asyncio.to_thread(host.communicate, "close\n", 60)
        assert host.returncode == 0, stderr[-3000:]
        assert json.loads(stdout.splitlines()[-1]) == {"closed": 0}
        # the keys, learnt over pipes (so that learning them wrote nothing to disk)
        markers = _key_markers(report["host_key"]) + _key_markers(report["plugin_key"])
        assert len(markers) >= 5
        logs = stderr.encode() + stdout.split("\n", 1)[1].encode()
        assert b"rpcplugin" in logs and b"plugin serving" in logs, "both sides' logs are here"
        found: dict[str, list[str]] = {}
        found["in the logs"] = [repr(m[:24]) for m in [*markers, cookie.encode()] if m in logs]
        # what each process opened for writing, and who asked: only tempfile's check that
        # the temp dir is writable (it writes b"blat" to a random name and removes it),
        opened: list[list[str]] = []
        for side in ("host", "plugin"):
            with open(os.path.join(audit_dir, side)) as handle:
                opened += [line.split("\t") for line in handle.read().splitlines()]
        # and the host.pid markers of the host's directories (a pid, for the sweep after a
        # host that died: issue 18); the scan below would see a key in one
        probes = {path for path, caller in opened if caller in (TEMPFILE_PROBE, HOST_MARKER_WRITER)}
        found["opened for writing"] = [
            f"{path} ({caller})"
            for path, caller in opened
            if caller not in (TEMPFILE_PROBE, HOST_MARKER_WRITER) and path != os.devnull
        ]
        # nothing but sockets, their private directories and those probes appeared where
        # files usually go, and nothing else was written there
        found["created"] = [
            p for p in watch.created if p not in probes and not _socket_or_private_dir(p)
        ]
        found["written"] = sorted(watch.written - probes)
        found["on disk"] = []
        for path in files_under(*dirs.values()):
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    if b"PRIVATE KEY" in handle.read():
                        found["on disk"].append(path)
        # what they held open while serving: no file with a key in it, no key memfd left
        found["held open"] = []
        for pid, targets in held.items():
            found["held open"] += [f"{pid}: {t}" for t in targets if "memfd:" in t]
            for target in targets:
                if target.startswith("/") and os.path.isfile(target):
                    with open(target, "rb") as handle:
                        if b"PRIVATE KEY" in handle.read(1 << 20):
                            found["held open"].append(f"{pid}: {target}")
        print(
            f"\n{transport}/{variant}: {len(logs)} bytes of logs scanned for {len(markers)} key "
            f"markers and the cookie; {len(watch.created)} entries created, "
            f"{len(opened)} opened for writing; found: { {k: v for k, v in found.items() if v} }"
        )
        record("security", cases=len(markers) + 1 + len(watch.created) + len(opened))
        return found
    finally:
        shutil.rmtree(audit_dir, ignore_errors=True)


@pytest.mark.parametrize(
    ("transport", "variant"), [("unix", "grpc-tls"), ("unix", "openssl-tls"), ("tcp", "grpc-tls")]
)
async def test_private_keys_never_reach_the_disk_and_no_log_shows_a_key_or_the_cookie(
    warm_grpc: None, short_dir: str, transport: str, variant: str
) -> None:
    """A host process and its TLS plugin (both keys; the OpenSSL relay loads its key through a
    file path, so that variant matters), everything logged at TRACE on both sides (the host
    logs every record with all its attributes, including each plugin stderr line):

    - no file is created or written under TMPDIR, HOME, the XDG dirs or the working directory
      except the sockets and their private directories (inotify sees even a file removed a
      moment later);
    - neither process opens any file for writing (audit hooks in both, from their first line)
      but for tempfile's probe of the temp dir;
    - no descriptor either process holds points at a file containing a key, or at a memfd;
    - no log line, on either side, contains ``PRIVATE KEY``, a line of either key's base64, or
      the cookie value (a fresh random one)."""
    found = await _run_and_scan(short_dir, transport, variant)
    assert found == {k: [] for k in found}, found


async def test_the_key_scan_sees_a_key_written_and_removed_at_once_and_a_logged_key(
    warm_grpc: None, short_dir: str
) -> None:
    """The control for the test above: a plugin that writes its key to a temp file and removes
    it at once, writes it to ~/leaked.pem, keeps a memfd holding it open and logs it is caught
    by every detector."""
    found = await _run_and_scan(short_dir, "unix", "grpc-tls", {"REL_LEAK_KEY": "1"})
    empty = [what for what, items in found.items() if not items]
    assert empty == [], f"these detectors missed the leak: {empty}"
    record("security", faults=1)


async def test_a_wrong_cookie_is_reported_without_either_value(
    warm_grpc: None, short_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The plugin refuses a host with the wrong cookie: the error names the variable, never the
    value it expected nor the one it got (on its stderr, in the host's exception or logs)."""
    expected = "expected-" + os.urandom(8).hex()
    given = "given-" + os.urandom(8).hex()
    caplog.set_level(1)
    with pytest.raises(rpcplugin.PluginExitedError) as exited:
        await rpcplugin.launch(
            REL_ARGV,
            handshake=rpcplugin.Handshake("RELIABILITY_PLUGIN", given),
            versions=[1],
            env={"REL_COOKIE_EXPECTED": expected, "RPCPLUGIN_LOG_LEVEL": "trace"},
            unix_socket_dir=short_dir,
        )
    text = str(exited.value) + exited.value.stderr_tail + caplog.text
    assert exited.value.returncode == 1
    assert "RELIABILITY_PLUGIN" in text
    assert expected not in text and given not in text
    record("security", cases=1, faults=1)


# -- SecureConfig ---------------------------------------------------------------------------
@pytest.mark.go
async def test_secure_config_rejects_a_modified_executable(warm_grpc: None, short_dir: str) -> None:
    """The checksum taken of a plugin executable, then the file changed: one byte flipped,
    bytes appended, the file replaced by another (a new inode at the same path). Each launch
    is refused with ChecksumError before anything runs; the original runs again once restored.
    A script that leaves a marker when run shows that nothing was executed."""
    binary = os.path.join(short_dir, "goplugin")
    shutil.copy2(go_plugin_binary(), binary)
    original = Path(binary).read_bytes()
    digest = hashlib.sha256(original).hexdigest()
    launch_args: dict[str, Any] = {
        "handshake": rpcplugin.Handshake("RPCPLUGIN_CONFORMANCE", "conformance-v1"),
        "versions": [1],
        "env": {"GOPLUGIN_LOG_LEVEL": "off"},
        "checksum": digest,
        "unix_socket_dir": short_dir,
    }
    before = Snapshot.take()
    async with rpcplugin.launch([binary], **launch_args) as conn:
        await conn.ping()
    middle = len(original) // 2
    changes = {
        "one byte flipped": original[:middle]
        + bytes([original[middle] ^ 1])
        + original[middle + 1 :],
        "bytes appended": original + b"\0",
    }
    for what, data in changes.items():
        Path(binary).write_bytes(data)
        with pytest.raises(ChecksumError, match="checksum mismatch"):
            await rpcplugin.launch([binary], **launch_args)
        print(f"\n{what}: refused")
        record("security", cases=1, faults=1)
    replacement = binary + ".new"
    Path(replacement).write_bytes(original[:-1] + b"\1")
    os.chmod(replacement, 0o755)
    os.replace(replacement, binary)
    with pytest.raises(ChecksumError):
        await rpcplugin.launch([binary], **launch_args)
    record("security", cases=1, faults=1)
    Path(binary).write_bytes(original)
    async with rpcplugin.launch([binary], **launch_args) as conn:
        await conn.ping()
    # a script: modified, it must not run at all
    marker = os.path.join(short_dir, "ran")
    script = os.path.join(short_dir, "plugin.sh")
    Path(script).write_text(f"#!/bin/sh\ntouch {marker}\nexit 3\n")
    os.chmod(script, 0o755)
    script_digest = hashlib.sha256(Path(script).read_bytes()).hexdigest()
    with Path(script).open("a") as handle:
        handle.write("# one more line\n")
    with pytest.raises(ChecksumError):
        await rpcplugin.launch(
            [script], handshake=MB_HANDSHAKE, versions=[1], checksum=script_digest
        )
    assert not os.path.exists(marker), "a modified executable was run"
    record("security", cases=1, faults=1)
    assert not await check_leaks("security", before)


# -- hostile handshakes, many times -------------------------------------------------------
HOSTILE_PLUGINS: dict[str, tuple[list[str], dict[str, Any], type[Exception]]] = {
    "unasked certificate": (mb("unasked-cert"), {"auto_mtls": False}, rpcplugin.SecurityError),
    "line over 64 KiB": (mb("oversize"), {}, rpcplugin.HandshakeError),
    "NUL in the line": (mb("nul"), {}, rpcplugin.HandshakeError),
    "no certificate though asked": (mb("no-tls"), {}, rpcplugin.SecurityError),
    "announced one cert, serves another": (
        mb("swap-cert"),
        {"tls_backend": "grpc"},
        rpcplugin.PluginError,
    ),
}


async def test_hostile_handshakes_are_refused_cleanly_again_and_again(
    warm_grpc: None, short_dir: str
) -> None:
    """The hostile handshakes of tests/host/test_misbehaving.py, repeated (2 rounds; 20 in soak
    mode): each is refused with its error, and this process keeps no descriptor, child or
    socket directory from any of them."""
    rounds = scaled(2, 20)
    before = Snapshot.take()
    async with quiet_logs():
        for _ in range(rounds):
            for name, (argv, kwargs, error) in HOSTILE_PLUGINS.items():
                with pytest.raises(error):
                    await rpcplugin.launch(
                        argv,
                        handshake=MB_HANDSHAKE,
                        versions=[1],
                        unix_socket_dir=short_dir,
                        start_timeout=20.0,
                        **kwargs,
                    )
                record("security", cases=1, faults=1)
                assert name
    # the misbehaving plugin puts its socket in the private dir the host made: all removed
    assert not await check_leaks("security", before, short_dir)
