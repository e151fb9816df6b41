/* course_lab — the course lab's pre-joined rows: one user-feature row, one
 * item-feature row and one target per rating, aligned by row, with the column
 * names in separate header files. Its users and items are the distinct ids of
 * those rows, their features must agree wherever an id repeats, and the rows
 * keep their order (the lab's split is a permutation of row positions). */
#include "data/loaders.h"
#include "data/loader.h"

#include <stdlib.h>
#include <string.h>


/* One header file: a single comma-separated line of column names. */
static int read_header_names(const char *path, char ***names, size_t *n, cb_error *err) {
    cb_csv_options o;
    cb_csv_options_default(&o);
    cb_csv *c = NULL;
    int rc = cb_csv_open(&c, path, &o, err);
    if (rc) return rc;
    char **f;
    size_t *fl, nf;
    rc = cb_csv_next(c, &f, &fl, &nf, err);
    if (rc == 0) rc = cb_fail(err, CB_EPARSE, "%s:1: empty header file", cb_csv_name(c));
    if (rc < 0) goto done;
    *names = cb_calloc(nf, sizeof **names, err);
    if (!*names) {
        rc = CB_ENOMEM;
        goto done;
    }
    *n = nf;
    rc = CB_OK;
    for (size_t i = 0; i < nf && !rc; i++) {
        const char *s = f[i];
        size_t len = fl[i];
        cb_trim(&s, &len);
        if (len == 0) rc = cb_fail(err, CB_EPARSE, "%s:%zu: column %zu has no name", cb_csv_name(c), cb_csv_line(c), i + 1);
        else if (!((*names)[i] = cb_strndup(s, len, err))) rc = CB_ENOMEM;
    }
done:
    cb_csv_close(c);
    return rc;
}

