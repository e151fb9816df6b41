/* ridge_inverse — cb_neighbours_ridge_inverse (neighbours.h): EASE's dense
 * (G + ridge I)^-1 on the caller's threads, by square tiles of TILE rows:
 * Cholesky G + ridge I = L L^T (right-looking), X = L^-1 column of tiles by
 * column of tiles, then the inverse X^T X tile by tile. Every tile is one
 * fixed sequence of one-thread BLAS / LAPACK calls on fixed shapes, and the
 * tiles of a stage are independent, so the bits do not depend on how many
 * threads share them out (the chosen neighbours must not: mpirun ranks and
 * one process agree, and 1 or N threads).
 *
 * Across a communicator's ranks the Cholesky runs on every rank (a column
 * of tiles at a time, each step waiting for the one before), and the two
 * stages after it, two thirds of the arithmetic, are split: each rank
 * computes its share of X's columns of tiles, then of the inverse's tiles
 * (dealt by their cost, costliest first to the least loaded), and the
 * ranks all-gather them (comm.h): the tiles are the bits one process
 * computes, whoever computes them.
 *
 * Storage, column-major (the matrix is symmetric, so row-major is the same
 * buffer): L in the lower triangle; X's off-diagonal tiles transposed in the
 * upper triangle (tile (J, I) holds X_IJ^T, I > J), its diagonal tiles in a
 * side buffer; the inverse into the lower triangle, then mirrored. */
#include "model/neighbours.h"
#include "model/comm.h"
#include "base/threads.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's (libopenblas has them; Debian ships no lapack.h beside its
 * cblas.h). Fortran convention: arguments by reference, the hidden lengths
 * of the character arguments last. */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
extern void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info,
                    size_t uplo_len, size_t diag_len);

#define TILE 128

typedef struct inv_job {
    double *a, *diag; /* the matrix; X's diagonal tiles (nt of TILE x TILE) */
    double *scratch;  /* a TILE x TILE tile per worker */
    int n, nt, k;     /* side, tiles per side, the Cholesky's current column of tiles */
    int stage;        /* 0: the panel below (k, k); 1: the trailing update; 2: X's columns; 3: X^T X */
    const int *tasks; /* NULL: a stage's task t is t; else tasks[t] (this rank's share) */
    atomic_int failed;
} inv_job;

static int side_of(const inv_job *j, int t) { return t + 1 < j->nt ? TILE : j->n - t * TILE; }
static double *tile(const inv_job *j, int r, int c) { return j->a + (size_t)r * TILE + (size_t)c * TILE * j->n; }
static double *dtile(const inv_job *j, int t) { return j->diag + (size_t)t * TILE * TILE; }

/* The task-th pair (i, c) with c <= i of the triangle whose first row and column is `first`. */
static void pair_of(int task, int first, int *i, int *c) {
    int r = 0;
    while ((r + 1) * (r + 2) / 2 <= task) r++;
    *i = first + r, *c = first + task - r * (r + 1) / 2;
}

/* Cholesky, column k of tiles: tile (i, k) below the diagonal times L_kk^-T. */
static void panel(inv_job *j, int task) {
    int i = j->k + 1 + task, mk = side_of(j, j->k);
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, side_of(j, i), mk, 1.0,
                tile(j, j->k, j->k), j->n, tile(j, i, j->k), j->n);
}

/* Cholesky, after column k: tile (i, c) of the trailing part -= L_ik L_ck^T. */
static void trailing(inv_job *j, int task) {
    int i, c, mk = side_of(j, j->k);
    pair_of(task, j->k + 1, &i, &c);
    if (i == c)
        cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, side_of(j, i), mk, -1.0, tile(j, i, j->k), j->n, 1.0,
                    tile(j, i, i), j->n);
    else
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, side_of(j, i), side_of(j, c), mk, -1.0, tile(j, i, j->k),
                    j->n, tile(j, c, j->k), j->n, 1.0, tile(j, i, c), j->n);
}

/* X = L^-1, column c of tiles: X_cc = L_cc^-1; below it, row by row,
 * X_ic = -L_ii^-1 (L_ic X_cc + sum over c < k < i of L_ik X_kc). */
