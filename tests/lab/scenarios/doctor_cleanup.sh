#!/bin/bash
# doctor_cleanup: `moor doctor` on a clean guest reports every host check and no
# leftover (exit 0). Then leftovers are made on purpose: a session logged in with
# manual scan (no disk: idle), a multipath volume whose caller lost its attachment
# records (two sessions, two disks, a map), a wwids entry of a volume that is gone
# and a dangling by-id link; a control volume stays attached normally. The doctor
# lists exactly those, each with its identity and reason (exit 4). `cleanup --plan`
# shows the typed operations and changes nothing; `--apply` skips the map while a
# process holds it open, then removes exactly the leftovers through the detach paths
# (the control volume keeps working), and the doctor is clean again. All as the
# unprivileged caller of the moor group, through moord.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
P1=127.0.0.1:3260 P2=127.0.0.2:3260
S=$(mktemp -d /tmp/doctor.XXXXXX) && chmod 0755 "$S"
lab_defer rm -rf "$S"
doctor() { moor_caller doctor "$@"; }
kinds() { python3 -c 'import json,sys; print(" ".join(sorted(l["kind"] for l in json.load(open(sys.argv[1]))["leftovers"])))' "$1"; }

# --- a clean host: every check passes or warns, nothing left over
rc=0; doctor > "$S/clean.txt" || rc=$?
cat "$S/clean.txt"
assert_eq 0 "$rc" "doctor exit status on a clean host"
for c in iscsid initiatorname multipathd find_multipaths udev moord; do
  grep -Eq "^  ok +$c " "$S/clean.txt" || fail "check $c is not ok: $(grep " $c " "$S/clean.txt")"
done
grep -q '^leftovers: none' "$S/clean.txt" || fail "leftovers on a clean host"
log "clean host: doctor exit 0, no leftovers"

# --- a control volume, attached and recorded the normal way
CTL=iqn.2003-01.org.moor.lab:control
lio_target_create "$CTL" --portal "$P1"
lio_lun_add "$CTL" 0 16
printf '{"target_portal": "%s", "target_iqn": "%s", "target_lun": 0}\n' "$P1" "$CTL" > "$S/ctl.json"
moor_caller connect iscsi --properties "$S/ctl.json" > "$S/ictl.json" 2>"$S/err" || fail "control attach: $(cat "$S/err")"
ctl_dev=$(json_get "$S/ictl.json" path)

# --- leak 1: a session with no disk (manual scan, as a login that never scanned)
IDLE=iqn.2003-01.org.moor.lab:idle
lio_target_create "$IDLE" --portal "$P1"
lio_lun_add "$IDLE" 0 8
iscsiadm -m node -T "$IDLE" -p "$P1" --op new >/dev/null
iscsiadm -m node -T "$IDLE" -p "$P1" --op update -n node.session.scan -v manual
iscsi_login "$IDLE" "$P1"
idle_session=$(iscsi_session "$IDLE" "$P1")

# --- leak 2: a multipath volume whose attachment records are lost
MP=iqn.2003-01.org.moor.lab:leaked
lio_target_create "$MP" --portal "$P1" --portal "$P2"
lio_lun_add "$MP" 0 32 --type block
cat > "$S/mp.json" <<JSON
{"target_portal": "$P1", "target_iqn": "$MP", "target_lun": 0,
 "target_portals": ["$P1", "$P2"], "target_iqns": ["$MP", "$MP"], "target_luns": [0, 0]}
