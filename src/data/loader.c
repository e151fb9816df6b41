/* loader — the loader context every layout loader goes through: it owns the
 * half-built dataset until a load succeeds (cb_ld_begin / cb_ld_abort), and
 * cb_ld_finish runs the final validation pass (duplicate (user, item) pairs,
 * the rating range and binary flag, table padding, titles, column roles).
 * The ratings-file reader is ratings_file.c.
 *
 * Duplicate (user, item) detection is O(n) with a per-item marker, and on the
 * rare error path the file is re-scanned to name both lines. */
#include "data/loader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- loader context */

int cb_ld_begin(cb_loader *L, const char *name, const char *path, const cb_load_options *opt,
                cb_error *err) {
    memset(L, 0, sizeof *L);
    if (opt) L->opt = *opt;
    else cb_load_options_default(&L->opt);
    if (!(L->opt.y_min == 0 && L->opt.y_max == 0)) {
        if (!(L->opt.y_min <= L->opt.y_max) || !isfinite(L->opt.y_min) || !isfinite(L->opt.y_max))
            return cb_fail(err, CB_EINVAL, "invalid rating range [%g, %g]", L->opt.y_min, L->opt.y_max);
        L->declared_range = true;
    }
    cb_dataset *ds = cb_calloc(1, sizeof *ds, err);
    if (!ds) return CB_ENOMEM;
    L->ds = ds;
    ds->user_lead_cols = ds->item_lead_cols = 0;
    ds->y_min = L->opt.y_min;
    ds->y_max = L->opt.y_max;
    cb_tb_init(&L->users, &ds->user_attr);
    cb_tb_init(&L->items, &ds->item_attr);
    ds->name = cb_strdup(name, err);
    ds->path = cb_strdup(path, err);
    ds->users = cb_vocab_create(err);
    ds->items = cb_vocab_create(err);
    if (!ds->name || !ds->path || !ds->users || !ds->items) {
        cb_ld_abort(L);
        return CB_ENOMEM;
    }
    return CB_OK;
}

void cb_ld_abort(cb_loader *L) {
    for (size_t i = 0; i < L->cap_titles; i++) free(L->titles[i]);
    free(L->titles);
    L->titles = NULL;
    L->cap_titles = 0;
    cb_tb_release(&L->users);
    cb_tb_release(&L->items);
    cb_dataset_free(L->ds);
    L->ds = NULL;
}

