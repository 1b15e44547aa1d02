#!/bin/bash
# scripts/s390x.sh - the s390x checks issue #8 asks for, on this x86_64 machine:
# `cargo check --target s390x-unknown-linux-gnu` of the whole workspace and the unit tests
# of moor-types, moor-privhelper and moor-connector run under qemu-user (qemu-s390x).
#
# This machine's Rust toolchain has only the x86_64 standard library and rustup cannot
# fetch another, so the checks run in a Debian sid chroot (mmdebstrap, cached under
# target/s390x-root) whose rustc/cargo come with Debian's s390x standard library
# (libstd-rust-dev:s390x, multiarch), the s390x cross gcc as the linker and libudev for
# s390x. Debian's rustc (1.97 at the time of writing) is newer than the workspace's
# rust-version. Needs root (mmdebstrap, chroot, bind mounts).
#
# Usage: scripts/s390x.sh [check|test|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=$REPO/target/s390x-root
what=${1:-all}
log() { printf '[s390x] %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "s390x.sh needs root (mmdebstrap, chroot)" >&2; exit 2; }
if [ ! -x "$ROOT/usr/bin/cargo" ] || [ ! -d "$ROOT/usr/lib/rustlib/s390x-unknown-linux-gnu" ]; then
  command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap; }
  rm -rf "$ROOT"
  log "building the sid chroot with rustc, cargo, the s390x std, cross gcc, qemu-user"
  # sid's Release files carry a Valid-Until the mirror may be past: not a trust question
  # for a throw-away build chroot.
  timeout 1200 mmdebstrap --quiet --variant=apt --architectures=amd64,s390x \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --include=rustc,cargo,libstd-rust-dev:s390x,gcc-s390x-linux-gnu,libc6-dev-s390x-cross,qemu-user,libudev-dev:s390x,pkg-config,ca-certificates \
    sid "$ROOT" "deb http://deb.debian.org/debian sid main"
fi
log "$(chroot "$ROOT" rustc --version), $(chroot "$ROOT" qemu-s390x --version | head -1)"

mkdir -p "$ROOT/src" "$ROOT/proc" "$ROOT/dev"
mounted=()
cleanup() { local m; for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc dev; do mount --rbind "/$m" "$ROOT/$m"; mounted=("$ROOT/$m" "${mounted[@]}"); done
mount --bind "$REPO" "$ROOT/src"; mounted=("$ROOT/src" "${mounted[@]}")
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# The host's CA bundle: the registries may be reached through a proxy whose CA only
# the host trusts.
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/host-ca.crt"

in_root() {
  chroot "$ROOT" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/src/target/s390x-cargo-home CARGO_TARGET_DIR=/src/target/s390x \
    CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_LINKER=s390x-linux-gnu-gcc \
    CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUNNER="qemu-s390x -L /usr/s390x-linux-gnu" \
    PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_PATH=/usr/lib/s390x-linux-gnu/pkgconfig \
    CARGO_HTTP_CAINFO=/etc/host-ca.crt SSL_CERT_FILE=/etc/host-ca.crt \
    RUSTFLAGS="-D warnings" \
    bash -c "cd /src && $*"
}

if [ "$what" = check ] || [ "$what" = all ]; then
  log "cargo check --workspace --all-targets --target s390x-unknown-linux-gnu"
  in_root cargo check -q --workspace --all-targets --target s390x-unknown-linux-gnu
fi
if [ "$what" = test ] || [ "$what" = all ]; then
  # The library tests of the crates with the s390x code paths (zFCP, DASD, FCP LUNs,
  # CCW bus ids, the guards) and everything they share. Under qemu-user every
  # syscall is the host kernel's: fixture trees, tempdirs and pipes work as on s390x.
  log "cargo test --lib --target s390x-unknown-linux-gnu (qemu-s390x)"
  in_root cargo test -q --target s390x-unknown-linux-gnu --lib \
    -p moor-types -p moor-privhelper -p moor-connector 2>&1 | tee target/s390x-test.log
  ! grep -q '^test result: FAILED' target/s390x-test.log || { echo "s390x tests failed" >&2; exit 1; }
fi
log "done"
