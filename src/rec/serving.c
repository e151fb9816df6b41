/* serving — what a server (cbrec serve) and the bindings need of a
 * cb_recommender beyond ranking: item facts (genres, rating counts and
 * means), the vocabulary a profile form can offer, a known user's history,
 * a 2-D projection of the item vectors (PCA), and the profile of a known
 * user plus live events (ratings that arrived after training). */
#include "rec/recommend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- items */

/* Names of an item's values, the genre column's or the others' (serving's
 * item facts): into names / columns up to max, counting all. */
typedef struct value_names {
    const cb_features *f;
    bool genre;
    const char **columns, **names;
    size_t max, n;
} value_names;

static void value_name_put(void *ctx, uint32_t g) {
    value_names *s = ctx;
    int facet = cb_features_value_facet(s->f, g);
    if (cb_features_value_is_genre(s->f, g) != s->genre || (!s->genre && facet < 0)) return;
    if (s->n < s->max) {
        if (s->names) s->names[s->n] = cb_features_genre_name(s->f, g);
        if (s->columns) s->columns[s->n] = cb_features_facet_name(s->f, (uint32_t)facet);
    }
    s->n++;
}

CB_API size_t cb_recommender_item_genres(const cb_recommender *rec, size_t item, const char **names, size_t max) {
    if (!rec) return 0;
    value_names s = {rec->r->features, true, NULL, names, max, 0};
    cb_rec_item_values_each(rec, item, value_name_put, &s);
    return s.n;
}

CB_API size_t cb_recommender_item_content(const cb_recommender *rec, size_t item, const char **columns,
                                          const char **values, size_t max) {
    if (!rec) return 0;
    value_names s = {rec->r->features, false, columns, values, max, 0};
    cb_rec_item_values_each(rec, item, value_name_put, &s);
    return s.n;
}

CB_API int cb_recommender_item_rating_stats(const cb_recommender *rec, size_t *counts, double *means, cb_error *err) {
    if (!rec || !counts || !means) return cb_fail(err, CB_EINVAL, "cb_recommender_item_rating_stats: NULL argument");
    const cb_bundle *r = rec->r;
    int rc = cb_bundle_history_check(r, err); /* every row: verified when first read */
    if (rc) return rc;
    size_t n_all = cb_recommender_item_count(rec);
    double *sums = cb_calloc(n_all + 1, sizeof *sums, err);
    if (!sums) return CB_ENOMEM;
    memset(counts, 0, n_all * sizeof *counts);
    if (!r->has_history) { /* the feature transform's: training ratings, shrunk mean */
        for (uint32_t i = 0; i < r->n_items; i++) {
            counts[i] = cb_features_item_count(r->features, i);
            sums[i] = counts[i] ? (double)cb_features_item_mean(r->features, i) * (double)counts[i] : 0.0;
        }
    }
    for (int32_t k = 0; k < r->seen_off[r->n_users]; k++) {
        uint32_t i = (uint32_t)r->seen_item[k];
        if (i >= r->n_items) continue;
        counts[i]++;
        sums[i] += r->seen_y[k];
    }
    for (size_t i = 0; i < n_all; i++) means[i] = counts[i] ? sums[i] / (double)counts[i] : NAN;
    free(sums);
    return CB_OK;
}

/* ---- vocabulary */

/* Feature j of one side into cols as its input column and level (a number or
 * a text column: the column with no levels); derived features are not inputs. */
static void add_input_feature(json_t *cols, const cb_features *f, bool user, uint32_t j) {
    const char *level, *col = cb_features_input_column(f, user, j, &level);
    if (!col) return;
    json_t *levels = json_object_get(cols, col);
    if (!levels) {
        levels = json_array();
        json_object_set_new(cols, col, levels);
    }
    if (level) json_array_append_new(levels, json_string(level));
}

CB_API int cb_recommender_vocabulary_json(const cb_recommender *rec, char **json_out, cb_error *err) {
    if (!rec || !json_out) return cb_fail(err, CB_EINVAL, "cb_recommender_vocabulary_json: NULL argument");
    const cb_features *f = rec->r->features;
    json_t *genres = json_array(), *items = json_object(), *users = json_object();
    for (uint32_t g = 0; f && genres && g < cb_features_n_genres(f); g++) /* what "genre_ratings" takes */
        if (cb_features_value_is_genre(f, g)) json_array_append_new(genres, json_string(cb_features_genre_name(f, g)));
    for (uint32_t j = 0; f && items && j < cb_features_item_dim(f); j++) add_input_feature(items, f, false, j);
    for (uint32_t j = 0; f && users && j < cb_features_user_dim(f); j++) add_input_feature(users, f, true, j);
    json_t *multi = json_array(); /* the other content columns an item has several values of (tags) */
    for (uint32_t k = 0; f && multi && k < cb_features_n_facets(f); k++)
        if (cb_features_facet_is_multi(f, k) && !cb_features_facet_is_genre(f, k))
            json_array_append_new(multi, json_string(cb_features_facet_name(f, k)));
    json_t *doc = (genres && items && users && multi)
                      ? json_pack("{s:o,s:o,s:o,s:o}", "genres", genres, "item_columns", items, "user_columns", users,
                                  "multi_valued", multi)
                      : NULL;
    if (!doc) {
        json_decref(genres);
        json_decref(items);
        json_decref(users);
        json_decref(multi);
    }
    return cb_rec_json_dump(doc, json_out, err);
}