int cb_ld_set_title(cb_loader *L, uint32_t item, const char *s, size_t len, cb_error *err) {
    if (item >= L->cap_titles) {
        size_t cap = L->cap_titles ? L->cap_titles : 256;
        while (cap <= item) cap *= 2;
        char **p = cb_realloc_array(L->titles, cap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        memset(p + L->cap_titles, 0, (cap - L->cap_titles) * sizeof *p);
        L->titles = p;
        L->cap_titles = cap;
    }
    free(L->titles[item]);
    L->titles[item] = cb_strndup(s, len, err);
    return L->titles[item] ? CB_OK : CB_ENOMEM;
}

void cb_ld_default_range(cb_loader *L, float y_min, float y_max) {
    if (L->declared_range) return;
    L->opt.y_min = y_min;
    L->opt.y_max = y_max;
    L->declared_range = true;
}

/* ---------------------------------------------------------- ratings reader */

void cb_ratings_spec_init(cb_ratings_spec *sp, const char *path) {
    memset(sp, 0, sizeof *sp);
    sp->path = path;
    cb_csv_options_default(&sp->csv);
    sp->col_user = 0;
    sp->col_item = 1;
    sp->col_rating = 2;
    sp->col_ts = 3;
    sp->col_weight = -1;
}

/* The ratings file's row layout from the spec its rows were read with. */
static int layout_from_spec(cb_ratings_layout *l, const cb_ratings_spec *sp, cb_error *err) {
    static const char *const role_names[] = {"", "userId", "movieId", "rating", "timestamp", "weight"};
    const int cols[] = {sp->col_user, sp->col_item, sp->col_rating, sp->col_ts, sp->col_weight};
    size_t n = sp->n_fields;
    for (int k = 0; k < 5; k++)
        if (cols[k] >= 0 && (size_t)cols[k] >= n) n = (size_t)cols[k] + 1;
    l->roles = cb_calloc(n + 1, sizeof *l->roles, err);
    l->names = cb_calloc(n + 1, sizeof *l->names, err);
    if (!l->roles || !l->names) return cb_ratings_layout_free(l), CB_ENOMEM;
    l->n_fields = n;
    for (int k = 0; k < 5; k++)
        if (cols[k] >= 0) l->roles[cols[k]] = (cb_field_role)(CB_FIELD_USER + k);
    for (size_t i = 0; i < n; i++)
        if (!(l->names[i] = cb_strdup(sp->field_names ? sp->field_names[i] : role_names[l->roles[i]], err)))
            return cb_ratings_layout_free(l), CB_ENOMEM;
    snprintf(l->delim, sizeof l->delim, "%s", sp->csv.delim ? sp->csv.delim : ",");
    l->header = sp->header;
    l->quoting = sp->csv.quoting != 0;
    return CB_OK;
}

/* ------------------------------------------------------------ final checks */

/* Re-scan the ratings file for the two lines holding (user, item). Only runs
 * on the error path, so the fast path never stores line numbers. */
static void find_dup_lines(const cb_ratings_spec *sp, const char *u, const char *it, size_t *first,
                           size_t *second) {
    *first = *second = 0;
    cb_csv *c = NULL;
    cb_error e;
    if (cb_csv_open(&c, sp->path, &sp->csv, &e)) return;
    char **f;
    size_t *fl, nf;
    size_t ul = strlen(u), il = strlen(it);
    bool skip = sp->header;
    while (cb_csv_next(c, &f, &fl, &nf, &e) > 0) {
        if (skip) {
            skip = false;
            continue;
        }
        if ((size_t)sp->col_user >= nf || (size_t)sp->col_item >= nf) continue;
        if (fl[sp->col_user] == ul && fl[sp->col_item] == il && !memcmp(f[sp->col_user], u, ul) &&
            !memcmp(f[sp->col_item], it, il)) {
            if (!*first) *first = cb_csv_line(c);
            else {
                *second = cb_csv_line(c);
                break;
            }
        }
    }
    cb_csv_close(c);
}

/* The range of the ratings, gathered by check_duplicates when it can. */
typedef struct y_range {
    float lo, hi;
    bool binary;
    bool valid; /* false: not gathered, or ratings were dropped since */
} y_range;

/* Scratch of the duplicate scan: a per-item marker holding the last user
 * seen while going through each user's ratings in user order. */
typedef struct dup_scan {
    cb_rating *r;
    uint32_t *mark;   /* [n_items + 1] last user seen per item */
    uint32_t *first;  /* [n_items] merging: that user's first event of the item; else NULL */
    uint8_t *drop;    /* [n] later duplicates to drop (skipping or merging); else NULL */
    size_t n_dup, first_dup;
    bool weighted;    /* merging: sum the weights (else keep the first event's 1) */
    bool last;        /* merging ratings: the later row's rating and time replace the first's */
} dup_scan;

static void dup_scan_reset(dup_scan *d, uint32_t n_items, size_t n) {
    memset(d->mark, 0xff, ((size_t)n_items + 1) * sizeof *d->mark);
    if (d->drop) memset(d->drop, 0, n);
    d->n_dup = 0;
    d->first_dup = SIZE_MAX;
}

/* Rating i in user order: a new (user, item) pair, or a duplicate to count,
 * mark for dropping and, when merging, fold into the pair's first event
 * (weights summed, the earliest timestamp kept; a re-rating under `last`:
 * its rating and time, the pair keeping the first row's place). */
static inline void dup_visit(dup_scan *d, size_t i) {
    cb_rating *r = d->r;
    uint32_t u = r[i].user, it = r[i].item;
    if (d->mark[it] != u) {
        d->mark[it] = u;
        if (d->first) d->first[it] = (uint32_t)i;
        return;
    }
    if (d->first_dup == SIZE_MAX) d->first_dup = i;
    if (d->drop) d->drop[i] = 1;
    d->n_dup++;
    if (d->first) {
        cb_rating *keep = &r[d->first[it]];
        if (d->last) keep->y = r[i].y, keep->ts = r[i].ts;
        else if (d->weighted) keep->y += r[i].y;
        if (!d->last && r[i].ts < keep->ts) keep->ts = r[i].ts;
    }
}

/* One pass in file order, which is user order when the file is grouped by
 * user (MovieLens, most exports: ids are numbered as they first appear, so
 * user indices do not decrease). Gathers the rating range on the way; false
 * at the first rating out of user order. */
static bool scan_grouped(dup_scan *d, size_t n, y_range *range) {
    const cb_rating *r = d->r;
    float lo = INFINITY, hi = -INFINITY;
    bool binary = true;
    uint32_t prev_user = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = r[i].user;
        float y = r[i].y;
        if (u < prev_user) return false;
        prev_user = u;
        if (y < lo) lo = y;
        if (y > hi) hi = y;
        if (y != 0.0f && y != 1.0f) binary = false;
        dup_visit(d, i);
    }
    *range = (y_range){lo, hi, binary, d->n_dup == 0};
    return true;
}

