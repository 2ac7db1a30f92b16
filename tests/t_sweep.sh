#!/bin/sh
# tests/t_sweep.sh — `moesim run` sweeps and `moesim plot` from the command line: --jobs N gives
# the serial table byte for byte; failed and crashed points are recorded and the sweep goes on;
# a sweep killed with kill -9 at several moments never leaves a broken results.csv and resumes to
# the same table, rerunning only unfinished points; bad sweeps exit 2 having written nothing;
# MPI ranks give the serial table; the progress bar on a terminal; figures from tests/golden/ are
# PNG (by signature) and SVG files.
#
# Sweeps run through `test_sweep moesim ...`, the real run/plot code with the deterministic test
# kind "probe" (tests/test_sweep.c), so that tables can be compared byte for byte.
BUILD=${MOESIM_BUILD:-build}
MOESIM=${MOESIM:-$BUILD/moesim}
PROBE="$BUILD/tests/test_sweep moesim"
T=$(mktemp -d /tmp/moesim-t-sweep-XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
pass=0 fail=0 skip=0

ok() { pass=$((pass + 1)); }
bad() { echo "t_sweep.sh: FAIL: $*" >&2; fail=$((fail + 1)); }
skipped() { echo "t_sweep.sh: skipped: $*" >&2; skip=$((skip + 1)); }
check() { d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }

# A results table is whole: every line has the header's number of fields.
csv_whole() { awk -F, 'NR == 1 { n = NF } NF != n { exit 1 } END { if (NR < 1) exit 1 }' "$1"; }
# PNG signature: 89 50 4E 47 0D 0A 1A 0A.
is_png() { [ "$(od -An -tx1 -N8 "$1" 2>/dev/null | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
is_svg() { grep -q '<svg' "$1" 2>/dev/null; }
lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }

cat > "$T/link.yaml" <<'EOF'
bw_gbps: 25
latency_ns: 200
EOF
cat > "$T/grid.yaml" <<'EOF'
name: grid
kind: probe
x: 1
n: 2
link: {bw_gbps: 10, latency_ns: 500}
sweep:
  grid: {x: [1, 2, 3], link: [{bw_gbps: 10, latency_ns: 500}, link.yaml]}
  zip: {n: [1, 2, 3], fail: [false, false, true]}
plots: [throughput_vs:x, breakdown]
EOF

# ---------------------------------------------------------------- --jobs: same table, any N
$PROBE run "$T/grid.yaml" --out "$T/j1" --jobs 1 >"$T/j1.out" 2>"$T/j1.err"; rc1=$?
$PROBE run "$T/grid.yaml" --out "$T/j2" --jobs 2 >/dev/null 2>&1; rc2=$?
$PROBE run "$T/grid.yaml" --out "$T/j5" --jobs 5 >/dev/null 2>&1
check "a sweep with failed points exits 3 (got $rc1, $rc2)" [ "$rc1" = 3 ] && [ "$rc2" = 3 ]
check "--jobs 2 table equals --jobs 1 byte for byte" cmp -s "$T/j1/results.csv" "$T/j2/results.csv"
check "--jobs 5 table equals --jobs 1 byte for byte" cmp -s "$T/j1/results.csv" "$T/j5/results.csv"
check "18 points + header" [ "$(lines "$T/j1/results.csv")" = 19 ]
check "header: point, swept keys, status, error, kind columns" \
  grep -q '^point,x,link,n,fail,status,error,label,sizes_sum,tokens_per_s,' "$T/j1/results.csv"
check "rows in point order" sh -c "cut -d, -f1 '$T/j1/results.csv' | tail -n +2 | tr '\n' ' ' | grep -q '^0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 \$'"
check "a failed point records status and error" \
  grep -q '^2,1,{bw_gbps: 10; latency_ns: 500},3,true,failed,.*probe asked to fail; at x=1,' "$T/j1/results.csv"
check "an included file as a swept value is bound (bw 25 from link.yaml)" \
  sh -c "grep '^3,1,link.yaml,1,false,ok,' '$T/j1/results.csv' | grep -q ',20,18.75\$'"
check "6 of 18 failed, 12 ok in the summary" grep -q '18 points: 12 ok, 6 failed' "$T/j1.out"
check "figures drawn after the sweep" is_png "$T/j1/throughput_vs_x.png"
check "the failure is reported on stderr" grep -q 'point 2 (x=1 .*) failed: .*probe asked to fail' "$T/j1.err"
check "plain progress lines without a terminal" grep -q '^point 17 .* 18/18 points, 6 failed' "$T/j1.err"

# A crash is a failed point too.
sed 's/fail: \[false, false, true\]/crash: [false, true, false]/' "$T/grid.yaml" > "$T/crash.yaml"
$PROBE run "$T/crash.yaml" --out "$T/crash" --jobs 2 >/dev/null 2>&1; rc=$?
check "a crashing point: exit 3" [ "$rc" = 3 ]
check "a crashing point records the signal" grep -q '^1,.*,failed,killed by signal 6' "$T/crash/results.csv"
check "the other points of a crashing sweep finish" [ "$(grep -c ',ok,' "$T/crash/results.csv")" = 12 ]

# ---------------------------------------------------------------- resume
# Re-running a finished sweep runs only the failed points; more values run only the new points;
# --fresh runs everything.
$PROBE run "$T/grid.yaml" --out "$T/j1" --jobs 2 >/dev/null 2>"$T/re.err"
check "a re-run reuses the 12 finished points" grep -q '12 of 18 points already finished' "$T/re.err"
check "a re-run runs only the 6 failed points" [ "$(grep -c '^point .* in ' "$T/re.err")" = 6 ]
check "a re-run gives the same table" cmp -s "$T/j1/results.csv" "$T/j2/results.csv"
sed 's/x: \[1, 2, 3\]/x: [1, 2, 3, 4]/' "$T/grid.yaml" > "$T/grid4.yaml"
$PROBE run "$T/grid4.yaml" --out "$T/j1" --jobs 2 >/dev/null 2>"$T/re4.err"
check "an added value runs only the new points (6 + the 6 failed)" [ "$(grep -c '^point .* in ' "$T/re4.err")" = 12 ]
check "an added value: 24 rows" [ "$(lines "$T/j1/results.csv")" = 25 ]
$PROBE run "$T/grid.yaml" --out "$T/j1" --jobs 2 --fresh >/dev/null 2>"$T/fresh.err"
check "--fresh runs every point" [ "$(grep -c '^point .* in ' "$T/fresh.err")" = 18 ]
check "--fresh gives the same table" cmp -s "$T/j1/results.csv" "$T/j2/results.csv"

# kill -9 at several moments: each time the table is whole (or absent) and no point runs on;
# in the end the table equals an uninterrupted run's and no point ran twice after finishing.
cat > "$T/slow.yaml" <<'EOF'
name: slow
kind: probe
sleep_ms: 150
sweep:
  grid: {x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], n: [1, 2]}
EOF
sed 's/sleep_ms: 150/sleep_ms: 0/' "$T/slow.yaml" > "$T/fast.yaml"
$PROBE run "$T/fast.yaml" --out "$T/ref" --jobs 1 >/dev/null 2>&1
kills=0 whole=1 orphans=0
: > "$T/slow.all"
for delay in 0.35 0.2 0.5 0.05 0.3 0.4 0.25 0.6 0.3 0.3 0.3 0.3 0.3 0.3 0.3 0.3; do
  [ -f "$T/slow.done" ] && break
  $PROBE run "$T/slow.yaml" --out "$T/slow" --jobs 2 >/dev/null 2>"$T/slow.err" &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null
  cat "$T/slow.err" >> "$T/slow.all"
  if [ -f "$T/slow/results.csv" ] && ! csv_whole "$T/slow/results.csv"; then whole=0; fi
  sleep 0.2
  if pgrep -f "$T/slow.yaml" >/dev/null 2>&1; then orphans=1; fi
  if grep -q '^results ' "$T/slow.err" 2>/dev/null || [ "$(grep -c ',ok,' "$T/slow/results.csv" 2>/dev/null)" = 20 ]; then
    touch "$T/slow.done"
  fi
done
$PROBE run "$T/slow.yaml" --out "$T/slow" --jobs 2 >/dev/null 2>"$T/slow.err"
cat "$T/slow.err" >> "$T/slow.all"
check "kill -9 interrupted the sweep ($kills kills)" [ "$kills" -ge 3 ]
check "after every kill -9, results.csv was whole or absent" [ "$whole" = 1 ]
check "points die with the killed run (no orphan left running)" [ "$orphans" = 0 ]
check "the resumed sweep's table equals an uninterrupted run's" cmp -s "$T/slow/results.csv" "$T/ref/results.csv"
# A point's line is printed after its record is in the journal, so a point printed twice would be
# a finished point run again.
twice=$(grep '^point [0-9]* .* in ' "$T/slow.all" | cut -d' ' -f2 | sort | uniq -d | tr '\n' ' ')
check "no finished point ran again after a kill (twice: $twice)" [ -z "$twice" ]
check "every point finished once over the runs" [ "$(grep -c '^point [0-9]* .* in ' "$T/slow.all")" -le 20 ]

# ---------------------------------------------------------------- bad sweeps write nothing
cat > "$T/typo.yaml" <<'EOF'
name: typo
kind: probe
sweep:
  grid: {x: [1, 2], lnk.bw_gbps: [5, 6]}
EOF
$PROBE run "$T/typo.yaml" --out "$T/typo" >/dev/null 2>"$T/typo.err"; rc=$?
check "an unknown swept key exits 2" [ "$rc" = 2 ]
check "... with path:line:col at the key" grep -q "typo.yaml:4:21: error: unknown key 'lnk.bw_gbps'" "$T/typo.err"
check "... and writes nothing" [ ! -e "$T/typo" ]
cat > "$T/zip.yaml" <<'EOF'
name: zip
kind: probe
sweep:
  zip: {x: [1, 2], n: [1]}
EOF
$PROBE run "$T/zip.yaml" --out "$T/zip" >/dev/null 2>"$T/zip.err"; rc=$?
check "zip lists of unequal length exit 2 at the list" sh -c "[ $rc = 2 ] && grep -q 'zip.yaml:4:23: error: sweep.zip.n' '$T/zip.err' && [ ! -e '$T/zip' ]"
$PROBE run "$T/grid.yaml" --out "$T/conflict" --set x=4 >/dev/null 2>"$T/conflict.err"; rc=$?
check "--set of a swept key exits 2" sh -c "[ $rc = 2 ] && grep -q \"grid.yaml:7:10: error: 'x' is swept here and also set by --set x=4\" '$T/conflict.err'"
$PROBE run "$T/grid.yaml" --out "$T/nosweep" --set sweep= --set fail=false >/dev/null 2>&1; rc=$?
check "--set sweep= runs the experiment once (header + one row, no point column)" \
  sh -c "[ $rc = 0 ] && [ \$(wc -l < '$T/nosweep/results.csv') = 2 ] && head -1 '$T/nosweep/results.csv' | grep -q '^label,x,n,'"

# ---------------------------------------------------------------- a real kind
# The walking skeleton's moe_layer, tiny: a grid over tokens and the node count of an included
# cluster file, zipped with an expert count that does not divide over the GPUs (a run-time failure
# of the kind itself).
if "$MOESIM" run --help | grep -q 'kind: moe_layer'; then
  cat > "$T/moe.yaml" <<'EOF'
name: moe
kind: moe_layer
model: {hidden: 256, moe_intermediate: 128, routed_experts: 16, shared_experts: 1, top_k: 4, n_groups: 4, topk_groups: 2, route_scale: 1}
tokens_per_gpu: 64
cluster: REPO/tests/fixtures/tiny2x2.yaml
reps: 1
sweep:
  grid: {tokens_per_gpu: [32, 64], cluster.nodes: [1, 2]}
  zip: {model.routed_experts: [16, 15], model.n_groups: [4, 3]}
plots: [breakdown, throughput_vs:cluster.nodes]
EOF
  sed -i "s|REPO|$(pwd)|" "$T/moe.yaml"
  "$MOESIM" run "$T/moe.yaml" --out "$T/moe" --jobs 1 >"$T/moe.out" 2>"$T/moe.err"; rc=$?
  check "moe_layer sweep: exit 3 with failed points (got $rc: $(head -3 "$T/moe.err"))" [ "$rc" = 3 ]
  check "moe_layer sweep: 4 ok rows" [ "$(grep -c ',ok,' "$T/moe/results.csv")" = 4 ]
  check "moe_layer sweep: the kind's own error recorded" \
    [ "$(grep -c ',failed,.*15 routed experts' "$T/moe/results.csv")" = 4 ]
  check "moe_layer sweep: each point's kernel table in its own directory" [ -s "$T/moe/points/6/kernels.csv" ]
  check "moe_layer sweep: breakdown figure" is_png "$T/moe/breakdown.png"
  check "moe_layer sweep: throughput figure" is_png "$T/moe/throughput_vs_cluster.nodes.png"
else
  skipped "no moe_layer kind in this build"
fi

# ---------------------------------------------------------------- options and help
$MOESIM run --help > "$T/help.txt"
missing=""
for o in --set --out --jobs --mpi --fresh --trace --quiet --help; do grep -q -- "$o" "$T/help.txt" || missing="$missing $o"; done
check "moesim run --help documents every option (missing:$missing)" [ -z "$missing" ]
$MOESIM plot --help > "$T/phelp.txt"
missing=""
for o in --kind --out --x --y --series --title --ceiling throughput_vs step_time_vs breakdown a2a_bw roofline whatif pareto; do
  grep -q -- "$o" "$T/phelp.txt" || missing="$missing $o"
done
check "moesim plot --help documents every option and kind (missing:$missing)" [ -z "$missing" ]
$MOESIM run "$T/grid.yaml" --jobs 0 >/dev/null 2>&1; rc=$?
check "--jobs 0 is a usage error" [ "$rc" = 2 ]
$MOESIM plot tests/golden/sweep.csv --kind nope >/dev/null 2>"$T/nope.err"; rc=$?
check "an unknown figure kind: usage on stderr, exit 2" sh -c "[ $rc = 2 ] && grep -q '^usage: moesim plot' '$T/nope.err'"

# ---------------------------------------------------------------- figures from golden tables
G=tests/golden
fig() { # fig NAME CSV ARGS...: draws into $T/fig, checks PNG and SVG
  name=$1 csv=$2; shift 2
  rm -f "$T/fig/$name.png" "$T/fig/$name.svg"
  $MOESIM plot "$G/$csv" --out "$T/fig" "$@" >/dev/null 2>"$T/fig.err"
  rc=$?
  if [ "$rc" = 0 ] && is_png "$T/fig/$name.png" && is_svg "$T/fig/$name.svg"; then ok; else
    bad "figure $name from $csv ($*): exit $rc, $(cat "$T/fig.err")"
  fi
}
fig throughput_vs sweep.csv --kind throughput_vs
fig throughput_vs_parallel.ep_schedule sweep.csv --kind throughput_vs --x parallel.ep --series schedule
fig step_time_vs_schedule sweep.csv --kind step_time_vs:schedule
fig breakdown sweep.csv --kind breakdown
fig a2a_bw a2a.csv --kind a2a_bw
fig roofline kernels.csv --kind roofline --ceiling cpu:0.6:20 --ceiling H800:1979:3350
fig whatif whatif.csv --kind whatif
fig pareto pareto.csv --kind pareto
check "failed rows are left out of figures (5 of 6 rows drawn)" \
  sh -c "[ \$(grep -c '^[0-9]' '$T/fig/throughput_vs.dat') = 5 ] && [ \$(grep -c '^[0-9]' '$T/fig/breakdown.dat') = 5 ]"
check "the DeepEP reference points are drawn with a2a_bw" grep -q 'DeepEP dispatch, H800 (published)' "$T/fig/a2a_bw.dat"
check "the Pareto front is the non-dominated options, by time" \
  sh -c "sed -n '/Pareto front/,\$p' '$T/fig/pareto.dat' | cut -f1 | tail -n +2 | tr '\n' ' ' | grep -q '^13.9 14.6 26 118 \$'"
check "roofline intensity = 1000 x tflops / gbps" grep -q '^99.6551724' "$T/fig/roofline.dat"
$MOESIM plot "$G/sweep.csv" --kind throughput_vs --y no_such_col --out "$T/fig" >/dev/null 2>"$T/nocol.err"; rc=$?
check "a missing column exits 2 and names it" sh -c "[ $rc = 2 ] && grep -q \"no column 'no_such_col'\" '$T/nocol.err'"

# ---------------------------------------------------------------- MPI
if command -v mpirun >/dev/null 2>&1 && ! $MOESIM run --mpi x.yaml 2>&1 | grep -q 'without MPI'; then
  root=""; [ "$(id -u)" = 0 ] && root="--allow-run-as-root"
  timeout 120 mpirun $root --oversubscribe -np 3 $PROBE run "$T/grid.yaml" --out "$T/mpi" --mpi >/dev/null 2>&1
  check "3 MPI ranks give the serial table" cmp -s "$T/j2/results.csv" "$T/mpi/results.csv"
else
  skipped "MPI: mpirun or an MPI build missing"
fi

# ---------------------------------------------------------------- a terminal
if command -v script >/dev/null 2>&1; then
  script -qec "$PROBE run '$T/grid.yaml' --out '$T/tty' --jobs 2" /dev/null > "$T/tty.txt" 2>&1
  check "on a terminal: a bar redrawn in place with ETA" sh -c "grep -q 'ETA' '$T/tty.txt' && tr '\r' '\n' < '$T/tty.txt' | grep -q '^\[#*\.*\] *[0-9]*%'"
else
  skipped "no script(1) for a terminal"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
