/* test_impute — cold users' imputed features (src/features/impute.c): the
 * fast path (sgemm over distinct attribute rows, partial selection, double
 * rescoring) against the plain reference, bit for bit, on a cold-users split
 * of synthetic data at several k; on attribute values made to defeat float
 * distances (large offsets, tiny differences) and made of exact ties; and the
 * degenerate cases (nobody cold, everybody cold). */
#include "testutil.h"

#include "features/featurize.h"

#include <math.h>

typedef struct fixture {
    cb_dataset *ds;
    cb_features *f;
    cb_split sp;
    float *X_u;  /* the table before imputation */
    uint8_t *has;
    uint32_t n_users, du;
    size_t n_warm;
} fixture;

static void fixture_make(fixture *fx) {
    cb_synth_config sc;
    cb_synth_config_default(&sc);
    sc.n_users = 700;
    sc.n_items = 300;
    sc.n_genres = 6;
    sc.n_ratings = 14000;
    sc.seed = 11;
    cb_error err;
    memset(fx, 0, sizeof *fx);
    assert_int_equal(cb_synth_generate(&fx->ds, &sc, &err), CB_OK);
    assert_int_equal(cb_split_make(&fx->sp, fx->ds, CB_SPLIT_COLD_USERS, 0.25, 5, &err), CB_OK);
    cb_feature_config fc;
    cb_feature_config_default(&fc);
    fc.top_k_popular = 40;
    assert_int_equal(cb_features_fit(&fx->f, fx->ds, fx->sp.train, fx->sp.n_train, &fc, &err), CB_OK);
    fx->n_users = cb_dataset_n_users(fx->ds);
    fx->du = cb_features_user_dim(fx->f);
    fx->X_u = calloc((size_t)fx->n_users * fx->du, sizeof *fx->X_u);
    fx->has = calloc(fx->n_users, 1);
    assert_non_null(fx->X_u);
    assert_non_null(fx->has);
    assert_int_equal(cb_features_users(fx->f, fx->ds, fx->sp.train, fx->sp.n_train, fx->X_u, &err), CB_OK);
    for (size_t j = 0; j < fx->sp.n_train; j++) fx->has[fx->ds->ratings[fx->sp.train[j]].user] = 1;
    for (uint32_t u = 0; u < fx->n_users; u++) fx->n_warm += fx->has[u];
    assert_true(fx->n_warm > 400 && fx->n_warm < fx->n_users);
}

static void fixture_free(fixture *fx) {
    cb_features_free(fx->f);
    cb_split_free(&fx->sp);
    cb_dataset_free(fx->ds);
    free(fx->X_u);
    free(fx->has);
}

/* Columns of X that imputation rewrote in some row of `after`. */
static size_t changed_columns(const fixture *fx, const float *X, const float *after) {
    size_t n = 0;
    for (uint32_t j = 0; j < fx->du; j++)
        for (uint32_t u = 0; u < fx->n_users; u++)
            if (after[(size_t)u * fx->du + j] != X[(size_t)u * fx->du + j]) {
                n++;
                break;
            }
    return n;
}

/* Both ways on a copy of X (the table fx->X_u, or a doctored one): they must
 * agree bit for bit, and leave the warm rows alone. Returns how many columns
 * changed. */
static size_t check_same(const fixture *fx, const float *X, uint32_t k) {
    size_t bytes = (size_t)fx->n_users * fx->du * sizeof(float);
    float *ref = malloc(bytes), *fast = malloc(bytes);
    assert_non_null(ref);
    assert_non_null(fast);
    memcpy(ref, X, bytes);
    memcpy(fast, X, bytes);
    size_t n_ref = 0, n_fast = 0;
    cb_error err;
    assert_int_equal(cb_features_impute_cold_reference(fx->f, ref, fx->has, fx->n_users, k, &n_ref, &err), CB_OK);
    assert_int_equal(cb_features_impute_cold(fx->f, fast, fx->has, fx->n_users, k, &n_fast, &err), CB_OK);
    assert_int_equal(n_ref, n_fast);
    assert_int_equal(n_fast, fx->n_users - fx->n_warm);
    for (size_t i = 0; i < (size_t)fx->n_users * fx->du; i++)
        if (memcmp(&ref[i], &fast[i], sizeof *ref))
            fail_msg("k %u: user %zu column %s: reference %.9g, fast %.9g", k, i / fx->du,
                     cb_features_user_name(fx->f, (uint32_t)(i % fx->du)), ref[i], fast[i]);
    for (uint32_t u = 0; u < fx->n_users; u++)
        if (fx->has[u]) assert_memory_equal(fast + (size_t)u * fx->du, X + (size_t)u * fx->du, fx->du * sizeof(float));
    size_t changed = changed_columns(fx, X, fast);
    free(ref);
    free(fast);
    return changed;
}

