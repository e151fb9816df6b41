/* Tests for the fitted feature transform (src/features/featurize.c): fitted on training
 * ratings only, per-genre indicator, popularity multi-hot, scalers, cold start
 * equal to the table for known users, JSON round trip and bad JSON. */
#include "testutil.h"

#include "data/dataset.h"
#include "data/loader.h"
#include "data/loaders.h"
#include "features/featurize.h"

#include <math.h>

/* ---- a small hand-made dataset
 * items (ids 10..15): genres, year, tags
 *   0 "10" Action|Comedy 1995 tags a
 *   1 "11" Comedy        2001 tags a|b
 *   2 "12" Drama         (no year)
 *   3 "13" Action        1980
 *   4 "14" Drama|Action  2010 tags c
 *   5 "15" Comedy        1999
 * users u1..u5: age (u5 missing), gender F M F M -, occupation */
typedef struct {
    uint32_t u, i;
    float y;
} trip;

static const trip fixture_ratings[] = {
    {0, 0, 5}, {0, 1, 4}, {0, 2, 2},        /* u1: no rating in... all genres covered */
    {1, 0, 3}, {1, 3, 5}, {1, 4, 1},        /* u2 */
    {2, 1, 4.5f}, {2, 5, 3}, {2, 0, 4},     /* u3: no Drama */
    {3, 0, 2}, {3, 3, 2.5f},                /* u4: Action/Comedy only */
    {4, 4, 5},                              /* u5 */
    {2, 2, 1},                              /* index 12: a test rating (u3's only Drama) */
    {3, 1, 5},                              /* index 13: a test rating */
};
#define N_FIX (sizeof fixture_ratings / sizeof fixture_ratings[0])
static const uint32_t fixture_train[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
#define N_TRAIN (sizeof fixture_train / sizeof fixture_train[0])

static cb_dataset *make_fixture(void) {
    cb_error err = {0};
    cb_dataset *ds = calloc(1, sizeof *ds);
    assert_non_null(ds);
    ds->name = strdup("fixture");
    ds->path = strdup("(memory)");
    ds->users = cb_vocab_create(&err);
    ds->items = cb_vocab_create(&err);
    char buf[16];
    uint32_t idx;
    for (int u = 0; u < 5; u++) {
        int n = snprintf(buf, sizeof buf, "u%d", u + 1);
        assert_int_equal(cb_vocab_intern(ds->users, buf, (size_t)n, &idx, NULL, &err), CB_OK);
    }
    for (int i = 0; i < 6; i++) {
        int n = snprintf(buf, sizeof buf, "%d", 10 + i);
        assert_int_equal(cb_vocab_intern(ds->items, buf, (size_t)n, &idx, NULL, &err), CB_OK);
    }
    ds->ratings = calloc(N_FIX, sizeof *ds->ratings);
    for (size_t k = 0; k < N_FIX; k++)
        ds->ratings[k] = (cb_rating){fixture_ratings[k].u, fixture_ratings[k].i, fixture_ratings[k].y, (uint32_t)k};
    ds->n_ratings = ds->cap_ratings = N_FIX;
    ds->y_min = 0.5f;
    ds->y_max = 5;
    ds->has_timestamps = true;

    cb_tabbuild b;
    cb_tb_init(&b, &ds->user_attr);
    int age = cb_tb_add_col(&b, "age", CB_COL_NUMERIC, &err);
    int gender = cb_tb_add_col(&b, "gender", CB_COL_CATEGORICAL, &err);
    int occ = cb_tb_add_col(&b, "occupation", CB_COL_CATEGORICAL, &err);
    const float ages[5] = {23, 35, 51, 17, NAN};
    const char *genders[5] = {"F", "M", "F", "M", NULL};
    const char *occs[5] = {"student", "engineer", "artist", "student", "engineer"};
    for (uint32_t u = 0; u < 5; u++) {
        assert_int_equal(cb_tb_set_num(&b, age, u, ages[u], &err), CB_OK);
        if (genders[u]) assert_int_equal(cb_tb_set_cat(&b, gender, u, genders[u], 1, &err), CB_OK);
        assert_int_equal(cb_tb_set_cat(&b, occ, u, occs[u], strlen(occs[u]), &err), CB_OK);
    }
    assert_int_equal(cb_tb_finish(&b, 5, &err), CB_OK);
    cb_tb_release(&b);

    cb_tb_init(&b, &ds->item_attr);
    int genres = cb_tb_add_col(&b, "genres", CB_COL_MULTI, &err);
    int year = cb_tb_add_col(&b, "year", CB_COL_NUMERIC, &err);
    int tags = cb_tb_add_col(&b, "tags", CB_COL_MULTI, &err);
    const char *g[6] = {"Action|Comedy", "Comedy", "Drama", "Action", "Drama|Action", "Comedy"};
    const float years[6] = {1995, 2001, NAN, 1980, 2010, 1999};
    const char *t[6] = {"a", "a|b", "", "", "c", ""};
    for (uint32_t i = 0; i < 6; i++) {
        assert_int_equal(cb_tb_add_multi_split(&b, genres, i, g[i], strlen(g[i]), "|", &err), CB_OK);
        assert_int_equal(cb_tb_set_num(&b, year, i, years[i], &err), CB_OK);
        assert_int_equal(cb_tb_add_multi_split(&b, tags, i, t[i], strlen(t[i]), "|", &err), CB_OK);
    }
    assert_int_equal(cb_tb_finish(&b, 6, &err), CB_OK);
    cb_tb_release(&b);
    ds->roles = (cb_roles){.item_genres = genres, .item_year = year, .user_age = age, .user_gender = gender,
                           .user_occupation = occ, .user_location = -1};
    return ds;
}

static int find_name(const cb_features *f, bool user, const char *name) {
    uint32_t d = user ? cb_features_user_dim(f) : cb_features_item_dim(f);
    for (uint32_t j = 0; j < d; j++)
        if (!strcmp(user ? cb_features_user_name(f, j) : cb_features_item_name(f, j), name)) return (int)j;
    return -1;
}

/* Raw (unscaled) value of feature j. */
static double raw_value(const cb_features *f, bool user, const float *x, int j) {
    const double *mean, *std;
    cb_features_scaler(f, user, &mean, &std);
    return x[j] * std[j] + mean[j];
}

static cb_features *fit(const cb_dataset *ds, const uint32_t *train, size_t n, const cb_feature_config *cfg) {
    cb_error err = {0};
    cb_features *f = NULL;
    int rc = cb_features_fit(&f, ds, train, n, cfg, &err);
    if (rc) fail_msg("fit failed: %s", err.msg);
    return f;
}

static float *user_table(const cb_features *f, const cb_dataset *ds, const uint32_t *train, size_t n) {
    cb_error err = {0};
    float *X = malloc((size_t)cb_dataset_n_users(ds) * cb_features_user_dim(f) * sizeof *X);
    int rc = cb_features_users(f, ds, train, n, X, &err);
    if (rc) fail_msg("users failed: %s", err.msg);
    return X;
}

static float *item_table(const cb_features *f, const cb_dataset *ds) {
    cb_error err = {0};
    float *X = malloc((size_t)cb_dataset_n_items(ds) * cb_features_item_dim(f) * sizeof *X);
    int rc = cb_features_items(f, ds, X, &err);
    if (rc) fail_msg("items failed: %s", err.msg);
    return X;
}

/* ---------------------------------------------------------------- tests */

static void test_names_and_dims(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    /* user: age(z)+age_missing, gender F/M, occupation artist/engineer/student, count, mean,
     * 3 genre + 3 tag avg, 3 genre + 3 tag frac, top items (6 rated in train) */
    assert_int_equal(cb_features_user_dim(f), 2 + 2 + 3 + 2 + 6 + 6 + 6);
    assert_true(find_name(f, true, "tags_avg[b](z)") >= 0);
    assert_true(find_name(f, true, "tags_frac[c]") >= 0);
    assert_true(find_name(f, true, "gender=F") >= 0);
    assert_true(find_name(f, true, "occupation=artist") >= 0);
    assert_true(find_name(f, true, "genre_avg[Drama](z)") >= 0);
    assert_true(find_name(f, true, "genre_frac[Comedy]") >= 0);
    assert_true(find_name(f, true, "top_item[10]") >= 0);
    assert_true(find_name(f, true, "age(z)") >= 0);
    assert_null(cb_features_user_name(f, cb_features_user_dim(f)));
    /* item: year(z)+missing, 3 genres, mean, count, tags a b c */
    assert_int_equal(cb_features_item_dim(f), 2 + 3 + 2 + 3);
    assert_true(find_name(f, false, "year(z)") >= 0);
    assert_true(find_name(f, false, "year_missing") >= 0);
    assert_true(find_name(f, false, "genre[Action]") >= 0);
    assert_true(find_name(f, false, "tags[b]") >= 0);
    assert_true(find_name(f, false, "rating_mean(shrunk,z)") >= 0);
    assert_int_equal(cb_features_n_genres(f), 6); /* 3 genres + 3 tags: one list of content values */
    assert_int_equal(cb_features_genre_find(f, "Drama"), 2);
    assert_int_equal(cb_features_genre_find(f, "b"), -1); /* a tag is not a genre */
    assert_int_equal(cb_features_n_facets(f), 2);
    assert_int_equal(cb_features_facet_find(f, "tags"), 1);
    assert_true(cb_features_facet_is_genre(f, 0));
    assert_int_equal(cb_features_value_find(f, 1, "b", 1), 4);
    assert_int_equal(cb_features_value_facet(f, 4), 1);
    assert_int_equal(cb_features_value_find(f, 1, "zz", 2), -1);
    assert_string_equal(cb_features_genre_name(f, 0), "Action");
    const uint32_t *gl;
    uint32_t ng;
    assert_int_equal(cb_features_item_genres(f, 4, &gl, &ng), CB_OK);
    assert_int_equal(ng, 3); /* 2 genres + 1 tag */
    assert_int_equal(cb_features_item_genres(f, 6, &gl, &ng), CB_EINVAL);
    assert_int_equal(cb_features_item_count(f, 0), 4);
    cb_features_free(f);
    cb_features_free(NULL);
    cb_dataset_free(ds);
}

/* A rating outside the training split changes nothing. */
static void test_fitted_on_train_only(void **state) {
    (void)state;
    cb_dataset *a = make_fixture(), *b = make_fixture();
    b->ratings[12].y = 5.0f; /* test ratings differ between the two datasets */
    b->ratings[13].y = 0.5f;
    cb_features *fa = fit(a, fixture_train, N_TRAIN, NULL), *fb = fit(b, fixture_train, N_TRAIN, NULL);
    float *ua = user_table(fa, a, fixture_train, N_TRAIN), *ub = user_table(fb, b, fixture_train, N_TRAIN);
    float *ia = item_table(fa, a), *ib = item_table(fb, b);
    assert_memory_equal(ua, ub, 5 * cb_features_user_dim(fa) * sizeof(float));
    assert_memory_equal(ia, ib, 6 * cb_features_item_dim(fa) * sizeof(float));
    assert_true(cb_features_global_mean(fa) == cb_features_global_mean(fb));
    /* ...while fitting on all ratings does see them (the check above can fail) */
    uint32_t all[N_FIX];
    for (uint32_t k = 0; k < N_FIX; k++) all[k] = k;
    cb_features *fc = fit(b, all, N_FIX, NULL);
    assert_true(cb_features_global_mean(fc) != cb_features_global_mean(fa));
    assert_int_equal(cb_features_item_count(fc, 1), cb_features_item_count(fa, 1) + 1);
    free(ua), free(ub), free(ia), free(ib);
    cb_features_free(fa), cb_features_free(fb), cb_features_free(fc);
    cb_dataset_free(a), cb_dataset_free(b);
}

static void test_genre_indicator(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    float *X = user_table(f, ds, fixture_train, N_TRAIN);
    uint32_t d = cb_features_user_dim(f);
    int frac_drama = find_name(f, true, "genre_frac[Drama]"), avg_drama = find_name(f, true, "genre_avg[Drama](z)");
    int frac_action = find_name(f, true, "genre_frac[Action]"), avg_action = find_name(f, true, "genre_avg[Action](z)");
    int mean_j = find_name(f, true, "rating_mean(z)");
    /* u3 (index 2) has no Drama in training: fraction 0, average = the user's mean (4.5+3+4)/3 */
    const float *x3 = X + 2 * d;
    assert_true(x3[frac_drama] == 0.0f);
    assert_float_equal(raw_value(f, true, x3, avg_drama), (4.5 + 3 + 4) / 3.0, 1e-5);
    assert_float_equal(raw_value(f, true, x3, mean_j), (4.5 + 3 + 4) / 3.0, 1e-5);
    /* u1 (index 0): Drama item 2 rated 2 -> fraction 1/3, average 2 */
    const float *x1 = X;
    assert_float_equal(x1[frac_drama], 1.0 / 3.0, 1e-6);
    assert_float_equal(raw_value(f, true, x1, avg_drama), 2.0, 1e-5);
    /* u2 (index 1): Action items 0, 3, 4 rated 3, 5, 1 -> avg 3, fraction 1 */
    const float *x2 = X + d;
    assert_float_equal(raw_value(f, true, x2, avg_action), 3.0, 1e-5);
    assert_float_equal(x2[frac_action], 1.0, 1e-6);
    /* a low average is not "no ratings": u2's Drama average 1 with a fraction > 0 */
    assert_float_equal(raw_value(f, true, x2, avg_drama), 1.0, 1e-5);
    assert_true(x2[frac_drama] > 0);
    free(X);
    cb_features_free(f);
    cb_dataset_free(ds);
}

static void test_popularity_multihot(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_feature_config cfg;
    cb_feature_config_default(&cfg);
    cfg.top_k_popular = 2;
    cb_features *f = fit(ds, fixture_train, N_TRAIN, &cfg);
    /* training counts: item0 4, item1 2, item2 1, item3 2, item4 2, item5 1 -> top: 10, then 11 (tie by index) */
    const uint32_t *top;
    assert_int_equal(cb_features_top_k(f, &top), 2);
    assert_int_equal(top[0], 0);
    assert_int_equal(top[1], 1);
    int t10 = find_name(f, true, "top_item[10]"), t11 = find_name(f, true, "top_item[11]");
    assert_true(t10 >= 0 && t11 == t10 + 1);
    assert_int_equal(find_name(f, true, "top_item[13]"), -1);
    float *X = user_table(f, ds, fixture_train, N_TRAIN);
    uint32_t d = cb_features_user_dim(f);
    const float expect10[5] = {1, 1, 1, 1, 0}, expect11[5] = {1, 0, 1, 0, 0};
    for (int u = 0; u < 5; u++) {
        assert_true(X[u * d + t10] == expect10[u]);
        assert_true(X[u * d + t11] == expect11[u]); /* u4's rating of item 11 is a test rating */
    }
    free(X);
    cb_features_free(f);
    /* clamp: K larger than the rated catalog */
    cfg.top_k_popular = 1000;
    f = fit(ds, fixture_train, N_TRAIN, &cfg);
    assert_int_equal(cb_features_top_k(f, NULL), 6);
    cb_features_free(f);
    cb_dataset_free(ds);
}

static void test_scaler_stats(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    const double *mean, *std;
    cb_features_scaler(f, true, &mean, &std);
    int mj = find_name(f, true, "rating_mean(z)"), aj = find_name(f, true, "age(z)"), gj = find_name(f, true, "gender=F");
    /* users' training means: 11/3, 3, 11.5/3, 2.25, 5 */
    double m[5] = {11.0 / 3, 3.0, 11.5 / 3, 2.25, 5.0}, mu = 0, var = 0;
    for (int u = 0; u < 5; u++) mu += m[u] / 5;
    for (int u = 0; u < 5; u++) var += (m[u] - mu) * (m[u] - mu) / 5;
    assert_float_equal(mean[mj], mu, 1e-6);
    assert_float_equal(std[mj], sqrt(var), 1e-6);
    /* age: u5 missing -> filled with the mean of the others, which keeps the mean */
    assert_float_equal(mean[aj], (23 + 35 + 51 + 17) / 4.0, 1e-5);
    assert_true(mean[gj] == 0.0 && std[gj] == 1.0); /* one-hots are not scaled */
    /* the standardised column has mean 0 and std 1 over the training users */
    float *X = user_table(f, ds, fixture_train, N_TRAIN);
    uint32_t d = cb_features_user_dim(f);
    double s = 0, s2 = 0;
    for (int u = 0; u < 5; u++) s += X[u * d + mj], s2 += (double)X[u * d + mj] * X[u * d + mj];
    assert_float_equal(s / 5, 0.0, 1e-6);
    assert_float_equal(s2 / 5, 1.0, 1e-5);
    /* item mean is shrunk: item 5 (1 rating of 3, prior 5 at the global mean) */
    double gm = 0;
    for (size_t k = 0; k < N_TRAIN; k++) gm += fixture_ratings[k].y / (double)N_TRAIN;
    assert_float_equal(cb_features_item_mean(f, 5), (3.0 + 5 * gm) / 6.0, 1e-5);
    assert_float_equal(cb_features_global_mean(f), gm, 1e-6);
    free(X);
    cb_features_free(f);
    cb_dataset_free(ds);
}

/* The cold-start path gives a known user exactly its table row. */
static void test_known_user_new_user(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    float *X = user_table(f, ds, fixture_train, N_TRAIN);
    uint32_t d = cb_features_user_dim(f);
    float *x = malloc(d * sizeof *x);
    const cb_table *t = &ds->user_attr;
    for (uint32_t u = 0; u < 5; u++) {
        cb_attr_value attrs[3];
        attrs[0] = (cb_attr_value){"age", NULL, t->cols[0].num[u]};
        attrs[1] = (cb_attr_value){"gender", t->cols[1].cat[u] == CB_MISSING ? NULL : cb_vocab_name(t->cols[1].levels, t->cols[1].cat[u]), NAN};
        attrs[2] = (cb_attr_value){"occupation", cb_vocab_name(t->cols[2].levels, t->cols[2].cat[u]), NAN};
        cb_item_rating r[N_TRAIN];
        size_t n = 0;
        for (size_t k = 0; k < N_TRAIN; k++)
            if (ds->ratings[fixture_train[k]].user == u)
                r[n++] = (cb_item_rating){ds->ratings[fixture_train[k]].item, ds->ratings[fixture_train[k]].y};
        cb_user_input in = {attrs, 3, r, n, NULL, 0};
        cb_error err = {0};
        assert_int_equal(cb_features_new_user(f, &in, x, &err), CB_OK);
        assert_memory_equal(x, X + u * d, d * sizeof *x);
    }
    free(x);
    free(X);
    cb_features_free(f);
    cb_dataset_free(ds);
}

static void test_new_user_cold(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    uint32_t d = cb_features_user_dim(f);
    float *x = malloc(d * sizeof *x);
    cb_error err = {0};
    /* only genre preferences (the lab's "likes Adventure and Fantasy" user) */
    cb_genre_pref prefs[2] = {{"Drama", 5}, {"Comedy", 4.5f}};
    cb_user_input in = {NULL, 0, NULL, 0, prefs, 2};
    assert_int_equal(cb_features_new_user(f, &in, x, &err), CB_OK);
    assert_float_equal(raw_value(f, true, x, find_name(f, true, "genre_avg[Drama](z)")), 5.0, 1e-5);
    assert_float_equal(raw_value(f, true, x, find_name(f, true, "genre_avg[Comedy](z)")), 4.5, 1e-5);
    assert_float_equal(raw_value(f, true, x, find_name(f, true, "genre_avg[Action](z)")), cb_features_global_mean(f), 1e-5);
    assert_float_equal(x[find_name(f, true, "genre_frac[Drama]")], 0.5, 1e-6);
    assert_true(x[find_name(f, true, "genre_frac[Action]")] == 0.0f);
    assert_float_equal(raw_value(f, true, x, find_name(f, true, "rating_count(log1p,z)")), 0.0, 1e-5);
    assert_true(x[find_name(f, true, "age_missing")] == 1.0f);
    /* demographics with an unseen level, as strings */
    cb_attr_value attrs[3] = {{"age", "30", 0}, {"gender", "X", 0}, {"occupation", "student", 0}};
    cb_user_input in2 = {attrs, 3, NULL, 0, NULL, 0};
    assert_int_equal(cb_features_new_user(f, &in2, x, &err), CB_OK);
    assert_true(x[find_name(f, true, "gender=F")] == 0.0f && x[find_name(f, true, "gender=M")] == 0.0f);
    assert_true(x[find_name(f, true, "occupation=student")] == 1.0f);
    assert_float_equal(raw_value(f, true, x, find_name(f, true, "age(z)")), 30.0, 1e-4);
    /* errors: unknown genre, unknown attribute, unknown item, bad number */
    cb_genre_pref bad_pref = {"Western", 5};
    cb_user_input e1 = {NULL, 0, NULL, 0, &bad_pref, 1};
    assert_int_equal(cb_features_new_user(f, &e1, x, &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "Western"));
    cb_attr_value bad_attr = {"shoe size", "42", 0};
    cb_user_input e2 = {&bad_attr, 1, NULL, 0, NULL, 0};
    assert_int_equal(cb_features_new_user(f, &e2, x, &err), CB_ENOTFOUND);
    cb_item_rating bad_r = {99, 4};
    cb_user_input e3 = {NULL, 0, &bad_r, 1, NULL, 0};
    assert_int_equal(cb_features_new_user(f, &e3, x, &err), CB_ENOTFOUND);
    cb_attr_value bad_num = {"age", "thirty", 0};
    cb_user_input e4 = {&bad_num, 1, NULL, 0, NULL, 0};
    assert_int_equal(cb_features_new_user(f, &e4, x, &err), CB_EINVAL);
    free(x);
    cb_features_free(f);
    cb_dataset_free(ds);
}

static void test_new_item(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    float *X = item_table(f, ds);
    uint32_t d = cb_features_item_dim(f);
    float *x = malloc(d * sizeof *x);
    cb_error err = {0};
    /* a known item described by hand matches its row (item 4: Drama|Action, 2010, tag c, 2 ratings 1 and 5) */
    const char *g[2] = {"Drama", "Action"};
    cb_attr_value tags = {"tags", "c", 0};
    cb_item_input in = {2010, g, 2, &tags, 1, 2, 3.0f};
    assert_int_equal(cb_features_new_item(f, &in, x, &err), CB_OK);
    for (uint32_t j = 0; j < d; j++) assert_float_equal(x[j], X[4 * d + j], 1e-5);
    /* a brand-new item: no year, no ratings -> year_missing, mean = global mean */
    cb_item_input in2 = {NAN, g, 1, NULL, 0, 0, 0};
    assert_int_equal(cb_features_new_item(f, &in2, x, &err), CB_OK);
    assert_true(x[find_name(f, false, "year_missing")] == 1.0f);
    assert_float_equal(raw_value(f, false, x, find_name(f, false, "rating_mean(shrunk,z)")), cb_features_global_mean(f), 1e-5);
    assert_true(x[find_name(f, false, "genre[Drama]")] == 1.0f && x[find_name(f, false, "genre[Action]")] == 0.0f);
    /* an unknown genre is a remark, as an unknown tag is; an error under strict */
    const char *bad[2] = {"Musical", "Drama"};
    cb_item_input in3 = {2000, bad, 2, NULL, 0, 0, 0};
    char notes[256] = "";
    assert_int_equal(cb_features_new_item_checked(f, &in3, false, notes, sizeof notes, x, &err), CB_OK);
    assert_string_equal(notes, "unknown value 'Musical' of 'genres' ignored");
    assert_true(x[find_name(f, false, "genre[Drama]")] == 1.0f);
    assert_int_equal(cb_features_new_item_checked(f, &in3, true, notes, sizeof notes, x, &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "unknown genre 'Musical'"));
    free(x);
    free(X);
    cb_features_free(f);
    cb_dataset_free(ds);
}

/* --exclude-cols leaves out the genre and year columns as any other (they
 * stayed in, silently), and a name the data has no column of is an error
 * naming it (a typo left every feature in). */
static void test_exclude_cols_genres_year_unknown(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_feature_config cfg;
    cb_feature_config_default(&cfg);
    cfg.exclude_cols = "genres, year";
    cb_features *f = fit(ds, fixture_train, N_TRAIN, &cfg);
    assert_true(find_name(f, false, "tags[a]") >= 0);
    assert_int_equal(find_name(f, false, "genre[Drama]"), -1);
    assert_int_equal(find_name(f, true, "genre_avg[Drama](z)"), -1);
    assert_int_equal(find_name(f, false, "year(z)"), -1);
    cb_features_free(f);
    cb_error err = {0};
    cb_features *g = NULL;
    cfg.exclude_cols = "occupation,Tags";
    assert_int_equal(cb_features_fit(&g, ds, fixture_train, N_TRAIN, &cfg, &err), CB_EINVAL);
    assert_null(g);
    if (!strstr(err.msg, "'Tags'") || !strstr(err.msg, "tags")) fail_msg("message: %s", err.msg);
    cb_dataset_free(ds);
}

/* A new user's attribute the data has no column of names the columns it
 * has: a users file's own names ("alter", "Land") are not guessed from
 * "age" or "land", and "unknown attribute 'Occupation'" said nothing more. */
static void test_unknown_attribute_names_known(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    cb_attr_value a = {"Occupation", "student", 0};
    cb_user_input in = {&a, 1, NULL, 0, NULL, 0};
    cb_error err = {0};
    float *x = malloc(cb_features_user_dim(f) * sizeof *x);
    assert_int_equal(cb_features_new_user(f, &in, x, &err), CB_ENOTFOUND);
    if (!strstr(err.msg, "'Occupation'") || !strstr(err.msg, "occupation") || !strstr(err.msg, "gender"))
        fail_msg("message: %s", err.msg);
    free(x);
    cb_features_free(f);
    cb_dataset_free(ds);
}

static void test_config_variants(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_feature_config cfg;
    cb_feature_config_default(&cfg);
    cfg.age_mode = CB_AGE_BUCKETS;
    cfg.exclude_cols = "occupation,tags";
    cfg.top_k_popular = 0;
    cfg.user_genres = false;
    cb_features *f = fit(ds, fixture_train, N_TRAIN, &cfg);
    assert_true(find_name(f, true, "age[18-24]") >= 0);
    assert_int_equal(find_name(f, true, "age(z)"), -1);
    assert_int_equal(find_name(f, true, "occupation=student"), -1);
    assert_int_equal(find_name(f, false, "tags[a]"), -1);
    assert_int_equal(cb_features_user_dim(f), 7 + 2 + 2);
    float *X = user_table(f, ds, fixture_train, N_TRAIN);
    uint32_t d = cb_features_user_dim(f);
    assert_true(X[0 * d + find_name(f, true, "age[18-24]")] == 1.0f); /* u1 is 23 */
    assert_true(X[3 * d + find_name(f, true, "age[<18]")] == 1.0f);   /* u4 is 17 */
    for (int k = 0; k < 7; k++) assert_true(X[4 * d + k] == 0.0f);     /* u5: missing age */
    /* an excluded column is accepted (and ignored) by the cold-start path */
    cb_attr_value a = {"occupation", "student", 0};
    cb_user_input in = {&a, 1, NULL, 0, NULL, 0};
    cb_error err = {0};
    float *x = malloc(d * sizeof *x);
    assert_int_equal(cb_features_new_user(f, &in, x, &err), CB_OK);
    free(x);
    free(X);
    cb_features_free(f);
    /* bad configuration and bad arguments */
    cb_feature_config_default(&cfg);
    cfg.item_prior = -1;
    cb_features *g = (cb_features *)1;
    assert_int_equal(cb_features_fit(&g, ds, fixture_train, N_TRAIN, &cfg, &err), CB_EINVAL);
    assert_null(g);
    assert_int_equal(cb_features_fit(&g, ds, fixture_train, 0, NULL, &err), CB_EINVAL);
    uint32_t bad_idx = 1000;
    assert_int_equal(cb_features_fit(&g, ds, &bad_idx, 1, NULL, &err), CB_EINVAL);
    cb_dataset_free(ds);
}

static char *dump(const cb_features *f) {
    cb_error err = {0};
    json_t *j = cb_features_to_json(f, &err);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    return s;
}

/* A content value outside the most frequent kept (max_multi_levels; MovieLens
 * tags keep 50) is told as such, in a saved and loaded model too; a column
 * that kept all its values says only that the value is unknown. */
static void test_unknown_value_kept(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_feature_config cfg;
    cb_feature_config_default(&cfg);
    cfg.max_multi_levels = 2; /* tags a, b, c: one is cut */
    cb_features *f = fit(ds, fixture_train, N_TRAIN, &cfg), *all = fit(ds, fixture_train, N_TRAIN, NULL);
    char *s = dump(f);
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    cb_features *loaded = NULL;
    cb_error err = {0};
    assert_int_equal(cb_features_from_json(&loaded, j, &err), CB_OK);
    uint32_t g[4], n = 0;
    char notes[256];
    for (int k = 0; k < 2; k++) {
        notes[0] = '\0';
        assert_int_equal(cb_features_facet_values(k ? loaded : f, 1, "a|b|c", g, 4, &n, false, notes, sizeof notes, &err), CB_OK);
        assert_int_equal(n, 2);
        assert_non_null(strstr(notes, "' of 'tags' ignored: not among the 2 most frequent values the model kept"));
    }
    assert_int_equal(cb_features_facet_values(f, 1, "zz", g, 4, &n, true, NULL, 0, &err), CB_ENOTFOUND);
    assert_string_equal(err.msg, "unknown value 'zz' of 'tags': not among the 2 most frequent values the model kept");
    notes[0] = '\0';
    assert_int_equal(cb_features_facet_values(all, 1, "zz|c", g, 4, &n, false, notes, sizeof notes, &err), CB_OK);
    assert_string_equal(notes, "unknown value 'zz' of 'tags' ignored"); /* 3 of at most 50 kept: every one seen */
    json_decref(j);
    free(s);
    cb_features_free(loaded);
    cb_features_free(all);
    cb_features_free(f);
    cb_dataset_free(ds);
}

static void test_json_roundtrip(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    char *s = dump(f);
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    cb_features *g = NULL;
    cb_error err = {0};
    assert_int_equal(cb_features_from_json(&g, j, &err), CB_OK);
    json_decref(j);
    char *s2 = dump(g);
    assert_string_equal(s, s2);
    assert_int_equal(cb_features_user_dim(g), cb_features_user_dim(f));
    for (uint32_t k = 0; k < cb_features_user_dim(f); k++)
        assert_string_equal(cb_features_user_name(f, k), cb_features_user_name(g, k));
    float *ua = user_table(f, ds, fixture_train, N_TRAIN), *ub = user_table(g, ds, fixture_train, N_TRAIN);
    float *ia = item_table(f, ds), *ib = item_table(g, ds);
    assert_memory_equal(ua, ub, 5 * cb_features_user_dim(f) * sizeof(float));
    assert_memory_equal(ia, ib, 6 * cb_features_item_dim(f) * sizeof(float));
    /* and the cold-start path after loading (no dataset at all) */
    uint32_t d = cb_features_user_dim(f);
    float *xa = malloc(d * sizeof *xa), *xb = malloc(d * sizeof *xb);
    cb_genre_pref p = {"Drama", 5};
    cb_item_rating r = {3, 4.5f};
    cb_user_input in = {NULL, 0, &r, 1, &p, 1};
    assert_int_equal(cb_features_new_user(f, &in, xa, &err), CB_OK);
    assert_int_equal(cb_features_new_user(g, &in, xb, &err), CB_OK);
    assert_memory_equal(xa, xb, d * sizeof *xa);
    free(xa), free(xb), free(ua), free(ub), free(ia), free(ib);
    free(s);
    free(s2);
    cb_features_free(f);
    cb_features_free(g);
    cb_dataset_free(ds);
}

/* Load `text` (must be valid JSON) and expect CB_EFORMAT. */
static void expect_bad(const char *text) {
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j) fail_msg("test bug: invalid JSON: %s (%.300s)", jerr.text, text);
    cb_features *g = (cb_features *)1;
    cb_error err = {0};
    int rc = cb_features_from_json(&g, j, &err);
    json_decref(j);
    if (rc != CB_EFORMAT) fail_msg("expected CB_EFORMAT, got %d (%s) for %.200s", rc, err.msg, text);
    assert_null(g);
    assert_true(err.msg[0] != '\0');
}

