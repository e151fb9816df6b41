/* csv — a strict, streaming reader of delimited text files.
 *
 * The reader pulls the input into one buffer in blocks (read(2), or memcpy
 * for in-memory input) and hands out one record at a time as pointers into
 * that buffer, so a record costs no allocation and no copy. Three parsers
 * share the work, fastest first:
 *
 *  - batch_split() splits up to CSV_QUEUE plain records ahead (no quote, at
 *    most 64 bytes, inside the buffer), finding newline and delimiter bytes
 *    with SSE2 compares over a window starting at each record; cb_csv_next()
 *    then just hands them out. This is what a ratings file goes through.
 *  - fast_record() does the same for one quote-free record of any length,
 *    window by window, and handles the buffer's end and end of file.
 *  - the reference path is a plain byte-at-a-time RFC 4180 state machine. It
 *    takes every record that contains a quote, and every record when the
 *    debug switch asks for it; tests and the fuzzer check that all agree.
 *
 * The reference path works in two passes over a record: pass 1 only finds the
 * record's extent (and syntax errors) and can be resumed after more input
 * arrives, pass 2 splits and unquotes in place once the whole record is in
 * the buffer. Records longer than `max_line` are found without looking beyond
 * max_line + 2 bytes, so memory stays bounded and the error does not depend
 * on how the input happened to be split into blocks.
 *
 * Latin-1 input is expanded to UTF-8 as blocks arrive, so the parsers only
 * ever see UTF-8; `max_line` and cb_csv_bytes() then count converted bytes.
 * Line endings: "\n", or "\r\n" (a CR is dropped only right before the LF,
 * or before end of file, and only outside quotes). A quote in the middle of
 * an unquoted field is ordinary data (as in Python's csv module); anything but
 * a delimiter or line end after a closing quote is an error. */
#include "base/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SSE2__) && !defined(CB_CSV_NO_SIMD)
#include <emmintrin.h>
#define CSV_SIMD 1
#endif

#define CSV_BLOCK ((size_t)64 << 10) /* bytes per read: small enough to stay in L2 (5x cheaper copies than 1 MiB) */
#define CSV_PAD 128                 /* slack after the data: 64-byte windows, NUL */
#define CSV_MAX_DELIM 16
#define CSV_MAX_LINE_LIMIT ((size_t)1 << 40)

enum { ST_FIELD_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTED_QUOTE };
/* Results of the record parsers besides negative CB_E* codes. */
enum { REC_NEED_MORE = 0, REC_DONE = 1, REC_SLOW = 2 };

/* What a parser found for the record at c->pos. */
typedef struct csv_rec {
    size_t used;     /* bytes to consume, including the line terminator */
    size_t content;  /* bytes before the terminator (CR excluded) */
    size_t newlines; /* '\n' inside quoted fields */
    size_t n_fields;
} csv_rec;

/* A record split ahead of time by batch_split(). */
typedef struct csv_queued {
    size_t end;      /* buffer offset just after the record's terminator */
    size_t line;
    uint32_t first;  /* index of its first field in c->fields */
    uint32_t n_fields;
} csv_queued;

#define CSV_QUEUE 256 /* records per batch */

struct cb_csv {
    char *name;
    int fd;                 /* -1 for memory input */
    const char *mem;
    size_t mem_len, mem_pos;
    size_t block;           /* raw bytes per read */
    int reference;          /* 1: reference parser for every record */
    int started, eof;

    char *buf;              /* cap + CSV_PAD bytes */
    size_t cap, pos, end;   /* unconsumed data is buf[pos, end) */
    unsigned char *raw;     /* latin-1 staging block */
    size_t raw_cap;

    size_t line;            /* line number at buf[pos] */
    size_t rec_line;        /* line of the last record returned */
    size_t bytes;           /* bytes consumed */

    char delim[CSV_MAX_DELIM];
    size_t dlen;
    int quoting, latin1, check_utf8, skip_empty;
    size_t max_line, limit; /* limit = max_line + 2: bytes scanned for a terminator */

    char **fields;          /* reused across records */
    size_t *lens;
    size_t fcap;

    /* Records split ahead by batch_split(), handed out one per call. */
    csv_queued *queue;
    size_t q_head, q_len;
    size_t q_end_pos, q_end_line; /* where the batch stopped (after skipped empty lines) */
    int q_pending;

    /* Reference pass 1, resumable across refills. */
    int sp_active, sp_state;
    size_t sp_off, sp_newlines, sp_quote_line;

