/* generic — datasets that are not MovieLens: anyone's data described by a
 * small schema file (cbrec.schema, documented in docs/data-formats.md) and a
 * folder holding only ratings.csv (columns told from its header).
 *
 * The schema names a ratings file (user, item, rating or 0/1 label, or no
 * rating at all for implicit events with an optional weight; optional
 * timestamp) and optional items / users files whose columns carry a declared
 * role: id, title, numeric, categorical, multi-valued with a separator, or
 * ignore. */
#include "data/loaders.h"
#include "data/loader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ schema */

typedef enum {
    K_ID, K_TITLE, K_NUMERIC, K_CATEGORICAL, K_MULTI, K_TEXT, K_IGNORE,  /* items / users */
    K_USER, K_ITEM, K_RATING, K_TIMESTAMP, K_WEIGHT               /* ratings */
} col_kind;

typedef struct colspec {
    char *name;
    col_kind kind;
    char sep[8];   /* K_MULTI separator */
    int table_col; /* column index in the attribute table, -1 if none */
} colspec;

/* Vocabulary control of one column: "items.tags.max_values = 200" etc. */
typedef struct vocabspec {
    char *col;
    size_t line;
    uint32_t max_values, min_count, hash; /* 0 = not given */
} vocabspec;

typedef struct filespec {
    vocabspec *vocab;
    size_t n_vocab;
    char *file;
    size_t file_line; /* schema line that named the file */
    char delim[8];
    int header;       /* -1 = not given */
    int latin1;
    int quoting;      /* -1 = reader default */
    int year_from_title;
    colspec *cols;
    size_t n_cols;
    size_t columns_line;
} filespec;

typedef struct schema {
    const char *path;
    filespec ratings, items, users;
    float y_min, y_max;
    bool has_range, binary;
    int implicit;          /* rating.implicit: 1 yes, 0 no, -1 not given (no rating column = yes) */
    size_t implicit_line;
    char *name;
} schema;

static void filespec_init(filespec *fs) {
    memset(fs, 0, sizeof *fs);
    strcpy(fs->delim, ",");
    fs->header = -1;
    fs->quoting = -1;
    fs->year_from_title = 0; /* only when the schema says so (MovieLens loaders parse years themselves) */
}

static void filespec_free(filespec *fs) {
    for (size_t i = 0; i < fs->n_vocab; i++) free(fs->vocab[i].col);
    free(fs->vocab);
    free(fs->file);
    for (size_t i = 0; i < fs->n_cols; i++) free(fs->cols[i].name);
    free(fs->cols);
}

static void schema_free(schema *s) {
    filespec_free(&s->ratings);
    filespec_free(&s->items);
    filespec_free(&s->users);
    free(s->name);
}

static bool parse_yes_no(const char *v, size_t n, int *out) {
    if (cb_ieq(v, n, "yes") || cb_ieq(v, n, "true") || cb_ieq(v, n, "1")) *out = 1;
    else if (cb_ieq(v, n, "no") || cb_ieq(v, n, "false") || cb_ieq(v, n, "0")) *out = 0;
    else return false;
    return true;
}

