/* textutil — small text and file helpers of the loaders: field parsing
 * (case-insensitive compare, trimming, years from titles and dates, US zip
 * regions) and files (path join, exists, read a small file whole). The inline
 * number parsers are in textutil.h. */
#include "data/textutil.h"
#include "data/dataset.h" /* cb_year_from_title is declared there */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *cb_path_join(const char *dir, const char *name, cb_error *err) {
    if (name[0] == '/') return cb_strdup(name, err);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = cb_malloc(n, err);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

bool cb_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

float cb_year_from_title(const char *s, size_t len) {
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) len--;
    if (len < 6 || s[len - 1] != ')') return NAN;
    size_t open = len - 1;
    while (open > 0 && s[open - 1] != '(') open--;
    if (open == 0) return NAN;
    /* s[open .. len-2] is the parenthesised text: it must start with 4 digits
     * and either end there or continue with a non-digit ("2006-2007"). */
    size_t inner = len - 1 - open;
    if (inner < 4) return NAN;
    for (size_t k = 0; k < 4; k++)
        if (!is_digit(s[open + k])) return NAN;
    if (inner > 4 && is_digit(s[open + 4])) return NAN;
    int y = (s[open] - '0') * 1000 + (s[open + 1] - '0') * 100 + (s[open + 2] - '0') * 10 + (s[open + 3] - '0');
    return y >= 1800 && y <= 2200 ? (float)y : NAN;
}

float cb_year_from_date(const char *s, size_t len) {
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\r')) len--;
    if (len < 4) return NAN;
    for (size_t k = len - 4; k < len; k++)
        if (!is_digit(s[k])) return NAN;
    if (len > 4 && is_digit(s[len - 5])) return NAN;
    int y = (s[len - 4] - '0') * 1000 + (s[len - 3] - '0') * 100 + (s[len - 2] - '0') * 10 + (s[len - 1] - '0');
    return y >= 1800 && y <= 2200 ? (float)y : NAN;
}

void cb_trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t' || **s == '\r')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r')) (*n)--;
}

int cb_header_lone_cr(const char *name, size_t line, char *const *fields, const size_t *lens, size_t n,
                      cb_error *err) {
    for (size_t i = 0; i < n; i++)
        if (memchr(fields[i], '\r', lens[i]))
            return cb_fail(err, CB_EPARSE, "%s:%zu: the header's field %zu holds a carriage return: the lines end in "
                           "a lone CR (as classic Mac files do); convert the line ends to LF or CRLF", name, line, i + 1);
    return CB_OK;
}

bool cb_ieq(const char *s, size_t len, const char *lit) {
    size_t n = strlen(lit);
    if (n != len) return false;
    for (size_t i = 0; i < n; i++) {
        char a = s[i], b = lit[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
        if (a != b) return false;
    }
    return true;
}

const char *cb_zip_region(const char *zip, size_t len) {
    static const char *const regions[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    /* 5 digits, optionally followed by "-dddd" (ZIP+4). */
    if (len < 5) return "other";
    for (size_t i = 0; i < 5; i++)
        if (!is_digit(zip[i])) return "other";
    if (len > 5) {
        if (zip[5] != '-') return "other";
        for (size_t i = 6; i < len; i++)
            if (!is_digit(zip[i])) return "other";
    }
    return regions[zip[0] - '0'];
}


uint32_t cb_value_bucket(const char *s, size_t len, uint32_t buckets) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return buckets ? (uint32_t)(h % buckets) : 0;
}

void cb_csv_put_field(FILE *fp, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"') fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

/* The small letter of code point c (simple folding of the scripts above). */
static uint32_t fold_cp(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x130) return 'i';
        if (c == 0x178) return 0xFF;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c & 1 ? c + 1 : c;
        if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
        return c & 1 ? c : c + 1;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c == 0x3C2) return 0x3C3;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

static size_t utf8_encode(uint32_t c, char *out) {
    if (c < 0x80) return out[0] = (char)c, 1;
    if (c < 0x800) return out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3F)), 2;
    out[0] = (char)(0xE0 | c >> 12), out[1] = (char)(0x80 | ((c >> 6) & 0x3F)), out[2] = (char)(0x80 | (c & 0x3F));
    return 3; /* folded code points are all below U+10000 */
}

