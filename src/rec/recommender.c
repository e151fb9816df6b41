/* recommender — the public cb_recommender of include/cbrec.h, the one
 * serving handle: creating it (load, or over a trained model), saving,
 * describing, counts and ids of users, vectors, export (and the one rule of
 * its ids files' lines, cb_id_line_escape / _unescape), predictions, the
 * similar-items table calls, and the similar / recommend calls that hand
 * the pipeline's results to the caller as cb_list. */
#include "rec/recommend.h"
#include "index/hnsw.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- creating and freeing */

int cb_recommender_wrap(cb_recommender **out, const cb_bundle *r, cb_error *err) {
    *out = NULL;
    if (!r || r->n_items == 0) return cb_fail(err, CB_EINVAL, "the model's catalog is empty: nothing to recommend");
    cb_recommender *h = cb_calloc(1, sizeof *h, err);
    if (!h) return CB_ENOMEM;
    h->r = r;
    cb_rec_rank_prepare(h);
    int rc = cb_knn_index_create(&h->index, r->item_vecs, r->n_items, r->dim, err);
    if (rc) {
        free(h);
        return rc;
    }
    *out = h;
    return CB_OK;
}

int cb_recommender_from_bundle(cb_recommender **out, cb_bundle *r, cb_error *err) {
    int rc = cb_recommender_wrap(out, r, err);
    if (rc) cb_bundle_free(r);
    else (*out)->owned = r;
    return rc;
}

cb_bundle *cb_recommender_bundle(cb_recommender *h) { return h ? h->owned : NULL; }

int cb_recommender_bundle_changed(cb_recommender *h, cb_error *err) {
    cb_knn_index_free(h->index);
    h->index = NULL;
    cb_rec_ann_drop(h); /* built over the old vectors */
    cb_recommend_table_free(&h->table); /* built from the old vectors */
    h->has_table = false;
    cb_rec_rank_prepare(h);
    return cb_knn_index_create(&h->index, h->r->item_vecs, h->r->n_items, h->r->dim, err);
}

/* The recommender's block list dropped (cb_recommender_set_block_file). */
static void block_drop(cb_recommender *h) {
    cb_recommend_block_free(h->block);
    free(h->block);
    free(h->block_path);
    h->block = NULL, h->block_path = NULL;
}

CB_API int cb_recommender_set_block_file(cb_recommender *h, const char *path, cb_error *err) {
    if (!h) return cb_fail(err, CB_EINVAL, "cb_recommender_set_block_file: NULL recommender");
    cb_blocklist *bl = NULL;
    char *copy = NULL;
    if (path && *path) {
        int rc = (bl = cb_calloc(1, sizeof *bl, err)) && (copy = cb_strdup(path, err)) ? CB_OK : CB_ENOMEM;
        if (!rc) rc = cb_recommend_block_load(bl, h, path, err);
        if (rc) return free(bl), free(copy), rc;
    }
    block_drop(h);
    h->block = bl, h->block_path = copy;
    return CB_OK;
}

CB_API int cb_recommender_item_blocked(const cb_recommender *h, size_t item) {
    return h && item <= UINT32_MAX && cb_rec_blocked(h, (uint32_t)item);
}

CB_API void cb_recommender_free(cb_recommender *h) {
    if (!h) return;
    block_drop(h);
    cb_knn_index_free(h->index);
    cb_rec_ann_drop(h);
    cb_recommend_table_free(&h->table);
    cb_bundle_free(h->owned);
    free(h);
}

CB_API int cb_recommender_load(cb_recommender **out, const char *model_path, const char *table_path, cb_error *err) {
    return cb_recommender_load_files(out, model_path, NULL, table_path, err);
}

/* The loads below: the history required to match (history_optional false), or not. */
static int load_files(cb_recommender **out, const char *model_path, const char *history_path, bool history_optional,
                      const char *table_path, cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_recommender_load: out is NULL");
    *out = NULL;
    if (!model_path) return cb_fail(err, CB_EINVAL, "cb_recommender_load: no model path");
    cb_bundle *b = NULL;
    cb_recommender *h = NULL;
    int rc = history_optional ? cb_bundle_load_model(&b, model_path, err)
                              : cb_bundle_load_files(&b, model_path, history_path, err);
    if (!rc) rc = cb_recommender_from_bundle(&h, b, err);
    if (!rc && table_path) rc = cb_recommender_load_table(h, table_path, err);
    if (rc) {
        cb_recommender_free(h);
        return rc;
    }
    *out = h;
    return CB_OK;
}

CB_API int cb_recommender_load_files(cb_recommender **out, const char *model_path, const char *history_path,
                                     const char *table_path, cb_error *err) {
    return load_files(out, model_path, history_path, false, table_path, err);
}

