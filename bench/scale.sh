#!/usr/bin/env bash
# Scale benchmark (issue 18): 4,000 networks and 10,000 guest ports on one host, with the
# kernel's own cost as the floor and libvirt's curve up to where it stops, in one run.
#
#   bash bench/scale.sh [--no-build] [-q] [scale.py options...]
#   bash bench/scale.sh --networks 200 --ports 500            # a small run first
#   bash bench/scale.sh                                       # 4,000 networks, 10,000 ports
#
# Builds virtnet in release mode (unless --no-build), installs libvirt & co (bench/setup.sh),
# runs bench/scale.py (see its --help for the phases), writes
# bench/results/scale-<UTC date>.json and .png (matplotlib, in a venv from PyPI under
# /var/tmp/virtnet-bench-venv) and prints the markdown table. Everything it creates runs in
# network namespaces it makes and deletes (and PID namespaces for the daemons); the trap stops
# only the processes it started, by PID, and removes its namespaces. Run as root.
# The 4,000-network run takes tens of minutes; libvirt stops by itself (Debian's defaults stop
# it at ~128 networks, inotify). On a terminal a progress line counts networks and ports;
# -q (or stderr not being a terminal) leaves only the log lines.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
bash bench/setup.sh
if [ "$build" = 1 ]; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release -q -p virtnetd -p virtnet
fi

mkdir -p bench/results
args=()
for a in "$@"; do
  if [ "$a" = -q ] || [ "$a" = --quiet ]; then export BENCH_QUIET=1; else args+=("$a"); fi
done
has() { local o; for o in "${args[@]}"; do [ "$o" = "$1" ] && return 0; done; return 1; }
out=bench/results/scale-$(date -u +%Y-%m-%d).json
if has --out; then
  for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = --out ] && out=${args[$((i + 1))]}; done
else
  args+=(--out "$out")
fi

venv=/var/tmp/virtnet-bench-venv
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib ||
    echo "bench/scale: matplotlib could not be installed; no PNG" >&2
fi

source bench/lib.sh
status=0
run_python_bench bench/scale.py "${args[@]}" || status=$?
if [ -f "$out" ] && "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  "$venv/bin/python" bench/scale.py --plot "$out" "${out%.json}.png" && echo "plot: ${out%.json}.png" >&2
fi
exit $status