static bool parse_delim(const char *v, size_t n, char out[8]) {
    const char *d = NULL;
    if (cb_ieq(v, n, "tab") || (n == 2 && v[0] == '\\' && v[1] == 't')) d = "\t";
    else if (cb_ieq(v, n, "comma")) d = ",";
    else if (cb_ieq(v, n, "semicolon")) d = ";";
    else if (cb_ieq(v, n, "pipe")) d = "|";
    else if (cb_ieq(v, n, "space")) d = " ";
    if (d) {
        strcpy(out, d);
        return true;
    }
    if (n == 0 || n >= 8) return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

/* One entry of a columns list: "name", "name:kind" or "name:multi(SEP)". */
static int parse_colspec(colspec *c, const char *s, size_t n, bool ratings, const char *path,
                         size_t line, cb_error *err) {
    cb_trim(&s, &n);
    const char *colon = memchr(s, ':', n);
    const char *nm = s, *kd = NULL;
    size_t nl = n, kl = 0;
    if (colon) {
        nl = (size_t)(colon - s);
        kd = colon + 1;
        kl = n - nl - 1;
        cb_trim(&nm, &nl);
        cb_trim(&kd, &kl);
    }
    if (nl == 0) return cb_fail(err, CB_EPARSE, "%s:%zu: empty column name", path, line);
    c->name = cb_strndup(nm, nl, err);
    if (!c->name) return CB_ENOMEM;
    c->table_col = -1;
    if (!kd) { /* bare word: the role is the name */
        kd = nm;
        kl = nl;
    }
    strcpy(c->sep, "|");
    if (ratings) {
        if (cb_ieq(kd, kl, "user")) c->kind = K_USER;
        else if (cb_ieq(kd, kl, "item")) c->kind = K_ITEM;
        else if (cb_ieq(kd, kl, "rating") || cb_ieq(kd, kl, "label")) c->kind = K_RATING;
        else if (cb_ieq(kd, kl, "timestamp")) c->kind = K_TIMESTAMP;
        else if (cb_ieq(kd, kl, "weight")) c->kind = K_WEIGHT;
        else if (cb_ieq(kd, kl, "ignore")) c->kind = K_IGNORE;
        else
            return cb_fail(err, CB_EPARSE,
                           "%s:%zu: ratings column '%.*s': role must be user, item, rating, label, timestamp, "
                           "weight or ignore",
                           path, line, CLIP(s, n), s);
        return CB_OK;
    }
    if (cb_ieq(kd, kl, "id")) c->kind = K_ID;
    else if (cb_ieq(kd, kl, "title")) c->kind = K_TITLE;
    else if (cb_ieq(kd, kl, "numeric")) c->kind = K_NUMERIC;
    else if (cb_ieq(kd, kl, "categorical")) c->kind = K_CATEGORICAL;
    else if (cb_ieq(kd, kl, "text")) c->kind = K_TEXT;
    else if (cb_ieq(kd, kl, "ignore")) c->kind = K_IGNORE;
    else if (kl >= 5 && cb_ieq(kd, 5, "multi")) {
        c->kind = K_MULTI;
        if (kl > 5) {
            if (kd[5] != '(' || kd[kl - 1] != ')' || kl - 7 == 0 || kl - 7 >= sizeof c->sep)
                return cb_fail(err, CB_EPARSE, "%s:%zu: column '%s': write multi or multi(SEP), e.g. multi(|)",
                               path, line, c->name);
            memcpy(c->sep, kd + 6, kl - 7);
            c->sep[kl - 7] = '\0';
        }
    } else if (!colon) {
        return cb_fail(err, CB_EPARSE, "%s:%zu: column '%s' needs a kind: write %s:numeric, :categorical, "
                       ":multi(|), :text, :title or :ignore", path, line, c->name, c->name);
    } else {
        return cb_fail(err, CB_EPARSE,
                       "%s:%zu: column '%s': unknown kind '%.*s' (id, title, numeric, categorical, multi(SEP), text, ignore)",
                       path, line, c->name, CLIP(kd, kl), kd);
    }
    return CB_OK;
}

static int parse_columns(filespec *fs, const char *v, size_t n, bool ratings, const char *path, size_t line,
                         cb_error *err) {
    if (fs->cols) return cb_fail(err, CB_EPARSE, "%s:%zu: columns given twice", path, line);
    size_t count = 1;
    /* Commas inside multi(,) are not separators: count at depth 0 only. */
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '(') depth++;
        else if (v[i] == ')') depth--;
        else if (v[i] == ',' && depth == 0) count++;
    }
    fs->cols = cb_calloc(count, sizeof *fs->cols, err);
    if (!fs->cols) return CB_ENOMEM;
    size_t start = 0;
    depth = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && v[i] == '(') depth++;
        if (i < n && v[i] == ')') depth--;
        if (i == n || (v[i] == ',' && depth == 0)) {
            int rc = parse_colspec(&fs->cols[fs->n_cols], v + start, i - start, ratings, path, line, err);
            fs->n_cols++;
            if (rc) return rc;
            start = i + 1;
        }
    }
    fs->columns_line = line;
    /* Role checks. */
    int n_id = 0, n_user = 0, n_item = 0, n_rating = 0, n_ts = 0, n_title = 0, n_weight = 0;
    for (size_t i = 0; i < fs->n_cols; i++) {
        n_id += fs->cols[i].kind == K_ID;
        n_user += fs->cols[i].kind == K_USER;
        n_item += fs->cols[i].kind == K_ITEM;
        n_rating += fs->cols[i].kind == K_RATING;
        n_ts += fs->cols[i].kind == K_TIMESTAMP;
        n_weight += fs->cols[i].kind == K_WEIGHT;
        n_title += fs->cols[i].kind == K_TITLE;
        for (size_t j = 0; j < i; j++)
            if (fs->cols[i].kind != K_IGNORE && !strcmp(fs->cols[i].name, fs->cols[j].name))
                return cb_fail(err, CB_EPARSE, "%s:%zu: column '%s' named twice", path, line, fs->cols[i].name);
    }
    if (ratings && (n_user != 1 || n_item != 1 || n_rating > 1 || n_ts > 1 || n_weight > 1))
        return cb_fail(err, CB_EPARSE, "%s:%zu: ratings columns need exactly one user and one item, "
                       "at most one rating, one timestamp and one weight", path, line);
    if (ratings && n_rating && n_weight)
        return cb_fail(err, CB_EPARSE, "%s:%zu: ratings columns: a weight is for implicit events, "
                       "which have no rating column (declare one of them :ignore)", path, line);
    if (!ratings && (n_id != 1 || n_title > 1))
        return cb_fail(err, CB_EPARSE, "%s:%zu: columns need exactly one id (and at most one title)", path, line);
    return CB_OK;
}

/* "COL.max_values = N", "COL.min_count = N" or "COL.hash = N" of an items /
 * users section. */
static int parse_vocab_key(filespec *fs, const char *sub, size_t subn, const char *v, size_t vn, const char *path,
                           size_t line, cb_error *err) {
    size_t cl = subn;
    while (cl && sub[cl - 1] != '.') cl--;
    cl--; /* the last '.': sub has one */
    const char *dot = sub + cl;
    size_t kl = subn - cl - 1;
    const char *k = dot + 1;
    int64_t n;
    if (!cb_ieq(k, kl, "max_values") && !cb_ieq(k, kl, "min_count") && !cb_ieq(k, kl, "hash"))
        return cb_fail(err, CB_EPARSE, "%s:%zu: unknown key '%.*s' (a column takes max_values, min_count or hash)", path,
                       line, CLIP(sub, subn), sub);
    if (!cb_parse_i64(v, vn, &n) || n < 1 || n > 10000000)
        return cb_fail(err, CB_EPARSE, "%s:%zu: %.*s must be an integer in 1..10000000", path, line, CLIP(sub, subn),
                       sub);
    vocabspec *e = NULL;
    for (size_t i = 0; i < fs->n_vocab; i++)
        if (strlen(fs->vocab[i].col) == cl && !memcmp(fs->vocab[i].col, sub, cl)) e = &fs->vocab[i];
    if (!e) {
        vocabspec *nv = cb_realloc_array(fs->vocab, fs->n_vocab + 1, sizeof *nv, err);
        if (!nv) return CB_ENOMEM;
        fs->vocab = nv;
        e = &nv[fs->n_vocab];
        memset(e, 0, sizeof *e);
        if (!(e->col = cb_strndup(sub, cl, err))) return CB_ENOMEM;
        fs->n_vocab++;
        e->line = line;
    }
    uint32_t *dst = cb_ieq(k, kl, "max_values") ? &e->max_values : cb_ieq(k, kl, "min_count") ? &e->min_count : &e->hash;
    *dst = (uint32_t)n;
    return CB_OK;
}

