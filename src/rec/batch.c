/* batch — top-n for many known users at once over the whole catalog: blocks
 * of user vectors against all item vectors as one sgemm each (OpenBLAS; over
 * the criterion's part of the vectors only, cb_rec_query_part), the user's
 * neighbour term where it applies, the per-call exclusions (block file, exclude, allow) and each user's rated
 * items (unless include-seen) masked out, then a partial selection of the
 * best n per user (a small heap; ties to the lower item). Ranks by the same
 * cb_rec_rank_score as cb_recommend; the retrieval sources and diversity are
 * not used. Items added after training (the recommender's added items) are
 * columns n_items.. of every block, scored the same way. Also one batch row
 * as a JSON line. Threads: see cb_recommender_recommend_batch. */
#include "rec/recommend.h"
#include "base/threads.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Scores per sgemm block (4 MB): measured best on ml-latest-small; 1 MB
 * repacks the item matrix too often, 8 MB no longer stays in the cache. */
#define BATCH_BLOCK_FLOATS (1u << 20)
/* ... and at most this many users, so a batch of a few hundred users still
 * makes blocks for every thread (64 measured the same as 107 on
 * ml-latest-small, one thread: 36.7-38.2 vs 36.4-36.9 ms). */
#define BATCH_BLOCK_ROWS 64

/* The heap holds the best n so far with its worst at the root: "worse" is a
 * lower score, or an equal score and a higher item. */
static inline bool worse(float sa, int64_t ia, float sb, int64_t ib) { return sa < sb || (sa == sb && ia > ib); }

static void sift_down(float *s, int64_t *it, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(s[l], it[l], s[m], it[m])) m = l;
        if (r < n && worse(s[r], it[r], s[m], it[m])) m = r;
        if (m == i) return;
        float ts = s[i];
        s[i] = s[m];
        s[m] = ts;
        int64_t ti = it[i];
        it[i] = it[m];
        it[m] = ti;
        i = m;
    }
}

/* The best n of row[0..ni) (entries of -INFINITY are excluded) into items /
 * scores, best first, padded with -1 / -INFINITY. Once the heap is full, a
 * row element only matters if it beats the heap's worst (a later equal score
 * loses its tie), so chunks of 16 are skipped on their maximum. */
void cb_rec_top_n(const float *row, size_t ni, size_t n, int64_t *items, float *scores) {
    size_t h = 0, j = 0;
    for (; j < ni && h < n; j++) {
        float v = row[j];
        if (v == -INFINITY || isnan(v)) continue;
        scores[h] = v;
        items[h++] = (int64_t)j;
    }
    for (size_t i = h / 2; i-- > 0;) sift_down(scores, items, h, i);
    float thr = h == n ? scores[0] : INFINITY;
    for (; j < ni; j++) {
        if ((j & 15) == 0 && j + 16 <= ni) {
            int any = 0;
            for (size_t t = 0; t < 16; t++) any |= row[j + t] > thr;
            if (!any) {
                j += 15;
                continue;
            }
        }
        float v = row[j];
        if (!(v > thr)) continue;
        scores[0] = v;
        items[0] = (int64_t)j;
        sift_down(scores, items, n, 0);
        thr = scores[0];
    }
    /* pop the heap into best-first order */
    for (size_t m = h; m > 1; m--) {
        float ts = scores[0];
        int64_t ti = items[0];
        scores[0] = scores[m - 1];
        items[0] = items[m - 1];
        scores[m - 1] = ts;
        items[m - 1] = ti;
        sift_down(scores, items, m - 1, 0);
    }
    for (size_t i = h; i < n; i++) items[i] = -1, scores[i] = -INFINITY;
}

