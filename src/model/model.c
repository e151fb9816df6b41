/* model — the two-tower model: parameters, the forward and backward passes,
 * the loss, prediction and evaluation, and named tensors for model files.
 * Its data-parallel training is train.c's. See model.h for the contracts and
 * the threading rule, model_internal.h for what the two files share. */
#include "model/model_internal.h"
#include "model/comm.h"
#include "model/negatives.h"
#include "model/train_config.h"
#include "base/threads.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_CHUNK 512 /* rows per forward pass in predict/evaluate */

/* The rows tower `side` runs for a batch of B examples: the item side also
 * runs the sampled negatives. */
static int side_rows(const tower_ws *ws, int side, int B) { return side == 1 ? ws->n_cols : B; }

/* ---------------------------------------------------------------- config */

static const char *const objective_names[] = {"rating", "retrieval", "both"};

const char *cb_objective_name(cb_objective o) {
    return (unsigned)o < sizeof objective_names / sizeof objective_names[0] ? objective_names[o] : NULL;
}

int cb_objective_parse(const char *name, cb_objective *out) {
    for (unsigned i = 0; i < sizeof objective_names / sizeof objective_names[0]; i++)
        if (name && !strcmp(name, objective_names[i])) {
            *out = (cb_objective)i;
            return 0;
        }
    return -1;
}

void cb_model_config_base(cb_model_config *c) {
    memset(c, 0, sizeof *c);
    c->l2norm_eps = 1e-12f;
    c->target_scale = 1.0f;
    c->target_shift = 0.0f;
    c->bce_scale_init = 5.0f;
    c->adam_beta1 = 0.9f;
    c->adam_beta2 = 0.999f;
    c->adam_eps = 1e-7f;
    c->lr_decay = 1.0f;
}

void cb_model_config_default(cb_model_config *c) {
    cb_train_config tc;
    cb_train_config_default(&tc); /* the TRAIN key table: the one home of the keyed defaults */
    *c = tc.model;
}

#define WIDTH_MAX 65536u

const char *cb_model_config_check(const cb_model_config *c) {
    if (!c) return "no configuration";
    if (c->user_in == 0 || c->user_in > WIDTH_MAX) return "user_in must be in 1..65536";
    if (c->item_in == 0 || c->item_in > WIDTH_MAX) return "item_in must be in 1..65536";
    if (c->n_user_layers > CB_MODEL_MAX_LAYERS) return "too many user layers (max 8)";
    if (c->n_item_layers > CB_MODEL_MAX_LAYERS) return "too many item layers (max 8)";
    for (uint32_t i = 0; i < c->n_user_layers; i++)
        if (c->user_layers[i] == 0 || c->user_layers[i] > WIDTH_MAX)
            return "user layer widths must be in 1..65536";
    for (uint32_t i = 0; i < c->n_item_layers; i++)
        if (c->item_layers[i] == 0 || c->item_layers[i] > WIDTH_MAX)
            return "item layer widths must be in 1..65536";
    if (c->dim == 0 || c->dim > WIDTH_MAX) return "dim must be in 1..65536";
    if ((uint64_t)c->item_ids * c->dim > ((uint64_t)1 << 31)) return "item_ids x dim must be <= 2^31";
    if (c->history_dim > WIDTH_MAX) return "history_dim must be <= 65536";
    if ((uint64_t)c->history_items * c->history_dim > ((uint64_t)1 << 31))
        return "history_items x history_dim must be <= 2^31";
    if (!(c->l2norm_eps > 0.0f) || !isfinite(c->l2norm_eps)) return "l2norm_eps must be > 0";
    if (c->loss != CB_LOSS_MSE && c->loss != CB_LOSS_BCE) return "unknown loss";
    if (!cb_objective_name(c->objective)) return "unknown objective";
    if (c->objective != CB_OBJECTIVE_RATING && !(c->temperature > 0.0f && isfinite(c->temperature)))
        return "temperature must be > 0";
    if (c->objective == CB_OBJECTIVE_BOTH && c->loss != CB_LOSS_MSE)
        return "objective both trains its rating head with loss mse";
    if (c->objective == CB_OBJECTIVE_BOTH && !(c->rating_weight >= 0.0f && isfinite(c->rating_weight)))
        return "rating_weight must be >= 0";
    if (!isfinite(c->popularity_prior)) return "popularity_prior must be finite";
    if (c->objective != CB_OBJECTIVE_RATING && c->batch_size > 8192)
        return "batch_size must be <= 8192 for the retrieval objective (a batch x batch softmax)";
    if (c->negatives > 8192) return "negatives must be <= 8192";
    if (!(c->below_weight >= 0.0f && c->below_weight <= 1e6f)) return "below_weight must be in [0, 1e6]";
    if (!(c->relevant_from >= 0.0f && c->relevant_from <= 1.0f)) return "relevant_from must be in [0, 1]";
    if (isnan(c->positive_threshold)) return "positive_threshold must be a number";
    if (!(c->negatives_power >= -4.0f && c->negatives_power <= 4.0f)) return "negatives_power must be in [-4, 4]";
    if (!isfinite(c->target_scale) || c->target_scale == 0.0f)
        return "target_scale must be finite and non-zero";
    if (!isfinite(c->target_shift)) return "target_shift must be finite";
    if (!isfinite(c->bce_scale_init)) return "bce_scale_init must be finite";
    if (c->optimizer != CB_OPT_ADAM && c->optimizer != CB_OPT_SGD) return "unknown optimizer";
    if (!(c->lr > 0.0f) || !isfinite(c->lr)) return "lr must be > 0";
    if (!(c->lr_decay > 0.0f && c->lr_decay <= 1.0f)) return "lr_decay must be in (0, 1]";
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay)) return "weight_decay must be >= 0";
    if (!(c->adam_beta1 >= 0.0f && c->adam_beta1 < 1.0f)) return "adam_beta1 must be in [0,1)";
    if (!(c->adam_beta2 >= 0.0f && c->adam_beta2 < 1.0f)) return "adam_beta2 must be in [0,1)";
    if (!(c->adam_eps > 0.0f) || !isfinite(c->adam_eps)) return "adam_eps must be > 0";
    if (c->batch_size == 0 || c->batch_size > (1u << 20)) return "batch_size must be in 1..1048576";
    if (c->threads < 0 || c->threads > 256) return "threads must be in 0..256 (0 = every core)";
    if (!(c->item_dropout >= 0.0f && c->item_dropout <= 1.0f)) return "item_dropout must be in [0,1]";
    if (!(c->user_dropout >= 0.0f && c->user_dropout <= 1.0f)) return "user_dropout must be in [0,1]";
    return NULL;
}

/* split_heads takes effect under objective both only. */
static bool split(const cb_model_config *c) { return c->split_heads && c->objective == CB_OBJECTIVE_BOTH; }

static bool same_architecture(const cb_model_config *a, const cb_model_config *b) {
    if (a->user_in != b->user_in || a->item_in != b->item_in || a->dim != b->dim || a->item_ids != b->item_ids ||
        a->history_dim != b->history_dim || a->history_items != b->history_items ||
        a->n_user_layers != b->n_user_layers || a->n_item_layers != b->n_item_layers ||
        a->l2norm != b->l2norm || a->l2norm_eps != b->l2norm_eps || a->loss != b->loss ||
        a->objective != b->objective || a->temperature != b->temperature || split(a) != split(b) ||
        a->target_scale != b->target_scale || a->target_shift != b->target_shift)
        return false;
    for (uint32_t i = 0; i < a->n_user_layers; i++)
        if (a->user_layers[i] != b->user_layers[i]) return false;
    for (uint32_t i = 0; i < a->n_item_layers; i++)
        if (a->item_layers[i] != b->item_layers[i]) return false;
    return true;
}

