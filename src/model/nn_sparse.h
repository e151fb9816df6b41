/* nn_sparse — a dense layer whose input is mostly zeros: the user tower's
 * first layer over the top-items multi-hot (~13 % non-zero over ~1,000
 * columns). The batch's input rows are listed as their non-zeros (CSR, built
 * from the densified rows); the layer works on a transposed copy of the
 * weights, wt (C,OC), so each non-zero adds one contiguous row:
 *   forward   out[r] = b + Σ_j val_j · wt[col_j]          (axpy per non-zero)
 *   backward  dwt[col_j] += val_j · dout[r], then dw += dwtᵀ (scatter of the
 *             outer products on the columns present only)
 * Same contract as cb_nn_dense_forward / _backward on the dense rows (nn.h)
 * within float tolerance; no dinp (a first layer). AVX2 + FMA 8-wide kernels
 * are chosen at run time (cb_cpu_avx2); the `_naive` twins are plain loops
 * (tests/test_nn_sparse.c compares both with the dense layer). Nothing here
 * allocates. */
#ifndef CB_NN_SPARSE_H
#define CB_NN_SPARSE_H

#include <stddef.h>
#include <stdint.h>

/* A batch of rows as non-zeros: row r's are col/val[off[r] .. off[r+1]). */
typedef struct cb_nn_csr {
    uint32_t *off; /* [B + 1] */
    uint32_t *col; /* [cap] */
    float *val;    /* [cap] */
    size_t cap;
} cb_nn_csr;

/* List the non-zeros of x (B,C) into s. Returns 0, or -1 when there are more
 * than s->cap of them (s is then not usable). */
int cb_nn_csr_from_dense(cb_nn_csr *s, const float *x, int B, int C);
/* The same for the columns [c0, C) of each row only (the column numbers as
 * in the whole row): a layer whose first c0 inputs are dense takes those by
 * sgemm and the rest as non-zeros (the user tower's dense head, then its
 * 0/1 tail). */
int cb_nn_csr_from_dense_tail(cb_nn_csr *s, const float *x, int B, int C, int c0);

/* wt (C,OC) = w (OC,C) transposed. */
void cb_nn_transpose(float *wt, const float *w, int OC, int C);
/* dst (cols,rows) gets the rows [r0, r1) of src (rows,cols), transposed: a
 * worker's share of a transpose. */
void cb_nn_transpose_rows(float *dst, const float *src, int rows, int cols, int r0, int r1);

/* out (B,OC) = x · wᵀ + b for the rows x listed in s; wt (C,OC) is w
 * transposed (cb_nn_transpose); b may be NULL. */
void cb_nn_sparse_forward(float *out, const cb_nn_csr *s, const float *wt, const float *b, int B, int OC);
void cb_nn_sparse_forward_naive(float *out, const cb_nn_csr *s, const float *wt, const float *b, int B, int OC);

/* dw (OC,C) += doutᵀ · x, db (OC) += column sums of dout (NULL: skipped).
 * dwt (C,OC) is scratch that must hold zeros on entry, and holds zeros again
 * on return. */
void cb_nn_sparse_backward(float *dw, float *db, float *dwt, const float *dout, const cb_nn_csr *s, int B, int C,
                           int OC);
void cb_nn_sparse_backward_naive(float *dw, float *db, float *dwt, const float *dout, const cb_nn_csr *s, int B,
                                 int C, int OC);
/* The same gradient left transposed: dwt (C,OC), which must hold zeros on
 * entry, = (doutᵀ · x)ᵀ, the bits cb_nn_sparse_backward folds into dw; db as
 * there. By columns: each row of dwt is summed in registers over its
 * column's non-zeros and stored once (the scatter by rows reads and writes
 * it once per non-zero). cols is scratch for s's non-zeros by column: off
 * [C + 1], col and val s->cap. For a caller that keeps W0 transposed. */
void cb_nn_sparse_backward_cols(float *dwt, float *db, cb_nn_csr *cols, const float *dout, const cb_nn_csr *s, int B,
                                int C, int OC);

/* The same gradient in two halves, for workers that each hold a share of the
 * batch's rows and each sum a share of dwt's rows (no worker then holds, or
 * sums, a whole dwt of its own). _start, on a worker's rows: db as above,
 * and cols its non-zeros by column (kept, with dout, for the second half). */
void cb_nn_sparse_backward_start(float *db, cb_nn_csr *cols, const float *dout, const cb_nn_csr *s, int B, int C,
                                 int OC);
/* One worker's part of dwt: its non-zeros by column and their dout rows
 * (cols, dout), for dwt's rows from `head` on; its input rows x (`rows`
 * rows of ldx floats) for dwt's rows [0, head), or for every row when cols
 * is NULL (a batch that took the dense layer): those rows of its part are
 * one sgemm, x's columns transposed · dout; or neither (no rows: nothing).
 * The reduction reads the workers' inputs and dout, so no worker makes, and
 * no reduction reads and zeroes, a dwt of another's. */
typedef struct cb_nn_grad_part {
    const cb_nn_csr *cols;
    const float *dout;
    int head;
    const float *x;
    int ldx, rows;
} cb_nn_grad_part;
/* _rows: dwt's rows [c0, c1) = the parts' sum: each part's sum as
 * cb_nn_sparse_backward_cols gives it (its rows' non-zeros in registers; its
 * dense rows by sgemm, as cb_nn_dense_backward_wt), the first stored and the
 * others added in part order: the bits of summing the parts' own dwt that
 * way (what a reduction of per-worker buffers gives) while a part's rows fit
 * one of sgemm's K blocks, without those buffers. */
void cb_nn_sparse_grad_rows(float *dwt, cb_nn_grad_part *parts, int n_parts, int c0, int c1, int OC);
/* Calls whose c0 is a multiple of this (and whose c1 is too, or ends the
 * dense rows) give the bits one call over all the rows gives: an sgemm's
 * rows are computed alike but for a last partial block of its kernel's
 * unroll, which such cuts never move (measured: OpenBLAS's Haswell kernel
 * takes these rows 12 at a time, a cut at 16 changed rows' bits; 48 is a
 * multiple of 12 and 16 and their divisors). */
#define CB_NN_GRAD_ROWS_ALIGN 48

#endif
