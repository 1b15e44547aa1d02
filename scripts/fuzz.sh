#!/usr/bin/env bash
# Run each cargo-fuzz target for N seconds (default 20) from its committed corpus.
# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them, which is the only toolchain this project's machines have.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
cd "$repo/fuzz"
# New inputs go to a scratch corpus under target/; the committed seeds are read only.
for target in $(cargo fuzz list); do
  scratch="$repo/target/fuzz-corpus/$target"
  mkdir -p "$scratch" "corpus/$target"
  echo "fuzzing $target for ${secs}s"
  log="$repo/target/fuzz-$target.log"
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -v '^#' "$log" | tail -60
    echo "fuzz target $target FAILED; the input is in fuzz/artifacts/$target/ (log: $log)" >&2
    exit 1
  fi
  grep -E '^Done|stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log"
done
