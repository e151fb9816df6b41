/* Tests for eval: RMSE/MAE, top-K selection, top-N metrics on hand-computed
 * cases (precision, recall, NDCG, MAP, hit rate and their edge cases),
 * coverage / diversity / popularity bias, fold-file mapping with file:line
 * errors, the mean / std summary over folds, recall@20 and the long-tail
 * share, and the per-user split and validation carve the harness uses. Datasets are built in
 * memory by a small helper. */
#include "testutil.h"
#include "eval/eval.h"
#include "model/train_config.h"

#include <math.h>

/* ---- in-memory datasets (testutil.h), with timestamps ---- */

static cb_dataset *tds_new(void) {
    cb_dataset *ds = tu_ds_new();
    ds->has_timestamps = true;
    return ds;
}

/* Give items "0".."n-1" (interned in that order) genre sets written as
 * strings of letters, e.g. "ab" = {a, b}; "" = none. */
static void tds_set_genres(cb_dataset *ds, const char **sets, uint32_t n_items) {
    ds->item_attr.n_rows = n_items;
    ds->item_attr.n_cols = 1;
    ds->item_attr.cols = calloc(1, sizeof *ds->item_attr.cols);
    cb_column *c = &ds->item_attr.cols[0];
    c->name = strdup("genres");
    c->kind = CB_COL_MULTI;
    c->levels = cb_vocab_create(NULL);
    c->off = calloc(n_items + 1, sizeof *c->off);
    size_t total = 0;
    for (uint32_t i = 0; i < n_items; i++) total += strlen(sets[i]);
    c->val = calloc(total + 1, sizeof *c->val);
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        for (const char *g = sets[i]; *g; g++) {
            uint32_t lvl;
            assert_int_equal(cb_vocab_intern(c->levels, g, 1, &lvl, NULL, NULL), CB_OK);
            c->val[n++] = lvl;
        }
        c->off[i + 1] = n;
    }
    ds->roles.item_genres = 0;
}

static void items_0_to(cb_dataset *ds, int n) {
    char id[16];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%d", i);
        tu_ds_intern(ds->items, id);
    }
}

/* ---- rating metrics ---- */

static float pred_const(void *ctx, uint32_t user, uint32_t item) {
    (void)user;
    (void)item;
    return *(const float *)ctx;
}

static void rating_rmse_mae(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    uint32_t test[3];
    test[0] = tu_ds_add(ds, "u", "a", 1, 0);
    test[1] = tu_ds_add(ds, "u", "b", 3, 0);
    test[2] = tu_ds_add(ds, "v", "a", 5, 0);
    cb_rating_metrics m;
    cb_error err;
    float c = 3.0f;
    assert_int_equal(cb_eval_rating(&m, ds, test, 3, pred_const, &c, &err), CB_OK);
    /* errors -2, 0, 2 */
    assert_true(fabs(m.rmse - sqrt(8.0 / 3.0)) < 1e-12);
    assert_true(fabs(m.mae - 4.0 / 3.0) < 1e-12);
    assert_int_equal(m.n, 3);

    float pred[3] = {1.5f, 3.0f, 4.0f}; /* errors 0.5, 0, -1 */
    assert_int_equal(cb_eval_rating_batch(&m, ds, test, 3, pred, &err), CB_OK);
    assert_true(fabs(m.rmse - sqrt(1.25 / 3.0)) < 1e-7);
    assert_true(fabs(m.mae - 0.5) < 1e-7);

    pred[1] = NAN;
    assert_int_equal(cb_eval_rating_batch(&m, ds, test, 3, pred, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "non-finite"));
    uint32_t bad = 99;
    assert_int_equal(cb_eval_rating(&m, ds, &bad, 1, pred_const, &c, &err), CB_EINVAL);
    assert_int_equal(cb_eval_rating(&m, ds, test, 0, pred_const, &c, &err), CB_EINVAL);
    cb_dataset_free(ds);
}

/* ---- top-K selection ---- */

static void top_k_ties_nan_exclusion(void **state) {
    (void)state;
    float s[7] = {0.5f, NAN, 0.9f, 0.5f, 0.9f, -INFINITY, 0.7f};
    uint32_t out[7];
    assert_int_equal(cb_eval_top_k(out, 4, s, 7, NULL, 0), 4);
    uint32_t want[4] = {2, 4, 6, 0};
    for (int r = 0; r < 4; r++) assert_int_equal(out[r], want[r]);

    assert_int_equal(cb_eval_top_k(out, 7, s, 7, NULL, 0), 7);
    uint32_t want_all[7] = {2, 4, 6, 0, 3, 5, 1}; /* NaN last, after -inf */
    for (int r = 0; r < 7; r++) assert_int_equal(out[r], want_all[r]);

    uint32_t excl[7] = {0, 0, 3, 0, 0, 0, 3};
    assert_int_equal(cb_eval_top_k(out, 3, s, 7, excl, 3), 3);
    uint32_t want_ex[3] = {4, 0, 3};
    for (int r = 0; r < 3; r++) assert_int_equal(out[r], want_ex[r]);
    assert_int_equal(cb_eval_top_k(out, 0, s, 7, NULL, 0), 0);
    /* fewer candidates than k */
    assert_int_equal(cb_eval_top_k(out, 10, s, 3, NULL, 0), 3);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[2], 1);
}