/* Mask one user's row: the call's exclusions, then the user's rated items. */
static void mask_row(const cb_recommender *rec, const cb_recommend_config *cfg, const uint32_t *excluded,
                     size_t n_excluded, uint32_t u, float *row) {
    for (size_t k = 0; k < n_excluded; k++) row[excluded[k]] = -INFINITY;
    if (cfg->include_seen) return;
    const cb_bundle *r = rec->r;
    for (int32_t k = r->seen_off[u]; k < r->seen_off[u + 1]; k++) row[r->seen_item[k]] = -INFINITY;
}

/* User u's neighbour term (its training history's, cb_rec_neighbours_on)
 * into raw; returns its divisor, 0 without a history (a model loaded without
 * its history file has seen_item NULL: no pointer arithmetic on it). */
static float neighbour_scores(const cb_recommender *rec, const cb_recommend_config *cfg, uint32_t u, float *raw) {
    const cb_bundle *r = rec->r;
    if (!r->has_history || !r->seen_item || r->seen_off[u + 1] <= r->seen_off[u]) return 0.0f;
    const uint32_t *hist = (const uint32_t *)(r->seen_item + r->seen_off[u]); /* validated >= 0 at load */
    size_t n_hist = (size_t)(r->seen_off[u + 1] - r->seen_off[u]);
    return cb_rec_neighbour_row(rec, hist, n_hist, cb_rec_neighbour_k(r->neighbours->k, cfg->neighbour_budget, n_hist), raw);
}

static int check_users(const cb_recommender *rec, const size_t *users, size_t n_users, cb_error *err) {
    for (size_t i = 0; i < n_users; i++) {
        size_t u = users ? users[i] : i;
        if (u < rec->r->n_users) {
            int rc = cb_bundle_history_rows(rec->r, (uint32_t)u, err); /* verified when first read */
            if (rc) return rc;
        }
        if (u >= rec->r->n_users)
            return cb_fail(err, CB_ENOTFOUND, "user number %zu is out of range (the model has %u users)", u,
                           rec->r->n_users);
    }
    return CB_OK;
}

CB_API size_t cb_recommender_batch_block(const cb_recommender *rec) {
    size_t ni = rec ? cb_recommender_item_count(rec) : 0, block = ni ? BATCH_BLOCK_FLOATS / ni : 1;
    if (block > BATCH_BLOCK_ROWS) block = BATCH_BLOCK_ROWS;
    return block ? block : 1;
}

/* One batch call's shared state: workers pull blocks of users (next) and
 * write their rows of items / scores; nothing else is written. */
typedef struct batch_job {
    const cb_recommender *rec;
    const cb_recommend_config *cfg;
    const size_t *users;
    size_t n_users, n, keep, block;
    uint32_t q_off, q_len; /* the criterion's part of the vectors (cb_rec_query_part): the only columns read */
    const uint32_t *excluded;
    size_t n_excluded;
    bool nb_on, monotone;
    int64_t *items;
    float *scores;
    atomic_size_t next; /* the next block's first position in users */
} batch_job;

/* Users [b0, b0 + rows) of the call: one sgemm of their vectors against
 * every item (U, S: the worker's scratch), then each row ranked, masked and
 * cut to its best n. */
