/* dataset_arrays — the public cb_dataset_builder of include/cbrec.h: a
 * dataset from arrays held in memory (the Python binding's
 * Dataset.from_arrays, any program that has its ratings in memory) instead
 * of files. It fills the same loader context as the file loaders
 * (data/loader.h) and ends with the same final checks (cb_ld_finish:
 * duplicates, the rating range, column roles), so an array dataset is
 * indistinguishable from a loaded one. It sits in rec/ beside cb_dataset_open
 * because it reads the TRAIN configuration ("range", "skip-bad-rows").
 *
 * Rows are named in messages by their 0-based position among all the rows
 * given to that kind of call ("ratings[3]", "items column 'genres'[4]"). */
#include "data/loader.h"
#include "model/train_config.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cb_dataset_builder {
    cb_loader L;          /* L.ds == NULL once finished (or after a failed finish) */
    size_t rating_rows;   /* ratings rows given so far (for messages) */
    int has_values;       /* -1: no ratings call yet; else 0/1 */
    int has_ts;
    bool has_titles;
};

CB_API int cb_dataset_builder_create(cb_dataset_builder **out, const char *name, const cb_config *cfg,
                                     cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_dataset_builder_create: out is NULL");
    *out = NULL;
    cb_train_config def;
    const cb_train_config *tc = &def;
    if (cfg && !(tc = cb_config_values(cfg, CB_CONFIG_TRAIN)))
        return cb_fail(err, CB_EINVAL, "cb_dataset_builder_create: the configuration is not of kind TRAIN");
    if (!cfg) cb_train_config_default(&def);
    cb_dataset_builder *b = cb_calloc(1, sizeof *b, err);
    if (!b) return CB_ENOMEM;
    if (!name || !*name) name = "arrays";
    int rc = cb_ld_begin(&b->L, name, name, &tc->load, err);
    if (rc) {
        free(b);
        return rc;
    }
    b->has_values = b->has_ts = -1;
    *out = b;
    return CB_OK;
}

CB_API void cb_dataset_builder_free(cb_dataset_builder *b) {
    if (!b) return;
    if (b->L.ds) cb_ld_abort(&b->L);
    free(b);
}

static int finished(cb_error *err) {
    return cb_fail(err, CB_EINVAL, "the dataset builder was already finished");
}

/* A malformed row: an error, or under skip-bad-rows counted and skipped
 * (returns 1 then). */
#define BAD(...)                                                                \
    (b->L.opt.skip_bad_rows ? (b->L.ds->n_skipped++, 1) : cb_fail(err, CB_EPARSE, __VA_ARGS__))

/* One rating row checked and its ids interned: CB_OK, 1 (skipped) or an error. */
static int rating_row(cb_dataset_builder *b, const char *u, const char *it, const float *values,
                      const int64_t *timestamps, size_t i, cb_rating *r, cb_error *err) {
    const cb_loader *L = &b->L;
    size_t row = b->rating_rows + i;
    if (!u || !*u) return BAD("ratings[%zu]: empty user id", row);
    if (!it || !*it) return BAD("ratings[%zu]: empty item id", row);
    r->y = 1.0f;
    r->ts = 0;
    if (values) {
        r->y = values[i];
        if (!isfinite(r->y)) return BAD("ratings[%zu]: rating %g is not a finite number", row, (double)r->y);
        if (L->declared_range && (r->y < L->opt.y_min || r->y > L->opt.y_max))
            return BAD("ratings[%zu]: rating %g outside the declared range [%g, %g]", row, (double)r->y,
                       (double)L->opt.y_min, (double)L->opt.y_max);
    }
    if (timestamps) {
        if (timestamps[i] == INT64_MIN) return BAD("ratings[%zu]: no timestamp", row);
        if (timestamps[i] < 0 || timestamps[i] > (int64_t)UINT32_MAX)
            return BAD("ratings[%zu]: timestamp %lld is not in [0, 4294967295]", row, (long long)timestamps[i]);
        r->ts = (uint32_t)timestamps[i];
    }
    int rc = cb_vocab_intern(L->ds->users, u, strlen(u), &r->user, NULL, err);
    return rc ? rc : cb_vocab_intern(L->ds->items, it, strlen(it), &r->item, NULL, err);
}

