# shellcheck shell=bash
# tests/lab/lib/targets.sh - scenario library of the moor lab, sourced INSIDE the guest:
#
#   #!/bin/bash
#   . "$(dirname "$0")/../lib/targets.sh"
#
# Sourcing it turns on `set -Eeuo pipefail`, an ERR trap that names the failing command and
# line, and an EXIT trap that runs what `lab_defer` registered and then force-cleans
# (lab_cleanup_all) when the scenario fails. Do not replace the EXIT trap: use lab_defer.
# Everything is plain configfs/sysfs (fast under TCG) except where noted. See docs/lab.md.
#
# generic   log MSG · fail MSG · lab_defer 'CMD' (run at exit, LIFO) · wait_for PATH [TIMEOUT] · wait_gone PATH [TIMEOUT]
#           wait_until TIMEOUT CMD... · settle [TIMEOUT] · assert_eq EXP ACT [MSG]
#           assert_ne A B [MSG] · expect_rc RC CMD... · io_roundtrip DEV [MIB] [PATTERN_OUT]
#           size_of DEV · wait_size DEV BYTES [TIMEOUT]
#           (wait_until evaluates its arguments once: poll a function, not "$(...)")
#           assert_no_leftovers · assert_no_targets · lab_cleanup_all · lab_baseline
# LIO iSCSI lio_target_create IQN [--portal ADDR:PORT]... [--chap U P] [--mutual-chap U P]
#                          [--discovery-chap U P] [--discovery-mutual-chap U P]
#           lio_lun_add IQN LUN SIZE_MB [--name N] [--type block|fileio|ramdisk]
#           lio_lun_resize IQN LUN SIZE_MB · lio_lun_unmap IQN LUN · lio_lun_remap IQN LUN NAME
#           lio_backstore IQN LUN (-> name) · lio_backstore_file NAME (-> backing file)
#           lio_acl_add IQN INITIATOR_IQN · lio_portal_down IQN ADDR[:PORT] · lio_portal_up ...
#           lio_teardown
# iSCSI initiator  iscsi_initiator_name · iscsi_discover PORTAL [--chap U P] [--mutual-chap U P]
#           iscsi_node_chap IQN PORTAL U P [U_IN P_IN] · iscsi_login IQN PORTAL
#           iscsi_logout IQN [PORTAL] · iscsi_session IQN PORTAL (-> sessionN)
#           iscsi_disk IQN PORTAL LUN [TIMEOUT] (-> sdX, via sysfs session -> HCTL)
#           iscsi_cleanup
# nvmet     nvmet_subsys_create NQN [--allow-host HOSTNQN]... [--serial S] [--model M]
#           nvmet_ns_add NQN NSID SIZE_MB [--uuid U] [--nguid G] · nvmet_ns_resize NQN NSID SIZE_MB
#           nvmet_ns_remove NQN NSID · nvmet_port_add PORTID ADDR PORT [tcp|rdma]
#           nvmet_port_link PORTID NQN · nvmet_port_unlink PORTID NQN · nvmet_teardown
# NVMe host nvme_ns_dev NQN NSID [TIMEOUT] (-> nvmeXnY) · nvme_ctrls_of NQN (-> nvmeN...) · nvme_cleanup
# scsi_debug  scsi_debug_load [PARAM=VAL]... · scsi_debug_hosts · scsi_debug_disks
#           scsi_debug_unload
# FC (FCoE) fc_fabric_up [N=2] (veths fcA<i>/fcB<i> + FCoE ctlrs, VN2VN, not enabled) · fc_target_create
#           fc_lun_add LUN SIZE_MB [--name N] · fc_lun_resize LUN SIZE_MB · fc_lun_unmap LUN
#           fc_lun_remap LUN [NAME] · fc_lun_file LUN · fc_enable [TIMEOUT] (after the target!)
#           fc_link_down PATH · fc_link_up PATH [TIMEOUT] · fc_initiator_hosts · fc_initiator_host PATH
#           fc_initiator_wwpn PATH
#           fc_target_wwpn PATH · fc_target_host PATH · fc_rport PATH (-> rport-H:B-R)
#           fc_disk PATH LUN [TIMEOUT] (-> sdX, via sysfs rport -> target -> H:C:T:L) · fc_teardown
# secrets   lab_secret [--planted] VALUE... · lab_secret [--planted] --file PATH · lab_log FILE...
#
# Secrets (the runner's secretwatch, tests/lab/guest/secretwatch.py, docs/lab.md): a scenario
# registers EVERY secret it uses -- CHAP and discovery CHAP passwords (also the deliberately
# wrong ones), LUKS passphrases, key files -- with `lab_secret`, and every log a moor process
# writes with `lab_log` (moord_start does it for the audit log and moord's stderr). After the
# last scenario the runner fails the run if a registered secret (as-is, hex, base64) is in any
# process's argv or environment seen during the run (moor, moord, every command moord runs,
# anything else), in a registered log, in a scenario's output, in dmesg or under /var/log.
# Exempt: iscsiadm, targetcli and grep run directly by the scenario script (its own
# target/initiator set-up and "not in the log" asserts; any other program it runs is checked),
# /etc/iscsi, configfs and the scenario's own secret files (not searched).
#   lab_secret "$CHAP_PW" "$WRONG_PW"       # values (>= 8 bytes; any text, no NUL)
#   lab_secret --file "$W/luks.key"         # a key file's raw content (binary is fine)
#   lab_secret "$HEX_PASSPHRASE"            # and what is derived from it
#   lab_log /var/log/x.log                  # a log to search (copied even if deleted later)
# Never `export` a secret: every process after it, moord included, would carry it. lab_secret
# and lab_log only append to root-only registries ($LAB_STATE/secrets, mode 0600, and
# $LAB_STATE/logs.list); they run no command with the secret in its argv.
# `--planted` is for secretwatch_selftest only: such a secret is put in places on purpose and
# must be FOUND there; it never counts as a leak.

set -Eeuo pipefail

LAB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
export LAB_DIR
LAB_DIR=$(dirname "$LAB_LIB_DIR")   # tests/lab (for scenarios)
LAB_STATE=${LAB_STATE:-/run/moor-lab}       # bookkeeping (guest tmpfs)
LAB_DATA=${LAB_DATA:-/var/tmp/moor-lab}     # backing files (the guest's root fs is RAM)
LIO=/sys/kernel/config/target
NVMET=/sys/kernel/config/nvmet
LAB_T0=${EPOCHREALTIME:-0}
mkdir -p "$LAB_STATE" "$LAB_DATA"

# ------------------------------------------------------------------------------ generic
log() { # log MSG... : "[  12.34s] MSG" on stdout, time since the library was sourced
  local now=${EPOCHREALTIME:-0}
  printf '[%7.2fs] %s\n' "$(awk -v a="$LAB_T0" -v b="$now" 'BEGIN{print b-a}')" "$*"
}
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

