/* recommend — similar items, retrieval -> filtering -> ranking with reasons,
 * cold-start users and items; see recommend.h for the pipeline and contracts. */
#include "rec/recommend.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KNN_TABLE_FORMAT "cbrec-knn-table" /* knn.c's plain table */

/* ---- small helpers */

static inline void bit_set(uint64_t *b, size_t i) { b[i >> 6] |= 1ULL << (i & 63); }
static inline bool bit_get(const uint64_t *b, size_t i) { return (b[i >> 6] >> (i & 63)) & 1; }

/* Append a formatted string to a growing array of strings. */
static int push_str(char ***list, size_t *n, cb_error *err, const char *fmt, ...) CB_PRINTF(4, 5);
static int push_str(char ***list, size_t *n, cb_error *err, const char *fmt, ...) {
    char **l = cb_realloc_array(*list, *n + 1, sizeof *l, err);
    if (!l) return CB_ENOMEM;
    *list = l;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int len = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (len < 0) return cb_fail(err, CB_ENOMEM, "out of memory");
    l[(*n)++] = s;
    return CB_OK;
}

static void free_strs(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

/* Ratings print as "5" or "4.5". */
static const char *fmt_y(char *buf, size_t size, float y) {
    snprintf(buf, size, "%g", (double)y);
    return buf;
}

/* ---------------------------------------------------------------------------
 * Similar-items table with added items. */

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

/* Attribute values from JSON: strings, numbers, or arrays of strings (joined
 * with '|' for multi-valued columns). `joined` collects allocations to free. */
static int json_attr(cb_attr_value *a, const char *key, json_t *v, char **joined, const char *source, cb_error *err) {
    a->name = key;
    a->str = NULL;
    a->num = NAN;
    *joined = NULL;
    if (json_is_string(v)) {
        a->str = json_string_value(v);
    } else if (json_is_number(v)) {
        a->num = json_number_value(v);
    } else if (json_is_array(v)) {
        size_t len = 1, i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (!json_is_string(x)) return cb_fail(err, CB_EPARSE, "%s: \"%s\" must list strings", source, key);
            len += json_string_length(x) + 1;
        }
        char *s = cb_calloc(len, 1, err);
        if (!s) return CB_ENOMEM;
        json_array_foreach(v, i, x) {
            if (i) strcat(s, "|");
            strcat(s, json_string_value(x));
        }
        a->str = *joined = s;
    } else {
        return cb_fail(err, CB_EPARSE, "%s: \"%s\" must be a string, a number or a list of strings", source, key);
    }
    return CB_OK;
}

/* Re-prefix a library message with the input's name. */
static int with_source(int rc, const char *source, cb_error *err) {
    if (rc && err) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%s", err->msg);
        cb_fail(err, rc, "%s: %s", source, tmp);
    }
    return rc;
}

int cb_recommend_embed_item(const cb_bundle *r, const json_t *j, const char *source, float *vec, char **id_out,
                            char **title_out, cb_error *err) {
    *id_out = *title_out = NULL;
    if (!json_is_object(j)) return cb_fail(err, CB_EPARSE, "%s: a new item must be a JSON object", source);
    size_t n_keys = json_object_size(j);
    cb_attr_value *attrs = cb_calloc(n_keys + 1, sizeof *attrs, err);
    char **joined = cb_calloc(n_keys + 1, sizeof *joined, err);
    const char **genres = cb_calloc(n_keys + 64, sizeof *genres, err);
    float *x = cb_calloc(cb_features_item_dim(r->features) + 1, sizeof *x, err);
    cb_item_input in = {.year = NAN};
    const char *id = NULL, *title = NULL, *key;
    json_t *v;
    int rc = (attrs && joined && genres && x) ? CB_OK : CB_ENOMEM;
    size_t nj = 0;
    json_object_foreach((json_t *)j, key, v) {
        if (rc) break;
        if (!strcmp(key, "id")) {
            if (json_is_integer(v)) continue; /* handled below */
            if (!json_is_string(v) || !json_string_length(v))
                rc = cb_fail(err, CB_EPARSE, "%s: \"id\" must be a non-empty string", source);
            else id = json_string_value(v);
        } else if (!strcmp(key, "title")) {
            if (!json_is_string(v)) rc = cb_fail(err, CB_EPARSE, "%s: \"title\" must be a string", source);
            else title = json_string_value(v);
        } else if (!strcmp(key, "year")) {
            if (!json_is_number(v)) rc = cb_fail(err, CB_EPARSE, "%s: \"year\" must be a number", source);
            else in.year = json_number_value(v);
        } else if (!strcmp(key, "genres")) {
            size_t i;
            json_t *g;
            if (!json_is_array(v) || json_array_size(v) > 63) {
                rc = cb_fail(err, CB_EPARSE, "%s: \"genres\" must be a list of at most 63 genre names", source);
                break;
            }
            json_array_foreach(v, i, g) {
                if (!json_is_string(g)) {
                    rc = cb_fail(err, CB_EPARSE, "%s: \"genres\" must list strings", source);
                    break;
                }
                genres[in.n_genres++] = json_string_value(g);
            }
        } else if (!strcmp(key, "rating_count")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
                rc = cb_fail(err, CB_EPARSE, "%s: \"rating_count\" must be a non-negative integer", source);
            else in.rating_count = (uint32_t)json_integer_value(v);
        } else if (!strcmp(key, "rating_mean")) {
            if (!json_is_number(v)) rc = cb_fail(err, CB_EPARSE, "%s: \"rating_mean\" must be a number", source);
            else in.rating_mean = (float)json_number_value(v);
        } else {
            rc = json_attr(&attrs[in.n_attrs], key, v, &joined[nj], source, err);
            if (joined[nj]) nj++;
            if (!rc) in.n_attrs++;
        }
    }
    char idbuf[32];
    json_t *jid = json_object_get(j, "id");
    if (!rc && json_is_integer(jid)) {
        snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(jid));
        id = idbuf;
    }
    if (!rc && !id) rc = cb_fail(err, CB_EPARSE, "%s: a new item needs an \"id\"", source);
    if (!rc && isnan(in.year) && title) in.year = cb_year_from_title(title, strlen(title)); /* as the loaders do */
    in.genres = genres;
    in.attrs = attrs;
    if (!rc && in.rating_count && !(in.rating_mean >= r->y_min && in.rating_mean <= r->y_max))
        rc = cb_fail(err, CB_EINVAL, "%s: \"rating_mean\" must be within the rating scale [%g, %g]", source,
                     (double)r->y_min, (double)r->y_max);
    if (!rc) rc = with_source(cb_features_new_item(r->features, &in, x, err), source, err);
    if (!rc) rc = cb_model_item_vectors(r->model, x, 1, vec, err);
    if (!rc && !(*id_out = cb_strdup(id, err))) rc = CB_ENOMEM;
    if (!rc && title && !(*title_out = cb_strdup(title, err))) rc = CB_ENOMEM;
    if (rc) {
        free(*id_out);
        *id_out = NULL;
    }
    for (size_t i = 0; i < nj; i++) free(joined[i]);
    free(joined);
    free(attrs);
    free(genres);
    free(x);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Context. */