static void same_as_reference(void **state) {
    fixture fx;
    fixture_make(&fx);
    uint32_t ks[] = {0, 1, 3, 17, 50, 200, (uint32_t)fx.n_warm - 1, (uint32_t)fx.n_warm, (uint32_t)fx.n_warm + 5};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        size_t changed = check_same(&fx, fx.X_u, ks[i]);
        /* the rating-derived columns (count, mean, genre averages and
         * fractions, popular items) are rewritten; attributes are not */
        assert_true(changed > 10);
        assert_true(changed < fx.du);
    }
    fixture_free(&fx);
}

/* Attribute columns doctored: (a) a large common offset with tiny
 * differences, where |c|² + |w|² − 2c·w in float is mostly rounding, so only
 * the double rescoring can order them; (b) values from {0, 1} only, so
 * hundreds of users tie at the k-th distance and all of them count. */
static void doctored_attributes(void **state) {
    fixture fx;
    fixture_make(&fx);
    size_t bytes = (size_t)fx.n_users * fx.du * sizeof(float);
    float *X = malloc(bytes);
    assert_non_null(X);
    uint64_t s = 99;
    for (int variant = 0; variant < 2; variant++) {
        memcpy(X, fx.X_u, bytes);
        /* the attribute columns: those the reference leaves alone */
        float *probe = malloc(bytes);
        assert_non_null(probe);
        memcpy(probe, X, bytes);
        size_t n = 0;
        cb_error err;
        assert_int_equal(cb_features_impute_cold_reference(fx.f, probe, fx.has, fx.n_users, 5, &n, &err), CB_OK);
        for (uint32_t j = 0; j < fx.du; j++) {
            bool attribute = true;
            for (uint32_t u = 0; u < fx.n_users && attribute; u++)
                if (probe[(size_t)u * fx.du + j] != X[(size_t)u * fx.du + j]) attribute = false;
            if (!attribute) continue;
            for (uint32_t u = 0; u < fx.n_users; u++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                uint32_t r = (uint32_t)(s >> 33);
                X[(size_t)u * fx.du + j] = variant == 0 ? 300.0f + (float)(r % 1000) * 1e-4f : (float)(r % 2);
            }
        }
        free(probe);
        for (uint32_t k = 1; k <= 301; k += 60) check_same(&fx, X, k);
    }
    free(X);
    fixture_free(&fx);
}

static void nobody_or_everybody_cold(void **state) {
    fixture fx;
    fixture_make(&fx);
    size_t bytes = (size_t)fx.n_users * fx.du * sizeof(float);
    float *X = malloc(bytes);
    assert_non_null(X);
    cb_error err;
    size_t n_cold = 99;
    for (int all = 0; all < 2; all++) {
        memset(fx.has, all ? 0 : 1, fx.n_users);
        memcpy(X, fx.X_u, bytes);
        assert_int_equal(cb_features_impute_cold(fx.f, X, fx.has, fx.n_users, 20, &n_cold, &err), CB_OK);
        assert_int_equal(n_cold, all ? fx.n_users : 0);
        assert_memory_equal(X, fx.X_u, bytes); /* no one to impute, or no one to impute from */
    }
    free(X);
    fixture_free(&fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_as_reference),
        cmocka_unit_test(doctored_attributes),
        cmocka_unit_test(nobody_or_everybody_cold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
