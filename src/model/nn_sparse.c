/* nn_sparse — a first layer over a dense head and a 0/1 tail; see nn_sparse.h. */
#include "model/nn_sparse.h"

#include <cblas.h>
#include <string.h>

void cb_nn_sparse_transpose_tail(float *wt, const float *w, int C, int H, int OC) {
    for (int o = 0; o < OC; o++) {
        const float *row = w + (size_t)o * C + H;
        for (int c = 0; c < C - H; c++) wt[(size_t)c * OC + o] = row[c];
    }
}

void cb_nn_sparse_forward(float *out, const float *head, const uint64_t *off, const uint16_t *cols, const float *w,
                          const float *wt, const float *b, int B, int C, int H, int OC) {
    if (H > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, H, 1.0f, head, H, w, C, 0.0f, out, OC);
    else memset(out, 0, (size_t)B * OC * sizeof *out);
    for (int r = 0; r < B; r++) {
        float *o = out + (size_t)r * OC;
        if (b)
            for (int k = 0; k < OC; k++) o[k] += b[k];
        for (uint64_t j = off[r]; j < off[r + 1]; j++) {
            const float *wr = wt + (size_t)cols[j] * OC;
            for (int k = 0; k < OC; k++) o[k] += wr[k];
        }
    }
}

void cb_nn_sparse_backward(float *dw, float *db, float *dwt, uint8_t *touched, const float *dout, const float *head,
                           const uint64_t *off, const uint16_t *cols, int B, int C, int H, int OC) {
    if (H > 0) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, H, B, 1.0f, dout, OC, head, H, 1.0f, dw, C);
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t)r * OC;
        if (db)
            for (int k = 0; k < OC; k++) db[k] += d[k];
        for (uint64_t j = off[r]; j < off[r + 1]; j++) {
            float *g = dwt + (size_t)cols[j] * OC;
            for (int k = 0; k < OC; k++) g[k] += d[k];
            touched[cols[j]] = 1;
        }
    }
    for (int c = 0; c < C - H; c++) { /* fold the columns present into dw, leave the scratch zero */
        if (!touched[c]) continue;
        float *g = dwt + (size_t)c * OC;
        for (int o = 0; o < OC; o++) dw[(size_t)o * C + H + c] += g[o];
        memset(g, 0, (size_t)OC * sizeof *g);
        touched[c] = 0;
    }
}
