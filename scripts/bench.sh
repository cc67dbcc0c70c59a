#!/usr/bin/env bash
# The figures of BENCHMARKS.md, taken in one run on this machine:
#   calls   per-call cost of `fkq-cred get` against a warm daemon, next to
#           /bin/true and `git credential-cache get` against a warm cache,
#           in alternating rounds (fkq-calltime);
#   load    the daemon's RSS idle, one connection's round trip, then 64
#           connections issuing gets as fast as answered (the load
#           generator on one thread, then two) and
#           at 100,000 gets/s offered, then 1,000 connections (fkq-load
#           conns);
#   fanout  1,000 processes x 10 gets on a fresh daemon, and the logins
#           that cost the auth server (fkq-load procs);
#   cold    a daemon started from nothing, then its first get, which logs
#           in over loopback (fkq-load cold).
# Everything runs in a throw-away sandbox against the bundled emulator; the
# git cache listens on a private socket in the sandbox, never on yours.
#
# usage: scripts/bench.sh [--quick] [--debug] [--only SECTION,...]
#   --quick   a short run of every section, for CI: it must work, its
#             numbers mean little
#   --debug   use debug binaries (what `cargo build --workspace` made)
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
  calls=20 rounds=3 load_time=1s conns_small=8 conns_large=100 rate=5000
  fan_workers=20 fan_calls=3 cold_rounds=1
else
  calls=${BENCH_CALLS:-1000} rounds=${BENCH_ROUNDS:-7} load_time=10s
  conns_small=64 conns_large=1000 rate=100000
  fan_workers=1000 fan_calls=10 cold_rounds=5
fi

step() { printf '\n== %s\n' "$*"; }

step "build ($profile)"
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build "${flag[@]}" --quiet -p fkq-cred -p fkq-credd -p fkq-cred-tests --bins
bin=$PWD/target/$profile
client=$bin/fkq-cred
# The client as the README installs it: glibc linked statically, so no
# dynamic loader runs at each start. --target keeps the flag away from the
# build scripts and proc-macros of the dependencies.
host=$(rustc -vV | sed -n 's/^host: //p')
static_client=""
if [[ $host == *-linux-gnu ]]; then
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build "${flag[@]}" --quiet -p fkq-cred --target "$host"
  static_client=$PWD/target/$host/$profile/fkq-cred
  client=$static_client
fi

# shellcheck source=scripts/lib/sandbox.sh
. scripts/lib/sandbox.sh
machine
sandbox_start
start_daemon
"$client" get >/dev/null   # logs in; every later get is served from memory

# The load tool holds a thousand sockets or children at once.
raise_fd_limit() { ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true; }

if wants calls; then
  step "per call: fkq-cred get vs /bin/true vs git credential-cache get"
  start_git_cache
  cmds=(--cmd true /bin/true \;)
  if [ -n "$static_client" ]; then
    cmds+=(--cmd "fkq-cred get" "$static_client" get \;)
    cmds+=(--cmd "fkq-cred header" "$static_client" header \;)
  fi
  cmds+=(--cmd "fkq-cred get (dynamic)" "$bin/fkq-cred" get \;)
  cmds+=(--cmd "git credential-cache" --stdin "$git_request" \
    git credential-cache --socket "$git_socket" get \;)
  "$bin/fkq-calltime" --calls "$calls" --rounds "$rounds" "${cmds[@]}"
fi

if wants load; then
  step "daemon RSS idle, one profile logged in: $(sed -n 's/^VmRSS:[[:space:]]*//p' "/proc/$daemon_pid/status" 2>/dev/null || echo unknown)"
  step "load: one connection, back to back: the round trip, $load_time"
  "$bin/fkq-load" conns -c 1 -d "$load_time"
  step "load: $conns_small connections, as fast as answered, $load_time"
  "$bin/fkq-load" conns -c "$conns_small" -d "$load_time"
  step "load: the same with the load generator on two threads"
  "$bin/fkq-load" conns -c "$conns_small" -d "$load_time" --threads 2
  step "load: $conns_small connections, $rate gets/s offered, $load_time"
  "$bin/fkq-load" conns -c "$conns_small" -d "$load_time" --rate "$rate"
  step "load: $conns_large connections, as fast as answered, $load_time"
  (raise_fd_limit; "$bin/fkq-load" conns -c "$conns_large" -d "$load_time")
fi

if wants fanout; then
  step "fanout: $fan_workers processes at once, $fan_calls gets each, on a fresh daemon"
  stop_daemon
  start_daemon
  (raise_fd_limit; "$bin/fkq-load" procs --client "$client" -k "$fan_workers" \
    -n "$fan_calls" --emulator "$auth_url" --ca-file "$ca_file" --expect-logins 1)
fi

if wants cold; then
  step "cold start: daemon from nothing, then the first get (login on loopback)"
  stop_daemon
  "$bin/fkq-load" cold --daemon "$bin/fkq-credd" --client "$client" -r "$cold_rounds"
  step "cold start: the first get with no daemon running (auto-start)"
  # The client looks for fkq-credd beside itself, else on PATH.
  PATH="$bin:$PATH" "$bin/fkq-load" cold --autostart --client "$client" \
    -r "$cold_rounds"
fi
