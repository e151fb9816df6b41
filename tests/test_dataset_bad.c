/* Bad input to the dataset loaders: each case is a tiny fixture written by the
 * test, and each must fail cleanly with "file:line: reason" (CB_EPARSE, or
 * CB_EIO for missing files) — or, with skip_bad_rows, load the good rows and
 * count the bad ones. Inputs that are merely unusual (BOM, CRLF, quoted
 * fields) must load. */
#include "testutil.h"

#include "data/dataset.h"

#define MOVIES "movieId,title,genres\n1,A (1990),Drama\n2,B (1991),Comedy\n3,C (1992),Drama\n"

/* Load `dir`, expect failure `code` with a message containing "<file>:<line>:"
 * (or just `file` when line is 0) and `reason`. */
static void expect_fail(const char *dir, const cb_load_options *opt, int code, const char *file, size_t line,
                        const char *reason) {
    cb_dataset *ds = (cb_dataset *)0x1;
    cb_error err = {0};
    int rc = cb_dataset_load(&ds, dir, opt, &err);
    if (rc != code || !strstr(err.msg, file)) fprintf(stderr, "got %d: %s\n", rc, err.msg);
    assert_int_equal(rc, code);
    assert_null(ds);
    char where[256];
    if (line) snprintf(where, sizeof where, "%s:%zu: ", file, line);
    else snprintf(where, sizeof where, "%s", file);
    if (!strstr(err.msg, where) || (reason && !strstr(err.msg, reason)))
        fprintf(stderr, "message '%s' lacks '%s' / '%s'\n", err.msg, where, reason ? reason : "");
    assert_non_null(strstr(err.msg, where));
    if (reason) assert_non_null(strstr(err.msg, reason));
}

