#!/bin/bash
# nvmeof_concurrent: 16 NVMe-oF volumes (4 subsystems x 4 namespaces on one nvmet port)
# attached at once by 16 unprivileged `moor connect nvmeof` processes through moord:
# each gets its own namespace (checked by UUID), controllers are shared (one per
# subsystem, reused with a rescan, never connected twice), then 16 concurrent detaches
# leave nothing (no controller, no subsystem, no device).
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
S=$(mktemp -d /tmp/nvmeof_concurrent.XXXXXX) && chmod 0777 "$S"
lab_defer rm -rf "$S"
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }   # seconds since $EPOCHREALTIME value A
nqn() { echo "nqn.2014-08.org.moor.lab:conc-$1"; }
uuid() { printf '2b1f0c3d-4e5a-4b6c-8d7e-%012d\n' "$1$2"; }   # subsystem s, nsid n

nvmet_port_add 1 127.0.0.1 4420
for s in 1 2 3 4; do
  nvmet_subsys_create "$(nqn "$s")"
  for n in 1 2 3 4; do nvmet_ns_add "$(nqn "$s")" "$n" 16 --uuid "$(uuid "$s" "$n")"; done
  nvmet_port_link 1 "$(nqn "$s")"
done
for s in 1 2 3 4; do for n in 1 2 3 4; do
  printf '{"driver_volume_type": "nvmeof", "data": {"target_nqn": "%s", "vol_uuid": "%s", "ns_id": %s, "portals": [["127.0.0.1", 4420, "tcp"]]}}\n' \
    "$(nqn "$s")" "$(uuid "$s" "$n")" "$n" > "$S/v$s$n.json"
done; done
log "nvmet: 4 subsystems x 4 namespaces (16 MiB each) on tcp 127.0.0.1:4420"

t0=$EPOCHREALTIME
pids=()
for s in 1 2 3 4; do for n in 1 2 3 4; do
  moor_caller connect nvmeof --properties "$S/v$s$n.json" > "$S/i$s$n.json" 2>"$S/c$s$n.err" &
  pids+=($!)
done; done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
[ "$failed" = 0 ] || { cat "$S"/c*.err >&2; fail "$failed of 16 concurrent attaches failed"; }
log "16 concurrent attaches done in $(since "$t0") s"

declare -A seen
for s in 1 2 3 4; do for n in 1 2 3 4; do
  dev=$(json_get "$S/i$s$n.json" path)
  [ -b "$dev" ] || fail "v$s$n: $dev is not a block device"
  [ -z "${seen[$dev]:-}" ] || fail "$dev handed out twice (v$s$n and ${seen[$dev]})"
  seen[$dev]=v$s$n
  assert_eq "$(uuid "$s" "$n")" "$(cat "/sys/block/${dev#/dev/}/uuid")" "uuid of v$s$n's $dev"
  # A marker per volume, read back after all are written: no two share a device.
  printf 'moor-v%s%s' "$s" "$n" | dd of="$dev" bs=4096 conv=sync,fsync oflag=direct status=none
done; done
for s in 1 2 3 4; do for n in 1 2 3 4; do
  dev=$(json_get "$S/i$s$n.json" path)
  got=$(dd if="$dev" bs=4096 count=1 iflag=direct status=none | tr -d '\0')
  assert_eq "moor-v$s$n" "$got" "marker on $dev"
done; done
ctrls=$(lab__ls /sys/class/nvme | wc -w)
assert_eq 4 "$ctrls" "controllers (one per subsystem)"
assert_eq 4 "$(grep -c '"op":"nvme.connect".*"outcome":"ok"' "$MOOR_AUDIT")" "nvme.connect runs (the others reused the live controller)"
log "16 distinct namespaces, each verified by UUID and a marker; 4 controllers, 4 connects, $(grep -c '"op":"nvme.ns_rescan"' "$MOOR_AUDIT") rescans"

t0=$EPOCHREALTIME
pids=()
for s in 1 2 3 4; do for n in 1 2 3 4; do
  moor_caller disconnect nvmeof --properties "$S/v$s$n.json" --device-info "$S/i$s$n.json" > "$S/d$s$n.json" 2>"$S/d$s$n.err" &
  pids+=($!)
done; done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
[ "$failed" = 0 ] || { cat "$S"/d*.err "$S"/d*.json >&2; fail "$failed of 16 concurrent detaches failed"; }
for f in "$S"/d*.json; do grep -q '"status": "clean"' "$f" || fail "$(basename "$f"): $(cat "$f")"; done
log "16 concurrent detaches done in $(since "$t0") s, all clean"
assert_no_leftovers
! nvme list-subsys 2>/dev/null | grep -q "conc-" || fail "nvme list-subsys still lists a subsystem"
log "nothing left: no controller, no subsystem"
nvmet_teardown
assert_no_targets
log "nvmeof_concurrent OK"
