"""messagingWeb/kafkaFeed: the kafkaFeed feed's private web action (DESIGN.md section 6).

The public `messaging/kafkaFeed` (actions/forward.py) forwards every lifecycle event here with
the caller's key. Before anything is written the caller's key must read the trigger (a 404 is
allowed on DELETE, so a feed outlives its deleted trigger). The key is then sealed, scoped to that
one trigger, into the subscription record on the compacted subscriptions topic
(messaging_lib.subscriptions); the router reads that topic, so writing the record (and waiting for
Kafka's acknowledgement) is all a lifecycle event does:

    CREATE    validate, resolve startFrom into per-partition offsets now, write (replaces any
              earlier registration of the trigger)
    READ      {config, status}; the credential never appears
    UPDATE    change isJSONData / isBinaryKey / isBinaryValue / batch limits; re-seals the key and
              re-enables a disabled subscription
    DELETE    tombstones for the subscription and its status; succeeds for unknown triggers
    PAUSE     the subscription stops at the topic's current end offsets (nothing fires after)
    UNPAUSE   it resumes exactly there

READ, UPDATE, PAUSE and UNPAUSE find the trigger's records by reading the subscriptions topic from
its start: cost proportional to the number of subscriptions (fine for v1; an index would go in a
later version). Messages for the parameters shared with the old feed use its exact wording.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from actions.web import support
from messaging_lib import envelope, topics
from messaging_lib import subscriptions as records
from messaging_lib.errors import ConfigError, RecordError
from messaging_lib.kafka_config import KafkaSettings
from messaging_lib.subscriptions import Options, Segment, Status, Subscription

NOT_AUTHORIZED = "You are not authorized for this trigger."
UPDATE_NEEDS = ("At least one of isJsonData, isBinaryKey, or isBinaryValue must be supplied "
                "(or a batch limit: maxBatchBytes, maxBatchMessages, batchWindowMs).")
BOOLEANS = {"isJSONData": "is_json_data", "isBinaryKey": "is_binary_key", "isBinaryValue": "is_binary_value"}
LATEST, EARLIEST = "latest", "earliest"

_consumers: dict[KafkaSettings, KafkaConsumer] = {}


def main(params: dict) -> dict:
    return support.respond(feed, params)


def feed(params: dict) -> dict:
    handler = HANDLERS.get(str(params.get("lifecycleEvent", "")).upper())
    if handler is None:
        raise support.ActionError("unsupported lifecycleEvent")
    who = support.caller(params)
    if params.get("triggerName") in (None, ""):
        raise support.ActionError("You must supply a 'triggerName' parameter.")
    namespace, name = support.trigger_param(params, who, "triggerName")
    return handler(params, who, envelope.trigger_fqn(namespace, name))


# --- lifecycle events ---------------------------------------------------------------------------


def create(params: dict, who: support.Caller, fqn: str) -> dict:
    topic = params.get("topic")
    if not isinstance(topic, str) or not topic.strip():
        raise support.ActionError("You must supply a 'topic' parameter.")
    topic = topic.strip()
    options = _options(params, Options(max_batch_bytes=_payload_cap(params)), params)
    start_from = _start_from(params)
    _check_brokers(params)
    _check_owner(who, fqn)
    consumer = _consumer(params)
    start = _offsets(consumer, topic, start_from)
    now = _now_ms()
    sub = Subscription(trigger=fqn, topic=topic, credential=_seal(params, who, fqn), options=options,
                       start_from=start_from, segments=(Segment(None, start),), created_ms=now, updated_ms=now)
    _write(params, records.subscription_key(fqn), records.encode_subscription(sub))
    return {"triggerName": fqn, "topic": topic, "startFrom": start_from, "status": records.ACTIVE}


def read(params: dict, who: support.Caller, fqn: str) -> dict:
    _check_owner(who, fqn)
    version, sub, status = _current(params, fqn)
    return {"config": _config(sub), "status": _status(sub, version, status)}


def update(params: dict, who: support.Caller, fqn: str) -> dict:
    changes = {name: params[name] for name in (*BOOLEANS, "maxBatchBytes", "maxBatchMessages", "batchWindowMs")
               if params.get(name) is not None}
    if not changes:
        raise support.ActionError(UPDATE_NEEDS)
    _check_owner(who, fqn)
    _, current, _ = _current(params, fqn)
    topic = params.get("topic")
    if topic is not None and topic != current.topic:
        raise support.ActionError("The topic of a subscription cannot be changed: delete the trigger and create "
                                  "it again with the new topic.")
    options = _options(changes, current.options, params)
    sub = replace(current, options=options, credential=_seal(params, who, fqn), updated_ms=_now_ms())
    _write(params, records.subscription_key(fqn), records.encode_subscription(sub))
    return {"triggerName": fqn, "status": sub.state}


def delete(params: dict, who: support.Caller, fqn: str) -> dict:
    _check_owner(who, fqn, allow_missing=True)
    _write(params, records.subscription_key(fqn), None)
    _write(params, records.status_key(fqn), None)
    return {"triggerName": fqn, "deleted": True}


def pause(params: dict, who: support.Caller, fqn: str) -> dict:
    _check_owner(who, fqn)
    _, current, _ = _current(params, fqn)
    if not current.paused:
        ends = _offsets(_consumer(params), current.topic, LATEST)
        _write(params, records.subscription_key(fqn), records.encode_subscription(current.paused_at(ends, _now_ms())))
    return {"triggerName": fqn, "status": records.PAUSED}


def unpause(params: dict, who: support.Caller, fqn: str) -> dict:
    _check_owner(who, fqn)
    _, current, _ = _current(params, fqn)
    if current.paused:
        _write(params, records.subscription_key(fqn), records.encode_subscription(current.unpaused(_now_ms())))
    return {"triggerName": fqn, "status": records.ACTIVE}


HANDLERS = {"CREATE": create, "READ": read, "UPDATE": update, "DELETE": delete, "PAUSE": pause,
            "UNPAUSE": unpause}


# --- parameters ---------------------------------------------------------------------------------


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise support.ActionError(f"The '{name}' parameter must be true or false.")


def _number(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise support.ActionError(f"The '{name}' parameter must be a whole number from {low} to {high}.")
    return value


def _payload_cap(params: dict) -> int:
    return int(params.get("max_payload_bytes") or envelope.DEFAULT_MAX_PAYLOAD_BYTES)


def _options(given: dict, base: Options, params: dict) -> Options:
    """``base`` with the options found in ``given``; the JSON/binary conflict is checked on the result."""
    changes: dict[str, object] = {field: _flag(name, given[name]) for name, field in BOOLEANS.items()
                                  if given.get(name) is not None}
    limits = {"maxBatchBytes": ("max_batch_bytes", 1, _payload_cap(params)),
              "maxBatchMessages": ("max_batch_messages", 1, records.MAX_BATCH_MESSAGES),
              "batchWindowMs": ("batch_window_ms", 0, records.MAX_BATCH_WINDOW_MS)}
    for name, (field, low, high) in limits.items():
        if given.get(name) is not None:
            changes[field] = _number(name, given[name], low, high)
    options = replace(base, **changes)  # type: ignore[arg-type]
    if options.is_json_data and options.is_binary_value:
        raise support.ActionError("isJSONData and isBinaryValue cannot both be enabled.")
    return options


def _start_from(params: dict) -> str:
    value = params.get("startFrom")
    if value is None or value == "":
        return LATEST
    if isinstance(value, str) and value.strip().lower() in (LATEST, EARLIEST):
        return value.strip().lower()
    if isinstance(value, str):
        try:
            _timestamp_ms(value)
            return value.strip()
        except ValueError:
            pass
    raise support.ActionError("The 'startFrom' parameter must be latest, earliest or an ISO 8601 timestamp, "
                              "e.g. 2024-05-01T12:00:00Z.")


def _timestamp_ms(text: str) -> int:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _check_brokers(params: dict) -> None:
    """``brokers`` (required by the old feed) may be given, but only naming this service's cluster."""
    raw = params.get("brokers")
    if raw is None or raw == "":
        return
    given = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else None
    if given is None or not all(isinstance(b, str) for b in given):
        raise support.ActionError("You must supply a 'brokers' parameter as an array of Message Hub brokers.")
    own = set(_kafka_settings(params).bootstrap_servers)
    if not {b.strip() for b in given if b.strip()} <= own:
        raise support.ActionError("The 'brokers' parameter must name this messaging service's Kafka cluster: "
                                  "kafkaFeed subscribes triggers to topics of that cluster only.")


