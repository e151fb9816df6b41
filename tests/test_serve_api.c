/* test_serve_api — the public calls a server and the bindings need beside the
 * lists (cbrec.h "serving"): item genres and rating statistics, the
 * vocabulary, a user's history, the 2-D PCA map, and recommend with a user id
 * AND live events (a known user plus newer ratings; a user known only from
 * them). A small model trained by the test on synthetic data. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>

typedef struct fixture {
    char *dir;
    cb_recommender *rec;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    cb_error err = {0};
    cb_config *syn, *tr;
    cb_dataset *ds;
    assert_int_equal(cb_config_create(&syn, CB_CONFIG_SYNTH, &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "users", "80", &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "items", "120", &err), CB_OK);
    assert_int_equal(cb_config_set(syn, "ratings", "3000", &err), CB_OK);
    assert_int_equal(cb_synth_write_folder(f->dir, syn, &err), CB_OK);
    assert_int_equal(cb_dataset_open(&ds, f->dir, NULL, &err), CB_OK);
    assert_int_equal(cb_config_create(&tr, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(tr, "epochs", "2", &err), CB_OK);
    assert_int_equal(cb_config_set(tr, "dim", "8", &err), CB_OK);
    assert_int_equal(cb_train(&f->rec, ds, tr, NULL, NULL, NULL, &err), CB_OK);
    cb_config_free(syn);
    cb_config_free(tr);
    cb_dataset_close(ds);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    cb_recommender_free(f->rec);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void items_and_history(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    size_t n_items = cb_recommender_item_count(f->rec), n_users = cb_recommender_user_count(f->rec);
    size_t *counts = calloc(n_items, sizeof *counts);
    double *means = calloc(n_items, sizeof *means);
    assert_int_equal(cb_recommender_item_rating_stats(f->rec, counts, means, &err), CB_OK);
    /* every interaction of every user's history is counted once, under its item */
    size_t *again = calloc(n_items, sizeof *again), total = 0, hist = 0;
    for (size_t u = 0; u < n_users; u++)
        for (size_t j = 0; j < cb_recommender_user_n_ratings(f->rec, u); j++) {
            size_t item;
            float y;
            int64_t t;
            assert_int_equal(cb_recommender_user_rating(f->rec, u, j, &item, &y, &t, &err), CB_OK);
            assert_true(item < n_items && y >= 0.5f && y <= 5 && t >= 0);
            again[item]++;
            hist++;
        }
    for (size_t i = 0; i < n_items; i++) {
        assert_int_equal(counts[i], again[i]);
        total += counts[i];
        assert_true(counts[i] ? means[i] >= 0.5 && means[i] <= 5 : isnan(means[i]));
    }
    assert_int_equal(total, hist);
    assert_true(total > 2000);
    size_t item;
    float y;
    assert_int_equal(cb_recommender_user_rating(f->rec, 0, cb_recommender_user_n_ratings(f->rec, 0), &item, &y, NULL, &err),
                     CB_ENOTFOUND);
    assert_int_equal(cb_recommender_user_n_ratings(f->rec, n_users), 0);
    /* genres: the count, then the names, each a genre of the vocabulary */
    char *vocab = NULL;
    assert_int_equal(cb_recommender_vocabulary_json(f->rec, &vocab, &err), CB_OK);
    json_t *v = json_loads(vocab, 0, NULL);
    assert_non_null(v);
    json_t *genres = json_object_get(v, "genres");
    assert_true(json_array_size(genres) >= 2);
    assert_non_null(json_object_get(json_object_get(v, "user_columns"), "occupation"));
    size_t with_genres = 0;
    for (size_t i = 0; i < n_items; i++) {
        const char *names[16];
        size_t n = cb_recommender_item_genres(f->rec, i, names, 16);
        with_genres += n > 0;
        for (size_t g = 0; g < n && g < 16; g++) {
            bool known = false;
            for (size_t k = 0; k < json_array_size(genres); k++)
                known |= !strcmp(json_string_value(json_array_get(genres, k)), names[g]);
            assert_true(known);
        }
    }
    assert_int_equal(with_genres, n_items); /* the generator gives every item 1-3 genres */
    assert_int_equal(cb_recommender_item_genres(f->rec, n_items, NULL, 0), 0);
    json_decref(v);
    free(vocab);
    free(counts);
    free(means);
    free(again);
}

