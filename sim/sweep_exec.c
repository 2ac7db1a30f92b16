/* sim/sweep_exec.c — the process pool that runs sweep points, the progress display and the MPI
 * distribution of points (see sweep_exec.h). */
#include "sweep_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef MOESIM_MPI
#include <mpi.h>
#endif

#include "util.h"

#define SWEEP_ERROR_MAX 400 /* characters of a failure message kept in the table */

/* A running point. */
typedef struct sweep_child {
  pid_t pid;          /* the child process */
  size_t point;       /* which point */
  int res_fd, err_fd; /* read ends: its result line, its stderr+stdout (-1 after EOF) */
  util_buf res, err;  /* what was read so far */
  uint64_t start_ns;  /* when it started */
} sweep_child;

static volatile sig_atomic_t sweep_stop_sig; /* SIGINT/SIGTERM received */

static void sweep_on_signal(int sig) { sweep_stop_sig = sig; }

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The child: load, run, send the row, exit with the kind's status. Never returns. */
static _Noreturn void child_main(const sweep_exec *ex, size_t point, int res_fd, int err_fd) {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  dup2(err_fd, 1);
  dup2(err_fd, 2);
  sweep_point pt;
  int rc = sweep_point_load(ex->sp, point, &pt);
  if (rc == 0) {
    util_buf dir = {0};
    util_buf_printf(&dir, "%s/points/%zu", ex->out_dir, point);
    exp_run run = {.exp_path = ex->sp->exp_path, .out_dir = dir.data, .point = (int)point, .quiet = 1,
                   .trace = ex->trace, .cfg = pt.ctx, .summary = NULL};
    sweep_rec r = {.hash = pt.hash, .ok = 1};
    rc = pt.kind->run(&run, pt.spec, &r.row);
    if (rc == 0) {
      util_buf line = {0};
      sweep_rec_encode(&r, &line);
      if (write_all(res_fd, line.data, line.len) != 0) rc = UTIL_EXIT_SYS;
      util_buf_free(&line);
    }
    sweep_rec_free(&r);
    util_buf_free(&dir);
    sweep_point_free(&pt);
  }
  fflush(NULL);
  _exit(rc);
}

static int spawn(const sweep_exec *ex, size_t point, sweep_child *c, const sweep_child *others, size_t n_others) {
  int rp[2], ep[2];
  if (pipe2(rp, O_CLOEXEC) != 0) return -1;
  if (pipe2(ep, O_CLOEXEC) != 0) {
    close(rp[0]);
    close(rp[1]);
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(rp[0]), close(rp[1]), close(ep[0]), close(ep[1]);
    return -1;
  }
  if (pid == 0) {
    close(rp[0]);
    close(ep[0]);
    for (size_t i = 0; i < n_others; i++) {
      if (others[i].res_fd >= 0) close(others[i].res_fd);
      if (others[i].err_fd >= 0) close(others[i].err_fd);
    }
    child_main(ex, point, rp[1], ep[1]);
  }
  close(rp[1]);
  close(ep[1]);
  memset(c, 0, sizeof *c);
  c->pid = pid;
  c->point = point;
  c->res_fd = rp[0];
  c->err_fd = ep[0];
  c->start_ns = util_now_ns();
  return 0;
}

/* The last non-empty line of text, cleaned and shortened; malloc'd (NULL if none). */
static char *last_line(const char *text) {
  if (!text) return NULL;
  const char *end = text + strlen(text);
  while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
  const char *start = end;
  while (start > text && start[-1] != '\n') start--;
  if (start == end) return NULL;
  size_t n = (size_t)(end - start);
  if (n > SWEEP_ERROR_MAX) n = SWEEP_ERROR_MAX;
  char *s = util_xmalloc(n + 1);
  memcpy(s, start, n);
  s[n] = '\0';
  sweep_csv_clean(s);
  return s;
}

