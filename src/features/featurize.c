/* featurize — the fitted feature transform (see featurize.h for the feature
 * list): fitting it on the training ratings, the user and item tables, the
 * same rows for a new user or item (cold start), and the accessors. Its
 * layout is features_internal.h; saving and loading it is features_json.c.
 *
 * A transform is two "sides" (user, item), each an ordered list of blocks. A
 * block turns one source (an attribute column, the user's ratings, the item's
 * statistics...) into `width` consecutive features. Every row is computed in
 * two steps: the raw values, then (x - mean) / std per dimension, with
 * mean 0 / std 1 on dimensions that are not standardised. The table path
 * (dataset rows) and the cold-start path (cb_user_input) share the code that
 * derives features from ratings, so a known user's row is the same both ways. */
#include "features/features_internal.h"
#include "data/textutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_AGE_BUCKETS 7
static const float age_edges[N_AGE_BUCKETS - 1] = {18, 25, 35, 45, 50, 56};
static const char *const age_bucket_name[N_AGE_BUCKETS] = {"<18",   "18-24", "25-34", "35-44",
                                                           "45-49", "50-55", "56+"};

const char *const cb_feat_block_type_name[B_N_TYPES] = {
    NULL, "cat", "num", "age_buckets", "multi", "user_count", "user_mean", "genre_avg",
    "genre_frac", "top_items", "year", "item_genres", "item_mean", "item_count", "raw", "text"};

/* ------------------------------------------------------------------ config */

void cb_feature_config_default(cb_feature_config *c) {
    memset(c, 0, sizeof *c);
    c->user_attrs = c->user_stats = c->user_genres = true;
    c->item_year = c->item_genres = c->item_stats = c->item_attrs = true;
    c->top_k_popular = 1000;
    c->age_mode = CB_AGE_STANDARDISE;
    c->max_cat_levels = 64;
    c->max_multi_levels = 50;
    c->item_prior = 5.0f;
    c->exclude_cols = NULL;
    c->user_skip_cols = CB_SKIP_FROM_DATASET;
    c->item_skip_cols = CB_SKIP_FROM_DATASET;
    c->scaler_rows = CB_SCALER_ALL;
}

const char *cb_feature_config_check(const cb_feature_config *c) {
    if (!c) return "no feature configuration";
    if (c->age_mode != CB_AGE_STANDARDISE && c->age_mode != CB_AGE_BUCKETS) return "age_mode must be standardise or buckets";
    if (c->scaler_rows != CB_SCALER_TRAIN && c->scaler_rows != CB_SCALER_ALL) return "scaler_rows must be train or all";
    if (!(c->item_prior >= 0) || !isfinite(c->item_prior)) return "item_prior must be a finite number >= 0";
    if (c->top_k_popular > 10000000) return "top_k_popular is unreasonably large (> 10,000,000)";
    if (c->max_cat_levels > 1000000 || c->max_multi_levels > 1000000) return "level caps must be <= 1,000,000";
    return NULL;
}

/* ------------------------------------------------------------------ small helpers */

