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