static char *replace(const char *s, const char *from, const char *to) {
    const char *p = strstr(s, from);
    assert_non_null(p);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    memcpy(r, s, (size_t)(p - s));
    strcpy(r + (p - s), to);
    strcat(r, p + strlen(from));
    return r;
}

static void test_json_bad(void **state) {
    (void)state;
    cb_dataset *ds = make_fixture();
    cb_features *f = fit(ds, fixture_train, N_TRAIN, NULL);
    char *s = dump(f);
    expect_bad("[]");
    expect_bad("{}");
    expect_bad("{\"format\":\"cbrec-features\",\"version\":1}");
    static const char *const edits[][2] = {
        {"\"version\":1", "\"version\":2"},
        {"\"format\":\"cbrec-features\"", "\"format\":\"other\""},
        {"\"n_items\":6", "\"n_items\":7"},
        {"\"n_items\":6", "\"n_items\":-1"},
        {"\"n_items\":6", "\"n_items\":\"6\""},
        {"\"item_genre_off\":[0,", "\"item_genre_off\":[1,"},
        {"\"item_genre_val\":[0,", "\"item_genre_val\":[7,"},
        {"\"top_items\":[0,", "\"top_items\":[60,"},
        {"\"top_items\":[0,", "\"top_items\":[0,0,"},
        {"\"genres\":[\"Action\",", "\"genres\":[\"Action\",\"Action\","},
        {"\"prejoined\":false", "\"prejoined\":0"},
        {"\"age_mode\":\"standardise\"", "\"age_mode\":\"sideways\""},
        {"\"item_prior\":5.0", "\"item_prior\":-5.0"},
        {"\"type\":\"cat\"", "\"type\":\"bogus\""},
        {"\"type\":\"cat\"", "\"type\":\"year\""},
        {"\"type\":\"cat\"", "\"type\":\"raw\""},
        {"\"col\":\"gender\"", "\"col\":null"},
        {"\"levels\":[\"F\",\"M\"]", "\"levels\":[\"F\",\"M\",\"X\"]"},
        {"\"levels\":[\"F\",\"M\"]", "\"levels\":[\"F\",\"F\"]"},
        {"\"levels\":[\"F\",\"M\"]", "\"levels\":[\"F\",2]"},
        {"\"std\":[", "\"std\":[0.0,"},
        {"\"std\":[", "\"std\":[-1.0,"},
        {"\"mean\":[", "\"mean\":[\"x\","},
        {"\"user\":{\"blocks\":[", "\"user\":{\"blocks\":[{\"type\":\"num\"},"},
        {"\"user\":{\"blocks\":[", "\"user\":{\"blocks\":[7,"},
        {"\"user\":{", "\"usr\":{"},
        {"\"fill\":", "\"fill\":\"a\",\"z\":"},
    };
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        char *t = replace(s, edits[k][0], edits[k][1]);
        expect_bad(t);
        free(t);
    }
    /* drop every top-level key in turn */
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val) {
        if (!strcmp(key, "facets")) continue; /* optional: models saved before content columns have none */
        json_t *c = json_deep_copy(j);
        json_object_del(c, key);
        char *t = json_dumps(c, JSON_COMPACT);
        json_decref(c);
        expect_bad(t);
        free(t);
    }
    json_decref(j);
    free(s);
    cb_features_free(f);
    cb_dataset_free(ds);
}

