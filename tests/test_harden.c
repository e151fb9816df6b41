/* Regression tests of the hardening issue (13): each input a hostile or
 * careless user could give that once hung, crashed, was read wrongly or was
 * served as garbage is now refused at once with a message saying why (or read
 * right). One test per case; the model/dataset fixtures are synthetic. */
#include "base/st.h"
#include "cliutil.h"
#include "model/bundle.h"
#include "rec/recommend.h"

#include <math.h>
#include <signal.h>

typedef struct {
    char *dir, *data, *model;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->data = tu_path(f->dir, "data");
    f->model = tu_path(f->dir, "m.cbrec");
    char *out;
    int rc = run(&out, "%s synth --out %s --users 40 --items 50 --ratings 900 --genres 4 --seed 3", cbrec(), f->data);
    if (rc) fprintf(stderr, "%s\n", out);
    free(out);
    assert_int_equal(rc, 0);
    rc = run(&out, "%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 --top-k-popular 5 -q",
             cbrec(), f->data, f->model);
    if (rc) fprintf(stderr, "%s\n", out);
    free(out);
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tu_rmrf(f->dir);
    free(f->dir), free(f->data), free(f->model), free(f);
    return 0;
}

/* Run a cbrec command expected to fail with `status` and say `needle`. */
static void expect_fail(int status, const char *needle, const char *fmt, const char *a, const char *b, const char *c) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    int rc = run(&out, "timeout 20 %s %s", cbrec(), cmd);
    if (rc != status || !strstr(out, needle)) fprintf(stderr, "cbrec %s -> %d:\n%s\n", cmd, rc, out);
    assert_int_equal(rc, status);
    assert_non_null(strstr(out, needle));
    free(out);
}

/* A FIFO (or a folder) given as any input file is refused at once (it used to block for ever). */
static void fifo_inputs_refused(void **state) {
    fixture *f = *state;
    char *fifo = tu_path(f->dir, "pipe");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_fail(1, "FIFO", "predict --model %s --user 1 --item 2%s%s", fifo, "", "");
    expect_fail(1, "FIFO", "recommend --model %s --table %s --user 1%s", f->model, fifo, "");
    expect_fail(1, "FIFO", "recommend --model %s --new-user %s%s", f->model, fifo, "");
    expect_fail(1, "FIFO", "recommend --model %s --users %s%s", f->model, fifo, "");
    expect_fail(1, "FIFO", "add-item --model %s --item-json %s --out %s.t", f->model, fifo, fifo);
    expect_fail(1, "a directory", "predict --model %s --user 1 --item 2%s%s", f->dir, "", "");
    expect_fail(1, "FIFO", "train --data %s --schema %s --model %s.x -q", f->data, fifo, f->model);
    char *d = tu_path(f->dir, "fifo-data");
    assert_int_equal(mkdir(d, 0700), 0);
    char *r = tu_path(d, "ratings.csv");
    assert_int_equal(mkfifo(r, 0600), 0);
    free(tu_write(d, "movies.csv", "movieId,title,genres\n1,A (1999),Drama\n"));
    expect_fail(1, "ratings.csv: the file is a FIFO", "inspect --data %s%s%s", d, "", "");
    free(r), free(d), free(fifo);
}

/* Re-save the model with tensor `tensor` (F32) poisoned by `value` at [0] and
 * metadata `meta` set to `meta_value` (NULL: left out): a valid checksum, bad contents. */
