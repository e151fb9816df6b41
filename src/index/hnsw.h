/* hnsw — approximate nearest neighbours for large catalogs: a hierarchical
 * navigable small-world graph (Malkov & Yashunin, 2016) over row-major float
 * vectors, behind the same search interface as knn.h's exact search.
 *
 * The graph is built on squared Euclidean distance and searched with any
 * cb_knn_metric (CB_KNN_DOT walks the same graph by -q.b; item vectors of
 * similar norms keep the graph navigable for it, and the tests measure its
 * recall too). Results are rescored with knn's canonical double scores, so an
 * approximate answer that finds the true neighbours is identical to the exact
 * one, scores included; ties go to the lower index.
 *
 * Filters (cb_knn_params.self_index / exclude) are applied inside the walk:
 * excluded rows are traversed but never enter the result set, so the beam
 * keeps ef *eligible* rows and recall holds under heavy filtering; if a query
 * still finds fewer than k eligible rows, ef grows (x4) until it does or the
 * whole graph was reached, and then the exact search answers that query.
 *
 * Nodes are inserted in a locality order drawn from the seed (hnsw.c: every
 * 16th row first, then pivot splits, so consecutive insertions are near each
 * other). Building uses every core by default: threads take the next node to insert
 * and lock one node's link lists at a time (striped mutexes; a node raising
 * the top layer holds the entry-point lock through its insertion). Levels
 * come from a splitmix64 stream, so they never depend on the threads; the
 * links do (which node a thread reaches first varies), so only a build with
 * threads = 1 — nodes inserted in that order, no locks — is deterministic:
 * same vectors, M, ef_construction and seed give the same graph, bit for bit.
 * Searching is read-only and may run from many threads at once; each call
 * allocates its own scratch (a visited bitset of n bits per worker). The walk's
 * float distances are the same bits on the plain and AVX2 paths.
 *
 * Files: the st container (base/st.h) with format "cbrec-hnsw": links are
 * tensors, checksummed, and memory-mapped at load (not copied). The vectors
 * are not stored: the index borrows the model's item vectors, and load
 * refuses a file from another model (fingerprint) or another shape. */
#ifndef CB_HNSW_H
#define CB_HNSW_H

#include "index/knn.h"

typedef struct cb_hnsw cb_hnsw;

typedef struct cb_hnsw_build_params {
    size_t m;               /* links per node on upper layers (2m on layer 0); 0 = 16 */
    size_t ef_construction; /* beam width while inserting; 0 = 200 */
    uint64_t seed;          /* level draws; 0 = a fixed default */
    int threads;            /* inserting threads; 0 = the machine's cores */
    float alpha;            /* neighbour selection keeps a candidate unless alpha times its distance to a
                             * link already kept is below its distance to the node: 1..2, 0 = 1 (HNSW's
                             * heuristic); larger keeps longer links (the recommender's ranking graph) */
} cb_hnsw_build_params;

#define CB_HNSW_DEFAULT_M 16
#define CB_HNSW_DEFAULT_EF_CONSTRUCTION 200
/* The search beam when cb_knn_params.ef is 0: max(k, this); and the
 * similar-items table's (each walk starts at the item itself). */
#define CB_HNSW_DEFAULT_EF 64
#define CB_HNSW_TABLE_EF 32

/* Build over B [n x d] (borrowed: it must stay unchanged and alive until
 * cb_hnsw_free). Requires 1 <= n < 2^31, d >= 1, finite values. */
int cb_hnsw_build(cb_hnsw **out, const float *B, size_t n, size_t d, const cb_hnsw_build_params *params,
                  cb_error *err);
void cb_hnsw_free(cb_hnsw *h); /* NULL is a no-op */
size_t cb_hnsw_rows(const cb_hnsw *h);
/* Nodes a search can reach on layer 0 from the entry point (cb_hnsw_build
 * links the unreached ones in up to 8 rounds; a row equal to an earlier row
 * is not in the graph and counts as reached with its group's first row);
 * 0 when out of memory. */
size_t cb_hnsw_reachable(const cb_hnsw *h);
/* Nodes no search reaches, as counted when the index was built (a loaded
 * file carries the count); *counted (may be NULL) is false for a file
 * without it (cbrec < 0.3: counted at load; one from before the build's
 * repair of unreached nodes, < 0.2, often leaves ~5 % of a large catalog). */
size_t cb_hnsw_unreached(const cb_hnsw *h, bool *counted);
size_t cb_hnsw_m(const cb_hnsw *h);
size_t cb_hnsw_ef_construction(const cb_hnsw *h);

/* Approximate top-k of each query row, with knn.h's contract for outputs,
 * padding, exclusions and scores (params->ef sets the beam; tuning fields of
 * the exact path are ignored; n_fallback counts queries answered exactly).
 * A distance query equal to its self_index row (an item's neighbours) starts
 * its walk at that row; the others descend from the entry point, a
 * dot-product query with a beam of 8 nodes on each layer above 0 (all 8 start
 * the walk on layer 0), a distance query greedily. */
int cb_hnsw_search(const cb_hnsw *h, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                   const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err);

/* The similar-items table (knn.h's cb_knn_table) from the graph: row i = the
 * approximate k nearest other items of item i by squared distance; ef = 0:
 * CB_HNSW_TABLE_EF. */
int cb_hnsw_similar_table(cb_knn_table *table, const cb_hnsw *h, size_t k, size_t ef, int threads, cb_error *err);

/* The walk's float distance from q [d] to row j: squared Euclidean, or -q.b
 * for CB_KNN_DOT (its ranking; answers are rescored canonically). The plain
 * and AVX2 paths give the same floats (tests compare them). */
float cb_hnsw_distance(const cb_hnsw *h, const float *q, size_t j, cb_knn_metric metric);

/* Save atomically (format "cbrec-hnsw"); `fingerprint` (non-empty) names the
 * model whose vectors were indexed. Load maps the file and borrows B [n x d]:
 * CB_EFORMAT when the file is corrupt, from another model, or of another
 * shape; every link is validated before use. */
int cb_hnsw_save(const cb_hnsw *h, const char *path, const char *fingerprint, cb_error *err);
int cb_hnsw_load(cb_hnsw **out, const char *path, const float *B, size_t n, size_t d, const char *fingerprint,
                 cb_error *err);

/* A file with a second graph (over other vectors of the same n rows, e.g.
 * the recommender's ranking vectors): its tensors and settings are keyed
 * "NAME.links0", "NAME.m", ... beside the first graph's, in the same format
 * version, so a reader that knows only the first graph still loads it.
 * Load a section: *out NULL and CB_OK when the file has no such graph (one
 * written by cb_hnsw_save, or by an older cbrec); `section` NULL: the first. */
int cb_hnsw_save_sections(const cb_hnsw *h, const cb_hnsw *extra, const char *extra_name, const char *path,
                          const char *fingerprint, cb_error *err);
int cb_hnsw_load_section(cb_hnsw **out, const char *path, const char *section, const float *B, size_t n, size_t d,
                         const char *fingerprint, cb_error *err);

#endif /* CB_HNSW_H */
