#!/usr/bin/env bash
# Multi-host fabric benchmark (issue 17, item 7): virtnet hosts joined by BGP EVPN (FRR) over
# VXLAN, each host a network namespace with its own virtnetd and its own FRR pathspace, all on
# one underlay switch (a bridge in a namespace of its own, host i at 10.200.0.<i+1> on under0),
# iBGP EVPN in a full mesh, one overlay network (VNI 4545, 10.78.0.0/24) defined on each host.
# Guests are namespaces with a veth on a host's bridge, leasing with busybox udhcpc (the MTU
# of DHCP option 26 applied). Three measurements in one run:
#
#   1. join   hosts A and B in the fabric (BGP up), a guest on A; per round, on B: `net-start`
#             of the overlay network, a new guest (a new MAC each round) attached to B's bridge
#             leasing with udhcpc, then pinging A's guest every 50 ms: the time from the
#             net-start command to the first reply, split into net-start returned, lease
#             obtained (guest attached and leased), first reply. Between rounds: net-destroy
#             on B, and wait until A's flood entry towards B is gone (also timed: withdraw).
#   2. move   three hosts; a guest on A, pinged every 50 ms by a guest on C, moves to B (its
#             port deleted on A, the same MAC and address on a new port of B, `busybox arping
#             -U`, as QEMU announces a migrated guest), back to A, to B again; then the next
#             guest (at most 3 moves each: FRR's duplicate detection, below): pings lost per
#             move (x 50 ms = the outage).
#   3. tput   TCP (iperf3) from a guest on B to the guest on A across the fabric (VXLAN over
#             the veth underlay), against two guest namespaces on one plain Linux bridge in
#             one namespace (no virtnet, no VXLAN) at the overlay's MTU and at 1500,
#             interleaved round by round (overlay, plain-mtu, plain-1500, ...).
# Throughout, an RTNL probe (a change under the kernel's machine-wide RTNL lock every 100 ms)
# logs each one slower than 100 ms, and each join round and move reports the longest that
# overlapped it: a stall of the shared machine is told from one of virtnet's.
#
#   bash bench/fabric.sh [--rounds N] [--secs S] [--out FILE] [--keep-logs DIR]
#                        [--join-rounds N] [--move-rounds N] [--tput-rounds N] [--log-level L]
#                                                   (as root; frr, iperf3, busybox installed)
#
# Defaults: 10 rounds of each, iperf3 runs of 3 s, bench/results/fabric-<UTC date>.json; a
# markdown table on stdout. --keep-logs DIR: copy each host's virtnetd log (at --log-level) and
# FRR logs to DIR/<host>/ at the end (also after a failure). --join-rounds, --move-rounds,
# --tput-rounds: one phase's rounds (default --rounds), e.g. many joins to catch a rare slow
# one; --log-level: virtnetd's (default info). Binaries from target/release if
# built there, else target/debug.
# Everything runs in namespaces this script creates; the trap stops the processes it started
# (by PID), the FRR daemons of its own pathspaces (pid files checked against
# /proc/<pid>/cmdline: that daemon with `-N <pathspace>`), deletes its namespaces and its
# temporary directory. The root network namespace and any other FRR are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=10 secs=3 out= keep= join_rounds= move_rounds= tput_rounds= log_level=info
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep-logs) keep=$2; shift 2 ;;
    --join-rounds) join_rounds=$2; shift 2 ;;
    --move-rounds) move_rounds=$2; shift 2 ;;
    --tput-rounds) tput_rounds=$2; shift 2 ;;
    --log-level) log_level=$2; shift 2 ;;
    *) echo "usage: bash bench/fabric.sh [--rounds N] [--secs S] [--out FILE] [--keep-logs DIR]" \
         "[--join-rounds N] [--move-rounds N] [--tput-rounds N] [--log-level L]" >&2; exit 2 ;;
  esac
