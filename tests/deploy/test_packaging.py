"""What ships: the consumer image, the compose example, the Kubernetes manifests, manifest.yaml.

No Docker daemon or Kubernetes cluster is needed (nor available in CI), so each artefact is checked
the way that comes closest to running it:

- the Dockerfile with hadolint, and the image's contents (exactly what its COPY lines and
  .dockerignore let in) run as its ENTRYPOINT and HEALTHCHECK would, against real Kafka;
- the compose file against the compose-spec schema (vendored in check-jsonschema);
- the Kubernetes manifests with kubeconform (built from its Go module) against the Kubernetes JSON
  schemas of the pinned PyPI package kubernetes-validate, served to it over loopback; a broken
  manifest must fail, so the schemas are really applied;
- how the pieces refer to each other (names, ports, probes, grace periods), which no schema knows.
"""

from __future__ import annotations

import ast
import dataclasses
import http.server
import importlib.metadata
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from packaging.requirements import Requirement

from actions import build
from consumer.settings import Settings
from local_stack.kafka import free_port
from messaging_lib.kafka_config import KafkaSettings
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.tools import REPO_ROOT

VENV_BIN = REPO_ROOT / ".venv" / "bin"
DOCKERFILE = REPO_ROOT / "consumer" / "Dockerfile"
K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
COMPOSE = REPO_ROOT / "deploy" / "docker-compose.yaml"
IMAGE_PACKAGES = ("consumer", "feed", "messaging_lib")  # the consumer imports feed.records
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")  # oldest and newest schemas kubernetes-validate ships
DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}  # Settings() itself needs a sealing key
CONSUMER_ENV_NAMES = ({f.name.upper() for f in dataclasses.fields(Settings) if f.name != "kafka"}
                      | {"KAFKA_" + f.name.upper() for f in dataclasses.fields(KafkaSettings)})


# ---- the Dockerfile -----------------------------------------------------------------------------

@dataclasses.dataclass
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [Instruction(*[*line.split(None, 1), ""][:2]) for line in lines]


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    start = max(i for i, ins in enumerate(instructions) if ins.keyword.upper() == "FROM")
    return instructions[start:]


def one(stage: list[Instruction], keyword: str) -> str:
    found = [ins.args for ins in stage if ins.keyword.upper() == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def from_images() -> list[str]:
    """Every FROM's arguments with the ARG defaults declared before the first FROM substituted: the
    images a plain `docker build` uses (BASE_IMAGE can be overridden, e.g. by local_stack/container)."""
    instructions = dockerfile()
    first = next(i for i, ins in enumerate(instructions) if ins.keyword.upper() == "FROM")
    defaults = dict(ins.args.split("=", 1) for ins in instructions[:first]
                    if ins.keyword.upper() == "ARG" and "=" in ins.args)
    return [re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m.group(1) or m.group(2)], ins.args)
            for ins in instructions if ins.keyword.upper() == "FROM"]


def test_the_image_is_slim_python_311_non_root_with_a_healthcheck_and_an_exec_entrypoint() -> None:
    froms = from_images()
    assert all(re.match(r"python:3\.11(\.\d+)?-slim", f) for f in froms), froms
    stage = final_stage()
    user = one(stage, "USER").split(":")[0]
    assert user.isdigit() and int(user) > 0, "a numeric non-root user (Kubernetes runAsNonRoot checks the uid)"
    assert json.loads(one(stage, "ENTRYPOINT")) == ["python", "-m", "consumer"], "exec form: python is PID 1"
    assert not [ins for ins in stage if ins.keyword.upper() == "CMD"], "configuration only from the environment"
    assert one(stage, "STOPSIGNAL") == "SIGTERM"
    assert "/healthz" in one(stage, "HEALTHCHECK")
    assert one(stage, "EXPOSE") == "8080" == str(DEFAULTS["http_port"])
    install = [ins.args for ins in dockerfile() if ins.keyword.upper() == "RUN" and "pip install" in ins.args]
    assert install and all("-r /tmp/requirements.txt" in i for i in install), "only the pinned requirements"


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "consumer" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def _third_party_imports() -> set[str]:
    names = set()
    for folder in IMAGE_PACKAGES:
        for path in (REPO_ROOT / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in IMAGE_PACKAGES}


