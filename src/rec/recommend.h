/* recommend — turns a loaded model (model/bundle.h) into recommendations:
 * similar items, retrieval from several candidate sources, filtering,
 * ranking by the model's prediction, optional diversity re-ranking, and a
 * plain-language reason for every recommended item. Also cold start: a new
 * user described by a small JSON document (attributes, genre preferences,
 * a few ratings) and a new item inserted into the similar-items table
 * without retraining.
 *
 * Pipeline of cb_recommend():
 *   sources   (1) "similar":   for the user's last N liked ratings (time order)
 *                              their M nearest items (table lookup or exact);
 *             (2) "genre":     the precomputed best items of the user's top genres;
 *             (3) "group"/"popular": the most rated items among users sharing a
 *                              categorical attribute (region by default), else
 *                              overall popularity;
 *             (4) "embedding": the top items by v_u . v_m over the whole catalog.
 *   filter    dedupe; drop items the user rated and blocked items / genres.
 *   rank      v_u computed once; score = model prediction from v_u . v_m (the
 *             rating scale, or a probability for 0/1 labels); ties to the
 *             lower item index; top n.
 *   diversify optional MMR re-rank or per-genre cap.
 *   explain   every item lists the sources that retrieved it and the criterion.
 * The result is a pure function of the model, table, profile and config.
 *
 * Threading: a cb_recommend_ctx is read-only after creation; any number of
 * threads may call cb_recommend / cb_recommend_similar on one context, each
 * with its own profile, result and cb_error. */
#ifndef CB_RECOMMEND_H
#define CB_RECOMMEND_H

#include "index/knn.h"
#include "model/bundle.h"

#include <jansson.h>

#define CB_RECOMMEND_TABLE_FORMAT "cbrec-similar" /* tables carrying added items */
#define CB_RECOMMEND_TABLE_VERSION 1

/* ---- similar-items table with added (cold-start) items.
 * Rows 0..r->n_items-1 are the model's items; rows r->n_items.. are items
 * added later, whose ids, titles and vectors the table carries. */
typedef struct cb_recommend_table {
    cb_knn_table knn;      /* n_items = model items + n_extra */
    uint32_t n_model_items;
    uint32_t dim;
    uint32_t n_extra;
    float *extra_vecs;     /* [n_extra x dim] */
    char **extra_ids;      /* [n_extra] */
    char **extra_titles;   /* [n_extra], entries may be NULL */
} cb_recommend_table;

/* The whole-catalog table (k nearest by squared distance, self excluded).
 * k is clamped to n_items - 1 (*clamped set when it was; may be NULL). */
int cb_recommend_table_build(cb_recommend_table *t, const cb_bundle *r, size_t k, int threads, bool *clamped,
                             cb_error *err);
/* Save atomically: format "cbrec-knn-table" (knn.h) when there are no added
 * items, else "cbrec-similar" (the same tensors plus "extra.vectors" and
 * metadata "extra_items"). Both carry the model's fingerprint. */
int cb_recommend_table_save(const cb_recommend_table *t, const char *path, const char *fingerprint, cb_error *err);
/* Load either format; refuses (CB_EFORMAT) a table made from another model
 * (fingerprint), or whose size does not match the model. */
int cb_recommend_table_load(cb_recommend_table *t, const cb_bundle *r, const char *path, cb_error *err);
/* Insert a new item with vector vec[dim]; its id must be new (CB_EINVAL). */
int cb_recommend_table_add(cb_recommend_table *t, const cb_bundle *r, const char *id, const char *title,
                           const float *vec, cb_error *err);
void cb_recommend_table_free(cb_recommend_table *t); /* zeroes; NULL is a no-op */

/* Embed a new item described by JSON: {"id": "x1", "title": "T (2024)",
 * "year": 2024, "genres": ["Adventure", ...], "rating_count": 0,
 * "rating_mean": 4.1, <other item columns>: value}. Only "id" is required.
 * Writes vec[dim]; *id and *title (title may be NULL) are malloc'd for the caller. */
