/* loader — plumbing shared by the dataset loaders (movielens.c, generic.c,
 * course_lab.c): the loader context that owns half-built state until a load
 * succeeds (loader.c), and the one ratings-file reader every layout goes
 * through (ratings_file.c), so strictness, error messages and speed are the
 * same everywhere. Internal to libcbrec; not installed. */
#ifndef CB_LOADER_H
#define CB_LOADER_H

#include "base/csv.h"
#include "data/dataset.h"
#include "data/table.h"
#include "data/textutil.h"

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
    bool implicit;                       /* the ratings file is events (no rating column) */
    bool weighted;                       /* implicit with a weight column */
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
    int col_user, col_item, col_rating, col_ts; /* field positions, -1 = absent */
    /* Implicit events: no rating column (col_rating = -1); every row is y = 1,
     * or its weight when col_weight >= 0 (a finite number >= 0). */
    int col_weight;
    /* With a header: the names of the user, item, rating and timestamp
     * columns (case-insensitive; NULL = by position). The header decides the
     * positions, whatever its order; a missing name is an error. */
    const char *names[4];
    /* The n_fields names of the fields in file order (the header's or the
     * schema's), for the dataset's ratings_layout; NULL: none (a role's
     * MovieLens name, "userId", ...). */
    char *const *field_names;
} cb_ratings_spec;
void cb_ratings_spec_init(cb_ratings_spec *sp, const char *path);
/* *out = *sp with the column positions its header gives for sp->names (any
 * order; a missing or repeated name is CB_EPARSE naming the file). No names:
 * a plain copy. cb_ld_read_ratings does it itself; callers that keep the spec
 * (for cb_ld_finish's messages) resolve first. */
int cb_ratings_spec_resolve(const cb_ratings_spec *sp, cb_ratings_spec *out, cb_error *err);

/* Read a ratings file, appending to L->ds. Item (user) ids must already be
 * known when L->items_file (L->users_file) is set. Without a rating column
 * the file is implicit events: L->implicit is set (and L->weighted with a
 * weight column), and cb_ld_finish merges repeated (user, item) events. */
int cb_ld_read_ratings(cb_loader *L, const cb_ratings_spec *sp, cb_error *err);

/* Validate and complete the dataset: duplicate (user, item) pairs (unless
 * prejoined; merged for implicit events), implicit and binary flags and range, table padding, titles, roles. On success
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

/* Length of the field s[0, n) quoted in a message: at most 40 bytes, never
 * ending inside a UTF-8 sequence (use with "%.*s"; a cut "é" made the message
 * invalid UTF-8, which Python could not even decode). */
static inline int cb_clip_len(const char *s, size_t n) {
    size_t keep = n > 40 ? 40 : n;
    while (keep < n && keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80) keep--;
    return (int)keep;
}
#define CLIP(s, n) cb_clip_len((s), (n))

#endif /* CB_LOADER_H */
