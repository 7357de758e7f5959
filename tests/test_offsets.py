from edge.kafka.offsets import OffsetTracker


def test_commit_waits_for_every_output_of_every_earlier_input():
    t = OffsetTracker()
    t.begin(0, 10, outputs=2)
    t.begin(0, 11, outputs=1)
    t.begin(0, 12, outputs=0)  # e.g. nothing to produce
    assert t.committable() == {}
    t.done(0, 11)  # acknowledged out of order
    assert t.committable() == {}
    t.done(0, 10)
    assert t.committable() == {}  # 10 still has one output pending
    t.done(0, 10)
    assert t.committable() == {0: 13}
    t.mark_committed({0: 13})
    assert t.committable() == {}
    assert t.in_flight == 0


def test_partitions_are_independent_and_revocation_forgets():
    t = OffsetTracker()
    t.begin(0, 5, 1)
    t.begin(1, 7, 1)
    t.done(1, 7)
    assert t.committable() == {1: 8}
    assert t.first_incomplete(0) == 5
    t.forget(0)
    t.done(0, 5)  # a late acknowledgement for a revoked partition is ignored
    assert t.committable() == {1: 8}
    assert t.in_flight == 0
