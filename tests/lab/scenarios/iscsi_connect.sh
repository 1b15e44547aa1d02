#!/bin/bash
# iscsi_connect: the typed iSCSI connector end to end, as an unprivileged caller whose
# every privileged step goes to moord (packaged config and filters, no `exec`):
# single path with a string LUN (I/O, manual scan, detach leaves nothing), dry runs,
# CHAP wrong then right (nothing left after the failure; the password never reaches an
# argv, the audit log or moord's log), mutual CHAP, two LUNs of one target (detach one
# keeps the session, detach both logs out), alternative portal when the primary is down,
# and the LUN-reuse attack (the array maps another volume at the same LUN: moor refuses
# to flush or delete the device and refuses to hand it out).
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
P=127.0.0.1:3260
S=$(mktemp -d /tmp/iscsi_connect.XXXXXX) && chmod 0755 "$S"   # readable by the caller
lab_defer rm -rf "$S"
props() { # FILE IQN LUN [PORTAL] [extra JSON members] : connection_info as Cinder sends it
  printf '{"driver_volume_type": "iscsi", "data": {"target_portal": "%s", "target_iqn": "%s", "target_lun": %s, "volume_id": "%s"%s}}\n' \
    "${4:-$P}" "$2" "$3" "$(basename "$1" .json)" "${5:-}" > "$1"
}
connect() { # PROPS OUT [moor args] : device_info to OUT, stderr to $S/connect.err
  moor_caller connect iscsi --properties "$1" "${@:3}" > "$2" 2>"$S/connect.err" || { cat "$S/connect.err" >&2; return 1; }
}
disconnect() { moor_caller disconnect iscsi --properties "$1" --device-info "$2" "${@:3}"; }
node_exists() { iscsiadm -m node -T "$1" -p "$2" >/dev/null 2>&1; }