static void x_column(inv_job *j, int c, double *s) {
    int mc = side_of(j, c), info = 0;
    double *d = dtile(j, c);
    for (int q = 0; q < mc; q++) /* L_cc's lower triangle, zeros above */
        for (int p = 0; p < mc; p++) d[p + (size_t)q * TILE] = p >= q ? tile(j, c, c)[p + (size_t)q * j->n] : 0.0;
    dtrtri_("L", "N", &mc, d, &(int){TILE}, &info, 1, 1);
    if (info) atomic_store(&j->failed, 1);
    for (int i = c + 1; !info && i < j->nt; i++) {
        int mi = side_of(j, i);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, mi, mc, mc, 1.0, tile(j, i, c), j->n, d, TILE, 0.0, s,
                    mi);
        for (int k = c + 1; k < i; k++) /* X_kc is tile (c, k) transposed */
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, mi, mc, side_of(j, k), 1.0, tile(j, i, k), j->n,
                        tile(j, c, k), j->n, 1.0, s, mi);
        cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, mi, mc, -1.0, tile(j, i, i),
                    j->n, s, mi);
        double *t = tile(j, c, i); /* X_ic^T */
        for (int q = 0; q < mc; q++)
            for (int p = 0; p < mi; p++) t[q + (size_t)p * j->n] = s[p + (size_t)q * mi];
    }
}

/* The inverse's tile (i, c), c <= i: sum over k >= i of X_ki^T X_kc. */
static void product(inv_job *j, int task, double *s) {
    int i, c;
    pair_of(task, 0, &i, &c);
    int mi = side_of(j, i), mc = side_of(j, c);
    if (i == c) /* X_ii^T X_ii: X_ii lower triangular */
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, mi, mc, mi, 1.0, dtile(j, i), TILE, dtile(j, i), TILE, 0.0,
                    s, mi);
    else /* X_ii^T X_ic, X_ic = tile (c, i)^T */
        cblas_dgemm(CblasColMajor, CblasTrans, CblasTrans, mi, mc, mi, 1.0, dtile(j, i), TILE, tile(j, c, i), j->n,
                    0.0, s, mi);
    for (int k = i + 1; k < j->nt; k++) /* X_ki^T X_kc = tile (i, k) tile (c, k)^T */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, mi, mc, side_of(j, k), 1.0, tile(j, i, k), j->n,
                    tile(j, c, k), j->n, 1.0, s, mi);
    double *t = tile(j, i, c);
    for (int q = 0; q < mc; q++) memcpy(t + (size_t)q * j->n, s + (size_t)q * mi, (size_t)mi * sizeof *s);
}

static void inv_task(void *ctx, size_t u, int worker) {
    inv_job *j = ctx;
    double *s = j->scratch + (size_t)worker * TILE * TILE;
    int t = j->tasks ? j->tasks[u] : (int)u;
    if (j->stage == 0) panel(j, t);
    else if (j->stage == 1) trailing(j, t);
    else if (j->stage == 2) x_column(j, t, s);
    else product(j, t, s);
}

/* Stage `stage` of n_tasks tasks (tasks: which, NULL: 0 .. n_tasks - 1) on
 * the job's threads. */
static void run_stage(inv_job *j, int stage, int n_tasks, const int *tasks, int threads) {
    j->stage = stage;
    j->tasks = tasks;
    cb_threads_for(0, n_tasks > 0 ? (size_t)n_tasks : 0, threads, inv_task, j);
}

/* ---- stages 2 and 3 across ranks */

/* Task t of stage 2 (X's column of tiles t) or 3 (the inverse's tile
 * pair_of(t)): its cost in tile products, and its output as a block of
 * the matrix, rows [*r0, *r0 + *nr) x columns [*c0, *c0 + *nc) (stage 2:
 * X's off-diagonal tiles of the column, stored transposed in the upper
 * triangle; its diagonal tile is in j->diag). */
static long task_cost(const inv_job *j, int stage, int t) {
    int i, c;
    if (stage == 2) return (long)(j->nt - t) * (j->nt - t + 1) / 2;
    pair_of(t, 0, &i, &c);
    return j->nt - i + 1;
}

