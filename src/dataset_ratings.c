/* dataset_ratings — the ratings-file reader every layout goes through, so
 * strictness, error messages and speed are the same everywhere.
 *
 * Ratings are appended into one pre-sized array (no per-row allocation),
 * numbers are parsed with a fast path that falls back to strtod only for
 * unusual spellings, numeric ids are resolved through a direct array, and the
 * user id of the previous row is remembered because rating files are grouped
 * by user. */
#include "dataset_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int cb_ld_read_ratings(cb_loader *L, const cb_ratings_spec *sp, cb_error *err) {
    cb_dataset *ds = L->ds;
    cb_csv *c = NULL;
    int rc = cb_csv_open(&c, sp->path, &sp->csv, err);
    if (rc) return rc;
    const char *name = cb_csv_name(c);
    char **f;
    size_t *fl, nf;
    size_t need = 0;
    int cols[4] = {sp->col_user, sp->col_item, sp->col_rating, sp->col_ts};
    for (int k = 0; k < 4; k++)
        if (cols[k] >= 0 && (size_t)cols[k] + 1 > need) need = (size_t)cols[k] + 1;
    size_t last_line = 0, n_before = ds->n_ratings, n_records = 0;
    /* The line number is only needed for messages: asked for lazily. */
#define LINE cb_csv_line(c)
    idmap user_map = {0}, item_map = {0};

    /* Pre-size from the file size: real rating lines are >= ~8 bytes. */
    struct stat st;
    if (stat(sp->path, &st) == 0 && st.st_size > 0) {
        size_t guess = ds->n_ratings + (size_t)st.st_size / 24 + 16;
        rc = ensure_ratings(ds, guess, err);
        if (rc) goto done;
    }
    if (sp->header) {
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc < 0) goto done;
        if (rc == 0) {
            rc = cb_fail(err, CB_EPARSE, "%s:1: empty file (expected a header and ratings)", name);
            goto done;
        }
        last_line = cb_csv_line(c);
        if (sp->n_fields && nf != sp->n_fields) {
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: header has %zu fields, expected %zu", name,
                         last_line, nf, sp->n_fields);
            goto done;
        }
    }

    rc = idmap_init(&user_map, ds->users, err);
    if (!rc) rc = idmap_init(&item_map, ds->items, err);
    if (rc) goto done;
    typedef struct yslot {
        uint32_t key, len;
        float y;
    } yslot;
    yslot ycache[64];
    memset(ycache, 0, sizeof ycache); /* len 0 = empty */
    char last_user[64];
    size_t last_user_len = SIZE_MAX;
    uint32_t last_user_idx = 0;
    bool check_range = L->declared_range;
    float lo = L->opt.y_min, hi = L->opt.y_max;
    for (;;) {
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc == 0) break;
        if (rc < 0) goto done;
        n_records++;
        if (sp->n_fields ? nf != sp->n_fields : nf < need)
            BAD_ROW("%s:%zu: expected %zu fields, found %zu", name, LINE, sp->n_fields ? sp->n_fields : need, nf);

        float y = 1.0f;
        if (sp->col_rating >= 0) {
            const char *s = f[sp->col_rating];
            size_t n = fl[sp->col_rating];
            /* Rating files spell few distinct values ("4.0", "3.5"): short
             * spellings already parsed are looked up instead of parsed. */
            if (n >= 1 && n <= 4) {
                uint32_t key = 0;
                memcpy(&key, s, n);
                yslot *e = &ycache[(key * 2654435761u) >> 26];
                if (e->len == n && e->key == key) {
                    y = e->y;
                } else {
                    if (!cb_fast_float(s, n, &y))
                        BAD_ROW("%s:%zu: rating '%.*s' is not a finite number", name, LINE, (int)n, s);
                    *e = (yslot){key, (uint32_t)n, y};
                }
            } else if (!cb_fast_float(s, n, &y)) {
                BAD_ROW("%s:%zu: rating '%.*s' is not a finite number", name, LINE, CLIP(n), s);
            }
            if (check_range && (y < lo || y > hi))
                BAD_ROW("%s:%zu: rating %g outside the declared range [%g, %g]", name, LINE, y, lo, hi);
            if (L->declared_binary && y != 0.0f && y != 1.0f)
                BAD_ROW("%s:%zu: label %g is not 0 or 1 (binary labels declared)", name, LINE, y);
        }
        uint32_t ts = 0;
        if (sp->col_ts >= 0) {
            const char *s = f[sp->col_ts];
            size_t n = fl[sp->col_ts];
            if (!cb_fast_u32(s, n, &ts))
                BAD_ROW("%s:%zu: timestamp '%.*s' is not an integer in [0, 4294967295]", name, LINE,
                        CLIP(n), s);
        }

        /* Ids: the user of the previous row is cached (files are grouped by user). */
        const char *us = f[sp->col_user], *is = f[sp->col_item];
        size_t ul = fl[sp->col_user], il = fl[sp->col_item];
        if (ul == 0) BAD_ROW("%s:%zu: empty user id", name, LINE);
        if (il == 0) BAD_ROW("%s:%zu: empty item id", name, LINE);
        uint32_t u, it;
        bool found;
        uint32_t val;
        if (ul == last_user_len && same_bytes(us, last_user, ul)) {
            u = last_user_idx;
        } else if (canon_num(us, ul, &val) && val < user_map.cap && user_map.slot[val]) {
            u = last_user_idx = user_map.slot[val] - 1;
            memcpy(last_user, us, ul);
            last_user_len = ul;
        } else {
            rc = id_lookup(ds->users, &user_map, L->users_file != NULL, us, ul, &u, &found, err);
            if (rc) goto done;
            if (!found)
                BAD_ROW("%s:%zu: unknown user id '%.*s' (not in %s)", name, LINE,
                        CLIP(ul), us, L->users_file);
            if (ul <= sizeof last_user) {
                memcpy(last_user, us, ul);
                last_user_len = ul;
                last_user_idx = u;
            } else {
                last_user_len = SIZE_MAX;
            }
        }
        if (canon_num(is, il, &val) && val < item_map.cap && item_map.slot[val]) {
            it = item_map.slot[val] - 1; /* the common case, inline */
            found = true;
        } else {
            rc = id_lookup(ds->items, &item_map, L->items_file != NULL, is, il, &it, &found, err);
            if (rc) goto done;
        }
        if (!found)
            BAD_ROW("%s:%zu: unknown item id '%.*s' (not in %s)", name, LINE,
                    CLIP(il), is, L->items_file);
        if (ds->n_ratings == ds->cap_ratings) {
            rc = ensure_ratings(ds, ds->n_ratings + 1, err);
            if (rc) goto done;
        }
        if (ds->n_ratings >= UINT32_MAX) {
            rc = cb_fail(err, CB_EINVAL, "%s:%zu: more than 4294967295 ratings", name, LINE);
            goto done;
        }
        cb_rating *r = &ds->ratings[ds->n_ratings++];
        r->user = u;
        r->item = it;
        r->y = y;
        r->ts = ts;
    next_row:;
    }
#undef LINE
    rc = CB_OK;
    if (n_records) last_line = cb_csv_line(c);
    if (ds->n_ratings == n_before)
        rc = cb_fail(err, CB_EPARSE, "%s:%zu: no ratings in file%s", name, last_line + 1,
                     ds->n_skipped ? " (every row was skipped as bad)" : "");
    if (sp->col_ts >= 0) ds->has_timestamps = true;
    if (sp->col_rating < 0) L->declared_binary = true;
done:
    free(user_map.slot);
    free(item_map.slot);
    cb_csv_close(c);
    return rc;
}
