/* Tests for baselines: BaselineOnly's ALS against an independent reference
 * (in C here, and numpy when /usr/bin/python3 has it), SVD's SGD against a
 * step-by-step reference, training-error decrease and determinism by seed,
 * graceful fallback for unknown users/items, popularity, beating the global
 * mean on synthetic data with planted biases, and (when ../shared/data/ml-100k
 * and the loader are available) the five MovieLens 100K folds against the
 * Surprise library's published RMSE. EASE against a direct Gauss-Jordan
 * inverse and item-kNN against a brute-force reference, and their tuning.
 * content-kNN on a hand-made two-genre catalog. */
#include "testutil.h"
#include "eval/baselines.h"
#include "eval/eval.h"
#include "eval/itemrec.h"
#include "data/table.h"

#include <math.h>

static uint32_t *iota(size_t n) {
    uint32_t *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t j = 0; j < n; j++) a[j] = (uint32_t)j;
    return a;
}

/* A small dataset: 5 users, 4 items (item "d" has no training rating when
 * the last rating is held out), ratings 1..5. */
static cb_dataset *tiny(void) {
    cb_dataset *ds = tu_ds_new();
    static const struct { const char *u, *i; float y; } rows[] = {
        {"u1", "a", 5}, {"u1", "b", 3}, {"u1", "c", 4}, {"u2", "a", 4}, {"u2", "c", 2},
        {"u3", "b", 1}, {"u3", "c", 2}, {"u3", "a", 3}, {"u4", "a", 5}, {"u4", "b", 4},
        {"u5", "c", 1}, {"u5", "d", 5},
    };
    for (size_t j = 0; j < sizeof rows / sizeof rows[0]; j++) tu_ds_add(ds, rows[j].u, rows[j].i, rows[j].y, 0);
    return ds;
}

/* Surprise's baseline_als written the way Surprise does it: item by item over
 * the item's rating list, then user by user over the user's list. */
static void reference_als(const cb_dataset *ds, size_t n_train, int epochs, double reg_u,
                          double reg_i, double *bu, double *bi, double *mu) {
    uint32_t nu = cb_vocab_size(ds->users), ni = cb_vocab_size(ds->items);
    double sum = 0;
    for (size_t j = 0; j < n_train; j++) sum += ds->ratings[j].y;
    *mu = sum / (double)n_train;
    memset(bu, 0, nu * sizeof *bu);
    memset(bi, 0, ni * sizeof *bi);
    for (int e = 0; e < epochs; e++) {
        for (uint32_t i = 0; i < ni; i++) {
            double dev = 0;
            int n = 0;
            for (size_t j = 0; j < n_train; j++) {
                if (ds->ratings[j].item != i) continue;
                dev += ds->ratings[j].y - *mu - bu[ds->ratings[j].user];
                n++;
            }
            bi[i] = dev / (reg_i + n);
        }
        for (uint32_t u = 0; u < nu; u++) {
            double dev = 0;
            int n = 0;
            for (size_t j = 0; j < n_train; j++) {
                if (ds->ratings[j].user != u) continue;
                dev += ds->ratings[j].y - *mu - bi[ds->ratings[j].item];
                n++;
            }
            bu[u] = dev / (reg_u + n);
        }
    }
}

static bool have_numpy(void) {
    if (access("/usr/bin/python3", X_OK) != 0) return false;
    return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

static void bias_als_matches_reference(void **state) {
    (void)state;
    cb_dataset *ds = tiny();
    size_t n_train = ds->n_ratings - 1; /* hold out (u5, d): d is unknown */
    uint32_t *train = iota(n_train);
    cb_baseline_config cfg;
    cb_baseline_config_default(&cfg, CB_BASELINE_BIAS);
    assert_int_equal(cfg.bias_epochs, 10);
    assert_true(cfg.reg_u == 15.0 && cfg.reg_i == 10.0);
    cb_baseline *b = NULL;
    cb_error err;
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds, train, n_train, &err), CB_OK);

    double bu[5], bi[4], mu;
    reference_als(ds, n_train, 10, 15.0, 10.0, bu, bi, &mu);
    assert_true(fabs(cb_baseline_global_mean(b) - mu) < 1e-12);
    for (uint32_t u = 0; u < 5; u++) assert_true(fabs(cb_baseline_user_bias(b, u) - bu[u]) < 1e-12);
    for (uint32_t i = 0; i < 4; i++) assert_true(fabs(cb_baseline_item_bias(b, i) - bi[i]) < 1e-12);
    /* the fit moved something: item a (rated 5,4,3,5) is above the mean */
    assert_true(bi[0] > 0.05);
    /* predictions: mu + b_u + b_i, and fallbacks for the unknown item d (3) and user 99 */
    assert_true(fabsf(cb_baseline_predict(b, 0, 0) - (float)(mu + bu[0] + bi[0])) < 1e-6f);
    assert_true(fabsf(cb_baseline_predict(b, 4, 3) - (float)(mu + bu[4])) < 1e-6f);
    assert_true(fabsf(cb_baseline_predict(b, 99, 1) - (float)(mu + bi[1])) < 1e-6f);
    assert_true(fabsf(cb_baseline_predict(b, 99, 12345) - (float)mu) < 1e-6f);

    if (!have_numpy()) {
        printf("note: /usr/bin/python3 with numpy absent, numpy cross-check skipped\n");
    } else {
        /* The same ALS equations in numpy, from a file of (user, item, rating). */
        char *dir = tu_tmpdir();
        char *data = tu_path(dir, "r.tsv");
        FILE *f = fopen(data, "w");
        assert_non_null(f);
        for (size_t j = 0; j < n_train; j++)
            fprintf(f, "%u\t%u\t%g\n", ds->ratings[j].user, ds->ratings[j].item, ds->ratings[j].y);
        fclose(f);
        const char *py =
            "import sys, numpy as np\n"
            "r = np.loadtxt(sys.argv[1], ndmin=2)\n"
            "u = r[:,0].astype(int); i = r[:,1].astype(int); y = r[:,2]\n"
            "nu, ni = 5, 4\n"
            "mu = y.mean(); bu = np.zeros(nu); bi = np.zeros(ni)\n"
            "for _ in range(10):\n"
            "    for k in range(ni):\n"
            "        m = i == k\n"
            "        bi[k] = (y[m] - mu - bu[u[m]]).sum() / (10.0 + m.sum())\n"
            "    for k in range(nu):\n"
            "        m = u == k\n"
            "        bu[k] = (y[m] - mu - bi[i[m]]).sum() / (15.0 + m.sum())\n"
            "print(' '.join('%.17g' % v for v in np.concatenate([[mu], bu, bi])))\n";
        char *script = tu_write(dir, "als.py", py);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, data);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        double v[10];
        for (int k = 0; k < 10; k++) assert_int_equal(fscanf(p, "%lf", &v[k]), 1);
        assert_int_equal(pclose(p), 0);
        assert_true(fabs(v[0] - cb_baseline_global_mean(b)) < 1e-12);
        for (uint32_t u = 0; u < 5; u++) assert_true(fabs(v[1 + u] - cb_baseline_user_bias(b, u)) < 1e-12);
        for (uint32_t i = 0; i < 4; i++) assert_true(fabs(v[6 + i] - cb_baseline_item_bias(b, i)) < 1e-12);
        tu_rmrf(dir);
        free(dir);
        free(data);
        free(script);
    }
    cb_baseline_free(b);
    cb_baseline_free(NULL);
    free(train);
    cb_dataset_free(ds);
}