    cb_error fail;          /* sticky: once failed, every call repeats it */
};

static int csv_fail(cb_csv *c, cb_error *err, int code, const char *fmt, ...) CB_PRINTF(4, 5);

static int csv_fail(cb_csv *c, cb_error *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail.msg, sizeof c->fail.msg, fmt, ap);
    va_end(ap);
    c->fail.code = code;
    if (err) *err = c->fail;
    return code;
}

void cb_csv_options_default(cb_csv_options *o) {
    o->delim = ",";
    o->quoting = 1;
    o->latin1 = 0;
    o->check_utf8 = 1;
    o->max_line = (size_t)1 << 20;
    o->skip_empty_lines = 1;
}

/* Offset of the first byte of [s, s+n) that does not start a valid UTF-8
 * sequence (cb_utf8_decode's rule), or n; ASCII eight bytes at a time. */
static size_t utf8_first_invalid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) { i += 8; continue; }
        }
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t len = cb_utf8_decode((const char *)s + i, n - i, &cp);
        if (!len) return i;
        i += len;
    }
    return n;
}

/* ---- Opening and closing. */

static int csv_create(cb_csv **out, const char *name, const cb_csv_options *opt, cb_error *err) {
    *out = NULL;
    cb_csv_options def;
    if (!opt) {
        cb_csv_options_default(&def);
        opt = &def;
    }
    const char *delim = opt->delim ? opt->delim : ",";
    size_t dlen = strlen(delim);
    if (dlen == 0 || dlen >= CSV_MAX_DELIM)
        return cb_fail(err, CB_EINVAL, "%s: delimiter must be 1 to %d bytes", name, CSV_MAX_DELIM - 1);
    if (strpbrk(delim, "\r\n"))
        return cb_fail(err, CB_EINVAL, "%s: delimiter may not contain a line break", name);
    if (opt->quoting && strchr(delim, '"'))
        return cb_fail(err, CB_EINVAL, "%s: delimiter may not contain '\"' when quoting is on", name);
    if (!cb_utf8_valid(delim, dlen))
        return cb_fail(err, CB_EINVAL, "%s: delimiter is not valid UTF-8", name);
    if (opt->max_line == 0 || opt->max_line > CSV_MAX_LINE_LIMIT)
        return cb_fail(err, CB_EINVAL, "%s: max_line must be between 1 and 2^40", name);

    cb_csv *c = cb_calloc(1, sizeof *c, err);
    if (!c) return CB_ENOMEM;
    c->fd = -1;
    c->block = CSV_BLOCK;
    memcpy(c->delim, delim, dlen + 1);
    c->dlen = dlen;
    c->quoting = opt->quoting != 0;
    c->latin1 = opt->latin1 != 0;
    c->check_utf8 = opt->check_utf8 != 0;
    c->skip_empty = opt->skip_empty_lines != 0;
    c->max_line = opt->max_line;
    c->limit = opt->max_line + 2;
    c->line = 1;
    c->name = cb_strdup(name, err);
    c->fcap = 128; /* > 64: one 64-byte window never needs to grow the arrays */
    c->fields = cb_calloc(c->fcap, sizeof *c->fields, err);
    c->lens = cb_calloc(c->fcap, sizeof *c->lens, err);
    c->queue = cb_calloc(CSV_QUEUE, sizeof *c->queue, err);
    if (!c->name || !c->fields || !c->lens || !c->queue) {
        cb_csv_close(c);
        return CB_ENOMEM;
    }
    *out = c;
    return CB_OK;
}

int cb_csv_open(cb_csv **out, const char *path, const cb_csv_options *opt, cb_error *err) {
    if (!out || !path) return cb_fail(err, CB_EINVAL, "cb_csv_open: NULL argument");
    int rc = csv_create(out, path, opt, err);
    if (rc) return rc;
    int fd;
    if ((rc = cb_open_input(&fd, path, NULL, err))) {
        cb_csv_close(*out);
        *out = NULL;
        return rc;
    }
    (*out)->fd = fd;
    return CB_OK;
}

int cb_csv_open_mem(cb_csv **out, const char *name, const char *data, size_t len,
                    const cb_csv_options *opt, cb_error *err) {
    if (!out || (!data && len)) return cb_fail(err, CB_EINVAL, "cb_csv_open_mem: NULL argument");
    int rc = csv_create(out, name ? name : "<memory>", opt, err);
    if (rc) return rc;
    (*out)->mem = data;
    (*out)->mem_len = len;
    return CB_OK;
}

