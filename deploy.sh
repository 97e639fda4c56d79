#!/usr/bin/env bash
# Deploys the OpenWhisk messaging package (manifest.yaml, with the real wskdeploy) and its Kafka
# topics, and says how to run the consumer with the same settings. With --local it runs everything on
# this machine instead: real Kafka, the OpenWhisk emulator and the consumer, then a demo fire.
#   ./deploy.sh [deploy] [flags]     ./deploy.sh undeploy [flags]     ./deploy.sh --help
#   ./deploy.sh topic create NAME [--partitions N] [flags]     ./deploy.sh topic list [flags]
# The steps that talk to Kafka or the OpenWhisk API are in deploy/tool.py (python -m deploy.tool).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CALLER_PWD="$PWD"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
[ "${1:-}" != grant ] || { shift; exec "$PY" -m feed.grants "$@"; }  # ./deploy.sh grant add|list|revoke --namespace NS --topic T [--prefix]
WHISK_SYSTEM_AUTH="789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
GUEST_AUTH="23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"

usage() {
  cat <<'EOF'
Usage:
  ./deploy.sh [deploy] [options]        deploy to an OpenWhisk host
  ./deploy.sh --local [options]         run it all here: Kafka, the OpenWhisk emulator, the consumer, a demo
  ./deploy.sh undeploy [--local] [...]  remove what deploy created (packages, topics, kept state)
  ./deploy.sh topic create NAME [--partitions N] [--local | Kafka options]
                                        a topic for kafkaFeed/kafkaProduce (default 1 partition; an existing
                                        topic is left as it is); --local: the running local stack's Kafka
  ./deploy.sh topic list [--local | Kafka options]   the topics and their partitions
  ./deploy.sh -h | --help               this text

OpenWhisk (deploy/undeploy; flag, else environment, else $WSK_CONFIG_FILE or ~/.wskprops):
  --apihost URL              API host                           env WHISK_APIHOST, wskprops APIHOST
  --auth UUID:KEY            key of the namespace that will own the packages (e.g. whisk.system)
                                                                env WHISK_AUTH, wskprops AUTH
  --namespace NS             namespace to deploy into (default: the key's own)  wskprops NAMESPACE
  --insecure                 do not verify the API host's TLS certificate (wskdeploy never does)
  --deployment FILE          a wskdeploy deployment file with per-site values (see deployment.example.yaml)

Kafka (flag, else environment; the consumer reads the same variables):
  --kafka-bootstrap HOSTS    host:port,...                      env KAFKA_BOOTSTRAP_SERVERS (required)
  --kafka-security-protocol P  PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL   env KAFKA_SECURITY_PROTOCOL
  --kafka-sasl-mechanism M   PLAIN|SCRAM-SHA-256|SCRAM-SHA-512  env KAFKA_SASL_MECHANISM
  --kafka-sasl-username U                                       env KAFKA_SASL_USERNAME
  --kafka-sasl-password P    (prefer the environment: flags show in ps)  env KAFKA_SASL_PASSWORD
  --kafka-ssl-cafile FILE    CA for SSL/SASL_SSL (deploy.sh and the consumer)  env KAFKA_SSL_CAFILE
  --actions-kafka-bootstrap HOSTS  the brokers as the web actions reach them (default --kafka-bootstrap)
                                                                env ACTIONS_KAFKA_BOOTSTRAP_SERVERS
  --external-kafka-bootstrap HOSTS  the brokers as producers outside OpenWhisk reach them, shown by token
                              (default --kafka-bootstrap)       env EXTERNAL_KAFKA_BOOTSTRAP_SERVERS
  --subscriptions-api-url URL  the routers' read API as the web actions reach them (the consumer's HTTP port,
                              e.g. a Kubernetes Service); kafkaFeed asks it instead of reading the whole
                              subscriptions topic (default: none; --local: its consumer) env SUBSCRIPTIONS_API_URL
  --kafka-service-principal P  principal of the consumer and actions (default User:<SASL username>); its ACLs
  --kafka-producer-principal P  an external producer: may only write trigger messages (repeatable or P1,P2)
                              ACLs are created where the cluster has an authorizer, else printed (README: Security)
Topics (created if missing, checked if present; never changed):
  --trigger-messages-topic T  env TRIGGER_MESSAGES_TOPIC (default openwhisk-trigger-messages)
  --subscriptions-topic T     env SUBSCRIPTIONS_TOPIC    (default openwhisk-trigger-subscriptions, compacted)
  --dead-letter-topic T       env DEAD_LETTER_TOPIC      (default openwhisk-trigger-dead-letters)
  --partitions N              partitions of the trigger-messages topic: the most consumers that share work
                              env TRIGGER_MESSAGES_PARTITIONS (default 12; 4 with --local);
                              with topic create: that topic's partitions (default 1)
  --replication-factor N      env REPLICATION_FACTOR (default min(3, brokers))
  --retention-hours N         trigger messages kept (default 168); dead letters are kept 14 days
  --keep-topics               undeploy: leave the topics and the sealing key (and so the queued messages)

Sealing key (seals the callers' OpenWhisk keys; the consumer opens them with the same key):
  --sealing-keys K1[,K2]      env SEALING_KEYS; else the kept one, else the deployed package's, else a new one
                              Its fingerprint (never the key) is recorded in the subscriptions topic: all
                              deployments on one Kafka share its consumers, so they must share the key. A deploy
                              whose key does not match (or that would generate one) is refused; pass the other
                              deployment's SEALING_KEYS (from its consumer-secrets.env), or list the recorded
                              key after a new first one to rotate.
  --force-new-sealing-key     replace the recorded fingerprint (the consumers must get the new key)
  --state-dir DIR             where the key and consumer settings are kept (0700), env MESSAGING_STATE_DIR
                              (default .cache/deploy/<apihost>, or .cache/local with --local)

--local only (ports: 0 picks a free one):
  --kafka-port N              default 9092        --apihost-port N   default 3233
  --consumer-port N           default 8080        --no-demo          skip the demo
  --detach                    leave the stack running and return (stop it: ./deploy.sh undeploy --local)

Tools: WSKDEPLOY and WSK name the binaries; otherwise local_stack/build_tools.sh builds them (needs Go).
Python: .venv is created from requirements-dev.txt when missing (needs Python 3.11 and PyPI).
EOF
}

# ---- output ------------------------------------------------------------------------------------
step() { printf '\n==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() {  # die MESSAGE [HINT]
  printf '\ndeploy.sh: error: %s\n' "$1" >&2
  [ -z "${2:-}" ] || printf '  what to do: %s\n' "$2" >&2
  exit 1
}
# Python steps run in the background and are waited for: a Ctrl-C then reaches this shell alone (its trap
# stops the stack in order) and never the Python process (so no KeyboardInterrupt traceback is printed).
fg_child=""
py_step() { "$@" & fg_child=$!; local rc=0; wait "$fg_child" || rc=$?; fg_child=""; return "$rc"; }
py_out() {  # py_out VAR COMMAND...: COMMAND's stdout into VAR, run as py_step in this shell (not a subshell)
  local __var="$1" __out __rc=0; shift
  __out="$(mktemp)"; py_step "$@" > "$__out" || __rc=$?
  printf -v "$__var" '%s' "$(cat "$__out")"; rm -f "$__out"; return "$__rc"
}
finish_step() {  # on Ctrl-C: let the Python step under way end (a broker half started would be left behind)
  if [ -n "$fg_child" ] && kill -0 "$fg_child" 2>/dev/null; then
    info "(letting the current step finish first)"; wait "$fg_child" 2>/dev/null || true
  fi
  fg_child=""
}
tool() { py_step "$PY" -m deploy.tool "$@"; }
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER_PWD/$1" ;; esac; }  # paths as the caller meant them

# ---- arguments ---------------------------------------------------------------------------------
command="deploy"; local_mode=0; detach=0; demo=1; keep_topics=0; insecure=0; force_new_key=0; topic_args=()
apihost=""; auth=""; namespace=""; deployment_file=""; state_dir="${MESSAGING_STATE_DIR:-}"
kafka_port=9092; apihost_port=3233; consumer_port=8080
partitions="${TRIGGER_MESSAGES_PARTITIONS:-}"; replication="${REPLICATION_FACTOR:-0}"; retention_hours=168
service_principal=""; producer_principals=""

while [ "$#" -gt 0 ]; do
  if [ "$command" = topic ] && [[ "$1" != -* ]]; then topic_args+=("$1"); shift; continue; fi  # create NAME | list
  case "$1" in
    deploy|undeploy|topic) command="$1"; shift; continue ;;
    -h|--help) usage; exit 0 ;;
    --local) local_mode=1; shift; continue ;;
    --detach) detach=1; shift; continue ;;
    --no-demo) demo=0; shift; continue ;;
    --keep-topics) keep_topics=1; shift; continue ;;
    --insecure) insecure=1; shift; continue ;;
    --force-new-sealing-key) force_new_key=1; shift; continue ;;
  esac
  v="${2-}"  # every option below takes a value
  case "$1" in
    --apihost) apihost="$v" ;;
    --auth) auth="$v" ;;
    --namespace) namespace="$v" ;;
    --deployment) deployment_file="$(absolute "$v")" ;;
    --kafka-bootstrap) export KAFKA_BOOTSTRAP_SERVERS="$v" ;;
    --kafka-security-protocol) export KAFKA_SECURITY_PROTOCOL="$v" ;;
    --kafka-sasl-mechanism) export KAFKA_SASL_MECHANISM="$v" ;;
    --kafka-sasl-username) export KAFKA_SASL_USERNAME="$v" ;;
    --kafka-sasl-password) export KAFKA_SASL_PASSWORD="$v" ;;
    --kafka-ssl-cafile) KAFKA_SSL_CAFILE="$(absolute "$v")"; export KAFKA_SSL_CAFILE ;;
    --actions-kafka-bootstrap) export ACTIONS_KAFKA_BOOTSTRAP_SERVERS="$v" ;;
    --external-kafka-bootstrap) export EXTERNAL_KAFKA_BOOTSTRAP_SERVERS="$v" ;;
    --subscriptions-api-url) export SUBSCRIPTIONS_API_URL="$v" ;;
    --kafka-service-principal) service_principal="$v" ;;
    --kafka-producer-principal) producer_principals="${producer_principals:+$producer_principals,}$v" ;;
    --trigger-messages-topic) export TRIGGER_MESSAGES_TOPIC="$v" ;;
    --subscriptions-topic) export SUBSCRIPTIONS_TOPIC="$v" ;;
    --dead-letter-topic) export DEAD_LETTER_TOPIC="$v" ;;
    --partitions) partitions="$v"; topic_partitions="$v" ;;
    --replication-factor) replication="$v" ;;
    --retention-hours) retention_hours="$v" ;;
    --sealing-keys) export SEALING_KEYS="$v" ;;
    --state-dir) state_dir="$(absolute "$v")" ;;
    --kafka-port) kafka_port="$v" ;;
    --apihost-port) apihost_port="$v" ;;
    --consumer-port) consumer_port="$v" ;;
    *) die "unknown option '$1'" "see ./deploy.sh --help" ;;
  esac
  [ -n "$v" ] || die "$1 needs a value" "see ./deploy.sh --help"
  shift 2
