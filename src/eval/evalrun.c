/* evalrun — the evaluation harness: the two-tower model and the baselines fitted
 * on one split and measured by the same eval.h code, the retrieval-size
 * experiment, and small SVG charts. See evalrun.h for the protocol. */
#include "eval/evalrun.h"

#include "eval/baselines.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const model_names[CB_EVALRUN_N_MODELS] = {
    "two-tower", "two-tower/pipeline", "global-mean", "bias", "popularity", "svd", "two-tower/implicit"};

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
                 {"two-tower/implicit", CB_EVALRUN_IMPLICIT}, {"implicit", CB_EVALRUN_IMPLICIT}};
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
                           "unknown model '%.*s' (known: twotower, pipeline, implicit, global, bias, popularity, svd)",
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
    cb_feature_config_default(&c->features);
    cb_model_config_default(&c->model);
    c->scale_targets = true;
    c->valid_frac = 0;
    c->implicit_epochs = 0;
    c->cold_impute = true;
    c->cold_neighbours = 200;
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

typedef struct pipe_ctx {
    const cb_recommend_ctx *rctx;
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

/* cb_evalrun_train with the model configuration mc instead of c->model. */
static int train_with(cb_bundle **out, const cb_evalrun_config *c, const cb_model_config *mc, const cb_dataset *ds,
                      const cb_split *sp, cb_train_result *res, cb_error *err) {
    *out = NULL;
    uint32_t *train = NULL, *valid = NULL;
    size_t n_train = sp->n_train, n_valid = 0;
    if (c->valid_frac > 0 && sp->n_train >= 10) {
        /* the same seeded carve as `cbrec train` */
        train = cb_malloc(sp->n_train * sizeof *train, err);
        if (!train) return CB_ENOMEM;
        memcpy(train, sp->train, sp->n_train * sizeof *train);
        cb_rng rng;
        cb_rng_seed(&rng, c->model.seed ^ 0x5eed5eedULL);
        cb_rng_shuffle_u32(&rng, train, sp->n_train);
        n_valid = (size_t)(c->valid_frac * (double)sp->n_train);
        valid = train;
        n_train = sp->n_train - n_valid;
    }
    cb_bundle_train_input in = {.ds = ds,
                             .train_idx = valid ? train + n_valid : sp->train,
                             .n_train = n_train,
                             .valid_idx = valid,
                             .n_valid = n_valid,
                             .features = &c->features,
                             .model = *mc,
                             .scale_targets = c->scale_targets,
                             .on_epoch = c->on_epoch,
                             .ctx = c->epoch_ctx};
    /* 0/1 labels under the rating objective: the sigmoid cross-entropy */
    if (ds->binary && mc->objective == CB_OBJECTIVE_RATING) in.model.loss = CB_LOSS_BCE;
    if (!valid && c->monitor_test && sp->n_test) {
        in.valid_idx = sp->test;
        in.n_valid = sp->n_test;
        in.model.patience = 0;
    }
    int rc = cb_bundle_train(out, &in, res, err);
    if (rc == CB_ENUMERIC && *out) rc = CB_OK; /* the last finite epoch is kept: still a model */
    free(train);
    return rc;
}

int cb_evalrun_train(cb_bundle **out, const cb_evalrun_config *c, const cb_dataset *ds, const cb_split *sp,
                     cb_train_result *res, cb_error *err) {
    return train_with(out, c, &c->model, ds, sp, res, err);
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

/* Train the towers of configuration mc and measure rows `rows` (a mask of
 * TWOTOWER, PIPELINE, IMPLICIT: the full-catalog ranking rows and the
 * pipeline row) with the same bundle. */
static int eval_towers(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                       const cb_model_config *mc, unsigned rows, const cb_dataset *ds, const cb_split *sp, int fold,
                       cb_bundle **out_rec, cb_train_result *out_train, cb_error *err) {
    cb_bundle *rec = NULL;
    cb_train_result tr = {0};
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
            if ((rc = cb_eval_topn(&r->topn, &c->topn, ds, sp, tt_score, &tc, err))) goto out;
            r->has_topn = true;
        }
        r->eval_seconds = cb_now() - t0;
    }
    if ((rows & (1u << CB_EVALRUN_PIPELINE)) && c->topn_enabled) {
        if ((rc = push_result(results, n_results, CB_EVALRUN_PIPELINE, fold, sp, err))) goto out;
        cb_eval_result *r = &(*results)[*n_results - 1];
        r->fit_seconds = fit;
        cb_recommend_ctx *rctx = NULL;
        cb_recommend_config rc_cfg = c->recommend;
        rc_cfg.n = c->topn.k;
        t0 = cb_now();
        if ((rc = cb_recommend_ctx_create(&rctx, rec, NULL, err))) goto out;
        pipe_ctx pc = {rctx, rec, tc.user_vecs, &rc_cfg};
        rc = cb_eval_topn_lists(&r->topn, &c->topn, ds, sp, pipe_list, &pc, err);
        cb_recommend_ctx_free(rctx);
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

int cb_evalrun_split(cb_eval_result **results, size_t *n_results, const cb_evalrun_config *c,
                     const cb_dataset *ds, const cb_split *sp, int fold, cb_bundle **out_rec,
                     cb_train_result *out_train, cb_error *err) {
    if (out_rec) *out_rec = NULL;
    if (!sp->n_train || !sp->n_test) return cb_fail(err, CB_EINVAL, "the split has an empty training or test part");
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
            rc = cb_eval_topn(&r->topn, &c->topn, ds, sp, cb_baseline_score_cb, bl, err);
            r->has_topn = rc == CB_OK;
        }
        r->eval_seconds = cb_now() - t0;
        cb_baseline_free(bl);
        if (rc) return rc;
    }
    return CB_OK;
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
    cb_recommend_table table = {0};
    cb_recommend_ctx *rctx = NULL;
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
    if ((rc = cb_recommend_table_build(&table, rec, max_similar, 1, NULL, err))) goto out;
    if ((rc = cb_recommend_ctx_create(&rctx, rec, &table, err))) goto out;
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
    cb_recommend_ctx_free(rctx);
    cb_recommend_table_free(&table);
    free(rel.off);
    free(rel.item);
    free(users);
    free(full);
    free(full_n);
    return rc;
}