done
out=${out:-bench/results/fabric-$(date -u +%Y-%m-%d).json}
join_rounds=${join_rounds:-$rounds} move_rounds=${move_rounds:-$rounds} tput_rounds=${tput_rounds:-$rounds}
for tool in iperf3 busybox /usr/lib/frr/bgpd /usr/lib/frr/zebra; do
  command -v "$tool" >/dev/null || { echo "fabric.sh: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
bindir=target/release
[ -x $bindir/virtnetd ] && [ -x $bindir/virtnet ] || bindir=target/debug
[ -x $bindir/virtnetd ] && [ -x $bindir/virtnet ] ||
  { echo "fabric.sh: cargo build --release -p virtnetd -p virtnet first" >&2; exit 1; }

tag=$$
pfx="vnfb$tag"
work=$(mktemp -d /tmp/vnbench-fabric.XXXXXX)
frr_root=/var/run/frr
namespaces=() pids=() pathspaces=()
# end_pid PID: SIGTERM, then SIGKILL after 5 s; only PIDs this script started or checked.
end_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
}
# is_frr_daemon PID DAEMON PATHSPACE: /proc/PID/cmdline is DAEMON run with `-N PATHSPACE`.
is_frr_daemon() {
  [ -r "/proc/$1/cmdline" ] || return 1
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys
pid, daemon, ps = sys.argv[1:4]
args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
ok = os.path.basename(args[0].decode(errors="replace")) == daemon and any(
    a == b"-N" and b == ps.encode() for a, b in zip(args, args[1:]))
sys.exit(0 if ok else 1)
PY
}
# end_frr PATHSPACE: virtnetd leaves its zebra and bgpd running when it stops (the next one
# adopts them), so the benchmark ends them itself.
end_frr() {
  local ps=$1 d pid
  for d in bgpd zebra; do
    pid=$(cat "$frr_root/$ps/$d.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && is_frr_daemon "$pid" "$d" "$ps"; then end_pid "$pid"; fi
  done
  rm -rf "${frr_root:?}/$ps"
}
cleanup() {
  local p n
  for p in "${pids[@]}"; do end_pid "$p"; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${pathspaces[@]}"; do end_frr "$p"; done
  for n in "${namespaces[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  if [ -n "$keep" ]; then
    for n in a b c; do
      mkdir -p "$keep/$n"
      cp -r "$work/$n/log" "$work/$n/run/frr" "$keep/$n/" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s%N; }
die() {
  echo "fabric.sh: $*" >&2
  local l
  for l in a b c; do
    if [ -f "$work/$l/log" ]; then echo "--- virtnetd $l:" >&2; tail -20 "$work/$l/log" >&2; fi
  done
  exit 1
}
newns() { ip netns add "$1"; namespaces+=("$1"); ip -n "$1" link set lo up; }
delns() {
  ip netns del "$1"
  local n kept=()
  for n in "${namespaces[@]}"; do [ "$n" = "$1" ] || kept+=("$n"); done
  namespaces=("${kept[@]}")
}
# spawn NS CMD...: runs CMD in namespace NS in the background; its PID in $spawned (and in the
# trap's list).
spawn() { local ns=$1; shift; ip netns exec "$ns" "$@" & spawned=$!; pids+=("$spawned"); }
# stop PID: SIGINT (ping prints its summary), wait, and drop it from the trap's list.
stop() {
  kill -INT "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local p kept=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}

cp $bindir/virtnetd $bindir/virtnet "$work/"
# udhcpc's event script: the lease's address and MTU (option 26) on the interface, and
# "ADDRESS MTU" in $LEASE_FILE.
cat >"$work/udhcpc.sh" <<'SH'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    echo "$ip ${mtu:-none}" > "$LEASE_FILE" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
SH
chmod +x "$work/udhcpc.sh"

# --- the fabric: switch, hosts a, b, c (10.200.0.1-3), virtnetd + FRR on each -------------
sw="$pfx-sw"
newns "$sw"
ip -n "$sw" link add sw type bridge
ip -n "$sw" link set sw up
hostns() { echo "$pfx-h$1"; }
under() { case $1 in a) echo 10.200.0.1 ;; b) echo 10.200.0.2 ;; c) echo 10.200.0.3 ;; esac; }
v() { local l=$1; shift; "$work/virtnet" -q --connect "$work/$l/run/virtnet.sock" "$@"; }
for l in a b c; do
  ns=$(hostns $l)
  newns "$ns"
  ip -n "$sw" link add "p$l" type veth peer name under0 netns "$ns"
  ip -n "$sw" link set "p$l" master sw up
  ip -n "$ns" addr add "$(under $l)/24" dev under0
  ip -n "$ns" link set under0 up
  mkdir -p "$work/$l/root"
  pathspaces+=("$pfx$l")
  spawn "$ns" "$work/virtnetd" --state-dir "$work/$l/state" --run-dir "$work/$l/run" \
    --libvirt-run-dir "$work/$l/libvirt" --host-config-root "$work/$l/root" \
    --frr-pathspace "$pfx$l" --log-level "$log_level" 2>"$work/$l/log"
  for _ in $(seq 200); do [ -S "$work/$l/run/virtnet.sock" ] && break; sleep 0.05; done
  [ -S "$work/$l/run/virtnet.sock" ] || die "virtnetd $l did not start"
