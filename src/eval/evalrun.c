/* evalrun — the evaluation harness: the two-tower model and the baselines fitted
 * on one split and measured by the same eval.h code, the retrieval-size
 * experiment, and small SVG charts. See evalrun.h for the protocol. */
#include "eval/evalrun.h"

#include "eval/baselines.h"
#include "eval/itemrec.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const model_names[CB_EVALRUN_N_MODELS] = {
    "two-tower", "two-tower/pipeline", "global-mean", "bias", "popularity", "svd", "two-tower/implicit",
    "ease", "item-knn", "cbrec"};

const char *cb_evalrun_model_name(cb_evalrun_model m) {
    return (unsigned)m < CB_EVALRUN_N_MODELS ? model_names[m] : "?";
}

int cb_evalrun_models_parse(const char *list, unsigned *mask, cb_error *err) {
    static const struct {
        const char *name;
        cb_evalrun_model m;
    } alias[] = {{"two-tower", CB_EVALRUN_TWOTOWER}, {"twotower", CB_EVALRUN_TWOTOWER}, {"tt", CB_EVALRUN_TWOTOWER},
                 {"two-tower/pipeline", CB_EVALRUN_PIPELINE}, {"pipeline", CB_EVALRUN_PIPELINE},
                 {"global-mean", CB_EVALRUN_GLOBAL}, {"global", CB_EVALRUN_GLOBAL}, {"mean", CB_EVALRUN_GLOBAL},
                 {"bias", CB_EVALRUN_BIAS}, {"baseline", CB_EVALRUN_BIAS}, {"popularity", CB_EVALRUN_POPULARITY},
                 {"pop", CB_EVALRUN_POPULARITY}, {"svd", CB_EVALRUN_SVD}, {"mf", CB_EVALRUN_SVD},
                 {"two-tower/implicit", CB_EVALRUN_IMPLICIT}, {"implicit", CB_EVALRUN_IMPLICIT},
                 {"ease", CB_EVALRUN_EASE}, {"item-knn", CB_EVALRUN_ITEM_KNN}, {"knn", CB_EVALRUN_ITEM_KNN},
                 {"cbrec", CB_EVALRUN_CBREC}};
    *mask = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        bool found = false;
        for (size_t a = 0; a < sizeof alias / sizeof alias[0] && !found; a++)
            if (strlen(alias[a].name) == len && !strncmp(alias[a].name, p, len)) {
                *mask |= 1u << alias[a].m;
                found = true;
            }
        if (!found && len)
            return cb_fail(err, CB_ENOTFOUND,
                           "unknown model '%.*s' (known: twotower, pipeline, implicit, global, bias, popularity, svd, "
                           "ease, item-knn, cbrec)",
                           (int)len, p);
        p += len;
        if (*p == ',') p++;
    }
    if (!*mask) return cb_fail(err, CB_EINVAL, "no model named");
    return CB_OK;
}

void cb_evalrun_config_default(cb_evalrun_config *c) {
    memset(c, 0, sizeof *c);
    c->models = (1u << CB_EVALRUN_N_MODELS) - 1;
    cb_topn_config_default(&c->topn);
    c->topn_enabled = true;
    cb_train_config_default(&c->train); /* the one home of the training defaults */
    c->features = c->train.features;
    c->model = c->train.model;
    c->scale_targets = c->train.scale_targets;
    c->valid_frac = 0;
    c->implicit_negatives = 8;
    c->implicit_epochs = 3; /* 5x the examples of the rating model per epoch */
    c->cold_impute = true;
    c->cold_neighbours = 200;
    c->implicit_cold_attrs = true;
    c->implicit_neg_alpha = 0;
    c->cold_neg_alpha = 1;
    c->tune_frac = 0.2;
    /* The pipeline row retrieves from the cheap sources only: with the
     * embedding source on (cbrec recommend's default), its top 50 by v_u.v_m
     * already holds the full-catalog top K, and the lists equal the
     * two-tower row exactly (measured). */
    cb_recommend_config_default(&c->recommend);
    c->recommend.embedding_items = 0;
}

/* ---- cold users: impute the rating-derived features (see evalrun.h) */

