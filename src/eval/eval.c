/* eval — rating and top-N metrics, beyond-accuracy measures, MovieLens 100K
 * fold files and fold summaries. See eval.h for the protocol and formulas. */
#include "eval/eval.h"
#include "base/csv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ ratings */

static int rating_metrics(cb_rating_metrics *out, const cb_dataset *ds, const uint32_t *test,
                          size_t n_test, cb_predict_fn predict, void *ctx, const float *pred,
                          cb_error *err) {
    memset(out, 0, sizeof *out);
    out->rmse = out->mae = NAN;
    if (n_test == 0) return cb_fail(err, CB_EINVAL, "eval: empty test set");
    double sq = 0.0, ab = 0.0;
    for (size_t j = 0; j < n_test; j++) {
        if (test[j] >= ds->n_ratings)
            return cb_fail(err, CB_EINVAL, "eval: test index %u out of range (%zu ratings)", test[j],
                           ds->n_ratings);
        const cb_rating *r = &ds->ratings[test[j]];
        float p = pred ? pred[j] : predict(ctx, r->user, r->item);
        if (!isfinite(p))
            return cb_fail(err, CB_EINVAL, "eval: non-finite prediction for user %u item %u",
                           r->user, r->item);
        double e = (double)p - (double)r->y;
        sq += e * e;
        ab += fabs(e);
    }
    out->n = n_test;
    out->rmse = sqrt(sq / (double)n_test);
    out->mae = ab / (double)n_test;
    return CB_OK;
}

int cb_eval_rating(cb_rating_metrics *out, const cb_dataset *ds, const uint32_t *test, size_t n_test,
                   cb_predict_fn predict, void *ctx, cb_error *err) {
    if (!predict) return cb_fail(err, CB_EINVAL, "eval: no predictor");
    return rating_metrics(out, ds, test, n_test, predict, ctx, NULL, err);
}

int cb_eval_rating_batch(cb_rating_metrics *out, const cb_dataset *ds, const uint32_t *test,
                         size_t n_test, const float *pred, cb_error *err) {
    if (!pred) return cb_fail(err, CB_EINVAL, "eval: no predictions");
    return rating_metrics(out, ds, test, n_test, NULL, NULL, pred, err);
}

/* -------------------------------------------------------------------- top-K */

void cb_topn_config_default(cb_topn_config *c) {
    c->k = 10;
    c->threshold = 4.0f;
    c->recall_k = 20;
    c->new_items_only = false;
    c->user_ndcg = NULL;
}

void cb_topn_threshold_resolve(cb_topn_config *c, const cb_dataset *ds) {
    if (c->threshold != (float)CB_THRESHOLD_AUTO || !ds) return;
    c->threshold = cb_dataset_relevant_from(ds);
}

/* a ranks strictly before b: higher score, NaN last, ties to the lower index. */
static inline bool ranks_before(float sa, uint32_t a, float sb, uint32_t b) {
    bool na = isnan(sa), nb = isnan(sb);
    if (na != nb) return nb;
    if (!na && sa != sb) return sa > sb;
    return a < b;
}

/* Min-heap by rank: the root is the worst of the kept items. */
static void heap_sift_down(uint32_t *heap, const float *scores, uint32_t n, uint32_t pos) {
    for (;;) {
        uint32_t worst = pos, l = 2 * pos + 1, r = l + 1;
        if (l < n && ranks_before(scores[heap[worst]], heap[worst], scores[heap[l]], heap[l])) worst = l;
        if (r < n && ranks_before(scores[heap[worst]], heap[worst], scores[heap[r]], heap[r])) worst = r;
        if (worst == pos) return;
        uint32_t t = heap[pos];
        heap[pos] = heap[worst];
        heap[worst] = t;
        pos = worst;
    }
}

