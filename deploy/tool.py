"""The steps of ./deploy.sh that are easier to get right in Python than in bash.

deploy.sh stays the readable list of steps; this module does the parts that talk to Kafka or the
OpenWhisk API, or manage the local processes, and turns every failure into one sentence that says
what went wrong and what to do (exit status 1; 2 for usage errors). Secrets never go on a command
line: the OpenWhisk key comes from OW_AUTH, Kafka settings from the consumer's own KAFKA_* variables
(messaging_lib.kafka_config), so `ps` shows nothing worth stealing.

    python -m deploy.tool check-openwhisk --apihost URL            # prints the key's namespace
    python -m deploy.tool deployed-keys --apihost URL              # sealing keys of a deployed messagingWeb
    python -m deploy.tool new-key                                  # a fresh Fernet sealing key
    python -m deploy.tool topics --trigger-messages-topic T ...    # create or check the three topics
    python -m deploy.tool create-topic NAME                        # one plain topic (the demo's)
    python -m deploy.tool delete-topics NAME...                    # those that exist
    python -m deploy.tool spawn --pidfile F --log L -- CMD...      # start a detached process
    python -m deploy.tool stop --pidfile F                         # SIGTERM its process group, then SIGKILL
    python -m deploy.tool running --pidfile F                      # exit 0 if alive
    python -m deploy.tool wait-line --log L --prefix P --pidfile F # print the rest of the first line with P
    python -m deploy.tool wait-ready URL --pidfile F               # until URL answers 200
    python -m deploy.tool free-port | port-free PORT
    python -m deploy.tool wait-activation --apihost URL --name A --since MS   # prints its id
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from local_stack.kafka import free_port, port_is_free
from messaging_lib import topics
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

WEB_PACKAGE = "messagingWeb"
DAY_MS = 24 * 3600 * 1000
HTTP_TIMEOUT_S = 15


class DeployError(Exception):
    """A step failed; the message says what went wrong and what to do."""


# ---- OpenWhisk ----------------------------------------------------------------------------------

def _auth() -> tuple[str, str]:
    key = os.environ.get("OW_AUTH", "")
    if ":" not in key:
        raise DeployError("no OpenWhisk key: pass --auth UUID:KEY, set WHISK_AUTH, or put AUTH=... in ~/.wskprops")
    user, _, password = key.partition(":")
    return user, password


def _get(url: str, what: str, auth: bool = True, verify: bool = True) -> requests.Response:
    try:
        return requests.get(url, auth=_auth() if auth else None, timeout=HTTP_TIMEOUT_S, verify=verify)
    except requests.exceptions.SSLError as e:
        raise DeployError(f"TLS failed talking to {what}: {e}. Use --insecure for a self-signed certificate") from None
    except requests.RequestException as e:
        raise DeployError(f"{what} is unreachable ({type(e).__name__}): check --apihost (or APIHOST in "
                          "~/.wskprops) and that OpenWhisk is running") from None


def check_openwhisk(apihost: str, verify: bool) -> str:
    """The namespace the key belongs to, after checking the host is OpenWhisk and accepts the key."""
    response = _get(f"{apihost}/api/v1", f"the OpenWhisk API at {apihost}", auth=False, verify=verify)
    try:
        ok = response.status_code == 200 and "api_version" in response.json()
    except ValueError:
        ok = False
    if not ok:
        raise DeployError(f"{apihost} does not look like an OpenWhisk API host (GET /api/v1 answered "
                          f"{response.status_code}): check --apihost")
    response = _get(f"{apihost}/api/v1/namespaces", f"the OpenWhisk API at {apihost}", verify=verify)
    if response.status_code in (401, 403):
        raise DeployError(f"OpenWhisk at {apihost} rejected the key ({response.status_code}): check --auth "
                          "(or WHISK_AUTH, or AUTH in ~/.wskprops); deploy with the key of the namespace that "
                          "should own the package, e.g. whisk.system")
    if response.status_code != 200:
        raise DeployError(f"OpenWhisk at {apihost} answered {response.status_code} to GET /api/v1/namespaces")
    namespaces = response.json()
    if not namespaces:
        raise DeployError(f"the key has no namespace on {apihost}")
    return str(namespaces[0])


def deployed_keys(apihost: str, namespace: str, verify: bool) -> str:
    """The sealing keys bound on an already deployed messagingWeb ('' if it is not deployed), so a
    redeploy keeps the key that sealed the credentials already handed out."""
    response = _get(f"{apihost}/api/v1/namespaces/{namespace}/packages/{WEB_PACKAGE}", f"OpenWhisk at {apihost}",
                    verify=verify)
    if response.status_code == 404:
        return ""
    if response.status_code != 200:
        raise DeployError(f"reading the deployed {WEB_PACKAGE} package failed: {response.status_code}")
    for parameter in response.json().get("parameters", []):
        if parameter.get("key") == "sealing_keys" and isinstance(parameter.get("value"), str):
            return parameter["value"]
    return ""


def wait_activation(apihost: str, name: str, since_ms: int, timeout_s: float, verify: bool) -> str:
    """The id of the first activation of `name` that started after since_ms."""
    def check() -> str | None:
        response = _get(f"{apihost}/api/v1/namespaces/_/activations?name={name}&since={since_ms}&limit=1",
                        f"OpenWhisk at {apihost}", verify=verify)
        found = response.json() if response.status_code == 200 else []
        return found[0]["activationId"] if found else None
    return _until(check, timeout_s, f"no activation of {name} within {timeout_s:.0f}s: is the consumer running? "
                                    "(see its log)")


# ---- Kafka --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    required: dict[str, str]  # settings the system is wrong without (checked on existing topics)
    purpose: str
    exact_partitions: bool = False  # the count is part of the contract, not a capacity


def topic_specs(args: argparse.Namespace) -> list[TopicSpec]:
    return [
        TopicSpec(args.trigger_messages_topic, args.partitions,
                  {"cleanup.policy": "delete", "retention.ms": str(args.retention_hours * 3600 * 1000)}, {},
                  "trigger messages (envelopes) for the firers"),
        TopicSpec(args.subscriptions_topic, topics.SUBSCRIPTIONS_TOPIC_PARTITIONS,
                  topics.SUBSCRIPTIONS_TOPIC_CONFIG, {"cleanup.policy": "compact"},
                  "feed subscriptions, compacted, one partition for one order: the routers' only state",
                  exact_partitions=True),
        TopicSpec(args.dead_letter_topic, args.dead_letter_partitions,
                  {"cleanup.policy": "delete", "retention.ms": str(args.dead_letter_retention_days * DAY_MS),
                   "max.message.bytes": str(args.dead_letter_max_message_bytes)}, {},
                  "dead letters, kept for inspection and replay"),
    ]


class _KafkaLog(logging.Handler):
    """Keeps kafka-python's log lines (instead of printing them): a refused SASL login shows only
    there, the exception being a plain 'cannot bootstrap'."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def login_refused(self) -> bool:
        return any("Authentication failed" in line or "SaslAuthenticationFailed" in line for line in self.lines)


