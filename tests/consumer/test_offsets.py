"""The committable offset never passes a message that is not finished."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumer.offsets import PartitionOffsets


def test_nothing_taken_nothing_to_commit() -> None:
    assert PartitionOffsets().committable() is None


def test_out_of_order_completion() -> None:
    t = PartitionOffsets()
    for o in (5, 6, 7, 8):
        t.take(o)
    assert t.committable() == 5
    t.done(7)
    t.done(6)
    assert t.committable() == 5
    t.done(5)
    assert t.committable() == 8
    t.done(8)
    assert t.committable() == 9 and t.in_flight == 0


def test_unknown_and_repeated_offsets_are_ignored() -> None:
    t = PartitionOffsets()
    t.take(10)
    t.done(3)
    t.done(10)
    t.done(10)
    assert t.committable() == 11


@given(st.integers(min_value=0, max_value=10**9), st.permutations(range(40)), st.integers(min_value=0, max_value=40))
def test_committable_is_the_first_unfinished_offset(start: int, order: list[int], finished: int) -> None:
    t = PartitionOffsets()
    for i in range(40):
        t.take(start + i)
    done = set(order[:finished])
    for i in order[:finished]:
        t.done(start + i)
    first_unfinished = next((i for i in range(40) if i not in done), 40)
    assert t.committable() == start + first_unfinished
