#!/usr/bin/env bash
# The README's test command: builds the binaries the end-to-end tests run,
# then runs every test. The provider = "cognito" tests talk to moto's
# Cognito server (PyPI: moto[server,cognitoidp]), a real third-party peer
# on loopback; it is installed into target/moto-venv on first use and put
# on PATH. The moto tests fail, rather than skip, without it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$PWD/target/moto-venv
moto_ready() {
  [ -x "$venv/bin/moto_server" ] &&
    "$venv/bin/python" -c 'import moto.server, moto.cognitoidp.models' \
      >/dev/null 2>&1
}
if ! moto_ready; then
  echo "== installing moto[server,cognitoidp] into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'moto[server,cognitoidp]>=5,<6'
  moto_ready || { echo "moto did not install into $venv" >&2; exit 1; }
fi
export PATH="$venv/bin:$PATH"
export FKQ_MOTO_SERVER="$venv/bin/moto_server"

cargo build --workspace
cargo test --workspace
