/* hnsw — the approximate index: graph construction (insertion with the
 * neighbour-selection heuristic), beam search with in-walk filters and
 * canonical rescoring, the similar-items table from the graph, and
 * st-container save / memory-mapped load. See hnsw.h for the contract. */
#include "index/hnsw.h"
#include "base/st.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HNSW_X86 1
#else
#define HNSW_X86 0
#endif

#define FORMAT "cbrec-hnsw"
#define FORMAT_VERSION 1
#define MAX_LEVEL 30

typedef float (*dist_fn)(const float *, const float *, size_t);

struct cb_hnsw {
    const float *B;
    size_t n, d, m, m0, ef_construction;
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
    dist_fn l2, ndot;
    /* While a parallel build runs: node i's link lists are guarded by
     * locks[i & lock_mask]; entry / max_level by top_lock. NULL otherwise
     * (single-threaded builds and every search after the build). */
    pthread_mutex_t *locks, top_lock;
    size_t lock_mask;
};

/* ---------------------------------------------------------------------------
 * Float distances of the walk (ranking only; results are rescored canonically). */

static float l2_scalar(const float *a, const float *b, size_t d) {
    float s = 0.0f;
    for (size_t t = 0; t < d; t++) {
        float x = a[t] - b[t];
        s += x * x;
    }
    return s;
}

static float ndot_scalar(const float *a, const float *b, size_t d) {
    float s = 0.0f;
    for (size_t t = 0; t < d; t++) s += a[t] * b[t];
    return -s;
}

#if HNSW_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static float l2_avx2(const float *a, const float *b, size_t d) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t t = 0; t < d; t += 8) {
        __m256 x = _mm256_sub_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t));
        acc = _mm256_fmadd_ps(x, x, acc);
    }
    return hsum256(acc);
}

__attribute__((target("avx2,fma"))) static float ndot_avx2(const float *a, const float *b, size_t d) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t t = 0; t < d; t += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t), acc);
    return -hsum256(acc);
}
#endif

static void pick_dists(cb_hnsw *h) {
    h->l2 = l2_scalar;
    h->ndot = ndot_scalar;
#if HNSW_X86
    __builtin_cpu_init();
    if (h->d % 8 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        h->l2 = l2_avx2;
        h->ndot = ndot_avx2;
    }
#endif
}

static inline void prefetch(const void *p) {
#if defined(__GNUC__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
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
 * A binary max-heap of (key, id); the candidate queue stores -distance so
 * that its top is the nearest. */

typedef struct hnode {
    float key;
    int32_t id;
} hnode;

typedef struct heap {
    hnode *e;
    size_t n, cap;
} heap;

static bool heap_push(heap *hp, float key, int32_t id) {
    if (hp->n == hp->cap) {
        size_t cap = hp->cap ? 2 * hp->cap : 256;
        hnode *e = realloc(hp->e, cap * sizeof *e);
        if (!e) return false;
        hp->e = e, hp->cap = cap;
    }
    size_t i = hp->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (hp->e[p].key >= key) break;
        hp->e[i] = hp->e[p];
        i = p;
    }
    hp->e[i] = (hnode){key, id};
    return true;
}

static hnode heap_pop(heap *hp) {
    hnode top = hp->e[0], last = hp->e[--hp->n];
    size_t i = 0, n = hp->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hp->e[c + 1].key > hp->e[c].key) c++;
        if (hp->e[c].key <= last.key) break;
        hp->e[i] = hp->e[c];
        i = c;
    }
    if (n) hp->e[i] = last;
    return top;
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

typedef struct walker {
    uint32_t *tag; /* [n] visited when tag == epoch */
    int32_t *lbuf; /* [m0 + 1]: a link list copied under its lock (parallel build) */
    uint32_t epoch;
    heap cand, res;
    size_t n_visited;
    bool oom;
} walker;

static int walker_init(walker *w, size_t n, size_t m0, cb_error *err) {
    memset(w, 0, sizeof *w);
    w->tag = cb_calloc(n, sizeof *w->tag, err);
    w->lbuf = w->tag ? cb_calloc(m0 + 1, sizeof *w->lbuf, err) : NULL;
    return w->lbuf ? CB_OK : CB_ENOMEM;
}