/* ---------------------------------------------------------------- create */

static int tower_init(tower *t, uint32_t in, uint32_t n_hidden, const uint32_t *hidden,
                      uint32_t dim, uint32_t n_emb, uint32_t emb_dim, bool bag, cb_error *err) {
    memset(t, 0, sizeof *t);
    t->n_layers = (int)n_hidden + 1;
    t->bag = bag && n_emb;
    t->feat_in = (int)in;
    int prev = (int)in + (t->bag ? (int)emb_dim : 0);
    for (int l = 0; l < t->n_layers; l++) {
        t->in[l] = prev;
        t->out[l] = l < (int)n_hidden ? (int)hidden[l] : (int)dim;
        prev = t->out[l];
        t->n_weights += (size_t)t->in[l] * (size_t)t->out[l];
        t->n_params += (size_t)t->in[l] * (size_t)t->out[l] + (size_t)t->out[l];
    }
    size_t emb_off = t->n_params;
    t->n_emb = n_emb;
    t->emb_dim = (int)emb_dim;
    t->n_params += (size_t)n_emb * emb_dim;
    t->buf = cb_calloc(4 * t->n_params, sizeof(float), err);
    if (!t->buf) return CB_ENOMEM;
    t->params = t->buf;
    t->grads = t->buf + t->n_params;
    t->adam_m = t->buf + 2 * t->n_params;
    t->adam_v = t->buf + 3 * t->n_params;
    size_t woff = 0, boff = t->n_weights;
    for (int l = 0; l < t->n_layers; l++) {
        t->w[l] = t->params + woff;
        t->dw[l] = t->grads + woff;
        t->b[l] = t->params + boff;
        t->db[l] = t->grads + boff;
        woff += (size_t)t->in[l] * (size_t)t->out[l];
        boff += (size_t)t->out[l];
    }
    if (n_emb) {
        t->emb = t->params + emb_off; /* zero: an item starts as its content vector */
        t->demb = t->grads + emb_off;
    }
    return CB_OK;
}

static void tower_init_params(tower *t, cb_rng *rng) {
    for (int l = 0; l < t->n_layers; l++) {
        size_t n = (size_t)t->in[l] * (size_t)t->out[l];
        if (l < t->n_layers - 1) cb_nn_init_he(t->w[l], n, t->in[l], rng);
        else cb_nn_init_glorot(t->w[l], n, t->in[l], t->out[l], rng);
    }
    /* biases are already zero (calloc) */
}

static int model_alloc(cb_model **out, const cb_model_config *c, cb_error *err) {
    *out = NULL;
    const char *why = cb_model_config_check(c);
    if (why) return cb_fail(err, CB_EINVAL, "model configuration: %s", why);
    cb_model *m = cb_calloc(1, sizeof *m, err);
    if (!m) return CB_ENOMEM;
    m->cfg = *c;
    uint32_t out_w = split(c) ? 2 * c->dim : c->dim;
    bool bag = c->history_dim && c->history_items;
    int rc = tower_init(&m->tw[0], c->user_in, c->n_user_layers, c->user_layers, out_w, bag ? c->history_items : 0,
                        bag ? c->history_dim : 0, true, err);
    if (rc == CB_OK) /* the id embedding joins the ranking part only: per-item rating vectors overfit */
        rc = tower_init(&m->tw[1], c->item_in, c->n_item_layers, c->item_layers, out_w, c->item_ids, c->dim, false,
                        err);
    m->tw[0].parts = m->tw[1].parts = split(c) ? 2 : 1;
    if (rc != CB_OK) {
        cb_model_free(m);
        return rc;
    }
    /* BCE: the sigmoid's scale; both: the rating head starts as the identity */
    m->head[HEAD_S] = c->objective == CB_OBJECTIVE_BOTH ? 1.0f : c->bce_scale_init;
    m->head[HEAD_C] = 0.0f;
    *out = m;
    return CB_OK;
}

int cb_model_create(cb_model **out, const cb_model_config *c, cb_error *err) {
    int rc = model_alloc(out, c, err);
    if (rc != CB_OK) return rc;
    cb_rng rng;
    cb_rng_seed(&rng, c->seed);
    tower_init_params(&(*out)->tw[0], &rng);
    tower_init_params(&(*out)->tw[1], &rng);
    return CB_OK;
}

void cb_model_free(cb_model *m) {
    if (!m) return;
    free(m->tw[0].buf);
    free(m->tw[1].buf);
    free(m);
}

const cb_model_config *cb_model_config_of(const cb_model *m) { return &m->cfg; }

int cb_model_set_train_config(cb_model *m, const cb_model_config *c, cb_error *err) {
    const char *why = cb_model_config_check(c);
    if (why) return cb_fail(err, CB_EINVAL, "model configuration: %s", why);
    if (!same_architecture(&m->cfg, c))
        return cb_fail(err, CB_EINVAL, "the new configuration changes the model's architecture or objective");
    m->cfg = *c;
    return CB_OK;
}

size_t cb_model_n_params(const cb_model *m) {
    return m->tw[0].n_params + m->tw[1].n_params + HEAD_N;
}

/* ---------------------------------------------------------------- tensors */

size_t cb_model_n_tensors(const cb_model *m) {
    return 2 * (size_t)m->tw[0].n_layers + 2 * (size_t)m->tw[1].n_layers + 2 + (m->tw[1].n_emb ? 1 : 0) +
           (m->tw[0].n_emb ? 1 : 0);
}

/* Tensor i of region r (0 params, 1 grads) with its name and shape. */
static float *tensor_at(const cb_model *m, size_t i, int region, cb_tensor *t) {
    cb_tensor dummy;
    if (!t) t = &dummy;
    memset(t, 0, sizeof *t);
    for (int k = 0; k < 2; k++) {
        const tower *tw = &m->tw[k];
        size_t nt = 2 * (size_t)tw->n_layers;
        if (i < nt) {
            int l = (int)(i / 2);
            bool is_w = (i % 2) == 0;
            snprintf(t->name, sizeof t->name, "%s.%d.%s", k == 0 ? "user" : "item", l,
                     is_w ? "weight" : "bias");
            t->ndim = is_w ? 2 : 1;
            t->shape[0] = (uint32_t)tw->out[l];
            t->shape[1] = is_w ? (uint32_t)tw->in[l] : 0;
            float *p = is_w ? tw->w[l] : tw->b[l];
            return p + (size_t)region * tw->n_params;
        }
        i -= nt;
    }
    if (i == HEAD_N && !m->tw[1].n_emb) i++; /* no item-id embedding: the bag comes next */
    if (i >= HEAD_N) { /* the item-id embedding, then the history bag, after the head */
        const tower *tw = &m->tw[i == HEAD_N ? 1 : 0];
        snprintf(t->name, sizeof t->name, i == HEAD_N ? "item.id_embedding" : "user.history_embedding");
        t->ndim = 2;
        t->shape[0] = tw->n_emb;
        t->shape[1] = (uint32_t)tw->emb_dim;
        return tw->emb + (size_t)region * tw->n_params;
    }
    snprintf(t->name, sizeof t->name, "head.%s", i == 0 ? "scale" : "bias");
    t->ndim = 1;
    t->shape[0] = 1;
    return (float *)m->head + (size_t)region * HEAD_N + (i == 0 ? HEAD_S : HEAD_C);
}

void cb_model_tensor(const cb_model *m, size_t i, cb_tensor *t) {
    float *p = tensor_at(m, i, 0, t);
    t->data = p;
}

float *cb_model_tensor_grad(cb_model *m, size_t i) { return tensor_at(m, i, 1, NULL); }