/* ---- users */

CB_API size_t cb_recommender_user_n_ratings(const cb_recommender *rec, size_t user) {
    if (!rec || user >= rec->r->n_users) return 0;
    return (size_t)(rec->r->seen_off[user + 1] - rec->r->seen_off[user]);
}

CB_API int cb_recommender_user_rating(const cb_recommender *rec, size_t user, size_t j, size_t *item, float *rating,
                                      int64_t *time, cb_error *err) {
    if (!rec || !item || !rating) return cb_fail(err, CB_EINVAL, "cb_recommender_user_rating: NULL argument");
    if (j >= cb_recommender_user_n_ratings(rec, user))
        return cb_fail(err, CB_ENOTFOUND, "user %zu has no rating number %zu", user, j);
    const cb_bundle *r = rec->r;
    int rc = cb_bundle_history_rows(r, (uint32_t)user, err);
    if (rc) return rc;
    int32_t k = r->seen_off[user] + (int32_t)j;
    *item = (size_t)r->seen_item[k];
    *rating = r->seen_y[k];
    if (time) *time = r->seen_ts ? (int64_t)(uint32_t)r->seen_ts[k] : 0;
    return CB_OK;
}

/* ---- a 2-D map of the item vectors */

/* The leading eigenvector of the symmetric d x d matrix c (power iteration
 * from a fixed start: deterministic), sign fixed so its largest entry is positive. */
static void leading_eigenvector(const double *c, size_t d, double *v, double *tmp) {
    for (size_t i = 0; i < d; i++) v[i] = 1.0 + 0.01 * (double)i;
    for (int it = 0; it < 300; it++) {
        double norm = 0;
        for (size_t i = 0; i < d; i++) {
            double s = 0;
            for (size_t k = 0; k < d; k++) s += c[i * d + k] * v[k];
            tmp[i] = s;
            norm += s * s;
        }
        norm = sqrt(norm);
        if (norm == 0) return;
        for (size_t i = 0; i < d; i++) v[i] = tmp[i] / norm;
    }
    size_t big = 0;
    for (size_t i = 1; i < d; i++)
        if (fabs(v[i]) > fabs(v[big])) big = i;
    if (v[big] < 0)
        for (size_t i = 0; i < d; i++) v[i] = -v[i];
}

CB_API int cb_recommender_project_2d(const cb_recommender *rec, float *xy, cb_error *err) {
    if (!rec || !xy) return cb_fail(err, CB_EINVAL, "cb_recommender_project_2d: NULL argument");
    size_t n = cb_recommender_item_count(rec), d = rec->r->dim;
    double *mean = cb_calloc(d, sizeof *mean, err), *cov = cb_calloc(d * d, sizeof *cov, err);
    double *axis = cb_calloc(2 * d, sizeof *axis, err), *tmp = cb_calloc(d, sizeof *tmp, err);
    int rc = (mean && cov && axis && tmp) ? CB_OK : CB_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        const float *v = cb_rec_item_vec(rec, (uint32_t)i);
        for (size_t k = 0; k < d; k++) mean[k] += v[k] / (double)n;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        const float *v = cb_rec_item_vec(rec, (uint32_t)i);
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++) cov[a * d + b] += (v[a] - mean[a]) * (v[b] - mean[b]);
    }
    for (int c = 0; !rc && c < 2; c++) {
        leading_eigenvector(cov, d, axis + c * d, tmp);
        double lambda = 0; /* deflate: cov -= lambda a a^T */
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++) lambda += axis[c * d + a] * cov[a * d + b] * axis[c * d + b];
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++) cov[a * d + b] -= lambda * axis[c * d + a] * axis[c * d + b];
    }
    for (size_t i = 0; !rc && i < n; i++) {
        const float *v = cb_rec_item_vec(rec, (uint32_t)i);
        for (int c = 0; c < 2; c++) {
            double s = 0;
            for (size_t k = 0; k < d; k++) s += (v[k] - mean[k]) * axis[c * d + k];
            xy[2 * i + c] = (float)s;
        }
    }
    free(mean);
    free(cov);
    free(axis);
    free(tmp);
    return rc;
}
