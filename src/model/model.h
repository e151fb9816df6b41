/* model — the two-tower model: a user network and an item network (dense
 * layers with ReLU, a linear output of `dim` units, optional l2-normalisation),
 * trained jointly so that v_u · v_m predicts the target (objective rating),
 * ranks what a user picks (retrieval: an in-batch softmax), or both.
 *
 * The model knows nothing about files or datasets: the caller passes two
 * row-major feature tables X_u [n_users x user_in] and X_m [n_items x item_in]
 * and examples (user index, item index, target) as cb_rating records selected
 * by an index array. A mini-batch gathers the rows it needs; features are
 * never copied per rating.
 *
 * Parameters: each tower's weights and biases live in ONE buffer (weights of
 * all layers first, then biases, so weight decay is a prefix), reached through
 * a struct of pointers; gradients and Adam moments share that layout. The
 * 2-float head (a learnable scale s and offset c) is the BCE rating head
 * p = sigmoid(s·v_u·v_m + c), or under objective both the rating head
 * s·v_u·v_m + c; a third buffer. The item tower may carry an id embedding
 * (item_ids). The tensors are enumerable by name for saving.
 *
 * Threading: training splits each batch's rows across `threads` workers
 * (model/parallel.c); each runs both towers on its rows (and the item tower
 * on its share of the sampled negatives), the loss of the whole batch is
 * computed once per side (the in-batch softmax sees all of it),
 * and the per-worker gradients are summed in worker order. The same seed and
 * thread count give the same bits; other thread counts the same model within
 * float tolerance (the sums run in another order). Across processes
 * (cb_train_data.comm) the batch is split across ranks first. While
 * cb_model_train runs it sets OpenBLAS to one thread (process-wide) and
 * restores the previous setting before returning: the workers call sgemm
 * concurrently. A trained model may be shared read-only by any number of
 * threads for predict / vectors; training needs exclusive access. */
#ifndef CB_MODEL_H
#define CB_MODEL_H

#include "data/dataset.h"
#include "base/rows.h"
#include "base/util.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CB_MODEL_MAX_LAYERS 8   /* hidden layers per tower */

typedef enum cb_loss_kind { CB_LOSS_MSE = 0, CB_LOSS_BCE = 1 } cb_loss_kind;
typedef enum cb_opt_kind { CB_OPT_ADAM = 0, CB_OPT_SGD = 1 } cb_opt_kind;
/* What the towers are trained for.
 *  rating:    v_u·v_m predicts the target (loss MSE or BCE, below): ranks by
 *             predicted rating; the lectures' model.
 *  retrieval: every training example is a positive (user, item) pair, scored
 *             against the other items of its batch by a softmax over
 *             logits v_u·v_m / temperature - log q(m) (q = the item's share of
 *             the training examples: the logQ correction for in-batch
 *             negatives); ranks by what a user is likely to pick. No rating.
 *  both:      retrieval + rating_weight · MSE of a rating head s·v_u·v_m + c
 *             (the 2-float head): ranks for top-N and still predicts a rating. */
typedef enum cb_objective {
    CB_OBJECTIVE_RATING = 0,
    CB_OBJECTIVE_RETRIEVAL = 1,
    CB_OBJECTIVE_BOTH = 2
} cb_objective;
/* "rating", "retrieval", "both"; NULL for an unknown value. */
const char *cb_objective_name(cb_objective o);
/* Parse a name of cb_objective_name; -1 when unknown. */
int cb_objective_parse(const char *name, cb_objective *out);

