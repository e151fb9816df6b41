/* features_json — saving and loading a fitted cb_features as JSON (the
 * "features" entry of a model file): cb_features_to_json writes every
 * fitted field; cb_features_from_json checks every field's type and size and
 * rebuilds the derived lookups, so a corrupt or foreign object is a clear
 * CB_EFORMAT error, never a crash. */
#include "features/features_internal.h"
#include "data/textutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FEATURES_FORMAT "cbrec-features"
#define FEATURES_VERSION 1

static json_t *jarr_u32(const uint32_t *v, size_t n) {
    json_t *a = json_array();
    for (size_t k = 0; a && k < n; k++)
        if (json_array_append_new(a, json_integer(v[k]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* An array of reals from doubles (f64) or floats (f32, the other NULL). */
static json_t *jarr_real(const double *f64, const float *f32, size_t n) {
    json_t *a = json_array();
    for (size_t k = 0; a && k < n; k++)
        if (json_array_append_new(a, json_real(f64 ? f64[k] : (double)f32[k]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* json_string() refuses invalid UTF-8: then NULL, and the caller reports it. */
static json_t *jarr_str(char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t k = 0; a && k < n; k++)
        if (json_array_append_new(a, json_string(v[k]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Set o[key] = v (stealing v); false when v is NULL or on failure. */
static bool jset(json_t *o, const char *key, json_t *v) {
    if (!v) return false;
    return json_object_set_new(o, key, v) == 0;
}

static json_t *side_to_json(const fside *s) {
    json_t *o = json_object(), *blocks = json_array();
    bool ok = o && blocks;
    for (uint32_t bi = 0; ok && bi < s->n_blocks; bi++) {
        const fblock *b = &s->blocks[bi];
        json_t *jb = json_object();
        ok = jb && jset(jb, "type", json_string(cb_feat_block_type_name[b->type])) &&
             jset(jb, "col", b->col ? json_string(b->col) : json_null());
        if (ok && (b->type == B_CAT || b->type == B_MULTI || b->type == B_TEXT))
            ok = jset(jb, "levels", jarr_str(b->levels, b->n_levels));
        if (ok && b->type == B_TEXT)
            ok = jset(jb, "idf", jarr_real(b->idf, NULL, b->n_levels)) && jset(jb, "buckets", json_integer(b->buckets)) &&
                 jset(jb, "fill", json_real(b->fill)) && jset(jb, "token_rule", json_integer(b->token_rule));
        if (ok && (b->type == B_NUM || b->type == B_YEAR))
            ok = jset(jb, "missing_flag", json_boolean(b->missing_flag)) && jset(jb, "fill", json_real(b->fill));
        /* json_array_append_new takes jb even when it fails */
        if (!ok) json_decref(jb);
        else if (json_array_append_new(blocks, jb)) ok = false;
    }
    if (ok) {
        json_t *tmp = blocks;
        blocks = NULL;
        ok = jset(o, "blocks", tmp) && jset(o, "dim", json_integer(s->dim)) && jset(o, "mean", jarr_real(s->mean, NULL, s->dim)) &&
             jset(o, "std", jarr_real(s->std, NULL, s->dim)) && jset(o, "ignored_cols", jarr_str(s->ignored, s->n_ignored));
    }
    json_decref(blocks);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The content columns: "facets": {"columns", "seps", "hash", "genre_facet",
 * "value_facet"}; absent in models without them (every value a genre). */
static bool facets_to_json(const cb_features *f, json_t *o) {
    if (!f->value_facet) return true;
    json_t *fa = json_object();
    return fa && jset(o, "facets", fa) && jset(fa, "columns", jarr_str(f->facet_cols, f->n_facets)) &&
           jset(fa, "seps", jarr_str(f->facet_seps, f->n_facets)) && jset(fa, "hash", jarr_u32(f->facet_hash, f->n_facets)) &&
           jset(fa, "genre_facet", json_integer(f->genre_facet)) &&
           jset(fa, "value_facet", jarr_u32(f->value_facet, f->n_genres));
}

json_t *cb_features_to_json(const cb_features *f, cb_error *err) {
    if (!f) {
        cb_fail(err, CB_EINVAL, "cb_features_to_json: no features");
        return NULL;
    }
    const cb_feature_config *c = &f->cfg;
    json_t *cfg = json_object(), *o = json_object();
    bool ok = cfg && o && jset(cfg, "user_attrs", json_boolean(c->user_attrs)) &&
              jset(cfg, "user_stats", json_boolean(c->user_stats)) && jset(cfg, "user_genres", json_boolean(c->user_genres)) &&
              jset(cfg, "item_year", json_boolean(c->item_year)) && jset(cfg, "item_genres", json_boolean(c->item_genres)) &&
              jset(cfg, "item_stats", json_boolean(c->item_stats)) && jset(cfg, "item_attrs", json_boolean(c->item_attrs)) &&
              jset(cfg, "top_k_popular", json_integer(c->top_k_popular)) &&
              jset(cfg, "age_mode", json_string(c->age_mode == CB_AGE_BUCKETS ? "buckets" : "standardise")) &&
              jset(cfg, "max_cat_levels", json_integer(c->max_cat_levels)) &&
              jset(cfg, "max_multi_levels", json_integer(c->max_multi_levels)) &&
              jset(cfg, "item_prior", json_real(c->item_prior)) &&
              jset(cfg, "exclude_cols", c->exclude_cols ? json_string(c->exclude_cols) : json_null()) &&
              jset(cfg, "user_skip_cols", json_integer(c->user_skip_cols)) &&
              jset(cfg, "item_skip_cols", json_integer(c->item_skip_cols)) &&
              jset(cfg, "scaler_rows", json_string(c->scaler_rows == CB_SCALER_ALL ? "all" : "train"));
    if (ok) {
        json_t *tmp = cfg;
        cfg = NULL;
        ok = jset(o, "format", json_string(FEATURES_FORMAT)) && jset(o, "version", json_integer(FEATURES_VERSION)) &&
             jset(o, "prejoined", json_boolean(f->prejoined)) && jset(o, "config", tmp) &&
             jset(o, "global_mean", json_real(f->global_mean)) && jset(o, "n_items", json_integer(f->n_items)) &&
             jset(o, "genres", jarr_str(f->genres, f->n_genres)) &&
             jset(o, "item_genre_off", jarr_u32(f->item_genre_off, (size_t)f->n_items + 1)) &&
             jset(o, "item_genre_val", jarr_u32(f->item_genre_val, f->item_genre_off[f->n_items])) &&
             jset(o, "item_count", jarr_u32(f->item_count, f->n_items)) &&
             jset(o, "item_mean", jarr_real(NULL, f->item_mean, f->n_items)) &&
             jset(o, "top_items", jarr_u32(f->top_items, f->top_k)) &&
             jset(o, "top_item_ids", jarr_str(f->top_item_ids, f->top_k)) &&
             jset(o, "year_from_title", json_boolean(f->year_from_title)) && jset(o, "user", side_to_json(&f->user)) &&
             jset(o, "item", side_to_json(&f->item));
    }
    if (ok) ok = facets_to_json(f, o);
    json_decref(cfg);
    if (!ok) {
        json_decref(o);
        cb_fail(err, CB_ENOMEM, "cannot build the features JSON (out of memory or a name that is not UTF-8)");
        return NULL;
    }
    return o;
}

/* ---- loading, every field checked */

static int jget(const json_t *o, const char *key, json_type type, const json_t **out, cb_error *err) {
    const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    bool ok = v && (json_typeof(v) == type || (type == JSON_REAL && json_is_integer(v)) ||
                    (type == JSON_TRUE && json_is_boolean(v)));
    if (!ok) {
        static const char *const tn[] = {"an object", "an array", "a string", "an integer", "a number", "a boolean",
                                         "a boolean", "null"};
        return cb_fail(err, CB_EFORMAT, "features: '%s' is missing or not %s", key, tn[type]);
    }
    *out = v;
    return CB_OK;
}

static int jget_u32(const json_t *o, const char *key, uint32_t *v, cb_error *err) {
    const json_t *j = NULL;
    int rc = jget(o, key, JSON_INTEGER, &j, err);
    if (rc) return rc;
    json_int_t x = json_integer_value(j);
    if (x < 0 || x > (json_int_t)UINT32_MAX) return cb_fail(err, CB_EFORMAT, "features: '%s' out of range", key);
    *v = (uint32_t)x;
    return CB_OK;
}

static int jget_f64(const json_t *o, const char *key, double *v, cb_error *err) {
    const json_t *j = NULL;
    int rc = jget(o, key, JSON_REAL, &j, err);
    if (rc) return rc;
    *v = json_number_value(j);
    if (!isfinite(*v)) return cb_fail(err, CB_EFORMAT, "features: '%s' is not finite", key);
    return CB_OK;
}

static int jget_bool(const json_t *o, const char *key, bool *v, cb_error *err) {
    const json_t *j = NULL;
    int rc = jget(o, key, JSON_TRUE, &j, err);
    if (rc) return rc;
    *v = json_is_true(j);
    return CB_OK;
}

/* Array o[key] of exactly `want` elements (want == UINT32_MAX: any length). */
static int jget_array(const json_t *o, const char *key, uint32_t want, const json_t **arr, uint32_t *n, cb_error *err) {
    int rc = jget(o, key, JSON_ARRAY, arr, err);
    if (rc) return rc;
    size_t len = json_array_size(*arr);
    if (len > UINT32_MAX || (want != UINT32_MAX && len != want))
        return cb_fail(err, CB_EFORMAT, "features: '%s' has %zu elements, expected %u", key, len, want);
    *n = (uint32_t)len;
    return CB_OK;
}

static int jget_u32_array(const json_t *o, const char *key, uint32_t want, uint32_t **out, uint32_t *n, cb_error *err) {
    const json_t *a = NULL;
    int rc = jget_array(o, key, want, &a, n, err);
    if (rc) return rc;
    uint32_t *v = cb_malloc((size_t)(*n ? *n : 1) * sizeof *v, err);
    if (!v) return CB_ENOMEM;
    for (uint32_t k = 0; k < *n; k++) {
        const json_t *e = json_array_get(a, k);
        json_int_t x = json_is_integer(e) ? json_integer_value(e) : -1;
        if (x < 0 || x > (json_int_t)UINT32_MAX) {
            free(v);
            return cb_fail(err, CB_EFORMAT, "features: '%s'[%u] is not an unsigned 32-bit integer", key, k);
        }
        v[k] = (uint32_t)x;
    }
    *out = v;
    return CB_OK;
}

/* A per-item array from the tensor "features.<key>" of st (4-byte elements,
 * `want` of them, UINT32_MAX: any number), copied (the features own it). */
static int st_get_array(const cb_st *st, const char *key, cb_st_dtype dt, uint32_t want, void **out, uint32_t *n,
                        cb_error *err) {
    char name[64];
    snprintf(name, sizeof name, "features.%s", key);
    int64_t shape[1];
    const void *p = cb_st_tensor(st, name, dt, 1, shape, err);
    if (!p) return CB_EFORMAT;
    if (shape[0] >= UINT32_MAX || (want != UINT32_MAX && shape[0] != want))
        return cb_fail(err, CB_EFORMAT, "%s: features: tensor '%s' has %lld entries, expected %u", cb_st_path(st), name,
                       (long long)shape[0], want);
    *n = (uint32_t)shape[0];
    if (!(*out = cb_malloc((size_t)(*n ? *n : 1) * 4, err))) return CB_ENOMEM;
    memcpy(*out, p, (size_t)*n * 4);
    return CB_OK;
}

/* A uint32 per-item array from the JSON, or from st when it is given. */
static int items_u32(const json_t *j, const cb_st *st, const char *key, uint32_t want, uint32_t **out, uint32_t *n,
                     cb_error *err) {
    if (!st) return jget_u32_array(j, key, want, out, n, err);
    return st_get_array(st, key, CB_ST_I32, want, (void **)out, n, err);
}

static int jget_f64_array(const json_t *o, const char *key, uint32_t want, double **out, cb_error *err) {
    const json_t *a = NULL;
    uint32_t n;
    int rc = jget_array(o, key, want, &a, &n, err);
    if (rc) return rc;
    double *v = cb_malloc((size_t)(n ? n : 1) * sizeof *v, err);
    if (!v) return CB_ENOMEM;
    for (uint32_t k = 0; k < n; k++) {
        const json_t *e = json_array_get(a, k);
        if (!json_is_number(e) || !isfinite(json_number_value(e))) {
            free(v);
            return cb_fail(err, CB_EFORMAT, "features: '%s'[%u] is not a finite number", key, k);
        }
        v[k] = json_number_value(e);
    }
    *out = v;
    return CB_OK;
}

static int jget_str_array(const json_t *o, const char *key, uint32_t want, char ***out, uint32_t *n, cb_error *err) {
    const json_t *a = NULL;
    int rc = jget_array(o, key, want, &a, n, err);
    if (rc) return rc;
    char **v = cb_calloc(*n ? *n : 1, sizeof *v, err);
    if (!v) return CB_ENOMEM;
    for (uint32_t k = 0; k < *n; k++) {
        const json_t *e = json_array_get(a, k);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            cb_feat_free_strv(v, k);
            return cb_fail(err, CB_EFORMAT, "features: '%s'[%u] is not a string", key, k);
        }
        if (!(v[k] = cb_strdup(json_string_value(e), err))) {
            cb_feat_free_strv(v, k);
            return CB_ENOMEM;
        }
    }
    *out = v;
    return CB_OK;
}

static int side_from_json(cb_features *f, fside *s, const json_t *o, bool is_user, cb_error *err) {
    const char *what = is_user ? "user" : "item";
    const json_t *blocks;
    uint32_t nb, dim;
    int rc;
    if (!json_is_object(o)) return cb_fail(err, CB_EFORMAT, "features: '%s' is missing or not an object", what);
    if ((rc = jget_array(o, "blocks", UINT32_MAX, &blocks, &nb, err))) return rc;
    if ((rc = jget_u32(o, "dim", &dim, err))) return rc;
    for (uint32_t bi = 0; bi < nb; bi++) {
        const json_t *jb = json_array_get(blocks, bi), *jt, *jc;
        if ((rc = jget(jb, "type", JSON_STRING, &jt, err))) return rc;
        int type = 0;
        for (int t = 1; t < B_N_TYPES; t++)
            if (!strcmp(json_string_value(jt), cb_feat_block_type_name[t])) type = t;
        bool user_type = type == B_USER_COUNT || type == B_USER_MEAN || type == B_GENRE_AVG || type == B_GENRE_FRAC ||
                         type == B_TOP_ITEMS || type == B_AGE_BUCKETS;
        bool item_type = type == B_YEAR || type == B_ITEM_GENRES || type == B_ITEM_MEAN || type == B_ITEM_COUNT;
        if (!type || (is_user && item_type) || (!is_user && user_type) || (f->prejoined != (type == B_RAW)))
            return cb_fail(err, CB_EFORMAT, "features: %s block %u has an unexpected type '%s'", what, bi,
                           json_string_value(jt));
        jc = json_object_get(jb, "col");
        bool needs_col = cb_feat_block_has_column(type) && type != B_YEAR;
        if (jc && !json_is_null(jc) && !json_is_string(jc))
            return cb_fail(err, CB_EFORMAT, "features: %s block %u: 'col' is not a string", what, bi);
        if (needs_col && !json_is_string(jc))
            return cb_fail(err, CB_EFORMAT, "features: %s block %u: 'col' is missing", what, bi);
        fblock *b = cb_feat_side_add(s, type, json_is_string(jc) ? json_string_value(jc) : NULL, err);
        if (!b) return CB_ENOMEM;
        if (type == B_CAT || type == B_MULTI || type == B_TEXT) {
            if ((rc = jget_str_array(jb, "levels", UINT32_MAX, &b->levels, &b->n_levels, err))) return rc;
            if ((rc = cb_feat_block_build_vocab(b, err))) return rc;
        }
        if (type == B_TEXT) {
            if ((rc = jget_f64_array(jb, "idf", b->n_levels, &b->idf, err))) return rc;
            if ((rc = jget_u32(jb, "buckets", &b->buckets, err))) return rc;
            if ((rc = jget_f64(jb, "fill", &b->fill, err))) return rc;
            if (b->buckets == 0 || b->buckets > 1000000)
                return cb_fail(err, CB_EFORMAT, "features: %s block %u: 'buckets' must be 1..1000000", what, bi);
            json_t *jr = json_object_get(jb, "token_rule"); /* absent: a model of the first rule */
            b->token_rule = jr ? (int)json_integer_value(jr) : 1;
            if (jr && (!json_is_integer(jr) || b->token_rule < 1 || b->token_rule > CB_TEXT_TOKEN_RULE))
                return cb_fail(err, CB_EFORMAT, "features: %s block %u: 'token_rule' must be 1..%d (a newer cbrec's model?)",
                               what, bi, CB_TEXT_TOKEN_RULE);
        }
        if (type == B_NUM || type == B_YEAR) {
            if ((rc = jget_bool(jb, "missing_flag", &b->missing_flag, err))) return rc;
            if ((rc = jget_f64(jb, "fill", &b->fill, err))) return rc;
        }
    }
    uint32_t computed = 0;
    for (uint32_t bi = 0; bi < s->n_blocks; bi++) {
        uint32_t w = cb_feat_block_width(f, &s->blocks[bi]);
        if (w > UINT32_MAX - computed) return cb_fail(err, CB_EFORMAT, "features: %s dimension overflows", what);
        computed += w;
    }
    if (computed != dim)
        return cb_fail(err, CB_EFORMAT, "features: %s dim is %u but its blocks add up to %u", what, dim, computed);
    if ((rc = jget_f64_array(o, "mean", dim, &s->mean, err))) return rc;
    if ((rc = jget_f64_array(o, "std", dim, &s->std, err))) return rc;
    for (uint32_t j = 0; j < dim; j++)
        if (!(s->std[j] > 0)) return cb_fail(err, CB_EFORMAT, "features: %s std[%u] is not positive", what, j);
    if ((rc = jget_str_array(o, "ignored_cols", UINT32_MAX, &s->ignored, &s->n_ignored, err))) return rc;
    return cb_feat_side_finish(f, s, is_user, err);
}

static int facets_from_json(cb_features *f, const json_t *fa, cb_error *err) {
    if (!fa) return CB_OK;
    if (!json_is_object(fa)) return cb_fail(err, CB_EFORMAT, "features: 'facets' is not an object");
    uint32_t n, n2;
    int rc;
    if ((rc = jget_str_array(fa, "columns", UINT32_MAX, &f->facet_cols, &f->n_facets, err))) return rc;
    if ((rc = jget_str_array(fa, "seps", f->n_facets, &f->facet_seps, &n, err))) return rc;
    if ((rc = jget_u32_array(fa, "hash", f->n_facets, &f->facet_hash, &n2, err))) return rc;
    if ((rc = jget_u32_array(fa, "value_facet", f->n_genres, &f->value_facet, &n, err))) return rc;
    const json_t *g = json_object_get(fa, "genre_facet");
    if (!json_is_integer(g) || json_integer_value(g) < -1 || json_integer_value(g) >= (json_int_t)f->n_facets)
        return cb_fail(err, CB_EFORMAT, "features: 'facets.genre_facet' is not -1 or a facet index");
    f->genre_facet = (int32_t)json_integer_value(g);
    for (uint32_t k = 0; k < f->n_genres; k++)
        if (f->value_facet[k] >= f->n_facets)
            return cb_fail(err, CB_EFORMAT, "features: value %u belongs to facet %u, only %u facets", k, f->value_facet[k],
                           f->n_facets);
    return CB_OK;
}

static int features_from_json(cb_features *f, const json_t *j, const cb_st *st, cb_error *err) {
    const json_t *v = NULL, *cfg = NULL;
    int rc;
    if (!json_is_object(j)) return cb_fail(err, CB_EFORMAT, "features: not a JSON object");
    if ((rc = jget(j, "format", JSON_STRING, &v, err))) return rc;
    if (strcmp(json_string_value(v), FEATURES_FORMAT))
        return cb_fail(err, CB_EFORMAT, "features: format is '%s', expected '%s'", json_string_value(v), FEATURES_FORMAT);
    uint32_t version;
    if ((rc = jget_u32(j, "version", &version, err))) return rc;
    if (version != FEATURES_VERSION)
        return cb_fail(err, CB_EFORMAT, "features: version %u is not supported (this build reads %d)", version, FEATURES_VERSION);
    if ((rc = jget_bool(j, "prejoined", &f->prejoined, err))) return rc;
    /* configuration */
    if ((rc = jget(j, "config", JSON_OBJECT, &cfg, err))) return rc;
    cb_feature_config *c = &f->cfg;
    cb_feature_config_default(c);
    double prior;
    const json_t *age = NULL, *rows = NULL, *excl;
    if ((rc = jget_bool(cfg, "user_attrs", &c->user_attrs, err)) || (rc = jget_bool(cfg, "user_stats", &c->user_stats, err)) ||
        (rc = jget_bool(cfg, "user_genres", &c->user_genres, err)) || (rc = jget_bool(cfg, "item_year", &c->item_year, err)) ||
        (rc = jget_bool(cfg, "item_genres", &c->item_genres, err)) || (rc = jget_bool(cfg, "item_stats", &c->item_stats, err)) ||
        (rc = jget_bool(cfg, "item_attrs", &c->item_attrs, err)) ||
        (rc = jget_u32(cfg, "top_k_popular", &c->top_k_popular, err)) ||
        (rc = jget_u32(cfg, "max_cat_levels", &c->max_cat_levels, err)) ||
        (rc = jget_u32(cfg, "max_multi_levels", &c->max_multi_levels, err)) ||
        (rc = jget_f64(cfg, "item_prior", &prior, err)) || (rc = jget_u32(cfg, "user_skip_cols", &c->user_skip_cols, err)) ||
        (rc = jget_u32(cfg, "item_skip_cols", &c->item_skip_cols, err)) ||
        (rc = jget(cfg, "age_mode", JSON_STRING, &age, err)) || (rc = jget(cfg, "scaler_rows", JSON_STRING, &rows, err)))
        return rc;
    c->item_prior = (float)prior;
    c->age_mode = !strcmp(json_string_value(age), "buckets") ? CB_AGE_BUCKETS
                  : !strcmp(json_string_value(age), "standardise") ? CB_AGE_STANDARDISE : (cb_age_mode)-1;
    c->scaler_rows = !strcmp(json_string_value(rows), "all") ? CB_SCALER_ALL
                     : !strcmp(json_string_value(rows), "train") ? CB_SCALER_TRAIN : (cb_scaler_rows)-1;
    excl = json_object_get(cfg, "exclude_cols");
    if (excl && json_is_string(excl)) {
        if (!(f->exclude_cols = cb_strdup(json_string_value(excl), err))) return CB_ENOMEM;
    } else if (excl && !json_is_null(excl)) {
        return cb_fail(err, CB_EFORMAT, "features: 'exclude_cols' is not a string");
    }
    c->exclude_cols = f->exclude_cols;
    const char *why = cb_feature_config_check(c);
    if (why) return cb_fail(err, CB_EFORMAT, "features: configuration: %s", why);
    /* data */
    if ((rc = jget_f64(j, "global_mean", &f->global_mean, err))) return rc;
    if ((rc = jget_u32(j, "n_items", &f->n_items, err))) return rc;
    if (f->n_items == UINT32_MAX) return cb_fail(err, CB_EFORMAT, "features: 'n_items' out of range");
    if ((rc = jget_str_array(j, "genres", UINT32_MAX, &f->genres, &f->n_genres, err))) return rc;
    if ((rc = facets_from_json(f, json_object_get(j, "facets"), err))) return rc;
    if ((rc = cb_feat_build_genre_vocab(f, err))) return rc == CB_ENOMEM ? rc : CB_EFORMAT;
    uint32_t n, nnz;
    if ((rc = items_u32(j, st, "item_genre_off", f->n_items + 1, &f->item_genre_off, &n, err))) return rc;
    if ((rc = items_u32(j, st, "item_genre_val", UINT32_MAX, &f->item_genre_val, &nnz, err))) return rc;
    if (f->item_genre_off[0] != 0 || f->item_genre_off[f->n_items] != nnz)
        return cb_fail(err, CB_EFORMAT, "features: item genre offsets do not match the %u genre entries", nnz);
    for (uint32_t i = 0; i < f->n_items; i++)
        if (f->item_genre_off[i] > f->item_genre_off[i + 1])
            return cb_fail(err, CB_EFORMAT, "features: item genre offsets decrease at item %u", i);
    for (uint32_t k = 0; k < nnz; k++)
        if (f->item_genre_val[k] >= f->n_genres)
            return cb_fail(err, CB_EFORMAT, "features: item genre entry %u is %u, only %u genres", k, f->item_genre_val[k],
                           f->n_genres);
    if ((rc = items_u32(j, st, "item_count", f->n_items, &f->item_count, &n, err))) return rc;
    if (st && (rc = st_get_array(st, "item_mean", CB_ST_F32, f->n_items, (void **)&f->item_mean, &n, err))) return rc;
    for (uint32_t i = 0; st && i < f->n_items; i++)
        if (!isfinite(f->item_mean[i]))
            return cb_fail(err, CB_EFORMAT, "%s: features: item_mean[%u] is not finite", cb_st_path(st), i);
    double *means = NULL;
    if (!st && (rc = jget_f64_array(j, "item_mean", f->n_items, &means, err))) return rc;
    if (!st) f->item_mean = cb_malloc((size_t)(f->n_items ? f->n_items : 1) * sizeof *f->item_mean, err);
    if (!f->item_mean) {
        free(means);
        return CB_ENOMEM;
    }
    for (uint32_t i = 0; means && i < f->n_items; i++) f->item_mean[i] = (float)means[i];
    free(means);
    if ((rc = jget_u32_array(j, "top_items", UINT32_MAX, &f->top_items, &f->top_k, err))) return rc;
    uint32_t n_ids;
    if ((rc = jget_str_array(j, "top_item_ids", f->top_k, &f->top_item_ids, &n_ids, err))) {
        f->top_item_ids = NULL;
        return rc;
    }
    if ((rc = cb_feat_build_top_pos(f, err))) return rc;
    if ((rc = jget_bool(j, "year_from_title", &f->year_from_title, err))) return rc;
    if ((rc = side_from_json(f, &f->user, json_object_get(j, "user"), true, err))) return rc;
    if ((rc = side_from_json(f, &f->item, json_object_get(j, "item"), false, err))) return rc;
    return CB_OK;
}

int cb_features_from_json(cb_features **out, const json_t *j, cb_error *err) {
    return cb_features_from_json_st(out, j, NULL, err);
}

static const char *const item_arrays[] = {"item_genre_off", "item_genre_val", "item_count", "item_mean"};

json_t *cb_features_to_json_st(const cb_features *f, cb_st_writer *w, cb_error *err) {
    json_t *j = cb_features_to_json(f, err);
    if (!j) return NULL;
    int64_t n[4] = {(int64_t)f->n_items + 1, f->item_genre_off[f->n_items], f->n_items, f->n_items};
    const void *data[4] = {f->item_genre_off, f->item_genre_val, f->item_count, f->item_mean};
    for (int k = 0; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "features.%s", item_arrays[k]);
        if (cb_st_add(w, name, k == 3 ? CB_ST_F32 : CB_ST_I32, &n[k], 1, data[k], err)) {
            json_decref(j);
            return NULL;
        }
        json_object_del(j, item_arrays[k]);
    }
    return j;
}

int cb_features_from_json_st(cb_features **out, const json_t *j, const cb_st *st, cb_error *err) {
    *out = NULL;
    cb_features *f = cb_calloc(1, sizeof *f, err);
    if (!f) return CB_ENOMEM;
    int rc = features_from_json(f, j, st, err);
    if (rc) {
        cb_features_free(f);
        return rc;
    }
    *out = f;
    return CB_OK;
}