static size_t tensor_numel(const cb_tensor *t) {
    return t->ndim == 2 ? (size_t)t->shape[0] * t->shape[1] : t->shape[0];
}

int cb_model_create_from_tensors(cb_model **out, const cb_model_config *c,
                                 const cb_tensor *tensors, size_t n, cb_error *err) {
    cb_model *m;
    int rc = model_alloc(&m, c, err);
    if (rc != CB_OK) return rc;
    size_t nt = cb_model_n_tensors(m);
    for (size_t j = 0; j < n; j++) {
        bool found = false;
        for (size_t i = 0; i < nt && !found; i++) {
            cb_tensor want;
            float *dst = tensor_at(m, i, 0, &want);
            if (strcmp(want.name, tensors[j].name) != 0) continue;
            found = true;
            if (want.ndim != tensors[j].ndim || want.shape[0] != tensors[j].shape[0] ||
                (want.ndim == 2 && want.shape[1] != tensors[j].shape[1])) {
                cb_model_free(m);
                return cb_fail(err, CB_EFORMAT, "tensor %s has the wrong shape for this configuration",
                               tensors[j].name);
            }
            if (!cb_nn_all_finite(tensors[j].data, tensor_numel(&want))) {
                cb_model_free(m);
                return cb_fail(err, CB_EFORMAT, "tensor %s holds NaN or Inf", tensors[j].name);
            }
            memcpy(dst, tensors[j].data, tensor_numel(&want) * sizeof(float));
        }
        if (!found) {
            cb_model_free(m);
            return cb_fail(err, CB_EFORMAT, "unexpected tensor %.40s", tensors[j].name);
        }
    }
    for (size_t i = 0; i < nt; i++) {
        cb_tensor want;
        tensor_at(m, i, 0, &want);
        bool given = false;
        for (size_t j = 0; j < n && !given; j++) given = strcmp(want.name, tensors[j].name) == 0;
        if (!given) {
            cb_model_free(m);
            return cb_fail(err, CB_EFORMAT, "tensor %s is missing", want.name);
        }
    }
    *out = m;
    return CB_OK;
}

/* ---------------------------------------------------------------- workspace */

void cb_tower_ws_free(tower_ws *ws) {
    free(ws->block);
    free(ws->csr.off), free(ws->csr.col), free(ws->csr.val), free(ws->dwt0);
    free(ws->csc.off), free(ws->csc.col), free(ws->csc.val);
    memset(ws, 0, sizeof *ws);
}

int cb_tower_ws_alloc(tower_ws *ws, const tower *t, int cap, bool softmax, cb_error *err) {
    memset(ws, 0, sizeof *ws);
    int dim = t->out[t->n_layers - 1];
    size_t widest = (size_t)t->in[0];
    for (int l = 0; l < t->n_layers; l++)
        if ((size_t)t->out[l] > widest) widest = (size_t)t->out[l];
    /* Each array is padded to 16 floats so rows of different arrays never share a cache line. */
#define PAD(n) ((((size_t)(n)) + 15) & ~(size_t)15)
    size_t total = PAD((size_t)cap * t->in[0]);
    for (int l = 0; l < t->n_layers; l++) total += PAD((size_t)cap * t->out[l]);
    total += 2 * PAD((size_t)cap * dim) + PAD(2 * (size_t)cap) + 2 * PAD((size_t)cap * widest) + 10 * PAD(cap);
    if (softmax) total += PAD((size_t)cap * cap);
    ws->block = cb_calloc(total + 16, sizeof(float), err);
    if (!ws->block) return CB_ENOMEM;
    float *p = ws->block + (16 - ((uintptr_t)ws->block / sizeof(float)) % 16) % 16;
    ws->cap = cap;
    ws->x = p; p += PAD((size_t)cap * t->in[0]);
    for (int l = 0; l < t->n_layers; l++) { ws->act[l] = p; p += PAD((size_t)cap * t->out[l]); }
    ws->y[0] = p; p += PAD((size_t)cap * dim);
    ws->y[1] = p; p += PAD((size_t)cap * dim);
    ws->norm = p; p += PAD(2 * (size_t)cap);
    ws->g0 = p; p += PAD((size_t)cap * widest);
    ws->g1 = p; p += PAD((size_t)cap * widest);
    ws->pred = p; p += PAD(cap);
    ws->dpred = p; p += PAD(cap);
    ws->tgt = p; p += PAD(cap);
    ws->z = p; p += PAD(cap);
    ws->lq = p; p += PAD(cap);
    ws->wt = p; p += PAD(cap);
    ws->ids = (uint32_t *)p; p += PAD(cap);
    ws->eids = (uint32_t *)p; p += PAD(cap);
    ws->hrow = (uint32_t *)p; p += PAD(cap);
    ws->htgt = (uint32_t *)p; p += PAD(cap);
    if (softmax) ws->prob = p, p += PAD((size_t)cap * cap);
#undef PAD
    return CB_OK;
}

/* Whether training runs tower t's first layer sparse (tower_ws.csr): when
 * asked to (cb_model_set_sparse_input), else for an input of 256 columns or
 * more when the CPU has AVX2 (the plain loops lose to sgemm). */
bool cb_model_sparse_first_layer(const cb_model *m, const tower *t) {
    return m->sparse_mode == 2 || (m->sparse_mode == 0 && t->in[0] >= 256 && cb_cpu_avx2());
}

void cb_model_set_sparse_input(cb_model *m, int on) { m->sparse_mode = on < 0 ? 0 : on == 0 ? 1 : 2; }

void cb_model_jitter_w0_shares(cb_model *m, uint64_t seed) { m->w0_jitter = seed; }

/* wt0: the pool's transposed W0 (tower_ws.wt0). A W0-sized gradient
 * (dwt0) for a lone worker only: split workers leave theirs to the
 * reduction (ws->split_w0, set before). */
int cb_tower_ws_sparse_alloc(tower_ws *ws, const tower *t, int cap, const float *wt0, cb_error *err) {
    size_t in = (size_t)t->in[0], n = (size_t)cap * in / 4 + 1;
    cb_nn_csr *s = &ws->csr, *t_s = &ws->csc;
    s->cap = t_s->cap = n;
    ws->wt0 = wt0;
    if (!(s->off = cb_malloc(((size_t)cap + 1) * sizeof *s->off, err)) || !(s->col = cb_malloc(n * sizeof *s->col, err)) ||
        !(s->val = cb_malloc(n * sizeof *s->val, err)) || !(t_s->off = cb_malloc((in + 1) * sizeof *t_s->off, err)) ||
        !(t_s->col = cb_malloc(n * sizeof *t_s->col, err)) || !(t_s->val = cb_malloc(n * sizeof *t_s->val, err)) ||
        (!ws->split_w0 && !(ws->dwt0 = cb_calloc(in * t->out[0], sizeof(float), err))))
        return CB_ENOMEM;
    return CB_OK;
}

/* ---------------------------------------------------------------- passes */

/* Gather B input rows of table x (feat_in columns; or of xr when not NULL,
 * densified) into ws->x: rows[r], or first + r when rows is NULL. With a history bag, the last emb_dim columns
 * of each row are the mean of the bag's vectors over the history of the same
 * row index (h_off / h_item; NULL: empty), leaving out the item tgt[r] (the
 * training example's own item; tgt NULL: none). */
