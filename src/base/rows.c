/* rows — dense head + 0/1 tail feature tables; see rows.h. */
#include "base/rows.h"

#include <stdlib.h>
#include <string.h>

void cb_rows_get(const cb_rows *t, uint32_t row, float *dst) {
    memcpy(dst, t->dense + (size_t)row * t->head, (size_t)t->head * sizeof *dst);
    float *tail = dst + t->head;
    memset(tail, 0, (size_t)(t->width - t->head) * sizeof *dst);
    for (uint64_t k = t->hot_off[row]; k < t->hot_off[row + 1]; k++) tail[t->hot_col[k]] = 1.0f;
}

size_t cb_rows_bytes(const cb_rows *t) {
    return (size_t)t->n_rows * t->head * sizeof(float) + ((size_t)t->n_rows + 1) * sizeof(uint64_t) +
           (size_t)t->hot_off[t->n_rows] * sizeof(uint16_t);
}

void cb_rows_free(cb_rows *t) {
    if (!t) return;
    free(t->dense);
    free(t->hot_off);
    free(t->hot_col);
    memset(t, 0, sizeof *t);
}
