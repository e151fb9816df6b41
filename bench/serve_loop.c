/* serve_loop — the in-process peer of bench/serve.sh: the same work a
 * GET /v1/recommend?user=ID&n=10 does inside the server (recommend for a known
 * user with the default sources, then the list as JSON), in a loop over the
 * model's users on T threads for S seconds, with the public API only.
 * OpenBLAS runs on the calling thread, as in the server.
 * Prints "inproc_rps=X" and inproc_per_cpu_s (recommends per CPU-second of
 * the process: on a shared machine the share of the cores it got varies,
 * this does not), call_cpu_ms (the mean CPU time of the recommend call
 * alone, timed on its thread: the floor of a request's cost); with --ids-out FILE also writes the user ids (for wrk).
 * Usage: serve_loop --model M [--threads 2] [--seconds 10] [--ids-out FILE] */
#include "cbrec.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "bench_clock.h"

typedef struct worker {
    const cb_recommender *rec;
    const cb_config *opts;
    size_t first, step;
    double seconds;
    size_t done, failed;
    double call_cpu;         /* CPU seconds of this thread inside cb_recommender_recommend */
} worker;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *run(void *arg) {
    worker *w = arg;
    size_t n_users = cb_recommender_user_count(w->rec), u = w->first;
    double end = now() + w->seconds;
    while (now() < end) {
        cb_error err;
        cb_list *l = NULL;
        char *json = NULL;
        double c0 = bench_thread_cpu();
        int rc = cb_recommender_recommend(w->rec, cb_recommender_user_id(w->rec, u), NULL, w->opts, &l, &err);
        w->call_cpu += bench_thread_cpu() - c0;
        if (rc || cb_list_to_json(l, &json, &err))
            w->failed++;
        else
            w->done++;
        free(json);
        cb_list_free(l);
        u = (u + w->step) % n_users;
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *model = NULL, *table = NULL, *ids_out = NULL;
    int threads = 2;
    double seconds = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--table")) table = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--ids-out")) ids_out = argv[i + 1];
    }
    if (!model || threads < 1 || threads > 64 || !(seconds > 0)) {
        fprintf(stderr, "usage: serve_loop --model M [--table T] [--threads 2] [--seconds 10] [--ids-out FILE]\n");
        return 2;
    }
    openblas_set_num_threads(1); /* as cbrec serve: the T threads are the parallelism */
    cb_error err = {0};
    cb_recommender *rec = NULL;
    cb_config *opts = NULL;
    if (cb_recommender_load(&rec, model, table, &err) || cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err) ||
        cb_config_set(opts, "n", "10", &err)) {
        fprintf(stderr, "serve_loop: %s\n", err.msg);
        return 1;
    }
    if (ids_out) {
        FILE *f = fopen(ids_out, "w");
        for (size_t u = 0; f && u < cb_recommender_user_count(rec); u++) fprintf(f, "%s\n", cb_recommender_user_id(rec, u));
        if (!f || fclose(f)) return fprintf(stderr, "serve_loop: cannot write %s\n", ids_out), 1;
    }
    worker w[64];
    pthread_t t[64];
    struct rusage ru0; /* the CPU of loading is not the loop's */
    getrusage(RUSAGE_SELF, &ru0);
    double cpu0 = (double)ru0.ru_utime.tv_sec + 1e-6 * (double)ru0.ru_utime.tv_usec + (double)ru0.ru_stime.tv_sec +
                  1e-6 * (double)ru0.ru_stime.tv_usec;
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){rec, opts, (size_t)i, (size_t)threads, seconds, 0, 0, 0};
        pthread_create(&t[i], NULL, run, &w[i]);
    }
    size_t done = 0, failed = 0;
    double call_cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        done += w[i].done;
        failed += w[i].failed;
        call_cpu += w[i].call_cpu;
    }
    double elapsed = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                 1e-6 * (double)ru.ru_stime.tv_usec - cpu0;
    printf("inproc_rps=%.1f inproc_per_cpu_s=%.1f call_cpu_ms=%.3f inproc_done=%zu inproc_failed=%zu threads=%d "
           "seconds=%.1f\n", (double)done / elapsed, cpu > 0 ? (double)done / cpu : 0,
           done ? 1000 * call_cpu / (double)done : 0, done, failed, threads, elapsed);
    cb_config_free(opts);
    cb_recommender_free(rec);
    return failed ? 1 : 0;
}
