/* train — the two-tower model's training (cb_model_train): data-parallel
 * steps on the worker pool of parallel.c (workers split the batch rows;
 * under a cb_train_comm, ranks split them first), the gradients' sum and
 * the optimiser, W0's rows dealt by the workers' measured times, and the
 * ranks' agreement checks. The model's passes and loss are model.c's. */
#include "model/model_internal.h"
#include "model/comm.h"
#include "model/negatives.h"
#include "model/parallel.h"
#include "base/threads.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Data-parallel steps (the worker pool of parallel.c). Every worker runs BOTH
 * towers on its share of the batch rows (of this rank's part of the batch,
 * under a cb_train_comm) and writes its rows of the batch's outputs yu, ym.
 * After a barrier (across processes, an all-gather of the other ranks' rows)
 * the loss is computed by chunks of LOSS_CHUNK batch rows (cb_model_loss_rows), the
 * chunks split across the workers of every rank: a chunk's rows of the
 * in-batch softmax over every item of the batch, dL/dyu of its rows, the
 * rating term's dL/dym of its items, its loss and head gradient, into
 * batch-wide buffers. A chunk's bits depend only on the chunk (sgemm's
 * rounding depends on its row count), so 1, 2 or N workers, or ranks,
 * compute the same loss. After a barrier (across processes, an all-gather
 * of those buffers) each worker computes dL/dym of the items it forwarded,
 * its columns of the softmax over all rows (one sgemm over the rows: the
 * same bits whoever computes a column), and backpropagates its own rows
 * into its own flat gradient buffer [user tower | item tower | head] (the sparse first
 * layer's W0 aside: see w0_rows; the worker zeroes it first). The buffers are summed
 * slice by slice in worker order (deterministic for a given thread count),
 * across ranks (one all-reduce of the flat sum), and each worker applies the
 * optimiser to its slice. Four barriers per step; eight across processes.
 * The batch loss is the sum of the workers' (and ranks') parts, the same on
 * every worker and rank, so all stop at a NaN alike.
 * Sampled negatives (c->negatives = M): every rank draws the same M items a
 * step; they are split across ranks and workers like the batch rows, each
 * worker runs the item tower on its batch rows then its negatives, and the
 * outputs follow the batch's B rows in ym (all-gathered apart), so the loss
 * sees B + M columns; whoever forwarded a negative backpropagates it. */

/* Rows of the batch per loss chunk: small enough to share a batch of 256 among
 * 16 workers, large enough for sgemm's blocking. */
#define LOSS_CHUNK 16

typedef struct worker {
    tower_ws ws[2];          /* its rows (ws[1]: then its negatives); outputs copied to the batch's */
    cb_model view;           /* the model with this worker's gradient buffer (tw[].grads, head) */
    int rows;                /* its rows this step */
    int neg_lo, n_neg;       /* its sampled negatives this step: [neg_lo, neg_lo + n_neg) of the step's M,
                                item-tower rows after its batch rows (ws[1]), outputs at x->ym row B + neg_lo */
    uint32_t *touched[2];    /* [rows + n_neg]: the id-embedding rows its items reached, by step parity */
    int n_touched[2];
    /* its part of W0's gradient sum and update (w0_slice, balance_w0): the first and its
     * share of the rows' cost (w0_from, w0_share; written by worker 0 between a step's last
     * barrier and the next step's first), and the wall seconds of its last step's sum +
     * update (written by itself before the last barrier) and their running mean */
    double w0_from, w0_share, upd_seconds, upd_mean;
} worker;

typedef struct train_ctx {
    cb_model *m;
    const cb_train_data *d;
    const cb_train_comm *comm; /* several processes, or NULL */
    int rank, n_ranks;
    cb_pool *pool;
    int n_workers;
    worker *wk;              /* [n_workers] */
    float *yu, *ym;          /* the whole batch's tower outputs [batch x out_dim]; ym then has the
                                step's sampled negatives [negatives x out_dim] */
    tower_ws cols;           /* the whole batch's targets, weights, items and log q (cb_model_gather_batch) */
    float *prob;             /* [batch x columns]: the batch's softmax (retrieval) */
    float *du, *dvr;         /* [batch x out_dim]: dL/dyu, and the rating term's dL/dym of the batch's items */
    float *chunk;            /* [chunks x 4]: each loss chunk's loss (as two floats whose sum keeps
                                ~48 bits) and head gradient */
    float **grad;            /* [n_workers + 1] flat gradient buffers; the last is their sum */
    size_t n_flat;           /* floats in each: user tower, item tower, head (HEAD_N) */
    /* the item-id embedding in that layout: rows of emb_dim floats from emb_lo (emb_dim 0: none).
     * A batch reaches few of its rows, so their gradients are zeroed and summed by the rows
     * the workers' items touched, not densely. */
    size_t emb_lo, emb_dim, n_emb;
    /* the id embedding's rows this step's items reach, ascending, each once ([B + M]; worker 0
     * before the forward's barrier; kept for the lazy update and across ranks, else NULL) */
    uint32_t *emb_live;
    size_t n_emb_live;
    float *stage;            /* across ranks: the blocks of a packed all-gather (gather_packed) */
    bool lazy_emb;            /* only the live rows are updated (lazy Adam) */
    /* the sparse first layer (wt0 NULL: none). Training keeps the user tower's W0 and its Adam
     * moments transposed, [in0, out0] each (wt0, mt0, vt0; back in the model at the end of an
     * epoch): the layer reads rows of W0ᵀ, its gradient comes out
     * transposed (a lone worker's dwt0; several workers': w0_rows), and no step transposes.
     * The flat layout's W0 part, [0, w0_n), then holds the gradient transposed too. */
    size_t w0_n;
    float *wt0, *mt0, *vt0;
    uint64_t n_steps;        /* steps taken in this call: the parity of the touched lists */
    uint32_t *perm;          /* shuffled training indices of this epoch */
    float *log_q;            /* [n_items] the logQ correction (retrieval), else NULL */
    cb_negatives neg;        /* the sampled negatives' distribution (neg.m = 0: none) */
    uint32_t *neg_ids;       /* [n_batches x neg.m] this epoch's draws, or NULL */
    size_t n_batches;
    uint32_t epoch_id;       /* epochs run before this one (counts across resumed runs) */
    /* written by worker 0 before a barrier, read by all after it */
    bool nan_seen;           /* a step produced a non-finite loss */
    bool comm_failed;        /* a call of comm returned non-zero */
    /* a progress tick returned non-zero: the step every worker stops at
     * (SIZE_MAX: none). Worker 0 sets it a step ahead, so all see it after
     * that step's first barrier. */
    atomic_size_t stop_step;
    size_t steps_done;       /* steps completed this epoch */
    double loss_sum;         /* Σ batch loss · batch size, this epoch */
    cb_rng w0_rng;           /* W0's shares at random each step (tests: the model's w0_jitter seeds it) */
    double phase[4];         /* worker 0's seconds: towers, loss, reduce + update, barriers, on
                                the timed steps (PHASE_EVERY) */
    uint64_t phase_steps;    /* the timed steps that completed */
    /* progress ticks */
    cb_epoch_fn fn;
    void *fn_ctx;
    cb_epoch_report *tick;
    double epoch_t0;
    size_t tick_every;
} train_ctx;

/* Item dropout on the item tower's gathered rows first .. first + B (ws->x,
 * ws->ids), rows row0 .. row0 + B of the batch's item side (its B items,
 * then the sampled negatives): each row, with probability c->item_dropout,
 * loses its id embedding (ws->eids) and has the interaction-derived columns
 * (d->item_cold, non-NAN entries) set to a never-rated item's values. The
 * draw depends on the seed, the epoch, the step and the batch row only: the
 * same bits whichever worker runs the row. */
static void item_dropout(const cb_model_config *c, const cb_train_data *d, tower_ws *ws, int first, int B, int row0,
                         uint32_t epoch_id, size_t step) {
    memcpy(ws->eids + first, ws->ids + first, (size_t)B * sizeof *ws->eids);
    if (!(c->item_dropout > 0.0f)) return;
    uint32_t in = c->item_in;
    cb_rng rng;
    cb_rng_seed(&rng, c->seed ^ (0xD1B54A32D192ED03ULL * ((uint64_t)epoch_id + 1)) ^ (0x8CB92BA72F3D8DD7ULL * (step + 1)));
    for (int r = 0; r < row0; r++) cb_rng_uniform(&rng); /* one draw per batch row */
    for (int r = first; r < first + B; r++) {
        if (cb_rng_uniform(&rng) >= (double)c->item_dropout) continue;
        ws->eids[r] = UINT32_MAX;
        if (!d->item_cold) continue;
        float *row = ws->x + (size_t)r * in;
        for (uint32_t j = 0; j < in; j++)
            if (!isnan(d->item_cold[j])) row[j] = d->item_cold[j];
    }
}

