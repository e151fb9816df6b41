/* split — the seeded train/test splits of a dataset (random, per-user temporal,
 * per-user random, cold users, cold items), the validation carve of training
 * ratings, and an exact reproduction of sklearn's
 * train_test_split for the course lab. See data/dataset.h for the contracts. */
#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cb_split_free(cb_split *s) {
    if (!s) return;
    free(s->train);
    free(s->test);
    memset(s, 0, sizeof *s);
}

/* Fill out->train/test from a per-rating flag (1 = test), in rating order. */
static int split_from_flags(cb_split *out, const uint8_t *is_test, size_t n, cb_error *err) {
    size_t n_test = 0;
    for (size_t i = 0; i < n; i++) n_test += is_test[i];
    out->train = cb_malloc((n - n_test ? n - n_test : 1) * sizeof(uint32_t), err);
    out->test = cb_malloc((n_test ? n_test : 1) * sizeof(uint32_t), err);
    if (!out->train || !out->test) {
        cb_split_free(out);
        return CB_ENOMEM;
    }
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_test[i]) out->test[b++] = (uint32_t)i;
        else out->train[a++] = (uint32_t)i;
    }
    out->n_train = a;
    out->n_test = b;
    return CB_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct pair_row {
    uint64_t key;  /* user << 32 | item */
    uint32_t j;    /* position in the flags */
    uint32_t row;  /* index into ds->ratings */
} pair_row;

static int cmp_pair_row(const void *a, const void *b) {
    const pair_row *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* Pre-joined rows may repeat a (user, item) pair (the course lab repeats
 * some up to 20 times): split across the parts, the held-out rating was also
 * a training one (the rating error learnt it; the top-N list excluded it as
 * already rated). Each repeated pair of flag[j] (the rating sel[j]; sel
 * NULL: j) goes whole to the side its first row was drawn for, so a pair is
 * held out with the split's probability; with keep_one, a user left without
 * a training row gets its first pair (by item index) back, as the per-user
 * and temporal splits promise every user one. */
static int pairs_whole(uint8_t *flag, const cb_dataset *ds, const uint32_t *sel, size_t n, bool keep_one,
                       cb_error *err) {
    if (!ds->prejoined || n < 2) return CB_OK;
    pair_row *p = cb_malloc(n * sizeof *p, err);
    if (!p) return CB_ENOMEM;
    for (size_t j = 0; j < n; j++) {
        uint32_t row = sel ? sel[j] : (uint32_t)j;
        p[j] = (pair_row){(uint64_t)ds->ratings[row].user << 32 | ds->ratings[row].item, (uint32_t)j, row};
    }
    qsort(p, n, sizeof *p, cmp_pair_row);
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && p[b].key == p[a].key; b++) flag[p[b].j] = flag[p[a].j];
    }
    for (size_t a = 0, b; keep_one && a < n; a = b) { /* a user's rows: p[a..b) */
        bool trains = false;
        for (b = a; b < n && p[b].key >> 32 == p[a].key >> 32; b++) trains |= !flag[p[b].j];
        for (size_t c = a; !trains && c < b && p[c].key == p[a].key; c++) flag[p[c].j] = 0;
    }
    free(p);
    return CB_OK;
}

/* Hold out a fraction of the entities (users or items) that have ratings. */
static int cold_flags(uint8_t *is_test, const cb_dataset *ds, bool by_user, double test_frac,
                      uint64_t seed, cb_error *err) {
    uint32_t n_ent = by_user ? cb_dataset_n_users(ds) : cb_dataset_n_items(ds);
    uint8_t *active = cb_calloc((size_t)n_ent + 1, 1, err);
    if (!active) return CB_ENOMEM;
    for (size_t i = 0; i < ds->n_ratings; i++)
        active[by_user ? ds->ratings[i].user : ds->ratings[i].item] = 1;
    uint32_t n_active = 0;
    for (uint32_t e = 0; e < n_ent; e++) n_active += active[e];
    uint32_t *list = cb_malloc(((size_t)n_active + 1) * sizeof *list, err);
    if (!list) {
        free(active);
        return CB_ENOMEM;
    }
    uint32_t k = 0;
    for (uint32_t e = 0; e < n_ent; e++)
        if (active[e]) list[k++] = e;
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    cb_rng_shuffle_u32(&rng, list, n_active);
    uint32_t n_out = (uint32_t)llround(test_frac * n_active);
    if (n_active >= 2) {
        if (n_out < 1) n_out = 1;
        if (n_out > n_active - 1) n_out = n_active - 1;
    }
    memset(active, 0, (size_t)n_ent + 1);
    for (uint32_t j = 0; j < n_out; j++) active[list[j]] = 1; /* now: held out */
    for (size_t i = 0; i < ds->n_ratings; i++)
        is_test[i] = active[by_user ? ds->ratings[i].user : ds->ratings[i].item];
    free(list);
    free(active);
    return CB_OK;
}

