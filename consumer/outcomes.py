"""What to do after a fire attempt: the one place where HTTP outcomes become decisions.

DESIGN.md section 5: 2xx is done; 408, 409, 429, 5xx, timeouts and connection errors are retried
with exponential backoff and jitter until the message's maximum age, then dead-lettered; 400,
401, 403, 404, 413 (and any other status) are permanent and dead-lettered at once. Pure functions
over data, so every case is tested without a network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from messaging_lib.errors import Reason

RETRYABLE_STATUSES = frozenset({408, 409, 429})
# 401/403/404 mean the trigger or the key is gone: a subscription is disabled on them (router).
TRIGGER_GONE_STATUSES = frozenset({401, 403, 404})


class Verdict(Enum):
    FIRED = "fired"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Attempt:
    """The result of one fire attempt. status None means no HTTP answer (timeout, connection error)."""

    status: int | None
    error: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    max_age_s: float = 900.0  # far beyond OpenWhisk's 60 s throttle window

    def backoff_s(self, attempts: int, rng: random.Random | None = None) -> float:
        """Full-jitter exponential backoff after `attempts` failed attempts (1 = first failure)."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2 ** max(0, attempts - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)


def classify(attempt: Attempt) -> Verdict:
    if attempt.status is None:
        return Verdict.RETRY
    if 200 <= attempt.status < 300:
        return Verdict.FIRED
    if attempt.status in RETRYABLE_STATUSES or attempt.status >= 500:
        return Verdict.RETRY
    return Verdict.DEAD_LETTER


def decide(attempt: Attempt, first_attempt_s: float, now_s: float, attempts: int,
           policy: RetryPolicy) -> tuple[Verdict, float]:
    """The verdict and, for RETRY, how long to wait; a retry that would pass the maximum age
    dead-letters instead (reason: retries-exhausted)."""
    verdict = classify(attempt)
    if verdict is not Verdict.RETRY:
        return verdict, 0.0
    wait = policy.backoff_s(attempts)
    if now_s + wait - first_attempt_s > policy.max_age_s:
        return Verdict.DEAD_LETTER, 0.0
    return Verdict.RETRY, wait


def dead_letter_reason(attempt: Attempt) -> Reason:
    """The reason put on a dead-letter record for a failed fire (its status goes in dl_status)."""
    return Reason.RETRIES_EXHAUSTED if classify(attempt) is Verdict.RETRY else Reason.FIRE_REJECTED
