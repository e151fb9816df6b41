/* movielens — loaders for the three MovieLens layouts: latest-small
 * (and the 25M/32M releases, same files), 100K and 1M.
 *
 * Each reads the item (and user) files first, so the catalog keeps the
 * items file's order and items nobody rated still exist, then the ratings
 * through the shared strict reader, which rejects ids the items / users
 * files do not know. Latin-1 files (100K, 1M) are converted to UTF-8 by the
 * CSV reader. Item tables get a "genres" multi-valued column and a "year"
 * parsed from the title ("Toy Story (1995)"), or from the release date when
 * the title has none; user tables get age, gender, occupation and a US
 * region from the first digit of the zip code ("other" for foreign codes). */
#include "data/loaders.h"
#include "data/loader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Intern a new item (or user) id from an attribute file; duplicates are bad rows. */
static int new_id(cb_vocab *v, const char *s, size_t len, uint32_t *idx, bool *dup, cb_error *err) {
    bool added;
    int rc = cb_vocab_intern(v, s, len, idx, &added, err);
    *dup = !added;
    return rc;
}

/* Open a MovieLens 100K / 1M file: latin-1, `delim`-separated, no quoting. */
static int open_dat(cb_csv **c, const char *path, const char *delim, cb_error *err) {
    cb_csv_options o;
    cb_csv_options_default(&o);
    o.delim = delim;
    o.quoting = 0;
    o.latin1 = 1;
    return cb_csv_open(c, path, &o, err);
}

/* Every MovieLens layout ends the same way: its ratings file (user, item,
 * rating, timestamp; ids checked against the files read before) within the
 * layout's rating range, then the final checks. Frees L on failure. */
static int ratings_and_finish(cb_loader *L, const char *path, const char *delim, bool header, float y_min,
                              float y_max, cb_dataset **out, cb_error *err) {
    cb_ratings_spec spec;
    cb_ld_default_range(L, y_min, y_max);
    cb_ratings_spec_init(&spec, path);
    if (strcmp(delim, ",")) {
        spec.csv.delim = delim;
        spec.csv.quoting = 0;
    }
    spec.header = header;
    spec.n_fields = 4;
    int rc = CB_OK;
    if (header) { /* latest-small: userId,movieId,rating,timestamp in any order */
        static const char *const names[4] = {"userId", "movieId", "rating", "timestamp"};
        memcpy(spec.names, names, sizeof names);
        cb_ratings_spec named = spec;
        rc = cb_ratings_spec_resolve(&named, &spec, err);
        memset(spec.names, 0, sizeof spec.names);
    }
    if (!rc) rc = cb_ld_read_ratings(L, &spec, err);
    if (!rc) return cb_ld_finish(L, &spec, out, err); /* which frees L itself on failure */
    cb_ld_abort(L);
    return rc;
}

/* ---- movies: movies.csv (latest-small: movieId,title,genres with a header,
 * UTF-8, quoted) and movies.dat (1M: MovieID::Title::Genres, latin-1). One
 * item per row, a year from the title, '|'-separated genres. */

/* The field of each of the n columns `role` names in a header of n fields
 * (any order, any case, outer blanks allowed; the csv reader drops a BOM) into pos[0..n). By position alone,
 * "movieId,genres,title" swapped every title with its genres, and
 * "movieId,userId,tag,..." gave tags to the movies numbered like their users,
 * without a word. */
static int header_columns(const char *name, size_t line, char **f, const size_t *fl, const char *const *role, int n,
                          const char *fields, int *pos, cb_error *err) {
    for (int k = 0; k < n; k++) pos[k] = -1;
    for (int i = 0; i < n; i++) {
        const char *h = f[i];
        size_t len = fl[i];
        cb_trim(&h, &len); /* "userId, movieId, ...": read by position, it loaded as before */
        for (int k = 0; k < n; k++)
            if (cb_ieq(h, len, role[k]) && pos[k] < 0) pos[k] = i;
    }
    for (int k = 0; k < n; k++)
        if (pos[k] < 0)
            return cb_fail(err, CB_EPARSE, "%s:%zu: the header has no column '%s' (expected %s, in any order; other "
                           "columns: describe the files in a cbrec.schema)", name, line, role[k], fields);
    return CB_OK;
}

