#!/usr/bin/env bash
# Builds the OpenWhisk command-line tools from Go modules at pinned versions into
# $LOCAL_STACK_CACHE/tools/bin (default .cache/tools/bin) and prints their paths.
#
# - wskdeploy: the real apache/openwhisk-wskdeploy at a pinned pseudo-version.
# - wsk: the real apache/openwhisk-cli when the Go module proxy serves it (it needs the go-bindata
#   i18n step); the proxy reachable here refuses every version of that module, so otherwise the
#   wsk-compatible CLI in local_stack/wsk/ (built on the same pinned openwhisk-client-go) is built.
# - kubeconform: the real yannh/kubeconform at a pinned version, to validate deploy/kubernetes.
# Idempotent: a tool already built from the same pin is kept. The version line of each tool is in
# bin/<tool>.version. Arguments name the tools to build (default: all), e.g. `build_tools.sh wskdeploy wsk`.
set -euo pipefail

WSKDEPLOY_MODULE=github.com/apache/openwhisk-wskdeploy
WSKDEPLOY_VERSION=v0.0.0-20241212232442-16acc805fe2c  # master 2024-12-12
WSK_MODULE=github.com/apache/openwhisk-cli
WSK_VERSION=v0.0.0-20240924142310-23f3cf73b812        # master 2024-09-24
GO_BINDATA_MODULE=github.com/jteeuwen/go-bindata
GO_BINDATA_VERSION=v3.0.7+incompatible               # the i18n step of the real CLI's build
KUBECONFORM_MODULE=github.com/yannh/kubeconform
KUBECONFORM_VERSION=v0.7.0  # 2025-05; needs go >= 1.24

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LOCAL_STACK_CACHE:-$root/.cache}"
bin="$cache/tools/bin"
src="$cache/tools/src"
mkdir -p "$bin" "$src"

command -v go >/dev/null || { echo "build_tools: 'go' not found: install Go (>= 1.21) to build wsk and wskdeploy" >&2; exit 1; }
export GO111MODULE=on GOFLAGS=-mod=mod

built() { [ -x "$bin/$1" ] && [ "$(cat "$bin/$1.version" 2>/dev/null)" = "$2" ]; }
wanted=("$@")
[ "${#wanted[@]}" -gt 0 ] || wanted=(wskdeploy wsk kubeconform)
wants() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

# Copy a module's source out of the read-only module cache; prints the copy's path.
# (go install MOD@VERSION would also ask the proxy for the module's version list, which it refuses.)
module_source() {
  local dir
  dir="$(go mod download -json "$1@$2" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or "")')" || return 1
  [ -n "$dir" ] || return 1
  rm -rf "${src:?}/$3"; cp -r "$dir" "$src/$3"; chmod -R u+w "$src/$3"
  echo "$src/$3"
}

if wants wskdeploy && ! built wskdeploy "$WSKDEPLOY_VERSION"; then
  echo "build_tools: building wskdeploy $WSKDEPLOY_VERSION ..." >&2
  dir="$(module_source "$WSKDEPLOY_MODULE" "$WSKDEPLOY_VERSION" wskdeploy)" \
    || { echo "build_tools: the Go module proxy did not serve $WSKDEPLOY_MODULE@$WSKDEPLOY_VERSION" >&2; exit 1; }
  (cd "$dir" && go build -o "$bin/wskdeploy" .)
  echo "$WSKDEPLOY_VERSION" > "$bin/wskdeploy.version"
fi

# The real CLI: its module and go-bindata's both from module source (`go install MOD@VERSION` asks the proxy for
# version lists, which it refuses), then its i18n step and the build. Any failure returns non-zero, its last
# stderr line saying why; the caller then builds the stand-in.
build_real_wsk() {
  local dir bindata
  dir="$(module_source "$WSK_MODULE" "$WSK_VERSION" openwhisk-cli 2>/dev/null)" \
    || { echo "the Go module proxy refuses $WSK_MODULE@$WSK_VERSION" >&2; return 1; }
  bindata="$(module_source "$GO_BINDATA_MODULE" "$GO_BINDATA_VERSION" go-bindata 2>/dev/null)" \
    || { echo "the Go module proxy refuses $GO_BINDATA_MODULE@$GO_BINDATA_VERSION" >&2; return 1; }
  echo "build_tools: building the real wsk CLI $WSK_VERSION ..." >&2
  (cd "$bindata" && { [ -f go.mod ] || go mod init "$GO_BINDATA_MODULE" >/dev/null 2>&1; } \
    && go build -o "$bin/go-bindata" ./go-bindata) || { echo "go-bindata did not build" >&2; return 1; }
  (cd "$dir" && "$bin/go-bindata" -pkg wski18n -o wski18n/i18n_resources.go wski18n/resources \
    && go build -o "$bin/wsk" .) || { echo "the real CLI did not build" >&2; return 1; }
}

stand_in_version="stand-in:$(cd "$root/local_stack/wsk" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
if wants wsk && ! built wsk "$WSK_VERSION" && ! built wsk "$stand_in_version"; then
  if why="$(build_real_wsk 2>&1 >/dev/null)"; then
    echo "$WSK_VERSION" > "$bin/wsk.version"
  else
    echo "build_tools: the real wsk CLI could not be built ($(tail -n 1 <<<"$why")); building the wsk-compatible CLI of local_stack/wsk ..." >&2
    (cd "$root/local_stack/wsk" && go build -o "$bin/wsk" .)
    echo "$stand_in_version" > "$bin/wsk.version"
  fi
fi

# kubeconform: from the module source and `go build` (`go install MOD@VERSION` would ask the proxy for the
# version list too). It validates against JSON schemas it is given; tests serve it the ones of the pinned
# PyPI package kubernetes-validate (see tests/deploy/test_packaging.py), so no schema comes from the network.
if wants kubeconform && ! built kubeconform "$KUBECONFORM_VERSION"; then
  echo "build_tools: building kubeconform $KUBECONFORM_VERSION ..." >&2
  dir="$(module_source "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION" kubeconform)" \
    || { echo "build_tools: the Go module proxy did not serve $KUBECONFORM_MODULE@$KUBECONFORM_VERSION" >&2; exit 1; }
  (cd "$dir" && go build -ldflags "-X main.version=$KUBECONFORM_VERSION" -o "$bin/kubeconform" ./cmd/kubeconform)
  echo "$KUBECONFORM_VERSION" > "$bin/kubeconform.version"
fi

for tool in "${wanted[@]}"; do echo "$tool=$bin/$tool ($(cat "$bin/$tool.version"))"; done
