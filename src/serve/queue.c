/* queue — the request workers of cbrec serve: a bounded FIFO of jobs and
 * the threads that run them. libmicrohttpd's thread only reads requests and
 * writes answers; a complete request becomes a job here (its connection
 * suspended meanwhile), so every request the server has read is counted
 * and the admission limit (--max-inflight) bounds the whole queue: when it
 * is full the caller answers 503 at once instead of letting the wait grow.
 * Knows nothing of HTTP: a job is a pointer handed to run(). */
#include "serve/serve.h"

#include <stdlib.h>

struct sv_queue {
    pthread_mutex_t mu;
    pthread_cond_t ready;
    void **ring;                 /* [cap] */
    size_t cap, head, len;
    bool stopping;
    void (*run)(void *job, void *ctx);
    void *ctx;
    unsigned n_threads;
    pthread_t *threads;
};

static void *worker(void *arg) {
    sv_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->len && !q->stopping) pthread_cond_wait(&q->ready, &q->mu);
        if (!q->len) break; /* stopping, and nothing left: every queued job was run */
        void *job = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        pthread_mutex_unlock(&q->mu);
        q->run(job, q->ctx);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

sv_queue *sv_queue_start(unsigned threads, size_t cap, void (*run)(void *job, void *ctx), void *ctx) {
    sv_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->ring = calloc(cap ? cap : 1, sizeof *q->ring);
    q->threads = calloc(threads ? threads : 1, sizeof *q->threads);
    q->cap = cap ? cap : 1;
    q->run = run;
    q->ctx = ctx;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->ready, NULL);
    if (!q->ring || !q->threads) {
        sv_queue_free(q);
        return NULL;
    }
    for (unsigned i = 0; i < (threads ? threads : 1); i++) {
        if (pthread_create(&q->threads[i], NULL, worker, q)) {
            sv_queue_free(q);
            return NULL;
        }
        q->n_threads++;
    }
    return q;
}

bool sv_queue_push(sv_queue *q, void *job) {
    pthread_mutex_lock(&q->mu);
    bool ok = !q->stopping && q->len < q->cap;
    if (ok) {
        q->ring[(q->head + q->len) % q->cap] = job;
        q->len++;
        pthread_cond_signal(&q->ready);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

void sv_queue_stop(sv_queue *q) {
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->mu);
    for (unsigned i = 0; i < q->n_threads; i++) pthread_join(q->threads[i], NULL);
    q->n_threads = 0;
}

void sv_queue_free(sv_queue *q) {
    if (!q) return;
    sv_queue_stop(q);
    pthread_cond_destroy(&q->ready);
    pthread_mutex_destroy(&q->mu);
    free(q->threads);
    free(q->ring);
    free(q);
}
