/* evalrun — the evaluation harness behind `cbrec eval`, `cbrec experiment`
 * and `cbrec report`: fits the two-tower model and the baselines on the same
 * split, measures them with eval.h's metrics, and runs the retrieval-size
 * experiment (how the final top-N changes when the retrieval step of the
 * retrieval -> ranking pipeline brings more or fewer candidates). Its plots
 * are drawn by base/svg.h.
 *
 * Two-tower measurement. The model is trained with cb_bundle_train on the
 * split's training ratings (optionally minus a seeded validation carve for
 * early stopping) for its configured objective (cb_model_config_default's,
 * as `cbrec train`). A user's vector comes from the user tower on its feature
 * row computed from the TRAINING ratings only; a user without training
 * ratings (the cold-start protocol) therefore gets the row built from its
 * attributes alone — the same row cb_features_new_user gives for attributes
 * and no ratings. Rating estimates are cb_bundle_predict_vec(v_u, item) clipped
 * to the rating range (models with a rating head); catalog scores for top-N
 * are cb_bundle_rank_score (the predicted rating for rating models; the
 * logit plus the popularity prior for retrieval / both). "two-tower/pipeline" measures the lists of cb_recommend()
 * (retrieval from the cheap sources, then ranking) instead of the full
 * catalog ranking.
 *
 * "two-tower/implicit" is the same pipeline (cb_bundle_train) with the
 * objective set to retrieval (in-batch softmax, see model.h): measured on
 * top-N only (no RMSE).
 *
 * Cold users (no training ratings), when cold_impute is set: their feature
 * rows are imputed by cb_features_impute_cold from the `cold_neighbours`
 * attribute-nearest training users. Nothing of the cold user's own ratings is
 * used either way.
 *
 * EASE and item-kNN (itemrec.h) rank only (no RMSE). Their settings are
 * chosen per split: fitted on the training part minus a per-user validation
 * carve (tune_frac of each user's training ratings), NDCG@K measured on the
 * carve, the best setting refitted on the whole training part and measured
 * on the test part once. The row's `settings` says what was picked. Grids:
 * EASE lambda in {50, 100, 200, 500, 1000, 2000}; item-kNN k in {25, 50, 100,
 * 200, 400, 800} x shrink in {0, 20}. "content-knn" (itemrec.h, ranks only)
 * has no settings: the content-only baseline for the cold-start protocols.
 * "random" ranks the catalog in a random order per user (seeded by the
 * run's seed): what a list is worth that knows nothing (ranks only).
 *
 * "cbrec" is what a user gets from `cbrec train` + `cbrec recommend` with
 * their settings (c->train, the TRAIN defaults unless told otherwise), through
 * the same code: rec/api_train.c's cb_train_on_split on the split's training
 * part (its own validation carve, c->train.valid_frac), wrapped as the public
 * cb_recommender, and per test user the list of cb_recommender_recommend with
 * the default RECOMMEND options (n = max(K, recall K)). The one difference:
 * the "already rated" lists hold the training ratings only, so held-out items
 * can be recommended. RMSE too when the model predicts ratings.
 *
 * Nothing here prints; results come back as cb_eval_result rows.
 * Threading: no shared state; one call at a time per config. */
#ifndef CB_EVALRUN_H
#define CB_EVALRUN_H

#include "eval/eval.h"
#include "features/featurize.h"
#include "model/model.h"
#include "rec/recommend.h"
#include "model/bundle.h"
#include "model/train_config.h"

typedef enum cb_evalrun_model {
    CB_EVALRUN_TWOTOWER = 0,  /* "two-tower" */
    CB_EVALRUN_PIPELINE = 1,  /* "two-tower/pipeline": top-N through cb_recommend */
    CB_EVALRUN_GLOBAL = 2,    /* "global-mean" */
    CB_EVALRUN_BIAS = 3,      /* "bias" */
    CB_EVALRUN_POPULARITY = 4,/* "popularity" */
    CB_EVALRUN_SVD = 5,       /* "svd" */
    CB_EVALRUN_IMPLICIT = 6,  /* "two-tower/implicit": the towers trained for top-N (see below) */
    CB_EVALRUN_EASE = 7,      /* "ease": itemrec.h, lambda chosen on the validation carve */
    CB_EVALRUN_ITEM_KNN = 8,  /* "item-knn": itemrec.h, k and shrink chosen on the carve */
    CB_EVALRUN_CBREC = 9,     /* "cbrec": `cbrec train` + `cbrec recommend` with c->train (see below) */
    CB_EVALRUN_CONTENT_KNN = 10, /* "content-knn": itemrec.h, content rows only (no tuning) */
    CB_EVALRUN_CBREC_TOWERS = 11, /* "cbrec-towers": the cbrec row's model ranking by its towers alone
                                     (recommend --neighbours false); only when it has the neighbour component */
    CB_EVALRUN_RANDOM = 12,   /* "random": every user's list in a seeded random order (the floor) */
    CB_EVALRUN_N_MODELS = 13
} cb_evalrun_model;

/* "two-tower", "two-tower/pipeline", "global-mean", "bias", "popularity", "svd",
 * "two-tower/implicit", "ease", "item-knn", "cbrec", "content-knn", "cbrec-towers", "random". */
const char *cb_evalrun_model_name(cb_evalrun_model m);
/* Bit mask (1u << model) from a comma-separated list. Accepted names: the
 * names above and the short forms "twotower", "tt", "pipeline", "global",
 * "mean", "pop", "mf", "knn", "content". CB_ENOTFOUND naming an unknown entry. */
