/* threads — thread counts, the fork-join used by every parallel module, its
 * loop over units from a shared counter, and the OpenBLAS hold (see
 * threads.h). */
#include "base/threads.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

int cb_threads_resolve(int threads, int cap) {
    if (cap < 1) cap = 1;
    if (threads > 0) return threads > cap ? cap : threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > cap ? cap : n) : 1;
}

void cb_threads_run(cb_thread_fn fn, void *args, size_t arg_size, int n) {
    pthread_t tid[CB_THREADS_MAX];
    bool started[CB_THREADS_MAX] = {false};
    if (n > CB_THREADS_MAX) n = CB_THREADS_MAX;
    for (int t = 1; t < n; t++) started[t] = pthread_create(&tid[t], NULL, fn, (char *)args + (size_t)t * arg_size) == 0;
    fn(args);
    for (int t = 1; t < n; t++)
        if (started[t]) pthread_join(tid[t], NULL);
}

typedef struct for_job {
    atomic_size_t next;
    size_t hi;
    cb_unit_fn fn;
    void *ctx;
} for_job;

typedef struct for_arg {
    for_job *job;
    int worker;
} for_arg;

static void *for_worker(void *arg) {
    for_arg *a = arg;
    for (size_t u; (u = atomic_fetch_add(&a->job->next, 1)) < a->job->hi;) a->job->fn(a->job->ctx, u, a->worker);
    return NULL;
}

void cb_threads_for(size_t lo, size_t hi, int threads, cb_unit_fn fn, void *ctx) {
    if (hi <= lo) return;
    for_job job = {.hi = hi, .fn = fn, .ctx = ctx};
    atomic_init(&job.next, lo);
    int n = threads < 1 ? 1 : threads > CB_THREADS_MAX ? CB_THREADS_MAX : threads;
    if ((size_t)n > hi - lo) n = (int)(hi - lo);
    for_arg args[CB_THREADS_MAX];
    for (int w = 0; w < n; w++) args[w] = (for_arg){&job, w};
    cb_threads_run(for_worker, args, sizeof args[0], n);
}

static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int blas_depth, blas_saved;

void cb_blas_hold_one(void) {
    pthread_mutex_lock(&blas_mu);
    if (blas_depth++ == 0) {
        blas_saved = openblas_get_num_threads();
        if (blas_saved != 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_mu);
}

void cb_blas_release(void) {
    pthread_mutex_lock(&blas_mu);
    if (blas_depth > 0 && --blas_depth == 0 && blas_saved != 1) openblas_set_num_threads(blas_saved);
    pthread_mutex_unlock(&blas_mu);
}
