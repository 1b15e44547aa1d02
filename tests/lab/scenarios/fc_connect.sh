#!/bin/bash
# fc_connect: the typed Fibre Channel connector over software FC (FCoE VN2VN over two veth
# pairs, LIO tcm_fc target), as the unprivileged caller through moord with the packaged config
# and filters: a dry run changes nothing; single path (targeted scan of exactly one path, I/O
# checked in the backing file, detach leaves no disk - FCoE has no by-path names, so everything
# is found by transport and identity); dm-multipath over both paths with one link down and
# I/O through the map, extend through both paths and the map; and the array mapping another
# volume at the same LUN: detach refuses to touch it (exit 3, moord audits the identity
# mismatch) and a new attach refuses the stale disk.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
S=$(mktemp -d /tmp/fc_connect.XXXXXX) && chmod 0755 "$S"
lab_defer rm -rf "$S"
connect() { # PROPS OUT [moor args] : device_info to OUT, stderr to $S/connect.err
  moor_caller connect fibre-channel --properties "$1" "${@:3}" > "$2" 2>"$S/connect.err" || { cat "$S/connect.err" >&2; return 1; }
}
disconnect() { moor_caller disconnect fibre-channel --properties "$1" --device-info "$2" "${@:3}"; }
sd_count() { lab__ls /sys/block -name 'sd*' | wc -w; }

# The fabric first, the target before the controllers (docs/lab.md), no LUN yet: a LUN
# that exists when the remote port logs in is scanned by the FC transport itself.
fc_fabric_up 2
fc_target_create
fc_enable 60
T1=$(fc_target_wwpn 1); T2=$(fc_target_wwpn 2)
fc_lun_add 1 64
printf '{"driver_volume_type": "fibre_channel", "data": {"target_wwns": ["%s", "%s"], "target_lun": 1, "volume_id": "fc1"}}\n' \
  "${T1#0x}" "${T2#0x}" > "$S/v.json"
base=$(sd_count)
log "FCoE fabric: 2 paths ($(fc_initiator_host 1) -> $T1, $(fc_initiator_host 2) -> $T2), LUN 1 (64 MiB) mapped, not scanned"

plan=$(moor_caller connect fibre-channel --properties "$S/v.json" --dry-run)
grep -q '"scsi.scan' <<<"$plan" || fail "dry run plans no scan: $plan"
assert_eq "$base" "$(sd_count)" "disks after the dry run"
log "dry run: one targeted scan planned, nothing scanned"

