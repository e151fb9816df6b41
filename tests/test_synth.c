/* Tests for the synthetic generator (src/data/synth.c): sizes and validity,
 * determinism by seed, planted structure that a model could find, and the
 * written folder loading back through the MovieLens loader. */
#include "testutil.h"

#include "data/dataset.h"

#include <math.h>

static cb_dataset *gen(uint32_t users, uint32_t items, size_t ratings, uint32_t genres, uint64_t seed) {
    cb_synth_config c;
    cb_synth_config_default(&c);
    c.n_users = users;
    c.n_items = items;
    c.n_ratings = ratings;
    c.n_genres = genres;
    c.seed = seed;
    cb_dataset *ds = NULL;
    cb_error err = {0};
    if (cb_synth_generate(&ds, &c, &err)) fail_msg("generate: %s", err.msg);
    return ds;
}

static void test_sizes_and_validity(void **state) {
    (void)state;
    cb_dataset *ds = gen(300, 500, 20000, 8, 7);
    assert_int_equal(cb_dataset_n_users(ds), 300);
    assert_int_equal(cb_dataset_n_items(ds), 500);
    assert_int_equal(ds->n_ratings, 20000);
    assert_true(ds->has_timestamps && !ds->binary && !ds->prejoined);
    assert_int_equal(ds->user_attr.n_rows, 300);
    assert_int_equal(ds->item_attr.n_rows, 500);
    assert_true(ds->roles.item_genres >= 0 && ds->roles.item_year >= 0 && ds->roles.user_age >= 0 &&
                ds->roles.user_gender >= 0 && ds->roles.user_occupation >= 0 && ds->roles.user_location >= 0);
    assert_string_equal(ds->item_attr.cols[ds->roles.item_genres].name, "genres");
    assert_int_equal(cb_vocab_size(ds->item_attr.cols[ds->roles.item_genres].levels), 8);
    /* every item has 1-3 genres and a year; every user rates >= 1 distinct items */
    const cb_column *g = &ds->item_attr.cols[ds->roles.item_genres];
    for (uint32_t i = 0; i < 500; i++) {
        uint32_t n = g->off[i + 1] - g->off[i];
        assert_true(n >= 1 && n <= 3);
        assert_false(isnan(ds->item_attr.cols[ds->roles.item_year].num[i]));
        assert_non_null(ds->titles[i]);
    }
    uint32_t *count = calloc(300, sizeof *count);
    uint8_t *seen = calloc(300 * 500, 1);
    uint32_t prev_user = 0, prev_ts = 0;
    for (size_t k = 0; k < ds->n_ratings; k++) {
        const cb_rating *r = &ds->ratings[k];
        assert_true(r->user < 300 && r->item < 500);
        assert_true(r->y >= 0.5f && r->y <= 5.0f && r->y * 2 == floorf(r->y * 2));
        assert_false(seen[r->user * 500 + r->item]);
        seen[r->user * 500 + r->item] = 1;
        if (k && r->user == prev_user) assert_true(r->ts > prev_ts); /* increasing per user */
        else if (k) assert_true(r->user > prev_user);                   /* grouped by user */
        prev_user = r->user, prev_ts = r->ts;
        count[r->user]++;
    }
    for (uint32_t u = 0; u < 300; u++) assert_true(count[u] >= 1 && count[u] <= 250);
    free(count);
    free(seen);
    cb_dataset_free(ds);
}

static void test_deterministic(void **state) {
    (void)state;
    cb_dataset *a = gen(200, 300, 5000, 12, 99), *b = gen(200, 300, 5000, 12, 99), *c = gen(200, 300, 5000, 12, 100);
    assert_memory_equal(a->ratings, b->ratings, a->n_ratings * sizeof *a->ratings);
    assert_memory_equal(a->user_attr.cols[0].num, b->user_attr.cols[0].num, 200 * sizeof(float));
    for (uint32_t i = 0; i < 300; i++) assert_string_equal(a->titles[i], b->titles[i]);
    assert_true(memcmp(a->ratings, c->ratings, a->n_ratings * sizeof *a->ratings) != 0);
    cb_dataset_free(a);
    cb_dataset_free(b);
    cb_dataset_free(c);
}

/* The user's favourite genre, estimated from the first half of their ratings,
 * predicts higher ratings in the second half; and demographics shift taste. */