CB_API int cb_dataset_builder_add_ratings(cb_dataset_builder *b, const char *const *users,
                                          const char *const *items, const float *values,
                                          const int64_t *timestamps, size_t n, cb_error *err) {
    if (!b || (n && (!users || !items))) return cb_fail(err, CB_EINVAL, "cb_dataset_builder_add_ratings: NULL argument");
    if (!b->L.ds) return finished(err);
    int hv = values != NULL, ht = timestamps != NULL;
    if (b->has_values >= 0 && (hv != b->has_values || ht != b->has_ts))
        return cb_fail(err, CB_EINVAL, "ratings: every call must give %s, as the first did",
                       hv != b->has_values ? (b->has_values ? "ratings" : "no ratings (implicit events)")
                                           : (b->has_ts ? "timestamps" : "no timestamps"));
    cb_dataset *ds = b->L.ds;
    if (n > (size_t)UINT32_MAX - ds->n_ratings) return cb_fail(err, CB_EINVAL, "more than 4294967295 ratings");
    if (ds->n_ratings + n > ds->cap_ratings) {
        cb_rating *p = cb_realloc_array(ds->ratings, ds->n_ratings + n, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        ds->ratings = p;
        ds->cap_ratings = ds->n_ratings + n;
    }
    size_t n_before = ds->n_ratings;
    for (size_t i = 0; i < n; i++) {
        cb_rating r;
        int rc = rating_row(b, users[i], items[i], values, timestamps, i, &r, err);
        if (rc == 1) continue;
        if (rc) return ds->n_ratings = n_before, rc; /* none of a failed call's rows: the rows stay at their positions */
        ds->ratings[ds->n_ratings++] = r;
    }
    b->rating_rows += n;
    b->has_values = hv;
    b->has_ts = ht;
    if (ht) ds->has_timestamps = true;
    if (!hv) b->L.implicit = b->L.declared_binary = true;
    return CB_OK;
}

typedef struct row_at {
    uint32_t row;  /* the id's number */
    size_t i;      /* position in the call */
} row_at;

static int cmp_row_at(const void *a, const void *b) {
    const row_at *x = a, *y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* One cell of a column (named `what` in messages): ids[at->i]'s value into
 * row at->row. A number a float cannot hold (an infinity, 1e300) is a bad
 * row, as a file's is: it made the features infinite and training "diverge
 * (try a lower learning rate)"; skipped, the cell is missing. */
static int set_cell(cb_dataset_builder *b, cb_tabbuild *tb, int col, cb_col_kind kind, bool is_title,
                    const char *const *text, const double *num, const char *sep, const row_at *at, const char *what,
                    cb_error *err) {
    const char *s = text ? text[at->i] : NULL;
    size_t n = s ? strlen(s) : 0;
    if (is_title) return s ? cb_ld_set_title(&b->L, at->row, s, n, err) : CB_OK;
    if (kind == CB_COL_NUMERIC && fabs(num[at->i]) > FLT_MAX) { /* NAN (missing) is not greater */
        int rc = BAD("%s[%zu]: %g is not a finite number", what, at->i, num[at->i]);
        return rc == 1 ? CB_OK : rc;
    }
    if (kind == CB_COL_NUMERIC) return cb_tb_set_num(tb, col, at->row, (float)num[at->i], err);
    if (kind == CB_COL_MULTI) return cb_tb_add_multi_split(tb, col, at->row, s ? s : "", n, sep, err);
    cb_trim(&s, &n);
    return n ? cb_tb_set_cat(tb, col, at->row, s, n, err) : CB_OK;
}

/* Which column kind `kind` names; false when none. */
static bool parse_kind(const char *kind, cb_col_kind *out, bool *is_title) {
    *is_title = kind && !strcmp(kind, "title");
    if (*is_title || (kind && !strcmp(kind, "multi"))) *out = CB_COL_MULTI;
    else if (kind && !strcmp(kind, "numeric")) *out = CB_COL_NUMERIC;
    else if (kind && !strcmp(kind, "categorical")) *out = CB_COL_CATEGORICAL;
    else return false;
    return true;
}

/* The ids of one call interned, into *rows (malloc'd) in row order with each
 * id once: *m of them. An empty id or an id given twice is a bad row named
 * `what`[position] (skipped under skip-bad-rows). */
static int intern_rows(cb_dataset_builder *b, int users, const char *what, const char *const *ids, size_t n,
                       row_at **rows_out, size_t *m_out, cb_error *err) {
    cb_vocab *vocab = users ? b->L.ds->users : b->L.ds->items;
    row_at *rows = cb_malloc((n ? n : 1) * sizeof *rows, err);
    if (!rows) return CB_ENOMEM;
    int rc = CB_OK;
    size_t m = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!ids[i] || !*ids[i]) {
            if ((rc = BAD("%s[%zu]: empty id", what, i)) == 1) rc = CB_OK;
            continue;
        }
        rows[m].i = i;
        rc = cb_vocab_intern(vocab, ids[i], strlen(ids[i]), &rows[m++].row, NULL, err);
    }
    /* in row order (multi-valued cells are appended by row); an id twice is a bad row */
    if (!rc) qsort(rows, m, sizeof *rows, cmp_row_at);
    size_t kept = 0;
    for (size_t j = 0; j < m && !rc; j++) {
        if (kept && rows[j].row == rows[kept - 1].row) {
            if ((rc = BAD("%s[%zu]: id '%s' given twice (first at [%zu])", what, rows[j].i, ids[rows[j].i],
                          rows[kept - 1].i)) == 1)
                rc = CB_OK;
            continue;
        }
        rows[kept++] = rows[j];
    }
    if (rc) {
        free(rows);
        return rc;
    }
    *rows_out = rows;
    *m_out = kept;
    return CB_OK;
}