done
[ -z "$deployment_file" ] || [ -f "$deployment_file" ] || die "no deployment file $deployment_file" "check --deployment"
for n in "$kafka_port" "$apihost_port" "$consumer_port" "$replication" "$retention_hours" ${partitions:+"$partitions"}; do
  case "$n" in ''|*[!0-9]*) die "'$n' is not a number" "ports, partitions and hours are whole numbers" ;; esac
done

default_topics() {  # after load_kept_settings: flags and environment first, then what the deploy used
  export TRIGGER_MESSAGES_TOPIC="${TRIGGER_MESSAGES_TOPIC:-openwhisk-trigger-messages}"
  export SUBSCRIPTIONS_TOPIC="${SUBSCRIPTIONS_TOPIC:-openwhisk-trigger-subscriptions}"
  export DEAD_LETTER_TOPIC="${DEAD_LETTER_TOPIC:-openwhisk-trigger-dead-letters}"
}

# ---- prerequisites -----------------------------------------------------------------------------
ensure_python() {
  local stamp=".venv/.requirements.sha256" want
  want="$(sha256sum requirements-dev.txt | cut -d' ' -f1)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  command -v python3.11 >/dev/null || die "python3.11 not found" "install Python 3.11 (deploy.sh keeps its packages in .venv)"
  step "Python packages into .venv (requirements-dev.txt; about 75 s on a first run)"
  python3.11 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt \
    || die "pip could not install requirements-dev.txt" "check the network access to PyPI and retry"
  echo "$want" > "$stamp"
}

