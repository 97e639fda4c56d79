"""Emulator: action CRUD, kinds, annotations, parameters, and invocation outcomes (sections 4, 11)."""

from __future__ import annotations

import base64
import io
import zipfile

from tests.fixtures.emulator import EmulatorHandle, put_action, wait_for_activation

ECHO = "def main(args):\n    return args\n"
CONTEXT = """import os

def main(args):
    keys = ["API_HOST", "API_KEY", "NAMESPACE", "ACTION_NAME", "ACTION_VERSION", "ACTIVATION_ID", "DEADLINE"]
    return {"args": args, "env": {k: os.environ.get("__OW_" + k) for k in keys}}
"""


def annotations(body: dict) -> dict:
    return {a["key"]: a["value"] for a in body["annotations"]}


def params(body: dict) -> dict:
    return {p["key"]: p["value"] for p in body["parameters"]}


def zipped(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buffer.getvalue()).decode()


def test_python_default_kind_and_server_annotations(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("a")
    body = client.put(f"_/actions/{name}", json={"exec": {"kind": "python:default", "code": ECHO}}).json()
    assert body["exec"]["kind"] == "python:3.11"
    assert body["exec"]["binary"] is False
    assert annotations(body) == {"provide-api-key": False, "exec": "python:3.11"}
    assert body["limits"] == {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}
    explicit = client.put(f"_/actions/{emulator.unique('a')}", json={
        "exec": {"kind": "python:3.11", "code": ECHO},
        "annotations": [{"key": "provide-api-key", "value": True}]}).json()
    assert annotations(explicit)["provide-api-key"] is True


def test_unknown_kind_is_400(emulator: EmulatorHandle) -> None:
    response = emulator.api().put(f"_/actions/{emulator.unique('a')}",
                                  json={"exec": {"kind": "nodejs:20", "code": ECHO}})
    assert response.status_code == 400
    assert response.json()["error"] == \
        "The specified runtime 'nodejs:20' is not supported by this platform. Valid values are: 'python:3.11'."


def test_update_merges_annotations_deletes_and_bumps_version(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("a")
    put_action(client, name, ECHO, annotations=[{"key": "a", "value": 1}, {"key": "b", "value": 2}],
               parameters=[{"key": "p", "value": 1}])
    conflict = client.put(f"_/actions/{name}", json={"exec": {"kind": "python:3.11", "code": ECHO}})
    assert conflict.status_code == 409
    updated = client.put(f"_/actions/{name}?overwrite=true", json={
        "annotations": [{"key": "b", "value": 3}, {"key": "c", "value": 4}], "delAnnotations": ["a"]}).json()
    assert updated["version"] == "0.0.2"
    assert annotations(updated) == {"b": 3, "c": 4, "provide-api-key": False, "exec": "python:3.11"}
    assert params(updated) == {"p": 1}
    assert updated["exec"]["code"] == ECHO
    assert client.get(f"_/actions/{name}?code=false").json()["exec"] == {"kind": "python:3.11", "binary": False}


def test_base64_zip_is_binary_and_runs(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("z")
    code = zipped({"__main__.py": "from helper import twice\n\ndef main(args):\n    return {'v': twice(args['n'])}\n",
                   "helper.py": "def twice(n):\n    return 2 * n\n"})
    body = client.put(f"_/actions/{name}", json={"exec": {"kind": "python:3.11", "code": code}}).json()
    assert body["exec"]["binary"] is True
    result = client.post(f"_/actions/{name}?blocking=true&result=true", json={"n": 21})
    assert result.status_code == 200, result.text
    assert result.json() == {"v": 42}


def test_parameter_precedence_package_binding_action_invoke(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    pkg, binding = emulator.unique("pub"), emulator.unique("b")
    guest.put(f"_/packages/{pkg}", json={"publish": True, "parameters": [
        {"key": "k1", "value": "package"}, {"key": "k2", "value": "package"}, {"key": "k3", "value": "package"},
        {"key": "k4", "value": "package"}]})
    put_action(guest, f"{pkg}/echo", ECHO, parameters=[{"key": "k3", "value": "action"},
                                                       {"key": "k4", "value": "action"}])
    alice.put(f"_/packages/{binding}", json={"binding": {"namespace": "guest", "name": pkg}, "parameters": [
        {"key": "k2", "value": "binding"}, {"key": "k3", "value": "binding"}]})
    result = alice.post(f"_/actions/{binding}/echo?blocking=true&result=true", json={"k4": "invoke"}).json()
    assert result == {"k1": "package", "k2": "binding", "k3": "action", "k4": "invoke"}
    got = alice.get(f"_/actions/{binding}/echo").json()
    assert got["namespace"] == f"guest/{pkg}"
    assert params(got) == {"k1": "package", "k2": "binding", "k3": "action", "k4": "action"}


def test_final_parameters_cannot_be_overridden(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("f")
    put_action(client, name, ECHO, parameters=[{"key": "fixed", "value": 1}],
               annotations=[{"key": "final", "value": True}])
    refused = client.post(f"_/actions/{name}?blocking=true", json={"fixed": 2})
    assert refused.status_code == 400
    assert refused.json()["error"] == "Request defines parameters that are not allowed (e.g., reserved properties)."
    allowed = client.post(f"_/actions/{name}?blocking=true&result=true", json={"other": 2})
    assert allowed.json() == {"fixed": 1, "other": 2}


def test_ow_environment_and_provide_api_key(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    without, with_key = emulator.unique("ctx"), emulator.unique("ctx")
    put_action(client, without, CONTEXT)
    put_action(client, with_key, CONTEXT, annotations=[{"key": "provide-api-key", "value": True}])
    response = client.post(f"_/actions/{without}?blocking=true")
    env = response.json()["response"]["result"]["env"]
    assert env["API_KEY"] is None
    assert env["NAMESPACE"] == "guest"
    assert env["ACTION_NAME"] == f"/guest/{without}"
    assert env["ACTION_VERSION"] == "0.0.1"
    assert env["ACTIVATION_ID"] == response.headers["x-openwhisk-activation-id"]
    assert env["API_HOST"] == emulator.url
    assert int(env["DEADLINE"]) > response.json()["start"]
    keyed = client.post(f"_/actions/{with_key}?blocking=true&result=true").json()["env"]
    assert keyed["API_KEY"] == emulator.auth("guest")


def test_shared_package_action_runs_as_the_caller(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    pkg, binding = emulator.unique("pub"), emulator.unique("b")
    guest.put(f"_/packages/{pkg}", json={"publish": True})
    put_action(guest, f"{pkg}/ctx", CONTEXT, annotations=[{"key": "provide-api-key", "value": True}])
    direct = alice.post(f"guest/actions/{pkg}/ctx?blocking=true")
    assert direct.status_code == 200, direct.text
    record = direct.json()
    assert record["namespace"] == "alice"
    env = record["response"]["result"]["env"]
    assert env["NAMESPACE"] == "alice"
    assert env["API_KEY"] == emulator.auth("alice")
    assert env["ACTION_NAME"] == f"/guest/{pkg}/ctx"
    assert {"key": "path", "value": f"guest/{pkg}/ctx"} in record["annotations"]
    assert alice.get(f"_/activations/{record['activationId']}").status_code == 200
    assert guest.get(f"_/activations/{record['activationId']}").status_code == 404
    alice.put(f"_/packages/{binding}", json={"binding": {"namespace": "guest", "name": pkg}})
    via_binding = alice.post(f"_/actions/{binding}/ctx?blocking=true").json()
    assert via_binding["response"]["result"]["env"]["ACTION_NAME"] == f"/guest/{pkg}/ctx"
    assert {"key": "binding", "value": f"alice/{binding}"} in via_binding["annotations"]


def test_private_actions_are_403_for_other_namespaces(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    name, pkg = emulator.unique("a"), emulator.unique("priv")
    put_action(guest, name, ECHO)
    guest.put(f"_/packages/{pkg}", json={})
    put_action(guest, f"{pkg}/inner", ECHO)
    top = alice.post(f"guest/actions/{name}?blocking=true")
    assert top.status_code == 403
    assert top.json()["error"] == f"The supplied authentication is not authorized to access 'guest/{name}'."
    inner = alice.post(f"guest/actions/{pkg}/inner?blocking=true")
    assert inner.status_code == 403
    assert inner.json()["error"] == f"The supplied authentication is not authorized to access 'guest/{pkg}'."
    assert alice.get("guest/actions").status_code == 403
    assert alice.put(f"guest/actions/{name}?overwrite=true", json={}).status_code == 403


def test_blocking_non_blocking_and_result(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("a")
    put_action(client, name, "def main(args):\n    print('out', args['x'])\n    return {'x': args['x']}\n")
    blocking = client.post(f"_/actions/{name}?blocking=true", json={"x": 1})
    assert blocking.status_code == 200
    record = blocking.json()
    assert record["response"] == {"status": "success", "statusCode": 0, "success": True, "result": {"x": 1}}
    assert record["activationId"] == blocking.headers["x-openwhisk-activation-id"]
    assert record["duration"] == record["end"] - record["start"]
    assert record["logs"][0].endswith("Z stdout: out 1")
    non_blocking = client.post(f"_/actions/{name}", json={"x": 2})
    assert non_blocking.status_code == 202
    activation_id = non_blocking.json()["activationId"]
    assert non_blocking.headers["x-openwhisk-activation-id"] == activation_id
    assert len(activation_id) == 32
    assert wait_for_activation(client, activation_id)["response"]["result"] == {"x": 2}


def test_array_payload_and_array_result(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("arr")
    put_action(client, name, "def main(args):\n    return list(reversed(args))\n")
    response = client.post(f"_/actions/{name}?blocking=true", json=[1, 2, 3])
    assert response.status_code == 200
    assert response.json() == [3, 2, 1]


def test_application_and_developer_errors_are_502(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    app_error, raises, bad_return = emulator.unique("e"), emulator.unique("e"), emulator.unique("e")
    put_action(client, app_error, "def main(args):\n    return {'error': 'nope'}\n")
    put_action(client, raises, "def main(args):\n    raise ValueError('boom')\n")
    put_action(client, bad_return, "def main(args):\n    return None\n")
    first = client.post(f"_/actions/{app_error}?blocking=true")
    assert first.status_code == 502
    assert first.json()["response"]["status"] == "application error"
    assert first.json()["response"]["statusCode"] == 1
    assert client.post(f"_/actions/{app_error}?blocking=true&result=true").json() == {"error": "nope"}
    second = client.post(f"_/actions/{raises}?blocking=true&result=true")
    assert second.status_code == 502
    assert "boom" in second.json()["error"]
    third = client.post(f"_/actions/{bad_return}?blocking=true")
    assert third.status_code == 502
    assert third.json()["response"]["status"] == "action developer error"
    assert third.json()["response"]["statusCode"] == 2


def test_blocking_wait_ends_with_202(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("slow")
    put_action(client, name, "import time\n\ndef main(args):\n    time.sleep(2)\n    return {'done': True}\n")
    response = client.post(f"_/actions/{name}?blocking=true&timeout=300")
    assert response.status_code == 202
    activation_id = response.json()["activationId"]
    assert wait_for_activation(client, activation_id)["response"]["result"] == {"done": True}
    bad = client.post(f"_/actions/{name}?blocking=true&timeout=0")
    assert bad.status_code == 400
    assert bad.json()["error"] == "Timeout must be number of milliseconds up to 60000."


def test_payload_over_the_limit_is_413(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("a")
    put_action(client, name, ECHO)
    payload = b'{"x":"' + b"y" * 1_048_576 + b'"}'
    response = client.post(f"_/actions/{name}", data=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == f"Request larger than allowed: {len(payload)} > 1048576 bytes."


def test_delete_returns_the_action_and_list_includes_packaged(emulator: EmulatorHandle) -> None:
    client = emulator.api("bob")
    pkg, name = emulator.unique("p"), emulator.unique("a")
    client.put(f"_/packages/{pkg}", json={})
    put_action(client, f"{pkg}/{name}", ECHO)
    listed = client.get("_/actions?limit=200").json()
    entry = next(a for a in listed if a["name"] == name)
    assert entry["namespace"] == f"bob/{pkg}"
    assert entry["exec"] == {"binary": False}
    deleted = client.delete(f"_/actions/{pkg}/{name}")
    assert deleted.status_code == 200
    assert deleted.json()["name"] == name
    assert client.delete(f"_/actions/{pkg}/{name}").status_code == 404
