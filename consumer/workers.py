"""Several consumer processes in one container (``WORKERS=N``): the supervisor that runs them.

One Python process uses one core (the firer is bound by the GIL), so a pod with N cores runs N
workers: N ordinary ``python -m consumer`` processes, each its own Kafka group member (the group
shares the partitions among them as among pods), each draining and committing on its own. The
supervisor owns no work and no state; it only:

- starts the workers, worker ``i`` with ``HTTP_PORT + i`` for its health and metrics (worker 0
  keeps the pod's probe port; scrape each port for every worker's metrics), and with
  ``CONSUMER_INSTANCE_ID`` set, the instance id ``<id>-w<i>``;
- forwards SIGTERM/SIGINT to every worker and waits for them to drain (their
  ``SHUTDOWN_TIMEOUT_S`` plus a margin), killing only one that outlives it;
- stops every worker when one exits on its own, and exits non-zero, so the container is
  restarted whole, as a single process is when one of its roles fails.

Linux only (it waits on process file descriptors), as is the image.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from consumer.logs import fields
from messaging_lib.errors import ConfigError

log = logging.getLogger("consumer.workers")

WORKERS_SETTING = "WORKERS"
WORKER_INDEX_SETTING = "CONSUMER_WORKER_INDEX"  # set by the supervisor in each worker's environment
INSTANCE_ID_SETTING = "CONSUMER_INSTANCE_ID"  # static membership: each worker gets its own (``-w<i>``)
MAX_WORKERS = 64
STOP_MARGIN_S = 10.0  # beyond the workers' own drain timeout, before one is killed
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def workers_option(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[int, list[str]]:
    """The number of workers (flag ``--workers`` over env ``WORKERS`` over 1) and the other flags.

    Raises ``ConfigError`` unless it is a whole number from 1 to ``MAX_WORKERS``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--workers", default=None)
    known, rest = p.parse_known_args(list(argv))
    raw = known.workers if known.workers is not None else environ.get(WORKERS_SETTING, "1")
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(WORKERS_SETTING, f"must be a whole number from 1 to {MAX_WORKERS}, got {raw!r}")
    return workers, rest


@dataclass(frozen=True)
class Worker:
    """How to start one worker: its command and its whole environment."""

    index: int
    command: list[str]
    env: dict[str, str] = field(repr=False)  # holds the sealing keys


def worker_commands(argv: Sequence[str], environ: Mapping[str, str], workers: int, http_port: int,
                    instance_id: str = "") -> list[Worker]:
    """``python -m consumer`` once per worker, with the same flags and environment, except a
    port of its own (given as a flag too, so it wins over an ``--http-port`` in ``argv``) and
    ``WORKERS=1``, so a worker never starts workers of its own. With static membership
    (``instance_id``, CONSUMER_INSTANCE_ID) each worker joins as ``<id>-w<i>``: two members of one
    group with the same instance id would fence each other out."""
    commands = []
    for i in range(workers):
        flags = [*argv, "--http-port", str(http_port + i)]
        env = {**environ, WORKERS_SETTING: "1", WORKER_INDEX_SETTING: str(i), "HTTP_PORT": str(http_port + i)}
        if instance_id:
            flags += ["--consumer-instance-id", f"{instance_id}-w{i}"]
            env[INSTANCE_ID_SETTING] = f"{instance_id}-w{i}"
        commands.append(Worker(i, [sys.executable, "-m", "consumer", *flags], env))
    return commands


class Supervisor:
    """Runs the workers until a stop signal or until one of them exits (see the module doc).

    ``run`` must be called on the main thread (it installs the signal handlers)."""

    def __init__(self, workers: Sequence[Worker], drain_timeout_s: float, margin_s: float = STOP_MARGIN_S) -> None:
        self._workers = list(workers)
        self._stop_timeout_s = drain_timeout_s + margin_s
        self._procs: list[subprocess.Popen[bytes]] = []
        self._signalled: set[int] = set()  # pids already told to stop
        self._stopping = False

    def run(self) -> int:
        """0 when stopped by a signal and every worker drained cleanly; else the first failure's code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            for worker in self._workers:
                if self._stopping:
                    break
                self._procs.append(subprocess.Popen(worker.command, env=worker.env))
                log.info("worker started", extra=fields(worker=worker.index, pid=self._procs[-1].pid))
            first = self._wait_for_first_exit()
            if first is not None:
                log.error("a worker exited; stopping the others",
                          extra=fields(worker=self._procs.index(first), code=first.returncode))
            self._stop_all()
            return self._exit_code(first)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Pass the signal on to every worker: each drains and commits by itself."""
        self._stopping = True
        self._signal_all(signum)

    def _signal_all(self, signum: int) -> None:
        for proc in self._procs:
            if proc.pid not in self._signalled and proc.poll() is None:
                self._signalled.add(proc.pid)
                proc.send_signal(signum)

    def _wait_for_first_exit(self) -> subprocess.Popen[bytes] | None:
        """The worker that exited on its own, or None once a stop signal came."""
        pidfds = {os.pidfd_open(proc.pid): proc for proc in self._procs}
        try:
            while not self._stopping:
                ready, _, _ = select.select(list(pidfds), [], [], 1.0)  # a signal ends it early
                for fd in ready:
                    if pidfds[fd].poll() is not None and not self._stopping:
                        return pidfds[fd]
            return None
        finally:
            for fd in pidfds:
                os.close(fd)

    def _stop_all(self) -> None:
        """SIGTERM whoever still runs (a signal already did, unless a worker failed), wait for
        their drain, then kill what outlives it."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout_s
        for proc in self._procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("a worker did not stop in time: killed", extra=fields(pid=proc.pid))
                proc.kill()
                proc.wait()

    def _exit_code(self, first: subprocess.Popen[bytes] | None) -> int:
        failed = first if first is not None else next((p for p in self._procs if p.returncode != 0), None)
        if failed is None:
            return 0
        code = failed.returncode
        return 128 - code if code < 0 else code or 1  # killed by signal n: 128 + n, as a shell says