struct cb_recommend_ctx {
    const cb_bundle *r;
    const cb_recommend_table *table;
    cb_knn_index *index; /* over the model's item vectors */
};

int cb_recommend_ctx_create(cb_recommend_ctx **out, const cb_bundle *r, const cb_recommend_table *table,
                            cb_error *err) {
    *out = NULL;
    if (!r || r->n_items == 0) return cb_fail(err, CB_EINVAL, "the model's catalog is empty: nothing to recommend");
    if (table && (table->n_model_items != r->n_items || table->dim != r->dim))
        return cb_fail(err, CB_EINVAL, "the similar-items table does not belong to this model");
    cb_recommend_ctx *c = cb_calloc(1, sizeof *c, err);
    if (!c) return CB_ENOMEM;
    c->r = r;
    c->table = table;
    int rc = cb_knn_index_create(&c->index, r->item_vecs, r->n_items, r->dim, err);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return CB_OK;
}

void cb_recommend_ctx_free(cb_recommend_ctx *ctx) {
    if (!ctx) return;
    cb_knn_index_free(ctx->index);
    free(ctx);
}

const cb_bundle *cb_recommend_ctx_rec(const cb_recommend_ctx *ctx) { return ctx->r; }

uint32_t cb_recommend_n_items(const cb_recommend_ctx *ctx) {
    return ctx->r->n_items + (ctx->table ? ctx->table->n_extra : 0);
}

const char *cb_recommend_item_id(const cb_recommend_ctx *ctx, uint32_t item) {
    if (item < ctx->r->n_items) return cb_vocab_name(ctx->r->items, item);
    if (ctx->table && item - ctx->r->n_items < ctx->table->n_extra) return ctx->table->extra_ids[item - ctx->r->n_items];
    return NULL;
}

const char *cb_recommend_item_title(const cb_recommend_ctx *ctx, uint32_t item) {
    const char *t = NULL;
    if (item < ctx->r->n_items) t = ctx->r->titles ? ctx->r->titles[item] : NULL;
    else if (ctx->table && item - ctx->r->n_items < ctx->table->n_extra) t = ctx->table->extra_titles[item - ctx->r->n_items];
    return t ? t : "";
}

bool cb_recommend_item_index(const cb_recommend_ctx *ctx, const char *id, uint32_t *item) {
    int64_t i = cb_bundle_item(ctx->r, id); /* model items: a hash lookup */
    if (i >= 0) {
        *item = (uint32_t)i;
        return true;
    }
    for (uint32_t k = 0; ctx->table && k < ctx->table->n_extra; k++)
        if (!strcmp(ctx->table->extra_ids[k], id)) {
            *item = ctx->r->n_items + k;
            return true;
        }
    return false;
}

static const float *item_vec(const cb_recommend_ctx *ctx, uint32_t item) {
    const cb_bundle *r = ctx->r;
    if (item < r->n_items) return r->item_vecs + (size_t)item * r->dim;
    return ctx->table->extra_vecs + (size_t)(item - r->n_items) * r->dim;
}

/* ---- finding an item by id or title */

/* Lower-cased title variants: [0] as is, [1] without a trailing "(year)",
 * [2] with a trailing ", The" / ", A" / ", An" moved to the front, [3]
 * without that article. */
static void title_forms(const char *title, char forms[4][512]) {
    snprintf(forms[0], 512, "%s", title);
    for (char *p = forms[0]; *p; p++) *p = (char)tolower((unsigned char)*p);
    memcpy(forms[1], forms[0], 512);
    size_t n = strlen(forms[1]);
    while (n && forms[1][n - 1] == ' ') forms[1][--n] = 0;
    if (n >= 7 && forms[1][n - 1] == ')' && forms[1][n - 6] == '(' && isdigit((unsigned char)forms[1][n - 5]) &&
        forms[1][n - 7] == ' ')
        forms[1][n - 7] = 0;
    forms[2][0] = forms[3][0] = 0;
    static const char *const articles[] = {", the", ", a", ", an"};
    n = strlen(forms[1]);
    for (int a = 0; a < 3; a++) {
        size_t al = strlen(articles[a]);
        if (n > al && !strcmp(forms[1] + n - al, articles[a])) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s %.*s", articles[a] + 2, (int)(n - al), forms[1]);
            memcpy(forms[2], tmp, sizeof tmp);
            snprintf(tmp, sizeof tmp, "%.*s", (int)(n - al), forms[1]);
            memcpy(forms[3], tmp, sizeof tmp);
            break;
        }
    }
}

/* How well title t matches the query forms q: 0 the exact title, 1 the title
 * without its year or with its article moved, 2 a substring, -1 no match. */
static int title_level(const char *t, char q[4][512]) {
    char f[4][512];
    title_forms(t, f);
    if (!strcmp(f[0], q[0])) return 0;
    if (!strcmp(f[1], q[0]) || (f[2][0] && (!strcmp(f[2], q[0]) || !strcmp(f[2], q[1]) || !strcmp(f[3], q[0]))))
        return 1;
    if (strstr(f[0], q[0]) || (f[2][0] && strstr(f[2], q[1]))) return 2;
    return -1;
}

static uint32_t item_count(const cb_recommend_ctx *ctx, uint32_t item) {
    return item < ctx->r->n_items && ctx->r->features ? cb_features_item_count(ctx->r->features, item) : 0;
}