int cb_recommend_embed_item(const cb_bundle *r, const json_t *j, const char *source, float *vec, char **id,
                            char **title, cb_error *err);

/* ---- context: a model, an exact-search index over its item vectors, and an
 * optional table (both borrowed: they must outlive the context). */
typedef struct cb_recommend_ctx cb_recommend_ctx;
int cb_recommend_ctx_create(cb_recommend_ctx **out, const cb_bundle *r, const cb_recommend_table *table,
                            cb_error *err);
void cb_recommend_ctx_free(cb_recommend_ctx *ctx); /* NULL is a no-op */
const cb_bundle *cb_recommend_ctx_rec(const cb_recommend_ctx *ctx);
/* Items known to the context (model items + the table's added items). */
uint32_t cb_recommend_n_items(const cb_recommend_ctx *ctx);
const char *cb_recommend_item_id(const cb_recommend_ctx *ctx, uint32_t item);
const char *cb_recommend_item_title(const cb_recommend_ctx *ctx, uint32_t item); /* "" when none */

/* The index of the item with this id (model items, then the table's added
 * ones); false when there is none. */
bool cb_recommend_item_index(const cb_recommend_ctx *ctx, const char *id, uint32_t *item);

/* Resolve an item given by id, else by title (case-insensitive): an exact
 * title, the title without its "(year)", "The X" for "X, The", or a unique
 * substring match wins. Otherwise CB_ENOTFOUND with up to max_cands
 * candidates (most rated first) in cands[*n_cands] (0 = nothing matched). */
int cb_recommend_find_item(const cb_recommend_ctx *ctx, const char *query, uint32_t *item, uint32_t *cands,
                           size_t max_cands, size_t *n_cands, cb_error *err);

typedef struct cb_neighbor {
    uint32_t item;
    float distance; /* squared distance ||v_i - v_j||^2 */
} cb_neighbor;

/* The k nearest items of `item` (itself excluded), ascending distance, ties
 * to the lower index: a table lookup when the context has a table with at
 * least k columns, an exact search otherwise (the same answer). k is clamped
 * to the catalog (*n_out < k then). out has room for k entries. `note`
 * (may be NULL, note_size bytes) receives a message when k was clamped or
 * the table could not serve the query. */
int cb_recommend_similar(const cb_recommend_ctx *ctx, uint32_t item, size_t k, cb_neighbor *out, size_t *n_out,
                         char *note, size_t note_size, cb_error *err);

/* ---- who we recommend for */
typedef struct cb_profile {
    int64_t user;            /* known user's index, or -1 for a new user */
    float *vec;              /* [dim] v_u */
    uint32_t *items;         /* rated items, oldest first */
    float *ys;               /* their ratings */
    size_t n_ratings;
    uint32_t *pref_genres;   /* explicit genre preferences (new users) */
    float *pref_ys;
    size_t n_prefs;
    int32_t *group_level;    /* [r->n_groups] level per categorical attribute, -1 unknown */
    bool cold;               /* no ratings: the cold-start path */
    char note[256];          /* e.g. why the cold-start path was taken; "" otherwise */
} cb_profile;

/* A known user (by dense index). A user without training ratings takes the
 * cold-start path (its vector comes from its attributes alone) and p->note says so. */
int cb_recommend_profile_user(cb_profile *p, const cb_bundle *r, uint32_t user, cb_error *err);
/* A new user from JSON: {"genre_ratings": {"Adventure": 5}, "ratings":
 * {"<item id>": 4.5}, <user column>: value, ...} — all parts optional.
 * Featurised with cb_features_new_user, embedded by the user tower.
 * `source` names the input in messages. */
