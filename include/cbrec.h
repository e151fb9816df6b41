/* cbrec — a content-based recommender (two-tower model) in C.
 *
 * This is the public header of libcbrec. It is deliberately short: plain
 * status codes, an error buffer the caller owns, and opaque handles with
 * _create/_load and _free pairs. Everything else is internal.
 *
 * Status: every fallible call returns CB_OK (0) or a negative CB_E* code and,
 * when `err` is not NULL, writes a one-line, human-readable reason into it
 * (naming file and line for input errors). The library never prints and never
 * exits.
 *
 * Threading: handles are not internally locked; each section below says
 * which calls may share a handle ([shared]) and which need it to themselves
 * ([exclusive]). Each thread passes its own cb_error.
 */
#ifndef CBREC_H
#define CBREC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported symbols of libcbrec.so; everything else is hidden. */
#if defined(__GNUC__)
#define CB_API __attribute__((visibility("default")))
#else
#define CB_API
#endif

#define CB_VERSION_MAJOR 0
#define CB_VERSION_MINOR 3
#define CB_VERSION_PATCH 0
#define CB_VERSION_STRING "0.3.0" /* the three above, joined (tests/test_train_api.c checks) */

/* Status codes. */
enum {
    CB_OK = 0,
    CB_EIO = -1,      /* a file could not be opened, read or written */
    CB_EPARSE = -2,   /* malformed input data (file and line in the message) */
    CB_ENOMEM = -3,   /* out of memory */
    CB_EINVAL = -4,   /* invalid argument or configuration */
    CB_ENOTFOUND = -5,/* unknown user, item, column or name */
    CB_EFORMAT = -6,  /* a model or table file that is corrupt, foreign or of another version */
    CB_ENUMERIC = -7  /* training diverged (NaN or Inf) */
};

/* An error message buffer owned by the caller. */
typedef struct cb_error {
    int code;
    char msg[512];
} cb_error;

/* The library's version string, e.g. "0.1.0". */
CB_API const char *cb_version(void);

/* A short English name for a status code ("I/O error", ...). */
CB_API const char *cb_strstatus(int code);

/* ---- text utilities: the library's own rules, for front ends and bindings
 * that quote input in messages or search titles as the library does. */
/* Every byte of s that does not start a valid UTF-8 sequence (a character
 * cut by a "%.80s", a Latin-1 byte) replaced by '?', in place, so a message
 * quoting its input stays valid UTF-8 (the library's own messages are). */
CB_API void cb_utf8_repair(char *s);
/* The code point of the UTF-8 sequence at s (len bytes of it readable) into
 * *code_point, and the sequence's length (1-4); 0 when s does not start a
 * valid one (a stray or truncated sequence, an overlong form, a surrogate, a
 * value beyond U+10FFFF): the one rule of the library's UTF-8 (the bytes
 * cb_utf8_repair replaces, the ones cb_utf8_fold keeps as they are). */
CB_API size_t cb_utf8_decode(const char *s, size_t len, uint32_t *code_point);
/* A time as seconds since 1970-01-01 UTC (the one reader of times in text:
 * the data files, fold files, the server's events and the Python binding's
 * timestamp texts): a number of seconds ("1700000000"; a fraction,
 * "1700000000.25", dropped toward the past), or an ISO 8601 date or date and
 * time, "2024-05-01", "2024-05-01T12:30", "2024-05-01 12:30:05.25Z",
 * "2024-05-01T12:30:05+02:00" (a fraction of a second dropped; 'T' or a
 * blank between; an offset as Z, +hh, +hh:mm or +hhmm; none: UTC; a leap
 * second, :60, is the next day's first second as in POSIX time). Blanks
 * around it are ignored. 1 when s is one, else 0 (and *seconds unchanged):
 * another layout, an impossible date (2023-02-29), an hour past 23. */
CB_API int cb_time_parse(const char *s, size_t len, int64_t *seconds);
/* Simple Unicode case folding of UTF-8 text in place (the rule title
 * lookups use: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic capitals
 * to small letters; "ÜBER" and "über" fold alike); never lengthens s;
 * returns its new length. */
CB_API size_t cb_utf8_fold(char *s);

/* Ownership and threading for the sections below: every _create/_open/_train
 * output is owned by the caller and freed with the matching _free/_close
 * (NULL is a no-op). A cb_config and a cb_dataset are not locked: any number
 * of threads may read one at once (cb_config_get, counts, describe, cb_train
 * reads both), but cb_config_set needs it to itself. */

/* ---- configuration: every setting of every command, parsed and defaulted ONCE.
 * A cb_config of one kind holds typed values behind string keys; the CLI turns
 * `--key VALUE` into cb_config_set(cfg, "key", "VALUE") (and `--flag` /
 * `--no-flag` into "true" / "false" for boolean keys), a server turns query
 * parameters and a binding keyword arguments into the same calls. Keys use '-'
 * as in the CLI ("valid-frac", "top-k-popular", "user-layers" = "256,128"). */
typedef struct cb_config cb_config;
typedef enum cb_config_kind {
    CB_CONFIG_TRAIN = 1,     /* data loading + split + features + model + training */
    CB_CONFIG_RECOMMEND = 2, /* n, sources, filters, include-seen, exclude/allow, diversity, rank-by */
    CB_CONFIG_SYNTH = 3,     /* synthetic data generator */
    CB_CONFIG_EVAL = 4       /* evaluation: models, folds, K, threshold, tuning carve, ... (cb_evaluate) */
} cb_config_kind;
/* A new config of `kind` holding every key's default. */
CB_API int cb_config_create(cb_config **out, cb_config_kind kind, cb_error *err);
CB_API void cb_config_free(cb_config *c); /* NULL is a no-op */
/* CB_ENOTFOUND for an unknown key (the message lists close keys), CB_EINVAL for
 * a bad value (the message names the key and what it accepts). The value is
 * parsed and range-checked here, once; the config is unchanged on error.
 * value NULL: the key back to its default and no longer given
 * (cb_config_given), as if never set. */
CB_API int cb_config_set(cb_config *c, const char *key, const char *value, cb_error *err);
/* The checks across keys and of lists that name things (an EVAL "models" entry
 * that is no model, TRAIN feature settings that contradict each other,
 * TRAIN epochs 0, which would give an untrained model, RECOMMEND keys that
 * contradict, such as a genre cap with MMR diversity):
 * CB_OK, or CB_EINVAL / CB_ENOTFOUND with the reason. The calls that take a
 * config make the same checks; this one lets a front end report them first. */