/* Pre-joined rows (course-lab style): given columns minus leading ids, scaler over rows. */
static void test_prejoined(void **state) {
    (void)state;
    cb_error err = {0};
    cb_dataset *ds = calloc(1, sizeof *ds);
    ds->name = strdup("lab");
    ds->path = strdup("(memory)");
    ds->prejoined = true;
    ds->user_lead_cols = 3;
    ds->item_lead_cols = 1;
    ds->users = cb_vocab_create(&err);
    ds->items = cb_vocab_create(&err);
    uint32_t idx;
    cb_vocab_intern(ds->users, "2", 1, &idx, NULL, &err);
    cb_vocab_intern(ds->users, "7", 1, &idx, NULL, &err);
    cb_vocab_intern(ds->items, "100", 3, &idx, NULL, &err);
    cb_vocab_intern(ds->items, "200", 3, &idx, NULL, &err);
    /* rows: user 0 appears 3 times, user 1 once */
    const trip rows[4] = {{0, 0, 4}, {0, 1, 3}, {0, 0, 5}, {1, 1, 2}};
    ds->ratings = calloc(4, sizeof *ds->ratings);
    for (int k = 0; k < 4; k++) ds->ratings[k] = (cb_rating){rows[k].u, rows[k].i, rows[k].y, 0};
    ds->n_ratings = ds->cap_ratings = 4;
    cb_tabbuild b;
    cb_tb_init(&b, &ds->user_attr);
    const char *ucols[5] = {"user id", "rating count", "rating ave", "Action", "Comedy"};
    const float uval[2][5] = {{2, 22, 4.0f, 3.5f, 0}, {7, 5, 3.0f, 2.0f, 4.0f}};
    for (int c = 0; c < 5; c++) {
        int ci = cb_tb_add_col(&b, ucols[c], CB_COL_NUMERIC, &err);
        for (uint32_t u = 0; u < 2; u++) cb_tb_set_num(&b, ci, u, uval[u][c], &err);
    }
    assert_int_equal(cb_tb_finish(&b, 2, &err), CB_OK);
    cb_tb_release(&b);
    cb_tb_init(&b, &ds->item_attr);
    const char *icols[5] = {"movie id", "year", "ave rating", "Action", "Comedy"};
    const float ival[2][5] = {{100, 2003, 3.9f, 1, 0}, {200, 1999, 3.1f, 1, 1}};
    for (int c = 0; c < 5; c++) {
        int ci = cb_tb_add_col(&b, icols[c], CB_COL_NUMERIC, &err);
        for (uint32_t i = 0; i < 2; i++) cb_tb_set_num(&b, ci, i, ival[i][c], &err);
    }
    assert_int_equal(cb_tb_finish(&b, 2, &err), CB_OK);
    cb_tb_release(&b);
    ds->roles = (cb_roles){-1, -1, -1, -1, -1, -1};

    const uint32_t train[2] = {0, 3};
    cb_features *f = fit(ds, train, 2, NULL); /* scaler over ALL rows by default */
    assert_int_equal(cb_features_user_dim(f), 2);
    assert_int_equal(cb_features_item_dim(f), 4);
    assert_string_equal(cb_features_user_name(f, 0), "Action");
    assert_string_equal(cb_features_item_name(f, 0), "year");
    assert_int_equal(cb_features_n_genres(f), 2); /* the 0/1 item columns */
    assert_string_equal(cb_features_genre_name(f, 1), "Comedy");
    const double *mean, *std;
    cb_features_scaler(f, true, &mean, &std);
    /* Action over the 4 rows: 3.5 x3, 2 x1 -> mean 3.125, std sqrt(0.421875) */
    assert_float_equal(mean[0], 3.125, 1e-9);
    assert_float_equal(std[0], sqrt(0.421875), 1e-9);
    cb_features_scaler(f, false, &mean, &std);
    assert_float_equal(mean[0], 2001.0, 1e-9); /* 2003 x2, 1999 x2 */
    float *X = user_table(f, ds, train, 2);
    assert_float_equal(X[0], (3.5 - 3.125) / sqrt(0.421875), 1e-6);
    /* the new-user path: named columns, genres by name, rest 0 */
    float x[2];
    cb_genre_pref p = {"Comedy", 4};
    cb_attr_value a = {"Action", NULL, 2.0};
    cb_user_input in = {&a, 1, NULL, 0, &p, 1};
    assert_int_equal(cb_features_new_user(f, &in, x, &err), CB_OK);
    assert_memory_equal(x, X + 2, sizeof x); /* = user 7's row (Action 2, Comedy 4) */
    free(X);
    cb_features_free(f);
    cb_dataset_free(ds);
}