int cb_recommend_profile_json(cb_profile *p, const cb_bundle *r, const json_t *j, const char *source, cb_error *err);
/* The same from a JSON file or string; parse errors name source:line:column. */
int cb_recommend_profile_file(cb_profile *p, const cb_bundle *r, const char *path, cb_error *err);
int cb_recommend_profile_string(cb_profile *p, const cb_bundle *r, const char *text, cb_error *err);
void cb_recommend_profile_free(cb_profile *p); /* zeroes; NULL is a no-op */

/* ---- block list: items and whole genres never to recommend. */
typedef struct cb_blocklist {
    uint64_t *items;         /* bitmap over model items, genres already expanded */
    uint32_t n_items;
    size_t n_blocked_items, n_blocked_genres;
} cb_blocklist;
/* Lines "item ID", "genre NAME" or a plain item id; '#' comments and blank
 * lines are ignored. Unknown ids / genres are errors naming path:line. */
int cb_recommend_block_load(cb_blocklist *bl, const cb_bundle *r, const char *path, cb_error *err);
void cb_recommend_block_free(cb_blocklist *bl);

/* ---- recommend */
typedef enum cb_source {
    CB_SRC_SIMILAR = 0,
    CB_SRC_GENRE = 1,
    CB_SRC_GROUP = 2,
    CB_SRC_POPULAR = 3,
    CB_SRC_EMBEDDING = 4,
    CB_SRC_COUNT = 5
} cb_source;
const char *cb_recommend_source_name(cb_source s); /* "similar", "genre", ... */

typedef enum cb_diversity { CB_DIV_NONE = 0, CB_DIV_MMR = 1, CB_DIV_GENRE_CAP = 2 } cb_diversity;

typedef struct cb_recommend_config {
    uint32_t n;                 /* items to return (10) */
    uint32_t recent_items;      /* (1) last N rated items used as anchors (10); 0 = source off */
    uint32_t similar_per_item;  /*     M nearest per anchor (10) */
    bool anchors_all;           /*     false: only anchors rated >= the user's mean rating */
    uint32_t top_genres;        /* (2) the user's top genres (3, at most 32); 0 = off */
    uint32_t per_genre;         /*     items per genre (10, at most CB_BUNDLE_TOP_LIST) */
    uint32_t min_genre_ratings; /*     ratings needed in a genre to rank it (3) */
    uint32_t group_items;       /* (3) items from the user's group (20); 0 = off */
    const char *group_by;       /*     attribute column; NULL: region when present, else popularity */
    uint32_t embedding_items;   /* (4) top by v_u . v_m (50); 0 = off */
    cb_diversity diversity;
    float mmr_lambda;           /* relevance weight of MMR in [0, 1] (0.7) */
    uint32_t genre_cap;         /* at most this many items per genre (2) */
    int threads;                /* exact searches (1); never changes the result */
} cb_recommend_config;
void cb_recommend_config_default(cb_recommend_config *c);
const char *cb_recommend_config_check(const cb_recommend_config *c); /* NULL or a message */

typedef struct cb_recommend_item {
    uint32_t item;
    float score;        /* predicted rating (or probability): the ranking criterion */
    float dot;          /* v_u . v_m */
    unsigned sources;   /* bit (1u << cb_source) per source that retrieved it */
    char **reasons;     /* n_reasons strings: the sources' reasons, then the criterion */
    size_t n_reasons;
} cb_recommend_item;

typedef struct cb_recommend_result {
    cb_recommend_item *items;
    size_t n;
    size_t n_candidates;  /* distinct candidates after filtering */
    char **notes;         /* remarks for the caller: clamped n, cold start, fallbacks */
    size_t n_notes;
} cb_recommend_result;

/* Recommend for profile p. `bl` may be NULL. On success res owns its
 * strings (cb_recommend_result_free); on failure res is empty. */
int cb_recommend(const cb_recommend_ctx *ctx, const cb_profile *p, const cb_recommend_config *cfg,
                 const cb_blocklist *bl, cb_recommend_result *res, cb_error *err);
void cb_recommend_result_free(cb_recommend_result *res); /* zeroes; NULL is a no-op */

#endif /* CB_RECOMMEND_H */