static int read_movies(cb_loader *L, const char *path, bool is_dat, cb_error *err) {
    const char *fields = is_dat ? "MovieID::Title::Genres" : "movieId,title,genres";
    cb_csv *c = NULL;
    cb_csv_options o;
    cb_csv_options_default(&o);
    int rc = is_dat ? open_dat(&c, path, "::", err) : cb_csv_open(&c, path, &o, err);
    if (rc) return rc;
    const char *name = cb_csv_name(c);
    char **f;
    size_t *fl, nf;
    int pos[3] = {0, 1, 2}; /* the fields of the id, the title and the genres */
    int col_genres = cb_tb_add_col(&L->items, "genres", CB_COL_MULTI, err);
    int col_year = col_genres < 0 ? col_genres : cb_tb_add_col(&L->items, "year", CB_COL_NUMERIC, err);
    if (col_year < 0) {
        rc = col_year;
        goto done;
    }
    if (!is_dat) { /* the header line */
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc <= 0) {
            if (rc == 0) rc = cb_fail(err, CB_EPARSE, "%s:1: empty file (expected %s)", name, fields);
            goto done;
        }
        if ((rc = cb_header_lone_cr(name, cb_csv_line(c), f, fl, nf, err))) goto done;
        if (nf != 3) {
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: header has %zu fields, expected 3 (%s)", name, cb_csv_line(c), nf,
                         fields);
            goto done;
        }
        static const char *const role[3] = {"movieId", "title", "genres"};
        if ((rc = header_columns(name, cb_csv_line(c), f, fl, role, 3, fields, pos, err))) goto done;
    }
    for (;;) {
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc == 0) break;
        if (rc < 0) goto done;
        size_t line = cb_csv_line(c);
        if (nf != 3) BAD_ROW("%s:%zu: expected 3 fields (%s), found %zu", name, line, fields, nf);
        const char *id = f[pos[0]], *title = f[pos[1]], *genres = f[pos[2]];
        size_t id_len = fl[pos[0]], title_len = fl[pos[1]], genres_len = fl[pos[2]];
        if (id_len == 0) BAD_ROW("%s:%zu: empty movie id", name, line);
        uint32_t it;
        bool dup;
        rc = new_id(L->ds->items, id, id_len, &it, &dup, err);
        if (rc) goto done;
        if (dup) BAD_ROW("%s:%zu: movie id '%.*s' listed twice", name, line, CLIP(id, id_len), id);
        rc = cb_ld_set_title(L, it, title, title_len, err);
        if (!rc) rc = cb_tb_set_num(&L->items, col_year, it, cb_year_from_title(title, title_len), err);
        if (!rc && !cb_ieq(genres, genres_len, "(no genres listed)"))
            rc = cb_tb_add_multi_split(&L->items, col_genres, it, genres, genres_len, "|", err);
        if (rc) goto done;
    next_row:;
    }
    rc = CB_OK;
done:
    cb_csv_close(c);
    return rc;
}

/* ---- latest-small: movies.csv, tags.csv, ratings.csv */

typedef struct tag_pair {
    uint32_t item, level, seq;
} tag_pair;

