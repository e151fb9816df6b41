/* Tests for csv: RFC 4180 quoting, line ends, BOM, delimiters, latin-1,
 * UTF-8 checks, limits and error messages. Every in-memory case is parsed in
 * several modes (vectorised fast path and reference parser, default blocks
 * and tiny blocks that split records anywhere) and all must agree. */
#include "testutil.h"
#include <sys/stat.h>
#include "base/csv.h"

/* ---- helpers */

typedef struct dump {
    char *s;
    size_t len, cap;
} dump;

static void dump_add(dump *d, const char *s, size_t n) {
    if (d->len + n + 1 > d->cap) {
        d->cap = (d->len + n + 1) * 2;
        d->s = realloc(d->s, d->cap);
        assert_non_null(d->s);
    }
    memcpy(d->s + d->len, s, n);
    d->len += n;
    d->s[d->len] = '\0';
}

static void dump_fmt(dump *d, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dump_add(d, buf, (size_t)n);
}

/* Read every record of `c` into a text dump: "<line>:[f1][f2]\n" per record,
 * then "END" or "ERR <code> <message>". Checks NUL termination on the way. */
static char *dump_all(cb_csv *c) {
    dump d = {0};
    dump_add(&d, "", 0);
    char **f;
    size_t *l, n;
    cb_error err;
    int rc;
    while ((rc = cb_csv_next(c, &f, &l, &n, &err)) == 1) {
        assert_true(n >= 1);
        dump_fmt(&d, "%zu:", cb_csv_line(c));
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(f[i][l[i]], '\0');
            dump_add(&d, "[", 1);
            dump_add(&d, f[i], l[i]);
            dump_add(&d, "]", 1);
        }
        dump_add(&d, "\n", 1);
    }
    if (rc == 0) dump_fmt(&d, "END");
    else {
        dump_fmt(&d, "ERR %d %s", rc, err.msg);
        /* errors are sticky */
        cb_error err2;
        assert_int_equal(cb_csv_next(c, &f, &l, &n, &err2), rc);
        assert_string_equal(err2.msg, err.msg);
    }
    return d.s;
}

/* Parse `len` bytes with `o` (NULL: defaults) in every mode; assert all modes
 * agree and return the dump (caller frees). */
static char *parse_len(const char *data, size_t len, const cb_csv_options *o) {
    static const size_t blocks[] = {0, 1, 2, 3, 5, 16, 17};
    char *first = NULL;
    for (int reference = 0; reference <= 1; reference++) {
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            cb_csv *c;
            cb_error err;
            assert_int_equal(cb_csv_open_mem(&c, "t", data, len, o, &err), CB_OK);
            if (blocks[b] || reference) cb_csv_set_debug(c, blocks[b] ? blocks[b] : ((size_t)1 << 20), reference);
            char *s = dump_all(c);
            cb_csv_close(c);
            if (!first) first = s;
            else {
                if (strcmp(first, s) != 0)
                    fail_msg("modes disagree (reference=%d block=%zu):\n%s\n---\n%s", reference, blocks[b],
                             first, s);
                free(s);
            }
        }
    }
    return first;
}

static char *parse(const char *data, const cb_csv_options *o) { return parse_len(data, strlen(data), o); }

#define EXPECT(data, opt, want)                 \
    do {                                        \
        char *got_ = parse((data), (opt));      \
        assert_string_equal(got_, (want));      \
        free(got_);                             \
    } while (0)

/* Assert parsing fails with `code` and a message starting with `prefix`
 * and containing `part`. */
#define EXPECT_ERR(data, opt, code, prefix, part)                             \
    do {                                                                      \
        char *got_ = parse((data), (opt));                                    \
        char *e_ = strstr(got_, "ERR ");                                      \
        if (!e_) fail_msg("expected an error, got:\n%s", got_);               \
        int code_ = atoi(e_ + 4);                                             \
        assert_int_equal(code_, (code));                                      \
        char *m_ = strchr(e_ + 4, ' ') + 1;                                   \
        if (strncmp(m_, (prefix), strlen(prefix)) != 0 || !strstr(m_, (part))) \
            fail_msg("unexpected message: %s", m_);                           \
        free(got_);                                                           \
    } while (0)