def _connect(settings: KafkaSettings) -> KafkaAdminClient:
    """An admin client, within 10 s; the log lines of a failure are kept for the error message."""
    connect_timeout = ("bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG
                       else "api_version_auto_timeout_ms")  # kafka-python 3, else 2
    kafka_log, logger = _KafkaLog(), logging.getLogger("kafka")
    logger.addHandler(kafka_log)
    logger.propagate = False
    servers = ",".join(settings.bootstrap_servers)
    try:
        return KafkaAdminClient(**settings.client_kwargs(), client_id="openwhisk-messaging-deploy",
                                request_timeout_ms=30_000, **{connect_timeout: 10_000})
    except KafkaError as e:
        if kafka_log.login_refused():
            raise DeployError(f"Kafka at {servers} refused the SASL login of '{settings.sasl_username}' "
                              f"({settings.sasl_mechanism}): check --kafka-sasl-username and the password "
                              "(KAFKA_SASL_PASSWORD)") from None
        hint = (f", the SASL user (--kafka-sasl-username {settings.sasl_username}) and the password "
                "(KAFKA_SASL_PASSWORD)" if settings.sasl_mechanism else "")
        raise DeployError(f"Kafka at {servers} is unreachable ({settings.security_protocol}, "
                          f"{type(e).__name__}): check --kafka-bootstrap (KAFKA_BOOTSTRAP_SERVERS){hint}, and that "
                          "the brokers are running") from None
    finally:
        logger.removeHandler(kafka_log)


@contextlib.contextmanager
def _admin():
    try:
        settings = KafkaSettings.from_env(os.environ)
    except ConfigError as e:
        raise DeployError(f"Kafka settings: {e}") from None
    servers = ",".join(settings.bootstrap_servers)
    admin = _connect(settings)
    try:
        yield admin
    except KafkaError as e:
        raise DeployError(f"Kafka at {servers} refused: {type(e).__name__}: {e}") from None
    finally:
        admin.close()


def _replication(admin: KafkaAdminClient, wanted: int) -> int:
    brokers = len(admin.describe_cluster()["brokers"])
    if wanted > brokers:
        raise DeployError(f"--replication-factor {wanted} needs {wanted} brokers; the cluster has {brokers}")
    return wanted or min(3, brokers)


