/* table — the attribute-table builder (cb_tb_*): grows typed columns
 * (numeric, categorical, multi-valued) row by row while a loader reads an
 * attribute file, then pads every column to the final row count. The table
 * itself lives in the dataset, so cb_dataset_free releases it on any error
 * path; the builder only tracks capacities. */
#include "data/table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- table builder */

void cb_tb_init(cb_tabbuild *b, cb_table *t) {
    memset(b, 0, sizeof *b);
    b->t = t;
}

void cb_tb_release(cb_tabbuild *b) {
    free(b->caps);
    b->caps = NULL;
    b->cap_cols = 0;
}

int cb_tb_add_col(cb_tabbuild *b, const char *name, cb_col_kind kind, cb_error *err) {
    cb_table *t = b->t;
    if (cb_table_find(t, name) >= 0)
        return cb_fail(err, CB_EINVAL, "column '%s' declared twice", name);
    if (t->n_cols == b->cap_cols) {
        uint32_t cap = b->cap_cols ? b->cap_cols * 2 : 8;
        cb_column *cols = cb_realloc_array(t->cols, cap, sizeof *cols, err);
        if (!cols) return CB_ENOMEM;
        t->cols = cols;
        cb_colcap *caps = cb_realloc_array(b->caps, cap, sizeof *caps, err);
        if (!caps) return CB_ENOMEM;
        b->caps = caps;
        b->cap_cols = cap;
    }
    cb_column *c = &t->cols[t->n_cols];
    memset(c, 0, sizeof *c);
    memset(&b->caps[t->n_cols], 0, sizeof b->caps[0]);
    c->kind = kind;
    t->n_cols++; /* counted now so cb_dataset_free releases a half-made column */
    c->name = cb_strdup(name, err);
    if (!c->name) return CB_ENOMEM;
    if (kind != CB_COL_NUMERIC) {
        c->levels = cb_vocab_create(err);
        if (!c->levels) return CB_ENOMEM;
    }
    if (kind == CB_COL_MULTI) {
        c->off = cb_calloc(1, sizeof *c->off, err);
        if (!c->off) return CB_ENOMEM;
    }
    return (int)(t->n_cols - 1);
}

/* Make room for rows [0, need) and mark new cells missing. */
static int col_reserve(cb_column *c, cb_colcap *cap, uint32_t need, cb_error *err) {
    if (need <= cap->cap_rows) return CB_OK;
    uint64_t n = cap->cap_rows ? cap->cap_rows : 64;
    while (n < need) n *= 2;
    if (n > UINT32_MAX - 1) n = UINT32_MAX - 1;
    if (c->kind == CB_COL_NUMERIC) {
        float *p = cb_realloc_array(c->num, n, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->num = p;
    } else if (c->kind == CB_COL_CATEGORICAL) {
        uint32_t *p = cb_realloc_array(c->cat, n, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->cat = p;
    } else {
        uint32_t *p = cb_realloc_array(c->off, n + 1, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->off = p;
    }
    cap->cap_rows = (uint32_t)n;
    return CB_OK;
}

/* Extend the column to `rows` rows with missing cells. */
static int col_grow_to(cb_column *c, cb_colcap *cap, uint32_t rows, cb_error *err) {
    if (rows <= cap->n_rows) return CB_OK;
    int rc = col_reserve(c, cap, rows, err);
    if (rc) return rc;
    for (uint32_t r = cap->n_rows; r < rows; r++) {
        if (c->kind == CB_COL_NUMERIC) c->num[r] = NAN;
        else if (c->kind == CB_COL_CATEGORICAL) c->cat[r] = CB_MISSING;
        else c->off[r + 1] = c->off[r];
    }
    cap->n_rows = rows;
    return CB_OK;
}

int cb_tb_set_num(cb_tabbuild *b, int col, uint32_t row, float v, cb_error *err) {
    cb_column *c = &b->t->cols[col];
    int rc = col_grow_to(c, &b->caps[col], row + 1, err);
    if (rc) return rc;
    c->num[row] = v;
    return CB_OK;
}

int cb_tb_set_cat(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err) {
    cb_column *c = &b->t->cols[col];
    int rc = col_grow_to(c, &b->caps[col], row + 1, err);
    if (rc) return rc;
    uint32_t lvl;
    rc = cb_vocab_intern(c->levels, s, len, &lvl, NULL, err);
    if (rc) return rc;
    c->cat[row] = lvl;
    return CB_OK;
}

int cb_tb_add_multi(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err) {
    cb_column *c = &b->t->cols[col];
    cb_colcap *cap = &b->caps[col];
    if (row + 1 < cap->n_rows)
        return cb_fail(err, CB_EINVAL, "internal: multi-valued rows out of order in column '%s'", c->name);
    int rc = col_grow_to(c, cap, row + 1, err);
    if (rc) return rc;
    uint32_t lvl;
    rc = cb_vocab_intern(c->levels, s, len, &lvl, NULL, err);
    if (rc) return rc;
    for (uint32_t k = c->off[row]; k < c->off[row + 1]; k++)
        if (c->val[k] == lvl) return CB_OK;
    size_t n_val = c->off[row + 1];
    if (n_val == cap->cap_val) {
        size_t ncap = cap->cap_val ? cap->cap_val * 2 : 256;
        uint32_t *p = cb_realloc_array(c->val, ncap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->val = p;
        cap->cap_val = ncap;
    }
    c->val[n_val] = lvl;
    c->off[row + 1] = (uint32_t)(n_val + 1);
    return CB_OK;
}

int cb_tb_add_multi_split(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len,
                          const char *sep, cb_error *err) {
    size_t sl = strlen(sep);
    size_t start = 0;
    /* Make sure the row exists even when it ends up empty. */
    int rc = col_grow_to(&b->t->cols[col], &b->caps[col], row + 1, err);
    if (rc) return rc;
    while (start <= len) {
        size_t end = start;
        while (end < len && !(end + sl <= len && memcmp(s + end, sep, sl) == 0)) end++;
        size_t a = start, z = end;
        while (a < z && (s[a] == ' ' || s[a] == '\t')) a++;
        while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t')) z--;
        if (z > a) {
            rc = cb_tb_add_multi(b, col, row, s + a, z - a, err);
            if (rc) return rc;
        }
        start = end + sl;
    }
    return CB_OK;
}

int cb_tb_finish(cb_tabbuild *b, uint32_t n_rows, cb_error *err) {
    cb_table *t = b->t;
    for (uint32_t i = 0; i < t->n_cols; i++) {
        int rc = col_grow_to(&t->cols[i], &b->caps[i], n_rows, err);
        if (rc) return rc;
        if (t->cols[i].kind == CB_COL_MULTI && !t->cols[i].val) {
            t->cols[i].val = cb_malloc(sizeof(uint32_t), err); /* never NULL: simpler for users */
            if (!t->cols[i].val) return CB_ENOMEM;
        }
    }
    t->n_rows = n_rows;
    return CB_OK;
}

