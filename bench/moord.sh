#!/usr/bin/env bash
# moord vs the incumbents, one run, same machine, side by side:
#   moord `ping` and `exec /bin/true` (Rust blocking client, one connection per caller),
#   a plain fork/exec floor (same Rust harness, std::process::Command),
#   sudo + oslo-rootwrap, the rootwrap daemon (shared Client / Client per thread),
#   oslo.privsep (`run_true()` = processutils.execute('/bin/true'), `noop()`),
# each with 1 and 8 concurrent callers. Callers run as an unprivileged user
# (moorbench, created if missing) so SO_PEERCRED, HMAC and sudo are the real paths;
# moord runs as root with a key file and the audit log on.
#
#   sudo bench/moord.sh            (must be root: it starts moord, writes sudoers)
#
# Environment:
#   QUICK=1                 a fifth of the calls (smoke test)
#   ONLY=moord|incumbents   run one side only
#   MOOR_BIN_DIR=DIR        use prebuilt moord and moord_bench from DIR (no cargo build)
#   MOORD_TOML_EXTRA='k=v'  extra lines for moord's config (e.g. max_concurrent_ops = 4)
#   BENCH_UID=1500          uid for the moorbench user when it has to be created
#   MOOR_BENCH_VENV=DIR     venv for oslo.rootwrap/privsep (default target/moord-bench-venv,
#                           or /var/tmp/moor-bench-venv when the caller cannot reach target/)
# Prints a text table, the same table as Markdown, goals MET/NOT MET; raw results in
# target/bench/moord.json. Sudoers entries live in /etc/sudoers.d/moor-bench for the
# run only (removed on exit).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/moord.sh: run as root (it starts moord and writes a sudoers file)" >&2; exit 2; }

quick=${QUICK:-0}
only=${ONLY:-all}
scale() { if [ "$quick" = 1 ]; then echo $(( ($1 + 4) / 5 )); else echo "$1"; fi; }

# --- tools ---------------------------------------------------------------------------
if ! command -v sudo >/dev/null; then
  echo "installing sudo" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null
fi
py=/usr/bin/python3   # the system interpreter: the bench user must be able to run it
[ -x "$py" ] || py=$(command -v python3)

# --- binaries ------------------------------------------------------------------------
if [ -n "${MOOR_BIN_DIR:-}" ]; then
  bin=$MOOR_BIN_DIR
else
  (cd "$repo" && cargo build -q --release -p moor-privhelper --bin moord -p moor-bench --bin moord_bench)
  bin=${CARGO_TARGET_DIR:-$repo/target}/release
fi
for b in moord moord_bench; do [ -x "$bin/$b" ] || { echo "no $bin/$b" >&2; exit 2; }; done

# --- the unprivileged caller ------------------------------------------------------------
user=moorbench
if ! id -u "$user" >/dev/null 2>&1; then
  want=${BENCH_UID:-1500}
  if getent passwd "$want" >/dev/null || getent group "$want" >/dev/null; then
    useradd -M -d /nonexistent -s /usr/sbin/nologin "$user"
  else
    groupadd -g "$want" "$user"
    useradd -u "$want" -g "$want" -M -d /nonexistent -s /usr/sbin/nologin "$user"
  fi
fi
uid=$(id -u "$user"); gid=$(id -g "$user")
# The caller runs the bench binary, the Python driver and the venv's python: they
# must be reachable for it (a repo under a 0700 home is not).
can_reach() { setpriv --reuid="$uid" --regid="$gid" --init-groups -- test -r "$1"; }

# --- Python side: oslo.rootwrap 7.10.0, oslo.privsep 3.12.0 (the reference versions) --
venv=${MOOR_BENCH_VENV:-$repo/target/moord-bench-venv}
if ! can_reach "$(dirname "$venv")"/.; then venv=/var/tmp/moor-bench-venv; fi
if [ "$only" != moord ]; then
  if ! "$venv/bin/python" -c 'import oslo_rootwrap, oslo_privsep, oslo_concurrency' 2>/dev/null; then
    echo "creating $venv" >&2
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q oslo.rootwrap==7.10.0 oslo.privsep==3.12.0 oslo.concurrency
  fi
  # The root side (privsep-helper under sudo, which resets the environment) imports
  # the privbench context from here.
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$(dirname "$venv")/moor-privbench" > "$site/moor_privbench.pth"
  # privsep-helper runs as root and imports the context from here: root-owned copy.
  rm -rf "$(dirname "$venv")/moor-privbench"
  cp -r "$repo/bench/privsep" "$(dirname "$venv")/moor-privbench"
  chmod -R go-w,a+rX "$(dirname "$venv")/moor-privbench"
