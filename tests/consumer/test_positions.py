"""Where subscriptions read with one shared position per partition: joins, catch-up windows, restarts.

The property test simulates a partition read by one group while segments come and go, with
restarts from the committed offset and metadata at random points, and checks the contract: every
segment receives every offset of its range at least once, and an offset twice only if it had
received it after the last commit before a restart (at-least-once: uncommitted work replays).
"""

from __future__ import annotations

from collections import Counter
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer import positions
from consumer.positions import PartitionState, SegmentStart


def delivered(state: PartitionState, segment: SegmentStart, offsets: range, stop: int | None = None) -> list[int]:
    return [o for o in offsets if state.delivers(segment.origin, segment.start, stop, o)]


def test_a_fresh_partition_starts_at_the_lowest_start_and_each_segment_at_its_own() -> None:
    early, late = SegmentStart(1, 0), SegmentStart(2, 10)
    state, position = positions.initial(None, [early, late], table_offset=2)
    assert position == 0
    assert delivered(state, early, range(20)) == list(range(20))
    assert delivered(state, late, range(20)) == list(range(10, 20))


def test_no_segment_and_no_commit_means_the_end() -> None:
    assert positions.initial(None, [], table_offset=0)[1] is None


def test_a_segment_starting_ahead_of_the_position_joins_without_rewinding() -> None:
    state = PartitionState(joined_through=1)
    assert positions.join(state, 50, [SegmentStart(1, 0), SegmentStart(2, 60)], table_offset=2) is None
    assert state.lower_bound(2, 60) == 60


def test_a_segment_starting_behind_the_position_rewinds_and_only_it_sees_the_replay() -> None:
    old, new = SegmentStart(1, 0), SegmentStart(5, 10)
    state = PartitionState(joined_through=1)
    assert positions.join(state, 100, [old, new], table_offset=5) == 10
    assert delivered(state, new, range(0, 120)) == list(range(10, 120))
    assert delivered(state, old, range(0, 120)) == list(range(100, 120))  # it had [0, 100) already
    assert state.window_end == 100


def test_a_second_catch_up_inside_a_window_does_not_repeat_what_the_first_received() -> None:
    a, b = SegmentStart(2, 30), SegmentStart(3, 10)
    state = PartitionState(joined_through=1)
    assert positions.join(state, 100, [a], table_offset=2) == 30
    # [30, 60) re-read for a, then b arrives wanting [10, ...)
    assert positions.join(state, 60, [a, b], table_offset=3) == 10
    assert delivered(state, a, range(10, 120)) == list(range(60, 120))
    assert delivered(state, b, range(10, 120)) == list(range(10, 120))


def test_a_segment_joining_during_a_window_inside_its_range_gets_an_entry() -> None:
    state = PartitionState(joined_through=1)
    positions.join(state, 100, [SegmentStart(2, 10)], table_offset=2)
    assert positions.join(state, 40, [SegmentStart(2, 10), SegmentStart(3, 70)], table_offset=3) is None
    assert state.lower_bound(3, 70) == 70  # not max(70, window end 100)


def test_the_window_closes_once_the_committable_offset_passes_its_end() -> None:
    state = PartitionState(joined_through=1)
    positions.join(state, 100, [SegmentStart(2, 10)], table_offset=2)
    assert not positions.settle(state, 99) and state.window_end == 100
    positions.settle(state, 100)
    assert state.window_end is None and state.catching == {}


def test_the_state_survives_a_restart_through_the_commit_metadata() -> None:
    old, new = SegmentStart(1, 0), SegmentStart(5, 10)
    state = PartitionState(joined_through=1)
    positions.join(state, 100, [old, new], table_offset=5)
    committed = (40, positions.encode(state, 40))
    restored, position = positions.initial(committed, [old, new], table_offset=5)
    assert position == 40
    assert delivered(restored, new, range(40, 120)) == list(range(40, 120))
    assert delivered(restored, old, range(40, 120)) == list(range(100, 120))
    assert "w" not in positions.encode(state, 100)  # a closed window is not written


def test_segments_created_after_the_last_commit_are_joined_at_the_restart() -> None:
    old, new = SegmentStart(1, 0), SegmentStart(7, 5)
    state = PartitionState(joined_through=1)
    committed = (50, positions.encode(state, 50))
    restored, position = positions.initial(committed, [old, new], table_offset=7)
    assert position == 5
    assert delivered(restored, new, range(0, 60)) == list(range(5, 60))
    assert delivered(restored, old, range(0, 60)) == list(range(50, 60))