CB_API int cb_config_check(const cb_config *c, cb_error *err);
/* The current value as text ("0.002", "256,128", "true"), owned by c and valid
 * until the key is set again; NULL for an unknown key. */
CB_API const char *cb_config_get(const cb_config *c, const char *key);
/* Whether cb_config_set has set `key` since c was created, even to its
 * default value (`--split random` written out counts): 1, else 0 (also for
 * an unknown key).
 * The checks that refuse a setting a call would leave unused ask this, so a
 * default written out is refused as any other value. */
CB_API int cb_config_given(const cb_config *c, const char *key);
/* The keys of a kind, in help order: name, value hint ("F", "N", "LIST", ""
 * for a boolean), default as text, one-line help and section ("data",
 * "features", "model", "training", ...). Strings are static. i >= count
 * returns CB_ENOTFOUND. `cbrec CMD --help` is generated from this table. */
typedef struct cb_config_key_info {
    const char *name, *value_hint, *default_value, *help, *section;
    int is_bool;
} cb_config_key_info;
CB_API size_t cb_config_n_keys(cb_config_kind kind);
CB_API int cb_config_key(cb_config_kind kind, size_t i, cb_config_key_info *out);
/* The names among names[0..n_names) close to `name` (edit distance <= 2, or
 * sharing its first 4 characters, or containing it), closest first, at most 4,
 * written to out as "a, b", each after `prefix` ("--": "--a, --b"; NULL: none),
 * truncated to out_size; returns how many. The "did you mean" of
 * cb_config_set; a front end passes the names it takes. */
CB_API size_t cb_config_near_names(const char *name, const char *const *names, size_t n_names, const char *prefix,
                                   char *out, size_t out_size);

/* ---- datasets */
typedef struct cb_dataset cb_dataset;
/* Load a dataset folder (layout detected: MovieLens latest-small / 100K / 1M,
 * the course lab's rows, or a folder with cbrec.schema). `cfg` (kind TRAIN, may
 * be NULL = defaults) supplies "schema", "skip-bad-rows" and "range". */
CB_API int cb_dataset_open(cb_dataset **out, const char *path, const cb_config *cfg, cb_error *err);
CB_API void cb_dataset_close(cb_dataset *ds); /* NULL is a no-op */
/* CB_EINVAL, naming both, when writing `out` would replace a file the dataset
 * at `path` is read from (cfg's schema, or the folder's, and the files it
 * names; any file a folder layout reads), however spelt or linked; loads
 * nothing, so front ends check their outputs before the work. */
CB_API int cb_dataset_check_not_input(const char *path, const cb_config *cfg, const char *out, cb_error *err);
CB_API size_t cb_dataset_user_count(const cb_dataset *ds);
CB_API size_t cb_dataset_item_count(const cb_dataset *ds);
CB_API size_t cb_dataset_rating_count(const cb_dataset *ds);
/* The detected layout ("movielens-100k", "generic", "course-lab", ...), owned by ds. */
CB_API const char *cb_dataset_layout(const cb_dataset *ds);
/* Rows skipped as malformed (only with "skip-bad-rows"). */
CB_API size_t cb_dataset_skipped_count(const cb_dataset *ds);
/* A user's repeated ratings of an item folded into one under "duplicates":
 * first (the later rows dropped) or last (replacing the earlier). */
CB_API size_t cb_dataset_folded_count(const cb_dataset *ds);
/* Users of the ratings the users file does not list, kept under
 * "unlisted-users" keep (every attribute missing). */
CB_API size_t cb_dataset_unlisted_count(const cb_dataset *ds);
/* What was loaded and the features `cfg` would build (fitted on every rating;
 * cfg NULL: no features), as a JSON object (malloc'd, caller frees): "layout",
 * "path", counts ("users", "items", "ratings", "titles", "skipped_rows",
 * "merged_rows" (implicit events), "folded_rows" (ratings under "duplicates"),
 * "unlisted_users" (under "unlisted-users" keep)),
 * "rating_min"/"rating_max", "binary", "timestamps", "prejoined",
 * "user_lead_cols"/"item_lead_cols", "user_columns"/"item_columns" (name, kind,
 * levels, missing, examples), "bytes", "bytes_per_rating", "bytes_per_rating_record",
 * "load_seconds", and with cfg "user_features"/"item_features" (names) and
 * "features_seconds". `cbrec inspect` prints this. */
CB_API int cb_dataset_describe(const cb_dataset *ds, const cb_config *cfg, char **json_out, cb_error *err);
/* Generate a synthetic dataset with planted structure (cfg kind SYNTH, NULL =
 * defaults) and write it to `dir` as ratings.csv, movies.csv, users.csv and a
 * cbrec.schema; each file replaced atomically. */
CB_API int cb_synth_write_folder(const char *dir, const cb_config *cfg, cb_error *err);

/* ---- datasets from memory (bindings, programs that hold their data in arrays).
 * A builder collects ratings and item / user attribute columns given as
 * arrays, then becomes a cb_dataset exactly like a loaded one (same checks:
 * duplicate (user, item) ratings, the rating range, column roles such as
 * "genres" and "year"). Ids are strings; a user or item gets its number in
 * the order it is first met (a catalog or a column first: items nobody rated
 * still exist).
 * Rows are named in messages by their position in the call ("ratings row 3").
 * A builder is used by one thread at a time. */
typedef struct cb_dataset_builder cb_dataset_builder;
/* A new, empty builder. `name` (may be NULL: "arrays") is the layout name
 * cb_dataset_layout reports; cfg (kind TRAIN, may be NULL) supplies "range"
 * and "skip-bad-rows" (bad rows are counted and skipped instead of failing). */
CB_API int cb_dataset_builder_create(cb_dataset_builder **out, const char *name, const cb_config *cfg,
                                     cb_error *err);
CB_API void cb_dataset_builder_free(cb_dataset_builder *b); /* NULL is a no-op */
/* Append n ratings: users[i] rated items[i] with values[i] (finite), at
 * timestamps[i] (seconds, 0..4294967295; INT64_MIN, numpy's NaT: missing, a
 * bad row; NULL: none). values NULL: implicit
 * events (y = 1 each; repeated (user, item) events are merged). Every call of
 * one builder must agree on values and timestamps being given or not. */