/* User dropout on the user tower's gathered rows, as item_dropout: the
 * columns of d->user_cold at their cold values and an empty history bag
 * (hrow UINT32_MAX: bag_backward skips the row). */
static void user_dropout(const cb_model *m, const cb_train_data *d, tower_ws *ws, int B, int row0, uint32_t epoch_id,
                         size_t step) {
    const cb_model_config *c = &m->cfg;
    if (!(c->user_dropout > 0.0f)) return;
    const tower *t = &m->tw[0];
    int in0 = t->in[0], fi = t->feat_in;
    cb_rng rng;
    cb_rng_seed(&rng, c->seed ^ (0xA0761D6478BD642FULL * ((uint64_t)epoch_id + 1)) ^ (0xE7037ED1A0B428DBULL * (step + 1)));
    for (int r = 0; r < row0; r++) cb_rng_uniform(&rng);
    for (int r = 0; r < B; r++) {
        if (cb_rng_uniform(&rng) >= (double)c->user_dropout) continue;
        float *row = ws->x + (size_t)r * in0;
        for (int j = 0; d->user_cold && j < fi; j++)
            if (!isnan(d->user_cold[j])) row[j] = d->user_cold[j];
        if (t->bag) {
            memset(row + fi, 0, (size_t)(in0 - fi) * sizeof *row);
            ws->hrow[r] = UINT32_MAX;
        }
    }
}

/* v = t with its gradients in `grads` (a region of t's layout); the
 * parameters stay t's. */
static void tower_grad_view(tower *v, const tower *t, float *grads) {
    *v = *t;
    v->grads = grads;
    for (int l = 0; l < t->n_layers; l++) {
        v->dw[l] = grads + (t->dw[l] - t->grads);
        v->db[l] = grads + (t->db[l] - t->grads);
    }
    if (t->demb) v->demb = grads + (t->demb - t->grads);
}

/* Worker w's rows [*lo, *hi) of a batch of B rows: its share of this rank's part. */
static void worker_rows(const train_ctx *x, int w, int B, int *lo, int *hi) {
    size_t rlo, rhi, a, b;
    cb_pool_split((size_t)B, x->n_ranks, x->rank, 1, &rlo, &rhi);
    cb_pool_split(rhi - rlo, x->n_workers, w, 1, &a, &b);
    *lo = (int)(rlo + a);
    *hi = (int)(rlo + b);
}

/* Both towers forward on the batch rows [lo, hi) of B (examples idx[lo..hi)),
 * the item tower also on the sampled negatives [nlo, nhi) of the step's
 * neg[] (NULL: none), which follow the batch rows in k->ws[1]; the outputs go
 * to those rows of x->yu, x->ym (the negatives at rows B + nlo ..). */
static void forward_rows(train_ctx *x, worker *k, const uint32_t *idx, int B, int lo, int hi, const uint32_t *neg,
                         int nlo, int nhi, size_t step) {
    cb_model *m = x->m;
    const cb_model_config *c = &m->cfg;
    const cb_train_data *d = x->d;
    int b = hi - lo, nb = neg ? nhi - nlo : 0;
    size_t W = cb_model_out_dim(m);
    k->rows = b;
    k->neg_lo = nlo;
    k->n_neg = nb;
    for (int s = 0; s < 2; s++) {
        tower_ws *ws = &k->ws[s];
        int rows = s == 1 ? b + nb : b;
        if (rows == 0) continue;
        cb_model_gather_batch(c, ws, d->ratings, idx + lo, b, x->log_q, s == 1 && nb ? neg + nlo : NULL, nb);
        cb_model_gather_side(m, s, ws, d, idx + lo, b);
        if (s == 0) user_dropout(m, d, ws, b, lo, x->epoch_id, step);
        if (s == 1) item_dropout(c, d, ws, 0, b, lo, x->epoch_id, step);
        if (s == 1 && nb) item_dropout(c, d, ws, b, nb, B + nlo, x->epoch_id, step);
        cb_tower_forward(&m->tw[s], ws, ws->x, NULL, s == 1 ? ws->eids : NULL, rows, 0, c->l2norm, c->l2norm_eps);
        float *y = s == 0 ? x->yu : x->ym;
        memcpy(y + (size_t)lo * W, ws->y[0], (size_t)b * W * sizeof(float));
        if (nb && s == 1) memcpy(y + (size_t)(B + nlo) * W, ws->y[0] + (size_t)b * W, (size_t)nb * W * sizeof(float));
    }
}

/* Zero worker w's gradient buffer before its backward adds into it, by the
 * worker itself (the reduction only reads the buffers: zeroing them there
 * wrote every other worker's lines, which each owner's next backward then
 * fetched back): the dense parts whole; of the id embedding, the rows its
 * previous step reached. Lists the rows its items reach this step. W0's
 * part is not in the buffer (w0_rows; a lone worker's dwt0: clear_lone). */
static void zero_grads(train_ctx *x, int w) {
    worker *k = &x->wk[w];
    float *g = x->grad[w];
    int par = (int)(x->n_steps & 1);
    size_t D = x->emb_dim, lo = x->emb_lo, ehi = D ? lo + x->n_emb * D : x->n_flat;
    memset(g + x->w0_n, 0, ((D ? lo : x->n_flat) - x->w0_n) * sizeof *g);
    memset(g + ehi, 0, (x->n_flat - ehi) * sizeof *g);
    if (!D) return;
    for (int i = 0; i < k->n_touched[par ^ 1]; i++) memset(g + lo + k->touched[par ^ 1][i] * D, 0, D * sizeof(float));
    const tower_ws *ws = &k->ws[1];
    int n = 0;
    for (int r = 0; ws->emb_ids && r < k->rows + k->n_neg; r++)
        if (ws->emb_ids[r] < x->n_emb) k->touched[par][n++] = ws->emb_ids[r];
    k->n_touched[par] = n;
}

/* sum[a, b) inside the id embedding: the rows this step's items reached.
 * The sum's other rows are zero: each step's rows are zeroed once updated
 * (emb_rows_clear), so no step passes over the whole. */
static void reduce_emb_rows(train_ctx *x, float *sum, size_t a, size_t b) {
    size_t elo = x->emb_lo, D = x->emb_dim;
    int par = (int)(x->n_steps & 1);
    for (int v = 0; v < x->n_workers; v++) /* a row listed twice is summed twice: the same bits */
        for (int i = 0; i < x->wk[v].n_touched[par]; i++) {
            size_t r0 = elo + x->wk[v].touched[par][i] * D, r1 = r0 + D;
            r0 = r0 > a ? r0 : a, r1 = r1 < b ? r1 : b;
            if (r0 < r1) cb_pool_reduce(sum, x->grad, x->n_workers, r0, r1);
        }
}

/* The rows of sum[a, b) inside the id embedding that this step's items
 * reach (x->cols: the batch's and the negatives', on every rank: every row
 * reduce_emb_rows or the all-reduce wrote) zeroed, once updated. */
static void emb_rows_clear(train_ctx *x, float *sum, size_t a, size_t b) {
    size_t elo = x->emb_lo, D = x->emb_dim, ehi = elo + x->n_emb * D;
    a = a > elo ? a : elo, b = b < ehi ? b : ehi;
    for (int r = 0; a < b && r < x->cols.n_cols; r++) {
        if (x->cols.ids[r] >= x->n_emb) continue;
        size_t r0 = elo + x->cols.ids[r] * D, r1 = r0 + D;
        r0 = r0 > a ? r0 : a, r1 = r1 < b ? r1 : b;
        if (r0 < r1) memset(sum + r0, 0, (r1 - r0) * sizeof(float));
    }
}

/* sum[a, b) in W0's part (whole rows of W0ᵀ): computed here from every
 * worker's part (tower_ws.split_w0), each summed on its own and added in
 * worker order: the bits of the workers' own transposed W0 gradients summed
 * in worker order, as the reduction of their buffers gave. */
static void w0_rows(train_ctx *x, float *sum, size_t a, size_t b) {
    int OC = x->m->tw[0].out[0];
    cb_nn_grad_part parts[CB_THREADS_MAX];
    for (int v = 0; v < x->n_workers; v++) parts[v] = x->wk[v].ws[0].w0_part;
    cb_nn_sparse_grad_rows(sum, parts, x->n_workers, (int)(a / (size_t)OC), (int)(b / (size_t)OC), OC);
}

/* sum[lo, hi) = the workers' gradients summed in worker order: W0's
 * (transposed) by w0_rows; the id embedding's only where this step's items
 * reached; the rest from the flat buffers, which their owners zero before
 * the next backward (zero_grads). */
