#!/bin/bash
# iscsi_luks: encrypted iSCSI volumes through moor + moord (packaged config and filters,
# caller = unprivileged moortest). LUKS2 from a symmetric key-manager secret: first attach
# formats the blank volume and opens /dev/mapper/crypt-<volume_id>; data written through
# the mapping is ciphertext on the target; detach closes the mapping and leaves nothing;
# re-attach with the same secret reads the data back; a wrong secret fails and leaves
# nothing; rekey to a passphrase secret, after which the new one opens and the old one
# does not; extend of an attached encrypted volume; plain dm-crypt (os-brick's
# CryptsetupEncryptor argv) round trip. Every secret is registered with lab_secret, so
# the runner's secretwatch fails the run if one shows up in any argv, env or log.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
P=127.0.0.1:3260
IQN=iqn.2003-01.org.moor.lab:luks-volume
VOL=5a8b0000-1111-2222-3333-000000000001
MAP=crypt-$VOL
moord_start
W=$(mktemp -d /tmp/luks.XXXXXX)
chown moortest "$W" && chmod 0700 "$W"
lab_defer rm -rf "$W"
as_caller() { runuser -u moortest -- "$@"; }

lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 0 64
backing_file=$(lio_backstore_file "$(lio_backstore "$IQN" 0)")
cat > "$W/ci.json" <<JSON
{"driver_volume_type": "iscsi",
 "data": {"target_portal": "$P", "target_iqn": "$IQN", "target_lun": 0,
          "volume_id": "$VOL", "access_mode": "rw", "encrypted": true}}
JSON
cat > "$W/luks2.json" <<JSON
{"provider": "luks2", "control_location": "front-end", "cipher": "aes-xts-plain64",
 "key_size": 512, "encryption_key_id": "1d6b0a6e-0000-4000-8000-00000000beef"}