/* Turns a finished child into a record. */
static void child_record(const sweep_exec *ex, sweep_child *c, int status, sweep_rec *r) {
  memset(r, 0, sizeof *r);
  r->hash = ex->hashes[c->point];
  int exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (exited_ok && c->res.data && c->res.len > 0 && c->res.data[c->res.len - 1] == '\n' &&
      sweep_rec_decode(c->res.data, c->res.len - 1, r) == 0 && r->ok)
    return;
  sweep_rec_free(r);
  r->hash = ex->hashes[c->point];
  r->ok = 0;
  util_buf why = {0};
  if (WIFSIGNALED(status))
    util_buf_printf(&why, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else if (!exited_ok)
    util_buf_printf(&why, "exit status %d", WEXITSTATUS(status));
  else
    util_buf_printf(&why, "the point returned no result row");
  char *line = last_line(c->err.data);
  if (line && !WIFSIGNALED(status)) {
    r->error = line;
    util_buf_free(&why);
  } else {
    if (line) util_buf_printf(&why, ": %s", line);
    free(line);
    r->error = why.data;
  }
}

/* Reads what is available on fd into b; closes it (sets -1) at EOF or error. */
static void drain(int *fd, util_buf *b) {
  char chunk[8192];
  ssize_t n = read(*fd, chunk, sizeof chunk);
  if (n > 0) {
    util_buf_append(b, chunk, (size_t)n);
    return;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  close(*fd);
  *fd = -1;
}

static void stop_children(sweep_child *kids, size_t n) {
  for (size_t i = 0; i < n; i++) kill(kids[i].pid, SIGTERM);
  for (size_t i = 0; i < n; i++) {
    while (waitpid(kids[i].pid, NULL, 0) < 0 && errno == EINTR) {}
    if (kids[i].res_fd >= 0) close(kids[i].res_fd);
    if (kids[i].err_fd >= 0) close(kids[i].err_fd);
    util_buf_free(&kids[i].res);
    util_buf_free(&kids[i].err);
  }
}

int sweep_exec_run(const sweep_exec *ex) {
  int jobs = ex->jobs > 0 ? ex->jobs : 1;
  sweep_child *kids = util_xcalloc((size_t)jobs, sizeof *kids);
  struct pollfd *pfd = util_xcalloc(2 * (size_t)jobs, sizeof *pfd);
  size_t n = 0;
  int exhausted = 0, rc = 0;
  struct sigaction sa = {0}, old_int, old_term;
  sa.sa_handler = sweep_on_signal;
  sigemptyset(&sa.sa_mask);
  sweep_stop_sig = 0;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  for (;;) {
    while (!sweep_stop_sig && rc == 0 && !exhausted && n < (size_t)jobs) {
      long p = ex->next(ex->arg);
      if (p < 0) {
        exhausted = 1;
        break;
      }
      if (spawn(ex, (size_t)p, &kids[n], kids, n) != 0) {
        fprintf(stderr, "moesim: error: cannot start a process for point %ld: %s\n", p, strerror(errno));
        rc = UTIL_EXIT_SYS;
        break;
      }
      n++;
    }
    if (sweep_stop_sig || rc != 0) {
      stop_children(kids, n);
      n = 0;
      if (rc == 0) rc = 128 + sweep_stop_sig;
      break;
    }
    if (n == 0) break;
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
      if (kids[i].res_fd >= 0) pfd[np++] = (struct pollfd){.fd = kids[i].res_fd, .events = POLLIN};
      if (kids[i].err_fd >= 0) pfd[np++] = (struct pollfd){.fd = kids[i].err_fd, .events = POLLIN};
    }
    if (np > 0 && poll(pfd, np, 250) < 0 && errno != EINTR) {
      fprintf(stderr, "moesim: error: poll: %s\n", strerror(errno));
      rc = UTIL_EXIT_SYS;
      continue;
    }
    for (size_t i = 0; i < np; i++) {
      if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      for (size_t k = 0; k < n; k++) {
        if (kids[k].res_fd == pfd[i].fd) drain(&kids[k].res_fd, &kids[k].res);
        else if (kids[k].err_fd == pfd[i].fd) drain(&kids[k].err_fd, &kids[k].err);
      }
    }
    if (ex->tick) ex->tick(ex->arg);
    for (size_t k = 0; k < n && rc == 0;) {
      if (kids[k].res_fd >= 0 || kids[k].err_fd >= 0) {
        k++;
        continue;
      }
      int st = 0;
      while (waitpid(kids[k].pid, &st, 0) < 0 && errno == EINTR) {}
      sweep_rec r;
      child_record(ex, &kids[k], st, &r);
      double secs = (double)(util_now_ns() - kids[k].start_ns) * 1e-9;
      rc = ex->done(ex->arg, kids[k].point, &r, kids[k].err.data ? kids[k].err.data : "", secs);
      util_buf_free(&kids[k].res);
      util_buf_free(&kids[k].err);
      kids[k] = kids[--n];
    }
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  free(kids);
  free(pfd);
  return rc;
}

/* ---------------------------------------------------------------- progress */

static void fmt_duration(char *out, size_t n, double s) {
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
}

/* "12/40 points, 1 failed, 0:31 elapsed, ETA 1:10" */
static void progress_text(const sweep_progress *p, char *out, size_t n) {
  double el = (double)(util_now_ns() - p->start_ns) * 1e-9;
  char e[32], eta[32] = "?";
  fmt_duration(e, sizeof e, el);
  if (p->done > 0) fmt_duration(eta, sizeof eta, el / (double)p->done * (double)(p->total - p->done));
  int len = snprintf(out, n, "%zu/%zu points", p->done, p->total);
  if (p->failed && len > 0 && (size_t)len < n) len += snprintf(out + len, n - (size_t)len, ", %zu failed", p->failed);
  if (len > 0 && (size_t)len < n) snprintf(out + len, n - (size_t)len, ", %s elapsed, ETA %s", e, eta);
}

void sweep_progress_start(sweep_progress *p, size_t total, int quiet) {
  memset(p, 0, sizeof *p);
  p->total = total;
  p->quiet = quiet;
  p->tty = util_stderr_is_tty();
  p->start_ns = util_now_ns();
}

static void progress_draw(sweep_progress *p) {
  char text[160], bar[41];
  int w = 30, fill = p->total ? (int)((double)w * (double)p->done / (double)p->total) : w;
  for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
  bar[w] = '\0';
  progress_text(p, text, sizeof text);
  fprintf(stderr, "\r[%s] %3.0f%%  %s\033[K", bar, p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, text);
  fflush(stderr);
  p->shown = 1;
  p->drawn_ns = util_now_ns();
}

void sweep_progress_clear(sweep_progress *p) {
  if (p->quiet || !p->tty || !p->shown) return;
  fputs("\r\033[K", stderr);
  fflush(stderr);
  p->shown = 0;
}

void sweep_progress_tick(sweep_progress *p) {
  if (p->quiet || !p->tty) return;
  if (!p->shown || util_now_ns() - p->drawn_ns > 500000000ull) progress_draw(p);
}

void sweep_progress_point(sweep_progress *p, size_t point, const char *label, int ok, double seconds) {
  p->done++;
  p->failed += !ok;
  if (p->quiet) return;
  if (p->tty) {
    progress_draw(p);
    if (p->done == p->total) {
      fputc('\n', stderr);
      p->shown = 0;
    }
    return;
  }
  char text[160];
  progress_text(p, text, sizeof text);
  fprintf(stderr, "point %zu %s in %.1fs (%s) — %s\n", point, ok ? "done" : "FAILED", seconds, label, text);
}

/* ---------------------------------------------------------------- MPI */

#ifdef MOESIM_MPI
enum { SWEEP_TAG_REQ = 71, SWEEP_TAG_POINT = 72, SWEEP_TAG_REC = 73 };

static long mpi_next(void *arg) {
  (void)arg;
  long long p = -1;
  MPI_Send(NULL, 0, MPI_BYTE, 0, SWEEP_TAG_REQ, MPI_COMM_WORLD);
  MPI_Recv(&p, 1, MPI_LONG_LONG, 0, SWEEP_TAG_POINT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return (long)p;
}

/* Message: "<point> <seconds>\n<journal line>\n<log>". */
static int mpi_done(void *arg, size_t point, sweep_rec *r, const char *log, double seconds) {
  (void)arg;
  util_buf b = {0};
  util_buf_printf(&b, "%zu %.6f\n", point, seconds);
  sweep_rec_encode(r, &b);
  util_buf_printf(&b, "%s", log);
  MPI_Send(b.data, (int)b.len, MPI_BYTE, 0, SWEEP_TAG_REC, MPI_COMM_WORLD);
  util_buf_free(&b);
  sweep_rec_free(r);
  return 0;
}

int sweep_mpi_worker(sweep_exec *ex) {
  ex->next = mpi_next;
  ex->done = mpi_done;
  ex->tick = NULL;
  ex->arg = NULL;
  return sweep_exec_run(ex);
}

int sweep_mpi_coordinator(const sweep_exec *ex, int n_workers) {
  int finished = 0, rc = 0;
  long outstanding = 0, exhausted = 0;
  while (finished < n_workers || outstanding > 0) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) {
      if (ex->tick) ex->tick(ex->arg);
      usleep(5000);
      continue;
    }
    int len = 0;
    MPI_Get_count(&st, MPI_BYTE, &len);
    char *msg = util_xmalloc((size_t)len + 1);
    MPI_Recv(msg, len, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    msg[len] = '\0';
    if (st.MPI_TAG == SWEEP_TAG_REQ) {
      long long p = exhausted || rc != 0 ? -1 : ex->next(ex->arg);
      if (p < 0) {
        exhausted = 1;
        finished++;
      } else {
        outstanding++;
      }
      MPI_Send(&p, 1, MPI_LONG_LONG, st.MPI_SOURCE, SWEEP_TAG_POINT, MPI_COMM_WORLD);
    } else if (st.MPI_TAG == SWEEP_TAG_REC) {
      size_t point = 0;
      double secs = 0;
      char *nl1 = strchr(msg, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
      sweep_rec r;
      outstanding--;
      if (!nl2 || sscanf(msg, "%zu %lf", &point, &secs) != 2 ||
          sweep_rec_decode(nl1 + 1, (size_t)(nl2 - nl1 - 1), &r) != 0) {
        fprintf(stderr, "moesim: error: rank %d sent a malformed record\n", st.MPI_SOURCE);
        rc = UTIL_EXIT_SYS;
      } else if (rc == 0) {
        rc = ex->done(ex->arg, point, &r, nl2 + 1, secs);
      } else {
        sweep_rec_free(&r);
      }
    }
    free(msg);
  }
  return rc;
}
#endif