/* Rating indices in user order (a stable counting sort), into *order. */
static int user_order(const cb_dataset *ds, uint32_t **order, cb_error *err) {
    const cb_rating *r = ds->ratings;
    size_t n = ds->n_ratings;
    uint32_t n_users = cb_vocab_size(ds->users);
    uint32_t *start = cb_calloc((size_t)n_users + 1, sizeof *start, err);
    *order = cb_malloc((n ? n : 1) * sizeof **order, err);
    if (!start || !*order) {
        free(start);
        return CB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) start[r[i].user + 1]++;
    for (uint32_t u = 0; u < n_users; u++) start[u + 1] += start[u];
    for (size_t i = 0; i < n; i++) (*order)[start[r[i].user]++] = (uint32_t)i;
    free(start);
    return CB_OK;
}

/* Duplicate (user, item) pairs. Ratings: the first met is reported, or
 * under skip_bad_rows (or duplicates first) later duplicates are dropped;
 * under duplicates last each is folded into the pair's first row as a
 * re-rating. Implicit events: later duplicates are merged into the first
 * (see dup_visit), counted in n_merged; ratings folded by choice, in n_folded.
 * Files not grouped by user are visited through a counting sort of rating
 * indices (stable: a pair's rows in file order). */
static int check_duplicates(cb_loader *L, const cb_ratings_spec *sp, y_range *range, cb_error *err) {
    cb_dataset *ds = L->ds;
    uint32_t n_items = cb_vocab_size(ds->items);
    size_t n = ds->n_ratings;
    const bool last = !L->implicit && L->opt.duplicates == CB_DUPLICATES_LAST,
               chosen = L->implicit || L->opt.duplicates != CB_DUPLICATES_ERROR, /* not bad rows */
               skip = L->opt.skip_bad_rows || chosen, merge = L->implicit || last;
    int rc = CB_OK;
    uint32_t *order = NULL;
    dup_scan d = {.r = ds->ratings, .weighted = L->weighted, .last = last};
    d.drop = skip || merge ? cb_calloc(n ? n : 1, 1, err) : NULL;
    d.mark = cb_malloc(((size_t)n_items + 1) * sizeof *d.mark, err);
    if (!d.mark || ((skip || merge) && !d.drop)) {
        rc = CB_ENOMEM;
        goto done;
    }
    dup_scan_reset(&d, n_items, n);
    bool grouped = scan_grouped(&d, n, range);
    if (!grouped) { /* start over in user order */
        dup_scan_reset(&d, n_items, n);
        if ((rc = user_order(ds, &order, err))) goto done;
        for (size_t k = 0; k < n && (skip || !d.n_dup); k++) dup_visit(&d, order[k]);
    }
    if (d.n_dup && merge) { /* once more, folding each duplicate into its first event */
        d.first = cb_malloc(((size_t)n_items + 1) * sizeof *d.first, err);
        if (!d.first) {
            rc = CB_ENOMEM;
            goto done;
        }
        dup_scan_reset(&d, n_items, n);
        for (size_t k = 0; k < n; k++) dup_visit(&d, order ? order[k] : k);
        range->valid = false; /* merged weights, replaced ratings: gathered again by the caller */
    }
    if (d.n_dup && !skip && !merge) {
        const cb_rating *r = ds->ratings;
        const char *un = cb_vocab_name(ds->users, r[d.first_dup].user);
        const char *in = cb_vocab_name(ds->items, r[d.first_dup].item);
        size_t l1 = 0, l2 = 0;
        if (!sp) { /* ratings from memory (dataset_arrays.c): named by position, as its other rows are */
            size_t first = 0; /* nothing was skipped (else no error): rows are at their given positions */
            while (first < d.first_dup && (r[first].user != r[d.first_dup].user || r[first].item != r[d.first_dup].item))
                first++;
            rc = cb_fail(err, CB_EPARSE, "%s: ratings[%zu]: duplicate rating for user '%s' and item '%s' (first at [%zu])",
                         ds->path, d.first_dup, un, in, first);
            goto done;
        }
        find_dup_lines(sp, un, in, &l1, &l2);
        rc = cb_fail(err, CB_EPARSE, "%s:%zu: duplicate rating for user '%s' and item '%s' (first at line %zu)",
                     sp->path, l2, un, in, l1);
        goto done;
    }
    if (d.n_dup) {
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (!d.drop[i]) ds->ratings[w++] = ds->ratings[i];
        ds->n_ratings = w;
        if (L->implicit) ds->n_merged += d.n_dup;
        else if (chosen) ds->n_folded += d.n_dup;
        else ds->n_skipped += d.n_dup;
    }
done:
    free(order);
    free(d.mark);
    free(d.first);
    free(d.drop);
    return rc;
}

static int find_role(const cb_table *t, cb_col_kind kind, const char *const *names) {
    for (const char *const *nm = names; *nm; nm++)
        for (uint32_t i = 0; i < t->n_cols; i++)
            if (t->cols[i].kind == kind && cb_ieq(t->cols[i].name, strlen(t->cols[i].name), *nm))
                return (int)i;
    return -1;
}

