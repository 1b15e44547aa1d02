#!/bin/bash
# tests/lab/lib/runner.sh - runs scenarios INSIDE the lab guest (lab.sh scenario starts it):
#   runner.sh [--timeout S] NAME...
# Each scenario runs as `bash scenarios/NAME.sh` under its own time limit. After each one the
# runner checks that nothing is left behind (devices, sessions, maps, controllers, targets); a
# scenario that leaves something fails, and the runner cleans up so the next one starts clean.
# Prints "--- PASS/FAIL: NAME (Ns)" per scenario and a closing "lab: N passed, N failed".
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "${BASH_SOURCE[0]}")/targets.sh"
set +eE
trap - ERR EXIT

limit=600
if [ "${1:-}" = --timeout ]; then limit=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: runner.sh [--timeout S] NAME..." >&2; exit 2; }

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }
lab_baseline
pass=0 failed=0 summary=()
for name in "$@"; do
  echo "=== RUN   $name"
  t0=$EPOCHREALTIME
  timeout -k 10 "$limit" bash "$LAB_DIR/scenarios/$name.sh"
  rc=$?
  [ $rc != 124 ] || echo "scenario $name timed out after ${limit}s"
  if ! out=$( { assert_no_leftovers && assert_no_targets; } 2>&1 ); then
    echo "$name: $out"
    [ $rc != 0 ] || rc=1
    lab_cleanup_all
  fi
  iscsi_cleanup >/dev/null 2>&1   # forget node/discovery records between scenarios
  d=$(elapsed "$t0")
  if [ $rc = 0 ]; then
    pass=$((pass + 1)); echo "--- PASS: $name (${d}s)"; summary+=("PASS  $name  ${d}s")
  else
    failed=$((failed + 1)); echo "--- FAIL: $name (${d}s, rc=$rc)"; summary+=("FAIL  $name  ${d}s  rc=$rc")
  fi
done
echo "=== lab summary (kernel $(uname -r), accel ${MOOR_LAB_ACCEL_USED:-?})"
printf '  %s\n' "${summary[@]}"
echo "lab: $pass passed, $failed failed"
[ $failed = 0 ]
