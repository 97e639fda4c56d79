"""The router's table of subscriptions: trigger -> configuration, status, and the index by topic.

Built only from the changes of the compacted subscriptions topic (consumer.table), so it is
rebuilt identically on every start; applying a change is pure and synchronous. A record that
cannot be read is skipped with a warning (a newer writer's format, or garbage) and never stops
the router. A status applies only to the configuration version it names, so a newer CREATE or
UPDATE re-enables a disabled subscription (feed.records).

``status_writer`` is the firer's hook: on a permanent 401/403/404 for an envelope the router
built, it records the subscription as disabled for that configuration version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from consumer.table import Change
from feed import grants as feed_grants
from feed import records
from feed.grants import Grant
from feed.records import Status, Subscription
from messaging_lib.errors import RecordError

log = logging.getLogger("consumer.subscriptions")

# The firer's hook: (trigger FQN, envelope source, HTTP status) -> done.
RefusalHook = Callable[[str, str, int], Awaitable[None]]
DISABLING_STATUSES = frozenset({401, 403, 404})


@dataclass(frozen=True, slots=True)
class Live:
    """A subscription as the router serves it: origins resolved, its version, its status."""

    sub: Subscription
    version: int  # offset of its configuration record
    status: Status | None = None

    @property
    def disabled(self) -> bool:
        return self.status is not None and self.status.applies_to(self.version)


class SubscriptionIndex:
    def __init__(self) -> None:
        self.applied = -1  # offset of the last change applied
        self._by_trigger: dict[str, Live] = {}
        self._by_topic: dict[str, dict[str, Live]] = {}
        self._statuses: dict[str, Status] = {}
        self._grants: dict[str, dict[bytes, Grant]] = {}  # namespace -> grant key -> grant (few: the operator's)
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._by_trigger)

    def apply(self, change: Change) -> tuple[str, str | None] | None:
        """Apply one change; returns (trigger, the topic its subscription was on before, if any)
        when a subscription or its status changed."""
        self.applied = max(self.applied, change.offset)
        if feed_grants.is_grant_key(change.key):
            self._apply_grant(change)
            return None
        parsed = records.parse_key(change.key)
        if parsed is None:
            return None
        prefix, trigger = parsed
        try:
            if prefix == records.STATUS_PREFIX:
                self._apply_status(trigger, None if change.value is None else records.decode_status(change.value))
                return trigger, None
            else:
                sub = None if change.value is None else records.decode_subscription(change.value)
                if sub is not None and sub.trigger != trigger:
                    raise RecordError("the record's trigger does not match its key")
                return trigger, self._apply_subscription(trigger, sub, change.offset)
        except RecordError as e:
            self.skipped += 1
            log.warning("skipping a subscriptions record", extra={"fields": {
                "offset": change.offset, "trigger": trigger, "error": str(e)}})
        return None

    def _apply_grant(self, change: Change) -> None:
        """Kept for the read API (consumer.table_api): the feed checks a namespace's grants."""
        try:
            grant = feed_grants.parse_grant_key(change.key)
            if change.value is not None:
                feed_grants.decode_grant(change.key, change.value)
        except RecordError as e:
            self.skipped += 1
            log.warning("skipping a grant record", extra={"fields": {"offset": change.offset, "error": str(e)}})
            return
        held = self._grants.setdefault(grant.namespace, {})
        if change.value is None:
            held.pop(grant.key, None)
            if not held:
                del self._grants[grant.namespace]
        else:
            held[grant.key] = grant

    def _apply_status(self, trigger: str, status: Status | None) -> None:
        if status is None:
            self._statuses.pop(trigger, None)
        else:
            self._statuses[trigger] = status
        live = self._by_trigger.get(trigger)
        if live is not None:
            self._put(Live(live.sub, live.version, status))

    def _apply_subscription(self, trigger: str, sub: Subscription | None, offset: int) -> str | None:
        before = self._by_trigger.pop(trigger, None)
        if before is not None:
            on_topic = self._by_topic[before.sub.topic]
            del on_topic[trigger]
            if not on_topic:
                del self._by_topic[before.sub.topic]
        if sub is not None:
            self._put(Live(sub.resolved(offset), offset, self._statuses.get(trigger)))
        return None if before is None else before.sub.topic

    def _put(self, live: Live) -> None:
        self._by_trigger[live.sub.trigger] = live
        self._by_topic.setdefault(live.sub.topic, {})[live.sub.trigger] = live

    def get(self, trigger: str) -> Live | None:
        return self._by_trigger.get(trigger)

    def on_topic(self, topic: str) -> list[Live]:
        return list(self._by_topic.get(topic, {}).values())

    def topics(self) -> frozenset[str]:
        return frozenset(self._by_topic)

    def grants_of(self, namespace: str) -> list[Grant]:
        """The live grants of ``namespace`` (the read API answers the feed's grant checks with them)."""
        return list(self._grants.get(namespace, {}).values())


def status_writer(send: Callable[[bytes, bytes], Awaitable[object]],
                  clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> RefusalHook:
    """The firer's hook. ``send(key, value)`` writes to the subscriptions topic and waits for the
    acknowledgement. Repeats for the same trigger and version are written once."""
    written: dict[str, int] = {}

    async def on_refused(trigger: str, source: str, status_code: int) -> None:
        version = records.config_version_of(source)
        if version is None or status_code not in DISABLING_STATUSES or written.get(trigger) == version:
            return
        status = Status(status_code, records.disabled_message(status_code), version, clock_ms())
        await send(records.status_key(trigger), records.encode_status(status))
        if len(written) >= 10_000:
            written.clear()
        written[trigger] = version
        log.info("subscription disabled", extra={"fields": {
            "trigger": trigger, "status": status_code, "config": version}})

    return on_refused
