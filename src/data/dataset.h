/* dataset — what a recommender learns from: id vocabularies, the ratings (or
 * implicit events), and attribute tables of users and items.
 *
 * Ratings are stored compactly, 16 bytes each (user index, item index, value,
 * timestamp); features are never copied per rating. Attribute tables hold
 * typed columns (numeric, categorical, multi-valued) with rows aligned to the
 * dense user / item indices.
 *
 * Where things live in src/data, in the order a load runs:
 *   layout.c      cb_dataset_load: which layout a path holds, and its loader
 *   movielens.c   MovieLens latest-small / 25M, 100K, 1M
 *   generic.c     cbrec.schema, and a folder with only ratings.csv
 *   course_lab.c  the course lab's pre-joined rows
 *   ratings_file.c  the one ratings-file reader (fast multi-threaded path + strict path)
 *   loader.c      the loader context and the final checks (duplicates, range, roles)
 *   table.c       the attribute-table builder;  textutil.c  field and file helpers
 *   dataset.c     this object: free, sizes, column lookup
 *   split.c       the splits;  synth.c  synthetic data with planted structure */
#ifndef CB_DATASET_H
#define CB_DATASET_H

#include "base/util.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* One observed rating or label. 16 bytes. ts = seconds since the epoch, 0 when unknown. */
typedef struct cb_rating {
    uint32_t user;
    uint32_t item;
    float y;
    uint32_t ts;
} cb_rating;

typedef enum cb_col_kind {
    CB_COL_NUMERIC = 0,     /* float per row, NAN when missing */
    CB_COL_CATEGORICAL = 1, /* one level per row (index into `levels`), CB_MISSING when missing */
    CB_COL_MULTI = 2        /* zero or more levels per row, CSR: off[n_rows+1], val[] */
} cb_col_kind;

#define CB_MISSING UINT32_MAX

typedef struct cb_column {
    char *name;
    cb_col_kind kind;
    float *num;        /* NUMERIC: [n_rows] */
    uint32_t *cat;     /* CATEGORICAL: [n_rows] */
    uint32_t *off;     /* MULTI: [n_rows + 1] */
    uint32_t *val;     /* MULTI: [off[n_rows]] */
    cb_vocab *levels;  /* CATEGORICAL / MULTI: level names */
    /* Vocabulary control (generic schema, generic.c): the separator the file
     * used ("" = '|'), how many values the schema's max_values / min_count
     * dropped (n_dropped, of n_values_seen distinct values), and, with the
     * hashing trick, how many "#k" bucket levels hold the dropped values
     * (cb_value_bucket gives a value's bucket). */
    char sep[8];
    uint32_t n_values_seen, n_dropped, hash_buckets;
    /* A text column (schema kind `text`): stored as MULTI, one level per
     * distinct case-folded token of the row (cb_text_token); the features
     * hash its TF-IDF into hash_buckets dimensions (0 = the default width). */
    bool text;
} cb_column;

/* Attribute table. Rows are dense user or item indices. */
typedef struct cb_table {
    uint32_t n_rows;
    uint32_t n_cols;
    cb_column *cols;
} cb_table;

/* Well-known column roles, resolved by name when loading (-1 when absent). */
typedef struct cb_roles {
    int item_genres;   /* MULTI column of genres */
    int item_year;     /* NUMERIC release year */
    int user_age;      /* NUMERIC age */
    int user_gender;   /* CATEGORICAL */
    int user_occupation;
    int user_location; /* CATEGORICAL region/country derived from zip or location */
} cb_roles;

/* The role of one field of a ratings file. */
typedef enum cb_field_role {
    CB_FIELD_OTHER, CB_FIELD_USER, CB_FIELD_ITEM, CB_FIELD_RATING, CB_FIELD_TIMESTAMP, CB_FIELD_WEIGHT
} cb_field_role;