void cb_csv_close(cb_csv *c) {
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c->name);
    free(c->buf);
    free(c->raw);
    free(c->fields);
    free(c->lens);
    free(c->queue);
    free(c);
}

void cb_csv_set_debug(cb_csv *c, size_t block_size, int reference) {
    if (!c || c->started) return;
    c->block = block_size ? block_size : 1;
    c->reference = reference != 0;
}

int cb_csv_seek(cb_csv *c, size_t offset, size_t line, cb_error *err) {
    if (!c || c->started || line == 0)
        return cb_fail(err, CB_EINVAL, "cb_csv_seek: bad argument, or the reader has started");
    if (c->fd >= 0) {
        if (lseek(c->fd, (off_t)offset, SEEK_SET) < 0) {
            char ebuf[128];
            return csv_fail(c, err, CB_EIO, "%s:%zu: cannot seek: %s", c->name, line,
                            strerror_r(errno, ebuf, sizeof ebuf));
        }
    } else {
        if (offset > c->mem_len) return cb_fail(err, CB_EINVAL, "cb_csv_seek: offset past the end");
        c->mem_pos = offset;
    }
    c->started = 1;
    c->line = line;
    c->bytes = offset;
    return CB_OK;
}

size_t cb_csv_line(const cb_csv *c) { return c ? c->rec_line : 0; }
const char *cb_csv_name(const cb_csv *c) { return c ? c->name : NULL; }
size_t cb_csv_bytes(const cb_csv *c) { return c ? c->bytes : 0; }

/* ---- Input. */

/* Expand latin-1 bytes to UTF-8; `dst` has room for 2*n bytes. Returns bytes written. */
static size_t latin1_to_utf8(char *dst, const unsigned char *src, size_t n) {
    char *d = dst;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, src + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                memcpy(d, &w, 8);
                d += 8;
                i += 8;
                continue;
            }
        }
        unsigned char b = src[i++];
        if (b < 0x80) *d++ = (char)b;
        else {
            *d++ = (char)(0xC0 | (b >> 6));
            *d++ = (char)(0x80 | (b & 0x3F));
        }
    }
    return (size_t)(d - dst);
}

/* Move unconsumed data to the front and append the next block. Sets c->eof
 * when the source is exhausted. The partial record kept is under limit +
 * delimiter bytes, so the buffer stays under about 2 * (max_line + block). */
static int refill(cb_csv *c, cb_error *err) {
    size_t keep = c->end - c->pos;
    if (c->pos) {
        memmove(c->buf, c->buf + c->pos, keep);
        c->pos = 0;
        c->end = keep;
    }
    /* Read at least as much as we keep so that a long record is rescanned a
     * bounded number of times. */
    size_t want = keep > c->block ? keep : c->block;
    if (c->fd < 0 && want > c->mem_len - c->mem_pos) /* small inputs get small buffers */
        want = c->mem_len - c->mem_pos ? c->mem_len - c->mem_pos : 1;
    size_t room = c->latin1 ? 2 * want : want;
    if (c->cap - c->end < room) {
        size_t ncap = c->end + room;
        if (ncap < 2 * c->cap && c->cap) ncap = 2 * c->cap;
        char *nb = realloc(c->buf, ncap + CSV_PAD);
        if (!nb) return csv_fail(c, err, CB_ENOMEM, "%s: out of memory (%zu bytes)", c->name, ncap);
        c->buf = nb;
        c->cap = ncap;
    }
    char *dst = c->buf + c->end;
    unsigned char *rawdst = (unsigned char *)dst;
    if (c->latin1) {
        if (c->raw_cap < want) {
            unsigned char *nr = realloc(c->raw, want);
            if (!nr) return csv_fail(c, err, CB_ENOMEM, "%s: out of memory (%zu bytes)", c->name, want);
            c->raw = nr;
            c->raw_cap = want;
        }
        rawdst = c->raw;
    }
    size_t got;
    if (c->fd >= 0) {
        ssize_t n;
        do n = read(c->fd, rawdst, want);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            char ebuf[128];
            return csv_fail(c, err, CB_EIO, "%s:%zu: read error: %s", c->name, c->line,
                            strerror_r(errno, ebuf, sizeof ebuf));
        }
        got = (size_t)n;
        if (n == 0) c->eof = 1;
    } else {
        got = c->mem_len - c->mem_pos;
        if (got > want) got = want;
        if (got) memcpy(rawdst, c->mem + c->mem_pos, got);
        c->mem_pos += got;
        if (c->mem_pos == c->mem_len) c->eof = 1;
    }
    if (c->latin1) got = latin1_to_utf8(dst, c->raw, got);
    c->end += got;
    memset(c->buf + c->end, 0, 64); /* defined bytes for the vector loads past the end */
    return CB_OK;
}

