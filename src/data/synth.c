/* synth — synthetic rating data with planted structure, at any size.
 *
 * Every user has a hidden taste vector over genres made of shifts from their
 * age bucket, gender, occupation and region plus a personal part, so
 * demographics predict taste. Items have 1-3 genres, a year, a hidden quality
 * and a Zipf-like popularity. Each user rates n_u distinct items (n_u heavy
 * tailed), drawn by popularity and tilted towards their taste (of two
 * popularity draws the better-matching one is kept 3 times out of 4). The
 * rating is clip(round_to_half(3.3 + 0.8 * taste·genres + quality + user bias
 * + noise), 0.5, 5), where taste·genres is the mean taste over the item's
 * genres. Timestamps increase within a user.
 *
 * Cost is O(n_users * n_genres + n_items + n_ratings): popularity draws use
 * an alias table and "already rated" uses one stamp array over items, so tens
 * of millions of ratings take seconds. One seeded RNG, used in a fixed order:
 * the same seed gives the same dataset bit for bit.
 *
 * cb_synth_write() saves any dataset with titles as a MovieLens-latest-style
 * folder (ratings.csv, movies.csv) plus users.csv with the user attribute
 * columns and a cbrec.schema declaring all three, so the generic loader reads
 * the demographics too (without the schema the folder is plain latest-small). */
#include "data/dataset.h"
#include "data/table.h"
#include "data/textutil.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const genre_names[] = {"Action",  "Adventure", "Animation", "Children", "Comedy",
                                          "Crime",   "Documentary", "Drama",   "Fantasy",  "Horror",
                                          "Mystery", "Romance",   "Sci-Fi",    "Thriller", "War",
                                          "Western", "Musical",   "Film-Noir"};
#define N_GENRE_NAMES (sizeof genre_names / sizeof genre_names[0])
#define MAX_GENRES 1000

static const char *const occupations[] = {"student", "engineer", "educator",  "artist",    "healthcare", "programmer",
                                          "writer",  "administrator", "technician", "retired", "marketing", "other"};
#define N_OCC (sizeof occupations / sizeof occupations[0])
#define N_REGIONS 10
#define N_AGE_BUCKETS 7

void cb_synth_config_default(cb_synth_config *c) {
    memset(c, 0, sizeof *c);
    c->n_users = 1000;
    c->n_items = 2000;
    c->n_genres = 12;
    c->n_ratings = 100000;
    c->noise = 0.5;
    c->seed = 42;
}

static int age_bucket(int age) {
    static const int edges[N_AGE_BUCKETS - 1] = {18, 25, 35, 45, 50, 56};
    int b = 0;
    while (b < N_AGE_BUCKETS - 1 && age >= edges[b]) b++;
    return b;
}

/* Vose's alias table over weights w[n]. */
typedef struct alias {
    double *prob;
    uint32_t *alias;
    uint32_t n;
} alias;

static int alias_build(alias *a, const double *w, uint32_t n, cb_error *err) {
    a->n = n;
    a->prob = cb_malloc((size_t)n * sizeof *a->prob, err);
    a->alias = cb_malloc((size_t)n * sizeof *a->alias, err);
    uint32_t *small = cb_malloc((size_t)n * sizeof *small, err);
    uint32_t *large = cb_malloc((size_t)n * sizeof *large, err);
    if (!a->prob || !a->alias || !small || !large) {
        free(small), free(large);
        return CB_ENOMEM;
    }
    double total = 0;
    for (uint32_t i = 0; i < n; i++) total += w[i];
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        a->prob[i] = w[i] * n / total;
        a->alias[i] = i;
        if (a->prob[i] < 1.0) small[ns++] = i;
        else large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[--nl];
        a->alias[s] = l;
        a->prob[l] -= 1.0 - a->prob[s];
        if (a->prob[l] < 1.0) small[ns++] = l;
        else large[nl++] = l;
    }
    while (nl) a->prob[large[--nl]] = 1.0;
    while (ns) a->prob[small[--ns]] = 1.0;
    free(small), free(large);
    return CB_OK;
}

static uint32_t alias_draw(const alias *a, cb_rng *rng) {
    uint64_t r = cb_rng_next(rng);
    uint32_t i = (uint32_t)(((r >> 32) * a->n) >> 32);
    double u = (double)(r & 0xffffffffu) * 0x1.0p-32;
    return u < a->prob[i] ? i : a->alias[i];
}

