/* bench_ann — the approximate index (index/hnsw.c) against its peers,
 * measured in the same run on the same synthetic clustered vectors (n x 32,
 * 1,000 Gaussian clusters):
 *   recall@10 against the exact search (knn.c), at several beams ef;
 *   one-query throughput (1 thread) vs the exact one-query scan (goal >= 20x);
 *   build time vs hnswlib (python3-hnswlib, bench_ann_hnswlib.py, same M,
 *   ef_construction and vectors, 1 thread each; goal <= hnswlib's), and
 *   hnswlib's recall / throughput at the same beams;
 *   the similar-items table of all n items from the index (2 threads) vs
 *   the exact table (2 threads) timed on a slice of rows and extrapolated,
 *   and the table's recall@10 against the exact rows of that slice.
 * Vectors: synthetic clustered rows, or --vectors FILE.npy (`cbrec embed`'s
 * item_vectors.npy: a trained catalog; the queries are then rows of it).
 * Usage: bench_ann [--n N] [--vectors FILE.npy] [--queries Q] [--slice ROWS] [--threads T]
 *                  [--efc EF] [--no-hnswlib] [--no-table]
 *   default n = 200000; --threads: build threads, cbrec's and hnswlib's (default 1);
 *   --efc: ef_construction of both (default 200) */
#include "index/hnsw.h"
#include "base/st.h"
#include "bench_npy.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "bench_clock.h"

typedef struct span {
    double wall, cpu;
} span;

static span span_start(void) { return (span){cb_now(), bench_process_cpu()}; }
static span span_end(span s) { return (span){cb_now() - s.wall, bench_process_cpu() - s.cpu}; }

static void check(int rc, const cb_error *err) {
    if (rc) {
        fprintf(stderr, "bench_ann: %s\n", err->msg);
        exit(1);
    }
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_ann: out of memory\n");
        exit(1);
    }
    return p;
}

/* Rows around 1,000 centres (spread 3, noise 1): the shape of trained item
 * vectors (genres, tastes) rather than uniform noise. */
static float *clustered(size_t n, size_t d, uint64_t seed, uint64_t centre_seed) {
    enum { N_CENTRES = 1000 };
    cb_rng rng;
    cb_rng_seed(&rng, centre_seed);
    float *c = xmalloc(N_CENTRES * d * sizeof *c), *v = xmalloc(n * d * sizeof *v);
    for (size_t i = 0; i < N_CENTRES * d; i++) c[i] = 3.0f * (float)cb_rng_normal(&rng);
    cb_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        size_t ci = cb_rng_below(&rng, N_CENTRES);
        for (size_t t = 0; t < d; t++) v[i * d + t] = c[ci * d + t] + (float)cb_rng_normal(&rng);
    }
    free(c);
    return v;
}

/* nq rows of B spread evenly (queries on a trained catalog). */
static float *rows_of(const float *B, size_t n, size_t d, size_t nq) {
    float *Q = xmalloc(nq * d * sizeof *Q);
    for (size_t q = 0; q < nq; q++) memcpy(Q + q * d, B + (q * (n / nq)) * d, d * sizeof *Q);
    return Q;
}

static double recall(const int32_t *a, const int32_t *e, size_t nq, size_t k) {
    size_t hit = 0;
    for (size_t q = 0; q < nq; q++)
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < k; j++)
                if (a[q * k + i] == e[q * k + j]) {
                    hit++;
                    break;
                }
    return (double)hit / (double)(nq * k);
}

typedef struct peer {
    double build, build_cpu, recall[8], qps[8];
    bool ok;
} peer;