/* A key of one file's section: "ratings = FILE", "items.delim = tab", ... */
static int schema_file_key(schema *s, filespec *fs, const char *sub, size_t subn, const char *k, size_t kn,
                           const char *v, size_t vn, size_t line, cb_error *err) {
    const char *path = s->path;
    int rc = CB_OK;
    if (subn == 0) {
        if (fs->file) rc = cb_fail(err, CB_EPARSE, "%s:%zu: '%.*s' given twice", path, line, CLIP(k, kn), k);
        else if (vn == 0) rc = cb_fail(err, CB_EPARSE, "%s:%zu: empty file name", path, line);
        else if (!(fs->file = cb_strndup(v, vn, err))) rc = CB_ENOMEM;
        fs->file_line = line;
    } else if (cb_ieq(sub, subn, "delim")) {
        if (!parse_delim(v, vn, fs->delim))
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: delimiter must be 1-7 characters or tab/comma/semicolon/pipe/space", path, line);
    } else if (cb_ieq(sub, subn, "header")) {
        if (!parse_yes_no(v, vn, &fs->header)) rc = cb_fail(err, CB_EPARSE, "%s:%zu: header must be yes or no", path, line);
    } else if (cb_ieq(sub, subn, "quoting")) {
        if (!parse_yes_no(v, vn, &fs->quoting)) rc = cb_fail(err, CB_EPARSE, "%s:%zu: quoting must be yes or no", path, line);
    } else if (fs != &s->ratings && cb_ieq(sub, subn, "year_from_title")) {
        if (!parse_yes_no(v, vn, &fs->year_from_title))
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: year_from_title must be yes or no", path, line);
    } else if (cb_ieq(sub, subn, "encoding")) {
        if (cb_ieq(v, vn, "utf-8") || cb_ieq(v, vn, "utf8")) fs->latin1 = 0;
        else if (cb_ieq(v, vn, "latin-1") || cb_ieq(v, vn, "latin1") || cb_ieq(v, vn, "iso-8859-1")) fs->latin1 = 1;
        else rc = cb_fail(err, CB_EPARSE, "%s:%zu: encoding must be utf-8 or latin-1", path, line);
    } else if (cb_ieq(sub, subn, "columns")) {
        rc = parse_columns(fs, v, vn, fs == &s->ratings, path, line, err);
    } else if (fs != &s->ratings && memchr(sub, '.', subn)) {
        rc = parse_vocab_key(fs, sub, subn, v, vn, path, line, err);
    } else {
        rc = cb_fail(err, CB_EPARSE, "%s:%zu: unknown key '%.*s'", path, line, CLIP(k, kn), k);
    }
    return rc;
}

/* One "key = value" line, both trimmed. */
static int schema_key(schema *s, const char *k, size_t kn, const char *v, size_t vn, size_t line, cb_error *err) {
    static const char *const prefixes[3] = {"ratings", "items", "users"};
    filespec *const specs[3] = {&s->ratings, &s->items, &s->users};
    const char *path = s->path;
    for (int i = 0; i < 3; i++) {
        size_t pl = strlen(prefixes[i]);
        if (kn >= pl && !memcmp(k, prefixes[i], pl) && (kn == pl || k[pl] == '.'))
            return schema_file_key(s, specs[i], kn == pl ? "" : k + pl + 1, kn == pl ? 0 : kn - pl - 1, k, kn, v,
                                   vn, line, err);
    }
    int b;
    if (cb_ieq(k, kn, "rating.range")) {
        const char *comma = memchr(v, ',', vn);
        s->has_range = true;
        if (!comma || !cb_parse_float(v, (size_t)(comma - v), &s->y_min) ||
            !cb_parse_float(comma + 1, vn - (size_t)(comma - v) - 1, &s->y_max) || !(s->y_min <= s->y_max))
            return cb_fail(err, CB_EPARSE, "%s:%zu: rating.range must be 'MIN,MAX' with MIN <= MAX", path, line);
    } else if (cb_ieq(k, kn, "rating.binary")) {
        if (!parse_yes_no(v, vn, &b)) return cb_fail(err, CB_EPARSE, "%s:%zu: rating.binary must be yes or no", path, line);
        s->binary = b;
    } else if (cb_ieq(k, kn, "rating.implicit")) {
        if (!parse_yes_no(v, vn, &s->implicit))
            return cb_fail(err, CB_EPARSE, "%s:%zu: rating.implicit must be yes or no", path, line);
        s->implicit_line = line;
    } else if (cb_ieq(k, kn, "name")) {
        if (vn == 0)
            return cb_fail(err, CB_EPARSE, "%s:%zu: empty name (leave the line out: the name is then generic)", path,
                           line);
        free(s->name);
        if (!(s->name = cb_strndup(v, vn, err))) return CB_ENOMEM;
    } else {
        return cb_fail(err, CB_EPARSE, "%s:%zu: unknown key '%.*s'", path, line, CLIP(k, kn), k);
    }
    return CB_OK;
}

