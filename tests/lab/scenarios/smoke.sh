#!/bin/bash
# smoke: the guest has the kernel modules, tools, users and daemons the other scenarios need.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"

log "kernel $(uname -r), $(nproc) vCPU, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"
mods=(iscsi_tcp libiscsi scsi_transport_iscsi sd_mod sg scsi_debug target_core_mod
  target_core_iblock target_core_file target_core_user iscsi_target_mod tcm_loop tcm_fc
  dm_mod dm_crypt dm_multipath dm_round_robin dm_service_time nvme_core nvme_fabrics nvme_tcp
  nvmet nvmet_tcp loop configfs fcoe libfcoe libfc scsi_transport_fc dummy veth brd null_blk)
missing=()
for m in "${mods[@]}"; do modinfo -n "$m" >/dev/null 2>&1 || missing+=("$m"); done
assert_eq "" "${missing[*]}" "kernel modules missing"
modprobe -a iscsi_target_mod nvmet_tcp nvme_tcp dm_crypt dm_multipath
for m in iscsi_target_mod nvmet_tcp nvme_tcp dm_crypt dm_multipath; do
  [ -d "/sys/module/$m" ] || fail "module $m did not load"
done
log "${#mods[@]} modules present, key ones load"

grep -q ' /sys/kernel/config configfs ' /proc/mounts || fail "configfs not mounted"
[ -d /sys/kernel/config/target ] || fail "LIO configfs missing"
[ -e /dev/fd/0 ] || fail "/dev/fd missing"
[ -e /dev/stdin ] || fail "/dev/stdin missing"
[ "$(cat <(echo process-substitution))" = process-substitution ] || fail "bash <(...) broken"

for d in systemd-udevd dbus-daemon iscsid multipathd; do
  pgrep -x "$d" >/dev/null || fail "$d is not running"
done
udevadm control --ping
multipathd show status >/dev/null
expect_rc 21 iscsiadm -m session 2>/dev/null  # 21 = ISCSI_ERR_NO_OBJS_FOUND: no sessions
log "udevd, dbus, iscsid and multipathd are running"

for t in iscsiadm targetcli nvme multipath multipathd kpartx cryptsetup dmsetup sg_inq lsscsi \
  fcoeadm lldpad mdadm losetup blockdev mkfs.ext4 ip python3 sudo pgrep fuser udevadm; do
  command -v "$t" >/dev/null || fail "tool $t missing"
done
# file checks: starting python3 (and pip above all) takes seconds under TCG
python3 -c 'import rtslib_fb, venv, ensurepip' || fail "python3-rtslib-fb / venv missing"
[ -f /usr/lib/python3/dist-packages/pip/__init__.py ] || fail "python3-pip missing"
compgen -G '/usr/share/python-wheels/pip-*.whl' >/dev/null || fail "pip wheel for venvs missing"
log "tools present: iscsiadm targetcli nvme multipath cryptsetup sg3-utils lsscsi fcoe mdadm python3/venv/pip"

assert_eq "uid=1001(moortest) gid=1001(moortest) groups=1001(moortest)" "$(id moortest)" "user moortest"
assert_eq 990 "$(getent group moor | cut -d: -f3)" "group moor"
assert_eq moortest "$(runuser -u moortest -- id -un)" "runuser to moortest"
assert_eq "iqn.1993-08.org.debian:01:moor-lab" "$(iscsi_initiator_name)" "initiator name"
assert_eq "nqn.2014-08.org.nvmexpress:uuid:6d6f6f72-6c61-4200-8000-000000000001" "$(nvme show-hostnqn)" "NVMe host NQN"
log "users, groups, iSCSI initiator name and NVMe host NQN are as documented"
assert_no_leftovers
log "smoke OK"
