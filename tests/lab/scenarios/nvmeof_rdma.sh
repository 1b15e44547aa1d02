#!/bin/bash
# nvmeof_rdma: the typed NVMe-oF connector over NVMe/RDMA, as the unprivileged caller through
# moord with the packaged config and filters. There is no RDMA NIC in the guest: Soft-RoCE
# (rdma_rxe) on a dummy interface gives the kernel's real nvme-rdma host and nvmet-rdma
# target an RDMA device (RDMA CM, verbs, queue pairs), as blktests can run them. Shown: a
# single RDMA path (controller transport rdma, I/O in the backing file, paths, extend, detach
# leaves nothing), the legacy connection_info shape with os-brick's `RoCEv2` transport name,
# and native multipath over one RDMA and one TCP portal of the same subsystem with the RDMA
# port removed during I/O.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
S=$(mktemp -d /tmp/nvmeof_rdma.XXXXXX) && chmod 0755 "$S"   # readable by the caller
lab_defer rm -rf "$S"
NQN=nqn.2014-08.org.moor.lab:nvmeof-rdma
U1=3f0c1c55-0a1e-4a43-9d37-5c1f0e3a1111
G1=3f0c1c55-0a1e-4a43-9d37-5c1f0e3a9999   # NGUID (os-brick sends it without dashes)
connect() { # PROPS OUT [moor args] : device_info to OUT, stderr to $S/connect.err
  moor_caller connect nvmeof --properties "$1" "${@:3}" > "$2" 2>"$S/connect.err" || { cat "$S/connect.err" >&2; return 1; }
}
disconnect() { moor_caller disconnect nvmeof --properties "$1" --device-info "$2" "${@:3}"; }
nothing_left() { # assert_no_leftovers, and nothing `nvme list-subsys` knows of
  assert_no_leftovers
  ! nvme list-subsys 2>/dev/null | grep -q "$NQN" || fail "nvme list-subsys still lists $NQN"
}

nvmet_subsys_create "$NQN" --serial moorlab0rdma
nvmet_ns_add "$NQN" 1 64 --uuid "$U1" --nguid "$G1"
nvmet_port_add 1 "$LAB_RDMA_ADDR" 4420 rdma
nvmet_port_link 1 "$NQN"
dev_ib=$(lab__ls /sys/class/infiniband)
[ -n "$dev_ib" ] || fail "no RDMA device in the guest"
log "nvmet-rdma port $LAB_RDMA_ADDR:4420 over Soft-RoCE ($dev_ib on $LAB_RDMA_NET)"

# --- a single RDMA path
printf '{"driver_volume_type": "nvmeof", "data": {"target_nqn": "%s", "vol_uuid": "%s", "ns_id": 1, "portals": [["%s", 4420, "rdma"]], "volume_id": "r1"}}\n' \
  "$NQN" "$U1" "$LAB_RDMA_ADDR" > "$S/r1.json"