static void reduce_range(train_ctx *x, size_t lo, size_t hi) {
    float *sum = x->grad[x->n_workers];
    size_t elo = x->emb_lo, ehi = elo + x->n_emb * x->emb_dim;
    for (size_t a = lo, b; a < hi; a = b) {
        if (a < x->w0_n) {
            b = hi < x->w0_n ? hi : x->w0_n;
            w0_rows(x, sum, a, b);
        } else if (a >= elo && a < ehi) {
            b = hi < ehi ? hi : ehi;
            reduce_emb_rows(x, sum, a, b);
        } else {
            b = a < elo && elo < hi ? elo : hi;
            cb_pool_reduce(sum, x->grad, x->n_workers, a, b);
        }
    }
}

/* A lone worker's W0 gradient (dwt0) zeroed once the optimiser has read
 * it (its flat buffer: zero_grads). */
static void clear_lone(train_ctx *x) {
    if (x->wt0) memset(x->wk[0].ws[0].dwt0, 0, x->w0_n * sizeof(float));
}

/* The loss chunks [*lo, *hi) of worker w of `rank` for a batch of B rows:
 * the rank's share first, then its workers' (as worker_rows), so a rank's
 * range never depends on how many workers the other ranks run. */
static void loss_chunks(const train_ctx *x, int w, int B, int rank, int *lo, int *hi) {
    size_t n = ((size_t)B + LOSS_CHUNK - 1) / LOSS_CHUNK, rlo, rhi, a, b;
    cb_pool_split(n, x->n_ranks, rank, 1, &rlo, &rhi);
    cb_pool_split(rhi - rlo, x->n_workers, w, 1, &a, &b);
    *lo = (int)(rlo + a), *hi = (int)(rlo + b);
}

/* Worker w's chunks of the batch's loss, into x->prob, x->du, x->dvr and
 * x->chunk; zeroes its gradient buffer. */
static void loss_block(train_ctx *x, int w, int B) {
    size_t W = cb_model_out_dim(x->m), N = (size_t)x->cols.n_cols;
    int c_lo, c_hi;
    zero_grads(x, w);
    loss_chunks(x, w, B, x->rank, &c_lo, &c_hi);
    for (int ch = c_lo; ch < c_hi; ch++) {
        int lo = ch * LOSS_CHUNK, hi = lo + LOSS_CHUNK < B ? lo + LOSS_CHUNK : B;
        float *st = x->chunk + 4 * (size_t)ch;
        st[2] = st[3] = 0.0f;
        loss_out o = {.du = x->du + lo * W, .dv = x->dvr + lo * W, .head_grad = st + 2,
                      .prob = x->prob ? x->prob + lo * N : NULL};
        double loss = cb_model_loss_rows(x->m, &x->cols, x->yu, x->ym, B, lo, hi, o);
        st[0] = (float)loss;
        st[1] = (float)(loss - st[0]);
    }
}

/* The batch loss: the chunks' in chunk order (the same bits on every worker and rank). */
static double batch_loss(const train_ctx *x, int B) {
    double loss = 0.0;
    for (int ch = 0; ch < (B + LOSS_CHUNK - 1) / LOSS_CHUNK; ch++)
        loss += (double)x->chunk[4 * ch] + x->chunk[4 * ch + 1];
    return loss;
}

/* A piece of a rank's block in a packed all-gather: n floats from `at`. */
typedef struct span {
    size_t at, n;
} span;

/* Rank r's pieces (piece k: sp[k * n_ranks + r] of buf[k], NULL: none)
 * copied into `block` (pack) or out of it. */
static void stage_copy(const train_ctx *x, int K, float *const *buf, const span *sp, int r, float *block, bool pack) {
    for (int k = 0; k < K; k++) {
        const span *p = &sp[k * x->n_ranks + r];
        if (!buf[k] || !p->n) continue;
        if (pack) memcpy(block, buf[k] + p->at, p->n * sizeof(float));
        else memcpy(buf[k] + p->at, block, p->n * sizeof(float));
        block += p->n;
    }
}

/* Across ranks (worker 0): K buffers' pieces in one call of comm's
 * all-gather: this rank's pieces packed into its block of x->stage, the
 * other ranks' unpacked from theirs. Each call is a point where every rank
 * waits for the slowest (mpi.c's arrived) and has its own set-up; the
 * copies cost about what the calls saved would (docs/scale.md, "One
 * collective of each kind a step"). */
static int gather_packed(train_ctx *x, int K, float *const *buf, const span *sp) {
    int R = x->n_ranks, count[R], offset[R];
    size_t at = 0, mine = 0;
    for (int r = 0; r < R; r++) {
        size_t n = 0;
        for (int k = 0; k < K; k++) n += buf[k] ? sp[k * R + r].n : 0;
        mine = r == x->rank ? at : mine;
        offset[r] = (int)at, count[r] = (int)n; /* at most x->stage's floats: checked to fit an int */
        at += n;
    }
    stage_copy(x, K, buf, sp, x->rank, x->stage + mine, true);
    if (x->comm->allgather(x->comm->ctx, x->stage, count, offset)) return 1;
    for (int r = 0; r < R; r++)
        if (r != x->rank) stage_copy(x, K, buf, sp, r, x->stage + offset[r], false);
    return 0;
}

/* Rows [a, b) of a buffer of `width` floats a row, as a span (none when b <= a). */
static span rows_span(size_t a, size_t b, size_t width) { return (span){a * width, b > a ? (b - a) * width : 0}; }

/* Across ranks (worker 0): the other ranks' parts of the loss buffers
 * (rank r's chunks are contiguous: its workers'): the softmax rows whole in
 * place (every rank reads every row; B x (B + M) floats, not staged), then
 * in one packed all-gather the chunks' losses whole, and
 * of dL/dyu and the rating term's dL/dym only the rows a rank computed
 * outside its own forward rows (worker_rows), below and above them: a
 * rank's backward reads its own rows alone, and at a batch that splits
 * into whole chunks (256 on 2 ranks) there are none. */
static int gather_loss(train_ctx *x, int B) {
    int R = x->n_ranks, n_chunks = (B + LOSS_CHUNK - 1) / LOSS_CHUNK, first[R + 1];
    for (int r = 0; r < R; r++) {
        int unused;
        loss_chunks(x, 0, B, r, &first[r], &unused);
    }
    first[R] = n_chunks;
    float *bufs[6] = {x->chunk, x->prob, x->du, x->du, x->dvr, x->dvr};
    size_t W = cb_model_out_dim(x->m), N = (size_t)x->cols.n_cols;
    span sp[6 * R];
    for (int r = 0; r < R; r++) {
        size_t a = (size_t)first[r] * LOSS_CHUNK, b = (size_t)first[r + 1] * LOSS_CHUNK, lo, hi;
        a = a < (size_t)B ? a : (size_t)B, b = b < (size_t)B ? b : (size_t)B; /* its loss rows */
        cb_pool_split((size_t)B, R, r, 1, &lo, &hi);                             /* its forward rows */
        sp[r] = rows_span((size_t)first[r], (size_t)first[r + 1], 4);
        sp[R + r] = rows_span(a, b, N);
        for (int k = 2; k < 6; k += 2) {
            sp[k * R + r] = rows_span(a, b < lo ? b : lo, W);
            sp[(k + 1) * R + r] = rows_span(a > hi ? a : hi, b, W);
        }
    }
    if (x->prob) { /* the softmax rows in place, in a call of their own: B x (B + M) floats, which staging doubled */
        int count[R], offset[R];
        for (int r = 0; r < R; r++) count[r] = (int)sp[R + r].n, offset[r] = (int)sp[R + r].at;
        if (x->comm->allgather(x->comm->ctx, x->prob, count, offset)) return 1;
        bufs[1] = NULL;
    }
    return gather_packed(x, 6, bufs, sp);
}

/* The head's gradient of the batch: the chunks' in chunk order, into worker
 * 0's buffer on rank 0 (the all-reduce adds the other ranks' zeros). */
static void head_grad(train_ctx *x, int w, int B) {
    if (w != 0 || x->rank != 0) return;
    float *hg = x->grad[0] + x->n_flat - HEAD_N;
    for (int ch = 0; ch < (B + LOSS_CHUNK - 1) / LOSS_CHUNK; ch++)
        hg[HEAD_S] += x->chunk[4 * ch + 2], hg[HEAD_C] += x->chunk[4 * ch + 3];
}

/* Worker w's rows [lo, hi) of B, and its sampled negatives, backpropagated
 * into its buffer: the user side from the loss chunks' dL/dyu; the item
 * side from the rating term's (the chunks) and the softmax's columns of its
 * items, over the whole batch's rows. */
