/* listjson — the text of a list answer (recommend, similar), written in one
 * pass from the public cb_list accessors: cb_list_to_json's document with
 * "KEY": VALUE in front and each entry's "genres" (the model's texts) at its
 * end. cb_list_to_json builds a jansson tree and dumps it, then the server
 * had to splice the genres in: on ml-latest-small that was ~15% of a
 * request's CPU, more than all of the HTTP. Same style as the library's
 * (compact, ASCII with \u escapes, keys in order, reals as "%.7g" with ".0"
 * added when they would read as integers (real_text), non-finite as null); invalid
 * UTF-8 in a text becomes '?' (cb_utf8_decode's rule; jansson refuses such a string). test_serve
 * checks the answers against `cbrec recommend --json`. */
#include "serve/serve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    char *s;
    size_t len, cap;
    bool failed;
} buf;

static bool grow(buf *b, size_t more) {
    if (b->failed) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = (b->len + more + 1) * 2;
    char *g = realloc(b->s, cap);
    if (!g) return b->failed = true, false;
    b->s = g, b->cap = cap;
    return true;
}

static void put(buf *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_u(buf *b, unsigned cp) {
    char e[8];
    snprintf(e, sizeof e, "\\u%04X", cp & 0xFFFF);
    put(b, e, 6);
}

/* s as a JSON string (NULL as ""). */
static void put_str(buf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p), i = 0;
    put(b, "\"", 1);
    while (i < n) {
        size_t run = i; /* plain ASCII runs are copied whole */
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
        if (run > i) put(b, (const char *)p + i, run - i);
        if ((i = run) >= n) break;
        uint32_t cp;
        size_t len = cb_utf8_decode((const char *)p + i, n - i, &cp);
        i += len ? len : 1;
        if (!len) put(b, "?", 1);
        else if (cp == '"') put(b, "\\\"", 2);
        else if (cp == '\\') put(b, "\\\\", 2);
        else if (cp == '\n') put(b, "\\n", 2);
        else if (cp == '\t') put(b, "\\t", 2);
        else if (cp == '\r') put(b, "\\r", 2);
        else if (cp == '\b') put(b, "\\b", 2);
        else if (cp == '\f') put(b, "\\f", 2);
        else if (cp < 0x10000) put_u(b, (unsigned)cp);
        else put_u(b, 0xD800 | (unsigned)((cp - 0x10000) >> 10)), put_u(b, 0xDC00 | (unsigned)((cp - 0x10000) & 0x3FF));
    }
    put(b, "\"", 1);
}

/* A float as jansson writes a real with precision 7: "%.7g", ".0" added
 * when it would read as an integer, the exponent without '+' and leading
 * zeros. */
static int real_text(char *t, size_t size, float x) {
    int n = snprintf(t, size, "%.7g", (double)x);
    char *e = strchr(t, 'e');
    if (!e && !strchr(t, '.')) n += snprintf(t + n, size - (size_t)n, ".0");
    if (e) { /* "1e+07" -> "1e7", "1e-07" -> "1e-7" */
        char *from = e + 1, *to = e + 1;
        if (*from == '+') from++;
        else if (*from == '-') from++, to++;
        while (*from == '0' && from[1]) from++;
        memmove(to, from, strlen(from) + 1);
        n = (int)strlen(t);
    }
    return n;
}

/* The same text without printf (3x faster; a list has 20 numbers) where %g
 * writes fixed notation (1e-4 <= |x| < 1e7): the 7 significant digits are
 * rint(|x| * 10^(6 - e)), exact in a double (a float has 24 bits and
 * 5^10 < 2^24), so they round as printf does; real_text elsewhere. Checked
 * equal to real_text on 29 million floats (every 29th bit pattern in
 * [1e-6, 1e9]) when written. */
