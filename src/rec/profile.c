/* profile — who we recommend for: a known user (their vector, rated items
 * in time order, attribute levels) or a new user described by JSON (genre
 * preferences, a few ratings, attributes), embedded by the user tower. */
#include "rec/recommend.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CB_PROFILE_MAX_BYTES (16u << 20) /* a new-user file is a few lines of JSON */

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
    int rc = cb_bundle_history_rows(r, user, err); /* verified when first read */
    if (rc) return rc;
    int32_t lo = r->seen_off[user], hi = r->seen_off[user + 1];
    rc = profile_alloc(p, r, (size_t)(hi - lo), 0, err);
    if (rc) return rc;
    p->user = user;
    memcpy(p->vec, r->user_vecs + (size_t)user * r->dim, r->dim * sizeof *p->vec);
    for (int32_t k = lo; k < hi; k++) {
        p->items[p->n_ratings] = (uint32_t)r->seen_item[k];
        p->ys[p->n_ratings++] = r->seen_y[k];
    }
    for (uint32_t g = 0; g < r->n_groups; g++) p->group_level[g] = r->groups[g].user_level[user];
    if (!r->has_history) /* the user is known and has a trained vector: not cold */
        snprintf(p->note, sizeof p->note, "the model's history file is absent: items user %s %s are not filtered "
                 "out and no reason names them", cb_bundle_user_id(r, user),
                 r->binary || r->weighted ? "picked" : "rated");
    else if (!p->n_ratings) {
        p->cold = true;
        snprintf(p->note, sizeof p->note,
                 "user %s has no training ratings: cold-start recommendations from the user's attributes only",
                 cb_bundle_user_id(r, user));
    }
    return CB_OK;
}

/* The "preferences" form: {"<content column>": {"<value>": rating}} for any
 * content column (genres, tags, brand...). Each value is split as in the file
 * ("jazz;bebop"); known values become explicit preferences (gp, p->pref_*,
 * names kept alive in keys[]); unknown ones a remark appended to notes, or an
 * error when `strict`. Unknown columns are errors. */
static int profile_preferences(cb_profile *p, const cb_bundle *r, const json_t *prefs, bool strict, cb_genre_pref *gp,
                               char **keys, size_t cap, char *notes, size_t notes_size, const char *source, cb_error *err) {
    const char *col, *val;
    json_t *vals, *v;
    int rc = CB_OK;
    json_object_foreach((json_t *)prefs, col, vals) {
        int facet = cb_features_facet_find(r->features, col);
        if (facet < 0 || !json_is_object(vals)) {
            char known[240] = "";
            for (uint32_t k = 0; k < cb_features_n_facets(r->features) && strlen(known) < 200; k++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "",
                         cb_features_facet_name(r->features, k));
            return facet < 0 ? cb_fail(err, CB_ENOTFOUND, "%s: \"preferences\": '%s' is not a content column (known: %s)",
                                       source, col, known)
                             : cb_fail(err, CB_EPARSE, "%s: \"preferences\": \"%s\" must be an object {\"<value>\": rating}",
                                       source, col);
        }
        json_object_foreach(vals, val, v) {
            double y = json_is_number(v) ? json_number_value(v) : NAN;
            if (!(y >= r->y_min && y <= r->y_max))
                return cb_fail(err, CB_EINVAL, "%s: \"preferences\": the rating of %s '%s' must be a number in [%g, %g]",
                               source, col, val, (double)r->y_min, (double)r->y_max);
            uint32_t n = 0, *g = cb_malloc((strlen(val) + 1) * sizeof *g, err); /* a value takes a byte at least */
            if (!g) return CB_ENOMEM;
            rc = cb_features_facet_values(r->features, (uint32_t)facet, val, g, (uint32_t)strlen(val) + 1, &n, strict,
                                          notes, notes_size, err);
            if (rc) rc = cb_rec_with_source(rc, source, err);
            for (uint32_t k = 0; !rc && k < n && p->n_prefs < cap; k++) {
                char buf[1024];
                const char *key = cb_features_value_key(r->features, g[k], buf, sizeof buf);
                if (!key || !(keys[p->n_prefs] = cb_strdup(key, err))) {
                    rc = key ? CB_ENOMEM : cb_fail(err, CB_EINVAL, "%s: value too long", source);
                    break;
                }
                gp[p->n_prefs] = (cb_genre_pref){keys[p->n_prefs], (float)y};
                p->pref_genres[p->n_prefs] = g[k];
                p->pref_ys[p->n_prefs++] = (float)y;
            }
            free(g);
            if (rc) return rc;
        }
    }
    return CB_OK;
}