/* Double the reusable field arrays (rare: records with many fields). */
static int __attribute__((noinline)) grow_fields(cb_csv *c, cb_error *err) {
    size_t ncap = c->fcap * 2;
    char **f = cb_realloc_array(c->fields, ncap, sizeof *f, err);
    if (!f) return csv_fail(c, err, CB_ENOMEM, "%s: out of memory", c->name);
    c->fields = f;
    size_t *l = cb_realloc_array(c->lens, ncap, sizeof *l, err);
    if (!l) return csv_fail(c, err, CB_ENOMEM, "%s: out of memory", c->name);
    c->lens = l;
    c->fcap = ncap;
    return CB_OK;
}

static inline int push_field(cb_csv *c, size_t n, char *start, size_t len, cb_error *err) {
    if (n == c->fcap && grow_fields(c, err)) return c->fail.code;
    c->fields[n] = start;
    c->lens[n] = len;
    return CB_OK;
}

static int err_overlong(cb_csv *c, cb_error *err) {
    return csv_fail(c, err, CB_EPARSE, "%s:%zu: record longer than %zu bytes (max_line)", c->name,
                    c->line, c->max_line);
}

/* Checks shared by both parsers once a record's extent is known;
 * `maybe_utf8` is 0 when the caller knows the record is pure ASCII. */
static int check_record(cb_csv *c, const char *p, size_t content, int maybe_utf8, cb_error *err) {
    if (content > c->max_line) return err_overlong(c, err);
    if (maybe_utf8 && c->check_utf8 && !c->latin1) {
        size_t bad = utf8_first_invalid((const unsigned char *)p, content);
        if (bad < content) {
            size_t line = c->line, col_start = 0;
            for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + bad - q))) != NULL; q++) {
                line++;
                col_start = (size_t)(q - p) + 1;
            }
            return csv_fail(c, err, CB_EPARSE, "%s:%zu: invalid UTF-8 (byte 0x%02X at column %zu)",
                            c->name, line, (unsigned char)p[bad], bad - col_start + 1);
        }
    }
    return CB_OK;
}

/* ---- Fast path: quote-free records. */

/* Bit masks of '\n', the delimiter's first byte, '"' (0 unless quoting) and
 * non-ASCII bytes among the 32 bytes at s (bit k is byte k). */
static inline void scan32(const char *s, char d0, int quoting, uint32_t *mnl, uint32_t *md,
                          uint32_t *mq, uint32_t *mh) {
#ifdef CSV_SIMD
    const __m128i vnl = _mm_set1_epi8('\n'), vd = _mm_set1_epi8(d0), vq = _mm_set1_epi8('"');
    __m128i v0 = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i v1 = _mm_loadu_si128((const __m128i *)(const void *)(s + 16));
#define CSV_MASK(v) ((uint32_t)_mm_movemask_epi8(v))
    *mnl = CSV_MASK(_mm_cmpeq_epi8(v0, vnl)) | CSV_MASK(_mm_cmpeq_epi8(v1, vnl)) << 16;
    *md = CSV_MASK(_mm_cmpeq_epi8(v0, vd)) | CSV_MASK(_mm_cmpeq_epi8(v1, vd)) << 16;
    *mq = quoting ? CSV_MASK(_mm_cmpeq_epi8(v0, vq)) | CSV_MASK(_mm_cmpeq_epi8(v1, vq)) << 16 : 0;
    *mh = CSV_MASK(v0) | CSV_MASK(v1) << 16;
#undef CSV_MASK
#else
    uint32_t a = 0, b = 0, q = 0, h = 0;
    for (int i = 0; i < 32; i++) {
        a |= (uint32_t)(s[i] == '\n') << i;
        b |= (uint32_t)(s[i] == d0) << i;
        q |= (uint32_t)(quoting && s[i] == '"') << i;
        h |= (uint32_t)((unsigned char)s[i] >= 0x80) << i;
    }
    *mnl = a, *md = b, *mq = q, *mh = h;
#endif
}

/* The same for the 64 bytes at s. A whole window at once keeps the
 * per-record loops short and their trip counts regular. */