CB_API int cb_dataset_builder_add_ratings(cb_dataset_builder *b, const char *const *users,
                                          const char *const *items, const float *values,
                                          const int64_t *timestamps, size_t n, cb_error *err);
/* A catalog: the ids of the items (users = 0) or users (users = 1), each of
 * which is in the dataset even when nothing rated it and no column describes
 * it (placed by its content alone, as any cold item is). Each id at most once
 * per call, else CB_EPARSE naming the positions ("item ids[3]: id 'x' given
 * twice (first at [1])"; a bad row under "skip-bad-rows", like an empty id). */
CB_API int cb_dataset_builder_add_ids(cb_dataset_builder *b, int users, const char *const *ids, size_t n,
                                      cb_error *err);
/* One attribute column of the items (users = 0) or users (users = 1): row i
 * describes ids[i]. kind: "title" (items only; text[i] NULL: none; a
 * catalog of ids alone is cb_dataset_builder_add_ids'; a "year" column is derived
 * from "(1995)" in titles when no "year" column is given), "numeric"
 * (num[i], NAN = missing; an infinity or a number beyond float's range is a
 * bad row, missing when skipped), "categorical" (text[i]; NULL or "" = missing) or
 * "multi" (text[i] split on `sep`, e.g. "|"; several levels per row).
 * Each id at most once per column, else CB_EPARSE naming the rows (a bad
 * row: skipped under "skip-bad-rows", like an empty id). */
CB_API int cb_dataset_builder_add_column(cb_dataset_builder *b, int users, const char *name, const char *kind,
                                         const char *const *ids, const char *const *text, const double *num,
                                         size_t n, const char *sep, cb_error *err);
/* The dataset (CB_EPARSE when there are no ratings, or a duplicate (user,
 * item) rating). The builder is emptied either way; free it afterwards. */
CB_API int cb_dataset_builder_finish(cb_dataset_builder *b, cb_dataset **out, cb_error *err);

/* ---- training */
typedef struct cb_recommender cb_recommender;
typedef struct cb_progress {      /* passed to the progress callback; read-only */
    size_t size;                  /* sizeof(cb_progress) of the library: fields may be added at the end */
    unsigned epoch, epochs;       /* 1-based epoch, planned total */
    size_t batch, n_batches;      /* batches done in this epoch */
    int end_of_epoch;             /* 0: a progress tick inside the epoch (~50 per epoch) */
    double train_loss, valid_loss, valid_rmse;  /* NAN when not measured */
    double examples_per_sec;      /* this epoch */
    double seconds;               /* since the epoch started */
    int best;                     /* this epoch has the best validation loss so far */
    int stage;                    /* CB_STAGE_TRAIN: the model's epochs (all of the above). Before them,
                                     when the neighbour component is tuned ("auto" settings), ticks only
                                     (end_of_epoch 0): CB_STAGE_TUNE_TOWERS, towers trained on a carve of
                                     the training ratings (epoch, epochs, batch, n_batches, train_loss,
                                     seconds: theirs), then at most one CB_STAGE_TUNE_GRID as its grid
                                     starts (epoch = epochs = the carve's epochs run, train_loss theirs;
                                     batch, n_batches, seconds 0). Since 0.2 (size >= 96). */
    double elapsed;               /* wall seconds since the call (cb_train, cb_evaluate, ...) began */
} cb_progress;
enum { CB_STAGE_TRAIN = 0, CB_STAGE_TUNE_TOWERS = 1, CB_STAGE_TUNE_GRID = 2 };
/* Called on the training thread. Returning non-zero stops training and keeps
 * the model so far: at the end of an epoch, or at a tick inside one (training
 * stops within the next batch; the partial epoch counts as run); during the
 * neighbour component's tuning, with no component, the model stopping at its
 * first tick (the end of epoch 1 on a set too small for ticks inside an
 * epoch). A binding uses the ticks to stop on Ctrl-C. Under a cb_train_comm
 * every rank must return the same value at the same report (a rank that
 * stops alone leaves the others waiting in a collective call). */
typedef int (*cb_progress_fn)(const cb_progress *p, void *ctx);

typedef struct cb_train_report {  /* out; set .size = sizeof(cb_train_report) before the call */
    size_t size;
    unsigned epochs_run, best_epoch;
    double train_loss, valid_loss, valid_rmse; /* last epoch; NAN when absent */
    double test_rmse, test_loss;  /* on the held-out split (rating scale; the training objective's
                                     loss: see objective); NAN when there is none */
    int test_loss_is_logloss;     /* 1: test_loss is the BCE log-loss; 0: objective "rating": the
                                     scaled-target MSE, else the objective's own loss */
    size_t n_train, n_valid, n_test;
    size_t n_user_features, n_item_features, n_params; /* input widths, trainable floats */
    double seconds;               /* training wall time */
    int diverged;                 /* 1: stopped on a non-finite loss (CB_ENUMERIC returned,
                                     *out still holds the last good parameters) */
    /* the ranking's neighbour component (cb_recommender_describe's "neighbours") */
    const char *neighbours;       /* "cosine", "ease" (static), or NULL: none (turned off, a rating
                                     model, the towers alone ranked best when tuned, or the training
                                     stopped by the progress function before its end: no lists) */
    unsigned neighbours_k;
    double neighbours_param;      /* the cosine's shrinkage or EASE's lambda */
    double neighbours_weight;
    /* the tuning that chose them ("auto" settings): NDCG@10 on the carve's held-out ratings
     * with the choice and with the towers alone (NAN when a weight was given: not in the
     * grid), users measured, wall seconds; NAN, 0 when nothing was tuned */
    double tune_ndcg, tune_ndcg_towers;
    size_t tune_users;
    double tune_seconds;
    const char *objective;        /* what the towers learned: "rating", "retrieval" or "both" (static) */
    /* where the training's steps went (since 0.3): the workers used, and the first worker's
     * CPU seconds in its towers (forward, backward), its share of the loss, the gradient sum
     * + optimiser, and waiting at barriers and in the process communicator; sampled on one
     * step in 8 and scaled to every step (0 with fewer than 8 steps an epoch) */
    int threads;
    double step_towers, step_loss, step_update, step_waits;
} cb_train_report;

/* Split `ds` as cfg says ("split", "test-frac", "valid-frac", "seed"), fit the
 * features on the training part, train the towers, compute the vectors and
 * retrieval lists. cfg: kind TRAIN or NULL (defaults); never modified.
 * `progress`, `report` may be NULL. On success *out is a new recommender. On
 * CB_ENUMERIC (training diverged) *out may still hold a model with the last
 * good parameters (free it, or save it); on any other error *out is NULL. */
