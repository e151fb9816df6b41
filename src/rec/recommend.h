/* recommend — the internal interface of src/rec, the serving side: the
 * public cb_recommender (a loaded model, an optional similar-items table with
 * added items, an exact-search index), its similar-items table formats,
 * profiles of known and new users, per-call filters, the pipeline, diversity
 * and explanations. The files of src/rec, by concern:
 *   recommender.c  the public cb_recommender_* calls (load/save, getters, vectors, predict)
 *   table.c        the similar-items table (and the added items) and its file formats; similar items
 *   catalog.c      item ids, titles, search by title, new items from JSON
 *   profile.c      known and new users (JSON)
 *   filter.c       block list, exclude/allow lists, "already rated"
 *   options.c      the RECOMMEND keys of cb_config -> cb_recommend_config
 *   pipeline.c     sources -> filter -> rank (cb_recommend), THE ranking score
 *   diversity.c    MMR and the per-genre cap
 *   explain.c      reasons, the cb_list results and their JSON (written once, here)
 *   batch.c        many users at once: blocked sgemm, per-user filters, top-n
 *   ann.c          the approximate (HNSW) index: attach, search mode, dispatch
 *
 * Pipeline of cb_recommend():
 *   sources   (1) "similar":   for the user's last N liked ratings (time order)
 *                              their M nearest items (table lookup or exact);
 *             (2) "genre":     the precomputed best items of the user's top genres;
 *             (3) "group"/"popular": the most rated items among users sharing a
 *                              categorical attribute (region by default), else
 *                              overall popularity;
 *             (4) "embedding": the top items by v_u . v_m over the whole catalog,
 *                              items added after training included (merged
 *                              into the index's answer by their dot).
 *   filter    dedupe; drop items the user rated (unless include-seen), blocked,
 *             excluded or not allowed items.
 *   rank      v_u computed once; score = cb_rec_rank_score (the retrieval score
 *             by default) + w x the neighbour score of the user's history
 *             (model/neighbours.h); ties to the higher v_u . v_m, then the lower
 *             index; top n.
 *   diversify optional MMR re-rank or per-genre cap.
 *   explain   every item lists the sources that retrieved it and the criterion.
 * The result is a pure function of the model, table, profile and config.
 *
 * Threading: a cb_recommender is read-only after creation (except the calls
 * cbrec.h marks [exclusive]); any number of threads may call cb_recommend /
 * cb_recommend_similar on one, each with its own profile, result and cb_error. */
#ifndef CB_RECOMMEND_H
#define CB_RECOMMEND_H

#include "index/hnsw.h"
#include "model/bundle.h"
#include "cbrec.h"
#include "rec/recommender_internal.h"

#include <jansson.h>

#define CB_RECOMMEND_TABLE_FORMAT "cbrec-similar" /* tables carrying added items */
#define CB_RECOMMEND_TABLE_VERSION 1
#define CB_RECOMMEND_ADDED_FORMAT "cbrec-added-items" /* added items only, no neighbour lists */

/* ---- similar-items table with added (cold-start) items.
 * Items 0..r->n_items-1 are the model's items; items r->n_items.. are items
 * added later, whose ids, titles, genres and vectors this struct carries.
 * knn.neighbors is NULL when there is no neighbour table: the struct then
 * holds only the added items (a recommender without a table that had items
 * added; saved as CB_RECOMMEND_ADDED_FORMAT). */
typedef struct cb_recommend_table {
    cb_knn_table knn;      /* n_items = model items + n_extra (when built/loaded) */
    uint32_t n_model_items;
    uint32_t dim;
    uint32_t n_extra;
    float *extra_vecs;     /* [n_extra x dim] */
    char **extra_ids;      /* [n_extra] */
    char **extra_titles;   /* [n_extra], entries may be NULL */
    char **extra_genres;   /* [n_extra] genre names joined by '|', entries may be NULL */
    char **extra_content;  /* [n_extra] the other content columns' values (tags, brand): "column" US
                              "value" pairs joined by RS (CB_CONTENT_US, _RS), every value given that the
                              model knows, none holding US or RS; entries may be NULL */
} cb_recommend_table;

