#!/usr/bin/env bash
# Guest ports at scale: 1,000 `virtnet attach-interface` on one NAT network, each timed twice,
# as the user sees it (wall clock around the CLI, its spawn and socket connect included) and as
# the daemon does (its request log's elapsed_us for `POST /v1/ports`, from the request's arrival
# to its answer), then all of them detached the same way. Reports median and p95 for ports
# #1-10, #491-500 and #991-1000 (is the 1,000th port as cheap as the first?) and writes the
# samples to a JSON file.
#
# Everything happens in a network namespace this script creates; the trap removes it, stops the
# daemon it started (by PID) and deletes its temporary directory.
#
#   bash bench/ports.sh [PORTS] [OUT.json]      (as root, after cargo build --release)
#
# Defaults: 1000 ports, bench/results/ports-<UTC date>.json. VIRTNET_BENCH_LOG sets the
# daemon's log filter (default info; the request log lines are at info).
set -euo pipefail
cd "$(dirname "$0")/.."
ports=${1:-1000}
out=${2:-bench/results/ports-$(date -u +%Y-%m-%d).json}
[ "$ports" -ge 10 ] || { echo "ports.sh: at least 10 ports" >&2; exit 2; }
[ -x target/release/virtnetd ] && [ -x target/release/virtnet ] ||
  { echo "ports.sh: run cargo build --release first" >&2; exit 1; }
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

ns="vnbench-ports-$$"
work=$(mktemp -d /tmp/vnbench-ports.XXXXXX)
daemon=
cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon" || true; fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private copies: a rebuild during the run must not swap the binaries under it.
cp target/release/virtnetd target/release/virtnet "$work/"
bin=$work
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin/virtnetd" --state-dir "$work/s" --run-dir "$work/r" --libvirt-run-dir "$work/r/libvirt" \
  --log-level "${VIRTNET_BENCH_LOG:-info}" 2>"$work/log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/r/virtnet.sock" ] && break; sleep 0.05; done
[ -S "$work/r/virtnet.sock" ] || { cat "$work/log" >&2; exit 1; }
v() { "$bin/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }
v net-define examples/default.xml >/dev/null
v net-start default >/dev/null

# Both set a variable instead of printing: a command substitution (`$(…)`) forks bash
# (~0.5 ms), and inside a timed interval that fork was measured as the CLI's time.
mac() { printf -v m '52:54:00:00:%02x:%02x' $(($1 / 256)) $(($1 % 256)); }   # -> $m

echo "creating $ports ports on virbr0 ..." >&2
: >"$work/create_cli"
t_all=${EPOCHREALTIME/./}
for i in $(seq 1 "$ports"); do
  mac "$i"
  t0=${EPOCHREALTIME/./}
  v attach-interface "bench-vm$i" network default --mac "$m" >/dev/null
  t1=${EPOCHREALTIME/./}
  echo $((t1 - t0)) >>"$work/create_cli"
done
create_total=$((${EPOCHREALTIME/./} - t_all))
on_bridge=$(ip -n "$ns" -o link show master virbr0 | wc -l)
stored=$(v port-list | grep -c vnet || true)

echo "deleting them ..." >&2
: >"$work/delete_cli"
t_all=${EPOCHREALTIME/./}
for i in $(seq 1 "$ports"); do
  mac "$i"
  t0=${EPOCHREALTIME/./}
  v detach-interface "bench-vm$i" network --mac "$m" >/dev/null
  t1=${EPOCHREALTIME/./}
  echo $((t1 - t0)) >>"$work/delete_cli"
done
delete_total=$((${EPOCHREALTIME/./} - t_all))
left=$(ip -n "$ns" -o link show master virbr0 | wc -l)

# The daemon's request log, in arrival order: `POST /v1/ports` and `DELETE /v1/ports/NAME`.
grep 'answered' "$work/log" | grep 'method=POST' | grep -E 'path=/v1/ports[}: ]' |
  sed -E 's/.*elapsed_us=([0-9]+).*/\1/' >"$work/create_daemon"
grep 'answered' "$work/log" | grep 'method=DELETE' | grep 'path=/v1/ports/' |
  sed -E 's/.*elapsed_us=([0-9]+).*/\1/' >"$work/delete_daemon"

machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$(dirname "$out")"
"$py" - "$work" "$ports" "$create_total" "$delete_total" "$on_bridge" "$stored" "$left" "$machine" "$out" <<'PY'
import json, statistics, sys, datetime

work, n, create_total, delete_total, on_bridge, stored, left, machine, out = sys.argv[1:]
n = int(n)

def load(name):
    with open(f"{work}/{name}") as f:
        return [int(x) / 1000 for x in f.read().split()]  # ms

series = {k: load(k) for k in ("create_cli", "create_daemon", "delete_cli", "delete_daemon")}
for k, v in series.items():
    if len(v) != n:
        sys.exit(f"ports.sh: {k} has {len(v)} samples, expected {n}")

def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(0.95 * len(xs) + 0.5) - 1))]

