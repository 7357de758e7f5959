"""Local time -> instant across daylight-saving changes, and the receive-time hint
taken from a Kafka record. Instants written by hand from the zones' rules."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_NOT_AVAILABLE

from edge.parser import ParseError, TimeZones, parse, received_at_ns
from tests.support.lineproto import read_line

BERLIN = TimeZones.from_names("UTC", {"000001": "Europe/Berlin"})
S = 10**9


def utc_ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * S


def message(timestamp: str, site: str = "000001") -> bytes:
    return json.dumps({
        "header": {"site_id": site, "timestamp": timestamp},
        "FieldDeviceLayer": {"field1": {"Name": "Battery", "service": [{"id": 1, "soc": 50.0}]}},
    }).encode()


def times(result) -> set[int]:
    return {read_line(line).time_ns for line in result.lines}


# Europe/Berlin 2023-10-29: 03:00 CEST (UTC+2) -> 02:00 CET (UTC+1), so 02:30 local is
# 00:30 UTC (first, CEST) and 01:30 UTC (second, CET).
FIRST, SECOND = utc_ns("2023-10-29 00:30:00"), utc_ns("2023-10-29 01:30:00")


def test_ordinary_local_time_in_summer_and_winter():
    assert times(parse(message("2023-07-01 12:00:00"), BERLIN)) == {utc_ns("2023-07-01 10:00:00")}
    assert times(parse(message("2023-12-01 12:00:00"), BERLIN)) == {utc_ns("2023-12-01 11:00:00")}
    result = parse(message("2023-07-01 12:00:00"), BERLIN)
    assert result.ambiguous_times_resolved == result.ambiguous_times_unresolved == 0


@pytest.mark.parametrize("hint, expected", [
    (FIRST, FIRST),
    (SECOND, SECOND),
    (FIRST + 5 * S, FIRST),  # published a few seconds after the reading
    (SECOND + 5 * S, SECOND),
    (FIRST - 20 * 60 * S, FIRST),  # a publisher clock 20 minutes slow
    (SECOND + 40 * 60 * S, SECOND),  # 40 minutes late: still nearer the second
])
def test_repeated_hour_takes_the_occurrence_nearer_to_the_receive_time(hint, expected):
    result = parse(message("2023-10-29 02:30:00"), BERLIN, received_at_ns=hint)
    assert times(result) == {expected}
    assert result.ambiguous_times_resolved == 1 and result.ambiguous_times_unresolved == 0


def test_repeated_hour_without_a_hint_takes_the_earlier_occurrence_and_counts_it():
    result = parse(message("2023-10-29 02:30:00"), BERLIN)
    assert times(result) == {FIRST}
    assert result.ambiguous_times_unresolved == 1 and result.ambiguous_times_resolved == 0


def test_a_hint_far_from_both_occurrences_is_not_used():
    days_later = SECOND + 3 * 86_400 * S  # e.g. a replay: the Kafka timestamp is the replay's
    result = parse(message("2023-10-29 02:30:00"), BERLIN, received_at_ns=days_later)
    assert times(result) == {FIRST}
    assert result.ambiguous_times_unresolved == 1


def test_the_edges_of_the_repeated_hour():
    # 01:59:59 and 03:00:00 local are unambiguous; 02:00:00 and 02:59:59 are not.
    assert times(parse(message("2023-10-29 01:59:59"), BERLIN, received_at_ns=SECOND)) == {
        utc_ns("2023-10-28 23:59:59")}
    assert times(parse(message("2023-10-29 03:00:00"), BERLIN, received_at_ns=FIRST)) == {utc_ns("2023-10-29 02:00:00")}
    assert times(parse(message("2023-10-29 02:00:00"), BERLIN, received_at_ns=SECOND)) == {
        utc_ns("2023-10-29 01:00:00")}
    assert times(parse(message("2023-10-29 02:59:59"), BERLIN, received_at_ns=FIRST)) == {
        utc_ns("2023-10-29 00:59:59")}


@pytest.mark.parametrize("local", ["2023-03-26 02:00:00", "2023-03-26 02:30:00", "2023-03-26 02:59:59"])
def test_a_local_time_the_clocks_skipped_is_a_parse_error_with_its_reason(local):
    with pytest.raises(ParseError) as caught:
        parse(message(local), BERLIN, received_at_ns=utc_ns("2023-03-26 01:00:00"))
    assert caught.value.reason == "nonexistent_local_time"
    assert "does not exist in Europe/Berlin" in str(caught.value)


def test_around_the_gap_times_exist():
    assert times(parse(message("2023-03-26 01:59:59"), BERLIN)) == {utc_ns("2023-03-26 00:59:59")}
    assert times(parse(message("2023-03-26 03:00:00"), BERLIN)) == {utc_ns("2023-03-26 01:00:00")}


def test_other_zones_northern_and_half_hour_shift():
    new_york = TimeZones.from_names("America/New_York")
    # 2023-11-05 01:30 EDT (UTC-4) = 05:30 UTC, then 01:30 EST (UTC-5) = 06:30 UTC.
    assert times(parse(message("2023-11-05 01:30:00", "9"), new_york, received_at_ns=utc_ns("2023-11-05 06:31:00"))) \
        == {utc_ns("2023-11-05 06:30:00")}
    with pytest.raises(ParseError):
        parse(message("2023-03-12 02:30:00", "9"), new_york)
    # Lord Howe Island shifts by 30 minutes: 2023-04-02 01:45 local happens at
    # 14:45 UTC (+11) and 15:15 UTC (+10:30) on 04-01.
    lord_howe = TimeZones.from_names("Australia/Lord_Howe")
    result = parse(message("2023-04-02 01:45:00", "9"), lord_howe, received_at_ns=utc_ns("2023-04-01 15:16:00"))
    assert times(result) == {utc_ns("2023-04-01 15:15:00")}


def test_other_errors_keep_the_generic_reason():
    with pytest.raises(ParseError) as caught:
        parse(message("yesterday"), BERLIN)
    assert caught.value.reason == "parse_error"


def test_explicit_offset_in_the_timestamp_wins_over_the_zone():
    assert times(parse(message("2023-10-29T02:30:00+01:00"), BERLIN)) == {SECOND}


# ---------------------------------------------------------------- the hint from a Kafka record


def test_hint_is_the_amqp_timestamp_middle_of_its_second():
    headers = [("amqp.routing_key", b"q"), ("amqp.timestamp", b"1698539400")]
    assert received_at_ns(headers, (TIMESTAMP_CREATE_TIME, 1)) == 1698539400 * S + S // 2


def test_hint_falls_back_to_the_kafka_timestamp():
    assert received_at_ns([("amqp.routing_key", b"q")], (TIMESTAMP_CREATE_TIME, 1698539400123)) == 1698539400123 * 10**6
    assert received_at_ns(None, (TIMESTAMP_LOG_APPEND_TIME, 5)) == 5 * 10**6
    assert received_at_ns([("amqp.timestamp", b"not a number")], (TIMESTAMP_CREATE_TIME, 7)) == 7 * 10**6
    assert received_at_ns([], (TIMESTAMP_NOT_AVAILABLE, 0)) is None
    assert received_at_ns([], None) is None


def test_one_second_resolution_of_the_amqp_timestamp_is_taken_into_account():
    # Midway between the occurrences is 01:00:00 UTC. An AMQP timestamp of 00:59:59
    # stands for [00:59:59, 01:00:00): nearer the first. One of 01:00:00 stands for
    # [01:00:00, 01:00:01): nearer the second (read as the second's start, it would
    # be a tie).
    midway = utc_ns("2023-10-29 01:00:00") // S
    before = received_at_ns([("amqp.timestamp", str(midway - 1).encode())])
    at = received_at_ns([("amqp.timestamp", str(midway).encode())])
    assert times(parse(message("2023-10-29 02:30:00"), BERLIN, received_at_ns=before)) == {FIRST}
    assert times(parse(message("2023-10-29 02:30:00"), BERLIN, received_at_ns=at)) == {SECOND}