static bool rating_derived(const char *name) {
    return !strncmp(name, "rating_count", 12) || !strncmp(name, "rating_mean", 11) ||
           !strncmp(name, "genre_avg[", 10) || !strncmp(name, "genre_frac[", 11) || !strncmp(name, "top_item[", 9);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Users of ds with at least one rating in train[]: has[u] = 1. */
static uint8_t *users_with_ratings(const cb_dataset *ds, const uint32_t *train, size_t n_train, cb_error *err) {
    uint32_t nu = cb_dataset_n_users(ds);
    uint8_t *has = cb_calloc((size_t)nu + 1, 1, err);
    if (has)
        for (size_t j = 0; j < n_train; j++) has[ds->ratings[train[j]].user] = 1;
    return has;
}

/* Rewrite the rows of users without training ratings in X_u [n_users x du].
 * *n_cold receives how many there were. */
static int impute_cold_rows(float *X_u, const cb_features *f, const uint8_t *has, uint32_t n_users, uint32_t k,
                            size_t *n_cold, cb_error *err) {
    uint32_t du = cb_features_user_dim(f);
    *n_cold = 0;
    for (uint32_t u = 0; u < n_users; u++) *n_cold += !has[u];
    if (!*n_cold) return CB_OK;
    uint8_t *derived = cb_calloc((size_t)du + 1, 1, err);
    uint32_t *warm = cb_malloc(((size_t)n_users + 1) * sizeof *warm, err);
    double *dist = cb_malloc(((size_t)n_users + 1) * sizeof *dist, err);
    double *sorted = cb_malloc(((size_t)n_users + 1) * sizeof *sorted, err);
    double *acc = cb_malloc(((size_t)du + 1) * sizeof *acc, err);
    int rc = derived && warm && dist && sorted && acc ? CB_OK : CB_ENOMEM;
    uint32_t n_warm = 0;
    if (!rc) {
        for (uint32_t j = 0; j < du; j++) derived[j] = rating_derived(cb_features_user_name(f, j));
        for (uint32_t u = 0; u < n_users; u++)
            if (has[u]) warm[n_warm++] = u;
    }
    for (uint32_t u = 0; !rc && n_warm && u < n_users; u++) {
        if (has[u]) continue;
        const float *xu = X_u + (size_t)u * du;
        for (uint32_t w = 0; w < n_warm; w++) {
            const float *xw = X_u + (size_t)warm[w] * du;
            double d = 0;
            for (uint32_t j = 0; j < du; j++)
                if (!derived[j]) d += ((double)xu[j] - xw[j]) * ((double)xu[j] - xw[j]);
            dist[w] = sorted[w] = d;
        }
        qsort(sorted, n_warm, sizeof *sorted, cmp_double);
        double kth = sorted[(k && k < n_warm ? k : n_warm) - 1];
        memset(acc, 0, du * sizeof *acc);
        size_t n_near = 0;
        for (uint32_t w = 0; w < n_warm; w++) {
            if (dist[w] > kth) continue;
            const float *xw = X_u + (size_t)warm[w] * du;
            for (uint32_t j = 0; j < du; j++)
                if (derived[j]) acc[j] += xw[j];
            n_near++;
        }
        float *out = X_u + (size_t)u * du;
        for (uint32_t j = 0; j < du; j++)
            if (derived[j]) out[j] = (float)(acc[j] / (double)n_near);
    }
    free(derived);
    free(warm);
    free(dist);
    free(sorted);
    free(acc);
    return rc;
}

/* ---- two-tower adapters */

typedef struct tt_ctx {
    const cb_bundle *rec;
    const float *user_vecs;  /* rec->user_vecs, or a copy with cold users' vectors imputed */
    float lo, hi;
} tt_ctx;

static float tt_predict(void *vctx, uint32_t user, uint32_t item) {
    const tt_ctx *t = vctx;
    const cb_bundle *r = t->rec;
    float y = cb_bundle_predict_vec(r, t->user_vecs + (size_t)user * r->dim, item);
    if (t->hi > t->lo) y = y < t->lo ? t->lo : y > t->hi ? t->hi : y;
    return y;
}

static int tt_score(void *vctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    const tt_ctx *t = vctx;
    const cb_bundle *r = t->rec;
    if (user >= r->n_users || n_items != r->n_items)
        return cb_fail(err, CB_EINVAL, "two-tower scorer: user %u / %u items out of range", user, n_items);
    /* scores = V_m (n_items x dim) . v_u */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_items, (int)r->dim, 1.0f, r->item_vecs, (int)r->dim,
                t->user_vecs + (size_t)user * r->dim, 1, 0.0f, scores, 1);
    return CB_OK;
}

/* User vectors of rec with the cold users' rows re-embedded from imputed
 * features; *out = NULL (use rec->user_vecs) when there is no cold user. */
static int cold_user_vecs(float **out, const cb_bundle *rec, const cb_evalrun_config *c, const cb_dataset *ds,
                          const cb_split *sp, cb_error *err) {
    *out = NULL;
    uint8_t *has = users_with_ratings(ds, sp->train, sp->n_train, err);
    if (!has) return CB_ENOMEM;
    float *X_u = NULL, *X_m = NULL, *uv = NULL;
    size_t n_cold = 0;
    int rc = cb_bundle_tables(rec, ds, sp->train, sp->n_train, &X_u, &X_m, err);
    if (!rc) rc = impute_cold_rows(X_u, rec->features, has, rec->n_users, c->cold_neighbours, &n_cold, err);
    if (!rc && n_cold) {
        uv = cb_malloc((size_t)rec->n_users * rec->dim * sizeof *uv, err);
        if (!uv) rc = CB_ENOMEM;
        else rc = cb_model_user_vectors(rec->model, X_u, rec->n_users, uv, err);
        if (!rc) /* warm users keep exactly the recommender's vectors */
            for (uint32_t u = 0; u < rec->n_users; u++)
                if (has[u]) memcpy(uv + (size_t)u * rec->dim, rec->user_vecs + (size_t)u * rec->dim, rec->dim * sizeof *uv);
    }
    if (rc) free(uv);
    else *out = uv;
    free(has);
    free(X_u);
    free(X_m);
    return rc;
}

/* ---- two-tower/implicit: the towers trained on rated (1) vs not rated (0) */

typedef struct implicit_model {
    cb_model *model;
    float *user_vecs, *item_vecs;
    uint32_t n_users, n_items, dim;
    float *log_q; /* [n_items] log of the negatives' sampling weight; NULL: uniform */
} implicit_model;

static void implicit_free(implicit_model *im) {
    cb_model_free(im->model);
    free(im->user_vecs);
    free(im->item_vecs);
    free(im->log_q);
    memset(im, 0, sizeof *im);
}

static int implicit_score(void *vctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    const implicit_model *im = vctx;
    if (user >= im->n_users || n_items != im->n_items)
        return cb_fail(err, CB_EINVAL, "implicit scorer: user %u / %u items out of range", user, n_items);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_items, (int)im->dim, 1.0f, im->item_vecs, (int)im->dim,
                im->user_vecs + (size_t)user * im->dim, 1, 0.0f, scores, 1);
    if (im->log_q) {
        /* negatives drawn from q: the logit estimates log p(item | user) - log q(item) + const,
         * so add log q back (the "logQ correction") to rank by p(item | user) */
        for (uint32_t i = 0; i < n_items; i++) scores[i] = cb_model_score_to_logit(im->model, scores[i]) + im->log_q[i];
        return CB_OK;
    }
    /* the head p = sigmoid(s.dot + c) is monotone in s.dot: rank by probability */
    for (uint32_t i = 0; i < n_items; i++) scores[i] = cb_model_score_to_prediction(im->model, scores[i]);
    return CB_OK;
}

