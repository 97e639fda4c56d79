"""The router's table of subscriptions: trigger -> configuration, status, and the index by topic.

Built only from the changes of the compacted subscriptions topic (consumer.table), so it is
rebuilt identically on every start; applying a change is pure and synchronous. A record that
cannot be read is skipped with a warning (a newer writer's format, or garbage) and never stops
the router. A status applies only to the configuration version it names, so a newer CREATE or
UPDATE re-enables a disabled subscription (feed.records).

**Defence in depth** (DESIGN.md section 6): the index applies the operator's topic policy
(``feed.grants``) to every subscription record, whoever wrote it. It tracks the ``grant:`` records
of the same topic; a subscription the policy refuses (a service or ``__*`` topic, a topic no grant
covers, a revoked grant), one whose topic is not a legal Kafka topic name, and one the router found
broken (``fault``: its topic gone or unreadable) is **refused**: kept by trigger, never indexed by
topic, so the router neither subscribes to its topic nor routes for it. A grant change marks its
namespace; ``recheck`` decides its subscriptions again. ``unreported`` hands the router the
refusals whose status record (disabled, naming the version) it has to write, once.

``StatusWriter`` holds the firer's hooks: on a permanent 401/403/404 for an envelope the router
built (``on_refused``), it records the subscription as disabled for that configuration version;
on a fire that ran no rule (``on_no_rule``, consumer.no_rule), it records a notice that leaves it
active (``records.no_rule_notice``; ``Live.disabled`` and READ ignore its state for disabling).
A notice replaces any earlier notice and is dropped by an UPDATE (a new version); it is never
written over a disable this writer recorded for the same version.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from consumer.table import Change
from feed import grants as feed_grants
from feed import records
from feed.grants import Grant, TopicPolicy
from feed.records import Status, Subscription
from messaging_lib.errors import RecordError

log = logging.getLogger("consumer.subscriptions")

# The firer's hook: (trigger FQN, envelope source, HTTP status) -> done.
RefusalHook = Callable[[str, str, int], Awaitable[None]]
DISABLING_STATUSES = frozenset({401, 403, 404})
# A legal Kafka topic name (kafka.common.internals.Topic); kafka-python raises inside subscribe otherwise.
_TOPIC_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
_ALLOWED_KEPT = 10_000  # policy decisions remembered (namespace and topic pairs); past it they start over


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the router does not read for a subscription: the status code and message of its status record."""

    status_code: int
    message: str


@dataclass(frozen=True, slots=True)
class Live:
    """A subscription as the router serves it: origins resolved, its version, its status, and
    (``refused``) why the router does not read its topic for it."""

    sub: Subscription
    version: int  # offset of its configuration record
    status: Status | None = None
    refused: Refusal | None = None

    @property
    def disabled(self) -> bool:
        return self.status is not None and self.status.disables_version(self.version)

    @property
    def reported(self) -> bool:
        """Whether the status record of its refusal is in the table already."""
        return (self.refused is not None and self.disabled and self.status is not None
                and self.status.message == self.refused.message)


def topic_name_refusal(topic: str) -> Refusal | None:
    if _TOPIC_NAME_RE.fullmatch(topic) and topic not in (".", ".."):
        return None
    return Refusal(403, f"Disabled: {topic[:300]!r} is not a Kafka topic name.")


