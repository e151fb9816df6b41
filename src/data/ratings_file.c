/* ratings_file — the ratings-file reader every layout goes through, so
 * strictness, error messages and speed are the same everywhere.
 *
 * Two paths share the work. The fast path (below) reads plain numeric lines
 * straight from a memory map on every core; the general path, built on the
 * csv reader, takes over at the first line the fast path does not take and
 * holds every check and message. Both append into one pre-sized array (no
 * per-row allocation) and resolve numeric ids through a direct array; the
 * general path parses numbers with a fast path that falls back to strtod only
 * for unusual spellings, and remembers the previous row's user because rating
 * files are grouped by user. tests/test_ratings_fast.c checks that the two
 * paths give identical datasets and messages. */
#include "data/loader.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static int ensure_ratings(cb_dataset *ds, size_t need, cb_error *err) {
    if (need <= ds->cap_ratings) return CB_OK;
    size_t cap = ds->cap_ratings ? ds->cap_ratings + ds->cap_ratings / 2 : 1024;
    if (cap < need) cap = need;
    cb_rating *p = cb_realloc_array(ds->ratings, cap, sizeof *p, err);
    if (!p) return CB_ENOMEM;
    ds->ratings = p;
    ds->cap_ratings = cap;
    return CB_OK;
}

/* Numeric ids ("1", "4993", ...) are the common case; they are resolved by a
 * direct array indexed by value, which takes one cache access where the
 * vocabulary's hash table takes several dependent ones (slot, entry, string).
 * The array is an accelerator only: the vocabulary stays the truth, and the
 * array is bounded in size relative to the number of ids. */
typedef struct idmap {
    uint32_t *slot;  /* [cap]: index + 1, 0 = not in the map */
    size_t cap;
    bool complete;   /* every canonical numeric id of the vocabulary is in the map */
} idmap;

static inline bool same_bytes(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* "0" or digits without a leading zero, at most 9 of them. */
static inline bool canon_num(const char *s, size_t n, uint32_t *val) {
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    *val = v;
    return true;
}

/* Room for value `val` if the array stays within 64 entries per id (+ slack). */
static bool idmap_fit(idmap *m, uint32_t val, uint32_t n_ids) {
    if (val < m->cap) return true;
    size_t cap = m->cap ? m->cap : 1024;
    while (cap <= val) cap *= 2;
    if (cap > 64 * ((size_t)n_ids + 4096)) return false;
    uint32_t *p = realloc(m->slot, cap * sizeof *p);
    if (!p) return false; /* only an accelerator: fall back to the vocabulary */
    memset(p + m->cap, 0, (cap - m->cap) * sizeof *p);
    m->slot = p;
    m->cap = cap;
    return true;
}

static void idmap_put(idmap *m, uint32_t val, uint32_t idx, uint32_t n_ids) {
    if (idmap_fit(m, val, n_ids)) m->slot[val] = idx + 1;
    else m->complete = false;
}

static int idmap_init(idmap *m, const cb_vocab *v, cb_error *err) {
    (void)err;
    m->slot = NULL;
    m->cap = 0;
    m->complete = true;
    uint32_t n = cb_vocab_size(v), val;
    for (uint32_t i = 0; i < n; i++) {
        const char *s = cb_vocab_name(v, i);
        if (canon_num(s, strlen(s), &val)) idmap_put(m, val, i, n);
    }
    return CB_OK;
}

/* Resolve an id: found in the map or vocabulary, or (when not `closed`) added. */
static int id_lookup(cb_vocab *v, idmap *m, bool closed, const char *s, size_t n, uint32_t *idx, bool *found,
                     cb_error *err) {
    uint32_t val = 0;
    bool canon = canon_num(s, n, &val);
    *found = true;
    if (canon) {
        if (val < m->cap && m->slot[val]) {
            *idx = m->slot[val] - 1;
            return CB_OK;
        }
        if (m->complete) { /* known absent */
            if (closed) {
                *found = false;
                return CB_OK;
            }
            int rc = cb_vocab_intern(v, s, n, idx, NULL, err);
            if (!rc) idmap_put(m, val, *idx, cb_vocab_size(v));
            return rc;
        }
    }
    if (closed) {
        int64_t k = cb_vocab_find(v, s, n);
        *found = k >= 0;
        if (k >= 0) *idx = (uint32_t)k;
        return CB_OK;
    }
    bool added;
    int rc = cb_vocab_intern(v, s, n, idx, &added, err);
    if (!rc && added && canon) idmap_put(m, val, *idx, cb_vocab_size(v));
    return rc;
}

/* ---------------------------------------------------------------- fast path
 *
 * Most rating files are plain: every line is numeric ids, a decimal rating and
 * an integer timestamp, with nothing to unquote, convert or report. The fast
 * path reads such lines straight from a memory map, on every core: the span
 * after the header is cut into chunks at line ends, each thread counts its
 * chunk's lines (so every chunk knows where its rows go in the one ratings
 * array: no second buffer, 16 bytes per rating), then parses them. Ids of an
 * open vocabulary are numbered afterwards on one thread, in file order, so
 * indices are exactly those of the general path.
 *
 * It takes only lines it is sure the general path would accept unchanged,
 * and stops at the first other one (a quote, a blank line, a bad number, an
 * unknown id, a missing final newline, ...): the general path then reads the
 * rest of the file from that line and reports or skips it with its usual
 * message. Rows of later chunks are then dropped and read again. */

#define FAST_MAX_FIELDS 32
#define FAST_MIN_CHUNK ((size_t)1 << 20) /* bytes per thread at least */
#define FAST_MAX_THREADS 8
#define FAST_WINDOW ((size_t)4 << 20) /* bytes read before their pages are given back */

enum { ROLE_SKIP, ROLE_USER, ROLE_ITEM, ROLE_RATING, ROLE_TS };

/* What every thread needs to know; read-only while threads run. */
typedef struct fast_spec {
    char delim;
    bool quoting;
    uint8_t role[FAST_MAX_FIELDS];
    size_t n_fields, need;  /* exact field count, or 0 and the least count */
    size_t max_line;
    size_t page; /* bytes per memory page */
    bool check_range, binary, has_rating, has_ts;
    float lo, hi;
    /* Values of ratings with at most one decimal and up to 127 digit units
     * ("4.5" is short_y[1][45]), computed as below: a division per rating
     * would be a fifth of the parse. */
    float short_y[2][128];
    /* Maps of closed vocabularies (ids must already be known), resolved while
     * parsing; NULL for an open one, whose rows hold the id's value. */
    const idmap *user_closed, *item_closed;
} fast_spec;

/* One thread's share: whole lines [begin, end), end just after a '\n'. */
typedef struct fast_chunk {
    const fast_spec *fs;
    const char *begin, *end;
    size_t n_lines;   /* '\n' bytes in the chunk: counted first */
    cb_rating *rows;  /* room for n_lines rows */
    size_t n_rows;    /* rows parsed: n_lines, or fewer when it stopped early */
    const char *stop; /* end, or the first line it did not take */
} fast_chunk;

static size_t count_newlines(const char *p, const char *end) {
    size_t n = 0;
#ifdef __SSE2__
    const __m128i nl = _mm_set1_epi8('\n');
    for (; end - p >= 64; p += 64) {
        __m128i a = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), nl);
        __m128i b = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)), nl);
        __m128i c = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 32)), nl);
        __m128i d = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)), nl);
