/* Tests for hnsw: recall@10 against the exact search (knn.c, the reference)
 * on seeded random and clustered data at the default ef, for distances and
 * dot products; filtered search (a bitmap excluding most rows, self
 * exclusion) keeping its recall and never returning an excluded row; scores
 * equal to the exact ones wherever the rows agree; deterministic builds; the
 * similar-items table (also from a graph built with precompute's
 * ef_construction 64); the plain and AVX2 distance paths giving the same
 * graph and answers bit for bit; save / load (mapped) giving the same answers, and
 * refusing another model, another shape or a corrupted file; and the
 * recommender's search modes over a tiny trained model (public API). */
#include "testutil.h"
#include "index/hnsw.h"
#include "base/st.h"
#include "cbrec.h"

#include <math.h>

/* n x d rows: Gaussian, or around 40 Gaussian centres (spread 3, noise 1). */
static float *make_data(uint64_t seed, size_t n, size_t d, bool clustered) {
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    float *c = malloc(40 * d * sizeof *c), *m = malloc(n * d * sizeof *m);
    assert_non_null(c);
    assert_non_null(m);
    for (size_t i = 0; i < 40 * d; i++) c[i] = 3.0f * (float)cb_rng_normal(&rng);
    for (size_t i = 0; i < n; i++) {
        size_t ci = cb_rng_below(&rng, 40);
        for (size_t t = 0; t < d; t++) m[i * d + t] = (float)cb_rng_normal(&rng) + (clustered ? c[ci * d + t] : 0.0f);
    }
    free(c);
    return m;
}

/* threads 0: every core (the default) */
static cb_hnsw *build_threads(const float *B, size_t n, size_t d, int threads) {
    cb_hnsw *h = NULL;
    cb_error err = {0};
    cb_hnsw_build_params bp = {.threads = threads};
    int rc = cb_hnsw_build(&h, B, n, d, &bp, &err);
    if (rc) fprintf(stderr, "build: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    return h;
}

static cb_hnsw *build(const float *B, size_t n, size_t d) { return build_threads(B, n, d, 0); }

/* The whole file, to compare two saved graphs byte for byte. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Fraction of the exact top-k rows the approximate rows contain. */
static double recall(const int32_t *approx, const int32_t *exact, size_t nq, size_t k) {
    size_t hit = 0, total = 0;
    for (size_t q = 0; q < nq; q++)
        for (size_t a = 0; a < k; a++) {
            if (exact[q * k + a] < 0) continue;
            total++;
            for (size_t b = 0; b < k; b++)
                if (approx[q * k + b] == exact[q * k + a]) {
                    hit++;
                    break;
                }
        }
    return total ? (double)hit / (double)total : 1.0;
}

/* Search both ways; returns the recall, checks scores of shared rows. */
static double compare(const cb_hnsw *h, const float *Q, size_t nq, const float *B, size_t n, size_t d, size_t k,
                      cb_knn_metric metric, const cb_knn_params *p) {
    int32_t *ai = malloc(nq * k * sizeof *ai), *ei = malloc(nq * k * sizeof *ei);
    float *as = malloc(nq * k * sizeof *as), *es = malloc(nq * k * sizeof *es);
    cb_error err = {0};
    assert_int_equal(cb_hnsw_search(h, Q, nq, k, metric, p, ai, as, &err), CB_OK);
    assert_int_equal(cb_knn_search(Q, nq, B, n, d, k, metric, p, ei, es, &err), CB_OK);
    for (size_t q = 0; q < nq; q++)
        for (size_t r = 0; r < k; r++) {
            if (ai[q * k + r] != ei[q * k + r]) continue;
            assert_true(as[q * k + r] == es[q * k + r]); /* canonical rescoring */
        }
    double rc = recall(ai, ei, nq, k);
    free(ai), free(ei), free(as), free(es);
    return rc;
}

static void recall_at_default_ef(void **state) {
    (void)state;
    const size_t n = 4000, d = 32, nq = 200, k = 10;
    for (int clustered = 0; clustered <= 1; clustered++) {
        float *B = make_data(11 + clustered, n, d, clustered), *Q = make_data(99 + clustered, nq, d, clustered);
        cb_hnsw *h = build(B, n, d);
        cb_knn_params p = {.threads = 2};
        double r_l2 = compare(h, Q, nq, B, n, d, k, CB_KNN_L2, &p);
        p.ef = 2 * CB_HNSW_DEFAULT_EF; /* what the recommender uses for dot products */
        double r_dot = compare(h, Q, nq, B, n, d, k, CB_KNN_DOT, &p);
        fprintf(stderr, "  %s: recall@10 l2 %.3f, dot (ef %d) %.3f\n", clustered ? "clustered" : "random", r_l2,
                2 * CB_HNSW_DEFAULT_EF, r_dot);
        assert_true(r_l2 >= 0.95);
        if (clustered) assert_true(r_dot >= 0.95);
        /* a tiny beam must be worse: the test can fail */
        p.ef = 1;
        assert_true(compare(h, Q, nq, B, n, d, k, CB_KNN_L2, &p) < r_l2);
        cb_hnsw_free(h);
        free(B), free(Q);
    }
}

/* Equal vectors (content-only items) and outliers (popular items): every
 * node stays reachable on layer 0, or the search can never return it (the
 * heuristic's pruning had stranded ~5 % of such a 100k catalog). Half of
 * 4,000 rows are copies of 40 vectors, a tenth of the rest far out. */
static void every_node_reachable(void **state) {
    (void)state;
    const size_t n = 4000, d = 16;
    float *B = make_data(5, n, d, 1);
    for (size_t i = 0; i < n / 2; i++) memcpy(B + i * d, B + (n / 2 + i % 40) * d, d * sizeof *B);
    for (size_t i = n / 2; i < n; i += 10)
        for (size_t j = 0; j < d; j++) B[i * d + j] *= 8.0f;
    cb_hnsw *h = build(B, n, d);
    size_t r = cb_hnsw_reachable(h);
    fprintf(stderr, "  reachable on layer 0: %zu of %zu\n", r, n);
    assert_true(r >= n - n / 200);
    bool repaired = false;
    assert_int_equal(cb_hnsw_unreached(h, &repaired), n - r); /* the count kept, saved and loaded */
    assert_true(repaired);
    char *dir = tu_tmpdir(), *path = tu_path(dir, "r.hnsw");
    cb_error err;
    cb_hnsw *g = NULL;
    assert_int_equal(cb_hnsw_save(h, path, "m", &err), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, path, B, n, d, "m", &err), CB_OK);
    repaired = false;
    assert_int_equal(cb_hnsw_unreached(g, &repaired), n - r);
    assert_true(repaired);
    cb_hnsw_free(g);
    remove(path);
    rmdir(dir);
    free(path), free(dir);
    cb_hnsw_free(h);
    free(B);
}