done
for l in a b c; do
  peers=()
  for o in a b c; do [ $o = $l ] || peers+=(--peer "$(under $o)"); done
  v $l fabric-set --asn 65000 --router-id "$(under $l)" --underlay under0 "${peers[@]}" >/dev/null
done
# established L: every BGP session of host L is up.
established() {
  v "$1" fabric-status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s["peers"] and all(p["established"] for p in s["peers"]) else 1)' 2>/dev/null
}
# wait_for WHAT SECONDS CMD...: polls CMD every 0.1 s.
wait_for() {
  local what=$1 limit=$2 deadline; shift 2
  deadline=$(( $(now) + limit * 1000000000 ))
  until "$@"; do [ "$(now)" -lt "$deadline" ] || die "gave up waiting: $what"; sleep 0.1; done
}
t=$(now)
for l in a b c; do wait_for "BGP sessions of $l" 120 established $l; done
bgp_up_ms=$(( ($(now) - t) / 1000000 ))
echo "fabric: BGP up on three hosts ${bgp_up_ms} ms after the last fabric-set" >&2

vni=4545 vx=vxlan-4545 br=vnbr0
cat >"$work/net.xml" <<XML
<network xmlns:virtnet='urn:virtnet:network:1'>
  <name>fab</name>
  <bridge name='$br' stp='off'/>
  <ip address='10.78.0.1' prefix='24'><dhcp><range start='10.78.0.10' end='10.78.0.250'/></dhcp></ip>
  <virtnet:overlay type='evpn' vni='$vni' underlay='under0'/>
</network>
XML
for l in a b c; do v $l net-define "$work/net.xml" >/dev/null; done
# floods L DST: host L's VXLAN device floods to VTEP DST (zebra's entry from a type-3 route).
floods() { ip -n "$(hostns "$1")" -o link show $vx >/dev/null 2>&1 &&
  bridge -n "$(hostns "$1")" fdb show dev $vx | grep -q "^00:00:00:00:00:00 dst $2 "; }
no_flood() { ! floods "$@"; }
# guest NAME HOST PORT MAC: a namespace with eth0 (MAC) whose peer PORT is on HOST's bridge.
guest() {
  newns "$1"
  ip -n "$1" link add eth0 address "$4" type veth peer name "$3" netns "$(hostns "$2")"
  ip -n "$1" link set eth0 up
  ip -n "$(hostns "$2")" link set "$3" master $br up
}
# lease NAME: udhcpc in guest NAME until bound; sets $leased and $leased_mtu.
lease() {
  rm -f "$work/lease-$1"
  LEASE_FILE="$work/lease-$1" ip netns exec "$1" busybox udhcpc -f -q -n -t 20 -T 1 -A 1 \
    -i eth0 -s "$work/udhcpc.sh" >/dev/null 2>&1 || die "guest $1 got no lease"
  read -r leased leased_mtu <"$work/lease-$1"
}
reaches() { ip netns exec "$1" busybox ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
# first_reply NS ADDR: pings every 50 ms until the first reply; prints its time (ns) and seq.
first_reply() {
  { ip netns exec "$1" busybox ping -i 0.05 -w 60 "$2" 2>/dev/null || true; } |
    { while read -r line; do
        case $line in *"bytes from"*) echo "$(now) ${line#*seq=}" | cut -d' ' -f1,2; exit 0 ;; esac
      done; echo "none none"; }
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)
# The RTNL probe: every 100 ms, a change that takes the kernel's RTNL lock (the switch bridge's
# alias, in this script's own namespace); each one slower than 100 ms is logged as "start_ns ms".
# RTNL is one lock for the whole machine, all namespaces: the others' tests and builds
# contend for it, and a stall here explains a slow net-start or move (BENCHMARKS.md).
: >"$work/rtnl"
( while :; do
    t=$(now)
    ip -n "$sw" link set dev sw alias "rtnl-probe"
    d=$(( ($(now) - t) / 1000000 ))
    if [ "$d" -ge 100 ]; then echo "$t $d" >>"$work/rtnl"; fi
    sleep 0.1
  done ) &
