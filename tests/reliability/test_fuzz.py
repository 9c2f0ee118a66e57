"""Fuzzing (issue 7 §2): the parsers that read what another process or the user wrote.

Each target gets thousands of hypothesis examples (ten times as many in soak mode), each under
a time limit, and may only return a valid result or raise its documented exception:

=====================================  ==============================  =======================
target                                 input                           documented exception
=====================================  ==============================  =======================
``HandshakeLine.parse``                the plugin's first stdout line  ``HandshakeError``
``PluginSettings.from_env``            the plugin's environment        ``ConfigError``
``ConnectSettings.from_env``           the host's environment          ``ConfigError``
``parse_reattach``                     reattach JSON (or its object)   ``ConfigError``
``hclog.parse_line``                   a plugin's stderr line          none: never raises
host's stderr line handler             raw stderr bytes                none: never raises
``HclogFormatter.format``              a plugin's log record           none; < 64 KiB, 1 line
=====================================  ==============================  =======================

``tests/test_handshake.py``, ``tests/test_hclog.py`` and ``tests/test_config.py`` keep their
own fuzz and table tests; these add structure-aware inputs (near-valid lines and configs, JSON
nested thousands deep, every setting with hostile values) and the hang check.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rpcplugin import hclog
from rpcplugin.config import SETTINGS, ConnectSettings, PluginSettings
from rpcplugin.errors import ConfigError, HandshakeError
from rpcplugin.handshake import MAX_LINE_BYTES, HandshakeLine
from rpcplugin.host.reattach_config import ReattachConfig, parse_reattach
from rpcplugin.host.sinks import stderr_logger

from .figures import record, scaled, time_limit

EXAMPLES = scaled(2000, 10000)
LIMIT = 2.0
"""Seconds one example may take (a parser that loops forever fails instead of stalling)."""
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- handshake line -----------------------------------------------------------------------
def _cert_field() -> st.SearchStrategy[str]:
    valid = st.binary(min_size=0, max_size=600).map(
        lambda der: base64.b64encode(der).decode().rstrip("=")
    )
    return st.one_of(st.just(""), valid, st.text(max_size=80), st.just("!" * 60))


NUMBERS = st.one_of(
    st.sampled_from(["1", "2", "0", "-1", " 1 ", "01", "+1", "1.0", "", "1e3", "٣", "9" * 5000]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=8),
)
FIELD_LISTS = st.tuples(
    NUMBERS,
    NUMBERS,
    st.one_of(st.sampled_from(["unix", "tcp", "udp", "", "UNIX", " tcp"]), st.text(max_size=6)),
    st.one_of(
        st.sampled_from(["/tmp/plugin1", "127.0.0.1:1234", "rel/p", "", "/p\x00q", "[::1]:1"]),
        st.text(max_size=40),
    ),
    st.one_of(st.sampled_from(["grpc", "netrpc", "", "GRPC"]), st.text(max_size=6)),
    _cert_field(),
    st.one_of(st.sampled_from(["true", "false", "t", "1", "0", ""]), st.text(max_size=5)),
    st.lists(st.text(max_size=5), max_size=3),
    st.integers(3, 10),
)


@st.composite
def handshake_lines(draw: st.DrawFn) -> str | bytes:
    core, app, network, address, protocol, cert, mux, extra, keep = draw(FIELD_LISTS)
    fields = [core, app, network, address, protocol, cert, mux, *extra][:keep]
    line = "|".join(fields)
    line = draw(st.sampled_from(["", " ", "\t", "\ufeff"])) + line
    line += draw(st.sampled_from(["", "\n", "\r\n", " \n", "\x00"]))
    if draw(st.booleans()):
        return line
    data = line.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@FUZZ
@given(st.one_of(handshake_lines(), st.binary(max_size=400), st.text(max_size=400)))
@example(b"1|1|unix|/tmp/p|grpc|" + b" " * (MAX_LINE_BYTES + 1))
@example("1|1|unix|/tmp/p|grpc|" + "x" * (MAX_LINE_BYTES * 2))
@example(b"1|1|unix|/tmp/p\x00|grpc|")
def test_handshake_parser_only_raises_handshake_errors(raw: str | bytes) -> None:
    record("fuzz", cases=1)
    with time_limit(LIMIT, "HandshakeLine.parse"):
        try:
            line = HandshakeLine.parse(raw, host_versions=[1, 2])
        except HandshakeError as exc:
            assert str(exc)  # an explanation, never an empty message
            return
    # whatever was accepted is something the host can act on safely
    assert line.core_version == 1 and line.app_version in (1, 2)
    assert line.protocol == "grpc" and line.network in ("unix", "tcp")
    assert line.address and "\x00" not in line.address
    assert line.network != "unix" or line.address.startswith("/")
    assert line.server_cert_der is None or len(line.server_cert_der) > 0
    if isinstance(raw, bytes):
        assert len(raw) <= MAX_LINE_BYTES


# -- environment and configuration --------------------------------------------------------
HOSTILE = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "1",
            "-1",
            "65535",
            "65536",
            "99999999999999999999999",
            "9" * 5000,
            "1_000",
            "0x10",
            "1e3",
            "1e999",
            "-1e999",
            "nan",
            "inf",
            "-0",
            "0.0001",
            "٣",
            "true",
            "TRUE",
            "off",
            "maybe",
            "json",
            "text",
            "tcp",
            "unix",
            "grpc",
            "openssl",
            "auto",
            "otel",
            "trace",
            "WARN",
            "/tmp",
            "relative",
            "/nonexistent/dir",
            "wheel",
            "0",
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----",
            "1,2,x,,3",
            "\x00",
            "a\x00b",
            "\ud800",
        ]
    ),
    st.text(max_size=30),
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
SETTING_NAMES = [s.name for s in SETTINGS]


@FUZZ
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(SETTING_NAMES), st.text(max_size=12)), HOSTILE, max_size=12
    )
)
def test_plugin_settings_from_env_only_raise_config_errors(env: dict[str, str]) -> None:
    record("fuzz", cases=1)
    with time_limit(LIMIT, "PluginSettings.from_env"):
        try:
            parsed = PluginSettings.from_env(env)
        except ConfigError as exc:
            assert exc.setting in SETTING_NAMES, exc  # names the variable it refuses
            return
    if parsed.min_port is not None or parsed.max_port is not None:
        assert parsed.min_port is not None and parsed.max_port is not None
        assert 0 <= parsed.min_port <= parsed.max_port <= 65535
    assert parsed.transport in ("unix", "tcp")
    assert parsed.tls_backend in ("auto", "openssl", "grpc")
    assert parsed.log_level in ("trace", "debug", "info", "warn", "error")
    assert parsed.log_format in ("json", "text")
    assert 0 <= parsed.stdio_buffer <= 1 << 30
    assert parsed.unix_socket_dir is None or parsed.unix_socket_dir.startswith("/")
    if parsed.rate_limit is not None:
        assert math.isfinite(parsed.rate_limit) and parsed.rate_limit > 0
        assert parsed.rate_burst is not None and parsed.rate_burst >= 1
    assert parsed.metrics in ("off", "auto", "otel")
    assert all(isinstance(v, int) for v in parsed.protocol_versions or ())


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "RPCPLUGIN_CONNECT_ATTEMPTS",
                "RPCPLUGIN_CONNECT_BACKOFF",
                "RPCPLUGIN_CONNECT_MAX_BACKOFF",
                "RPCPLUGIN_CONNECT_DEADLINE",
            ]
        ),
        HOSTILE,
    )
)
def test_connect_settings_from_env_only_raise_config_errors(env: dict[str, str]) -> None:
    record("fuzz", cases=1)
    with time_limit(LIMIT, "ConnectSettings.from_env"):
        try:
            parsed = ConnectSettings.from_env(env)
        except ConfigError:
            return
    assert 1 <= parsed.attempts <= 1000
    assert all(math.isfinite(v) for v in (parsed.backoff, parsed.max_backoff, parsed.deadline))
    assert 0 <= parsed.backoff <= parsed.max_backoff and parsed.deadline > 0


# -- reattach configurations --------------------------------------------------------------
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def reattach_objects(draw: st.DrawFn) -> Any:
    """Configs that are nearly right: every key present or not, each value right or not."""
    config: dict[str, Any] = {}
    if draw(st.booleans()):
        config["Protocol"] = draw(st.one_of(st.sampled_from(["grpc", "netrpc", ""]), JSON_LEAVES))
    if draw(st.booleans()):
        config["ProtocolVersion"] = draw(st.one_of(st.integers(-5, 10), JSON_LEAVES))
    if draw(st.booleans()):
        config["Pid"] = draw(
            st.one_of(st.sampled_from([0, 1, -1, 2**31, 2**63, 4242]), JSON_LEAVES)
        )
    if draw(st.booleans()):
        config["Test"] = draw(JSON_LEAVES)
    if draw(st.integers(0, 4)):
        config["Addr"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "Network": st.one_of(st.sampled_from(["unix", "tcp", "udp"]), JSON_LEAVES),
                        "String": st.one_of(
                            st.sampled_from(["/tmp/plugin1", "127.0.0.1:1", ""]), JSON_LEAVES
                        ),
                    }
                ),
                JSON_VALUES,
            )
        )
    if draw(st.booleans()):
        return {draw(st.text(max_size=8)): config}
    return config


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """JSON (or nearly JSON) nested up to thousands deep, as a hostile process can write it."""
    depth = draw(st.integers(1, 5000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    prefix = draw(st.sampled_from(["", '{"Addr":', '{"x":']))
    closed = draw(st.booleans())
    return prefix + opener * depth + "1" + (closer * depth if closed else "")


def _valid_reattach(config: ReattachConfig) -> None:
    assert config.endpoint.network in ("unix", "tcp") and config.endpoint.address
    if config.endpoint.network == "tcp":  # what the host's reattach probe splits and int()s
        host, _, port = config.endpoint.address.rpartition(":")
        assert host and 0 <= int(port) <= 65535
    assert config.protocol == "grpc"
    # a pid the host may later SIGKILL: a real, positive process id, never -1 (every
    # process) or another negative number (a process group), never a boolean
    assert config.pid is None or (type(config.pid) is int and 0 < config.pid < 2**31)
    assert config.protocol_version is None or type(config.protocol_version) is int
    assert isinstance(config.test, bool)


@FUZZ
@given(
    st.one_of(
        reattach_objects(),
        reattach_objects().map(json.dumps),
        JSON_VALUES.map(json.dumps),
        deep_json(),
        st.text(max_size=200),
    )
)
@example('{"Protocol":"grpc","Pid":-1,"Addr":{"Network":"unix","String":"/tmp/p"}}')
@example('{"Protocol":"grpc","Pid":true,"Addr":{"Network":"unix","String":"/tmp/p"}}')
@example("[" * 100_000)
def test_parse_reattach_only_raises_config_errors(value: Any) -> None:
    record("fuzz", cases=1)
    with time_limit(LIMIT, "parse_reattach"):
        try:
            config = parse_reattach(value)
        except ConfigError as exc:
            assert str(exc)
            return
    _valid_reattach(config)


# -- hclog, both ways ---------------------------------------------------------------------
HCLOG_OBJECTS = st.dictionaries(
    st.one_of(
        st.sampled_from(["@level", "@message", "@timestamp", "@module"]), st.text(max_size=8)
    ),
    st.one_of(
        st.sampled_from(["trace", "debug", "info", "warn", "WARNING", "error", "bogus"]),
        JSON_VALUES,
    ),
    max_size=6,
)


@FUZZ
@given(
    st.one_of(
        HCLOG_OBJECTS.map(json.dumps),
        st.text(max_size=300),
        deep_json(),
        st.tuples(
            st.sampled_from(["[TRACE]", "[DEBUG]", "[INFO]", "[WARN]", "[ERROR]", " {", "{"]),
            st.text(max_size=100),
        ).map("".join),
    )
)
@example('{"@level":"info","@message":' + "[" * 100_000)
@example("{" + '"a":[' * 30_000)
def test_hclog_parse_line_never_raises(line: str) -> None:
    record("fuzz", cases=1)
    with time_limit(LIMIT, "hclog.parse_line"):
        entry = hclog.parse_line(line)
    assert isinstance(entry.level, int) and isinstance(entry.message, str)
    assert entry.level in (hclog.TRACE, 10, 20, 30, 40)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        HCLOG_OBJECTS.map(lambda obj: json.dumps(obj).encode()),
        deep_json().map(str.encode),
    )
)
def test_host_stderr_line_handler_never_raises_and_logs_every_line(raw: bytes) -> None:
    """What the host does with each plugin stderr line: parse it, log it; a line it cannot
    parse is still logged (as DEBUG text), never dropped and never an exception."""
    record("fuzz", cases=1)
    logger = logging.getLogger("rpcplugin.reliability.fuzz")
    logger.propagate = False
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(level=1)
    logger.addHandler(handler)
    logger.setLevel(1)
    try:
        with time_limit(LIMIT, "the host's stderr line handler"):
            stderr_logger(logger, "fuzz")(raw)
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 1 and isinstance(seen[0].getMessage(), str)


@FUZZ
@given(
    st.text(max_size=2000),
    st.sampled_from([hclog.TRACE, 10, 20, 30, 40, 50, 1, 99]),
    st.dictionaries(
        st.text(st.characters(categories=["Ll"]), min_size=1, max_size=6).filter(
            lambda k: k not in ("message", "asctime", "args", "msg")
        ),
        st.one_of(JSON_LEAVES, st.binary(max_size=10), JSON_VALUES),
        max_size=4,
    ),
    st.booleans(),
    st.integers(0, 3),
)
def test_hclog_formatter_lines_are_one_line_under_64_kib(
    message: str, level: int, extra: dict[str, Any], json_lines: bool, blowup: int
) -> None:
    """Whatever a plugin logs becomes one line under 64 KiB that a Go host can read: valid JSON
    with string ``@level``/``@message``/``@timestamp`` (unless cut to fit), or ``[LEVEL]`` text."""
    record("fuzz", cases=1)
    message = message * (10**blowup if blowup < 3 else 40_000)
    log_record = logging.LogRecord("fuzz.module", level, __file__, 1, message, None, None)
    for key, value in extra.items():
        if not hasattr(log_record, key):
            setattr(log_record, key, value)
    with time_limit(LIMIT, "HclogFormatter.format"):
        line = hclog.HclogFormatter(json_lines=json_lines).format(log_record)
    data = line.encode("utf-8", "backslashreplace")
    assert len(data) <= hclog.MAX_LINE and b"\n" not in data
    if not json_lines:
        assert line.startswith("[")
        return
    try:
        entry = json.loads(line)
    except ValueError:
        assert len(data) > hclog.MAX_LINE - 1000, "only a line cut to fit may be broken JSON"
        return
    assert all(isinstance(entry[k], str) for k in ("@level", "@message", "@timestamp"))


@pytest.mark.parametrize(
    "line",
    [
        '{"@level":"info","@message":' + "[" * 70_000 + "]" * 70_000 + "}",
        "{" + '"a":[' * 30_000,
    ],
)
def test_hclog_deeply_nested_json_line_is_plain_text(line: str) -> None:
    """A plugin writing JSON nested deeper than the JSON decoder's recursion limit: the line
    is kept as DEBUG text (it used to raise RecursionError out of ``parse_line``)."""
    record("fuzz", cases=1)
    entry = hclog.parse_line(line)
    assert entry.level == logging.DEBUG and entry.message == line


@pytest.mark.parametrize(
    "config",
    [
        '{"Protocol":"grpc","Pid":-1,"Addr":{"Network":"unix","String":"/tmp/p"}}',
        '{"Protocol":"grpc","Pid":-4242,"Addr":{"Network":"unix","String":"/tmp/p"}}',
        '{"Protocol":"grpc","Pid":true,"Addr":{"Network":"unix","String":"/tmp/p"}}',
        '{"Protocol":"grpc","Pid":18446744073709551616,"Addr":{"Network":"tcp","String":"a:1"}}',
        '{"Protocol":"grpc","ProtocolVersion":true,"Addr":{"Network":"tcp","String":"a:1"}}',
        '{"p": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"Protocol":"grpc","Addr":{"Network":"tcp","String":"nonsense"}}',
        '{"Protocol":"grpc","Addr":{"Network":"tcp","String":"127.0.0.1:99999"}}',
    ],
)
def test_reattach_configs_the_host_must_not_act_on(config: str) -> None:
    """``Pid`` is what ``close()`` SIGKILLs when the plugin does not exit: -1 would signal every
    process the user may signal, another negative number a whole process group (go-plugin
    refuses -1 and 0 itself), a huge one escaped ``reattach()`` as OverflowError. Deep JSON
    escaped as RecursionError, a tcp address without a port as ValueError."""
    record("fuzz", cases=1)
    with pytest.raises(ConfigError):
        parse_reattach(config)
