#!/bin/bash
# scsi_debug_raw: scsi_debug disk appears, is deleted through sysfs, comes back by a host scan.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"

scsi_debug_load dev_size_mb=16 num_tgts=1 max_luns=1
host=$(scsi_debug_hosts)
sd=$(scsi_debug_disks)
assert_eq 1 "$(echo "$sd" | wc -w)" "scsi_debug disk count"
assert_eq $((16 * 1048576)) "$(blockdev --getsize64 "/dev/$sd")" "size of /dev/$sd"
log "scsi_debug: /dev/$sd on $host ($(xargs < "/sys/block/$sd/device/model"))"
io_roundtrip "/dev/$sd"

echo 1 > "/sys/block/$sd/device/delete"
wait_gone "/sys/block/$sd" 10
wait_gone "/dev/$sd" 10
assert_eq "" "$(scsi_debug_disks)" "disks after delete"
log "deleted: /dev/$sd gone"

echo '- - -' > "/sys/class/scsi_host/$host/scan"
wait_until 10 lab__sd_disks_present
settle
sd=$(scsi_debug_disks)
log "rescanned $host: back as /dev/$sd"

echo 1 > /sys/bus/pseudo/drivers/scsi_debug/virtual_gb
echo 1 > "/sys/block/$sd/device/rescan"
assert_eq 1073741824 "$(blockdev --getsize64 "/dev/$sd")" "size after virtual_gb=1 + rescan"
log "capacity change seen after device rescan: $(blockdev --getsize64 "/dev/$sd") bytes"

scsi_debug_unload
assert_no_leftovers
log "scsi_debug_raw OK"
