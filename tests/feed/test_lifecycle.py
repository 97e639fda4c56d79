"""The lifecycle over MemoryStore: every event, every refusal with its exact text, READ's shape,
what UPDATE keeps and changes, PAUSE/UNPAUSE segments, DELETE's tombstones, and the bytes written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from feed import records
from feed.errors import FeedError
from feed.grants import TopicPolicy
from feed.lifecycle import EVENTS, Lifecycle
from feed.options import Options
from feed.records import Segment, Status
from feed.store import MemoryStore

FQN = "/guest/T"
T0 = 1_700_000_000_123
OPEN = TopicPolicy(prefix_pattern="")  # every topic but the service's (tests/feed/test_grants.py: the policy)
SUB_KEY, STATUS_KEY = records.subscription_key(FQN), records.status_key(FQN)


@dataclass
class FakeCaller:
    """OpenWhisk's answer for the caller's trigger GET (200 unless told) and a visible sealing."""

    status: int = 200
    sealed: int = 0
    checked: list[str] = field(default_factory=list)

    def check_trigger(self, fqn: str) -> None:
        self.checked.append(fqn)
        if self.status != 200:
            raise FeedError(f"OpenWhisk answered {self.status}", self.status)

    def seal(self, fqn: str) -> str:
        self.sealed += 1
        return f"sealed-{self.sealed}:{fqn}"


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Feed:
    store: MemoryStore
    caller: FakeCaller
    clock: Clock

    def __call__(self, event: str, **params: object) -> dict:
        return Lifecycle(lambda: self.store, self.caller, self.clock, OPEN).handle(event, FQN, params)

    def refusal(self, event: str, **params: object) -> tuple[int, str]:
        with pytest.raises(FeedError) as caught:
            self(event, **params)
        return caught.value.status, str(caught.value)

    def subscription(self) -> records.Subscription:
        offset, value = self.store.latest([SUB_KEY])[SUB_KEY]
        assert value is not None
        return records.decode_subscription(value).resolved(offset)


@pytest.fixture
def feed() -> Feed:
    store = MemoryStore(brokers=("kafka-1:9092", "kafka-2:9092"))
    store.add_topic("orders", partitions=2)
    for partition, timestamps in ((0, [100, 200, 300]), (1, [150])):
        for ts in timestamps:
            store.append("orders", partition, ts)
    return Feed(store, FakeCaller(), Clock())


# --- CREATE -------------------------------------------------------------------------------------


def test_create_writes_exactly_this_record_and_answers_the_subscription(feed: Feed) -> None:
    answer = feed("CREATE", topic=" orders ")
    assert answer == {"triggerName": FQN, "topic": "orders", "startFrom": "latest", "status": "active"}
    assert feed.store.records == [(b"subscription:/guest/T", (
        b'{"v":1,"trigger":"/guest/T","topic":"orders","credential":"sealed-1:/guest/T","options":{"isJSONData":false,'
        b'"isBinaryKey":false,"isBinaryValue":false,"maxBatchBytes":900000,"maxBatchMessages":10000,'
        b'"batchWindowMs":100},"startFrom":"latest","segments":[{"origin":null,"start":{"0":3,"1":1},"stop":null}],'
        b'"created_ms":1700000000123,"updated_ms":1700000000123}'))]
    assert feed.caller.checked == [FQN]


@pytest.mark.parametrize(("start_from", "start"), [
    ("earliest", {0: 0, 1: 0}), ("1970-01-01T00:00:00.200Z", {0: 1, 1: 1}), ("1970-01-01T00:00:00.150", {0: 1, 1: 0}),
    ("2030-01-01T00:00:00Z", {0: 3, 1: 1}),
])
def test_create_resolves_start_from_into_offsets_now(feed: Feed, start_from: str, start: dict) -> None:
    assert feed("CREATE", topic="orders", startFrom=start_from)["startFrom"] == start_from.strip()
    assert feed.subscription().segments == (Segment(0, start),)


def test_create_takes_the_options_and_the_services_payload_cap(feed: Feed) -> None:
    feed("CREATE", topic="orders", isJSONData="true", isBinaryKey=True, maxBatchMessages="5", max_payload_bytes=4000)
    assert feed.subscription().options == Options(is_json_data=True, is_binary_key=True, max_batch_bytes=4000,
                                                  max_batch_messages=5)


def test_create_replaces_an_earlier_registration(feed: Feed) -> None:
    feed("CREATE", topic="orders", isJSONData=True)
    feed.clock.now += 10
    feed("CREATE", topic="orders")
    sub = feed.subscription()
    assert sub.options == Options() and sub.created_ms == T0 + 10 and sub.segments[0].origin == 1


@pytest.mark.parametrize(("params", "status", "text"), [
    ({}, 400, "You must supply a 'topic' parameter."),
    ({"topic": "  "}, 400, "You must supply a 'topic' parameter."),
    ({"topic": 5}, 400, "You must supply a 'topic' parameter."),
    ({"topic": "orders", "isJSONData": True, "isBinaryValue": "true"}, 400,
     "isJSONData and isBinaryValue cannot both be enabled."),
    ({"topic": "orders", "isBinaryKey": "maybe"}, 400, "The 'isBinaryKey' parameter must be true or false."),
    ({"topic": "orders", "maxBatchBytes": 2_000_000}, 400,
     "The 'maxBatchBytes' parameter must be a whole number from 1 to 900000."),
    ({"topic": "orders", "maxBatchBytes": 5000, "max_payload_bytes": 4000}, 400,
     "The 'maxBatchBytes' parameter must be a whole number from 1 to 4000."),
    ({"topic": "orders", "startFrom": "yesterday"}, 400,
     "The 'startFrom' parameter must be latest, earliest or an ISO 8601 timestamp, e.g. 2024-05-01T12:00:00Z."),
    ({"topic": "orders", "brokers": 9092}, 400,
     "You must supply a 'brokers' parameter as an array of Message Hub brokers."),
    ({"topic": "orders", "brokers": ["kafka-1:9092", 5]}, 400,
     "You must supply a 'brokers' parameter as an array of Message Hub brokers."),
    ({"topic": "orders", "brokers": "kafka-1:9092,elsewhere:9092"}, 400,
     "The 'brokers' parameter must name this messaging service's Kafka cluster: kafkaFeed subscribes triggers to "
     "topics of that cluster only."),
    ({"topic": "no-such-topic"}, 400, "Topic does not exist. You must create the topic first: no-such-topic"),
    # a value that names no broker: refused as the old feed refused it (its two texts)
    ({"topic": "orders", "brokers": []}, 400,
     "You must supply a 'brokers' parameter as an array of Message Hub brokers."),
    ({"topic": "orders", "brokers": [" "]}, 400,
     "You must supply a 'brokers' parameter as an array of Message Hub brokers."),
    ({"topic": "orders", "brokers": ""}, 400, "You must supply a 'brokers' parameter."),
    ({"topic": "orders", "brokers": " , "}, 400, "You must supply a 'brokers' parameter."),
])
def test_create_refusals_have_the_exact_texts_and_write_nothing(feed: Feed, params: dict, status: int,
                                                                 text: str) -> None:
    assert feed.refusal("CREATE", **params) == (status, text)
    assert feed.store.records == []


def test_brokers_naming_this_cluster_are_accepted(feed: Feed) -> None:
    feed("CREATE", topic="orders", brokers=["kafka-2:9092"])
    feed("CREATE", topic="orders", brokers="kafka-1:9092, kafka-2:9092,")
    feed("CREATE", topic="orders")  # left out: this service's cluster
    assert len(feed.store.records) == 3


@pytest.mark.parametrize("event", ["CREATE", "READ", "UPDATE", "PAUSE", "UNPAUSE", "DELETE"])
@pytest.mark.parametrize("openwhisk", [401, 403, 404])
def test_a_caller_who_cannot_read_the_trigger_is_not_authorized(feed: Feed, event: str, openwhisk: int) -> None:
    feed("CREATE", topic="orders")
    feed.caller.status = openwhisk
    if event == "DELETE" and openwhisk == 404:
        assert feed(event)["deleted"] is True  # a feed outlives its deleted trigger
        return
    assert feed.refusal(event, topic="orders", isJSONData=True) == (401, "You are not authorized for this trigger.")
    assert len(feed.store.records) == 1


def test_an_openwhisk_failure_passes_through_with_its_status(feed: Feed) -> None:
    feed.caller.status = 502
    assert feed.refusal("CREATE", topic="orders") == (502, "OpenWhisk answered 502")


def test_the_store_is_opened_only_after_the_parameters_and_the_caller_were_checked() -> None:
    def misconfigured() -> MemoryStore:
        raise FeedError("the messaging service is misconfigured: no brokers", 503)
    caller = FakeCaller(status=403)
    lifecycle = Lifecycle(misconfigured, caller)
    for event, params, expected in (("CREATE", {}, 400), ("UPDATE", {}, 400), ("DELETE", {}, 401),
                                    ("CREATE", {"topic": "t"}, 401), ("READ", {}, 401)):
        with pytest.raises(FeedError) as caught:
            lifecycle.handle(event, FQN, params)
        assert caught.value.status == expected, (event, params)
    caller.status = 200
    with pytest.raises(FeedError, match="misconfigured"):
        lifecycle.handle("READ", FQN, {})


# --- READ ---------------------------------------------------------------------------------------


def test_read_shows_the_config_and_status_in_the_old_shape_and_never_the_credential(feed: Feed) -> None:
    feed("CREATE", topic="orders", isBinaryValue=True, startFrom="earliest", batchWindowMs=0)
    view = feed("READ")
    assert view == {
        "config": {"triggerName": FQN, "topic": "orders", "isJSONData": False, "isBinaryKey": False,
                   "isBinaryValue": True, "brokers": ["kafka-1:9092", "kafka-2:9092"], "startFrom": "earliest",
                   "maxBatchBytes": 900_000, "maxBatchMessages": 10_000, "batchWindowMs": 0},
        "status": {"active": True, "state": "active", "dateChanged": T0, "dateChangedISO": "2023-11-14T22:13:20.123Z"},
    }
    assert list(view["config"]) == ["triggerName", "topic", "isJSONData", "isBinaryKey", "isBinaryValue", "brokers",
                                    "startFrom", "maxBatchBytes", "maxBatchMessages", "batchWindowMs"]
    assert "sealed" not in json.dumps(view)


def test_read_names_the_cluster_as_an_array_a_create_accepts(feed: Feed) -> None:
    feed("CREATE", topic="orders")
    brokers = feed("READ")["config"]["brokers"]
    assert brokers == ["kafka-1:9092", "kafka-2:9092"]
    feed("CREATE", topic="orders", brokers=brokers)  # the old READ's value passed back is accepted
    assert feed("READ")["config"]["brokers"] == brokers


def test_read_without_a_subscription_is_404(feed: Feed) -> None:
    assert feed.refusal("READ") == (404, "The trigger /guest/T has no kafkaFeed subscription.")
    feed("CREATE", topic="orders")
    feed("DELETE")
    assert feed.refusal("READ") == (404, "The trigger /guest/T has no kafkaFeed subscription.")


def test_read_shows_a_disable_of_this_configuration_and_ignores_one_of_an_older(feed: Feed) -> None:
    feed("CREATE", topic="orders")
    message = records.disabled_message(404)
    feed.store.write(STATUS_KEY, records.encode_status(Status(404, message, config=0, updated_ms=T0 + 5)))
    assert feed("READ")["status"] == {"active": False, "state": "disabled", "dateChanged": T0 + 5,
                                      "dateChangedISO": "2023-11-14T22:13:20.128Z",
                                      "reason": {"kind": "AUTO", "statusCode": 404, "message": message}}
    feed("UPDATE", isBinaryKey=False)  # a newer configuration version: enabled again
    assert feed("READ")["status"]["state"] == "active"


def test_a_record_that_cannot_be_read_is_a_500(feed: Feed) -> None:
    feed.store.write(SUB_KEY, b'{"v":2}')
    assert feed.refusal("READ") == (500, "the subscription of /guest/T cannot be read: unknown record format version 2")


# --- UPDATE -------------------------------------------------------------------------------------


def test_update_changes_the_named_options_reseals_and_keeps_the_rest(feed: Feed) -> None:
    feed("CREATE", topic="orders", maxBatchMessages=7)
    feed.clock.now += 1000
    assert feed("UPDATE", isJSONData="true", topic="orders") == {"triggerName": FQN, "status": "active"}
    sub = feed.subscription()
    assert sub.options == Options(is_json_data=True, max_batch_messages=7)
    assert sub.credential == "sealed-2:/guest/T" and (sub.created_ms, sub.updated_ms) == (T0, T0 + 1000)
    assert sub.segments == (Segment(0, {0: 3, 1: 1}),) and sub.start_from == "latest"
    _, written = feed.store.records[-1]
    assert b'"origin":0' in (written or b""), "UPDATE keeps the segment's origin"


@pytest.mark.parametrize(("params", "status", "text"), [
    ({}, 400, "At least one of isJsonData, isBinaryKey, or isBinaryValue must be supplied."),
    ({"topic": "orders", "isJSONData": None}, 400,
     "At least one of isJsonData, isBinaryKey, or isBinaryValue must be supplied."),
    ({"brokers": ["kafka-1:9092"]}, 400, "At least one of isJsonData, isBinaryKey, or isBinaryValue must be supplied."),
    ({"isBinaryKey": True, "topic": "other"}, 400,
     "The topic of a subscription cannot be changed: delete the trigger and create it again with the new topic."),
    ({"isBinaryValue": True}, 400, "isJSONData and isBinaryValue cannot both be enabled."),
    ({"batchWindowMs": 60_001}, 400, "The 'batchWindowMs' parameter must be a whole number from 0 to 60000."),
])
def test_update_refusals_have_the_exact_texts_and_write_nothing(feed: Feed, params: dict, status: int,
                                                                 text: str) -> None:
    feed("CREATE", topic="orders", isJSONData=True)
    assert feed.refusal("UPDATE", **params) == (status, text)
    assert len(feed.store.records) == 1


def test_update_without_a_subscription_is_404(feed: Feed) -> None:
    assert feed.refusal("UPDATE", isJSONData=True) == (404, "The trigger /guest/T has no kafkaFeed subscription.")


def test_update_keeps_a_pause(feed: Feed) -> None:
    feed("CREATE", topic="orders")
    feed("PAUSE")
    assert feed("UPDATE", isBinaryKey=True)["status"] == "paused"
    assert feed.subscription().paused


# --- DELETE -------------------------------------------------------------------------------------


def test_delete_writes_tombstones_for_the_subscription_and_its_status(feed: Feed) -> None:
    feed("CREATE", topic="orders")
    assert feed("DELETE") == {"triggerName": FQN, "deleted": True}
    assert feed.store.records[1:] == [(SUB_KEY, None), (STATUS_KEY, None)]


def test_delete_of_an_unknown_trigger_succeeds(feed: Feed) -> None:
    assert feed("DELETE")["deleted"] is True
    assert feed.store.records == [(SUB_KEY, None), (STATUS_KEY, None)]


# --- PAUSE and UNPAUSE --------------------------------------------------------------------------


def test_pause_stops_at_the_end_offsets_now_and_unpause_resumes_there(feed: Feed) -> None:
    feed("CREATE", topic="orders")
    feed.store.append("orders", 0, 400)
    feed.clock.now += 1
    assert feed("PAUSE") == {"triggerName": FQN, "status": "paused"}
    assert feed.subscription().segments == (Segment(0, {0: 3, 1: 1}, {0: 4, 1: 1}),)
    status = feed("READ")["status"]
    assert (status["state"], status["active"], status["dateChanged"]) == ("paused", False, T0 + 1)
    assert status["reason"] == {"kind": "USER",
                                "message": "Paused by the PAUSE lifecycle event; UNPAUSE resumes where it stopped."}

    feed.store.append("orders", 1, 500)
    feed.clock.now += 1
    assert feed("UNPAUSE") == {"triggerName": FQN, "status": "active"}
    assert feed.subscription().segments == (Segment(0, {0: 3, 1: 1}, {0: 4, 1: 1}), Segment(2, {0: 4, 1: 1}))
    assert feed("READ")["status"]["state"] == "active"


def test_pause_and_unpause_are_idempotent_and_write_nothing_twice(feed: Feed) -> None:
    feed("CREATE", topic="orders")
    assert feed("UNPAUSE")["status"] == "active"
    feed("PAUSE")
    feed.store.append("orders", 0, 400)
    assert feed("PAUSE")["status"] == "paused"
    assert len(feed.store.records) == 2
    feed("UNPAUSE")
    feed("UNPAUSE")
    assert len(feed.store.records) == 3


@pytest.mark.parametrize("event", ["PAUSE", "UNPAUSE"])
def test_pause_and_unpause_need_a_subscription(feed: Feed, event: str) -> None:
    assert feed.refusal(event) == (404, "The trigger /guest/T has no kafkaFeed subscription.")


def test_every_event_is_handled() -> None:
    assert set(EVENTS) == {"CREATE", "READ", "UPDATE", "DELETE", "PAUSE", "UNPAUSE"}