fi

# --- scratch dir, moord, rootwrap config, sudoers -------------------------------------
work=$(mktemp -d /tmp/moord-bench.XXXXXX)
chmod 0755 "$work"
sudoers=/etc/sudoers.d/moor-bench
moord_pid=
cleanup() {
  if [ -n "$moord_pid" ] && kill -0 "$moord_pid" 2>/dev/null; then
    kill -TERM "$moord_pid" 2>/dev/null || true
    wait "$moord_pid" 2>/dev/null || true
  fi
  rm -f "$sudoers"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -m 0755 "$work/filters" "$work/rootwrap.d" "$work/home" "$work/bin"
install -m 0755 "$bin/moord_bench" "$work/bin/moord_bench"
install -m 0644 "$repo/bench/moord_incumbents.py" "$work/bin/moord_incumbents.py"
chown "$uid:$gid" "$work/home"
printf '[Filters]\ntrue: CommandFilter, /bin/true, root\n' > "$work/filters/bench.filters"
cp "$work/filters/bench.filters" "$work/rootwrap.d/bench.filters"
chmod 0644 "$work/filters/bench.filters" "$work/rootwrap.d/bench.filters"
head -c 32 /dev/urandom > "$work/moord.key"
chown "root:$gid" "$work/moord.key"; chmod 0640 "$work/moord.key"
cat > "$work/moord.toml" <<EOF
socket_mode = "0660"
socket_group = $gid
${MOORD_TOML_EXTRA:-}
EOF
chmod 0644 "$work/moord.toml"
cat > "$work/rootwrap.conf" <<EOF
[DEFAULT]
filters_path=$work/rootwrap.d
exec_dirs=/sbin,/usr/sbin,/bin,/usr/bin
use_syslog=False
daemon_timeout=120
EOF
chmod 0644 "$work/rootwrap.conf"

if [ "$only" != moord ]; then
  cat > "$work/sudoers" <<EOF
# bench/moord.sh: removed when the run ends
$user ALL=(root) NOPASSWD: $venv/bin/oslo-rootwrap $work/rootwrap.conf *, $venv/bin/oslo-rootwrap-daemon $work/rootwrap.conf, $venv/bin/privsep-helper --privsep_context privbench.default --privsep_sock_path *
EOF
  visudo -cqf "$work/sudoers" >/dev/null
  install -m 0440 "$work/sudoers" "$sudoers"
fi

sock=$work/moord.sock
"$bin/moord" --config "$work/moord.toml" --socket "$sock" --filters-path "$work/filters" \
  --exec-dirs /bin,/usr/bin --allow-uid "$uid" --grant "uid:$uid=ping,exec" \
  --key-file "$work/moord.key" --audit-log "$work/audit.log" 2>"$work/moord.log" &
moord_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "moord did not start:" >&2; cat "$work/moord.log" >&2; exit 1; }