typedef struct cb_model_config {
    /* architecture */
    uint32_t user_in, item_in;                    /* input widths (required) */
    uint32_t n_user_layers, user_layers[CB_MODEL_MAX_LAYERS]; /* hidden ReLU widths */
    uint32_t n_item_layers, item_layers[CB_MODEL_MAX_LAYERS];
    uint32_t dim;                                 /* output width of both towers */
    bool item_id_embedding;                       /* cb_bundle_train sets item_ids = n_items */
    uint32_t item_ids;                            /* a learned vector per item 0..item_ids-1,
                                                     added to the item tower's output (its
                                                     ranking part, the first dim units) before
                                                     l2norm (starts at 0; 0 = none) */
    uint32_t history_dim;                         /* the history bag: a learned vector of this width
                                                     per item (user.history_embedding), averaged over
                                                     the user's training items and appended to the
                                                     user tower's input (0 = off) */
    uint32_t history_items;                       /* its rows (cb_bundle_train sets n_items when
                                                     history_dim > 0; 0 = no bag) */
    bool l2norm;                                  /* normalise v_u, v_m (default on) */
    float l2norm_eps;                             /* 1e-12, as torch / TF */
    /* objective (see cb_objective). The rating loss is trained on
     * y' = target_scale·y + target_shift; predictions are mapped back (MSE) or
     * are probabilities (BCE). */
    cb_objective objective;
    float temperature;                            /* retrieval logits = dot / temperature */
    bool logq;                                    /* the logQ correction (retrieval, both) */
    float rating_weight;                          /* weight of the rating loss under `both` */
    bool split_heads;                             /* both (ignored otherwise): the towers output 2·dim units, the
                                                     first dim (normalised apart) rank, the next
                                                     dim give the rating s·<u',m'> + c; off: one
                                                     vector for both (the rating is then monotone
                                                     in the ranking score) */
    float popularity_prior;                       /* ranking (retrieval, both) adds this times
                                                     log q(item) to the logit (cb_bundle_rank_score) */
    float item_dropout;                           /* training only: the probability, per training
                                                     example, that its item is shown as never rated:
                                                     no id embedding and the columns of
                                                     cb_train_data.item_cold set to their cold values
                                                     (so items without interactions are placed by
                                                     content); 0 = off */
    uint32_t negatives;                           /* training only (retrieval, both): items drawn from
                                                     the catalog per batch as extra softmax columns
                                                     beside the batch's own (negatives.c); 0 = in-batch only */
    float negatives_power;                        /* ... drawn with probability ∝ (training count + 1)^this
                                                     (0: uniform) */
    float below_weight;                           /* training only (retrieval, both): the softmax weight
                                                     of a pick rated below positive_threshold (1 = off) */
    float relevant_from;                          /* ... which cb_bundle_train sets at this fraction of
                                                     the rating range (explicit ratings only) */
    float positive_threshold;                     /* the rating itself (-INFINITY: every pick weighs 1) */
    float user_dropout;                           /* training only: the same for the user, shown as
                                                     known by features alone: the columns of
                                                     cb_train_data.user_cold at their cold values and
                                                     an empty history bag (cold-start users); 0 = off */
    cb_loss_kind loss;
    float target_scale, target_shift;
    float bce_scale_init;                         /* initial s of the BCE head (5) */
    /* optimisation */
    cb_opt_kind optimizer;
    float lr, weight_decay;                       /* L2 on weights only: grad += wd·w */
    float lr_decay;                               /* epoch e (counted across resumed runs) steps
                                                     with lr · lr_decay^e (1 = constant) */
    float adam_beta1, adam_beta2, adam_eps;       /* 0.9, 0.999, 1e-7 (Keras' eps) */
    bool lazy_embedding;                          /* Adam moves an item's id-embedding row only in
                                                     the steps whose batch holds the item */
    uint32_t batch_size, epochs;
    uint32_t patience;                            /* early stopping on validation loss; 0 = off */
    uint64_t seed;                                /* init and shuffling */
    int threads;                                  /* training threads (0 = every online core) */
} cb_model_config;

/* The fields no configuration key reaches (l2norm eps, Adam's betas and eps,
 * target scaling, the BCE head's initial scale); every other field 0. */
void cb_model_config_base(cb_model_config *c);
/* The training defaults (`cbrec train`, `cbrec eval` and the C API start
 * from here): the base above plus the default of every TRAIN key
 * (model/train_config.c, their one home; measured there): layers {256,128},
 * dim 32, l2norm on, objective both with split heads, temperature 0.1, logQ
 * on, below-weight 0.5, rating weight 3, popularity prior 0.5, item-id
 * embedding on, item dropout 0.25, user dropout 0.1, no history bag, MSE, Adam lr
 * 0.003, decay 0.8 per epoch, batch 256, 10 epochs, patience 0, seed 1, threads 0 (every core).
 * user_in / item_in are left 0: the caller must set them. */