def topic_config(admin: KafkaAdminClient, topic: str) -> dict[str, str]:
    """Every setting of a topic, defaults included."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    try:
        result = admin.describe_configs([resource], config_filter="all")  # kafka-python 3
    except TypeError:
        result = admin.describe_configs([resource])  # kafka-python 2: all, as tuples
    if isinstance(result, dict):
        return {name: entry["value"] for name, entry in result["topic"][topic].items()}
    return {entry[0]: entry[1] for entry in result[0].resources[0][4]}


def ensure_topics(specs: Sequence[TopicSpec], replication_factor: int, out: Callable[[str], None]) -> None:
    """Create the missing topics; check the existing ones (never changes an existing topic). The
    name of each topic created is printed on stdout at once: undeploy deletes only those."""
    with _admin() as admin:
        replicas = _replication(admin, replication_factor)
        existing = set(admin.list_topics())
        problems = []
        for spec in specs:
            if spec.name not in existing:
                try:
                    admin.create_topics([NewTopic(spec.name, spec.partitions, replicas, topic_configs=spec.config)])
                    print(spec.name, flush=True)
                    out(f"created topic {spec.name}: {spec.partitions} partitions, replication {replicas}, "
                        + ", ".join(f"{k}={v}" for k, v in spec.config.items()) + f" ({spec.purpose})")
                    continue
                except TopicAlreadyExistsError:
                    pass  # created by someone else meanwhile: check it like any existing topic
            partitions = len(admin.describe_topics([spec.name])[0]["partitions"])
            config = topic_config(admin, spec.name)
            wrong = {k: v for k, v in spec.required.items() if v not in config.get(k, "").split(",")}
            if spec.exact_partitions and partitions != spec.partitions:
                problems.append(f"topic {spec.name} has {partitions} partitions but must have exactly "
                                f"{spec.partitions}: delete it (its subscriptions go with it) and deploy again")
                continue
            if wrong:
                problems.append(f"topic {spec.name} exists but has " + ", ".join(
                    f"{k}={config.get(k)!r} (needs {v})" for k, v in wrong.items())
                    + f"; fix it: kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
                    + " ".join(f"--add-config {k}={v}" for k, v in wrong.items()))
                continue
            note = "" if partitions >= spec.partitions else (
                f"; note: {partitions} partitions, fewer than the {spec.partitions} asked for (not changed: adding "
                "partitions moves keys, so do it with kafka-topics.sh --alter when the consumers are idle)")
            out(f"topic {spec.name} exists ({partitions} partitions), left as it is{note}")
        if problems:
            raise DeployError("\n".join(problems))


def create_topic(name: str, partitions: int, out: Callable[[str], None]) -> None:
    with _admin() as admin:
        if name in set(admin.list_topics()):
            out(f"topic {name} exists")
            return
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(name, partitions, _replication(admin, 0))])
        out(f"created topic {name}")


def delete_topics(names: Sequence[str], out: Callable[[str], None]) -> None:
    with _admin() as admin:
        present = [n for n in names if n in set(admin.list_topics())]
        for name in present:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics([name])
            out(f"deleted topic {name}")
        for name in sorted(set(names) - set(present)):
            out(f"topic {name} does not exist (nothing to delete)")
        _until(lambda: not set(present) & set(admin.list_topics()), 30, "topics still listed 30s after deletion")


# ---- local processes ----------------------------------------------------------------------------

def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (/proc/PID/stat field 22), '' if it is gone: with
    the pid it identifies our process, so a recycled pid is never signalled."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] == "Z" else fields[19]


def _pid(pidfile: Path) -> int | None:
    """The pid recorded in pidfile if that very process is still running."""
    try:
        pid_text, started = pidfile.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if started and _start_time(pid) == started else None


def spawn(pidfile: Path, log: Path, command: Sequence[str]) -> int:
    """Start `command` in its own session (Ctrl-C in the terminal does not reach it; deploy.sh
    stops it in order), output appended to `log`, its pid written to `pidfile`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    pidfile.write_text(f"{process.pid} {_start_time(process.pid)}\n")
    return process.pid


def stop(pidfile: Path, timeout_s: float) -> bool:
    """SIGTERM the process group of the process in pidfile, SIGKILL after timeout_s; False if it
    was not running. Only that group is signalled: it was started by spawn() as its own session."""
    pid = _pid(pidfile)
    if pid is not None:
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _pid(pidfile) is not None:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.1)
            if _pid(pidfile) is None:
                break
    pidfile.unlink(missing_ok=True)
    return pid is not None


