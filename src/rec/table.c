/* table — the similar-items table of a recommender: built over the model's
 * item vectors, saved and loaded in two formats ("cbrec-knn-table" of knn.h
 * when it holds only model items, "cbrec-similar" when it also carries items
 * added later with their ids, titles and vectors), grown by one item; and the
 * similar-items query itself (a table lookup, else an exact search). */
#include "rec/recommend.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KNN_TABLE_FORMAT "cbrec-knn-table" /* knn.c's plain table */

void cb_recommend_table_free(cb_recommend_table *t) {
    if (!t) return;
    cb_knn_table_free(&t->knn);
    free(t->extra_vecs);
    for (uint32_t i = 0; i < t->n_extra; i++) {
        if (t->extra_ids) free(t->extra_ids[i]);
        if (t->extra_titles) free(t->extra_titles[i]);
    }
    free(t->extra_ids);
    free(t->extra_titles);
    memset(t, 0, sizeof *t);
}

int cb_recommend_table_build(cb_recommend_table *t, const cb_bundle *r, size_t k, int threads, bool *clamped,
                             cb_error *err) {
    memset(t, 0, sizeof *t);
    if (clamped) *clamped = false;
    if (r->n_items < 2)
        return cb_fail(err, CB_EINVAL, "the catalog has %u item%s: a similar-items table needs at least 2", r->n_items,
                       r->n_items == 1 ? "" : "s");
    if (k == 0) return cb_fail(err, CB_EINVAL, "k must be at least 1");
    if (k > r->n_items - 1) {
        k = r->n_items - 1;
        if (clamped) *clamped = true;
    }
    int rc = cb_knn_similar_table(&t->knn, r->item_vecs, r->n_items, r->dim, k, threads, err);
    if (rc) return rc;
    t->n_model_items = r->n_items;
    t->dim = r->dim;
    return CB_OK;
}