/* The separators of cb_recommend_table.extra_content: between a column and
 * its value, and between pairs (ASCII unit and record separators). They are
 * not escaped: add-item refuses a content column's value or name holding one
 * (CB_EINVAL naming the column), so every pair reads back whole. */
#define CB_CONTENT_US '\x1f'
#define CB_CONTENT_RS '\x1e'

/* A similar-items table needs 2 items at least: CB_OK, else CB_EINVAL saying
 * so (one message for every way a table is built: exact, approximate, ranks). */
int cb_recommend_table_check_items(const cb_bundle *r, cb_error *err);
/* The whole-catalog table (k nearest by squared distance, self excluded).
 * k is clamped to n_items - 1 (*clamped set when it was; may be NULL). */
int cb_recommend_table_build(cb_recommend_table *t, const cb_bundle *r, size_t k, int threads, bool *clamped,
                             cb_error *err);
/* Save atomically: format "cbrec-knn-table" (knn.h) when there are no added
 * items, else "cbrec-similar" (the same tensors plus "extra.vectors" and
 * metadata "extra_items": [[id, title|null, genres|null, content|null], ...];
 * files from before the content have three fields); without a
 * neighbour table, "cbrec-added-items" ("extra.vectors" and "extra_items"
 * only). All carry the model's fingerprint. */
int cb_recommend_table_save(const cb_recommend_table *t, const char *path, const char *fingerprint, cb_error *err);
/* Load any of the three formats; refuses (CB_EFORMAT) a table made from another model
 * (fingerprint), or whose size does not match the model. */
int cb_recommend_table_load(cb_recommend_table *t, const cb_bundle *r, const char *path, cb_error *err);
/* Insert a new item with vector vec[dim] (and into the neighbour lists when
 * t has them; a zeroed t becomes an added-items-only store); its id must be
 * new (CB_EINVAL). title, genres ('|'-joined names) and content (as
 * extra_content) may be NULL. */
int cb_recommend_table_add(cb_recommend_table *t, const cb_bundle *r, const char *id, const char *title,
                           const char *genres, const char *content, const float *vec, cb_error *err);
void cb_recommend_table_free(cb_recommend_table *t); /* zeroes; NULL is a no-op */

/* Embed a new item described by JSON: {"id": "x1", "title": "T (2024)",
 * "year": 2024, "genres": ["Adventure", ...], "rating_count": 0,
 * "rating_mean": 4.1, <other item columns>: value}. Only "id" is required.
 * Writes vec[dim]; *id and *title (title may be NULL) are malloc'd for the caller.
 * Values of content columns the model does not know: a remark in notes
 * (notes_size bytes, may be NULL), or an error when the JSON says "strict": true. */
int cb_recommend_embed_item(const cb_bundle *r, const json_t *j, const char *source, float *vec, char **id,
                            char **title, char *notes, size_t notes_size, cb_error *err);

/* ---- the recommender (the public cb_recommender of include/cbrec.h): one
 * handle owning (or borrowing) the model, the optional similar-items table
 * (which also carries items added later) and the exact-search index over the
 * model's item vectors. Read-only after creation except for the [exclusive]
 * calls of cbrec.h (build/load table, add item, free). */
