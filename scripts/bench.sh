#!/usr/bin/env bash
# The figures of BENCHMARKS.md, taken in one run on this machine:
#   calls   per-call cost of `fkq-cred get` against a warm daemon, next to
#           /bin/true and `git credential-cache get` against a warm cache,
#           in alternating rounds (fkq-calltime);
#   load    64 and 1,000 connections issuing gets (fkq-load conns);
#   fanout  1,000 processes x 10 gets on a fresh daemon, and the logins
#           that cost the auth server (fkq-load procs);
#   cold    a daemon started from nothing, then its first get, which logs
#           in over loopback (fkq-load cold).
# Everything runs in a throw-away sandbox against the bundled emulator; the
# git cache listens on a private socket in the sandbox, never on yours.
#
# usage: scripts/bench.sh [--quick] [--debug] [--only SECTION[,SECTION]]
#   --quick   a short run of every section, for CI: it must work, its
#             numbers mean little
#   --debug   use the debug binaries of `cargo build --workspace`
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 profile=release only=calls,load,fanout,cold
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --debug) profile=debug ;;
    --only) only=$2; shift ;;
    *) echo "usage: $0 [--quick] [--debug] [--only calls,load,fanout,cold]" >&2
       exit 2 ;;
  esac
  shift
done
wants() { [[ ",$only," == *",$1,"* ]]; }

if [ "$quick" = 1 ]; then
  calls=20 rounds=3 load_time=1s conns_small=8 conns_large=100
  fan_workers=20 fan_calls=3 cold_rounds=1
else
  calls=${BENCH_CALLS:-1000} rounds=${BENCH_ROUNDS:-7} load_time=10s
  conns_small=64 conns_large=1000 fan_workers=1000 fan_calls=10 cold_rounds=5
fi

step() { printf '\n== %s\n' "$*"; }

step "build ($profile)"
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build "${flag[@]}" --quiet -p fkq-cred -p fkq-credd -p fkq-cred-tests --bins
bin=$PWD/target/$profile
client=$bin/fkq-cred
# The client as the README installs it: glibc linked statically, so no
# dynamic loader runs at each start. --target keeps the flag off the
# build scripts and proc-macros of the dependencies.
host=$(rustc -vV | sed -n 's/^host: //p')
static_client=""
if [[ $host == *-linux-gnu ]]; then
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build "${flag[@]}" --quiet -p fkq-cred --target "$host"
  static_client=$PWD/target/$host/$profile/fkq-cred
  client=$static_client
fi

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1), $(uname -sr)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"

# ---------------------------------------------------------------- sandbox
sandbox=$(mktemp -d "${TMPDIR:-/tmp}/fkq-bench.XXXXXX")
emulator_pid="" daemon_pid="" drain_pid="" git_socket=""
cleanup() {
  [ -n "$git_socket" ] && git credential-cache --socket "$git_socket" exit 2>/dev/null || true
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$sandbox"
}
trap cleanup EXIT

export HOME=$sandbox/home XDG_CONFIG_HOME=$sandbox/config
export XDG_RUNTIME_DIR=$sandbox/run XDG_STATE_HOME=$sandbox/state
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
unset FKQ_CRED_SOCKET FKQ_CRED_CONFIG FKQ_PROFILE RUST_LOG
mkdir -p "$HOME" "$XDG_CONFIG_HOME/fkq-cred" "$XDG_STATE_HOME" "$sandbox/emu"
mkdir -m 700 "$XDG_RUNTIME_DIR"

# The emulator prints one JSON line once it serves; read it from a FIFO.
mkfifo "$sandbox/emu.out"
"$bin/formkiq-emulator" --state-dir "$sandbox/emu" >"$sandbox/emu.out" &
emulator_pid=$!
exec {emu_fd}<"$sandbox/emu.out"
read -r -t 20 ready <&"$emu_fd"
field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/" <<<"$ready"; }
auth_url=$(field auth_url) ca_file=$(field ca_file)

