"""messagingWeb/token: a sealed credential for producers outside OpenWhisk (DESIGN.md section 4).

`trigger` names one trigger, or `*` (or `/ns/*`) for every trigger of the caller's namespace.
The caller's key must own what it asks for. `ttl` is the credential's life in seconds (default
one day, at most the operator's `token_max_ttl_s`, default 30 days): it fires nothing after that,
so a producer asks for a new one before. Answers the credential, its scope and expiry, where to
produce (the bootstrap servers and the topic), the record key, and an example envelope to copy into
any Kafka producer. Nothing else of the service's Kafka settings is shown: its credentials are not
the producer's, and the answer is meant to be pasted.

The bootstrap servers are the ones external producers use: the operator binds them as
``external_kafka_bootstrap_servers`` when the web actions reach Kafka under another name (an
internal listener); unset or empty, they are the web actions' own ``kafka_bootstrap_servers``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from actions.web import support
from messaging_lib import credentials, envelope, topics

INTERFACE = frozenset({"trigger", "ttl"})


def main(params: dict) -> dict:
    return support.respond(token, params)


def token(params: dict) -> dict:
    support.check_interface(params, INTERFACE, "token")
    ttl_s = lifetime(params)
    who = support.caller(params)
    raw = params.get("trigger")
    if isinstance(raw, str) and (raw == "*" or raw.endswith("/*")):
        named = raw[:-1].strip("/")  # "*" -> "", "/_/*" -> "_", "/ns/*" -> "ns"
        namespace = who.namespace if named in ("", "_") else named
        if not namespace or "/" in namespace:
            raise support.ActionError(f"parameter 'trigger' {raw!r} is not *, /_/* or /namespace/*")
        support.check_namespace_access(who, namespace)
        scope, example_trigger = f"/{namespace}/*", f"/{namespace}/myTrigger"
    else:
        namespace, trigger = support.trigger_param(params, who)
        support.check_trigger_access(who, namespace, trigger)
        scope = example_trigger = f"/{namespace}/{trigger}"
    sealer = support.sealer(params)
    credential = sealer.seal(who.api_key, [scope], ttl_s=ttl_s)
    expires = sealer.open(credential).exp or 0
    example = envelope.new_envelope(source="/my/producer", trigger=example_trigger, credential=credential,
                                    data={"hello": "world"})
    return {
        "credential": credential,
        "scope": [scope],
        "bootstrap_servers": external_bootstrap_servers(params),
        "ttl": ttl_s,
        "expires": envelope.format_time(datetime.fromtimestamp(expires, UTC)),
        "topic": support.topic(params, "trigger_messages_topic", topics.TRIGGER_MESSAGES_TOPIC),
        "key": example_trigger,
        "envelope": json.loads(envelope.to_structured(example)),
    }


def external_bootstrap_servers(params: dict) -> str:
    """``host:port,...`` as producers outside OpenWhisk reach the cluster (kcat ``-b`` and kafka-python's
    ``bootstrap_servers`` take it as it is)."""
    bound = params.get("external_kafka_bootstrap_servers")
    if bound is None or bound == "":
        return ",".join(support.kafka_settings(params).bootstrap_servers)
    if not isinstance(bound, str) or not [s for s in bound.split(",") if s.strip()]:
        raise support.ActionError("the messaging service is misconfigured: external_kafka_bootstrap_servers must be "
                                  "host:port,...", 503)
    return ",".join(s.strip() for s in bound.split(",") if s.strip())


def lifetime(params: dict) -> int:
    """The ``ttl`` asked for (seconds), within 1..token_max_ttl_s; the default is capped at that maximum."""
    most = support.seconds(params, "token_max_ttl_s", credentials.DEFAULT_TOKEN_MAX_TTL_S)
    raw = params.get("ttl")
    if raw is None or raw == "":
        return min(credentials.DEFAULT_TOKEN_TTL_S, most)
    whole = isinstance(raw, int | str) and not isinstance(raw, bool) and str(raw).strip().isdigit()
    ttl = int(raw) if whole else 0
    if not 1 <= ttl <= most:
        raise support.ActionError(f"parameter 'ttl' must be a whole number of seconds from 1 to {most}")
    return ttl
