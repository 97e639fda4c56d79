"""messagingWeb/produce: publish one trigger message (DESIGN.md sections 3, 4, 7).

Checks that the caller owns the trigger, seals the caller's key scoped to that one trigger for a
short life (``produce_credential_ttl_s``, default the retry window plus a margin), and
writes the envelope to the trigger-messages topic, keyed by the trigger FQN so messages of one
trigger stay in order. Answers `{id, trigger, topic, partition, offset}` once Kafka acknowledged.
"""

from __future__ import annotations

import dataclasses

from actions.common import time_left_s
from actions.web import support
from feed.errors import kafka_errors
from messaging_lib import credentials, envelope, topics
from messaging_lib.errors import BadMessage

INTERFACE = frozenset({"trigger", "payload", "id"})


def main(params: dict) -> dict:
    return support.respond(produce, params)


def produce(params: dict) -> dict:
    support.check_interface(params, INTERFACE, "produce")
    who = support.caller(params)
    namespace, trigger = support.trigger_param(params, who)
    payload = params.get("payload", {})
    if not isinstance(payload, dict):
        raise support.ActionError(f"parameter 'payload' must be a JSON object, got {type(payload).__name__}")
    message_id = params.get("id")
    if message_id is not None and (not isinstance(message_id, str) or not message_id):
        raise support.ActionError("parameter 'id' must be a non-empty string")
    support.check_trigger_access(who, namespace, trigger)
    fqn = f"/{namespace}/{trigger}"
    ttl_s = support.seconds(params, "produce_credential_ttl_s", credentials.DEFAULT_PRODUCE_TTL_S)
    credential = support.sealer(params).seal(who.api_key, [fqn], ttl_s=ttl_s)
    limit = int(params.get("max_payload_bytes") or envelope.DEFAULT_MAX_PAYLOAD_BYTES)
    try:
        env = envelope.new_envelope(source=f"/{namespace}/messaging/produce", trigger=fqn, credential=credential,
                                    data=payload, max_payload_bytes=limit)
        if message_id is not None:
            env = dataclasses.replace(env, id=message_id)
    except BadMessage as e:
        raise support.ActionError(f"parameter 'payload' cannot be sent: {e}") from None
    topic = support.topic(params, "trigger_messages_topic", topics.TRIGGER_MESSAGES_TOPIC)
    with kafka_errors("Kafka did not accept the message"):
        sent = support.producer(params).send(
            topic, key=envelope.record_key(env), value=envelope.to_structured(env),
            headers=envelope.structured_headers()).get(timeout=time_left_s())
    return {"id": env.id, "trigger": fqn, "topic": topic, "partition": sent.partition, "offset": sent.offset}
