#!/usr/bin/env bash
# Issue 12's concurrency benchmark: what one network's users feel while the daemon is busy with
# others. One virtnetd with 200 networks defined, 51 active (network A = n000, and n001-n050)
# and 200 guest ports (4 taps on each of n001-n050); measured on network A, each figure idle and
# loaded, interleaved in one invocation (rounds of idle/loaded, ABBA order):
#
#   1. attach-interface + detach-interface on A (CLI wall time, spawn included; and daemon side
#      from the request log; beside it the spawn floor: two `virtnet --version`), idle vs while a client starts and destroys other networks
#      (n100-n109) as fast as it can ("churn"), with the kernel's floor measured in the same
#      run: how long the kernel holds RTNL for one link deletion (bench/rtnl_floor.py in a side
#      namespace: the longest a cheap RTNL request waits while a configured bridge is deleted);
#   2. net-list --all and net-dhcp-leases A, idle vs under the same churn (CLI wall time and
#      daemon side: the daemon logs elapsed_us of every request at info level);
#   3. DNS queries/s (dnsperf, A records of A's static hosts) and DHCP leases/s (bench/dhcpload,
#      throughput mode, on A's own ports) on A, idle vs while the 50 other networks do full DHCP
#      exchanges at full speed (bench/dhcpload on 2 veth ports each, DORA + RELEASE per round,
#      no gap between rounds).
#
#   bash bench/concurrency.sh [-q] [--rounds N] [--samples N] [--dns-seconds S] [--out FILE.json]
#
# On a terminal a progress line counts what is being set up and measured; -q (or stderr not
# being a terminal) leaves only the log lines.
# Defaults: 2 rounds (idle, loaded, loaded, idle per round pair), 150 samples per verb and phase,
# 8 s of dnsperf per phase. Prints a markdown table; writes JSON with every sample to
# bench/results/concurrency-<UTC date>.json. Needs a release build (cargo build --release -p
# virtnetd -p virtnet), dnsperf and bench/dhcpload (built here if missing); the CLI measured
# is the statically linked one the package ships (scripts/build-cli.sh, built here).
#
# Everything happens in network namespaces this script creates (daemon, load clients, floor);
# the trap stops what it started, by PID, and removes them and its temporary directory. The
# root network namespace is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

rounds=2
samples=150
dns_seconds=8
out=bench/results/concurrency-$(date -u +%Y-%m-%d).json
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --samples) samples=$2; shift ;;
    --dns-seconds) dns_seconds=$2; shift ;;
    --out) out=$2; shift ;;
    -q|--quiet) export BENCH_QUIET=1 ;;
    -h|--help) sed -n 2,33p "$0"; exit 0 ;;
    *) echo "concurrency: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command_line="bash bench/concurrency.sh $*"
[ "$(id -u)" = 0 ] || { echo "concurrency: run as root" >&2; exit 1; }
[ -x target/release/virtnetd ] && [ -x target/release/virtnet ] ||
  { echo "concurrency: run cargo build --release -p virtnetd -p virtnet first" >&2; exit 1; }
command -v dnsperf >/dev/null || { echo "concurrency: needs dnsperf (apt-get install dnsperf)" >&2; exit 1; }
DHCPLOAD=$REPO/bench/dhcpload/target/release/dhcpload
[ -x "$DHCPLOAD" ] || cargo build --release -q --manifest-path bench/dhcpload/Cargo.toml
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
. bench/lib.sh
log() { progress_clear; echo "concurrency: $*" >&2; }