void cb_model_config_default(cb_model_config *c);
/* NULL when the configuration is usable, else a static message naming the field. */
const char *cb_model_config_check(const cb_model_config *c);

typedef struct cb_model cb_model;

/* New model with parameters initialised from c->seed (He uniform for ReLU
 * layers, Glorot uniform for output layers, zero biases). The config is copied. */
int cb_model_create(cb_model **out, const cb_model_config *c, cb_error *err);
void cb_model_free(cb_model *m); /* NULL is a no-op */
const cb_model_config *cb_model_config_of(const cb_model *m);
/* Change the training-only fields (optimizer, lr, decay, batch, epochs,
 * patience, seed, threads) before a further cb_model_train; the architecture
 * and objective fields must equal the model's. */
int cb_model_set_train_config(cb_model *m, const cb_model_config *c, cb_error *err);
/* How training runs the user tower's first layer: on < 0 (the default)
 * sparse (model/nn_sparse.h: the batch's non-zeros) for an input of 256
 * columns or more when the CPU has AVX2, else dense (sgemm); 0 always dense;
 * > 0 always sparse. A batch with more than a quarter non-zeros goes dense
 * anyway. The two agree within float rounding. */
void cb_model_set_sparse_input(cb_model *m, int on);

/* ---- training */
typedef struct cb_train_data {
    const float *user_x;   /* [n_users x user_in], row-major */
    uint32_t n_users;
    const float *item_x;   /* [n_items x item_in] */
    uint32_t n_items;
    const cb_rating *ratings;      /* examples; ratings[i].user / .item index the tables */
    const uint32_t *train_idx;     /* indices into ratings used for training */
    size_t n_train;
    const uint32_t *valid_idx;     /* validation examples (may be NULL / 0) */
    size_t n_valid;
    const uint32_t *hist_off;      /* [n_users + 1] or NULL: each user's history (the history bag), */
    const uint32_t *hist_item;     /* items hist_item[hist_off[u] .. hist_off[u+1]); in training a
                                      row's own item is left out of its bag */
    const float *item_cold;        /* [item_in] or NULL: the value a never-rated item has in each
                                      interaction-derived item column (rating count / mean), NAN
                                      for content columns; item_dropout writes these values */
    const float *user_cold;        /* [user_in] or NULL: the same for a user without ratings (the
                                      rating-derived user columns), for user_dropout */
    const cb_train_comm *comm;     /* NULL, or this process is one rank of several (cbrec.h): every
                                      rank passes the same data and runs its part of each batch */
    const cb_rows *user_rows;      /* or NULL: the user table as dense head + 0/1 tail (base/rows.h),
                                      used instead of user_x (then NULL); each batch's rows are
                                      densified into the workspace */
    uint32_t user_dense_head;      /* with user_x: its first columns are dense and the rest mostly
                                      zeros, as the rows form's head and tail (0: no such head);
                                      the sparse first layer then takes those columns by sgemm */
} cb_train_data;

typedef struct cb_epoch_report {
    uint32_t epoch, epochs;        /* 1-based epoch; planned total */
    size_t batch, n_batches;       /* batches done in this epoch */
    bool end_of_epoch;             /* false: a progress tick inside the epoch */
    double train_loss;             /* mean data loss over the batches so far (scaled targets) */
    double valid_loss;             /* end of epoch, NAN without validation data */
    double valid_rmse;             /* MSE: RMSE on the ORIGINAL scale; BCE: NAN */
    double examples_per_sec;       /* training examples / wall second, this epoch */
    double seconds;                /* wall seconds since the epoch started */
    bool best;                     /* this epoch has the best validation loss so far */
    int stage;                     /* CB_STAGE_* (include/cbrec.h): 0 from the model, the model's epochs; the
                                      tuning (rec/api_train.c) marks the reports it passes on */
} cb_epoch_report;

/* Called on the calling thread (worker 0): at the end of every epoch, and ~every 1/50 epoch with
 * end_of_epoch = false (for progress bars). Returning non-zero stops training:
 * at the end of an epoch, or at a tick (every worker stops at the next step;
 * the partial epoch counts as run). At a tick the model's parameters are not all current (the
 * sparse first layer's W0 is trained in a copy): read the model at the end of an epoch. */
