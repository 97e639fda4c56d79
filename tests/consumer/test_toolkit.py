"""The shared loop machinery (consumer/toolkit.py), without Kafka: each pattern's contract."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from consumer.toolkit import (
    Backpressure,
    KeyedQueues,
    RetryRule,
    Supervisor,
    hand_over,
    sleep_while,
    wait_until,
    write_until_acknowledged,
)

pytestmark = pytest.mark.timeout(30)


async def until(check: Callable[[], object], timeout_s: float = 5.0) -> None:
    await asyncio.wait_for(wait_until(lambda: bool(check()), None, step_s=0.001), timeout_s)


def test_a_failed_task_stops_the_owner_once_and_keeps_the_first_error() -> None:
    async def scenario() -> None:
        stops: list[int] = []
        supervisor = Supervisor("test", lambda: stops.append(1))

        async def fail(message: str) -> None:
            raise ValueError(message)

        supervisor.spawn(fail("first"))
        await until(lambda: supervisor.failure is not None)
        supervisor.spawn(fail("second"))
        await until(lambda: len(supervisor) == 0)
        assert str(supervisor.failure) == "first"
        assert stops == [1]

    asyncio.run(scenario())


def test_cancel_all_cancels_and_waits_and_is_no_failure() -> None:
    async def scenario() -> None:
        supervisor = Supervisor("test", lambda: pytest.fail("a cancellation is not a failure"))
        cleaned: list[str] = []

        async def forever() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append("done")

        for _ in range(3):
            supervisor.spawn(forever())
        await asyncio.sleep(0)
        await supervisor.cancel_all()
        assert cleaned == ["done"] * 3 and len(supervisor) == 0 and supervisor.failure is None

    asyncio.run(scenario())


def test_keyed_queues_keep_order_per_key_run_keys_in_parallel_and_vanish_when_empty() -> None:
    async def scenario() -> None:
        supervisor = Supervisor("test", lambda: None)
        gates = {"a": asyncio.Event(), "b": asyncio.Event()}
        handled: list[tuple[str, int]] = []

        async def handle(item: tuple[str, int]) -> None:
            await gates[item[0]].wait()
            handled.append(item)

        queues: KeyedQueues[str, tuple[str, int]] = KeyedQueues(supervisor, handle)
        for i in range(3):
            queues.put("a", ("a", i))
            queues.put("b", ("b", i))
        assert len(queues) == 2 and len(supervisor) == 2  # one task per key, not per item
        gates["b"].set()  # b finishes while a is blocked: keys do not wait on each other
        await until(lambda: "b" not in queues)
        assert handled == [("b", 0), ("b", 1), ("b", 2)]
        gates["a"].set()
        await until(lambda: len(queues) == 0 and len(supervisor) == 0)
        assert [i for k, i in handled if k == "a"] == [0, 1, 2]
        queues.put("a", ("a", 3))  # a key comes back: a new queue and task
        await until(lambda: ("a", 3) in handled and len(queues) == 0)

    asyncio.run(scenario())


def test_keyed_queues_hand_unfinished_items_over_on_cancel() -> None:
    async def scenario() -> None:
        supervisor = Supervisor("test", lambda: None)
        started = asyncio.Event()

        async def handle(item: int) -> None:
            started.set()
            await asyncio.Event().wait()

        released: list[int] = []
        queues: KeyedQueues[str, int] = KeyedQueues(supervisor, handle, released.append)
        for i in range(3):
            queues.put("k", i)
        await started.wait()
        await supervisor.cancel_all()
        assert released == [0, 1, 2] and len(queues) == 0

    asyncio.run(scenario())


def test_backpressure_pauses_at_the_limit_and_resumes_at_half() -> None:
    async def scenario() -> None:
        calls: list[bool] = []

        async def set_paused(paused: bool) -> None:
            calls.append(paused)

        bp = Backpressure(10)
        flips = [await bp.apply(n, set_paused) for n in (0, 9, 10, 11, 7, 6, 5, 4, 9, 10)]
        assert flips == [False, False, True, False, False, False, True, False, False, True]
        assert calls == [True, False, True] and bp.paused

    asyncio.run(scenario())


def test_write_until_acknowledged_retries_with_growing_backoff() -> None:
    async def scenario() -> None:
        failures = [ConnectionError("down")] * 4
        waits: list[float] = []

        async def write() -> None:
            if failures:
                raise failures.pop()

        async def wait(seconds: float) -> bool:
            waits.append(seconds)
            return True

        rule = RetryRule(initial_s=0.1, max_s=0.5, factor=2.0)
        assert await write_until_acknowledged(write, ConnectionError, what="t", wait=wait, rule=rule)
        assert waits == [0.1, 0.2, 0.4, 0.5]

    asyncio.run(scenario())


def test_write_until_acknowledged_gives_up_when_the_work_is_no_longer_ours() -> None:
    async def scenario() -> None:
        attempts: list[int] = []

        async def write() -> None:
            attempts.append(1)
            raise ConnectionError("down")

        async def revoked(_: float) -> bool:
            return False

        assert not await write_until_acknowledged(write, ConnectionError, what="t", wait=revoked)
        assert attempts == [1]

    asyncio.run(scenario())


def test_write_until_acknowledged_lets_other_errors_through() -> None:
    async def write() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        asyncio.run(write_until_acknowledged(write, ConnectionError, what="t"))


def test_sleep_while_ends_early_when_the_condition_goes_false() -> None:
    async def scenario() -> None:
        now = [0.0]
        keep = [True]

        async def flip() -> None:
            await asyncio.sleep(0)
            keep[0] = False

        task = asyncio.ensure_future(flip())
        assert not await sleep_while(1000.0, lambda: keep[0], lambda: now[0], step_s=0.001)
        await task
        now[0] = 5.0  # time passes (injected clock): a full sleep with the condition held is True
        assert await sleep_while(0.0, lambda: True, lambda: now[0])

    asyncio.run(scenario())


def test_wait_until_honours_its_timeout() -> None:
    async def scenario() -> None:
        ticks = iter(range(1000))
        assert not await wait_until(lambda: False, 3.0, lambda: float(next(ticks)), step_s=0)
        assert await wait_until(lambda: True, 0.0)

    asyncio.run(scenario())


def test_hand_over_runs_on_the_loop_and_tolerates_a_closed_loop() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        got: list[tuple[str, int]] = []

        def record(x: int) -> None:
            got.append((threading.current_thread().name, x))

        thread = threading.Thread(target=hand_over, args=(loop, record, 7))
        thread.start()
        thread.join()
        await until(lambda: got)
        assert got == [(threading.main_thread().name, 7)]

    asyncio.run(scenario())
    closed = asyncio.new_event_loop()
    closed.close()
    hand_over(closed, lambda: pytest.fail("must not run"))