/* Surprise's SGD, step by step, with the same initial factors (drawn from our
 * RNG in the same order: all p_u, then all q_i), visiting ratings user by
 * user in order of first appearance. */
static void svd_matches_reference_sgd(void **state) {
    (void)state;
    cb_dataset *ds = tiny();
    /* train in a scrambled order so the grouping by first appearance matters */
    uint32_t train[11] = {8, 0, 5, 9, 1, 3, 10, 6, 2, 4, 7};
    cb_baseline_config cfg;
    cb_baseline_config_default(&cfg, CB_BASELINE_SVD);
    cfg.n_factors = 3;
    cfg.n_epochs = 4;
    cfg.lr_all = 0.05;
    cfg.seed = 7;
    cb_baseline *b = NULL;
    cb_error err;
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds, train, 11, &err), CB_OK);

    enum { NU = 5, NI = 4, F = 3 };
    double pu[NU][F], qi[NI][F], bu[NU] = {0}, bi[NI] = {0}, mu = 0;
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    for (int u = 0; u < NU; u++)
        for (int f = 0; f < F; f++) pu[u][f] = 0.1 * cb_rng_normal(&rng);
    for (int i = 0; i < NI; i++)
        for (int f = 0; f < F; f++) qi[i][f] = 0.1 * cb_rng_normal(&rng);
    for (int j = 0; j < 11; j++) mu += ds->ratings[train[j]].y;
    mu /= 11;
    /* users by first appearance in train[]: u4 (8), u1 (0), u3 (5), u2 (3), u5 (10) */
    uint32_t seen[NU];
    int n_seen = 0;
    for (int j = 0; j < 11; j++) {
        uint32_t u = ds->ratings[train[j]].user;
        bool dup = false;
        for (int s = 0; s < n_seen; s++) dup |= seen[s] == u;
        if (!dup) seen[n_seen++] = u;
    }
    assert_int_equal(n_seen, 5);
    assert_int_equal(seen[0], 3);
    for (int e = 0; e < 4; e++) {
        for (int s = 0; s < n_seen; s++) {
            for (int j = 0; j < 11; j++) {
                const cb_rating *r = &ds->ratings[train[j]];
                if (r->user != seen[s]) continue;
                double dot = 0;
                for (int f = 0; f < F; f++) dot += qi[r->item][f] * pu[r->user][f];
                double e_ = r->y - (mu + bu[r->user] + bi[r->item] + dot);
                bu[r->user] += 0.05 * (e_ - 0.02 * bu[r->user]);
                bi[r->item] += 0.05 * (e_ - 0.02 * bi[r->item]);
                for (int f = 0; f < F; f++) {
                    double a = pu[r->user][f], c = qi[r->item][f];
                    pu[r->user][f] += 0.05 * (e_ * c - 0.02 * a);
                    qi[r->item][f] += 0.05 * (e_ * a - 0.02 * c);
                }
            }
        }
    }
    for (uint32_t u = 0; u < NU; u++) {
        assert_true(fabs(cb_baseline_user_bias(b, u) - bu[u]) < 1e-12);
        for (uint32_t i = 0; i < NI; i++) {
            double dot = 0; /* item d (3) has no training rating: no factor term */
            for (int f = 0; f < F && i != 3; f++) dot += qi[i][f] * pu[u][f];
            double est = mu + bu[u] + bi[i] + dot;
            est = est < 1 ? 1 : est > 5 ? 5 : est;
            assert_true(fabsf(cb_baseline_predict(b, u, i) - (float)est) < 1e-6f);
        }
    }
    /* unknown user: no factor term */
    assert_true(fabsf(cb_baseline_predict(b, 77, 0) - (float)(mu + bi[0])) < 1e-6f);
    cb_baseline_free(b);
    cb_dataset_free(ds);
}

/* Synthetic ratings with planted user and item biases plus a rank-2 taste
 * term: y = 3.5 + b_u + b_i + p_u.q_i + noise, clipped to [1, 5]. */
