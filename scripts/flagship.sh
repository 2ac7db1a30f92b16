#!/bin/sh
# scripts/flagship.sh — what `make run` runs: moesim's whole data path on this machine, end to end.
#   1. measure this machine's quick kernel suite (each kernel validated against the plain-C
#      reference before it is timed; the CPU's peaks go to the table's .meta sidecar) and draw its
#      roofline under the measured roofs;
#   2. simulate a DeepSeek-V3 pre-training step on the paper's cluster (2048 H800), with this
#      machine's rows in the compute projection beside the published DeepGEMM/FlashAttention rows;
#   3. the paper's hardware suggestions as what-ifs (experiments/hw-suggestions.yaml);
#   4. a cluster purchase comparison (time and cost to pre-train on 14.8T tokens, rent and buy,
#      the Pareto front) and the serving one (cost per million output tokens under a TPOT bound);
#   5. a summary with the paths of every table and figure.
# Progress goes to stderr, the summary to stdout; each step's own output is kept in OUT/logs/.
# Every step is re-run from scratch (--fresh): the kernel table is measured anew, so nothing
# simulated from an older one is reused.
#
# usage: scripts/flagship.sh [--build DIR] [--out DIR] [--suite NAME] [--pretrain EXP] [--whatif EXP]
#                            [--purchase EXP] [--serve EXP] [--jobs N] [--help]
#   --build DIR     where build/moesim is (default build)
#   --out DIR       results directory (default results/flagship)
#   --suite NAME    kernel suite (default quick; smoke for a test)
#   --pretrain EXP  the pre-training experiment (default experiments/v3-pretrain.yaml)
#   --whatif EXP    the what-ifs (default experiments/hw-suggestions.yaml; "none" skips them)
#   --purchase EXP  the purchase comparison (default experiments/cluster-purchase.yaml)
#   --serve EXP     the serving purchase (default experiments/cluster-purchase-serve.yaml; "none" skips)
#   --jobs N        sweep points run at once (default: the number of cores)
set -u
BUILD=build OUT=results/flagship SUITE=quick JOBS=""
PRETRAIN=experiments/v3-pretrain.yaml WHATIF=experiments/hw-suggestions.yaml
PURCHASE=experiments/cluster-purchase.yaml SERVE=experiments/cluster-purchase-serve.yaml
usage() { sed -n '/^# usage:/,/^# *--jobs/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in -h|--help) usage; exit 0 ;; esac
  [ $# -ge 2 ] || { usage >&2; exit 2; }
  case "$1" in
    --build) BUILD=$2 ;; --out) OUT=$2 ;; --suite) SUITE=$2 ;; --pretrain) PRETRAIN=$2 ;;
    --whatif) WHATIF=$2 ;; --purchase) PURCHASE=$2 ;; --serve) SERVE=$2 ;; --jobs) JOBS=$2 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift 2