ensure_ow_tools() {  # sets WSKDEPLOY and WSK
  if [ -n "${WSKDEPLOY:-}" ] && [ -n "${WSK:-}" ]; then
    for t in "$WSKDEPLOY" "$WSK"; do
      [ -x "$t" ] || die "$t is not an executable" "WSKDEPLOY and WSK name the tools' binaries; unset them to build both"
    done
    return 0
  fi
  if [ -x .cache/tools/bin/wskdeploy ] && [ -x .cache/tools/bin/wsk ]; then
    step "wskdeploy and wsk (local_stack/build_tools.sh: already built)"
  else
    step "wskdeploy and wsk (local_stack/build_tools.sh: built once from their Go modules, about 100 s on a first run)"
  fi
  local out
  out="$(bash local_stack/build_tools.sh wskdeploy wsk)" \
    || die "wskdeploy and wsk could not be built" "install Go (>= 1.21), or set WSKDEPLOY and WSK to the binaries"
  WSKDEPLOY="${WSKDEPLOY:-$(sed -n 's/^wskdeploy=\([^ ]*\).*/\1/p' <<<"$out")}"
  WSK="${WSK:-$(sed -n 's/^wsk=\([^ ]*\).*/\1/p' <<<"$out")}"
  info "wskdeploy: $WSKDEPLOY"
  info "wsk: $WSK"
}

# ---- OpenWhisk settings ------------------------------------------------------------------------
wskprops_value() {  # wskprops_value KEY: from $WSK_CONFIG_FILE, else ~/.wskprops
  local file="${WSK_CONFIG_FILE:-$HOME/.wskprops}"
  [ -f "$file" ] || return 0
  sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$file" | tail -n 1
}

