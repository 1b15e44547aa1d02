#!/bin/bash
# fcoe_raw: software Fibre Channel, no moor code. FCoE (fcoe/libfc, VN2VN) over two veth pairs,
# LIO tcm_fc target ports on the B ends, the Linux FC initiator (scsi_transport_fc) on the A
# ends: two independent paths to the same LUNs. Prints what an FC connector reads - fc_host,
# rports, SCSI targets, disks found through sysfs by transport, WWIDs - then: 1 MiB I/O checked
# in the backing file, a second LUN found by a targeted host scan, one link down (rport Blocked,
# the other path does I/O) and up, the same with a short dev_loss_tmo (disks removed, back after
# link up), LUN unmap/remap, online resize, disks deleted through sysfs, teardown, nothing left.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
PAT=$LAB_STATE/pattern
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}'; } # since T0 -> seconds
attrs() { # DIR ATTR... -> "attr=value ..." (values with spaces quoted)
  local d=$1 a v out=""; shift
  for a in "$@"; do
    v='?'; read -r v < "$d/$a" || true          # read: no fork (forks are slow under TCG)
    case "$v" in *' '*) out+=" $a='$v'" ;; *) out+=" $a=$v" ;; esac
  done
  echo "${out# }"
}
rport_dir() { echo "/sys/class/fc_remote_ports/$(fc_rport "$1")"; }   # PATH
is_state() { [ "$(cat "$1/port_state" 2>/dev/null)" = "$2" ]; }        # DIR STATE

# --- fabric: 2 paths, the target configured before the controllers are enabled
t0=$EPOCHREALTIME
fc_fabric_up 2
H1=$(fc_initiator_host 1)
for i in 1 2; do
  ih=$(fc_initiator_host "$i")
  log "path $i: fcA$i = initiator $ih $(fc_initiator_wwpn "$i"), fcB$i = target $(fc_target_host "$i") $(fc_target_wwpn "$i"), port_state $(cat "/sys/class/fc_host/$ih/port_state") (not enabled)"
done
fc_target_create
fc_lun_add 0 64
log "fabric + tcm_fc target + LUN 0 (64 MiB) configured in $(since "$t0")s; tcm_fc ports: $(lab__ls "$LIO/fc" -type d ! -name discovery_auth)"
t1=$EPOCHREALTIME
fc_enable 60
log "controllers enabled: both initiators Online and logged in to their target port in $(since "$t1")s"

# --- what the initiator side shows (the facts FC connectors read)
for i in 1 2; do
  ih=$(fc_initiator_host "$i")
  F=/sys/class/fc_host/$ih
  assert_eq Online "$(cat "$F/port_state")" "fc_host $ih port_state"
  assert_eq "$(fc_initiator_wwpn "$i")" "$(cat "$F/port_name")" "fc_host $ih port_name"
  log "fc_host $ih -> $(readlink -f "$F")"
  log "  $(attrs "$F" port_name node_name port_id port_state port_type speed symbolic_name dev_loss_tmo tgtid_bind_type)"
  R=$(rport_dir "$i")
  assert_eq "$(fc_target_wwpn "$i")" "$(cat "$R/port_name")" "rport port_name"
  [[ "$(cat "$R/roles")" == *"FCP Target"* ]] || fail "${R##*/}: roles '$(cat "$R/roles")' without FCP Target"
  log "rport ${R##*/} -> $(readlink -f "$R")"
  log "  $(attrs "$R" port_name node_name port_id roles scsi_target_id port_state dev_loss_tmo fast_io_fail_tmo supported_classes)"
done
log "all rports: $(lab__ls /sys/class/fc_remote_ports) (the target ends see the initiators as 'FCP Initiator' rports, scsi_target_id -1)"
log "scsi_transport_fc dev_loss_tmo default: $(cat /sys/module/scsi_transport_fc/parameters/dev_loss_tmo) s"