plan=$(moor_caller connect nvmeof --properties "$S/r1.json" --dry-run)
grep -q '"nvme.connect .*transport: Rdma' <<<"$plan" || fail "dry run plans no RDMA connect: $plan"
[ -z "$(nvme_ctrls_of "$NQN")" ] || fail "the dry run connected"
connect "$S/r1.json" "$S/i1.json"
dev=$(json_get "$S/i1.json" path); b=${dev#/dev/}
[ -b "$dev" ] || fail "connect returned $dev, not a block device"
c=$(nvme_ctrls_of "$NQN")
assert_eq rdma "$(cat "/sys/class/nvme/$c/transport")" "transport of $c"
assert_eq "$U1" "$(cat "/sys/block/$b/uuid")" "uuid of $dev"
grep -q '"op":"nvme.connect".*"rdma"' "$MOOR_AUDIT" || fail "no audit record of an RDMA nvme.connect"
head -c $((4 << 20)) /dev/urandom > "$S/p1"
dd if="$S/p1" of="$dev" bs=1M oflag=direct conv=fsync status=none
cmp -n $((4 << 20)) "$S/p1" "$(nvmet_ns_file "$NQN" 1)" || fail "the backing file does not hold the data"
log "attached $dev over RDMA ($c: $(cat "/sys/class/nvme/$c/address")); 4 MiB written, found in the backing file"
paths=$(moor_caller paths nvmeof --properties "$S/r1.json")
grep -q "\"$dev\"" <<<"$paths" || fail "moor paths: $paths"
nvmet_ns_resize "$NQN" 1 96
out=$(moor_caller extend nvmeof --properties "$S/r1.json" --device-info "$S/i1.json") || fail "extend: $out"
assert_eq $((96 << 20)) "$(json_get <(echo "$out") new_size)" "size reported by moor extend"
assert_eq $((96 << 20)) "$(size_of "$dev")" "size of $dev after extend"
out=$(disconnect "$S/r1.json" "$S/i1.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "disconnect outcome: $out"
nothing_left
log "moor paths ok; extended to 96 MiB over RDMA; detached: status clean, nothing left"

# --- the legacy shape, transport named as os-brick's drivers do (RoCEv2 = rdma)
printf '{"driver_volume_type": "nvmeof", "data": {"nqn": "%s", "transport_type": "RoCEv2", "target_portal": "%s", "target_port": "4420", "volume_nguid": "%s", "ns_id": 1, "volume_id": "r2"}}\n' \
  "$NQN" "$LAB_RDMA_ADDR" "${G1//-/}" > "$S/r2.json"
connect "$S/r2.json" "$S/i2.json"
dev=$(json_get "$S/i2.json" path)
assert_eq rdma "$(cat "/sys/class/nvme/$(nvme_ctrls_of "$NQN")/transport")" "transport of the legacy-shape controller"
io_roundtrip "$dev" 1
out=$(disconnect "$S/r2.json" "$S/i2.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "disconnect outcome: $out"
nothing_left
log "legacy shape (transport_type RoCEv2, NGUID): attached $dev over RDMA, I/O ok, detached clean"

# --- native multipath over an RDMA and a TCP portal; the RDMA port goes during I/O
[ "$(cat /sys/module/nvme_core/parameters/multipath)" = Y ] || fail "nvme_core multipath is off in the guest"
nvmet_port_add 2 127.0.0.1 4421 tcp
nvmet_port_link 2 "$NQN"
printf '{"driver_volume_type": "nvmeof", "data": {"target_nqn": "%s", "vol_uuid": "%s", "ns_id": 1, "portals": [["%s", 4420, "rdma"], ["127.0.0.1", 4421, "tcp"]], "volume_id": "r3"}}\n' \
  "$NQN" "$U1" "$LAB_RDMA_ADDR" > "$S/r3.json"
connect "$S/r3.json" "$S/i3.json" --multipath
dev=$(json_get "$S/i3.json" path); b=${dev#/dev/}
assert_eq true "$(json_get "$S/i3.json" multipath)" "multipath in device_info"
assert_eq "rdma tcp" "$(for c in $(nvme_ctrls_of "$NQN"); do cat "/sys/class/nvme/$c/transport"; done | sort | xargs)" "transports of the controllers"
assert_eq 2 "$(lab__ls /sys/block -name "${b%n*}c*n${b##*n}" | wc -w)" "paths under $dev"
head -c $((32 << 20)) /dev/urandom > "$S/p3"
( for _ in 1 2 3 4; do dd if="$S/p3" of="$dev" bs=1M oflag=direct conv=fsync status=none || exit 1; done ) &
io=$!
sleep 0.5
nvmet_port_unlink 1 "$NQN"
wait "$io" || fail "I/O failed when the RDMA port went away"
cmp -n $((32 << 20)) "$S/p3" "$dev" || fail "data differs after the RDMA port removal"
states=$(for c in $(nvme_ctrls_of "$NQN"); do printf '%s(%s)=%s ' "$c" "$(cat "/sys/class/nvme/$c/transport")" "$(cat "/sys/class/nvme/$c/state")"; done)
log "multipath head $dev over RDMA + TCP; RDMA port removed during 128 MiB of writes: I/O completed, data intact ($states)"
out=$(disconnect "$S/r3.json" "$S/i3.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "disconnect outcome: $out"
nothing_left
log "detached: both controllers (RDMA reconnecting, TCP live) disconnected, nothing left"
nvmet_teardown
assert_no_targets
log "nvmeof_rdma OK"
