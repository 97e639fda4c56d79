#!/usr/bin/env bash
# The one test command: installs what the suite needs, then lints and runs every test.
#   ./test.sh                 # everything
#   ./test.sh tests/unit -k envelope    # arguments go to pytest
# Needs only Python 3.11, Java 17+ with Maven, and Go on PATH (plus their package registries).
# Caches live in .cache/ (Kafka jars, wsk/wskdeploy, the action runtime venv) and .venv/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
start=$(date +%s)
step() { printf '\n==> %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { echo "test.sh: '$1' not found: $2" >&2; exit 1; }; }

need python3.11 "install Python 3.11"
need java "install a Java 17+ JDK (the Kafka broker runs on it)"
need mvn "install Maven (it resolves the Apache Kafka jars from Maven Central)"
need go "install Go (wsk and wskdeploy are built from their Go modules)"

step "Python dependencies (.venv, pinned in requirements-dev.txt)"
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements-dev.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3.11 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
py=.venv/bin/python

step "Apache Kafka broker jars (mvn)"
$py -m local_stack.kafka resolve

step "wsk, wskdeploy and kubeconform (Go modules)"
bash local_stack/build_tools.sh

step "kcat for the README's examples (Debian's kcat, installed as root when absent)"
command -v kcat >/dev/null || { [ "$(id -u)" -eq 0 ] && export DEBIAN_FRONTEND=noninteractive &&
  { apt-get install -y -qq kcat || { apt-get update -qq && apt-get install -y -qq kcat; }; } >/dev/null 2>&1; } \
  || echo "test.sh: kcat not installed (needs root apt-get); tests/docs fails saying so" >&2

step "Action runtime venv (the python:3.11 runtime image's packages)"
$py -m local_stack.action_runtime.venv

step "Consumer image (podman + runc from Debian, a debootstrapped base once: first run 1-3 min, then a few s)"
image_status=0
bash local_stack/container/setup.sh || image_status=$?
# 3: podman cannot be installed here; the image test then skips and says why, except in CI, where it must run
if [ "$image_status" -ne 0 ] && { [ "$image_status" -ne 3 ] || [ "${CI:-}" = true ]; }; then exit "$image_status"; fi

step "Lint and type check"
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/hadolint consumer/Dockerfile
.venv/bin/shellcheck deploy.sh test.sh local_stack/build_tools.sh local_stack/container/setup.sh .ci/run

step "Tests"
set +e
$py -m pytest "$@"
rc=$?
set -e
echo "test.sh: finished in $(( $(date +%s) - start ))s (pytest exit $rc)" >&2
# pytest exits 5 when it ran no test: that is a failure here too.
exit $rc
