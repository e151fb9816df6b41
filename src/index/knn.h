/* knn — exact nearest neighbours over row-major float matrices, and the
 * similar-items table built from them.
 *
 * A search takes queries Q [nq x d] and a base B [n x d] and returns, per
 * query, the k best base rows by inner product (maximum inner product
 * search) or by squared Euclidean distance. Batches run as blocked
 * cblas_sgemm (a query tile against a base tile) followed by a SIMD
 * threshold scan of the scores (most fail the test against the current k-th
 * best and are never touched again; the few that pass are inserted in order
 * into a small sorted per-query buffer, which raises the threshold at once);
 * fewer than
 * params.batch_min queries run a fused dot+scan loop over B instead, which
 * streams the matrix once. Memory is O(tile + nq * k), never O(nq * n).
 *
 * Exact and reproducible. BLAS rounds differently depending on a row's
 * position in a tile, so fast scores alone would make the answer depend on
 * tiling and thread count, and duplicate items would not tie. So the fast
 * pass keeps a few spare candidates -- and every row within the rounding
 * bound of the k-th best (near-ties; its buffers grow) -- and then the survivors are rescored with
 * the *canonical* score: computed in double in a fixed order,
 *     dot  = sum_t (double)q[t] * (double)b[t]
 *     dist = sum_t ((double)q[t] - (double)b[t])^2
 * and ranked by it, with ties going to the lower base index. A proven rounding
 * bound (|fast - exact| <= tol) shows that no row outside the candidates can
 * be in the true top k. When it cannot be shown (more than ~2,000 rows tied
 * at the k-th place), that query is recomputed canonically over all of B. The result is
 * therefore a pure function of the inputs: it does not depend on the thread
 * count, the tile sizes or the code path, it is bit-identical to
 * cb_knn_search_naive, and a lookup in a precomputed table returns exactly
 * what a fresh search would.
 *
 * Threads: the batch path holds OpenBLAS at one thread for the duration of
 * the call (openblas_set_num_threads is process-wide; the old value is
 * restored on return) and runs its own pthreads, each with its own scratch,
 * which measured faster than OpenBLAS's threads on these thin (k = d ~ 32)
 * products. The one-query path calls no BLAS and touches no global state.
 * A cb_knn_index and a cb_knn_table are read-only after creation and may be
 * shared by any number of threads; each call allocates its own scratch.
 * Caveat: two batch searches running at once in different threads race on
 * OpenBLAS's process-wide thread count (results are unaffected, but the
 * count may be left at 1); serialise batch calls, or use the one-query path. */
#ifndef CB_KNN_H
#define CB_KNN_H

#include "base/util.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cb_knn_metric {
    CB_KNN_DOT = 0,     /* largest q.b first; score = q.b */
    CB_KNN_L2 = 1,      /* smallest ||q-b||^2 first; score = ||q-b||^2 (any vectors) */
    CB_KNN_L2_UNIT = 2  /* rows known to be unit length: ranked by q.b, score = max(0, 2 - 2 q.b) */
} cb_knn_metric;

/* Optional settings of a search; zero-initialise and set what you need. */
typedef struct cb_knn_params {
    int threads;            /* <= 0: all online CPUs. Never changes the result. */
    /* Exclusions. self_index[i] (>= 0) is a base row never returned for query
     * i (the query item itself); -1 for none. NULL: no self exclusion. */
    const int32_t *self_index;
    /* Bitmap of excluded base rows: row j is excluded when bit (j % 64) of
     * word j / 64 is set. exclude_stride = 0: one bitmap for every query;
     * otherwise query i uses exclude + i * exclude_stride (words, >= (n+63)/64). */
    const uint64_t *exclude;
    size_t exclude_stride;
    /* Tuning (0 = default). Never changes the result. */
    size_t query_tile;      /* query rows per sgemm call (default 128) */
    size_t base_tile;       /* base rows per sgemm call (default 2048) */
    size_t query_panel;     /* query rows a thread owns while streaming B once (default 2048) */
    size_t batch_min;       /* nq at or above which the sgemm path runs (default 8) */
    /* Benchmark only: > 0 lets OpenBLAS use this many threads inside each
     * sgemm (combine with threads = 1 to compare against our threads). */
    int blas_threads;
    /* Benchmark only: run the same sgemm tiles but skip selection; outputs
     * are not written. The baseline for "selection must not dominate". */
    bool bench_gemm_only;
    /* Out (may be NULL): queries that needed the full canonical fallback. */
    size_t *n_fallback;
    /* Approximate search only (hnsw.h): the beam width; 0 = its default. */
    size_t ef;
} cb_knn_params;

/* A base matrix prepared for repeated searches: borrows B (which must stay
 * unchanged and alive until cb_knn_index_free) and precomputes row norms.
 * Requires 1 <= n < 2^31 and d >= 1. */
typedef struct cb_knn_index cb_knn_index;
int cb_knn_index_create(cb_knn_index **out, const float *B, size_t n, size_t d, cb_error *err);
void cb_knn_index_free(cb_knn_index *ix); /* NULL is a no-op */
size_t cb_knn_index_rows(const cb_knn_index *ix);
size_t cb_knn_index_dim(const cb_knn_index *ix);

