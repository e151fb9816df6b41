/* test_eval_api — the public evaluation API: the EVAL key table (defaults in
 * one place, shared with the TRAIN table; bad values refused), cb_evaluate on
 * a small synthetic dataset (the JSON report with the "cbrec" row beside the
 * baselines), and the CLI's evaluation commands built on include/ alone. */
#include "testutil.h"

#include "eval/eval_config.h"
#include "model/train_config.h"

#include <jansson.h>
#include <math.h>

static void eval_table_defaults_and_bad_values(void **state) {
    (void)state;
    cb_config *c;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&c, CB_CONFIG_EVAL, &err), CB_OK);
    assert_string_equal(cb_config_get(c, "k"), "10");
    assert_string_equal(cb_config_get(c, "threshold"), "auto");
    assert_string_equal(cb_config_get(c, "recall-k"), "20");
    assert_string_equal(cb_config_get(c, "tune-frac"), "0.2");
    assert_null(cb_config_get(c, "implicit-cold")); /* gone with the separate implicit pipeline */
    assert_string_equal(cb_config_get(c, "topn"), "true");
    const cb_eval_config *v = cb_config_values(c, CB_CONFIG_EVAL);
    assert_non_null(v);
    assert_true(v->run.topn.k == 10 && v->run.topn.threshold == (float)CB_THRESHOLD_AUTO && v->run.topn.recall_k == 20);
    assert_int_equal(cb_config_set(c, "threshold", "3.5", &err), CB_OK);
    assert_string_equal(cb_config_get(c, "threshold"), "3.5");
    assert_int_equal(cb_config_set(c, "threshold", "auto", &err), CB_OK);
    assert_true(v->run.topn_enabled && v->run.tune_frac == 0.2 && v->run.valid_frac == 0);
    /* a bad value is refused, naming the key, and leaves the config as it was */
    assert_int_equal(cb_config_set(c, "k", "0", &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "k"));
    assert_string_equal(cb_config_get(c, "k"), "10");
    assert_int_equal(cb_config_set(c, "cold-impute", "sometimes", &err), CB_EINVAL);
    assert_int_equal(cb_config_set(c, "tune-frac", "0.95", &err), CB_EINVAL);
    assert_int_equal(cb_config_set(c, "no-such-key", "1", &err), CB_ENOTFOUND);
    /* an unknown model name is refused when the run is resolved */
    assert_int_equal(cb_config_set(c, "models", "cbrec,nonsense", &err), CB_OK);
    cb_evalrun_config ec;
    assert_int_equal(cb_eval_config_resolve(&ec, c, NULL, false, &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nonsense"));
    assert_int_equal(cb_config_check(c, &err), CB_ENOTFOUND); /* what the CLI reports as a usage error */
    assert_int_equal(cb_config_set(c, "models", "cbrec,pop", &err), CB_OK);
    assert_int_equal(cb_eval_config_resolve(&ec, c, NULL, false, &err), CB_OK);
    assert_int_equal(cb_config_check(c, &err), CB_OK);
    assert_int_equal(ec.models, (1u << CB_EVALRUN_CBREC) | (1u << CB_EVALRUN_POPULARITY));
    cb_config_free(c);
}

/* The harness takes its training defaults from the TRAIN table, and the
 * "cbrec" row is among the default models. */
static void evalrun_defaults_come_from_train(void **state) {
    (void)state;
    cb_evalrun_config ec;
    cb_train_config tc;
    cb_evalrun_config_default(&ec);
    cb_train_config_default(&tc);
    assert_memory_equal(&ec.model, &tc.model, sizeof tc.model);
    assert_memory_equal(&ec.features, &tc.features, sizeof tc.features);
    assert_memory_equal(&ec.train, &tc, sizeof tc);
    assert_true(ec.scale_targets == tc.scale_targets);
    assert_true(ec.models & (1u << CB_EVALRUN_CBREC));
    assert_string_equal(cb_evalrun_model_name(CB_EVALRUN_CBREC), "cbrec");
    /* a TRAIN setting reaches both the cbrec row and the two-tower rows */
    cb_config *t;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&t, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(t, "epochs", "3", &err), CB_OK);
    assert_int_equal(cb_eval_config_resolve(&ec, NULL, t, false, &err), CB_OK);
    assert_int_equal(ec.train.model.epochs, 3);
    assert_int_equal(ec.model.epochs, 3);
    cb_config_free(t);
}

