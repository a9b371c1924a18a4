#!/usr/bin/env bash
# Issue 12's soak: 20 concurrent clients doing every verb at random on 50 networks for SECONDS
# (default 600), against one virtnetd in a network namespace this script creates.
#
#   bash bench/soak.sh [SECONDS] [--clients N] [--networks N] [--out FILE.json]
#
# Each client is a loop of `virtnet` calls chosen at random: net-define (the same XML again,
# same UUID), net-create (transient), net-start, net-destroy, net-undefine, net-autostart,
# net-update (add/delete a DHCP host), net-list --all, net-info, net-dumpxml, net-dhcp-leases,
# iface-bridges, attach-interface, detach-interface, port-list, domiflist. Every call has a
# timeout (30 s); a call that hits it counts as a deadlock. Every failure is recorded with its
# message: those that say the request does not fit the current state (already exists / active,
# not active, not found, in use, ...) are expected conflicts, counted apart; anything else is
# an unexpected error.
#
# At the end (clients stopped): the kernel must hold exactly what the store says is active
# (bridges, their addresses and routes, the taps of the stored ports, the interface names and
# subnets in virtnet's nftables table, no parked link left once the reaper is done); the same
# after a daemon restart (SIGTERM by PID, start again: the same networks active, plus the
# persistent autostart ones that were not running, as at every start); and after
# destroying every network and detaching every port, nothing of virtnet is left. Exit status
# 0 only when all of that holds. Writes a JSON summary to bench/results/soak-<UTC date>.json.
#
# The trap stops the clients and the daemon (by PID) and removes the namespace and the
# temporary directory. Needs a release build (cargo build --release -p virtnetd -p virtnet).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
clients=20
networks=50
out=bench/results/soak-$(date -u +%Y-%m-%d).json
while [ $# -gt 0 ]; do
  case $1 in
    --clients) clients=$2; shift ;;
    --networks) networks=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n 2,24p "$0"; exit 0 ;;
    [0-9]*) seconds=$1 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command_line="bash bench/soak.sh $seconds --clients $clients --networks $networks"
[ "$(id -u)" = 0 ] || { echo "soak: run as root" >&2; exit 1; }
[ "$networks" -le 200 ] || { echo "soak: at most 200 networks" >&2; exit 2; }
[ -x target/release/virtnetd ] && [ -x target/release/virtnet ] ||
  { echo "soak: run cargo build --release -p virtnetd -p virtnet first" >&2; exit 1; }
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
log() { echo "soak: $*" >&2; }