uint32_t cb_eval_top_k(uint32_t *items, uint32_t k, const float *scores, uint32_t n_items,
                       const uint32_t *exclude, uint32_t stamp) {
    uint32_t n = 0;
    if (k == 0) return 0;
    for (uint32_t i = 0; i < n_items; i++) {
        if (exclude && exclude[i] == stamp) continue;
        if (n < k) {
            /* sift up */
            uint32_t pos = n++;
            items[pos] = i;
            while (pos > 0) {
                uint32_t parent = (pos - 1) / 2;
                if (!ranks_before(scores[items[parent]], items[parent], scores[items[pos]], items[pos]))
                    break;
                uint32_t t = items[parent];
                items[parent] = items[pos];
                items[pos] = t;
                pos = parent;
            }
        } else if (ranks_before(scores[i], i, scores[items[0]], items[0])) {
            items[0] = i;
            heap_sift_down(items, scores, n, 0);
        }
    }
    /* Heap sort: repeatedly move the worst to the end -> best first. */
    for (uint32_t end = n; end > 1; end--) {
        uint32_t t = items[0];
        items[0] = items[end - 1];
        items[end - 1] = t;
        heap_sift_down(items, scores, end - 1, 0);
    }
    return n;
}

/* -------------------------------------------------------------------- top-N */

/* Ratings grouped by user: idx[off[u]..off[u+1]) are indices into ds->ratings. */
typedef struct by_user {
    size_t *off;
    uint32_t *idx;
} by_user;

static void by_user_free(by_user *g) {
    free(g->off);
    free(g->idx);
    g->off = NULL;
    g->idx = NULL;
}

static int by_user_build(by_user *g, const cb_dataset *ds, uint32_t n_users, uint32_t n_items,
                         const uint32_t *sel, size_t n_sel, const char *what, cb_error *err) {
    g->off = cb_calloc((size_t)n_users + 1, sizeof *g->off, err);
    g->idx = cb_calloc(n_sel, sizeof *g->idx, err);
    if (!g->off || !g->idx) {
        by_user_free(g);
        return CB_ENOMEM;
    }
    for (size_t j = 0; j < n_sel; j++) {
        if (sel[j] >= ds->n_ratings || ds->ratings[sel[j]].user >= n_users ||
            ds->ratings[sel[j]].item >= n_items) {
            by_user_free(g);
            return cb_fail(err, CB_EINVAL, "eval: %s index %u out of range or naming an unknown user/item",
                           what, sel[j]);
        }
        g->off[ds->ratings[sel[j]].user + 1]++;
    }
    for (uint32_t u = 0; u < n_users; u++) g->off[u + 1] += g->off[u];
    size_t *fill = cb_calloc((size_t)n_users + 1, sizeof *fill, err);
    if (!fill) {
        by_user_free(g);
        return CB_ENOMEM;
    }
    memcpy(fill, g->off, ((size_t)n_users + 1) * sizeof *fill);
    for (size_t j = 0; j < n_sel; j++) g->idx[fill[ds->ratings[sel[j]].user]++] = sel[j];
    free(fill);
    return CB_OK;
}

/* Deduplicated, sorted genre lists per item (CSR), for Jaccard distances. */
typedef struct genre_sets {
    uint32_t *off, *val;
} genre_sets;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int cb_eval_diversity_column(const cb_dataset *ds) {
    int col = ds->roles.item_genres;
    if (col >= 0 && (uint32_t)col < ds->item_attr.n_cols && ds->item_attr.cols[col].kind == CB_COL_MULTI) return col;
    for (uint32_t j = 0; j < ds->item_attr.n_cols; j++) /* a catalog of tags, say: its first such column */
        if (ds->item_attr.cols[j].kind == CB_COL_MULTI) return (int)j;
    return -1;
}

static int genre_sets_build(genre_sets *g, const cb_dataset *ds, uint32_t n_items, bool *present,
                            cb_error *err) {
    *present = false;
    g->off = g->val = NULL;
    int col = cb_eval_diversity_column(ds);
    if (col < 0) return CB_OK;
    const cb_column *c = &ds->item_attr.cols[col];
    if (!c->off || ds->item_attr.n_rows < n_items) return CB_OK;
    size_t total = c->off[n_items];
    g->off = cb_calloc((size_t)n_items + 1, sizeof *g->off, err);
    g->val = cb_calloc(total + 1, sizeof *g->val, err);
    if (!g->off || !g->val) {
        free(g->off);
        free(g->val);
        g->off = g->val = NULL;
        return CB_ENOMEM;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        uint32_t start = n;
        for (uint32_t j = c->off[i]; j < c->off[i + 1]; j++) g->val[n++] = c->val[j];
        qsort(g->val + start, n - start, sizeof *g->val, cb_cmp_u32);
        uint32_t w = start;
        for (uint32_t j = start; j < n; j++)
            if (j == start || g->val[j] != g->val[w - 1]) g->val[w++] = g->val[j];
        n = w;
        g->off[i + 1] = n;
    }
    *present = true;
    return CB_OK;
}

