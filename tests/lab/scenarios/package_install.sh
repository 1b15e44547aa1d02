#!/bin/bash
# package_install: the Debian package (scripts/build-deb.sh -> target/debian/moor_<v>_<arch>.deb)
# on a host without systemd. dpkg -i: postinst creates the system group moor, the
# tmpfiles.d directories (by hand: no systemd-tmpfiles here), the HMAC key (root:moor 0640,
# and says so), enables moord.socket the Debian way, says systemd is not running; the
# conffiles are root:root 0644 and equal packaging/; `moord --check` passes on the installed
# config. moord is started the documented non-systemd way (packaging/README.md "Without
# systemd": moord binds the socket itself with moord.toml's path, mode and group). The
# unprivileged moortest, in group moor, attaches a CHAP-protected LIO volume through
# /usr/bin/moor, does I/O, detaches; nothing is left; the audit log has the typed
# operations; a reinstall changes nothing. dpkg --purge removes what packaging/README.md
# says and keeps the group while a user is in it. A second install onto an existing key keeps that key; a purge then
# removes the group postinst created. The guest's groups and /etc/moor are restored.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
REPO=$(cd "$LAB_DIR/../.." && pwd)
version=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml")
arch=$(dpkg --print-architecture)
DEB=$REPO/target/debian/moor_${version}_${arch}.deb
[ -f "$DEB" ] || fail "no $DEB: run scripts/build-deb.sh first (scripts/test.sh does)"
P=127.0.0.1:3260
IQN=iqn.2003-01.org.moor.lab:package-volume
CHAP_PW=Pkg-Chap-Secret-7361
lab_secret "$CHAP_PW"
AUDIT=/var/log/moor/audit.log
MOORD_LOG=$LAB_STATE/moord-package.log
step() { printf '\n==> %s\n' "$*"; }

! dpkg-query -W moor >/dev/null 2>&1 || fail "moor is installed already: $(dpkg-query -W moor)"
[ ! -e /etc/moor ] || fail "/etc/moor exists before the install"
W=$(mktemp -d /tmp/package.XXXXXX) && chmod 0755 "$W"
# The guest's groups as they are now (the image's `moor`, gid 990, and whatever earlier
# scenarios did to its members), put back at the end, whatever happens in between.
cp -p /etc/group /etc/gshadow "$W/"
MOORD_PID=""
pkg__restore() {
  if [ -n "$MOORD_PID" ]; then kill "$MOORD_PID" 2>/dev/null || true; wait "$MOORD_PID" 2>/dev/null || true; fi
  if dpkg-query -W moor >/dev/null 2>&1; then dpkg --purge moor >/dev/null 2>&1 || true; fi
  rm -rf /etc/moor /var/log/moor /run/moor /var/lib/moor
  cp -p "$W/group" /etc/group && cp -p "$W/gshadow" /etc/gshadow
  rm -rf "$W"
}
lab_defer pkg__restore