static const json_t *model_row(const json_t *root, const char *name) {
    const json_t *models = json_object_get(root, "models");
    for (size_t i = 0; i < json_array_size(models); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(models, i), "name")), name))
            return json_array_get(models, i);
    return NULL;
}

static void evaluate_reports_cbrec_and_baselines(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    cb_error err = {0};
    cb_config *syn, *ev, *tr;
    assert_int_equal(cb_config_create(&syn, CB_CONFIG_SYNTH, &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "users", "150", &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "items", "200", &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "ratings", "5000", &err), CB_OK);
    assert_int_equal(cb_synth_write_folder(dir, syn, &err), CB_OK);
    cb_dataset *ds;
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    assert_int_equal(cb_config_create(&ev, CB_CONFIG_EVAL, &err), CB_OK);
    assert_int_equal(cb_config_create(&tr, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(ev, "models", "cbrec,popularity,ease,bias", &err), CB_OK);
    assert_int_equal(cb_config_set(tr, "epochs", "2", &err), CB_OK);
    char *report = NULL;
    /* configs of the wrong kind are refused */
    assert_int_equal(cb_evaluate(ds, tr, tr, NULL, NULL, &report, &err), CB_EINVAL);
    assert_null(report);
    assert_int_equal(cb_evaluate(ds, ev, tr, NULL, NULL, &report, &err), CB_OK);
    json_error_t je;
    json_t *root = json_loads(report, 0, &je);
    assert_non_null(root);
    assert_int_equal(json_array_size(json_object_get(root, "models")), 4);
    assert_int_equal(json_integer_value(json_object_get(root, "k")), 10);
    const json_t *cb = model_row(root, "cbrec"), *pop = model_row(root, "popularity"), *ease = model_row(root, "ease");
    assert_non_null(cb);
    assert_non_null(pop);
    assert_non_null(ease);
    for (const json_t *const *m = (const json_t *const[]){cb, pop, ease, NULL}; *m; m++) {
        double ndcg = json_number_value(json_object_get(*m, "mean_ndcg10"));
        double r20 = json_number_value(json_object_get(*m, "mean_recall20"));
        assert_true(ndcg > 0 && ndcg <= 1 && r20 > 0 && r20 <= 1);
    }
    /* cbrec against the stronger of popularity and EASE, user by user (bias is no top-N baseline); the
     * same users evaluated in both rows, so the mean difference is the difference of the means */
    const json_t *best = json_number_value(json_object_get(pop, "mean_ndcg10")) >
                                 json_number_value(json_object_get(ease, "mean_ndcg10")) ? pop : ease;
    const json_t *vs = json_object_get(cb, "vs_baseline");
    assert_non_null(vs);
    assert_string_equal(json_string_value(json_object_get(vs, "model")),
                        json_string_value(json_object_get(best, "name")));
    assert_true(fabs(json_number_value(json_object_get(vs, "ndcg_diff")) -
                     (json_number_value(json_object_get(cb, "mean_ndcg10")) -
                      json_number_value(json_object_get(best, "mean_ndcg10")))) < 1e-5);
    double se = json_number_value(json_object_get(vs, "se"));
    assert_true(se > 0 && se < 0.1);
    assert_true(json_integer_value(json_object_get(vs, "users")) > 50);
    assert_null(json_object_get(pop, "vs_baseline"));
    assert_null(json_object_get(ease, "vs_baseline"));
    assert_null(json_object_get(model_row(root, "bias"), "vs_baseline"));
    /* popularity and bias predict ratings, EASE does not; cbrec does with the MSE head */
    assert_true(json_is_number(json_object_get(pop, "mean_rmse")));
    assert_true(json_is_null(json_object_get(ease, "mean_rmse")));
    const json_t *rm = json_object_get(cb, "mean_rmse");
    assert_true(json_is_null(rm) || (json_number_value(rm) > 0.3 && json_number_value(rm) < 2.0));
    /* the same seed gives the same figures */
    char *again = NULL;
    assert_int_equal(cb_evaluate(ds, ev, tr, NULL, NULL, &again, &err), CB_OK);
    json_t *root2 = json_loads(again, 0, &je);
    assert_true(json_number_value(json_object_get(cb, "mean_ndcg10")) ==
                json_number_value(json_object_get(model_row(root2, "cbrec"), "mean_ndcg10")));
    json_decref(root2);
    free(again);
    json_decref(root);
    free(report);
    cb_config_free(ev);
    cb_config_free(tr);
    cb_config_free(syn);
    cb_dataset_close(ds);
    tu_rmrf(dir);
    free(dir);
}

/* cb_evaluate's report of the folder dir (models; TRAIN keys and values
 * train_kv[0..n_kv) in pairs) as JSON; the caller decrefs it. */
static json_t *evaluate_folder(const char *dir, const char *models, const char *const *train_kv, size_t n_kv) {
    cb_error err = {0};
    cb_dataset *ds;
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    cb_config *ev, *tr;
    assert_int_equal(cb_config_create(&ev, CB_CONFIG_EVAL, &err), CB_OK);
    assert_int_equal(cb_config_create(&tr, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(ev, "models", models, &err), CB_OK);
    for (size_t k = 0; k + 1 < n_kv; k += 2) assert_int_equal(cb_config_set(tr, train_kv[k], train_kv[k + 1], &err), CB_OK);
    char *report = NULL;
    if (cb_evaluate(ds, ev, tr, NULL, NULL, &report, &err)) fail_msg("%s", err.msg);
    json_t *root = json_loads(report, 0, NULL);
    assert_non_null(root);
    free(report);
    cb_config_free(ev);
    cb_config_free(tr);
    cb_dataset_close(ds);
    return root;
}

/* Implicit events (user, item, time; no rating column): with the default
 * threshold every held-out event is relevant, so the lists get top-N
 * figures (a threshold of 4 had made every event irrelevant: no metric at
 * all); on 1-5 ratings "auto" is 4, as before. */
static void implicit_events_get_topn(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    size_t cap = 160 * 30 * 24 + 64, len = 0;
    char *text = malloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "user_id,item_id,timestamp\n");
    for (int u = 0; u < 160; u++)
        for (int j = 0; j < 30; j++) /* each user: items near its group's, so there is something to learn */
            len += (size_t)snprintf(text + len, cap - len, "u%d,t%d,%d\n", u, (u % 8) * 20 + (j * 7 + u) % 40,
                                    1000 + j);
    free(tu_write(dir, "ratings.csv", text));
    free(text);
    json_t *root = evaluate_folder(dir, "popularity,ease", NULL, 0);
    print_message("implicit events: threshold %g\n", json_number_value(json_object_get(root, "threshold")));
    assert_true(json_number_value(json_object_get(root, "threshold")) <= 1.0); /* every event (y = 1) */
    for (const char *const *m = (const char *const[]){"popularity", "ease", NULL}; *m; m++) {
        double ndcg = json_number_value(json_object_get(model_row(root, *m), "mean_ndcg10"));
        assert_true(ndcg > 0 && ndcg <= 1);
    }
    json_decref(root);
    tu_rmrf(dir);
    free(dir);
}

/* The cold-items protocol: the cbrec and pipeline rows rank the new items
 * only, whatever their ids hold (the cbrec row's allow list split "t,3" into
 * two unknown ids; the pipeline row named items with training interactions);
 * popularity, which cannot rank them, has no figure. */
static void cold_items_rows_rank_new_items(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), text[80 * 12 * 16 + 32] = "user,item,rating\n";
    for (int row = 0, u, j; row < 80 * 12; row++) { /* 12 ratings of each of 80 users, 40 items */
        u = row / 12, j = row % 12;
        size_t at = strlen(text);
        snprintf(text + at, sizeof text - at, "u%d,\"t,%d\",%d\n", u, (u * 5 + j * 3) % 40, 1 + (u + j) % 5);
    }
    free(tu_write(dir, "ratings.csv", text));
    free(tu_write(dir, "cbrec.schema", "ratings = ratings.csv\n"));
    const char *train[] = {"split", "cold-items", "epochs", "1", "user-layers", "16", "item-layers", "16", "dim", "8"};
    json_t *root = evaluate_folder(dir, "cbrec,pipeline,popularity,ease", train, 10);
    assert_non_null(model_row(root, "cbrec"));
    assert_non_null(model_row(root, "two-tower/pipeline"));
    /* popularity has nothing to rank new items by (a training count of 0 each):
     * no figure where the catalog's id order had stood as its NDCG, and why */
    const json_t *pop = model_row(root, "popularity");
    assert_true(json_is_null(json_object_get(pop, "mean_ndcg10")));
    const json_t *fold = json_array_get(json_object_get(pop, "folds"), 0);
    assert_true(json_integer_value(json_object_get(fold, "n_users_tied")) > 0);
    assert_true(json_integer_value(json_object_get(fold, "n_users_tied")) ==
                json_integer_value(json_object_get(fold, "n_users_evaluated")));
    const char *why = json_string_value(json_array_get(json_object_get(pop, "settings"), 0));
    assert_non_null(why);
    assert_non_null(strstr(why, "no ranking"));
    assert_true(json_number_value(json_object_get(model_row(root, "cbrec"), "mean_ndcg10")) > 0);
    /* nor EASE, whose tuning on the carve could measure nothing either: not run, and said */
    why = json_string_value(json_array_get(json_object_get(model_row(root, "ease"), "settings"), 0));
    assert_non_null(why);
    assert_non_null(strstr(why, "not tuned: new items have no interactions to score them by"));
    assert_non_null(strstr(why, "no ranking"));
    json_decref(root);
    tu_rmrf(dir);
    free(dir);
}

