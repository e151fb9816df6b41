/* dataset — the in-memory dataset object: its defaults, sizes, column lookup
 * and freeing. Loading is data/layout.c (which layout a folder holds) and the
 * loaders it dispatches to; building tables is data/table.c. */
#include "data/dataset.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ basics */

void cb_load_options_default(cb_load_options *o) {
    memset(o, 0, sizeof *o);
}

uint32_t cb_dataset_n_users(const cb_dataset *ds) { return cb_vocab_size(ds->users); }
uint32_t cb_dataset_n_items(const cb_dataset *ds) { return cb_vocab_size(ds->items); }

float cb_dataset_relevant_from(const cb_dataset *ds) {
    return ds->implicit ? ds->y_min : ds->y_min + 0.75f * (ds->y_max - ds->y_min);
}

int cb_table_find(const cb_table *t, const char *name) {
    for (uint32_t i = 0; i < t->n_cols; i++)
        if (t->cols[i].name && strcmp(t->cols[i].name, name) == 0) return (int)i;
    return -1;
}

static void table_free(cb_table *t) {
    for (uint32_t i = 0; i < t->n_cols; i++) {
        cb_column *c = &t->cols[i];
        free(c->name);
        free(c->num);
        free(c->cat);
        free(c->off);
        free(c->val);
        cb_vocab_free(c->levels);
    }
    free(t->cols);
    memset(t, 0, sizeof *t);
}

void cb_ratings_layout_free(cb_ratings_layout *l) {
    for (size_t i = 0; l->names && i < l->n_fields; i++) free(l->names[i]);
    free(l->names);
    free(l->roles);
    memset(l, 0, sizeof *l);
}

void cb_dataset_free(cb_dataset *ds) {
    if (!ds) return;
    cb_ratings_layout_free(&ds->ratings_layout);
    if (ds->titles) {
        uint32_t n = cb_vocab_size(ds->items);
        for (uint32_t i = 0; i < n; i++) free(ds->titles[i]);
        free(ds->titles);
    }
    free(ds->name);
    free(ds->path);
    cb_vocab_free(ds->users);
    cb_vocab_free(ds->items);
    free(ds->ratings);
    table_free(&ds->user_attr);
    table_free(&ds->item_attr);
    free(ds);
}

static size_t table_bytes(const cb_table *t) {
    size_t b = (size_t)t->n_cols * sizeof(cb_column);
    for (uint32_t i = 0; i < t->n_cols; i++) {
        const cb_column *c = &t->cols[i];
        b += c->name ? strlen(c->name) + 1 : 0;
        if (c->kind == CB_COL_NUMERIC) b += (size_t)t->n_rows * sizeof(float);
        if (c->kind == CB_COL_CATEGORICAL) b += (size_t)t->n_rows * sizeof(uint32_t);
        if (c->kind == CB_COL_MULTI && c->off)
            b += ((size_t)t->n_rows + 1 + c->off[t->n_rows]) * sizeof(uint32_t);
        b += cb_vocab_bytes(c->levels);
    }
    return b;
}

size_t cb_dataset_bytes(const cb_dataset *ds) {
    size_t b = sizeof *ds;
    b += ds->cap_ratings * sizeof(cb_rating);
    b += cb_vocab_bytes(ds->users) + cb_vocab_bytes(ds->items);
    b += table_bytes(&ds->user_attr) + table_bytes(&ds->item_attr);
    if (ds->titles) {
        uint32_t n = cb_vocab_size(ds->items);
        b += (size_t)n * sizeof(char *);
        for (uint32_t i = 0; i < n; i++)
            if (ds->titles[i]) b += strlen(ds->titles[i]) + 1;
    }
    return b;
}