static void task_block(const inv_job *j, int stage, int t, int *r0, int *nr, int *c0, int *nc) {
    int i, c;
    if (stage == 2) {
        *r0 = t * TILE, *nr = side_of(j, t), *c0 = (t + 1) * TILE, *nc = j->n - *c0;
        if (*nc < 0) *nc = 0;
        return;
    }
    pair_of(t, 0, &i, &c);
    *r0 = i * TILE, *nr = side_of(j, i), *c0 = c * TILE, *nc = side_of(j, c);
}

/* The doubles task t's output takes packed (stage 2: its diagonal tile too). */
static size_t task_size(const inv_job *j, int stage, int t) {
    int r0, nr, c0, nc;
    task_block(j, stage, t, &r0, &nr, &c0, &nc);
    return (size_t)nr * (size_t)nc + (stage == 2 ? (size_t)TILE * TILE : 0);
}

/* Task t's output to (pack) or from buf; returns the doubles moved. */
static size_t task_move(inv_job *j, int stage, int t, double *buf, bool pack) {
    int r0, nr, c0, nc;
    task_block(j, stage, t, &r0, &nr, &c0, &nc);
    size_t at = 0, col = (size_t)nr * sizeof *buf;
    for (int q = c0; q < c0 + nc; q++, at += (size_t)nr) {
        double *m = j->a + (size_t)r0 + (size_t)q * (size_t)j->n;
        memcpy(pack ? buf + at : m, pack ? m : buf + at, col);
    }
    if (stage == 2) {
        double *d = dtile(j, t);
        memcpy(pack ? buf + at : d, pack ? d : buf + at, (size_t)TILE * TILE * sizeof *buf);
        at += (size_t)TILE * TILE;
    }
    return at;
}

/* A task and its cost, for deal_tasks' order. */
typedef struct task_rank {
    long cost;
    int task;
} task_rank;

/* The costliest first, the lower task first among equals. */
static int cmp_task_rank(const void *pa, const void *pb) {
    const task_rank *a = pa, *b = pb;
    if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
    return (a->task > b->task) - (a->task < b->task);
}

/* owner[t] for the n tasks of a stage: the costliest first (the first of
 * equals), each to the least loaded rank (the first of equals): the same on
 * every rank. One sort of the tasks (order: n entries of scratch), not a
 * scan of the tasks left for each task: that was O(n^2) cost look-ups, 0.4 s
 * on every rank for n = 8000's 2,016 tiles. */
static void deal_tasks(const inv_job *j, int stage, int n, int n_ranks, task_rank *order, int *owner) {
    long load[n_ranks];
    memset(load, 0, sizeof load);
    for (int t = 0; t < n; t++) order[t] = (task_rank){task_cost(j, stage, t), t};
    qsort(order, (size_t)n, sizeof *order, cmp_task_rank);
    for (int u = 0; u < n; u++) {
        int r = 0;
        for (int q = 1; q < n_ranks; q++)
            if (load[q] < load[r]) r = q;
        owner[order[u].task] = r;
        load[r] += order[u].cost;
    }
}

/* Stage `stage`'s n tasks split across comm's ranks: this rank's on its
 * threads, then every rank's outputs all-gathered (with each rank's
 * failure flag, so all ranks agree on one). */
