"""RouterStore: the lifecycle's reads answered by a router's read API (a real aiohttp server over a
real SubscriptionIndex), with exactly the results of reading the topic, and the topic read whenever
no router answers (none there, a wrong key, a table behind the topic, a router not ready)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet

from feed import lookup, records
from feed.errors import FeedError
from feed.grants import Grant, TopicPolicy, encode_grant, grant_key
from feed.lifecycle import Lifecycle
from feed.store import MemoryStore, RouterStore
from local_stack.kafka import free_port
from tests.feed.test_lifecycle import FakeCaller
from tests.fixtures.table_api import ApiServer

pytestmark = pytest.mark.timeout(60)
FQN = "/guest/T"
POLICY = TopicPolicy()  # explicit grants only: CREATE, UPDATE and READ read the namespace's grants


@dataclass
class Topic(MemoryStore):
    """The subscriptions topic (a MemoryStore), each write also applied to the router's table when
    ``router`` is set and ``follow`` (a router that keeps up); ``scans`` counts the full reads."""

    router: ApiServer | None = None
    follow: bool = True
    scans: int = 0

    def write(self, key: bytes, value: bytes | None) -> None:
        super().write(key, value)
        if self.router is not None and self.follow:
            self.router.skip_to(len(self.records) - 1)
            self.router.apply(key, value)

    def latest(self, keys, prefixes=()):  # type: ignore[no-untyped-def]
        self.scans += 1
        return super().latest(keys, prefixes)


def topic_with_data() -> Topic:
    topic = Topic(brokers=("kafka:9092",))
    topic.add_topic("orders", partitions=2)
    topic.append("orders", 0, 100)
    return topic


@pytest.fixture
def router() -> Iterator[ApiServer]:
    with ApiServer(max_wait_ms=300).running() as running:
        yield running


def store(topic: Topic, url: str, sealing_keys: str) -> RouterStore:
    return RouterStore(topic, url, lookup.api_secrets(sealing_keys)[0], lambda: 30.0)


def run(store_: object, event: str, **params: object) -> dict:
    clock = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))
    return Lifecycle(lambda: store_, FakeCaller(), lambda: next(clock), POLICY).handle(event, FQN, params)  # type: ignore[arg-type]


def test_every_event_answers_as_the_topic_read_would_without_reading_the_topic(router: ApiServer) -> None:
    """The same events against the topic alone and against a router over it: the same answers and the
    same records written; with the router, the topic is never read whole."""
    plain, routed = topic_with_data(), topic_with_data()
    routed.router = router
    via_router = store(routed, router.url, router.sealing_keys)
    for topic in (plain, routed):
        topic.write(grant_key("guest", "orders"), encode_grant(Grant("guest", "orders"), 1))
    events = [("CREATE", {"topic": "orders", "startFrom": "earliest"}), ("READ", {}),
              ("UPDATE", {"maxBatchMessages": 7}), ("READ", {}), ("PAUSE", {}), ("READ", {}), ("PAUSE", {}),
              ("UNPAUSE", {}), ("READ", {}), ("DELETE", {})]
    for event, params in events:
        assert run(via_router, event, **params) == run(plain, event, **params), event
    assert routed.records == plain.records, "the same records, in the same order"
    # every read answered by the router (UPDATE reads twice, DELETE never)
    assert routed.scans == 0 and via_router.fell_back == 0 and via_router.answered == 10
    with pytest.raises(FeedError) as caught:
        run(via_router, "READ")
    assert caught.value.status == 404, "deleted: the router's answer has no subscription"


def test_a_revoked_grant_shows_in_read_from_the_router_too(router: ApiServer) -> None:
    topic = topic_with_data()
    topic.router = router
    via_router = store(topic, router.url, router.sealing_keys)
    topic.write(grant_key("guest", "orders"), encode_grant(Grant("guest", "orders"), 1))
    run(via_router, "CREATE", topic="orders")
    assert run(via_router, "READ")["status"]["active"] is True
    topic.write(grant_key("guest", "orders"), None)
    status = run(via_router, "READ")["status"]
    assert (status["state"], status["reason"]["statusCode"]) == ("disabled", 403)
    assert topic.scans == 0


def fallback_case(topic: Topic, via: RouterStore) -> None:
    """CREATE and READ answer from the topic read: correct, one scan per read."""
    topic.write(grant_key("guest", "orders"), encode_grant(Grant("guest", "orders"), 1))
    run(via, "CREATE", topic="orders")
    assert run(via, "READ")["config"]["topic"] == "orders"
    assert via.answered == 0 and via.fell_back == topic.scans == 2


def test_no_router_listening_falls_back_to_reading_the_topic() -> None:
    topic = topic_with_data()
    fallback_case(topic, store(topic, f"http://127.0.0.1:{free_port()}", Fernet.generate_key().decode()))


def test_a_router_with_other_keys_is_refused_and_the_topic_read(router: ApiServer) -> None:
    topic = topic_with_data()
    topic.router = router
    fallback_case(topic, store(topic, router.url, Fernet.generate_key().decode()))


def test_a_router_whose_table_is_behind_the_topic_is_not_believed(router: ApiServer) -> None:
    """Read-your-writes: the table has not applied the topic's last record within the wait."""
    topic = topic_with_data()
    topic.router, topic.follow = router, False
    fallback_case(topic, store(topic, router.url, router.sealing_keys))


def test_a_router_that_is_not_ready_is_not_believed(router: ApiServer) -> None:
    topic = topic_with_data()
    topic.router = router
    router.ready = False
    fallback_case(topic, store(topic, router.url, router.sealing_keys))


def test_an_answer_holds_only_the_keys_asked_for(router: ApiServer) -> None:
    topic = topic_with_data()
    topic.router = router
    via_router = store(topic, router.url, router.sealing_keys)
    topic.write(grant_key("guest", "orders"), encode_grant(Grant("guest", "orders"), 1))
    topic.write(grant_key("other", "orders"), encode_grant(Grant("other", "orders"), 1))
    assert set(via_router.latest([records.subscription_key(FQN)], [b"grant:guest:"])) == {
        grant_key("guest", "orders")}
    assert via_router.latest([records.subscription_key("/guest/none")]) == {}
    assert topic.scans == 0


class Impostor(BaseHTTPRequestHandler):
    """Whoever answers at the router's address without the keys: a well-formed answer, forged."""

    def do_GET(self) -> None:
        body = json.dumps(lookup.encode_answer(10**9, {records.subscription_key(FQN): (5, b"forged")})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header(lookup.ANSWER_HEADER, "0" * 64)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_an_answer_not_signed_with_the_keys_is_not_believed() -> None:
    """The action writes back what it reads: a forged answer must never reach the lifecycle."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        topic = topic_with_data()
        fallback_case(topic, store(topic, f"http://127.0.0.1:{server.server_address[1]}",
                                   Fernet.generate_key().decode()))
    finally:
        server.shutdown()
        server.server_close()
