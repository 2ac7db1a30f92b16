/* sim/validate.h — validation against published figures. A suite compares each published
 * reference the project models with the simulated (or measured) figure and records a check:
 * name, reference, simulated value, unit, error and the tolerance it must meet. `moesim validate`
 * prints them as a table or as CSV `check,reference,simulated,unit,error_pct,tolerance_pct,pass`.
 * A reference figure is copied with its source cited beside it, never edited to fit. */
#ifndef MOESIM_VALIDATE_H
#define MOESIM_VALIDATE_H

#include <stddef.h>

typedef struct val_check {
  char name[128];    /* e.g. "deepep.internode.ep32.dispatch_gbps" */
  double reference;  /* published figure */
  double simulated;  /* moesim's figure */
  char unit[16];     /* e.g. "GB/s", "us", "chunks" */
  double tol_pct;    /* allowed |error| in percent (0 = must match exactly) */
  char note[128];    /* source or condition (shown in the table, not in CSV) */
} val_check;

typedef struct val_report {
  val_check *checks; /* checks in the order added */
  size_t len;        /* checks used */
  size_t cap;        /* checks allocated */
} val_report;

/* Adds a check; error_pct = 100 * (simulated - reference) / reference (absolute difference when
 * the reference is 0). */
void val_add(val_report *r, const char *name, double reference, double simulated, const char *unit,
             double tol_pct, const char *note);
double val_error_pct(const val_check *c);
int val_pass(const val_check *c);
void val_free(val_report *r);

/* A suite adds its checks to the report; returns 0, or -1 after printing why it could not run. */
typedef int (*val_suite_fn)(val_report *r);

typedef struct val_suite {
  const char *name;    /* what `moesim validate NAME` selects */
  val_suite_fn fn;     /* the checks */
  const char *summary; /* one line for --help */
} val_suite;

/* The suites, in the order `moesim validate` runs them (defined in cmd_validate.c). */
extern const val_suite val_suites[];
extern const size_t val_suite_count;

#endif