static void test_planted_structure(void **state) {
    (void)state;
    const uint32_t U = 2000, M = 1000, G = 10;
    cb_dataset *ds = gen(U, M, 200000, G, 5);
    const cb_column *gc = &ds->item_attr.cols[ds->roles.item_genres];
    double *sum = calloc((size_t)U * G, sizeof *sum);
    uint32_t *cnt = calloc((size_t)U * G, sizeof *cnt), *n_u = calloc(U, sizeof *n_u), *seen_u = calloc(U, sizeof *seen_u);
    for (size_t k = 0; k < ds->n_ratings; k++) n_u[ds->ratings[k].user]++;
    /* pass 1: first half of each user's ratings */
    for (size_t k = 0; k < ds->n_ratings; k++) {
        const cb_rating *r = &ds->ratings[k];
        if (seen_u[r->user]++ >= n_u[r->user] / 2) continue;
        for (uint32_t p = gc->off[r->item]; p < gc->off[r->item + 1]; p++) {
            sum[(size_t)r->user * G + gc->val[p]] += r->y;
            cnt[(size_t)r->user * G + gc->val[p]]++;
        }
    }
    int *fav = malloc(U * sizeof *fav);
    for (uint32_t u = 0; u < U; u++) {
        fav[u] = -1;
        double best = -1;
        for (uint32_t g = 0; g < G; g++) {
            size_t k = (size_t)u * G + g;
            if (cnt[k] >= 3 && sum[k] / cnt[k] > best) best = sum[k] / cnt[k], fav[u] = (int)g;
        }
    }
    /* pass 2: second half, favourite genre vs the rest */
    double in_fav = 0, other = 0;
    size_t n_in = 0, n_other = 0;
    memset(seen_u, 0, U * sizeof *seen_u);
    for (size_t k = 0; k < ds->n_ratings; k++) {
        const cb_rating *r = &ds->ratings[k];
        if (seen_u[r->user]++ < n_u[r->user] / 2 || fav[r->user] < 0) continue;
        bool has = false;
        for (uint32_t p = gc->off[r->item]; p < gc->off[r->item + 1]; p++) has |= (int)gc->val[p] == fav[r->user];
        if (has) in_fav += r->y, n_in++;
        else other += r->y, n_other++;
    }
    assert_true(n_in > 1000 && n_other > 1000);
    double margin = in_fav / n_in - other / n_other;
    printf("held-out mean rating: favourite genre %.3f, others %.3f (margin %.3f)\n", in_fav / n_in, other / n_other, margin);
    assert_true(margin > 0.3);

    /* demographics: some genre's mean rating differs between women and men by > 0.2 */
    const cb_column *gender = &ds->user_attr.cols[ds->roles.user_gender];
    double gs[2][16] = {{0}}, gn[2][16] = {{0}};
    for (size_t k = 0; k < ds->n_ratings; k++) {
        const cb_rating *r = &ds->ratings[k];
        int s = !strcmp(cb_vocab_name(gender->levels, gender->cat[r->user]), "F") ? 0 : 1;
        for (uint32_t p = gc->off[r->item]; p < gc->off[r->item + 1]; p++) gs[s][gc->val[p]] += r->y, gn[s][gc->val[p]]++;
    }
    double max_gap = 0;
    for (uint32_t g = 0; g < G; g++)
        if (gn[0][g] > 500 && gn[1][g] > 500) max_gap = fmax(max_gap, fabs(gs[0][g] / gn[0][g] - gs[1][g] / gn[1][g]));
    printf("largest per-genre gap between genders: %.3f\n", max_gap);
    assert_true(max_gap > 0.2);
    /* popularity is skewed: the top 1% of items hold > 4x their uniform share */
    uint32_t *ic = calloc(M, sizeof *ic);
    for (size_t k = 0; k < ds->n_ratings; k++) ic[ds->ratings[k].item]++;
    uint32_t top[10] = {0};
    for (uint32_t i = 0; i < M; i++)
        for (int t = 0; t < 10; t++)
            if (ic[i] > top[t]) {
                memmove(top + t + 1, top + t, (size_t)(9 - t) * sizeof *top);
                top[t] = ic[i];
                break;
            }
    size_t top_sum = 0;
    for (int t = 0; t < 10; t++) top_sum += top[t];
    printf("top 1%% of items hold %.1f%% of the ratings\n", 100.0 * top_sum / ds->n_ratings);
    assert_true((double)top_sum / ds->n_ratings > 0.04);
    free(ic), free(sum), free(cnt), free(n_u), free(seen_u), free(fav);
    cb_dataset_free(ds);
}

static void test_bad_config(void **state) {
    (void)state;
    cb_synth_config c;
    cb_synth_config_default(&c);
    cb_dataset *ds = (cb_dataset *)1;
    cb_error err = {0};
    c.n_ratings = (size_t)c.n_users * c.n_items; /* more than half the matrix */
    assert_int_equal(cb_synth_generate(&ds, &c, &err), CB_EINVAL);
    assert_null(ds);
    cb_synth_config_default(&c);
    c.n_genres = 0;
    assert_int_equal(cb_synth_generate(&ds, &c, &err), CB_EINVAL);
    cb_synth_config_default(&c);
    c.noise = NAN;
    assert_int_equal(cb_synth_generate(&ds, &c, &err), CB_EINVAL);
    /* tiny but valid: 1 user, 2 items, 1 rating, 30 genres (beyond the named ones) */
    cb_synth_config_default(&c);
    c.n_users = 1, c.n_items = 2, c.n_ratings = 1, c.n_genres = 30;
    assert_int_equal(cb_synth_generate(&ds, &c, &err), CB_OK);
    assert_int_equal(ds->n_ratings, 1);
    cb_dataset_free(ds);
}