class SubscriptionIndex:
    """``policy`` None: no topic policy (tools that only read the table); the router passes its own."""

    def __init__(self, policy: TopicPolicy | None = None) -> None:
        self.applied = -1  # offset of the last change applied
        self._policy = policy
        self._by_trigger: dict[str, Live] = {}
        self._by_topic: dict[str, dict[str, Live]] = {}
        self._statuses: dict[str, Status] = {}
        self._grants: dict[str, dict[bytes, Grant]] = {}  # namespace -> grant key -> grant
        self._regranted: set[str] = set()  # namespaces whose grants changed since the last recheck
        self._faults: dict[str, tuple[int, Refusal]] = {}  # trigger -> (version, what the router found)
        self._unreported: set[str] = set()  # refused triggers whose status record may still be due
        self._allowed: set[tuple[str, str]] = set()  # (trigger up to its name, topic) the policy allows now
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._by_trigger)

    def apply(self, change: Change) -> tuple[str, str | None] | None:
        """Apply one change; returns (trigger, the topic its subscription was on before, if any)
        when a subscription or its status changed."""
        self.applied = max(self.applied, change.offset)
        return self._apply(change)[0]

    def load(self, changes: Sequence[Change]) -> None:
        """Apply one read of the table (offsets ascending) while it loads, leaving the table
        ``apply`` one by one would leave: in a compacted topic only the last value of a key
        counts, and one not compacted yet holds several, so a record followed by one of the same
        key later in the read is not decoded, unless that later one (and every one after it) is
        unreadable: the last readable one counts, as it does applied one by one. So ``skipped``
        counts only the unreadable records that were read; ``recheck`` is due after it as after
        ``apply``."""
        if not changes:
            return
        self.applied = max(self.applied, changes[-1].offset)
        last = {change.key: i for i, change in enumerate(changes)}
        superseded: dict[bytes | None, list[Change]] = {}  # key -> its records before the last, in order
        for i, change in enumerate(changes):
            if last[change.key] != i:
                superseded.setdefault(change.key, []).append(change)
                continue
            earlier = superseded.pop(change.key, None)
            while not self._apply(change)[1] and earlier:  # unreadable: the one before counts
                change = earlier.pop()

    def _apply(self, change: Change) -> tuple[tuple[str, str | None] | None, bool]:
        """(what ``apply`` returns, whether the record was readable)."""
        parsed = records.parse_key(change.key)  # the prefixes differ from grants', so a grant parses as None
        if parsed is None:
            return None, self._apply_grant(change) if feed_grants.is_grant_key(change.key) else True
        prefix, trigger = parsed
        try:
            if prefix == records.STATUS_PREFIX:
                self._apply_status(trigger, None if change.value is None else records.decode_status(change.value))
                return (trigger, None), True
            else:
                sub = None if change.value is None else records.decode_subscription(change.value, change.offset)
                if sub is not None and sub.trigger != trigger:
                    raise RecordError("the record's trigger does not match its key")
                return (trigger, self._apply_subscription(trigger, sub, change.offset)), True
        except RecordError as e:
            self.skipped += 1
            log.warning("skipping a subscriptions record", extra={"fields": {
                "offset": change.offset, "trigger": trigger, "error": str(e)}})
        return None, False

    def _apply_grant(self, change: Change) -> bool:
        """Grants only count once ``recheck`` decides their namespace's subscriptions again; they are
        also kept for the read API (consumer.table_api): the feed checks a namespace's grants.
        False: the record is unreadable."""
        try:
            grant = feed_grants.parse_grant_key(change.key)
            if change.value is not None:
                feed_grants.decode_grant(change.key, change.value)
        except RecordError as e:
            self.skipped += 1
            log.warning("skipping a grant record", extra={"fields": {"offset": change.offset, "error": str(e)}})
            return False
        self._allowed.clear()  # decided again under the grants as they are now
        held = self._grants.setdefault(grant.namespace, {})
        if change.value is None:
            held.pop(grant.key, None)
            if not held:
                del self._grants[grant.namespace]
        else:
            held[grant.key] = grant
        self._regranted.add(grant.namespace)
        return True

    def _apply_status(self, trigger: str, status: Status | None) -> None:
        if status is None:
            self._statuses.pop(trigger, None)
        else:
            self._statuses[trigger] = status
        live = self._by_trigger.get(trigger)
        if live is not None:
            self._put(Live(live.sub, live.version, status, live.refused))

    def _apply_subscription(self, trigger: str, sub: Subscription | None, offset: int) -> str | None:
        """``sub`` as read at ``offset`` (its origins resolved)."""
        before = self._remove(trigger)
        self._faults.pop(trigger, None)  # a new version is decided afresh
        if sub is not None:
            self._add(Live(sub, offset, self._statuses.get(trigger), self._refusal(trigger, sub.topic)))
        return None if before is None else before.sub.topic

    def _refusal(self, trigger: str, topic: str) -> Refusal | None:
        """Why the router must not read ``topic`` for ``trigger`` (the current version), or None."""
        fault = self._faults.get(trigger)
        # the name and the policy depend on the trigger's namespace, not its name: a million
        # subscriptions of a few namespaces and topics are decided a few times, not a million
        allowed = (trigger.rpartition("/")[0], topic) if trigger.count("/") == 2 else None
        if allowed is not None and allowed in self._allowed:
            return None if fault is None else fault[1]
        named = topic_name_refusal(topic)
        if named is not None:
            return named
        if self._policy is not None:
            namespace = trigger.split("/")[1] if trigger.count("/") == 2 else ""
            reason = feed_grants.still_allowed(self._policy, trigger, topic,
                                               self._grants.get(namespace, {}).values())
            if reason is not None:
                return Refusal(403, reason)
        if allowed is not None:
            if len(self._allowed) >= _ALLOWED_KEPT:
                self._allowed.clear()
            self._allowed.add(allowed)
        return None if fault is None else fault[1]

    def _remove(self, trigger: str) -> Live | None:
        before = self._by_trigger.pop(trigger, None)
        if before is not None and before.refused is None:
            on_topic = self._by_topic[before.sub.topic]
            del on_topic[trigger]
            if not on_topic:
                del self._by_topic[before.sub.topic]
        return before

    def _put(self, live: Live) -> None:
        self._remove(live.sub.trigger)
        self._add(live)

    def _add(self, live: Live) -> None:
        """``live``, whose trigger is not in the table."""
        trigger = live.sub.trigger
        self._by_trigger[trigger] = live
        if live.refused is None:
            self._by_topic.setdefault(live.sub.topic, {})[trigger] = live
        elif not live.reported:
            self._unreported.add(trigger)

    def recheck(self) -> list[tuple[str, str]]:
        """Decide again the subscriptions of the namespaces whose grants changed; returns
        (trigger, topic) of each whose refusal changed. One pass over the table, only after a
        grant changed (an operator's act, rare); while the table loads, once at its end."""
        if not self._regranted:
            return []
        namespaces, self._regranted = self._regranted, set()
        changed = []
        for trigger, live in list(self._by_trigger.items()):
            if trigger.split("/")[1] not in namespaces:
                continue
            refused = self._refusal(trigger, live.sub.topic)
            if refused != live.refused:
                self._put(Live(live.sub, live.version, live.status, refused))
                changed.append((trigger, live.sub.topic))
        return changed

    def fault(self, trigger: str, version: int, refusal: Refusal) -> bool:
        """The router found the subscription's topic gone or unreadable: refuse that version
        (until a newer version, or a restart, decides again). True if it was not refused yet."""
        live = self._by_trigger.get(trigger)
        if live is None or live.version != version or live.refused is not None:
            return False
        self._faults[trigger] = (version, refusal)
        self._put(Live(live.sub, live.version, live.status, refusal))
        return True

    def unreported(self) -> list[Live]:
        """The refused subscriptions whose status record is not in the table yet (each handed out once)."""
        triggers, self._unreported = self._unreported, set()
        found = [self._by_trigger.get(t) for t in triggers]
        return [live for live in found if live is not None and live.refused is not None and not live.reported]

    def get(self, trigger: str) -> Live | None:
        return self._by_trigger.get(trigger)

    def on_topic(self, topic: str) -> list[Live]:
        """The subscriptions the router reads ``topic`` for (refused ones are not among them)."""
        return list(self._by_topic.get(topic, {}).values())

    def topics(self) -> frozenset[str]:
        """The topics to subscribe to: those of subscriptions not refused."""
        return frozenset(self._by_topic)

    def grants_of(self, namespace: str) -> list[Grant]:
        """The live grants of ``namespace`` (the read API answers the feed's grant checks with them)."""
        return list(self._grants.get(namespace, {}).values())


