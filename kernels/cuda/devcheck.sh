#!/bin/sh
# kernels/cuda/devcheck.sh — the one script to run on a GPU machine: checks the GPU (nvidia-smi),
# builds moesim from this checkout, runs the CUDA suite one family per process (gemm, grouped,
# bf16, quant, permute, nccl), each validating its kernels against the CPU references before
# timing them (CUDA events, L2 flushed, median), and collects the kernel-table rows and a summary
# (ratios against cuBLASLt / cuBLAS, the copy kernel and DeepGEMM's published H800 figures), then
# runs the host tests with the time left (they take 1.5-2 minutes on one core and need no GPU, so
# they come after the families and never eat their budget). Every step runs under `timeout`; a
# family that crashes the GPU context (a kernel trap: the GEMM kernels trap after ~1 s of waiting
# instead of hanging) is retried once without the sm_90a wgmma variant. Sized for about 6 minutes
# on one H200.
#
# If the full build fails (a library of the rest of moesim missing on that machine: libyaml,
# hwloc, PAPI, MPI, oneDNN), a minimal build of just what the CUDA suite needs (the CUDA files, the
# CPU references, the kernel table) is made with nvcc and cc directly, and the suite runs from it.
#
# usage: kernels/cuda/devcheck.sh [--dry] [--min-build] [--suite quick|deepgemm|moe|full] [--help]
#   --dry        build and run the host tests only, as on a machine without a GPU
#   --min-build  skip the full build and use the minimal one (to test that path)
#   --suite S    the CUDA suite to run (default full)
# environment: OUT (where the results go; default build/devcheck), JOBS (make -j; default nproc),
#   DEVCHECK_BUDGET_S (seconds for the whole run; default 330).
# Results in $OUT: devcheck.log (everything), summary.txt, <gpu>.csv (e.g. nvidia-h200.csv) —
# commit the last two under kernels/cuda/results/.
# Exit status: 0 all good (or no GPU, said so); 1 a build, test, validation or family failed;
# 2 bad usage.
set -u

