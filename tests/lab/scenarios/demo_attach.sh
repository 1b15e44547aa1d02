#!/bin/bash
# demo_attach: the README demo. moord (packaged config and filters) serves an
# unprivileged caller in the `moor` group, who attaches a volume from the in-guest LIO
# target through `moor call exec` (discovery, login), finds the disk by its session's
# H:C:T:L in sysfs, prints the device info, writes and reads data, detaches (logout,
# node record removed) and checks nothing is left; then prints the audit trail.
# (The typed iSCSI connector, `moor connect iscsi`, replaces the raw iscsiadm steps.)
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
REPO=$(cd "$LAB_DIR/../.." && pwd)
BIN=${MOOR_BIN_DIR:-$REPO/target/debug}
[ -x "$BIN/moord" ] && [ -x "$BIN/moor" ] || fail "no moord/moor in $BIN: build the workspace first"
P=127.0.0.1:3260
IQN=iqn.2003-01.org.moor.lab:demo-volume

getent group moor >/dev/null || groupadd -r moor
id -nG moortest | grep -qw moor || usermod -aG moor moortest
install -d -m 0755 /etc/moor /etc/moor/filters.d
install -m 0644 "$REPO/packaging/moord.toml" /etc/moor/moord.toml
install -m 0644 "$REPO/packaging/filters.d/moor.filters" /etc/moor/filters.d/
head -c 32 /dev/urandom > /etc/moor/moord.key
chown root:moor /etc/moor/moord.key && chmod 0640 /etc/moor/moord.key
install -d -m 0750 /var/log/moor
stop_moord() { kill "$MOORD_PID" 2>/dev/null; wait "$MOORD_PID" 2>/dev/null; rm -rf /etc/moor /var/log/moor /run/moor; }
"$BIN/moord" --config /etc/moor/moord.toml 2>"$LAB_STATE/moord.log" &
MOORD_PID=$!
lab_defer stop_moord
wait_for /run/moor/moord.sock 10 || fail "moord did not start: $(cat "$LAB_STATE/moord.log")"
moor() { runuser -u moortest -- "$BIN/moor" --key-file /etc/moor/moord.key "$@"; }
step() { printf '\n==> %s\n' "$*"; }

step "target: LIO iSCSI $IQN on $P, one 64 MiB LUN"
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 0 64

step "attach, as uid $(id -u moortest) (moortest), every privileged step through moord"
moor call ping
moor call exec -- iscsiadm -m discovery -t sendtargets -I default -p "$P"
moor call exec -- iscsiadm -m node -T "$IQN" -p "$P" --login
sd=$(iscsi_disk "$IQN" "$P" 0)
session=$(iscsi_session "$IQN" "$P")
hctl=$(basename "$(readlink -f "/sys/block/$sd/device")")
wwid=$(cat "/sys/block/$sd/device/wwid")
size=$(blockdev --getsize64 "/dev/$sd")
printf '{"path": "/dev/%s", "type": "block", "scsi_wwn": "%s", "hctl": "%s", "session": "%s", "size": %s}\n' \
  "$sd" "$wwid" "$hctl" "$session" "$size" | tee "$LAB_STATE/device_info.json"

step "write 4 MiB and read them back (O_DIRECT)"
io_roundtrip "/dev/$sd" 4 "$LAB_STATE/pattern"
echo "4 MiB written to /dev/$sd and read back identical"

step "detach through moord"
moor call exec -- iscsiadm -m node -T "$IQN" -p "$P" --logout
wait_gone "/sys/block/$sd" 20
moor call exec -- iscsiadm -m node -T "$IQN" -p "$P" --op delete
assert_no_leftovers
echo "nothing left: no disk, no session, no node record"
lio_teardown

step "audit trail (/var/log/moor/audit.log)"
cat /var/log/moor/audit.log
