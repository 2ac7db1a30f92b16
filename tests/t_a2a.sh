#!/bin/sh
# tests/t_a2a.sh — `moesim a2a` under mpirun as a user runs it (small shapes, a few seconds each):
# dispatch/combine verified with 1, 2, 3 and 4 ranks on every implementation, the received rows
# identical across implementations, uneven expert counts, a rank that holds no expert and receives
# nothing, experts that receive no token, node-limited routing, the whole layer, kernel-table rows,
# the prediction's closing line, MPI errors and failed checks reported with exit 1, usage errors
# with exit 2. Prints "N passed, N failed, N skipped" (all skipped where moesim has no MPI).
M=${MOESIM:-build/moesim}
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "t_a2a.sh: FAIL: $1" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
# sanitizer builds: full stacks, so that OpenMPI's own allocations can be told from moesim's
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(pwd)/tests/lsan_mpi.supp:print_suppressions=0"
run() { np=$1; shift; mpirun --oversubscribe -np "$np" "$M" a2a "$@"; }

# usage, before MPI starts
"$M" a2a --help >"$TMP/help" 2>&1; rc=$?
check "help exit 0" '[ $rc -eq 0 ]'
check "help documents every option" 'for o in --tokens --hidden --experts --topk --groups --topk-groups \
  --ranks-per-node --impl --iters --warmup --skew --seed --layer --inter --shared --check-tokens --threads \
  --csv --predict --help; do grep -q -- "$o" "$TMP/help" || exit 1; done'
check "help says how to launch" 'grep -q "mpirun --allow-run-as-root --oversubscribe -np N" "$TMP/help"'
for args in "--bogus" "--impl ring" "--tokens 0" "--skew x" "--tokens"; do
  out=$("$M" a2a $args 2>"$TMP/err"); rc=$?
  check "exit 2 for: $args" '[ $rc -eq 2 ]'
  check "message for: $args" 'grep -q "^moesim a2a: error: " "$TMP/err"'
  check "nothing on stdout for: $args" '[ -z "$out" ]'
done

if ! command -v mpirun >/dev/null 2>&1 || "$M" a2a --tokens 1 2>&1 | grep -q "built without MPI"; then
  "$M" a2a --tokens 1 >/dev/null 2>&1; rc=$?
  check "no MPI: exit 2" '[ $rc -eq 2 ]'
  echo "t_a2a.sh: moesim has no MPI here: the runs are skipped" >&2
  echo "$pass passed, $fail failed, 1 skipped"
  [ "$fail" -eq 0 ]; exit
fi

# a configuration error found once MPI runs
run 2 --experts 10 --groups 4 >/dev/null 2>"$TMP/err"; rc=$?
check "bad gate: exit 2" '[ $rc -eq 2 ]'
check "bad gate: names the options" 'grep -q "error: --experts (10) must be a multiple of --groups (4)" "$TMP/err"'

# 10 experts in 5 groups: uneven blocks on 3 ranks (3, 3, 4) and on 4 ranks (2, 3, 2, 3)
A="--tokens 96 --hidden 256 --experts 10 --groups 5 --topk-groups 2 --topk 3 --iters 2 --warmup 1"
sum() { sed -n 's/^checksums: received rows \([0-9a-f]*\), output \([0-9a-f]*\)$/\1 \2/p' "$1"; }
for np in 1 2 3 4; do
  for v in "alltoallv 1" "pairwise 1" "hier 1" "hier 2"; do
    set -- $v
    [ "$np" -eq 1 ] && [ "$1" = pairwise ] && continue
    f="$TMP/r$np-$1-$2"
    run "$np" $A --impl "$1" --ranks-per-node "$2" >"$f" 2>"$f.err"; rc=$?
    check "np=$np $1 rpn=$2: exit 0" '[ $rc -eq 0 ]'
    check "np=$np $1 rpn=$2: verified" 'grep -q "arrived exactly once" "$f" && grep -q "equals the single-process reference on $((96 * np)) checked tokens" "$f"'
  done
  ref=$(sum "$TMP/r$np-alltoallv-1")
  check "np=$np: hier rows and output equal alltoallv's (one rank per node)" '[ -n "$ref" ] && [ "$(sum "$TMP/r$np-hier-1")" = "$ref" ]'
  check "np=$np: hier with 2 ranks per node receives the same rows" '[ "$(sum "$TMP/r$np-hier-2" | cut -d" " -f1)" = "${ref%% *}" ]'
  [ "$np" -gt 1 ] && check "np=$np: pairwise equals alltoallv" '[ "$(sum "$TMP/r$np-pairwise-1")" = "$ref" ]'
