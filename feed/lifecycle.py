"""The kafkaFeed lifecycle: what each event does to a trigger's records (DESIGN.md section 6).

Before anything is written the caller's key must read the trigger (a 404 is allowed on DELETE, so
a feed outlives its deleted trigger). The key is then sealed, scoped to that one trigger, into the
subscription record (feed.records); the router reads the subscriptions topic, so writing the
record (and waiting for the acknowledgement) is all an event does:

    CREATE    validate, resolve startFrom into per-partition offsets now, write (replaces any
              earlier registration of the trigger)
    READ      {config, status}; config names the cluster (brokers) as the old READ did; the
              credential never appears
    UPDATE    change any option of the table (feed.options); re-seals the key and re-enables a
              disabled subscription
    DELETE    tombstones for the subscription and its status; succeeds for unknown triggers
    PAUSE     the subscription stops at the topic's current end offsets (nothing fires after)
    UNPAUSE   it resumes exactly there

The store is opened on first use, so a misconfigured service is reported after the parameters
and the caller were checked. Messages for the parameters shared with the old feed use its
exact wording.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from feed import grants as feed_grants
from feed import options as feed_options
from feed import records
from feed.errors import FeedError
from feed.grants import TopicPolicy
from feed.options import EARLIEST, LATEST, Options
from feed.records import Segment, Status, Subscription
from feed.store import At, SubscriptionStore
from messaging_lib import envelope
from messaging_lib.errors import RecordError

EVENTS = ("CREATE", "READ", "UPDATE", "DELETE", "PAUSE", "UNPAUSE")
NOT_AUTHORIZED = "You are not authorized for this trigger."
NEEDS_TOPIC = "You must supply a 'topic' parameter."
TOPIC_IS_FIXED = ("The topic of a subscription cannot be changed: delete the trigger and create it again with the "
                  "new topic.")
NEEDS_BROKERS = "You must supply a 'brokers' parameter."
BROKERS_SHAPE = "You must supply a 'brokers' parameter as an array of Message Hub brokers."
BROKERS_ELSEWHERE = ("The 'brokers' parameter must name this messaging service's Kafka cluster: kafkaFeed "
                     "subscribes triggers to topics of that cluster only.")
PAUSED_REASON = "Paused by the PAUSE lifecycle event; UNPAUSE resumes where it stopped."


class Caller(Protocol):
    """The caller, as OpenWhisk knows them (the web action asks with the caller's key)."""

    def check_trigger(self, fqn: str) -> None:
        """Pass if the caller's key can read the trigger; else ``FeedError`` with OpenWhisk's status."""
        ...

    def seal(self, fqn: str) -> str:
        """The caller's key sealed for this one trigger."""
        ...


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Lifecycle:
    """One caller's lifecycle events against the store ``open_store`` opens (once, when needed)."""

    def __init__(self, open_store: Callable[[], SubscriptionStore], caller: Caller,
                 now_ms: Callable[[], int] = wall_clock_ms, policy: TopicPolicy | None = None) -> None:
        self._open_store = open_store
        self._store: SubscriptionStore | None = None
        self._caller, self._now_ms = caller, now_ms
        self._policy = TopicPolicy() if policy is None else policy  # default: explicit grants only

    def handle(self, event: str, fqn: str, params: Mapping[str, object]) -> dict:
        """``event`` (one of EVENTS) for the trigger ``fqn``, with the request's parameters."""
        handlers = {"CREATE": self.create, "READ": self.read, "UPDATE": self.update, "DELETE": self.delete,
                    "PAUSE": self.pause, "UNPAUSE": self.unpause}
        return handlers[event](fqn, params)

    # --- events ---------------------------------------------------------------------------------

    def create(self, fqn: str, params: Mapping[str, object]) -> dict:
        topic = params.get("topic")
        if not isinstance(topic, str) or not topic.strip():
            raise FeedError(NEEDS_TOPIC)
        topic = topic.strip()
        cap = payload_cap(params)
        options = feed_options.parse(params, Options(max_batch_bytes=cap), cap)
        start_from = feed_options.parse_start_from(params)
        self._check_brokers(params)
        self._check_owner(fqn)
        self._check_topic(fqn, topic)
        start = self.store().positions(topic, _at(start_from))
        now = self._now_ms()
        sub = Subscription(trigger=fqn, topic=topic, credential=self._caller.seal(fqn), options=options,
                           start_from=start_from, segments=(Segment(None, start),), created_ms=now, updated_ms=now)
        self._write_subscription(sub)
        return {"triggerName": fqn, "topic": topic, "startFrom": start_from, "status": records.ACTIVE}

    def read(self, fqn: str, params: Mapping[str, object]) -> dict:
        self._check_owner(fqn)
        version, sub, status, grants = self._current(fqn, with_grants=True)
        revoked = feed_grants.still_allowed(self._policy, fqn, sub.topic, grants)
        return {"config": config_view(sub, self.store().bootstrap_servers),
                "status": status_view(sub, version, status, revoked)}

    def update(self, fqn: str, params: Mapping[str, object]) -> dict:
        changes = feed_options.given(params)
        if not changes:
            raise FeedError(feed_options.UPDATE_NEEDS)
        self._check_owner(fqn)
        _, current, _, _ = self._current(fqn)
        topic = params.get("topic")
        if topic is not None and topic != current.topic:
            raise FeedError(TOPIC_IS_FIXED)
        self._check_topic(fqn, current.topic)  # a revoked grant is not re-enabled by an UPDATE
        options = feed_options.parse(changes, current.options, payload_cap(params))
        sub = replace(current, options=options, credential=self._caller.seal(fqn), updated_ms=self._now_ms())
        self._write_subscription(sub)
        return {"triggerName": fqn, "status": sub.state}

    def delete(self, fqn: str, params: Mapping[str, object]) -> dict:
        self._check_owner(fqn, allow_missing=True)
        self.store().write(records.subscription_key(fqn), None)
        self.store().write(records.status_key(fqn), None)
        return {"triggerName": fqn, "deleted": True}

    def pause(self, fqn: str, params: Mapping[str, object]) -> dict:
        self._check_owner(fqn)
        _, current, _, _ = self._current(fqn)
        if not current.paused:
            ends = self.store().positions(current.topic, LATEST)
            self._write_subscription(current.paused_at(ends, self._now_ms()))
        return {"triggerName": fqn, "status": records.PAUSED}

    def unpause(self, fqn: str, params: Mapping[str, object]) -> dict:
        self._check_owner(fqn)
        _, current, _, _ = self._current(fqn)
        if current.paused:
            self._write_subscription(current.unpaused(self._now_ms()))
        return {"triggerName": fqn, "status": records.ACTIVE}

    # --- steps ----------------------------------------------------------------------------------

    def store(self) -> SubscriptionStore:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _check_owner(self, fqn: str, allow_missing: bool = False) -> None:
        try:
            self._caller.check_trigger(fqn)
        except FeedError as e:
            if e.status == 404 and allow_missing:
                return
            if e.status in (401, 403, 404):
                raise FeedError(NOT_AUTHORIZED, 401) from None
            raise

    def _check_topic(self, fqn: str, topic: str) -> None:
        """The operator's topic policy (feed.grants): 403 with the reason unless the namespace may
        read ``topic``. Grants are read only when the fixed rules do not decide."""
        namespace = envelope.parse_trigger_fqn(fqn).namespace
        never = self._policy.never_subscribable(topic)
        if never is not None:
            raise FeedError(never, 403)
        own = self._policy.prefix_of(namespace)
        if own is not None and topic.startswith(own):
            return
        found = self.store().latest((), [feed_grants.namespace_key_prefix(namespace)])
        reason = feed_grants.refusal(self._policy, namespace, topic, feed_grants.grants_from(found))
        if reason is not None:
            raise FeedError(reason, 403)

    def _check_brokers(self, params: Mapping[str, object]) -> None:
        """``brokers`` (required by the old feed) may be left out; given, it must name this service's
        cluster. A value that names no broker is refused with the old feed's texts: an empty or blank
        string as missing, an empty array (or one of blanks) as not an array of brokers."""
        raw = params.get("brokers")
        if raw is None:
            return
        given = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else None
        if given is None or not all(isinstance(b, str) for b in given):
            raise FeedError(BROKERS_SHAPE)
        named = {b.strip() for b in given if b.strip()}
        if not named:
            raise FeedError(NEEDS_BROKERS if isinstance(raw, str) else BROKERS_SHAPE)
        if not named <= self.store().bootstrap_servers:
            raise FeedError(BROKERS_ELSEWHERE)

    def _current(self, fqn: str, with_grants: bool = False
                 ) -> tuple[int, Subscription, Status | None, list[feed_grants.Grant]]:
        """The trigger's subscription (its version, resolved), status, and (``with_grants``) the
        grants of its namespace, in one read."""
        prefixes = [feed_grants.namespace_key_prefix(envelope.parse_trigger_fqn(fqn).namespace)] if with_grants else []
        found = self.store().latest({records.subscription_key(fqn), records.status_key(fqn)}, prefixes)
        version, value = found.get(records.subscription_key(fqn), (0, None))
        if value is None:
            raise FeedError(f"The trigger {fqn} has no kafkaFeed subscription.", 404)
        _, status_value = found.get(records.status_key(fqn), (0, None))
        try:
            sub = records.decode_subscription(value).resolved(version)
            status = None if status_value is None else records.decode_status(status_value)
        except RecordError as e:
            raise FeedError(f"the subscription of {fqn} cannot be read: {e}", 500) from None
        return version, sub, status, feed_grants.grants_from(found)

    def _write_subscription(self, sub: Subscription) -> None:
        self.store().write(records.subscription_key(sub.trigger), records.encode_subscription(sub))


# --- parameters and READ ------------------------------------------------------------------------


def payload_cap(params: Mapping[str, object]) -> int:
    """The service's limit on a fired payload (the bound parameter max_payload_bytes)."""
    bound: Any = params.get("max_payload_bytes")  # an integer bound on the package by the operator
    return int(bound or envelope.DEFAULT_MAX_PAYLOAD_BYTES)


def _at(start_from: str) -> At:
    return start_from if start_from in (LATEST, EARLIEST) else feed_options.timestamp_ms(start_from)


def config_view(sub: Subscription, brokers: Iterable[str]) -> dict:
    """READ's config: the old package's keys first, then this feed's. ``brokers`` is the cluster the
    subscription reads (this service's), as an array a CREATE would accept, as the old READ showed it."""
    return {"triggerName": sub.trigger, "topic": sub.topic, **feed_options.read_view(sub.options, legacy=True),
            "brokers": sorted(brokers), "startFrom": sub.start_from,
            **feed_options.read_view(sub.options, legacy=False)}


def status_view(sub: Subscription, version: int, status: Status | None, revoked: str | None = None) -> dict:
    """READ's status in the old package's shape: {active, dateChanged, reason?}, plus state and an ISO time.

    ``revoked``: why the topic policy refuses the subscription now (a revoked grant); it shows as
    disabled (403) even before the router has written its status record. A notice (a status that
    does not disable, e.g. the last fire ran no rule) shows as the reason of an active status."""
    current = status if status is not None and status.applies_to(version) else None
    if current is not None and current.disables:
        return _status_body(records.DISABLED, current.updated_ms,
                            {"kind": "AUTO", "statusCode": current.status_code, "message": current.message})
    if revoked is not None:
        return _status_body(records.DISABLED, sub.updated_ms, {"kind": "AUTO", "statusCode": 403, "message": revoked})
    if sub.paused:
        return _status_body(records.PAUSED, sub.updated_ms, {"kind": "USER", "message": PAUSED_REASON})
    if current is not None:
        return _status_body(records.ACTIVE, current.updated_ms,
                            {"kind": "AUTO", "statusCode": current.status_code, "message": current.message})
    return _status_body(records.ACTIVE, sub.updated_ms, None)


def _status_body(state: str, changed_ms: int, reason: dict | None) -> dict:
    body: dict = {"active": state == records.ACTIVE, "state": state, "dateChanged": changed_ms,
                  "dateChangedISO": envelope.format_time(datetime.fromtimestamp(changed_ms / 1000, UTC))}
    if reason is not None:
        body["reason"] = reason
    return body