CB_API int cb_recommender_load_model(cb_recommender **out, const char *model_path, const char *table_path,
                                     cb_error *err) {
    return load_files(out, model_path, NULL, true, table_path, err);
}

CB_API const char *cb_recommender_history_note(const cb_recommender *h) {
    return h && h->r->history_note ? h->r->history_note : "";
}

CB_API int cb_recommender_save(const cb_recommender *h, const char *path, cb_error *err) {
    if (!h || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_save: NULL argument");
    return cb_bundle_save(h->r, path, err);
}

CB_API int cb_recommender_save_files(const cb_recommender *h, const char *path, const char *history_path,
                                     cb_error *err) {
    if (!h || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_save_files: NULL argument");
    return cb_bundle_save_files(h->r, path, history_path, err);
}

CB_API int cb_recommender_check_files(const char *path, const char *history_path, cb_error *err) {
    cb_error_clear(err);
    if (!path) return cb_fail(err, CB_EINVAL, "cb_recommender_check_files: NULL path");
    return cb_bundle_check_paths(path, history_path, err);
}

/* Where the known users' histories come from (cb_recommender_describe). */
static const char *history_source(const cb_bundle *r) {
    if (!r->has_history) return "absent";
    if (r->history_path) return r->history_path;
    return r->file ? "model file" : "memory";
}

CB_API const char *cb_recommender_ratings_layout(const cb_recommender *rec) {
    return rec ? rec->r->ratings_layout : NULL;
}

/* The genre column's values (r->n_genres counts every content column's). */
static uint32_t genre_count(const cb_bundle *r) {
    uint32_t n = 0;
    for (uint32_t g = 0; r->features && g < r->n_genres; g++) n += cb_features_value_is_genre(r->features, g);
    return n;
}

CB_API int cb_recommender_describe(const cb_recommender *h, char **json_out, cb_error *err) {
    if (!h || !json_out) return cb_fail(err, CB_EINVAL, "cb_recommender_describe: NULL argument");
    const cb_bundle *r = h->r;
    json_t *groups = json_array();
    for (uint32_t g = 0; groups && g < r->n_groups; g++) json_array_append_new(groups, json_string(r->groups[g].column));
    json_t *doc = groups ? json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:b,s:[f,f],s:I,s:I,s:I,s:o,s:b,s:I,s:I}", "dataset",
                                     r->dataset ? r->dataset : "", "fingerprint", r->fingerprint ? r->fingerprint : "",
                                     "users", (json_int_t)r->n_users, "items", (json_int_t)r->n_items, "dim",
                                     (json_int_t)r->dim, "genres", (json_int_t)genre_count(r), "binary", r->binary,
                                     "rating_scale", (double)r->y_min, (double)r->y_max, "user_features",
                                     (json_int_t)cb_features_user_dim(r->features), "item_features",
                                     (json_int_t)cb_features_item_dim(r->features), "ratings",
                                     (json_int_t)r->seen_off[r->n_users], "groups", groups, "table", h->has_table,
                                     "table_k", (json_int_t)(h->has_table ? h->table.knn.k : 0), "added_items",
                                     (json_int_t)h->table.n_extra)
                        : NULL;
    if (doc) json_object_set_new(doc, "history", json_string(history_source(r)));
    if (doc) json_object_set_new(doc, "weighted", json_boolean(r->weighted));
    if (doc) json_object_set_new(doc, "prediction", json_string(cb_rec_prediction_name(r)));
    const cb_neighbours *nb = r->neighbours; /* the ranking's neighbour component, null when none */
    if (doc)
        json_object_set_new(doc, "neighbours",
                            nb ? json_pack("{s:s,s:I,s:f,s:f,s:f}", "kind", cb_neighbours_kind_name(nb->kind), "k",
                                           (json_int_t)nb->k, "shrink", (double)nb->shrink, "lambda",
                                           (double)nb->lambda, "weight", (double)nb->weight)
                               : json_null());
    char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!s) return cb_fail(err, CB_ENOMEM, "out of memory");
    *json_out = s;
    return CB_OK;
}

/* ---- users, vectors, predictions */

CB_API size_t cb_recommender_dim(const cb_recommender *h) { return h ? h->r->dim : 0; }
CB_API size_t cb_recommender_user_count(const cb_recommender *h) { return h ? h->r->n_users : 0; }
CB_API const char *cb_recommender_user_id(const cb_recommender *h, size_t user) {
    return h && user < h->r->n_users ? cb_bundle_user_id(h->r, (uint32_t)user) : NULL;
}
CB_API const float *cb_recommender_item_vectors(const cb_recommender *h) { return h ? h->r->item_vecs : NULL; }
CB_API const float *cb_recommender_user_vectors(const cb_recommender *h) { return h ? h->r->user_vecs : NULL; }

