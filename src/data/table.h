/* table — the attribute-table builder (cb_tb_*, table.c) the loaders and the
 * synthetic generator fill cb_table columns with. Internal to libcbrec. */
#ifndef CB_TABLE_H
#define CB_TABLE_H

#include "data/dataset.h"

/* The table itself lives in the dataset (so
 * cb_dataset_free releases it on any error path); the builder only tracks
 * capacities. Rows may be filled in any order for NUMERIC and CATEGORICAL
 * columns; MULTI rows must be appended in non-decreasing row order. Unset
 * cells are missing (NAN / CB_MISSING / no levels). */
typedef struct cb_colcap {
    uint32_t n_rows, cap_rows;
    size_t cap_val;
} cb_colcap;

typedef struct cb_tabbuild {
    cb_table *t;
    cb_colcap *caps; /* [cap_cols] */
    uint32_t cap_cols;
} cb_tabbuild;

void cb_tb_init(cb_tabbuild *b, cb_table *t);
void cb_tb_release(cb_tabbuild *b); /* frees builder state only, never the table */
/* Add a column; returns its index (>= 0) or a negative CB_E* code. */
int cb_tb_add_col(cb_tabbuild *b, const char *name, cb_col_kind kind, cb_error *err);
int cb_tb_set_num(cb_tabbuild *b, int col, uint32_t row, float v, cb_error *err);
int cb_tb_set_cat(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err);
/* Append one level to a MULTI row (duplicates within a row are dropped). */
int cb_tb_add_multi(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err);
/* Split `s` on `sep` and add every non-empty, trimmed piece to the row. */
int cb_tb_add_multi_split(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len,
                          const char *sep, cb_error *err);
/* Pad every column to n_rows and set t->n_rows. */
int cb_tb_finish(cb_tabbuild *b, uint32_t n_rows, cb_error *err);

#endif /* CB_TABLE_H */
