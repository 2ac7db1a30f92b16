#!/bin/sh
# tests/t_train.sh — the `train` experiment kind as a user runs it: a small plan end to end
# (results.csv, trace.json), byte-identical reruns, overrides, input errors (exit 2, nothing
# written), the HBM-fit error, --help, and `moesim validate train` printing the V3 checks beside
# the published figures. Prints "N passed, N failed, N skipped".
M=${MOESIM:-build/moesim}
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "t_train.sh: FAIL: $1" >&2; fi; }
T=$(mktemp -d /tmp/moesim_t_train.XXXXXX)
trap 'rm -rf "$T"' EXIT
export MOESIM_CACHE="$T/cache"   # the routing cache stays inside the test's directory
CAT=$(cd topologies && pwd)/hardware.yaml

# A tiny MoE model on one node of four H800s: PP 2 x DP 2, EP 2, DualPipe, 8 comm SMs.
cat > "$T/tiny.yaml" <<EOF
name: tiny-train
kind: train
model:
  name: tiny
  vocab: 512
  hidden: 256
  layers: 2
  seq_len: 512
  attention: {kind: gqa, heads: 4, kv_heads: 2, head_dim: 64}
  moe: {routed_experts: 4, shared_experts: 1, experts_per_token: 2, expert_intermediate: 128}
cluster:
  name: one-node
  catalogue: $CAT
  gpu: {model: h800}
  nodes: 1
  gpus_per_node: 4
  fabric: {kind: none}
parallel: {pp: 2, ep: 2, dp_zero: 1, micro_batch_seqs: 1, global_batch_seqs: 16}
schedule: dualpipe
comm_sms: 8
routing: {balance: bias, skew_zipf_s: 1.0, seed: 3}
price_usd_per_gpu_hour: 2.0
EOF

out=$("$M" run "$T/tiny.yaml" --out "$T/a" --trace); rc=$?
check "run exit 0" '[ $rc -eq 0 ]'
check "summary step" 'printf "%s\n" "$out" | grep -q "^  step .* s "'
check "summary op sources" 'printf "%s\n" "$out" | grep -q "attn.q_proj *F .* roofline"'
check "results written" '[ -s "$T/a/results.csv" ]'
hdr=$(head -n 1 "$T/a/results.csv")
for c in step_s tokens_per_s tflops_per_gpu mfu bubble_frac exposed_comm_frac gpu_hours_per_t_tokens \
         usd_per_t_tokens peak_mem_gib phase_f_s phase_b_s phase_w_s phase_bubble_s phase_exposed_comm_s \
         phase_optimizer_s compute_roofline_frac; do
  check "column $c" 'printf "%s\n" "$hdr" | tr , "\n" | grep -qx "$c"'
done
check "trace written" '[ -s "$T/a/trace.json" ]'
if command -v python3 >/dev/null 2>&1; then
  check "trace is JSON with ranks and streams" 'python3 -c "
import json,sys
t=json.load(open(sys.argv[1]))
ev=t[\"traceEvents\"]
assert {e[\"pid\"] for e in ev} == {0, 1}
names={e[\"args\"][\"name\"] for e in ev if e[\"ph\"] == \"M\" and e[\"name\"] == \"thread_name\"}
assert \"compute\" in names and any(n.startswith(\"communication\") for n in names)
assert any(e[\"name\"] == \"DISPATCH_F\" for e in ev)
" "$T/a/trace.json"'
fi
"$M" run "$T/tiny.yaml" --out "$T/b" --trace -q; rc=$?
check "rerun exit 0" '[ $rc -eq 0 ]'
check "routing cached" 'ls "$T"/cache/routing-*.txt >/dev/null 2>&1'
check "same results bytes" 'cmp -s "$T/a/results.csv" "$T/b/results.csv"'
check "same trace bytes" 'cmp -s "$T/a/trace.json" "$T/b/trace.json"'

"$M" run "$T/tiny.yaml" --out "$T/c" -q --set schedule=1f1b --set comm_sms=0; rc=$?
check "override exit 0" '[ $rc -eq 0 ]'
check "override applied" 'grep -q ",1f1b," "$T/c/results.csv"'
check "override changes step" '! cmp -s "$T/a/results.csv" "$T/c/results.csv"'

err=$("$M" run "$T/tiny.yaml" --out "$T/d" -q --set cluster.gpu.hbm_gib=0.01 2>&1 >/dev/null); rc=$?
check "hbm exit 2" '[ $rc -eq 2 ]'
check "hbm message" 'printf "%s\n" "$err" | grep -q "tiny.yaml:[0-9]*:[0-9]*: error: the plan does not fit in HBM"'
check "hbm nothing written" '[ ! -e "$T/d/results.csv" ]'
err=$("$M" run "$T/tiny.yaml" --out "$T/e" -q --set parallel.ep=3 2>&1 >/dev/null); rc=$?
check "bad ep exit 2" '[ $rc -eq 2 ]'
check "bad ep message" 'printf "%s\n" "$err" | grep -q "ep (3) must divide"'
sed 's/^schedule: dualpipe/schedul: dualpipe/' "$T/tiny.yaml" > "$T/typo.yaml"
err=$("$M" run "$T/typo.yaml" --out "$T/f" -q 2>&1 >/dev/null); rc=$?
check "typo exit 2" '[ $rc -eq 2 ]'
check "typo position" 'printf "%s\n" "$err" | grep -q "typo.yaml:[0-9]*:[0-9]*: error: unknown key .schedul. (did you mean .schedule.?)"'

help=$("$M" run --help); rc=$?
check "help exit 0" '[ $rc -eq 0 ]'
check "help lists train" 'printf "%s\n" "$help" | grep -q "kind: train"'
check "help documents comm_sms" 'printf "%s\n" "$help" | grep -q "comm_sms"'

out=$("$M" validate train); rc=$?
check "validate train ran" '[ $rc -eq 0 ] || [ $rc -eq 1 ]'
check "validate gpu-hours check" 'printf "%s\n" "$out" | grep -q "^train.v3.gpu_hours_per_t_tokens  *180000 "'
check "validate ratio check" 'printf "%s\n" "$out" | grep -q "^train.v3.moe_layer_compute_to_comm "'

echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
