"""The sink's pure parts: batch bounds, record checks, InfluxDB answers, backoff; and
the search for refused lines against the real InfluxDB."""

from __future__ import annotations

import random
import uuid

import pytest

from edge.sink.batch import (BatchLimits, PartitionBuffer, body_is_clean, record_problem, request_counts,
                             split_bad_records, take_counts, write_due)
from edge.influx.answers import Outcome, classify, dropped_count, error_message, type_conflict, unparsable_lines
from edge.influx.rejected import find_rejected
from edge.influx.client import InfluxClient
from edge.config.settings import InfluxSettings
from edge.core.backoff import Backoff

LIMITS = BatchLimits(max_lines=4, max_bytes=100, max_age_s=1.0)


def test_write_is_due_on_lines_bytes_or_age():
    assert not write_due(3, 50, 10.0, 10.5, LIMITS)
    assert write_due(4, 50, 10.0, 10.5, LIMITS)
    assert write_due(1, 100, 10.0, 10.5, LIMITS)
    assert write_due(1, 10, 10.0, 11.0, LIMITS)
    assert not write_due(0, 0, None, 99.0, LIMITS)


def test_one_request_never_exceeds_lines_or_bytes():
    assert take_counts([[10, 10], [10, 10, 10]], LIMITS) == [2, 2]
    # bytes count the newline that joins each line
    assert take_counts([[40, 40, 40]], LIMITS) == [2]
    # a single record over the byte bound still goes, alone
    assert take_counts([[500, 1]], LIMITS) == [1]
    assert take_counts([[], [1]], LIMITS) == [0, 1]


def test_a_request_across_partitions_takes_what_take_counts_says():
    """request_counts skips the per-record look for buffers that fit whole; the
    counts and bytes must still be take_counts' to the record."""
    rng = random.Random(21)
    for _ in range(2000):
        limits = BatchLimits(max_lines=rng.randint(1, 12), max_bytes=rng.randint(5, 200), max_age_s=1.0)
        sizes = [[rng.randint(1, 60) for _ in range(rng.randint(0, 8))] for _ in range(rng.randint(1, 6))]
        buffers = [PartitionBuffer(p, [b"x" * n for n in part], sum(part)) for p, part in enumerate(sizes)]
        want = take_counts(sizes, limits)
        got = request_counts(buffers, limits)
        assert [n for n, _ in got] == want[:len(got)] and not any(want[len(got):]), (sizes, limits)
        assert [nbytes for _, nbytes in got] == [sum(part[:n]) for part, (n, _) in zip(sizes, got)]


def test_clean_body_check_matches_per_record_check():
    rng = random.Random(7)
    pool = [b"m v=1", b"m,t=\xc3\xa9 v=2", b"", b"\xff\xfe", b"a\nb", b"m v=3", None]
    for _ in range(500):
        values = [rng.choice(pool) for _ in range(rng.randint(1, 6))]
        good, bad = split_bad_records(values)
        try:
            clean = body_is_clean(b"\n".join(values), len(values))
        except TypeError:
            clean = False
        assert clean == (not bad), values
        assert sorted(good + list(bad)) == list(range(len(values)))


def test_record_problems_are_named():
    assert record_problem(b"m v=1 1") is None
    assert "empty" in record_problem(b"")
    assert "UTF-8" in record_problem(b"m,t=\xff v=1")
    assert "more than one line" in record_problem(b"m v=1\nm v=2")
    assert "no value" in record_problem(None)


def test_answers_are_classified():
    assert classify(204, "").outcome is Outcome.OK
    assert classify(400, "partial write: x dropped=1").outcome is Outcome.REJECTED
    assert classify(404, 'database not found: "x"').outcome is Outcome.DATABASE_MISSING
    for status in (401, 403, 413, 500, 503):
        assert classify(status, "").outcome is Outcome.RETRY
    assert error_message(b'{"error":"boom"}') == "boom"
    assert error_message(b"not json") == "not json"


def test_influx_messages_are_read():
    msg = (
        'partial write: field type conflict: input field "soc" on measurement "field1" '
        "is type boolean, already exists as type float dropped=3"
    )
    conflict = type_conflict(msg)
    assert (conflict.measurement, conflict.field, conflict.line_type, conflict.existing_type) == (
        "field1", "soc", "boolean", "float",
    )
    assert dropped_count(msg) == 3
    named = unparsable_lines("unable to parse 'a b': invalid field format\nunable to parse 'it's': bad")
    assert set(named) == {"a b", "it's"}


def test_backoff_is_capped_exponential():
    backoff = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.fixture
def influx_db(local_services):
    settings = InfluxSettings(database=f"tsink{uuid.uuid4().hex[:10]}")
    writer = InfluxClient(settings)
    assert writer.ensure_database().ok
    yield writer
    writer.query(f'DROP DATABASE "{settings.database}"')
    writer.close()


def test_find_rejected_isolates_each_refused_line(influx_db):
    writer = influx_db
    assert writer.write(b"m,s=a v=1.0,ok=true 1000").ok
    lines = [f"m,s=good{i} v={i}.5,ok=false {2000 + i}".encode() for i in range(200)]
    lines[17] = b"m,s=bad1 v=true 5000"  # conflicts with float
    lines[120] = b"m,s=bad2 v=7i 6000"  # conflicts with float, another type
    lines[150] = b"not line protocol"
    lines[199] = b"m,s=bad3 ok=1.5 7000"  # conflicts with boolean
    first = writer.write(b"\n".join(lines))
    assert first.outcome is Outcome.REJECTED
    attempts = []

    def write(body: bytes):
        attempts.append(body.count(b"\n") + 1)
        return writer.write(body)

    rejected = find_rejected(lines, first, write)
    assert sorted(rejected) == [17, 120, 150, 199]
    assert "is type boolean, already exists as type float" in rejected[17]
    assert "is type integer" in rejected[120]
    assert "unable to parse 'not line protocol'" in rejected[150]
    assert "already exists as type boolean" in rejected[199]
    # far fewer requests than one per line
    assert len(attempts) < 20, attempts
    rows = writer.session.get(
        f"{writer.base_url}/query",
        params={"db": writer.settings.database, "q": 'SELECT count("v") FROM "m"'},
    ).json()
    # the seed point and the 196 good lines (the four refused ones are not stored)
    assert rows["results"][0]["series"][0]["values"][0][1] == 1 + 196