/* Scores per user from a table [n_users][n_items]. */
typedef struct table_scorer {
    const float *scores;
    uint32_t n_items;
    int calls;
} table_scorer;

static int score_table(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    (void)err;
    table_scorer *t = ctx;
    assert_int_equal(n_items, t->n_items);
    memcpy(scores, t->scores + (size_t)user * n_items, n_items * sizeof *scores);
    t->calls++;
    return CB_OK;
}

#define NEAR(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-9)

/* Three users over six items, K = 3.
 * u0: train {5}; test 0:5, 2:4, 3:2 -> relevant {0, 2}. Scores rank
 *     5 (excluded), 1, 2, 3, 4, 0 -> list [1, 2, 3]: one hit at rank 2.
 *     P = 1/3, R = 1/2, DCG = 1/log2 3, IDCG = 1 + 1/log2 3, AP = (1/2)/2.
 * u1: test 4:2 only -> skipped.
 * u2: train {1}; test 4:4 -> relevant {4}; list [4, 0, 2]: hit at rank 1.
 *     P = 1/3, R = 1, NDCG = 1, AP = 1. */
/* Three users over six items, the lists a hand can check: u0 trains on 5
 * and holds out 0 (5), 2 (4), 3 (2); u1 holds out 4 (2) alone, nothing
 * relevant at threshold 4; u2 trains on 1 and holds out 4 (4). */
static const float hand_scores[3 * 6] = {
    0.1f, 0.9f, 0.8f, 0.7f, 0.2f, 1.0f, /* u0 */
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, /* u1 */
    0.8f, 0.9f, 0.7f, 0.1f, 1.0f, 0.2f, /* u2: 1 is excluded */
};

static cb_dataset *hand_data(uint32_t train[2], uint32_t test[5]) {
    cb_dataset *ds = tds_new();
    items_0_to(ds, 6);
    train[0] = tu_ds_add(ds, "u0", "5", 3, 0);
    test[0] = tu_ds_add(ds, "u0", "0", 5, 0);
    test[1] = tu_ds_add(ds, "u0", "2", 4, 0);
    test[2] = tu_ds_add(ds, "u0", "3", 2, 0);
    test[3] = tu_ds_add(ds, "u1", "4", 2, 0);
    train[1] = tu_ds_add(ds, "u2", "1", 5, 0);
    test[4] = tu_ds_add(ds, "u2", "4", 4, 0);
    return ds;
}

static void topn_hand_computed(void **state) {
    (void)state;
    uint32_t train[2], test[5];
    cb_dataset *ds = hand_data(train, test);
    cb_split split = {train, test, 2, 5};
    table_scorer ts = {hand_scores, 6, 0};
    cb_topn_config cfg;
    cb_topn_config_default(&cfg);
    assert_int_equal(cfg.k, 10);
    assert_true(cfg.threshold == 4.0f);
    cfg.k = 3;
    cb_topn_metrics m;
    cb_error err;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    assert_int_equal(ts.calls, 3); /* u1 still gets a list (beyond-accuracy) */
    assert_int_equal(m.n_users_evaluated, 2);
    assert_int_equal(m.n_users_skipped, 1);
    double l3 = 1.0 / log2(3.0);
    NEAR(m.precision, 1.0 / 3.0);
    NEAR(m.recall, (0.5 + 1.0) / 2.0);
    NEAR(m.ndcg, (l3 / (1.0 + l3) + 1.0) / 2.0);
    NEAR(m.map, (0.25 + 1.0) / 2.0);
    NEAR(m.hit_rate, 1.0);
    /* lists: u0 [1,2,3], u1 [0,1,2], u2 [4,0,2] -> items {0,1,2,3,4} of 6 */
    NEAR(m.coverage, 5.0 / 6.0);
    assert_int_equal(m.n_recommended, 9);
    /* popularity = training counts: item 5 -> 1, item 1 -> 1, others 0.
     * recommended slots: item 1 twice (u0, u1) -> 2 / 9; rated: items 5 and 1 -> 1. */
    NEAR(m.pop_recommended, 2.0 / 9.0);
    NEAR(m.pop_rated, 1.0);
    NEAR(m.pop_ratio, 2.0 / 9.0);
    assert_true(isnan(m.diversity)); /* no genre column */

    /* K = 1: u0's top item 1 is not relevant; u2's top item 4 is. */
    cfg.k = 1;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    NEAR(m.precision, 0.5);
    NEAR(m.recall, (0.0 + 1.0) / 2.0);
    NEAR(m.ndcg, 0.5);
    NEAR(m.map, 0.5);
    NEAR(m.hit_rate, 0.5);

    /* new items only (the cold-items protocol): items 1 and 5 have training
     * ratings and leave every list, so u0's top is 2 (relevant) and u2's is 4. */
    cfg.new_items_only = true;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    NEAR(m.precision, 1.0);
    NEAR(m.hit_rate, 1.0);
    cfg.new_items_only = false;

    /* threshold 5: u0 relevant {0}, u2 none -> skipped. u0 list [1,2,3] misses. */
    cfg.k = 3;
    cfg.threshold = 5.0f;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    assert_int_equal(m.n_users_evaluated, 1);
    assert_int_equal(m.n_users_skipped, 2);
    NEAR(m.precision, 0.0);
    NEAR(m.ndcg, 0.0);
    NEAR(m.hit_rate, 0.0);

    /* bad config */
    cfg.k = 0;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_EINVAL);
    /* an index past the ratings: an error naming it, and nothing freed twice (ASan) */
    cfg.k = 3;
    uint32_t bad_test[1] = {(uint32_t)ds->n_ratings};
    cb_split bad = {train, bad_test, 2, 1};
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &bad, score_table, &ts, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "test index"));
    bad = (cb_split){bad_test, test, 1, 5};
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &bad, score_table, &ts, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "train index"));
    cb_dataset_free(ds);
}

