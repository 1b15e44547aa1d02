#!/usr/bin/env bash
# lab.sh - moor's storage lab: run commands and test scenarios as root inside a throw-away
# Debian 12 (bookworm) VM that boots a stock Debian kernel with every storage module (iSCSI
# initiator + LIO target, dm-crypt, dm-multipath, NVMe-oF/TCP host + nvmet target, scsi_debug,
# FCoE/libfc, ...). The host needs none of these modules. See docs/lab.md.
#
#   lab.sh image [--rebuild]          install host packages, build + cache the guest image
#   lab.sh run [OPTIONS] -- CMD...    boot, run CMD as root in the guest, power off
#       --timeout S     wall-clock limit of the whole VM run (default 1800); exit 124 when hit
#       --share DIR     extra host dir shared read-write at the same absolute path (repeatable;
#                       the repository itself is always shared)
#       --env NAME=VAL  export a variable to CMD (repeatable); RUST_*, CARGO_* and MOOR_*
#                       variables of the caller are passed through as well
#       --services "S…" guest daemons started before CMD (default "iscsid multipathd"; "" = none)
#       --mem MIB (2048)  --cpus N (2)  --keep (keep the run dir with console.log)
#   lab.sh scenario [--timeout S] [--scenario-timeout S] NAME... | --all
#                                     run tests/lab/scenarios/NAME.sh in ONE boot; PASS/FAIL each
#   lab.sh list                       list the scenarios
#   lab.sh info                       show the cached image (kernel, guest package versions)
#   lab.sh clean                      delete the cache (image, private qemu)
#
# Environment:
#   MOOR_LAB_CACHE     cache dir (default <repo>/target/lab)
#   MOOR_LAB_ACCEL     auto | kvm | tcg (default auto: KVM only when it really works, else TCG)
#   MOOR_LAB_QEMU      qemu-system-x86_64 to use (default: the system one if installed, else a
#                      private copy of Debian's qemu-system-x86 unpacked into the cache; the
#                      system's qemu-utils (qemu-img) is never replaced - see docs/lab.md)
#   MOOR_LAB_KERNEL_PKG  guest kernel package (default: what linux-image-amd64 depends on)
#   MOOR_LAB_MIRROR / MOOR_LAB_SECURITY_MIRROR  Debian mirrors
#   MOOR_LAB_VERBOSE=1 more host-side messages
#   MOOR_LAB_SECRETWATCH=0 scenario runs without the secret watch (see docs/lab.md; says so loudly)
#
# Exit status of run/scenario: CMD's own status; 124 = timeout; 125 = the VM failed (did not
# boot, crashed, or died before CMD reported a status; the console tail is printed then).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$LAB_DIR/../.." && pwd -P)
GUEST_DIR=$LAB_DIR/guest
CACHE=$(realpath -m "${MOOR_LAB_CACHE:-$REPO/target/lab}")
MIRROR=${MOOR_LAB_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${MOOR_LAB_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
IMAGE_FORMAT=1 # bump when the way the image is built changes in a way the hash cannot see
ARCH_LIBDIR=/usr/lib/x86_64-linux-gnu

log() { printf '[lab] %s\n' "$*" >&2; }
vlog() { if [ -n "${MOOR_LAB_VERBOSE:-}" ]; then log "$@"; fi; }
die() { log "ERROR: $1"; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (apt-get, mmdebstrap, chroot)"; }

# ------------------------------------------------------------------------------ host packages
APT_UPDATED=0
apt_update() {
  [ $APT_UPDATED = 1 ] && return 0
  log "apt-get update"
  timeout 300 apt-get update -qq || die "apt-get update failed"
  APT_UPDATED=1
}
apt_install() { # packages... (no recommends; retried once after apt-get update)
  need_root "installing host packages ($*)"
  log "installing host packages: $*"
  if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
    "$@" >"$CACHE/apt.log" 2>&1; then
    apt_update
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
      "$@" >"$CACHE/apt.log" 2>&1 || { tail -n 30 "$CACHE/apt.log" >&2; die "apt-get install $* failed"; }
  fi
}
qemu_img_version() { qemu-img --version 2>/dev/null | head -n 1 || true; }

ensure_host_tools() { # what the image build and the runs need on the host, except qemu
  local missing=()
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v cpio >/dev/null || missing+=(cpio)
  command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ] || missing+=(kmod)
  command -v python3 >/dev/null || missing+=(python3-minimal)
  command -v setpriv >/dev/null || missing+=(util-linux)
  command -v flock >/dev/null || missing+=(util-linux)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  export PATH=$PATH:/usr/sbin:/sbin
}

# qemu: Debian bookworm's qemu-system-x86 (7.2) Breaks qemu-utils >= 8 (qemu-system-common
# << 8.0 conflict), so `apt-get install qemu-system-x86` REMOVES a newer qemu-utils (qemu-img
# 10.x from backports on the rust machine image) and apt cannot bring it back. So unless a
# qemu-system-x86_64 is already installed, the lab unpacks the qemu-system-x86 debs into the
# cache (dpkg-deb -x, nothing registered with dpkg) and installs only their shared-library
# dependencies with `apt-get satisfy`, which conflict with nothing. qemu-img stays as it was.
QEMU=; QEMU_ARGS=()
ensure_qemu() {
  local before after
  before=$(qemu_img_version)
  if [ -n "${MOOR_LAB_QEMU:-}" ]; then
    QEMU=$MOOR_LAB_QEMU
  elif command -v qemu-system-x86_64 >/dev/null; then
    QEMU=$(command -v qemu-system-x86_64)
  else
    private_qemu
  fi
  "$QEMU" --version >/dev/null 2>&1 || die "qemu does not run: $QEMU --version failed"
  after=$(qemu_img_version)
  if [ "$before" != "$after" ]; then
    log "WARNING: qemu-img changed while setting up qemu: '$before' -> '$after'"
    [ -n "$after" ] || die "qemu-img disappeared (it was: $before)"
  fi
  vlog "qemu: $QEMU ($("$QEMU" --version | head -n 1)); qemu-img: ${after:-none}"
}
private_qemu() {
  local q=$CACHE/qemu tmp deps
  QEMU=$q/usr/bin/qemu-system-x86_64
  QEMU_ARGS=(-L "$q/usr/share/qemu" -L "$q/usr/share/seabios")
  export QEMU_MODULE_DIR=$q$ARCH_LIBDIR/qemu
  if [ -f "$q/.complete" ]; then
    "$QEMU" --version >/dev/null 2>&1 && return 0
    # unpacked but its libraries are missing (e.g. a cache copied to a fresh machine)
    need_root "installing qemu's libraries"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get satisfy -y -qq --no-install-recommends \
      "$(cat "$q/.depends")" >"$CACHE/apt.log" 2>&1 || { apt_update
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get satisfy -y -qq --no-install-recommends \
        "$(cat "$q/.depends")" >"$CACHE/apt.log" 2>&1 || die "apt-get satisfy (qemu libraries) failed"; }
    return 0
  fi
  need_root "setting up qemu"
  log "no qemu-system-x86_64 installed: unpacking Debian's qemu-system-x86 into $q (qemu-utils is left alone)"
  rm -rf "$q" "$CACHE"/qemu.tmp.*
  tmp=$(mktemp -d "$CACHE/qemu.tmp.XXXXXX")
  local pkgs=(qemu-system-x86 qemu-system-common qemu-system-data seabios)
  if ! (cd "$tmp" && timeout 600 apt-get -o APT::Sandbox::User=root download -qq "${pkgs[@]}") 2>/dev/null; then
    apt_update
    (cd "$tmp" && timeout 600 apt-get -o APT::Sandbox::User=root download -qq "${pkgs[@]}") \
      || die "apt-get download ${pkgs[*]} failed"
  fi
  mkdir "$tmp/root"
  local deb
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  # the emulator's own library dependencies, minus the qemu/firmware packages unpacked above
  deps=$(dpkg-deb -f "$tmp"/qemu-system-x86_*.deb Depends | tr ',' '\n' | sed 's/^ *//; s/ *$//' \
    | grep -vE '^(qemu-|seabios|ipxe)' | paste -sd, -)
  log "installing qemu's shared libraries: apt-get satisfy '$deps'"
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get satisfy -y -qq --no-install-recommends \
    "$deps" >"$CACHE/apt.log" 2>&1 || { apt_update
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get satisfy -y -qq --no-install-recommends \
      "$deps" >"$CACHE/apt.log" 2>&1 || { tail -n 30 "$CACHE/apt.log" >&2; die "apt-get satisfy failed"; }; }
  printf '%s\n' "$deps" > "$tmp/root/.depends"
  for deb in "$tmp"/*.deb; do dpkg-deb -f "$deb" Package Version | paste -sd' ' -; done > "$tmp/root/.versions"
  touch "$tmp/root/.complete"
  mv "$tmp/root" "$q"; rm -rf "$tmp"
  "$QEMU" --version >/dev/null || die "the unpacked qemu does not run"
  log "qemu: $("$QEMU" --version | head -n 1) (private copy)"
}

# ------------------------------------------------------------------------------ image
list_file() { sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$1"; }

KPKG=
resolve_kernel_pkg() { # the guest kernel package, e.g. linux-image-6.1.0-56-amd64
  if [ -n "${MOOR_LAB_KERNEL_PKG:-}" ]; then KPKG=$MOOR_LAB_KERNEL_PKG; return; fi
  r() { apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1; }
  KPKG=$(r)
  if [ -z "$KPKG" ]; then apt_update; KPKG=$(r); fi
  [ -n "$KPKG" ] || die "cannot resolve the guest kernel package (apt-cache depends linux-image-amd64)"
}

IMG=; KEY=
image_key() {
  resolve_kernel_pkg
  KEY=$( { echo "format=$IMAGE_FORMAT suite=$SUITE mirror=$MIRROR kernel=$KPKG"
           for f in packages.txt modules.txt init lab-svc multipath.conf; do
             echo "== $f"; cat "$GUEST_DIR/$f"; done
           declare -f build_image write_overlay modclosure extract_vmlinux
         } | sha256sum | cut -c1-16)
  IMG=$CACHE/img-$KEY
}

write_overlay() { # $1 = guest root dir
  local r=$1
  install -D -m 0755 "$GUEST_DIR/init" "$r/init"
  install -D -m 0755 "$GUEST_DIR/lab-svc" "$r/usr/local/sbin/lab-svc"
  install -D -m 0644 "$GUEST_DIR/multipath.conf" "$r/etc/multipath.conf"
  # iscsid.startup points at systemctl (absent): the daemon is started by /init / lab-svc
  sed -i 's|^iscsid.startup = .*|iscsid.startup = /usr/sbin/iscsid|' "$r/etc/iscsi/iscsid.conf"
  echo "InitiatorName=iqn.1993-08.org.debian:01:moor-lab" > "$r/etc/iscsi/initiatorname.iscsi"
  # a fixed NVMe host identity (nvme-cli would otherwise derive a new one at every boot)
  mkdir -p "$r/etc/nvme"
  echo "nqn.2014-08.org.nvmexpress:uuid:6d6f6f72-6c61-4200-8000-000000000001" > "$r/etc/nvme/hostnqn"
  echo "6d6f6f72-6c61-4200-8000-000000000001" > "$r/etc/nvme/hostid"
  echo moorlab > "$r/etc/hostname"
  printf '127.0.0.1 localhost moorlab\n::1 localhost\n' > "$r/etc/hosts"
  # the daemon's group and an unprivileged test user (moortest is NOT in group moor by default)
  chroot "$r" groupadd -g 990 moor
  chroot "$r" groupadd -g 1001 moortest
  chroot "$r" useradd -m -u 1001 -g moortest -s /bin/bash moortest
}

modclosure() { # $1 = modules dir, $2 = modules.txt; prints the module paths + their deps
  python3 - "$1" "$2" <<'EOF'
import os, sys
moddir, listfile = sys.argv[1], sys.argv[2]
pats = [l.split('#')[0].strip() for l in open(listfile)]
pats = [p for p in pats if p]
deps = {}
for line in open(os.path.join(moddir, 'modules.dep')):
    k, _, v = line.partition(':')
    deps[k.strip()] = v.split()
name = lambda p: os.path.basename(p).split('.ko')[0].replace('-', '_')
byname = {name(p): p for p in deps}
want = set()
for pat in pats:
    if pat.endswith('/'):
        want |= {p for p in deps if p.startswith(pat)}
    elif pat.replace('-', '_') in byname:
        want.add(byname[pat.replace('-', '_')])
    else:
        print('modclosure: no module ' + pat, file=sys.stderr)
todo = list(want)
while todo:
    for d in deps.get(todo.pop(), []):
        if d not in want:
            want.add(d)
            todo.append(d)
print('\n'.join(sorted(want)))
EOF
}

extract_vmlinux() { # bzImage -> uncompressed ELF vmlinux, booted through its PVH entry
  python3 - "$1" "$2" <<'EOF'
import lzma, sys, zlib
data = open(sys.argv[1], 'rb').read()
for magic, fmt in ((b'\xfd7zXZ\x00', 'xz'), (b'\x1f\x8b\x08', 'gz')):
    off = data.find(magic)
    while off != -1:
        try:
            if fmt == 'xz':
                out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[off:])
            else:
                out = zlib.decompressobj(31).decompress(data[off:])
            if out[:4] == b'\x7fELF':
                open(sys.argv[2], 'wb').write(out)
                sys.exit(0)
        except Exception:
            pass
        off = data.find(magic, off + 1)
sys.exit('extract_vmlinux: no compressed ELF payload found in ' + sys.argv[1])
EOF
}

build_image() {
  local t0=$SECONDS tmp kver pkgs md
  need_root "building the image"
  rm -rf "$CACHE"/build.*
  tmp=$(mktemp -d "$CACHE/build.XXXXXX")
  log "image: kernel package $KPKG"
  if ! (cd "$tmp" && timeout 600 apt-get -o APT::Sandbox::User=root download -qq "$KPKG") 2>/dev/null; then
    apt_update   # stale lists: the old ABI is gone from the mirror
    resolve_kernel_pkg
    image_key
    (cd "$tmp" && timeout 600 apt-get -o APT::Sandbox::User=root download -qq "$KPKG") \
      || die "apt-get download $KPKG failed"
  fi
  mkdir "$tmp/k"
  dpkg-deb -x "$tmp/${KPKG}"_*.deb "$tmp/k"
  kver=$(ls "$tmp/k/lib/modules")
  depmod -b "$tmp/k" "$kver"
  extract_vmlinux "$tmp/k/boot/vmlinuz-$kver" "$tmp/vmlinux"
  pkgs=$(list_file "$GUEST_DIR/packages.txt" | paste -sd, -)
  log "image: mmdebstrap $SUITE ($pkgs)"
  timeout 1500 mmdebstrap --quiet --variant=minbase --include="$pkgs" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$tmp/root" "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
    "deb $SECMIRROR $SUITE-security main" >"$CACHE/mmdebstrap.log" 2>&1 \
    || { tail -n 40 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $CACHE/mmdebstrap.log)"; }
  md=$tmp/k/lib/modules/$kver
  mkdir -p "$tmp/root/lib/modules/$kver"
  modclosure "$md" "$GUEST_DIR/modules.txt" > "$tmp/modlist"
  (cd "$md" && cpio -pdm --quiet "$tmp/root/lib/modules/$kver" < "$tmp/modlist")
  cp "$md"/modules.order "$md"/modules.builtin "$md"/modules.builtin.modinfo "$tmp/root/lib/modules/$kver/"
  depmod -b "$tmp/root" "$kver"
  write_overlay "$tmp/root"
  rm -rf "$tmp/root/var/cache/apt/"*.bin "$tmp/root/var/lib/apt/lists/"*
  (cd "$tmp/root" && find . -print0 | cpio --null -o -H newc --quiet) > "$tmp/rootfs.cpio"
  { echo "key=$KEY"
    echo "kernel_pkg=$KPKG"
    echo "kernel_version=$kver"
    echo "kernel_deb_version=$(dpkg-deb -f "$tmp/${KPKG}"_*.deb Version)"
    echo "modules=$(wc -l < "$tmp/modlist")"
    echo "built=$(date -u +%FT%TZ) in $((SECONDS - t0))s"
    echo "rootfs_cpio_bytes=$(stat -c %s "$tmp/rootfs.cpio")"
    echo "guest_packages:"
    # shellcheck disable=SC2016 # dpkg-query's own ${Package} syntax
    chroot "$tmp/root" dpkg-query -W -f='  ${Package} ${Version}\n'
  } > "$tmp/info.txt"
  mkdir "$tmp/img"
  mv "$tmp/vmlinux" "$tmp/rootfs.cpio" "$tmp/info.txt" "$tmp/img/"
  rm -rf "$CACHE"/img-*
  mv "$tmp/img" "$IMG"
  rm -rf "$tmp"
  log "image: built in $((SECONDS - t0))s -> $IMG ($(du -sh "$IMG" | cut -f1))"
}

ensure_image() { # $1 = 1 to force a rebuild
  mkdir -p "$CACHE"
  ensure_host_tools
  image_key
  if [ "${1:-0}" = 1 ] || [ ! -f "$IMG/info.txt" ]; then
    exec 9>"$CACHE/.lock"
    flock 9
    image_key
    if [ "${1:-0}" = 1 ] || [ ! -f "$IMG/info.txt" ]; then build_image; fi
  fi
  # runs hold a shared lock, so a concurrent build never deletes an image in use
  exec 9>"$CACHE/.lock"
  flock -s 9
  vlog "image: $IMG"
}

# ------------------------------------------------------------------------------ accelerator
ACCEL=; ACCEL_WHY=
choose_accel() {
  local req=${MOOR_LAB_ACCEL:-auto}
  case "$req" in
    tcg) ACCEL=tcg; ACCEL_WHY="MOOR_LAB_ACCEL=tcg"; return ;;
    kvm) ACCEL=kvm; ACCEL_WHY="MOOR_LAB_ACCEL=kvm"; return ;;
    auto) ;;
    *) die "MOOR_LAB_ACCEL must be auto, kvm or tcg (got '$req')" 2 ;;
  esac
  ACCEL=tcg
  if [ ! -e /dev/kvm ]; then ACCEL_WHY="no /dev/kvm"; return; fi
  if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then ACCEL_WHY="/dev/kvm not accessible"; return; fi
  if [ -z "${MOOR_LAB_FORCE_KVM_PROBE:-}" ]; then
    if [ -d /sys/module/kvm_pvm ]; then
      ACCEL_WHY="/dev/kvm is PVM (kvm_pvm), which cannot run a stock kernel"; return
    fi
    if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
      ACCEL_WHY="/dev/kvm present but the CPU has no vmx/svm"; return
    fi
  fi
  # a real probe, cached per host boot: boot the guest kernel without an initramfs under KVM;
  # it must reach "VFS: Unable to mount root fs" (a panic) quickly and exit
  local bootid probe_file out rc
  bootid=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
  probe_file=$CACHE/kvm-probe
  if [ -f "$probe_file" ] && [ "$(head -n 1 "$probe_file")" = "$bootid $KEY" ]; then
    ACCEL=$(sed -n 2p "$probe_file"); ACCEL_WHY="$(sed -n 3p "$probe_file") (cached probe)"; return
  fi
  out=$(mktemp "${TMPDIR:-/tmp}/moor-lab-probe.XXXXXX")
  log "probing KVM (boot the guest kernel without root fs, 30 s limit)"
  set +e
  setpriv --pdeathsig KILL timeout -k 2 30 setpriv --pdeathsig KILL "$QEMU" "${QEMU_ARGS[@]}" \
    -M pc -accel kvm -cpu host -m 256 -smp 1 -nodefaults -no-user-config -display none \
    -no-reboot -kernel "$IMG/vmlinux" -serial "file:$out" \
    -append "console=ttyS0 panic=-1 loglevel=4 cryptomgr.notests" </dev/null >/dev/null 2>&1
  rc=$?
  set -e
  if [ $rc = 0 ] && grep -qE 'VFS: Unable to mount root|Kernel panic' "$out"; then
    ACCEL=kvm; ACCEL_WHY="KVM probe booted the kernel"
  else
    ACCEL=tcg; ACCEL_WHY="KVM probe failed (qemu rc=$rc)"
  fi
  rm -f "$out"
  printf '%s\n%s\n%s\n' "$bootid $KEY" "$ACCEL" "$ACCEL_WHY" > "$probe_file"
}

# ------------------------------------------------------------------------------ run
RUN=; QPID=; OUTPID=; ERRPID=; KEEP=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill -TERM "$QPID" 2>/dev/null || true
    local n=0
    while kill -0 "$QPID" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    kill -KILL "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
  fi
  local p
  for p in "$OUTPID" "$ERRPID"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  if [ -n "$RUN" ]; then
    if [ $KEEP = 1 ]; then log "run directory kept: $RUN"; else rm -rf "$RUN"; fi
  fi
  exit $rc
}

cmd_run() {
  local timeout=1800 mem=2048 cpus=2 services="iscsid multipathd" shares=("$REPO") envs=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --timeout) timeout=$2; shift 2 ;;
      --share) shares+=("$2"); shift 2 ;;
      --env) envs+=("$2"); shift 2 ;;
      --services) services=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --cpus) cpus=$2; shift 2 ;;
      --keep) KEEP=1; shift ;;
      --) shift; break ;;
      -h|--help) usage; exit 0 ;;
      *) die "run: unknown option '$1' (the command goes after --)" 2 ;;
    esac
  done
  [ $# -gt 0 ] || die "run: no command given (lab.sh run [OPTIONS] -- CMD...)" 2
  [[ $timeout =~ ^[0-9]+$ ]] || die "--timeout needs whole seconds" 2
  local t_start=$SECONDS
  ensure_image 0
  ensure_qemu
  choose_accel

  # shares: real paths, no duplicates, none nested in another (it would be visible already)
  local s d x real=() i=0 dup
  for s in "${shares[@]}"; do
    [ -d "$s" ] || die "--share $s: not a directory" 2
    d=$(cd "$s" && pwd -P)
    case "$d" in *[[:space:],]*) die "share path must not contain spaces or commas: $d" 2 ;; esac
    dup=0
    for x in "${real[@]}"; do case "$d/" in "$x"/*) dup=1 ;; esac; done
    [ $dup = 1 ] || real+=("$d")
  done

  local old
  for old in "${TMPDIR:-/tmp}"/moor-lab.*/; do   # run dirs of SIGKILLed runs
    [ -f "$old/pid" ] && ! kill -0 "$(cat "$old/pid")" 2>/dev/null && rm -rf "$old"
  done
  RUN=$(mktemp -d "${TMPDIR:-/tmp}/moor-lab.XXXXXX")
  echo $$ > "$RUN/pid"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  mkdir "$RUN/ctl"

  local cwd
  cwd=$(pwd -P)
  local inside=0
  for d in "${real[@]}"; do case "$cwd/" in "$d"/*) inside=1 ;; esac; done
  [ $inside = 1 ] || cwd=$REPO
  {
    printf 'cd %q || exit 125\n' "$cwd"
    printf 'export MOOR_LAB=1 MOOR_LAB_DIR=%q MOOR_LAB_ACCEL_USED=%q\n' "$LAB_DIR" "$ACCEL"
    local e
    while IFS= read -r -d '' e; do
      case "${e%%=*}" in
        RUST_*|CARGO_*|MOOR_*) [[ ${e%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] \
                                 && printf 'export %s=%q\n' "${e%%=*}" "${e#*=}" ;;
      esac
    done < /proc/self/environ
    for e in "${envs[@]}"; do
      [[ ${e%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env $e: not NAME=VALUE" 2
      printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
    done
    printf 'exec'; printf ' %q' "$@"; echo
  } > "$RUN/ctl/cmd.sh"
  local virtfs=() sharelist=""
  for d in "${real[@]}"; do
    virtfs+=(-virtfs "local,path=$d,mount_tag=share$i,security_model=none")
    sharelist+="share$i:$d "
    i=$((i + 1))
  done
  { printf 'LAB_SHARES=%q\n' "$sharelist"; printf 'LAB_SERVICES=%q\n' "$services"; } > "$RUN/ctl/env"

  local acc
  if [ "$ACCEL" = kvm ]; then acc=(-accel kvm -cpu host)
  else
    # -cpu max soft-locks the crypto self-tests under TCG; qemu64 + these flags is fine
    # shellcheck disable=SC2054 # the commas belong to qemu's option syntax
    acc=(-accel tcg,thread=multi -cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt)
  fi
  log "booting: accel=$ACCEL ($ACCEL_WHY), ${cpus} vCPU, ${mem} MiB, timeout ${timeout}s, shares: ${real[*]}"
  local append="console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init cryptomgr.notests"
  append+=" modprobe.blacklist=floppy,ata_piix,pata_acpi,ata_generic,pcspkr"

  # the command's stdout/stderr: guest virtio ports -> fifos -> our stdout/stderr (live).
  # `-chardev file` on a fifo, never `-chardev stdio` (stdin EOF blocks the guest's writes).
  mkfifo "$RUN/out.fifo" "$RUN/err.fifo"
  setpriv --pdeathsig KILL cat "$RUN/out.fifo" & OUTPID=$!
  setpriv --pdeathsig KILL cat "$RUN/err.fifo" >&2 & ERRPID=$!
  # pdeathsig on timeout and on qemu: if this script is SIGKILLed, qemu dies with it
  setpriv --pdeathsig KILL timeout -k 5 "$timeout" setpriv --pdeathsig KILL \
    "$QEMU" "${QEMU_ARGS[@]}" -M pc "${acc[@]}" -smp "$cpus" -m "$mem" \
    -nodefaults -no-user-config -display none -no-reboot \
    -kernel "$IMG/vmlinux" -initrd "$IMG/rootfs.cpio" -append "$append" \
    -chardev "file,id=con,path=$RUN/console.log" -serial chardev:con \
    -device virtio-serial-pci \
    -chardev "file,id=out,path=$RUN/out.fifo" -device virtserialport,chardev=out,name=out \
    -chardev "file,id=err,path=$RUN/err.fifo" -device virtserialport,chardev=err,name=err \
    -device virtio-rng-pci \
    -virtfs "local,path=$RUN/ctl,mount_tag=labctl,security_model=none" \
    "${virtfs[@]}" </dev/null 2>"$RUN/qemu.err" &
  QPID=$!
  local qrc=0
  wait "$QPID" || qrc=$?
  QPID=
  local p n
  for p in "$OUTPID" "$ERRPID"; do   # let the readers drain, then stop them
    n=0
    while kill -0 "$p" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  OUTPID=; ERRPID=

  local rc boot=""
  [ -f "$RUN/ctl/boot-time" ] && boot=$(cat "$RUN/ctl/boot-time")
  if [ -f "$RUN/ctl/rc" ]; then
    rc=$(cat "$RUN/ctl/rc")
    log "done: rc=$rc accel=$ACCEL wall=$((SECONDS - t_start))s guest: ${boot:-?}"
  else
    if [ $qrc = 124 ] || [ $qrc = 137 ]; then
      rc=124
      log "TIMEOUT after ${timeout}s (accel=$ACCEL); the VM was killed"
    elif [ -z "$boot" ]; then
      rc=125
      log "ERROR: the VM did not boot (qemu rc=$qrc, accel=$ACCEL) - the lab cannot run here"
      [ "$ACCEL" != kvm ] || log "hint: KVM was used ($ACCEL_WHY); MOOR_LAB_ACCEL=tcg forces software emulation"
    else
      rc=125
      log "ERROR: the VM died before the command reported a status (qemu rc=$qrc, accel=$ACCEL)"
    fi
    if [ -s "$RUN/qemu.err" ]; then log "qemu stderr:"; cat "$RUN/qemu.err" >&2; fi
    if [ -s "$RUN/console.log" ]; then
      log "console tail (the kernel boots with loglevel=3: errors only):"
      tail -n 60 "$RUN/console.log" >&2 || true
    else
      log "console log empty (quiet boot: no kernel errors were printed)"
    fi
  fi
  return "$rc"
}

# ------------------------------------------------------------------------------ scenarios
list_scenarios() {
  local f
  for f in "$LAB_DIR"/scenarios/*.sh; do [ -e "$f" ] && basename "$f" .sh; done
}

cmd_scenario() {
  local timeout=1800 stimeout=600 names=() all=0 n
  while [ $# -gt 0 ]; do
    case "$1" in
      --timeout) timeout=$2; shift 2 ;;
      --scenario-timeout) stimeout=$2; shift 2 ;;
      --all) all=1; shift ;;
      -h|--help) usage; exit 0 ;;
      -*) die "scenario: unknown option '$1'" 2 ;;
      *) names+=("${1%.sh}"); shift ;;
    esac
  done
  if [ $all = 1 ]; then
    # smoke first: if the guest itself is broken, that is the failure to read
    mapfile -t names < <(list_scenarios | sort | awk '$0=="smoke"{print; next} {r[++n]=$0} END{for(i=1;i<=n;i++) print r[i]}')
  fi
  [ ${#names[@]} -gt 0 ] || die "scenario: name one or more scenarios, or --all (see: lab.sh list)" 2
  for n in "${names[@]}"; do
    [ -f "$LAB_DIR/scenarios/$n.sh" ] || die "no scenario '$n' (tests/lab/scenarios/$n.sh); have: $(list_scenarios | paste -sd' ' -)" 2
  done
  cmd_run --timeout "$timeout" -- bash "$LAB_DIR/lib/runner.sh" --timeout "$stimeout" "${names[@]}"
}

cmd_info() {
  mkdir -p "$CACHE"
  image_key
  if [ -f "$IMG/info.txt" ]; then cat "$IMG/info.txt"
  else log "no image for key $KEY yet (lab.sh image builds it)"; fi
  if [ -f "$CACHE/qemu/.versions" ]; then echo "private qemu:"; sed 's/^/  /' "$CACHE/qemu/.versions"; fi
  echo "qemu-img: $(qemu_img_version)"
}

main() {
  local sub=${1:-help}
  [ $# -gt 0 ] && shift
  case "$sub" in
    image)
      local rebuild=0
      case "${1:-}" in --rebuild) rebuild=1 ;; "") ;; *) die "image: unknown option '$1'" 2 ;; esac
      local t0=$SECONDS
      ensure_image "$rebuild"
      ensure_qemu
      log "image ready: $IMG ($((SECONDS - t0))s)"
      head -n 6 "$IMG/info.txt"
      ;;
    run) cmd_run "$@" ;;
    scenario|scenarios) cmd_scenario "$@" ;;
    list) list_scenarios ;;
    info) cmd_info ;;
    clean) rm -rf "$CACHE"; log "removed $CACHE" ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