static int real_text_fast(char *t, size_t size, float x) {
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10};
    double a = fabs((double)x), m;
    if (!(a >= 1e-4 && a < 1e7)) return real_text(t, size, x);
    int e = (int)floor(log10(a)); /* the decimal exponent, corrected below */
    e = e < -4 ? -4 : e > 6 ? 6 : e;
    for (;;) {
        m = rint(a * pow10[6 - e]);
        if (m < 1e6 && e > -4) e--;
        else if (m >= 1e7 && e < 6) e++;
        else break;
    }
    if (m >= 1e7) m = 1e6, e++; /* 9.9999996 -> 10 */
    if (e > 6 || m < 1e6) return real_text(t, size, x);
    char d[7];
    unsigned long v = (unsigned long)m;
    for (int i = 6; i >= 0; i--) d[i] = (char)('0' + v % 10), v /= 10;
    int n = 0;
    if (x < 0) t[n++] = '-';
    if (e >= 0) {
        memcpy(t + n, d, (size_t)e + 1), n += e + 1;
        t[n++] = '.';
        memcpy(t + n, d + e + 1, (size_t)(6 - e)), n += 6 - e;
        if (e == 6) t[n++] = '0';
    } else {
        t[n++] = '0', t[n++] = '.';
        for (int i = 0; i < -e - 1; i++) t[n++] = '0';
        memcpy(t + n, d, 7), n += 7;
    }
    while (t[n - 1] == '0' && t[n - 2] != '.') n--; /* %g drops trailing zeros; jansson keeps ".0" */
    t[n] = 0;
    return n;
}

/* A float as a JSON real (real_text); null when not finite. */
static void put_num(buf *b, float x) {
    if (!isfinite(x)) return put(b, "null", 4);
    char t[40];
    int n = real_text_fast(t, sizeof t, x);
    put(b, t, (size_t)n);
}

static void put_key(buf *b, const char *key) {
    put_str(b, key);
    put(b, ":", 1);
}

char *sv_list_json(const sv_model *m, const cb_list *l, const char *key, const char *value) {
    buf b = {malloc(4096), 0, 4096, false};
    if (!b.s) return NULL;
    b.s[0] = 0;
    put(&b, "{", 1);
    put_key(&b, key);
    put_str(&b, value);
    put(&b, ",\"criterion\":", 13);
    put_str(&b, cb_list_criterion(l));
    put(&b, ",\"items\":[", 10);
    for (size_t i = 0; i < cb_list_size(l); i++) {
        size_t item = cb_list_item(l, i);
        char rank[40];
        snprintf(rank, sizeof rank, "%s{\"rank\":%zu,\"item\":", i ? "," : "", i + 1);
        puts_(&b, rank);
        put_str(&b, cb_list_item_id(l, i));
        put(&b, ",\"title\":", 9);
        put_str(&b, cb_list_title(l, i));
        put(&b, ",\"score\":", 9);
        put_num(&b, cb_list_score(l, i));
        put(&b, ",\"rating\":", 10);
        put_num(&b, cb_list_rating(l, i));
        put(&b, ",\"sources\":[", 12);
        for (size_t j = 0; j < cb_list_n_sources(l, i); j++) {
            if (j) put(&b, ",", 1);
            put_str(&b, cb_list_source(l, i, j));
        }
        put(&b, "],\"reasons\":[", 13);
        for (size_t j = 0; j < cb_list_n_reasons(l, i); j++) {
            if (j) put(&b, ",", 1);
            put_str(&b, cb_list_reason(l, i, j));
        }
        put(&b, "]", 1);
        if (item < m->n_items && item >= m->n_items - m->n_added) put(&b, ",\"new\":true", 11);
        put(&b, ",", 1);
        puts_(&b, item < m->n_items ? m->content_json[item] : "\"genres\":[]");
        put(&b, "}", 1);
    }
    put(&b, "],\"notes\":[", 11);
    for (size_t j = 0; j < cb_list_n_notes(l); j++) {
        if (j) put(&b, ",", 1);
        put_str(&b, cb_list_note(l, j));
    }
    put(&b, "]}", 2);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