typedef struct planted {
    cb_dataset *ds;
    double *bu, *bi;
    uint32_t *train, *test;
    size_t n_train, n_test;
} planted;

static planted make_planted(uint32_t n_users, uint32_t n_items, uint32_t per_user, uint64_t seed) {
    planted p = {0};
    p.ds = tu_ds_new();
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    p.bu = calloc(n_users, sizeof *p.bu);
    p.bi = calloc(n_items, sizeof *p.bi);
    double(*pu)[2] = calloc(n_users, sizeof *pu);
    double(*qi)[2] = calloc(n_items, sizeof *qi);
    char id[32];
    for (uint32_t i = 0; i < n_items; i++) {
        p.bi[i] = 0.7 * cb_rng_normal(&rng);
        qi[i][0] = 0.6 * cb_rng_normal(&rng);
        qi[i][1] = 0.6 * cb_rng_normal(&rng);
        snprintf(id, sizeof id, "i%u", i);
        uint32_t idx;
        cb_vocab_intern(p.ds->items, id, strlen(id), &idx, NULL, NULL);
    }
    for (uint32_t u = 0; u < n_users; u++) {
        p.bu[u] = 0.5 * cb_rng_normal(&rng);
        pu[u][0] = 0.6 * cb_rng_normal(&rng);
        pu[u][1] = 0.6 * cb_rng_normal(&rng);
    }
    uint32_t *perm = iota(n_items);
    p.train = malloc((size_t)n_users * per_user * sizeof *p.train);
    p.test = malloc((size_t)n_users * per_user * sizeof *p.test);
    for (uint32_t u = 0; u < n_users; u++) {
        cb_rng_shuffle_u32(&rng, perm, n_items);
        for (uint32_t k = 0; k < per_user; k++) {
            uint32_t i = perm[k];
            double y = 3.5 + p.bu[u] + p.bi[i] + pu[u][0] * qi[i][0] + pu[u][1] * qi[i][1] +
                       0.3 * cb_rng_normal(&rng);
            y = y < 1 ? 1 : y > 5 ? 5 : y;
            char uid[32], iid[32];
            snprintf(uid, sizeof uid, "u%u", u);
            snprintf(iid, sizeof iid, "i%u", i);
            uint32_t idx = tu_ds_add(p.ds, uid, iid, (float)y, 0);
            if (cb_rng_uniform(&rng) < 0.2) p.test[p.n_test++] = idx;
            else p.train[p.n_train++] = idx;
        }
    }
    free(perm);
    free(pu);
    free(qi);
    return p;
}

static void planted_free(planted *p) {
    cb_dataset_free(p->ds);
    free(p->bu);
    free(p->bi);
    free(p->train);
    free(p->test);
}

static double rmse_of(const cb_baseline *b, const cb_dataset *ds, const uint32_t *idx, size_t n) {
    cb_rating_metrics m;
    cb_error err;
    assert_int_equal(cb_eval_rating(&m, ds, idx, n, cb_baseline_predict_cb, (void *)b, &err), CB_OK);
    return m.rmse;
}

static cb_baseline *fit_kind(cb_baseline_kind kind, const planted *p, int n_factors, int n_epochs,
                             uint64_t seed) {
    cb_baseline_config cfg;
    cb_baseline_config_default(&cfg, kind);
    if (n_factors >= 0) cfg.n_factors = n_factors;
    if (n_epochs >= 0) cfg.n_epochs = n_epochs;
    cfg.seed = seed;
    cb_baseline *b = NULL;
    cb_error err;
    int rc = cb_baseline_fit(&b, &cfg, p->ds, p->train, p->n_train, &err);
    if (rc != CB_OK) fail_msg("fit: %s", err.msg);
    return b;
}

static void svd_training_error_and_determinism(void **state) {
    (void)state;
    planted p = make_planted(300, 150, 40, 11);
    double prev = INFINITY;
    const int epochs[3] = {1, 5, 20};
    for (int e = 0; e < 3; e++) {
        cb_baseline *b = fit_kind(CB_BASELINE_SVD, &p, 20, epochs[e], 3);
        double r = rmse_of(b, p.ds, p.train, p.n_train);
        assert_true(r < prev);
        prev = r;
        cb_baseline_free(b);
    }
    cb_baseline *mean = fit_kind(CB_BASELINE_GLOBAL_MEAN, &p, -1, -1, 1);
    assert_true(prev < 0.7 * rmse_of(mean, p.ds, p.train, p.n_train));
    cb_baseline_free(mean);

    cb_baseline *a = fit_kind(CB_BASELINE_SVD, &p, 20, 5, 3);
    cb_baseline *b = fit_kind(CB_BASELINE_SVD, &p, 20, 5, 3);
    cb_baseline *c = fit_kind(CB_BASELINE_SVD, &p, 20, 5, 4);
    bool any_diff = false;
    for (uint32_t u = 0; u < 300; u++) {
        for (uint32_t i = 0; i < 150; i++) {
            float pa = cb_baseline_predict(a, u, i), pb = cb_baseline_predict(b, u, i);
            assert_memory_equal(&pa, &pb, sizeof pa);
            any_diff |= pa != cb_baseline_predict(c, u, i);
        }
    }
    assert_true(any_diff);
    cb_baseline_free(a);
    cb_baseline_free(b);
    cb_baseline_free(c);
    planted_free(&p);
}

static double correlation(const double *x, const double *y, size_t n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t j = 0; j < n; j++) mx += x[j], my += y[j];
    mx /= n;
    my /= n;
    for (size_t j = 0; j < n; j++) {
        sxy += (x[j] - mx) * (y[j] - my);
        sxx += (x[j] - mx) * (x[j] - mx);
        syy += (y[j] - my) * (y[j] - my);
    }
    return sxy / sqrt(sxx * syy);
}