static int cmp_tag_pair(const void *a, const void *b) {
    const tag_pair *x = a, *y = b;
    if (x->item != y->item) return x->item < y->item ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* tags.csv (userId,movieId,tag,timestamp) -> MULTI item column "tags", lower-cased.
 * Tag rows come grouped by user, so pairs are gathered and sorted by item. */
static int read_tags_csv(cb_loader *L, const char *path, cb_error *err) {
    cb_csv_options o;
    cb_csv_options_default(&o);
    cb_csv *c = NULL;
    int rc = cb_csv_open(&c, path, &o, err);
    if (rc) return rc;
    const char *name = cb_csv_name(c);
    char **f;
    size_t *fl, nf;
    tag_pair *pairs = NULL;
    size_t n_pairs = 0, cap_pairs = 0;
    char *low = NULL;
    size_t cap_low = 0;
    int col = cb_tb_add_col(&L->items, "tags", CB_COL_MULTI, err);
    if (col < 0) {
        rc = col;
        goto done;
    }
    cb_vocab *levels = L->ds->item_attr.cols[col].levels;
    rc = cb_csv_next(c, &f, &fl, &nf, err);
    if (rc <= 0) goto done; /* an empty tags file is no tags */
    static const char *const role[4] = {"userId", "movieId", "tag", "timestamp"};
    int pos[4];
    if (nf != 4)
        rc = cb_fail(err, CB_EPARSE, "%s:%zu: header has %zu fields, expected 4 (userId,movieId,tag,timestamp)", name,
                     cb_csv_line(c), nf);
    else rc = header_columns(name, cb_csv_line(c), f, fl, role, 4, "userId,movieId,tag,timestamp", pos, err);
    if (rc) goto done;
    for (;;) {
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc == 0) break;
        if (rc < 0) goto done;
        size_t line = cb_csv_line(c);
        if (nf != 4) BAD_ROW("%s:%zu: expected 4 fields (userId,movieId,tag,timestamp), found %zu", name, line, nf);
        int64_t it = cb_vocab_find(L->ds->items, f[pos[1]], fl[pos[1]]);
        if (it < 0)
            BAD_ROW("%s:%zu: unknown item id '%.*s' (not in movies.csv)", name, line, CLIP(f[pos[1]], fl[pos[1]]),
                    f[pos[1]]);
        const char *s = f[pos[2]];
        size_t n = fl[pos[2]];
        while (n && (*s == ' ' || *s == '\t')) s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        if (n == 0) goto next_row;
        if (n > cap_low) {
            char *p = realloc(low, n);
            if (!p) {
                rc = cb_fail(err, CB_ENOMEM, "out of memory");
                goto done;
            }
            low = p;
            cap_low = n;
        }
        for (size_t k = 0; k < n; k++) low[k] = (s[k] >= 'A' && s[k] <= 'Z') ? (char)(s[k] - 'A' + 'a') : s[k];
        uint32_t lvl;
        rc = cb_vocab_intern(levels, low, n, &lvl, NULL, err);
        if (rc) goto done;
        if (n_pairs == cap_pairs) {
            size_t cap = cap_pairs ? cap_pairs * 2 : 1024;
            tag_pair *p = cb_realloc_array(pairs, cap, sizeof *p, err);
            if (!p) {
                rc = CB_ENOMEM;
                goto done;
            }
            pairs = p;
            cap_pairs = cap;
        }
        pairs[n_pairs] = (tag_pair){(uint32_t)it, lvl, (uint32_t)n_pairs};
        n_pairs++;
    next_row:;
    }
    if (n_pairs) qsort(pairs, n_pairs, sizeof *pairs, cmp_tag_pair);
    rc = CB_OK;
    for (size_t k = 0; k < n_pairs && !rc; k++) {
        const char *t = cb_vocab_name(levels, pairs[k].level);
        rc = cb_tb_add_multi(&L->items, col, pairs[k].item, t, strlen(t), err);
    }
done:
    free(pairs);
    free(low);
    cb_csv_close(c);
    return rc;
}

bool cb_ml_ratings_header(const char *path) {
    cb_csv *c = NULL;
    cb_csv_options o;
    cb_csv_options_default(&o);
    cb_error e;
    if (cb_csv_open(&c, path, &o, &e)) return false;
    char **f;
    size_t *fl, nf;
    bool ml = false;
    if (cb_csv_next(c, &f, &fl, &nf, &e) > 0)
        for (size_t i = 0; i < nf; i++) ml |= cb_ieq(f[i], fl[i], "movieId");
    cb_csv_close(c);
    return ml;
}

int cb_load_ml_small(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err) {
    cb_loader L;
    int rc = cb_ld_begin(&L, "movielens-latest", dir, opt, err);
    if (rc) return rc;
    char *movies = cb_path_join(dir, "movies.csv", err);
    char *ratings = cb_path_join(dir, "ratings.csv", err);
    char *tags = cb_path_join(dir, "tags.csv", err);
    if (!movies || !ratings || !tags) {
        rc = CB_ENOMEM;
        goto fail;
    }
    rc = read_movies(&L, movies, false, err);
    if (rc) goto fail;
    if (cb_file_exists(tags)) {
        rc = read_tags_csv(&L, tags, err);
        if (rc) goto fail;
    }
    L.items_file = "movies.csv";
    rc = ratings_and_finish(&L, ratings, ",", true, 0.5f, 5.0f, out, err);
    goto done;
fail:
    cb_ld_abort(&L);
done:
    free(movies);
    free(ratings);
    free(tags);
    return rc;
}

/* ---- 100K: u.item, u.genre, u.user, u.data */

static const char *const ml100k_genres[19] = {
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western"};

/* u.genre: "name|index" lines. Fills names[19] (owned strings). */
static int read_u_genre(const char *path, char *names[19], cb_error *err) {
    cb_csv *c = NULL;
    int rc = open_dat(&c, path, "|", err);
    if (rc) return rc;
    char **f;
    size_t *fl, nf;
    while ((rc = cb_csv_next(c, &f, &fl, &nf, err)) > 0) {
        uint32_t idx;
        if (nf != 2 || !cb_fast_u32(f[1], fl[1], &idx) || idx >= 19) {
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: expected 'name|index' with index 0..18", cb_csv_name(c),
                         cb_csv_line(c));
            break;
        }
        free(names[idx]);
        names[idx] = cb_strndup(f[0], fl[0], err);
        if (!names[idx]) {
            rc = CB_ENOMEM;
            break;
        }
    }
    cb_csv_close(c);
    return rc < 0 ? rc : CB_OK;
}