static cb_csv_options opts(const char *delim, int quoting) {
    cb_csv_options o;
    cb_csv_options_default(&o);
    o.delim = delim;
    o.quoting = quoting;
    return o;
}

/* ---- tests */

static void quoting(void **state) {
    (void)state;
    EXPECT("a,\"b,c\",\"d\"\"e\"\n", NULL, "1:[a][b,c][d\"e]\nEND");
    EXPECT("\"\",x,\"\"\"\"\n", NULL, "1:[][x][\"]\nEND");
    EXPECT(",,\n", NULL, "1:[][][]\nEND");
    /* a quote inside an unquoted field is data (MovieLens tags do this) */
    EXPECT("ab\"c,d\"\n", NULL, "1:[ab\"c][d\"]\nEND");
    EXPECT("51,730,\"\"\"artsy\"\"\",1100000009\n", NULL, "1:[51][730][\"artsy\"][1100000009]\nEND");
    EXPECT("\"a\"\n", NULL, "1:[a]\nEND");
    EXPECT_ERR("x\n\"a\"b,c\n", NULL, CB_EPARSE, "t:2: ", "after a closing quote");
    EXPECT_ERR("\"a\"\r\r\n", NULL, CB_EPARSE, "t:1: ", "after a closing quote");
}

static void embedded_newlines_and_lines(void **state) {
    (void)state;
    EXPECT("1,\"x\ny\",2\n3,4\n", NULL, "1:[1][x\ny][2]\n3:[3][4]\nEND");
    EXPECT("h\n\"a\n\n\nb\"\nz\n", NULL, "1:[h]\n2:[a\n\n\nb]\n6:[z]\nEND");
    /* CRLF inside quotes stays data, CRLF outside ends the record */
    EXPECT("\"x\r\ny\"\r\nq\r\n", NULL, "1:[x\r\ny]\n3:[q]\nEND");
}

static void line_ends(void **state) {
    (void)state;
    EXPECT("a,b\r\nc,d\r\n", NULL, "1:[a][b]\n2:[c][d]\nEND");
    EXPECT("a,b\nc,d", NULL, "1:[a][b]\n2:[c][d]\nEND"); /* no final newline */
    EXPECT("a,b\r\nc,d\r", NULL, "1:[a][b]\n2:[c][d]\nEND");
    EXPECT("a\rb,c\n", NULL, "1:[a\rb][c]\nEND"); /* a lone CR is data */
    EXPECT("a,\r\n", NULL, "1:[a][]\nEND");
    EXPECT("\"a\"", NULL, "1:[a]\nEND");
}

static void empty_lines(void **state) {
    (void)state;
    EXPECT("a\n\n\r\nb\n\n", NULL, "1:[a]\n4:[b]\nEND");
    cb_csv_options o = opts(",", 1);
    o.skip_empty_lines = 0;
    EXPECT("a\n\n\r\nb\n", &o, "1:[a]\n2:[]\n3:[]\n4:[b]\nEND");
    EXPECT("", NULL, "END");
    EXPECT("\n\n\n", NULL, "END");
    EXPECT("\xEF\xBB\xBF", NULL, "END");
}

static void bom(void **state) {
    (void)state;
    EXPECT("\xEF\xBB\xBFid,name\n1,x\n", NULL, "1:[id][name]\n2:[1][x]\nEND");
    /* only at the start of the file */
    EXPECT("a\n\xEF\xBB\xBF" "b\n", NULL, "1:[a]\n2:[\xEF\xBB\xBF" "b]\nEND");
    /* a truncated BOM is just bytes (here invalid UTF-8) */
    EXPECT_ERR("\xEF\xBB", NULL, CB_EPARSE, "t:1: ", "invalid UTF-8 (byte 0xEF at column 1)");
    cb_csv_options o = opts(",", 1);
    o.check_utf8 = 0;
    EXPECT("\xEF\xBB\n", &o, "1:[\xEF\xBB]\nEND");
}

