"""hclog lines: what our plugins write and what our host reads (docs/protocol.md §7.3, P28, H07)."""

from __future__ import annotations

import json
import logging
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rpcplugin import hclog

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def _record(level: int, message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("acme.kv", level, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_p28_json_fields_are_strings_with_six_digit_timestamps() -> None:
    formatter = hclog.HclogFormatter()
    for level in (hclog.TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        line = formatter.format(_record(level, "hello", key=3, obj=object()))
        entry = json.loads(line)
        assert all(isinstance(entry[k], str) for k in ("@level", "@message", "@timestamp"))
        assert STAMP.match(entry["@timestamp"])
        assert entry["@level"] in ("trace", "debug", "info", "warn", "error")
        assert entry["key"] == 3 and isinstance(entry["obj"], str)


def test_p29_lines_stay_under_64k() -> None:
    line = hclog.HclogFormatter().format(_record(logging.INFO, "x" * 200_000))
    assert len(line) < 64 * 1024 and "\n" not in line
    assert json.loads(line)["@message"].endswith("(truncated)")


def test_text_format() -> None:
    line = hclog.HclogFormatter(json_lines=False).format(_record(logging.WARNING, "a\nb"))
    assert line == "[WARN] acme.kv: a\\nb"


def test_h07_parse_levels_messages_and_fields() -> None:
    entry = hclog.parse_line(
        '{"@level":"WARN","@message":"disk low","@timestamp":"2026-01-01T00:00:00.000000Z",'
        '"@module":"kv","free":12}\n'
    )
    assert (entry.level, entry.message, entry.fields, entry.module) == (
        logging.WARNING,
        "disk low",
        {"free": 12},
        "kv",
    )
    assert hclog.parse_line("[ERROR] boom").level == logging.ERROR
    assert hclog.parse_line("[TRACE] t").level == hclog.TRACE
    assert hclog.parse_line("plain words").level == logging.DEBUG
    # what go-plugin hosts choke on is harmless here
    assert hclog.parse_line('{"@level": 3, "@message": null}').level == logging.DEBUG
    assert hclog.parse_line('{"@level":"info","@message":null}').message == "null"
    assert hclog.parse_line("{not json").message == "{not json"


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.dictionaries(
            st.text(max_size=10),
            st.one_of(
                st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3)
            ),
        ),
    )
)
def test_fuzz_parse_line_never_raises(value: str | dict[str, object]) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    entry = hclog.parse_line(text)
    assert isinstance(entry.message, str) and isinstance(entry.level, int)