/* Rows equal to an earlier row stay out of the graph and come back with
 * their group: 90 % of 20,000 rows copies of 50 (the clusters of equal
 * vectors had trapped walks: a popular item's true neighbours missed), every
 * row reached, recall against the exact search, a filter leaving one row of
 * a group, and the groups saved and loaded. */
static void equal_rows_grouped(void **state) {
    (void)state;
    const size_t n = 20000, d = 16, k = 10, nq = 300;
    float *B = make_data(7, n, d, true), *Q = make_data(8, nq, d, true);
    for (size_t i = 2000; i < n; i++) memcpy(B + i * d, B + (i % 50) * d, d * sizeof *B);
    for (size_t q = 0; q < 100; q++) memcpy(Q + q * d, B + (q * 17 % 2000) * d, d * sizeof *Q); /* at rows */
    cb_hnsw *h = build(B, n, d), *g = NULL;
    bool counted = false;
    assert_int_equal(cb_hnsw_reachable(h), n);
    assert_int_equal(cb_hnsw_unreached(h, &counted), 0);
    double r = compare(h, Q, nq, B, n, d, k, CB_KNN_L2, NULL);
    fprintf(stderr, "  90 %% equal rows: recall@10 %.3f\n", r);
    assert_true(r >= 0.95);
    uint64_t *ex = calloc((n + 63) / 64, sizeof *ex);
    size_t last = 0;
    for (size_t i = 0; i < n; i += 50) ex[i / 64] |= 1ull << (i % 64), last = i; /* row 0's group (50, 100, ...
                                                                                       are copies of it from 2000 on) */
    for (size_t i = 50; i < 2000; i += 50) ex[i / 64] &= ~(1ull << (i % 64)); /* distinct rows below 2000 */
    ex[last / 64] &= ~(1ull << (last % 64));                                   /* one copy of row 0 left */
    cb_knn_params p = {.exclude = ex};
    int32_t got[1];
    float sc[1];
    cb_error err;
    assert_int_equal(cb_hnsw_search(h, B, 1, 1, CB_KNN_L2, &p, got, sc, &err), CB_OK);
    assert_int_equal(got[0], (int32_t)last);
    assert_true(compare(h, Q, nq, B, n, d, k, CB_KNN_L2, &p) >= 0.95);
    char *dir = tu_tmpdir(), *path = tu_path(dir, "eq.hnsw");
    assert_int_equal(cb_hnsw_save(h, path, "m", &err), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, path, B, n, d, "m", &err), CB_OK);
    assert_true(compare(g, Q, nq, B, n, d, k, CB_KNN_L2, NULL) == r); /* the same answers from the file */
    cb_hnsw_free(g);
    remove(path);
    rmdir(dir);
    free(path), free(dir), free(ex), free(B), free(Q);
    cb_hnsw_free(h);
    /* ties across groups larger than the beam: the lowest indices, as the exact search gives */
    const size_t n2 = 1000, d2 = 2;
    float *T = calloc(n2 * d2, sizeof *T), origin[2] = {0, 0};
    const float dirs[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    T[0] = 7, T[1] = 7;
    for (size_t i = 1; i < n2; i++) T[i * d2] = dirs[i % 4][0], T[i * d2 + 1] = dirs[i % 4][1];
    h = build(T, n2, d2);
    int32_t ai[10], ei[10];
    assert_int_equal(cb_hnsw_search(h, origin, 1, 10, CB_KNN_L2, NULL, ai, NULL, &err), CB_OK);
    assert_int_equal(cb_knn_search(origin, 1, T, n2, d2, 10, CB_KNN_L2, NULL, ei, NULL, &err), CB_OK);
    assert_memory_equal(ai, ei, sizeof ai); /* rows 1..10 */
    cb_hnsw_free(h);
    free(T);
}

/* A four-node graph written as a file by hand (format 1): layer-0 lists
 * links0 (a count, then ids; m = 2, so 2m = 4 slots), levels, the upper
 * layers' lists; with or without the "unreached" count. */
static int write_graph(const char *path, const int32_t links0[4][5], const uint8_t levels[4], const int32_t *upper,
                       int64_t n_upper, int max_level, const char *unreached) {
    cb_error err;
    cb_st_writer *w = cb_st_writer_create(&err);
    int64_t s0[2] = {4, 5}, sl[1] = {4}, su[1] = {n_upper};
    const char *meta[][2] = {{"fingerprint", "m"}, {"m", "2"}, {"ef_construction", "10"}, {"dim", "2"},
                             {"entry", "0"}, {"max_level", max_level ? "1" : "0"}, {"unreached", unreached}};
    int rc = cb_st_add(w, "links0", CB_ST_I32, s0, 2, links0, &err) ||
             cb_st_add(w, "levels", CB_ST_U8, sl, 1, levels, &err) ||
             cb_st_add(w, "upper", CB_ST_I32, su, 1, upper, &err);
    for (size_t i = 0; !rc && i < (unreached ? 7u : 6u); i++) rc = cb_st_set_meta(w, meta[i][0], meta[i][1], &err);
    if (!rc) rc = cb_st_write(w, path, "cbrec-hnsw", 1, &err);
    cb_st_writer_free(w);
    return rc;
}

/* An index file from before the reachability repair (no "unreached"): its
 * unreached nodes counted at load, the file said to be unrepaired; and a
 * crafted file whose upper layer links to a node below it: refused, not a
 * read outside the node's lists. */
