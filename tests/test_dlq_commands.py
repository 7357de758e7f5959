"""``edge dlq list | show | redrive``: the pure parts (rows, safe text, addresses,
selection, redrive headers, failures and their state), and on the real broker,
parser, sink and InfluxDB: the operator's day (a message refused for a missing
site time zone, the zone set, a redrive, the points arrive, the failure listed as
resolved, a second redrive changes nothing); one DLQ record per failure: replays
add none of a failure the DLQ holds, a redrive that still fails adds a body-less
repeat (reopened) and one after the fix resolves, counted from the topic by
``edge status``; the list sorted by time; strict reasons; a body byte-exact."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from edge.config.settings import KafkaSettings
from edge.core.dlq import (REASONS, DeadLetter, dlq_headers, failure_id, header_map, redrive_headers, repeat_of,
                           resolution_headers)
from edge.core.errors import UsageError
from edge.ops.dlq_failures import COLUMNS, failure_row, group_failures, select
from edge.ops.dlq_view import Letter, Selection, parse_address, parse_range, row, safe_text, site_of, table
from edge.kafka.topics import ensure_topics, topic_names
from tests.support import influx
from tests.support.kafka import produce_all, read_all
from tests.support.pipeline import pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import ROOT, wait_for

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _letter(stage="parser", reason="parse_error", value=b"{}", partition=0, offset=0, error="bad", original=None,
            now=NOW):
    headers = dlq_headers(stage=stage, reason=reason, error=error, topic="p.raw", partition=3, offset=41,
                          original=original, now=now)
    return Letter(partition, offset, value, None, headers)


def _marker(of: Letter, when: datetime, partition=0, offset=99) -> Letter:
    d = of.dead_letter
    headers = resolution_headers(origin=f"p.dlq:{of.address}", failure=failure_id(d.stage, d.reason, of.value),
                                 sent_to="p.raw:0:7", when=when)
    return Letter(partition, offset, None, None, headers)


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
    assert ranges(b) and not ranges(a)
    assert Selection(since=NOW)(a) and not Selection(since=datetime(2024, 6, 2, tzinfo=UTC))(a)
    assert Selection(since=NOW)(Letter(0, 1, b"x", None, []))  # undated: never hidden


def test_a_failure_is_stage_reason_and_body():
    ids = {failure_id("parser", "parse_error", b"x"), failure_id("sink", "parse_error", b"x"),
           failure_id("parser", "partial", b"x"), failure_id("parser", "parse_error", b"y"),
           failure_id("parser", "parse_error", b""), failure_id("parser", "parse_errorx", b"")}
    assert len(ids) == 6 and failure_id("parser", "parse_error", None) == failure_id("parser", "parse_error", b"")


def test_copies_collapse_into_one_failure_sorted_by_last_seen():
    hour = timedelta(hours=1)
    # The same body refused three times (a replay, another partition), another body once, in between.
    copies = [_letter(value=b"A", partition=p, offset=o, now=NOW + t * hour, error=f"copy {t}")
              for p, o, t in ((2, 5, 0), (0, 9, 3), (1, 1, 1))]
    other = _letter(value=b"B", partition=2, offset=6, now=NOW + 2 * hour)
    sink = _letter(stage="sink", reason="influx_rejected", value=b"A", partition=0, offset=1, now=NOW - hour)
    failures = group_failures([*copies, other, sink])
    assert [(f.latest.value, f.latest.dead_letter.stage, len(f.copies)) for f in failures] == [
        (b"A", "sink", 1), (b"B", "parser", 1), (b"A", "parser", 3)]
    a = failures[-1]
    assert (a.first_seen, a.last_seen, a.address, a.state) == (NOW, NOW + 3 * hour, "0:9", "open")
    assert failure_row(a) == ("0:9", "2024-06-01 12:00:00", "2024-06-01 15:00:00", "3", "open", "parser",
                              "parse_error", "-", "p.raw:3:41", "copy 3")
    assert [f.address for f in select(failures, Selection(ranges=((1, 1, 1),)))] == ["0:9"]  # by any copy


def test_a_marker_resolves_and_a_copy_after_it_reopens():
    first = _letter(value=b"A", offset=1)
    redrive = NOW + timedelta(minutes=5)
    (f,) = group_failures([first, _marker(first, redrive)])
    assert f.state == "resolved" and len(f.copies) == 1  # a marker is no copy
    # Dead-lettered again after the redrive: the cause is not fixed.
    again = _letter(value=b"A", offset=2, now=redrive + timedelta(seconds=1))
    assert group_failures([first, _marker(first, redrive), again])[0].state == "reopened"
    # Carrying that redrive's time: reopened even with the parser's clock behind ours.
    came_back = _letter(value=b"A", offset=3, now=redrive - timedelta(seconds=2),
                        original=redrive_headers([], dlq_topic="p.dlq", partition=0, offset=1, failure="f",
                                                 now=redrive))
    (f,) = group_failures([first, came_back, _marker(first, redrive)])
    assert f.state == "reopened" and len(f.copies) == 2
    # A copy from before the redrive (a slow replay that ran earlier) does not reopen it.
    before = _letter(value=b"A", offset=4, now=redrive - timedelta(seconds=1))
    assert group_failures([first, before, _marker(first, redrive)])[0].state == "resolved"
    # A marker of a failure that aged out of the DLQ marks nothing.
    assert group_failures([_marker(_letter(value=b"gone"), redrive)]) == []


def test_redrive_headers_keep_the_originals_and_say_where_from():
    letter = _letter(original=[("amqp.message_id", b"000001/x"), ("redrive.from", b"old:0:1")])
    headers = redrive_headers(letter.headers, dlq_topic="p.dlq", partition=2, offset=17, failure="0123abcd",
                              now=NOW)
    assert headers == [("amqp.message_id", b"000001/x"), ("redrive.from", b"p.dlq:2:17"),
                       ("redrive.failure", b"0123abcd"), ("redrive.time", NOW.isoformat().encode())]
    assert DeadLetter.from_headers(letter.headers).source_offset == 41


def test_a_redrive_that_fails_the_same_way_is_a_repeat_and_one_that_fails_otherwise_is_not():
    body = b"not json"
    same = failure_id("parser", "parse_error", body)
    sent = redrive_headers([("amqp.message_id", b"m")], dlq_topic="p.dlq", partition=0, offset=1, failure=same)
    assert repeat_of("parser", "parse_error", body, sent) == same
    assert repeat_of("parser", "partial", body, sent) is None  # fails otherwise after a fix: a new failure
    assert repeat_of("sink", "parse_error", body, sent) is None
    assert repeat_of("parser", "parse_error", b"other", sent) is None
    assert repeat_of("parser", "parse_error", body, [("amqp.message_id", b"m")]) is None  # never redriven
    headers = dlq_headers(stage="parser", reason="parse_error", error="e", topic="p.raw", partition=0, offset=9,
                          original=sent, repeat=same)
    assert header_map(headers)["dlq.repeat"] == same.encode()


def test_a_repeat_updates_last_seen_and_reopens_without_adding_a_copy():
    first = _letter(value=b"A", offset=1)
    redrive = NOW + timedelta(minutes=5)
    same = failure_id("parser", "parse_error", b"A")
    sent = redrive_headers(first.headers, dlq_topic="p.dlq", partition=0, offset=1, failure=same, now=redrive)
    repeat = Letter(0, 3, None, None, dlq_headers(stage="parser", reason="parse_error", error="again",
                                                  topic="p.raw", partition=0, offset=8, original=sent,
                                                  now=redrive + timedelta(seconds=1), repeat=same))
    (f,) = group_failures([first, _marker(first, redrive), repeat])
    assert (len(f.copies), len(f.repeats), f.state, f.address) == (1, 1, "reopened", "0:1")  # body at its first
    assert (f.first_seen, f.last_seen) == (NOW, redrive + timedelta(seconds=1))
    row_ = failure_row(f)
    assert (row_[0], row_[2], row_[3], row_[4]) == ("0:1", "2024-06-01 12:05:01", "1", "reopened")
    # Its copy aged out: still listed, with 0 copies (redrive leaves it out).
    (orphan,) = group_failures([repeat])
    assert (orphan.id, len(orphan.copies), orphan.address) == (same, 0, "0:3")


# ------------------------------------------------------------------ on the real pipeline

SITE = "000009"
EPOCH_LOCAL = "1970-01-01 00:00:00"  # time 0 in UTC (refused); 05:00Z in New York


def _edge(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rows(listing: str) -> list[dict[str, str]]:
    """The table of ``edge dlq list`` as rows of column -> cell (cells are apart by 2+ spaces)."""
    header, *lines = listing.splitlines()[:-1]
    assert re.split(r"\s{2,}", header) == list(COLUMNS)
    return [dict(zip(COLUMNS, re.split(r"\s{2,}", line, maxsplit=len(COLUMNS) - 1))) for line in lines]


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
    (line,) = _rows(listing)
    assert (line["at"], line["stage"], line["reason"], line["site"], line["copies"], line["state"]) == (
        address, "parser", "parse_error", SITE, "1", "open")
    assert "out of range" in line["error"]
    assert listing.splitlines()[-1] == f"1 failure (1 dead-letter record) in {p.kafka.dlq_topic}"
    assert _edge(p.env, "dlq", "list", "--reason", "partial").splitlines()[-1].startswith("0 failures")

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
    assert f"sent and acknowledged 1 record: 1 -> {p.kafka.raw_topic}; 1 marked resolved" in out
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

    # Resolved: gone from the list, shown as resolved with --all; the marker is in the DLQ, no new copy.
    listing = _edge(p.env, "dlq", "list")
    assert _rows(listing) == [] and "; 1 resolved not shown (--all shows them)" in listing
    (line,) = _rows(_edge(p.env, "dlq", "list", "--all"))
    assert (line["at"], line["copies"], line["state"]) == (address, "1", "resolved")
    (marker,) = [r for r in read_all(p.kafka, p.kafka.dlq_topic, idle=0.5) if r.offset() != dead.offset()
                 or r.partition() != dead.partition()]
    marks = dict(marker.headers())
    assert marks["redrive.origin"] == f"{p.kafka.dlq_topic}:{address}".encode() and not marker.value()
    assert marks["redrive.to"].startswith(f"{p.kafka.raw_topic}:".encode())
    assert marks["redrive.time"] == headers["redrive.time"]  # the redrive's moment, on both
    # A plain redrive leaves the resolved failure alone.
    assert "redrive: 1 resolved failure left out" in _edge(p.env, "dlq", "redrive", "--dry-run")

    # Redriving it again (--all): read, parsed, written again, and InfluxDB's count stays.
    total = p.points()
    written = value(scrape(p.ports["sink"]), "edge_sink_lines_written_total")
    _edge(p.env, "dlq", "redrive", "--reason", "parse_error", "--all")
    wait_for(lambda: value(scrape(p.ports["sink"]), "edge_sink_lines_written_total") >= written + 17, 60,
             what="the second redrive written")
    assert p.points() == total and _site_points(p) == 17
    dlq = read_all(p.kafka, p.kafka.dlq_topic, idle=0.5)
    assert sum("redrive.origin" not in dict(r.headers()) for r in dlq) == 1  # nothing dead-lettered again
    assert [r["state"] for r in _rows(_edge(p.env, "dlq", "list", "--all"))] == ["resolved"]


def _status_dlq_records(env: dict) -> int | None:
    """What ``edge status --json`` says the DLQ topic holds (exit 1: no service runs here)."""
    done = subprocess.run([sys.executable, "-m", "edge.cli", "status", "--json"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout)["dlq"]["records"]


def _known_counted(textfile) -> float:
    samples = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(textfile.read_text()) for s in family.samples}
    return samples.get(("edge_parser_dlq_known_total", (("reason", "parse_error"),)), 0.0)


def test_replays_write_one_dead_letter_per_failure_however_often_they_meet_it(pipeline, tmp_path):
    p = pipeline
    started = datetime.now(UTC) - timedelta(minutes=1)
    bodies = [b"not json 0", b"not json 1", b"not json 2", b"not json 0"]  # the first one twice in the raw topic
    produce_all(p.kafka, p.kafka.raw_topic, bodies, headers=[("amqp.message_id", b"bad")])
    outs, known = [], []
    for run in range(2):
        textfile = tmp_path / f"replay{run}.prom"
        done = subprocess.run([sys.executable, "-m", "edge.cli", "replay", "--from", started.isoformat(),
                               "--group-id", f"replay-{p.groups['parse']}", "--metrics-textfile", str(textfile)],
                              cwd=ROOT, env={**os.environ, **p.env}, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        outs.append(done.stdout)
        known.append(_known_counted(textfile))
    # The first replay writes each failure once (the repeated body once); the second writes nothing.
    assert "dead-lettered: parse_error 4; 1 already in the DLQ, not added again" in outs[0], outs[0]
    assert "dead-lettered: parse_error 4; 4 already in the DLQ, not added again" in outs[1], outs[1]
    assert known == [1.0, 4.0]
    records = read_all(p.kafka, p.kafka.dlq_topic, idle=0.5)  # every record of the topic, markers included
    assert sorted(r.value() for r in records) == sorted(set(bodies))
    listing = _edge(p.env, "dlq", "list")
    assert [(r["copies"], r["state"]) for r in _rows(listing)] == [("1", "open")] * 3
    assert listing.splitlines()[-1] == f"3 failures (3 dead-letter records) in {p.kafka.dlq_topic}"
    wait_for(lambda: _status_dlq_records(p.env) == 3, 30, what="edge status counting 3 DLQ records")


def _exactly(n: int, records: list) -> list | None:
    return records if len(records) == n else None


def _repeats(kafka) -> list:
    return [r for r in read_all(kafka, kafka.dlq_topic, idle=0.5) if "dlq.repeat" in dict(r.headers())]


def test_a_redrive_that_still_fails_adds_no_copy_and_one_after_the_fix_resolves(pipeline, sample_bytes):
    p = pipeline
    refused = sample_bytes.replace(b'"000001"', f'"{SITE}"'.encode()).replace(
        json.loads(sample_bytes.decode(errors="replace"), strict=False)["header"]["timestamp"].encode(),
        EPOCH_LOCAL.encode())
    other = b"not json"
    produce_all(p.kafka, p.kafka.raw_topic, [refused, other], headers=[("amqp.message_id", b"m")])
    parser = p.start("parse")
    p.start("sink")
    dead = wait_for(lambda: _exactly(2, read_all(p.kafka, p.kafka.dlq_topic, idle=0.5)), 60,
                    what="two dead letters")
    (original,) = [d for d in dead if d.value() == refused]
    address = f"{original.partition()}:{original.offset()}"
    failure = failure_id("parser", "parse_error", refused)

    # Redriven without a fix, twice: each time a resolution marker and a body-less repeat, no copy.
    for n in (1, 2):
        out = _edge(p.env, "dlq", "redrive", "--offsets", f"{address}-{original.offset()}")
        assert "sent and acknowledged 1 record:" in out, out
        repeats = wait_for(lambda: _exactly(n, _repeats(p.kafka)), 60, what=f"repeat {n}")
        latest = max(repeats, key=lambda r: dict(r.headers())["dlq.time"])
        headers = dict(latest.headers())
        assert not latest.value() and headers["dlq.repeat"] == failure.encode()
        assert headers["redrive.failure"] == failure.encode() and headers["dlq.reason"] == b"parse_error"
        assert headers["dlq.source.topic"] == p.kafka.raw_topic.encode()
        records = read_all(p.kafka, p.kafka.dlq_topic, idle=0.5)
        assert sorted(r.value() for r in records if r.value()) == sorted([refused, other])  # the bodies once
        assert len(records) == 2 + 2 * n  # the two dead letters; per redrive a resolution marker and a repeat
        listing = _edge(p.env, "dlq", "list")
        assert listing.splitlines()[-1] == f"2 failures (2 dead-letter records, {n} repeat marker" \
                                           f"{'s' if n > 1 else ''}) in {p.kafka.dlq_topic}"
        rows = _rows(listing)
        (again,) = [r for r in rows if r["site"] == SITE]
        assert (again["at"], again["copies"], again["state"]) == (address, "1", "reopened")  # body at its first
        assert again["last seen"] == headers["dlq.time"].decode()[:19].replace("T", " ")
        assert rows[-1] == again  # last seen: the newest at the bottom
        wait_for(lambda: _status_dlq_records(p.env) == len(records), 30, what=f"edge status: {len(records)}")
    redriven = [r for r in read_all(p.kafka, p.kafka.raw_topic, idle=0.5) if "redrive.from" in dict(r.headers())]
    assert len(redriven) == 2 and {dict(r.headers())["redrive.failure"] for r in redriven} == {failure.encode()}

    # The fix (the site's time zone), one more redrive: the points arrive, resolved, one more marker only.
    parser.terminate()
    p.env["EDGE_PARSER__SITE_TIMEZONES"] = json.dumps({SITE: "America/New_York"})
    p.start("parse", "-fixed")
    wait_for(lambda: _metrics_up(p.ports["parse"]), 30, what="fixed parser's metrics")
    _edge(p.env, "dlq", "redrive", "--offsets", f"{address}-{original.offset()}")
    wait_for(lambda: _site_points(p) == 17, 90, what="the redriven message's points")
    (fixed,) = [r for r in _rows(_edge(p.env, "dlq", "list", "--all")) if r["site"] == SITE]
    assert (fixed["at"], fixed["copies"], fixed["state"]) == (address, "1", "resolved")
    records = read_all(p.kafka, p.kafka.dlq_topic, idle=0.5)
    assert len(records) == 2 + 2 * 2 + 1 and len(_repeats(p.kafka)) == 2
    wait_for(lambda: _status_dlq_records(p.env) == 7, 30, what="edge status: 7")


@pytest.fixture
def dlq_only(local_services, names, edge_env):
    """This test's topics (three partitions), nothing running; deleted afterwards."""
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=3)
    ensure_topics(kafka)
    yield kafka
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    for future in admin.delete_topics(topic_names(kafka)).values():
        future.result(10)


