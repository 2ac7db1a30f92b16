/* sim/validate.c — the check records of validate.h. */
#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

void val_add(val_report *r, const char *name, double reference, double simulated, const char *unit,
             double tol_pct, const char *note) {
  if (r->len == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 32;
    r->checks = util_xrealloc(r->checks, r->cap * sizeof *r->checks);
  }
  val_check *c = &r->checks[r->len++];
  snprintf(c->name, sizeof c->name, "%s", name);
  c->reference = reference;
  c->simulated = simulated;
  snprintf(c->unit, sizeof c->unit, "%s", unit ? unit : "");
  c->tol_pct = tol_pct;
  snprintf(c->note, sizeof c->note, "%s", note ? note : "");
}

double val_error_pct(const val_check *c) {
  if (c->reference == 0) return fabs(c->simulated) * 100.0;
  return 100.0 * (c->simulated - c->reference) / c->reference;
}

int val_pass(const val_check *c) {
  double e = fabs(val_error_pct(c));
  if (c->tol_pct == 0) return e < 1e-9;
  return e <= c->tol_pct;
}

void val_free(val_report *r) {
  free(r->checks);
  r->checks = NULL;
  r->len = r->cap = 0;
}