# No interactive login: the first get logs in through password_command,
# the way an unattended script's daemon does.
cat >"$XDG_CONFIG_HOME/fkq-cred/config.toml" <<TOML
[profiles.bench]
auth_url = "$auth_url"
api_url = "$(field api_url)"
username = "alice@example.com"
ca_file = "$ca_file"
password_command = ["printf", "correct-horse-battery-staple\\\\n"]
TOML

# Starts fkq-credd and returns once it has logged its ready line; its log
# keeps being copied to a file so the pipe never fills.
start_daemon() {
  rm -f "$sandbox/daemon.err"
  mkfifo "$sandbox/daemon.err"
  "$bin/fkq-credd" 2>"$sandbox/daemon.err" &
  daemon_pid=$!
  exec {daemon_fd}<"$sandbox/daemon.err"
  local line
  while read -r -t 20 line <&"$daemon_fd"; do
    echo "$line" >>"$XDG_STATE_HOME/daemon.log"
    [[ $line == *" ready "* ]] && break
  done
  cat <&"$daemon_fd" >>"$XDG_STATE_HOME/daemon.log" &
  drain_pid=$!
  exec {daemon_fd}<&-
}
stop_daemon() {
  kill "$daemon_pid"
  wait "$daemon_pid" 2>/dev/null || true
  wait "$drain_pid" 2>/dev/null || true
  daemon_pid=""
}

start_daemon
"$client" get >/dev/null   # logs in; every later get is served from memory
rss() { sed -n 's/^VmRSS:[[:space:]]*//p' "/proc/$daemon_pid/status" 2>/dev/null || echo "-"; }

# ------------------------------------------------------------------ calls
if wants calls; then
  step "per call: fkq-cred get vs /bin/true vs git credential-cache get"
  git_socket=$sandbox/git/socket
  printf 'protocol=https\nhost=bench.example\nusername=bench\npassword=not-a-secret\n\n' |
    git credential-cache --socket "$git_socket" --timeout 3600 store
  printf 'protocol=https\nhost=bench.example\n\n' >"$sandbox/git-get.txt"
  git credential-cache --socket "$git_socket" get <"$sandbox/git-get.txt" |
    grep -q '^password=not-a-secret$'

  cmds=(--cmd true /bin/true \;)
  if [ -n "$static_client" ]; then
    cmds+=(--cmd "fkq-cred get" "$static_client" get \;)
    cmds+=(--cmd "fkq-cred header" "$static_client" header \;)
  fi
  cmds+=(--cmd "fkq-cred get (dyn)" "$bin/fkq-cred" get \;)
  cmds+=(--cmd "git credential-cache" --stdin "$sandbox/git-get.txt" \
    git credential-cache --socket "$git_socket" get \;)
  "$bin/fkq-calltime" --calls "$calls" --rounds "$rounds" "${cmds[@]}"
fi

# ------------------------------------------------------------------- load
if wants load; then
  step "daemon RSS idle, one profile logged in: $(rss)"
  step "load: $conns_small connections for $load_time"
  "$bin/fkq-load" conns -c "$conns_small" -d "$load_time"
  step "load: $conns_large connections for $load_time"
  "$bin/fkq-load" conns -c "$conns_large" -d "$load_time"
fi

# ----------------------------------------------------------------- fanout
if wants fanout; then
  step "fanout: $fan_workers processes at once, $fan_calls gets each, on a fresh daemon"
  stop_daemon
  start_daemon
  "$bin/fkq-load" procs --client "$client" -k "$fan_workers" -n "$fan_calls" \
    --emulator "$auth_url" --ca-file "$ca_file" --expect-logins 1
fi

# ------------------------------------------------------------------- cold
if wants cold; then
  step "cold start: daemon from nothing, then the first get (login on loopback)"
  stop_daemon
  "$bin/fkq-load" cold --daemon "$bin/fkq-credd" --client "$client" -r "$cold_rounds"
fi