/* Known users of a synthetic dataset: new_user from attributes + training
 * ratings reproduces every table row bit for bit (many genres, top-K). */
static void test_known_users_synthetic(void **state) {
    (void)state;
    cb_synth_config c;
    cb_synth_config_default(&c);
    c.n_users = 300, c.n_items = 400, c.n_ratings = 15000, c.seed = 11;
    cb_dataset *ds = NULL;
    cb_error err = {0};
    assert_int_equal(cb_synth_generate(&ds, &c, &err), CB_OK);
    cb_split sp;
    assert_int_equal(cb_split_make(&sp, ds, CB_SPLIT_COLD_USERS, 0.2, 3, &err), CB_OK);
    cb_feature_config cfg;
    cb_feature_config_default(&cfg);
    cfg.top_k_popular = 100;
    cb_features *f = fit(ds, sp.train, sp.n_train, &cfg);
    float *X = user_table(f, ds, sp.train, sp.n_train);
    uint32_t d = cb_features_user_dim(f);
    float *x = malloc(d * sizeof *x);
    cb_item_rating *r = malloc(sp.n_train * sizeof *r);
    const cb_table *t = &ds->user_attr;
    uint32_t n_cold = 0;
    for (uint32_t u = 0; u < 300; u++) {
        cb_attr_value attrs[4];
        for (uint32_t k = 0; k < 4; k++) {
            const cb_column *col = &t->cols[k];
            attrs[k].name = col->name;
            attrs[k].num = col->kind == CB_COL_NUMERIC ? col->num[u] : NAN;
            attrs[k].str = col->kind == CB_COL_NUMERIC ? NULL : cb_vocab_name(col->levels, col->cat[u]);
        }
        size_t n = 0;
        for (size_t k = 0; k < sp.n_train; k++)
            if (ds->ratings[sp.train[k]].user == u)
                r[n++] = (cb_item_rating){ds->ratings[sp.train[k]].item, ds->ratings[sp.train[k]].y};
        n_cold += n == 0;
        cb_user_input in = {attrs, 4, r, n, NULL, 0};
        assert_int_equal(cb_features_new_user(f, &in, x, &err), CB_OK);
        assert_memory_equal(x, X + (size_t)u * d, d * sizeof *x);
    }
    assert_true(n_cold > 30); /* held-out users exist and are featurised from demographics alone */
    free(r), free(x), free(X);
    cb_split_free(&sp);
    cb_features_free(f);
    cb_dataset_free(ds);
}

