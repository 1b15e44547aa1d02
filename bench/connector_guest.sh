#!/bin/bash
# bench/connector_guest.sh - runs INSIDE the lab guest (bench/connector.sh starts it):
# iSCSI attach + detach latency (single path) and the 16-volume concurrent attach and
# detach, moor (CLI as the unprivileged caller, through moord) vs os-brick (as root,
# privileged calls in-process), same LIO target, same guest, one run.
# shellcheck source=tests/lab/lib/targets.sh
. "$(dirname "$0")/../tests/lab/lib/targets.sh"
# shellcheck source=tests/lab/lib/moord.sh
. "$LAB_DIR/lib/moord.sh"
set -euo pipefail
ITER=${MOOR_BENCH_ITER:-5}
NVOL=${MOOR_BENCH_VOLUMES:-16}
WHEELS=${MOOR_BENCH_WHEELS:?}
OUT=${MOOR_BENCH_OUT:?}
P=127.0.0.1:3260
W=$(mktemp -d /tmp/bench.XXXXXX) && chmod 0755 "$W"

python3 -m venv /tmp/osb >/dev/null
/tmp/osb/bin/pip install -q --no-index --find-links "$WHEELS" os-brick
log "os-brick $(/tmp/osb/bin/python -c 'import importlib.metadata as m; print(m.version("os-brick"))') installed from wheels"
moord_start
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", (b-a)*1000}'; }

# --- single path: one target, one LUN; ITER attach+detach cycles each
IQN=iqn.2003-01.org.moor.lab:bench
lio_target_create "$IQN" --portal "$P"
lio_lun_add "$IQN" 0 16 --type ramdisk
printf '{"target_portal": "%s", "target_iqn": "%s", "target_lun": 0}\n' "$P" "$IQN" > "$W/single.json"
# One warm-up each (page cache, first login), not measured.
moor_caller connect iscsi --properties "$W/single.json" > "$W/i.json" 2>/dev/null
moor_caller disconnect iscsi --properties "$W/single.json" --device-info "$W/i.json" >/dev/null 2>&1
/tmp/osb/bin/python "$(dirname "$0")/osbrick_driver.py" single "$W/single.json" 1 >/dev/null 2>"$W/osb.err"
moor_a=() moor_d=()
for _ in $(seq "$ITER"); do
  t0=$EPOCHREALTIME
  moor_caller connect iscsi --properties "$W/single.json" > "$W/i.json" 2>/dev/null
  t1=$EPOCHREALTIME
  moor_caller disconnect iscsi --properties "$W/single.json" --device-info "$W/i.json" >/dev/null 2>&1
  t2=$EPOCHREALTIME
  moor_a+=("$(ms "$t0" "$t1")"); moor_d+=("$(ms "$t1" "$t2")")
done
lib() { runuser -u moortest -- "$BIN/connector_bench" /run/moor/moord.sock /etc/moor/moord.key "$@"; }
lib_single=$(lib single "$W/single.json" "$ITER")
osb_single=$(/tmp/osb/bin/python "$(dirname "$0")/osbrick_driver.py" single "$W/single.json" "$ITER" 2>>"$W/osb.err")
assert_no_leftovers
lio_teardown
log "single path: moor CLI attach ${moor_a[*]} ms, detach ${moor_d[*]} ms; moor library $lib_single; os-brick $osb_single"

# --- NVOL volumes at once (one target each, as Cinder's LIO driver exports them)
for i in $(seq "$NVOL"); do
  lio_target_create "iqn.2003-01.org.moor.lab:b$i" --portal "$P"
  lio_lun_add "iqn.2003-01.org.moor.lab:b$i" 0 8 --type ramdisk
  printf '{"target_portal": "%s", "target_iqn": "iqn.2003-01.org.moor.lab:b%s", "target_lun": 0}\n' "$P" "$i" > "$W/b$i.json"
done
pids=()
t0=$EPOCHREALTIME
for i in $(seq "$NVOL"); do
  moor_caller connect iscsi --properties "$W/b$i.json" > "$W/bi$i.json" 2>"$W/be$i.err" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t1=$EPOCHREALTIME
pids=()
for i in $(seq "$NVOL"); do
  moor_caller disconnect iscsi --properties "$W/b$i.json" --device-info "$W/bi$i.json" >/dev/null 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t2=$EPOCHREALTIME
assert_no_leftovers
moor_batch_a=$(ms "$t0" "$t1") moor_batch_d=$(ms "$t1" "$t2")
lib_batch=$(lib batch $(for i in $(seq "$NVOL"); do echo "$W/b$i.json"; done))
assert_no_leftovers
osb_batch=$(/tmp/osb/bin/python "$(dirname "$0")/osbrick_driver.py" batch $(for i in $(seq "$NVOL"); do echo "$W/b$i.json"; done) 2>>"$W/osb.err")
assert_no_leftovers
lio_teardown
log "$NVOL volumes: moor CLI attach $moor_batch_a ms, detach $moor_batch_d ms; moor library $lib_batch; os-brick $osb_batch"

python3 - "$OUT" "$ITER" "$NVOL" "${moor_a[*]}" "${moor_d[*]}" "$osb_single" "$moor_batch_a" "$moor_batch_d" "$osb_batch" "$(uname -r)" "$lib_single" "$lib_batch" <<'PY'
import json, statistics, sys
out, it, nvol, ma, md, osb1, mba, mbd, osbb, kernel, lib1, libb = sys.argv[1:]
osb1, osbb, lib1, libb = json.loads(osb1), json.loads(osbb), json.loads(lib1), json.loads(libb)
med = lambda xs: statistics.median(float(x) for x in xs)
r = {"kernel": kernel, "iterations": int(it), "volumes": int(nvol),
     "single": {"moor_attach_ms": med(ma.split()), "moor_detach_ms": med(md.split()),
                "moor_lib_attach_ms": med(lib1["attach_ms"]), "moor_lib_detach_ms": med(lib1["detach_ms"]),
                "osbrick_attach_ms": med(osb1["attach_ms"]), "osbrick_detach_ms": med(osb1["detach_ms"])},
     "batch": {"moor_attach_ms": float(mba), "moor_detach_ms": float(mbd),
               "moor_lib_attach_ms": libb["attach_ms"], "moor_lib_detach_ms": libb["detach_ms"],
               "osbrick_attach_ms": osbb["attach_ms"], "osbrick_detach_ms": osbb["detach_ms"],
               "osbrick_errors": osbb["errors"]}}
json.dump(r, open(out, "w"), indent=1)
s, b = r["single"], r["batch"]
rows = [("single-path attach (median)", s["moor_lib_attach_ms"], s["moor_attach_ms"], s["osbrick_attach_ms"]),
        ("single-path detach (median)", s["moor_lib_detach_ms"], s["moor_detach_ms"], s["osbrick_detach_ms"]),
        (f"{nvol} volumes attached at once", b["moor_lib_attach_ms"], b["moor_attach_ms"], b["osbrick_attach_ms"]),
        (f"{nvol} volumes detached at once", b["moor_lib_detach_ms"], b["moor_detach_ms"], b["osbrick_detach_ms"])]
print("| | moor library | moor CLI | os-brick (library) | os-brick / moor library | os-brick / moor CLI |")
print("|---|---:|---:|---:|---:|---:|")
for name, l, m, o in rows:
    print(f"| {name} | {l:.0f} ms | {m:.0f} ms | {o:.0f} ms | {o / l:.1f}× | {o / m:.1f}× |")
PY
