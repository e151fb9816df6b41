/* test_evalrun — the evaluation harness end to end on small synthetic data:
 * every model fitted and measured on one split, the two-tower model beating
 * the global mean on planted structure, the retrieval-size experiment's
 * invariants, the SVG writer, and `cbrec eval --json`'s required keys. */
#include "testutil.h"

#include "eval/evalrun.h"
#include "base/svg.h"

#include <jansson.h>
#include <math.h>

static cb_dataset *small_synth(void) {
    cb_synth_config sc;
    cb_synth_config_default(&sc);
    sc.n_users = 150;
    sc.n_items = 200;
    sc.n_genres = 6;
    sc.n_ratings = 6000;
    sc.noise = 0.3;
    sc.seed = 7;
    cb_dataset *ds = NULL;
    cb_error err;
    assert_int_equal(cb_synth_generate(&ds, &sc, &err), CB_OK);
    return ds;
}

static void small_config(cb_evalrun_config *c) {
    cb_evalrun_config_default(c);
    c->model.epochs = 8;
    c->model.batch_size = 64;
    c->model.lr = 0.003f;
    c->model.n_user_layers = c->model.n_item_layers = 1;
    c->model.user_layers[0] = c->model.item_layers[0] = 32;
    c->model.dim = 8;
    c->model.threads = 1;
    c->features.top_k_popular = 50;
}