int cb_recommend_table_save(const cb_recommend_table *t, const char *path, const char *fingerprint, cb_error *err) {
    if (!t->n_extra) return cb_knn_table_save(&t->knn, path, fingerprint, err);
    cb_st_writer *w = cb_st_writer_create(err);
    if (!w) return CB_ENOMEM;
    int64_t shape[2] = {(int64_t)t->knn.n_items, (int64_t)t->knn.k};
    int64_t vshape[2] = {t->n_extra, t->dim};
    json_t *extra = json_array();
    for (uint32_t i = 0; extra && i < t->n_extra; i++)
        if (json_array_append_new(extra, json_pack("[s,s?]", t->extra_ids[i], t->extra_titles[i]))) {
            json_decref(extra);
            extra = NULL;
        }
    char *meta = extra ? json_dumps(extra, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(extra);
    char nmodel[32];
    snprintf(nmodel, sizeof nmodel, "%u", t->n_model_items);
    int rc = meta ? CB_OK : cb_fail(err, CB_ENOMEM, "out of memory");
    if (!rc) rc = cb_st_add(w, "neighbors", CB_ST_I32, shape, 2, t->knn.neighbors, err);
    if (!rc) rc = cb_st_add(w, "distances", CB_ST_F32, shape, 2, t->knn.distances, err);
    if (!rc) rc = cb_st_add(w, "extra.vectors", CB_ST_F32, vshape, 2, t->extra_vecs, err);
    if (!rc) rc = cb_st_set_meta(w, "fingerprint", fingerprint, err);
    if (!rc) rc = cb_st_set_meta(w, "extra_items", meta, err);
    if (!rc) rc = cb_st_set_meta(w, "model_items", nmodel, err);
    if (!rc) rc = cb_st_write(w, path, CB_RECOMMEND_TABLE_FORMAT, CB_RECOMMEND_TABLE_VERSION, err);
    free(meta);
    cb_st_writer_free(w);
    return rc;
}

/* The "cbrec-similar" layout: validated as strictly as knn's own loader. */
static int load_similar_format(cb_recommend_table *t, const cb_bundle *r, const cb_st *st, const char *path,
                               cb_error *err) {
    int64_t sn[2], sd[2], sv[2];
    const int32_t *nbr = cb_st_tensor(st, "neighbors", CB_ST_I32, 2, sn, err);
    const float *dist = nbr ? cb_st_tensor(st, "distances", CB_ST_F32, 2, sd, err) : NULL;
    const float *vecs = dist ? cb_st_tensor(st, "extra.vectors", CB_ST_F32, 2, sv, err) : NULL;
    if (!vecs) return CB_EFORMAT;
    const char *meta = cb_st_meta(st, "extra_items");
    json_error_t je;
    json_t *extra = meta ? json_loads(meta, 0, &je) : NULL;
    int rc = CB_EFORMAT;
    if (!json_is_array(extra) || (int64_t)json_array_size(extra) != sv[0] || sv[1] != r->dim || sv[0] < 1 ||
        sn[0] != sd[0] || sn[1] != sd[1] || sn[0] != (int64_t)r->n_items + sv[0] || sn[1] < 1 || sn[1] >= sn[0]) {
        cb_fail(err, CB_EFORMAT, "%s: similar-items table does not match the model (%u items of dimension %u)", path,
                r->n_items, r->dim);
        goto out;
    }
    size_t n = (size_t)sn[0], k = (size_t)sn[1];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++) {
            int32_t nb = nbr[i * k + j];
            float dv = dist[i * k + j];
            if (nb < 0 || (size_t)nb >= n || (size_t)nb == i || !(dv >= 0.0f) || !isfinite(dv) ||
                (j > 0 && dv < dist[i * k + j - 1])) {
                cb_fail(err, CB_EFORMAT, "%s: row %zu of the similar-items table is invalid at rank %zu", path, i, j);
                goto out;
            }
        }
    t->n_extra = (uint32_t)sv[0];
    t->extra_ids = cb_calloc(t->n_extra, sizeof *t->extra_ids, err);
    t->extra_titles = cb_calloc(t->n_extra, sizeof *t->extra_titles, err);
    t->extra_vecs = cb_malloc((size_t)t->n_extra * r->dim * sizeof *t->extra_vecs, err);
    t->knn.neighbors = cb_malloc(n * k * sizeof *nbr, err);
    t->knn.distances = cb_malloc(n * k * sizeof *dist, err);
    if (!t->extra_ids || !t->extra_titles || !t->extra_vecs || !t->knn.neighbors || !t->knn.distances) {
        rc = CB_ENOMEM;
        goto out;
    }
    memcpy(t->extra_vecs, vecs, (size_t)t->n_extra * r->dim * sizeof *vecs);
    memcpy(t->knn.neighbors, nbr, n * k * sizeof *nbr);
    memcpy(t->knn.distances, dist, n * k * sizeof *dist);
    t->knn.n_items = n;
    t->knn.k = k;
    for (uint32_t i = 0; i < t->n_extra; i++) {
        const char *id = NULL, *title = NULL;
        json_t *jt = NULL;
        if (json_unpack(json_array_get(extra, i), "[s,o]", &id, &jt) || (!json_is_null(jt) && !json_is_string(jt)) ||
            cb_bundle_item(r, id) >= 0) {
            cb_fail(err, CB_EFORMAT, "%s: added item %u is malformed or clashes with a model item", path, i);
            goto out;
        }
        title = json_string_value(jt); /* NULL for null */
        if (!(t->extra_ids[i] = cb_strdup(id, err)) || (title && !(t->extra_titles[i] = cb_strdup(title, err)))) {
            rc = CB_ENOMEM;
            goto out;
        }
    }
    rc = CB_OK;
out:
    json_decref(extra);
    return rc;
}

