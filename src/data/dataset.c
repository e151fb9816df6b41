/* dataset — the in-memory dataset: freeing and sizing it, layout detection,
 * the shared machinery every loader uses (table builder, the final validation
 * pass; the ratings-file reader itself is dataset_ratings.c; the splits are
 * split.c).
 *
 * Duplicate (user, item) detection is O(n) with a per-item marker, and on the
 * rare error path the file is re-scanned to name both lines. */
#include "data/dataset_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ basics */

void cb_load_options_default(cb_load_options *o) {
    memset(o, 0, sizeof *o);
}

uint32_t cb_dataset_n_users(const cb_dataset *ds) { return cb_vocab_size(ds->users); }
uint32_t cb_dataset_n_items(const cb_dataset *ds) { return cb_vocab_size(ds->items); }

int cb_table_find(const cb_table *t, const char *name) {
    for (uint32_t i = 0; i < t->n_cols; i++)
        if (t->cols[i].name && strcmp(t->cols[i].name, name) == 0) return (int)i;
    return -1;
}

static void table_free(cb_table *t) {
    for (uint32_t i = 0; i < t->n_cols; i++) {
        cb_column *c = &t->cols[i];
        free(c->name);
        free(c->num);
        free(c->cat);
        free(c->off);
        free(c->val);
        cb_vocab_free(c->levels);
    }
    free(t->cols);
    memset(t, 0, sizeof *t);
}

void cb_dataset_free(cb_dataset *ds) {
    if (!ds) return;
    if (ds->titles) {
        uint32_t n = cb_vocab_size(ds->items);
        for (uint32_t i = 0; i < n; i++) free(ds->titles[i]);
        free(ds->titles);
    }
    free(ds->name);
    free(ds->path);
    cb_vocab_free(ds->users);
    cb_vocab_free(ds->items);
    free(ds->ratings);
    table_free(&ds->user_attr);
    table_free(&ds->item_attr);
    free(ds);
}

static size_t table_bytes(const cb_table *t) {
    size_t b = (size_t)t->n_cols * sizeof(cb_column);
    for (uint32_t i = 0; i < t->n_cols; i++) {
        const cb_column *c = &t->cols[i];
        b += c->name ? strlen(c->name) + 1 : 0;
        if (c->kind == CB_COL_NUMERIC) b += (size_t)t->n_rows * sizeof(float);
        if (c->kind == CB_COL_CATEGORICAL) b += (size_t)t->n_rows * sizeof(uint32_t);
        if (c->kind == CB_COL_MULTI && c->off)
            b += ((size_t)t->n_rows + 1 + c->off[t->n_rows]) * sizeof(uint32_t);
        b += cb_vocab_bytes(c->levels);
    }
    return b;
}

size_t cb_dataset_bytes(const cb_dataset *ds) {
    size_t b = sizeof *ds;
    b += ds->cap_ratings * sizeof(cb_rating);
    b += cb_vocab_bytes(ds->users) + cb_vocab_bytes(ds->items);
    b += table_bytes(&ds->user_attr) + table_bytes(&ds->item_attr);
    if (ds->titles) {
        uint32_t n = cb_vocab_size(ds->items);
        b += (size_t)n * sizeof(char *);
        for (uint32_t i = 0; i < n; i++)
            if (ds->titles[i]) b += strlen(ds->titles[i]) + 1;
    }
    return b;
}

/* ----------------------------------------------------------------- helpers */

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

