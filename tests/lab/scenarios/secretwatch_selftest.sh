#!/bin/bash
# secretwatch_selftest: the runner's secret watcher (tests/lab/guest/secretwatch.py) can fail.
# Random fake secrets, registered with `lab_secret --planted` (found = expected, never a leak
# of the run), are put in the argv of a 0.2 s process, in the environment of another, in a
# registered log that is deleted afterwards, and in this scenario's stdout; the check, run
# now, must report each one exactly there, without printing it. A secret carried only by an
# iscsiadm this script runs itself (a harness tool) must be exempt, not a leak. Then the same
# evidence checked against a registry in which the planted secrets are real ones must make
# the check exit 1 with a LEAK line per place.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../lib/targets.sh"
SW=$LAB_DIR/guest/secretwatch.py
SW_DIR=$LAB_STATE/secretwatch
me=$(basename "$0" .sh)
[ -e "$SW_DIR/ready" ] || fail "no secret watcher is running: run this with tests/lab/lab.sh scenario (and MOOR_LAB_SECRETWATCH not 0)"
W=$(mktemp -d /tmp/swselftest.XXXXXX)
lab_defer rm -rf "$W"
tok() { head -c 12 /dev/urandom | base64 | tr '+/' 'xy'; }
A=planted-argv-$(tok) E=planted-env-$(tok) L=planted-log-$(tok) O=planted-out-$(tok)
H=harness-only-$(tok)
lab_secret --planted "$A" "$E" "$L" "$O"
lab_secret "$H"

(exec -a "sleep-$A" sleep 0.2)                   # 1. argv (argv[0]) of a 0.2 s process
(export SW_SELFTEST_TOKEN=$E; exec sleep 0.2)    # 2. environment (only) of a 0.2 s process
lab_log "$W/planted.log"                         # 3. a registered log ...
printf 'a line\nplanted: %s\n' "$L" > "$W/planted.log"
echo "planted in this scenario's stdout: $O"     # 4. the scenario's output
# 5. the scenario's own iscsiadm with a secret in its argv (no such node: it fails at once)
expect_rc nz iscsiadm -m node -T iqn.2003-01.org.moor.lab:swselftest-none -p 127.0.0.1:3260 \
  -o update -n node.session.auth.password -v "$H" 2>/dev/null

# only this scenario's secrets: a leak of another scenario is the final check's business
(umask 077; awk -F'\t' -v me="$me" '$3 == me' "$LAB_STATE/secrets" > "$W/secrets")
assert_eq 5 "$(wc -l < "$W/secrets")" "secrets registered by $me"
sw_check() { # REGISTRY : run the check on it (report in $W/report.json, output in $W/check.out)
  python3 "$SW" check --dir "$SW_DIR" --secrets "$1" --logs "$LAB_STATE/logs.list" \
    --report "$W/report.json" > "$W/check.out" 2>&1
}
sw_verdict() { # print what is wrong with the report (nothing: all as expected)
  python3 - "$W/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["secrets"]            # in registry order: A E L O (planted), H
want = [("argv", "A (argv)"), ("env", "E (environment)"), ("log", "L (registered log)"),
        ("output", "O (scenario stdout)")]
bad = []
for e, (cls, name) in zip(s[:4], want):
    found = [h for h in e["hits"] if not h["exempt"]]
    if not any(h["class"] == cls for h in found):
        bad.append("%s: no %s hit (hits: %s)" % (name, cls, [h["where"] for h in found]))
    if any(h["class"] != cls for h in found):
        bad.append("%s: hits elsewhere too: %s" % (name, [h["where"] for h in found if h["class"] != cls]))
h = s[4]["hits"]
if not any(x["exempt"] and "iscsiadm" in x["exempt"] for x in h):
    bad.append("H: not seen in the exempt iscsiadm (hits: %s)" % [x["where"] for x in h])
if any(not x["exempt"] for x in h):
    bad.append("H: a leak: %s" % [x["where"] for x in h if not x["exempt"]])
if r["leaks"]:
    bad.append("%d leaks reported" % r["leaks"])
print("\n".join(bad))
PY
}
sw_ok() { sw_check "$W/secrets" && [ -z "$(sw_verdict)" ]; }
if ! wait_until 30 sw_ok; then
  cat "$W/check.out" >&2
  fail "the check did not report the planted secrets as expected: $(sw_verdict)"
fi
grep -v '^secretwatch: mode' "$W/check.out" | sed 's/^/  /'
log "check during the run: all 4 planted secrets found where they were put; the harness iscsiadm exempt"

rm "$W/planted.log"                               # as moord__stop deletes the audit log
sw_ok || fail "the planted log is no longer found after its deletion: $(sw_verdict)"
log "the registered log, deleted, is still searched (the watcher's copy)"

# no secret value in what the check prints (grep -f: the values go through a pipe, no argv)
printf '%s\n' "$A" "$E" "$L" "$O" "$H" > "$W/values"
! grep -qF -f "$W/values" "$W/check.out" "$W/report.json" || fail "the check printed a secret"

# the planted secrets as real ones: 4 leaks, exit 1
(umask 077; sed 's/^planted\t/secret\t/' "$W/secrets" > "$W/secrets.real")
rc=0; sw_check "$W/secrets.real" || rc=$?
assert_eq 1 "$rc" "exit status of the check with leaked secrets"
n=$(grep -c '^secretwatch: LEAK of secret' "$W/check.out" || true)
[ "$n" -ge 4 ] || fail "expected a LEAK line for each of the 4 places, got $n: $(cat "$W/check.out")"
for cls in "argv of sleep" "environment variable SW_SELFTEST_TOKEN of sleep" "log $W/planted.log" \
    "scenario output $me.out"; do
  grep -q "^secretwatch: LEAK of secret #[0-9]* ($me).* in $cls" "$W/check.out" \
    || fail "no LEAK line naming '$cls': $(cat "$W/check.out")"
done
! grep -qF -f "$W/values" "$W/check.out" "$W/report.json" || fail "the check printed a secret"
grep '^secretwatch: LEAK' "$W/check.out" | sed 's/^/  /'
log "the same evidence with the secrets registered as real ones: check exit 1, $n LEAK lines, no secret printed"
