"""The Kafka commit tracker commits only the contiguous settled prefix of each partition, and
the retry hold gives back what is due and says when to pause a partition (pure logic)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from damestoilet_contracts.runtime.kafka import OffsetTracker, RetryHold


def test_commit_waits_for_the_first_unsettled_offset():
    tracker: OffsetTracker[int] = OffsetTracker()
    for offset in range(5):
        tracker.fetched(0, offset)
    tracker.settled(0, 1)
    tracker.settled(0, 2)
    assert tracker.commits() == {}  # 0 is still retrying: nothing may be committed
    tracker.settled(0, 0)
    assert tracker.commits() == {0: 3}  # 0, 1, 2 settled: resume at 3
    tracker.committed({0: 3})
    assert tracker.commits() == {}
    assert tracker.unsettled(0) == 2


def test_gaps_in_offsets_do_not_hold_the_commit_back():
    """Compacted topics and transaction markers leave offsets that are never fetched."""
    tracker: OffsetTracker[int] = OffsetTracker()
    for offset in (10, 13, 20):
        tracker.fetched(0, offset)
    for offset in (20, 13, 10):
        tracker.settled(0, offset)
    assert tracker.commits() == {0: 21}


def test_settling_an_offset_never_fetched_changes_nothing():
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.fetched(0, 10)
    tracker.fetched(0, 12)
    tracker.settled(0, 11)
    tracker.settled(1, 10)
    assert tracker.commits() == {}
    assert tracker.unsettled(0) == 2


def test_partitions_are_independent():
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.fetched(0, 0)
    tracker.fetched(1, 0)
    tracker.settled(1, 0)
    assert tracker.commits() == {1: 1}


def test_fetching_backwards_needs_a_fresh_assignment():
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.fetched(0, 5)
    with pytest.raises(ValueError, match="assigned afresh"):
        tracker.fetched(0, 5)
    tracker.assign(0, committed=3)
    tracker.fetched(0, 3)
    assert tracker.commits() == {}  # 3 is the committed offset already


def test_revoke_answers_what_is_left_to_commit_and_forgets_the_partition():
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.assign(0, committed=0)
    tracker.fetched(0, 0)
    tracker.fetched(0, 1)
    tracker.settled(0, 0)
    assert tracker.revoke([0, 7]) == {0: 1}
    assert tracker.partitions() == []
    tracker.settled(0, 1)  # a late settle of a revoked partition is ignored
    assert tracker.commits() == {}


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 3), min_size=1, max_size=40),
    data=st.data(),
)
def test_commit_never_passes_an_unsettled_offset(gaps: list[int], data: st.DataObject):
    offsets = []
    at = data.draw(st.integers(0, 1000))
    for gap in gaps:
        offsets.append(at)
        at += gap
    tracker: OffsetTracker[int] = OffsetTracker()
    for offset in offsets:
        tracker.fetched(0, offset)
    order = data.draw(st.permutations(offsets))
    settled: set[int] = set()
    last_commit = -1
    for offset in order:
        tracker.settled(0, offset)
        settled.add(offset)
        commit = tracker.commits().get(0, last_commit)
        unsettled = [o for o in offsets if o not in settled]
        if unsettled:
            assert commit <= min(unsettled)  # the first one still retrying is read again
        # everything before the commit point is settled
        assert all(o in settled for o in offsets if o < commit)
        assert commit >= last_commit  # commits only move forward
        if data.draw(st.booleans()):
            tracker.committed({0: commit} if commit >= 0 else {})
        last_commit = commit
    assert tracker.commits().get(0, last_commit) == offsets[-1] + 1
    assert tracker.unsettled(0) == 0


def test_hold_gives_back_what_is_due_earliest_first():
    hold: RetryHold[int, str] = RetryHold(capacity=10)
    hold.hold(0, "b", due=2.0)
    hold.hold(1, "a", due=1.0)
    hold.hold(0, "c", due=5.0)
    assert hold.next_due() == 1.0
    assert hold.due(now=0.5) == []
    assert hold.due(now=3.0) == ["a", "b"]
    assert hold.held() == 1
    assert hold.held(0) == 1


def test_hold_pauses_a_full_partition_and_resumes_it_when_retries_come_due():
    hold: RetryHold[int, str] = RetryHold(capacity=2)
    hold.hold(0, "x", due=1.0)
    assert hold.to_pause() == []
    hold.hold(0, "y", due=2.0)
    hold.hold(1, "z", due=2.0)
    assert hold.to_pause() == [0]
    assert hold.to_pause() == []  # asked once
    assert hold.to_resume() == []
    assert hold.due(now=1.0) == ["x"]
    assert hold.to_resume() == [0]


def test_a_revoked_partition_gives_back_nothing_even_when_assigned_again():
    hold: RetryHold[int, str] = RetryHold(capacity=5)
    hold.hold(0, "old", due=1.0)
    hold.hold(1, "kept", due=1.0)
    assert hold.drop([0]) == 1
    hold.hold(0, "new", due=1.0)  # assigned again, a fresh failure
    assert sorted(hold.due(now=2.0)) == ["kept", "new"]
    assert hold.next_due() is None


def test_a_hold_needs_room_for_one():
    with pytest.raises(ValueError, match="at least 1"):
        RetryHold(capacity=0)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["hold", "due", "drop"]), st.integers(0, 2), st.floats(0, 10)),
        max_size=60,
    )
)
def test_hold_returns_each_live_item_once_and_counts_right(steps):
    hold: RetryHold[int, int] = RetryHold(capacity=3)
    live: dict[int, int] = {}  # item -> partition
    given_back: list[int] = []
    now = 0.0
    for n, (action, partition, t) in enumerate(steps):
        if action == "hold":
            hold.hold(partition, n, due=now + t)
            live[n] = partition
        elif action == "due":
            now += t
            out = hold.due(now)
            given_back += out
            for item in out:
                assert item in live  # nothing dropped or given back before comes out
                del live[item]
        else:
            hold.drop([partition])
            live = {i: p for i, p in live.items() if p != partition}
        for p in range(3):
            assert hold.held(p) == sum(1 for q in live.values() if q == p)
        paused = set(hold.to_pause())
        assert all(hold.held(p) >= 3 for p in paused)
    assert len(given_back) == len(set(given_back))
    rest = hold.due(float("inf"))
    assert sorted(rest) == sorted(live)
