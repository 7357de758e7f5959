from edge.kafka.offsets import OffsetTracker


def test_commit_waits_for_every_output_of_every_earlier_input():
    t = OffsetTracker()
    a = t.begin(0, 10, outputs=2)
    b = t.begin(0, 11, outputs=1)
    t.begin(0, 12, outputs=0)  # e.g. nothing to produce
    assert t.positions() == {}
    t.done(b)  # acknowledged out of order
    assert t.positions() == {}
    t.done(a)
    assert t.positions() == {}  # 10 still has one output pending
    t.done(a)
    assert t.positions() == {0: 13}
    assert t.in_flight == 0


def test_partitions_are_independent_and_revocation_forgets():
    t = OffsetTracker()
    a = t.begin(0, 5, 1)
    b = t.begin(1, 7, 1)
    t.done(b)
    assert t.positions() == {1: 8}
    assert t.first_incomplete(0) == 5
    t.forget(0)
    t.done(a)  # a late acknowledgement for a revoked partition is ignored
    assert t.positions() == {1: 8}
    assert t.in_flight == 0


def test_late_report_from_before_a_rewind_does_not_complete_the_reread_offset():
    """The race: offset 5 produced 2 outputs; one failed, so the partition is
    rewound (forget + seek) and 5 is read again and re-produced. The *other*
    output of the first attempt is acknowledged late, after the rewind. Counting
    that report against the new attempt would complete 5 while its re-produced
    outputs are still in flight: 5 would be committed, and if those outputs then
    failed they would be lost."""
    t = OffsetTracker()
    first = t.begin(0, 5, outputs=2)
    # delivery of output 1 failed -> rewind
    t.forget(0)
    second = t.begin(0, 5, outputs=2)  # read again after the seek
    t.done(first)  # the late report of the first attempt's output 2
    t.done(first)
    assert t.positions() == {}, "a stale report completed the re-read offset"
    assert t.in_flight == 2
    t.done(second)
    t.done(second)
    assert t.positions() == {0: 6}
    assert t.in_flight == 0


def test_positions_survive_until_forgotten_and_generations_are_per_partition():
    t = OffsetTracker()
    a = t.begin(0, 1, 1)
    b = t.begin(1, 1, 1)
    t.forget(1)
    t.done(a)
    t.done(b)
    assert t.positions() == {0: 2}
    c = t.begin(1, 1, 1)
    t.done(c)
    assert t.positions() == {0: 2, 1: 2}