pids+=($!)

# --- 1. join ---------------------------------------------------------------------------------
v a net-start fab >/dev/null
ga="$pfx-ga"
guest "$ga" a ga0 52:54:00:fb:0a:01
lease "$ga"; addr_a=$leased mtu=$leased_mtu
[ "$mtu" != none ] || die "the overlay's lease carries no MTU (DHCP option 26)"
echo "guest on A: $addr_a (MTU $mtu)" >&2
: >"$work/join"
for r in $(seq 1 "$join_rounds"); do
  gj="$pfx-gj$r" when=$(date -u +%T.%3N)
  # When each side's flood entry towards the other appears (type-3 routes), polled every 20 ms.
  rm -f "$work/flood-ab" "$work/flood-ba"
  ( until floods a "$(under b)"; do sleep 0.02; done; now >"$work/flood-ab" ) &
  poll_ab=$!; pids+=("$poll_ab")
  t0=$(now)
  ( until floods b "$(under a)"; do sleep 0.02; done; now >"$work/flood-ba" ) &
  poll_ba=$!; pids+=("$poll_ba")
  v b net-start fab >/dev/null
  t1=$(now)
  guest "$gj" b "gj$r" "$(printf '52:54:00:fb:0b:%02x' "$r")"
  lease "$gj"; addr_j=$leased
  t2=$(now)
  [ "$addr_j" != "$addr_a" ] || die "round $r: B's guest leased A's guest's address $addr_a"
  read -r t3 seq < <(first_reply "$gj" "$addr_a")
  [ "$t3" != none ] || die "round $r: no reply from A's guest in 60 s"
  wait_for "both flood entries" 60 test -s "$work/flood-ab" -a -s "$work/flood-ba"
  stop "$poll_ab"; stop "$poll_ba"
  fab=$(( ($(cat "$work/flood-ab") - t0) / 1000 )) fba=$(( ($(cat "$work/flood-ba") - t0) / 1000 ))
  delns "$gj"
  t4=$(now)
  v b net-destroy fab >/dev/null
  wait_for "A's flood entry to B gone" 60 no_flood a "$(under b)"
  t5=$(now)
  echo "$r $(( (t1 - t0) / 1000 )) $(( (t2 - t1) / 1000 )) $(( (t3 - t2) / 1000 )) $(( (t3 - t0) / 1000 )) $seq $(( (t5 - t4) / 1000 )) $fba $fab $when $t0 $t3" >>"$work/join"
  printf 'join %2d (%s UTC): net-start %5d ms, +lease %5d ms, +first reply %5d ms (seq %s) = %5d ms; floods B->A %d ms, A->B %d ms; withdrawn in %d ms\n' \
    "$r" "$when" $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 )) $(( (t3 - t2) / 1000000 )) "$seq" \
    $(( (t3 - t0) / 1000000 )) $((fba / 1000)) $((fab / 1000)) $(( (t5 - t4) / 1000000 )) >&2
  sleep 1
done

# --- 2. move ---------------------------------------------------------------------------------
v b net-start fab >/dev/null
v c net-start fab >/dev/null
for l in a b c; do
  for o in a b c; do [ $o = $l ] || wait_for "$l floods to $o" 120 floods $l "$(under $o)"; done