int cb_recommend_find_item(const cb_recommend_ctx *ctx, const char *query, uint32_t *item, uint32_t *cands,
                           size_t max_cands, size_t *n_cands, cb_error *err) {
    *n_cands = 0;
    uint32_t n = cb_recommend_n_items(ctx);
    if (cb_recommend_item_index(ctx, query, item)) return CB_OK;
    char q[4][512];
    title_forms(query, q);
    /* level 0: exact title; 1: title without year or article moved; 2: substring */
    size_t count[3] = {0, 0, 0};
    uint32_t first[3] = {0, 0, 0};
    for (uint32_t i = 0; i < n; i++) {
        const char *t = cb_recommend_item_title(ctx, i);
        if (!*t) continue;
        int level = title_level(t, q);
        if (level < 0) continue;
        if (!count[level]++) first[level] = i;
    }
    int best = count[0] ? 0 : count[1] ? 1 : count[2] ? 2 : -1;
    if (best < 0) return cb_fail(err, CB_ENOTFOUND, "no item has the id or a title matching '%s'", query);
    if (count[best] == 1) {
        *item = first[best];
        return CB_OK;
    }
    /* ambiguous: the most rated candidates of the best level */
    for (uint32_t i = 0; i < n; i++) {
        const char *t = cb_recommend_item_title(ctx, i);
        if (!*t) continue;
        if (title_level(t, q) != best || !max_cands) continue;
        /* insertion into a list kept sorted by count desc, index asc */
        size_t pos = *n_cands;
        uint32_t c = item_count(ctx, i);
        while (pos > 0 && item_count(ctx, cands[pos - 1]) < c) pos--;
        if (pos >= max_cands) continue;
        size_t last = *n_cands < max_cands ? *n_cands : max_cands - 1;
        memmove(cands + pos + 1, cands + pos, (last - pos) * sizeof *cands);
        cands[pos] = i;
        if (*n_cands < max_cands) (*n_cands)++;
    }
    return cb_fail(err, CB_ENOTFOUND, "'%s' matches %zu titles; give an item id or a more precise title", query,
                   count[best]);
}

/* ---- similar items */

/* Neighbours of nq model items (or added items, table only): out_idx /
 * out_dist [nq x k], -1 padded. Table rows when the table has >= k columns. */
static int neighbors_of(const cb_recommend_ctx *ctx, const uint32_t *items, size_t nq, size_t k, int threads,
                        int32_t *out_idx, float *out_dist, bool *used_table, cb_error *err) {
    const cb_bundle *r = ctx->r;
    *used_table = ctx->table && ctx->table->knn.k >= k;
    if (*used_table) {
        for (size_t q = 0; q < nq; q++) {
            const int32_t *nb;
            const float *ds;
            int rc = cb_knn_table_row(&ctx->table->knn, items[q], &nb, &ds, err);
            if (rc) return rc;
            memcpy(out_idx + q * k, nb, k * sizeof *nb);
            memcpy(out_dist + q * k, ds, k * sizeof *ds);
        }
        return CB_OK;
    }
    for (size_t q = 0; q < nq; q++)
        if (items[q] >= r->n_items)
            return cb_fail(err, CB_EINVAL, "item '%s' was added to the table; its %zu nearest need a table with k >= %zu",
                           cb_recommend_item_id(ctx, items[q]), k, k);
    float *Q = cb_malloc(nq * r->dim * sizeof *Q, err);
    int32_t *self = cb_malloc(nq * sizeof *self, err);
    int rc = (Q && self) ? CB_OK : CB_ENOMEM;
    if (!rc) {
        for (size_t q = 0; q < nq; q++) {
            memcpy(Q + q * r->dim, item_vec(ctx, items[q]), r->dim * sizeof *Q);
            self[q] = (int32_t)items[q];
        }
        cb_knn_params p = {.threads = threads > 0 ? threads : 1, .self_index = self};
        rc = cb_knn_index_search(ctx->index, Q, nq, k, CB_KNN_L2, &p, out_idx, out_dist, err);
    }
    free(Q);
    free(self);
    return rc;
}