/* Written folder loads back with the same ratings. */
static void test_write_and_load(void **state) {
    (void)state;
    cb_dataset *ds = gen(100, 200, 3000, 6, 3);
    char *dir = tu_tmpdir();
    char *sub = tu_path(dir, "syn");
    cb_error err = {0};
    if (cb_synth_write(ds, sub, &err)) fail_msg("write: %s", err.msg);
    char *users = tu_path(sub, "users.csv");
    struct stat st;
    assert_int_equal(stat(users, &st), 0);
    cb_dataset *back = NULL;
    if (cb_dataset_load(&back, sub, NULL, &err)) fail_msg("load: %s", err.msg);
    assert_int_equal(cb_dataset_n_users(back), 100);
    assert_int_equal(cb_dataset_n_items(back), 200);
    assert_int_equal(back->n_ratings, 3000);
    for (size_t k = 0; k < 3000; k++) {
        const cb_rating *a = &ds->ratings[k], *b = &back->ratings[k];
        assert_string_equal(cb_vocab_name(ds->users, a->user), cb_vocab_name(back->users, b->user));
        assert_string_equal(cb_vocab_name(ds->items, a->item), cb_vocab_name(back->items, b->item));
        assert_true(a->y == b->y && a->ts == b->ts);
    }
    assert_true(back->roles.item_genres >= 0 && back->roles.item_year >= 0);
    /* cbrec.schema makes the generic loader read users.csv too */
    assert_int_equal(back->user_attr.n_cols, 4);
    assert_true(back->roles.user_age >= 0 && back->roles.user_gender >= 0 && back->roles.user_occupation >= 0 &&
                back->roles.user_location >= 0);
    for (uint32_t u = 0; u < 100; u++) {
        int64_t v = cb_vocab_find(back->users, cb_vocab_name(ds->users, u), strlen(cb_vocab_name(ds->users, u)));
        assert_true(v >= 0);
        assert_true(ds->user_attr.cols[0].num[u] == back->user_attr.cols[back->roles.user_age].num[v]);
    }
    const cb_column *ga = &ds->item_attr.cols[ds->roles.item_genres], *gb = &back->item_attr.cols[back->roles.item_genres];
    for (uint32_t i = 0; i < 200; i++) {
        int64_t j = cb_vocab_find(back->items, cb_vocab_name(ds->items, i), strlen(cb_vocab_name(ds->items, i)));
        assert_true(j >= 0);
        assert_int_equal(ga->off[i + 1] - ga->off[i], gb->off[j + 1] - gb->off[j]);
        assert_string_equal(ds->titles[i], back->titles[j]);
    }
    /* writing into a path under a missing folder fails cleanly */
    char *bad = tu_path(dir, "missing/deeper");
    assert_int_equal(cb_synth_write(ds, bad, &err), CB_EIO);
    free(bad);
    cb_dataset_free(back);
    cb_dataset_free(ds);
    tu_rmrf(dir);
    free(users), free(sub), free(dir);
}

/* The generic layout writes the ratings asked for: the count was shared out
 * as N / users each, dropping the remainder (5 over 3 users wrote 3), and a
 * catalog too small for every planted class wrote none at all (then the
 * written folder failed to load: "ratings.csv:2: no ratings in file"). */
static void test_generic_counts(void **state) {
    (void)state;
    static const char *const sizes[][3] = {{"1", "2", "1"}, {"2", "2", "2"}, {"3", "100", "5"},
                                           {"5", "4", "3"}, {"20", "2", "20"}, {"300", "600", "9001"}};
    char *dir = tu_tmpdir();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cb_config *s = NULL;
        cb_dataset *back = NULL;
        cb_error err = {0};
        char sub[64];
        snprintf(sub, sizeof sub, "g%zu", i);
        char *path = tu_path(dir, sub);
        assert_int_equal(cb_config_create(&s, CB_CONFIG_SYNTH, &err), CB_OK);
        assert_int_equal(cb_config_set(s, "layout", "generic", &err), CB_OK);
        assert_int_equal(cb_config_set(s, "users", sizes[i][0], &err), CB_OK);
        assert_int_equal(cb_config_set(s, "items", sizes[i][1], &err), CB_OK);
        assert_int_equal(cb_config_set(s, "ratings", sizes[i][2], &err), CB_OK);
        if (cb_synth_write_folder(path, s, &err)) fail_msg("synth %s: %s", sub, err.msg);
        if (cb_dataset_open(&back, path, NULL, &err)) fail_msg("load %s: %s", sub, err.msg);
        assert_int_equal(cb_dataset_rating_count(back), strtoul(sizes[i][2], NULL, 10));
        cb_dataset_close(back);
        cb_config_free(s);
        free(path);
    }
    tu_rmrf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_validity), cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_planted_structure),  cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_write_and_load),     cmocka_unit_test(test_generic_counts),
    };
    return cmocka_run_group_tests_name("synth", tests, NULL, NULL);
}