static double jaccard_distance(const genre_sets *g, uint32_t a, uint32_t b) {
    uint32_t ia = g->off[a], ea = g->off[a + 1], ib = g->off[b], eb = g->off[b + 1];
    uint32_t inter = 0, uni = (ea - ia) + (eb - ib);
    if (uni == 0) return 0.0;
    while (ia < ea && ib < eb) {
        if (g->val[ia] == g->val[ib]) {
            inter++;
            ia++;
            ib++;
        } else if (g->val[ia] < g->val[ib]) {
            ia++;
        } else {
            ib++;
        }
    }
    uni -= inter;
    return 1.0 - (double)inter / (double)uni;
}

/* in_head[i] = 1 for the most popular items (by item_pop, ties to the lower
 * index) that together hold 80 % of the n_train training interactions. */
static int head_items(uint8_t *in_head, const uint32_t *item_pop, uint32_t n_items, size_t n_train, cb_error *err) {
    uint64_t *key = cb_malloc(((size_t)n_items + 1) * sizeof *key, err);
    if (!key) return CB_ENOMEM;
    /* descending count, then ascending index: sort (~count << 32 | index) ascending */
    for (uint32_t i = 0; i < n_items; i++) key[i] = (uint64_t)(UINT32_MAX - item_pop[i]) << 32 | i;
    qsort(key, n_items, sizeof *key, cmp_u64);
    double covered = 0, need = 0.8 * (double)n_train;
    for (uint32_t r = 0; r < n_items && covered < need; r++) {
        uint32_t i = (uint32_t)key[r];
        in_head[i] = 1;
        covered += item_pop[i];
    }
    free(key);
    return CB_OK;
}

/* Accuracy of one list against the relevant items marked rel_mark[i] == stamp
 * (n_rel > 0), added into the sums; returns the list's NDCG@k. */
typedef struct topn_sums {
    double prec, rec, rec_at, ndcg, ap, hit;
} topn_sums;

static double add_accuracy(topn_sums *s, const uint32_t *list, uint32_t n_list, uint32_t k, uint32_t recall_k,
                           uint32_t n_rel, const uint32_t *rel_mark, uint32_t *hit_mark, uint32_t stamp,
                           const double *idcg) {
    uint32_t hits = 0, hits_at = 0;
    double dcg = 0.0, ap = 0.0;
    for (uint32_t r = 0; r < n_list; r++) {
        uint32_t i = list[r];
        if (rel_mark[i] != stamp || hit_mark[i] == stamp) continue;
        hit_mark[i] = stamp;
        if (r < recall_k) hits_at++;
        if (r >= k) continue;
        hits++;
        dcg += 1.0 / log2((double)r + 2.0);
        ap += (double)hits / (double)(r + 1);
    }
    uint32_t ideal = n_rel < k ? n_rel : k;
    s->prec += (double)hits / (double)k;
    s->rec += (double)hits / (double)n_rel;
    s->rec_at += (double)hits_at / (double)n_rel;
    s->ndcg += dcg / idcg[ideal];
    s->ap += ap / (double)ideal;
    s->hit += hits > 0;
    return dcg / idcg[ideal];
}

/* What produces a user's list: the caller's list callback, or a scorer plus
 * top-K with the user's training items excluded. */
typedef struct list_source {
    cb_list_fn list;
    cb_score_fn score;
    void *ctx;
    float *scores;      /* [n_items] for the scorer */
    uint32_t *exclude;  /* [n_items] stamp = user + 1 for training items */
} list_source;

/* The scores of the candidates (the items not excluded) all equal, over two
 * or more of them: a top-K of them is the catalog's order, not the scorer's. */
static bool candidates_tie(const float *scores, uint32_t n_items, const uint32_t *exclude, uint32_t stamp) {
    uint32_t n = 0;
    float first = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        if (exclude[i] == stamp) continue;
        if (n++ == 0) first = scores[i];
        else if (scores[i] != first && !(isnan(scores[i]) && isnan(first))) return false;
    }
    return n >= 2;
}

