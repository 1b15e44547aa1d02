#!/bin/bash
# nvmet_raw: kernel nvmet NVMe/TCP target on 127.0.0.1:4420, nvme discover/connect, the
# namespace appears (found through sysfs by NQN + NSID), I/O, disconnect, nothing left.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
NQN=nqn.2014-08.org.moor.lab:raw
UUID=6a1e0d5e-7b8c-4f8e-9d3a-1b2c3d4e5f60
PAT=$LAB_STATE/pattern

nvmet_subsys_create "$NQN" --serial moorlab0001
nvmet_ns_add "$NQN" 1 64 --uuid "$UUID"
nvmet_port_add 1 127.0.0.1 4420
nvmet_port_link 1 "$NQN"
log "nvmet: $NQN, namespace 1 (64 MiB, uuid $UUID) on tcp 127.0.0.1:4420"
nvme discover -t tcp -a 127.0.0.1 -s 4420 | grep -q "subnqn: *$NQN\$" || fail "discovery misses $NQN"
nvme connect -t tcp -n "$NQN" -a 127.0.0.1 -s 4420 >/dev/null
dev=$(nvme_ns_dev "$NQN" 1)
log "connected: /dev/$dev"
assert_eq "$UUID" "$(cat "/sys/block/$dev/uuid")" "namespace uuid"
assert_eq $((64 << 20)) "$(blockdev --getsize64 "/dev/$dev")" "namespace size"
assert_eq moorlab0001 "$(xargs < "/sys/block/$dev/device/serial")" "controller serial"
wait_for "/dev/disk/by-id/nvme-uuid.$UUID" 10
io_roundtrip "/dev/$dev" 1 "$PAT"
cmp -n 1048576 "$PAT" "$(nvmet_ns_file "$NQN" 1)" || fail "backing file does not hold the data"
log "1 MiB written + read back, data found in the backing file"

nvmet_ns_resize "$NQN" 1 96
wait_size "/dev/$dev" $((96 << 20)) 30   # revalidate_size -> AEN -> the host rescans
log "namespace grown to 96 MiB on the target: the host sees $(size_of "/dev/$dev") bytes"

nvme disconnect -n "$NQN" >/dev/null
wait_gone "/sys/block/$dev" 20
wait_gone "/dev/disk/by-id/nvme-uuid.$UUID" 20
assert_no_leftovers
log "disconnected: namespace and controller gone"

nvmet_port_unlink 1 "$NQN"
expect_rc nz nvme connect -t tcp -n "$NQN" -a 127.0.0.1 -s 4420
assert_no_leftovers
log "port unlinked: connect refused"
nvmet_teardown
assert_no_targets
log "nvmet_raw OK"