static void gather_rows(const tower *t, tower_ws *ws, const float *x, const cb_rows *xr, const uint32_t *rows,
                        size_t first, const uint32_t *tgt, const uint32_t *h_off, const uint32_t *h_item, int B) {
    int in0 = t->in[0], fi = t->feat_in, E = t->bag ? t->emb_dim : 0;
    ws->h_off = t->bag ? h_off : NULL;
    ws->h_item = h_item;
    for (int r = 0; r < B; r++) {
        size_t row = rows ? rows[r] : first + (size_t)r;
        float *dst = ws->x + (size_t)r * in0;
        if (xr) cb_rows_get(xr, (uint32_t)row, dst);
        else memcpy(dst, x + row * fi, (size_t)fi * sizeof(float));
        if (!E) continue;
        float *bag = dst + fi;
        memset(bag, 0, (size_t)E * sizeof(float));
        ws->hrow[r] = (uint32_t)row;
        ws->htgt[r] = tgt ? tgt[r] : UINT32_MAX;
        if (!ws->h_off) continue;
        uint32_t cnt = 0;
        for (uint32_t k = h_off[row]; k < h_off[row + 1]; k++) {
            uint32_t it = h_item[k];
            if (it == ws->htgt[r] || it >= t->n_emb) continue;
            const float *e = t->emb + (size_t)it * E;
            for (int d = 0; d < E; d++) bag[d] += e[d];
            cnt++;
        }
        if (cnt)
            for (int d = 0; d < E; d++) bag[d] /= (float)cnt;
    }
}

/* Forward B rows through tower t into ws->y[par]. rows == NULL: x holds B
 * contiguous rows; otherwise the rows rows[0..B) of table x are gathered. */
void cb_tower_forward(const tower *t, tower_ws *ws, const float *x, const uint32_t *rows,
                          const uint32_t *ids, int B, int par, bool l2norm, float eps) {
    int L = t->n_layers;
    const float *inp = x;
    if (rows || (t->bag && x != ws->x)) { /* rows of x, or x's rows widened by an (empty) bag */
        gather_rows(t, ws, x, NULL, rows, 0, NULL, NULL, NULL, B);
        inp = ws->x;
    }
    for (int l = 0; l < L; l++) {
        float *out = (l == L - 1 && !l2norm) ? ws->y[par] : ws->act[l];
        if (l == 0)
            ws->sparse_used = ws->csr.off && !cb_nn_csr_from_dense_tail(&ws->csr, inp, B, t->in[0], ws->dense_head);
        if (l == 0 && ws->sparse_used) {
            cb_nn_sparse_forward(out, &ws->csr, ws->wt0, t->b[0], B, t->out[0]);
            if (ws->dense_head) /* the dense head's inputs by sgemm, added */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, t->out[0], ws->dense_head, 1.0f, inp,
                            t->in[0], ws->wt0, t->out[0], 1.0f, out, t->out[0]);
        } else if (l == 0 && ws->wt0) {
            cb_nn_dense_forward_t(out, inp, ws->wt0, t->b[0], B, t->in[0], t->out[0]);
        } else {
            cb_nn_dense_forward(out, inp, t->w[l], t->b[l], B, t->in[l], t->out[l]);
        }
        if (l < L - 1) cb_nn_relu_forward(out, out, (size_t)B * t->out[l]);
        inp = out;
    }
    /* the id embedding joins the output before normalisation; ids past the
     * table (items added later) and NULL ids (content only) add nothing */
    ws->emb_ids = t->n_emb ? ids : NULL;
    if (ws->emb_ids) {
        int W = t->out[L - 1], E = t->emb_dim;
        float *out = l2norm ? ws->act[L - 1] : ws->y[par];
        for (int r = 0; r < B; r++)
            if (ids[r] < t->n_emb)
                for (int d = 0; d < E; d++) out[(size_t)r * W + d] += t->emb[(size_t)ids[r] * E + d];
    }
    /* split heads: each row's halves are normalised apart, as 2B rows of dim */
    if (l2norm)
        cb_nn_l2norm_forward(ws->y[par], ws->norm, ws->act[L - 1], B * t->parts, t->out[L - 1] / t->parts, eps);
}

/* The history bag's gradients: dbag (B, E) = dout (B, out0) · the bag's
 * columns of W0, spread evenly over each row's bag items (scratch: B·E floats). */
static void bag_backward(tower *t, const tower_ws *ws, const float *dout, float *scratch, int B) {
    int E = t->emb_dim, fi = t->feat_in, in0 = t->in[0], OC = t->out[0];
    if (ws->wt0) /* training keeps W0 transposed: its bag columns are rows of wt0 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, E, OC, 1.0f, dout, OC, ws->wt0 + (size_t)fi * OC, OC,
                    0.0f, scratch, E);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, E, OC, 1.0f, dout, OC, t->w[0] + fi, in0, 0.0f,
                    scratch, E);
    for (int r = 0; r < B; r++) {
        uint32_t row = ws->hrow[r], cnt = 0;
        if (row == UINT32_MAX) continue; /* user dropout: an empty bag */
        for (uint32_t k = ws->h_off[row]; k < ws->h_off[row + 1]; k++)
            cnt += ws->h_item[k] != ws->htgt[r] && ws->h_item[k] < t->n_emb;
        if (!cnt) continue;
        float inv = 1.0f / (float)cnt;
        const float *g = scratch + (size_t)r * E;
        for (uint32_t k = ws->h_off[row]; k < ws->h_off[row + 1]; k++) {
            uint32_t it = ws->h_item[k];
            if (it == ws->htgt[r] || it >= t->n_emb) continue;
            float *de = t->demb + (size_t)it * E;
            for (int d = 0; d < E; d++) de[d] += inv * g[d];
        }
    }
}

/* A sparse batch's dense head: dwt0's rows [0, dense_head) += inp's head
 * columns transposed · dout (the rows the non-zeros' gradient leaves zero). */
static void dense_head_grad(tower_ws *ws, const float *inp, const float *dout, int B, int C, int OC) {
    if (ws->dense_head && B > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ws->dense_head, OC, B, 1.0f, inp, C, dout, OC, 1.0f,
                    ws->dwt0, OC);
}

/* Backward through tower t, from dL/dy in ws->g0, ADDING into t->grads. */
void cb_tower_backward(tower *t, tower_ws *ws, int B, int par, bool l2norm, float eps) {
    int L = t->n_layers, dim = t->out[L - 1];
    float *dcur = ws->g0, *dnext = ws->g1;
    if (l2norm) {
        memset(dnext, 0, (size_t)B * dim * sizeof(float));
        cb_nn_l2norm_backward(dnext, dcur, ws->y[par], ws->norm, B * t->parts, dim / t->parts, eps);
        float *tmp = dcur; dcur = dnext; dnext = tmp;
    }
    if (ws->emb_ids)
        for (int r = 0; r < B; r++)
            if (ws->emb_ids[r] < t->n_emb)
                for (int d = 0; d < t->emb_dim; d++)
                    t->demb[(size_t)ws->emb_ids[r] * t->emb_dim + d] += dcur[(size_t)r * dim + d];
    for (int l = L - 1; l >= 0; l--) {
        const float *inp = l == 0 ? ws->x : ws->act[l - 1];
        float *dinp = NULL;
        if (l > 0) {
            dinp = dnext;
            memset(dinp, 0, (size_t)B * t->in[l] * sizeof(float));
        }
        if (l == 0 && ws->sparse_used && ws->split_w0) { /* dcur and inp outlive the call */
            cb_nn_sparse_backward_start(t->db[0], &ws->csc, dcur, &ws->csr, B, t->in[0], t->out[0]);
            ws->w0_part = (cb_nn_grad_part){.cols = &ws->csc, .dout = dcur, .head = ws->dense_head,
                                            .x = ws->dense_head ? inp : NULL, .ldx = t->in[0], .rows = B};
        } else if (l == 0 && ws->sparse_used) {
            cb_nn_sparse_backward_cols(ws->dwt0, t->db[0], &ws->csc, dcur, &ws->csr, B, t->in[0], t->out[0]);
            dense_head_grad(ws, inp, dcur, B, t->in[0], t->out[0]);
        } else if (l == 0 && ws->split_w0) { /* a dense batch: its rows for the reduction's sgemm (w0_rows) */
            cb_nn_bias_backward(t->db[0], dcur, B, t->out[0]);
            ws->w0_part = (cb_nn_grad_part){.x = inp, .ldx = t->in[0], .rows = B, .dout = dcur};
        } else if (l == 0 && ws->dwt0) { /* a dense batch: W0's gradient made transposed */
            cb_nn_dense_backward_wt(ws->dwt0, t->db[0], dcur, inp, B, t->in[0], t->out[0]);
        } else {
            cb_nn_dense_backward(dinp, t->dw[l], t->db[l], dcur, inp, t->w[l], B, t->in[l], t->out[l]);
        }
        if (l == 0 && t->bag && ws->h_off) bag_backward(t, ws, dcur, dnext, B);
        if (l > 0) {
            cb_nn_relu_backward_inplace(dinp, ws->act[l - 1], (size_t)B * t->in[l]);
            dnext = dcur;
            dcur = dinp;
        }
    }
}