static inline void scan64(const char *s, char d0, int quoting, uint64_t *mnl, uint64_t *md,
                          uint64_t *mq, uint64_t *mh) {
    uint32_t a0, b0, q0, h0, a1, b1, q1, h1;
    scan32(s, d0, quoting, &a0, &b0, &q0, &h0);
    scan32(s + 32, d0, quoting, &a1, &b1, &q1, &h1);
    *mnl = a0 | (uint64_t)a1 << 32;
    *md = b0 | (uint64_t)b1 << 32;
    *mq = q0 | (uint64_t)q1 << 32;
    *mh = h0 | (uint64_t)h1 << 32;
}

/* Finish a fast-path record whose terminator is at `term` (== avail at end
 * of file): checks, last field, NUL terminators if not yet written. */
static inline int fast_finish(cb_csv *c, char *p, size_t term, size_t used, size_t nf, size_t fstart,
                              uint64_t high, int nul_written, csv_rec *rec, cb_error *err) {
    size_t content = term - (term > 0 && p[term - 1] == '\r');
    if (content > c->max_line || high) {
        int rc = check_record(c, p, content, high != 0, err);
        if (rc) return rc;
    }
    if (nf == c->fcap && grow_fields(c, err)) return c->fail.code;
    c->fields[nf] = p + fstart;
    c->lens[nf++] = content - fstart;
    if (nul_written) p[content] = '\0';
    else
        for (size_t k = 0; k < nf; k++) c->fields[k][c->lens[k]] = '\0';
    rec->used = used;
    rec->content = content;
    rec->newlines = 0;
    rec->n_fields = nf;
    return REC_DONE;
}

static int fast_record(cb_csv *c, csv_rec *rec, cb_error *err) {
    char *p = c->buf + c->pos;
    const size_t avail = c->end - c->pos;
    const size_t lim = avail < c->limit ? avail : c->limit;
    const size_t dlen = c->dlen;
    const char d0 = c->delim[0];
    const int quoting = c->quoting;
    /* Locals, not c->...: stores through the arrays could alias c's fields. */
    char **fields = c->fields;
    size_t *lens = c->lens, fcap = c->fcap;
    size_t nf = 0, fstart = 0, next_delim = 0;
    uint64_t mnl, md, mq, mh;

    /* Common case: a single-byte delimiter and the whole record in the first
     * 64-byte window. The record is known complete before any field is
     * split, so NULs go in at once. */
    scan64(p, d0, quoting, &mnl, &md, &mq, &mh);
    if (lim < 64) {
        uint64_t keep = ((uint64_t)1 << lim) - 1;
        mnl &= keep, md &= keep, mq &= keep, mh &= keep;
    }
    if (mnl && dlen == 1) {
        uint64_t before = (mnl & (0 - mnl)) - 1;
        if (mq & before) return REC_SLOW;
        md &= before;
        size_t term = (size_t)__builtin_ctzll(mnl);
        while (md) { /* at most 63 fields: fcap >= 128 */
            size_t j = (size_t)__builtin_ctzll(md);
            md &= md - 1;
            fields[nf] = p + fstart;
            lens[nf++] = j - fstart;
            p[j] = '\0';
            fstart = j + 1;
        }
        return fast_finish(c, p, term, term + 1, nf, fstart, mh & before, 1, rec, err);
    }

    /* General case: windows until the terminator, NULs written at the end
     * (the record may turn out incomplete or quoted, and be parsed again). */
    size_t term = SIZE_MAX;
    uint64_t high = 0;
    for (size_t i = 0; i < lim; i += 64) {
        if (i) {
            scan64(p + i, d0, quoting, &mnl, &md, &mq, &mh);
            if (lim - i < 64) {
                uint64_t keep = ((uint64_t)1 << (lim - i)) - 1;
                mnl &= keep, md &= keep, mq &= keep, mh &= keep;
            }
        }
        if (mnl) {
            uint64_t before = (mnl & (0 - mnl)) - 1;
            md &= before, mq &= before, mh &= before;
            term = i + (size_t)__builtin_ctzll(mnl);
        }
        if (mq) return REC_SLOW;
        high |= mh;
        while (md) {
            size_t j = i + (size_t)__builtin_ctzll(md);
            md &= md - 1;
            if (dlen > 1 && (j < next_delim || j + dlen > avail || memcmp(p + j, c->delim, dlen) != 0))
                continue;
            if (nf == fcap) {
                if (grow_fields(c, err)) return c->fail.code;
                fields = c->fields, lens = c->lens, fcap = c->fcap;
            }
            fields[nf] = p + fstart;
            lens[nf++] = j - fstart;
            fstart = next_delim = j + dlen;
        }
        if (term != SIZE_MAX) break;
    }
    if (term != SIZE_MAX) return fast_finish(c, p, term, term + 1, nf, fstart, high, 0, rec, err);
    if (lim >= c->limit) return err_overlong(c, err);
    if (!c->eof) return REC_NEED_MORE;
    return fast_finish(c, p, avail, avail, nf, fstart, high, 0, rec, err);
}