static int shared_stage(inv_job *j, int stage, int n, int threads, const cb_train_comm *comm, cb_error *err) {
    int R = cb_comm_ranks(comm), me = cb_comm_rank(comm), *owner = cb_malloc(2 * ((size_t)n + 1) * sizeof *owner, err);
    size_t *bytes = owner ? cb_calloc(2 * (size_t)R, sizeof *bytes, err) : NULL, *offset = bytes ? bytes + R : NULL;
    task_rank *order = bytes ? cb_malloc(((size_t)n + 1) * sizeof *order, err) : NULL;
    double *buf = NULL;
    int *mine = owner ? owner + n + 1 : NULL, n_mine = 0;
    if (order) {
        size_t total = 0;
        deal_tasks(j, stage, n, R, order, owner);
        for (int t = 0; t < n; t++) {
            bytes[owner[t]] += task_size(j, stage, t) * sizeof(double);
            if (owner[t] == me) mine[n_mine++] = t;
        }
        for (int r = 0; r < R; r++) offset[r] = total, bytes[r] += sizeof(double), total += bytes[r]; /* + the flag */
        buf = cb_malloc(total, err);
    }
    free(order);
    int rc = cb_comm_all_ok(comm, buf != NULL, err); /* every rank, or none, goes on to the all-gather */
    if (!rc) {
        run_stage(j, stage, n_mine, mine, threads);
        double *p = buf + offset[me] / sizeof *buf;
        for (int u = 0; u < n_mine; u++) p += task_move(j, stage, mine[u], p, true);
        *p = atomic_load(&j->failed);
        rc = cb_comm_allgather_bytes(comm, buf, bytes, offset, err);
    }
    for (int r = 0; !rc && r < R; r++) {
        double *p = buf + offset[r] / sizeof *buf;
        for (int t = 0; t < n; t++)
            if (owner[t] == r) p += r == me ? task_size(j, stage, t) : task_move(j, stage, t, p, false);
        if (*p != 0) atomic_store(&j->failed, 1);
    }
    free(buf);
    free(bytes);
    free(owner);
    return rc;
}

/* Stage 2 or 3, on this process's threads or split across comm's ranks. */
static int later_stage(inv_job *j, int stage, int n, int threads, const cb_train_comm *comm, cb_error *err) {
    if (cb_comm_ranks(comm) == 1) return run_stage(j, stage, n, NULL, threads), CB_OK;
    return shared_stage(j, stage, n, threads, comm, err);
}

int cb_neighbours_ridge_inverse(double *a, size_t n, double ridge, int threads, const cb_train_comm *comm,
                                cb_error *err) {
    if (n == 0) return CB_OK;
    if (n > 1000000u) /* the stages' task counts (about (n / TILE)^2 / 2) are ints */
        return cb_fail(err, CB_EINVAL, "EASE's inverse: a side of %zu is too large (at most 1,000,000)", n);
    threads = cb_threads_resolve(threads, CB_THREADS_MAX);
    inv_job j = {.a = a, .n = (int)n, .nt = (int)((n + TILE - 1) / TILE)};
    j.diag = cb_calloc((size_t)j.nt * TILE * TILE, sizeof *j.diag, err); /* an edge tile's unused part travels too */
    j.scratch = j.diag ? cb_malloc((size_t)threads * TILE * TILE * sizeof *j.scratch, err) : NULL;
    if (!j.scratch) return free(j.diag), CB_ENOMEM;
    for (size_t i = 0; i < n; i++) a[i * n + i] += ridge;
    int info = 0;
    cb_blas_hold_one();
    for (j.k = 0; j.k < j.nt && !info; j.k++) {
        int mk = side_of(&j, j.k), rest = j.nt - j.k - 1;
        dpotrf_("L", &mk, tile(&j, j.k, j.k), &j.n, &info, 1);
        if (info) break;
        run_stage(&j, 0, rest, NULL, threads);
        run_stage(&j, 1, rest * (rest + 1) / 2, NULL, threads);
    }
    int rc = CB_OK; /* info is alike on every rank: the same factorisation */
    if (!info) rc = later_stage(&j, 2, j.nt, threads, comm, err);
    if (!rc && !info && !atomic_load(&j.failed)) rc = later_stage(&j, 3, j.nt * (j.nt + 1) / 2, threads, comm, err);
    cb_blas_release();
    int failed = info || atomic_load(&j.failed);
    free(j.diag);
    free(j.scratch);
    if (rc) return rc;
    if (failed)
        return cb_fail(err, CB_ENUMERIC, "EASE's Cholesky inverse failed (the matrix is not positive definite%s)",
                       info ? "" : ": a singular factor");
    for (size_t c = 0; c < n; c++) /* the lower triangle (column-major) into the upper */
        for (size_t r = c + 1; r < n; r++) a[r * n + c] = a[c * n + r];
    return CB_OK;
}