/* Popularity-aware negatives: cdf[0..ni] the cumulative sampling weights
 * (count_i + 1)^alpha of the items by training count, log_q[i] the log of
 * item i's weight (the correction added to the logit when ranking). */
static int negative_weights(double **cdf_out, float **log_q_out, const cb_dataset *ds, const cb_split *sp, uint32_t ni,
                            double alpha, cb_error *err) {
    double *cdf = cb_calloc((size_t)ni + 1, sizeof *cdf, err);
    float *log_q = cb_malloc(((size_t)ni + 1) * sizeof *log_q, err);
    if (!cdf || !log_q) {
        free(cdf);
        free(log_q);
        return CB_ENOMEM;
    }
    for (size_t j = 0; j < sp->n_train; j++) cdf[ds->ratings[sp->train[j]].item + 1] += 1.0;
    for (uint32_t i = 0; i < ni; i++) {
        double w = pow(cdf[i + 1] + 1.0, alpha);
        log_q[i] = (float)log(w);
        cdf[i + 1] = cdf[i] + w;
    }
    *cdf_out = cdf;
    *log_q_out = log_q;
    return CB_OK;
}

/* An item drawn with probability proportional to its weight: the first i
 * with cdf[i + 1] > x, for x uniform in [0, cdf[ni]). */
static uint32_t cdf_draw(const double *cdf, uint32_t ni, cb_rng *rng) {
    double x = cb_rng_uniform(rng) * cdf[ni];
    uint32_t lo = 0, hi = ni - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid + 1] > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* What differs between the warm and the cold (attributes-only) ranker. */
typedef struct implicit_variant {
    const cb_feature_config *features;
    bool impute;        /* rewrite cold users' rows (cold_impute) before embedding them */
    double neg_alpha;   /* popularity-aware negatives (0: uniform) */
    bool linear_user;   /* user tower without hidden layers */
} implicit_variant;

/* has[u]: u has training ratings (users_with_ratings). */
static int implicit_train(implicit_model *im, const cb_evalrun_config *c, const cb_dataset *ds, const cb_split *sp,
                          const uint8_t *has, const implicit_variant *v, cb_error *err) {
    const cb_feature_config *fcfg = v->features;
    memset(im, 0, sizeof *im);
    const uint32_t nu = cb_dataset_n_users(ds), ni = cb_dataset_n_items(ds), neg = c->implicit_negatives;
    cb_features *f = NULL;
    float *X_u = NULL, *X_m = NULL;
    cb_rating *ex = NULL;
    uint32_t *idx = NULL;
    uint64_t *rated = NULL;
    size_t n_ex = sp->n_train * (1 + (size_t)neg), n_cold = 0;
    if (n_ex / (1 + (size_t)neg) != sp->n_train || n_ex > UINT32_MAX)
        return cb_fail(err, CB_EINVAL, "implicit model: %zu training ratings x %u negatives do not fit 32-bit example indices",
                       sp->n_train, neg);
    int rc = cb_features_fit(&f, ds, sp->train, sp->n_train, fcfg, err);
    if (rc) return rc;
    uint32_t du = cb_features_user_dim(f), dm = cb_features_item_dim(f);
    X_u = cb_calloc((size_t)nu * du + 1, sizeof *X_u, err);
    X_m = cb_calloc((size_t)ni * dm + 1, sizeof *X_m, err);
    ex = cb_malloc((n_ex + 1) * sizeof *ex, err);
    idx = cb_malloc((n_ex + 1) * sizeof *idx, err);
    /* (user, item) pairs rated in training, to draw negatives among the others */
    size_t bits = (size_t)nu * ni;
    rated = bits <= ((size_t)1 << 33) ? cb_calloc(bits / 64 + 1, sizeof *rated, err) : NULL;
    if (!X_u || !X_m || !ex || !idx || (bits <= ((size_t)1 << 33) && !rated)) rc = CB_ENOMEM;
    if (!rc) rc = cb_features_users(f, ds, sp->train, sp->n_train, X_u, err);
    if (!rc) rc = cb_features_items(f, ds, X_m, err);
    double *cdf = NULL; /* negatives: uniform (NULL) or by popularity */
    if (!rc && v->neg_alpha > 0) rc = negative_weights(&cdf, &im->log_q, ds, sp, ni, v->neg_alpha, err);
    if (!rc) {
        for (size_t j = 0; j < sp->n_train && rated; j++) {
            const cb_rating *r = &ds->ratings[sp->train[j]];
            size_t b = (size_t)r->user * ni + r->item;
            rated[b / 64] |= 1ull << (b % 64);
        }
        cb_rng rng;
        cb_rng_seed(&rng, c->model.seed ^ 0x1a9c1e5ULL);
        size_t n = 0;
        for (size_t j = 0; j < sp->n_train; j++) {
            const cb_rating *r = &ds->ratings[sp->train[j]];
            ex[n++] = (cb_rating){r->user, r->item, 1.0f, r->ts};
            for (uint32_t k = 0; k < neg; k++) {
                uint32_t item = 0;
                for (int tries = 0; tries < 20; tries++) { /* a dense user may leave few unrated items */
                    item = cdf ? cdf_draw(cdf, ni, &rng) : (uint32_t)cb_rng_below(&rng, ni);
                    size_t b = (size_t)r->user * ni + item;
                    if (!rated || !(rated[b / 64] >> (b % 64) & 1)) break;
                }
                ex[n++] = (cb_rating){r->user, item, 0.0f, 0};
            }
        }
        for (size_t j = 0; j < n_ex; j++) idx[j] = (uint32_t)j;
        cb_model_config mc = c->model;
        mc.user_in = du;
        mc.item_in = dm;
        mc.loss = CB_LOSS_BCE;
        mc.target_scale = 1.0f;
        mc.target_shift = 0.0f;
        mc.patience = 0;
        if (v->linear_user) mc.n_user_layers = 0;
        if (c->implicit_epochs) mc.epochs = c->implicit_epochs;
        const char *why = cb_model_config_check(&mc);
        if (why) rc = cb_fail(err, CB_EINVAL, "implicit model: %s", why);
        if (!rc) rc = cb_model_create(&im->model, &mc, err);
        cb_train_data td = {X_u, nu, X_m, ni, ex, idx, n_ex, NULL, 0};
        /* no progress callback: on_epoch reports (and the report plots) the rating model only */
        if (!rc) rc = cb_model_train(im->model, &td, NULL, NULL, NULL, err);
        if (rc == CB_ENUMERIC) rc = CB_OK; /* the last finite epoch is kept */
    }
    free(cdf);
    if (!rc && v->impute) rc = impute_cold_rows(X_u, f, has, nu, c->cold_neighbours, &n_cold, err);
    if (!rc) {
        im->n_users = nu, im->n_items = ni, im->dim = c->model.dim;
        im->user_vecs = cb_malloc((size_t)nu * im->dim * sizeof(float) + 1, err);
        im->item_vecs = cb_malloc((size_t)ni * im->dim * sizeof(float) + 1, err);
        if (!im->user_vecs || !im->item_vecs) rc = CB_ENOMEM;
        if (!rc) rc = cb_model_user_vectors(im->model, X_u, nu, im->user_vecs, err);
        if (!rc) rc = cb_model_item_vectors(im->model, X_m, ni, im->item_vecs, err);
    }
    if (rc) implicit_free(im);
    cb_features_free(f);
    free(X_u);
    free(X_m);
    free(ex);
    free(idx);
    free(rated);
    return rc;
}

