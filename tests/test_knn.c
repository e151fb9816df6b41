/* Tests for knn: the fast search equals the naive reference bit for bit
 * (indices and scores) over metrics, shapes, tile sizes that do not divide n,
 * thread counts, duplicates and ties, exclusions; the similar-items table,
 * cold-start insertion (equal to a rebuild), and save/load; the selection
 * tests once more on the plain (no AVX2) path. */
#include "testutil.h"
#include "index/knn.h"
#include "base/st.h"

#include <math.h>

enum { DATA_GAUSS, DATA_INT, DATA_UNIT, DATA_DUPS };

/* n x d matrix: Gaussian, small integers (exact dot products, many ties),
 * unit rows, or rows drawn from only 5 distinct vectors. */
static float *make_data(uint64_t seed, size_t n, size_t d, int kind) {
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    float *m = malloc((n ? n : 1) * d * sizeof *m);
    assert_non_null(m);
    float proto[5][64];
    for (int p = 0; p < 5; p++)
        for (size_t t = 0; t < d && t < 64; t++) proto[p][t] = (float)cb_rng_normal(&rng);
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        int p = (int)cb_rng_below(&rng, 5);
        for (size_t t = 0; t < d; t++) {
            float v;
            switch (kind) {
            case DATA_INT: v = (float)((int)cb_rng_below(&rng, 5) - 2); break;
            case DATA_DUPS: v = proto[p][t % 64]; break;
            default: v = (float)cb_rng_normal(&rng);
            }
            m[i * d + t] = v;
            ss += (double)v * v;
        }
        if (kind == DATA_UNIT && ss > 0)
            for (size_t t = 0; t < d; t++) m[i * d + t] = (float)(m[i * d + t] / sqrt(ss));
    }
    return m;
}

typedef struct result {
    int32_t *idx;
    float *score;
} result;

static result run_search(bool naive, const float *Q, size_t nq, const float *B, size_t n, size_t d, size_t k,
                         cb_knn_metric metric, const cb_knn_params *p) {
    result r = {malloc((nq ? nq : 1) * k * sizeof(int32_t)), malloc((nq ? nq : 1) * k * sizeof(float))};
    cb_error err = {0};
    int rc = naive ? cb_knn_search_naive(Q, nq, B, n, d, k, metric, p, r.idx, r.score, &err)
                   : cb_knn_search(Q, nq, B, n, d, k, metric, p, r.idx, r.score, &err);
    if (rc) fprintf(stderr, "search failed: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    return r;
}

static void result_free(result r) {
    free(r.idx);
    free(r.score);
}

/* Bitwise equality of two results, with a readable first difference. */
static void assert_same(result a, result b, size_t nq, size_t k, const char *what) {
    for (size_t i = 0; i < nq * k; i++) {
        if (a.idx[i] != b.idx[i] || memcmp(&a.score[i], &b.score[i], sizeof(float)) != 0) {
            fprintf(stderr, "%s: query %zu rank %zu: idx %d vs %d, score %.9g vs %.9g\n", what, i / k, i % k,
                    a.idx[i], b.idx[i], a.score[i], b.score[i]);
            fail();
        }
    }
}

/* Rows sorted best first, no duplicates within a row; with exact data
 * (`exact`: equal float scores mean equal canonical scores) ties go to the
 * lower index. */
static void assert_ordered(result r, size_t nq, size_t k, cb_knn_metric metric, bool exact) {
    for (size_t q = 0; q < nq; q++)
        for (size_t i = 1; i < k; i++) {
            int32_t a = r.idx[q * k + i - 1], b = r.idx[q * k + i];
            if (b < 0) continue;
            assert_true(a >= 0);
            float sa = r.score[q * k + i - 1], sb = r.score[q * k + i];
            if (metric == CB_KNN_DOT) assert_true(sa >= sb);
            else assert_true(sa <= sb);
            if (exact && sa == sb) assert_true(a < b);
            for (size_t j = 0; j < i; j++) assert_true(r.idx[q * k + j] != b);
        }
}

static void fast_equals_naive(void **state) {
    (void)state;
    const size_t ns[] = {1, 9, 100, 777};
    const size_t ds[] = {1, 3, 8, 32, 33};
    const size_t nqs[] = {1, 3, 40};
    const cb_knn_metric ms[] = {CB_KNN_DOT, CB_KNN_L2, CB_KNN_L2_UNIT};
    uint64_t seed = 1;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t c = 0; c < 3; c++)
                for (size_t mi = 0; mi < 3; mi++) {
                    size_t n = ns[a], d = ds[b], nq = nqs[c];
                    int kind = mi == 2 ? DATA_UNIT : DATA_GAUSS;
                    float *B = make_data(seed++, n, d, kind), *Q = make_data(seed++, nq, d, kind);
                    size_t ks[] = {1, n < 5 ? n : 5, n < 20 ? n : 20, n};
                    for (size_t ki = 0; ki < 4; ki++) {
                        size_t k = ks[ki];
                        cb_knn_params p = {.threads = (int)(1 + ki % 3), .query_tile = 7, .base_tile = 13,
                                           .query_panel = 20};
                        result want = run_search(true, Q, nq, B, n, d, k, ms[mi], &p);
                        result got = run_search(false, Q, nq, B, n, d, k, ms[mi], &p);
                        assert_same(got, want, nq, k, "tiled");
                        result dflt = run_search(false, Q, nq, B, n, d, k, ms[mi], NULL);
                        assert_same(dflt, want, nq, k, "default tiles");
                        assert_ordered(want, nq, k, ms[mi], false);
                        result_free(want);
                        result_free(got);
                        result_free(dflt);
                    }
                    free(B);
                    free(Q);
                }
}

