#!/bin/bash
# iscsi_concurrent: 16 volumes (one LIO target each, as Cinder's LIO driver exports
# them) attached at the same time by 16 `moor connect iscsi` processes of the
# unprivileged caller, each verified (distinct disks, WWIDs, I/O), then detached at
# the same time; nothing is left. Per-target locks let them run in parallel.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
moord_start
P=127.0.0.1:3260
N=${CONCURRENT_VOLUMES:-16}
S=$(mktemp -d /tmp/iscsi_conc.XXXXXX) && chmod 0755 "$S"
lab_defer rm -rf "$S"
for i in $(seq "$N"); do
  iqn=iqn.2003-01.org.moor.lab:c$i
  lio_target_create "$iqn" --portal "$P"
  lio_lun_add "$iqn" 0 8 --type ramdisk
  printf '{"target_portal": "%s", "target_iqn": "%s", "target_lun": 0, "volume_id": "c%s"}\n' "$P" "$iqn" "$i" > "$S/p$i.json"
done
log "$N targets with one LUN each"

# run_all KIND(c|d) CMD… : one job per volume (%i in CMD = the volume's number),
# waited for with a deadline; sets $fails and prints the slow ones' logs on a hang.
run_all() {
  local kind=$1 i pid; shift
  local pids=()
  for i in $(seq "$N"); do
    "${@//%i/$i}" > "$S/$kind$i.out" 2>"$S/$kind$i.err" &
    pids+=($!)
  done
  fails=0
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    if ! wait_until 180 lab__gone_pid "$pid"; then
      echo "job $kind$((i + 1)) still running after 180 s; its log:" >&2
      tail -n 5 "$S/$kind$((i + 1)).err" >&2
      kill "$pid" 2>/dev/null
    fi
    wait "$pid" || fails=$((fails + 1))
  done
}
lab__gone_pid() { ! kill -0 "$1" 2>/dev/null; }

t0=$EPOCHREALTIME
run_all c moor_caller connect iscsi --properties "$S/p%i.json"
t1=$EPOCHREALTIME
for i in $(seq "$N"); do cp "$S/c$i.out" "$S/i$i.json"; done
[ "$fails" = 0 ] || fail "$fails of $N attaches failed: $(cat "$S"/c*.err | grep -v '"level":"INFO"' | head -5)"
devs=$(for i in $(seq "$N"); do json_get "$S/i$i.json" path; done | sort -u)
wwns=$(for i in $(seq "$N"); do json_get "$S/i$i.json" scsi_wwn; done | sort -u)
assert_eq "$N" "$(wc -l <<<"$devs")" "distinct devices"
assert_eq "$N" "$(wc -l <<<"$wwns")" "distinct WWIDs"
for d in $devs; do io_roundtrip "$d" 1; done
log "$N concurrent attaches in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s: $N distinct disks and WWIDs, I/O on each"

t0=$EPOCHREALTIME
run_all d moor_caller disconnect iscsi --properties "$S/p%i.json" --device-info "$S/i%i.json"
t1=$EPOCHREALTIME
[ "$fails" = 0 ] || fail "$fails of $N detaches failed: $(cat "$S"/d*.err | grep -v '"level":"INFO"' | head -5)"
assert_no_leftovers
log "$N concurrent detaches in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s; nothing left"

# Metrics (docs/metrics.md): every attach and detach of the 16 processes counted
# once in the shared moor.prom, none left in flight; `moor metrics` as the caller
# adds moord's through the `metrics` operation.
prom=/run/moor/metrics/moor.prom
metric() { # metric NAME LABELS : the sample's value in $prom (empty if absent)
  awk -v k="$1{$2}" '$1 == k { print $2 }' "$prom"
}
assert_eq "$N" "$(metric moor_volume_operations_total 'protocol="iscsi",operation="connect",outcome="ok"')" "attaches counted"
assert_eq "$N" "$(metric moor_volume_operations_total 'protocol="iscsi",operation="disconnect",outcome="clean"')" "detaches counted"
assert_eq "$N" "$(metric moor_volume_operation_duration_seconds_count 'protocol="iscsi",operation="connect"')" "attach durations"
assert_eq 0 "$(metric moor_volume_operations_in_flight 'protocol="iscsi",operation="connect"')" "attaches in flight"
assert_eq 0 "$(metric moor_volume_operations_abandoned_total 'protocol="iscsi",operation="connect"')" "attaches abandoned"
moor_caller metrics > "$S/metrics.txt" || fail "moor metrics: $(cat "$S/metrics.txt")"
grep -q '^moord_requests_total{op="iscsi.login",outcome="ok"} ' "$S/metrics.txt" || fail "no moord metrics in moor metrics"
[ -s /run/moor/metrics/moord.prom ] || fail "moord wrote no /run/moor/metrics/moord.prom"
log "metrics: $N attaches and $N detaches counted; moord's through moor metrics"
lio_teardown
