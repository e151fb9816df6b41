/* threads — thread counts, the fork-join used by every parallel module and
 * the OpenBLAS hold (see threads.h). */
#include "base/threads.h"

#include <cblas.h>
#include <pthread.h>
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