static void old_and_crafted_files(void **state) {
    (void)state;
    const float B[8] = {0, 0, 1, 0, 0, 1, 5, 5};
    const int32_t links0[4][5] = {{2, 1, 2, 0, 0}, {1, 0, 0, 0, 0}, {1, 0, 0, 0, 0}, {1, 0, 0, 0, 0}}; /* none to 3 */
    const uint8_t flat[4] = {0, 0, 0, 0}, tall[4] = {1, 0, 0, 0};
    const int32_t none[1] = {0}, up_bad[4] = {1, 2, 0, 0}; /* node 0's layer-1 list: node 2, which is on layer 0 only */
    char *dir = tu_tmpdir(), *path = tu_path(dir, "old.hnsw");
    cb_hnsw *g = NULL;
    cb_error err;
    bool repaired = true;
    assert_int_equal(write_graph(path, links0, flat, none, 1, 0, NULL), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, path, B, 4, 2, "m", &err), CB_OK);
    assert_int_equal(cb_hnsw_unreached(g, &repaired), 1);
    assert_false(repaired);
    cb_hnsw_free(g);
    assert_int_equal(write_graph(path, links0, flat, none, 1, 0, "4"), CB_OK); /* more than can be: the entry is reached */
    assert_int_equal(cb_hnsw_load(&g, path, B, 4, 2, "m", &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "unreached"));
    assert_int_equal(write_graph(path, links0, flat, none, 1, 0, "0"), CB_OK); /* the count as written */
    assert_int_equal(cb_hnsw_load(&g, path, B, 4, 2, "m", &err), CB_OK);
    assert_int_equal(cb_hnsw_unreached(g, &repaired), 0);
    assert_true(repaired);
    cb_hnsw_free(g);
    assert_int_equal(write_graph(path, links0, tall, up_bad, 4, 1, "0"), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, path, B, 4, 2, "m", &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "node 0 has invalid links on layer 1"));
    assert_null(g);
    remove(path);
    rmdir(dir);
    free(path), free(dir);
}

/* A query that is its own excluded row starts its walk there, not at the
 * entry point: a hand-written graph of two parts, {0, 1} with the entry and
 * {2, 3} that no walk from the entry reaches. Row 2's nearest other row is
 * row 3; from the entry a walk finds only rows 0 and 1 (a trained 100k
 * catalog's `similar --index` had found none of the exact 10 for 8 of its 20
 * most-rated items so). A dot-product query, or one that is not its row,
 * still walks from the entry. */
static void walk_starts_at_the_query_row(void **state) {
    (void)state;
    const float B[8] = {0, 0, 1, 0, 10, 10, 10, 11};
    const int32_t links0[4][5] = {{1, 1, 0, 0, 0}, {1, 0, 0, 0, 0}, {1, 3, 0, 0, 0}, {1, 2, 0, 0, 0}};
    const uint8_t flat[4] = {0, 0, 0, 0};
    const int32_t none[1] = {0};
    char *dir = tu_tmpdir(), *path = tu_path(dir, "parts.hnsw");
    cb_hnsw *g = NULL;
    cb_error err;
    assert_int_equal(write_graph(path, links0, flat, none, 1, 0, NULL), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, path, B, 4, 2, "m", &err), CB_OK);
    int32_t self = 2, got = -1;
    cb_knn_params p = {.threads = 1, .self_index = &self};
    assert_int_equal(cb_hnsw_search(g, B + 4, 1, 1, CB_KNN_L2, &p, &got, NULL, &err), CB_OK);
    assert_int_equal(got, 3);
    cb_knn_table t;
    assert_int_equal(cb_hnsw_similar_table(&t, g, 1, 0, 1, &err), CB_OK);
    assert_int_equal(t.neighbors[2], 3);
    assert_int_equal(t.neighbors[3], 2);
    cb_knn_table_free(&t);
    const float near2[2] = {10, 10.5f}; /* not row 2's vector: from the entry */
    assert_int_equal(cb_hnsw_search(g, near2, 1, 1, CB_KNN_L2, &p, &got, NULL, &err), CB_OK);
    assert_int_equal(got, 1);
    cb_hnsw_free(g);
    remove(path);
    rmdir(dir);
    free(path), free(dir);
}

/* A walk from the entry point searches the layers above 0 with a small beam,
 * whose nodes all seed layer 0: a hand-written graph whose entry (node 0, on
 * layer 1 with nodes 1 and 2) links there to node 1, nearer the query, and
 * node 2, the only way on layer 0 to the answer, node 3. The greedy descent
 * took node 1 alone and the walk found rows 1 and 0 only, at any ef (the
 * ranking graph of a trained 100k catalog: 15 of 40 users' walks ended at
 * dot -0.78 where the best is 0.01). By dot product: a distance search
 * keeps the greedy descent (on 1M clustered rows the beam bought no recall at
 * ef 128 and cost 1.2-1.4x the CPU per query). */
static void upper_layers_searched_by_a_beam(void **state) {
    (void)state;
    const float B[8] = {0, 0, 2, 0, 1, 5, 10, 0};
    const int32_t links0[4][5] = {{1, 1, 0, 0, 0}, {1, 0, 0, 0, 0}, {1, 3, 0, 0, 0}, {1, 2, 0, 0, 0}};
    const uint8_t levels[4] = {1, 1, 1, 0};
    const int32_t upper[10] = {2, 1, 2, /* node 1 */ 1, 0, 0, /* node 2 */ 1, 0, 0, 0};
    char *dir = tu_tmpdir(), *path = tu_path(dir, "beam.hnsw");
    cb_hnsw *g = NULL;
    cb_error err;
    assert_int_equal(write_graph(path, links0, levels, upper, 10, 1, NULL), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, path, B, 4, 2, "m", &err), CB_OK);
    const float by_dot[2] = {1, 0};
    int32_t got = -1;
    cb_knn_params p = {.threads = 1, .ef = 4};
    assert_int_equal(cb_hnsw_search(g, by_dot, 1, 1, CB_KNN_DOT, &p, &got, NULL, &err), CB_OK);
    assert_int_equal(got, 3);
    cb_hnsw_free(g);
    remove(path);
    rmdir(dir);
    free(path), free(dir);
}

