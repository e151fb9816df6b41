/* features_range — the one place user-given numbers (a new user's or a new
 * item's attributes: the new-user JSON, the add-item JSON, the HTTP bodies)
 * are checked against the statistics the features were fitted on, and a new
 * user's categorical values against the levels they were fitted on. A number
 * far outside them (`{"age": 1e30}`, `"year": 1e30`) would saturate the
 * towers and make every item score the same, or give an all-zero vector: it
 * is refused with the attribute, its value and the accepted range. */
#include "features/features_internal.h"

#include <math.h>
#include <string.h>

/* How many fitted standard deviations from the fitted mean a user-given value
 * may lie. Chebyshev: at most 1/400 of any training column lies beyond 20 sd,
 * so real values pass; 1e30 (or a year 20 000) does not. */
#define RANGE_MAX_SD 20.0
#define AGE_MAX 150.0 /* the age-bucket block has no mean/sd of its own */

static int block_of(const fside *s, const char *name) {
    for (uint32_t b = 0; b < s->n_blocks; b++)
        if (s->blocks[b].col && !strcmp(s->blocks[b].col, name)) return (int)b;
    return -1;
}

/* CB_OK, or CB_EINVAL naming `name` when v is outside block b's fitted range. */
static int check_value(const fside *s, const fblock *b, const char *name, double v, cb_error *err) {
    if (isnan(v)) return CB_OK; /* "missing": filled with the training mean */
    if (!isfinite(v)) return cb_fail(err, CB_EINVAL, "'%s' is not a finite number", name);
    if (b->type == B_AGE_BUCKETS) {
        if (v < 0 || v > AGE_MAX)
            return cb_fail(err, CB_EINVAL, "'%s' = %g is not an age (accepted 0..%g)", name, v, AGE_MAX);
        return CB_OK;
    }
    if (b->type != B_NUM && b->type != B_YEAR && b->type != B_RAW) return CB_OK;
    double mean = s->mean[b->offset], sd = s->std[b->offset];
    /* pre-joined 0/1 columns: 1 is a legitimate input however rare it was */
    if (b->type == B_RAW && (v == 0.0 || v == 1.0)) return CB_OK;
    double lo = mean - RANGE_MAX_SD * sd, hi = mean + RANGE_MAX_SD * sd;
    if (v < lo || v > hi)
        return cb_fail(err, CB_EINVAL,
                       "'%s' = %g is outside what the model was fitted on (mean %.4g, sd %.4g; accepted %.4g..%.4g)",
                       name, v, mean, sd, lo, hi);
    return CB_OK;
}

int cb_features_check_input(const cb_features *f, bool user, const cb_attr_value *attrs, size_t n_attrs, double year,
                            cb_error *err) {
    if (!f) return CB_OK;
    const fside *s = user ? &f->user : &f->item;
    for (size_t k = 0; k < n_attrs; k++) {
        const cb_attr_value *a = &attrs[k];
        int bi = a->name ? block_of(s, a->name) : -1;
        if (bi < 0) continue; /* unknown names are cb_features_new_*'s to report */
        double v = a->num;
        if (a->str && !cb_parse_double(a->str, strlen(a->str), &v)) continue; /* a level, not a number */
        int rc = check_value(s, &s->blocks[bi], a->name, v, err);
        if (rc) return rc;
    }
    if (user) return CB_OK;
    for (uint32_t b = 0; b < s->n_blocks; b++) {
        const fblock *blk = &s->blocks[b];
        bool is_year = blk->type == B_YEAR || (blk->type == B_RAW && blk->col && !strcmp(blk->col, "year"));
        int rc = is_year ? check_value(s, blk, "year", year, err) : CB_OK;
        if (rc) return rc;
    }
    return CB_OK;
}

int cb_features_check_user_levels(const cb_features *f, const cb_attr_value *attrs, size_t n_attrs, bool strict,
                                  char *notes, size_t notes_size, cb_error *err) {
    if (!f) return CB_OK;
    for (size_t k = 0; k < n_attrs; k++) {
        const cb_attr_value *a = &attrs[k];
        int bi = a->name ? block_of(&f->user, a->name) : -1;
        const fblock *b = bi >= 0 ? &f->user.blocks[bi] : NULL;
        if (!b || (b->type != B_CAT && b->type != B_MULTI) || !b->vocab) continue;
        char numbuf[64];
        const char *str = a->str;
        if (!str && isnan(a->num)) continue; /* missing */
        if (!str) str = cb_number_text(a->num, numbuf, sizeof numbuf); /* as the features read it */
        for (const char *p = str;;) { /* the values as cb_features_new_user splits them */
            const char *q = b->type == B_MULTI ? strchr(p, '|') : NULL;
            size_t len = q ? (size_t)(q - p) : strlen(p);
            if (len && cb_vocab_find(b->vocab, p, len) < 0) {
                char why[96];
                cb_feat_why_unknown(b->n_levels, b->type == B_CAT ? f->cfg.max_cat_levels : f->cfg.max_multi_levels, why,
                                    sizeof why);
                if (strict)
                    return cb_fail(err, CB_ENOTFOUND, "unknown value '%.*s' of '%s'%s", (int)(len > 80 ? 80 : len), p,
                                   a->name, why);
                cb_feat_note_append(notes, notes_size, a->name, p, len, why);
            }
            if (!q) break;
            p = q + 1;
        }
    }
    return CB_OK;
}