done
sleep 2
# FRR's zebra flags a MAC that moves more than 5 times in 180 s as a duplicate (its default
# `dup-addr-detection max-moves 5 time 180`, which virtnet's bgpd.conf keeps), and a flagged
# MAC's later moves can take seconds (seen in this benchmark's first runs: BENCHMARKS.md). A
# live-migrated guest moves far less often, so each mover guest moves at most
# $moves_per_guest times (A->B, B->A, A->B) and a new one (a new MAC, leased on A) takes over.
moves_per_guest=3
gc="$pfx-gc"
guest "$gc" c vc0 52:54:00:fb:0c:ff
lease "$gc"
: >"$work/move"
for r in $(seq 1 "$move_rounds"); do
  k=$(( (r - 1) / moves_per_guest ))
  if [ $(( (r - 1) % moves_per_guest )) = 0 ]; then
    [ "$k" = 0 ] || delns "$gm"
    gm="$pfx-gm$k" mac_m=$(printf '52:54:00:fb:0c:%02x' "$k")
    guest "$gm" a "vm$k" "$mac_m"
    lease "$gm"; addr_m=$leased mtu_m=$leased_mtu
    wait_for "C's guest reaches the guest on A" 60 reaches "$gc" "$addr_m"
    at=a
  fi
  to=$([ $at = a ] && echo b || echo a)
  spawn "$gc" busybox ping -i 0.05 "$addr_m" >"$work/move-$r.out" 2>&1
  ping_pid=$spawned
  sleep 1
  # The move: the port goes on the old host; the same MAC and address on a new port of the
  # new host; the guest announces itself.
  when=$(date -u +%T.%3N) tm0=$(now)
  ip -n "$(hostns $at)" link del "vm$k"
  ip -n "$(hostns $to)" link add "vm$k" type veth peer name eth0 netns "$gm"
  ip -n "$gm" link set eth0 address "$mac_m" mtu "$mtu_m"
  ip -n "$gm" addr add "$addr_m/24" dev eth0
  ip -n "$gm" link set eth0 up
  ip -n "$(hostns $to)" link set "vm$k" master $br up
  ip netns exec "$gm" busybox arping -U -c 3 -I eth0 "$addr_m" >/dev/null 2>&1 || true
  wait_for "C's guest reaches the guest moved to $to" 60 reaches "$gc" "$addr_m"
  tm1=$(now)
  sleep 1
  stop "$ping_pid"
  read -r sent recv < <(python3 - "$work/move-$r.out" <<'PY2'
import re, sys
m = re.search(r"(\d+) packets transmitted, (\d+) packets received", open(sys.argv[1]).read())
print(*(m.groups() if m else ("0", "0")))
PY2
)
  [ "$sent" -gt 20 ] || die "move $r: too few pings to judge ($sent)"
  echo "$r $at$to $sent $recv $k $when $tm0 $tm1" >>"$work/move"
  printf 'move %2d (%s UTC, guest %d): %s -> %s, %d of %d pings lost (%d ms)\n' "$r" "$when" "$k" "$at" "$to" \
    $((sent - recv)) "$sent" $(( (sent - recv) * 50 )) >&2
  at=$to
  sleep 2
done

# --- 3. throughput ---------------------------------------------------------------------------
gt="$pfx-gt"
guest "$gt" b gt0 52:54:00:fb:0d:02
lease "$gt"; mtu_t=$leased_mtu
wait_for "B's guest reaches A's guest" 60 reaches "$gt" "$addr_a"
spawn "$ga" iperf3 -s -B "$addr_a" >/dev/null 2>&1
# The plain bridge: namespace pl with br0 (the overlay's MTU) and br1 (1500); guests p1, p2
# each with eth0 on br0 (10.79.0.x) and eth1 on br1 (10.79.1.x).
pl="$pfx-pl" p1="$pfx-p1" p2="$pfx-p2"
newns "$pl"; newns "$p1"; newns "$p2"
ip -n "$pl" link add br0 mtu "$mtu_t" type bridge
ip -n "$pl" link add br1 type bridge
ip -n "$pl" link set br0 up; ip -n "$pl" link set br1 up
for i in 1 2; do
  g="$pfx-p$i"
  for b in 0 1; do
    m=$([ $b = 0 ] && echo "$mtu_t" || echo 1500)
    ip -n "$g" link add "eth$b" mtu "$m" type veth peer name "v$i$b" netns "$pl"
    ip -n "$pl" link set "v$i$b" mtu "$m" master "br$b" up
    ip -n "$g" addr add "10.79.$b.$i/24" dev "eth$b"
    ip -n "$g" link set "eth$b" up
  done
