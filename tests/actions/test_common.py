"""What the actions share: the deadline helper and the one way a refusal is answered."""

from __future__ import annotations

import time

import pytest

from actions.common import ActionError, time_left_s
from actions.web import support
from feed.errors import FeedError


def test_time_left_is_the_deadline_minus_a_margin_and_never_below_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("__OW_DEADLINE", raising=False)
    assert time_left_s() == 30.0 and time_left_s(59.0) == 59.0
    monkeypatch.setenv("__OW_DEADLINE", str(int((time.time() + 10) * 1000)))
    assert 8.0 < time_left_s() <= 9.0
    monkeypatch.setenv("__OW_DEADLINE", str(int((time.time() - 10) * 1000)))
    assert time_left_s() == 1.0


@pytest.mark.parametrize("error", [ActionError("no", 403), FeedError("gone", 404)])
def test_web_actions_answer_their_own_and_the_feeds_refusals_alike(error: FeedError) -> None:
    def handler(params: dict) -> dict:
        raise error
    assert support.respond(handler, {}) == {"statusCode": error.status, "body": {"error": str(error)}}
    assert support.respond(lambda params: {"ok": True}, {}) == {"statusCode": 200, "body": {"ok": True}}