ns=vnsoak-$$
work=$(mktemp -d /tmp/vnbench-soak.XXXXXX)
daemon=
pids=()
cleanup() {
  set +e
  touch "$work/stop"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon"; fi
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp target/release/virtnetd target/release/virtnet "$work/"
ip netns add "$ns"
ip -n "$ns" link set lo up
printf 'nameserver 192.0.2.53\n' >"$work/resolv.conf"
start_daemon() {
  ip netns exec "$ns" "$work/virtnetd" --state-dir "$work/s" --run-dir "$work/r" --libvirt-run-dir "$work/r/libvirt" \
    --log-level warn --resolv-conf "$work/resolv.conf" 2>>"$work/log" &
  daemon=$!
  for _ in $(seq 600); do
    "$work/virtnet" -q --connect "$work/r/virtnet.sock" net-list --all >/dev/null 2>&1 && return 0
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.05
  done
  cat "$work/log" >&2; return 1
}
stop_daemon() { kill -TERM "$daemon"; wait "$daemon" || true; daemon=; }
v() { timeout 30 "$work/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }
start_daemon

for i in $(seq 0 $((networks - 1))); do
  n=$(printf 's%03d' "$i")
  cat >"$work/$n.xml" <<EOX
<network><name>$n</name><uuid>$(printf '5eed0000-0000-4000-8000-%012d' "$i")</uuid>
<forward mode='nat'/><bridge name='vbs$(printf '%03d' "$i")' stp='off'/>
<ip address='10.150.$i.1' prefix='24'><dhcp><range start='10.150.$i.10' end='10.150.$i.200'/></dhcp></ip></network>
EOX
  v net-define "$work/$n.xml" >/dev/null
  if [ $((i % 2)) = 0 ]; then v net-start "$n" >/dev/null; fi
done
log "$networks networks defined, half of them active; $clients clients for $seconds s"

# A failure whose message says the request does not fit the current state.
expected_re='already (exists|active|has an interface|defined)|is not active|not active|not found|failed to get (network|domain)|in use|is used|is being|conflict|overlap|no (port|interface|network)|transient|not persistent|does not exist|no such|couldn.t locate a matching|there is already a'

client() { # k
  local k=$1 r n verb rc msg m i
  set +e   # a failing call is recorded, not the end of the client
  RANDOM=$((k * 7919 + $$))
  while [ ! -e "$work/stop" ]; do
    r=$RANDOM; i=$((r % networks)); n=$(printf 's%03d' "$i")
    case $((RANDOM % 17)) in
      0) verb=define; set -- net-define "$work/$n.xml" ;;
      1) verb=create; set -- net-create "$work/$n.xml" ;;
      2|3) verb=start; set -- net-start "$n" ;;
      4|5) verb=destroy; set -- net-destroy "$n" ;;
      6) verb=undefine; set -- net-undefine "$n" ;;
      7) verb=autostart; if [ $((RANDOM % 2)) = 0 ]; then set -- net-autostart "$n"; else set -- net-autostart "$n" --disable; fi ;;
      8) verb=update; m=$(printf '52:54:%02x:ee:%02x:%02x' "$k" "$i" $((RANDOM % 4)))
         if [ $((RANDOM % 2)) = 0 ]; then set -- net-update "$n" add ip-dhcp-host "<host mac='$m' ip='10.150.$i.$((201 + k))'/>" --config
         else set -- net-update "$n" delete ip-dhcp-host "<host mac='$m' ip='10.150.$i.$((201 + k))'/>" --config; fi ;;
      9) verb=list; set -- net-list --all ;;
      10) verb=info; set -- net-info "$n" ;;
      11) verb=dumpxml; set -- net-dumpxml "$n" ;;
      12) verb=leases; set -- net-dhcp-leases "$n" ;;
      13) verb=bridges; set -- iface-bridges ;;
      14) verb=attach; m=$(printf '52:54:%02x:%02x:%02x:%02x' "$k" $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
          set -- attach-interface "c$k" network "$n" --mac "$m" ;;
      15) verb=detach
          m=$(v port-list --json 2>/dev/null | "$py" -c "import json,sys,random; p=[x['mac'] for x in json.load(sys.stdin) if x['domain']=='c$k']; print(random.choice(p) if p else '')" || true)
          if [ -z "$m" ]; then continue; fi
          set -- detach-interface "c$k" network --mac "$m" ;;
      16) verb=ports; if [ $((RANDOM % 2)) = 0 ]; then set -- port-list; else set -- domiflist "c$k"; fi ;;
    esac
    rc=0; msg=$(v "$@" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" = 0 ]; then echo "$verb ok"
    elif [ "$rc" = 124 ]; then echo "$verb HANG $*"
    elif grep -qiE "$expected_re" <<<"$msg"; then echo "$verb expected $(echo "$msg" | tail -1)"
    else echo "$verb UNEXPECTED rc=$rc $* :: $(echo "$msg" | tr '\n' ' ')"; fi
  done >"$work/client-$k.log"
}
for k in $(seq 1 "$clients"); do client "$k" & pids+=($!); done
sleep "$seconds" & wait $!   # in the background: a signal ends the wait at once
touch "$work/stop"
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
log "clients stopped; checking the kernel against the store"

# --- store versus kernel ------------------------------------------------------------------------
check() { # label
  local label=$1
  for _ in $(seq 300); do   # the reaper deletes parked links in the background
    # Not `ip … | grep -q`: under pipefail a long listing dies of SIGPIPE and reads as "none".
    [[ $(ip -n "$ns" -o link show) == *vndel* ]] || break; sleep 0.1
  done
  v net-list --all --json >"$work/$label-nets.json"
  v port-list --json >"$work/$label-ports.json"
  ip -n "$ns" -j link show >"$work/$label-links.json"
  ip -n "$ns" -j -4 addr show >"$work/$label-addrs.json"
  ip -n "$ns" -j -4 route show table all >"$work/$label-routes.json"
  ip netns exec "$ns" nft list table inet virtnet >"$work/$label-nft.txt" 2>/dev/null || : >"$work/$label-nft.txt"
  "$py" - "$work" "$label" "$networks" <<'PY'
import json, re, sys
work, label, networks = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(name): return json.load(open(f"{work}/{label}-{name}.json"))
nets = load("nets")
active = {n["name"] for n in nets if n.get("active")}
autostart = sorted(n["name"] for n in nets if n.get("autostart") and n.get("persistent"))
want_br = {f"vbs{n[1:]}" for n in active}
ports = {p["name"] for p in load("ports")}
links = load("links")
have_br = {l["ifname"] for l in links if l["ifname"].startswith("vbs")}
have_tap = {l["ifname"] for l in links if l["ifname"].startswith("vnet")}
parked = {l["ifname"] for l in links if l["ifname"].startswith("vndel")}
addrs = {(a["ifname"], i["local"]) for a in load("addrs") for i in a.get("addr_info", [])
         if i["local"].startswith("10.150.")}
want_addrs = {(f"vbs{n[1:]}", f"10.150.{int(n[1:])}.1") for n in active}
routes = {r.get("dev") for r in load("routes") if r.get("dst", "").startswith("10.150.")}
nft = open(f"{work}/{label}-nft.txt").read()
nft_br = set(re.findall(r"vbs\d{3}", nft))
nft_nets = {f"vbs{int(m):03d}" for m in re.findall(r"10\.150\.(\d+)\.", nft)}
problems = []
def diff(what, have, want):
    if have != want:
        problems.append(f"{what}: extra {sorted(have - want)}, missing {sorted(want - have)}")
diff("bridges", have_br, want_br)
diff("taps", have_tap, ports)
diff("bridge addresses", addrs, want_addrs)
diff("routes' devices", routes - {None}, want_br)
if not nft_br <= want_br: problems.append(f"nft table names inactive bridges {sorted(nft_br - want_br)}")
if not nft_nets <= want_br: problems.append(f"nft table holds subnets of inactive networks {sorted(nft_nets - want_br)}")
if parked: problems.append(f"parked links left: {sorted(parked)}")
res = {"label": label, "active": sorted(active), "autostart": autostart, "ports": len(ports), "bridges": len(have_br),
       "nft_bridges": len(nft_br), "problems": problems}
json.dump(res, open(f"{work}/{label}-check.json", "w"))
print(f"soak: {label}: {len(active)} active, {len(ports)} ports, {len(have_br)} bridges; "
      + ("agree" if not problems else "DISAGREE: " + "; ".join(problems)), file=sys.stderr)
PY
}
check after-soak
stop_daemon
start_daemon
check after-restart
# Teardown: every network destroyed, every port detached; then nothing of virtnet is left.
v net-list --all --json | "$py" -c "import json,sys; print('\n'.join(n['name'] for n in json.load(sys.stdin) if n.get('active')))" |
  while read -r n; do v net-destroy "$n" >/dev/null || log "destroy $n failed"; done
