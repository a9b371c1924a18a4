#!/usr/bin/env bash
# Scrape cost of GET /metrics (issue 16): one virtnetd in a network namespace with N active
# networks (nat, DHCP) and P guest ports (taps, spread over the networks), scraped S times over
# its read-only API socket with curl. Reports p50/p99 of the daemon side (the request's
# elapsed_us in the daemon's log: routing, the scrape and the encoding) and of curl's wall time
# (connect to last byte), the daemon's CPU time per scrape (user + system, from /proc: the
# cost whatever else runs), the exposition's size and series count. Target: < 10 ms at 500
# networks and 2,000 ports.
#
#   bash bench/metrics.sh [--networks N] [--ports P] [--scrapes S] [--no-settle]
#   VIRTNET_BIN=DIR      another build's virtnetd and virtnet (to compare two builds)
#   METRICS_SAVE=FILE    keep the first exposition in FILE
#   METRICS_LOG=FILTER   the daemon's log filter (with virtnetd::metrics=debug: phase timings)
#
# Before scraping, the script waits until the namespace's links are no longer announced
# (--no-settle: scrape at once): the kernel's link-watch work handles the new taps' carrier
# changes 100 links a second, each under RTNL, so it runs ~20 s after 2,000 attaches, and a
# scrape that waits for RTNL then measures that, not itself.
#
# Defaults: 500 networks, 2,000 ports, 200 scrapes. Needs a release build (cargo build
# --release -p virtnetd -p virtnet). Everything happens in a network namespace this script
# creates; the trap stops the daemon it started, by PID, and removes the namespace and its
# temporary directory. The root network namespace is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

networks=500
ports=2000
scrapes=200
settle=1
while [ $# -gt 0 ]; do
  case $1 in
    --networks) networks=$2; shift ;;
    --ports) ports=$2; shift ;;
    --scrapes) scrapes=$2; shift ;;
    --no-settle) settle=0 ;;
    -h|--help) sed -n 2,23p "$0"; exit 0 ;;
    *) echo "metrics: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "metrics: run as root" >&2; exit 1; }
src=${VIRTNET_BIN:-target/release} # VIRTNET_BIN: another build's virtnetd and virtnet (before/after)
[ -x "$src/virtnetd" ] && [ -x "$src/virtnet" ] ||
  { echo "metrics: run cargo build --release -p virtnetd -p virtnet first" >&2; exit 1; }
log() { echo "metrics: $*" >&2; }