done
M="$BUILD/moesim"
[ -x "$M" ] || { echo "flagship: $M not built (make)" >&2; exit 1; }
mkdir -p "$OUT/logs" || exit 1
ROOT=$(pwd)
case "$OUT" in /*) AOUT=$OUT ;; *) AOUT="$ROOT/$OUT" ;; esac
JOBS_ARG=${JOBS:+--jobs $JOBS}
T0=$(date +%s)
FAILED_POINTS=""
STEPS=5
[ "$WHATIF" = none ] && STEPS=$((STEPS - 1))
[ "$SERVE" = none ] && STEPS=$((STEPS - 1))
n=0

# step TITLE LOG CMD...: runs CMD with its stdout in OUT/logs/LOG.log, progress on stderr. A sweep
# whose points partly failed (moesim run's exit 3: the failures are rows of its table) is reported
# and the run goes on; any other failure stops it with that status.
step() {
  title=$1 name=$2 log="$OUT/logs/$2.log"
  shift 2
  n=$((n + 1))
  s0=$(date +%s)
  printf '[%d/%d] %s\n' "$n" "$STEPS" "$title" >&2
  "$@" > "$log"
  rc=$?
  if [ $rc -eq 3 ]; then
    echo "      some points failed (their errors are in the table's error column; details above)" >&2
    FAILED_POINTS="$FAILED_POINTS $name"
  elif [ $rc -ne 0 ]; then
    tail -n 20 "$log" >&2
    echo "flagship: step $n failed (exit $rc): $*" >&2
    echo "flagship: its output is in $log" >&2
    exit $rc
  fi
  printf '      done in %ds (%ds so far)\n' "$(($(date +%s) - s0))" "$(($(date +%s) - T0))" >&2
}

# col CSV NAME [ROW]: the value of column NAME in data row ROW (default 1) of a CSV.
col() {
  awk -F, -v c="$2" -v r="${3:-1}" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
    NR == r + 1 { if (k) print $k; exit }' "$1"
}
# meta KEY [WORD]: the value of the last "KEY: value" line of the kernel table's sidecar (its first
# word when WORD is given).
meta() {
  awk -v k="$1:" -v w="${2:-}" '$1 == k { if (w) v = $2; else { v = $0; sub(/^[^:]*: */, "", v) } } END { print v }' \
    "$OUT/kernels.csv.meta"
}

# 1. this machine's kernels
rm -f "$OUT/kernels.csv" "$OUT/kernels.csv.meta"
step "measuring this machine's kernels (suite $SUITE; each validated against the reference first)" kernels \
  "$M" kernels --suite "$SUITE" --out "$OUT/kernels.csv"
PEAK=$(meta peak_tflops.bf16 word)
BW=$(awk -F, 'NR > 1 && $5 == "memcpy" { print $17; exit }' "$OUT/kernels.csv")
"$M" plot "$OUT/kernels.csv" --kind roofline --out "$OUT" --title "kernels measured on this machine" \
  --ceiling "this CPU (measured):${PEAK:-1}:${BW:-10}" > "$OUT/logs/roofline.log" 2>&1 ||
  echo "flagship: the roofline figure was not drawn (see $OUT/logs/roofline.log)" >&2
TABLES="[$ROOT/topologies/published/h800-deepgemm.csv, $ROOT/topologies/published/h100-flashattention3.csv, $AOUT/kernels.csv]"

# 2. V3 pre-training on the paper's cluster
step "simulating DeepSeek-V3 pre-training on the paper's cluster ($PRETRAIN)" pretrain \
  "$M" run "$PRETRAIN" --out "$OUT/v3-pretrain" --set "kernel_tables=$TABLES"

# 3. the hardware suggestions as what-ifs
if [ "$WHATIF" != none ]; then
  if [ -f "$WHATIF" ]; then
    step "the paper's hardware suggestions as what-ifs ($WHATIF)" whatif \
      "$M" run "$WHATIF" --out "$OUT/hw-suggestions" --fresh $JOBS_ARG
  else
    n=$((n + 1))
    printf '[%d/%d] hardware what-ifs: %s is not in this tree yet (the whatif branch brings it); skipped\n' \
      "$n" "$STEPS" "$WHATIF" >&2
    WHATIF=missing
  fi
fi

# 4. the purchase comparisons
step "cluster purchase: pre-train on 14.8T tokens, options x sizes ($PURCHASE)" purchase \
  "$M" run "$PURCHASE" --out "$OUT/cluster-purchase" --fresh $JOBS_ARG --set "workload.kernel_tables=$TABLES"
if [ "$SERVE" != none ]; then
  step "cluster purchase: serving under a TPOT bound ($SERVE)" serve \
    "$M" run "$SERVE" --out "$OUT/cluster-purchase-serve" --fresh $JOBS_ARG --set "workload.kernel_tables=$TABLES"
fi

