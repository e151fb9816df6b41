/* ann — the recommender's approximate (HNSW) index: building, loading and
 * saving it, the search-mode switch of include/cbrec.h, and the one dispatch
 * every catalog search of src/rec goes through (cb_rec_search), so similar,
 * recommend's embedding source and the similar-items table all follow the
 * same mode. The index itself is index/hnsw.c. */
#include "rec/recommend.h"

#include <string.h>

/* Dot-product searches walk a graph built on distances: a wider default beam
 * keeps their recall (measured in tests/test_hnsw.c). */
#define DOT_EF (2 * CB_HNSW_DEFAULT_EF)

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

CB_API int cb_recommender_build_index(cb_recommender *rec, size_t m, size_t ef_construction, int threads,
                                      cb_error *err) {
    if (!rec) return cb_fail(err, CB_EINVAL, "cb_recommender_build_index: NULL recommender");
    if (threads < 0) return cb_fail(err, CB_EINVAL, "cb_recommender_build_index: threads = %d", threads);
    if (rec->r->n_items < 2) /* as the similar-items table (cb_recommend_table_check_items): nothing to search among */
        return cb_fail(err, CB_EINVAL, "the catalog has %u item%s: an approximate index needs at least 2",
                       rec->r->n_items, rec->r->n_items == 1 ? "" : "s");
    cb_hnsw_build_params bp = {.m = m, .ef_construction = ef_construction, .threads = threads};
    cb_hnsw *h;
    int rc = cb_hnsw_build(&h, rec->r->item_vecs, rec->r->n_items, rec->r->dim, &bp, err);
    if (rc) return rc;
    cb_hnsw_free(rec->ann);
    rec->ann = h;
    return CB_OK;
}

CB_API int cb_recommender_save_index(const cb_recommender *rec, const char *path, cb_error *err) {
    if (!rec || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_save_index: NULL argument");
    if (!rec->ann) return cb_fail(err, CB_EINVAL, "no approximate index to save: build or load one first");
    return cb_hnsw_save(rec->ann, path, rec->r->fingerprint, err);
}

CB_API int cb_recommender_load_index(cb_recommender *rec, const char *path, cb_error *err) {
    if (!rec || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_load_index: NULL argument");
    cb_hnsw *h;
    int rc = cb_hnsw_load(&h, path, rec->r->item_vecs, rec->r->n_items, rec->r->dim, rec->r->fingerprint, err);
    if (rc) return rc;
    cb_hnsw_free(rec->ann);
    rec->ann = h;
    return CB_OK;
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