#define MASK(v) ((uint64_t)(uint32_t)_mm_movemask_epi8(v))
        uint64_t m = MASK(a) | MASK(b) << 16 | MASK(c) << 32 | MASK(d) << 48;
#undef MASK
        n += (size_t)__builtin_popcountll(m);
    }
#endif
    for (; p < end; p++) n += *p == '\n';
    return n;
}

static inline bool is_digit_byte(char ch) { return (unsigned)(unsigned char)ch - '0' < 10; }

/* Numbers are read 8 bytes at a time (SWAR), which keeps the loops free of
 * branches that depend on how many digits a number has: the cost of a byte
 * loop is mostly mispredicted exits. Loads may reach 15 bytes past the last
 * line: the map has a readable zero page after the file (see fast_map). */
static inline uint64_t load8(const char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w; /* little-endian: the first byte is the lowest */
}

/* Count of leading ASCII digits among the 8 bytes of w. A byte is a digit
 * when its high nibble is 3 and adding 6 keeps it so. A carry out of a byte
 * only comes from a non-digit (>= 0xFA), so it cannot hide the first one. */
static inline unsigned digit_run8(uint64_t w) {
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0ULL, threes = 0x3030303030303030ULL;
    uint64_t not_digit = ((w & hi) ^ threes) | (((w + 0x0606060606060606ULL) & hi) ^ threes);
    return not_digit ? (unsigned)__builtin_ctzll(not_digit) / 8 : 8;
}

/* Value of the first n digits of w, 1 <= n <= 8. */
static inline uint64_t digits_value8(uint64_t w, unsigned n) {
    uint64_t v = (w - 0x3030303030303030ULL) << (8 * (8 - n)); /* leading zero digits */
    v = (v * 10) + (v >> 8);                                     /* pairs */
    v = ((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32)) +
         ((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32))) >> 32;
    return v;
}

/* Parse the run of 1 to 15 digits at *pp into *value and step over it.
 * Returns the number of digits, 0 when there are none or more than 15. */