JSON
# The key manager's symmetric key (raw bytes) and the passphrase cryptsetup gets (its hex).
head -c 32 /dev/urandom > "$W/key.bin"
key_hex=$(od -An -v -tx1 "$W/key.bin" | tr -d ' \n')
head -c 32 /dev/urandom > "$W/wrong.bin"
printf 'moor-lab new passphrase %s' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" > "$W/new.txt"
lab_secret "$key_hex" "$(od -An -v -tx1 "$W/wrong.bin" | tr -d ' \n')"
lab_secret --file "$W/new.txt" --file "$W/key.bin" --file "$W/wrong.bin"
chown moortest "$W"/*.json "$W"/*.bin "$W/new.txt"
chmod 0600 "$W"/*.bin "$W/new.txt"
FAST=(--luks-pbkdf pbkdf2 --luks-pbkdf-iterations 1000)   # TCG: see vm/NOTES.md pitfall 11

connect() { # connect SECRET_FILE [SECRET_TYPE] -> device_info in $W/di.json
  moor_caller connect iscsi --properties "$W/ci.json" --encryption "$W/luks2.json" \
    --secret-file "$1" --secret-type "${2:-symmetric}" "${FAST[@]}" > "$W/di.json"
}
disconnect() {
  moor_caller disconnect iscsi --properties "$W/ci.json" --device-info "$W/di.json"
  [ ! -e "/dev/mapper/$MAP" ] || fail "mapping $MAP left after detach"
  assert_no_leftovers
}

log "first attach: a blank volume is formatted (LUKS2) and opened"
connect "$W/key.bin"
cat "$W/di.json"
assert_eq "/dev/mapper/$MAP" "$(json_get "$W/di.json" path)" "device_info path"
sd=$(json_get "$W/di.json" encryption.backing)
assert_eq "/dev/$sd" "$(json_get "$W/di.json" encryption.device_path)"
cryptsetup luksDump "/dev/$sd" | grep -Eq '^Version:[[:space:]]+2$' || fail "/dev/$sd is not LUKS2"
printf '%s' "$key_hex" | cryptsetup open --test-passphrase --key-file=- "/dev/$sd" \
  || fail "the derived passphrase (hex of the key) does not open the volume"
dm=$(basename "$(readlink -f "/dev/mapper/$MAP")")
assert_eq "$sd" "$(ls "/sys/block/$dm/slaves")" "the mapping sits on the volume's disk"

log "plaintext through the mapping, ciphertext on the target"
marker="moor-lab plaintext marker $(date +%s%N)"
io_roundtrip "/dev/mapper/$MAP" 1
{ printf '%s' "$marker"; head -c 4000 /dev/zero; } | dd of="/dev/mapper/$MAP" bs=4096 count=1 iflag=fullblock oflag=direct conv=fsync,sync status=none
dd if="/dev/mapper/$MAP" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "marker not readable through the mapping"
sync
if grep -aq "$marker" "$backing_file"; then fail "plaintext reached the target's backing file"; fi
if dd if="/dev/$sd" bs=1M iflag=direct status=none | grep -aq "$marker"; then fail "plaintext on the raw disk"; fi
head -c 4 "$backing_file" | grep -aq LUKS || fail "no LUKS header on the target's backing file"
echo "marker readable through /dev/mapper/$MAP, absent from the target's file and the raw disk"

log "detach closes the mapping and leaves nothing"
disconnect

log "re-attach with the same secret: not formatted again, data reads back"
connect "$W/key.bin"
dd if="/dev/mapper/$MAP" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "data lost across re-attach"
[ "$(grep -c '"op":"luks.format"' "$MOOR_AUDIT")" = 1 ] || fail "luks.format ran more than once"

log "extend: grow the LUN to 96 MiB, then moor extend resizes the mapping"
before=$(size_of "/dev/mapper/$MAP")
lio_lun_resize "$IQN" 0 96
moor_caller extend iscsi --properties "$W/ci.json" --device-info "$W/di.json" \
  --encryption "$W/luks2.json" --secret-file "$W/key.bin" > "$W/ext.json"
cat "$W/ext.json"
after=$(size_of "/dev/mapper/$MAP")
assert_eq "$after" "$(json_get "$W/ext.json" new_size)" "reported size"
assert_eq $((before + 32 * 1048576)) "$after" "mapping grew by 32 MiB"
dd if="/dev/mapper/$MAP" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "data lost across extend"

log "rekey (attached): new passphrase secret in a new slot, old slot removed"
as_caller "$BIN/moor" --key-file /etc/moor/moord.key luks rekey --device-info "$W/di.json" \
  --secret-file "$W/key.bin" --new-secret-file "$W/new.txt" --new-secret-type passphrase \
  "${FAST[@]}" > "$W/rekey.json"
cat "$W/rekey.json"
assert_eq "[0]" "$(json_get "$W/rekey.json" removed_slots)" "removed slots"
printf '%s' "$key_hex" | cryptsetup open --test-passphrase --key-file=- "/dev/$sd" 2>/dev/null \
  && fail "the old secret still opens the volume"
disconnect

log "the old secret no longer attaches; nothing is left"
if connect "$W/key.bin" 2>"$W/err"; then fail "attach with the old secret worked"; fi
cat "$W/err"
grep -q "does not open" "$W/err" || fail "unclear error for a wrong secret"
assert_no_leftovers
[ ! -e "/dev/mapper/$MAP" ] || fail "mapping left after a failed attach"

log "a wrong secret fails cleanly too"
if connect "$W/wrong.bin" 2>"$W/err"; then fail "attach with a wrong secret worked"; fi
assert_no_leftovers

log "the new secret attaches and reads the data"
connect "$W/new.txt" passphrase
dd if="/dev/mapper/$MAP" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "data lost across rekey"
disconnect

log "plain dm-crypt (no header): same argv as os-brick's CryptsetupEncryptor"
lio_lun_add "$IQN" 1 16
cat > "$W/ci-plain.json" <<JSON
{"target_portal": "$P", "target_iqn": "$IQN", "target_lun": 1, "volume_id": "plain-$VOL", "encrypted": true}
JSON
cat > "$W/plain.json" <<JSON
{"provider": "plain", "control_location": "front-end", "cipher": "aes-cbc-essiv:sha256", "key_size": 256}
JSON
chown moortest "$W"/*.json
pconnect() {
  moor_caller connect iscsi --properties "$W/ci-plain.json" --encryption "$W/plain.json" \
    --secret-file "$W/key.bin" > "$W/dp.json"
}
pconnect
pdev=$(json_get "$W/dp.json" path)
assert_eq "/dev/mapper/crypt-plain-$VOL" "$pdev"
psd=$(json_get "$W/dp.json" encryption.backing)
{ printf '%s' "$marker"; head -c 4000 /dev/zero; } | dd of="$pdev" bs=4096 count=1 iflag=fullblock oflag=direct conv=fsync,sync status=none
if dd if="/dev/$psd" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker"; then fail "plaintext on the raw plain disk"; fi
moor_caller disconnect iscsi --properties "$W/ci-plain.json" --device-info "$W/dp.json"
pconnect
dd if="$pdev" bs=4096 count=1 iflag=direct status=none | grep -aq "$marker" || fail "plain data lost across re-attach"
moor_caller disconnect iscsi --properties "$W/ci-plain.json" --device-info "$W/dp.json"
assert_no_leftovers
lio_teardown
! grep -q "$key_hex" "$MOOR_AUDIT" "$LAB_STATE/moord.log" || fail "the passphrase is in the audit or moord log"
echo "iscsi_luks: all checks passed"