/* The learning rate of a step in epoch `epoch` (counted across resumed runs):
 * lr · lr_decay^epoch. */
float cb_model_lr_at(const cb_model_config *c, uint32_t epoch) {
    return c->lr_decay == 1.0f ? c->lr : (float)((double)c->lr * pow((double)c->lr_decay, (double)epoch));
}

static void tower_update(tower *t, const cb_model_config *c) {
    t->step++;
    float lr = cb_model_lr_at(c, t->epoch);
    if (c->optimizer == CB_OPT_ADAM) {
        cb_nn_adam h = {lr, c->adam_beta1, c->adam_beta2, c->adam_eps, c->weight_decay};
        cb_nn_adam_update(t->params, t->grads, t->adam_m, t->adam_v, t->n_params, t->n_weights, &h,
                          t->step);
    } else {
        cb_nn_sgd_update(t->params, t->grads, t->n_params, t->n_weights, lr, c->weight_decay);
    }
}

/* Whether the 2-float head is trained: the BCE rating head or the rating head of `both`. */
static bool head_trained(const cb_model_config *c) {
    return c->objective == CB_OBJECTIVE_BOTH || (c->objective == CB_OBJECTIVE_RATING && c->loss == CB_LOSS_BCE);
}

/* ---------------------------------------------------------------- loss */


/* The softmax of a batch of B examples on output part 0 (rows of width W),
 * from its gathered columns (cb_model_gather_batch). */
cb_nn_softmax cb_model_softmax_of(const cb_model *m, const tower_ws *cols, int B) {
    const cb_model_config *c = &m->cfg;
    return (cb_nn_softmax){c->logq ? cols->lq : NULL, cols->ids, c->below_weight != 1.0f ? cols->wt : NULL,
                           1.0f / c->temperature, B, cols->n_cols, (int)c->dim, (int)cb_model_out_dim(m)};
}

/* The rating part of the rows [lo, hi) on output part [off, off + dim) of
 * rows of width W: the rating objective (MSE of <u,v>, or BCE of z = s·<u,v>
 * + c) or, under `both`, rating_weight · MSE of z = s·<u,v> + c. Each row's
 * term touches only its own user and item: o->dv's rows. */
static double rating_rows(const cb_model *m, const tower_ws *cols, const float *yu, const float *ym, int B, int lo,
                          int hi, int off, const loss_out *o) {
    const cb_model_config *c = &m->cfg;
    int D = (int)c->dim, W = (int)cb_model_out_dim(m);
    bool head = head_trained(c), bce = c->objective == CB_OBJECTIVE_RATING && c->loss == CB_LOSS_BCE;
    float s = head ? m->head[HEAD_S] : 1.0f, c0 = head ? m->head[HEAD_C] : 0.0f;
    double weight = c->objective == CB_OBJECTIVE_BOTH ? c->rating_weight : 1.0, loss = 0.0, ds = 0.0, dc = 0.0;
    for (int i = lo; i < hi; i++) {
        const float *u = yu + (size_t)i * W + off, *v = ym + (size_t)i * W + off;
        float p = 0.0f, t = cols->tgt[i];
        for (int d = 0; d < D; d++) p += u[d] * v[d];
        if (o->pred) o->pred[i - lo] = p;
        double e; /* B · dL/dz */
        if (bce) {
            float prob;
            loss += cb_nn_bce_forward(&prob, &p, &t, s, c0, 1);
            e = (double)prob - t;
        } else {
            double z = (double)s * p + c0 - t;
            loss += weight * z * z;
            e = weight * 2.0 * z;
        }
        double dz = e / B;
        ds += dz * p, dc += dz;
        float dp = (float)(s * dz);
        float *gu = o->du + (size_t)(i - lo) * W + off, *gv = o->dv + (size_t)(i - lo) * W + off;
        for (int d = 0; d < D; d++) gu[d] += dp * v[d], gv[d] += dp * u[d];
    }
    if (head && o->head_grad) {
        o->head_grad[HEAD_S] += (float)ds;
        o->head_grad[HEAD_C] += (float)dc;
    }
    return loss / B;
}

/* The loss of the block of batch rows [lo, hi) of B examples, from both
 * towers' outputs yu (B, W) and ym (N, W): the softmax's columns (the batch's
 * items, then its sampled negatives; N = cols->n_cols) or, for the rating
 * objective, the batch's own B items. cols holds the whole batch's gathered
 * targets, weights, items and log q (cb_model_gather_batch). Overwrites o->du with
 * dL/d(the block's rows of yu), and o->dv_all with the block's part of dL/dym
 * (the blocks' parts sum to it), or else o->dv with the rating term's part
 * for the block's own items. Returns the block's part of the batch loss (the
 * blocks' parts add up to it). The retrieval softmax is on output part 0,
 * the rating term on part 1 with split heads, else on part 0. */
double cb_model_loss_rows(const cb_model *m, const tower_ws *cols, const float *yu, const float *ym, int B, int lo,
                        int hi, loss_out o) {
    const cb_model_config *c = &m->cfg;
    size_t W = cb_model_out_dim(m);
    memset(o.du, 0, (size_t)(hi - lo) * W * sizeof(float));
    if (o.dv_all) {
        memset(o.dv_all, 0, (size_t)(c->objective == CB_OBJECTIVE_RATING ? B : cols->n_cols) * W * sizeof(float));
        o.dv = o.dv_all + (size_t)lo * W;
    } else {
        memset(o.dv, 0, (size_t)(hi - lo) * W * sizeof(float));
    }
    double loss = 0.0;
    if (c->objective != CB_OBJECTIVE_RATING) {
        cb_nn_softmax sm = cb_model_softmax_of(m, cols, B);
        const float *u = yu + (size_t)lo * W;
        loss += cb_nn_softmax_xent_forward(o.prob, u, ym, &sm, lo, hi - lo);
        cb_nn_softmax_xent_backward(o.du, o.dv_all, o.prob, u, ym, &sm, lo, hi - lo);
    }
    if (c->objective != CB_OBJECTIVE_RETRIEVAL)
        loss += rating_rows(m, cols, yu, ym, B, lo, hi, split(c) ? (int)c->dim : 0, &o);
    return loss;
}

