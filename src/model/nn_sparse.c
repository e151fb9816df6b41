/* nn_sparse — a first layer over a dense head and a 0/1 tail; see nn_sparse.h.
 * The tail is walked one output unit at a time: row o of w (C floats) stays
 * in L1 while every row's ones gather from it (forward) or scatter into the
 * same row of dw (backward). Walking the ones per example instead (adding a
 * row of a transposed w per one) streams a 1 MB table through the cache per
 * example and measured 2.8x slower than the dense sgemm here (bench_sparse). */
#include "model/nn_sparse.h"

#include <cblas.h>
#include <string.h>

void cb_nn_sparse_forward(float *out, float *out_t, const float *head, const uint64_t *off, const uint16_t *cols,
                          const float *w, const float *b, int B, int C, int H, int OC) {
    for (int o = 0; o < OC; o++) {
        const float *tail = w + (size_t)o * C + H;
        float *acc = out_t + (size_t)o * B;
        for (int r = 0; r < B; r++) {
            float sum = b ? b[o] : 0.0f;
            for (uint64_t j = off[r]; j < off[r + 1]; j++) sum += tail[cols[j]];
            acc[r] = sum;
        }
    }
    for (int r = 0; r < B; r++)
        for (int o = 0; o < OC; o++) out[(size_t)r * OC + o] = out_t[(size_t)o * B + r];
    if (H > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, H, 1.0f, head, H, w, C, 1.0f, out, OC);
}

void cb_nn_sparse_backward(float *dw, float *db, float *dout_t, const float *dout, const float *head,
                           const uint64_t *off, const uint16_t *cols, int B, int C, int H, int OC) {
    if (H > 0) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, H, B, 1.0f, dout, OC, head, H, 1.0f, dw, C);
    for (int r = 0; r < B; r++)
        for (int o = 0; o < OC; o++) dout_t[(size_t)o * B + r] = dout[(size_t)r * OC + o];
    for (int o = 0; o < OC; o++) {
        float *tail = dw + (size_t)o * C + H;
        const float *d = dout_t + (size_t)o * B;
        float sum = 0.0f;
        for (int r = 0; r < B; r++) {
            sum += d[r];
            for (uint64_t j = off[r]; j < off[r + 1]; j++) tail[cols[j]] += d[r];
        }
        if (db) db[o] += sum;
    }
}
