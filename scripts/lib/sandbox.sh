# Shared by scripts/bench.sh and scripts/profile.sh: a throw-away world of
# their own (XDG directories, HOME, socket) with the bundled FormKiQ
# emulator and a profile that logs in through password_command. Source it,
# then call sandbox_start; sandbox_cleanup runs on exit.
#
# Needs: $bin (the directory holding formkiq-emulator and fkq-credd).
# start_daemon runs the array daemon_cmd when it is set (profile.sh puts
# the daemon under callgrind that way).

sandbox=$(mktemp -d "${TMPDIR:-/tmp}/fkq-bench.XXXXXX")
emulator_pid="" daemon_pid="" drain_pid="" git_socket=""
daemon_cmd=()

sandbox_cleanup() {
  [ -n "$git_socket" ] && git credential-cache --socket "$git_socket" exit 2>/dev/null || true
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$sandbox"
}
trap sandbox_cleanup EXIT

# Starts the emulator and writes the profile; sets auth_url, api_url,
# ca_file. The environment changes here apply to the caller from now on.
sandbox_start() {
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
  local ready
  exec {emu_fd}<"$sandbox/emu.out"
  read -r -t 20 ready <&"$emu_fd"
  field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/" <<<"$ready"; }
  auth_url=$(field auth_url) api_url=$(field api_url) ca_file=$(field ca_file)

  # No interactive login: the first get logs in through password_command,
  # the way an unattended script's daemon does.
  cat >"$XDG_CONFIG_HOME/fkq-cred/config.toml" <<TOML
[profiles.bench]
auth_url = "$auth_url"
api_url = "$api_url"
username = "alice@example.com"
ca_file = "$ca_file"
password_command = ["printf", "correct-horse-battery-staple\\\\n"]
TOML
}

# Starts fkq-credd and returns once it has logged its ready line; its log
# keeps being copied to a file so the pipe never fills.
start_daemon() {
  rm -f "$sandbox/daemon.err"
  mkfifo "$sandbox/daemon.err"
  local cmd=("${daemon_cmd[@]}")
  [ ${#cmd[@]} -gt 0 ] || cmd=("$bin/fkq-credd")
  "${cmd[@]}" 2>"$sandbox/daemon.err" &
  daemon_pid=$!
  local line
  exec {daemon_fd}<"$sandbox/daemon.err"
  while read -r -t 60 line <&"$daemon_fd"; do
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

# A git credential cache on a private socket in the sandbox, holding one
# credential; sets git_socket and git_request (a file for its stdin).
start_git_cache() {
  git_socket=$sandbox/git/socket
  git_request=$sandbox/git-get.txt
  printf 'protocol=https\nhost=bench.example\nusername=bench\npassword=not-a-secret\n\n' |
    git credential-cache --socket "$git_socket" --timeout 3600 store
  printf 'protocol=https\nhost=bench.example\n\n' >"$git_request"
  git credential-cache --socket "$git_socket" get <"$git_request" |
    grep -q '^password=not-a-secret$'
}

machine() {
  echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1), $(uname -sr)"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
}