/* A row that ranks on some folds only: its top-N means are over those, and
 * the report says how many (a mean over one of two folds had read as both). */
static void topn_means_over_some_folds_said(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    free(tu_write(dir, "ratings.csv", "user,item,rating,timestamp\n1,a,5,1\n1,b,5,2\n1,c,5,3\n2,a,5,4\n2,d,5,5\n"
                                      "2,e,5,6\n3,b,5,7\n3,c,4,8\n4,d,5,9\n4,e,4,10\n"));
    free(tu_write(dir, "cbrec.schema", "ratings = ratings.csv\n"));
    /* f1: training counts differ, popularity ranks; f2: every item once in training, every candidate ties */
    free(tu_write(dir, "f1.base", "1\ta\t5\t1\n1\tb\t5\t2\n2\ta\t5\t4\n2\td\t5\t5\n3\tb\t5\t7\n3\tc\t4\t8\n"
                                  "4\td\t5\t9\n4\te\t4\t10\n"));
    free(tu_write(dir, "f1.test", "1\tc\t5\t3\n2\te\t5\t6\n"));
    free(tu_write(dir, "f2.base", "1\ta\t5\t1\n2\td\t5\t5\n3\tb\t5\t7\n3\tc\t4\t8\n4\te\t4\t10\n"));
    free(tu_write(dir, "f2.test", "1\tb\t5\t2\n1\tc\t5\t3\n2\ta\t5\t4\n2\te\t5\t6\n4\td\t5\t9\n"));
    cb_error err = {0};
    cb_dataset *ds;
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    cb_config *ev;
    assert_int_equal(cb_config_create(&ev, CB_CONFIG_EVAL, &err), CB_OK);
    assert_int_equal(cb_config_set(ev, "models", "popularity", &err), CB_OK);
    assert_int_equal(cb_config_set(ev, "folds", "f1,f2", &err), CB_OK);
    char *report = NULL;
    if (cb_evaluate(ds, ev, NULL, NULL, NULL, &report, &err)) fail_msg("%s", err.msg);
    json_t *root = json_loads(report, 0, NULL);
    const json_t *pop = model_row(root, "popularity"), *folds = json_object_get(pop, "folds");
    assert_true(json_is_number(json_object_get(json_array_get(folds, 0), "ndcg")));
    assert_true(json_is_null(json_object_get(json_array_get(folds, 1), "ndcg")));
    const json_t *part = json_object_get(pop, "topn_splits");
    assert_non_null(part);
    assert_int_equal(json_integer_value(json_object_get(part, "measured")), 1);
    assert_int_equal(json_integer_value(json_object_get(part, "of")), 2);
    json_decref(root);
    free(report);
    cb_config_free(ev);
    cb_dataset_close(ds);
    tu_rmrf(dir);
    free(dir);
}

