/* The ratings reader's fast path against its reference, the general path:
 * random rating files, mostly plain lines with every kind of oddity mixed in
 * (quotes, CRLF, blank lines, bad numbers, unknown ids, leading zeros, BOM,
 * no final newline, ...), loaded both ways and with chunk sizes that make
 * even small files take the multi-thread hand-offs. The result, or the error
 * message, must be identical. */
#include "testutil.h"

#include "data/dataset.h"

typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void put(text *t, const char *s) {
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = 2 * (t->len + n + 1);
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
}

static const char *pick(cb_rng *rng, const char *const *a, size_t n) { return a[cb_rng_below(rng, n)]; }
#define PICK(rng, a) pick(rng, a, sizeof a / sizeof a[0])

/* What odd lines of a file have: one kind of oddity and one value of it
 * per file, so that every one meets the fast path first in some file. */
typedef struct oddity {
    unsigned odds; /* a line is odd with chance 1/odds */
    int what;      /* 0 id, 1 rating, 2 timestamp, 3 duplicate, 4 extra column, 5 line end, 6 none */
    uint64_t which;
} oddity;

static const char *nth(const char *const *a, size_t n, uint64_t which) { return a[which % n]; }
#define NTH(a, which) nth(a, sizeof a / sizeof a[0], which)

/* One line of fields user, item, rating, timestamp (in the file's column
 * order `order`, plus an unused column when `extra`), maybe odd. */
static void gen_line(text *t, cb_rng *rng, const int order[4], bool extra, const oddity *od, uint32_t *user,
                     uint32_t *k, const char *prev) {
    static const char *const ratings[] = {"4", "4.5", "0.5", "3.0", "5", "1", "2.25", "0"};
    static const char *const odd_ids[] = {"007", "u12", "", "1234567890", "123456789", "0", "\"3\"", " 4", "99"};
    static const char *const odd_ratings[] = {"abc", "nan", "4.", ".5", "1e2", "-1", "+3", "7",
                                              "4.50000000000000001", " 4", "", "\"4\"", "12345678901234567"};
    static const char *const odd_ts[] = {"-5", "4294967296", "4294967295", "0012", "", "1.5", "12345678901"};
    static const char *const odd_extra[] = {",caf\xC3\xA9", ",\xFF", ",a\"b", ",a\rb", ",x,y", ",\"x,y\"",
                                            ",\"a\nb\"", ",\"a\"\"b\"", ""};
    static const char *const odd_ends[] = {"\r\n", "\n\n", "\r\n\r\n", ",\n", "\n\r\n", "\r\r\n", "\r"};
    char f[4][64];
    if (cb_rng_below(rng, 5) == 0) {
        *user += 1 + (uint32_t)cb_rng_below(rng, 3);
        *k = 0;
    }
    snprintf(f[0], sizeof f[0], "%u", *user);
    snprintf(f[1], sizeof f[1], "%u", 1 + (*user * 7 + (*k)++ * 11) % 30);
    snprintf(f[2], sizeof f[2], "%s", PICK(rng, ratings));
    snprintf(f[3], sizeof f[3], "%u", (uint32_t)cb_rng_below(rng, 2000000000));
    bool odd = cb_rng_below(rng, od->odds) == 0;
    int what = od->what;
    if (odd && what == 0) snprintf(f[od->which / 16 % 2], 64, "%s", NTH(odd_ids, od->which));
    if (odd && what == 1) snprintf(f[2], 64, "%s", NTH(odd_ratings, od->which));
    if (odd && what == 2) snprintf(f[3], 64, "%s", NTH(odd_ts, od->which));
    if (odd && what == 3 && prev[0]) { /* a duplicate of the previous line */
        put(t, prev);
        return;
    }
    for (int c = 0; c < 4; c++) {
        if (c) put(t, ",");
        put(t, f[order[c]]);
    }
    if (extra) put(t, odd && what == 4 ? NTH(odd_extra, od->which) : ",note");
    else if (odd && what == 4) put(t, ",");
    put(t, odd && what == 5 ? NTH(odd_ends, od->which) : "\n");
}

static cb_dataset *load(const char *dir, const cb_load_options *opt, int *rc, cb_error *err) {
    cb_dataset *ds = NULL;
    *rc = cb_dataset_load(&ds, dir, opt, err);
    return ds;
}

