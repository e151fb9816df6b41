/* bench_knn — speed of the similar-items precompute and of one-query
 * retrieval, as ratios against peers measured in the same run:
 *   precompute (blocked sgemm + top-k selection + canonical rescoring) vs the
 *   bare sgemm of the same tiles without selection (goal <= 1.5x), at 100k
 *   items (whole table) and 1M items (a slice of query rows, extrapolated);
 *   our threads vs OpenBLAS's threads for the same products;
 *   top-k of one query against 1M items (p50/p99 over 200 queries) vs
 *   streaming the 1M x 32 matrix once (goal p50 <= 2x), with sgemv as a peer.
 * Usage: bench_knn [--quick] [--slice ROWS] [--full-1m] [--sweep]
 *   --quick    smaller catalogs (for a smoke run)
 *   --slice    query rows of the 1M precompute actually run (default 20000)
 *   --full-1m  run the whole 1M x 1M precompute (~10+ minutes on 2 cores)
 *   --sweep    also try a few tile sizes (prints one line each) */
#include "index/knn.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "bench_clock.h"

/* Wall and CPU (all threads of the process) seconds of one measurement. The
 * machine may be shared: CPU time is the work done, wall time includes
 * waiting for the CPU, so both are reported and ratios are given for both. */
typedef struct span {
    double wall, cpu;
} span;

static span span_start(void) { return (span){cb_now(), bench_process_cpu()}; }
static span span_end(span s) { return (span){cb_now() - s.wall, bench_process_cpu() - s.cpu}; }

static float *unit_rows(size_t n, size_t d, uint64_t seed) {
    float *v = malloc(n * d * sizeof *v);
    if (!v) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        for (size_t t = 0; t < d; t++) {
            float x = (float)cb_rng_normal(&rng);
            v[i * d + t] = x;
            ss += (double)x * x;
        }
        float inv = (float)(1.0 / sqrt(ss));
        for (size_t t = 0; t < d; t++) v[i * d + t] *= inv;
    }
    return v;
}

static void check(int rc, const cb_error *err) {
    if (rc) {
        fprintf(stderr, "bench_knn: %s\n", err->msg);
        exit(1);
    }
}

/* Rows [0, nq) of the similar-items table of V as a search (self excluded),
 * which is exactly the work of cb_knn_similar_table on those rows. */