/* The content column other than genres that has the value `name`, or NULL:
 * what a "genre_ratings" name that is no genre was meant as (a brand, a tag). */
static const char *other_column_of(const cb_features *f, const char *name) {
    for (uint32_t k = 0; k < cb_features_n_facets(f); k++)
        if (!cb_features_facet_is_genre(f, k) && cb_features_value_find(f, k, name, strlen(name)) >= 0)
            return cb_features_facet_name(f, k);
    return NULL;
}

/* A "genre_ratings" name that is none of the model's genres: a remark
 * appended to notes (as "preferences" does with unknown values), pointing to
 * the "preferences" form when another content column has the value; an
 * error under `strict`, listing the genres. */
static int unknown_genre(const cb_features *f, const char *name, bool strict, char *notes, size_t notes_size,
                         const char *source, cb_error *err) {
    const char *col = other_column_of(f, name);
    char hint[160] = "";
    if (col) snprintf(hint, sizeof hint, " but a value of '%.40s' (state it as \"preferences\": {\"%.40s\": {...}})",
                      col, col);
    if (!strict) { /* appended whole or cut at the end of notes */
        char line[320];
        size_t l = strnlen(notes, notes_size), n;
        n = (size_t)snprintf(line, sizeof line, "%s\"genre_ratings\": '%.80s' ignored: not a genre%s", l ? "; " : "",
                             name, hint);
        if (l + 1 >= notes_size) return CB_OK;
        if (n >= sizeof line) n = sizeof line - 1;
        if (n > notes_size - l - 1) n = notes_size - l - 1;
        memcpy(notes + l, line, n);
        notes[l + n] = '\0';
        return CB_OK;
    }
    char known[200] = "";
    for (uint32_t g = 0; g < cb_features_n_genres(f) && strlen(known) < 160; g++)
        if (cb_features_value_is_genre(f, g))
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", *known ? ", " : "",
                     cb_features_genre_name(f, g));
    return cb_fail(err, CB_ENOTFOUND, "%s: \"genre_ratings\": '%.80s' is not a genre%s; %s%s", source, name, hint,
                   *known ? "genres: " : "this model has no genres", known);
}

/* What a "genre_ratings" name stands for: a genre; in a catalog without
 * genres, a value of exactly one content column ({"jazz": 5} means the tag
 * jazz); -1: neither (a brand beside genres goes in "preferences"). */
static int genre_ratings_value(const cb_features *f, const char *name) {
    int g = cb_features_genre_find(f, name), found = -1;
    if (g >= 0 && cb_features_value_is_genre(f, (uint32_t)g)) return g;
    for (uint32_t k = 0; k < cb_features_n_genres(f); k++)
        if (cb_features_value_is_genre(f, k)) return -1; /* the catalog has genres */
    for (uint32_t k = 0; k < cb_features_n_facets(f); k++) {
        int64_t v = cb_features_facet_is_genre(f, k) ? -1 : cb_features_value_find(f, k, name, strlen(name));
        if (v >= 0 && found >= 0) return -1; /* ambiguous */
        if (v >= 0) found = (int)v;
    }
    return found;
}

/* The "genre_ratings" form: {"<genre>": rating}, the genre column's values
 * (genre_ratings_value; other content columns go in "preferences"). Known genres become
 * explicit preferences like profile_preferences' (gp, p->pref_*, keys[]);
 * unknown names are unknown_genre's remarks or errors. */
static int profile_genre_ratings(cb_profile *p, const cb_bundle *r, const json_t *genres, bool strict, cb_genre_pref *gp,
                                 char **keys, char *notes, size_t notes_size, const char *source, cb_error *err) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)genres, key, v) {
        int g = genre_ratings_value(r->features, key);
        double y = json_is_number(v) ? json_number_value(v) : NAN;
        if (!(y >= r->y_min && y <= r->y_max))
            return cb_fail(err, CB_EINVAL, "%s: \"genre_ratings\": the rating of '%s' must be a number in [%g, %g]",
                           source, key, (double)r->y_min, (double)r->y_max);
        if (g < 0) {
            int rc = unknown_genre(r->features, key, strict, notes, notes_size, source, err);
            if (rc) return rc;
            continue;
        }
        char buf[1024];
        const char *name = cb_features_value_key(r->features, (uint32_t)g, buf, sizeof buf); /* a tag: its key */
        if (!name) return cb_fail(err, CB_EINVAL, "%s: \"genre_ratings\": '%.80s' too long", source, key);
        if (!(keys[p->n_prefs] = cb_strdup(name, err))) return CB_ENOMEM;
        gp[p->n_prefs] = (cb_genre_pref){keys[p->n_prefs], (float)y};
        p->pref_genres[p->n_prefs] = (uint32_t)g;
        p->pref_ys[p->n_prefs++] = (float)y;
    }
    return CB_OK;
}