/* The implicit ranker as measured: `warm` for users with training ratings
 * (and for cold users without implicit_cold_attrs), `cold` — trained with
 * the attribute columns as the only user features — for users without
 * training ratings when implicit_cold_attrs is set. Either model is trained only when a
 * test user needs it. */
typedef struct implicit_pair {
    implicit_model warm, cold;
    uint8_t *has;  /* has[u]: u has training ratings */
} implicit_pair;

static int implicit_pair_score(void *vctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    const implicit_pair *p = vctx;
    bool cold = p->cold.model && (!p->warm.model || (user < p->cold.n_users && !p->has[user]));
    return implicit_score(cold ? (void *)&p->cold : (void *)&p->warm, user, scores, n_items, err);
}

/* Whether the dataset has user attribute columns the attrs-only tower can use. */
static bool has_user_attrs(const cb_dataset *ds) {
    return ds->user_attr.n_cols > ds->user_lead_cols && ds->user_attr.n_rows == cb_dataset_n_users(ds);
}

static int implicit_fit(implicit_pair *p, const cb_evalrun_config *c, const cb_dataset *ds, const cb_split *sp,
                        cb_error *err) {
    memset(p, 0, sizeof *p);
    p->has = users_with_ratings(ds, sp->train, sp->n_train, err);
    if (!p->has) return CB_ENOMEM;
    bool cold_test = false, warm_test = false;
    for (size_t j = 0; j < sp->n_test; j++) {
        if (p->has[ds->ratings[sp->test[j]].user]) warm_test = true;
        else cold_test = true;
    }
    bool attrs = c->implicit_cold_attrs && cold_test && has_user_attrs(ds);
    int rc = CB_OK;
    if (!attrs || warm_test) {
        implicit_variant v = {&c->features, c->cold_impute, c->implicit_neg_alpha, false};
        rc = implicit_train(&p->warm, c, ds, sp, p->has, &v, err);
    }
    if (!rc && attrs) {
        cb_feature_config fc = c->features;
        fc.user_stats = fc.user_genres = false;
        fc.top_k_popular = 0;
        fc.user_attrs = true;
        implicit_variant v = {&fc, false, c->cold_neg_alpha, true};
        rc = implicit_train(&p->cold, c, ds, sp, p->has, &v, err);
    }
    return rc;
}

typedef struct pipe_ctx {
    const cb_recommender *rctx;
    const cb_bundle *rec;
    const float *user_vecs;
    const cb_recommend_config *cfg;
} pipe_ctx;

static int pipe_list(void *vctx, uint32_t user, uint32_t k, uint32_t *items, uint32_t *n_out, cb_error *err) {
    const pipe_ctx *p = vctx;
    cb_profile prof;
    cb_recommend_result res = {0};
    *n_out = 0;
    int rc = cb_recommend_profile_user(&prof, p->rec, user, err);
    if (rc) return rc;
    memcpy(prof.vec, p->user_vecs + (size_t)user * p->rec->dim, p->rec->dim * sizeof *prof.vec);
    rc = cb_recommend(p->rctx, &prof, p->cfg, NULL, &res, err);
    if (!rc)
        for (size_t j = 0; j < res.n && *n_out < k; j++) items[(*n_out)++] = res.items[j].item;
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&prof);
    return rc;
}

/* ---- training */

