/* bundle — everything a trained cbrec model file holds, in memory: the
 * two towers (model.h), the fitted feature transform (featurize.h), the id
 * vocabularies and titles, the precomputed item vectors V_m and known users'
 * vectors V_u, each user's training interactions (for "already seen"
 * filtering, the history-based sources and the "which you rated ..."
 * reasons), and the cheap retrieval lists computed at training time (top
 * items per genre, per level of each categorical user attribute, overall).
 *
 * cb_bundle_train() is the whole training pipeline on a dataset and a split;
 * cb_bundle_save() / cb_bundle_load() write and read the model file: the st
 * container (safetensors layout, see st.h) with format "cbrec-model", and
 * the training interactions (the history: 12 B per rating, ~90 % of a large
 * model) in a second st file beside it, "MODEL.history" (format
 * "cbrec-history", tied to the model by its fingerprint), so copies of the
 * model that serve no known users need not carry it. A model loaded without
 * its history still recommends: known users keep their trained vectors and
 * attribute levels, but nothing is filtered as already rated, there are no
 * "which you rated" sources or reasons, live events replace rather than
 * extend a known user's ratings, and item rating counts / means come from
 * the feature transform (training ratings, shrunk mean).
 * A loaded recommender is read-only and may be shared between threads; it
 * keeps the file mapped and points into it. */
#ifndef CB_BUNDLE_H
#define CB_BUNDLE_H

#include "data/dataset.h"
#include "features/featurize.h"
#include "model/model.h"
#include "model/neighbours.h"
#include "base/idtab.h"
#include "base/st.h"

#define CB_BUNDLE_FORMAT "cbrec-model"
#define CB_BUNDLE_FORMAT_VERSION 4 /* 2: the user tower may take a history bag (older cbrec refuse
                                      these files by their version; version 1 files still load);
                                      3: the history lives in its own file (version 1 and 2 files,
                                      which hold it, still load);
                                      4: user ids, item ids and titles are binary tables (idtab.h:
                                      tensors users.*, items.*, titles.*) instead of JSON metadata
                                      (files of versions 1-3 still load) */
#define CB_BUNDLE_HISTORY_FORMAT "cbrec-history"
#define CB_BUNDLE_HISTORY_VERSION 2 /* 2: sectioned checksum (st.h), each user's rows verified when
                                       first read (version 1 files, verified whole at load, still load) */
#define CB_BUNDLE_HISTORY_SUFFIX ".history" /* the default history path: the model's + this */
#define CB_BUNDLE_TOP_LIST 100 /* length of each precomputed retrieval list */

/* A categorical user attribute kept for "popular among users like you". */
typedef struct cb_bundle_group {
    char *column;            /* e.g. "region", "occupation" */
    uint32_t n_levels;
    char **levels;           /* [n_levels] level names */
    const int32_t *user_level; /* [n_users] level index, -1 when missing */
    const int32_t *top;      /* [n_levels x CB_BUNDLE_TOP_LIST] item indices, -1 padded */
} cb_bundle_group;

typedef struct cb_bundle {
    char *dataset;           /* name of the dataset it was trained on */
    char *ratings_layout;    /* its ratings file's row layout as JSON (cb_recommender_ratings_layout);
                              * NULL: not recorded (a model saved by an earlier
                              * build, pre-joined data) */
    char *fingerprint;       /* identifies this model (tables built from it carry it) */
    cb_model *model;
    cb_features *features;
    cb_idtab *users, *items; /* ids <-> indices (indexed tables) */
    cb_idtab *titles;        /* [n_items], "" when the item has none */
    uint32_t n_users, n_items, dim;
    float y_min, y_max;
    bool binary;
    bool weighted;           /* weighted implicit events: y is a user's summed weight of the item, not a rating */
    const float *item_vecs;  /* [n_items x dim] */
    const float *user_vecs;  /* [n_users x dim], from the training ratings */
    const float *rank_bias;  /* [n_items] added to the logit for ranking (retrieval/both), or NULL */
    /* training interactions (the history), CSR by user, each user's in time
     * order. Without a history (has_history false) seen_off is all zeros and
     * the other three are NULL: every user has an empty history. */
    bool has_history;
    char *history_path;        /* the file it was loaded from (NULL: trained, or inside the model file) */
    char *history_note;        /* why a history file was left out (cb_bundle_load_model), or NULL */
    const int32_t *seen_off;   /* [n_users + 1] */
    const int32_t *seen_item;  /* [n_seen] */
    const float *seen_y;       /* [n_seen] */
    const int32_t *seen_ts;    /* [n_seen] seconds (as uint32 bits) */
    /* rows of a sectioned history file are verified when first read: call
     * cb_bundle_history_rows (one user) or cb_bundle_history_check (all)
     * before reading seen_item / seen_y / seen_ts; seen_off is checked */
    bool history_lazy;
    int history_checked;       /* every row verified (atomic) */
    const int32_t *popular;    /* [CB_BUNDLE_TOP_LIST] by training count, -1 padded */
    const int32_t *genre_top;  /* [n_genres x CB_BUNDLE_TOP_LIST] by shrunk mean, -1 padded */
    uint32_t n_genres;
    cb_bundle_group *groups;
    uint32_t n_groups;
    cb_neighbours *neighbours; /* the ranking's neighbour component (neighbours.h), or NULL; owned */
    bool caller_train_settings; /* loaded from a file older than its stored negatives, below-weight,
                                   relevant-from and lr-decay: cb_bundle_resume takes the caller's */
    /* storage: the arrays above are either owned (after training: listed in
     * `owned`) or point into the mapped model file (after loading) */
    void **owned;
    size_t n_owned;
    cb_st *file, *history_file;
} cb_bundle;

