/* test_config — the key table mechanism (base/config.c) and the TRAIN and
 * SYNTH tables: defaults, parsing once with range checks, messages that name
 * the key and what it accepts, close-match suggestions, enumeration. */
#include "testutil.h"

#include "base/config.h"
#include "data/synth_config.h"
#include "model/train_config.h"

static const cb_train_config *train_values(const cb_config *c) { return cb_config_values(c, CB_CONFIG_TRAIN); }

static void train_defaults(void **state) {
    (void)state;
    cb_config *c;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&c, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_string_equal(cb_config_get(c, "lr"), "0.003");
    assert_string_equal(cb_config_get(c, "batch"), "256");
    assert_string_equal(cb_config_get(c, "epochs"), "10");
    assert_string_equal(cb_config_get(c, "user-layers"), "256,128");
    assert_string_equal(cb_config_get(c, "l2norm"), "true");
    assert_string_equal(cb_config_get(c, "split"), "random");
    assert_string_equal(cb_config_get(c, "user-skip-cols"), "auto");
    assert_null(cb_config_get(c, "no-such-key"));
    const cb_train_config *v = train_values(c);
    assert_non_null(v);
    assert_null(cb_config_values(c, CB_CONFIG_SYNTH));
    assert_true(v->model.lr == 0.003f && v->model.batch_size == 256 && v->model.epochs == 10);
    assert_int_equal(v->model.n_user_layers, 2);
    assert_int_equal(v->features.user_skip_cols, CB_SKIP_FROM_DATASET);
    assert_int_equal(v->split, CB_TRAIN_SPLIT_RANDOM);
    assert_true(v->valid_frac == 0 && v->test_frac == 0.2 && v->scale_targets);
    /* Where the table and the lower layers both have a default they agree,
     * except the three settings the table deliberately overrides. */
    cb_model_config mc;
    cb_model_config_default(&mc);
    mc.lr = v->model.lr, mc.batch_size = v->model.batch_size, mc.epochs = v->model.epochs;
    assert_memory_equal(&mc, &v->model, sizeof mc);
    cb_feature_config fc;
    cb_feature_config_default(&fc);
    assert_memory_equal(&fc, &v->features, sizeof fc);
    cb_config_free(c);
}

static void set_parses_and_checks(void **state) {
    (void)state;
    cb_config *c;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&c, CB_CONFIG_TRAIN, &err), CB_OK);
    const cb_train_config *v = train_values(c);
    assert_int_equal(cb_config_set(c, "lr", "0.01", &err), CB_OK);
    assert_true(v->model.lr == 0.01f);
    assert_string_equal(cb_config_get(c, "lr"), "0.01");
    /* out of range: names the key and the range, leaves the value */
    assert_int_equal(cb_config_set(c, "lr", "-1", &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "lr"));
    assert_non_null(strstr(err.msg, "1e-09"));
    assert_true(v->model.lr == 0.01f);
    assert_int_equal(cb_config_set(c, "lr", "abc", &err), CB_EINVAL);
    assert_int_equal(cb_config_set(c, "epochs", "2.5", &err), CB_EINVAL); /* integers only */
    assert_int_equal(cb_config_set(c, "loss", "hinge", &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "mse, bce"));
    assert_int_equal(cb_config_set(c, "loss", "bce", &err), CB_OK);
    assert_int_equal(v->model.loss, CB_LOSS_BCE);
    /* booleans, also stored as an enum */
    assert_int_equal(cb_config_set(c, "l2norm", "false", &err), CB_OK);
    assert_false(v->model.l2norm);
    assert_int_equal(cb_config_set(c, "age-buckets", "yes", &err), CB_OK);
    assert_int_equal(v->features.age_mode, CB_AGE_BUCKETS);
    assert_string_equal(cb_config_get(c, "age-buckets"), "true");
    assert_int_equal(cb_config_set(c, "l2norm", "maybe", &err), CB_EINVAL);
    /* lists */
    assert_int_equal(cb_config_set(c, "user-layers", "64,32,16", &err), CB_OK);
    assert_int_equal(v->model.n_user_layers, 3);
    assert_int_equal(v->model.user_layers[2], 16);
    assert_int_equal(cb_config_set(c, "user-layers", "1,2,3,4,5,6,7,8,9", &err), CB_EINVAL);
    assert_int_equal(cb_config_set(c, "user-layers", "64,0", &err), CB_EINVAL);
    assert_int_equal(cb_config_set(c, "user-layers", "64,", &err), CB_EINVAL);
    assert_int_equal(v->model.n_user_layers, 3);
    assert_int_equal(cb_config_set(c, "item-layers", "none", &err), CB_OK);
    assert_int_equal(v->model.n_item_layers, 0);
    assert_string_equal(cb_config_get(c, "item-layers"), "none");
    /* strings are copied and owned */
    char cols[] = "genres,year";
    assert_int_equal(cb_config_set(c, "exclude-cols", cols, &err), CB_OK);
    cols[0] = 'X';
    assert_string_equal(v->features.exclude_cols, "genres,year");
    assert_int_equal(cb_config_set(c, "exclude-cols", "", &err), CB_OK);
    assert_null(v->features.exclude_cols);
    /* special values and ranges */
    assert_int_equal(cb_config_set(c, "user-skip-cols", "3", &err), CB_OK);
    assert_int_equal(v->features.user_skip_cols, 3);
    assert_int_equal(cb_config_set(c, "range", "1,5", &err), CB_OK);
    assert_true(v->load.y_min == 1 && v->load.y_max == 5);
    assert_int_equal(cb_config_set(c, "range", "5,1", &err), CB_EINVAL);
    assert_string_equal(cb_config_get(c, "range"), "1,5");
    assert_int_equal(cb_config_set(c, "split", "cold-items", &err), CB_OK);
    assert_int_equal(v->split, CB_TRAIN_SPLIT_COLD_ITEMS);
    cb_config_free(c);
}

