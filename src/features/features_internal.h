/* features_internal — the layout of a fitted cb_features, shared by the
 * code that fits and applies it (featurize.c) and the code that saves and
 * loads it as JSON (features_json.c), with the few helpers both use.
 * Internal to libcbrec. */
#ifndef CB_FEATURES_INTERNAL_H
#define CB_FEATURES_INTERNAL_H

#include "features/featurize.h"

enum {
    B_CAT = 1,      /* one-hot over kept levels of a categorical column */
    B_NUM,          /* numeric column, standardised; + missing flag */
    B_AGE_BUCKETS,  /* numeric age column as 7 buckets */
    B_MULTI,        /* multi-hot over kept levels of a multi-valued column */
    B_USER_COUNT,   /* log1p(#training ratings) */
    B_USER_MEAN,    /* mean training rating */
    B_GENRE_AVG,    /* per-genre mean rating (filled with the user's mean) */
    B_GENRE_FRAC,   /* per-genre fraction of the user's ratings */
    B_TOP_ITEMS,    /* rated one of the top-K popular items */
    B_YEAR,         /* item year (column or title), + missing flag */
    B_ITEM_GENRES,  /* genre multi-hot */
    B_ITEM_MEAN,    /* shrunk mean rating */
    B_ITEM_COUNT,   /* log1p(#training ratings) */
    B_RAW,          /* pre-joined: the given numeric column */
    B_TEXT,         /* text column: TF-IDF of its tokens hashed into `buckets` dims, L2-normalised */
    B_N_TYPES
};

/* Block type names as written in model files; [0] is NULL. */
extern const char *const cb_feat_block_type_name[B_N_TYPES];

typedef struct fblock {
    int type;
    char *col;          /* source column name; NULL for derived blocks */
    uint32_t n_levels;  /* CAT / MULTI */
    char **levels;
    cb_vocab *vocab;    /* level name -> index in `levels` (rebuilt on load) */
    bool missing_flag;  /* NUM / YEAR: a second dimension saying "was missing" */
    double fill;        /* NUM / YEAR: raw value used when missing (training mean);
                           TEXT: the idf of a token no item had */
    double *idf;        /* TEXT: [n_levels] idf of each known token (levels) */
    uint32_t buckets;   /* TEXT: width */
    int token_rule;     /* TEXT: cb_text_token_rule's rule its levels were made by (1: a file without it) */
    uint32_t offset, width;
} fblock;

typedef struct fside {
    fblock *blocks;
    uint32_t n_blocks;
    uint32_t dim;
    double *mean, *std; /* [dim] */
    char **names;       /* [dim] */
    char **ignored;     /* source columns deliberately not used (accepted, ignored) */
    uint32_t n_ignored;
} fside;

struct cb_features {
    bool prejoined;
    cb_feature_config cfg;
    char *exclude_cols;     /* owned copy; cfg.exclude_cols points here */
    double global_mean;
    uint32_t n_items;
    uint32_t n_genres;
    char **genres;
    cb_vocab *genre_vocab;
    uint32_t *item_genre_off; /* [n_items + 1] */
    uint32_t *item_genre_val;
    uint32_t *item_count;     /* [n_items] training ratings */
    float *item_mean;         /* [n_items] shrunk training mean */
    uint32_t top_k;
    uint32_t *top_items;      /* [top_k], most popular first */
    char **top_item_ids;      /* [top_k] item id strings (for names) */
    int32_t *top_pos;         /* [n_items]: position in top_items or -1 (derived) */
    bool year_from_title;
    /* Content columns ("facets"): the genre column and every other
     * categorical / multi-valued item column are one value list (genres[],
     * n_genres, item_genre_*); value g belongs to facet value_facet[g].
     * genre_facet is the facet of the genre-role column (-1: none); its
     * values are looked up by their plain name, the others by "col\x1fvalue". */
    uint32_t n_facets;
    char **facet_cols;        /* [n_facets] item column names */
    char **facet_seps;        /* [n_facets] the file's separator of a multi column, "" for categorical */
    uint32_t *facet_hash;     /* [n_facets] hash buckets of the column (0 = none) */
    uint32_t *value_facet;    /* [n_genres] */
    int32_t genre_facet;
    fside user, item;
};

/* Key of a facet value in genre_vocab, written into buf (NULL when too long). */
const char *cb_feat_value_key(const cb_features *f, uint32_t facet, const char *value, size_t len, char *buf,
                              size_t size);

/* Append "unknown value 'V' of 'COL' ignored" and why (cb_feat_why_unknown,
 * may be "") to notes[size] ("; " between remarks; cut when full; notes
 * NULL: nothing). featurize.c. */
void cb_feat_note_append(char *notes, size_t size, const char *col, const char *v, size_t len, const char *why);
/* Why a value of a column is unknown, when the fit cut the column to its
 * `cap` most frequent values (n_kept == cap, cap of max_cat_levels /
 * max_multi_levels): ": not among the N most frequent values the model
 * kept" into buf; else "" (every value seen in training was kept). */
const char *cb_feat_why_unknown(uint32_t n_kept, uint32_t cap, char *buf, size_t size);

/* ---- Helpers of featurize.c used when loading (features_json.c). */
void cb_feat_free_strv(char **v, uint32_t n);
uint32_t cb_feat_block_width(const cb_features *f, const fblock *b);
fblock *cb_feat_side_add(fside *s, int type, const char *col, cb_error *err);
int cb_feat_block_build_vocab(fblock *b, cb_error *err);
int cb_feat_side_finish(cb_features *f, fside *s, bool is_user, cb_error *err);
int cb_feat_build_top_pos(cb_features *f, cb_error *err);
int cb_feat_build_genre_vocab(cb_features *f, cb_error *err);
bool cb_feat_block_has_column(int type);

#endif /* CB_FEATURES_INTERNAL_H */
