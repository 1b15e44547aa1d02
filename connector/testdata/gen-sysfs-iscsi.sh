#!/bin/bash
# Builds sysfs fixture trees mirroring the kernel layout (relative symlinks as sysfs uses).
set -euo pipefail
TD=$(cd "$(dirname "$0")" && pwd)
mk_host() { # root host
  local R=$1 H=$2
  mkdir -p "$R/sys/devices/platform/host$H/scsi_host/host$H" "$R/sys/class/scsi_host" "$R/sys/class/iscsi_session" "$R/sys/block"
  ln -sfnr "$R/sys/devices/platform/host$H" "$R/sys/devices/platform/host$H/scsi_host/host$H/device"
  touch "$R/sys/devices/platform/host$H/scsi_host/host$H/scan"
  echo "iscsi_tcp" > "$R/sys/devices/platform/host$H/scsi_host/host$H/proc_name"
  ln -sfnr "$R/sys/devices/platform/host$H/scsi_host/host$H" "$R/sys/class/scsi_host/host$H"
}
mk_session() { # root host sid targetname
  local R=$1 H=$2 S=$3 T=$4
  local SD="$R/sys/devices/platform/host$H/session$S"
  mkdir -p "$SD/iscsi_session/session$S"
  echo "$T" > "$SD/iscsi_session/session$S/targetname"
  ln -sfnr "$SD" "$SD/iscsi_session/session$S/device"
  ln -sfnr "$SD/iscsi_session/session$S" "$R/sys/class/iscsi_session/session$S"
}
mk_target() { # root host sid C T
  mkdir -p "$1/sys/devices/platform/host$2/session$3/target$2:$4:$5"
}
mk_lun() { # root host sid C T L dev wwid sectors [partition]
  local R=$1 H=$2 S=$3 C=$4 T=$5 L=$6 DEV=$7 WWID=$8 SIZE=$9 PART=${10:-}
  local LD="$R/sys/devices/platform/host$H/session$S/target$H:$C:$T/$H:$C:$T:$L"
  mkdir -p "$LD/block/$DEV/holders"
  touch "$LD/block/$DEV/holders/.keep"
  printf '%s\n' "$WWID" > "$LD/wwid"
  echo running > "$LD/state"

  touch "$LD/delete" "$LD/rescan"
  echo "$SIZE" > "$LD/block/$DEV/size"
  ln -sfnr "$LD" "$LD/block/$DEV/device"
  ln -sfnr "$LD/block/$DEV" "$R/sys/block/$DEV"
  if [ -n "$PART" ]; then
    mkdir -p "$LD/block/$DEV/$PART"
    echo 2048 > "$LD/block/$DEV/$PART/size"
    echo 1 > "$LD/block/$DEV/$PART/partition"
  fi
}
mk_dm() { # root N name uuid sectors slaves...
  local R=$1 N=$2 NAME=$3 UUID=$4 SIZE=$5; shift 5
  local D="$R/sys/devices/virtual/block/dm-$N"
  mkdir -p "$D/dm" "$D/slaves" "$D/holders"
  touch "$D/holders/.keep"
  echo "$NAME" > "$D/dm/name"; echo "$UUID" > "$D/dm/uuid"; echo "$SIZE" > "$D/size"
  ln -sfnr "$D" "$R/sys/block/dm-$N"
  for s in "$@"; do
    local SP; SP=$(readlink -f "$R/sys/block/$s")
    ln -sfnr "$SP" "$D/slaves/$s"
    ln -sfnr "$D" "$SP/holders/dm-$N"
    rm -f "$SP/holders/.keep"
  done
}

# --- two sessions (iscsi_sysfs_session_devices.json shapes), multipath holder, LUN >= 256
R=$TD/sysfs-iscsi-two-sessions
rm -rf "$R"
mk_host "$R" 1; mk_host "$R" 2
mk_session "$R" 1 1 tgt1; mk_session "$R" 2 2 tgt2
mk_target "$R" 1 1 2 6; mk_target "$R" 2 2 2 7
mk_lun "$R" 1 1 2 6 4 sda naa.600a09803830447a4f244c4657616f6f 2097152 sda1
mk_lun "$R" 2 2 2 7 5 sdb t10.wwid1 4194304
mk_lun "$R" 2 2 2 7 4 sdc naa.600a09803830447a4f244c4657616f6f 2097152
mk_lun "$R" 2 2 2 7 256 sdd eui.wwid1 8388608
mk_dm "$R" 0 3600a09803830447a4f244c4657616f6f mpath-3600a09803830447a4f244c4657616f6f 2097152 sda sdc
mkdir -p "$R/dev" "$R/etc" "$R/proc"; touch "$R/dev/.keep" "$R/proc/.keep"
printf 'InitiatorName=iqn.1994-05.com.redhat:moor-test\n' > "$R/etc/iscsi_initiatorname.keep" && mkdir -p "$R/etc/iscsi" && mv "$R/etc/iscsi_initiatorname.keep" "$R/etc/iscsi/initiatorname.iscsi"

# --- get_hctl shapes (iscsi_hctl.json): session1 on host3 with two targets; session3 on host4 without target
R=$TD/sysfs-iscsi-hctl
rm -rf "$R"
mk_host "$R" 3; mk_host "$R" 4
mk_session "$R" 3 1 tgt1; mk_session "$R" 4 3 tgt3
mk_target "$R" 3 1 4 5; mk_target "$R" 3 1 4 6
touch "$R/sys/devices/platform/host3/session1/target3:4:6/.keep"
mk_lun "$R" 3 1 4 5 2 sda xyz.wwid9 2048 sda2