CB_API int cb_train(cb_recommender **out, const cb_dataset *ds, const cb_config *cfg, cb_progress_fn progress,
                    void *progress_ctx, cb_train_report *report, cb_error *err);
/* Training across processes (data-parallel; `cbrec train` under mpirun fills
 * it with MPI calls: the library itself has no MPI). Every rank calls cb_train
 * with the same dataset and configuration; each step's batch (the "batch"
 * key: the global batch) is split into n_ranks consecutive parts, each rank
 * runs the towers on its part, and the two calls below join the ranks: the
 * tower outputs of the whole batch (the in-batch softmax needs them) and the
 * gradients (one call per step on one flat buffer). The trained parameters
 * are the same on every rank. Both calls return 0, or non-zero to stop
 * training with CB_EIO. The library also shares the neighbour component's
 * tuning and lists across the ranks (and cb_evaluate its splits): those
 * results travel through allgather as bit patterns (integers, doubles), so
 * it must copy the floats bit for bit (MPI_FLOAT between machines of one
 * architecture does). A rank whose cb_train fails (out of memory, a bad
 * setting) returns without joining the next call, so the other ranks would
 * wait in it: the caller must then stop them (`cbrec` calls MPI_Abort). */
typedef struct cb_train_comm {
    int rank, n_ranks;
    void *ctx;                    /* passed to the calls */
    /* buf holds n_ranks blocks of floats, block r at buf + offset[r] with
     * count[r] floats; this rank's block is filled: fill the others. */
    int (*allgather)(void *ctx, float *buf, const int *count, const int *offset);
    /* buf[0..n) = its sum over the ranks, the same bits on every rank. */
    int (*allreduce_sum)(void *ctx, float *buf, size_t n);
} cb_train_comm;
/* Train with `comm` (NULL: one process, the default). The pointer is kept:
 * comm must outlive the cb_train / cb_train_resume calls made with cfg. */
CB_API int cb_config_set_train_comm(cb_config *cfg, const cb_train_comm *comm, cb_error *err);
/* Continue training `rec` on the same data (same user and item ids; the
 * architecture of rec is kept, the training keys of cfg apply) [exclusive]. */
CB_API int cb_train_resume(cb_recommender *rec, const cb_dataset *ds, const cb_config *cfg,
                           cb_progress_fn progress, void *progress_ctx, cb_train_report *report, cb_error *err);
/* Write a learning curve (train and validation loss per epoch 1..n; valid may
 * be NULL or hold NANs) as an SVG chart, atomically. */
CB_API int cb_plot_curve_svg(const char *path, const double *train_loss, const double *valid_loss, size_t n_epochs,
                             const char *title, cb_error *err);




/* ---- evaluation */
/* Measure every model the EVAL config names ("models"; default: all — the
 * baselines global-mean, bias, popularity, svd, ease, item-knn, content-knn, the two-tower
 * rows, and "cbrec": the list `cbrec train` + `cbrec recommend` give with the
 * TRAIN settings of train_cfg) on the same splits of ds: the EVAL "folds"
 * (DATA/<fold>.base and .test beside the dataset), else train_cfg's "split",
 * "test-frac" and "seed". Settings that baselines tune are chosen on a carve
 * of the training part, never on the test part. eval_cfg (kind EVAL) and
 * train_cfg (kind TRAIN) may be NULL (defaults); neither is modified.
 * `progress` (may be NULL) sees the two-tower rows' epochs ("cbrec"'s
 * too, its tuning stages included). On success
 * *json_report (malloc'd, caller frees) is the report `cbrec eval --json`
 * prints: {"dataset", "path", "users", "items", "ratings", "protocol",
 * "splits", "k", "threshold", "recall_k", "seed", "seconds", "models": [{"name",
 * "mean_rmse" (null where the model predicts no rating), "std_rmse",
 * "mean_mae", "mean_ndcg<K>", "mean_recall<K>", "mean_recall<recall_k>",
 * "mean_hit_rate<K>", "mean_coverage", "mean_pop<K>", "mean_long_tail<K>",
 * "precision", "recall", "ndcg", "map", "hit_rate", "coverage", "diversity",
 * "pop_ratio", "fit_seconds", "eval_seconds", "rmse": [per split], "mae",
 * "folds": [{...per split...}], "settings"}], "two_tower": {settings}}.
 * With a train comm on train_cfg (cb_config_set_train_comm; `mpirun cbrec
 * eval`) the splits are shared among the ranks (split f on rank f mod K, each
 * training alone) and every rank returns the whole report: one process's,
 * timings aside. Every rank must call it with the same arguments. */
CB_API int cb_evaluate(const cb_dataset *ds, const cb_config *eval_cfg, const cb_config *train_cfg,
                       cb_progress_fn progress, void *progress_ctx, char **json_report, cb_error *err);

/* The retrieval-size experiment (`cbrec experiment retrieval`): for each EVAL
 * "sizes" budget (0 / "full" = the whole catalog) the cheap retrieval sources
 * bring about that many candidates, the model ranks them, and the final top-K
 * over the test users of the first split (EVAL "users": at most that many; 0 =
 * all) is compared with the full-catalog ranking. `model`: a recommender
 * trained on that split's training part (NULL: the two-tower rows' model is
 * trained here; `progress` sees its epochs, with the held-out loss as
 * valid_loss when EVAL "twotower-valid-frac" is 0 — watched, never used).
 * *json_report (malloc'd): {"dataset", "protocol", "split", "k", "rows":
 * [{"size" (number or "full"), "mean_candidates", "recall", "ndcg",
 * "mean_score", "overlap", "latency_us", "n_users"}]}. */
CB_API int cb_evaluate_retrieval(const cb_dataset *ds, const cb_config *eval_cfg, const cb_config *train_cfg,
                                 const cb_recommender *model, cb_progress_fn progress, void *progress_ctx,
                                 char **json_report, cb_error *err);
/* The chart of a cb_evaluate_retrieval report as SVG, written atomically. */
CB_API int cb_plot_retrieval_svg(const char *path, const char *retrieval_json, cb_error *err);

