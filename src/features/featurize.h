/* featurize — the fitted feature transform (module prefix cb_features_): dataset -> user table X_u and item
 * table X_m, plus the same transform for a brand-new user or item (cold start).
 *
 * cb_features_fit() learns everything from the TRAINING ratings only (indices
 * into ds->ratings): level vocabularies, the top-K most popular items, item
 * rating counts and (shrunk) means, the global mean, and per-dimension
 * standardisation scalers. The object then needs no dataset: it keeps the item
 * genre membership (CSR), the top-K item indices and every vocabulary, so it can
 * featurise a new user from a JSON-like description (demographics, a few
 * ratings, explicit per-genre preferences) and be saved inside a model file as
 * JSON (cb_features_to_json / cb_features_from_json, in features_json.c).
 *
 * User features (engineered datasets), in this order, each group switchable:
 *   one-hot per categorical column ("gender=F"; unseen / missing level -> all 0;
 *     at most max_cat_levels most frequent levels among training users),
 *   age: standardised "age(z)" + "age_missing", or buckets "age[25-34]",
 *   other numeric columns "<col>(z)" (+ "<col>_missing" if any is missing),
 *   multi-valued columns "<col>[level]" (top max_multi_levels levels),
 *   "rating_count(log1p,z)", "rating_mean(z)",
 *   per genre "genre_avg[G](z)": mean rating of the user's training ratings in G;
 *     when the user has none in G it is filled with the user's overall mean
 *     (global mean if the user has no ratings at all), so it reads "neutral for
 *     this user";
 *   per genre "genre_frac[G]": fraction of the user's ratings that are in G —
 *     0 means "no ratings in G", which distinguishes it from a low average,
 *   "top_item[<item id>]": 1 if the user rated that top-K popular item.
 * Item features: "year(z)" + "year_missing" (missing -> training mean; year from
 *   the year column, else parsed from "Title (1995)"), "genre[G]" multi-hot,
 *   "rating_mean(shrunk,z)" = (sum + prior*global_mean) / (count + prior),
 *   "rating_count(log1p,z)", other numeric "<col>(z)", categorical "<col>=v",
 *   multi-valued "<col>[v]" (top levels only).
 * Scalers: (x - mean) / std with std 0 -> 1, fitted over training users / items
 *   (those with >= 1 training rating), one count per user / item. Only the
 *   continuous features named "(z)" are scaled; 0/1 indicators and fractions are
 *   left as they are.
 * Pre-joined datasets (ds->prejoined, the course lab): the features are the
 *   given numeric columns minus the first user_skip_cols / item_skip_cols, every
 *   column standardised with a scaler fitted over the RATING ROWS (a user row
 *   repeated in 20 ratings counts 20 times), training rows or all rows
 *   (scaler_rows). Item columns holding only 0/1 are taken as genres.
 *
 * File name: featurize.h, not features.h — with -Isrc a src/features.h would
 * shadow glibc's <features.h> and break every compilation unit.
 *
 * Threading: a fitted cb_features is read-only; any number of threads may call
 * the const functions on it at once. */
#ifndef CB_FEATURIZE_H
#define CB_FEATURIZE_H

#include "data/dataset.h"
#include "base/rows.h"
#include "base/st.h"
#include <jansson.h>

typedef enum cb_age_mode {
    CB_AGE_STANDARDISE = 0, /* "age(z)" + "age_missing" */
    CB_AGE_BUCKETS = 1      /* one-hot <18,18-24,25-34,35-44,45-49,50-55,56+ (MovieLens 1M) */
} cb_age_mode;

typedef enum cb_scaler_rows {
    CB_SCALER_TRAIN = 0, /* pre-joined: fit scalers over the training rows */
    CB_SCALER_ALL = 1    /* pre-joined: over all rows (what the course lab does) */
} cb_scaler_rows;

#define CB_SKIP_FROM_DATASET UINT32_MAX

typedef struct cb_feature_config {
    /* groups (engineered datasets) */
    bool user_attrs;          /* categorical / numeric / multi user columns (incl. age) */
    bool user_stats;          /* rating count and mean */
    bool user_genres;         /* genre_avg + genre_frac */
    bool item_year;
    bool item_genres;
    bool item_stats;          /* shrunk mean and count */
    bool item_attrs;          /* other declared item columns */
    uint32_t top_k_popular;   /* default 1000, clamped to #items; 0 = no top_item block */
    cb_age_mode age_mode;     /* default CB_AGE_STANDARDISE */
    uint32_t max_cat_levels;  /* default 64: most frequent levels kept per categorical column */
    uint32_t max_multi_levels;/* default 50: most frequent levels kept per multi column (tags) */
    float item_prior;         /* default 5: pseudo-ratings at the global mean for item means */
    const char *exclude_cols; /* comma-separated column names to leave out (default NULL) */
    /* pre-joined datasets */
    uint32_t user_skip_cols;  /* leading user columns that are not inputs; default
                                 CB_SKIP_FROM_DATASET = ds->user_lead_cols (lab: 3 =
                                 user id, rating count, rating ave) */
    uint32_t item_skip_cols;  /* same for items; lab: 1 (movie id) */
    cb_scaler_rows scaler_rows; /* default CB_SCALER_ALL (as the lab) */
} cb_feature_config;