CB_API int cb_dataset_builder_add_ids(cb_dataset_builder *b, int users, const char *const *ids, size_t n,
                                      cb_error *err) {
    if (!b || (n && !ids)) return cb_fail(err, CB_EINVAL, "cb_dataset_builder_add_ids: NULL argument");
    if (!b->L.ds) return finished(err);
    row_at *rows = NULL;
    size_t m = 0;
    int rc = intern_rows(b, users, users ? "user ids" : "item ids", ids, n, &rows, &m, err);
    free(rows);
    return rc;
}

CB_API int cb_dataset_builder_add_column(cb_dataset_builder *b, int users, const char *name, const char *kind,
                                         const char *const *ids, const char *const *text, const double *num,
                                         size_t n, const char *sep, cb_error *err) {
    if (!b || !name || !*name || (n && !ids)) return cb_fail(err, CB_EINVAL, "cb_dataset_builder_add_column: NULL argument");
    if (!b->L.ds) return finished(err);
    const char *table = users ? "users" : "items";
    cb_col_kind k;
    bool is_title;
    if (!parse_kind(kind, &k, &is_title))
        return cb_fail(err, CB_EINVAL, "%s column '%s': unknown kind '%s' (title, numeric, categorical, multi)", table,
                       name, kind ? kind : "");
    if (is_title && (users || b->has_titles))
        return cb_fail(err, CB_EINVAL, "%s column '%s': %s", table, name,
                       users ? "users have no titles" : "the items' titles were given twice");
    if (n && (k == CB_COL_NUMERIC ? !num : !text))
        return cb_fail(err, CB_EINVAL, "%s column '%s': a %s column needs %s", table, name, kind,
                       k == CB_COL_NUMERIC ? "numbers" : "text");
    if (k == CB_COL_MULTI && !is_title && (!sep || !*sep))
        return cb_fail(err, CB_EINVAL, "%s column '%s': a multi column needs a separator such as \"|\"", table, name);
    cb_tabbuild *tb = users ? &b->L.users : &b->L.items;
    int col = is_title ? -1 : cb_tb_add_col(tb, name, k, err);
    if (col < 0 && !is_title) return col;
    char shown[CB_CLIP_MAX + 32], what[CB_CLIP_MAX + 64];
    snprintf(what, sizeof what, "%s column '%s'", table, cb_clip(shown, sizeof shown, name, strlen(name)));
    row_at *rows = NULL;
    size_t m = 0;
    int rc = intern_rows(b, users, what, ids, n, &rows, &m, err);
    for (size_t j = 0; j < m && !rc; j++) rc = set_cell(b, tb, col, k, is_title, text, num, sep, &rows[j], what, err);
    free(rows);
    if (is_title && !rc) b->has_titles = true;
    if (!rc && k == CB_COL_MULTI && !is_title) snprintf(tb->t->cols[col].sep, sizeof tb->t->cols[col].sep, "%s", sep);
    return rc;
}

/* Items with a "(1995)" in their title get a "year" column, as the file
 * loaders give them, unless one was given. */
static int years_from_titles(cb_loader *L, cb_error *err) {
    if (!L->titles || cb_table_find(&L->ds->item_attr, "year") >= 0) return CB_OK;
    int col = cb_tb_add_col(&L->items, "year", CB_COL_NUMERIC, err);
    if (col < 0) return col;
    for (size_t i = 0; i < L->cap_titles; i++) {
        const char *t = L->titles[i];
        int rc = t ? cb_tb_set_num(&L->items, col, (uint32_t)i, cb_year_from_title(t, strlen(t)), err) : CB_OK;
        if (rc) return rc;
    }
    return CB_OK;
}

/* Columns given to the builder are declared, as a schema declares them: they
 * keep all their values (the vocabulary control of data/generic.c, with no
 * limit), where undeclared content columns keep only the most frequent. */
static void declare_columns(cb_table *t) {
    for (uint32_t c = 0; c < t->n_cols; c++)
        if (t->cols[c].kind != CB_COL_NUMERIC) t->cols[c].n_values_seen = cb_vocab_size(t->cols[c].levels);
}

CB_API int cb_dataset_builder_finish(cb_dataset_builder *b, cb_dataset **out, cb_error *err) {
    if (!b || !out) return cb_fail(err, CB_EINVAL, "cb_dataset_builder_finish: NULL argument");
    *out = NULL;
    if (!b->L.ds) return finished(err);
    declare_columns(&b->L.ds->item_attr);
    declare_columns(&b->L.ds->user_attr);
    int rc = years_from_titles(&b->L, err);
    if (rc) {
        cb_ld_abort(&b->L);
        return rc;
    }
    return cb_ld_finish(&b->L, NULL, out, err); /* empties (or frees) L.ds either way */
}