/* ---- the recommender: a trained model, optionally with a similar-items table.
 *
 * Threading: a cb_recommender is not locked. After loading (or training) it is
 * read-only for every call marked [shared]: any number of threads may call those
 * on one handle at once, each with its own cb_error and outputs. Calls marked
 * [exclusive] (build/load table, add item, free) need the handle to themselves.
 * Ownership: every _load output is owned by the caller and freed with the
 * matching _free (NULL is a no-op). Strings returned by getters belong to the
 * handle they came from and live as long as it does (until an [exclusive] call). */
typedef struct cb_recommender cb_recommender;

/* Load `model_path` (made by `cbrec train`); `table_path` may be NULL (exact
 * search then). A table built from another model is refused (CB_EFORMAT). On
 * failure *out is NULL. */
CB_API int  cb_recommender_load(cb_recommender **out, const char *model_path, const char *table_path, cb_error *err);
/* Write the model file (atomically: a failure leaves an existing file intact)
 * and, when the model holds its users' histories, the history file beside it
 * (path + ".history", also atomic) [shared]. Two threads of one process must
 * not write the same path at once: the temporary file is named by the
 * process ("<path>.tmp.<pid>"), and they would share it (the Python binding
 * writes one file at a time). */
CB_API int  cb_recommender_save(const cb_recommender *rec, const char *path, cb_error *err);
/* The same with the history file named (history_path NULL: beside the model).
 * Loading: history_path NULL takes path + ".history" when it exists; a model
 * without its history still recommends, but known users' rated items are not
 * filtered out and no reason names them (cb_recommender_describe's
 * "history" says which). A history file of another model, corrupt or
 * truncated is refused (CB_EFORMAT naming it). */
CB_API int  cb_recommender_save_files(const cb_recommender *rec, const char *path, const char *history_path,
                                      cb_error *err);
/* CB_EINVAL when history_path names the model file `path` itself (the model
 * would overwrite the history): cb_recommender_save_files refuses it; front
 * ends check it before long work. NULL history_path is always fine. */
CB_API int  cb_recommender_check_files(const char *path, const char *history_path, cb_error *err);
CB_API int  cb_recommender_load_files(cb_recommender **out, const char *model_path, const char *history_path,
                                      const char *table_path, cb_error *err);
/* cb_recommender_load for callers that do without the known users'
 * histories (similar items, tables, indexes, vectors, predictions): a
 * history file beside the model that is another model's (a save interrupted
 * between its two renames, a copy gone wrong) is left out, as if absent, and
 * cb_recommender_history_note says why ("" when nothing was left out). The
 * other loads refuse it, saying how to recover. */
CB_API int  cb_recommender_load_model(cb_recommender **out, const char *model_path, const char *table_path,
                                      cb_error *err);
CB_API const char *cb_recommender_history_note(const cb_recommender *rec);
CB_API void cb_recommender_free(cb_recommender *rec);
/* A JSON document describing the model: dataset, fingerprint, counts, vector
 * width, rating scale, whether it was trained on 0/1 labels ("binary") or
 * weighted events ("weighted"), what its rating half predicts ("prediction":
 * "predicted rating", "predicted probability" or "predicted weight", as the
 * reasons say it), the table, and "history":
 * the history file's path, "model file" (an old model holding it), "memory"
 * (trained, not yet saved) or "absent" (malloc'd, caller frees). */
CB_API int cb_recommender_describe(const cb_recommender *rec, char **json_out, cb_error *err);
/* How the ratings file of the data the model was trained on lays out a row,
 * as JSON: {"fields": [{"name": "user_id", "role": "user"}, ...] in file
 * order (role user, item, rating, timestamp, weight or other; a name is the
 * header's or the schema's, or "userId", "movieId", ... for a file that
 * names none), "delimiter": ",", "header": true, "quoting": true (a field
 * may be in double quotes)}, so that rows written so
 * (`cbrec events export --model`) read back as the file's own. Owned by
 * rec; NULL when the model records none (saved by an earlier build, or
 * trained on pre-joined data). */
CB_API const char *cb_recommender_ratings_layout(const cb_recommender *rec);

/* Items and users are numbered 0..count-1; ids are the data's string ids [shared]. */
CB_API size_t cb_recommender_dim(const cb_recommender *rec);
CB_API size_t cb_recommender_item_count(const cb_recommender *rec);  /* model items + added items */
CB_API size_t cb_recommender_user_count(const cb_recommender *rec);
CB_API const char *cb_recommender_item_id(const cb_recommender *rec, size_t item);     /* NULL out of range */
CB_API const char *cb_recommender_item_title(const cb_recommender *rec, size_t item);  /* "" when none */
CB_API const char *cb_recommender_user_id(const cb_recommender *rec, size_t user);     /* NULL out of range */
/* The number of a known user by id (CB_ENOTFOUND when unknown). */
CB_API int cb_recommender_find_user(const cb_recommender *rec, const char *user_id, size_t *user, cb_error *err);
/* An item by id, else by title (case-insensitive): an exact title, the title
 * without its "(year)", "The X" for "X, The", or a unique substring. CB_ENOTFOUND
 * when nothing or several match; then up to max_cands candidates in cands (most
 * rated first), *n_cands of them (0 = nothing matched). cands may be NULL when
 * max_cands is 0. */
CB_API int cb_recommender_find_item(const cb_recommender *rec, const char *query, size_t *item, size_t *cands,
                                    size_t max_cands, size_t *n_cands, cb_error *err);

/* Vectors [shared]: pointers into the model (dim floats per row; model items
 * only, not added ones), valid while rec lives. */
CB_API const float *cb_recommender_item_vectors(const cb_recommender *rec);
CB_API const float *cb_recommender_user_vectors(const cb_recommender *rec);
/* The user vector v_u (dim floats, caller-allocated) of a known user
 * (CB_ENOTFOUND if unknown), or of a new user described by JSON such as
 * {"genre_ratings": {"Adventure": 5}, "ratings": {"260": 5}, "age": 25}
 * (CB_EPARSE with line and column if malformed). */
CB_API int cb_recommender_user_vector(const cb_recommender *rec, const char *user_id, float *out, cb_error *err);
CB_API int cb_recommender_new_user_vector(const cb_recommender *rec, const char *user_json, float *out,
                                          cb_error *err);
/* Write item and user vectors and ids to the folder dir (created) as "npy"
 * (item_vectors.npy, user_vectors.npy, item_ids.txt, user_ids.txt: line i
 * the id of row i, written by cb_id_line_escape) or "st"
 * (embeddings.safetensors) [shared]. */
