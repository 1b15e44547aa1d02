#!/bin/bash
# iscsi_multipath: `moor connect iscsi --multipath` as the unprivileged caller through
# moord: two portals (listed) give one dm-multipath map (/dev/dm-N, WWID as
# multipath_id), I/O survives one portal failing while data is written, detach flushes
# the map and leaves nothing (sysfs, /dev, multipathd, sessions, node records);
# sendtargets discovery finds both paths when only target_portal is given; one path
# still gets a map; enforce_multipath without multipathd is refused and leaves nothing;
# without enforce_multipath it falls back to a single path.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
P1=127.0.0.1:3260 P2=127.0.0.2:3260
S=$(mktemp -d /tmp/iscsi_mp.XXXXXX) && chmod 0755 "$S"
lab_defer rm -rf "$S"
lab_defer lab-svc start multipathd      # whatever a failure left, the next scenario has it
connect() { # PROPS OUT [moor args]
  moor_caller connect iscsi --properties "$1" "${@:3}" > "$2" 2>"$S/connect.err" || { cat "$S/connect.err" >&2; return 1; }
}
disconnect() { moor_caller disconnect iscsi --properties "$1" --device-info "$2" "${@:3}"; }
mp_paths() { multipathd show paths raw format '%d' 2>/dev/null | grep -E '^(sd|nvme|dasd)' | paste -sd' ' - || true; }
slaves() { lab__ls "/sys/block/$1/slaves"; }

# --- two listed portals: one map over two paths
IQN=iqn.2003-01.org.moor.lab:mp
lio_target_create "$IQN" --portal "$P1" --portal "$P2"
lio_lun_add "$IQN" 0 64 --type block
cat > "$S/mp.json" <<JSON
{"target_portal": "$P1", "target_iqn": "$IQN", "target_lun": 0,
 "target_portals": ["$P1", "$P2"], "target_iqns": ["$IQN", "$IQN"], "target_luns": [0, 0],
 "volume_id": "mp-volume", "enforce_multipath": true}