int cb_evalrun_train(cb_bundle **out, const cb_evalrun_config *c, const cb_dataset *ds, const cb_split *sp,
                     cb_train_result *res, cb_error *err) {
    *out = NULL;
    /* the same seeded carve as `cbrec train` */
    cb_split carve;
    int rc = cb_split_carve(&carve, ds, sp->train, sp->n_train, CB_SPLIT_RANDOM, c->valid_frac, c->model.seed, err);
    if (rc) return rc;
    cb_bundle_train_input in = {.ds = ds,
                             .train_idx = carve.train,
                             .n_train = carve.n_train,
                             .valid_idx = carve.n_test ? carve.test : NULL,
                             .n_valid = carve.n_test,
                             .features = &c->features,
                             .model = c->model,
                             .scale_targets = c->scale_targets,
                             .on_epoch = c->on_epoch,
                             .ctx = c->epoch_ctx};
    if (!carve.n_test && c->monitor_test && sp->n_test) {
        in.valid_idx = sp->test;
        in.n_valid = sp->n_test;
        in.model.patience = 0;
    }
    rc = cb_bundle_train(out, &in, res, err);
    if (rc == CB_ENUMERIC && *out) rc = CB_OK; /* the last finite epoch is kept: still a model */
    cb_split_free(&carve);
    return rc;
}

/* ---- one split, every model */

static int push_result(cb_eval_result **results, size_t *n, cb_evalrun_model m, int fold, const cb_split *sp,
                       cb_error *err) {
    cb_eval_result *grown = cb_realloc_array(*results, *n + 1, sizeof **results, err);
    if (!grown) return CB_ENOMEM;
    *results = grown;
    cb_eval_result_init(&grown[*n], cb_evalrun_model_name(m), fold);
    grown[*n].n_train = sp->n_train;
    grown[*n].n_test = sp->n_test;
    (*n)++;
    return CB_OK;
}

static int eval_twotower(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                         const cb_dataset *ds, const cb_split *sp, int fold, cb_bundle **out_rec,
                         cb_train_result *out_train, cb_error *err) {
    cb_bundle *rec = NULL;
    cb_train_result tr = {0};
    double t0 = cb_now();
    int rc = cb_evalrun_train(&rec, c, ds, sp, &tr, err);
    if (rc) return rc;
    float *cold_uv = NULL;
    if (c->cold_impute && (rc = cold_user_vecs(&cold_uv, rec, c, ds, sp, err))) {
        cb_bundle_free(rec);
        return rc;
    }
    double fit = cb_now() - t0;
    tt_ctx tc = {rec, cold_uv ? cold_uv : rec->user_vecs, ds->y_min, ds->y_max};
    if (c->models & (1u << CB_EVALRUN_TWOTOWER)) {
        if ((rc = push_result(results, n_results, CB_EVALRUN_TWOTOWER, fold, sp, err))) goto out;
        cb_eval_result *r = &(*results)[*n_results - 1];
        r->fit_seconds = fit;
        t0 = cb_now();
        if (!ds->binary && (rc = cb_eval_rating(&r->rating, ds, sp->test, sp->n_test, tt_predict, &tc, err)))
            goto out;
        if (c->topn_enabled) {
            if ((rc = cb_eval_topn(&r->topn, &c->topn, ds, sp, tt_score, &tc, err))) goto out;
            r->has_topn = true;
        }
        r->eval_seconds = cb_now() - t0;
    }
    if ((c->models & (1u << CB_EVALRUN_PIPELINE)) && c->topn_enabled) {
        if ((rc = push_result(results, n_results, CB_EVALRUN_PIPELINE, fold, sp, err))) goto out;
        cb_eval_result *r = &(*results)[*n_results - 1];
        r->fit_seconds = fit;
        cb_recommender *rctx = NULL;
        cb_recommend_config rc_cfg = c->recommend;
        rc_cfg.n = c->topn.k > c->topn.recall_k ? c->topn.k : c->topn.recall_k;
        t0 = cb_now();
        if ((rc = cb_recommender_wrap(&rctx, rec, err))) goto out;
        pipe_ctx pc = {rctx, rec, tc.user_vecs, &rc_cfg};
        rc = cb_eval_topn_lists(&r->topn, &c->topn, ds, sp, pipe_list, &pc, err);
        cb_recommender_free(rctx);
        if (rc) goto out;
        /* the pipeline ranks by the same model: its rating error is the model's */
        if (!ds->binary && (rc = cb_eval_rating(&r->rating, ds, sp->test, sp->n_test, tt_predict, &tc, err)))
            goto out;
        r->has_topn = true;
        r->eval_seconds = cb_now() - t0;
    }
out:
    if (!rc && out_rec) {
        *out_rec = rec;
        rec = NULL;
    }
    if (!rc && out_train) *out_train = tr;
    cb_bundle_free(rec);
    free(cold_uv);
    return rc;
}

/* ---- EASE and item-kNN: settings chosen on a per-user carve of the training part */