typedef int (*cb_epoch_fn)(const cb_epoch_report *r, void *ctx);

typedef struct cb_train_result {
    uint32_t epochs_run;
    uint32_t best_epoch;           /* epoch whose parameters the model now holds */
    double train_loss, valid_loss, valid_rmse; /* of the final epoch */
    double seconds;
    bool early_stopped;
    int threads;                   /* training workers used (threads resolved, capped by the batch) */
    double phase_seconds[4];       /* worker 0's CPU seconds in each part of the steps: towers
                                      (forward, backward), its chunks of the loss, gradient sum +
                                      optimiser, barriers and the communicator (spinning; a sleep
                                      while waiting for the others costs none); read on one
                                      step in 8 (an epoch's 8th, 16th, ...) and scaled to
                                      every step (0 with fewer than 8 steps an epoch) */
    /* filled by cb_bundle_train when it is given test examples, else NAN:
     * the loss as in training and the RMSE (rating / both only) */
    double test_loss, test_rmse;
} cb_train_result;

/* Train for c->epochs epochs over the shuffled training indices (seeded by
 * c->seed and the number of epochs already run, so a resumed run continues
 * the sequence). With validation data and patience > 0, stops after
 * `patience` epochs without improvement and restores the best epoch's
 * parameters. A non-finite loss or parameter stops training with CB_ENUMERIC
 * and restores the parameters of the last completed finite epoch.
 * Resuming: calling train again on the same model continues with its Adam
 * moments and step count; a model made by cb_model_create_from_tensors
 * starts with fresh (zero) Adam state. res may be NULL. */
int cb_model_train(cb_model *m, const cb_train_data *d, cb_epoch_fn fn, void *ctx,
                   cb_train_result *res, cb_error *err);

/* Mean loss (scaled targets) and RMSE (original scale, MSE rating or both;
 * else NAN) over the examples idx[0..n). Retrieval and both: the loss of
 * training (softmax over batches of batch_size examples in the given order,
 * log q from d->train_idx), its batches on the model's threads; under
 * d->comm a collective: every rank calls it with the same idx and n, takes
 * its share of the batches and gets the whole result. Either output may be
 * NULL. */
int cb_model_evaluate(const cb_model *m, const cb_train_data *d, const uint32_t *idx, size_t n,
                      double *loss, double *rmse, cb_error *err);

/* ---- inference (thread-safe on a shared model; scratch is per call) */
/* out[i] = prediction for (users[i], items[i]) on the original target scale
 * (MSE: (v_u·v_m - shift)/scale; BCE: probability; both: through the rating
 * head; retrieval: NAN, the model predicts no rating). */
int cb_model_predict(const cb_model *m, const float *user_x, const float *item_x,
                     const uint32_t *users, const uint32_t *items, size_t n, float *out,
                     cb_error *err);
/* out [n x out_dim] = tower output (normalised when l2norm) for every row of x [n x in]
 * (a model with a history bag sees empty histories: a user known by features only). */
int cb_model_user_vectors(const cb_model *m, const float *user_x, size_t n, float *out,
                          cb_error *err);
/* The same with each row's history: items hist_item[hist_off[r] .. hist_off[r+1]) for row r
 * (hist_off [n + 1]); items past the bag's table are skipped. Without a history bag
 * the history is ignored. */
int cb_model_user_vectors_hist(const cb_model *m, const float *user_x, size_t n, const uint32_t *hist_off,
                               const uint32_t *hist_item, float *out, cb_error *err);
/* True when the user tower takes the history bag. */
bool cb_model_has_history(const cb_model *m);
/* Item vectors from content alone (no id embedding): new items. */
int cb_model_item_vectors(const cb_model *m, const float *item_x, size_t n, float *out,
                          cb_error *err);
/* Item vectors of rows that are items ids[0..n): with the id embedding of
 * each id < item_ids (others: content alone). */
int cb_model_item_vectors_ids(const cb_model *m, const float *item_x, const uint32_t *ids, size_t n, float *out,
                              cb_error *err);
