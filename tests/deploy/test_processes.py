"""The local processes of deploy.sh --local, with real processes: a pidfile names one process
(a recycled pid is not ours), stop ends its whole group, and the waits end as soon as they can."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from deploy import processes
from deploy.errors import DeployError
from deploy.ports import free_port
from tests.e2e.helpers import wait_for

SLEEPER = [sys.executable, "-c", "import time; print('listening on http://x', flush=True); time.sleep(120)"]


@pytest.fixture
def pidfile(tmp_path: Path):
    path = tmp_path / "p.pid"
    yield path
    processes.stop(path, timeout_s=5)


def test_spawn_running_stop(pidfile: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "p.log"
    pid = processes.spawn(pidfile, log, SLEEPER)
    assert processes.running_pid(pidfile) == pid
    assert processes.wait_line(log, "listening on ", pidfile, timeout_s=30) == "http://x"
    assert processes.stop(pidfile, timeout_s=10)
    assert processes.running_pid(pidfile) is None
    assert not pidfile.exists()
    assert not processes.stop(pidfile, timeout_s=1), "nothing to stop the second time"


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(pidfile: Path, tmp_path: Path) -> None:
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up and ignoring SIGTERM', flush=True); time.sleep(120)"]
    processes.spawn(pidfile, tmp_path / "p.log", stubborn)
    assert processes.wait_line(tmp_path / "p.log", "up ", pidfile, timeout_s=30) == "and ignoring SIGTERM"
    started = time.monotonic()
    assert processes.stop(pidfile, timeout_s=0.5)
    assert processes.running_pid(pidfile) is None
    assert time.monotonic() - started < 30


def test_a_pidfile_whose_start_time_does_not_match_is_not_our_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "p.pid"
    pidfile.write_text(f"{os.getpid()} 1\n")  # this process is alive, but did not start at tick 1
    assert processes.running_pid(pidfile) is None
    pidfile.write_text("not a pidfile")
    assert processes.running_pid(pidfile) is None
    assert processes.running_pid(tmp_path / "absent.pid") is None


def test_waiting_for_a_process_that_exited_fails_at_once_with_its_log(pidfile: Path, tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    processes.spawn(pidfile, log, [sys.executable, "-c", "print('boom: bad config')"])
    wait_for(lambda: processes.running_pid(pidfile) is None, timeout_s=30, what="the process to exit")
    started = time.monotonic()
    with pytest.raises(DeployError, match=r"the process of p.pid exited; its log .* ends with:\nboom: bad config"):
        processes.wait_line(log, "never ", pidfile, timeout_s=60)
    assert time.monotonic() - started < 30


def test_a_line_that_never_comes_times_out_with_the_log_tail(pidfile: Path, tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    processes.spawn(pidfile, log, SLEEPER)
    with pytest.raises(DeployError, match=r"no 'never ' in .* after 1s:\nlistening on http://x"):
        processes.wait_line(log, "never ", pidfile, timeout_s=1)


def test_a_url_that_never_answers_times_out_with_the_log_tail(pidfile: Path, tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    processes.spawn(pidfile, log, SLEEPER)
    processes.wait_line(log, "listening on ", pidfile, timeout_s=30)
    url = f"http://127.0.0.1:{free_port()}/readyz"  # nothing listens there
    with pytest.raises(DeployError, match=r"not ready after 1s; the log .* ends with:\nlistening on http://x"):
        processes.wait_ready(url, pidfile, log, timeout_s=1)


def test_tail_of_a_missing_log() -> None:
    assert processes.tail(Path("/nonexistent/deploy.log")) == "(no log)"