void cb_feature_config_default(cb_feature_config *c);
/* NULL when the configuration is usable, else a static message. */
const char *cb_feature_config_check(const cb_feature_config *c);

typedef struct cb_features cb_features;

/* Fit on the training ratings ds->ratings[train_idx[0..n_train-1]].
 * cfg may be NULL (defaults). On success *out owns a new object (cb_features_free). */
int cb_features_fit(cb_features **out, const cb_dataset *ds, const uint32_t *train_idx,
                    size_t n_train, const cb_feature_config *cfg, cb_error *err);
void cb_features_free(cb_features *f); /* NULL is a no-op */

uint32_t cb_features_user_dim(const cb_features *f);
uint32_t cb_features_item_dim(const cb_features *f);
/* Name of feature j (e.g. "gender=F", "genre_avg[Action](z)", "top_item[260]"),
 * owned by f; NULL when j is out of range. */
const char *cb_features_user_name(const cb_features *f, uint32_t j);
const char *cb_features_item_name(const cb_features *f, uint32_t j);

/* Full tables, row-major, caller-allocated:
 * X_u [cb_dataset_n_users(ds) x user_dim], X_m [cb_dataset_n_items(ds) x item_dim].
 * The user rows use the ratings train_idx (normally the same training split the
 * transform was fitted on). ds must have the fitted dataset's items (same count);
 * its attribute columns are matched by name and levels by string. */
int cb_features_users(const cb_features *f, const cb_dataset *ds, const uint32_t *train_idx,
                      size_t n_train, float *X_u, cb_error *err);
int cb_features_items(const cb_features *f, const cb_dataset *ds, float *X_m, cb_error *err);
/* The user table of cb_features_users, the same values, as cb_rows: the
 * top-items multi-hot (0/1, the last block) as column lists, the rest dense.
 * *out is owned by the caller (cb_rows_free), zeroed on failure. */
int cb_features_user_rows(const cb_features *f, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                          cb_rows *out, cb_error *err);

/* ---- Cold start: featurise a new user / item without any dataset. */

/* A value for one attribute column, by column name. For categorical columns
 * `str` is the level ("F"); for multi-valued columns `str` lists levels
 * separated by '|'; for numeric columns set str = NULL and use `num` (a string
 * holding a number is accepted too). */
typedef struct cb_attr_value {
    const char *name;
    const char *str;
    double num;
} cb_attr_value;

typedef struct cb_item_rating {
    uint32_t item;  /* dense item index of the fitted dataset */
    float y;
} cb_item_rating;

typedef struct cb_genre_pref {
    const char *genre; /* genre name, e.g. "Adventure"; a value of another content
                          column as cb_features_value_key writes it */
    float y;           /* preferred rating, e.g. 5 */
} cb_genre_pref;

/* A new user. Any part may be empty. Explicit genre preferences set
 * genre_avg[G] to y directly and count as one pseudo-rating in G for
 * genre_frac (they do not change rating_count / rating_mean). Pre-joined
 * models: attrs give columns by name, genre prefs set the column named like
 * the genre, ratings are ignored, unspecified columns are 0 (the lab's
 * convention) before scaling. */
typedef struct cb_user_input {
    const cb_attr_value *attrs;
    size_t n_attrs;
    const cb_item_rating *ratings;
    size_t n_ratings;
    const cb_genre_pref *genre_prefs;
    size_t n_genre_prefs;
} cb_user_input;

/* A new item: year (NAN when unknown), genre names, other attribute columns by
 * name, and optional rating statistics (rating_count 0 = unrated: the mean
 * falls back to the global mean through the prior). Pre-joined models: attrs
 * by column name, genres set the 0/1 column of that name, "year" too. */
typedef struct cb_item_input {
    double year;
    const char *const *genres;
    size_t n_genres;
    const cb_attr_value *attrs;
    size_t n_attrs;
    uint32_t rating_count;
    float rating_mean;
} cb_item_input;

