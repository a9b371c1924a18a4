#!/usr/bin/env bash
# Guest -> upstream TCP throughput through NAT with per-port anti-spoofing on, against the same
# path with no firewall rules at all (and, for reference, NAT without anti-spoofing), measured
# with iperf3 in one run, the three setups interleaved round by round (A B C A B C ...) because
# the machine is shared and noisy.
#
#   A antispoof  virtnetd's whole firewall: `inet virtnet` (forward filter, masquerade) and
#                `bridge virtnet_ports` with the guest's port guarded;
#   B norules    `nft flush ruleset`: nothing but routing (upstream routes the guest subnet
#                back to the host instead of NAT);
#   C nat-only   virtnetd's `inet virtnet` alone (the anti-spoofing table deleted).
#
# Topology (all in namespaces this script creates; the trap removes them, stops the daemon it
# started by PID, and deletes its temporary directory): guest --veth-- [host: virtnetd, bridge
# virbr0 of a NAT network] --veth-- upstream (iperf3 -s on 203.0.113.1). The guest is a veth, so
# the daemon does not make its port: the script adds the guest's elements (guarded port, MAC,
# leased address; the drop counter appears with a first dropped frame) to virtnetd's own table
# with `nft add element`, exactly the
# elements the daemon adds for a tap port (keyed by interface name, so each packet meets the
# same rules and set lookups).
#
#   bash bench/antispoof.sh [ROUNDS] [SECONDS] [OUT.json]    (as root; iperf3 installed)
#
# Defaults: 5 rounds of 5 s each, bench/results/antispoof-<UTC date>.json. Binaries are taken
# from target/release if built there, else target/debug (the data path is the kernel's).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-5}
out=${3:-bench/results/antispoof-$(date -u +%Y-%m-%d).json}
command -v iperf3 >/dev/null || { echo "antispoof.sh: apt-get install -y iperf3" >&2; exit 1; }
bindir=target/release
[ -x $bindir/virtnetd ] && [ -x $bindir/virtnet ] || bindir=target/debug
[ -x $bindir/virtnetd ] && [ -x $bindir/virtnet ] ||
  { echo "antispoof.sh: cargo build -p virtnetd -p virtnet first" >&2; exit 1; }

tag=$$
host="vnbench-sp-host-$tag" up="vnbench-sp-up-$tag" guest="vnbench-sp-guest-$tag"
work=$(mktemp -d /tmp/vnbench-spoof.XXXXXX)
daemon= server=
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon" || true; fi
  for n in "$guest" "$up" "$host"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp $bindir/virtnetd $bindir/virtnet "$work/"
for n in "$host" "$up" "$guest"; do ip netns add "$n"; ip -n "$n" link set lo up; done
H() { ip netns exec "$host" "$@"; }
U() { ip netns exec "$up" "$@"; }
G() { ip netns exec "$guest" "$@"; }

# Uplink: host 203.0.113.2 <-> upstream 203.0.113.1.
ip -n "$up" link add up0 type veth peer name uplink0 netns "$host"
ip -n "$up" addr add 203.0.113.1/24 dev up0; ip -n "$up" link set up0 up
ip -n "$host" addr add 203.0.113.2/24 dev uplink0; ip -n "$host" link set uplink0 up
ip -n "$host" route add default via 203.0.113.1
# Without NAT (setup B) the replies to the guest subnet come back through the host.
ip -n "$up" route add 192.168.150.0/24 via 203.0.113.2

ip netns exec "$host" "$work/virtnetd" --state-dir "$work/s" --run-dir "$work/r" --libvirt-run-dir "$work/r/libvirt" \
  --log-level warn 2>"$work/log" &