/* The catalog's order (item 0 first): the arbitrary ranking a list that
 * knows nothing gets. */
static int id_order_score(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    (void)ctx, (void)user, (void)err;
    for (uint32_t i = 0; i < n_items; i++) scores[i] = -(float)i;
    return CB_OK;
}

static void baselines_beat_global_mean(void **state) {
    (void)state;
    planted p = make_planted(400, 200, 50, 5);
    cb_baseline *mean = fit_kind(CB_BASELINE_GLOBAL_MEAN, &p, -1, -1, 1);
    cb_baseline *bias = fit_kind(CB_BASELINE_BIAS, &p, -1, -1, 1);
    cb_baseline *svd = fit_kind(CB_BASELINE_SVD, &p, -1, -1, 1);
    double r_mean = rmse_of(mean, p.ds, p.test, p.n_test);
    double r_bias = rmse_of(bias, p.ds, p.test, p.n_test);
    double r_svd = rmse_of(svd, p.ds, p.test, p.n_test);
    printf("planted biases, test RMSE: global mean %.4f, bias %.4f, svd %.4f\n", r_mean, r_bias, r_svd);
    assert_true(r_bias < 0.8 * r_mean);
    assert_true(r_svd < 0.8 * r_mean);
    /* the fitted biases recover the planted ones */
    double *est = malloc(200 * sizeof *est);
    for (uint32_t i = 0; i < 200; i++) est[i] = cb_baseline_item_bias(bias, i);
    assert_true(correlation(est, p.bi, 200) > 0.9);
    free(est);
    est = malloc(400 * sizeof *est);
    for (uint32_t u = 0; u < 400; u++) est[u] = cb_baseline_user_bias(bias, u);
    assert_true(correlation(est, p.bu, 400) > 0.8);
    free(est);

    /* Top-N through the same harness: the global mean does not rank (every
     * item scores alike: no figures), the bias ranking beats the catalog's
     * order, an arbitrary one. Relevance threshold 4 on these ratings. */
    cb_split split = {p.train, p.test, p.n_train, p.n_test};
    cb_topn_config tc;
    cb_topn_config_default(&tc);
    cb_topn_metrics m_mean, m_bias, m_ids;
    cb_error err;
    assert_int_equal(cb_eval_topn(&m_mean, &tc, p.ds, &split, cb_baseline_score_cb, mean, &err), CB_OK);
    assert_true(isnan(m_mean.ndcg) && m_mean.n_users_tied == m_mean.n_users_evaluated);
    assert_int_equal(cb_eval_topn(&m_ids, &tc, p.ds, &split, id_order_score, NULL, &err), CB_OK);
    assert_int_equal(cb_eval_topn(&m_bias, &tc, p.ds, &split, cb_baseline_score_cb, bias, &err), CB_OK);
    assert_true(m_bias.ndcg > m_ids.ndcg);
    cb_baseline_free(mean);
    cb_baseline_free(bias);
    cb_baseline_free(svd);
    planted_free(&p);
}

static void popularity_and_config(void **state) {
    (void)state;
    cb_dataset *ds = tiny();
    uint32_t *train = iota(ds->n_ratings);
    cb_baseline_config cfg;
    cb_baseline_config_default(&cfg, CB_BASELINE_POPULARITY);
    cb_baseline *b = NULL;
    cb_error err;
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds, train, ds->n_ratings, &err), CB_OK);
    float s[5];
    cb_baseline_score_items(b, 0, s, 5); /* item 4 is past the catalog: 0 */
    const float want[5] = {4, 3, 4, 1, 0};
    for (int i = 0; i < 5; i++) assert_true(s[i] == want[i]);
    assert_int_equal(cb_baseline_item_count(b, 0), 4);
    /* predict = the item's mean training rating (a: 5,4,3,5) */
    assert_true(fabsf(cb_baseline_predict(b, 0, 0) - 4.25f) < 1e-6f);
    assert_true(fabsf(cb_baseline_predict(b, 0, 99) - (float)cb_baseline_global_mean(b)) < 1e-6f);
    assert_int_equal(cb_baseline_kind_of(b), CB_BASELINE_POPULARITY);
    cb_baseline_free(b);

    /* clipping: a huge item bias stays inside [1, 5] for predict, not for scores */
    cb_dataset *ds2 = tu_ds_new();
    tu_ds_add(ds2, "x", "hi", 5, 0);
    tu_ds_add(ds2, "y", "hi", 5, 0);
    tu_ds_add(ds2, "z", "lo", 1, 0);
    uint32_t tr2[3] = {0, 1, 2};
    cb_baseline_config_default(&cfg, CB_BASELINE_BIAS);
    cfg.reg_i = cfg.reg_u = 0;
    cfg.y_min = 2; /* explicit range [2, 4] overrides the dataset's */
    cfg.y_max = 4;
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds2, tr2, 3, &err), CB_OK);
    assert_true(cb_baseline_predict(b, 0, 1) == 2.0f);
    assert_true(cb_baseline_predict(b, 0, 0) == 4.0f);
    cb_baseline_score_items(b, 0, s, 2);
    assert_true(s[0] > 4.0f && s[1] < 2.0f);
    cb_baseline_free(b);
    cb_dataset_free(ds2);

    /* errors */
    cb_baseline_config_default(&cfg, CB_BASELINE_SVD);
    cfg.lr_all = -1;
    assert_non_null(cb_baseline_config_check(&cfg));
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds, train, ds->n_ratings, &err), CB_EINVAL);
    assert_null(b);
    cb_baseline_config_default(&cfg, CB_BASELINE_SVD);
    assert_null(cb_baseline_config_check(&cfg));
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds, train, 0, &err), CB_EINVAL);
    uint32_t bad = 1000;
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds, &bad, 1, &err), CB_EINVAL);
    cfg.lr_all = 10; /* diverges */
    assert_int_equal(cb_baseline_fit(&b, &cfg, ds, train, ds->n_ratings, &err), CB_ENUMERIC);
    assert_null(b);
    cb_baseline_kind k;
    assert_int_equal(cb_baseline_kind_parse("svd", &k, &err), CB_OK);
    assert_int_equal(k, CB_BASELINE_SVD);
    assert_string_equal(cb_baseline_kind_name(CB_BASELINE_BIAS), "bias");
    assert_int_equal(cb_baseline_kind_parse("knn", &k, &err), CB_ENOTFOUND);
    free(train);
    cb_dataset_free(ds);
}

