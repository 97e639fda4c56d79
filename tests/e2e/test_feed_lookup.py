"""kafkaFeed's reads answered by the routers' read API end to end (issue 15): the package bound to a
real consumer's URL (subscriptions_api_url, deployed by the real wskdeploy as an operator would), the
emulator running the real web action, the wsk CLI for CREATE/UPDATE/DELETE, direct invokes for READ,
PAUSE and UNPAUSE, real Kafka. The consumer's /metrics counts the API's answers, so the test knows
the router answered (and that nothing fell back to reading the topic); with the router gone, the
same events read the topic.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from feed import records
from messaging_lib.credentials import web_auth_secret
from tests.e2e.helpers import Emulator, OpenWhisk, unique
from tests.e2e.test_kafka_feed import (
    Service,
    create,
    feed_event,
    fired,
    params,
    read_feed,
    send,
    subscriptions_now,
    wait_fired,
    wsk,
)
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.messaging import OWNER, ConsumerProcess, Messaging, grant, wskdeploy

pytestmark = pytest.mark.timeout(300)
USER = "guest"


def bind(messaging: Messaging, tools, emulator, url: str) -> None:
    """Deploy the package again as the session did, with ``subscriptions_api_url`` bound to ``url``."""
    wskdeploy(tools, emulator.url, emulator.auth(OWNER), env={
        "SEALING_KEYS": messaging.sealing_key,
        "MESSAGING_WEB_AUTH": web_auth_secret(messaging.sealing_key),
        "KAFKA_BOOTSTRAP_SERVERS": messaging.bootstrap,
        "TRIGGER_MESSAGES_TOPIC": messaging.trigger_messages_topic,
        "SUBSCRIPTIONS_TOPIC": messaging.subscriptions_topic,
        "SUBSCRIPTIONS_API_URL": url,
    })


@pytest.fixture(scope="module")
def routed(messaging: Messaging, tools, emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    grant(messaging, "add", USER, "", prefix=True)  # explicit grants: CREATE, UPDATE and READ read them
    service = Service(messaging, tmp_path_factory.mktemp("lookup-consumers"))
    [consumer] = service.start()
    bind(messaging, tools, emulator, consumer.url)
    yield service
    bind(messaging, tools, emulator, "")  # the session's binding again, for the modules after this one
    service.stop_all()


def answers(consumer: ConsumerProcess) -> dict[str, float]:
    """The read API's answers so far, by HTTP status."""
    found: dict[str, float] = {}
    for line in requests.get(f"{consumer.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("subscriptions_api_requests_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            found[status] = float(line.rsplit(" ", 1)[1])
    return found


def event(emulator, name: str, trigger: str) -> dict:
    status, result = feed_event(emulator, name, trigger)
    assert status == 200, result
    return result


def test_read_update_pause_unpause_are_answered_by_the_router_with_read_your_writes(
        messaging: Messaging, tools, emulator, kafka: KafkaHandle, routed: Service, control: Emulator) -> None:
    consumer = routed.procs[0]
    before = answers(consumer)
    topic = kafka.create_topic("lookup")
    trigger = unique("T")
    create(tools, emulator, trigger, topic=topic)  # 1 read: the namespace's grants
    send(messaging, topic, [b'{"n": 1}'])
    assert [m["value"] for m in wait_fired(control, trigger, 1)] == ['{"n": 1}']
    assert read_feed(emulator, trigger)["config"]["topic"] == topic  # 1

    done = wsk(tools, emulator, "trigger", "update", trigger, *params(isJSONData=True))  # 2: current, grants
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert read_feed(emulator, trigger)["config"]["isJSONData"] is True, "the UPDATE just written is read"  # 1

    assert event(emulator, "PAUSE", trigger)["status"] == "paused"  # 1
    assert read_feed(emulator, trigger)["status"]["state"] == "paused"  # 1
    send(messaging, topic, [b'{"n": 2}', b'{"n": 3}'])
    assert event(emulator, "UNPAUSE", trigger)["status"] == "active"  # 1
    assert [m["value"] for m in wait_fired(control, trigger, 3)] == ['{"n": 1}', {"n": 2}, {"n": 3}]
    assert len(fired(control, trigger)) == 3
    assert read_feed(emulator, trigger)["status"]["state"] == "active"  # 1

    assert wsk(tools, emulator, "trigger", "delete", trigger).returncode == 0  # DELETE reads nothing
    assert feed_event(emulator, "READ", trigger)[0] == 502  # the trigger is gone: refused before any read
    after = answers(consumer)
    assert after.get("200", 0) - before.get("200", 0) == 9, after
    assert all(after.get(s, 0) == before.get(s, 0) for s in ("400", "401", "503")), (before, after)


def test_with_the_router_gone_the_same_events_read_the_topic(
        messaging: Messaging, tools, emulator, kafka: KafkaHandle, routed: Service) -> None:
    topic = kafka.create_topic("lookup-gone")
    trigger = unique("T")
    create(tools, emulator, trigger, topic=topic)
    routed.stop_all()  # the bound URL now refuses connections

    assert read_feed(emulator, trigger)["config"]["topic"] == topic
    done = wsk(tools, emulator, "trigger", "update", trigger, *params(maxBatchMessages=5))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert read_feed(emulator, trigger)["config"]["maxBatchMessages"] == 5
    assert event(emulator, "PAUSE", trigger)["status"] == "paused"
    stored = subscriptions_now(messaging)[records.subscription_key(f"/{USER}/{trigger}")]
    assert stored is not None and records.decode_subscription(stored).paused
    assert event(emulator, "UNPAUSE", trigger)["status"] == "active"
    assert wsk(tools, emulator, "trigger", "delete", trigger).returncode == 0
    latest = OpenWhisk(emulator.url, emulator.auth(OWNER)).session.get(  # the web action's, newest first
        f"{emulator.url}/api/v1/namespaces/_/activations", params={"docs": "true", "limit": 200}, timeout=30).json()
    logs = [line for a in latest for line in a.get("logs", [])]
    assert any("no router answered (ConnectionRefusedError" in line for line in logs), logs[-5:]