/* CB_OK when every text block's words are made by the rule the data loader
 * splits text by now; else CB_EINVAL, the message `what` (a prefix such as
 * "--resume: ") and the column. A model saved before a tokenizer change
 * cannot have its training rows made again from a dataset loaded now (as
 * --resume does); one item's text given as a string still can. */
int cb_features_check_token_rules(const cb_features *f, const char *what, cb_error *err);
/* Write one row x[user_dim] / x[item_dim]. Unknown column or genre names
 * (an item's unknown genres: see below), unknown item indices and unparsable
 * numbers -> CB_ENOTFOUND / CB_EINVAL with the name in the message; unseen
 * categorical levels are not errors (all 0).
 * For a known user, passing its attributes and its training ratings (in the
 * order they appear in train_idx) gives exactly its cb_features_users row. */
int cb_features_new_user(const cb_features *f, const cb_user_input *in, float *x, cb_error *err);
int cb_features_new_item(const cb_features *f, const cb_item_input *in, float *x, cb_error *err);
/* The same, where genres and values of content columns given as attributes
 * (by column name; a string split on '|' and on the column's own separator,
 * as in the file) that the model does not know are an error under `strict`,
 * else a remark appended to notes[notes_size] (may be NULL) and ignored.
 * (cb_features_new_item: not strict, no notes.) */
int cb_features_new_item_checked(const cb_features *f, const cb_item_input *in, bool strict, char *notes,
                                 size_t notes_size, float *x, cb_error *err);

/* The range check of user-given numbers (features_range.c): every numeric
 * attribute of attrs (and, for an item, `year`; NAN = none) must lie within
 * 20 fitted standard deviations of the fitted mean (ages: 0..150), else
 * CB_EINVAL naming the attribute, its value and the accepted range. Callers
 * that take user input (new-user and add-item JSON) run it before
 * cb_features_new_user / cb_features_new_item; training rows are not checked. */
int cb_features_check_input(const cb_features *f, bool user, const cb_attr_value *attrs, size_t n_attrs, double year,
                            cb_error *err);
/* A new user's categorical attributes (gender, occupation, ...): a value the
 * model does not know (never in training, or dropped by the vocabulary
 * control) would count as missing; it is an error under `strict`, else a
 * remark appended to notes[notes_size] ("unknown value 'X' of 'gender'
 * ignored"), as unknown values of content columns are. features_range.c. */
int cb_features_check_user_levels(const cb_features *f, const cb_attr_value *attrs, size_t n_attrs, bool strict,
                                  char *notes, size_t notes_size, cb_error *err);

/* ---- Cold users (no training ratings): rewrite their rows of X_u
 * [n_users x user_dim] (has[u] = 0 marks them) so that the attribute columns
 * stay and each rating-derived column (rating_count, rating_mean, genre_avg,
 * genre_frac, top_item) is the mean of that column over the k training users
 * nearest in the attribute columns (ties at the k-th distance included; all
 * training users when k is 0 or there are no attribute columns). Without it
 * the row says "0 ratings", a value no training user has, and the tower
 * extrapolates. *n_cold receives how many rows were rewritten (impute.c:
 * float sgemm over distinct attribute rows + a partial selection, rescored
 * in double, so the rows are bit-identical to the reference's). */
int cb_features_impute_cold(const cb_features *f, float *X_u, const uint8_t *has, uint32_t n_users, uint32_t k,
                            size_t *n_cold, cb_error *err);
/* The same, the plain way (every training user scanned in double, the whole
 * distance list sorted, per cold user): kept for the tests and the benchmark. */
int cb_features_impute_cold_reference(const cb_features *f, float *X_u, const uint8_t *has, uint32_t n_users,
                                      uint32_t k, size_t *n_cold, cb_error *err);

/* ---- Serialisation (jansson; features_json.c). to_json returns a new reference (NULL + err on
 * failure). from_json validates types and sizes; a malformed object gives
 * CB_EFORMAT and a message, never a crash. Reals round-trip exactly. */
json_t *cb_features_to_json(const cb_features *f, cb_error *err);
int cb_features_from_json(cb_features **out, const json_t *j, cb_error *err);
/* The same with the per-item arrays (item_genre_off, item_genre_val,
 * item_count, item_mean) as tensors "features.<name>" of w / st instead of
 * JSON arrays (model format 4: at 27k items they were ~900 KB of the JSON,
 * parsed number by number at every load). The tensors reference f's arrays:
 * keep f until cb_st_write. */
json_t *cb_features_to_json_st(const cb_features *f, cb_st_writer *w, cb_error *err);
int cb_features_from_json_st(cb_features **out, const json_t *j, const cb_st *st, cb_error *err);

/* ---- Content columns (facets): the genre column and every categorical /
 * multi-valued item column are one list of values (the "genres" accessors
 * below index it; cb_features_genre_find finds genre-column values only). */
