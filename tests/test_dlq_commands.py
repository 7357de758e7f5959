"""``edge dlq list | show | redrive``: the pure parts (rows, safe text, addresses,
selection, redrive headers), and the operator's day on the real broker, parser,
sink and InfluxDB: a message refused for a missing site time zone, the zone set,
a redrive, the points arrive, and a second redrive changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from edge.core.dlq import DeadLetter, dlq_headers, redrive_headers
from edge.core.errors import UsageError
from edge.ops.dlq_view import Letter, Selection, parse_address, parse_range, row, safe_text, site_of, table
from tests.support import influx
from tests.support.kafka import produce_all, read_all
from tests.support.pipeline import pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import ROOT, wait_for

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _letter(stage="parser", reason="parse_error", value=b"{}", partition=0, offset=0, error="bad", original=None):
    headers = dlq_headers(stage=stage, reason=reason, error=error, topic="p.raw", partition=3, offset=41,
                          original=original, now=NOW)
    return Letter(partition, offset, value, None, headers)


# ------------------------------------------------------------------ pure parts


def test_safe_text_escapes_control_format_and_invalid_bytes_but_keeps_newlines_and_tabs():
    assert safe_text(b'{"a":"x\x08$Broker"}') == '{"a":"x\\x08$Broker"}'
    assert safe_text(b"\x1b[2Jred\x1b[0m") == "\\x1b[2Jred\\x1b[0m"  # no terminal escapes reach the screen
    assert safe_text("a\u202eb\u0085c".encode()) == "a\\u202eb\\x85c"  # bidi override, C1 control
    assert safe_text(b"caf\xc3\xa9 \xff\xfe") == "café \\xff\\xfe"
    assert safe_text(b"line1\n\tline2") == "line1\n\tline2"
    assert safe_text(None) == ""


def test_a_row_says_when_stage_reason_site_source_and_error(sample_bytes):
    letter = _letter(value=sample_bytes, partition=2, offset=17, error="header.timestamp out of range\x07")
    assert row(letter) == ("2:17", "2024-06-01 12:00:00", "parser", "parse_error", "000001", "p.raw:3:41",
                           "header.timestamp out of range\\x07")
    sink = _letter(stage="sink", reason="influx_rejected", value=b"field1,device=a\\ b,site_id=s\\,1 x=1 5")
    assert site_of(sink) == "s,1"
    assert site_of(_letter(value=b"not json")) is None
    assert row(Letter(0, 5, b"x", None, []))[2:6] == ("?", "?", "-", "-")  # not a DLQ record: shown, not hidden
    text = table([row(letter), row(sink)], error_width=10)
    assert text.splitlines()[0].split() == ["at", "time", "stage", "reason", "site", "source", "error"]
    assert "header.ti…" in text and "\x07" not in text


def test_addresses_and_ranges():
    assert parse_address("2:17", [0, 1, 2]) == (2, 17)
    assert parse_address("17", [0]) == (0, 17)
    assert parse_range("1:5-9", [0, 1]) == (1, 5, 9)
    assert parse_range("5-9", [0]) == (0, 5, 9)
    assert parse_range("1:7", [0, 1]) == (1, 7, 7)
    for bad, parts in (("17", [0, 1]), ("3:1", [0, 1]), ("x:1", [0]), ("1:-3", [0, 1]), ("0:9-5", [0])):
        with pytest.raises(UsageError):
            parse_range(bad, parts) if "-" in bad[2:] else parse_address(bad, parts)


def test_selection_needs_every_criterion():
    a = _letter(partition=0, offset=4)
    b = _letter(stage="sink", reason="influx_rejected", partition=1, offset=9)
    assert [x.offset for x in (a, b) if Selection()(x)] == [4, 9]
    assert Selection(reasons=frozenset({"influx_rejected"}))(b) and not Selection(reasons=frozenset({"x"}))(b)
    assert Selection(stages=frozenset({"parser"}))(a) and not Selection(stages=frozenset({"parser"}))(b)
    ranges = Selection(ranges=((1, 5, 9),))
    assert ranges(b) and not ranges(a) and ranges.start_offsets([0, 1]) == {1: 5}
    assert Selection(since=NOW)(a) and not Selection(since=datetime(2024, 6, 2, tzinfo=UTC))(a)


def test_redrive_headers_keep_the_originals_and_say_where_from():
    letter = _letter(original=[("amqp.message_id", b"000001/x"), ("redrive.from", b"old:0:1")])
    headers = redrive_headers(letter.headers, dlq_topic="p.dlq", partition=2, offset=17, now=NOW)
    assert headers == [("amqp.message_id", b"000001/x"), ("redrive.from", b"p.dlq:2:17"),
                       ("redrive.time", NOW.isoformat().encode())]
    assert DeadLetter.from_headers(letter.headers).source_offset == 41


# ------------------------------------------------------------------ on the real pipeline

SITE = "000009"
EPOCH_LOCAL = "1970-01-01 00:00:00"  # time 0 in UTC (refused); 05:00Z in New York


def _edge(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _metrics_up(port: int) -> bool:
    try:
        return bool(scrape(port))
    except OSError:
        return False


def _site_points(p) -> int:
    if not p.points():
        return 0
    return sum(len(s["values"]) for s in influx.query(p.url, p.db, f"SELECT * FROM /.*/ WHERE site_id = '{SITE}'"))


def test_refused_for_a_missing_time_zone_then_redriven_after_the_fix(pipeline, sample_bytes):
    p = pipeline
    refused = sample_bytes.replace(b'"000001"', f'"{SITE}"'.encode()).replace(
        json.loads(sample_bytes.decode(errors="replace"), strict=False)["header"]["timestamp"].encode(),
        EPOCH_LOCAL.encode())
    good = sample_bytes
    produce_all(p.kafka, p.kafka.raw_topic, [good], headers=[("amqp.message_id", b"good")])
    produce_all(p.kafka, p.kafka.raw_topic, [refused], headers=[("amqp.message_id", b"refused")])
    parser = p.start("parse")
    p.start("sink")
    wait_for(lambda: p.points() == 17, 90, what="the good message's 17 points")
    (dead,) = wait_for(lambda: read_all(p.kafka, p.kafka.dlq_topic, idle=0.5), 60, what="the dead letter")
    address = f"{dead.partition()}:{dead.offset()}"

    listing = _edge(p.env, "dlq", "list")
    (line,) = [x for x in listing.splitlines() if x.startswith(address + " ")]
    assert line.split()[3:6] == ["parser", "parse_error", SITE] and "out of range" in line
    assert listing.splitlines()[-1] == f"1 dead letters in {p.kafka.dlq_topic}"
    assert _edge(p.env, "dlq", "list", "--reason", "partial").splitlines()[-1].startswith("0 dead letters")

    shown = _edge(p.env, "dlq", "show", address)
    assert "dlq.reason: parse_error" in shown and "amqp.message_id: refused" in shown
    assert "\\x08$Broker_IP" in shown and "\x08" not in shown  # the sample's raw backspace, escaped
    assert EPOCH_LOCAL in shown

    # Dry run: nothing sent, nothing changes.
    dry = _edge(p.env, "dlq", "redrive", "--reason", "parse_error", "--dry-run")
    assert f"1 -> {p.kafka.raw_topic}" in dry and "nothing sent" in dry
    assert len(read_all(p.kafka, p.kafka.raw_topic, idle=0.5)) == 2

    # The fix: the site's time zone; the parser restarted with it.
    parser.terminate()
    p.env["EDGE_PARSER__SITE_TIMEZONES"] = json.dumps({SITE: "America/New_York"})
    p.start("parse", "-fixed")
    wait_for(lambda: _metrics_up(p.ports["parse"]), 30, what="fixed parser's metrics")
    out = _edge(p.env, "dlq", "redrive", "--offsets", f"{address}-{dead.offset()}")
    assert f"sent and acknowledged 1 records: 1 -> {p.kafka.raw_topic}" in out
    wait_for(lambda: _site_points(p) == 17, 90, what="the redriven message's points")
    times = {v[0] for s in influx.query(p.url, p.db, f"SELECT * FROM /.*/ WHERE site_id = '{SITE}'")
             for v in s["values"]}
    assert times == {5 * 3600 * 10**9}  # 1970-01-01 00:00 in New York
    original, redriven = sorted((r for r in read_all(p.kafka, p.kafka.raw_topic, idle=0.5) if r.value() == refused),
                                key=lambda r: "redrive.from" in dict(r.headers()))
    assert "redrive.from" not in dict(original.headers())
    headers = dict(redriven.headers())
    assert headers["redrive.from"] == f"{p.kafka.dlq_topic}:{address}".encode()
    assert headers["amqp.message_id"] == b"refused" and not any(k.startswith("dlq.") for k in headers)

    # Redriving again: read, parsed, written again, and InfluxDB's count stays.
    total = p.points()
    written = value(scrape(p.ports["sink"]), "edge_sink_lines_written_total")
    _edge(p.env, "dlq", "redrive", "--reason", "parse_error")
    wait_for(lambda: value(scrape(p.ports["sink"]), "edge_sink_lines_written_total") >= written + 17, 60,
             what="the second redrive written")
    assert p.points() == total and _site_points(p) == 17
    assert len(read_all(p.kafka, p.kafka.dlq_topic, idle=0.5)) == 1  # nothing dead-lettered again