def test_the_image_requirements_are_the_tested_versions_and_cover_every_import_and_dependency() -> None:
    pins = _requirements()
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, f"{name}: image pins {version}, tests run another"
    distributions = importlib.metadata.packages_distributions()
    for module in _third_party_imports():
        owners = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        assert owners & pins.keys(), f"the consumer imports {module} but consumer/requirements.txt lacks it"
    for name in pins:  # the closure: every dependency of a pinned package is pinned too
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                assert requirement.name.lower().replace("_", "-") in pins, f"{name} needs {requirement.name}"


def _copied_sources() -> list[str]:
    sources = []
    for ins in dockerfile():
        if ins.keyword.upper() == "COPY" and "--from=" not in ins.args:
            sources += ins.args.split()[:-1]
    return sources


def test_dockerignore_lets_in_exactly_what_the_image_copies() -> None:
    rules = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "exclude everything, then let in what the image needs"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for source in _copied_sources():
        assert source.split("/")[0] in allowed, f"COPY {source} but .dockerignore keeps it out"
        assert (REPO_ROOT / source).exists(), source
    assert allowed == set(IMAGE_PACKAGES)


@pytest.fixture
def image_app(tmp_path: Path) -> Path:
    """The image's /app: the directories the Dockerfile copies, minus what .dockerignore drops."""
    app = tmp_path / "app"
    for source in _copied_sources():
        if source.endswith("/"):
            shutil.copytree(REPO_ROOT / source, app / source.rstrip("/").split("/")[-1],
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    assert (app / "consumer" / "__main__.py").exists() and all((app / p).is_dir() for p in IMAGE_PACKAGES)
    return app


def _healthcheck_command() -> list[str]:
    args = one(final_stage(), "HEALTHCHECK")
    return json.loads(args[args.index("CMD") + 3:].strip())


@pytest.mark.timeout(180)
def test_the_image_contents_run_the_consumer_pass_the_healthcheck_and_stop_cleanly_on_sigterm(
        image_app: Path, kafka: KafkaHandle) -> None:
    port = free_port()
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(image_app), "PYTHONUNBUFFERED": "1",
           "HTTP_PORT": str(port), "ROLES": "firer,router", "SEALING_KEYS": Fernet.generate_key().decode(),
           "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "OPENWHISK_APIHOST": "http://127.0.0.1:9",
           "TRIGGER_MESSAGES_TOPIC": kafka.create_topic("img-tm"),
           "SUBSCRIPTIONS_TOPIC": kafka.create_topic("img-subs", config={"cleanup.policy": "compact"}),
           "DEAD_LETTER_TOPIC": kafka.create_topic("img-dl"), "FIRER_GROUP": f"img-{port}",
           "SHUTDOWN_TIMEOUT_S": "10"}
    log = image_app.parent / "consumer.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["python", "-m", "consumer"], cwd=image_app, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        healthy = None
        while time.monotonic() < deadline and process.poll() is None:
            healthy = subprocess.run(_healthcheck_command(), env=env, cwd=image_app, capture_output=True)
            if healthy.returncode == 0:
                break
            time.sleep(0.5)
        assert healthy is not None and healthy.returncode == 0, f"HEALTHCHECK never passed:\n{log.read_text()}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, f"not a clean exit on SIGTERM:\n{log.read_text()}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---- docker compose -----------------------------------------------------------------------------