static inline unsigned parse_digits(const char **pp, uint64_t *value) {
    static const uint64_t p10[8] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
    const char *p = *pp;
    uint64_t w = load8(p);
    unsigned n = digit_run8(w);
    if (n == 0) return 0;
    uint64_t v = digits_value8(w, n);
    if (n == 8) {
        uint64_t w2 = load8(p + 8);
        unsigned n2 = digit_run8(w2);
        if (n2 == 8) return 0;
        if (n2) v = v * p10[n2] + digits_value8(w2, n2);
        n += n2;
    }
    *value = v;
    *pp = p + n;
    return n;
}

/* Parse the line at p into *r. Returns the start of the next line, or NULL
 * when the line is not one the fast path takes. A '\n' ends every line the
 * scan can reach, so no loop needs a bound. */
static inline const char *fast_line(const fast_spec *fs, const char *p, cb_rating *r) {
    static const double p10[16] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    const char *line = p;
    float y = 1.0f;
    uint32_t ts = 0, user = 0, item = 0;
    size_t k = 0;
    for (;; k++) {
        if (k == FAST_MAX_FIELDS) return NULL;
        const char *s = p;
        uint64_t v;
        switch (fs->role[k]) {
        case ROLE_USER:
        case ROLE_ITEM: { /* canonical: "0" or 1-9 digits without a leading zero */
            unsigned n = parse_digits(&p, &v);
            if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) return NULL;
            const idmap *m = fs->role[k] == ROLE_USER ? fs->user_closed : fs->item_closed;
            if (m) {
                if (v >= m->cap || !m->slot[v]) return NULL;
                v = m->slot[v] - 1;
            }
            if (fs->role[k] == ROLE_USER) user = (uint32_t)v;
            else item = (uint32_t)v;
            break;
        }
        case ROLE_RATING: { /* digits[.digits], at most 15 digits: as cb_fast_float */
            unsigned n_int = parse_digits(&p, &v), n_frac = 0;
            if (n_int == 0) return NULL;
            if (*p == '.') {
                p++;
                uint64_t frac;
                n_frac = parse_digits(&p, &frac);
                if (n_frac == 0 || n_int + n_frac > 15) return NULL;
                v = v * (uint64_t)p10[n_frac] + frac;
            }
            y = n_frac < 2 && v < 128 ? fs->short_y[n_frac][v] : (float)((double)v / p10[n_frac]);
            if (fs->check_range && (y < fs->lo || y > fs->hi)) return NULL;
            if (fs->binary && y != 0.0f && y != 1.0f) return NULL;
            break;
        }
        case ROLE_TS: {
            unsigned n = parse_digits(&p, &v);
            if (n == 0 || n > 10 || v > UINT32_MAX) return NULL;
            ts = (uint32_t)v;
            break;
        }
        default: /* a column not used: ASCII without quotes (nothing to check or unquote) */
            for (; *p != fs->delim && *p != '\n'; p++)
                if ((unsigned char)*p >= 0x80 || (*p == '"' && fs->quoting)) return NULL;
            break;
        }
        if (*p == fs->delim) {
            p++;
            continue;
        }
        if (*p == '\r') p++;
        if (*p != '\n') return NULL;
        size_t content = (size_t)(p - line);
        if (content && p[-1] == '\r') content--;
        if (content > fs->max_line) return NULL;
        break;
    }
    if (fs->n_fields ? k + 1 != fs->n_fields : k + 1 < fs->need) return NULL;
    r->user = user;
    r->item = item;
    r->y = y;
    r->ts = ts;
    return p + 1;
}

/* Give back the mapped pages wholly inside [from, to), so that resident
 * memory stays at a few windows of the file however large it is. The map is
 * read-only and the file unchanged: a page touched again (a neighbour
 * chunk's, or in the next pass) is simply read again from the page cache. */