/* ---- Batch splitting: the fast path for runs of plain records. */

/* Split as many complete, quote-free records as fit in the queue, starting
 * at c->pos. Each record is scanned in one 64-byte window from its first
 * byte, so the loop over its delimiters has the same trip count record after
 * record (branch predictors like that far more than they dislike the
 * overlapping loads). It stops, leaving the rest to the per-record parsers
 * (which also report any error), at the first record that contains a quote,
 * does not end within 64 bytes or inside the buffer, is longer than
 * max_line, or holds invalid UTF-8 (when checking). Returns the number of
 * records queued; it may also have skipped empty lines (c->q_pending). */
static size_t batch_split(cb_csv *c) {
    char *buf = c->buf;
    const size_t end = c->end, dlen = c->dlen, max_line = c->max_line;
    const char d0 = c->delim[0];
    const int quoting = c->quoting, want_utf8 = c->check_utf8 && !c->latin1, skip_empty = c->skip_empty;
    char **fields = c->fields;
    size_t *lens = c->lens;
    csv_queued *queue = c->queue;
    size_t n_queued = 0, nf = 0, r = c->pos, line = c->line;

    while (n_queued < CSV_QUEUE && r < end) {
        char *p = buf + r;
        const size_t avail = end - r;
        /* Most records (ratings) fit in 32 bytes: look at 64 only when needed. */
        uint64_t mnl, md, mq, mh;
        {
            uint32_t a, b, q, h;
            scan32(p, d0, quoting, &a, &b, &q, &h);
            mnl = a, md = b, mq = q, mh = h;
        }
        if (avail < 32) mnl &= ((uint64_t)1 << avail) - 1;
        if (!mnl && avail > 32) {
            uint32_t a, b, q, h;
            scan32(p + 32, d0, quoting, &a, &b, &q, &h);
            mnl = (uint64_t)a << 32, md |= (uint64_t)b << 32, mq |= (uint64_t)q << 32, mh |= (uint64_t)h << 32;
            if (avail < 64) mnl &= ((uint64_t)1 << avail) - 1;
        }
        if (!mnl) break;
        const uint64_t before = (mnl & (0 - mnl)) - 1;
        if (mq & before) break;
        const size_t term = (size_t)__builtin_ctzll(mnl);
        const size_t content = term - (term > 0 && p[term - 1] == '\r');
        if (content > max_line) break;
        if ((mh & before) && want_utf8 && utf8_first_invalid((const unsigned char *)p, content) < content)
            break;
        if (content == 0 && skip_empty) {
            r += term + 1;
            line++;
            continue;
        }
        if (nf + 64 >= c->fcap) { /* a window holds at most 63 delimiters */
            if (grow_fields(c, NULL)) break;
            fields = c->fields, lens = c->lens;
        }
        const size_t first = nf;
        size_t fstart = 0;
        md &= before;
        if (dlen == 1) {
            while (md) {
                size_t j = (size_t)__builtin_ctzll(md);
                md &= md - 1;
                fields[nf] = p + fstart;
                lens[nf++] = j - fstart;
                p[j] = '\0';
                fstart = j + 1;
            }
        } else {
            size_t next_delim = 0;
            /* "::" (MovieLens .dat): a candidate needs its next byte in the mask too */
            const int doubled = dlen == 2 && c->delim[1] == d0;
            if (doubled) md &= md >> 1;
            while (md) {
                size_t j = (size_t)__builtin_ctzll(md);
                md &= md - 1;
                /* the record is complete and a delimiter has no '\n': j + dlen <= term */
                if (j < next_delim || (!doubled && memcmp(p + j, c->delim, dlen) != 0)) continue;
                fields[nf] = p + fstart;
                lens[nf++] = j - fstart;
                p[j] = '\0'; /* later candidates start at or after j + dlen */
                fstart = next_delim = j + dlen;
            }
        }
        fields[nf] = p + fstart;
        lens[nf++] = content - fstart;
        p[content] = '\0';
        r += term + 1;
        queue[n_queued].end = r;
        queue[n_queued].line = line;
        queue[n_queued].first = (uint32_t)first;
        queue[n_queued].n_fields = (uint32_t)(nf - first);
        n_queued++;
        line++;
    }
    c->q_head = 0;
    c->q_len = n_queued;
    c->q_end_pos = r;
    c->q_end_line = line;
    c->q_pending = r != c->pos;
    return n_queued;
}

