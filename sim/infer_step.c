/* sim/infer_step.c — the task graph of one inference step or pass (see infer_int.h): for each
 * layer the attention in one or two compute stages; a dense FFN, or the MoE — the shared expert
 * on the compute stream beside the dispatch, then the routed experts, then the combine; the next
 * layer waits for the combine and the shared expert. The head follows the main layers; the MTP
 * module (one more layer and its own head) follows the head. */
#include <stdlib.h>

#include "infer_int.h"
#include "util.h"

int istep_is_moe(const infer_setup *s, const istep_map *map, int l) {
  if (!s->m->moe.routed_experts) return 0;
  return (map->mtp && l == map->n_layers - 1) || model_layer_is_moe(s->m, l);
}

isched *istep_build(const infer_setup *s, int M, int with_mtp, istep_map *map) {
  const model_spec *m = s->m;
  int L = m->layers + (with_mtp ? 1 : 0);
  map->n_layers = L, map->mtp = with_mtp;
  int **arr[] = {&map->a0, &map->a1, &map->shared, &map->disp, &map->exp, &map->comb, &map->dense};
  for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++) {
    *arr[i] = util_xmalloc((size_t)L * sizeof(int));
    for (int l = 0; l < L; l++) (*arr[i])[l] = -1;
  }
  map->head = map->mtp_head = -1;
  isched *sc = isched_new(s->G, M);
  int end0 = -1, end1 = -1;
  int stages = s->d->attn_stages;
  int shared_here = m->moe.shared_experts > 0 && s->d->shared_placement == INFER_SHARED_ATTENTION;
  for (int l = 0; l < L; l++) {
    if (with_mtp && l == L - 1) {
      /* The MTP module drafts from the verified tokens: after the main head. */
      end0 = map->head, end1 = -1;
    }
    int last = map->a0[l] = isched_add(sc, IS_COMPUTE, IS_ATTN, l, end0, end1);
    if (stages > 1) last = map->a1[l] = isched_add(sc, IS_COMPUTE, IS_ATTN, l, last, -1);
    if (istep_is_moe(s, map, l)) {
      if (shared_here) map->shared[l] = isched_add(sc, IS_COMPUTE, IS_SHARED, l, last, -1);
      map->disp[l] = isched_add(sc, IS_COMM, IS_DISPATCH, l, last, -1);
      map->exp[l] = isched_add(sc, IS_COMPUTE, IS_EXPERTS, l, map->disp[l], -1);
      map->comb[l] = isched_add(sc, IS_COMM, IS_COMBINE, l, map->exp[l], -1);
      end0 = map->comb[l], end1 = map->shared[l];
    } else {
      map->dense[l] = isched_add(sc, IS_COMPUTE, IS_DENSE, l, last, -1);
      end0 = map->dense[l], end1 = -1;
    }
    if (l == m->layers - 1) {
      map->head = isched_add(sc, IS_COMPUTE, IS_HEAD, l, end0, end1);
      end0 = map->head, end1 = -1;
    }
  }
  if (with_mtp) map->mtp_head = isched_add(sc, IS_COMPUTE, IS_HEAD, L - 1, end0, end1);
  return sc;
}

void istep_map_free(istep_map *map) {
  free(map->a0), free(map->a1), free(map->shared), free(map->disp), free(map->exp), free(map->comb), free(map->dense);
}