static void batch_block(const batch_job *jb, size_t b0, size_t rows, float *U, float *S, float *raw) {
    const cb_recommender *rec = jb->rec;
    const cb_recommend_config *cfg = jb->cfg;
    const cb_bundle *r = rec->r;
    size_t nm = r->n_items, ni = cb_recommender_item_count(rec), d = r->dim, q_len = jb->q_len, n = jb->n;
    for (size_t i = 0; i < rows; i++) {
        size_t u = jb->users ? jb->users[b0 + i] : b0 + i;
        memcpy(U + i * q_len, r->user_vecs + u * d + jb->q_off, q_len * sizeof *U);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nm, (int)q_len, 1.0f, U, (int)q_len,
                r->item_vecs + jb->q_off, (int)d, 0.0f, S, (int)ni);
    if (ni > nm) /* the added items: the last columns */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)(ni - nm), (int)q_len, 1.0f, U,
                    (int)q_len, rec->table.extra_vecs + jb->q_off, (int)d, 0.0f, S + nm, (int)ni);
    for (size_t i = 0; i < rows; i++) {
        size_t u = jb->users ? jb->users[b0 + i] : b0 + i;
        /* the ranking score of every dot (the dot itself when the criterion is monotone in it) */
        float nb_max = jb->nb_on ? neighbour_scores(rec, cfg, (uint32_t)u, raw) : 0.0f;
        if (!jb->monotone) cb_rec_rank_row(rec, cfg->rank_by, S + i * ni, ni, nb_max > 0 ? raw : NULL, nb_max);
        int64_t *it = jb->items + (b0 + i) * n;
        float *sc = jb->scores + (b0 + i) * n;
        mask_row(rec, cfg, jb->excluded, jb->n_excluded, (uint32_t)u, S + i * ni);
        cb_rec_top_n(S + i * ni, ni, jb->keep, it, sc);
        for (size_t k = jb->keep; k < n; k++) it[k] = -1, sc[k] = -INFINITY;
        for (size_t k = 0; jb->monotone && cfg->rank_by != CB_RANK_DOT && k < jb->keep && it[k] >= 0; k++)
            sc[k] = cb_rec_rank_score(rec, cfg->rank_by, sc[k], (uint32_t)it[k]);
    }
}

/* One worker: its scratch (allocated by the caller before any row is
 * written, so running out of memory leaves the outputs untouched). */
typedef struct batch_worker {
    batch_job *jb;
    float *U, *S, *raw;
} batch_worker;

static void *batch_run(void *arg) {
    batch_worker *w = arg;
    batch_job *jb = w->jb;
    size_t b0;
    while ((b0 = atomic_fetch_add(&jb->next, jb->block)) < jb->n_users)
        batch_block(jb, b0, jb->n_users - b0 < jb->block ? jb->n_users - b0 : jb->block, w->U, w->S, w->raw);
    return NULL;
}

static void workers_free(batch_worker *w, int threads) {
    for (int t = 0; w && t < threads; t++) free(w[t].U), free(w[t].S), free(w[t].raw);
    free(w);
}

/* The workers' scratch, or NULL (err set) when it does not fit. */
static batch_worker *workers_alloc(batch_job *jb, int threads, cb_error *err) {
    size_t ni = cb_recommender_item_count(jb->rec), nm = jb->rec->r->n_items;
    batch_worker *w = cb_calloc((size_t)threads, sizeof *w, err);
    for (int t = 0; w && t < threads; t++) {
        w[t].jb = jb;
        w[t].U = cb_malloc(jb->block * jb->q_len * sizeof *w[t].U + 1, err);
        w[t].S = w[t].U ? cb_malloc(jb->block * ni * sizeof *w[t].S, err) : NULL;
        w[t].raw = w[t].S && jb->nb_on ? cb_malloc((nm + 1) * sizeof *w[t].raw, err) : NULL;
        if (!w[t].S || (jb->nb_on && !w[t].raw)) {
            workers_free(w, threads); /* calloc'd: the rest are NULL */
            return NULL;
        }
    }
    return w;
}

/* Threads: cfg->threads workers (at most one per block), each with its own
 * scratch and its own single-threaded sgemm: OpenBLAS is held at one thread
 * for the call (cb_blas_hold_one: calls running at once share the hold).
 * OpenBLAS's own threads
 * spin in sched_yield between the blocks' products while the rows are
 * ranked: that doubled the call's CPU time on 2 cores. The rows are the same
 * for any thread count. */
