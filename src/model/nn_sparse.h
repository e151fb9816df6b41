/* nn_sparse — the user tower's first layer over a sparse input: each row is
 * a dense head (B,H) followed by C - H columns that are 0 except the listed
 * ones, which are 1 (the top-items multi-hot, base/rows.h). Same contract as
 * cb_nn_dense_forward / _backward on the densified rows (nn.h), with the
 * arithmetic of the tail cut to the ones present: forward adds one row of a
 * transposed copy of the tail weights per one; backward adds dout's row into
 * the transposed gradient rows of the columns present only, then folds those
 * into dw. The dense kernels on densified rows are the reference
 * (tests/test_nn.c compares them). */
#ifndef CB_NN_SPARSE_H
#define CB_NN_SPARSE_H

#include <stdint.h>

/* The tail columns of w (OC,C) transposed: wt ((C-H),OC), wt[c][o] = w[o][H + c].
 * Forward reads wt: refresh it after every update of w. */
void cb_nn_sparse_transpose_tail(float *wt, const float *w, int C, int H, int OC);
/* out (B,OC) = [head | tail] · wᵀ + b: head (B,H) dense, row r's ones at
 * tail columns cols[off[r] .. off[r+1]); w (OC,C), wt its transposed tail, b (OC) or NULL. */
void cb_nn_sparse_forward(float *out, const float *head, const uint64_t *off, const uint16_t *cols, const float *w,
                          const float *wt, const float *b, int B, int C, int H, int OC);
/* dw (OC,C) += doutᵀ · [head | tail]; db (OC) += column sums of dout (NULL: skipped).
 * dwt ((C-H),OC) is scratch, all zero on entry and left all zero; touched
 * (C-H bytes) likewise. No dinp: the first layer. */
void cb_nn_sparse_backward(float *dw, float *db, float *dwt, uint8_t *touched, const float *dout, const float *head,
                           const uint64_t *off, const uint16_t *cols, int B, int C, int H, int OC);

#endif
