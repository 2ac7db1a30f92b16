#!/bin/sh
# tests/t_infer.sh — the prefill, decode and ep_low_latency kinds through `moesim run` on a tiny MoE
# model and the 2 x 2 fixture cluster: the required columns, determinism (byte-identical
# results), a sweep (the latency-vs-throughput curve) with its figure, the trace, input errors
# (path:line:col, exit 2, nothing written), `moesim run --help` documenting the kinds' keys, and
# the "infer" validation suite listed.
M=${MOESIM:-build/moesim}
M="$(cd "$(dirname "$M")" && pwd)/$(basename "$M")"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "t_infer.sh: $1" >&2; fi; }
REPO=$(pwd)
cat > "$T/unit.yaml" <<'Y'
model: {name: tiny-moe, vocab: 2000, hidden: 512, layers: 3, dense_layers: 1, ffn_intermediate: 1024,
        seq_len: 128, mtp_depth: 1, precision: {gemm: fp8_e4m3},
        attention: {kind: mla, heads: 8, q_lora_rank: 128, kv_lora_rank: 64, qk_nope_head_dim: 32,
                    qk_rope_head_dim: 16, v_head_dim: 32},
        moe: {routed_experts: 16, shared_experts: 1, experts_per_token: 4, expert_intermediate: 128,
              expert_groups: 4, groups_per_token: 2, gate: sigmoid}}
cluster: REPO/tests/fixtures/tiny2x2.yaml
decode: {nodes: 2, redundant_experts: 4, mtp_depth: 1, max_seqs_per_gpu: 16, reserved_gib: 1}
prefill: {nodes: 2, redundant_experts: 4, max_tokens_per_gpu: 1024, chunk_tokens: 512, reserved_gib: 1}
traffic: {input_tokens: {dist: exponential, mean: 400, max_tokens: 4000},
          output_tokens: {dist: exponential, mean: 100}, cache_hit_rate: 0.5, load: 0.5, requests: 64}
routing: {skew_zipf_s: 0.5, layer_patterns: 2, pool_tokens: 512}
kernel_tables: [REPO/topologies/published/h800-deepgemm.csv]
Y
sed -i "s|REPO|$REPO|g" "$T/unit.yaml"
{ echo "name: d"; echo "kind: decode"; cat "$T/unit.yaml"; } > "$T/d.yaml"
{ echo "name: p"; echo "kind: prefill"; cat "$T/unit.yaml"; } > "$T/p.yaml"
cd "$T" || exit 1
"$M" run d.yaml --trace > out.txt 2> err.txt; rc=$?
check "decode run exits 0 (got $rc: $(cat err.txt))" '[ $rc -eq 0 ]'
H=$(head -1 results/d/results.csv)
for c in input_tokens_per_s_per_node output_tokens_per_s_per_node output_tokens_per_s_per_user ttft_ms tpot_ms \
         decode_binding prefill_binding kv_capacity_tokens_per_gpu decode_expert_imbalance; do
  check "decode row has $c" 'echo "$H" | tr , "\n" | grep -q "$c"'
done
check "one row" '[ "$(wc -l < results/d/results.csv)" -eq 2 ]'
check "the trace opens as JSON" 'head -c 15 results/d/trace.json | grep -q traceEvents && tail -c 4 results/d/trace.json | grep -q "]}"'
"$M" run d.yaml --quiet --out again 2>> err.txt
check "same inputs, byte-identical results" 'cmp -s results/d/results.csv again/results.csv'
"$M" run p.yaml --quiet 2> perr.txt; rc=$?
check "prefill run exits 0 (got $rc: $(cat perr.txt))" '[ $rc -eq 0 ]'
check "prefill row has ttft_p90_ms" 'head -1 results/p/results.csv | grep -q ttft_p90_ms'
# A sweep: the latency-vs-throughput curve and its figure.
cat d.yaml > curve.yaml
sed -i 's/^name: d/name: curve/' curve.yaml
cat >> curve.yaml <<'Y'
sweep: {grid: {decode.concurrency_per_gpu: [2, 8, 16]}}
plots: ["throughput_vs:output_tokens_per_s_per_node:output_tokens_per_s_per_user:model"]
Y
"$M" run curve.yaml --quiet --jobs 1 2> cerr.txt; rc=$?
check "curve sweep exits 0 (got $rc: $(cat cerr.txt))" '[ $rc -eq 0 ]'
check "curve has 3 rows" '[ "$(wc -l < results/curve/results.csv)" -eq 4 ]'
check "per-user speed falls as the batch grows" "awk -F, 'NR==1{for(i=1;i<=NF;i++)if(\$i==\"output_tokens_per_s_per_user\")c=i} NR>1{v[NR]=\$c} END{exit !(v[2]>v[3] && v[3]>v[4])}' results/curve/results.csv"
check "curve figure drawn" '[ -s results/curve/throughput_vs_output_tokens_per_s_per_node_output_tokens_per_s_per_user_model.png ]'
# Input errors: position, exit 2, nothing written.
sed 's/redundant_experts: 4, mtp/redundant_experts: 3, mtp/' d.yaml > bad.yaml
sed -i 's/^name: d/name: bad/' bad.yaml
"$M" run bad.yaml > /dev/null 2> berr.txt; rc=$?
check "a plan that does not fit exits 2 (got $rc)" '[ $rc -eq 2 ]'
check "the error names the file and line" 'grep -q "bad.yaml:[0-9]*:[0-9]*: error: the plan does not fit" berr.txt'
check "nothing written for a bad plan" '[ ! -e results/bad ]'
sed 's/mtp_acceptance/mtp_acceptence/; s/mtp_depth: 1, max_seqs/mtp_depth: 1, mtp_acceptence: 0.5, max_seqs/' d.yaml > typo.yaml
sed -i 's/^name: d/name: typo/' typo.yaml
"$M" run typo.yaml > /dev/null 2> terr.txt; rc=$?
check "a misspelt key exits 2 with did-you-mean (got $rc: $(cat terr.txt))" '[ $rc -eq 2 ] && grep -q "did you mean .mtp_acceptance." terr.txt'
"$M" run --help > help.txt
for k in "kind: prefill" "kind: decode" "kind: ep_low_latency" redundant_experts mtp_acceptance max_seqs_per_gpu cache_hit_rate \
         ll_nvlink wqe_overhead_ns; do
  check "run --help documents $k" 'grep -q "$k" help.txt'
done
check "validate lists the infer suite" '"$M" validate --list | grep -qx infer'
# The ep_low_latency kind: DeepEP's low-latency benchmark on 4 GPUs.
cat > ll.yaml <<Y
name: ll
kind: ep_low_latency
cluster: $REPO/tests/fixtures/tiny2x2.yaml
ep: 4
Y
"$M" run ll.yaml --quiet 2> lerr.txt; rc=$?
check "ep_low_latency exits 0 (got $rc: $(cat lerr.txt))" '[ $rc -eq 0 ]'
check "ep_low_latency columns" 'head -1 results/ll/results.csv | grep -q "^ep,dispatch_us,dispatch_gbps,combine_us,combine_gbps"'
echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
