/* parallel — the worker pool of data-parallel training: threads, a barrier
 * that spins briefly then sleeps on a condition variable, the fixed split of
 * a range, the ordered reduction of gradient buffers, and OpenBLAS's thread
 * count while a pool lives. See parallel.h. */
#include "model/parallel.h"
#include "base/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Pause iterations a worker spins before it sleeps at a barrier: a few
 * microseconds, less than a futex wake-up costs, and short enough that a
 * loaded machine loses little to it. */
#define BARRIER_SPINS 2000

struct cb_pool {
    atomic_int n;             /* workers, the caller included (grows while threads start) */
    pthread_t *threads;       /* n - 1 */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint arrived;
    atomic_uint gen;          /* barrier generation */
    cb_pool_fn fn;
    void *ctx;
    bool quit;
};

typedef struct worker_arg {
    cb_pool *p;
    int id;
} worker_arg;

void cb_pool_barrier(cb_pool *p) {
    int n = atomic_load_explicit(&p->n, memory_order_acquire);
    if (n <= 1) return;
    unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->arrived, 1, memory_order_acq_rel) == (unsigned)n - 1) {
        atomic_store_explicit(&p->arrived, 0, memory_order_relaxed);
        pthread_mutex_lock(&p->mu); /* under the lock: a worker about to sleep sees the new generation */
        atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    for (int i = 0; i < BARRIER_SPINS; i++) {
        if (atomic_load_explicit(&p->gen, memory_order_acquire) != g) return;
#if defined(__SSE2__)
        _mm_pause();
#endif
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->gen, memory_order_acquire) == g) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg) {
    worker_arg *a = arg;
    cb_pool *p = a->p;
    for (;;) {
        cb_pool_barrier(p); /* start: fn and ctx are set, or quit */
        if (p->quit) break;
        p->fn(p->ctx, a->id);
        cb_pool_barrier(p); /* end */
    }
    free(a);
    return NULL;
}

int cb_pool_create(cb_pool **out, int n_workers, cb_error *err) {
    *out = NULL;
    if (n_workers < 1) n_workers = 1;
    cb_pool *p = cb_calloc(1, sizeof *p, err);
    if (!p) return CB_ENOMEM;
    p->threads = cb_calloc((size_t)n_workers, sizeof *p->threads, err);
    if (!p->threads) {
        free(p);
        return CB_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->arrived, 0);
    atomic_init(&p->gen, 0);
    cb_blas_hold_one(); /* released by cb_pool_free */
    /* a thread that cannot start leaves a smaller pool: the caller shards by cb_pool_size */
    atomic_init(&p->n, 1);
    for (int i = 1; i < n_workers; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) break;
        *a = (worker_arg){p, i};
        atomic_store(&p->n, i + 1); /* the barrier counts the new thread before it first arrives */
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, a) != 0) {
            atomic_store(&p->n, i);
            free(a);
            break;
        }
    }
    *out = p;
    return CB_OK;
}

int cb_pool_size(const cb_pool *p) { return atomic_load(&p->n); }

void cb_pool_run(cb_pool *p, cb_pool_fn fn, void *ctx) {
    p->fn = fn;
    p->ctx = ctx;
    cb_pool_barrier(p);
    fn(ctx, 0);
    cb_pool_barrier(p);
}

void cb_pool_free(cb_pool *p) {
    if (!p) return;
    p->quit = true;
    cb_pool_barrier(p);
    for (int i = 1; i < cb_pool_size(p); i++) pthread_join(p->threads[i - 1], NULL);
    cb_blas_release();
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int cb_pool_default_threads(void) { return cb_threads_resolve(0, CB_THREADS_MAX); }

void cb_pool_split(size_t n, int parts, int i, size_t align, size_t *lo, size_t *hi) {
    if (align < 1) align = 1;
    size_t a = n * (size_t)i / (size_t)parts, b = n * (size_t)(i + 1) / (size_t)parts;
    a -= a % align;
    b = i == parts - 1 ? n : b - b % align;
    *lo = a;
    *hi = b < a ? a : b;
}

void cb_pool_reduce(float *dst, float *const *src, int n_src, size_t lo, size_t hi) {
    enum { CHUNK = 2048 }; /* a block of dst stays in L1 while every source is added */
    for (size_t c = lo; c < hi; c += CHUNK) {
        size_t e = hi - c < CHUNK ? hi : c + CHUNK;
        memcpy(dst + c, src[0] + c, (e - c) * sizeof *dst);
        for (int w = 1; w < n_src; w++) {
            const float *s = src[w];
            for (size_t i = c; i < e; i++) dst[i] += s[i];
        }
    }
}