CB_API size_t cb_utf8_fold(char *s) {
    size_t n = strlen(s), r = 0, w = 0;
    while (r < n) {
        uint32_t c;
        size_t len = cb_utf8_decode(s + r, n - r, &c);
        if (!len) { /* invalid byte: kept */
            s[w++] = s[r++];
            continue;
        }
        uint32_t f = fold_cp(c);
        if (f == c) memmove(s + w, s + r, len), w += len;
        else w += utf8_encode(f, s + w); /* never longer than the original */
        r += len;
    }
    s[w] = '\0';
    return w;
}

/* Does non-ASCII code point c separate tokens? Unicode spaces and
 * punctuation (the categories Z and P of the common blocks): no-break and
 * ideographic spaces, curly quotes, dashes, the ellipsis, guillemets, the
 * CJK and fullwidth punctuation (、。「」！), the Arabic comma ... Other
 * code points (letters, digits, symbols, emoji) and the joiners U+200C,
 * U+200D and U+2060 belong to tokens. */
static bool unicode_separator(uint32_t c) {
    if (c < 0xA0) return true; /* C1 controls (NEL) */
    if (c < 0x100)
        return c == 0xA0 || c == 0xA1 || c == 0xA7 || c == 0xAB || c == 0xB6 || c == 0xB7 || c == 0xBB || c == 0xBF;
    if (c == 0x37E || c == 0x387 || (c >= 0x55A && c <= 0x55F) || c == 0x589 || c == 0x58A) return true;
    if (c == 0x60C || c == 0x61B || c == 0x61F || (c >= 0x66A && c <= 0x66D) || c == 0x6D4) return true;
    if (c == 0x964 || c == 0x965 || c == 0x1680) return true;
    if (c >= 0x2000 && c <= 0x206F) return c != 0x200C && c != 0x200D && c != 0x2060;
    if (c >= 0x2E00 && c <= 0x2E7F) return true;
    if ((c >= 0x3000 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011) || (c >= 0x3014 && c <= 0x301F) ||
        c == 0x3030 || c == 0x303D || c == 0x30FB)
        return true;
    if ((c >= 0xFE10 && c <= 0xFE19) || (c >= 0xFE30 && c <= 0xFE6B) || c == 0xFEFF) return true;
    return (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFF3B && c <= 0xFF40) ||
           (c >= 0xFF5B && c <= 0xFF65);
}

/* The length of the code point at s (before end), and whether it separates
 * tokens: ASCII but letters and digits, and (rule 2) unicode_separator; an
 * invalid byte is one byte of a token. Rule 1, the models trained before
 * rule 2: every non-ASCII byte is part of a token. */
static size_t text_cp(const char *s, const char *end, int rule, bool *sep) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x80 || rule < 2) {
        *sep = c < 0x80 && !((c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'));
        return 1;
    }
    uint32_t cp;
    size_t len = cb_utf8_decode(s, (size_t)(end - s), &cp);
    *sep = len && unicode_separator(cp);
    return len ? len : 1;
}

size_t cb_text_token(const char **p, const char *end, char *buf, size_t cap) {
    return cb_text_token_rule(p, end, buf, cap, CB_TEXT_TOKEN_RULE);
}

size_t cb_text_token_rule(const char **p, const char *end, char *buf, size_t cap, int rule) {
    for (;;) {
        const char *s = *p;
        bool sep = true;
        size_t l = 0;
        while (s < end && (l = text_cp(s, end, rule, &sep), sep)) s += l;
        const char *t = s;
        while (t < end && (l = text_cp(t, end, rule, &sep), !sep)) t += l;
        *p = t;
        if (s == end || cap < 2) return 0;
        size_t n = (size_t)(t - s);
        if (n == 1) continue;
        if (n >= cap) { /* cut at a code point boundary */
            n = cap - 1;
            while (n && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        return cb_utf8_fold(buf);
    }
}