# 5. the summary
P="$OUT/v3-pretrain/results.csv"
K="$OUT/kernels.csv"
echo
echo "moesim flagship — finished in $(($(date +%s) - T0)) s"
echo
echo "this machine     $(meta cpu) x $(meta threads) threads: BF16 peak $PEAK TFLOP/s ($(meta isa)), memcpy ${BW:-?} GB/s"
echo "                 $(($(wc -l < "$K") - 1)) kernels validated and timed: $K (peaks in $K.meta)"
[ -f "$OUT/roofline.png" ] && echo "                 roofline: $OUT/roofline.png"
echo
printf 'V3 pre-training  %s %s GPUs, %s, PP %s x DP %s, EP %s: step %.3g s, %.3g tokens/s, MFU %.1f%%\n' \
  "$(col "$P" gpus)" "$(col "$P" gpu)" "$(col "$P" schedule)" "$(col "$P" pp)" "$(col "$P" dp)" "$(col "$P" ep)" \
  "$(col "$P" step_s)" "$(col "$P" tokens_per_s)" "$(awk "BEGIN { print 100 * $(col "$P" mfu) }")"
printf '                 %.4g GPU-hours per trillion tokens; compute time by source: exact rows of the\n' \
  "$(col "$P" gpu_hours_per_t_tokens)"
printf '                 target measured %.1f%%, published %.1f%%, projected from a measured or published shape\n                 class %.1f%%, roofline %.1f%%\n' \
  "$(awk "BEGIN { print 100 * $(col "$P" compute_measured_frac) }")" \
  "$(awk "BEGIN { print 100 * $(col "$P" compute_published_frac) }")" \
  "$(awk "BEGIN { print 100 * $(col "$P" compute_projected_frac) }")" \
  "$(awk "BEGIN { print 100 * $(col "$P" compute_roofline_frac) }")"
# the ops costed from this machine's rows, by the kernel row they took their efficiency from
CPUOPS=$(awk '/ as cpu / {
    op = $1; k = $0; sub(/.* as cpu /, "", k); sub(/ .*/, "", k)
    pct = $0; sub(/.*projected +/, "", pct); sub(/, as cpu .*/, "", pct)
    if (seen[op]++) next
    if (!(k in n)) order[++nk] = k
    n[k]++; what[k] = pct
  }
  END { for (i = 1; i <= nk; i++) { k = order[i]; printf "%s%s at %s: %d op%s", (i > 1 ? "; " : ""), k, what[k], n[k], (n[k] > 1 ? "s" : "") } }' \
  "$OUT/logs/pretrain.log")
if [ -n "$CPUOPS" ]; then
  echo "                 ops costed from this machine's rows (the kernel, its efficiency here):"
  printf '%s\n' "$CPUOPS" | fold -s -w 76 | sed 's/^/                   /'
fi
echo "                 $P"
for f in "$OUT"/v3-pretrain/*.png; do [ -f "$f" ] && echo "                 $f"; done
echo
if [ "$WHATIF" = none ]; then
  :
elif [ "$WHATIF" = missing ]; then
  echo "hardware what-ifs  skipped: experiments/hw-suggestions.yaml is not in this tree yet"
  echo
else
  echo "hardware what-ifs (gain of each suggestion alone and of all together; mechanisms in the table)"
  awk '/^  suggestion / { on = 1 } /^results / { on = 0 } on { s = $2; sub(/^experiment=/, "", s); sub(/\.yaml$/, "", s)
    printf "  %-18s %-28s %8s\n", $1, s, $4 }' "$OUT/logs/whatif.log"
  echo "                 $OUT/hw-suggestions/results.csv"
  for f in "$OUT"/hw-suggestions/*.png; do [ -f "$f" ] && echo "                 $f"; done
  echo
fi
for d in cluster-purchase cluster-purchase-serve; do
  [ -f "$OUT/$d/results.csv" ] || continue
  sed -n '/^purchase  /,/^front /p' "$OUT/logs/$([ $d = cluster-purchase ] && echo purchase || echo serve).log"
  echo "                 $OUT/$d/results.csv"
  for f in "$OUT/$d"/*.png; do [ -f "$f" ] && echo "                 $f"; done
  echo
done
[ -z "$FAILED_POINTS" ] || echo "note             some sweep points failed in:$FAILED_POINTS (their rows say why; logs in $OUT/logs/)"
exit 0
