#!/usr/bin/env bash
# virtnet's main job: build, start virtnetd on a private state and run directory inside a
# network namespace of its own (standing for a KVM host), define and start the default NAT
# network and show it the way virsh and brctl would. Everything it makes lives in a temporary
# directory and a namespace that are removed at the end; nothing touches the host's network.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

cargo build --release --bins -q
bin=target/release
work=$(mktemp -d /tmp/virtnet-demo.XXXXXX)
ns="virtnet-demo-$$"
daemon=
cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon"
    wait "$daemon" || true
  fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin/virtnetd" --state-dir "$work/state" --run-dir "$work/run" 2>"$work/virtnetd.log" &
daemon=$!
export VIRTNET_SOCKET="$work/run/virtnet.sock"
for _ in $(seq 100); do [ -S "$VIRTNET_SOCKET" ] && break; sleep 0.05; done
[ -S "$VIRTNET_SOCKET" ] || { cat "$work/virtnetd.log" >&2; exit 1; }

run() { echo "\$ virtnet $*"; "$bin/virtnet" "$@"; }
run net-define examples/default.xml
run net-autostart default
run net-list --all
run net-start default
run net-info default
run iface-bridges
run net-dumpxml default
echo "\$ ip -n $ns -br addr show virbr0"; ip -n "$ns" -br addr show virbr0
echo "\$ ip netns exec $ns nft list set inet virtnet nat_nets4"
ip netns exec "$ns" nft list set inet virtnet nat_nets4
run net-destroy default
run net-list --all