/* One line of the schema file: a comment, blank, or "key = value". */
static int schema_line(schema *s, const char *s0, size_t n, size_t line, cb_error *err) {
    if (memchr(s0, '\0', n)) return cb_fail(err, CB_EPARSE, "%s:%zu: NUL byte in schema", s->path, line);
    if (!cb_utf8_valid(s0, n)) return cb_fail(err, CB_EPARSE, "%s:%zu: invalid UTF-8", s->path, line);
    /* Comments: whole lines starting with '#', or " #" after a value. */
    for (size_t i = 1; i < n; i++)
        if (s0[i] == '#' && (s0[i - 1] == ' ' || s0[i - 1] == '\t')) {
            n = i;
            break;
        }
    cb_trim(&s0, &n);
    if (n == 0 || s0[0] == '#') return CB_OK;
    const char *eq = memchr(s0, '=', n);
    if (!eq) return cb_fail(err, CB_EPARSE, "%s:%zu: expected 'key = value'", s->path, line);
    const char *k = s0, *v = eq + 1;
    size_t kn = (size_t)(eq - s0), vn = n - kn - 1;
    cb_trim(&k, &kn);
    cb_trim(&v, &vn);
    return schema_key(s, k, kn, v, vn, line, err);
}

/* What a schema must hold once every line is read. */
static int schema_check(const schema *s, size_t n_lines, cb_error *err) {
    if (!s->ratings.file)
        return cb_fail(err, CB_EPARSE, "%s:%zu: no 'ratings = FILE' line", s->path, n_lines + 1);
    for (int i = 0; i < 2; i++) {
        const filespec *fs = i ? &s->users : &s->items;
        if (fs->file && !fs->cols)
            return cb_fail(err, CB_EPARSE, "%s:%zu: %s needs a '%s.columns = id,...' line", s->path, fs->file_line,
                           i ? "users" : "items", i ? "users" : "items");
    }
    for (int i = 0; i < 2; i++) { /* vocabulary keys name a declared categorical, multi or text column */
        const filespec *fs = i ? &s->users : &s->items;
        for (size_t v = 0; v < fs->n_vocab; v++) {
            bool ok = false;
            for (size_t c = 0; c < fs->n_cols; c++)
                ok |= !strcmp(fs->cols[c].name, fs->vocab[v].col) &&
                      (fs->cols[c].kind == K_CATEGORICAL || fs->cols[c].kind == K_MULTI || fs->cols[c].kind == K_TEXT);
            if (!ok)
                return cb_fail(err, CB_EPARSE, "%s:%zu: '%s' is not a categorical, multi or text column of %s.columns",
                               s->path, fs->vocab[v].line, fs->vocab[v].col, i ? "users" : "items");
        }
    }
    if (s->ratings.cols && s->implicit >= 0) {
        bool has_rating = false;
        for (size_t i = 0; i < s->ratings.n_cols; i++) has_rating |= s->ratings.cols[i].kind == K_RATING;
        if (s->implicit == 1 && has_rating)
            return cb_fail(err, CB_EPARSE, "%s:%zu: rating.implicit = yes, but ratings.columns has a rating column "
                           "(declare it :weight or :ignore)", s->path, s->implicit_line);
        if (s->implicit == 0 && !has_rating)
            return cb_fail(err, CB_EPARSE, "%s:%zu: rating.implicit = no, but ratings.columns has no rating column",
                           s->path, s->implicit_line);
    }
    return CB_OK;
}

static void schema_init(schema *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    s->implicit = -1;
    filespec_init(&s->ratings);
    filespec_init(&s->items);
    filespec_init(&s->users);
}

static int parse_schema(schema *s, const char *path, cb_error *err) {
    schema_init(s, path);
    char *text;
    size_t len;
    int rc = cb_read_small_file(path, &text, &len, 1 << 20, err);
    if (rc) return rc;
    size_t line = 0;
    const char *p = text, *end = text + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    while (p < end && !rc) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        rc = schema_line(s, p, (size_t)(le - p), line, err);
        p = nl ? nl + 1 : end;
    }
    free(text);
    return rc ? rc : schema_check(s, line, err);
}

static void csv_opts_from(const filespec *fs, cb_csv_options *o) {
    cb_csv_options_default(o);
    o->delim = fs->delim;
    o->quoting = fs->quoting >= 0 ? fs->quoting : strcmp(fs->delim, ",") == 0;
    o->latin1 = fs->latin1;
}

/* ------------------------------------------------------- attribute files */

/* The tokens of a text field as the levels of its row. */
static int add_text_tokens(cb_tabbuild *tb, int col, uint32_t row, const char *s, size_t n, cb_error *err) {
    char tok[128];
    size_t len;
    const char *p = s;
    while ((len = cb_text_token(&p, s + n, tok, sizeof tok)))
        if (cb_tb_add_multi(tb, col, row, tok, len, err)) return err ? err->code : CB_ENOMEM;
    return CB_OK;
}

/* The header record of a file declared to have one (`expected`: what an
 * empty file lacked, for the message). */
static int next_header(cb_csv *c, const char *expected, char ***f, size_t **fl, size_t *nf, cb_error *err) {
    int rc = cb_csv_next(c, f, fl, nf, err);
    if (rc < 0) return rc;
    if (rc == 0) return cb_fail(err, CB_EPARSE, "%s:1: empty file (expected %s)", cb_csv_name(c), expected);
    return cb_header_lone_cr(cb_csv_name(c), cb_csv_line(c), *f, *fl, *nf, err);
}

