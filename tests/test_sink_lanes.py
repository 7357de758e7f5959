"""The sink's lanes (records per partition and InfluxDB node) and its routing of a
record to its site's node: pure, on records shaped like the consumer's."""

from __future__ import annotations

from types import SimpleNamespace

from edge.core.lineproto import series_key
from edge.core.site_routes import DEFAULT_NODE, SiteRoutes
from edge.sink.buffers import SinkBuffers
from edge.sink.routing import NodeRouter

OPTIONS = SimpleNamespace(max_buffered_lines=1000, max_buffered_bytes=10**9)
ROUTES = SiteRoutes({"b": ["south-*", "east 7"]})


class Rec:
    """A consumed record as the sink reads it (confluent_kafka.Message's methods)."""

    def __init__(self, partition: int, offset: int, site: str | None, *, keyed: bool = True):
        tags = f",site_id={site.replace(' ', chr(92) + ' ')}" if site is not None else ""
        self._value = f"m,device=x{tags} v={offset} {offset}".encode()
        self._key = series_key(self._value) if keyed else None
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)


def test_a_record_goes_to_its_sites_node_and_the_key_is_cached():
    router = NodeRouter(ROUTES)
    assert router.node_of(Rec(0, 0, "south-3")) == "b"
    assert router.node_of(Rec(0, 1, "east 7")) == "b"  # escaped in the key, unescaped for the map
    assert router.node_of(Rec(0, 2, "north-1")) == DEFAULT_NODE
    assert router.node_of(Rec(0, 3, None)) == DEFAULT_NODE  # no site: the default, never dropped
    assert router.node_of(Rec(0, 4, "south-9", keyed=False)) == "b"  # no key: the line's own series key
    assert router.cache[Rec(0, 5, "south-3").key()] == "b"
    small = NodeRouter(ROUTES, cache_max=2)
    for i in range(5):
        small.node_of(Rec(0, i, f"south-{i}"))
    assert len(small.cache) <= 2


def test_one_node_looks_at_no_record():
    buffers = SinkBuffers(OPTIONS, [DEFAULT_NODE], NodeRouter(ROUTES))
    assert buffers.router is None
    buffers.assigned([0])
    buffers.take([Rec(0, i, "south-1") for i in range(3)], 0.0)
    assert [r.offset() for r in buffers.lanes[DEFAULT_NODE][0].records] == [0, 1, 2]
    assert buffers.positions() == {}  # held, not written: nothing to commit


def test_records_split_by_node_and_positions_wait_for_every_lane():
    buffers = SinkBuffers(OPTIONS, [DEFAULT_NODE, "b"], NodeRouter(ROUTES))
    buffers.assigned([0, 1])
    assert buffers.positions() == {}  # nothing taken yet
    sites = ["north-1", "south-1", "north-1", "east 7", "north-2"]
    buffers.take([Rec(0, 10 + i, site) for i, site in enumerate(sites)] + [Rec(1, 5, "south-2")], 0.0)
    a, b = buffers.lanes[DEFAULT_NODE][0], buffers.lanes["b"][0]
    assert [r.offset() for r in a.records] == [10, 12, 14]
    assert [r.offset() for r in b.records] == [11, 13]
    assert buffers.positions() == {}  # nothing written yet: nothing to commit (not even where it began)

    # a's records go out and are written: b's oldest holds the position back
    taken, a.records = a.records, []
    buffers.submitted(a, taken, 0)
    assert 0 not in buffers.positions()  # in flight counts as not written
    buffers.written(a, len(taken), 0)
    assert buffers.positions()[0] == 11
    # b's request fails: its records come back at the head, the position stays
    taken, b.records = b.records, []
    buffers.submitted(b, taken, 0)
    buffers.put_back(b, taken, 0, 1.0)
    assert buffers.positions()[0] == 11 and [r.offset() for r in b.records] == [11, 13]
    taken, b.records = b.records, []
    buffers.submitted(b, taken, 0)
    buffers.written(b, len(taken), 0)
    assert buffers.positions()[0] == 15  # everything taken is written: after the last one

    # a record fetched again (a seek back) is not taken twice, in whichever lane
    buffers.take([Rec(0, 13, "east 7"), Rec(0, 14, "north-2"), Rec(0, 15, "south-1")], 2.0)
    assert [r.offset() for r in b.records] == [15] and not a.records
    assert buffers.lines == 2  # partition 1's record and offset 15


def test_past_the_bound_a_partition_is_let_go_from_its_first_record_and_revoke_forgets_it():
    buffers = SinkBuffers(SimpleNamespace(max_buffered_lines=3, max_buffered_bytes=10**9), [DEFAULT_NODE, "b"],
                          NodeRouter(ROUTES))
    buffers.assigned([0, 1])
    buffers.take([Rec(0, 0, "south-1"), Rec(0, 1, "north-1"), Rec(1, 0, "north-1"),
                  Rec(0, 2, "south-1"), Rec(1, 1, "south-1"), Rec(0, 3, "north-1")], 0.0)
    assert buffers.take_rewinds() == {0: 2, 1: 1}
    assert buffers.positions() == {} and buffers.positions([1]) == {}  # nothing written
    buffers.release([0])
    assert buffers.lines == 1 and 0 not in buffers.lanes["b"] and buffers.positions() == {}
