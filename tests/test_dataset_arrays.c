/* test_dataset_arrays — the public calls the Python binding added, through
 * include/cbrec.h alone: cb_dataset_builder (a dataset from arrays: counts,
 * catalog order, a catalog alone keeping unrated items, titles giving years,
 * columns, refusals naming the row) and a progress tick's non-zero return
 * stopping training inside an epoch. */
#include "testutil.h"

#include "cbrec.h"
#include <jansson.h>
#include <math.h>

static cb_dataset *build_small(void) {
    cb_error err = {0};
    cb_dataset_builder *b = NULL;
    assert_int_equal(cb_dataset_builder_create(&b, NULL, NULL, &err), CB_OK);
    const char *ids[] = {"m1", "m2", "m3"}, *titles[] = {"Heat (1995)", "Up (2009)", "Untitled"};
    const char *genres[] = {"Action|Crime", "Animation", NULL};
    const double budget[] = {60, NAN, 5};
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "title", "title", ids, titles, NULL, 3, NULL, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "genres", "multi", ids, genres, NULL, 3, "|", &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "budget", "numeric", ids, NULL, budget, 3, NULL, &err), CB_OK);
    const char *users[] = {"u1", "u1", "u2", "u3"}, *items[] = {"m2", "m1", "m2", "m9"};
    const float values[] = {4, 5, 3, 1};
    const int64_t ts[] = {10, 20, 30, 40};
    assert_int_equal(cb_dataset_builder_add_ratings(b, users, items, values, ts, 4, &err), CB_OK);
    cb_dataset *ds = NULL;
    assert_int_equal(cb_dataset_builder_finish(b, &ds, &err), CB_OK);
    cb_dataset *again = NULL;
    assert_int_equal(cb_dataset_builder_finish(b, &again, &err), CB_EINVAL); /* once */
    assert_null(again);
    cb_dataset_builder_free(b);
    return ds;
}

static void arrays_make_a_dataset(void **state) {
    cb_dataset *ds = build_small();
    assert_int_equal(cb_dataset_user_count(ds), 3);
    assert_int_equal(cb_dataset_item_count(ds), 4); /* m3 unrated but in the catalog; m9 from a rating */
    assert_int_equal(cb_dataset_rating_count(ds), 4);
    assert_string_equal(cb_dataset_layout(ds), "arrays");
    char *js = NULL;
    cb_error err = {0};
    assert_int_equal(cb_dataset_describe(ds, NULL, &js, &err), CB_OK);
    json_t *d = json_loads(js, 0, NULL);
    free(js);
    assert_non_null(d);
    assert_true(json_is_true(json_object_get(d, "timestamps")));
    assert_int_equal(json_integer_value(json_object_get(d, "titles")), 3);
    json_t *cols = json_object_get(d, "item_columns");
    const char *want[] = {"genres", "budget", "year"};
    assert_int_equal(json_array_size(cols), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(cols, i), "name")), want[i]);
    /* year from "(1995)" and "(2009)": missing for "Untitled" and the unlisted m9 */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cols, 2), "missing")), 2);
    json_decref(d);
    cb_dataset_close(ds);
}

static void arrays_refuse_bad_rows(void **state) {
    cb_error err = {0};
    cb_dataset_builder *b = NULL;
    cb_dataset *ds = NULL;
    const char *u[] = {"a", "a"}, *it[] = {"x", "x"}, *empty[] = {"a", ""};
    const float y[] = {1, 2};
    assert_int_equal(cb_dataset_builder_create(&b, "mine", NULL, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ratings(b, empty, it, y, NULL, 2, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "ratings[1]: empty user id"));
    assert_int_equal(cb_dataset_builder_add_ratings(b, u, it, y, NULL, 2, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ratings(b, u, it, NULL, NULL, 2, &err), CB_EINVAL); /* mixed */
    assert_int_equal(cb_dataset_builder_add_column(b, 1, "title", "title", u, u, NULL, 1, NULL, &err), CB_EINVAL);
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "g", "sideways", it, it, NULL, 1, NULL, &err), CB_EINVAL);
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "g", "categorical", it, it, NULL, 2, NULL, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "items column 'g'[1]: id 'x' given twice (first at [0])"));
    /* a number a float cannot hold made the features infinite, and training "diverge" */
    const char *two[] = {"x", "y"};
    const double inf[] = {1, INFINITY}, huge[] = {-1e300, 1};
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "p", "numeric", two, NULL, inf, 2, NULL, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "items column 'p'[1]: inf is not a finite number"));
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "q", "numeric", two, NULL, huge, 2, NULL, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "items column 'q'[0]: -1e+300 is not a finite number"));
    assert_int_equal(cb_dataset_builder_finish(b, &ds, &err), CB_EPARSE);
    /* named by position among the rows given (the failed call's rows are not kept) */
    assert_non_null(strstr(err.msg, "mine: ratings[1]: duplicate rating for user 'a' and item 'x' (first at [0])"));
    assert_null(ds);
    cb_dataset_builder_free(b);

    cb_config *cfg = NULL;
    assert_int_equal(cb_config_create(&cfg, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(cfg, "range", "1,5", &err), CB_OK);
    assert_int_equal(cb_dataset_builder_create(&b, NULL, cfg, &err), CB_OK);
    const float high[] = {9};
    assert_int_equal(cb_dataset_builder_add_ratings(b, u, it, high, NULL, 1, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "outside the declared range"));
    const int64_t no_time[] = {INT64_MIN}; /* numpy's NaT: missing, not a time before 1970 */
    assert_int_equal(cb_dataset_builder_add_ratings(b, u, it, y, no_time, 1, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "ratings[0]: no timestamp"));
    assert_int_equal(cb_dataset_builder_finish(b, &ds, &err), CB_EPARSE); /* no ratings */
    cb_dataset_builder_free(b);
    cb_config_free(cfg);
    cb_dataset_builder_free(NULL);
}

