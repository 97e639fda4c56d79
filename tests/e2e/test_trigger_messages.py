"""Self-describing trigger messages end to end (issue: envelope, produce/token, the firer).

Real Kafka, the emulator running the deployed package's real action code, the wsk CLI, and real
`python -m consumer` processes. Each test uses its own triggers, so tests sharing the session's
topics and consumer group cannot see each other's fires.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from kafka import KafkaProducer

from consumer.settings import Settings
from messaging_lib import topics
from messaging_lib.credentials import Sealer
from tests.e2e.helpers import (
    Emulator,
    OpenWhisk,
    end_offsets,
    envelope_json,
    headers_of,
    read_from,
    unique,
    wait_for,
)
from tests.fixtures.messaging import OWNER, Messaging
from tests.fixtures.tools import REPO_ROOT

pytestmark = pytest.mark.timeout(600)
USER = "guest"
# How far the last landed commit of a firer may lag behind its fires (see the kill -9 test):
# FIRER_COMMIT_INTERVAL_S (the default) and two commit round trips, each up to 0.1 s as measured
# with the firer busy on a loaded 2-core host (its answer waits for the event loop).
KILL_COMMIT_LAG_S = Settings.__dataclass_fields__["firer_commit_interval_s"].default + 2 * 0.1


def wsk(tools, emulator, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.wsk, "--apihost", emulator.url, "-u", emulator.auth(namespace), *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": "/nonexistent"})


def invoke(tools, emulator, action: str, **params: object) -> dict:
    args = []
    for k, v in params.items():
        args += ["-p", k, v if isinstance(v, str) else json.dumps(v)]
    done = wsk(tools, emulator, USER, "action", "invoke", f"/{OWNER}/messaging/{action}", *args, "--blocking",
               "--result")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def token_for(tools, emulator, trigger: str) -> str:
    result = invoke(tools, emulator, "token", trigger=trigger)
    assert "error" not in result, result
    return result["credential"]


def test_produce_fires_the_rule_action_with_the_payload(messaging: Messaging, tools, emulator, guest: OpenWhisk,
                                                        consumers) -> None:
    consumers()
    trigger, action = guest.trigger(unique("T")), guest.echo_action(unique("A"))
    guest.rule(unique("R"), trigger, action)

    result = invoke(tools, emulator, "produce", trigger=trigger, payload={"n": 1})

    assert result["trigger"] == f"/{USER}/{trigger}"
    assert result["topic"] == messaging.trigger_messages_topic
    assert {"id", "partition", "offset"} <= result.keys()
    activations = wait_for(lambda: guest.activations(action), what="the rule's action activation")
    assert activations[0]["response"]["result"]["received"]["n"] == 1


def test_produce_rejects_bad_parameters_and_foreign_triggers(messaging: Messaging, tools, emulator,
                                                             guest: OpenWhisk) -> None:
    trigger = guest.trigger(unique("T"))
    cases = {
        "missing parameter 'trigger'": {},
        "'payload' must be a JSON object": {"trigger": trigger, "payload": [1, 2]},
        "does not exist": {"trigger": unique("nosuch")},
        "not authorized": {"trigger": f"/{OWNER}/{trigger}"},
        "not a valid trigger name": {"trigger": "a/b/c"},
    }
    for expected, params in cases.items():
        args = [a for k, v in params.items() for a in ("-p", k, v if isinstance(v, str) else json.dumps(v))]
        done = wsk(tools, emulator, USER, "action", "invoke", f"/{OWNER}/messaging/produce", *args, "--blocking",
                   "--result")
        assert done.returncode != 0, (params, done.stdout)
        assert expected in done.stdout + done.stderr, (params, done.stdout, done.stderr)


def test_a_plain_kafka_producer_with_a_token_fires_the_trigger_in_both_modes(
        messaging: Messaging, tools, emulator, guest: OpenWhisk, control: Emulator, consumers) -> None:
    consumers()
    trigger = guest.trigger(unique("T"))
    fqn = f"/{USER}/{trigger}"
    credential = token_for(tools, emulator, trigger)
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    producer.send(messaging.trigger_messages_topic, key=fqn.encode(),
                  value=envelope_json(fqn, credential, {"mode": "structured"}),
                  headers=[("content-type", b"application/cloudevents+json")])
    binary_headers = [("ce_specversion", b"1.0"), ("ce_id", str(uuid.uuid4()).encode()),
                      ("ce_source", b"/tests/binary"), ("ce_type", b"org.apache.openwhisk.trigger.fire"),
                      ("ce_owtrigger", fqn.encode()), ("ce_owcredential", credential.encode()),
                      ("content-type", b"application/json")]
    producer.send(messaging.trigger_messages_topic, key=fqn.encode(), value=b'{"mode": "binary"}',
                  headers=binary_headers)
    producer.flush()

    fires = wait_for(lambda: len(control.accepted(fqn)) >= 2 and control.accepted(fqn), what="two fires")
    assert [f["payload"] for f in fires] == [{"mode": "structured"}, {"mode": "binary"}]


def test_namespace_token_covers_every_trigger_of_the_namespace_only(messaging: Messaging, tools, emulator,
                                                                    guest: OpenWhisk) -> None:
    result = invoke(tools, emulator, "token", trigger="*")
    assert result["scope"] == [f"/{USER}/*"]
    credential = Sealer([messaging.sealing_key]).open(result["credential"])
    assert credential.allows(f"/{USER}/anything") and not credential.allows(f"/{OWNER}/anything")
    assert result["envelope"]["owcredential"] == result["credential"]


def test_bad_messages_are_dead_lettered_with_their_reason_and_never_stall_the_partition(
        messaging: Messaging, tools, emulator, guest: OpenWhisk, control: Emulator, consumers) -> None:
    trigger = guest.trigger(unique("T"))
    other = guest.trigger(unique("other"))
    fqn = f"/{USER}/{trigger}"
    good = token_for(tools, emulator, trigger)
    other_token = token_for(tools, emulator, other)
    foreign_ns = Sealer([messaging.sealing_key]).seal(emulator.auth(OWNER), [f"/{OWNER}/*"])
    tampered = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    base = json.loads(envelope_json(fqn, good, {}))
    bad: dict[str, bytes] = {
        "garbage": os.urandom(64) + b"\xff",
        "not-json": b"{this is not json",
        "an array": b"[1, 2, 3]",
        "wrong specversion": envelope_json(fqn, good, {}, specversion="0.3"),
        "wrong type": envelope_json(fqn, good, {}, type="com.example.other"),
        "data not an object": envelope_json(fqn, good, [1]),
        "id not a string": envelope_json(fqn, good, {}, id=42),
        "tampered credential": envelope_json(fqn, tampered, {}),
        "credential of another trigger": envelope_json(fqn, other_token, {}),
        "credential of another namespace": envelope_json(f"/{OWNER}/{trigger}", good, {}),
        "own-namespace credential for a guest trigger": envelope_json(fqn, foreign_ns, {}),
        "apihost not allowed": envelope_json(fqn, good, {}, owapihost="http://attacker.example"),
        "payload over the limit": envelope_json(fqn, good, {"blob": "x" * 950_000}),
        "bad trigger name": envelope_json("not-qualified", good, {}),
    }
    for field in ("specversion", "id", "source", "type", "owtrigger", "owcredential"):
        bad[f"missing {field}"] = json.dumps({k: v for k, v in base.items() if k != field}).encode()
    expected = {
        "garbage": "not-json", "not-json": "not-json", "an array": "not-an-object",
        "wrong specversion": "bad-specversion", "wrong type": "bad-type", "data not an object": "bad-data",
        "id not a string": "wrong-type", "tampered credential": "bad-credential",
        "credential of another trigger": "credential-out-of-scope",
        "credential of another namespace": "credential-out-of-scope",
        "own-namespace credential for a guest trigger": "credential-out-of-scope",
        "apihost not allowed": "apihost-not-allowed", "payload over the limit": "payload-too-large",
        "bad trigger name": "bad-trigger-name",
        **{f"missing {f}": "missing-field" for f in ("specversion", "id", "source", "type", "owtrigger",
                                                     "owcredential")},
    }
    start = end_offsets(messaging.bootstrap, messaging.dead_letter_topic)
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap, max_request_size=2 * 1024 * 1024)
    for i, (case, value) in enumerate(bad.items()):  # all on one partition, each followed by a valid message
        producer.send(messaging.trigger_messages_topic, partition=0, key=case.encode(), value=value,
                      headers=[("case", case.encode())])
        producer.send(messaging.trigger_messages_topic, partition=0, key=fqn.encode(),
                      value=envelope_json(fqn, good, {"seq": i}))
    producer.flush()
    consumers()

    fires = wait_for(lambda: len(control.accepted(fqn)) >= len(bad) and control.accepted(fqn), what="valid fires")
    assert [f["payload"]["seq"] for f in fires] == list(range(len(bad)))
    records = wait_for(lambda: (r := read_from(messaging.bootstrap, messaging.dead_letter_topic, start))
                       and len(r) >= len(bad) and r, what="dead letters")
    reasons = {headers_of(r)["case"]: headers_of(r)[topics.DL_REASON] for r in records if "case" in headers_of(r)}
    assert reasons == expected
    originals = {headers_of(r)["case"]: r.value for r in records if "case" in headers_of(r)}
    assert originals == bad  # the original bytes are kept for replay
    sample = headers_of(records[0])
    assert sample[topics.DL_SOURCE_TOPIC] == messaging.trigger_messages_topic
    assert sample[topics.DL_SOURCE_PARTITION] == "0"


def test_throttling_and_outages_are_retried_until_recovery(messaging: Messaging, tools, emulator, guest: OpenWhisk,
                                                           control: Emulator, consumers, kafka) -> None:
    throttled, down = guest.trigger(unique("T429")), guest.trigger(unique("T503"))
    start = end_offsets(messaging.bootstrap, messaging.dead_letter_topic)
    control.fault(trigger=f"/{USER}/{throttled}", status=429, duration_s=4)
    control.fault(trigger=f"/{USER}/{down}", status=503, duration_s=4)
    topic = kafka.create_topic("retry", partitions=4)  # its own topic and group: no other test's backlog
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    for trigger in (throttled, down):
        fqn = f"/{USER}/{trigger}"
        credential = token_for(tools, emulator, trigger)
        for i in range(20):
            producer.send(topic, key=fqn.encode(), value=envelope_json(fqn, credential, {"seq": i}))
    producer.flush()
    consumers(TRIGGER_MESSAGES_TOPIC=topic, FIRER_GROUP=f"firer-{topic}")

    for trigger in (throttled, down):
        fqn = f"/{USER}/{trigger}"
        fires = wait_for(lambda fqn=fqn: len(control.accepted(fqn)) >= 20 and control.accepted(fqn), timeout_s=90,
                         what=f"recovery of {fqn}")
        assert [f["payload"]["seq"] for f in fires] == list(range(20)), "each fired once, in order"
        refused = [f for f in control.fires(fqn) if f["status"] not in (202, 204)]
        assert refused, "the fault was really hit"
    time.sleep(1)
    assert not [r for r in read_from(messaging.bootstrap, messaging.dead_letter_topic, start)
                if any(t.encode() in (r.value or b"") for t in (throttled, down))]


def test_a_consumer_started_before_its_topic_exists_fires_once_the_topic_is_made(
        messaging: Messaging, tools, emulator, guest: OpenWhisk, control: Emulator, consumers, kafka) -> None:
    topic = unique("late")
    consumer = consumers(TRIGGER_MESSAGES_TOPIC=topic, FIRER_GROUP=f"firer-{topic}", wait=False)
    consumer.wait_ready()
    assert "the topic has no partitions yet" in consumer.log()
    kafka.create_topic(name=topic, partitions=2)
    # on a busy machine the group's metadata refresh and rebalance take a while: wait for the assignment
    wait_for(lambda: any("partitions assigned" in line and f"{topic}-" in line for line in consumer.log().splitlines()),
             timeout_s=120, interval_s=0.5, what=f"a partition of {topic} assigned")
    trigger = guest.trigger(unique("T"))
    fqn = f"/{USER}/{trigger}"
    KafkaProducer(bootstrap_servers=messaging.bootstrap).send(
        topic, key=fqn.encode(), value=envelope_json(fqn, token_for(tools, emulator, trigger), {"late": 1})).get(60)
    fires = wait_for(lambda: control.accepted(fqn), timeout_s=120, what="the fire from the new topic")
    assert fires[0]["payload"] == {"late": 1}


def test_permanent_refusals_are_dead_lettered_at_once(messaging: Messaging, tools, emulator, guest: OpenWhisk,
                                                      control: Emulator, consumers) -> None:
    gone, locked = guest.trigger(unique("Tgone")), guest.trigger(unique("T401"))
    tokens = {t: token_for(tools, emulator, t) for t in (gone, locked)}
    guest.session.delete(f"{emulator.url}/api/v1/namespaces/_/triggers/{gone}").raise_for_status()
    control.fault(trigger=f"/{USER}/{locked}", status=401)
    since_ms = int(time.time() * 1000)
    start = end_offsets(messaging.bootstrap, messaging.dead_letter_topic)
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    for trigger, credential in tokens.items():
        fqn = f"/{USER}/{trigger}"
        producer.send(messaging.trigger_messages_topic, key=fqn.encode(), value=envelope_json(fqn, credential, {}),
                      headers=[("case", trigger.encode())])
    producer.flush()
    consumers()

    records = wait_for(lambda: len(r := [x for x in read_from(messaging.bootstrap, messaging.dead_letter_topic, start)
                                         if "case" in headers_of(x)]) >= 2 and r, what="dead letters")
    by_case = {headers_of(r)["case"]: headers_of(r) for r in records}
    assert by_case[gone][topics.DL_REASON] == "fire-rejected" and by_case[gone][topics.DL_STATUS] == "404"
    assert by_case[locked][topics.DL_REASON] == "fire-rejected" and by_case[locked][topics.DL_STATUS] == "401"
    assert by_case[locked][topics.DL_ATTEMPTS] == "1"

    # the operator fixes the causes, then replays what they dead-lettered
    guest.trigger(gone)
    control.clear_faults()
    replayed = subprocess.run(
        [sys.executable, "-m", "consumer.replay", "--reason", "fire-rejected", "--since", str(since_ms)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
        env={**os.environ, **messaging.consumer_env()})
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 2 " in replayed.stderr
    for trigger in (gone, locked):
        wait_for(lambda t=trigger: control.accepted(f"/{USER}/{t}"), what=f"replayed fire of {trigger}")


def _produce_many(messaging: Messaging, tools, emulator, guest: OpenWhisk, triggers: int,
                  per_trigger: int, run: str, topic: str | None = None) -> list[str]:
    names = [guest.trigger(unique(f"{run}{i}")) for i in range(triggers)]
    credential = token_for(tools, emulator, "*")
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap, linger_ms=5)
    for seq in range(per_trigger):
        for name in names:
            fqn = f"/{USER}/{name}"
            producer.send(topic or messaging.trigger_messages_topic, key=fqn.encode(),
                          value=envelope_json(fqn, credential, {"seq": seq, "run": run}))
    producer.flush()
    return [f"/{USER}/{n}" for n in names]


def _accepted_by_trigger(control: Emulator, fqns: list[str]) -> dict[str, list[int]]:
    return {fqn: [f["payload"]["seq"] for f in control.accepted(fqn)] for fqn in fqns}


def test_kill_9_in_the_middle_loses_nothing(messaging: Messaging, tools, emulator, guest: OpenWhisk,
                                            control: Emulator, consumers, kafka) -> None:
    """kill -9 of the only firer mid-run, a new one started: nothing lost, order kept, and few repeats.

    The bound on duplicates is the design's (DESIGN.md section 5, *At-least-once*): only fires
    that completed after the last commit that landed repeat. A commit is sent at most every
    ``FIRER_COMMIT_INTERVAL_S`` (one in flight at a time, the next as soon as the previous was
    answered) and lands a round trip later, so the last landed commit lags the kill by at most
    ``KILL_COMMIT_LAG_S``: the dead firer's fires
    in that window (counted in the emulator's log, up to its last fire) may repeat. On top of
    that, the fires on the wire at the kill (at most one per trigger: a trigger's messages fire one
    at a time) may have reached OpenWhisk without the firer learning it: at-least-once by nature.
    """
    control.fault(latency_ms=5)  # so the run is still going when the consumer dies
    topic = kafka.create_topic("kill", partitions=4)  # its own topic and group: no other test's backlog
    fqns = _produce_many(messaging, tools, emulator, guest, triggers=50, per_trigger=100, run="kill", topic=topic)
    total = 5000
    isolated = {"TRIGGER_MESSAGES_TOPIC": topic, "FIRER_GROUP": f"firer-{topic}"}
    first = consumers(**isolated)
    wait_for(lambda: first.metric("firer_messages_fired_total") >= 1000, what="1,000 fires before the kill")
    first.stop(signal.SIGKILL)
    killed_ms = int(time.time() * 1000)
    consumers(**isolated)

    def missing() -> dict[str, list[int]]:
        fired = _accepted_by_trigger(control, fqns)
        return {fqn: sorted(set(range(100)) - set(seqs)) for fqn, seqs in fired.items() if len(set(seqs)) < 100}
    try:
        wait_for(lambda: not missing(), timeout_s=180, interval_s=1, what="every message fired after the restart")
    except AssertionError as e:
        raise AssertionError(f"{e}\nnot fired, per trigger: {missing()}") from None
    fired = _accepted_by_trigger(control, fqns)
    count = sum(len(seqs) for seqs in fired.values())
    duplicates = count - total
    times = sorted(f["time_ms"] for fqn in fqns for f in control.accepted(fqn) if f["time_ms"] <= killed_ms)
    window = sum(1 for t in times if t >= times[-1] - KILL_COMMIT_LAG_S * 1000)  # the dead firer's last fires
    on_wire = len(fqns)  # at most one fire per trigger at a time
    bound = window + on_wire
    first_fires = {}
    for fqn in fqns:
        for f in control.accepted(fqn):
            first_fires.setdefault((fqn, f["payload"]["seq"]), f["time_ms"])
    repeated = Counter((fqn, f["payload"]["seq"]) for fqn in fqns for f in control.accepted(fqn))
    ages = sorted(times[-1] - first_fires[k] for k, n in repeated.items() if n > 1)
    print(f"\nkill -9 run: {total} messages, {count} fires, {duplicates} duplicates (bound {bound}: "
          f"{window} fires in the last {KILL_COMMIT_LAG_S:.2f} s + {on_wire} on the wire); the repeated ones first "
          f"fired {ages[:3]}..{ages[-3:]} ms before the dead firer's last fire")
    assert duplicates >= 0
    for seqs in fired.values():  # duplicates only replay a tail: no message fires out of order
        first_pass = list(dict.fromkeys(seqs))
        assert first_pass == sorted(first_pass)
    assert duplicates <= bound


def test_two_consumers_split_the_partitions_and_one_takes_over(messaging: Messaging, tools, emulator,
                                                               guest: OpenWhisk, control: Emulator,
                                                               consumers) -> None:
    a, b = consumers(), consumers()
    wait_for(lambda: a.metric("firer_assigned_partitions") > 0 and b.metric("firer_assigned_partitions") > 0,
             what="both consumers hold partitions")
    fqns = _produce_many(messaging, tools, emulator, guest, triggers=40, per_trigger=10, run="split")
    wait_for(lambda: all(len(s) >= 10 for s in _accepted_by_trigger(control, fqns).values()), what="first half")
    assert a.metric("firer_messages_fired_total") > 0 and b.metric("firer_messages_fired_total") > 0
    a.stop()
    more = _produce_many(messaging, tools, emulator, guest, triggers=40, per_trigger=10, run="takeover")
    wait_for(lambda: all(len(s) >= 10 for s in _accepted_by_trigger(control, more).values()), timeout_s=90,
             what="the survivor fires everything")
    assert all(sorted(set(s)) == list(range(10)) for s in _accepted_by_trigger(control, fqns + more).values())


def test_a_rebalance_while_messages_are_retrying_loses_none(messaging: Messaging, tools, emulator, guest: OpenWhisk,
                                                           control: Emulator, consumers, kafka) -> None:
    topic = kafka.create_topic("rebalance", partitions=4)
    isolated = {"TRIGGER_MESSAGES_TOPIC": topic, "FIRER_GROUP": f"firer-{topic}"}
    first = consumers(**isolated)
    control.fault(status=503, duration_s=8)  # every fire fails for a while: all messages are retrying
    fqns = _produce_many(messaging, tools, emulator, guest, triggers=16, per_trigger=5, run="rebal", topic=topic)
    wait_for(lambda: first.metric("firer_fire_retries_total") >= 16, what="messages retrying")
    second = consumers(**isolated)  # the group rebalances; the first consumer keeps some partitions
    wait_for(lambda: first.metric("firer_assigned_partitions") + second.metric("firer_assigned_partitions") == 4,
             what="the partitions shared out")
    wait_for(lambda: all(set(s) >= set(range(5)) for s in _accepted_by_trigger(control, fqns).values()),
             timeout_s=60, what="every message fired after the outage")
    for seqs in _accepted_by_trigger(control, fqns).values():
        assert list(dict.fromkeys(seqs)) == list(range(5)), "in order"


def test_order_per_trigger_is_kept_under_parallel_firing_and_retries(messaging: Messaging, tools, emulator,
                                                                     guest: OpenWhisk, control: Emulator,
                                                                     consumers) -> None:
    control.fault(status=503, rate=0.2, duration_s=30)
    consumers()
    fqns = _produce_many(messaging, tools, emulator, guest, triggers=10, per_trigger=100, run="order")
    wait_for(lambda: all(len(s) >= 100 for s in _accepted_by_trigger(control, fqns).values()), timeout_s=120,
             what="all fires")
    for fqn, seqs in _accepted_by_trigger(control, fqns).items():
        assert seqs == list(range(100)), fqn


def test_no_plain_openwhisk_key_in_any_topic_or_consumer_log(messaging: Messaging, tools, emulator, guest: OpenWhisk,
                                                             control: Emulator, consumers) -> None:
    consumer = consumers(LOG_LEVEL="DEBUG")
    trigger = guest.trigger(unique("T"))
    invoke(tools, emulator, "produce", trigger=trigger, payload={"secret-check": True})
    gone = guest.trigger(unique("gone"))
    credential = token_for(tools, emulator, gone)
    guest.session.delete(f"{emulator.url}/api/v1/namespaces/_/triggers/{gone}").raise_for_status()
    fqn = f"/{USER}/{gone}"
    KafkaProducer(bootstrap_servers=messaging.bootstrap).send(
        messaging.trigger_messages_topic, key=fqn.encode(), value=envelope_json(fqn, credential, {})).get(60)
    wait_for(lambda: control.accepted(f"/{USER}/{trigger}") and control.fires(fqn), what="both processed")
    time.sleep(1)
    secret = emulator.auth(USER).split(":", 1)[1].encode()
    for topic in (messaging.trigger_messages_topic, messaging.dead_letter_topic):
        start = dict.fromkeys(end_offsets(messaging.bootstrap, topic), 0)
        for record in read_from(messaging.bootstrap, topic, start, timeout_ms=2000):
            blob = (record.key or b"") + (record.value or b"") + b"".join(v for _, v in record.headers or [])
            assert secret not in blob, f"plain key in {topic} at offset {record.offset}"
    consumer.stop()
    assert secret.decode() not in consumer.log()
    assert Counter(json.loads(line)["level"] for line in consumer.log().splitlines() if line.startswith("{"))


def test_a_backlog_larger_than_the_in_flight_window_drains_in_order(messaging: Messaging, tools, emulator,
                                                                   guest: OpenWhisk, control: Emulator,
                                                                   consumers) -> None:
    fqns = _produce_many(messaging, tools, emulator, guest, triggers=3, per_trigger=400, run="window")
    consumer = consumers(MAX_IN_FLIGHT="50")
    wait_for(lambda: all(len(s) >= 400 for s in _accepted_by_trigger(control, fqns).values()), timeout_s=120,
             what="the whole backlog")
    assert all(s == list(range(400)) for s in _accepted_by_trigger(control, fqns).values())
    assert consumer.metric("firer_paused") in (0, 1)
