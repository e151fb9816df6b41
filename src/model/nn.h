/* nn — the numerical layers of the two-tower model, forward and backward:
 * dense (over cblas_sgemm), ReLU, row-wise l2-normalisation, row-wise dot
 * product, the squared-error, sigmoid cross-entropy and sampled softmax losses, the Adam and
 * SGD updates and the He / Glorot initialisers.
 *
 * Conventions (after karpathy/llm.c): matrices are row-major float; a layer is
 * two plain functions, outputs first, sizes last. Backward functions ADD into
 * their gradient outputs (the caller zeroes gradients with one memset), so a
 * parameter used twice simply receives both contributions. Every kernel that
 * goes through BLAS or SIMD has a `_naive` plain-loop twin with the same
 * contract; the tests compare the two. Nothing here allocates, prints or
 * keeps state: every function is safe to call from several threads on
 * disjoint outputs. */
#ifndef CB_NN_H
#define CB_NN_H

#include "base/util.h"
#include <stddef.h>
#include <stdint.h>

/* ---- dense: out (B,OC) = inp (B,C) · w (OC,C)ᵀ + b (OC). b may be NULL. */
void cb_nn_dense_forward(float *out, const float *inp, const float *w, const float *b,
                         int B, int C, int OC);
void cb_nn_dense_forward_naive(float *out, const float *inp, const float *w, const float *b,
                               int B, int C, int OC);
/* The same with w given transposed, wt (C,OC). */
void cb_nn_dense_forward_t(float *out, const float *inp, const float *wt, const float *b, int B, int C, int OC);
/* dinp (B,C) += dout · w      (skipped when dinp is NULL: the first layer)
 * dw  (OC,C) += doutᵀ · inp
 * db  (OC)   += column sums of dout (skipped when db is NULL) */
void cb_nn_dense_backward(float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, int B, int C, int OC);
/* The first layer's weight gradient transposed: dwt [C, OC] += inp^T dout,
 * db += dout's column sums (no input gradient: nothing is before it). */
/* db (OC) += the column sums of dout (B,OC): the bias gradient alone (the
 * same bits as the dense backwards' db). */
void cb_nn_bias_backward(float *db, const float *dout, int B, int OC);
void cb_nn_dense_backward_wt(float *dwt, float *db, const float *dout, const float *inp, int B, int C, int OC);
void cb_nn_dense_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, int B, int C, int OC);

/* ---- ReLU over n floats. out may alias inp. */
void cb_nn_relu_forward(float *out, const float *inp, size_t n);
/* dinp += dout where out > 0 (out is the forward OUTPUT; ReLU's mask). */
void cb_nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n);
/* d = d where out > 0, else 0: the backward pass into a gradient buffer that
 * holds only this layer's contribution (saves a buffer and a pass). */
void cb_nn_relu_backward_inplace(float *d, const float *out, size_t n);

/* ---- l2-normalise rows: out (B,D) = inp / max(|inp|, eps); norm (B) keeps
 * |inp| for the backward pass (same rule as torch.nn.functional.normalize). */
void cb_nn_l2norm_forward(float *out, float *norm, const float *inp, int B, int D, float eps);
/* dinp += (dout - out·<out,dout>) / |inp| when |inp| > eps, else dout / eps. */
void cb_nn_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                           int B, int D, float eps);

/* ---- row-wise dot: out (B) = Σ_d a(B,D) ⊙ b(B,D). */
void cb_nn_rowdot_forward(float *out, const float *a, const float *b, int B, int D);
/* da += dout·b, db += dout·a (either may be NULL). */
void cb_nn_rowdot_backward(float *da, float *db, const float *dout, const float *a,
                           const float *b, int B, int D);

/* ---- losses, averaged over the B examples of the batch.
 * Squared error: returns Σ (pred - y)² / B; dpred += 2 (pred - y) / B. */
double cb_nn_mse_forward(const float *pred, const float *y, int B);
void cb_nn_mse_backward(float *dpred, const float *pred, const float *y, int B);
/* Sigmoid cross-entropy on logits z = scale·v + bias with labels y in [0,1]:
 * returns Σ [max(z,0) - z·y + log(1 + e^-|z|)] / B (numerically stable).
 * prob (may be NULL) receives sigmoid(z). */
double cb_nn_bce_forward(float *prob, const float *v, const float *y, float scale, float bias, int B);
/* dv += scale·(σ(z) - y)/B; *dscale += Σ v·(σ(z) - y)/B; *dbias += Σ (σ(z) - y)/B
 * (dscale, dbias may be NULL). */
void cb_nn_bce_backward(float *dv, float *dscale, float *dbias, const float *v, const float *y,
                        float scale, float bias, int B);

/* ---- exp over n floats in place, in single precision (a Cephes-style
 * polynomial, within 2 ulp of expf on [-87, 88]; below -87.3 it flushes to
 * 0 and -INFINITY gives 0, NaN stays NaN). SIMD with a scalar tail doing the
 * same IEEE operations: every element gets the same bits wherever it sits. */