/* The course lab: 14 user / 16 item inputs, scalers over ALL rows equal to
 * sklearn's StandardScaler (reference values computed with numpy). */
static void test_course_lab(void **state) {
    (void)state;
    const char *dir = tu_shared_data("course-lab");
    if (!dir) TU_SKIP("../shared/data/course-lab not present");
    cb_dataset *ds = NULL;
    cb_error err = {0};
    if (cb_dataset_load(&ds, dir, NULL, &err)) fail_msg("load: %s", err.msg);
    cb_split sp;
    assert_int_equal(cb_split_sklearn(&sp, ds->n_ratings, 0.8, 1, &err), CB_OK);
    cb_features *f = fit(ds, sp.train, sp.n_train, NULL);
    assert_int_equal(cb_features_user_dim(f), 14);
    assert_int_equal(cb_features_item_dim(f), 16);
    assert_string_equal(cb_features_user_name(f, 0), "Action");
    assert_string_equal(cb_features_item_name(f, 0), "year");
    assert_int_equal(cb_features_n_genres(f), 14);
    const double *mean, *std;
    cb_features_scaler(f, true, &mean, &std);
    assert_float_equal(mean[0], 3.483632969106203, 1e-6);
    assert_float_equal(std[0], 0.5914761380476697, 1e-6);
    assert_float_equal(mean[13], 3.514322969892304, 1e-6);
    cb_features_scaler(f, false, &mean, &std);
    assert_float_equal(mean[0], 2005.7787516704661, 1e-6);
    assert_float_equal(std[0], 3.984693776970676, 1e-6);
    /* the lab's new user: Adventure 5, Fantasy 5, other genres 0 */
    cb_genre_pref p[2] = {{"Adventure", 5}, {"Fantasy", 5}};
    cb_user_input in = {NULL, 0, NULL, 0, p, 2};
    float x[14];
    assert_int_equal(cb_features_new_user(f, &in, x, &err), CB_OK);
    cb_features_scaler(f, true, &mean, &std);
    assert_float_equal(x[1], (5 - mean[1]) / std[1], 1e-5);
    assert_float_equal(x[0], (0 - mean[0]) / std[0], 1e-5);
    cb_split_free(&sp);
    cb_features_free(f);
    cb_dataset_free(ds);
}