/* User u's list of at most n_want items into list[0..*n_list): the
 * caller's list (checked: no more than asked, inside the catalog, new items
 * only when asked), or the scorer's top with u's training items (and with
 * new_items_only every item that has some) excluded; *tied: the scorer's
 * candidates all scored the same. */
static int user_list(uint32_t *list, uint32_t *n_list, bool *tied, uint32_t u, uint32_t n_want,
                     const cb_topn_config *cfg, const cb_dataset *ds, const by_user *train, const uint32_t *item_pop,
                     uint32_t n_items, list_source *src, cb_error *err) {
    const uint32_t stamp = u + 1;
    *tied = false;
    if (!src->list) {
        int rc = src->score(src->ctx, u, src->scores, n_items, err);
        if (rc != CB_OK) return rc;
        for (size_t j = train->off[u]; j < train->off[u + 1]; j++)
            src->exclude[ds->ratings[train->idx[j]].item] = stamp;
        for (uint32_t i = 0; cfg->new_items_only && i < n_items; i++)
            if (item_pop[i]) src->exclude[i] = stamp;
        *n_list = cb_eval_top_k(list, n_want, src->scores, n_items, src->exclude, stamp);
        *tied = candidates_tie(src->scores, n_items, src->exclude, stamp);
        return CB_OK;
    }
    int rc = src->list(src->ctx, u, n_want, list, n_list, err);
    if (rc != CB_OK) return rc;
    if (*n_list > n_want)
        return cb_fail(err, CB_EINVAL, "eval: list of user %u has %u items, more than asked (%u)", u, *n_list, n_want);
    for (uint32_t r = 0; r < *n_list; r++) {
        if (list[r] >= n_items)
            return cb_fail(err, CB_EINVAL, "eval: list of user %u names item %u (catalog has %u)", u, list[r], n_items);
        if (cfg->new_items_only && item_pop[list[r]])
            return cb_fail(err, CB_EINVAL, "eval: list of user %u names item %u, which has training "
                           "interactions (new items only)", u, list[r]);
    }
    return CB_OK;
}

/* The sums behind the metrics beyond accuracy (coverage, diversity,
 * popularity, long tail), over every evaluated list's top K. */
typedef struct beyond_sums {
    double div, pop_rec, pop_rated;
    size_t n_div_lists, n_rated, n_slots, n_covered, n_tail;
} beyond_sums;

/* User u's top K list[0..n) into b: the items it recommends for the first
 * time (recommended[] marks them), their popularity and how many are off
 * the head (in_head), u's rated items' popularity, and with genres (NULL:
 * none) the list's mean pairwise Jaccard distance. */
static void beyond_add(beyond_sums *b, const uint32_t *list, uint32_t n, uint32_t u, const cb_dataset *ds,
                       const by_user *train, const uint32_t *item_pop, const uint8_t *in_head, uint8_t *recommended,
                       const genre_sets *genres) {
    for (uint32_t r = 0; r < n; r++) {
        if (!recommended[list[r]]) {
            recommended[list[r]] = 1;
            b->n_covered++;
        }
        b->pop_rec += item_pop[list[r]];
        b->n_tail += !in_head[list[r]];
    }
    b->n_slots += n;
    for (size_t j = train->off[u]; j < train->off[u + 1]; j++) b->pop_rated += item_pop[ds->ratings[train->idx[j]].item];
    b->n_rated += train->off[u + 1] - train->off[u];
    if (genres && n >= 2) {
        double d = 0.0;
        for (uint32_t a = 0; a < n; a++)
            for (uint32_t c = a + 1; c < n; c++) d += jaccard_distance(genres, list[a], list[c]);
        b->div += d / ((double)n * (n - 1) / 2.0);
        b->n_div_lists++;
    }
}

