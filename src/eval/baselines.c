/* baselines — global mean, Surprise-style BaselineOnly (ALS), popularity and
 * Surprise-style SVD (biased MF by SGD). See baselines.h for the contracts.
 * Parameters are doubles, as in Surprise, so the figures we report can be
 * compared with the published ones without float round-off in the way. */
#include "eval/baselines.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cb_baseline {
    cb_baseline_config cfg;
    uint32_t n_users, n_items;
    double global_mean;
    float lo, hi;              /* clipping range */
    uint32_t *user_count;      /* [n_users] training ratings per user */
    uint32_t *item_count;      /* [n_items] training ratings per item */
    double *bu, *bi;           /* [n_users], [n_items] (BIAS, SVD) */
    double *item_mean;         /* [n_items] (POPULARITY) */
    double *pu, *qi;           /* [n_users * n_factors], [n_items * n_factors] (SVD) */
};

void cb_baseline_config_default(cb_baseline_config *c, cb_baseline_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->bias_epochs = 10;
    c->reg_u = 15.0;
    c->reg_i = 10.0;
    c->n_factors = 100;
    c->n_epochs = 20;
    c->lr_all = 0.005;
    c->reg_all = 0.02;
    c->init_mean = 0.0;
    c->init_std = 0.1;
    c->seed = 1;
    c->clip = true;
}

const char *cb_baseline_config_check(const cb_baseline_config *c) {
    if (!c) return "no configuration";
    if (c->kind < CB_BASELINE_GLOBAL_MEAN || c->kind > CB_BASELINE_SVD) return "unknown baseline kind";
    if (c->bias_epochs < 0) return "bias_epochs must be >= 0";
    if (!(c->reg_u >= 0) || !(c->reg_i >= 0)) return "reg_u and reg_i must be >= 0";
    if (c->kind == CB_BASELINE_SVD) {
        if (c->n_factors < 0 || c->n_factors > 100000) return "n_factors must be in [0, 100000]";
        if (c->n_epochs < 0) return "n_epochs must be >= 0";
        if (!(c->lr_all >= 0) || !isfinite(c->lr_all)) return "lr_all must be a finite number >= 0";
        if (!(c->reg_all >= 0) || !isfinite(c->reg_all)) return "reg_all must be a finite number >= 0";
        if (!isfinite(c->init_mean) || !(c->init_std >= 0) || !isfinite(c->init_std))
            return "init_mean must be finite and init_std a finite number >= 0";
    }
    if (!isfinite(c->y_min) || !isfinite(c->y_max) || c->y_min > c->y_max)
        return "y_min and y_max must be finite with y_min <= y_max";
    return NULL;
}

const char *cb_baseline_kind_name(cb_baseline_kind kind) {
    switch (kind) {
    case CB_BASELINE_GLOBAL_MEAN: return "global-mean";
    case CB_BASELINE_BIAS: return "bias";
    case CB_BASELINE_POPULARITY: return "popularity";
    case CB_BASELINE_SVD: return "svd";
    }
    return "unknown";
}

int cb_baseline_kind_parse(const char *name, cb_baseline_kind *kind, cb_error *err) {
    for (int k = CB_BASELINE_GLOBAL_MEAN; k <= CB_BASELINE_SVD; k++) {
        if (strcmp(name, cb_baseline_kind_name((cb_baseline_kind)k)) == 0) {
            *kind = (cb_baseline_kind)k;
            return CB_OK;
        }
    }
    return cb_fail(err, CB_ENOTFOUND,
                   "unknown baseline '%s' (expected global-mean, bias, popularity or svd)", name);
}

void cb_baseline_free(cb_baseline *b) {
    if (!b) return;
    free(b->user_count);
    free(b->item_count);
    free(b->bu);
    free(b->bi);
    free(b->item_mean);
    free(b->pu);
    free(b->qi);
    free(b);
}

/* Surprise's baseline_als: each epoch sets every b_i from the current b_u,
 * then every b_u from the new b_i, both as regularised means of residuals. */