v port-list --json | "$py" -c "import json,sys; print('\n'.join(p['domain']+' '+p['mac'] for p in json.load(sys.stdin)))" |
  while read -r d m; do v detach-interface "$d" network --mac "$m" >/dev/null || log "detach $d $m failed"; done
check after-teardown
stop_daemon

mkdir -p "$(dirname "$out")"
"$py" - "$work" "$out" "$seconds" "$clients" "$networks" "$command_line" <<'PY'
import collections, datetime, glob, json, re, sys
work, out, seconds, clients, networks, command_line = sys.argv[1:]
ops = collections.Counter(); outcome = collections.Counter(); expected = collections.Counter()
unexpected, hangs = [], []
for f in glob.glob(f"{work}/client-*.log"):
    for line in open(f, errors="replace"):
        verb, kind, *rest = line.rstrip("\n").split(" ", 2) + [""]
        ops[verb] += 1; outcome[kind] += 1
        if kind == "expected": expected[re.sub(r"s\d{3}", "sNNN", rest[0])[:120]] += 1
        elif kind == "UNEXPECTED": unexpected.append(line.strip())
        elif kind == "HANG": hangs.append(line.strip())
checks = [json.load(open(f"{work}/{l}-check.json")) for l in ("after-soak", "after-restart", "after-teardown")]
# A restart also starts the persistent networks marked autostart that were not running.
autostart = set(checks[0]["autostart"])
same_active = set(checks[1]["active"]) == set(checks[0]["active"]) | autostart
teardown_empty = checks[2]["bridges"] == 0 and checks[2]["ports"] == 0 and not checks[2]["active"]
ok = not unexpected and not hangs and all(not c["problems"] for c in checks) and same_active and teardown_empty
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "command": command_line, "seconds": int(seconds), "clients": int(clients), "networks": int(networks),
    "calls": sum(ops.values()), "calls_by_verb": dict(ops), "outcomes": dict(outcome),
    "expected_conflicts": dict(expected.most_common()), "unexpected": unexpected[:200],
    "hangs": hangs, "checks": checks, "same_active_after_restart": same_active,
    "nothing_left_after_teardown": teardown_empty, "pass": ok,
}
json.dump(report, open(out, "w"), indent=1)
print(f"| soak: {seconds} s, {clients} clients, {networks} networks | |")
print("|---|---|")
print(f"| CLI calls | {report['calls']} ({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))}) |")
print(f"| succeeded / expected conflicts | {outcome['ok']} / {outcome['expected']} |")
print(f"| unexpected errors | {len(unexpected)} |")
print(f"| hung calls (30 s timeout) | {len(hangs)} |")
for c in checks:
    print(f"| store vs kernel, {c['label']} | {'agree' if not c['problems'] else '; '.join(c['problems'])} ({len(c['active'])} active, {c['ports']} ports) |")
print(f"| networks active after the restart = those before + autostart ones | {same_active} |")
print(f"| nothing of virtnet left after teardown | {teardown_empty} |")
print(f"\nexpected conflicts by message: {dict(expected.most_common(12))}")
for u in unexpected[:10]: print("UNEXPECTED:", u)
print(f"{'PASS' if ok else 'FAIL'}; JSON in {out}")
sys.exit(0 if ok else 1)
PY