static void same_dataset(const cb_dataset *a, const cb_dataset *b) {
    assert_int_equal(a->n_ratings, b->n_ratings);
    assert_int_equal(a->n_skipped, b->n_skipped);
    assert_memory_equal(a->ratings, b->ratings, a->n_ratings * sizeof *a->ratings);
    assert_int_equal(cb_dataset_n_users(a), cb_dataset_n_users(b));
    assert_int_equal(cb_dataset_n_items(a), cb_dataset_n_items(b));
    for (uint32_t u = 0; u < cb_dataset_n_users(a); u++)
        assert_string_equal(cb_vocab_name(a->users, u), cb_vocab_name(b->users, u));
    for (uint32_t i = 0; i < cb_dataset_n_items(a); i++)
        assert_string_equal(cb_vocab_name(a->items, i), cb_vocab_name(b->items, i));
    assert_true(a->y_min == b->y_min && a->y_max == b->y_max && a->binary == b->binary);
    assert_true(a->has_timestamps == b->has_timestamps);
}

/* Load dir with the reference and with the fast path at several chunk sizes. */
static void compare_loads(const char *dir, cb_load_options opt, size_t *n_ok) {
    opt.ratings_reference = true;
    int rc_ref;
    cb_error err_ref = {0};
    cb_dataset *ref = load(dir, &opt, &rc_ref, &err_ref);
    opt.ratings_reference = false;
    static const size_t chunks[] = {0, 1, 13, 100};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        opt.ratings_chunk = chunks[c];
        int rc;
        cb_error err = {0};
        cb_dataset *ds = load(dir, &opt, &rc, &err);
        if (rc != rc_ref || strcmp(err.msg, err_ref.msg) != 0)
            fprintf(stderr, "%s (chunk %zu): reference %d '%s', fast %d '%s'\n", dir, chunks[c], rc_ref,
                    err_ref.msg, rc, err.msg);
        assert_int_equal(rc, rc_ref);
        assert_string_equal(err.msg, err_ref.msg);
        if (!rc) same_dataset(ref, ds);
        cb_dataset_free(ds);
    }
    *n_ok += rc_ref == CB_OK;
    cb_dataset_free(ref);
}

/* Files generated: under ThreadSanitizer (make test-tsan) a tenth, as each
 * load starts its threads and TSan makes a thread slow to start; the hand-offs
 * are the same. */
#if defined(__SANITIZE_THREAD__)
#define N_SEEDS 40
#else
#define N_SEEDS 400
#endif

static void test_fast_matches_reference(void **state) {
    (void)state;
    static const int ml_order[4] = {0, 1, 2, 3}, other_order[4] = {2, 3, 0, 1};
    size_t n_ok = 0, n_files = 0;
    for (uint64_t seed = 1; seed <= N_SEEDS; seed++) {
        cb_rng rng;
        cb_rng_seed(&rng, seed);
        bool movielens = seed % 2; /* else: a ratings-only folder, columns reordered, an extra column */
        oddity od = {10 + (unsigned)cb_rng_below(&rng, 60), (int)(seed / 2 % 7), seed / 14};
        text t = {0};
        if (seed % 7 == 0) put(&t, "\xEF\xBB\xBF");
        put(&t, movielens ? "userId,movieId,rating,timestamp\n" : "rating,timestamp,userId,movieId,note\n");
        uint32_t user = 1 + (uint32_t)cb_rng_below(&rng, 5), k = 0;
        size_t n_lines = 20 + cb_rng_below(&rng, 300);
        char prev[256] = "";
        for (size_t i = 0; i < n_lines; i++) {
            size_t at = t.len;
            gen_line(&t, &rng, movielens ? ml_order : other_order, !movielens, &od, &user, &k, prev);
            snprintf(prev, sizeof prev, "%s", t.s + at);
        }
        if (seed % 5 == 0 && t.s[t.len - 1] == '\n') t.s[--t.len] = '\0'; /* no final newline */

        char *d = tu_tmpdir();
        if (movielens) {
            text m = {0};
            put(&m, "movieId,title,genres\n");
            for (int i = 1; i <= 28; i++) { /* 29 and 30 are unknown items */
                char line[64];
                snprintf(line, sizeof line, "%d,Movie %d (1990),Drama\n", i, i);
                put(&m, line);
            }
            free(tu_write(d, "movies.csv", m.s));
            free(m.s);
        } else { /* ratings alone, asked for (a movieId header without movies.csv is refused) */
            free(tu_write(d, "cbrec.schema", "ratings = ratings.csv\n"));
        }
        free(tu_write(d, "ratings.csv", t.s));
        free(t.s);
        cb_load_options opt;
        cb_load_options_default(&opt);
        for (int variant = 0; variant < 3; variant++) {
            opt.skip_bad_rows = variant == 1;
            opt.y_min = variant == 2 ? 0.5f : 0.0f;
            opt.y_max = variant == 2 ? 4.5f : 0.0f;
            compare_loads(d, opt, &n_ok);
            n_files++;
        }
        tu_rmrf(d);
        free(d);
    }
    /* The cases must include loads that succeed, not only errors. */
    assert_true(n_ok > n_files / 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
