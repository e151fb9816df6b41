/* hnsw — the approximate index: graph construction (insertion with the
 * neighbour-selection heuristic), beam search with in-walk filters and
 * canonical rescoring, the similar-items table from the graph, and
 * st-container save / memory-mapped load. See hnsw.h for the contract. */
#include "index/hnsw.h"
#include "base/st.h"
#include "base/threads.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORMAT "cbrec-hnsw"
#define FORMAT_VERSION 1
#define MAX_LEVEL 30

/* A walk's distance: one pair, or a batch of rows of B (see below). */
typedef float (*dist_fn)(const float *, const float *, size_t);
typedef void (*batch_fn)(const float *q, const float *B, size_t d, const int32_t *ids, size_t cnt, float *out);
typedef struct dists {
    dist_fn one;
    batch_fn many;
} dists;

struct cb_hnsw {
    const float *B;
    size_t n, d, m, m0, ef_construction;
    float alpha2; /* the build's neighbour selection: cb_hnsw_build_params.alpha squared (distances are) */
    int max_level;
    int32_t entry;
    /* Layer 0: node i's links at links0 + i * (m0 + 1): a count, then ids.
     * Layer l >= 1 of node i (l <= levels[i]): upper + up_off[i] + (l - 1) * (m + 1). */
    const int32_t *links0;
    const uint8_t *levels;
    const int32_t *upper;
    size_t *up_off; /* [n], always owned */
    size_t n_upper;
    int32_t *own_links0, *own_upper; /* built in memory (NULL when loaded) */
    uint8_t *own_levels;
    cb_st *st; /* loaded: the mapping the link pointers point into */
    /* nodes no walk reaches on layer 0, counted at the build's end and
     * saved as "unreached" (counted); a file without that key (cbrec < 0.3)
     * is counted at load (counted false) */
    size_t unreached;
    bool counted;
    /* Rows equal to an earlier row (every float's bits) are left out of the
     * graph: dup_of[i] = the first row equal to i, or -1 for a row the graph
     * holds; dup_next chains a group's rows in index order from the first
     * (-1 ends it). A walk reaches the first row, and a search returns its
     * group's eligible rows at its distance. NULL: no equal rows. Equal rows
     * had trapped walks in their clusters (a synthetic 100k catalog whose
     * unrated items share a few content vectors: the popular items' own
     * neighbours missed by 11 of 60 searches at recall 0). */
    const int32_t *dup_of, *dup_next;
    int32_t *own_dups; /* built: [2n], dup_of then dup_next */
    size_t n_dups;     /* rows left out as copies */
    dists l2, ndot;
    /* While a parallel build runs: node i's link lists are guarded by
     * locks[i & lock_mask]; entry / max_level by top_lock. NULL otherwise
     * (single-threaded builds and every search after the build). */
    pthread_mutex_t *locks, top_lock;
    size_t lock_mask;
};

/* ---------------------------------------------------------------------------
 * Float distances of the walk (ranking only; results are rescored canonically).
 * Eight lane sums added in one fixed order, plain or AVX2 (multiply then add,
 * no FMA): both paths give the same floats bit for bit, so a graph and its
 * answers do not depend on the CPU (tests/test_hnsw.c checks it). A batch
 * call scores one neighbour list's unvisited rows. */

/* The lanes' total in hsum's order: (l0+l4 + l2+l6) + (l1+l5 + l3+l7). */
static inline float lanes_sum(const float *s) {
    float a0 = s[0] + s[4], a1 = s[1] + s[5], a2 = s[2] + s[6], a3 = s[3] + s[7];
    return (a0 + a2) + (a1 + a3);
}

/* A tail of d % 8 values goes to lanes 0.. in both paths. */
static inline float l2_plain(const float *a, const float *b, size_t d) {
    float s[8] = {0};
    size_t t = 0;
    for (; t + 8 <= d; t += 8)
        for (size_t j = 0; j < 8; j++) {
            float x = a[t + j] - b[t + j];
            s[j] += x * x;
        }
    for (size_t j = 0; t + j < d; j++) {
        float x = a[t + j] - b[t + j];
        s[j] += x * x;
    }
    return lanes_sum(s);
}

static inline float ndot_plain(const float *a, const float *b, size_t d) {
    float s[8] = {0};
    size_t t = 0;
    for (; t + 8 <= d; t += 8)
        for (size_t j = 0; j < 8; j++) s[j] += a[t + j] * b[t + j];
    for (size_t j = 0; t + j < d; j++) s[j] += a[t + j] * b[t + j];
    return -lanes_sum(s);
}

#if CB_X86_SIMD
#include <immintrin.h>

CB_TARGET_AVX2 static inline float l2_avx2(const float *a, const float *b, size_t d) {
    __m256 acc = _mm256_setzero_ps();
    size_t t = 0;
    for (; t + 8 <= d; t += 8) {
        __m256 x = _mm256_sub_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(x, x));
    }
    float s[8];
    _mm256_storeu_ps(s, acc);
    for (size_t j = 0; t + j < d; j++) {
        float x = a[t + j] - b[t + j];
        s[j] += x * x;
    }
    return lanes_sum(s);
}

CB_TARGET_AVX2 static inline float ndot_avx2(const float *a, const float *b, size_t d) {
    __m256 acc = _mm256_setzero_ps();
    size_t t = 0;
    for (; t + 8 <= d; t += 8) acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t)));
    float s[8];
    _mm256_storeu_ps(s, acc);
    for (size_t j = 0; t + j < d; j++) s[j] += a[t + j] * b[t + j];
    return -lanes_sum(s);
}
#endif

static inline void prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/* The first (up to) four cache lines of a row. */
static inline void prefetch_row(const float *v, size_t d) {
    for (size_t t = 0; t < d && t < 64; t += 16) prefetch(v + t);
}

/* One batch kernel per distance: the next row is fetched while one is scored. */
#define BATCH_FN(name, attr, kernel)                                                                        \
    attr static void name(const float *q, const float *B, size_t d, const int32_t *ids, size_t cnt,        \
                          float *out) {                                                                     \
        for (size_t r = 0; r < cnt; r++) {                                                                  \
            if (r + 1 < cnt) prefetch_row(B + (size_t)ids[r + 1] * d, d);                                   \
            out[r] = kernel(q, B + (size_t)ids[r] * d, d);                                                  \
        }                                                                                                   \
    }
BATCH_FN(l2_batch_plain, , l2_plain)
BATCH_FN(ndot_batch_plain, , ndot_plain)
#if CB_X86_SIMD
BATCH_FN(l2_batch_avx2, CB_TARGET_AVX2, l2_avx2)
BATCH_FN(ndot_batch_avx2, CB_TARGET_AVX2, ndot_avx2)
CB_TARGET_AVX2 static float l2_one_avx2(const float *a, const float *b, size_t d) { return l2_avx2(a, b, d); }
CB_TARGET_AVX2 static float ndot_one_avx2(const float *a, const float *b, size_t d) { return ndot_avx2(a, b, d); }
#endif
static float l2_one_plain(const float *a, const float *b, size_t d) { return l2_plain(a, b, d); }
static float ndot_one_plain(const float *a, const float *b, size_t d) { return ndot_plain(a, b, d); }

static void pick_dists(cb_hnsw *h) {
    h->l2 = (dists){l2_one_plain, l2_batch_plain};
    h->ndot = (dists){ndot_one_plain, ndot_batch_plain};
#if CB_X86_SIMD
    if (cb_cpu_avx2()) {
        h->l2 = (dists){l2_one_avx2, l2_batch_avx2};
        h->ndot = (dists){ndot_one_avx2, ndot_batch_avx2};
    }
#endif
}

/* ---------------------------------------------------------------------------
 * Links. */

static inline const int32_t *links_of(const cb_hnsw *h, size_t i, int level) {
    if (level == 0) return h->links0 + i * (h->m0 + 1);
    return h->upper + h->up_off[i] + (size_t)(level - 1) * (h->m + 1);
}

static inline int32_t *links_mut(cb_hnsw *h, size_t i, int level) {
    if (level == 0) return h->own_links0 + i * (h->m0 + 1);
    return h->own_upper + h->up_off[i] + (size_t)(level - 1) * (h->m + 1);
}

/* Node i's links on `level` for a walk: the list itself, or during a parallel
 * build a copy taken under the node's lock into buf [m0 + 1]. */
static inline const int32_t *links_read(const cb_hnsw *h, size_t i, int level, int32_t *buf) {
    const int32_t *lk = links_of(h, i, level);
    if (!h->locks) return lk;
    pthread_mutex_t *mu = &h->locks[i & h->lock_mask];
    pthread_mutex_lock(mu);
    memcpy(buf, lk, (size_t)(lk[0] + 1) * sizeof *buf);
    pthread_mutex_unlock(mu);
    return buf;
}

