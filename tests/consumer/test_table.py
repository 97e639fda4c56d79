"""The compacted-table reader: everything up to the end before `loaded`, then live changes, in order."""

from __future__ import annotations

import asyncio
import gc
import time

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