/* Each evaluated user's NDCG@K kept (NAN for the others), and two rows
 * compared user by user: the mean of the differences over the users with a
 * figure in both, and its paired standard error, by hand. */
static void topn_per_user_and_paired_comparison(void **state) {
    (void)state;
    uint32_t train[2], test[5];
    cb_dataset *ds = hand_data(train, test);
    cb_split split = {train, test, 2, 5};
    table_scorer ts = {hand_scores, 6, 0};
    cb_topn_config cfg;
    cb_topn_config_default(&cfg);
    cfg.k = 3;
    double mine[3] = {-1, -1, -1};
    cfg.user_ndcg = mine;
    cb_topn_metrics m;
    cb_error err;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    double l3 = 1.0 / log2(3.0);
    NEAR(mine[0], l3 / (1.0 + l3)); /* u0: [1, 2, 3], relevant {0, 2} */
    assert_true(isnan(mine[1]));
    NEAR(mine[2], 1.0); /* u2: [4, 0, 2], relevant {4} */
    NEAR(m.ndcg, (mine[0] + mine[2]) / 2);

    cb_eval_result r, ref;
    cb_eval_result_init(&r, "cbrec", 0);
    cb_eval_result_init(&ref, "ease", 0);
    assert_true(isnan(r.vs_ndcg_diff) && isnan(r.vs_ndcg_se) && !r.vs_model[0]);
    const double a[4] = {0.5, NAN, 1.0, 0.2}, b[4] = {0.25, 0.3, 0.5, NAN};
    cb_eval_compare(&r, a, &ref, b, 4); /* differences 0.25 and 0.5 */
    assert_string_equal(r.vs_model, "ease");
    assert_int_equal(r.vs_users, 2);
    NEAR(r.vs_ndcg_diff, 0.375);
    NEAR(r.vs_ndcg_se, sqrt((0.125 * 0.125 * 2) / 1.0) / sqrt(2.0)); /* sample sd / sqrt n = 0.125 */
    cb_eval_compare(&r, a, &ref, b, 1); /* one user: a difference, no standard error */
    assert_int_equal(r.vs_users, 1);
    NEAR(r.vs_ndcg_diff, 0.25);
    assert_true(isnan(r.vs_ndcg_se));

    /* over splits, clustered by user: user 0 in two splits (differences 0.1 and 0.3), user 1 in one (0.5),
     * user 2 in none; mean 0.9 / 3 = 0.3; residual sums 0.4 - 2 x 0.3 = -0.2 and 0.5 - 0.3 = 0.2, so
     * se = sqrt(2 / 1 x 0.08) / 3 */
    const double sum[3] = {0.4, 0.5, 0};
    const uint32_t count[3] = {2, 1, 0};
    double d, se;
    size_t users, pairs;
    cb_eval_compare_clustered(&d, &se, &users, &pairs, sum, count, 3);
    assert_int_equal(users, 2);
    assert_int_equal(pairs, 3);
    NEAR(d, 0.3);
    NEAR(se, sqrt(2.0 * 0.08) / 3.0);
    /* one split each: the paired standard error itself */
    const double one_each[2] = {0.25, 0.5};
    const uint32_t ones[2] = {1, 1};
    cb_eval_compare_clustered(&d, &se, &users, &pairs, one_each, ones, 2);
    NEAR(d, 0.375);
    NEAR(se, 0.125);
    cb_dataset_free(ds);
}

/* A scorer that scores every candidate of every evaluated user alike (a
 * popularity count over items nobody rated, EASE for users without
 * history) does not rank: its lists are the catalog's order. Its accuracy
 * is NAN, not the id order's figures; one user ranked is enough for figures. */