/* How the ratings file lays out a row, so that rows written this way read
 * back as the file's own (`cbrec events export` appends to it): its fields
 * in file order, each a role and a name (the header's or the schema's; a
 * role's MovieLens name, "userId", when the file names none), the
 * delimiter, whether a header line comes first and fields may be quoted.
 * n_fields 0: no ratings file
 * (pre-joined data). */
typedef struct cb_ratings_layout {
    size_t n_fields;
    cb_field_role *roles; /* [n_fields] */
    char **names;         /* [n_fields] */
    char delim[8];
    bool header;
    bool quoting;         /* a field may be in double quotes (RFC 4180) */
} cb_ratings_layout;
void cb_ratings_layout_free(cb_ratings_layout *l);

typedef struct cb_dataset {
    char *name;            /* e.g. "movielens-100k", "generic", "course-lab", "synthetic" */
    char *path;            /* where it was loaded from */
    const char *layout_why; /* why cb_dataset_load chose this layout (a static string), or NULL */
    cb_vocab *users;       /* user id strings -> dense indices */
    cb_vocab *items;       /* item id strings -> dense indices */
    cb_rating *ratings;    /* [n_ratings] */
    size_t n_ratings;
    size_t cap_ratings;
    float y_min, y_max;    /* declared or observed rating range */
    bool binary;           /* labels are 0/1 */
    bool implicit;         /* events, not ratings (no rating column): y = 1 per (user, item),
                              or the summed weights of its events; `binary` when unweighted */
    bool has_timestamps;
    bool prejoined;        /* course-lab style: user/item tables are given features,
                              duplicate (user, item) rows allowed */
    char **titles;         /* [n_items] UTF-8 titles, entries may be NULL; NULL if none */
    bool no_title_years;   /* schema said items.year_from_title = no: never parse a
                              year from the titles */
    cb_table user_attr;    /* rows = cb_vocab_size(users) */
    cb_table item_attr;    /* rows = cb_vocab_size(items) */
    cb_roles roles;
    size_t n_skipped;      /* bad rows skipped under skip_bad_rows */
    size_t n_merged;       /* implicit: repeated (user, item) events merged into the first */
    size_t n_folded;       /* ratings under duplicates first / last: later rows dropped / replacing */
    size_t n_unlisted;     /* users of the ratings missing from the users file, kept (unlisted_users) */
    /* Pre-joined data: how many leading columns of user_attr / item_attr are ids
     * or bookkeeping rather than model inputs (course lab: 3 and 1). 0 otherwise. */
    uint32_t user_lead_cols, item_lead_cols;
    cb_ratings_layout ratings_layout; /* of the ratings file (cb_ld_finish) */
} cb_dataset;

/* Options for every loader. */
/* A user's second rating of an item (ratings; implicit events are merged). */
typedef enum cb_duplicates {
    CB_DUPLICATES_ERROR, /* the loader's error, naming both lines (skip_bad_rows: the later dropped) */
    CB_DUPLICATES_FIRST, /* the earlier row kept, the later dropped and counted */
    CB_DUPLICATES_LAST   /* the later row's rating and time replace the earlier's (a re-rating) */
} cb_duplicates;

/* A rating by a user the users file does not list (a live user of the
 * server, in `events export` rows appended to the data). */
typedef enum cb_unlisted {
    CB_UNLISTED_ERROR, /* the loader's error, naming the line (skip_bad_rows: the row skipped) */
    CB_UNLISTED_KEEP   /* the user kept, every attribute missing (counted in n_unlisted) */
} cb_unlisted;

typedef struct cb_load_options {
    bool skip_bad_rows;    /* skip malformed rows (counted in n_skipped) instead of failing */
    cb_duplicates duplicates;
    cb_unlisted unlisted_users;
    float y_min, y_max;    /* declared rating range; both 0 = no check */
    const char *schema;    /* generic layout: path of a schema file (see README) */
    /* For tests: read ratings files with the general (reference) path only, or
     * give each fast-path thread chunks of about this many bytes (0 = the
     * default; small values make small files take the multi-chunk paths). */
    bool ratings_reference;
    size_t ratings_chunk;
} cb_load_options;
void cb_load_options_default(cb_load_options *o);