ns=vnmetrics-$$
work=$(mktemp -d /tmp/vnbench-metrics.XXXXXX)
daemon=
cleanup() {
  set +e
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon"; fi
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private copies: a rebuild during the run must not swap the binaries under it.
cp "$src/virtnetd" "$src/virtnet" "$work/"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
printf 'nameserver 192.0.2.53\n' >"$work/resolv.conf"   # unreachable: nothing is forwarded
ip netns exec "$ns" "$work/virtnetd" --state-dir "$work/s" --run-dir "$work/r" \
  --libvirt-run-dir "$work/r/libvirt" --log-level "${METRICS_LOG:-info}" --resolv-conf "$work/resolv.conf" \
  2>"$work/log" &
daemon=$!
for _ in $(seq 200); do [ -S "$work/r/virtnet.sock" ] && break; sleep 0.05; done
[ -S "$work/r/virtnet.sock" ] || { cat "$work/log" >&2; exit 1; }
v() { "$work/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }

log "starting $networks networks ..."
t0=$(date +%s)
for i in $(seq 0 $((networks - 1))); do
  a=$((i / 250)); b=$((i % 250))
  printf "<network><name>m%04d</name><forward mode='nat'/><bridge name='vbm%04d' stp='off'/>\
<ip address='10.%d.%d.1' prefix='24'><dhcp><range start='10.%d.%d.2' end='10.%d.%d.254'/></dhcp></ip>\
</network>\n" "$i" "$i" $((100 + a)) "$b" $((100 + a)) "$b" $((100 + a)) "$b" >"$work/net.xml"
  v net-create "$work/net.xml" >/dev/null
done
log "attaching $ports ports ..."
for j in $(seq 0 $((ports - 1))); do
  v attach-interface "g$j" network "$(printf 'm%04d' $((j % networks)))" \
    --mac "$(printf '52:54:00:%02x:%02x:%02x' $((j / 65536)) $((j / 256 % 256)) $((j % 256)))" >/dev/null
done
log "set up in $(($(date +%s) - t0)) s"
if [ "$settle" = 1 ]; then
  # Until 2 s pass without a link announcement in the namespace (at most 120 s).
  t1=$(date +%s)
  while [ $(($(date +%s) - t1)) -lt 120 ] &&
    [ "$(timeout 2 ip -n "$ns" monitor link | wc -l)" -gt 0 ]; do :; done
  log "links quiet after $(($(date +%s) - t1)) s"
fi
log "scraping $scrapes times ..."

ro=$work/r/virtnet-ro.sock
curl -s --unix-socket "$ro" http://localhost/metrics >"$work/first.txt"
# METRICS_SAVE=FILE keeps that first exposition (to compare two builds' output).
[ -z "${METRICS_SAVE:-}" ] || cp "$work/first.txt" "$METRICS_SAVE"
before=$(grep -c 'path=/metrics' "$work/log" || true)
# The daemon's CPU time (user + system, clock ticks) around the scrapes: what a scrape costs
# whatever else the machine is doing (the kernel's work for the dumps is the daemon's system
# time).
cpu() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
cpu0=$(cpu)
: >"$work/wall"
for _ in $(seq "$scrapes"); do
  curl -s -o /dev/null -w '%{time_total}\n' --unix-socket "$ro" http://localhost/metrics >>"$work/wall"
done
cpu1=$(cpu)
sleep 0.2
# The daemon's own time of each scrape: its request log line ("answered ... elapsed_us=N").
grep 'path=/metrics' "$work/log" | tail -n +"$((before + 1))" | grep -o 'elapsed_us=[0-9]*' |
  cut -d= -f2 >"$work/daemon"
# With the metrics' debug log: the median of each phase over the scrapes.
[ -z "${METRICS_LOG:-}" ] || grep "metrics scraped" "$work/log" | tail -n "$scrapes" | python3 -c '
import re, sys
rows = [dict((k, int(v)) for k, v in re.findall(r"(\w+_us)=(\d+)", line)) for line in sys.stdin]
keys = [k for k in rows[0]] if rows else []
med = lambda xs: sorted(xs)[len(xs) // 2]
p99 = lambda xs: sorted(xs)[min(len(xs) - 1, int(0.99 * len(xs)))]
print("phases, median of", len(rows), "scrapes (ms):",
      ", ".join(f"{k[:-3]} {med([r[k] for r in rows if k in r]) / 1000:.2f}" for k in keys))
print("phases, p99 (ms):",
      ", ".join(f"{k[:-3]} {p99([r[k] for r in rows if k in r]) / 1000:.2f}" for k in keys))
# The slowest scrapes whole: which phase made them slow.
total = lambda r: max(r.get("parts_us", 0), r.get("kernel_us", 0)) + r.get("rows_us", 0) + r.get("encode_us", 0)
for r in sorted(rows, key=total)[-3:]:
    print("a slow scrape (ms):", ", ".join(f"{k[:-3]} {v / 1000:.2f}" for k, v in r.items()))
' >&2
bytes=$(wc -c <"$work/first.txt")
series=$(grep -vc '^#' "$work/first.txt")
python3 - "$work/daemon" "$work/wall" "$networks" "$ports" "$scrapes" "$bytes" "$series" \
  "$(cat /proc/loadavg)" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" <<'EOF'
import sys
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]
daemon = [int(x) / 1000 for x in open(sys.argv[1]) if x.strip()]
wall = [float(x) * 1000 for x in open(sys.argv[2]) if x.strip()]
n, p, s, size, series, load, ticks, hz = sys.argv[3:11]
print(f"networks {n}, ports {p}, scrapes {s}: exposition {int(size) / 1024:.0f} KiB, {series} series; load {load}")
print("| scrape | p50 | p99 | max |")
print("|---|---|---|---|")
for name, xs in (("daemon side (ms)", daemon), ("curl wall time (ms)", wall)):
    print(f"| {name} | {pct(xs, .5):.2f} | {pct(xs, .99):.2f} | {max(xs):.2f} |")
print(f"daemon CPU time per scrape (user + system, all its threads): {int(ticks) / int(hz) * 1000 / int(s):.2f} ms")
if len(daemon) != int(s):
    print(f"warning: {len(daemon)} daemon log lines for {s} scrapes", file=sys.stderr)
EOF
