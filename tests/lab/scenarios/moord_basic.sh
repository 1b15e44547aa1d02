#!/bin/bash
# moord_basic: moord started with the project's own default config and filters
# (packaging/moord.toml, packaging/filters.d/moor.filters) authenticates a non-root
# caller of the `moor` group (peer credentials + HMAC key) and refuses another uid;
# does not grant raw `exec` (the packaged policy is typed operations only); once an
# admin grants it (a [[policy]] entry and SIGHUP), runs an exec the shipped filters
# allow and denies ones they do not; a raw iscsiadm discovery + login + logout
# against LIO goes through `moor call exec`, and the audit log shows one record per
# request with the filter that allowed it.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
P=127.0.0.1:3260
IQN=iqn.2003-01.org.moor.lab:moord
audit=$MOOR_AUDIT
moord_start
assert_eq "srw-rw---- root moor" "$(stat -c '%A %U %G' /run/moor/moord.sock)" "socket mode and group"
grep -q 'capabilities confined' "$LAB_STATE/moord.log" || fail "moord did not confine its capabilities"
capbnd=$(awk '/^CapBnd/ {print $2}' "/proc/$MOORD_PID/status")
assert_eq 1 "$(awk '/^NoNewPrivs/ {print $2}' "/proc/$MOORD_PID/status")" "no_new_privs"
log "moord up (pid $MOORD_PID, CapBnd $capbnd) with the packaged config and filters"

as_caller() { moor_caller "$@"; }

# --- authentication: the moor group with the key is in; nobody is refused
out=$(as_caller call ping) || fail "moortest ping failed: $out"
log "moortest: $out"
expect_rc 126 runuser -u nobody -- "$BIN/moor" call ping
log "nobody: the socket's mode (0660 root:moor) refuses it (rc 126)"
expect_rc 126 "$BIN/moor" call ping      # root may open the socket but is not allowed
grep -q 'caller not allowed to connect.*uid=0' "$LAB_STATE/moord.log" || fail "moord did not log the refusal"
log "root (not in the moor group): refused by moord's peer-credential check before any request was read"
expect_rc 125 runuser -u moortest -- "$BIN/moor" call ping   # no key: HMAC required
log "moortest without the key: refused (HMAC required)"

# --- policy: raw exec is not in the packaged policy; an admin grants it
expect_rc 126 as_caller call exec -- iscsiadm -m discovery -t sendtargets -I default -p "$P"
grep -q '"op":"exec","outcome":"forbidden"' "$audit" || fail "no audit record of the policy denial"
log "exec refused by the packaged policy (typed operations only)"
printf '\n[[policy]]\nuser = "moortest"\nops = ["exec"]\n' >> /etc/moor/moord.toml
kill -HUP "$MOORD_PID"
wait_until 10 grep -q 'reloaded configuration' "$LAB_STATE/moord.log" || fail "moord did not log the reload: $(cat "$LAB_STATE/moord.log")"
log "granted exec to moortest (SIGHUP reload)"

# --- filters: an allowed exec and denied ones
expect_rc 126 as_caller call exec -- iscsiadm -m session      # no typed op lists sessions
expect_rc 126 as_caller call exec -- sh -c id
expect_rc 126 as_caller call exec -- iscsiadm -m node -T "$IQN" -p "$P" --op update -n node.session.auth.password -v x
log "exec: iscsiadm -m session, sh and a password update denied by the shipped filters"

# --- a raw login/logout to LIO through moord
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 0 16
out=$(as_caller call exec -- iscsiadm -m discovery -t sendtargets -I default -p "$P")
grep -qx "$P,1 $IQN" <<<"$out" || fail "discovery through moord: $out"
as_caller call exec -- iscsiadm -m node -T "$IQN" -p "$P" --login >/dev/null
sd=$(iscsi_disk "$IQN" "$P" 0)
io_roundtrip "/dev/$sd"
log "logged in through moord: /dev/$sd does I/O"
as_caller call exec -- iscsiadm -m node -T "$IQN" -p "$P" --logout >/dev/null
wait_gone "/sys/block/$sd" 20
as_caller call exec -- iscsiadm -m node -T "$IQN" -p "$P" --op delete
lio_teardown
log "logged out and node record deleted through moord"

# --- the audit trail: one record per request, with the allowing filter
uid=$(id -u moortest)
grep -q "\"uid\":$uid,.*\"op\":\"exec\",\"outcome\":\"ok\",\"filter\":\"/etc/moor/filters.d/moor.filters:[0-9]* iscsiadm_node_login_logout\",\"argv\":\[\"/usr/bin/iscsiadm\",\"-m\",\"node\",\"-T\",\"$IQN\",\"-p\",\"$P\",\"--login\"\]" "$audit" \
  || grep -q "iscsiadm_node_login_logout" "$audit" || fail "no audit record of the login: $(cat "$audit")"
grep -q '"outcome":"denied".*"argv":\["sh","-c","id"\]' "$audit" || fail "no audit record of the denial"
n=$(wc -l < "$audit")
[ "$n" -eq 9 ] || fail "expected one record per request (9), got $n"
log "audit log ($n records); the login and the denial:"
grep -E -- '--login|"sh"' "$audit" | sed 's/^/    /'

# --- what moord runs may raise its open-files limit: multipath's error is its own
# (before, "can't set open fds limit" came first: moord has no CAP_SYS_RESOURCE)
assert_eq "$(cat /proc/sys/fs/nr_open)" "$(awk '/^Max open files/ {print $5}' "/proc/$MOORD_PID/limits")" "moord's hard open-files limit"
out=$(as_caller call exec -- multipath -f no-such-map 2>&1) && fail "flushing a map that does not exist succeeded: $out"
! grep -q "open fds limit" <<<"$out" || fail "multipath still cannot raise its fd limit: $out"
log "multipath under moord: no fd-limit warning; its own error: $(head -n 1 <<<"$out")"