lab__on_err() { # rc line command
  local i stack=""
  for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
    stack+=" <- ${FUNCNAME[$i]}@${BASH_SOURCE[$i]##*/}:${BASH_LINENO[$((i - 1))]}"
  done
  printf 'ERROR: "%s" exited %s (line %s%s)\n' "$3" "$1" "$2" "$stack" >&2
}
LAB_DEFERRED=()
lab_defer() { LAB_DEFERRED+=("$*"); } # lab_defer 'CMD ARGS' : run at exit (LIFO), pass or fail
lab__on_exit() {
  local rc=$? i
  trap - ERR
  for ((i = ${#LAB_DEFERRED[@]} - 1; i >= 0; i--)); do eval "${LAB_DEFERRED[$i]}" || true; done
  if [ $rc != 0 ] && [ -z "${LAB_NO_AUTOCLEAN:-}" ]; then
    echo "scenario failed (rc=$rc): cleaning up" >&2
    lab_cleanup_all >&2 || true
  fi
  return $rc
}
trap 'lab__on_err $? $LINENO "$BASH_COMMAND"' ERR
trap lab__on_exit EXIT

settle() { udevadm settle -t "${1:-30}" || true; }

# ------------------------------------------------------------------------------ secrets
# (registries read by tests/lab/guest/secretwatch.py: "kind<TAB>base64(value)<TAB>scenario")
lab_secret() { # lab_secret [--planted] VALUE... | [--planted] --file PATH... : register secrets
  local kind=secret files=() v b n
  while [ $# -gt 0 ]; do
    case "$1" in
      --planted) kind=planted; shift ;;
      --file) files+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [ $# -gt 0 ] || [ ${#files[@]} -gt 0 ] || fail "lab_secret: no secret given"
  for v in "$@"; do
    n=$(LC_ALL=C; echo ${#v})
    [ "$n" -ge 8 ] || fail "lab_secret: a secret of $n bytes would match by chance (8 at least)"
    b=$(printf '%s' "$v" | base64 -w0)          # printf is a builtin: no argv carries $v
    lab__secret_add "$kind" "$b"
  done
  for v in "${files[@]}"; do
    [ -r "$v" ] || fail "lab_secret --file $v: not readable"
    [ "$(stat -c %s "$v")" -ge 8 ] || fail "lab_secret --file $v: shorter than 8 bytes"
    b=$(base64 -w0 < "$v")
    lab__secret_add "$kind" "$b"
  done
}
lab__secret_add() {
  (umask 077; printf '%s\t%s\t%s\n' "$1" "$2" "$(basename "$0" .sh)" >> "$LAB_STATE/secrets")
}
lab_log() { # lab_log FILE... : a log moor (or a command it runs) writes, to search for secrets
  local f
  for f in "$@"; do
    case "$f" in /*) ;; *) f=$PWD/$f ;; esac
    printf '%s\t%s\n' "$f" "$(basename "$0" .sh)" >> "$LAB_STATE/logs.list"
  done
}

wait_until() { # wait_until TIMEOUT_S CMD... : poll CMD every 0.1 s
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "timeout (${limit}s) waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}
wait_for() { wait_until "${2:-30}" test -e "$1"; }    # wait_for PATH [TIMEOUT]
wait_gone() { wait_until "${2:-30}" lab__absent "$1"; } # wait_gone PATH [TIMEOUT]
lab__absent() { [ ! -e "$1" ]; }

assert_eq() { # assert_eq EXPECTED ACTUAL [MSG]
  [ "$1" = "$2" ] || fail "${3:-assert_eq}: expected '$1', got '$2'"
}
assert_ne() { [ "$1" != "$2" ] || fail "${3:-assert_ne}: both are '$1'"; }
expect_rc() { # expect_rc RC CMD... : CMD must exit with RC ("nz" = any non-zero)
  local want=$1 rc=0; shift
  "$@" || rc=$?
  if [ "$want" = nz ]; then [ $rc != 0 ] || fail "expected a failure from: $*"
  else [ "$rc" = "$want" ] || fail "expected rc $want, got $rc from: $*"; fi
}

size_of() { blockdev --getsize64 "$1"; }                 # size_of DEV -> bytes
lab__size_is() { [ "$(blockdev --getsize64 "$1" 2>/dev/null)" = "$2" ]; }
wait_size() { wait_until "${3:-30}" lab__size_is "$1" "$2"; } # wait_size DEV BYTES [TIMEOUT]

io_roundtrip() { # io_roundtrip DEV [MIB=1] [PATTERN_FILE] : O_DIRECT write+read+compare at offset 0
  local dev=$1 mib=${2:-1} pat=${3:-$LAB_STATE/pattern.$$}
  head -c $((mib * 1048576)) /dev/urandom > "$pat"
  dd if="$pat" of="$dev" bs=1M count="$mib" oflag=direct conv=fsync status=none
  dd if="$dev" bs=1M count="$mib" iflag=direct status=none | cmp - "$pat" \
    || fail "data read back from $dev differs"
  [ -n "${3:-}" ] || rm -f "$pat"
}

lab_baseline() { # record the sd* disks present now (assert_no_leftovers ignores them)
  find /sys/block -maxdepth 1 -name 'sd*' -printf '%f\n' | sort > "$LAB_STATE/baseline.sd"
}
[ -f "$LAB_STATE/baseline.sd" ] || lab_baseline

lab__sd_now() { find /sys/block -maxdepth 1 -name 'sd*' -printf '%f\n' | sort; }
lab__ls() { # DIR [find tests...] : names of DIR's entries on one line; empty (never an error) when DIR is missing
  local d=$1; shift
  [ -d "$d" ] || return 0
  find "$d" -mindepth 1 -maxdepth 1 "$@" -printf '%f\n' 2>/dev/null | sort | paste -sd' ' - || true
}
assert_no_leftovers() { # no extra sd*, iSCSI sessions, dm maps, NVMe controllers/subsystems, FCoE controllers/fc_hosts
  local bad="" x
  x=$(comm -13 "$LAB_STATE/baseline.sd" <(lab__sd_now) | paste -sd' ' -)
  [ -z "$x" ] || bad+=" sd-disks:[$x]"
  x=$(lab__ls /sys/class/iscsi_session)
  [ -z "$x" ] || bad+=" iscsi-sessions:[$x]"
  x=$(dmsetup ls 2>/dev/null | awk '!/^No devices found/ {print $1}' | paste -sd' ' -)
  [ -z "$x" ] || bad+=" dm-maps:[$x]"
  x=$(lab__ls /sys/class/nvme)
  [ -z "$x" ] || bad+=" nvme-controllers:[$x]"
  x=$(lab__ls /sys/class/nvme-subsystem)   # what `nvme list-subsys` lists
  [ -z "$x" ] || bad+=" nvme-subsystems:[$x]"
  x=$(lab__ls "$FCOE_BUS/devices")
  [ -z "$x" ] || bad+=" fcoe-ctlrs:[$x]"
  x=$(lab__ls /sys/class/fc_host)
  [ -z "$x" ] || bad+=" fc-hosts:[$x]"
  [ -z "$bad" ] || fail "leftovers:$bad"
}
assert_no_targets() { # no LIO/nvmet/tcm_fc config, no scsi_debug, no lab loop devices, no FC veths, no Soft-RoCE
  local bad="" x
  x=$(lab__ls "$LIO/iscsi" -type d ! -name discovery_auth)
  [ -z "$x" ] || bad+=" lio-targets:[$x]"
  x=$(for d in "$LIO"/core/*_[0-9]*; do lab__ls "$d" -type d; done | paste -sd' ' -)
  [ -z "$x" ] || bad+=" lio-backstores:[$x]"
  x=$(lab__ls "$NVMET/subsystems")$(lab__ls "$NVMET/ports")
  [ -z "$x" ] || bad+=" nvmet:[$x]"
  [ ! -d /sys/module/scsi_debug ] || bad+=" scsi_debug-loaded"
  x=$(lab__ls "$LIO/fc" -type d ! -name discovery_auth)  # even the bare fabric dir (fc_teardown removes it)
  [ ! -d "$LIO/fc" ] || bad+=" tcm_fc:[${x:-fabric dir}]"
  x=$(lab__ls /sys/class/net \( -name "$FC_NET_A*" -o -name "$FC_NET_B*" \))
  [ -z "$x" ] || bad+=" fc-veths:[$x]"
  [ ! -e "/sys/class/net/$LAB_RDMA_NET" ] || bad+=" rdma-net:[$LAB_RDMA_NET]"
  x=$(lab__ls /sys/class/infiniband)
  [ -z "$x" ] || bad+=" rdma-devices:[$x]"
  x=$(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v d="$LAB_DATA" 'index($2, d)==1 {print $1}' | paste -sd' ' -)
  [ -z "$x" ] || bad+=" loop:[$x]"
  [ -z "$bad" ] || fail "target leftovers:$bad"
}

lab_cleanup_all() { # best effort: tear down everything the lab knows about
  set +e
  multipath -F >/dev/null 2>&1
  iscsi_cleanup
  nvme_cleanup
  dmsetup remove_all >/dev/null 2>&1 || dmsetup remove_all --force >/dev/null 2>&1  # a map with queued I/O needs --force
  fc_teardown    # before lio_teardown: that one would hand a tcm_fc config to targetcli clearconfig
  lio_teardown
  nvmet_teardown
  scsi_debug_unload >/dev/null 2>&1
  set -e
  return 0
}

lab__uuid() { cat /proc/sys/kernel/random/uuid; }
lab__loop_for() { # backing file -> its loop device (empty when none)
  losetup -n -O NAME -j "$1" 2>/dev/null | head -n 1
}
lab__mkfile() { # path size_mb
  mkdir -p "$(dirname "$1")"
  truncate -s "${2}M" "$1"
}

# ------------------------------------------------------------------------------ LIO iSCSI
# One TPG per portal (tpgt_1 = first --portal, tpgt_2 = second ...), each exporting the same
# LUNs: a portal failure (lio_portal_down) then is one TPG disabled, which drops exactly the
# sessions through that portal, as a dead path would. Backstores are kept under core/<type>_0/.
lio__modules() { modprobe -a target_core_mod iscsi_target_mod target_core_file target_core_iblock; }
lio__tpgs() { find "$LIO/iscsi/$1" -mindepth 1 -maxdepth 1 -name 'tpgt_*' 2>/dev/null | sort -V; }
lio__state() { echo "$LAB_STATE/lio/$1"; }

lio_target_create() {
  local iqn=$1; shift
  local portals=() chap=() mchap=() dchap=() dmchap=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --portal) portals+=("$2"); shift 2 ;;
      --chap) chap=("$2" "$3"); shift 3 ;;
      --mutual-chap) mchap=("$2" "$3"); shift 3 ;;
      --discovery-chap) dchap=("$2" "$3"); shift 3 ;;
      --discovery-mutual-chap) dmchap=("$2" "$3"); shift 3 ;;
      *) fail "lio_target_create: unknown option $1" ;;
    esac
  done
  [ ${#portals[@]} -gt 0 ] || portals=(127.0.0.1:3260)
  [ ${#mchap[@]} = 0 ] || [ ${#chap[@]} = 2 ] || fail "lio_target_create: --mutual-chap needs --chap"
  lio__modules
  local t=$LIO/iscsi/$iqn st i=0 p tpg
  [ ! -e "$t" ] || fail "lio_target_create: $iqn exists"
  mkdir -p "$t"
  st=$(lio__state "$iqn"); rm -rf "$st"; mkdir -p "$st"
  for p in "${portals[@]}"; do
    i=$((i + 1)); tpg=$t/tpgt_$i
    mkdir "$tpg"
    mkdir "$tpg/np/$p"
    echo 0 > "$tpg/attrib/demo_mode_write_protect"
    echo 1 > "$tpg/attrib/generate_node_acls"
    echo 1 > "$tpg/attrib/cache_dynamic_acls"
    if [ ${#chap[@]} = 2 ]; then
      echo 1 > "$tpg/attrib/authentication"
      echo -n "${chap[0]}" > "$tpg/auth/userid"        # demo-mode (no ACL) credentials
      echo -n "${chap[1]}" > "$tpg/auth/password"
      if [ ${#mchap[@]} = 2 ]; then
        echo -n "${mchap[0]}" > "$tpg/auth/userid_mutual"
        echo -n "${mchap[1]}" > "$tpg/auth/password_mutual"
      fi
    else
      echo 0 > "$tpg/attrib/authentication"
    fi
    echo 1 > "$tpg/enable"
    echo "$p" > "$st/portal.$i"
  done
  [ ${#chap[@]} = 0 ] || printf '%s\n' "${chap[@]}" > "$st/chap"
  [ ${#mchap[@]} = 0 ] || printf '%s\n' "${mchap[@]}" > "$st/mutual-chap"
  if [ ${#dchap[@]} = 2 ]; then
    local da=$LIO/iscsi/discovery_auth
    echo -n "${dchap[0]}" > "$da/userid"
    echo -n "${dchap[1]}" > "$da/password"
    if [ ${#dmchap[@]} = 2 ]; then
      echo -n "${dmchap[0]}" > "$da/userid_mutual"
      echo -n "${dmchap[1]}" > "$da/password_mutual"
    fi
    echo 1 > "$da/enforce_discovery_auth"
  fi
}

lio__hba_of() { case "$1" in block) echo iblock_0 ;; fileio) echo fileio_0 ;; ramdisk) echo rd_mcp_0 ;; *) fail "backstore type $1?" ;; esac; }
lio__backstore_dir() { # name -> core/<hba>/<name>
  local d
  for d in "$LIO"/core/*/"$1"; do [ -d "$d" ] && { echo "$d"; return 0; }; done
  return 1
}
lio_backstore_file() { # NAME -> the backing file (block/fileio), empty for ramdisk
  cat "$LAB_STATE/lio/backstores/$1/file" 2>/dev/null || true
}

lio_backstore_create() { # NAME SIZE_MB [block|fileio|ramdisk] : a backstore without a LUN
  local name=$1 mb=$2 type=${3:-block} hba dir file="" loop="" bs=$LAB_STATE/lio/backstores/$1
  lio__modules
  hba=$(lio__hba_of "$type")
  dir=$LIO/core/$hba/$name
  [ ! -e "$dir" ] || fail "backstore $name exists"
  case "$type" in
    block)   # iblock on a loop device: the size follows the loop device (resizable)
      file=$LAB_DATA/$name.img; lab__mkfile "$file" "$mb"
      loop=$(losetup -f --show "$file")
      mkdir -p "$dir"; echo "udev_path=$loop" > "$dir/control" ;;
    fileio)  # fileio on a plain file: fixed size
      file=$LAB_DATA/$name.img; lab__mkfile "$file" "$mb"
      mkdir -p "$dir"; echo "fd_dev_name=$file,fd_dev_size=$((mb * 1048576))" > "$dir/control" ;;
    ramdisk)
      modprobe target_core_mod
      mkdir -p "$dir"; echo "rd_pages=$((mb * 256))" > "$dir/control" ;;
  esac
  echo 1 > "$dir/enable"
  # a unit serial gives the LUN a stable VPD 0x80/0x83 identity (WWID, by-id links, multipath)
  lab__uuid > "$dir/wwn/vpd_unit_serial"
  mkdir -p "$bs"
  echo "$type" > "$bs/type"; echo "$file" > "$bs/file"; echo "$loop" > "$bs/loop"
}

lio__map() { # IQN LUN NAME : export backstore NAME as LUN in every TPG (+ every ACL)
  local iqn=$1 lun=$2 name=$3 dir tpg acl
  dir=$(lio__backstore_dir "$name") || fail "no backstore $name"
  for tpg in $(lio__tpgs "$iqn"); do
    [ ! -e "$tpg/lun/lun_$lun" ] || fail "$iqn ${tpg##*/} already has LUN $lun"
    mkdir "$tpg/lun/lun_$lun"
    ln -s "$dir" "$tpg/lun/lun_$lun/$name"
    for acl in "$tpg"/acls/*; do
      [ -d "$acl" ] || continue
      mkdir "$acl/lun_$lun"
      ln -s "$tpg/lun/lun_$lun" "$acl/lun_$lun/map"
    done
  done
}

lio_lun_add() { # IQN LUN SIZE_MB [--name N] [--type block|fileio|ramdisk]
  local iqn=$1 lun=$2 mb=$3; shift 3
  local name="" type=block
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) name=$2; shift 2 ;;
      --type) type=$2; shift 2 ;;
      *) fail "lio_lun_add: unknown option $1" ;;
    esac
  done
  [ -d "$LIO/iscsi/$iqn" ] || fail "lio_lun_add: no target $iqn"
  if [ -z "$name" ]; then name=$(echo "${iqn##*:}" | tr -c 'A-Za-z0-9_\n-' _)_lun$lun; fi
  lio_backstore_create "$name" "$mb" "$type"
  lio__map "$iqn" "$lun" "$name"
}

lio_backstore() { # IQN LUN -> name of the backstore exported as LUN (from tpgt_1)
  local l
  for l in "$LIO/iscsi/$1/tpgt_1/lun/lun_$2"/*; do
    [ -L "$l" ] && { basename "$(readlink -f "$l")"; return 0; }
  done
  fail "lio_backstore: $1 has no LUN $2"
}

lio_lun_resize() { # IQN LUN SIZE_MB : grow/shrink the backing of a --type block LUN
  local name bs
  name=$(lio_backstore "$1" "$2"); bs=$LAB_STATE/lio/backstores/$name
  [ "$(cat "$bs/type")" = block ] || fail "lio_lun_resize: LUN $2 of $1 is $(cat "$bs/type"); only --type block LUNs resize"
  truncate -s "${3}M" "$(cat "$bs/file")"
  losetup -c "$(cat "$bs/loop")"
}

lio_lun_unmap() { # IQN LUN : remove the LUN from every TPG/ACL (the backstore stays)
  # NB: with LUN 0 unmapped, LIO answers for LUN 0 with its virtual read-only LUN 0: reads
  # return zeros, writes fail (DATA PROTECT / EIO). Other LUNs answer LUN NOT SUPPORTED.
  local iqn=$1 lun=$2 tpg acl l
  for tpg in $(lio__tpgs "$iqn"); do
    for acl in "$tpg"/acls/*; do
      [ -d "$acl/lun_$lun" ] || continue
      for l in "$acl/lun_$lun"/*; do [ -L "$l" ] && rm "$l"; done
      rmdir "$acl/lun_$lun"
    done
    [ -d "$tpg/lun/lun_$lun" ] || continue
    for l in "$tpg/lun/lun_$lun"/*; do [ -L "$l" ] && rm "$l"; done
    rmdir "$tpg/lun/lun_$lun"
  done
}

lio_lun_remap() { lio__map "$1" "$2" "$3"; } # IQN LUN BACKSTORE_NAME

lio_acl_add() { # IQN INITIATOR_IQN : only listed initiators may log in from now on
  local iqn=$1 init=$2 st tpg lun
  st=$(lio__state "$iqn")
  for tpg in $(lio__tpgs "$iqn"); do
    echo 0 > "$tpg/attrib/generate_node_acls"
    mkdir "$tpg/acls/$init"
    if [ -f "$st/chap" ]; then
      echo -n "$(sed -n 1p "$st/chap")" > "$tpg/acls/$init/auth/userid"
      echo -n "$(sed -n 2p "$st/chap")" > "$tpg/acls/$init/auth/password"
    fi
    if [ -f "$st/mutual-chap" ]; then
      echo -n "$(sed -n 1p "$st/mutual-chap")" > "$tpg/acls/$init/auth/userid_mutual"
      echo -n "$(sed -n 2p "$st/mutual-chap")" > "$tpg/acls/$init/auth/password_mutual"
    fi
    for lun in "$tpg"/lun/lun_*; do
      [ -d "$lun" ] || continue
      mkdir "$tpg/acls/$init/${lun##*/}"
      ln -s "$lun" "$tpg/acls/$init/${lun##*/}/map"
    done
  done
}

lio__tpg_of_portal() { # IQN ADDR[:PORT] -> tpg dir
  local tpg np
  for tpg in $(lio__tpgs "$1"); do
    for np in "$tpg"/np/*; do
      case "${np##*/}" in "$2"|"$2":*) echo "$tpg"; return 0 ;; esac
    done
  done
  fail "no portal $2 on $1"
}
lio_portal_down() { local t; t=$(lio__tpg_of_portal "$1" "$2"); echo 0 > "$t/enable"; } # drops its sessions
lio_portal_up() { local t; t=$(lio__tpg_of_portal "$1" "$2"); echo 1 > "$t/enable"; }