void cb_model_head_update(cb_model *m) {
    const cb_model_config *c = &m->cfg;
    if (!head_trained(c)) return;
    m->head_step++;
    float *p = m->head, *g = m->head + HEAD_N, *mm = m->head + 2 * HEAD_N, *v = m->head + 3 * HEAD_N;
    if (c->optimizer == CB_OPT_ADAM) {
        cb_nn_adam h = {cb_model_lr_at(c, m->epochs_done), c->adam_beta1, c->adam_beta2, c->adam_eps, 0.0f};
        cb_nn_adam_update_naive(p, g, mm, v, HEAD_N, 0, &h, m->head_step);
    } else {
        cb_nn_sgd_update(p, g, HEAD_N, 0, cb_model_lr_at(c, m->epochs_done), 0.0f);
    }
}

void cb_model_optimizer_step(cb_model *m) {
    tower_update(&m->tw[0], &m->cfg);
    tower_update(&m->tw[1], &m->cfg);
    cb_model_head_update(m);
}

/* The batch's scaled targets, items and their log q (log_q may be NULL),
 * then the M sampled negatives neg[0..M) (NULL: none) as further columns. */
void cb_model_gather_batch(const cb_model_config *c, tower_ws *ws, const cb_rating *ratings, const uint32_t *idx,
                         int B, const float *log_q, const uint32_t *neg, int M) {
    for (int r = 0; r < B; r++) {
        const cb_rating *rt = &ratings[idx[r]];
        ws->tgt[r] = c->target_scale * rt->y + c->target_shift;
        ws->ids[r] = rt->item;
        ws->lq[r] = log_q ? log_q[rt->item] : 0.0f;
        ws->wt[r] = rt->y < c->positive_threshold ? c->below_weight : 1.0f;
    }
    ws->n_cols = B + (neg ? M : 0);
    for (int k = 0; neg && k < M; k++) {
        ws->ids[B + k] = neg[k];
        ws->lq[B + k] = log_q ? log_q[neg[k]] : 0.0f;
    }
}


/* The input rows of one side for the examples idx[0..B) into ws->x (after
 * cb_model_gather_batch: ws->ids holds their items): the user side with its history
 * bag, leaving each example's own item out of it. */
void cb_model_gather_side(const cb_model *m, int side, tower_ws *ws, const cb_train_data *d, const uint32_t *idx,
                        int B) {
    int rows = side_rows(ws, side, B);
    for (int r = 0; r < rows; r++) ws->hrow[r] = side == 0 ? d->ratings[idx[r]].user : ws->ids[r];
    gather_rows(&m->tw[side], ws, side == 0 ? d->user_x : d->item_x, side == 0 ? d->user_rows : NULL, ws->hrow, 0,
                ws->ids, d->hist_off, d->hist_item, rows);
}

void cb_model_log_q(float *out, const cb_rating *ratings, const uint32_t *train_idx, size_t n,
                    uint32_t n_items) {
    for (uint32_t i = 0; i < n_items; i++) out[i] = 1.0f;
    for (size_t j = 0; j < n; j++) out[ratings[train_idx[j]].item] += 1.0f;
    double total = (double)n + n_items;
    for (uint32_t i = 0; i < n_items; i++) out[i] = (float)log(out[i] / total);
}

int cb_model_train_log_q(const cb_model *m, float *out, const cb_rating *ratings, const uint32_t *train_idx, size_t n,
                         uint32_t n_items, cb_error *err) {
    const cb_model_config *c = &m->cfg;
    cb_model_log_q(out, ratings, train_idx, n, n_items);
    if (c->objective == CB_OBJECTIVE_RATING || !c->negatives || !n) return CB_OK;
    cb_negatives s;
    int rc = cb_negatives_init(&s, ratings, train_idx, n, n_items, c->negatives, c->negatives_power, err);
    if (rc) return rc;
    uint32_t B = c->batch_size < n ? c->batch_size : (uint32_t)n;
    cb_negatives_log_q(&s, out, B);
    float norm = (float)log((double)B + c->negatives);
    for (uint32_t i = 0; i < n_items; i++) out[i] -= norm;
    cb_negatives_free(&s);
    return CB_OK;
}

/* log q of d's items from its training examples, for the retrieval
 * objective with the logQ correction; *out = NULL when not needed. */
int cb_model_log_q_for(float **out, const cb_model *m, const cb_train_data *d, cb_error *err) {
    *out = NULL;
    if (m->cfg.objective == CB_OBJECTIVE_RATING || !m->cfg.logq) return CB_OK;
    *out = cb_malloc(((size_t)d->n_items + 1) * sizeof **out, err);
    if (!*out) return CB_ENOMEM;
    cb_model_log_q(*out, d->ratings, d->train_idx, d->train_idx ? d->n_train : 0, d->n_items);
    return CB_OK;
}

/* Every example must index inside the tables and have a finite target. */
int cb_model_check_data(const cb_train_data *d, const uint32_t *idx, size_t n, cb_error *err) {
    if (!d || !(d->user_x || d->user_rows) || !d->item_x || !d->ratings)
        return cb_fail(err, CB_EINVAL, "training data: feature tables and ratings are required");
    for (size_t i = 0; i < n; i++) {
        const cb_rating *r = &d->ratings[idx[i]];
        if (r->user >= d->n_users || r->item >= d->n_items)
            return cb_fail(err, CB_EINVAL, "example %u refers to user %u / item %u outside the tables (%u users, %u items)",
                           idx[i], r->user, r->item, d->n_users, d->n_items);
        if (!isfinite(r->y))
            return cb_fail(err, CB_EINVAL, "example %u has a non-finite target", idx[i]);
    }
    return CB_OK;
}

int cb_model_loss_and_grad(cb_model *m, const cb_train_data *d, const uint32_t *idx, size_t n,
                           double *loss, cb_error *err) {
    if (n == 0 || n > (1u << 24)) return cb_fail(err, CB_EINVAL, "loss_and_grad: bad batch size %zu", n);
    int rc = cb_model_check_data(d, idx, n, err);
    if (rc != CB_OK) return rc;
    const cb_model_config *c = &m->cfg;
    tower_ws ws[2];
    memset(ws, 0, sizeof ws);
    int B = (int)n;
    bool softmax = c->objective != CB_OBJECTIVE_RATING;
    int M = softmax ? (int)c->negatives : 0;
    float *log_q = NULL;
    uint32_t *neg = NULL;
    cb_negatives sampler;
    memset(&sampler, 0, sizeof sampler);
    if ((rc = cb_tower_ws_alloc(&ws[0], &m->tw[0], B + M, softmax, err)) || (rc = cb_tower_ws_alloc(&ws[1], &m->tw[1], B + M, softmax, err)) ||
        (rc = cb_model_log_q_for(&log_q, m, d, err)))
        goto done;
    if (M) { /* one draw of the sampled negatives, from the seed */
        rc = cb_negatives_init(&sampler, d->ratings, d->train_idx ? d->train_idx : idx, d->train_idx ? d->n_train : n,
                               d->n_items, (uint32_t)M, c->negatives_power, err);
        if (rc || !(neg = cb_malloc((size_t)M * sizeof *neg, err))) {
            rc = rc ? rc : CB_ENOMEM;
            goto done;
        }
        cb_negatives_draw(&sampler, neg, (size_t)M, c->seed);
        if (log_q) cb_negatives_log_q(&sampler, log_q, (uint32_t)B);
    }
    memset(m->tw[0].grads, 0, m->tw[0].n_params * sizeof(float));
    memset(m->tw[1].grads, 0, m->tw[1].n_params * sizeof(float));
    memset(m->head + HEAD_N, 0, HEAD_N * sizeof(float));
    for (int s = 0; s < 2; s++) {
        cb_model_gather_batch(c, &ws[s], d->ratings, idx, B, log_q, neg, M);
        cb_model_gather_side(m, s, &ws[s], d, idx, B);
    }
    cb_tower_forward(&m->tw[0], &ws[0], ws[0].x, NULL, NULL, B, 0, c->l2norm, c->l2norm_eps);
    cb_tower_forward(&m->tw[1], &ws[1], ws[1].x, NULL, ws[1].ids, side_rows(&ws[1], 1, B), 0, c->l2norm, c->l2norm_eps);
    loss_out o = {.du = ws[0].g0, .dv_all = ws[1].g0, .head_grad = m->head + HEAD_N, .prob = ws[0].prob};
    double l = cb_model_loss_rows(m, &ws[1], ws[0].y[0], ws[1].y[0], B, 0, B, o);
    for (int s = 0; s < 2; s++)
        cb_tower_backward(&m->tw[s], &ws[s], side_rows(&ws[s], s, B), 0, c->l2norm, c->l2norm_eps);
    if (loss) *loss = l;
done:
    free(neg);
    cb_negatives_free(&sampler);
    free(log_q);
    cb_tower_ws_free(&ws[0]);
    cb_tower_ws_free(&ws[1]);
    return rc;
}