CB_API int cb_recommender_recommend_batch(const cb_recommender *rec, const size_t *users, size_t n_users, size_t n,
                                          const cb_config *opts, int64_t *items, float *scores, cb_error *err) {
    if (!rec || (n_users && (!items || !scores)))
        return cb_fail(err, CB_EINVAL, "cb_recommender_recommend_batch: NULL argument");
    if (n == 0) return cb_fail(err, CB_EINVAL, "n must be at least 1");
    size_t ni = cb_recommender_item_count(rec);
    cb_recommend_config cfg;
    int rc = cb_recommend_config_from(&cfg, opts, err);
    const char *unused = rc ? NULL : cb_recommend_batch_unused(opts);
    if (unused) /* taken and ignored, in silence, before */
        rc = cb_fail(err, CB_EINVAL, "%s: a batch ranks the whole catalog per user, without the retrieval sources "
                     "or a re-rank (one user's list takes it)", unused);
    if (!rc) rc = check_users(rec, users, n_users, err);
    if (!rc) rc = cb_rec_rank_check(rec, cfg.rank_by, err);
    if (rc || !n_users) return rc;
    uint64_t *excl = NULL;
    if ((rc = cb_recommend_exclusions(rec, &cfg, NULL, NULL, 0, &excl, err))) return rc;
    batch_job jb = {.rec = rec, .cfg = &cfg, .users = users, .n_users = n_users, .n = n, .items = items,
                    .scores = scores, .keep = n < ni ? n : ni};
    cb_rec_query_part(rec, cfg.rank_by, &jb.q_off, &jb.q_len);
    jb.nb_on = cb_rec_neighbours_on(rec, &cfg);
    jb.monotone = !jb.nb_on && (cfg.rank_by == CB_RANK_DOT || cb_rec_rank_monotone(rec, cfg.rank_by));
    int threads = cb_threads_resolve(cfg.threads, CB_THREADS_MAX);
    /* the blocks do not depend on the thread count: sgemm's rounding may depend on a block's rows */
    jb.block = cb_recommender_batch_block(rec);
    size_t n_blocks = (n_users + jb.block - 1) / jb.block;
    if ((size_t)threads > n_blocks) threads = (int)n_blocks;
    uint32_t *excluded = cb_malloc((ni + 1) * sizeof *excluded, err);
    if (!excluded) rc = CB_ENOMEM;
    for (size_t j = 0; !rc && j < ni; j++)
        if (cb_bit_get(excl, j)) excluded[jb.n_excluded++] = (uint32_t)j;
    jb.excluded = excluded;
    atomic_init(&jb.next, 0);
    batch_worker *w = rc ? NULL : workers_alloc(&jb, threads, err);
    if (!rc && !w) rc = CB_ENOMEM;
    if (!rc) {
        cb_blas_hold_one();
        cb_threads_run(batch_run, w, sizeof *w, threads);
        cb_blas_release();
        workers_free(w, threads);
    }
    free(excl);
    free(excluded);
    return rc;
}

CB_API int cb_recommender_batch_row_json(const cb_recommender *rec, size_t user, const int64_t *items,
                                         const float *scores, size_t n, const cb_config *opts, char **json_out,
                                         cb_error *err) {
    if (!rec || !json_out || (n && (!items || !scores)))
        return cb_fail(err, CB_EINVAL, "cb_recommender_batch_row_json: NULL argument");
    *json_out = NULL;
    if (user >= rec->r->n_users) return cb_fail(err, CB_ENOTFOUND, "user number %zu is out of range", user);
    cb_recommend_config cfg;
    int rc = cb_recommend_config_from(&cfg, opts, err);
    if (rc) return rc;
    json_t *list = json_array();
    for (size_t k = 0; list && k < n && items[k] >= 0; k++) {
        json_t *it = json_pack("{s:s,s:f}", "item", cb_recommender_item_id(rec, (size_t)items[k]), "score",
                               (double)scores[k]);
        if (it && cb_rec_is_added(rec, (uint32_t)items[k])) json_object_set_new(it, "new", json_true());
        json_array_append_new(list, it);
    }
    json_t *doc = list ? json_pack("{s:s,s:s,s:o}", "user", cb_recommender_user_id(rec, user), "criterion",
                                   cb_rec_criterion(rec, cfg.rank_by), "items", list)
                       : NULL;
    return cb_rec_json_dump(doc, json_out, err);
}
