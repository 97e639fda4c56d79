"""A kafkaFeed trigger whose rule is disabled (issue 14, deliverable 2), end to end.

OpenWhisk answers a fire of a trigger with no active rule 204, with no activation: nothing runs
(the emulator answers exactly so, tests/local_stack/test_emulator_no_rule.py). The firer must not
stay silent: it counts the fire (`firer_fires_without_rule_total`), logs it once per trigger per
interval, and notes it in the subscription's status, so `wsk trigger get` (READ) shows the
subscription active with the reason. Re-enabling the rule (the README's recipe) makes the next
fire run the action. Real Kafka, the emulator, the deployed feed, the wsk CLI, and one real
`python -m consumer` (firer and router) for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from feed import records
from tests.e2e.helpers import Emulator, OpenWhisk, unique, wait_for
from tests.e2e.test_kafka_feed import create, fired, read_feed, send, wait_fired, wsk
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.messaging import ConsumerProcess, Messaging, firer_and_router

pytestmark = pytest.mark.timeout(300)
USER = "guest"
METRIC = "firer_fires_without_rule_total"


@pytest.fixture(scope="module")
def service(messaging: Messaging, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumerProcess]:
    with firer_and_router(messaging, tmp_path_factory.mktemp("no-rule") / "consumer.log", grant_to=USER) as proc:
        yield proc


def test_a_fire_with_the_rule_disabled_is_counted_logged_once_and_shown_in_read_until_the_rule_is_enabled(
        messaging: Messaging, tools, emulator, kafka: KafkaHandle, service: ConsumerProcess,
        guest: OpenWhisk) -> None:
    control = Emulator(emulator.url)
    topic = kafka.create_topic("norule")
    trigger, action, rule = unique("T"), guest.echo_action(unique("A")), unique("R")
    create(tools, emulator, trigger, topic=topic)
    guest.rule(rule, trigger, action)
    disabled = wsk(tools, emulator, "rule", "disable", rule)
    assert disabled.returncode == 0, disabled.stderr
    before = service.metric(METRIC)

    send(messaging, topic, [b"first"])
    assert [m["value"] for m in wait_fired(control, trigger, 1)] == ["first"]
    assert [f["status"] for f in control.fires(f"/{USER}/{trigger}")] == [204]  # accepted, nothing ran
    wait_for(lambda: service.metric(METRIC) >= before + 1, what="the fire counted")
    status = wait_for(lambda: (s := read_feed(emulator, trigger)["status"]).get("reason") and s,
                      what="READ shows the notice")
    assert status["active"] is True and status["state"] == "active"
    assert status["reason"] == {"kind": "AUTO", "statusCode": 204, "message": records.NO_RULE_MESSAGE}
    got = wsk(tools, emulator, "trigger", "get", trigger)
    assert got.returncode == 0, got.stderr
    assert records.NO_RULE_MESSAGE in got.stdout and '"state": "active"' in got.stdout, got.stdout

    send(messaging, topic, [b"second"])  # a second fire within the interval: counted, not logged again
    assert [m["value"] for m in wait_fired(control, trigger, 2)] == ["first", "second"]
    wait_for(lambda: service.metric(METRIC) >= before + 2, what="the second fire counted")
    lines = no_rule_lines(service, trigger)
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "warning" and "wsk rule enable" in lines[0]["msg"]
    assert activations_of(guest, action) == []

    enabled = wsk(tools, emulator, "rule", "enable", rule)
    assert enabled.returncode == 0, enabled.stderr
    send(messaging, topic, [b"third"])
    activation = wait_for(lambda: activations_of(guest, action), what="the rule's action runs")[0]
    assert activation["response"]["result"]["received"]["messages"][0]["value"] == "third"
    assert [f["status"] for f in control.fires(f"/{USER}/{trigger}")] == [204, 204, 202]
    assert service.metric(METRIC) == before + 2
    assert read_feed(emulator, trigger)["status"]["active"] is True  # never disabled
    assert len(fired(control, trigger)) == 3
    assert len(no_rule_lines(service, trigger)) == 1


def no_rule_lines(service: ConsumerProcess, trigger: str) -> list[dict]:
    """The consumer's JSON log lines of the firer's no-rule report for ``trigger``."""
    found = []
    for line in service.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger") == "consumer.no_rule" and entry.get("trigger") == f"/{USER}/{trigger}":
            found.append(entry)
    return found


def activations_of(guest: OpenWhisk, action: str) -> list[dict]:
    return guest.activations(action)