ns=vncc-d-$$; cns=vncc-c-$$; fns=vncc-f-$$
work=$(mktemp -d /tmp/vnbench-cc.XXXXXX)
daemon=; churn=; load=
cleanup() {
  set +e
  touch "$work/stop-churn" "$work/stop-load"
  for p in $load $churn; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon"; fi
  for n in "$ns" "$cns" "$fns"; do ip netns del "$n" 2>/dev/null; done
  [ -n "${CONCURRENCY_KEEP_LOG:-}" ] && cp "$work/log" "$CONCURRENCY_KEEP_LOG"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private copies: a rebuild during the run must not swap the binaries under it. The CLI is the
# one the Debian package ships: statically linked (scripts/build-cli.sh, built here if needed).
cp target/release/virtnetd "$work/"
cp "$(bash scripts/build-cli.sh)" "$work/virtnet"
for n in "$ns" "$cns" "$fns"; do ip netns add "$n"; ip -n "$n" link set lo up; done
for n in "$ns" "$cns"; do
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
printf 'nameserver 192.0.2.53\n' >"$work/resolv.conf"   # unreachable: nothing here is forwarded
ip netns exec "$ns" "$work/virtnetd" --state-dir "$work/s" --run-dir "$work/r" --libvirt-run-dir "$work/r/libvirt" \
  --log-level "${CONCURRENCY_LOG:-info}" --resolv-conf "$work/resolv.conf" 2>"$work/log" &
daemon=$!
for _ in $(seq 200); do [ -S "$work/r/virtnet.sock" ] && break; sleep 0.05; done
[ -S "$work/r/virtnet.sock" ] || { cat "$work/log" >&2; exit 1; }
v() { "$work/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }

# --- 200 networks: n000 (A) with DHCP over a /16 and 200 static DNS hosts; n001-n199 /24s ------
net_xml() { # i
  local i=$1 name bridge
  name=$(printf 'n%03d' "$i"); bridge=$(printf 'vbn%03d' "$i")
  if [ "$i" = 0 ]; then
    echo "<network><name>$name</name><forward mode='nat'/><bridge name='$bridge' stp='off'/>"
    echo "<domain name='a.test' localOnly='yes'/><dns>"
    for h in $(seq 0 199); do echo "<host ip='10.99.0.$((h + 10))'><hostname>h$h</hostname></host>"; done
    echo "</dns><ip address='10.99.0.1' netmask='255.255.0.0'><dhcp><range start='10.99.1.1' end='10.99.254.254'/></dhcp></ip></network>"
  else
    echo "<network><name>$name</name><forward mode='nat'/><bridge name='$bridge' stp='off'/>"
    echo "<ip address='10.$((100 + i / 250)).$((i % 250)).1' prefix='24'><dhcp>"
    echo "<range start='10.$((100 + i / 250)).$((i % 250)).2' end='10.$((100 + i / 250)).$((i % 250)).254'/></dhcp></ip></network>"
  fi
}
log "defining 200 networks, starting 51, attaching 200 guest ports ..."
for i in $(seq 0 199); do
  progress "defining networks $((i + 1))/200"
  net_xml "$i" >"$work/net.xml"
  v net-define "$work/net.xml" >/dev/null
done
for i in $(seq 0 50); do progress "starting networks $((i + 1))/51"; v net-start "$(printf 'n%03d' "$i")" >/dev/null; done
mac() { printf '52:54:%02x:00:%02x:%02x' "$1" $(($2 / 256)) $(($2 % 256)); }
for i in $(seq 1 50); do
  progress "attaching guest ports $((i * 4))/200"
  for j in 0 1 2 3; do
    v attach-interface "g$i-$j" network "$(printf 'n%03d' "$i")" --mac "$(mac 1 $((i * 4 + j)))" >/dev/null
  done
done
ports=$(v port-list | grep -c vnet || true)
log "$ports guest ports"

# --- client namespace: A's DNS client and DHCP ports, 2 load ports on each other network -------
b=$work/c.batch; h=$work/h.batch; : >"$b"; : >"$h"
add_veth() { # name bridge
  echo "link add $1 type veth peer name p$1 netns $ns" >>"$b"; echo "link set $1 up" >>"$b"
  echo "link set p$1 master $2" >>"$h"; echo "link set p$1 up" >>"$h"
}
add_veth dq vbn000
for j in $(seq 0 15); do add_veth "a$j" vbn000; done
for i in $(seq 1 50); do for j in 0 1; do add_veth "l$i-$j" "$(printf 'vbn%03d' "$i")"; done; done
echo "addr add 10.99.0.5/16 dev dq" >>"$b"
ip -n "$cns" -batch "$b"
ip -n "$ns" -batch "$h"
load_ifaces=$(for i in $(seq 1 50); do printf 'l%s-0,l%s-1,' "$i" "$i"; done); load_ifaces=${load_ifaces%,}
for h in $(seq 0 199); do echo "h$h.a.test A"; done >"$work/q.txt"

# --- phases ---------------------------------------------------------------------------------
lines() { wc -l <"$work/log"; }
mark() { echo "$1 $(lines)" >>"$work/marks"; }   # "phase-start|phase-end line"
: >"$work/marks"

start_churn() {
  rm -f "$work/stop-churn"
  (
    n=0
    while [ ! -e "$work/stop-churn" ]; do
      c=$(printf 'n%03d' $((100 + n % 10)))
      v net-start "$c" >/dev/null 2>>"$work/churn-errors" || true
      v net-destroy "$c" >/dev/null 2>>"$work/churn-errors" || true
      n=$((n + 1)); echo "$n" >"$work/churn-count"
    done
  ) &
  churn=$!
}
stop_churn() {
  touch "$work/stop-churn"; wait "$churn" 2>/dev/null || true; churn=
  cat "$work/churn-count" >>"$work/churn-cycles"
  settle
}
# Waits (up to 60 s) until the reaper has deleted every bridge the churn parked: an idle phase
# right after a churn phase must not measure the churn's backlog of deletions.
settle() {
  local i
  for i in $(seq 600); do
    # Not `ip … | grep -q`: under pipefail, grep's early exit makes ip die of SIGPIPE once the
    # listing outgrows a pipe's buffer, and the failed pipeline read as "nothing parked": the
    # idle phase after a churn phase then ran beside the reaper's deletions.
    [[ $(ip -n "$ns" -o link show 2>/dev/null) == *vndel* ]] || return 0
    sleep 0.1
  done
  log "parked links still queued after 60 s"
}
# The load: dhcpload runs of 5 rounds back to back until told to stop (the current run
# finishes, so each run reports the leases/s the other networks got meanwhile). Every run is
# the same 400 guests (one MAC seed) renewing: with a new seed per run, the leases whose
# RELEASE the per-port rate limit dropped piled up until each port held its cap of 8 and the
# later runs got no lease at all, which made the "loaded" phases less and less loaded.
start_load() {
  rm -f "$work/stop-load"
  (
    while [ ! -e "$work/stop-load" ]; do
      ip netns exec "$cns" "$DHCPLOAD" --mode throughput --iface "$load_ifaces" --clients 400 \
        --concurrency 400 --rounds 5 --release --round-gap-ms 0 --mac-seed 7 \
        --retransmit-ms 2000 --timeout-ms 10000 --json >>"$work/load.jsonl" 2>>"$work/load.err" || true
    done
  ) &
  load=$!
  sleep 1   # let it reach full speed
}
stop_load() { touch "$work/stop-load"; wait "$load" 2>/dev/null || true; load=; }

# Timestamps in microseconds are read inline (`${EPOCHREALTIME/./}`), never with a command
# substitution: `$(…)` forks bash (~0.56 ms here), and that fork and its exit landed inside
# every timed interval (until session 27 they did: BENCHMARKS.md, "the timer's own fork").
ops_phase() { # label: attach+detach pairs, net-list, net-dhcp-leases on A
  local label=$1 k t0 t1 t2
  mark "$label-start"
  for k in $(seq 1 "$samples"); do
    progress "$label: sample $k/$samples"
    t0=${EPOCHREALTIME/./}; v attach-interface benchA network n000 --mac 52:54:00:aa:00:01 >/dev/null
    t1=${EPOCHREALTIME/./}; v detach-interface benchA network --mac 52:54:00:aa:00:01 >/dev/null
    t2=${EPOCHREALTIME/./}; echo "$label attach $((t1 - t0))" >>"$work/cli"; echo "$label detach $((t2 - t1))" >>"$work/cli"
    # The floor of the pair: two CLI processes that ask the daemon nothing.
    t0=${EPOCHREALTIME/./}; "$work/virtnet" --version >/dev/null; "$work/virtnet" --version >/dev/null
    t1=${EPOCHREALTIME/./}; echo "$label spawn2 $((t1 - t0))" >>"$work/cli"
    t0=${EPOCHREALTIME/./}; v net-list --all >/dev/null
    t1=${EPOCHREALTIME/./}; v net-dhcp-leases n000 >/dev/null
    t2=${EPOCHREALTIME/./}; echo "$label list $((t1 - t0))" >>"$work/cli"; echo "$label leases $((t2 - t1))" >>"$work/cli"
  done
  mark "$label-end"
  progress_clear
}
serve_phase() { # label: DNS q/s, then DHCP leases/s on A
  local label=$1 seed=$2
  ip netns exec "$cns" dnsperf -s 10.99.0.1 -d "$work/q.txt" -l "$dns_seconds" -q 100 -t 2 \
    >"$work/dnsperf-$label.txt" 2>&1 || log "dnsperf failed ($label)"
  ip netns exec "$cns" "$DHCPLOAD" --mode throughput --iface-range a:16 --clients 64 --concurrency 64 \
    --rounds 3 --release --round-gap-ms 1200 --mac-seed "$seed" --retransmit-ms 2000 \
    --timeout-ms 10000 --json >"$work/dhcp-$label.json" 2>/dev/null || log "dhcpload failed ($label)"
}
floor() { ip netns exec "$fns" "$py" bench/rtnl_floor.py --cycles 10 >"$work/floor-$1.json"; }

machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
seed=1000
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="idle churn"; else order="churn idle"; fi
  for p in $order; do
    log "round $r: $p: attach/detach, net-list, net-dhcp-leases ($samples each)"
    if [ "$p" = churn ]; then start_churn; sleep 0.5; ops_phase "churn"; stop_churn
    else ops_phase "idle"; fi
  done
  floor "$r"
  for p in $order; do
    log "round $r: $p: DNS and DHCP on A"
    seed=$((seed + 1))
    if [ "$p" = churn ]; then start_load; serve_phase "load-$r" "$seed"; stop_load
    else serve_phase "idle-$r" "$seed"; fi
  done
done
leaked=$(ip -n "$ns" -o link show | grep -c 'vndel' || true)
touch "$work/churn-errors"
errors=$(grep -c . "$work/churn-errors" || true)
mkdir -p "$(dirname "$out")"
"$py" - "$work" "$out" "$machine" "$command_line" "$ports" "$leaked" "$errors" <<'PY'
import datetime, glob, json, re, statistics, sys

work, out, machine, command_line, ports, leaked, errors = sys.argv[1:]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))] if xs else None