static void delimiters(void **state) {
    (void)state;
    cb_csv_options o = opts("::", 0);
    EXPECT("1::17::5::1200000001\n2::31::3::1200000002\n", &o,
           "1:[1][17][5][1200000001]\n2:[2][31][3][1200000002]\nEND");
    EXPECT("a:::b\na::::b\n:x:\n", &o, "1:[a][:b]\n2:[a][][b]\n3:[:x:]\nEND");
    EXPECT("a::", &o, "1:[a][]\nEND");
    o = opts("|", 0);
    EXPECT("1|Toy \"Story\" (1995)|01-Jan-1995\n", &o, "1:[1][Toy \"Story\" (1995)][01-Jan-1995]\nEND");
    EXPECT("\"abc|d\n", &o, "1:[\"abc][d]\nEND");
    o = opts("\t", 0);
    EXPECT("12\t34\t3\t1300000001\n", &o, "1:[12][34][3][1300000001]\nEND");
    o = opts("\t", 1);
    EXPECT("\"a\tb\"\tc\n", &o, "1:[a\tb][c]\nEND");
    /* a quoted multi-byte delimiter */
    o = opts("::", 1);
    EXPECT("\"a::b\"::c\n", &o, "1:[a::b][c]\nEND");
    /* many fields (array growth) */
    EXPECT("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19\n", NULL,
           "1:[0][1][2][3][4][5][6][7][8][9][10][11][12][13][14][15][16][17][18][19]\nEND");
}

/* Records of every length around the fast path's 32- and 64-byte windows,
 * some with non-ASCII text, CRLF or empty lines: every mode must agree. */
static void mixed_lengths(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    const char *delims[3] = {",", "::", "\t"};
    for (int d = 0; d < 3; d++) {
        char *text = malloc(40000);
        assert_non_null(text);
        size_t len = 0, n_rows = 0;
        while (len < 39000) {
            size_t n_fields = 1 + cb_rng_below(&rng, 6), row_start = len;
            for (size_t f = 0; f < n_fields; f++) {
                if (f) len += (size_t)sprintf(text + len, "%s", delims[d]);
                size_t w = cb_rng_below(&rng, 30);
                for (size_t k = 0; k < w; k++) text[len++] = (char)('a' + cb_rng_below(&rng, 26));
                if (cb_rng_below(&rng, 20) == 0) len += (size_t)sprintf(text + len, "\xC3\xA9");
            }
            n_rows += len > row_start; /* empty rows are skipped */
            if (cb_rng_below(&rng, 10) == 0) text[len++] = '\r';
            text[len++] = '\n';
            if (cb_rng_below(&rng, 15) == 0) text[len++] = '\n';
        }
        text[len] = '\0';
        cb_csv_options o = opts(delims[d], d != 1);
        char *got = parse(text, &o); /* asserts all modes agree */
        size_t records = 0;
        for (char *q = got; (q = strchr(q, '\n')) != NULL; q++) records++;
        assert_true(strstr(got, "END") != NULL);
        assert_int_equal(records, n_rows);
        free(got);
        free(text);
    }
}

static void bad_options(void **state) {
    (void)state;
    cb_csv *c = (cb_csv *)1;
    cb_error err;
    cb_csv_options o = opts("", 1);
    assert_int_equal(cb_csv_open_mem(&c, "t", "", 0, &o, &err), CB_EINVAL);
    assert_null(c);
    o = opts("\"", 1);
    assert_int_equal(cb_csv_open_mem(&c, "t", "", 0, &o, &err), CB_EINVAL);
    o = opts("\n", 0);
    assert_int_equal(cb_csv_open_mem(&c, "t", "", 0, &o, &err), CB_EINVAL);
    o = opts(",", 1);
    o.max_line = 0;
    assert_int_equal(cb_csv_open_mem(&c, "t", "", 0, &o, &err), CB_EINVAL);
    cb_csv_close(NULL);
}

static void latin1(void **state) {
    (void)state;
    cb_csv_options o = opts("|", 0);
    o.latin1 = 1;
    EXPECT("1|Caf\xE9|\xFF\n", &o, "1:[1][Caf\xC3\xA9][\xC3\xBF]\nEND");
    /* without the option the same bytes are invalid UTF-8 */
    o.latin1 = 0;
    EXPECT_ERR("1|ok\n2|Caf\xE9\n", &o, CB_EPARSE, "t:2: ", "invalid UTF-8 (byte 0xE9 at column 6)");
    o.check_utf8 = 0;
    EXPECT("1|Caf\xE9\n", &o, "1:[1][Caf\xE9]\nEND");
}

