#!/bin/sh
# tests/t_model.sh — `moesim model` as a user runs it: the CSV contract for the four shipped specs,
# the text summary, --ops, and exit codes. Prints "N passed, N failed, N skipped".
M=${MOESIM:-build/moesim}
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "t_model.sh: FAIL: $1" >&2; fi; }

out=$("$M" model experiments/models/deepseek-v3.yaml --csv); rc=$?
check "csv exit 0" '[ $rc -eq 0 ]'
check "csv header" '[ "$(printf "%s\n" "$out" | head -n 1)" = "name,params_total,params_active,train_flops_per_token,kv_bytes_per_token" ]'
check "csv one row" '[ "$(printf "%s\n" "$out" | wc -l)" -eq 2 ]'
check "v3 totals" 'printf "%s\n" "$out" | grep -q "^deepseek-v3,671026419200,37552297472,2.607[0-9]*e+11,70272$"'
for f in deepseek-v2 llama-3.1-405b mixtral-8x22b; do
  row=$("$M" model experiments/models/$f.yaml --csv | tail -n 1)
  check "$f row" 'printf "%s\n" "$row" | grep -q "^$f,[0-9]*,[0-9]*,[0-9.e+]*,[0-9]*$"'
done
out=$("$M" model experiments/models/deepseek-v3.yaml); rc=$?
check "text exit 0" '[ $rc -eq 0 ]'
check "text total" 'printf "%s\n" "$out" | grep -q "total, main model (no MTP) *671.03 B"'
check "text mtp" 'printf "%s\n" "$out" | grep -q "MTP modules (x1, unique) *11.61 B"'
out=$("$M" model experiments/models/deepseek-v3.yaml --ops --csv --seqs 2); rc=$?
check "ops exit 0" '[ $rc -eq 0 ]'
check "ops header" '[ "$(printf "%s\n" "$out" | head -n 1)" = "block,pass,op,class,dtype,recompute,m,n,k,groups,flops,bytes" ]'
check "ops fp8 q_down" 'printf "%s\n" "$out" | grep -q "^moe_layer,F,attn.q_down,gemm,fp8_e4m3,0,8192,1536,7168,1,"'
out=$("$M" model experiments/models/deepseek-v3.yaml --set moe.experts_per_token=4 --csv | tail -n 1)
check "--set changes active" 'printf "%s\n" "$out" | grep -q "^deepseek-v3,671026419200,27334972928,"'

"$M" model --help >/dev/null; rc=$?
check "help exit 0" '[ $rc -eq 0 ]'
for args in "" "--bogus experiments/models/deepseek-v3.yaml" "/nonexistent.yaml" \
            "experiments/models/deepseek-v3.yaml --set moe.nope=1" "experiments/models/deepseek-v3.yaml --seqs 0" \
            "experiments/models/deepseek-v3.yaml experiments/models/deepseek-v2.yaml"; do
  o=$("$M" model $args 2>/dev/null); rc=$?
  check "exit 2 for: $args" '[ $rc -eq 2 ]'
  check "stdout empty for: $args" '[ -z "$o" ]'
done

echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
