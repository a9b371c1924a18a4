#!/usr/bin/env bash
# PID 1 of a benchmark daemon's PID namespace: runs "$@", forwards TERM/INT to it, reaps every
# orphan (daemonized helpers such as dnsmasq) and exits when the program does; the kernel then
# kills whatever is left in the namespace. netbench.py starts it as
#   ip netns exec NS unshare --pid --fork --kill-child --mount-proc bash bench/pid1.sh PROGRAM ARGS...
set -uo pipefail
"$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null' TERM INT
while kill -0 $child 2>/dev/null; do wait $child; done
wait $child
