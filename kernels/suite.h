/* kernels/suite.h — the CPU kernel suites behind `moesim kernels`: lists of cases (kernel,
 * backend, dtype, shape) that are built one at a time, validated against the plain-C references and
 * timed by the harness (kernels/harness.h), each timing appended to the kernel table.
 *
 *   smoke  every kernel on tiny shapes, every backend (seconds; what the tests run)
 *   quick  every kernel once on a modest shape, best backend (plus the reference quantizer and
 *          the AVX2 one where they differ): under a minute on two cores
 *   moe    the DeepSeek-V3 shapes: GEMMs for M in {4, 16, 128, 512, 2048, 4096} with (K, N) =
 *          (7168, 4096) fused gate+up and (2048, 7168) down, BF16 and FP8; grouped GEMMs in the
 *          contiguous and masked layouts with 8, 32 and 256 experts; the quantizers, gate,
 *          dispatch, combine, SwiGLU at V3 sizes; the MoE layer (V3 widths, 16 routed experts)
 *   full   moe, plus every backend and GEMM variant this CPU runs, E5M2, and a 32-expert layer
 *
 * Shape columns per kernel (kernel-table rows): gemm/grouped_gemm m = rows of A (all groups),
 * n, k as in C = A W^T, groups = experts; quant_token m x k activations; quant_block n x k weights;
 * gate m = tokens, n = experts, k = hidden; dispatch/combine m = tokens, n = routed rows, k = hidden,
 * groups = experts; swiglu m = rows, k = intermediate; moe_layer m = tokens, n = hidden,
 * k = expert intermediate, groups = routed experts; memcpy n = bytes. */
#ifndef MOESIM_SUITE_H
#define MOESIM_SUITE_H

#include <stdint.h>
#include <stdio.h>

#include "dtype.h"
#include "harness.h"
#include "pool.h"

typedef enum ks_kind {
  KS_MEMCPY = 0,
  KS_QUANT_TOKEN,
  KS_QUANT_BLOCK,
  KS_GATE,
  KS_DISPATCH,
  KS_COMBINE,
  KS_SWIGLU,
  KS_GEMM,
  KS_GROUPED,
  KS_MOE_LAYER,
  KS_KIND_COUNT
} ks_kind;

/* One case of a suite, before it is built. */
typedef struct ks_spec {
  ks_kind kind;        /* which kernel */
  kn_dtype dtype;      /* operand dtype (GEMMs, layer, dispatch) or FP8 output format (quant) */
  int64_t m, n, k;     /* shape (meaning per kernel, see above) */
  int groups;          /* experts (grouped GEMM, dispatch, combine, layer) */
  int masked;          /* grouped GEMM / dispatch: 1 masked layout, 0 contiguous */
  int level;           /* backend: a cpu_level, or -1 for the best this CPU runs */
  int pow2;            /* FP8 power-of-two scales */
  const char *gvar;    /* GEMM variant name, NULL for the best */
} ks_spec;

/* The cases of a suite ("smoke", "quick", "moe", "full") for this CPU; NULL for an unknown name. *n gets
 * the count; the array is malloc'd. */
ks_spec *ks_suite(const char *name, int *n);

/* One line describing a case (for --list and messages). */
void ks_describe(const ks_spec *s, char *buf, size_t len);

/* Builds, validates, times and frees one case in session `hs` with threads from tp. Returns what
 * hn_measure returns (0 timed, 1 refused, -1 row not written). */
int ks_run_case(hn_session *hs, pool *tp, const ks_spec *s);

#endif