static int eval_itemrec(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                        const cb_dataset *ds, const cb_split *sp, int fold, cb_error *err) {
    static const double lambdas[] = {50, 100, 200, 500, 1000, 2000};
    static const uint32_t ks[] = {25, 50, 100, 200, 400, 800};
    static const double shrinks[] = {0, 20};
    cb_itemrec_config grid[16];
    cb_split carve = {0};
    int rc = CB_OK;
    for (int kind = CB_ITEMREC_EASE; kind <= CB_ITEMREC_ITEM_KNN && !rc; kind++) {
        cb_evalrun_model m = kind == CB_ITEMREC_EASE ? CB_EVALRUN_EASE : CB_EVALRUN_ITEM_KNN;
        if (!(c->models & (1u << m))) continue;
        size_t n_grid = 0;
        if (kind == CB_ITEMREC_EASE)
            for (size_t i = 0; i < sizeof lambdas / sizeof *lambdas; i++) {
                cb_itemrec_config_default(&grid[n_grid], CB_ITEMREC_EASE);
                grid[n_grid++].lambda = lambdas[i];
            }
        else
            for (size_t j = 0; j < sizeof shrinks / sizeof *shrinks; j++) /* one fit per shrink (see tune) */
                for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
                    cb_itemrec_config_default(&grid[n_grid], CB_ITEMREC_ITEM_KNN);
                    grid[n_grid].knn_k = ks[i];
                    grid[n_grid++].shrink = shrinks[j];
                }
        if ((rc = push_result(results, n_results, m, fold, sp, err))) break;
        cb_eval_result *r = &(*results)[*n_results - 1];
        double t0 = cb_now(), best_ndcg = 0;
        if (!carve.train)
            rc = cb_split_carve(&carve, ds, sp->train, sp->n_train, CB_SPLIT_PER_USER, c->tune_frac, c->model.seed, err);
        cb_itemrec_config best = grid[0];
        if (!rc && n_grid > 1 && carve.n_test)
            rc = cb_itemrec_tune(&best, &best_ndcg, NULL, grid, n_grid, ds, &carve, &c->topn, err);
        double tune = cb_now() - t0;
        cb_itemrec *model = NULL;
        t0 = cb_now();
        if (!rc) rc = cb_itemrec_fit(&model, &best, ds, sp->train, sp->n_train, err);
        r->fit_seconds = cb_now() - t0; /* the final fit; tuning time is in `settings` */
        t0 = cb_now();
        if (!rc) rc = cb_eval_topn(&r->topn, &c->topn, ds, sp, cb_itemrec_score_cb, model, err);
        r->has_topn = rc == CB_OK;
        r->eval_seconds = cb_now() - t0;
        char what[48];
        cb_itemrec_config_describe(&best, what, sizeof what);
        snprintf(r->settings, sizeof r->settings, "%s (validation NDCG@%u %.4f, tuning %.1fs)", what, c->topn.k,
                 best_ndcg, tune);
        cb_itemrec_free(model);
    }
    cb_split_free(&carve);
    return rc;
}

/* ---- "cbrec": the product's train + recommend, defaults and code path (see evalrun.h) */

typedef struct cbrec_ctx {
    const cb_recommender *rec;
    const cb_config *opts;  /* RECOMMEND: the defaults with n = max(K, recall K) */
} cbrec_ctx;

static int cbrec_list(void *vctx, uint32_t user, uint32_t k, uint32_t *items, uint32_t *n_out, cb_error *err) {
    const cbrec_ctx *x = vctx;
    cb_list *l = NULL;
    *n_out = 0;
    int rc = cb_recommender_recommend(x->rec, cb_recommender_user_id(x->rec, user), NULL, x->opts, &l, err);
    for (size_t j = 0; !rc && j < cb_list_size(l) && *n_out < k; j++) items[(*n_out)++] = (uint32_t)cb_list_item(l, j);
    cb_list_free(l);
    return rc;
}

static int eval_cbrec(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c, const cb_dataset *ds,
                      const cb_split *sp, int fold, cb_error *err) {
    int rc = push_result(results, n_results, CB_EVALRUN_CBREC, fold, sp, err);
    if (rc) return rc;
    cb_eval_result *r = &(*results)[*n_results - 1];
    double t0 = cb_now();
    cb_bundle *b = NULL;
    cb_recommender *rec = NULL;
    cb_config *opts = NULL;
    cb_train_outcome o;
    rc = cb_train_on_split(&b, NULL, ds, &c->train, sp, false, NULL, NULL, &o, err);
    if (rc == CB_ENUMERIC && b && b->item_vecs) rc = CB_OK; /* as cb_train: the last good parameters */
    if (!rc) rc = cb_recommender_from_bundle(&rec, b, err);
    else cb_bundle_free(b);
    b = rec ? cb_recommender_bundle(rec) : NULL;
    r->fit_seconds = cb_now() - t0;
    t0 = cb_now();
    char n[16];
    snprintf(n, sizeof n, "%u", c->topn.k > c->topn.recall_k ? c->topn.k : c->topn.recall_k);
    if (!rc && !(rc = cb_config_create_from_table(&opts, &cb_recommend_config_table, err)))
        rc = cb_config_set(opts, "n", n, err);
    cbrec_ctx x = {rec, opts};
    if (!rc && c->topn_enabled) {
        rc = cb_eval_topn_lists(&r->topn, &c->topn, ds, sp, cbrec_list, &x, err);
        r->has_topn = rc == CB_OK;
    }
    /* a rating where the model predicts one (the MSE head on a rating scale) */
    tt_ctx tc = {b, b ? b->user_vecs : NULL, ds->y_min, ds->y_max};
    if (!rc && !ds->binary && cb_model_config_of(b->model)->loss == CB_LOSS_MSE)
        rc = cb_eval_rating(&r->rating, ds, sp->test, sp->n_test, tt_predict, &tc, err);
    r->eval_seconds = cb_now() - t0;
    cb_config_free(opts);
    cb_recommender_free(rec);
    return rc;
}

