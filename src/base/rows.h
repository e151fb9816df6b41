/* rows — a feature table kept as a dense head and a 0/1 tail: each row is
 * head floats followed by width - head columns that are 0 except the listed
 * ones (CSR), which are 1. The user table's tail is the top-items multi-hot
 * (~13 % ones over 1,000 columns at 20M ratings), so the table shrinks from
 * 4 B per column to ~2 B per one: 580 MB dense become ~65 MB. The model
 * densifies the rows of a batch into its workspace (cb_rows_get). */
#ifndef CB_ROWS_H
#define CB_ROWS_H

#include <stddef.h>
#include <stdint.h>

#define CB_ROWS_MAX_TAIL 65536u /* tail columns are uint16 */

typedef struct cb_rows {
    uint32_t n_rows, width, head; /* row width; columns [0, head) are dense */
    float *dense;                 /* [n_rows x head] */
    uint64_t *hot_off;            /* [n_rows + 1] into hot_col */
    uint16_t *hot_col;            /* row r's ones: columns head + hot_col[hot_off[r] .. hot_off[r+1]), ascending */
} cb_rows;

/* Row `row` as width floats into dst. */
void cb_rows_get(const cb_rows *t, uint32_t row, float *dst);
/* Bytes held by the table. */
size_t cb_rows_bytes(const cb_rows *t);
void cb_rows_free(cb_rows *t); /* frees the arrays, zeroes *t; NULL is a no-op */

#endif