/* Per-user random: is_test[j] for the ratings sel[j] (sel NULL: every
 * rating, j = its index). Users are visited in index order with one seeded
 * generator; each draws round(test_frac * n_u) of its ratings (partial
 * Fisher-Yates over them in sel order), at most n_u - 1. */
static int per_user_flags(uint8_t *is_test, const cb_dataset *ds, const uint32_t *sel, size_t n, double test_frac,
                          uint64_t seed, cb_error *err) {
    uint32_t n_users = cb_dataset_n_users(ds);
    size_t *start = cb_calloc((size_t)n_users + 2, sizeof *start, err);
    uint32_t *pos = cb_malloc((n ? n : 1) * sizeof *pos, err);
    if (!start || !pos) {
        free(start);
        free(pos);
        return CB_ENOMEM;
    }
    for (size_t j = 0; j < n; j++) start[ds->ratings[sel ? sel[j] : j].user + 2]++;
    for (uint32_t u = 0; u < n_users; u++) start[u + 2] += start[u + 1];
    for (size_t j = 0; j < n; j++) pos[start[ds->ratings[sel ? sel[j] : j].user + 1]++] = (uint32_t)j;
    /* now start[u] .. start[u + 1] holds user u's positions, in sel order */
    memset(is_test, 0, n);
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    for (uint32_t u = 0; u < n_users; u++) {
        size_t b = start[u], n_u = start[u + 1] - b;
        if (n_u < 2) continue;
        size_t k = (size_t)llround(test_frac * (double)n_u);
        if (k > n_u - 1) k = n_u - 1;
        for (size_t j = 0; j < k; j++) {
            size_t r = j + (size_t)cb_rng_below(&rng, n_u - j);
            uint32_t t = pos[b + j];
            pos[b + j] = pos[b + r];
            pos[b + r] = t;
            is_test[pos[b + j]] = 1;
        }
    }
    free(start);
    free(pos);
    return CB_OK;
}

/* Per-user latest: is_test[j] for the ratings sel[j] (sel NULL: every
 * rating, j = its index): each user's last ceil(test_frac * n_u) ratings
 * by timestamp, then by position in sel (file order for every caller: their
 * sel is in index order), at most n_u - 1; so a user with 2 or more
 * ratings always gives one (a carve of 0.1 takes one of a user's 2-10). */
static int temporal_flags(uint8_t *is_test, const cb_dataset *ds, const uint32_t *sel, size_t n, double test_frac,
                          cb_error *err) {
    uint32_t n_users = cb_dataset_n_users(ds);
    size_t *start = cb_calloc((size_t)n_users + 1, sizeof *start, err);
    size_t *fill = cb_malloc(((size_t)n_users + 1) * sizeof *fill, err);
    uint64_t *keys = cb_malloc((n ? n : 1) * sizeof *keys, err);
    if (!start || !fill || !keys) {
        free(start);
        free(fill);
        free(keys);
        return CB_ENOMEM;
    }
    for (size_t j = 0; j < n; j++) start[ds->ratings[sel ? sel[j] : j].user + 1]++;
    for (uint32_t u = 0; u < n_users; u++) start[u + 1] += start[u];
    /* key = (ts << 32) | j: sorting keys orders by time, then file order (sel keeps it). */
    memcpy(fill, start, ((size_t)n_users + 1) * sizeof *fill);
    for (size_t j = 0; j < n; j++) {
        const cb_rating *r = &ds->ratings[sel ? sel[j] : j];
        keys[fill[r->user]++] = ((uint64_t)r->ts << 32) | (uint32_t)j;
    }
    memset(is_test, 0, n);
    for (uint32_t u = 0; u < n_users; u++) {
        size_t b = start[u], e = start[u + 1], n_u = e - b;
        if (n_u < 2) continue;
        qsort(keys + b, n_u, sizeof *keys, cmp_u64);
        size_t k = (size_t)ceil(test_frac * (double)n_u - 1e-9);
        if (k > n_u - 1) k = n_u - 1;
        for (size_t j = e - k; j < e; j++) is_test[(uint32_t)keys[j]] = 1;
    }
    free(fill);
    free(start);
    free(keys);
    return CB_OK;
}