/* ---- Reference path: a byte-at-a-time RFC 4180 state machine. */

/* Pass 1: find where the record at c->pos ends, resuming from the saved state. */
static int slow_extent(cb_csv *c, csv_rec *rec, cb_error *err) {
    const char *p = c->buf + c->pos;
    size_t avail = c->end - c->pos;
    size_t lim = avail < c->limit ? avail : c->limit;
    size_t r = c->sp_off, newlines = c->sp_newlines, term = SIZE_MAX, cr = 0;
    int st = c->sp_state;
    while (r < lim) {
        unsigned char ch = (unsigned char)p[r];
        if (st == ST_QUOTED) {
            if (ch == '"') st = ST_QUOTED_QUOTE;
            else if (ch == '\n') newlines++;
            r++;
            continue;
        }
        if (ch == '\n') { term = r; break; }
        if (ch == '\r') {
            if (r + 1 == avail) {
                if (!c->eof) goto need_more;
                term = r, cr = 1;
                break;
            }
            if (p[r + 1] == '\n') { term = r, cr = 1; break; }
        } else if (ch == (unsigned char)c->delim[0]) {
            if (r + c->dlen > avail && !c->eof) goto need_more;
            if (r + c->dlen <= avail && memcmp(p + r, c->delim, c->dlen) == 0) {
                st = ST_FIELD_START;
                r += c->dlen;
                continue;
            }
        } else if (ch == '"' && c->quoting && st != ST_UNQUOTED) {
            if (st == ST_FIELD_START) c->sp_quote_line = newlines;
            st = ST_QUOTED; /* opening quote, or the second of a doubled quote */
            r++;
            continue;
        }
        if (st == ST_QUOTED_QUOTE) {
            char opened[96] = ""; /* a field over several lines: most often a quote left open where it began */
            if (c->sp_quote_line != newlines)
                snprintf(opened, sizeof opened, " (the quoted field began at line %zu: a quote not closed there?)",
                         c->line + c->sp_quote_line);
            if (ch >= 0x20 && ch < 0x7F)
                return csv_fail(c, err, CB_EPARSE, "%s:%zu: unexpected '%c' after a closing quote%s",
                                c->name, c->line + newlines, ch, opened);
            return csv_fail(c, err, CB_EPARSE, "%s:%zu: unexpected byte 0x%02X after a closing quote%s",
                            c->name, c->line + newlines, ch, opened);
        }
        st = ST_UNQUOTED;
        r++;
    }
    if (term == SIZE_MAX) {
        if (r >= c->limit) return err_overlong(c, err);
        if (!c->eof) goto need_more;
        if (st == ST_QUOTED)
            return csv_fail(c, err, CB_EPARSE, "%s:%zu: quoted field not closed before end of file",
                            c->name, c->line + c->sp_quote_line);
        term = avail;
    }
    rec->content = term;
    rec->used = term + cr < avail ? term + cr + 1 : avail;
    rec->newlines = newlines;
    return REC_DONE;
need_more:
    c->sp_off = r;
    c->sp_state = st;
    c->sp_newlines = newlines;
    return REC_NEED_MORE;
}

/* Pass 2: split the complete, checked record [p, p+content) and unquote in place. */
static int slow_split(cb_csv *c, csv_rec *rec, cb_error *err) {
    char *p = c->buf + c->pos;
    size_t content = rec->content, r = 0, w = 0, fstart = 0, nf = 0;
    int st = ST_FIELD_START;
    while (r < content) {
        char ch = p[r];
        if (st == ST_QUOTED) {
            if (ch == '"') st = ST_QUOTED_QUOTE;
            else p[w++] = ch;
            r++;
            continue;
        }
        if (ch == c->delim[0] && r + c->dlen <= content && memcmp(p + r, c->delim, c->dlen) == 0) {
            if (push_field(c, nf++, p + fstart, w - fstart, err)) return c->fail.code;
            p[w++] = '\0'; /* w <= r: the delimiter's first byte or earlier */
            fstart = w;
            r += c->dlen;
            st = ST_FIELD_START;
            continue;
        }
        if (ch == '"' && c->quoting && st != ST_UNQUOTED) {
            if (st == ST_QUOTED_QUOTE) p[w++] = '"';
            st = ST_QUOTED;
            r++;
            continue;
        }
        st = ST_UNQUOTED;
        p[w++] = ch;
        r++;
    }
    if (push_field(c, nf++, p + fstart, w - fstart, err)) return c->fail.code;
    p[w] = '\0';
    rec->n_fields = nf;
    return REC_DONE;
}