int cb_recommend_similar(const cb_recommend_ctx *ctx, uint32_t item, size_t k, cb_neighbor *out, size_t *n_out,
                         char *note, size_t note_size, cb_error *err) {
    *n_out = 0;
    if (note && note_size) note[0] = 0;
    uint32_t n = cb_recommend_n_items(ctx);
    if (item >= n) return cb_fail(err, CB_ENOTFOUND, "item index %u is not in the catalog (%u items)", item, n);
    if (k == 0) return cb_fail(err, CB_EINVAL, "k must be at least 1");
    size_t want = k;
    size_t avail = (ctx->table && ctx->table->knn.k >= k) ? n - 1 : ctx->r->n_items - (item < ctx->r->n_items);
    if (k > avail) {
        k = avail;
        if (note && note_size)
            snprintf(note, note_size, "k = %zu is more than the other items in the catalog; showing all %zu", want, k);
    }
    if (k == 0) return CB_OK;
    int32_t *idx = cb_malloc(k * sizeof *idx, err);
    float *dist = cb_malloc(k * sizeof *dist, err);
    bool used_table;
    int rc = (idx && dist) ? neighbors_of(ctx, &item, 1, k, 1, idx, dist, &used_table, err) : CB_ENOMEM;
    if (!rc && ctx->table && !used_table && note && note_size && !note[0])
        snprintf(note, note_size, "the table holds %zu neighbours per item; computed %zu exactly", ctx->table->knn.k,
                 k);
    for (size_t j = 0; !rc && j < k; j++)
        if (idx[j] >= 0) out[(*n_out)++] = (cb_neighbor){(uint32_t)idx[j], dist[j]};
    free(idx);
    free(dist);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Profiles. */

void cb_recommend_profile_free(cb_profile *p) {
    if (!p) return;
    free(p->vec);
    free(p->items);
    free(p->ys);
    free(p->pref_genres);
    free(p->pref_ys);
    free(p->group_level);
    memset(p, 0, sizeof *p);
}

static int profile_alloc(cb_profile *p, const cb_bundle *r, size_t n_ratings, size_t n_prefs, cb_error *err) {
    memset(p, 0, sizeof *p);
    p->user = -1;
    p->vec = cb_calloc(r->dim, sizeof *p->vec, err);
    p->items = cb_calloc(n_ratings + 1, sizeof *p->items, err);
    p->ys = cb_calloc(n_ratings + 1, sizeof *p->ys, err);
    p->pref_genres = cb_calloc(n_prefs + 1, sizeof *p->pref_genres, err);
    p->pref_ys = cb_calloc(n_prefs + 1, sizeof *p->pref_ys, err);
    p->group_level = cb_calloc(r->n_groups + 1, sizeof *p->group_level, err);
    if (!p->vec || !p->items || !p->ys || !p->pref_genres || !p->pref_ys || !p->group_level) {
        cb_recommend_profile_free(p);
        return CB_ENOMEM;
    }
    for (uint32_t g = 0; g < r->n_groups; g++) p->group_level[g] = -1;
    return CB_OK;
}

int cb_recommend_profile_user(cb_profile *p, const cb_bundle *r, uint32_t user, cb_error *err) {
    memset(p, 0, sizeof *p);
    if (user >= r->n_users) return cb_fail(err, CB_ENOTFOUND, "user index %u is out of range", user);
    int32_t lo = r->seen_off[user], hi = r->seen_off[user + 1];
    int rc = profile_alloc(p, r, (size_t)(hi - lo), 0, err);
    if (rc) return rc;
    p->user = user;
    memcpy(p->vec, r->user_vecs + (size_t)user * r->dim, r->dim * sizeof *p->vec);
    for (int32_t k = lo; k < hi; k++) {
        p->items[p->n_ratings] = (uint32_t)r->seen_item[k];
        p->ys[p->n_ratings++] = r->seen_y[k];
    }
    for (uint32_t g = 0; g < r->n_groups; g++) p->group_level[g] = r->groups[g].user_level[user];
    if (!p->n_ratings) {
        p->cold = true;
        snprintf(p->note, sizeof p->note,
                 "user %s has no training ratings: cold-start recommendations from the user's attributes only",
                 cb_vocab_name(r->users, user));
    }
    return CB_OK;
}

int cb_recommend_profile_json(cb_profile *p, const cb_bundle *r, const json_t *j, const char *source, cb_error *err) {
    memset(p, 0, sizeof *p);
    if (!json_is_object(j))
        return cb_fail(err, CB_EPARSE, "%s: a new user must be a JSON object like {\"genre_ratings\": {\"Adventure\": 5}}",
                       source);
    json_t *ratings = json_object_get(j, "ratings"), *genres = json_object_get(j, "genre_ratings");
    if (ratings && !json_is_object(ratings))
        return cb_fail(err, CB_EPARSE, "%s: \"ratings\" must be an object {\"<item id>\": rating}", source);
    if (genres && !json_is_object(genres))
        return cb_fail(err, CB_EPARSE, "%s: \"genre_ratings\" must be an object {\"<genre>\": rating}", source);
    size_t nr = ratings ? json_object_size(ratings) : 0, ng = genres ? json_object_size(genres) : 0;
    size_t n_keys = json_object_size(j);
    int rc = profile_alloc(p, r, nr, ng, err);
    if (rc) return rc;
    cb_attr_value *attrs = cb_calloc(n_keys + 1, sizeof *attrs, err);
    char **joined = cb_calloc(n_keys + 1, sizeof *joined, err);
    cb_item_rating *ir = cb_calloc(nr + 1, sizeof *ir, err);
    cb_genre_pref *gp = cb_calloc(ng + 1, sizeof *gp, err);
    float *x = cb_calloc(cb_features_user_dim(r->features) + 1, sizeof *x, err);
    rc = (attrs && joined && ir && gp && x) ? CB_OK : CB_ENOMEM;
    size_t n_attrs = 0, nj = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        if (rc) break;
        if (!strcmp(key, "ratings") || !strcmp(key, "genre_ratings")) continue;
        rc = json_attr(&attrs[n_attrs], key, v, &joined[nj], source, err);
        if (joined[nj]) nj++;
        if (!rc) n_attrs++;
    }
    json_object_foreach(ratings, key, v) {
        if (rc) break;
        int64_t item = cb_bundle_item(r, key);
        double y = json_is_number(v) ? json_number_value(v) : NAN;
        if (item < 0) rc = cb_fail(err, CB_ENOTFOUND, "%s: \"ratings\": unknown item id '%s'", source, key);
        else if (!(y >= r->y_min && y <= r->y_max))
            rc = cb_fail(err, CB_EINVAL, "%s: \"ratings\": the rating of '%s' must be a number in [%g, %g]", source, key,
                         (double)r->y_min, (double)r->y_max);
        else {
            ir[p->n_ratings] = (cb_item_rating){(uint32_t)item, (float)y};
            p->items[p->n_ratings] = (uint32_t)item;
            p->ys[p->n_ratings++] = (float)y;
        }
    }
    json_object_foreach(genres, key, v) {
        if (rc) break;
        int g = cb_features_genre_find(r->features, key);
        double y = json_is_number(v) ? json_number_value(v) : NAN;
        if (g < 0) {
            char known[300] = "";
            for (uint32_t k = 0; k < cb_features_n_genres(r->features) && strlen(known) < 240; k++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "",
                         cb_features_genre_name(r->features, k));
            rc = cb_fail(err, CB_ENOTFOUND, "%s: \"genre_ratings\": unknown genre '%s' (known: %s)", source, key, known);
        } else if (!(y >= r->y_min && y <= r->y_max)) {
            rc = cb_fail(err, CB_EINVAL, "%s: \"genre_ratings\": the rating of '%s' must be a number in [%g, %g]",
                         source, key, (double)r->y_min, (double)r->y_max);
        } else {
            gp[p->n_prefs] = (cb_genre_pref){key, (float)y};
            p->pref_genres[p->n_prefs] = (uint32_t)g;
            p->pref_ys[p->n_prefs++] = (float)y;
        }
    }
    if (!rc) {
        cb_user_input in = {attrs, n_attrs, ir, p->n_ratings, gp, p->n_prefs};
        rc = with_source(cb_features_new_user(r->features, &in, x, err), source, err);
    }
    if (!rc) rc = cb_model_user_vectors(r->model, x, 1, p->vec, err);
    /* the user's level of each categorical attribute, for "popular with users like you" */
    for (size_t a = 0; !rc && a < n_attrs; a++)
        for (uint32_t g = 0; g < r->n_groups; g++)
            if (attrs[a].str && !strcmp(attrs[a].name, r->groups[g].column))
                for (uint32_t l = 0; l < r->groups[g].n_levels; l++)
                    if (!strcmp(r->groups[g].levels[l], attrs[a].str)) p->group_level[g] = (int32_t)l;
    if (!rc && !p->n_ratings) p->cold = true;
    for (size_t i = 0; i < nj; i++) free(joined[i]);
    free(joined);
    free(attrs);
    free(ir);
    free(gp);
    free(x);
    if (rc) cb_recommend_profile_free(p);
    return rc;
}

static int json_error_fail(const json_error_t *je, const char *source, cb_error *err) {
    return cb_fail(err, CB_EPARSE, "%s:%d:%d: %s", source, je->line, je->column, je->text);
}