static void alias_free(alias *a) {
    free(a->prob);
    free(a->alias);
}

static int intern_ids(cb_vocab *v, uint32_t n, cb_error *err) {
    char buf[16];
    for (uint32_t i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "%u", i + 1);
        uint32_t idx;
        int rc = cb_vocab_intern(v, buf, (size_t)len, &idx, NULL, err);
        if (rc) return rc;
    }
    return CB_OK;
}

/* Everything the generator allocates besides the dataset. */
typedef struct synth_work {
    float *taste;        /* [n_users * G] */
    float *user_bias;    /* [n_users] */
    float *shift;        /* [(7 + 2 + N_OCC + N_REGIONS) * G] demographic taste shifts */
    uint32_t *item_genre_off, *item_genre_val;
    float *quality;      /* [n_items] */
    double *pop;         /* [n_items] */
    uint32_t *n_rated;   /* [n_users] */
    uint32_t *stamp;     /* [n_items] */
    alias al;
} synth_work;

static void work_free(synth_work *w) {
    free(w->taste), free(w->user_bias), free(w->shift);
    free(w->item_genre_off), free(w->item_genre_val), free(w->quality), free(w->pop);
    free(w->n_rated), free(w->stamp);
    alias_free(&w->al);
}

static float affinity(const synth_work *w, uint32_t G, uint32_t u, uint32_t i) {
    const float *t = w->taste + (size_t)u * G;
    float s = 0;
    uint32_t a = w->item_genre_off[i], b = w->item_genre_off[i + 1];
    for (uint32_t k = a; k < b; k++) s += t[w->item_genre_val[k]];
    return b > a ? s / (float)(b - a) : 0.0f;
}

/* Taste shifts of every age bucket, gender, occupation and region. */
static int make_shifts(synth_work *w, uint32_t G, cb_rng *rng, cb_error *err) {
    const uint32_t n_shift = N_AGE_BUCKETS + 2 + N_OCC + N_REGIONS;
    w->shift = cb_malloc((size_t)n_shift * G * sizeof *w->shift, err);
    if (!w->shift) return CB_ENOMEM;
    for (size_t k = 0; k < (size_t)n_shift * G; k++) {
        uint32_t group = (uint32_t)(k / G);
        double sd = group < N_AGE_BUCKETS + 2 ? 0.6 : group < N_AGE_BUCKETS + 2 + N_OCC ? 0.5 : 0.3;
        w->shift[k] = (float)(sd * cb_rng_normal(rng));
    }
    return CB_OK;
}

/* Users: demographics (the user table), taste and bias. */
static int make_users(cb_dataset *ds, const cb_synth_config *c, synth_work *w, cb_rng *rng, cb_error *err) {
    const uint32_t U = c->n_users, G = c->n_genres;
    const float *age_shift = w->shift, *gender_shift = w->shift + (size_t)N_AGE_BUCKETS * G,
                *occ_shift = gender_shift + 2 * (size_t)G, *region_shift = occ_shift + (size_t)N_OCC * G;
    int rc;
    cb_tabbuild ub;
    cb_tb_init(&ub, &ds->user_attr);
    int col_age = cb_tb_add_col(&ub, "age", CB_COL_NUMERIC, err);
    int col_gender = col_age < 0 ? col_age : cb_tb_add_col(&ub, "gender", CB_COL_CATEGORICAL, err);
    int col_occ = col_gender < 0 ? col_gender : cb_tb_add_col(&ub, "occupation", CB_COL_CATEGORICAL, err);
    int col_region = col_occ < 0 ? col_occ : cb_tb_add_col(&ub, "region", CB_COL_CATEGORICAL, err);
    if (col_region < 0) {
        cb_tb_release(&ub);
        return col_region;
    }
    w->taste = cb_malloc((size_t)U * G * sizeof *w->taste, err);
    w->user_bias = cb_malloc((size_t)(U ? U : 1) * sizeof *w->user_bias, err);
    if (!w->taste || !w->user_bias) {
        cb_tb_release(&ub);
        return CB_ENOMEM;
    }
    rc = CB_OK;
    for (uint32_t u = 0; u < U && !rc; u++) {
        int age = (int)lround(18 + fabs(cb_rng_normal(rng)) * 16 - 4 * cb_rng_uniform(rng));
        if (age < 13) age = 13;
        if (age > 85) age = 85;
        int gender = cb_rng_uniform(rng) < 0.45 ? 0 : 1;
        uint32_t occ = age < 23 && cb_rng_uniform(rng) < 0.6 ? 0 : (uint32_t)cb_rng_below(rng, N_OCC);
        if (age >= 62 && cb_rng_uniform(rng) < 0.6) occ = 9; /* retired */
        uint32_t region = (uint32_t)cb_rng_below(rng, N_REGIONS);
        float *t = w->taste + (size_t)u * G;
        const float *sa = age_shift + (size_t)age_bucket(age) * G, *sg = gender_shift + (size_t)gender * G,
                    *so = occ_shift + (size_t)occ * G, *sr = region_shift + (size_t)region * G;
        for (uint32_t g = 0; g < G; g++) t[g] = sa[g] + sg[g] + so[g] + sr[g] + (float)(0.5 * cb_rng_normal(rng));
        w->user_bias[u] = (float)(0.3 * cb_rng_normal(rng));
        const char *gs = gender ? "M" : "F";
        char rs[4];
        snprintf(rs, sizeof rs, "%u", region);
        if ((rc = cb_tb_set_num(&ub, col_age, u, (float)age, err))) break;
        if ((rc = cb_tb_set_cat(&ub, col_gender, u, gs, 1, err))) break;
        if ((rc = cb_tb_set_cat(&ub, col_occ, u, occupations[occ], strlen(occupations[occ]), err))) break;
        rc = cb_tb_set_cat(&ub, col_region, u, rs, strlen(rs), err);
    }
    if (!rc) rc = cb_tb_finish(&ub, U, err);
    cb_tb_release(&ub);
    return rc;
}