/* Load a dataset from a directory, detecting its layout:
 *   ratings.csv + movies.csv            MovieLens latest-small / 25M style
 *   u.data + u.item [+ u.user]          MovieLens 100K
 *   ratings.dat + movies.dat [+ users.dat]  MovieLens 1M
 *   content_user_train.csv ...          course-lab pre-joined rows
 *   cbrec.schema (or opt->schema)       generic declared layout
 * Returns CB_OK and a new dataset in *out (free with cb_dataset_free). */
int cb_dataset_load(cb_dataset **out, const char *path, const cb_load_options *opt, cb_error *err);
void cb_dataset_free(cb_dataset *ds); /* NULL is a no-op */
/* CB_EINVAL naming both when writing `out` would replace a file the dataset
 * at `path` is read from (the schema and the files it names, or any file a
 * folder's layout reads); checked before the work, nothing loaded. */
int cb_dataset_load_check_output(const char *path, const cb_load_options *opt, const char *out, cb_error *err);

uint32_t cb_dataset_n_users(const cb_dataset *ds);
uint32_t cb_dataset_n_items(const cb_dataset *ds);
/* The value from which a held-out rating counts as relevant (top-N metrics,
 * the neighbour component's tuning): every event of implicit data (events or
 * summed weights: y_min), else the top quarter of the rating range, y_min +
 * 0.75 (y_max - y_min): 4 on 1-5, and on 0.5-5 the same ratings as 4. */
float cb_dataset_relevant_from(const cb_dataset *ds);
/* Year from a trailing "(1995)" (or "(2006-2007)") in a title, in 1800..2200;
 * NAN when there is none. The one rule every module uses. */
float cb_year_from_title(const char *s, size_t len);
/* The hashing trick's bucket of a value (FNV-1a of its bytes, mod buckets),
 * and its level name "#<bucket>"; buckets > 0. The one rule the loader
 * (dropped values) and the feature transform (unknown values) share. */
uint32_t cb_value_bucket(const char *s, size_t len, uint32_t buckets);
/* Column index by name in a table, or -1. */
int cb_table_find(const cb_table *t, const char *name);
/* Bytes used by ratings, vocabularies and tables (memory report). */
size_t cb_dataset_bytes(const cb_dataset *ds);

/* ---- Splits. Each fills two newly allocated index arrays into ds->ratings
 * (free() them). All are deterministic for a given seed. */
typedef enum cb_split_kind {
    CB_SPLIT_RANDOM = 0,      /* each rating to test with probability test_frac */
    CB_SPLIT_TEMPORAL = 1,    /* each user's latest ceil(test_frac * n_u) ratings to test,
                                 at most n_u - 1 (every user keeps one training rating);
                                 ties in ts (or no timestamps) broken by file order */
    CB_SPLIT_COLD_USERS = 2,  /* test_frac of users held out entirely */
    CB_SPLIT_COLD_ITEMS = 3,  /* test_frac of items held out entirely */
    CB_SPLIT_PER_USER = 4     /* each user's ratings: round(test_frac * n_u) of them drawn at
                                 random (seeded) to test, at most n_u - 1 (every user keeps
                                 one training rating) */
} cb_split_kind;
/* Pre-joined rows (ds->prejoined) may repeat a (user, item) pair: random,
 * temporal and per-user splits and the carves keep such a pair on the side
 * its first row was drawn for (per-user and temporal: a user left without a
 * training row gets one pair back), so no held-out rating is also a training one. */
typedef struct cb_split {
    uint32_t *train, *test;   /* indices into ds->ratings */
    size_t n_train, n_test;
} cb_split;
int cb_split_make(cb_split *out, const cb_dataset *ds, cb_split_kind kind, double test_frac,
                  uint64_t seed, cb_error *err);
void cb_split_free(cb_split *s);
/* "random", "temporal", "cold-users", "cold-items", "per-user". */
const char *cb_split_kind_name(cb_split_kind kind);
/* (Parsed from text by the TRAIN configuration's "split" key, model/train_config.h.) */

