#!/bin/sh
# tests/t_kernels.sh — `moesim kernels` as a user meets it: the help text documents every option,
# usage errors exit 2 with the synopsis on stderr and nothing on stdout, --device cuda without a GPU
# says so and exits 2, --list names the cases, and the smoke suite validates and times every kernel
# into a kernel table (header, one measured row per case, >= 5 repetitions) with its metadata
# sidecar (hwloc topology, binding, PAPI state).
M=${MOESIM:-build/moesim}
M="$(cd "$(dirname "$M")" && pwd)/$(basename "$M")"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "t_kernels.sh: $1" >&2; }

# expect CODE DESCRIPTION -- command...   (stdout/stderr in $T/out, $T/err)
expect() {
  code=$1; what=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"; rc=$?
  if [ "$rc" -eq "$code" ]; then ok; else bad "$what: exit $rc, expected $code"; sed 's/^/    /' "$T/err" >&2; fi
}

expect 0 "--help" -- "$M" kernels --help
for o in --device --suite --threads --out --list --accum-study --only --help smoke quick moe full; do
  grep -q -- "$o" "$T/out" && ok || bad "--help does not document $o"
done
for args in "--bogus" "--suite" "--suite huge" "--threads 0" "--threads x" "--device tpu" "--only gemm"; do
  expect 2 "kernels $args" -- "$M" kernels $args
  grep -q "usage: moesim kernels" "$T/err" && ok || bad "kernels $args: no synopsis on stderr"
  [ -s "$T/out" ] && bad "kernels $args: wrote to stdout" || ok
done
# With no GPU the command says so (exit 2); with one, a bad CUDA suite name is refused (exit 2)
# before anything runs, so this never starts a GPU suite.
expect 2 "--device cuda" -- "$M" kernels --device cuda --suite no-such-suite
if grep -q "moesim kernels: error: no CUDA GPU present (" "$T/err"; then ok; else skip=$((skip + 1)); fi
expect 0 "--list" -- "$M" kernels --list --suite moe
[ "$(wc -l <"$T/out")" -gt 40 ] && ok || bad "--list --suite moe lists too few cases"
grep -q "grouped_gemm fp8_e4m3 M=4096 N=4096 K=7168 experts=256 masked" "$T/out" && ok || bad "moe suite lacks the 256-expert masked case"

expect 0 "smoke suite" -- "$M" kernels --suite smoke --threads 2 --out "$T/k/kt.csv"
n=$(grep -c "^[a-z_]* .* reps=" "$T/out")
rows=$(($(wc -l <"$T/k/kt.csv") - 1))
head -1 "$T/k/kt.csv" | grep -q "^host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source$" && ok || bad "table header"
[ "$rows" -eq "$n" ] && [ "$n" -ge 20 ] && ok || bad "smoke: $n cases printed, $rows rows written"
awk -F, 'NR > 1 && ($13 < 5 || $18 != "measured" || $12 != 2 || $14 < $15) { bad = 1 } END { exit bad }' "$T/k/kt.csv" && ok || bad "rows with < 5 reps, wrong threads, median < min or not measured"
for k in memcpy quant_token quant_block gate dispatch combine swiglu gemm grouped_gemm moe_layer; do
  grep -q ",$k," "$T/k/kt.csv" && ok || bad "no $k row"
done
for key in "topology: " "binding: 2 threads" "papi: " "cpu: " "caches: "; do
  grep -q "^$key" "$T/k/kt.csv.meta" && ok || bad "metadata lacks '$key'"
done
grep -q "#" "$T/k/kt.csv.meta" && bad "metadata has '#' comments" || ok
expect 0 "second run appends" -- "$M" kernels --suite smoke --threads 1 --out "$T/k/kt.csv"
[ "$(($(wc -l <"$T/k/kt.csv") - 1))" -eq $((2 * rows)) ] && ok || bad "second run did not append"
[ "$(grep -c '^run: ' "$T/k/kt.csv.meta")" -eq 2 ] && ok || bad "metadata not appended per run"

expect 0 "--accum-study" -- "$M" kernels --accum-study
[ -s "$T/out" ] && ok || bad "--accum-study printed nothing"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