static void unknown_keys_suggest(void **state) {
    (void)state;
    cb_config *c;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&c, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(c, "epoch", "3", &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'epoch'"));
    assert_non_null(strstr(err.msg, "epochs"));
    assert_int_equal(cb_config_set(c, "valid", "0.1", &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "valid-frac"));
    assert_int_equal(cb_config_set(c, "zzzzzz", "1", &err), CB_ENOTFOUND);
    assert_null(strstr(err.msg, "did you mean"));
    const char *names[5] = {"dim", "data", "data", "datasets-folder", "zzz"};
    char near[64];
    assert_int_equal(cb_config_near_names("dat", names, 5, NULL, near, sizeof near), 2);
    assert_string_equal(near, "data, dim"); /* closest first, each once */
    assert_int_equal(cb_config_near_names("qqqq", names, 5, NULL, near, sizeof near), 0);
    assert_string_equal(near, "");
    cb_config_free(c);
    assert_int_equal(cb_config_create(&c, (cb_config_kind)99, &err), CB_EINVAL);
    assert_null(c);
    cb_config_free(NULL);
}

/* A key set, even to its default, is given; the defaults of a new config are
 * not, nor an unknown key, nor a set that failed. The refusals of a setting
 * a call would leave unused ask this (--split random beside --folds, an MMR
 * lambda of 0.7 without MMR were taken and ignored: 0.7 is the default). */
static void given_keys(void **state) {
    (void)state;
    cb_config *c;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&c, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_false(cb_config_given(c, "mmr-lambda"));
    assert_int_equal(cb_config_check(c, &err), CB_OK);
    assert_int_equal(cb_config_set(c, "mmr-lambda", cb_config_get(c, "mmr-lambda"), &err), CB_OK);
    assert_true(cb_config_given(c, "mmr-lambda"));
    assert_false(cb_config_given(c, "diversity"));
    assert_int_equal(cb_config_check(c, &err), CB_EINVAL); /* without diversity mmr, even at its default */
    assert_non_null(strstr(err.msg, "give diversity mmr too"));
    assert_int_equal(cb_config_set(c, "diversity", "mmr", &err), CB_OK);
    assert_int_equal(cb_config_check(c, &err), CB_OK);
    /* a config reused with MMR off again: the lambda unset (NULL) is not given, at its default */
    assert_int_equal(cb_config_set(c, "mmr-lambda", "0.3", &err), CB_OK);
    assert_int_equal(cb_config_set(c, "diversity", "none", &err), CB_OK);
    assert_int_equal(cb_config_check(c, &err), CB_EINVAL);
    assert_int_equal(cb_config_set(c, "mmr-lambda", NULL, &err), CB_OK);
    assert_false(cb_config_given(c, "mmr-lambda"));
    assert_string_equal(cb_config_get(c, "mmr-lambda"), "0.7");
    assert_int_equal(cb_config_check(c, &err), CB_OK);
    assert_int_equal(cb_config_set(c, "n", "zero", &err), CB_EINVAL);
    assert_false(cb_config_given(c, "n"));
    assert_false(cb_config_given(c, "no-such-key"));
    assert_false(cb_config_given(NULL, "n"));
    cb_config_free(c);
}

/* Every key of every kind: unique name, a section and help, a default that
 * reads back as itself (the table's strings are canonical). */
static void enumerate_kinds(void **state) {
    (void)state;
    cb_config_kind kinds[] = {CB_CONFIG_TRAIN, CB_CONFIG_SYNTH, CB_CONFIG_RECOMMEND, CB_CONFIG_EVAL};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        size_t n = cb_config_n_keys(kinds[k]);
        assert_true(n >= 6);
        cb_config *c;
        cb_error err = {0};
        assert_int_equal(cb_config_create(&c, kinds[k], &err), CB_OK);
        for (size_t i = 0; i < n; i++) {
            cb_config_key_info info;
            assert_int_equal(cb_config_key(kinds[k], i, &info), CB_OK);
            assert_true(info.name[0] && info.help[0] && info.section[0]);
            assert_true(info.is_bool == !info.value_hint[0]);
            const char *got = cb_config_get(c, info.name);
            assert_non_null(got);
            assert_string_equal(got, info.default_value);
            for (size_t j = 0; j < i; j++) {
                cb_config_key_info other;
                cb_config_key(kinds[k], j, &other);
                assert_string_not_equal(other.name, info.name);
            }
        }
        cb_config_key_info info;
        assert_int_equal(cb_config_key(kinds[k], n, &info), CB_ENOTFOUND);
        cb_config_free(c);
    }
}