static void backward_rows(train_ctx *x, int w, int B, int lo, int hi) {
    worker *k = &x->wk[w];
    const cb_model_config *c = &x->m->cfg;
    size_t W = cb_model_out_dim(x->m);
    int b = hi - lo, nb = k->n_neg;
    float *dv = k->ws[1].g0;
    memcpy(k->ws[0].g0, x->du + (size_t)lo * W, (size_t)b * W * sizeof(float));
    memcpy(dv, x->dvr + (size_t)lo * W, (size_t)b * W * sizeof(float));
    memset(dv + (size_t)b * W, 0, (size_t)nb * W * sizeof(float));
    head_grad(x, w, B);
    if (x->prob) {
        cb_nn_softmax sm = cb_model_softmax_of(x->m, &x->cols, B);
        cb_nn_softmax_xent_backward_cols(dv, x->prob, x->yu, &sm, lo, b);
        cb_nn_softmax_xent_backward_cols(dv + (size_t)b * W, x->prob, x->yu, &sm, B + k->neg_lo, nb);
    }
    k->ws[0].w0_part = (cb_nn_grad_part){0}; /* no rows: nothing for W0's gradient */
    for (int s = 0; s < 2; s++) {
        int rows = s == 1 ? b + nb : b;
        if (rows) cb_tower_backward(&k->view.tw[s], &k->ws[s], rows, 0, c->l2norm, c->l2norm_eps);
    }
}

/* The optimiser on n parameters p of tower t (the first n_decay decayed),
 * from their gradients g, with their Adam moments mo, v. */
static void optimise(const cb_model_config *c, const tower *t, float *p, const float *g, float *mo, float *v, size_t n,
                     size_t n_decay) {
    float lr = cb_model_lr_at(c, t->epoch);
    if (c->optimizer == CB_OPT_ADAM) {
        cb_nn_adam h = {lr, c->adam_beta1, c->adam_beta2, c->adam_eps, c->weight_decay};
        cb_nn_adam_update(p, g, mo, v, n, n_decay, &h, t->step + 1);
    } else {
        cb_nn_sgd_update(p, g, n, n_decay, lr, c->weight_decay);
    }
}

/* The optimiser on the live rows of the id embedding within the flat
 * range [a, b) of tower t (whose first float is at flat offset off). */
static void lazy_rows(train_ctx *x, const tower *t, const float *g, size_t a, size_t b, size_t off) {
    size_t D = x->emb_dim;
    for (size_t k = 0; k < x->n_emb_live; k++) {
        size_t r0 = x->emb_lo + x->emb_live[k] * D, r1 = r0 + D;
        r0 = r0 > a ? r0 : a, r1 = r1 < b ? r1 : b;
        if (r0 >= r1) continue;
        size_t i = r0 - off;
        optimise(&x->m->cfg, t, t->params + i, g + r0, t->adam_m + i, t->adam_v + i, r1 - r0, 0);
    }
}

/* The id embedding's rows this step's items reach, ascending, each once. */
static void live_rows(train_ctx *x) {
    size_t n = 0;
    for (int r = 0; r < x->cols.n_cols; r++)
        if (x->cols.ids[r] < x->n_emb) x->emb_live[n++] = x->cols.ids[r];
    qsort(x->emb_live, n, sizeof *x->emb_live, cb_cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (!u || x->emb_live[u - 1] != x->emb_live[i]) x->emb_live[u++] = x->emb_live[i];
    x->n_emb_live = u;
}

/* The optimiser on the flat parameter range [lo, hi) (user tower, item
 * tower; the head with `head`) from the summed gradients g; W0's part on
 * its transposed copy (x->wt0), from g_w0 (transposed alike, at the same
 * offsets: g, or a lone worker's dwt0). Elementwise, so slices give the
 * bits of one pass. */
static void update_range(train_ctx *x, const float *g, const float *g_w0, size_t lo, size_t hi, bool head) {
    cb_model *m = x->m;
    size_t off = 0;
    for (int s = 0; s < 2; s++) {
        tower *t = &m->tw[s];
        size_t end = off + t->n_params;
        for (size_t a = lo > off ? lo : off, b; a < hi && a < end; a = b) {
            bool w0 = a < x->w0_n; /* the W0 part is the user tower's first floats */
            b = hi < end ? hi : end;
            b = w0 && x->w0_n < b ? x->w0_n : b;
            b = x->lazy_emb && a < x->emb_lo && x->emb_lo < b ? x->emb_lo : b; /* the id embedding on its own */
            size_t i = a - off, n = b - a, n_decay = i < t->n_weights ? (t->n_weights - i < n ? t->n_weights - i : n) : 0;
            if (w0) optimise(&m->cfg, t, x->wt0 + i, g_w0 + a, x->mt0 + i, x->vt0 + i, n, n_decay);
            else if (x->lazy_emb && a >= x->emb_lo) lazy_rows(x, t, g, a, b, off);
            else optimise(&m->cfg, t, t->params + i, g + a, t->adam_m + i, t->adam_v + i, n, n_decay);
        }
        off = end;
    }
    if (head) {
        memcpy(m->head + HEAD_N, g + off, HEAD_N * sizeof(float));
        cb_model_head_update(m);
    }
}

/* The other ranks' rows of the batch's outputs, in one all-gather: the B
 * batch rows of both sides, then the item side's M sampled negatives. */
static int gather_outputs(train_ctx *x, int B, int M) {
    int R = x->n_ranks;
    size_t W = cb_model_out_dim(x->m);
    float *bufs[3] = {x->yu, x->ym, M ? x->ym + (size_t)B * W : NULL};
    span sp[3 * R];
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < R; r++) {
            size_t lo, hi;
            cb_pool_split((size_t)(k == 2 ? M : B), R, r, 1, &lo, &hi);
            sp[k * R + r] = (span){lo * W, (hi - lo) * W};
        }
    return gather_packed(x, 3, bufs, sp);
}

/* The id embedding's live rows (x->emb_live, ascending) moved down in
 * `sum` to its first rows, the head after them (pack), or back (unpack),
 * which leaves the rows not live zero again. Each live row is at or after
 * its slot, so the ascending moves overwrite no row still to move; the
 * descending moves back write no slot still to read, and a slot that is
 * not a live row's own place is zeroed once read. */
static void emb_pack(train_ctx *x, float *sum, bool pack) {
    size_t D = x->emb_dim, u = x->n_emb_live, n = x->n_emb;
    const uint32_t *rows = x->emb_live;
    float *emb = sum + x->emb_lo, *head = emb + n * D, *slot_head = emb + u * D; /* the head follows the embedding */
    if (pack) {
        for (size_t i = 0; i < u; i++)
            if (rows[i] != i) memcpy(emb + i * D, emb + rows[i] * D, D * sizeof *emb);
        memmove(slot_head, head, HEAD_N * sizeof *emb);
        return;
    }
    if (u < n) {
        memmove(head, slot_head, HEAD_N * sizeof *emb);
        size_t end = (u * D + HEAD_N < n * D ? u * D + HEAD_N : n * D); /* not the head's own floats */
        memset(slot_head, 0, (end - u * D) * sizeof *emb);
    }
    for (size_t i = u; i-- > 0;)
        if (rows[i] != i) {
            memcpy(emb + rows[i] * D, emb + i * D, D * sizeof *emb);
            memset(emb + i * D, 0, D * sizeof *emb);
        }
}

/* The ranks' gradient sums added into every rank's `sum` (comm's
 * all-reduce, worker 0), in one call for both towers and the head: with
 * the item-id embedding, of the dense part, then only the embedding's rows
 * this step's items reach (x->emb_live: the same on every rank; at 27k
 * items the embedding is 71 % of the floats), then the head, packed in
 * place (emb_pack: the dense part is not copied). Every other row is zero
 * on every rank, so each float is the sum the whole buffer's all-reduce
 * gives. */
static int reduce_ranks(train_ctx *x, float *sum) {
    const cb_train_comm *cm = x->comm;
    if (!x->emb_dim) return cm->allreduce_sum(cm->ctx, sum, x->n_flat);
    emb_pack(x, sum, true);
    int rc = cm->allreduce_sum(cm->ctx, sum, x->emb_lo + x->n_emb_live * x->emb_dim + HEAD_N);
    emb_pack(x, sum, false);
    return rc;
}

/* Worker 0's CPU clock (its thread's CPU seconds: on a loaded machine the
 * wall clock would count the time spent waiting for a core). */
static double worker_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Steps a phase clock is read on: one in PHASE_EVERY, on worker 0 (the
 * thread CPU clock is a system call, ~1.3 us on a VM, and eleven a step cost
 * 1.7 % of a small model's 2-thread step, on the path the other workers wait
 * for). The phases are scaled to every step at the end (cb_train_result);
 * an epoch's first step, which first touches its buffers, is never timed. */