/* A catalog alone (no titles, no columns) keeps every item and user, rated
 * or not, numbered in its order; an id twice in it is named by position. */
static void arrays_catalog_alone(void **state) {
    cb_error err = {0};
    cb_dataset_builder *b = NULL;
    const char *items[] = {"m1", "m2", "m3", "m4"}, *users[] = {"u1", "u2", "u3"};
    const char *ru[] = {"u1", "u2"}, *ri[] = {"m3", "m1"};
    const float y[] = {4, 5};
    assert_int_equal(cb_dataset_builder_create(&b, NULL, NULL, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ids(b, 0, items, 4, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ids(b, 1, users, 3, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ratings(b, ru, ri, y, NULL, 2, &err), CB_OK);
    cb_dataset *ds = NULL;
    assert_int_equal(cb_dataset_builder_finish(b, &ds, &err), CB_OK);
    assert_int_equal(cb_dataset_item_count(ds), 4);
    assert_int_equal(cb_dataset_user_count(ds), 3);
    cb_dataset_close(ds);
    cb_dataset_builder_free(b);

    const char *twice[] = {"m1", "m2", "m1"};
    assert_int_equal(cb_dataset_builder_create(&b, NULL, NULL, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ids(b, 0, twice, 3, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "item ids[2]: id 'm1' given twice (first at [0])"));
    cb_dataset_builder_free(b);
}

typedef struct ticks {
    int calls, stop_at, last_end_of_epoch;
    unsigned last_epoch;
} ticks;

static int on_tick(const cb_progress *p, void *ctx) {
    ticks *t = ctx;
    t->calls++;
    t->last_end_of_epoch = p->end_of_epoch;
    t->last_epoch = p->epoch;
    return t->calls == t->stop_at; /* then once more at the (partial) epoch's end: stop */
}

/* A synthetic dataset written by the library; a tick returning non-zero in
 * the first epoch stops training there (one epoch run of 20), with 1 or 2
 * training threads. */
static void tick_stops_training(void **state) {
    char *dir = tu_tmpdir(), *data = tu_path(dir, "data");
    cb_error err = {0};
    assert_int_equal(cb_synth_write_folder(data, NULL, &err), CB_OK);
    cb_dataset *ds = NULL;
    assert_int_equal(cb_dataset_open(&ds, data, NULL, &err), CB_OK);
    for (int threads = 1; threads <= 2; threads++) {
        cb_config *cfg = NULL;
        char tv[16];
        snprintf(tv, sizeof tv, "%d", threads);
        assert_int_equal(cb_config_create(&cfg, CB_CONFIG_TRAIN, &err), CB_OK);
        assert_int_equal(cb_config_set(cfg, "epochs", "20", &err), CB_OK);
        assert_int_equal(cb_config_set(cfg, "threads", tv, &err), CB_OK);
        ticks t = {.stop_at = 3};
        cb_train_report rep = {.size = sizeof rep};
        cb_recommender *rec = NULL;
        assert_int_equal(cb_train(&rec, ds, cfg, on_tick, &t, &rep, &err), CB_OK);
        assert_non_null(rec);
        assert_int_equal(rep.epochs_run, 1);
        assert_int_equal(t.calls, 4); /* three ticks, then the stopped epoch's end */
        assert_true(t.last_end_of_epoch && t.last_epoch == 1);
        assert_true(isfinite(rep.train_loss));
        cb_recommender_free(rec);
        cb_config_free(cfg);
    }
    cb_dataset_close(ds);
    tu_rmrf(dir);
    free(dir);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arrays_make_a_dataset),
        cmocka_unit_test(arrays_refuse_bad_rows),
        cmocka_unit_test(arrays_catalog_alone),
        cmocka_unit_test(tick_stops_training),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
