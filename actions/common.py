"""What every action shares: its refusal type and the time left before its deadline.

The other two shared pieces live in ``feed`` because the feed's store needs them too and ``feed``
cannot import ``actions``: the true/false parser (``feed.options.parse_bool``) and the mapping of
kafka-python errors to an answer (``feed.errors.kafka_error``/``kafka_errors``).
"""

from __future__ import annotations

import os
import time

from feed.errors import FeedError

NO_DEADLINE_S = 30.0  # outside OpenWhisk (no __OW_DEADLINE)
SAFETY_MARGIN_S = 1.0  # kept back so the action still answers before its deadline
MIN_TIME_LEFT_S = 1.0


class ActionError(FeedError):
    """An action's refusal: a web action answers ``status`` with ``{"error": message}``, a public
    action ``{"error": message}``. A kind of ``FeedError`` so that the feed's refusals and the
    actions' own are answered alike."""


def time_left_s(no_deadline_s: float = NO_DEADLINE_S) -> float:
    """Seconds left before the activation's deadline (__OW_DEADLINE, epoch ms) minus a margin, at
    least MIN_TIME_LEFT_S; ``no_deadline_s`` outside OpenWhisk. Bounds every wait, so a slow call
    fails with a clear answer before the activation is cut off."""
    deadline = os.environ.get("__OW_DEADLINE")
    if not deadline:
        return no_deadline_s
    return max(MIN_TIME_LEFT_S, int(deadline) / 1000 - time.time() - SAFETY_MARGIN_S)