/* Items: genres, year, title, quality and popularity (with its alias table). */
static int make_items(cb_dataset *ds, const cb_synth_config *c, synth_work *w, cb_rng *rng, cb_error *err) {
    const uint32_t M = c->n_items, G = c->n_genres;
    int rc = CB_OK;
    cb_tabbuild ib;
    cb_tb_init(&ib, &ds->item_attr);
    int col_genres = cb_tb_add_col(&ib, "genres", CB_COL_MULTI, err);
    int col_year = col_genres < 0 ? col_genres : cb_tb_add_col(&ib, "year", CB_COL_NUMERIC, err);
    if (col_year < 0) {
        cb_tb_release(&ib);
        return col_year;
    }
    /* genre levels in canonical order (not first-seen order) */
    for (uint32_t g = 0; g < G; g++) {
        char gn[32];
        const char *nm = g < N_GENRE_NAMES ? genre_names[g] : (snprintf(gn, sizeof gn, "Genre%u", g + 1), gn);
        uint32_t idx;
        if ((rc = cb_vocab_intern(ds->item_attr.cols[col_genres].levels, nm, strlen(nm), &idx, NULL, err))) {
            cb_tb_release(&ib);
            return rc;
        }
    }
    double *gw = cb_malloc((size_t)G * sizeof *gw, err);
    w->item_genre_off = cb_calloc((size_t)M + 1, sizeof *w->item_genre_off, err);
    w->item_genre_val = cb_malloc((size_t)M * 3 * sizeof *w->item_genre_val, err);
    w->quality = cb_malloc((size_t)M * sizeof *w->quality, err);
    w->pop = cb_malloc((size_t)M * sizeof *w->pop, err);
    ds->titles = cb_calloc(M, sizeof *ds->titles, err);
    if (!gw || !w->item_genre_off || !w->item_genre_val || !w->quality || !w->pop || !ds->titles) {
        free(gw);
        cb_tb_release(&ib);
        return CB_ENOMEM;
    }
    for (uint32_t g = 0; g < G; g++) gw[g] = 1.0 / pow(g + 1.0, 0.7);
    double gw_total = 0;
    for (uint32_t g = 0; g < G; g++) gw_total += gw[g];
    /* popularity: Zipf over a random permutation of ranks */
    uint32_t *rank = cb_malloc((size_t)M * sizeof *rank, err);
    if (!rank) {
        free(gw);
        cb_tb_release(&ib);
        return CB_ENOMEM;
    }
    for (uint32_t i = 0; i < M; i++) rank[i] = i;
    cb_rng_shuffle_u32(rng, rank, M);
    char gname[32], title[256];
    for (uint32_t i = 0; i < M && !rc; i++) {
        double r = cb_rng_uniform(rng);
        uint32_t want = r < 0.5 ? 1 : r < 0.85 ? 2 : 3;
        if (want > G) want = G;
        uint32_t *gl = w->item_genre_val + w->item_genre_off[i];
        uint32_t n = 0;
        while (n < want) {
            double x = cb_rng_uniform(rng) * gw_total;
            uint32_t g = 0;
            while (g + 1 < G && x >= gw[g]) x -= gw[g++];
            bool dup = false;
            for (uint32_t k = 0; k < n; k++) dup |= gl[k] == g;
            if (!dup) gl[n++] = g;
        }
        w->item_genre_off[i + 1] = w->item_genre_off[i] + n;
        int year = 2020 - (int)floor(fabs(cb_rng_normal(rng)) * 18);
        if (year < 1920) year = 1920;
        w->quality[i] = (float)(0.35 * cb_rng_normal(rng));
        w->pop[i] = 1.0 / pow(rank[i] + 1.0, 0.9);
        size_t tl = 0;
        for (uint32_t k = 0; k < n; k++) {
            const char *nm = gl[k] < N_GENRE_NAMES ? genre_names[gl[k]] : (snprintf(gname, sizeof gname, "Genre%u", gl[k] + 1), gname);
            if ((rc = cb_tb_add_multi(&ib, col_genres, i, nm, strlen(nm), err))) break;
            tl += (size_t)snprintf(title + tl, sizeof title - tl, "%s%s", k ? "/" : "", nm);
        }
        if (rc) break;
        snprintf(title + tl, sizeof title - tl, " Story %u (%d)", i + 1, year);
        if (!(ds->titles[i] = cb_strdup(title, err))) rc = CB_ENOMEM;
        else rc = cb_tb_set_num(&ib, col_year, i, (float)year, err);
    }
    free(gw);
    free(rank);
    if (!rc) rc = cb_tb_finish(&ib, M, err);
    cb_tb_release(&ib);
    return rc ? rc : alias_build(&w->al, w->pop, M, err);
}