/* What to train on. cb_bundle_train reads it and never writes it. */
typedef struct cb_bundle_train_input {
    const cb_dataset *ds;
    const uint32_t *train_idx; size_t n_train;
    const uint32_t *valid_idx; size_t n_valid;  /* may be 0: no validation */
    const cb_feature_config *features;          /* NULL: defaults */
    cb_model_config model;                      /* user_in / item_in / target scaling are
                                                   set by the pipeline (on its own copy) */
    bool scale_targets;                         /* map [y_min, y_max] to [-1, 1] (MSE, both) */
    /* The "already rated" lists, recency anchors and popularity lists from
     * every rating of the dataset (a model to serve: a user's held-out
     * ratings are still ratings they gave) instead of the training ratings
     * only (evaluation). Features and towers always see training ratings only. */
    bool seen_all_ratings;
    /* The caller builds the lists itself (cb_bundle_build_lists), after
     * freeing what it holds for training (the split's indices: 4 B per
     * rating), so they are not held beside the history at the peak. */
    bool lists_later;
    cb_epoch_fn on_epoch;
    void *ctx;
    const uint32_t *test_idx; size_t n_test;    /* optional: evaluated after training, into
                                                   res->test_loss / res->test_rmse */
    const cb_train_comm *comm;                  /* NULL, or training across processes */
} cb_bundle_train_input;

/* The one place the data decides the objective: an events file without
 * ratings or weights (ds->implicit, every label 1) trains retrieval whatever
 * was asked (a rating head would learn a constant); 0/1 labels under the
 * rating objective use the sigmoid cross-entropy. Callers apply it to their
 * copy of the configuration before cb_bundle_train. */
void cb_bundle_objective_for_data(cb_model_config *mc, const cb_dataset *ds);

/* Fit features on the training ratings, train the towers for in->model's
 * objective (rating, retrieval or both), compute the vectors, the ranking
 * bias and the retrieval lists. `res` may be NULL. A configuration that
 * cannot work is CB_EINVAL before any training: e.g. loss bce with labels
 * other than 0/1 under the rating objective. */
int cb_bundle_train(cb_bundle **out, const cb_bundle_train_input *in, cb_train_result *res, cb_error *err);
/* The history and the retrieval lists of a trained bundle, from the ratings
 * train_idx[0..n_train) of ds, or (train_idx NULL) every rating of ds. */
int cb_bundle_build_lists(cb_bundle *r, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train, cb_error *err);
/* Continue training a recommender (--resume): same dataset ids required.
 * Only the optimiser's fields of in->model are used (lr, batch, epochs,
 * seed, threads, dropout, ...); the objective's settings, the sampled
 * negatives, below-weight, relevant-from and lr-decay stay the model's own
 * (in->model's for a file older than their storing). */
int cb_bundle_resume(cb_bundle *r, const cb_bundle_train_input *in, cb_train_result *res, cb_error *err);
void cb_bundle_free(cb_bundle *r); /* NULL is a no-op */

/* Write the model file `path` and, when r has a history, the history file
 * (history_path; NULL: path + CB_BUNDLE_HISTORY_SUFFIX), each atomically;
 * without a history a stale history file at that path is removed, and with
 * the history elsewhere, an older model's history at the default path. */
int cb_bundle_save_files(const cb_bundle *r, const char *path, const char *history_path, cb_error *err);
/* CB_EINVAL when history_path names the model file itself (NULL: the default
 * path, never the model's). Checked by cb_bundle_save_files and before training. */