static int read_u_item(cb_loader *L, const char *path, char *const genre_names[19], cb_error *err) {
    cb_csv *c = NULL;
    int rc = open_dat(&c, path, "|", err);
    if (rc) return rc;
    const char *name = cb_csv_name(c);
    char **f;
    size_t *fl, nf;
    int col_genres = cb_tb_add_col(&L->items, "genres", CB_COL_MULTI, err);
    int col_year = col_genres < 0 ? col_genres : cb_tb_add_col(&L->items, "year", CB_COL_NUMERIC, err);
    if (col_year < 0) {
        rc = col_year;
        goto done;
    }
    for (;;) {
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc == 0) break;
        if (rc < 0) goto done;
        size_t line = cb_csv_line(c);
        if (nf != 24) BAD_ROW("%s:%zu: expected 24 fields (id|title|release date|video date|url|19 genre flags), found %zu", name, line, nf);
        if (fl[0] == 0) BAD_ROW("%s:%zu: empty movie id", name, line);
        for (int g = 0; g < 19; g++)
            if (fl[5 + g] != 1 || (f[5 + g][0] != '0' && f[5 + g][0] != '1'))
                BAD_ROW("%s:%zu: genre flag %d is '%.*s', expected 0 or 1", name, line, g, CLIP(f[5 + g], fl[5 + g]),
                        f[5 + g]);
        uint32_t it;
        bool dup;
        rc = new_id(L->ds->items, f[0], fl[0], &it, &dup, err);
        if (rc) goto done;
        if (dup) BAD_ROW("%s:%zu: movie id '%.*s' listed twice", name, line, CLIP(f[0], fl[0]), f[0]);
        float year = cb_year_from_title(f[1], fl[1]);
        if (isnan(year)) year = cb_year_from_date(f[2], fl[2]);
        rc = cb_ld_set_title(L, it, f[1], fl[1], err);
        if (!rc) rc = cb_tb_set_num(&L->items, col_year, it, year, err);
        /* "unknown" is the flag of movies without a genre: not a genre. */
        for (int g = 1; g < 19 && !rc; g++)
            if (f[5 + g][0] == '1') rc = cb_tb_add_multi(&L->items, col_genres, it, genre_names[g], strlen(genre_names[g]), err);
        if (rc) goto done;
    next_row:;
    }
    rc = CB_OK;
done:
    cb_csv_close(c);
    return rc;
}

/* Shared by 100K (u.user: id|age|gender|occupation|zip) and 1M
 * (users.dat: id::gender::age::occupation-code::zip). */