# --- OpenWhisk and the caller -------------------------------------------------------------------


def _check_owner(who: support.Caller, fqn: str, allow_missing: bool = False) -> None:
    namespace, name = envelope.parse_trigger_fqn(fqn)
    try:
        support.check_trigger_access(who, namespace, name)
    except support.ActionError as e:
        if e.status == 404 and allow_missing:
            return
        if e.status in (401, 403, 404):
            raise support.ActionError(NOT_AUTHORIZED, 401) from None
        raise


def _seal(params: dict, who: support.Caller, fqn: str) -> str:
    return support.sealer(params).seal(who.api_key, [fqn])


# --- Kafka --------------------------------------------------------------------------------------


def _kafka_settings(params: dict) -> KafkaSettings:
    try:
        return KafkaSettings.from_params(params)
    except ConfigError as e:
        raise support.ActionError(f"the messaging service is misconfigured: {e}", 503) from None


def _consumer(params: dict) -> KafkaConsumer:
    """One group-less consumer per Kafka configuration, kept warm, for offsets and table reads."""
    settings = _kafka_settings(params)
    if settings not in _consumers:
        _consumers[settings] = KafkaConsumer(**settings.client_kwargs(), group_id=None, enable_auto_commit=False,
                                             max_partition_fetch_bytes=4 * 1024 * 1024,
                                             request_timeout_ms=20_000)
    return _consumers[settings]