typedef struct cb_blocklist cb_blocklist; /* below, with the filters */
struct cb_recommender {
    const cb_bundle *r;      /* the model */
    cb_bundle *owned;        /* == r when the recommender frees it, else NULL */
    cb_recommend_table table; /* neighbour lists (has_table) and the added items (table.n_extra, always) */
    bool has_table;
    cb_knn_index *index;     /* over r->item_vecs */
    float added_bias;        /* the ranking bias of added items (cb_rec_rank_prepare) */
    cb_hnsw *ann;            /* approximate index over r->item_vecs, or NULL (ann.c) */
    cb_hnsw *rank_ann;       /* its second graph, over rank_vecs, or NULL (an older index file; ann.c) */
    float *rank_vecs;        /* [n_items x (rank part + 1)]: the ranking vectors rank_ann borrows, owned */
    cb_search_mode search_mode;
    size_t ann_ef;           /* 0 = hnsw's default */
    char add_note[512];      /* remarks of the last cb_recommender_add_item ("" when none) */
    cb_blocklist *block;     /* never recommended nor shown as similar (cb_recommender_set_block_file), or NULL */
    char *block_path;        /* its file, read again when a table changes the catalog */
};

/* ---- ann.c: the one dispatch of catalog searches over the model's items:
 * the approximate index when the search mode says so (cb_rec_ann != NULL),
 * else the exact index; same contract as cb_knn_index_search. */
const cb_hnsw *cb_rec_ann(const cb_recommender *rec);
/* Both graphs and the ranking vectors freed (the model's vectors changed). */
void cb_rec_ann_drop(cb_recommender *rec);
int cb_rec_search(const cb_recommender *rec, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                  const cb_knn_params *p, int32_t *out_idx, float *out_score, cb_error *err);
/* The similar-items table from the approximate index (k clamped like
 * cb_recommend_table_build). */
int cb_rec_ann_table(cb_recommend_table *t, const cb_recommender *rec, size_t k, int threads, cb_error *err);
/* A recommender borrowing a model (it must outlive the handle; evaluation).
 * cb_recommender_from_bundle (recommender_internal.h) takes ownership instead. */
int cb_recommender_wrap(cb_recommender **out, const cb_bundle *r, cb_error *err);

/* Item n's vector: model items, then the added items. */
const float *cb_rec_item_vec(const cb_recommender *rec, uint32_t item);
/* True for an item added after training (item >= the model's n_items). */
static inline bool cb_rec_is_added(const cb_recommender *rec, uint32_t item) { return item >= rec->r->n_items; }
/* The index of the item with this id (model items, then added ones). */
bool cb_rec_item_index(const cb_recommender *rec, const char *id, uint32_t *item);
/* For the message of an unknown user (users) or item id `query`: "; the id
 * ' x' differs by outer blanks (...)" in buf when an id equals it but for
 * one outer blank a side (a file's "alice, x, 5" made the id " x": ids keep
 * their file's blanks), else "". Returns buf. */
const char *cb_rec_blank_hint(const cb_recommender *rec, bool users, const char *query, char *buf, size_t size);
/* Call fn(ctx, g) for each content value g of an item (model items, then
 * added ones): the model's value indices of the genre column and of every
 * other content column (tags, a brand); an added item's values the model
 * does not know are left out. */
typedef void (*cb_value_fn)(void *ctx, uint32_t g);
void cb_rec_item_values_each(const cb_recommender *rec, size_t item, cb_value_fn fn, void *ctx);

/* Attribute values from JSON (string, number, or list of strings joined with
 * '|'); *joined receives an allocation to free (or NULL). */
int cb_rec_json_attr(cb_attr_value *a, const char *key, json_t *v, char **joined, const char *source, cb_error *err);
/* Re-prefix a library message with the input's name. */
int cb_rec_with_source(int rc, const char *source, cb_error *err);

typedef struct cb_neighbor {
    uint32_t item;
    float distance; /* squared distance ||v_i - v_j||^2 */
} cb_neighbor;

/* The k nearest items of `item` (itself excluded), ascending distance, ties
 * to the lower index: a table lookup when the recommender has a table with at
 * least k columns, an exact search otherwise (the same answer). k is clamped
 * to the catalog (*n_out < k then). out has room for k entries. `note`
 * (may be NULL, note_size bytes) receives a message when k was clamped or
 * the table could not serve the query. */
