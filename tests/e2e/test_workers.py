"""WORKERS=2 end to end: one `python -m consumer` supervising two firer processes on real Kafka
and the emulator. Both join the group and share the partitions, every message fires in order,
and one SIGTERM drains and stops them all with exit status 0."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.helpers import Emulator, OpenWhisk, wait_for
from tests.e2e.test_trigger_messages import _accepted_by_trigger, _produce_many
from tests.fixtures.messaging import Messaging

pytestmark = pytest.mark.timeout(600)


def metric(port: int, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#") and line[len(name)] in " {")


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_two_workers_share_the_partitions_fire_everything_and_stop_on_one_sigterm(
        messaging: Messaging, tools, emulator, guest: OpenWhisk, control: Emulator,
        consumers, kafka) -> None:
    topic = kafka.create_topic("workers", partitions=4)
    supervisor = consumers(WORKERS="2", TRIGGER_MESSAGES_TOPIC=topic, FIRER_GROUP=f"firer-{topic}")
    ports = [supervisor.port, supervisor.port + 1]  # worker i serves HTTP_PORT + i
    wait_for(lambda: ready(ports[1]), what="the second worker ready")
    wait_for(lambda: [metric(p, "firer_assigned_partitions") > 0 for p in ports] == [True, True]
             and sum(metric(p, "firer_assigned_partitions") for p in ports) == 4,
             what="both workers hold partitions, all four held")

    fqns = _produce_many(messaging, tools, emulator, guest, triggers=20, per_trigger=10, run="workers", topic=topic)
    wait_for(lambda: all(len(s) >= 10 for s in _accepted_by_trigger(control, fqns).values()), timeout_s=120,
             what="every message fired")
    assert all(seqs == list(range(10)) for seqs in _accepted_by_trigger(control, fqns).values())
    assert all(metric(p, "firer_messages_fired_total") > 0 for p in ports)

    assert supervisor.stop() == 0
    assert supervisor.log().count("firer stopped") == 2