int cb_recommend_table_load(cb_recommend_table *t, const cb_bundle *r, const char *path, cb_error *err) {
    memset(t, 0, sizeof *t);
    cb_st *st;
    int rc = cb_st_open(&st, path, NULL, 1 << 20, err);
    if (rc) return rc;
    const char *format = cb_st_meta(st, "format"), *fp = cb_st_meta(st, "fingerprint");
    if (!format || (strcmp(format, KNN_TABLE_FORMAT) && strcmp(format, CB_RECOMMEND_TABLE_FORMAT))) {
        rc = cb_fail(err, CB_EFORMAT, "%s: not a similar-items table (format '%s')", path, format ? format : "none");
    } else if (!fp || strcmp(fp, r->fingerprint)) {
        rc = cb_fail(err, CB_EFORMAT,
                     "%s: this similar-items table was built from another model (fingerprint %s, the model's is %s); "
                     "rebuild it with `cbrec precompute`",
                     path, fp ? fp : "(none)", r->fingerprint);
    } else if (!strcmp(format, CB_RECOMMEND_TABLE_FORMAT)) {
        /* opened without a format, so cb_st_open verified the checksum only if present */
        if (!cb_st_meta(st, "checksum"))
            rc = cb_fail(err, CB_EFORMAT, "%s: no checksum", path);
        else if (cb_st_format_version(st) > CB_RECOMMEND_TABLE_VERSION)
            rc = cb_fail(err, CB_EFORMAT, "%s: table format version %d is newer than this cbrec understands", path,
                         cb_st_format_version(st));
        else rc = load_similar_format(t, r, st, path, err);
    } else {
        cb_st_close(st);
        st = NULL;
        rc = cb_knn_table_load(&t->knn, path, r->fingerprint, err);
        if (!rc && t->knn.n_items != r->n_items)
            rc = cb_fail(err, CB_EFORMAT, "%s: the table has %zu items but the model %u", path, t->knn.n_items,
                         r->n_items);
    }
    cb_st_close(st);
    if (rc) {
        cb_recommend_table_free(t);
        return rc;
    }
    t->n_model_items = r->n_items;
    t->dim = r->dim;
    return CB_OK;
}

int cb_recommend_table_add(cb_recommend_table *t, const cb_bundle *r, const char *id, const char *title,
                           const float *vec, cb_error *err) {
    if (!t->knn.neighbors) return cb_fail(err, CB_EINVAL, "add-item: empty similar-items table");
    if (cb_bundle_item(r, id) >= 0) return cb_fail(err, CB_EINVAL, "add-item: item '%s' is already in the model", id);
    for (uint32_t i = 0; i < t->n_extra; i++)
        if (!strcmp(t->extra_ids[i], id)) return cb_fail(err, CB_EINVAL, "add-item: item '%s' was already added", id);
    size_t n = t->knn.n_items, d = t->dim;
    /* knn's insert wants the current rows contiguous: model items, then added ones */
    float *V = cb_malloc(n * d * sizeof *V, err);
    float *ev = cb_realloc_array(NULL, (size_t)t->n_extra + 1, d * sizeof *ev, err);
    char **ids = cb_realloc_array(NULL, (size_t)t->n_extra + 1, sizeof *ids, err);
    char **titles = cb_realloc_array(NULL, (size_t)t->n_extra + 1, sizeof *titles, err);
    char *id_copy = cb_strdup(id, err), *title_copy = title ? cb_strdup(title, err) : NULL;
    int rc = CB_ENOMEM;
    if (!V || !ev || !ids || !titles || !id_copy || (title && !title_copy)) goto fail;
    memcpy(V, r->item_vecs, (size_t)r->n_items * d * sizeof *V);
    if (t->n_extra) memcpy(V + (size_t)r->n_items * d, t->extra_vecs, (size_t)t->n_extra * d * sizeof *V);
    if ((rc = cb_knn_table_insert(&t->knn, V, d, vec, err))) goto fail;
    if (t->n_extra) {
        memcpy(ev, t->extra_vecs, (size_t)t->n_extra * d * sizeof *ev);
        memcpy(ids, t->extra_ids, t->n_extra * sizeof *ids);
        memcpy(titles, t->extra_titles, t->n_extra * sizeof *titles);
    }
    memcpy(ev + (size_t)t->n_extra * d, vec, d * sizeof *ev);
    ids[t->n_extra] = id_copy;
    titles[t->n_extra] = title_copy;
    free(t->extra_vecs);
    free(t->extra_ids);
    free(t->extra_titles);
    t->extra_vecs = ev;
    t->extra_ids = ids;
    t->extra_titles = titles;
    t->n_extra++;
    free(V);
    return CB_OK;
fail:
    free(V);
    free(ev);
    free(ids);
    free(titles);
    free(id_copy);
    free(title_copy);
    return rc;
}

