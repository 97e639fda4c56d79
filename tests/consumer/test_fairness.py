"""Concurrent fires shared by namespace: borrow what others leave unused, give it back at once."""

from __future__ import annotations

import asyncio

import pytest

from consumer.fairness import FairSlots

pytestmark = pytest.mark.timeout(30)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def waiters(slots: FairSlots, namespace: str, count: int) -> list[asyncio.Task[None]]:
    return [asyncio.ensure_future(slots.acquire(namespace)) for _ in range(count)]


def test_a_namespace_alone_borrows_every_slot() -> None:
    async def main() -> None:
        slots = FairSlots(4)
        for _ in range(4):
            await slots.acquire("alice")
        assert slots.held("alice") == 4
    asyncio.run(main())


def test_a_borrowed_slot_goes_back_to_the_namespace_that_needs_it() -> None:
    async def main() -> None:
        slots = FairSlots(4)
        for _ in range(4):
            await slots.acquire("alice")
        more_alice = waiters(slots, "alice", 10)
        bob = waiters(slots, "bob", 3)
        await settle()
        for _ in range(4):
            slots.release("alice")
            await settle()
        # each namespace now holds its share (2); alice's first waiters were not served first
        assert slots.held("bob") == 2 and slots.held("alice") == 2
        assert sum(t.done() for t in bob) == 2 and sum(t.done() for t in more_alice) == 2
        for task in more_alice + bob:
            task.cancel()
        await asyncio.gather(*more_alice, *bob, return_exceptions=True)
    asyncio.run(main())


def test_a_namespace_at_its_share_waits_only_while_others_wait() -> None:
    async def main() -> None:
        slots = FairSlots(4)
        await slots.acquire("alice")
        await slots.acquire("bob")
        await slots.acquire("alice")  # share is 2 each, and nobody waits: fine
        await slots.acquire("alice")  # borrows bob's unused second slot
        assert slots.held("alice") == 3
        bob = waiters(slots, "bob", 1)
        await settle()
        assert not bob[0].done()  # every slot is taken
        slots.release("alice")
        await settle()
        assert bob[0].done() and slots.held("bob") == 2
    asyncio.run(main())


def test_a_stated_concurrency_caps_the_namespace_even_with_slots_free() -> None:
    async def main() -> None:
        slots = FairSlots(10, limit=lambda ns: 2 if ns == "alice" else None)
        alice = waiters(slots, "alice", 5)
        await settle()
        assert slots.held("alice") == 2 and sum(t.done() for t in alice) == 2
        await slots.acquire("bob")
        slots.release("alice")
        await settle()
        assert slots.held("alice") == 2 and sum(t.done() for t in alice) == 3
        for task in alice:
            task.cancel()
        await asyncio.gather(*alice, return_exceptions=True)
    asyncio.run(main())


def test_cancelled_waiters_leave_no_state_and_no_slot_behind() -> None:
    async def main() -> None:
        slots = FairSlots(1)
        async with slots.slot("alice"):
            tasks = waiters(slots, "bob", 3)
            await settle()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert slots.held("alice") == 0 and slots.held("bob") == 0
        await asyncio.wait_for(slots.acquire("carol"), 1)
        assert slots.share() == 1
    asyncio.run(main())


def test_wait_after_a_refused_try_is_served_in_order_and_the_share_counts_waiting_namespaces() -> None:
    """The firer's way in: ``try_acquire`` first, ``wait`` only when refused; a namespace that only
    waits counts in the share, and a release with nobody waiting just frees the slot."""
    async def main() -> None:
        slots = FairSlots(4)
        assert all(slots.try_acquire("alice") for _ in range(4))
        assert not slots.try_acquire("alice") and not slots.try_acquire("bob")
        assert slots.share() == 4  # alice alone is active
        bob = [asyncio.ensure_future(slots.wait("bob")) for _ in range(3)]
        alice = asyncio.ensure_future(slots.wait("alice"))
        await settle()
        assert slots.share() == 2  # bob waits: two namespaces active
        for _ in range(2):
            slots.release("alice")
            await settle()
        assert [t.done() for t in bob] == [True, True, False] and not alice.done()
        assert slots.held("bob") == 2 and slots.held("alice") == 2
        slots.release("bob")
        await settle()
        assert bob[2].done() and not alice.done()  # bob's own slot back to bob's next waiter
        for _ in range(2):
            slots.release("bob")
        await settle()
        assert alice.done() and slots.held("alice") == 3 and slots.held("bob") == 0
        for _ in range(3):
            slots.release("alice")
        assert slots.held("alice") == 0 and slots.share() == 4
        assert slots.try_acquire("bob")
    asyncio.run(main())