def _produce_dead_letters(kafka, letters: list[tuple[int, bytes, datetime]]) -> list[str]:
    """(partition, body, dead-lettered at) as DLQ records; their addresses."""
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
    addresses = []
    for partition, body, when in letters:
        headers = dlq_headers(stage="parser", reason="parse_error", error="bad", topic=kafka.raw_topic,
                              partition=partition, offset=0, now=when)
        producer.produce(kafka.dlq_topic, body, partition=partition, headers=headers,
                         on_delivery=lambda err, m: addresses.append(err or f"{m.partition()}:{m.offset()}"))
        producer.flush(30)
    assert all(isinstance(a, str) for a in addresses), addresses
    return addresses


def test_the_list_sorts_by_time_not_by_partition(dlq_only, edge_env):
    hour = timedelta(hours=1)
    # Partition 0 holds the newest, partition 2 the oldest.
    addresses = _produce_dead_letters(dlq_only, [(0, b"third", NOW + 2 * hour), (1, b"second", NOW + hour),
                                                 (2, b"first", NOW), (0, b"fourth", NOW + 3 * hour)])
    rows = _rows(_edge(edge_env, "dlq", "list"))
    assert [r["at"] for r in rows] == [addresses[2], addresses[1], addresses[0], addresses[3]]
    assert [r["last seen"] for r in rows] == [(NOW + n * hour).strftime("%Y-%m-%d %H:%M:%S") for n in range(4)]
    since = _rows(_edge(edge_env, "dlq", "list", "--since", (NOW + 2 * hour).isoformat()))
    assert [r["at"] for r in since] == [addresses[0], addresses[3]]