static span time_rows(const cb_knn_index *ix, const float *V, size_t first, size_t nq, size_t k, cb_knn_params p,
                      size_t *fallbacks) {
    int32_t *self = malloc(nq * sizeof *self), *idx = malloc(nq * k * sizeof *idx);
    float *sc = malloc(nq * k * sizeof *sc);
    for (size_t i = 0; i < nq; i++) self[i] = (int32_t)(first + i);
    p.self_index = self;
    p.n_fallback = fallbacks;
    cb_error err = {0};
    span t = span_start();
    check(cb_knn_index_search(ix, V + first * cb_knn_index_dim(ix), nq, k, CB_KNN_L2, &p, idx, sc, &err), &err);
    t = span_end(t);
    free(self), free(idx), free(sc);
    return t;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void precompute(size_t n, size_t d, size_t k, size_t slice, bool full_table, size_t threads_rows) {
    float *V = unit_rows(n, d, 1234);
    cb_knn_index *ix;
    cb_error err = {0};
    check(cb_knn_index_create(&ix, V, n, d, &err), &err);
    size_t rows = full_table || slice >= n ? n : slice;
    double flop = 2.0 * (double)rows * (double)n * (double)d, scale = (double)n / (double)rows;

    /* The peer runs interleaved with the measured work, so that a change in
     * the machine's load during the run hits both about equally: the table
     * is bracketed by two halves of the bare sgemm; a slice alternates
     * rounds of bare sgemm and selection over the same rows. */
    cb_knn_params bare = {.bench_gemm_only = true};
    span t_gemm = {0, 0}, t_knn = {0, 0};
    size_t fb = 0;
    if (rows == n) {
        span g1 = time_rows(ix, V, 0, n / 2, k, bare, NULL);
        cb_knn_table tab;
        t_knn = span_start();
        check(cb_knn_similar_table(&tab, V, n, d, k, 0, &err), &err);
        t_knn = span_end(t_knn);
        cb_knn_table_free(&tab);
        span g2 = time_rows(ix, V, n / 2, n - n / 2, k, bare, NULL);
        t_gemm = (span){g1.wall + g2.wall, g1.cpu + g2.cpu};
    } else {
        const size_t rounds = 4;
        for (size_t r = 0; r < rounds; r++) {
            size_t r0 = rows * r / rounds, r1 = rows * (r + 1) / rounds;
            span g = time_rows(ix, V, r0, r1 - r0, k, bare, NULL);
            size_t f = 0;
            span t = time_rows(ix, V, r0, r1 - r0, k, (cb_knn_params){0}, &f);
            t_gemm.wall += g.wall, t_gemm.cpu += g.cpu, t_knn.wall += t.wall, t_knn.cpu += t.cpu, fb += f;
        }
    }
    if (rows == n)
        printf("precompute %zu x %zu, k=%zu, whole table: %.2f s wall (%.2f s CPU); bare sgemm of the same tiles "
               "%.2f s wall (%.2f s CPU, %.1f GFLOP/s wall); ratio %.2f wall, %.2f CPU (goal <= 1.5)\n",
               n, d, k, t_knn.wall, t_knn.cpu, t_gemm.wall, t_gemm.cpu, flop / t_gemm.wall * 1e-9,
               t_knn.wall / t_gemm.wall, t_knn.cpu / t_gemm.cpu);
    else
        printf("precompute %zu x %zu, k=%zu: SLICE of %zu query rows against all %zu, EXTRAPOLATED x%.0f: "
               "%.1f s wall (%.1f s CPU) [slice %.2f s wall, canonical fallbacks %zu]; bare sgemm %.1f s wall "
               "(%.1f s CPU, %.1f GFLOP/s wall); ratio %.2f wall, %.2f CPU (goal <= 1.5)\n",
               n, d, k, rows, n, scale, t_knn.wall * scale, t_knn.cpu * scale, t_knn.wall, fb,
               t_gemm.wall * scale, t_gemm.cpu * scale, flop / t_gemm.wall * 1e-9, t_knn.wall / t_gemm.wall,
               t_knn.cpu / t_gemm.cpu);

    /* Our threads (OpenBLAS held at 1) vs one caller thread with OpenBLAS's
     * threads inside each sgemm, vs one thread: wall time decides. */
    size_t r2 = rows < threads_rows ? rows : threads_rows;
    span t_ours = time_rows(ix, V, 0, r2, k, (cb_knn_params){0}, NULL);
    span t_ob = time_rows(ix, V, 0, r2, k, (cb_knn_params){.threads = 1, .blas_threads = 2}, NULL);
    span t_one = time_rows(ix, V, 0, r2, k, (cb_knn_params){.threads = 1}, NULL);
    printf("  threads (%zu rows, wall): ours x2 %.2f s; OpenBLAS x2 inside one caller %.2f s (%.2fx ours); "
           "single thread %.2f s (%.2fx ours)\n",
           r2, t_ours.wall, t_ob.wall, t_ob.wall / t_ours.wall, t_one.wall, t_one.wall / t_ours.wall);
    cb_knn_index_free(ix);
    free(V);
}

static void sweep(size_t n, size_t d, size_t k, size_t rows) {
    float *V = unit_rows(n, d, 99);
    cb_knn_index *ix;
    cb_error err = {0};
    check(cb_knn_index_create(&ix, V, n, d, &err), &err);
    const size_t tq[] = {64, 128, 256, 512}, tb[] = {256, 512, 1024, 2048};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            cb_knn_params p = {.query_tile = tq[a], .base_tile = tb[b]};
            span tk = time_rows(ix, V, 0, rows, k, p, NULL);
            p.bench_gemm_only = true;
            span tg = time_rows(ix, V, 0, rows, k, p, NULL);
            printf("  sweep tile %4zu x %4zu: knn %.3f s CPU, bare sgemm %.3f s CPU (%.1f GFLOP/s wall), ratio %.2f CPU\n",
                   tq[a], tb[b], tk.cpu, tg.cpu, 2.0 * rows * n * d / tg.wall * 1e-9, tk.cpu / tg.cpu);
        }
    cb_knn_index_free(ix);
    free(V);
}