static void scalar_dims_and_tiny(void **state) {
    (void)state;
    /* d not a multiple of 8 (scalar kernels); n smaller than ef; n = 1. */
    const size_t d = 13, k = 5;
    float *B = make_data(5, 300, d, true), *Q = make_data(6, 50, d, true);
    cb_hnsw *h = build(B, 300, d);
    assert_true(compare(h, Q, 50, B, 300, d, k, CB_KNN_L2, NULL) >= 0.98);
    cb_hnsw_free(h);
    h = build(B, 30, d);
    assert_true(compare(h, Q, 50, B, 30, d, k, CB_KNN_L2, NULL) == 1.0);
    cb_hnsw_free(h);
    h = build(B, 1, d);
    int32_t idx;
    cb_error err;
    assert_int_equal(cb_hnsw_search(h, Q, 1, 1, CB_KNN_L2, NULL, &idx, NULL, &err), CB_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(cb_hnsw_search(h, Q, 1, 2, CB_KNN_L2, NULL, &idx, NULL, &err), CB_EINVAL);
    cb_hnsw_free(h);
    free(B), free(Q);
}

static void filtered_search_keeps_recall(void **state) {
    (void)state;
    const size_t n = 4000, d = 32, nq = 100, k = 10, words = (n + 63) / 64;
    float *B = make_data(21, n, d, true);
    cb_hnsw *h = build(B, n, d);
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    /* per query: 90% of rows excluded, and the query is a base row (self) */
    uint64_t *ex = calloc(nq * words, sizeof *ex);
    int32_t *self = malloc(nq * sizeof *self);
    float *Q = malloc(nq * d * sizeof *Q);
    for (size_t q = 0; q < nq; q++) {
        self[q] = (int32_t)cb_rng_below(&rng, n);
        memcpy(Q + q * d, B + (size_t)self[q] * d, d * sizeof *Q);
        for (size_t j = 0; j < n; j++)
            if (cb_rng_below(&rng, 10) != 0) ex[q * words + j / 64] |= 1ull << (j % 64);
    }
    cb_knn_params p = {.threads = 1, .self_index = self, .exclude = ex, .exclude_stride = words};
    double r = compare(h, Q, nq, B, n, d, k, CB_KNN_L2, &p);
    fprintf(stderr, "  90%% excluded: recall@10 %.3f\n", r);
    assert_true(r >= 0.95);
    int32_t *idx = malloc(nq * k * sizeof *idx);
    cb_error err;
    assert_int_equal(cb_hnsw_search(h, Q, nq, k, CB_KNN_L2, &p, idx, NULL, &err), CB_OK);
    for (size_t q = 0; q < nq; q++)
        for (size_t r2 = 0; r2 < k; r2++) {
            int32_t j = idx[q * k + r2];
            assert_true(j >= 0 && j != self[q]);
            assert_false((ex[q * words + (size_t)j / 64] >> (j % 64)) & 1);
        }
    /* all but 3 rows excluded: exactly those 3, then padding */
    memset(ex, 0xff, words * sizeof *ex);
    ex[0] &= ~0x7ull;
    cb_knn_params few = {.exclude = ex};
    size_t n_exact = 0;
    few.n_fallback = &n_exact;
    float sc[10];
    assert_int_equal(cb_hnsw_search(h, Q, 1, k, CB_KNN_L2, &few, idx, sc, &err), CB_OK);
    for (size_t r2 = 0; r2 < k; r2++) assert_int_equal(idx[r2] >= 0, r2 < 3);
    assert_true(isinf(sc[9]));
    assert_int_equal(n_exact, 1);
    free(idx), free(ex), free(self), free(Q), free(B);
    cb_hnsw_free(h);
}

/* threads = 1 builds the same graph every time (the saved files are equal
 * byte for byte); a parallel build (4 threads asked, 3 used at 3,000
 * nodes, on any machine: contended locks) is as good a graph: the table's
 * recall holds from both. */
static void deterministic_and_table(void **state) {
    (void)state;
    const size_t n = 3000, d = 16, k = 10;
    float *B = make_data(31, n, d, true);
    cb_hnsw *a = build_threads(B, n, d, 1), *b = build_threads(B, n, d, 1), *c = build_threads(B, n, d, 4);
    char *dir = tu_tmpdir(), *pa = tu_path(dir, "a.hnsw"), *pb = tu_path(dir, "b.hnsw");
    cb_error err;
    assert_int_equal(cb_hnsw_save(a, pa, "m", &err), CB_OK);
    assert_int_equal(cb_hnsw_save(b, pb, "m", &err), CB_OK);
    size_t la, lb;
    char *fa = slurp(pa, &la), *fb = slurp(pb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(fa, fb, la);
    free(fa), free(fb);
    cb_hnsw *g = NULL; /* the parallel graph passes the loader's link checks */
    assert_int_equal(cb_hnsw_save(c, pb, "m", &err), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, pb, B, n, d, "m", &err), CB_OK);
    cb_hnsw_free(g);
    remove(pa), remove(pb), rmdir(dir);
    free(pa), free(pb), free(dir);

    cb_knn_table ta, tb, tc, te;
    assert_int_equal(cb_hnsw_similar_table(&ta, a, k, 0, 2, &err), CB_OK);
    assert_int_equal(cb_hnsw_similar_table(&tb, b, k, 0, 1, &err), CB_OK);
    assert_int_equal(cb_hnsw_similar_table(&tc, c, k, 0, 2, &err), CB_OK);
    assert_memory_equal(ta.neighbors, tb.neighbors, n * k * sizeof *ta.neighbors);
    assert_memory_equal(ta.distances, tb.distances, n * k * sizeof *ta.distances);
    assert_int_equal(cb_knn_similar_table(&te, B, n, d, k, 2, &err), CB_OK);
    double r = recall(ta.neighbors, te.neighbors, n, k), rc = recall(tc.neighbors, te.neighbors, n, k);
    fprintf(stderr, "  similar table: recall@10 %.4f (1 thread build), %.4f (4 threads)\n", r, rc);
    assert_true(r >= 0.95);
    assert_true(rc >= 0.95);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++) {
            assert_true(ta.neighbors[i * k + j] != (int32_t)i);
            assert_true(tc.neighbors[i * k + j] != (int32_t)i);
            if (j) assert_true(ta.distances[i * k + j] >= ta.distances[i * k + j - 1]);
        }
    cb_knn_table_free(&ta), cb_knn_table_free(&tb), cb_knn_table_free(&tc);
    cb_hnsw *e = NULL; /* precompute's graph: ef_construction 64 */
    cb_hnsw_build_params bp = {.ef_construction = 64, .threads = 2};
    assert_int_equal(cb_hnsw_build(&e, B, n, d, &bp, &err), CB_OK);
    assert_int_equal(cb_hnsw_similar_table(&ta, e, k, 0, 2, &err), CB_OK);
    r = recall(ta.neighbors, te.neighbors, n, k);
    fprintf(stderr, "  similar table, ef_construction 64: recall@10 %.4f\n", r);
    assert_true(r >= 0.95);
    cb_hnsw_free(e);
    cb_knn_table_free(&ta), cb_knn_table_free(&te);
    assert_int_equal(cb_hnsw_similar_table(&te, a, n, 0, 1, &err), CB_EINVAL); /* k must be < n */
    cb_hnsw_free(a), cb_hnsw_free(b), cb_hnsw_free(c);
    free(B);
}

