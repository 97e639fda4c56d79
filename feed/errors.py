"""The feed's refusals, and the one place a kafka-python error becomes an answer.

A refusal carries the HTTP status the web action answers with and the text of its ``{"error": ...}``
body. ``actions.common.ActionError`` is a kind of ``FeedError``, so a web action answers the
lifecycle's refusals and its own alike. Kafka errors are named by their type only: their text can
carry hosts and settings the caller has no business seeing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kafka.errors import KafkaError


class FeedError(Exception):
    """A refused request: the web action answers ``status`` with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def kafka_error(error: KafkaError, failure: str, status: int = 503, detail: bool = False) -> FeedError:
    """``failure: ErrorType`` (and the error's own text with ``detail``, for the caller's own Kafka)."""
    text = f"{failure}: {type(error).__name__}"
    return FeedError(f"{text}: {error}" if detail else text, status)


@contextmanager
def kafka_errors(failure: str, status: int = 503) -> Iterator[None]:
    """Any kafka-python error raised inside becomes ``kafka_error(error, failure, status)``."""
    try:
        yield
    except KafkaError as e:
        raise kafka_error(e, failure, status) from None