def test_the_compose_file_is_valid_compose_spec() -> None:
    done = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(COMPOSE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _seconds(duration: str) -> float:
    return float(duration.rstrip("s"))


def test_the_compose_file_runs_kafka_openwhisk_and_the_consumer_wired_together() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"kafka", "openwhisk", "consumer"}
    kafka_env = services["kafka"]["environment"]
    advertised = dict(item.split("://") for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "deploy.sh creates the topics"
    consumer = services["consumer"]
    assert (COMPOSE.parent / consumer["build"]["context"]).resolve() == REPO_ROOT
    assert consumer["build"]["dockerfile"] == "consumer/Dockerfile"
    assert consumer["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == advertised["INTERNAL"]
    openwhisk_port = services["openwhisk"]["ports"][0].split(":")[-1]
    assert consumer["environment"]["OPENWHISK_APIHOST"] == f"http://openwhisk:{openwhisk_port}"
    assert set(consumer["environment"]) <= CONSUMER_ENV_NAMES
    assert [Path(f).name for f in consumer["env_file"]] == ["consumer.env", "consumer-secrets.env"]
    assert consumer["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert _seconds(consumer["stop_grace_period"]) > DEFAULTS["shutdown_timeout_s"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["openwhisk"]["volumes"]


# ---- Kubernetes ---------------------------------------------------------------------------------

def _documents() -> dict[str, dict]:
    """kind -> the resource, for every manifest in deploy/kubernetes."""
    found = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[doc["kind"]] = doc
    return found


def _serve_schemas(version: str) -> http.server.ThreadingHTTPServer:
    """Serves kubernetes-validate's strict schemas of one Kubernetes version under /api/.

    Its schemas name themselves https://kubernetes.io/api/... and refer to /api/_definitions.json,
    so as files they would make kubeconform fetch that URL from the network. Served here with that
    one field ($id) pointing at this server, every reference resolves to the package's own files."""
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    assert folder.is_dir(), f"kubernetes-validate has no schemas for {version}"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.split("?")[0].removeprefix("/api/")
            if "/" in name or not (folder / name).is_file():
                self.send_error(404)
                return
            schema = json.loads((folder / name).read_text())
            schema["$id"] = f"http://127.0.0.1:{self.server.server_port}/api/{name}"
            body = json.dumps(schema).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def schema_server() -> Iterator[dict[str, str]]:
    """Kubernetes version -> the URL of a loopback server with its schemas."""
    servers = {version: _serve_schemas(version) for version in KUBERNETES_VERSIONS}
    try:
        yield {version: f"http://127.0.0.1:{server.server_port}" for version, server in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()


def kubeconform(tools, schema_server: dict[str, str], version: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    location = f"{schema_server[version]}/api/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"
    return subprocess.run([tools.kubeconform, "-strict", "-summary", "-verbose", "-skip", "Kustomization",
                           "-schema-location", location, "-kubernetes-version", version, *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def kubeconform_tools():
    out = subprocess.run(["bash", str(REPO_ROOT / "local_stack" / "build_tools.sh"), "kubeconform"],
                         capture_output=True, text=True, check=True).stdout
    path = re.search(r"^kubeconform=(\S+)", out, re.M)
    assert path, out

    class Tools:
        kubeconform = path.group(1)
    return Tools


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kubernetes_manifests_pass_kubeconform(kubeconform_tools, schema_server: dict[str, str],
                                                   version: str) -> None:
    done = kubeconform(kubeconform_tools, schema_server, version, K8S_DIR)
    resources = len(_documents()) - 1  # all but the Kustomization
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Valid: {resources}, Invalid: 0, Errors: 0, Skipped: 1" in done.stdout, done.stdout


def test_kubeconform_rejects_a_broken_manifest(kubeconform_tools, schema_server: dict[str, str],
                                              tmp_path: Path) -> None:
    broken = (K8S_DIR / "consumer.yaml").read_text().replace("httpGet:", "httpGett:", 1)
    (tmp_path / "consumer.yaml").write_text(broken.replace("replicas: 2", "replicas: two"))
    done = kubeconform(kubeconform_tools, schema_server, KUBERNETES_VERSIONS[-1], tmp_path / "consumer.yaml")
    assert done.returncode == 1, done.stdout
    assert "additional properties 'httpGett' not allowed" in done.stdout
    assert "/spec/replicas" in done.stdout


def test_the_kubernetes_manifests_fit_together_and_fit_the_image() -> None:
    docs = _documents()
    deployment, container = docs["Deployment"], docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        selector = docs[kind]["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), kind
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {p["containerPort"] for p in container["ports"]} == {int(one(final_stage(), "EXPOSE"))}
    assert {"requests", "limits"} <= container["resources"].keys()
    sources = {next(iter(s.values()))["name"]: next(iter(s)) for s in container["envFrom"]}
    assert sources == {docs["ConfigMap"]["metadata"]["name"]: "configMapRef",
                       docs["Secret"]["metadata"]["name"]: "secretRef"}
    config, secret = docs["ConfigMap"]["data"], docs["Secret"]["stringData"]
    assert set(config) | set(secret) <= CONSUMER_ENV_NAMES, "every key is a consumer setting"
    assert "SEALING_KEYS" in secret and "SEALING_KEYS" not in config and "KAFKA_SASL_PASSWORD" not in config
    assert pod["terminationGracePeriodSeconds"] > float(config["SHUTDOWN_TIMEOUT_S"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == one(final_stage(), "USER").split(":")[0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    kustomization = docs["Kustomization"]
    assert all((K8S_DIR / r).exists() for r in kustomization["resources"])
    assert not {"configmap.yaml", "secret.yaml"} & set(kustomization["resources"]), \
        "applying the kustomization must never overwrite the operator's ConfigMap and Secret"


# ---- manifest.yaml and the deployment file ------------------------------------------------------

def _manifest() -> dict:
    return yaml.safe_load((REPO_ROOT / "manifest.yaml").read_text())["packages"]


def test_secrets_stay_off_the_public_package_and_its_settings_cannot_clash_with_the_web_actions() -> None:
    packages = _manifest()
    public, private = packages["messaging"], packages["messagingWeb"]
    assert public["public"] is True and private["public"] is False
    public_inputs, private_inputs = set(public.get("inputs", {})), set(private["inputs"])
    assert public_inputs, "non-secret settings live on messaging"
    assert not public_inputs & private_inputs, \
        "the public actions forward their parameters; a name bound on messagingWeb too is refused (final)"
    assert not [n for n in public_inputs if re.search("key|password|secret|sasl|token", n, re.I)]
    assert {"sealing_keys", "kafka_sasl_password"} <= private_inputs


def test_every_action_is_documented_annotated_and_built() -> None:
    packages = _manifest()
    public = packages["messaging"]["actions"]
    assert {"produce", "token", "kafkaFeed", "kafkaProduce"} <= set(public)
    for name, action in public.items():
        assert action.get("description"), name
        documented = action["annotations"]["parameters"]
        assert documented and all({"name", "description"} <= p.keys() for p in documented), name
    for name in ("produce", "token", "kafkaFeed"):
        assert public[name]["annotations"]["provide-api-key"] is True, name
    assert public["kafkaFeed"]["annotations"]["feed"] is True
    assert "provide-api-key" not in public["kafkaProduce"]["annotations"], "kafkaProduce needs no OpenWhisk key"
    for name, action in packages["messagingWeb"]["actions"].items():
        assert action.get("web-export") is True, name
    for package in packages.values():
        for action in package["actions"].values():
            assert Path(action["function"]).name in build.ACTIONS, action["function"]
            assert action["runtime"] == "python:3.11"
    assert {"kafka-produce": "actions.kafka_produce"}.items() <= build.ACTIONS.items()


def test_the_deployment_template_only_sets_inputs_the_manifest_has() -> None:
    assert not (REPO_ROOT / "deployment.yaml").exists(), "wskdeploy would load it by itself"
    template = yaml.safe_load((REPO_ROOT / "deployment.example.yaml").read_text())["packages"]
    manifest = _manifest()
    for package, body in template.items():
        assert set(body) == {"inputs"}, package
        assert set(body["inputs"]) <= set(manifest[package].get("inputs", {})), package
    assert "sealing_keys" not in template["messagingWeb"]["inputs"], "deploy.sh manages the sealing key"


# ---- deploy.sh as a program ---------------------------------------------------------------------

def test_deploy_sh_passes_shellcheck() -> None:
    done = subprocess.run([str(VENV_BIN / "shellcheck"), "deploy.sh", "local_stack/build_tools.sh", "test.sh"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_deploy_sh_help_documents_every_flag_and_the_environment() -> None:
    script = (REPO_ROOT / "deploy.sh").read_text()
    mode = (REPO_ROOT / "deploy.sh").stat().st_mode
    assert mode & stat.S_IXUSR, "deploy.sh is executable"
    done = subprocess.run([str(REPO_ROOT / "deploy.sh"), "--help"], capture_output=True, text=True,
                          env={**os.environ, "HOME": "/nonexistent"}, timeout=30)
    assert done.returncode == 0
    flags = set(re.findall(r"^\s+(--[a-z-]+)\)", script, re.M)) | set(re.findall(r"\|(--[a-z-]+)\)", script))
    assert len(flags) > 20
    for flag in flags:
        assert flag in done.stdout, f"{flag} is not in --help"
    for variable in ("WHISK_APIHOST", "WHISK_AUTH", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SASL_PASSWORD",
                     "SEALING_KEYS", "MESSAGING_STATE_DIR", "WSKDEPLOY", "TRIGGER_MESSAGES_TOPIC", ".wskprops"):
        assert variable in done.stdout, variable
    bad = subprocess.run([str(REPO_ROOT / "deploy.sh"), "--no-such-flag"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode != 0 and "unknown option '--no-such-flag'" in bad.stderr