lio_teardown() { # remove every iSCSI target, backstore and loop device the lab created
  local t tpg acl l d bs loop f
  [ -d "$LIO" ] || { rm -rf "$LAB_STATE/lio"; return 0; }
  for t in "$LIO"/iscsi/iqn.* "$LIO"/iscsi/eui.* "$LIO"/iscsi/naa.*; do
    [ -d "$t" ] || continue
    for tpg in "$t"/tpgt_*; do
      [ -d "$tpg" ] || continue
      echo 0 > "$tpg/enable" 2>/dev/null || true
      for acl in "$tpg"/acls/*; do
        [ -d "$acl" ] || continue
        for d in "$acl"/lun_*; do
          [ -d "$d" ] || continue
          for l in "$d"/*; do [ -L "$l" ] && rm -f "$l"; done
          rmdir "$d"
        done
        rmdir "$acl"
      done
      for d in "$tpg"/lun/lun_*; do
        [ -d "$d" ] || continue
        for l in "$d"/*; do [ -L "$l" ] && rm -f "$l"; done
        rmdir "$d"
      done
      for d in "$tpg"/np/*; do [ -d "$d" ] && rmdir "$d"; done
      rmdir "$tpg"
    done
    rmdir "$t"
  done
  local da=$LIO/iscsi/discovery_auth
  [ ! -d "$da" ] || echo 0 > "$da/enforce_discovery_auth"
  # other fabrics (tcm_fc, loopback, ...) are not handled here: let targetcli clear them
  if [ -n "$(find "$LIO" -mindepth 2 -maxdepth 2 -type d ! -path "$LIO/core/*" ! -path "$LIO/iscsi/*" 2>/dev/null)" ]; then
    targetcli clearconfig confirm=True >/dev/null 2>&1 || true
  fi
  for d in "$LIO"/core/*_[0-9]*/*; do
    if [ ! -d "$d" ] || [ "${d##*/}" = alua ]; then continue; fi
    rmdir "$d" 2>/dev/null || echo "lio_teardown: cannot remove backstore $d" >&2
  done
  for d in "$LIO"/core/*_[0-9]*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  for bs in "$LAB_STATE"/lio/backstores/*; do
    [ -d "$bs" ] || continue
    loop=$(cat "$bs/loop" 2>/dev/null || true)
    [ -z "$loop" ] || losetup -d "$loop" 2>/dev/null || true
    f=$(cat "$bs/file" 2>/dev/null || true)
    [ -z "$f" ] || rm -f "$f"
  done
  rm -rf "$LAB_STATE/lio"
  return 0
}

# ------------------------------------------------------------------------------ iSCSI initiator
iscsi_initiator_name() { sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi; }

iscsi_discover() { # PORTAL [--chap U P] [--mutual-chap U P] : sendtargets discovery (prints it)
  local portal=$1; shift
  local n=discovery.sendtargets.auth
  iscsiadm -m discoverydb -t sendtargets -p "$portal" -o delete >/dev/null 2>&1 || true
  iscsiadm -m discoverydb -t sendtargets -p "$portal" -o new >/dev/null
  while [ $# -gt 0 ]; do
    case "$1" in
      --chap)
        iscsiadm -m discoverydb -t st -p "$portal" -o update -n $n.authmethod -v CHAP
        iscsiadm -m discoverydb -t st -p "$portal" -o update -n $n.username -v "$2"
        iscsiadm -m discoverydb -t st -p "$portal" -o update -n $n.password -v "$3"
        shift 3 ;;
      --mutual-chap)
        iscsiadm -m discoverydb -t st -p "$portal" -o update -n $n.username_in -v "$2"
        iscsiadm -m discoverydb -t st -p "$portal" -o update -n $n.password_in -v "$3"
        shift 3 ;;
      *) fail "iscsi_discover: unknown option $1" ;;
    esac
  done
  iscsiadm -m discoverydb -t sendtargets -p "$portal" --discover
}

iscsi_node_chap() { # IQN PORTAL USER PASS [USER_IN PASS_IN] : CHAP settings of a node record
  local n=node.session.auth
  iscsiadm -m node -T "$1" -p "$2" -o update -n $n.authmethod -v CHAP
  iscsiadm -m node -T "$1" -p "$2" -o update -n $n.username -v "$3"
  iscsiadm -m node -T "$1" -p "$2" -o update -n $n.password -v "$4"
  if [ $# -ge 6 ]; then
    iscsiadm -m node -T "$1" -p "$2" -o update -n $n.username_in -v "$5"
    iscsiadm -m node -T "$1" -p "$2" -o update -n $n.password_in -v "$6"
  fi
}
iscsi_login() { iscsiadm -m node -T "$1" -p "$2" --login >/dev/null; }
iscsi_logout() { # IQN [PORTAL]
  if [ $# -ge 2 ]; then iscsiadm -m node -T "$1" -p "$2" --logout >/dev/null
  else iscsiadm -m node -T "$1" --logout >/dev/null; fi
}

iscsi_session() { # IQN ADDR:PORT -> sessionN (from sysfs), fails when there is none
  local s c addr port
  for s in /sys/class/iscsi_session/session*; do
    [ -e "$s" ] || continue
    [ "$(cat "$s/targetname")" = "$1" ] || continue
    for c in "$s"/device/connection*/iscsi_connection/connection*; do
      addr=$(cat "$c/persistent_address" 2>/dev/null || true)
      port=$(cat "$c/persistent_port" 2>/dev/null || true)
      if [ "$addr:$port" = "$2" ] || [ "[$addr]:$port" = "$2" ]; then
        echo "${s##*/}"; return 0
      fi
    done
  done
  return 1
}
lab__session_lun_disk() { # sessionN LUN -> sdX (H:C:T:L under the session's SCSI target)
  local d
  for d in /sys/class/iscsi_session/"$1"/device/target*/*:*:*:"$2"/block/*; do
    [ -e "$d" ] && { echo "${d##*/}"; return 0; }
  done
  return 1
}
iscsi_disk() { # IQN ADDR:PORT LUN [TIMEOUT=30] -> sdX, waiting for the SCSI scan + udev
  local s end=$((SECONDS + ${4:-30})) dev
  while :; do
    if s=$(iscsi_session "$1" "$2") && dev=$(lab__session_lun_disk "$s" "$3") \
       && [ -b "/dev/$dev" ]; then
      settle 10
      echo "$dev"; return 0
    fi
    [ $SECONDS -lt $end ] || fail "iscsi_disk: no disk for $1 $2 LUN $3 after ${4:-30}s"
    sleep 0.1
  done
}
iscsi_cleanup() { # log out of everything, forget all node and discovery records
  iscsiadm -m node --logoutall=all >/dev/null 2>&1 || true
  iscsiadm -m node -o delete >/dev/null 2>&1 || true
  iscsiadm -m discoverydb -t st -o delete >/dev/null 2>&1 || true
  rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/* 2>/dev/null || true
  settle 10
  return 0
}

# ------------------------------------------------------------------------------ nvmet (NVMe-oF target)
nvmet__modules() { modprobe -a nvmet nvmet_tcp nvme_tcp nvme_fabrics; }
# RDMA without an RDMA NIC: Soft-RoCE (rdma_rxe) on a dummy interface. The kernel's real
# nvme-rdma host and nvmet-rdma target then run over it (RDMA CM, verbs, queue pairs; rxe
# loops packets to its own address back inside the driver). Debian's kernel has no siw.
LAB_RDMA_NET=labrdma0
LAB_RDMA_ADDR=10.203.0.1   # the address an NVMe/RDMA port listens on
nvmet__rdma() {
  modprobe -a rdma_rxe nvmet_rdma nvme_rdma
  if [ ! -e "/sys/class/net/$LAB_RDMA_NET" ]; then
    ip link add "$LAB_RDMA_NET" type dummy
    ip addr add "$LAB_RDMA_ADDR/24" dev "$LAB_RDMA_NET"
    ip link set "$LAB_RDMA_NET" up
  fi
  rdma link show rxe_lab >/dev/null 2>&1 || rdma link add rxe_lab type rxe netdev "$LAB_RDMA_NET"
}
nvmet_subsys_create() { # NQN [--allow-host HOSTNQN]... [--serial S] [--model M]
  local nqn=$1; shift
  local hosts=() serial="" model="" h s
  while [ $# -gt 0 ]; do
    case "$1" in
      --allow-host) hosts+=("$2"); shift 2 ;;
      --serial) serial=$2; shift 2 ;;
      --model) model=$2; shift 2 ;;
      *) fail "nvmet_subsys_create: unknown option $1" ;;
    esac
  done
  nvmet__modules
  s=$NVMET/subsystems/$nqn
  mkdir "$s"
  [ -z "$serial" ] || echo "$serial" > "$s/attr_serial"
  [ -z "$model" ] || echo "$model" > "$s/attr_model"
  if [ ${#hosts[@]} = 0 ]; then
    echo 1 > "$s/attr_allow_any_host"
  else
    echo 0 > "$s/attr_allow_any_host"
    for h in "${hosts[@]}"; do
      [ -d "$NVMET/hosts/$h" ] || mkdir "$NVMET/hosts/$h"
      ln -s "$NVMET/hosts/$h" "$s/allowed_hosts/$h"
    done
  fi
}

nvmet_ns_add() { # NQN NSID SIZE_MB [--uuid U] [--nguid G] : namespace on a loop device
  local nqn=$1 nsid=$2 mb=$3; shift 3
  local uuid="" nguid="" ns file loop
  while [ $# -gt 0 ]; do
    case "$1" in
      --uuid) uuid=$2; shift 2 ;;
      --nguid) nguid=$2; shift 2 ;;
      *) fail "nvmet_ns_add: unknown option $1" ;;
    esac
  done
  ns=$NVMET/subsystems/$nqn/namespaces/$nsid
  file=$LAB_DATA/nvmet-$(echo "$nqn" | tr -c 'A-Za-z0-9_\n-' _)-ns$nsid.img
  lab__mkfile "$file" "$mb"
  loop=$(losetup -f --show "$file")
  mkdir "$ns"
  echo -n "$loop" > "$ns/device_path"
  [ -z "$uuid" ] || echo "$uuid" > "$ns/device_uuid"
  [ -z "$nguid" ] || echo "$nguid" > "$ns/device_nguid"
  echo 1 > "$ns/enable"
  mkdir -p "$LAB_STATE/nvmet"
  printf '%s\n%s\n' "$file" "$loop" > "$LAB_STATE/nvmet/$nqn.$nsid"
}
nvmet_ns_file() { sed -n 1p "$LAB_STATE/nvmet/$1.$2"; } # NQN NSID -> backing file

nvmet_ns_resize() { # NQN NSID SIZE_MB : grow the backing + tell the target (AEN to hosts)
  local st=$LAB_STATE/nvmet/$1.$2 ns=$NVMET/subsystems/$1/namespaces/$2
  truncate -s "${3}M" "$(sed -n 1p "$st")"
  losetup -c "$(sed -n 2p "$st")"
  [ ! -e "$ns/revalidate_size" ] || echo 1 > "$ns/revalidate_size"
}

nvmet_ns_remove() { # NQN NSID
  local st=$LAB_STATE/nvmet/$1.$2 ns=$NVMET/subsystems/$1/namespaces/$2
  echo 0 > "$ns/enable"
  rmdir "$ns"
  if [ -f "$st" ]; then
    losetup -d "$(sed -n 2p "$st")" 2>/dev/null || true
    rm -f "$(sed -n 1p "$st")" "$st"
  fi
}

nvmet_port_add() { # PORTID ADDR PORT [tcp|rdma] : an NVMe/TCP (default) or NVMe/RDMA port (ipv6 when ADDR has a ':')
  local p=$NVMET/ports/$1 tr=${4:-tcp}
  nvmet__modules
  [ "$tr" != rdma ] || nvmet__rdma
  mkdir "$p"
  echo "$tr" > "$p/addr_trtype"
  case "$2" in *:*) echo ipv6 > "$p/addr_adrfam" ;; *) echo ipv4 > "$p/addr_adrfam" ;; esac
  echo "$2" > "$p/addr_traddr"
  echo "$3" > "$p/addr_trsvcid"
}
nvmet_port_link() { ln -s "$NVMET/subsystems/$2" "$NVMET/ports/$1/subsystems/$2"; }  # PORTID NQN
nvmet_port_unlink() { rm "$NVMET/ports/$1/subsystems/$2"; }                          # PORTID NQN

nvmet_teardown() { # remove every port, subsystem, host and namespace backing
  local p l s ns h st
  [ -d "$NVMET" ] || { rm -rf "$LAB_STATE/nvmet"; return 0; }
  for p in "$NVMET"/ports/*; do
    [ -d "$p" ] || continue
    for l in "$p"/subsystems/* "$p"/referrals/*; do [ -L "$l" ] && rm -f "$l"; [ -d "$l" ] && rmdir "$l"; done
    rmdir "$p"
  done
  for s in "$NVMET"/subsystems/*; do
    [ -d "$s" ] || continue
    for l in "$s"/allowed_hosts/*; do [ -L "$l" ] && rm -f "$l"; done
    for ns in "$s"/namespaces/*; do
      [ -d "$ns" ] || continue
      echo 0 > "$ns/enable" 2>/dev/null || true
      rmdir "$ns"
    done
    rmdir "$s"
  done
  for h in "$NVMET"/hosts/*; do [ -d "$h" ] && rmdir "$h"; done
  for st in "$LAB_STATE"/nvmet/*; do
    [ -f "$st" ] || continue
    losetup -d "$(sed -n 2p "$st")" 2>/dev/null || true
    rm -f "$(sed -n 1p "$st")"
  done
  rm -rf "$LAB_STATE/nvmet"
  if rdma link show rxe_lab >/dev/null 2>&1; then rdma link delete rxe_lab 2>/dev/null || true; fi
  [ ! -e "/sys/class/net/$LAB_RDMA_NET" ] || ip link del "$LAB_RDMA_NET" 2>/dev/null || true
  return 0
}

# ------------------------------------------------------------------------------ NVMe host side
nvme_ns_dev() { # NQN NSID [TIMEOUT=30] -> nvmeXnY (the namespace's block device), waiting for it
  local end=$((SECONDS + ${3:-30})) sub b
  while :; do
    for sub in /sys/class/nvme-subsystem/*; do
      [ "$(cat "$sub/subsysnqn" 2>/dev/null)" = "$1" ] || continue
      for b in "$sub"/nvme*n*; do
        [ -e "$b/nsid" ] && [ "$(cat "$b/nsid")" = "$2" ] && [ -b "/dev/${b##*/}" ] \
          && { settle 10; echo "${b##*/}"; return 0; }
      done
    done
    [ $SECONDS -lt $end ] || fail "nvme_ns_dev: no namespace $2 of $1 after ${3:-30}s"
    sleep 0.1
  done
}
nvme_cleanup() { nvme disconnect-all >/dev/null 2>&1 || true; settle 10; return 0; }
nvme_ctrls_of() { # NQN -> the host's controllers of that subsystem (nvmeN), one per line
  local c
  for c in /sys/class/nvme/nvme*; do
    [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$1" ] && echo "${c##*/}"
  done
  return 0
}

# ------------------------------------------------------------------------------ scsi_debug
scsi_debug_hosts() { # hostN of every scsi_debug host
  local h
  for h in /sys/class/scsi_host/host*; do
    [ "$(cat "$h/proc_name" 2>/dev/null)" = scsi_debug ] && echo "${h##*/}"
  done
  return 0
}
scsi_debug_disks() { # sdX of every scsi_debug disk
  local h d
  for h in $(scsi_debug_hosts); do
    for d in /sys/class/scsi_host/"$h"/device/target*/*:*:*:*/block/*; do
      [ -e "$d" ] && echo "${d##*/}"
    done
  done
  return 0
}
scsi_debug_load() { # [PARAM=VAL]... (default dev_size_mb=16) : load and wait for the disks
  [ ! -d /sys/module/scsi_debug ] || fail "scsi_debug is already loaded"
  [ $# -gt 0 ] || set -- dev_size_mb=16
  modprobe scsi_debug "$@"
  wait_until 30 lab__sd_disks_present
  settle 30
}
lab__sd_disks_present() { [ -n "$(scsi_debug_disks)" ] && [ -b "/dev/$(scsi_debug_disks | head -n 1)" ]; }
scsi_debug_unload() { # delete its devices, then rmmod (retried: udev/multipathd may hold it)
  [ -d /sys/module/scsi_debug ] || return 0
  local d
  for d in $(scsi_debug_disks); do echo 1 > "/sys/block/$d/device/delete" 2>/dev/null || true; done
  settle 10
  wait_until 20 rmmod scsi_debug
}

# ------------------------------------------------------------------------------ FC (FCoE + LIO tcm_fc)
# Software Fibre Channel, no hardware and no lldpad/DCB: N veth pairs fcA<i>/fcB<i> (mtu 2500)
# with an FCoE controller (fcoe/libfc, VN2VN mode) on both ends. Path i = fcA<i> <-> fcB<i>:
# the A end is the Linux FC initiator (scsi_transport_fc: fc_host, rports, SCSI targets), the
# B end an LIO tcm_fc target port. Two paths = two initiator fc_hosts + two target ports that
# export the same LUNs (one backstore each): FC multipath.
#   fc_fabric_up [N] -> fc_target_create -> fc_lun_add LUN MB... -> fc_enable
# The order matters: configure the target BEFORE fc_enable. An initiator that logged in before
# the tcm_fc port existed sees an "FCP Initiator" rport; after a relogin (link bounce) its roles
# read "FCP Target, FCP Initiator" but it never gets a SCSI target (scsi_target_id -1, no scan;
# checked). LUNs added after fc_enable are fine (a host scan finds them).
# A scenario using FC and LIO iSCSI calls fc_teardown before lio_teardown (which would hand a
# tcm_fc config to `targetcli clearconfig`); lab_cleanup_all does so.
# tcm_fc's configfs: target/fc/<wwpn as 20:00:xx:xx:xx:xx:xx:xx>/tpgt_1 (tpgt_1 only, no
# "enable", no demo mode: an ACL per initiator), acls/<initiator wwpn, same form>/lun_N/map.
# State: $LAB_STATE/fc/{paths, <i>/{ihost,iwwpn,thost,twwpn}, luns/<LUN> (backstore name),
# backstores/<name>/{file,loop} (kept away from lio_teardown), target}.
FC_NET_A=fcA FC_NET_B=fcB
FCOE_BUS=/sys/bus/fcoe
fc__modules() { modprobe -a veth fcoe libfcoe libfc scsi_transport_fc tcm_fc target_core_mod target_core_iblock; }
fc__paths() { seq 1 "$(cat "$LAB_STATE/fc/paths" 2>/dev/null || echo 0)"; }
fc__get() { # PATH KEY -> the recorded value
  local v
  v=$(cat "$LAB_STATE/fc/$1/$2" 2>/dev/null) || fail "FC path $1: no $2 recorded (fc_fabric_up first)"
  echo "$v"
}
fc__colon() { # 0x2000aabbccddeeff -> 20:00:aa:bb:cc:dd:ee:ff (tcm_fc names ports and ACLs so)
  local h=${1#0x}
  while [ ${#h} -lt 16 ]; do h=0$h; done
  sed 's/../&:/g; s/:$//' <<<"$h"
}
fc__ctlr() { # NETDEV -> /sys/class/net/NETDEV/ctlr_N (its FCoE controller)
  local c
  for c in /sys/class/net/"$1"/ctlr_*; do [ -d "$c" ] && { echo "$c"; return 0; }; done
  return 1
}
fc__host_of() { # NETDEV -> hostN (the SCSI/fc_host of its FCoE controller)
  local h
  for h in /sys/class/net/"$1"/ctlr_*/host*; do [ -d "$h" ] && { echo "${h##*/}"; return 0; }; done
  return 1
}
fc__tpgs() { # the tpgt_1 dir of every target port
  local i
  for i in $(fc__paths); do echo "$LIO/fc/$(fc__colon "$(fc__get "$i" twwpn)")/tpgt_1"; done
}
fc__lun_name() { cat "$LAB_STATE/fc/luns/$1" 2>/dev/null || fail "no FC LUN $1"; } # LUN -> backstore

fc_fabric_up() { # [N=2] : N veth pairs fcA<i>/fcB<i> + an FCoE controller (VN2VN) on each end; not enabled
  local n=${1:-2} i end net h st=$LAB_STATE/fc
  [ ! -e "$st" ] || fail "fc_fabric_up: a fabric is up already (fc_teardown first)"
  fc__modules
  mkdir -p "$st/luns" "$st/backstores"
  for ((i = 1; i <= n; i++)); do
    mkdir -p "$st/$i"
    echo "$i" > "$st/paths"                       # recorded as we go: fc_teardown finds partial fabrics
    ip link add "$FC_NET_A$i" type veth peer name "$FC_NET_B$i"
    for end in A B; do
      net=$FC_NET_A$i; [ $end = A ] || net=$FC_NET_B$i
      ip link set "$net" mtu 2500 up                # FCoE frames: 2112 bytes of payload + headers
      echo "$net" > "$FCOE_BUS/ctlr_create"
      wait_until 10 fc__host_of "$net" || fail "fc_fabric_up: no FCoE controller on $net"
      echo vn2vn > "$(fc__ctlr "$net")/mode"
      h=$(fc__host_of "$net")
      if [ $end = A ]; then
        echo "$h" > "$st/$i/ihost"; cat "/sys/class/fc_host/$h/port_name" > "$st/$i/iwwpn"
      else
        echo "$h" > "$st/$i/thost"; cat "/sys/class/fc_host/$h/port_name" > "$st/$i/twwpn"
      fi
    done
  done
}
fc_initiator_hosts() { local i; for i in $(fc__paths); do fc__get "$i" ihost; done; } # hostN per path
fc_initiator_host() { fc__get "$1" ihost; }   # PATH -> hostN of the initiator fc_host
fc_initiator_wwpn() { fc__get "$1" iwwpn; }   # PATH -> 0x2000… (as sysfs shows it)
fc_target_wwpn() { fc__get "$1" twwpn; }      # PATH -> 0x2000…
fc_target_host() { fc__get "$1" thost; }      # PATH -> hostN of the target-side lport

fc_target_create() { # a tcm_fc port (tpgt_1) on every B end, an ACL for every initiator WWPN
  local i j t st=$LAB_STATE/fc
  [ -f "$st/paths" ] || fail "fc_target_create: no fabric (fc_fabric_up first)"
  for i in $(fc__paths); do
    [ "$(cat "$(fc__ctlr "$FC_NET_A$i")/enabled")" = 0 ] || echo "fc_target_create: path $i is enabled already:" \
      "its initiator will see the target port without a SCSI target (configure before fc_enable)" >&2
  done
  mkdir -p "$LIO/fc"                               # the fabric dir appears on mkdir (tcm_fc loaded)
  for i in $(fc__paths); do
    t=$LIO/fc/$(fc__colon "$(fc__get "$i" twwpn)")
    mkdir "$t" "$t/tpgt_1"
    for j in $(fc__paths); do mkdir "$t/tpgt_1/acls/$(fc__colon "$(fc__get "$j" iwwpn)")"; done
  done
  : > "$st/target"
}

fc__map() { # LUN NAME : export backstore NAME as LUN on every target port, in every ACL
  local lun=$1 name=$2 dir tpg acl
  dir=$(lio__backstore_dir "$name") || fail "no backstore $name"
  for tpg in $(fc__tpgs); do
    [ ! -e "$tpg/lun/lun_$lun" ] || fail "${tpg%/tpgt_1} already has LUN $lun"
    mkdir "$tpg/lun/lun_$lun"
    ln -s "$dir" "$tpg/lun/lun_$lun/$name"
    for acl in "$tpg"/acls/*; do
      [ -d "$acl" ] || continue
      mkdir "$acl/lun_$lun"
      ln -s "$tpg/lun/lun_$lun" "$acl/lun_$lun/map"
    done
  done
}
fc_lun_add() { # LUN SIZE_MB [--name N] : iblock backstore on a loop device (resizable), on every port + ACL
  local lun=$1 mb=$2 name=fc_lun$1 st=$LAB_STATE/fc; shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) name=$2; shift 2 ;;
      *) fail "fc_lun_add: unknown option $1" ;;
    esac
  done
  [ -f "$st/target" ] || fail "fc_lun_add: no FC target (fc_target_create first)"
  [ ! -e "$st/luns/$lun" ] || fail "fc_lun_add: LUN $lun exists"
  lio_backstore_create "$name" "$mb" block
  mv "$LAB_STATE/lio/backstores/$name" "$st/backstores/$name"   # lio_teardown must not free it
  echo "$name" > "$st/luns/$lun"
  fc__map "$lun" "$name"
}
fc_lun_file() { cat "$LAB_STATE/fc/backstores/$(fc__lun_name "$1")/file"; } # LUN -> backing file
fc_lun_resize() { # LUN SIZE_MB : grow/shrink the backing file + loop device (then rescan the disks)
  local bs
  bs=$LAB_STATE/fc/backstores/$(fc__lun_name "$1")
  truncate -s "${2}M" "$(cat "$bs/file")"
  losetup -c "$(cat "$bs/loop")"
}
fc_lun_unmap() { # LUN : off every target port and ACL (the backstore stays; fc_lun_remap brings it back)
  # the initiator's disk stays; I/O to it fails (LOGICAL UNIT NOT SUPPORTED; LUN 0: LIO's virtual LUN 0)
  local lun=$1 tpg acl l
  for tpg in $(fc__tpgs); do
    for acl in "$tpg"/acls/*; do
      [ -d "$acl/lun_$lun" ] || continue
      for l in "$acl/lun_$lun"/*; do [ -L "$l" ] && rm "$l"; done
      rmdir "$acl/lun_$lun"
    done
    [ -d "$tpg/lun/lun_$lun" ] || continue
    for l in "$tpg/lun/lun_$lun"/*; do [ -L "$l" ] && rm "$l"; done
    rmdir "$tpg/lun/lun_$lun"
  done
}
fc_lun_remap() { # LUN [BACKSTORE_NAME] : map again (default: the LUN's own backstore)
  local name=${2:-}
  [ -n "$name" ] || name=$(fc__lun_name "$1")
  fc__map "$1" "$name"
}

fc_rport() { # PATH -> rport-H:B-R: the path's target port as its initiator fc_host sees it
  local ih tw r
  ih=$(fc__get "$1" ihost); tw=$(fc__get "$1" twwpn)
  for r in /sys/class/fc_remote_ports/rport-"${ih#host}":*; do
    [ "$(cat "$r/port_name" 2>/dev/null)" = "$tw" ] && { echo "${r##*/}"; return 0; }
  done
  return 1
}
fc__path_up() { # PATH : initiator fc_host Online, its target rport Online (+ a SCSI target once configured)
  local ih r R
  ih=$(fc__get "$1" ihost)
  [ "$(cat "/sys/class/fc_host/$ih/port_state")" = Online ] || return 1
  r=$(fc_rport "$1") || return 1
  R=/sys/class/fc_remote_ports/$r
  [ "$(cat "$R/port_state")" = Online ] || return 1
  [ ! -f "$LAB_STATE/fc/target" ] || [ "$(cat "$R/scsi_target_id")" != -1 ]
}
fc__path_down() { # PATH : the target rport is not Online (Blocked, Not Present) or gone
  local r
  r=$(fc_rport "$1") || return 0
  [ "$(cat "/sys/class/fc_remote_ports/$r/port_state" 2>/dev/null)" != Online ]
}
fc_enable() { # [TIMEOUT=60] : enable every FCoE controller (target ends first); wait until every
  # initiator fc_host is Online and sees its target port Online with a SCSI target
  local t=${1:-60} i
  [ -f "$LAB_STATE/fc/target" ] || echo "fc_enable: no tcm_fc target configured: the initiators see no FCP target" >&2
  for i in $(fc__paths); do echo 1 > "$(fc__ctlr "$FC_NET_B$i")/enabled"; done
  for i in $(fc__paths); do echo 1 > "$(fc__ctlr "$FC_NET_A$i")/enabled"; done
  for i in $(fc__paths); do
    wait_until "$t" fc__path_up "$i" || fail "fc_enable: path $i ($FC_NET_A$i) not up after ${t}s"
  done
}
fc_link_down() { # PATH : take the initiator end's link down (both ends lose carrier); wait for the
  # rport to leave Online (Blocked at once; deleted - port_state "Not Present", disks removed -
  # after its dev_loss_tmo; I/O queues until fast_io_fail_tmo)
  ip link set "$FC_NET_A$1" down
  wait_until 10 fc__path_down "$1" || fail "fc_link_down: path $1's rport is still Online"
}
fc_link_up() { # PATH [TIMEOUT=30] : link up, wait for the rport Online with its SCSI target again
  local ih
  ip link set "$FC_NET_A$1" up
  wait_until 10 fc__path_up "$1" 2>/dev/null && return 0
  # libfc's VN2VN mode now and then does not log in to the target port again when the
  # carrier returns (the rport stays Blocked with the fc_host Online; about 1 in 6 boots
  # of fc_connect). A LIP (fc_host issue_lip: libfc resets the local port and logs in to
  # every port again) is what an administrator would do on a real fabric.
  ih=$(fc__get "$1" ihost)
  log "fc_link_up: path $1 not back after 10 s ($(fc__path_state "$1")); issuing a LIP on $ih"
  echo 1 > "/sys/class/fc_host/$ih/issue_lip"
  wait_until "${2:-30}" fc__path_up "$1" && return 0
  echo w > /proc/sysrq-trigger 2>/dev/null || true   # blocked tasks to the kernel log, for the report
  dmesg | tail -n 80 >&2
  fail "fc_link_up: path $1 not up after ${2:-30}s and a LIP ($(fc__path_state "$1"))"
}
fc__path_state() { # PATH -> what fc__path_up looks at, for failure messages
  local ih r R
  ih=$(fc__get "$1" ihost)
  printf 'link %s: %s; %s: %s' "$FC_NET_A$1" "$(cat "/sys/class/net/$FC_NET_A$1/operstate" 2>/dev/null)" \
    "$ih" "$(cat "/sys/class/fc_host/$ih/port_state" 2>/dev/null)"
  for R in /sys/class/fc_remote_ports/rport-"${ih#host}":*; do
    [ -e "$R" ] || continue
    r=${R##*/}
    printf '; %s %s %s target %s' "$r" "$(cat "$R/port_name" 2>/dev/null)" "$(cat "$R/port_state" 2>/dev/null)" \
      "$(cat "$R/scsi_target_id" 2>/dev/null)"
  done
}

fc__lun_disk() { # PATH LUN -> sdX (rport -> target* -> H:C:T:LUN -> block)
  local r d
  r=$(fc_rport "$1") || return 1
  for d in /sys/class/fc_remote_ports/"$r"/device/target*/*:*:*:"$2"/block/*; do
    [ -e "$d" ] && { echo "${d##*/}"; return 0; }
  done
  return 1
}
fc_disk() { # PATH LUN [TIMEOUT=30] -> sdX of LUN through PATH, waiting for the scan + udev
  local end=$((SECONDS + ${3:-30})) dev
  while :; do
    if dev=$(fc__lun_disk "$1" "$2") && [ -b "/dev/$dev" ]; then
      settle 10
      echo "$dev"; return 0
    fi
    [ $SECONDS -lt $end ] || fail "fc_disk: no disk for LUN $2 on FC path $1 after ${3:-30}s"
    sleep 0.1
  done
}

lab__no_fcoe_ctlrs() { [ -z "$(lab__ls "$FCOE_BUS/devices" -name 'ctlr_*')" ]; }
fc_teardown() { # everything FC: maps on FC disks, FCoE controllers (-> fc_hosts, rports, disks),
  # tcm_fc config, FC backstores + loops + files, the veths, the state. Best effort, bounded.
  local h d dm c net t tpg acl lun l bs loop f st=$LAB_STATE/fc
  for h in /sys/class/fc_host/host*; do          # a map would outlive its paths: flush it first
    [ -e "$h" ] || continue
    for d in "$h"/device/rport-*/target*/*:*:*:*/block/*; do
      [ -e "$d" ] || continue
      for dm in "$d"/holders/dm-*; do
        [ -e "$dm" ] || continue
        t=$(cat "$dm/dm/name")
        # I/O queued on a map without paths would block the flush for ever: fail it first.
        timeout 10 dmsetup message "$t" 0 fail_if_no_path >/dev/null 2>&1 || true
        timeout 30 multipath -f "$t" >/dev/null 2>&1 || timeout 30 dmsetup remove --force "$t" >/dev/null 2>&1 || true
      done
    done
  done
  if [ -d "$FCOE_BUS/devices" ]; then            # every FCoE controller in the guest is the lab's
    for c in "$FCOE_BUS"/devices/ctlr_*; do
      [ -e "$c" ] || continue
      net=$(basename "$(dirname "$(readlink -f "$c")")")
      echo "$net" > "$FCOE_BUS/ctlr_destroy" 2>/dev/null || true   # asynchronous (a work item)
    done
    wait_until 30 lab__no_fcoe_ctlrs || echo "fc_teardown: FCoE controllers left: $(lab__ls "$FCOE_BUS/devices")" >&2
  fi
  if [ -d "$LIO/fc" ]; then
    for t in "$LIO"/fc/*; do
      if [ ! -d "$t" ] || [ "${t##*/}" = discovery_auth ]; then continue; fi
      for tpg in "$t"/tpgt_*; do
        [ -d "$tpg" ] || continue
        for acl in "$tpg"/acls/*; do
          [ -d "$acl" ] || continue
          for lun in "$acl"/lun_*; do
            [ -d "$lun" ] || continue
            for l in "$lun"/*; do [ -L "$l" ] && rm -f "$l"; done
            rmdir "$lun"
          done
          rmdir "$acl"
        done
        for lun in "$tpg"/lun/lun_*; do
          [ -d "$lun" ] || continue
          for l in "$lun"/*; do [ -L "$l" ] && rm -f "$l"; done
          rmdir "$lun"
        done
        rmdir "$tpg"
      done
      rmdir "$t" || true
    done
    rmdir "$LIO/fc" 2>/dev/null || echo "fc_teardown: cannot remove $LIO/fc" >&2
  fi
  for bs in "$st"/backstores/*; do
    [ -d "$bs" ] || continue
    if d=$(lio__backstore_dir "${bs##*/}"); then rmdir "$d" || true; fi
    loop=$(cat "$bs/loop" 2>/dev/null || true)
    [ -z "$loop" ] || losetup -d "$loop" 2>/dev/null || true
    f=$(cat "$bs/file" 2>/dev/null || true)
    [ -z "$f" ] || rm -f "$f"
  done
  [ ! -d "$LIO/core/iblock_0" ] || [ -n "$(lab__ls "$LIO/core/iblock_0" -type d)" ] || rmdir "$LIO/core/iblock_0" 2>/dev/null || true
  for net in /sys/class/net/"$FC_NET_A"* /sys/class/net/"$FC_NET_B"*; do
    [ -e "$net" ] && ip link del "${net##*/}" 2>/dev/null   # one end takes its peer along
  done
  rm -rf "$st"
  return 0
}
