#!/bin/sh
# tests/t_whatif.sh — the `whatif` experiment kind as a user runs it: a sweep of hardware
# suggestions over a small training and a small decode experiment (the shape of
# experiments/hw-suggestions.yaml): every row carries its mechanism and its gain against a baseline
# simulated in the same point (exactly 1 for `none`), suggestions without work to act on in decode
# gain exactly nothing, all together is at least as good as the best one alone, the table is
# printed and the figure drawn; reruns resume and reproduce the bytes, --jobs does not change them;
# input errors exit 2 at their position. Prints "N passed, N failed, N skipped".
. tests/lib.sh
export MOESIM_CACHE="$T/cache"   # the routing cache stays inside the test's directory
CAT=$(cd topologies && pwd)/hardware.yaml
PROMO=$(cd topologies/measured && pwd)/fp8-promotion-cpu.csv

# 4 nodes of 2 H800, one 400G NIC each, rail-optimised two-layer fat-tree.
cat > "$T/cluster.yaml" <<EOF
name: small
catalogue: $CAT
gpu: {model: h800}
nic: {model: cx7-400g}
switch: {model: qm9700}
nodes: 4
gpus_per_node: 2
scaleup: nvswitch
nics_per_gpu: 1
fabric: {kind: multi_rail, levels: 2, cable: {model: osfp-400g-optical}, endpoint_cable: {model: osfp-400g-optical}}
EOF
cat > "$T/model.yaml" <<EOF
name: tiny-moe
vocab: 2000
hidden: 1024
layers: 3
dense_layers: 1
ffn_intermediate: 2048
seq_len: 1024
mtp_depth: 1
precision: {gemm: fp8_e4m3}
attention: {kind: mla, heads: 8, q_lora_rank: 256, kv_lora_rank: 128, qk_nope_head_dim: 64, qk_rope_head_dim: 32, v_head_dim: 64}
moe: {routed_experts: 16, shared_experts: 1, experts_per_token: 4, expert_intermediate: 256, expert_groups: 4, groups_per_token: 2, gate: sigmoid}
EOF
# training: PP 2 x DP 4, EP 4 over two nodes (two-hop), DualPipe, 8 comm SMs
cat > "$T/train.yaml" <<EOF
name: tiny-train
kind: train
model: model.yaml
cluster: cluster.yaml
parallel: {pp: 2, ep: 4, dp_zero: 1, micro_batch_seqs: 1, global_batch_seqs: 32}
schedule: dualpipe
comm_sms: 8
routing: {balance: bias, skew_zipf_s: 1.0, seed: 3}
price_usd_per_gpu_hour: 2.0
EOF
# decode: one unit of 2 nodes (EP 4), low-latency kernels over RDMA only
cat > "$T/decode.yaml" <<EOF
name: tiny-decode
kind: decode
model: model.yaml
cluster: cluster.yaml
decode: {nodes: 2, redundant_experts: 4, mtp_depth: 1, mtp_acceptance: 0.8, max_seqs_per_gpu: 16, ll_nvlink: false, reserved_gib: 1}
traffic: {input_tokens: {dist: exponential, mean: 400, max_tokens: 4000}, output_tokens: {dist: exponential, mean: 100}, requests: 64}
routing: {skew_zipf_s: 1.0, layer_patterns: 2, pool_tokens: 512}
compute: roofline
EOF
SUGG="none, comm_offload, unified_network, online_quant, transposed_gemm, accum_fp32, v3_all, mpft, logfmt, large_scaleup, bw_convergence, all"
cat > "$T/hw.yaml" <<EOF
name: tiny-hw
kind: whatif
experiment: train.yaml
suggestion: none
promotion_table: $PROMO
large_scaleup_domain_gpus: {train: 4, decode: 4}
sweep:
  grid:
    experiment: [train.yaml, decode.yaml]
    suggestion: [$SUGG]
plots:
  - whatif:suggestion:speedup:experiment
EOF

out=$("$M" run "$T/hw.yaml" --out "$T/a" --jobs 1 2>"$T/a.err"); rc=$?
check "sweep exit 0" '[ $rc -eq 0 ]'
check "24 points ok" 'printf "%s\n" "$out" | grep -q "^sweep     24 points: 24 ok, 0 failed"'
CSV="$T/a/results.csv"
check "results written" '[ -s "$CSV" ]'
check "figure drawn (PNG)" '[ "$(head -c 4 "$T/a/whatif_suggestion_speedup_experiment.png" | od -An -c | tr -d " ")" = "211PNG" ]'
check "table printed" 'printf "%s\n" "$out" | grep -q "^  suggestion  *series  *speedup  *gain%  mechanism"'
check "table row" 'printf "%s\n" "$out" | grep -q "^  comm_offload  *experiment=decode.yaml  *1  *+0.00  offload: low-latency"'
if command -v python3 >/dev/null 2>&1; then
  check "rows: mechanism, baseline, gains" 'python3 - "$CSV" <<PY
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 24 and all(r["status"] == "ok" for r in rows), len(rows)
g = {(r["experiment"], r["suggestion"]): r for r in rows}
for r in rows:
    assert r["mechanism"], r
    assert r["workload"] in ("train", "decode"), r["workload"]
    assert float(r["baseline_value"]) > 0 and float(r["whatif_value"]) > 0
