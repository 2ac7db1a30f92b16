/* sim/sweep_store.h — where a sweep's results live between and after runs.
 *
 * A finished point is a record: the fingerprint of its inputs (sweep_inputs_hash), ok or failed,
 * the failure message, and the kind's result columns. Records are appended, one line each, to
 * the journal <out>/sweep.journal the moment a point finishes; each line ends with a checksum,
 * so a line torn by a kill is recognised and dropped, never half-read. A re-run reads the journal
 * and skips every point whose fingerprint has an ok record (failed points run again).
 *
 * results.csv is rebuilt from the records and replaced atomically (temporary file + rename): a
 * reader, or a kill at any moment, sees either the previous complete table or the new one.
 *
 * Lines are written, not fsync'd: a killed process loses nothing the kernel already has, which is
 * what a kill -9 needs; a power cut may lose the last records (their points run again).
 *
 * The journal is the resume state and may be deleted at will (`moesim run --fresh` ignores it);
 * results.csv is the output. A lock file (<out>/sweep.lock, flock) keeps two runs apart. */
#ifndef MOESIM_SWEEP_STORE_H
#define MOESIM_SWEEP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "exp.h"
#include "util.h"

/* One finished point. */
typedef struct sweep_rec {
  uint64_t hash; /* fingerprint of the point's inputs */
  int ok;        /* 1 finished, 0 failed */
  char *error;   /* why it failed (malloc'd; NULL when ok) */
  res_row row;   /* the kind's result columns (empty when failed) */
} sweep_rec;

void sweep_rec_free(sweep_rec *r);
/* Appends the record as one journal line (with its checksum and the newline) to b. */
void sweep_rec_encode(const sweep_rec *r, util_buf *b);
/* Parses one line (without its newline); 0, or -1 when malformed or the checksum differs. */
int sweep_rec_decode(const char *line, size_t len, sweep_rec *r);

/* The journal of a results directory. */
typedef struct sweep_journal {
  char *path;      /* <dir>/sweep.journal */
  int fd;          /* open for appending */
  int lock_fd;     /* <dir>/sweep.lock, flock'd */
  sweep_rec **recs; /* one per fingerprint: the newest ok record, else the newest failed one;
                       each record stays at its address until the journal is closed */
  size_t n, cap;    /* records held / allocated */
  size_t *index;    /* open-addressing table of record numbers + 1 by fingerprint (0: empty) */
  size_t index_cap; /* slots in index, a power of two */
  size_t dropped;  /* torn or corrupt lines skipped when it was read */
} sweep_journal;

/* Opens (creating dir and files) and reads the journal of `dir`; `fresh` forgets its records.
 * Rewrites it compacted (torn lines and superseded records dropped) before appending. Returns
 * 0, or 1 after printing the system error (also when another run holds the lock). */
int sweep_journal_open(const char *dir, int fresh, sweep_journal *j);
/* The record for a fingerprint, or NULL; valid until the journal is closed (a newer record for the
 * same fingerprint is copied into the same place). */
const sweep_rec *sweep_journal_find(const sweep_journal *j, uint64_t hash);
/* Appends a record (one write of one line) and keeps it, taking ownership of *r. Returns 0, or 1
 * after printing the system error. */
int sweep_journal_add(sweep_journal *j, sweep_rec *r);
void sweep_journal_close(sweep_journal *j);

/* Values a CSV field may not hold become harmless: ',' -> ';', newlines and tabs -> ' '. */
void sweep_csv_clean(char *s);

/* The results table: header `point,<keys...>,status,error,<kind columns>` (kind columns in the
 * order they first appear, by point index; one named like a swept key, or point/status/error, is
 * left out: the swept column holds that input), then one row per point with a record (recs[p] !=
 * NULL) in point order. swept[p * n_keys + k] is point p's value of key k, already cleaned. */
void sweep_csv(size_t n_points, size_t n_keys, const char *const *keys, const char *const *swept,
               const sweep_rec *const *recs, util_buf *out);

#endif