static void drop_pages(const char *from, const char *to, size_t page) {
    uintptr_t a = ((uintptr_t)from + page - 1) / page * page, b = (uintptr_t)to / page * page;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static void *fast_count(void *arg) {
    fast_chunk *ch = arg;
    size_t n = 0;
    for (const char *w = ch->begin; w < ch->end; w += FAST_WINDOW) {
        const char *w_end = (size_t)(ch->end - w) > FAST_WINDOW ? w + FAST_WINDOW : ch->end;
        n += count_newlines(w, w_end);
        drop_pages(w, w_end, ch->fs->page);
    }
    ch->n_lines = n;
    return NULL;
}

static void *fast_parse(void *arg) {
    fast_chunk *ch = arg;
    const fast_spec *fs = ch->fs;
    const char *p = ch->begin, *end = ch->end, *window = p;
    cb_rating *r = ch->rows;
    while (p < end) {
        const char *next = fast_line(fs, p, r);
        if (!next) break;
        p = next;
        r++;
        if ((size_t)(p - window) >= FAST_WINDOW) {
            drop_pages(window, p, fs->page);
            window = p;
        }
    }
    ch->n_rows = (size_t)(r - ch->rows);
    ch->stop = p;
    return NULL;
}

/* Run fn on every chunk, chunk 0 on this thread. A chunk whose thread cannot
 * be started runs here too: the result is the same. */
static void fast_run(void *(*fn)(void *), fast_chunk *chunks, int n) {
    pthread_t tid[FAST_MAX_THREADS];
    bool started[FAST_MAX_THREADS] = {false};
    for (int t = 1; t < n; t++) started[t] = pthread_create(&tid[t], NULL, fn, &chunks[t]) == 0;
    fn(&chunks[0]);
    for (int t = 1; t < n; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else fn(&chunks[t]);
    }
}

/* Number the ids of an open vocabulary held as values in rows[0, n), in order.
 * `user` picks the column. */
static int fast_number(cb_vocab *v, idmap *m, cb_rating *rows, size_t n, bool user, cb_error *err) {
    uint32_t last_val = 0, last_idx = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        uint32_t *id = user ? &rows[i].user : &rows[i].item;
        uint32_t val = *id, idx;
        if (val == last_val && last_idx != UINT32_MAX) {
            idx = last_idx;
        } else if (val < m->cap && m->slot[val]) {
            idx = m->slot[val] - 1;
        } else {
            char s[16];
            int len = snprintf(s, sizeof s, "%u", val);
            bool found;
            int rc = id_lookup(v, m, false, s, (size_t)len, &idx, &found, err);
            if (rc) return rc;
        }
        *id = last_idx = idx;
        last_val = val;
    }
    return CB_OK;
}

