/* testutil — shared helpers for cmocka tests: temporary directories, fixture
 * files, and locating the shared MovieLens data (tests skip, saying so, when
 * it is absent). Header-only so each test binary stays self-contained. */
#ifndef CB_TESTUTIL_H
#define CB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"

/* Make a fresh temporary directory; returns a static-lifetime malloc'd path. */
static inline char *tu_tmpdir(void) {
    char tmpl[] = "/tmp/cbrec-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

/* Write `text` to dir/name and return the malloc'd full path. */
static inline char *tu_write(const char *dir, const char *name, const char *text) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    assert_int_equal(fclose(f), 0);
    return p;
}

static inline char *tu_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A tiny catalog in dir for content-column tests: cbrec.schema, i.csv with 30
 * items "i0".."i29" ("Item N") of genres genres[i % 3] ('|'-joined), tags
 * tags[i % 2] (';'-joined; no tags column when tags is NULL) and brand Acme
 * (even i) or Zed (odd), and r.csv with 8 ratings of each of 40 users. */
static inline void tu_write_content_catalog(const char *dir, const char *const genres[3], const char *const tags[2]) {
    char items[16384], ratings[8192] = "user,item,rating\n";
    snprintf(items, sizeof items, "id,name,genres,%sbrand\n", tags ? "tags," : "");
    for (int i = 0; i < 30; i++)
        snprintf(items + strlen(items), sizeof items - strlen(items), "i%d,Item %d,%s,%s%s%s\n", i, i, genres[i % 3],
                 tags ? tags[i % 2] : "", tags ? "," : "", i % 2 ? "Zed" : "Acme");
    for (int u = 0; u < 40; u++)
        for (int k = 0; k < 8; k++)
            snprintf(ratings + strlen(ratings), sizeof ratings - strlen(ratings), "u%d,i%d,%d\n", u, (u * 7 + k * 3) % 30,
                     1 + (u + k) % 5);
    free(tu_write(dir, "cbrec.schema", tags ? "ratings = r.csv\nitems = i.csv\nitems.columns = id, name:title, "
                                              "genres:multi(|), tags:multi(;), brand:categorical\n"
                                            : "ratings = r.csv\nitems = i.csv\nitems.columns = id, name:title, "
                                              "genres:multi(|), brand:categorical\n"));
    free(tu_write(dir, "i.csv", items));
    free(tu_write(dir, "r.csv", ratings));
}

/* tu_write_content_catalog's ratings and 30 items with 100 tags each (t0..t99
 * or t100..t199: 200 in all), genres, a brand (Acme, 7, or "Ac\x1eme", which
 * holds the ASCII record separator) and a categorical year (1990..1994), for
 * tests of an item's many content values. */
static inline void tu_write_many_tags_catalog(const char *dir) {
    const char *const genres[3] = {"Action", "Comedy", "Drama"}, *const brands[3] = {"Acme", "7", "Ac\x1eme"};
    tu_write_content_catalog(dir, genres, NULL); /* its ratings; the items and schema replaced */
    size_t size = 30 * 700 + 64, len = 0;
    char *items = malloc(size);
    assert_non_null(items);
    len += (size_t)snprintf(items, size, "id,name,genres,tags,brand,year\n");
    for (int i = 0; i < 30; i++) {
        len += (size_t)snprintf(items + len, size - len, "i%d,Item %d,%s,", i, i, genres[i % 3]);
        for (int t = 0; t < 100; t++)
            len += (size_t)snprintf(items + len, size - len, "%st%d", t ? ";" : "", i % 2 * 100 + t);
        len += (size_t)snprintf(items + len, size - len, ",%s,%d\n", brands[i % 3], 1990 + i % 5);
    }
    assert_true(len < size);
    free(tu_write(dir, "i.csv", items));
    free(items);
    free(tu_write(dir, "cbrec.schema", "ratings = r.csv\nitems = i.csv\nitems.columns = id, name:title, "
                                       "genres:multi(|), tags:multi(;), brand:categorical, year:categorical\n"));
}

/* Remove a directory tree made by tu_tmpdir. */
static inline void tu_rmrf(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* Path of a shared dataset folder (e.g. "ml-100k") or NULL when absent.
 * Looks in $CBREC_DATA, then ../shared/data. */
static inline const char *tu_shared_data(const char *name) {
    static char buf[4096];
    /* make test VALGRIND=1: MovieLens-sized runs under memcheck take tens of minutes */
    if (getenv("CBREC_NO_SHARED_DATA")) return NULL;
    const char *roots[2] = {getenv("CBREC_DATA"), "../shared/data"};
    for (int i = 0; i < 2; i++) {
        if (!roots[i]) continue;
        snprintf(buf, sizeof buf, "%s/%s", roots[i], name);
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) return buf;
    }
    return NULL;
}

/* ---- Small in-memory datasets for unit tests: ids interned in order of
 * first use, ratings appended; no attribute columns (a test may add some).
 * Free with cb_dataset_free. */
static inline cb_dataset *tu_ds_new(void) {
    cb_dataset *ds = calloc(1, sizeof *ds);
    assert_non_null(ds);
    ds->users = cb_vocab_create(NULL);
    ds->items = cb_vocab_create(NULL);
    assert_non_null(ds->users);
    assert_non_null(ds->items);
    ds->roles = (cb_roles){-1, -1, -1, -1, -1, -1};
    ds->y_min = 1;
    ds->y_max = 5;
    return ds;
}

static inline uint32_t tu_ds_intern(cb_vocab *v, const char *id) {
    uint32_t idx;
    assert_int_equal(cb_vocab_intern(v, id, strlen(id), &idx, NULL, NULL), CB_OK);
    return idx;
}

/* Append a rating and return its index into ds->ratings. */
static inline uint32_t tu_ds_add(cb_dataset *ds, const char *user, const char *item, float y, uint32_t ts) {
    if (ds->n_ratings == ds->cap_ratings) {
        ds->cap_ratings = ds->cap_ratings ? 2 * ds->cap_ratings : 16;
        ds->ratings = realloc(ds->ratings, ds->cap_ratings * sizeof *ds->ratings);
        assert_non_null(ds->ratings);
    }
    cb_rating *r = &ds->ratings[ds->n_ratings];
    r->user = tu_ds_intern(ds->users, user);
    r->item = tu_ds_intern(ds->items, item);
    r->y = y;
    r->ts = ts;
    return (uint32_t)ds->n_ratings++;
}

/* Skip the current test, printing why (cmocka prints [  SKIPPED ]). */
#define TU_SKIP(...) do { fprintf(stdout, "skip reason: " __VA_ARGS__); fputc('\n', stdout); skip(); } while (0)

#endif
