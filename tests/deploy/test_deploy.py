"""./deploy.sh end to end: against an OpenWhisk host (the emulator) with real Kafka, and --local.

Each test gets OpenWhisk to itself: a fresh emulator (so "nothing left behind" can be checked on a
whole namespace) or, for --local, the stack deploy.sh starts on free ports. Topics are unique per
run, so the session's broker is shared safely with the other tests.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.fernet import Fernet

from deploy.ports import free_port
from deploy.topics import topic_config
from tests.e2e.helpers import OpenWhisk, unique, wait_for
from tests.fixtures.deploy import DEPLOY, deploy_env, read_env_file, run_deploy
from tests.fixtures.emulator import STANDARD_AUTH, EmulatorHandle, emulator_fixture
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.tools import REPO_ROOT, Tools

pytestmark = pytest.mark.timeout(300)
OWNER, USER = "whisk.system", "guest"
STEPS = ("==> Checking OpenWhisk", "==> Kafka topics", "==> Sealing key", "==> Building the action folders",
         "==> Deploying manifest.yaml with wskdeploy", "==> Start the consumer with the same settings")


openwhisk = emulator_fixture("deploy-emulator", "An OpenWhisk host of this module's own, empty to begin with.")


def wsk(tools: Tools, apihost: str, auth: str, *args: str) -> str:
    done = subprocess.run([tools.wsk, "--apihost", apihost, "-u", auth, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HOME": "/nonexistent"})
    assert done.returncode == 0, f"wsk {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# ---- what a deployment consists of --------------------------------------------------------------

def _code_digest(code: str) -> dict[str, str]:
    """The files of a zipped action (the zip bytes change with file times; the contents must not)."""
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(code))) as z:
        return {name: hashlib.sha256(z.read(name)).hexdigest() for name in sorted(z.namelist())}


def _sorted_pairs(pairs: list[dict] | None) -> list:
    return sorted((p["key"], json.dumps(p.get("value"), sort_keys=True)) for p in pairs or [])


def snapshot(openwhisk: EmulatorHandle, kafka: KafkaHandle, topic_names: list[str]) -> dict:
    """Everything a deployment made: the owner's entities (code by content) and the topics' settings."""
    api = openwhisk.api(OWNER)
    state: dict = {}
    for kind in ("packages", "actions", "triggers", "rules"):
        response = api.get(f"_/{kind}")
        assert response.status_code == 200, response.text
        state[kind] = sorted(entity["name"] for entity in response.json())
    for package in state["packages"]:
        detail = api.get(f"_/packages/{package}").json()
        state[f"package {package}"] = (detail["publish"], _sorted_pairs(detail.get("parameters")),
                                       _sorted_pairs(detail.get("annotations")))
        for action in detail.get("actions", []):
            body = api.get(f"_/actions/{package}/{action['name']}").json()
            state[f"action {package}/{action['name']}"] = (
                body["exec"]["kind"], _code_digest(body["exec"]["code"]), _sorted_pairs(body.get("parameters")),
                _sorted_pairs(body.get("annotations")), body.get("limits"))
    admin = kafka.admin()
    try:
        present = [t for t in topic_names if t in set(admin.list_topics())]
        for topic in present:
            partitions = len(admin.describe_topics([topic])[0]["partitions"])
            config = {k: v for k, v in topic_config(admin, topic).items()
                      if k in ("cleanup.policy", "retention.ms", "max.message.bytes")}
            state[f"topic {topic}"] = (partitions, config)
    finally:
        admin.close()
    return state


class Consumer:
    """The consumer started the way deploy.sh tells the operator to: its two env files, nothing else."""

    def __init__(self, state_dir: Path, log: Path) -> None:
        self.port = free_port()
        env = {"PATH": os.environ["PATH"], "HOME": str(state_dir), "HTTP_HOST": "127.0.0.1",
               "HTTP_PORT": str(self.port), "RETRY_INITIAL_BACKOFF_S": "0.05", "SHUTDOWN_TIMEOUT_S": "10",
               **read_env_file(state_dir / "consumer.env"), **read_env_file(state_dir / "consumer-secrets.env")}
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen([str(REPO_ROOT / ".venv/bin/python"), "-m", "consumer"], cwd=REPO_ROOT,
                                            env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"the consumer exited:\n{self.log.read_text()}"
            try:
                return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, timeout_s=90, what="consumer ready")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# ---- deploy -> use -> redeploy -> undeploy ------------------------------------------------------

def site_deployment_file(path: Path, kafka: KafkaHandle, trigger_messages_topic: str) -> Path:
    """deployment.example.yaml filled in as an operator would (PLAINTEXT: the test broker's)."""
    site = yaml.safe_load((REPO_ROOT / "deployment.example.yaml").read_text())
    web = site["packages"]["messagingWeb"]["inputs"]
    for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"):
        del web[name]
    web.update(kafka_bootstrap_servers=kafka.bootstrap, kafka_security_protocol="PLAINTEXT",
               trigger_messages_topic=trigger_messages_topic)
    path.write_text(yaml.safe_dump(site))
    return path


def test_deploy_use_redeploy_and_undeploy_against_an_openwhisk_host(
        openwhisk: EmulatorHandle, kafka: KafkaHandle, tools: Tools, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    topic_names = [f"dt-messages-{run}", f"dt-subscriptions-{run}", f"dt-dead-letters-{run}"]
    state_dir = tmp_path / "state"
    site = site_deployment_file(tmp_path / "deployment.site.yaml", kafka, topic_names[0])
    flags = ["--apihost", openwhisk.url, "--auth", openwhisk.auth(OWNER), "--state-dir", str(state_dir)]
    kafka_flags = ["--kafka-bootstrap", kafka.bootstrap, "--trigger-messages-topic", topic_names[0],
                   "--subscriptions-topic", topic_names[1], "--dead-letter-topic", topic_names[2],
                   "--partitions", "3", "--deployment", str(site)]

    done = run_deploy(tools, tmp_path, *flags, *kafka_flags)
    assert done.returncode == 0, done.stderr
    positions = [done.stderr.index(step) for step in STEPS]
    assert positions == sorted(positions), "each step is shown, in order"
    assert "generated a new one" in done.stderr and str(state_dir / "consumer-secrets.env") in done.stderr

    # what it kept: the consumer's settings, the key readable by the operator only
    settings = read_env_file(state_dir / "consumer.env")
    secrets = read_env_file(state_dir / "consumer-secrets.env")
    assert settings["KAFKA_BOOTSTRAP_SERVERS"] == kafka.bootstrap and settings["OPENWHISK_APIHOST"] == openwhisk.url
    assert [settings["TRIGGER_MESSAGES_TOPIC"], settings["SUBSCRIPTIONS_TOPIC"],
            settings["DEAD_LETTER_TOPIC"]] == topic_names
    Fernet(secrets["SEALING_KEYS"].encode())
    assert stat.S_IMODE((state_dir / "consumer-secrets.env").stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700

    # what it made: the topics with their settings, the packages with the secrets on the private one only
    deployed = snapshot(openwhisk, kafka, topic_names)
    partitions, config = deployed[f"topic {topic_names[0]}"]
    assert partitions == 3 and config["cleanup.policy"] == "delete"
    assert deployed[f"topic {topic_names[1]}"][1]["cleanup.policy"] == "compact"
    assert int(deployed[f"topic {topic_names[2]}"][1]["retention.ms"]) >= 7 * 24 * 3600 * 1000
    assert deployed["packages"] == ["messaging", "messagingWeb"]
    public = openwhisk.api(USER).get(f"{OWNER}/packages/messaging").json()
    assert public["publish"] is True
    assert secrets["SEALING_KEYS"] not in json.dumps(public)
    private = openwhisk.api(OWNER).get("_/packages/messagingWeb").json()
    private_params = {p["key"]: p["value"] for p in private["parameters"]}
    assert private["publish"] is False
    assert private_params["sealing_keys"] == secrets["SEALING_KEYS"]
    assert private_params["trigger_messages_topic"] == topic_names[0]  # from the deployment file
    assert openwhisk.api(USER).get(f"{OWNER}/packages/messagingWeb").status_code in (403, 404)

    # use it: the consumer from the printed settings; a user's produce fires their rule's action
    consumer = Consumer(state_dir, tmp_path / "consumer.log")
    try:
        consumer.wait_ready()
        guest_auth = openwhisk.auth(USER)
        guest = OpenWhisk(openwhisk.url, guest_auth)
        trigger, action = guest.trigger(unique("T")), guest.echo_action(unique("A"))
        guest.rule(unique("R"), trigger, action)
        answer = json.loads(wsk(tools, openwhisk.url, guest_auth, "action", "invoke",
                                f"/{OWNER}/messaging/produce", "-p", "trigger", trigger,
                                "-p", "payload", '{"via": "produce"}', "--result"))
        assert answer["topic"] == topic_names[0]
        fired = wait_for(lambda: guest.activations(action), what="the rule's action after produce")
        assert fired[0]["response"]["result"]["received"]["via"] == "produce"

        # a feed trigger fires for what kafkaProduce publishes to the user's topic
        feed_topic = kafka.create_topic("dt-feed")
        feed_trigger, feed_action = unique("F"), guest.echo_action(unique("FA"))
        granted = run_deploy(tools, tmp_path, "grant", "add", "--namespace", USER, "--topic", feed_topic,
                             "--state-dir", str(state_dir))  # the operator grants the topic (issue 11)
        assert granted.returncode == 0, granted.stderr
        wsk(tools, openwhisk.url, guest_auth, "trigger", "create", feed_trigger, "--feed",
            f"/{OWNER}/messaging/kafkaFeed", "-p", "topic", feed_topic, "-p", "isJSONData", "true")
        guest.rule(unique("FR"), feed_trigger, feed_action)
        produced = json.loads(wsk(tools, openwhisk.url, guest_auth, "action", "invoke",
                                  f"/{OWNER}/messaging/kafkaProduce", "-p", "brokers", kafka.bootstrap,
                                  "-p", "topic", feed_topic, "-p", "value", '{"via": "feed"}', "--result"))
        assert produced["success"] is True, produced
        fired = wait_for(lambda: guest.activations(feed_action), timeout_s=90, what="the feed trigger's action")
        messages = fired[0]["response"]["result"]["received"]["messages"]
        assert [(m["topic"], m["value"]) for m in messages] == [(feed_topic, {"via": "feed"})]
        wsk(tools, openwhisk.url, guest_auth, "trigger", "delete", feed_trigger)
    finally:
        stopped = consumer.stop()
        print("--- consumer log ---", consumer.log.read_text(), sep="\n")
    assert stopped == 0

    # a second deploy (same flags) changes nothing, keeps the key, and says so
    again = run_deploy(tools, tmp_path, *flags, *kafka_flags)
    assert again.returncode == 0, again.stderr
    assert "the one kept in" in again.stderr and again.stderr.count("left as it is") == 4  # 4 topics
    assert read_env_file(state_dir / "consumer-secrets.env") == secrets
    assert snapshot(openwhisk, kafka, topic_names) == deployed

    # undeploy, with no Kafka flags: the settings of the deploy are kept in the state directory
    gone = run_deploy(tools, tmp_path, "undeploy", *flags)
    assert gone.returncode == 0, gone.stderr
    left = snapshot(openwhisk, kafka, topic_names)
    assert left == {"packages": [], "actions": [], "triggers": [], "rules": []}, left
    assert not state_dir.exists()
    assert run_deploy(tools, tmp_path, "undeploy", *flags, "--kafka-bootstrap", kafka.bootstrap).returncode == 0


def test_a_deploy_without_a_kept_key_reuses_the_key_of_the_deployed_package(
        openwhisk: EmulatorHandle, kafka: KafkaHandle, tools: Tools, tmp_path: Path) -> None:
    """The sealed credentials already handed out must keep working, even from another machine."""
    names = [unique("rk-tm"), unique("rk-s"), unique("rk-dl")]
    topics = ["--trigger-messages-topic", names[0], "--subscriptions-topic", names[1],
              "--dead-letter-topic", names[2], "--kafka-bootstrap", kafka.bootstrap, "--partitions", "1"]
    flags = ["--apihost", openwhisk.url, "--auth", openwhisk.auth(OWNER)]
    first = run_deploy(tools, tmp_path, *flags, *topics, "--state-dir", str(tmp_path / "one"))
    assert first.returncode == 0, first.stderr
    second = run_deploy(tools, tmp_path, *flags, *topics, "--state-dir", str(tmp_path / "two"))
    assert second.returncode == 0, second.stderr
    assert "the one of the package already deployed" in second.stderr
    assert (read_env_file(tmp_path / "one" / "consumer-secrets.env")
            == read_env_file(tmp_path / "two" / "consumer-secrets.env"))
    # the second deploy found the topics: its undeploy leaves them; the first one's deletes them
    for state, topics_left in (("two", set(names)), ("one", set())):
        done = run_deploy(tools, tmp_path, "undeploy", *flags, "--state-dir", str(tmp_path / state))
        assert done.returncode == 0, done.stderr
        admin = kafka.admin()
        try:
            assert set(names) & set(admin.list_topics()) == topics_left, state
        finally:
            admin.close()


# ---- failures: a clear sentence, a non-zero exit, nothing deployed ------------------------------

def closed_port() -> int:
    return free_port()  # nothing listens there


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong OpenWhisk key", ["rejected the key (401)", "check --auth"]),
    ("unreachable OpenWhisk", ["is unreachable", "check --apihost"]),
    ("unreachable Kafka", ["Kafka at 127.0.0.1:", "is unreachable", "check --kafka-bootstrap"]),
    # kafka-python 3 reports a refused login only in its log; when that line does not come within the
    # connect timeout the error names the SASL settings to check instead of the refusal itself
    ("wrong Kafka password", ["messaging", "KAFKA_SASL_PASSWORD", "Kafka at 127.0.0.1:"]),
    ("no Kafka at all", ["no Kafka brokers", "pass --kafka-bootstrap"]),
    ("no OpenWhisk key", ["no OpenWhisk key", "--auth UUID:KEY"]),
    ("missing wskdeploy", ["is not an executable", "WSKDEPLOY"]),
])
def test_failures_say_what_went_wrong_and_what_to_do(case: str, expected: list[str], openwhisk: EmulatorHandle,
                                                      kafka: KafkaHandle, tools: Tools, tmp_path: Path) -> None:
    apihost, auth = openwhisk.url, openwhisk.auth(OWNER)
    kafka_flags = ["--kafka-bootstrap", kafka.bootstrap]
    env: dict[str, str] = {}
    if case == "wrong OpenWhisk key":
        auth = auth.split(":")[0] + ":" + "x" * 64
    elif case == "unreachable OpenWhisk":
        apihost = f"http://127.0.0.1:{closed_port()}"
    elif case == "unreachable Kafka":
        kafka_flags = ["--kafka-bootstrap", f"127.0.0.1:{closed_port()}"]
    elif case == "wrong Kafka password":
        kafka_flags = ["--kafka-bootstrap", kafka.sasl_bootstrap, "--kafka-security-protocol", "SASL_PLAINTEXT",
                       "--kafka-sasl-username", kafka.state.sasl_user]
        env["KAFKA_SASL_PASSWORD"] = "not-the-password"
    elif case == "no Kafka at all":
        kafka_flags = []
    elif case == "no OpenWhisk key":
        auth = ""
    elif case == "missing wskdeploy":
        env["WSKDEPLOY"] = str(tmp_path / "no-such-wskdeploy")
    state_dir = tmp_path / "state"
    args = ["--apihost", apihost, *(["--auth", auth] if auth else []), *kafka_flags, "--state-dir", str(state_dir),
            "--trigger-messages-topic", unique("ft")]
    started = time.monotonic()
    done = run_deploy(tools, tmp_path, *args, timeout_s=120, **env)
    assert done.returncode != 0, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert "deploy.sh: error:" in done.stderr
    assert time.monotonic() - started < 90
    assert openwhisk.api(OWNER).get("_/packages").json() == [], "a failed deploy deploys nothing"
    assert not state_dir.exists()


def test_an_existing_topic_that_breaks_the_contract_is_refused_not_changed(
        openwhisk: EmulatorHandle, kafka: KafkaHandle, tools: Tools, tmp_path: Path) -> None:
    """A subscriptions topic must be compacted with one partition; deploy.sh never alters a topic."""
    not_compacted = kafka.create_topic("bad-subs")
    two_partitions = kafka.create_topic("bad-subs", partitions=2, config={"cleanup.policy": "compact"})
    for topic, expected in ((not_compacted, "exists but has cleanup.policy='delete' (needs compact)"),
                            (two_partitions, "has 2 partitions but must have exactly 1")):
        done = run_deploy(tools, tmp_path, "--apihost", openwhisk.url, "--auth", openwhisk.auth(OWNER),
                          "--kafka-bootstrap", kafka.bootstrap, "--subscriptions-topic", topic,
                          "--trigger-messages-topic", unique("ok-tm"), "--dead-letter-topic", unique("ok-dl"),
                          "--state-dir", str(tmp_path / "state"))
        assert done.returncode == 1, done.stderr
        assert expected in done.stderr
        assert openwhisk.api(OWNER).get("_/packages").json() == []
    admin = kafka.admin()
    try:
        assert topic_config(admin, not_compacted)["cleanup.policy"] == "delete", "left as it was"
    finally:
        admin.close()


# ---- --local ------------------------------------------------------------------------------------

def _pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _wait_for_output(process: subprocess.Popen, log: Path, text: str, timeout_s: float) -> str:
    def seen() -> str | None:
        out = log.read_text(errors="replace")
        assert process.poll() is None or text in out, f"deploy.sh --local exited {process.returncode}:\n{out}"
        return out if text in out else None
    return wait_for(seen, timeout_s=timeout_s, interval_s=0.5, what=f"'{text}' from deploy.sh --local")


def _user_entities(tools: Tools, apihost: str, names: tuple[str, str, str]) -> tuple[str, str]:
    """The user's trigger (its parameters) and rule (its status), as `wsk` shows them."""
    trigger, _action, rule = names
    auth = STANDARD_AUTH[USER]
    got = json.loads(wsk(tools, apihost, auth, "trigger", "get", trigger).split("\n", 1)[1])
    return json.dumps(got["parameters"]), wsk(tools, apihost, auth, "rule", "status", rule)


def _as_from_a_terminal() -> None:
    """Ctrl-C as a terminal's shell would deliver it: a test run started in the background of a
    non-interactive shell (``cmd &``) ignores SIGINT, its children inherit that, and a shell
    started with SIGINT ignored cannot trap it (bash), so deploy.sh would never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_local_runs_the_demo_stays_up_is_safe_to_rerun_stops_on_ctrl_c_and_undeploys(
        tools: Tools, tmp_path: Path) -> None:
    state_dir = tmp_path / "local"
    ports = ["--kafka-port", "0", "--apihost-port", "0", "--consumer-port", "0", "--state-dir", str(state_dir)]
    log = tmp_path / "deploy-local.log"
    with open(log, "wb") as out:
        first = subprocess.Popen([DEPLOY, "--local", *ports], stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                 env=deploy_env(tools, tmp_path), start_new_session=True,
                                 preexec_fn=_as_from_a_terminal)
    try:
        output = _wait_for_output(first, log, "Press Ctrl-C to stop", timeout_s=240)
        assert "==> Demo: produce -> trigger -> rule -> action" in output
        assert '"hello": "world"' in output.split("$ wsk activation get", 1)[1], "the activation is printed"
        assert '"status": "success"' in output
        assert "==> Demo: kafkaProduce -> topic -> kafkaFeed trigger -> rule -> action" in output
        assert '"from": "kafka"' in output.split("$ wsk activation get")[2]
        pidfiles = [state_dir / "consumer.pid", state_dir / "emulator.pid"]
        assert all(_pid_alive(p) for p in pidfiles)
        assert f"export WSK_CONFIG_FILE={state_dir}/guest.wskprops" in output, "an absolute path"

        # the user's own trigger, action and rule
        apihost = (state_dir / "emulator.url").read_text().strip()
        guest = OpenWhisk(apihost, STANDARD_AUTH[USER])
        names = (unique("UT"), unique("UA"), unique("UR"))
        guest.put(f"triggers/{names[0]}", {"parameters": [{"key": "mine", "value": 1}]})
        guest.echo_action(names[1])
        guest.rule(names[2], names[0], names[1])
        users = _user_entities(tools, apihost, names)
        assert users[1] == f"ok: rule {names[2]} is active\n"

        again = subprocess.run([DEPLOY, "--local", "--detach", "--no-demo", "--state-dir", str(state_dir)],
                               capture_output=True, text=True, timeout=180, cwd=REPO_ROOT,
                               env=deploy_env(tools, tmp_path))
        assert again.returncode == 0, again.stderr
        assert again.stderr.count("already running") == 3 and again.stderr.count("left as it is") == 4
        assert "the one kept in" in again.stderr
        assert "this run reuses it and stops nothing" in again.stderr and "Stopping" not in again.stderr

        # a second run with the demo: it re-creates nothing and stops nothing
        with_demo = subprocess.run([DEPLOY, "--local", "--state-dir", str(state_dir)], capture_output=True,
                                   text=True, timeout=240, cwd=REPO_ROOT, env=deploy_env(tools, tmp_path))
        assert with_demo.returncode == 0, with_demo.stderr
        for entity in ("trigger demo-trigger", "action demo-action", "rule demo-rule", "trigger demo-feed-trigger",
                       "rule demo-feed-rule"):
            assert f"{entity} exists: left as it is" in with_demo.stderr
        assert "$ wsk trigger delete" not in with_demo.stderr and "Stopping" not in with_demo.stderr
        assert all(_pid_alive(p) for p in pidfiles) and first.poll() is None, "the first run's stack is still up"
        assert _user_entities(tools, apihost, names) == users

        # a message queued in Kafka when the stack stops: its fires fail (retried) until Ctrl-C
        fault = requests.post(f"{apihost}/_emulator/faults", timeout=30,
                              json={"scope": "fires", "status": 503, "trigger": f"/{USER}/{names[0]}"})
        assert fault.ok, fault.text
        wsk(tools, apihost, STANDARD_AUTH[USER], "action", "invoke", f"/{OWNER}/messaging/produce",
            "-p", "trigger", names[0], "-p", "payload", '{"queued": true}', "--result")
        wait_for(lambda: requests.get(f"{apihost}/_emulator/fires", timeout=30,
                                      params={"trigger": f"/{USER}/{names[0]}", "status": 503}).json()["fires"],
                 timeout_s=120, what="the queued message's first (refused) fire")

        os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C sends: to the terminal's whole process group
        assert first.wait(timeout=120) == 0, log.read_text()
        assert "==> Stopped" in log.read_text()
        assert "Traceback" not in log.read_text()
        assert not any(_pid_alive(p) for p in pidfiles)
        assert (state_dir / "kafka-data").is_dir(), "Ctrl-C keeps Kafka's data"
        assert (state_dir / "emulator-state.json").exists(), "Ctrl-C keeps the emulator's entities"
        assert (state_dir / "consumer-secrets.env").exists(), "Ctrl-C keeps the state"

        # the next --local resumes: the user's entities are back, the queued message fires
        resumed = subprocess.run([DEPLOY, "--local", "--detach", "--no-demo", *ports], capture_output=True,
                                 text=True, timeout=240, cwd=REPO_ROOT, env=deploy_env(tools, tmp_path))
        assert resumed.returncode == 0, resumed.stderr
        assert "reopening the kept Kafka data" in resumed.stderr
        apihost = (state_dir / "emulator.url").read_text().strip()
        assert _user_entities(tools, apihost, names) == users
        fired = wait_for(lambda: OpenWhisk(apihost, STANDARD_AUTH[USER]).activations(names[1]), timeout_s=120,
                         what="the queued message fired after the restart")
        assert fired[0]["response"]["result"]["received"]["queued"] is True
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        undeploy = subprocess.run([DEPLOY, "undeploy", "--local", "--state-dir", str(state_dir)],
                                  capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                                  env=deploy_env(tools, tmp_path))
    assert undeploy.returncode == 0, undeploy.stderr
    assert not state_dir.exists(), "undeploy --local leaves nothing behind"