/* Per-node offsets of the upper layers from the levels; returns the total. */
static size_t layout_upper(size_t *up_off, const uint8_t *levels, size_t n, size_t m) {
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        up_off[i] = off;
        off += (size_t)levels[i] * (m + 1);
    }
    return off;
}

/* ---------------------------------------------------------------------------
 * Sorted lists of (distance, id), nearest first: the beam and its results.
 * An insertion goes after equal keys, so the order is deterministic. */

typedef struct hnode {
    float key;
    int32_t id;
} hnode;

/* Where `key` goes in e[lo..n): after every entry <= key. */
static inline size_t upper_bound(const hnode *e, size_t lo, size_t n, float key) {
    while (lo < n) {
        size_t mid = lo + (n - lo) / 2;
        if (e[mid].key <= key) lo = mid + 1;
        else n = mid;
    }
    return lo;
}

/* ---------------------------------------------------------------------------
 * Beam search on one layer. */

typedef struct filter {
    int64_t self;         /* row never returned, or -1 */
    const uint64_t *bits; /* excluded rows, or NULL */
} filter;

static inline bool eligible(const filter *f, size_t j) {
    if (!f) return true;
    return (int64_t)j != f->self && !(f->bits && ((f->bits[j / 64] >> (j % 64)) & 1));
}

/* A node stands for its group of equal rows: eligible when one of them is. */
static inline bool group_eligible(const struct cb_hnsw *h, const filter *f, int32_t j) {
    if (!f || !h->dup_next) return eligible(f, (size_t)j);
    for (int32_t k = j; k >= 0; k = h->dup_next[k])
        if (eligible(f, (size_t)k)) return true;
    return false;
}

/* A dot-product search's descent from the entry point: a beam of UPPER_EF
 * nodes on each layer above 0 (unfiltered), whose last one seeds the walk on
 * layer 0 (in w->seeds, *n_seeds of them). The greedy descent (one node a
 * layer; what a distance search and the build keep: on 1M clustered rows the
 * beam bought no recall at ef 128 and cost 1.2-1.4x the CPU per query)
 * had ended dot-product walks where no path leads on: on a trained synthetic
 * 100k catalog the ranking graph's walk for 15 of 40 users (`recommend --index`,
 * the embedding source alone) ended among items at dot -0.78 where the best is
 * 0.01 (recall@10 0.41 for users 1-10, 3 of them 0), at any beam on layer 0
 * up to 128; this beam finds every one's best. */
#define UPPER_EF 8

typedef struct walker {
    uint64_t *vis;     /* [n / 64] visited bits */
    size_t *touched;   /* [n / 64] the words set since the last reset */
    size_t n_touched;
    int32_t *lbuf;     /* [m0 + 1]: a link list copied under its lock (parallel build) */
    int32_t *ids;      /* [m0]: one list's unvisited rows ... */
    float *dd;         /* ... and their distances */
    hnode *res;        /* [cap_res] the eligible rows kept, nearest first (<= ef) */
    hnode *cand;       /* [cap_cand] rows to expand: cand[head..n_cand), nearest first */
    size_t cap_res, cap_cand, n_res, head, n_cand, n_visited;
    hnode seeds[UPPER_EF]; /* a search's start on layer 0 (descend_beam) */
    bool oom;
} walker;

static int walker_init(walker *w, size_t n, size_t m0, cb_error *err) {
    memset(w, 0, sizeof *w);
    size_t words = (n + 63) / 64;
    w->vis = cb_calloc(words, sizeof *w->vis, err);
    w->touched = w->vis ? cb_calloc(words, sizeof *w->touched, err) : NULL;
    w->lbuf = w->touched ? cb_calloc(m0 + 1, sizeof *w->lbuf, err) : NULL;
    w->ids = w->lbuf ? cb_calloc(m0 + 1, sizeof *w->ids, err) : NULL;
    w->dd = w->ids ? cb_calloc(m0 + 1, sizeof *w->dd, err) : NULL;
    return w->dd ? CB_OK : CB_ENOMEM;
}

static void walker_free(walker *w) {
    free(w->vis), free(w->touched), free(w->lbuf), free(w->ids), free(w->dd);
    free(w->res), free(w->cand);
}

static bool grow(hnode **e, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) cap2 *= 2;
    hnode *p = realloc(*e, cap2 * sizeof *p);
    if (!p) return false;
    *e = p, *cap = cap2;
    return true;
}

/* Empty lists and no row visited; room for ef results. */
static bool walker_reset(walker *w, size_t ef) {
    for (size_t i = 0; i < w->n_touched; i++) w->vis[w->touched[i]] = 0;
    w->n_touched = w->n_res = w->head = w->n_cand = w->n_visited = 0;
    return grow(&w->res, &w->cap_res, ef) && grow(&w->cand, &w->cap_cand, ef);
}

/* Mark row j visited; false if it was already. */
static inline bool visit(walker *w, int32_t j) {
    uint64_t *word = &w->vis[(size_t)j / 64], bit = 1ull << ((size_t)j % 64);
    if (*word & bit) return false;
    if (!*word) w->touched[w->n_touched++] = (size_t)j / 64;
    *word |= bit;
    w->n_visited++;
    return true;
}

static bool cand_insert(walker *w, float key, int32_t id) {
    if (w->n_cand == w->cap_cand) {
        if (w->head) { /* drop the expanded prefix */
            memmove(w->cand, w->cand + w->head, (w->n_cand - w->head) * sizeof *w->cand);
            w->n_cand -= w->head, w->head = 0;
        } else if (!grow(&w->cand, &w->cap_cand, w->n_cand + 1)) {
            return false;
        }
    }
    size_t at = upper_bound(w->cand, w->head, w->n_cand, key);
    memmove(w->cand + at + 1, w->cand + at, (w->n_cand - at) * sizeof *w->cand);
    w->cand[at] = (hnode){key, id};
    w->n_cand++;
    return true;
}

/* Keep the ef nearest (cap_res >= ef). */
static void res_insert(walker *w, size_t ef, float key, int32_t id) {
    size_t at = upper_bound(w->res, 0, w->n_res, key);
    if (at >= ef) return;
    size_t keep = w->n_res < ef ? w->n_res : ef - 1;
    memmove(w->res + at + 1, w->res + at, (keep - at) * sizeof *w->res);
    w->res[at] = (hnode){key, id};
    w->n_res = keep + 1;
}

/* Greedy descent from `*cur` through layers top .. stop+1 (unfiltered). */
static void descend(const cb_hnsw *h, walker *w, const float *q, const dists *dist, int32_t *cur, float *cur_d,
                    int top, int stop) {
    for (int l = top; l > stop; l--) {
        bool moved = true;
        while (moved) {
            moved = false;
            const int32_t *lk = links_read(h, (size_t)*cur, l, w->lbuf);
            int32_t cnt = lk[0];
            memcpy(w->ids, lk + 1, (size_t)cnt * sizeof *w->ids);
            dist->many(q, h->B, h->d, w->ids, (size_t)cnt, w->dd);
            for (int32_t r = 0; r < cnt; r++)
                if (w->dd[r] < *cur_d) *cur_d = w->dd[r], *cur = w->ids[r], moved = true;
        }
    }
}

/* The ef best eligible rows reachable on `level` from the seeds (distinct
 * nodes with their distances; not w->res, which this resets), left in
 * w->res[0..n_res), nearest first. Each expansion scores the node's
 * unvisited neighbours in one batch (their rows fetched ahead). */
static void search_layer_from(const cb_hnsw *h, walker *w, const float *q, const dists *dist, const hnode *seeds,
                              size_t n_seeds, size_t ef, int level, const filter *f) {
    if (!walker_reset(w, ef > n_seeds ? ef : n_seeds)) {
        w->oom = true;
        return;
    }
    for (size_t s = 0; s < n_seeds; s++) {
        if (!visit(w, seeds[s].id)) continue;
        if (!cand_insert(w, seeds[s].key, seeds[s].id)) {
            w->oom = true;
            return;
        }
        if (group_eligible(h, f, seeds[s].id)) res_insert(w, ef, seeds[s].key, seeds[s].id);
    }
    while (w->head < w->n_cand) {
        hnode c = w->cand[w->head++];
        if (w->n_res >= ef && c.key > w->res[ef - 1].key) break;
        const int32_t *lk = links_read(h, (size_t)c.id, level, w->lbuf);
        size_t nb = 0;
        for (int32_t r = 1; r <= lk[0]; r++)
            if (visit(w, lk[r])) w->ids[nb++] = lk[r];
        if (nb) prefetch_row(h->B + (size_t)w->ids[0] * h->d, h->d);
        dist->many(q, h->B, h->d, w->ids, nb, w->dd);
        for (size_t r = 0; r < nb; r++) {
            float dd = w->dd[r];
            int32_t j = w->ids[r];
            if (w->n_res >= ef && dd >= w->res[ef - 1].key) continue;
            if (!cand_insert(w, dd, j)) {
                w->oom = true;
                return;
            }
            if (group_eligible(h, f, j)) res_insert(w, ef, dd, j);
        }
        if (w->n_res >= ef) /* rows beyond the worst kept are never expanded */
            while (w->n_cand > w->head && w->cand[w->n_cand - 1].key > w->res[ef - 1].key) w->n_cand--;
        if (w->head < w->n_cand) prefetch(links_of(h, (size_t)w->cand[w->head].id, level));
    }
}

