"""The one failure type of the deploy steps, and the one way a step waits for something.

Every step turns what went wrong into one DeployError whose message is the sentence the user reads
(what failed and what to do); `python -m deploy.tool` prints it and exits 1. Waiting is polling a
condition until a deadline, then failing with such a sentence: never a fixed sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeployError(Exception):
    """A step failed; the message says what went wrong and what to do."""


def until(check: Callable[[], T | None], timeout_s: float, failure: str | Callable[[], str],
          interval_s: float = 0.2) -> T:
    """The first truthy result of `check`, polled every interval_s; DeployError(failure) after
    timeout_s. A callable failure is built at the timeout (e.g. a log's tail as it is then).
    `check` may raise DeployError itself to stop early (e.g. the process died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DeployError(failure if isinstance(failure, str) else failure())
        time.sleep(interval_s)
