/* neighbours — the neighbourhood component of the ranking, learned from the
 * training interactions: for every item its K most similar items by cosine
 * similarity over who picked them (binary user-item matrix, with shrinkage:
 * c_ij / (sqrt(n_i n_j) + shrink)), kept sparse (K per item, never an n x n
 * matrix), and the blend weight w. At ranking time an item's neighbour score
 * for a history H is sum_{j in H} sim(j, item) over the lists of H's items,
 * divided by the user's largest such score (so it lies in [0, 1] and w is in
 * the units of the towers' retrieval score) or taken as it is (the carve
 * chooses); the ranking adds w times it
 * (src/rec/pipeline.c). Items without interactions have no lists and score 0.
 *
 * w, K and the shrinkage are chosen by cb_neighbours_tune on a per-user
 * validation carve of the training data (src/rec/api_train.c runs it), never
 * on a test part. The fitted lists are an optional section of the model file
 * (tensors "neighbours.offsets", "neighbours.items", "neighbours.weights" and
 * metadata "neighbours"): written and validated here, hooked into bundle.c.
 *
 * Cost: fitting visits, per user, every pair of that user's items
 * (sum over users of |H_u|^2), with per worker a few n_items scratch rows
 * (the cosine's counts, and two rows of candidates, 16 B an item, to sort
 * an item's list); memory is O(n_items * K + interactions). A neighbours object is read-only after
 * fitting or loading and may be shared between threads. */
#ifndef CB_NEIGHBOURS_H
#define CB_NEIGHBOURS_H

#include "base/st.h"
#include "data/dataset.h"

#include <stdbool.h>
#include <stdint.h>

#define CB_NEIGHBOURS_META "neighbours"
#define CB_NEIGHBOURS_MAX_DENSE 8000u /* EASE: the dense inverse's side (the fewer of users and items) */
#define CB_NEIGHBOURS_MAX_USER_FORM 2e10 /* EASE's user form: items x interactions (ml-latest-small: 1e9) */

/* How the item-item weights are learned. */
typedef enum cb_neighbours_kind {
    CB_NEIGHBOURS_COSINE = 0, /* co-counts / (sqrt(n_i n_j) + shrink): any size */
    CB_NEIGHBOURS_EASE = 1    /* EASE's closed form, top K of each row: min(users, items) <= MAX_DENSE */
} cb_neighbours_kind;

typedef struct cb_neighbours {
    cb_neighbours_kind kind;
    uint32_t n_items;     /* catalog size the lists index */
    uint32_t k;           /* at most k neighbours per item */
    float shrink;         /* the cosine's shrinkage */
    float lambda;         /* EASE's L2 weight */
    float weight;         /* w: the ranking adds w * (neighbour score / divisor) */
    bool raw;             /* divisor 1 (the raw sum); false: the user's largest neighbour score */
    const int32_t *off;   /* [n_items + 1] CSR offsets */
    const int32_t *item;  /* [off[n_items]] neighbours, most similar first */
    const float *sim;     /* [off[n_items]] their similarity, > 0 */
    char *tuning;         /* JSON of what the carve measured (may be NULL), kept in the file */
    void *owned[3];       /* fitted: off, item, sim; loaded: NULL (they point into the file) */
} cb_neighbours;

/* k neighbours per item among n_items: clamped to n_items - 1 (no list is
 * longer); CB_EINVAL when the lists could overflow the model file's int32
 * offsets (checked by cb_neighbours_fit, and before training). */
int cb_neighbours_check_k(uint32_t n_items, uint32_t *k, cb_error *err);
/* Fit the lists (the k largest positive weights of each item; param = the
 * cosine's shrinkage or EASE's lambda) from the training ratings
 * ds->ratings[train[0..n_train)] (each user-item pair counts once, whatever
 * its rating). weight starts at 0. k >= 1 (clamped as above). */
int cb_neighbours_fit(cb_neighbours **out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                      cb_neighbours_kind kind, uint32_t k, float param, cb_error *err);
/* The same across a communicator's ranks (comm NULL: one process): each rank
 * fits its share of the items' lists on `threads` threads (as
 * cb_threads_resolve: 0 = every core) and every rank receives all of them,
 * the bits one process on one thread fits. Every rank must call it with the
 * same arguments (threads may differ). */
int cb_neighbours_fit_shared(cb_neighbours **out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                             cb_neighbours_kind kind, uint32_t k, float param, const cb_train_comm *comm,
                             int threads, cb_error *err);
/* (a + ridge I)^-1 in place for a symmetric positive-definite n x n
 * double matrix a (row-major; both triangles on return), by a tiled
 * Cholesky on `threads` threads (as cb_threads_resolve; OpenBLAS held at
 * one), its later stages split across comm's ranks (NULL: one process;
 * every rank calls it with the same a, n and ridge): the same bits for any
 * thread or rank count (ridge_inverse.c); CB_ENUMERIC when it fails (on
 * every rank alike). EASE's dense inverse, for these lists and for eval's
 * EASE baseline (src/eval/itemrec.c). */