cli = {}
for line in open(f"{work}/cli"):
    phase, verb, us = line.split()
    cli.setdefault(phase, {}).setdefault(verb, []).append(int(us) / 1000)

# Daemon side: the request log between each phase's marks.
log_lines = open(f"{work}/log", errors="replace").read().splitlines()
marks = [l.split() for l in open(f"{work}/marks")]
spans = {}
for (a, s), (b, e) in zip(marks[::2], marks[1::2]):
    spans.setdefault(a.rsplit("-", 1)[0], []).append((int(s), int(e)))
req = re.compile(r"method=(\S+) path=([^}\s]+)\}.*answered.*elapsed_us=(\d+)")
def kind(method, path):
    if method == "POST" and path == "/v1/ports": return "attach"
    # One request per detach (`DELETE /v1/ports?domain=…`); older builds: by name.
    if method == "DELETE" and path.startswith("/v1/ports"): return "detach"
    if method == "GET" and path == "/v1/networks": return "list"
    if method == "GET" and path == "/v1/networks/n000/leases": return "leases"
    return None
daemon = {}
for phase, ranges in spans.items():
    for s, e in ranges:
        for l in log_lines[s:e]:
            m = req.search(l)
            if m and (k := kind(m[1], m[2])):
                daemon.setdefault(phase, {}).setdefault(k, []).append(int(m[3]) / 1000)

