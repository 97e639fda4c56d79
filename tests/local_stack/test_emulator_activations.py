"""Emulator: listing and reading activations (openwhisk-api.md section 7)."""

from __future__ import annotations

import re
import time

from tests.fixtures.emulator import EmulatorHandle, put_action

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z\s+(stdout|stderr): ")


def test_get_result_and_logs(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    name = emulator.unique("a")
    put_action(client, name, "import sys\n\ndef main(args):\n    print('to out')\n"
                             "    print('to err', file=sys.stderr)\n    return {'ok': 1}\n")
    activation_id = client.post(f"_/actions/{name}?blocking=true").json()["activationId"]
    record = client.get(f"_/activations/{activation_id}").json()
    assert record["activationId"] == activation_id
    assert record["subject"] == "guest"
    keys = {a["key"] for a in record["annotations"]}
    assert {"path", "kind", "limits", "waitTime"} <= keys
    assert client.get(f"_/activations/{activation_id}/result").json() == {
        "result": {"ok": 1}, "success": True, "status": "success"}
    logs = client.get(f"_/activations/{activation_id}/logs").json()["logs"]
    assert [LOG_LINE.sub("", line) for line in logs] == ["to out", "to err"]
    assert all(LOG_LINE.match(line) for line in logs)
    assert logs[0][:30].rstrip().endswith("Z") and len(logs[0].split(" stdout:")[0]) == 30


def test_invalid_id_missing_and_other_namespace(emulator: EmulatorHandle) -> None:
    client = emulator.api()
    bad = client.get("_/activations/NOT-AN-ID")
    assert bad.status_code == 400
    assert bad.json()["error"] == "The activation id is not valid."
    assert client.get("_/activations/" + "0" * 32).status_code == 404
    name = emulator.unique("a")
    put_action(client, name, "def main(args):\n    return {}\n")
    activation_id = client.post(f"_/actions/{name}?blocking=true").json()["activationId"]
    assert emulator.api("alice").get(f"guest/activations/{activation_id}").status_code == 403
    assert emulator.api("alice").get("guest/activations").status_code == 403


def test_list_filters(emulator: EmulatorHandle) -> None:
    client = emulator.api("bob")
    pkg, first, second = emulator.unique("p"), emulator.unique("a"), emulator.unique("a")
    client.put(f"_/packages/{pkg}", json={})
    put_action(client, first, "def main(args):\n    return {}\n")
    put_action(client, f"{pkg}/{second}", "def main(args):\n    return {}\n")
    start = int(time.time() * 1000)
    ids_first = [client.post(f"_/actions/{first}?blocking=true").json()["activationId"] for _ in range(3)]
    middle = int(time.time() * 1000)
    time.sleep(0.01)
    id_second = client.post(f"_/actions/{pkg}/{second}?blocking=true").json()["activationId"]
    named = client.get(f"_/activations?name={first}").json()
    assert [a["activationId"] for a in named] == list(reversed(ids_first))
    assert set(named[0]) >= {"namespace", "name", "version", "publish", "annotations", "activationId", "start",
                             "end", "duration", "statusCode"}
    assert "response" not in named[0]
    assert [a["activationId"] for a in client.get(f"_/activations?name={pkg}/{second}").json()] == [id_second]
    assert client.get(f"_/activations?name={first}&limit=1&skip=1").json()[0]["activationId"] == ids_first[1]
    recent = [a["activationId"] for a in client.get(f"_/activations?since={middle + 1}&limit=200").json()]
    assert id_second in recent and not set(ids_first) & set(recent)
    early = [a["activationId"] for a in client.get(f"_/activations?since={start}&upto={middle}").json()]
    assert set(ids_first) <= set(early) and id_second not in early
    docs = client.get(f"_/activations?name={first}&docs=true&limit=1").json()
    assert docs[0]["response"]["result"] == {}
    assert client.get(f"_/activations?name={first}&count=true").json() == {"activations": 3}
    both = client.get("_/activations?count=true&docs=true")
    assert both.status_code == 400
    assert both.json()["error"] == "The parameter 'docs' is not permitted with 'count'."
