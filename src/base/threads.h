/* threads — the one way libcbrec runs work on its own threads: how many
 * (cb_threads_resolve: 0 = every online core) and a fork-join of N workers
 * (cb_threads_run: the caller's thread is worker 0; a thread that cannot be
 * created leaves its share to the others, so workers must pull units of work
 * from a shared counter rather than own a fixed slice), and OpenBLAS held
 * at one thread while our own threads run (cb_blas_hold_one). Internal. */
#ifndef CB_THREADS_H
#define CB_THREADS_H

#include <stddef.h>

#define CB_THREADS_MAX 256

typedef void *(*cb_thread_fn)(void *);

/* threads > 0: that many (at most cap); 0 or less: the online cores (at most cap). */
int cb_threads_resolve(int threads, int cap);

/* fn(args + t * arg_size) for t in [0, n) on n threads (at most CB_THREADS_MAX),
 * t = 0 on the caller's; returns once all have returned. arg_size 0 gives every
 * worker the same argument. */
void cb_threads_run(cb_thread_fn fn, void *args, size_t arg_size, int n);

/* fn(ctx, unit, worker) for every unit in [lo, hi): the units taken in turn
 * from a shared counter by min(threads, hi - lo) workers on cb_threads_run
 * (worker 0 on the caller's thread); `worker` < that count indexes the
 * caller's per-worker scratch. threads as resolved (>= 1). */
typedef void (*cb_unit_fn)(void *ctx, size_t unit, int worker);
void cb_threads_for(size_t lo, size_t hi, int threads, cb_unit_fn fn, void *ctx);

/* OpenBLAS at one thread until the matching cb_blas_release: the first hold
 * saves its thread count and sets 1, the last release restores it. Holds may
 * overlap, from any threads (a mutex and a depth count): two calls running
 * at once never restore the count under each other, and a release never
 * restores a count some other holder had set. */
void cb_blas_hold_one(void);
void cb_blas_release(void);

#endif