# The minimal build: every C file of the kernel references and the CUDA half compiled on its own
# (a file that cannot compile here is left out), archived, and bench_cuda linked against the
# archive, which pulls in only what it uses. ISA flags by file suffix, as the Makefile gives them.
min_build() {
  MIN=build/devcheck-min
  rm -rf "$MIN" && mkdir -p "$MIN/o" || return 1
  NVCC=${NVCC:-$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)}
  CUDA_HOME=${CUDA_HOME:-${NVCC%/bin/nvcc}}
  CC=${CC:-cc}
  NCCL="-lnccl"
  NOLIBS=""
  if [ ! -f "$CUDA_HOME/include/nccl.h" ] || ! ls "$CUDA_HOME"/lib64/libnccl.so* >/dev/null 2>&1; then
    NCCL=""
    NOLIBS="-DMOESIM_NO_NCCL"
  fi
  # No cuBLAS in this CUDA: the vendor baselines are left out (reported as skipped), not the suite.
  BLAS="-lcublasLt -lcublas"
  if [ ! -f "$CUDA_HOME/include/cublasLt.h" ] || ! ls "$CUDA_HOME"/lib64/libcublasLt.so* >/dev/null 2>&1 ||
    ! ls "$CUDA_HOME"/lib64/libcublas.so* >/dev/null 2>&1; then
    BLAS=""
    NOLIBS="$NOLIBS -DMOESIM_NO_CUBLAS"
    echo "left out: cuBLAS (not in $CUDA_HOME): vendor baselines skipped" >>"$MIN/skipped.txt"
  fi
  for f in kernels/cuda/*.cu; do
    "$NVCC" -O3 -std=c++17 -Isim -Ikernels -I. -DMOESIM_CUDA=1 -gencode arch=compute_90a,code=sm_90a \
      -gencode arch=compute_80,code=sm_80 -c "$f" -o "$MIN/o/$(basename "$f").o" &
  done
  for f in sim/util.c sim/ktable.c kernels/*.c kernels/ref/*.c kernels/cpu/*.c kernels/cuda/*.c; do
    case "$f" in
    kernels/cuda/nocuda.c) continue ;;
    *_avx512bf16.c) isa="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16" ;;
    *_avx512.c) isa="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq" ;;
    *_avx2.c) isa="-mavx2 -mfma -mf16c" ;;
    *) isa="" ;;
    esac
    o="$MIN/o/$(echo "$f" | tr '/' '_').o"
    # shellcheck disable=SC2086
    $CC -O2 -std=c11 -D_GNU_SOURCE -pthread -Isim -Ikernels -I. -I"$CUDA_HOME/include" -DMOESIM_CUDA=1 $NOLIBS $isa \
      -c "$f" -o "$o" 2>>"$MIN/skipped.txt" || echo "left out: $f" >>"$MIN/skipped.txt"
  done
  wait
  ls "$MIN"/o/*.cu.o >/dev/null 2>&1 || return 1
  ar rcs "$MIN/libmin.a" "$MIN"/o/*.o || return 1
  # shellcheck disable=SC2086
  $CC -O2 -std=c11 -D_GNU_SOURCE -pthread -Isim -Ikernels -I. -I"$CUDA_HOME/include" -DMOESIM_CUDA=1 \
    tests/bench/bench_cuda.c "$MIN/libmin.a" -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" \
    $BLAS $NCCL -lcudart -lstdc++ -lm -lpthread -o "$MIN/bench_cuda"
}

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

DRY=0
MINBUILD=0
SUITE=full
while [ $# -gt 0 ]; do
  case "$1" in
  --dry) DRY=1 ;;
  --min-build) MINBUILD=1 ;;
  --internal-min-build) cd "$(dirname "$0")/../.." && min_build; exit $? ;;
  --suite)
    [ $# -ge 2 ] || { echo "devcheck: --suite needs a value" >&2; usage >&2; exit 2; }
    SUITE=$2
    shift
    ;;
  -h | --help) usage; exit 0 ;;
  *) echo "devcheck: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$SUITE" in quick | deepgemm | moe | full) ;; *) echo "devcheck: unknown suite '$SUITE'" >&2; exit 2 ;; esac

cd "$(dirname "$0")/../.." || exit 1
START=$(date +%s)
BUDGET=${DEVCHECK_BUDGET_S:-330}
OUTDIR=${OUT:-build/devcheck}
WORK=build/devcheck.work
mkdir -p "$OUTDIR" || exit 1
rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
LOG=$OUTDIR/devcheck.log
SUMMARY=$OUTDIR/summary.txt
: >"$LOG"
: >"$SUMMARY"
STATUS=0

elapsed() { echo $(($(date +%s) - START)); }
say() { printf 'devcheck: %s\n' "$*" | tee -a "$LOG"; }
note() { printf '%s\n' "$*" >>"$SUMMARY"; say "$*"; }
# run LIMIT_S NAME CMD...: output into the log, exit status returned (124: timed out).
run() {
  limit=$1 name=$2
  shift 2
  say "[$name] $* (limit ${limit}s, at $(elapsed)s)"
  timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  say "[$name] exit $rc at $(elapsed)s"
  return $rc
}

note "moesim devcheck, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), suite $SUITE"

# 1. The GPU, as the driver sees it.
GPU=""
if [ "$DRY" = 0 ] && command -v nvidia-smi >/dev/null 2>&1; then
  if timeout 30 nvidia-smi >>"$LOG" 2>&1; then
    GPU=$(timeout 30 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
    timeout 30 nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit,temperature.gpu --format=csv 2>&1 | tee -a "$SUMMARY" >>"$LOG"
  fi
fi
if [ -n "$GPU" ]; then note "GPU: $GPU"; else note "GPU: none ($( [ "$DRY" = 1 ] && echo '--dry' || echo 'nvidia-smi found no GPU'))"; fi

# 2. Build: the whole program, the tests, the CUDA driver program.
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BENCH=build/bench/bench_cuda

FULL=0
if [ "$MINBUILD" = 0 ] && run 240 build make -j"$JOBS" all tests build/bench/bench_cuda; then
  FULL=1
  note "build: ok"
elif run 240 min-build sh "$0" --internal-min-build; then
  BENCH=build/devcheck-min/bench_cuda
  note "build: the full build $([ "$MINBUILD" = 1 ] && echo 'was skipped' || echo 'FAILED (see devcheck.log)'); minimal build of the CUDA suite: ok ($(grep -c '^left out' build/devcheck-min/skipped.txt 2>/dev/null) file(s) left out)"
  [ "$MINBUILD" = 1 ] || STATUS=1
else
  note "build: FAILED, the minimal build too (last lines of the log below)"
  tail -n 40 "$LOG" >>"$SUMMARY"
  exit 1
fi

# 3. Host tests (test_cuda's GPU tests run too when a GPU is present; skipped otherwise), within
# the budget left: on a GPU machine they run after the families (step 6).
host_tests() {
  left=$((BUDGET - $(elapsed)))
  [ "$left" -gt 150 ] && left=150
  if [ "$FULL" = 0 ]; then
    note "host tests: not run (no full build)"
  elif [ "$left" -lt 30 ]; then
    note "host tests: not run (${left}s of the budget left; 'make test' runs them on any machine)"
  elif run "$left" tests ./tests/run.sh build; then
    note "host tests: $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOG" | tail -n 1)"
  else
    note "host tests: FAILED or timed out: $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOG" | tail -n 1)"
    STATUS=1
  fi
}

if [ -z "$GPU" ]; then
  host_tests
  note "no GPU: device validation and benchmarks skipped (dry path)"
  exit $STATUS
fi

# 4. Which machine code the sm_90a kernels became (informational).
if command -v cuobjdump >/dev/null 2>&1; then
  obj=build/kernels/cuda/gemm_wgmma.cu.o
  [ "$FULL" = 1 ] || obj=build/devcheck-min/o/gemm_wgmma.cu.o
  q=$(timeout 60 cuobjdump --dump-sass "$obj" 2>/dev/null | grep -c 'QGMMA')
  h=$(timeout 60 cuobjdump --dump-sass "$obj" 2>/dev/null | grep -c 'HGMMA')
  note "SASS of gemm_wgmma.cu.o: $q QGMMA (FP8 wgmma), $h HGMMA (BF16 wgmma) instructions"
fi

# 5. The suite, one family per process.
SLUG=$(printf '%s' "$GPU" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
CSV=$OUTDIR/${SLUG:-gpu}.csv
rm -f "$CSV"
for fam in gemm grouped bf16 quant permute nccl; do
  left=$((BUDGET - $(elapsed)))
  if [ "$left" -lt 25 ]; then
    note "[$fam] skipped: the time budget (${BUDGET}s) is spent"
    STATUS=1
    continue
  fi
  lim=150
  [ "$lim" -gt "$left" ] && lim=$left
  sum=$WORK/summary_$fam.txt
  run "$lim" "$fam" "$BENCH" --require-gpu --suite "$SUITE" --only "$fam" --out "$CSV" --summary "$sum" --quiet
  rc=$?
  if [ ! -s "$sum" ] && { [ "$fam" = gemm ] || [ "$fam" = grouped ] || [ "$fam" = bf16 ]; }; then
    note "[$fam] ended before its summary (exit $rc): retrying without the wgmma variant"
    STATUS=1
    left=$((BUDGET - $(elapsed)))
    [ "$lim" -gt "$left" ] && lim=$left
    if [ "$lim" -ge 20 ]; then
      MOESIM_CUDA_VARIANTS=naive,mma run "$lim" "$fam-no-wgmma" "$BENCH" --require-gpu --suite "$SUITE" \
        --only "$fam" --out "$CSV" --summary "$sum" --quiet
      rc=$?
    fi
  fi
  if [ -s "$sum" ]; then
    if [ -z "${HEADER_DONE:-}" ]; then
      sed '/^== /,$d' "$sum" >>"$SUMMARY"
      HEADER_DONE=1
    fi
    sed -n '/^== /,$p' "$sum" | sed '/^result: /d' >>"$SUMMARY"
    grep '^result: ' "$sum" | sed "s/^/[$fam] /" >>"$SUMMARY"
  else
    note "[$fam] no summary (exit $rc): see devcheck.log"
  fi
  [ "$rc" = 0 ] || STATUS=1
done

# 6. The host tests, with what is left of the budget.
host_tests

rows=0
[ -f "$CSV" ] && rows=$(($(wc -l <"$CSV") - 1))
note ""
note "rows: $rows in $CSV; failures: $(grep -c 'FAILED' "$SUMMARY") FAILED line(s); total $(elapsed)s"
note "status: $([ "$STATUS" = 0 ] && echo ok || echo 'NOT ok (see above and devcheck.log)')"
exit $STATUS