/* The validation carve: the one place a validation part is cut out of
 * training ratings (for early stopping and for choosing settings; never
 * from the test part). Fills out->train (training minus validation) and
 * out->test (the validation part) with new arrays of entries of train[].
 *   CB_SPLIT_RANDOM:   train[] shuffled with a cb_rng seeded by
 *                      seed ^ 0x5eed5eed; the first floor(valid_frac * n)
 *                      go to validation, the rest (in shuffled order) stay
 *                      (`cbrec train`'s carve). Fewer than 10 ratings or
 *                      valid_frac 0: nothing is carved.
 *   CB_SPLIT_PER_USER: within train[], each user's ratings split as
 *                      cb_split_make's per-user kind (seed as given); both
 *                      parts keep the order of train[].
 *   CB_SPLIT_TEMPORAL: within train[], each user's latest ratings, as
 *                      cb_split_make's temporal kind (the carve under a
 *                      temporal split: cb_train_carve_kind); order kept.
 * Other kinds: CB_EINVAL. valid_frac in [0, 1). Deterministic for a seed. */
int cb_split_carve(cb_split *out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                   cb_split_kind kind, double valid_frac, uint64_t seed, cb_error *err);

/* The course lab's split: sklearn's train_test_split(train_size=train_size,
 * shuffle=True, random_state=random_state) over n_rows row positions,
 * reproduced exactly (numpy's legacy RandomState permutation, MT19937).
 * test = perm[:ceil((1-train_size) n)], train = perm[n_test : n_test + floor(train_size n)],
 * both in permutation order (not sorted). train_size in (0, 1). */
int cb_split_sklearn(cb_split *out, size_t n_rows, double train_size, uint32_t random_state,
                     cb_error *err);
/* numpy.random.RandomState(seed).permutation(n) into perm[n] (values 0..n-1). */
void cb_numpy_permutation(uint32_t *perm, size_t n, uint32_t seed);

/* ---- Synthetic data with planted structure (see synth.c). */
typedef enum cb_synth_layout {
    CB_SYNTH_MOVIELENS = 0, /* ratings.csv, movies.csv, users.csv (synth.c) */
    CB_SYNTH_GENERIC = 1    /* a shop-like catalog with planted classes (synth_generic.c) */
} cb_synth_layout;

typedef struct cb_synth_config {
    uint32_t n_users, n_items, n_genres;
    size_t n_ratings;
    double noise;          /* std of rating noise */
    uint64_t seed;
    int layout;            /* cb_synth_layout */
} cb_synth_config;
void cb_synth_config_default(cb_synth_config *c);
/* Build a synthetic dataset in memory. */
int cb_synth_generate(cb_dataset **out, const cb_synth_config *c, cb_error *err);
/* Write a synthetic dataset as a MovieLens-latest-style folder (ratings.csv,
 * movies.csv, users.csv + cbrec.schema) so every loader path is exercised. */
int cb_synth_write(const cb_dataset *ds, const char *dir, cb_error *err);
/* The generic layout (synth_generic.c): a shop-like catalog of n_items
 * products in min(n_genres, 16) planted classes, written to dir as
 * items.csv (string ids; titles and a text column with commas, quotes and
 * UTF-8 accents, CJK and emoji; ';'-separated tags drawn from the class's
 * tags; a categorical brand of the class), users.csv, ratings.csv (string
 * ids; users rate mostly their 1-2 favourite classes, high), truth.csv (the
 * planted classes: "item,ID,CLASS", "user,ID,C1;C2", "class,K,TAG;TAG...")
 * and cbrec.schema. About 10% of items and 5% of users are never rated.
 * Deterministic for a seed. */
int cb_synth_write_generic(const cb_synth_config *c, const char *dir, cb_error *err);
/* Append a CSV field to fp, quoted when it holds a comma, quote or line break. */
void cb_csv_put_field(FILE *fp, const char *s);

#endif /* CB_DATASET_H */