resolve_openwhisk() {
  apihost="${apihost:-${WHISK_APIHOST:-$(wskprops_value APIHOST)}}"
  auth="${auth:-${WHISK_AUTH:-$(wskprops_value AUTH)}}"
  namespace="${namespace:-$(wskprops_value NAMESPACE)}"
  [ -n "$apihost" ] || die "no OpenWhisk API host" "pass --apihost URL, set WHISK_APIHOST, or APIHOST in ~/.wskprops (or use --local)"
  [ -n "$auth" ] || die "no OpenWhisk key" "pass --auth UUID:KEY, set WHISK_AUTH, or AUTH in ~/.wskprops"
  case "$apihost" in http://*|https://*) ;; *) apihost="https://$apihost" ;; esac
  apihost="${apihost%/}"
  export OW_AUTH="$auth"  # for deploy.tool: never on a command line
  if [ -z "$state_dir" ]; then
    state_dir="$ROOT/.cache/deploy/$(tr -c 'A-Za-z0-9.\n' '-' <<<"${apihost#*://}${namespace:+-$namespace}")"
  fi
}

insecure_flag() { [ "$insecure" = 1 ] && echo "--insecure"; true; }

write_wskprops() {  # write_wskprops FILE APIHOST AUTH [NAMESPACE]
  (umask 077; { echo "APIHOST=$2"; echo "AUTH=$3"; [ -z "${4:-}" ] || echo "NAMESPACE=$4"; } > "$1")
}

# ---- deploy ------------------------------------------------------------------------------------
env_file_line() { [ -z "${2:-}" ] || printf '%s=%s\n' "$1" "$2"; }

choose_sealing_key() {  # the key (given, kept, deployed, else new) checked against the cluster's fingerprint
  local secrets="$state_dir/consumer-secrets.env" kept deployed source="" chosen
  if [ -n "${SEALING_KEYS:-}" ]; then
    source="the key of --sealing-keys / SEALING_KEYS"; info "sealing key: from --sealing-keys / SEALING_KEYS"
  fi
  kept="$(sed -n 's/^SEALING_KEYS=//p' "$secrets" 2>/dev/null || true)"
  if [ -z "$source" ] && [ -n "$kept" ]; then
    export SEALING_KEYS="$kept"; source="the key kept in $secrets"; info "sealing key: the one kept in $secrets"
  fi
  if [ -z "$source" ]; then
    # shellcheck disable=SC2046
    deployed="$(tool deployed-keys --apihost "$apihost" --namespace "${namespace:-_}" $(insecure_flag))" || exit 1
    if [ -n "$deployed" ]; then
      export SEALING_KEYS="$deployed"; source="the key of the package already deployed"
      info "sealing key: the one of the package already deployed"
    fi
  fi
  [ -n "$source" ] || unset SEALING_KEYS  # none: a new one, unless this Kafka's consumers use one already
  # shellcheck disable=SC2046
  chosen="$(tool sealing-key --subscriptions-topic "$SUBSCRIPTIONS_TOPIC" --source "${source:-a new key}" \
    --deployment "$apihost namespace ${namespace_shown:-${namespace:-_}}" $([ "$force_new_key" = 0 ] || echo --force))" \
    || exit 1
  export SEALING_KEYS="$chosen"
  [ -n "$source" ] || info "sealing key: generated a new one (kept in $secrets)"
}

write_consumer_settings() {
  local header="# docker --env-file / kubectl --from-env-file format: KEY=value, unquoted. Written by deploy.sh."
  {
    echo "# Settings of the messaging consumer for $apihost."; echo "$header"
    env_file_line ROLES "firer,router"
    env_file_line OPENWHISK_APIHOST "$apihost"
    env_file_line KAFKA_BOOTSTRAP_SERVERS "$KAFKA_BOOTSTRAP_SERVERS"
    env_file_line KAFKA_SECURITY_PROTOCOL "${KAFKA_SECURITY_PROTOCOL:-}"
    env_file_line KAFKA_SASL_MECHANISM "${KAFKA_SASL_MECHANISM:-}"
    env_file_line KAFKA_SASL_USERNAME "${KAFKA_SASL_USERNAME:-}"
    env_file_line KAFKA_SSL_CAFILE "${KAFKA_SSL_CAFILE:-}"
    env_file_line TRIGGER_MESSAGES_TOPIC "$TRIGGER_MESSAGES_TOPIC"
    env_file_line SUBSCRIPTIONS_TOPIC "$SUBSCRIPTIONS_TOPIC"
    env_file_line DEAD_LETTER_TOPIC "$DEAD_LETTER_TOPIC"
    env_file_line TOPIC_PREFIX_PATTERN "${TOPIC_PREFIX_PATTERN:-}"
  } > "$state_dir/consumer.env"
  (umask 077
   { echo "# Secrets of the messaging consumer for $apihost: keep this file safe."
     echo "# The sealing key is needed to open every credential sealed so far; losing it invalidates them."
     echo "$header"
     env_file_line SEALING_KEYS "$SEALING_KEYS"
     env_file_line KAFKA_SASL_PASSWORD "${KAFKA_SASL_PASSWORD:-}"
   } > "$state_dir/consumer-secrets.env")
  chmod 600 "$state_dir/consumer.env" "$state_dir/consumer-secrets.env"
}

run_wskdeploy() {  # run_wskdeploy [undeploy]: manifest.yaml with the operator's wskprops
  local args=(--config "$state_dir/wskprops" -m "$ROOT/manifest.yaml" -p "$ROOT")
  [ -z "$deployment_file" ] || args+=(-d "$deployment_file")
  [ -z "$namespace" ] || args+=(-n "$namespace")
  [ "${1:-}" != undeploy ] || args=(undeploy "${args[@]}")
  # the manifest's $VARIABLES: what the web actions of messagingWeb are bound to; their require-whisk-auth
  # value is derived from the sealing key (messaging_lib/credentials.py; undeploy only needs a value)
  local web_auth=undeploy
  [ -z "${SEALING_KEYS:-}" ] || web_auth="$("$PY" -c 'import os; from messaging_lib.credentials import web_auth_secret as w; print(w(os.environ["SEALING_KEYS"]))')"
  if ! env KAFKA_BOOTSTRAP_SERVERS="${ACTIONS_KAFKA_BOOTSTRAP_SERVERS:-${KAFKA_BOOTSTRAP_SERVERS:-}}" MESSAGING_WEB_AUTH="$web_auth" \
      EXTERNAL_KAFKA_BOOTSTRAP_SERVERS="${EXTERNAL_KAFKA_BOOTSTRAP_SERVERS:-${KAFKA_BOOTSTRAP_SERVERS:-}}" \
      SUBSCRIPTIONS_API_URL="${SUBSCRIPTIONS_API_URL:-}" \
      WSK_CONFIG_FILE="$state_dir/wskprops" "$WSKDEPLOY" "${args[@]}" > "$state_dir/wskdeploy.log" 2>&1; then
    sed 's/^/    | /' "$state_dir/wskdeploy.log" | tail -n 25 >&2
    die "wskdeploy ${1:-deploy} failed (its full output: $state_dir/wskdeploy.log)" \
      "read the lines above; an unknown key in manifest.yaml or the deployment file, or a refused request, stops wskdeploy"
  fi
  grep -E 'successfully|[Ss]uccess' "$state_dir/wskdeploy.log" | tail -n 1 | sed 's/^/    wskdeploy: /' >&2 || true
}

deploy_package() {
  [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] \
    || die "no Kafka brokers" "pass --kafka-bootstrap host:port or set KAFKA_BOOTSTRAP_SERVERS (or use --local)"
  step "Checking OpenWhisk at $apihost"
  local owner
  # shellcheck disable=SC2046
  owner="$(tool check-openwhisk --apihost "$apihost" $(insecure_flag))" || exit 1
  namespace_shown="${namespace:-$owner}"
  info "the key is accepted; the packages go into namespace $namespace_shown"

  step "Kafka topics at $KAFKA_BOOTSTRAP_SERVERS"
  local created status=0
  created="$(tool topics --trigger-messages-topic "$TRIGGER_MESSAGES_TOPIC" --subscriptions-topic "$SUBSCRIPTIONS_TOPIC" \
    --dead-letter-topic "$DEAD_LETTER_TOPIC" --partitions "${partitions:-12}" --replication-factor "$replication" \
    --retention-hours "$retention_hours")" || status=$?
  if [ -n "$created" ]; then  # what undeploy may delete: the topics this deployment created
    mkdir -p "$state_dir"; chmod 700 "$state_dir"
    echo "$created" >> "$state_dir/topics.created"
  fi
  [ "$status" = 0 ] || exit 1
  step "Kafka ACLs"
  tool acls --trigger-messages-topic "$TRIGGER_MESSAGES_TOPIC" --subscriptions-topic "$SUBSCRIPTIONS_TOPIC" \
    --dead-letter-topic "$DEAD_LETTER_TOPIC" ${service_principal:+--kafka-service-principal "$service_principal"} \
    ${producer_principals:+--kafka-producer-principal "$producer_principals"} || exit 1

  mkdir -p "$state_dir"; chmod 700 "$state_dir"
  write_wskprops "$state_dir/wskprops" "$apihost" "$auth" "$namespace"
  step "Sealing key"
  choose_sealing_key
  write_consumer_settings

  step "Building the action folders (python -m actions.build)"
  info "$("$PY" -m actions.build | cut -f1 | tr '\n' ' ')"

  step "Deploying manifest.yaml with wskdeploy into $namespace_shown"
  run_wskdeploy
  info "users call /$namespace_shown/messaging/produce, token, kafkaProduce (and kafkaFeed)"
}

print_consumer_instructions() {
  step "Start the consumer with the same settings"
  cat >&2 <<EOF
    Its settings are in $state_dir/consumer.env and, secret, $state_dir/consumer-secrets.env
    (the sealing key lives there: keep the file safe; ./deploy.sh reuses it).
    Docker:      docker run --env-file $state_dir/consumer.env --env-file $state_dir/consumer-secrets.env \\
                   -p 8080:8080 openwhisk-messaging-consumer   (build: docker build -f consumer/Dockerfile -t openwhisk-messaging-consumer .)
    Kubernetes:  kubectl -n openwhisk create configmap messaging-consumer --from-env-file=$state_dir/consumer.env
                 kubectl -n openwhisk create secret generic messaging-consumer --from-env-file=$state_dir/consumer-secrets.env
                 kubectl -n openwhisk apply -k deploy/kubernetes
    Here:        set -a; . $state_dir/consumer.env; . $state_dir/consumer-secrets.env; set +a; .venv/bin/python -m consumer
EOF
}

undeploy_package() {
  step "Checking OpenWhisk at $apihost"
  # shellcheck disable=SC2046
  tool check-openwhisk --apihost "$apihost" $(insecure_flag) >/dev/null || exit 1
  mkdir -p "$state_dir"; chmod 700 "$state_dir"
  write_wskprops "$state_dir/wskprops" "$apihost" "$auth" "$namespace"
  step "Removing the packages with wskdeploy undeploy"
  run_wskdeploy undeploy
  if [ "$keep_topics" = 1 ]; then
    info "topics and the sealing key kept (--keep-topics) in $state_dir"
    rm -f "$state_dir/wskprops" "$state_dir/wskdeploy.log"
    return
  fi
  local created=()
  [ ! -f "$state_dir/topics.created" ] || mapfile -t created < <(sort -u "$state_dir/topics.created")
  if [ "${#created[@]}" = 0 ]; then
    info "no topic was created by a deploy with this state ($state_dir): topics left in place"
  elif [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    step "Deleting the topics the deploy created, at $KAFKA_BOOTSTRAP_SERVERS"
    tool delete-topics "${created[@]}" || exit 1
  else
    die "cannot delete the topics ${created[*]}: no Kafka settings" \
      "pass --kafka-bootstrap (and the security flags), or --keep-topics to leave them"
  fi
  step "Removing the kept state ($state_dir)"
  remove_state_dir
}

STATE_FILES=(consumer.env consumer-secrets.env wskprops guest.wskprops wskdeploy.log demo_action.py topics.created
  emulator.pid emulator.url emulator.log consumer.pid consumer.url consumer.log runtime-venv.log kafka.name kafka.port
  emulator-state.json)
remove_state_dir() {  # only what deploy.sh writes: a --state-dir pointing at a busy folder loses nothing else
  local file
  for file in "${STATE_FILES[@]}"; do rm -f "${state_dir:?}/$file"; done
  rm -rf "${state_dir:?}/kafka-data"
  rmdir "$state_dir" 2>/dev/null || info "kept $state_dir: it holds files deploy.sh did not write"
}

load_kept_settings() {  # undeploy without Kafka flags: the Kafka settings and topics the deploy used
  local line key
  [ -f "$state_dir/consumer.env" ] || return 0
  while IFS= read -r line; do
    key="${line%%=*}"
    case "$key" in
      KAFKA_*|TRIGGER_MESSAGES_TOPIC|SUBSCRIPTIONS_TOPIC|DEAD_LETTER_TOPIC)
        [ -n "${!key:-}" ] || export "${line?}" ;;
    esac
  done < <(grep -hv '^#' "$state_dir/consumer.env" "$state_dir/consumer-secrets.env" 2>/dev/null)
}

# ---- --local: the processes --------------------------------------------------------------------
kafka_name() { echo "messaging-$(printf '%s' "$state_dir" | cksum | cut -d' ' -f1)"; }
running() { tool running --pidfile "$state_dir/$1.pid"; }

resolve_port() {  # resolve_port PORT WHAT FLAG: 0 -> a free port; a busy port -> a clear error
  if [ "$1" = 0 ]; then tool free-port; return; fi
  tool port-free "$1" || die "port $1 ($2) is in use on 127.0.0.1" "stop what holds it, or pass $3 N (0 = any free port)"
  echo "$1"
}

kafka_running() { py_step "$PY" -m local_stack.kafka status --name "$(kafka_name)" >/dev/null 2>&1; }

start_kafka() {
  local status port
  if py_out status "$PY" -m local_stack.kafka status --name "$(kafka_name)" 2>/dev/null; then
    step "Apache Kafka (real broker, KRaft; python -m local_stack.kafka)"
    KAFKA_BOOTSTRAP_SERVERS="$(sed -n 's/.*"bootstrap": "\([^"]*\)".*/\1/p' <<<"$status")"
    info "already running on $KAFKA_BOOTSTRAP_SERVERS"
    export KAFKA_BOOTSTRAP_SERVERS
    return
  fi
  if compgen -G "${LOCAL_STACK_CACHE:-$ROOT/.cache}/kafka-*/libs/.complete" >/dev/null; then
    step "Apache Kafka (real broker, KRaft; python -m local_stack.kafka; about 15 s)"
  else
    step "Apache Kafka (real broker, KRaft; mvn fetches its jars once, about 45 s on a first run, then about 15 s)"
  fi
  py_step "$PY" -m local_stack.kafka resolve >/dev/null \
    || die "the Kafka jars could not be resolved" "install Java 17+ and Maven (they fetch Apache Kafka from Maven Central)"
  if [ "$kafka_port" != 0 ]; then
    port="$(resolve_port "$kafka_port" Kafka --kafka-port)"
  elif [ -f "$state_dir/kafka.port" ] && tool port-free "$(cat "$state_dir/kafka.port")" 2>/dev/null; then
    port="$(cat "$state_dir/kafka.port")"  # the port of the last run: what the kept settings name
  else
    port=0
  fi
  # the data of the last run (topics, queued messages, committed offsets) is kept: the broker reopens it
  [ ! -d "$state_dir/kafka-data/log" ] || info "reopening the kept Kafka data in $state_dir/kafka-data"
  py_out KAFKA_BOOTSTRAP_SERVERS "$PY" -m local_stack.kafka start --name "$(kafka_name)" --port "$port" \
    --partitions 4 --data-dir "$state_dir/kafka-data" || die "Kafka did not start" "see the lines above"
  kafka_name > "$state_dir/kafka.name"
  echo "${KAFKA_BOOTSTRAP_SERVERS##*:}" > "$state_dir/kafka.port"
  export KAFKA_BOOTSTRAP_SERVERS
}

start_emulator() {
  step "OpenWhisk emulator (python -m local_stack.emulator)"
  if running emulator; then
    apihost="$(cat "$state_dir/emulator.url")"; info "already running at $apihost"; return
  fi
  local port runtime
  port="$(resolve_port "$apihost_port" "the OpenWhisk emulator" --apihost-port)"
  [ -d .cache/runtime-venv ] || info "building the python:3.11 action runtime venv once (about 35 s on a first run)"
  py_out runtime "$PY" -m local_stack.action_runtime.venv 2>"$state_dir/runtime-venv.log" \
    || die "the action runtime venv could not be built: $(tail -n 5 "$state_dir/runtime-venv.log")" \
      "it is built from PyPI (local_stack/runtime/requirements.txt): check the network and retry"
  : > "$state_dir/emulator.log"
  tool spawn --pidfile "$state_dir/emulator.pid" --log "$state_dir/emulator.log" -- \
    "$PY" -m local_stack.emulator --host 127.0.0.1 --port "$port" --runtime-python "$runtime" \
    --state-file "$state_dir/emulator-state.json" >/dev/null
  py_out apihost "$PY" -m deploy.tool wait-line --log "$state_dir/emulator.log" --prefix "emulator listening on " \
    --pidfile "$state_dir/emulator.pid" --timeout 120 || exit 1
  echo "$apihost" > "$state_dir/emulator.url"
  info "listening at $apihost; $(sed -n 's/^emulator state: //p' "$state_dir/emulator.log" | tail -n 1)"
}

start_consumer() {
  step "The consumer (python -m consumer: firer and router; ready in about 10 s)"
  if running consumer; then info "already running: $(cat "$state_dir/consumer.url")"; return; fi
  local port line
  port="$(resolve_port "$consumer_port" "the consumer's health and metrics" --consumer-port)"
  : > "$state_dir/consumer.log"
  (
    while IFS= read -r line; do export "${line?}"; done \
      < <(grep -hv '^#' "$state_dir/consumer.env" "$state_dir/consumer-secrets.env")
    export HTTP_HOST=127.0.0.1 HTTP_PORT="$port"
    tool spawn --pidfile "$state_dir/consumer.pid" --log "$state_dir/consumer.log" -- "$PY" -m consumer >/dev/null
  )
  echo "http://127.0.0.1:$port" > "$state_dir/consumer.url"
  tool wait-ready "http://127.0.0.1:$port/readyz" --pidfile "$state_dir/consumer.pid" \
    --log "$state_dir/consumer.log" --timeout 120 || exit 1
  info "ready: http://127.0.0.1:$port/readyz, metrics at /metrics, log $state_dir/consumer.log"
}

stop_local() {
  [ "${stopped:-0}" = 0 ] || return 0
  stopped=1
  step "Stopping the local stack"
  if [ -f "$state_dir/consumer.pid" ]; then tool stop --pidfile "$state_dir/consumer.pid" --timeout 40; info "consumer stopped"; fi
  if [ -f "$state_dir/emulator.pid" ]; then tool stop --pidfile "$state_dir/emulator.pid" --timeout 20; info "emulator stopped"; fi
  if [ -f "$state_dir/kafka.name" ]; then
    py_step "$PY" -m local_stack.kafka stop --name "$(cat "$state_dir/kafka.name")" 2>/dev/null || true
    rm -f "$state_dir/kafka.name"
    info "Kafka stopped (its data is kept in $state_dir/kafka-data: the next --local reopens it)"
  fi
}

# ---- --local: the demo -------------------------------------------------------------------------
as_guest() { WSK_CONFIG_FILE="$state_dir/guest.wskprops" "$WSK" "$@"; }
quoted() {  # the arguments as one would type them
  local arg out=""
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then out+=" $arg"; else out+=" '${arg//\'/\'\\\'\'}'"; fi
  done
  echo "${out# }"
}
shown() { info "\$ wsk $(quoted "$@")"; as_guest "$@" 2>&1 | sed 's/^/      /' >&2; return "${PIPESTATUS[0]}"; }
now_ms() { "$PY" -c 'import time; print(int(time.time() * 1000))'; }

exists() {  # exists KIND NAME: the guest's entity is there (then the demo leaves it as it is)
  if as_guest "$1" get "$2" >/dev/null 2>&1; then info "$1 $2 exists: left as it is"; return 0; fi
  return 1
}
rule_active() {  # a rule the user disabled (or whose trigger was recreated) runs nothing: say so, skip that fire
  as_guest rule status "$1" 2>/dev/null | grep -q ' is active$' && return 0
  info "rule $1 is inactive, so the demo fire would run nothing: skipped (wsk rule enable $1 turns it on again)"
  return 1
}

show_activation_of() {  # show_activation_of ACTION SINCE_MS
  local id
  id="$(OW_AUTH="$GUEST_AUTH" tool wait-activation --apihost "$apihost" --name "$1" --since "$2" --timeout 60)" \
    || die "the demo's action did not run" "look at $state_dir/consumer.log and $state_dir/emulator.log"
  shown activation get "$id"
}

run_demo() {
  step "Demo: produce -> trigger -> rule -> action (as the user guest)"
  cat > "$state_dir/demo_action.py" <<'EOF'
def main(params):
    received = {k: v for k, v in params.items() if not k.startswith("__")}
    print("demo-action got", received)
    return {"received": received}
EOF
  # what exists is left as it is (the user may have changed it); only what is missing is created
  exists trigger demo-trigger || shown trigger create demo-trigger >/dev/null
  exists action demo-action || shown action create demo-action "$state_dir/demo_action.py" --kind python:3.11
  exists rule demo-rule || shown rule create demo-rule demo-trigger demo-action
  rule_active demo-rule || return 0
  local since; since="$(now_ms)"
  shown action invoke /whisk.system/messaging/produce -p trigger demo-trigger -p payload '{"hello": "world"}' --result \
    || die "produce failed" "see the answer above and $state_dir/emulator.log"
  info "the consumer fires demo-trigger; the rule runs demo-action:"
  show_activation_of demo-action "$since"

  grep -q '^ *kafkaFeed:' manifest.yaml || { info "(no kafkaFeed in manifest.yaml yet: feed demo left out)"; return; }
  step "Demo: kafkaProduce -> topic -> kafkaFeed trigger -> rule -> action"
  tool create-topic demo-topic || exit 1
  "$PY" -m feed.grants add --namespace guest --topic demo-topic --state-dir "$state_dir" >&2 || exit 1  # kafkaFeed needs a grant
  if ! exists trigger demo-feed-trigger; then
    shown trigger create demo-feed-trigger --feed /whisk.system/messaging/kafkaFeed -p topic demo-topic \
      -p isJSONData true || die "the feed trigger could not be created" "see the answer above and $state_dir/emulator.log"
  fi
  exists rule demo-feed-rule || shown rule create demo-feed-rule demo-feed-trigger demo-action
  rule_active demo-feed-rule || return 0
  since="$(now_ms)"
  shown action invoke /whisk.system/messaging/kafkaProduce -p brokers "$KAFKA_BOOTSTRAP_SERVERS" \
    -p topic demo-topic -p value '{"from": "kafka"}' --result || die "kafkaProduce failed" "see the answer above"
  show_activation_of demo-action "$since"
}

# ---- the commands ------------------------------------------------------------------------------
local_deploy() {
  [ -z "$apihost$auth" ] || die "--apihost/--auth do not go with --local" "--local runs its own OpenWhisk emulator"
  state_dir="${state_dir:-$ROOT/.cache/local}"
  mkdir -p "$state_dir"; chmod 700 "$state_dir"
  partitions="${partitions:-4}"
  default_topics
  # a stack already up (another terminal's --local, or --detach) is reused and never stopped from here
  owner=1
  if running emulator || running consumer || kafka_running; then
    owner=0
    step "The local stack in $state_dir is up: this run reuses it and stops nothing"
  else
    trap 'finish_step; stop_local; step "Stopped (the data is kept in $state_dir)"; exit 130' INT TERM
    trap '[ "$?" = 0 ] || stop_local' EXIT  # a failed --local leaves nothing running (and keeps the data)
  fi
  ensure_ow_tools
  start_kafka
  start_emulator
  auth="$WHISK_SYSTEM_AUTH"; namespace=""
  export OW_AUTH="$auth"
  if running consumer; then export SUBSCRIPTIONS_API_URL="${SUBSCRIPTIONS_API_URL:-$(cat "$state_dir/consumer.url")}"
  else  # the consumer starts after the package is deployed: its port is chosen now, its URL bound
    consumer_port="$(resolve_port "$consumer_port" "the consumer's health and metrics" --consumer-port)"
    export SUBSCRIPTIONS_API_URL="${SUBSCRIPTIONS_API_URL:-http://127.0.0.1:$consumer_port}"
  fi
  deploy_package
  start_consumer
  write_wskprops "$state_dir/guest.wskprops" "$apihost" "$GUEST_AUTH"
  [ "$demo" = 0 ] || run_demo
  step "The local stack is up"
  cat >&2 <<EOF
    OpenWhisk (emulator)  $apihost    as a user: export WSK_CONFIG_FILE=$(cd "$state_dir" && pwd)/guest.wskprops; $WSK list
    Kafka                 $KAFKA_BOOTSTRAP_SERVERS
    consumer              $(cat "$state_dir/consumer.url")/metrics
    logs                  $state_dir/{emulator,consumer}.log, $state_dir/kafka-data/server.log
    try                   $WSK action invoke /whisk.system/messaging/produce -p trigger demo-trigger -p payload '{"n": 2}'
EOF
  if [ "$owner" = 0 ]; then
    info "the stack was up before this run and is left up: it stops where it was started (Ctrl-C there),"
    info "or with ./deploy.sh undeploy --local (which also removes its data)"
    return
  fi
  if [ "$detach" = 1 ]; then
    trap - INT TERM EXIT
    info "left running (--detach); stop and remove it with: ./deploy.sh undeploy --local"
    return
  fi
  trap 'finish_step; stop_local; step "Stopped (the data is kept in $state_dir: the next --local resumes with it)"; exit 0' INT TERM
  info "Press Ctrl-C to stop (Kafka's data, the emulator's entities and the key stay in $state_dir;"
  info "the next ./deploy.sh --local resumes with them; ./deploy.sh undeploy --local removes them)."
  while running consumer && running emulator && kafka_running; do
    sleep 2
  done
  if ! running consumer && ! running emulator; then info "the local stack was stopped elsewhere"; exit 0; fi
  info "a part of the local stack exited; logs in $state_dir"
  stop_local
  exit 1
}

local_undeploy() {
  state_dir="${state_dir:-$ROOT/.cache/local}"
  if [ ! -d "$state_dir" ]; then step "Nothing to undeploy: $state_dir does not exist"; return; fi
  if running emulator; then
    ensure_ow_tools
    apihost="$(cat "$state_dir/emulator.url")"; auth="$WHISK_SYSTEM_AUTH"; namespace=""
    export OW_AUTH="$auth"
    write_wskprops "$state_dir/wskprops" "$apihost" "$auth"
    step "Removing the demo entities and the packages"
    write_wskprops "$state_dir/guest.wskprops" "$apihost" "$GUEST_AUTH"
    for entity in "rule demo-feed-rule" "rule demo-rule" "trigger demo-feed-trigger" "trigger demo-trigger" \
                  "action demo-action"; do
      as_guest "${entity% *}" delete "${entity#* }" >/dev/null 2>&1 || true
    done
    run_wskdeploy undeploy
  fi
  stop_local
  step "Removing $state_dir (the sealing key, the Kafka data, the emulator's entities, the logs)"
  remove_state_dir
}

# ---- topic create | list -----------------------------------------------------------------------
topic_command() {  # the Kafka of the flags and environment (or of --state-dir's deployment), or --local's broker
  local status
  case "${topic_args[0]:-}:${#topic_args[@]}" in
    create:2|list:1) ;;
    *) die "usage: ./deploy.sh topic create NAME [--partitions N] | ./deploy.sh topic list" "see ./deploy.sh --help" ;;
  esac
  if [ "$local_mode" = 1 ]; then
    state_dir="${state_dir:-$ROOT/.cache/local}"
    status="$("$PY" -m local_stack.kafka status --name "$(kafka_name)" 2>/dev/null)" \
      || die "the local stack's Kafka is not running (state: $state_dir)" "start it with ./deploy.sh --local --detach"
    KAFKA_BOOTSTRAP_SERVERS="$(sed -n 's/.*"bootstrap": "\([^"]*\)".*/\1/p' <<<"$status")"; export KAFKA_BOOTSTRAP_SERVERS
  else
    [ -z "$state_dir" ] || load_kept_settings
    [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || die "no Kafka brokers" \
      "pass --kafka-bootstrap host:port (and the security flags), --state-dir of a deployment, or --local"
  fi
  if [ "${topic_args[0]}" = list ]; then
    step "Topics at $KAFKA_BOOTSTRAP_SERVERS (name, partitions)"
    tool list-topics || exit 1
    return
  fi
  step "Topic ${topic_args[1]} at $KAFKA_BOOTSTRAP_SERVERS"
  tool create-topic "${topic_args[1]}" --partitions "${topic_partitions:-1}" --replication-factor "$replication" || exit 1
}

ensure_python
case "$command:$local_mode" in
  topic:*) topic_command ;;
  deploy:1) local_deploy ;;
  undeploy:1) local_undeploy ;;
  deploy:0)
    resolve_openwhisk
    default_topics
    ensure_ow_tools
    deploy_package
    print_consumer_instructions ;;
  undeploy:0)
    resolve_openwhisk
    load_kept_settings
    default_topics
    ensure_ow_tools
    undeploy_package ;;
esac
step "Done"