/* Run the hnswlib script on the same vectors; parse its lines. */
static peer run_hnswlib(const float *B, size_t n, const float *Q, size_t nq, const int32_t *exact, size_t d,
                        size_t k, const size_t *efs, size_t n_ef, size_t efc, int threads) {
    peer p = {0};
    char dir[] = "/tmp/cbrec-bench-ann-XXXXXX";
    if (!mkdtemp(dir)) return p;
    char fb[128], fq[128], fe[128], cmd[1024], efl[128] = "";
    snprintf(fb, sizeof fb, "%s/base.npy", dir);
    snprintf(fq, sizeof fq, "%s/queries.npy", dir);
    snprintf(fe, sizeof fe, "%s/exact.npy", dir);
    float *ef32 = xmalloc(nq * k * sizeof *ef32);
    for (size_t i = 0; i < nq * k; i++) ef32[i] = (float)exact[i]; /* exact below 2^24 */
    cb_error err;
    check(cb_npy_write_f32(fb, B, n, d, &err) || cb_npy_write_f32(fq, Q, nq, d, &err) ||
              cb_npy_write_f32(fe, ef32, nq, k, &err), &err);
    free(ef32);
    for (size_t i = 0; i < n_ef; i++)
        snprintf(efl + strlen(efl), sizeof efl - strlen(efl), "%s%zu", i ? "," : "", efs[i]);
    /* Debian's python3 has the hnswlib module; another python3 first on PATH may not. */
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    const char *script = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "bench";
    snprintf(cmd, sizeof cmd, "nice %s %s/bench_ann_hnswlib.py %s %s %s %d %zu %zu %s %d", py, script, fb, fq, fe,
             CB_HNSW_DEFAULT_M, efc, k, efl, threads);
    FILE *f = popen(cmd, "r");
    char line[256];
    size_t got = 0;
    while (f && fgets(line, sizeof line, f)) {
        double a, b;
        size_t e;
        double c;
        if (sscanf(line, "hnswlib build_seconds %lf cpu %lf", &a, &c) == 2) p.build = a, p.build_cpu = c, p.ok = true;
        else if (sscanf(line, "hnswlib ef %zu recall %lf qps %lf cpu_qps %lf", &e, &a, &b, &c) == 4 && got < 8)
            p.recall[got] = a, p.qps[got++] = c;
        else fputs(line, stdout);
    }
    if (f) pclose(f);
    remove(fb), remove(fq), remove(fe), rmdir(dir);
    return p;
}