static void invalid_utf8(void **state) {
    (void)state;
    EXPECT("caf\xC3\xA9,\xF0\x9F\x8E\xAC\n", NULL, "1:[caf\xC3\xA9][\xF0\x9F\x8E\xAC]\nEND");
    EXPECT_ERR("a\nb\n\"x\ny\"\nok\xFF\n", NULL, CB_EPARSE, "t:5: ", "invalid UTF-8");
    /* the bad byte on the third line of a multi-line record */
    EXPECT_ERR("h\n\"a\nb\n\xC3\"\n", NULL, CB_EPARSE, "t:4: ", "invalid UTF-8");
    EXPECT_ERR("\xC0\xAF\n", NULL, CB_EPARSE, "t:1: ", "invalid UTF-8"); /* overlong */
    EXPECT_ERR("\xED\xA0\x80\n", NULL, CB_EPARSE, "t:1: ", "invalid UTF-8"); /* surrogate */
    EXPECT_ERR("ab\xE2\x82\n", NULL, CB_EPARSE, "t:1: ", "column 3"); /* truncated */
}

static void overlong_lines(void **state) {
    (void)state;
    cb_csv_options o = opts(",", 1);
    o.max_line = 10;
    EXPECT("0123456789\n0123,56789\r\n", &o, "1:[0123456789]\n2:[0123][56789]\nEND");
    EXPECT("0123456789", &o, "1:[0123456789]\nEND");
    EXPECT_ERR("short\n0123456789A\n", &o, CB_EPARSE, "t:2: ", "longer than 10 bytes");
    EXPECT_ERR("short\n0123456789AB", &o, CB_EPARSE, "t:2: ", "longer than 10 bytes");
    EXPECT_ERR("\"0123\n56789\"\n", &o, CB_EPARSE, "t:1: ", "longer than 10 bytes");
    /* a huge line is rejected without reading it all */
    size_t big = (size_t)8 << 20;
    char *data = malloc(big);
    assert_non_null(data);
    memset(data, 'x', big);
    cb_csv *c;
    cb_error err;
    assert_int_equal(cb_csv_open_mem(&c, "big", data, big, NULL, &err), CB_OK);
    char **f;
    size_t *l, n;
    assert_int_equal(cb_csv_next(c, &f, &l, &n, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "big:1: record longer than 1048576 bytes"));
    assert_true(cb_csv_bytes(c) == 0);
    cb_csv_close(c);
    free(data);
}

static void unterminated_quote(void **state) {
    (void)state;
    EXPECT_ERR("a\nb,\"abc\n\ndef", NULL, CB_EPARSE, "t:2: ", "not closed");
    EXPECT_ERR("\"", NULL, CB_EPARSE, "t:1: ", "not closed");
    /* reported at the line where the quote opened */
    EXPECT_ERR("\"a\nb\",\"c\nd", NULL, CB_EPARSE, "t:2: ", "not closed");
    /* a quote left open swallows lines until the next quote: the error names where it began */
    EXPECT_ERR("h,t\n1,\"open\n2,ok\n3,\"Next, The\",x\n", NULL, CB_EPARSE, "t:4: ",
               "after a closing quote (the quoted field began at line 2");
}