/* ---------------------------------------------------------------- inference */

bool cb_model_has_rating(const cb_model *m) { return m->cfg.objective != CB_OBJECTIVE_RETRIEVAL; }

uint32_t cb_model_out_dim(const cb_model *m) { return split(&m->cfg) ? 2 * m->cfg.dim : m->cfg.dim; }

void cb_model_rank_part(const cb_model *m, uint32_t *off, uint32_t *len) {
    *off = 0;
    *len = m->cfg.dim;
}

void cb_model_rating_part(const cb_model *m, uint32_t *off, uint32_t *len) {
    *off = split(&m->cfg) ? m->cfg.dim : 0;
    *len = m->cfg.dim;
}

float cb_model_score_to_prediction(const cb_model *m, float score) {
    const cb_model_config *c = &m->cfg;
    if (c->objective == CB_OBJECTIVE_RETRIEVAL) return NAN;
    if (c->objective == CB_OBJECTIVE_BOTH)
        return (m->head[HEAD_S] * score + m->head[HEAD_C] - c->target_shift) / c->target_scale;
    if (c->loss == CB_LOSS_BCE) {
        double z = (double)m->head[HEAD_S] * score + m->head[HEAD_C];
        return (float)(z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)));
    }
    return (score - c->target_shift) / c->target_scale;
}

float cb_model_score_to_logit(const cb_model *m, float score) {
    if (m->cfg.objective != CB_OBJECTIVE_RATING) return score / m->cfg.temperature;
    return m->cfg.loss == CB_LOSS_BCE ? m->head[HEAD_S] * score + m->head[HEAD_C] : score;
}

static int vectors(const cb_model *m, int side, const float *x, const uint32_t *ids, const uint32_t *h_off,
                   const uint32_t *h_item, size_t n, float *out, cb_error *err) {
    const tower *t = &m->tw[side];
    tower_ws ws;
    int rc = cb_tower_ws_alloc(&ws, t, EVAL_CHUNK, false, err);
    if (rc != CB_OK) return rc;
    size_t dim = cb_model_out_dim(m);
    for (size_t s = 0; s < n; s += EVAL_CHUNK) {
        int B = (int)(n - s < EVAL_CHUNK ? n - s : EVAL_CHUNK);
        gather_rows(t, &ws, x, NULL, NULL, s, NULL, h_off, h_item, B);
        cb_tower_forward(t, &ws, ws.x, NULL, ids ? ids + s : NULL, B, 0, m->cfg.l2norm, m->cfg.l2norm_eps);
        memcpy(out + s * dim, ws.y[0], (size_t)B * dim * sizeof(float));
    }
    cb_tower_ws_free(&ws);
    return CB_OK;
}

int cb_model_user_vectors(const cb_model *m, const float *user_x, size_t n, float *out,
                          cb_error *err) {
    return vectors(m, 0, user_x, NULL, NULL, NULL, n, out, err);
}

int cb_model_user_vectors_hist(const cb_model *m, const float *user_x, size_t n, const uint32_t *hist_off,
                               const uint32_t *hist_item, float *out, cb_error *err) {
    return vectors(m, 0, user_x, NULL, hist_off, hist_item, n, out, err);
}

bool cb_model_has_history(const cb_model *m) { return m->tw[0].bag; }

int cb_model_item_vectors(const cb_model *m, const float *item_x, size_t n, float *out,
                          cb_error *err) {
    return vectors(m, 1, item_x, NULL, NULL, NULL, n, out, err);
}

int cb_model_item_vectors_ids(const cb_model *m, const float *item_x, const uint32_t *ids, size_t n, float *out,
                              cb_error *err) {
    return vectors(m, 1, item_x, ids, NULL, NULL, n, out, err);
}

/* pred (B) = the rating dots of the B row pairs of yu, ym (cb_model_rating_part). */
static void rating_dots(const cb_model *m, float *pred, const float *yu, const float *ym, int B) {
    uint32_t off, len, W = cb_model_out_dim(m);
    cb_model_rating_part(m, &off, &len);
    for (int r = 0; r < B; r++) {
        float acc = 0.0f;
        for (uint32_t d = 0; d < len; d++) acc += yu[(size_t)r * W + off + d] * ym[(size_t)r * W + off + d];
        pred[r] = acc;
    }
}

/* Raw scores v_u·v_m for pairs, in chunks; calls back per chunk. */
typedef void (*score_sink)(void *ctx, size_t offset, const float *score, int B);

static int score_pairs(const cb_model *m, const float *user_x, const float *item_x, const cb_train_data *hist,
                       const uint32_t *users, const uint32_t *items, size_t users_stride,
                       size_t n, score_sink sink, void *ctx, cb_error *err) {
    tower_ws ws[2];
    int rc = cb_tower_ws_alloc(&ws[0], &m->tw[0], EVAL_CHUNK, false, err);
    if (rc != CB_OK) return rc;
    if ((rc = cb_tower_ws_alloc(&ws[1], &m->tw[1], EVAL_CHUNK, false, err)) != CB_OK) {
        cb_tower_ws_free(&ws[0]);
        return rc;
    }
    uint32_t rows[2][EVAL_CHUNK];
    for (size_t s = 0; s < n; s += EVAL_CHUNK) {
        int B = (int)(n - s < EVAL_CHUNK ? n - s : EVAL_CHUNK);
        for (int r = 0; r < B; r++) {
            rows[0][r] = users[(s + r) * users_stride];
            rows[1][r] = items[(s + r) * users_stride];
        }
        gather_rows(&m->tw[0], &ws[0], user_x, hist ? hist->user_rows : NULL, rows[0], 0, rows[1], hist ? hist->hist_off : NULL,
                    hist ? hist->hist_item : NULL, B);
        cb_tower_forward(&m->tw[0], &ws[0], ws[0].x, NULL, NULL, B, 0, m->cfg.l2norm, m->cfg.l2norm_eps);
        cb_tower_forward(&m->tw[1], &ws[1], item_x, rows[1], rows[1], B, 0, m->cfg.l2norm, m->cfg.l2norm_eps);
        rating_dots(m, ws[0].pred, ws[0].y[0], ws[1].y[0], B);
        sink(ctx, s, ws[0].pred, B);
    }
    cb_tower_ws_free(&ws[0]);
    cb_tower_ws_free(&ws[1]);
    return CB_OK;
}

typedef struct predict_ctx {
    const cb_model *m;
    float *out;
} predict_ctx;

static void predict_sink(void *ctx, size_t off, const float *score, int B) {
    predict_ctx *p = ctx;
    for (int r = 0; r < B; r++) p->out[off + r] = cb_model_score_to_prediction(p->m, score[r]);
}