static int slow_record(cb_csv *c, csv_rec *rec, cb_error *err) {
    if (!c->sp_active) {
        c->sp_active = 1;
        c->sp_off = 0;
        c->sp_state = ST_FIELD_START;
        c->sp_newlines = 0;
        c->sp_quote_line = 0;
    }
    int rc = slow_extent(c, rec, err);
    if (rc != REC_DONE) return rc;
    c->sp_active = 0;
    rc = check_record(c, c->buf + c->pos, rec->content, 1, err);
    if (rc) return rc;
    if (rec->content == 0 && c->skip_empty) return REC_DONE; /* caller skips it */
    return slow_split(c, rec, err);
}

/* ---- Records. */

static int start(cb_csv *c, cb_error *err) {
    static const char bom_utf8[] = "\xEF\xBB\xBF";
    static const char bom_latin1[] = "\xC3\xAF\xC2\xBB\xC2\xBF"; /* the same bytes, converted */
    const char *bom = c->latin1 ? bom_latin1 : bom_utf8;
    size_t bom_len = strlen(bom);
    c->started = 1;
    while (c->end - c->pos < bom_len && !c->eof) {
        int rc = refill(c, err);
        if (rc) return rc;
    }
    if (c->end - c->pos >= bom_len && memcmp(c->buf + c->pos, bom, bom_len) == 0) {
        c->pos += bom_len;
        c->bytes += bom_len;
    }
    return CB_OK;
}

static inline void pop_queued(cb_csv *c, char ***fields, size_t **lens, size_t *n_fields) {
    const csv_queued *q = &c->queue[c->q_head++];
    c->bytes += q->end - c->pos;
    c->pos = q->end;
    c->rec_line = q->line;
    c->line = q->line + 1;
    *fields = c->fields + q->first;
    *lens = c->lens + q->first;
    *n_fields = q->n_fields;
}

static int __attribute__((noinline)) next_record(cb_csv *c, char ***fields, size_t **lens, size_t *n_fields,
                                                 cb_error *err);

int cb_csv_next(cb_csv *c, char ***fields, size_t **lens, size_t *n_fields, cb_error *err) {
    /* Hot path kept small so the call stays cheap: a record split ahead. */
    if (c && c->q_head < c->q_len) {
        pop_queued(c, fields, lens, n_fields);
        return 1;
    }
    return next_record(c, fields, lens, n_fields, err);
}

static int next_record(cb_csv *c, char ***fields, size_t **lens, size_t *n_fields, cb_error *err) {
    if (!c) return cb_fail(err, CB_EINVAL, "cb_csv_next: NULL reader");
    if (c->fail.code) {
        if (err) *err = c->fail;
        return c->fail.code;
    }
    if (!c->started) {
        int rc = start(c, err);
        if (rc) return rc;
    }
    for (;;) {
        if (c->q_head < c->q_len) {
            pop_queued(c, fields, lens, n_fields);
            return 1;
        }
        if (c->q_pending) { /* empty lines skipped after the last queued record */
            c->q_pending = 0;
            c->bytes += c->q_end_pos - c->pos;
            c->pos = c->q_end_pos;
            c->line = c->q_end_line;
        }
        if (c->pos == c->end) {
            if (c->eof) return 0;
            int rc = refill(c, err);
            if (rc) return rc;
            continue;
        }
        if (!(c->reference | c->sp_active)) {
            batch_split(c);
            if (c->q_len || c->q_pending) continue;
        }
        csv_rec rec;
        int rc = (c->reference | c->sp_active) ? slow_record(c, &rec, err) : fast_record(c, &rec, err);
        if (rc == REC_SLOW) rc = slow_record(c, &rec, err);
        if (rc == REC_NEED_MORE) {
            rc = refill(c, err);
            if (rc) return rc;
            continue;
        }
        if (rc < 0) {
            c->rec_line = c->line;
            return rc;
        }
        c->rec_line = c->line;
        c->line += 1 + rec.newlines;
        c->pos += rec.used;
        c->bytes += rec.used;
        if (rec.content == 0 && c->skip_empty) continue;
        *fields = c->fields;
        *lens = c->lens;
        *n_fields = rec.n_fields;
        return 1;
    }
}