# the baseline each point simulates is the figure of the none point
for e in ("train.yaml", "decode.yaml"):
    none = g[(e, "none")]
    assert float(none["speedup"]) == 1 and float(none["gain_pct"]) == 0, none
    assert none["mechanism"] == "today\x27s hardware"
    for s in ("comm_offload", "logfmt", "all"):
        assert g[(e, s)]["baseline_value"] == none["whatif_value"], (e, s)
# decode has no backward (transposed GEMM), holds no SMs for its all-to-alls (offload), and one
# FP8 GEMM step per block remains with FP32 accumulation alone: exactly no gain
for s in ("transposed_gemm", "comm_offload", "accum_fp32"):
    assert float(g[("decode.yaml", s)]["speedup"]) == 1, s
assert float(g[("train.yaml", "accum_fp32")]["speedup"]) == 1
# suggestions that remove work are never slower; all together beats the best alone
singles = ["comm_offload", "unified_network", "online_quant", "transposed_gemm", "logfmt", "large_scaleup", "bw_convergence"]
for e in ("train.yaml", "decode.yaml"):
    sp = {s: float(g[(e, s)]["speedup"]) for s in singles + ["v3_all", "all"]}
    assert all(sp[s] >= 1 - 1e-12 for s in singles), (e, sp)
    assert sp["all"] >= max(sp[s] for s in singles) - 1e-12, (e, sp)
    assert sp["v3_all"] >= max(sp[s] for s in singles[:4]) - 1e-12, (e, sp)
assert float(g[("train.yaml", "comm_offload")]["speedup"]) > 1
assert float(g[("decode.yaml", "logfmt")]["speedup"]) > 1
# the fabric swap keeps the price of the same counts; the domain change names the fabric it built
assert g[("train.yaml", "mpft")]["mechanism"] == "fabric rebuilt as multi_plane"
PY'
fi

out2=$("$M" run "$T/hw.yaml" --out "$T/a" --jobs 1 2>&1); rc=$?
check "rerun exit 0" '[ $rc -eq 0 ]'
check "rerun resumes" 'printf "%s\n" "$out2" | grep -q "24 of 24 points already finished"'
cp "$CSV" "$T/a.csv"
"$M" run "$T/hw.yaml" --out "$T/b" --jobs 2 -q; rc=$?
check "jobs 2 exit 0" '[ $rc -eq 0 ]'
check "jobs 2 = jobs 1, byte for byte" 'cmp -s "$T/a.csv" "$T/b/results.csv"'

tab=$("$M" plot "$CSV" --kind whatif --out "$T/p"); rc=$?
check "plot exit 0" '[ $rc -eq 0 ]'
check "plot prints the table" 'printf "%s\n" "$tab" | grep -q "^  logfmt  *experiment=decode.yaml "'

# one point, printed summary
sed -e '/^sweep:/,$d' -e 's/^suggestion: none/suggestion: online_quant+transposed_gemm/' "$T/hw.yaml" > "$T/one.yaml"
out=$("$M" run "$T/one.yaml" --out "$T/d"); rc=$?
check "single point exit 0" '[ $rc -eq 0 ]'
check "single point summary" 'printf "%s\n" "$out" | grep -q "^online_quant+transposed_gemm on tiny-train: tokens_per_s .* (x1\.[0-9]*, +[0-9.]*%)"'
check "single point mechanism" 'printf "%s\n" "$out" | grep -q "mechanism: online quantization: .*; transposed GEMM: Wgrad transpose passes"'

# errors: exit 2 at the position, nothing written
sed "s/^suggestion: .*/suggestion: comm_ofload/" "$T/one.yaml" > "$T/bad1.yaml"
err=$("$M" run "$T/bad1.yaml" --out "$T/e" -q 2>&1 >/dev/null); rc=$?
check "unknown suggestion exit 2" '[ $rc -eq 2 ]'
check "unknown suggestion position" 'printf "%s\n" "$err" | grep -q "bad1.yaml:[0-9]*:[0-9]*: error: unknown suggestion .comm_ofload."'
check "nothing written" '[ ! -e "$T/e/results.csv" ]'
printf 'name: c\nkind: collective\n' > "$T/coll.yaml"
sed "s|^experiment: train.yaml|experiment: coll.yaml|" "$T/one.yaml" > "$T/bad2.yaml"
err=$("$M" run "$T/bad2.yaml" --out "$T/f" -q 2>&1 >/dev/null); rc=$?
check "wrong kind exit 2" '[ $rc -eq 2 ]'
check "wrong kind message" 'printf "%s\n" "$err" | grep -q "of kind .collective.; whatif wraps train, prefill and decode"'
err=$("$M" run "$T/train.yaml" --out "$T/g" -q --set hw_features.accum_fp32=true --set hw_features.mma_block_scaling=true 2>&1 >/dev/null); rc=$?
check "promotion study required exit 2" '[ $rc -eq 2 ]'
check "promotion study required message" 'printf "%s\n" "$err" | grep -q "error: these hw_features change the FP8 GEMMs. promotion steps; hw_features.promotion_table"'
err=$("$M" run "$T/train.yaml" --out "$T/h" -q --set hw_features.fabric=torus 2>&1 >/dev/null); rc=$?
check "bad fabric exit 2" '[ $rc -eq 2 ]'

help=$("$M" run --help); rc=$?
check "help lists whatif" 'printf "%s\n" "$help" | grep -q "kind: whatif"'
check "help documents hw_features" 'printf "%s\n" "$help" | grep -q "transposed_gemm"'

finish