# --- the LUN's disks, found by transport: rport -> target -> H:C:T:L -> block
a0=$(fc_disk 1 0)
b0=$(fc_disk 2 0)
for sd in "$a0" "$b0"; do
  dev=$(readlink -f "/sys/block/$sd/device")
  hctl=${dev##*/}
  T=/sys/class/fc_transport/target${hctl%:*}
  [[ "$dev" == */rport-*/target*/"$hctl" ]] || fail "$sd: device path $dev is not below an rport"
  [ -d "$T" ] || fail "$sd: no $T"
  log "$sd [$hctl] device -> $dev"
  log "  fc_transport/${T##*/}: $(attrs "$T" port_name node_name port_id); lsscsi -t: $(lsscsi -t "$hctl" | tr -s ' ')"
done
assert_eq "$(fc_target_wwpn 1)" "$(cat "/sys/class/fc_transport/target$(basename "$(readlink -f "/sys/block/$a0/device")" | cut -d: -f1-3)/port_name")" "path 1 fc_transport port_name"
wwid=$(/lib/udev/scsi_id --whitelisted --device="/dev/$a0")
assert_eq "$wwid" "$(/lib/udev/scsi_id --whitelisted --device="/dev/$b0")" "WWID of both paths"
assert_eq "$(cat "/sys/block/$a0/device/wwid")" "$(cat "/sys/block/$b0/device/wwid")" "sysfs wwid of both paths"
assert_eq $((64 << 20)) "$(size_of "/dev/$a0")" "LUN 0 size"
log "LUN 0: path 1 = /dev/$a0, path 2 = /dev/$b0, WWID $wwid (device/wwid $(cat "/sys/block/$a0/device/wwid"))"
bp=""
for l in /dev/disk/by-path/*; do
  [ -L "$l" ] || continue
  case "$(readlink -f "$l")" in "/dev/$a0" | "/dev/$b0") bp+=" ${l##*/}" ;; esac
done
log "by-path links to the FC disks: ${bp:-none} (ID_PATH='$(udevadm info -q property -n "/dev/$a0" | sed -n 's/^ID_PATH=//p')': udev's path_id finds no PCI parent above a virtual netdev)"

io_roundtrip "/dev/$a0" 1 "$PAT"
cmp -n 1048576 "$PAT" "$(fc_lun_file 0)" || fail "LUN 0: the backing file does not hold the data"
dd if="/dev/$b0" bs=1M count=1 iflag=direct status=none | cmp - "$PAT" || fail "path 2 reads other data"
log "1 MiB written through path 1 ($a0), found in the backing file, read back through path 2 ($b0)"

# multipathd (find_multipaths yes) groups the two paths by WWID on its own
wait_until 15 test -b "/dev/mapper/$wwid" || { multipath "$wwid" >/dev/null; wait_for "/dev/mapper/$wwid" 20; }
dm=$(basename "$(readlink -f "/dev/mapper/$wwid")")
settle
log "multipathd: map $wwid -> /dev/$dm over $(lab__ls "/sys/block/$dm/slaves"); by-id links: $(find /dev/disk/by-id -lname "*/$dm" -printf '%f ' | sort) -> $dm, $(find /dev/disk/by-id \( -lname "*/$a0" -o -lname "*/$b0" \) -printf '%f ' | sort) -> a path"

# --- LUN 1 added on the live target: found by a targeted scan "CHANNEL TARGET LUN"
fc_lun_add 1 32
pre=$(fc__lun_disk 1 1 || echo none)
for i in 1 2; do
  ih=$(fc_initiator_host "$i")
  tdir=$(find "$(rport_dir "$i")/device/" -maxdepth 1 -name 'target*' -printf '%f\n' | head -n 1)
  IFS=: read -r _ C T <<<"${tdir#target}"
  echo "$C $T 1" > "/sys/class/scsi_host/$ih/scan"
  log "scan: echo '$C $T 1' > /sys/class/scsi_host/$ih/scan (rport scsi_target_id $(cat "$(rport_dir "$i")/scsi_target_id"))"
done
a1=$(fc_disk 1 1)
b1=$(fc_disk 2 1)
wwid1=$(/lib/udev/scsi_id --whitelisted --device="/dev/$a1")
assert_eq "$wwid1" "$(/lib/udev/scsi_id --whitelisted --device="/dev/$b1")" "LUN 1 WWID of both paths"
assert_ne "$wwid" "$wwid1" "LUN 0 and LUN 1 WWIDs"
assert_eq $((32 << 20)) "$(size_of "/dev/$a1")" "LUN 1 size"
io_roundtrip "/dev/$b1" 1 "$PAT"
cmp -n 1048576 "$PAT" "$(fc_lun_file 1)" || fail "LUN 1: the backing file does not hold the data"
log "LUN 1 (right after fc_lun_add, before the scan: $pre): path 1 = /dev/$a1, path 2 = /dev/$b1, WWID $wwid1, I/O checked in its backing file"

