#!/usr/bin/env bash
# What living beside other firewalls costs (issue 14, item 3), side by side in one run:
#  - net-start + net-destroy of a NAT network, N times, on a host without other firewalls and
#    on one with Docker's iptables-nft filter tables (FORWARD policy drop, DOCKER-USER) and a
#    ufw-style nft table (input and forward policy drop), with --firewall-integration (each
#    start checks the other tables and inserts the accepts, each destroy removes them);
#  - after a "Docker restart" (its tables deleted and made again), how long until virtnet's
#    accepts are back in DOCKER-USER (the ruleset watcher, no polling in the daemon; the figure
#    includes this script's polling iptables-nft, ~5 ms a call).
# virtnetd runs in network namespaces this script creates and removes; the root namespace is
# never touched.
#
#   bash bench/coexist.sh [N]        (needs: cargo build --release -p virtnetd -p virtnet)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-30}
[ "$(id -u)" = 0 ] || { echo "coexist: run as root" >&2; exit 1; }
work=$(mktemp -d /tmp/vnbench-coexist.XXXXXX)
pids=()
nss=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p"; done
  for s in "${nss[@]}"; do ip netns del "$s" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
cp target/release/virtnetd target/release/virtnet "$work/"
echo "<network><name>a</name><forward mode='nat'/><bridge name='vnco0'/><ip address='10.9.0.1' \
netmask='255.255.255.0'><dhcp><range start='10.9.0.10' end='10.9.0.99'/></dhcp></ip></network>" >"$work/a.xml"

docker_like() {
  local ns=$1
  ip netns exec "$ns" sh -e -c '
    i() { iptables-nft -w "$@"; }
    i -P FORWARD DROP
    for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do i -N $c; done
    i -A DOCKER-USER -j RETURN
    i -A FORWARD -j DOCKER-USER
    i -A FORWARD -j DOCKER-ISOLATION-STAGE-1
    i -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    i -A FORWARD -o docker0 -j DOCKER
    i -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
    i -A DOCKER-ISOLATION-STAGE-1 -j RETURN'
}

ufw_like() {
  ip netns exec "$1" nft -f - <<'NFT'
table inet ufw {
  chain input { type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname "lo" accept
    tcp dport 22 accept
  }
  chain forward { type filter hook forward priority filter; policy drop;
    ct state established,related accept
  }
}
NFT
}

# start_daemon NAME [virtnetd args...]: a namespace with a daemon; prints nothing.
start_daemon() {
  local name=$1; shift
  local ns=vnco-$name-$$
  ip netns add "$ns"; nss+=("$ns"); ip -n "$ns" link set lo up
  ip netns exec "$ns" "$work/virtnetd" --state-dir "$work/$name/s" --run-dir "$work/$name/r" \
    --libvirt-run-dir "$work/$name/r/libvirt" "$@" 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 200); do [ -S "$work/$name/r/virtnet.sock" ] && break; sleep 0.05; done
}

v() { local name=$1; shift; ip netns exec "vnco-$name-$$" "$work/virtnet" -q --connect "$work/$name/r/virtnet.sock" "$@"; }

start_daemon plain
start_daemon firewalls --firewall-integration
docker_like "vnco-firewalls-$$"
ufw_like "vnco-firewalls-$$"
v plain net-define "$work/a.xml" >/dev/null
v firewalls net-define "$work/a.xml" >/dev/null

py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3
"$py" - "$n" "$work" "$$" <<'PY'
import subprocess, sys, time
n, work, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def v(name, *args):
    subprocess.run(["ip", "netns", "exec", f"vnco-{name}-{pid}", f"{work}/virtnet", "-q",
                    "--connect", f"{work}/{name}/r/virtnet.sock", *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
res = {"plain": ([], []), "firewalls": ([], [])}
for _ in range(n):
    # Interleaved, so that the other helpers' builds load both alike.
    for name, (starts, stops) in res.items():
        t0 = time.perf_counter(); v(name, "net-start", "a"); t1 = time.perf_counter()
        v(name, "net-destroy", "a"); t2 = time.perf_counter()
        starts.append((t1 - t0) * 1e3); stops.append((t2 - t1) * 1e3)
for name, (starts, stops) in res.items():
    print(f"{name:10} net-start  p50 {pct(starts, 50):6.1f} ms  p99 {pct(starts, 99):6.1f} ms   "
          f"net-destroy p50 {pct(stops, 50):6.1f} ms  p99 {pct(stops, 99):6.1f} ms  (n={n})")
PY

# Docker restarts while the network runs: time until both accepts are back in DOCKER-USER.
ns=vnco-firewalls-$$
v firewalls net-start a >/dev/null 2>&1
"$py" - "$n" "$ns" <<'PY'
import subprocess, sys, time
n, ns = int(sys.argv[1]), sys.argv[2]
def sh(cmd):
    return subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", cmd], check=True,
                          capture_output=True, text=True).stdout
docker = """i() { iptables-nft -w "$@"; }
i -P FORWARD DROP
for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do i -N $c; done
i -A DOCKER-USER -j RETURN
i -A FORWARD -j DOCKER-USER"""
res = []
for _ in range(n):
    sh("nft delete table ip filter")
    t0 = time.perf_counter()
    sh(docker)
    while sh("iptables-nft -w -S DOCKER-USER").count("virtnet:a") < 2:
        if time.perf_counter() - t0 > 10:
            sys.exit("accepts did not come back within 10 s")
    res.append((time.perf_counter() - t0) * 1e3)
res.sort()
p = lambda q: res[min(len(res) - 1, int(round(q / 100 * (len(res) - 1))))]
print(f"Docker restart (its 6 iptables-nft commands included) until both accepts are back: "
      f"p50 {p(50):.1f} ms  p99 {p(99):.1f} ms  (n={n})")
PY
v firewalls net-destroy a >/dev/null
