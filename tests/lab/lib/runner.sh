#!/bin/bash
# tests/lab/lib/runner.sh - runs scenarios INSIDE the lab guest (lab.sh scenario starts it):
#   runner.sh [--timeout S] NAME...
# Each scenario runs as `bash scenarios/NAME.sh` under its own time limit. After each one the
# runner checks that nothing is left behind (devices, sessions, maps, controllers, targets); a
# scenario that leaves something fails, and the runner cleans up so the next one starts clean.
# Around all scenarios runs the secret watcher (tests/lab/guest/secretwatch.py, docs/lab.md):
# started before the first, it records the argv + environment of every process (proc
# connector exec events + a /proc sweep) and copies the logs scenarios register (lab_log);
# the scenarios' stdout/stderr are teed to it too. After the last scenario its check fails
# the run if a secret registered with lab_secret is found anywhere (a FAIL line "secretwatch").
# MOOR_LAB_SECRETWATCH=0 turns it off (says so loudly).
# Prints "--- PASS/FAIL: NAME (Ns)" per scenario, the "secretwatch: ..." summary line and a
# closing "lab: N passed, N failed".
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "${BASH_SOURCE[0]}")/targets.sh"
set +eE
trap - ERR EXIT

limit=600
if [ "${1:-}" = --timeout ]; then limit=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: runner.sh [--timeout S] NAME..." >&2; exit 2; }

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }

# ------------------------------------------------------------------------------ secretwatch
SW=$LAB_DIR/guest/secretwatch.py
SW_DIR=$LAB_STATE/secretwatch
SW_PID="" SW_LINE=""
sw_start() { # start the watcher; 1 when it could not start
  rm -rf "$SW_DIR"
  install -d -m 0700 "$SW_DIR" "$SW_DIR/out"
  (umask 077; : > "$LAB_STATE/secrets"; : > "$LAB_STATE/logs.list")
  python3 "$SW" watch --dir "$SW_DIR" --logs "$LAB_STATE/logs.list" 2>"$SW_DIR/watch.err" &
  SW_PID=$!
  local end=$((SECONDS + 60))
  while [ ! -e "$SW_DIR/ready" ]; do
    if ! kill -0 "$SW_PID" 2>/dev/null || [ $SECONDS -ge $end ]; then
      echo "secretwatch: the watcher did not start: $(cat "$SW_DIR/watch.err")"
      kill "$SW_PID" 2>/dev/null; SW_PID=""
      return 1
    fi
    sleep 0.1
  done
  echo "secretwatch: watching ($(cat "$SW_DIR/ready"))"
}
sw_stop_check() { # stop the watcher, run the check; 1 on a leak or a broken watcher
  local rc=0 n=0
  if [ -n "$SW_PID" ]; then
    kill -TERM "$SW_PID" 2>/dev/null
    while kill -0 "$SW_PID" 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
    wait "$SW_PID"; rc=$?
    [ $rc = 0 ] || echo "secretwatch: the watcher exited with $rc: $(tail -n 5 "$SW_DIR/watch.err")"
  fi
  python3 "$SW" check --final --dir "$SW_DIR" --secrets "$LAB_STATE/secrets" \
    --logs "$LAB_STATE/logs.list" --report "$SW_DIR/report.json" > "$SW_DIR/check.out" 2>&1 || rc=1
  grep -v '^secretwatch: [0-9]* execs observed' "$SW_DIR/check.out"
  SW_LINE=$(grep '^secretwatch: [0-9]* execs observed' "$SW_DIR/check.out" | tail -n 1)
  [ -n "$SW_LINE" ] || { SW_LINE="secretwatch: the check did not finish"; rc=1; }
  return $rc
}
sw_tee_pids=()
sw_run() { # NAME: the scenario, its stdout/stderr also teed to $SW_DIR/out/NAME.{out,err}
  local o e rc f=$SW_DIR/out/${1//\//_}
  exec {o}> >(tee -a "$f.out")
  sw_tee_pids=($!)
  exec {e}> >(tee -a "$f.err" >&2)
  sw_tee_pids+=($!)
  timeout -k 10 "$limit" bash "$LAB_DIR/scenarios/$1.sh" >&"$o" 2>&"$e" {o}>&- {e}>&-
  rc=$?
  exec {o}>&- {e}>&-
  # the tees end when the scenario's last writer is gone (a daemon it started may keep one)
  local p n=0
  for p in "${sw_tee_pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
  done
  return $rc
}

pass=0 failed=0 summary=()
sw_on=1
if [ "${MOOR_LAB_SECRETWATCH:-1}" = 0 ]; then
  sw_on=0
  echo "secretwatch: DISABLED (MOOR_LAB_SECRETWATCH=0): no check for leaked secrets in this run"
elif ! sw_start; then
  sw_on=0
  failed=$((failed + 1)); summary+=("FAIL  secretwatch  (the watcher did not start)")
fi

lab_baseline
for name in "$@"; do
  echo "=== RUN   $name"
  t0=$EPOCHREALTIME
  if [ $sw_on = 1 ]; then
    sw_run "$name"
  else
    timeout -k 10 "$limit" bash "$LAB_DIR/scenarios/$name.sh"
  fi
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
if [ $sw_on = 1 ]; then
  echo "=== secretwatch check"
  if ! sw_stop_check; then
    failed=$((failed + 1)); summary+=("FAIL  secretwatch  (a secret leaked, or the watcher saw nothing: see above)")
  fi
fi
echo "=== lab summary (kernel $(uname -r), accel ${MOOR_LAB_ACCEL_USED:-?})"
printf '  %s\n' "${summary[@]}"
[ -z "$SW_LINE" ] || echo "$SW_LINE"
echo "lab: $pass passed, $failed failed"
[ $failed = 0 ]