static cb_dataset *expect_ok(const char *dir, const cb_load_options *opt) {
    cb_dataset *ds = NULL;
    cb_error err = {0};
    int rc = cb_dataset_load(&ds, dir, opt, &err);
    if (rc) fprintf(stderr, "unexpected failure: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    return ds;
}

/* A fresh folder with movies.csv and the given ratings.csv. */
static char *ml_dir(const char *ratings) {
    char *d = tu_tmpdir();
    free(tu_write(d, "movies.csv", MOVIES));
    free(tu_write(d, "ratings.csv", ratings));
    return d;
}

static void done(char *d) {
    tu_rmrf(d);
    free(d);
}

static void test_missing(void **state) {
    (void)state;
    expect_fail("/nonexistent/cbrec-data", NULL, CB_EIO, "/nonexistent/cbrec-data", 0, "cannot open");
    char *d = tu_tmpdir();
    expect_fail(d, NULL, CB_EIO, d, 0, "no known dataset layout");
    /* 100K without u.item. */
    free(tu_write(d, "u.data", "1\t1\t5\t1\n"));
    expect_fail(d, NULL, CB_EIO, "u.item", 0, "missing");
    done(d);
    /* A schema naming a file that is not there. */
    d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema", "ratings = nothere.csv\n"));
    expect_fail(d, NULL, CB_EIO, "nothere.csv", 0, "cannot open");
    done(d);
    /* Course lab without its y file. */
    d = tu_tmpdir();
    free(tu_write(d, "content_user_train_header.txt", "user id,a"));
    free(tu_write(d, "content_item_train_header.txt", "movie id,b"));
    free(tu_write(d, "content_user_train.csv", "1,2\n"));
    free(tu_write(d, "content_item_train.csv", "1,2\n"));
    expect_fail(d, NULL, CB_EIO, "content_y_train.csv", 0, NULL);
    done(d);
}

static void test_empty(void **state) {
    (void)state;
    char *d = ml_dir("");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 1, "empty");
    done(d);
    d = ml_dir("userId,movieId,rating,timestamp\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 2, "no ratings");
    done(d);
    d = tu_tmpdir();
    free(tu_write(d, "movies.csv", ""));
    free(tu_write(d, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,5\n"));
    expect_fail(d, NULL, CB_EPARSE, "movies.csv", 1, "empty");
    done(d);
}

static void test_column_counts(void **state) {
    (void)state;
    char *d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n1,2,4\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 3, "expected 4 fields, found 3");
    done(d);
    d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n\n1,2,4,5,6\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 4, "found 5"); /* the blank line still counts */
    done(d);
    d = ml_dir("userId,movieId,rating\n1,1,4\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 1, "header has 3 fields");
    done(d);
    d = tu_tmpdir();
    free(tu_write(d, "movies.csv", "movieId,title,genres\n1,A,Drama\n2,B\n"));
    free(tu_write(d, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,5\n"));
    expect_fail(d, NULL, CB_EPARSE, "movies.csv", 3, "expected 3 fields");
    done(d);
    /* movies.csv's columns are found by name: one it does not name is an error, not read by position */
    d = tu_tmpdir();
    free(tu_write(d, "movies.csv", "movieId,name,genres\n1,A,Drama\n"));
    free(tu_write(d, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,5\n"));
    expect_fail(d, NULL, CB_EPARSE, "movies.csv", 1, "no column 'title'");
    done(d);
    /* 100K item with a broken genre flag. */
    d = tu_tmpdir();
    free(tu_write(d, "u.item", "1|T (1995)|01-Jan-1995||u|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                               "2|T (1995)|01-Jan-1995||u|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|x\n"));
    free(tu_write(d, "u.data", "1\t1\t5\t1\n"));
    expect_fail(d, NULL, CB_EPARSE, "u.item", 2, "genre flag 18");
    done(d);
}

static void test_bad_ratings(void **state) {
    (void)state;
    static const struct {
        const char *value;
        const char *reason;
    } cases[] = {{"abc", "not a finite number"}, {"nan", "not a finite number"}, {"NaN", "not a finite number"},
                 {"inf", "not a finite number"}, {"-inf", "not a finite number"}, {"1e999", "not a finite number"},
                 {"", "not a finite number"},    {"4,5", NULL},                   {"7", "outside the declared range"},
                 {"0", "outside the declared range"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "userId,movieId,rating,timestamp\n1,1,4,5\n2,2,3,5\n1,3,%s,5\n", cases[i].value);
        char *d = ml_dir(buf);
        expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 4, cases[i].reason);
        done(d);
    }
    /* Timestamps: negative, too large, not a time, an impossible date, before 1970; milliseconds told. */
    static const struct {
        const char *value, *reason;
    } ts[] = {{"-1", "outside 1970-01-01 .. 2106-02-07"},
              {"4294967296", "outside 1970-01-01 .. 2106-02-07 (seconds 0 .. 4294967295)"},
              {"x", "is not a time (integer seconds since 1970, or ISO 8601"},
              {"2023-02-29", "is not a time"},
              {"05/01/2024", "is not a time"},
              {"1969-12-31T23:59:59Z", "outside 1970-01-01"},
              {"1714557600000", "milliseconds? the column holds seconds"}};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "userId,movieId,rating,timestamp\n1,1,4,%s\n", ts[i].value);
        char *d = ml_dir(buf);
        expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 2, ts[i].reason);
        done(d);
    }
    /* Empty ids. */
    char *d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n,2,4,5\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 3, "empty user id");
    done(d);
}

static void test_declared_range(void **state) {
    (void)state;
    /* Range from the options. */
    char *d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n1,2,4.5,5\n");
    cb_load_options opt;
    cb_load_options_default(&opt);
    opt.y_min = 1;
    opt.y_max = 4;
    expect_fail(d, &opt, CB_EPARSE, "ratings.csv", 3, "outside the declared range [1, 4]");
    done(d);
    /* Range from a schema. */
    d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nratings.columns = user,item,rating\nrating.range = 1,10\n"));
    free(tu_write(d, "r.csv", "u,i,r\na,x,10\na,y,11\n"));
    expect_fail(d, NULL, CB_EPARSE, "r.csv", 3, "outside the declared range [1, 10]");
    done(d);
    /* Binary labels declared. */
    d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nratings.columns = user,item,label\nrating.binary = yes\n"));
    free(tu_write(d, "r.csv", "u,i,r\na,x,1\na,y,0\nb,x,0.5\n"));
    expect_fail(d, NULL, CB_EPARSE, "r.csv", 4, "not 0 or 1");
    done(d);
}

static void test_duplicates_and_unknown_ids(void **state) {
    (void)state;
    char *d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n2,1,4,5\n1,2,4,5\n1,1,3,9\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 5, "duplicate rating for user '1' and item '1' (first at line 2)");
    done(d);
    /* The same in a file grouped by user (a different code path). */
    d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n1,2,4,5\n1,1,3,9\n2,1,4,5\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 4, "duplicate rating for user '1' and item '1' (first at line 2)");
    done(d);
    /* Not grouped, with a duplicate of user 2 in a grouped start: user 1's,
     * met first in user order, is the one reported. */
    d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n2,2,4,5\n2,2,3,6\n1,1,3,9\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 5, "duplicate rating for user '1' and item '1' (first at line 2)");
    done(d);
    /* Skipping: the later of each pair is dropped, grouped or not, and the
     * range (observed: a folder with only ratings.csv) is that of the
     * ratings kept. */
    cb_load_options opt;
    cb_load_options_default(&opt);
    opt.skip_bad_rows = true;
    static const char *const dup_files[2] = {"userId,movieId,rating,timestamp\n1,1,4,5\n1,1,5,6\n2,1,0.5,5\n",
                                             "userId,movieId,rating,timestamp\n1,1,4,5\n2,1,0.5,5\n1,1,5,6\n"};
    for (int k = 0; k < 2; k++) {
        d = tu_tmpdir();
        free(tu_write(d, "ratings.csv", dup_files[k]));
        free(tu_write(d, "cbrec.schema", "ratings = ratings.csv\n")); /* ratings alone, asked for */
        cb_dataset *ds = expect_ok(d, &opt);
        assert_int_equal(ds->n_ratings, 2);
        assert_int_equal(ds->n_skipped, 1);
        assert_true(ds->ratings[0].y == 4.0f && ds->ratings[1].y == 0.5f);
        assert_true(ds->y_min == 0.5f && ds->y_max == 4.0f);
        cb_dataset_free(ds);
        done(d);
    }
    /* duplicates first / last: the later row dropped / replacing the earlier's rating and time in its
     * place (a re-rating), grouped or not, the range that of the ratings kept, no row counted as bad */
    for (int mode = CB_DUPLICATES_FIRST; mode <= CB_DUPLICATES_LAST; mode++)
        for (int k = 0; k < 2; k++) {
            cb_load_options_default(&opt);
            opt.duplicates = (cb_duplicates)mode;
            d = tu_tmpdir();
            free(tu_write(d, "ratings.csv", dup_files[k]));
            free(tu_write(d, "cbrec.schema", "ratings = ratings.csv\n"));
            cb_dataset *ds = expect_ok(d, &opt);
            bool last = mode == CB_DUPLICATES_LAST;
            assert_int_equal(ds->n_ratings, 2);
            assert_int_equal(ds->n_skipped, 0);
            assert_int_equal(ds->n_folded, 1);
            assert_true(ds->ratings[0].y == (last ? 5.0f : 4.0f) && ds->ratings[0].ts == (last ? 6 : 5));
            assert_true(ds->y_min == 0.5f && ds->y_max == (last ? 5.0f : 4.0f));
            cb_dataset_free(ds);
            done(d);
        }
    d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n1,99,4,5\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 3, "unknown item id '99' (not in movies.csv)");
    done(d);
    /* an id quoted in a message is cut at 40 bytes, never inside a UTF-8 sequence */
    d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xC3\xA9\xC3\xA9,4,5\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 3, "unknown item id 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' (not in");
    done(d);
    /* Duplicate ids in an items file. */
    d = tu_tmpdir();
    free(tu_write(d, "movies.csv", "movieId,title,genres\n1,A,Drama\n1,B,Drama\n"));
    free(tu_write(d, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,5\n"));
    expect_fail(d, NULL, CB_EPARSE, "movies.csv", 3, "listed twice");
    done(d);
    /* ... and in a schema's items and users files: the first line is named */
    for (int users = 0; users < 2; users++) {
        d = tu_tmpdir();
        free(tu_write(d, "cbrec.schema", "ratings = r.csv\nitems = i.csv\nitems.columns = id, name:title\n"
                                         "users = u.csv\nusers.columns = id, region:categorical\n"));
        free(tu_write(d, "r.csv", "user,item,rating\na,x,5\nb,y,3\n"));
        free(tu_write(d, "i.csv", users ? "id,name\nx,Ex\ny,Why\n" : "id,name\nx,Ex\ny,Why\nz,Zed\nx,Ex again\n"));
        free(tu_write(d, "u.csv", users ? "id,region\na,north\nb,south\nb,east\n" : "id,region\na,north\nb,south\n"));
        expect_fail(d, NULL, CB_EPARSE, users ? "u.csv" : "i.csv", users ? 4 : 5,
                    users ? "id 'b' listed twice (first on line 3)" : "id 'x' listed twice (first on line 2)");
        done(d);
    }
    /* 1M: unknown user when users.dat exists; bad occupation code. */
    d = tu_tmpdir();
    free(tu_write(d, "movies.dat", "1::A (1990)::Drama\n"));
    free(tu_write(d, "users.dat", "1::F::1::10::48067\n"));
    free(tu_write(d, "ratings.dat", "1::1::5::1\n2::1::5::1\n"));
    expect_fail(d, NULL, CB_EPARSE, "ratings.dat", 2, "unknown user id '2' (not in users.dat; --unlisted-users keep");
    /* ... kept under unlisted-users keep (a live user's exported rows), every attribute missing, the
     * general path and the fast one alike; unless no user of the ratings is listed (ids spelt otherwise) */
    cb_load_options keep;
    cb_load_options_default(&keep);
    keep.unlisted_users = CB_UNLISTED_KEEP;
    for (int fast = 0; fast < 2; fast++) {
        keep.ratings_reference = !fast;
        cb_dataset *ds = expect_ok(d, &keep);
        assert_int_equal(ds->n_unlisted, 1);
        assert_int_equal(cb_dataset_n_users(ds), 2);
        assert_int_equal(ds->user_attr.n_rows, 2);
        int g = ds->roles.user_gender;
        assert_true(g >= 0 && ds->user_attr.cols[g].cat[0] != CB_MISSING && ds->user_attr.cols[g].cat[1] == CB_MISSING);
        cb_dataset_free(ds);
    }
    free(tu_write(d, "ratings.dat", "2::1::5::1\n3::1::4::1\n"));
    expect_fail(d, &keep, CB_EPARSE, "users.dat", 0, "none of the ratings' 2 users is in users.dat");
    free(tu_write(d, "ratings.dat", "1::1::5::1\n2::1::5::1\n"));
    free(tu_write(d, "users.dat", "1::F::1::10::48067\n2::M::1::21::48067\n"));
    expect_fail(d, NULL, CB_EPARSE, "users.dat", 2, "occupation code");
    done(d);
}

static void test_tolerated_encodings(void **state) {
    (void)state;
    /* BOM + CRLF + quoted commas and quotes: all fine. */
    char *d = tu_tmpdir();
    free(tu_write(d, "movies.csv", "\xEF\xBB\xBFmovieId,title,genres\r\n1,\"A, \"\"The\"\" (1990)\",Drama\r\n"));
    free(tu_write(d, "ratings.csv", "\xEF\xBB\xBFuserId,movieId,rating,timestamp\r\n1,1,4.5,5\r\n\"2\",\"1\",\"3\",\"7\"\r\n"));
    cb_dataset *ds = expect_ok(d, NULL);
    assert_int_equal(ds->n_ratings, 2);
    assert_true(ds->ratings[0].y == 4.5f);
    assert_true(ds->ratings[1].y == 3.0f && ds->ratings[1].ts == 7);
    assert_string_equal(ds->titles[0], "A, \"The\" (1990)");
    assert_int_equal(cb_dataset_n_users(ds), 2);
    assert_non_null(cb_vocab_name(ds->users, 0));
    assert_string_equal(cb_vocab_name(ds->users, 0), "1"); /* no BOM, no CR in ids */
    cb_dataset_free(ds);
    done(d);
    /* movies.csv's columns in another order: each read by its name (by position the
     * genres were the title) */
    d = tu_tmpdir();
    free(tu_write(d, "movies.csv", "\xEF\xBB\xBFGenres,movieId,title\r\nDrama|Comedy,1,\"A, The (1990)\"\r\n"));
    free(tu_write(d, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,5\n"));
    ds = expect_ok(d, NULL);
    assert_string_equal(cb_vocab_name(ds->items, 0), "1");
    assert_string_equal(ds->titles[0], "A, The (1990)");
    int year = cb_table_find(&ds->item_attr, "year"), genres = cb_table_find(&ds->item_attr, "genres");
    assert_true(year >= 0 && ds->item_attr.cols[year].num[0] == 1990.0f);
    assert_true(genres >= 0 && cb_vocab_size(ds->item_attr.cols[genres].levels) == 2);
    cb_dataset_free(ds);
    /* so are tags.csv's: by position the user id 1 was the movie, the movie id 1 the tag */
    free(tu_write(d, "tags.csv", "tag,userId,movieId,timestamp\nFunny,1,1,5\n"));
    ds = expect_ok(d, NULL);
    int tags = cb_table_find(&ds->item_attr, "tags");
    assert_true(tags >= 0 && cb_vocab_size(ds->item_attr.cols[tags].levels) == 1);
    assert_string_equal(cb_vocab_name(ds->item_attr.cols[tags].levels, 0), "funny");
    cb_dataset_free(ds);
    /* blanks after the commas: read by position, such a header loaded; by name it still does */
    free(tu_write(d, "tags.csv", "userId, movieId, tag, timestamp\n1,1,Funny,5\n"));
    ds = expect_ok(d, NULL);
    tags = cb_table_find(&ds->item_attr, "tags");
    assert_true(tags >= 0 && cb_vocab_size(ds->item_attr.cols[tags].levels) == 1);
    cb_dataset_free(ds);
    free(tu_write(d, "tags.csv", "user,movieId,tag,timestamp\n1,1,funny,5\n"));
    expect_fail(d, NULL, CB_EPARSE, "tags.csv", 1, "no column 'userId'");
    done(d);
}

static void test_reader_errors(void **state) {
    (void)state;
    /* Lines ended by a lone CR (classic Mac): one line whose header names "rating\ra";
     * it loaded as implicit events and failed with "no ratings in file" */
    char *mac = tu_tmpdir();
    free(tu_write(mac, "cbrec.schema", "ratings = r.csv\n"));
    free(tu_write(mac, "r.csv", "user,item,rating\ra,x,5\rb,y,4\r"));
    expect_fail(mac, NULL, CB_EPARSE, "r.csv", 1, "lone CR");
    done(mac);
    mac = ml_dir("userId,movieId,rating,timestamp\r1,1,4,5\r");
    expect_fail(mac, NULL, CB_EPARSE, "ratings.csv", 1, "lone CR");
    done(mac);
    /* Unclosed quote. */
    char *d = ml_dir("userId,movieId,rating,timestamp\n1,1,4,5\n1,\"2,4,5\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 3, "quote");
    done(d);
    /* Text after a closing quote. */
    d = ml_dir("userId,movieId,rating,timestamp\n1,\"1\"x,4,5\n");
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 2, "closing quote");
    done(d);
    /* Invalid UTF-8 in a title. */
    d = tu_tmpdir();
    free(tu_write(d, "movies.csv", "movieId,title,genres\n1,A (1990),Drama\n2,B\xC3\x28 (1991),Drama\n"));
    free(tu_write(d, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,5\n"));
    expect_fail(d, NULL, CB_EPARSE, "movies.csv", 3, "invalid UTF-8");
    done(d);
    /* An overlong line (over the reader's 1 MiB limit). */
    size_t big = (1u << 20) + 100;
    char *text = malloc(big + 200);
    size_t n = (size_t)snprintf(text, 200, "userId,movieId,rating,timestamp\n1,1,4,5\n1,");
    memset(text + n, '7', big);
    strcpy(text + n + big, ",4,5\n");
    d = ml_dir(text);
    free(text);
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 3, "longer than");
    done(d);
}

static void test_skip_bad_rows(void **state) {
    (void)state;
    char *d = ml_dir("userId,movieId,rating,timestamp\n"
                     "1,1,4,5\n"      /* ok */
                     "1,2,abc,5\n"    /* bad rating */
                     "1,2\n"          /* wrong count */
                     "2,99,4,5\n"     /* unknown item */
                     "2,2,9,5\n"      /* out of range */
                     "2,3,nan,5\n"    /* NaN */
                     "2,3,3.5,6\n"    /* ok */
                     "1,1,2,7\n"      /* duplicate of line 2: dropped, first kept */
                     "3,1,1,-4\n");   /* bad timestamp */
    cb_load_options opt;
    cb_load_options_default(&opt);
    opt.skip_bad_rows = true;
    cb_dataset *ds = expect_ok(d, &opt);
    assert_int_equal(ds->n_ratings, 2);
    assert_int_equal(ds->n_skipped, 7);
    assert_true(ds->ratings[0].y == 4.0f && ds->ratings[0].ts == 5);
    assert_true(ds->ratings[1].y == 3.5f);
    assert_int_equal(cb_dataset_n_users(ds), 2); /* user 3 had only a bad row */
    cb_dataset_free(ds);
    done(d);
    /* Every row bad: still an error, saying so. */
    d = ml_dir("userId,movieId,rating,timestamp\n1,1,x,5\n");
    expect_fail(d, &opt, CB_EPARSE, "ratings.csv", 3, "every row was skipped");
    done(d);
}

static void test_schema_errors(void **state) {
    (void)state;
    static const struct {
        const char *schema;
        size_t line;
        const char *reason;
    } cases[] = {
        {"ratings = r.csv\nfoo = 1\n", 2, "unknown key 'foo'"},
        {"# c\n\nratings.columns = user,item\n", 4, "no 'ratings = FILE' line"},
        {"ratings = r.csv\nratings.columns = user,thing\n", 2, "role must be"},
        {"ratings = r.csv\nratings.columns = user,user,item\n", 2, "named twice"},
        {"ratings = r.csv\nratings.columns = item,rating\n", 2, "exactly one user"},
        {"ratings = r.csv\nitems = i.csv\n", 2, "needs a 'items.columns"},
        {"ratings = r.csv\nitems = i.csv\nitems.columns = id,price:money\n", 3, "unknown kind 'money'"},
        {"ratings = r.csv\nitems = i.csv\nitems.columns = id,price\n", 3, "needs a kind"},
        {"ratings = r.csv\nitems = i.csv\nitems.columns = name:title\n", 3, "exactly one id"},
        {"ratings = r.csv\nrating.range = 5,1\n", 2, "MIN <= MAX"},
        {"ratings = r.csv\nratings.header = maybe\n", 2, "yes or no"},
        {"ratings = r.csv\nratings = s.csv\n", 2, "given twice"},
        {"ratings = r.csv\nno equals sign\n", 2, "key = value"},
        {"ratings = r.csv\nratings.header = no\n", 1, "needs a 'ratings.columns"},
        {"ratings = r.csv\nname = \n", 2, "empty name"}, /* was the name "": "layout:  (DIR)" */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = tu_tmpdir();
        free(tu_write(d, "cbrec.schema", cases[i].schema));
        free(tu_write(d, "r.csv", "user,item,rating\na,x,1\n"));
        free(tu_write(d, "i.csv", "id,price\nx,1\n"));
        expect_fail(d, NULL, CB_EPARSE, "cbrec.schema", cases[i].line, cases[i].reason);
        done(d);
    }
    /* Data errors in generic attribute files. */
    char *d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nitems = i.csv\nitems.columns = id,price:numeric\n"));
    free(tu_write(d, "r.csv", "user,item,rating\na,x,1\n"));
    free(tu_write(d, "i.csv", "id,price\nx,1\ny,cheap\n"));
    expect_fail(d, NULL, CB_EPARSE, "i.csv", 3, "column 'price': 'cheap' is not a finite number");
    free(tu_write(d, "i.csv", "id,price,extra\nx,1,2\n"));
    expect_fail(d, NULL, CB_EPARSE, "i.csv", 1, "header has 3 fields but the schema declares 2");
    done(d);
    /* A bare ratings.csv whose header names no user column. */
    d = tu_tmpdir();
    free(tu_write(d, "ratings.csv", "a,b,c\n1,2,3\n"));
    expect_fail(d, NULL, CB_EPARSE, "ratings.csv", 1, "user and item columns");
    done(d);
}

/* The columns are matched by position: a header naming a column where the
 * schema declares another (loaded silently into each other's places) is an
 * error naming the file, line 1, the position and both names. Renamed
 * columns and headerless files load. */
static void test_header_contradicts_schema(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nratings.columns = user,item,rating\nitems = i.csv\n"
                                     "items.columns = id, tags:multi(;), brand:categorical\n"));
    free(tu_write(d, "r.csv", "user,item,rating\na,x,1\nb,y,2\n"));
    free(tu_write(d, "i.csv", "id,brand,tags\nx,Acme,jazz;folk\ny,Zeta,rock\n"));
    expect_fail(d, NULL, CB_EPARSE, "i.csv", 1,
                "column 2 is 'brand' in the header but 'tags' in the schema's items.columns, which declares "
                "'brand' as column 3 (columns are read by position");
    free(tu_write(d, "i.csv", "sku,Tags,brand\nx,jazz;folk,Acme\ny,rock,Zeta\n")); /* renamed; any case */
    cb_dataset_free(expect_ok(d, NULL));
    free(tu_write(d, "r.csv", "item,user,rating\nx,a,1\ny,b,2\n"));
    expect_fail(d, NULL, CB_EPARSE, "r.csv", 1,
                "column 1 is 'item' in the header but 'user' in the schema's ratings.columns, which declares "
                "'item' as column 2");
    /* headerless files are read by position, as before */
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nratings.columns = user,item,rating\nratings.header = no\n"
                                     "items = i.csv\nitems.header = no\n"
                                     "items.columns = id, tags:multi(;), brand:categorical\n"));
    free(tu_write(d, "r.csv", "a,x,1\nb,y,2\n"));
    free(tu_write(d, "i.csv", "x,jazz;folk,Acme\ny,rock,Zeta\n"));
    cb_dataset *ds = expect_ok(d, NULL);
    assert_int_equal(cb_vocab_size(ds->items), 2);
    int brand = cb_table_find(&ds->item_attr, "brand");
    assert_true(brand >= 0);
    assert_string_equal(cb_vocab_name(ds->item_attr.cols[brand].levels, ds->item_attr.cols[brand].cat[0]), "Acme");
    cb_dataset_free(ds);
    /* the users file too */
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nratings.columns = user,item,rating\nratings.header = no\n"
                                     "users = u.csv\nusers.columns = id, age:numeric, region:categorical\n"));
    free(tu_write(d, "u.csv", "id,region,age\na,north,30\nb,south,40\n"));
    expect_fail(d, NULL, CB_EPARSE, "u.csv", 1, "column 2 is 'region' in the header but 'age' in the schema's "
                                               "users.columns, which declares 'region' as column 3");
    done(d);
}

