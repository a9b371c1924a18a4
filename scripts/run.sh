#!/usr/bin/env bash
# virtnet's main job, for now: build, start virtnetd on a private state and run directory,
# define the default NAT network and show it the way virsh would. Everything it makes lives in
# a temporary directory that is removed at the end; nothing touches the host's network.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

cargo build --release --bins -q
bin=target/release
work=$(mktemp -d /tmp/virtnet-demo.XXXXXX)
daemon=
cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon"
    wait "$daemon" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/virtnetd" --state-dir "$work/state" --run-dir "$work/run" 2>"$work/virtnetd.log" &
daemon=$!
export VIRTNET_SOCKET="$work/run/virtnet.sock"
for _ in $(seq 100); do [ -S "$VIRTNET_SOCKET" ] && break; sleep 0.05; done
[ -S "$VIRTNET_SOCKET" ] || { cat "$work/virtnetd.log" >&2; exit 1; }

run() { echo "\$ virtnet $*"; "$bin/virtnet" "$@"; }
run net-define examples/default.xml
run net-autostart default
run net-list --all
run net-info default
run net-dumpxml default