static void topn_tied_scores_do_not_rank(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    items_0_to(ds, 4);
    uint32_t train[2], test[2];
    train[0] = tu_ds_add(ds, "u0", "3", 5, 0);
    test[0] = tu_ds_add(ds, "u0", "0", 5, 0); /* item 0: first in id order, a hit at rank 1 */
    train[1] = tu_ds_add(ds, "u1", "2", 5, 0);
    test[1] = tu_ds_add(ds, "u1", "0", 4, 0);
    cb_split split = {train, test, 2, 2};
    float scores[2 * 4] = {
        0.5f, 0.5f, 0.5f, 9.0f, /* u0: item 3 (its training item) differs, the candidates tie */
        1.0f, 1.0f, 7.0f, 1.0f, /* u1: item 2 excluded, the rest tie */
    };
    table_scorer ts = {scores, 4, 0};
    cb_topn_config cfg;
    cb_topn_config_default(&cfg);
    cfg.k = 2;
    cb_topn_metrics m;
    cb_error err;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    assert_int_equal(m.n_users_evaluated, 2);
    assert_int_equal(m.n_users_tied, 2);
    assert_true(isnan(m.ndcg) && isnan(m.precision) && isnan(m.recall) && isnan(m.map) && isnan(m.hit_rate));
    assert_true(isnan(m.recall_at));
    NEAR(m.coverage, 2.0 / 4.0); /* the lists are still shown: [0, 1] for both */
    /* u1 ranked: figures, over both users */
    scores[4 + 1] = 2.0f;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    assert_int_equal(m.n_users_tied, 1);
    NEAR(m.hit_rate, 1.0);
    NEAR(m.ndcg, (1.0 + 1.0 / log2(3.0)) / 2.0);
    cb_dataset_free(ds);
}

/* A caller-given list per user: lists[user] with lens[user] entries. */
typedef struct fixed_lists {
    const uint32_t *lists; /* [n_users][max] */
    const uint32_t *lens;
    uint32_t max;
} fixed_lists;

static int list_fixed(void *ctx, uint32_t user, uint32_t k, uint32_t *items, uint32_t *n_out,
                      cb_error *err) {
    (void)err;
    const fixed_lists *f = ctx;
    uint32_t n = f->lens[user] < k ? f->lens[user] : k;
    memcpy(items, f->lists + (size_t)user * f->max, n * sizeof *items);
    *n_out = n;
    return CB_OK;
}

/* Textbook NDCG and AP: relevance [1,0,1,0,0] with 3 relevant items, K = 5.
 * DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) + 1/2, NDCG = 0.703918...
 * AP = (1/1 + 2/3) / 3 = 0.5556. Also: a short list (precision still / K),
 * duplicates counted once, and more relevant items than K (ideal = K). */
static void topn_lists_known_values(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    items_0_to(ds, 10);
    uint32_t train[1], test[9];
    train[0] = tu_ds_add(ds, "a", "9", 4, 0);
    test[0] = tu_ds_add(ds, "a", "0", 5, 0);
    test[1] = tu_ds_add(ds, "a", "2", 4, 0);
    test[2] = tu_ds_add(ds, "a", "7", 4.5f, 0); /* relevant, never recommended */
    /* user b: six relevant items 0..5, list [0,1,2,3,4] -> all hits, K = 5 */
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        test[3 + i] = tu_ds_add(ds, "b", id, 5, 0);
    }
    cb_split split = {train, test, 1, 9};
    const uint32_t lists[2 * 5] = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4};
    const uint32_t lens[2] = {5, 5};
    fixed_lists f = {lists, lens, 5};
    cb_topn_config cfg = {5, 4.0f, 0, false, NULL};
    cb_topn_metrics m;
    cb_error err;
    assert_int_equal(cb_eval_topn_lists(&m, &cfg, ds, &split, list_fixed, &f, &err), CB_OK);
    assert_int_equal(m.n_users_evaluated, 2);
    double ndcg_a = 1.5 / (1.0 + 1.0 / log2(3.0) + 0.5);
    assert_true(fabs(ndcg_a - 0.7039180890341347) < 1e-12);
    NEAR(m.ndcg, (ndcg_a + 1.0) / 2.0);
    NEAR(m.map, ((1.0 + 2.0 / 3.0) / 3.0 + 1.0) / 2.0);
    NEAR(m.precision, (2.0 / 5.0 + 1.0) / 2.0);
    NEAR(m.recall, (2.0 / 3.0 + 5.0 / 6.0) / 2.0);

    /* short list with a duplicate: a gets [0, 0] -> one hit, P = 1/5, AP = 1/3. */
    const uint32_t lists2[2 * 5] = {0, 0, 0, 0, 0, 5, 4, 3, 2, 1};
    const uint32_t lens2[2] = {2, 5};
    fixed_lists f2 = {lists2, lens2, 5};
    assert_int_equal(cb_eval_topn_lists(&m, &cfg, ds, &split, list_fixed, &f2, &err), CB_OK);
    NEAR(m.precision, (1.0 / 5.0 + 1.0) / 2.0);
    NEAR(m.recall, (1.0 / 3.0 + 5.0 / 6.0) / 2.0);
    NEAR(m.map, (1.0 / 3.0 + 1.0) / 2.0);
    NEAR(m.ndcg, (1.0 / (1.0 + 1.0 / log2(3.0) + 0.5) + 1.0) / 2.0);
    NEAR(m.coverage, 6.0 / 10.0);
    assert_int_equal(m.n_recommended, 7);

    /* an item outside the catalog is an error */
    const uint32_t lists3[2 * 5] = {42, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    fixed_lists f3 = {lists3, lens, 5};
    assert_int_equal(cb_eval_topn_lists(&m, &cfg, ds, &split, list_fixed, &f3, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "item 42"));
    cb_dataset_free(ds);
}

/* Diversity: genres 0:{a,b} 1:{a} 2:{c} 3:{} 4:{}. User x gets [0,1,2]:
 * d(0,1) = 1 - 1/2, d(0,2) = 1, d(1,2) = 1 -> mean 5/6. User y gets [3,4]:
 * two genre-less items -> 0. Diversity = (5/6 + 0) / 2. */