/* Larger catalog so that the few-queries path spans several units and
 * threads, and the batch path several panels. */
static void large_paths_and_threads(void **state) {
    (void)state;
    const size_t n = 70000, d = 32, k = 10;
    float *B = make_data(11, n, d, DATA_UNIT), *Q = make_data(12, 20, d, DATA_UNIT);
    for (int m = 0; m < 3; m++) {
        result want = run_search(true, Q, 3, B, n, d, k, (cb_knn_metric)m, NULL);
        for (int t = 1; t <= 3; t++) {
            cb_knn_params p = {.threads = t};
            result got = run_search(false, Q, 3, B, n, d, k, (cb_knn_metric)m, &p);
            assert_same(got, want, 3, k, "vector path");
            result_free(got);
            p.batch_min = 1; /* the same queries through sgemm */
            got = run_search(false, Q, 3, B, n, d, k, (cb_knn_metric)m, &p);
            assert_same(got, want, 3, k, "batch path");
            result_free(got);
        }
        result_free(want);
    }
    free(B);
    free(Q);
}

static void ties_duplicates_deterministic(void **state) {
    (void)state;
    const size_t n = 300, d = 8, nq = 30;
    for (int kind = DATA_INT; kind <= DATA_DUPS; kind += DATA_DUPS - DATA_INT) {
        float *B = make_data(21, n, d, kind), *Q = make_data(22, nq, d, kind);
        for (int m = 0; m < 2; m++)
            for (size_t k = 1; k <= 40; k += 13) {
                size_t fallbacks = 0;
                cb_knn_params p = {.threads = 2, .query_tile = 5, .base_tile = 17, .n_fallback = &fallbacks};
                result want = run_search(true, Q, nq, B, n, d, k, (cb_knn_metric)m, NULL);
                result got = run_search(false, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
                assert_same(got, want, nq, k, "ties");
                assert_ordered(got, nq, k, (cb_knn_metric)m, true);
                /* 5 distinct rows: ~60 copies tie at every rank; the fast
                 * pass keeps the whole band of ties (its buffers grow) and
                 * rescores it, so no query needs the full canonical rescan. */
                if (kind == DATA_DUPS) assert_int_equal(fallbacks, 0);
                result_free(want);
                result_free(got);
            }
        free(B);
        free(Q);
    }
}

/* More tied rows than a candidate buffer may grow to: the full canonical
 * rescan answers, on both paths, and still agrees with the reference. */
static void ties_beyond_the_band_fall_back(void **state) {
    (void)state;
    const size_t n = 6000, d = 8, nq = 3, k = 5;
    float *B = malloc(n * d * sizeof *B), Q[3 * 8];
    for (size_t i = 0; i < n * d; i++) B[i] = (float)(i % d) * 0.25f; /* every row the same */
    for (size_t i = 0; i < nq * d; i++) Q[i] = (float)(i % 5) - 2.0f;
    for (size_t batch_min = 1; batch_min <= 8; batch_min += 7) {
        size_t fallbacks = 0;
        cb_knn_params p = {.threads = 2, .batch_min = batch_min, .n_fallback = &fallbacks};
        result want = run_search(true, Q, nq, B, n, d, k, CB_KNN_L2, NULL);
        result got = run_search(false, Q, nq, B, n, d, k, CB_KNN_L2, &p);
        assert_same(got, want, nq, k, "all tied");
        assert_int_equal(fallbacks, nq);
        result_free(want);
        result_free(got);
    }
    free(B);
}

static void self_and_bitmap_exclusion(void **state) {
    (void)state;
    const size_t n = 200, d = 16, nq = 12, k = 15, words = (n + 63) / 64;
    float *B = make_data(31, n, d, DATA_GAUSS);
    int32_t self[12];
    for (size_t i = 0; i < nq; i++) self[i] = (int32_t)(i * 7);
    uint64_t shared[4] = {0}, per[12 * 4] = {0};
    for (size_t j = 0; j < n; j += 3) shared[j / 64] |= 1ull << (j % 64);
    for (size_t q = 0; q < nq; q++)
        for (size_t j = q % 5; j < n; j += 5) per[q * words + j / 64] |= 1ull << (j % 64);
    /* Queries are base rows, so without exclusion each finds itself first. */
    const float *Q = B;
    for (int m = 0; m < 3; m++) {
        cb_knn_params p = {.self_index = self, .query_tile = 4, .base_tile = 11};
        result r = run_search(false, Q + 0, nq, B, n, d, k, (cb_knn_metric)m, &p);
        result want = run_search(true, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
        assert_same(r, want, nq, k, "self");
        for (size_t q = 0; q < nq; q++)
            for (size_t i = 0; i < k; i++) assert_int_not_equal(r.idx[q * k + i], self[q]);
        result_free(r);
        result_free(want);

        p.self_index = NULL;
        p.exclude = shared;
        r = run_search(false, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
        want = run_search(true, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
        assert_same(r, want, nq, k, "shared bitmap");
        for (size_t i = 0; i < nq * k; i++) assert_true(r.idx[i] % 3 != 0);
        result_free(r);
        result_free(want);

        p.exclude = per;
        p.exclude_stride = words;
        for (int path = 0; path < 3; path++) {
            /* few-queries path; sgemm with tiny tiles; sgemm with default
             * tiles (where the first-tile threshold seed counts exclusions) */
            p.batch_min = path ? 1 : 1000;
            p.query_tile = path == 1 ? 4 : 0;
            p.base_tile = path == 1 ? 11 : 0;
            r = run_search(false, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
            want = run_search(true, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
            assert_same(r, want, nq, k, "per-query bitmap");
            for (size_t q = 0; q < nq; q++)
                for (size_t i = 0; i < k; i++) assert_true((size_t)r.idx[q * k + i] % 5 != q % 5);
            result_free(r);
            result_free(want);
        }
    }
    free(B);
}

/* Excluding the best-scoring rows: the fast path's early threshold must
 * count exclusions, or it would start above every eligible row. */
static void excluding_the_best_rows(void **state) {
    (void)state;
    const size_t n = 500, d = 8, nq = 8, k = 10, top = 300;
    float *B = make_data(35, n, d, DATA_GAUSS), *Q = malloc(nq * d * sizeof *Q);
    for (size_t q = 0; q < nq; q++) memcpy(Q + q * d, B, d * sizeof *Q);
    for (int m = 0; m < 3; m++) {
        result best = run_search(true, Q, 1, B, n, d, top, (cb_knn_metric)m, NULL);
        uint64_t bits[8] = {0};
        for (size_t i = 0; i < top; i++) bits[best.idx[i] / 64] |= 1ull << (best.idx[i] % 64);
        cb_knn_params p = {.exclude = bits, .batch_min = 1};
        result want = run_search(true, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
        result got = run_search(false, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
        assert_same(got, want, nq, k, "best rows excluded");
        result_free(best);
        result_free(want);
        result_free(got);
    }
    free(B);
    free(Q);
}

static void exclusion_pads_short_rows(void **state) {
    (void)state;
    const size_t n = 10, d = 4, k = 10;
    float *B = make_data(41, n, d, DATA_GAUSS);
    uint64_t bits = 0x3f; /* rows 0..5 excluded: 4 remain */
    int32_t self = 9;     /* and one more: 3 remain */
    cb_knn_params p = {.exclude = &bits, .self_index = &self};
    for (int m = 0; m < 3; m++) {
        result r = run_search(false, B, 1, B, n, d, k, (cb_knn_metric)m, &p);
        result want = run_search(true, B, 1, B, n, d, k, (cb_knn_metric)m, &p);
        assert_same(r, want, 1, k, "padded");
        for (size_t i = 0; i < 3; i++) assert_true(r.idx[i] >= 6 && r.idx[i] <= 8);
        for (size_t i = 3; i < k; i++) {
            assert_int_equal(r.idx[i], -1);
            assert_true(isinf(r.score[i]));
        }
        result_free(r);
        result_free(want);
    }
    free(B);
}

static void bad_arguments(void **state) {
    (void)state;
    float B[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t idx[8];
    float sc[8];
    cb_error err = {0};
    assert_int_equal(cb_knn_search(B, 1, B, 4, 2, 5, CB_KNN_DOT, NULL, idx, sc, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "larger than the catalog"));
    assert_int_equal(cb_knn_search_naive(B, 1, B, 4, 2, 5, CB_KNN_DOT, NULL, idx, sc, &err), CB_EINVAL);
    assert_int_equal(cb_knn_search(B, 1, B, 4, 2, 0, CB_KNN_DOT, NULL, idx, sc, &err), CB_EINVAL);
    assert_int_equal(cb_knn_search(B, 1, B, 0, 2, 1, CB_KNN_DOT, NULL, idx, sc, &err), CB_EINVAL);
    assert_int_equal(cb_knn_search(B, 1, B, 4, 2, 1, (cb_knn_metric)9, NULL, idx, sc, &err), CB_EINVAL);
    int32_t self = 4;
    cb_knn_params p = {.self_index = &self};
    assert_int_equal(cb_knn_search(B, 1, B, 4, 2, 1, CB_KNN_L2, &p, idx, sc, &err), CB_EINVAL);
    cb_knn_table t;
    assert_int_equal(cb_knn_similar_table(&t, B, 4, 2, 4, 1, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "between 1 and"));
    assert_null(t.neighbors);
    assert_int_equal(cb_knn_similar_table(&t, B, 1, 2, 1, 1, &err), CB_EINVAL);
    float bad[8] = {1, 2, 3, NAN, 5, 6, 7, 8};
    assert_int_equal(cb_knn_similar_table(&t, bad, 4, 2, 2, 1, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "row 1"));
    cb_knn_table_free(NULL);
    cb_knn_index_free(NULL);
}

/* Table row i == one-query search with self excluded == naive. */
static void table_matches_search(void **state) {
    (void)state;
    const size_t n = 600, d = 32, k = 12;
    for (int kind = DATA_GAUSS; kind <= DATA_INT; kind++) {
        float *V = make_data(51 + (uint64_t)kind, n, d, kind);
        cb_knn_table t1, t2;
        cb_error err = {0};
        assert_int_equal(cb_knn_similar_table(&t1, V, n, d, k, 1, &err), CB_OK);
        assert_int_equal(cb_knn_similar_table(&t2, V, n, d, k, 3, &err), CB_OK);
        assert_int_equal(t1.n_items, n);
        assert_int_equal(t1.k, k);
        assert_memory_equal(t1.neighbors, t2.neighbors, n * k * sizeof(int32_t));
        assert_memory_equal(t1.distances, t2.distances, n * k * sizeof(float));
        for (size_t i = 0; i < n; i += 37) {
            int32_t self = (int32_t)i;
            cb_knn_params p = {.self_index = &self};
            result one = run_search(false, V + i * d, 1, V, n, d, k, CB_KNN_L2, &p);
            result ref = run_search(true, V + i * d, 1, V, n, d, k, CB_KNN_L2, &p);
            const int32_t *nb;
            const float *ds;
            assert_int_equal(cb_knn_table_row(&t1, i, &nb, &ds, &err), CB_OK);
            assert_same((result){(int32_t *)nb, (float *)ds}, one, 1, k, "table vs search");
            assert_same(one, ref, 1, k, "search vs naive");
            result_free(one);
            result_free(ref);
        }
        for (size_t i = 0; i < n * k; i++) assert_true(t1.neighbors[i] != (int32_t)(i / k));
        assert_int_equal(cb_knn_table_row(&t1, n, NULL, NULL, &err), CB_ENOTFOUND);
        cb_knn_table_free(&t1);
        cb_knn_table_free(&t2);
        assert_null(t1.neighbors);
        free(V);
    }
}

/* Items sharing vectors (the table searches each distinct vector once and
 * expands its list): groups of 1 to 60 copies of small-integer prototypes,
 * so distinct vectors also tie exactly at the cut; every row equals the
 * naive search with the item excluded, for k below, near and above the
 * group sizes. */
static void table_with_shared_vectors(void **state) {
    (void)state;
    const size_t n = 900, d = 6, n_proto = 120;
    float *P = make_data(61, n_proto, d, DATA_INT), *V = malloc(n * d * sizeof *V);
    assert_non_null(V);
    cb_rng rng;
    cb_rng_seed(&rng, 62);
    for (size_t i = 0; i < n; i++) {
        size_t p = cb_rng_below(&rng, 4) ? cb_rng_below(&rng, 10) : cb_rng_below(&rng, n_proto); /* big groups */
        memcpy(V + i * d, P + p * d, d * sizeof *V);
    }
    const size_t ks[] = {1, 7, 70};
    for (size_t a = 0; a < 3; a++) {
        size_t k = ks[a];
        cb_knn_table t;
        cb_error err = {0};
        assert_int_equal(cb_knn_similar_table(&t, V, n, d, k, 2, &err), CB_OK);
        int32_t *self = malloc(n * sizeof *self);
        for (size_t i = 0; i < n; i++) self[i] = (int32_t)i;
        cb_knn_params p = {.self_index = self};
        result ref = run_search(true, V, n, V, n, d, k, CB_KNN_L2, &p);
        assert_same((result){t.neighbors, t.distances}, ref, n, k, "grouped table vs naive");
        result_free(ref);
        free(self);
        cb_knn_table_free(&t);
    }
    free(P), free(V);
}

/* Inserting items one by one equals rebuilding with them appended,
 * including exact duplicates of existing items (ties at every distance). */
static void insert_equals_rebuild(void **state) {
    (void)state;
    const size_t n0 = 150, extra = 6, d = 8, k = 7;
    for (int kind = DATA_GAUSS; kind <= DATA_DUPS; kind++) {
        float *V = make_data(61 + (uint64_t)kind, n0 + extra, d, kind);
        memcpy(V + (n0 + 2) * d, V + 5 * d, d * sizeof *V); /* an exact duplicate */
        cb_knn_table t;
        cb_error err = {0};
        assert_int_equal(cb_knn_similar_table(&t, V, n0, d, k, 2, &err), CB_OK);
        size_t grown = 0;
        for (size_t e = 0; e < extra; e++) {
            assert_int_equal(cb_knn_table_insert(&t, V, d, V + (n0 + e) * d, &err), CB_OK);
            assert_int_equal(t.n_items, n0 + e + 1);
            cb_knn_table ref;
            assert_int_equal(cb_knn_similar_table(&ref, V, n0 + e + 1, d, k, 1, &err), CB_OK);
            assert_memory_equal(t.neighbors, ref.neighbors, ref.n_items * k * sizeof(int32_t));
            assert_memory_equal(t.distances, ref.distances, ref.n_items * k * sizeof(float));
            for (size_t i = 0; i < n0 + e; i++)
                for (size_t r = 0; r < k; r++) grown += t.neighbors[i * k + r] == (int32_t)(n0 + e);
            cb_knn_table_free(&ref);
        }
        /* New items do appear in existing rows (with only 5 distinct rows,
         * every row already has k neighbours at distance 0 and lower index). */
        if (kind == DATA_DUPS) assert_int_equal(grown, 0);
        else assert_true(grown > 0);
        cb_knn_table_free(&t);
        free(V);
    }
}

static void save_load_fingerprint(void **state) {
    (void)state;
    const size_t n = 120, d = 8, k = 5;
    float *V = make_data(71, n, d, DATA_UNIT);
    cb_knn_table t, back;
    cb_error err = {0};
    assert_int_equal(cb_knn_similar_table(&t, V, n, d, k, 0, &err), CB_OK);
    char *dir = tu_tmpdir(), *path = tu_path(dir, "sim.safetensors");
    assert_int_equal(cb_knn_table_save(&t, path, "model-abc", &err), CB_OK);
    assert_int_equal(cb_knn_table_load(&back, path, "model-abc", &err), CB_OK);
    assert_int_equal(back.n_items, n);
    assert_int_equal(back.k, k);
    assert_memory_equal(back.neighbors, t.neighbors, n * k * sizeof(int32_t));
    assert_memory_equal(back.distances, t.distances, n * k * sizeof(float));
    cb_knn_table_free(&back);

    assert_int_equal(cb_knn_table_load(&back, path, "model-xyz", &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "another model"));
    assert_null(back.neighbors);
    assert_int_equal(cb_knn_table_save(&t, path, "", &err), CB_EINVAL);

    /* A well-formed container whose row 3 lists item 3 itself is refused. */
    t.neighbors[3 * k + 1] = 3;
    char *bad = tu_path(dir, "bad.safetensors");
    cb_st_writer *w = cb_st_writer_create(&err);
    int64_t shape[2] = {(int64_t)n, (int64_t)k};
    assert_int_equal(cb_st_add(w, "neighbors", CB_ST_I32, shape, 2, t.neighbors, &err), CB_OK);
    assert_int_equal(cb_st_add(w, "distances", CB_ST_F32, shape, 2, t.distances, &err), CB_OK);
    assert_int_equal(cb_st_set_meta(w, "fingerprint", "model-abc", &err), CB_OK);
    assert_int_equal(cb_st_write(w, bad, "cbrec-knn-table", 1, &err), CB_OK);
    cb_st_writer_free(w);
    assert_int_equal(cb_knn_table_load(&back, bad, "model-abc", &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "row 3"));
    assert_int_equal(cb_knn_table_load(&back, "/nonexistent/x", "model-abc", &err), CB_EIO);

    cb_knn_table_free(&t);
    tu_rmrf(dir);
    free(dir);
    free(path);
    free(bad);
    free(V);
}

static void index_reuse(void **state) {
    (void)state;
    const size_t n = 500, d = 32, k = 8;
    float *B = make_data(81, n, d, DATA_GAUSS), *Q = make_data(82, 4, d, DATA_GAUSS);
    cb_knn_index *ix;
    cb_error err = {0};
    assert_int_equal(cb_knn_index_create(&ix, B, n, d, &err), CB_OK);
    assert_int_equal(cb_knn_index_rows(ix), n);
    result want = run_search(true, Q, 4, B, n, d, k, CB_KNN_DOT, NULL);
    for (int rep = 0; rep < 3; rep++) {
        int32_t idx[32];
        float sc[32];
        assert_int_equal(cb_knn_index_search(ix, Q, 4, k, CB_KNN_DOT, NULL, idx, sc, &err), CB_OK);
        assert_same((result){idx, sc}, want, 4, k, "index");
    }
    /* out_score may be NULL */
    int32_t idx[32];
    assert_int_equal(cb_knn_index_search(ix, Q, 4, k, CB_KNN_DOT, NULL, idx, NULL, &err), CB_OK);
    assert_memory_equal(idx, want.idx, sizeof idx);
    result_free(want);
    cb_knn_index_free(ix);
    free(B);
    free(Q);
}

/* Rows ever closer to the queries (and farther, and in a zigzag): every row
 * or every other row beats the current k-th, so each one goes through the
 * candidate buffer's insertion, at every position; k = 37 spans five of the
 * AVX2 insertion's vectors. */
static void every_row_a_new_best(void **state) {
    (void)state;
    const size_t n = 3000, d = 16, nq = 9;
    float *Q = make_data(41, nq, d, DATA_GAUSS), *B = malloc(n * d * sizeof *B);
    for (int order = 0; order < 3; order++) {
        for (size_t j = 0; j < n; j++) {
            size_t r = order == 0 ? j : order == 1 ? n - 1 - j : (j % 2 ? j : n - 1 - j);
            float f = 3.0f * (float)(n - r) / (float)n; /* rank r: distance ~ f */
            for (size_t t = 0; t < d; t++) B[j * d + t] = Q[t] + f * (t % 2 ? 0.5f : -0.25f);
        }
        for (int m = 0; m < 3; m++)
            for (size_t k = 1; k <= 37; k += 12) {
                cb_knn_params p = {.threads = 2, .query_tile = 4, .base_tile = 512};
                result want = run_search(true, Q, nq, B, n, d, k, (cb_knn_metric)m, NULL);
                result got = run_search(false, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
                assert_same(got, want, nq, k, "every row a new best");
                result_free(got);
                p.batch_min = 100; /* the few-queries path */
                got = run_search(false, Q, nq, B, n, d, k, (cb_knn_metric)m, &p);
                assert_same(got, want, nq, k, "every row a new best, fused path");
                result_free(got);
                result_free(want);
            }
    }
    free(Q);
    free(B);
}

static const char *self_path;

/* The selection tests again with CBREC_NO_AVX2=1 (the plain x86-64-v2
 * insertion and scan): both paths must equal the reference. */
static void plain_path_agrees(void **state) {
    (void)state;
    if (!cb_cpu_avx2()) {
        fprintf(stderr, "skipped: this run already takes the plain path (no AVX2, or CBREC_NO_AVX2 set)\n");
        return;
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "CBREC_NO_AVX2=1 '%s' --plain >/dev/null 2>&1", self_path);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 2 && strcmp(argv[1], "--plain") == 0) {
        const struct CMUnitTest plain[] = {
            cmocka_unit_test(fast_equals_naive),         cmocka_unit_test(ties_duplicates_deterministic),
            cmocka_unit_test(ties_beyond_the_band_fall_back), cmocka_unit_test(self_and_bitmap_exclusion),
            cmocka_unit_test(every_row_a_new_best),      cmocka_unit_test(table_with_shared_vectors),
        };
        return cmocka_run_group_tests_name("knn, plain path", plain, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_row_a_new_best),
        cmocka_unit_test(plain_path_agrees),
        cmocka_unit_test(fast_equals_naive),
        cmocka_unit_test(large_paths_and_threads),
        cmocka_unit_test(ties_duplicates_deterministic),
        cmocka_unit_test(ties_beyond_the_band_fall_back),
        cmocka_unit_test(self_and_bitmap_exclusion),
        cmocka_unit_test(excluding_the_best_rows),
        cmocka_unit_test(exclusion_pads_short_rows),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(table_matches_search),
        cmocka_unit_test(table_with_shared_vectors),
        cmocka_unit_test(insert_equals_rebuild),
        cmocka_unit_test(save_load_fingerprint),
        cmocka_unit_test(index_reuse),
    };
    return cmocka_run_group_tests_name("knn", tests, NULL, NULL);
}
