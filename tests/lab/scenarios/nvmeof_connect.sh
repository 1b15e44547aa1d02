#!/bin/bash
# nvmeof_connect: the typed NVMe-oF connector end to end against the kernel's nvmet
# NVMe/TCP target on loopback, as an unprivileged caller whose every privileged step
# goes to moord (packaged config and filters): the host identity created when missing
# (create-only), a dry run, single path (I/O, paths, extend, detach leaves nothing,
# `nvme list-subsys` empty), the fail-fast controller loss policy, two ports with native
# multipath and one port removed during I/O, two namespaces on one subsystem (detaching
# one keeps the controller), and a namespace identity change at the same nsid (detach
# refuses to touch it, a new attach refuses it).
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
S=$(mktemp -d /tmp/nvmeof_connect.XXXXXX) && chmod 0755 "$S"   # readable by the caller
lab_defer rm -rf "$S"
NQN=nqn.2014-08.org.moor.lab:nvmeof-connect
U1=0b7c1c55-0a1e-4a43-9d37-5c1f0e3a1111
U2=0b7c1c55-0a1e-4a43-9d37-5c1f0e3a2222
U3=0b7c1c55-0a1e-4a43-9d37-5c1f0e3a3333
props() { # FILE UUID NSID PORTS [extra JSON members] : connection_info as Cinder's nvmet driver sends it
  local portals="" p
  for p in $4; do portals+="${portals:+, }[\"127.0.0.1\", $p, \"tcp\"]"; done
  printf '{"driver_volume_type": "nvmeof", "data": {"target_nqn": "%s", "vol_uuid": "%s", "ns_id": %s, "portals": [%s], "volume_id": "%s"%s}}\n' \
    "$NQN" "$2" "$3" "$portals" "$(basename "$1" .json)" "${5:-}" > "$1"
}
connect() { # PROPS OUT [moor args] : device_info to OUT, stderr to $S/connect.err
  moor_caller connect nvmeof --properties "$1" "${@:3}" > "$2" 2>"$S/connect.err" || { cat "$S/connect.err" >&2; return 1; }
}
disconnect() { moor_caller disconnect nvmeof --properties "$1" --device-info "$2" "${@:3}"; }
no_subsystems() { # nothing `nvme list-subsys` knows of (sysfs: assert_no_leftovers)
  ! nvme list-subsys 2>/dev/null | grep -q "$NQN" || fail "nvme list-subsys still lists $NQN"
}

nvmet_subsys_create "$NQN" --serial moorlab0002
nvmet_ns_add "$NQN" 1 64 --uuid "$U1"
nvmet_port_add 1 127.0.0.1 4420
nvmet_port_link 1 "$NQN"

# --- the host identity: missing files are created through moord, exclusively
for f in hostnqn hostid; do
  if [ -e "/etc/nvme/$f" ]; then mv "/etc/nvme/$f" "$LAB_STATE/saved.$f"; lab_defer "mv -f $LAB_STATE/saved.$f /etc/nvme/$f"; fi
  lab_defer "rm -f /etc/nvme/$f"   # runs first (LIFO): what moord created goes
done
props "$S/v1.json" "$U1" 1 4420
plan=$(moor_caller connect nvmeof --properties "$S/v1.json" --dry-run)
grep -q '"nvme.connect' <<<"$plan" || fail "dry run plans no connect: $plan"
[ -z "$(nvme_ctrls_of "$NQN")" ] || fail "the dry run connected"
[ ! -e /etc/nvme/hostnqn ] || fail "the dry run created /etc/nvme/hostnqn"
log "dry run: $(grep -c '"nvme\.' <<<"$plan") typed operations planned, nothing changed"

# --- single path
connect "$S/v1.json" "$S/i1.json"
hostid=$(cat /etc/nvme/hostid)
assert_eq "nqn.2014-08.org.nvmexpress:uuid:$hostid" "$(cat /etc/nvme/hostnqn)" "host NQN created from the host id"
# What the control plane is told, as the caller (the initiator name file is root-only:
# moor asks moord for it).
cp_out=$(moor_caller connector-properties)
assert_eq "$(cat /etc/nvme/hostnqn) $hostid Y" \
  "$(json_get <(echo "$cp_out") nqn) $(json_get <(echo "$cp_out") nvme_hostid) $(cat /sys/module/nvme_core/parameters/multipath)" \
  "nqn and nvme_hostid in moor connector-properties"
assert_eq true "$(json_get <(echo "$cp_out") nvme_native_multipath)" "nvme_native_multipath"
assert_eq "$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)" "$(json_get <(echo "$cp_out") initiator)" \
  "initiator in moor connector-properties (initiatorname.iscsi mode $(stat -c %a /etc/iscsi/initiatorname.iscsi))"