static const char *const ml1m_occupations[21] = {
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer"};

static int read_users(cb_loader *L, const char *path, bool is_1m, cb_error *err) {
    cb_csv *c = NULL;
    int rc = open_dat(&c, path, is_1m ? "::" : "|", err);
    if (rc) return rc;
    const char *name = cb_csv_name(c);
    char **f;
    size_t *fl, nf;
    int col_age = cb_tb_add_col(&L->users, "age", CB_COL_NUMERIC, err);
    int col_gender = col_age < 0 ? col_age : cb_tb_add_col(&L->users, "gender", CB_COL_CATEGORICAL, err);
    int col_occ = col_gender < 0 ? col_gender : cb_tb_add_col(&L->users, "occupation", CB_COL_CATEGORICAL, err);
    int col_region = col_occ < 0 ? col_occ : cb_tb_add_col(&L->users, "region", CB_COL_CATEGORICAL, err);
    if (col_region < 0) {
        rc = col_region;
        goto done;
    }
    int i_age = is_1m ? 2 : 1, i_gender = is_1m ? 1 : 2;
    for (;;) {
        rc = cb_csv_next(c, &f, &fl, &nf, err);
        if (rc == 0) break;
        if (rc < 0) goto done;
        size_t line = cb_csv_line(c);
        if (nf != 5)
            BAD_ROW("%s:%zu: expected 5 fields (%s), found %zu", name, line,
                    is_1m ? "UserID::Gender::Age::Occupation::Zip-code" : "id|age|gender|occupation|zip", nf);
        if (fl[0] == 0) BAD_ROW("%s:%zu: empty user id", name, line);
        float age;
        if (!cb_fast_float(f[i_age], fl[i_age], &age) || age < 0 || age > 150)
            BAD_ROW("%s:%zu: age '%.*s' is not a number in [0, 150]", name, line, CLIP(f[i_age], fl[i_age]), f[i_age]);
        if (fl[i_gender] == 0) BAD_ROW("%s:%zu: empty gender", name, line);
        const char *occ = f[3];
        size_t occ_len = fl[3];
        if (is_1m) {
            uint32_t code;
            if (!cb_fast_u32(f[3], fl[3], &code) || code > 20)
                BAD_ROW("%s:%zu: occupation code '%.*s' is not in 0..20", name, line, CLIP(f[3], fl[3]), f[3]);
            occ = ml1m_occupations[code];
            occ_len = strlen(occ);
        }
        uint32_t u;
        bool dup;
        rc = new_id(L->ds->users, f[0], fl[0], &u, &dup, err);
        if (rc) goto done;
        if (dup) BAD_ROW("%s:%zu: user id '%.*s' listed twice", name, line, CLIP(f[0], fl[0]), f[0]);
        const char *region = cb_zip_region(f[4], fl[4]);
        rc = cb_tb_set_num(&L->users, col_age, u, age, err);
        if (!rc) rc = cb_tb_set_cat(&L->users, col_gender, u, f[i_gender], fl[i_gender], err);
        if (!rc && occ_len) rc = cb_tb_set_cat(&L->users, col_occ, u, occ, occ_len, err);
        if (!rc) rc = cb_tb_set_cat(&L->users, col_region, u, region, strlen(region), err);
        if (rc) goto done;
    next_row:;
    }
    rc = CB_OK;
done:
    cb_csv_close(c);
    return rc;
}

int cb_load_ml_100k(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err) {
    cb_loader L;
    int rc = cb_ld_begin(&L, "movielens-100k", dir, opt, err);
    if (rc) return rc;
    char *genre_names[19] = {0};
    char *p_data = cb_path_join(dir, "u.data", err);
    char *p_item = cb_path_join(dir, "u.item", err);
    char *p_user = cb_path_join(dir, "u.user", err);
    char *p_genre = cb_path_join(dir, "u.genre", err);
    if (!p_data || !p_item || !p_user || !p_genre) {
        rc = CB_ENOMEM;
        goto fail;
    }
    if (cb_file_exists(p_genre)) {
        rc = read_u_genre(p_genre, genre_names, err);
        if (rc) goto fail;
    }
    for (int g = 0; g < 19; g++)
        if (!genre_names[g]) {
            genre_names[g] = cb_strdup(ml100k_genres[g], err);
            if (!genre_names[g]) {
                rc = CB_ENOMEM;
                goto fail;
            }
        }
    if (!cb_file_exists(p_item)) {
        rc = cb_fail(err, CB_EIO, "%s: missing (MovieLens 100K needs u.data and u.item)", p_item);
        goto fail;
    }
    rc = read_u_item(&L, p_item, genre_names, err);
    if (rc) goto fail;
    L.items_file = "u.item";
    if (cb_file_exists(p_user)) {
        rc = read_users(&L, p_user, false, err);
        if (rc) goto fail;
        L.users_file = "u.user";
    }
    rc = ratings_and_finish(&L, p_data, "\t", false, 1.0f, 5.0f, out, err);
    goto done;
fail:
    cb_ld_abort(&L);
done:
    for (int g = 0; g < 19; g++) free(genre_names[g]);
    free(p_data);
    free(p_item);
    free(p_user);
    free(p_genre);
    return rc;
}

/* ---- 1M: movies.dat, users.dat, ratings.dat */

int cb_load_ml_1m(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err) {
    cb_loader L;
    int rc = cb_ld_begin(&L, "movielens-1m", dir, opt, err);
    if (rc) return rc;
    char *p_ratings = cb_path_join(dir, "ratings.dat", err);
    char *p_movies = cb_path_join(dir, "movies.dat", err);
    char *p_users = cb_path_join(dir, "users.dat", err);
    if (!p_ratings || !p_movies || !p_users) {
        rc = CB_ENOMEM;
        goto fail;
    }
    if (cb_file_exists(p_movies)) {
        rc = read_movies(&L, p_movies, true, err);
        if (rc) goto fail;
        L.items_file = "movies.dat";
    }
    if (cb_file_exists(p_users)) {
        rc = read_users(&L, p_users, true, err);
        if (rc) goto fail;
        L.users_file = "users.dat";
    }
    rc = ratings_and_finish(&L, p_ratings, "::", false, 1.0f, 5.0f, out, err);
    goto done;
fail:
    cb_ld_abort(&L);
done:
    free(p_ratings);
    free(p_movies);
    free(p_users);
    return rc;
}
