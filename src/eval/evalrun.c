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
    "ease", "item-knn", "cbrec", "content-knn", "cbrec-towers", "random"};

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
                 {"cbrec", CB_EVALRUN_CBREC}, {"content-knn", CB_EVALRUN_CONTENT_KNN},
                 {"content", CB_EVALRUN_CONTENT_KNN}, {"cbrec-towers", CB_EVALRUN_CBREC_TOWERS},
                 {"random", CB_EVALRUN_RANDOM}};
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
                           "ease, item-knn, cbrec, cbrec-towers, content-knn, random)",
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
    c->implicit_epochs = 0;
    c->cold_impute = true;
    c->cold_neighbours = 200;
    c->tune_frac = 0.2;
    /* The pipeline row retrieves from the cheap sources only: with the
     * embedding source on (cbrec recommend's default), its top 50 by v_u.v_m
     * already holds the full-catalog top K, and the lists equal the
     * two-tower row exactly (measured). */
    cb_recommend_config_default(&c->recommend);
    c->recommend.embedding_items = 0;
}

/* ---- cold users */

/* Users of ds with at least one rating in train[]: has[u] = 1. */
static uint8_t *users_with_ratings(const cb_dataset *ds, const uint32_t *train, size_t n_train, cb_error *err) {
    uint32_t nu = cb_dataset_n_users(ds);
    uint8_t *has = cb_calloc((size_t)nu + 1, 1, err);
    if (has)
        for (size_t j = 0; j < n_train; j++) has[ds->ratings[train[j]].user] = 1;
    return has;
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
    cb_bundle_rank_scores(r, t->user_vecs + (size_t)user * r->dim, scores);
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
    if (!rc) rc = cb_features_impute_cold(rec->features, X_u, has, rec->n_users, c->cold_neighbours, &n_cold, err);
    if (!rc && n_cold) { /* only the cold rows go through the tower: warm users keep the recommender's vectors */
        size_t du = cb_features_user_dim(rec->features), dim = rec->dim, row = 0;
        for (uint32_t u = 0; u < rec->n_users; u++) /* the cold rows to the front of X_u, in order */
            if (!has[u]) memmove(X_u + row++ * du, X_u + (size_t)u * du, du * sizeof *X_u);
        uv = cb_malloc((size_t)rec->n_users * dim * sizeof *uv, err);
        float *cold_vecs = uv ? cb_malloc(n_cold * dim * sizeof *cold_vecs, err) : NULL;
        if (!cold_vecs) rc = CB_ENOMEM;
        else rc = cb_model_user_vectors(rec->model, X_u, n_cold, cold_vecs, err);
        if (!rc) {
            memcpy(uv, rec->user_vecs, (size_t)rec->n_users * dim * sizeof *uv);
            row = 0;
            for (uint32_t u = 0; u < rec->n_users; u++)
                if (!has[u]) memcpy(uv + (size_t)u * dim, cold_vecs + row++ * dim, dim * sizeof *uv);
        }
        free(cold_vecs);
    }
    if (rc) free(uv);
    else *out = uv;
    free(has);
    free(X_u);
    free(X_m);
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

/* The cold-items protocol asks for lists of new items only: the items
 * without training interactions, as the value of the "allow" option (one CSV
 * record: an id holding a comma, a quote, a line break or outer blanks in
 * quotes; joined plainly, "a,b #1" was two unknown ids). Caller frees *out. */
static int new_items_allow(char **out, const cb_dataset *ds, const cb_split *sp, cb_error *err) {
    uint32_t ni = cb_dataset_n_items(ds);
    uint8_t *warm = cb_calloc((size_t)ni + 1, 1, err);
    if (!warm) return CB_ENOMEM;
    for (size_t j = 0; j < sp->n_train; j++) warm[ds->ratings[sp->train[j]].item] = 1;
    size_t len = 1;
    for (uint32_t i = 0; i < ni; i++) len += warm[i] ? 0 : 2 * strlen(cb_vocab_name(ds->items, i)) + 3;
    char *list = cb_malloc(len, err), *end = list;
    for (uint32_t i = 0; list && i < ni; i++) {
        if (warm[i]) continue;
        if (end != list) *end++ = ',';
        end += cb_id_list_field(end, cb_vocab_name(ds->items, i));
    }
    if (list) *end = 0;
    free(warm);
    *out = list;
    return list ? CB_OK : CB_ENOMEM;
}

/* ---- training */

/* cb_evalrun_train with the model configuration mc instead of c->model. */
static int train_with(cb_bundle **out, const cb_evalrun_config *c, const cb_model_config *mc, const cb_dataset *ds,
                      const cb_split *sp, cb_train_result *res, cb_error *err) {
    *out = NULL;
    /* the same seeded carve as `cbrec train` */
    cb_split carve;
    int rc = cb_split_carve(&carve, ds, sp->train, sp->n_train, cb_train_carve_kind(c->train.split, CB_SPLIT_RANDOM),
                            c->valid_frac, c->model.seed, err);
    if (rc) return rc;
    cb_bundle_train_input in = {.ds = ds,
                             .train_idx = carve.train,
                             .n_train = carve.n_train,
                             .valid_idx = carve.n_test ? carve.test : NULL,
                             .n_valid = carve.n_test,
                             .features = &c->features,
                             .model = *mc,
                             .scale_targets = c->scale_targets,
                             .on_epoch = c->on_epoch,
                             .ctx = c->epoch_ctx};
    cb_bundle_objective_for_data(&in.model, ds);
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

int cb_evalrun_train(cb_bundle **out, const cb_evalrun_config *c, const cb_dataset *ds, const cb_split *sp,
                     cb_train_result *res, cb_error *err) {
    return train_with(out, c, &c->model, ds, sp, res, err);
}

/* ---- one split, every model */

/* Where row `model`'s users start in a per-model table of n_users each
 * (c->user_ndcg, c->vs_sum): its model's index times n_users. */
static size_t user_row(const char *model, uint32_t n_users) {
    int m = 0;
    while (m < CB_EVALRUN_N_MODELS - 1 && strcmp(model, model_names[m])) m++;
    return (size_t)m * n_users;
}

/* c's top-N settings for row r, keeping its users' NDCG@K where
 * cb_evalrun_split asks (c->user_ndcg: one row of n_users per model). */
static const cb_topn_config *topn_for(cb_topn_config *tn, const cb_evalrun_config *c, const cb_dataset *ds,
                                      const cb_eval_result *r) {
    *tn = c->topn;
    tn->user_ndcg = c->user_ndcg ? c->user_ndcg + user_row(r->model, cb_dataset_n_users(ds)) : NULL;
    return tn;
}

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

/* Train the towers of configuration mc and measure rows `rows` (a mask of
 * TWOTOWER, PIPELINE, IMPLICIT: the full-catalog ranking rows and the
 * pipeline row) with the same bundle. */
static int eval_towers(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                       const cb_model_config *mc, unsigned rows, const cb_dataset *ds, const cb_split *sp, int fold,
                       cb_bundle **out_rec, cb_train_result *out_train, cb_error *err) {
    cb_bundle *rec = NULL;
    cb_train_result tr = {0};
    cb_topn_config tn;
    double t0 = cb_now();
    int rc = train_with(&rec, c, mc, ds, sp, &tr, err);
    if (rc) return rc;
    float *cold_uv = NULL;
    if (c->cold_impute && (rc = cold_user_vecs(&cold_uv, rec, c, ds, sp, err))) {
        cb_bundle_free(rec);
        return rc;
    }
    double fit = cb_now() - t0;
    tt_ctx tc = {rec, cold_uv ? cold_uv : rec->user_vecs, ds->y_min, ds->y_max};
    bool rating = !ds->binary && cb_bundle_has_rating(rec);
    for (int row = 0; row < CB_EVALRUN_N_MODELS; row++) {
        if (row == CB_EVALRUN_PIPELINE || !(rows & (1u << row))) continue;
        if ((rc = push_result(results, n_results, (cb_evalrun_model)row, fold, sp, err))) goto out;
        cb_eval_result *r = &(*results)[*n_results - 1];
        r->fit_seconds = fit;
        t0 = cb_now();
        if (rating && (rc = cb_eval_rating(&r->rating, ds, sp->test, sp->n_test, tt_predict, &tc, err)))
            goto out;
        if (c->topn_enabled) {
            if ((rc = cb_eval_topn(&r->topn, topn_for(&tn, c, ds, r), ds, sp, tt_score, &tc, err))) goto out;
            r->has_topn = true;
        }
        r->eval_seconds = cb_now() - t0;
    }
    if ((rows & (1u << CB_EVALRUN_PIPELINE)) && c->topn_enabled) {
        if ((rc = push_result(results, n_results, CB_EVALRUN_PIPELINE, fold, sp, err))) goto out;
        cb_eval_result *r = &(*results)[*n_results - 1];
        r->fit_seconds = fit;
        cb_recommender *rctx = NULL;
        cb_recommend_config rc_cfg = c->recommend;
        rc_cfg.n = c->topn.k > c->topn.recall_k ? c->topn.k : c->topn.recall_k;
        t0 = cb_now();
        char *allow = NULL; /* cold items: its lists too rank the new items only (they named warm ones) */
        if (c->topn.new_items_only && (rc = new_items_allow(&allow, ds, sp, err))) goto out;
        if (allow) rc_cfg.allow = allow;
        if ((rc = cb_recommender_wrap(&rctx, rec, err))) {
            free(allow);
            goto out;
        }
        pipe_ctx pc = {rctx, rec, tc.user_vecs, &rc_cfg};
        rc = cb_eval_topn_lists(&r->topn, topn_for(&tn, c, ds, r), ds, sp, pipe_list, &pc, err);
        cb_recommender_free(rctx);
        free(allow);
        if (rc) goto out;
        /* the pipeline ranks by the same model: its rating error is the model's */
        if (rating && (rc = cb_eval_rating(&r->rating, ds, sp->test, sp->n_test, tt_predict, &tc, err)))
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

/* ---- EASE and item-kNN: settings chosen on a per-user carve of the training part (cb_train_carve_kind) */

static int eval_itemrec(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                        const cb_dataset *ds, const cb_split *sp, int fold, cb_error *err) {
    static const double lambdas[] = {50, 100, 200, 500, 1000, 2000};
    static const uint32_t ks[] = {25, 50, 100, 200, 400, 800};
    static const double shrinks[] = {0, 20};
    cb_topn_config tn;
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
        double t0 = cb_now(), best_ndcg = NAN;
        if (!carve.train)
            rc = cb_split_carve(&carve, ds, sp->train, sp->n_train,
                                cb_train_carve_kind(c->train.split, CB_SPLIT_PER_USER), c->tune_frac, c->model.seed, err);
        cb_itemrec_config best = grid[0];
        bool cold = c->topn.new_items_only; /* new items have no interactions to be scored by: nothing to tune */
        if (!rc && n_grid > 1 && carve.n_test && !cold)
            rc = cb_itemrec_tune(&best, &best_ndcg, NULL, grid, n_grid, ds, &carve, &c->topn, err);
        double tune = cb_now() - t0;
        cb_itemrec *model = NULL;
        t0 = cb_now();
        if (!rc) rc = cb_itemrec_fit(&model, &best, ds, sp->train, sp->n_train, err);
        r->fit_seconds = cb_now() - t0; /* the final fit; tuning time is in `settings` */
        t0 = cb_now();
        if (!rc) rc = cb_eval_topn(&r->topn, topn_for(&tn, c, ds, r), ds, sp, cb_itemrec_score_cb, model, err);
        r->has_topn = rc == CB_OK;
        r->eval_seconds = cb_now() - t0;
        char what[48], why[128];
        cb_itemrec_config_describe(&best, what, sizeof what);
        if (cold)
            snprintf(why, sizeof why, "not tuned: new items have no interactions to score them by;");
        else if (isnan(best_ndcg)) /* a 0 here read as "every setting missed" */
            snprintf(why, sizeof why, "the grid's first; the validation carve measured no setting: no relevant item "
                     "there, or no ranking;");
        else snprintf(why, sizeof why, "validation NDCG@%u %.4f,", c->topn.k, best_ndcg);
        snprintf(r->settings, sizeof r->settings, "%s (%s tuning %.1fs)", what, why, tune);
        cb_itemrec_free(model);
    }
    cb_split_free(&carve);
    return rc;
}

/* ---- rank-only rows scored per user by a callback: content-kNN, random */

/* A row of model m's top-N metrics from score(ctx), its fit time given. */
static int score_row(cb_eval_result **results, size_t *n_results, cb_evalrun_model m, const cb_evalrun_config *c,
                     const cb_dataset *ds, const cb_split *sp, int fold, double fit_seconds, cb_score_fn score,
                     void *ctx, cb_error *err) {
    cb_topn_config tn;
    int rc = push_result(results, n_results, m, fold, sp, err);
    if (rc) return rc;
    cb_eval_result *r = &(*results)[*n_results - 1];
    r->fit_seconds = fit_seconds;
    double t0 = cb_now();
    rc = cb_eval_topn(&r->topn, topn_for(&tn, c, ds, r), ds, sp, score, ctx, err);
    r->has_topn = rc == CB_OK;
    r->eval_seconds = cb_now() - t0;
    return rc;
}

/* content-kNN: the content-only baseline (itemrec.h) */
static int eval_content_knn(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                            const cb_dataset *ds, const cb_split *sp, int fold, cb_error *err) {
    cb_contentknn *m = NULL;
    double t0 = cb_now();
    int rc = cb_contentknn_fit(&m, ds, sp->train, sp->n_train, &c->features, err);
    if (!rc)
        rc = score_row(results, n_results, CB_EVALRUN_CONTENT_KNN, c, ds, sp, fold, cb_now() - t0,
                       cb_contentknn_score_cb, m, err);
    cb_contentknn_free(m);
    return rc;
}

/* random: the floor every list must be well above. Item i's score for user
 * u is a hash of (seed, u, i) in [0, 1), so a user's order is the same
 * whatever else is asked. */
static int random_score_cb(void *vctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    (void)err;
    const uint64_t *seed = vctx;
    for (uint32_t i = 0; i < n_items; i++) {
        uint64_t key[2] = {*seed, ((uint64_t)user << 32) | i};
        scores[i] = (float)((double)(cb_hash64(key, sizeof key, 0) >> 11) * 0x1.0p-53);
    }
    return CB_OK;
}

static int eval_random(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                       const cb_dataset *ds, const cb_split *sp, int fold, cb_error *err) {
    uint64_t seed = c->model.seed ^ (uint64_t)fold;
    return score_row(results, n_results, CB_EVALRUN_RANDOM, c, ds, sp, fold, 0, random_score_cb, &seed, err);
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
    cb_topn_config tn;
    int rc = push_result(results, n_results, CB_EVALRUN_CBREC, fold, sp, err);
    if (rc) return rc;
    cb_eval_result *r = &(*results)[*n_results - 1];
    double t0 = cb_now();
    cb_bundle *b = NULL;
    cb_recommender *rec = NULL;
    cb_config *opts = NULL;
    cb_train_outcome o;
    /* the progress callback sees these epochs too: it is how a binding's Ctrl-C stops them */
    rc = cb_train_on_split(&b, NULL, ds, &c->train, sp, false, c->on_epoch, c->epoch_ctx, &o, err);
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
    char *allow = NULL;
    if (!rc && c->topn.new_items_only && !(rc = new_items_allow(&allow, ds, sp, err)))
        rc = cb_config_set(opts, "allow", allow, err);
    free(allow);
    cbrec_ctx x = {rec, opts};
    if (!rc && c->topn_enabled) {
        rc = cb_eval_topn_lists(&r->topn, topn_for(&tn, c, ds, r), ds, sp, cbrec_list, &x, err);
        r->has_topn = rc == CB_OK;
    }
    /* a rating where the model predicts one (the MSE head on a rating scale) */
    tt_ctx tc = {b, b ? b->user_vecs : NULL, ds->y_min, ds->y_max};
    if (!rc && !ds->binary && cb_model_config_of(b->model)->loss == CB_LOSS_MSE)
        rc = cb_eval_rating(&r->rating, ds, sp->test, sp->n_test, tt_predict, &tc, err);
    r->eval_seconds = cb_now() - t0;
    const cb_neighbours *nb = b ? b->neighbours : NULL;
    if (nb)
        snprintf(r->settings, sizeof r->settings, "neighbours: %s %s %g, k %u, weight %g%s (chosen on the carve)",
                 cb_neighbours_kind_name(nb->kind), nb->kind == CB_NEIGHBOURS_EASE ? "lambda" : "shrink",
                 (double)(nb->kind == CB_NEIGHBOURS_EASE ? nb->lambda : nb->shrink), nb->k, (double)nb->weight,
                 nb->raw ? " (raw)" : "");
    else if (!rc && c->topn_enabled && (c->models & (1u << CB_EVALRUN_CBREC_TOWERS))) /* its row would be this one */
        snprintf(r->settings, sizeof r->settings, "no neighbour component (--neighbours 0, or none fitted): it ranks "
                 "by its towers alone, so there is no cbrec-towers row");
    /* the same model ranking by its towers alone: what the neighbour component adds */
    if (!rc && nb && c->topn_enabled && (c->models & (1u << CB_EVALRUN_CBREC_TOWERS)) &&
        !(rc = cb_config_set(opts, "neighbours", "false", err)) &&
        !(rc = push_result(results, n_results, CB_EVALRUN_CBREC_TOWERS, fold, sp, err))) {
        r = &(*results)[*n_results - 1];
        t0 = cb_now();
        rc = cb_eval_topn_lists(&r->topn, topn_for(&tn, c, ds, r), ds, sp, cbrec_list, &x, err);
        r->has_topn = rc == CB_OK;
        r->eval_seconds = cb_now() - t0;
    }
    cb_config_free(opts);
    cb_recommender_free(rec);
    return rc;
}

/* A row whose scorer gave every evaluated user's candidates one score has
 * no top-N accuracy (eval.h): its settings say why, beside what was chosen. */
static void note_no_ranking(cb_eval_result *r) {
    const cb_topn_metrics *t = &r->topn;
    if (!r->has_topn || !t->n_users_evaluated || !t->n_users_tied) return;
    size_t len = strlen(r->settings);
    if (t->n_users_tied < t->n_users_evaluated) /* figures, partly of lists in the catalog's order: said */
        snprintf(r->settings + len, sizeof r->settings - len, "%s%zu of %zu users' candidates scored alike (their "
                 "lists in the catalog's order count in the figures)", len ? "; " : "", t->n_users_tied,
                 t->n_users_evaluated);
    else
        snprintf(r->settings + len, sizeof r->settings - len, "%sno ranking: every user's candidates scored alike (the "
                 "list would be the catalog's order), so no top-N accuracy", len ? "; " : "");
}

static int evalrun_models(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                          const cb_dataset *ds, const cb_split *sp, int fold, cb_bundle **out_rec,
                          cb_train_result *out_train, cb_error *err) {
    if (!sp->n_train || !sp->n_test) return cb_fail(err, CB_EINVAL, "the split has an empty training or test part");
    cb_topn_config tn;
    int rc = CB_OK;
    unsigned tt_rows = c->models & ((1u << CB_EVALRUN_TWOTOWER) | (1u << CB_EVALRUN_PIPELINE));
    if (tt_rows && (rc = eval_towers(results, n_results, c, &c->model, tt_rows, ds, sp, fold, out_rec, out_train, err)))
        return rc;
    if ((c->models & (1u << CB_EVALRUN_IMPLICIT)) && c->topn_enabled) {
        /* the same pipeline, trained for top-N */
        cb_model_config mc = c->model;
        mc.objective = CB_OBJECTIVE_RETRIEVAL;
        if (c->implicit_epochs) mc.epochs = c->implicit_epochs;
        if ((rc = eval_towers(results, n_results, c, &mc, 1u << CB_EVALRUN_IMPLICIT, ds, sp, fold, NULL, NULL, err)))
            return rc;
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
            rc = cb_eval_topn(&r->topn, topn_for(&tn, c, ds, r), ds, sp, cb_baseline_score_cb, bl, err);
            r->has_topn = rc == CB_OK;
        }
        r->eval_seconds = cb_now() - t0;
        cb_baseline_free(bl);
        if (rc) return rc;
    }
    if (c->topn_enabled && (c->models & ((1u << CB_EVALRUN_EASE) | (1u << CB_EVALRUN_ITEM_KNN))))
        rc = eval_itemrec(results, n_results, c, ds, sp, fold, err);
    if (!rc && (c->models & ((1u << CB_EVALRUN_CBREC) | (1u << CB_EVALRUN_CBREC_TOWERS))))
        rc = eval_cbrec(results, n_results, c, ds, sp, fold, err);
    if (!rc && c->topn_enabled && (c->models & (1u << CB_EVALRUN_CONTENT_KNN)))
        rc = eval_content_knn(results, n_results, c, ds, sp, fold, err);
    if (!rc && c->topn_enabled && (c->models & (1u << CB_EVALRUN_RANDOM)))
        rc = eval_random(results, n_results, c, ds, sp, fold, err);
    return rc;
}

/* Our rows, and the simple baselines they are judged against. */
static bool ours(const char *model) {
    return !strncmp(model, "two-tower", 9) || !strcmp(model, "cbrec") || !strcmp(model, "cbrec-towers");
}
static bool simple_baseline(const char *model) {
    return !strcmp(model, "popularity") || !strcmp(model, "ease") || !strcmp(model, "item-knn") ||
           !strcmp(model, "content-knn");
}

/* Each of our rows rows[0..n) against the strongest simple baseline among
 * them (the best NDCG@K; a row that does not rank has NAN), user by user;
 * the differences added to c's vs_sum / vs_count when it keeps them. */
static void compare_with_baseline(cb_eval_result *rows, size_t n, const cb_evalrun_config *c, uint32_t n_users) {
    const double *user_ndcg = c->user_ndcg;
    const cb_eval_result *best = NULL;
    for (size_t j = 0; j < n; j++)
        if (rows[j].has_topn && simple_baseline(rows[j].model) && isfinite(rows[j].topn.ndcg) &&
            (!best || rows[j].topn.ndcg > best->topn.ndcg))
            best = &rows[j];
    for (size_t j = 0; best && j < n; j++) {
        cb_eval_result *r = &rows[j];
        if (!r->has_topn || !ours(r->model) || !isfinite(r->topn.ndcg)) continue;
        size_t mine = user_row(r->model, n_users);
        const double *theirs = user_ndcg + user_row(best->model, n_users);
        cb_eval_compare(r, user_ndcg + mine, best, theirs, n_users);
        for (uint32_t u = 0; c->vs_sum && u < n_users; u++) {
            double d = user_ndcg[mine + u] - theirs[u];
            if (isfinite(d)) c->vs_sum[mine + u] += d, c->vs_count[mine + u]++;
        }
    }
}

int cb_evalrun_split(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                     const cb_dataset *ds, const cb_split *sp, int fold, cb_bundle **out_rec,
                     cb_train_result *out_train, cb_error *err) {
    if (out_rec) *out_rec = NULL;
    size_t first = *n_results;
    uint32_t n_users = cb_dataset_n_users(ds);
    cb_evalrun_config kept = *c; /* the same, keeping each row's per-user NDCG@K */
    kept.user_ndcg = c->topn_enabled ? cb_calloc((size_t)CB_EVALRUN_N_MODELS * n_users + 1, sizeof(double), err) : NULL;
    if (c->topn_enabled && !kept.user_ndcg) return CB_ENOMEM;
    int rc = evalrun_models(results, n_results, &kept, ds, sp, fold, out_rec, out_train, err);
    for (size_t j = first; !rc && j < *n_results; j++) note_no_ranking(&(*results)[j]);
    if (!rc && kept.user_ndcg) compare_with_baseline(*results + first, *n_results - first, &kept, n_users);
    free(kept.user_ndcg);
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

/* The user's profile without its held-out items (held: every test item per
 * user): a model saved by `cbrec train` keeps every rating in its history
 * (the served "already rated"), so the held-out items were filtered out of
 * the lists as already rated and every figure of `experiment --model` read 0. */
static void profile_without_test(cb_profile *p, const test_csr *held, uint32_t u, uint32_t *stamp) {
    for (uint32_t j = held->off[u]; j < held->off[u + 1]; j++) stamp[held->item[j]] = u + 1; /* linear, not |h| x |t| */
    size_t kept = 0;
    for (size_t k = 0; k < p->n_ratings; k++) {
        if (stamp[p->items[k]] == u + 1) continue;
        p->items[kept] = p->items[k];
        p->ys[kept++] = p->ys[k];
    }
    p->n_ratings = kept;
}

int cb_evalrun_retrieval(cb_retrieval_row *rows, const uint32_t *sizes, size_t n_sizes, const cb_bundle *rec,
                         const cb_dataset *ds, const cb_split *sp, const cb_topn_config *topn, size_t max_users,
                         cb_error *err) {
    const uint32_t N = topn->k;
    if (!N || !n_sizes) return cb_fail(err, CB_EINVAL, "retrieval experiment: empty list of sizes or K = 0");
    if (cb_dataset_n_users(ds) != rec->n_users || cb_dataset_n_items(ds) != rec->n_items)
        return cb_fail(err, CB_EINVAL, "retrieval experiment: the model has %u users / %u items, the data %u / %u",
                       rec->n_users, rec->n_items, cb_dataset_n_users(ds), cb_dataset_n_items(ds));
    test_csr rel = {0}, held = {0};
    cb_recommender *rctx = NULL;
    uint32_t *users = NULL, *full = NULL, *full_n = NULL, *stamp = NULL;
    char *allow = NULL;
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
    if ((rc = relevant_by_user(&held, ds, sp, -INFINITY, err))) goto out;
    uint32_t max_similar = 1;
    for (size_t s = 0; s < n_sizes; s++) {
        cb_recommend_config rc_cfg;
        cb_evalrun_retrieval_config(&rc_cfg, sizes[s], N, rec->n_items);
        if (rc_cfg.recent_items && rc_cfg.similar_per_item > max_similar) max_similar = rc_cfg.similar_per_item;
    }
    if ((rc = cb_recommender_wrap(&rctx, rec, err)) || (rc = cb_recommender_build_table(rctx, max_similar, 1, err)))
        goto out;
    if (topn->new_items_only && (rc = new_items_allow(&allow, ds, sp, err))) goto out; /* as the eval table's lists */
    full = cb_calloc(n_users * N + 1, sizeof *full, err);
    full_n = cb_calloc(n_users + 1, sizeof *full_n, err);
    stamp = cb_calloc((size_t)rec->n_items + 1, sizeof *stamp, err); /* profile_without_test's marks */
    if (!full || !full_n || !stamp) {
        rc = CB_ENOMEM;
        goto out;
    }
    /* pass 0 computes the full-catalog lists the other sizes are compared with */
    for (size_t s = 0; s <= n_sizes && !rc; s++) {
        uint32_t size = s == 0 ? 0 : sizes[s - 1];
        cb_recommend_config rc_cfg;
        cb_evalrun_retrieval_config(&rc_cfg, size, N, rec->n_items);
        if (allow) rc_cfg.allow = allow;
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
            profile_without_test(&prof, &held, u, stamp);
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
            /* the share of the full list kept: it is shorter than N when fewer items are left to rank
             * (a small catalog, a user who rated most of it), and the full list kept whole is 1 */
            uint32_t common = 0;
            for (uint32_t j = 0; j < n_list && j < N; j++) common += contains(full + k * N, full_n[k], list[j]);
            overlap += full_n[k] ? (double)common / full_n[k] : 1.0;
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
    free(allow);
    free(rel.off);
    free(rel.item);
    free(held.off);
    free(held.item);
    free(stamp);
    free(users);
    free(full);
    free(full_n);
    return rc;
}