static int known_user(const cb_recommender *h, const char *user_id, uint32_t *u, cb_error *err) {
    int64_t i = cb_bundle_user(h->r, user_id);
    char hint[320];
    if (i < 0)
        return cb_fail(err, CB_ENOTFOUND, "unknown user '%s' (the model knows %u users; describe a new user as JSON)%s",
                       user_id, h->r->n_users, cb_rec_blank_hint(h, true, user_id, hint, sizeof hint));
    *u = (uint32_t)i;
    return CB_OK;
}

CB_API int cb_recommender_find_user(const cb_recommender *h, const char *user_id, size_t *user, cb_error *err) {
    if (!h || !user_id || !user) return cb_fail(err, CB_EINVAL, "cb_recommender_find_user: NULL argument");
    uint32_t u = 0;
    int rc = known_user(h, user_id, &u, err);
    if (!rc) *user = u;
    return rc;
}

CB_API int cb_recommender_user_vector(const cb_recommender *h, const char *user_id, float *out, cb_error *err) {
    if (!h || !user_id || !out) return cb_fail(err, CB_EINVAL, "cb_recommender_user_vector: NULL argument");
    uint32_t u = 0;
    int rc = known_user(h, user_id, &u, err);
    if (!rc) memcpy(out, h->r->user_vecs + (size_t)u * h->r->dim, h->r->dim * sizeof *out);
    return rc;
}

CB_API int cb_recommender_new_user_vector(const cb_recommender *h, const char *user_json, float *out, cb_error *err) {
    if (!h || !user_json || !out) return cb_fail(err, CB_EINVAL, "cb_recommender_new_user_vector: NULL argument");
    cb_profile p;
    int rc = cb_recommend_profile_string(&p, h->r, user_json, err);
    if (!rc) memcpy(out, p.vec, h->r->dim * sizeof *out);
    cb_recommend_profile_free(&p);
    return rc;
}

CB_API int cb_recommender_predict(const cb_recommender *h, const char *user_id, const char *item_id, float *rating,
                                  cb_error *err) {
    if (!h || !user_id || !item_id || !rating) return cb_fail(err, CB_EINVAL, "cb_recommender_predict: NULL argument");
    uint32_t u = 0;
    int rc = known_user(h, user_id, &u, err);
    if (rc) return rc;
    uint32_t i = 0; /* an added item too: its lists show the rating predicted here */
    char hint[320];
    if (!cb_rec_item_index(h, item_id, &i))
        return cb_fail(err, CB_ENOTFOUND, "unknown item '%s' (not in the model or its added items)%s", item_id,
                       cb_rec_blank_hint(h, false, item_id, hint, sizeof hint));
    if (!cb_bundle_has_rating(h->r))
        return cb_fail(err, CB_EINVAL, "this model predicts no rating (objective %s): it ranks only",
                       cb_objective_name(cb_model_config_of(h->r->model)->objective));
    *rating = cb_rec_rating(h, h->r->user_vecs + (size_t)u * h->r->dim, i);
    return CB_OK;
}

CB_API size_t cb_id_line_escape(char *out, const char *id) {
    size_t at = 0;
    for (; *id; id++) {
        char c = *id == '\n' ? 'n' : *id == '\r' ? 'r' : *id;
        if (c != *id || c == '\\') out[at++] = '\\';
        out[at++] = c;
    }
    out[at] = 0;
    return at;
}

CB_API int cb_id_line_unescape(char *out, const char *line, cb_error *err) {
    size_t at = 0;
    for (const char *p = line; *p; p++) {
        if (*p != '\\') {
            out[at++] = *p;
            continue;
        }
        char c = p[1];
        if (c != '\\' && c != 'n' && c != 'r')
            return cb_fail(err, CB_EPARSE, "byte %zu: a backslash must start \\\\, \\n or \\r (a backslash in an id "
                           "is written \\\\)", (size_t)(p - line) + 1);
        out[at++] = c == 'n' ? '\n' : c == 'r' ? '\r' : '\\';
        p++;
    }
    out[at] = 0;
    return CB_OK;
}

/* line i: id i, by cb_id_line_escape */
static int write_ids(const char *path, const cb_idtab *v, cb_error *err) {
    size_t longest = 0;
    for (uint32_t i = 0; i < cb_idtab_size(v); i++) {
        size_t n = strlen(cb_idtab_name(v, i));
        if (n > longest) longest = n;
    }
    char *line = cb_malloc(2 * longest + 1, err);
    if (!line) return CB_ENOMEM;
    cb_atomic_file af;
    int rc = cb_atomic_open(&af, path, err);
    for (uint32_t i = 0; !rc && i < cb_idtab_size(v); i++) {
        fwrite(line, 1, cb_id_line_escape(line, cb_idtab_name(v, i)), af.fp);
        fputc('\n', af.fp);
    }
    if (!rc) rc = cb_atomic_commit(&af, err);
    free(line);
    return rc;
}