/* The same from one node: `ep` at distance ep_d. */
static void search_layer(const cb_hnsw *h, walker *w, const float *q, const dists *dist, int32_t ep, float ep_d,
                         size_t ef, int level, const filter *f) {
    const hnode seed = {ep_d, ep};
    search_layer_from(h, w, q, dist, &seed, 1, ef, level, f);
}

/* A dot-product search's descent from the entry point (UPPER_EF, above). */
static void descend_beam(const cb_hnsw *h, walker *w, const float *q, const dists *dist, size_t *n_seeds) {
    w->seeds[0] = (hnode){dist->one(q, h->B + (size_t)h->entry * h->d, h->d), h->entry};
    *n_seeds = 1;
    for (int l = h->max_level; l > 0 && !w->oom; l--) {
        search_layer_from(h, w, q, dist, w->seeds, *n_seeds, UPPER_EF, l, NULL);
        if (!w->n_res) return; /* out of memory: the seeds stay */
        memcpy(w->seeds, w->res, w->n_res * sizeof *w->seeds);
        *n_seeds = w->n_res;
    }
}

/* ---------------------------------------------------------------------------
 * Construction. */

static int cmp_hnode_asc(const void *a, const void *b) {
    const hnode *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The neighbour-selection heuristic: walk candidates nearest first and keep
 * one only if it is nearer to the base than alpha times its distance to
 * every one already kept, so links spread in different directions (alpha >
 * 1 keeps some longer ones too: cb_hnsw_build_params). c[0..nc) sorted
 * ascending; the kept ones are moved to the front; returns how many (<= limit). */
static size_t select_neighbors(const cb_hnsw *h, hnode *c, size_t nc, size_t limit) {
    size_t kept = 0;
    for (size_t i = 0; i < nc && kept < limit; i++) {
        const float *v = h->B + (size_t)c[i].id * h->d;
        bool good = true;
        for (size_t r = 0; r < kept && good; r++)
            if (h->alpha2 * h->l2.one(v, h->B + (size_t)c[r].id * h->d, h->d) < c[i].key) good = false;
        if (good) c[kept++] = c[i];
    }
    return kept;
}

/* Ascending by (key, id), in place: lists are at most m0 + 1 long. */
static void sort_hnodes(hnode *c, size_t nc) {
    for (size_t i = 1; i < nc; i++) {
        hnode x = c[i];
        size_t j = i;
        while (j > 0 && cmp_hnode_asc(&x, &c[j - 1]) < 0) c[j] = c[j - 1], j--;
        c[j] = x;
    }
}

static inline void node_lock(const cb_hnsw *h, size_t i) {
    if (h->locks) pthread_mutex_lock(&h->locks[i & h->lock_mask]);
}
static inline void node_unlock(const cb_hnsw *h, size_t i) {
    if (h->locks) pthread_mutex_unlock(&h->locks[i & h->lock_mask]);
}

/* Add a link s -> i on `level`; a full list is re-selected by the heuristic. */
static void connect(cb_hnsw *h, int32_t s, int32_t i, int level, walker *w, hnode *scratch) {
    if (s == i) return;
    node_lock(h, (size_t)s);
    int32_t *lk = links_mut(h, (size_t)s, level);
    size_t mmax = level ? h->m : h->m0;
    for (int32_t r = 1; r <= lk[0]; r++)
        if (lk[r] == i) { /* two nodes that picked each other at once: linked already */
            node_unlock(h, (size_t)s);
            return;
        }
    if ((size_t)lk[0] < mmax) {
        lk[++lk[0]] = i;
    } else {
        size_t nc = (size_t)lk[0];
        memcpy(w->ids, lk + 1, nc * sizeof *w->ids);
        w->ids[nc++] = i;
        h->l2.many(h->B + (size_t)s * h->d, h->B, h->d, w->ids, nc, w->dd);
        for (size_t r = 0; r < nc; r++) scratch[r] = (hnode){w->dd[r], w->ids[r]};
        sort_hnodes(scratch, nc);
        size_t kept = select_neighbors(h, scratch, nc, mmax);
        lk[0] = (int32_t)kept;
        for (size_t r = 0; r < kept; r++) lk[r + 1] = scratch[r].id;
    }
    node_unlock(h, (size_t)s);
}

/* One builder thread's scratch. */
typedef struct bscratch {
    walker w;
    hnode *sel;     /* [ef_construction + 1] */
    hnode *scratch; /* [m0 + 2] */
} bscratch;

/* Insert node i. In a parallel build, a node that raises the top layer holds
 * top_lock through its insertion (as hnswlib does), so the entry point only
 * ever names a fully linked node. */
static void insert(cb_hnsw *h, bscratch *bs, int32_t i) {
    walker *w = &bs->w;
    hnode *sel = bs->sel;
    const float *q = h->B + (size_t)i * h->d;
    int level = h->levels[i];
    if (h->locks) pthread_mutex_lock(&h->top_lock);
    int32_t cur = h->entry;
    int top = h->max_level;
    bool raises = level > top;
    if (h->locks && !raises) pthread_mutex_unlock(&h->top_lock);
    float cur_d = h->l2.one(q, h->B + (size_t)cur * h->d, h->d);
    descend(h, w, q, &h->l2, &cur, &cur_d, top, level);
    for (int l = level < top ? level : top; l >= 0 && !w->oom; l--) {
        search_layer(h, w, q, &h->l2, cur, cur_d, h->ef_construction, l, NULL);
        size_t nc = w->n_res;
        if (nc == 0) break; /* out of memory in the walk */
        memcpy(sel, w->res, nc * sizeof *sel); /* ascending */
        /* a parallel build can reach i itself through a node that linked to
         * it before i wrote this layer's list: never a link to itself */
        size_t kept_c = 0;
        for (size_t r = 0; r < nc; r++)
            if (sel[r].id != i) sel[kept_c++] = sel[r];
        if (!(nc = kept_c)) continue;
        cur = sel[0].id, cur_d = sel[0].key;
        size_t kept = select_neighbors(h, sel, nc, h->m);
        node_lock(h, (size_t)i);
        int32_t *lk = links_mut(h, (size_t)i, l);
        lk[0] = (int32_t)kept;
        for (size_t r = 0; r < kept; r++) lk[r + 1] = sel[r].id;
        node_unlock(h, (size_t)i);
        for (size_t r = 0; r < kept; r++) connect(h, sel[r].id, i, l, w, bs->scratch);
    }
    if (raises) {
        h->max_level = level, h->entry = i;
        if (h->locks) pthread_mutex_unlock(&h->top_lock);
    }
}

typedef struct bjob {
    cb_hnsw *h;
    const int32_t *order; /* [n_order] insertion order; order[0] = 0, the first entry point */
    size_t n_order;       /* the nodes the graph holds (copies of an earlier row left out) */
    size_t first_rest;    /* order[1..first_rest): the seed rows; the pivot-split rest after */
    size_t regions;       /* the rest's interleaved regions (the thread count; 1: in order) */
    size_t n_chunks;
    atomic_size_t next;   /* the next chunk */
    atomic_int failed;
} bjob;

/* Threads pull chunks of BUILD_CHUNK consecutive insertions: first the seed
 * rows' chunks in order, then the rest cut into `regions` equal parts, chunk
 * c of it taken from part c % regions. Threads at work at the same moment
 * so insert rows far apart in the pivot-split order, never two near
 * neighbours, which would each walk the graph before the other's links
 * exist and miss each other (4 threads on 2 busy cores dropped the table's
 * recall to 0.94 that way). One region (one thread): the order itself. */
#define BUILD_CHUNK 64

static size_t seed_chunks(const bjob *jb) { return (jb->first_rest - 1 + BUILD_CHUNK - 1) / BUILD_CHUNK; }

static size_t region_len(const bjob *jb) { return (jb->n_order - jb->first_rest + jb->regions - 1) / jb->regions; }

/* The positions [*lo, *hi) of chunk c (possibly empty: the last region is shorter). */
static void chunk_span(const bjob *jb, size_t c, size_t *lo, size_t *hi) {
    size_t sc = seed_chunks(jb);
    if (c < sc) {
        *lo = 1 + c * BUILD_CHUNK;
        *hi = *lo + BUILD_CHUNK < jb->first_rest ? *lo + BUILD_CHUNK : jb->first_rest;
        return;
    }
    c -= sc;
    size_t per = region_len(jb), start = jb->first_rest + (c % jb->regions) * per;
    size_t end = start + per < jb->n_order ? start + per : jb->n_order;
    *lo = start + (c / jb->regions) * BUILD_CHUNK;
    *hi = *lo + BUILD_CHUNK < end ? *lo + BUILD_CHUNK : end;
    if (*lo > *hi) *lo = *hi;
}

static void *build_worker(void *arg) {
    bjob *jb = arg;
    cb_hnsw *h = jb->h;
    cb_error e;
    bscratch bs = {0};
    bs.sel = cb_calloc(h->ef_construction + 1, sizeof *bs.sel, &e);
    bs.scratch = cb_calloc(h->m0 + 2, sizeof *bs.scratch, &e);
    bool ok = bs.sel && bs.scratch && walker_init(&bs.w, h->n, h->m0, &e) == CB_OK;
    size_t c, lo, hi;
    while (ok && !atomic_load(&jb->failed) && (c = atomic_fetch_add(&jb->next, 1)) < jb->n_chunks) {
        chunk_span(jb, c, &lo, &hi);
        for (size_t i = lo; ok && i < hi; i++) {
            insert(h, &bs, jb->order[i]);
            ok = !bs.w.oom;
        }
    }
    if (!ok) atomic_store(&jb->failed, CB_ENOMEM);
    walker_free(&bs.w);
    free(bs.sel), free(bs.scratch);
    return NULL;
}

/* Insert nodes order[1..n) from `threads` threads pulling chunks (bjob); one
 * thread inserts in that order without locks (the deterministic build). */
static int build_links(cb_hnsw *h, const int32_t *order, size_t n_order, size_t first_rest, int threads,
                       cb_error *err) {
    /* A thread per 1,024 nodes at most: a small graph builds in milliseconds
     * on one thread, deterministically, while concurrent inserts into a few
     * hundred nodes cost recall (a 300-node test graph fell below 0.98). */
    if ((size_t)threads > n_order / 1024 + 1) threads = (int)(n_order / 1024 + 1);
    bjob jb = {.h = h, .order = order, .n_order = n_order, .first_rest = first_rest, .regions = (size_t)threads};
    jb.n_chunks = seed_chunks(&jb) + jb.regions * ((region_len(&jb) + BUILD_CHUNK - 1) / BUILD_CHUNK);
    atomic_init(&jb.next, 0);
    atomic_init(&jb.failed, 0);
    if (threads > 1) {
        size_t n_locks = 1;
        while (n_locks < h->n && n_locks < ((size_t)1 << 16)) n_locks <<= 1;
        h->locks = cb_calloc(n_locks, sizeof *h->locks, err);
        if (!h->locks) return CB_ENOMEM;
        for (size_t i = 0; i < n_locks; i++) pthread_mutex_init(&h->locks[i], NULL);
        pthread_mutex_init(&h->top_lock, NULL);
        h->lock_mask = n_locks - 1;
    }
    cb_threads_run(build_worker, &jb, 0, threads);
    if (h->locks) {
        for (size_t i = 0; i <= h->lock_mask; i++) pthread_mutex_destroy(&h->locks[i]);
        pthread_mutex_destroy(&h->top_lock);
        free(h->locks);
        h->locks = NULL;
    }
    return atomic_load(&jb.failed) ? cb_fail(err, CB_ENOMEM, "hnsw: out of memory while building") : CB_OK;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------------------
 * Insertion order. Node 0 first (the first entry point), then every SEED_STEP-th
 * row in index order (a coarse graph over the whole catalog, which the upper
 * layers and long links come from), then the rest in pivot-split order:
 * consecutive insertions are near each other, so their walks find the same
 * rows and links still in cache (at 1M x 32 the vectors and links are
 * ~260 MB). The splits draw from the seed: a build stays deterministic. */

#define SEED_STEP 16
#define SPLIT_LEAF 64

/* Order rows[0..len) (ids; keys is scratch of len) by recursive halving:
 * the projection on b - a, a = a random row, b = the row farthest from it. */
static void pivot_split(const cb_hnsw *h, int32_t *rows, hnode *keys, size_t len, uint64_t *rng) {
    if (len <= SPLIT_LEAF) return;
    const size_t d = h->d;
    const float *a = h->B + (size_t)rows[splitmix64(rng) % len] * d, *b = a;
    float far = -1.0f;
    for (size_t r = 0; r < len; r++) {
        const float *v = h->B + (size_t)rows[r] * d;
        float dd = h->l2.one(a, v, d);
        if (dd > far) far = dd, b = v;
    }
    for (size_t r = 0; r < len; r++) {
        const float *v = h->B + (size_t)rows[r] * d;
        keys[r] = (hnode){h->l2.one(v, a, d) - h->l2.one(v, b, d), rows[r]}; /* grows towards b */
    }
    qsort(keys, len, sizeof *keys, cmp_hnode_asc);
    for (size_t r = 0; r < len; r++) rows[r] = keys[r].id;
    pivot_split(h, rows, keys, len / 2, rng);
    pivot_split(h, rows + len / 2, keys, len - len / 2, rng);
}

/* The order; *first_rest: where the pivot-split rest starts (after the seeds). */
static int32_t *insertion_order(const cb_hnsw *h, uint64_t seed, size_t *first_rest, cb_error *err) {
    const size_t n = h->n;
    int32_t *order = cb_malloc(n * sizeof *order, err);
    hnode *keys = order ? cb_malloc(n * sizeof *keys, err) : NULL;
    if (!keys) {
        free(order);
        return NULL;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i += SEED_STEP) order[at++] = (int32_t)i;
    *first_rest = at;
    for (size_t i = 0; i < n; i++)
        if (i % SEED_STEP) order[at++] = (int32_t)i;
    uint64_t rng = seed ^ 0x0DE5C0DEull;
    pivot_split(h, order + *first_rest, keys, n - *first_rest, &rng);
    free(keys);
    return order;
}

/* The rows equal to an earlier one (dup_of, dup_next; see struct cb_hnsw):
 * rows sorted by a hash of their bytes (ties by index), each compared with
 * the groups' first rows of its run of equal hashes. No copies: both stay
 * NULL. */
typedef struct hashed {
    uint64_t hash;
    int32_t id;
} hashed;

static int cmp_hashed(const void *a, const void *b) {
    const hashed *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int find_dups(cb_hnsw *h, cb_error *err) {
    const size_t n = h->n, d = h->d;
    hashed *key = cb_malloc(n * sizeof *key, err);
    int32_t *tail = key ? cb_malloc(n * sizeof *tail, err) : NULL;
    h->own_dups = tail ? cb_malloc(2 * n * sizeof *h->own_dups, err) : NULL;
    if (!h->own_dups) {
        free(key), free(tail);
        return CB_ENOMEM;
    }
    int32_t *of = h->own_dups, *next = of + n;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = 0xCBF29CE484222325ULL; /* FNV-1a of the row's bytes */
        const unsigned char *b = (const unsigned char *)(h->B + i * d);
        for (size_t j = 0; j < d * sizeof(float); j++) x = (x ^ b[j]) * 0x100000001B3ULL;
        key[i] = (hashed){x, (int32_t)i};
        of[i] = next[i] = -1, tail[i] = (int32_t)i;
    }
    qsort(key, n, sizeof *key, cmp_hashed);
    size_t copies = 0;
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && key[b].hash == key[a].hash;) b++;
        for (size_t r = a + 1; r < b; r++) { /* ascending index within the run */
            int32_t i = key[r].id;
            for (size_t t = a; t < r; t++) {
                int32_t f = key[t].id;
                if (of[f] >= 0 || memcmp(h->B + (size_t)i * d, h->B + (size_t)f * d, d * sizeof(float))) continue;
                of[i] = f, next[tail[f]] = i, tail[f] = i, copies++;
                break;
            }
        }
    }
    free(key), free(tail);
    if (!copies) {
        free(h->own_dups);
        h->own_dups = NULL;
        return CB_OK;
    }
    h->dup_of = of, h->dup_next = next, h->n_dups = copies;
    return CB_OK;
}

