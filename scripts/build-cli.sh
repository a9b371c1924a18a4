#!/usr/bin/env bash
# Builds the `virtnet` CLI as a static executable (glibc's crt-static; release profile) and
# prints its path. Scripts call the CLI once per verb, so its start-up is part of every
# `virsh`-style command's time: statically linked it starts in ~1.0 ms here instead of ~1.4
# (no dynamic loader, no libgcc_s/libc look-ups; measured side by side, BENCHMARKS.md). The
# CLI uses nothing of glibc that needs shared objects at run time (no NSS: owners given by
# name are read from /etc/passwd and /etc/group directly). virtnetd stays dynamic: it links
# libnftables.
#
#   bash scripts/build-cli.sh        # -> target/x86_64-unknown-linux-gnu/release/virtnet
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
triple=x86_64-unknown-linux-gnu
# An explicit --target keeps the flag off build scripts and proc macros (they run on the host
# and may load shared objects); the artifacts land in target/<triple>/.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --quiet --release --target "$triple" -p virtnet --bin virtnet >&2
bin=$PWD/target/$triple/release/virtnet
# A program interpreter (the dynamic loader) here would mean the flag did not apply.
if readelf -l "$bin" | grep -q 'program interpreter'; then
  echo "build-cli.sh: $bin is not statically linked" >&2
  exit 1
fi
echo "$bin"