daemon=$!
for _ in $(seq 200); do [ -S "$work/r/virtnet.sock" ] && break; sleep 0.05; done
[ -S "$work/r/virtnet.sock" ] || { cat "$work/log" >&2; exit 1; }
v() { H "$work/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }
cat >"$work/net.xml" <<'XML'
<network><name>bench</name><forward mode='nat'/><bridge name='virbr0' stp='off'/>
<ip address='192.168.150.1' netmask='255.255.255.0'/></network>
XML
v net-define "$work/net.xml" >/dev/null
v net-start bench >/dev/null

# The guest: a veth whose host end vg0 is a port of virbr0.
mac=52:54:00:be:ec:01
ip -n "$guest" link add eth0 type veth peer name vg0 netns "$host"
ip -n "$guest" link set eth0 address $mac up
G ip addr add 192.168.150.10/24 dev eth0
G ip route add default via 192.168.150.1
H ip link set vg0 master virbr0 up
# The anti-spoofing table exists while some port is guarded: a tap port of another guest (no
# QEMU on it, so no traffic) keeps it, as a host with guests has it.
v attach-interface keeper network bench --mac 52:54:00:be:ec:02 >/dev/null
spoof_elements="add element bridge virtnet_ports guarded { \"vg0\" }
add element bridge virtnet_ports macs { \"vg0\" . $mac }
add element bridge virtnet_ports addrs4 { \"vg0\" . 192.168.150.10 }"
H nft -f - <<<"$spoof_elements"
H nft list ruleset >"$work/antispoof.nft"
H nft list table inet virtnet >"$work/nat.nft"
G busybox ping -c 1 -W 2 203.0.113.1 >/dev/null || { echo "antispoof.sh: guest cannot reach upstream" >&2; exit 1; }


setup() {
  H nft flush ruleset
  case $1 in
    antispoof) H nft -f "$work/antispoof.nft" ;;
    norules) ;;
    nat-only) H nft -f "$work/nat.nft" ;;
  esac
}
# One iperf3 run's received bits/s, against a server started for that run alone (`-1`): a
# server left busy by a failed run (its data connection lost when the rules changed under it)
# then cannot refuse the next one. A failed or empty run is tried again, up to three times.
run() {
  local try out bps
  for try in 1 2 3; do
    ip netns exec "$up" iperf3 -s -1 -B 203.0.113.1 >/dev/null 2>&1 &
    server=$!
    sleep 0.3
    out=$(G timeout $((secs + 10)) iperf3 -c 203.0.113.1 -t "$secs" -J || true)
    if kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; fi
    wait "$server" 2>/dev/null || true
    server=
    bps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["end"]["sum_received"]["bits_per_second"])' \
      "$out" 2>/dev/null || true)
    if [ -n "$bps" ] && python3 -c "import sys; sys.exit(0 if float('$bps') > 0 else 1)"; then
      echo "$bps"
      return 0
    fi
    echo "antispoof.sh: iperf3 run failed (try $try): $(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("error"))' "$out" 2>/dev/null)" >&2
    sleep 1
  done
  return 1
}

: >"$work/samples"
for r in $(seq 1 "$rounds"); do
  for s in antispoof norules nat-only; do
    setup $s
    bps=$(run)
    echo "$s $bps" >>"$work/samples"
    printf 'round %d %-9s %8.2f Gbit/s\n' "$r" "$s" "$(python3 -c "print($bps/1e9)")" >&2
  done
done
setup antispoof
# No element: the guest never had a frame dropped.
drops=$(H nft list set bridge virtnet_ports drops | grep -o 'packets [0-9]*' | head -1 || true)
drops=${drops:-packets 0}

mkdir -p "$(dirname "$out")"
python3 - "$work/samples" "$out" "$rounds" "$secs" "$drops" <<'PY'
import json, statistics, sys
samples, out, rounds, secs, drops = sys.argv[1:6]
by = {}
for line in open(samples):
    s, bps = line.split()
    by.setdefault(s, []).append(float(bps))
med = {s: statistics.median(v) for s, v in by.items()}
# Paired within each round (the three runs of a round are seconds apart): the median of the
# per-round ratios is steadier on a shared machine than the ratio of the medians.
paired = lambda a, b: statistics.median(x / y for x, y in zip(by[a], by[b]))
report = {"rounds": int(rounds), "seconds": int(secs), "samples_bps": by, "median_bps": med,
          "antispoof_vs_norules": med["antispoof"] / med["norules"],
          "antispoof_vs_nat_only": med["antispoof"] / med["nat-only"],
          "paired_antispoof_vs_norules": paired("antispoof", "norules"),
          "paired_antispoof_vs_nat_only": paired("antispoof", "nat-only"),
          "paired_nat_only_vs_norules": paired("nat-only", "norules"),
          "guest_drops_after_run": drops}
json.dump(report, open(out, "w"), indent=1)
print("| setup | median Gbit/s | samples (Gbit/s) |")
print("|---|---|---|")
for s in ("antispoof", "nat-only", "norules"):
    print(f"| {s} | {med[s]/1e9:.2f} | {', '.join(f'{x/1e9:.2f}' for x in by[s])} |")
print(f"\nratio of medians: anti-spoofing + NAT / no rules {report['antispoof_vs_norules']*100:.1f} %, "
      f"/ NAT alone {report['antispoof_vs_nat_only']*100:.1f} %")
print(f"median of per-round ratios: anti-spoofing + NAT / no rules "
      f"{report['paired_antispoof_vs_norules']*100:.1f} %, / NAT alone "
      f"{report['paired_antispoof_vs_nat_only']*100:.1f} %; NAT alone / no rules "
      f"{report['paired_nat_only_vs_norules']*100:.1f} %; guest frames dropped: {drops}")
PY
