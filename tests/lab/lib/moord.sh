#!/bin/bash
# tests/lab/lib/moord.sh - install moor in the guest as the package would (packaged
# moord.toml and filters, the `moor` group, an HMAC key, the lock directory) and start
# moord; `moor_caller ARGS...` runs the moor CLI as the unprivileged caller `moortest`
# (in group moor, with the key). Source after targets.sh.
REPO=$(cd "$LAB_DIR/../.." && pwd)
BIN=${MOOR_BIN_DIR:-$REPO/target/debug}
[ -x "$BIN/moord" ] && [ -x "$BIN/moor" ] || fail "no moord/moor in $BIN: build the workspace first"
MOOR_AUDIT=/var/log/moor/audit.log

moord_start() { # install config, filters, group, key; start moord; stop + remove at exit
  getent group moor >/dev/null || groupadd -r moor
  id -nG moortest | grep -qw moor || usermod -aG moor moortest
  install -d -m 0755 /etc/moor /etc/moor/filters.d
  install -m 0644 "$REPO/packaging/moord.toml" /etc/moor/moord.toml
  install -m 0644 "$REPO/packaging/filters.d/moor.filters" /etc/moor/filters.d/moor.filters
  head -c 32 /dev/urandom > /etc/moor/moord.key
  chown root:moor /etc/moor/moord.key
  chmod 0640 /etc/moor/moord.key
  install -d -m 0750 /var/log/moor
  : > "$MOOR_AUDIT"
  # As packaging/tmpfiles.d/moor.conf creates them.
  install -d -m 0755 /run/moor
  install -d -m 2770 -g moor /run/moor/locks /run/moor/attachments
  install -d -m 2775 -g moor /run/moor/metrics
  "$BIN/moord" --config /etc/moor/moord.toml 2>"$LAB_STATE/moord.log" &
  MOORD_PID=$!
  lab_defer moord__stop
  wait_for /run/moor/moord.sock 10 || fail "moord did not start: $(cat "$LAB_STATE/moord.log")"
  lab_log "$MOOR_AUDIT" "$LAB_STATE/moord.log"   # searched for secrets by the runner's secretwatch
}

moord__stop() {
  [ -z "${MOORD_PID:-}" ] || kill "$MOORD_PID" 2>/dev/null || true
  wait "${MOORD_PID:-0}" 2>/dev/null || true
  rm -rf /etc/moor /var/log/moor /run/moor
}

moor_caller() { runuser -u moortest -- "$BIN/moor" --key-file /etc/moor/moord.key "$@"; }

json_get() { # json_get FILE KEY[.KEY...] : print a value of a JSON file (strings bare)
  python3 - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if isinstance(v, str) else json.dumps(v))
PY
}