int cb_recommend_similar(const cb_recommender *rec, uint32_t item, size_t k, cb_neighbor *out, size_t *n_out,
                         char *note, size_t note_size, cb_error *err);
/* Neighbours of nq items: out_idx / out_dist [nq x k], -1 padded (pipeline). */
int cb_rec_neighbors_of(const cb_recommender *rec, const uint32_t *items, size_t nq, size_t k, int threads,
                        int32_t *out_idx, float *out_dist, bool *used_table, cb_error *err);

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
/* A known user (user_id) plus the ratings and attributes of user_json (live
 * events: its "ratings" override and extend the training ones), or, when the
 * model does not know user_id, a new user from user_json with a note (live.c). */
int cb_rec_profile_live(cb_profile *p, const cb_recommender *h, const char *user_id, const char *user_json,
                        cb_error *err);
void cb_recommend_profile_free(cb_profile *p); /* zeroes; NULL is a no-op */

/* ---- filters (filter.c): items never to recommend for one call. */
typedef struct cb_blocklist {
    uint64_t *items;         /* bitmap over the recommender's items (model + added), values already expanded */
    uint32_t n_items;
    size_t n_cap;            /* items the bitmap has room for (cb_recommend_block_reserve) */
    bool stale;              /* the catalog changed and the file could not be read again */
    bool *flagged;           /* the blocked content values, by the model's value index */
    size_t n_blocked_items, n_blocked_values;
    size_t n_blocked;        /* bits set in items: the ids and the items having a blocked value */
} cb_blocklist;
/* Lines "item ID", "genre NAME" (the genre column), "COLUMN VALUE" (any
 * content column the model knows: "tags violent", "brand Acme") or a plain
 * item id (a plain line that is an item id is that item); '#' comments and
 * blank lines are ignored. Unknown ids and values, and a value the model did
 * not keep by name, are errors naming path:line. Ids of added items are
 * known; a blocked value also blocks the added items that declared it. The
 * list is valid until the next item is added. */
int cb_recommend_block_load(cb_blocklist *bl, const cb_recommender *rec, const char *path, cb_error *err);
/* Room for n_items (may fail: before an item is added), then the list
 * grown to the recommender's items once they are (cannot fail): an added
 * item having a blocked value is blocked. */
int cb_recommend_block_reserve(cb_blocklist *bl, size_t n_items, cb_error *err);
void cb_recommend_block_extend(cb_blocklist *bl, const cb_recommender *rec);
/* CB_OK, or an error when the recommender's block list does not match its
 * catalog (a table changed it and the file could not be read again): every
 * call is refused then, never a blocked item shown. */
int cb_rec_block_check(const cb_recommender *rec, cb_error *err);
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
/* What ranks the candidates (options.c "rank-by"): AUTO = the model's ranking
 * criterion (today the predicted rating), RATING = the predicted rating (or
 * probability for 0/1 labels), DOT = the raw score v_u . v_m. */
typedef enum cb_rank_by { CB_RANK_AUTO = 0, CB_RANK_RATING = 1, CB_RANK_DOT = 2 } cb_rank_by;

