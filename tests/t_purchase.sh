#!/bin/sh
# tests/t_purchase.sh — the `purchase` experiment kind as a user runs it: a catalogue of two small
# clusters (H800 and H100 nodes of 4 GPUs on a two-layer fat-tree) at two sizes, a tiny MoE model
# trained on 1e9 tokens. Checks the sweep runs, the cost columns against the arithmetic of
# sim/purchase.h redone here from the row's own figures, front.csv and the two Pareto figures,
# byte-identical reruns, and the input errors (unknown option, a size that is not whole nodes, a
# goal that does not fit the workload: exit 2, path:line:col, nothing written).
# Prints "N passed, N failed, N skipped".
. tests/lib.sh
export MOESIM_CACHE="$T/cache"
tiny_train
cat > "$T/buy.yaml" <<EOF
name: tiny-purchase
kind: purchase
workload: train.yaml
goal: {train_tokens: 1.0e9}
prices: $TOP/prices.yaml
options:
  h800-ft2: {}
  h100-ft2: {cluster.gpu.model: h100}
option: h800-ft2
gpus: 8
sweep:
  grid: {option: [h800-ft2, h100-ft2], gpus: [4, 8]}
plots: [pareto:time_days:rent_usd:option, pareto:time_days:buy_usd:option]
EOF

out=$("$M" run "$T/buy.yaml" --out "$T/a" --jobs 2 2>&1); rc=$?
check "sweep exit 0" '[ $rc -eq 0 ]'
check "comparison printed" 'printf "%s\n" "$out" | grep -q "^purchase  4 options; Pareto front"'
check "results written" '[ -s "$T/a/results.csv" ]'
check "front written" '[ -s "$T/a/front.csv" ] && head -n 1 "$T/a/front.csv" | grep -qx "finance,option,gpus,time_days,cost_usd"'
for f in pareto_time_days_rent_usd_option pareto_time_days_buy_usd_option; do
  check "$f.png is a PNG" '[ "$(head -c 8 "$T/a/$f.png" | od -An -tx1 | tr -d " \n")" = "89504e470d0a1a0a" ]'
done
if command -v python3 >/dev/null 2>&1; then
  check "costs redone from each row" 'python3 - "$T/a/results.csv" "$TOP/prices.yaml" <<PY
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
price = {"h800": 30000, "h100": 30000}       # topologies/hardware.yaml
rent = {"h800": 2.0, "h100": 2.0}
host, watt, sw_w, kwh, pue, colo, years = 6000, 1275, 1600, 0.08, 1.3, 150, 4   # topologies/prices.yaml
for r in rows:
    f = {k: float(v) for k, v in r.items() if k in ("gpus", "tokens_per_s", "time_days", "rent_usd", "buy_usd",
         "capex_usd", "topo_cost_usd", "topo_switches", "it_power_kw", "train_tokens")}
    g = r["gpu"]
    assert r["option"].startswith(g), r
    hours = f["train_tokens"] / f["tokens_per_s"] / 3600
    near = lambda a, b: abs(a - b) <= 1e-4 * abs(b)
    assert near(f["time_days"], hours / 24), (f["time_days"], hours / 24)
    assert near(f["capex_usd"], f["gpus"] * (price[g] + host) + f["topo_cost_usd"])
    assert near(f["it_power_kw"], (f["gpus"] * watt + f["topo_switches"] * sw_w) / 1000)
    assert near(f["rent_usd"], f["gpus"] * rent[g] * hours)
    per_h = f["capex_usd"] / (years * 8760) + f["it_power_kw"] * (pue * kwh + colo * 12 / 8760)
    assert near(f["buy_usd"], per_h * hours), (f["buy_usd"], per_h * hours)
    assert r["step_s"] and r["mfu"], r                       # the workload columns follow
    assert "usd_per_t_tokens" not in r                        # its own price is not repeated
sizes = sorted(float(r["gpus"]) for r in rows)
assert sizes == [4, 4, 8, 8], sizes
PY'
fi

"$M" run "$T/buy.yaml" --out "$T/b" --jobs 1 -q; rc=$?
check "rerun exit 0" '[ $rc -eq 0 ]'
check "same results bytes (jobs 2 vs 1)" 'cmp -s "$T/a/results.csv" "$T/b/results.csv"'
check "same front bytes" 'cmp -s "$T/a/front.csv" "$T/b/front.csv"'

err=$("$M" run "$T/buy.yaml" --out "$T/c" -q --set sweep= --set option=h300-ft2 2>&1 >/dev/null); rc=$?
check "unknown option exit 2" '[ $rc -eq 2 ]'
check "unknown option message" 'printf "%s\n" "$err" | grep -q "error: no option .h300-ft2. in options (h800-ft2, h100-ft2)"'
check "unknown option nothing written" '[ ! -e "$T/c" ]'
err=$("$M" run "$T/buy.yaml" --out "$T/d" -q --set sweep= --set gpus=6 2>&1 >/dev/null); rc=$?
check "bad size exit 2" '[ $rc -eq 2 ]'
check "bad size message" 'printf "%s\n" "$err" | grep -q "error: gpus (6) must be a multiple of the cluster.s 4 GPUs per node"'
sed 's/^  h100-ft2: {cluster.gpu.model: h100}/  h100-ft2: {cluster.gpu.modle: h100}/' "$T/buy.yaml" > "$T/typo.yaml"
err=$("$M" run "$T/typo.yaml" --out "$T/e" -q 2>&1 >/dev/null); rc=$?
check "option typo exit 2" '[ $rc -eq 2 ]'
check "option typo position" 'printf "%s\n" "$err" | grep -q "typo.yaml:[0-9]*:[0-9]*: error: unknown key .workload.cluster.gpu.modle. (did you mean .workload.cluster.gpu.model.?)"'
sed 's/^goal: .*/goal: {serve_output_tokens_per_s: 1000, tpot_max_ms: 50}/' "$T/buy.yaml" > "$T/goal.yaml"
err=$("$M" run "$T/goal.yaml" --out "$T/f" -q 2>&1 >/dev/null); rc=$?
check "goal mismatch exit 2" '[ $rc -eq 2 ]'
check "goal mismatch message" 'printf "%s\n" "$err" | grep -q "goal.yaml:[0-9]*:[0-9]*: error: goal.train_tokens is required for a train workload"'
check "goal mismatch nothing written" '[ ! -e "$T/f" ]'

help=$("$M" run --help); rc=$?
check "help lists purchase" 'printf "%s\n" "$help" | grep -q "kind: purchase"'
check "help documents options" 'printf "%s\n" "$help" | grep -q "options .*catalogue"'

finish