int cb_model_predict(const cb_model *m, const float *user_x, const float *item_x,
                     const uint32_t *users, const uint32_t *items, size_t n, float *out,
                     cb_error *err) {
    predict_ctx p = {m, out};
    return score_pairs(m, user_x, item_x, NULL, users, items, 1, n, predict_sink, &p, err);
}

typedef struct eval_ctx {
    const cb_model *m;
    const cb_rating *ratings;
    const uint32_t *idx;
    double loss_sum, sq_sum;
} eval_ctx;

static void eval_sink(void *ctx, size_t off, const float *score, int B) {
    eval_ctx *e = ctx;
    const cb_model_config *c = &e->m->cfg;
    for (int r = 0; r < B; r++) {
        float y = e->ratings[e->idx[off + r]].y;
        float t = c->target_scale * y + c->target_shift;
        if (c->loss == CB_LOSS_MSE) {
            double d = (double)score[r] - t;
            e->loss_sum += d * d;
            double o = (double)cb_model_score_to_prediction(e->m, score[r]) - y;
            e->sq_sum += o * o;
        } else {
            e->loss_sum += cb_nn_bce_forward(NULL, &score[r], &t, e->m->head[HEAD_S],
                                             e->m->head[HEAD_C], 1);
        }
    }
}

/* retrieval_evaluate's work: batches of `cap` consecutive ratings of idx,
 * each worker on its own pair of workspaces; a batch's loss x B and squared
 * error into its own slot of `out` (summed in batch order: the same bits on
 * any thread or rank count). */
typedef struct eval_job {
    const cb_model *m;
    const cb_train_data *d;
    const uint32_t *idx;
    size_t n;
    int cap;
    float *log_q;
    tower_ws (*ws)[2]; /* per worker */
    double *out;       /* per batch: loss x B, squared error */
} eval_job;

static void eval_batch(void *ctx, size_t b, int worker) {
    eval_job *j = ctx;
    const cb_model *m = j->m;
    const cb_model_config *c = &m->cfg;
    tower_ws *ws = j->ws[worker];
    size_t off = b * (size_t)j->cap;
    int B = (int)(j->n - off < (size_t)j->cap ? j->n - off : (size_t)j->cap);
    for (int side = 0; side < 2; side++) {
        tower_ws *w = &ws[side];
        cb_model_gather_batch(c, w, j->d->ratings, j->idx + off, B, j->log_q, NULL, 0);
        cb_model_gather_side(m, side, w, j->d, j->idx + off, B);
        cb_tower_forward(&m->tw[side], w, w->x, NULL, side == 1 ? w->ids : NULL, B, 0, c->l2norm, c->l2norm_eps);
    }
    /* the training loss; its gradients go to the workspaces' scratch */
    loss_out o = {.du = ws[0].g0, .dv_all = ws[1].g0, .prob = ws[0].prob, .pred = ws[1].pred};
    j->out[2 * b] = cb_model_loss_rows(m, &ws[1], ws[0].y[0], ws[1].y[0], B, 0, B, o) * B;
    double sq = 0.0;
    if (c->objective == CB_OBJECTIVE_BOTH)
        for (int r = 0; r < B; r++) { /* ws[1].pred: the rating dots of the rating term */
            double o_r = (double)cb_model_score_to_prediction(m, ws[1].pred[r]) - j->d->ratings[j->idx[off + r]].y;
            sq += o_r * o_r;
        }
    j->out[2 * b + 1] = sq;
}

/* cb_model_evaluate for retrieval / both: the training loss over consecutive
 * batches of idx, and the rating head's squared error (both), the batches
 * on the model's training threads (under d->comm, split across the ranks
 * and all-gathered). */
static int retrieval_evaluate(const cb_model *m, const cb_train_data *d, const uint32_t *idx, size_t n,
                              double *loss, double *rmse, cb_error *err) {
    const cb_model_config *c = &m->cfg;
    eval_job j = {.m = m, .d = d, .idx = idx, .n = n, .cap = (int)(c->batch_size < n ? c->batch_size : n)};
    size_t n_b = (n + (size_t)j.cap - 1) / (size_t)j.cap, lo, hi;
    int ranks = cb_comm_ranks(d->comm), rank = cb_comm_rank(d->comm);
    cb_split_range(n_b, ranks, rank, &lo, &hi);
    int threads = cb_threads_resolve(c->threads, CB_THREADS_MAX), made = 0;
    threads = hi - lo < (size_t)threads ? (hi > lo ? (int)(hi - lo) : 1) : threads;
    int rc = cb_model_log_q_for(&j.log_q, m, d, err);
    j.out = rc ? NULL : cb_calloc(2 * n_b, sizeof *j.out, err);
    j.ws = j.out ? cb_calloc((size_t)threads, sizeof *j.ws, err) : NULL;
    if (!rc && !j.ws) rc = CB_ENOMEM;
    for (; !rc && made < threads; made++) /* the items' side: the batch's columns, as training's x->cols */
        if ((rc = cb_tower_ws_alloc(&j.ws[made][0], &m->tw[0], j.cap, true, err)) ||
            (rc = cb_tower_ws_alloc(&j.ws[made][1], &m->tw[1], j.cap, false, err))) {
            cb_tower_ws_free(&j.ws[made][0]);
            break;
        }
    if (!rc) {
        cb_blas_hold_one();
        cb_threads_for(lo, hi, threads, eval_batch, &j);
        cb_blas_release();
    }
    size_t bytes[ranks], offset[ranks]; /* every rank's batches, as bits */
    for (int r = 0; r < ranks; r++) {
        size_t a, b;
        cb_split_range(n_b, ranks, r, &a, &b);
        offset[r] = a * 2 * sizeof *j.out, bytes[r] = (b - a) * 2 * sizeof *j.out;
    }
    if (!rc) rc = cb_comm_allgather_bytes(d->comm, j.out, bytes, offset, err);
    double loss_sum = 0.0, sq_sum = 0.0;
    for (size_t b = 0; !rc && b < n_b; b++) loss_sum += j.out[2 * b], sq_sum += j.out[2 * b + 1];
    if (!rc && loss) *loss = loss_sum / (double)n;
    if (!rc && rmse && c->objective == CB_OBJECTIVE_BOTH) *rmse = sqrt(sq_sum / (double)n);
    for (int w = 0; j.ws && w < made; w++) cb_tower_ws_free(&j.ws[w][0]), cb_tower_ws_free(&j.ws[w][1]);
    free(j.ws);
    free(j.log_q);
    free(j.out);
    return rc;
}

int cb_model_evaluate(const cb_model *m, const cb_train_data *d, const uint32_t *idx, size_t n,
                      double *loss, double *rmse, cb_error *err) {
    if (loss) *loss = NAN;
    if (rmse) *rmse = NAN;
    if (n == 0) return CB_OK;
    int rc = cb_model_check_data(d, idx, n, err);
    if (rc != CB_OK) return rc;
    if (m->cfg.objective != CB_OBJECTIVE_RATING) return retrieval_evaluate(m, d, idx, n, loss, rmse, err);
    /* users/items are read through the rating records: pass their fields with a stride */
    uint32_t *ui = cb_calloc(2 * n, sizeof(uint32_t), err);
    if (!ui) return CB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ui[2 * i] = d->ratings[idx[i]].user;
        ui[2 * i + 1] = d->ratings[idx[i]].item;
    }
    eval_ctx e = {m, d->ratings, idx, 0.0, 0.0};
    rc = score_pairs(m, d->user_x, d->item_x, d, ui, ui + 1, 2, n, eval_sink, &e, err);
    free(ui);
    if (rc != CB_OK) return rc;
    if (loss) *loss = e.loss_sum / (double)n;
    if (rmse && m->cfg.loss == CB_LOSS_MSE) *rmse = sqrt(e.sq_sum / (double)n);
    return CB_OK;
}