static void synth_defaults_agree(void **state) {
    (void)state;
    cb_config *c;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&c, CB_CONFIG_SYNTH, &err), CB_OK);
    cb_synth_config def;
    cb_synth_config_default(&def);
    const cb_synth_config *v = cb_config_values(c, CB_CONFIG_SYNTH);
    assert_memory_equal(&def, v, sizeof def);
    assert_int_equal(cb_config_set(c, "users", "0", &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "users"));
    assert_int_equal(cb_config_set(c, "ratings", "6000", &err), CB_OK);
    assert_int_equal(v->n_ratings, 6000);
    cb_config_free(c);
}

static void shared_parsers(void **state) {
    (void)state;
    cb_error err = {0};
    cb_train_split s;
    assert_int_equal(cb_train_parse_split("temporal", &s, &err), CB_OK);
    assert_int_equal(s, CB_TRAIN_SPLIT_TEMPORAL);
    assert_string_equal(cb_train_split_name(s), "temporal");
    assert_int_equal(cb_train_parse_split("bogus", &s, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "cold-users"));
    uint32_t n, sizes[CB_MODEL_MAX_LAYERS];
    assert_int_equal(cb_train_parse_layers("item-layers", "32,8", &n, sizes, &err), CB_OK);
    assert_true(n == 2 && sizes[0] == 32 && sizes[1] == 8);
    assert_int_equal(cb_train_parse_layers("item-layers", "x", &n, sizes, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "item-layers"));
    cb_train_config tc;
    cb_train_config_default(&tc);
    assert_true(tc.model.lr == 0.003f && tc.valid_frac == 0 && tc.model.n_item_layers == 2);
    assert_null(tc.features.exclude_cols);
}

/* The TRAIN table's default texts and the library's own defaults
 * (cb_model_config_default, cb_feature_config_default) are the same values:
 * a key's default may not drift from what a caller of the model layer gets. */
static void train_defaults_agree(void **state) {
    (void)state;
    cb_train_config tc;
    cb_train_config_default(&tc);
    cb_model_config mc;
    cb_model_config_default(&mc);
    cb_feature_config fc;
    cb_feature_config_default(&fc);
    assert_memory_equal(&tc.model, &mc, sizeof mc);
    assert_int_equal(tc.features.top_k_popular, fc.top_k_popular);
    assert_int_equal(tc.features.age_mode, fc.age_mode);
    assert_int_equal(tc.features.scaler_rows, fc.scaler_rows);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(train_defaults),  cmocka_unit_test(set_parses_and_checks),
        cmocka_unit_test(unknown_keys_suggest), cmocka_unit_test(enumerate_kinds),
        cmocka_unit_test(synth_defaults_agree), cmocka_unit_test(shared_parsers),
        cmocka_unit_test(train_defaults_agree), cmocka_unit_test(given_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
