/* eval — how cbrec measures itself: rating-prediction error (RMSE, MAE),
 * top-N accuracy (precision, recall, NDCG, MAP and hit rate at K), beyond-
 * accuracy measures (catalog coverage, intra-list genre diversity, popularity
 * bias), MovieLens 100K's fixed folds (u1..u5), and per-fold results with
 * their mean and spread.
 *
 * Models plug in through callbacks, so the two-tower model, the baselines and
 * the retrieval -> ranking pipeline are measured by the same code:
 *   cb_predict_fn  one rating estimate per (user, item);
 *   cb_score_fn    scores of the whole catalog for one user (a dot product of
 *                  the user vector with all item vectors, say);
 *   cb_list_fn     a ready recommendation list for one user.
 *
 * Top-N protocol. For every user with at least one held-out rating, the items
 * with held-out rating >= threshold are that user's relevant items. A user
 * with none is skipped for the accuracy metrics (and counted). With a scorer,
 * the list is the top K of the full catalog by score, the user's training
 * items excluded, ties broken by the lower item index, NaN scores ranked
 * last. A scorer that gives every evaluated user's candidates one score (a
 * popularity count on items nobody rated, EASE for a user without history)
 * does not rank: its lists would be the catalog's order, so the accuracy
 * metrics stay NAN (n_users_tied = n_users_evaluated says so). With a list
 * callback, the list is evaluated exactly as given.
 * Per-user definitions (averaged over evaluated users), hits = relevant items
 * in the list (each counted once), n_rel = number of relevant items:
 *   precision@K = hits / K                 (K even when the list is shorter)
 *   recall@K    = hits / n_rel
 *   NDCG@K      = sum_{rank r hit} 1/log2(r+1) / sum_{r=1..min(K,n_rel)} 1/log2(r+1)
 *   AP@K        = sum_{rank r hit} precision@r / min(K, n_rel)   (MAP = mean AP)
 *   hit rate    = fraction of users with hits > 0;
 *   recall@R    = hits in the top R / n_rel, for the second list length R
 *                 (recall_k, 20 by default: the list is max(K, R) long and
 *                 every other measure uses its first K).
 * Beyond-accuracy measures use the lists of every user with a held-out
 * rating (skipped users included):
 *   coverage    = distinct recommended items / catalog size;
 *   diversity   = mean over lists (of >= 2 items) of the mean pairwise Jaccard
 *                 distance 1 - |G_a & G_b| / |G_a | G_b| of the items' genre
 *                 sets (two genre-less items: distance 0); without a genre
 *                 column the sets of the first multi-valued item column
 *                 (tags: cb_eval_diversity_column); NAN when there is none;
 *   popularity  = an item's number of training ratings; pop_recommended is its
 *                 mean over recommended slots, pop_rated its mean over the
 *                 training ratings of the same users; pop_ratio their quotient
 *                 (> 1: the model recommends more popular items than users
 *                 rate);
 *   long tail   = share of the recommended top-K slots holding a long-tail
 *                 item: one outside the head, the most popular items (by
 *                 training count, ties to the lower index) that together
 *                 make up 80 % of the training interactions.
 *
 * Threading: the functions hold no state; callbacks are called from the
 * calling thread only, in increasing user order. */
#ifndef CB_EVAL_H
#define CB_EVAL_H

#include "data/dataset.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Callbacks. */
/* Estimated rating of (user, item). */
typedef float (*cb_predict_fn)(void *ctx, uint32_t user, uint32_t item);
/* Fill scores[0..n_items-1] for `user` (higher = better). Return CB_OK or a
 * negative CB_E* code with `err` filled; evaluation stops on error. */
typedef int (*cb_score_fn)(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err);
/* Write up to k item indices, best first, to items[] and their number to
 * *n_out. Return CB_OK or a negative CB_E* code with `err` filled. */
typedef int (*cb_list_fn)(void *ctx, uint32_t user, uint32_t k, uint32_t *items, uint32_t *n_out,
                          cb_error *err);

/* ---- Rating prediction. */
typedef struct cb_rating_metrics {
    double rmse, mae;
    size_t n;                /* held-out ratings measured */
} cb_rating_metrics;