int main(int argc, char **argv) {
    size_t n = 200000, nq = 1000, slice = 2000, k = 10, d = 32, efc = CB_HNSW_DEFAULT_EF_CONSTRUCTION;
    const size_t efs[] = {16, 32, CB_HNSW_DEFAULT_EF, 128}, n_ef = 4;
    bool with_peer = true, with_table = true;
    int threads = 1;
    const char *vectors = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines when redirected */
    static const struct option lo[] = {{"n", 1, 0, 'n'}, {"queries", 1, 0, 'q'}, {"slice", 1, 0, 's'},
                                       {"no-hnswlib", 0, 0, 'x'}, {"no-table", 0, 0, 't'},
                                       {"threads", 1, 0, 'T'}, {"efc", 1, 0, 'e'}, {"vectors", 1, 0, 'v'},
                                       {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        if (c == 'n') n = strtoull(optarg, NULL, 10);
        else if (c == 'q') nq = strtoull(optarg, NULL, 10);
        else if (c == 's') slice = strtoull(optarg, NULL, 10);
        else if (c == 'x') with_peer = false;
        else if (c == 't') with_table = false;
        else if (c == 'T') threads = atoi(optarg);
        else if (c == 'e') efc = strtoull(optarg, NULL, 10);
        else if (c == 'v') vectors = optarg;
        else return 2;
    }
    float *B = NULL, *Q = NULL;
    if (vectors) B = bench_read_npy("bench_ann", vectors, &n, &d);
    if (n < 1000 || nq == 0 || nq > n || slice == 0 || slice > n || threads < 1 || efc < 1) {
        fprintf(stderr, "usage: bench_ann [--n N>=1000] [--vectors FILE.npy] [--queries Q] [--slice ROWS<=N] "
                        "[--threads T>=1] [--efc EF] [--no-hnswlib] [--no-table]\n");
        return 2;
    }
    cb_error err;
    if (vectors) Q = rows_of(B, n, d, nq);
    else B = clustered(n, d, 1, 7), Q = clustered(nq, d, 2, 7);
    printf("catalog %zu x %zu (%s), %zu queries, k = %zu, M = %d, ef_construction = %zu, build threads %d\n", n, d,
           vectors ? vectors : "clustered", nq, k, CB_HNSW_DEFAULT_M, efc, threads);

    cb_hnsw *h;
    span t = span_start();
    cb_hnsw_build_params bp = {.ef_construction = efc, .threads = threads};
    check(cb_hnsw_build(&h, B, n, d, &bp, &err), &err);
    span build = span_end(t);
    printf("cbrec build: %.1f s CPU (%.1f s wall)\n", build.cpu, build.wall);

    /* exact: the truth (batch, 2 threads), and one-query scans (1 thread) */
    cb_knn_index *ix;
    check(cb_knn_index_create(&ix, B, n, d, &err), &err);
    int32_t *exact = xmalloc(nq * k * sizeof *exact), *got = xmalloc(nq * k * sizeof *got);
    cb_knn_params p2 = {.threads = 2}, p1 = {.threads = 1};
    check(cb_knn_index_search(ix, Q, nq, k, CB_KNN_L2, &p2, exact, NULL, &err), &err);
    size_t n_scan = nq < 200 ? nq : 200;
    t = span_start();
    for (size_t q = 0; q < n_scan; q++) check(cb_knn_index_search(ix, Q + q * d, 1, k, CB_KNN_L2, &p1, got, NULL, &err), &err);
    span scan = span_end(t);
    double exact_qps = (double)n_scan / scan.cpu;

    peer hl = with_peer ? run_hnswlib(B, n, Q, nq, exact, d, k, efs, n_ef, efc, threads) : (peer){0};
    printf("\nbuild (%d thread%s each): cbrec %.1f s CPU (%.1f s wall)", threads, threads > 1 ? "s" : "", build.cpu,
           build.wall);
    if (hl.ok)
        printf(", hnswlib %.1f s CPU (%.1f s wall) -> cbrec/hnswlib %.2fx CPU time\n", hl.build_cpu, hl.build,
               build.cpu / hl.build_cpu);
    else printf(", hnswlib not run%s\n", with_peer ? " (python3-hnswlib missing?)" : "");

    printf("\none query at a time, 1 thread; queries per CPU second (the machine is shared)\n");
    printf("%-6s %-10s %-12s %-14s %-14s %-12s\n", "ef", "recall@10", "queries/s", "vs exact scan", "hnswlib recall",
           "hnswlib q/s");
    for (size_t e = 0; e < n_ef; e++) {
        cb_knn_params pa = {.threads = 1, .ef = efs[e]};
        check(cb_hnsw_search(h, Q, nq, k, CB_KNN_L2, &pa, got, NULL, &err), &err);
        double r = recall(got, exact, nq, k);
        t = span_start();
        for (size_t q = 0; q < nq; q++) check(cb_hnsw_search(h, Q + q * d, 1, k, CB_KNN_L2, &pa, got, NULL, &err), &err);
        double qps = (double)nq / span_end(t).cpu;
        printf("%-6zu %-10.4f %-12.0f %6.1fx        ", efs[e], r, qps, qps / exact_qps);
        if (hl.ok) printf("%-14.4f %-12.0f", hl.recall[e], hl.qps[e]);
        printf("\n");
    }
    printf("exact one-query scan: %.1f queries/s (1 thread; %.1f ms CPU, %.1f ms wall each)\n", exact_qps,
           1e3 * scan.cpu / (double)n_scan, 1e3 * scan.wall / (double)n_scan);

    /* similar-items table: the whole table from the index vs an exact slice */
    if (!with_table) {
        free(exact), free(got), free(B), free(Q);
        cb_knn_index_free(ix);
        cb_hnsw_free(h);
        return 0;
    }
    cb_knn_table tab;
    t = span_start();
    check(cb_hnsw_similar_table(&tab, h, k, 0, 2, &err), &err);
    span ann_table = span_end(t);
    int32_t *self = xmalloc(slice * sizeof *self), *ex_tab = xmalloc(slice * k * sizeof *ex_tab);
    size_t first = n / 2 - slice / 2;
    for (size_t i = 0; i < slice; i++) self[i] = (int32_t)(first + i);
    cb_knn_params ps = {.threads = 2, .self_index = self};
    t = span_start();
    check(cb_knn_index_search(ix, B + first * d, slice, k, CB_KNN_L2, &ps, ex_tab, NULL, &err), &err);
    span ex_slice = span_end(t);
    double ex_full = ex_slice.wall * (double)n / (double)slice;
    double tr = recall(tab.neighbors + first * k, ex_tab, slice, k);
    double ex_cpu = ex_slice.cpu * (double)n / (double)slice;
    printf("\nsimilar-items table, %zu items (2 threads): from the index %.1f s CPU (%.1f s wall), recall@10 %.4f on "
           "%zu rows; exact %.1f s CPU (%.1f s wall) extrapolated from %zu rows -> %.3fx exact CPU (%.3fx with the "
           "build)\n",
           n, ann_table.cpu, ann_table.wall, tr, slice, ex_cpu, ex_full, slice, ann_table.cpu / ex_cpu,
           (ann_table.cpu + build.cpu) / ex_cpu);
    cb_knn_table_free(&tab);
    free(self), free(ex_tab), free(exact), free(got), free(B), free(Q);
    cb_knn_index_free(ix);
    cb_hnsw_free(h);
    return 0;
}