#define PHASE_EVERY 8

/* Adds worker 0's CPU seconds since *t to phase[i], on a timed step. */
static void lap(train_ctx *x, bool timed, int i, double *t) {
    if (!timed) return;
    double now = worker_clock();
    x->phase[i] += now - *t;
    *t = now;
}

/* The user tower's W0 and its Adam moments into their transposed training
 * copies (x->wt0, mt0, vt0), or back into the model: worker w's share of
 * the rows. */
static void w0_copy(train_ctx *x, int w, bool into_copy) {
    if (!x->wt0) return;
    tower *t = &x->m->tw[0];
    int OC = t->out[0], C = t->in[0], rows = into_copy ? OC : C;
    size_t r0, r1;
    cb_pool_split((size_t)rows, x->n_workers, w, 1, &r0, &r1);
    float *model[3] = {t->params, t->adam_m, t->adam_v}, *copy[3] = {x->wt0, x->mt0, x->vt0}; /* W0 is first */
    for (int i = 0; i < 3; i++)
        if (into_copy) cb_nn_transpose_rows(copy[i], model[i], OC, C, (int)r0, (int)r1);
        else cb_nn_transpose_rows(model[i], copy[i], C, OC, (int)r0, (int)r1);
}

/* Worker w's slices of the towers' flat parameters, for the gradient sum
 * and the optimiser: its share of each of the W0 part, the id embedding
 * (the towers' last floats) and the rest between them, which cost the sum
 * differently, so each splits evenly. */
static void worker_slices(const train_ctx *x, int w, size_t sl[3][2]) {
    size_t n_tw = x->n_flat - HEAD_N, cut[4] = {0, x->w0_n, x->emb_dim ? x->emb_lo : n_tw, n_tw};
    for (int i = 0; i < 3; i++) { /* W0's part by whole rows of W0ᵀ (w0_rows) */
        cb_pool_split(cut[i + 1] - cut[i], x->n_workers, w, i == 0 ? (size_t)x->m->tw[0].out[0] : 16, &sl[i][0],
                      &sl[i][1]);
        sl[i][0] += cut[i], sl[i][1] += cut[i];
    }
}

/* A row of W0ᵀ's optimiser update, in the gradient's cost units (one
 * non-zero of a batch row: OC multiply-adds); Adam reads and writes four
 * floats a weight (estimated, not tuned). */
#define W0_ROW_COST 12

/* A cut between workers' rows of W0ᵀ at row r, moved down to a multiple
 * of CB_NN_GRAD_ROWS_ALIGN where it falls among rows some part makes by
 * sgemm (a dense head's, every row after a dense batch): those rows' bits
 * then do not depend on where the cut falls. */
static int w0_cut(const train_ctx *x, int r) {
    int dense_end = 0, C = x->m->tw[0].in[0];
    for (int v = 0; v < x->n_workers; v++) {
        const cb_nn_grad_part *q = &x->wk[v].ws[0].w0_part;
        int end = !q->x ? 0 : q->cols ? q->head : C;
        dense_end = end > dense_end ? end : dense_end;
    }
    return r < dense_end ? r - r % CB_NN_GRAD_ROWS_ALIGN : r;
}

/* Worker w's rows of W0ᵀ this step, as floats of the flat layout [*lo,
 * *hi): cut where the running cost (a row: its non-zeros in every worker's
 * batch rows, plus W0_ROW_COST) passes the workers' shares before w and up
 * to w (balance_w0: 1/N each at first). The first layer's columns are
 * skewed (the most popular items' multi-hot columns are the densest), and
 * equal row counts gave worker 0 twice the other's gradient work at 2
 * threads; a dense row (a dense head's, or any after a dense batch) costs a
 * worker's every batch row. Every worker computes the same cuts (the shares
 * are read alike, w0_cut): the sums are the same bits whoever computes a
 * row, so the shares move the work, never the model. */
static void w0_slice(const train_ctx *x, int w, size_t *lo, size_t *hi) {
    int C = x->m->tw[0].in[0], N = x->n_workers;
    size_t OC = (size_t)x->m->tw[0].out[0];
    uint64_t total = 0, run = 0;
    double want_lo = 0, want_hi = 0;
    for (int pass = 0; pass < 2; pass++) {
        want_lo = (double)total * x->wk[w].w0_from;
        want_hi = w + 1 == N ? (double)total : (double)total * x->wk[w + 1].w0_from;
        int r_lo = w == 0 ? 0 : -1, r_hi = w + 1 == N ? C : -1;
        run = 0;
        for (int r = 0; r < C; r++) {
            if (pass && r_lo < 0 && (double)run >= want_lo) r_lo = r;
            if (pass && r_hi < 0 && (double)run >= want_hi) r_hi = r;
            uint64_t cost = W0_ROW_COST;
            for (int v = 0; v < N; v++) {
                const cb_nn_grad_part *q = &x->wk[v].ws[0].w0_part;
                if (q->x && (!q->cols || r < q->head)) cost += (uint64_t)q->rows; /* a dense row: every batch row */
                else if (q->cols) cost += q->cols->off[r + 1] - q->cols->off[r];
            }
            run += cost;
        }
        total = run;
        if (pass) {
            *lo = (size_t)(w == 0 ? 0 : w0_cut(x, r_lo < 0 ? C : r_lo)) * OC;
            *hi = (size_t)(w + 1 == N ? C : w0_cut(x, r_hi < 0 ? C : r_hi)) * OC;
        }
    }
}

/* The workers' shares of W0's rows moved toward equal sum + update times
 * (worker 0, after a step's last barrier; no worker reads them before the
 * next step's third). The cost w0_slice gives a row is a fixed guess
 * (W0_ROW_COST for its optimiser, a dense row as its batch rows' non-zeros,
 * made by one sgemm), and the guess was wrong by a factor that depends on
 * the data: at 27,000 items the second of 2 workers got 992 of 1,052 rows,
 * and its update took twice the first's, which waited. The time is a
 * worker's whole sum + update (its even slices of the other parameters and
 * the last worker's head too), so moving W0's rows evens all of it out.
 * Each step, every share is scaled by (mean time / its time)^(1/4) of the
 * running means (1/8 a step), at least 1/(8N), and the shares renormalised.
 * The times are wall seconds, so a worker whose core is taken by another
 * process gets fewer rows too. The shares move only the work (w0_slice). */
static void balance_w0(train_ctx *x) {
    int N = x->n_workers;
    double mean = 0.0, total = 0.0;
    for (int v = 0; x->m->w0_jitter && v < N; v++) { /* tests: shares at random */
        x->wk[v].upd_seconds = x->wk[v].upd_mean = 0;
        x->wk[v].w0_share = cb_rng_uniform(&x->w0_rng);
    }
    for (int v = 0; v < N; v++) {
        worker *k = &x->wk[v];
        k->upd_mean = k->upd_mean > 0 ? k->upd_mean + (k->upd_seconds - k->upd_mean) / 8 : k->upd_seconds;
        mean += k->upd_mean / N;
    }
    for (int v = 0; v < N; v++) {
        worker *k = &x->wk[v];
        if (k->upd_mean > 0 && mean > 0) k->w0_share *= pow(mean / k->upd_mean, 0.25);
        k->w0_share = k->w0_share > 1.0 / (8 * N) ? k->w0_share : 1.0 / (8 * N);
        total += k->w0_share;
    }
    double from = 0.0;
    for (int v = 0; v < N; v++) {
        x->wk[v].w0_share /= total;
        x->wk[v].w0_from = from;
        from += x->wk[v].w0_share;
    }
}

