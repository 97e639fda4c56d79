"""Emulator: web actions (openwhisk-api.md section 8 and the private-web-action pattern of 12.3)."""

from __future__ import annotations

import requests

from tests.fixtures.emulator import EmulatorHandle, put_action

WEB = [{"key": "web-export", "value": True}, {"key": "raw-http", "value": False}, {"key": "final", "value": True}]
CONTEXT = """import os

def main(args):
    return {"args": args, "ns": os.environ["__OW_NAMESPACE"], "name": os.environ["__OW_ACTION_NAME"]}
"""


def test_json_extension_gets_query_body_and_context(emulator: EmulatorHandle) -> None:
    guest = emulator.api()
    pkg = emulator.unique("web")
    guest.put(f"_/packages/{pkg}", json={"parameters": [{"key": "secret", "value": "s3"}]})
    put_action(guest, f"{pkg}/ctx", CONTEXT, annotations=WEB)
    response = requests.post(f"{emulator.url}/api/v1/web/guest/{pkg}/ctx.json/extra/path?q=1",
                             json={"b": 2}, headers={"X-Thing": "v"}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    args = body["args"]
    assert args["secret"] == "s3" and args["q"] == "1" and args["b"] == 2
    assert args["__ow_method"] == "post"
    assert args["__ow_path"] == "/extra/path"
    assert args["__ow_headers"]["x-thing"] == "v"
    assert body["ns"] == "guest" and body["name"] == f"/guest/{pkg}/ctx"
    activation_id = response.headers["x-openwhisk-activation-id"]
    assert emulator.api("guest").get(f"_/activations/{activation_id}").status_code == 200


def test_final_params_and_reserved_names_are_protected(emulator: EmulatorHandle) -> None:
    guest = emulator.api()
    pkg = emulator.unique("web")
    guest.put(f"_/packages/{pkg}", json={"parameters": [{"key": "secret", "value": "s3"}]})
    put_action(guest, f"{pkg}/ctx", CONTEXT, annotations=WEB)
    url = f"{emulator.url}/api/v1/web/guest/{pkg}/ctx.json"
    for response in (requests.post(url, json={"secret": "mine"}, timeout=30),
                     requests.get(url + "?__ow_method=x", timeout=30)):
        assert response.status_code == 400
        assert response.json()["error"] == \
            "Request defines parameters that are not allowed (e.g., reserved properties)."


def test_http_extension_interprets_status_headers_and_body(emulator: EmulatorHandle) -> None:
    guest = emulator.api()
    name = emulator.unique("h")
    put_action(guest, name, "def main(args):\n    return {'statusCode': 201, 'headers': {'X-Out': 'o', "
                            "'Content-Type': 'text/plain'}, 'body': 'made ' + args.get('what', '')}\n",
               annotations=WEB)
    response = requests.get(f"{emulator.url}/api/v1/web/guest/default/{name}?what=it", timeout=30)
    assert response.status_code == 201
    assert response.headers["X-Out"] == "o"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "made it"
    as_json = requests.get(f"{emulator.url}/api/v1/web/guest/default/{name}.json", timeout=30)
    assert as_json.json()["statusCode"] == 201


def test_http_json_body_and_application_error(emulator: EmulatorHandle) -> None:
    guest = emulator.api()
    ok, failing = emulator.unique("h"), emulator.unique("h")
    put_action(guest, ok, "def main(args):\n    return {'body': {'a': 1}}\n", annotations=WEB)
    put_action(guest, failing, "def main(args):\n    return {'error': {'statusCode': 409, 'body': 'taken'}}\n",
               annotations=WEB)
    response = requests.get(f"{emulator.url}/api/v1/web/guest/default/{ok}.http", timeout=30)
    assert response.status_code == 200 and response.json() == {"a": 1}
    error = requests.get(f"{emulator.url}/api/v1/web/guest/default/{failing}", timeout=30)
    assert error.status_code == 409 and error.text == "taken"


def test_only_exported_actions_are_reachable(emulator: EmulatorHandle) -> None:
    guest = emulator.api()
    name = emulator.unique("p")
    put_action(guest, name, "def main(args):\n    return {}\n")
    response = requests.get(f"{emulator.url}/api/v1/web/guest/default/{name}.json", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"] == "The requested resource does not exist."
    unknown_ns = requests.get(f"{emulator.url}/api/v1/web/nobody/default/{name}.json", timeout=30)
    assert unknown_ns.status_code == 404


def test_require_whisk_auth_secret(emulator: EmulatorHandle) -> None:
    guest = emulator.api()
    name = emulator.unique("s")
    put_action(guest, name, "def main(args):\n    return {'ok': True}\n",
               annotations=[*WEB, {"key": "require-whisk-auth", "value": "letmein"}])
    url = f"{emulator.url}/api/v1/web/guest/default/{name}.json"
    assert requests.get(url, timeout=30).status_code == 401
    allowed = requests.get(url, headers={"X-Require-Whisk-Auth": "letmein"}, timeout=30)
    assert allowed.status_code == 200 and allowed.json() == {"ok": True}


def test_web_action_called_by_another_namespace_runs_as_owner(emulator: EmulatorHandle) -> None:
    owner = emulator.api("bob")
    pkg = emulator.unique("web")
    owner.put(f"_/packages/{pkg}", json={})
    put_action(owner, f"{pkg}/ctx", CONTEXT, annotations=WEB)
    alice_user, alice_key = emulator.auth("alice").split(":")
    response = requests.get(f"{emulator.url}/api/v1/web/bob/{pkg}/ctx.json", auth=(alice_user, alice_key),
                            timeout=30)
    assert response.status_code == 200
    assert response.json()["ns"] == "bob"
    assert response.json()["args"]["__ow_user"] == "alice"