static void topn_diversity_jaccard(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    items_0_to(ds, 5);
    const char *sets[5] = {"ab", "a", "c", "", ""};
    tds_set_genres(ds, sets, 5);
    uint32_t train[1], test[2];
    train[0] = tu_ds_add(ds, "x", "4", 3, 0);
    test[0] = tu_ds_add(ds, "x", "1", 5, 0);
    test[1] = tu_ds_add(ds, "y", "1", 1, 0); /* y is skipped but still listed */
    cb_split split = {train, test, 1, 2};
    const uint32_t lists[2 * 3] = {0, 1, 2, 3, 4, 0};
    const uint32_t lens[2] = {3, 2};
    fixed_lists f = {lists, lens, 3};
    cb_topn_config cfg = {3, 4.0f, 0, false, NULL};
    cb_topn_metrics m;
    cb_error err;
    assert_int_equal(cb_eval_topn_lists(&m, &cfg, ds, &split, list_fixed, &f, &err), CB_OK);
    NEAR(m.diversity, (5.0 / 6.0 + 0.0) / 2.0);
    assert_int_equal(m.n_users_evaluated, 1);
    assert_int_equal(m.n_users_skipped, 1);
    NEAR(m.coverage, 1.0);
    /* popularity: item 4 rated once in training; slots 0,1,2,3,4 -> 1/5; rated by x: item 4 -> 1 */
    NEAR(m.pop_recommended, 0.2);
    NEAR(m.pop_rated, 1.0);
    /* a catalog of tags, no genre column: the tags' sets (it was NAN: no diversity on a shop's data) */
    free(ds->item_attr.cols[0].name);
    ds->item_attr.cols[0].name = strdup("tags");
    ds->roles.item_genres = -1;
    assert_int_equal(cb_eval_diversity_column(ds), 0);
    assert_int_equal(cb_eval_topn_lists(&m, &cfg, ds, &split, list_fixed, &f, &err), CB_OK);
    NEAR(m.diversity, (5.0 / 6.0 + 0.0) / 2.0);
    cb_dataset_free(ds);
}

/* ---- fold files ---- */

static void split_from_files(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    uint32_t r0 = tu_ds_add(ds, "1", "10", 5, 100);
    uint32_t r1 = tu_ds_add(ds, "1", "20", 3, 101);
    uint32_t r2 = tu_ds_add(ds, "2", "10", 4, 102);
    uint32_t r3 = tu_ds_add(ds, "3", "30", 1, 103);
    char *dir = tu_tmpdir();
    char *base = tu_write(dir, "u1.base", "2\t10\t4\t102\n1\t10\t5\t100\n");
    char *test = tu_write(dir, "u1.test", "3\t30\t1\t103\n1\t20\t3\t101\n");
    cb_split s;
    cb_error err;
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, test, &err), CB_OK);
    assert_int_equal(s.n_train, 2);
    assert_int_equal(s.n_test, 2);
    assert_int_equal(s.train[0], r2);
    assert_int_equal(s.train[1], r0);
    assert_int_equal(s.test[0], r3);
    assert_int_equal(s.test[1], r1);
    free(s.train);
    free(s.test);
    /* timestamps written as the data may write them: ISO 8601 (103 s after 1970) */
    char *iso = tu_write(dir, "iso.test", "3\t30\t1\t1970-01-01T00:01:43Z\n1\t20\t3\t101\n");
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, iso, &err), CB_OK);
    assert_int_equal(s.n_test, 2);
    assert_int_equal(s.test[0], r3);
    free(s.train);
    free(s.test);
    free(iso);

    /* a row not in the dataset: the message names file and line */
    char *bad = tu_write(dir, "bad.test", "3\t30\t1\t103\n1\t30\t4\t104\n");
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, bad, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "bad.test:2"));
    assert_null(s.train);
    /* an unknown user */
    char *bad2 = tu_write(dir, "bad2.test", "9\t30\t1\t103\n");
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, bad2, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "bad2.test:1"));
    assert_non_null(strstr(err.msg, "user '9'"));
    /* a different rating value */
    char *bad3 = tu_write(dir, "bad3.test", "3\t30\t2\t103\n");
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, bad3, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "bad3.test:1"));
    /* the same rating in base and test */
    char *bad4 = tu_write(dir, "bad4.test", "1\t10\t5\t100\n");
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, bad4, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "bad4.test:1"));
    assert_non_null(strstr(err.msg, "already used"));
    /* too few fields */
    char *bad5 = tu_write(dir, "bad5.test", "3\t30\t1\t103\n\n3\t30\n");
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, bad5, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "bad5.test:3"));
    /* a comma-separated line: one field, and the message says the fields are tab-separated */
    char *bad6 = tu_write(dir, "bad6.test", "3,30,1,103\n");
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, bad6, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "bad6.test:1: expected tab-separated user, item, rating"));
    /* missing file */
    assert_int_equal(cb_eval_split_from_files(&s, ds, base, "/nonexistent/u1.test", &err), CB_EIO);
    tu_rmrf(dir);
    free(dir);
    free(base);
    free(test);
    free(bad);
    free(bad2);
    free(bad3);
    free(bad4);
    free(bad5);
    free(bad6);
    cb_dataset_free(ds);
}

