#!/usr/bin/env bash
# The main job: build moor, boot the lab VM (a stock Debian kernel with a LIO iSCSI
# target inside), and attach a volume through moord as an unprivileged caller: write
# and read data, detach, print the device info and the audit trail. Before that, audit
# the filter sets with `moor filters lint/list/check` — moor's own shipped set, and
# (when ../shared is present) the one cinder ships, showing what rootwrap would let
# through and moor does not.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/lib.sh
ensure_toolchain

step "building moor and moord"
cargo build -q --workspace --bins
moor=$repo/target/debug/moor

# Filter files must be owned by the trusted uid and not group/other-writable; a fresh
# checkout may be neither, so audit copies laid out the way an installation would.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
mkdir -m 0755 "$work/moor"
install -m 0644 packaging/filters.d/moor.filters "$work/moor/"
owner=$(id -u)
set_args=(--filters-path "$work/moor" --trusted-owner "$owner")

step "moor filters lint: moor's own filter set (packaging/filters.d/moor.filters)"
"$moor" filters lint "${set_args[@]}"

step "moor filters list --min-risk medium"
"$moor" filters list "${set_args[@]}" --min-risk medium

show() {
  echo "\$ moor filters check … -- $*"
  set +e; "$moor" filters check "${set_args[@]}" -- "$@"; rc=$?; set -e
  echo "  (exit $rc)"
}
step "moor filters check: what moord would run (executables are looked up on this host: a tool that is not installed here, such as iscsiadm outside the lab, is reported as not in exec_dirs)"
show iscsiadm -m node -T iqn.2003-01.org.linux-iscsi.lab:vol1 -p 127.0.0.1:3260 --login
show blockdev --getsize64 /dev/sdb
show blockdev --getsize64 /dev/../etc/shadow
show iscsiadm -m node -T 'iqn.2003-01.org.x:a;sh' -p 127.0.0.1 --login
show sh -c id
echo "\$ moor filters check … --write /sys/class/scsi_host/host2/scan --content '0 0 1'"
"$moor" filters check "${set_args[@]}" --write /sys/class/scsi_host/host2/scan --content '0 0 1'

shared=${MOOR_SHARED_DIR:-$repo/../shared}
if [ -d "$shared/data/filters" ]; then
  mkdir -m 0755 "$work/cinder"
  install -m 0644 "$shared/data/filters/cinder-volume.filters" "$work/cinder/"
  cset=(--filters-path "$work/cinder" --trusted-owner "$owner")
  step "the filter set cinder-volume ships today: lint (errors are root-equivalent entries)"
  set +e; "$moor" filters lint "${cset[@]}" | grep -E 'error\[' | head -15; set -e
  step "known rootwrap bypasses, decided by moor against cinder's own file"
  for cmd in "ionice -c3 /tmp/evil/dd if=/dev/zero of=/dev/sdb" \
             "env LC_ALL=anything lvs" \
             "privsep-helper --config-file /etc/../tmp/evil.conf --privsep_context os_brick.privileged.default --privsep_sock_path /tmp/s"; do
    echo "\$ moor filters check … -- $cmd"
    # shellcheck disable=SC2086
    set +e; "$moor" filters check "${cset[@]}" -- $cmd; echo "  (exit $?)"; set -e
  done
else
  echo "(no $shared/data/filters: skipping the cinder audit)"
fi
step "the lab: build (or reuse) the guest image, boot it, attach a volume through moord"
bash tests/lab/lab.sh image
bash tests/lab/lab.sh scenario demo_attach
step "done"
