#!/bin/sh
# tests/t_quickstart.sh — the walking skeleton end to end on a tiny layer: kernels measured and
# validated, the simulator's row written, the figure drawn; same seed, same routing.
. tests/lib.sh
cat > "$T/tiny.yaml" <<'Y'
name: tiny
kind: moe_layer
model: {hidden: 256, moe_intermediate: 128, routed_experts: 16, shared_experts: 1, top_k: 4, n_groups: 4, topk_groups: 2, route_scale: 1}
tokens_per_gpu: 64
cluster: REPO/tests/fixtures/tiny2x2.yaml
reps: 1
plots: [breakdown]
Y
sed -i "s|REPO|$REPO|" "$T/tiny.yaml"
cd "$T" || exit 1
"$M" run tiny.yaml > out.txt 2> err.txt; rc=$?
check "run exits 0 (got $rc: $(cat err.txt))" '[ $rc -eq 0 ]'
check "results.csv has header and one row" '[ "$(wc -l < results/tiny/results.csv)" -eq 2 ]'
check "results.csv has the phase columns" 'head -1 results/tiny/results.csv | grep -q "dispatch_us,experts_us,combine_us,layer_us"'
check "kernel table header" 'head -1 results/tiny/kernels.csv | grep -qx "host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source"'
check "kernel rows measured" '[ "$(grep -c ",measured$" results/tiny/kernels.csv)" -eq 4 ]'
check "PNG written" '[ "$(head -c 8 results/tiny/breakdown.png | od -An -tx1 | tr -d " \n")" = "89504e470d0a1a0a" ]'
check "SVG written" 'grep -q "<svg" results/tiny/breakdown.svg'
check "no temporary files left" '[ -z "$(find results -name "*.tmp.*")" ]'
# Same inputs, same routing: the routing-derived columns repeat exactly.
cut -d, -f11,12 results/tiny/results.csv > first.txt
"$M" run tiny.yaml --quiet 2> err2.txt
cut -d, -f11,12 results/tiny/results.csv > second.txt
check "same seed, same routing" 'cmp -s first.txt second.txt'
"$M" run tiny.yaml --quiet --set seed=2 --out other 2>> err2.txt
cut -d, -f11,12 other/results.csv > third.txt
check "another seed, another routing" '! cmp -s first.txt third.txt'
# The layer time is the sum of its phases on the critical path.
check "phases add up to the layer" "awk -F, 'NR==2 { d=\$5+\$6+\$7-\$8; exit !(d < 0.01 && d > -0.01) }' results/tiny/results.csv"
finish
