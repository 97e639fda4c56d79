"""The steps of ./deploy.sh that are easier to get right in Python than in bash: the command line.

deploy.sh stays the readable list of steps; the modules beside this one do the parts that talk to the
OpenWhisk API (deploy.openwhisk) or Kafka (deploy.topics), or manage the local processes
(deploy.processes, deploy.ports). This module parses the subcommand, runs it through one dispatch
table and turns every failure into one sentence that says what went wrong and what to do (exit
status 1; 2 for usage errors). Secrets never go on a command line: the OpenWhisk key comes from
OW_AUTH, Kafka settings from the consumer's own KAFKA_* variables (messaging_lib.kafka_config), so
`ps` shows nothing worth stealing.

    python -m deploy.tool check-openwhisk --apihost URL            # prints the key's namespace
    python -m deploy.tool deployed-keys --apihost URL              # sealing keys of a deployed messagingWeb
    python -m deploy.tool new-key                                  # a fresh Fernet sealing key
    python -m deploy.tool sealing-key --subscriptions-topic T ...  # check/record SEALING_KEYS (or a new key) on Kafka
    python -m deploy.tool topics --trigger-messages-topic T ...    # create or check the four topics
    python -m deploy.tool acls --trigger-messages-topic T ...      # create (or print) the Kafka ACLs
    python -m deploy.tool create-topic NAME [--partitions N]       # one plain topic (the demo's, a user's)
    python -m deploy.tool list-topics                              # name and partitions, internal ones left out
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
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet

from deploy import acls, openwhisk, processes, sealing, topics
from deploy.errors import DeployError
from deploy.ports import free_port, port_is_free
from messaging_lib.topics import parked_topic

Command = Callable[[argparse.Namespace], int]  # the exit status
# The consumer's default groups (consumer.settings; its FIRER_GROUP and ROUTER_GROUP override them).
DEFAULT_FIRER_GROUP = "openwhisk-trigger-firer"
DEFAULT_ROUTER_GROUP = "openwhisk-trigger-router"


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
    k = sub.add_parser("sealing-key", help="the keys of SEALING_KEYS (empty: a new one) checked against the cluster")
    k.add_argument("--subscriptions-topic", required=True)
    k.add_argument("--deployment", default="", help="who records it, e.g. 'https://host namespace ns'")
    k.add_argument("--source", default="the sealing key given", help="where the keys come from (for a refusal)")
    k.add_argument("--force", action="store_true", help="replace a recorded fingerprint that does not match")
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
    _acls_parser(sub.add_parser("acls"))
    c = sub.add_parser("create-topic")
    c.add_argument("name")
    c.add_argument("--partitions", type=int, default=1)
    c.add_argument("--replication-factor", type=int, default=0, help="0: min(3, brokers)")
    sub.add_parser("list-topics")
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


def _acls_parser(a: argparse.ArgumentParser) -> None:
    for name in ("--trigger-messages-topic", "--subscriptions-topic", "--dead-letter-topic"):
        a.add_argument(name, required=True)
    a.add_argument("--kafka-service-principal", default=None,
                   help="the consumer's and deploy's principal (default: User:$KAFKA_SASL_USERNAME)")
    a.add_argument("--kafka-producer-principal", action="append", default=[],
                   help="an external producer (repeatable, or a comma list): WRITE on the trigger-messages topic")
    a.add_argument("--firer-group", default=os.environ.get("FIRER_GROUP") or DEFAULT_FIRER_GROUP)
    a.add_argument("--router-group", default=os.environ.get("ROUTER_GROUP") or DEFAULT_ROUTER_GROUP)
    a.add_argument("--routed-topic-prefix", action="append", default=[],
                   help="the router may READ topics with this prefix (repeatable; default: none, grant otherwise)")


def _say(line: str) -> None:
    """A progress line for the user: on stderr, so stdout carries only what deploy.sh reads."""
    print(f"    {line}", file=sys.stderr)


def _printed(value: object) -> int:
    print(value)
    return 0


def _api(args: argparse.Namespace) -> openwhisk.OpenWhiskApi:
    return openwhisk.OpenWhiskApi.from_env(args.apihost, not args.insecure, os.environ)


def _topics(args: argparse.Namespace) -> int:
    specs = topics.topic_specs(
        trigger_messages_topic=args.trigger_messages_topic, subscriptions_topic=args.subscriptions_topic,
        dead_letter_topic=args.dead_letter_topic, partitions=args.partitions, retention_hours=args.retention_hours,
        dead_letter_partitions=args.dead_letter_partitions, dead_letter_retention_days=args.dead_letter_retention_days,
        dead_letter_max_message_bytes=args.dead_letter_max_message_bytes)
    topics.ensure_topics(specs, args.replication_factor, _say)
    return 0


def _acls(args: argparse.Namespace) -> int:
    service = args.kafka_service_principal or os.environ.get("KAFKA_SASL_USERNAME")
    if not service:
        _say("Kafka ACLs skipped: no service principal (no --kafka-service-principal, no SASL username); "
             "a cluster without SASL logins cannot tell principals apart")
        return 0
    topic_names = [args.trigger_messages_topic, parked_topic(args.trigger_messages_topic), args.subscriptions_topic,
                   args.dead_letter_topic]
    try:
        bindings = acls.deployment_acls(
            trigger_messages_topic=args.trigger_messages_topic, subscriptions_topic=args.subscriptions_topic,
            dead_letter_topic=args.dead_letter_topic, service_principal=service,
            producer_principals=acls.principal_list(args.kafka_producer_principal),
            consumer_groups=[args.firer_group, args.router_group], routed_topic_prefixes=args.routed_topic_prefix)
    except ValueError as e:
        raise DeployError(f"Kafka ACLs: {e}") from None
    acls.apply_acls(bindings, _say, service_principal=service, service_topics=topic_names)
    return 0


def _create_topic(args: argparse.Namespace) -> int:
    topics.create_topic(args.name, args.partitions, _say, args.replication_factor)
    return 0


def _list_topics(args: argparse.Namespace) -> int:
    for name, partitions in topics.list_topics():
        print(f"{name}\t{partitions}")
    return 0


def _sealing_key(args: argparse.Namespace) -> int:
    """SEALING_KEYS from the environment (never a command line), checked and recorded; printed for deploy.sh."""
    store = sealing.kafka_store(args.subscriptions_topic)
    return _printed(sealing.choose(store, os.environ.get("SEALING_KEYS", ""), args.source, args.deployment,
                                   args.force, args.subscriptions_topic, _say))


def _delete_topics(args: argparse.Namespace) -> int:
    topics.delete_topics(args.names, _say)
    return 0


def _spawn(args: argparse.Namespace) -> int:
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    return _printed(processes.spawn(args.pidfile, args.log, command))


def _stop(args: argparse.Namespace) -> int:
    processes.stop(args.pidfile, args.timeout)
    return 0


def _wait_ready(args: argparse.Namespace) -> int:
    processes.wait_ready(args.url, args.pidfile, args.log, args.timeout)
    return 0


COMMANDS: dict[str, Command] = {
    "check-openwhisk": lambda a: _printed(openwhisk.check_openwhisk(_api(a))),
    "deployed-keys": lambda a: _printed(openwhisk.deployed_keys(_api(a), a.namespace)),
    "wait-activation": lambda a: _printed(openwhisk.wait_activation(_api(a), a.name, a.since, a.timeout)),
    "new-key": lambda a: _printed(Fernet.generate_key().decode()),
    "sealing-key": _sealing_key,
    "topics": _topics,
    "acls": _acls,
    "create-topic": _create_topic,
    "list-topics": _list_topics,
    "delete-topics": _delete_topics,
    "spawn": _spawn,
    "stop": _stop,
    "running": lambda a: 0 if processes.running_pid(a.pidfile) is not None else 1,
    "wait-line": lambda a: _printed(processes.wait_line(a.log, a.prefix, a.pidfile, a.timeout)),
    "wait-ready": _wait_ready,
    "free-port": lambda a: _printed(free_port()),
    "port-free": lambda a: 0 if port_is_free(a.port) else 1,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kept by topics._KafkaLog, never printed
    logging.getLogger("kafka").propagate = False
    try:
        return COMMANDS[args.command](args)
    except DeployError as e:
        print(f"\ndeploy.sh: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
