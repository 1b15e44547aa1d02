#!/bin/bash
# demo_attach: the README demo. moord (packaged config and filters) serves an
# unprivileged caller in the `moor` group, who attaches a volume from the in-guest LIO
# target with `moor connect iscsi` (connection_info as Cinder sends it; every
# privileged step a typed moord operation), writes and reads data, detaches with
# `moor disconnect iscsi`, and checks nothing is left; then prints the audit trail.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
P=127.0.0.1:3260
IQN=iqn.2003-01.org.moor.lab:demo-volume
step() { printf '\n==> %s\n' "$*"; }
lab_secret Demo-Chap-Secret-42
moord_start
W=$(mktemp -d /tmp/demo.XXXXXX) && chmod 0755 "$W"
lab_defer rm -rf "$W"

step "target: LIO iSCSI $IQN on $P, one 64 MiB LUN with CHAP"
lio_target_create "$IQN" --portal "$P" --chap demo-user Demo-Chap-Secret-42
lio_lun_add "$IQN" 0 64
cat > "$W/connection_info.json" <<JSON
{"driver_volume_type": "iscsi",
 "data": {"target_portal": "$P", "target_iqn": "$IQN", "target_lun": 0,
          "auth_method": "CHAP", "auth_username": "demo-user", "auth_password": "Demo-Chap-Secret-42",
          "volume_id": "demo-volume", "access_mode": "rw", "encrypted": false}}
JSON
sed 's/"auth_password": "[^"]*"/"auth_password": "***"/' "$W/connection_info.json"

step "attach, as uid $(id -u moortest) (moortest): moor connect iscsi"
moor_caller call ping
moor_caller connect iscsi --properties "$W/connection_info.json" > "$W/device_info.json"
cat "$W/device_info.json"
dev=$(json_get "$W/device_info.json" path)

step "write 4 MiB and read them back (O_DIRECT)"
io_roundtrip "$dev" 4 "$LAB_STATE/pattern"
echo "4 MiB written to $dev and read back identical"

step "detach: moor disconnect iscsi"
moor_caller disconnect iscsi --properties "$W/connection_info.json" --device-info "$W/device_info.json"
assert_no_leftovers
iscsiadm -m node -T "$IQN" -p "$P" >/dev/null 2>&1 && fail "node record left"
echo "nothing left: no disk, no session, no node record"
lio_teardown

step "audit trail (/var/log/moor/audit.log): one record per privileged step"
cat "$MOOR_AUDIT"
! grep -q Demo-Chap-Secret-42 "$MOOR_AUDIT" "$LAB_STATE/moord.log" || fail "the CHAP secret leaked"
