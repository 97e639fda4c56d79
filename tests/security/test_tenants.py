"""Two tenants on one local stack (issue 11): alice tries what a hostile tenant would against bob.

Real Kafka, the package deployed by the real wskdeploy, the emulator running the real action code
(with the controller's web-action order: throttle, then require-whisk-auth), the wsk CLI for
everything a user types, the operator's grant command, and a real `python -m consumer` firing.
Each case asserts the exact refusal; the cases that already held before are kept as regressions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kafka import KafkaProducer

from feed.grants import GRANT_PREFIX
from messaging_lib import topics
from messaging_lib.credentials import Sealer, web_auth_secret
from tests.e2e.helpers import Emulator, OpenWhisk, end_offsets, envelope_json, headers_of, read_from, unique, wait_for
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.messaging import OWNER, Messaging, firer_and_router, grant
from tests.fixtures.tools import REPO_ROOT

pytestmark = pytest.mark.timeout(300)
FEED = f"/{OWNER}/messaging/kafkaFeed"
ALICE, BOB = "alice", "bob"
WEB = f"/api/v1/web/{OWNER}/messagingWeb"


def wsk(tools, emulator, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.wsk, "--apihost", emulator.url, "-u", emulator.auth(namespace), *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": "/nonexistent"})


def feed_create(tools, emulator, namespace: str, trigger: str, topic: str) -> subprocess.CompletedProcess[str]:
    return wsk(tools, emulator, namespace, "trigger", "create", trigger, "--feed", FEED, "-p", "topic", topic,
               "-p", "startFrom", "earliest")


def invoke(tools, emulator, namespace: str, action: str, **params: object) -> dict:
    args = [a for k, v in params.items() for a in ("-p", k, v if isinstance(v, str) else json.dumps(v))]
    done = wsk(tools, emulator, namespace, "action", "invoke", f"/{OWNER}/messaging/{action}", *args, "--result")
    shown = done.stdout or done.stderr  # the CLI prints a failed activation's result on stderr
    assert shown.startswith("{"), f"{done.returncode}: {done.stdout}\n{done.stderr}"
    return json.loads(shown)


def refusal_of(done: subprocess.CompletedProcess[str]) -> str:
    """The feed's error text in the CLI's output of a refused trigger create."""
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def service(messaging: Messaging, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    log_path = tmp_path_factory.mktemp("security") / "consumer.log"
    with firer_and_router(messaging, log_path, log_tail=100) as proc:
        yield proc


def test_alice_cannot_subscribe_to_bobs_topic_until_the_operator_grants_it(
        messaging: Messaging, kafka: KafkaHandle, tools, emulator) -> None:
    bob_private = kafka.create_topic(unique("bob-private"))
    trigger = unique("t")
    done = feed_create(tools, emulator, ALICE, trigger, bob_private)
    assert (f"The topic {bob_private} is not granted to the namespace alice. Ask the operator of the messaging "
            f"service for a grant (./deploy.sh grant add --namespace alice --topic {bob_private}).") in refusal_of(done)
    assert not [k for k in subscriptions(messaging) if k.endswith(trigger.encode())], "no subscription left"

    granted = subprocess.run([sys.executable, "-m", "feed.grants", "add", "--namespace", ALICE, "--topic", bob_private],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=operator_env(messaging))
    assert (granted.returncode, granted.stdout) == (0, f"granted: alice\t{bob_private}\n"), granted.stderr
    wsk(tools, emulator, ALICE, "trigger", "delete", trigger)
    done = feed_create(tools, emulator, ALICE, trigger, bob_private)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = subprocess.run([sys.executable, "-m", "feed.grants", "list", "--namespace", ALICE], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, env=operator_env(messaging))
    assert f"alice\t{bob_private}\n" in listed.stdout

    grant(messaging, "revoke", ALICE, bob_private)
    shown = wsk(tools, emulator, ALICE, "trigger", "get", trigger)
    status = json.loads(shown.stdout[shown.stdout.index("{"):])["response"]["result"]["status"]  # READ's activation
    assert (status["active"], status["state"], status["reason"]["statusCode"]) == (False, "disabled", 403)
    assert status["reason"]["message"] == (
        f"Disabled: no grant covers this subscription's topic any more. The topic {bob_private} is not granted to "
        f"the namespace alice. Ask the operator of the messaging service for a grant (./deploy.sh grant add "
        f"--namespace alice --topic {bob_private}).")
    done = wsk(tools, emulator, ALICE, "trigger", "update", trigger, "-p", "isJSONData", "true")
    assert f"The topic {bob_private} is not granted to the namespace alice." in refusal_of(done)
    assert wsk(tools, emulator, ALICE, "trigger", "delete", trigger).returncode == 0


@pytest.mark.parametrize("topic, reason", [
    (topics.TRIGGER_MESSAGES_TOPIC, "it is one of the messaging service's own topics."),
    (topics.SUBSCRIPTIONS_TOPIC, "it is one of the messaging service's own topics."),
    (topics.DEAD_LETTER_TOPIC, "it is one of the messaging service's own topics."),
    ("__consumer_offsets", "topics whose names start with __ are Kafka's internal topics."),
])
def test_no_grant_opens_the_service_or_internal_topics(messaging: Messaging, tools, emulator, topic: str,
                                                       reason: str) -> None:
    grant(messaging, "add", ALICE, "", prefix=True)  # even a grant of every topic
    try:
        done = feed_create(tools, emulator, ALICE, unique("t"), topic)
        assert f"The topic {topic} cannot be subscribed to: {reason}" in refusal_of(done)
    finally:
        grant(messaging, "revoke", ALICE, "", prefix=True)
    refused = subprocess.run([sys.executable, "-m", "feed.grants", "add", "--namespace", ALICE, "--topic", topic],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=operator_env(messaging))
    assert (refused.returncode, refused.stderr.strip()) == (
        1, f"grant: error: The topic {topic} cannot be subscribed to: {reason}")


def test_an_expired_credential_fires_nothing_and_is_dead_lettered(messaging: Messaging, tools, emulator,
                                                                  service) -> None:
    bob = OpenWhisk(emulator.url, emulator.auth(BOB))
    trigger = bob.trigger(unique("T"))
    expired = Sealer([messaging.sealing_key], clock=lambda: time.time() - 3600).seal(
        emulator.auth(BOB), [f"/{BOB}/{trigger}"], ttl_s=1800)
    fresh = invoke(tools, emulator, BOB, "token", trigger=trigger, ttl=60)
    assert (fresh["ttl"], fresh["scope"]) == (60, [f"/{BOB}/{trigger}"])
    start, control = end_offsets(messaging.bootstrap, messaging.dead_letter_topic), Emulator(emulator.url)
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    for credential, n in ((expired, 1), (fresh["credential"], 2)):
        producer.send(messaging.trigger_messages_topic, key=f"/{BOB}/{trigger}".encode(),
                      value=envelope_json(f"/{BOB}/{trigger}", credential, {"n": n}))
    producer.flush()
    producer.close()
    letters = wait_for(lambda: [r for r in read_from(messaging.bootstrap, messaging.dead_letter_topic, start)
                                if headers_of(r).get("dl_reason") == "credential-expired"], what="a dead letter")
    assert headers_of(letters[0])["dl_detail"] == "the credential has expired"
    fires = wait_for(lambda: control.accepted(f"/{BOB}/{trigger}"), what="the fresh credential's fire")
    assert [f["payload"] for f in fires] == [{"n": 2}]


def test_web_actions_refuse_parameters_outside_their_interface(messaging: Messaging, tools, emulator) -> None:
    trigger = OpenWhisk(emulator.url, emulator.auth(ALICE)).trigger(unique("T"))
    assert "error" not in invoke(tools, emulator, ALICE, "produce", trigger=trigger)  # warm: its producer exists
    threads_before = action_threads(emulator)
    for n in range(20):
        result = invoke(tools, emulator, ALICE, "produce", trigger=trigger, kafka_client_id=f"c{n}")
        assert result == {"error": "unknown parameters: kafka_client_id (produce accepts id, payload, trigger)"}
    assert action_threads(emulator) <= threads_before + 4, "no new producer (and its threads) per client id"
    assert invoke(tools, emulator, ALICE, "token", trigger=trigger, ttl=2592001) == {
        "error": "parameter 'ttl' must be a whole number of seconds from 1 to 2592000"}
    # A bound setting cannot be overridden: the actions are final, so the controller refuses it.
    done = wsk(tools, emulator, ALICE, "action", "invoke", f"/{OWNER}/messaging/produce", "-p", "trigger", trigger,
               "-p", "kafka_bootstrap_servers", "evil:9092", "--result")
    assert done.returncode != 0 and ("error: Unable to invoke action 'messaging/produce': Request defines parameters "
                                     "that are not allowed (e.g., reserved properties).") in done.stderr
    # Whoever reads the forwarders' secret (any OpenWhisk user can) still cannot spoof a platform value.
    secret = {"X-Require-Whisk-Auth": web_auth_secret(messaging.sealing_key)}
    spoofed = requests.post(f"{emulator.url}{WEB}/token.http", headers=secret, timeout=60, json={
        "authKey": emulator.auth(ALICE), "trigger": trigger, "__OW_NAMESPACE": BOB, "__ow_namespace": BOB})
    assert (spoofed.status_code, spoofed.json()) == (400, {
        "error": "unknown parameters: __OW_NAMESPACE, __ow_namespace (token accepts trigger, ttl)"})
    platform = requests.post(f"{emulator.url}{WEB}/token.http", headers=secret, timeout=60, json={
        "authKey": emulator.auth(ALICE), "trigger": trigger, "__ow_user": BOB})
    assert (platform.status_code, platform.json()["error"]) == (
        400, "Request defines parameters that are not allowed (e.g., reserved properties).")


def test_anonymous_calls_are_refused_but_count_against_the_owners_limit(messaging: Messaging, tools,
                                                                        emulator) -> None:
    url = f"{emulator.url}{WEB}/produce.http"
    wait_for(lambda: time.time() % 60 < 40, interval_s=0.5, what="a minute with time left (the limit's window)")
    try:
        emulator.set_limits(OWNER, reset_counters=True, invocationsPerMinute=5)
        answers = [requests.post(url, json={"trigger": "/bob/T"}, timeout=30) for _ in range(4)]
        wrong = requests.post(url, json={}, headers={"X-Require-Whisk-Auth": "guess"}, timeout=30)
        over = requests.post(url, json={}, timeout=30)
        produced = wsk(tools, emulator, ALICE, "action", "invoke", f"/{OWNER}/messaging/produce", "-p", "trigger", "T",
                       "--result")
    finally:
        emulator.clear_limits(OWNER)
    assert [a.status_code for a in answers] == [401] * 4
    assert answers[0].json()["error"] == "The supplied authentication is invalid"
    assert (wrong.status_code, wrong.json()["error"]) == (401, "The supplied authentication is invalid")
    # The controller counts an invocation before it checks require-whisk-auth, so those 5 refusals
    # used up whisk.system's minute: the next call, anonymous or a tenant's produce, gets 429.
    assert (over.status_code, over.json()["error"]) == (
        429, "Too many requests in the last minute (count: 6, allowed: 5).")
    assert ("error: Unable to invoke action 'messaging/produce': Too many requests in the last minute (count: 7, "
            "allowed: 5).") in produced.stderr  # the tenant's own invocation was fine: whisk.system's was not
    with_secret = requests.post(url, json={}, timeout=30,
                                headers={"X-Require-Whisk-Auth": web_auth_secret(messaging.sealing_key)})
    assert (with_secret.status_code, with_secret.json()) == (
        400, {"error": "missing the caller's API key: call this through the public messaging package"})


def test_what_held_before_still_holds_across_tenants(messaging: Messaging, tools, emulator, service) -> None:
    bob = OpenWhisk(emulator.url, emulator.auth(BOB))
    trigger = bob.trigger(unique("T"))
    assert invoke(tools, emulator, ALICE, "produce", trigger=f"/{BOB}/{trigger}") == {
        "error": f"you are not authorized for the trigger /{BOB}/{trigger}"}
    assert invoke(tools, emulator, ALICE, "token", trigger=f"/{BOB}/*") == {
        "error": "you are not authorized for the namespace bob"}
    user, _, key = emulator.auth(ALICE).partition(":")
    answer = requests.post(f"{emulator.url}/api/v1/namespaces/{OWNER}/actions/messaging/kafkaFeed",
                           params={"blocking": "true", "result": "true"}, auth=(user, key), timeout=90,
                           json={"lifecycleEvent": "DELETE", "triggerName": f"/{BOB}/{trigger}"})
    assert answer.json() == {"error": "You are not authorized for this trigger."}
    alices = invoke(tools, emulator, ALICE, "token", trigger="*")["credential"]
    tampered = alices[:-4] + ("AAAA" if not alices.endswith("AAAA") else "BBBB")
    start, control = end_offsets(messaging.bootstrap, messaging.dead_letter_topic), Emulator(emulator.url)
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap)
    for credential in (alices, tampered):
        producer.send(messaging.trigger_messages_topic, key=f"/{BOB}/{trigger}".encode(),
                      value=envelope_json(f"/{BOB}/{trigger}", credential, {}))
    producer.flush()
    producer.close()
    letters = wait_for(lambda: len(r := read_from(messaging.bootstrap, messaging.dead_letter_topic, start)) >= 2 and r,
                       what="two dead letters")
    assert sorted(headers_of(r)["dl_reason"] for r in letters[:2]) == ["bad-credential", "credential-out-of-scope"]
    assert control.fires(f"/{BOB}/{trigger}") == []


# --- helpers ------------------------------------------------------------------------------------


def operator_env(messaging: Messaging) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": messaging.bootstrap,
            "SUBSCRIPTIONS_TOPIC": messaging.subscriptions_topic}


def subscriptions(messaging: Messaging) -> list[bytes]:
    """The live keys of the subscriptions topic (tombstones and grants left out)."""
    latest = {r.key: r.value for r in read_from(messaging.bootstrap, messaging.subscriptions_topic, {0: 0},
                                                timeout_ms=1000)}
    return [key for key, value in latest.items() if value is not None and not key.startswith(GRANT_PREFIX.encode())]


def action_threads(emulator) -> int:
    """Threads of every process under the emulator (its action workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pids, todo = [], [emulator.process.pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return sum(len(list(Path(f"/proc/{pid}/task").glob("*"))) for pid in pids if Path(f"/proc/{pid}").exists())