static char *ids_json(const cb_idtab *v) {
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < cb_idtab_size(v); i++) json_array_append_new(a, json_string(cb_idtab_name(v, i)));
    char *s = a ? json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(a);
    return s;
}

static int export_st(const cb_bundle *r, const char *path, cb_error *err) {
    cb_st_writer *w = cb_st_writer_create(err);
    char *items = ids_json(r->items), *users = ids_json(r->users);
    int rc = w ? (items && users ? CB_OK : cb_fail(err, CB_ENOMEM, "out of memory")) : CB_ENOMEM;
    int64_t si[2] = {r->n_items, r->dim}, su[2] = {r->n_users, r->dim};
    if (!rc) rc = cb_st_add(w, "item_vectors", CB_ST_F32, si, 2, r->item_vecs, err);
    if (!rc) rc = cb_st_add(w, "user_vectors", CB_ST_F32, su, 2, r->user_vecs, err);
    if (!rc) rc = cb_st_set_meta(w, "item_ids", items, err);
    if (!rc) rc = cb_st_set_meta(w, "user_ids", users, err);
    if (!rc) rc = cb_st_set_meta(w, "fingerprint", r->fingerprint, err);
    if (!rc) rc = cb_st_write(w, path, "cbrec-embeddings", 1, err);
    cb_st_writer_free(w);
    free(items);
    free(users);
    return rc;
}

CB_API int cb_recommender_export_vectors(const cb_recommender *h, const char *dir, const char *format, cb_error *err) {
    if (!h || !dir || !format) return cb_fail(err, CB_EINVAL, "cb_recommender_export_vectors: NULL argument");
    if (strcmp(format, "npy") && strcmp(format, "st"))
        return cb_fail(err, CB_EINVAL, "vector format '%s': use npy or st", format);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return cb_fail(err, CB_EIO, "%s: cannot create: %s", dir, strerror(errno));
    const cb_bundle *r = h->r;
    char path[4096];
    if (!strcmp(format, "st")) {
        snprintf(path, sizeof path, "%s/embeddings.safetensors", dir);
        return export_st(r, path, err);
    }
    snprintf(path, sizeof path, "%s/item_vectors.npy", dir);
    int rc = cb_npy_write_f32(path, r->item_vecs, r->n_items, r->dim, err);
    snprintf(path, sizeof path, "%s/user_vectors.npy", dir);
    if (!rc) rc = cb_npy_write_f32(path, r->user_vecs, r->n_users, r->dim, err);
    snprintf(path, sizeof path, "%s/item_ids.txt", dir);
    if (!rc) rc = write_ids(path, r->items, err);
    snprintf(path, sizeof path, "%s/user_ids.txt", dir);
    if (!rc) rc = write_ids(path, r->users, err);
    return rc;
}

/* ---- the similar-items table */

/* Add to dst the added items of src that dst does not hold yet. */
static int merge_added(const cb_recommender *h, cb_recommend_table *dst, const cb_recommend_table *src, cb_error *err) {
    int rc = CB_OK;
    for (uint32_t i = 0; !rc && i < src->n_extra; i++) {
        bool held = false;
        for (uint32_t k = 0; k < dst->n_extra && !held; k++) held = !strcmp(dst->extra_ids[k], src->extra_ids[i]);
        if (!held)
            rc = cb_recommend_table_add(dst, h->r, src->extra_ids[i], src->extra_titles[i], src->extra_genres[i],
                                        src->extra_content[i], src->extra_vecs + (size_t)i * h->r->dim, err);
    }
    return rc;
}

/* Take t (built or loaded; consumed): a table with neighbour lists replaces
 * the recommender's and receives the items added in memory; an added-items
 * file without lists adds its items to the recommender's (lists and all).
 * On failure the recommender may have received some of t's items. */
/* A table changed the catalog (added items, perhaps in another order): the
 * block file read against it; if that fails, the list no longer matches and
 * every call is refused (cb_rec_block_check) until it is set again. */
static int block_reread(cb_recommender *h, cb_error *err) {
    if (!h->block_path) return CB_OK;
    cb_blocklist again;
    int rc = cb_recommend_block_load(&again, h, h->block_path, err);
    if (rc) return h->block->stale = true, rc;
    cb_recommend_block_free(h->block);
    *h->block = again;
    return CB_OK;
}