int cb_bundle_check_paths(const char *path, const char *history_path, cb_error *err);
int cb_bundle_save(const cb_bundle *r, const char *path, cb_error *err); /* history beside */
/* Load the model file `path` and its history: history_path, or (NULL)
 * path + CB_BUNDLE_HISTORY_SUFFIX when that file exists (none: no history;
 * an old model file holding its history uses that). A history file that is
 * missing (when named), corrupt, truncated, of another model or inconsistent
 * is CB_EFORMAT / CB_EIO naming it. */
int cb_bundle_load_files(cb_bundle **out, const char *path, const char *history_path, cb_error *err);
int cb_bundle_load(cb_bundle **out, const char *path, cb_error *err); /* history beside, if any */
/* cb_bundle_load for callers that do without the users' histories: a
 * history beside the model that is another model's (a save interrupted
 * between its renames, a copy gone wrong) is left out, as if absent, and
 * history_note says why. */
int cb_bundle_load_model(cb_bundle **out, const char *path, cb_error *err);
/* The default history path of a model path into buf; false if it does not fit. */
bool cb_bundle_history_path(const char *model_path, char *buf, size_t size);
/* The post-load validator (cb_bundle_load runs it last): every header field
 * and every float tensor (finite; ranges), one table row per field. CB_OK or
 * CB_EFORMAT "path: field: why". */
int cb_bundle_validate(const cb_bundle *r, const char *path, cb_error *err);
/* A vector computed from user input (a new user's, a new item's) is never
 * served when it is degenerate: a non-finite value, all zeros, or (a user)
 * the same ranking score for every item. CB_OK or CB_ENUMERIC saying which. */
int cb_bundle_check_vector(const cb_bundle *r, const float *vec, bool is_user, cb_error *err);

/* Before reading user's rows of the history (seen_item, seen_y, seen_ts
 * [seen_off[user], seen_off[user + 1])) or all of them: CB_OK once their
 * bytes match the history file's checksum and their items and ratings are
 * the model's, else CB_EFORMAT naming the file ("checksum mismatch ...").
 * Cheap and CB_OK for a history verified at load (trained, older files). */
int cb_bundle_history_rows(const cb_bundle *r, uint32_t user, cb_error *err);
int cb_bundle_history_check(const cb_bundle *r, cb_error *err);

/* Index of a user / item id, or -1. */
int64_t cb_bundle_user(const cb_bundle *r, const char *id);
int64_t cb_bundle_item(const cb_bundle *r, const char *id);
/* The id of user / item i (i < n_users / n_items), its title ("" if none). */
const char *cb_bundle_user_id(const cb_bundle *r, uint32_t user);
const char *cb_bundle_item_id(const cb_bundle *r, uint32_t item);
const char *cb_bundle_item_title(const cb_bundle *r, uint32_t item);
/* Prediction (rating scale, or probability for binary labels) from two
 * vectors; NAN when the model has no rating head (objective retrieval). */
float cb_bundle_predict_vec(const cb_bundle *r, const float *user_vec, uint32_t item);
/* The model can predict a rating (objective rating or both). */
bool cb_bundle_has_rating(const cb_bundle *r);
/* The model was trained for top-N (objective retrieval or both). */
bool cb_bundle_has_retrieval(const cb_bundle *r);
/* [n_items] added to v_u·v_m / temperature for ranking, or NULL (rating models). */
const float *cb_bundle_rank_bias(const cb_bundle *r);
/* The ranking score of item for a user vector: higher = more likely picked.
 * Retrieval / both: v_u·v_m / temperature + rank_bias[item] (a logit);
 * rating: the predicted rating (or probability). */
float cb_bundle_rank_score(const cb_bundle *r, const float *user_vec, uint32_t item);
/* The ranking score of one dot product over the ranking part, with the
 * item's bias (rank_bias[item]; an item added later brings its own): the one
 * home of the formula. Affine in dot for models trained for retrieval. */
float cb_bundle_rank_of_dot(const cb_bundle *r, float dot, float bias);
/* The part of the vectors the ranking score uses [off, off + len): the
 * ranking half (retrieval, both), the rating part (rating models). */
void cb_bundle_rank_part(const cb_bundle *r, uint32_t *off, uint32_t *len);
/* rank scores of every item for one user vector: scores [n_items] (BLAS). */
void cb_bundle_rank_scores(const cb_bundle *r, const float *user_vec, float *scores);

/* The vector of a user known by a feature row x and a history (the items they
 * rated, items[0..n_items)); models without a history bag ignore the history. */
int cb_bundle_user_vector(const cb_bundle *r, const float *x, const uint32_t *items, size_t n_items, float *out,
                          cb_error *err);

/* Feature rows of the dataset's users/items the recommender was trained on
 * (for evaluation): X_u from the training ratings; caller frees. */
int cb_bundle_tables(const cb_bundle *r, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                  float **X_u, float **X_m, cb_error *err);

#endif