# --- measurements ------------------------------------------------------------------------
results=$work/results.jsonl
: > "$results"
as_user() {
  (cd "$work" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home" LANG=C.UTF-8 \
    setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@")
}
audit_count() { if [ -f "$work/audit.log" ]; then wc -l < "$work/audit.log"; else echo 0; fi; }
# run NAME CMD…: one JSON line tagged with NAME (stderr kept for the error report),
# with the range of audit records the case produced (moord cases)
run() {
  local name=$1; shift
  local out a0 a1
  printf '  %-28s' "$name" >&2
  a0=$(audit_count)
  if ! out=$(as_user "$@" 2>"$work/err.$name"); then
    echo " FAILED" >&2; tail -n 20 "$work/err.$name" >&2
    out='{"errors":1,"first_error":"the case failed to run","calls":0}'
  fi
  a1=$(audit_count)
  "$py" - "$name" "$out" "$a0" "$a1" "$work/audit.log" >>"$results" <<'PY'
import json, statistics, sys
r = json.loads(sys.argv[2]); r["case"] = sys.argv[1]
a0, a1 = int(sys.argv[3]), int(sys.argv[4])
if a1 > a0:
    # moord's own view of the same requests: handle_request start to audit record
    with open(sys.argv[5]) as f:
        recs = [json.loads(l) for i, l in enumerate(f) if a0 <= i < a1]
    d = sorted(x["duration_us"] for x in recs)
    r["audit_records"] = len(recs)
    r["audit_outcomes"] = {o: sum(1 for x in recs if x["outcome"] == o) for o in sorted({x["outcome"] for x in recs})}
    r["server_median_us"] = statistics.median(d)
    r["server_p99_us"] = d[round((len(d) - 1) * 0.99)]
print(json.dumps(r))
PY
  "$py" - "$out" >&2 <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"n={r.get('calls',0):>6}  median {r.get('median_us',0)/1e3:9.3f} ms  p99 {r.get('p99_us',0)/1e3:9.3f} ms  {r.get('calls_per_s',0):9.0f}/s"
      + (f"  errors {r['errors']}: {r.get('first_error')}" if r.get('errors') else ""))
PY
}
mb() { run "$1" "$work/bin/moord_bench" "${@:2}" --socket "$sock" --key "$work/moord.key"; }
inc() { run "$1" "$venv/bin/python" "$work/bin/moord_incumbents.py" "${@:2}" --venv "$venv" --conf "$work/rootwrap.conf" --privsep-dir "$(dirname "$venv")/moor-privbench"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench/moord.sh: $(nproc) CPUs, load $load_before; caller $user (uid $uid); moord pid $moord_pid" >&2
if [ "$only" != incumbents ]; then
  # The floor right next to moord's exec, so both see the same machine.
  mb fork-1           fork    --threads 1 --count "$(scale 4000)" --secs 8 --warmup 20
  mb moord-exec-1     exec    --threads 1 --count "$(scale 4000)" --secs 8 --warmup 20
  mb moord-ping-1     ping    --threads 1 --count "$(scale 50000)" --secs 5 --warmup 200
  mb moord-connect-1  connect --threads 1 --count "$(scale 4000)" --secs 5 --warmup 20
  mb fork-8           fork    --threads 8 --count "$(scale 8000)" --secs 8 --warmup 20
  mb moord-exec-8     exec    --threads 8 --count "$(scale 8000)" --secs 8 --warmup 20
  mb moord-ping-8     ping    --threads 8 --count "$(scale 200000)" --secs 5 --warmup 200
fi
if [ "$only" != moord ]; then
  inc rootwrap-cli-1       rootwrap-cli       --threads 1 --count "$(scale 100)"  --secs 10 --warmup 3
  inc rootwrap-cli-8       rootwrap-cli       --threads 8 --count "$(scale 100)"  --secs 10 --warmup 1
  inc rootwrap-daemon-1    rootwrap-daemon    --threads 1 --count "$(scale 2000)" --secs 8 --warmup 20
  inc rootwrap-daemon-8    rootwrap-daemon    --threads 8 --count "$(scale 2000)" --secs 8 --warmup 20
  inc rootwrap-daemon-pt-8 rootwrap-daemon-pt --threads 8 --count "$(scale 2000)" --secs 8 --warmup 20
  inc privsep-true-1       privsep-true       --threads 1 --count "$(scale 2000)" --secs 8 --warmup 20
  inc privsep-true-8       privsep-true       --threads 8 --count "$(scale 2000)" --secs 8 --warmup 20
  inc privsep-noop-1       privsep-noop       --threads 1 --count "$(scale 5000)" --secs 5 --warmup 20
  inc privsep-noop-8       privsep-noop       --threads 8 --count "$(scale 5000)" --secs 5 --warmup 20
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
audit_lines=$(wc -l < "$work/audit.log" 2>/dev/null || echo 0)
kill -0 "$moord_pid" 2>/dev/null || { echo "moord died during the run:" >&2; tail -n 20 "$work/moord.log" >&2; exit 1; }

# --- report -----------------------------------------------------------------------------
mkdir -p "$repo/target/bench"
meta=$("$py" - <<PY
import json, os, platform, subprocess
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return None
busy = sorted({p for p in os.listdir('/proc') if p.isdigit() and os.path.exists(f'/proc/{p}/comm')
               and open(f'/proc/{p}/comm').read().strip() in ('rustc', 'cc1', 'cc1plus', 'ld', 'cargo')})
print(json.dumps({
    "date": out("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"), "kernel": platform.release(), "cpus": os.cpu_count(),
    "cpu_model": next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), None),
    "load_before": "$load_before", "load_after": "$load_after", "compilers_running_at_end": len(busy),
    "sudo": out("sudo", "-V"), "python": out("$venv/bin/python", "--version") if os.path.exists("$venv/bin/python") else None,
    "moord": out("$bin/moord", "--version"), "caller_uid": $uid, "audit_lines": int("$audit_lines" or 0),
    "moord_config_extra": """${MOORD_TOML_EXTRA:-}""".strip(), "quick": "$quick" == "1",
}))
PY
)
"$py" - "$results" "$repo/target/bench/moord.json" "$meta" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = json.loads(sys.argv[3])
by = {r["case"]: r for r in rows}

