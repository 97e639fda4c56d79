"""Emulator: trigger CRUD, firing, rules, and what fired rules invoke (sections 5, 6, 9)."""

from __future__ import annotations

import json

from tests.fixtures.emulator import EmulatorHandle, fresh_minute, put_action, wait_for_activation

ECHO = "def main(args):\n    return args\n"


def make_wired(emulator: EmulatorHandle, namespace: str = "guest", **trigger_body: object) -> tuple[str, str, str]:
    """A trigger, an echo action and an active rule between them; returns their names."""
    client = emulator.api(namespace)
    trigger, action, rule = emulator.unique("t"), emulator.unique("a"), emulator.unique("r")
    assert client.put(f"_/triggers/{trigger}", json=trigger_body).status_code == 200
    put_action(client, action, ECHO)
    created = client.put(f"_/rules/{rule}", json={"trigger": f"/_/{trigger}", "action": f"/_/{action}"})
    assert created.status_code == 200, created.text
    return trigger, action, rule


def test_trigger_crud(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("t")
    created = client.put(f"_/triggers/{name}", json={"parameters": [{"key": "a", "value": 1}]}).json()
    assert created["version"] == "0.0.1" and created["limits"] == {} and "rules" not in created
    assert client.put(f"_/triggers/{name}", json={}).json()["error"] == "resource already exists"
    updated = client.put(f"_/triggers/{name}?overwrite=true", json={"publish": True}).json()
    assert updated["version"] == "0.0.2"
    assert updated["parameters"] == [{"key": "a", "value": 1}]
    assert client.get(f"_/triggers/{name}").json()["publish"] is True
    deleted = client.delete(f"_/triggers/{name}")
    assert deleted.status_code == 200 and deleted.json()["name"] == name
    assert client.get(f"_/triggers/{name}").status_code == 404


def test_feed_annotation_must_be_an_entity_name(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    bad = client.put(f"_/triggers/{emulator.unique('t')}", json={"annotations": [{"key": "feed", "value": "a/b/c/d"}]})
    assert bad.status_code == 400
    assert bad.json()["error"] == "Feed name is not valid"
    good = client.put(f"_/triggers/{emulator.unique('t')}",
                      json={"annotations": [{"key": "feed", "value": "/whisk.system/messaging/kafkaFeed"}]})
    assert good.status_code == 200


def test_fire_without_rules_is_204_and_records_nothing(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    before = client.get("_/activations?count=true").json()["activations"]
    response = client.post(f"_/triggers/{name}", json={"a": 1})
    assert response.status_code == 204
    assert response.content == b""
    assert client.get("_/activations?count=true").json()["activations"] == before


def test_fire_missing_trigger_404_and_another_namespaces_trigger_403(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    missing = guest.post("_/triggers/no-such-trigger", json={})
    assert missing.status_code == 404
    assert missing.json()["error"] == "The requested resource does not exist."
    name = emulator.unique("t")
    guest.put(f"_/triggers/{name}", json={})
    forbidden = alice.post(f"guest/triggers/{name}", json={})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == f"The supplied authentication is not authorized to access 'guest/{name}'."
    assert alice.get(f"guest/triggers/{name}").status_code == 403
    assert alice.get("guest/triggers").json()["error"] == \
        "The supplied authentication is not authorized to access 'guest'."


def test_fire_with_active_rule_202_trigger_activation_and_action_args(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    trigger, action, rule = make_wired(emulator, parameters=[{"key": "fromTrigger", "value": 1},
                                                             {"key": "both", "value": "trigger"}])
    response = client.post(f"_/triggers/{trigger}", json={"both": "payload", "p": 2},
                           headers={"X-Custom": "Yes"})
    assert response.status_code == 202
    activation_id = response.json()["activationId"]
    assert response.headers["x-openwhisk-activation-id"] == activation_id
    record = wait_for_activation(client, activation_id)
    assert record["name"] == trigger
    assert record["namespace"] == "guest"
    assert "end" not in record and "duration" not in record
    assert record["response"]["result"] == {"both": "payload", "p": 2}
    [line] = record["logs"]
    log = json.loads(line)
    assert log["statusCode"] == 0 and log["success"] is True
    assert log["rule"] == f"guest/{rule}" and log["action"] == f"guest/{action}"
    invoked = wait_for_activation(client, log["activationId"])
    args = invoked["response"]["result"]
    assert args["fromTrigger"] == 1
    assert args["both"] == "payload"
    assert args["p"] == 2
    assert args["__ow_headers"]["x-custom"] == "Yes"
    assert args["__ow_headers"]["authorization"].startswith("Basic ")
    assert "cause" not in invoked


def test_rules_map_on_the_trigger_and_inactive_rules(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    trigger, action, rule = make_wired(emulator)
    rules = client.get(f"_/triggers/{trigger}").json()["rules"]
    assert rules == {f"guest/{rule}": {"action": {"path": "guest", "name": action}, "status": "active"}}
    disabled = client.post(f"_/rules/{rule}", json={"status": "inactive", "trigger": None, "action": None})
    assert disabled.status_code == 200
    assert client.get(f"_/rules/{rule}").json()["status"] == "inactive"
    assert client.post(f"_/triggers/{trigger}", json={}).status_code == 204
    second_action = emulator.unique("a")
    put_action(client, second_action, ECHO)
    second_rule = emulator.unique("r")
    client.put(f"_/rules/{second_rule}", json={"trigger": {"path": "_", "name": trigger},
                                               "action": {"path": "guest", "name": second_action}})
    fired = client.post(f"_/triggers/{trigger}", json={})
    assert fired.status_code == 202
    logs = [json.loads(x) for x in wait_for_activation(client, fired.json()["activationId"])["logs"]]
    by_rule = {entry["rule"]: entry for entry in logs}
    assert by_rule[f"guest/{rule}"] == {
        "statusCode": 1, "success": False, "rule": f"guest/{rule}", "action": f"guest/{action}",
        "error": f"Rule 'guest/{rule}' is inactive, action 'guest/{action}' was not activated."}
    assert by_rule[f"guest/{second_rule}"]["success"] is True


def test_rule_crud_and_errors(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    trigger, action, rule = make_wired(emulator)
    got = client.get(f"_/rules/{rule}").json()
    assert got["status"] == "active"
    assert got["trigger"] == {"path": "guest", "name": trigger}
    assert got["action"] == {"path": "guest", "name": action}
    missing_trigger = client.put(f"_/rules/{emulator.unique('r')}", json={"trigger": "/_/nope", "action": action})
    assert missing_trigger.status_code == 400
    assert missing_trigger.json()["error"] == "trigger /guest/nope does not exist"
    missing_action = client.put(f"_/rules/{emulator.unique('r')}", json={"trigger": trigger, "action": "/_/nope"})
    assert missing_action.json()["error"] == "action /guest/nope does not exist"
    bad_state = client.post(f"_/rules/{rule}", json={"status": "paused"})
    assert bad_state.status_code == 400
    assert client.post(f"_/rules/{rule}", json={"status": "active"}).status_code == 200  # same state is fine
    other_trigger = emulator.unique("t")
    client.put(f"_/triggers/{other_trigger}", json={})
    moved = client.put(f"_/rules/{rule}?overwrite=true", json={"trigger": f"/_/{other_trigger}"}).json()
    assert moved["version"] == "0.0.2" and moved["status"] == "active"
    assert client.get(f"_/triggers/{trigger}").json()["rules"] == {}
    assert f"guest/{rule}" in client.get(f"_/triggers/{other_trigger}").json()["rules"]
    deleted = client.delete(f"_/rules/{rule}").json()
    assert deleted["status"] == "inactive"
    assert client.get(f"_/triggers/{other_trigger}").json()["rules"] == {}
    assert client.get(f"_/rules/{rule}").status_code == 404


def test_rule_of_a_deleted_trigger_reads_inactive_and_cannot_be_enabled(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    trigger, _action, rule = make_wired(emulator)
    client.delete(f"_/triggers/{trigger}")
    assert client.get(f"_/rules/{rule}").json()["status"] == "inactive"
    response = client.post(f"_/rules/{rule}", json={"status": "active"})
    assert response.status_code == 404
    assert response.json()["error"] == "Only rules with existing triggers can be activated"


def test_rule_to_a_shared_package_action_runs_as_the_firer(emulator: EmulatorHandle) -> None:
    guest, alice = emulator.api("guest"), emulator.api("alice")
    pkg = emulator.unique("pub")
    guest.put(f"_/packages/{pkg}", json={"publish": True, "parameters": [{"key": "fromPackage", "value": 1}]})
    put_action(guest, f"{pkg}/echo", "import os\n\ndef main(args):\n    return {'ns': os.environ['__OW_NAMESPACE'],"
                                     " 'pkg': args.get('fromPackage')}\n")
    trigger, rule = emulator.unique("t"), emulator.unique("r")
    alice.put(f"_/triggers/{trigger}", json={})
    assert alice.put(f"_/rules/{rule}", json={"trigger": f"/_/{trigger}", "action": f"/guest/{pkg}/echo"}).ok
    fired = alice.post(f"_/triggers/{trigger}", json={})
    log = json.loads(wait_for_activation(alice, fired.json()["activationId"])["logs"][0])
    assert log["action"] == f"guest/{pkg}/echo"
    invoked = wait_for_activation(alice, log["activationId"])
    assert invoked["response"]["result"] == {"ns": "alice", "pkg": 1}


def test_throttled_rule_invoke_is_logged_but_the_fire_is_202(emulator: EmulatorHandle) -> None:
    client = emulator.api("bob")
    trigger, _action, rule = make_wired(emulator, "bob")
    fresh_minute()
    emulator.set_limits("bob", reset_counters=True, invocationsPerMinute=0)
    try:
        fired = client.post(f"_/triggers/{trigger}", json={})
        assert fired.status_code == 202
        [line] = wait_for_activation(client, fired.json()["activationId"])["logs"]
        log = json.loads(line)
        assert log["statusCode"] == 1 and log["success"] is False
        assert log["error"] == "Too many requests in the last minute (count: 1, allowed: 0)."
        assert log["rule"] == f"bob/{rule}"
    finally:
        emulator.clear_limits("bob")


def test_fire_payload_over_the_limit_is_413_and_logged_without_body(emulator: EmulatorHandle) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    body = b'{"x":"' + b"y" * 1_048_576 + b'"}'
    response = client.post(f"_/triggers/{name}", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == f"Request larger than allowed: {len(body)} > 1048576 bytes."
    [record] = emulator.fires(trigger=f"/bob/{name}")
    assert record["status"] == 413 and record["payload"] is None


def test_fire_body_must_be_a_json_object(emulator: EmulatorHandle) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    for body in (b"not json", b"[1, 2]"):
        response = client.post(f"_/triggers/{name}", data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"].startswith("The request content was malformed:")
    assert [r["payload"] for r in emulator.fires(trigger=f"/bob/{name}")] == ["not json", [1, 2]]