# --- path 1 link down: rport Blocked at once, disk kept (dev_loss_tmo), path 2 does I/O
R1=$(rport_dir 1)
log "path 1 rport ${R1##*/} before: dev_loss_tmo=$(cat "$R1/dev_loss_tmo") fast_io_fail_tmo=$(cat "$R1/fast_io_fail_tmo") (multipathd sets fast_io_fail_tmo on the rports of its paths)"
t2=$EPOCHREALTIME
fc_link_down 1
log "fcA1 down: rport ${R1##*/} $(cat "$R1/port_state") after $(since "$t2")s; fc_host $H1 $(cat "/sys/class/fc_host/$H1/port_state"), target-end $(fc_target_host 1) $(cat "/sys/class/fc_host/$(fc_target_host 1)/port_state"); path 2 rport $(cat "$(rport_dir 2)/port_state")"
assert_eq Blocked "$(cat "$R1/port_state")" "path 1 rport state"
[ -b "/dev/$a0" ] || fail "/dev/$a0 vanished at once"
io_roundtrip "/dev/$b0" 1 "$PAT"
cmp -n 1048576 "$PAT" "$(fc_lun_file 0)" || fail "I/O through path 2 did not reach the backing file"
log "path 2 ($b0) does I/O; /dev/$a0 still there ($(cat "/sys/block/$a0/device/state")), rport still $(cat "$R1/port_state") after $(since "$t2")s"
t3=$EPOCHREALTIME
fc_link_up 1
assert_eq "$a0" "$(fc__lun_disk 1 0)" "path 1 disk after link up"
io_roundtrip "/dev/$a0" 1 "$PAT"
log "fcA1 up: rport ${R1##*/} Online again after $(since "$t3")s, same disk /dev/$a0 does I/O"

# --- the same with dev_loss_tmo 3: the rport times out, its disks are removed, link up adds them back
echo 3 > "$R1/dev_loss_tmo"
t4=$EPOCHREALTIME
fc_link_down 1
wait_gone "/sys/block/$a0" 30
d_gone=$(since "$t4")
wait_gone "/sys/block/$a1" 10
log "dev_loss_tmo 3 + fcA1 down: /dev/$a0 and /dev/$a1 removed after ${d_gone}s; rport ${R1##*/} stays: $(attrs "$R1" port_state scsi_target_id port_name)"
assert_eq "Not Present" "$(cat "$R1/port_state")" "rport state after dev_loss_tmo"
io_roundtrip "/dev/$b0" 1 "$PAT"
t5=$EPOCHREALTIME
fc_link_up 1
a0=$(fc_disk 1 0)
a1=$(fc_disk 1 1)
log "fcA1 up: rport ${R1##*/} $(cat "$R1/port_state") (same name, binding by WWPN), the transport rescanned: LUN 0 = /dev/$a0, LUN 1 = /dev/$a1 after $(since "$t5")s"
assert_eq "$wwid" "$(/lib/udev/scsi_id --whitelisted --device="/dev/$a0")" "WWID after the rescan"
dd if="/dev/$a0" bs=1M count=1 iflag=direct status=none | cmp - "$PAT" || fail "path 1 reads other data after its return"

# --- LUN 1 unmapped at the target: its disks stay, I/O fails; remapped: I/O works again
fc_lun_unmap 1
expect_rc nz dd if="/dev/$a1" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null
fc_lun_remap 1
wait_until 20 dd if="/dev/$a1" of=/dev/null bs=4k count=1 iflag=direct status=none
log "LUN 1 unmapped: reads through /dev/$a1 fail; remapped: they work again"

# --- online resize: the backing grows, each path's disk rescans, the map follows
fc_lun_resize 0 128
for sd in "$a0" "$b0"; do echo 1 > "/sys/block/$sd/device/rescan"; done
wait_size "/dev/$a0" $((128 << 20)) 10
wait_size "/dev/$b0" $((128 << 20)) 10
multipathd resize map "$wwid" >/dev/null
wait_size "/dev/mapper/$wwid" $((128 << 20)) 10
log "LUN 0 grown to 128 MiB: /dev/$a0, /dev/$b0 (device/rescan) and the map (multipathd resize map)"

# --- detach: flush the maps, delete the disks through sysfs; the rports stay
t6=$EPOCHREALTIME
settle
for w in "$wwid" "$wwid1"; do   # udev may still probe a map that just changed: "map in use" for a moment
  [ ! -e "/dev/mapper/$w" ] || wait_until 20 multipath -f "$w" || fail "multipath -f $w failed for 20s"
done
for sd in "$a0" "$b0" "$a1" "$b1"; do echo 1 > "/sys/block/$sd/device/delete"; done
for sd in "$a0" "$b0" "$a1" "$b1"; do wait_gone "/sys/block/$sd" 20; done
settle
log "maps flushed, 4 disks deleted in $(since "$t6")s; rports left: $(for i in 1 2; do printf '%s=%s ' "$(fc_rport "$i")" "$(cat "$(rport_dir "$i")/port_state")"; done)"
is_state "$(rport_dir 2)" Online || fail "path 2 rport went away with its disks"
t7=$EPOCHREALTIME
fc_teardown
log "fc_teardown in $(since "$t7")s"
assert_no_leftovers
assert_no_targets
log "fcoe_raw OK"
