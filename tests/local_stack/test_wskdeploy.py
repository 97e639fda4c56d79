"""The real, unmodified `wskdeploy` against the emulator: deploy, redeploy and undeploy a manifest with
a package, a zipped-folder action, a trigger with a feed, and a rule (openwhisk-api.md sections 10.4, 13)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.emulator import REPO_ROOT, ApiClient, EmulatorHandle

FEED = '''def main(args):
    print("lifecycle", args.get("lifecycleEvent"))
    if args.get("failOn") == args.get("lifecycleEvent"):
        return {"error": "feed refused " + args["lifecycleEvent"]}
    return {"received": args}
'''
MAIN = '''from helper import greet


def main(args):
    return {"greeting": greet(args.get("name", "world")), "fromPackage": args.get("pkgInput")}
'''
MANIFEST = """packages:
  {pkg}:
    version: 1.0.0
    license: Apache-2.0
    inputs:
      pkgInput: fromPackage
    actions:
      greeter:
        function: greeter
        runtime: python:3.11
      feed:
        function: feed.py
        runtime: python:3.11
        annotations:
          feed: true
    triggers:
      {trigger}:
        feed: {pkg}/feed
        inputs:
          topic: events
{extra_inputs}
    rules:
      {rule}:
        trigger: {trigger}
        action: greeter