int cb_evalrun_split(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                     const cb_dataset *ds, const cb_split *sp, int fold, cb_bundle **out_rec,
                     cb_train_result *out_train, cb_error *err) {
    if (out_rec) *out_rec = NULL;
    if (!sp->n_train || !sp->n_test) return cb_fail(err, CB_EINVAL, "the split has an empty training or test part");
    int rc = CB_OK;
    if (c->models & ((1u << CB_EVALRUN_TWOTOWER) | (1u << CB_EVALRUN_PIPELINE)))
        if ((rc = eval_twotower(results, n_results, c, ds, sp, fold, out_rec, out_train, err))) return rc;
    if ((c->models & (1u << CB_EVALRUN_IMPLICIT)) && c->topn_enabled) {
        if ((rc = push_result(results, n_results, CB_EVALRUN_IMPLICIT, fold, sp, err))) return rc;
        cb_eval_result *r = &(*results)[*n_results - 1];
        double t0 = cb_now();
        implicit_pair ip = {0};
        rc = implicit_fit(&ip, c, ds, sp, err);
        r->fit_seconds = cb_now() - t0;
        t0 = cb_now();
        if (!rc) rc = cb_eval_topn(&r->topn, &c->topn, ds, sp, implicit_pair_score, &ip, err);
        r->has_topn = rc == CB_OK;
        r->eval_seconds = cb_now() - t0;
        implicit_free(&ip.warm);
        implicit_free(&ip.cold);
        free(ip.has);
        if (rc) return rc;
    }
    static const struct {
        cb_evalrun_model m;
        cb_baseline_kind kind;
    } base[] = {{CB_EVALRUN_GLOBAL, CB_BASELINE_GLOBAL_MEAN},
                {CB_EVALRUN_BIAS, CB_BASELINE_BIAS},
                {CB_EVALRUN_POPULARITY, CB_BASELINE_POPULARITY},
                {CB_EVALRUN_SVD, CB_BASELINE_SVD}};
    for (size_t b = 0; b < sizeof base / sizeof base[0]; b++) {
        if (!(c->models & (1u << base[b].m))) continue;
        cb_baseline_config bc;
        cb_baseline_config_default(&bc, base[b].kind);
        bc.seed = c->model.seed;
        cb_baseline *bl = NULL;
        if ((rc = push_result(results, n_results, base[b].m, fold, sp, err))) return rc;
        cb_eval_result *r = &(*results)[*n_results - 1];
        double t0 = cb_now();
        if ((rc = cb_baseline_fit(&bl, &bc, ds, sp->train, sp->n_train, err))) return rc;
        r->fit_seconds = cb_now() - t0;
        t0 = cb_now();
        if (!ds->binary)
            rc = cb_eval_rating(&r->rating, ds, sp->test, sp->n_test, cb_baseline_predict_cb, bl, err);
        /* the global mean ranks every item equally: its top-N is meaningless */
        if (!rc && c->topn_enabled && base[b].m != CB_EVALRUN_GLOBAL) {
            rc = cb_eval_topn(&r->topn, &c->topn, ds, sp, cb_baseline_score_cb, bl, err);
            r->has_topn = rc == CB_OK;
        }
        r->eval_seconds = cb_now() - t0;
        cb_baseline_free(bl);
        if (rc) return rc;
    }
    if (c->topn_enabled && (c->models & ((1u << CB_EVALRUN_EASE) | (1u << CB_EVALRUN_ITEM_KNN))))
        rc = eval_itemrec(results, n_results, c, ds, sp, fold, err);
    if (!rc && (c->models & (1u << CB_EVALRUN_CBREC))) rc = eval_cbrec(results, n_results, c, ds, sp, fold, err);
    return rc;
}

/* ---- the retrieval-size experiment */

void cb_evalrun_retrieval_config(cb_recommend_config *rc, uint32_t size, uint32_t n, uint32_t n_items) {
    cb_recommend_config_default(rc);
    rc->n = n;
    rc->diversity = CB_DIV_NONE;
    if (size == 0) {
        rc->recent_items = 0;
        rc->top_genres = 0;
        rc->group_items = 0;
        rc->embedding_items = n_items;
        return;
    }
    double r = size;
    rc->recent_items = 10;
    rc->similar_per_item = (uint32_t)ceil(r * 0.6 / 10.0);
    rc->anchors_all = false;
    rc->top_genres = 3;
    uint32_t pg = (uint32_t)ceil(r * 0.2 / 3.0);
    rc->per_genre = pg < 1 ? 1 : pg > CB_BUNDLE_TOP_LIST ? CB_BUNDLE_TOP_LIST : pg;
    uint32_t gi = (uint32_t)ceil(r * 0.2);
    rc->group_items = gi > CB_BUNDLE_TOP_LIST ? CB_BUNDLE_TOP_LIST : gi;
    rc->embedding_items = 0;
}

typedef struct test_csr {
    uint32_t *off;   /* [n_users + 1] */
    uint32_t *item;  /* relevant held-out items */
} test_csr;

static int relevant_by_user(test_csr *t, const cb_dataset *ds, const cb_split *sp, float threshold, cb_error *err) {
    uint32_t nu = cb_dataset_n_users(ds);
    t->off = cb_calloc((size_t)nu + 1, sizeof *t->off, err);
    t->item = cb_malloc((sp->n_test + 1) * sizeof *t->item, err);
    if (!t->off || !t->item) return CB_ENOMEM;
    for (size_t j = 0; j < sp->n_test; j++) {
        const cb_rating *rt = &ds->ratings[sp->test[j]];
        if (rt->user >= nu) return cb_fail(err, CB_EINVAL, "test rating %zu: user out of range", j);
        if (rt->y >= threshold) t->off[rt->user + 1]++;
    }
    for (uint32_t u = 0; u < nu; u++) t->off[u + 1] += t->off[u];
    uint32_t *fill = cb_malloc(((size_t)nu + 1) * sizeof *fill, err);
    if (!fill) return CB_ENOMEM;
    memcpy(fill, t->off, ((size_t)nu + 1) * sizeof *fill);
    for (size_t j = 0; j < sp->n_test; j++) {
        const cb_rating *rt = &ds->ratings[sp->test[j]];
        if (rt->y >= threshold) t->item[fill[rt->user]++] = rt->item;
    }
    free(fill);
    return CB_OK;
}

