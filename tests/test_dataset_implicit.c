/* Implicit data: an events file with no rating column (user,item[,time][,weight])
 * loads through the generic schema and through a ratings-only folder, is
 * marked implicit (binary when unweighted), and repeated (user, item) events
 * are merged into the first (weights summed, the earliest timestamp kept)
 * instead of being an error. Every fixture is written by the test: string
 * ids, quoted fields, UTF-8, column names of the user's own. */
#include "testutil.h"

#include "data/dataset.h"

static cb_dataset *load_ok(const char *dir, const cb_load_options *opt) {
    cb_dataset *ds = NULL;
    cb_error err = {0};
    int rc = cb_dataset_load(&ds, dir, opt, &err);
    if (rc) fprintf(stderr, "load failed: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    assert_non_null(ds);
    return ds;
}

static void expect_fail(const char *dir, const char *where, const char *reason) {
    cb_dataset *ds = (cb_dataset *)0x1;
    cb_error err = {0};
    int rc = cb_dataset_load(&ds, dir, NULL, &err);
    if (rc != CB_EPARSE || !strstr(err.msg, where) || !strstr(err.msg, reason))
        fprintf(stderr, "got %d: '%s', wanted '%s' and '%s'\n", rc, err.msg, where, reason);
    assert_int_equal(rc, CB_EPARSE);
    assert_null(ds);
    assert_non_null(strstr(err.msg, where));
    assert_non_null(strstr(err.msg, reason));
}

/* The rating of (user, item), which must exist exactly once. */
static const cb_rating *event(const cb_dataset *ds, const char *user, const char *item) {
    int64_t u = cb_vocab_find(ds->users, user, strlen(user)), it = cb_vocab_find(ds->items, item, strlen(item));
    assert_true(u >= 0 && it >= 0);
    const cb_rating *found = NULL;
    for (size_t i = 0; i < ds->n_ratings; i++)
        if (ds->ratings[i].user == (uint32_t)u && ds->ratings[i].item == (uint32_t)it) {
            assert_null(found);
            found = &ds->ratings[i];
        }
    assert_non_null(found);
    return found;
}

static void done(char *d) {
    tu_rmrf(d);
    free(d);
}

/* Weighted events declared by a schema with the user's own column names. */
static void test_schema_weighted_events(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema",
                  "name = shop\n"
                  "ratings = käufe.csv\n"
                  "ratings.columns = kunde:user, produkt:item, wann:timestamp, menge:weight\n"));
    /* Users not grouped (Zoë, björn, Zoë): the merge goes through the user-order path. */
    free(tu_write(d, "käufe.csv",
                  "kunde,produkt,wann,menge\n"
                  "\"Zoë\",\"Café, Grand\",100,2\n"
                  "Zoë,Crème brûlée,105,1.5\n"
                  "björn,\"Café, Grand\",110,1\n"
                  "\"Zoë\",\"Café, Grand\",90,0.5\n"
                  "björn,\"Tee \"\"grün\"\"\",120,0\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_string_equal(ds->name, "shop");
    assert_true(ds->implicit);
    assert_false(ds->binary);
    assert_int_equal(cb_dataset_n_users(ds), 2);
    assert_int_equal(cb_dataset_n_items(ds), 3);
    assert_int_equal(ds->n_ratings, 4);
    assert_int_equal(ds->n_merged, 1);
    assert_int_equal(ds->n_skipped, 0);
    const cb_rating *r = event(ds, "Zoë", "Café, Grand");
    assert_true(r->y == 2.5f); /* 2 + 0.5 */
    assert_int_equal(r->ts, 90); /* the earliest */
    assert_true(event(ds, "Zoë", "Crème brûlée")->y == 1.5f);
    assert_true(event(ds, "björn", "Tee \"grün\"")->y == 0.0f);
    assert_true(ds->has_timestamps);
    assert_true(ds->y_min == 0.0f && ds->y_max == 2.5f); /* observed, after merging */
    cb_dataset_free(ds);
    done(d);
}

/* A folder with only ratings.csv and no rating column: unweighted events. */
static void test_ratings_only_events(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "ratings.csv",
                  "user_id,item_id,timestamp\r\n"
                  "alice,\"b,1\",30\r\n"
                  "alice,\"b,1\",20\r\n"
                  "alice,b2,25\r\n"
                  "bob,b2,40\r\n"
                  "bob,b2,50\r\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_true(ds->implicit);
    assert_true(ds->binary);
    assert_int_equal(ds->n_ratings, 3);
    assert_int_equal(ds->n_merged, 2);
    const cb_rating *r = event(ds, "alice", "b,1");
    assert_true(r->y == 1.0f); /* kept once, not counted */
    assert_int_equal(r->ts, 20);
    assert_int_equal(event(ds, "bob", "b2")->ts, 40);
    assert_true(ds->y_min == 0.0f && ds->y_max == 1.0f);
    cb_dataset_free(ds);
    done(d);
}

/* rating.implicit = yes: a rating-named header column is not read, a count is the weight. */
static void test_declared_implicit_header(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema", "ratings = plays.tsv\nratings.delim = tab\nrating.implicit = yes\n"));
    free(tu_write(d, "plays.tsv", "user\titem\tscore\tcount\nu1\tsong α\t9.5\t3\nu1\tsong β\t2\t1\nu1\tsong α\t7\t4\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_true(ds->implicit);
    assert_int_equal(ds->n_ratings, 2);
    assert_true(event(ds, "u1", "song α")->y == 7.0f); /* counts 3 + 4; the scores are ignored */
    assert_true(event(ds, "u1", "song β")->y == 1.0f);
    assert_false(ds->has_timestamps);
    cb_dataset_free(ds);
    done(d);
}

/* A ratings file keeps its rules: duplicates are still an error there. */
static void test_ratings_still_strict(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "ratings.csv", "user,item,rating\na,x,4\na,x,5\n"));
    expect_fail(d, "ratings.csv:3: ", "duplicate rating");
    done(d);
}

static void test_implicit_errors(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "ev.csv", "u,i,w\na,x,1\nb,x,-2\n"));
    free(tu_write(d, "cbrec.schema", "ratings = ev.csv\nratings.columns = u:user,i:item,w:weight\n"));
    expect_fail(d, "ev.csv:3: ", "weight -2 is negative");
    free(tu_write(d, "ev.csv", "u,i,w\na,x,1\nb,x,lots\n"));
    expect_fail(d, "ev.csv:3: ", "weight 'lots' is not a finite number");
    /* Under skip_bad_rows the bad event is counted and the rest loads. */
    cb_load_options opt;
    cb_load_options_default(&opt);
    opt.skip_bad_rows = true;
    cb_dataset *ds = load_ok(d, &opt);
    assert_int_equal(ds->n_ratings, 1);
    assert_int_equal(ds->n_skipped, 1);
    assert_true(ds->implicit);
    cb_dataset_free(ds);
    free(tu_write(d, "cbrec.schema", "ratings = ev.csv\nratings.columns = u:user,i:item,w:rating\nrating.implicit = yes\n"));
    expect_fail(d, "cbrec.schema:3: ", "declare it :weight or :ignore");
    free(tu_write(d, "cbrec.schema", "ratings = ev.csv\nratings.columns = u:user,i:item,w:weight\nrating.implicit = no\n"));
    expect_fail(d, "cbrec.schema:3: ", "has no rating column");
    free(tu_write(d, "cbrec.schema", "ratings = ev.csv\nratings.columns = u:user,i:item,w:weight,w2:rating\n"));
    expect_fail(d, "cbrec.schema:2: ", "a weight is for implicit events");
    free(tu_write(d, "cbrec.schema", "ratings = ev.csv\nrating.implicit = maybe\n"));
    expect_fail(d, "cbrec.schema:2: ", "rating.implicit must be yes or no");
    free(tu_write(d, "ev.csv", "user,item,count\na,x,1\n"));
    free(tu_write(d, "cbrec.schema", "ratings = ev.csv\nrating.implicit = no\n"));
    expect_fail(d, "ev.csv:1: ", "names no rating column");
    done(d);
}