/* Fill fs from the spec; false when the file's format rules the fast path out. */
static bool fast_spec_init(fast_spec *fs, const cb_loader *L, const cb_ratings_spec *sp, const idmap *user_map,
                           const idmap *item_map) {
    const char *delim = sp->csv.delim ? sp->csv.delim : ",";
    unsigned char d = (unsigned char)delim[0];
    if (strlen(delim) != 1 || sp->csv.latin1 || d >= 0x80 || is_digit_byte((char)d) || d == '.' ||
        (d == '"' && sp->csv.quoting))
        return false;
    if (sp->col_user < 0 || sp->col_item < 0 || sp->n_fields > FAST_MAX_FIELDS) return false;
    memset(fs, 0, sizeof *fs);
    /* An event weight is read as a rating is, without the range and 0/1
     * checks (the fast path takes only digits, so never a negative one). */
    bool weight = sp->col_rating < 0 && sp->col_weight >= 0;
    int cols[4] = {sp->col_user, sp->col_item, weight ? sp->col_weight : sp->col_rating, sp->col_ts};
    for (int k = 0; k < 4; k++) {
        if (cols[k] < 0) continue;
        if (cols[k] >= FAST_MAX_FIELDS) return false;
        fs->role[cols[k]] = (uint8_t)(ROLE_USER + k);
        if ((size_t)cols[k] + 1 > fs->need) fs->need = (size_t)cols[k] + 1;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return false;
    fs->page = (size_t)page;
    fs->delim = (char)d;
    fs->quoting = sp->csv.quoting != 0;
    fs->n_fields = sp->n_fields;
    fs->max_line = sp->csv.max_line;
    fs->check_range = L->declared_range && !weight;
    fs->binary = L->declared_binary && !weight;
    fs->lo = L->opt.y_min;
    fs->hi = L->opt.y_max;
    for (int v = 0; v < 128; v++) {
        fs->short_y[0][v] = (float)v;
        fs->short_y[1][v] = (float)((double)v / 10.0);
    }
    fs->user_closed = L->users_file ? user_map : NULL;
    fs->item_closed = L->items_file ? item_map : NULL;
    return true;
}

/* Map the file read-only, followed by at least one readable page of zeros
 * (for the 8-byte loads): an anonymous mapping one page longer than the
 * file, with the file mapped over its start. NULL when that fails. */
static const char *fast_map(const char *path, size_t *size, size_t *map_len) {
    int fd;
    if (cb_open_input(&fd, path, NULL, NULL)) return NULL; /* the general path opens it again and says why */
    struct stat st;
    char *map = NULL;
    long page = sysconf(_SC_PAGESIZE);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && page > 0) {
        *size = (size_t)st.st_size;
        *map_len = (*size + 2 * (size_t)page - 1) / (size_t)page * (size_t)page;
        map = mmap(NULL, *map_len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED) map = NULL;
        else if (mmap(map, *size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
            munmap(map, *map_len);
            map = NULL;
        }
    }
    close(fd);
    return map;
}

/* Read what the fast path can of the ratings file from byte `offset` (a line
 * start just after the header, or 0) on, appending to L->ds. On return,
 * *resume_off and *resume_line say where the general path goes on (the end
 * of the file when everything was read). */
static int fast_read(cb_loader *L, const cb_ratings_spec *sp, idmap *user_map, idmap *item_map, size_t offset,
                     size_t *resume_off, size_t *resume_line, cb_error *err) {
    cb_dataset *ds = L->ds;
    fast_spec fs;
    *resume_off = offset;
    *resume_line = 0; /* unknown: nothing was read */
    if (L->opt.ratings_reference || !fast_spec_init(&fs, L, sp, user_map, item_map)) return CB_OK;
    size_t size, map_len;
    const char *map = fast_map(sp->path, &size, &map_len);
    if (!map) return CB_OK; /* the general path reports any problem */
    int rc = CB_OK;
    if (size <= offset) goto done;
    const char *begin = map + offset, *last_nl = memrchr(begin, '\n', size - offset);
    if (!last_nl) goto done;
    const char *end = last_nl + 1;

    /* Chunks at line ends, one per core; the threads count their lines. */
    size_t span = (size_t)(end - begin), min_chunk = L->opt.ratings_chunk;
    long n_cpu = min_chunk ? FAST_MAX_THREADS : sysconf(_SC_NPROCESSORS_ONLN);
    if (!min_chunk) min_chunk = FAST_MIN_CHUNK;
    int n_chunks = n_cpu > FAST_MAX_THREADS ? FAST_MAX_THREADS : n_cpu < 1 ? 1 : (int)n_cpu;
    if ((size_t)n_chunks > span / min_chunk) n_chunks = span / min_chunk ? (int)(span / min_chunk) : 1;
    fast_chunk chunks[FAST_MAX_THREADS];
    const char *at = begin;
    int n = 0;
    for (int t = 0; t < n_chunks && at < end; t++) {
        const char *cut = t == n_chunks - 1 ? end : begin + span / (size_t)n_chunks * (size_t)(t + 1);
        if (cut <= at) continue;
        if (cut < end) cut = (const char *)memchr(cut - 1, '\n', (size_t)(end - cut + 1)) + 1;
        chunks[n++] = (fast_chunk){.fs = &fs, .begin = at, .end = cut};
        at = cut;
    }
    fast_run(fast_count, chunks, n);

    /* Room for every line, then the rows of chunk t go at base[t]. */
    size_t base[FAST_MAX_THREADS], total = ds->n_ratings;
    for (int t = 0; t < n; t++) {
        base[t] = total;
        total += chunks[t].n_lines;
    }
    if (total >= UINT32_MAX) goto done; /* the general path says so at the right line */
    rc = ensure_ratings(ds, total, err);
    if (rc) goto done;
    for (int t = 0; t < n; t++) chunks[t].rows = ds->ratings + base[t];
    fast_run(fast_parse, chunks, n);

    /* Keep the rows up to the first chunk that stopped early, numbering ids. */
    size_t line = 1 + count_newlines(map, begin);
    for (int t = 0; t < n; t++) {
        fast_chunk *ch = &chunks[t];
        if (!fs.user_closed) rc = fast_number(ds->users, user_map, ch->rows, ch->n_rows, true, err);
        if (!rc && !fs.item_closed) rc = fast_number(ds->items, item_map, ch->rows, ch->n_rows, false, err);
        if (rc) goto done;
        ds->n_ratings += ch->n_rows;
        line += ch->n_rows;
        *resume_off = (size_t)(ch->stop - map);
        *resume_line = line;
        if (ch->stop != ch->end) break;
    }
done:
    munmap((void *)map, map_len);
    return rc;
}

/* ---------------------------------------------------------- general path */

/* A rating spelling already parsed ("4.0", "3.5"): rating files spell few
 * distinct values, so short ones are looked up instead of parsed. */
typedef struct yslot {
    uint32_t key, len; /* len 0 = empty */
    float y;
} yslot;

/* The general path's state while it reads one ratings file. */
typedef struct reader {
    cb_loader *L;
    const cb_ratings_spec *sp;
    cb_csv *c;
    const char *name;
    size_t need;          /* fields a record needs at least (when n_fields is 0) */
    int col_y;            /* the rating or weight column, -1 = none */
    bool is_weight;       /* col_y holds event weights (implicit data) */
    idmap user_map, item_map;
    yslot ycache[64];
    char last_user[64];   /* the previous row's user (files are grouped by user) */
    size_t last_user_len; /* SIZE_MAX = none */
    uint32_t last_user_idx;
} reader;

/* A row helper's verdict on a bad row: under skip_bad_rows the row is only
 * counted (no message is formatted); otherwise the message is in err. */
#define ROW_BAD 1
#define BAD(...) return rd->L->opt.skip_bad_rows ? ROW_BAD : (cb_fail(err, CB_EPARSE, __VA_ARGS__), ROW_BAD)
/* The line number is only needed for messages: asked for lazily. */
#define LINE cb_csv_line(rd->c)

/* The header record, when the spec has one. */
static int read_header(reader *rd, size_t *last_line, cb_error *err) {
    char **f;
    size_t *fl, nf;
    int rc = cb_csv_next(rd->c, &f, &fl, &nf, err);
    if (rc < 0) return rc;
    if (rc == 0) return cb_fail(err, CB_EPARSE, "%s:1: empty file (expected a header and ratings)", rd->name);
    *last_line = cb_csv_line(rd->c);
    if ((rc = cb_header_lone_cr(rd->name, *last_line, f, fl, nf, err))) return rc;
    if (rd->sp->n_fields && nf != rd->sp->n_fields)
        return cb_fail(err, CB_EPARSE, "%s:%zu: header has %zu fields, expected %zu", rd->name, *last_line, nf,
                       rd->sp->n_fields);
    return CB_OK;
}

/* Run the fast path over the bulk of the file, then point the csv reader at
 * the first line it did not take (or, when it took none, pre-size the
 * ratings array from the file size: real rating lines are >= ~8 bytes). */
static int skip_fast_part(reader *rd, cb_error *err) {
    cb_dataset *ds = rd->L->ds;
    size_t n_before = ds->n_ratings, resume_off, resume_line;
    int rc = idmap_init(&rd->user_map, ds->users, err);
    if (!rc) rc = idmap_init(&rd->item_map, ds->items, err);
    if (!rc) rc = fast_read(rd->L, rd->sp, &rd->user_map, &rd->item_map, cb_csv_bytes(rd->c), &resume_off,
                            &resume_line, err);
    if (rc) return rc;
    if (ds->n_ratings > n_before) {
        cb_csv_close(rd->c);
        rd->c = NULL;
        rc = cb_csv_open(&rd->c, rd->sp->path, &rd->sp->csv, err);
        if (!rc) rc = cb_csv_seek(rd->c, resume_off, resume_line, err);
        if (!rc) rd->name = cb_csv_name(rd->c);
        return rc;
    }
    struct stat st;
    if (stat(rd->sp->path, &st) == 0 && st.st_size > 0)
        return ensure_ratings(ds, ds->n_ratings + (size_t)st.st_size / 24 + 16, err);
    return CB_OK;
}

/* The rating (or weight) field of a row, checked. */
static int row_value(reader *rd, const char *s, size_t n, float *y, cb_error *err) {
    const cb_loader *L = rd->L;
    if (n >= 1 && n <= 4) {
        uint32_t key = 0;
        memcpy(&key, s, n);
        yslot *e = &rd->ycache[(key * 2654435761u) >> 26];
        if (e->len == n && e->key == key) {
            *y = e->y;
        } else {
            if (!cb_fast_float(s, n, y)) goto not_number;
            *e = (yslot){key, (uint32_t)n, *y};
        }
    } else if (!cb_fast_float(s, n, y)) {
        goto not_number;
    }
    if (rd->is_weight) {
        if (*y < 0) BAD("%s:%zu: weight %g is negative", rd->name, LINE, *y);
        return CB_OK;
    }
    if (L->declared_range && (*y < L->opt.y_min || *y > L->opt.y_max))
        BAD("%s:%zu: rating %g outside the declared range [%g, %g]", rd->name, LINE, *y, L->opt.y_min, L->opt.y_max);
    if (L->declared_binary && *y != 0.0f && *y != 1.0f)
        BAD("%s:%zu: label %g is not 0 or 1 (binary labels declared)", rd->name, LINE, *y);
    return CB_OK;
not_number:
    BAD("%s:%zu: %s '%.*s' is not a finite number", rd->name, LINE, rd->is_weight ? "weight" : "rating", CLIP(s, n), s);
}

/* The user of a row; the previous row's user is remembered. */
static int row_user(reader *rd, const char *us, size_t ul, uint32_t *u, cb_error *err) {
    uint32_t val;
    bool found;
    if (ul == rd->last_user_len && same_bytes(us, rd->last_user, ul)) {
        *u = rd->last_user_idx;
        return CB_OK;
    }
    if (canon_num(us, ul, &val) && val < rd->user_map.cap && rd->user_map.slot[val]) {
        *u = rd->last_user_idx = rd->user_map.slot[val] - 1;
        memcpy(rd->last_user, us, ul);
        rd->last_user_len = ul;
        return CB_OK;
    }
    cb_loader *L = rd->L;
    int rc = id_lookup(L->ds->users, &rd->user_map, L->users_file != NULL, us, ul, u, &found, err);
    if (rc) return rc;
    if (!found && L->opt.unlisted_users != CB_UNLISTED_KEEP)
        BAD("%s:%zu: unknown user id '%.*s' (not in %s; --unlisted-users keep keeps such users, their attributes "
            "missing)", rd->name, LINE, CLIP(us, ul), us, L->users_file);
    if (!found) { /* kept: a user of its own, every attribute missing (cb_tb_finish pads the table) */
        if ((rc = id_lookup(L->ds->users, &rd->user_map, false, us, ul, u, &found, err))) return rc;
        L->ds->n_unlisted++;
    }
    if (ul <= sizeof rd->last_user) {
        memcpy(rd->last_user, us, ul);
        rd->last_user_len = ul;
        rd->last_user_idx = *u;
    } else {
        rd->last_user_len = SIZE_MAX;
    }
    return CB_OK;
}

static int row_item(reader *rd, const char *is, size_t il, uint32_t *it, cb_error *err) {
    uint32_t val;
    bool found = true;
    if (canon_num(is, il, &val) && val < rd->item_map.cap && rd->item_map.slot[val]) {
        *it = rd->item_map.slot[val] - 1; /* the common case, inline */
    } else {
        cb_loader *L = rd->L;
        int rc = id_lookup(L->ds->items, &rd->item_map, L->items_file != NULL, is, il, it, &found, err);
        if (rc) return rc;
    }
    if (!found)
        BAD("%s:%zu: unknown item id '%.*s' (not in %s)", rd->name, LINE, CLIP(is, il), is, rd->L->items_file);
    return CB_OK;
}

/* A timestamp that is not plain integer seconds: cb_time_parse's forms
 * (ISO 8601, fractional seconds), kept as seconds in [1970, 2106). */
static int row_time(reader *rd, const char *s, size_t n, uint32_t *ts, cb_error *err) {
    int64_t t;
    if (!cb_time_parse(s, n, &t))
        BAD("%s:%zu: timestamp '%.*s' is not a time (integer seconds since 1970, or ISO 8601: 2024-05-01, "
            "2024-05-01T12:30:00Z)", rd->name, LINE, CLIP(s, n), s);
    if (t < 0 || t > (int64_t)UINT32_MAX)
        BAD("%s:%zu: timestamp '%.*s' is outside 1970-01-01 .. 2106-02-07 (seconds 0 .. 4294967295)%s", rd->name,
            LINE, CLIP(s, n), s, t > 100000000000 && t < 100000000000000 ? ": milliseconds? the column holds seconds" : "");
    *ts = (uint32_t)t;
    return CB_OK;
}

/* One record into *r: CB_OK, ROW_BAD or a negative error. Every check comes
 * before the ids are resolved, so a skipped row adds no id. */
static int parse_row(reader *rd, char **f, const size_t *fl, size_t nf, cb_rating *r, cb_error *err) {
    const cb_ratings_spec *sp = rd->sp;
    if (sp->n_fields ? nf != sp->n_fields : nf < rd->need)
        BAD("%s:%zu: expected %zu fields, found %zu", rd->name, LINE, sp->n_fields ? sp->n_fields : rd->need, nf);
    int rc;
    r->y = 1.0f;
    if (rd->col_y >= 0 && (rc = row_value(rd, f[rd->col_y], fl[rd->col_y], &r->y, err))) return rc;
    r->ts = 0;
    if (sp->col_ts >= 0 && !cb_fast_u32(f[sp->col_ts], fl[sp->col_ts], &r->ts) &&
        (rc = row_time(rd, f[sp->col_ts], fl[sp->col_ts], &r->ts, err)))
        return rc;
    size_t ul = fl[sp->col_user], il = fl[sp->col_item];
    if (ul == 0) BAD("%s:%zu: empty user id", rd->name, LINE);
    if (il == 0) BAD("%s:%zu: empty item id", rd->name, LINE);
    if ((rc = row_user(rd, f[sp->col_user], ul, &r->user, err))) return rc;
    return row_item(rd, f[sp->col_item], il, &r->item, err);
}

/* The rest of the file, record by record. */
static int read_rows(reader *rd, size_t *n_records, cb_error *err) {
    cb_dataset *ds = rd->L->ds;
    char **f;
    size_t *fl, nf;
    int rc;
    while ((rc = cb_csv_next(rd->c, &f, &fl, &nf, err)) > 0) {
        ++*n_records;
        cb_rating r;
        rc = parse_row(rd, f, fl, nf, &r, err);
        if (rc == ROW_BAD && rd->L->opt.skip_bad_rows) {
            ds->n_skipped++;
            continue;
        }
        if (rc == ROW_BAD) return CB_EPARSE;
        if (rc) return rc;
        if (ds->n_ratings == ds->cap_ratings && (rc = ensure_ratings(ds, ds->n_ratings + 1, err))) return rc;
        if (ds->n_ratings >= UINT32_MAX)
            return cb_fail(err, CB_EINVAL, "%s:%zu: more than 4294967295 ratings", rd->name, LINE);
        ds->ratings[ds->n_ratings++] = r;
    }
    return rc;
}
#undef BAD
#undef LINE

int cb_ratings_spec_resolve(const cb_ratings_spec *sp, cb_ratings_spec *out, cb_error *err) {
    *out = *sp;
    if (!sp->header || !sp->names[0]) return CB_OK;
    cb_csv *c = NULL;
    int rc = cb_csv_open(&c, sp->path, &sp->csv, err);
    if (rc) return rc;
    char **f;
    size_t *fl, nf;
    rc = cb_csv_next(c, &f, &fl, &nf, err);
    if (rc == 0) rc = cb_fail(err, CB_EPARSE, "%s:1: empty file (expected a header and ratings)", cb_csv_name(c));
    if (rc > 0 && cb_header_lone_cr(cb_csv_name(c), 1, f, fl, nf, err)) rc = CB_EPARSE;
    if (rc > 0 && sp->n_fields && nf != sp->n_fields)
        rc = cb_fail(err, CB_EPARSE, "%s:1: header has %zu fields, expected %zu", cb_csv_name(c), nf, sp->n_fields);
    int *cols[4] = {&out->col_user, &out->col_item, &out->col_rating, &out->col_ts};
    for (int k = 0; rc > 0 && k < 4; k++) {
        if (!sp->names[k]) continue;
        int at = -1;
        for (size_t i = 0; i < nf; i++) {
            size_t len = fl[i];
            const char *name = f[i];
            if (cb_ieq(name, len, sp->names[k])) at = at < 0 ? (int)i : -2;
        }
        if (at < 0) {
            char shown[CB_CLIP_MAX + 32];
            rc = cb_fail(err, CB_EPARSE, "%s:1: the header %s column '%s' (it has %zu fields, first '%s')", cb_csv_name(c),
                         at == -1 ? "has no" : "repeats the", sp->names[k], nf,
                         nf ? cb_clip(shown, sizeof shown, f[0], fl[0]) : "");
        } else *cols[k] = at;
    }
    cb_csv_close(c);
    return rc < 0 ? rc : CB_OK;
}

int cb_ld_read_ratings(cb_loader *L, const cb_ratings_spec *spec, cb_error *err) {
    cb_ratings_spec by_name;
    int rc0 = cb_ratings_spec_resolve(spec, &by_name, err);
    if (rc0) return rc0;
    const cb_ratings_spec *sp = &by_name;
    if (sp->col_rating >= 0 && sp->col_weight >= 0)
        return cb_fail(err, CB_EINVAL, "%s: a ratings file has a rating or a weight column, not both", sp->path);
    reader rd = {.L = L, .sp = sp, .last_user_len = SIZE_MAX};
    rd.col_y = sp->col_rating >= 0 ? sp->col_rating : sp->col_weight;
    rd.is_weight = sp->col_weight >= 0;
    int cols[4] = {sp->col_user, sp->col_item, rd.col_y, sp->col_ts};
    for (int k = 0; k < 4; k++)
        if (cols[k] >= 0 && (size_t)cols[k] + 1 > rd.need) rd.need = (size_t)cols[k] + 1;
    int rc = cb_csv_open(&rd.c, sp->path, &sp->csv, err);
    if (rc) return rc;
    rd.name = cb_csv_name(rd.c);
    cb_dataset *ds = L->ds;
    size_t last_line = 0, n_before = ds->n_ratings, n_records = 0;
    if (sp->header && (rc = read_header(&rd, &last_line, err))) goto done;
    if ((rc = skip_fast_part(&rd, err)) || (rc = read_rows(&rd, &n_records, err))) goto done;
    if (n_records) last_line = cb_csv_line(rd.c);
    if (ds->n_ratings == n_before)
        rc = cb_fail(err, CB_EPARSE, "%s:%zu: no ratings in file%s", rd.name, last_line + 1,
                     ds->n_skipped ? " (every row was skipped as bad)" : "");
    if (sp->col_ts >= 0) ds->has_timestamps = true;
    if (sp->col_rating < 0) {
        L->implicit = true;
        L->weighted = sp->col_weight >= 0;
        if (!L->weighted) L->declared_binary = true;
    }
done:
    free(rd.user_map.slot);
    free(rd.item_map.slot);
    cb_csv_close(rd.c);
    return rc;
}