# --- single path, LUN given as a string (os-brick's disconnect misses it)
IQN=iqn.2003-01.org.moor.lab:single
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 1 32 --type block
props "$S/v1.json" "$IQN" '"1"'
plan=$(moor_caller connect iscsi --properties "$S/v1.json" --dry-run)
grep -q '"iscsi.login' <<<"$plan" || fail "dry run plans no login: $plan"
[ -z "$(lab__ls /sys/class/iscsi_session)" ] || fail "the dry run logged in"
node_exists "$IQN" "$P" && fail "the dry run created a node record"
log "dry run: $(grep -c '"iscsi\.\|"scsi\.' <<<"$plan") typed operations planned, nothing changed"
connect "$S/v1.json" "$S/i1.json"
dev=$(json_get "$S/i1.json" path); wwn=$(json_get "$S/i1.json" scsi_wwn)
[ -b "$dev" ] || fail "connect returned $dev, not a block device"
sd=${dev#/dev/}
assert_eq "$(basename "$(readlink -f "/sys/block/$sd/device")" | cut -d: -f4)" 1 "LUN of $dev"
[ -e "/dev/disk/by-id/wwn-0x${wwn:1}" ] || [ -e "/dev/disk/by-id/scsi-$wwn" ] || fail "no by-id link for $wwn"
iscsiadm -m node -T "$IQN" -p "$P" | grep -qx 'node.session.scan = manual' || fail "node record does not scan manually"
io_roundtrip "$dev" 4
log "attached $dev (WWID $wwn) as uid $(id -u moortest); 4 MiB I/O ok; node.session.scan = manual"
moor_caller volumes | grep -q "\"wwid\": \"$wwn\"" || fail "moor volumes does not list $dev: $(moor_caller volumes)"
moor_caller check iscsi --properties "$S/v1.json" --device-info "$S/i1.json" >/dev/null || fail "moor check failed"
paths=$(moor_caller paths iscsi --properties "$S/v1.json")
grep -q "/dev/disk/by-path/ip-$P-iscsi-$IQN-lun-1" <<<"$paths" || fail "moor paths: $paths"
lio_lun_resize "$IQN" 1 64
out=$(moor_caller extend iscsi --properties "$S/v1.json" --device-info "$S/i1.json") || fail "extend: $out"
assert_eq $((64 << 20)) "$(json_get <(echo "$out") new_size)" "size reported by moor extend"
assert_eq $((64 << 20)) "$(blockdev --getsize64 "$dev")" "size of $dev after extend"
log "moor volumes/check/paths ok; LUN grown to 64 MiB on the target: moor extend reports $((64 << 20)) bytes"
plan=$(disconnect "$S/v1.json" "$S/i1.json" --dry-run)
grep -q '"scsi.delete' <<<"$plan" || fail "dry-run detach plans no delete: $plan"
[ -b "$dev" ] || fail "the dry-run detach removed $dev"
# A by-id link udev does not know about (as udev leaves one when its events are
# lost): detach must not leave it behind.
ln -s "../../$sd" /dev/disk/by-id/moor-lab-stale-link
out=$(disconnect "$S/v1.json" "$S/i1.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "disconnect outcome: $out"
[ ! -L /dev/disk/by-id/moor-lab-stale-link ] || fail "the stale by-id link is still there"
grep -q '"op":"block.remove_stale_link","outcome":"ok"' "$MOOR_AUDIT" || fail "no audit record of the stale link removal"
assert_no_leftovers
node_exists "$IQN" "$P" && fail "node record left after detach"
[ -z "$(find /dev/disk/by-id -lname "*/$sd" 2>/dev/null)" ] || fail "by-id links to $sd left"
log "detached: status clean, no disk, no session, no node record, no by-id link (a link udev did not remove was removed by moord after checking it was stale)"
lio_teardown

# --- CHAP: wrong password fails cleanly, right one works; mutual CHAP
IQN=iqn.2003-01.org.moor.lab:chap
PW=Chap-Secret-4711-xyz
lab_secret "$PW" Target-Secret-0815 wrong-password-1
lio_target_create "$IQN" --portal "$P" --chap moor-user "$PW" --mutual-chap tgt-user Target-Secret-0815
lio_lun_add "$IQN" 0 16
props "$S/c.json" "$IQN" 0 "$P" ', "auth_method": "CHAP", "auth_username": "moor-user", "auth_password": "wrong-password-1"'
if connect "$S/c.json" "$S/ic.json"; then fail "connect with a wrong CHAP password succeeded"; fi
grep -qi 'chap' "$S/connect.err" || fail "the CHAP failure is not named: $(cat "$S/connect.err")"
[ -z "$(lab__ls /sys/class/iscsi_session)" ] || fail "session left after a failed login"
node_exists "$IQN" "$P" && fail "node record left after a failed login"
log "wrong CHAP password: '$(tail -n1 "$S/connect.err" | cut -c1-120)'; nothing left"
props "$S/c.json" "$IQN" 0 "$P" ", \"auth_method\": \"CHAP\", \"auth_username\": \"moor-user\", \"auth_password\": \"$PW\", \"auth_username_in\": \"tgt-user\", \"auth_password_in\": \"Target-Secret-0815\""
connect "$S/c.json" "$S/ic.json"
io_roundtrip "$(json_get "$S/ic.json" path)" 1
disconnect "$S/c.json" "$S/ic.json" >/dev/null
assert_no_leftovers
for f in "$MOOR_AUDIT" "$LAB_STATE/moord.log"; do
  ! grep -q -e "$PW" -e Target-Secret-0815 -e wrong-password-1 "$f" || fail "a CHAP secret is in $f"
done
grep -q '"op":"iscsi.node_configure".*node.session.auth.password=<secret> node.session.auth.password_in=<secret>' "$MOOR_AUDIT" \
  || fail "no audit record of the CHAP set-up (secrets shown as <secret>)"
log "mutual CHAP attach + detach ok; no secret in the audit log or moord's log"
lio_teardown

# --- an open-iscsi iface other than default; a missing one is refused
IQN=iqn.2003-01.org.moor.lab:iface
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 0 16
iscsiadm -m iface -I moor-tcp -o new >/dev/null
lab_defer iscsiadm -m iface -I moor-tcp -o delete
props "$S/if.json" "$IQN" 0
if connect "$S/if.json" "$S/iif.json" --iface no-such-iface; then fail "attached through a missing iface"; fi
grep -q "no such open-iscsi interface" "$S/connect.err" || fail "missing iface not named: $(cat "$S/connect.err")"
connect "$S/if.json" "$S/iif.json" --iface moor-tcp
s=$(iscsi_session "$IQN" "$P")
assert_eq moor-tcp "$(cat "/sys/class/iscsi_session/$s/ifacename")" "session iface"
disconnect "$S/if.json" "$S/iif.json" --iface moor-tcp >/dev/null
assert_no_leftovers
log "iface moor-tcp: session $s uses it; a missing iface is refused before anything runs"
lio_teardown

# --- two LUNs of one target: detach one keeps the session
IQN=iqn.2003-01.org.moor.lab:shared
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 0 16
lio_lun_add "$IQN" 1 16
props "$S/a.json" "$IQN" 0
props "$S/b.json" "$IQN" 1
connect "$S/a.json" "$S/ia.json"
connect "$S/b.json" "$S/ib.json"
assert_eq 1 "$(lab__ls /sys/class/iscsi_session | wc -w)" "sessions for two LUNs of one target"
out=$(disconnect "$S/a.json" "$S/ia.json")
grep -q '"kept_sessions": \[$' <<<"$out" || grep -q 'still used by' <<<"$out" || fail "session not reported as kept: $out"
[ -n "$(lab__ls /sys/class/iscsi_session)" ] || fail "detaching LUN 0 logged out LUN 1's session"
io_roundtrip "$(json_get "$S/ib.json" path)" 1
out=$(disconnect "$S/b.json" "$S/ib.json")
grep -q "\"$IQN@$P\"" <<<"$out" || fail "second detach did not log out: $out"
assert_no_leftovers
log "two LUNs: first detach kept the session (LUN 1 still does I/O), second logged out"
lio_teardown

# --- LUN 300 (≥ 256: udev names it lun-0x012c000000000000, os-brick's process_lun_id)
IQN=iqn.2003-01.org.moor.lab:lun300
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 300 16
props "$S/big.json" "$IQN" 300
connect "$S/big.json" "$S/ibig.json"
dev=$(json_get "$S/ibig.json" path)
assert_eq 300 "$(basename "$(readlink -f "/sys/block/${dev#/dev/}/device")" | cut -d: -f4)" "LUN of $dev"
paths=$(moor_caller paths iscsi --properties "$S/big.json")
grep -q "ip-$P-iscsi-$IQN-lun-0x012c000000000000" <<<"$paths" || fail "moor paths for LUN 300: $paths"
io_roundtrip "$dev" 1
disconnect "$S/big.json" "$S/ibig.json" >/dev/null
assert_no_leftovers
log "LUN 300: attached $dev, by-path name lun-0x012c000000000000 found, detached"
lio_teardown

# --- alternative portal: the primary is down, the second portal works
IQN=iqn.2003-01.org.moor.lab:alt
P2=127.0.0.2:3260
lio_target_create "$IQN" --portal "$P" --portal "$P2"
lio_lun_add "$IQN" 0 16
lio_portal_down "$IQN" 127.0.0.1
props "$S/alt.json" "$IQN" 0 "$P" ", \"target_portals\": [\"$P\", \"$P2\"], \"target_iqns\": [\"$IQN\", \"$IQN\"], \"target_luns\": [0, 0]"
connect "$S/alt.json" "$S/ialt.json" --timeout 30
s=$(iscsi_session "$IQN" "$P2") || fail "not attached through $P2"
io_roundtrip "$(json_get "$S/ialt.json" path)" 1
disconnect "$S/alt.json" "$S/ialt.json" >/dev/null
assert_no_leftovers
node_exists "$IQN" "$P" && fail "node record of the failed primary portal left"
log "primary portal down: attached through $P2 ($s), detached, nothing left"
lio_teardown

# --- the LUN-reuse attack (CVE-2023-2088): the array unmaps our LUN without a detach
# and maps another volume at the same LUN number.
IQN=iqn.2003-01.org.moor.lab:reuse
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 2 16 --name victim
props "$S/r.json" "$IQN" 2
connect "$S/r.json" "$S/ir.json"
dev=$(json_get "$S/ir.json" path); wwn=$(json_get "$S/ir.json" scsi_wwn); sd=${dev#/dev/}
lio_lun_unmap "$IQN" 2
lio_backstore_create intruder 16
lio_lun_remap "$IQN" 2 intruder
rc=0
out=$(disconnect "$S/r.json" "$S/ir.json" 2>"$S/disc.err") || rc=$?
assert_eq 3 "$rc" "disconnect exit status after the LUN was reused"
grep -q "identity" <<<"$out$(cat "$S/disc.err")" || fail "identity change not reported: $out $(cat "$S/disc.err")"
[ -b "$dev" ] || fail "moor removed $dev although it now belongs to another volume"
grep -q '"outcome":"identity-mismatch"' "$MOOR_AUDIT" || fail "moord did not record the identity mismatch"
log "LUN reused by the array: detach refused to flush/delete $dev (exit 3: $(grep '^moor:' "$S/disc.err" | cut -c1-160))"
props "$S/r2.json" "$IQN" 2
if connect "$S/r2.json" "$S/ir2.json"; then fail "moor handed out the stale device $dev"; fi
grep -q "stale device" "$S/connect.err" || fail "stale device not named: $(cat "$S/connect.err")"
log "attach of the new volume at LUN 2 refused: stale device $dev still there"
# The administrator's way out (moor cleanup arrives with #9): remove the stale disk.
echo 1 > "/sys/block/$sd/device/delete"
wait_gone "/sys/block/$sd" 20
connect "$S/r2.json" "$S/ir2.json"
assert_ne "$wwn" "$(json_get "$S/ir2.json" scsi_wwn)" "WWID of the new volume"
disconnect "$S/r2.json" "$S/ir2.json" >/dev/null
assert_no_leftovers
log "after removing the stale disk the new volume attaches with its own WWID and detaches cleanly"
lio_teardown

grep -q '"op":"exec"' "$MOOR_AUDIT" && fail "the connector used the generic exec op"
log "audit: $(wc -l < "$MOOR_AUDIT") records, none of them the generic exec"