static void files(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    /* missing file */
    char *missing = tu_path(dir, "nope.csv");
    cb_csv *c = NULL;
    cb_error err;
    assert_int_equal(cb_csv_open(&c, missing, NULL, &err), CB_EIO);
    assert_null(c);
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, "No such file"));
    /* a directory or a FIFO is refused at open (a FIFO would block for ever) */
    assert_int_equal(cb_csv_open(&c, dir, NULL, &err), CB_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "a directory, not a regular file"));
    char *fifo = tu_path(dir, "pipe.csv");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(cb_csv_open(&c, fifo, NULL, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "FIFO"));
    free(fifo);
    char **f;
    size_t *l, n;
    /* empty file */
    char *empty = tu_write(dir, "empty.csv", "");
    assert_int_equal(cb_csv_open(&c, empty, NULL, &err), CB_OK);
    assert_int_equal(cb_csv_next(c, &f, &l, &n, &err), 0);
    assert_int_equal(cb_csv_next(c, &f, &l, &n, &err), 0);
    cb_csv_close(c);
    /* a file bigger than one read block, with quoted records scattered through it */
    size_t n_rows = 120000, cap = n_rows * 48, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t i = 0; i < n_rows; i++) {
        if (i % 1000 == 7) len += (size_t)sprintf(text + len, "%zu,\"q,%zu\nx\",3.5\r\n", i, i);
        else len += (size_t)sprintf(text + len, "%zu,%zu,%.1f,%zu\n", i, i * 7 % 1000, (double)(i % 10) / 2, 978300000 + i);
    }
    char *big = tu_write(dir, "big.csv", text);
    assert_int_equal(cb_csv_open(&c, big, NULL, &err), CB_OK);
    size_t rows = 0, line = 1;
    int rc;
    while ((rc = cb_csv_next(c, &f, &l, &n, &err)) == 1) {
        assert_int_equal(cb_csv_line(c), line);
        size_t id = strtoul(f[0], NULL, 10);
        assert_int_equal(id, rows);
        if (rows % 1000 == 7) {
            assert_int_equal(n, 3);
            char want[64];
            snprintf(want, sizeof want, "q,%zu\nx", rows);
            assert_string_equal(f[1], want);
            line += 2;
        } else {
            assert_int_equal(n, 4);
            line += 1;
        }
        rows++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(rows, n_rows);
    assert_int_equal(cb_csv_bytes(c), len);
    cb_csv_close(c);
    /* and the in-memory reader agrees, record for record, with tiny blocks */
    cb_csv *m;
    assert_int_equal(cb_csv_open(&c, big, NULL, &err), CB_OK);
    assert_int_equal(cb_csv_open_mem(&m, big, text, len, NULL, &err), CB_OK);
    cb_csv_set_debug(m, 4093, 1);
    char **f2;
    size_t *l2, n2;
    while ((rc = cb_csv_next(c, &f, &l, &n, &err)) == 1) {
        assert_int_equal(cb_csv_next(m, &f2, &l2, &n2, &err), 1);
        assert_int_equal(n, n2);
        for (size_t i = 0; i < n; i++) assert_memory_equal(f[i], f2[i], l[i] + 1);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(cb_csv_next(m, &f2, &l2, &n2, &err), 0);
    cb_csv_close(c);
    cb_csv_close(m);
    free(text);
    free(big);
    free(empty);
    free(missing);
    tu_rmrf(dir);
    free(dir);
}

static void movielens_files(void **state) {
    (void)state;
    const char *root = tu_shared_data("ml-latest-small");
    if (!root) TU_SKIP("../shared/data/ml-latest-small not found");
    char path[4200];
    snprintf(path, sizeof path, "%s/movies.csv", root);
    cb_csv *c;
    cb_error err;
    char **f;
    size_t *l, n, rows = 0;
    int rc;
    assert_int_equal(cb_csv_open(&c, path, NULL, &err), CB_OK);
    while ((rc = cb_csv_next(c, &f, &l, &n, &err)) == 1) {
        if (n != 3) fail_msg("%s:%zu: %zu fields", path, cb_csv_line(c), n);
        rows++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(rows, 9743); /* header + 9742 movies */
    cb_csv_close(c);
}

static void movielens_latin1(void **state) {
    (void)state;
    const char *root = tu_shared_data("ml-100k");
    if (!root) TU_SKIP("../shared/data/ml-100k not found");
    char path[4200];
    snprintf(path, sizeof path, "%s/u.item", root);
    cb_csv *c;
    cb_error err;
    char **f;
    size_t *l, n, rows = 0;
    int rc;
    cb_csv_options o = opts("|", 0);
    o.latin1 = 1;
    assert_int_equal(cb_csv_open(&c, path, &o, &err), CB_OK);
    while ((rc = cb_csv_next(c, &f, &l, &n, &err)) == 1) {
        assert_int_equal(n, 24);
        rows++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(rows, 1682);
    cb_csv_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quoting),
        cmocka_unit_test(embedded_newlines_and_lines),
        cmocka_unit_test(line_ends),
        cmocka_unit_test(empty_lines),
        cmocka_unit_test(bom),
        cmocka_unit_test(delimiters),
        cmocka_unit_test(mixed_lengths),
        cmocka_unit_test(bad_options),
        cmocka_unit_test(latin1),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(overlong_lines),
        cmocka_unit_test(unterminated_quote),
        cmocka_unit_test(files),
        cmocka_unit_test(movielens_files),
        cmocka_unit_test(movielens_latin1),
    };
    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