static void save_load(void **state) {
    (void)state;
    const size_t n = 1500, d = 16, nq = 40, k = 10;
    float *B = make_data(41, n, d, true), *Q = make_data(42, nq, d, true);
    cb_hnsw *h = build(B, n, d), *g = NULL;
    char *dir = tu_tmpdir(), *path = tu_path(dir, "m.hnsw");
    cb_error err;
    assert_int_equal(cb_hnsw_save(h, path, "model-A", &err), CB_OK);
    assert_int_equal(cb_hnsw_load(&g, path, B, n, d, "model-A", &err), CB_OK);
    assert_int_equal(cb_hnsw_m(g), CB_HNSW_DEFAULT_M);
    int32_t *i1 = malloc(nq * k * sizeof *i1), *i2 = malloc(nq * k * sizeof *i2);
    assert_int_equal(cb_hnsw_search(h, Q, nq, k, CB_KNN_L2, NULL, i1, NULL, &err), CB_OK);
    assert_int_equal(cb_hnsw_search(g, Q, nq, k, CB_KNN_L2, NULL, i2, NULL, &err), CB_OK);
    assert_memory_equal(i1, i2, nq * k * sizeof *i1);
    cb_hnsw_free(g);
    /* another model, another shape */
    assert_int_equal(cb_hnsw_load(&g, path, B, n, d, "model-B", &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "another model"));
    assert_non_null(strstr(err.msg, "rebuild it from this model"));
    assert_int_equal(cb_hnsw_load(&g, path, B, n - 1, d, "model-A", &err), CB_EFORMAT);
    assert_int_equal(cb_hnsw_load(&g, path, B, n, d - 1, "model-A", &err), CB_EFORMAT);
    assert_null(g);
    /* one flipped byte near the end (inside the links): the checksum says so */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -100, SEEK_END), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, -100, SEEK_END), 0);
    fputc(c ^ 0x40, f);
    fclose(f);
    assert_int_equal(cb_hnsw_load(&g, path, B, n, d, "model-A", &err), CB_EFORMAT);
    assert_null(g);
    remove(path);
    rmdir(dir);
    free(path), free(dir), free(i1), free(i2), free(B), free(Q);
    cb_hnsw_free(h);
}

static const char *self_path;

/* Build (1 thread) on seeded data of d = 32 and d = 13 (a tail beside the
 * 8-lane blocks), save the graph and the answers by distance and by dot
 * product and the walk's distances from the queries to every 7th row to
 * DIR/TAG-d.{hnsw,ans}. */
static void write_answers(const char *dir, const char *tag) {
    const size_t n = 2000, nq = 100, k = 10, dims[] = {32, 13};
    for (size_t t = 0; t < 2; t++) {
        size_t d = dims[t];
        float *B = make_data(51, n, d, true), *Q = make_data(52, nq, d, true);
        cb_hnsw *h = build_threads(B, n, d, 1);
        char name[64];
        snprintf(name, sizeof name, "%s-%zu.hnsw", tag, d);
        char *path = tu_path(dir, name);
        cb_error err;
        assert_int_equal(cb_hnsw_save(h, path, "m", &err), CB_OK);
        snprintf(name, sizeof name, "%s-%zu.ans", tag, d);
        char *apath = tu_path(dir, name);
        FILE *f = fopen(apath, "wb");
        assert_non_null(f);
        int32_t idx[100 * 10];
        float sc[100 * 10];
        for (int m = 0; m < 2; m++) {
            cb_knn_params p = {.threads = 1, .ef = 2 * CB_HNSW_DEFAULT_EF};
            assert_int_equal(cb_hnsw_search(h, Q, nq, k, m ? CB_KNN_DOT : CB_KNN_L2, &p, idx, sc, &err), CB_OK);
            assert_int_equal(fwrite(idx, sizeof idx, 1, f), 1);
            assert_int_equal(fwrite(sc, sizeof sc, 1, f), 1);
        }
        for (size_t q = 0; q < nq; q++) /* the walk's own distances, each metric */
            for (size_t j = 0; j < n; j += 7) {
                float dd[2] = {cb_hnsw_distance(h, Q + q * d, j, CB_KNN_L2), cb_hnsw_distance(h, Q + q * d, j, CB_KNN_DOT)};
                assert_int_equal(fwrite(dd, sizeof dd, 1, f), 1);
            }
        assert_int_equal(fclose(f), 0);
        free(path), free(apath), free(B), free(Q);
        cb_hnsw_free(h);
    }
}

