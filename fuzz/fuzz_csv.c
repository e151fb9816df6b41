/* fuzz_csv — libFuzzer target for the csv reader.
 *
 * The first two input bytes choose the options (delimiter, quoting, latin-1,
 * empty-line skipping, max_line, UTF-8 checking, a small block size); the
 * rest is the file. The input is parsed four ways — vectorised fast path and
 * byte-at-a-time reference parser, each with the default 1 MiB blocks and
 * with tiny blocks that split records anywhere — and all four must produce
 * the same records, line numbers and error message. Each record is also
 * checked against the reader's contract (NUL-terminated fields, lengths
 * within max_line, valid UTF-8 when checking is on or after latin-1
 * conversion, increasing line numbers). Any violation aborts.
 *
 * Build and run: scripts/fuzz.sh [seconds]. */
#include "base/csv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const delims[8] = {",", "::", "|", "\t", ";;;", "\xC2\xA7", ",", "ab"};
static const size_t max_lines[4] = {(size_t)1 << 20, 8, 64, 3};

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_csv: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                             \
        }                                                                        \
    } while (0)

typedef struct outcome {
    uint64_t hash;   /* over records, fields and line numbers */
    size_t records;
    int rc;          /* 0 or the CB_E* code that ended the read */
    cb_error err;
} outcome;

static void run(const char *data, size_t size, const cb_csv_options *o, size_t block, int reference,
                outcome *out) {
    cb_csv *c;
    cb_error err;
    int rc = cb_csv_open_mem(&c, "fuzz", data, size, o, &err);
    CHECK(rc == CB_OK);
    if (block || reference) cb_csv_set_debug(c, block ? block : ((size_t)1 << 20), reference);
    uint64_t h = CB_FNV1A64_INIT;
    size_t records = 0, last_line = 0;
    char **f;
    size_t *l, n;
    while ((rc = cb_csv_next(c, &f, &l, &n, &err)) == 1) {
        size_t line = cb_csv_line(c);
        CHECK(n >= 1);
        CHECK(line > last_line);
        last_line = line;
        h = cb_fnv1a64(&line, sizeof line, h);
        h = cb_fnv1a64(&n, sizeof n, h);
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            CHECK(f[i][l[i]] == '\0');
            CHECK(l[i] <= o->max_line);
            if (o->latin1 || o->check_utf8) CHECK(cb_utf8_valid(f[i], l[i]));
            if (!o->quoting) CHECK(strstr(f[i], o->delim) == NULL || memchr(f[i], 0, l[i]));
            h = cb_fnv1a64(&l[i], sizeof l[i], h);
            h = cb_fnv1a64(f[i], l[i], h);
            total += l[i];
        }
        CHECK(total <= o->max_line);
        CHECK(o->latin1 || cb_csv_bytes(c) <= size);
        records++;
    }
    CHECK(rc <= 0);
    if (rc < 0) {
        CHECK(rc == CB_EPARSE);
        CHECK(strncmp(err.msg, "fuzz:", 5) == 0);
        /* errors are sticky */
        cb_error err2;
        CHECK(cb_csv_next(c, &f, &l, &n, &err2) == rc);
        CHECK(strcmp(err.msg, err2.msg) == 0);
    } else {
        CHECK(cb_csv_next(c, &f, &l, &n, &err) == 0);
        if (!o->latin1) CHECK(cb_csv_bytes(c) == size);
        err.msg[0] = '\0';
    }
    cb_csv_close(c);
    out->hash = h;
    out->records = records;
    out->rc = rc;
    out->err = err;
}

static void same(const outcome *a, const outcome *b) {
    if (a->hash == b->hash && a->records == b->records && a->rc == b->rc &&
        strcmp(a->err.msg, b->err.msg) == 0)
        return;
    fprintf(stderr, "fuzz_csv: modes disagree: %zu records rc %d \"%s\" vs %zu records rc %d \"%s\"\n",
            a->records, a->rc, a->err.msg, b->records, b->rc, b->err.msg);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    uint8_t sel = data[0], sel2 = data[1];
    cb_csv_options o;
    cb_csv_options_default(&o);
    o.delim = delims[sel & 7];
    o.quoting = (sel >> 3) & 1;
    o.latin1 = (sel >> 4) & 1;
    o.skip_empty_lines = (sel >> 5) & 1;
    o.max_line = max_lines[sel >> 6];
    o.check_utf8 = !(sel2 & 1);
    size_t small_block = 1 + ((sel2 >> 1) & 15);
    const char *text = (const char *)data + 2;
    size -= 2;

    outcome fast, ref, fast_small, ref_small;
    run(text, size, &o, 0, 0, &fast);
    run(text, size, &o, 0, 1, &ref);
    run(text, size, &o, small_block, 0, &fast_small);
    run(text, size, &o, small_block, 1, &ref_small);
    same(&fast, &ref);
    same(&fast, &fast_small);
    same(&fast, &ref_small);
    return 0;
}
