"""The committable offset never passes a message that is not finished."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumer.offsets import PartitionOffsets, decode, encode, runs_of


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


# --- finished offsets travel with the commit ---------------------------------------------------

offsets_above = st.sets(st.integers(min_value=1, max_value=5000), max_size=300)


@given(st.integers(min_value=0, max_value=10**12), offsets_above)
def test_encode_decode_round_trip(committed: int, above: set[int]) -> None:
    runs = runs_of(committed + d for d in above)
    metadata = encode(committed, runs, max_bytes=10**6)
    assert decode(committed, metadata) == runs
    assert {o for start, end in decode(committed, metadata) for o in range(start, end)} == {committed + d
                                                                                            for d in above}


@given(st.integers(min_value=0, max_value=10**12), offsets_above, st.integers(min_value=0, max_value=200))
def test_what_does_not_fit_is_left_out_from_the_top(committed: int, above: set[int], limit: int) -> None:
    """Never over the limit, and what is kept is a lowest subset: only more duplicates, never a skip too many."""
    runs = runs_of(committed + d for d in above)
    metadata = encode(committed, runs, max_bytes=limit)
    assert len(metadata.encode()) <= limit
    kept = decode(committed, metadata)
    assert kept == runs[:len(kept)]


def test_a_contiguous_block_is_a_few_bytes_and_foreign_metadata_reads_as_none() -> None:
    assert encode(100, [(101, 2101)]) == "f1:1.1jk"
    assert encode(100, []) == ""
    for foreign in ("", "router-state", "f1:", "f1:zz.", "f1:-1", "f1:1,x!"):
        assert decode(100, foreign) == []


def test_a_new_owner_skips_what_the_old_one_finished_and_carries_it_on() -> None:
    old = PartitionOffsets()
    for o in range(10, 20):
        old.take(o)
    for o in (11, 12, 15, 19):
        old.done(o)
    point = old.commit_point()
    assert point is not None and point[0] == 10
    new = PartitionOffsets()
    new.resume(*point)
    fired = [o for o in range(10, 20) if new.take(o)]
    assert fired == [10, 13, 14, 16, 17, 18]
    new.done(10)
    new.done(13)
    assert new.commit_point() == (14, encode(14, [(15, 16), (19, 20)]))  # the old owner's 15 and 19 carried on
    for o in (14, 16, 17, 18):
        new.done(o)
    assert new.commit_point() == (20, "")