/* ---- SVG line charts */

static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void svg_text_escaped(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int cb_evalrun_svg(const char *path, const cb_svg_chart *chart, const cb_svg_series *series, size_t n_series,
                   cb_error *err) {
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    bool log_x = chart->log_x;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_x && x <= 0)) continue;
            if (log_x) x = log10(x);
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (!(x0 <= x1)) return cb_fail(err, CB_EINVAL, "%s: no finite point to plot", path);
    if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-12) y0 -= fabs(y0) * 0.05 + 0.5, y1 += fabs(y1) * 0.05 + 0.5;
    double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    int W = chart->width > 0 ? chart->width : 640, H = chart->height > 0 ? chart->height : 400;
    double L = 70, R = W - 20.0, T = 40, B = H - 55.0;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (R - L))
#define PY(y) (B - ((y) - y0) / (y1 - y0) * (B - T))
    cb_atomic_file af;
    int rc = cb_atomic_open(&af, path, err);
    if (rc) return rc;
    FILE *f = af.fp;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    svg_text_escaped(f, chart->title);
    fprintf(f, "</text>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
            L, T, R - L, B - T);
    /* y ticks */
    double ys = nice_step(y1 - y0, 6);
    for (double y = ceil(y0 / ys) * ys; y <= y1 + ys * 1e-9; y += ys)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"end\">%g</text>\n",
                L, R, PY(y), PY(y), L - 5, PY(y) + 4, fabs(y) < ys * 1e-9 ? 0.0 : y);
    /* x ticks */
    if (log_x) {
        for (int e = (int)floor(x0); e <= (int)ceil(x1); e++)
            for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
                double lx = e + log10(m);
                if (lx < x0 - 1e-9 || lx > x1 + 1e-9) continue;
                fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" "
                           "y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                        PX(lx), PX(lx), T, B, PX(lx), B + 16, pow(10, lx));
            }
    } else {
        double xs = nice_step(x1 - x0, 8);
        for (double x = ceil(x0 / xs) * xs; x <= x1 + xs * 1e-9; x += xs)
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" "
                       "y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                    PX(x), PX(x), T, B, PX(x), B + 16, x);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (L + R) / 2, H - 15);
    svg_text_escaped(f, chart->x_label);
    fprintf(f, "</text>\n<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">", (T + B) / 2);
    svg_text_escaped(f, chart->y_label);
    fputs("</text>\n", f);
    double lg = chart->legend_left ? L + 10 : R - 170;
    for (size_t s = 0; s < n_series; s++) {
        const char *col = colors[s % (sizeof colors / sizeof colors[0])];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_x && x <= 0)) continue;
            fprintf(f, "%.1f,%.1f ", PX(log_x ? log10(x) : x), PY(y));
        }
        fputs("\"/>\n", f);
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_x && x <= 0)) continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(log_x ? log10(x) : x), PY(y), col);
        }
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/><text "
                   "x=\"%.1f\" y=\"%.1f\">",
                lg, lg + 20, T + 15 + 16.0 * (double)s, T + 15 + 16.0 * (double)s, col, lg + 25,
                T + 19 + 16.0 * (double)s);
        svg_text_escaped(f, series[s].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
    if (ferror(f)) {
        cb_atomic_abort(&af);
        return cb_fail(err, CB_EIO, "%s: write error", path);
    }
    return cb_atomic_commit(&af, err);
}

int cb_evalrun_curve_svg(const char *path, const double *train_loss, const double *valid_loss, size_t n,
                         const char *title, cb_error *err) {
    double *x = cb_malloc((n + 1) * sizeof *x, err);
    if (!x) return CB_ENOMEM;
    for (size_t i = 0; i < n; i++) x[i] = (double)(i + 1);
    cb_svg_series s[2] = {{"train loss", x, train_loss, n}, {"validation loss", x, valid_loss, valid_loss ? n : 0}};
    cb_svg_chart ch = {title ? title : "learning curve", "epoch", "loss (scaled targets)", false, 0, 0, false};
    int rc = cb_evalrun_svg(path, &ch, s, valid_loss ? 2 : 1, err);
    free(x);
    return rc;
}
