/* parallel — the machinery of data-parallel training, apart from the model:
 * a pool of worker threads that run one function together and meet at a
 * blocking barrier, the fixed split of a range into parts, the deterministic
 * reduction of per-worker gradient buffers, and OpenBLAS's thread count while
 * the pool lives. train.c's training loop is its one user: each worker runs
 * both towers on its shard of the batch rows (see model.h, "Threading").
 *
 * Threading: a pool is driven by one thread (the one that created it); the
 * function given to cb_pool_run runs on every worker at once, worker 0 being
 * the calling thread. */
#ifndef CB_PARALLEL_H
#define CB_PARALLEL_H

#include "base/util.h"
#include <stddef.h>

typedef struct cb_pool cb_pool;
typedef void (*cb_pool_fn)(void *ctx, int worker);

/* A pool of n_workers (>= 1): n_workers - 1 threads are started now and wait
 * for work. While the pool lives OpenBLAS runs on one thread (its own fan-out
 * would race with ours for the cores); cb_pool_free restores its count. */
int cb_pool_create(cb_pool **out, int n_workers, cb_error *err);
void cb_pool_free(cb_pool *p); /* NULL is a no-op; joins the threads */
int cb_pool_size(const cb_pool *p);
/* fn(ctx, w) on every worker w = 0 .. n-1 (0 on the calling thread); returns
 * when all have returned. */
void cb_pool_run(cb_pool *p, cb_pool_fn fn, void *ctx);
/* Inside fn: wait until every worker has arrived. It spins briefly, then
 * sleeps on a condition variable (a loaded machine gets its cores back). */
void cb_pool_barrier(cb_pool *p);

/* The online cores (>= 1): the default thread count. */
int cb_pool_default_threads(void);
/* Part i of n items split into `parts` contiguous parts, the same for every
 * caller: [*lo, *hi). align > 1 rounds the cut points to multiples of align
 * (gradient slices on separate cache lines). */
void cb_pool_split(size_t n, int parts, int i, size_t align, size_t *lo, size_t *hi);
/* dst[lo..hi) = src[0][lo..hi) + src[1][lo..hi) + ... + src[n_src-1][lo..hi),
 * always added in that order: the same bits whoever calls it. */
void cb_pool_reduce(float *dst, float *const *src, int n_src, size_t lo, size_t hi);

#endif /* CB_PARALLEL_H */