def test_show_raw_writes_the_body_byte_exact(dlq_only, edge_env, tmp_path):
    body = b'{"a":"x\x08\x1b[2J\x00"}\r\n\xff\xfe\xe2\x80\xae end'  # backspace, escape, NUL, CRLF, bad UTF-8, bidi
    (address,) = _produce_dead_letters(dlq_only, [(1, body, NOW)])
    run = [sys.executable, "-m", "edge.cli", "dlq", "show", address]
    raw = subprocess.run([*run, "--raw"], cwd=ROOT, env={**os.environ, **edge_env}, capture_output=True, timeout=60)
    assert raw.returncode == 0 and raw.stdout == body, raw.stderr
    out = tmp_path / "body.bin"
    to_file = subprocess.run([*run, "--out", str(out)], cwd=ROOT, env={**os.environ, **edge_env},
                             capture_output=True, text=True, timeout=60)
    assert to_file.returncode == 0 and out.read_bytes() == body, to_file.stderr
    assert f"wrote {len(body)} bytes" in to_file.stdout
    shown = _edge(edge_env, "dlq", "show", address)  # without: escaped, never raw on the terminal
    assert "\\x08\\x1b[2J\\x00" in shown and "\\xff\\xfe\\u202e" in shown and "\x1b" not in shown


def _refused(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "EDGE_CONFIG": ""})


def test_an_unknown_reason_or_stage_is_refused_naming_the_valid_ones():
    for action in ("list", "redrive"):
        done = _refused("dlq", action, "--reason", "bogus")
        assert done.returncode == 2 and "invalid choice: 'bogus'" in done.stderr, done.stderr
        assert all(f"'{reason}'" in done.stderr for reason in REASONS) and done.stdout == ""
        helped = _refused("dlq", action, "--help")
        assert all(reason in " ".join(helped.stdout.split()) for reason in REASONS)
    done = _refused("dlq", "list", "--stage", "bridge")
    assert done.returncode == 2 and "'parser', 'sink'" in done.stderr


def test_the_docs_name_every_reason():
    """docs/operations.md has a row per reason of edge/core/dlq.py, and the README names each."""
    rows = re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs/operations.md").read_text(), re.MULTILINE)
    assert rows == list(REASONS)
    readme = (ROOT / "README.md").read_text()
    assert [reason for reason in REASONS if f"`{reason}`" not in readme] == []