/* Over two folds whose test parts hold the same users, our row's comparison
 * counts each user once (a standard error clustered by user): the distinct
 * users and the (user, fold) pairs both said, and the mean over the pairs. */
static void comparison_over_folds_clusters_users(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), cmd[4096];
    cb_error err = {0};
    cb_config *syn;
    assert_int_equal(cb_config_create(&syn, CB_CONFIG_SYNTH, &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "users", "120", &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "items", "150", &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "ratings", "4000", &err), CB_OK);
    assert_int_equal(cb_synth_write_folder(dir, syn, &err), CB_OK);
    cb_config_free(syn);
    snprintf(cmd, sizeof cmd, "awk -F, 'NR > 1 { l = $1 \"\\t\" $2 \"\\t\" $3 \"\\t\" $4; "
             "if (NR %% 3 == 0) print l > \"%1$s/f1.test\"; else print l > \"%1$s/f1.base\"; "
             "if (NR %% 3 == 1) print l > \"%1$s/f2.test\"; else print l > \"%1$s/f2.base\" }' %1$s/ratings.csv", dir);
    assert_int_equal(system(cmd), 0);
    cb_dataset *ds;
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    cb_config *ev, *tr;
    assert_int_equal(cb_config_create(&ev, CB_CONFIG_EVAL, &err), CB_OK);
    assert_int_equal(cb_config_create(&tr, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(ev, "models", "two-tower,popularity", &err), CB_OK);
    assert_int_equal(cb_config_set(ev, "folds", "f1,f2", &err), CB_OK);
    assert_int_equal(cb_config_set(tr, "epochs", "1", &err), CB_OK);
    assert_int_equal(cb_config_set(tr, "user-layers", "16", &err), CB_OK);
    assert_int_equal(cb_config_set(tr, "item-layers", "16", &err), CB_OK);
    char *report = NULL;
    if (cb_evaluate(ds, ev, tr, NULL, NULL, &report, &err)) fail_msg("%s", err.msg);
    json_t *root = json_loads(report, 0, NULL);
    const json_t *tt = model_row(root, "two-tower"), *vs = json_object_get(tt, "vs_baseline");
    assert_non_null(vs);
    json_int_t users = json_integer_value(json_object_get(vs, "users"));
    json_int_t pairs = json_integer_value(json_object_get(vs, "user_splits"));
    const json_t *folds = json_object_get(tt, "folds");
    json_int_t per_fold = 0;
    double weighted = 0;
    for (size_t k = 0; k < 2; k++) {
        const json_t *fv = json_object_get(json_array_get(folds, k), "vs_baseline");
        json_int_t n = json_integer_value(json_object_get(fv, "users"));
        per_fold += n, weighted += n * json_number_value(json_object_get(fv, "ndcg_diff"));
    }
    assert_int_equal(pairs, per_fold);       /* every (user, fold) pair compared */
    assert_true(users <= 120 && users < pairs); /* users in both folds' test parts count once */
    assert_true(fabs(json_number_value(json_object_get(vs, "ndcg_diff")) - weighted / (double)pairs) < 1e-5); /* the report rounds to 6 digits */
    assert_true(json_number_value(json_object_get(vs, "se")) > 0);
    json_decref(root);
    free(report);
    cb_config_free(ev);
    cb_config_free(tr);
    cb_dataset_close(ds);
    tu_rmrf(dir);
    free(dir);
}

/* Every CLI command (cmd_eval.c among them) compiles against include/ alone. */
static void cli_uses_public_header_only(void **state) {
    (void)state;
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "for f in src/cli/*.c; do %s -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -fsyntax-only \"$f\" "
             "|| exit 1; done 2>&1",
             cc);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512];
    while (fgets(line, sizeof line, p)) fputs(line, stderr);
    int st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eval_table_defaults_and_bad_values),
        cmocka_unit_test(evalrun_defaults_come_from_train),
        cmocka_unit_test(evaluate_reports_cbrec_and_baselines),
        cmocka_unit_test(implicit_events_get_topn),
        cmocka_unit_test(cold_items_rows_rank_new_items),
        cmocka_unit_test(topn_means_over_some_folds_said),
        cmocka_unit_test(comparison_over_folds_clusters_users),
        cmocka_unit_test(cli_uses_public_header_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