def qps(path):
    m = re.search(r"Queries per second:\s+([\d.]+)", open(path).read())
    return float(m[1]) if m else 0.0
def lps(path):
    try:
        d = json.load(open(path))
        return d["leases_per_s_median"], d["failed"]
    except Exception:
        return 0.0, None
serve = {"idle": {"dns_qps": [], "dhcp_lps": [], "dhcp_failed": []},
         "load": {"dns_qps": [], "dhcp_lps": [], "dhcp_failed": []}}
for f in sorted(glob.glob(f"{work}/dnsperf-*.txt")):
    serve[f.split("dnsperf-")[1].split("-")[0]]["dns_qps"].append(qps(f))
for f in sorted(glob.glob(f"{work}/dhcp-*.json")):
    l, failed = lps(f)
    k = f.split("dhcp-")[1].split("-")[0]
    serve[k]["dhcp_lps"].append(l); serve[k]["dhcp_failed"].append(failed)
floor = {"delete_ms": [], "rtnl_hold_ms": []}
for f in sorted(glob.glob(f"{work}/floor-*.json")):
    d = json.load(open(f))
    for k in floor: floor[k] += d[k]
churn_cycles = [int(x) for x in open(f"{work}/churn-cycles").read().split()]
load_runs = []
for line in open(f"{work}/load.jsonl"):
    try:
        d = json.loads(line)
        load_runs.append({"leases_per_s": d["leases_per_s_median"], "ok": d["ok"], "failed": d["failed"]})
    except Exception:
        pass

