#!/bin/bash
# nvmeof_replicas: a replicated NVMe-oF volume (os-brick's `volume_replicas`) over two
# nvmet subsystems, as the unprivileged caller through moord: the first attach creates
# an MD RAID1 over both new legs, extend grows both legs and the array, one leg fails
# during I/O (its subsystem leaves the port; the fail-fast policy makes its I/O fail
# after 5 s so MD drops the leg instead of waiting forever), the array keeps the data,
# detach stops the array and disconnects both legs (one of them reconnecting) leaving
# nothing, and a re-attach with the failed leg still gone assembles the array degraded
# from the surviving leg's metadata (by moor, or by udev's incremental assembly, which
# moor then reuses; never a new array over old data).
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
S=$(mktemp -d /tmp/nvmeof_replicas.XXXXXX) && chmod 0755 "$S"
lab_defer rm -rf "$S"
lab_defer 'mdadm --stop --scan >/dev/null 2>&1'
NA=nqn.2014-08.org.moor.lab:replica-a
NB=nqn.2014-08.org.moor.lab:replica-b
UA=1e2d3c4b-5a69-4788-97a6-b5c4d3e2f1a1
UB=1e2d3c4b-5a69-4788-97a6-b5c4d3e2f1b2
ALIAS=moorlab_r1
cat > "$S/r.json" <<EOF
{"driver_volume_type": "nvmeof", "data": {"vol_uuid": "7c0e3a52-2b1d-4f5e-8a9b-0c1d2e3f4a5b",
 "alias": "$ALIAS", "replica_count": 2, "reconnect_policy": "fail-fast", "volume_id": "r1",
 "volume_replicas": [
   {"target_nqn": "$NA", "vol_uuid": "$UA", "portals": [["127.0.0.1", 4420, "tcp"]]},
   {"target_nqn": "$NB", "vol_uuid": "$UB", "portals": [["127.0.0.1", 4420, "tcp"]]}]}}
EOF
connect() { # OUT : device_info to OUT
  moor_caller connect nvmeof --properties "$S/r.json" > "$1" 2>"$S/connect.err" || { cat "$S/connect.err" >&2; return 1; }
}
disconnect() { moor_caller disconnect nvmeof --properties "$S/r.json" --device-info "$1"; }
mdstat() { grep -A2 "^${1} " /proc/mdstat | tr -s ' \n' ' '; }
raid_get() { json_get "$1" "raid.$2"; }

nvmet_subsys_create "$NA"
nvmet_subsys_create "$NB"
nvmet_ns_add "$NA" 1 64 --uuid "$UA"
nvmet_ns_add "$NB" 1 64 --uuid "$UB"
nvmet_port_add 1 127.0.0.1 4420
nvmet_port_link 1 "$NA"
nvmet_port_link 1 "$NB"

plan=$(moor_caller connect nvmeof --properties "$S/r.json" --dry-run)
assert_eq 2 "$(grep -c '"nvme.connect' <<<"$plan")" "connects planned by the dry run"
[ -z "$(lab__ls /sys/class/nvme)" ] || fail "the dry run connected"

# --- first attach: a new RAID1 over both new legs
connect "$S/i1.json"
assert_eq "/dev/md/$ALIAS" "$(json_get "$S/i1.json" path)" "path"
assert_eq created "$(raid_get "$S/i1.json" how)" "raid.how"
md=$(raid_get "$S/i1.json" device)
[ -b "/dev/md/$ALIAS" ] || fail "/dev/md/$ALIAS is not a block device"
assert_eq raid1 "$(cat "/sys/block/$md/md/level")" "level of $md"
assert_eq 2 "$(ls "/sys/block/$md/slaves" | wc -l)" "legs of $md"
grep -q '"op":"md.create".*"outcome":"ok"' "$MOOR_AUDIT" || fail "no audit record of md.create"
head -c $((8 << 20)) /dev/urandom > "$S/p1"
dd if="$S/p1" of="/dev/md/$ALIAS" bs=1M oflag=direct conv=fsync status=none
log "attached /dev/md/$ALIAS ($md, raid1 over $(ls "/sys/block/$md/slaves" | paste -sd' ' -)); 8 MiB written: $(mdstat "$md")"
for leg in $(ls "/sys/block/$md/slaves"); do
  cmp -n $((8 << 20)) -i $(( $(cat "/sys/block/$md/md/dev-$leg/offset") * 512 )):0 "/dev/$leg" "$S/p1" \
    || fail "leg $leg does not hold the data"
