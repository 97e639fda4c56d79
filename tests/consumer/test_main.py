"""The entry point's process-wide settings: garbage collection tuned for the firer's CPU, and the
event loop (uvloop where installed, asyncio's own otherwise)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Iterator

import pytest
import uvloop

from consumer.__main__ import GC_THRESHOLDS, event_loop, tune_gc
from consumer.settings import Settings
from messaging_lib.credentials import generate_key
from messaging_lib.errors import ConfigError


@pytest.fixture
def gc_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_gc_freezes_what_exists_and_raises_the_thresholds(gc_restored: None) -> None:
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # less often than CPython's default
    assert gc.get_freeze_count() > 0
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1  # cycles are still collected


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_the_service_runs_on_uvloop_by_default() -> None:
    wanted = Settings(sealing_keys=generate_key()).event_loop
    assert wanted == "uvloop"
    with event_loop(wanted) as runner:
        assert runner.run(_loop_type()) is uvloop.Loop


def test_event_loop_asyncio_runs_on_asyncios_own_loop() -> None:
    with event_loop("asyncio") as runner:
        assert not issubclass(runner.run(_loop_type()), uvloop.Loop)


def test_without_uvloop_installed_it_runs_on_asyncio_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with caplog.at_level(logging.WARNING, logger="consumer"), event_loop("uvloop") as runner:
        assert not issubclass(runner.run(_loop_type()), uvloop.Loop)
    assert "uvloop is not installed" in caplog.text


def test_an_unknown_event_loop_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="EVENT_LOOP"):
        Settings(sealing_keys=generate_key(), event_loop="trio")