CB_API int cb_recommender_export_vectors(const cb_recommender *rec, const char *dir, const char *format, cb_error *err);
/* An id as one line of an ids file (the export's item_ids.txt and
 * user_ids.txt; `cbrec recommend --users FILE` reads them back): a backslash,
 * CR and LF in it written as \\, \r and \n, so that every id is one line.
 * cb_id_line_escape writes the line (without its line end) to out, which
 * needs 2 * strlen(id) + 1 bytes, and returns its length.
 * cb_id_line_unescape turns such a line (without its line end) back into the
 * id in out (strlen(line) + 1 bytes; out may be line itself): CB_EPARSE
 * naming the byte when a backslash starts anything else. */
CB_API size_t cb_id_line_escape(char *out, const char *id);
CB_API int cb_id_line_unescape(char *out, const char *line, cb_error *err);
/* The model's prediction for a known user and an item of the model or added
 * to it (a table's added items, cb_recommender_add_item): the rating (or the
 * probability for 0/1 labels) [shared]. */
CB_API int cb_recommender_predict(const cb_recommender *rec, const char *user_id, const char *item_id, float *rating,
                                  cb_error *err);

/* Similar-items table: build for the whole catalog (k nearest per item; k is
 * clamped to the catalog), save, load, add an item. Items added with
 * cb_recommender_add_item belong to the recommender, with or without a table:
 * building or loading a table keeps them (they are inserted into its lists);
 * loading a file written without a table (below) adds its items. threads:
 * 0 = every core; negative is CB_EINVAL (as cb_recommender_build_index). */
CB_API int cb_recommender_build_table(cb_recommender *rec, size_t k, int threads, cb_error *err);   /* [exclusive] */
/* Write the table with the added items ("cbrec-similar"; "cbrec-knn-table" when
 * nothing was added), or, when there is no table, a file holding only the added
 * items ("cbrec-added-items": ids, titles, genres, vectors; no neighbour lists).
 * CB_EINVAL when there is neither. Atomic [shared]. */
CB_API int cb_recommender_save_table(const cb_recommender *rec, const char *path, cb_error *err);
/* Load any of those files (it must come from this model: CB_EFORMAT) [exclusive]. */
CB_API int cb_recommender_load_table(cb_recommender *rec, const char *path, cb_error *err);
/* Neighbours per item in the table, 0 when there is none (also with added items only). */
CB_API size_t cb_recommender_table_k(const cb_recommender *rec);
/* Sharding the exact table's build (e.g. across processes: `mpirun cbrec
 * precompute`): rows first..first+count-1 of the table cb_recommender_build_table
 * builds without an index, the same bits (a row depends on its item alone),
 * into caller-allocated neighbours and distances [count x k] (squared
 * distances, ascending). 1 <= k <= model items - 1; CB_EINVAL with an index
 * attached (its table is built whole) [shared]. */
CB_API int cb_recommender_table_rows(const cb_recommender *rec, size_t k, int threads, size_t first, size_t count,
                                     int32_t *neighbours, float *distances, cb_error *err);
/* Install a table from all its rows ([model items x k] each, copied; checked
 * as a loaded table is: neighbours in range, not the item itself, distances
 * finite and ascending), as cb_recommender_build_table would [exclusive]. */
CB_API int cb_recommender_set_table(cb_recommender *rec, size_t k, const int32_t *neighbours, const float *distances,
                                    cb_error *err);
/* Embed a new item from JSON ({"id": ..., "title": ..., "genres": [...], <item
 * column>: value}; only "id" is required) with the item tower and add it to the
 * catalog, in memory (a server can add items live; no table is needed; with a
 * table it also enters the neighbour lists) [exclusive]. From then on it is an
 * item like the model's (numbers item_count-1..): recommend and the batch score
 * it from its vector (reason "new in the catalog: close to your taste vector",
 * JSON "new": true), exclude/allow/block take its id, a blocked genre blocks it
 * when its JSON listed that genre, similar finds it. The id must be new
 * (CB_EINVAL). A content column's value is text (a number given for one is
 * its text: "year": 1992 of a categorical year is "1992"); a value or column
 * name holding byte 0x1E or 0x1F (the separators of the kept content) is
 * refused (CB_EINVAL naming the column). *item (may be NULL) receives its
 * number. Persist with cb_recommender_save_table. */
CB_API int cb_recommender_add_item(cb_recommender *rec, const char *item_json, size_t *item, cb_error *err);

/* ---- approximate search for large catalogs: an HNSW graph index over the
 * item vectors (`cbrec index`). Without one every search is exact. With one
 * attached, the catalog searches (similar, recommend's embedding source, the
 * similar-items table) follow the search mode: CB_SEARCH_AUTO (default) uses
 * the index from CB_ANN_AUTO_MIN_ITEMS items on and exact search below;
 * CB_SEARCH_EXACT never uses it; CB_SEARCH_APPROX always does. Filters
 * (already rated, blocked, excluded) are applied inside the graph walk, so a
 * filtered search keeps its recall. Approximate results carry the exact
 * scores; items added after training are merged in exactly. The index file is
 * checksummed, memory-mapped at load, and refused for another model. */
typedef enum cb_search_mode { CB_SEARCH_AUTO = 0, CB_SEARCH_EXACT = 1, CB_SEARCH_APPROX = 2 } cb_search_mode;
#define CB_ANN_AUTO_MIN_ITEMS 100000
/* Build over the model's items: m links per node (0 = 16), ef_construction
 * the build beam (0 = 200), threads inserting at once (0 = every core).
 * threads = 1 is deterministic (the same graph bit for bit); more threads
 * give an equally good graph whose links depend on timing [exclusive]. */
CB_API int cb_recommender_build_index(cb_recommender *rec, size_t m, size_t ef_construction, int threads,
                                      cb_error *err);
CB_API int cb_recommender_save_index(const cb_recommender *rec, const char *path, cb_error *err);
CB_API int cb_recommender_load_index(cb_recommender *rec, const char *path, cb_error *err); /* [exclusive] */
/* The mode, and the search beam ef (0 = the default: 64, 128 for dot
 * products; larger = higher recall, slower). CB_SEARCH_APPROX without an
 * index is CB_EINVAL [exclusive]. */