/* How many ratings per user: heavy tailed, >= 1, <= M / 2, summing to R. */
static int count_ratings(const cb_synth_config *c, synth_work *w, cb_rng *rng, cb_error *err) {
    const uint32_t U = c->n_users, M = c->n_items;
    const size_t R = c->n_ratings;
    uint32_t cap = M / 2 ? M / 2 : 1;
    w->n_rated = cb_malloc((size_t)U * sizeof *w->n_rated, err);
    double *act = cb_malloc((size_t)U * sizeof *act, err);
    if (!w->n_rated || !act) {
        free(act);
        return CB_ENOMEM;
    }
    double act_total = 0;
    for (uint32_t u = 0; u < U; u++) act_total += act[u] = exp(0.9 * cb_rng_normal(rng));
    size_t assigned = 0;
    for (uint32_t u = 0; u < U; u++) {
        double want = floor((double)R * act[u] / act_total);
        uint32_t n = want > cap ? cap : (uint32_t)want;
        if (n == 0 && R >= U) n = 1;
        w->n_rated[u] = n;
        assigned += n;
    }
    free(act);
    while (assigned < R) /* top up, round robin (R <= U * cap was checked) */
        for (uint32_t u = 0; u < U && assigned < R; u++)
            if (w->n_rated[u] < cap) w->n_rated[u]++, assigned++;
    while (assigned > R)
        for (uint32_t u = 0; u < U && assigned > R; u++)
            if (w->n_rated[u] > 1) w->n_rated[u]--, assigned--;
    return CB_OK;
}

/* The ratings, user by user: distinct items drawn by popularity, tilted
 * towards the user's taste. */
