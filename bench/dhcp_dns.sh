#!/usr/bin/env bash
# Issue 4's benchmarks: virtnetd's embedded DHCPv4 and DNS servers side by side with dnsmasq as
# libvirt 9 runs it (libvirtd's network driver starts dnsmasq; see bench/libvirtd-inner.sh).
#
#   bash bench/dhcp_dns.sh [--no-build] [--impl both|libvirt|virtnet] [--samples N]
#        [--iso-samples N] [--iso-gap-s S] [--ports N] [--per-port N] [--rounds N] [--dns-seconds S]
#        [--networks N] [--dns-passes N] [--only all|dns] [--out FILE]
#
# --only dns runs only what the DNS phase needs: the daemons, the bench network, the DNS client
# port and the back-to-back latency clients (whose DHCP host names are among the A queries);
# no spaced samples, no leases/s, no memory phase. --dns-passes N (default 2) runs dnsperf N
# times per side and query type, alternating the order (ABBA...).
#
# Measures, for each implementation, in the same run (interleaved where it matters):
#   1. DISCOVER->ACK latency of a never-seen MAC (bench/dhcpload --mode latency, one client at a
#      time, back to back), then for isolated new guests (spaced samples: dhcpload and the wall
#      clock of `busybox udhcpc -q -n` for a fresh MAC);
#   2. leases per second with many clients at once (bench/dhcpload --mode throughput, spread
#      over many bridge ports);
#   3. DNS queries per second with dnsperf for local names (A) and their PTR records, and the
#      server's CPU time per query (utime+stime of the server processes from /proc/PID/stat
#      around each dnsperf run: queries per CPU-second, meaningful even when dnsperf, on the
#      same 2 cores, is what caps queries per second);
#   4. memory per network: RSS and PSS growth when N more networks with DHCP+DNS are started.
#
# Everything runs in network namespaces this script creates: one per daemon (libvirtd with its
# dnsmasq processes; virtnetd), each in its own PID and mount namespace as in bench/netbench.py,
# and one "guest" namespace per daemon whose veth pairs are plugged into the daemon's bridge.
# The root network namespace is never touched. Everything is removed at exit (trap), Ctrl-C
# included; processes are stopped by PID. Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

build=1
impl=both
samples=32
udhcpc_samples=8
iso_gap=6
ports=64
per_port=4
rounds=3
dns_seconds=10
networks=50
dns_passes=2
only=all
out=bench/results/dhcp-dns-$(date -u +%Y-%m-%d).json
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --impl) impl=$2; shift ;;
    --samples) samples=$2; shift ;;
    --udhcpc-samples|--iso-samples) udhcpc_samples=$2; shift ;;
    --iso-gap-s) iso_gap=$2; shift ;;
    --ports) ports=$2; shift ;;
    --per-port) per_port=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --dns-seconds) dns_seconds=$2; shift ;;
    --networks) networks=$2; shift ;;
    --dns-passes) dns_passes=$2; shift ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n 2,27p "$0"; exit 0 ;;
    *) echo "dhcp_dns: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command_line="bash bench/dhcp_dns.sh $*"
case $only in
  all) ;;
  dns) udhcpc_samples=0; ports=0 ;;   # no spaced samples, no throughput ports
  *) echo "dhcp_dns: --only is all or dns" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "dhcp_dns: run as root" >&2; exit 1; }

log() { echo "dhcp_dns: $*" >&2; }

# --- tools ------------------------------------------------------------------------------------
bash bench/setup.sh
if ! command -v dnsperf >/dev/null; then
  log "installing dnsperf"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsperf >/dev/null
fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q --manifest-path bench/dhcpload/Cargo.toml
DHCPLOAD=$REPO/bench/dhcpload/target/release/dhcpload
BIN=$REPO/target/release
build_note=""
if [ "$build" = 1 ] && [ "$impl" != libvirt ]; then
  if ! cargo build --release -q -p virtnetd -p virtnet 2>"/tmp/dhcp_dns-build.$$.log"; then
    build_note="cargo build of virtnetd failed; using target/release as it is"
    log "$build_note"; tail -5 "/tmp/dhcp_dns-build.$$.log" >&2
  fi
  rm -f "/tmp/dhcp_dns-build.$$.log"