static char *craft(const fixture *f, const char *name, const char *tensor, float value, const char *meta,
                   const char *meta_value) {
    cb_error err;
    cb_st *st = NULL;
    assert_int_equal(cb_st_open(&st, f->model, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    cb_st_writer *w = cb_st_writer_create(&err);
    const char *skip[3] = {tensor, meta, NULL};
    if (!tensor) skip[0] = meta, skip[1] = NULL;
    assert_int_equal(cb_st_copy(st, w, skip, &err), CB_OK);
    float *copy = NULL;
    if (tensor) {
        int64_t shape[2];
        const float *t = cb_st_tensor(st, tensor, CB_ST_F32, 2, shape, &err);
        assert_non_null(t);
        copy = malloc((size_t)(shape[0] * shape[1]) * sizeof *copy);
        memcpy(copy, t, (size_t)(shape[0] * shape[1]) * sizeof *copy);
        copy[0] = value;
        assert_int_equal(cb_st_add(w, tensor, CB_ST_F32, shape, 2, copy, &err), CB_OK);
    }
    if (meta && meta_value) assert_int_equal(cb_st_set_meta(w, meta, meta_value, &err), CB_OK);
    char *path = tu_path(f->dir, name);
    assert_int_equal(cb_st_write(w, path, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    cb_st_writer_free(w);
    cb_st_close(st);
    free(copy);
    return path;
}

/* A model file with a valid checksum but bad contents: every case says why,
 * never "unknown error" nor stale text (the error buffer starts poisoned). */
static void crafted_models_refused(void **state) {
    fixture *f = *state;
    struct {
        const char *tensor;
        float value;
        const char *meta, *meta_value, *expect;
    } cases[] = {
        {"item_vectors", NAN, NULL, NULL, "tensor 'item_vectors' has a non-finite value (nan) in row 0"},
        {"user_vectors", INFINITY, NULL, NULL, "tensor 'user_vectors' has a non-finite value"},
        {"tower.user.0.weight", NAN, NULL, NULL, "user.0.weight holds NaN or Inf"},
        {NULL, 0, "fingerprint", NULL, "metadata 'fingerprint' is missing"},
        {NULL, 0, "fingerprint", "", "metadata 'fingerprint' is missing or empty"},
        {NULL, 0, "info", "{\"dataset\":\"x\",\"y_min\":5,\"y_max\":1,\"binary\":false}", "bad rating range"},
        {NULL, 0, "titles.offsets", NULL, "tensor 'titles.offsets' is missing"},
        {NULL, 0, "users.index", NULL, "tensor 'users.index' is missing"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *path = craft(f, "crafted.cbrec", cases[k].tensor, cases[k].value, cases[k].meta, cases[k].meta_value);
        cb_error err;
        memset(&err, 'Z', sizeof err); /* stale text must never show */
        cb_bundle *r = NULL;
        int rc = cb_bundle_load(&r, path, &err);
        if (!strstr(err.msg, cases[k].expect)) fprintf(stderr, "case %zu: '%s'\n", k, err.msg);
        assert_int_equal(rc, CB_EFORMAT);
        assert_null(r);
        assert_non_null(strstr(err.msg, cases[k].expect));
        assert_null(strstr(err.msg, "ZZZ"));
        /* and the CLI refuses it instead of printing nan */
        if (k == 0) expect_fail(1, "non-finite", "predict --model %s --user 1 --item 2%s%s", path, "", "");
        free(path);
    }
}

/* A model file whose item table holds one id twice (re-saved with a valid
 * checksum and an index built by linear probing without a duplicate check):
 * load and the CLI refuse it, naming the file and the id. */
static void duplicate_item_id_refused(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_st *st = NULL;
    assert_int_equal(cb_st_open(&st, f->model, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    int64_t n_off, n_bytes, n_slots;
    const int32_t *off = cb_st_tensor(st, "items.offsets", CB_ST_I32, 1, &n_off, &err);
    const char *bytes = cb_st_tensor(st, "items.bytes", CB_ST_U8, 1, &n_bytes, &err);
    assert_non_null(cb_st_tensor(st, "items.index", CB_ST_I32, 1, &n_slots, &err));
    assert_non_null(off), assert_non_null(bytes);
    const uint32_t n = (uint32_t)(n_off - 1), dup = n - 2; /* item n - 2 takes item 3's id */
    char *nb = malloc((size_t)n_bytes + 64);
    int32_t *noff = malloc((size_t)n_off * sizeof *noff), *index = calloc((size_t)n_slots, sizeof *index);
    int32_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *s = bytes + off[i == dup ? 3 : i];
        noff[i] = pos;
        memcpy(nb + pos, s, strlen(s) + 1);
        pos += (int32_t)strlen(s) + 1;
        uint32_t slot = (uint32_t)cb_hash64(s, strlen(s), 0) & (uint32_t)(n_slots - 1);
        while (index[slot]) slot = (slot + 1) & (uint32_t)(n_slots - 1);
        index[slot] = (int32_t)i + 1;
    }
    noff[n] = pos;
    char id3[32];
    snprintf(id3, sizeof id3, "%s", bytes + off[3]);
    cb_st_writer *w = cb_st_writer_create(&err);
    const char *skip[] = {"items.offsets", "items.bytes", "items.index", NULL};
    assert_int_equal(cb_st_copy(st, w, skip, &err), CB_OK);
    int64_t nbl = pos;
    assert_int_equal(cb_st_add(w, "items.offsets", CB_ST_I32, &n_off, 1, noff, &err), CB_OK);
    assert_int_equal(cb_st_add(w, "items.bytes", CB_ST_U8, &nbl, 1, nb, &err), CB_OK);
    assert_int_equal(cb_st_add(w, "items.index", CB_ST_I32, &n_slots, 1, index, &err), CB_OK);
    char *path = tu_path(f->dir, "dup-ids.cbrec");
    assert_int_equal(cb_st_write(w, path, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    cb_st_writer_free(w);
    cb_st_close(st);
    char expect[128];
    snprintf(expect, sizeof expect, "duplicate id '%s' in table 'items' (entries 3 and %u)", id3, dup);
    cb_bundle *r = NULL;
    memset(&err, 'Z', sizeof err);
    assert_int_equal(cb_bundle_load(&r, path, &err), CB_EFORMAT);
    assert_null(r);
    if (!strstr(err.msg, expect)) fprintf(stderr, "'%s'\n", err.msg);
    assert_non_null(strstr(err.msg, expect));
    assert_non_null(strstr(err.msg, path));
    expect_fail(1, expect, "recommend --model %s --user 1%s%s", path, "", "");
    free(nb), free(noff), free(index), free(path);
}

/* An added-items file with a valid checksum but a NaN vector is refused on
 * load (it used to be served: every score of that item NaN). */
static void crafted_added_items_refused(void **state) {
    fixture *f = *state;
    char *item = tu_write(f->dir, "item.json", "{\"id\": \"new1\", \"title\": \"N\", \"genres\": [\"Action\"]}");
    char *added = tu_path(f->dir, "added.cbrec"), *bad = tu_path(f->dir, "added-bad.cbrec");
    assert_int_equal(run(NULL, "%s add-item --model %s --item-json %s --out %s", cbrec(), f->model, item, added), 0);
    cb_error err;
    cb_st *st = NULL;
    assert_int_equal(cb_st_open(&st, added, CB_RECOMMEND_ADDED_FORMAT, CB_RECOMMEND_TABLE_VERSION, &err), CB_OK);
    cb_st_writer *w = cb_st_writer_create(&err);
    const char *skip[] = {"extra.vectors", NULL};
    assert_int_equal(cb_st_copy(st, w, skip, &err), CB_OK);
    int64_t shape[2];
    const float *v = cb_st_tensor(st, "extra.vectors", CB_ST_F32, 2, shape, &err);
    assert_non_null(v);
    float *copy = malloc((size_t)(shape[0] * shape[1]) * sizeof *copy);
    memcpy(copy, v, (size_t)(shape[0] * shape[1]) * sizeof *copy);
    copy[0] = NAN;
    assert_int_equal(cb_st_add(w, "extra.vectors", CB_ST_F32, shape, 2, copy, &err), CB_OK);
    assert_int_equal(cb_st_write(w, bad, CB_RECOMMEND_ADDED_FORMAT, CB_RECOMMEND_TABLE_VERSION, &err), CB_OK);
    cb_st_writer_free(w);
    cb_st_close(st);
    expect_fail(1, "vector of added item 0 is unusable", "recommend --model %s --table %s --user 1%s", f->model, bad, "");
    assert_int_equal(run(NULL, "%s recommend --model %s --table %s --user 1", cbrec(), f->model, added), 0);
    free(copy), free(item), free(added), free(bad);
}

/* User-given numbers far outside the fitted statistics are refused, and a
 * degenerate vector is never served. */
static void absurd_attributes_refused(void **state) {
    fixture *f = *state;
    char *u = tu_write(f->dir, "u.json", "{\"age\": 1e30}");
    expect_fail(1, "'age' = 1e+30 is outside what the model was fitted on", "recommend --model %s --new-user %s%s",
                f->model, u, "");
    free(tu_write(f->dir, "u.json", "{\"age\": 35}"));
    char *out;
    assert_int_equal(run(&out, "%s recommend --model %s --new-user %s -n 3", cbrec(), f->model, u), 0);
    free(out);
    /* a categorical value the model never saw: a remark (it would count as missing), an error under strict */
    free(tu_write(f->dir, "u.json", "{\"age\": 35, \"gender\": \"X\"}"));
    assert_int_equal(run(&out, "%s recommend --model %s --new-user %s -n 3", cbrec(), f->model, u), 0);
    assert_non_null(strstr(out, "note: unknown value 'X' of 'gender' ignored"));
    free(out);
    free(tu_write(f->dir, "u.json", "{\"gender\": \"X\", \"strict\": true}"));
    expect_fail(1, "u.json: unknown value 'X' of 'gender'", "recommend --model %s --new-user %s%s", f->model, u, "");
    char *i = tu_write(f->dir, "i.json", "{\"id\": \"x1\", \"title\": \"T\", \"genres\": [\"Action\"], \"year\": 1e30}");
    expect_fail(1, "'year' = 1e+30 is outside", "add-item --model %s --item-json %s --out %s.t", f->model, i, i);
    free(u), free(i);
    /* degenerate vectors */
    cb_bundle *r = NULL;
    cb_error err;
    assert_int_equal(cb_bundle_load(&r, f->model, &err), CB_OK);
    float *v = calloc(r->dim, sizeof *v);
    assert_int_equal(cb_bundle_check_vector(r, v, true, &err), CB_ENUMERIC);
    assert_non_null(strstr(err.msg, "all zero"));
    v[0] = NAN;
    assert_int_equal(cb_bundle_check_vector(r, v, false, &err), CB_ENUMERIC);
    assert_non_null(strstr(err.msg, "non-finite"));
    memcpy(v, r->user_vecs, r->dim * sizeof *v);
    assert_int_equal(cb_bundle_check_vector(r, v, true, &err), CB_OK);
    free(v);
    cb_bundle_free(r);
}

/* CRLF files, a reordered ratings header, a missing catalog, and the layout's reason. */
static void data_read_right(void **state) {
    fixture *f = *state;
    char *d = tu_path(f->dir, "crlf");
    assert_int_equal(mkdir(d, 0700), 0);
    free(tu_write(d, "movies.csv", "movieId,title,genres\r\n1,A (1999),Comedy\r\n2,B (2001),Drama|Comedy\r\n"));
    free(tu_write(d, "ratings.csv", "movieId,rating,timestamp,userId\r\n1,4.0,100,u1\r\n2,3.5,101,u1\r\n1,5,102,u2\r\n"));
    cb_dataset *ds = NULL;
    cb_error err;
    int rc = cb_dataset_load(&ds, d, NULL, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    assert_int_equal(cb_dataset_n_users(ds), 2); /* by name: userId is the last column */
    assert_int_equal(cb_dataset_n_items(ds), 2);
    assert_string_equal(cb_vocab_name(ds->users, 0), "u1");
    assert_true(ds->ratings[0].y == 4.0f);
    const cb_column *g = NULL;
    for (uint32_t c = 0; c < ds->item_attr.n_cols; c++)
        if (!strcmp(ds->item_attr.cols[c].name, "genres")) g = &ds->item_attr.cols[c];
    assert_non_null(g);
    assert_int_equal(cb_vocab_size(g->levels), 2); /* Comedy, Drama: no "Comedy\r" */
    for (uint32_t l = 0; l < cb_vocab_size(g->levels); l++) assert_null(strchr(cb_vocab_name(g->levels, l), '\r'));
    assert_non_null(strstr(ds->layout_why, "movies.csv"));
    cb_dataset_free(ds);
    /* the layout is said */
    char *out;
    assert_int_equal(run(&out, "%s inspect --data %s", cbrec(), d), 0);
    assert_non_null(strstr(out, "layout: movielens-latest"));
    assert_non_null(strstr(out, "the folder has ratings.csv and movies.csv"));
    free(out);
    /* a missing catalog is an error, unless a schema asks for ratings alone */
    char *m = tu_path(d, "movies.csv");
    assert_int_equal(unlink(m), 0);
    assert_int_equal(cb_dataset_load(&ds, d, NULL, &err), CB_EIO);
    assert_non_null(strstr(err.msg, "movies.csv is missing"));
    free(tu_write(d, "cbrec.schema", "ratings = ratings.csv\n"));
    assert_int_equal(cb_dataset_load(&ds, d, NULL, &err), CB_OK);
    cb_dataset_free(ds);
    /* a header without a user column is an error naming it */
    free(tu_write(d, "movies.csv", "movieId,title,genres\r\n1,A (1999),Comedy\r\n"));
    char *s = tu_path(d, "cbrec.schema");
    unlink(s);
    free(tu_write(d, "ratings.csv", "movieId,rating,timestamp,user\r\n1,4.0,100,u1\r\n"));
    assert_int_equal(cb_dataset_load(&ds, d, NULL, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "the header has no column 'userId'"));
    free(s), free(m), free(d);
}

/* A pid that is surely dead: a child that has exited and been reaped. */
static long dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    int st;
    waitpid(p, &st, 0);
    return (long)p;
}

/* Leftover temporaries of killed runs are removed by the next write of the same file. */
static void stale_temps_removed(void **state) {
    fixture *f = *state;
    char name[64];
    long pid = dead_pid();
    snprintf(name, sizeof name, "m.cbrec.tmp.%ld", pid);
    char *stale = tu_write(f->dir, name, "half a model");
    /* a part's own staging copy (the model is staged at m.cbrec.tmp.PID, and
     * that file is itself written through m.cbrec.tmp.PID.tmp.PID) and the history's */
    snprintf(name, sizeof name, "m.cbrec.tmp.%ld.tmp.%ld", pid, pid);
    char *stale2 = tu_write(f->dir, name, "half a staged model");
    snprintf(name, sizeof name, "m.cbrec.history.tmp.%ld.tmp.%ld", pid, pid);
    char *stale3 = tu_write(f->dir, name, "half a staged history");
    char *live_name = NULL;
    assert_true(asprintf(&live_name, "m.cbrec.tmp.%ld", (long)getpid()) > 0); /* a live process's: kept */
    char *live = tu_write(f->dir, live_name, "in progress");
    char *out;
    assert_int_equal(run(&out, "%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 -q",
                         cbrec(), f->data, f->model), 0);
    free(out);
    struct stat sb;
    assert_int_not_equal(stat(stale, &sb), 0);
    assert_int_not_equal(stat(stale2, &sb), 0);
    assert_int_not_equal(stat(stale3, &sb), 0);
    assert_int_equal(stat(live, &sb), 0);
    unlink(live);
    free(stale), free(stale2), free(stale3), free(live), free(live_name);
}

/* Failures that can be known before the work are reported before it. */
static void early_failures(void **state) {
    fixture *f = *state;
    expect_fail(1, "/no/such/dir/m.cbrec", "train --data %s --model /no/such/dir/m.cbrec%s%s -q", f->data, "", "");
    char *out;
    assert_int_equal(run(&out, "%s train --data %s --model /no/such/dir/m.cbrec", cbrec(), f->data), 1);
    assert_null(strstr(out, "epoch")); /* no training happened */
    free(out);
    expect_fail(1, "is a directory", "train --data %s --model %s%s -q", f->data, f->dir, "");
    expect_fail(2, "--epochs 0 would write an untrained model", "train --data %s --model %s.e0 --epochs 0%s", f->data,
                f->model, "");
    /* --history naming the model file (the model would overwrite it): refused before training */
    assert_int_equal(run(&out, "%s train --data %s --model %s.same --history %s/./m.cbrec.same", cbrec(), f->data,
                         f->model, f->dir), 1);
    assert_non_null(strstr(out, "would be the model file"));
    assert_null(strstr(out, "epoch"));
    free(out);
    char *t = tu_path(f->dir, "tab");
    assert_int_equal(run(&out, "%s precompute --model %s --out %s -k 45", cbrec(), f->model, t), 0);
    assert_non_null(strstr(out, "warning: -k 45 is near the catalog's 50 items"));
    assert_non_null(strstr(out, "MB"));
    free(out);
    assert_int_equal(run(&out, "%s precompute --model %s --out %s -k 5", cbrec(), f->model, t), 0);
    assert_null(strstr(out, "warning"));
    free(out);
    /* -k past the catalog: the note that it is clamped, not also the warning that it is near */
    assert_int_equal(run(&out, "%s precompute --model %s --out %s -k 100", cbrec(), f->model, t), 0);
    assert_non_null(strstr(out, "more than the other items in the catalog; using 49"));
    assert_null(strstr(out, "warning"));
    free(out);
    /* a catalog of 1 item: the error alone, no warning about -k before it */
    char *one = tu_path(f->dir, "one"), *one_model = tu_path(f->dir, "one.cbrec");
    assert_int_equal(mkdir(one, 0755), 0);
    free(tu_write(one, "cbrec.schema", "ratings = r.csv\n"));
    free(tu_write(one, "r.csv", "user,item,rating\nu1,a,5\nu2,a,3\nu3,a,4\n"));
    assert_int_equal(run(NULL, "%s train --data %s --model %s --epochs 1 -q", cbrec(), one, one_model), 0);
    assert_int_equal(run(&out, "%s precompute --model %s --out %s", cbrec(), one_model, t), 1);
    const char *alone = "cbrec precompute: the catalog has 1 item: a similar-items table needs at least 2\n";
    if (strcmp(out, alone)) fail_msg("output: %s", out);
    free(out);
    /* and cbrec index alike (it wrote a 1-node index, without a word) */
    assert_int_equal(run(&out, "%s index --model %s --out %s.hnsw", cbrec(), one_model, t), 1);
    if (strcmp(out, "cbrec index: the catalog has 1 item: an approximate index needs at least 2\n"))
        fail_msg("output: %s", out);
    free(out);
    assert_int_equal(run(NULL, "test -e %s.hnsw", t), 1);
    free(one), free(one_model), free(t);
    /* loss bce on 0.5..5 ratings: a clear error, not NaN */
    expect_fail(1, "loss bce needs labels 0 or 1", "train --data %s --model %s.bce --loss bce --objective rating%s -q",
                f->data, f->model, "");
}

/* A huge user-given string is never echoed whole into an error. */
static void long_strings_clipped(void **state) {
    fixture *f = *state;
    size_t n = 5u << 20;
    char *big = malloc(n + 64);
    memcpy(big, "{\"id\": \"", 8);
    memset(big + 8, 'x', n);
    strcpy(big + 8 + n, "\", \"strict\": true, \"genres\": [\"NoSuchGenre\"]}"); /* strict: an error */
    char *i = tu_write(f->dir, "big.json", big);
    char *out;
    assert_int_equal(run(&out, "%s add-item --model %s --item-json %s --out %s.t", cbrec(), f->model, i, i), 1);
    assert_true(strlen(out) < 1200);
    free(out);
    char *u = tu_path(f->dir, "users.txt");
    big[0] = 'u';
    big[n] = '\n', big[n + 1] = 0;
    free(tu_write(f->dir, "users.txt", big + 8));
    assert_int_equal(run(&out, "%s recommend --model %s --users %s", cbrec(), f->model, u), 1);
    assert_non_null(strstr(out, "unknown user"));
    assert_true(strlen(out) < 600);
    free(out);
    free(u), free(i), free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_inputs_refused),     cmocka_unit_test(crafted_models_refused), cmocka_unit_test(crafted_added_items_refused),
        cmocka_unit_test(duplicate_item_id_refused),
        cmocka_unit_test(absurd_attributes_refused), cmocka_unit_test(data_read_right),
        cmocka_unit_test(stale_temps_removed),     cmocka_unit_test(early_failures),
        cmocka_unit_test(long_strings_clipped),
    };
    return cmocka_run_group_tests_name("harden", tests, setup, teardown);
}