static int draw_ratings(cb_dataset *ds, const cb_synth_config *c, synth_work *w, cb_rng *rng, cb_error *err) {
    const uint32_t U = c->n_users, M = c->n_items, G = c->n_genres;
    const size_t R = c->n_ratings;
    ds->ratings = cb_malloc((R ? R : 1) * sizeof *ds->ratings, err);
    w->stamp = cb_calloc(M, sizeof *w->stamp, err);
    if (!ds->ratings || !w->stamp) return CB_ENOMEM;
    ds->cap_ratings = R ? R : 1;
    size_t k = 0;
    for (uint32_t u = 0; u < U; u++) {
        uint32_t ts = 946684800u + (uint32_t)cb_rng_below(rng, 18u * 365 * 86400);
        for (uint32_t j = 0; j < w->n_rated[u]; j++) {
            uint32_t item = UINT32_MAX;
            for (int tries = 0; tries < 64; tries++) {
                uint32_t a = alias_draw(&w->al, rng), b = alias_draw(&w->al, rng);
                bool a_better = affinity(w, G, u, a) >= affinity(w, G, u, b);
                uint32_t pick = (cb_rng_uniform(rng) < 0.75) == a_better ? a : b;
                if (w->stamp[pick] != u + 1) {
                    item = pick;
                    break;
                }
            }
            if (item == UINT32_MAX) { /* crowded: next unrated item from a random start */
                item = (uint32_t)cb_rng_below(rng, M);
                while (w->stamp[item] == u + 1) item = item + 1 == M ? 0 : item + 1;
            }
            w->stamp[item] = u + 1;
            double y = 3.3 + 0.8 * affinity(w, G, u, item) + w->quality[item] + w->user_bias[u] +
                       c->noise * cb_rng_normal(rng);
            y = round(y * 2.0) / 2.0;
            if (y < 0.5) y = 0.5;
            if (y > 5.0) y = 5.0;
            ts += 1 + (uint32_t)cb_rng_below(rng, 3 * 86400);
            ds->ratings[k++] = (cb_rating){u, item, (float)y, ts};
        }
    }
    ds->n_ratings = k;
    return CB_OK;
}

/* Everything from one seeded RNG, in this fixed order. */
static int generate(cb_dataset *ds, const cb_synth_config *c, synth_work *w, cb_error *err) {
    cb_rng rng;
    cb_rng_seed(&rng, c->seed);
    int rc = make_shifts(w, c->n_genres, &rng, err);
    if (!rc) rc = make_users(ds, c, w, &rng, err);
    if (!rc) rc = make_items(ds, c, w, &rng, err);
    if (!rc) rc = count_ratings(c, w, &rng, err);
    if (!rc) rc = draw_ratings(ds, c, w, &rng, err);
    return rc;
}

int cb_synth_generate(cb_dataset **out, const cb_synth_config *c, cb_error *err) {
    *out = NULL;
    if (!c) return cb_fail(err, CB_EINVAL, "no synthetic configuration");
    if (c->n_users == 0 || c->n_items == 0 || c->n_genres == 0)
        return cb_fail(err, CB_EINVAL, "synthetic data needs at least one user, item and genre");
    if (c->n_genres > MAX_GENRES) return cb_fail(err, CB_EINVAL, "at most %d genres", MAX_GENRES);
    if (c->n_items >= UINT32_MAX / 3 || c->n_users == UINT32_MAX)
        return cb_fail(err, CB_EINVAL, "too many users or items");
    uint32_t cap = c->n_items / 2 ? c->n_items / 2 : 1;
    if ((double)c->n_ratings > (double)c->n_users * cap)
        return cb_fail(err, CB_EINVAL, "%zu ratings do not fit: at most %u per user (half the items) x %u users",
                       c->n_ratings, cap, c->n_users);
    if (!(c->noise >= 0) || !isfinite(c->noise)) return cb_fail(err, CB_EINVAL, "noise must be a finite number >= 0");
    if ((double)c->n_users * c->n_genres > 4e9) return cb_fail(err, CB_EINVAL, "n_users x n_genres is too large");

    cb_dataset *ds = cb_calloc(1, sizeof *ds, err);
    if (!ds) return CB_ENOMEM;
    synth_work w;
    memset(&w, 0, sizeof w);
    int rc = CB_OK;
    ds->name = cb_strdup("synthetic", err);
    ds->path = cb_strdup("(synthetic)", err);
    ds->users = cb_vocab_create(err);
    ds->items = cb_vocab_create(err);
    if (!ds->name || !ds->path || !ds->users || !ds->items) rc = CB_ENOMEM;
    if (!rc) rc = intern_ids(ds->users, c->n_users, err);
    if (!rc) rc = intern_ids(ds->items, c->n_items, err);
    if (!rc) rc = generate(ds, c, &w, err);
    work_free(&w);
    if (rc) {
        cb_dataset_free(ds);
        return rc;
    }
    ds->y_min = 0.5f;
    ds->y_max = 5.0f;
    ds->binary = false;
    ds->has_timestamps = true;
    ds->prejoined = false;
    ds->roles = (cb_roles){.item_genres = 0, .item_year = 1, .user_age = 0, .user_gender = 1, .user_occupation = 2,
                           .user_location = 3};
    *out = ds;
    return CB_OK;
}