/* The columns are read by position, so a header naming at one position a
 * column the schema declares at another ("id,brand,tags" for "id, tags,
 * brand") would load each into the other's place: an error. A name the
 * schema does not use ("movieId" for a bare "item") is a rename, not a
 * contradiction. `key` is the schema's list ("items.columns"). */
static int header_agrees(const filespec *fs, const char *key, cb_csv *c, char **f, const size_t *fl, size_t nf,
                         cb_error *err) {
    for (size_t i = 0; i < nf && i < fs->n_cols; i++) {
        const char *h = f[i];
        size_t n = fl[i];
        cb_trim(&h, &n);
        if (cb_ieq(h, n, fs->cols[i].name)) continue;
        for (size_t j = 0; j < fs->n_cols; j++)
            if (cb_ieq(h, n, fs->cols[j].name))
                return cb_fail(err, CB_EPARSE, "%s:%zu: column %zu is '%s' in the header but '%s' in the schema's %s, "
                               "which declares '%s' as column %zu (columns are read by position: list them in the "
                               "file's order)", cb_csv_name(c), cb_csv_line(c), i + 1, fs->cols[j].name,
                               fs->cols[i].name, key, fs->cols[j].name, j + 1);
    }
    return CB_OK;
}

/* The line of each id this file added (row - base), so that a duplicate
 * names where the id was first listed. */
typedef struct id_lines {
    uint32_t base;
    size_t n, cap;
    size_t *line;
} id_lines;

static int id_lines_add(id_lines *l, uint32_t row, size_t line, cb_error *err) {
    if (row < l->base || row - l->base != l->n) return CB_OK; /* not added here in order: left unnamed */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256, *p = cb_realloc_array(l->line, cap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        l->line = p, l->cap = cap;
    }
    l->line[l->n++] = line;
    return CB_OK;
}

/* The line row was first listed on, 0 when not known. */
static size_t id_lines_of(const id_lines *l, uint32_t row) {
    return row >= l->base && row - l->base < l->n ? l->line[row - l->base] : 0;
}

static int read_attr_file(cb_loader *L, const char *path, filespec *fs, bool is_items, cb_error *err) {
    cb_tabbuild *tb = is_items ? &L->items : &L->users;
    cb_vocab *ids = is_items ? L->ds->items : L->ds->users;
    cb_csv_options o;
    csv_opts_from(fs, &o);
    cb_csv *c = NULL;
    float *vals = NULL;
    id_lines lines = {cb_vocab_size(ids), 0, 0, NULL};
    int rc = cb_csv_open(&c, path, &o, err);
    if (rc) return rc;
    const char *name = cb_csv_name(c);
    char **f;
    size_t *fl, nf;
    int id_col = -1, title_col = -1, year_col = -1;
    for (size_t i = 0; i < fs->n_cols; i++) {
        colspec *cs = &fs->cols[i];
        cb_col_kind k = cs->kind == K_NUMERIC ? CB_COL_NUMERIC : cs->kind == K_CATEGORICAL ? CB_COL_CATEGORICAL : CB_COL_MULTI;
        if (cs->kind == K_ID) id_col = (int)i;
        if (cs->kind == K_TITLE) title_col = (int)i;
        if (cs->kind != K_NUMERIC && cs->kind != K_CATEGORICAL && cs->kind != K_MULTI && cs->kind != K_TEXT) continue;
        cs->table_col = cb_tb_add_col(tb, cs->name, k, err);
        if (cs->table_col < 0) {
            rc = cs->table_col;
            goto done;
        }
        tb->t->cols[cs->table_col].text = cs->kind == K_TEXT;
    }
    if (is_items && !fs->year_from_title) L->ds->no_title_years = true;
    if (is_items && title_col >= 0 && fs->year_from_title && cb_table_find(tb->t, "year") < 0) {
        year_col = cb_tb_add_col(tb, "year", CB_COL_NUMERIC, err);
        if (year_col < 0) {
            rc = year_col;
            goto done;
        }
    }
    vals = cb_calloc(fs->n_cols ? fs->n_cols : 1, sizeof *vals, err);
    if (!vals) {
        rc = CB_ENOMEM;
        goto done;
    }
    if (fs->header != 0) {
        if ((rc = next_header(c, "a header line", &f, &fl, &nf, err))) goto done;
        if (nf != fs->n_cols) {
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: header has %zu fields but the schema declares %zu columns",
                         name, cb_csv_line(c), nf, fs->n_cols);
            goto done;
        }
        if ((rc = header_agrees(fs, is_items ? "items.columns" : "users.columns", c, f, fl, nf, err))) goto done;
    }
    for (;;) {
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc == 0) break;
        if (rc < 0) goto done;
        size_t line = cb_csv_line(c);
        if (nf != fs->n_cols) BAD_ROW("%s:%zu: expected %zu fields, found %zu", name, line, fs->n_cols, nf);
        if (fl[id_col] == 0) BAD_ROW("%s:%zu: empty id", name, line);
        /* Validate every field before the id is interned, so a skipped row leaves no trace. */
        for (size_t i = 0; i < fs->n_cols; i++) {
            if (fs->cols[i].kind != K_NUMERIC) continue;
            const char *s = f[i];
            size_t n = fl[i];
            cb_trim(&s, &n);
            if (n == 0 || cb_ieq(s, n, "NA") || cb_ieq(s, n, "null")) vals[i] = NAN;
            else if (!cb_fast_float(s, n, &vals[i]))
                BAD_ROW("%s:%zu: column '%s': '%.*s' is not a finite number", name, line, fs->cols[i].name,
                        CLIP(f[i], fl[i]), f[i]);
        }
        uint32_t row;
        bool added;
        rc = cb_vocab_intern(ids, f[id_col], fl[id_col], &row, &added, err);
        if (!rc && added) rc = id_lines_add(&lines, row, line, err);
        if (rc) goto done;
        if (!added && id_lines_of(&lines, row))
            BAD_ROW("%s:%zu: id '%.*s' listed twice (first on line %zu)", name, line, CLIP(f[id_col], fl[id_col]),
                    f[id_col], id_lines_of(&lines, row));
        if (!added) BAD_ROW("%s:%zu: id '%.*s' listed twice", name, line, CLIP(f[id_col], fl[id_col]), f[id_col]);
        for (size_t i = 0; i < fs->n_cols && !rc; i++) {
            colspec *cs = &fs->cols[i];
            const char *s = f[i];
            size_t n = fl[i];
            if (cs->kind == K_NUMERIC) {
                rc = cb_tb_set_num(tb, cs->table_col, row, vals[i], err);
            } else if (cs->kind == K_CATEGORICAL) {
                cb_trim(&s, &n);
                if (n) rc = cb_tb_set_cat(tb, cs->table_col, row, s, n, err);
            } else if (cs->kind == K_MULTI) {
                rc = cb_tb_add_multi_split(tb, cs->table_col, row, s, n, cs->sep, err);
            } else if (cs->kind == K_TEXT) {
                rc = add_text_tokens(tb, cs->table_col, row, s, n, err);
            } else if (cs->kind == K_TITLE && is_items) {
                rc = cb_ld_set_title(L, row, s, n, err);
                if (!rc && year_col >= 0) rc = cb_tb_set_num(tb, year_col, row, cb_year_from_title(s, n), err);
            }
        }
        if (rc) goto done;
    next_row:;
    }
    rc = CB_OK;