/* Sum of all floats, 8 independent lanes so the adds are not the limit. */
static double stream_once(const float *v, size_t len) {
    float acc[8] = {0};
    for (size_t i = 0; i + 8 <= len; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += v[i + l];
    double s = 0;
    for (int l = 0; l < 8; l++) s += acc[l];
    return s;
}

static void one_query(size_t n, size_t d, size_t k, int nrep) {
    float *V = unit_rows(n, d, 4321), *Q = unit_rows((size_t)nrep, d, 777);
    cb_knn_index *ix;
    cb_error err = {0};
    check(cb_knn_index_create(&ix, V, n, d, &err), &err);
    double *ts = malloc((size_t)nrep * sizeof *ts), *tstream = malloc((size_t)nrep * sizeof *ts), sink = 0;
    int32_t idx[64];
    float sc[64];
    /* Peer: sgemv (scores only, no selection) with OpenBLAS at 1 and 2 threads. */
    double t_gemv1[21], t_gemv2[21];
    float *y = malloc(n * sizeof *y);
    int saved = openblas_get_num_threads();
    for (int r = 0; r < 21; r++) {
        openblas_set_num_threads(1);
        double t0 = cb_now();
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, V, (int)d, Q, 1, 0.0f, y, 1);
        t_gemv1[r] = cb_now() - t0;
        openblas_set_num_threads(2);
        t0 = cb_now();
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, V, (int)d, Q, 1, 0.0f, y, 1);
        t_gemv2[r] = cb_now() - t0;
        sink += y[r];
    }
    openblas_set_num_threads(saved);
    qsort(t_gemv1, 21, sizeof(double), cmp_double);
    qsort(t_gemv2, 21, sizeof(double), cmp_double);
    printf("one query vs %zu x %zu (k=%zu, DOT), %d queries, each paired with one pass streaming the matrix "
           "(a sum over all floats, 1 thread)\n",
           n, d, k, nrep);
    printf("  peer: bare sgemv (no selection) p50 %.2f ms with 1 BLAS thread, %.2f ms with 2\n", t_gemv1[10] * 1e3,
           t_gemv2[10] * 1e3);
    for (int threads = 1; threads <= 2; threads++) {
        cb_knn_params p = {.threads = threads};
        check(cb_knn_index_search(ix, Q, 1, k, CB_KNN_DOT, &p, idx, sc, &err), &err); /* warm */
        for (int r = 0; r < nrep; r++) {
            double t0 = cb_now();
            sink += stream_once(V, n * d);
            tstream[r] = cb_now() - t0;
            t0 = cb_now();
            check(cb_knn_index_search(ix, Q + (size_t)r * d, 1, k, CB_KNN_DOT, &p, idx, sc, &err), &err);
            ts[r] = cb_now() - t0;
            sink += sc[0];
        }
        qsort(ts, (size_t)nrep, sizeof *ts, cmp_double);
        qsort(tstream, (size_t)nrep, sizeof *ts, cmp_double);
        double p50 = ts[nrep / 2], p99 = ts[(nrep * 99) / 100], s50 = tstream[nrep / 2];
        printf("  top-%zu, %d thread%s: p50 %.2f ms, p99 %.2f ms; streaming p50 %.2f ms (%.1f GB/s); "
               "p50 / stream = %.2f (goal <= 2)\n",
               k, threads, threads > 1 ? "s" : "", p50 * 1e3, p99 * 1e3, s50 * 1e3, n * d * 4.0 / s50 * 1e-9,
               p50 / s50);
    }
    if (sink == 12345.678) printf(" ");
    free(y);
    free(ts);
    free(tstream);
    cb_knn_index_free(ix);
    free(V);
    free(Q);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress is visible when piped */
    bool quick = false, full = false, do_sweep = false;
    size_t slice = 20000;
    static const struct option opts[] = {{"quick", no_argument, 0, 'q'},
                                         {"slice", required_argument, 0, 's'},
                                         {"full-1m", no_argument, 0, 'f'},
                                         {"sweep", no_argument, 0, 'w'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'q') quick = true;
        else if (c == 's') slice = strtoull(optarg, NULL, 10);
        else if (c == 'f') full = true;
        else if (c == 'w') do_sweep = true;
        else {
            fprintf(stderr, "usage: bench_knn [--quick] [--slice ROWS] [--full-1m] [--sweep]\n");
            return 2;
        }
    }
    const size_t d = 32, k = 20;
    size_t small = quick ? 20000 : 100000, big = quick ? 200000 : 1000000;
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(la);
    }
    printf("bench_knn: synthetic unit vectors, d=%zu, seeded; OpenBLAS %d threads by default; %ld CPUs, "
           "load average %.2f (a busy machine inflates wall times; CPU-time ratios are steadier)\n",
           d, openblas_get_num_threads(), sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    if (do_sweep) sweep(big, d, k, quick ? 1000 : 4096);
    precompute(small, d, k, small, true, quick ? 4096 : 8192);
    precompute(big, d, k, quick ? 2000 : slice, full, quick ? 1000 : 4096);
    one_query(big, d, 10, quick ? 50 : 200);
    return 0;
}