/* Map a raw rating score (the dot over cb_model_rating_part) to the
 * prediction scale (as cb_model_predict). */
float cb_model_score_to_prediction(const cb_model *m, float score);
/* True when the model predicts a rating (objective rating or both). */
bool cb_model_has_rating(const cb_model *m);
/* Width of the tower outputs (the vectors): dim, or 2·dim with split_heads. */
uint32_t cb_model_out_dim(const cb_model *m);
/* Columns [*off, *off + *len) of the vectors whose dot product is the
 * ranking score (score_to_logit) / the rating score (score_to_prediction). */
void cb_model_rank_part(const cb_model *m, uint32_t *off, uint32_t *len);
void cb_model_rating_part(const cb_model *m, uint32_t *off, uint32_t *len);
/* The logit of a raw score: s·score + c of a BCE rating model's head (before
 * the sigmoid); score / temperature for retrieval and both (the softmax
 * logit, before the logQ term); for MSE rating models the score unchanged. */
float cb_model_score_to_logit(const cb_model *m, float score);
/* log q of every item: the log of its share of the examples train_idx[0..n)
 * (counts + 1, so unseen items stay finite). out [n_items]. */
void cb_model_log_q(float *out, const cb_rating *ratings, const uint32_t *train_idx, size_t n,
                    uint32_t n_items);
/* The log of the distribution m's training drew its softmax columns from:
 * cb_model_log_q, or with sampled negatives (c->negatives) the mixture
 * (B·q_batch + M·q_neg) / (B + M) — what the logQ correction subtracted,
 * so what the popularity prior adds back at ranking. */
int cb_model_train_log_q(const cb_model *m, float *out, const cb_rating *ratings, const uint32_t *train_idx, size_t n,
                         uint32_t n_items, cb_error *err);

/* ---- named parameter tensors, for model files.
 * Names: "user.<l>.weight" [out,in], "user.<l>.bias" [out], the same for
 * "item.", and "head.scale" [1], "head.bias" [1], then "item.id_embedding"
 * [item_ids, dim] when item_ids > 0, then "user.history_embedding"
 * [history_items, history_dim] with a history bag (user.0.weight is then
 * [out, user_in + history_dim]: the bag's columns last). Layer l = 0 .. hidden layers (the last
 * is the output layer). Row-major, like torch.nn.Linear. */
typedef struct cb_tensor {
    char name[32];
    uint32_t ndim;
    uint32_t shape[2];
    float *data;                   /* points into the model (or, for create, the caller's) */
} cb_tensor;
size_t cb_model_n_tensors(const cb_model *m);
/* Fill *t with tensor i (0 <= i < n_tensors); data points into the model. */
void cb_model_tensor(const cb_model *m, size_t i, cb_tensor *t);
/* Number of trainable floats. */
size_t cb_model_n_params(const cb_model *m);
/* New model of config c whose parameters are copied from the given tensors,
 * matched by name; every tensor of the model must be given with its exact
 * shape (unknown names are an error). Adam state starts at zero. */
int cb_model_create_from_tensors(cb_model **out, const cb_model_config *c,
                                 const cb_tensor *tensors, size_t n, cb_error *err);

/* ---- internals exposed for tests (gradient checks, PyTorch parity) */
/* Zero the gradients, then one forward + backward over examples idx[0..n) with
 * targets already scaled; returns the loss in *loss. Gradients of tensor i are
 * reached with cb_model_tensor_grad. With c->negatives the softmax also has
 * that many sampled negatives (one draw from c->seed). */
int cb_model_loss_and_grad(cb_model *m, const cb_train_data *d, const uint32_t *idx, size_t n,
                           double *loss, cb_error *err);
/* Pointer to the gradient of tensor i (same shape as the tensor). */
float *cb_model_tensor_grad(cb_model *m, size_t i);
/* One optimiser step with the current gradients (adds weight decay). */
void cb_model_optimizer_step(cb_model *m);
/* Training with several workers then deals W0's rows among them at random
 * each step (seeded; 0: by their measured times, the default), to show that
 * where the cuts fall moves the work and never the model's bits. */
void cb_model_jitter_w0_shares(cb_model *m, uint64_t seed);

#endif /* CB_MODEL_H */
