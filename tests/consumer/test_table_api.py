"""The routers' read API (consumer.table_api, contract feed.lookup): only holders of the sealing keys
may ask; answers come from the table as the lifecycle would read them from the topic; an answer
waits (bounded) for the table to reach the offset the caller names."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
import requests
from cryptography.fernet import Fernet

from feed import lookup, records
from feed.grants import Grant, decode_grant, grant_key, namespace_key_prefix
from feed.records import Options, Segment, Status, Subscription
from tests.fixtures.table_api import ApiServer

pytestmark = pytest.mark.timeout(60)


def sub(trigger: str = "/guest/T", topic: str = "orders") -> Subscription:
    return Subscription(trigger=trigger, topic=topic, credential="sealed-credential", options=Options(),
                        start_from="latest", segments=(Segment(None, {0: 3, 1: 0}),), created_ms=1, updated_ms=2)


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer(max_wait_ms=1500).running() as running:
        yield running


def path_qs(keys: list[str] = (), prefixes: list[str] = (), **extra: object) -> str:  # type: ignore[assignment]
    query = [("key", k) for k in keys] + [("prefix", p) for p in prefixes] + [(k, str(v)) for k, v in extra.items()]
    return f"{lookup.PATH}?{urlencode(query, quote_via=quote)}"


def ask(server: ApiServer, target: str, secret: bytes | None = None, at: float | None = None,
        header: str | None = None) -> requests.Response:
    secret = lookup.api_secrets(server.sealing_keys)[0] if secret is None else secret
    signed = lookup.authorization(secret, int(time.time() if at is None else at), "GET", target)
    return requests.get(server.url + target, headers={"Authorization": signed if header is None else header},
                        timeout=10)


def answer(response: requests.Response) -> tuple[int, dict[bytes, tuple[int, bytes | None]]]:
    assert response.status_code == 200, response.text
    return lookup.decode_answer(response.json())


# --- authentication -----------------------------------------------------------------------------


def test_only_a_request_signed_with_a_sealing_key_now_is_answered(server: ApiServer) -> None:
    target = path_qs(["subscription:/guest/T"])
    good = ask(server, target)
    assert good.status_code == 200
    assert good.headers[lookup.ANSWER_HEADER] == lookup.answer_signature(
        lookup.api_secrets(server.sealing_keys)[0], good.request.headers["Authorization"], good.content), \
        "the answer is signed, bound to the request"
    other = lookup.api_secrets(Fernet.generate_key().decode())[0]
    refused = {
        "no header": requests.get(server.url + target, timeout=10),
        "another key": ask(server, target, secret=other),
        "too old": ask(server, target, at=time.time() - lookup.MAX_SKEW_S - 5),
        "from the future": ask(server, target, at=time.time() + lookup.MAX_SKEW_S + 5),
        "a bearer secret": ask(server, target, header="Bearer " + lookup.api_secrets(server.sealing_keys)[0].hex()),
        "garbage": ask(server, target, header=lookup.SCHEME + " t=1,s=zz"),
    }
    for why, response in refused.items():
        assert response.status_code == 401, why
        assert response.json() == {"error": "unauthorized"}, why
    signed_for_another = lookup.authorization(lookup.api_secrets(server.sealing_keys)[0], int(time.time()), "GET",
                                              path_qs(["subscription:/guest/U"]))
    tampered = requests.get(server.url + target, headers={"Authorization": signed_for_another}, timeout=10)
    assert tampered.status_code == 401, "the signature covers the query"


def test_every_key_of_the_list_may_sign_so_a_rotation_keeps_answering() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with ApiServer(sealing_keys=f"{new},{old}").running() as server:
        target = path_qs(["subscription:/guest/T"])
        for key in (old, new):
            assert ask(server, target, secret=lookup.api_secrets(key)[0]).status_code == 200


def test_the_secret_is_not_the_public_require_whisk_auth_value_and_depends_on_the_key() -> None:
    from messaging_lib.credentials import web_auth_secret
    key = Fernet.generate_key().decode()
    secret = lookup.api_secrets(key)[0]
    assert secret.hex() not in web_auth_secret(key) and len(secret) == 32
    assert secret != lookup.api_secrets(Fernet.generate_key().decode())[0]
    assert lookup.api_secrets(key) == lookup.api_secrets([key])


# --- answers ------------------------------------------------------------------------------------


def test_answers_the_latest_subscription_with_its_version_its_status_and_the_namespace_grants(
        server: ApiServer) -> None:
    server.subscription(sub(topic="old"))
    version = server.subscription(sub())  # replaced: the latest one, with its own offset
    server.status("/guest/T", Status(404, records.disabled_message(404), version, 7))
    server.subscription(sub("/guest/U"))
    server.grant(Grant("guest", "orders"))
    server.grant(Grant("guest", "orders.", prefix=True))
    server.grant(Grant("guest", "gone"))
    server.grant(Grant("guest", "gone"), revoke=True)
    server.grant(Grant("other", "orders"))
    applied, found = answer(ask(server, path_qs(
        ["subscription:/guest/T", "status:/guest/T", "subscription:/guest/missing"],
        [namespace_key_prefix("guest").decode()])))
    assert applied == server.index.applied == 8
    assert set(found) == {records.subscription_key("/guest/T"), records.status_key("/guest/T"),
                          grant_key("guest", "orders"), grant_key("guest", "orders.", prefix=True)}
    offset, value = found[records.subscription_key("/guest/T")]
    assert offset == version == 1
    assert records.decode_subscription(value).resolved(offset) == sub().resolved(version)
    assert records.decode_status(found[records.status_key("/guest/T")][1]) == Status(
        404, records.disabled_message(404), version, 7)
    assert found[records.status_key("/guest/T")][0] == -1, "the table keeps no offset of a status"
    grants = {decode_grant(k, v) for k, (_, v) in found.items() if k.startswith(b"grant:")}
    assert grants == {Grant("guest", "orders"), Grant("guest", "orders.", prefix=True)}


def test_a_deleted_subscription_is_absent(server: ApiServer) -> None:
    server.subscription(sub())
    server.apply(records.subscription_key("/guest/T"), None)
    assert answer(ask(server, path_qs(["subscription:/guest/T", "status:/guest/T"])))[1] == {}


def test_keys_and_prefixes_the_table_does_not_hold_are_refused_so_the_caller_reads_the_topic(
        server: ApiServer) -> None:
    for target in (path_qs(["sealing-key-fingerprint"]), path_qs(prefixes=["grant:"]),
                   path_qs(prefixes=["subscription:/guest/"]), path_qs(prefixes=["grant:a:b:"])):
        response = ask(server, target)
        assert response.status_code == 400, target
    assert ask(server, path_qs(min_offset="x")).status_code == 400
    assert ask(server, path_qs([f"subscription:/guest/T{i}" for i in range(65)])).status_code == 400


# --- freshness ----------------------------------------------------------------------------------


def test_an_answer_waits_for_the_table_to_apply_the_offset_asked_for(server: ApiServer) -> None:
    server.subscription(sub())
    server.skip_to(5)
    got: list[requests.Response] = []
    asking = threading.Thread(target=lambda: got.append(ask(server, path_qs(
        ["subscription:/guest/T"], min_offset=5, wait_ms=1500))))
    started = time.monotonic()
    asking.start()
    deadline = time.monotonic() + 10
    while server.api.waiting == 0:  # the request waits for the table
        assert time.monotonic() < deadline and not got, "answered before the table reached offset 5"
        time.sleep(0.01)
    assert not got
    server.subscription(sub(topic="newer"))
    asking.join(timeout=10)
    applied, found = answer(got[0])
    assert applied == 5 and time.monotonic() - started < 1.5
    assert records.decode_subscription(found[records.subscription_key("/guest/T")][1]).topic == "newer"


def test_a_table_that_does_not_get_there_in_time_answers_503_with_how_far_it_got(server: ApiServer) -> None:
    server.subscription(sub())
    started = time.monotonic()
    response = ask(server, path_qs(["subscription:/guest/T"], min_offset=9, wait_ms=60_000))
    waited = time.monotonic() - started
    assert response.status_code == 503 and response.json()["applied_offset"] == 0
    assert 1.4 <= waited < 5, f"the wait is capped by the router ({waited:.1f} s)"
    assert answer(ask(server, path_qs(["subscription:/guest/T"], min_offset=0)))[0] == 0


def test_a_router_that_is_not_ready_answers_503_at_once(server: ApiServer) -> None:
    server.ready = False
    started = time.monotonic()
    response = ask(server, path_qs(["subscription:/guest/T"], min_offset=-1, wait_ms=1500))
    assert response.status_code == 503 and time.monotonic() - started < 1.0