def st(xs):
    return {"n": len(xs), "p50": round(pct(xs, 50), 2), "p99": round(pct(xs, 99), 2)} if xs else None
pairs = {ph: [a + d for a, d in zip(v["attach"], v["detach"])] for ph, v in cli.items()}
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "machine": machine, "command": command_line, "guest_ports": int(ports),
    "networks": {"defined": 200, "active": 51},
    "cli_ms": {ph: {k: st(v) for k, v in vs.items()} | {"attach+detach": st(pairs[ph]),
               "attach_or_detach": st(vs["attach"] + vs["detach"])} for ph, vs in cli.items()},
    "daemon_ms": {ph: {k: st(v) for k, v in vs.items()} for ph, vs in daemon.items()},
    "rtnl_floor_ms": {"rtnl_hold": st(floor["rtnl_hold_ms"]), "link_delete": st(floor["delete_ms"])},
    "churn_start_destroy_cycles": churn_cycles, "churn_cli_errors": int(errors),
    "parked_links_left": int(leaked),
    "serve": serve, "load_runs": load_runs,
    "samples_ms": {"cli": cli, "daemon": daemon, "floor": floor},
}
with open(out, "w") as f:
    json.dump(report, f, indent=1); f.write("\n")

c, d = report["cli_ms"], report["daemon_ms"]
hold = report["rtnl_floor_ms"]["rtnl_hold"]["p50"]
dele = report["rtnl_floor_ms"]["link_delete"]["p50"]
def cell(x): return f"{x['p50']:.2f} / {x['p99']:.2f}" if x else "–"
print("| p50 / p99, ms | idle | under churn | target |")
print("|---|---|---|---|")
ip99 = c["idle"]["attach+detach"]["p99"]
print(f"| attach-interface + detach-interface (pair), CLI | {cell(c['idle']['attach+detach'])} | {cell(c['churn']['attach+detach'])} | idle p99 ≤ 10; churn p99 ≤ idle p99 + RTNL floor = {ip99 + hold:.1f} |")
for verb in ("attach", "detach"):
    print(f"| {verb}-interface, CLI | {cell(c['idle'][verb])} | {cell(c['churn'][verb])} | |")
    print(f"| {verb}, daemon side | {cell(d.get('idle', {}).get(verb))} | {cell(d.get('churn', {}).get(verb))} | |")
for verb, name in (("list", "net-list --all"), ("leases", "net-dhcp-leases A")):
    print(f"| {name}, CLI | {cell(c['idle'][verb])} | {cell(c['churn'][verb])} | churn p99 ≤ 2× idle p99 |")
    print(f"| {name}, daemon side | {cell(d.get('idle', {}).get(verb))} | {cell(d.get('churn', {}).get(verb))} | churn p99 ≤ 5 |")
print(f"| two `virtnet --version` processes (the pair's spawn floor) | {cell(c['idle']['spawn2'])} | {cell(c['churn']['spawn2'])} | |")
print(f"| RTNL floor: RTNL held for one link deletion (p50 / p99) | {cell(report['rtnl_floor_ms']['rtnl_hold'])} | | |")
print(f"| link deletion, whole request (p50 / p99) | {cell(report['rtnl_floor_ms']['link_delete'])} | | |")
print()
print("| on network A | idle | while 50 networks do DHCP at full speed | ratio | target |")
print("|---|---|---|---|---|")
for k, name in (("dns_qps", "DNS queries/s"), ("dhcp_lps", "DHCP leases/s")):
    i, l = statistics.median(serve["idle"][k] or [0]), statistics.median(serve["load"][k] or [0])
    ratio = f"{l / i:.0%}" if i else "–"
    print(f"| {name} (median of {len(serve['idle'][k])}) | {i:.0f} | {l:.0f} | {ratio} | ≥ 80 % |")
print()
if load_runs:
    print(f"- the load (50 other networks, 2 ports each): {len(load_runs)} dhcpload runs, median "
          f"{statistics.median(r['leases_per_s'] for r in load_runs):.0f} leases/s, "
          f"{sum(r['ok'] for r in load_runs)} leases, {sum(r['failed'] for r in load_runs)} failed "
          f"(each port is held to virtnet's per-port DHCP rate limit)")
print(f"- churn client: {sum(churn_cycles)} start+destroy cycles in {len(churn_cycles)} phases, "
      f"{errors} CLI error lines; parked links left at the end: {leaked}; {ports} guest ports")
print(f"- {machine}; samples in {out}")
PY
