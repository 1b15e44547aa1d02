#!/bin/bash
# nvmeof_luks: an encrypted NVMe-oF volume (nvmet NVMe/TCP) through moor + moord (packaged
# config and filters, caller = unprivileged moortest): the first attach formats the blank
# namespace as LUKS2 from the key manager's symmetric secret and opens
# /dev/mapper/crypt-<volume_id> on it (moord re-checks the namespace's WWID before every
# cryptsetup step); data written through the mapping is ciphertext on the target; detach
# closes the mapping, then disconnects, leaving nothing; re-attach reads the data back
# without formatting again; a wrong secret fails and leaves nothing; extend grows the
# namespace and the mapping. Every secret is registered with lab_secret (secretwatch).
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
NQN=nqn.2014-08.org.moor.lab:nvmeof-luks
U1=7e3a0c55-0a1e-4a43-9d37-5c1f0e3a1111
VOL=5a8b0000-1111-2222-3333-0000000000e1
MAP=crypt-$VOL
moord_start
W=$(mktemp -d /tmp/nvmeof_luks.XXXXXX)
chown moortest "$W" && chmod 0700 "$W"
lab_defer rm -rf "$W"

nvmet_subsys_create "$NQN" --serial moorlab0luks
nvmet_ns_add "$NQN" 1 64 --uuid "$U1"
nvmet_port_add 1 127.0.0.1 4420
nvmet_port_link 1 "$NQN"
backing_file=$(nvmet_ns_file "$NQN" 1)
cat > "$W/ci.json" <<JSON
{"driver_volume_type": "nvmeof",
 "data": {"target_nqn": "$NQN", "vol_uuid": "$U1", "ns_id": 1, "portals": [["127.0.0.1", 4420, "tcp"]],
          "volume_id": "$VOL", "access_mode": "rw", "encrypted": true}}
JSON
cat > "$W/luks2.json" <<JSON
{"provider": "luks2", "control_location": "front-end", "cipher": "aes-xts-plain64",
 "key_size": 512, "encryption_key_id": "1d6b0a6e-0000-4000-8000-0000000000e1"}
JSON
head -c 32 /dev/urandom > "$W/key.bin"
key_hex=$(od -An -v -tx1 "$W/key.bin" | tr -d ' \n')
head -c 32 /dev/urandom > "$W/wrong.bin"
lab_secret "$key_hex" "$(od -An -v -tx1 "$W/wrong.bin" | tr -d ' \n')"
lab_secret --file "$W/key.bin" --file "$W/wrong.bin"
chown moortest "$W"/*.json "$W"/*.bin
chmod 0600 "$W"/*.bin
FAST=(--luks-pbkdf pbkdf2 --luks-pbkdf-iterations 1000)   # TCG: see vm/NOTES.md pitfall 11

connect() { # connect SECRET_FILE -> device_info in $W/di.json
  moor_caller connect nvmeof --properties "$W/ci.json" --encryption "$W/luks2.json" \
    --secret-file "$1" "${FAST[@]}" > "$W/di.json"
}
disconnect() {
  moor_caller disconnect nvmeof --properties "$W/ci.json" --device-info "$W/di.json" > "$W/out.json"
  grep -q '"status": "clean"' "$W/out.json" || fail "disconnect outcome: $(cat "$W/out.json")"
  [ ! -e "/dev/mapper/$MAP" ] || fail "mapping $MAP left after detach"
  assert_no_leftovers
}

connect "$W/key.bin"
assert_eq "/dev/mapper/$MAP" "$(json_get "$W/di.json" path)" "device_info path"
ns=$(json_get "$W/di.json" encryption.backing)
[[ "$ns" == nvme*n1 ]] || fail "the mapping's backing is $ns, not a namespace"
assert_eq "$U1" "$(cat "/sys/block/$ns/uuid")" "uuid of the encrypted namespace"
cryptsetup luksDump "/dev/$ns" | grep -Eq '^Version:[[:space:]]+2$' || fail "/dev/$ns is not LUKS2"
printf '%s' "$key_hex" | cryptsetup open --test-passphrase --key-file=- "/dev/$ns" \
  || fail "the derived passphrase (hex of the key) does not open the volume"
dm=$(basename "$(readlink -f "/dev/mapper/$MAP")")
assert_eq "$ns" "$(ls "/sys/block/$dm/slaves")" "the mapping sits on the namespace"
grep -q '"op":"luks.format".*"guard"' "$MOOR_AUDIT" || fail "luks.format ran without an audited guard"
log "first attach: namespace $ns formatted LUKS2 and opened as /dev/mapper/$MAP"

marker="moor-lab nvme plaintext marker $(date +%s%N)"
{ printf '%s' "$marker"; head -c 4000 /dev/zero; } | dd of="/dev/mapper/$MAP" bs=4096 count=1 iflag=fullblock oflag=direct conv=fsync,sync status=none
dd if="/dev/mapper/$MAP" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "marker not readable through the mapping"
sync
if grep -aq "$marker" "$backing_file"; then fail "plaintext reached the target's backing file"; fi
head -c 4 "$backing_file" | grep -aq LUKS || fail "no LUKS header on the target's backing file"
log "plaintext through the mapping, ciphertext and a LUKS header in the target's file"

disconnect
log "detach: mapping closed, controller disconnected, nothing left"

connect "$W/key.bin"
dd if="/dev/mapper/$MAP" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "data lost across re-attach"
assert_eq 1 "$(grep -c '"op":"luks.format"' "$MOOR_AUDIT")" "luks.format runs"
before=$(size_of "/dev/mapper/$MAP")
nvmet_ns_resize "$NQN" 1 96
moor_caller extend nvmeof --properties "$W/ci.json" --device-info "$W/di.json" \
  --encryption "$W/luks2.json" --secret-file "$W/key.bin" > "$W/ext.json"
after=$(size_of "/dev/mapper/$MAP")
assert_eq "$after" "$(json_get "$W/ext.json" new_size)" "size reported by moor extend"
assert_eq $((before + 32 * 1048576)) "$after" "mapping grew by 32 MiB"
dd if="/dev/mapper/$MAP" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "data lost across extend"
log "re-attach: not formatted again, data back; namespace grown to 96 MiB, mapping $before -> $after bytes"
disconnect

if connect "$W/wrong.bin" 2>"$W/err"; then fail "attach with a wrong secret worked"; fi
grep -q "does not open" "$W/err" || fail "unclear error for a wrong secret: $(cat "$W/err")"
[ ! -e "/dev/mapper/$MAP" ] || fail "mapping left after a failed attach"
assert_no_leftovers
log "a wrong secret: refused, the namespace disconnected again, nothing left"
nvmet_teardown
assert_no_targets
log "nvmeof_luks OK"