def _subscriptions_topic(params: dict) -> str:
    return support.topic(params, "subscriptions_topic", topics.SUBSCRIPTIONS_TOPIC)


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    try:
        consumer.topics()  # fresh metadata: a partition added lately must not be missed
        partitions = consumer.partitions_for_topic(topic)
    except KafkaError as e:
        raise support.ActionError(f"Kafka is unavailable: {type(e).__name__}", 503) from None
    if not partitions:
        raise support.ActionError(f"Topic does not exist. You must create the topic first: {topic}")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def _offsets(consumer: KafkaConsumer, topic: str, start_from: str) -> dict[int, int]:
    """Per partition: where ``start_from`` is now (the end offset where a timestamp is past the end)."""
    partitions = _partitions(consumer, topic)
    try:
        ends = consumer.end_offsets(partitions)
        if start_from == LATEST:
            found = ends
        elif start_from == EARLIEST:
            found = consumer.beginning_offsets(partitions)
        else:
            at = consumer.offsets_for_times(dict.fromkeys(partitions, _timestamp_ms(start_from)))
            found = {tp: ends[tp] if at.get(tp) is None else at[tp].offset for tp in partitions}
    except KafkaError as e:
        raise support.ActionError(f"Kafka is unavailable: {type(e).__name__}", 503) from None
    return {tp.partition: offset for tp, offset in found.items()}


def _write(params: dict, key: bytes, value: bytes | None) -> None:
    """Write a record and wait for Kafka's acknowledgement (the router reads it from there)."""
    try:
        support.producer(params).send(_subscriptions_topic(params), key=key, value=value).get(
            timeout=support.deadline_timeout_s())
    except KafkaError as e:
        raise support.ActionError(f"Kafka did not accept the subscription: {type(e).__name__}", 503) from None


def _current(params: dict, fqn: str) -> tuple[int, Subscription, Status | None]:
    """The trigger's subscription (version, resolved) and status, read from the start of the topic."""
    found = _scan(params, {records.subscription_key(fqn), records.status_key(fqn)})
    config = found.get(records.subscription_key(fqn))
    if config is None or config[1] is None:
        raise support.ActionError(f"The trigger {fqn} has no kafkaFeed subscription.", 404)
    version, value = config
    status_record = found.get(records.status_key(fqn))
    try:
        sub = records.decode_subscription(value).resolved(version)
        status = None if status_record is None or status_record[1] is None else records.decode_status(
            status_record[1])
    except RecordError as e:
        raise support.ActionError(f"the subscription of {fqn} cannot be read: {e}", 500) from None
    return version, sub, status


def _scan(params: dict, keys: set[bytes]) -> dict[bytes, tuple[int, bytes | None]]:
    consumer = _consumer(params)
    tp = TopicPartition(_subscriptions_topic(params), 0)
    deadline = time.monotonic() + support.deadline_timeout_s()
    found: dict[bytes, tuple[int, bytes | None]] = {}
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise support.ActionError("reading the subscriptions took too long", 503)
            for batch in consumer.poll(timeout_ms=500, max_records=10_000).values():
                for record in batch:
                    if record.offset < end and record.key in keys:
                        found[record.key] = (record.offset, record.value)
    except KafkaError as e:
        raise support.ActionError(f"Kafka is unavailable: {type(e).__name__}", 503) from None
    return found


# --- READ ---------------------------------------------------------------------------------------


def _config(sub: Subscription) -> dict:
    options = sub.options
    return {"triggerName": sub.trigger, "topic": sub.topic, "isJSONData": options.is_json_data,
            "isBinaryKey": options.is_binary_key, "isBinaryValue": options.is_binary_value,
            "startFrom": sub.start_from, "maxBatchBytes": options.max_batch_bytes,
            "maxBatchMessages": options.max_batch_messages, "batchWindowMs": options.batch_window_ms}


def _status(sub: Subscription, version: int, status: Status | None) -> dict:
    if status is not None and status.applies_to(version):
        return _status_body(records.DISABLED, status.updated_ms,
                            {"kind": "AUTO", "statusCode": status.status_code, "message": status.message})
    if sub.paused:
        return _status_body(records.PAUSED, sub.updated_ms,
                            {"kind": "USER", "message": "Paused by the PAUSE lifecycle event; UNPAUSE resumes "
                                                        "where it stopped."})
    return _status_body(records.ACTIVE, sub.updated_ms, None)


def _status_body(state: str, changed_ms: int, reason: dict | None) -> dict:
    body: dict = {"active": state == records.ACTIVE, "state": state, "dateChanged": changed_ms,
                  "dateChangedISO": envelope.format_time(datetime.fromtimestamp(changed_ms / 1000, UTC))}
    if reason is not None:
        body["reason"] = reason
    return body


def _now_ms() -> int:
    return int(time.time() * 1000)