static void fit_bias_als(cb_baseline *b, const cb_rating *ratings, const uint32_t *train,
                         size_t n_train, double *dev_user, double *dev_item) {
    const double mu = b->global_mean;
    for (int epoch = 0; epoch < b->cfg.bias_epochs; epoch++) {
        memset(dev_item, 0, b->n_items * sizeof *dev_item);
        for (size_t j = 0; j < n_train; j++) {
            const cb_rating *r = &ratings[train[j]];
            dev_item[r->item] += (double)r->y - mu - b->bu[r->user];
        }
        for (uint32_t i = 0; i < b->n_items; i++)
            b->bi[i] = dev_item[i] / (b->cfg.reg_i + (double)b->item_count[i]);

        memset(dev_user, 0, b->n_users * sizeof *dev_user);
        for (size_t j = 0; j < n_train; j++) {
            const cb_rating *r = &ratings[train[j]];
            dev_user[r->user] += (double)r->y - mu - b->bi[r->item];
        }
        for (uint32_t u = 0; u < b->n_users; u++)
            b->bu[u] = dev_user[u] / (b->cfg.reg_u + (double)b->user_count[u]);
    }
}

/* Training order of Surprise's trainset.all_ratings(): users in order of
 * first appearance (their inner ids), each user's ratings in file order.
 * Fills order[n_train] with positions into `train`. */
static int svd_order(uint32_t *order, const cb_baseline *b, const cb_rating *ratings,
                     const uint32_t *train, size_t n_train, cb_error *err) {
    uint32_t *user_seq = cb_calloc(b->n_users ? b->n_users : 1, sizeof *user_seq, err);
    size_t *fill = cb_calloc(b->n_users ? b->n_users : 1, sizeof *fill, err);
    if (!user_seq || !fill) {
        free(user_seq);
        free(fill);
        return CB_ENOMEM;
    }
    /* Users by first appearance, then fill[u] = next slot of u's block. */
    uint32_t n_seen = 0;
    for (size_t j = 0; j < n_train; j++) {
        uint32_t u = ratings[train[j]].user;
        if (fill[u] == 0) {
            fill[u] = 1;
            user_seq[n_seen++] = u;
        }
    }
    size_t offset = 0;
    for (uint32_t s = 0; s < n_seen; s++) {
        uint32_t u = user_seq[s];
        fill[u] = offset;
        offset += b->user_count[u];
    }
    for (size_t j = 0; j < n_train; j++) order[fill[ratings[train[j]].user]++] = (uint32_t)j;
    free(user_seq);
    free(fill);
    return CB_OK;
}

/* Surprise's SVD.sgd, biased version, with lr and reg shared by all four
 * parameter groups. The error is computed once per rating; both biases and
 * both factor vectors are updated from it, the factors from each other's
 * values before the update. */
static int fit_svd(cb_baseline *b, const cb_rating *ratings, const uint32_t *train,
                   size_t n_train, cb_error *err) {
    const size_t n_factors = (size_t)b->cfg.n_factors;
    b->pu = cb_calloc((size_t)b->n_users * n_factors + 1, sizeof *b->pu, err);
    b->qi = cb_calloc((size_t)b->n_items * n_factors + 1, sizeof *b->qi, err);
    uint32_t *order = cb_calloc(n_train, sizeof *order, err);
    if (!b->pu || !b->qi || !order) {
        free(order);
        return CB_ENOMEM;
    }
    cb_rng rng;
    cb_rng_seed(&rng, b->cfg.seed);
    for (size_t k = 0; k < (size_t)b->n_users * n_factors; k++)
        b->pu[k] = b->cfg.init_mean + b->cfg.init_std * cb_rng_normal(&rng);
    for (size_t k = 0; k < (size_t)b->n_items * n_factors; k++)
        b->qi[k] = b->cfg.init_mean + b->cfg.init_std * cb_rng_normal(&rng);
    int rc = svd_order(order, b, ratings, train, n_train, err);
    if (rc != CB_OK) {
        free(order);
        return rc;
    }

    const double mu = b->global_mean, lr = b->cfg.lr_all, reg = b->cfg.reg_all;
    for (int epoch = 0; epoch < b->cfg.n_epochs; epoch++) {
        for (size_t j = 0; j < n_train; j++) {
            const cb_rating *r = &ratings[train[order[j]]];
            double *restrict pu = b->pu + (size_t)r->user * n_factors;
            double *restrict qi = b->qi + (size_t)r->item * n_factors;
            double dot = 0.0;
            for (size_t f = 0; f < n_factors; f++) dot += qi[f] * pu[f];
            double e = (double)r->y - (mu + b->bu[r->user] + b->bi[r->item] + dot);
            b->bu[r->user] += lr * (e - reg * b->bu[r->user]);
            b->bi[r->item] += lr * (e - reg * b->bi[r->item]);
            for (size_t f = 0; f < n_factors; f++) {
                double puf = pu[f], qif = qi[f];
                pu[f] += lr * (e * qif - reg * puf);
                qi[f] += lr * (e * puf - reg * qif);
            }
        }
        double check = 0.0;
        for (uint32_t u = 0; u < b->n_users; u++) check += b->bu[u];
        for (uint32_t i = 0; i < b->n_items; i++) check += b->bi[i];
        if (!isfinite(check)) {
            free(order);
            return cb_fail(err, CB_ENUMERIC, "svd: training diverged in epoch %d (lower lr_all)",
                           epoch + 1);
        }
    }
    free(order);
    return CB_OK;
}

