#!/usr/bin/env bash
# virtnet's start and destroy as the daemon itself times them (its request log's elapsed_us,
# from the request's arrival to its answer: no CLI spawn, no socket connect), with 1 and with
# 500 networks active, next to the kernel's own bridge deletion measured in the same run.
# Everything happens in a network namespace this script creates and removes.
#
#   bash bench/daemon_side.sh [CYCLES]     (as root, after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-30}
bin=target/release
ns="vnbench-ds-$$"
work=$(mktemp -d /tmp/vnbench-ds.XXXXXX)
daemon=
cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon" || true; fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin/virtnetd" --state-dir "$work/s" --run-dir "$work/r" --libvirt-run-dir "$work/r/libvirt" --log-level "${VIRTNET_BENCH_LOG:-info}" 2>"$work/log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/r/virtnet.sock" ] && break; sleep 0.05; done
v() { "$bin/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }
net() { # name index
  local i=$2
  echo "<network><name>$1</name><forward mode='nat'/><bridge name='vb$i' stp='on' delay='0'/><ip address='10.$((i / 250)).$((i % 250)).1' prefix='24'><dhcp><range start='10.$((i / 250)).$((i % 250)).2' end='10.$((i / 250)).$((i % 250)).254'/></dhcp></ip></network>" >"$work/n.xml"
  v net-define "$work/n.xml"
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "-"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
cycle() { # name -> appends to the log
  for _ in $(seq "$cycles"); do v net-destroy "$1"; v net-start "$1"; done
}
elapsed() { # path-regex, last N lines -> median ms
  grep "path=$1" "$work/log" | grep answered | tail -n "$cycles" |
    sed -E 's/.*elapsed_us=([0-9]+).*/\1/' | awk '{print $1/1000}' | median
}
net n1 1
v net-start n1
cycle n1
s1=$(elapsed '/v1/networks/n1/start')
d1=$(elapsed '/v1/destroy')
for i in $(seq 2 500); do net "n$i" "$i"; v net-start "n$i"; done
cycle n500
s500=$(elapsed '/v1/networks/n500/start')
d500=$(elapsed '/v1/destroy')
# The kernel's own deletion of a bridge that is up with an address, in the same namespace.
kernel=$(ip netns exec "$ns" python3 bench/nlbench.py --cycles "$cycles" |
  python3 -c 'import json,statistics,sys; d=json.load(sys.stdin); print(round(statistics.median(d["configured"]["del"])*1e3,1))')
echo "| | 1 network | 500 networks |"
echo "|---|---|---|"
echo "| net-start, daemon side, median ms | $s1 | $s500 |"
echo "| net-destroy, daemon side, median ms | $d1 | $d500 |"
echo "| kernel: RTM_DELLINK of a bridge up with an address, in process (bench/nlbench.py), median ms | | $kernel |"
# With VIRTNET_BENCH_LOG=virtnetd=debug: how the last destroys split between bridges and firewall.
grep -oE "(park_us=[0-9]* firewall_us=[0-9]*|start timings.*|links=[0-9]+ elapsed_us=[0-9]+)" "$work/log" | tail -n 12 || true
exit 0