typedef struct cb_recommend_config {
    uint32_t n;                 /* items to return (10) */
    uint32_t recent_items;      /* (1) last N rated items used as anchors (10); 0 = source off */
    uint32_t similar_per_item;  /*     M nearest per anchor (10) */
    bool anchors_all;           /*     false: only anchors rated >= the user's mean rating */
    uint32_t top_genres;        /* (2) the user's top genres (3, at most 32); 0 = off */
    uint32_t per_genre;         /*     items per genre (10, at most CB_BUNDLE_TOP_LIST) */
    uint32_t min_genre_ratings; /*     ratings needed in a genre to rank it (3) */
    uint32_t group_items;       /* (3) items from the user's group (20); 0 = off */
    const char *group_by;       /*     attribute column; NULL: region, else country, else location, when present; else popularity */
    uint32_t embedding_items;   /* (4) top by v_u . v_m (50); 0 = off */
    cb_diversity diversity;
    float mmr_lambda;           /* relevance weight of MMR in [0, 1] (0.7) */
    uint32_t genre_cap;         /* at most this many items per genre (2) */
    int threads;                /* exact searches (1); never changes the result */
    bool include_seen;          /* keep items the user rated (false) */
    const char *exclude;        /* comma-separated item ids never returned (NULL) */
    const char *allow;          /* comma-separated item ids: only these may be returned (NULL = all) */
    const char *block_file;     /* a block list file (NULL) */
    cb_rank_by rank_by;
    bool neighbours;            /* add the model's neighbour component to the ranking (true) */
    uint32_t neighbour_budget;  /* ... reading at most about this many neighbour weights (cb_rec_neighbour_k; 0: all) */
} cb_recommend_config;
void cb_recommend_config_default(cb_recommend_config *c);
const char *cb_recommend_config_check(const cb_recommend_config *c); /* NULL or a message */
/* The same for a cb_config of kind RECOMMEND (NULL for another kind), which
 * also knows which keys were given: an mmr-lambda given without diversity mmr
 * is refused even at its default. NULL or a message. */
const char *cb_recommend_options_check(const cb_config *opts);
/* The config of a kind RECOMMEND cb_config (NULL: defaults), options.c; the
 * strings point into opts. */
int cb_recommend_config_from(cb_recommend_config *c, const cb_config *opts, cb_error *err);
extern const struct cb_config_table cb_recommend_config_table; /* the RECOMMEND keys (options.c) */

/* The per-call exclusion bitmap over all items, model and added (filter.c): the block list
 * (cfg->block_file, or `bl`), cfg->exclude, items outside cfg->allow, and the
 * profile's rated items unless cfg->include_seen. Caller frees *out. */
int cb_recommend_exclusions(const cb_recommender *rec, const cb_recommend_config *cfg, const cb_blocklist *bl,
                            const uint32_t *rated, size_t n_rated, uint64_t **out, cb_error *err);
static inline void cb_bit_set(uint64_t *b, size_t i) { b[i >> 6] |= 1ULL << (i & 63); }
static inline bool cb_bit_get(const uint64_t *b, size_t i) { return (b[i >> 6] >> (i & 63)) & 1; }
/* Is item blocked for every call (cb_recommender_set_block_file)? */
static inline bool cb_rec_blocked(const cb_recommender *rec, uint32_t item) {
    return rec->block && !rec->block->stale && item < rec->block->n_items && cb_bit_get(rec->block->items, item);
}

/* THE ranking score (pipeline.c): every list cbrec ranks, single or batch,
 * orders items by this value (ties: higher dot, then lower item), plus the
 * neighbour term of the user's history where cb_rec_neighbours_on. `dot` is
 * v_u . v_m of the item. */
float cb_rec_rank_score(const cb_recommender *rec, cb_rank_by by, float dot, uint32_t item);
/* (ann.c) The graph over the ranking vectors (item i's [v_i on the rank part,
 * bias_i / a], the query's [q on that part, 1]: their dot is (score_i - c0)
 * / a, monotone in the retrieval score without the neighbour addition) when
 * the search mode is approximate and the criterion `by` is that score (or
 * the rank part's plain dot of a model without a prior); else NULL. */
const cb_hnsw *cb_rec_rank_ann(const cb_recommender *rec, cb_rank_by by);
/* The retrieval score's affine map (cb_bundle_rank_of_dot): score = a·dot + c0 + bias. */
void cb_rec_rank_affine(const cb_bundle *r, float *a, float *c0);
/* The same score for a whole row of dots, row[j] = the dot of item j (model
 * items, then added ones), in place: the batch's and the full scan's loop.
 * With nb_raw (a cb_rec_neighbour_row and its divisor nb_max; NULL: none) the
 * neighbour term is added to the model items in the same pass, exactly as
 * cb_neighbours_blend would add it after. */