static void test_course_lab_errors(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "content_user_train_header.txt", "user id,rating count,rating ave,Action"));
    free(tu_write(d, "content_item_train_header.txt", "movie id,year,Action"));
    free(tu_write(d, "content_item_train.csv", "10,2003,1\n10,2003,1\n11,1999,0\n"));
    free(tu_write(d, "content_y_train.csv", "4.0\n4.0\n3.0\n"));
    /* User 2 repeated with a different "rating ave". */
    free(tu_write(d, "content_user_train.csv", "2,3,4.0,4.5\n7,1,3.0,0.0\n2,3,4.5,4.5\n"));
    expect_fail(d, NULL, CB_EPARSE, "content_user_train.csv", 3, "'rating ave' = 4.5 here but 4 at line 1");
    /* Row counts differ. */
    free(tu_write(d, "content_user_train.csv", "2,3,4.0,4.5\n7,1,3.0,0.0\n"));
    expect_fail(d, NULL, CB_EPARSE, "content_item_train.csv", 3, "different row counts");
    /* Wrong field count against the header. */
    free(tu_write(d, "content_user_train.csv", "2,3,4.0,4.5\n7,1,3.0\n2,3,4.0,4.5\n"));
    expect_fail(d, NULL, CB_EPARSE, "content_user_train.csv", 2, "expected 4 fields");
    /* Bad target. */
    free(tu_write(d, "content_user_train.csv", "2,3,4.0,4.5\n7,1,3.0,0.0\n2,3,4.0,4.5\n"));
    free(tu_write(d, "content_y_train.csv", "4.0\ninf\n3.0\n"));
    expect_fail(d, NULL, CB_EPARSE, "content_y_train.csv", 2, "finite number");
    /* ... skipped on request. */
    cb_load_options opt;
    cb_load_options_default(&opt);
    opt.skip_bad_rows = true;
    cb_dataset *ds = expect_ok(d, &opt);
    assert_int_equal(ds->n_ratings, 2);
    assert_int_equal(ds->n_skipped, 1);
    cb_dataset_free(ds);
    done(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_column_counts),
        cmocka_unit_test(test_bad_ratings),
        cmocka_unit_test(test_declared_range),
        cmocka_unit_test(test_duplicates_and_unknown_ids),
        cmocka_unit_test(test_tolerated_encodings),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_skip_bad_rows),
        cmocka_unit_test(test_schema_errors),
        cmocka_unit_test(test_header_contradicts_schema),
        cmocka_unit_test(test_course_lab_errors),
    };
    return cmocka_run_group_tests_name("dataset_bad", tests, NULL, NULL);
}
