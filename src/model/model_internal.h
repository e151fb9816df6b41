/* model_internal — what the two-tower model (model.c: parameters, passes,
 * loss, inference, tensors) and its data-parallel training (train.c) share:
 * a tower's layout and scratch, cb_model's fields, and the passes and loss
 * the training steps call. Internal to libcbrec. */
#ifndef CB_MODEL_INTERNAL_H
#define CB_MODEL_INTERNAL_H

#include "model/model.h"
#include "model/nn.h"
#include "model/nn_sparse.h"

#include <stdbool.h>
#include <stdint.h>

#define MAXL (CB_MODEL_MAX_LAYERS + 1) /* dense layers per tower */

/* One tower. buf holds four equal regions with the same layout:
 * parameters | gradients | Adam first moments | Adam second moments.
 * Inside a region: the weights of every layer, then the biases (so weight
 * decay applies to a prefix of n_weights floats), then the id embedding
 * [n_emb x dim] when the tower has one (no decay). */
typedef struct tower {
    int n_layers;
    int in[MAXL], out[MAXL];
    size_t n_params, n_weights;
    float *buf;
    float *params, *grads, *adam_m, *adam_v;
    float *w[MAXL], *b[MAXL];   /* into params */
    float *dw[MAXL], *db[MAXL]; /* into grads */
    int parts;                  /* output parts normalised apart (split_heads: 2) */
    uint32_t n_emb;             /* id embedding rows (0 = none) */
    int emb_dim;                /* its width: the item tower adds it to the ranking part, the
                                   output's first columns; the user tower's (bag) is averaged
                                   over the user's history into the input's last columns */
    bool bag;                   /* the table is the user tower's history bag */
    int feat_in;                /* input columns from the feature table (in[0] without the bag) */
    float *emb, *demb;          /* into params / grads */
    uint64_t step;              /* optimiser steps taken */
    uint32_t epoch;             /* the epoch these steps belong to (epochs done before it): cb_model_lr_at */
} tower;

/* The BCE head: p = sigmoid(s·score + c). Same four-region layout. */
enum { HEAD_S = 0, HEAD_C = 1, HEAD_N = 2 };

struct cb_model {
    cb_model_config cfg;
    tower tw[2];                /* 0 = user, 1 = item */
    float head[4 * HEAD_N];     /* params | grads | m | v */
    uint64_t head_step;
    uint32_t epochs_done;
    int sparse_mode;            /* the user tower's first layer in training: 0 auto, 1 dense, 2 sparse
                                   (cb_model_set_sparse_input) */
    uint64_t w0_jitter;         /* the seed of W0's rows dealt at random (tests: cb_model_jitter_w0_shares), else 0 */
};

/* Per-tower scratch for a batch of at most `cap` rows. */
typedef struct tower_ws {
    int cap;
    float *x;            /* [cap, in]: gathered input rows */
    float *act[MAXL];    /* [cap, out_l]: post-ReLU; the last is the linear output */
    float *y[2];         /* [cap, dim]: tower output, double-buffered by step parity */
    float *norm;         /* [cap] */
    float *g0, *g1;      /* [cap, widest] backward scratch */
    float *pred, *dpred, *tgt; /* [cap] */
    float *z, *lq;       /* [cap]: rating-head output, the batch items' log q */
    float *wt;           /* [cap]: the softmax rows' weights (positive_threshold) */
    uint32_t *ids;       /* [cap]: the batch items (retrieval: duplicates are no negatives), then
                            the sampled negatives (n_cols in all) */
    int n_cols;          /* retrieval: softmax columns, the batch's items and the negatives */
    uint32_t *eids;      /* [cap]: the ids whose embedding the item tower adds (item dropout:
                            UINT32_MAX for an item shown as never rated) */
    float *prob;         /* [cap, cap]: retrieval softmax (NULL for the rating objective) */
    const uint32_t *emb_ids; /* the ids whose embedding the last forward added (or NULL) */
    uint32_t *hrow, *htgt;   /* [cap] history bag: each row's history row (NULL: none) and the
                                item left out of its bag (UINT32_MAX: none) */
    const uint32_t *h_off, *h_item; /* the history the last gather used (or NULL) */
    float *block;
    /* the sparse first layer (training's workers, user tower; csr.off NULL: dense): the batch's
     * non-zeros (at most a quarter of the inputs: a denser batch goes dense); wt0 is the pool's
     * W0, which training keeps transposed [in0, out0] (train_ctx.wt0: t->w[0] is stale until the
     * epoch ends); dwt0 holds a lone worker's W0 gradient, transposed, until the optimiser
     * reads it (clear_lone zeroes it); sparse_used: the last forward took the sparse layer;
     * csc: scratch for the non-zeros by column (the backward's).
     * split_w0 (several workers): the backward leaves W0's gradient to the reduction, which
     * sums each worker's share of W0's rows over every worker's rows (cb_nn_sparse_grad_rows):
     * w0_part is what this step left for it (csc and .dout, the layer's dL/dout for its rows,
     * and for the dense head's rows, or every row after a dense batch, its input rows x, which
     * the reduction multiplies by sgemm for its share: no worker makes a dwt0 of its own, and
     * no reduction reads and zeroes another's; nothing when the worker had no rows). */
    cb_nn_csr csr, csc;
    const float *wt0;
    float *dwt0;
    bool sparse_used, split_w0;
    cb_nn_grad_part w0_part;
    int dense_head;      /* the first layer's leading inputs that are dense (the rows form's head):
                            a sparse batch takes them by sgemm and lists only the rest */
} tower_ws;