/* RMSE and MAE of predict(ctx, u, i) against ds->ratings[test[j]].y over all
 * j < n_test. The predictor is used as is (clip inside it if wanted).
 * CB_EINVAL for an index out of range, an empty test set or a non-finite
 * prediction (named in the message). */
int cb_eval_rating(cb_rating_metrics *out, const cb_dataset *ds, const uint32_t *test, size_t n_test,
                   cb_predict_fn predict, void *ctx, cb_error *err);
/* The same with caller-filled predictions: pred[j] estimates ds->ratings[test[j]]. */
int cb_eval_rating_batch(cb_rating_metrics *out, const cb_dataset *ds, const uint32_t *test,
                         size_t n_test, const float *pred, cb_error *err);

/* ---- Top-N. */
typedef struct cb_topn_config {
    uint32_t k;              /* list length (10) */
    float threshold;         /* relevant = held-out rating >= threshold (4); CB_THRESHOLD_AUTO:
                                cb_topn_threshold_resolve sets it from the data */
    uint32_t recall_k;       /* also recall@recall_k (20); 0 = not measured */
    bool new_items_only;     /* rank only the items without training interactions (the
                                cold-items protocol: which new item will the user pick) */
    double *user_ndcg;       /* NULL, or [n_users] filled with each evaluated user's NDCG@K and
                                NAN for the others (what a paired comparison of two rows needs) */
} cb_topn_config;
void cb_topn_config_default(cb_topn_config *c);
/* The EVAL key "threshold auto" (the default): cb_dataset_relevant_from. */
#define CB_THRESHOLD_AUTO (-2000000000)
void cb_topn_threshold_resolve(cb_topn_config *c, const cb_dataset *ds);

typedef struct cb_topn_metrics {
    uint32_t k;
    float threshold;
    double precision, recall, ndcg, map, hit_rate;
    size_t n_users_evaluated;  /* users with >= 1 relevant held-out item */
    size_t n_users_skipped;    /* users with held-out ratings but none relevant */
    size_t n_users_tied;       /* evaluated users whose candidates the scorer scored all alike (two or
                                  more of them); all of them: the accuracy metrics are NAN */
    /* beyond accuracy, over the lists of evaluated + skipped users */
    double coverage;           /* in [0, 1] */
    double diversity;          /* in [0, 1], NAN without genres */
    double pop_recommended, pop_rated, pop_ratio;
    double long_tail;          /* in [0, 1]: share of top-K slots outside the 80 % head */
    size_t n_recommended;      /* total list slots filled */
    uint32_t recall_k;         /* the second list length (0: recall_at not measured) */
    double recall_at;          /* recall@recall_k, same users as recall */
} cb_topn_metrics;

/* Top-N metrics from a catalog scorer (see the protocol above). `train` and
 * `test` index ds->ratings; `train` defines the excluded items and the
 * popularity counts. Returns CB_OK, CB_EINVAL (bad config or index), CB_ENOMEM
 * or whatever the scorer returned. */
int cb_eval_topn(cb_topn_metrics *out, const cb_topn_config *cfg, const cb_dataset *ds,
                 const cb_split *split, cb_score_fn score, void *ctx, cb_error *err);
/* Top-N metrics of lists given by the caller (e.g. retrieval -> ranking).
 * Lists are taken as given (no exclusion of training items); item indices
 * must be < the catalog size. The callback is asked for max(k, recall_k)
 * items. */
int cb_eval_topn_lists(cb_topn_metrics *out, const cb_topn_config *cfg, const cb_dataset *ds,
                       const cb_split *split, cb_list_fn list, void *ctx, cb_error *err);

/* Top-K of scores[0..n_items-1] into items[] (best first), skipping items
 * with exclude[i] == stamp when exclude is not NULL (use a fresh non-zero
 * stamp per call, e.g. user + 1, so one array serves every user without
 * clearing; a zeroed array with stamp 0 excludes everything); ties go to the lower
 * index, NaN ranks last. Returns the number written (<= k). Used by
 * cb_eval_topn; exported for the retrieval experiment and tests. */
uint32_t cb_eval_top_k(uint32_t *items, uint32_t k, const float *scores, uint32_t n_items,
                       const uint32_t *exclude, uint32_t stamp);

/* The item column whose value sets the diversity measures: the genre
 * column, else the first multi-valued one (a shop's tags), else -1 (none). */
