#!/usr/bin/env bash
# The main job on the bundled FormKiQ emulator, no AWS account needed:
# start an emulator and fkq-credd in a private sandbox, log in once, call
# /sites with `curl -H @<(fkq-cred header)`, watch a refresh happen, let
# fifty scripts share one login, then clean everything up.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/debug
sandbox=$(mktemp -d "${TMPDIR:-/tmp}/fkq-demo.XXXXXX")
emulator_pid="" daemon_pid=""
cleanup() {
  "$bin/fkq-cred" --quiet daemon stop >/dev/null 2>&1 || true
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true
  [ -n "$daemon_pid" ] && wait "$daemon_pid" 2>/dev/null || true
  rm -rf "$sandbox"
}
trap cleanup EXIT

# A private world: the demo touches none of your own config or sockets.
export XDG_CONFIG_HOME=$sandbox/config XDG_RUNTIME_DIR=$sandbox/run
export XDG_STATE_HOME=$sandbox/state
unset FKQ_CRED_SOCKET FKQ_CRED_CONFIG FKQ_PROFILE
mkdir -p "$XDG_CONFIG_HOME/fkq-cred" "$XDG_STATE_HOME"
mkdir -m 700 "$XDG_RUNTIME_DIR"

step() { printf '\n== %s\n' "$*"; }

step "start the FormKiQ emulator (HTTPS on 127.0.0.1, tokens live 6 s)"
coproc EMULATOR { exec "$bin/formkiq-emulator" --state-dir "$sandbox" --token-lifetime 6; }
emulator_pid=$EMULATOR_PID
read -r ready <&"${EMULATOR[0]}"
field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/" <<<"$ready"; }
auth_url=$(field auth_url) api_url=$(field api_url) ca_file=$(field ca_file)
echo "auth URL: $auth_url"
echo "API URL:  $api_url"

step "write the profile (what you would write for a real deployment)"
cat >"$XDG_CONFIG_HOME/fkq-cred/config.toml" <<TOML
[profiles.demo]
auth_url = "$auth_url"   # stack output UserAuthApiUrl / CognitoApiEndpoint
api_url = "$api_url"     # stack output HttpApiUrl
username = "alice@example.com"
ca_file = "$ca_file"     # only because the emulator has its own CA
TOML
cat "$XDG_CONFIG_HOME/fkq-cred/config.toml"

step "start fkq-credd (logs: $XDG_STATE_HOME/daemon.log)"
"$bin/fkq-credd" 2>"$XDG_STATE_HOME/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do
  grep -q ' ready ' "$XDG_STATE_HOME/daemon.log" && break
  sleep 0.05
done
"$bin/fkq-cred" daemon status

step "log in once (the password goes over the socket, never argv)"
printf 'correct-horse-battery-staple\n' | "$bin/fkq-cred" login --password-stdin

step "curl -H @<(fkq-cred header) \"\$API/sites\""
curl --silent --show-error --cacert "$ca_file" \
  -H @<("$bin/fkq-cred" header) "${api_url}sites"
echo

step "the daemon refreshes before expiry: two tokens 4 s apart"
first=$("$bin/fkq-cred" get)
sleep 4
second=$("$bin/fkq-cred" get)
echo "first:  ${first:0:24}...${first: -12}"
echo "second: ${second:0:24}...${second: -12}"
[ "$first" != "$second" ] && echo "renewed without asking for the password again"

step "fifty scripts at once share the one login"
callers=()
for _ in $(seq 50); do "$bin/fkq-cred" get >/dev/null & callers+=($!); done
wait "${callers[@]}"
curl --silent --cacert "$ca_file" "${auth_url}_emulator/counters"
echo

step "status"
"$bin/fkq-cred" status