static void walker_free(walker *w) {
    free(w->tag);
    free(w->lbuf);
    free(w->cand.e);
    free(w->res.e);
}

static void walker_reset(walker *w, size_t n) {
    if (++w->epoch == 0) {
        memset(w->tag, 0, n * sizeof *w->tag);
        w->epoch = 1;
    }
    w->cand.n = w->res.n = 0;
    w->n_visited = 0;
}

/* Greedy descent from `*cur` through layers top .. stop+1 (unfiltered). */
static void descend(const cb_hnsw *h, int32_t *lbuf, const float *q, dist_fn dist, int32_t *cur, float *cur_d,
                    int top, int stop) {
    for (int l = top; l > stop; l--) {
        bool moved = true;
        while (moved) {
            moved = false;
            const int32_t *lk = links_read(h, (size_t)*cur, l, lbuf);
            for (int32_t r = 1; r <= lk[0]; r++) {
                float dd = dist(q, h->B + (size_t)lk[r] * h->d, h->d);
                if (dd < *cur_d) *cur_d = dd, *cur = lk[r], moved = true;
            }
        }
    }
}

/* The ef best eligible rows reachable from `ep` on `level`, left in w->res
 * (a max-heap by distance: its top is the worst kept). */
static void search_layer(const cb_hnsw *h, walker *w, const float *q, dist_fn dist, int32_t ep, float ep_d,
                         size_t ef, int level, const filter *f) {
    const size_t d = h->d;
    walker_reset(w, h->n);
    w->tag[ep] = w->epoch;
    w->n_visited = 1;
    bool ok = heap_push(&w->cand, -ep_d, ep);
    if (eligible(f, (size_t)ep)) ok = ok && heap_push(&w->res, ep_d, ep);
    while (ok && w->cand.n) {
        hnode c = heap_pop(&w->cand);
        if (w->res.n >= ef && -c.key > w->res.e[0].key) break;
        const int32_t *lk = links_read(h, (size_t)c.id, level, w->lbuf);
        int32_t cnt = lk[0];
        for (int32_t r = 1; r <= cnt; r++) { /* a row of 32 floats spans two cache lines */
            const float *v = h->B + (size_t)lk[r] * d;
            prefetch(v);
            if (d > 16) prefetch(v + 16);
        }
        for (int32_t r = 1; r <= cnt && ok; r++) {
            int32_t j = lk[r];
            if (w->tag[j] == w->epoch) continue;
            w->tag[j] = w->epoch;
            w->n_visited++;
            float dd = dist(q, h->B + (size_t)j * d, d);
            if (w->res.n < ef || dd < w->res.e[0].key) {
                ok = heap_push(&w->cand, -dd, j);
                if (ok && eligible(f, (size_t)j)) {
                    ok = heap_push(&w->res, dd, j);
                    if (w->res.n > ef) heap_pop(&w->res);
                }
            }
        }
    }
    if (!ok) w->oom = true;
}

/* ---------------------------------------------------------------------------
 * Construction. */

