/* itemrec — the strong item-to-item top-N baselines, fitted on the binary
 * training interaction matrix X (X[u][i] = 1 when u has any training rating
 * of i, whatever its value):
 *
 *   EASE      Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse
 *             Data": B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1,
 *             so diag(B) = 0; the score of item j for user u is x_u . B[:, j].
 *             P comes from a Cholesky factorisation and inverse (LAPACK
 *             spotrf / spotri from OpenBLAS) of the Gram matrix of the items
 *             with at least one training interaction; an item without any
 *             has a zero column in X, so its rows and columns of B are zero
 *             and it scores 0 (exactly what the full inverse gives). With
 *             fewer users than items (ml-latest-small: 610 vs ~9000) the
 *             Woodbury identity inverts the users' Gram matrix instead
 *             (cb_ease_form): the same model at a fraction of the cost.
 *   ITEM_KNN  item-based top-N (Deshpande & Karypis 2004): the cosine
 *             similarity of two items' columns of X, shrunk as
 *             s(i, j) = |U_i & U_j| / (sqrt(|U_i| |U_j|) + shrink); each
 *             item keeps its knn_k most similar other items (ties to the
 *             lower index), and the score of item j for user u is the sum of
 *             s(i, j) over the user's training items i that kept j.
 *
 * Neither predicts a rating: they only rank (cb_eval_topn). Their settings
 * (lambda; knn_k and shrink) are chosen with cb_itemrec_tune on a validation
 * carve of the training ratings (cb_split_carve), never on the test part.
 *
 * Memory: EASE holds a dense float matrix of n_active^2 (n_active = items
 * with training interactions, at most CB_ITEMREC_MAX_DENSE), or in the user
 * form a double matrix of n_users^2 plus the interactions; item-kNN builds
 * the same Gram matrix while fitting and keeps n_active * knn_k weights.
 * Threading: a fitted cb_itemrec is read-only; any number of threads may
 * score with it at once. */
#ifndef CB_ITEMREC_H
#define CB_ITEMREC_H

#include "data/dataset.h"
#include "eval/eval.h"
#include "features/featurize.h"
#include <stdint.h>

#define CB_ITEMREC_MAX_DENSE 40000u /* items with interactions: the Gram matrix is dense */

typedef enum cb_itemrec_kind {
    CB_ITEMREC_EASE = 0,
    CB_ITEMREC_ITEM_KNN = 1
} cb_itemrec_kind;

/* Which Gram matrix EASE inverts; both give the same B (up to round-off). */
typedef enum cb_ease_form {
    CB_EASE_AUTO = 0,  /* the smaller: USERS when fewer users than items have interactions */
    CB_EASE_ITEMS = 1, /* P = (X^T X + lambda I)^-1 directly: n_items^2 floats, B stored */
    CB_EASE_USERS = 2  /* Woodbury: P = (I - X^T M X) / lambda, M = (X X^T + lambda I)^-1 in
                          double (n_users^2); B is never formed: x_u B = x_u - (x_u P) / diag(P) */
} cb_ease_form;

typedef struct cb_itemrec_config {
    cb_itemrec_kind kind;
    double lambda;     /* EASE: L2 weight added to the Gram diagonal (500, Steck's ML-20M value) */
    cb_ease_form ease_form; /* EASE: CB_EASE_AUTO */
    uint32_t knn_k;    /* ITEM_KNN: neighbours kept per item (100; 0 = all) */
    double shrink;     /* ITEM_KNN: cosine shrinkage (0) */
} cb_itemrec_config;

/* Defaults for `kind` (the values above). */
void cb_itemrec_config_default(cb_itemrec_config *c, cb_itemrec_kind kind);
/* NULL when valid, otherwise a static message. */
const char *cb_itemrec_config_check(const cb_itemrec_config *c);
/* "ease", "item-knn". */
const char *cb_itemrec_kind_name(cb_itemrec_kind kind);
/* The settings in a few words ("lambda 500", "k 100, shrink 10") into buf. */
void cb_itemrec_config_describe(const cb_itemrec_config *c, char *buf, size_t size);

typedef struct cb_itemrec cb_itemrec;

/* Fit on the interactions ds->ratings[train[0..n_train-1]] (duplicates
 * count once). The model covers ds's users and items at fit time; ds is not
 * referenced afterwards. CB_EINVAL for a bad config, an index out of range,
 * no training data or more than CB_ITEMREC_MAX_DENSE active items,
 * CB_ENUMERIC when the factorisation fails, CB_ENOMEM. Free with
 * cb_itemrec_free (NULL is a no-op). */
int cb_itemrec_fit(cb_itemrec **out, const cb_itemrec_config *c, const cb_dataset *ds, const uint32_t *train,
                   size_t n_train, cb_error *err);
void cb_itemrec_free(cb_itemrec *m);

/* Scores of items 0..n_items-1 for `user` into scores[] (higher = better;
 * the user's own training items are scored too: the caller excludes them).
 * A user unknown at fit time, or without training items, scores 0
 * everywhere. CB_EINVAL when n_items differs from the fitted catalog. The
 * signature is eval.h's cb_score_fn (ctx = const cb_itemrec *). */
int cb_itemrec_score_cb(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err);

/* The weight of item `from` towards item `to` (EASE: B[from][to];
 * ITEM_KNN: s(from, to) if `from` kept `to`, else 0). For tests. */
float cb_itemrec_weight(const cb_itemrec *m, uint32_t from, uint32_t to);

/* Choose settings: fit every config of grid[0..n_grid-1] on carve->train and
 * measure NDCG@K (topn) on carve->test; *best receives the first config
 * with the highest NDCG, *best_ndcg its value, and ndcg[g] (may be NULL)
 * every config's figure. When no config has one (no carve user with a
 * relevant held-out item, or every setting's scores tie: eval.h), *best is
 * grid[0] and *best_ndcg NAN: nothing was chosen. */
int cb_itemrec_tune(cb_itemrec_config *best, double *best_ndcg, double *ndcg, const cb_itemrec_config *grid,
                    size_t n_grid, const cb_dataset *ds, const cb_split *carve, const cb_topn_config *topn,
                    cb_error *err);

/* ---- content-kNN: the content-only baseline (no collaborative signal)
 *
 * Each item's content row comes from the feature transform fitted on the
 * training ratings (cb_features_fit with item_stats off: year, genres, other
 * declared item columns); any column whose name starts with "rating_" (the
 * rating-derived shrunk mean and count) is dropped as well, so an item's row
 * does not depend on its ratings. Rows are L2-normalised. A user's profile is
 * the mean of the rows of the distinct items they rated in training at or
 * above their own mean training rating (every rated item on binary data); a
 * user without training ratings (cold user) gets the global profile, the mean
 * of the warm users' profiles. Score = cosine(profile, item row); items
 * without interactions (cold items) are scored by their content like any
 * other. No settings, no tuning. */
typedef struct cb_contentknn cb_contentknn;

/* fc: the feature configuration (NULL: defaults); item_stats is forced off.
 * CB_EINVAL for an index out of range or no training data, CB_ENOMEM. */
int cb_contentknn_fit(cb_contentknn **out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                      const cb_feature_config *fc, cb_error *err);
void cb_contentknn_free(cb_contentknn *m); /* NULL is a no-op */
/* eval.h's cb_score_fn (ctx = const cb_contentknn *): cosine scores of every item. */
int cb_contentknn_score_cb(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err);
/* The normalised content row of `item` (NULL out of range); *dim its length. For tests. */
const float *cb_contentknn_item_row(const cb_contentknn *m, uint32_t item, uint32_t *dim);

#endif /* CB_ITEMREC_H */
