"""The operator's grant command (``python -m feed.grants``, ``./deploy.sh grant``): its Kafka side.

Grants are records of the subscriptions topic (feed.grants), written through the same
``KafkaStore`` the feed's web action uses, with the deployment's Kafka settings: the environment
first (``KAFKA_*``, ``SUBSCRIPTIONS_TOPIC``, ``TRIGGER_MESSAGES_TOPIC``, ``DEAD_LETTER_TOPIC``), then
the files deploy.sh keeps in its state folder (``consumer.env``, ``consumer-secrets.env``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from feed import grants
from feed.errors import FeedError
from feed.store import KafkaStore
from messaging_lib import topics
from messaging_lib.errors import ConfigError, RecordError
from messaging_lib.kafka_config import KafkaSettings

TIMEOUT_S = 30.0
SETTINGS_FILES = ("consumer.env", "consumer-secrets.env")
DEFAULT_LOCAL_STATE = Path(__file__).resolve().parent.parent / ".cache" / "local"


def settings_from(environ: Mapping[str, str], state_dir: Path | None) -> dict[str, str]:
    """The environment over the KEY=value lines of the state folder's settings files."""
    values: dict[str, str] = {}
    for path in [state_dir / name for name in SETTINGS_FILES] if state_dir is not None else []:
        if path.is_file():
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not key.lstrip().startswith("#"):
                    values[key.strip()] = value
    values.update(environ)
    return values


def _state_dir(given: str | None, environ: Mapping[str, str]) -> Path | None:
    if given:
        return Path(given)
    if environ.get("MESSAGING_STATE_DIR"):
        return Path(environ["MESSAGING_STATE_DIR"])
    if environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return None  # the environment names the deployment: no kept settings mixed in
    return DEFAULT_LOCAL_STATE if DEFAULT_LOCAL_STATE.is_dir() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./deploy.sh grant", description="Grant namespaces topics of the "
                                     "messaging service's Kafka for kafkaFeed subscriptions.")
    parser.add_argument("action", choices=("add", "revoke", "list"))
    parser.add_argument("--namespace", help="the namespace (list: only its grants)")
    parser.add_argument("--topic", help="the topic, or with --prefix the start of the topic names")
    parser.add_argument("--prefix", action="store_true", help="grant every topic whose name starts with --topic")
    parser.add_argument("--kafka-bootstrap", help="the cluster's brokers, host:port,... (default: the deployment's)")
    parser.add_argument("--state-dir",
                        help="deploy.sh's state folder (default $MESSAGING_STATE_DIR, else .cache/local)")
    return parser


def main(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> int:
    args = _parser().parse_args(argv)
    if args.kafka_bootstrap:
        environ = {**environ, "KAFKA_BOOTSTRAP_SERVERS": args.kafka_bootstrap}
    values = settings_from(environ, _state_dir(args.state_dir, environ))
    try:
        settings = KafkaSettings.from_env(values)
        policy = grants.TopicPolicy.from_settings({k.lower(): v for k, v in values.items()})
        clients = _Clients(settings)
    except ConfigError as e:
        print(f"grant: error: {e}", file=sys.stderr)
        return 1
    store = KafkaStore(clients.consumer, clients.producer,
                       values.get("SUBSCRIPTIONS_TOPIC") or topics.SUBSCRIPTIONS_TOPIC,
                       settings.bootstrap_servers, lambda: TIMEOUT_S)
    try:
        if args.action == "list":
            for grant in sorted(list_grants(store, args.namespace), key=str):
                print(grant)
            return 0
        grant = _grant(args)
        change(store, policy, grant, add=args.action == "add")
    except (RecordError, FeedError) as e:
        print(f"grant: error: {e}", file=sys.stderr)
        return 1
    finally:
        clients.close()
    print(f"{'granted' if args.action == 'add' else 'revoked'}: {grant}")
    return 0


def _grant(args: argparse.Namespace) -> grants.Grant:
    if not args.namespace or args.topic is None:
        raise RecordError("add and revoke need --namespace and --topic")
    return grants.Grant(args.namespace, args.topic, args.prefix)


def change(store: KafkaStore, policy: grants.TopicPolicy, grant: grants.Grant, add: bool) -> None:
    """Write the grant (or its tombstone). A grant of a topic that is never subscribable is refused."""
    if add:
        never = policy.never_subscribable(grant.topic) if not grant.prefix else None
        if never is not None:
            raise RecordError(never)
        store.write(grant.key, grants.encode_grant(grant, int(time.time() * 1000)))
    else:
        store.write(grant.key, None)


def list_grants(store: KafkaStore, namespace: str | None) -> list[grants.Grant]:
    return grants.grants_from(store.latest((), [grants.namespace_key_prefix(namespace)]))


class _Clients:
    """The command's Kafka clients, made when first needed and closed when it ends."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._made: list[KafkaConsumer | KafkaProducer] = []

    def consumer(self) -> KafkaConsumer:
        client = KafkaConsumer(**self._settings.client_kwargs(), group_id=None, enable_auto_commit=False)
        self._made.append(client)
        return client

    def producer(self) -> KafkaProducer:
        client = KafkaProducer(**self._settings.client_kwargs(), acks="all", linger_ms=0)
        self._made.append(client)
        return client

    def close(self) -> None:
        for client in self._made:
            client.close()