/* How many preference entries "preferences" can give at most: a value
 * split on its column's separators gives no more pieces than its bytes. */
static size_t count_preferences(const json_t *prefs) {
    size_t n = 0;
    const char *col, *val;
    json_t *vals, *v;
    json_object_foreach((json_t *)prefs, col, vals)
        if (json_is_object(vals))
            json_object_foreach(vals, val, v) n += strlen(val) + 1;
    return n;
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
    json_t *prefs = json_object_get(j, "preferences"), *strict = json_object_get(j, "strict");
    if (prefs && !json_is_object(prefs))
        return cb_fail(err, CB_EPARSE, "%s: \"preferences\" must be an object {\"<column>\": {\"<value>\": rating}}", source);
    if (strict && !json_is_boolean(strict)) return cb_fail(err, CB_EPARSE, "%s: \"strict\" must be true or false", source);
    size_t nr = ratings ? json_object_size(ratings) : 0, ng = genres ? json_object_size(genres) : 0;
    size_t n_pref_cap = prefs ? count_preferences(prefs) : 0;
    ng += n_pref_cap;
    size_t n_keys = json_object_size(j);
    int rc = profile_alloc(p, r, nr, ng, err);
    if (rc) return rc;
    cb_attr_value *attrs = cb_calloc(n_keys + 1, sizeof *attrs, err);
    char **joined = cb_calloc(n_keys + 1, sizeof *joined, err);
    cb_item_rating *ir = cb_calloc(nr + 1, sizeof *ir, err);
    cb_genre_pref *gp = cb_calloc(ng + 1, sizeof *gp, err);
    char **keys = cb_calloc(ng + 1, sizeof *keys, err);
    float *x = cb_calloc(cb_features_user_dim(r->features) + 1, sizeof *x, err);
    rc = (attrs && joined && ir && gp && keys && x) ? CB_OK : CB_ENOMEM;
    size_t n_attrs = 0, nj = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        if (rc) break;
        if (!strcmp(key, "ratings") || !strcmp(key, "genre_ratings") || !strcmp(key, "preferences") ||
            !strcmp(key, "strict"))
            continue;
        rc = cb_rec_json_attr(&attrs[n_attrs], key, v, &joined[nj], source, err);
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
    char notes[sizeof p->note] = "";
    if (!rc && genres)
        rc = profile_genre_ratings(p, r, genres, json_is_true(strict), gp, keys, notes, sizeof notes, source, err);
    if (!rc && prefs)
        rc = profile_preferences(p, r, prefs, json_is_true(strict), gp, keys, p->n_prefs + n_pref_cap, notes,
                                 sizeof notes, source, err);
    if (!rc)
        rc = cb_rec_with_source(cb_features_check_user_levels(r->features, attrs, n_attrs, json_is_true(strict), notes,
                                                              sizeof notes, err),
                                source, err);
    if (!rc && notes[0]) snprintf(p->note, sizeof p->note, "%s", notes);
    if (!rc) {
        cb_user_input in = {attrs, n_attrs, ir, p->n_ratings, gp, p->n_prefs};
        rc = cb_features_check_input(r->features, true, attrs, n_attrs, NAN, err);
        if (!rc) rc = cb_features_new_user(r->features, &in, x, err);
        rc = cb_rec_with_source(rc, source, err);
    }
    if (!rc) rc = cb_bundle_user_vector(r, x, p->items, p->n_ratings, p->vec, err); /* with the history bag */
    if (!rc) rc = cb_rec_with_source(cb_bundle_check_vector(r, p->vec, true, err), source, err);
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
    for (size_t i = 0; keys && i < p->n_prefs; i++) free(keys[i]);
    free(keys);
    free(x);
    if (rc) cb_recommend_profile_free(p);
    return rc;
}

static int json_error_fail(const json_error_t *je, const char *source, cb_error *err) {
    return cb_fail(err, CB_EPARSE, "%s:%d:%d: %s", source, je->line, je->column, je->text);
}

int cb_recommend_profile_file(cb_profile *p, const cb_bundle *r, const char *path, cb_error *err) {
    memset(p, 0, sizeof *p);
    char *text;
    size_t len;
    int rc = cb_read_small_file(path, &text, &len, CB_PROFILE_MAX_BYTES, err);
    if (rc) return rc;
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!j) return json_error_fail(&je, path, err);
    rc = cb_recommend_profile_json(p, r, j, path, err);
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