static void models_parse(void **state) {
    (void)state;
    unsigned mask = 0;
    cb_error err;
    assert_int_equal(cb_evalrun_models_parse("twotower,bias", &mask, &err), CB_OK);
    assert_int_equal(mask, (1u << CB_EVALRUN_TWOTOWER) | (1u << CB_EVALRUN_BIAS));
    assert_int_equal(cb_evalrun_models_parse("global,pop,svd,pipeline", &mask, &err), CB_OK);
    assert_int_equal(mask, (1u << CB_EVALRUN_GLOBAL) | (1u << CB_EVALRUN_POPULARITY) | (1u << CB_EVALRUN_SVD) |
                               (1u << CB_EVALRUN_PIPELINE));
    assert_int_equal(cb_evalrun_models_parse("ease,knn,item-knn", &mask, &err), CB_OK);
    assert_int_equal(mask, (1u << CB_EVALRUN_EASE) | (1u << CB_EVALRUN_ITEM_KNN));
    assert_int_equal(cb_evalrun_models_parse("content-knn,content", &mask, &err), CB_OK);
    assert_int_equal(mask, 1u << CB_EVALRUN_CONTENT_KNN);
    assert_string_equal(cb_evalrun_model_name(CB_EVALRUN_CONTENT_KNN), "content-knn");
    assert_int_equal(cb_evalrun_models_parse("random", &mask, &err), CB_OK);
    assert_int_equal(mask, 1u << CB_EVALRUN_RANDOM);
    assert_string_equal(cb_evalrun_model_name(CB_EVALRUN_RANDOM), "random");
    assert_int_equal(cb_evalrun_models_parse("bias,nope", &mask, &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nope"));
    assert_int_equal(cb_evalrun_models_parse("", &mask, &err), CB_EINVAL);
    assert_string_equal(cb_evalrun_model_name(CB_EVALRUN_PIPELINE), "two-tower/pipeline");
}

/* Every model on one split; the two-tower model learns the planted taste. Then
 * the retrieval experiment on the same trained model. */
static void end_to_end(void **state) {
    (void)state;
    cb_dataset *ds = small_synth();
    cb_split sp;
    cb_error err;
    assert_int_equal(cb_split_make(&sp, ds, CB_SPLIT_RANDOM, 0.2, 3, &err), CB_OK);
    cb_evalrun_config c;
    small_config(&c);
    cb_eval_result *res = NULL;
    size_t n = 0;
    cb_bundle *rec = NULL;
    cb_train_result tr;
    int rc = cb_evalrun_split(&res, &n, &c, ds, &sp, 0, &rec, &tr, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    assert_int_equal(n, CB_EVALRUN_N_MODELS);
    assert_non_null(rec);
    assert_int_equal(tr.epochs_run, 8);
    double rmse[CB_EVALRUN_N_MODELS], ndcg[CB_EVALRUN_N_MODELS];
    for (size_t i = 0; i < n; i++) {
        int m = -1;
        for (int k = 0; k < CB_EVALRUN_N_MODELS; k++)
            if (!strcmp(res[i].model, cb_evalrun_model_name((cb_evalrun_model)k))) m = k;
        assert_true(m >= 0);
        rmse[m] = res[i].rating.rmse;
        ndcg[m] = res[i].topn.ndcg;
        /* the implicit ranker, EASE, item-kNN, content-kNN and the towers-only list of cbrec predict no rating */
        bool ranks_only = m == CB_EVALRUN_IMPLICIT || m == CB_EVALRUN_EASE || m == CB_EVALRUN_ITEM_KNN ||
                          m == CB_EVALRUN_CONTENT_KNN || m == CB_EVALRUN_CBREC_TOWERS || m == CB_EVALRUN_RANDOM;
        assert_true(ranks_only ? isnan(rmse[m]) : isfinite(rmse[m]));
        /* EASE, item-kNN and cbrec (its neighbour component) say which setting the validation carve chose */
        assert_int_equal(res[i].settings[0] != 0,
                         m == CB_EVALRUN_EASE || m == CB_EVALRUN_ITEM_KNN || m == CB_EVALRUN_CBREC);
        assert_int_equal(res[i].n_test, sp.n_test);
        /* the global mean has no top-N (all items tie); everything else has */
        assert_int_equal(res[i].has_topn, m != CB_EVALRUN_GLOBAL);
        if (res[i].has_topn) {
            assert_true(res[i].topn.ndcg >= 0 && res[i].topn.ndcg <= 1);
            assert_true(res[i].topn.coverage > 0 && res[i].topn.coverage <= 1);
            assert_true(res[i].topn.n_users_evaluated > 0);
            assert_int_equal(res[i].topn.recall_k, 20);
            assert_true(res[i].topn.recall_at >= res[i].topn.recall - 1e-12);
            assert_true(res[i].topn.long_tail >= 0 && res[i].topn.long_tail <= 1);
        }
    }
    /* planted structure: the towers must do clearly better than the mean */
    assert_true(rmse[CB_EVALRUN_TWOTOWER] < 0.9 * rmse[CB_EVALRUN_GLOBAL]);
    /* random order is the floor: popularity and cbrec's list well above it, and it is above 0 */
    assert_true(ndcg[CB_EVALRUN_RANDOM] > 0 && ndcg[CB_EVALRUN_POPULARITY] > 1.5 * ndcg[CB_EVALRUN_RANDOM]);
    assert_true(ndcg[CB_EVALRUN_CBREC] > 1.5 * ndcg[CB_EVALRUN_RANDOM]);
    cb_eval_summary s;
    assert_int_equal(cb_eval_summarize(&s, res, n, "two-tower", &err), CB_OK);
    assert_int_equal(s.n_folds, 1);

    /* retrieval experiment */
    const uint32_t sizes[] = {10, 50, 0};
    cb_retrieval_row rows[3];
    assert_int_equal(cb_evalrun_retrieval(rows, sizes, 3, rec, ds, &sp, &c.topn, 40, &err), CB_OK);
    assert_int_equal(rows[2].size, 0);
    assert_true(rows[0].n_users > 0 && rows[0].n_users <= 40);
    /* the full catalog is compared with itself */
    assert_true(fabs(rows[2].overlap - 1.0) < 1e-12);
    /* ... also when a list is shorter than K (fewer items left than K: it read n / K) */
    cb_topn_config long_list = c.topn;
    long_list.k = cb_dataset_n_items(ds) + 5;
    cb_retrieval_row wide[3];
    assert_int_equal(cb_evalrun_retrieval(wide, sizes, 3, rec, ds, &sp, &long_list, 10, &err), CB_OK);
    assert_true(fabs(wide[2].overlap - 1.0) < 1e-12);
    assert_true(wide[0].overlap > 0 && wide[0].overlap <= 1);
    /* more budget, more candidates; never more than the catalog */
    assert_true(rows[0].mean_candidates < rows[1].mean_candidates);
    assert_true(rows[1].mean_candidates <= rows[2].mean_candidates);
    assert_true(rows[2].mean_candidates <= cb_dataset_n_items(ds));
    /* ranking the whole catalog gives the highest mean predicted score */
    for (int i = 0; i < 2; i++) assert_true(rows[i].mean_score <= rows[2].mean_score + 1e-6);
    for (int i = 0; i < 3; i++) assert_true(rows[i].recall >= 0 && rows[i].recall <= 1);
    /* a model from another dataset is refused */
    cb_dataset *other = NULL;
    cb_synth_config sc;
    cb_synth_config_default(&sc);
    sc.n_users = 20, sc.n_items = 30, sc.n_ratings = 300;
    assert_int_equal(cb_synth_generate(&other, &sc, &err), CB_OK);
    assert_int_equal(cb_evalrun_retrieval(rows, sizes, 3, rec, other, &sp, &c.topn, 0, &err), CB_EINVAL);
    cb_dataset_free(other);

    cb_bundle_free(rec);
    free(res);
    cb_split_free(&sp);
    cb_dataset_free(ds);
}

/* Cold items: the retrieval experiment's lists rank the new items only, as
 * the eval table's do (they ranked the whole catalog, where the held-out
 * items hardly stand a chance: its figures contradicted the table's). */
static void retrieval_on_cold_items(void **state) {
    (void)state;
    cb_dataset *ds = small_synth();
    cb_split sp;
    cb_error err;
    assert_int_equal(cb_split_make(&sp, ds, CB_SPLIT_COLD_ITEMS, 0.2, 5, &err), CB_OK);
    cb_evalrun_config c;
    small_config(&c);
    c.model.epochs = 2;
    cb_bundle *rec = NULL;
    assert_int_equal(cb_evalrun_train(&rec, &c, ds, &sp, NULL, &err), CB_OK);
    uint32_t n_new = cb_dataset_n_items(ds);
    uint8_t *warm = calloc(n_new, 1);
    for (size_t j = 0; j < sp.n_train; j++) warm[ds->ratings[sp.train[j]].item] = 1;
    for (uint32_t i = 0; i < cb_dataset_n_items(ds); i++) n_new -= warm[i];
    const uint32_t sizes[] = {0};
    cb_retrieval_row row;
    c.topn.new_items_only = true;
    assert_int_equal(cb_evalrun_retrieval(&row, sizes, 1, rec, ds, &sp, &c.topn, 0, &err), CB_OK);
    assert_true(row.mean_candidates <= n_new + 1e-9);
    assert_true(row.recall > 0);
    free(warm);
    cb_bundle_free(rec);
    cb_split_free(&sp);
    cb_dataset_free(ds);
}

/* Cold-start users: held out entirely, ranked from their attributes alone. */
static void cold_users(void **state) {
    (void)state;
    cb_dataset *ds = small_synth();
    cb_split sp;
    cb_error err;
    assert_int_equal(cb_split_make(&sp, ds, CB_SPLIT_COLD_USERS, 0.2, 5, &err), CB_OK);
    cb_evalrun_config c;
    small_config(&c);
    c.models = (1u << CB_EVALRUN_TWOTOWER) | (1u << CB_EVALRUN_POPULARITY) | (1u << CB_EVALRUN_IMPLICIT);
    cb_eval_result *res = NULL;
    size_t n = 0;
    assert_int_equal(cb_evalrun_split(&res, &n, &c, ds, &sp, 0, NULL, NULL, &err), CB_OK);
    assert_int_equal(n, 3);
    assert_string_equal(res[0].model, "two-tower");
    assert_string_equal(res[1].model, "two-tower/implicit");
    assert_true(res[0].has_topn && res[0].topn.n_users_evaluated > 0);
    assert_true(res[1].has_topn && res[1].topn.n_users_evaluated > 0);
    assert_true(isfinite(res[0].rating.rmse));
    /* imputing the cold users' rating-derived features changes their vectors */
    c.cold_impute = false;
    cb_eval_result *raw = NULL;
    size_t n_raw = 0;
    c.models = 1u << CB_EVALRUN_TWOTOWER;
    assert_int_equal(cb_evalrun_split(&raw, &n_raw, &c, ds, &sp, 0, NULL, NULL, &err), CB_OK);
    assert_true(raw[0].rating.rmse != res[0].rating.rmse);
    free(raw);
    /* the implicit row is the same pipeline with objective retrieval: a
     * popularity prior in the ranking score, and objective both (which still
     * predicts ratings), change the lists */
    c.cold_impute = true;
    c.models = 1u << CB_EVALRUN_IMPLICIT;
    cb_eval_result *alt = NULL;
    size_t n_alt = 0;
    c.model.popularity_prior = 1.0f;
    assert_int_equal(cb_evalrun_split(&alt, &n_alt, &c, ds, &sp, 0, NULL, NULL, &err), CB_OK);
    c.model.popularity_prior = 0.0f;
    c.model.objective = CB_OBJECTIVE_BOTH;
    c.models = 1u << CB_EVALRUN_TWOTOWER;
    assert_int_equal(cb_evalrun_split(&alt, &n_alt, &c, ds, &sp, 0, NULL, NULL, &err), CB_OK);
    assert_int_equal(n_alt, 2);
    assert_string_equal(alt[0].model, "two-tower/implicit");
    assert_true(isnan(alt[0].rating.rmse));
    assert_true(isfinite(alt[1].rating.rmse));
    for (size_t i = 0; i < n_alt; i++) {
        assert_true(alt[i].has_topn && alt[i].topn.n_users_evaluated == res[1].topn.n_users_evaluated);
        assert_true(alt[i].topn.ndcg >= 0 && alt[i].topn.ndcg <= 1);
    }
    /* different models rank differently */
    assert_true(alt[0].topn.ndcg != res[1].topn.ndcg || alt[1].topn.ndcg != res[1].topn.ndcg);
    free(alt);
    free(res);
    cb_split_free(&sp);
    cb_dataset_free(ds);
}

static void svg(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "c.svg");
    cb_error err;
    double tl[4] = {0.5, 0.3, 0.25, 0.2}, vl[4] = {0.6, NAN, 0.4, 0.45};
    assert_int_equal(cb_svg_learning_curve(path, tl, vl, 4, "a <curve>", &err), CB_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[16384];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    assert_non_null(strstr(buf, "a &lt;curve&gt;"));
    assert_non_null(strstr(buf, "validation loss"));
    assert_non_null(strstr(buf, "</svg>"));
    /* 4 + 3 finite points drawn as circles */
    size_t circles = 0;
    for (const char *p = buf; (p = strstr(p, "<circle")); p++) circles++;
    assert_int_equal(circles, 7);
    double nan4[4] = {NAN, NAN, NAN, NAN};
    assert_int_equal(cb_svg_learning_curve(path, nan4, NULL, 4, NULL, &err), CB_EINVAL);
    double x[3] = {25, 100, 1000}, y[3] = {0.1, 0.2, 0.25};
    cb_svg_series s = {"recall", x, y, 3};
    cb_svg_chart ch = {"log", "size", "value", true, 0, 0, true};
    assert_int_equal(cb_svg_line_chart(path, &ch, &s, 1, &err), CB_OK);
    free(path);
    tu_rmrf(dir);
    free(dir);
}

/* `cbrec eval --json` on a synthetic folder: the required keys. */
static void cli_json(void **state) {
    (void)state;
    const char *cbrec = getenv("CBREC");
    if (!cbrec) cbrec = "./cbrec";
    if (access(cbrec, X_OK)) TU_SKIP("%s not built (run through make test)", cbrec);
    cb_dataset *ds = small_synth();
    char *dir = tu_tmpdir();
    cb_error err;
    assert_int_equal(cb_synth_write(ds, dir, &err), CB_OK);
    char *out = tu_path(dir, "out.json");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s eval --data %s --split per-user --models twotower,global,bias,popularity,ease,item-knn --epochs 3 --batch 64 --dim 8 "
             "--user-layers 16 --item-layers 16 --threads 1 --top-k-popular 20 -q --json > %s",
             cbrec, dir, out);
    assert_int_equal(system(cmd), 0);
    json_error_t je;
    json_t *j = json_load_file(out, 0, &je);
    assert_non_null(j);
    json_t *models = json_object_get(j, "models");
    assert_true(json_is_array(models));
    assert_int_equal(json_array_size(models), 6);
    const char *want[6] = {"two-tower", "global-mean", "bias", "popularity", "ease", "item-knn"};
    for (size_t i = 0; i < 6; i++) {
        json_t *m = json_array_get(models, i);
        assert_string_equal(json_string_value(json_object_get(m, "name")), want[i]);
        /* a rating predictor has a number, a ranker only (ease, item-knn) null */
        assert_true(i < 4 ? json_is_real(json_object_get(m, "mean_rmse")) : json_is_null(json_object_get(m, "mean_rmse")));
        assert_true(json_is_array(json_object_get(m, "rmse")));
        assert_true(json_is_array(json_object_get(m, "folds")));
        if (i == 1) continue; /* the global mean has no top-N */
        const char *keys[] = {"mean_ndcg10", "mean_recall20", "mean_hit_rate10", "mean_coverage", "mean_pop10",
                              "mean_long_tail10"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) assert_true(json_is_real(json_object_get(m, keys[k])));
    }
    /* the chosen settings are listed */
    assert_true(json_is_array(json_object_get(json_array_get(models, 4), "settings")));
    assert_true(json_is_real(json_object_get(json_array_get(models, 0), "ndcg")));
    assert_true(json_is_integer(json_object_get(j, "k")));
    json_decref(j);
    /* a usage error exits with status 2 */
    snprintf(cmd, sizeof cmd, "%s eval --data %s --models nope -q > /dev/null 2>&1", cbrec, dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    free(out);
    tu_rmrf(dir);
    free(dir);
    cb_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(models_parse), cmocka_unit_test(end_to_end), cmocka_unit_test(cold_users),
        cmocka_unit_test(retrieval_on_cold_items),
        cmocka_unit_test(svg),          cmocka_unit_test(cli_json),
    };
    return cmocka_run_group_tests_name("evalrun", tests, NULL, NULL);
}