/* Where the loss of a block of batch rows writes (see cb_model_loss_rows). */
typedef struct loss_out {
    float *du;        /* (rows, W): dL/dyu of the block's rows */
    float *dv;        /* (rows, W): dL/dym of the block's own items' rows, by the rating term */
    float *dv_all;    /* (N, W): the block's part of dL/dym of every column, softmax and rating
                         terms (dv then points into it), or NULL: the softmax's item side is
                         left to cb_nn_softmax_xent_backward_cols */
    float *head_grad; /* [HEAD_N]: the head's gradient is added here, or NULL */
    float *prob;      /* (rows, N): the block's rows of the softmax */
    float *pred;      /* (rows): the rating dots <u, v>, or NULL */
} loss_out;

/* Scratch for batches of at most cap rows through tower t (softmax: the
 * batch's [cap x cap] softmax too); cb_tower_ws_free frees it (and zeroes ws). */
int cb_tower_ws_alloc(tower_ws *ws, const tower *t, int cap, bool softmax, cb_error *err);
void cb_tower_ws_free(tower_ws *ws);
/* The sparse first layer's scratch, on the pool's transposed W0 wt0: a
 * W0-sized gradient (dwt0) for a lone worker only (ws->split_w0 set before). */
int cb_tower_ws_sparse_alloc(tower_ws *ws, const tower *t, int cap, const float *wt0, cb_error *err);
/* Whether training runs tower t's first layer sparse (tower_ws.csr). */
bool cb_model_sparse_first_layer(const cb_model *m, const tower *t);
/* Forward B rows through tower t into ws->y[par] (rows NULL: x holds B
 * contiguous rows; else rows[0..B) of table x); ids: the rows' id embedding. */
void cb_tower_forward(const tower *t, tower_ws *ws, const float *x, const uint32_t *rows, const uint32_t *ids, int B, int par, bool l2norm, float eps);
/* Backward through tower t, from dL/dy in ws->g0, ADDING into t->grads. */
void cb_tower_backward(tower *t, tower_ws *ws, int B, int par, bool l2norm, float eps);
/* The learning rate of a step in epoch `epoch`: lr · lr_decay^epoch. */
float cb_model_lr_at(const cb_model_config *c, uint32_t epoch);
/* The in-batch softmax of B examples from its gathered columns. */
cb_nn_softmax cb_model_softmax_of(const cb_model *m, const tower_ws *cols, int B);
/* The loss of the batch rows [lo, hi) of B, its gradients into o (see model.c). */
double cb_model_loss_rows(const cb_model *m, const tower_ws *cols, const float *yu, const float *ym, int B, int lo, int hi, loss_out o);
/* The BCE head's optimiser step from its gradient (m->head's second region). */
void cb_model_head_update(cb_model *m);
/* The batch's scaled targets, items and log q (log_q may be NULL), then the
 * M sampled negatives neg[0..M) (NULL: none) as further columns, into ws. */
void cb_model_gather_batch(const cb_model_config *c, tower_ws *ws, const cb_rating *ratings, const uint32_t *idx, int B, const float *log_q, const uint32_t *neg, int M);
/* The input rows of side `side` for the examples idx[0..B) into ws->x
 * (after cb_model_gather_batch): the user side with its history bag. */
void cb_model_gather_side(const cb_model *m, int side, tower_ws *ws, const cb_train_data *d, const uint32_t *idx, int B);
/* log q of d's items for the logQ correction; *out = NULL when not needed. */
int cb_model_log_q_for(float **out, const cb_model *m, const cb_train_data *d, cb_error *err);
/* Every example idx[0..n) indexes inside d's tables and has a finite target. */
int cb_model_check_data(const cb_train_data *d, const uint32_t *idx, size_t n, cb_error *err);

#endif /* CB_MODEL_INTERNAL_H */
