#!/bin/sh
# tests/t_schedule.sh — `moesim schedule` as a user runs it: the CSV rows, the bubble line, exit
# codes and messages for bad options. Prints "N passed, N failed, N skipped".
M=${MOESIM:-build/moesim}
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "t_schedule.sh: FAIL: $1" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

out=$("$M" schedule --kind dualpipe --pp 8 --chunks 20 --f 1 --b 2 --w 1 --fb 3 --csv); rc=$?
check "csv exit 0" '[ $rc -eq 0 ]'
check "csv header" '[ "$(printf "%s\n" "$out" | head -n 1)" = "rank,busy,idle" ]'
check "csv 8 rows" '[ "$(printf "%s\n" "$out" | wc -l)" -eq 9 ]'
# F&B = F+B: every rank is busy 20*(F+B) = 60, and the largest idle is the formula's 3*(3+2-3) = 6
check "csv rank 3" 'printf "%s\n" "$out" | grep -qx "3,60,6"'

out=$("$M" schedule --kind zb1p --pp 4 --chunks 8 --f 1 --b 2 --w 1); rc=$?
check "text exit 0" '[ $rc -eq 0 ]'
check "text bubble" 'printf "%s\n" "$out" | grep -q "^bubble (largest idle over ranks): 3$"'
check "text formula" 'printf "%s\n" "$out" | grep -q "(PP-1)(F+B-2W) with PP=4: 3$"'
check "text gantt rows" '[ "$(printf "%s\n" "$out" | grep -c "^rank [0-9]")" -eq 4 ]'
check "text dependency line" 'printf "%s\n" "$out" | grep -q "^dependency check: .* no op before its inputs"'

out=$("$M" schedule --kind dualpipe --pp 4 --chunks 8 --ops); rc=$?
check "ops exit 0" '[ $rc -eq 0 ]'
check "ops header" '[ "$(printf "%s\n" "$out" | head -n 1)" = "rank,op,kind,f,b,start,end,recv,send" ]'
# rank 0's first op: forward of micro-batch 0 at stage 0, its activation sent to rank 1
check "ops first row" 'printf "%s\n" "$out" | grep -qx "0,0,F,0:0:0,,0,1,,act:0:0:0>1"'
check "ops count" '[ "$(printf "%s\n" "$out" | wc -l)" -eq 63 ]'

out=$("$M" schedule --kind zb1p --pp 4 --chunks 8 --f 1 --b 3 --w 2 2>&1)
check "assumptions flagged" 'printf "%s\n" "$out" | grep -q "do not hold here"'

"$M" schedule --help >/dev/null 2>&1; rc=$?
check "help exit 0" '[ $rc -eq 0 ]'
check "help documents every option" 'for o in --kind --pp --chunks --f --b --w --fb --virt --p2p --eager --csv --ops --width; do "$M" schedule --help | grep -q -- "$o " || exit 1; done'

for args in "--kind gpipe --pp 4 --chunks 8" "--kind 1f1b --pp x --chunks 8" "--kind 1f1b --chunks 8" \
            "--kind 1f1b --pp 4 --chunks 8 --bogus 1" "--kind 1f1b --pp 4 --chunks 8 --f -1" \
            "--kind 1f1b --pp 4 --chunks 8 --w 3" "--kind dualpipe --pp 5 --chunks 10" \
            "--kind dualpipe --pp 4 --chunks 6" "--kind 1f1b --pp 4 --chunks"; do
  err=$("$M" schedule $args 2>&1 >/dev/null); rc=$?
  check "exit 2 for: $args" '[ $rc -eq 2 ]'
  check "error message for: $args" 'printf "%s\n" "$err" | grep -q "moesim schedule: error: "'
done
out=$("$M" schedule --kind 1f1b --pp 4 --chunks 8 --bogus 1 2>/dev/null)
check "errors not on stdout" '[ -z "$out" ]'

echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
