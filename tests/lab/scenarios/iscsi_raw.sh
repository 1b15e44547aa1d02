#!/bin/bash
# iscsi_raw: LIO target with 2 LUNs on 127.0.0.1:3260, plain iscsiadm discovery/login, the
# LUNs' disks found through sysfs (session -> H:C:T:L), 1 MiB O_DIRECT I/O, logout, nothing left.
# Then CHAP (ACL, wrong + right secret) and mutual CHAP + discovery CHAP.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
P=127.0.0.1:3260
PAT=$LAB_STATE/pattern

# --- no authentication, two LUNs (block = iblock on a loop device, fileio = plain file)
IQN=iqn.2003-01.org.moor.lab:raw
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 0 64
lio_lun_add "$IQN" 1 32 --type fileio
log "LIO target $IQN on $P: LUN 0 = 64 MiB block, LUN 1 = 32 MiB fileio"
out=$(iscsiadm -m discovery -t sendtargets -p "$P")
grep -qx "$P,1 $IQN" <<<"$out" || fail "discovery did not return $IQN: $out"
iscsiadm -m node -T "$IQN" -p "$P" --login >/dev/null
sd0=$(iscsi_disk "$IQN" "$P" 0)
sd1=$(iscsi_disk "$IQN" "$P" 1)
log "logged in ($(iscsi_session "$IQN" "$P")): LUN 0 = /dev/$sd0, LUN 1 = /dev/$sd1"
assert_eq $((64 << 20)) "$(blockdev --getsize64 "/dev/$sd0")" "LUN 0 size"
assert_eq $((32 << 20)) "$(blockdev --getsize64 "/dev/$sd1")" "LUN 1 size"
wait_for "/dev/disk/by-path/ip-$P-iscsi-$IQN-lun-0" 10
assert_eq "/dev/$sd0" "$(readlink -f "/dev/disk/by-path/ip-$P-iscsi-$IQN-lun-0")" "by-path link"
for lun in 0 1; do
  sd=$sd0; [ $lun = 0 ] || sd=$sd1
  io_roundtrip "/dev/$sd" 1 "$PAT"
  cmp -n 1048576 "$PAT" "$(lio_backstore_file "$(lio_backstore "$IQN" $lun)")" \
    || fail "LUN $lun: backing file does not hold the data"
done
log "1 MiB written + read back on both LUNs, data found in the backing files"
iscsiadm -m node -T "$IQN" -p "$P" --logout >/dev/null
wait_gone "/sys/block/$sd0" 20
wait_gone "/sys/block/$sd1" 20
wait_gone "/dev/disk/by-path/ip-$P-iscsi-$IQN-lun-0" 20
iscsiadm -m node -T "$IQN" -p "$P" -o delete
assert_no_leftovers
log "logged out: disks, links and session gone"
lio_teardown

# --- CHAP with an ACL: the wrong secret is refused (24 = ISCSI_ERR_LOGIN_AUTH_FAILED)
IQN=iqn.2003-01.org.moor.lab:chap
lab_secret chap-secret-0123 wrong-secret-987 target-secret-456 disc-secret-789
lio_target_create "$IQN" --portal "$P" --chap moor-user chap-secret-0123
lio_lun_add "$IQN" 0 16
lio_acl_add "$IQN" "$(iscsi_initiator_name)"
iscsiadm -m discovery -t sendtargets -p "$P" >/dev/null
iscsi_node_chap "$IQN" "$P" moor-user wrong-secret-987
expect_rc 24 iscsiadm -m node -T "$IQN" -p "$P" --login
assert_no_leftovers
log "CHAP: wrong secret refused (rc 24), no session, no disk"
iscsi_node_chap "$IQN" "$P" moor-user chap-secret-0123
iscsi_login "$IQN" "$P"
sd=$(iscsi_disk "$IQN" "$P" 0)
io_roundtrip "/dev/$sd"
log "CHAP: right secret logs in, /dev/$sd does I/O"
iscsi_logout "$IQN" "$P"
wait_gone "/sys/block/$sd" 20
iscsiadm -m node -T "$IQN" -p "$P" -o delete
lio_teardown

# --- mutual CHAP (demo mode, no ACL) + discovery CHAP
IQN=iqn.2003-01.org.moor.lab:mutual
lio_target_create "$IQN" --portal "$P" --chap moor-user chap-secret-0123 \
  --mutual-chap moor-target target-secret-456 --discovery-chap disc-user disc-secret-789
lio_lun_add "$IQN" 0 16
expect_rc nz iscsi_discover "$P"
expect_rc nz iscsi_discover "$P" --chap disc-user wrong-secret-987
iscsi_discover "$P" --chap disc-user disc-secret-789 | grep -qx "$P,1 $IQN" \
  || fail "discovery with CHAP did not return $IQN"
log "discovery CHAP: refused without / with a wrong secret, works with the right one"
iscsi_node_chap "$IQN" "$P" moor-user chap-secret-0123 moor-target wrong-secret-987
expect_rc nz iscsiadm -m node -T "$IQN" -p "$P" --login
assert_no_leftovers
iscsi_node_chap "$IQN" "$P" moor-user chap-secret-0123 moor-target target-secret-456
iscsi_login "$IQN" "$P"
sd=$(iscsi_disk "$IQN" "$P" 0)
io_roundtrip "/dev/$sd"
log "mutual CHAP: a target with the wrong secret is refused by the initiator; the right one works"
iscsi_logout "$IQN" "$P"
wait_gone "/sys/block/$sd" 20
iscsi_cleanup
lio_teardown
assert_no_leftovers
assert_no_targets
log "iscsi_raw OK"