static int topn_run(cb_topn_metrics *out, const cb_topn_config *cfg, const cb_dataset *ds,
                    const cb_split *split, list_source *src, cb_error *err) {
    memset(out, 0, sizeof *out);
    out->precision = out->recall = out->ndcg = out->map = out->hit_rate = NAN;
    out->coverage = out->diversity = NAN;
    out->pop_recommended = out->pop_rated = out->pop_ratio = out->long_tail = out->recall_at = NAN;
    if (!cfg || cfg->k == 0 || cfg->k > 1000000 || !isfinite(cfg->threshold))
        return cb_fail(err, CB_EINVAL, "eval: top-N needs 0 < k <= 1000000 and a finite threshold");
    if (cfg->recall_k > 1000000) return cb_fail(err, CB_EINVAL, "eval: top-N needs recall_k <= 1000000");
    out->k = cfg->k;
    out->threshold = cfg->threshold;
    out->recall_k = cfg->recall_k;
    const uint32_t n_users = cb_vocab_size(ds->users), n_items = cb_vocab_size(ds->items), k = cfg->k;
    const uint32_t n_want = k > cfg->recall_k ? k : cfg->recall_k;
    if (n_items == 0) return cb_fail(err, CB_EINVAL, "eval: empty catalog");

    int rc = CB_ENOMEM;
    by_user train = {0}, test = {0};
    genre_sets genres = {0};
    bool has_genres = false;
    uint32_t *item_pop = cb_calloc(n_items, sizeof *item_pop, err);
    uint32_t *rel_mark = cb_calloc(n_items, sizeof *rel_mark, err);
    uint32_t *hit_mark = cb_calloc(n_items, sizeof *hit_mark, err);
    uint8_t *recommended = cb_calloc(n_items, 1, err), *in_head = cb_calloc(n_items, 1, err);
    uint32_t *list = cb_calloc(n_want, sizeof *list, err);
    double *idcg = cb_calloc((size_t)k + 1, sizeof *idcg, err); /* idcg[n] = ideal DCG of n hits */
    if (!item_pop || !rel_mark || !hit_mark || !recommended || !in_head || !list || !idcg) goto done;
    if ((rc = by_user_build(&train, ds, n_users, n_items, split->train, split->n_train, "train", err)))
        goto done;
    if ((rc = by_user_build(&test, ds, n_users, n_items, split->test, split->n_test, "test", err)))
        goto done;
    if ((rc = genre_sets_build(&genres, ds, n_items, &has_genres, err))) goto done;
    for (size_t j = 0; j < split->n_train; j++) item_pop[ds->ratings[split->train[j]].item]++;
    if ((rc = head_items(in_head, item_pop, n_items, split->n_train, err))) goto done;
    for (uint32_t r = 1; r <= k; r++) idcg[r] = idcg[r - 1] + 1.0 / log2((double)r + 1.0);

    topn_sums sum = {0};
    beyond_sums bs = {0};
    for (uint32_t u = 0; cfg->user_ndcg && u < n_users; u++) cfg->user_ndcg[u] = NAN;
    for (uint32_t u = 0; u < n_users; u++) {
        if (test.off[u] == test.off[u + 1]) continue;
        const uint32_t stamp = u + 1;
        uint32_t n_rel = 0;
        for (size_t j = test.off[u]; j < test.off[u + 1]; j++) {
            const cb_rating *r = &ds->ratings[test.idx[j]];
            if (r->y >= cfg->threshold && rel_mark[r->item] != stamp) {
                rel_mark[r->item] = stamp;
                n_rel++;
            }
        }

        uint32_t n_list = 0;
        bool tied;
        if ((rc = user_list(list, &n_list, &tied, u, n_want, cfg, ds, &train, item_pop, n_items, src, err)))
            goto done;
        if (n_rel > 0) {
            double ndcg = add_accuracy(&sum, list, n_list, k, cfg->recall_k, n_rel, rel_mark, hit_mark, stamp, idcg);
            if (cfg->user_ndcg) cfg->user_ndcg[u] = ndcg;
            out->n_users_evaluated++;
            out->n_users_tied += tied;
        } else {
            out->n_users_skipped++;
        }

        beyond_add(&bs, list, n_list > k ? k : n_list, u, ds, &train, item_pop, in_head, recommended,
                   has_genres ? &genres : NULL);
    }

    /* every list in catalog order: the figures would be the id order's, not the model's */
    if (out->n_users_evaluated > 0 && out->n_users_tied < out->n_users_evaluated) {
        double n = (double)out->n_users_evaluated;
        out->precision = sum.prec / n;
        out->recall = sum.rec / n;
        out->ndcg = sum.ndcg / n;
        out->map = sum.ap / n;
        out->hit_rate = sum.hit / n;
        if (cfg->recall_k) out->recall_at = sum.rec_at / n;
    }
    out->n_recommended = bs.n_slots;
    out->coverage = (double)bs.n_covered / (double)n_items;
    if (bs.n_div_lists > 0) out->diversity = bs.div / (double)bs.n_div_lists;
    if (bs.n_slots > 0) out->pop_recommended = bs.pop_rec / (double)bs.n_slots;
    if (bs.n_slots > 0) out->long_tail = (double)bs.n_tail / (double)bs.n_slots;
    if (bs.n_rated > 0) out->pop_rated = bs.pop_rated / (double)bs.n_rated;
    if (bs.n_slots > 0 && bs.n_rated > 0 && out->pop_rated > 0)
        out->pop_ratio = out->pop_recommended / out->pop_rated;
    rc = CB_OK;
done:
    by_user_free(&train);
    by_user_free(&test);
    free(genres.off);
    free(genres.val);
    free(item_pop);
    free(rel_mark);
    free(hit_mark);
    free(recommended);
    free(in_head);
    free(list);
    free(idcg);
    return rc;
}

