"""Emulator: packages, bindings, publish and cross-namespace access (openwhisk-api.md section 3)."""

from __future__ import annotations

from tests.fixtures.emulator import EmulatorHandle, put_action

CODE = "def main(args):\n    return args\n"


def test_create_update_conflict_and_version(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("p")
    created = client.put(f"_/packages/{name}", json={"parameters": [{"key": "a", "value": 1}]})
    assert created.status_code == 200
    body = created.json()
    assert body["version"] == "0.0.1"
    assert body["binding"] == {}
    assert body["publish"] is False
    again = client.put(f"_/packages/{name}", json={})
    assert again.status_code == 409
    assert again.json()["error"] == "resource already exists"
    updated = client.put(f"_/packages/{name}?overwrite=true", json={"publish": True}).json()
    assert updated["version"] == "0.0.2"
    assert updated["publish"] is True
    assert updated["parameters"] == [{"key": "a", "value": 1}]  # omitted fields keep their values


def test_default_is_reserved(emulator: EmulatorHandle) -> None:
    response = emulator.api().put("_/packages/default", json={})
    assert response.status_code == 400
    assert response.json()["error"] == "Package name 'default' is reserved."


def test_get_splits_actions_and_feeds(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    pkg = emulator.unique("p")
    client.put(f"_/packages/{pkg}", json={})
    put_action(client, f"{pkg}/plain", CODE)
    put_action(client, f"{pkg}/feedy", CODE, annotations=[{"key": "feed", "value": True}])
    body = client.get(f"_/packages/{pkg}").json()
    assert [a["name"] for a in body["actions"]] == ["plain"]
    assert [f["name"] for f in body["feeds"]] == ["feedy"]
    assert {"name", "version", "annotations"} <= set(body["actions"][0])


def test_private_package_is_403_for_others_and_published_is_readable(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    private, shared = emulator.unique("priv"), emulator.unique("pub")
    guest.put(f"_/packages/{private}", json={"parameters": [{"key": "secret", "value": "s"}]})
    guest.put(f"_/packages/{shared}", json={"publish": True, "parameters": [{"key": "p", "value": 1}]})
    denied = alice.get(f"guest/packages/{private}")
    assert denied.status_code == 403
    assert denied.json()["error"] == f"The supplied authentication is not authorized to access 'guest/{private}'."
    missing = alice.get("guest/packages/does-not-exist")
    assert missing.status_code == 403  # nothing leaks about another namespace's packages
    assert guest.get("_/packages/does-not-exist").status_code == 404
    assert alice.get(f"guest/packages/{shared}").json()["parameters"] == [{"key": "p", "value": 1}]
    listed = [p["name"] for p in alice.get("guest/packages?limit=200").json()]
    assert shared in listed and private not in listed
    assert alice.put(f"guest/packages/{shared}?overwrite=true", json={}).status_code == 403
    assert alice.delete(f"guest/packages/{shared}").status_code == 403


def test_binding_merges_parameters_binding_wins(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    shared, binding = emulator.unique("pub"), emulator.unique("b")
    guest.put(f"_/packages/{shared}", json={"publish": True, "parameters": [
        {"key": "endpoint", "value": "e"}, {"key": "x", "value": "package"}]})
    put_action(guest, f"{shared}/act", CODE)
    created = alice.put(f"_/packages/{binding}", json={
        "binding": {"namespace": "guest", "name": shared}, "parameters": [{"key": "x", "value": "binding"}]})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["binding"] == {"namespace": "guest", "name": shared}
    assert {"key": "binding", "value": {"namespace": "guest", "name": shared}} in body["annotations"]
    got = alice.get(f"_/packages/{binding}").json()
    assert got["name"] == binding and got["namespace"] == "alice"
    assert {p["key"]: p["value"] for p in got["parameters"]} == {"endpoint": "e", "x": "binding"}
    assert [a["name"] for a in got["actions"]] == ["act"]
    listed = alice.get(f"_/actions/{binding}/").json()
    assert [a["name"] for a in listed] == ["act"]
    summary = next(p for p in alice.get("_/packages?limit=200").json() if p["name"] == binding)
    assert summary["binding"] == {"namespace": "guest", "name": shared}
    assert guest.get(f"alice/packages/{binding}").status_code == 403  # a binding is never shared


def test_binding_errors(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    private, shared, binding = emulator.unique("priv"), emulator.unique("pub"), emulator.unique("b")
    guest.put(f"_/packages/{private}", json={})
    guest.put(f"_/packages/{shared}", json={"publish": True})
    to_private = alice.put(f"_/packages/{emulator.unique('b')}",
                           json={"binding": {"namespace": "guest", "name": private}})
    assert to_private.status_code == 403
    own_missing = alice.put(f"_/packages/{emulator.unique('b')}", json={"binding": {"namespace": "_", "name": "nope"}})
    assert own_missing.status_code == 400
    assert own_missing.json()["error"] == "Binding references a package that does not exist."
    assert alice.put(f"_/packages/{binding}", json={"binding": {"namespace": "guest", "name": shared}}).ok
    to_binding = alice.put(f"_/packages/{emulator.unique('b')}",
                           json={"binding": {"namespace": "alice", "name": binding}})
    assert to_binding.status_code == 400
    assert to_binding.json()["error"] == "Cannot bind to another package binding."
    plain = emulator.unique("plain")
    alice.put(f"_/packages/{plain}", json={})
    converted = alice.put(f"_/packages/{plain}?overwrite=true", json={"binding": {"namespace": "guest",
                                                                                   "name": shared}})
    assert converted.status_code == 409
    in_binding = alice.put(f"_/actions/{binding}/x", json={"exec": {"kind": "python:3.11", "code": CODE}})
    assert in_binding.status_code == 400
    assert in_binding.json()["error"] == "Operation not permitted on package binding."


def test_delete_non_empty_needs_force(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    pkg = emulator.unique("p")
    client.put(f"_/packages/{pkg}", json={})
    put_action(client, f"{pkg}/a1", CODE)
    put_action(client, f"{pkg}/a2", CODE)
    refused = client.delete(f"_/packages/{pkg}")
    assert refused.status_code == 409
    assert refused.json()["error"] == \
        "Package not empty (contains 2 entities). Set force param or delete package contents."
    deleted = client.delete(f"_/packages/{pkg}?force=true")
    assert deleted.status_code == 200
    assert deleted.json()["name"] == pkg
    assert client.get(f"_/actions/{pkg}/a1").status_code == 404
    assert client.get(f"_/packages/{pkg}").status_code == 404