/* ------------------------------------------------------------------ writing */

static char *put_u32(char *p, uint32_t v) {
    char tmp[10];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n) *p++ = tmp[--n];
    return p;
}

static int write_movies(const cb_dataset *ds, const char *dir, cb_atomic_file *af, cb_error *err) {
    char *path = cb_path_join(dir, "movies.csv", err);
    if (!path) return CB_ENOMEM;
    int rc = cb_atomic_open(af, path, err);
    free(path);
    if (rc) return rc;
    int gc = ds->roles.item_genres;
    const cb_column *genres = gc >= 0 && (uint32_t)gc < ds->item_attr.n_cols ? &ds->item_attr.cols[gc] : NULL;
    fputs("movieId,title,genres\n", af->fp);
    uint32_t M = cb_dataset_n_items(ds);
    for (uint32_t i = 0; i < M; i++) {
        cb_csv_put_field(af->fp, cb_vocab_name(ds->items, i));
        fputc(',', af->fp);
        cb_csv_put_field(af->fp, ds->titles && ds->titles[i] ? ds->titles[i] : cb_vocab_name(ds->items, i));
        fputc(',', af->fp);
        uint32_t a = genres && i < ds->item_attr.n_rows ? genres->off[i] : 0;
        uint32_t b = genres && i < ds->item_attr.n_rows ? genres->off[i + 1] : 0;
        if (a == b) fputs("(no genres listed)", af->fp);
        for (uint32_t k = a; k < b; k++) {
            if (k > a) fputc('|', af->fp);
            fputs(cb_vocab_name(genres->levels, genres->val[k]), af->fp);
        }
        fputc('\n', af->fp);
    }
    return cb_atomic_stage(af, err);
}

static int write_ratings(const cb_dataset *ds, const char *dir, cb_atomic_file *af, cb_error *err) {
    char *path = cb_path_join(dir, "ratings.csv", err);
    if (!path) return CB_ENOMEM;
    int rc = cb_atomic_open(af, path, err);
    free(path);
    if (rc) return rc;
    fputs("userId,movieId,rating,timestamp\n", af->fp);
    enum { BUF = 1 << 16 };
    char buf[BUF];
    size_t used = 0;
    for (size_t k = 0; k < ds->n_ratings; k++) {
        const cb_rating *r = &ds->ratings[k];
        const char *u = cb_vocab_name(ds->users, r->user), *it = cb_vocab_name(ds->items, r->item);
        size_t lu = strlen(u), li = strlen(it);
        if (used + lu + li + 64 > BUF) {
            fwrite(buf, 1, used, af->fp);
            used = 0;
        }
        if (lu + li + 64 > BUF) { /* absurdly long ids: slow path */
            fprintf(af->fp, "%s,%s,%.9g,%u\n", u, it, r->y, r->ts);
            continue;
        }
        char *p = buf + used;
        memcpy(p, u, lu), p += lu, *p++ = ',';
        memcpy(p, it, li), p += li, *p++ = ',';
        float twice = r->y * 2.0f;
        if (twice == floorf(twice) && r->y >= 0 && r->y < 1e6f) { /* half stars: "4.5", "3.0" */
            p = put_u32(p, (uint32_t)r->y);
            *p++ = '.';
            *p++ = twice - 2.0f * floorf(r->y) != 0 ? '5' : '0';
        } else {
            p += snprintf(p, 32, "%.9g", r->y);
        }
        *p++ = ',';
        p = put_u32(p, r->ts);
        *p++ = '\n';
        used = (size_t)(p - buf);
    }
    fwrite(buf, 1, used, af->fp);
    return cb_atomic_stage(af, err);
}