uint32_t cb_features_n_facets(const cb_features *f);
const char *cb_features_facet_name(const cb_features *f, uint32_t facet);  /* column name */
int cb_features_facet_find(const cb_features *f, const char *column);      /* facet or -1 */
int cb_features_facet_find_n(const cb_features *f, const char *column, size_t len); /* column[0..len) */
bool cb_features_facet_is_genre(const cb_features *f, uint32_t facet);     /* the genre-role column */
bool cb_features_facet_is_multi(const cb_features *f, uint32_t facet);     /* several values an item (tags), not one (a brand) */
/* Value index of `value` (len bytes) in a facet: the value itself, else its
 * hashing-trick bucket when the column hashes; -1 when unknown. */
int64_t cb_features_value_find(const cb_features *f, uint32_t facet, const char *value, size_t len);
/* The value a user names (a block list's "tags violent"): the facet's value
 * itself, never its hash bucket, into *g; else CB_ENOTFOUND saying why
 * (unknown, not among the values the model kept, only in a shared bucket:
 * the last two say to name its items instead). */
int cb_features_value_named(const cb_features *f, uint32_t facet, const char *value, size_t len, uint32_t *g,
                            cb_error *err);
/* The name cb_genre_pref takes for value g: the genre's name, or for other
 * columns "<column>\x1f<value>" (written into buf; NULL if g is out of range
 * or buf too small). */
const char *cb_features_value_key(const cb_features *f, uint32_t g, char *buf, size_t size);
/* Is value g one of the genre column's (always, in a model without facets)? */
bool cb_features_value_is_genre(const cb_features *f, uint32_t g);
/* Facet of value g (-1 if out of range or the model has no facets). */
int cb_features_value_facet(const cb_features *f, uint32_t g);
/* Values of a facet column written as in its file ("jazz;bebop", or '|'-joined):
 * the pieces, trimmed, each looked up; known ones into out[cap] (*n_out; past
 * cap left out: a cap of strlen(str) + 1 holds every one, each piece taking a
 * byte at least),
 * unknown ones an error (CB_ENOTFOUND) under strict, else a remark appended
 * to notes[notes_size] (may be NULL). */
int cb_features_facet_values(const cb_features *f, uint32_t facet, const char *str, uint32_t *out, uint32_t cap,
                             uint32_t *n_out, bool strict, char *notes, size_t notes_size, cb_error *err);
/* Is item feature j derived from interactions (rating count, mean) rather
 * than content? (What item-dropout masks so new items are placed by content.) */
bool cb_features_item_interaction(const cb_features *f, uint32_t j);
/* The column a new user's (user) or item's JSON gives feature j of that side
 * from, or NULL when the feature is no such input: derived from interactions
 * (rating count and mean, per-value tastes, popular items), the year, the
 * genre column (which has its own list), a pre-joined raw column. *level: the
 * feature's level of a categorical or multi-valued column, content column or
 * age bucket ("F", "jazz", "25-34"); NULL for a number or a text column.
 * Strings belong to f. */
const char *cb_features_input_column(const cb_features *f, bool user, uint32_t j, const char **level);

/* ---- Accessors for retrieval and explanations. */
bool cb_features_prejoined(const cb_features *f);
uint32_t cb_features_n_items(const cb_features *f);   /* items of the fitted dataset */
uint32_t cb_features_n_genres(const cb_features *f);
const char *cb_features_genre_name(const cb_features *f, uint32_t g); /* NULL if out of range */
int cb_features_genre_find(const cb_features *f, const char *name);   /* index or -1 */
int cb_features_genre_find_n(const cb_features *f, const char *name, size_t len); /* name[0..len) */
/* Genres of item `item`: *list points into f (n entries); returns CB_OK or CB_EINVAL. */
int cb_features_item_genres(const cb_features *f, uint32_t item, const uint32_t **list, uint32_t *n);
uint32_t cb_features_item_count(const cb_features *f, uint32_t item); /* training ratings (0 if out of range) */
float cb_features_item_mean(const cb_features *f, uint32_t item);     /* shrunk training mean */
float cb_features_global_mean(const cb_features *f);
/* The fitted scaler of one side (user = true / item = false): x = (raw - mean) / std,
 * arrays of user_dim / item_dim owned by f; mean 0 / std 1 where not standardised. */
void cb_features_scaler(const cb_features *f, bool user, const double **mean, const double **std);
/* The top-K popular items (by training count, ties by index), most popular first. */
uint32_t cb_features_top_k(const cb_features *f, const uint32_t **items);

#endif /* CB_FEATURIZE_H */
