/* ann — the recommender's approximate (HNSW) index: building, loading and
 * saving it, the search-mode switch of include/cbrec.h, and the one dispatch
 * every catalog search of src/rec goes through (cb_rec_search), so similar,
 * recommend's embedding source and the similar-items table all follow the
 * same mode. The index itself is index/hnsw.c. */
#include "rec/recommend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Dot-product searches walk a graph built on distances: a wider default beam
 * keeps their recall (measured in tests/test_hnsw.c). */
#define DOT_EF (2 * CB_HNSW_DEFAULT_EF)
/* The ranking graph's neighbour selection keeps longer links (hnsw.h's
 * alpha; Vamana's pruning): the items a walk by the ranking dot looks for,
 * the popular ones, sit apart from the many content-only items, and HNSW's
 * own heuristic (alpha 1) had left them a few links among themselves: on a
 * trained synthetic 100k catalog (`bench/rank_graph.sh`'s) the graph of
 * `cbrec index --threads 1` held 64 % of 40 users' exact top 10 among its top
 * 100 at any beam (one to four threads: 64-100 %); with 1.2, 100 % on
 * every build tried. */
#define RANK_ALPHA 1.2f
/* The index file's section of the ranking graph (cb_hnsw_save_sections). */
#define RANK_SECTION "rank"

const cb_hnsw *cb_rec_ann(const cb_recommender *rec) {
    if (!rec->ann || rec->search_mode == CB_SEARCH_EXACT) return NULL;
    if (rec->search_mode == CB_SEARCH_AUTO && rec->r->n_items < CB_ANN_AUTO_MIN_ITEMS) return NULL;
    return rec->ann;
}

/* The graph is built on the whole item vectors. A model with split heads
 * (rating and retrieval halves) ranks by one half (cb_rec_query_part: the
 * query is zero elsewhere), and a walk by that half's dot product is a walk
 * in another geometry, which the graph does not navigate: on a trained
 * synthetic 100k catalog, `recommend --rank-by dot --index` found none of the
 * exact top 10 for 9 of the first 20 users (recall@10 0.54 over 200 users,
 * the whole vectors' walk 0.99 at the same beam). Those searches are exact. */
static bool half_vector_query(const cb_recommender *rec, cb_knn_metric metric) {
    uint32_t off, len;
    cb_bundle_rank_part(rec->r, &off, &len);
    return metric == CB_KNN_DOT && len < rec->r->dim;
}

/* The ranking graph applies where the list is ranked by the retrieval
 * score (the default of a model trained for retrieval), or by the rank
 * part's plain dot when there is no prior (the vectors' last float is 0). */
const cb_hnsw *cb_rec_rank_ann(const cb_recommender *rec, cb_rank_by by) {
    if (!rec->rank_ann || !cb_rec_ann(rec) || by == CB_RANK_RATING || !cb_bundle_has_retrieval(rec->r)) return NULL;
    return by == CB_RANK_DOT && cb_bundle_rank_bias(rec->r) ? NULL : rec->rank_ann;
}

void cb_rec_ann_drop(cb_recommender *rec) {
    cb_hnsw_free(rec->ann);
    cb_hnsw_free(rec->rank_ann);
    free(rec->rank_vecs);
    rec->ann = rec->rank_ann = NULL;
    rec->rank_vecs = NULL;
}

/* The ranking vectors [n_items x (len + 1)] of the model's items (see
 * cb_rec_rank_ann); *out NULL when the model does not rank by the retrieval
 * score, its score does not grow with the dot (a <= 0: no graph orders it),
 * or a prior is not finite. */
static int rank_vectors(const cb_recommender *rec, float **out, size_t *dim, cb_error *err) {
    const cb_bundle *r = rec->r;
    *out = NULL;
    uint32_t off, len;
    float a, c0;
    cb_bundle_rank_part(r, &off, &len);
    cb_rec_rank_affine(r, &a, &c0);
    if (!cb_bundle_has_retrieval(r) || !(a > 0) || !isfinite(a)) return CB_OK;
    const float *bias = cb_bundle_rank_bias(r);
    *dim = (size_t)len + 1;
    float *v = cb_malloc((size_t)r->n_items * *dim * sizeof *v, err);
    if (!v) return CB_ENOMEM;
    bool finite = true;
    for (size_t i = 0; i < r->n_items; i++) {
        memcpy(v + i * *dim, r->item_vecs + i * r->dim + off, len * sizeof *v);
        v[i * *dim + len] = bias ? bias[i] / a : 0.0f;
        finite = finite && isfinite(v[i * *dim + len]);
    }
    if (!finite) { /* a graph needs finite rows: such a model ranks exactly, as without the graph */
        free(v);
        return CB_OK;
    }
    *out = v;
    return CB_OK;
}

int cb_rec_search(const cb_recommender *rec, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                  const cb_knn_params *p, int32_t *out_idx, float *out_score, cb_error *err) {
    const cb_hnsw *ann = cb_rec_ann(rec);
    if (!ann || half_vector_query(rec, metric)) return cb_knn_index_search(rec->index, Q, nq, k, metric, p, out_idx, out_score, err);
    cb_knn_params ap = p ? *p : (cb_knn_params){0};
    if (!ap.ef) ap.ef = rec->ann_ef ? rec->ann_ef : metric == CB_KNN_DOT ? DOT_EF : 0;
    return cb_hnsw_search(ann, Q, nq, k, metric, &ap, out_idx, out_score, err);
}

