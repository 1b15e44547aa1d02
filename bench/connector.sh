#!/usr/bin/env bash
# bench/connector.sh - moor vs os-brick, iSCSI attach/detach in the lab VM (same LIO
# target, same guest kernel, one run): single-path attach + detach latency and the
# 16-volume concurrent attach/detach. os-brick (and its oslo deps) are downloaded as
# wheels from PyPI on the host and installed offline into a venv in the guest.
#   bench/connector.sh [ITERATIONS=5] [VOLUMES=16]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
wheels=$repo/target/bench/osbrick-wheels
mkdir -p "$wheels"
ls "$wheels"/os_brick-*.whl >/dev/null 2>&1 || python3 -m pip download -q os-brick -d "$wheels"
cargo build -q --release -p moor-connector --bin moor -p moor-privhelper --bin moord -p moor-bench --bin connector_bench
bash tests/lab/lab.sh image
MOOR_BIN_DIR=$repo/target/release MOOR_BENCH_WHEELS=$wheels MOOR_BENCH_OUT=$repo/target/bench/connector.json \
MOOR_BENCH_ITER=${1:-5} MOOR_BENCH_VOLUMES=${2:-16} \
  bash tests/lab/lab.sh run --timeout 1800 -- bash "$repo/bench/connector_guest.sh"