/* One epoch of steps, on worker w (cb_pool_run). */
static void run_epoch(void *arg, int w) {
    train_ctx *x = arg;
    cb_model *m = x->m;
    const cb_train_data *d = x->d;
    size_t B_full = m->cfg.batch_size;
    float *sum = x->grad[x->n_workers];
    size_t n_tw = x->n_flat - HEAD_N, sl[3][2]; /* this worker's slices of the towers' parameters */
    worker_slices(x, w, sl);
    bool last = w == x->n_workers - 1;
    w0_copy(x, w, true); /* the model may have changed between epochs */
    cb_pool_barrier(x->pool);
    for (size_t step = 0; step < x->n_batches; step++) {
        size_t off = step * B_full;
        int B = (int)(d->n_train - off < B_full ? d->n_train - off : B_full), lo, hi, nlo = 0, nhi = 0;
        const uint32_t *idx = x->perm + off;
        const uint32_t *neg = x->neg_ids ? x->neg_ids + step * x->neg.m : NULL; /* the same on every rank */
        int M = neg ? (int)x->neg.m : 0;
        bool timed = w == 0 && step % PHASE_EVERY == PHASE_EVERY - 1; /* never an epoch's first: its first touches */
        double t = timed ? worker_clock() : 0.0;
        worker_rows(x, w, B, &lo, &hi);
        if (M) worker_rows(x, w, M, &nlo, &nhi); /* the negatives are split like the batch rows */
        forward_rows(x, &x->wk[w], idx, B, lo, hi, neg, nlo, nhi, step);
        if (w == 0) {
            cb_model_gather_batch(&m->cfg, &x->cols, d->ratings, idx, B, x->log_q, neg, M);
            if (x->emb_live) live_rows(x);
        }
        lap(x, timed, 0, &t);
        cb_pool_barrier(x->pool);
        if (x->n_ranks > 1) {
            if (w == 0 && gather_outputs(x, B, M)) x->comm_failed = true;
            cb_pool_barrier(x->pool);
        }
        lap(x, timed, 3, &t);
        if (x->comm_failed || step >= atomic_load_explicit(&x->stop_step, memory_order_relaxed)) break;
        loss_block(x, w, B);
        lap(x, timed, 1, &t);
        cb_pool_barrier(x->pool);
        lap(x, timed, 3, &t);
        if (x->n_ranks > 1) {
            if (w == 0 && gather_loss(x, B)) x->comm_failed = true;
            cb_pool_barrier(x->pool);
            lap(x, timed, 3, &t);
            if (x->comm_failed) break;
        }
        double loss = batch_loss(x, B); /* the same bits on every worker and rank */
        if (!isfinite(loss)) { /* every worker and rank has the same loss: all stop here */
            if (w == 0) x->nan_seen = true;
            break;
        }
        if (w == 0) x->loss_sum += loss * B;
        backward_rows(x, w, B, lo, hi);
        lap(x, timed, 0, &t);
        cb_pool_barrier(x->pool);
        lap(x, timed, 3, &t);
        if (x->n_workers == 1 && x->n_ranks == 1) { /* a lone worker's buffers are the sum: no copy */
            update_range(x, x->grad[0], x->wt0 ? x->wk[0].ws[0].dwt0 : NULL, 0, x->n_flat, true);
            clear_lone(x);
        } else {
            double t_upd = cb_now();
            if (x->wt0 && x->n_workers > 1) w0_slice(x, w, &sl[0][0], &sl[0][1]);
            for (int i = 0; i < 3; i++) reduce_range(x, sl[i][0], sl[i][1]);
            if (last) reduce_range(x, n_tw, x->n_flat);
            if (x->n_ranks > 1) {
                double summed = cb_now() - t_upd;
                lap(x, timed, 2, &t);
                cb_pool_barrier(x->pool);
                if (w == 0 && reduce_ranks(x, sum)) x->comm_failed = true;
                cb_pool_barrier(x->pool);
                lap(x, timed, 3, &t);
                if (x->comm_failed) break;
                t_upd = cb_now() - summed; /* the ranks' sum not counted */
            }
            for (int i = 0; i < 3; i++) update_range(x, sum, sum, sl[i][0], sl[i][1], last && i == 2);
            if (x->emb_dim) emb_rows_clear(x, sum, sl[2][0], sl[2][1]);
            x->wk[w].upd_seconds = cb_now() - t_upd;
        }
        lap(x, timed, 2, &t);
        cb_pool_barrier(x->pool); /* the parameters are updated */
        lap(x, timed, 3, &t);
        if (timed) x->phase_steps++; /* worker 0's: no other worker touches it */
        if (w) continue;
        if (x->wt0 && x->n_workers > 1) balance_w0(x);
        m->tw[0].step++, m->tw[1].step++; /* read by the next update, two barriers on */
        x->n_steps++;
        x->steps_done = step + 1;
        if (x->fn && x->tick_every && (step + 1) % x->tick_every == 0 && step + 1 < x->n_batches) {
            cb_epoch_report *r = x->tick;
            r->batch = step + 1;
            r->end_of_epoch = false;
            r->train_loss = x->loss_sum / (double)((step + 1) * B_full);
            r->seconds = cb_now() - x->epoch_t0;
            r->examples_per_sec = r->seconds > 0 ? (double)(step + 1) * B_full / r->seconds : 0.0;
            if (x->fn(r, x->fn_ctx)) atomic_store_explicit(&x->stop_step, step + 1, memory_order_relaxed);
        }
    }
    w0_copy(x, w, false); /* every worker has left the loop at the same step, past its updates */
}

static uint64_t hash_words(uint64_t h, const void *p, size_t bytes) {
    const unsigned char *b = p;
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        uint32_t w;
        memcpy(&w, b + i, 4);
        h = (h ^ w) * 0x100000001B3ULL;
    }
    return h;
}

/* Across processes every rank must train on the same examples and feature
 * tables (each fits them from its own copy of the data), and with the same
 * first layer (the sparse one sums W0's gradient transposed): a hash of
 * them, compared with rank 0's before the first step. */
static int check_ranks_agree(const train_ctx *x, cb_error *err) {
    const cb_train_data *d = x->d;
    const cb_model_config *c = &x->m->cfg;
    uint64_t h = hash_words(0xCBF29CE484222325ULL, &d->n_train, sizeof d->n_train);
    for (size_t i = 0; i < d->n_train; i++) {
        const cb_rating *r = &d->ratings[d->train_idx[i]];
        uint32_t w[3] = {r->user, r->item, 0};
        memcpy(&w[2], &r->y, 4);
        h = hash_words(h, w, sizeof w);
    }
    if (d->user_x) h = hash_words(h, d->user_x, (size_t)d->n_users * c->user_in * sizeof(float));
    if (d->user_rows) { /* the rows form: its dense head and the lists of ones */
        const cb_rows *t = d->user_rows;
        h = hash_words(h, t->dense, (size_t)t->n_rows * t->head * sizeof(float));
        h = hash_words(h, t->hot_off, ((size_t)t->n_rows + 1) * sizeof(uint64_t));
        h = hash_words(h, t->hot_col, t->hot_off[t->n_rows] * sizeof(uint16_t));
    }
    h = hash_words(h, d->item_x, (size_t)d->n_items * c->item_in * sizeof(float));
    uint32_t sparse = cb_model_sparse_first_layer(x->m, &x->m->tw[0]);
    h = hash_words(h, &sparse, sizeof sparse);
    for (int s = 0; s < 2; s++) { /* the starting parameters and moments (--resume: every rank's model file) */
        const tower *t = &x->m->tw[s];
        h = hash_words(h, t->params, t->n_params * sizeof(float));
        h = hash_words(h, t->adam_m, t->n_params * sizeof(float));
        h = hash_words(h, t->adam_v, t->n_params * sizeof(float));
    }
    h = hash_words(h, x->m->head, sizeof x->m->head);
    float *all = cb_calloc(4 * (size_t)x->n_ranks, sizeof(float), err);
    int *count = all ? cb_calloc(2 * (size_t)x->n_ranks, sizeof(int), err) : NULL;
    if (!count) return free(all), CB_ENOMEM;
    for (int r = 0; r < x->n_ranks; r++) count[r] = 4, count[x->n_ranks + r] = 4 * r;
    for (int k = 0; k < 4; k++) all[4 * x->rank + k] = (float)((h >> (16 * k)) & 0xFFFF); /* exact in a float */
    int rc = x->comm->allgather(x->comm->ctx, all, count, count + x->n_ranks) ? CB_EIO : CB_OK;
    for (int r = 1; rc == CB_OK && r < x->n_ranks; r++)
        if (memcmp(all, all + 4 * r, 4 * sizeof(float)))
            rc = cb_fail(err, CB_EINVAL, "rank %d's training examples, feature tables, first layer (sparse: "
                                         "CPUs with AVX2, or CBREC_NO_AVX2) or starting parameters (--resume: "
                                         "its model file) differ from rank 0's: every rank must read the same "
                                         "dataset and model with the same settings", r);
    if (rc == CB_EIO) cb_fail(err, CB_EIO, "training across processes: the communicator's all-gather failed");
    free(all);
    free(count);
    return rc;
}

/* The user table's leading dense columns (the rows form's head, or what
 * the caller declares of a dense table), within the feature columns. */
static int dense_head(const cb_train_data *d, const tower *t) {
    uint32_t h = d->user_rows ? d->user_rows->head : d->user_dense_head;
    return (int)(h < (uint32_t)t->feat_in ? h : (uint32_t)t->feat_in);
}

/* Across ranks, x->stage: room for every rank's block of either packed
 * all-gather (gather_loss's, gather_outputs'), its offsets an int. */