int cb_split_make(cb_split *out, const cb_dataset *ds, cb_split_kind kind, double test_frac,
                  uint64_t seed, cb_error *err) {
    memset(out, 0, sizeof *out);
    if (!(test_frac >= 0.0 && test_frac < 1.0))
        return cb_fail(err, CB_EINVAL, "test fraction %g must be in [0, 1)", test_frac);
    if (ds->n_ratings > UINT32_MAX) return cb_fail(err, CB_EINVAL, "too many ratings to split");
    size_t n = ds->n_ratings;
    uint8_t *is_test = cb_calloc(n ? n : 1, 1, err);
    if (!is_test) return CB_ENOMEM;
    int rc = CB_OK;
    /* test_frac 0: everything is training data, whatever the kind */
    if (test_frac > 0.0) switch (kind) {
    case CB_SPLIT_RANDOM: {
        cb_rng rng;
        cb_rng_seed(&rng, seed);
        for (size_t i = 0; i < n; i++) is_test[i] = cb_rng_uniform(&rng) < test_frac;
        break;
    }
    case CB_SPLIT_TEMPORAL:
        rc = temporal_flags(is_test, ds, NULL, n, test_frac, err);
        break;
    case CB_SPLIT_COLD_USERS:
        rc = cold_flags(is_test, ds, true, test_frac, seed, err);
        break;
    case CB_SPLIT_COLD_ITEMS:
        rc = cold_flags(is_test, ds, false, test_frac, seed, err);
        break;
    case CB_SPLIT_PER_USER:
        rc = per_user_flags(is_test, ds, NULL, n, test_frac, seed, err);
        break;
    default:
        rc = cb_fail(err, CB_EINVAL, "unknown split kind %d", (int)kind);
    }
    if (!rc && test_frac > 0.0 && (kind == CB_SPLIT_RANDOM || kind == CB_SPLIT_PER_USER || kind == CB_SPLIT_TEMPORAL))
        rc = pairs_whole(is_test, ds, NULL, n, kind != CB_SPLIT_RANDOM, err);
    if (!rc) rc = split_from_flags(out, is_test, n, err);
    free(is_test);
    return rc;
}

static const char *const split_names[] = {"random", "temporal", "cold-users", "cold-items", "per-user"};

const char *cb_split_kind_name(cb_split_kind kind) {
    return (unsigned)kind < sizeof split_names / sizeof split_names[0] ? split_names[kind] : "unknown";
}

/* out->train / out->test from the entries of sel[] flagged 0 / 1, in sel order. */
static int carve_from_flags(cb_split *out, const uint32_t *sel, const uint8_t *is_valid, size_t n, cb_error *err) {
    int rc = split_from_flags(out, is_valid, n, err);
    if (rc) return rc;
    for (size_t j = 0; j < out->n_train; j++) out->train[j] = sel[out->train[j]];
    for (size_t j = 0; j < out->n_test; j++) out->test[j] = sel[out->test[j]];
    return CB_OK;
}

int cb_split_carve(cb_split *out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                   cb_split_kind kind, double valid_frac, uint64_t seed, cb_error *err) {
    memset(out, 0, sizeof *out);
    if (!(valid_frac >= 0.0 && valid_frac < 1.0))
        return cb_fail(err, CB_EINVAL, "validation fraction %g must be in [0, 1)", valid_frac);
    if (kind != CB_SPLIT_RANDOM && kind != CB_SPLIT_PER_USER && kind != CB_SPLIT_TEMPORAL)
        return cb_fail(err, CB_EINVAL, "a validation carve is random, per-user or temporal, not %s",
                       cb_split_kind_name(kind));
    for (size_t j = 0; j < n_train; j++)
        if (train[j] >= ds->n_ratings)
            return cb_fail(err, CB_EINVAL, "carve: training index %u out of range (%zu ratings)", train[j], ds->n_ratings);
    uint32_t *perm = cb_malloc((n_train ? n_train : 1) * sizeof *perm, err);
    uint8_t *is_valid = cb_calloc(n_train ? n_train : 1, 1, err);
    int rc = perm && is_valid ? CB_OK : CB_ENOMEM;
    if (!rc && kind == CB_SPLIT_RANDOM) {
        memcpy(perm, train, n_train * sizeof *perm);
        size_t n_valid = 0;
        if (valid_frac > 0 && n_train >= 10) {
            cb_rng rng;
            cb_rng_seed(&rng, seed ^ 0x5eed5eedULL);
            cb_rng_shuffle_u32(&rng, perm, n_train);
            n_valid = (size_t)(valid_frac * (double)n_train);
        }
        memset(is_valid, 1, n_valid);
    } else if (!rc) {
        memcpy(perm, train, n_train * sizeof *perm);
        if (valid_frac > 0)
            rc = kind == CB_SPLIT_TEMPORAL ? temporal_flags(is_valid, ds, train, n_train, valid_frac, err)
                                           : per_user_flags(is_valid, ds, train, n_train, valid_frac, seed, err);
    }
    if (!rc && valid_frac > 0) rc = pairs_whole(is_valid, ds, perm, n_train, kind != CB_SPLIT_RANDOM, err);
    if (!rc) rc = carve_from_flags(out, perm, is_valid, n_train, err);
    free(perm);
    free(is_valid);
    return rc;
}

