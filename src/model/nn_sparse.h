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

/* out (B,OC) = [head | tail] · wᵀ + b: head (B,H) dense, row r's ones at
 * tail columns cols[off[r] .. off[r+1]) (i.e. columns H + cols[j]); w (OC,C),
 * b (OC) or NULL; out_t (OC,B) is scratch. */
void cb_nn_sparse_forward(float *out, float *out_t, const float *head, const uint64_t *off, const uint16_t *cols,
                          const float *w, const float *b, int B, int C, int H, int OC);
/* dw (OC,C) += doutᵀ · [head | tail], touching only the tail columns present;
 * db (OC) += column sums of dout (NULL: skipped); dout_t (OC,B) is scratch.
 * No dinp: the first layer. */
void cb_nn_sparse_backward(float *dw, float *db, float *dout_t, const float *dout, const float *head,
                           const uint64_t *off, const uint16_t *cols, int B, int C, int H, int OC);

#endif