static int stage_alloc(train_ctx *x, int B, int M, bool softmax, cb_error *err) {
    size_t W = cb_model_out_dim(x->m), n_chunks = ((size_t)B + LOSS_CHUNK - 1) / LOSS_CHUNK;
    size_t loss = 4 * n_chunks + (size_t)B * 2 * W, out = (2 * (size_t)B + M) * W;
    size_t n = loss > out ? loss : out, probs = softmax ? (size_t)B * ((size_t)B + M) : 0; /* gathered in place */
    if (n > INT_MAX || probs > INT_MAX)
        return cb_fail(err, CB_EINVAL, "training across processes: a batch of %d rows and %d negatives is too "
                                       "large to gather in one call", B, M);
    return (x->stage = cb_malloc(n * sizeof *x->stage, err)) ? CB_OK : CB_ENOMEM;
}

/* Workers, their buffers and the pool for batches of at most B rows and M
 * sampled negatives. */
static int train_ctx_open(train_ctx *x, int B, int M, cb_error *err) {
    cb_model *m = x->m;
    const cb_model_config *c = &m->cfg;
    int rows = (B + x->n_ranks - 1) / x->n_ranks; /* this rank's part, at most */
    int want = c->threads > 0 ? c->threads : cb_pool_default_threads();
    if (want > rows) want = rows > 0 ? rows : 1; /* a worker without rows would only wait */
    int rc = cb_pool_create(&x->pool, want, err);
    if (rc) return rc;
    x->n_workers = cb_pool_size(x->pool);
    const tower *it = &m->tw[1];
    if (it->n_emb) {
        x->emb_lo = m->tw[0].n_params + (size_t)(it->emb - it->params);
        x->emb_dim = (size_t)it->emb_dim;
        x->n_emb = it->n_emb;
    }
    const tower *ut = &m->tw[0];
    if (cb_model_sparse_first_layer(m, ut)) {
        x->w0_n = (size_t)ut->out[0] * ut->in[0];
        if (!(x->wt0 = cb_malloc(3 * x->w0_n * sizeof(float), err))) return CB_ENOMEM;
        x->mt0 = x->wt0 + x->w0_n;
        x->vt0 = x->mt0 + x->w0_n;
    }
    int cap = (rows + x->n_workers - 1) / x->n_workers;
    int ncap = ((M + x->n_ranks - 1) / x->n_ranks + x->n_workers - 1) / x->n_workers; /* negatives, at most */
    bool softmax = c->objective != CB_OBJECTIVE_RATING;
    size_t W = cb_model_out_dim(m), stride = (x->n_flat + 15) & ~(size_t)15;
    x->wk = cb_calloc((size_t)x->n_workers, sizeof *x->wk, err);
    x->grad = x->wk ? cb_calloc((size_t)x->n_workers + 1, sizeof *x->grad, err) : NULL;
    float *gbuf = x->grad ? cb_calloc(((size_t)x->n_workers + 1) * stride + (2 * (size_t)B + M) * W, sizeof(float), err) : NULL;
    if (!gbuf) return CB_ENOMEM;
    for (int w = 0; w <= x->n_workers; w++) x->grad[w] = gbuf + (size_t)w * stride;
    x->yu = gbuf + ((size_t)x->n_workers + 1) * stride;
    x->ym = x->yu + (size_t)B * W;
    if ((rc = cb_tower_ws_alloc(&x->cols, &m->tw[1], B + M, false, err))) return rc;
    if (softmax && !(x->prob = cb_calloc((size_t)B * (B + M), sizeof(float), err))) return CB_ENOMEM;
    if (x->emb_dim && (x->lazy_emb || x->n_ranks > 1) &&
        !(x->emb_live = cb_malloc(((size_t)B + M) * sizeof *x->emb_live, err)))
        return CB_ENOMEM;
    if (x->n_ranks > 1 && (rc = stage_alloc(x, B, M, softmax, err))) return rc;
    if (!(x->du = cb_calloc(2 * (size_t)B * W + 4 * ((size_t)B / LOSS_CHUNK + 1), sizeof(float), err))) return CB_ENOMEM;
    x->dvr = x->du + (size_t)B * W;
    x->chunk = x->dvr + (size_t)B * W;
    for (int w = 0; w < x->n_workers && rc == CB_OK; w++) {
        worker *k = &x->wk[w];
        k->w0_share = 1.0 / x->n_workers;
        k->w0_from = (double)w / x->n_workers;
        if ((rc = cb_tower_ws_alloc(&k->ws[0], &m->tw[0], cap, false, err)) ||
            (rc = cb_tower_ws_alloc(&k->ws[1], &m->tw[1], cap + ncap, false, err)))
            break;
        k->ws[0].split_w0 = x->wt0 && (x->n_workers > 1 || x->n_ranks > 1); /* a lone worker's dwt0 is the sum */
        if (x->wt0 && (rc = cb_tower_ws_sparse_alloc(&k->ws[0], ut, cap, x->wt0, err))) break;
        k->ws[0].dense_head = x->wt0 ? dense_head(x->d, ut) : 0;
        if (!(k->touched[0] = cb_calloc(2 * (size_t)(cap + ncap), sizeof(uint32_t), err))) return CB_ENOMEM;
        k->touched[1] = k->touched[0] + cap + ncap;
        k->view = *m;
        tower_grad_view(&k->view.tw[0], &m->tw[0], x->grad[w]);
        tower_grad_view(&k->view.tw[1], &m->tw[1], x->grad[w] + m->tw[0].n_params);
    }
    return rc;
}

static void train_ctx_close(train_ctx *x) {
    cb_pool_free(x->pool); /* restores OpenBLAS's thread count */
    for (int w = 0; x->wk && w < x->n_workers; w++) {
        cb_tower_ws_free(&x->wk[w].ws[0]);
        cb_tower_ws_free(&x->wk[w].ws[1]);
        free(x->wk[w].touched[0]);
    }
    cb_tower_ws_free(&x->cols);
    free(x->prob);
    free(x->stage);
    free(x->emb_live);
    free(x->du);
    free(x->wk);
    free(x->wt0);
    if (x->grad) free(x->grad[0]);
    free(x->grad);
    free(x->perm);
    free(x->log_q);
    free(x->neg_ids);
    cb_negatives_free(&x->neg);
}

/* The sampled negatives of a training run (retrieval, c->negatives > 0):
 * their distribution, room for an epoch of draws, and the logQ of the
 * mixed columns in x->log_q (B: the batch size). Every rank computes the
 * same (its examples are checked to agree, the draws come from the seed). */
static int negatives_setup(train_ctx *x, int B, cb_error *err) {
    const cb_model_config *c = &x->m->cfg;
    const cb_train_data *d = x->d;
    memset(&x->neg, 0, sizeof x->neg);
    if (c->objective == CB_OBJECTIVE_RATING || !c->negatives) return CB_OK;
    int rc = cb_negatives_init(&x->neg, d->ratings, d->train_idx, d->n_train, d->n_items, c->negatives,
                               c->negatives_power, err);
    if (rc) return rc;
    x->neg_ids = cb_malloc(x->n_batches * c->negatives * sizeof *x->neg_ids, err);
    if (!x->neg_ids) return CB_ENOMEM;
    if (x->log_q) cb_negatives_log_q(&x->neg, x->log_q, (uint32_t)B);
    return CB_OK;
}

/* Floats of the flat parameter layout: user tower, item tower, head. */
static size_t np_of(const cb_model *m) { return m->tw[0].n_params + m->tw[1].n_params + HEAD_N; }

static void params_copy(float *dst, const cb_model *m) {
    memcpy(dst, m->tw[0].params, m->tw[0].n_params * sizeof(float));
    memcpy(dst + m->tw[0].n_params, m->tw[1].params, m->tw[1].n_params * sizeof(float));
    memcpy(dst + m->tw[0].n_params + m->tw[1].n_params, m->head, HEAD_N * sizeof(float));
}

static void params_restore(cb_model *m, const float *src) {
    memcpy(m->tw[0].params, src, m->tw[0].n_params * sizeof(float));
    memcpy(m->tw[1].params, src + m->tw[0].n_params, m->tw[1].n_params * sizeof(float));
    memcpy(m->head, src + m->tw[0].n_params + m->tw[1].n_params, HEAD_N * sizeof(float));
}

static bool params_finite(const cb_model *m) {
    return cb_nn_all_finite(m->tw[0].params, m->tw[0].n_params) &&
           cb_nn_all_finite(m->tw[1].params, m->tw[1].n_params) &&
           cb_nn_all_finite(m->head, HEAD_N);
}