def get(case, key):
    r = by.get(case)
    if not r or not r.get("calls"):
        return None
    return r.get(key)

def ms(v):
    if v is None:
        return "—"
    return f"{v / 1e3:.3f}" if v < 1e5 else f"{v / 1e3:.0f}"

def rate(v):
    return "—" if v is None else f"{v:,.0f}"

# (label, c=1 case, c=8 case, compared with)
table = [
    ("moord `ping`", "moord-ping-1", "moord-ping-8", None),
    ("moord `exec /bin/true`", "moord-exec-1", "moord-exec-8", None),
    ("moord connect + handshake (SO_PEERCRED, HMAC both ways)", "moord-connect-1", None, None),
    ("fork/exec floor: Rust `Command::output()` of /bin/true", "fork-1", "fork-8", "moord-exec-1"),
    ("sudo + oslo-rootwrap /bin/true", "rootwrap-cli-1", "rootwrap-cli-8", "moord-exec-1"),
    ("rootwrap daemon, one shared `Client`", "rootwrap-daemon-1", "rootwrap-daemon-8", "moord-exec-1"),
    ("rootwrap daemon, one `Client` (and daemon) per thread", None, "rootwrap-daemon-pt-8", "moord-exec-1"),
    ("privsep `run_true()`: processutils.execute('/bin/true')", "privsep-true-1", "privsep-true-8", "moord-exec-1"),
    ("privsep `noop()`", "privsep-noop-1", "privsep-noop-8", "moord-ping-1"),
]
head = ["path", "c=1 median / p99 (ms)", "c=1 calls/s", "c=8 median / p99 (ms)", "c=8 calls/s", "c=1 median vs moord"]
lines = []
for label, c1, c8, vs in table:
    if c1 not in by and c8 not in by:
        continue
    ratio = "—"
    if vs and c1 and get(c1, "median_us") and get(vs, "median_us"):
        ratio = f"{get(c1, 'median_us') / get(vs, 'median_us'):.2f}× {'exec' if 'exec' in vs else 'ping'}"
    cell = lambda c: "—" if not c or get(c, "median_us") is None else f"{ms(get(c, 'median_us'))} / {ms(get(c, 'p99_us'))}"
    lines.append([label, cell(c1), rate(get(c1, "calls_per_s") if c1 else None), cell(c8), rate(get(c8, "calls_per_s") if c8 else None), ratio])

widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
print()
print("  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)))
for l in lines:
    print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(l)))
notes = []
for case, what in (("rootwrap-daemon-1", "rootwrap daemon"), ("privsep-true-1", "privsep daemon")):
    if get(case, "first_call_ms") is not None:
        notes.append(f"{what} start (first call) {get(case, 'first_call_ms'):.0f} ms")
errs = [f"{r['case']}: {r['errors']} errors ({r.get('first_error')})" for r in rows if r.get("errors")]
print()
print(f"{meta['cpus']} CPUs ({meta['cpu_model']}), kernel {meta['kernel']}, load {meta['load_before']} -> {meta['load_after']}"
      f"{'; ' + str(meta['compilers_running_at_end']) + ' compiler processes running at the end (numbers may be noisy)' if meta['compilers_running_at_end'] else ''}")
