/* baselines — the classic rating predictors cbrec is measured against, in the
 * same harness as the two-tower model:
 *
 *   GLOBAL_MEAN  the mean training rating, for every (user, item);
 *   BIAS         mu + b_u + b_i fitted by alternating least squares exactly as
 *                the Surprise library's BaselineOnly (defaults reg_i = 10,
 *                reg_u = 15, 10 epochs; each epoch updates every b_i, then every
 *                b_u, each from the current other side);
 *   POPULARITY   ranks items by their number of training ratings (top-N); as a
 *                rating predictor it returns the item's mean training rating;
 *   SVD          biased matrix factorisation trained by SGD exactly as
 *                Surprise's SVD (defaults 100 factors, 20 epochs, lr 0.005,
 *                reg 0.02, factors drawn from normal(0, 0.1) with our seeded
 *                RNG; ratings visited user by user, users in order of first
 *                appearance in the training indices, each user's ratings in
 *                training order, as Surprise's trainset.all_ratings() does).
 *
 * Unknown users or items (indices past the fitted dataset, or without any
 * training rating) fall back gracefully: their bias is 0 and SVD drops the
 * factor term, so the estimate becomes mu + b_i, mu + b_u or mu. Estimates
 * are clipped to the rating range when `clip` is set (Surprise does), while
 * the ranking scores of cb_baseline_score_items are left unclipped so the
 * top of a list is not a tie at the maximum rating.
 *
 * Threading: a fitted cb_baseline is read-only; any number of threads may call
 * the predict / score functions on it at once. */
#ifndef CB_BASELINES_H
#define CB_BASELINES_H

#include "data/dataset.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum cb_baseline_kind {
    CB_BASELINE_GLOBAL_MEAN = 0,
    CB_BASELINE_BIAS = 1,
    CB_BASELINE_POPULARITY = 2,
    CB_BASELINE_SVD = 3
} cb_baseline_kind;

typedef struct cb_baseline_config {
    cb_baseline_kind kind;
    /* BIAS: Surprise bsl_options {'method': 'als', 'n_epochs', 'reg_u', 'reg_i'} */
    int bias_epochs;     /* 10 */
    double reg_u;        /* 15 */
    double reg_i;        /* 10 */
    /* SVD */
    int n_factors;       /* 100 */
    int n_epochs;        /* 20 */
    double lr_all;       /* 0.005, used for b_u, b_i, p_u and q_i */
    double reg_all;      /* 0.02 */
    double init_mean;    /* 0 */
    double init_std;     /* 0.1 */
    uint64_t seed;       /* 1 */
    /* Output range: estimates are clipped to [y_min, y_max] when clip is set.
     * y_min == y_max takes ds->y_min/y_max, or the observed training range
     * when the dataset declares none. */
    bool clip;           /* true */
    float y_min, y_max;  /* 0, 0 */
} cb_baseline_config;

/* Defaults for `kind` (the values listed above). */
void cb_baseline_config_default(cb_baseline_config *c, cb_baseline_kind kind);
/* NULL when the configuration is valid, otherwise a static message. */
const char *cb_baseline_config_check(const cb_baseline_config *c);
/* "global-mean", "bias", "popularity", "svd". */
const char *cb_baseline_kind_name(cb_baseline_kind kind);
/* Kind from one of the names above; CB_ENOTFOUND when unknown. */
int cb_baseline_kind_parse(const char *name, cb_baseline_kind *kind, cb_error *err);

typedef struct cb_baseline cb_baseline;

/* Fit a baseline on the ratings ds->ratings[train[0..n_train-1]]. The model
 * covers the users and items of `ds` at fit time; `ds` is not referenced
 * afterwards. Returns CB_OK and a new model in *out (free with
 * cb_baseline_free), CB_EINVAL for a bad config, an index out of range or an
 * empty training set, CB_ENUMERIC when SGD diverges, CB_ENOMEM. */
int cb_baseline_fit(cb_baseline **out, const cb_baseline_config *c, const cb_dataset *ds,
                    const uint32_t *train, size_t n_train, cb_error *err);
void cb_baseline_free(cb_baseline *b); /* NULL is a no-op */

/* Estimated rating of (user, item), clipped when the config says so. Any
 * index is accepted (unknown ones fall back as described above). */
float cb_baseline_predict(const cb_baseline *b, uint32_t user, uint32_t item);
/* Ranking scores of all items 0..n_items-1 for `user` into scores[n_items]:
 * the unclipped estimate, or the training rating count for POPULARITY. */
void cb_baseline_score_items(const cb_baseline *b, uint32_t user, float *scores, uint32_t n_items);

/* Adapters with the callback signatures of eval.h (ctx = const cb_baseline *). */
float cb_baseline_predict_cb(void *ctx, uint32_t user, uint32_t item);
int cb_baseline_score_cb(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err);

/* Accessors (for reports and tests). Unknown indices give 0. */
cb_baseline_kind cb_baseline_kind_of(const cb_baseline *b);
double cb_baseline_global_mean(const cb_baseline *b);
double cb_baseline_user_bias(const cb_baseline *b, uint32_t user);
double cb_baseline_item_bias(const cb_baseline *b, uint32_t item);
/* Number of training ratings of an item (the popularity used for ranking). */
uint32_t cb_baseline_item_count(const cb_baseline *b, uint32_t item);

#endif /* CB_BASELINES_H */