int cb_eval_topn(cb_topn_metrics *out, const cb_topn_config *cfg, const cb_dataset *ds,
                 const cb_split *split, cb_score_fn score, void *ctx, cb_error *err) {
    if (!score) return cb_fail(err, CB_EINVAL, "eval: no scorer");
    uint32_t n_items = cb_vocab_size(ds->items);
    list_source src = {.score = score, .ctx = ctx};
    src.scores = cb_calloc((size_t)n_items + 1, sizeof *src.scores, err);
    src.exclude = cb_calloc((size_t)n_items + 1, sizeof *src.exclude, err);
    int rc = CB_ENOMEM;
    if (src.scores && src.exclude) rc = topn_run(out, cfg, ds, split, &src, err);
    free(src.scores);
    free(src.exclude);
    return rc;
}

int cb_eval_topn_lists(cb_topn_metrics *out, const cb_topn_config *cfg, const cb_dataset *ds,
                       const cb_split *split, cb_list_fn list, void *ctx, cb_error *err) {
    if (!list) return cb_fail(err, CB_EINVAL, "eval: no list callback");
    list_source src = {.list = list, .ctx = ctx};
    return topn_run(out, cfg, ds, split, &src, err);
}

/* -------------------------------------------------------------- fold files */

typedef struct pair_ref {
    uint64_t key;       /* user << 32 | item */
    uint32_t idx;       /* index into ds->ratings */
} pair_ref;