static int cmp_hnode_asc(const void *a, const void *b) {
    const hnode *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The neighbour-selection heuristic: walk candidates nearest first and keep
 * one only if it is nearer to the base than to every one already kept, so
 * links spread in different directions. c[0..nc) sorted ascending; the kept
 * ones are moved to the front; returns how many (<= limit). */
static size_t select_neighbors(const cb_hnsw *h, hnode *c, size_t nc, size_t limit) {
    size_t kept = 0;
    for (size_t i = 0; i < nc && kept < limit; i++) {
        const float *v = h->B + (size_t)c[i].id * h->d;
        bool good = true;
        for (size_t r = 0; r < kept && good; r++)
            if (h->l2(v, h->B + (size_t)c[r].id * h->d, h->d) < c[i].key) good = false;
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
static void connect(cb_hnsw *h, int32_t s, int32_t i, int level, hnode *scratch) {
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
        const float *sv = h->B + (size_t)s * h->d;
        size_t nc = 0;
        for (int32_t r = 1; r <= lk[0]; r++)
            scratch[nc++] = (hnode){h->l2(sv, h->B + (size_t)lk[r] * h->d, h->d), lk[r]};
        scratch[nc++] = (hnode){h->l2(sv, h->B + (size_t)i * h->d, h->d), i};
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
    float cur_d = h->l2(q, h->B + (size_t)cur * h->d, h->d);
    descend(h, w->lbuf, q, h->l2, &cur, &cur_d, top, level);
    for (int l = level < top ? level : top; l >= 0 && !w->oom; l--) {
        search_layer(h, w, q, h->l2, cur, cur_d, h->ef_construction, l, NULL);
        size_t nc = w->res.n;
        if (nc == 0) break; /* out of memory in the walk */
        for (size_t r = nc; r > 0; r--) sel[r - 1] = heap_pop(&w->res); /* ascending */
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
        for (size_t r = 0; r < kept; r++) connect(h, sel[r].id, i, l, bs->scratch);
    }
    if (raises) {
        h->max_level = level, h->entry = i;
        if (h->locks) pthread_mutex_unlock(&h->top_lock);
    }
}

typedef struct bjob {
    cb_hnsw *h;
    atomic_size_t next;
    atomic_int failed;
} bjob;

static void *build_worker(void *arg) {
    bjob *jb = arg;
    cb_hnsw *h = jb->h;
    cb_error e;
    bscratch bs = {0};
    bs.sel = cb_calloc(h->ef_construction + 1, sizeof *bs.sel, &e);
    bs.scratch = cb_calloc(h->m0 + 2, sizeof *bs.scratch, &e);
    bool ok = bs.sel && bs.scratch && walker_init(&bs.w, h->n, h->m0, &e) == CB_OK;
    size_t i;
    while (ok && !atomic_load(&jb->failed) && (i = atomic_fetch_add(&jb->next, 1)) < h->n) {
        insert(h, &bs, (int32_t)i);
        ok = !bs.w.oom;
    }
    if (!ok) atomic_store(&jb->failed, CB_ENOMEM);
    if (bs.w.tag) walker_free(&bs.w);
    free(bs.sel), free(bs.scratch);
    return NULL;
}

static int resolve_threads(int threads) {
    if (threads > 0) return threads > 64 ? 64 : threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 64 ? 64 : n) : 1;
}

/* Insert nodes 1..n-1 from `threads` threads pulling the next index; one
 * thread inserts in index order without locks (the deterministic build). */
static int build_links(cb_hnsw *h, int threads, cb_error *err) {
    bjob jb = {.h = h};
    atomic_init(&jb.next, 1);
    atomic_init(&jb.failed, 0);
    if ((size_t)threads > h->n / 64 + 1) threads = (int)(h->n / 64 + 1); /* tiny graphs: not worth it */
    if (threads > 1) {
        size_t n_locks = 1;
        while (n_locks < h->n && n_locks < ((size_t)1 << 16)) n_locks <<= 1;
        h->locks = cb_calloc(n_locks, sizeof *h->locks, err);
        if (!h->locks) return CB_ENOMEM;
        for (size_t i = 0; i < n_locks; i++) pthread_mutex_init(&h->locks[i], NULL);
        pthread_mutex_init(&h->top_lock, NULL);
        h->lock_mask = n_locks - 1;
    }
    pthread_t tid[64];
    bool started[64] = {false};
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, build_worker, &jb) == 0;
    build_worker(&jb);
    for (int t = 1; t < threads; t++)
        if (started[t]) pthread_join(tid[t], NULL);
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

static cb_hnsw *hnsw_alloc(const float *B, size_t n, size_t d, size_t m, cb_error *err) {
    cb_hnsw *h = cb_calloc(1, sizeof *h, err);
    if (!h) return NULL;
    *h = (cb_hnsw){.B = B, .n = n, .d = d, .m = m, .m0 = 2 * m};
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
    if (efc < m) efc = m;
    cb_hnsw *h = hnsw_alloc(B, n, d, m, err);
    if (!h) return CB_ENOMEM;
    h->ef_construction = efc;
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
    h->n_upper = layout_upper(h->up_off, h->own_levels, n, m);
    h->own_upper = cb_calloc(h->n_upper + 1, sizeof *h->own_upper, err);
    rc = h->own_upper ? CB_OK : CB_ENOMEM;
    if (!rc) {
        h->links0 = h->own_links0, h->levels = h->own_levels, h->upper = h->own_upper;
        h->entry = 0, h->max_level = h->levels[0];
        rc = build_links(h, resolve_threads(p->threads), err);
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
    cb_st_close(h->st);
    free(h);
}

size_t cb_hnsw_rows(const cb_hnsw *h) { return h ? h->n : 0; }
size_t cb_hnsw_m(const cb_hnsw *h) { return h ? h->m : 0; }
size_t cb_hnsw_ef_construction(const cb_hnsw *h) { return h ? h->ef_construction : 0; }

/* ---------------------------------------------------------------------------
 * Search. */

typedef struct sjob {
    const cb_hnsw *h;
    const float *Q;
    size_t nq, k, ef;
    cb_knn_metric metric;
    const cb_knn_params *p;
    bool from_self; /* queries are base rows self_index[i]: start the walk there */
    int32_t *out_idx;
    float *out_score;
    uint8_t *need_exact; /* [nq] */
    atomic_size_t next, n_exact;
    atomic_int failed;
} sjob;

/* One query: returns the number of eligible rows found (<= ef), written
 * canonically rescored and sorted into rc[0..). */
static size_t search_query(const sjob *jb, walker *w, const float *q, const filter *f, size_t ef,
                           cb_knn_cand *rc) {
    const cb_hnsw *h = jb->h;
    dist_fn dist = jb->metric == CB_KNN_DOT ? h->ndot : h->l2;
    int32_t cur = jb->from_self && f->self >= 0 ? (int32_t)f->self : h->entry;
    float cur_d = dist(q, h->B + (size_t)cur * h->d, h->d);
    if (cur == h->entry) descend(h, w->lbuf, q, dist, &cur, &cur_d, h->max_level, 0);
    search_layer(h, w, q, dist, cur, cur_d, ef, 0, f);
    size_t m = 0;
    while (w->res.n) rc[m++] = (cb_knn_cand){0.0, heap_pop(&w->res).id};
    cb_knn_canonical_rescore(q, h->B, h->d, jb->metric, rc, m);
    qsort(rc, m, sizeof *rc, cb_knn_cand_cmp);
    return m;
}

static void *search_worker(void *arg) {
    sjob *jb = arg;
    const cb_hnsw *h = jb->h;
    walker w;
    cb_error e;
    cb_knn_cand *rc = malloc(jb->ef * sizeof *rc);
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
        size_t ef = jb->ef, m = search_query(jb, &w, q, &f, ef, rc);
        /* Too few eligible rows reached: widen the beam, then answer exactly. */
        while (m < jb->k && w.n_visited < h->n && ef < h->n && !w.oom) {
            ef = ef * 4 < h->n ? ef * 4 : h->n;
            cb_knn_cand *bigger = realloc(rc, ef * sizeof *rc);
            if (!bigger) {
                w.oom = true;
                break;
            }
            rc = bigger;
            m = search_query(jb, &w, q, &f, ef, rc);
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
                      const cb_knn_params *params, bool from_self, int32_t *out_idx, float *out_score, cb_error *err) {
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
    sjob jb = {.h = h, .Q = Q, .nq = nq, .k = k, .ef = ef, .metric = metric, .p = p, .from_self = from_self,
               .out_idx = out_idx, .out_score = out_score};
    jb.need_exact = cb_calloc(nq, 1, err);
    if (!jb.need_exact) return CB_ENOMEM;
    atomic_init(&jb.next, 0);
    atomic_init(&jb.n_exact, 0);
    atomic_init(&jb.failed, 0);
    int nthreads = resolve_threads(p->threads);
    if ((size_t)nthreads > nq) nthreads = (int)nq;
    pthread_t tid[64];
    bool started[64] = {false};
    for (int t = 1; t < nthreads; t++) started[t] = pthread_create(&tid[t], NULL, search_worker, &jb) == 0;
    search_worker(&jb);
    for (int t = 1; t < nthreads; t++)
        if (started[t]) pthread_join(tid[t], NULL);
    int rc = atomic_load(&jb.failed) ? cb_fail(err, CB_ENOMEM, "hnsw: out of memory for search scratch") : CB_OK;
    if (!rc && atomic_load(&jb.n_exact)) rc = answer_exactly(&jb, err);
    if (p->n_fallback) *p->n_fallback = atomic_load(&jb.n_exact);
    free(jb.need_exact);
    return rc;
}

int cb_hnsw_search(const cb_hnsw *h, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                   const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err) {
    return search_job(h, Q, nq, k, metric, params, false, out_idx, out_score, err);
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
        rc = search_job(h, h->B, n, k, CB_KNN_L2, &p, true, table->neighbors, table->distances, err);
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

int cb_hnsw_save(const cb_hnsw *h, const char *path, const char *fingerprint, cb_error *err) {
    if (!h) return cb_fail(err, CB_EINVAL, "hnsw: cannot save a NULL index");
    if (!fingerprint || !*fingerprint) return cb_fail(err, CB_EINVAL, "hnsw: an index needs the model fingerprint");
    cb_st_writer *w = cb_st_writer_create(err);
    if (!w) return CB_ENOMEM;
    int64_t s0[2] = {(int64_t)h->n, (int64_t)(h->m0 + 1)}, sl[1] = {(int64_t)h->n},
            su[1] = {(int64_t)(h->n_upper + 1)};
    int rc;
    if (!(rc = cb_st_add(w, "links0", CB_ST_I32, s0, 2, h->links0, err)) &&
        !(rc = cb_st_add(w, "levels", CB_ST_U8, sl, 1, h->levels, err)) &&
        !(rc = cb_st_add(w, "upper", CB_ST_I32, su, 1, h->upper, err)) &&
        !(rc = cb_st_set_meta(w, "fingerprint", fingerprint, err)) && !(rc = set_meta_u64(w, "m", h->m, err)) &&
        !(rc = set_meta_u64(w, "ef_construction", h->ef_construction, err)) &&
        !(rc = set_meta_u64(w, "dim", h->d, err)) && !(rc = set_meta_u64(w, "entry", (uint64_t)h->entry, err)) &&
        !(rc = set_meta_u64(w, "max_level", (uint64_t)h->max_level, err)))
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

/* Every count within its layer's bound, every id a valid other node. */
static bool links_valid(const int32_t *lk, size_t mmax, size_t self, size_t n) {
    if (lk[0] < 0 || (size_t)lk[0] > mmax) return false;
    for (int32_t r = 1; r <= lk[0]; r++)
        if (lk[r] < 0 || (size_t)lk[r] >= n || (size_t)lk[r] == self) return false;
    return true;
}

static int load_check(cb_hnsw *h, const char *path, int64_t upper_len, cb_error *err) {
    const size_t n = h->n;
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
            if (!links_valid(links_of(h, i, l), l ? h->m : h->m0, i, n))
                return cb_fail(err, CB_EFORMAT, "%s: node %zu has invalid links on layer %d", path, i, l);
    return CB_OK;
}

int cb_hnsw_load(cb_hnsw **out, const char *path, const float *B, size_t n, size_t d, const char *fingerprint,
                 cb_error *err) {
    *out = NULL;
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
    if (!fp || strcmp(fp, fingerprint) != 0) {
        rc = cb_fail(err, CB_EFORMAT, "%s: the index was built from another model (fingerprint %s, expected %s)",
                     path, fp ? fp : "(none)", fingerprint);
    } else if (!meta_u64(st, "m", 256, &m) || m < 2 || !meta_u64(st, "ef_construction", 100000, &efc) ||
               !meta_u64(st, "dim", INT32_MAX, &dim) || !meta_u64(st, "entry", INT32_MAX, &entry) ||
               !meta_u64(st, "max_level", MAX_LEVEL, &top)) {
        rc = cb_fail(err, CB_EFORMAT, "%s: missing or invalid index settings", path);
    } else if (!(links0 = cb_st_tensor(st, "links0", CB_ST_I32, 2, s0, err)) ||
               !(levels = cb_st_tensor(st, "levels", CB_ST_U8, 1, sl, err)) ||
               !(upper = cb_st_tensor(st, "upper", CB_ST_I32, 1, su, err))) {
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
        rc = load_check(h, path, su[0], err);
    }
    if (rc) {
        if (h) cb_hnsw_free(h);
        else cb_st_close(st);
        return rc;
    }
    *out = h;
    return CB_OK;
}
