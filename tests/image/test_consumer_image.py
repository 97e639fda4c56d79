"""The consumer image, built from consumer/Dockerfile and run as an operator would run it.

deploy.sh deploys the package into an emulator of this module's own, with real Kafka and topics of
this run, and writes the consumer's two env files; the container gets exactly those (`--env-file`),
plus a free health port, on the host network (how containers run on these machines). It must
become healthy by its own HEALTHCHECK, fire a trigger for a message `produce` sent, run as the
unprivileged user on a read-only root filesystem, and stop on SIGTERM within the grace period,
exit 0, after its roles log that they stopped.

local_stack/container/setup.sh installs and configures podman, makes the base image once and builds
the image (cached after the first run). Where podman cannot be installed, the test skips with the
reason, except in CI (CI=true), where it fails: there it must run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from local_stack.kafka import free_port
from tests.e2e.helpers import OpenWhisk, unique, wait_for
from tests.fixtures.deploy import run_deploy
from tests.fixtures.emulator import EmulatorHandle, emulator_fixture
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.tools import REPO_ROOT, Tools

pytestmark = pytest.mark.timeout(900)  # a first run installs podman, makes the base image and builds: 1-3 min
SETUP = REPO_ROOT / "local_stack" / "container" / "setup.sh"
IMAGE = "localhost/openwhisk-messaging-consumer:local"  # setup.sh's default tag, so test.sh's build is reused
NOT_INSTALLABLE = 3  # setup.sh's exit status when podman cannot be installed on this machine
IMAGE_USER = (10001, 10001)
GRACE_S = 30  # podman stop -t: the consumer drains for SHUTDOWN_TIMEOUT_S (10 s here) at most
OWNER, USER = "whisk.system", "guest"


def podman(*args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout_s)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def image() -> str:
    """The consumer image tag, built (or found cached) by setup.sh."""
    started = time.monotonic()
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1200, cwd=REPO_ROOT,
                          env={**os.environ, "CONSUMER_IMAGE": IMAGE})
    print(done.stderr, f"setup.sh took {time.monotonic() - started:.0f}s", sep="\n")
    if done.returncode == NOT_INSTALLABLE and os.environ.get("CI") != "true":
        pytest.skip(f"podman not installable here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, f"setup.sh exited {done.returncode}:\n{done.stderr}"
    return IMAGE


openwhisk = emulator_fixture("image-emulator",
                             "An OpenWhisk host of this module's own (deploy.sh installs the package into it).")


@pytest.fixture(scope="module")
def state_dir(openwhisk: EmulatorHandle, kafka: KafkaHandle, tools: Tools,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state directory of a real `./deploy.sh` (its consumer.env and consumer-secrets.env)."""
    home = tmp_path_factory.mktemp("image-home")
    state = home / "state"
    run = uuid.uuid4().hex[:8]
    done = run_deploy(
        tools, home, "--apihost", openwhisk.url, "--auth", openwhisk.auth(OWNER),
        "--state-dir", str(state), "--kafka-bootstrap", kafka.bootstrap, "--partitions", "2",
        "--trigger-messages-topic", f"img-messages-{run}", "--subscriptions-topic", f"img-subscriptions-{run}",
        "--dead-letter-topic", f"img-dead-letters-{run}", timeout_s=300)
    assert done.returncode == 0, done.stderr
    return state


@dataclass
class Container:
    """One running container of the image, named for this test."""

    name: str
    port: int

    def inspect(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def health_check(self) -> bool:
        """Runs the image's HEALTHCHECK now (podman's timer needs systemd, absent here)."""
        assert self.running(), f"the container exited:\n{self.logs()}"
        return podman("healthcheck", "run", self.name, check=False, timeout_s=60).returncode == 0

    def ready(self) -> bool:
        assert self.running(), f"the container exited:\n{self.logs()}"
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False


@pytest.fixture
def container(image: str, state_dir: Path) -> Iterator[Container]:
    """The image run with deploy.sh's env files, read-only, on the host network, detached."""
    name, port = f"consumer-{uuid.uuid4().hex[:8]}", free_port()
    podman("run", "--detach", "--name", name, "--network", "host", "--read-only",
           "--env-file", str(state_dir / "consumer.env"), "--env-file", str(state_dir / "consumer-secrets.env"),
           "--env", f"HTTP_PORT={port}", "--env", "HTTP_HOST=127.0.0.1", "--env", "SHUTDOWN_TIMEOUT_S=10",
           image)
    handle = Container(name, port)
    try:
        yield handle
    finally:
        print(f"--- container {name} log ---", handle.logs(), sep="\n")
        podman("rm", "--force", "--time", "0", name, check=False)


def test_the_image_runs_healthy_read_only_unprivileged_fires_and_stops_cleanly(
        container: Container, openwhisk: EmulatorHandle, tools: Tools) -> None:
    wait_for(container.health_check, timeout_s=120, interval_s=1, what="the image's HEALTHCHECK to pass")
    assert container.inspect("{{.State.Health.Status}}") == "healthy"
    wait_for(container.ready, timeout_s=120, what="the consumer's /readyz")

    # the process runs as the image's user, on a root filesystem it cannot write
    assert container.inspect("{{.Config.User}}") == "{}:{}".format(*IMAGE_USER)
    host_pid = container.inspect("{{.State.Pid}}")
    status = Path(f"/proc/{host_pid}/status").read_text().splitlines()
    ids = {key: int(value.split()[0]) for key, _, value in (line.partition(":") for line in status)
           if key in ("Uid", "Gid")}
    assert (ids["Uid"], ids["Gid"]) == IMAGE_USER, status  # real uid/gid on the host: no user namespace
    assert podman("exec", container.name, "id", "-un").stdout.strip() == "consumer"
    assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    for path in ("/app/written", "/opt/venv/written"):
        write = podman("exec", container.name, "touch", path, check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write

    # a message sent with `produce` fires the user's trigger, whose rule runs the action
    guest_auth = openwhisk.auth(USER)
    guest = OpenWhisk(openwhisk.url, guest_auth)
    trigger, action = guest.trigger(unique("T")), guest.echo_action(unique("A"))
    guest.rule(unique("R"), trigger, action)
    produce = subprocess.run(
        [tools.wsk, "--apihost", openwhisk.url, "-u", guest_auth, "action", "invoke", f"/{OWNER}/messaging/produce",
         "-p", "trigger", trigger, "-p", "payload", '{"via": "image"}', "--result"],
        capture_output=True, text=True, timeout=120)
    assert produce.returncode == 0, produce.stderr
    assert "topic" in json.loads(produce.stdout)
    fired = wait_for(lambda: guest.activations(action), timeout_s=120, what="the rule's action after produce")
    assert fired[0]["response"]["result"]["received"]["via"] == "image"

    # SIGTERM (podman stop): drained and stopped within the grace period, exit 0, no SIGKILL
    started = time.monotonic()
    podman("stop", "--time", str(GRACE_S), container.name, timeout_s=GRACE_S + 60)
    took = time.monotonic() - started
    assert took < GRACE_S, f"the stop took {took:.1f}s, the grace period is {GRACE_S}s"
    assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()
    logs = container.logs()
    assert "firer stopped" in logs and "router stopped" in logs, logs
