#!/usr/bin/env bash
# Issue 15's benchmark: virtnet's router advertisements and DHCPv6 next to dnsmasq as libvirt 9
# runs it, in one run (bench/ipv6.py drives it, bench/ipv6probe.py is the guest side).
#
#   bash bench/ipv6.sh [--no-build] [ipv6.py options...]
#   bash bench/ipv6.sh --rs-samples 200 --slaac-samples 40 --dhcp6-samples 200 \
#        --load-ports 32 --per-port 8 --networks 30 --out bench/results/ipv6.json
#
# Measures RS -> RA latency, a new guest's first RS -> usable SLAAC address, DHCPv6
# SOLICIT -> REPLY latency, DHCPv6 leases/s with many clients, and memory per IPv6 network.
# Everything runs in network namespaces it creates (daemons also in their own PID and mount
# namespaces) and removes at exit, Ctrl-C included. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
bash bench/setup.sh
if [ "$build" = 1 ]; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release -q -p virtnetd -p virtnet
fi
# The leases/s phases' client (ipv6.py --load-client rust, the default): a standalone project.
if [ ! -x bench/dhcp6load/target/release/dhcp6load ] || [ "$build" = 1 ]; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release -q --manifest-path bench/dhcp6load/Cargo.toml
fi
mkdir -p bench/results
source bench/lib.sh
status=0
run_python_bench bench/ipv6.py "$@" || status=$?
exit $status