static cb_hnsw *hnsw_alloc(const float *B, size_t n, size_t d, size_t m, cb_error *err) {
    cb_hnsw *h = cb_calloc(1, sizeof *h, err);
    if (!h) return NULL;
    *h = (cb_hnsw){.B = B, .n = n, .d = d, .m = m, .m0 = 2 * m, .alpha2 = 1.0f};
    pick_dists(h);
    h->up_off = cb_calloc(n, sizeof *h->up_off, err);
    if (!h->up_off) {
        free(h);
        return NULL;
    }
    return h;
}

static int check_shape(const float *B, size_t n, size_t d, cb_error *err) {
    if (!B || n == 0 || d == 0) return cb_fail(err, CB_EINVAL, "hnsw: empty catalog (%zu rows of dimension %zu)", n, d);
    if (n >= (size_t)INT32_MAX || d > (size_t)INT32_MAX / 2)
        return cb_fail(err, CB_EINVAL, "hnsw: catalog too large (%zu x %zu)", n, d);
    return CB_OK;
}

/* Mark on layer 0 what `start` reaches that is not marked yet (a breadth-
 * first walk; seen: 1 = marked), each marked node's links counted into
 * in[] when not NULL; returns how many it marked. queue: [n] scratch. */
static size_t mark_from(const cb_hnsw *h, int32_t start, uint8_t *seen, int32_t *queue, uint32_t *in) {
    size_t head = 0, tail = 0;
    seen[start] = 1, queue[tail++] = start;
    while (head < tail) {
        const int32_t *lk = links_of(h, (size_t)queue[head++], 0);
        for (int32_t r = 1; r <= lk[0]; r++) {
            if (in) in[lk[r]]++;
            if (!seen[lk[r]]) seen[lk[r]] = 1, queue[tail++] = lk[r];
        }
    }
    return tail;
}