int cb_recommend_profile_file(cb_profile *p, const cb_bundle *r, const char *path, cb_error *err) {
    memset(p, 0, sizeof *p);
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        FILE *f = fopen(path, "rb");
        if (!f) return cb_fail(err, CB_EIO, "%s: cannot open the new-user file", path);
        fclose(f);
        return json_error_fail(&je, path, err);
    }
    int rc = cb_recommend_profile_json(p, r, j, path, err);
    json_decref(j);
    return rc;
}

int cb_recommend_profile_string(cb_profile *p, const cb_bundle *r, const char *text, cb_error *err) {
    memset(p, 0, sizeof *p);
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j) return json_error_fail(&je, "new-user JSON", err);
    int rc = cb_recommend_profile_json(p, r, j, "new-user JSON", err);
    json_decref(j);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Block list. */

void cb_recommend_block_free(cb_blocklist *bl) {
    if (!bl) return;
    free(bl->items);
    memset(bl, 0, sizeof *bl);
}

int cb_recommend_block_load(cb_blocklist *bl, const cb_bundle *r, const char *path, cb_error *err) {
    memset(bl, 0, sizeof *bl);
    FILE *f = fopen(path, "rb");
    if (!f) return cb_fail(err, CB_EIO, "%s: cannot open the block list", path);
    uint32_t ng = r->features ? cb_features_n_genres(r->features) : 0;
    bool *genre = cb_calloc(ng + 1, sizeof *genre, err);
    bl->n_items = r->n_items;
    bl->items = cb_calloc(((size_t)r->n_items + 63) / 64 + 1, sizeof *bl->items, err);
    int rc = (genre && bl->items) ? CB_OK : CB_ENOMEM;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = line, *e = line + len;
        while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') continue;
        bool is_genre = false;
        if (!strncmp(s, "item ", 5) || !strncmp(s, "item\t", 5)) s += 5;
        else if (!strncmp(s, "genre ", 6) || !strncmp(s, "genre\t", 6)) s += 6, is_genre = true;
        while (isspace((unsigned char)*s)) s++;
        if (is_genre) {
            int g = r->features ? cb_features_genre_find(r->features, s) : -1;
            if (g < 0) rc = cb_fail(err, CB_ENOTFOUND, "%s:%zu: unknown genre '%s'", path, lineno, s);
            else if (!genre[g]) genre[g] = true, bl->n_blocked_genres++;
        } else {
            int64_t item = cb_bundle_item(r, s);
            if (item < 0) rc = cb_fail(err, CB_ENOTFOUND, "%s:%zu: unknown item id '%s'", path, lineno, s);
            else if (!bit_get(bl->items, (size_t)item)) bit_set(bl->items, (size_t)item), bl->n_blocked_items++;
        }
    }
    if (!rc && ferror(f)) rc = cb_fail(err, CB_EIO, "%s: read error", path);
    for (uint32_t i = 0; !rc && bl->n_blocked_genres && i < r->n_items; i++) {
        const uint32_t *gl;
        uint32_t n = 0;
        if (cb_features_item_genres(r->features, i, &gl, &n)) continue;
        for (uint32_t k = 0; k < n; k++)
            if (genre[gl[k]]) bit_set(bl->items, i);
    }
    free(line);
    free(genre);
    fclose(f);
    if (rc) cb_recommend_block_free(bl);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Recommend. */

const char *cb_recommend_source_name(cb_source s) {
    static const char *const names[CB_SRC_COUNT] = {"similar", "genre", "group", "popular", "embedding"};
    return (unsigned)s < CB_SRC_COUNT ? names[s] : "?";
}

void cb_recommend_config_default(cb_recommend_config *c) {
    memset(c, 0, sizeof *c);
    c->n = 10;
    c->recent_items = 10;
    c->similar_per_item = 10;
    c->top_genres = 3;
    c->per_genre = 10;
    c->min_genre_ratings = 3;
    c->group_items = 20;
    c->embedding_items = 50;
    c->mmr_lambda = 0.7f;
    c->genre_cap = 2;
    c->threads = 1;
}

const char *cb_recommend_config_check(const cb_recommend_config *c) {
    if (c->n == 0) return "n must be at least 1";
    if (c->recent_items && !c->similar_per_item) return "the similar source needs M >= 1 neighbours per item";
    if (c->top_genres > 32) return "at most 32 top genres";
    if (c->top_genres && (c->per_genre == 0 || c->per_genre > CB_BUNDLE_TOP_LIST)) return "items per genre must be 1..100";
    if (c->group_items > CB_BUNDLE_TOP_LIST) return "group items must be 0..100";
    if (c->diversity == CB_DIV_MMR && !(c->mmr_lambda >= 0 && c->mmr_lambda <= 1)) return "MMR lambda must be in [0, 1]";
    if (c->diversity == CB_DIV_GENRE_CAP && c->genre_cap == 0) return "the genre cap must be at least 1";
    return NULL;
}

void cb_recommend_result_free(cb_recommend_result *res) {
    if (!res) return;
    for (size_t i = 0; i < res->n; i++) free_strs(res->items[i].reasons, res->items[i].n_reasons);
    free(res->items);
    free_strs(res->notes, res->n_notes);
    memset(res, 0, sizeof *res);
}

/* One retrieval hit, before merging. */
typedef struct hit {
    uint32_t item;
    uint8_t source;
    uint8_t slot;     /* genre slot (GENRE) */
    int32_t anchor;   /* index into the profile's ratings (SIMILAR) */
    float dist;       /* distance to the anchor (SIMILAR) */
    uint32_t rank;    /* rank in the embedding retrieval (EMBEDDING) */
} hit;

typedef struct cand {
    uint32_t item;
    unsigned sources;
    int32_t anchor;        /* best anchor: highest rating, then most recent */
    uint32_t n_anchors;
    uint32_t genre_slots;  /* bit per top-genre slot */
    uint32_t emb_rank;
    float dist, dot, score;
} cand;

static int cmp_hit(const void *a, const void *b) {
    const hit *x = a, *y = b;
    return x->item < y->item ? -1 : x->item > y->item;
}

static int cmp_cand_score(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->dot != y->dot) return x->dot > y->dot ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

typedef struct hits {
    hit *h;
    size_t n, cap;
} hits;