int cb_eval_diversity_column(const cb_dataset *ds);

/* ---- MovieLens 100K folds. */
/* Map the rows of a fold's base and test files (tab-separated "user item
 * rating timestamp", no header, e.g. u1.base / u1.test) to indices into
 * ds->ratings of the loaded u.data dataset: out->train from base_path,
 * out->test from test_path. Each row must match a rating of `ds` (same user
 * and item ids, same value, and same timestamp when both have one), used at
 * most once across the two files; otherwise CB_EPARSE naming file:line.
 * On success free with cb_split_free (or free() both arrays). */
int cb_eval_split_from_files(cb_split *out, const cb_dataset *ds, const char *base_path,
                             const char *test_path, cb_error *err);

/* ---- Results over folds. */
typedef struct cb_eval_result {
    char model[64];            /* model name, e.g. "bias", "svd", "two-tower" */
    int fold;                  /* 1-based fold number, 0 when not a fold */
    size_t n_train, n_test;
    cb_rating_metrics rating;  /* rmse / mae NAN when not measured */
    bool has_topn;
    cb_topn_metrics topn;
    double fit_seconds, eval_seconds; /* filled by the caller */
    char settings[256];        /* settings chosen on a validation carve, and what the row's figures
                                  are not (no ranking), in words ("" = none) */
    /* Against the split's strongest baseline (cb_eval_compare): */
    char vs_model[64];         /* its name ("" = not compared) */
    double vs_ndcg_diff;       /* mean over users of this row's NDCG@K minus the baseline's */
    double vs_ndcg_se;         /* its paired standard error (NAN below two users) */
    size_t vs_users;           /* the users evaluated in both rows */
} cb_eval_result;

/* A result with the name set, rmse/mae NAN, has_topn false, zeros elsewhere. */
void cb_eval_result_init(cb_eval_result *r, const char *model, int fold);
/* r's top-N against ref's on the same split, user by user: from the
 * per-user NDCG@K of both (cb_topn_config.user_ndcg, n_users long), over
 * the users with a figure in both, the mean difference (r minus ref) and
 * its standard error (the differences' sample standard deviation / sqrt n)
 * into r's vs_ fields. A paired figure: the users' own spread (some lists
 * are easy for every model) cancels, so it tells two rows apart where
 * their means' spreads overlap. */
void cb_eval_compare(cb_eval_result *r, const double *mine, const cb_eval_result *ref, const double *theirs,
                     uint32_t n_users);
/* The same over several splits, where a user is in the test part of more
 * than one (ml-100k's u1-u5: up to five) and its differences go together:
 * from each user's sum of differences sum[u] over its count[u] splits, the
 * mean over all (user, split) pairs and its standard error clustered by user
 * (the cluster-robust variance of a mean, G/(G-1) sum_u (sum_u - count_u
 * mean)^2 / N^2 over the G users with a count and N pairs); *users = G,
 * *pairs = N. Treating the splits as independent understated it (1.24x on
 * ml-100k's folds). NAN se below two users. */
void cb_eval_compare_clustered(double *diff, double *se, size_t *users, size_t *pairs, const double *sum,
                               const uint32_t *count, uint32_t n_users);

typedef struct cb_eval_stat {
    double mean, std;          /* population std (ddof 0), as Surprise reports */
    size_t n;                  /* finite values used */
} cb_eval_stat;
/* Mean and population standard deviation of the finite values in v[0..n-1]
 * (NAN mean and std when there are none). */
cb_eval_stat cb_eval_stat_of(const double *v, size_t n);

typedef struct cb_eval_summary {
    char model[64];
    size_t n_folds;
    cb_eval_stat rmse, mae;
    cb_eval_stat precision, recall, ndcg, map, hit_rate;
    cb_eval_stat coverage, diversity, pop_ratio;
    cb_eval_stat recall_at, pop_recommended, long_tail;
    cb_eval_stat fit_seconds, eval_seconds;
} cb_eval_summary;
/* Summarise the results whose model name equals `model` (all results when
 * `model` is NULL). Top-N stats use only results with has_topn. CB_ENOTFOUND
 * when no result matches. */
int cb_eval_summarize(cb_eval_summary *out, const cb_eval_result *results, size_t n_results,
                      const char *model, cb_error *err);

#endif /* CB_EVAL_H */