/* The configuration and the examples checked before training. */
static int train_args_check(const cb_model *m, const cb_train_data *d, cb_error *err) {
    const char *why = cb_model_config_check(&m->cfg);
    if (why) return cb_fail(err, CB_EINVAL, "model configuration: %s", why);
    if (!d || d->n_train == 0 || !d->train_idx)
        return cb_fail(err, CB_EINVAL, "training data: no training examples");
    int rc = cb_model_check_data(d, d->train_idx, d->n_train, err);
    if (rc == CB_OK && d->n_valid) {
        if (!d->valid_idx) return cb_fail(err, CB_EINVAL, "training data: n_valid > 0 without valid_idx");
        rc = cb_model_check_data(d, d->valid_idx, d->n_valid, err);
    }
    return rc;
}

/* Epoch e's start (of this call; epoch_id counts across resumed runs): its
 * shuffle and sampled negatives from the seed, and its report. */
static void epoch_begin(train_ctx *x, uint32_t e, cb_epoch_report *rep) {
    cb_model *m = x->m;
    const cb_model_config *c = &m->cfg;
    const cb_train_data *d = x->d;
    uint32_t epoch_id = m->epochs_done;
    x->epoch_id = epoch_id;
    m->tw[0].epoch = m->tw[1].epoch = epoch_id; /* the learning-rate schedule */
    cb_rng rng;
    cb_rng_seed(&rng, c->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(epoch_id + 1)));
    memcpy(x->perm, d->train_idx, d->n_train * sizeof(uint32_t));
    cb_rng_shuffle_u32(&rng, x->perm, d->n_train);
    if (x->neg_ids)
        cb_negatives_draw(&x->neg, x->neg_ids, x->n_batches * x->neg.m, c->seed ^ (0x94D049BB133111EBULL * (epoch_id + 1)));
    x->loss_sum = 0.0;
    x->steps_done = 0;
    x->nan_seen = false;
    memset(rep, 0, sizeof *rep);
    rep->epoch = e + 1;
    rep->epochs = c->epochs;
    rep->n_batches = x->n_batches;
    rep->valid_loss = rep->valid_rmse = NAN;
}

/* What the epochs keep between them: the last finite parameters, and for
 * early stopping the best validation epoch's. */
typedef struct epoch_keep {
    float *last_good, *best;
    double best_valid;
    uint32_t bad_epochs;
} epoch_keep;

/* Epoch e's end, after its steps (secs long): a failed communicator or a
 * divergence (the last finite parameters restored) is an error; else the
 * report's figures, the validation and early stopping, and the caller's
 * callback. *stop: training ends here. */
static int epoch_end(train_ctx *x, uint32_t e, double secs, cb_epoch_report *rep, epoch_keep *k,
                     cb_train_result *res, bool *stop, cb_error *err) {
    cb_model *m = x->m;
    const cb_model_config *c = &m->cfg;
    const cb_train_data *d = x->d;
    if (x->comm_failed)
        return cb_fail(err, CB_EIO, "training across processes: a call of the communicator failed in epoch %u", e + 1);
    if (x->nan_seen || !params_finite(m)) {
        params_restore(m, k->last_good);
        return m->epochs_done ? cb_fail(err, CB_ENUMERIC,
                                        "training diverged (NaN or Inf) in epoch %u; kept the parameters of the last "
                                        "finite epoch (try a lower learning rate)", e + 1)
                              : cb_fail(err, CB_ENUMERIC,
                                        "training diverged (NaN or Inf) in epoch 1, before any epoch finished: no "
                                        "model (try a lower learning rate)");
    }
    m->epochs_done++;
    res->epochs_run = e + 1;
    rep->batch = x->n_batches;
    rep->end_of_epoch = true;
    bool tick_stop = atomic_load_explicit(&x->stop_step, memory_order_relaxed) != SIZE_MAX;
    size_t n_seen = tick_stop ? x->steps_done * (size_t)c->batch_size : d->n_train;
    rep->train_loss = x->loss_sum / (double)(n_seen ? n_seen : 1);
    rep->seconds = secs;
    rep->examples_per_sec = secs > 0 ? (double)d->n_train / secs : 0.0;
    if (d->n_valid) {
        int rc = cb_model_evaluate(m, d, d->valid_idx, d->n_valid, &rep->valid_loss, &rep->valid_rmse, err);
        if (rc != CB_OK) return rc;
        if (!isfinite(rep->valid_loss)) {
            params_restore(m, k->last_good);
            return cb_fail(err, CB_ENUMERIC, "validation loss is not finite after epoch %u; kept the parameters of the last finite epoch", e + 1);
        }
        if (rep->valid_loss < k->best_valid) {
            k->best_valid = rep->valid_loss;
            rep->best = true;
            res->best_epoch = m->epochs_done;
            k->bad_epochs = 0;
            params_copy(k->best, m);
        } else {
            k->bad_epochs++;
        }
    } else {
        res->best_epoch = m->epochs_done;
    }
    params_copy(k->last_good, m);
    res->train_loss = rep->train_loss;
    res->valid_loss = rep->valid_loss;
    res->valid_rmse = rep->valid_rmse;
    *stop = (x->fn ? x->fn(rep, x->fn_ctx) != 0 : false) || tick_stop;
    if (c->patience > 0 && d->n_valid && k->bad_epochs >= c->patience) {
        res->early_stopped = true;
        *stop = true;
    }
    return CB_OK;
}

int cb_model_train(cb_model *m, const cb_train_data *d, cb_epoch_fn fn, void *ctx,
                   cb_train_result *res, cb_error *err) {
    const cb_model_config *c = &m->cfg;
    cb_train_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    res->train_loss = res->valid_loss = res->valid_rmse = NAN;
    int rc = train_args_check(m, d, err);
    if (rc != CB_OK) return rc;

    train_ctx x;
    memset(&x, 0, sizeof x);
    atomic_init(&x.stop_step, SIZE_MAX);
    x.m = m;
    x.d = d;
    x.comm = d->comm && d->comm->n_ranks > 1 ? d->comm : NULL;
    x.rank = x.comm ? x.comm->rank : 0;
    x.n_ranks = x.comm ? x.comm->n_ranks : 1;
    x.n_flat = np_of(m);
    x.lazy_emb = c->lazy_embedding && c->optimizer == CB_OPT_ADAM && m->tw[1].n_emb; /* SGD: the same either way */
    cb_rng_seed(&x.w0_rng, m->w0_jitter);
    x.n_batches = (d->n_train + c->batch_size - 1) / c->batch_size;
    x.fn = fn;
    x.fn_ctx = ctx;
    x.tick_every = x.n_batches >= 100 ? x.n_batches / 50 : 0;
    size_t np = x.n_flat;
    epoch_keep k = {.best_valid = INFINITY};
    int B = (int)(c->batch_size < d->n_train ? c->batch_size : d->n_train);
    x.perm = cb_calloc(d->n_train, sizeof(uint32_t), err);
    k.last_good = x.perm ? cb_calloc(np, sizeof(float), err) : NULL;
    k.best = k.last_good ? cb_calloc(np, sizeof(float), err) : NULL;
    rc = k.best ? CB_OK : CB_ENOMEM;
    if (rc == CB_OK) rc = cb_model_log_q_for(&x.log_q, m, d, err);
    if (rc == CB_OK) rc = negatives_setup(&x, B, err);
    if (rc == CB_OK && x.comm) rc = check_ranks_agree(&x, err);
    if (rc == CB_OK) rc = train_ctx_open(&x, B, (int)x.neg.m, err); /* the pool holds OpenBLAS at one thread */
    if (rc != CB_OK) goto done;
    params_copy(k.last_good, m);
    params_copy(k.best, m);

    double t_start = cb_now();
    cb_epoch_report rep;
    memset(&rep, 0, sizeof rep);
    x.tick = &rep;
    bool stop = false;
    for (uint32_t e = 0; e < c->epochs && !stop && rc == CB_OK; e++) {
        epoch_begin(&x, e, &rep);
        x.epoch_t0 = cb_now();
        cb_pool_run(x.pool, run_epoch, &x);
        rc = epoch_end(&x, e, cb_now() - x.epoch_t0, &rep, &k, res, &stop, err);
    }
    /* with early stopping the model keeps its best validation epoch */
    if (rc == CB_OK && c->patience > 0 && d->n_valid && isfinite(k.best_valid)) params_restore(m, k.best);
    res->seconds = cb_now() - t_start;
    res->threads = x.n_workers;
    for (int i = 0; i < 4; i++) /* the timed steps' phases scaled to every step */
        res->phase_seconds[i] = x.phase_steps ? x.phase[i] * (double)x.n_steps / (double)x.phase_steps : 0.0;

done:
    train_ctx_close(&x);
    free(k.last_good);
    free(k.best);
    return rc;
}
