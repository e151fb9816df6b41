/* catalog — the items a recommender knows: model items, then items added to
 * its table; their ids and titles, lookup by id, search by title, and the
 * embedding of a new item described by JSON (with the shared JSON attribute
 * reader used by profiles too). */
#include "rec/recommend.h"
#include "data/textutil.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Attribute values from JSON: strings, numbers, or arrays of strings (joined
 * with '|' for multi-valued columns); null is a missing value, as an empty or
 * "null" cell of a file is. `joined` collects allocations to free. */
int cb_rec_json_attr(cb_attr_value *a, const char *key, json_t *v, char **joined, const char *source, cb_error *err) {
    a->name = key;
    a->str = NULL;
    a->num = NAN;
    *joined = NULL;
    if (json_is_null(v)) {
        /* missing: str NULL, num NAN */
    } else if (json_is_string(v)) {
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
int cb_rec_with_source(int rc, const char *source, cb_error *err) {
    if (rc && err) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%s", err->msg);
        cb_fail(err, rc, "%s: %s", source, tmp);
    }
    return rc;
}

/* A list given for a single-valued content column (a brand): one element is
 * that value (*v becomes it); more are an error naming the column, rather than
 * joined into one value no item has and dropped. Other columns: unchanged. */
static int one_value_of_list(const cb_features *f, const char *key, json_t **v, const char *source, cb_error *err) {
    int facet = json_is_array(*v) ? cb_features_facet_find(f, key) : -1;
    if (facet < 0 || cb_features_facet_is_multi(f, (uint32_t)facet) || json_array_size(*v) == 0) return CB_OK;
    if (json_array_size(*v) > 1)
        return cb_fail(err, CB_EPARSE, "%s: \"%s\" takes one value (a single-valued column), not a list of %zu",
                       source, key, json_array_size(*v));
    *v = json_array_get(*v, 0);
    return CB_OK;
}

int cb_recommend_embed_item(const cb_bundle *r, const json_t *j, const char *source, float *vec, char **id_out,
                            char **title_out, char *notes, size_t notes_size, cb_error *err) {
    *id_out = *title_out = NULL;
    if (!json_is_object(j)) return cb_fail(err, CB_EPARSE, "%s: a new item must be a JSON object", source);
    size_t n_keys = json_object_size(j);
    cb_attr_value *attrs = cb_calloc(n_keys + 1, sizeof *attrs, err);
    char **joined = cb_calloc(n_keys + 1, sizeof *joined, err);
    json_t *listed = json_object_get(j, "genres");
    const char **genres = cb_calloc((json_is_array(listed) ? json_array_size(listed) : 0) + 1, sizeof *genres, err);
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
        } else if (json_is_null(v) && (!strcmp(key, "title") || !strcmp(key, "year") || !strcmp(key, "genres") ||
                                       !strcmp(key, "rating_count") || !strcmp(key, "rating_mean"))) {
            /* missing, as null is for every other column (a DataFrame row's NaN, which Python writes as null,
             * was "\"year\" must be a number") */
        } else if (!strcmp(key, "title")) {
            if (!json_is_string(v)) rc = cb_fail(err, CB_EPARSE, "%s: \"title\" must be a string", source);
            else title = json_string_value(v);
        } else if (!strcmp(key, "year") && cb_features_facet_find(r->features, key) < 0) {
            /* a year column of categories is a content column, below */
            if (!json_is_number(v)) rc = cb_fail(err, CB_EPARSE, "%s: \"year\" must be a number", source);
            else in.year = json_number_value(v);
        } else if (!strcmp(key, "genres") && !(json_is_string(v) && cb_features_facet_find(r->features, key) >= 0)) {
            /* a list; a string ("Sci-Fi|Adventure") is the genre column's values split as in its file, below */
            size_t i;
            json_t *g;
            if (!json_is_array(v)) { /* a string without a genre column: said (it read "must be ... or a string") */
                rc = json_is_string(v) ? cb_fail(err, CB_EPARSE, "%s: \"genres\": this model has no genre column (trained "
                                                 "without one, or with --exclude-cols genres)", source)
                                       : cb_fail(err, CB_EPARSE, "%s: \"genres\" must be a list of genre names, or a string",
                                                 source);
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
        } else if (!strcmp(key, "strict")) {
            if (!json_is_boolean(v)) rc = cb_fail(err, CB_EPARSE, "%s: \"strict\" must be true or false", source);
        } else if (!strcmp(key, "rating_mean")) {
            if (!json_is_number(v)) rc = cb_fail(err, CB_EPARSE, "%s: \"rating_mean\" must be a number", source);
            else in.rating_mean = (float)json_number_value(v);
        } else {
            rc = one_value_of_list(r->features, key, &v, source, err);
            if (!rc) rc = cb_rec_json_attr(&attrs[in.n_attrs], key, v, &joined[nj], source, err);
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
    bool named = rc != CB_OK, strict = json_is_true(json_object_get(j, "strict")); /* our messages name the source */
    if (!rc) rc = cb_features_check_input(r->features, false, attrs, in.n_attrs, in.year, err);
    if (!rc) rc = cb_features_new_item_checked(r->features, &in, strict, notes, notes_size, x, err);
    if (!named) rc = cb_rec_with_source(rc, source, err);
    if (!rc) rc = cb_model_item_vectors(r->model, x, 1, vec, err);
    if (!rc) rc = cb_rec_with_source(cb_bundle_check_vector(r, vec, false, err), source, err);
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

/* ---- ids, titles, vectors */

CB_API size_t cb_recommender_item_count(const cb_recommender *rec) {
    return rec ? rec->r->n_items + rec->table.n_extra : 0;
}

CB_API const char *cb_recommender_item_id(const cb_recommender *rec, size_t item) {
    if (!rec) return NULL;
    if (item < rec->r->n_items) return cb_bundle_item_id(rec->r, (uint32_t)item);
    if (item - rec->r->n_items < rec->table.n_extra) return rec->table.extra_ids[item - rec->r->n_items];
    return NULL;
}

CB_API const char *cb_recommender_item_title(const cb_recommender *rec, size_t item) {
    const char *t = NULL;
    if (!rec) return "";
    if (item < rec->r->n_items) t = cb_bundle_item_title(rec->r, (uint32_t)item);
    else if (item - rec->r->n_items < rec->table.n_extra) t = rec->table.extra_titles[item - rec->r->n_items];
    return t ? t : "";
}

bool cb_rec_item_index(const cb_recommender *rec, const char *id, uint32_t *item) {
    int64_t i = cb_bundle_item(rec->r, id); /* model items: a hash lookup */
    if (i >= 0) {
        *item = (uint32_t)i;
        return true;
    }
    for (uint32_t k = 0; k < rec->table.n_extra; k++)
        if (!strcmp(rec->table.extra_ids[k], id)) {
            *item = rec->r->n_items + k;
            return true;
        }
    return false;
}

/* An added item's values of a '|'-joined genre list (the genre column). */
static void added_genres_each(const cb_features *f, const char *joined, cb_value_fn fn, void *ctx) {
    for (const char *p = joined; p && *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int g = cb_features_genre_find_n(f, p, len);
        if (g >= 0) fn(ctx, (uint32_t)g);
        p = e ? e + 1 : p + len;
    }
}

/* An added item's values of its other content columns (extra_content's
 * column US value pairs; the genre column's come from its genre list). */
static void added_content_each(const cb_features *f, const char *s, cb_value_fn fn, void *ctx) {
    for (const char *p = s; p && *p;) {
        const char *us = strchr(p, CB_CONTENT_US), *rs = strchr(p, CB_CONTENT_RS), *end = rs ? rs : p + strlen(p);
        if (us && us < end) {
            int facet = cb_features_facet_find_n(f, p, (size_t)(us - p));
            int64_t g = facet < 0 ? -1 : cb_features_value_find(f, (uint32_t)facet, us + 1, (size_t)(end - us - 1));
            if (g >= 0 && !cb_features_value_is_genre(f, (uint32_t)g)) fn(ctx, (uint32_t)g);
        }
        p = rs ? rs + 1 : end;
    }
}

void cb_rec_item_values_each(const cb_recommender *rec, size_t item, cb_value_fn fn, void *ctx) {
    const cb_features *f = rec ? rec->r->features : NULL;
    if (!f || item >= cb_recommender_item_count(rec)) return;
    if (item >= rec->r->n_items) {
        added_genres_each(f, rec->table.extra_genres[item - rec->r->n_items], fn, ctx);
        added_content_each(f, rec->table.extra_content[item - rec->r->n_items], fn, ctx);
        return;
    }
    const uint32_t *list = NULL;
    uint32_t n = 0;
    if (cb_features_item_genres(f, (uint32_t)item, &list, &n) != CB_OK) return;
    for (uint32_t k = 0; k < n; k++) fn(ctx, list[k]);
}

const float *cb_rec_item_vec(const cb_recommender *rec, uint32_t item) {
    const cb_bundle *r = rec->r;
    if (item < r->n_items) return r->item_vecs + (size_t)item * r->dim;
    return rec->table.extra_vecs + (size_t)(item - r->n_items) * r->dim;
}

/* ---- finding an item by id or title */

/* Lower-cased title variants: [0] as is, [1] without a trailing "(year)",
 * [2] with a trailing ", The" / ", A" / ", An" moved to the front, [3]
 * without that article. */
static void title_forms(const char *title, char forms[4][512]) {
    snprintf(forms[0], 512, "%s", title);
    cb_utf8_fold(forms[0]); /* Unicode-aware: "über" finds "Über" */
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

/* The query's core with a blank before, after or both, or bare: the ids a
 * file's "a, b" or "b ,c" spell (looked up, not a scan of every id: an
 * unknown id is a server's 404). */
const char *cb_rec_blank_hint(const cb_recommender *rec, bool users, const char *query, char *buf, size_t size) {
    static const char *const forms[] = {"%.*s", " %.*s", "%.*s ", " %.*s "};
    const char *q = query;
    size_t qn = strlen(query);
    cb_trim(&q, &qn);
    char id[1024];
    uint32_t item;
    buf[0] = '\0';
    for (size_t f = 0; qn < sizeof id - 2 && f < sizeof forms / sizeof *forms; f++) {
        snprintf(id, sizeof id, forms[f], (int)qn, q);
        if (strcmp(id, query) && (users ? cb_bundle_user(rec->r, id) >= 0 : cb_rec_item_index(rec, id, &item))) {
            snprintf(buf, size, "; the id '%.200s' differs by outer blanks (ids keep their file's blanks: \"a, b\" "
                                "gives ' b')", id);
            break;
        }
    }
    return buf;
}

static uint32_t item_count(const cb_recommender *rec, size_t item) {
    return item < rec->r->n_items && rec->r->features ? cb_features_item_count(rec->r->features, item) : 0;
}

CB_API int cb_recommender_find_item(const cb_recommender *rec, const char *query, size_t *item, size_t *cands,
                                    size_t max_cands, size_t *n_cands, cb_error *err) {
    size_t n_dummy;
    if (!n_cands) n_cands = &n_dummy;
    *n_cands = 0;
    if (!rec || !query || !item || (max_cands && !cands))
        return cb_fail(err, CB_EINVAL, "cb_recommender_find_item: NULL argument");
    uint32_t n = (uint32_t)cb_recommender_item_count(rec), found;
    if (cb_rec_item_index(rec, query, &found)) return *item = found, CB_OK;
    if (!query[strspn(query, " \t")]) /* as a part of a title it matched every title */
        return cb_fail(err, CB_EINVAL, "an empty item id or title: give an id or a (part of a) title");
    char q[4][512];
    title_forms(query, q);
    /* level 0: exact title; 1: title without year or article moved; 2: substring */
    size_t count[3] = {0, 0, 0};
    uint32_t first[3] = {0, 0, 0};
    for (uint32_t i = 0; i < n; i++) {
        const char *t = cb_recommender_item_title(rec, i);
        if (!*t) continue;
        int level = title_level(t, q);
        if (level < 0) continue;
        if (!count[level]++) first[level] = i;
    }
    int best = count[0] ? 0 : count[1] ? 1 : count[2] ? 2 : -1;
    char hint[320];
    if (best < 0)
        return cb_fail(err, CB_ENOTFOUND, "no item has the id or a title matching '%s'%s", query,
                       cb_rec_blank_hint(rec, false, query, hint, sizeof hint));
    if (count[best] == 1) {
        *item = first[best];
        return CB_OK;
    }
    /* ambiguous: the most rated candidates of the best level */
    for (uint32_t i = 0; i < n; i++) {
        const char *t = cb_recommender_item_title(rec, i);
        if (!*t) continue;
        if (title_level(t, q) != best || !max_cands) continue;
        /* insertion into a list kept sorted by count desc, index asc */
        size_t pos = *n_cands;
        uint32_t c = item_count(rec, i);
        while (pos > 0 && item_count(rec, cands[pos - 1]) < c) pos--;
        if (pos >= max_cands) continue;
        size_t last = *n_cands < max_cands ? *n_cands : max_cands - 1;
        memmove(cands + pos + 1, cands + pos, (last - pos) * sizeof *cands);
        cands[pos] = i;
        if (*n_cands < max_cands) (*n_cands)++;
    }
    return cb_fail(err, CB_ENOTFOUND, "'%s' matches %zu titles; give an item id or a more precise title", query,
                   count[best]);
}