fi

impls=()
case $impl in
  both) impls=(libvirt virtnet) ;;
  libvirt|virtnet) impls=("$impl") ;;
  *) echo "dhcp_dns: --impl is both, libvirt or virtnet" >&2; exit 2 ;;
esac

# --- cleanup ----------------------------------------------------------------------------------
T=$(mktemp -d /tmp/vndhcp.XXXXXX)
R=$T/res
mkdir -p "$R"
declare -A DPID=()    # impl -> PID of `ip netns exec ... unshare` (unshare after the exec)
NSLIST=()
cleanup() {
  set +e
  local k pid init
  for k in "${!DPID[@]}"; do
    pid=${DPID[$k]}
    if kill -0 "$pid" 2>/dev/null; then
      # unshare's only child is PID 1 of the daemon's PID namespace (bench/pid1.sh): TERM it,
      # and the kernel kills the rest of that namespace (dnsmasq included) with it.
      for init in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do kill -TERM "$init" 2>/dev/null; done
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null; then
        for init in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do kill -KILL "$init" 2>/dev/null; done
        kill -KILL "$pid" 2>/dev/null
      fi
      wait "$pid" 2>/dev/null
    fi
  done
  for k in "${NSLIST[@]}"; do ip netns del "$k" 2>/dev/null; done
  # libvirt's overlays and tmpfs lived in its private mount namespace and went with it.
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ns_add() { ip netns add "$1"; NSLIST+=("$1"); ip -n "$1" link set lo up; }

UNSHARE=(unshare --mount --pid --fork --kill-child --mount-proc --propagation private)
declare -A NS=() GNS=() CLI_URI=()
cli() { # impl args...
  local k=$1; shift
  if [ "$k" = libvirt ]; then virsh -q -c "${CLI_URI[libvirt]}" "$@"
  else "$BIN/virtnet" -q --connect "${CLI_URI[virtnet]}" "$@"; fi
}

start_daemon() { # impl
  local k=$1 d=$T/$1
  mkdir -p "$d"
  NS[$k]=vndhcp-${k:0:2}-$$
  ns_add "${NS[$k]}"
  if [ "$k" = libvirt ]; then
    setsid ip netns exec "${NS[$k]}" "${UNSHARE[@]}" bash bench/libvirtd-inner.sh "$d" \
      </dev/null >"$d/daemon.log" 2>&1 &
    CLI_URI[$k]="network:///system?socket=$d/sock/libvirt-sock"
  else
    printf 'nameserver 192.0.2.53\n' >"$d/resolv.conf"   # unreachable (TEST-NET-1): no query here is forwarded
    setsid ip netns exec "${NS[$k]}" "${UNSHARE[@]}" bash bench/pid1.sh "$BIN/virtnetd" \
      --state-dir "$d/state" --run-dir "$d/run" --libvirt-run-dir "$d/run/libvirt" --log-level warn --resolv-conf "$d/resolv.conf" \
      </dev/null >"$d/daemon.log" 2>&1 &
    CLI_URI[$k]=$d/run/virtnet.sock
  fi
  DPID[$k]=$!
  for _ in $(seq 300); do
    cli "$k" net-list --all >/dev/null 2>&1 && return 0
    kill -0 "${DPID[$k]}" 2>/dev/null || break
    sleep 0.1
  done
  log "$k did not start:"; tail -20 "$d/daemon.log" >&2
  return 1
}

# --- networks ---------------------------------------------------------------------------------
# The benchmark network: NAT, bridge vbr0, 10.200.0.0/16 (a /24 cannot hold 256 clients at once),
# DHCP range 10.200.1.1-10.200.254.254, domain bench.test (local only), 200 static DNS hosts
# h0..h199 at 10.200.0.10...; the same XML for both implementations.
NHOSTS=200
bench_xml() {
  echo "<network>"
  echo "  <name>bench</name>"
  echo "  <forward mode='nat'/>"
  echo "  <bridge name='vbr0' stp='on' delay='0'/>"
  echo "  <domain name='bench.test' localOnly='yes'/>"
  echo "  <dns>"
  for i in $(seq 0 $((NHOSTS - 1))); do
    echo "    <host ip='10.200.$(( (10 + i) / 256 )).$(( (10 + i) % 256 ))'><hostname>h$i</hostname></host>"
  done
  echo "  </dns>"
  echo "  <ip address='10.200.0.1' netmask='255.255.0.0'>"
  echo "    <dhcp><range start='10.200.1.1' end='10.200.254.254'/></dhcp>"
  echo "  </ip>"
  echo "</network>"
}
# Network i of the memory phase: shaped like libvirt's default network (/24, range .2-.254)
# plus a domain and two DNS hosts, so that both DHCP and DNS run for it.
mem_xml() { # i
  local i=$1
  cat <<EOX
<network>
  <name>mem$i</name>
  <forward mode='nat'/>
  <bridge name='vbm$i' stp='on' delay='0'/>
  <domain name='mem$i.test' localOnly='yes'/>
  <dns>
    <host ip='10.210.$i.10'><hostname>a</hostname></host>
    <host ip='10.210.$i.11'><hostname>b</hostname></host>
  </dns>
  <ip address='10.210.$i.1' netmask='255.255.255.0'>
    <dhcp><range start='10.210.$i.2' end='10.210.$i.254'/></dhcp>
  </ip>
</network>
EOX
}

# Guest namespace for impl k: veth pairs whose far ends are ports of the daemon's vbr0.
#   l0..           dhcpload latency samples (one port each)
#   u0..           udhcpc samples (one port each)
#   t0..t(2P-1)    dhcpload throughput clients (per_port MACs each); pass 1 uses t0..t(P-1),
#                  pass 2 tP..t(2P-1), so that what pass 1 left on a port (leases, offers) is
#                  not counted against pass 2
#   dq             the DNS client, static 10.200.0.5/16
# Each client MAC is on its own port or shares one with at most per_port others, which keeps
# virtnet's per-port limits (8 leases, 20 messages/s with a burst of 40) out of the way.
make_guests() { # impl
  local k=$1 g=vndhcp-g${1:0:1}-$$ b h
  GNS[$k]=$g
  ns_add "$g"
  ip netns exec "$g" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  b=$T/$k-guest.batch; h=$T/$k-host.batch
  : >"$b"; : >"$h"
  local names=() n
  for n in $(seq 0 $((samples - 1))); do names+=("l$n"); done
  for n in $(seq 0 $((udhcpc_samples - 1))); do names+=("u$n"); done
  for n in $(seq 0 $((2 * ports - 1))); do names+=("t$n"); done
  names+=(dq)
  for n in "${names[@]}"; do
    echo "link add $n type veth peer name p$n netns ${NS[$k]}" >>"$b"
    echo "link set $n up" >>"$b"
    echo "link set p$n master vbr0" >>"$h"
    echo "link set p$n up" >>"$h"
  done
  echo "addr add 10.200.0.5/16 dev dq" >>"$b"
  ip -n "$g" -batch "$b"
  ip netns exec "${NS[$k]}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
  ip -n "${NS[$k]}" -batch "$h"
  # Wait until every port is forwarding (STP is on, as in libvirt's default network).
  local want=${#names[@]} have=0
  for _ in $(seq 100); do
    have=$(bridge -n "${NS[$k]}" link show | grep -c "master vbr0 .*state forwarding" || true)
    [ "$have" -ge "$want" ] && break
    sleep 0.1
  done
  [ "$have" -ge "$want" ] || log "$k: only $have of $want bridge ports forwarding"
}

# --- measurement helpers ------------------------------------------------------------------------
nsino() { stat -L -c %i "/run/netns/$1"; }
# PIDs whose command is $2 in network namespace $1
pids_in() {
  local ino p
  ino=$(nsino "$1")
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = "$2" ] || continue
    [ "$(stat -L -c %i "$p/ns/net" 2>/dev/null)" = "$ino" ] && echo "${p#/proc/}"
  done
  return 0
}
# "count rss_kB pss_kB" summed over the PIDs given
mem_sum() {
  local n=0 rss=0 pss=0 p r s
  for p in "$@"; do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    s=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    n=$((n + 1)); rss=$((rss + ${r:-0})); pss=$((pss + ${s:-0}))
  done
  echo "$n $rss $pss"
}
mem_snapshot() { # impl label -> R/impl-mem-label.txt: "who count rss pss" lines
  local k=$1 f=$R/$1-mem-$2.txt
  {
    if [ "$k" = libvirt ]; then
      echo "dnsmasq $(mem_sum $(pids_in "${NS[$k]}" dnsmasq))"
      echo "libvirtd $(mem_sum $(pids_in "${NS[$k]}" libvirtd))"
    else
      echo "virtnetd $(mem_sum $(pids_in "${NS[$k]}" virtnetd))"
    fi
  } >"$f"
}
ms_now() { date +%s%N; }
# The server processes of impl $1: virtnetd, or every dnsmasq of the libvirt namespace (only
# the bench network runs while this is used).
server_pids() {
  if [ "$1" = libvirt ]; then pids_in "${NS[$1]}" dnsmasq; else pids_in "${NS[$1]}" virtnetd; fi
}
# utime+stime (clock ticks) summed over the PIDs given (all their threads)
cpu_ticks() {
  local t=0 p v
  for p in "$@"; do
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# Datagrams the kernel dropped on UDP sockets bound to port $2 in namespace $1 (receive buffer
# full), summed (last column of /proc/net/udp).
udp_drops() {
  local hex
  hex=$(printf '%04X' "$2")
  ip netns exec "$1" cat /proc/net/udp | awk -v p=":$hex" '$2 ~ p"$" {d += $NF} END {print d + 0}'
}

# --- run ------------------------------------------------------------------------------------------
bench_xml >"$T/bench.xml"
live=()
for k in "${impls[@]}"; do
  if start_daemon "$k"; then
    cli "$k" net-define "$T/bench.xml" >/dev/null
    cli "$k" net-start bench >/dev/null
    make_guests "$k"
    live+=("$k")
    log "$k: network bench started in ${NS[$k]}, guests in ${GNS[$k]}"
  else
    echo "{\"error\": \"daemon did not start\"}" >"$R/$k-error.json"
  fi
done
[ ${#live[@]} -gt 0 ] || { log "no implementation started"; exit 1; }
live_mem=("${live[@]}")
rev=(); for ((i=${#live[@]}-1; i>=0; i--)); do rev+=("${live[$i]}"); done

# 1. latency: dhcpload, one never-seen MAC at a time, each on its own port.
seed=1
for k in "${live[@]}"; do
  log "$k: DISCOVER->ACK latency, $samples samples"
  ip netns exec "${GNS[$k]}" "$DHCPLOAD" --mode latency --iface-range l:"$samples" \
    --clients "$samples" --mac-seed $seed --hostname lat --pause-ms 50 --timeout-ms 20000 \
    --retransmit-ms 4000 --json >"$R/$k-latency.json" || log "$k: latency run failed"
  seed=$((seed + 1))
done

if [ "$only" = all ]; then
# 1b. an isolated new guest: dnsmasq pings a candidate address (3 s) before offering it, but
# only up to 6 pings per 30 s (beyond that it assumes "high load" and skips them, which is what
# the back-to-back samples above hit after the 6th). So these samples are spaced by
# --iso-gap-s: per step and implementation, one dhcpload client (a new MAC on port lN) and one
# `busybox udhcpc -q -n` (wall clock, fresh MAC on port uN), interleaved ABBA.
for n in $(seq 0 $((udhcpc_samples - 1))); do
  order=("${live[@]}"); [ $((n % 2)) = 1 ] && order=("${rev[@]}")
  for k in "${order[@]}"; do
    g=${GNS[$k]}
    ip netns exec "$g" "$DHCPLOAD" --mode latency --iface "l$((n % samples))" --clients 1 \
      --mac-seed $((200 + n)) --hostname "iso$n" --timeout-ms 20000 --retransmit-ms 4000 \
      --json >>"$R/$k-isolated.jsonl" 2>/dev/null || echo '{"ok": 0}' >>"$R/$k-isolated.jsonl"
    ip -n "$g" link set "u$n" address "$(printf '52:54:99:%02x:00:%02x' "$seed" "$n")"
    t0=$(ms_now)
    if ip netns exec "$g" busybox udhcpc -i "u$n" -q -n -f -s /bin/true -t 5 -T 5 >/dev/null 2>&1; then
      echo "$(( ($(ms_now) - t0) / 1000 ))" >>"$R/$k-udhcpc.txt"
    else
      echo "fail" >>"$R/$k-udhcpc.txt"
    fi
  done
  if [ "$n" -lt $((udhcpc_samples - 1)) ]; then sleep "$iso_gap"; fi
done
seed=$((seed + 1))

# 2. throughput: ports x per_port MACs at once, full DORA each, `rounds` rounds (leases released
# between rounds), run twice per implementation in ABBA order, each pass on ports of its own.
# Clients retransmit after 4 s, as udhcpc (3 s) and dhclient (~4 s) roughly do.
for pass in 0 1; do
  order=("${live[@]}"); [ $pass = 1 ] && order=("${rev[@]}")
  for k in "${order[@]}"; do
    log "$k: leases/s, pass $((pass + 1)): $ports ports x $per_port clients, $rounds rounds"
    d0=$(udp_drops "${NS[$k]}" 67)
    ip netns exec "${GNS[$k]}" "$DHCPLOAD" --mode throughput \
      --iface "$(seq -s, -f 't%g' $((pass * ports)) $((pass * ports + ports - 1)))" \
      --clients $((ports * per_port)) --concurrency $((ports * per_port)) --rounds "$rounds" \
      --release --round-gap-ms 2500 --mac-seed $((100 + seed)) --retransmit-ms 4000 \
      --timeout-ms 30000 --json >"$R/$k-throughput-$pass.json" || log "$k: throughput run failed"
    echo "$(( $(udp_drops "${NS[$k]}" 67) - d0 ))" >"$R/$k-udp67-drops-$pass.txt"
    seed=$((seed + 1))
  done
done
fi

# 3. DNS: dnsperf from the guest namespace (10.200.0.5) to the gateway 10.200.0.1:53.
# A: the static hosts h0..h199.bench.test and the latency clients' names lat-N.bench.test
# (registered from their DHCP host-name option). PTR: the static hosts' addresses.
{
  for i in $(seq 0 $((NHOSTS - 1))); do echo "h$i.bench.test A"; done
  for i in $(seq 0 $((samples - 1))); do echo "lat-$i.bench.test A"; done
} >"$T/q-a.txt"
for i in $(seq 0 $((NHOSTS - 1))); do
  echo "$(( (10 + i) % 256 )).$(( (10 + i) / 256 )).200.10.in-addr.arpa PTR"
done >"$T/q-ptr.txt"
for k in "${live[@]}"; do   # what each server answers, for the record
  for q in h0.bench.test lat-0.bench.test; do
    echo "$q $(ip netns exec "${GNS[$k]}" dig +short +time=2 +tries=1 @10.200.0.1 "$q" A | tr '\n' ' ')"
  done >"$R/$k-dig.txt"
  echo "10.200.0.10 $(ip netns exec "${GNS[$k]}" dig +short +time=2 +tries=1 @10.200.0.1 -x 10.200.0.10 | tr '\n' ' ')" >>"$R/$k-dig.txt"
done
for qt in a ptr; do
  for pass in $(seq 0 $((dns_passes - 1))); do
    order=("${live[@]}"); [ $((pass % 2)) = 1 ] && order=("${rev[@]}")
    for k in "${order[@]}"; do
      log "$k: dnsperf $qt, pass $((pass + 1)), ${dns_seconds}s"
      spids=$(server_pids "$k")
      c0=$(cpu_ticks $spids)
      ip netns exec "${GNS[$k]}" dnsperf -s 10.200.0.1 -d "$T/q-$qt.txt" -l "$dns_seconds" \
        -q 100 -t 2 >"$R/$k-dnsperf-$qt-$pass.txt" 2>&1 || log "$k: dnsperf failed"
      echo "$(( $(cpu_ticks $spids) - c0 )) $(getconf CLK_TCK) $(echo $spids | wc -w)" >"$R/$k-dnscpu-$qt-$pass.txt"
    done
  done
done

# 4. memory: RSS/PSS before and after starting `networks` more networks with DHCP and DNS.
[ "$only" = all ] || live_mem=()
for k in "${live_mem[@]}"; do
  log "$k: memory, $networks networks"
  sleep 1
  mem_snapshot "$k" before
  t0=$(ms_now)
  started=0
  for i in $(seq 0 $((networks - 1))); do
    mem_xml "$i" >"$T/mem$i.xml"
    if cli "$k" net-define "$T/mem$i.xml" >/dev/null 2>>"$R/$k-mem-errors.txt" &&
       cli "$k" net-start "mem$i" >/dev/null 2>>"$R/$k-mem-errors.txt"; then
      started=$((started + 1))
    fi
  done
  echo "$started $(( ($(ms_now) - t0) / 1000000 ))" >"$R/$k-mem-started.txt"
  sleep 3
  mem_snapshot "$k" after
done

# --- report -----------------------------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
python3 - "$R" "$out" "$command_line" "$networks" "$build_note" "${live[@]}" <<'PY'
import json, os, platform, re, statistics, subprocess, sys, time
R, out, command, networks, build_note = sys.argv[1:6]
live = sys.argv[6:]
networks = int(networks)

def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    import math
    k = max(1, min(len(v), math.ceil(p * len(v))))
    return v[k - 1]

def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip(); break
    mem = int(open("/proc/meminfo").readline().split()[1]) / 1048576
    deb = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem, 1),
            "kernel": platform.release(), "debian": deb}

def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.split()[-1]
    except Exception:
        return "?"

res = {"machine": machine(), "command": command,
       "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
       "notes": [build_note] if build_note else [], "impls": {}}
for k in live:
    r = res["impls"].setdefault(k, {})
    if k == "libvirt":
        r["version"] = "libvirt %s, dnsmasq %s" % (
            version(["/usr/sbin/libvirtd", "--version"]),
            subprocess.run(["/usr/sbin/dnsmasq", "--version"], capture_output=True,
                           text=True).stdout.split()[2])
    else:
        r["version"] = "virtnet " + version(["target/release/virtnet", "--version"])
    lat = load(os.path.join(R, k + "-latency.json"))
    if lat:
        r["latency"] = {x: lat[x] for x in ("ok", "failed", "discover_to_ack_ms",
                        "discover_to_offer_ms", "request_to_ack_ms",
                        "samples_discover_to_ack_ms")}
    try:
        iso = [json.loads(l) for l in open(os.path.join(R, k + "-isolated.jsonl")) if l.strip()]
        v = [j["samples_discover_to_ack_ms"][0] for j in iso if j.get("ok")]
        r["isolated_discover_to_ack_ms"] = {"n": len(iso), "failed": len(iso) - len(v),
            "median": statistics.median(v) if v else None, "p95": pct(v, 0.95), "samples": v}
    except OSError:
        pass
    try:
        raw = open(os.path.join(R, k + "-udhcpc.txt")).read().split()
        ok = [int(x) / 1000 for x in raw if x != "fail"]
        r["udhcpc_ms"] = {"n": len(raw), "failed": len(raw) - len(ok),
                          "median": statistics.median(ok) if ok else None,
                          "p95": pct(ok, 0.95), "samples": ok}
    except OSError:
        pass
    tp = []
    for p in (0, 1):
        j = load(os.path.join(R, "%s-throughput-%d.json" % (k, p)))
        if j:
            tp.append(j)
    if tp:
        rounds = [x for j in tp for x in j["rounds"]]
        lps = [x["leases_per_s"] for x in rounds]
        r["throughput"] = {
            "clients_per_round": tp[0]["clients"] // max(1, len(tp[0]["rounds"])),
            "interfaces": tp[0]["interfaces"], "rounds": rounds,
            "leases_per_s_median": statistics.median(lps),
            "leases_per_s_min": min(lps), "leases_per_s_max": max(lps),
            "failed": sum(j["failed"] for j in tp), "naks": sum(j["naks"] for j in tp),
            "timeouts": sum(j["timeouts"] for j in tp),
            "retransmits": sum(j["retransmits"] for j in tp),
            "discover_to_ack_ms_under_load": [j["discover_to_ack_ms"] for j in tp]}
        drops = []
        for p in (0, 1):
            try:
                drops.append(int(open(os.path.join(R, "%s-udp67-drops-%d.txt" % (k, p))).read()))
            except (OSError, ValueError):
                pass
        r["throughput"]["udp67_rcvbuf_drops_per_pass"] = drops
    for qt in ("a", "ptr"):
        runs = []
        for p in range(100):
            try:
                t = open(os.path.join(R, "%s-dnsperf-%s-%d.txt" % (k, qt, p))).read()
            except OSError:
                break
            def g(rx, conv=float):
                m = re.search(rx, t)
                return conv(m.group(1)) if m else None
            cpu = None
            try:
                ticks, hz, nproc = map(int, open(os.path.join(
                    R, "%s-dnscpu-%s-%d.txt" % (k, qt, p))).read().split())
                cpu = {"server_cpu_s": ticks / hz, "server_procs": nproc}
            except (OSError, ValueError):
                pass
            runs.append({"qps": g(r"Queries per second:\s+([\d.]+)"),
                         "sent": g(r"Queries sent:\s+(\d+)", int),
                         "completed": g(r"Queries completed:\s+(\d+)", int),
                         "lost": g(r"Queries lost:\s+(\d+)", int),
                         "noerror": g(r"NOERROR (\d+)", int),
                         "nxdomain": g(r"NXDOMAIN (\d+)", int),
                         "avg_latency_ms": (g(r"Average Latency \(s\):\s+([\d.]+)") or 0) * 1000})
            if cpu:
                runs[-1].update(cpu)
                if cpu["server_cpu_s"] > 0 and runs[-1]["completed"]:
                    runs[-1]["queries_per_cpu_s"] = runs[-1]["completed"] / cpu["server_cpu_s"]
        if runs:
            qs = [x["qps"] for x in runs if x["qps"] is not None]
            qc = [x["queries_per_cpu_s"] for x in runs if x.get("queries_per_cpu_s")]
            r["dns_" + qt] = {"runs": runs, "qps_median": statistics.median(qs) if qs else None,
                              "queries_per_cpu_s_median": statistics.median(qc) if qc else None}
    try:
        r["dig"] = open(os.path.join(R, k + "-dig.txt")).read().splitlines()
    except OSError:
        pass
    def snap(label):
        d = {}
        try:
            for line in open(os.path.join(R, "%s-mem-%s.txt" % (k, label))):
                who, n, rss, pss = line.split()
                d[who] = {"procs": int(n), "rss_kb": int(rss), "pss_kb": int(pss)}
        except OSError:
            pass
        return d
    before, after = snap("before"), snap("after")
    if before and after:
        try:
            started, secs_ms = map(int, open(os.path.join(R, k + "-mem-started.txt")).read().split())
        except (OSError, ValueError):
            started, secs_ms = 0, 0
        mem = {"networks_started": started, "start_all_ms": secs_ms, "before": before,
               "after": after, "per_network_kib": {}}
        for who in after:
            if started:
                mem["per_network_kib"][who] = {
                    "rss": round((after[who]["rss_kb"] - before[who]["rss_kb"]) / started, 1),
                    "pss": round((after[who]["pss_kb"] - before[who]["pss_kb"]) / started, 1),
                    "procs": round((after[who]["procs"] - before[who]["procs"]) / started, 2)}
        try:
            errs = open(os.path.join(R, k + "-mem-errors.txt")).read().strip()
            if errs:
                mem["errors"] = errs.splitlines()[-5:]
        except OSError:
            pass
        r["memory"] = mem
with open(out + ".tmp", "w") as f:
    json.dump(res, f, indent=1)
os.replace(out + ".tmp", out)

# Markdown table
L, V = res["impls"].get("libvirt", {}), res["impls"].get("virtnet", {})
def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d
def f(x, nd=1):
    return "–" if x is None else ("%.*f" % (nd, x))
def ratio(a, b, invert=False):
    if a is None or b is None or a == 0 or b == 0:
        return "–"
    return "%.1f×" % ((a / b) if not invert else (b / a))
rows = []
def row(name, path, nd=1, better="lower"):
    a, b = get(L, *path), get(V, *path)
    rows.append("| %s | %s | %s | %s |" % (name, f(a, nd), f(b, nd),
                ratio(a, b) if better == "lower" else ratio(b, a)))
print("| | libvirt 9 + dnsmasq | virtnet | virtnet better by |")
print("|---|---|---|---|")
row("DISCOVER→ACK, isolated new guest, median (ms)", ("isolated_discover_to_ack_ms", "median"), 2)
row("DISCOVER→ACK, isolated new guest, p95 (ms)", ("isolated_discover_to_ack_ms", "p95"), 2)
row("`udhcpc -q -n` wall clock, isolated, median (ms)", ("udhcpc_ms", "median"), 1)
row("`udhcpc -q -n` wall clock, isolated, p95 (ms)", ("udhcpc_ms", "p95"), 1)
row("DISCOVER→ACK, new MACs back to back, median (ms)", ("latency", "discover_to_ack_ms", "median"), 2)
row("DISCOVER→ACK, new MACs back to back, p95 (ms)", ("latency", "discover_to_ack_ms", "p95"), 2)
row("DISCOVER→OFFER, median (ms)", ("latency", "discover_to_offer_ms", "median"), 2)
row("REQUEST→ACK, median (ms)", ("latency", "request_to_ack_ms", "median"), 2)
row("leases/s, concurrent clients, median of rounds", ("throughput", "leases_per_s_median"), 0, "higher")
row("leases/s, min of rounds", ("throughput", "leases_per_s_min"), 0, "higher")
row("DNS A, local names, queries/s (median of passes)", ("dns_a", "qps_median"), 0, "higher")
row("DNS PTR, queries/s (median of passes)", ("dns_ptr", "qps_median"), 0, "higher")
row("DNS A, queries per server CPU-second (median of passes)", ("dns_a", "queries_per_cpu_s_median"), 0, "higher")
row("DNS PTR, queries per server CPU-second (median of passes)", ("dns_ptr", "queries_per_cpu_s_median"), 0, "higher")
for who_l, who_v, what in (("dnsmasq", "virtnetd", "rss"), ("dnsmasq", "virtnetd", "pss")):
    a = get(L, "memory", "per_network_kib", who_l, what)
    b = get(V, "memory", "per_network_kib", who_v, what)
    rows.append("| memory per network, %s (KiB; libvirt: dnsmasq processes) | %s | %s | %s |"
                % (what.upper(), f(a, 0), f(b, 0), ratio(a, b)))
a = get(L, "memory", "per_network_kib", "libvirtd", "rss")
rows.append("| libvirtd RSS growth per network (KiB) | %s | – | |" % f(a, 0))
print("\n".join(rows))
for k in live:
    r = res["impls"][k]
    print("\n%s: latency ok/failed %s/%s; udhcpc failed %s; throughput failed %s (naks %s, "
          "timeouts %s, retransmits %s, port-67 receive-buffer drops per pass %s); memory: %s "
          "networks started; dig: %s" % (
          k, get(r, "latency", "ok"), get(r, "latency", "failed"), get(r, "udhcpc_ms", "failed"),
          get(r, "throughput", "failed"), get(r, "throughput", "naks"),
          get(r, "throughput", "timeouts"), get(r, "throughput", "retransmits"),
          get(r, "throughput", "udp67_rcvbuf_drops_per_pass"),
          get(r, "memory", "networks_started"), get(r, "dig")), file=sys.stderr)
print("\nresults in %s" % out, file=sys.stderr)
PY