done:
    free(vals);
    free(lines.line);
    cb_csv_close(c);
    return rc;
}

/* Ratings columns from a header line when the schema gives none. Without a
 * rating column (or with rating.implicit = yes: `implicit` 1) the file is
 * implicit events, and a weight column is looked for. */
static int ratings_cols_from_names(cb_ratings_spec *sp, int implicit, cb_csv *c, char **f, const size_t *fl,
                                   size_t nf, cb_error *err) {
    static const char *const users[] = {"user", "userid", "user_id", "user id", "uid", NULL};
    static const char *const items[] = {"item", "itemid", "item_id", "item id", "movieid", "movie_id", "movie id",
                                        "movie", "iid", "productid", "product_id", NULL};
    static const char *const ratings[] = {"rating", "score", "label", "y", "target", "stars", NULL};
    static const char *const times[] = {"timestamp", "ts", "time", "unix_time", NULL};
    static const char *const weights[] = {"weight", "count", "clicks", "plays", "quantity", NULL};
    const char *const *lists[5] = {users, items, ratings, times, weights};
    int *slots[5] = {&sp->col_user, &sp->col_item, &sp->col_rating, &sp->col_ts, &sp->col_weight};
    for (int k = 0; k < 5; k++) *slots[k] = -1;
    for (size_t i = 0; i < nf; i++) {
        const char *s = f[i];
        size_t n = fl[i];
        cb_trim(&s, &n);
        for (int k = 0; k < 5; k++)
            for (const char *const *a = lists[k]; *a; a++)
                if (*slots[k] < 0 && cb_ieq(s, n, *a)) *slots[k] = (int)i;
    }
    if (implicit == 1) sp->col_rating = -1;
    if (sp->col_rating >= 0) sp->col_weight = -1;
    sp->n_fields = nf;
    if (sp->col_user < 0 || sp->col_item < 0)
        return cb_fail(err, CB_EPARSE, "%s:%zu: cannot tell the user and item columns from the header "
                       "(name them user,item,rating,timestamp or declare ratings.columns in cbrec.schema)",
                       cb_csv_name(c), cb_csv_line(c));
    if (implicit == 0 && sp->col_rating < 0)
        return cb_fail(err, CB_EPARSE, "%s:%zu: rating.implicit = no, but the header names no rating column "
                       "(rating, score, label, y, target or stars)", cb_csv_name(c), cb_csv_line(c));
    return CB_OK;
}

/* The ratings file's header: the columns it names when the schema declares
 * none (their names, trimmed, into *names: malloc'd, NULL-ended), else
 * checked against ratings.columns (header_agrees). */
static int read_ratings_header(cb_ratings_spec *sp, const schema *s, char ***names, cb_error *err) {
    cb_csv *c = NULL;
    int rc = cb_csv_open(&c, sp->path, &sp->csv, err);
    if (rc) return rc;
    char **f;
    size_t *fl, nf;
    rc = next_header(c, "a header and ratings", &f, &fl, &nf, err);
    if (!rc) rc = s->ratings.cols ? header_agrees(&s->ratings, "ratings.columns", c, f, fl, nf, err)
                                  : ratings_cols_from_names(sp, s->implicit, c, f, fl, nf, err);
    if (!rc && !s->ratings.cols && !(*names = cb_calloc(nf + 1, sizeof **names, err))) rc = CB_ENOMEM;
    for (size_t i = 0; !rc && !s->ratings.cols && i < nf; i++) {
        const char *name = f[i];
        size_t len = fl[i];
        cb_trim(&name, &len);
        if (!((*names)[i] = cb_strndup(name, len, err))) rc = CB_ENOMEM;
    }
    cb_csv_close(c);
    return rc;
}

