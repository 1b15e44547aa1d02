#!/usr/bin/env bash
# Every test: format, lints, unit + integration tests (including the differential test
# against oslo.rootwrap, which builds its own venv), and a short fuzz run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/lib.sh
ensure_toolchain
t0=$(date +%s)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings

step "cargo test (unit, integration, differential vs oslo.rootwrap 7.10.0)"
cargo build -q -p moor-connector --bin moor
cargo test --workspace -q 2>&1 | tee target/test.log

step "fuzz: short runs of every target (corpus in fuzz/corpus)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "lab: real-kernel scenarios in the VM (never skipped: no VM is a failure)"
cargo build -q --workspace --bins
bash tests/lab/lab.sh image
bash tests/lab/lab.sh scenario --all --timeout 2400

echo
echo "all tests passed in $(( $(date +%s) - t0 )) s"
