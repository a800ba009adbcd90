#!/bin/sh
# Runs every fuzz target for SECONDS each (default 60) with cargo fuzz
# (libFuzzer; needs the nightly toolchain and `cargo install cargo-fuzz`),
# starting from the seed corpus in fuzz/corpus/<target>. New inputs that
# add coverage stay in fuzz/corpus-local/<target> (not committed); a
# crash is saved to fuzz/artifacts/<target>/ and ends the script with a
# non-zero status: copy it into fuzz/regressions/<target>/, which the
# normal test suite replays (tests/fuzz_regressions.rs).
#
#   scripts/fuzz.sh 600            # ten minutes per target
#   scripts/fuzz.sh 30 frame       # one target
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=${*:-"container frame config tasks decoder"}
for t in $targets; do
  mkdir -p "fuzz/corpus-local/$t"
  echo "== $t: $seconds s"
  # No sanitizer: the code is safe Rust, and what is hunted is panics,
  # hangs and wrong results; ASan would only slow the search.
  mkdir -p fuzz/logs
  log="fuzz/logs/$t.log"
  cargo +nightly fuzz run --sanitizer none "$t" "fuzz/corpus-local/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 > "$log" 2>&1 || true
  runs=$(grep -a '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  peak=$(grep -a '^stat::peak_rss_mb' "$log" | awk '{print $2}')
  corpus=$(ls "fuzz/corpus-local/$t" | wc -l)
  echo "$t: ${runs:-?} runs in $seconds s, corpus ${corpus} inputs, peak ${peak:-?} MB (log: $log)"
  grep -a -E "panicked|ERROR|SUMMARY" "$log" | head -5 || true
  if ls "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "$t: a crash or timeout was found; see fuzz/artifacts/$t" >&2
    exit 1
  fi
done