CB_API int cb_recommender_set_search(cb_recommender *rec, cb_search_mode mode, size_t ef, cb_error *err);
/* 1 when catalog searches currently use the index, else 0. */
CB_API int cb_recommender_search_is_approximate(const cb_recommender *rec);
/* Items of the attached index's graph that no walk reaches, so approximate
 * searches never return them (exact search does); 0 without an index.
 * *indexed (may be NULL): the items the index holds. The build links
 * unreached items (since 0.2), keeps rows equal to an earlier row out of
 * the graph, found through their group's first row, and saves the count
 * (since 0.3); *counted (may be NULL) is 0 for an index
 * file without it, counted at load: one from before 0.2 often leaves ~5 % of
 * a large catalog unreached, which `cbrec index` rebuilds. Since 0.3. */
CB_API size_t cb_recommender_index_unreached(const cb_recommender *rec, size_t *indexed, int *counted);

/* ---- content columns (issue 12): every categorical / multi-valued item
 * column (genres, tags, brand...) is first-class: per-value user preferences,
 * a retrieval source with reasons naming the column and value, and the
 * new-user form {"preferences": {"tags": {"jazz": 5}, "brand": {"Acme": 4}}}.
 * Values the model does not know, in a new item's or a new user's JSON, are
 * remarks (the list's notes for a user; this call for an item) or errors when
 * the JSON says "strict": true. Remarks of the last cb_recommender_add_item,
 * "" when none; owned by rec, valid until the next add. */
CB_API const char *cb_recommender_add_item_note(const cb_recommender *rec);

/* ---- results */
typedef struct cb_list cb_list;  /* a ranked list of items with scores and reasons */
/* Getters take the rank i (0 = best) and return NULL / NAN / 0 out of range. A
 * list owns its strings and outlives its recommender. */
CB_API void cb_list_free(cb_list *l);
CB_API size_t cb_list_size(const cb_list *l);
CB_API size_t cb_list_item(const cb_list *l, size_t i);          /* item number; SIZE_MAX out of range */
CB_API const char *cb_list_item_id(const cb_list *l, size_t i);
CB_API const char *cb_list_title(const cb_list *l, size_t i);     /* "" when none */
/* score: higher is better; the criterion that ranked the list (cb_list_criterion):
 * recommend: the ranking score ("predicted rating", "predicted probability" for
 * 0/1 labels, or "dot product" v_u . v_m with rank-by dot);
 * similar: the cosine similarity of the item vectors ("cosine similarity", in
 * [-1, 1]; the list is ordered by Euclidean distance, the same order for the
 * default l2-normalised vectors). */
CB_API float cb_list_score(const cb_list *l, size_t i);
CB_API float cb_list_rating(const cb_list *l, size_t i);         /* predicted rating; NAN if none (similar) */
CB_API const char *cb_list_criterion(const cb_list *l);
CB_API size_t cb_list_n_reasons(const cb_list *l, size_t i);
CB_API const char *cb_list_reason(const cb_list *l, size_t i, size_t j);
CB_API size_t cb_list_n_sources(const cb_list *l, size_t i);
CB_API const char *cb_list_source(const cb_list *l, size_t i, size_t j); /* "similar", "genre", "group", "popular", "embedding" */
CB_API size_t cb_list_n_notes(const cb_list *l);
CB_API const char *cb_list_note(const cb_list *l, size_t j);     /* remarks: k or n clamped, cold start, ... */
/* The whole list as JSON (malloc'd; caller frees): {"criterion":..., "items":[{"rank",
 * "item","title","score","rating","sources":[...],"reasons":[...]}], "notes":[...]}
 * ("rating" is null when there is none; items added after training also carry
 * "new": true). The CLI's --json prints exactly this. */
CB_API int cb_list_to_json(const cb_list *l, char **json_out, cb_error *err);

/* ---- recommending [shared] */
/* The k nearest items to `item` (itself excluded); k larger than the catalog is
 * clamped (a note says so). On success *out is a new list. */
CB_API int cb_recommender_similar(const cb_recommender *rec, size_t item, size_t k, cb_list **out, cb_error *err);
/* Top items for a known user (user_id) or a new user (user_json); one of them non-NULL
 * (both: a known user plus live events, see "serving" below).
 * opts: kind RECOMMEND or NULL for defaults ("n", the sources "recent",
 * "similar-per-item", "top-genres", "per-genre", "group-items", "group-by",
 * "embedding", "include-seen", "exclude", "allow", "block-file", "diversity",
 * "genre-cap", "rank-by"). Items the user rated are not returned unless
 * include-seen. A known user without training ratings takes the cold-start path
 * (a note says so). On success *out is a new list. */
CB_API int cb_recommender_recommend(const cb_recommender *rec, const char *user_id, const char *user_json,
                                    const cb_config *opts, cb_list **out, cb_error *err);
/* Items never to show, whatever the call: the block file's items and values
 * (the "block-file" option's format: "item ID", "genre NAME", "tags
 * violent", a plain id) left out of every later recommendation (single and
 * batch) and similar-items list, until set again; path NULL or "" clears it.
 * An item added later that has a blocked value is blocked too, and a table
 * loaded or built later has the file read again (if that fails, the table
 * call returns the error with the table in place, and every later call is
 * refused until this is called again: never a blocked item shown). On error
 * the previous list stays. Not thread-safe with calls on rec (set it before
 * serving, as add_item). */
CB_API int cb_recommender_set_block_file(cb_recommender *rec, const char *path, cb_error *err);
/* 1 when item is blocked by the recommender's block list, else 0 (0 without one). For
 * lists a caller builds itself (a server's title search, its map). */
CB_API int cb_recommender_item_blocked(const cb_recommender *rec, size_t item);
/* An item id as one field of an "exclude" / "allow" list (one CSV record):
 * written to out as it is, or in quotes with its quotes doubled when it holds
 * a comma, a quote, a line break or outer blanks ("sku,5" joined plainly was
 * two ids). out needs 2 * strlen(id) + 3 bytes; returns the bytes written
 * (before the NUL it ends with). Callers put the commas between fields. */
CB_API size_t cb_id_list_field(char *out, const char *id);
/* Batch [shared]: top-n for many known users at once, ranked by the same score
 * over the whole catalog, added items included (blocked sgemm of user vectors against item vectors,
 * per-user filtering of rated items unless include-seen, the exclude/allow lists
 * and the block file; the retrieval sources and diversity are not used, and
 * opts that set them are refused: cb_recommend_batch_unused). items and
 * scores are caller-allocated [n_users x n], a row per user, item numbers (-1 and
 * -INFINITY padding when fewer). users == NULL means every user 0..n_users-1. */