/* Real data, when present: ml-latest-small fits and featurises sanely. */
static void test_ml_latest_small(void **state) {
    (void)state;
    const char *dir = tu_shared_data("ml-latest-small");
    if (!dir) TU_SKIP("../shared/data/ml-latest-small not present");
    cb_dataset *ds = NULL;
    cb_error err = {0};
    if (cb_dataset_load(&ds, dir, NULL, &err)) fail_msg("load: %s", err.msg);
    cb_split sp;
    assert_int_equal(cb_split_make(&sp, ds, CB_SPLIT_RANDOM, 0.2, 1, &err), CB_OK);
    cb_features *f = fit(ds, sp.train, sp.n_train, NULL);
    assert_int_equal(cb_features_top_k(f, NULL), 1000);
    assert_true(cb_features_n_genres(f) >= 18);
    float *X = user_table(f, ds, sp.train, sp.n_train);
    float *M = item_table(f, ds);
    size_t nu = (size_t)cb_dataset_n_users(ds) * cb_features_user_dim(f);
    size_t nm = (size_t)cb_dataset_n_items(ds) * cb_features_item_dim(f);
    for (size_t k = 0; k < nu; k++) assert_true(isfinite(X[k]));
    for (size_t k = 0; k < nm; k++) assert_true(isfinite(M[k]));
    assert_true(find_name(f, false, "tags[funny]") >= 0 || find_name(f, false, "year(z)") >= 0);
    free(X);
    free(M);
    cb_split_free(&sp);
    cb_features_free(f);
    cb_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_dims),      cmocka_unit_test(test_fitted_on_train_only),
        cmocka_unit_test(test_genre_indicator),     cmocka_unit_test(test_popularity_multihot),
        cmocka_unit_test(test_scaler_stats),        cmocka_unit_test(test_known_user_new_user),
        cmocka_unit_test(test_new_user_cold),       cmocka_unit_test(test_new_item),
        cmocka_unit_test(test_unknown_value_kept),
        cmocka_unit_test(test_config_variants), cmocka_unit_test(test_exclude_cols_genres_year_unknown), cmocka_unit_test(test_unknown_attribute_names_known),     cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_bad),            cmocka_unit_test(test_prejoined),
        cmocka_unit_test(test_known_users_synthetic), cmocka_unit_test(test_course_lab),
        cmocka_unit_test(test_ml_latest_small),
    };
    return cmocka_run_group_tests_name("features", tests, NULL, NULL);
}
