"""WORKERS: the option, the workers' commands, and the supervisor with real processes (small
Python children that record their start and their SIGTERM), signalled as a container would be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.settings import load
from consumer.workers import MAX_WORKERS, WORKER_INDEX_SETTING, WORKERS_SETTING, worker_commands, workers_option
from messaging_lib.credentials import generate_key
from messaging_lib.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 30


def test_one_worker_unless_told_otherwise() -> None:
    assert workers_option([], {}) == (1, [])
    assert workers_option(["--roles", "firer"], {WORKERS_SETTING: "3"}) == (3, ["--roles", "firer"])


def test_the_flag_wins_over_the_environment_and_is_not_passed_on() -> None:
    assert workers_option(["--workers", "2", "--http-port", "9000"], {WORKERS_SETTING: "5"}) == \
        (2, ["--http-port", "9000"])


@pytest.mark.parametrize("value", ["0", "-1", str(MAX_WORKERS + 1), "two", "1.5", ""])
def test_a_bad_number_of_workers_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        workers_option([], {WORKERS_SETTING: value})
    assert WORKERS_SETTING in str(info.value)


def test_each_worker_gets_the_same_settings_and_a_port_of_its_own() -> None:
    environ = {"SEALING_KEYS": "k", WORKERS_SETTING: "3", "HTTP_PORT": "8080"}
    commands = worker_commands(["--http-port", "8080", "--roles", "firer"], environ, 3, 8080)
    assert [w.index for w in commands] == [0, 1, 2]
    for w in commands:
        assert w.command == [sys.executable, "-m", "consumer", "--http-port", "8080", "--roles", "firer",
                             "--http-port", str(8080 + w.index)]
        assert w.env == {"SEALING_KEYS": "k", WORKERS_SETTING: "1", WORKER_INDEX_SETTING: str(w.index),
                         "HTTP_PORT": str(8080 + w.index)}
        assert "SEALING_KEYS" not in repr(w) and "'k'" not in repr(w)


def test_with_static_membership_each_worker_has_an_instance_id_of_its_own() -> None:
    environ = {"SEALING_KEYS": generate_key(), "CONSUMER_INSTANCE_ID": "pod-0"}
    commands = worker_commands(["--consumer-instance-id", "pod-0"], environ, 2, 8080, "pod-0")
    for w in commands:
        assert w.command[-2:] == ["--consumer-instance-id", f"pod-0-w{w.index}"]  # the last flag wins
        assert w.env["CONSUMER_INSTANCE_ID"] == f"pod-0-w{w.index}"
        settings = load(w.command[3:], w.env)
        assert settings.consumer_instance_id == f"pod-0-w{w.index}"
        assert settings.http_port == 8080 + w.index


# --- the supervisor, with real processes ---

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    index, record, behaviour = os.environ["CONSUMER_WORKER_INDEX"], sys.argv[1], sys.argv[2]
    def note(text):
        with open(record, "a") as f:
            f.write(f"{text} {index}\\n")
    def on_term(signum, frame):
        note("stopped")
        sys.exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if behaviour == "stubborn" else on_term)
    note("started")
    if behaviour == "fail" and index == "1":
        while "started 0" not in open(record).read():  # worker 0 can hear its SIGTERM by now
            time.sleep(0.01)
        sys.exit(3)
    while True:
        time.sleep(60)
""")

SUPERVISOR = textwrap.dedent("""
    import sys
    from consumer.workers import Supervisor, Worker
    count, record, behaviour = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    children = [Worker(i, [sys.executable, "-c", sys.argv[4], record, behaviour],
                       {"CONSUMER_WORKER_INDEX": str(i)}) for i in range(count)]
    sys.exit(Supervisor(children, drain_timeout_s=0.5, margin_s=0.5).run())
""")


def start_supervisor(tmp_path: Path, behaviour: str, count: int = 2) -> tuple[subprocess.Popen[bytes], Path]:
    record = tmp_path / "record.txt"
    record.touch()
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(count), str(record), behaviour, CHILD],
                            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return proc, record


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def lines(record: Path) -> set[str]:
    return set(record.read_text().splitlines())


def test_sigterm_reaches_every_worker_and_a_clean_drain_exits_0(tmp_path: Path) -> None:
    proc, record = start_supervisor(tmp_path, "clean", count=3)
    wait_for(lambda: {"started 0", "started 1", "started 2"} <= lines(record), "three workers")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(DEADLINE_S) == 0
    assert lines(record) == {"started 0", "started 1", "started 2", "stopped 0", "stopped 1", "stopped 2"}


def test_a_worker_that_exits_stops_the_others_and_the_supervisor_fails(tmp_path: Path) -> None:
    proc, record = start_supervisor(tmp_path, "fail")
    assert proc.wait(DEADLINE_S) == 3
    assert lines(record) == {"started 0", "started 1", "stopped 0"}


def test_a_worker_that_outlives_its_drain_is_killed(tmp_path: Path) -> None:
    proc, record = start_supervisor(tmp_path, "stubborn")
    wait_for(lambda: {"started 0", "started 1"} <= lines(record), "two workers")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(DEADLINE_S) == 128 + signal.SIGKILL
    assert lines(record) == {"started 0", "started 1"}