void cb_rec_rank_row(const cb_recommender *rec, cb_rank_by by, float *row, size_t n, const float *nb_raw, float nb_max);
/* CB_EINVAL when the model cannot rank by `by` (rating without a rating head). */
int cb_rec_rank_check(const cb_recommender *rec, cb_rank_by by, cb_error *err);
/* q[dim] = user_vec on the part of the vectors the criterion ranks by, zero
 * elsewhere (models with split heads rank with one half and predict the
 * rating with the other): every full-width dot with q is that part's dot. */
void cb_rec_query(const cb_recommender *rec, cb_rank_by by, const float *user_vec, float *q);
/* That part: q is zero outside [*off, *off + *len). */
void cb_rec_query_part(const cb_recommender *rec, cb_rank_by by, uint32_t *off, uint32_t *len);
/* The rank of a location-like user column (region 0, country 1, location 2,
 * any case): the default group of the group source; -1 for other names. */
int cb_rec_location_rank(const char *column);
/* The predicted rating (the rating head's part) of an item, NAN when the model has none. */
float cb_rec_rating(const cb_recommender *rec, const float *user_vec, uint32_t item);
/* The n best of row[0..ni) (-INFINITY and NaN never picked), best first, into
 * items/scores; -1 / -INFINITY padding (batch.c). */
void cb_rec_top_n(const float *row, size_t ni, size_t n, int64_t *items, float *scores);
/* The per-item ranking bias an added item gets (it has no training
 * interactions, so the model learned none for it): the MEAN of the catalog's
 * biases `bias[n]`; 0 when the model has none (bias NULL). */
float cb_rec_added_item_bias(const float *bias, uint32_t n);
/* Cache what the ranking score needs of the model (rec->added_bias); called
 * whenever the recommender gets or changes its model. */
void cb_rec_rank_prepare(cb_recommender *rec);
/* True when that score is a non-decreasing function of dot alone (the same
 * for every item): ranking by (dot, lower item) is then the same ranking, which
 * the batch uses to skip scoring every item. */
bool cb_rec_rank_monotone(const cb_recommender *rec, cb_rank_by by);
/* The neighbour component applies to this call: the model has one with a
 * weight > 0, the call ranks by the model's retrieval score (rank-by auto)
 * and cfg->neighbours is on. Its score is then added to every item's
 * ranking score (pipeline.c, batch.c), so no shortcut on the dot applies. */
bool cb_rec_neighbours_on(const cb_recommender *rec, const cb_recommend_config *cfg);
/* How many neighbours of each history item the term reads for a history of
 * n_hist items and lists of list_k: all (0) while n_hist x list_k stays
 * within the budget (cfg->neighbour_budget; 0: no budget), else the
 * budget / n_hist most similar of each (at least CB_REC_NEIGHBOUR_K_MIN;
 * 0 again when that is the whole list): the cost of a call is bounded by the
 * budget, not by the history's length. */
#define CB_REC_NEIGHBOUR_K_MIN 10u
uint32_t cb_rec_neighbour_k(uint32_t list_k, uint32_t budget, size_t n_hist);
/* The neighbour term of a history for every model item, reading k
 * neighbours of each history item (cb_rec_neighbour_k): raw[n_items] and its
 * divisor (model/neighbours.h; 0: nothing scored); the term of item i is
 * w * raw[i] / divisor. */
float cb_rec_neighbour_row(const cb_recommender *rec, const uint32_t *hist, size_t n_hist, uint32_t k, float *raw);
/* The name of that criterion ("predicted rating", ...), for lists and JSON. */
const char *cb_rec_criterion(const cb_recommender *rec, cb_rank_by by);
/* What the rating half predicts: "predicted rating", "predicted probability"
 * (0/1 labels) or "predicted weight" (weighted events: a summed weight). */
const char *cb_rec_prediction_name(const cb_bundle *r);