static void same_file(const char *dir, const char *a, const char *b) {
    char *pa = tu_path(dir, a), *pb = tu_path(dir, b);
    size_t la, lb;
    char *fa = slurp(pa, &la), *fb = slurp(pb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(fa, fb, la);
    free(fa), free(fb), free(pa), free(pb);
}

/* The walk's distances in AVX2 and, in a child run with CBREC_NO_AVX2=1, on
 * the plain path: the same floats, so the same graph and answers, byte for
 * byte. */
static void plain_path_agrees(void **state) {
    (void)state;
    if (!cb_cpu_avx2()) {
        fprintf(stderr, "skipped: this run already takes the plain path (no AVX2, or CBREC_NO_AVX2 set)\n");
        return;
    }
    char *dir = tu_tmpdir(), cmd[4200];
    write_answers(dir, "avx2");
    snprintf(cmd, sizeof cmd, "CBREC_NO_AVX2=1 '%s' --plain '%s' >/dev/null 2>&1", self_path, dir);
    assert_int_equal(system(cmd), 0);
    same_file(dir, "avx2-32.hnsw", "plain-32.hnsw");
    same_file(dir, "avx2-32.ans", "plain-32.ans");
    same_file(dir, "avx2-13.hnsw", "plain-13.hnsw");
    same_file(dir, "avx2-13.ans", "plain-13.ans");
    tu_rmrf(dir);
    free(dir);
}

static cb_config *config(cb_config_kind kind, const char *const kv[][2], size_t n) {
    cb_config *c = NULL;
    cb_error err;
    assert_int_equal(cb_config_create(&c, kind, &err), CB_OK);
    for (size_t i = 0; i < n; i++) assert_int_equal(cb_config_set(c, kv[i][0], kv[i][1], &err), CB_OK);
    return c;
}

/* A tiny model trained on a synthetic folder in a new temporary *dir (the
 * default objective: both, with split heads); *ds stays open for it. */
static cb_recommender *tiny_trained(char **dir, cb_dataset **ds) {
    static const char *const synth_kv[][2] = {{"users", "200"}, {"items", "1500"}, {"ratings", "6000"}};
    static const char *const train_kv[][2] = {{"epochs", "1"}, {"user-layers", "16"}, {"item-layers", "16"},
                                              {"dim", "8"}, {"threads", "1"}};
    cb_config *sc = config(CB_CONFIG_SYNTH, synth_kv, 3), *tc = config(CB_CONFIG_TRAIN, train_kv, 5);
    cb_error err;
    cb_recommender *rec = NULL;
    *dir = tu_tmpdir();
    assert_int_equal(cb_synth_write_folder(*dir, sc, &err), CB_OK);
    assert_int_equal(cb_dataset_open(ds, *dir, NULL, &err), CB_OK);
    assert_int_equal(cb_train(&rec, *ds, tc, NULL, NULL, NULL, &err), CB_OK);
    cb_config_free(sc), cb_config_free(tc);
    return rec;
}

/* similar under each mode: approximate lists carry the exact scores */
static void recommender_modes(void **state) {
    (void)state;
    char *dir;
    cb_dataset *ds = NULL;
    cb_recommender *rec = tiny_trained(&dir, &ds);
    char *index_path = tu_path(dir, "m.hnsw");
    cb_error err;
    assert_int_equal(cb_recommender_set_search(rec, CB_SEARCH_APPROX, 0, &err), CB_EINVAL);
    assert_int_equal(cb_recommender_save_index(rec, index_path, &err), CB_EINVAL);
    assert_int_equal(cb_recommender_build_index(rec, 8, 100, 2, &err), CB_OK);
    assert_int_equal(cb_recommender_search_is_approximate(rec), 0); /* auto: a small catalog */
    assert_int_equal(cb_recommender_save_index(rec, index_path, &err), CB_OK);
    assert_int_equal(cb_recommender_load_index(rec, index_path, &err), CB_OK);
    const size_t n_items = 60, k = 10;
    size_t same = 0;
    for (size_t item = 0; item < n_items; item++) {
        cb_list *ex = NULL, *ap = NULL;
        assert_int_equal(cb_recommender_set_search(rec, CB_SEARCH_EXACT, 0, &err), CB_OK);
        assert_int_equal(cb_recommender_similar(rec, item, k, &ex, &err), CB_OK);
        assert_int_equal(cb_recommender_set_search(rec, CB_SEARCH_APPROX, 0, &err), CB_OK);
        assert_int_equal(cb_recommender_search_is_approximate(rec), 1);
        assert_int_equal(cb_recommender_similar(rec, item, k, &ap, &err), CB_OK);
        assert_int_equal(cb_list_size(ap), k);
        for (size_t r = 0; r < k; r++) same += cb_list_score(ap, r) == cb_list_score(ex, r);
        cb_list_free(ex), cb_list_free(ap);
    }
    fprintf(stderr, "  recommender similar: %zu of %zu approximate scores equal the exact ones\n", same, n_items * k);
    assert_true(same >= n_items * k * 95 / 100);
    /* a negative thread count is refused by each call that takes one (the table's had meant every core) */
    assert_int_equal(cb_recommender_build_index(rec, 8, 100, -1, &err), CB_EINVAL);
    assert_int_equal(cb_recommender_build_table(rec, 10, -1, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "threads = -1"));
    int32_t nb[10];
    float dist[10];
    assert_int_equal(cb_recommender_set_search(rec, CB_SEARCH_EXACT, 0, &err), CB_OK);
    assert_int_equal(cb_recommender_table_rows(rec, 10, -2, 0, 1, nb, dist, &err), CB_EINVAL);
    assert_int_equal(cb_recommender_set_search(rec, CB_SEARCH_APPROX, 0, &err), CB_OK);
    /* the table from the index */
    assert_int_equal(cb_recommender_build_table(rec, 10, 1, &err), CB_OK);
    assert_int_equal(cb_recommender_table_k(rec), 10);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    tu_rmrf(dir);
    free(index_path), free(dir);
}

/* A model with split heads (the default objective, both) ranks by one half
 * of its vectors; the index's graph is built on whole vectors and does not
 * lead a walk by one half's dot product (a trained 100k catalog's
 * `recommend --rank-by dot --index`: recall@10 0.54, 9 of the first 20
 * users 0), so such searches are exact: the same lists as --exact, even
 * with a narrow beam over a sparse graph. */
static void recommend_by_half_vectors(void **state) {
    (void)state;
    static const char *const rec_kv[][2] = {{"rank-by", "dot"}, {"recent", "0"}, {"top-genres", "0"},
                                            {"group-items", "0"}, {"embedding", "10"}, {"n", "10"}};
    static const char *const rating_kv[][2] = {{"rank-by", "rating"}, {"recent", "0"}, {"top-genres", "0"},
                                               {"group-items", "0"}, {"embedding", "10"}, {"n", "10"}};
    cb_config *opts[2] = {config(CB_CONFIG_RECOMMEND, rec_kv, 6), config(CB_CONFIG_RECOMMEND, rating_kv, 6)};
    char *dir;
    cb_dataset *ds = NULL;
    cb_recommender *rec = tiny_trained(&dir, &ds);
    cb_error err;
    assert_int_equal(cb_recommender_build_index(rec, 4, 8, 1, &err), CB_OK);
    size_t differ = 0;
    for (size_t o = 0; o < 2; o++)
        for (int user = 1; user <= 100; user++) {
            char id[16];
            snprintf(id, sizeof id, "%d", user);
            cb_list *ex = NULL, *ap = NULL;
            assert_int_equal(cb_recommender_set_search(rec, CB_SEARCH_EXACT, 0, &err), CB_OK);
            assert_int_equal(cb_recommender_recommend(rec, id, NULL, opts[o], &ex, &err), CB_OK);
            assert_int_equal(cb_recommender_set_search(rec, CB_SEARCH_APPROX, 10, &err), CB_OK);
            assert_int_equal(cb_recommender_recommend(rec, id, NULL, opts[o], &ap, &err), CB_OK);
            assert_int_equal(cb_list_size(ap), cb_list_size(ex));
            for (size_t r = 0; r < cb_list_size(ex); r++) differ += cb_list_item(ap, r) != cb_list_item(ex, r);
            cb_list_free(ex), cb_list_free(ap);
        }
    fprintf(stderr, "  recommend by one half of split vectors: %zu of 2000 places differ from the exact lists\n", differ);
    assert_int_equal(differ, 0);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    cb_config_free(opts[0]), cb_config_free(opts[1]);
    tu_rmrf(dir);
    free(dir);
}

/* Places of the exact list `ex` found anywhere in `ap`. */
static size_t found_in(const cb_list *ap, const cb_list *ex) {
    size_t hits = 0;
    for (size_t r = 0; r < cb_list_size(ex); r++)
        for (size_t j = 0; j < cb_list_size(ap); j++) hits += cb_list_item(ap, j) == cb_list_item(ex, r);
    return hits;
}

/* user's list under `mode` (ef: the approximate beam) */
static cb_list *recommend_in(cb_recommender *rec, cb_search_mode mode, size_t ef, int user, const cb_config *opts) {
    char id[16];
    cb_error err;
    cb_list *l = NULL;
    snprintf(id, sizeof id, "%d", user);
    assert_int_equal(cb_recommender_set_search(rec, mode, ef, &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(rec, id, NULL, opts, &l, &err), CB_OK);
    return l;
}

/* The default recommend (objective both, split heads, a popularity prior,
 * the neighbour component) ranks by one half of the vectors plus per-item
 * terms; the index's second graph, over the ranking vectors [v_half,
 * bias / a], makes it approximate: recall@10 against --exact, with and
 * without an exclude list (excluded items never return). A graph too sparse
 * to be right shows the graph is what answers (without it the lists were
 * exact); an index file without the second graph (an older cbrec's) still
 * loads and gives the exact lists. */
static void default_recommend_by_rank_graph(void **state) {
    (void)state;
    static const char *const synth_kv[][2] = {{"users", "300"}, {"items", "3000"}, {"ratings", "12000"}};
    static const char *const train_kv[][2] = {{"epochs", "1"},        {"user-layers", "16"},      {"item-layers", "16"},
                                              {"dim", "8"},           {"threads", "1"},           {"neighbours", "20"},
                                              {"neighbour-weight", "1"}, {"popularity-prior", "0.5"}};
    static const char *const narrow_kv[][2] = {{"recent", "0"}, {"top-genres", "0"}, {"group-items", "0"},
                                               {"embedding", "10"}, {"n", "10"}};
    cb_config *sc = config(CB_CONFIG_SYNTH, synth_kv, 3), *tc = config(CB_CONFIG_TRAIN, train_kv, 8);
    cb_config *plain = config(CB_CONFIG_RECOMMEND, NULL, 0), *narrow = config(CB_CONFIG_RECOMMEND, narrow_kv, 5);
    cb_error err;
    cb_recommender *rec = NULL;
    cb_dataset *ds = NULL;
    char *dir = tu_tmpdir(), *index_path = tu_path(dir, "m.hnsw"), *old_path = tu_path(dir, "old.hnsw");
    assert_int_equal(cb_synth_write_folder(dir, sc, &err), CB_OK);
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    assert_int_equal(cb_train(&rec, ds, tc, NULL, NULL, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_build_index(rec, 16, 200, 1, &err), CB_OK);
    assert_int_equal(cb_recommender_save_index(rec, index_path, &err), CB_OK);
    assert_int_equal(cb_recommender_load_index(rec, index_path, &err), CB_OK);
    const int n_users = 150;
    size_t found = 0, total = 0, found_ex = 0, total_ex = 0, leaked = 0;
    for (int user = 1; user <= n_users; user++) {
        cb_list *ex = recommend_in(rec, CB_SEARCH_EXACT, 0, user, plain);
        cb_list *ap = recommend_in(rec, CB_SEARCH_APPROX, 0, user, plain);
        found += found_in(ap, ex), total += cb_list_size(ex);
        /* exclude the exact list's first three: the next ones must come up */
        char exclude[256] = "";
        for (size_t r = 0; r < 3 && r < cb_list_size(ex); r++)
            snprintf(exclude + strlen(exclude), sizeof exclude - strlen(exclude), "%s%s", r ? "," : "", cb_list_item_id(ex, r));
        cb_config *excl = config(CB_CONFIG_RECOMMEND, NULL, 0);
        assert_int_equal(cb_config_set(excl, "exclude", exclude, &err), CB_OK);
        cb_list *ex2 = recommend_in(rec, CB_SEARCH_EXACT, 0, user, excl);
        cb_list *ap2 = recommend_in(rec, CB_SEARCH_APPROX, 0, user, excl);
        found_ex += found_in(ap2, ex2), total_ex += cb_list_size(ex2);
        for (size_t j = 0; j < cb_list_size(ap2); j++)
            for (size_t r = 0; r < 3 && r < cb_list_size(ex); r++) leaked += cb_list_item(ap2, j) == cb_list_item(ex, r);
        cb_list_free(ex), cb_list_free(ap), cb_list_free(ex2), cb_list_free(ap2);
        cb_config_free(excl);
    }
    double recall = (double)found / (double)total, recall_ex = (double)found_ex / (double)total_ex;
    fprintf(stderr, "  default recommend by the ranking graph: recall@10 %.3f, with an exclude list %.3f (%zu users)\n",
            recall, recall_ex, (size_t)n_users);
    assert_true(total >= (size_t)n_users * 9);
    assert_true(recall >= 0.95 && recall_ex >= 0.95);
    assert_int_equal(leaked, 0);

    /* a graph too sparse to be right: its lists differ (the graph answers) */
    assert_int_equal(cb_recommender_build_index(rec, 2, 2, 1, &err), CB_OK);
    size_t differ = 0;
    for (int user = 1; user <= n_users; user++) {
        cb_list *ex = recommend_in(rec, CB_SEARCH_EXACT, 0, user, narrow);
        cb_list *ap = recommend_in(rec, CB_SEARCH_APPROX, 1, user, narrow);
        differ += cb_list_size(ex) - found_in(ap, ex);
        cb_list_free(ex), cb_list_free(ap);
    }
    fprintf(stderr, "  a sparse ranking graph misses %zu of the exact lists' places\n", differ);
    assert_true(differ > 0);

    /* the same sparse index saved without its second graph (the layout of an older cbrec): exact lists */
    assert_int_equal(cb_recommender_save_index(rec, index_path, &err), CB_OK);
    cb_st *st = NULL;
    assert_int_equal(cb_st_open(&st, index_path, "cbrec-hnsw", 1, &err), CB_OK);
    static const char *const rank_keys[] = {"rank.links0", "rank.levels", "rank.upper", "rank.m", "rank.ef_construction",
                                            "rank.dim", "rank.entry", "rank.max_level", "rank.unreached", "rank.copies",
                                            "rank.dup_of", "rank.dup_next", "rank.vectors", NULL};
    cb_st_writer *w = cb_st_writer_create(&err);
    assert_int_equal(cb_st_copy(st, w, rank_keys, &err), CB_OK);
    assert_int_equal(cb_st_write(w, old_path, "cbrec-hnsw", 1, &err), CB_OK);
    cb_st_writer_free(w);
    cb_st_close(st);
    assert_int_equal(cb_recommender_load_index(rec, old_path, &err), CB_OK);
    differ = 0;
    for (int user = 1; user <= n_users; user++) {
        cb_list *ex = recommend_in(rec, CB_SEARCH_EXACT, 0, user, narrow);
        cb_list *ap = recommend_in(rec, CB_SEARCH_APPROX, 1, user, narrow);
        assert_int_equal(cb_list_size(ap), cb_list_size(ex));
        for (size_t r = 0; r < cb_list_size(ex); r++) differ += cb_list_item(ap, r) != cb_list_item(ex, r);
        cb_list_free(ex), cb_list_free(ap);
    }
    assert_int_equal(differ, 0);
    /* and the file with both graphs loads them both again */
    assert_int_equal(cb_recommender_load_index(rec, index_path, &err), CB_OK);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    cb_config_free(sc), cb_config_free(tc), cb_config_free(plain), cb_config_free(narrow);
    tu_rmrf(dir);
    free(index_path), free(old_path), free(dir);
}

/* The ranking graph keeps longer links (ann.c's RANK_ALPHA): on the catalog
 * of bench/rank_graph.sh (synthetic, 100k items, 2,000 users, 60,000
 * ratings; one epoch), the embedding source alone walks to the popular
 * items every user's exact top 10 starts with, which HNSW's own pruning
 * left a few links among themselves: 57 % of the exact lists of users 1-20
 * from a one-thread graph (any beam), and here >= 95 %. */
static void ranking_graph_reaches_the_popular_items(void **state) {
    (void)state;
    static const char *const synth_kv[][2] = {{"users", "2000"}, {"items", "100000"}, {"ratings", "60000"}};
    static const char *const train_kv[][2] = {{"epochs", "1"}, {"threads", "2"}, {"neighbours", "0"}};
    static const char *const emb_kv[][2] = {{"recent", "0"}, {"top-genres", "0"}, {"group-items", "0"}, {"n", "10"}};
    cb_config *sc = config(CB_CONFIG_SYNTH, synth_kv, 3), *tc = config(CB_CONFIG_TRAIN, train_kv, 3);
    cb_config *emb = config(CB_CONFIG_RECOMMEND, emb_kv, 4);
    cb_error err;
    cb_recommender *rec = NULL;
    cb_dataset *ds = NULL;
    char *dir = tu_tmpdir();
    assert_int_equal(cb_synth_write_folder(dir, sc, &err), CB_OK);
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    assert_int_equal(cb_train(&rec, ds, tc, NULL, NULL, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_build_index(rec, 16, 200, 1, &err), CB_OK);
    size_t found = 0, total = 0, none = 0;
    for (int user = 1; user <= 20; user++) {
        cb_list *ex = recommend_in(rec, CB_SEARCH_EXACT, 0, user, emb);
        cb_list *ap = recommend_in(rec, CB_SEARCH_APPROX, 0, user, emb);
        size_t hits = found_in(ap, ex);
        found += hits, total += cb_list_size(ex), none += hits == 0;
        cb_list_free(ex), cb_list_free(ap);
    }
    fprintf(stderr, "  the embedding source through the ranking graph: recall@10 %.3f, %zu of 20 users at 0\n",
            (double)found / (double)total, none);
    assert_int_equal(total, 200);
    assert_true(found >= total * 95 / 100);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    cb_config_free(sc), cb_config_free(tc), cb_config_free(emb);
    tu_rmrf(dir);
    free(dir);
}

/* The model's fingerprint hashes its item vectors; the ranking graph is
 * built over other vectors, [v_half, bias / a], and the bias comes from the
 * popularity prior, which training does not use: two models trained alike
 * but for the prior have the same fingerprint and other ranking vectors. An
 * index built from one is refused by the other (it had loaded, and the
 * default recommend walked a graph built for other vectors), naming the
 * file; the first graph alone is still the same model's. */
static void ranking_graph_of_another_prior(void **state) {
    (void)state;
    static const char *const synth_kv[][2] = {{"users", "100"}, {"items", "400"}, {"ratings", "2000"}};
    static const char *const train_kv[][2] = {{"epochs", "1"}, {"user-layers", "8"}, {"item-layers", "8"},
                                              {"dim", "8"},    {"threads", "1"},     {"popularity-prior", "0.5"}};
    cb_config *sc = config(CB_CONFIG_SYNTH, synth_kv, 3), *tc = config(CB_CONFIG_TRAIN, train_kv, 6);
    cb_error err;
    cb_dataset *ds = NULL;
    cb_recommender *a = NULL, *b = NULL;
    char *dir = tu_tmpdir(), *index_path = tu_path(dir, "a.hnsw");
    assert_int_equal(cb_synth_write_folder(dir, sc, &err), CB_OK);
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    assert_int_equal(cb_train(&a, ds, tc, NULL, NULL, NULL, &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "popularity-prior", "2", &err), CB_OK);
    assert_int_equal(cb_train(&b, ds, tc, NULL, NULL, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_build_index(a, 8, 50, 1, &err), CB_OK);
    assert_int_equal(cb_recommender_save_index(a, index_path, &err), CB_OK);
    assert_int_equal(cb_recommender_load_index(a, index_path, &err), CB_OK);
    err.msg[0] = 0;
    assert_int_equal(cb_recommender_load_index(b, index_path, &err), CB_EFORMAT);
    fprintf(stderr, "  %s\n", err.msg);
    assert_non_null(strstr(err.msg, index_path));
    assert_non_null(strstr(err.msg, "cbrec index"));
    assert_int_equal(cb_recommender_set_search(b, CB_SEARCH_APPROX, 0, &err), CB_EINVAL); /* nothing was attached */
    cb_recommender_free(a), cb_recommender_free(b);
    cb_dataset_close(ds);
    cb_config_free(sc), cb_config_free(tc);
    tu_rmrf(dir);
    free(index_path), free(dir);
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 3 && strcmp(argv[1], "--plain") == 0) {
        write_answers(argv[2], "plain");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_path_agrees),
        cmocka_unit_test(recall_at_default_ef),
        cmocka_unit_test(every_node_reachable),
        cmocka_unit_test(old_and_crafted_files),
        cmocka_unit_test(walk_starts_at_the_query_row),
        cmocka_unit_test(upper_layers_searched_by_a_beam),
        cmocka_unit_test(equal_rows_grouped),
        cmocka_unit_test(scalar_dims_and_tiny),
        cmocka_unit_test(filtered_search_keeps_recall),
        cmocka_unit_test(deterministic_and_table),
        cmocka_unit_test(save_load),
        cmocka_unit_test(recommender_modes),
        cmocka_unit_test(recommend_by_half_vectors),
        cmocka_unit_test(default_recommend_by_rank_graph),
        cmocka_unit_test(ranking_graph_of_another_prior),
        cmocka_unit_test(ranking_graph_reaches_the_popular_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