static bool contains(const uint32_t *a, uint32_t n, uint32_t x) {
    for (uint32_t i = 0; i < n; i++)
        if (a[i] == x) return true;
    return false;
}

int cb_evalrun_retrieval(cb_retrieval_row *rows, const uint32_t *sizes, size_t n_sizes, const cb_bundle *rec,
                         const cb_dataset *ds, const cb_split *sp, const cb_topn_config *topn, size_t max_users,
                         cb_error *err) {
    const uint32_t N = topn->k;
    if (!N || !n_sizes) return cb_fail(err, CB_EINVAL, "retrieval experiment: empty list of sizes or K = 0");
    if (cb_dataset_n_users(ds) != rec->n_users || cb_dataset_n_items(ds) != rec->n_items)
        return cb_fail(err, CB_EINVAL, "retrieval experiment: the model has %u users / %u items, the data %u / %u",
                       rec->n_users, rec->n_items, cb_dataset_n_users(ds), cb_dataset_n_items(ds));
    test_csr rel = {0};
    cb_recommender *rctx = NULL;
    uint32_t *users = NULL, *full = NULL, *full_n = NULL;
    size_t n_users = 0;
    int rc = relevant_by_user(&rel, ds, sp, topn->threshold, err);
    if (rc) goto out;
    users = cb_malloc(((size_t)rec->n_users + 1) * sizeof *users, err);
    if (!users) {
        rc = CB_ENOMEM;
        goto out;
    }
    for (uint32_t u = 0; u < rec->n_users && (!max_users || n_users < max_users); u++)
        if (rel.off[u + 1] > rel.off[u]) users[n_users++] = u;
    if (!n_users) {
        rc = cb_fail(err, CB_EINVAL, "retrieval experiment: no test user has a relevant held-out item");
        goto out;
    }
    uint32_t max_similar = 1;
    for (size_t s = 0; s < n_sizes; s++) {
        cb_recommend_config rc_cfg;
        cb_evalrun_retrieval_config(&rc_cfg, sizes[s], N, rec->n_items);
        if (rc_cfg.recent_items && rc_cfg.similar_per_item > max_similar) max_similar = rc_cfg.similar_per_item;
    }
    if ((rc = cb_recommender_wrap(&rctx, rec, err)) || (rc = cb_recommender_build_table(rctx, max_similar, 1, err)))
        goto out;
    full = cb_calloc(n_users * N + 1, sizeof *full, err);
    full_n = cb_calloc(n_users + 1, sizeof *full_n, err);
    if (!full || !full_n) {
        rc = CB_ENOMEM;
        goto out;
    }
    /* pass 0 computes the full-catalog lists the other sizes are compared with */
    for (size_t s = 0; s <= n_sizes && !rc; s++) {
        uint32_t size = s == 0 ? 0 : sizes[s - 1];
        cb_recommend_config rc_cfg;
        cb_evalrun_retrieval_config(&rc_cfg, size, N, rec->n_items);
        cb_retrieval_row row = {.size = size};
        double cand = 0, recall = 0, ndcg = 0, score = 0, overlap = 0, seconds = 0;
        size_t slots = 0;
        for (size_t k = 0; k < n_users && !rc; k++) {
            uint32_t u = users[k];
            cb_profile prof;
            cb_recommend_result res = {0};
            double t0 = cb_now();
            rc = cb_recommend_profile_user(&prof, rec, u, err);
            if (rc) break;
            rc = cb_recommend(rctx, &prof, &rc_cfg, NULL, &res, err);
            seconds += cb_now() - t0;
            cb_recommend_profile_free(&prof);
            if (rc) break;
            const uint32_t *ri = rel.item + rel.off[u];
            uint32_t n_rel = rel.off[u + 1] - rel.off[u], hits = 0;
            double dcg = 0, idcg = 0;
            uint32_t list[1024], n_list = 0;
            for (size_t j = 0; j < res.n && j < N; j++) {
                uint32_t it = res.items[j].item;
                if (n_list < 1024) list[n_list++] = it;
                score += res.items[j].score;
                slots++;
                if (contains(ri, n_rel, it) && !contains(list, n_list - 1, it)) {
                    hits++;
                    dcg += 1.0 / log2((double)j + 2.0);
                }
            }
            for (uint32_t j = 0; j < N && j < n_rel; j++) idcg += 1.0 / log2((double)j + 2.0);
            recall += (double)hits / n_rel;
            ndcg += dcg / idcg;
            cand += (double)res.n_candidates;
            if (s == 0) {
                full_n[k] = n_list < N ? n_list : N;
                memcpy(full + k * N, list, full_n[k] * sizeof *list);
            }
            uint32_t common = 0;
            for (uint32_t j = 0; j < n_list && j < N; j++) common += contains(full + k * N, full_n[k], list[j]);
            overlap += (double)common / N;
            cb_recommend_result_free(&res);
        }
        if (rc) break;
        row.n_users = n_users;
        row.mean_candidates = cand / (double)n_users;
        row.recall = recall / (double)n_users;
        row.ndcg = ndcg / (double)n_users;
        row.mean_score = slots ? score / (double)slots : NAN;
        row.overlap = overlap / (double)n_users;
        row.latency_us = 1e6 * seconds / (double)n_users;
        if (s == 0) {
            /* report the full catalog where the caller listed it */
            for (size_t t = 0; t < n_sizes; t++)
                if (sizes[t] == 0) rows[t] = row;
        } else if (size != 0) {
            rows[s - 1] = row;
        }
    }
out:
    cb_recommender_free(rctx);
    free(rel.off);
    free(rel.item);
    free(users);
    free(full);
    free(full_n);
    return rc;
}