static int cmp_pair(const void *a, const void *b) {
    const pair_ref *x = a, *y = b;
    if (x->key != y->key) return (x->key > y->key) - (x->key < y->key);
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Read one fold file, appending matched indices to *out / *n_out. */
static int read_fold_file(uint32_t **out, size_t *n_out, const cb_dataset *ds, const char *path,
                          const pair_ref *pairs, size_t n_pairs, uint8_t *used, cb_error *err) {
    cb_csv_options opt;
    cb_csv_options_default(&opt);
    opt.delim = "\t";
    opt.quoting = 0;
    cb_csv *csv = NULL;
    int rc = cb_csv_open(&csv, path, &opt, err);
    if (rc != CB_OK) return rc;
    size_t cap = 0, n = 0;
    uint32_t *idx = NULL;
    char **fields;
    size_t *lens, n_fields;
    while ((rc = cb_csv_next(csv, &fields, &lens, &n_fields, err)) == 1) {
        size_t line = cb_csv_line(csv);
        if (n_fields < 3) {
            rc = cb_fail(err, CB_EPARSE,
                         "%s:%zu: expected tab-separated user, item, rating[, timestamp] (ml-100k's u1.base), got %zu "
                         "field(s)", path, line, n_fields);
            goto fail;
        }
        float y;
        int64_t ts = 0;
        bool has_ts = n_fields >= 4 && lens[3] > 0;
        if (!cb_parse_float(fields[2], lens[2], &y)) {
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: bad rating '%.*s'", path, line, (int)(lens[2] > 40 ? 40 : lens[2]),
                         fields[2]);
            goto fail;
        }
        if (has_ts && !cb_time_parse(fields[3], lens[3], &ts)) { /* the data's forms: seconds or ISO 8601 */
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: bad timestamp '%.*s' (seconds since 1970 or ISO 8601)", path, line,
                         (int)(lens[3] > 40 ? 40 : lens[3]), fields[3]);
            goto fail;
        }
        int64_t user = cb_vocab_find(ds->users, fields[0], lens[0]);
        int64_t item = cb_vocab_find(ds->items, fields[1], lens[1]);
        if (user < 0 || item < 0) {
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: %s '%.*s' is not in the dataset", path, line,
                         user < 0 ? "user" : "item", (int)(user < 0 ? (lens[0] > 40 ? 40 : lens[0]) : (lens[1] > 40 ? 40 : lens[1])),
                         user < 0 ? fields[0] : fields[1]);
            goto fail;
        }
        uint64_t key = (uint64_t)user << 32 | (uint64_t)item;
        size_t lo = 0, hi = n_pairs;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (pairs[mid].key < key) lo = mid + 1;
            else hi = mid;
        }
        bool found_pair = false, found_free = false;
        int64_t match = -1;
        for (size_t p = lo; p < n_pairs && pairs[p].key == key; p++) {
            found_pair = true;
            const cb_rating *r = &ds->ratings[pairs[p].idx];
            bool same_y = fabsf(r->y - y) <= 1e-6f * fmaxf(1.0f, fabsf(y));
            bool same_ts = !has_ts || !ds->has_timestamps || (int64_t)r->ts == ts;
            if (!same_y || !same_ts) continue;
            if (used[pairs[p].idx]) {
                found_free = true; /* matches, but already taken */
                continue;
            }
            match = pairs[p].idx;
            break;
        }
        if (match < 0) {
            const char *why = !found_pair ? "has no rating in the dataset"
                              : found_free ? "repeats a rating already used by this fold"
                                           : "differs from the dataset's rating or timestamp";
            rc = cb_fail(err, CB_EPARSE, "%s:%zu: user %s item %s %s", path, line,
                         cb_vocab_name(ds->users, (uint32_t)user), cb_vocab_name(ds->items, (uint32_t)item), why);
            goto fail;
        }
        used[match] = 1;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            uint32_t *grown = cb_realloc_array(idx, ncap, sizeof *idx, err);
            if (!grown) {
                rc = CB_ENOMEM;
                goto fail;
            }
            idx = grown;
            cap = ncap;
        }
        idx[n++] = (uint32_t)match;
    }
    if (rc < 0) goto fail;
    cb_csv_close(csv);
    *out = idx;
    *n_out = n;
    return CB_OK;
fail:
    cb_csv_close(csv);
    free(idx);
    return rc;
}