/* Layer 0's nodes the entry point reaches (seen), and in[]: each node's
 * in-links from those (in may be NULL); returns how many. */
static size_t reach0(const cb_hnsw *h, uint8_t *seen, int32_t *queue, uint32_t *in) {
    memset(seen, 0, h->n);
    if (in) memset(in, 0, h->n * sizeof *in);
    return mark_from(h, h->entry, seen, queue, in);
}

/* Nodes no search reaches, linked. Pruning a full list by the heuristic
 * (connect) can drop a node's last in-link, and then no search returns it
 * at any ef: ~5 % of a 100k catalog with many equal or outlying vectors
 * (the most rated items among them). Each unreached node u gets a link from
 * the nearest reached node with room in its list among u's own links and
 * what a search for u finds; without one, from the nearest reached node, in
 * place of its link whose target most reached nodes link to (it stays
 * reached through the others). In rounds until every node is reached (a
 * replaced link may strand its target), at most 8; sequential, so the graph
 * stays deterministic. That catalog: 94.7 % -> 99.5 % reached; the few
 * hundred left were in clusters of equal vectors, which the graph no longer
 * holds (find_dups): 100 %. Copies are not in the graph and are skipped. */
static int repair_reach(cb_hnsw *h, cb_error *err) {
    size_t n = h->n;
    uint8_t *seen = cb_malloc(n, err);
    int32_t *queue = seen ? cb_malloc(n * sizeof *queue, err) : NULL;
    uint32_t *in = queue ? cb_malloc(n * sizeof *in, err) : NULL; /* in-links from reached nodes */
    walker w;
    if (!in || walker_init(&w, n, h->m0, err)) {
        if (in) walker_free(&w);
        free(seen), free(queue), free(in);
        return CB_ENOMEM;
    }
    for (int round = 0; round < 8 && reach0(h, seen, queue, in) < n - h->n_dups; round++)
        for (size_t u = 0; u < n; u++) {
            if (seen[u] || (h->dup_of && h->dup_of[u] >= 0)) continue; /* reached, or a copy (not in the graph) */
            const float *q = h->B + u * h->d;
            const int32_t *ul = links_of(h, u, 0);
            int32_t cur = h->entry, v = -1, v_room = -1;
            float cur_d = h->l2.one(q, h->B + (size_t)cur * h->d, h->d), best = INFINITY, best_room = INFINITY;
            descend(h, &w, q, &h->l2, &cur, &cur_d, h->max_level, 0);
            search_layer(h, &w, q, &h->l2, cur, cur_d, h->ef_construction, 0, NULL);
            for (size_t r = 0; r < w.n_res + (size_t)ul[0]; r++) { /* the search's results, then u's links */
                int32_t c = r < w.n_res ? w.res[r].id : ul[r - w.n_res + 1];
                if (!seen[c] || (size_t)c == u) continue;
                float dc = r < w.n_res ? w.res[r].key : h->l2.one(q, h->B + (size_t)c * h->d, h->d);
                if (dc < best || (dc == best && c < v)) best = dc, v = c;
                if ((size_t)links_of(h, (size_t)c, 0)[0] < h->m0 && (dc < best_room || (dc == best_room && c < v_room)))
                    best_room = dc, v_room = c;
            }
            v = v_room >= 0 ? v_room : v >= 0 ? v : h->entry;
            int32_t *lk = links_mut(h, (size_t)v, 0);
            if ((size_t)lk[0] < h->m0) {
                lk[++lk[0]] = (int32_t)u;
            } else {
                int32_t at = 1;
                for (int32_t r = 2; r <= lk[0]; r++)
                    if (in[lk[r]] > in[lk[at]]) at = r;
                in[lk[at]]--;
                lk[at] = (int32_t)u;
            }
            in[u]++;
            mark_from(h, (int32_t)u, seen, queue, in); /* u and what it reaches: reached from now on */
        }
    int rc = w.oom ? cb_fail(err, CB_ENOMEM, "hnsw: out of memory linking unreached nodes") : CB_OK;
    walker_free(&w);
    free(seen), free(queue), free(in);
    return rc;
}

size_t cb_hnsw_unreached(const cb_hnsw *h, bool *counted) {
    if (counted) *counted = h->counted;
    return h->unreached;
}

size_t cb_hnsw_reachable(const cb_hnsw *h) {
    uint8_t *seen = malloc(h->n);
    int32_t *queue = malloc(h->n * sizeof *queue);
    size_t r = seen && queue ? reach0(h, seen, queue, NULL) : 0;
    for (size_t i = 0; r && h->dup_of && i < h->n; i++) /* a copy is found where its group's first row is */
        if (h->dup_of[i] >= 0 && seen[h->dup_of[i]]) r++;
    free(seen), free(queue);
    return r;
}