int cb_baseline_fit(cb_baseline **out, const cb_baseline_config *c, const cb_dataset *ds,
                    const uint32_t *train, size_t n_train, cb_error *err) {
    *out = NULL;
    const char *why = cb_baseline_config_check(c);
    if (why) return cb_fail(err, CB_EINVAL, "baseline: %s", why);
    if (n_train == 0) return cb_fail(err, CB_EINVAL, "baseline: empty training set");
    cb_baseline *b = cb_calloc(1, sizeof *b, err);
    if (!b) return CB_ENOMEM;
    b->cfg = *c;
    b->n_users = cb_vocab_size(ds->users);
    b->n_items = cb_vocab_size(ds->items);
    int rc = CB_ENOMEM;
    double *dev_user = NULL, *dev_item = NULL;
    b->user_count = cb_calloc((size_t)b->n_users + 1, sizeof *b->user_count, err);
    b->item_count = cb_calloc((size_t)b->n_items + 1, sizeof *b->item_count, err);
    b->bu = cb_calloc((size_t)b->n_users + 1, sizeof *b->bu, err);
    b->bi = cb_calloc((size_t)b->n_items + 1, sizeof *b->bi, err);
    if (!b->user_count || !b->item_count || !b->bu || !b->bi) goto fail;

    double sum = 0.0;
    float y_lo = INFINITY, y_hi = -INFINITY;
    for (size_t j = 0; j < n_train; j++) {
        if (train[j] >= ds->n_ratings) {
            rc = cb_fail(err, CB_EINVAL, "baseline: training index %u out of range (%zu ratings)",
                         train[j], ds->n_ratings);
            goto fail;
        }
        const cb_rating *r = &ds->ratings[train[j]];
        if (r->user >= b->n_users || r->item >= b->n_items || !isfinite(r->y)) {
            rc = cb_fail(err, CB_EINVAL, "baseline: rating %u has an unknown user/item or a non-finite value",
                         train[j]);
            goto fail;
        }
        b->user_count[r->user]++;
        b->item_count[r->item]++;
        sum += r->y;
        if (r->y < y_lo) y_lo = r->y;
        if (r->y > y_hi) y_hi = r->y;
    }
    b->global_mean = sum / (double)n_train;
    if (c->y_min < c->y_max) {
        b->lo = c->y_min;
        b->hi = c->y_max;
    } else if (ds->y_min < ds->y_max) {
        b->lo = ds->y_min;
        b->hi = ds->y_max;
    } else {
        b->lo = y_lo;
        b->hi = y_hi;
    }

    switch (c->kind) {
    case CB_BASELINE_GLOBAL_MEAN: break;
    case CB_BASELINE_BIAS:
        dev_user = cb_calloc((size_t)b->n_users + 1, sizeof *dev_user, err);
        dev_item = cb_calloc((size_t)b->n_items + 1, sizeof *dev_item, err);
        if (!dev_user || !dev_item) goto fail;
        fit_bias_als(b, ds->ratings, train, n_train, dev_user, dev_item);
        break;
    case CB_BASELINE_POPULARITY:
        b->item_mean = cb_calloc((size_t)b->n_items + 1, sizeof *b->item_mean, err);
        if (!b->item_mean) goto fail;
        for (size_t j = 0; j < n_train; j++) {
            const cb_rating *r = &ds->ratings[train[j]];
            b->item_mean[r->item] += r->y;
        }
        for (uint32_t i = 0; i < b->n_items; i++)
            b->item_mean[i] = b->item_count[i] ? b->item_mean[i] / b->item_count[i] : b->global_mean;
        break;
    case CB_BASELINE_SVD:
        rc = fit_svd(b, ds->ratings, train, n_train, err);
        if (rc != CB_OK) goto fail;
        break;
    }
    free(dev_user);
    free(dev_item);
    *out = b;
    return CB_OK;
fail:
    free(dev_user);
    free(dev_item);
    cb_baseline_free(b);
    return rc;
}