int cb_eval_split_from_files(cb_split *out, const cb_dataset *ds, const char *base_path,
                             const char *test_path, cb_error *err) {
    memset(out, 0, sizeof *out);
    if (ds->n_ratings > UINT32_MAX)
        return cb_fail(err, CB_EINVAL, "eval: too many ratings for 32-bit indices");
    pair_ref *pairs = cb_calloc(ds->n_ratings + 1, sizeof *pairs, err);
    uint8_t *used = cb_calloc(ds->n_ratings + 1, 1, err);
    if (!pairs || !used) {
        free(pairs);
        free(used);
        return CB_ENOMEM;
    }
    for (size_t j = 0; j < ds->n_ratings; j++) {
        pairs[j].key = (uint64_t)ds->ratings[j].user << 32 | ds->ratings[j].item;
        pairs[j].idx = (uint32_t)j;
    }
    qsort(pairs, ds->n_ratings, sizeof *pairs, cmp_pair);
    int rc = read_fold_file(&out->train, &out->n_train, ds, base_path, pairs, ds->n_ratings, used, err);
    if (rc == CB_OK)
        rc = read_fold_file(&out->test, &out->n_test, ds, test_path, pairs, ds->n_ratings, used, err);
    free(pairs);
    free(used);
    if (rc != CB_OK) {
        free(out->train);
        free(out->test);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

/* ----------------------------------------------------------------- results */

void cb_eval_result_init(cb_eval_result *r, const char *model, int fold) {
    memset(r, 0, sizeof *r);
    snprintf(r->model, sizeof r->model, "%s", model ? model : "");
    r->fold = fold;
    r->rating.rmse = r->rating.mae = NAN;
    r->vs_ndcg_diff = r->vs_ndcg_se = NAN;
}

void cb_eval_compare(cb_eval_result *r, const double *mine, const cb_eval_result *ref, const double *theirs,
                     uint32_t n_users) {
    size_t n = 0;
    double mean = 0.0, m2 = 0.0; /* Welford's running mean and sum of squares of the differences */
    for (uint32_t u = 0; u < n_users; u++) {
        double d = mine[u] - theirs[u];
        if (!isfinite(d)) continue;
        n++;
        double delta = d - mean;
        mean += delta / (double)n;
        m2 += delta * (d - mean);
    }
    snprintf(r->vs_model, sizeof r->vs_model, "%s", ref->model);
    r->vs_users = n;
    r->vs_ndcg_diff = n ? mean : NAN;
    r->vs_ndcg_se = n >= 2 ? sqrt(m2 / (double)(n - 1) / (double)n) : NAN;
}

void cb_eval_compare_clustered(double *diff, double *se, size_t *users, size_t *pairs, const double *sum,
                               const uint32_t *count, uint32_t n_users) {
    double total = 0.0;
    size_t g = 0, n = 0;
    for (uint32_t u = 0; u < n_users; u++)
        if (count[u]) total += sum[u], n += count[u], g++;
    *users = g, *pairs = n;
    *diff = n ? total / (double)n : NAN;
    double ss = 0.0;
    for (uint32_t u = 0; n && u < n_users; u++)
        if (count[u]) ss += (sum[u] - count[u] * *diff) * (sum[u] - count[u] * *diff);
    *se = g >= 2 ? sqrt((double)g / (double)(g - 1) * ss) / (double)n : NAN;
}

cb_eval_stat cb_eval_stat_of(const double *v, size_t n) {
    cb_eval_stat s = {NAN, NAN, 0};
    double sum = 0.0;
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(v[j])) continue;
        sum += v[j];
        s.n++;
    }
    if (s.n == 0) return s;
    s.mean = sum / (double)s.n;
    double sq = 0.0;
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(v[j])) continue;
        sq += (v[j] - s.mean) * (v[j] - s.mean);
    }
    s.std = sqrt(sq / (double)s.n);
    return s;
}

int cb_eval_summarize(cb_eval_summary *out, const cb_eval_result *results, size_t n_results,
                      const char *model, cb_error *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", model ? model : "all");
    enum { N_STATS = 15 };
    double *v = cb_calloc(n_results * N_STATS + 1, sizeof *v, err);
    if (!v) return CB_ENOMEM;
    size_t n = 0;
    for (size_t j = 0; j < n_results; j++) {
        const cb_eval_result *r = &results[j];
        if (model && strcmp(r->model, model) != 0) continue;
        const cb_topn_metrics *t = &r->topn;
        double row[N_STATS] = {r->rating.rmse, r->rating.mae,
                               r->has_topn ? t->precision : NAN, r->has_topn ? t->recall : NAN,
                               r->has_topn ? t->ndcg : NAN, r->has_topn ? t->map : NAN,
                               r->has_topn ? t->hit_rate : NAN, r->has_topn ? t->coverage : NAN,
                               r->has_topn ? t->diversity : NAN, r->has_topn ? t->pop_ratio : NAN,
                               r->fit_seconds, r->eval_seconds, r->has_topn ? t->recall_at : NAN,
                               r->has_topn ? t->pop_recommended : NAN, r->has_topn ? t->long_tail : NAN};
        for (int s = 0; s < N_STATS; s++) v[(size_t)s * n_results + n] = row[s];
        n++;
    }
    if (n == 0) {
        free(v);
        return cb_fail(err, CB_ENOTFOUND, "eval: no results for model '%s'", model ? model : "(any)");
    }
    out->n_folds = n;
    cb_eval_stat *dst[N_STATS] = {&out->rmse, &out->mae, &out->precision, &out->recall,
                                  &out->ndcg, &out->map, &out->hit_rate, &out->coverage,
                                  &out->diversity, &out->pop_ratio, &out->fit_seconds, &out->eval_seconds,
                                  &out->recall_at, &out->pop_recommended, &out->long_tail};
    for (int s = 0; s < N_STATS; s++) *dst[s] = cb_eval_stat_of(v + (size_t)s * n_results, n);
    free(v);
    return CB_OK;
}