static void free_names(char **names, size_t n) {
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* One side (user or item) of the pre-joined rows. */
typedef struct lab_side {
    const char *what;       /* "user" / "item" */
    char *path, *header_path;
    char **names;
    size_t n_cols;
    cb_csv *csv;
    cb_tabbuild *tb;
    cb_vocab *ids;
    size_t *first_line;     /* [cap] line where each id first appeared */
    size_t cap_first;
    float *vals;            /* [n_cols] parsed row */
} lab_side;

static void lab_side_free(lab_side *s) {
    free(s->path);
    free(s->header_path);
    free_names(s->names, s->n_cols);
    cb_csv_close(s->csv);
    free(s->first_line);
    free(s->vals);
}

static int lab_side_open(lab_side *s, const char *dir, const char *file, const char *header, cb_error *err) {
    s->path = cb_path_join(dir, file, err);
    s->header_path = cb_path_join(dir, header, err);
    if (!s->path || !s->header_path) return CB_ENOMEM;
    int rc = read_header_names(s->header_path, &s->names, &s->n_cols, err);
    if (rc) return rc;
    for (size_t i = 0; i < s->n_cols; i++) {
        int col = cb_tb_add_col(s->tb, s->names[i], CB_COL_NUMERIC, err);
        if (col < 0) { /* name the header file in the message */
            if (!err) return col;
            cb_error e = *err;
            return cb_fail(err, col, "%s:1: %s", s->header_path, e.msg);
        }
    }
    s->vals = cb_calloc(s->n_cols, sizeof *s->vals, err);
    if (!s->vals) return CB_ENOMEM;
    cb_csv_options o;
    cb_csv_options_default(&o);
    return cb_csv_open(&s->csv, s->path, &o, err);
}

/* Parse the next row of one side. Returns 1 with *idx set, 0 at EOF, 2 for
 * a bad row (message in err), <0 on a hard error. */
static int lab_side_row(lab_side *s, uint32_t *idx, cb_error *err) {
    char **f;
    size_t *fl, nf;
    int rc = cb_csv_next(s->csv, &f, &fl, &nf, err);
    if (rc <= 0) return rc;
    const char *name = cb_csv_name(s->csv);
    size_t line = cb_csv_line(s->csv);
    if (nf != s->n_cols) {
        cb_fail(err, CB_EPARSE, "%s:%zu: expected %zu fields (as in %s), found %zu", name, line, s->n_cols,
                s->header_path, nf);
        return 2;
    }
    if (fl[0] == 0) {
        cb_fail(err, CB_EPARSE, "%s:%zu: empty %s id", name, line, s->what);
        return 2;
    }
    for (size_t i = 0; i < nf; i++)
        if (!cb_fast_float(f[i], fl[i], &s->vals[i])) {
            cb_fail(err, CB_EPARSE, "%s:%zu: column '%s': '%.*s' is not a finite number", name, line, s->names[i],
                    CLIP(f[i], fl[i]), f[i]);
            return 2;
        }
    bool added;
    rc = cb_vocab_intern(s->ids, f[0], fl[0], idx, &added, err);
    if (rc) return rc;
    if (added) {
        if (*idx >= s->cap_first) {
            size_t cap = s->cap_first ? s->cap_first * 2 : 1024;
            size_t *p = cb_realloc_array(s->first_line, cap, sizeof *p, err);
            if (!p) return CB_ENOMEM;
            s->first_line = p;
            s->cap_first = cap;
        }
        s->first_line[*idx] = line;
        for (size_t i = 0; i < nf; i++) {
            rc = cb_tb_set_num(s->tb, (int)i, *idx, s->vals[i], err);
            if (rc) return rc;
        }
        return 1;
    }
    const cb_table *t = s->tb->t;
    for (size_t i = 0; i < nf; i++)
        if (t->cols[i].num[*idx] != s->vals[i]) {
            cb_fail(err, CB_EPARSE, "%s:%zu: %s %.*s has '%s' = %g here but %g at line %zu", name, line, s->what,
                    CLIP(f[0], fl[0]), f[0], s->names[i], s->vals[i], t->cols[i].num[*idx], s->first_line[*idx]);
            return 2;
        }
    return 1;
}

/* Append one rating; y has been checked. */
static int lab_append(cb_dataset *ds, uint32_t u, uint32_t it, float y, cb_error *err) {
    if (ds->n_ratings == ds->cap_ratings) {
        size_t cap = ds->cap_ratings ? ds->cap_ratings * 2 : 65536;
        cb_rating *p = cb_realloc_array(ds->ratings, cap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        ds->ratings = p;
        ds->cap_ratings = cap;
    }
    ds->ratings[ds->n_ratings++] = (cb_rating){u, it, y, 0};
    return CB_OK;
}

/* The target of a row: one finite number, inside a declared range. False
 * with the message in err otherwise. */
static bool lab_target(const cb_loader *L, cb_csv *cy, char **f, const size_t *fl, size_t nf, float *y,
                       cb_error *err) {
    size_t line = cb_csv_line(cy);
    if (nf != 1 || !cb_fast_float(f[0], fl[0], y)) {
        cb_fail(err, CB_EPARSE, "%s:%zu: expected one finite number", cb_csv_name(cy), line);
        return false;
    }
    if (L->declared_range && (*y < L->opt.y_min || *y > L->opt.y_max)) {
        cb_fail(err, CB_EPARSE, "%s:%zu: rating %g outside the declared range [%g, %g]", cb_csv_name(cy), line, *y,
                L->opt.y_min, L->opt.y_max);
        return false;
    }
    return true;
}

/* The three files in step, row by row: user features, item features, target. */
static int lab_read_rows(cb_loader *L, lab_side *us, lab_side *is, cb_csv *cy, const char *p_y, cb_error *err) {
    for (;;) {
        uint32_t u = 0, it = 0;
        int ru = lab_side_row(us, &u, err);
        if (ru < 0) return ru;
        cb_error e_item;
        int ri = lab_side_row(is, &it, &e_item);
        if (ri < 0) {
            if (err) *err = e_item;
            return ri;
        }
        char **f;
        size_t *fl, nf;
        int ry = cb_csv_next(cy, &f, &fl, &nf, err);
        if (ry < 0) return ry;
        if (ru == 0 && ri == 0 && ry == 0) break;
        if (ru == 0 || ri == 0 || ry == 0) {
            const char *short_name = ru == 0 ? us->path : ri == 0 ? is->path : p_y;
            size_t line = ru == 0 ? cb_csv_line(is->csv) : cb_csv_line(us->csv);
            return cb_fail(err, CB_EPARSE, "%s:%zu: the three files have different row counts (%s ends first)",
                           ru == 0 ? is->path : us->path, line, short_name);
        }
        float y = 0;
        bool bad = ru == 2 || ri == 2;
        if (ri == 2 && ru != 2 && err) *err = e_item;
        if (!bad) bad = !lab_target(L, cy, f, fl, nf, &y, err);
        if (bad) {
            if (!L->opt.skip_bad_rows) return CB_EPARSE;
            L->ds->n_skipped++;
            continue;
        }
        int rc = lab_append(L->ds, u, it, y, err);
        if (rc) return rc;
    }
    if (L->ds->n_ratings == 0) return cb_fail(err, CB_EPARSE, "%s:1: no rows", us->path);
    return CB_OK;
}

/* Titles from the lab's movie list (movieId,title,genres), for the items that have rows. */
static int lab_read_titles(cb_loader *L, const char *p_list, cb_error *err) {
    if (!cb_file_exists(p_list)) return CB_OK;
    cb_csv_options o;
    cb_csv_options_default(&o);
    cb_csv *cl = NULL;
    int rc = cb_csv_open(&cl, p_list, &o, err);
    if (rc) return rc;
    char **f;
    size_t *fl, nf;
    bool first = true;
    while ((rc = cb_csv_next(cl, &f, &fl, &nf, err)) > 0) {
        if (first) {
            first = false;
            continue;
        }
        if (nf < 2) {
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: expected movieId,title,genres", cb_csv_name(cl), cb_csv_line(cl));
            break;
        }
        int64_t it = cb_vocab_find(L->ds->items, f[0], fl[0]);
        if (it >= 0 && (rc = cb_ld_set_title(L, (uint32_t)it, f[1], fl[1], err))) break;
    }
    cb_csv_close(cl);
    return rc < 0 ? rc : CB_OK;
}

int cb_load_course_lab(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err) {
    cb_loader L;
    int rc = cb_ld_begin(&L, "course-lab", dir, opt, err);
    if (rc) return rc;
    L.ds->prejoined = true;
    lab_side us = {.what = "user", .tb = &L.users, .ids = L.ds->users};
    lab_side is = {.what = "item", .tb = &L.items, .ids = L.ds->items};
    char *p_y = NULL, *p_list = NULL;
    cb_csv *cy = NULL;
    rc = lab_side_open(&us, dir, "content_user_train.csv", "content_user_train_header.txt", err);
    if (!rc) rc = lab_side_open(&is, dir, "content_item_train.csv", "content_item_train_header.txt", err);
    if (rc) goto done;
    p_y = cb_path_join(dir, "content_y_train.csv", err);
    p_list = cb_path_join(dir, "content_movie_list.csv", err);
    if (!p_y || !p_list) {
        rc = CB_ENOMEM;
        goto done;
    }
    cb_csv_options o;
    cb_csv_options_default(&o);
    if ((rc = cb_csv_open(&cy, p_y, &o, err))) goto done;
    /* The lab's protocol: user id, rating count and rating ave are not model inputs. */
    L.ds->user_lead_cols = (us.n_cols >= 3 && cb_ieq(us.names[1], strlen(us.names[1]), "rating count") &&
                            cb_ieq(us.names[2], strlen(us.names[2]), "rating ave")) ? 3 : 1;
    L.ds->item_lead_cols = 1;
    rc = lab_read_rows(&L, &us, &is, cy, p_y, err);
    if (!rc) rc = lab_read_titles(&L, p_list, err);
done:
    lab_side_free(&us);
    lab_side_free(&is);
    cb_csv_close(cy);
    free(p_y);
    free(p_list);
    if (rc) {
        cb_ld_abort(&L);
        return rc;
    }
    return cb_ld_finish(&L, NULL, out, err);
}