class StatusWriter:
    """The firer's status hooks. ``send(key, value)`` writes to the subscriptions topic and waits
    for the acknowledgement. Repeated disables of the same trigger and version are written once."""

    def __init__(self, send: Callable[[bytes, bytes], Awaitable[object]],
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._send, self._clock_ms = send, clock_ms
        self._disabled: dict[str, int] = {}  # trigger -> configuration version this writer disabled

    async def on_refused(self, trigger: str, source: str, status_code: int) -> None:
        version = records.config_version_of(source)
        if version is None or status_code not in DISABLING_STATUSES or self._disabled.get(trigger) == version:
            return
        status = Status(status_code, records.disabled_message(status_code), version, self._clock_ms())
        await self._send(records.status_key(trigger), records.encode_status(status))
        if len(self._disabled) >= 10_000:
            self._disabled.clear()
        self._disabled[trigger] = version
        log.info("subscription disabled", extra={"fields": {
            "trigger": trigger, "status": status_code, "config": version}})

    async def on_no_rule(self, trigger: str, source: str) -> None:
        """Note that a fire of the subscription ran no rule (throttled by the caller, consumer.no_rule)."""
        version = records.config_version_of(source)
        if version is None or self._disabled.get(trigger) == version:
            return  # not a kafkaFeed envelope, or disabled already: a notice must not replace that
        notice = records.no_rule_notice(version, self._clock_ms())
        await self._send(records.status_key(trigger), records.encode_status(notice))
        log.info("subscription noted: a fire ran no rule", extra={"fields": {"trigger": trigger, "config": version}})


def status_writer(send: Callable[[bytes, bytes], Awaitable[object]],
                  clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> RefusalHook:
    """The refusal hook alone (``StatusWriter.on_refused``)."""
    return StatusWriter(send, clock_ms).on_refused