/* ---- results (explain.c): the public cb_list. */
/* Serialise doc (consumed; NULL means out of memory) into *json_out (malloc'd). */
int cb_rec_json_dump(json_t *doc, char **json_out, cb_error *err);
typedef struct cb_list_entry {
    uint32_t item;
    char *id, *title;   /* copies */
    float score;        /* the ranking criterion (recommend) or cosine similarity (similar) */
    float rating;       /* predicted rating, NAN when the model has none */
    float dot;          /* v_u . v_m */
    unsigned sources;   /* bit (1u << cb_source) per source that retrieved it */
    char **reasons;     /* n_reasons strings: the sources' reasons, then the criterion */
    size_t n_reasons;
    bool added;         /* an item added after training (JSON "new": true) */
} cb_list_entry;

struct cb_list {
    cb_list_entry *items;
    size_t n;
    size_t n_candidates;   /* distinct candidates after filtering */
    char **notes;          /* remarks for the caller: clamped n, cold start, fallbacks */
    size_t n_notes;
    const char *criterion; /* static string */
};
typedef struct cb_list cb_recommend_result;
void cb_recommend_result_free(cb_recommend_result *res); /* frees the contents, zeroes; NULL is a no-op */
/* Append a formatted note / reason. */
int cb_rec_push_str(char ***list, size_t *n, cb_error *err, const char *fmt, ...) CB_PRINTF(4, 5);
/* v as a reason prints it with `digits` decimals: a value that rounds to
 * zero is 0 (a towers' part of -0.0001 printed "towers -0.00", read as a
 * penalty); others, NaN included, as they are. */
double cb_rec_shown(double v, int digits);
void cb_rec_free_strs(char **list, size_t n);
/* Entry i's id and title copied from the recommender. */
int cb_rec_entry_names(cb_list_entry *e, const cb_recommender *rec, cb_error *err);

/* Recommend for profile p. `bl` may be NULL (cfg->block_file is read then).
 * On success res owns its strings (cb_recommend_result_free); on failure res is empty. */
int cb_recommend(const cb_recommender *rec, const cb_profile *p, const cb_recommend_config *cfg,
                 const cb_blocklist *bl, cb_recommend_result *res, cb_error *err);

/* ---- pipeline internals shared by pipeline.c, diversity.c and explain.c */
typedef struct cb_rec_cand {
    uint32_t item;
    unsigned sources;
    int32_t anchor;        /* best anchor: highest rating, then most recent */
    uint32_t n_anchors;
    uint32_t genre_slots;  /* bit per top-genre slot */
    uint32_t emb_rank;
    float dist, dot, score;
    float neighbour;       /* the neighbour component's part of score (0 when off) */
    int32_t nb_anchor;     /* the history item (profile index) contributing most to it, -1: none or not asked */
} cb_rec_cand;
/* Pick n of the sorted candidates c[0..m) into sel; returns how many (diversity.c). */
size_t cb_rec_diversify(const cb_recommender *rec, const cb_recommend_config *cfg, const cb_rec_cand *c, size_t m,
                        size_t n, uint32_t *sel, cb_error *err, int *rc);
/* Cosine similarity of two vectors (0 when one is zero). */
float cb_rec_cosine(const float *a, const float *b, uint32_t d);
/* Whether c's reasons name the history item behind its neighbour score:
 * where the neighbours lifted it by at least a tenth of their weight (the
 * pipeline finds that item, c->nb_anchor, for those only). */
bool cb_rec_neighbour_reason_due(const cb_recommender *rec, const cb_rec_cand *c);
/* The reasons of one picked candidate into out (explain.c). */
int cb_rec_explain(const cb_recommender *rec, const cb_profile *p, const cb_recommend_config *cfg,
                   const cb_rec_cand *c, const uint32_t *genres, int group, cb_list_entry *out, cb_error *err);

#endif /* CB_RECOMMEND_H */