static int adopt_table(cb_recommender *h, cb_recommend_table *t, cb_error *err) {
    int rc;
    if (!t->knn.neighbors && h->has_table) {
        rc = merge_added(h, &h->table, t, err);
        cb_recommend_table_free(t);
        return rc ? rc : block_reread(h, err);
    }
    if ((rc = merge_added(h, t, &h->table, err))) {
        cb_recommend_table_free(t);
        return rc;
    }
    cb_recommend_table_free(&h->table);
    h->table = *t;
    h->has_table = t->knn.neighbors != NULL;
    return block_reread(h, err);
}

CB_API int cb_recommender_build_table(cb_recommender *h, size_t k, int threads, cb_error *err) {
    if (!h) return cb_fail(err, CB_EINVAL, "cb_recommender_build_table: NULL recommender");
    if (threads < 0) /* as cb_recommender_build_index: -1 had meant every core, unsaid */
        return cb_fail(err, CB_EINVAL, "cb_recommender_build_table: threads = %d (0 = every core)", threads);
    cb_recommend_table t;
    int rc = cb_rec_ann(h) ? cb_rec_ann_table(&t, h, k, threads, err)
                           : cb_recommend_table_build(&t, h->r, k, threads, NULL, err);
    return rc ? rc : adopt_table(h, &t, err);
}

/* A table of k neighbours per item of r: 2 items at least (said as the
 * other builds say it, so mpirun precompute does too), k of 1 to the other items. */
static int table_k_check(const cb_bundle *r, size_t k, cb_error *err) {
    if (cb_recommend_table_check_items(r, err)) return CB_EINVAL;
    if (k == 0 || k > r->n_items - 1)
        return cb_fail(err, CB_EINVAL, "k = %zu must be between 1 and the model's other items (%u)", k, r->n_items - 1);
    return CB_OK;
}

CB_API int cb_recommender_table_rows(const cb_recommender *h, size_t k, int threads, size_t first, size_t count,
                                     int32_t *neighbours, float *distances, cb_error *err) {
    if (!h || (count && (!neighbours || !distances)))
        return cb_fail(err, CB_EINVAL, "cb_recommender_table_rows: NULL argument");
    if (threads < 0) return cb_fail(err, CB_EINVAL, "cb_recommender_table_rows: threads = %d (0 = every core)", threads);
    const cb_bundle *r = h->r;
    int rc = table_k_check(r, k, err);
    if (rc) return rc;
    if (first > r->n_items || count > r->n_items - first)
        return cb_fail(err, CB_EINVAL, "rows %zu..%zu are outside the model's %u items", first, first + count,
                       r->n_items);
    if (cb_rec_ann(h)) return cb_fail(err, CB_EINVAL, "cb_recommender_table_rows: the exact table only (no index)");
    if (!count) return CB_OK;
    int32_t *self = cb_malloc(count * sizeof *self, err);
    if (!self) return CB_ENOMEM;
    for (size_t i = 0; i < count; i++) self[i] = (int32_t)(first + i);
    /* row i of the table is the search of item i with itself excluded, bit for bit (knn.h) */
    cb_knn_params p = {.threads = threads, .self_index = self};
    rc = cb_knn_search(r->item_vecs + first * r->dim, count, r->item_vecs, r->n_items, r->dim, k, CB_KNN_L2, &p,
                           neighbours, distances, err);
    free(self);
    return rc;
}

CB_API int cb_recommender_set_table(cb_recommender *h, size_t k, const int32_t *neighbours, const float *distances,
                                    cb_error *err) {
    if (!h || !neighbours || !distances) return cb_fail(err, CB_EINVAL, "cb_recommender_set_table: NULL argument");
    const cb_bundle *r = h->r;
    if (table_k_check(r, k, err)) return CB_EINVAL;
    for (size_t i = 0; i < r->n_items; i++) /* what a loaded table must satisfy */
        for (size_t j = 0; j < k; j++) {
            int32_t nb = neighbours[i * k + j];
            float dist = distances[i * k + j];
            if (nb < 0 || (uint32_t)nb >= r->n_items || (size_t)nb == i || !isfinite(dist) ||
                (j && dist < distances[i * k + j - 1]))
                return cb_fail(err, CB_EINVAL, "cb_recommender_set_table: row %zu, neighbour %zu (%d, %g) is out of "
                                               "range, the item itself or out of order", i, j, nb, (double)dist);
        }
    cb_recommend_table t = {0};
    t.knn.neighbors = cb_malloc((size_t)r->n_items * k * sizeof *t.knn.neighbors, err);
    t.knn.distances = t.knn.neighbors ? cb_malloc((size_t)r->n_items * k * sizeof *t.knn.distances, err) : NULL;
    if (!t.knn.distances) {
        cb_recommend_table_free(&t);
        return CB_ENOMEM;
    }
    memcpy(t.knn.neighbors, neighbours, (size_t)r->n_items * k * sizeof *t.knn.neighbors);
    memcpy(t.knn.distances, distances, (size_t)r->n_items * k * sizeof *t.knn.distances);
    t.knn.n_items = r->n_items;
    t.knn.k = k;
    t.n_model_items = r->n_items;
    t.dim = r->dim;
    return adopt_table(h, &t, err);
}

