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
 * Threading: handles are not internally locked. A loaded model (cb_model) and
 * a similar-items table are read-only after loading and may be shared by any
 * number of threads for prediction, embedding and recommendation; each thread
 * passes its own cb_error. Training, dataset loading and any call that
 * modifies a handle need exclusive access to it.
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


/* ---- Recommending from a trained model (api.c over the recommend module).
 *
 * cb_recommender is a loaded model file (made by `cbrec train`), optionally
 * with a similar-items table (`cbrec precompute`). After cb_recommender_load
 * it is read-only: any number of threads may call the functions below on one
 * cb_recommender at once, each with its own cb_error and results. Only
 * cb_recommender_free needs exclusive access. Items and users are named by
 * the string ids of the training data. */
typedef struct cb_recommender cb_recommender;

/* Load `model_path`; `table_path` may be NULL (exact search then). A table
 * built from another model is refused (CB_EFORMAT). On success *out owns a
 * new handle (free with cb_recommender_free); on failure *out is NULL. */
CB_API int cb_recommender_load(cb_recommender **out, const char *model_path, const char *table_path, cb_error *err);
CB_API void cb_recommender_free(cb_recommender *rec); /* NULL is a no-op */

/* Width of the user and item vectors, and the number of items. */
CB_API size_t cb_recommender_dim(const cb_recommender *rec);
CB_API size_t cb_recommender_n_items(const cb_recommender *rec);

/* The user vector v_u (dim floats, caller-allocated) of a known user
 * (CB_ENOTFOUND if unknown), or of a new user described by JSON such as
 * {"genre_ratings": {"Adventure": 5}, "ratings": {"260": 5}, "age": 25}
 * (CB_EPARSE with line and column if malformed). */
CB_API int cb_recommender_user_vector(const cb_recommender *rec, const char *user_id, float *out, cb_error *err);
CB_API int cb_recommender_new_user_vector(const cb_recommender *rec, const char *user_json, float *out,
                                          cb_error *err);

/* One recommended or similar item. Strings are owned by the list. */
typedef struct cb_recommendation {
    const char *item;     /* item id */
    const char *title;    /* "" when the data has none */
    float score;          /* recommend: predicted rating (or probability); similar: squared distance */
    const char *const *reasons; /* recommend: why it was retrieved, then the ranking criterion */
    size_t n_reasons;     /* similar: 0 */
    const char *const *sources; /* source names: "similar", "genre", "group", "popular", "embedding" */
    size_t n_sources;
} cb_recommendation;

typedef struct cb_recommendation_list {
    cb_recommendation *items;
    size_t n;
    const char *const *notes; /* remarks: k or n clamped, cold-start fallback, ... */
    size_t n_notes;
} cb_recommendation_list;

/* The k items nearest to `item` (an id) by squared distance of the item
 * vectors, itself excluded; k larger than the catalog is clamped (a note
 * says so). On success *out is a new list (cb_recommendation_list_free). */
CB_API int cb_recommender_similar(const cb_recommender *rec, const char *item, size_t k,
                                  cb_recommendation_list **out, cb_error *err);

/* The top n items for a known user (user_id) or a new user (user_json; pass
 * exactly one, the other NULL), with the default retrieval sources, ranked
 * by predicted rating, each with its reasons. Items the user rated are never
 * returned. A known user without training ratings takes the cold-start path
 * (a note says so). On success *out is a new list. */
CB_API int cb_recommender_recommend(const cb_recommender *rec, const char *user_id, const char *user_json, size_t n,
                                    cb_recommendation_list **out, cb_error *err);

CB_API void cb_recommendation_list_free(cb_recommendation_list *list); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif
#endif /* CBREC_H */