def _tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _until(check: Callable[[], object], timeout_s: float, failure: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DeployError(failure)
        time.sleep(interval_s)


def wait_line(log: Path, prefix: str, pidfile: Path, timeout_s: float) -> str:
    def check() -> str | None:
        if _pid(pidfile) is None:
            raise DeployError(f"the process of {pidfile.name} exited; its log ({log}) ends with:\n{_tail(log)}")
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        return None
    return _until(check, timeout_s, f"no '{prefix}' in {log} after {timeout_s:.0f}s:\n{_tail(log)}")


def wait_ready(url: str, pidfile: Path, log: Path, timeout_s: float) -> None:
    def check() -> bool:
        if _pid(pidfile) is None:
            raise DeployError(f"the process of {pidfile.name} exited; its log ({log}) ends with:\n{_tail(log)}")
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False
    _until(check, timeout_s, f"{url} not ready after {timeout_s:.0f}s; the log ({log}) ends with:\n{_tail(log)}")





# ---- command line -------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deploy.tool", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("check-openwhisk", "deployed-keys", "wait-activation"):
        c = sub.add_parser(name)
        c.add_argument("--apihost", required=True)
        c.add_argument("--insecure", action="store_true")
        if name == "deployed-keys":
            c.add_argument("--namespace", default="_")
        if name == "wait-activation":
            c.add_argument("--name", required=True)
            c.add_argument("--since", type=int, required=True)
            c.add_argument("--timeout", type=float, default=60)
    sub.add_parser("new-key")
    t = sub.add_parser("topics")
    t.add_argument("--trigger-messages-topic", required=True)
    t.add_argument("--subscriptions-topic", required=True)
    t.add_argument("--dead-letter-topic", required=True)
    t.add_argument("--partitions", type=int, default=12)
    t.add_argument("--dead-letter-partitions", type=int, default=3)
    t.add_argument("--replication-factor", type=int, default=0, help="0: min(3, brokers)")
    t.add_argument("--retention-hours", type=int, default=168)
    t.add_argument("--dead-letter-retention-days", type=int, default=14)
    t.add_argument("--dead-letter-max-message-bytes", type=int, default=2 * 1024 * 1024)
    c = sub.add_parser("create-topic")
    c.add_argument("name")
    c.add_argument("--partitions", type=int, default=1)
    d = sub.add_parser("delete-topics")
    d.add_argument("names", nargs="+")
    s = sub.add_parser("spawn")
    s.add_argument("--pidfile", type=Path, required=True)
    s.add_argument("--log", type=Path, required=True)
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    for name in ("stop", "running"):
        c = sub.add_parser(name)
        c.add_argument("--pidfile", type=Path, required=True)
        c.add_argument("--timeout", type=float, default=30)
    w = sub.add_parser("wait-line")
    w.add_argument("--log", type=Path, required=True)
    w.add_argument("--prefix", required=True)
    w.add_argument("--pidfile", type=Path, required=True)
    w.add_argument("--timeout", type=float, default=120)
    r = sub.add_parser("wait-ready")
    r.add_argument("url")
    r.add_argument("--pidfile", type=Path, required=True)
    r.add_argument("--log", type=Path, required=True)
    r.add_argument("--timeout", type=float, default=120)
    sub.add_parser("free-port")
    f = sub.add_parser("port-free")
    f.add_argument("port", type=int)
    return p


def _say(line: str) -> None:
    print(f"    {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    apihost = getattr(args, "apihost", "").rstrip("/")
    verify = not getattr(args, "insecure", False)
    command = args.command
    if command == "check-openwhisk":
        print(check_openwhisk(apihost, verify))
    elif command == "deployed-keys":
        print(deployed_keys(apihost, args.namespace, verify))
    elif command == "wait-activation":
        print(wait_activation(apihost, args.name, args.since, args.timeout, verify))
    elif command == "new-key":
        print(Fernet.generate_key().decode())
    elif command == "topics":
        ensure_topics(topic_specs(args), args.replication_factor, _say)
    elif command == "create-topic":
        create_topic(args.name, args.partitions, _say)
    elif command == "delete-topics":
        delete_topics(args.names, _say)
    elif command == "spawn":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        print(spawn(args.pidfile, args.log, cmd))
    elif command == "stop":
        stop(args.pidfile, args.timeout)
    elif command == "running":
        return 0 if _pid(args.pidfile) is not None else 1
    elif command == "wait-line":
        print(wait_line(args.log, args.prefix, args.pidfile, args.timeout))
    elif command == "wait-ready":
        wait_ready(args.url, args.pidfile, args.log, args.timeout)
    elif command == "free-port":
        print(free_port())
    elif command == "port-free":
        return 0 if port_is_free(args.port) else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kept by _KafkaLog, never printed: see DeployError
    logging.getLogger("kafka").propagate = False
    try:
        return run(args)
    except DeployError as e:
        print(f"\ndeploy.sh: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