/* The items (users) file the schema declares, if any; afterwards ratings
 * naming ids it does not list are bad rows. */
static int read_declared_attrs(cb_loader *L, const char *dir, filespec *fs, bool is_items, cb_error *err) {
    if (!fs->file) return CB_OK;
    char *path = cb_path_join(dir, fs->file, err);
    if (!path) return CB_ENOMEM;
    int rc = read_attr_file(L, path, fs, is_items, err);
    free(path);
    if (rc) return rc;
    if (is_items) L->items_file = fs->file;
    else L->users_file = fs->file;
    return CB_OK;
}

/* ------------------------------------------------- vocabulary control */

typedef struct lvl_count {
    uint32_t level, count;
} lvl_count;

static int cmp_lvl_count(const void *a, const void *b) {
    const lvl_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->level < y->level ? -1 : x->level > y->level;
}

/* The new vocabulary of a column: the levels on at least min_count rows, at
 * most max_values of them (most frequent first, ties by first appearance),
 * in their old order; with hashing, then the "#k" buckets of the dropped
 * ones. map[old level] = new level or CB_MISSING. */
static int vocab_choose(const cb_column *col, uint32_t n_rows, const vocabspec *v, uint32_t *map, cb_vocab *nv,
                        uint32_t *n_kept, cb_error *err) {
    uint32_t nl = cb_vocab_size(col->levels);
    lvl_count *lc = cb_calloc((size_t)nl + 1, sizeof *lc, err);
    bool *keep = cb_calloc((size_t)nl + 1, sizeof *keep, err);
    int rc = lc && keep ? CB_OK : CB_ENOMEM;
    for (uint32_t l = 0; l < nl && !rc; l++) lc[l].level = l;
    for (uint32_t r = 0; r < n_rows && !rc; r++) {
        if (col->kind == CB_COL_CATEGORICAL && col->cat[r] < nl) lc[col->cat[r]].count++;
        if (col->kind == CB_COL_MULTI)
            for (uint32_t k = col->off[r]; k < col->off[r + 1]; k++) lc[col->val[k]].count++;
    }
    if (!rc) qsort(lc, nl, sizeof *lc, cmp_lvl_count);
    *n_kept = 0;
    for (uint32_t k = 0; k < nl && !rc; k++)
        if (lc[k].count >= (v->min_count ? v->min_count : 1) && (!v->max_values || *n_kept < v->max_values))
            keep[lc[k].level] = true, ++*n_kept;
    for (uint32_t l = 0; l < nl && !rc; l++) {
        map[l] = CB_MISSING;
        if (keep[l]) {
            const char *name = cb_vocab_name(col->levels, l);
            rc = cb_vocab_intern(nv, name, strlen(name), &map[l], NULL, err);
        }
    }
    for (uint32_t l = 0; l < nl && !rc && v->hash; l++) {
        if (keep[l]) continue;
        const char *name = cb_vocab_name(col->levels, l);
        char bucket[24];
        snprintf(bucket, sizeof bucket, "#%u", cb_value_bucket(name, strlen(name), v->hash));
        rc = cb_vocab_intern(nv, bucket, strlen(bucket), &map[l], NULL, err);
    }
    free(lc);
    free(keep);
    return rc;
}

/* Apply one column's vocabulary control in place (levels renumbered, rows remapped). */
static int vocab_apply(cb_column *col, uint32_t n_rows, const vocabspec *v, cb_error *err) {
    uint32_t nl = cb_vocab_size(col->levels), n_kept = 0;
    uint32_t *map = cb_malloc(((size_t)nl + 1) * sizeof *map, err);
    cb_vocab *nv = cb_vocab_create(err);
    vocabspec vs = *v;
    if (col->text) vs.hash = 0; /* a text column's hash is its feature width: tokens are hashed, not levels */
    int rc = map && nv ? vocab_choose(col, n_rows, &vs, map, nv, &n_kept, err) : CB_ENOMEM;
    if (!rc && col->kind == CB_COL_CATEGORICAL) {
        for (uint32_t r = 0; r < n_rows; r++)
            if (col->cat[r] < nl) col->cat[r] = map[col->cat[r]];
    } else if (!rc) { /* multi: compact, dropping removed levels and repeated buckets within a row */
        uint32_t w = 0;
        for (uint32_t r = 0; r < n_rows; r++) {
            uint32_t start = w, lo = col->off[r], hi = col->off[r + 1];
            for (uint32_t k = lo; k < hi; k++) {
                uint32_t nlv = map[col->val[k]];
                bool dup = nlv == CB_MISSING;
                for (uint32_t q = start; q < w && !dup; q++) dup = col->val[q] == nlv;
                if (!dup) col->val[w++] = nlv;
            }
            col->off[r] = start;
            if (r + 1 == n_rows) col->off[n_rows] = w;
            else col->off[r + 1] = hi; /* read by the next row before it is rewritten */
        }
        if (!n_rows) col->off[0] = 0;
    }
    if (!rc) {
        cb_vocab_free(col->levels);
        col->levels = nv;
        nv = NULL;
        col->n_values_seen = nl;
        col->n_dropped = nl - n_kept;
        col->hash_buckets = v->hash;
    }
    cb_vocab_free(nv);
    free(map);
    return rc;
}