int cb_read_small_file(const char *path, char **out, size_t *len, size_t max_len, cb_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return cb_fail(err, CB_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = cb_malloc(max_len + 1, err);
    if (!buf) {
        fclose(f);
        return CB_ENOMEM;
    }
    size_t n = fread(buf, 1, max_len + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cb_fail(err, CB_EIO, "%s: read error", path);
    }
    if (n > max_len) {
        free(buf);
        return cb_fail(err, CB_EPARSE, "%s:1: file too large (more than %zu bytes)", path, max_len);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return CB_OK;
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

/* ----------------------------------------------------------- table builder */

void cb_tb_init(cb_tabbuild *b, cb_table *t) {
    memset(b, 0, sizeof *b);
    b->t = t;
}

void cb_tb_release(cb_tabbuild *b) {
    free(b->caps);
    b->caps = NULL;
    b->cap_cols = 0;
}

int cb_tb_add_col(cb_tabbuild *b, const char *name, cb_col_kind kind, cb_error *err) {
    cb_table *t = b->t;
    if (cb_table_find(t, name) >= 0)
        return cb_fail(err, CB_EINVAL, "column '%s' declared twice", name);
    if (t->n_cols == b->cap_cols) {
        uint32_t cap = b->cap_cols ? b->cap_cols * 2 : 8;
        cb_column *cols = cb_realloc_array(t->cols, cap, sizeof *cols, err);
        if (!cols) return CB_ENOMEM;
        t->cols = cols;
        cb_colcap *caps = cb_realloc_array(b->caps, cap, sizeof *caps, err);
        if (!caps) return CB_ENOMEM;
        b->caps = caps;
        b->cap_cols = cap;
    }
    cb_column *c = &t->cols[t->n_cols];
    memset(c, 0, sizeof *c);
    memset(&b->caps[t->n_cols], 0, sizeof b->caps[0]);
    c->kind = kind;
    t->n_cols++; /* counted now so cb_dataset_free releases a half-made column */
    c->name = cb_strdup(name, err);
    if (!c->name) return CB_ENOMEM;
    if (kind != CB_COL_NUMERIC) {
        c->levels = cb_vocab_create(err);
        if (!c->levels) return CB_ENOMEM;
    }
    if (kind == CB_COL_MULTI) {
        c->off = cb_calloc(1, sizeof *c->off, err);
        if (!c->off) return CB_ENOMEM;
    }
    return (int)(t->n_cols - 1);
}

/* Make room for rows [0, need) and mark new cells missing. */
static int col_reserve(cb_column *c, cb_colcap *cap, uint32_t need, cb_error *err) {
    if (need <= cap->cap_rows) return CB_OK;
    uint64_t n = cap->cap_rows ? cap->cap_rows : 64;
    while (n < need) n *= 2;
    if (n > UINT32_MAX - 1) n = UINT32_MAX - 1;
    if (c->kind == CB_COL_NUMERIC) {
        float *p = cb_realloc_array(c->num, n, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->num = p;
    } else if (c->kind == CB_COL_CATEGORICAL) {
        uint32_t *p = cb_realloc_array(c->cat, n, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->cat = p;
    } else {
        uint32_t *p = cb_realloc_array(c->off, n + 1, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->off = p;
    }
    cap->cap_rows = (uint32_t)n;
    return CB_OK;
}

/* Extend the column to `rows` rows with missing cells. */
static int col_grow_to(cb_column *c, cb_colcap *cap, uint32_t rows, cb_error *err) {
    if (rows <= cap->n_rows) return CB_OK;
    int rc = col_reserve(c, cap, rows, err);
    if (rc) return rc;
    for (uint32_t r = cap->n_rows; r < rows; r++) {
        if (c->kind == CB_COL_NUMERIC) c->num[r] = NAN;
        else if (c->kind == CB_COL_CATEGORICAL) c->cat[r] = CB_MISSING;
        else c->off[r + 1] = c->off[r];
    }
    cap->n_rows = rows;
    return CB_OK;
}

int cb_tb_set_num(cb_tabbuild *b, int col, uint32_t row, float v, cb_error *err) {
    cb_column *c = &b->t->cols[col];
    int rc = col_grow_to(c, &b->caps[col], row + 1, err);
    if (rc) return rc;
    c->num[row] = v;
    return CB_OK;
}

int cb_tb_set_cat(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err) {
    cb_column *c = &b->t->cols[col];
    int rc = col_grow_to(c, &b->caps[col], row + 1, err);
    if (rc) return rc;
    uint32_t lvl;
    rc = cb_vocab_intern(c->levels, s, len, &lvl, NULL, err);
    if (rc) return rc;
    c->cat[row] = lvl;
    return CB_OK;
}

int cb_tb_add_multi(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len, cb_error *err) {
    cb_column *c = &b->t->cols[col];
    cb_colcap *cap = &b->caps[col];
    if (row + 1 < cap->n_rows)
        return cb_fail(err, CB_EINVAL, "internal: multi-valued rows out of order in column '%s'", c->name);
    int rc = col_grow_to(c, cap, row + 1, err);
    if (rc) return rc;
    uint32_t lvl;
    rc = cb_vocab_intern(c->levels, s, len, &lvl, NULL, err);
    if (rc) return rc;
    for (uint32_t k = c->off[row]; k < c->off[row + 1]; k++)
        if (c->val[k] == lvl) return CB_OK;
    size_t n_val = c->off[row + 1];
    if (n_val == cap->cap_val) {
        size_t ncap = cap->cap_val ? cap->cap_val * 2 : 256;
        uint32_t *p = cb_realloc_array(c->val, ncap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        c->val = p;
        cap->cap_val = ncap;
    }
    c->val[n_val] = lvl;
    c->off[row + 1] = (uint32_t)(n_val + 1);
    return CB_OK;
}

int cb_tb_add_multi_split(cb_tabbuild *b, int col, uint32_t row, const char *s, size_t len,
                          const char *sep, cb_error *err) {
    size_t sl = strlen(sep);
    size_t start = 0;
    /* Make sure the row exists even when it ends up empty. */
    int rc = col_grow_to(&b->t->cols[col], &b->caps[col], row + 1, err);
    if (rc) return rc;
    while (start <= len) {
        size_t end = start;
        while (end < len && !(end + sl <= len && memcmp(s + end, sep, sl) == 0)) end++;
        size_t a = start, z = end;
        while (a < z && (s[a] == ' ' || s[a] == '\t')) a++;
        while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t')) z--;
        if (z > a) {
            rc = cb_tb_add_multi(b, col, row, s + a, z - a, err);
            if (rc) return rc;
        }
        start = end + sl;
    }
    return CB_OK;
}

int cb_tb_finish(cb_tabbuild *b, uint32_t n_rows, cb_error *err) {
    cb_table *t = b->t;
    for (uint32_t i = 0; i < t->n_cols; i++) {
        int rc = col_grow_to(&t->cols[i], &b->caps[i], n_rows, err);
        if (rc) return rc;
        if (t->cols[i].kind == CB_COL_MULTI && !t->cols[i].val) {
            t->cols[i].val = cb_malloc(sizeof(uint32_t), err); /* never NULL: simpler for users */
            if (!t->cols[i].val) return CB_ENOMEM;
        }
    }
    t->n_rows = n_rows;
    return CB_OK;
}

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

/* Duplicate (user, item) pairs, found with a per-item marker holding the last
 * user seen while going through each user's ratings in file order. Files
 * grouped by user (MovieLens, most exports) have non-decreasing user indices,
 * since ids are numbered as they first appear: they are in that order
 * already, and one pass checks them and gathers the rating range on the way.
 * Other files are put in user order by a stable counting sort of rating
 * indices. Later duplicates are dropped when skipping; otherwise the first
 * met is reported. */
static int check_duplicates(cb_loader *L, const cb_ratings_spec *sp, y_range *range, cb_error *err) {
    cb_dataset *ds = L->ds;
    const cb_rating *r = ds->ratings;
    uint32_t n_users = cb_vocab_size(ds->users), n_items = cb_vocab_size(ds->items);
    size_t n = ds->n_ratings, n_dup = 0, first_dup = SIZE_MAX;
    const bool skip = L->opt.skip_bad_rows;
    int rc = CB_OK;
    uint32_t *start = NULL, *order = NULL;
    uint8_t *drop = skip ? cb_calloc(n ? n : 1, 1, err) : NULL;
    uint32_t *mark = cb_malloc(((size_t)n_items + 1) * sizeof *mark, err);
    if (!mark || (skip && !drop)) {
        rc = CB_ENOMEM;
        goto done;
    }
    memset(mark, 0xff, ((size_t)n_items + 1) * sizeof *mark);

    float lo = INFINITY, hi = -INFINITY;
    bool binary = true, grouped = true;
    uint32_t prev_user = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = r[i].user, it = r[i].item;
        float y = r[i].y;
        if (u < prev_user) {
            grouped = false;
            break;
        }
        prev_user = u;
        if (y < lo) lo = y;
        if (y > hi) hi = y;
        if (y != 0.0f && y != 1.0f) binary = false;
        if (mark[it] != u) {
            mark[it] = u;
            continue;
        }
        if (first_dup == SIZE_MAX) first_dup = i;
        if (skip) drop[i] = 1;
        n_dup++;
    }
    if (grouped) {
        *range = (y_range){lo, hi, binary, n_dup == 0};
    } else { /* start over in user order */
        n_dup = 0;
        first_dup = SIZE_MAX;
        if (skip) memset(drop, 0, n);
        memset(mark, 0xff, ((size_t)n_items + 1) * sizeof *mark);
        start = cb_calloc((size_t)n_users + 1, sizeof *start, err);
        order = cb_malloc(n * sizeof *order, err);
        if (!start || !order) {
            rc = CB_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < n; i++) start[r[i].user + 1]++;
        for (uint32_t u = 0; u < n_users; u++) start[u + 1] += start[u];
        for (size_t i = 0; i < n; i++) order[start[r[i].user]++] = (uint32_t)i;
        /* start[u] is now the end of user u; its beginning is start[u-1] (0 for u=0). */
        for (uint32_t u = 0; u < n_users && (skip || !n_dup); u++) {
            for (uint32_t k = u ? start[u - 1] : 0; k < start[u]; k++) {
                uint32_t i = order[k], it = r[i].item;
                if (mark[it] != u) {
                    mark[it] = u;
                    continue;
                }
                if (first_dup == SIZE_MAX) first_dup = i;
                if (skip) drop[i] = 1;
                n_dup++;
            }
        }
    }
    if (n_dup && !skip) {
        const char *un = cb_vocab_name(ds->users, r[first_dup].user);
        const char *in = cb_vocab_name(ds->items, r[first_dup].item);
        size_t l1 = 0, l2 = 0;
        if (sp) find_dup_lines(sp, un, in, &l1, &l2);
        rc = cb_fail(err, CB_EPARSE, "%s:%zu: duplicate rating for user '%s' and item '%s' (first at line %zu)",
                     sp ? sp->path : ds->path, l2, un, in, l1);
        goto done;
    }
    if (n_dup) {
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (!drop[i]) ds->ratings[w++] = ds->ratings[i];
        ds->n_ratings = w;
        ds->n_skipped += n_dup;
    }
done:
    free(start);
    free(order);
    free(mark);
    free(drop);
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

/* ---------------------------------------------------------------- detection */

static bool has(const char *dir, const char *name) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s/%s", dir, name) >= sizeof buf) return false;
    return cb_file_exists(buf);
}

int cb_dataset_load(cb_dataset **out, const char *path, const cb_load_options *opt, cb_error *err) {
    *out = NULL;
    cb_load_options defaults;
    if (!opt) {
        cb_load_options_default(&defaults);
        opt = &defaults;
    }
    if (!path || !*path) return cb_fail(err, CB_EINVAL, "no dataset path given");
    struct stat st;
    if (stat(path, &st) != 0)
        return cb_fail(err, CB_EIO, "%s: cannot open dataset folder: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        /* A schema file given as the path itself. */
        if (S_ISREG(st.st_mode) && !opt->schema) {
            char *dir = cb_strdup(path, err);
            if (!dir) return CB_ENOMEM;
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
            else strcpy(dir, ".");
            int rc = cb_load_generic(out, dir, path, opt, err);
            free(dir);
            return rc;
        }
        return cb_fail(err, CB_EIO, "%s: not a directory", path);
    }
    if (opt->schema) return cb_load_generic(out, path, opt->schema, opt, err);
    if (has(path, "cbrec.schema")) {
        char *schema = cb_path_join(path, "cbrec.schema", err);
        if (!schema) return CB_ENOMEM;
        int rc = cb_load_generic(out, path, schema, opt, err);
        free(schema);
        return rc;
    }
    if (has(path, "content_user_train.csv")) return cb_load_course_lab(out, path, opt, err);
    if (has(path, "u.data")) return cb_load_ml_100k(out, path, opt, err);
    if (has(path, "ratings.dat")) return cb_load_ml_1m(out, path, opt, err);
    if (has(path, "ratings.csv") && has(path, "movies.csv")) return cb_load_ml_small(out, path, opt, err);
    if (has(path, "ratings.csv")) return cb_load_ratings_only(out, path, opt, err);
    return cb_fail(err, CB_EIO,
                   "%s: no known dataset layout (expected cbrec.schema, ratings.csv + movies.csv, "
                   "u.data, ratings.dat or content_user_train.csv)",
                   path);
}

