#!/usr/bin/env bash
# Filter engine benchmark: moor vs oslo.rootwrap 7.10.0, same filter files (cinder's
# volume.filters + nova's compute.filters, current and queens), same command corpus,
# same machine, one run. Prints both and the ratio.
#   bench/filters.sh [SHARED_DIR]     (default: ../shared next to the repo)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${1:-${MOOR_SHARED_DIR:-$repo/../shared}}
src=$shared/data/filters
[ -d "$src" ] || { echo "bench/filters.sh: no filter files at $src (give the shared dir)" >&2; exit 2; }

venv=$repo/target/difftest-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import oslo_rootwrap' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q oslo.rootwrap==7.10.0
fi
cargo build -q --release -p moor-bench --bin filters_bench

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/filters" "$work/bin"
for f in cinder-volume.filters nova-compute.filters nova-compute.filters.queens-eol; do
  install -m 0644 "$src/$f" "$work/filters/$f"
done
chmod 0755 "$work" "$work/filters"
# Every executable the filters name exists (as a stub) so both resolve them the same way.
for name in $(sed -n 's/^[^#[][^:]*:[[:space:]]*[A-Za-z]*Filter,[[:space:]]*\([^,]*\),.*/\1/p' "$work"/filters/* | xargs -n1 basename | sort -u) \
            lvs vgs pvs lvcreate lvextend lvdisplay qemu-img dnsmasq dd cat kill; do
  printf '#!/bin/sh\nexit 0\n' > "$work/bin/$name"; chmod 0755 "$work/bin/$name"
done
corpus=$repo/bench/data/filters_corpus.jsonl
rounds=${ROUNDS:-200}
moor=$("$repo/target/release/filters_bench" "$work/filters" "$work/bin" "$corpus" "$rounds")
rw=$(PATH="$work/bin:$PATH" "$venv/bin/python" "$repo/bench/rootwrap_filters_bench.py" "$work/filters" "$work/bin" "$corpus" "$rounds")
python3 - "$moor" "$rw" <<'PY'
import json, sys
m, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"filters: moor {m['filters']} / rootwrap {r['filters']} (rootwrap adds privsep-helper); corpus {m['commands']} commands, allowed: moor {m['allowed']} / rootwrap {r['allowed']}")
print(f"{'':16}{'moor':>12}{'oslo.rootwrap':>16}{'ratio':>9}")
for k, label, unit in (("load_median_us", "load median", "ms"), ("match_median_us", "match median", "us"), ("match_p99_us", "match p99", "us")):
    mv, rv = m[k], r[k]
    if unit == "ms":
        mv, rv = mv / 1000, rv / 1000
    print(f"{label:16}{mv:>10.3f}{unit:>2}{rv:>14.3f}{unit:>2}{r[k] / m[k]:>8.1f}x")
ok = m["load_median_us"] < 5000 and m["match_median_us"] < 5 and r["match_median_us"] / m["match_median_us"] >= 20
print("goals (load < 5 ms, match < 5 us median, >= 20x faster match):", "MET" if ok else "NOT MET")
PY