int cb_hnsw_build(cb_hnsw **out, const float *B, size_t n, size_t d, const cb_hnsw_build_params *params,
                  cb_error *err) {
    *out = NULL;
    int rc = check_shape(B, n, d, err);
    if (rc) return rc;
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(B[i])) return cb_fail(err, CB_EINVAL, "hnsw: row %zu has a non-finite value", i / d);
    static const cb_hnsw_build_params defaults = {0};
    const cb_hnsw_build_params *p = params ? params : &defaults;
    size_t m = p->m ? p->m : CB_HNSW_DEFAULT_M;
    size_t efc = p->ef_construction ? p->ef_construction : CB_HNSW_DEFAULT_EF_CONSTRUCTION;
    if (m < 2 || m > 256) return cb_fail(err, CB_EINVAL, "hnsw: M = %zu must be between 2 and 256", m);
    if (efc > 100000) return cb_fail(err, CB_EINVAL, "hnsw: ef_construction = %zu is too large", efc);
    float alpha = p->alpha ? p->alpha : 1.0f;
    if (!(alpha >= 1.0f && alpha <= 2.0f))
        return cb_fail(err, CB_EINVAL, "hnsw: alpha = %g must be between 1 and 2", (double)alpha);
    if (efc < m) efc = m;
    cb_hnsw *h = hnsw_alloc(B, n, d, m, err);
    if (!h) return CB_ENOMEM;
    h->ef_construction = efc;
    h->alpha2 = alpha * alpha;
    h->own_levels = cb_calloc(n, 1, err);
    h->own_links0 = h->own_levels ? cb_calloc(n, (h->m0 + 1) * sizeof(int32_t), err) : NULL;
    if (!h->own_links0) {
        cb_hnsw_free(h);
        return CB_ENOMEM;
    }
    uint64_t rng = p->seed ? p->seed : 0x5EEDC0DEull;
    const double ml = 1.0 / log((double)m);
    for (size_t i = 0; i < n; i++) {
        double u = ((double)(splitmix64(&rng) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
        double lv = floor(-log(u) * ml);
        h->own_levels[i] = (uint8_t)(lv > MAX_LEVEL ? MAX_LEVEL : lv);
    }
    rc = find_dups(h, err);
    for (size_t i = 0; !rc && h->dup_of && i < n; i++)
        if (h->dup_of[i] >= 0) h->own_levels[i] = 0; /* a copy: no links, no layer above */
    h->n_upper = layout_upper(h->up_off, h->own_levels, n, m);
    h->own_upper = rc ? NULL : cb_calloc(h->n_upper + 1, sizeof *h->own_upper, err);
    rc = rc ? rc : h->own_upper ? CB_OK : CB_ENOMEM;
    if (!rc) {
        h->links0 = h->own_links0, h->levels = h->own_levels, h->upper = h->own_upper;
        h->entry = 0, h->max_level = h->levels[0];
        size_t first_rest, n_order = n;
        int32_t *order = insertion_order(h, rng, &first_rest, err);
        if (order && h->dup_of) { /* the graph holds each group's first row alone */
            size_t at = 0, seeds = 0;
            for (size_t r = 0; r < n; r++) {
                if (h->dup_of[order[r]] >= 0) continue;
                seeds += r < first_rest;
                order[at++] = order[r];
            }
            n_order = at, first_rest = seeds;
        }
        rc = order ? build_links(h, order, n_order, first_rest, cb_threads_resolve(p->threads, 64), err) : CB_ENOMEM;
        free(order);
        if (!rc) rc = repair_reach(h, err);
        size_t reached = rc ? 0 : cb_hnsw_reachable(h); /* the entry at least: 0 is out of memory */
        if (!rc && !reached) rc = cb_fail(err, CB_ENOMEM, "hnsw: out of memory");
        if (!rc) h->unreached = n - reached, h->counted = true;
    }
    if (rc) {
        cb_hnsw_free(h);
        return rc;
    }
    *out = h;
    return CB_OK;
}

void cb_hnsw_free(cb_hnsw *h) {
    if (!h) return;
    free(h->up_off);
    free(h->own_links0);
    free(h->own_upper);
    free(h->own_levels);
    free(h->own_dups);
    cb_st_close(h->st);
    free(h);
}

size_t cb_hnsw_rows(const cb_hnsw *h) { return h ? h->n : 0; }
size_t cb_hnsw_m(const cb_hnsw *h) { return h ? h->m : 0; }
size_t cb_hnsw_ef_construction(const cb_hnsw *h) { return h ? h->ef_construction : 0; }

float cb_hnsw_distance(const cb_hnsw *h, const float *q, size_t j, cb_knn_metric metric) {
    return (metric == CB_KNN_DOT ? h->ndot : h->l2).one(q, h->B + j * h->d, h->d);
}

/* ---------------------------------------------------------------------------
 * Search. */

typedef struct sjob {
    const cb_hnsw *h;
    const float *Q;
    size_t nq, k, ef;
    cb_knn_metric metric;
    const cb_knn_params *p;
    int32_t *out_idx;
    float *out_score;
    uint8_t *need_exact; /* [nq] */
    atomic_size_t next, n_exact;
    atomic_int failed;
} sjob;

/* Where a query's walk starts: a distance query that is its own excluded row
 * (an item's neighbours: the similar-items table, `similar`, the similar
 * items of a user's history) starts at that row, else the entry point with
 * the greedy descent. From the entry point, the descent can end in a region
 * the row's own neighbours are not linked to: on a trained synthetic 100k
 * catalog (2,000 users, 60,000 ratings, one epoch) `similar --index` for 8
 * of its 20 most-rated items found none of their 10 exact neighbours at the
 * default beam (a group of unrated items' equal vectors instead), where the
 * walk from the item itself finds them all. A dot-product query walks from
 * the entry point: its nearest rows by -q.b need not be near q. */
static int32_t walk_start(const sjob *jb, const float *q, const filter *f) {
    const cb_hnsw *h = jb->h;
    if (jb->metric == CB_KNN_DOT || f->self < 0) return h->entry;
    const float *row = h->B + (size_t)f->self * h->d;
    return row == q || !memcmp(row, q, h->d * sizeof *q) ? (int32_t)f->self : h->entry;
}

/* One query: returns the number of eligible rows found (<= ef), written
 * canonically rescored and sorted into rc[0..). */
static size_t search_query(const sjob *jb, walker *w, const float *q, const filter *f, size_t ef,
                           cb_knn_cand **rcp, size_t *cap) {
    const cb_hnsw *h = jb->h;
    const dists *dist = jb->metric == CB_KNN_DOT ? &h->ndot : &h->l2;
    int32_t cur = walk_start(jb, q, f);
    if (h->dup_of && h->dup_of[cur] >= 0) cur = h->dup_of[cur]; /* a copy: its group's first row is in the graph */
    size_t n_seeds = 1;
    float cur_d = dist->one(q, h->B + (size_t)cur * h->d, h->d);
    if (cur == h->entry && jb->metric == CB_KNN_DOT) {
        descend_beam(h, w, q, dist, &n_seeds);
    } else {
        if (cur == h->entry) descend(h, w, q, dist, &cur, &cur_d, h->max_level, 0); /* a metric: greedy finds it */
        w->seeds[0] = (hnode){cur_d, cur};
    }
    search_layer_from(h, w, q, dist, w->seeds, n_seeds, ef, 0, f);
    /* each node's first k eligible rows of its group (in index order): every
     * group tied at the k-th distance offers its lowest rows, so the sort
     * below breaks the ties by index as the exact search does */
    size_t m = 0;
    for (size_t r = 0; r < w->n_res; r++) {
        size_t taken = 0;
        for (int32_t k = w->res[r].id; k >= 0 && taken < jb->k; k = h->dup_next ? h->dup_next[k] : -1) {
            if (!eligible(f, (size_t)k)) continue;
            if (m == *cap) {
                cb_knn_cand *bigger = realloc(*rcp, 2 * *cap * sizeof *bigger);
                if (!bigger) {
                    w->oom = true;
                    return 0;
                }
                *rcp = bigger, *cap *= 2;
            }
            (*rcp)[m++] = (cb_knn_cand){0.0, k}, taken++;
        }
    }
    cb_knn_cand *rc = *rcp;
    cb_knn_canonical_rescore(q, h->B, h->d, jb->metric, rc, m);
    qsort(rc, m, sizeof *rc, cb_knn_cand_cmp);
    return m;
}

static void *search_worker(void *arg) {
    sjob *jb = arg;
    const cb_hnsw *h = jb->h;
    walker w;
    cb_error e;
    size_t cap = jb->ef; /* search_query grows it */
    cb_knn_cand *rc = malloc(cap * sizeof *rc);
    if (!rc || walker_init(&w, h->n, h->m0, &e)) {
        free(rc);
        atomic_store(&jb->failed, CB_ENOMEM);
        return NULL;
    }
    size_t i;
    while (!w.oom && (i = atomic_fetch_add(&jb->next, 1)) < jb->nq) {
        const cb_knn_params *p = jb->p;
        filter f = {p->self_index ? p->self_index[i] : -1,
                    p->exclude ? p->exclude + (p->exclude_stride ? i * p->exclude_stride : 0) : NULL};
        const float *q = jb->Q + i * h->d;
        size_t ef = jb->ef, m = search_query(jb, &w, q, &f, ef, &rc, &cap);
        /* Too few eligible rows reached: widen the beam (up to the graph's
         * nodes: copies are not walked), then answer exactly. */
        size_t nodes = h->n - h->n_dups;
        while (m < jb->k && w.n_visited < nodes && ef < nodes && !w.oom) {
            ef = ef * 4 < nodes ? ef * 4 : nodes;
            m = search_query(jb, &w, q, &f, ef, &rc, &cap);
        }
        if (m < jb->k) {
            jb->need_exact[i] = 1;
            atomic_fetch_add(&jb->n_exact, 1);
            continue;
        }
        for (size_t r = 0; r < jb->k; r++) {
            jb->out_idx[i * jb->k + r] = rc[r].idx;
            if (jb->out_score) jb->out_score[i * jb->k + r] = cb_knn_score_of_good(rc[r].g, jb->metric);
        }
    }
    if (w.oom) atomic_store(&jb->failed, CB_ENOMEM);
    walker_free(&w);
    free(rc);
    return NULL;
}

/* Queries that need the exact answer, one at a time through knn.h. */
static int answer_exactly(const sjob *jb, cb_error *err) {
    const cb_hnsw *h = jb->h;
    cb_knn_index *ix;
    int rc = cb_knn_index_create(&ix, h->B, h->n, h->d, err);
    for (size_t i = 0; !rc && i < jb->nq; i++) {
        if (!jb->need_exact[i]) continue;
        const cb_knn_params *p = jb->p;
        int32_t self = p->self_index ? p->self_index[i] : -1;
        cb_knn_params one = {.threads = 1, .self_index = &self,
                             .exclude = p->exclude ? p->exclude + (p->exclude_stride ? i * p->exclude_stride : 0) : NULL};
        rc = cb_knn_index_search(ix, jb->Q + i * h->d, 1, jb->k, jb->metric, &one, jb->out_idx + i * jb->k,
                                 jb->out_score ? jb->out_score + i * jb->k : NULL, err);
    }
    cb_knn_index_free(ix);
    return rc;
}

static int search_job(const cb_hnsw *h, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                      const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err) {
    static const cb_knn_params defaults = {0};
    const cb_knn_params *p = params ? params : &defaults;
    if (!h) return cb_fail(err, CB_EINVAL, "hnsw: NULL index");
    if (metric != CB_KNN_DOT && metric != CB_KNN_L2 && metric != CB_KNN_L2_UNIT)
        return cb_fail(err, CB_EINVAL, "hnsw: unknown metric %d", (int)metric);
    if (k == 0) return cb_fail(err, CB_EINVAL, "hnsw: k must be at least 1");
    if (k > h->n) return cb_fail(err, CB_EINVAL, "hnsw: k = %zu is larger than the catalog (%zu items)", k, h->n);
    if (nq && (!Q || !out_idx)) return cb_fail(err, CB_EINVAL, "hnsw: NULL query or output");
    if (p->exclude && p->exclude_stride && p->exclude_stride < (h->n + 63) / 64)
        return cb_fail(err, CB_EINVAL, "hnsw: exclude_stride %zu words is shorter than %zu rows", p->exclude_stride,
                       h->n);
    for (size_t i = 0; p->self_index && i < nq; i++)
        if (p->self_index[i] >= (int64_t)h->n)
            return cb_fail(err, CB_EINVAL, "hnsw: self_index[%zu] = %d is outside the catalog", i,
                           (int)p->self_index[i]);
    if (p->n_fallback) *p->n_fallback = 0;
    if (nq == 0) return CB_OK;
    size_t ef = p->ef ? p->ef : CB_HNSW_DEFAULT_EF;
    if (ef < k) ef = k;
    if (ef > h->n) ef = h->n;
    sjob jb = {.h = h, .Q = Q, .nq = nq, .k = k, .ef = ef, .metric = metric, .p = p, .out_idx = out_idx,
               .out_score = out_score};
    jb.need_exact = cb_calloc(nq, 1, err);
    if (!jb.need_exact) return CB_ENOMEM;
    atomic_init(&jb.next, 0);
    atomic_init(&jb.n_exact, 0);
    atomic_init(&jb.failed, 0);
    int nthreads = cb_threads_resolve(p->threads, 64);
    if ((size_t)nthreads > nq) nthreads = (int)nq;
    cb_threads_run(search_worker, &jb, 0, nthreads);
    int rc = atomic_load(&jb.failed) ? cb_fail(err, CB_ENOMEM, "hnsw: out of memory for search scratch") : CB_OK;
    if (!rc && atomic_load(&jb.n_exact)) rc = answer_exactly(&jb, err);
    if (p->n_fallback) *p->n_fallback = atomic_load(&jb.n_exact);
    free(jb.need_exact);
    return rc;
}

int cb_hnsw_search(const cb_hnsw *h, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                   const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err) {
    return search_job(h, Q, nq, k, metric, params, out_idx, out_score, err);
}

int cb_hnsw_similar_table(cb_knn_table *table, const cb_hnsw *h, size_t k, size_t ef, int threads, cb_error *err) {
    memset(table, 0, sizeof *table);
    if (!h) return cb_fail(err, CB_EINVAL, "hnsw: NULL index");
    const size_t n = h->n;
    if (n < 2) return cb_fail(err, CB_EINVAL, "hnsw: a similar-items table needs at least 2 items (got %zu)", n);
    if (k == 0 || k > n - 1)
        return cb_fail(err, CB_EINVAL, "hnsw: k = %zu must be between 1 and the number of other items (%zu)", k,
                       n - 1);
    int32_t *self = cb_malloc(n * sizeof *self, err);
    table->neighbors = cb_calloc(n * k, sizeof *table->neighbors, err);
    table->distances = cb_calloc(n * k, sizeof *table->distances, err);
    int rc = self && table->neighbors && table->distances ? CB_OK : CB_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < n; i++) self[i] = (int32_t)i;
        /* the walk starts at the item itself: a narrower beam suffices */
        cb_knn_params p = {.threads = threads, .self_index = self, .ef = ef ? ef : CB_HNSW_TABLE_EF};
        rc = search_job(h, h->B, n, k, CB_KNN_L2, &p, table->neighbors, table->distances, err);
    }
    free(self);
    if (rc) {
        cb_knn_table_free(table);
        return rc;
    }
    table->n_items = n;
    table->k = k;
    return CB_OK;
}