/* Numeric events big enough for the multi-threaded fast path: the same
 * dataset as the reference reader, with duplicates merged the same way. */
static void test_fast_path_events(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "user,item,time,weight\n");
    uint64_t x = 12345;
    for (int i = 0; i < 6000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned u = (unsigned)(x >> 33) % 50, it = (unsigned)(x >> 20) % 40, w = (unsigned)(x >> 45) % 4;
        len += (size_t)snprintf(text + len, cap - len, "%u,%u,%d,%u\n", u + 1, it + 1, 1000 + i, w);
    }
    text[len] = '\0';
    free(tu_write(d, "ratings.csv", text));
    free(text);
    cb_load_options fast, ref;
    cb_load_options_default(&fast);
    fast.ratings_chunk = 4096; /* several chunks */
    cb_load_options_default(&ref);
    ref.ratings_reference = true;
    cb_dataset *a = load_ok(d, &fast), *b = load_ok(d, &ref);
    assert_true(a->implicit && b->implicit);
    assert_int_equal(a->n_ratings, b->n_ratings);
    assert_int_equal(a->n_merged, b->n_merged);
    assert_true(a->n_merged > 0);
    assert_int_equal(a->n_ratings + a->n_merged, 6000);
    assert_memory_equal(a->ratings, b->ratings, a->n_ratings * sizeof *a->ratings);
    double total = 0;
    for (size_t i = 0; i < a->n_ratings; i++) total += a->ratings[i].y;
    assert_true(total > 0 && a->y_max > 3.0f); /* sums of weights 0..3 */
    cb_dataset_free(a);
    cb_dataset_free(b);
    done(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_weighted_events),
        cmocka_unit_test(test_ratings_only_events),
        cmocka_unit_test(test_declared_implicit_header),
        cmocka_unit_test(test_ratings_still_strict),
        cmocka_unit_test(test_implicit_errors),
        cmocka_unit_test(test_fast_path_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