CB_API int cb_recommender_save_table(const cb_recommender *h, const char *path, cb_error *err) {
    if (!h || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_save_table: NULL argument");
    if (!h->has_table && !h->table.n_extra)
        return cb_fail(err, CB_EINVAL, "no similar-items table and no added items to save: build or load a table first");
    return cb_recommend_table_save(&h->table, path, h->r->fingerprint, err);
}

CB_API int cb_recommender_load_table(cb_recommender *h, const char *path, cb_error *err) {
    if (!h || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_load_table: NULL argument");
    cb_recommend_table t;
    int rc = cb_recommend_table_load(&t, h->r, path, err);
    return rc ? rc : adopt_table(h, &t, err);
}

CB_API size_t cb_recommender_table_k(const cb_recommender *h) { return h && h->has_table ? h->table.knn.k : 0; }

/* Append to *s (growing, *len its length) `sep` unless *s is empty, then v,
 * or col US v with a column (extra_content's pairs). */
static int append_text(char **s, size_t *len, char sep, const char *col, const char *v, cb_error *err) {
    size_t add = (col ? strlen(col) + 1 : 0) + strlen(v) + 1;
    char *g = cb_realloc_array(*s, *len + add + 1, 1, err);
    if (!g) return CB_ENOMEM;
    *s = g;
    if (*len) g[(*len)++] = sep;
    *len += col ? (size_t)snprintf(g + *len, add, "%s%c%s", col, CB_CONTENT_US, v)
                : (size_t)snprintf(g + *len, add, "%s", v);
    return CB_OK;
}

/* A content column's name or value holding CB_CONTENT_US or _RS would read
 * back split apart (extra_content): refused, naming the column. */
static int check_separators(const char *col, const char *str, cb_error *err) {
    const char seps[] = {CB_CONTENT_US, CB_CONTENT_RS, '\0'};
    const char *in_col = strpbrk(col, seps), *in_str = strpbrk(str, seps);
    if (in_col)
        return cb_fail(err, CB_EINVAL, "new item JSON: content column \"%s\": its name holds byte 0x%02X, a "
                       "separator of the added items' stored content", col, (unsigned)(unsigned char)*in_col);
    int shown = in_str && in_str - str < 80 ? (int)(in_str - str) : 80;
    if (in_str)
        return cb_fail(err, CB_EINVAL, "new item JSON: \"%s\": the value '%.*s...' holds byte 0x%02X, a separator "
                       "of the added items' stored content", col, shown, str, (unsigned)(unsigned char)*in_str);
    return CB_OK;
}

/* Append to *s (growing, *len its length) each known value of content
 * column `facet` in str (split as in its file), the values apart by `sep`;
 * with `col`, each as col US value (extra_content's pairs; str is first
 * checked for those separators). A value the features do not know is left
 * out (the embedding noted or refused it). */
static int append_values(const cb_features *f, uint32_t facet, const char *str, const char *col, char sep, char **s,
                         size_t *len, cb_error *err) {
    if (col && check_separators(col, str, err)) return CB_EINVAL;
    int rc = CB_OK;
    size_t bound = strlen(str) + 1; /* every value takes a byte of str */
    uint32_t n = 0, cap = bound < UINT32_MAX ? (uint32_t)bound : UINT32_MAX;
    uint32_t *ids = cb_malloc(cap * sizeof *ids, err);
    if (!ids) return CB_ENOMEM;
    if (cb_features_facet_values(f, facet, str, ids, cap, &n, false, NULL, 0, err)) n = 0; /* refused already */
    for (uint32_t i = 0; !rc && i < n; i++) rc = append_text(s, len, sep, col, cb_features_genre_name(f, ids[i]), err);
    free(ids);
    return rc;
}

/* The new item's "genres" as the table keeps them, names joined by '|': a
 * list's names; a string split as the genre column's values are in its
 * file (its known values: the string form had embedded the item with its
 * genres but kept none, so genre filters and the server's "genres" missed
 * it). */
static int added_genres(const cb_bundle *r, json_t *jg, char **out, cb_error *err) {
    *out = NULL;
    cb_attr_value a;
    if (json_is_array(jg))
        return json_array_size(jg) ? cb_rec_json_attr(&a, "genres", jg, out, "new item JSON", err) : CB_OK;
    int facet = json_is_string(jg) ? cb_features_facet_find(r->features, "genres") : -1;
    size_t len = 0;
    return facet < 0 ? CB_OK
                     : append_values(r->features, (uint32_t)facet, json_string_value(jg), NULL, '|', out, &len, err);
}

/* The new item's other content columns' values (tags, brand: not the
 * genres, kept apart) as the table keeps them (extra_content), NULL when
 * none: what the server shows under "content", as for the model's items. */
static int added_content(const cb_bundle *r, json_t *j, char **out, cb_error *err) {
    *out = NULL;
    size_t len = 0;
    const char *key;
    json_t *v;
    int rc = CB_OK;
    json_object_foreach(j, key, v) {
        int facet = cb_features_facet_find(r->features, key);
        if (facet < 0 || !strcmp(key, "genres")) continue;
        const char *col = cb_features_facet_name(r->features, (uint32_t)facet);
        if (json_is_string(v))
            rc = append_values(r->features, (uint32_t)facet, json_string_value(v), col, CB_CONTENT_RS, out, &len, err);
        for (size_t i = 0; !rc && i < json_array_size(v); i++) /* a list: each element's values */
            if (json_is_string(json_array_get(v, i)))
                rc = append_values(r->features, (uint32_t)facet, json_string_value(json_array_get(v, i)), col,
                                   CB_CONTENT_RS, out, &len, err);
        if (rc) break;
    }
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* A JSON number as the text a file would hold: an integer's digits, a real's
 * shortest form that reads back as it (7.5, 0.1, 1992.0 as 1992). */
static json_t *number_text(const json_t *v) {
    char text[40];
    double x = json_number_value(v);
    if (json_is_integer(v)) snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else cb_number_text(x, text, sizeof text);
    return json_string(text);
}

/* A content column's values are text: a number given for one ("year": 1992
 * of a categorical year, "brand": 7), alone or in a list, becomes its text in
 * j, so the vector and the kept content both take the value the column's file
 * would have. The genre column keeps its own rules (names; catalog.c). */
static int content_numbers_as_text(const cb_features *f, json_t *j, cb_error *err) {
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (cb_features_facet_find(f, key) < 0 || !strcmp(key, "genres")) continue;
        json_t *list = json_is_array(v) ? v : NULL;
        for (size_t i = 0; i < (list ? json_array_size(list) : 1); i++) {
            json_t *x = list ? json_array_get(list, i) : v;
            if (json_is_number(x) && (list ? json_array_set_new(list, i, number_text(x))
                                           : json_object_set_new(j, key, number_text(x))))
                return cb_fail(err, CB_ENOMEM, "out of memory");
        }
    }
    return CB_OK;
}

CB_API int cb_recommender_add_item(cb_recommender *h, const char *item_json, size_t *item, cb_error *err) {
    if (!h || !item_json) return cb_fail(err, CB_EINVAL, "cb_recommender_add_item: NULL argument");
    json_error_t je;
    json_t *j = json_loads(item_json, JSON_REJECT_DUPLICATES, &je);
    if (!j) return cb_fail(err, CB_EPARSE, "new item JSON:%d:%d: %s", je.line, je.column, je.text);
    float *vec = cb_calloc(h->r->dim, sizeof *vec, err);
    char *id = NULL, *title = NULL, *genres = NULL, *content = NULL;
    json_t *jg = json_object_get(j, "genres");
    h->add_note[0] = '\0';
    int rc = vec ? content_numbers_as_text(h->r->features, j, err) : CB_ENOMEM;
    if (!rc)
        rc = cb_recommend_embed_item(h->r, j, "new item JSON", vec, &id, &title, h->add_note, sizeof h->add_note, err);
    if (!rc) rc = added_genres(h->r, jg, &genres, err);
    if (!rc) rc = added_content(h->r, j, &content, err);
    if (!rc && h->block) rc = cb_recommend_block_reserve(h->block, cb_recommender_item_count(h) + 1, err);
    if (!rc) rc = cb_recommend_table_add(&h->table, h->r, id, title, genres, content, vec, err);
    if (!rc && h->block) cb_recommend_block_extend(h->block, h); /* blocked when it has a blocked value */
    if (!rc && item) *item = cb_recommender_item_count(h) - 1;
    json_decref(j);
    free(vec);
    free(id);
    free(title);
    free(genres);
    free(content);
    return rc;
}

CB_API const char *cb_recommender_add_item_note(const cb_recommender *h) { return h ? h->add_note : ""; }

/* ---- similar and recommend */

static cb_list *list_new(size_t n, const char *criterion, cb_error *err) {
    cb_list *l = cb_calloc(1, sizeof *l, err);
    if (l && !(l->items = cb_calloc(n + 1, sizeof *l->items, err))) {
        free(l);
        return NULL;
    }
    if (l) l->criterion = criterion;
    return l;
}

/* Are two item vectors the same but for rounding (a row's place in a
 * blocked product changes its last bits)? */
static bool same_vector(const float *a, const float *b, uint32_t dim) {
    for (uint32_t d = 0; d < dim; d++)
        if (fabsf(a[d] - b[d]) > 1e-5f) return false;
    return true;
}

/* A similar-items list whose first items have the same vector as one
 * another (so the same score; scores alone could meet by chance) ranks them
 * by nothing: their order among themselves is the catalog's, and when more
 * such items than the list holds exist, which of them it shows is too (items
 * without interactions and without content that differs share one vector).
 * A note says so; exact duplicates are still the most similar items. */
static int similar_ties(const cb_recommender *h, size_t item, cb_list *l, cb_error *err) {
    size_t tied = 1;
    const float *first = l->n ? cb_rec_item_vec(h, l->items[0].item) : NULL;
    while (tied < l->n && same_vector(cb_rec_item_vec(h, l->items[tied].item), first, h->r->dim)) tied++;
    if (tied < 2) return CB_OK;
    return cb_rec_push_str(&l->notes, &l->n_notes, err, "the first %zu items have the same vector (cosine similarity "
                           "%.4f against '%s'): nothing tells them apart, so their order, and which of them the list "
                           "shows, is the catalog's (items without interactions and without content that differs "
                           "share one vector)", tied, (double)l->items[0].score, cb_recommender_item_id(h, item));
}

CB_API int cb_recommender_similar(const cb_recommender *h, size_t item, size_t k, cb_list **out, cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_recommender_similar: out is NULL");
    *out = NULL;
    if (!h) return cb_fail(err, CB_EINVAL, "cb_recommender_similar: NULL recommender");
    size_t n_all = cb_recommender_item_count(h);
    if (item >= n_all) return cb_fail(err, CB_ENOTFOUND, "item number %zu is not in the catalog (%zu items)", item, n_all);
    if (k == 0) return cb_fail(err, CB_EINVAL, "k must be at least 1");
    size_t cap = k < n_all ? k : n_all; /* cb_recommend_similar clamps k to the other items and says so */
    cb_neighbor *nb = cb_malloc(cap * sizeof *nb, err);
    cb_list *l = nb ? list_new(cap, "cosine similarity", err) : NULL;
    char note[256];
    size_t n = 0;
    int rc = l ? cb_recommend_similar(h, (uint32_t)item, k, nb, &n, note, sizeof note, err) : CB_ENOMEM;
    if (!rc && note[0]) rc = cb_rec_push_str(&l->notes, &l->n_notes, err, "%s", note);
    const float *v = cb_rec_item_vec(h, (uint32_t)item);
    for (size_t i = 0; !rc && i < n; i++) {
        cb_list_entry *e = &l->items[i];
        l->n = i + 1;
        *e = (cb_list_entry){.item = nb[i].item, .rating = NAN, .dot = NAN, .added = cb_rec_is_added(h, nb[i].item),
                             .score = cb_rec_cosine(v, cb_rec_item_vec(h, nb[i].item), h->r->dim)};
        rc = cb_rec_entry_names(e, h, err);
    }
    free(nb);
    if (!rc) rc = similar_ties(h, item, l, err);
    if (rc) {
        cb_list_free(l);
        return rc;
    }
    *out = l;
    return CB_OK;
}

CB_API int cb_recommender_recommend(const cb_recommender *h, const char *user_id, const char *user_json,
                                    const cb_config *opts, cb_list **out, cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_recommender_recommend: out is NULL");
    *out = NULL;
    if (!h || (!user_id && !user_json))
        return cb_fail(err, CB_EINVAL, "cb_recommender_recommend: give user_id, user_json or both");
    cb_recommend_config cfg;
    cb_profile p = {0};
    uint32_t u = 0;
    int rc = cb_recommend_config_from(&cfg, opts, err);
    if (!rc && user_id && user_json) rc = cb_rec_profile_live(&p, h, user_id, user_json, err); /* serving.h block */
    else if (!rc && user_id && !(rc = known_user(h, user_id, &u, err))) rc = cb_recommend_profile_user(&p, h->r, u, err);
    else if (!rc && user_json) rc = cb_recommend_profile_string(&p, h->r, user_json, err);
    cb_list *l = rc ? NULL : cb_calloc(1, sizeof *l, err);
    if (!rc && !l) rc = CB_ENOMEM;
    if (!rc) rc = cb_recommend(h, &p, &cfg, NULL, l, err);
    cb_recommend_profile_free(&p);
    if (rc) {
        free(l);
        return rc;
    }
    *out = l;
    return CB_OK;
}
