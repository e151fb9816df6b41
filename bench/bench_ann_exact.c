/* bench_ann_exact — the exact similar-items table on vectors with near-ties
 * (trained item vectors: items with the same features share a vector, and
 * many more are within float rounding of each other) against the bare sgemm
 * of the same tiles (goal <= 1.5x), and how many queries still need the full
 * canonical rescan. Two tables: the one precompute builds
 * (cb_knn_similar_table: each distinct vector searched once, lists expanded
 * per item) and one search per item (cb_knn_index_search with self
 * exclusion, every row its own query); both against the sgemm over all n. Vectors: an .npy file (`cbrec embed --model M --out DIR`
 * writes DIR/item_vectors.npy), or by default a synthetic stand-in: 27,000
 * rows drawn from 2,000 prototypes, a third exact copies, the rest moved by a
 * relative 1e-6 (below the rounding bound of a 32-long float dot).
 * Usage: bench_ann_exact [--vectors FILE.npy] [--k 20] [--threads 2] [--reps 3]
 *                        [--query-tile Q --base-tile B]
 * (--reps: alternating table / sgemm passes, the best of each kept; the tile
 * options change the one-search-per-item table's tiles, never the sgemm's,
 * which stays at the default tiles) */
#include "index/knn.h"
#include "bench_npy.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_clock.h"

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_ann_exact: out of memory\n");
        exit(1);
    }
    return p;
}

static float *near_ties(size_t n, size_t d) {
    cb_rng rng;
    cb_rng_seed(&rng, 3);
    const size_t n_proto = 2000;
    float *p = xmalloc(n_proto * d * sizeof *p), *v = xmalloc(n * d * sizeof *v);
    for (size_t i = 0; i < n_proto * d; i++) p[i] = (float)cb_rng_normal(&rng);
    for (size_t i = 0; i < n; i++) {
        const float *src = p + cb_rng_below(&rng, n_proto) * d;
        bool copy = cb_rng_below(&rng, 3) == 0;
        for (size_t t = 0; t < d; t++)
            v[i * d + t] = copy ? src[t] : src[t] * (1.0f + 1e-6f * (float)cb_rng_normal(&rng));
    }
    free(p);
    return v;
}

static void check(int rc, const cb_error *err) {
    if (rc) {
        fprintf(stderr, "bench_ann_exact: %s\n", err->msg);
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *path = NULL;
    size_t k = 20, n = 27000, d = 32;
    size_t qtile = 0, btile = 0;
    int threads = 2, reps = 3;
    static const struct option lo[] = {{"vectors", 1, 0, 'v'}, {"k", 1, 0, 'k'}, {"threads", 1, 0, 't'},
                                        {"reps", 1, 0, 'r'}, {"query-tile", 1, 0, 'q'}, {"base-tile", 1, 0, 'b'},
                                        {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        if (c == 'v') path = optarg;
        else if (c == 'k') k = strtoull(optarg, NULL, 10);
        else if (c == 't') threads = atoi(optarg);
        else if (c == 'r') reps = atoi(optarg);
        else if (c == 'q') qtile = strtoull(optarg, NULL, 10);
        else if (c == 'b') btile = strtoull(optarg, NULL, 10);
        else return 2;
    }
    float *V = path ? bench_read_npy("bench_ann_exact", path, &n, &d) : near_ties(n, d);
    if (k == 0 || k >= n || reps < 1) return 2;
    printf("exact similar-items table: %zu x %zu (%s), k = %zu, %d threads\n", n, d,
           path ? path : "synthetic near-ties", k, threads);
    cb_error err;
    cb_knn_index *ix;
    check(cb_knn_index_create(&ix, V, n, d, &err), &err);
    int32_t *idx = xmalloc(n * k * sizeof *idx);
    float *sc = xmalloc(n * k * sizeof *sc);
    int32_t *self = xmalloc(n * sizeof *self);
    for (size_t i = 0; i < n; i++) self[i] = (int32_t)i;
    size_t fallbacks = 0;
    cb_knn_params pg = {.threads = threads, .self_index = self, .bench_gemm_only = true};
    cb_knn_params pt = {.threads = threads, .self_index = self, .n_fallback = &fallbacks, .query_tile = qtile,
                        .base_tile = btile};
    double best_gemm = 1e30, best_table = 1e30, cpu_gemm = 1e30, cpu_table = 1e30, best_grp = 1e30, cpu_grp = 1e30;
    cb_knn_table tab;
    for (int rep = 0; rep < reps; rep++) { /* alternate, keep the best of each: the machine is shared */
        double t0 = cb_now(), c0 = bench_process_cpu();
        check(cb_knn_index_search(ix, V, n, k, CB_KNN_L2, &pg, idx, sc, &err), &err);
        double t1 = cb_now(), c1 = bench_process_cpu();
        check(cb_knn_index_search(ix, V, n, k, CB_KNN_L2, &pt, idx, sc, &err), &err);
        double t2 = cb_now(), c2 = bench_process_cpu();
        check(cb_knn_similar_table(&tab, V, n, d, k, threads, &err), &err);
        double t3 = cb_now(), c3 = bench_process_cpu();
        if (memcmp(tab.neighbors, idx, n * k * sizeof *idx) || memcmp(tab.distances, sc, n * k * sizeof *sc)) {
            fprintf(stderr, "bench_ann_exact: the two tables differ\n");
            return 1;
        }
        cb_knn_table_free(&tab);
        if (t1 - t0 < best_gemm) best_gemm = t1 - t0;
        if (t2 - t1 < best_table) best_table = t2 - t1;
        if (t3 - t2 < best_grp) best_grp = t3 - t2;
        if (c1 - c0 < cpu_gemm) cpu_gemm = c1 - c0;
        if (c2 - c1 < cpu_table) cpu_table = c2 - c1;
        if (c3 - c2 < cpu_grp) cpu_grp = c3 - c2;
    }
    size_t distinct = 0; /* rows whose vector no earlier row has, counted as the table groups them */
    for (size_t i = 0; i < n; i++) {
        bool first = true;
        for (size_t r = 0; r < k && first; r++) /* a copy has distance 0 to one of its k nearest */
            first = !(sc[i * k + r] == 0.0f && idx[i * k + r] < (int32_t)i &&
                      !memcmp(V + i * d, V + (size_t)idx[i * k + r] * d, d * sizeof *V));
        distinct += first;
    }
    printf("bare sgemm of all %zu rows' tiles %.3f s wall, %.2f s CPU\n", n, best_gemm, cpu_gemm);
    printf("table, one search per item: %.3f s -> %.2fx; CPU %.2f s -> %.2fx; full canonical rescans: %zu of %zu "
           "queries (%.2f%%)\n",
           best_table, best_table / best_gemm, cpu_table, cpu_table / cpu_gemm, fallbacks, n,
           100.0 * (double)fallbacks / (double)n);
    printf("table as precompute builds it (%zu distinct vectors): %.3f s -> %.2fx (goal <= 1.5x); CPU %.2f s "
           "-> %.2fx; identical to the other\n",
           distinct, best_grp, best_grp / best_gemm, cpu_grp, cpu_grp / cpu_gemm);
    cb_knn_index_free(ix);
    free(idx), free(sc), free(self), free(V);
    return 0;
}