done
log "both legs hold the data at their data offset"

# --- extend: both legs grow on the targets, moor rescans them and grows the array
before=$(size_of "/dev/md/$ALIAS")
nvmet_ns_resize "$NA" 1 96
nvmet_ns_resize "$NB" 1 96
out=$(moor_caller extend nvmeof --properties "$S/r.json" --device-info "$S/i1.json") || fail "extend: $out"
after=$(json_get <(echo "$out") new_size)
[ "$after" -gt "$before" ] && [ "$after" -gt $((90 << 20)) ] || fail "array size $before -> $after: $out"
assert_eq "$after" "$(size_of "/dev/md/$ALIAS")" "size of /dev/md/$ALIAS"
log "legs grown to 96 MiB on the targets: moor extend grew the array $before -> $after bytes"

# --- one leg fails during I/O
head -c $((8 << 20)) /dev/urandom > "$S/p2"
nvmet_port_unlink 1 "$NB"
t0=$SECONDS
dd if="$S/p2" of="/dev/md/$ALIAS" bs=1M oflag=direct conv=fsync status=none || fail "I/O to the array failed with one leg gone"
wait_until 30 grep -q '(F)\|_\]' /proc/mdstat || fail "MD did not drop the failed leg: $(cat /proc/mdstat)"
cmp -n $((8 << 20)) "$S/p2" "/dev/md/$ALIAS" || fail "data differs after the leg failure"
log "subsystem B left the port: writes completed after $((SECONDS - t0)) s (fail-fast), MD runs degraded: $(mdstat "$md")"

out=$(disconnect "$S/i1.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "disconnect outcome: $out"
grep -q "\"/dev/md/$ALIAS\"" <<<"$out" || fail "the array is not listed as removed: $out"
assert_no_leftovers
[ ! -e "/dev/md/$ALIAS" ] && [ ! -e "/sys/block/$md" ] || fail "the array is left"
log "detached: array stopped, both legs' controllers (one reconnecting) disconnected, nothing left"

# --- re-attach with leg B still gone: assembled degraded from leg A's metadata
connect "$S/i2.json"
how=$(raid_get "$S/i2.json" how)
# udev's incremental assembly (mdadm's rules) may start the array from the leg
# before moor looks: then moor reuses it; otherwise moor assembles it.
case "$how" in reused|assembled) ;; *) fail "raid.how on re-attach: $how" ;; esac
grep -q "volume_replicas\[1\]" <<<"$(raid_get "$S/i2.json" missing)" || fail "the missing leg is not named: $(cat "$S/i2.json")"
md=$(raid_get "$S/i2.json" device)
assert_eq 1 "$(ls "/sys/block/$md/slaves" | wc -l)" "legs of the degraded array"
cmp -n $((8 << 20)) "$S/p2" "/dev/md/$ALIAS" || fail "data differs after re-assembly"
[ "$(grep -c '"op":"md.create".*"outcome":"ok"' "$MOOR_AUDIT")" = 1 ] || fail "the re-attach created a new array"
log "re-attached with one replica unreachable: $how degraded ($(mdstat "$md")), the data is there"
out=$(disconnect "$S/i2.json") || fail "disconnect: $out"
assert_no_leftovers
log "detached again: nothing left"
nvmet_teardown
assert_no_targets
log "nvmeof_replicas OK"