static void resolve_roles(cb_dataset *ds) {
    static const char *const genres[] = {"genres", "genre", NULL};
    static const char *const year[] = {"year", "release year", NULL};
    static const char *const age[] = {"age", NULL};
    static const char *const gender[] = {"gender", "sex", NULL};
    static const char *const occupation[] = {"occupation", "job", NULL};
    static const char *const location[] = {"region", "country", "location", "state", NULL};
    ds->roles.item_genres = find_role(&ds->item_attr, CB_COL_MULTI, genres);
    ds->roles.item_year = find_role(&ds->item_attr, CB_COL_NUMERIC, year);
    ds->roles.user_age = find_role(&ds->user_attr, CB_COL_NUMERIC, age);
    ds->roles.user_gender = find_role(&ds->user_attr, CB_COL_CATEGORICAL, gender);
    ds->roles.user_occupation = find_role(&ds->user_attr, CB_COL_CATEGORICAL, occupation);
    ds->roles.user_location = find_role(&ds->user_attr, CB_COL_CATEGORICAL, location);
}

/* Under unlisted-users keep, a users file none of whose users rated is the
 * wrong file or ids spelt otherwise ("7" and "u7"): every user's attributes
 * would be missing. The listed users come first (the users file is read
 * before the ratings). */
static int some_user_listed(const cb_loader *L, cb_error *err) {
    const cb_dataset *ds = L->ds;
    uint32_t listed = cb_dataset_n_users(ds) - (uint32_t)ds->n_unlisted;
    for (size_t i = 0; i < ds->n_ratings; i++)
        if (ds->ratings[i].user < listed) return CB_OK;
    return cb_fail(err, CB_EPARSE, "%s: none of the ratings' %zu users is in %s (are the ids written alike in both "
                   "files?)", ds->path, ds->n_unlisted, L->users_file);
}

int cb_ld_finish(cb_loader *L, const cb_ratings_spec *sp, cb_dataset **out, cb_error *err) {
    cb_dataset *ds = L->ds;
    int rc;
    y_range range = {0};
    if (!ds->prejoined) {
        rc = check_duplicates(L, sp, &range, err);
        if (rc) goto fail;
    }
    if (ds->n_ratings == 0) {
        rc = cb_fail(err, CB_EPARSE, "%s: no ratings", ds->path);
        goto fail;
    }
    if (sp && (rc = layout_from_spec(&ds->ratings_layout, sp, err))) goto fail;
    if (ds->n_unlisted && (rc = some_user_listed(L, err))) goto fail;
    /* Shrink the ratings array to its size: exactly 16 bytes per rating. */
    if (ds->cap_ratings > ds->n_ratings) {
        cb_rating *p = realloc(ds->ratings, ds->n_ratings * sizeof *p);
        if (p) {
            ds->ratings = p;
            ds->cap_ratings = ds->n_ratings;
        }
    }
    if (!range.valid) {
        range = (y_range){INFINITY, -INFINITY, true, true};
        for (size_t i = 0; i < ds->n_ratings; i++) {
            float y = ds->ratings[i].y;
            if (y < range.lo) range.lo = y;
            if (y > range.hi) range.hi = y;
            if (y != 0.0f && y != 1.0f) range.binary = false;
        }
    }
    float lo = range.lo, hi = range.hi;
    bool binary = range.binary;
    ds->binary = L->declared_binary || binary;
    ds->implicit = L->implicit;
    if (L->declared_range) {
        ds->y_min = L->opt.y_min;
        ds->y_max = L->opt.y_max;
    } else if (L->declared_binary) {
        ds->y_min = 0;
        ds->y_max = 1;
    } else {
        ds->y_min = lo;
        ds->y_max = hi;
    }
    uint32_t n_users = cb_vocab_size(ds->users), n_items = cb_vocab_size(ds->items);
    rc = cb_tb_finish(&L->users, n_users, err);
    if (!rc) rc = cb_tb_finish(&L->items, n_items, err);
    if (rc) goto fail;
    if (L->titles) {
        if (L->cap_titles < n_items) {
            rc = cb_ld_set_title(L, n_items - 1, "", 0, err); /* grows and zero-fills */
            if (rc) goto fail;
            free(L->titles[n_items - 1]);
            L->titles[n_items - 1] = NULL;
        }
        for (size_t i = n_items; i < L->cap_titles; i++) free(L->titles[i]);
        ds->titles = L->titles;
        L->titles = NULL;
        L->cap_titles = 0;
    }
    resolve_roles(ds);
    cb_tb_release(&L->users);
    cb_tb_release(&L->items);
    *out = ds;
    L->ds = NULL;
    return CB_OK;
fail:
    cb_ld_abort(L);
    return rc;
}

