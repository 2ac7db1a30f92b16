#!/bin/sh
# tests/t_flagship.sh — a reduced `make run` (scripts/flagship.sh) end to end: the smoke kernel
# suite measured here, a tiny MoE pre-training step costed with this machine's rows beside the
# published ones, a tiny purchase comparison, the summary with every path. Checks the files each
# step leaves (kernel table and its peak sidecar, roofline, results, figures, the Pareto front),
# that the measured rows reached the simulator, the progress lines, a tiny what-if sweep and the
# hook when the what-if experiment is absent, and that a failing step stops the run with its exit status.
# Prints "N passed, N failed, N skipped".
. tests/lib.sh
B=${MOESIM_BUILD:-$(dirname "$M")}
export MOESIM_CACHE="$T/cache"
tiny_train
echo 'plots: [breakdown::phase_f_s+phase_b_s+phase_w_s+phase_bubble_s+phase_exposed_comm_s+phase_optimizer_s]' >> "$T/train.yaml"
cat > "$T/whatif.yaml" <<EOF
name: tiny-whatif
kind: whatif
experiment: train.yaml
suggestion: none
sweep:
  grid: {suggestion: [none, comm_offload]}
plots: [whatif:suggestion:speedup]
EOF
cat > "$T/buy.yaml" <<EOF
name: tiny-purchase
kind: purchase
workload: train.yaml
goal: {train_tokens: 1.0e12}
prices: $TOP/prices.yaml
options:
  h800-ft2: {}
  h200-ft2: {cluster.gpu.model: h200}
option: h800-ft2
sweep:
  grid: {option: [h800-ft2, h200-ft2], gpus: [4, 8]}
plots: [pareto:time_days:buy_usd:option]
EOF

O="$T/out"
out=$(scripts/flagship.sh --build "$B" --out "$O" --suite smoke --pretrain "$T/train.yaml" --whatif "$T/whatif.yaml" \
      --purchase "$T/buy.yaml" --serve none --jobs 2 2>"$T/progress"); rc=$?
check "flagship exit 0" '[ $rc -eq 0 ]'
check "progress numbered" 'grep -q "^\[1/4\] measuring this machine" "$T/progress" && grep -q "^\[4/4\] cluster purchase" "$T/progress"'
check "progress timed" 'grep -q "done in [0-9]*s ([0-9]*s so far)" "$T/progress"'
check "what-ifs run" '[ -s "$O/hw-suggestions/results.csv" ] && ls "$O"/hw-suggestions/whatif_*.png >/dev/null 2>&1'
check "what-ifs summarised" 'printf "%s\n" "$out" | grep -q "^  comm_offload  *[a-z0-9.=-]*  *[-+][0-9.]*$"'
check "kernel table" '[ "$(head -n 1 "$O/kernels.csv")" = "host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source" ]'
check "sidecar peaks" 'grep -q "^peak_tflops.bf16: [0-9.e+-]* " "$O/kernels.csv.meta" && grep -q "^peak_tflops.fp32: " "$O/kernels.csv.meta"'
check "roofline drawn" '[ -s "$O/roofline.png" ]'
check "pretrain results" '[ -s "$O/v3-pretrain/results.csv" ]'
check "pretrain figure" 'ls "$O"/v3-pretrain/breakdown_*.png >/dev/null 2>&1'
check "measured rows used" 'grep -q "moe.combine .* projected .* as cpu combine" "$O/logs/pretrain.log"'
check "purchase front" '[ -s "$O/cluster-purchase/front.csv" ] && [ -s "$O/cluster-purchase/pareto_time_days_buy_usd_option.png" ]'
check "summary header" 'printf "%s\n" "$out" | grep -q "^moesim flagship — finished in [0-9]* s"'
check "summary machine" 'printf "%s\n" "$out" | grep -q "^this machine .* BF16 peak [0-9.]* TFLOP/s"'
check "summary pretrain" 'printf "%s\n" "$out" | grep -q "^V3 pre-training  8 h800 GPUs, dualpipe, PP 2 x DP 4, EP 2: step "'
check "summary names the cpu-costed ops" 'printf "%s\n" "$out" | grep -A4 "ops costed from this machine" | tr -s " \n" " " | grep -q "combine at [0-9]*% of memory bandwidth: 1 op"'
check "summary purchase table" 'printf "%s\n" "$out" | grep -q "^purchase  4 options; Pareto front"'
check "summary paths" 'printf "%s\n" "$out" | grep -q "$O/cluster-purchase/results.csv"'

sed 's/^goal: .*/goal: {}/' "$T/buy.yaml" > "$T/bad.yaml"
scripts/flagship.sh --build "$B" --out "$T/out2" --suite smoke --pretrain "$T/train.yaml" --whatif none \
  --purchase "$T/bad.yaml" --serve none >/dev/null 2>"$T/err"; rc=$?
check "failing step exit 2" '[ $rc -eq 2 ]'
check "failing step named" 'grep -q "flagship: step 3 failed (exit 2)" "$T/err"'
scripts/flagship.sh --build "$B" --out "$T/out3" --suite smoke --pretrain "$T/train.yaml" --whatif "$T/absent.yaml" \
  --purchase "$T/buy.yaml" --serve none >/dev/null 2>"$T/progress3"; rc=$?
check "what-if hook: absent experiment skipped" '[ $rc -eq 0 ] && grep -q "^\[3/4\] hardware what-ifs: .*absent.yaml is not in this tree yet" "$T/progress3"'
scripts/flagship.sh --help >"$T/help"; rc=$?
check "help exit 0" '[ $rc -eq 0 ] && grep -q -- "--suite NAME" "$T/help"'
scripts/flagship.sh --bogus x >/dev/null 2>"$T/err"; rc=$?
check "bad option exit 2" '[ $rc -eq 2 ] && grep -q "^usage: scripts/flagship.sh" "$T/err"'

finish