/* ---- integration: MovieLens 100K folds u1..u5 ---- */

/* Top-N on one fold: popularity, bias and SVD rankings side by side. */
static void ml100k_topn(const cb_dataset *ds, const cb_split *split) {
    const cb_baseline_kind kinds[4] = {CB_BASELINE_GLOBAL_MEAN, CB_BASELINE_POPULARITY, CB_BASELINE_BIAS,
                                       CB_BASELINE_SVD};
    cb_topn_metrics m[4];
    cb_topn_config tc;
    cb_topn_config_default(&tc);
    cb_error err;
    for (int k = 0; k < 4; k++) {
        cb_baseline_config cfg;
        cb_baseline_config_default(&cfg, kinds[k]);
        cb_baseline *b = NULL;
        if (cb_baseline_fit(&b, &cfg, ds, split->train, split->n_train, &err) != CB_OK) fail_msg("%s", err.msg);
        if (cb_eval_topn(&m[k], &tc, ds, split, cb_baseline_score_cb, b, &err) != CB_OK) fail_msg("%s", err.msg);
        printf("  u1 top-10 %-11s P %.4f R %.4f NDCG %.4f MAP %.4f hit %.3f | coverage %.3f diversity %.3f "
               "popularity %.0f vs rated %.0f (x%.2f) | %zu users, %zu skipped\n",
               cb_baseline_kind_name(kinds[k]), m[k].precision, m[k].recall, m[k].ndcg, m[k].map,
               m[k].hit_rate, m[k].coverage, m[k].diversity, m[k].pop_recommended, m[k].pop_rated,
               m[k].pop_ratio, m[k].n_users_evaluated, m[k].n_users_skipped);
        cb_baseline_free(b);
    }
    /* popularity is a strong top-N baseline: far above an arbitrary order (the
     * catalog's; the global mean ranks nothing), and biased to the head */
    cb_topn_metrics ids;
    if (cb_eval_topn(&ids, &tc, ds, split, id_order_score, NULL, &err) != CB_OK) fail_msg("%s", err.msg);
    assert_true(isnan(m[0].ndcg));
    assert_true(m[1].ndcg > 2 * ids.ndcg);
    assert_true(m[1].pop_ratio > 1.5);
    assert_true(m[1].coverage < m[3].coverage);
}

static void ml100k_folds(void **state) {
    (void)state;
    const char *root = tu_shared_data("ml-100k");
    if (!root) TU_SKIP("../shared/data/ml-100k absent (set CBREC_DATA to run the fold test)");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", root);
    cb_load_options opt;
    cb_load_options_default(&opt);
    cb_dataset *ds = NULL;
    cb_error err;
    if (cb_dataset_load(&ds, dir, &opt, &err) != CB_OK)
        TU_SKIP("the ml-100k loader is not ready: %s", err.msg);
    assert_int_equal(ds->n_ratings, 100000);

    const cb_baseline_kind kinds[3] = {CB_BASELINE_GLOBAL_MEAN, CB_BASELINE_BIAS, CB_BASELINE_SVD};
    cb_eval_result results[15];
    size_t n_results = 0;
    for (int fold = 1; fold <= 5; fold++) {
        char base[4200], test[4200];
        snprintf(base, sizeof base, "%s/u%d.base", dir, fold);
        snprintf(test, sizeof test, "%s/u%d.test", dir, fold);
        cb_split split;
        if (cb_eval_split_from_files(&split, ds, base, test, &err) != CB_OK) fail_msg("%s", err.msg);
        assert_int_equal(split.n_train, 80000);
        assert_int_equal(split.n_test, 20000);
        printf("fold u%d:", fold);
        for (int k = 0; k < 3; k++) {
            cb_baseline_config cfg;
            cb_baseline_config_default(&cfg, kinds[k]);
            cb_baseline *b = NULL;
            double t0 = cb_now();
            if (cb_baseline_fit(&b, &cfg, ds, split.train, split.n_train, &err) != CB_OK)
                fail_msg("%s", err.msg);
            cb_eval_result *r = &results[n_results++];
            cb_eval_result_init(r, cb_baseline_kind_name(kinds[k]), fold);
            r->fit_seconds = cb_now() - t0;
            r->n_train = split.n_train;
            r->n_test = split.n_test;
            assert_int_equal(cb_eval_rating(&r->rating, ds, split.test, split.n_test,
                                            cb_baseline_predict_cb, b, &err), CB_OK);
            printf("  %s %.4f", r->model, r->rating.rmse);
            cb_baseline_free(b);
        }
        printf("\n");
        if (fold == 1) ml100k_topn(ds, &split);
        free(split.train);
        free(split.test);
    }
    cb_eval_summary s[3];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(cb_eval_summarize(&s[k], results, n_results, cb_baseline_kind_name(kinds[k]), &err),
                         CB_OK);
        assert_int_equal(s[k].n_folds, 5);
        printf("%-12s mean RMSE %.4f (std %.4f)  MAE %.4f  fit %.2fs/fold\n", s[k].model, s[k].rmse.mean,
               s[k].rmse.std, s[k].mae.mean, s[k].fit_seconds.mean);
    }
    assert_true(s[0].rmse.mean > 1.1 && s[0].rmse.mean < 1.2); /* global mean: ~1.154 */
    /* Surprise publishes BaselineOnly 0.944 and SVD 0.934 on ml-100k. */
    assert_true(s[1].rmse.mean >= 0.935 && s[1].rmse.mean <= 0.955);
    assert_true(s[2].rmse.mean >= 0.925 && s[2].rmse.mean <= 0.945);
    cb_dataset_free(ds);
}