def test_unknown_metadata_makes_every_segment_new_so_nothing_is_lost() -> None:
    _, position = positions.initial((50, "something else"), [SegmentStart(1, 20)], table_offset=1)
    assert position == 20


def test_a_restart_skips_ahead_when_every_segment_starts_later() -> None:
    state = PartitionState(joined_through=3)
    _, position = positions.initial((50, positions.encode(state, 50)), [SegmentStart(2, 80)], 3)
    assert position == 80


def test_deleted_segments_leave_the_window() -> None:
    state = PartitionState(joined_through=1)
    positions.join(state, 100, [SegmentStart(2, 10), SegmentStart(3, 20)], table_offset=3)
    positions.join(state, 30, [SegmentStart(3, 20)], table_offset=4)
    assert set(state.catching) == {3}


def test_beyond_the_catch_up_limit_segments_wait_until_the_window_closes() -> None:
    state = PartitionState(joined_through=0)
    many = [SegmentStart(origin, 0) for origin in range(1, positions.MAX_CATCHING + 3)]
    assert positions.join(state, 100, many, table_offset=len(many)) == 0
    waiting = many[-2:]
    assert state.deferred == {s.origin for s in waiting}
    assert all(state.lower_bound(s.origin, s.start) is None for s in waiting)
    assert '"t":' + str(waiting[0].origin - 1) in positions.encode(state, 0)  # they are joined again after a restart
    assert positions.settle(state, 100)
    assert positions.join(state, 100, many, table_offset=len(many)) == 0
    assert state.deferred == set() and all(state.lower_bound(s.origin, 0) == 0 for s in waiting)
    assert len(positions.encode(state, 0)) < 4096


# --- the property ---------------------------------------------------------------------------------

END = 60


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[str, int]]:
    steps = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["read", "read", "read", "add", "delete", "restart", "commit"]))
        steps.append((kind, draw(st.integers(0, END))))
    return steps


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_segment_receives_its_whole_range_and_duplicates_only_after_a_restart(steps) -> None:
    check(steps)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_same_holds_when_catch_ups_must_wait_for_room(steps) -> None:
    with mock.patch.object(positions, "MAX_CATCHING", 2):
        check(steps)


def check(steps: list[tuple[str, int]]) -> None:
    table_offset = 0
    live: dict[int, SegmentStart] = {}
    received: dict[int, Counter[int]] = {}
    state, position = positions.initial(None, [], table_offset)
    position = 0 if position is None else position
    committed: tuple[int, str] | None = None
    since_commit: dict[int, set[int]] = {}  # origin -> offsets received since the last commit
    may_repeat: dict[int, set[int]] = {}  # origin -> offsets a restart may deliver again

    def read_one() -> None:
        nonlocal position
        if position >= END:
            return
        for segment in live.values():
            if state.delivers(segment.origin, segment.start, None, position):
                received[segment.origin][position] += 1
                since_commit.setdefault(segment.origin, set()).add(position)
        position += 1

    for kind, value in steps:
        if kind == "read":
            for _ in range(value % 10 + 1):
                read_one()
        elif kind == "add":
            table_offset += 1
            live[table_offset] = SegmentStart(table_offset, value)
            received[table_offset] = Counter()
            rewind = positions.join(state, position, list(live.values()), table_offset)
            position = position if rewind is None else rewind
        elif kind == "delete" and live:
            table_offset += 1
            del live[min(live)]
        elif kind == "commit":
            committed = (position, positions.encode(state, position))
            since_commit.clear()
            if positions.settle(state, position):
                rewind = positions.join(state, position, list(live.values()), table_offset)
                position = position if rewind is None else rewind
        elif kind == "restart":
            for origin, offsets in since_commit.items():
                may_repeat.setdefault(origin, set()).update(offsets)
            since_commit.clear()
            state, start = positions.initial(committed, list(live.values()), table_offset)
            position = 0 if start is None else start
    while position < END or state.deferred:
        read_one()
        if position % 7 == 0 or position >= END:
            positions.settle(state, position)
            rewind = positions.join(state, position, list(live.values()), table_offset)
            position = position if rewind is None else rewind
    for origin, segment in live.items():
        got = received[origin]
        assert set(range(segment.start, END)) <= set(got), f"segment {origin} missed offsets"
        assert all(o >= segment.start for o in got), f"segment {origin} got offsets before its start"
        twice = [o for o, n in got.items() if n > 1]
        assert set(twice) <= may_repeat.get(origin, set()), f"segment {origin} got {twice} twice"