done
wait_for "plain guests reach each other" 30 reaches "$p1" 10.79.1.2
wait_for "plain guests reach each other" 30 reaches "$p1" 10.79.0.2
spawn "$p2" iperf3 -s >/dev/null 2>&1
sleep 0.5
iperf() {
  ip netns exec "$1" iperf3 -c "$2" -t "$secs" -J | python3 -c '
import json, sys
e = json.load(sys.stdin)["end"]
print(e["sum_received"]["bits_per_second"], e["sum_sent"].get("retransmits", 0))'
}
: >"$work/tput"
for r in $(seq 1 "$tput_rounds"); do
  for s in overlay plain-mtu plain-1500; do
    case $s in
      overlay) res=$(iperf "$gt" "$addr_a") ;;
      plain-mtu) res=$(iperf "$p1" 10.79.0.2) ;;
      plain-1500) res=$(iperf "$p1" 10.79.1.2) ;;
    esac
    echo "$r $s $res" >>"$work/tput"
    printf 'tput %2d %-10s %6.2f Gbit/s\n' "$r" "$s" "$(python3 -c "print(${res% *}/1e9)")" >&2
  done
done
load_end=$(load)

# --- results ---------------------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
frr_version=$(/usr/lib/frr/bgpd --version 2>/dev/null | head -1 || true)
python3 - "$work" "$out" "$join_rounds $move_rounds $tput_rounds" "$secs" "$mtu" "$load_start" "$load_end" "$bindir" "$bgp_up_ms" \
  "$frr_version" <<'PY'
import json, os, platform, statistics, sys
work, out, rounds, secs, mtu, load_start, load_end, bindir, bgp_up_ms, frr = sys.argv[1:11]
join_rounds, move_rounds, tput_rounds = map(int, rounds.split())

