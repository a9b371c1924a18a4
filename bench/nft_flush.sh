#!/usr/bin/env bash
# How long a NAT network is without virtnet's nftables table after someone else deletes it:
# `nft flush ruleset` (as an nftables service restart or a firewall reload does) N times, each
# time polling `nft list table inet virtnet` until the table is back (the figure includes the
# polling nft's own start-up, ~5-10 ms). virtnetd runs in a network namespace this script
# creates and removes; the root namespace is never touched.
#
#   bash bench/nft_flush.sh [N]        (needs: cargo build --release -p virtnetd -p virtnet)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
[ "$(id -u)" = 0 ] || { echo "nft_flush: run as root" >&2; exit 1; }
ns=vnflush-$$
work=$(mktemp -d /tmp/vnbench-flush.XXXXXX)
daemon=
cleanup() {
  set +e
  if [ -n "$daemon" ]; then kill -TERM "$daemon"; wait "$daemon"; fi
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cp target/release/virtnetd target/release/virtnet "$work/"
ip netns add "$ns"; ip -n "$ns" link set lo up
ip netns exec "$ns" "$work/virtnetd" --state-dir "$work/s" --run-dir "$work/r" \
  --libvirt-run-dir "$work/r/libvirt" 2>"$work/log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/r/virtnet.sock" ] && break; sleep 0.05; done
v() { ip netns exec "$ns" "$work/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }
echo "<network><name>a</name><forward mode='nat'/><bridge name='vnfl0'/><ip address='10.9.0.1' \
netmask='255.255.255.0'><dhcp><range start='10.9.0.10' end='10.9.0.99'/></dhcp></ip></network>" >"$work/a.xml"
v net-define "$work/a.xml" >/dev/null
v net-start a >/dev/null
py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3
ip netns exec "$ns" "$py" - "$n" <<'PY'
import subprocess, sys, time
res = []
for _ in range(int(sys.argv[1])):
    subprocess.run(["nft", "flush", "ruleset"], check=True)
    t0 = time.perf_counter()
    while subprocess.run(["nft", "list", "table", "inet", "virtnet"],
                         capture_output=True).returncode != 0:
        pass
    res.append((time.perf_counter() - t0) * 1e3)
    time.sleep(0.1)
res.sort()
print("flush -> table back, ms: p50 %.1f, p99/max %.1f (n=%d)" % (res[len(res) // 2], res[-1], len(res)))
PY