/* ---- EASE and item-kNN (eval/itemrec.h) */

/* Dense binary X [n_users x n_items] of the ratings train[0..n-1]. */
static double *binary_matrix(const cb_dataset *ds, const uint32_t *train, size_t n, uint32_t nu, uint32_t ni) {
    double *X = calloc((size_t)nu * ni, sizeof *X);
    for (size_t j = 0; j < n; j++) X[(size_t)ds->ratings[train[j]].user * ni + ds->ratings[train[j]].item] = 1.0;
    return X;
}

/* Inverse of the n x n matrix A by Gauss-Jordan with partial pivoting, in double. */
static void gauss_jordan_inverse(double *inv, const double *A, int n) {
    double *M = malloc((size_t)n * 2 * n * sizeof *M);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < 2 * n; c++) M[(size_t)r * 2 * n + c] = c < n ? A[(size_t)r * n + c] : (c - n == r);
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(M[(size_t)r * 2 * n + col]) > fabs(M[(size_t)piv * 2 * n + col])) piv = r;
        for (int c = 0; c < 2 * n; c++) {
            double t = M[(size_t)col * 2 * n + c];
            M[(size_t)col * 2 * n + c] = M[(size_t)piv * 2 * n + c];
            M[(size_t)piv * 2 * n + c] = t;
        }
        double d = M[(size_t)col * 2 * n + col];
        for (int c = 0; c < 2 * n; c++) M[(size_t)col * 2 * n + c] /= d;
        for (int r = 0; r < n; r++) {
            if (r == col) continue;
            double f = M[(size_t)r * 2 * n + col];
            for (int c = 0; c < 2 * n; c++) M[(size_t)r * 2 * n + c] -= f * M[(size_t)col * 2 * n + c];
        }
    }
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) inv[(size_t)r * n + c] = M[(size_t)r * 2 * n + n + c];
    free(M);
}

/* EASE against B = I - P diag(1/diag P), P = (X^T X + lambda I)^-1 computed
 * directly over the whole catalog (an item without training interactions
 * included: its weights must come out 0), and the scores x_u . B. */
static void ease_matches_direct_inverse(void **state) {
    (void)state;
    cb_dataset *ds = tu_ds_new();
    static const char *rows[][2] = {{"u1", "a"}, {"u1", "b"}, {"u1", "c"}, {"u2", "a"}, {"u2", "c"}, {"u2", "e"},
                                    {"u3", "b"}, {"u3", "c"}, {"u4", "a"}, {"u4", "b"}, {"u4", "e"}, {"u5", "c"},
                                    {"u5", "d"}, {"u6", "d"}, {"u6", "e"}, {"u6", "a"}, {"u1", "a"}, {"u7", "f"}};
    size_t n_rows = sizeof rows / sizeof rows[0];
    for (size_t j = 0; j < n_rows; j++) tu_ds_add(ds, rows[j][0], rows[j][1], 1.0f + (float)(j % 5), 0);
    /* train: everything but the last row (u7's only rating): item f has no interaction;
     * u1's repeated "a" counts once */
    uint32_t *train = iota(n_rows - 1);
    const uint32_t nu = cb_dataset_n_users(ds), ni = cb_dataset_n_items(ds);
    const double lambda = 2.5;
    double *X = binary_matrix(ds, train, n_rows - 1, nu, ni);
    double *A = calloc((size_t)ni * ni, sizeof *A), *P = calloc((size_t)ni * ni, sizeof *P);
    for (uint32_t i = 0; i < ni; i++)
        for (uint32_t j = 0; j < ni; j++) {
            for (uint32_t u = 0; u < nu; u++) A[i * ni + j] += X[u * ni + i] * X[u * ni + j];
            if (i == j) A[i * ni + j] += lambda;
        }
    gauss_jordan_inverse(P, A, (int)ni);
    cb_itemrec_config c;
    cb_itemrec_config_default(&c, CB_ITEMREC_EASE);
    c.lambda = lambda;
    cb_itemrec *m = NULL;
    cb_error err;
    float *scores = malloc(ni * sizeof *scores);
    /* both forms (the items' Gram inverse, and the users' through Woodbury) give the same B */
    for (int form = CB_EASE_AUTO; form <= CB_EASE_USERS; form++) {
        c.ease_form = (cb_ease_form)form;
        assert_int_equal(cb_itemrec_fit(&m, &c, ds, train, n_rows - 1, &err), CB_OK);
        for (uint32_t i = 0; i < ni; i++)
            for (uint32_t j = 0; j < ni; j++) {
                double want = i == j ? 0.0 : -P[i * ni + j] / P[j * ni + j];
                assert_true(fabs(cb_itemrec_weight(m, i, j) - want) < 1e-5);
            }
        for (uint32_t u = 0; u < nu; u++) {
            assert_int_equal(cb_itemrec_score_cb(m, u, scores, ni, &err), CB_OK);
            for (uint32_t j = 0; j < ni; j++) {
                double want = 0;
                for (uint32_t i = 0; i < ni; i++)
                    if (i != j) want += X[u * ni + i] * -P[i * ni + j] / P[j * ni + j];
                assert_true(fabs(scores[j] - want) < 1e-5);
            }
        }
        assert_int_equal(cb_itemrec_score_cb(m, 0, scores, ni + 1, &err), CB_EINVAL);
        cb_itemrec_free(m);
    }
    /* bad settings */
    c.lambda = 0;
    assert_int_equal(cb_itemrec_fit(&m, &c, ds, train, n_rows - 1, &err), CB_EINVAL);
    assert_null(m);
    cb_itemrec_free(NULL);
    free(scores);
    free(X);
    free(A);
    free(P);
    free(train);
    cb_dataset_free(ds);
}

