/* textutil — small text and file helpers shared by the loaders and the
 * synthetic writer (textutil.c), and the inline number parsers the ratings
 * reader runs once per field. Internal to libcbrec. */
#ifndef CB_TEXTUTIL_H
#define CB_TEXTUTIL_H

#include "base/util.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

char *cb_path_join(const char *dir, const char *name, cb_error *err);
/* cb_utf8_fold (cbrec.h): final sigma folds to sigma; other code points
 * than its scripts' capitals (and invalid bytes) are unchanged. */
/* The next token of a text at *p (before end): a maximal run of letters and
 * digits (any non-ASCII code point but Unicode spaces and punctuation, such
 * as curly quotes, dashes and CJK punctuation, counts as a letter), case-folded into
 * buf[cap] (NUL-terminated, cut at a code point boundary), tokens of one
 * ASCII character skipped. Advances *p; returns the token's length, 0 at the end. */
size_t cb_text_token(const char **p, const char *end, char *buf, size_t cap);
/* The same by tokenising rule `rule`: 2 (CB_TEXT_TOKEN_RULE, the above) or
 * 1, a model's made before Unicode spaces and punctuation separated tokens
 * (every non-ASCII byte part of a token): its text features are read as it
 * was trained (features.h keeps each text block's rule in the model file). */
#define CB_TEXT_TOKEN_RULE 2
size_t cb_text_token_rule(const char **p, const char *end, char *buf, size_t cap, int rule);
bool cb_file_exists(const char *path);
/* Drop leading and trailing spaces, tabs and CRs from [*s, *s + *n). */
void cb_trim(const char **s, size_t *n);
/* Year from the last 4 digits of a date like "01-Jan-1995"; NAN when none. */
float cb_year_from_date(const char *s, size_t len);
/* Strict float parse with a fast path for plain decimals (same result as
 * cb_parse_float, bit for bit). Inline: it runs once per rating.
 * Plain [-]digits[.digits] with at most 15 significant digits: the mantissa
 * and the power of ten are exact doubles, so one division is correctly rounded
 * and equals strtod's result; the cast to float then matches cb_parse_float.
 * Anything else takes the strict slow path. */
static inline bool cb_fast_float(const char *s, size_t len, float *out) {
    static const double p10[16] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    size_t i = 0;
    bool neg = false;
    if (len && (s[0] == '-' || s[0] == '+')) neg = s[0] == '-', i = 1;
    uint64_t mant = 0;
    int digits = 0, frac = 0;
    bool dot = false, any = false;
    for (; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d < 10) {
            mant = mant * 10 + d;
            digits += mant != 0;
            frac += dot;
            any = true;
        } else if (s[i] == '.' && !dot) {
            dot = true;
        } else {
            return cb_parse_float(s, len, out);
        }
    }
    if (!any || digits > 15 || frac > 15) return cb_parse_float(s, len, out);
    double d = (double)mant / p10[frac];
    *out = (float)(neg ? -d : d);
    return true;
}

/* Strict non-negative integer that fits 32 bits (leading '+' and spaces as cb_parse_i64). */
static inline bool cb_fast_u32(const char *s, size_t len, uint32_t *out) {
    if (len == 0 || len > 10) goto slow;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d >= 10) goto slow;
        v = v * 10 + d;
    }
    if (v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
slow:;
    int64_t w;
    if (!cb_parse_i64(s, len, &w) || w < 0 || w > (int64_t)UINT32_MAX) return false;
    *out = (uint32_t)w;
    return true;
}
/* Case-insensitive ASCII equality of [s, s+len) with the NUL-terminated `lit`. */
bool cb_ieq(const char *s, size_t len, const char *lit);
/* CB_EPARSE ("file:line: ...") when a header record's field holds a carriage
 * return: the file's lines end in a lone CR (classic Mac, Excel's "CSV
 * (Macintosh)"), which the reader takes as data, so the file is one line and
 * the header names columns such as "rating\r1"; else CB_OK. */
int cb_header_lone_cr(const char *name, size_t line, char *const *fields, const size_t *lens, size_t n,
                      cb_error *err);
/* US region from a zip code: "0".."9" for a 5-digit (or ZIP+4) US zip, "other" otherwise. */
const char *cb_zip_region(const char *zip, size_t len);

#endif /* CB_TEXTUTIL_H */
