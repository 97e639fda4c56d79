"""Emulator: the control API: fault injection and the record of fires."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.fixtures.emulator import EmulatorHandle


@pytest.fixture
def faults(emulator: EmulatorHandle):  # type: ignore[no-untyped-def]
    emulator.clear_faults()
    yield emulator
    emulator.clear_faults()


def test_forced_429_for_a_while_then_recovery(emulator: EmulatorHandle, faults) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    fault = emulator.add_fault(status=429, trigger=f"/bob/{name}", duration_s=1.0)
    assert fault["id"]
    refused = client.post(f"_/triggers/{name}", json={})
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("Too many requests in the last minute (count: ")
    assert "Retry-After" not in refused.headers
    other = emulator.unique("t")
    client.put(f"_/triggers/{other}", json={})
    assert client.post(f"_/triggers/{other}", json={}).status_code == 204  # scoped to one trigger
    time.sleep(1.1)
    assert client.post(f"_/triggers/{name}", json={}).status_code == 204


def test_forced_503_counted_and_401_404_bodies(emulator: EmulatorHandle, faults) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    emulator.add_fault(status=503, count=2, namespace="bob")
    assert [client.post(f"_/triggers/{name}", json={}).status_code for _ in range(3)] == [503, 503, 204]
    emulator.add_fault(status=401, count=1)
    unauthorized = client.post(f"_/triggers/{name}", json={})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["WWW-Authenticate"] == 'Basic realm="OpenWhisk secure realm"'
    assert unauthorized.json()["error"] == "The supplied authentication is invalid"
    emulator.add_fault(status=404, count=1, message="custom text")
    not_found = client.post(f"_/triggers/{name}", json={})
    assert not_found.status_code == 404 and not_found.json()["error"] == "custom text"
    assert set(not_found.json()) == {"error", "code"}


def test_rate_zero_never_applies_and_latency_delays(emulator: EmulatorHandle, faults) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    emulator.add_fault(status=500, rate=0.0)
    emulator.add_fault(latency_ms=300)
    started = time.monotonic()
    assert client.post(f"_/triggers/{name}", json={}).status_code == 204
    assert time.monotonic() - started >= 0.3
    listed = requests.get(f"{emulator.url}/_emulator/faults", timeout=10).json()["faults"]
    assert [f["applied"] for f in listed] == [0, 1]
    assert emulator.clear_faults() == {"cleared": 2}
    started = time.monotonic()
    client.post(f"_/triggers/{name}", json={})
    assert time.monotonic() - started < 0.3


def test_disconnect_drops_the_connection(emulator: EmulatorHandle, faults) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    emulator.add_fault(disconnect=True, count=1, trigger=f"/bob/{name}")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{emulator.url}/api/v1/namespaces/_/triggers/{name}", json={},
                      auth=tuple(emulator.auth("bob").split(":")), timeout=10)
    assert client.post(f"_/triggers/{name}", json={}).status_code == 204


def test_invoke_scope_faults(emulator: EmulatorHandle, faults) -> None:
    client = emulator.api("bob")
    emulator.add_fault(scope="invokes", status=502, count=1)
    assert client.post("_/actions/anything?blocking=true").status_code == 502


def test_bad_fault_spec_is_400(emulator: EmulatorHandle, faults) -> None:
    for spec in ({"status": 200}, {"rate": 2, "status": 500}, {"scope": "everything", "status": 500}, {},
                 {"status": 500, "unknown": 1}):
        response = requests.post(f"{emulator.url}/_emulator/faults", json=spec, timeout=10)
        assert response.status_code == 400, spec


def test_fire_log_records_every_fire_with_redacted_auth(emulator: EmulatorHandle, faults) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    after = requests.get(f"{emulator.url}/_emulator/fires", params={"limit": 0}, timeout=10).json()["last_seq"]
    since_ms = int(time.time() * 1000)
    client.post(f"_/triggers/{name}", json={"n": 1}, headers={"X-Trace": "abc"})
    emulator.api(None).post(f"bob/triggers/{name}", json={"n": 2})
    emulator.api("alice").post(f"bob/triggers/{name}", json={"n": 3})
    client.post("_/triggers/not-there", json={"n": 4})
    records = emulator.fires(after=after)
    mine = [r for r in records if r["trigger"] in (f"/bob/{name}", "/bob/not-there")]
    assert [(r["status"], r["payload"]) for r in mine] == [(204, {"n": 1}), (401, {"n": 2}), (403, {"n": 3}),
                                                           (404, {"n": 4})]
    first = mine[0]
    assert first["namespace"] == "bob"
    assert first["headers"]["authorization"] == "<redacted>"
    assert first["headers"]["x-trace"] == "abc"
    assert first["time_ms"] >= since_ms
    assert mine[1]["namespace"] is None
    assert mine[2]["namespace"] == "alice"
    only = emulator.fires(after=after, trigger=f"/bob/{name}", status=204)
    assert [r["payload"] for r in only] == [{"n": 1}]
    assert [r["seq"] for r in emulator.fires(since=since_ms, trigger=f"/bob/{name}")] == \
        [r["seq"] for r in mine[:3]]
    assert emulator.fires(since=int(time.time() * 1000) + 60_000) == []
    counted = requests.get(f"{emulator.url}/_emulator/fires",
                           params={"after": after, "trigger": f"/bob/{name}", "count": "true"}, timeout=10).json()
    assert counted["count"] == 3 and counted["by_status"] == {"204": 1, "401": 1, "403": 1}


def test_fire_log_can_be_cleared(emulator: EmulatorHandle) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    client.post(f"_/triggers/{name}", json={})
    assert emulator.clear_fires()["cleared"] >= 1
    assert emulator.fires(trigger=f"/bob/{name}") == []


def test_server_survives_a_client_that_hangs_up(emulator: EmulatorHandle) -> None:
    host, port = emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"POST /api/v1/namespaces/_/triggers/x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{")
    assert requests.get(emulator.url + "/", timeout=10).status_code == 200
