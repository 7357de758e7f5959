"""Per-site activity of the parser: site of a message, bounded bookkeeping, metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY

from edge.parser import parse
from edge.parser.site_activity import SiteMetrics, SiteTracker, site_of_raw, site_of_series_key


def _sample(site: str, timestamp: str = "2024-06-01 00:00:00") -> bytes:
    return (
        b'{"header":{"site_id":"%s","timestamp":"%s"},'
        b'"FieldDeviceLayer":{"field1":{"Name":"Battery 1","service":[{"id":1,"soc":50.5}]}}}'
    ) % (site.encode(), timestamp.encode())


def test_the_site_of_a_point_is_read_from_its_series_key_unescaped():
    for site in ("000001", "north campus", "a,b=c", "x\\y", "é"):
        (key, _line), = parse(_sample(site.replace("\\", "\\\\"))).points
        assert site_of_series_key(key) == site
    assert site_of_series_key(b"field1,device=x,service_id=1") is None


def test_the_site_of_a_raw_message_comes_from_its_header_when_readable():
    assert site_of_raw(_sample("000007", "not a time")) == "000007"
    assert site_of_raw(b'{"header":{"site_id":12}}') == "12"
    assert site_of_raw(b'{"header":{"site_id":"a\x08b"}}') == "a\x08b"  # raw control byte: lenient decode
    for unreadable in (b"", None, b"not json", b"[]", b'{"header":{"site_id":true}}', b'{"header":"x"}'):
        assert site_of_raw(unreadable) is None


def test_tracker_forgets_sites_unseen_for_too_long_and_keeps_at_most_max_sites():
    t = SiteTracker(forget_after_s=100, max_sites=3)
    assert t.seen("a", 0) == [] and t.seen("b", 10) == [] and t.seen("a", 20) == []
    assert t.expire(105) == []  # b seen at 10: not yet
    assert t.expire(111) == ["b"]
    assert list(t.last_seen) == ["a"]
    for i, site in enumerate("cde"):
        evicted = t.seen(site, 200 + i)
    assert evicted == ["a"] and list(t.last_seen) == ["c", "d", "e"]  # the least recently seen went


def _sample_value(name: str, site: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"site_id": site})


def test_metrics_follow_the_tracker_and_leave_with_a_forgotten_site():
    now = [1000.0]
    m = SiteMetrics(forget_after_s=60, max_sites=10, clock=lambda: now[0], expire_every_s=0)
    m.seen("t-site-1")
    m.seen("t-site-1")
    now[0] = 1030.0
    m.seen("t-site-2")
    assert _sample_value("edge_parser_site_messages_total", "t-site-1") == 2
    assert _sample_value("edge_parser_site_last_seen_timestamp_seconds", "t-site-1") == 1000.0
    assert _sample_value("edge_parser_site_last_seen_timestamp_seconds", "t-site-2") == 1030.0
    now[0] = 1061.0
    m.seen(None)  # nothing known about the site: nothing recorded
    m.seen("t-site-2")
    assert _sample_value("edge_parser_site_last_seen_timestamp_seconds", "t-site-1") is None
    assert _sample_value("edge_parser_site_messages_total", "t-site-1") is None
    assert _sample_value("edge_parser_site_messages_total", "t-site-2") == 2
    m.seen("t-site-1")  # back: a new series starting from 1
    assert _sample_value("edge_parser_site_messages_total", "t-site-1") == 1
    for site in ("t-site-1", "t-site-2"):
        m._remove(site)
