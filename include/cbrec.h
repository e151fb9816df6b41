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
#define CB_VERSION_MINOR 1
#define CB_VERSION_PATCH 0
#define CB_VERSION_STRING "0.1.0"

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


/* Per-call settings (configuration section); declared here too until it lands. */
typedef struct cb_config cb_config;

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
CB_API int  cb_recommender_save(const cb_recommender *rec, const char *path, cb_error *err);  /* atomic [shared] */
CB_API void cb_recommender_free(cb_recommender *rec);
/* A JSON document describing the model: dataset, fingerprint, counts, vector
 * width, rating scale, whether it predicts ratings, the table (malloc'd, caller frees). */
CB_API int cb_recommender_describe(const cb_recommender *rec, char **json_out, cb_error *err);

/* Items and users are numbered 0..count-1; ids are the data's string ids [shared]. */
CB_API size_t cb_recommender_dim(const cb_recommender *rec);
CB_API size_t cb_recommender_item_count(const cb_recommender *rec);  /* model items + added items */
CB_API size_t cb_recommender_user_count(const cb_recommender *rec);
CB_API const char *cb_recommender_item_id(const cb_recommender *rec, size_t item);     /* NULL out of range */
CB_API const char *cb_recommender_item_title(const cb_recommender *rec, size_t item);  /* "" when none */
CB_API const char *cb_recommender_user_id(const cb_recommender *rec, size_t user);     /* NULL out of range */
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
 * (item_vectors.npy, user_vectors.npy, item_ids.txt, user_ids.txt) or "st"
 * (embeddings.safetensors) [shared]. */
CB_API int cb_recommender_export_vectors(const cb_recommender *rec, const char *dir, const char *format, cb_error *err);
/* The model's prediction for a known user and a model item: the rating (or the
 * probability for 0/1 labels) [shared]. */
CB_API int cb_recommender_predict(const cb_recommender *rec, const char *user_id, const char *item_id, float *rating,
                                  cb_error *err);

/* Similar-items table: build for the whole catalog (k nearest per item; k is
 * clamped to the catalog), save, load, add an item. */
CB_API int cb_recommender_build_table(cb_recommender *rec, size_t k, int threads, cb_error *err);   /* [exclusive] */
CB_API int cb_recommender_save_table(const cb_recommender *rec, const char *path, cb_error *err);  /* atomic */
CB_API int cb_recommender_load_table(cb_recommender *rec, const char *path, cb_error *err);         /* [exclusive] */
/* Neighbours per item in the table, 0 when there is none. */
CB_API size_t cb_recommender_table_k(const cb_recommender *rec);
/* Embed a new item from JSON ({"id": ..., "title": ..., "genres": [...], <item
 * column>: value}; only "id" is required) and add it to the catalog and the
 * table, which it needs (CB_EINVAL without one) [exclusive]. *item (may be NULL)
 * receives its number. */
CB_API int cb_recommender_add_item(cb_recommender *rec, const char *item_json, size_t *item, cb_error *err);

/* ---- results */
typedef struct cb_list cb_list;  /* a ranked list of items with scores and reasons */
CB_API void cb_list_free(cb_list *l);
CB_API size_t cb_list_size(const cb_list *l);
CB_API size_t cb_list_item(const cb_list *l, size_t i);          /* item number */
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
 * ("rating" is null when there is none). The CLI's --json prints exactly this. */
CB_API int cb_list_to_json(const cb_list *l, char **json_out, cb_error *err);

/* ---- recommending [shared] */
/* The k nearest items to `item` (itself excluded); k larger than the catalog is
 * clamped (a note says so). On success *out is a new list. */
CB_API int cb_recommender_similar(const cb_recommender *rec, size_t item, size_t k, cb_list **out, cb_error *err);
/* Top items for a known user (user_id) or a new user (user_json); exactly one non-NULL.
 * opts: kind RECOMMEND or NULL for defaults ("n", the sources "recent",
 * "similar-per-item", "top-genres", "per-genre", "group-items", "group-by",
 * "embedding", "include-seen", "exclude", "allow", "block-file", "diversity",
 * "genre-cap", "rank-by"). Items the user rated are not returned unless
 * include-seen. A known user without training ratings takes the cold-start path
 * (a note says so). On success *out is a new list. */
CB_API int cb_recommender_recommend(const cb_recommender *rec, const char *user_id, const char *user_json,
                                    const cb_config *opts, cb_list **out, cb_error *err);
/* Batch [shared]: top-n for many known users at once, ranked by the same score
 * over the whole catalog (blocked sgemm of user vectors against item vectors,
 * per-user filtering of rated items unless include-seen, the exclude/allow lists
 * and the block file; the retrieval sources and diversity are not used). items and
 * scores are caller-allocated [n_users x n], a row per user, item numbers (-1 and
 * -INFINITY padding when fewer). users == NULL means every user 0..n_users-1. */
CB_API int cb_recommender_recommend_batch(const cb_recommender *rec, const size_t *users, size_t n_users, size_t n,
                                          const cb_config *opts, int64_t *items, float *scores, cb_error *err);
/* One user's batch row as a JSON line (malloc'd; caller frees):
 * {"user": id, "criterion": ..., "items": [{"item": id, "score": s}, ...]}. */
CB_API int cb_recommender_batch_row_json(const cb_recommender *rec, size_t user, const int64_t *items,
                                         const float *scores, size_t n, const cb_config *opts, char **json_out,
                                         cb_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CBREC_H */
