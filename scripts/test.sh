#!/usr/bin/env bash
# Installs the test dependencies and runs every test, plus the format and lint gates.
# This is exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

# The libvirt conformance corpus and the seeds' examples live in ../shared.
export VIRTNET_SHARED_DIR="${VIRTNET_SHARED_DIR:-$(cd .. && pwd)/shared}"
[ -d "$VIRTNET_SHARED_DIR/conformance" ] || { echo "test: $VIRTNET_SHARED_DIR/conformance is missing" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --no-fail-fast
