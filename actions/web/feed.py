"""messagingWeb/kafkaFeed: the kafkaFeed feed's private web action (DESIGN.md section 6).

The public `messaging/kafkaFeed` (actions/forward.py) forwards every lifecycle event here with the
caller's key. This entry point only parses the request and wires the lifecycle (feed.lifecycle) to
the caller's OpenWhisk checks and to the subscriptions: a router's read API (feed.store.RouterStore,
at the bound ``subscriptions_api_url``) over the topic (feed.store.KafkaStore), or the topic alone
when no URL is bound.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from kafka import KafkaConsumer

from actions.common import ActionError, time_left_s
from actions.web import support
from feed import lookup
from feed.grants import TopicPolicy
from feed.lifecycle import EVENTS, Lifecycle
from feed.options import OPTIONS
from feed.store import KafkaStore, RouterStore, SubscriptionStore
from messaging_lib import envelope, topics
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

_consumers: OrderedDict[KafkaSettings, KafkaConsumer] = OrderedDict()
# What OpenWhisk sends a feed action (lifecycleEvent, triggerName; authKey is the forwarder's), the
# feed's parameters (manifest.yaml, feed.options) and `brokers` (the old feed's; checked by the lifecycle).
INTERFACE = frozenset({"lifecycleEvent", "triggerName", "topic", "startFrom", "brokers",
                       *(option.name for option in OPTIONS)})


def main(params: dict) -> dict:
    return support.respond(feed, params)


def feed(params: dict) -> dict:
    support.check_interface(params, INTERFACE, "kafkaFeed")
    event = str(params.get("lifecycleEvent", "")).upper()
    if event not in EVENTS:
        raise ActionError("unsupported lifecycleEvent")
    who = support.caller(params)
    if params.get("triggerName") in (None, ""):
        raise ActionError("You must supply a 'triggerName' parameter.")
    namespace, name = support.trigger_param(params, who, "triggerName")
    lifecycle = Lifecycle(lambda: _store(params), _Caller(params, who), policy=_policy(params))
    return lifecycle.handle(event, envelope.trigger_fqn(namespace, name), params)


@dataclass(frozen=True)
class _Caller:
    """feed.lifecycle.Caller through the OpenWhisk API and the service's sealing keys."""

    params: dict
    who: support.Caller

    def check_trigger(self, fqn: str) -> None:
        support.check_trigger_access(self.who, *envelope.parse_trigger_fqn(fqn))

    def seal(self, fqn: str) -> str:
        return support.sealer(self.params).seal_subscription(self.who.api_key, fqn)


def _policy(params: dict) -> TopicPolicy:
    """The operator's topic policy, from the bound parameters (feed.grants)."""
    try:
        return TopicPolicy.from_settings(params)
    except ConfigError as e:
        raise ActionError(f"the messaging service is misconfigured: {e}", 503) from None


def _store(params: dict) -> SubscriptionStore:
    """The subscriptions topic through clients kept warm per Kafka configuration, read through the
    routers' API when ``subscriptions_api_url`` is bound (and the topic when they cannot answer)."""
    settings = support.kafka_settings(params)
    kafka = KafkaStore(lambda: _consumer(settings), lambda: support.producer(params),
                       support.topic(params, "subscriptions_topic", topics.SUBSCRIPTIONS_TOPIC),
                       settings.bootstrap_servers, time_left_s)
    url = params.get("subscriptions_api_url")
    if not isinstance(url, str) or not url.strip():
        return kafka
    try:
        secret = lookup.api_secrets(str(params.get("sealing_keys") or ""))[0]
    except ConfigError:  # no keys: nothing to sign with (the lifecycle refuses what needs them)
        return kafka
    return RouterStore(kafka, url.strip(), secret, time_left_s)


def _consumer(settings: KafkaSettings) -> KafkaConsumer:
    """One group-less consumer per Kafka configuration, for positions and reading the subscriptions."""
    return support.cached(_consumers, settings, lambda: KafkaConsumer(
        **settings.client_kwargs(), group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024, request_timeout_ms=20_000), support.close_client)