"""


def wskdeploy_binary() -> str:
    candidates = [os.environ.get("WSKDEPLOY"), str(REPO_ROOT / ".cache" / "tools" / "bin" / "wskdeploy"),
                  "/tmp/wbuild/wskdeploy"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(f"wskdeploy not found in {candidates}; build it with local_stack/build_tools.sh")


def write_project(directory: Path, pkg: str, trigger: str, rule: str, fail_on: str | None = None) -> Path:
    (directory / "greeter").mkdir(parents=True)
    (directory / "greeter" / "__main__.py").write_text(MAIN)
    (directory / "greeter" / "helper.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    (directory / "greeter" / "empty_marker.txt").write_text("")  # zero bytes: the zipper drops it
    (directory / "feed.py").write_text(FEED)
    extra = f"          failOn: {fail_on}\n" if fail_on else ""
    manifest = directory / "manifest.yaml"
    manifest.write_text(MANIFEST.format(pkg=pkg, trigger=trigger, rule=rule, extra_inputs=extra))
    return manifest


def run_wskdeploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([wskdeploy_binary(), *args], env=env, capture_output=True, text=True, timeout=180,
                          check=False)


def feed_events(client: ApiClient, pkg: str) -> list[dict]:
    """The parameters of every feed activation, oldest first."""
    records = client.get(f"_/activations?name={pkg}/feed&docs=true&limit=200").json()
    return [r["response"]["result"].get("received", r["response"]["result"]) for r in reversed(records)]


@pytest.fixture
def project(tmp_path: Path, emulator: EmulatorHandle) -> tuple[Path, str, str, str]:
    pkg, trigger, rule = emulator.unique("wdpkg"), emulator.unique("wdtrig"), emulator.unique("wdrule")
    return write_project(tmp_path / "project", pkg, trigger, rule), pkg, trigger, rule


def test_deploy_redeploy_and_undeploy(emulator: EmulatorHandle, wskprops: dict[str, str],
                                      project: tuple[Path, str, str, str]) -> None:
    manifest, pkg, trigger, rule = project
    client = emulator.api("guest")
    deployed = run_wskdeploy(wskprops, "-m", str(manifest))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    package = client.get(f"_/packages/{pkg}").json()
    assert [a["name"] for a in package["actions"]] == ["greeter"]
    assert [f["name"] for f in package["feeds"]] == ["feed"]
    greeter = client.get(f"_/actions/{pkg}/greeter").json()
    assert greeter["exec"]["kind"] == "python:3.11" and greeter["exec"]["binary"] is True
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(greeter["exec"]["code"]))).namelist()
    assert {"__main__.py", "helper.py"} <= {Path(n).name for n in names}
    assert not any(n.endswith("empty_marker.txt") for n in names)
    invoked = client.post(f"_/actions/{pkg}/greeter?blocking=true&result=true", json={"name": "deploy"})
    assert invoked.json() == {"greeting": "hello deploy", "fromPackage": "fromPackage"}

    trigger_doc = client.get(f"_/triggers/{trigger}").json()
    assert {"key": "feed", "value": f"{pkg}/feed"} in trigger_doc["annotations"]
    assert trigger_doc["parameters"] == []  # the trigger's inputs go to the feed, not the trigger
    assert trigger_doc["rules"][f"guest/{rule}"]["status"] == "active"
    assert client.get(f"_/rules/{rule}").json()["action"] == {"path": f"guest/{pkg}", "name": "greeter"}

    [create] = feed_events(client, pkg)
    assert create["lifecycleEvent"] == "CREATE"
    assert create["triggerName"] == f"/_/{trigger}"
    assert create["authKey"] == emulator.auth("guest")
    assert create["topic"] == "events"

    fired = client.post(f"_/triggers/{trigger}", json={"name": "fire"})
    assert fired.status_code == 202

    redeployed = run_wskdeploy(wskprops, "-m", str(manifest))
    assert redeployed.returncode == 0, redeployed.stdout + redeployed.stderr
    assert [e["lifecycleEvent"] for e in feed_events(client, pkg)] == ["CREATE", "DELETE", "CREATE"]

    undeployed = run_wskdeploy(wskprops, "undeploy", "-m", str(manifest))
    assert undeployed.returncode == 0, undeployed.stdout + undeployed.stderr
    events = feed_events(client, pkg)
    delete = events[-1]
    assert delete["lifecycleEvent"] == "DELETE"
    assert set(delete) - {"pkgInput"} == {"authKey", "lifecycleEvent", "triggerName"}
    assert delete["triggerName"] == f"/_/{trigger}"
    for path in (f"_/packages/{pkg}", f"_/actions/{pkg}/greeter", f"_/actions/{pkg}/feed", f"_/triggers/{trigger}",
                 f"_/rules/{rule}"):
        assert client.get(path).status_code == 404, path


def test_a_failing_feed_aborts_the_deployment_and_removes_the_trigger(
        emulator: EmulatorHandle, wskprops: dict[str, str], tmp_path: Path) -> None:
    pkg, trigger, rule = emulator.unique("wdpkg"), emulator.unique("wdtrig"), emulator.unique("wdrule")
    manifest = write_project(tmp_path / "failing", pkg, trigger, rule, fail_on="CREATE")
    client = emulator.api("guest")
    deployed = run_wskdeploy(wskprops, "-m", str(manifest))
    assert deployed.returncode != 0
    assert "feed refused CREATE" in deployed.stdout + deployed.stderr
    assert client.get(f"_/triggers/{trigger}").status_code == 404
    assert client.get(f"_/rules/{rule}").status_code == 404
    client.delete(f"_/packages/{pkg}?force=true")


def test_deploy_with_apihost_and_auth_flags(emulator: EmulatorHandle, tmp_path: Path,
                                            project: tuple[Path, str, str, str]) -> None:
    manifest, pkg, _trigger, _rule = project
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSK_", "WHISK_"))}
    env["HOME"] = str(tmp_path)
    flags = ["--apihost", emulator.url, "-u", emulator.auth("alice")]
    deployed = run_wskdeploy(env, *flags, "-m", str(manifest))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    alice = emulator.api("alice")
    assert alice.get(f"_/packages/{pkg}").status_code == 200
    assert feed_events(alice, pkg)[0]["authKey"] == emulator.auth("alice")
    undeployed = run_wskdeploy(env, *flags, "undeploy", "-m", str(manifest))
    assert undeployed.returncode == 0, undeployed.stdout + undeployed.stderr
    assert alice.get(f"_/packages/{pkg}").status_code == 404
