"""The router's defence in depth on real Kafka (issue 11): one subscription cannot take the others down.

Subscription records are written straight into the compacted subscriptions topic, as anyone with
write access could, bypassing the feed and its policy: the router refuses them (status record,
never subscribed) and keeps every other subscription firing. A subscribed topic deleted under the
router disables that subscription alone. Envelopes the router writes carry short-lived
credentials; a subscription's own credential put into an envelope fires nothing. One real
`python -m consumer` (firer and router) serves the module; the good subscriptions are made with
the real wsk CLI through the deployed feed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from kafka import KafkaProducer

from feed import records
from feed.options import Options
from feed.records import Segment, Status, Subscription
from messaging_lib import envelope, topics
from messaging_lib.credentials import Sealer
from tests.e2e.helpers import Emulator, OpenWhisk, end_offsets, envelope_json, headers_of, read_from, unique, wait_for
from tests.e2e.test_kafka_feed import create, fired, read_feed, send, subscriptions_now, wait_fired
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.messaging import ConsumerProcess, Messaging, firer_and_router

pytestmark = pytest.mark.timeout(300)
USER = "guest"


@pytest.fixture(scope="module")
def service(messaging: Messaging, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumerProcess]:
    log_path = tmp_path_factory.mktemp("isolation") / "consumer.log"
    with firer_and_router(messaging, log_path, grant_to=USER, log_tail=150) as proc:
        yield proc


def sealer(messaging: Messaging) -> Sealer:
    return Sealer([messaging.sealing_key])


def write_subscription_directly(messaging: Messaging, emulator, trigger: str, topic: str) -> int:
    """A subscription record as the feed would write it (a valid sealed credential), but straight
    into the subscriptions topic, bypassing the feed's policy; returns its offset (its version)."""
    credential = sealer(messaging).seal_subscription(emulator.auth(USER), trigger)
    sub = Subscription(trigger=trigger, topic=topic, credential=credential, options=Options(), start_from="earliest",
                       segments=(Segment(None, {0: 0}),), created_ms=1, updated_ms=1)
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    try:
        sent = producer.send(messaging.subscriptions_topic, key=records.subscription_key(trigger),
                             value=records.encode_subscription(sub)).get(timeout=30)
    finally:
        producer.close()
    return sent.offset


def status_of(messaging: Messaging, trigger: str) -> Status | None:
    value = subscriptions_now(messaging).get(records.status_key(trigger))
    return None if value is None else records.decode_status(value)


def alive(service: ConsumerProcess) -> bool:
    """Still running, and ready (the router too)."""
    return service.proc.poll() is None and requests.get(f"{service.url}/readyz", timeout=5).status_code == 200


def good_subscription(messaging: Messaging, kafka: KafkaHandle, tools, emulator, guest: OpenWhisk) -> tuple[str, str]:
    """A trigger subscribed through the feed, with a rule, ready to fire: (trigger, topic)."""
    topic, trigger = kafka.create_topic("good"), unique("Good")
    create(tools, emulator, trigger, topic=topic)
    guest.rule(unique("R"), trigger, guest.echo_action(unique("A")))
    return trigger, topic


def test_a_record_for_consumer_offsets_is_refused_and_the_others_still_fire(
        messaging: Messaging, kafka: KafkaHandle, tools, emulator, service: ConsumerProcess, guest: OpenWhisk,
        control: Emulator) -> None:
    trigger, topic = good_subscription(messaging, kafka, tools, emulator, guest)
    evil = f"/{USER}/{unique('Offsets')}"
    version = write_subscription_directly(messaging, emulator, evil, "__consumer_offsets")

    status = wait_for(lambda: status_of(messaging, evil), what="the refusal's status record")
    assert (status.status_code, status.config, status.state) == (403, version, "disabled")
    assert status.message == ("The topic __consumer_offsets cannot be subscribed to: topics whose names start "
                              "with __ are Kafka's internal topics.")
    send(messaging, topic, [b"still here"])
    assert [m["value"] for m in wait_fired(control, trigger, 1)] == ["still here"]
    assert alive(service), service.log()
    assert "KeyError" not in service.log()