static int write_users(const cb_dataset *ds, const char *dir, cb_atomic_file *af, cb_error *err) {
    const cb_table *t = &ds->user_attr;
    char *path = cb_path_join(dir, "users.csv", err);
    if (!path) return CB_ENOMEM;
    int rc = cb_atomic_open(af, path, err);
    free(path);
    if (rc) return rc;
    fputs("userId", af->fp);
    for (uint32_t c = 0; c < t->n_cols; c++) {
        fputc(',', af->fp);
        cb_csv_put_field(af->fp, t->cols[c].name);
    }
    fputc('\n', af->fp);
    uint32_t U = cb_dataset_n_users(ds);
    for (uint32_t u = 0; u < U; u++) {
        cb_csv_put_field(af->fp, cb_vocab_name(ds->users, u));
        for (uint32_t c = 0; c < t->n_cols; c++) {
            const cb_column *col = &t->cols[c];
            fputc(',', af->fp);
            if (u >= t->n_rows) continue;
            if (col->kind == CB_COL_NUMERIC) {
                if (!isnan(col->num[u])) fprintf(af->fp, "%.9g", col->num[u]);
            } else if (col->kind == CB_COL_CATEGORICAL) {
                if (col->cat[u] != CB_MISSING) cb_csv_put_field(af->fp, cb_vocab_name(col->levels, col->cat[u]));
            } else {
                /* multi-valued: '|'-joined in one (quoted if needed) field */
                size_t len = 0;
                for (uint32_t k = col->off[u]; k < col->off[u + 1]; k++)
                    len += strlen(cb_vocab_name(col->levels, col->val[k])) + 1;
                char *s = cb_malloc(len + 1, err);
                if (!s) {
                    cb_atomic_abort(af);
                    return CB_ENOMEM;
                }
                s[0] = '\0';
                for (uint32_t k = col->off[u]; k < col->off[u + 1]; k++) {
                    if (k > col->off[u]) strcat(s, "|");
                    strcat(s, cb_vocab_name(col->levels, col->val[k]));
                }
                cb_csv_put_field(af->fp, s);
                free(s);
            }
        }
        fputc('\n', af->fp);
    }
    return cb_atomic_stage(af, err);
}

/* cbrec.schema for the generic loader (syntax: docs/data-formats.md), so the
 * folder loads with its users.csv demographics. */
static int write_schema(const cb_dataset *ds, const char *dir, cb_atomic_file *af, cb_error *err) {
    char *path = cb_path_join(dir, "cbrec.schema", err);
    if (!path) return CB_ENOMEM;
    int rc = cb_atomic_open(af, path, err);
    free(path);
    if (rc) return rc;
    FILE *fp = af->fp;
    fprintf(fp, "# written by cbrec synth: MovieLens-latest-style files plus users.csv\n");
    fprintf(fp, "name = %s\n", ds->name && !strpbrk(ds->name, "\r\n#") ? ds->name : "synthetic");
    fprintf(fp, "ratings = ratings.csv\nratings.header = yes\n");
    fprintf(fp, "ratings.columns = userId:user, movieId:item, rating:rating, timestamp:timestamp\n");
    if (ds->y_min < ds->y_max) fprintf(fp, "rating.range = %.9g,%.9g\n", ds->y_min, ds->y_max);
    fprintf(fp, "items = movies.csv\nitems.header = yes\n");
    fprintf(fp, "items.columns = movieId:id, title:title, genres:multi(|)\nitems.year_from_title = yes\n");
    const cb_table *t = &ds->user_attr;
    if (t->n_cols) {
        fprintf(fp, "users = users.csv\nusers.header = yes\nusers.columns = userId:id");
        for (uint32_t c = 0; c < t->n_cols; c++)
            fprintf(fp, ", %s:%s", t->cols[c].name,
                    t->cols[c].kind == CB_COL_NUMERIC ? "numeric" : t->cols[c].kind == CB_COL_CATEGORICAL ? "categorical" : "multi(|)");
        fputc('\n', fp);
    }
    return cb_atomic_stage(af, err);
}

int cb_synth_write(const cb_dataset *ds, const char *dir, cb_error *err) {
    if (!ds || !dir || !*dir) return cb_fail(err, CB_EINVAL, "cb_synth_write: no dataset or folder");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cb_fail(err, CB_EIO, "%s: cannot create folder: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return cb_fail(err, CB_EIO, "%s: not a folder", dir);
    cb_atomic_file files[4] = {{0}}; /* renamed into place together: the old set or the new one */
    int rc = write_movies(ds, dir, &files[0], err);
    if (!rc) rc = write_ratings(ds, dir, &files[1], err);
    if (!rc && ds->user_attr.n_cols) rc = write_users(ds, dir, &files[2], err);
    if (!rc) rc = write_schema(ds, dir, &files[3], err);
    return cb_atomic_publish(files, 4, rc, err);
}