int cb_rec_ann_table(cb_recommend_table *t, const cb_recommender *rec, size_t k, int threads, cb_error *err) {
    memset(t, 0, sizeof *t);
    const cb_bundle *r = rec->r;
    if (cb_recommend_table_check_items(r, err)) return CB_EINVAL;
    if (k == 0) return cb_fail(err, CB_EINVAL, "k must be at least 1");
    if (k > r->n_items - 1) k = r->n_items - 1;
    int rc = cb_hnsw_similar_table(&t->knn, cb_rec_ann(rec), k, rec->ann_ef, threads, err);
    if (rc) return rc;
    t->n_model_items = r->n_items;
    t->dim = r->dim;
    return CB_OK;
}

/* The new graphs (and the ranking vectors the second borrows) replace the
 * recommender's when rc is CB_OK; else they are freed. Returns rc. */
static int attach(cb_recommender *rec, int rc, cb_hnsw *h, cb_hnsw *rank_h, float *rank_v) {
    if (rc) {
        cb_hnsw_free(h);
        cb_hnsw_free(rank_h);
        free(rank_v);
        return rc;
    }
    cb_rec_ann_drop(rec);
    rec->ann = h, rec->rank_ann = rank_h, rec->rank_vecs = rank_v;
    return CB_OK;
}

CB_API int cb_recommender_build_index(cb_recommender *rec, size_t m, size_t ef_construction, int threads,
                                      cb_error *err) {
    if (!rec) return cb_fail(err, CB_EINVAL, "cb_recommender_build_index: NULL recommender");
    if (threads < 0) return cb_fail(err, CB_EINVAL, "cb_recommender_build_index: threads = %d", threads);
    if (rec->r->n_items < 2) /* as the similar-items table (cb_recommend_table_check_items): nothing to search among */
        return cb_fail(err, CB_EINVAL, "the catalog has %u item%s: an approximate index needs at least 2",
                       rec->r->n_items, rec->r->n_items == 1 ? "" : "s");
    cb_hnsw_build_params bp = {.m = m, .ef_construction = ef_construction, .threads = threads};
    cb_hnsw *h = NULL, *rank_h = NULL;
    float *rank_v = NULL;
    size_t rank_dim = 0;
    int rc = cb_hnsw_build(&h, rec->r->item_vecs, rec->r->n_items, rec->r->dim, &bp, err);
    if (!rc) rc = rank_vectors(rec, &rank_v, &rank_dim, err);
    bp.alpha = RANK_ALPHA;
    if (!rc && rank_v) rc = cb_hnsw_build(&rank_h, rank_v, rec->r->n_items, rank_dim, &bp, err);
    return attach(rec, rc, h, rank_h, rank_v);
}

CB_API int cb_recommender_save_index(const cb_recommender *rec, const char *path, cb_error *err) {
    if (!rec || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_save_index: NULL argument");
    if (!rec->ann) return cb_fail(err, CB_EINVAL, "no approximate index to save: build or load one first");
    return cb_hnsw_save_sections(rec->ann, rec->rank_ann, RANK_SECTION, path, rec->r->fingerprint, err);
}

/* An index file without the ranking graph (written before it) still loads: the
 * default recommend then ranks the whole catalog exactly, as it did. */
CB_API int cb_recommender_load_index(cb_recommender *rec, const char *path, cb_error *err) {
    if (!rec || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_load_index: NULL argument");
    cb_hnsw *h = NULL, *rank_h = NULL;
    float *rank_v = NULL;
    size_t rank_dim = 0;
    int rc = cb_hnsw_load(&h, path, rec->r->item_vecs, rec->r->n_items, rec->r->dim, rec->r->fingerprint, err);
    if (!rc) rc = rank_vectors(rec, &rank_v, &rank_dim, err);
    if (!rc && rank_v)
        rc = cb_hnsw_load_section(&rank_h, path, RANK_SECTION, rank_v, rec->r->n_items, rank_dim, rec->r->fingerprint,
                                  err);
    if (!rc && !rank_h) free(rank_v), rank_v = NULL; /* a file without it */
    return attach(rec, rc, h, rank_h, rank_v);
}

CB_API int cb_recommender_set_search(cb_recommender *rec, cb_search_mode mode, size_t ef, cb_error *err) {
    if (!rec) return cb_fail(err, CB_EINVAL, "cb_recommender_set_search: NULL recommender");
    if (mode != CB_SEARCH_AUTO && mode != CB_SEARCH_EXACT && mode != CB_SEARCH_APPROX)
        return cb_fail(err, CB_EINVAL, "unknown search mode %d", (int)mode);
    if (mode == CB_SEARCH_APPROX && !rec->ann)
        return cb_fail(err, CB_EINVAL, "approximate search needs an index: build one (`cbrec index`) or load it");
    if (ef > 1000000) return cb_fail(err, CB_EINVAL, "ef = %zu is too large", ef);
    rec->search_mode = mode;
    rec->ann_ef = ef;
    return CB_OK;
}

CB_API int cb_recommender_search_is_approximate(const cb_recommender *rec) { return rec && cb_rec_ann(rec) ? 1 : 0; }

CB_API size_t cb_recommender_index_unreached(const cb_recommender *rec, size_t *indexed, int *counted) {
    bool saved = true;
    size_t n = rec && rec->ann ? cb_hnsw_unreached(rec->ann, &saved) : 0;
    if (indexed) *indexed = rec && rec->ann ? cb_hnsw_rows(rec->ann) : 0;
    if (counted) *counted = saved ? 1 : 0;
    return n;
}