JSON
connect "$S/mp.json" "$S/imp.json" --multipath
dev=$(json_get "$S/imp.json" path); wwn=$(json_get "$S/imp.json" scsi_wwn); dm=${dev#/dev/}
[[ $dm == dm-* ]] || fail "multipath attach returned $dev"
assert_eq "$wwn" "$(json_get "$S/imp.json" multipath_id)" "multipath_id"
assert_eq "mpath-$wwn" "$(cat "/sys/block/$dm/dm/uuid")" "dm uuid"
assert_eq 2 "$(slaves "$dm" | wc -w)" "paths in $dm ($(slaves "$dm"))"
assert_eq 2 "$(lab__ls /sys/class/iscsi_session | wc -w)" "sessions"
log "attached $dev over $(slaves "$dm") (WWID $wwn)"

# --- a portal fails while data is written: the map fails over, the data is intact
head -c $((48 << 20)) /dev/urandom > "$S/data"
dd if="$S/data" of="$dev" bs=64K oflag=direct status=none &
writer=$!
sleep 0.5
kill -0 "$writer" 2>/dev/null || fail "the write finished before the portal failed: the test proves nothing"
lio_portal_down "$IQN" 127.0.0.2
wait "$writer" || fail "writing through $dev failed with a portal down"
cmp <(dd if="$dev" bs=1M count=48 iflag=direct status=none) "$S/data" || fail "data differs after failover"
log "portal 127.0.0.2 failed during a 48 MiB write: write completed, data read back identical"
lio_portal_up "$IQN" 127.0.0.2
wait_until 60 sh -c "[ \"\$(multipathd show paths raw format '%d %t' | grep -c ' active')\" = 2 ]" \
  || fail "the failed path did not come back: $(multipathd show paths raw format '%d %t %T')"

# --- extend: the target grows the LUN, moor rescans both paths and resizes the map
lio_lun_resize "$IQN" 0 96
out=$(moor_caller extend iscsi --properties "$S/mp.json" --device-info "$S/imp.json") || fail "extend: $out"
assert_eq $((96 << 20)) "$(json_get <(echo "$out") new_size)" "size reported by moor extend"
assert_eq $((96 << 20)) "$(blockdev --getsize64 "$dev")" "size of $dev"
log "extend: both paths rescanned and agree, map $dm resized to 96 MiB"

out=$(disconnect "$S/mp.json" "$S/imp.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "outcome: $out"
assert_no_leftovers
[ -z "$(mp_paths)" ] || fail "multipathd still monitors: $(mp_paths)"
[ ! -e "/dev/mapper/$wwn" ] || fail "/dev/mapper/$wwn left"
iscsiadm -m node >/dev/null 2>&1 && fail "node records left: $(iscsiadm -m node)"
log "detached: map flushed, both paths removed, multipathd forgot them, both sessions logged out"

# --- discovery: only target_portal given
cat > "$S/disc.json" <<JSON
{"target_portal": "$P1", "target_iqn": "$IQN", "target_lun": 0, "volume_id": "disc"}
JSON
connect "$S/disc.json" "$S/idisc.json" --multipath
dm=$(json_get "$S/idisc.json" path); dm=${dm#/dev/}
assert_eq 2 "$(slaves "$dm" | wc -w)" "paths found by discovery"
io_roundtrip "/dev/$dm" 1
disconnect "$S/disc.json" "$S/idisc.json" >/dev/null
assert_no_leftovers
log "sendtargets discovery through $P1 found both portals: map $dm over 2 paths; detached"
lio_teardown

# --- discovery with (mutual) discovery CHAP and session CHAP
IQN=iqn.2003-01.org.moor.lab:mpchap
lab_secret Sess-Secret-11 Disc-Secret-22 Disc-Tgt-Secret-33
lio_target_create "$IQN" --portal "$P1" --portal "$P2" --chap sess-user Sess-Secret-11 \
  --discovery-chap disc-user Disc-Secret-22 --discovery-mutual-chap disc-tgt Disc-Tgt-Secret-33
lio_lun_add "$IQN" 0 16
cat > "$S/dchap.json" <<JSON
{"target_portal": "$P1", "target_iqn": "$IQN", "target_lun": 0,
 "auth_method": "CHAP", "auth_username": "sess-user", "auth_password": "Sess-Secret-11",
 "discovery_auth_method": "CHAP", "discovery_auth_username": "disc-user", "discovery_auth_password": "Disc-Secret-22",
 "discovery_auth_username_in": "disc-tgt", "discovery_auth_password_in": "Disc-Tgt-Secret-33"}
JSON
connect "$S/dchap.json" "$S/idchap.json" --multipath
dm=$(json_get "$S/idchap.json" path); dm=${dm#/dev/}
assert_eq 2 "$(slaves "$dm" | wc -w)" "paths found by CHAP discovery"
disconnect "$S/dchap.json" "$S/idchap.json" >/dev/null
assert_no_leftovers
! grep -q -e Disc-Secret-22 -e Disc-Tgt-Secret-33 -e Sess-Secret-11 "$MOOR_AUDIT" "$LAB_STATE/moord.log" || fail "a CHAP secret leaked"
log "discovery with mutual discovery CHAP + session CHAP: map $dm over 2 paths, detached; no secret in the logs"
lio_teardown

# --- one path still gets a map
IQN=iqn.2003-01.org.moor.lab:mp1
lio_target_create "$IQN" --portal "$P1"
lio_lun_add "$IQN" 3 16
printf '{"target_portal": "%s", "target_iqn": "%s", "target_lun": 3, "target_portals": ["%s"], "target_iqns": ["%s"], "target_luns": [3]}\n' \
  "$P1" "$IQN" "$P1" "$IQN" > "$S/one.json"
connect "$S/one.json" "$S/ione.json" --multipath
dm=$(json_get "$S/ione.json" path); dm=${dm#/dev/}
[[ $dm == dm-* ]] || fail "one path: no map ($dm)"
assert_eq 1 "$(slaves "$dm" | wc -w)" "paths of the one-path map"
disconnect "$S/one.json" "$S/ione.json" >/dev/null
assert_no_leftovers
log "one path: map $dm built anyway (multipath -a + multipathd add path), detached"

# --- multipathd down: enforce_multipath refuses, otherwise single path
lab-svc stop multipathd
wait_until 10 sh -c '! pgrep -x multipathd >/dev/null'
printf '{"target_portal": "%s", "target_iqn": "%s", "target_lun": 3, "enforce_multipath": true}\n' "$P1" "$IQN" > "$S/enf.json"
if connect "$S/enf.json" "$S/ienf.json" --multipath; then fail "enforce_multipath attached without multipathd"; fi
grep -q "enforce_multipath" "$S/connect.err" || fail "refusal does not say why: $(cat "$S/connect.err")"
assert_no_leftovers
iscsiadm -m node >/dev/null 2>&1 && fail "the refusal left node records"
log "multipathd down + enforce_multipath: refused before any login"
printf '{"target_portal": "%s", "target_iqn": "%s", "target_lun": 3}\n' "$P1" "$IQN" > "$S/fb.json"
connect "$S/fb.json" "$S/ifb.json" --multipath
dev=$(json_get "$S/ifb.json" path)
[[ $dev == /dev/sd* ]] || fail "fallback returned $dev"
disconnect "$S/fb.json" "$S/ifb.json" >/dev/null
assert_no_leftovers
log "multipathd down without enforce_multipath: single path $dev, detached"
lab-svc start multipathd
lio_teardown
