"""Emulator: a fire that runs no rule, as the OpenWhisk controller answers it.

apache/openwhisk core/controller/src/main/scala/org/apache/openwhisk/core/controller/Triggers.scala,
`WhiskTriggersApi.activate`: when `trigger.rules` holds no rule whose status is `active` (no rules at
all, only inactive ones, or a trigger recreated after its rules were made) the controller logs
"trigger without an active rule was activated; no trigger activation record created" and completes
with `NoContent`: 204, an empty body, no `x-openwhisk-activation-id` header, no activation record.
The fire still counts against the namespace's fires-per-minute throttle (checked before the lookup).
These tests pin that answer with the real client (`wsk`, on openwhisk-client-go) and the raw HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.fixtures.emulator import EmulatorHandle, wait_for_activation
from tests.local_stack.test_wsk_cli import Wsk, wsk  # noqa: F401  (the fixture, shared with the CLI tests)

ECHO = "def main(args):\n    return {'got': args.get('n')}\n"


def _activation_count(emulator: EmulatorHandle) -> int:
    return emulator.api().get("_/activations?count=true").json()["activations"]


def test_the_204_has_no_body_no_content_type_and_no_activation_header(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("t")
    assert client.put(f"_/triggers/{name}", json={}).status_code == 200
    before = _activation_count(emulator)
    response = client.post(f"_/triggers/{name}", json={"a": 1})
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in {k.lower() for k in response.headers}
    assert "x-openwhisk-activation-id" not in {k.lower() for k in response.headers}
    assert _activation_count(emulator) == before
    [logged] = emulator.fires(trigger=f"/guest/{name}")
    assert logged["status"] == 204 and logged["activationId"] is None


def test_a_recreated_trigger_runs_nothing_until_its_rule_is_enabled_again(
        wsk: Wsk, emulator: EmulatorHandle, tmp_path: Path) -> None:  # noqa: F811
    """The README's recipe: after `wsk trigger delete T && wsk trigger create T ...`, `wsk rule enable R`."""
    suffix = os.urandom(4).hex()
    trigger, action, rule = f"nr-t-{suffix}", f"nr-a-{suffix}", f"nr-r-{suffix}"
    (tmp_path / "act.py").write_text(ECHO)
    wsk.ok("trigger", "create", trigger)
    wsk.ok("action", "create", action, "act.py")
    wsk.ok("rule", "create", rule, trigger, action)
    wsk.ok("trigger", "delete", trigger)
    wsk.ok("trigger", "create", trigger)
    assert wsk.ok("rule", "status", rule) == f"ok: rule {rule} is inactive\n"

    before = _activation_count(emulator)
    assert wsk.ok("trigger", "fire", trigger, "-p", "n", "1") == f"ok: triggered /_/{trigger} with id \n"
    assert _activation_count(emulator) == before, "no trigger activation, no action activation"

    assert wsk.ok("rule", "enable", rule) == f"ok: enabled rule {rule}\n"
    fired = wsk.ok("trigger", "fire", trigger, "-p", "n", "2")
    activation_id = fired.rsplit(" ", 1)[1].strip()
    assert fired == f"ok: triggered /_/{trigger} with id {activation_id}\n" and len(activation_id) == 32
    assert wait_for_activation(emulator.api(), activation_id, timeout_s=90)["name"] == trigger
