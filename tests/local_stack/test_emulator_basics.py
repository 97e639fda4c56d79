"""Emulator: info endpoints, authentication, `_` resolution, names, error wrapping, list parameters."""

from __future__ import annotations

import requests

from tests.fixtures.emulator import EmulatorHandle

AUTH_CHALLENGE = 'Basic realm="OpenWhisk secure realm"'


def test_root_info_has_the_exact_content_type_and_python_311_as_default(emulator: EmulatorHandle) -> None:
    response = requests.get(emulator.url + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = response.json()
    assert body["api_paths"] == ["/api/v1"]
    [python] = body["runtimes"]["python"]
    assert python["kind"] == "python:3.11"
    assert python["default"] is True
    assert python["deprecated"] is False


def test_root_limits_follow_the_live_default_limits(emulator: EmulatorHandle) -> None:
    before = requests.get(emulator.url + "/", timeout=10).json()["limits"]
    emulator.set_limits(firesPerMinute=123456)
    try:
        after = requests.get(emulator.url + "/", timeout=10).json()["limits"]
        assert after["triggers_per_minute"] == 123456
        assert after["actions_per_minute"] == before["actions_per_minute"]
    finally:
        emulator.set_limits(firesPerMinute=before["triggers_per_minute"])


def test_api_v1_info_needs_no_auth(emulator: EmulatorHandle) -> None:
    response = requests.get(emulator.url + "/api/v1", timeout=10)
    assert response.status_code == 200
    assert response.json()["api_version_path"] == "v1"


def test_namespaces_lists_the_name_of_the_key(emulator: EmulatorHandle) -> None:
    assert emulator.api("guest").get("").json() == ["guest"]
    assert emulator.api("alice").get("").json() == ["alice"]


def test_missing_credentials_401_with_challenge(emulator: EmulatorHandle) -> None:
    response = emulator.api(None).get("_/actions")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == AUTH_CHALLENGE
    body = response.json()
    assert body["error"] == "The resource requires authentication, which was not supplied with the request"
    assert isinstance(body["code"], str) and body["code"]


def test_wrong_key_401_invalid(emulator: EmulatorHandle) -> None:
    uuid = emulator.auth("guest").split(":")[0]
    for auth in ((uuid, "x" * 64), ("not-a-uuid", "nope")):
        response = requests.get(emulator.url + "/api/v1/namespaces/_/triggers", auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == AUTH_CHALLENGE
        assert response.json()["error"] == "The supplied authentication is invalid"
    garbage = requests.get(emulator.url + "/api/v1/namespaces/_/triggers",
                           headers={"Authorization": "Basic !!!"}, timeout=10)
    assert garbage.status_code == 401
    assert garbage.json()["error"] == "The supplied authentication is invalid"


def test_underscore_is_the_namespace_of_the_key(emulator: EmulatorHandle) -> None:
    name = emulator.unique("t")
    alice = emulator.api("alice")
    assert alice.put(f"_/triggers/{name}", json={}).json()["namespace"] == "alice"
    assert alice.get(f"alice/triggers/{name}").status_code == 200
    assert emulator.api("guest").get(f"_/triggers/{name}").status_code == 404


def test_illegal_entity_name_is_400(emulator: EmulatorHandle) -> None:
    response = emulator.api().put("_/triggers/-bad%20name-", json={})
    assert response.status_code == 400
    assert response.json()["error"] == "The name of the entity contains illegal characters."


def test_names_with_spaces_and_at_signs_are_legal(emulator: EmulatorHandle) -> None:
    name = f"a b@c.{emulator.unique('x')}"
    client = emulator.api()
    response = client.put(f"_/triggers/{requests.utils.quote(name)}", json={})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == name


def test_unknown_routes_are_wrapped_errors(emulator: EmulatorHandle) -> None:
    unauthenticated = requests.get(emulator.url + "/api/v1/nothing/here", timeout=10)
    assert unauthenticated.status_code == 401
    authenticated = emulator.api().get("_/nothing-here")
    assert authenticated.status_code == 404
    assert set(authenticated.json()) == {"error", "code"}
    outside = requests.get(emulator.url + "/no/such/path", timeout=10)
    assert outside.status_code == 404
    assert set(outside.json()) == {"error", "code"}
    wrong_method = emulator.api().post("_/packages/p")
    assert wrong_method.status_code == 405
    assert set(wrong_method.json()) == {"error", "code"}


def test_same_name_in_another_collection_is_a_conformance_conflict(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("c")
    assert client.put(f"_/triggers/{name}", json={}).status_code == 200
    response = client.get(f"_/rules/{name}")
    assert response.status_code == 409
    assert response.json()["error"] == "Resource by this name exists but is not in this collection."
    assert client.put(f"_/packages/{name}", json={}).status_code == 409


def test_list_limit_skip_and_count(emulator: EmulatorHandle) -> None:
    client = emulator.api("bob")
    names = [emulator.unique("l") for _ in range(3)]
    for name in names:
        assert client.put(f"_/triggers/{name}", json={}).status_code == 200
    total = client.get("_/triggers?count=true").json()["triggers"]
    assert total >= 3
    assert client.get("_/triggers?count=true&skip=1").json() == {"triggers": total - 1}
    newest_first = [t["name"] for t in client.get("_/triggers?limit=2").json()]
    assert newest_first == [names[2], names[1]]
    assert [t["name"] for t in client.get("_/triggers?limit=1&skip=1").json()] == [names[1]]
    assert len(client.get("_/triggers?limit=0").json()) == min(total, 200)
    too_many = client.get("_/triggers?limit=201")
    assert too_many.status_code == 400
    assert too_many.json()["error"] == "The value '201' is not in the range of 0 to 200 for triggers."
    assert client.get("_/triggers?skip=-1").json()["error"] == \
        "The value '-1' is not greater than or equal to 0 for triggers."
    assert client.get("_/triggers?limit=x").json()["error"] == "The value 'x' is not an integer for triggers."


def test_namespace_limits_endpoint(emulator: EmulatorHandle) -> None:
    body = emulator.api().get("_/limits").json()
    assert {"firesPerMinute", "invocationsPerMinute", "concurrentInvocations"} <= set(body)
    forbidden = emulator.api("alice").get("guest/limits")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "The supplied authentication is not authorized to access 'guest'."