static void pca_map(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    size_t n = cb_recommender_item_count(f->rec);
    float *xy = calloc(2 * n, sizeof *xy), *xy2 = calloc(2 * n, sizeof *xy2);
    assert_int_equal(cb_recommender_project_2d(f->rec, xy, &err), CB_OK);
    assert_int_equal(cb_recommender_project_2d(f->rec, xy2, &err), CB_OK);
    assert_memory_equal(xy, xy2, 2 * n * sizeof *xy); /* deterministic */
    /* centred, first axis of at least the second's variance, the two uncorrelated */
    double mx = 0, my = 0, vx = 0, vy = 0, cxy = 0;
    for (size_t i = 0; i < n; i++) mx += xy[2 * i] / (double)n, my += xy[2 * i + 1] / (double)n;
    for (size_t i = 0; i < n; i++) {
        double dx = xy[2 * i] - mx, dy = xy[2 * i + 1] - my;
        vx += dx * dx;
        vy += dy * dy;
        cxy += dx * dy;
    }
    assert_true(fabs(mx) < 1e-3 && fabs(my) < 1e-3);
    assert_true(vx >= vy * 0.999 && vy > 0);
    assert_true(fabs(cxy) < 1e-3 * sqrt(vx * vy) + 1e-9);
    /* the first axis's variance is the largest of any direction: at least each coordinate's */
    const float *vecs = cb_recommender_item_vectors(f->rec);
    size_t d = cb_recommender_dim(f->rec);
    for (size_t k = 0; k < d; k++) {
        double m = 0, var = 0;
        for (size_t i = 0; i < n; i++) m += vecs[i * d + k] / (double)n;
        for (size_t i = 0; i < n; i++) var += (vecs[i * d + k] - m) * (vecs[i * d + k] - m);
        assert_true(vx >= var * 0.999);
    }
    free(xy);
    free(xy2);
}

static bool has(const cb_list *l, const char *id) {
    for (size_t i = 0; i < cb_list_size(l); i++)
        if (!strcmp(cb_list_item_id(l, i), id)) return true;
    return false;
}

static void live_events(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    cb_config *opts;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "n", "5", &err), CB_OK);
    const char *user = cb_recommender_user_id(f->rec, 3);
    cb_list *plain = NULL, *live = NULL, *fresh = NULL;
    assert_int_equal(cb_recommender_recommend(f->rec, user, NULL, opts, &plain, &err), CB_OK);
    char json[256], top[64];
    snprintf(top, sizeof top, "%s", cb_list_item_id(plain, 0));
    snprintf(json, sizeof json, "{\"ratings\": {\"%s\": 0.5}}", top);
    /* the known user plus a new rating of its top item: the item is rated now */
    assert_int_equal(cb_recommender_recommend(f->rec, user, json, opts, &live, &err), CB_OK);
    assert_int_equal(cb_list_size(live), 5);
    assert_false(has(live, top));
    /* a user the model does not know, from its events alone: a note says so */
    assert_int_equal(cb_recommender_recommend(f->rec, "nobody-yet", json, opts, &fresh, &err), CB_OK);
    assert_false(has(fresh, top));
    bool noted = false;
    for (size_t j = 0; j < cb_list_n_notes(fresh); j++) noted |= strstr(cb_list_note(fresh, j), "not in the model") != NULL;
    assert_true(noted);
    /* bad events are errors, not lists */
    cb_list *bad = NULL;
    assert_int_equal(cb_recommender_recommend(f->rec, user, "{\"ratings\": {\"no-such-item\": 4}}", opts, &bad, &err),
                     CB_ENOTFOUND);
    assert_int_equal(cb_recommender_recommend(f->rec, user, "{\"ratings\": [1]}", opts, &bad, &err), CB_EPARSE);
    assert_int_equal(cb_recommender_recommend(f->rec, user, "{\"ratings\"", opts, &bad, &err), CB_EPARSE);
    assert_null(bad);
    assert_int_equal(cb_recommender_recommend(f->rec, NULL, NULL, opts, &bad, &err), CB_EINVAL);
    cb_list_free(plain);
    cb_list_free(live);
    cb_list_free(fresh);
    cb_config_free(opts);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(items_and_history), cmocka_unit_test(pca_map),
                                       cmocka_unit_test(live_events)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