/* item-kNN against a brute-force reference on a random binary matrix:
 * shrunk cosine, the k most similar other items per item (ties to the lower
 * index, similarity > 0), user score = sum over the user's items. */
static void item_knn_matches_brute_force(void **state) {
    (void)state;
    enum { NU = 30, NI = 25, K = 4 };
    cb_dataset *ds = tu_ds_new();
    cb_rng rng;
    cb_rng_seed(&rng, 11);
    char u[16], it[16];
    for (int i = 0; i < NI; i++) snprintf(it, sizeof it, "i%d", i), tu_ds_intern(ds->items, it);
    for (int a = 0; a < NU; a++)
        for (int i = 0; i < NI; i++)
            if (cb_rng_uniform(&rng) < 0.25) {
                snprintf(u, sizeof u, "u%d", a), snprintf(it, sizeof it, "i%d", i);
                tu_ds_add(ds, u, it, 4, 0);
            }
    const uint32_t nu = cb_dataset_n_users(ds), ni = cb_dataset_n_items(ds);
    uint32_t *train = iota(ds->n_ratings);
    double *X = binary_matrix(ds, train, ds->n_ratings, nu, ni);
    const double shrink = 3.0;
    /* reference similarities, in the implementation's float arithmetic */
    float *W = calloc((size_t)ni * ni, sizeof *W);
    for (uint32_t i = 0; i < ni; i++) {
        float sim[NI];
        int used[NI] = {0};
        double ci = 0;
        for (uint32_t a = 0; a < nu; a++) ci += X[a * ni + i];
        for (uint32_t j = 0; j < ni; j++) {
            double co = 0, cj = 0;
            for (uint32_t a = 0; a < nu; a++) co += X[a * ni + i] * X[a * ni + j], cj += X[a * ni + j];
            sim[j] = (float)co / (float)((double)sqrtf((float)ci) * sqrtf((float)cj) + shrink);
        }
        used[i] = 1;
        for (int kept = 0; kept < K; kept++) { /* selection: best unused, lower index on ties */
            int best = -1;
            for (uint32_t j = 0; j < ni; j++)
                if (!used[j] && (best < 0 || sim[j] > sim[best])) best = (int)j;
            used[best] = 1;
            if (sim[best] > 0) W[i * ni + best] = sim[best];
        }
    }
    cb_itemrec_config c;
    cb_itemrec_config_default(&c, CB_ITEMREC_ITEM_KNN);
    c.knn_k = K;
    c.shrink = shrink;
    cb_itemrec *m = NULL;
    cb_error err;
    assert_int_equal(cb_itemrec_fit(&m, &c, ds, train, ds->n_ratings, &err), CB_OK);
    size_t n_kept = 0;
    for (uint32_t i = 0; i < ni; i++)
        for (uint32_t j = 0; j < ni; j++) {
            assert_true(fabsf(cb_itemrec_weight(m, i, j) - W[i * ni + j]) < 1e-6f);
            n_kept += W[i * ni + j] > 0;
        }
    assert_true(n_kept > (size_t)ni * (K - 1)); /* the matrix is dense enough to keep ~K each */
    float scores[NI];
    for (uint32_t a = 0; a < nu; a++) {
        assert_int_equal(cb_itemrec_score_cb(m, a, scores, ni, &err), CB_OK);
        for (uint32_t j = 0; j < ni; j++) {
            double want = 0;
            for (uint32_t i = 0; i < ni; i++) want += X[a * ni + i] * W[i * ni + j];
            assert_true(fabs(scores[j] - want) < 1e-5);
        }
    }
    cb_itemrec_free(m);

    /* tuning: every grid point is measured on the carve and the best one is returned */
    cb_split carve;
    assert_int_equal(cb_split_carve(&carve, ds, train, ds->n_ratings, CB_SPLIT_PER_USER, 0.3, 5, &err), CB_OK);
    cb_itemrec_config grid[3] = {c, c, c};
    grid[0].knn_k = 1, grid[1].knn_k = 3, grid[2].knn_k = 10;
    cb_topn_config topn;
    cb_topn_config_default(&topn);
    double ndcg[3], best_ndcg;
    cb_itemrec_config best;
    assert_int_equal(cb_itemrec_tune(&best, &best_ndcg, ndcg, grid, 3, ds, &carve, &topn, &err), CB_OK);
    double top = fmax(ndcg[0], fmax(ndcg[1], ndcg[2]));
    assert_true(best_ndcg == top);
    for (int g = 0; g < 3; g++) {
        cb_topn_metrics tm;
        assert_int_equal(cb_itemrec_fit(&m, &grid[g], ds, carve.train, carve.n_train, &err), CB_OK);
        assert_int_equal(cb_eval_topn(&tm, &topn, ds, &carve, cb_itemrec_score_cb, m, &err), CB_OK);
        assert_true(tm.ndcg == ndcg[g]);
        cb_itemrec_free(m);
    }
    int first_best = ndcg[0] == top ? 0 : ndcg[1] == top ? 1 : 2;
    assert_int_equal(best.knn_k, grid[first_best].knn_k);
    /* a carve that measures nothing (no held-out value reaches the threshold):
     * no figure, and the grid's first (it had read as NDCG 0, "every setting missed") */
    topn.threshold = 1e9f;
    best.knn_k = 77;
    assert_int_equal(cb_itemrec_tune(&best, &best_ndcg, ndcg, grid, 3, ds, &carve, &topn, &err), CB_OK);
    assert_true(isnan(best_ndcg) && isnan(ndcg[2]));
    assert_int_equal(best.knn_k, grid[0].knn_k);
    cb_split_free(&carve);
    free(W);
    free(X);
    free(train);
    cb_dataset_free(ds);
}