/* The first setting of opts the batch would leave unused (a diversity mode, a
 * genre cap, or any of the retrieval sources' keys or mmr-lambda set, even to
 * its default), NULL when none: the batch refuses such opts (CB_EINVAL
 * naming the key); front ends ask it first to word their own refusal. */
CB_API const char *cb_recommend_batch_unused(const cb_config *opts);
CB_API int cb_recommender_recommend_batch(const cb_recommender *rec, const size_t *users, size_t n_users, size_t n,
                                          const cb_config *opts, int64_t *items, float *scores, cb_error *err);
/* Users per block of cb_recommender_recommend_batch (one sgemm each): calls
 * on consecutive users split at multiples of it give the bits of one call
 * (whatever the threads), e.g. a batch sharded across processes [shared]. */
CB_API size_t cb_recommender_batch_block(const cb_recommender *rec);
/* One user's batch row as a JSON line (malloc'd; caller frees):
 * {"user": id, "criterion": ..., "items": [{"item": id, "score": s}, ...]}
 * (added items also carry "new": true). */
CB_API int cb_recommender_batch_row_json(const cb_recommender *rec, size_t user, const int64_t *items,
                                         const float *scores, size_t n, const cb_config *opts, char **json_out,
                                         cb_error *err);

/* ---- serving: what a server (cbrec serve) or a binding shows beside the
 * lists [shared]. Strings returned belong to rec.
 *
 * Live events: cb_recommender_recommend with BOTH user_id and user_json
 * ranks for a known user plus the extra ratings of user_json ({"ratings":
 * {"<item id>": rating, ...}}, newer than training: they override the
 * training rating of the same item, and count as rated), embedded by the user
 * tower at once (no retraining); the user's categorical attribute levels come
 * from the model (numeric attributes are not stored in a model: give them in
 * user_json). A user_id the model does not know is a new user described by
 * user_json alone (a note says so). */

/* Item `item`'s genre names (the genre column's values only), up to max of
 * them into names (may be NULL); returns how many it has (0 out of range). */
CB_API size_t cb_recommender_item_genres(const cb_recommender *rec, size_t item, const char **names, size_t max);
/* Item `item`'s values of its other content columns (tags, brand, ...: every
 * categorical and multi-valued item column but the genre column), up to max
 * of them into columns[k] (the column's name) and values[k] (either may be
 * NULL); returns how many it has (0 out of range). An added item's are the
 * values its JSON gave that the model knows, every one (kept in the table
 * file; none from a file written before the table kept them). */
CB_API size_t cb_recommender_item_content(const cb_recommender *rec, size_t item, const char **columns,
                                          const char **values, size_t max);
/* Per item (model items, then added ones; arrays [cb_recommender_item_count]):
 * the number of interactions in the model (every rating of the training data;
 * 0 for added items) and their mean rating (NAN when none). */
CB_API int cb_recommender_item_rating_stats(const cb_recommender *rec, size_t *counts, double *means, cb_error *err);
/* What a profile form can offer, as JSON (malloc'd): {"genres": [the genre
 * column's names, what "genre_ratings" takes; no brand or tag values],
 * "item_columns": {"<col>": [levels]} (the other content columns, what
 * "preferences" takes, and the items' other columns), "user_columns":
 * {"<col>": [levels]} (the user attributes a profile gives; nothing learnt
 * from ratings), "multi_valued": [the item_columns an item may have several
 * values of (tags, not a brand), in the model's order]} (a numeric or text
 * column has an empty list). */
CB_API int cb_recommender_vocabulary_json(const cb_recommender *rec, char **json_out, cb_error *err);
/* A known user's interactions in the model, oldest first: count (0 out of
 * range), then the j-th: item number, rating, time (seconds; 0 when the data had
 * none; time may be NULL). */
CB_API size_t cb_recommender_user_n_ratings(const cb_recommender *rec, size_t user);
CB_API int cb_recommender_user_rating(const cb_recommender *rec, size_t user, size_t j, size_t *item, float *rating,
                                      int64_t *time, cb_error *err);
/* The item vectors projected on their first two principal components
 * (deterministic): xy [cb_recommender_item_count x 2], caller-allocated. */
CB_API int cb_recommender_project_2d(const cb_recommender *rec, float *xy, cb_error *err);

/* ---- input and output files [shared]. Every file cbrec reads goes through one
 * check: a path that is not a regular file (a FIFO, a directory, a device) is
 * refused at once, never blocks. Writes are atomic (temporary + rename); a
 * path that is a symbolic link is written through (the file it names is
 * replaced beside itself, the link stays a link; a dangling link creates
 * that file). */
/* Read a whole regular file (at most max_len bytes, else CB_EPARSE) into a
 * NUL-terminated buffer the caller frees with free(); *len may be NULL. */
CB_API int cb_file_read(const char *path, size_t max_len, char **text_out, size_t *len, cb_error *err);
/* Why cb_dataset_open chose the dataset's layout ("the folder has ratings.csv
 * and movies.csv (MovieLens latest)"); "" when unknown. */
CB_API const char *cb_dataset_layout_reason(const cb_dataset *ds);
/* CB_OK when a file can be written at `path` (checked before long work). */
CB_API int cb_file_check_writable(const char *path, cb_error *err);
/* CB_EINVAL when writing `out` would replace the file `input` (the same
 * directory entry, however spelt), so an output can never destroy an input. */
CB_API int cb_file_check_not_input(const char *out, const char *input, cb_error *err);
/* Write a file of the front end's own (a report, a batch of lists, exported
 * rows) the way the library writes models: into "<path>.tmp.<pid>", then
 * fsync and rename, so `path` holds the old file or the whole new one, never a
 * torn one; temporaries of dead processes are removed at open. Write through
 * cb_output_file(), then cb_output_commit (which frees the handle; on failure
 * the temporary is removed and `path` is untouched) or cb_output_abort. */
typedef struct cb_output cb_output;
CB_API int cb_output_open(cb_output **out, const char *path, cb_error *err);
CB_API FILE *cb_output_file(cb_output *o);
CB_API int cb_output_commit(cb_output *o, cb_error *err);
CB_API void cb_output_abort(cb_output *o); /* NULL is a no-op */
/* The whole of `text` (len bytes) as the file `path`, atomically. */
CB_API int cb_file_write(const char *path, const char *text, size_t len, cb_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CBREC_H */
