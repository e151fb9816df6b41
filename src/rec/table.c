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
        if (t->extra_genres) free(t->extra_genres[i]);
        if (t->extra_content) free(t->extra_content[i]);
    }
    free(t->extra_ids);
    free(t->extra_titles);
    free(t->extra_genres);
    free(t->extra_content);
    memset(t, 0, sizeof *t);
}

int cb_recommend_table_check_items(const cb_bundle *r, cb_error *err) {
    if (r->n_items >= 2) return CB_OK;
    return cb_fail(err, CB_EINVAL, "the catalog has %u item%s: a similar-items table needs at least 2", r->n_items,
                   r->n_items == 1 ? "" : "s");
}

int cb_recommend_table_build(cb_recommend_table *t, const cb_bundle *r, size_t k, int threads, bool *clamped,
                             cb_error *err) {
    memset(t, 0, sizeof *t);
    if (clamped) *clamped = false;
    if (cb_recommend_table_check_items(r, err)) return CB_EINVAL;
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
    bool lists = t->knn.neighbors != NULL;
    if (!t->n_extra && !lists) return cb_fail(err, CB_EINVAL, "nothing to save: no table and no added items");
    if (!t->n_extra) return cb_knn_table_save(&t->knn, path, fingerprint, err);
    cb_st_writer *w = cb_st_writer_create(err);
    if (!w) return CB_ENOMEM;
    int64_t shape[2] = {(int64_t)t->knn.n_items, (int64_t)t->knn.k};
    int64_t vshape[2] = {t->n_extra, t->dim};
    json_t *extra = json_array();
    for (uint32_t i = 0; extra && i < t->n_extra; i++)
        if (json_array_append_new(extra, json_pack("[s,s?,s?,s?]", t->extra_ids[i], t->extra_titles[i],
                                                   t->extra_genres[i], t->extra_content[i]))) {
            json_decref(extra);
            extra = NULL;
        }
    char *meta = extra ? json_dumps(extra, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(extra);
    char nmodel[32];
    snprintf(nmodel, sizeof nmodel, "%u", t->n_model_items);
    int rc = meta ? CB_OK : cb_fail(err, CB_ENOMEM, "out of memory");
    if (!rc && lists) rc = cb_st_add(w, "neighbors", CB_ST_I32, shape, 2, t->knn.neighbors, err);
    if (!rc && lists) rc = cb_st_add(w, "distances", CB_ST_F32, shape, 2, t->knn.distances, err);
    if (!rc) rc = cb_st_add(w, "extra.vectors", CB_ST_F32, vshape, 2, t->extra_vecs, err);
    if (!rc) rc = cb_st_set_meta(w, "fingerprint", fingerprint, err);
    if (!rc) rc = cb_st_set_meta(w, "extra_items", meta, err);
    if (!rc) rc = cb_st_set_meta(w, "model_items", nmodel, err);
    if (!rc)
        rc = cb_st_write(w, path, lists ? CB_RECOMMEND_TABLE_FORMAT : CB_RECOMMEND_ADDED_FORMAT,
                         CB_RECOMMEND_TABLE_VERSION, err);
    free(meta);
    cb_st_writer_free(w);
    return rc;
}

/* The added items of either layout: "extra.vectors" and the metadata
 * "extra_items" ([id, title|null], [id, title|null, genres|null] or [id,
 * title|null, genres|null, content|null] each). */
static int load_extras(cb_recommend_table *t, const cb_bundle *r, const cb_st *st, const char *path, cb_error *err) {
    int64_t sv[2];
    const float *vecs = cb_st_tensor(st, "extra.vectors", CB_ST_F32, 2, sv, err);
    if (!vecs) return CB_EFORMAT;
    const char *meta = cb_st_meta(st, "extra_items");
    json_error_t je;
    json_t *extra = meta ? json_loads(meta, 0, &je) : NULL;
    int rc = CB_EFORMAT;
    if (!json_is_array(extra) || (int64_t)json_array_size(extra) != sv[0] || sv[1] != r->dim || sv[0] < 1) {
        cb_fail(err, CB_EFORMAT, "%s: the added items do not match the model (vectors of dimension %u)", path, r->dim);
        goto out;
    }
    t->n_extra = (uint32_t)sv[0];
    t->extra_ids = cb_calloc(t->n_extra, sizeof *t->extra_ids, err);
    t->extra_titles = cb_calloc(t->n_extra, sizeof *t->extra_titles, err);
    t->extra_genres = cb_calloc(t->n_extra, sizeof *t->extra_genres, err);
    t->extra_content = cb_calloc(t->n_extra, sizeof *t->extra_content, err);
    t->extra_vecs = cb_malloc((size_t)t->n_extra * r->dim * sizeof *t->extra_vecs, err);
    if (!t->extra_ids || !t->extra_titles || !t->extra_genres || !t->extra_content || !t->extra_vecs) {
        rc = CB_ENOMEM;
        goto out;
    }
    memcpy(t->extra_vecs, vecs, (size_t)t->n_extra * r->dim * sizeof *vecs);
    for (uint32_t i = 0; i < t->n_extra; i++) /* a checksum stops accidents; this, a crafted file */
        if (cb_bundle_check_vector(r, t->extra_vecs + (size_t)i * r->dim, false, err)) {
            cb_fail(err, CB_EFORMAT, "%s: the vector of added item %u is unusable (non-finite or all zeros)", path, i);
            goto out;
        }
    for (uint32_t i = 0; i < t->n_extra; i++) {
        const char *id = NULL;
        json_t *jt = NULL, *row = json_array_get(extra, i), *jg = json_array_get(row, 2), *jc = json_array_get(row, 3);
        bool dup = false, unpacked = !json_unpack(row, "[s,o]", &id, &jt);
        for (uint32_t k = 0; unpacked && k < i; k++) dup |= !strcmp(t->extra_ids[k], id);
        if (!unpacked || (!json_is_null(jt) && !json_is_string(jt)) ||
            (jg && !json_is_null(jg) && !json_is_string(jg)) || (jc && !json_is_null(jc) && !json_is_string(jc)) ||
            cb_bundle_item(r, id) >= 0 || dup) {
            cb_fail(err, CB_EFORMAT, "%s: added item %u is malformed or clashes with another item", path, i);
            goto out;
        }
        const char *title = json_string_value(jt), *genres = json_string_value(jg), *content = json_string_value(jc);
        if (!(t->extra_ids[i] = cb_strdup(id, err)) || (title && !(t->extra_titles[i] = cb_strdup(title, err))) ||
            (genres && !(t->extra_genres[i] = cb_strdup(genres, err))) ||
            (content && !(t->extra_content[i] = cb_strdup(content, err)))) {
            rc = CB_ENOMEM;
            goto out;
        }
    }
    rc = CB_OK;
out:
    json_decref(extra);
    return rc;
}

/* The "cbrec-similar" layout: validated as strictly as knn's own loader. */
static int load_similar_format(cb_recommend_table *t, const cb_bundle *r, const cb_st *st, const char *path,
                               cb_error *err) {
    int64_t sn[2], sd[2];
    const int32_t *nbr = cb_st_tensor(st, "neighbors", CB_ST_I32, 2, sn, err);
    const float *dist = nbr ? cb_st_tensor(st, "distances", CB_ST_F32, 2, sd, err) : NULL;
    if (!dist) return CB_EFORMAT;
    int rc = load_extras(t, r, st, path, err);
    if (rc) return rc;
    if (sn[0] != sd[0] || sn[1] != sd[1] || sn[0] != (int64_t)r->n_items + t->n_extra || sn[1] < 1 || sn[1] >= sn[0])
        return cb_fail(err, CB_EFORMAT, "%s: similar-items table does not match the model (%u items of dimension %u)",
                       path, r->n_items, r->dim);
    size_t n = (size_t)sn[0], k = (size_t)sn[1];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++) {
            int32_t nb = nbr[i * k + j];
            float dv = dist[i * k + j];
            if (nb < 0 || (size_t)nb >= n || (size_t)nb == i || !(dv >= 0.0f) || !isfinite(dv) ||
                (j > 0 && dv < dist[i * k + j - 1]))
                return cb_fail(err, CB_EFORMAT, "%s: row %zu of the similar-items table is invalid at rank %zu", path,
                               i, j);
        }
    t->knn.neighbors = cb_malloc(n * k * sizeof *nbr, err);
    t->knn.distances = cb_malloc(n * k * sizeof *dist, err);
    if (!t->knn.neighbors || !t->knn.distances) return CB_ENOMEM;
    memcpy(t->knn.neighbors, nbr, n * k * sizeof *nbr);
    memcpy(t->knn.distances, dist, n * k * sizeof *dist);
    t->knn.n_items = n;
    t->knn.k = k;
    return CB_OK;
}

