"""Emulator: the state file (`--state-file`) keeps entities across a restart; activations do not persist."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from local_stack.emulator.entities import Action, EntityRef, Exec, Package, Rule, RuleLink, Trigger
from local_stack.emulator.persistence import StateFile, StateFileError, dump, load
from local_stack.emulator.store import Store
from tests.fixtures.emulator import EmulatorHandle, put_action, start_emulator, stop_emulator, wait_for_activation

ECHO = "def main(args):\n    return {'got': args.get('n')}\n"


def sample_store() -> Store:
    store = Store(100)
    store.put(Package("guest", "pkg", version="0.0.3", publish=True, parameters=[{"key": "p", "value": {"a": 1}}],
                      annotations=[{"key": "note", "value": "x"}], updated=5))
    store.put(Package("guest", "bound", binding=EntityRef("whisk.system", "messaging"), updated=5))
    store.put(Action("guest/pkg", "act", Exec("python:3.11", "UEsDBA==", True, "handler"), version="0.0.2",
                     parameters=[{"key": "secret", "value": "s", "init": True}], limits={"timeout": 1000},
                     updated=6))
    store.put(Trigger("guest", "t", parameters=[{"key": "k", "value": 1}],
                      annotations=[{"key": "feed", "value": "/whisk.system/messaging/kafkaFeed"}],
                      rules={"guest/r": RuleLink(EntityRef("guest/pkg", "act"), "inactive")}, updated=7))
    store.put(Trigger("guest", "bare", updated=7))
    store.put(Rule("guest", "r", EntityRef("guest", "t"), EntityRef("guest/pkg", "act"), updated=8))
    return store


def everything(store: Store) -> list[dict]:
    return [e.to_json() for e in store.entities_in_write_order()]  # actions' JSON includes the code


def test_dump_and_load_round_trip_every_field_and_the_write_order() -> None:
    original = sample_store()
    restored = Store(100)
    assert load(restored, json.loads(json.dumps(dump(original)))) == 6
    assert everything(restored) == everything(original)
    assert [t.name for t in restored.list(Trigger, "guest")] == ["bare", "t"], "same-ms order kept"
    assert restored.get("guest/t", Trigger).rules == {"guest/r": RuleLink(EntityRef("guest/pkg", "act"), "inactive")}
    assert restored.get("guest/bare", Trigger).rules is None


def test_the_state_file_is_written_atomically_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "emulator-state.json"
    store = sample_store()
    state = StateFile(path, store)
    assert state.load() == 0, "no file yet: nothing loaded"
    store.put(Trigger("guest", "later"))  # no event loop here: written at once
    assert sorted(p.name for p in path.parent.iterdir()) == ["emulator-state.json"], "no temp file left"
    assert path.stat().st_mode & 0o777 == 0o600
    again = Store(100)
    assert StateFile(path, again).load() == 7


def test_a_damaged_state_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "emulator-state.json"
    path.write_text('{"format": 1, "entities": [{"kind": "tri')
    with pytest.raises(StateFileError, match=str(path)):
        StateFile(path, Store(100)).load()


def _entities(handle: EmulatorHandle) -> dict[str, object]:
    client = handle.api()
    out: dict[str, object] = {}
    for kind in ("packages", "actions", "triggers", "rules"):
        for summary in client.get(f"_/{kind}?limit=200").json():
            path = summary["namespace"].split("/", 1)
            name = f"{path[1]}/{summary['name']}" if len(path) == 2 else summary["name"]
            out[f"{kind} {name}"] = client.get(f"_/{kind}/{name}").json()
    return out


def test_a_restarted_emulator_comes_back_with_the_entities_and_without_the_activations(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator-state.json"
    first = start_emulator(tmp_path, ["--state-file", str(state_file)])
    try:
        client = first.api()
        assert client.put("_/packages/kept", json={"parameters": [{"key": "p", "value": 1}]}).status_code == 200
        put_action(client, "kept/echo", ECHO, annotations=[{"key": "a", "value": True}])
        assert client.put("_/triggers/kept-t", json={"parameters": [{"key": "n", "value": 0}]}).status_code == 200
        assert client.put("_/rules/kept-r", json={"trigger": "/_/kept-t", "action": "/_/kept/echo"}).ok
        assert client.put("_/triggers/off-t", json={}).status_code == 200
        assert client.put("_/rules/off-r", json={"trigger": "/_/off-t", "action": "/_/kept/echo"}).ok
        assert client.post("_/rules/off-r", json={"status": "inactive"}).status_code == 200
        fired = client.post("_/triggers/kept-t", json={"n": 1})
        assert fired.status_code == 202
        wait_for_activation(client, fired.json()["activationId"], timeout_s=90)
        before = _entities(first)
    finally:
        first.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert first.process.wait(timeout=60) == 0
    assert "Traceback" not in first.log_path.read_text()

    second = start_emulator(tmp_path, ["--state-file", str(state_file)])
    try:
        assert "emulator state: 6 entities loaded from" in second.log_path.read_text()
        assert _entities(second) == before
        client = second.api()
        assert client.get("_/rules/off-r").json()["status"] == "inactive"
        assert client.get("_/activations?count=true").json()["activations"] == 0, "activations do not persist"
        fired = client.post("_/triggers/kept-t", json={"n": 2})
        assert fired.status_code == 202, "the rule is still active after the restart"
        record = wait_for_activation(client, fired.json()["activationId"], timeout_s=90)
        invoked = wait_for_activation(client, json.loads(record["logs"][0])["activationId"], timeout_s=90)
        assert invoked["response"]["result"] == {"got": 2}
        assert client.post("_/triggers/off-t", json={}).status_code == 204
    finally:
        stop_emulator(second.process)
