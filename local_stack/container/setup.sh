#!/usr/bin/env bash
# Makes this machine able to build and run the consumer image, then builds it:
#   1. installs podman, runc and debootstrap from Debian when absent (apt-get);
#   2. sets runtime = "runc" and default_ulimits = [] in /etc/containers/containers.conf, keeping
#      the file's other settings (crun fails here on the hybrid cgroup layout and on rlimits);
#   3. makes the base image localhost/messaging-base:bookworm once, with debootstrap from the Debian
#      mirror apt uses (Docker Hub cannot be reached here), and caches it (stamp in .cache/container);
#   4. builds consumer/Dockerfile on that base (the Dockerfile's default base stays python:3.11-slim).
# Usage: local_stack/container/setup.sh [--no-build]     (as root; podman runs rootful here)
# Environment: CONSUMER_IMAGE (tag to build, default localhost/openwhisk-messaging-consumer:local),
#   DEBIAN_MIRROR (default: the mirror apt has for bookworm/main).
# Exit status 3 means podman could not be installed (the image test then says why and skips
# outside CI); any other failure is a real error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BASE_IMAGE=localhost/messaging-base:bookworm
CONSUMER_IMAGE=${CONSUMER_IMAGE:-localhost/openwhisk-messaging-consumer:local}
SUITE=bookworm
state=.cache/container
stamp=$state/base-$SUITE.stamp

say() { printf 'container setup: %s\n' "$*" >&2; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

install_packages() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "podman not installable: missing ${missing[*]} and no root apt-get to install them"
    exit 3
  fi
  # runc is named explicitly so apt does not pick crun for podman's "crun | runc" dependency.
  say "installing ${missing[*]} from Debian (apt-get; usually 10-60 s)..."
  local t0; t0=$(date +%s)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           podman runc debootstrap >/dev/null; }; then
    say "podman not installable: apt-get install podman runc debootstrap failed"
    exit 3
  fi
  say "installed in $(elapsed "$t0")"
}

debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  # apt-cache policy lists each source as "500 URL SUITE/COMPONENT ARCH Packages".
  apt-cache policy | awk -v s="$SUITE/main" '$3 == s && $1 ~ /^[0-9]+$/ { print $2; exit }'
}

base_image() {
  local id
  id=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
  if [ -n "$id" ] && grep -qx "image=$id" "$stamp" 2>/dev/null; then
    say "base image $BASE_IMAGE cached ($stamp)"
    return
  fi
  local mirror; mirror=$(debian_mirror)
  [ -n "$mirror" ] || { say "no Debian $SUITE mirror in apt's sources (set DEBIAN_MIRROR)"; exit 1; }
  local root; root=$(mktemp -d /var/tmp/messaging-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  say "making $BASE_IMAGE with debootstrap from $mirror (once; usually 50-100 s)..."
  local t0; t0=$(date +%s)
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$root" "$mirror" > "$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import --quiet \
    --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV=LANG=C.UTF-8' --change 'CMD=["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root" "$root.log"
  trap - EXIT
  id=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")
  printf 'image=%s\nmirror=%s\nmade=%s\n' "$id" "$mirror" "$(date -u +%FT%TZ)" > "$stamp"
  say "base image made in $(elapsed "$t0")"
}

cert_dir() {
  # pip inside the build reaches the index through this machine's CA bundle: the folder holding
  # pip's `cert` is mounted read-only at the same path.
  local cert=${PIP_CERT:-}
  [ -n "$cert" ] || cert=$(python3 -m pip config get global.cert 2>/dev/null || true)
  [ -n "$cert" ] || cert=/etc/ssl/certs/ca-certificates.crt
  dirname "$cert"
}

build_consumer() {
  local certs; certs=$(cert_dir)
  say "building $CONSUMER_IMAGE from consumer/Dockerfile on $BASE_IMAGE (cold 15-35 s, cached a few s)..."
  local t0; t0=$(date +%s)
  podman build --quiet --format docker --network host --volume "$certs:$certs:ro" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --file consumer/Dockerfile --tag "$CONSUMER_IMAGE" . >/dev/null
  say "built $CONSUMER_IMAGE in $(elapsed "$t0")"
}

main() {
  mkdir -p "$state"
  exec 9>"$state/setup.lock"
  flock 9  # one setup at a time: several worktrees share .cache and podman's storage
  install_packages
  say "$(python3 -m local_stack.container.conf)"
  base_image
  [ "${1:-}" = "--no-build" ] || build_consumer
}

main "$@"