/* ---- results over folds ---- */

static void stats_and_summary(void **state) {
    (void)state;
    double v[5] = {1.0, 2.0, NAN, 3.0, 4.0};
    cb_eval_stat s = cb_eval_stat_of(v, 5);
    assert_int_equal(s.n, 4);
    NEAR(s.mean, 2.5);
    NEAR(s.std, sqrt(1.25)); /* population std */
    s = cb_eval_stat_of(v + 2, 1);
    assert_int_equal(s.n, 0);
    assert_true(isnan(s.mean));

    cb_eval_result r[4];
    const double rmse[4] = {0.95, 0.5, 0.93, 0.94};
    for (int j = 0; j < 4; j++) {
        cb_eval_result_init(&r[j], j == 1 ? "mean" : "bias", j + 1);
        r[j].rating.rmse = rmse[j];
    }
    r[0].has_topn = true;
    r[0].topn.ndcg = 0.2;
    r[2].has_topn = true;
    r[2].topn.ndcg = 0.4;
    r[2].topn.diversity = NAN;
    r[0].topn.diversity = 0.5;
    cb_eval_summary sum;
    cb_error err;
    assert_int_equal(cb_eval_summarize(&sum, r, 4, "bias", &err), CB_OK);
    assert_int_equal(sum.n_folds, 3);
    NEAR(sum.rmse.mean, 0.94);
    NEAR(sum.rmse.std, sqrt(((0.01 * 0.01) + 0 + (0.01 * 0.01)) / 3.0));
    assert_true(isnan(sum.mae.mean));
    assert_int_equal(sum.ndcg.n, 2);
    NEAR(sum.ndcg.mean, 0.3);
    assert_int_equal(sum.diversity.n, 1);
    assert_int_equal(cb_eval_summarize(&sum, r, 4, NULL, &err), CB_OK);
    assert_int_equal(sum.n_folds, 4);
    assert_int_equal(cb_eval_summarize(&sum, r, 4, "svd", &err), CB_ENOTFOUND);
}

/* recall@20 beside the @10 figures, and the long-tail share, by hand.
 * Training counts: item 0: 5, item 1: 3, items 2 and 3: 1 (10 in all), so
 * the head (80 % = 8 interactions) is {0, 1}. User u (no training rating)
 * has relevant held-out items 5, 15, 25 and is ranked 0, 5, 1, 2, 3, 4, 6,
 * 7, ...: hit at rank 2 within 10, at ranks 2 and 16 within 20. */
typedef struct asked_list {
    const float *scores;
    uint32_t asked;
} asked_list;

static int list_by_scores(void *ctx, uint32_t user, uint32_t k, uint32_t *items, uint32_t *n_out, cb_error *err) {
    (void)user, (void)err;
    asked_list *a = ctx;
    a->asked = k;
    *n_out = cb_eval_top_k(items, k, a->scores, 30, NULL, 0);
    return CB_OK;
}

static void topn_recall_at_and_long_tail(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    items_0_to(ds, 30);
    uint32_t train[10], test[4];
    const char *users[5] = {"t1", "t2", "t3", "t4", "t5"};
    size_t n = 0;
    for (int a = 0; a < 5; a++) train[n++] = tu_ds_add(ds, users[a], "0", 3, 0);
    for (int a = 0; a < 3; a++) train[n++] = tu_ds_add(ds, users[a], "1", 3, 0);
    train[n++] = tu_ds_add(ds, "t1", "2", 3, 0);
    train[n++] = tu_ds_add(ds, "t2", "3", 3, 0);
    test[0] = tu_ds_add(ds, "u", "5", 5, 0);
    test[1] = tu_ds_add(ds, "u", "15", 4, 0);
    test[2] = tu_ds_add(ds, "u", "25", 4, 0);
    test[3] = tu_ds_add(ds, "u", "7", 2, 0);
    cb_split split = {train, test, 10, 4};
    uint32_t u = (uint32_t)cb_vocab_find(ds->users, "u", 1);
    float scores[6 * 30] = {0};
    for (int i = 0; i < 30; i++) scores[u * 30 + i] = 30.0f - (float)i;
    scores[u * 30 + 5] = 29.5f;
    table_scorer ts = {scores, 30, 0};
    cb_topn_config cfg;
    cb_topn_config_default(&cfg);
    assert_int_equal(cfg.recall_k, 20);
    cb_topn_metrics m;
    cb_error err;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    assert_int_equal(m.n_users_evaluated, 1);
    assert_int_equal(m.recall_k, 20);
    NEAR(m.recall, 1.0 / 3.0);
    NEAR(m.recall_at, 2.0 / 3.0);
    double l3 = 1.0 / log2(3.0);
    NEAR(m.ndcg, l3 / (1.0 + l3 + 0.5));
    NEAR(m.precision, 0.1);
    /* beyond accuracy over the top 10 only: {0, 5, 1, 2, 3, 4, 6, 7, 8, 9} */
    assert_int_equal(m.n_recommended, 10);
    NEAR(m.coverage, 10.0 / 30.0);
    NEAR(m.long_tail, 8.0 / 10.0);
    NEAR(m.pop_recommended, (5.0 + 3.0 + 1.0 + 1.0) / 10.0);
    /* the same through a list callback: asked for max(K, recall_k) items */
    asked_list al = {scores + u * 30, 0};
    cb_topn_metrics ml;
    assert_int_equal(cb_eval_topn_lists(&ml, &cfg, ds, &split, list_by_scores, &al, &err), CB_OK);
    assert_int_equal(al.asked, 20);
    NEAR(ml.recall_at, m.recall_at);
    NEAR(ml.ndcg, m.ndcg);
    NEAR(ml.long_tail, m.long_tail);
    /* recall_k 0: not measured; recall_k below K: recall@5 */
    cfg.recall_k = 0;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    assert_true(isnan(m.recall_at));
    NEAR(m.recall, 1.0 / 3.0);
    cfg.recall_k = 1;
    assert_int_equal(cb_eval_topn(&m, &cfg, ds, &split, score_table, &ts, &err), CB_OK);
    NEAR(m.recall_at, 0.0);
    NEAR(m.recall, 1.0 / 3.0);
    cb_dataset_free(ds);
}

