"""Fire outcomes → decisions, exhaustively over the statuses OpenWhisk can answer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.outcomes import Attempt, RetryPolicy, Verdict, classify, dead_letter_reason, decide


@pytest.mark.parametrize("status", [200, 202, 204])
def test_2xx_is_fired(status: int) -> None:
    assert classify(Attempt(status)) is Verdict.FIRED


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, None])
def test_transient_failures_are_retried(status: int | None) -> None:
    assert classify(Attempt(status)) is Verdict.RETRY


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_permanent_failures_dead_letter_at_once(status: int) -> None:
    verdict, wait = decide(Attempt(status), 0.0, 0.0, 1, RetryPolicy())
    assert (verdict, wait) == (Verdict.DEAD_LETTER, 0.0)
    assert dead_letter_reason(Attempt(status)) == "fire-rejected"


@given(st.integers(min_value=100, max_value=599))
def test_every_status_has_exactly_one_verdict(status: int) -> None:
    verdict = classify(Attempt(status))
    expected = (Verdict.FIRED if 200 <= status < 300 else
                Verdict.RETRY if status in (408, 409, 429) or status >= 500 else Verdict.DEAD_LETTER)
    assert verdict is expected


def test_retries_stop_at_the_maximum_age() -> None:
    policy = RetryPolicy(initial_backoff_s=1, max_backoff_s=10, max_age_s=60)
    verdict, wait = decide(Attempt(429), first_attempt_s=0, now_s=10, attempts=3, policy=policy)
    assert verdict is Verdict.RETRY and 2 <= wait <= 4
    verdict, _ = decide(Attempt(503), first_attempt_s=0, now_s=59.5, attempts=9, policy=policy)
    assert verdict is Verdict.DEAD_LETTER
    assert dead_letter_reason(Attempt(503)) == "retries-exhausted"


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_with_full_jitter_and_is_capped(attempts: int, seed: int) -> None:
    policy = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=30, max_age_s=900)
    wait = policy.backoff_s(attempts, random.Random(seed))
    ceiling = min(30, 0.2 * 2 ** (attempts - 1))
    assert ceiling / 2 <= wait <= ceiling