/* Two genres: items A1..A3 Action, B1..B3 Drama; A3 has no rating at all
 * (a cold item); u4 has no rating (a cold user). `flip` changes the
 * ratings (values and who rated what) but not the items' content. */
static cb_dataset *two_genres(bool flip) {
    cb_dataset *ds = tu_ds_new();
    static const char *items[6] = {"A1", "A2", "A3", "B1", "B2", "B3"};
    for (int i = 0; i < 6; i++) tu_ds_intern(ds->items, items[i]);
    tu_ds_add(ds, "u1", "A1", 5, 0);
    tu_ds_add(ds, "u1", "A2", 4, 1);
    tu_ds_add(ds, "u2", "B1", flip ? 1 : 5, 2);
    tu_ds_add(ds, "u2", "B2", 5, 3);
    tu_ds_add(ds, "u2", "A1", flip ? 5 : 1, 4);
    tu_ds_add(ds, "u3", "B1", 4, 5);
    tu_ds_add(ds, "u3", "B3", 3, 6);
    if (flip) {
        tu_ds_add(ds, "u3", "A3", 5, 7);
        tu_ds_add(ds, "u2", "B3", 2, 8);
    }
    tu_ds_intern(ds->users, "u4");
    cb_error err;
    cb_tabbuild b;
    cb_tb_init(&b, &ds->item_attr);
    int genres = cb_tb_add_col(&b, "genres", CB_COL_MULTI, &err);
    assert_true(genres >= 0);
    for (uint32_t i = 0; i < 6; i++) {
        const char *g = i < 3 ? "Action" : "Drama";
        assert_int_equal(cb_tb_add_multi_split(&b, genres, i, g, strlen(g), "|", &err), CB_OK);
    }
    assert_int_equal(cb_tb_finish(&b, 6, &err), CB_OK);
    cb_tb_release(&b);
    ds->roles.item_genres = genres;
    return ds;
}

static void content_knn_ranks_by_content(void **state) {
    (void)state;
    cb_dataset *ds = two_genres(false), *flipped = two_genres(true);
    cb_error err;
    uint32_t *train = iota(ds->n_ratings), *train_f = iota(flipped->n_ratings);
    cb_feature_config fc;
    cb_feature_config_default(&fc); /* item_stats on: the rating columns must still be left out */
    cb_contentknn *m = NULL, *mf = NULL;
    int rc = cb_contentknn_fit(&m, ds, train, ds->n_ratings, &fc, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    assert_int_equal(cb_contentknn_fit(&mf, flipped, train_f, flipped->n_ratings, &fc, &err), CB_OK);
    /* content only: two genre columns, unit rows, equal whatever the ratings */
    uint32_t dim = 0, dim_f = 0;
    assert_non_null(cb_contentknn_item_row(m, 0, &dim));
    assert_int_equal(dim, 2);
    for (uint32_t i = 0; i < 6; i++) {
        const float *x = cb_contentknn_item_row(m, i, &dim), *y = cb_contentknn_item_row(mf, i, &dim_f);
        assert_int_equal(dim, dim_f);
        assert_float_equal(x[0] * x[0] + x[1] * x[1], 1.0, 1e-6);
        assert_memory_equal(x, y, dim * sizeof *x);
    }
    assert_null(cb_contentknn_item_row(m, 6, &dim));
    /* u1 rated only Action: the unrated (and never rated) A3 beats every Drama item */
    float s[6];
    assert_int_equal(cb_contentknn_score_cb(m, 0, s, 6, &err), CB_OK);
    for (int i = 3; i < 6; i++) assert_true(s[2] > s[i] + 0.5f);
    assert_float_equal(s[2], 1.0, 1e-6);
    /* u2 liked Drama (B1, B2 at or above its mean; A1 below it) */
    assert_int_equal(cb_contentknn_score_cb(m, 1, s, 6, &err), CB_OK);
    assert_true(s[5] > s[2] + 0.5f);
    /* the cold user u4 gets the global profile: every item scored, both genres > 0 */
    assert_int_equal(cb_contentknn_score_cb(m, 3, s, 6, &err), CB_OK);
    assert_true(s[0] > 0 && s[3] > 0);
    assert_int_equal(cb_contentknn_score_cb(m, 0, s, 5, &err), CB_EINVAL);
    cb_contentknn_free(m);
    cb_contentknn_free(mf);
    free(train);
    free(train_f);
    cb_dataset_free(ds);
    cb_dataset_free(flipped);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bias_als_matches_reference),
        cmocka_unit_test(svd_matches_reference_sgd),
        cmocka_unit_test(svd_training_error_and_determinism),
        cmocka_unit_test(baselines_beat_global_mean),
        cmocka_unit_test(popularity_and_config),
        cmocka_unit_test(ml100k_folds),
        cmocka_unit_test(ease_matches_direct_inverse),
        cmocka_unit_test(item_knn_matches_brute_force),
        cmocka_unit_test(content_knn_ranks_by_content),
    };
    return cmocka_run_group_tests_name("baselines", tests, NULL, NULL);
}