def pct(v, p):
    """Nearest-rank percentile (p99 of fewer than 100 samples is the largest)."""
    s = sorted(v)
    return s[max(0, -(-len(s) * p // 100) - 1)]

rows = [l.split() for l in open(f"{work}/join")]
join = {k: [int(r[i]) / 1000 for r in rows] for i, k in
        ((1, "net_start_ms"), (2, "lease_ms"), (3, "first_reply_ms"), (4, "total_ms"), (6, "withdraw_ms"),
         (7, "flood_b_to_a_ms"), (8, "flood_a_to_b_ms"))}
join["first_reply_seq"] = [int(r[5]) for r in rows]
join["utc"] = [r[9] for r in rows]
stalls = [tuple(map(int, l.split())) for l in open(f"{work}/rtnl")]

def stall_ms(t0, t1):
    """The longest RTNL probe (>= 100 ms) that overlapped [t0, t1] (epoch ns); 0: none."""
    return max((d for t, d in stalls if t < t1 and t + d * 1000000 > t0), default=0)

join["rtnl_stall_ms"] = [stall_ms(int(r[10]), int(r[11])) for r in rows]
moves = [l.split() for l in open(f"{work}/move")]
lost = [int(m[2]) - int(m[3]) for m in moves]
tput = {}
retr = {}
for l in open(f"{work}/tput"):
    r, s, bps, rt = l.split()
    tput.setdefault(s, []).append(float(bps))
    retr.setdefault(s, []).append(int(rt))
med = {s: statistics.median(v) for s, v in tput.items()}
paired = lambda a, b: statistics.median(x / y for x, y in zip(tput[a], tput[b]))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
report = {
    "rounds": {"join": join_rounds, "move": move_rounds, "throughput": tput_rounds}, "iperf_seconds": int(secs), "overlay_mtu": int(mtu), "binaries": bindir,
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "frr": frr,
                "loadavg_start": load_start, "loadavg_end": load_end,
                "shared": "shared with another helper and the coordinator, who build and test at the same time"},
    "bgp_up_ms_three_hosts": int(bgp_up_ms),
    "rtnl_probe": {"slow_probes": len(stalls), "max_ms": max((d for _, d in stalls), default=0),
                   "samples": stalls},
    "join": {"samples": join,
             **{f"{k}_p50": pct(v, 50) for k, v in join.items() if k.endswith("_ms")},
             **{f"{k}_p99": pct(v, 99) for k, v in join.items() if k.endswith("_ms")}},
    "move": {"samples": [{"move": m[1], "sent": int(m[2]), "received": int(m[3]), "guest": int(m[4]),
                          "utc": m[5], "rtnl_stall_ms": stall_ms(int(m[6]), int(m[7]))} for m in moves],
             "moves_per_guest": 3,
             "lost": lost, "lost_p50": pct(lost, 50), "lost_p99": pct(lost, 99),
             "lost_max": max(lost), "ms_p50": pct(lost, 50) * 50, "ms_p99": pct(lost, 99) * 50},
    "throughput": {"samples_bps": tput, "retransmits": retr, "median_bps": med,
                   "paired_overlay_vs_plain_mtu": paired("overlay", "plain-mtu"),
                   "paired_overlay_vs_plain_1500": paired("overlay", "plain-1500"),
                   "paired_plain_mtu_vs_plain_1500": paired("plain-mtu", "plain-1500")},
}
json.dump(report, open(out, "w"), indent=1)
j = report["join"]
print(f"Machine: {cpu}, {os.cpu_count()} cores, kernel {platform.release()}, {frr}; "
      f"load average {load_start} at start, {load_end} at end (shared machine).\n")
print(f"| join: B's net-start → B's new guest reaches A's guest ({join_rounds} rounds) | p50 ms | p99 ms |")
print("|---|---|---|")
for k, name in (("net_start_ms", "net-start returned"), ("lease_ms", "guest attached + DHCP lease"),
                ("first_reply_ms", "lease → first ping reply (50 ms pings)"), ("total_ms", "**total**"),
                ("flood_b_to_a_ms", "net-start → B floods to A (A's type-3 route installed on B)"),
                ("flood_a_to_b_ms", "net-start → A floods to B (B's type-3 route installed on A)"),
                ("withdraw_ms", "net-destroy → A's flood entry to B gone")):
    print(f"| {name} | {j[k + '_p50']:.0f} | {j[k + '_p99']:.0f} |")
print(f"\nfirst reply at ping seq {j['samples']['first_reply_seq']}; longest RTNL probe (≥ 100 ms) "
      f"during each round, ms: {j['samples']['rtnl_stall_ms']}\n")
m = report["move"]
print(f"| move A↔B, pinged from C every 50 ms ({move_rounds} moves, ≤ 3 per guest) | p50 | p99 | max |")
print("|---|---|---|---|")
print(f"| pings lost | {m['lost_p50']} | {m['lost_p99']} | {m['lost_max']} |")
print(f"| ≈ ms | {m['ms_p50']} | {m['ms_p99']} | {m['lost_max'] * 50} |")
print(f"\nlost per move: {lost}; longest RTNL probe during each move, ms: "
      f"{[x['rtnl_stall_ms'] for x in m['samples']]}\n")
r = report["rtnl_probe"]
print(f"RTNL probe (every 100 ms during the whole run): {r['slow_probes']} took ≥ 100 ms, the longest "
      f"{r['max_ms']} ms.\n")
print(f"| TCP guest→guest, iperf3 {secs} s × {tput_rounds}, interleaved | median Gbit/s | samples (Gbit/s) |")
print("|---|---|---|")
for s, name in (("overlay", f"across two hosts: VXLAN/EVPN, MTU {mtu}"),
                ("plain-mtu", f"one plain bridge, MTU {mtu}"), ("plain-1500", "one plain bridge, MTU 1500")):
    print(f"| {name} | {med[s]/1e9:.2f} | {', '.join(f'{x/1e9:.2f}' for x in tput[s])} |")
t = report["throughput"]
print(f"\nmedian of per-round ratios: overlay / plain (same MTU) {t['paired_overlay_vs_plain_mtu']*100:.0f} %, "
      f"overlay / plain 1500 {t['paired_overlay_vs_plain_1500']*100:.0f} %, "
      f"plain {mtu} / plain 1500 {t['paired_plain_mtu_vs_plain_1500']*100:.0f} %")
PY
echo "results: $out" >&2