int cb_evalrun_models_parse(const char *list, unsigned *mask, cb_error *err);

typedef struct cb_evalrun_config {
    unsigned models;               /* bit mask of cb_evalrun_model (default: all) */
    cb_topn_config topn;           /* K = 10, threshold 4 */
    bool topn_enabled;             /* top-N metrics (true) */
    cb_train_config train;         /* the "cbrec" row's training (cb_train_config_default) */
    cb_feature_config features;    /* the two-tower rows': train.features by default */
    cb_model_config model;         /* ... train.model by default (seed: also the split's and baselines') */
    bool scale_targets;            /* ... train.scale_targets by default */
    double valid_frac;             /* validation carve from training, for patience (0 = none) */
    bool monitor_test;             /* valid_frac 0: report the held-out loss per epoch through
                                      on_epoch (the test ratings as "validation" with patience
                                      forced to 0, so they never select or stop anything) */
    uint32_t implicit_epochs;      /* epochs of two-tower/implicit (0: model.epochs) */
    bool cold_impute;              /* impute cold users' rating-derived features (true) */
    uint32_t cold_neighbours;      /* from this many attribute-nearest training users (200) */
    cb_recommend_config recommend; /* the pipeline model's config (n is set to topn.k): the
                                      default with the embedding source off (cheap sources only) */
    double tune_frac;              /* ease / item-knn: their settings are chosen on a per-user random
                                      carve of this fraction of each user's training ratings
                                      (cb_split_carve, seed model.seed), by NDCG@K (0.2) */
    cb_epoch_fn on_epoch;          /* progress of the two-tower rating model (may be NULL) */
    void *epoch_ctx;
    double *user_ndcg;             /* set by cb_evalrun_split for its rows (callers leave it NULL):
                                      [CB_EVALRUN_N_MODELS][users] each row's per-user NDCG@K */
    double *vs_sum;                /* NULL, or [CB_EVALRUN_N_MODELS][users]: each compared row's
                                      differences from its baseline added up per user over the
                                      splits, vs_count[...] of them (cb_eval_compare_clustered) */
    uint32_t *vs_count;
} cb_evalrun_config;

/* Defaults: every model, K 10, threshold 4, and the features, model and
 * training settings of the TRAIN table (cb_train_config_default, their one
 * home); the two-tower rows train without a validation carve (valid_frac 0). */
void cb_evalrun_config_default(cb_evalrun_config *c);

/* Fit every model of c->models on sp->train and measure it on sp->test.
 * Appends one cb_eval_result per model (fold number `fold`, 0 for none) to
 * the growable array *results / *n_results (the caller frees *results).
 * Each of our rows (the two-tower rows, cbrec, cbrec-towers) is compared
 * user by user with the split's strongest baseline (cb_eval_compare): of
 * popularity, EASE, item-kNN and content-kNN, the one with the best
 * NDCG@K on this split's test part.
 * Fit and evaluation wall times are filled in. On failure the rows added so
 * far stay. If out_rec is not NULL and the two-tower model was trained, the
 * trained recommender is handed to the caller there (cb_bundle_free it), and its
 * training result in *out_train (may be NULL). */
int cb_evalrun_split(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                     const cb_dataset *ds, const cb_split *sp, int fold, cb_bundle **out_rec,
                     cb_train_result *out_train, cb_error *err);

/* Train the two-tower model of config c on sp->train (minus the validation
 * carve); *out owns the new recommender. */
int cb_evalrun_train(cb_bundle **out, const cb_evalrun_config *c, const cb_dataset *ds, const cb_split *sp,
                     cb_train_result *res, cb_error *err);

/* ---- the retrieval-size experiment */
typedef struct cb_retrieval_row {
    uint32_t size;             /* nominal retrieval budget; 0 = the full catalog */
    double mean_candidates;    /* distinct candidates after filtering, per user */
    double recall;             /* recall@N of held-out relevant items (users with >= 1) */
    double ndcg;               /* NDCG@N, same users */
    double mean_score;         /* mean predicted rating of the final top-N slots */
    double overlap;            /* |top-N ∩ full-catalog top-N| / |full-catalog top-N| (shorter than N
                                  when fewer items are left to rank; 1 when none is), mean over users */
    double latency_us;         /* mean wall microseconds per user (profile + recommend) */
    size_t n_users;            /* users with >= 1 relevant held-out item */
} cb_retrieval_row;

/* The cb_recommend config used for a nominal budget R (0 = full catalog):
 * the embedding source over the whole catalog for R = 0; otherwise the cheap
 * sources only, sized so their union is about R before de-duplication — 60%
 * to "similar" (the 10 most recent liked items x R*0.06 neighbours), 20% to
 * the user's 3 best genres (<= 100 each) and 20% to the user's group /
 * popularity (<= 100). */
void cb_evalrun_retrieval_config(cb_recommend_config *rc, uint32_t size, uint32_t n, uint32_t n_items);

/* For each sizes[s] (0 = full catalog) fill rows[s], measured over the test
 * users of `sp` (at most max_users of them, 0 = all, taken in user order)
 * against a trained recommender whose training ratings match sp->train.
 * N = topn->k, relevant = held-out rating >= topn->threshold. A similar-items
 * table is built once so the similar source is a lookup. */
int cb_evalrun_retrieval(cb_retrieval_row *rows, const uint32_t *sizes, size_t n_sizes, const cb_bundle *rec,
                         const cb_dataset *ds, const cb_split *sp, const cb_topn_config *topn, size_t max_users,
                         cb_error *err);

#endif /* CB_EVALRUN_H */