assert_eq "644 root" "$(stat -c '%a %U' /etc/nvme/hostnqn)" "mode and owner of /etc/nvme/hostnqn"
grep -q '"op":"nvme.host_identity".*"outcome":"ok"' "$MOOR_AUDIT" || fail "no audit record of nvme.host_identity"
dev=$(json_get "$S/i1.json" path)
[ -b "$dev" ] || fail "connect returned $dev, not a block device"
b=${dev#/dev/}
assert_eq "$U1" "$(cat "/sys/block/$b/uuid")" "uuid of $dev"
assert_eq "$(cat /etc/nvme/hostnqn)" "$(cat "/sys/class/nvme/$(nvme_ctrls_of "$NQN")/hostnqn")" "the controller's host NQN"
io_roundtrip "$dev" 4
log "attached $dev (uuid $U1) as uid $(id -u moortest); host identity created (hostid $hostid); 4 MiB I/O ok"
paths=$(moor_caller paths nvmeof --properties "$S/v1.json")
grep -q "\"$dev\"" <<<"$paths" || fail "moor paths: $paths"
nvmet_ns_resize "$NQN" 1 96
out=$(moor_caller extend nvmeof --properties "$S/v1.json" --device-info "$S/i1.json") || fail "extend: $out"
assert_eq $((96 << 20)) "$(json_get <(echo "$out") new_size)" "size reported by moor extend"
assert_eq $((96 << 20)) "$(size_of "$dev")" "size of $dev after extend"
log "moor paths ok; namespace grown to 96 MiB on the target: moor extend reports $((96 << 20)) bytes"
plan=$(disconnect "$S/v1.json" "$S/i1.json" --dry-run)
grep -q '"nvme.disconnect' <<<"$plan" || fail "dry-run detach plans no disconnect: $plan"
[ -b "$dev" ] || fail "the dry-run detach removed $dev"
out=$(disconnect "$S/v1.json" "$S/i1.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "disconnect outcome: $out"
grep -q '"op":"nvme.disconnect".*"guard"' "$MOOR_AUDIT" || fail "the disconnect audit record names no guard"
assert_no_leftovers
no_subsystems
[ ! -e "/dev/disk/by-id/nvme-uuid.$U1" ] || fail "by-id link left"
log "detached: status clean, no controller, no subsystem, no by-id link, nvme list-subsys empty"
# A fresh host tells the control plane its NQN before any attach only when asked to
# create the identity (a query creates nothing by itself).
mv /etc/nvme/hostnqn "$S/hostnqn.first"; mv /etc/nvme/hostid "$S/hostid.first"
cp_out=$(moor_caller connector-properties)
! grep -q '"nqn"' <<<"$cp_out" || fail "connector-properties reported an NQN that does not exist: $cp_out"
[ ! -e /etc/nvme/hostnqn ] || fail "connector-properties created /etc/nvme/hostnqn unasked"
cp_out=$(moor_caller connector-properties --create-nvme-identity)
assert_eq "$(cat /etc/nvme/hostnqn)" "$(json_get <(echo "$cp_out") nqn)" "nqn after --create-nvme-identity"
assert_eq "nqn.2014-08.org.nvmexpress:uuid:$(cat /etc/nvme/hostid)" "$(cat /etc/nvme/hostnqn)" "the recreated host NQN and id"
log "moor connector-properties as the caller: initiator (read through moord), nqn, nvme_hostid, native multipath; --create-nvme-identity recreated the identity"

# --- fail-fast controller loss policy
props "$S/ff.json" "$U1" 1 4420 ', "reconnect_policy": "fail-fast"'
connect "$S/ff.json" "$S/iff.json"
c=$(nvme_ctrls_of "$NQN")
assert_eq "5 600" "$(cat "/sys/class/nvme/$c/fast_io_fail_tmo") $(cat "/sys/class/nvme/$c/ctrl_loss_tmo")" "fast_io_fail_tmo and ctrl_loss_tmo of $c"
out=$(disconnect "$S/ff.json" "$S/iff.json") || fail "disconnect: $out"
assert_no_leftovers
log "fail-fast policy: $c has fast_io_fail_tmo 5 s and ctrl_loss_tmo 600 s; detached"

# --- native multipath over two ports, one port removed during I/O
[ "$(cat /sys/module/nvme_core/parameters/multipath)" = Y ] || fail "nvme_core multipath is off in the guest"
nvmet_port_add 2 127.0.0.1 4421
nvmet_port_link 2 "$NQN"
props "$S/mp.json" "$U1" 1 "4420 4421"
connect "$S/mp.json" "$S/imp.json" --multipath
dev=$(json_get "$S/imp.json" path); b=${dev#/dev/}
assert_eq true "$(json_get "$S/imp.json" multipath)" "multipath in device_info"
# The hidden per-controller paths of head nvmeSnH are nvmeScCnH.
assert_eq 2 "$(lab__ls /sys/block -name "${b%n*}c*n${b##*n}" | wc -w)" "paths under $dev"
assert_eq 2 "$(json_get "$S/imp.json" controllers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" "controllers in device_info"
head -c $((32 << 20)) /dev/urandom > "$S/pattern"
( for _ in 1 2 3 4 5 6; do dd if="$S/pattern" of="$dev" bs=1M oflag=direct conv=fsync status=none || exit 1; done ) &
io=$!
sleep 0.5
nvmet_port_unlink 2 "$NQN"
wait "$io" || fail "I/O failed when port 4421 went away"
cmp -n $((32 << 20)) "$S/pattern" "$dev" || fail "data differs after the port removal"
states=$(for c in $(nvme_ctrls_of "$NQN"); do printf '%s=%s ' "$c" "$(cat "/sys/class/nvme/$c/state")"; done)
log "multipath head $dev over 2 controllers; port 4421 removed during 192 MiB of writes: I/O completed, data intact ($states)"
out=$(disconnect "$S/mp.json" "$S/imp.json") || fail "disconnect: $out"
grep -q '"status": "clean"' <<<"$out" || fail "disconnect outcome: $out"
assert_eq 2 "$(json_get <(echo "$out") disconnected | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" "controllers disconnected"
assert_no_leftovers
no_subsystems
log "detached: both controllers (one live, one reconnecting) disconnected, nothing left"
nvmet_port_link 2 "$NQN"

# --- two namespaces on one subsystem: detaching one keeps the controller
nvmet_ns_add "$NQN" 2 32 --uuid "$U2"
props "$S/n2.json" "$U2" 2 4420
connect "$S/v1.json" "$S/i1.json"
connect "$S/n2.json" "$S/i2.json"
assert_eq 1 "$(nvme_ctrls_of "$NQN" | wc -l)" "controllers for two namespaces"
grep -q '"op":"nvme.ns_rescan".*"outcome":"ok"' "$MOOR_AUDIT" || fail "the second attach did not rescan the live controller"
d1=$(json_get "$S/i1.json" path); d2=$(json_get "$S/i2.json" path)
assert_eq "$U2" "$(cat "/sys/block/${d2#/dev/}/uuid")" "uuid of $d2"
out=$(disconnect "$S/v1.json" "$S/i1.json") || fail "disconnect: $out"
grep -q '"kept_controllers": \[$' <<<"$out" || fail "no controller kept: $out"
grep -q "also carries $d2 (nsid 2)" <<<"$out" || fail "the kept controller does not name $d2: $out"
io_roundtrip "$d2" 1
log "detached nsid 1 of two: controller kept (it carries $d2), $d2 still does I/O"
nvmet_ns_remove "$NQN" 1
wait_gone "$d1" 20
out=$(disconnect "$S/n2.json" "$S/i2.json") || fail "disconnect: $out"
assert_no_leftovers
no_subsystems
log "target unmapped nsid 1; detached nsid 2: controller disconnected, nothing left"

# --- the array reuses nsid 2 for another volume
connect "$S/n2.json" "$S/i2.json"
d2=$(json_get "$S/i2.json" path)
nvmet_ns_remove "$NQN" 2
nvmet_ns_add "$NQN" 2 32 --uuid "$U3"
c=$(nvme_ctrls_of "$NQN")
echo 1 > "/sys/class/nvme/$c/rescan_controller"   # what an AEN would do
wait_until 20 grep -qx "$U3" /sys/class/nvme/"$c"/nvme*n*/uuid 2>/dev/null || fail "the new namespace did not show"
settle
flushes=$(grep -c '"op":"block.flush"' "$MOOR_AUDIT")
out=$(disconnect "$S/n2.json" "$S/i2.json" 2>"$S/detach.err") && rc=0 || rc=$?
assert_eq 3 "$rc" "exit code of a detach that leaves something"
grep -q '"status": "leftovers"' <<<"$out" || fail "outcome: $out"
grep -q "identity changed since attach" <<<"$out" || fail "the changed namespace is not named: $out"
[ -n "$(nvme_ctrls_of "$NQN")" ] || fail "the controller of the changed namespace was disconnected"
if connect "$S/n2.json" "$S/i2b.json"; then fail "attached a namespace whose uuid changed at the same nsid"; fi
grep -q "is not this volume" "$S/connect.err" || fail "attach error: $(cat "$S/connect.err")"
assert_eq "$flushes" "$(grep -c '"op":"block.flush"' "$MOOR_AUDIT")" "block.flush records (the other volume's namespace must not be flushed)"
log "nsid 2 now carries uuid $U3: detach left it untouched (exit 3, named), attach refused it"
nvme_cleanup
assert_no_leftovers
nvmet_teardown
assert_no_targets
log "nvmeof_connect OK"