def test_records_for_the_service_topics_are_refused_and_nothing_loops(
        messaging: Messaging, kafka: KafkaHandle, tools, emulator, service: ConsumerProcess, guest: OpenWhisk,
        control: Emulator) -> None:
    trigger, topic = good_subscription(messaging, kafka, tools, emulator, guest)
    evil = {f"/{USER}/{unique('Envelopes')}": messaging.trigger_messages_topic,
            f"/{USER}/{unique('DeadLetters')}": messaging.dead_letter_topic,
            f"/{USER}/{unique('Subscriptions')}": messaging.subscriptions_topic}
    versions = {t: write_subscription_directly(messaging, emulator, t, name) for t, name in evil.items()}
    for t, name in evil.items():
        status = wait_for(lambda t=t: status_of(messaging, t), what=f"the refusal of {t}")
        assert (status.status_code, status.config) == (403, versions[t])
        assert status.message == (f"The topic {name} cannot be subscribed to: it is one of the messaging "
                                  "service's own topics.")

    dead_before = end_offsets(messaging.bootstrap, messaging.dead_letter_topic)
    bad = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    bad.send(messaging.trigger_messages_topic, key=b"/guest/x", value=b"not json").get(timeout=30)
    bad.close()
    wait_for(lambda: end_offsets(messaging.bootstrap, messaging.dead_letter_topic) != dead_before,
             what="the bad message dead-lettered")
    time.sleep(5)  # a quiet period: a loop would keep dead-lettering (it grew by hundreds of MB in 20 s)
    grown = {p: o - dead_before.get(p, 0) for p, o in end_offsets(messaging.bootstrap,
                                                                  messaging.dead_letter_topic).items()}
    assert sum(grown.values()) == 1, grown
    send(messaging, topic, [b"still here"])
    assert [m["value"] for m in wait_fired(control, trigger, 1)] == ["still here"]
    assert alive(service), service.log()


def test_a_topic_deleted_while_subscribed_disables_that_subscription_alone(
        messaging: Messaging, kafka: KafkaHandle, tools, emulator, service: ConsumerProcess, guest: OpenWhisk,
        control: Emulator) -> None:
    trigger, topic = good_subscription(messaging, kafka, tools, emulator, guest)
    doomed_trigger, doomed = good_subscription(messaging, kafka, tools, emulator, guest)
    send(messaging, doomed, [b"before"])
    send(messaging, topic, [b"first"])
    wait_fired(control, doomed_trigger, 1)
    wait_fired(control, trigger, 1)

    admin = kafka.admin()
    try:
        admin.delete_topics([doomed])
    finally:
        admin.close()
    fqn = f"/{USER}/{doomed_trigger}"
    status = wait_for(lambda: status_of(messaging, fqn), timeout_s=90, what="the deleted topic's subscription disabled")
    assert status.status_code == 404 and f"the topic {doomed} does not exist" in status.message
    view = read_feed(emulator, doomed_trigger)["status"]
    assert (view["active"], view["state"], view["reason"]["statusCode"]) == (False, "disabled", 404)
    assert view["reason"]["message"] == status.message

    send(messaging, topic, [b"second"])
    assert [m["value"] for m in wait_fired(control, trigger, 2)] == ["first", "second"]
    assert alive(service), service.log()


def test_envelopes_the_router_writes_carry_short_lived_credentials_and_a_subscription_credential_fires_nothing(
        messaging: Messaging, kafka: KafkaHandle, tools, emulator, service: ConsumerProcess, guest: OpenWhisk,
        control: Emulator) -> None:
    start = end_offsets(messaging.bootstrap, messaging.trigger_messages_topic)
    trigger, topic = good_subscription(messaging, kafka, tools, emulator, guest)
    send(messaging, topic, [b"one"])
    wait_fired(control, trigger, 1)
    fqn = f"/{USER}/{trigger}"
    written = [r for r in read_from(messaging.bootstrap, messaging.trigger_messages_topic, start)
               if r.key == fqn.encode()]
    assert written, "the router's envelope"
    opened = sealer(messaging).authorize(envelope.parse_record(written[0].headers, written[0].value).credential, fqn)
    assert opened.exp is not None and opened.exp - opened.iat <= 1800 and opened.use is None
    assert opened.scope == (fqn,)

    harvested = records.decode_subscription(subscriptions_now(messaging)[records.subscription_key(fqn)]).credential
    dead_start = end_offsets(messaging.bootstrap, messaging.dead_letter_topic)
    before = len(fired(control, trigger))
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    producer.send(messaging.trigger_messages_topic, key=fqn.encode(),
                  value=envelope_json(fqn, harvested, {"forged": True})).get(timeout=30)
    producer.close()
    dead = wait_for(lambda: [r for r in read_from(messaging.bootstrap, messaging.dead_letter_topic, dead_start)
                             if r.key == fqn.encode()], what="the harvested credential dead-lettered")
    headers = headers_of(dead[0])
    assert headers[topics.DL_REASON] == "bad-credential"
    assert headers[topics.DL_DETAIL] == "a subscription's credential cannot fire from an envelope"
    assert len(fired(control, trigger)) == before
