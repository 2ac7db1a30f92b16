#!/bin/sh
# Runs every test program under BUILD/tests (and the shell tests tests/t_*.sh), adds up their
# closing "N passed, N failed, N skipped" lines and prints the total the same way.
# Exit status is non-zero when any test failed or a test program crashed.
BUILD=${1:-build}
export MOESIM="$BUILD/moesim" MOESIM_BUILD="$BUILD"
tp=0; tf=0; ts=0; crashed=0
for t in "$BUILD"/tests/test_* tests/t_*.sh; do
  [ -e "$t" ] || continue
  case "$t" in *.d|*.o) continue ;; esac
  out=$("$t" 2>&1); rc=$?
  last=$(printf '%s\n' "$out" | tail -n 1)
  p=$(printf '%s' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')
  f=$(printf '%s' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')
  s=$(printf '%s' "$last" | sed -n 's/.*failed, \([0-9]*\) skipped.*/\1/p')
  if [ -z "$p" ] || { [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; }; then
    printf '%s\n' "$out" | tail -n 30
    echo "$t: crashed or printed no result line (exit $rc)"
    crashed=$((crashed + 1)); continue
  fi
  [ "$f" -gt 0 ] || [ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -v '^[0-9]* passed' | tail -n 40
  [ -n "$s" ] || s=0
  printf '%-36s %s\n' "$(basename "$t")" "$last"
  tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
done
tf=$((tf + crashed))
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ]
