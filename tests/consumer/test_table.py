"""The compacted-table reader: everything up to the end before `loaded`, then live changes, in order."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record import MemoryRecords
from kafka.record.memory_records import MemoryRecordsBuilder

from consumer import kafka_edge
from consumer.table import Change, CompactedTable, MemoryLog


def test_loaded_only_after_the_records_present_at_start_then_follows() -> None:
    asyncio.run(loaded_then_follows())


async def loaded_then_follows() -> None:
    log = MemoryLog()
    for i in range(3):
        log.append(f"k{i}".encode(), b"v")
    log.append(b"k0", None)
    seen: list[Change] = []
    stop = asyncio.Event()
    table = CompactedTable(log.reader(), seen.append, poll_s=0.01)
    task = asyncio.ensure_future(table.run(stop))
    await asyncio.wait_for(table.loaded.wait(), 5)
    assert [c.offset for c in seen] == [0, 1, 2, 3] and seen[-1].value is None  # a tombstone is a change too
    log.append(b"k9", b"later")
    for _ in range(100):
        if len(seen) == 5:
            break
        await asyncio.sleep(0.01)
    assert seen[-1] == Change(4, b"k9", b"later")
    stop.set()
    await asyncio.wait_for(task, 5)


def test_an_empty_log_is_loaded_at_once() -> None:
    asyncio.run(empty_log())


async def empty_log() -> None:
    stop = asyncio.Event()
    table = CompactedTable(MemoryLog().reader(), lambda change: None, poll_s=0.01)
    task = asyncio.ensure_future(table.run(stop))
    await asyncio.wait_for(table.loaded.wait(), 5)
    stop.set()
    await task


def test_the_load_goes_to_on_load_in_reads_then_changes_one_by_one() -> None:
    async def scenario() -> None:
        log = MemoryLog()
        for i in range(3):
            log.append(f"k{i}".encode(), b"v")
        loads: list[list[int]] = []
        seen: list[Change] = []
        stop = asyncio.Event()
        table = CompactedTable(log.reader(), seen.append, poll_s=0.01,
                               on_load=lambda changes: loads.append([c.offset for c in changes]), long_lived=True)
        task = asyncio.ensure_future(table.run(stop))
        await asyncio.wait_for(table.loaded.wait(), 5)
        assert loads == [[0, 1, 2]] and seen == [] and table.position == 3
        assert gc.isenabled() and gc.get_freeze_count() > 0  # on again; the loaded objects frozen out of it
        log.append(b"k9", b"later")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert seen == [Change(3, b"k9", b"later")] and loads == [[0, 1, 2]]
        stop.set()
        await task
    try:
        asyncio.run(scenario())
    finally:
        gc.unfreeze()


def test_a_change_never_shows_its_value() -> None:
    assert "sealed" not in repr(Change(1, b"subscription:/guest/T", b'{"credential":"sealed"}'))


def _batches(batches: list[tuple[int, int, list[tuple[bytes | None, bytes | None, int]]]]) -> bytes:
    """Record batches as a broker returns them: (compression, offsets skipped before, records)."""
    out, offset = b"", 0
    for compression, gap, rows in batches:
        builder = MemoryRecordsBuilder(magic=2, compression_type=compression, batch_size=1 << 24, offset=offset + gap)
        for i, (key, value, headers) in enumerate(rows):  # timestamp deltas of 1 to 4 varint bytes
            builder.append(1_700_000_000_000 + 10 ** (2 * i), key, value, [("h", b"x" * headers)] * headers)
        builder.close()
        offset = offset + gap + len(rows)
        out += builder.buffer()
    return out


# lengths of one, two and three varint bytes
_BLOB = st.one_of(st.none(), st.binary(max_size=8), st.binary(min_size=60, max_size=300),
                  st.binary(min_size=8200, max_size=8300))


@settings(max_examples=200, deadline=None,  # large records on purpose (lengths of three varint bytes)
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(batches=st.lists(st.tuples(st.sampled_from((0, 0, 1)), st.integers(0, 70),
                                  st.lists(st.tuples(_BLOB, _BLOB, st.integers(0, 2)), min_size=1, max_size=5)),
                        max_size=4),
       skip=st.integers(0, 10))
def test_kafka_logs_record_reader_reads_what_kafka_python_reads(
        batches: list[tuple[int, int, list[tuple[bytes | None, bytes | None, int]]]], skip: int) -> None:
    """consumer.kafka_edge._ChangeRecords (uncompressed batches read in one loop) against
    kafka-python's own records, from a fetch offset inside the data (records before it dropped)."""
    data = _batches(batches)
    tp = TopicPartition("subs", 0)
    ours = kafka_edge._ChangeRecords(skip, tp, MemoryRecords(data))
    theirs = Fetcher.PartitionRecords(skip, tp, MemoryRecords(data))
    changes = ours.take()
    assert changes == [Change(r.offset, r.key, r.value) for r in theirs.take()]
    assert all(type(part) in (bytes, type(None)) for change in changes for part in change[1:])  # not bytearray
    assert ours.next_fetch_offset == theirs.next_fetch_offset


def test_a_corrupt_batch_is_refused_as_kafka_python_refuses_it() -> None:
    data = bytearray(_batches([(0, 0, [(b"k", b"v" * 100, 0), (b"k", b"w", 0)])]))
    data[-3] ^= 0xFF  # a byte of the last record: the batch's CRC no longer matches
    unchecked = bytearray(data)
    unchecked[61] += 2  # the first record's length (one varint byte): it ends inside the next
    for reader in (kafka_edge._ChangeRecords, Fetcher.PartitionRecords):
        with pytest.raises(CorruptRecordError):
            reader(0, TopicPartition("subs", 0), MemoryRecords(bytes(data))).take()
        with pytest.raises(CorruptRecordError):
            reader(0, TopicPartition("subs", 0), MemoryRecords(bytes(unchecked)), check_crcs=False).take()