def stats(xs):
    return {"median": round(statistics.median(xs), 3), "p95": round(p95(xs), 3)}

mid = n // 2
groups = [(1, 10), (mid - 9, mid), (n - 9, n)]
def by_group(xs):
    return {f"#{a}-{b}": stats(xs[a - 1:b]) for a, b in groups}
hundreds = {f"#{a}-{min(a + 99, n)}": round(statistics.median(series["create_daemon"][a - 1:a + 99]), 3)
            for a in range(1, n + 1, 100)}

report = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "machine": machine,
    "ports": n,
    "ports_on_bridge_after_create": int(on_bridge),
    "ports_listed_after_create": int(stored),
    "ports_on_bridge_after_delete": int(left),
    "create_total_s": round(int(create_total) / 1e6, 2),
    "delete_total_s": round(int(delete_total) / 1e6, 2),
    "create_cli_ms": by_group(series["create_cli"]) | {"all": stats(series["create_cli"])},
    "create_daemon_ms": by_group(series["create_daemon"]) | {"all": stats(series["create_daemon"])},
    "create_daemon_median_ms_per_100": hundreds,
    "delete_cli_ms": {"all": stats(series["delete_cli"])},
    "delete_daemon_ms": {"all": stats(series["delete_daemon"]),
                         "sum_s": round(sum(series["delete_daemon"]) / 1000, 2)},
    "samples_ms": series,
}
with open(out, "w") as f:
    json.dump(report, f, indent=1)
    f.write("\n")

def cell(s):
    return f"{s['median']:.2f} / {s['p95']:.2f}"
hdr = [f"#{a}–{b}" for a, b in groups]
print(f"| median / p95, ms | {' | '.join(hdr)} | all {n} |")
print("|---|" + "---|" * (len(groups) + 1))
for label, key in (("attach-interface, CLI wall clock", "create_cli"),
                   ("POST /v1/ports, daemon side", "create_daemon")):
    row = report[f"{key}_ms"]
    print(f"| {label} | " + " | ".join(cell(row[f'#{a}-{b}']) for a, b in groups) + f" | {cell(row['all'])} |")
print()
print(f"- created {n} ports in {report['create_total_s']} s ({on_bridge} taps on virbr0, {stored} listed);"
      f" deleted them all in {report['delete_total_s']} s of CLI calls ({left} left on virbr0):"
      f" detach-interface {cell(report['delete_cli_ms']['all'])} ms per call,"
      f" DELETE /v1/ports/NAME daemon side {cell(report['delete_daemon_ms']['all'])} ms"
      f" ({report['delete_daemon_ms']['sum_s']} s in all)")
print("- daemon-side create median per hundred ports, ms: " +
      ", ".join(f"{v:.2f}" for v in hundreds.values()))
print(f"- {machine}; samples in {out}")
PY