/* The carve under a temporal split: within the given training ratings,
 * each user's latest (by time, then file order), ceil(frac * n_u) of them
 * and never all; ratings outside the training part play no part. */
static void temporal_carve_latest_per_user(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    char u[8], it[8];
    uint32_t train[200];
    uint8_t in_train[200] = {0};
    size_t n_train = 0;
    for (int a = 1; a <= 9; a++) /* user a: 2a ratings at scrambled times; every other one is training */
        for (int i = 0; i < 2 * a; i++) {
            snprintf(u, sizeof u, "u%d", a), snprintf(it, sizeof it, "i%d", i);
            uint32_t r = tu_ds_add(ds, u, it, 3, (uint32_t)(1000 + (i * 7919) % 97));
            if (i % 2 == 0) train[n_train++] = r, in_train[r] = 1;
        }
    cb_split v;
    cb_error err;
    assert_int_equal(cb_split_carve(&v, ds, train, n_train, CB_SPLIT_TEMPORAL, 0.3, 4, &err), CB_OK);
    assert_int_equal(v.n_train + v.n_test, n_train);
    for (uint32_t x = 0; x < cb_dataset_n_users(ds); x++) {
        uint32_t n_kept = 0, n_carved = 0, latest_kept = 0, earliest_carved = UINT32_MAX;
        for (size_t j = 0; j < v.n_train; j++)
            if (ds->ratings[v.train[j]].user == x) {
                n_kept++;
                if (ds->ratings[v.train[j]].ts > latest_kept) latest_kept = ds->ratings[v.train[j]].ts;
            }
        for (size_t j = 0; j < v.n_test; j++)
            if (ds->ratings[v.test[j]].user == x) {
                n_carved++;
                assert_true(in_train[v.test[j]]);
                if (ds->ratings[v.test[j]].ts < earliest_carved) earliest_carved = ds->ratings[v.test[j]].ts;
            }
        uint32_t n_u = n_kept + n_carved, want = (uint32_t)ceil(0.3 * n_u - 1e-9);
        assert_int_equal(n_carved, n_u < 2 ? 0 : want < n_u ? want : n_u - 1);
        if (n_carved) assert_true(earliest_carved >= latest_kept);
    }
    cb_split_free(&v);
    cb_dataset_free(ds);
    /* which carve the tunings and --valid-frac cut: temporal under a temporal split only */
    assert_int_equal(cb_train_carve_kind(CB_TRAIN_SPLIT_TEMPORAL, CB_SPLIT_PER_USER), CB_SPLIT_TEMPORAL);
    assert_int_equal(cb_train_carve_kind(CB_TRAIN_SPLIT_TEMPORAL, CB_SPLIT_RANDOM), CB_SPLIT_TEMPORAL);
    assert_int_equal(cb_train_carve_kind(CB_TRAIN_SPLIT_PER_USER, CB_SPLIT_PER_USER), CB_SPLIT_PER_USER);
    assert_int_equal(cb_train_carve_kind(CB_TRAIN_SPLIT_RANDOM, CB_SPLIT_RANDOM), CB_SPLIT_RANDOM);
    assert_int_equal(cb_train_carve_kind(CB_TRAIN_SPLIT_NONE, CB_SPLIT_RANDOM), CB_SPLIT_RANDOM);
}