/* ---- similar items */

/* Neighbours of nq model items (or added items, table only): out_idx /
 * out_dist [nq x k], -1 padded. Table rows when the table has >= k columns. */
int cb_rec_neighbors_of(const cb_recommender *rec, const uint32_t *items, size_t nq, size_t k, int threads,
                        int32_t *out_idx, float *out_dist, bool *used_table, cb_error *err) {
    const cb_bundle *r = rec->r;
    *used_table = rec->has_table && rec->table.knn.k >= k;
    if (*used_table) {
        for (size_t q = 0; q < nq; q++) {
            const int32_t *nb;
            const float *ds;
            int rc = cb_knn_table_row(&rec->table.knn, items[q], &nb, &ds, err);
            if (rc) return rc;
            memcpy(out_idx + q * k, nb, k * sizeof *nb);
            memcpy(out_dist + q * k, ds, k * sizeof *ds);
        }
        return CB_OK;
    }
    for (size_t q = 0; q < nq; q++)
        if (items[q] >= r->n_items)
            return cb_fail(err, CB_EINVAL, "item '%s' was added to the table; its %zu nearest need a table with k >= %zu",
                           cb_recommender_item_id(rec, items[q]), k, k);
    float *Q = cb_malloc(nq * r->dim * sizeof *Q, err);
    int32_t *self = cb_malloc(nq * sizeof *self, err);
    int rc = (Q && self) ? CB_OK : CB_ENOMEM;
    if (!rc) {
        for (size_t q = 0; q < nq; q++) {
            memcpy(Q + q * r->dim, cb_rec_item_vec(rec, items[q]), r->dim * sizeof *Q);
            self[q] = (int32_t)items[q];
        }
        cb_knn_params p = {.threads = threads > 0 ? threads : 1, .self_index = self};
        rc = cb_knn_index_search(rec->index, Q, nq, k, CB_KNN_L2, &p, out_idx, out_dist, err);
    }
    free(Q);
    free(self);
    return rc;
}

int cb_recommend_similar(const cb_recommender *rec, uint32_t item, size_t k, cb_neighbor *out, size_t *n_out,
                         char *note, size_t note_size, cb_error *err) {
    *n_out = 0;
    if (note && note_size) note[0] = 0;
    uint32_t n = (uint32_t)cb_recommender_item_count(rec);
    if (item >= n) return cb_fail(err, CB_ENOTFOUND, "item index %u is not in the catalog (%u items)", item, n);
    if (k == 0) return cb_fail(err, CB_EINVAL, "k must be at least 1");
    size_t want = k;
    size_t avail = (rec->has_table && rec->table.knn.k >= k) ? n - 1 : rec->r->n_items - (item < rec->r->n_items);
    if (k > avail) {
        k = avail;
        if (note && note_size)
            snprintf(note, note_size, "k = %zu is more than the other items in the catalog; showing all %zu", want, k);
    }
    if (k == 0) return CB_OK;
    int32_t *idx = cb_malloc(k * sizeof *idx, err);
    float *dist = cb_malloc(k * sizeof *dist, err);
    bool used_table;
    int rc = (idx && dist) ? cb_rec_neighbors_of(rec, &item, 1, k, 1, idx, dist, &used_table, err) : CB_ENOMEM;
    if (!rc && rec->has_table && !used_table && note && note_size && !note[0])
        snprintf(note, note_size, "the table holds %zu neighbours per item; computed %zu exactly", rec->table.knn.k,
                 k);
    for (size_t j = 0; !rc && j < k; j++)
        if (idx[j] >= 0) out[(*n_out)++] = (cb_neighbor){(uint32_t)idx[j], dist[j]};
    free(idx);
    free(dist);
    return rc;
}