void cb_feat_free_strv(char **v, uint32_t n) {
    if (!v) return;
    for (uint32_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void side_free(fside *s) {
    for (uint32_t b = 0; b < s->n_blocks; b++) {
        free(s->blocks[b].col);
        cb_feat_free_strv(s->blocks[b].levels, s->blocks[b].n_levels);
        cb_vocab_free(s->blocks[b].vocab);
        free(s->blocks[b].idf);
    }
    free(s->blocks);
    free(s->mean);
    free(s->std);
    cb_feat_free_strv(s->names, s->dim);
    cb_feat_free_strv(s->ignored, s->n_ignored);
    memset(s, 0, sizeof *s);
}

void cb_features_free(cb_features *f) {
    if (!f) return;
    free(f->exclude_cols);
    cb_feat_free_strv(f->genres, f->n_genres);
    cb_vocab_free(f->genre_vocab);
    free(f->item_genre_off);
    free(f->item_genre_val);
    free(f->item_count);
    free(f->item_mean);
    free(f->top_items);
    cb_feat_free_strv(f->top_item_ids, f->top_k);
    free(f->top_pos);
    cb_feat_free_strv(f->facet_cols, f->n_facets);
    cb_feat_free_strv(f->facet_seps, f->n_facets);
    free(f->facet_hash);
    free(f->value_facet);
    side_free(&f->user);
    side_free(&f->item);
    free(f);
}

static char *str_printf(cb_error *err, const char *fmt, ...) CB_PRINTF(2, 3);
static char *str_printf(cb_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        cb_fail(err, CB_EINVAL, "cannot format a feature name");
        return NULL;
    }
    char *s = cb_malloc((size_t)n + 1, err);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Is `name` in the comma-separated list `list`? */
/* The next name of a comma-separated list at *p (blanks around it
 * trimmed) and its length; *p moves past it. NULL at the list's end. */
static const char *csv_next(const char **p, size_t *len) {
    if (!*p || !**p) return NULL;
    const char *s = *p, *q = strchr(s, ',');
    size_t n = q ? (size_t)(q - s) : strlen(s);
    *p = q ? q + 1 : s + n;
    while (n && *s == ' ') s++, n--;
    while (n && s[n - 1] == ' ') n--;
    *len = n;
    return s;
}

static bool in_csv_list(const char *list, const char *name) {
    if (!name) return false;
    size_t n = strlen(name), len;
    for (const char *p = list, *s; (s = csv_next(&p, &len));)
        if (len == n && !memcmp(s, name, n)) return true;
    return false;
}

/* Year from a title "Heat (1995)" (the loaders' rule); NAN if none. */
static float year_from_title(const char *t) { return t ? cb_year_from_title(t, strlen(t)) : NAN; }

static int age_bucket(double age) {
    int b = 0;
    while (b < N_AGE_BUCKETS - 1 && age >= age_edges[b]) b++;
    return b;
}

static double shrunk_mean(const cb_features *f, double sum, double count) {
    double prior = f->cfg.item_prior;
    if (count + prior <= 0) return f->global_mean;
    return (sum + prior * f->global_mean) / (count + prior);
}

/* ------------------------------------------------------------------ blocks */

uint32_t cb_feat_block_width(const cb_features *f, const fblock *b) {
    switch (b->type) {
    case B_CAT: case B_MULTI: return b->n_levels;
    case B_NUM: case B_YEAR: return 1u + (b->missing_flag ? 1u : 0u);
    case B_AGE_BUCKETS: return N_AGE_BUCKETS;
    case B_GENRE_AVG: case B_GENRE_FRAC: case B_ITEM_GENRES: return f->n_genres;
    case B_TOP_ITEMS: return f->top_k;
    case B_TEXT: return b->buckets;
    default: return 1;
    }
}

/* Is dimension k of block b standardised? */
static bool block_scaled(const fblock *b, uint32_t k) {
    switch (b->type) {
    case B_NUM: case B_YEAR: return k == 0;
    case B_USER_COUNT: case B_USER_MEAN: case B_GENRE_AVG: case B_ITEM_MEAN: case B_ITEM_COUNT:
    case B_RAW: return true;
    default: return false;
    }
}

fblock *cb_feat_side_add(fside *s, int type, const char *col, cb_error *err) {
    fblock *nb = cb_realloc_array(s->blocks, s->n_blocks + 1, sizeof *nb, err);
    if (!nb) return NULL;
    s->blocks = nb;
    fblock *b = &nb[s->n_blocks];
    memset(b, 0, sizeof *b);
    b->type = type;
    b->token_rule = CB_TEXT_TOKEN_RULE; /* fitted now; a loaded block says its own */
    if (col) {
        b->col = cb_strdup(col, err);
        if (!b->col) return NULL;
    }
    s->n_blocks++;
    return b;
}

static int side_ignore(fside *s, const char *col, cb_error *err) {
    char **n = cb_realloc_array(s->ignored, s->n_ignored + 1, sizeof *n, err);
    if (!n) return CB_ENOMEM;
    s->ignored = n;
    if (!(n[s->n_ignored] = cb_strdup(col, err))) return CB_ENOMEM;
    s->n_ignored++;
    return CB_OK;
}

int cb_feat_block_build_vocab(fblock *b, cb_error *err) {
    b->vocab = cb_vocab_create(err);
    if (!b->vocab) return CB_ENOMEM;
    for (uint32_t l = 0; l < b->n_levels; l++) {
        uint32_t idx;
        bool added;
        int rc = cb_vocab_intern(b->vocab, b->levels[l], strlen(b->levels[l]), &idx, &added, err);
        if (rc) return rc;
        if (!added) return cb_fail(err, CB_EFORMAT, "column '%s': level '%s' appears twice", b->col ? b->col : "?", b->levels[l]);
    }
    return CB_OK;
}

/* Is value g one of the genre column's (or a model without facets)? */
static bool is_genre_value(const cb_features *f, uint32_t g) {
    return !f->value_facet || (int32_t)f->value_facet[g] == f->genre_facet;
}

/* Name of a per-value feature: genres keep "genre_avg[G](z)", "genre_frac[G]",
 * "genre[G]"; other content columns "tags_avg[jazz](z)", "tags_frac[jazz]",
 * "tags[jazz]" (categorical: "brand=Acme"). */
static char *value_feature_name(const cb_features *f, int type, uint32_t g, cb_error *err) {
    const char *v = f->genres[g];
    if (is_genre_value(f, g))
        return type == B_GENRE_AVG ? str_printf(err, "genre_avg[%s](z)", v)
               : type == B_GENRE_FRAC ? str_printf(err, "genre_frac[%s]", v) : str_printf(err, "genre[%s]", v);
    uint32_t k = f->value_facet[g];
    const char *c = f->facet_cols[k];
    if (type == B_GENRE_AVG) return str_printf(err, "%s_avg[%s](z)", c, v);
    if (type == B_GENRE_FRAC) return str_printf(err, "%s_frac[%s]", c, v);
    return f->facet_seps[k][0] ? str_printf(err, "%s[%s]", c, v) : str_printf(err, "%s=%s", c, v);
}

/* Offsets, dimension, names; mean/std allocated as the identity when absent. */
int cb_feat_side_finish(cb_features *f, fside *s, bool is_user, cb_error *err) {
    uint32_t dim = 0;
    for (uint32_t b = 0; b < s->n_blocks; b++) {
        s->blocks[b].offset = dim;
        s->blocks[b].width = cb_feat_block_width(f, &s->blocks[b]);
        if (s->blocks[b].width > UINT32_MAX - dim) return cb_fail(err, CB_EINVAL, "feature dimension overflows");
        dim += s->blocks[b].width;
    }
    s->dim = dim;
    if (!s->mean) {
        s->mean = cb_calloc(dim ? dim : 1, sizeof *s->mean, err);
        s->std = cb_calloc(dim ? dim : 1, sizeof *s->std, err);
        if (!s->mean || !s->std) return CB_ENOMEM;
        for (uint32_t j = 0; j < dim; j++) s->std[j] = 1.0;
    }
    s->names = cb_calloc(dim ? dim : 1, sizeof *s->names, err);
    if (!s->names) return CB_ENOMEM;
    for (uint32_t bi = 0; bi < s->n_blocks; bi++) {
        const fblock *b = &s->blocks[bi];
        const char *col = b->col ? b->col : "";
        for (uint32_t k = 0; k < b->width; k++) {
            char *nm = NULL;
            switch (b->type) {
            case B_CAT: nm = str_printf(err, "%s=%s", col, b->levels[k]); break;
            case B_MULTI: nm = str_printf(err, "%s[%s]", col, b->levels[k]); break;
            case B_NUM: nm = k == 0 ? str_printf(err, "%s(z)", col) : str_printf(err, "%s_missing", col); break;
            case B_YEAR: nm = k == 0 ? str_printf(err, "year(z)") : str_printf(err, "year_missing"); break;
            case B_AGE_BUCKETS: nm = str_printf(err, "%s[%s]", col, age_bucket_name[k]); break;
            case B_USER_COUNT: case B_ITEM_COUNT: nm = str_printf(err, "rating_count(log1p,z)"); break;
            case B_USER_MEAN: nm = str_printf(err, "rating_mean(z)"); break;
            case B_ITEM_MEAN: nm = str_printf(err, "rating_mean(shrunk,z)"); break;
            case B_GENRE_AVG: case B_GENRE_FRAC: case B_ITEM_GENRES: nm = value_feature_name(f, b->type, k, err); break;
            case B_TOP_ITEMS: nm = str_printf(err, "top_item[%s]", f->top_item_ids[k]); break;
            case B_RAW: nm = str_printf(err, "%s", col); break;
            case B_TEXT: nm = str_printf(err, "%s[#%u]", col, k); break;
            default: return cb_fail(err, CB_EFORMAT, "unknown %s feature block type %d", is_user ? "user" : "item", b->type);
            }
            if (!nm) return CB_ENOMEM;
            s->names[b->offset + k] = nm;
        }
    }
    return CB_OK;
}

int cb_feat_build_top_pos(cb_features *f, cb_error *err) {
    f->top_pos = cb_malloc((size_t)(f->n_items ? f->n_items : 1) * sizeof *f->top_pos, err);
    if (!f->top_pos) return CB_ENOMEM;
    for (uint32_t i = 0; i < f->n_items; i++) f->top_pos[i] = -1;
    for (uint32_t k = 0; k < f->top_k; k++) {
        if (f->top_items[k] >= f->n_items || f->top_pos[f->top_items[k]] >= 0)
            return cb_fail(err, CB_EFORMAT, "top item list: index %u out of range or repeated", f->top_items[k]);
        f->top_pos[f->top_items[k]] = (int32_t)k;
    }
    return CB_OK;
}

const char *cb_feat_value_key(const cb_features *f, uint32_t facet, const char *value, size_t len, char *buf,
                              size_t size) {
    if ((int32_t)facet == f->genre_facet || facet >= f->n_facets) {
        if (len + 1 > size) return NULL;
        memcpy(buf, value, len);
        buf[len] = '\0';
        return buf;
    }
    size_t cl = strlen(f->facet_cols[facet]);
    if (cl + len + 2 > size) return NULL;
    memcpy(buf, f->facet_cols[facet], cl);
    buf[cl] = '\x1f';
    memcpy(buf + cl + 1, value, len);
    buf[cl + 1 + len] = '\0';
    return buf;
}

int cb_feat_build_genre_vocab(cb_features *f, cb_error *err) {
    f->genre_vocab = cb_vocab_create(err);
    if (!f->genre_vocab) return CB_ENOMEM;
    char buf[1024];
    for (uint32_t g = 0; g < f->n_genres; g++) {
        uint32_t idx, facet = f->value_facet ? f->value_facet[g] : 0;
        bool added;
        const char *key = is_genre_value(f, g) ? f->genres[g]
                          : cb_feat_value_key(f, facet, f->genres[g], strlen(f->genres[g]), buf, sizeof buf);
        if (!key) return cb_fail(err, CB_EFORMAT, "value '%.40s...' of column '%s' is too long", f->genres[g], f->facet_cols[facet]);
        int rc = cb_vocab_intern(f->genre_vocab, key, strlen(key), &idx, &added, err);
        if (rc) return rc;
        if (!added) return cb_fail(err, CB_EFORMAT, "genre '%s' appears twice", f->genres[g]);
    }
    return CB_OK;
}

/* ------------------------------------------------------------------ row computation */

/* Where a block reads its values in a dataset table (table path). */
typedef struct colmap {
    const cb_column *col; /* NULL: column absent -> missing */
    uint32_t *level_map;  /* CAT / MULTI: dataset level -> block level or CB_MISSING */
    uint32_t n_map;
} colmap;

static void colmaps_free(colmap *m, uint32_t n) {
    if (!m) return;
    for (uint32_t i = 0; i < n; i++) free(m[i].level_map);
    free(m);
}

static int col_kind_for_block(int type) {
    switch (type) {
    case B_CAT: return CB_COL_CATEGORICAL;
    case B_MULTI: case B_TEXT: return CB_COL_MULTI;
    default: return CB_COL_NUMERIC;
    }
}

bool cb_feat_block_has_column(int type) {
    return type == B_CAT || type == B_MULTI || type == B_NUM || type == B_AGE_BUCKETS || type == B_YEAR ||
           type == B_RAW || type == B_TEXT;
}

static int colmaps_make(colmap **out, const fside *s, const cb_table *t, cb_error *err) {
    colmap *m = cb_calloc(s->n_blocks ? s->n_blocks : 1, sizeof *m, err);
    if (!m) return CB_ENOMEM;
    for (uint32_t bi = 0; bi < s->n_blocks; bi++) {
        const fblock *b = &s->blocks[bi];
        if (!cb_feat_block_has_column(b->type) || !b->col) continue;
        int c = cb_table_find(t, b->col);
        if (c < 0) continue;
        const cb_column *col = &t->cols[c];
        if ((int)col->kind != col_kind_for_block(b->type)) {
            colmaps_free(m, s->n_blocks);
            return cb_fail(err, CB_EINVAL, "column '%s' has another kind than when the features were fitted", b->col);
        }
        m[bi].col = col;
        if (b->type == B_CAT || b->type == B_MULTI || b->type == B_TEXT) {
            uint32_t nl = cb_vocab_size(col->levels);
            m[bi].n_map = nl;
            m[bi].level_map = cb_malloc((size_t)(nl ? nl : 1) * sizeof(uint32_t), err);
            if (!m[bi].level_map) {
                colmaps_free(m, s->n_blocks);
                return CB_ENOMEM;
            }
            for (uint32_t l = 0; l < nl; l++) {
                const char *name = cb_vocab_name(col->levels, l);
                int64_t k = cb_vocab_find(b->vocab, name, strlen(name));
                m[bi].level_map[l] = k < 0 ? CB_MISSING : (uint32_t)k;
            }
        }
    }
    *out = m;
    return CB_OK;
}

static void write_num(const fblock *b, double v, float *x) {
    if (isnan(v)) {
        x[b->offset] = (float)b->fill;
        if (b->missing_flag) x[b->offset + 1] = 1.0f;
    } else {
        x[b->offset] = (float)v;
    }
}

static void write_age_bucket(const fblock *b, double v, float *x) {
    if (!isnan(v)) x[b->offset + (uint32_t)age_bucket(v)] = 1.0f;
}

/* Add one token's idf to its hashed bucket (level: its index in b->levels, or
 * CB_MISSING for a token no training item had: the largest idf). */
static void text_add_token(const fblock *b, uint32_t level, const char *tok, size_t len, float *x) {
    double idf = level != CB_MISSING && level < b->n_levels ? b->idf[level] : b->fill;
    x[b->offset + cb_value_bucket(tok, len, b->buckets)] += (float)idf;
}

static void text_normalise(const fblock *b, float *x) {
    double ss = 0;
    for (uint32_t k = 0; k < b->buckets; k++) ss += (double)x[b->offset + k] * x[b->offset + k];
    if (ss > 0)
        for (uint32_t k = 0; k < b->buckets; k++) x[b->offset + k] = (float)(x[b->offset + k] / sqrt(ss));
}

/* A text given as a string (cold start): tokenised as the loader does. */
static void text_from_string(const fblock *b, const char *s, float *x) {
    char tok[128];
    size_t len;
    const char *p = s;
    while ((len = cb_text_token_rule(&p, s + strlen(s), tok, sizeof tok, b->token_rule))) {
        int64_t l = cb_vocab_find(b->vocab, tok, len);
        text_add_token(b, l < 0 ? CB_MISSING : (uint32_t)l, tok, len, x);
    }
    text_normalise(b, x);
}

int cb_features_check_token_rules(const cb_features *f, const char *what, cb_error *err) {
    if (!f) return CB_OK;
    const fside *sides[2] = {&f->user, &f->item};
    for (int k = 0; k < 2; k++)
        for (uint32_t i = 0; i < sides[k]->n_blocks; i++) {
            const fblock *b = &sides[k]->blocks[i];
            if (b->type == B_TEXT && b->token_rule != CB_TEXT_TOKEN_RULE)
                return cb_fail(err, CB_EINVAL,
                               "%sthe model's text column '%s' was split into words by an older rule (%d) than "
                               "the data is read by (%d): its words would not match; train anew",
                               what, b->col, b->token_rule, CB_TEXT_TOKEN_RULE);
        }
    return CB_OK;
}

/* Attribute block from a dataset row (raw values). */
static void write_attr_from_table(const cb_dataset *ds, const fblock *b, const colmap *m, uint32_t row,
                                  float *x) {
    const cb_column *col = m->col;
    switch (b->type) {
    case B_NUM: write_num(b, col ? col->num[row] : NAN, x); break;
    case B_YEAR:
        if (col) write_num(b, col->num[row], x);
        else write_num(b, (ds->titles && !b->col) ? year_from_title(ds->titles[row]) : NAN, x);
        break;
    case B_AGE_BUCKETS: write_age_bucket(b, col ? col->num[row] : NAN, x); break;
    case B_RAW: {
        float v = col ? col->num[row] : NAN;
        x[b->offset] = isnan(v) ? 0.0f : v;
        break;
    }
    case B_CAT:
        if (col) {
            uint32_t l = col->cat[row];
            if (l != CB_MISSING && l < m->n_map && m->level_map[l] != CB_MISSING) x[b->offset + m->level_map[l]] = 1.0f;
        }
        break;
    case B_MULTI:
        if (col)
            for (uint32_t k = col->off[row]; k < col->off[row + 1]; k++) {
                uint32_t l = col->val[k];
                if (l < m->n_map && m->level_map[l] != CB_MISSING) x[b->offset + m->level_map[l]] = 1.0f;
            }
        break;
    case B_TEXT:
        if (col) {
            for (uint32_t k = col->off[row]; k < col->off[row + 1]; k++) {
                uint32_t l = col->val[k];
                const char *tok = cb_vocab_name(col->levels, l);
                if (l < m->n_map) text_add_token(b, m->level_map[l], tok, strlen(tok), x);
            }
            text_normalise(b, x);
        }
        break;
    default: break;
    }
}

/* Scratch for the rating-derived user features. */
typedef struct user_scratch {
    double *genre_sum;     /* [n_genres] */
    uint32_t *genre_cnt;   /* [n_genres] */
    unsigned char *has_pref; /* [n_genres] */
    float *pref_y;         /* [n_genres] */
} user_scratch;

static int user_scratch_init(user_scratch *s, uint32_t n_genres, cb_error *err) {
    size_t n = n_genres ? n_genres : 1;
    s->genre_sum = cb_calloc(n, sizeof *s->genre_sum, err);
    s->genre_cnt = cb_calloc(n, sizeof *s->genre_cnt, err);
    s->has_pref = cb_calloc(n, 1, err);
    s->pref_y = cb_calloc(n, sizeof *s->pref_y, err);
    return (s->genre_sum && s->genre_cnt && s->has_pref && s->pref_y) ? CB_OK : CB_ENOMEM;
}

static void user_scratch_free(user_scratch *s) {
    free(s->genre_sum);
    free(s->genre_cnt);
    free(s->has_pref);
    free(s->pref_y);
}

/* The rating-derived user blocks (engineered datasets), raw values. The
 * explicit preferences are in s->has_pref / s->pref_y (cleared by the caller
 * when none). Shared by the table and the cold-start paths. */
static void write_user_rating_blocks(const cb_features *f, const cb_item_rating *r, size_t n,
                                     user_scratch *s, float *x) {
    uint32_t G = f->n_genres;
    double sum = 0;
    memset(s->genre_sum, 0, (G ? G : 1) * sizeof *s->genre_sum);
    memset(s->genre_cnt, 0, (G ? G : 1) * sizeof *s->genre_cnt);
    for (size_t k = 0; k < n; k++) {
        uint32_t it = r[k].item;
        double y = r[k].y;
        sum += y;
        for (uint32_t p = f->item_genre_off[it]; p < f->item_genre_off[it + 1]; p++) {
            uint32_t g = f->item_genre_val[p];
            s->genre_sum[g] += y;
            s->genre_cnt[g]++;
        }
    }
    double mean_u = n ? sum / (double)n : f->global_mean;
    uint32_t n_prefs = 0;
    for (uint32_t g = 0; g < G; g++) n_prefs += s->has_pref[g];
    double denom = (double)n + (double)n_prefs;
    for (uint32_t bi = 0; bi < f->user.n_blocks; bi++) {
        const fblock *b = &f->user.blocks[bi];
        float *xb = x + b->offset;
        switch (b->type) {
        case B_USER_COUNT: xb[0] = (float)log1p((double)n); break;
        case B_USER_MEAN: xb[0] = (float)mean_u; break;
        case B_GENRE_AVG:
            for (uint32_t g = 0; g < G; g++) {
                double a = s->has_pref[g] ? (double)s->pref_y[g]
                           : s->genre_cnt[g] ? s->genre_sum[g] / (double)s->genre_cnt[g] : mean_u;
                xb[g] = (float)a;
            }
            break;
        case B_GENRE_FRAC:
            for (uint32_t g = 0; g < G; g++)
                xb[g] = denom > 0 ? (float)(((double)s->genre_cnt[g] + s->has_pref[g]) / denom) : 0.0f;
            break;
        case B_TOP_ITEMS:
            for (size_t k = 0; k < n; k++) {
                int32_t p = f->top_pos[r[k].item];
                if (p >= 0) xb[p] = 1.0f;
            }
            break;
        default: break;
        }
    }
}

static void apply_scaler(const fside *s, float *x) {
    for (uint32_t j = 0; j < s->dim; j++) x[j] = (float)(((double)x[j] - s->mean[j]) / s->std[j]);
}

/* Context for computing rows of a dataset. */
typedef struct table_ctx {
    const cb_features *f;
    const cb_dataset *ds;
    colmap *umap, *imap;
    uint32_t *u_off;        /* [n_users + 1] CSR of training ratings by user */
    cb_item_rating *u_r;    /* [n_train] in train_idx order within a user */
    uint32_t n_users;
    user_scratch us;
} table_ctx;

static void table_ctx_free(table_ctx *c) {
    if (c->f) {
        colmaps_free(c->umap, c->f->user.n_blocks);
        colmaps_free(c->imap, c->f->item.n_blocks);
    }
    free(c->u_off);
    free(c->u_r);
    user_scratch_free(&c->us);
    memset(c, 0, sizeof *c);
}

static int table_ctx_init(table_ctx *c, const cb_features *f, const cb_dataset *ds, const uint32_t *train_idx,
                          size_t n_train, bool users, cb_error *err) {
    memset(c, 0, sizeof *c);
    c->f = f;
    c->ds = ds;
    int rc;
    if (cb_dataset_n_items(ds) != f->n_items)
        return cb_fail(err, CB_EINVAL, "dataset has %u items, the features were fitted on %u", cb_dataset_n_items(ds),
                       f->n_items);
    if (users) {
        if ((rc = colmaps_make(&c->umap, &f->user, &ds->user_attr, err))) return rc;
        if ((rc = user_scratch_init(&c->us, f->n_genres, err))) return rc;
        c->n_users = cb_dataset_n_users(ds);
        c->u_off = cb_calloc((size_t)c->n_users + 1, sizeof *c->u_off, err);
        c->u_r = cb_malloc((n_train ? n_train : 1) * sizeof *c->u_r, err);
        if (!c->u_off || !c->u_r) return CB_ENOMEM;
        for (size_t k = 0; k < n_train; k++) {
            if (train_idx[k] >= ds->n_ratings)
                return cb_fail(err, CB_EINVAL, "training index %u out of range (%zu ratings)", train_idx[k], ds->n_ratings);
            const cb_rating *r = &ds->ratings[train_idx[k]];
            if (r->user >= c->n_users || r->item >= f->n_items)
                return cb_fail(err, CB_EINVAL, "rating %u refers to an unknown user or item", train_idx[k]);
            c->u_off[r->user + 1]++;
        }
        for (uint32_t u = 0; u < c->n_users; u++) c->u_off[u + 1] += c->u_off[u];
        uint32_t *pos = cb_malloc(((size_t)c->n_users + 1) * sizeof *pos, err);
        if (!pos) return CB_ENOMEM;
        memcpy(pos, c->u_off, ((size_t)c->n_users + 1) * sizeof *pos);
        for (size_t k = 0; k < n_train; k++) {
            const cb_rating *r = &ds->ratings[train_idx[k]];
            c->u_r[pos[r->user]++] = (cb_item_rating){r->item, r->y};
        }
        free(pos);
    } else {
        if ((rc = colmaps_make(&c->imap, &f->item, &ds->item_attr, err))) return rc;
    }
    return CB_OK;
}

/* Raw (unscaled) user row u. */
static void table_user_row(table_ctx *c, uint32_t u, float *x) {
    const cb_features *f = c->f;
    memset(x, 0, (size_t)f->user.dim * sizeof *x);
    for (uint32_t bi = 0; bi < f->user.n_blocks; bi++)
        if (cb_feat_block_has_column(f->user.blocks[bi].type) && u < c->ds->user_attr.n_rows)
            write_attr_from_table(c->ds, &f->user.blocks[bi], &c->umap[bi], u, x);
        else if (cb_feat_block_has_column(f->user.blocks[bi].type)) /* no attribute row: all missing */
            write_attr_from_table(c->ds, &f->user.blocks[bi], &(colmap){0}, u, x);
    if (!f->prejoined) {
        memset(c->us.has_pref, 0, f->n_genres ? f->n_genres : 1);
        write_user_rating_blocks(f, c->u_r + c->u_off[u], c->u_off[u + 1] - c->u_off[u], &c->us, x);
    }
}

/* The rating-derived / genre item blocks from given statistics, raw values. */
static void write_item_stat_blocks(const cb_features *f, const uint32_t *genres, uint32_t n_genres,
                                   double count, double mean_shrunk, float *x) {
    for (uint32_t bi = 0; bi < f->item.n_blocks; bi++) {
        const fblock *b = &f->item.blocks[bi];
        switch (b->type) {
        case B_ITEM_GENRES:
            for (uint32_t k = 0; k < n_genres; k++) x[b->offset + genres[k]] = 1.0f;
            break;
        case B_ITEM_MEAN: x[b->offset] = (float)mean_shrunk; break;
        case B_ITEM_COUNT: x[b->offset] = (float)log1p(count); break;
        default: break;
        }
    }
}

static void table_item_row(table_ctx *c, uint32_t i, float *x) {
    const cb_features *f = c->f;
    memset(x, 0, (size_t)f->item.dim * sizeof *x);
    for (uint32_t bi = 0; bi < f->item.n_blocks; bi++)
        if (cb_feat_block_has_column(f->item.blocks[bi].type))
            write_attr_from_table(c->ds, &f->item.blocks[bi], i < c->ds->item_attr.n_rows ? &c->imap[bi] : &(colmap){0}, i, x);
    if (!f->prejoined)
        write_item_stat_blocks(f, f->item_genre_val + f->item_genre_off[i], f->item_genre_off[i + 1] - f->item_genre_off[i],
                               f->item_count[i], f->item_mean[i], x);
}

/* ------------------------------------------------------------------ fitting */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Levels of column `col` kept for a block: those used by rows with weight > 0,
 * the `cap` most frequent (ties by level index), in level-index order. */
static int choose_levels(fblock *b, const cb_column *col, const uint32_t *row_weight, uint32_t n_rows, uint32_t cap,
                         cb_error *err) {
    uint32_t nl = cb_vocab_size(col->levels);
    uint64_t *cnt = cb_calloc(nl ? nl : 1, sizeof *cnt, err);
    if (!cnt) return CB_ENOMEM;
    for (uint32_t r = 0; r < n_rows; r++) {
        if (!row_weight[r]) continue;
        if (col->kind == CB_COL_CATEGORICAL) {
            if (col->cat[r] != CB_MISSING && col->cat[r] < nl) cnt[col->cat[r]]++;
        } else {
            for (uint32_t k = col->off[r]; k < col->off[r + 1]; k++)
                if (col->val[k] < nl) cnt[col->val[k]]++;
        }
    }
    /* key = (UINT32_MAX - count) << 32 | level: ascending = most frequent first */
    uint64_t *key = cb_malloc((nl ? nl : 1) * sizeof *key, err);
    if (!key) {
        free(cnt);
        return CB_ENOMEM;
    }
    uint32_t n_used = 0;
    for (uint32_t l = 0; l < nl; l++)
        if (cnt[l]) {
            uint64_t c = cnt[l] > UINT32_MAX ? UINT32_MAX : cnt[l];
            key[n_used++] = ((uint64_t)(UINT32_MAX - c) << 32) | l;
        }
    free(cnt);
    qsort(key, n_used, sizeof *key, cmp_u64);
    uint32_t keep = n_used < cap ? n_used : cap;
    for (uint32_t k = 0; k < keep; k++) key[k] &= 0xffffffffu;
    qsort(key, keep, sizeof *key, cmp_u64);
    b->n_levels = keep;
    b->levels = cb_calloc(keep ? keep : 1, sizeof *b->levels, err);
    if (!b->levels) {
        free(key);
        return CB_ENOMEM;
    }
    for (uint32_t k = 0; k < keep; k++) {
        if (!(b->levels[k] = cb_strdup(cb_vocab_name(col->levels, (uint32_t)key[k]), err))) {
            free(key);
            return CB_ENOMEM;
        }
    }
    free(key);
    return cb_feat_block_build_vocab(b, err);
}

/* Training mean of a numeric column over rows with weight > 0 (0 if none). */
static double column_mean(const float *v, const uint32_t *row_weight, uint32_t n_rows, bool *any_missing) {
    double sum = 0;
    size_t n = 0;
    *any_missing = false;
    for (uint32_t r = 0; r < n_rows; r++) {
        if (!row_weight[r]) continue;
        if (isnan(v[r])) *any_missing = true;
        else sum += v[r], n++;
    }
    return n ? sum / (double)n : 0.0;
}

#define TEXT_DEFAULT_BUCKETS 128

/* A text column's block: every token some row has, with its idf over the
 * rows (documents) that have text: log((1 + N) / (1 + df)) + 1. Content,
 * not ratings: every row counts, rated or not. */
static int add_text_block(fside *s, const cb_column *col, uint32_t n_rows, cb_error *err) {
    fblock *b = cb_feat_side_add(s, B_TEXT, col->name, err);
    if (!b) return CB_ENOMEM;
    uint32_t nl = cb_vocab_size(col->levels), n_docs = 0;
    b->buckets = col->hash_buckets ? col->hash_buckets : TEXT_DEFAULT_BUCKETS;
    b->n_levels = nl;
    b->levels = cb_calloc((size_t)nl + 1, sizeof *b->levels, err);
    b->idf = cb_calloc((size_t)nl + 1, sizeof *b->idf, err);
    if (!b->levels || !b->idf) return CB_ENOMEM;
    for (uint32_t r = 0; r < n_rows; r++) {
        n_docs += col->off[r + 1] > col->off[r];
        for (uint32_t k = col->off[r]; k < col->off[r + 1]; k++) b->idf[col->val[k]] += 1.0;
    }
    for (uint32_t l = 0; l < nl; l++) {
        b->idf[l] = log((1.0 + n_docs) / (1.0 + b->idf[l])) + 1.0;
        if (!(b->levels[l] = cb_strdup(cb_vocab_name(col->levels, l), err))) return CB_ENOMEM;
    }
    b->fill = log(1.0 + n_docs) + 1.0;
    return cb_feat_block_build_vocab(b, err);
}

/* Blocks for the attribute columns of table t (engineered datasets). */
static int add_attr_blocks(cb_features *f, fside *s, const cb_table *t, const uint32_t *row_weight,
                           const int *skip_cols, int n_skip, int age_col, cb_error *err) {
    int rc;
    for (uint32_t c = 0; c < t->n_cols; c++) {
        const cb_column *col = &t->cols[c];
        bool skip = false;
        for (int k = 0; k < n_skip; k++) skip |= skip_cols[k] == (int)c;
        if (skip) continue;
        if (in_csv_list(f->exclude_cols, col->name)) {
            if ((rc = side_ignore(s, col->name, err))) return rc;
            continue;
        }
        if (col->kind == CB_COL_NUMERIC) {
            bool any_missing;
            double m = column_mean(col->num, row_weight, t->n_rows, &any_missing);
            if ((int)c == age_col && f->cfg.age_mode == CB_AGE_BUCKETS) {
                if (!cb_feat_side_add(s, B_AGE_BUCKETS, col->name, err)) return CB_ENOMEM;
            } else {
                fblock *b = cb_feat_side_add(s, B_NUM, col->name, err);
                if (!b) return CB_ENOMEM;
                b->fill = m;
                b->missing_flag = any_missing || (int)c == age_col;
            }
        } else if (col->text) {
            if ((rc = add_text_block(s, col, t->n_rows, err))) return rc;
        } else {
            fblock *b = cb_feat_side_add(s, col->kind == CB_COL_CATEGORICAL ? B_CAT : B_MULTI, col->name, err);
            if (!b) return CB_ENOMEM;
            uint32_t cap = col->kind == CB_COL_CATEGORICAL ? f->cfg.max_cat_levels : f->cfg.max_multi_levels;
            if ((rc = choose_levels(b, col, row_weight, t->n_rows, cap, err))) return rc;
            if (b->n_levels == 0) { /* nothing seen in training: drop, but accept the name */
                free(b->col);
                free(b->levels);
                cb_vocab_free(b->vocab);
                s->n_blocks--;
                if ((rc = side_ignore(s, col->name, err))) return rc;
            }
        }
    }
    return CB_OK;
}

static int add_raw_blocks(cb_features *f, fside *s, const cb_table *t, uint32_t skip, const char *what,
                          cb_error *err) {
    int rc;
    for (uint32_t c = 0; c < t->n_cols; c++) {
        const cb_column *col = &t->cols[c];
        if (c < skip || in_csv_list(f->exclude_cols, col->name)) {
            if ((rc = side_ignore(s, col->name, err))) return rc;
            continue;
        }
        if (col->kind != CB_COL_NUMERIC)
            return cb_fail(err, CB_EINVAL, "pre-joined %s column '%s' is not numeric", what, col->name);
        if (!cb_feat_side_add(s, B_RAW, col->name, err)) return CB_ENOMEM;
    }
    return CB_OK;
}

/* Is item column c a content column (facet) of an engineered dataset? The
 * genre-role column always; other categorical / multi columns when item
 * attributes are on and the column is not excluded. */
static bool is_facet_column(const cb_features *f, const cb_dataset *ds, uint32_t c) {
    const cb_table *t = &ds->item_attr;
    if (c >= t->n_cols || t->n_rows != f->n_items) return false;
    const cb_column *col = &t->cols[c];
    if (col->text) return false;
    if ((int)c == ds->roles.item_genres) return col->kind == CB_COL_MULTI && !in_csv_list(f->exclude_cols, col->name);
    return f->cfg.item_attrs && (col->kind == CB_COL_MULTI || col->kind == CB_COL_CATEGORICAL) &&
           !in_csv_list(f->exclude_cols, col->name);
}

static int facet_add(cb_features *f, const cb_column *col, cb_error *err) {
    uint32_t n = f->n_facets + 1;
    char **cols = cb_realloc_array(f->facet_cols, n, sizeof *cols, err);
    if (cols) f->facet_cols = cols;
    char **seps = cols ? cb_realloc_array(f->facet_seps, n, sizeof *seps, err) : NULL;
    if (seps) f->facet_seps = seps;
    uint32_t *hash = seps ? cb_realloc_array(f->facet_hash, n, sizeof *hash, err) : NULL;
    if (!hash) return CB_ENOMEM;
    f->facet_hash = hash;
    cols[n - 1] = seps[n - 1] = NULL;
    f->n_facets = n;
    hash[n - 1] = col->hash_buckets;
    if (!(cols[n - 1] = cb_strdup(col->name, err))) return CB_ENOMEM;
    const char *sep = col->kind == CB_COL_CATEGORICAL ? "" : col->sep[0] ? col->sep : "|";
    return (seps[n - 1] = cb_strdup(sep, err)) ? CB_OK : CB_ENOMEM;
}

/* Values of one facet column: every level of the genre column (as before
 * facets existed); of the others, the levels some training-rated item has —
 * all of them when a schema controls the column's vocabulary (generic
 * layout), else (MovieLens tags) the max_multi_levels / max_cat_levels most
 * frequent. map[level] receives the value index (CB_MISSING when not kept). */
static int facet_values(cb_features *f, const cb_column *col, bool all_levels, const uint32_t *item_w,
                        uint32_t *map, cb_error *err) {
    uint32_t nl = cb_vocab_size(col->levels);
    fblock kept = {.col = col->name};
    uint32_t cap = col->n_values_seen ? UINT32_MAX
                   : col->kind == CB_COL_CATEGORICAL ? f->cfg.max_cat_levels : f->cfg.max_multi_levels;
    int rc = all_levels ? CB_OK : choose_levels(&kept, col, item_w, f->n_items, cap, err);
    uint32_t n_new = all_levels ? nl : kept.n_levels;
    char **g = rc ? NULL : cb_realloc_array(f->genres, (size_t)f->n_genres + n_new + 1, sizeof *g, err);
    if (g) f->genres = g;
    uint32_t *vf = g ? cb_realloc_array(f->value_facet, (size_t)f->n_genres + n_new + 1, sizeof *vf, err) : NULL;
    if (vf) f->value_facet = vf;
    rc = rc ? rc : vf ? CB_OK : CB_ENOMEM;
    for (uint32_t l = 0; l < nl && !rc; l++) {
        const char *name = cb_vocab_name(col->levels, l);
        map[l] = CB_MISSING;
        if (!all_levels && cb_vocab_find(kept.vocab, name, strlen(name)) < 0) continue;
        map[l] = f->n_genres;
        vf[f->n_genres] = f->n_facets - 1;
        if (!(g[f->n_genres] = cb_strdup(name, err))) rc = CB_ENOMEM;
        else f->n_genres++;
    }
    cb_feat_free_strv(kept.levels, kept.n_levels);
    cb_vocab_free(kept.vocab);
    return rc;
}

/* Engineered datasets: the facets and every item's values (CSR over items,
 * facets in column order). */
static int fit_facets(cb_features *f, const cb_dataset *ds, const uint32_t *item_w, cb_error *err) {
    const cb_table *t = &ds->item_attr;
    uint32_t n_items = f->n_items;
    f->genre_facet = -1;
    uint32_t *fcol = cb_malloc((t->n_cols + 1) * sizeof *fcol, err);
    uint32_t **maps = cb_calloc(t->n_cols + 1, sizeof *maps, err);
    int rc = fcol && maps ? CB_OK : CB_ENOMEM;
    int gc = ds->roles.item_genres;
    uint32_t nf = 0;
    if (!rc && gc >= 0 && is_facet_column(f, ds, (uint32_t)gc)) fcol[nf++] = (uint32_t)gc;
    for (uint32_t c = 0; !rc && c < t->n_cols; c++)
        if ((int)c != gc && (int)c != ds->roles.item_year && is_facet_column(f, ds, c)) fcol[nf++] = c;
    for (uint32_t k = 0; !rc && k < nf; k++) {
        const cb_column *col = &t->cols[fcol[k]];
        if ((int)fcol[k] == gc) f->genre_facet = (int32_t)k;
        maps[k] = cb_malloc(((size_t)cb_vocab_size(col->levels) + 1) * sizeof **maps, err);
        if (!maps[k]) rc = CB_ENOMEM;
        if (!rc) rc = facet_add(f, col, err);
        if (!rc) rc = facet_values(f, col, (int)fcol[k] == gc, item_w, maps[k], err);
    }
    size_t nnz = 0;
    for (uint32_t k = 0; !rc && k < nf; k++)
        nnz += t->cols[fcol[k]].kind == CB_COL_MULTI ? t->cols[fcol[k]].off[n_items] : n_items;
    if (!rc && !(f->item_genre_val = cb_malloc((nnz ? nnz : 1) * sizeof *f->item_genre_val, err))) rc = CB_ENOMEM;
    size_t p = 0;
    for (uint32_t i = 0; !rc && i < n_items; i++) {
        f->item_genre_off[i] = (uint32_t)p;
        for (uint32_t k = 0; k < nf; k++) {
            const cb_column *col = &t->cols[fcol[k]];
            if (col->kind == CB_COL_CATEGORICAL) {
                if (col->cat[i] != CB_MISSING && maps[k][col->cat[i]] != CB_MISSING) f->item_genre_val[p++] = maps[k][col->cat[i]];
                continue;
            }
            for (uint32_t q = col->off[i]; q < col->off[i + 1]; q++)
                if (maps[k][col->val[q]] != CB_MISSING) f->item_genre_val[p++] = maps[k][col->val[q]];
        }
    }
    if (!rc) f->item_genre_off[n_items] = (uint32_t)p;
    for (uint32_t k = 0; maps && k < nf; k++) free(maps[k]);
    free(maps);
    free(fcol);
    return rc;
}

/* Genres: engineered -> the content columns (fit_facets); pre-joined -> 0/1 item columns. */
static int fit_genres(cb_features *f, const cb_dataset *ds, const uint32_t *item_w, cb_error *err) {
    const cb_table *t = &ds->item_attr;
    uint32_t n_items = f->n_items;
    f->item_genre_off = cb_calloc((size_t)n_items + 1, sizeof *f->item_genre_off, err);
    if (!f->item_genre_off) return CB_ENOMEM;
    if (!f->prejoined) return fit_facets(f, ds, item_w, err);
    /* pre-joined: columns after the skipped ones that hold only 0 and 1 */
    uint32_t *gcol = cb_malloc((t->n_cols ? t->n_cols : 1) * sizeof *gcol, err);
    if (!gcol) return CB_ENOMEM;
    uint32_t G = 0;
    for (uint32_t c = f->cfg.item_skip_cols; c < t->n_cols && t->n_rows == n_items; c++) {
        const cb_column *col = &t->cols[c];
        if (col->kind != CB_COL_NUMERIC || in_csv_list(f->exclude_cols, col->name)) continue;
        bool flags = true, any_one = false;
        for (uint32_t r = 0; r < t->n_rows && flags; r++) {
            flags = col->num[r] == 0.0f || col->num[r] == 1.0f;
            any_one |= col->num[r] == 1.0f;
        }
        if (flags && any_one) gcol[G++] = c;
    }
    f->n_genres = G;
    f->genres = cb_calloc(G ? G : 1, sizeof *f->genres, err);
    size_t nnz = 0;
    for (uint32_t g = 0; g < G; g++)
        for (uint32_t r = 0; r < n_items; r++) nnz += t->cols[gcol[g]].num[r] == 1.0f;
    f->item_genre_val = cb_malloc((nnz ? nnz : 1) * sizeof *f->item_genre_val, err);
    if (!f->genres || !f->item_genre_val) {
        free(gcol);
        return CB_ENOMEM;
    }
    for (uint32_t g = 0; g < G; g++)
        if (!(f->genres[g] = cb_strdup(t->cols[gcol[g]].name, err))) {
            free(gcol);
            return CB_ENOMEM;
        }
    size_t p = 0;
    for (uint32_t r = 0; r < n_items; r++) {
        f->item_genre_off[r] = (uint32_t)p;
        for (uint32_t g = 0; g < G; g++)
            if (t->cols[gcol[g]].num[r] == 1.0f) f->item_genre_val[p++] = g;
    }
    f->item_genre_off[n_items] = (uint32_t)p;
    free(gcol);
    return CB_OK;
}

/* Fit mean/std of the standardised dimensions of one side over rows weighted
 * by `weight` (two passes, double accumulators). */
typedef void (*row_fn)(table_ctx *c, uint32_t row, float *x);

static int fit_scaler(fside *s, table_ctx *c, row_fn fn, const uint32_t *weight, uint32_t n_rows, cb_error *err) {
    uint32_t dim = s->dim;
    float *x = cb_malloc((size_t)(dim ? dim : 1) * sizeof *x, err);
    unsigned char *scaled = cb_calloc(dim ? dim : 1, 1, err);
    double *acc = cb_calloc(dim ? dim : 1, sizeof *acc, err);
    if (!x || !scaled || !acc) {
        free(x), free(scaled), free(acc);
        return CB_ENOMEM;
    }
    for (uint32_t bi = 0; bi < s->n_blocks; bi++)
        for (uint32_t k = 0; k < s->blocks[bi].width; k++) scaled[s->blocks[bi].offset + k] = block_scaled(&s->blocks[bi], k);
    double total = 0;
    for (uint32_t r = 0; r < n_rows; r++) {
        if (!weight[r]) continue;
        fn(c, r, x);
        for (uint32_t j = 0; j < dim; j++)
            if (scaled[j]) acc[j] += (double)weight[r] * x[j];
        total += weight[r];
    }
    for (uint32_t j = 0; j < dim; j++) {
        s->mean[j] = scaled[j] && total > 0 ? acc[j] / total : 0.0;
        acc[j] = 0;
    }
    for (uint32_t r = 0; r < n_rows; r++) {
        if (!weight[r]) continue;
        fn(c, r, x);
        for (uint32_t j = 0; j < dim; j++)
            if (scaled[j]) {
                double d = x[j] - s->mean[j];
                acc[j] += (double)weight[r] * d * d;
            }
    }
    for (uint32_t j = 0; j < dim; j++) {
        double sd = scaled[j] && total > 0 ? sqrt(acc[j] / total) : 1.0;
        s->std[j] = (sd > 1e-12 && isfinite(sd)) ? sd : 1.0;
    }
    free(x), free(scaled), free(acc);
    return CB_OK;
}

/* Item rating counts and shrunk means, the global mean, and the scaler
 * weights of users and items: one per user / item with a training rating
 * (pre-joined data: the user's rating count, reset later by prejoined_weights). */
static int fit_item_stats(cb_features *f, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                          uint32_t *user_w, uint32_t *item_w, cb_error *err) {
    uint32_t n_users = cb_dataset_n_users(ds), n_items = f->n_items;
    double *item_sum = cb_calloc(n_items ? n_items : 1, sizeof *item_sum, err);
    f->item_count = cb_calloc(n_items ? n_items : 1, sizeof *f->item_count, err);
    f->item_mean = cb_calloc(n_items ? n_items : 1, sizeof *f->item_mean, err);
    if (!item_sum || !f->item_count || !f->item_mean) {
        free(item_sum);
        return CB_ENOMEM;
    }
    double total = 0;
    for (size_t k = 0; k < n_train; k++) {
        int rc = CB_OK;
        if (train_idx[k] >= ds->n_ratings)
            rc = cb_fail(err, CB_EINVAL, "training index %u out of range (%zu ratings)", train_idx[k], ds->n_ratings);
        else if (ds->ratings[train_idx[k]].user >= n_users || ds->ratings[train_idx[k]].item >= n_items ||
                 !isfinite(ds->ratings[train_idx[k]].y))
            rc = cb_fail(err, CB_EINVAL, "rating %u: unknown user/item index or non-finite value", train_idx[k]);
        if (rc) {
            free(item_sum);
            return rc;
        }
        const cb_rating *r = &ds->ratings[train_idx[k]];
        total += r->y;
        item_sum[r->item] += r->y;
        f->item_count[r->item]++;
        user_w[r->user]++;
    }
    f->global_mean = total / (double)n_train;
    for (uint32_t i = 0; i < n_items; i++) {
        f->item_mean[i] = (float)shrunk_mean(f, item_sum[i], f->item_count[i]);
        item_w[i] = f->item_count[i] ? 1 : 0;
    }
    if (!f->prejoined) /* engineered: one count per training user */
        for (uint32_t u = 0; u < n_users; u++) user_w[u] = user_w[u] ? 1 : 0;
    free(item_sum);
    return CB_OK;
}

/* The top-K popular items among those with training ratings (ties by index). */
static int fit_top_items(cb_features *f, const cb_dataset *ds, cb_error *err) {
    uint32_t n_items = f->n_items;
    uint64_t *key = cb_malloc((n_items ? n_items : 1) * sizeof *key, err);
    if (!key) return CB_ENOMEM;
    uint32_t n_rated = 0;
    for (uint32_t i = 0; i < n_items; i++)
        if (f->item_count[i]) key[n_rated++] = ((uint64_t)(UINT32_MAX - f->item_count[i]) << 32) | i;
    qsort(key, n_rated, sizeof *key, cmp_u64);
    f->top_k = f->cfg.top_k_popular < n_rated ? f->cfg.top_k_popular : n_rated;
    f->top_items = cb_malloc((f->top_k ? f->top_k : 1) * sizeof *f->top_items, err);
    f->top_item_ids = cb_calloc(f->top_k ? f->top_k : 1, sizeof *f->top_item_ids, err);
    int rc = f->top_items && f->top_item_ids ? CB_OK : CB_ENOMEM;
    for (uint32_t k = 0; k < f->top_k && !rc; k++) {
        f->top_items[k] = (uint32_t)(key[k] & 0xffffffffu);
        const char *id = cb_vocab_name(ds->items, f->top_items[k]);
        if (!(f->top_item_ids[k] = id ? cb_strdup(id, err) : str_printf(err, "#%u", f->top_items[k]))) rc = CB_ENOMEM;
    }
    free(key);
    return rc ? rc : cb_feat_build_top_pos(f, err);
}

/* Engineered user blocks: attributes, rating statistics, per-genre tastes, top items. */
static int add_user_blocks(cb_features *f, const cb_dataset *ds, const uint32_t *user_w, cb_error *err) {
    const cb_table *ut = &ds->user_attr;
    int rc;
    if (f->cfg.user_attrs && ut->n_rows == cb_dataset_n_users(ds)) {
        if ((rc = add_attr_blocks(f, &f->user, ut, user_w, NULL, 0, ds->roles.user_age, err))) return rc;
    } else {
        for (uint32_t c = 0; c < ut->n_cols; c++)
            if ((rc = side_ignore(&f->user, ut->cols[c].name, err))) return rc;
    }
    if (f->cfg.user_stats && (!cb_feat_side_add(&f->user, B_USER_COUNT, NULL, err) || !cb_feat_side_add(&f->user, B_USER_MEAN, NULL, err)))
        return CB_ENOMEM;
    if (f->cfg.user_genres && f->n_genres &&
        (!cb_feat_side_add(&f->user, B_GENRE_AVG, NULL, err) || !cb_feat_side_add(&f->user, B_GENRE_FRAC, NULL, err)))
        return CB_ENOMEM;
    if (f->top_k && !cb_feat_side_add(&f->user, B_TOP_ITEMS, NULL, err)) return CB_ENOMEM;
    return CB_OK;
}

/* The item year block (from the year column, else titles), filled with the
 * mean year of the training items when missing. */
static int add_year_block(cb_features *f, const cb_dataset *ds, int year_col, const uint32_t *item_w, cb_error *err) {
    const cb_table *it = &ds->item_attr;
    fblock *b = cb_feat_side_add(&f->item, B_YEAR, year_col >= 0 ? it->cols[year_col].name : NULL, err);
    if (!b) return CB_ENOMEM;
    b->missing_flag = true;
    double sum = 0;
    size_t n = 0;
    for (uint32_t i = 0; i < f->n_items; i++) {
        if (!item_w[i]) continue;
        float y = year_col >= 0 ? it->cols[year_col].num[i] : year_from_title(ds->titles[i]);
        if (!isnan(y)) sum += y, n++;
    }
    b->fill = n ? sum / (double)n : 0.0;
    f->year_from_title = year_col < 0;
    return CB_OK;
}

/* Engineered item blocks: year, genres, rating statistics, other attributes. */
static int add_item_blocks(cb_features *f, const cb_dataset *ds, const uint32_t *item_w, cb_error *err) {
    const cb_table *it = &ds->item_attr;
    bool item_rows_ok = it->n_rows == f->n_items;
    int rc;
    int year_col = ds->roles.item_year;
    if (year_col >= 0 && ((uint32_t)year_col >= it->n_cols || it->cols[year_col].kind != CB_COL_NUMERIC)) year_col = -1;
    const char *year_name = year_col >= 0 ? it->cols[year_col].name : "year";
    bool year_excluded = in_csv_list(f->exclude_cols, year_name);
    if (year_excluded && (rc = side_ignore(&f->item, year_name, err))) return rc;
    if (f->cfg.item_year && item_rows_ok && !year_excluded && (year_col >= 0 || (ds->titles && !ds->no_title_years)) &&
        (rc = add_year_block(f, ds, year_col, item_w, err)))
        return rc;
    if (f->cfg.item_genres && f->n_genres && !cb_feat_side_add(&f->item, B_ITEM_GENRES, NULL, err)) return CB_ENOMEM;
    if (f->cfg.item_stats && (!cb_feat_side_add(&f->item, B_ITEM_MEAN, NULL, err) || !cb_feat_side_add(&f->item, B_ITEM_COUNT, NULL, err)))
        return CB_ENOMEM;
    /* the year column and the content columns (facets, in the genre block) are not attribute blocks */
    int *skip = cb_malloc(((size_t)it->n_cols + 2) * sizeof *skip, err);
    if (!skip) return CB_ENOMEM;
    int n_skip = 0;
    skip[n_skip++] = ds->roles.item_genres;
    skip[n_skip++] = year_col;
    for (uint32_t c = 0; c < it->n_cols; c++)
        if ((int)c != ds->roles.item_genres && is_facet_column(f, ds, c)) skip[n_skip++] = (int)c;
    rc = CB_OK;
    if (f->cfg.item_attrs && item_rows_ok) {
        rc = add_attr_blocks(f, &f->item, it, item_w, skip, n_skip, -1, err);
    } else {
        for (uint32_t c = 0; c < it->n_cols && !rc; c++)
            if ((int)c != skip[0] && (int)c != skip[1]) rc = side_ignore(&f->item, it->cols[c].name, err);
    }
    for (int k = 0; k < 2 && !rc; k++) /* the genre / year columns are used, accept their names */
        if (skip[k] >= 0 && (uint32_t)skip[k] < it->n_cols) rc = side_ignore(&f->item, it->cols[skip[k]].name, err);
    free(skip);
    return rc;
}

/* Pre-joined scaler weights: how many scaler rows (ratings) carry each user / item row. */
static int prejoined_weights(const cb_features *f, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                             uint32_t *user_w, uint32_t *item_w, cb_error *err) {
    uint32_t n_users = cb_dataset_n_users(ds), n_items = f->n_items;
    memset(user_w, 0, (size_t)n_users * sizeof *user_w);
    memset(item_w, 0, (size_t)n_items * sizeof *item_w);
    if (f->cfg.scaler_rows == CB_SCALER_ALL) {
        for (size_t k = 0; k < ds->n_ratings; k++) {
            if (ds->ratings[k].user >= n_users || ds->ratings[k].item >= n_items)
                return cb_fail(err, CB_EINVAL, "rating %zu refers to an unknown user or item", k);
            user_w[ds->ratings[k].user]++;
            item_w[ds->ratings[k].item]++;
        }
    } else {
        for (size_t k = 0; k < n_train; k++) {
            user_w[ds->ratings[train_idx[k]].user]++;
            item_w[ds->ratings[train_idx[k]].item]++;
        }
    }
    return CB_OK;
}

static int fit_body(cb_features *f, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train, cb_error *err) {
    int rc;
    uint32_t n_users = cb_dataset_n_users(ds), n_items = f->n_items;
    uint32_t *user_w = cb_calloc(n_users ? n_users : 1, sizeof *user_w, err);
    uint32_t *item_w = cb_calloc(n_items ? n_items : 1, sizeof *item_w, err);
    table_ctx uc = {0}, ic = {0};
    if (!user_w || !item_w) {
        rc = CB_ENOMEM;
        goto out;
    }
    if ((rc = fit_item_stats(f, ds, train_idx, n_train, user_w, item_w, err))) goto out;
    if ((rc = fit_genres(f, ds, item_w, err))) goto out;
    if ((rc = cb_feat_build_genre_vocab(f, err))) goto out;
    if ((rc = fit_top_items(f, ds, err))) goto out;
    if (f->prejoined) {
        if ((rc = add_raw_blocks(f, &f->user, &ds->user_attr, f->cfg.user_skip_cols, "user", err))) goto out;
        if ((rc = add_raw_blocks(f, &f->item, &ds->item_attr, f->cfg.item_skip_cols, "item", err))) goto out;
    } else {
        if ((rc = add_user_blocks(f, ds, user_w, err))) goto out;
        if ((rc = add_item_blocks(f, ds, item_w, err))) goto out;
    }
    if ((rc = cb_feat_side_finish(f, &f->user, true, err)) || (rc = cb_feat_side_finish(f, &f->item, false, err))) goto out;

    /* scalers */
    if ((rc = table_ctx_init(&uc, f, ds, train_idx, n_train, true, err))) goto out;
    if ((rc = table_ctx_init(&ic, f, ds, NULL, 0, false, err))) goto out;
    if (f->prejoined && (rc = prejoined_weights(f, ds, train_idx, n_train, user_w, item_w, err))) goto out;
    if ((rc = fit_scaler(&f->user, &uc, table_user_row, user_w, n_users, err))) goto out;
    if ((rc = fit_scaler(&f->item, &ic, table_item_row, item_w, n_items, err))) goto out;
    rc = CB_OK;
out:
    table_ctx_free(&uc);
    table_ctx_free(&ic);
    free(user_w);
    free(item_w);
    return rc;
}

static bool table_has_col(const cb_table *t, const char *name, size_t len) {
    for (uint32_t c = 0; c < t->n_cols; c++)
        if (strlen(t->cols[c].name) == len && !memcmp(t->cols[c].name, name, len)) return true;
    return false;
}

static void append_col_names(char *buf, size_t cap, const cb_table *t) {
    for (uint32_t c = 0; c < t->n_cols && strlen(buf) + 4 < cap; c++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", c ? ", " : "", t->cols[c].name);
    if (!t->n_cols) snprintf(buf + strlen(buf), cap - strlen(buf), "none");
}

/* Every name of exclude-cols is a user or item column of the data, or
 * "year" (the titles' year): a name that is neither, a typo or another
 * data's column, left every feature in while it seemed to leave one out. */
static int check_exclude_cols(const char *list, const cb_dataset *ds, cb_error *err) {
    size_t len;
    for (const char *q = list, *p; (p = csv_next(&q, &len));) {
        if (len && !table_has_col(&ds->user_attr, p, len) && !table_has_col(&ds->item_attr, p, len) &&
            !(len == 4 && !memcmp(p, "year", 4) && ds->titles)) {
            char users[512] = "", items[512] = "";
            append_col_names(users, sizeof users, &ds->user_attr);
            append_col_names(items, sizeof items, &ds->item_attr);
            return cb_fail(err, CB_EINVAL, "exclude-cols: the data has no column '%.*s' (user columns: %s; item "
                           "columns: %s)", (int)len, p, users, items);
        }
    }
    return CB_OK;
}

int cb_features_fit(cb_features **out, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                    const cb_feature_config *cfg, cb_error *err) {
    *out = NULL;
    cb_feature_config def;
    if (!cfg) {
        cb_feature_config_default(&def);
        cfg = &def;
    }
    const char *why = cb_feature_config_check(cfg);
    if (why) return cb_fail(err, CB_EINVAL, "feature configuration: %s", why);
    if (!ds) return cb_fail(err, CB_EINVAL, "no dataset to fit features on");
    if (n_train == 0 || !train_idx) return cb_fail(err, CB_EINVAL, "cannot fit features on an empty training set");
    int rc = check_exclude_cols(cfg->exclude_cols, ds, err);
    if (rc) return rc;
    cb_features *f = cb_calloc(1, sizeof *f, err);
    if (!f) return CB_ENOMEM;
    f->cfg = *cfg;
    f->prejoined = ds->prejoined;
    f->n_items = cb_dataset_n_items(ds);
    if (f->cfg.user_skip_cols == CB_SKIP_FROM_DATASET) f->cfg.user_skip_cols = ds->user_lead_cols;
    if (f->cfg.item_skip_cols == CB_SKIP_FROM_DATASET) f->cfg.item_skip_cols = ds->item_lead_cols;
    if (cfg->exclude_cols && !(f->exclude_cols = cb_strdup(cfg->exclude_cols, err))) rc = CB_ENOMEM;
    f->cfg.exclude_cols = f->exclude_cols;
    if (!rc) rc = fit_body(f, ds, train_idx, n_train, err);
    if (rc) {
        cb_features_free(f);
        return rc;
    }
    *out = f;
    return CB_OK;
}

/* ------------------------------------------------------------------ tables */

int cb_features_users(const cb_features *f, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                      float *X_u, cb_error *err) {
    if (!f || !ds || !X_u || (n_train && !train_idx)) return cb_fail(err, CB_EINVAL, "cb_features_users: missing argument");
    table_ctx c;
    int rc = table_ctx_init(&c, f, ds, train_idx, n_train, true, err);
    if (!rc)
        for (uint32_t u = 0; u < c.n_users; u++) {
            float *x = X_u + (size_t)u * f->user.dim;
            table_user_row(&c, u, x);
            apply_scaler(&f->user, x);
        }
    table_ctx_free(&c);
    return rc;
}

/* The first column of the user rows' 0/1 tail: the top-items block when it
 * ends the row (it is added last, unscaled), else the width (no tail). */
static uint32_t user_tail_start(const cb_features *f) {
    for (uint32_t bi = 0; bi < f->user.n_blocks; bi++) {
        const fblock *b = &f->user.blocks[bi];
        if (b->type == B_TOP_ITEMS && b->offset + b->width == f->user.dim && b->width <= CB_ROWS_MAX_TAIL &&
            !block_scaled(b, 0))
            return b->offset;
    }
    return f->user.dim;
}

int cb_features_user_rows(const cb_features *f, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                          cb_rows *out, cb_error *err) {
    memset(out, 0, sizeof *out);
    if (!f || !ds || (n_train && !train_idx)) return cb_fail(err, CB_EINVAL, "cb_features_user_rows: missing argument");
    uint32_t dim = f->user.dim, head = user_tail_start(f);
    table_ctx c;
    int rc = table_ctx_init(&c, f, ds, train_idx, n_train, true, err);
    float *x = rc ? NULL : cb_malloc((size_t)(dim ? dim : 1) * sizeof *x, err);
    if (!rc && !x) rc = CB_ENOMEM;
    out->n_rows = c.n_users, out->width = dim, out->head = head;
    if (!rc) {
        out->dense = cb_malloc(((size_t)c.n_users * head + 1) * sizeof *out->dense, err);
        out->hot_off = cb_calloc((size_t)c.n_users + 1, sizeof *out->hot_off, err);
        if (!out->dense || !out->hot_off) rc = CB_ENOMEM;
    }
    /* two passes over the rows: count the ones, then fill (no growing buffer) */
    for (int pass = 0; !rc && pass < 2; pass++) {
        if (pass == 1 && !(out->hot_col = cb_malloc((out->hot_off[c.n_users] + 1) * sizeof *out->hot_col, err))) {
            rc = CB_ENOMEM;
            break;
        }
        for (uint32_t u = 0; u < c.n_users && !rc; u++) {
            table_user_row(&c, u, x);
            apply_scaler(&f->user, x);
            uint64_t k = out->hot_off[u];
            for (uint32_t j = head; j < dim; j++) {
                if (x[j] == 0.0f) continue;
                if (x[j] != 1.0f) rc = cb_fail(err, CB_EINVAL, "user %u: tail column %u holds %g, not 0 or 1", u, j, (double)x[j]);
                if (pass == 0) out->hot_off[u + 1]++;
                else out->hot_col[k++] = (uint16_t)(j - head);
            }
            if (pass == 0) continue;
            memcpy(out->dense + (size_t)u * head, x, (size_t)head * sizeof *x);
        }
        for (uint32_t u = 0; pass == 0 && u < c.n_users; u++) out->hot_off[u + 1] += out->hot_off[u];
    }
    free(x);
    table_ctx_free(&c);
    if (rc) cb_rows_free(out);
    return rc;
}

int cb_features_items(const cb_features *f, const cb_dataset *ds, float *X_m, cb_error *err) {
    if (!f || !ds || !X_m) return cb_fail(err, CB_EINVAL, "cb_features_items: missing argument");
    table_ctx c;
    int rc = table_ctx_init(&c, f, ds, NULL, 0, false, err);
    if (!rc)
        for (uint32_t i = 0; i < f->n_items; i++) {
            float *x = X_m + (size_t)i * f->item.dim;
            table_item_row(&c, i, x);
            apply_scaler(&f->item, x);
        }
    table_ctx_free(&c);
    return rc;
}

/* ------------------------------------------------------------------ cold start */

static int find_block(const fside *s, const char *name) {
    for (uint32_t b = 0; b < s->n_blocks; b++)
        if (s->blocks[b].col && cb_feat_block_has_column(s->blocks[b].type) && !strcmp(s->blocks[b].col, name)) return (int)b;
    return -1;
}

static bool is_ignored(const fside *s, const char *name) {
    for (uint32_t k = 0; k < s->n_ignored; k++)
        if (!strcmp(s->ignored[k], name)) return true;
    return false;
}

/* Number from an attribute value (NAN = missing). */
static int attr_number(const cb_attr_value *a, double *v, cb_error *err) {
    if (!a->str) {
        *v = a->num;
        if (isinf(*v)) return cb_fail(err, CB_EINVAL, "attribute '%s': value is infinite", a->name);
        return CB_OK;
    }
    if (!*a->str) {
        *v = NAN;
        return CB_OK;
    }
    if (!cb_parse_double(a->str, strlen(a->str), v))
        return cb_fail(err, CB_EINVAL, "attribute '%s': '%s' is not a number", a->name, a->str);
    return CB_OK;
}

/* CB_ENOTFOUND for an attribute the side has not, naming those it has (a
 * data's own column names, "alter" or "Land", are not guessed from "age"). */
static int unknown_attr(const cb_features *f, const fside *s, const char *name, cb_error *err) {
    char known[384] = "";
    for (uint32_t k = 0; s == &f->item && k < f->n_facets && strlen(known) + 4 < sizeof known; k++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", known[0] ? ", " : "", f->facet_cols[k]);
    for (uint32_t bi = 0; bi < s->n_blocks && strlen(known) + 4 < sizeof known; bi++) {
        const fblock *b = &s->blocks[bi];
        if (b->col && (b->type == B_CAT || b->type == B_NUM || b->type == B_AGE_BUCKETS || b->type == B_MULTI ||
                       b->type == B_RAW || b->type == B_YEAR || b->type == B_TEXT))
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", known[0] ? ", " : "", b->col);
    }
    return cb_fail(err, CB_ENOTFOUND, "unknown attribute '%s' (known: %s)", name, known[0] ? known : "none");
}

/* Write one attribute given by name into a row (raw). */
static int write_attr_from_input(const cb_features *f, const fside *s, const cb_attr_value *a, float *x, bool *seen,
                                 cb_error *err) {
    if (!a->name) return cb_fail(err, CB_EINVAL, "attribute without a name");
    int bi = find_block(s, a->name);
    if (bi < 0) {
        if (is_ignored(s, a->name)) return CB_OK;
        return unknown_attr(f, s, a->name, err);
    }
    const fblock *b = &s->blocks[bi];
    seen[bi] = true;
    int rc;
    double v;
    char numbuf[64];
    const char *str = a->str;
    switch (b->type) {
    case B_NUM: case B_YEAR: case B_AGE_BUCKETS: case B_RAW:
        if ((rc = attr_number(a, &v, err))) return rc;
        if (b->type == B_RAW) x[b->offset] = isnan(v) ? 0.0f : (float)v;
        else if (b->type == B_AGE_BUCKETS) write_age_bucket(b, v, x);
        else write_num(b, v, x);
        return CB_OK;
    case B_TEXT:
        if (str) text_from_string(b, str, x);
        return CB_OK;
    case B_CAT: case B_MULTI:
        if (!str) {
            if (isnan(a->num)) return CB_OK;
            str = cb_number_text(a->num, numbuf, sizeof numbuf); /* as a file would hold it */
        }
        for (const char *p = str;;) {
            const char *q = b->type == B_MULTI ? strchr(p, '|') : NULL;
            size_t len = q ? (size_t)(q - p) : strlen(p);
            int64_t l = len ? cb_vocab_find(b->vocab, p, len) : -1;
            if (l >= 0) x[b->offset + (uint32_t)l] = 1.0f;
            if (!q) break;
            p = q + 1;
        }
        return CB_OK;
    default: return CB_OK;
    }
}

/* Attribute blocks not given: their "missing" value. */
static void write_missing_attrs(const fside *s, const bool *seen, float *x) {
    for (uint32_t bi = 0; bi < s->n_blocks; bi++)
        if (!seen[bi] && (s->blocks[bi].type == B_NUM || s->blocks[bi].type == B_YEAR))
            write_num(&s->blocks[bi], NAN, x);
}

/* Column index of the RAW block named `name` (pre-joined), or -1. */
static int raw_block(const fside *s, const char *name) {
    int b = find_block(s, name);
    return b >= 0 && s->blocks[b].type == B_RAW ? b : -1;
}

int cb_features_new_user(const cb_features *f, const cb_user_input *in, float *x, cb_error *err) {
    if (!f || !in || !x) return cb_fail(err, CB_EINVAL, "cb_features_new_user: missing argument");
    const fside *s = &f->user;
    memset(x, 0, (size_t)s->dim * sizeof *x);
    bool *seen = cb_calloc(s->n_blocks ? s->n_blocks : 1, sizeof *seen, err);
    if (!seen) return CB_ENOMEM;
    int rc = CB_OK;
    for (size_t k = 0; k < in->n_attrs && !rc; k++) rc = write_attr_from_input(f, s, &in->attrs[k], x, seen, err);
    if (!rc) write_missing_attrs(s, seen, x);
    free(seen);
    if (rc) return rc;
    /* explicit genre preferences */
    user_scratch us = {0};
    if ((rc = user_scratch_init(&us, f->n_genres, err))) {
        user_scratch_free(&us);
        return rc;
    }
    for (size_t k = 0; k < in->n_genre_prefs && !rc; k++) {
        const cb_genre_pref *p = &in->genre_prefs[k];
        if (!p->genre) rc = cb_fail(err, CB_EINVAL, "genre preference without a genre name");
        else if (!isfinite(p->y)) rc = cb_fail(err, CB_EINVAL, "genre preference '%s': value is not finite", p->genre);
        else if (f->prejoined) {
            int b = raw_block(s, p->genre);
            if (b < 0) rc = cb_fail(err, CB_ENOTFOUND, "unknown genre '%s'", p->genre);
            else x[s->blocks[b].offset] = p->y;
        } else {
            int64_t g = cb_vocab_find(f->genre_vocab, p->genre, strlen(p->genre));
            if (g < 0) rc = cb_fail(err, CB_ENOTFOUND, "unknown genre '%s'", p->genre);
            else us.has_pref[g] = 1, us.pref_y[g] = p->y;
        }
    }
    for (size_t k = 0; k < in->n_ratings && !rc; k++) {
        if (in->ratings[k].item >= f->n_items)
            rc = cb_fail(err, CB_ENOTFOUND, "rating %zu: unknown item index %u", k, in->ratings[k].item);
        else if (!isfinite(in->ratings[k].y)) rc = cb_fail(err, CB_EINVAL, "rating %zu: value is not finite", k);
    }
    if (!rc && !f->prejoined) write_user_rating_blocks(f, in->ratings, in->n_ratings, &us, x);
    user_scratch_free(&us);
    if (rc) return rc;
    apply_scaler(s, x);
    return CB_OK;
}

int cb_features_new_item(const cb_features *f, const cb_item_input *in, float *x, cb_error *err) {
    return cb_features_new_item_checked(f, in, false, NULL, 0, x, err);
}


int cb_features_new_item_checked(const cb_features *f, const cb_item_input *in, bool strict, char *notes,
                                 size_t notes_size, float *x, cb_error *err) {
    if (!f || !in || !x) return cb_fail(err, CB_EINVAL, "cb_features_new_item: missing argument");
    const fside *s = &f->item;
    memset(x, 0, (size_t)s->dim * sizeof *x);
    bool *seen = cb_calloc(s->n_blocks ? s->n_blocks : 1, sizeof *seen, err);
    uint32_t cap = (uint32_t)in->n_genres + f->n_genres + 1;
    uint32_t *glist = cb_malloc((size_t)cap * sizeof *glist, err);
    int rc = (!seen || !glist) ? CB_ENOMEM : CB_OK;
    uint32_t ng = 0;
    for (size_t k = 0; k < in->n_attrs && !rc; k++) {
        int facet = f->prejoined ? -1 : cb_features_facet_find(f, in->attrs[k].name ? in->attrs[k].name : "");
        if (facet < 0) {
            rc = write_attr_from_input(f, s, &in->attrs[k], x, seen, err);
        } else if (in->attrs[k].str) { /* a content column: its values join the genre list */
            uint32_t n = 0;
            rc = cb_features_facet_values(f, (uint32_t)facet, in->attrs[k].str, glist + ng, cap - (uint32_t)in->n_genres - ng,
                                          &n, strict, notes, notes_size, err);
            ng += n;
        }
    }
    /* year */
    if (!rc) {
        for (uint32_t bi = 0; bi < s->n_blocks; bi++) {
            const fblock *b = &s->blocks[bi];
            bool is_year = b->type == B_YEAR || (b->type == B_RAW && b->col && !strcmp(b->col, "year"));
            if (!is_year || seen[bi]) continue;
            if (!isnan(in->year) && !isfinite(in->year)) {
                rc = cb_fail(err, CB_EINVAL, "item year is infinite");
                break;
            }
            if (b->type == B_RAW) x[b->offset] = isnan(in->year) ? 0.0f : (float)in->year;
            else write_num(b, in->year, x);
            seen[bi] = true;
        }
    }
    if (!rc) write_missing_attrs(s, seen, x);
    for (size_t k = 0; k < in->n_genres && !rc; k++) {
        const char *name = in->genres[k];
        if (!name) {
            rc = cb_fail(err, CB_EINVAL, "genre without a name");
            break;
        }
        /* an unknown genre is a note, as an unknown tag or brand is (an error under strict) */
        int64_t found = f->prejoined ? raw_block(s, name) : cb_vocab_find(f->genre_vocab, name, strlen(name));
        if (found < 0 && strict) rc = cb_fail(err, CB_ENOTFOUND, "unknown genre '%s'", name);
        else if (found < 0) cb_feat_note_append(notes, notes_size, "genres", name, strlen(name), "");
        else if (f->prejoined) x[s->blocks[found].offset] = 1.0f;
        else glist[ng++] = (uint32_t)found;
    }
    if (!rc && in->rating_count && !isfinite(in->rating_mean))
        rc = cb_fail(err, CB_EINVAL, "item rating mean is not finite");
    if (!rc && !f->prejoined) {
        double c = in->rating_count;
        write_item_stat_blocks(f, glist, ng, c, shrunk_mean(f, c ? (double)in->rating_mean * c : 0.0, c), x);
    }
    free(seen);
    free(glist);
    if (rc) return rc;
    apply_scaler(s, x);
    return CB_OK;
}

/* ------------------------------------------------------------------ accessors */

uint32_t cb_features_user_dim(const cb_features *f) { return f ? f->user.dim : 0; }
uint32_t cb_features_item_dim(const cb_features *f) { return f ? f->item.dim : 0; }
const char *cb_features_user_name(const cb_features *f, uint32_t j) { return f && j < f->user.dim ? f->user.names[j] : NULL; }
const char *cb_features_item_name(const cb_features *f, uint32_t j) { return f && j < f->item.dim ? f->item.names[j] : NULL; }
bool cb_features_prejoined(const cb_features *f) { return f && f->prejoined; }
uint32_t cb_features_n_items(const cb_features *f) { return f ? f->n_items : 0; }
uint32_t cb_features_n_genres(const cb_features *f) { return f ? f->n_genres : 0; }
const char *cb_features_genre_name(const cb_features *f, uint32_t g) { return f && g < f->n_genres ? f->genres[g] : NULL; }
int cb_features_genre_find(const cb_features *f, const char *name) {
    return name ? cb_features_genre_find_n(f, name, strlen(name)) : -1;
}
int cb_features_genre_find_n(const cb_features *f, const char *name, size_t len) {
    if (!f || !name) return -1;
    int64_t g = cb_vocab_find(f->genre_vocab, name, len);
    return g < 0 ? -1 : (int)g;
}
int cb_features_item_genres(const cb_features *f, uint32_t item, const uint32_t **list, uint32_t *n) {
    if (!f || item >= f->n_items) return CB_EINVAL;
    *list = f->item_genre_val + f->item_genre_off[item];
    *n = f->item_genre_off[item + 1] - f->item_genre_off[item];
    return CB_OK;
}
uint32_t cb_features_item_count(const cb_features *f, uint32_t item) { return f && item < f->n_items ? f->item_count[item] : 0; }
float cb_features_item_mean(const cb_features *f, uint32_t item) {
    return f && item < f->n_items ? f->item_mean[item] : (f ? (float)f->global_mean : NAN);
}
float cb_features_global_mean(const cb_features *f) { return f ? (float)f->global_mean : NAN; }
uint32_t cb_features_top_k(const cb_features *f, const uint32_t **items) {
    if (!f) return 0;
    if (items) *items = f->top_items;
    return f->top_k;
}

void cb_features_scaler(const cb_features *f, bool user, const double **mean, const double **std) {
    const fside *s = user ? &f->user : &f->item;
    if (mean) *mean = s->mean;
    if (std) *std = s->std;
}

/* ---- content columns (facets) */

uint32_t cb_features_n_facets(const cb_features *f) { return f ? f->n_facets : 0; }
const char *cb_features_facet_name(const cb_features *f, uint32_t k) { return f && k < f->n_facets ? f->facet_cols[k] : NULL; }
bool cb_features_facet_is_genre(const cb_features *f, uint32_t k) { return f && (int32_t)k == f->genre_facet; }
bool cb_features_facet_is_multi(const cb_features *f, uint32_t k) { return f && k < f->n_facets && f->facet_seps[k][0]; }
int cb_features_facet_find(const cb_features *f, const char *column) {
    return column ? cb_features_facet_find_n(f, column, strlen(column)) : -1;
}
int cb_features_facet_find_n(const cb_features *f, const char *column, size_t len) {
    for (uint32_t k = 0; f && column && k < f->n_facets; k++)
        if (strlen(f->facet_cols[k]) == len && !memcmp(f->facet_cols[k], column, len)) return (int)k;
    return -1;
}
const char *cb_features_value_key(const cb_features *f, uint32_t g, char *buf, size_t size) {
    if (!f || g >= f->n_genres) return NULL;
    if (is_genre_value(f, g)) return f->genres[g];
    return cb_feat_value_key(f, f->value_facet[g], f->genres[g], strlen(f->genres[g]), buf, size);
}

bool cb_features_value_is_genre(const cb_features *f, uint32_t g) { return f && g < f->n_genres && is_genre_value(f, g); }

int cb_features_value_facet(const cb_features *f, uint32_t g) {
    return f && f->value_facet && g < f->n_genres ? (int)f->value_facet[g] : -1;
}

int64_t cb_features_value_find(const cb_features *f, uint32_t facet, const char *value, size_t len) {
    if (!f || facet >= f->n_facets) return -1;
    char buf[1024], bucket[24];
    const char *key = cb_feat_value_key(f, facet, value, len, buf, sizeof buf);
    int64_t g = key ? cb_vocab_find(f->genre_vocab, key, strlen(key)) : -1;
    if (g >= 0 || !f->facet_hash[facet]) return g;
    snprintf(bucket, sizeof bucket, "#%u", cb_value_bucket(value, len, f->facet_hash[facet]));
    key = cb_feat_value_key(f, facet, bucket, strlen(bucket), buf, sizeof buf);
    return key ? cb_vocab_find(f->genre_vocab, key, strlen(key)) : -1;
}

void cb_feat_note_append(char *notes, size_t size, const char *col, const char *v, size_t len, const char *why) {
    if (!notes || !size) return;
    size_t l = strnlen(notes, size);
    if (l + 1 >= size) return;
    snprintf(notes + l, size - l, "%sunknown value '%.*s' of '%s' ignored%s", l ? "; " : "", (int)(len > 80 ? 80 : len), v,
             col, why);
}

const char *cb_feat_why_unknown(uint32_t n_kept, uint32_t cap, char *buf, size_t size) {
    if (cap && n_kept == cap) snprintf(buf, size, ": not among the %u most frequent values the model kept", cap);
    else if (size) *buf = '\0';
    return buf;
}

/* cb_feat_why_unknown of a facet: the genre column keeps every value; the
 * others their most frequent (facet_values). */
static const char *facet_why_unknown(const cb_features *f, uint32_t facet, char *buf, size_t size) {
    uint32_t n_kept = 0;
    for (uint32_t g = 0; g < f->n_genres && f->value_facet; g++) n_kept += f->value_facet[g] == facet;
    bool categorical = !*f->facet_seps[facet];
    uint32_t cap = (int32_t)facet == f->genre_facet ? 0 : categorical ? f->cfg.max_cat_levels : f->cfg.max_multi_levels;
    return cb_feat_why_unknown(n_kept, cap, buf, size);
}

int cb_features_value_named(const cb_features *f, uint32_t facet, const char *value, size_t len, uint32_t *g,
                            cb_error *err) {
    if (!f || facet >= f->n_facets) return cb_fail(err, CB_EINVAL, "cb_features_value_named: bad argument");
    char buf[1024], why[96];
    const char *key = cb_feat_value_key(f, facet, value, len, buf, sizeof buf);
    int64_t found = key ? cb_vocab_find(f->genre_vocab, key, strlen(key)) : -1;
    if (found >= 0) return *g = (uint32_t)found, CB_OK;
    int shown = (int)(len > 80 ? 80 : len);
    if (f->facet_hash[facet] && cb_features_value_find(f, facet, value, len) >= 0)
        return cb_fail(err, CB_ENOTFOUND,
                       "value '%.*s' of '%s' is not one the model kept by name (it shares a hash bucket with other "
                       "values): name its items instead",
                       shown, value, f->facet_cols[facet]);
    facet_why_unknown(f, facet, why, sizeof why); /* "" when every value was kept: a typo, not a dropped value */
    return cb_fail(err, CB_ENOTFOUND, "unknown value '%.*s' of '%s'%s%s", shown, value, f->facet_cols[facet], why,
                   why[0] ? ": name its items instead" : "");
}

/* Is c the start of a separator of the facet (its own, or '|')? Its length, else 0. */
static size_t facet_sep_at(const cb_features *f, uint32_t facet, const char *c) {
    const char *sep = f->facet_seps[facet];
    size_t sl = strlen(sep);
    if (sl && !strncmp(c, sep, sl)) return sl;
    return *c == '|' && sl ? 1 : 0;
}

int cb_features_facet_values(const cb_features *f, uint32_t facet, const char *str, uint32_t *out, uint32_t cap,
                             uint32_t *n_out, bool strict, char *notes, size_t notes_size, cb_error *err) {
    *n_out = 0;
    if (!f || facet >= f->n_facets || !str) return cb_fail(err, CB_EINVAL, "cb_features_facet_values: bad argument");
    const char *p = str;
    while (*p) {
        const char *q = p;
        size_t sl = 0;
        while (*q && !(sl = facet_sep_at(f, facet, q))) q++;
        const char *v = p;
        size_t len = (size_t)(q - p);
        cb_trim(&v, &len);
        if (len) {
            int64_t g = cb_features_value_find(f, facet, v, len);
            char why[96];
            if (g < 0) facet_why_unknown(f, facet, why, sizeof why);
            if (g < 0 && strict)
                return cb_fail(err, CB_ENOTFOUND, "unknown value '%.*s' of '%s'%s", (int)(len > 80 ? 80 : len), v,
                               f->facet_cols[facet], why);
            if (g < 0) cb_feat_note_append(notes, notes_size, f->facet_cols[facet], v, len, why);
            else if (*n_out < cap) out[(*n_out)++] = (uint32_t)g;
        }
        p = *q ? q + sl : q;
    }
    return CB_OK;
}

const char *cb_features_input_column(const cb_features *f, bool user, uint32_t j, const char **level) {
    *level = NULL;
    const fside *s = f ? (user ? &f->user : &f->item) : NULL;
    if (!s || j >= s->dim) return NULL;
    for (uint32_t bi = 0; bi < s->n_blocks; bi++) {
        const fblock *b = &s->blocks[bi];
        if (j < b->offset || j >= b->offset + b->width) continue;
        uint32_t k = j - b->offset;
        switch (b->type) {
        case B_CAT: case B_MULTI: *level = b->levels[k]; return b->col;
        case B_AGE_BUCKETS: *level = age_bucket_name[k]; return b->col;
        case B_NUM: case B_TEXT: return b->col;
        case B_ITEM_GENRES: /* another content column's value (tags, brand) */
            if (is_genre_value(f, k)) return NULL;
            *level = f->genres[k];
            return f->facet_cols[f->value_facet[k]];
        default: return NULL;
        }
    }
    return NULL;
}

bool cb_features_item_interaction(const cb_features *f, uint32_t j) {
    if (!f || j >= f->item.dim) return false;
    for (uint32_t b = 0; b < f->item.n_blocks; b++) {
        const fblock *bl = &f->item.blocks[b];
        if (j >= bl->offset && j < bl->offset + bl->width) return bl->type == B_ITEM_MEAN || bl->type == B_ITEM_COUNT;
    }
    return false;
}
