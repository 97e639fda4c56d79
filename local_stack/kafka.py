"""The real Apache Kafka broker for tests and `./deploy.sh --local`.

Resolves Apache's broker jars (pinned version, `kafka.Kafka` main class) from Maven Central with
`mvn` into a cache, formats KRaft storage in a data directory and runs a single-node broker bound
to 127.0.0.1. Nothing here fakes Kafka: every test that says "Kafka" talks to this process.

    python -m local_stack.kafka start [--port N] [--sasl-port N --sasl-user U --sasl-password P]
                                      [--authorizer] [--message-max-bytes N] [--data-dir D] [--name NAME]
    python -m local_stack.kafka status [--name NAME]
    python -m local_stack.kafka stop [--name NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.ports import free_port, port_is_free

KAFKA_VERSION = "4.1.1"  # must match local_stack/kafka/pom.xml
REPO_ROOT = Path(__file__).resolve().parent.parent
POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
READY_LINE = "Kafka Server started"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# The principals of an --authorizer broker besides the super user (sasl_user): the consumer and deploy,
# an external producer of trigger messages, and a tenant. Local test passwords, never real secrets.
ACL_PRINCIPALS: dict[str, str] = {"service": "service-secret", "producer": "producer-secret",
                                  "tenant": "tenant-secret"}


class KafkaStackError(RuntimeError):
    """A broker could not be resolved, started or stopped; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("LOCAL_STACK_CACHE", REPO_ROOT / ".cache"))


def _require(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise KafkaStackError(f"'{tool}' not found on PATH: {why}")
    return path


def resolve_jars(progress: bool = True) -> Path:
    """Copy the broker's runtime classpath from Maven Central into the cache (once per version)."""
    libs = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    stamp = libs / ".complete"
    if stamp.exists():
        return libs
    mvn = _require("mvn", "Maven resolves the Apache Kafka jars (install Maven, e.g. apt-get install maven)")
    _require("java", "the Kafka broker runs on Java 17+ (install a JDK, e.g. apt-get install openjdk-17-jre)")
    if progress:
        print(f"kafka: resolving Apache Kafka {KAFKA_VERSION} jars with mvn into {libs}", file=sys.stderr)
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime", f"-Dkafka.version={KAFKA_VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise KafkaStackError(f"mvn could not resolve the Kafka jars:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    stamp.touch()
    return libs


@dataclass(frozen=True)
class BrokerConfig:
    """How one single-node KRaft broker is laid out; ports 0 mean 'pick a free one'."""

    port: int = 0
    controller_port: int = 0
    sasl_port: int | None = None  # a SASL_PLAINTEXT (PLAIN) listener when set (0 = free port)
    sasl_user: str = "messaging"
    sasl_password: str = "messaging-secret"
    # KRaft's StandardAuthorizer (needs sasl_port): sasl_user becomes the only super user, the broker's
    # own inter-broker and controller traffic authenticates as it, and nothing else is allowed without
    # an ACL (PLAINTEXT clients are User:ANONYMOUS and get nothing).
    authorizer: bool = False
    sasl_users: dict[str, str] = field(default_factory=dict)  # more PLAIN principals: name -> password
    message_max_bytes: int = 1_048_588  # Kafka's default
    num_partitions: int = 1
    auto_create_topics: bool = False  # our code must create its topics; tests catch it if not
    heap: str = "512m"
    data_dir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class BrokerState:
    """What a running broker needs to be found and stopped again (kept in a JSON state file)."""

    pid: int
    port: int
    controller_port: int
    sasl_port: int | None
    sasl_user: str
    sasl_password: str
    data_dir: str
    log_path: str
    authorizer: bool = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_port else None


def _server_properties(cfg: BrokerConfig, port: int, cport: int, sasl_port: int | None, data: Path) -> str:
    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{cport}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data / "log"),
        "num.partitions": str(cfg.num_partitions),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": str(cfg.auto_create_topics).lower(),
        "message.max.bytes": str(cfg.message_max_bytes),
        "replica.fetch.max.bytes": str(max(cfg.message_max_bytes, 1_048_576)),
        "log.cleaner.backoff.ms": "1000",
    }
    if sasl_port is not None:
        listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}")
        protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        props["sasl.enabled.mechanisms"] = "PLAIN"
        props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = _plain_jaas(cfg, login=cfg.authorizer)
    if cfg.authorizer:
        protocols[1] = "CONTROLLER:SASL_PLAINTEXT"
        props.update(_authorizer_properties(cfg))
    props["listeners"] = ",".join(listeners)
    props["advertised.listeners"] = ",".join(x for x in listeners if not x.startswith("CONTROLLER"))
    props["listener.security.protocol.map"] = ",".join(protocols)
    props.update(cfg.extra)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _plain_jaas(cfg: BrokerConfig, login: bool) -> str:
    """The PLAIN JAAS line of a listener: its accepted users, and (login) the broker's own login as
    sasl_user, which it uses to reach itself as controller and inter-broker peer."""
    users = {cfg.sasl_user: cfg.sasl_password, **cfg.sasl_users}
    own = f'username="{cfg.sasl_user}" password="{cfg.sasl_password}" ' if login else ""
    accepted = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    return f"org.apache.kafka.common.security.plain.PlainLoginModule required {own}{accepted};"