/* ---- numpy's legacy RandomState: MT19937 (Matsumoto & Nishimura 1998),
 * written from the published algorithm. */

enum { MT_N = 624, MT_M = 397 };

typedef struct mt19937 {
    uint32_t mt[MT_N];
    int pos;
} mt19937;

static void mt_seed(mt19937 *s, uint32_t seed) {
    s->mt[0] = seed;
    for (int i = 1; i < MT_N; i++)
        s->mt[i] = 1812433253u * (s->mt[i - 1] ^ (s->mt[i - 1] >> 30)) + (uint32_t)i;
    s->pos = MT_N;
}

static uint32_t mt_next(mt19937 *s) {
    if (s->pos >= MT_N) {
        for (int k = 0; k < MT_N; k++) {
            uint32_t y = (s->mt[k] & 0x80000000u) | (s->mt[(k + 1) % MT_N] & 0x7fffffffu);
            s->mt[k] = s->mt[(k + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        s->pos = 0;
    }
    uint32_t y = s->mt[s->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* Uniform in [0, max] by masking to the smallest all-ones mask >= max and
 * rejecting values above max (numpy's random_interval for max < 2^32). */
static uint32_t mt_interval(mt19937 *s, uint32_t max) {
    if (max == 0) return 0;
    uint32_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    uint32_t v;
    do v = mt_next(s) & mask;
    while (v > max);
    return v;
}

void cb_numpy_permutation(uint32_t *perm, size_t n, uint32_t seed) {
    mt19937 s;
    mt_seed(&s, seed);
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = n; i-- > 1;) {
        uint32_t j = mt_interval(&s, (uint32_t)i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int cb_split_sklearn(cb_split *out, size_t n_rows, double train_size, uint32_t random_state,
                     cb_error *err) {
    memset(out, 0, sizeof *out);
    if (!(train_size > 0.0 && train_size < 1.0))
        return cb_fail(err, CB_EINVAL, "train size %g must be in (0, 1)", train_size);
    if (n_rows < 2 || n_rows > UINT32_MAX)
        return cb_fail(err, CB_EINVAL, "cannot split %zu rows", n_rows);
    /* Same float arithmetic as sklearn: test_size = 1 - train_size. */
    double test_size = 1.0 - train_size;
    size_t n_test = (size_t)ceil(test_size * (double)n_rows);
    size_t n_train = (size_t)floor(train_size * (double)n_rows);
    if (n_test == 0 || n_train == 0 || n_test + n_train > n_rows)
        return cb_fail(err, CB_EINVAL, "train size %g leaves an empty side for %zu rows", train_size, n_rows);
    uint32_t *perm = cb_malloc(n_rows * sizeof *perm, err);
    if (!perm) return CB_ENOMEM;
    cb_numpy_permutation(perm, n_rows, random_state);
    out->test = cb_malloc(n_test * sizeof *out->test, err);
    out->train = cb_malloc(n_train * sizeof *out->train, err);
    if (!out->test || !out->train) {
        free(perm);
        cb_split_free(out);
        return CB_ENOMEM;
    }
    memcpy(out->test, perm, n_test * sizeof *perm);
    memcpy(out->train, perm + n_test, n_train * sizeof *perm);
    out->n_test = n_test;
    out->n_train = n_train;
    free(perm);
    return CB_OK;
}
