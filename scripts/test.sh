#!/usr/bin/env bash
# Every test: format, lints, unit + integration tests (including the differential test
# against oslo.rootwrap, which builds its own venv), and a short fuzz run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/lib.sh
ensure_toolchain
ensure_packages cryptsetup-bin qemu-utils # luks tests: cryptsetup on image files, qemu-io/qemu-img interop
t0=$(date +%s)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings
# The fuzz targets live in their own workspace: check they still build with the
# current types before anything slow runs.
cargo check -q --manifest-path fuzz/Cargo.toml --bins

step "cargo test (unit, integration, differential vs oslo.rootwrap 7.10.0)"
cargo build -q -p moor-connector --bin moor
cargo test --workspace -q 2>&1 | tee target/test.log

step "s390x: cargo check of the workspace and the unit tests under qemu-s390x (Debian sid chroot)"
bash scripts/s390x.sh all

step "fuzz: short runs of every target (corpus in fuzz/corpus)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "Debian package: scripts/build-deb.sh --check (release build, lintian; the lab's package_install installs it)"
bash scripts/build-deb.sh --check

step "lab: real-kernel scenarios in the VM (never skipped: no VM is a failure)"
cargo build -q --workspace --bins
bash tests/lab/lab.sh image
bash tests/lab/lab.sh scenario --all --timeout 2400 2>&1 | tee target/lab.log

# One closing line with every count, in the plain form CI reads.
read -r cp cf < <(awk '/^test result:/ {p += $4; f += $6} END {print p+0, f+0}' target/test.log)
read -r sp sf < <(awk '/^test result:/ {p += $4; f += $6} END {print p+0, f+0}' target/s390x-test.log)
read -r lp lf < <(sed -n 's/^lab: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' target/lab.log | tail -1)
echo
echo "cargo tests: $cp passed, $cf failed; s390x (qemu-user): $sp passed, $sf failed; lab scenarios: ${lp:-0} passed, ${lf:-0} failed; $(( $(date +%s) - t0 )) s"
echo "total: $(( cp + sp + ${lp:-0} )) passed, $(( cf + sf + ${lf:-0} )) failed"