/* ---------------------------------------------------------------------------
 * Save / load. */

static int set_meta_u64(cb_st_writer *w, const char *key, uint64_t v, cb_error *err) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cb_st_set_meta(w, key, buf, err);
}

/* A section's key: "links0" for the file's first graph, "rank.links0" for
 * the one named "rank" (cb_hnsw_save_sections). */
static const char *section_key(char *buf, size_t size, const char *section, const char *key) {
    if (!section) return key;
    snprintf(buf, size, "%s.%s", section, key);
    return buf;
}

/* A hash of the rows a named section's graph was built over, saved with it
 * ("vectors"): the file's fingerprint names the model's item vectors (the
 * first graph's rows: no hash of its own, which a load would compute over
 * every row again), and a second graph's rows (the recommender's ranking
 * vectors) can change while they stay the same (another popularity prior):
 * such a graph is refused at load. */
static void vectors_hash(const cb_hnsw *h, char buf[17]) {
    snprintf(buf, 17, "%016" PRIx64, cb_hash64(h->B, h->n * h->d * sizeof *h->B, 0));
}

static int add_graph(cb_st_writer *w, const cb_hnsw *h, const char *section, cb_error *err) {
    char k[64], vh[17] = "";
    if (section) vectors_hash(h, vh);
#define KEY(name) section_key(k, sizeof k, section, name)
    int64_t s0[2] = {(int64_t)h->n, (int64_t)(h->m0 + 1)}, sl[1] = {(int64_t)h->n},
            su[1] = {(int64_t)(h->n_upper + 1)};
    int rc;
    if (!(rc = cb_st_add(w, KEY("links0"), CB_ST_I32, s0, 2, h->links0, err)) &&
        !(rc = cb_st_add(w, KEY("levels"), CB_ST_U8, sl, 1, h->levels, err)) &&
        !(rc = cb_st_add(w, KEY("upper"), CB_ST_I32, su, 1, h->upper, err)) &&
        !(rc = set_meta_u64(w, KEY("m"), h->m, err)) &&
        !(rc = set_meta_u64(w, KEY("ef_construction"), h->ef_construction, err)) &&
        !(rc = set_meta_u64(w, KEY("dim"), h->d, err)) &&
        !(rc = set_meta_u64(w, KEY("entry"), (uint64_t)h->entry, err)) &&
        !(rc = set_meta_u64(w, KEY("max_level"), (uint64_t)h->max_level, err)) &&
        !(rc = *vh ? cb_st_set_meta(w, KEY("vectors"), vh, err) : CB_OK) && h->counted)
        rc = set_meta_u64(w, KEY("unreached"), h->unreached, err);
    if (!rc && h->dup_of && !(rc = set_meta_u64(w, KEY("copies"), h->n_dups, err)) &&
        !(rc = cb_st_add(w, KEY("dup_of"), CB_ST_I32, sl, 1, h->dup_of, err)))
        rc = cb_st_add(w, KEY("dup_next"), CB_ST_I32, sl, 1, h->dup_next, err);
#undef KEY
    return rc;
}

int cb_hnsw_save(const cb_hnsw *h, const char *path, const char *fingerprint, cb_error *err) {
    return cb_hnsw_save_sections(h, NULL, NULL, path, fingerprint, err);
}

int cb_hnsw_save_sections(const cb_hnsw *h, const cb_hnsw *extra, const char *extra_name, const char *path,
                          const char *fingerprint, cb_error *err) {
    if (!h) return cb_fail(err, CB_EINVAL, "hnsw: cannot save a NULL index");
    if (!fingerprint || !*fingerprint) return cb_fail(err, CB_EINVAL, "hnsw: an index needs the model fingerprint");
    if (extra && (!extra_name || !*extra_name || strlen(extra_name) > 16))
        return cb_fail(err, CB_EINVAL, "hnsw: a second graph needs a short section name");
    cb_st_writer *w = cb_st_writer_create(err);
    if (!w) return CB_ENOMEM;
    int rc;
    if (!(rc = add_graph(w, h, NULL, err)) && !(rc = extra ? add_graph(w, extra, extra_name, err) : CB_OK) &&
        !(rc = cb_st_set_meta(w, "fingerprint", fingerprint, err)))
        rc = cb_st_write(w, path, FORMAT, FORMAT_VERSION, err);
    cb_st_writer_free(w);
    return rc;
}

static bool meta_u64(const cb_st *st, const char *key, uint64_t max, uint64_t *out) {
    const char *s = cb_st_meta(st, key);
    if (!s || !*s) return false;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v > max) return false;
    *out = v;
    return true;
}

/* Node self's list on layer l: at most mmax links, each to another node
 * that exists on layer l (a link to a node below it would be read as that
 * node's list on l, outside its region). */