if notes:
    print("; ".join(notes))
for e in errs:
    print("ERRORS", e)

goals = []
def goal(name, ok, detail):
    goals.append({"goal": name, "met": ok, "detail": detail})
ex1, fk1, pg1 = get("moord-exec-1", "median_us"), get("fork-1", "median_us"), get("moord-ping-1", "median_us")
rd1 = get("rootwrap-daemon-1", "median_us")
pg8, ex8 = get("moord-ping-8", "calls_per_s"), get("moord-exec-8", "calls_per_s")
moord_errors = sum(by.get(c, {}).get("errors", 0) or 0 for c in ("moord-ping-1", "moord-ping-8", "moord-exec-1", "moord-exec-8"))
if ex1 and fk1:
    goal("moord exec median <= 1.5x fork/exec floor", ex1 <= 1.5 * fk1, f"{ex1 / 1e3:.3f} ms vs floor {fk1 / 1e3:.3f} ms = {ex1 / fk1:.2f}x")
if ex1 and rd1:
    goal("moord exec >= 5x faster than the rootwrap daemon", rd1 / ex1 >= 5, f"daemon {rd1 / 1e3:.3f} ms / moord {ex1 / 1e3:.3f} ms = {rd1 / ex1:.1f}x")
if pg1:
    goal("moord ping median <= 50 us", pg1 <= 50, f"{pg1:.1f} us")
if pg8:
    goal("8 callers >= 20,000 pings/s", pg8 >= 20000, f"{pg8:,.0f}/s")
if ex8:
    goal("8 callers >= 1,000 execs/s", ex8 >= 1000, f"{ex8:,.0f}/s")
if moord_errors:
    goal("no moord errors", False, f"{moord_errors} failed calls")
if ex1 and fk1 and rd1:
    print(f"ceiling for the 5x goal with this floor: rootwrap daemon / fork floor = {rd1 / fk1:.1f}x "
          f"(moord exec must stay within {rd1 / 5 / fk1:.2f}x of the floor)")
print()
print("moord's own view (audit duration_us, whole microseconds: handle_request start -> audit record written):")
for case in ("moord-ping-1", "moord-exec-1", "moord-ping-8", "moord-exec-8"):
    r = by.get(case)
    if r and r.get("server_median_us") is not None:
        print(f"  {case:14} server median {r['server_median_us']:8.0f} us   client median {r['median_us']:8.1f} us   "
              f"transport + client {r['median_us'] - r['server_median_us']:7.1f} us   audit records {r['audit_records']} {r['audit_outcomes']}")
if ex1 and fk1:
    print(f"  exec overhead over the floor (client medians): {ex1 - fk1:.0f} us")
print()
for g in goals:
    print(f"{'MET    ' if g['met'] else 'NOT MET'}  {g['goal']}: {g['detail']}")

print()
print("Markdown:")
print()
print("| " + " | ".join(head) + " |")
print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
for l in lines:
    print("| " + " | ".join(l) + " |")
print()
print(f"*{meta['cpus']} vCPU {meta['cpu_model']}, kernel {meta['kernel']}; callers run as an unprivileged user; "
      f"moord with HMAC key and audit log; load {meta['load_before']} -> {meta['load_after']}; {meta['sudo']}, {meta['python']}, oslo.rootwrap 7.10.0, oslo.privsep 3.12.0. "
      + ("; ".join(notes) + ". " if notes else "")
      + "Goals: " + ", ".join(f"{g['goal']} {'MET' if g['met'] else 'NOT MET'} ({g['detail']})" for g in goals) + ".*")

doc = {"meta": meta, "results": rows, "goals": goals, "markdown_rows": lines, "markdown_head": head}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
# Keep every run too: on a shared, noisy machine compare runs and report the quietest.
stamped = sys.argv[2].replace(".json", "-" + meta["date"].replace(":", "") + ".json")
json.dump(doc, open(stamped, "w"), indent=1)
print()
print(f"raw results: {sys.argv[2]} (and {stamped})")
PY