void cb_nn_exp(float *x, size_t n);

/* ---- sampled softmax cross-entropy (the retrieval objective) on a block of
 * rows of a batch.
 * The batch has B users; user i's positive item is column i of N >= B
 * columns (in-batch items, then extra sampled items in columns B..N). Logits
 * z_ij = inv_temp·<u_i,v_j> - log_q[j] (log_q (N) may be NULL: the logQ
 * correction for how often item j appears as a negative); column j is left
 * out of row i when j != i and ids[j] == ids[i] (ids (N) may be NULL): the
 * same item twice is not its own negative. Row i weighs w[i] (w (B) may be
 * NULL: all 1). The vectors are D floats at a row stride of ld >= D (a part
 * of wider rows). */
typedef struct cb_nn_softmax {
    const float *log_q;     /* (N) or NULL */
    const uint32_t *ids;    /* (N) or NULL */
    const float *w;         /* (B), by batch row, or NULL */
    float inv_temp;
    int B, N, D, ld;
} cb_nn_softmax;
/* The block is batch rows [row0, row0 + rows): u (rows, ld) holds those
 * users, v (N, ld) every column's item. Returns Σ_{i in block} w_i
 * [logsumexp_j z_ij - z_ii] / B (so the blocks of a batch add up to its
 * loss); prob (rows, N) receives w_i·softmax_j z_ij (0 in left-out columns),
 * which the backward pass reads. The fast version works in float (max
 * subtracted, cb_nn_exp, the row's sum in double); the naive one in double. */
double cb_nn_softmax_xent_forward(float *prob, const float *u, const float *v, const cb_nn_softmax *s, int row0,
                                  int rows);
double cb_nn_softmax_xent_forward_naive(float *prob, const float *u, const float *v, const cb_nn_softmax *s,
                                        int row0, int rows);
/* With g_rj = (prob_rj - w_i·[j == i]) / B, i = row0 + r (w as given to the
 * forward pass): du (rows, ld) += inv_temp · g · v; dv (N, ld) += inv_temp ·
 * gᵀ · u, the block's part of the item side's gradient (either may be NULL).
 * The item side of a batch is the sum of its blocks' dv. */
void cb_nn_softmax_xent_backward(float *du, float *dv, const float *prob, const float *u, const float *v,
                                 const cb_nn_softmax *s, int row0, int rows);
void cb_nn_softmax_xent_backward_naive(float *du, float *dv, const float *prob, const float *u, const float *v,
                                       const cb_nn_softmax *s, int row0, int rows);
/* The item side of the whole batch by columns: dv (ncols, ld) += inv_temp ·
 * g[:, col0 .. col0 + ncols)ᵀ · u, from the whole batch's prob (B, N) and
 * users u (B, ld). One sgemm over all B rows per call: OpenBLAS sums each
 * element over the rows in the same order whatever the block of columns, so
 * workers that split the columns get the bits of one that does them all. */
void cb_nn_softmax_xent_backward_cols(float *dv, const float *prob, const float *u, const cb_nn_softmax *s, int col0,
                                      int ncols);
void cb_nn_softmax_xent_backward_cols_naive(float *dv, const float *prob, const float *u, const cb_nn_softmax *s,
                                            int col0, int ncols);

/* ---- optimisers over a flat parameter buffer of n floats whose first
 * n_decay entries are weights (they receive the L2 term weight_decay·p in
 * their gradient) and whose rest are biases (no decay).
 * Adam as torch.optim.Adam: m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
 * p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps); t is the 1-based step. */
typedef struct cb_nn_adam {
    float lr, beta1, beta2, eps, weight_decay;
} cb_nn_adam;
void cb_nn_adam_update(float *p, const float *g, float *m, float *v, size_t n, size_t n_decay,
                       const cb_nn_adam *h, uint64_t t);
void cb_nn_adam_update_naive(float *p, const float *g, float *m, float *v, size_t n,
                             size_t n_decay, const cb_nn_adam *h, uint64_t t);
/* Plain SGD: p -= lr · (g + weight_decay·p on the first n_decay entries). */
void cb_nn_sgd_update(float *p, const float *g, size_t n, size_t n_decay, float lr,
                      float weight_decay);

/* ---- initialisers (uniform, like Keras' he_uniform / glorot_uniform). */
/* w[0..n) ~ U(-sqrt(6/fan_in), +sqrt(6/fan_in)): for layers followed by ReLU. */
void cb_nn_init_he(float *w, size_t n, int fan_in, cb_rng *rng);
/* w[0..n) ~ U(-sqrt(6/(fan_in+fan_out)), +...): for the linear output layer. */
void cb_nn_init_glorot(float *w, size_t n, int fan_in, int fan_out, cb_rng *rng);

/* True when all n floats are finite. */
int cb_nn_all_finite(const float *x, size_t n);

#endif /* CB_NN_H */
