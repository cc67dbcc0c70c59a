#!/usr/bin/env bash
# Where the instructions go, counted by valgrind's callgrind. Unlike wall
# time, instruction counts come out the same on a busy machine, so they
# show what the code costs while other work competes for the cores.
#   client  instructions of one process: `fkq-cred get` (static and
#           dynamic builds), /bin/true and `git credential-cache get`,
#           then the functions of `fkq-cred get` that cost the most;
#   daemon  instructions per `get` answered from memory: fkq-credd runs
#           under callgrind, fkq-load sends gets, the counters are zeroed
#           after a warm-up and dumped after the run.
# Kernel time (system calls, wake-ups) is not counted; the wall-clock
# figures of scripts/bench.sh include it.
#
# usage: scripts/profile.sh [--only client|daemon] [--top N]
set -euo pipefail
cd "$(dirname "$0")/.."

only=client,daemon top=15
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=$2; shift ;;
    --top) top=$2; shift ;;
    *) echo "usage: $0 [--only client,daemon] [--top N]" >&2; exit 2 ;;
  esac
  shift
done
wants() { [[ ",$only," == *",$1,"* ]]; }
for tool in valgrind callgrind_annotate callgrind_control; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed (apt-get install valgrind)" >&2; exit 1; }
done

# Release code with symbols (the `profiling` profile), plus the emulator
# and load tool from the release build.
cargo build --release --quiet -p fkq-cred-tests --bins
cargo build --profile profiling --quiet -p fkq-cred -p fkq-credd
bin=$PWD/target/release
prof=$PWD/target/profiling
host=$(rustc -vV | sed -n 's/^host: //p')
static_client=""
if [[ $host == *-linux-gnu ]]; then
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --profile profiling --quiet -p fkq-cred --target "$host"
  static_client=$PWD/target/$host/profiling/fkq-cred
fi

# shellcheck source=scripts/lib/sandbox.sh
. scripts/lib/sandbox.sh
machine
sandbox_start
start_daemon
"$prof/fkq-cred" get >/dev/null

step() { printf '\n== %s\n' "$*"; }
# Instructions of the callgrind output file $1.
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}'; }
# The top functions of $1, by inclusive or own cost ($2), leaving out the
# thread and runtime frames every function runs under; paths shortened.
# Every stage reads its input to the end: with pipefail, a stage that
# stopped early would fail the script through its writer's SIGPIPE.
top() {
  callgrind_annotate --inclusive="$2" --threshold=100 "$1" 2>/dev/null |
    awk '/file:function/ && !done {table = 1; getline; next}
         table && NF == 0 {table = 0; done = 1}
         table' |
    grep -v -E 'clone\.S|pthread_create|thread_start|FnOnce::call_once|begin_short_backtrace|\(below main\)|raw::poll|run_task|worker::Context::run|block_on|scheduler::' |
    awk -v n="$top" 'NR <= n' |
    sed -E 's|/rustc/[0-9a-f]+/library/|std:|g; s|[^ ]*/registry/src/[^/]+/||g; s|'"$PWD"'/||g; s| \[[^]]*\]$||' |
    cut -c1-150
}

if wants client; then
  step "client: instructions per process (callgrind)"
  start_git_cache
  runs=(true /bin/true)
  [ -n "$static_client" ] && runs+=("fkq-cred get" "$static_client get")
  runs+=("fkq-cred get (dynamic)" "$prof/fkq-cred get")
  runs+=("git credential-cache" "git credential-cache --socket $git_socket get")
  base=""
  printf '%-24s %12s %8s\n' command instructions ratio
  for ((i = 0; i < ${#runs[@]}; i += 2)); do
    name=${runs[i]} out=$sandbox/cg.client.$((i / 2))
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$out" ${runs[i + 1]} \
      <"$git_request" >/dev/null 2>&1
    n=$(total "$out")
    [ -n "$base" ] || base=$n
    printf '%-24s %12s %7.2fx\n' "$name" "$n" "$(echo "$n / $base" | bc -l)"
  done
  # The first fkq-cred run: the static build where there is one.
  step "client: fkq-cred get, top functions by inclusive cost"
  top "$sandbox/cg.client.1" yes
fi

if wants daemon; then
  step "daemon: instructions per get answered from memory (callgrind)"
  stop_daemon
  daemon_cmd=(valgrind --tool=callgrind "--callgrind-out-file=$sandbox/cg.daemon" "$prof/fkq-credd")
  start_daemon
  "$prof/fkq-cred" get >/dev/null
  "$bin/fkq-load" conns -c 4 -d 1s >/dev/null
  callgrind_control -z "$daemon_pid" >/dev/null
  report=$("$bin/fkq-load" conns -c 4 -d 5s)
  callgrind_control -d "$daemon_pid" >/dev/null
  gets=$(sed -n 's/^gets: *\([0-9]*\) .*/\1/p' <<<"$report")
  dump=$(ls -t "$sandbox"/cg.daemon.* | head -1)
  n=$(total "$dump")
  echo "$gets gets (4 connections, 5 s, slowed down by callgrind): $n instructions = $((n / gets)) per get"
  step "daemon: top functions by inclusive cost"
  top "$dump" yes
  step "daemon: top functions by own cost"
  top "$dump" no
fi