/* Top-k of each query row against the index. Writes out_idx[i*k + r] and
 * out_score[i*k + r] for rank r = 0 (best) .. k-1; ties go to the lower
 * index. Requires 1 <= k <= n (else CB_EINVAL: "k larger than the catalog").
 * When exclusions leave a query fewer than k rows, its row is padded with
 * index -1 and score +INFINITY (L2) or -INFINITY (DOT). Rows whose score is
 * NaN are never returned; inputs are expected finite. `params` may be NULL.
 * Output arrays are owned by the caller ([nq * k] each); out_score may be NULL. */
int cb_knn_index_search(const cb_knn_index *ix, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                        const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err);

/* The same, one-shot: builds a temporary index over B [n x d]. */
int cb_knn_search(const float *Q, size_t nq, const float *B, size_t n, size_t d, size_t k, cb_knn_metric metric,
                  const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err);

/* Reference: plain loops and a full sort per query, canonical scores; same
 * contract as cb_knn_search (tuning fields and threads are ignored). */
int cb_knn_search_naive(const float *Q, size_t nq, const float *B, size_t n, size_t d, size_t k,
                        cb_knn_metric metric, const cb_knn_params *params, int32_t *out_idx, float *out_score,
                        cb_error *err);

/* The canonical score of knn.h (double, fixed order) as a "goodness" g,
 * larger = better (q.b, or -||q-b||^2 for CB_KNN_L2); the score reported for
 * g; and the score of a padding slot. Other searches (hnsw.h) rescore with
 * these so that their answers match the exact search's. */
double cb_knn_canonical_good(const float *q, const float *b, size_t d, cb_knn_metric metric);
float cb_knn_score_of_good(double g, cb_knn_metric metric);
float cb_knn_pad_score(cb_knn_metric metric);
/* A scored candidate and THE order of results (larger g first, ties to the
 * lower index), shared by every search so their answers sort alike. */
typedef struct cb_knn_cand {
    double g;
    int32_t idx;
} cb_knn_cand;
int cb_knn_cand_cmp(const void *a, const void *b); /* qsort comparator */
/* c[i].g = cb_knn_canonical_good(q, B + c[i].idx * d, ...) for i < nc, the
 * same bits, several rows at a time where the CPU allows. */
void cb_knn_canonical_rescore(const float *q, const float *B, size_t d, cb_knn_metric metric, cb_knn_cand *c,
                              size_t nc);

/* ---- Similar-items table: for every item its k nearest other items by
 * squared distance ||v_i - v_j||^2, ascending, ties to the lower index. */
typedef struct cb_knn_table {
    size_t n_items;
    size_t k;
    int32_t *neighbors; /* [n_items x k], never the item itself, never -1 */
    float *distances;   /* [n_items x k] squared distances, ascending */
} cb_knn_table;

/* Build the table for V [n x d] (the "overnight job"). Requires
 * 1 <= k <= n - 1 (else CB_EINVAL). `threads` <= 0: all CPUs. On success the
 * table owns its arrays (free with cb_knn_table_free); on failure *table is
 * zeroed. Row i equals cb_knn_search(V+i*d, 1, V, n, d, k, CB_KNN_L2) with
 * self_index {i}, bit for bit. When many items share a vector (same
 * features), each distinct vector is searched once and its list expanded. */
int cb_knn_similar_table(cb_knn_table *table, const float *V, size_t n, size_t d, size_t k, int threads,
                         cb_error *err);

/* Frees the arrays and zeroes the struct. NULL is a no-op. */
void cb_knn_table_free(cb_knn_table *table);

/* Row of `item`: *neighbors and *distances point into the table (k entries,
 * valid until the table changes). CB_ENOTFOUND when item >= n_items. */
int cb_knn_table_row(const cb_knn_table *table, size_t item, const int32_t **neighbors, const float **distances,
                     cb_error *err);

/* Insert a new item (a cold-start item) with vector `new_vec` [d]: V holds
 * the table's current n_items rows. The table grows by one row (the new
 * item's index is the old n_items) holding its k nearest items, and every
 * existing row where the new item beats the current k-th neighbour gets it
 * inserted in order (its last neighbour drops out). The result equals
 * cb_knn_similar_table over V with new_vec appended, bit for bit. On failure
 * the table is unchanged. Cost O(n d), single-threaded. */
int cb_knn_table_insert(cb_knn_table *table, const float *V, size_t d, const float *new_vec, cb_error *err);

/* Save / load through the st container ("format" = "cbrec-knn-table").
 * `fingerprint` (non-empty) identifies the model the vectors came from; load
 * refuses a table whose fingerprint differs (CB_EFORMAT, a table "from
 * another model") or whose contents are inconsistent (indices out of range,
 * self-neighbours, unsorted rows). Loaded tables own copies of their arrays. */
int cb_knn_table_save(const cb_knn_table *table, const char *path, const char *fingerprint, cb_error *err);
int cb_knn_table_load(cb_knn_table *table, const char *path, const char *fingerprint, cb_error *err);

#endif /* CB_KNN_H */