JSON
moor_caller connect iscsi --properties "$S/mp.json" --multipath > "$S/imp.json" 2>"$S/err" || fail "multipath attach: $(cat "$S/err")"
dm=$(json_get "$S/imp.json" path); dm=${dm#/dev/}; wwn=$(json_get "$S/imp.json" scsi_wwn)
[[ $dm == dm-* ]] || fail "multipath attach gave $dm"
paths=$(lab__ls "/sys/block/$dm/slaves")
for p in $paths; do rm "/run/moor/attachments/$p.json"; done
grep -qx "/$wwn/" /etc/multipath/wwids || fail "the multipath attach did not whitelist $wwn"

# --- leak 3 and 4: a wwids entry of a volume that is gone, a dangling by-id link
GONE=36001405d0c70000000000000000dead
multipath -a "$GONE" >/dev/null
ln -s ../../sdzz "/dev/disk/by-id/scsi-$GONE"
lab_defer rm -f "/dev/disk/by-id/scsi-$GONE"
log "leaked: $idle_session to $IDLE (no disk), $dm ($wwn) over $paths without records, wwids entry $GONE, link scsi-$GONE"

# --- the doctor names exactly those
rc=0; doctor --json > "$S/dirty.json" || rc=$?
assert_eq 4 "$rc" "doctor exit status with leftovers"
assert_eq "idle_session stale_link stale_wwid unclaimed_scsi_volume" "$(kinds "$S/dirty.json")" "leftover kinds"
python3 - "$S/dirty.json" "$IDLE" "${idle_session#session}" "$wwn" "$dm" "$GONE" "$MP" <<'PY' || fail "doctor report: $(cat "$S/dirty.json")"
import json, sys
r = json.load(open(sys.argv[1])); idle, sid, wwn, dm, gone, mp = sys.argv[2:]
by = {l["kind"]: l for l in r["leftovers"]}
s = by["idle_session"]; assert s["target"] == idle and s["session"] == int(sid) and s["portal"] == "127.0.0.1:3260", s
v = by["unclaimed_scsi_volume"]; assert v["wwid"] == wwn and v["map"][0] == dm and v["protocol"] == "iscsi", v
assert sorted(p["portal"] for p in v["paths"]) == ["127.0.0.1:3260", "127.0.0.2:3260"] and {p["target"] for p in v["paths"]} == {mp}, v
assert by["stale_wwid"]["wwid"] == gone and by["stale_link"]["dangling"] is True, by
for l in r["leftovers"]: assert l["reason"], l
assert not v.get("in_use") and not v.get("users_unknown"), v
PY
{ doctor || true; } | sed -n '/^leftovers/,$p'
log "doctor: exit 4, the four leftovers with identity and reason; the control volume is not one"

# --- the plan: typed operations per action, nothing changes
snapshot() { { lab__ls /sys/class/iscsi_session; lab__ls /sys/block; cat /etc/multipath/wwids; ls /dev/disk/by-id; } 2>/dev/null; }
before=$(snapshot)
moor_caller cleanup --plan --json > "$S/plan.json" || fail "plan: $(cat "$S/plan.json")"
assert_eq "$before" "$(snapshot)" "host state after cleanup --plan"
python3 - "$S/plan.json" "$wwn" <<'PY' || fail "plan: $(cat "$S/plan.json")"
import json, sys
p = json.load(open(sys.argv[1])); wwn = sys.argv[2]
acts = {a["action"]: a for a in p["actions"]}
assert p["mode"] == "plan" and all(a["status"] == "planned" for a in p["actions"]), p
ops = "\n".join(acts["detach_scsi_volume"]["operations"])
for want in ("multipath.flush", "scsi.delete", "iscsi.logout", wwn): assert want in ops, ops
assert any(o.startswith("iscsi.logout") for o in acts["logout_session"]["operations"]), acts
assert any(o.startswith("multipath.forget_wwid") for o in acts["forget_wwid"]["operations"]), acts
PY
log "cleanup --plan: $(python3 -c 'import json,sys; print(", ".join(a["action"] for a in json.load(open(sys.argv[1]))["actions"]))' "$S/plan.json"); nothing changed"

# --- a process holds the map open: its removal is skipped, nothing of it changes
sleep 300 < "/dev/$dm" &
holder=$!
lab_defer kill "$holder" 2>/dev/null
rc=0; moor_caller cleanup --apply --only 1 --json > "$S/busy.json" 2>"$S/err" || rc=$?
assert_eq 4 "$rc" "cleanup exit status with the map open"
grep -q "open by pid $holder (sleep)" "$S/busy.json" || fail "not skipped as open: $(cat "$S/busy.json")"
[ -e "/sys/block/$dm" ] || fail "the open map was removed"
kill "$holder"; wait "$holder" 2>/dev/null || true
log "map open by pid $holder: skipped (exit 4), map intact"

# --- apply: exactly the leftovers go, through the detach paths
rc=0; moor_caller cleanup --apply --json > "$S/apply.json" 2>"$S/err" || rc=$?
cat "$S/apply.json"
assert_eq 0 "$rc" "cleanup --apply exit status ($(grep -v '"level":"INFO"' "$S/err" | head -3))"
[ ! -e "/sys/block/$dm" ] || fail "$dm still there"
for p in $paths; do [ ! -e "/sys/block/$p" ] || fail "path $p still there"; done
! iscsi_session "$MP" "$P1" 2>/dev/null || fail "session to $MP@$P1 still there"
! iscsi_session "$MP" "$P2" 2>/dev/null || fail "session to $MP@$P2 still there"
! iscsi_session "$IDLE" "$P1" 2>/dev/null || fail "idle session still there"
! grep -q "/$GONE/\|/$wwn/" /etc/multipath/wwids || fail "wwids still lists $GONE or $wwn: $(cat /etc/multipath/wwids)"
[ ! -L "/dev/disk/by-id/scsi-$GONE" ] || fail "dangling link still there"
# The control volume is untouched and works.
iscsi_session "$CTL" "$P1" >/dev/null || fail "the control volume's session was logged out"
io_roundtrip "$ctl_dev"
grep -q '"op":"multipath.flush".*"outcome":"ok"' "$MOOR_AUDIT" || fail "no audited map flush"
log "cleanup --apply: map, paths, three sessions, wwids entries and link gone; control volume $ctl_dev still does I/O"

rc=0; doctor > "$S/after.txt" || rc=$?
cat "$S/after.txt"
assert_eq 0 "$rc" "doctor exit status after cleanup"
moor_caller disconnect iscsi --properties "$S/ctl.json" --device-info "$S/ictl.json" >/dev/null 2>"$S/err" || fail "control detach: $(cat "$S/err")"
assert_no_leftovers
lio_teardown
log "doctor clean again; control volume detached; nothing left"
