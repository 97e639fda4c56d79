"""Fires that run nothing: a trigger fire answered 204 because no rule of the trigger is active.

OpenWhisk's controller (Triggers.scala, ``WhiskTriggersApi.activate``) answers a fire of a trigger
with no *active* rule -- no rules, only disabled ones, or a trigger deleted and recreated, which
leaves its rules inactive -- with 204 No Content: no activation, nothing runs. To the firer that
is a success (2xx), so without this module such messages would vanish silently.

``NoRuleTracker`` is the pure part: per trigger, whether this 204 is the one to log and the one to
note in the subscription's status (once per trigger per interval each), in bounded memory (an LRU
of at most ``max_triggers``; a trigger pushed out is simply reported again sooner).
``NoRuleReporter`` acts on its decisions: the metric (every such fire), the log line, and the
status note of a kafkaFeed subscription (through ``consumer.subscriptions.StatusWriter``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from consumer.kafka_shared import KafkaUnavailable
from consumer.logs import fields
from feed import records

log = logging.getLogger("consumer.no_rule")

NO_RULE_STATUS = 204
DEFAULT_INTERVAL_S = 300.0
DEFAULT_MAX_TRIGGERS = 10_000

# The note hook: (trigger FQN, envelope source) -> done; a no-op for envelopes the router did not build.
NoteHook = Callable[[str, str], Awaitable[None]]


class Counts(Protocol):
    """The metric every fire that ran no rule bumps (a ``prometheus_client.Counter`` or the
    firer's ``metrics.LoopCounter``)."""

    def inc(self, amount: float = 1.0) -> None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one fire that ran no rule (the metric counts every one regardless)."""

    log: bool
    note: bool


# The four decisions, built once: a trigger with no rule is normal (issue 15: the report of each
# of its fires must cost ~nothing), and nearly every decision is QUIET.
QUIET = Decision(False, False)
_DECISIONS = {(False, False): QUIET, (True, False): Decision(True, False), (False, True): Decision(False, True),
              (True, True): Decision(True, True)}


@dataclass(slots=True)
class _Seen:
    logged_s: float | None = None
    noted_s: float | None = None
    noted_version: int | None = None
    source: str | None = None  # the last envelope source seen, and the version it names
    version: int | None = None


class NoRuleTracker:
    """Once per trigger per ``interval_s`` a log line; once per trigger per interval (and at once
    for a new subscription version, since an UPDATE clears the note) a status note."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, max_triggers: int = DEFAULT_MAX_TRIGGERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_triggers < 1:
            raise ValueError("max_triggers must be at least 1")
        self.interval_s, self.max_triggers, self._clock = interval_s, max_triggers, clock
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def decide(self, trigger: str, version: int | None) -> Decision:
        """``version``: the subscription's configuration version the envelope names (None: not a
        kafkaFeed envelope, so there is nothing to note)."""
        return self._decide(self._entry(trigger), version)

    def decide_source(self, trigger: str, source: str, version_of: Callable[[str], int | None]) -> Decision:
        """``decide`` with the version ``version_of(source)``, read again only when the trigger's
        envelopes name another source than the last one (they repeat it until an UPDATE)."""
        seen = self._entry(trigger)
        if seen.source != source:
            seen.source, seen.version = source, version_of(source)
        return self._decide(seen, seen.version)

    def _decide(self, seen: _Seen, version: int | None) -> Decision:
        now = self._clock()
        log_now = seen.logged_s is None or now - seen.logged_s >= self.interval_s
        if log_now:
            seen.logged_s = now
        note_now = version is not None and (
            seen.noted_s is None or seen.noted_version != version or now - seen.noted_s >= self.interval_s)
        if note_now:
            seen.noted_s, seen.noted_version = now, version
        return _DECISIONS[log_now, note_now]

    def note_failed(self, trigger: str) -> None:
        """The note was not written: the next fire of the trigger that runs no rule tries again."""
        seen = self._seen.get(trigger)
        if seen is not None:
            seen.noted_s = seen.noted_version = None

    def _entry(self, trigger: str) -> _Seen:
        seen = self._seen.get(trigger)
        if seen is None:
            seen = self._seen[trigger] = _Seen()
            if len(self._seen) > self.max_triggers:
                self._seen.popitem(last=False)  # the least recently reported
        else:
            self._seen.move_to_end(trigger)
        return seen


class NoRuleReporter:
    """What the firer calls when a fire is answered 204: count, log (throttled), note (throttled)."""

    def __init__(self, counter: Counts, note: NoteHook | None = None, tracker: NoRuleTracker | None = None) -> None:
        self._counter, self._note = counter, note
        self._tracker = tracker if tracker is not None else NoRuleTracker()  # an empty one is falsy (__len__)
        self._version_of: Callable[[str], int | None] = records.config_version_of if note is not None \
            else _no_version

    async def report(self, trigger: str, source: str) -> None:
        """Never raises for Kafka trouble: a note that could not be written is written by a later fire."""
        if (work := self.fired(trigger, source)) is not None:
            await work

    def fired(self, trigger: str, source: str) -> Coroutine[Any, Any, None] | None:
        """``report`` for the firer's hot path: counts at once and returns the work to await (the
        log line, the note) only when some is due, so the usual fire of a trigger without a rule
        (reported within the interval already) costs a count and a lookup, no coroutine."""
        self._counter.inc()
        decision = self._tracker.decide_source(trigger, source, self._version_of)
        return None if decision is QUIET else self._act(trigger, source, decision)

    async def _act(self, trigger: str, source: str, decision: Decision) -> None:
        if decision.log:
            log.warning("a fire ran no rule: the trigger has no active rule, so nothing was run "
                        "(enable its rule with `wsk rule enable RULE`, or create one with "
                        "`wsk rule create RULE TRIGGER ACTION`); reported again in %.0f s at most",
                        self._tracker.interval_s, extra=fields(trigger=trigger, status=NO_RULE_STATUS))
        if decision.note and self._note is not None:
            try:
                await self._note(trigger, source)
            except KafkaUnavailable as e:
                self._tracker.note_failed(trigger)
                log.warning("could not note the fire that ran no rule", extra=fields(trigger=trigger, error=str(e)))


def _no_version(_source: str) -> None:
    """Without a note hook there is nothing to note: no version is read."""
    return None