static bool links_valid(const cb_hnsw *h, const int32_t *lk, size_t mmax, size_t self, int l) {
    if (lk[0] < 0 || (size_t)lk[0] > mmax) return false;
    for (int32_t r = 1; r <= lk[0]; r++)
        if (lk[r] < 0 || (size_t)lk[r] >= h->n || (size_t)lk[r] == self || h->levels[lk[r]] < l ||
            (h->dup_of && h->dup_of[lk[r]] >= 0))
            return false;
    return true;
}

/* The groups of equal rows: a copy follows its group's first row, has no
 * links and no upper layer, and each chain runs upwards through its group. */
static int dups_check(const cb_hnsw *h, const char *path, cb_error *err) {
    const size_t n = h->n;
    size_t copies = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t f = h->dup_of[i], nx = h->dup_next[i], head = f >= 0 ? f : (int32_t)i;
        bool ok = f < (int32_t)i && (f < 0 || (f >= 0 && h->dup_of[f] < 0 && h->levels[i] == 0 &&
                                               links_of(h, i, 0)[0] == 0 && (int32_t)i != h->entry));
        ok = ok && (nx < 0 || ((size_t)nx < n && nx > (int32_t)i && h->dup_of[nx] == head));
        ok = ok && (f < 0 || !memcmp(h->B + i * h->d, h->B + (size_t)f * h->d, h->d * sizeof *h->B)); /* equal rows */
        if (!ok) return cb_fail(err, CB_EFORMAT, "%s: row %zu's group of equal rows is invalid", path, i);
        copies += f >= 0;
    }
    /* every copy on its group's chain once: the chains from the heads */
    size_t walked = 0;
    for (size_t i = 0; i < n; i++)
        if (h->dup_of[i] < 0)
            for (int32_t k = h->dup_next[i]; k >= 0; k = h->dup_next[k]) walked++; /* ascending: ends */
    return copies == h->n_dups && walked == copies ? CB_OK
                                                   : cb_fail(err, CB_EFORMAT, "%s: the copies do not add up", path);
}

static int load_check(cb_hnsw *h, const char *path, int64_t upper_len, cb_error *err) {
    const size_t n = h->n;
    if (h->dup_of) {
        int rc = dups_check(h, path, err);
        if (rc) return rc;
    }
    for (size_t i = 0; i < n; i++)
        if (h->levels[i] > h->max_level)
            return cb_fail(err, CB_EFORMAT, "%s: node %zu is above the top layer", path, i);
    h->n_upper = layout_upper(h->up_off, h->levels, n, h->m);
    if ((int64_t)h->n_upper + 1 != upper_len)
        return cb_fail(err, CB_EFORMAT, "%s: the upper layers hold %" PRId64 " links, expected %zu", path,
                       upper_len, h->n_upper + 1);
    if (h->entry < 0 || (size_t)h->entry >= n || h->levels[h->entry] != h->max_level)
        return cb_fail(err, CB_EFORMAT, "%s: invalid entry point", path);
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l <= h->levels[i]; l++)
            if (!links_valid(h, links_of(h, i, l), l ? h->m : h->m0, i, l))
                return cb_fail(err, CB_EFORMAT, "%s: node %zu has invalid links on layer %d", path, i, l);
    return CB_OK;
}

int cb_hnsw_load(cb_hnsw **out, const char *path, const float *B, size_t n, size_t d, const char *fingerprint,
                 cb_error *err) {
    return cb_hnsw_load_section(out, path, NULL, B, n, d, fingerprint, err);
}

int cb_hnsw_load_section(cb_hnsw **out, const char *path, const char *section, const float *B, size_t n, size_t d,
                         const char *fingerprint, cb_error *err) {
    *out = NULL;
    char k[64];
#define KEY(name) section_key(k, sizeof k, section, name)
    int rc = check_shape(B, n, d, err);
    if (rc) return rc;
    if (!fingerprint || !*fingerprint) return cb_fail(err, CB_EINVAL, "hnsw: loading an index needs the fingerprint");
    cb_st *st;
    if ((rc = cb_st_open(&st, path, FORMAT, FORMAT_VERSION, err))) return rc;
    const char *fp = cb_st_meta(st, "fingerprint");
    uint64_t m = 0, efc = 0, dim = 0, entry = 0, top = 0;
    int64_t s0[2], sl[1], su[1];
    const int32_t *links0 = NULL, *upper = NULL;
    const uint8_t *levels = NULL;
    if (section && !cb_st_meta(st, KEY("m"))) { /* a file without that graph (an older cbrec's) */
        cb_st_close(st);
        return CB_OK;
    }
    if (!fp || strcmp(fp, fingerprint) != 0) {
        rc = cb_fail(err, CB_EFORMAT, "%s: the index was built from another model (fingerprint %s, expected %s); rebuild it "
                     "from this model with `cbrec index`", path, fp ? fp : "(none)", fingerprint);
    } else if (!meta_u64(st, KEY("m"), 256, &m) || m < 2 || !meta_u64(st, KEY("ef_construction"), 100000, &efc) ||
               !meta_u64(st, KEY("dim"), INT32_MAX, &dim) || !meta_u64(st, KEY("entry"), INT32_MAX, &entry) ||
               !meta_u64(st, KEY("max_level"), MAX_LEVEL, &top)) {
        rc = cb_fail(err, CB_EFORMAT, "%s: missing or invalid index settings", path);
    } else if (!(links0 = cb_st_tensor(st, KEY("links0"), CB_ST_I32, 2, s0, err)) ||
               !(levels = cb_st_tensor(st, KEY("levels"), CB_ST_U8, 1, sl, err)) ||
               !(upper = cb_st_tensor(st, KEY("upper"), CB_ST_I32, 1, su, err))) {
        rc = CB_EFORMAT;
    } else if ((uint64_t)s0[0] != n || sl[0] != s0[0] || (uint64_t)s0[1] != 2 * m + 1 || dim != d) {
        rc = cb_fail(err, CB_EFORMAT, "%s: the index is for %" PRId64 " items of dimension %" PRIu64
                     ", the model has %zu of dimension %zu", path, s0[0], dim, n, d);
    }
    cb_hnsw *h = rc ? NULL : hnsw_alloc(B, n, d, (size_t)m, err);
    if (!rc && !h) rc = CB_ENOMEM;
    if (!rc) {
        h->ef_construction = (size_t)efc, h->entry = (int32_t)entry, h->max_level = (int)top;
        h->links0 = links0, h->levels = levels, h->upper = upper, h->st = st;
        uint64_t copies = 0;
        int64_t sd[1], sn[1];
        if (cb_st_meta(st, KEY("copies")) && (!meta_u64(st, KEY("copies"), n - 1, &copies) || !copies)) {
            rc = cb_fail(err, CB_EFORMAT, "%s: invalid index settings (copies)", path);
        } else if (copies) {
            h->dup_of = cb_st_tensor(st, KEY("dup_of"), CB_ST_I32, 1, sd, err);
            h->dup_next = h->dup_of ? cb_st_tensor(st, KEY("dup_next"), CB_ST_I32, 1, sn, err) : NULL;
            h->n_dups = (size_t)copies;
            if (!h->dup_next) rc = CB_EFORMAT;
            else if ((uint64_t)sd[0] != n || (uint64_t)sn[0] != n)
                rc = cb_fail(err, CB_EFORMAT, "%s: the groups of equal rows are not for %zu rows", path, n);
        }
        if (!rc) rc = load_check(h, path, su[0], err);
        /* a named section's alone (vectors_hash); none in a file from before it */
        const char *saved = rc || !section ? NULL : cb_st_meta(st, KEY("vectors"));
        char vh[17];
        if (saved && (vectors_hash(h, vh), strcmp(saved, vh)))
            rc = cb_fail(err, CB_EFORMAT,
                         "%s: the index's '%s' graph was built over other vectors than this model's (the same item "
                         "vectors, another ranking: e.g. another popularity prior; hash %s, expected %s); rebuild "
                         "it from this model with `cbrec index`",
                         path, section, saved, vh);
    }
    if (!rc) { /* a file without the saved count (cbrec < 0.3): its unreached nodes counted now */
        uint64_t unreached = 0;
        h->counted = cb_st_meta(st, KEY("unreached")) != NULL;
        if (h->counted && !meta_u64(st, KEY("unreached"), n - 1, &unreached)) /* the entry is always reached */
            rc = cb_fail(err, CB_EFORMAT, "%s: invalid index settings (unreached)", path);
        size_t reached = rc || h->counted ? n - (size_t)unreached : cb_hnsw_reachable(h);
        if (!rc && !reached) rc = cb_fail(err, CB_ENOMEM, "hnsw: out of memory");
        h->unreached = n - reached;
    }
    if (rc) {
        if (h) cb_hnsw_free(h);
        else cb_st_close(st);
        return rc;
    }
    *out = h;
    return CB_OK;
#undef KEY
}
