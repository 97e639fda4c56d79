"""The local processes of deploy.sh --local (the emulator, the consumer): start one detached, tell
whether it still runs, stop it, and wait for it to say or serve something.

A pidfile holds "PID START_TIME": the start time (from /proc) makes the pair name one process, so a
pid recycled by another process is never signalled nor taken for ours. Each process runs in its own
session, so Ctrl-C in deploy.sh's terminal does not reach it and stop() signals its whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from deploy.errors import DeployError, until

KILL_WAIT_S = 5.0
POLL_S = 0.1
LOG_TAIL_LINES = 25


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (/proc/PID/stat field 22), '' if it is gone: with
    the pid it identifies our process, so a recycled pid is never signalled."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] == "Z" else fields[19]


def running_pid(pidfile: Path) -> int | None:
    """The pid recorded in pidfile if that very process is still running."""
    try:
        pid_text, started = pidfile.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if started and _start_time(pid) == started else None


def spawn(pidfile: Path, log: Path, command: Sequence[str]) -> int:
    """Start `command` in its own session (Ctrl-C in the terminal does not reach it; deploy.sh
    stops it in order), output appended to `log`, its pid written to `pidfile`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    pidfile.write_text(f"{process.pid} {_start_time(process.pid)}\n")
    return process.pid


def _signal_and_wait(pid: int, pidfile: Path, sig: signal.Signals, wait_s: float) -> bool:
    """Send sig to the process group; True once the process is gone (reaped if it is our child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and running_pid(pidfile) is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(POLL_S)
    return running_pid(pidfile) is None


def stop(pidfile: Path, timeout_s: float) -> bool:
    """SIGTERM the process group of the process in pidfile, SIGKILL after timeout_s; False if it
    was not running. Only that group is signalled: it was started by spawn() as its own session."""
    pid = running_pid(pidfile)
    if pid is not None:
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, KILL_WAIT_S)):
            if _signal_and_wait(pid, pidfile, sig, wait_s):
                break
    pidfile.unlink(missing_ok=True)
    return pid is not None


def tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, for an error message."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _require_running(pidfile: Path, log: Path) -> None:
    """Stop waiting at once, with its log, when the process we wait for has exited."""
    if running_pid(pidfile) is None:
        raise DeployError(f"the process of {pidfile.name} exited; its log ({log}) ends with:\n{tail(log)}")


def wait_line(log: Path, prefix: str, pidfile: Path, timeout_s: float) -> str:
    """The rest of the first line of `log` that starts with prefix (e.g. the URL a server prints)."""
    def check() -> str | None:
        _require_running(pidfile, log)
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        return None
    return until(check, timeout_s, lambda: f"no '{prefix}' in {log} after {timeout_s:.0f}s:\n{tail(log)}")


def wait_ready(url: str, pidfile: Path, log: Path, timeout_s: float) -> None:
    """Return once GET url answers 200 (a readiness endpoint)."""
    def check() -> bool:
        _require_running(pidfile, log)
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False
    until(check, timeout_s,
          lambda: f"{url} not ready after {timeout_s:.0f}s; the log ({log}) ends with:\n{tail(log)}")