static int add_hit(hits *hs, hit h, cb_error *err) {
    if (hs->n == hs->cap) {
        size_t cap = hs->cap ? 2 * hs->cap : 256;
        hit *p = cb_realloc_array(hs->h, cap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        hs->h = p;
        hs->cap = cap;
    }
    hs->h[hs->n++] = h;
    return CB_OK;
}

typedef struct genre_stat {
    uint32_t genre, count;
    double mean;
} genre_stat;

static int cmp_genre_stat(const void *a, const void *b) {
    const genre_stat *x = a, *y = b;
    if (x->mean != y->mean) return x->mean > y->mean ? -1 : 1;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->genre < y->genre ? -1 : x->genre > y->genre;
}

/* The user's top genres: explicit preferences at or above the scale's middle
 * (best first), then genres by the user's average rating among those with at
 * least min_count of their ratings (any count when none has that many). */
static int top_genres(const cb_bundle *r, const cb_profile *p, uint32_t want, uint32_t min_count, uint32_t *out,
                      uint32_t *n_out, cb_error *err) {
    *n_out = 0;
    uint32_t ng = r->features ? cb_features_n_genres(r->features) : 0;
    if (!ng || !want) return CB_OK;
    genre_stat *st = cb_calloc(ng, sizeof *st, err);
    if (!st) return CB_ENOMEM;
    genre_stat *prefs = cb_calloc(p->n_prefs + 1, sizeof *prefs, err);
    if (!prefs) {
        free(st);
        return CB_ENOMEM;
    }
    float middle = (r->y_min + r->y_max) / 2;
    uint32_t np = 0;
    for (size_t i = 0; i < p->n_prefs; i++)
        if (p->pref_ys[i] >= middle) prefs[np++] = (genre_stat){p->pref_genres[i], 1, p->pref_ys[i]};
    qsort(prefs, np, sizeof *prefs, cmp_genre_stat);
    for (uint32_t i = 0; i < np && *n_out < want; i++) out[(*n_out)++] = prefs[i].genre;
    for (uint32_t g = 0; g < ng; g++) st[g].genre = g;
    for (size_t i = 0; i < p->n_ratings; i++) {
        const uint32_t *gl;
        uint32_t n = 0;
        if (cb_features_item_genres(r->features, p->items[i], &gl, &n)) continue;
        for (uint32_t k = 0; k < n; k++) {
            st[gl[k]].count++;
            st[gl[k]].mean += p->ys[i];
        }
    }
    uint32_t n_ok = 0, m = 0;
    for (uint32_t g = 0; g < ng; g++) n_ok += st[g].count >= min_count && st[g].count > 0;
    for (uint32_t g = 0; g < ng; g++)
        if (st[g].count && (st[g].count >= min_count || !n_ok))
            st[m++] = (genre_stat){g, st[g].count, st[g].mean / st[g].count};
    qsort(st, m, sizeof *st, cmp_genre_stat);
    for (uint32_t i = 0; i < m && *n_out < want; i++) {
        bool dup = false;
        for (uint32_t k = 0; k < *n_out; k++) dup |= out[k] == st[i].genre;
        if (!dup) out[(*n_out)++] = st[i].genre;
    }
    free(st);
    free(prefs);
    return CB_OK;
}

/* The group to use: cfg->group_by, else a location-like column. -1: none. */
static int pick_group(const cb_bundle *r, const char *group_by, int *out, cb_error *err) {
    *out = -1;
    if (group_by) {
        for (uint32_t g = 0; g < r->n_groups; g++)
            if (!strcmp(r->groups[g].column, group_by)) {
                *out = (int)g;
                return CB_OK;
            }
        char known[256] = "";
        for (uint32_t g = 0; g < r->n_groups && strlen(known) < 200; g++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", g ? ", " : "", r->groups[g].column);
        return cb_fail(err, CB_ENOTFOUND, "group-by '%s': the model has no such categorical user attribute (%s%s)",
                       group_by, r->n_groups ? "it has: " : "it has none", known);
    }
    static const char *const location[] = {"region", "country", "location"};
    for (int k = 0; k < 3; k++)
        for (uint32_t g = 0; g < r->n_groups; g++)
            if (!strcmp(r->groups[g].column, location[k])) {
                *out = (int)g;
                return CB_OK;
            }
    return CB_OK;
}

static bool item_has_genre_over(const cb_bundle *r, uint32_t item, const uint32_t *genre_count, uint32_t cap) {
    const uint32_t *gl;
    uint32_t n = 0;
    if (!r->features || cb_features_item_genres(r->features, item, &gl, &n)) return false;
    for (uint32_t k = 0; k < n; k++)
        if (genre_count[gl[k]] >= cap) return true;
    return false;
}

static float cosine(const float *a, const float *b, uint32_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (uint32_t k = 0; k < d; k++) {
        ab += (double)a[k] * b[k];
        aa += (double)a[k] * a[k];
        bb += (double)b[k] * b[k];
    }
    return aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
}

/* Pick n of the sorted candidates c[0..m) into sel; returns how many. */
static size_t diversify(const cb_recommend_ctx *ctx, const cb_recommend_config *cfg, const cand *c, size_t m,
                        size_t n, uint32_t *sel, cb_error *err, int *rc) {
    const cb_bundle *r = ctx->r;
    *rc = CB_OK;
    if (cfg->diversity == CB_DIV_NONE) {
        size_t k = m < n ? m : n;
        for (size_t i = 0; i < k; i++) sel[i] = (uint32_t)i;
        return k;
    }
    if (cfg->diversity == CB_DIV_GENRE_CAP) {
        uint32_t ng = r->features ? cb_features_n_genres(r->features) : 0;
        uint32_t *count = cb_calloc(ng + 1, sizeof *count, err);
        if (!count) return *rc = CB_ENOMEM, 0;
        size_t k = 0;
        for (size_t i = 0; i < m && k < n; i++) {
            if (item_has_genre_over(r, c[i].item, count, cfg->genre_cap)) continue;
            sel[k++] = (uint32_t)i;
            const uint32_t *gl;
            uint32_t g = 0;
            if (r->features && !cb_features_item_genres(r->features, c[i].item, &gl, &g))
                for (uint32_t j = 0; j < g; j++) count[gl[j]]++;
        }
        free(count);
        return k;
    }
    /* MMR: argmax lambda * relevance - (1 - lambda) * max similarity to the picked */
    float *maxsim = cb_malloc((m + 1) * sizeof *maxsim, err);
    bool *taken = cb_calloc(m + 1, sizeof *taken, err);
    if (!maxsim || !taken) {
        free(maxsim);
        free(taken);
        return *rc = CB_ENOMEM, 0;
    }
    for (size_t i = 0; i < m; i++) maxsim[i] = -1.0f;
    size_t k = 0;
    float lambda = cfg->mmr_lambda;
    while (k < n && k < m) {
        size_t best = m;
        float best_v = -INFINITY;
        for (size_t i = 0; i < m; i++) {
            if (taken[i]) continue;
            float v = lambda * c[i].dot - (1 - lambda) * (k ? maxsim[i] : 0.0f);
            if (v > best_v) best_v = v, best = i;
        }
        taken[best] = true;
        sel[k++] = (uint32_t)best;
        const float *vb = item_vec(ctx, c[best].item);
        for (size_t i = 0; i < m; i++) {
            if (taken[i]) continue;
            float s = cosine(item_vec(ctx, c[i].item), vb, r->dim);
            if (s > maxsim[i]) maxsim[i] = s;
        }
    }
    free(maxsim);
    free(taken);
    return k;
}

static int explain(const cb_recommend_ctx *ctx, const cb_profile *p, const cb_recommend_config *cfg,
                   const cand *c, const uint32_t *genres, int group, cb_recommend_item *out, cb_error *err) {
    const cb_bundle *r = ctx->r;
    char yb[32];
    int rc = CB_OK;
    *out = (cb_recommend_item){.item = c->item, .score = c->score, .dot = c->dot, .sources = c->sources};
    if (c->sources & (1u << CB_SRC_SIMILAR)) {
        uint32_t a = p->items[c->anchor];
        const char *t = cb_recommend_item_title(ctx, a);
        if (!*t) t = cb_recommend_item_id(ctx, a);
        if (c->n_anchors > 1)
            rc = push_str(&out->reasons, &out->n_reasons, err, "similar to %s, which you rated %s (and to %u more of your ratings)",
                          t, fmt_y(yb, sizeof yb, p->ys[c->anchor]), c->n_anchors - 1);
        else
            rc = push_str(&out->reasons, &out->n_reasons, err, "similar to %s, which you rated %s", t,
                          fmt_y(yb, sizeof yb, p->ys[c->anchor]));
    }
    if (!rc && (c->sources & (1u << CB_SRC_GENRE))) {
        char names[256] = "";
        int count = 0;
        for (uint32_t s = 0; s < 32; s++)
            if (c->genre_slots & (1u << s)) {
                size_t l = strlen(names);
                snprintf(names + l, sizeof names - l, "%s%s", count++ ? " and " : "",
                         cb_features_genre_name(r->features, genres[s]));
            }
        rc = push_str(&out->reasons, &out->n_reasons, err, "top in your favourite genre%s %s", count > 1 ? "s" : "",
                      names);
    }
    if (!rc && (c->sources & (1u << CB_SRC_GROUP))) {
        const cb_bundle_group *g = &r->groups[group];
        const char *level = g->levels[p->group_level[group]];
        if (!strcmp(g->column, "region") || !strcmp(g->column, "country") || !strcmp(g->column, "location"))
            rc = push_str(&out->reasons, &out->n_reasons, err, "popular with users in your %s %s", g->column, level);
        else
            rc = push_str(&out->reasons, &out->n_reasons, err, "popular with users who share your %s (%s)", g->column,
                          level);
    }
    if (!rc && (c->sources & (1u << CB_SRC_POPULAR)))
        rc = push_str(&out->reasons, &out->n_reasons, err, "among the most rated items overall");
    if (!rc && (c->sources & (1u << CB_SRC_EMBEDDING)))
        rc = push_str(&out->reasons, &out->n_reasons, err, "close match to your taste vector (#%u of the catalog by v_u.v_m)",
                      c->emb_rank + 1);
    if (!rc) {
        const char *div = cfg->diversity == CB_DIV_MMR ? "; picked for diversity by MMR"
                          : cfg->diversity == CB_DIV_GENRE_CAP ? "; within the per-genre cap"
                                                               : "";
        if (r->binary)
            rc = push_str(&out->reasons, &out->n_reasons, err, "predicted probability %.2f%s", (double)c->score, div);
        else
            rc = push_str(&out->reasons, &out->n_reasons, err, "predicted rating %.1f%s", (double)c->score, div);
    }
    return rc;
}

int cb_recommend(const cb_recommend_ctx *ctx, const cb_profile *p, const cb_recommend_config *cfg,
                 const cb_blocklist *bl, cb_recommend_result *res, cb_error *err) {
    memset(res, 0, sizeof *res);
    const cb_bundle *r = ctx->r;
    const char *why = cb_recommend_config_check(cfg);
    if (why) return cb_fail(err, CB_EINVAL, "%s", why);
    if (bl && bl->n_items != r->n_items) return cb_fail(err, CB_EINVAL, "the block list belongs to another model");
    const uint32_t ni = r->n_items, dim = r->dim;
    size_t words = ((size_t)ni + 63) / 64;
    uint64_t *excl = cb_calloc(words + 1, sizeof *excl, err);
    hits hs = {0};
    cand *cs = NULL;
    uint32_t *sel = NULL, *anchors = NULL;
    int32_t *nb_idx = NULL, *emb_idx = NULL;
    float *nb_dist = NULL;
    uint32_t genres[32], n_genres = 0;
    int group = -1, rc = excl ? CB_OK : CB_ENOMEM;
    if (rc) return rc;
    if (p->note[0]) rc = push_str(&res->notes, &res->n_notes, err, "%s", p->note);
    size_t n = cfg->n;
    if (!rc && n > ni) {
        rc = push_str(&res->notes, &res->n_notes, err, "n = %zu is larger than the catalog (%u items); using %u", n, ni,
                      ni);
        n = ni;
    }
    if (bl) memcpy(excl, bl->items, words * sizeof *excl);
    for (size_t i = 0; i < p->n_ratings; i++) bit_set(excl, p->items[i]);

    /* (1) similar to the user's last liked items */
    if (!rc && cfg->recent_items && p->n_ratings && ni > 1) {
        double mean = 0;
        for (size_t i = 0; i < p->n_ratings; i++) mean += p->ys[i];
        mean /= (double)p->n_ratings;
        anchors = cb_malloc((size_t)cfg->recent_items * sizeof *anchors, err);
        uint32_t *anchor_pos = anchors ? cb_malloc((size_t)cfg->recent_items * sizeof *anchor_pos, err) : NULL;
        size_t na = 0;
        if (!anchor_pos) rc = CB_ENOMEM;
        for (size_t i = p->n_ratings; !rc && i-- > 0 && na < cfg->recent_items;)
            if (cfg->anchors_all || p->ys[i] >= mean - 1e-6) {
                anchor_pos[na] = (uint32_t)i;
                anchors[na++] = p->items[i];
            }
        size_t m = cfg->similar_per_item < ni - 1 ? cfg->similar_per_item : ni - 1;
        if (!rc && m < cfg->similar_per_item)
            rc = push_str(&res->notes, &res->n_notes, err, "M = %u similar items per rated item is more than the catalog "
                          "allows; using %zu", cfg->similar_per_item, m);
        bool used_table;
        if (!rc && na) {
            nb_idx = cb_malloc(na * m * sizeof *nb_idx, err);
            nb_dist = cb_malloc(na * m * sizeof *nb_dist, err);
            rc = (nb_idx && nb_dist) ? neighbors_of(ctx, anchors, na, m, cfg->threads, nb_idx, nb_dist, &used_table, err)
                                     : CB_ENOMEM;
        }
        for (size_t a = 0; !rc && a < na; a++)
            for (size_t j = 0; !rc && j < m; j++) {
                int32_t it = nb_idx[a * m + j];
                if (it < 0 || (uint32_t)it >= ni || bit_get(excl, (size_t)it)) continue;
                rc = add_hit(&hs, (hit){(uint32_t)it, CB_SRC_SIMILAR, 0, (int32_t)anchor_pos[a], nb_dist[a * m + j], 0},
                             err);
            }
        free(anchor_pos);
    }
    /* (2) the best items of the user's top genres */
    if (!rc && cfg->top_genres) rc = top_genres(r, p, cfg->top_genres, cfg->min_genre_ratings, genres, &n_genres, err);
    for (uint32_t s = 0; !rc && s < n_genres; s++) {
        const int32_t *list = r->genre_top + (size_t)genres[s] * CB_BUNDLE_TOP_LIST;
        uint32_t taken = 0;
        for (uint32_t t = 0; !rc && t < CB_BUNDLE_TOP_LIST && taken < cfg->per_genre && list[t] >= 0; t++) {
            if (bit_get(excl, (size_t)list[t])) continue;
            rc = add_hit(&hs, (hit){(uint32_t)list[t], CB_SRC_GENRE, (uint8_t)s, -1, 0, 0}, err);
            taken++;
        }
    }
    /* (3) popular with users like them, else overall */
    if (!rc && cfg->group_items) rc = pick_group(r, cfg->group_by, &group, err);
    if (!rc && cfg->group_items) {
        const int32_t *list = r->popular;
        uint8_t src = CB_SRC_POPULAR;
        if (group >= 0 && p->group_level[group] >= 0) {
            list = r->groups[group].top + (size_t)p->group_level[group] * CB_BUNDLE_TOP_LIST;
            src = CB_SRC_GROUP;
        } else if (group >= 0) {
            rc = push_str(&res->notes, &res->n_notes, err, "the user's %s is unknown: using overall popularity",
                          r->groups[group].column);
            group = -1;
        }
        uint32_t taken = 0;
        for (uint32_t t = 0; !rc && list && t < CB_BUNDLE_TOP_LIST && taken < cfg->group_items && list[t] >= 0; t++) {
            if (bit_get(excl, (size_t)list[t])) continue;
            rc = add_hit(&hs, (hit){(uint32_t)list[t], src, 0, -1, 0, 0}, err);
            taken++;
        }
    }
    /* (4) embedding retrieval over the whole catalog */
    if (!rc && cfg->embedding_items) {
        size_t k = cfg->embedding_items < ni ? cfg->embedding_items : ni;
        emb_idx = cb_malloc(k * sizeof *emb_idx, err);
        if (!emb_idx) rc = CB_ENOMEM;
        cb_knn_params kp = {.threads = cfg->threads > 0 ? cfg->threads : 1, .exclude = excl};
        if (!rc) rc = cb_knn_index_search(ctx->index, p->vec, 1, k, CB_KNN_DOT, &kp, emb_idx, NULL, err);
        for (size_t j = 0; !rc && j < k; j++)
            if (emb_idx[j] >= 0) rc = add_hit(&hs, (hit){(uint32_t)emb_idx[j], CB_SRC_EMBEDDING, 0, -1, 0, (uint32_t)j}, err);
    }
    /* merge, rank */
    size_t m = 0;
    if (!rc && hs.n) {
        qsort(hs.h, hs.n, sizeof *hs.h, cmp_hit);
        cs = cb_calloc(hs.n, sizeof *cs, err);
        if (!cs) rc = CB_ENOMEM;
    }
    for (size_t i = 0; !rc && i < hs.n; i++) {
        const hit *h = &hs.h[i];
        if (!m || cs[m - 1].item != h->item) cs[m++] = (cand){.item = h->item, .anchor = -1};
        cand *c = &cs[m - 1];
        c->sources |= 1u << h->source;
        if (h->source == CB_SRC_GENRE) c->genre_slots |= 1u << h->slot;
        if (h->source == CB_SRC_EMBEDDING) c->emb_rank = h->rank;
        if (h->source == CB_SRC_SIMILAR) {
            c->n_anchors++;
            bool better = c->anchor < 0 || p->ys[h->anchor] > p->ys[c->anchor] ||
                          (p->ys[h->anchor] == p->ys[c->anchor] && h->anchor > c->anchor);
            if (better) c->anchor = h->anchor, c->dist = h->dist;
        }
    }
    for (size_t i = 0; !rc && i < m; i++) {
        const float *v = item_vec(ctx, cs[i].item);
        float dot = 0;
        for (uint32_t k = 0; k < dim; k++) dot += p->vec[k] * v[k];
        cs[i].dot = dot;
        cs[i].score = cb_model_score_to_prediction(r->model, dot);
    }
    if (!rc && m) qsort(cs, m, sizeof *cs, cmp_cand_score);
    res->n_candidates = m;
    size_t k = 0;
    if (!rc && m) {
        sel = cb_malloc(n * sizeof *sel, err);
        if (!sel) rc = CB_ENOMEM;
        else k = diversify(ctx, cfg, cs, m, n, sel, err, &rc);
    }
    if (!rc && k < n)
        rc = push_str(&res->notes, &res->n_notes, err,
                      "only %zu item%s left after retrieval and filtering (asked for %zu); enable or widen the sources",
                      k, k == 1 ? "" : "s", n);
    if (!rc && k) {
        res->items = cb_calloc(k, sizeof *res->items, err);
        if (!res->items) rc = CB_ENOMEM;
    }
    for (size_t i = 0; !rc && i < k; i++) {
        rc = explain(ctx, p, cfg, &cs[sel[i]], genres, group, &res->items[i], err);
        res->n = i + 1;
    }
    free(excl);
    free(hs.h);
    free(cs);
    free(sel);
    free(anchors);
    free(nb_idx);
    free(nb_dist);
    free(emb_idx);
    if (rc) cb_recommend_result_free(res);
    return rc;
}
