/* dataset_internal — plumbing shared by the dataset loaders (dataset.c,
 * dataset_movielens.c, dataset_generic.c): a growable builder for attribute
 * tables, the loader context that owns half-built state until a load
 * succeeds, and the one ratings-file reader every layout goes through (so
 * strictness, error messages and speed are the same everywhere).
 * Internal to libcbrec; not installed. */
#ifndef CB_DATASET_INTERNAL_H
#define CB_DATASET_INTERNAL_H

#include "base/csv.h"
#include "data/dataset.h"

/* ---- Attribute-table builder. The table itself lives in the dataset (so
 * cb_dataset_free releases it on any error path); the builder only tracks
 * capacities. Rows may be filled in any order for NUMERIC and CATEGORICAL
 * columns; MULTI rows must be appended in non-decreasing row order. Unset
 * cells are missing (NAN / CB_MISSING / no levels). */
typedef struct cb_colcap {
    uint32_t n_rows, cap_rows;
    size_t cap_val;
} cb_colcap;

typedef struct cb_tabbuild {
    cb_table *t;
    cb_colcap *caps; /* [cap_cols] */
    uint32_t cap_cols;
} cb_tabbuild;

void cb_tb_init(cb_tabbuild *b, cb_table *t);
void cb_tb_release(cb_tabbuild *b); /* frees builder state only, never the table */
/* Add a column; returns its index (>= 0) or a negative CB_E* code. */
int cb_tb_add_col(cb_tabbuild *b, const char *name, cb_col_kind kind, cb_error *err);
int cb_tb_set_num(cb_tabbuild *b, int col, uint32_t row, float v, cb_error *err);
int cb_tb_set_cat(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err);
/* Append one level to a MULTI row (duplicates within a row are dropped). */
int cb_tb_add_multi(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err);
/* Split `s` on `sep` and add every non-empty, trimmed piece to the row. */
int cb_tb_add_multi_split(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len,
                          const char *sep, cb_error *err);
/* Pad every column to n_rows and set t->n_rows. */
int cb_tb_finish(cb_tabbuild *b, uint32_t n_rows, cb_error *err);

/* ---- Loader context: everything a load owns until it succeeds. */
typedef struct cb_loader {
    cb_dataset *ds;
    cb_load_options opt;
    cb_tabbuild users, items;
    char **titles;      /* [cap_titles], zero-filled; moved into ds by cb_ld_finish */
    size_t cap_titles;
    const char *items_file, *users_file; /* names for "unknown id" messages, NULL = none */
    bool declared_range;                 /* y_min/y_max came from options or schema */
    bool declared_binary;
} cb_loader;

/* Create the dataset and context. `name` is the layout name. */
int cb_ld_begin(cb_loader *L, const char *name, const char *path, const cb_load_options *opt,
                cb_error *err);
/* Free everything (after an error). */
void cb_ld_abort(cb_loader *L);
int cb_ld_set_title(cb_loader *L, uint32_t item, const char *s, size_t len, cb_error *err);
/* Declare the valid rating range unless the caller's options already did. */
void cb_ld_default_range(cb_loader *L, float y_min, float y_max);

/* ---- Ratings files. */
typedef struct cb_ratings_spec {
    const char *path;
    cb_csv_options csv;
    bool header;          /* the first record is a header */
    size_t n_fields;      /* exact fields per record; 0 = at least the used ones */
    int col_user, col_item, col_rating, col_ts; /* field positions, -1 = absent
                                                   (no rating column: every row is y = 1) */
} cb_ratings_spec;
void cb_ratings_spec_init(cb_ratings_spec *sp, const char *path);

/* Read a ratings file, appending to L->ds. Item (user) ids must already be
 * known when L->items_file (L->users_file) is set. */
int cb_ld_read_ratings(cb_loader *L, const cb_ratings_spec *sp, cb_error *err);

/* Validate and complete the dataset: duplicate (user, item) pairs (unless
 * prejoined), binary flag and range, table padding, titles, roles. On success
 * *out owns the dataset and L is emptied. `sp` (may be NULL) names the ratings
 * file for duplicate messages. */
int cb_ld_finish(cb_loader *L, const cb_ratings_spec *sp, cb_dataset **out, cb_error *err);

/* ---- Bad rows. In a loader's row loop: fail with a "file:line: reason"
 * message, or, under skip_bad_rows, count the row and move on. The function
 * needs `cb_loader *L`, `int rc`, `cb_error *err`, a `next_row:` label at the
 * end of its loop body and a `done:` label that releases what it holds. */
#define BAD_ROW(...)                                   \
    do {                                               \
        if (L->opt.skip_bad_rows) {                    \
            L->ds->n_skipped++;                        \
            goto next_row;                             \
        }                                              \
        rc = cb_fail(err, CB_EPARSE, __VA_ARGS__);     \
        goto done;                                     \
    } while (0)

/* Length of a field quoted in a message: at most 40 bytes (use with "%.*s"). */
#define CLIP(n) ((int)((n) > 40 ? 40 : (n)))

/* ---- Small helpers. */
char *cb_path_join(const char *dir, const char *name, cb_error *err);
bool cb_file_exists(const char *path);
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
/* Read an entire small text file (schema, header files). *len excludes the added NUL. */
int cb_read_small_file(const char *path, char **out, size_t *len, size_t max_len, cb_error *err);
/* US region from a zip code: "0".."9" for a 5-digit (or ZIP+4) US zip, "other" otherwise. */
const char *cb_zip_region(const char *zip, size_t len);

/* Layout loaders (path is the directory). */
int cb_load_ml_small(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
int cb_load_ml_100k(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
int cb_load_ml_1m(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
int cb_load_course_lab(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
/* schema_path: the schema file; dir: where relative file names resolve. */
int cb_load_generic(cb_dataset **out, const char *dir, const char *schema_path,
                    const cb_load_options *opt, cb_error *err);
/* A folder holding only ratings.csv: generic with default settings. */
int cb_load_ratings_only(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);

#endif /* CB_DATASET_INTERNAL_H */
