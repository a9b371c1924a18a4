#!/usr/bin/env bash
# The whole benchmark: installs libvirt & co (bench/setup.sh), builds virtnet in release mode,
# runs bench/netbench.py for both implementations and prints the markdown table.
#
#   bash bench/run.sh [--no-build] [netbench.py options...]
#   bash bench/run.sh --cycles 50 --networks 500 --out bench/results/run.json
#
# Defaults: --impl both --cycles 50 --networks 500 --out bench/results/latest.json.
# Everything it creates (network namespaces, daemons, temporary directories) is removed at exit,
# Ctrl-C included. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi

bash bench/setup.sh
if [ "$build" = 1 ]; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  if command -v cargo >/dev/null; then
    cargo build --release -q -p virtnetd -p virtnet
  else
    echo "bench/run: cargo not found, virtnet is measured only if target/release has it" >&2
  fi
fi

mkdir -p bench/results
args=("$@")
has() { local o; for o in "${args[@]}"; do [ "$o" = "$1" ] && return 0; done; return 1; }
has --impl || args+=(--impl both)
has --out || args+=(--out bench/results/latest.json)

source bench/lib.sh
status=0
run_python_bench bench/netbench.py "${args[@]}" || status=$?
exit $status