/* The per-user random split and the validation carve (data/split.c). */
static void per_user_split_and_carve(void **state) {
    (void)state;
    cb_dataset *ds = tds_new();
    char u[8], it[8];
    /* user a has a ratings (1..12), plus one user with a single rating */
    for (int a = 1; a <= 12; a++)
        for (int i = 0; i < a; i++) {
            snprintf(u, sizeof u, "u%d", a), snprintf(it, sizeof it, "i%d", (i * 7 + a) % 40);
            tu_ds_add(ds, u, it, 3, 0);
        }
    const uint32_t nu = cb_dataset_n_users(ds);
    cb_split a, b, c;
    cb_error err;
    assert_int_equal(cb_split_make(&a, ds, CB_SPLIT_PER_USER, 0.25, 9, &err), CB_OK);
    assert_int_equal(cb_split_make(&b, ds, CB_SPLIT_PER_USER, 0.25, 9, &err), CB_OK);
    assert_int_equal(cb_split_make(&c, ds, CB_SPLIT_PER_USER, 0.25, 10, &err), CB_OK);
    assert_int_equal(a.n_train + a.n_test, ds->n_ratings);
    assert_int_equal(a.n_test, b.n_test);
    assert_memory_equal(a.test, b.test, a.n_test * sizeof *a.test);
    bool differs = a.n_test != c.n_test || memcmp(a.test, c.test, a.n_test * sizeof *a.test);
    assert_true(differs); /* another seed draws other ratings */
    uint32_t n_tr[16] = {0}, n_te[16] = {0};
    for (size_t j = 0; j < a.n_train; j++) n_tr[ds->ratings[a.train[j]].user]++;
    for (size_t j = 0; j < a.n_test; j++) n_te[ds->ratings[a.test[j]].user]++;
    for (uint32_t x = 0; x < nu; x++) {
        uint32_t n_u = n_tr[x] + n_te[x];
        assert_true(n_tr[x] >= 1); /* every user keeps a training rating */
        uint32_t want = (uint32_t)llround(0.25 * n_u);
        assert_int_equal(n_te[x], want < n_u ? want : n_u - 1);
    }
    assert_string_equal(cb_split_kind_name(CB_SPLIT_PER_USER), "per-user");

    /* carves of a.train: disjoint, together exactly a.train, deterministic */
    for (int kind = 0; kind < 2; kind++) {
        cb_split_kind k = kind ? CB_SPLIT_PER_USER : CB_SPLIT_RANDOM;
        cb_split v1, v2;
        assert_int_equal(cb_split_carve(&v1, ds, a.train, a.n_train, k, 0.3, 4, &err), CB_OK);
        assert_int_equal(cb_split_carve(&v2, ds, a.train, a.n_train, k, 0.3, 4, &err), CB_OK);
        assert_int_equal(v1.n_train + v1.n_test, a.n_train);
        assert_true(v1.n_test > 0);
        assert_int_equal(v1.n_test, v2.n_test);
        assert_memory_equal(v1.test, v2.test, v1.n_test * sizeof *v1.test);
        assert_memory_equal(v1.train, v2.train, v1.n_train * sizeof *v1.train);
        uint8_t seen[200] = {0};
        for (size_t j = 0; j < a.n_train; j++) seen[a.train[j]] = 1;
        for (size_t j = 0; j < v1.n_train; j++) assert_int_equal(seen[v1.train[j]]++, 1);
        for (size_t j = 0; j < v1.n_test; j++) assert_int_equal(seen[v1.test[j]]++, 1);
        if (k == CB_SPLIT_RANDOM) {
            /* `cbrec train`'s carve: shuffle with seed ^ 0x5eed5eed, the first 30 % validate */
            uint32_t *perm = malloc(a.n_train * sizeof *perm);
            memcpy(perm, a.train, a.n_train * sizeof *perm);
            cb_rng rng;
            cb_rng_seed(&rng, 4 ^ 0x5eed5eedULL);
            cb_rng_shuffle_u32(&rng, perm, a.n_train);
            size_t nv = (size_t)(0.3 * (double)a.n_train);
            assert_int_equal(v1.n_test, nv);
            assert_memory_equal(v1.test, perm, nv * sizeof *perm);
            assert_memory_equal(v1.train, perm + nv, (a.n_train - nv) * sizeof *perm);
            free(perm);
        } else {
            uint32_t kept[16] = {0};
            for (size_t j = 0; j < v1.n_train; j++) kept[ds->ratings[v1.train[j]].user]++;
            for (uint32_t x = 0; x < nu; x++) assert_true(kept[x] >= 1);
        }
        cb_split_free(&v1);
        cb_split_free(&v2);
    }
    cb_split v;
    assert_int_equal(cb_split_carve(&v, ds, a.train, a.n_train, CB_SPLIT_COLD_USERS, 0.3, 4, &err), CB_EINVAL);
    assert_int_equal(cb_split_carve(&v, ds, a.train, a.n_train, CB_SPLIT_RANDOM, 0.0, 4, &err), CB_OK);
    assert_int_equal(v.n_test, 0);
    assert_memory_equal(v.train, a.train, a.n_train * sizeof *a.train);
    cb_split_free(&v);
    cb_split_free(&a);
    cb_split_free(&b);
    cb_split_free(&c);
    cb_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rating_rmse_mae),
        cmocka_unit_test(top_k_ties_nan_exclusion),
        cmocka_unit_test(topn_hand_computed),
        cmocka_unit_test(topn_per_user_and_paired_comparison),
        cmocka_unit_test(topn_tied_scores_do_not_rank),
        cmocka_unit_test(topn_lists_known_values),
        cmocka_unit_test(topn_diversity_jaccard),
        cmocka_unit_test(split_from_files),
        cmocka_unit_test(stats_and_summary),
        cmocka_unit_test(topn_recall_at_and_long_tail),
        cmocka_unit_test(per_user_split_and_carve),
        cmocka_unit_test(temporal_carve_latest_per_user),
    };
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