static inline bool user_known(const cb_baseline *b, uint32_t user) {
    return user < b->n_users && b->user_count[user] > 0;
}
static inline bool item_known(const cb_baseline *b, uint32_t item) {
    return item < b->n_items && b->item_count[item] > 0;
}

/* The unclipped estimate of Surprise's estimate(): mu, plus each known bias,
 * plus q_i . p_u when both sides are known. */
static double estimate(const cb_baseline *b, uint32_t user, uint32_t item) {
    bool ku = user_known(b, user), ki = item_known(b, item);
    double est = b->global_mean;
    switch (b->cfg.kind) {
    case CB_BASELINE_GLOBAL_MEAN: break;
    case CB_BASELINE_POPULARITY:
        if (ki) est = b->item_mean[item];
        break;
    case CB_BASELINE_BIAS:
    case CB_BASELINE_SVD:
        if (ku) est += b->bu[user];
        if (ki) est += b->bi[item];
        if (b->cfg.kind == CB_BASELINE_SVD && ku && ki) {
            size_t n_factors = (size_t)b->cfg.n_factors;
            const double *pu = b->pu + (size_t)user * n_factors;
            const double *qi = b->qi + (size_t)item * n_factors;
            double dot = 0.0;
            for (size_t f = 0; f < n_factors; f++) dot += qi[f] * pu[f];
            est += dot;
        }
        break;
    }
    return est;
}

float cb_baseline_predict(const cb_baseline *b, uint32_t user, uint32_t item) {
    double est = estimate(b, user, item);
    if (b->cfg.clip) {
        if (est < b->lo) est = b->lo;
        if (est > b->hi) est = b->hi;
    }
    return (float)est;
}

void cb_baseline_score_items(const cb_baseline *b, uint32_t user, float *scores, uint32_t n_items) {
    for (uint32_t i = 0; i < n_items; i++) {
        if (b->cfg.kind == CB_BASELINE_POPULARITY)
            scores[i] = i < b->n_items ? (float)b->item_count[i] : 0.0f;
        else
            scores[i] = (float)estimate(b, user, i);
    }
}

float cb_baseline_predict_cb(void *ctx, uint32_t user, uint32_t item) {
    return cb_baseline_predict((const cb_baseline *)ctx, user, item);
}

int cb_baseline_score_cb(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    (void)err;
    cb_baseline_score_items((const cb_baseline *)ctx, user, scores, n_items);
    return CB_OK;
}

cb_baseline_kind cb_baseline_kind_of(const cb_baseline *b) { return b->cfg.kind; }
double cb_baseline_global_mean(const cb_baseline *b) { return b->global_mean; }
double cb_baseline_user_bias(const cb_baseline *b, uint32_t user) {
    return user < b->n_users ? b->bu[user] : 0.0;
}
double cb_baseline_item_bias(const cb_baseline *b, uint32_t item) {
    return item < b->n_items ? b->bi[item] : 0.0;
}
uint32_t cb_baseline_item_count(const cb_baseline *b, uint32_t item) {
    return item < b->n_items ? b->item_count[item] : 0;
}