done
check "uneven experts on 3 ranks: 3, 3, 4" 'grep -q "^   0 .* 0-2 " "$TMP/r3-alltoallv-1" && grep -q "^   1 .* 3-5 " "$TMP/r3-alltoallv-1" && grep -q "^   2 .* 6-9 " "$TMP/r3-alltoallv-1"'
check "uneven experts on 4 ranks: 2, 3, 2, 3" 'grep -q "^   1 .* 2-4 " "$TMP/r4-pairwise-1" && grep -q "^   3 .* 7-9 " "$TMP/r4-pairwise-1"'

# two experts on three ranks: rank 0 holds none and receives nothing; hier agrees
for impl in alltoallv hier; do
  run 3 --tokens 64 --hidden 128 --experts 2 --groups 1 --topk-groups 1 --topk 1 --iters 1 --warmup 0 \
    --impl $impl --ranks-per-node 2 >"$TMP/empty-$impl" 2>&1; rc=$?
  check "rank without experts ($impl): exit 0" '[ $rc -eq 0 ]'
  check "rank without experts ($impl): receives nothing" 'grep -Eq "^   0 +[^ ]+ +none( +[0-9]+){3} +0 +0 " "$TMP/empty-$impl"'
done
check "rank without experts: hier rows equal" '[ "$(sum "$TMP/empty-hier")" = "$(sum "$TMP/empty-alltoallv")" ]'

# a skewed gate leaves experts without tokens
run 2 --tokens 64 --hidden 128 --experts 32 --groups 4 --topk-groups 4 --topk 2 --skew 4 --iters 1 --warmup 0 >"$TMP/skew" 2>&1; rc=$?
check "skewed: exit 0" '[ $rc -eq 0 ]'
check "skewed: empty experts" 'grep -Eq "; [1-9][0-9]* experts? received no token" "$TMP/skew"'

# node-limited routing: groups of 4 experts, one per rank, nodes of 2 ranks
for m in 1 2; do
  run 4 --tokens 128 --hidden 128 --experts 16 --groups 4 --topk-groups $m --topk 4 --ranks-per-node 2 \
    --iters 1 --warmup 0 --impl hier >"$TMP/nl$m" 2>&1; rc=$?
  check "node limit $m: exit 0" '[ $rc -eq 0 ]'
  check "node limit $m: respected" 'grep -q "a token reaches at most $m of 2 nodes (node-limited: at most $m)" "$TMP/nl$m"'
done

# the whole layer, and kernel-table rows
run 2 --tokens 32 --hidden 256 --inter 128 --experts 8 --groups 2 --topk-groups 1 --topk 2 --layer \
  --iters 1 --warmup 0 --csv "$TMP/k.csv" >"$TMP/layer" 2>&1; rc=$?
check "layer: exit 0" '[ $rc -eq 0 ]'
check "layer: checked against the reference layer" 'grep -q "reference layer (moe_layer_forward_ref) on 8 checked tokens" "$TMP/layer"'
check "csv: header" '[ "$(head -n 1 "$TMP/k.csv")" = "host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source" ]'
check "csv: rows" '[ "$(grep -c ",mpi-alltoallv,\(dispatch\|combine\|alltoall\|moe_layer\),r2n2tk1," "$TMP/k.csv")" -eq 4 ]'

# the prediction closes the output
run 2 --tokens 64 --hidden 256 --experts 8 --groups 2 --topk-groups 2 --topk 2 --iters 2 --warmup 1 --predict \
  >"$TMP/pred" 2>&1; rc=$?
check "predict: exit 0" '[ $rc -eq 0 ]'
check "predict: last line" 'tail -n 1 "$TMP/pred" | grep -Eq "^dispatch \+ experts \+ combine: measured [0-9.]+ us, simulated [0-9.]+ us, error -?[0-9.]+%$"'

# MPI errors and failed checks: exit 1 with the reason
MOESIM_A2A_FAULT=mpi run 2 $A >"$TMP/out" 2>"$TMP/err"; rc=$?
check "MPI error: exit 1" '[ $rc -eq 1 ]'
check "MPI error: file:line: MPI_Send: message" 'grep -Eq "^kernels/comm/a2a_mpi.c:[0-9]+: MPI_Send: MPI_ERR_RANK: invalid rank$" "$TMP/err"'
for fault in drop dup corrupt; do
  MOESIM_A2A_FAULT=$fault run 3 $A >"$TMP/out" 2>"$TMP/err"; rc=$?
  check "$fault: exit 1" '[ $rc -eq 1 ]'
  check "$fault: reported" 'grep -q "moesim a2a: error: verification failed on rank" "$TMP/err"'
done

echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
