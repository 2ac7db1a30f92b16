#!/bin/sh
# Runs every benchmark program under BUILD/bench. Benchmarks print figures and ratios against a
# named baseline measured in the same run; they do not pass or fail (a crash is still reported).
BUILD=${1:-build}
export MOESIM="$BUILD/moesim" MOESIM_BUILD="$BUILD"
rc=0
for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  case "$b" in *.d|*.o) continue ;; esac
  echo "== $(basename "$b")"
  "$b" || { echo "$(basename "$b"): exited with status $?"; rc=1; }
  echo
done
exit $rc