# --- single path
connect "$S/v.json" "$S/i1.json"
dev=$(json_get "$S/i1.json" path); wwn=$(json_get "$S/i1.json" scsi_wwn)
[ -b "$dev" ] || fail "connect returned $dev"
assert_eq $((base + 1)) "$(sd_count)" "disks after a single-path attach (one path scanned)"
[[ "$(readlink -f "/sys/block/${dev#/dev/}/device")" == *"/rport-"* ]] || fail "$dev is not under an FC remote port"
head -c $((4 << 20)) /dev/urandom > "$S/p1"
dd if="$S/p1" of="$dev" bs=1M oflag=direct conv=fsync status=none
cmp -n $((4 << 20)) "$S/p1" "$(fc_lun_file 1)" || fail "the backing file does not hold the data"
log "attached $dev (WWID $wwn) through one FC path; 4 MiB written, found in the tcm_fc backing file"
out=$(disconnect "$S/v.json" "$S/i1.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "outcome: $out"
wait_until 20 test "$(sd_count)" = "$base" || fail "disks left: $(lab__ls /sys/block -name 'sd*')"
[ -z "$(find /dev/disk/by-id -lname "*/${dev#/dev/}" 2>/dev/null)" ] || fail "by-id links to $dev left"
log "detached: status clean, no disk, no by-id link"

# --- multipath over both paths, one link down during I/O, extend
connect "$S/v.json" "$S/im.json" --multipath
mdev=$(json_get "$S/im.json" path)
[[ "$mdev" == /dev/dm-* ]] || fail "multipath attach returned $mdev"
assert_eq 2 "$(lab__ls "/sys/block/${mdev#/dev/}/slaves" | wc -w)" "paths in $mdev"
# multipathd checks new paths on its own clock: only with both paths active can one
# be lost without queueing the I/O.
paths_active() { [ "$(multipathd show paths raw format '%d %t' 2>/dev/null | grep -c ' active')" -ge 2 ]; }
wait_until 60 paths_active || fail "paths not active: $(multipathd show paths raw format '%d %t %T')"
head -c $((32 << 20)) /dev/urandom > "$S/p2"
# The link goes down with no command on the wire, then I/O goes to the map: what
# dm-multipath sends to the blocked path fails after fast_io_fail_tmo and is retried on
# path 2. (Taking the link down under in-flight commands now and then leaves tcm_fc and
# libfc unable to log in again on that path - a software-target limitation, not moor's;
# fcoe_raw shows the path states in detail.)
fc_link_down 1
( dd if="$S/p2" of="$mdev" bs=1M oflag=direct conv=fsync status=none ) &
io=$!
# Queued I/O cannot be killed: if it hangs, bring the path back to release it, then fail.
io_done() { ! kill -0 "$io" 2>/dev/null; }
if ! wait_until 120 io_done; then
  paths=$(multipathd show paths raw format '%d %t %T')
  fc_link_up 1
  wait "$io" || true
  fail "I/O hung for 120 s with path 1 down (paths: $paths)"
fi
wait "$io" || fail "I/O failed with path 1 down: $(multipathd show paths raw format '%d %t %T')"
cmp -n $((32 << 20)) "$S/p2" "$mdev" || fail "data differs after the link loss"
log "map $mdev over 2 paths; link of path 1 down, 32 MiB written through the map (failed over to path 2): data intact"
fc_link_up 1
fc_lun_resize 1 96
out=$(moor_caller extend fibre-channel --properties "$S/v.json" --device-info "$S/im.json") || fail "extend: $out"
assert_eq $((96 << 20)) "$(json_get <(echo "$out") new_size)" "size reported by moor extend"
assert_eq $((96 << 20)) "$(size_of "$mdev")" "size of $mdev"
log "link back; LUN grown to 96 MiB: moor extend rescanned both paths and resized the map"
out=$(disconnect "$S/v.json" "$S/im.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "outcome: $out"
wait_until 20 test "$(sd_count)" = "$base" || fail "disks left"
[ -z "$(dmsetup ls 2>/dev/null | awk '!/^No devices found/')" ] || fail "maps left: $(dmsetup ls)"
log "detached: map flushed, both paths removed, nothing left"

# --- the array maps another volume at the same LUN
connect "$S/v.json" "$S/i2.json"
dev=$(json_get "$S/i2.json" path)
fc_lun_add 2 32 --name other         # another volume ...
fc_lun_unmap 2
fc_lun_unmap 1
fc_lun_remap 1 other                  # ... now at LUN 1
out=$(disconnect "$S/v.json" "$S/i2.json" 2>"$S/d.err") && rc=0 || rc=$?
assert_eq 3 "$rc" "exit code of a detach that leaves something"
grep -q "identity changed since attach" <<<"$out" || fail "the changed disk is not named: $out"
[ -b "$dev" ] || fail "$dev (now another volume) was removed"
grep -q '"outcome":"identity-mismatch"' "$MOOR_AUDIT" || fail "moord did not audit the identity mismatch"
if connect "$S/v.json" "$S/i3.json"; then fail "attached the other volume's disk"; fi
grep -q "stale device $dev" "$S/connect.err" || fail "attach error: $(cat "$S/connect.err")"
log "LUN 1 now another volume: detach left $dev untouched (exit 3, audited), attach refused it"
fc_teardown
assert_no_leftovers
assert_no_targets
log "fc_connect OK"