int cb_recommend_table_load(cb_recommend_table *t, const cb_bundle *r, const char *path, cb_error *err) {
    memset(t, 0, sizeof *t);
    cb_st *st;
    int rc = cb_st_open(&st, path, NULL, 1 << 20, err);
    if (rc) return rc;
    const char *format = cb_st_meta(st, "format"), *fp = cb_st_meta(st, "fingerprint");
    bool ours = format && (!strcmp(format, CB_RECOMMEND_TABLE_FORMAT) || !strcmp(format, CB_RECOMMEND_ADDED_FORMAT));
    if (!format || (strcmp(format, KNN_TABLE_FORMAT) && !ours)) {
        rc = cb_fail(err, CB_EFORMAT, "%s: not a similar-items table (format '%s')", path, format ? format : "none");
    } else if (!fp || strcmp(fp, r->fingerprint)) {
        rc = cb_fail(err, CB_EFORMAT,
                     "%s: this similar-items table was built from another model (fingerprint %s, the model's is %s); "
                     "rebuild it with `cbrec precompute`",
                     path, fp ? fp : "(none)", r->fingerprint);
    } else if (ours) {
        /* opened without a format, so cb_st_open verified the checksum only if present */
        if (!cb_st_meta(st, "checksum"))
            rc = cb_fail(err, CB_EFORMAT, "%s: no checksum", path);
        else if (cb_st_format_version(st) > CB_RECOMMEND_TABLE_VERSION)
            rc = cb_fail(err, CB_EFORMAT, "%s: table format version %d is newer than this cbrec understands", path,
                         cb_st_format_version(st));
        else if (!strcmp(format, CB_RECOMMEND_ADDED_FORMAT)) rc = load_extras(t, r, st, path, err);
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

/* Grow an array of n pointers to n + 1, appending x (consumed only on success). */
static int push_ptr(char ***arr, uint32_t n, char *x, cb_error *err) {
    char **p = cb_realloc_array(*arr, (size_t)n + 1, sizeof *p, err);
    if (!p) return CB_ENOMEM;
    p[n] = x;
    *arr = p;
    return CB_OK;
}

int cb_recommend_table_add(cb_recommend_table *t, const cb_bundle *r, const char *id, const char *title,
                           const char *genres, const char *content, const float *vec, cb_error *err) {
    if (cb_bundle_item(r, id) >= 0) return cb_fail(err, CB_EINVAL, "add-item: item '%s' is already in the model", id);
    for (uint32_t i = 0; i < t->n_extra; i++)
        if (!strcmp(t->extra_ids[i], id)) return cb_fail(err, CB_EINVAL, "add-item: item '%s' was already added", id);
    if (!t->n_extra && !t->knn.neighbors) t->n_model_items = r->n_items, t->dim = r->dim; /* a new added-items store */
    size_t d = t->dim;
    float *ev = cb_realloc_array(NULL, (size_t)t->n_extra + 1, d * sizeof *ev, err);
    char *id_copy = cb_strdup(id, err), *title_copy = title ? cb_strdup(title, err) : NULL;
    char *genres_copy = genres ? cb_strdup(genres, err) : NULL, *content_copy = content ? cb_strdup(content, err) : NULL;
    int rc = CB_ENOMEM;
    if (!ev || !id_copy || (title && !title_copy) || (genres && !genres_copy) || (content && !content_copy)) goto fail;
    /* room first (the arrays grow; a failure leaves them longer, never inconsistent), then the neighbour lists */
    if ((rc = push_ptr(&t->extra_ids, t->n_extra, NULL, err)) || (rc = push_ptr(&t->extra_titles, t->n_extra, NULL, err)) ||
        (rc = push_ptr(&t->extra_genres, t->n_extra, NULL, err)) ||
        (rc = push_ptr(&t->extra_content, t->n_extra, NULL, err)))
        goto fail;
    if (t->knn.neighbors) {
        /* knn's insert wants the current rows contiguous: model items, then added ones */
        float *V = cb_malloc(t->knn.n_items * d * sizeof *V, err);
        if (!V) goto fail;
        memcpy(V, r->item_vecs, (size_t)r->n_items * d * sizeof *V);
        if (t->n_extra) memcpy(V + (size_t)r->n_items * d, t->extra_vecs, (size_t)t->n_extra * d * sizeof *V);
        rc = cb_knn_table_insert(&t->knn, V, d, vec, err);
        free(V);
        if (rc) goto fail;
    }
    if (t->n_extra) memcpy(ev, t->extra_vecs, (size_t)t->n_extra * d * sizeof *ev);
    memcpy(ev + (size_t)t->n_extra * d, vec, d * sizeof *ev);
    free(t->extra_vecs);
    t->extra_vecs = ev;
    t->extra_ids[t->n_extra] = id_copy;
    t->extra_titles[t->n_extra] = title_copy;
    t->extra_genres[t->n_extra] = genres_copy;
    t->extra_content[t->n_extra] = content_copy;
    t->n_extra++;
    return CB_OK;
fail:
    free(ev);
    free(id_copy);
    free(title_copy);
    free(genres_copy);
    free(content_copy);
    return rc;
}

/* ---- similar items */

static float sq_dist(const float *a, const float *b, uint32_t d) {
    float s = 0;
    for (uint32_t k = 0; k < d; k++) s += (a[k] - b[k]) * (a[k] - b[k]);
    return s;
}

/* Exact search without a table: merge the added items (other than `item`)
 * into one row of k (ascending distance, -1 padded), each before the first
 * entry farther away, so a row without added items is the index's answer. */
static void merge_added_neighbors(const cb_recommender *rec, uint32_t item, int32_t *idx, float *dist, size_t k) {
    const cb_recommend_table *t = &rec->table;
    uint32_t ni = rec->r->n_items;
    const float *v = cb_rec_item_vec(rec, item);
    for (uint32_t a = 0; a < t->n_extra; a++) {
        if (ni + a == item || cb_rec_blocked(rec, ni + a)) continue;
        float d = sq_dist(v, t->extra_vecs + (size_t)a * t->dim, t->dim);
        size_t pos = 0;
        while (pos < k && idx[pos] >= 0 && dist[pos] <= d) pos++;
        if (pos == k) continue;
        memmove(idx + pos + 1, idx + pos, (k - pos - 1) * sizeof *idx);
        memmove(dist + pos + 1, dist + pos, (k - pos - 1) * sizeof *dist);
        idx[pos] = (int32_t)(ni + a);
        dist[pos] = d;
    }
}

/* The first k unblocked entries of each query's table row into out: false
 * when a row has fewer (the table's columns, less its blocked items). */
static bool table_rows(const cb_recommender *rec, const uint32_t *items, size_t nq, size_t k, int32_t *out_idx,
                       float *out_dist, int *rc, cb_error *err) {
    for (size_t q = 0; q < nq; q++) {
        const int32_t *nb;
        const float *ds;
        if ((*rc = cb_knn_table_row(&rec->table.knn, items[q], &nb, &ds, err))) return true;
        size_t got = 0;
        for (size_t j = 0; j < rec->table.knn.k && got < k; j++)
            if (nb[j] < 0 || !cb_rec_blocked(rec, (uint32_t)nb[j]))
                out_idx[q * k + got] = nb[j], out_dist[q * k + got] = ds[j], got++;
        if (got < k) return false;
    }
    return true;
}

/* Neighbours of nq items, model or added, the recommender's blocked items
 * left out: out_idx / out_dist [nq x k], -1 padded. Table rows when the
 * table has k unblocked columns in every row, else a search. */
int cb_rec_neighbors_of(const cb_recommender *rec, const uint32_t *items, size_t nq, size_t k, int threads,
                        int32_t *out_idx, float *out_dist, bool *used_table, cb_error *err) {
    const cb_bundle *r = rec->r;
    int rc = CB_OK;
    *used_table = rec->has_table && rec->table.knn.k >= k && table_rows(rec, items, nq, k, out_idx, out_dist, &rc, err);
    if (*used_table || rc) return rc;
    float *Q = cb_malloc(nq * r->dim * sizeof *Q, err);
    int32_t *self = cb_malloc(nq * sizeof *self, err);
    rc = (Q && self) ? CB_OK : CB_ENOMEM;
    if (!rc) {
        for (size_t q = 0; q < nq; q++) {
            memcpy(Q + q * r->dim, cb_rec_item_vec(rec, items[q]), r->dim * sizeof *Q);
            self[q] = items[q] < r->n_items ? (int32_t)items[q] : -1;
        }
        /* the block list's first bits are the model items' (the index's rows) */
        cb_knn_params p = {.threads = threads, .self_index = self, /* 0: every core */
                           .exclude = rec->block ? rec->block->items : NULL};
        size_t k_model = k < r->n_items ? k : r->n_items;
        if (k_model < k) /* the rows are k wide; the index fills k_model */
            for (size_t i = 0; i < nq * k; i++) out_idx[i] = -1, out_dist[i] = INFINITY;
        if (k_model == k) rc = cb_rec_search(rec, Q, nq, k, CB_KNN_L2, &p, out_idx, out_dist, err);
        else {
            int32_t *ti = cb_malloc(nq * k_model * sizeof *ti + 1, err);
            float *td = cb_malloc(nq * k_model * sizeof *td + 1, err);
            rc = ti && td ? cb_rec_search(rec, Q, nq, k_model, CB_KNN_L2, &p, ti, td, err) : CB_ENOMEM;
            for (size_t q = 0; !rc && q < nq; q++) {
                memcpy(out_idx + q * k, ti + q * k_model, k_model * sizeof *ti);
                memcpy(out_dist + q * k, td + q * k_model, k_model * sizeof *td);
            }
            free(ti);
            free(td);
        }
    }
    for (size_t q = 0; !rc && q < nq; q++) merge_added_neighbors(rec, items[q], out_idx + q * k, out_dist + q * k, k);
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
    int rc = cb_rec_block_check(rec, err);
    if (rc) return rc;
    size_t want = k, blocked = rec->block ? rec->block->n_blocked - cb_rec_blocked(rec, item) : 0;
    size_t avail = n - 1 - blocked; /* the table, or an exact search over model and added items, but blocked ones */
    if (k > avail) {
        k = avail;
        if (note && note_size)
            snprintf(note, note_size, "k = %zu is more than the other items in the catalog%s; showing all %zu", want,
                     blocked ? " not blocked" : "", k);
    }
    if (k == 0) return CB_OK;
    int32_t *idx = cb_malloc(k * sizeof *idx, err);
    float *dist = cb_malloc(k * sizeof *dist, err);
    bool used_table;
    rc = (idx && dist) ? cb_rec_neighbors_of(rec, &item, 1, k, 1, idx, dist, &used_table, err) : CB_ENOMEM;
    if (!rc && rec->has_table && !used_table && note && note_size && !note[0])
        snprintf(note, note_size, "the table holds %zu neighbours per item%s; computed %zu exactly", rec->table.knn.k,
                 blocked ? " (blocked ones left out)" : "", k);
    for (size_t j = 0; !rc && j < k; j++)
        if (idx[j] >= 0) out[(*n_out)++] = (cb_neighbor){(uint32_t)idx[j], dist[j]};
    free(idx);
    free(dist);
    return rc;
}