int cb_neighbours_ridge_inverse(double *a, size_t n, double ridge, int threads, const cb_train_comm *comm,
                                cb_error *err);
/* "cosine" / "ease"; whether EASE's dense inverse fits this dataset. */
const char *cb_neighbours_kind_name(cb_neighbours_kind kind);
bool cb_neighbours_ease_fits(const cb_dataset *ds);
void cb_neighbours_free(cb_neighbours *nb); /* NULL is a no-op */

/* The raw neighbour scores of a history: row[0..n_items) = sum over the
 * history's items j (< n_items; others ignored) of sim(j, .), using at most
 * `k` neighbours of each (0 = all kept). Returns the row's maximum (0 when
 * nothing scored). */
float cb_neighbours_row(const cb_neighbours *nb, const uint32_t *hist, size_t n_hist, uint32_t k, float *row);
/* The divisor of a row whose maximum is max: max, or 1 for nb->raw; 0
 * when nothing scored (max <= 0). */
float cb_neighbours_divisor(const cb_neighbours *nb, float max);
/* row[i] += w * raw[i] / max for i < n (nothing when max <= 0 or w == 0). */
void cb_neighbours_blend(float *row, const float *raw, size_t n, float max, float w);
/* For each of items[0..n): which history item contributes most to its
 * neighbour score as cb_neighbours_row computes it with the same k: pos[i]
 * its position in hist (the first of equal similarities), or -1 when none
 * does, and sim[i] that similarity (0 when none). One pass over the
 * history's lists for all n items (an explanation per recommended item).
 * CB_ENOMEM is the only failure. */
int cb_neighbours_top_contributors(const cb_neighbours *nb, const uint32_t *hist, size_t n_hist, uint32_t k,
                                   const uint32_t *items, size_t n, int64_t *pos, float *sim, cb_error *err);

/* The model file section: add the tensors and the metadata to w (the data
 * is referenced until cb_st_write); read them back (absent: *out = NULL and
 * CB_OK; present but bad: CB_EFORMAT naming the file and the field). */
int cb_neighbours_save(const cb_neighbours *nb, cb_st_writer *w, cb_error *err);
int cb_neighbours_load(cb_neighbours **out, const cb_st *st, uint32_t n_items, cb_error *err);

/* ---- choosing w, K and shrink on a validation carve */

/* The towers' ranking scores of every item for a user of the carve (the
 * retrieval score of towers trained on carve->train only). */
typedef void (*cb_tower_row_fn)(void *ctx, uint32_t user, float *row);

typedef struct cb_neighbours_choice {
    int kind;                 /* cb_neighbours_kind; -1 in `fixed`: EASE where it fits, else cosine */
    bool raw;                 /* the divisor (cb_neighbours_divisor): 1, else the user's maximum */
    uint32_t k;
    float param, weight;      /* param: the shrinkage (cosine) or lambda (EASE); < 0 in `fixed`: tune */
    double ndcg, ndcg_towers; /* validation NDCG@10 with the choice, and with w = 0 */
    double recall, recall_towers; /* validation recall@20 likewise */
    size_t n_users;           /* carve users measured */
} cb_neighbours_choice;

/* Try every (param, K, divisor, w) of a small grid (a setting given in
 * `fixed`: kind >= 0, k > 0, param >= 0, weight >= 0, replaces its row of
 * the grid; kind -1: EASE where cb_neighbours_ease_fits, else the cosine):
 * lists fitted on carve->train, per carve user with a relevant validation
 * item (rating >= threshold) the tower row plus w times the neighbour row,
 * training items removed, NDCG@10 (chosen on) and recall@20 (recorded)
 * against the validation items; the cheapest cell near the best (w = 0 within
 * K_MARGIN, else the smallest K within a paired standard error: k_margin in
 * neighbours.c; each cell's margin is in the JSON). At most max_users users (evenly spread over the user indices).
 * *tuning_json (malloc'd, may be NULL) receives the whole grid as JSON.
 * comm (NULL: one process): the ranks share the grid's fits and users (see
 * neighbours.c) and every rank returns the same choice and JSON, the bits one
 * process gets; tower_row must give the same rows on every rank. threads (as
 * cb_threads_resolve: 0 = every core): each rank fits on them and scores its
 * blocks of users on them, so tower_row is called from several threads at
 * once (with OpenBLAS held at one thread); the result is the same for any
 * count. */
int cb_neighbours_tune(cb_neighbours_choice *best, char **tuning_json, const cb_neighbours_choice *fixed,
                       const cb_dataset *ds, const cb_split *carve, float threshold, size_t max_users,
                       cb_tower_row_fn tower_row, void *ctx, const cb_train_comm *comm, int threads,
                       cb_error *err);

#endif /* CB_NEIGHBOURS_H */