/* After loading: each declared multi column's separator, and the schema's vocabulary control. */
static int apply_column_specs(cb_dataset *ds, const char *schema_path, const filespec *fs, bool is_items, cb_error *err) {
    cb_table *t = is_items ? &ds->item_attr : &ds->user_attr;
    for (size_t i = 0; i < fs->n_cols; i++) {
        int c = fs->cols[i].table_col >= 0 ? cb_table_find(t, fs->cols[i].name) : -1;
        if (c < 0 || t->cols[c].kind == CB_COL_NUMERIC) continue;
        if (fs->cols[i].kind == K_MULTI) snprintf(t->cols[c].sep, sizeof t->cols[c].sep, "%s", fs->cols[i].sep);
        /* the schema controls this vocabulary: all values unless it says otherwise */
        t->cols[c].n_values_seen = cb_vocab_size(t->cols[c].levels);
    }
    for (size_t i = 0; i < fs->n_vocab; i++) {
        int c = cb_table_find(t, fs->vocab[i].col);
        if (c < 0 || t->cols[c].kind == CB_COL_NUMERIC)
            return cb_fail(err, CB_EPARSE, "%s:%zu: '%s' is not a categorical or multi column of the %s", schema_path,
                           fs->vocab[i].line, fs->vocab[i].col, is_items ? "items" : "users");
        int rc = vocab_apply(&t->cols[c], t->n_rows, &fs->vocab[i], err);
        if (rc) return rc;
    }
    return CB_OK;
}

static int load_with_schema(cb_dataset **out, const char *dir, schema *s, const cb_load_options *opt,
                            cb_error *err) {
    cb_loader L;
    int rc = cb_ld_begin(&L, s->name ? s->name : "generic", dir, opt, err);
    if (rc) return rc;
    char *p_ratings = NULL, **names = NULL; /* the ratings fields' names (NULL-ended) */
    cb_ratings_spec sp;
    /* Ranges given in the load options win over the schema's. */
    if (s->has_range) cb_ld_default_range(&L, s->y_min, s->y_max);
    if (s->binary) {
        L.declared_binary = true;
        cb_ld_default_range(&L, 0.0f, 1.0f);
    }
    p_ratings = cb_path_join(dir, s->ratings.file, err);
    if (!p_ratings) {
        rc = CB_ENOMEM;
        goto fail;
    }
    if ((rc = read_declared_attrs(&L, dir, &s->items, true, err)) ||
        (rc = read_declared_attrs(&L, dir, &s->users, false, err)))
        goto fail;
    cb_ratings_spec_init(&sp, p_ratings);
    csv_opts_from(&s->ratings, &sp.csv);
    sp.header = s->ratings.header != 0;
    if (s->ratings.cols) {
        sp.col_user = sp.col_item = sp.col_rating = sp.col_ts = sp.col_weight = -1;
        for (size_t i = 0; i < s->ratings.n_cols; i++) {
            col_kind k = s->ratings.cols[i].kind;
            if (k == K_USER) sp.col_user = (int)i;
            if (k == K_ITEM) sp.col_item = (int)i;
            if (k == K_RATING) sp.col_rating = (int)i;
            if (k == K_TIMESTAMP) sp.col_ts = (int)i;
            if (k == K_WEIGHT) sp.col_weight = (int)i;
        }
        sp.n_fields = s->ratings.n_cols;
        if (!(names = cb_calloc(s->ratings.n_cols + 1, sizeof *names, err))) {
            rc = CB_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < s->ratings.n_cols; i++) names[i] = s->ratings.cols[i].name; /* the schema's */
    } else if (!sp.header) {
        rc = cb_fail(err, CB_EPARSE, "%s:%zu: ratings.header = no needs a 'ratings.columns = ...' line", s->path,
                     s->ratings.file_line);
        goto fail;
    }
    if (sp.header) rc = read_ratings_header(&sp, s, &names, err);
    sp.field_names = names;
    if (!rc) rc = cb_ld_read_ratings(&L, &sp, err);
    if (rc) goto fail;
    rc = cb_ld_finish(&L, &sp, out, err);
    if (!rc && ((rc = apply_column_specs(*out, s->path, &s->items, true, err)) ||
                (rc = apply_column_specs(*out, s->path, &s->users, false, err)))) {
        cb_dataset_free(*out);
        *out = NULL;
    }
    goto done;
fail:
    cb_ld_abort(&L);
done:
    for (char **name = names; !s->ratings.cols && name && *name; name++) free(*name); /* the header's */
    free(names);
    free(p_ratings);
    return rc;
}

int cb_load_generic(cb_dataset **out, const char *dir, const char *schema_path, const cb_load_options *opt,
                    cb_error *err) {
    schema s;
    int rc = parse_schema(&s, schema_path, err);
    if (!rc) rc = load_with_schema(out, dir, &s, opt, err);
    schema_free(&s);
    return rc;
}

int cb_schema_files(const char *schema_path, const char *dir, char *files[3], cb_error *err) {
    schema s;
    int rc = parse_schema(&s, schema_path, err);
    const filespec *fs[3] = {&s.ratings, &s.items, &s.users};
    for (int i = 0; i < 3; i++) files[i] = NULL;
    for (int i = 0; i < 3 && !rc; i++)
        if (fs[i]->file && !(files[i] = cb_path_join(dir, fs[i]->file, err))) rc = CB_ENOMEM;
    schema_free(&s);
    for (int i = 0; i < 3 && rc; i++) free(files[i]), files[i] = NULL;
    return rc;
}

int cb_load_ratings_only(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err) {
    schema s;
    schema_init(&s, dir);
    s.ratings.file = cb_strdup("ratings.csv", err);
    int rc = s.ratings.file ? load_with_schema(out, dir, &s, opt, err) : CB_ENOMEM;
    schema_free(&s);
    return rc;
}

