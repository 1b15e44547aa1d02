#!/bin/bash
# targets_selftest: the library features the raw scenarios do not touch - two portals (one TPG
# each) + dm-multipath with a portal failure and recovery, online resize, ACL without CHAP,
# LUN unmap/remap, ramdisk backstores, nvmet host allow-list, NGUID and native NVMe multipath.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
P1=127.0.0.1:3260 P2=127.0.0.2:3260

# --- two portals, multipath, portal down/up, resize
IQN=iqn.2003-01.org.moor.lab:mp
lio_target_create "$IQN" --portal "$P1" --portal "$P2"
lio_lun_add "$IQN" 0 64
lio_acl_add "$IQN" "$(iscsi_initiator_name)"
out=$(iscsiadm -m discovery -t sendtargets -p "$P1")
grep -qx "$P1,1 $IQN" <<<"$out" || fail "discovery misses $P1: $out"
grep -qx "$P2,2 $IQN" <<<"$out" || fail "discovery misses $P2: $out"
for p in "$P1" "$P2"; do  # fail a dead path within seconds, not the default 120 s
  iscsiadm -m node -T "$IQN" -p "$p" -o update -n node.session.timeo.replacement_timeout -v 5
  iscsiadm -m node -T "$IQN" -p "$p" -o update -n 'node.conn[0].timeo.noop_out_interval' -v 2
  iscsiadm -m node -T "$IQN" -p "$p" -o update -n 'node.conn[0].timeo.noop_out_timeout' -v 2
done
log "target with 2 portals + ACL, node records set"
iscsiadm -m node -T "$IQN" --login >/dev/null
log "login done"
a=$(iscsi_disk "$IQN" "$P1" 0)
b=$(iscsi_disk "$IQN" "$P2" 0)
log "logged in through both portals: $a, $b"
wwid=$(/lib/udev/scsi_id --whitelisted --device="/dev/$a")
assert_eq "$wwid" "$(/lib/udev/scsi_id --whitelisted --device="/dev/$b")" "WWID of both paths"
wait_until 10 test -b "/dev/mapper/$wwid" || { multipath "$wwid" >/dev/null; wait_for "/dev/mapper/$wwid" 20; }
settle
dm=$(readlink -f "/dev/mapper/$wwid")
log "2 portals, one TPG each: paths $a ($P1) + $b ($P2), WWID $wwid, multipath $dm"
io_roundtrip "$dm" 1 "$LAB_STATE/pattern"
path_state() { multipathd show paths format '%d %t %T' | awk -v d="$1" '$1==d {print $2, $3}'; }
path_is() { [[ "$(path_state "$1")" =~ $2 ]]; }  # DEV REGEX
lio_portal_down "$IQN" 127.0.0.2
wait_until 30 path_is "$b" 'fail|faulty'
dd if="$dm" bs=1M count=1 iflag=direct status=none | cmp - "$LAB_STATE/pattern" || fail "I/O with a path down"
log "portal 127.0.0.2 down: $b is '$(path_state "$b")', I/O on $dm still works"
lio_portal_up "$IQN" 127.0.0.2
wait_until 60 path_is "$b" '^active ready$'
log "portal 127.0.0.2 up: $b is '$(path_state "$b")'"
lio_lun_resize "$IQN" 0 128
iscsiadm -m node -T "$IQN" -R >/dev/null
for sd in "$a" "$b"; do echo 1 > "/sys/block/$sd/device/rescan"; done
assert_eq $((128 << 20)) "$(blockdev --getsize64 "/dev/$a")" "path size after resize"
multipathd resize map "$wwid" >/dev/null
wait_size "$dm" $((128 << 20)) 10
log "LUN grown to 128 MiB: paths and multipath map follow"
multipath -f "$wwid"
multipath -w "$wwid" >/dev/null   # multipathd whitelisted it in /etc/multipath/wwids: leave nothing
iscsiadm -m node -T "$IQN" --logout >/dev/null
wait_gone "/sys/block/$a" 20; wait_gone "/sys/block/$b" 20
iscsi_cleanup
assert_no_leftovers
lio_teardown

# --- LUN unmap/remap on a ramdisk backstore
IQN=iqn.2003-01.org.moor.lab:remap
lio_target_create "$IQN"
lio_lun_add "$IQN" 0 16 --type ramdisk --name remap_rd
iscsiadm -m discovery -t sendtargets -p "$P1" >/dev/null
iscsi_login "$IQN" "$P1"
sd=$(iscsi_disk "$IQN" "$P1" 0)
io_roundtrip "/dev/$sd" 1 "$LAB_STATE/pattern"
lio_lun_unmap "$IQN" 0
# LUN 0 unmapped: LIO's virtual read-only LUN 0 answers - writes fail, reads give zeros
expect_rc nz dd if="$LAB_STATE/pattern" of="/dev/$sd" bs=4k count=1 oflag=direct status=none
dd if="/dev/$sd" bs=4k count=1 iflag=direct status=none | cmp -n 4096 - /dev/zero \
  || fail "reads of the unmapped LUN 0 are not zeros"
lio_lun_remap "$IQN" 0 remap_rd
wait_until 20 dd if="$LAB_STATE/pattern" of="/dev/$sd" bs=1M count=1 oflag=direct status=none
dd if="/dev/$sd" bs=1M count=1 iflag=direct status=none | cmp - "$LAB_STATE/pattern" || fail "data after remap"
log "LUN 0 unmapped: writes fail, reads give zeros; remapped: I/O works, data intact (ramdisk)"
iscsi_logout "$IQN" "$P1"
wait_gone "/sys/block/$sd" 20
iscsi_cleanup
lio_teardown

# --- nvmet: host allow-list, NGUID, two ports = native NVMe multipath
NQN=nqn.2014-08.org.moor.lab:self
NGUID=0123456789abcdef0123456789abcdef
hostnqn=$(cat /etc/nvme/hostnqn 2>/dev/null || nvme show-hostnqn)
nvmet_subsys_create "$NQN" --allow-host nqn.2014-08.org.moor.lab:someone-else
nvmet_ns_add "$NQN" 1 32 --nguid "$NGUID"
nvmet_port_add 1 127.0.0.1 4420
nvmet_port_add 2 127.0.0.2 4420
nvmet_port_link 1 "$NQN"
nvmet_port_link 2 "$NQN"
expect_rc nz nvme connect -t tcp -n "$NQN" -a 127.0.0.1 -s 4420
log "host $hostnqn not on the allow-list: connect refused"
ln -s "$(mkdir -p "$NVMET/hosts/$hostnqn" && echo "$NVMET/hosts/$hostnqn")" "$NVMET/subsystems/$NQN/allowed_hosts/$hostnqn"
nvme connect -t tcp -n "$NQN" -a 127.0.0.1 -s 4420 >/dev/null
nvme connect -t tcp -n "$NQN" -a 127.0.0.2 -s 4420 >/dev/null
dev=$(nvme_ns_dev "$NQN" 1)
assert_eq "$NGUID" "$(tr -d '-' < "/sys/block/$dev/nguid")" "NGUID"
assert_eq 2 "$(find /sys/class/nvme -mindepth 1 -maxdepth 1 | wc -l)" "controllers (paths)"
log "allowed: /dev/$dev with 2 controllers (native multipath), NGUID $NGUID"
io_roundtrip "/dev/$dev"
nvme disconnect -n "$NQN" >/dev/null
wait_gone "/sys/block/$dev" 20
nvmet_teardown
assert_no_leftovers
assert_no_targets
log "targets_selftest OK"