def _authorizer_properties(cfg: BrokerConfig) -> dict[str, str]:
    """StandardAuthorizer with sasl_user the only super user. The broker's own traffic goes over SASL
    (the inter-broker listener and the controller listener), so the PLAINTEXT listener carries only
    User:ANONYMOUS, which no ACL names: it is refused everything."""
    return {
        "authorizer.class.name": AUTHORIZER,
        "super.users": f"User:{cfg.sasl_user}",
        "allow.everyone.if.no.acl.found": "false",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": _plain_jaas(cfg, login=True),
    }


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def _java_cmd(libs: Path, data: Path, heap: str, main: list[str]) -> list[str]:
    java = _require("java", "the Kafka broker runs on Java 17+ (install a JDK, e.g. apt-get install openjdk-17-jre)")
    return [java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={data}", f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}",
            "-cp", str(libs / "*"), *main]


def start(cfg: BrokerConfig = BrokerConfig(), timeout_s: float = 90.0) -> BrokerState:
    """Start a broker detached from this process and return once it accepts connections."""
    if cfg.authorizer and cfg.sasl_port is None:
        raise KafkaStackError("the authorizer needs a SASL listener (--sasl-port): principals come from SASL logins")
    libs = resolve_jars()
    port = cfg.port or free_port()
    cport = cfg.controller_port or free_port()
    sasl_port = None if cfg.sasl_port is None else (cfg.sasl_port or free_port())
    for p in (port, cport, sasl_port):
        if p is not None and not port_is_free(p):
            raise KafkaStackError(f"port {p} on 127.0.0.1 is already in use: stop what holds it or pick another port")
    data = Path(cfg.data_dir) if cfg.data_dir else Path(tempfile.mkdtemp(prefix="kafka-"))
    data.mkdir(parents=True, exist_ok=True)
    (data / "server.properties").write_text(_server_properties(cfg, port, cport, sasl_port, data))
    (data / "log4j2.properties").write_text(_LOG4J2)
    if not (data / "log" / "meta.properties").exists():  # a restart keeps the data and its cluster id
        fmt = subprocess.run(
            _java_cmd(libs, data, "256m", ["kafka.tools.StorageTool", "format", "-t", str(uuid.uuid4()),
                                           "-c", str(data / "server.properties")]),
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise KafkaStackError(f"formatting KRaft storage in {data} failed:\n{fmt.stdout}{fmt.stderr}")
    log_path = data / "broker.out"
    server_log = data / "server.log"
    seen = server_log.stat().st_size if server_log.exists() else 0  # a reopened data dir: an old log
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            _java_cmd(libs, data, cfg.heap, ["kafka.Kafka", str(data / "server.properties")]),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    state = BrokerState(proc.pid, port, cport, sasl_port, cfg.sasl_user, cfg.sasl_password, str(data), str(log_path),
                        authorizer=cfg.authorizer)
    _wait_ready(proc, state, timeout_s, seen)
    return state


def _wait_ready(proc: subprocess.Popen[bytes], state: BrokerState, timeout_s: float, log_offset: int = 0) -> None:
    """Until the broker logs READY_LINE (after `log_offset`: a restart's log holds the last run's) and accepts."""
    server_log = Path(state.data_dir) / "server.log"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KafkaStackError(f"the broker exited with {proc.returncode}:\n{_tail(state)}")
        if _logged_since(server_log, log_offset) and _accepts(state.port):
            return
        time.sleep(0.2)
    stop(state)
    raise KafkaStackError(f"the broker did not start within {timeout_s:.0f}s:\n{_tail(state)}")


def _logged_since(server_log: Path, offset: int) -> bool:
    try:
        with open(server_log, "rb") as f:
            f.seek(offset)
            return READY_LINE.encode() in f.read()
    except OSError:
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _tail(state: BrokerState, lines: int = 30) -> str:
    out = []
    for name in (state.log_path, str(Path(state.data_dir) / "server.log")):
        p = Path(name)
        if p.exists():
            out.extend(p.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(out)


def is_running(state: BrokerState) -> bool:
    try:
        os.kill(state.pid, 0)
    except OSError:
        return False
    return True


def stop(state: BrokerState, timeout_s: float = 30.0, remove_data: bool = False) -> None:
    """SIGTERM (Kafka shuts down cleanly on it), then SIGKILL after timeout_s."""
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not is_running(state):
            break
        try:
            os.killpg(state.pid, sig)
        except OSError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and is_running(state):
            _reap(state.pid)
            time.sleep(0.1)
    _reap(state.pid)
    if remove_data:
        shutil.rmtree(state.data_dir, ignore_errors=True)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# --- command line: a named broker whose state lives in .cache/kafka-run/<name>.json ---

def _state_file(name: str) -> Path:
    return cache_dir() / "kafka-run" / f"{name}.json"


def _load(name: str) -> BrokerState | None:
    path = _state_file(name)
    return BrokerState(**json.loads(path.read_text())) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.kafka", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "resolve"])
    parser.add_argument("--name", default="default", help="which local broker (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9092, help="PLAINTEXT port, 0 = free port (default: %(default)s)")
    parser.add_argument("--sasl-port", type=int, default=None, help="also listen with SASL_PLAINTEXT/PLAIN here")
    parser.add_argument("--sasl-user", default="messaging")
    parser.add_argument("--sasl-password", default="messaging-secret")
    parser.add_argument("--authorizer", action="store_true",
                        help="StandardAuthorizer: --sasl-user is the super user; the SASL listener also accepts "
                             + ", ".join(f"{n} (password {p})" for n, p in ACL_PRINCIPALS.items())
                             + "; every other access needs an ACL (needs --sasl-port)")
    parser.add_argument("--message-max-bytes", type=int, default=BrokerConfig.message_max_bytes)
    parser.add_argument("--partitions", type=int, default=1, help="num.partitions for auto-created topics")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: .cache/kafka-run/<name>-data")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KafkaStackError as e:
        print(f"kafka: error: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    current = _load(args.name)
    if args.command == "resolve":
        print(resolve_jars())
        return 0
    if args.command == "status":
        if current and is_running(current):
            shown = {**asdict(current), "sasl_password": "***"}
            print(json.dumps({"running": True, "bootstrap": current.bootstrap, **shown}))
            return 0
        print(json.dumps({"running": False}))
        return 3
    if args.command == "stop":
        if current:
            stop(current)
            _state_file(args.name).unlink()
            print(f"kafka: stopped broker '{args.name}' (pid {current.pid})", file=sys.stderr)
        else:
            print(f"kafka: broker '{args.name}' is not running", file=sys.stderr)
        return 0
    if current and is_running(current):
        print(f"kafka: broker '{args.name}' already running on {current.bootstrap}", file=sys.stderr)
        print(current.bootstrap)
        return 0
    data_dir = args.data_dir or cache_dir() / "kafka-run" / f"{args.name}-data"
    cfg = BrokerConfig(port=args.port, sasl_port=args.sasl_port, sasl_user=args.sasl_user,
                       sasl_password=args.sasl_password, message_max_bytes=args.message_max_bytes,
                       authorizer=args.authorizer, sasl_users=dict(ACL_PRINCIPALS) if args.authorizer else {},
                       num_partitions=args.partitions, data_dir=data_dir)
    print(f"kafka: starting Apache Kafka {KAFKA_VERSION} (KRaft) with data in {data_dir}", file=sys.stderr)
    state = start(cfg)
    _state_file(args.name).parent.mkdir(parents=True, exist_ok=True)
    _state_file(args.name).write_text(json.dumps(asdict(state)))
    print(f"kafka: broker '{args.name}' ready on {state.bootstrap}"
          + (f" (SASL_PLAINTEXT on {state.sasl_bootstrap})" if state.sasl_port else "")
          + (f", StandardAuthorizer, super user {state.sasl_user}" if state.authorizer else ""), file=sys.stderr)
    print(state.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