mode_owner() { stat -c '%a %U %G' "$1"; }
# The "d" lines of the installed tmpfiles.d file: PATH MODE USER GROUP, mode as stat prints it.
tmpfiles_dirs() {
  awk '$1 == "d" { v = 0; for (i = 1; i <= length($3); i++) v = v * 8 + substr($3, i, 1)
                   printf "%s %o %s %s\n", $2, v, $4, $5 }' /usr/lib/tmpfiles.d/moor.conf
}
check_installed_files() { # the files of the package, their modes, the conffiles
  local c src
  assert_eq "755 root root" "$(mode_owner /usr/bin/moor)" "/usr/bin/moor"
  assert_eq "755 root root" "$(mode_owner /usr/sbin/moord)" "/usr/sbin/moord"
  assert_eq "moor $version" "$(/usr/bin/moor --version)" "moor --version"
  for c in /usr/share/bash-completion/completions/moor \
    /usr/share/zsh/vendor-completions/_moor /usr/share/fish/vendor_completions.d/moor.fish \
    /usr/lib/systemd/system/moord.socket /usr/lib/systemd/system/moord.service \
    /usr/lib/tmpfiles.d/moor.conf /usr/share/doc/moor/copyright; do
    assert_eq "644 root root" "$(mode_owner "$c")" "$c"
  done
  # Man pages: in the package, root:root 0644. The guest's dpkg does not unpack
  # /usr/share/man (the image is built with path-exclude=/usr/share/man/*, as Debian's
  # container images are), so they are checked on disk only where dpkg installs them.
  local man
  dpkg-deb -c "$DEB" > "$W/contents"     # (a file, not a pipe into grep -q: pipefail + SIGPIPE)
  for man in man1/moor.1.gz man1/moor-connect-iscsi.1.gz man8/moord.8.gz; do
    grep -q -- "^-rw-r--r-- root/root .* \./usr/share/man/$man\$" "$W/contents" || fail "$man not in the package (0644 root:root)"
    if grep -qs '^path-exclude=/usr/share/man/\*' /etc/dpkg/dpkg.cfg.d/*; then
      [ ! -e "/usr/share/man/$man" ] || fail "/usr/share/man/$man unpacked despite path-exclude"
    else
      assert_eq "644 root root" "$(mode_owner "/usr/share/man/$man")" "/usr/share/man/$man"
    fi
  done
  dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/man/man8/moord.8.gz | zcat > "$W/moord.8"
  grep -q '^\.TH moord 8' "$W/moord.8" || fail "moord.8 is not a section-8 page"
  grep -q 'complete -F _moor' /usr/share/bash-completion/completions/moor || fail "bash completion"
  # conffiles: what dpkg tracks, root:root 0644, the packaged content
  dpkg-query -W -f='${Conffiles}\n' moor | awk 'NF {print $1}' | sort > "$W/conffiles"
  printf '%s\n' /etc/logrotate.d/moor /etc/moor/filters.d/moor.filters /etc/moor/moord.toml > "$W/conffiles.want"
  assert_eq "$(cat "$W/conffiles.want")" "$(cat "$W/conffiles")" "conffiles dpkg knows"
  for c in /etc/moor/moord.toml:moord.toml /etc/moor/filters.d/moor.filters:filters.d/moor.filters \
    /etc/logrotate.d/moor:logrotate.d/moor; do
    src=$REPO/packaging/${c#*:}
    c=${c%%:*}
    assert_eq "644 root root" "$(mode_owner "$c")" "$c"
    cmp -s "$c" "$src" || fail "$c differs from packaging/${src#"$REPO"/packaging/}"
  done
  # the directories tmpfiles.d/moor.conf lists, made by postinst without systemd-tmpfiles
  local path mode user group n=0
  while read -r path mode user group; do
    assert_eq "$mode $user $group" "$(mode_owner "$path")" "$path (tmpfiles.d)"
    n=$((n + 1))
  done < <(tmpfiles_dirs)
  [ $n -ge 4 ] || fail "only $n directories in tmpfiles.d/moor.conf"
  log "files: binaries, $(grep -c '\.[18]\.gz$' "$W/contents") man pages, 3 completions, units, 3 conffiles (root:root 0644, as packaging/), $n tmpfiles.d directories"
}

# ---------------------------------------------------------------------------------- 1
step "install: dpkg -i $(basename "$DEB") on a host without the moor group and without systemd"
if getent group moor >/dev/null; then groupdel moor; fi
dpkg -i "$DEB" > "$W/install.out" 2>&1 || { cat "$W/install.out"; fail "dpkg -i failed"; }
cat "$W/install.out"
assert_eq "install ok installed $version" "$(dpkg-query -W -f='${Status} ${Version}' moor)" "dpkg status"
grep -q "moor: created the system group 'moor'" "$W/install.out" || fail "postinst did not say it created the group"
grep -q 'moor: generated a new HMAC key in /etc/moor/moord.key' "$W/install.out" || fail "postinst did not say it made a key"
grep -q 'moor: systemd is not running here' "$W/install.out" || fail "postinst did not say systemd is not running"
gid=$(getent group moor | cut -d: -f3)
[ "$gid" -lt 1000 ] || fail "group moor has gid $gid: not a system group"
[ -f /var/lib/moor/group-created ] || fail "no marker of the group postinst created"
lab_secret --file /etc/moor/moord.key
assert_eq "640 root moor 32" "$(stat -c '%a %U %G %s' /etc/moor/moord.key)" "the generated key"
grep -qx 'key_file = "/etc/moor/moord.key"' /etc/moor/moord.toml || fail "moord.toml does not name the key postinst made"
# (bookworm's deb-systemd-helper links /lib/systemd/system/..., the same file on merged /usr)
[ "$(readlink -f /etc/systemd/system/sockets.target.wants/moord.socket)" = /usr/lib/systemd/system/moord.socket ] \
  || fail "moord.socket not enabled (deb-systemd-helper)"
log "group moor (system gid $gid) created, key 0640 root:moor, moord.socket enabled for a later systemd boot"
check_installed_files
out=$(/usr/sbin/moord --config /etc/moor/moord.toml --check)
echo "$out"
grep -q '^ok: .*auth hmac-sha256' <<<"$out" || fail "moord --check on the installed config: $out"

# ---------------------------------------------------------------------------------- 2
step "moord without systemd: /usr/sbin/moord --config /etc/moor/moord.toml (binds the socket itself)"
/usr/sbin/moord --config /etc/moor/moord.toml 2>"$MOORD_LOG" &
MOORD_PID=$!
lab_log "$AUDIT" "$MOORD_LOG"
wait_for /run/moor/moord.sock 10 || fail "moord did not start: $(cat "$MOORD_LOG")"
# moord.socket's SocketMode=0660, SocketUser=root, SocketGroup=moor
assert_eq "srw-rw---- root moor" "$(stat -c '%A %U %G' /run/moor/moord.sock)" "socket as moord.socket makes it"
grep -q 'capabilities confined' "$MOORD_LOG" || fail "moord did not confine its capabilities: $(cat "$MOORD_LOG")"
log "moord up (pid $MOORD_PID) on the installed config"

# ---------------------------------------------------------------------------------- 3
step "attach and detach as moortest (group moor) through /usr/bin/moor"
usermod -aG moor moortest
caller() { runuser -u moortest -- /usr/bin/moor --key-file /etc/moor/moord.key "$@"; }
caller call ping
lio_target_create "$IQN" --portal "$P" --chap pkg-user "$CHAP_PW"
lio_lun_add "$IQN" 0 64
cat > "$W/connection_info.json" <<JSON
{"driver_volume_type": "iscsi",
 "data": {"target_portal": "$P", "target_iqn": "$IQN", "target_lun": 0,
          "auth_method": "CHAP", "auth_username": "pkg-user", "auth_password": "$CHAP_PW",
          "volume_id": "package-volume", "access_mode": "rw", "encrypted": false}}
JSON
caller connect iscsi --properties "$W/connection_info.json" > "$W/device_info.json"
cat "$W/device_info.json"
dev=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["path"])' "$W/device_info.json")
[ -b "$dev" ] || fail "device_info path $dev is not a block device"
io_roundtrip "$dev" 4
[ -n "$(ls -A /run/moor/attachments)" ] || fail "no attachment record in /run/moor/attachments"
volumes=$(caller volumes)
grep -q "$IQN" <<<"$volumes" || fail "moor volumes does not list the volume: $volumes"
log "attached $dev, 4 MiB written and read back, recorded in /run/moor/attachments"
caller disconnect iscsi --properties "$W/connection_info.json" --device-info "$W/device_info.json"
assert_no_leftovers
! iscsiadm -m node -T "$IQN" -p "$P" >/dev/null 2>&1 || fail "node record left"
[ -z "$(ls -A /run/moor/attachments)" ] || fail "attachment record left: $(ls /run/moor/attachments)"
lio_teardown
log "detached: no disk, session, node record or attachment record left"

step "audit log: the typed operations, as moortest"
uid=$(id -u moortest)
for op in iscsi.login scsi.scan iscsi.logout scsi.delete; do
  grep -q "\"uid\":$uid,.*\"op\":\"$op\",\"outcome\":\"ok\"" "$AUDIT" || fail "no ok $op of uid $uid in the audit log"
done
! grep -q '"op":"exec"' "$AUDIT" || fail "the connector used exec"
log "audit log: $(wc -l < "$AUDIT") records; $(grep -c "\"uid\":$uid," "$AUDIT") of moortest; login, scan, logout, delete ok"

step "reinstall (postinst configure with the old version): changes nothing, moord keeps serving"
cp -p /etc/moor/moord.key "$W/generated.key"
dpkg -i "$DEB" > "$W/reinstall.out" 2>&1 || { cat "$W/reinstall.out"; fail "reinstall failed"; }
cat "$W/reinstall.out"
! grep -q -e 'created the system group' -e 'generated a new HMAC key' "$W/reinstall.out" || fail "reinstall redid a first-install step"
cmp -s /etc/moor/moord.key "$W/generated.key" || fail "reinstall changed the key"
assert_eq "$gid" "$(getent group moor | cut -d: -f3)" "group gid after reinstall"
caller call ping >/dev/null
kill -0 "$MOORD_PID" || fail "moord died during the reinstall"
log "reinstall: same group, same key, moord still serving"

step "stop moord (SIGTERM): it removes the socket it bound"
kill -TERM "$MOORD_PID"
wait "$MOORD_PID" || fail "moord exited with $?"
MOORD_PID=""
[ ! -e /run/moor/moord.sock ] || fail "socket left after moord stopped"

# ---------------------------------------------------------------------------------- 4
step "purge: dpkg --purge moor (moortest still in group moor)"
dpkg --purge moor > "$W/purge.out" 2>&1 || { cat "$W/purge.out"; fail "dpkg --purge failed"; }
cat "$W/purge.out"
! dpkg-query -W moor >/dev/null 2>&1 || fail "dpkg still knows moor: $(dpkg-query -W -f='${Status}' moor)"
for p in /usr/bin/moor /usr/sbin/moord /etc/moor /etc/logrotate.d/moor /var/log/moor /run/moor \
  /var/lib/moor /usr/lib/systemd/system/moord.socket /usr/lib/tmpfiles.d/moor.conf \
  /etc/systemd/system/sockets.target.wants/moord.socket /usr/share/man/man1/moor.1.gz \
  /usr/share/doc/moor /usr/share/bash-completion/completions/moor; do
  if [ -e "$p" ] || [ -L "$p" ]; then fail "$p is still there after the purge"; fi
done
[ -d /etc/nvme ] || fail "/etc/nvme (nvme-cli's too) was removed"
grep -q "moor: kept the group 'moor': users are still in it (moortest)" "$W/purge.out" || fail "purge did not say why it kept the group"
[[ "$(getent group moor)" == *:moortest ]] || fail "group moor (with moortest) was not kept"
log "purged: binaries, /etc/moor + key, logs, /run/moor, unit links gone; /etc/nvme and the group (moortest in it) kept"

# ---------------------------------------------------------------------------------- 5
step "again onto an existing key, then a purge that may remove the group postinst made"
gpasswd -d moortest moor >/dev/null
groupdel moor
install -d -m 0755 /etc/moor
(umask 077; head -c 48 /dev/urandom > /etc/moor/moord.key)
lab_secret --file /etc/moor/moord.key
cp -p /etc/moor/moord.key "$W/admin.key"
dpkg -i "$DEB" > "$W/install2.out" 2>&1 || { cat "$W/install2.out"; fail "second dpkg -i failed"; }
cat "$W/install2.out"
! grep -q 'generated a new HMAC key' "$W/install2.out" || fail "postinst made a key although one existed"
cmp -s /etc/moor/moord.key "$W/admin.key" || fail "postinst changed the existing key"
assert_eq "600 root root 48" "$(stat -c '%a %U %G %s' /etc/moor/moord.key)" "the existing key, untouched"
grep -q "created the system group 'moor'" "$W/install2.out" || fail "postinst did not create the group"
dpkg --purge moor > "$W/purge2.out" 2>&1 || { cat "$W/purge2.out"; fail "second purge failed"; }
cat "$W/purge2.out"
! getent group moor >/dev/null || fail "purge kept the group postinst created although nobody is in it"
[ ! -e /etc/moor ] || fail "/etc/moor left: $(ls -la /etc/moor)"
log "existing key kept by postinst; the unused group postinst created removed by the purge"
