/* knn — exact top-k by inner product or squared distance (blocked sgemm or a
 * fused dot+scan loop, then canonical rescoring), and the similar-items
 * table with cold-start insertion and st-container save/load. See knn.h for
 * the contract and why rescoring makes the answer independent of threads. */
#include "index/knn.h"
#include "base/st.h"
#include "base/threads.h"

#include <cblas.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KNN_X86 1
#else
#define KNN_X86 0
#endif

#define DEFAULT_QUERY_TILE 128
#define DEFAULT_BASE_TILE 2048
#define DEFAULT_QUERY_PANEL 2048
#define DEFAULT_BATCH_MIN 8
/* Base rows per unit of work on the few-queries path; also the dot buffer. */
#define VEC_BLOCK 256
#define VEC_UNIT (64 * VEC_BLOCK)
/* Spare fast-pass candidates kept beyond k. None: the band (topbuf) already
 * keeps every row the rounding bound cannot separate from the k-th, and a
 * tighter threshold means fewer appends (ml-latest-small's table: 0.92x the
 * CPU time of 8 spares). */
#define SPARE 0
#define SENTINEL_IDX INT32_MAX

struct cb_knn_index {
    const float *B;
    size_t n, d;
    float *half_sqnorm; /* [n] 0.5 * ||b||^2, rounded once from double */
    double max_norm;    /* max ||b|| over rows, for the rounding bound */
};

/* ---------------------------------------------------------------------------
 * Canonical scores: double precision, fixed order. "Goodness" g is larger for
 * better rows: q.b for DOT and L2_UNIT, -||q-b||^2 for L2. */

static double canon_dot(const float *q, const float *b, size_t d) {
    double s = 0.0;
    for (size_t t = 0; t < d; t++) s += (double)q[t] * (double)b[t];
    return s;
}

static double canon_l2(const float *q, const float *b, size_t d) {
    double s = 0.0;
    for (size_t t = 0; t < d; t++) {
        double diff = (double)q[t] - (double)b[t];
        s += diff * diff;
    }
    return s;
}

static double canon_good(const float *q, const float *b, size_t d, cb_knn_metric m) {
    return m == CB_KNN_L2 ? -canon_l2(q, b, d) : canon_dot(q, b, d);
}

/* The score reported for goodness g. */
static float good_to_score(double g, cb_knn_metric m) {
    switch (m) {
    case CB_KNN_L2: return (float)(-g);
    case CB_KNN_L2_UNIT: return (float)fmax(0.0, 2.0 - 2.0 * g);
    default: return (float)g;
    }
}

static float pad_score(cb_knn_metric m) { return m == CB_KNN_DOT ? -INFINITY : INFINITY; }

double cb_knn_canonical_good(const float *q, const float *b, size_t d, cb_knn_metric metric) {
    return canon_good(q, b, d, metric);
}

#if KNN_X86
/* canon_good of four rows at once, one per double lane: each lane adds in
 * the same order as canon_good, with separate multiplies and adds (no FMA:
 * avx2 only, and ISO C mode does not contract), so every g is bit for bit
 * the scalar one. The scalar sum is one dependent chain; four lanes (two
 * groups in flight) hide its latency. */
__attribute__((target("avx2"))) static void canon_good4(const float *q, const float *B, size_t d,
                                                        cb_knn_metric m, cb_knn_cand *c) {
    const float *b0 = B + (size_t)c[0].idx * d, *b1 = B + (size_t)c[1].idx * d, *b2 = B + (size_t)c[2].idx * d,
                *b3 = B + (size_t)c[3].idx * d;
    __m256d s = _mm256_setzero_pd();
    for (size_t t = 0; t < d; t++) {
        __m256d qv = _mm256_set1_pd((double)q[t]);
        __m256d bv = _mm256_cvtps_pd(_mm_set_ps(b3[t], b2[t], b1[t], b0[t]));
        __m256d x = m == CB_KNN_L2 ? _mm256_sub_pd(qv, bv) : bv;
        s = _mm256_add_pd(s, _mm256_mul_pd(m == CB_KNN_L2 ? x : qv, x));
    }
    double g[4];
    _mm256_storeu_pd(g, s);
    for (int r = 0; r < 4; r++) c[r].g = m == CB_KNN_L2 ? -g[r] : g[r];
}
#endif

void cb_knn_canonical_rescore(const float *q, const float *B, size_t d, cb_knn_metric metric, cb_knn_cand *c,
                              size_t nc) {
    size_t i = 0;
#if KNN_X86
    if (nc >= 4 && cb_cpu_avx2())
        for (; i + 4 <= nc; i += 4) canon_good4(q, B, d, metric, c + i);
#endif
    for (; i < nc; i++) c[i].g = canon_good(q, B + (size_t)c[i].idx * d, d, metric);
}
float cb_knn_score_of_good(double g, cb_knn_metric metric) { return good_to_score(g, metric); }
float cb_knn_pad_score(cb_knn_metric metric) { return pad_score(metric); }

/* (g, idx) ordering: better = larger g, then lower index (knn.h). */
typedef cb_knn_cand cand;

int cb_knn_cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->g != y->g) return x->g > y->g ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static inline bool cand_before(cand a, cand b) { return a.g > b.g || (a.g == b.g && a.idx < b.idx); }

/* Insertion sort, best first: the candidate lists are a few dozen long. */
static void sort_cands(cand *c, size_t m) {
    for (size_t i = 1; i < m; i++) {
        cand x = c[i];
        size_t j = i;
        while (j > 0 && cand_before(x, c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

/* ---------------------------------------------------------------------------
 * Fast-pass selection, one buffer per query, kept sorted (best first, ties
 * to the lower index): every row whose key beats `thr` is inserted in place
 * (moved up from the back: a handful of moves, one unpredictable branch), and
 * thr rises at once to min(kcap-th best, k-th best - band), never lower than
 * before; rows at or below it drop off the back. So the buffer holds the kcap
 * best and every row within `band` of the k-th best key -- the rows the
 * rounding bound cannot rule out (see finalize): near-ties are kept and later
 * rescored in double instead of forcing a full canonical rescan -- and every
 * row ever left out has a key <= the final thr. Offers arrive in increasing
 * index order, so a key equal to thr can never make the cut (the kept row
 * with that key has a lower index): the single test `key > thr` is exact,
 * and an equal key goes after the rows already kept. Trained vectors make a
 * scan of 10k rows insert ~140 of them per query (k ln(n/k) ~ 124 is the
 * floor without a seed): inserting each at once keeps thr exact, which the
 * append-then-sort-and-merge buffer this replaced did not (it appended ~185
 * per query and spent more sorting them than scanning). When the band holds
 * more rows than the buffer, the buffer grows (malloc, up to MAX_CAP); past
 * that it keeps the kcap best only (`overflow`) and finalize's proof fails,
 * so the query is rescanned canonically. */

#define MAX_CAP 4096u /* a panel of 2048 queries: <= 64 MB of grown buffers per thread */
/* A buffer of cap entries takes cap + TB_PAD floats (and ints): key[-1] is a
 * +INFINITY sentinel and 7 more after the last entry let the AVX2 insertion
 * work in whole vectors. */
#define TB_PAD 8

typedef struct topbuf {
    float *key;   /* [cap], sorted best first; key[-1] = +INFINITY */
    int32_t *idx; /* [cap] */
    uint32_t n, k, kcap, cap;
    bool owned;  /* key/idx were grown with malloc: topbuf_release frees them */
    bool overflow;
    float thr, band;
} topbuf;

/* key and idx point at cap + TB_PAD free slots. */
static void topbuf_init(topbuf *b, float *key, int32_t *idx, size_t k, size_t kcap, size_t cap, float band) {
    *b = (topbuf){key + 1, idx + 1, 0, (uint32_t)k, (uint32_t)kcap, (uint32_t)cap, false, false, -INFINITY, band};
    key[0] = INFINITY;
    idx[0] = -1;
}

static void topbuf_release(topbuf *b) {
    if (b->owned) free(b->key - 1), free(b->idx - 1);
    b->owned = false;
}

/* Full buffer (a wide band of near-ties): double it, or keep the kcap best
 * from now on when it cannot grow. */
static void topbuf_grow(topbuf *b) {
    size_t cap = (size_t)b->cap * 2;
    float *nk = cap <= MAX_CAP ? malloc((cap + TB_PAD) * sizeof *nk) : NULL;
    int32_t *ni = nk ? malloc((cap + TB_PAD) * sizeof *ni) : NULL;
    if (!ni) {
        free(nk);
        b->overflow = true;
        b->thr = b->key[b->kcap - 1]; /* >= the old thr: every kept row beat it */
        b->n = b->kcap;
        return;
    }
    memcpy(nk, b->key - 1, (b->n + 1) * sizeof *nk);
    memcpy(ni, b->idx - 1, (b->n + 1) * sizeof *ni);
    topbuf_release(b);
    b->key = nk + 1, b->idx = ni + 1, b->cap = (uint32_t)cap, b->owned = true;
}

/* After an insertion: raise thr, drop the rows at or below it. */
static inline void topbuf_settle(topbuf *b) {
    if (b->n < b->kcap) return;
    float best = b->key[b->kcap - 1], lim = b->key[b->k - 1] - b->band;
    float thr = b->overflow || lim > best ? best : lim;
    if (thr > b->thr) b->thr = thr;
    while (b->n > b->kcap && !(b->key[b->n - 1] > b->thr)) b->n--;
}

/* Insert row j with key > thr (the plain path). */
static inline void topbuf_insert(topbuf *b, float key, int32_t j) {
    if (b->n == b->cap) {
        topbuf_grow(b);
        if (!(key > b->thr)) return;
    }
    uint32_t i = b->n++;
    for (; i > 0 && b->key[i - 1] < key; i--) b->key[i] = b->key[i - 1], b->idx[i] = b->idx[i - 1];
    b->key[i] = key;
    b->idx[i] = j;
    topbuf_settle(b);
}

#if KNN_X86
/* The same without a data-dependent branch: every slot i <= n becomes
 * key[i] if it stays before the new row (key[i] >= key: ties keep the lower
 * index, offered first), else the new row if slot i - 1 stays, else key[i - 1]
 * -- eight slots at a time, from the back, so that each vector reads slots
 * not yet written. The insertion loop's exit, a branch at a random place,
 * cost more than the moves (perf: 40 % of the selection). */
CB_TARGET_AVX2 static inline void topbuf_insert_avx2(topbuf *b, float key, int32_t j) {
    if (b->n == b->cap) {
        topbuf_grow(b);
        if (!(key > b->thr)) return;
    }
    const __m256 x = _mm256_set1_ps(key);
    const __m256i xi = _mm256_set1_epi32(j);
    float *k = b->key;
    int32_t *ix = b->idx;
    const __m256i n = _mm256_set1_epi32((int32_t)b->n), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int32_t i = (int32_t)(b->n & ~7u); i >= 0; i -= 8) {
        __m256 a = _mm256_loadu_ps(k + i), p = _mm256_loadu_ps(k + i - 1);
        __m256 held = _mm256_castsi256_ps(_mm256_cmpgt_epi32(n, _mm256_add_epi32(_mm256_set1_epi32(i), lane)));
        __m256i ai = _mm256_loadu_si256((const __m256i *)(ix + i)),
                pi = _mm256_loadu_si256((const __m256i *)(ix + i - 1));
        __m256 stay = _mm256_and_ps(held, _mm256_cmp_ps(a, x, _CMP_GE_OQ)), prev_stays = _mm256_cmp_ps(p, x, _CMP_GE_OQ);
        __m256 rk = _mm256_blendv_ps(_mm256_blendv_ps(p, x, prev_stays), a, stay);
        __m256i ri = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_blendv_ps(_mm256_castsi256_ps(pi), _mm256_castsi256_ps(xi), prev_stays), _mm256_castsi256_ps(ai),
            stay));
        _mm256_storeu_ps(k + i, rk);
        _mm256_storeu_si256((__m256i *)(ix + i), ri);
    }
    b->n++;
    topbuf_settle(b);
}
#endif

/* The same for canonical (double) keys, used by the fallback and insertion. */
typedef struct dheap {
    cand *e;
    size_t cap;
} dheap;

static void dheap_init(dheap *h) {
    for (size_t i = 0; i < h->cap; i++) h->e[i] = (cand){-INFINITY, SENTINEL_IDX};
}

static inline int dworse(cand a, cand b) { return a.g < b.g || (a.g == b.g && a.idx > b.idx); }

static void dheap_offer(dheap *h, double g, int32_t idx) {
    if (!(g > h->e[0].g)) return;
    cand c = {g, idx};
    size_t i = 0, cap = h->cap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        cand wc = c;
        if (l < cap && dworse(h->e[l], wc)) w = l, wc = h->e[l];
        if (r < cap && dworse(h->e[r], wc)) w = r, wc = h->e[r];
        if (w == i) break;
        h->e[i] = h->e[w];
        i = w;
    }
    h->e[i] = c;
}

/* ---------------------------------------------------------------------------
 * A search job and its exclusions. */

typedef struct job {
    const cb_knn_index *ix;
    const float *Q;
    size_t nq, k, kcap, cap; /* kcap = k + SPARE kept; cap = buffer size */
    cb_knn_metric metric;
    const int32_t *self_index;
    bool self_identity; /* query i excludes base row i (similar-items table) */
    const uint64_t *exclude;
    size_t exclude_stride;
    size_t query_tile, base_tile, query_panel;
    bool gemm_only;
    int32_t *out_idx;
    float *out_score;
    atomic_size_t next_unit;
    size_t n_units;
    atomic_size_t n_fallback;
    atomic_int failed; /* first error code from a worker, 0 when none */
} job;

typedef struct qexcl {
    int64_t self;          /* -1: none */
    const uint64_t *bits;  /* NULL: none */
} qexcl;

static qexcl job_excl(const job *jb, size_t q) {
    qexcl e = {-1, NULL};
    if (jb->self_identity) e.self = (int64_t)q;
    else if (jb->self_index && jb->self_index[q] >= 0) e.self = jb->self_index[q];
    if (jb->exclude) e.bits = jb->exclude + (jb->exclude_stride ? q * jb->exclude_stride : 0);
    return e;
}

static double fast_tolerance(const job *jb, const float *q);

/* The band of near-ties kept around the k-th best fast key of query q: a
 * little over the 2.5 tol of finalize's proof, so that float rounding of
 * thr = k-th - band cannot break it. */
static float band_of(const job *jb, size_t q) { return (float)(2.6 * fast_tolerance(jb, jb->Q + q * jb->ix->d)); }

static inline int is_excluded(const qexcl *e, size_t j) {
    return (int64_t)j == e->self || (e->bits && ((e->bits[j >> 6] >> (j & 63)) & 1u));
}

/* The largest key of s[0..len) (minus hn[0..len) when hn is not NULL);
 * -INFINITY when there is none; NaN never wins. */
typedef float (*max_key_fn)(const float *s, const float *hn, size_t len);

static float max_key_scalar(const float *s, const float *hn, size_t len) {
    float m = -INFINITY;
    for (size_t j = 0; j < len; j++) {
        float key = hn ? s[j] - hn[j] : s[j];
        m = key > m ? key : m;
    }
    return m;
}

#if KNN_X86
CB_TARGET_AVX2 static float max_key_avx2(const float *s, const float *hn, size_t len) {
    __m256 acc = _mm256_set1_ps(-INFINITY);
    size_t j = 0;
    for (; j + 8 <= len; j += 8) {
        __m256 key = _mm256_loadu_ps(s + j);
        if (hn) key = _mm256_sub_ps(key, _mm256_loadu_ps(hn + j));
        acc = _mm256_max_ps(key, acc); /* the second operand when either is NaN */
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    float m = _mm_cvtss_f32(h), rest = max_key_scalar(s + j, hn ? hn + j : NULL, len - j);
    return rest > m ? rest : m;
}
#endif

/* Before the first block of a query: start the threshold just below the
 * smallest of the maxima of G = kcap + (excluded rows in the block) groups.
 * At least kcap eligible rows reach that value, so no row below it can make
 * the final cut; many early insertions disappear. (Tried: the r-th largest
 * of 64 strided groups' maxima, a tighter seed; no measurable gain.) */
static void seed_threshold(topbuf *b, const float *s, const float *hn, size_t nb, const qexcl *e, max_key_fn max_key) {
    size_t excluded = e->self >= 0 && (size_t)e->self < nb;
    if (e->bits) {
        for (size_t w = 0; w < nb / 64; w++) excluded += (size_t)__builtin_popcountll(e->bits[w]);
        if (nb % 64) excluded += (size_t)__builtin_popcountll(e->bits[nb / 64] & ((1ull << (nb % 64)) - 1));
    }
    size_t groups = b->kcap + excluded, len = nb / groups;
    if (b->n != 0 || len < 2) return;
    float v = INFINITY;
    for (size_t g = 0; g < groups; g++) {
        float m = max_key(s + g * len, hn ? hn + g * len : NULL, len);
        v = m < v ? m : v;
    }
    /* at least kcap >= k rows reach v, so the k-th best ends >= v: rows below
     * v - band are outside the band too */
    if (v > -INFINITY && v < INFINITY) b->thr = nextafterf(v - b->band, -INFINITY);
}

/* Offer base rows j0.. of a block whose fast scores are s[0..nb) (minus
 * hn[0..nb) when hn is not NULL) to buffer h. Only scores above the current
 * worst are looked at individually. */

static inline void offer_one(topbuf *h, const qexcl *e, float key, size_t j) {
    if (key > h->thr && !is_excluded(e, j)) topbuf_insert(h, key, (int32_t)j);
}

static void scan_scalar(const float *s, const float *hn, size_t nb, size_t j0, topbuf *h, const qexcl *e) {
    for (size_t j = 0; j < nb; j++) offer_one(h, e, hn ? s[j] - hn[j] : s[j], j0 + j);
}

#if KNN_X86
/* Offer only the lanes whose bit is set (they beat the threshold as it was
 * when the block was loaded; each is re-tested against the current one). */
static inline void offer_bits(const float *s, const float *hn, unsigned bits, size_t j0, topbuf *h, const qexcl *e) {
    while (bits) {
        unsigned l = (unsigned)__builtin_ctz(bits);
        bits &= bits - 1;
        offer_one(h, e, hn ? s[l] - hn[l] : s[l], j0 + l);
    }
}

CB_TARGET_AVX2 static inline void offer_bits_avx2(const float *s, const float *hn, unsigned bits, size_t j0,
                                                  topbuf *h, const qexcl *e) {
    while (bits) {
        unsigned l = (unsigned)__builtin_ctz(bits);
        bits &= bits - 1;
        float key = hn ? s[l] - hn[l] : s[l];
        if (key > h->thr && !is_excluded(e, j0 + l)) topbuf_insert_avx2(h, key, (int32_t)(j0 + l));
    }
}

static void scan_sse(const float *s, const float *hn, size_t nb, size_t j0, topbuf *h, const qexcl *e) {
    size_t j = 0;
    __m128 thr = _mm_set1_ps(h->thr);
    for (; j + 16 <= nb; j += 16) {
        __m128 a = _mm_loadu_ps(s + j), b = _mm_loadu_ps(s + j + 4), c = _mm_loadu_ps(s + j + 8),
               d = _mm_loadu_ps(s + j + 12);
        if (hn) {
            a = _mm_sub_ps(a, _mm_loadu_ps(hn + j));
            b = _mm_sub_ps(b, _mm_loadu_ps(hn + j + 4));
            c = _mm_sub_ps(c, _mm_loadu_ps(hn + j + 8));
            d = _mm_sub_ps(d, _mm_loadu_ps(hn + j + 12));
        }
        __m128 m = _mm_or_ps(_mm_or_ps(_mm_cmpgt_ps(a, thr), _mm_cmpgt_ps(b, thr)),
                             _mm_or_ps(_mm_cmpgt_ps(c, thr), _mm_cmpgt_ps(d, thr)));
        if (_mm_movemask_ps(m)) {
            unsigned bits = (unsigned)_mm_movemask_ps(_mm_cmpgt_ps(a, thr)) |
                            (unsigned)_mm_movemask_ps(_mm_cmpgt_ps(b, thr)) << 4 |
                            (unsigned)_mm_movemask_ps(_mm_cmpgt_ps(c, thr)) << 8 |
                            (unsigned)_mm_movemask_ps(_mm_cmpgt_ps(d, thr)) << 12;
            offer_bits(s + j, hn ? hn + j : NULL, bits, j0 + j, h, e);
            thr = _mm_set1_ps(h->thr);
        }
    }
    scan_scalar(s + j, hn ? hn + j : NULL, nb - j, j0 + j, h, e);
}

CB_TARGET_AVX2 static void scan_avx2(const float *s, const float *hn, size_t nb, size_t j0,
                                                       topbuf *h, const qexcl *e) {
    size_t j = 0;
    __m256 thr = _mm256_set1_ps(h->thr);
    for (; j + 32 <= nb; j += 32) {
        __m256 a = _mm256_loadu_ps(s + j), b = _mm256_loadu_ps(s + j + 8), c = _mm256_loadu_ps(s + j + 16),
               d = _mm256_loadu_ps(s + j + 24);
        if (hn) {
            a = _mm256_sub_ps(a, _mm256_loadu_ps(hn + j));
            b = _mm256_sub_ps(b, _mm256_loadu_ps(hn + j + 8));
            c = _mm256_sub_ps(c, _mm256_loadu_ps(hn + j + 16));
            d = _mm256_sub_ps(d, _mm256_loadu_ps(hn + j + 24));
        }
        __m256 m = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(a, thr, _CMP_GT_OQ), _mm256_cmp_ps(b, thr, _CMP_GT_OQ)),
                                _mm256_or_ps(_mm256_cmp_ps(c, thr, _CMP_GT_OQ), _mm256_cmp_ps(d, thr, _CMP_GT_OQ)));
        if (_mm256_movemask_ps(m)) {
            unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, thr, _CMP_GT_OQ)) |
                            (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(b, thr, _CMP_GT_OQ)) << 8 |
                            (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(c, thr, _CMP_GT_OQ)) << 16 |
                            (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(d, thr, _CMP_GT_OQ)) << 24;
            offer_bits_avx2(s + j, hn ? hn + j : NULL, bits, j0 + j, h, e);
            thr = _mm256_set1_ps(h->thr);
        }
    }
    scan_scalar(s + j, hn ? hn + j : NULL, nb - j, j0 + j, h, e);
}

/* Fast dots of q [d] with rows B[0..nb) (d % 8 == 0): eight rows at a time,
 * reduced with a horizontal-add tree, so each row costs d/8 FMAs. */
__attribute__((target("avx2,fma"))) static void dots_avx2(float *out, const float *q, const float *B, size_t nb,
                                                           size_t d) {
    size_t j = 0;
    for (; j + 8 <= nb; j += 8) {
        const float *b = B + j * d;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (size_t t = 0; t < d; t += 8) {
            __m256 qv = _mm256_loadu_ps(q + t);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + t), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + d + t), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + 2 * d + t), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + 3 * d + t), a3);
            a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + 4 * d + t), a4);
            a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + 5 * d + t), a5);
            a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + 6 * d + t), a6);
            a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(b + 7 * d + t), a7);
        }
        __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
        __m256 h45 = _mm256_hadd_ps(a4, a5), h67 = _mm256_hadd_ps(a6, a7);
        __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
        __m256 lo = _mm256_permute2f128_ps(h0123, h4567, 0x20), hi = _mm256_permute2f128_ps(h0123, h4567, 0x31);
        _mm256_storeu_ps(out + j, _mm256_add_ps(lo, hi));
    }
    for (; j < nb; j++) {
        const float *b = B + j * d;
        __m256 a = _mm256_setzero_ps();
        for (size_t t = 0; t < d; t += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + t), _mm256_loadu_ps(b + t), a);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        s = _mm_hadd_ps(s, s);
        s = _mm_hadd_ps(s, s);
        out[j] = _mm_cvtss_f32(s);
    }
}
#endif

static void dots_scalar(float *out, const float *q, const float *B, size_t nb, size_t d) {
    for (size_t j = 0; j < nb; j++) {
        const float *b = B + j * d;
        float s = 0.0f;
        for (size_t t = 0; t < d; t++) s += q[t] * b[t];
        out[j] = s;
    }
}

typedef void (*scan_fn)(const float *, const float *, size_t, size_t, topbuf *, const qexcl *);
typedef void (*dots_fn)(float *, const float *, const float *, size_t, size_t);

typedef struct kernels {
    scan_fn scan;
    dots_fn dots;
    max_key_fn max_key;
} kernels;

static kernels pick_kernels(size_t d) {
    kernels k = {scan_scalar, dots_scalar, max_key_scalar};
#if KNN_X86
    __builtin_cpu_init();
    k.scan = scan_sse;
    if (cb_cpu_avx2()) k.scan = scan_avx2, k.max_key = max_key_avx2;
    if (d % 8 == 0 && cb_cpu_avx2()) k.dots = dots_avx2;
#else
    (void)d;
#endif
    return k;
}

/* ---------------------------------------------------------------------------
 * Finalisation of one query: from fast candidates to the canonical top k. */

/* Bound on |fast key - exact key| for query q, in key units (see knn.h). A
 * float dot of length d in any order, FMA or not, errs by at most
 * gamma_d * ||q|| ||b||; the half-norm and the subtraction add O(u) terms.
 * The factor 4 (d + 4) u covers them with room to spare. */
static double fast_tolerance(const job *jb, const float *q) {
    const size_t d = jb->ix->d;
    double qn = 0.0;
    for (size_t t = 0; t < d; t++) qn += (double)q[t] * q[t];
    qn = sqrt(qn);
    const double bm = jb->ix->max_norm, u = FLT_EPSILON / 2;
    double scale = qn * bm;
    if (jb->metric == CB_KNN_L2) scale += bm * bm;
    return 4.0 * (double)(d + 4) * u * scale + 1e-35;
}

static void write_row(const job *jb, size_t q, const cand *c, size_t nc) {
    int32_t *oi = jb->out_idx + q * jb->k;
    float *os = jb->out_score ? jb->out_score + q * jb->k : NULL;
    for (size_t r = 0; r < jb->k; r++) {
        bool real = r < nc;
        oi[r] = real ? c[r].idx : -1;
        if (os) os[r] = real ? good_to_score(c[r].g, jb->metric) : pad_score(jb->metric);
    }
}

/* Canonical top k over all of B: the fallback when near-ties at the k-th
 * place make the candidate set unprovable. `scratch` holds k cands. */
static void finalize_full(const job *jb, size_t q, cand *scratch) {
    const cb_knn_index *ix = jb->ix;
    const float *qv = jb->Q + q * ix->d;
    qexcl e = job_excl(jb, q);
    dheap h = {scratch, jb->k};
    dheap_init(&h);
    for (size_t j = 0; j < ix->n; j++) {
        if (is_excluded(&e, j)) continue;
        dheap_offer(&h, canon_good(qv, ix->B + j * ix->d, ix->d, jb->metric), (int32_t)j);
    }
    sort_cands(h.e, h.cap);
    size_t nc = 0;
    while (nc < h.cap && h.e[nc].idx != SENTINEL_IDX) nc++;
    write_row(jb, q, h.e, nc);
}

/* `fk`, `fi`: the m fast candidates of query q (any order); every row not
 * among them has a fast key <= W (-INFINITY: they are all the eligible
 * rows). `c` is scratch for ccap >= k cands. */
static void finalize(job *jb, size_t q, const float *fk, const int32_t *fi, size_t m, float W, cand *c, size_t ccap) {
    const cb_knn_index *ix = jb->ix;
    const float *qv = jb->Q + q * ix->d;
    const size_t k = jb->k;
    cand *cc = m <= ccap ? c : malloc(m * sizeof *cc);
    if (!cc) { /* out of memory for the wide set: the rescan needs only k */
        atomic_fetch_add(&jb->n_fallback, 1);
        finalize_full(jb, q, c);
        return;
    }
    for (size_t i = 0; i < m; i++) cc[i] = (cand){fk[i], fi[i]};
    if (m <= 64) sort_cands(cc, m);
    else qsort(cc, m, sizeof *cc, cb_knn_cand_cmp);
    size_t nc = m;
    if (m >= k) {
        /* The true top k all have fast key >= T - 2 tol (T = k-th best fast
         * key); rows left out have fast key <= W. */
        double T = cc[k - 1].g, tol = fast_tolerance(jb, qv), lo = T - 2.5 * tol;
        if (!((double)W < lo)) {
            atomic_fetch_add(&jb->n_fallback, 1);
            if (cc != c) free(cc);
            finalize_full(jb, q, c);
            return;
        }
        while (nc > k && !(cc[nc - 1].g >= lo)) nc--;
    }
    cb_knn_canonical_rescore(qv, ix->B, ix->d, jb->metric, cc, nc);
    if (nc <= 64) sort_cands(cc, nc);
    else qsort(cc, nc, sizeof *cc, cb_knn_cand_cmp);
    write_row(jb, q, cc, nc < k ? nc : k);
    if (cc != c) free(cc);
}

/* Threads (base/threads.h): the caller's thread is worker 0; workers pull
 * units from an atomic counter. */

static void job_fail(job *jb, int code) {
    int zero = 0;
    atomic_compare_exchange_strong(&jb->failed, &zero, code);
}

/* ---- Batch path: blocked sgemm, a panel of queries per unit of work. */

typedef struct batch_worker {
    job *jb;
    kernels kern;
} batch_worker;

static void *batch_run(void *arg) {
    batch_worker *w = arg;
    job *jb = w->jb;
    const cb_knn_index *ix = jb->ix;
    const size_t d = ix->d, kcap = jb->kcap, cap = jb->cap, panel = jb->query_panel;
    float *tile = malloc(jb->query_tile * jb->base_tile * sizeof *tile);
    float *bk = malloc(panel * (cap + TB_PAD) * sizeof *bk);
    int32_t *bi = malloc(panel * (cap + TB_PAD) * sizeof *bi);
    topbuf *tb = malloc(panel * sizeof *tb);
    const size_t ccap = cap > jb->k ? cap : jb->k;
    cand *c = malloc(ccap * sizeof *c);
    if (!tile || !bk || !bi || !tb || !c) {
        job_fail(jb, CB_ENOMEM);
        goto done;
    }
    const float *hn = jb->metric == CB_KNN_L2 ? ix->half_sqnorm : NULL;
    size_t u;
    while (!atomic_load(&jb->failed) && (u = atomic_fetch_add(&jb->next_unit, 1)) < jb->n_units) {
        size_t q0 = u * panel, pr = jb->nq - q0 < panel ? jb->nq - q0 : panel;
        for (size_t r = 0; r < pr; r++)
            topbuf_init(&tb[r], bk + r * (cap + TB_PAD), bi + r * (cap + TB_PAD), jb->k, kcap, cap, band_of(jb, q0 + r));
        for (size_t b0 = 0; b0 < ix->n; b0 += jb->base_tile) {
            size_t nb = ix->n - b0 < jb->base_tile ? ix->n - b0 : jb->base_tile;
            for (size_t t0 = 0; t0 < pr; t0 += jb->query_tile) {
                size_t mq = pr - t0 < jb->query_tile ? pr - t0 : jb->query_tile;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mq, (int)nb, (int)d, 1.0f,
                            jb->Q + (q0 + t0) * d, (int)d, ix->B + b0 * d, (int)d, 0.0f, tile, (int)nb);
                if (jb->gemm_only) continue;
                for (size_t r = 0; r < mq; r++) {
                    qexcl e = job_excl(jb, q0 + t0 + r);
                    if (b0 == 0) seed_threshold(&tb[t0 + r], tile + r * nb, hn, nb, &e, w->kern.max_key);
                    w->kern.scan(tile + r * nb, hn ? hn + b0 : NULL, nb, b0, &tb[t0 + r], &e);
                }
            }
        }
        for (size_t r = 0; r < pr; r++) {
            if (!jb->gemm_only) finalize(jb, q0 + r, tb[r].key, tb[r].idx, tb[r].n, tb[r].thr, c, ccap);
            topbuf_release(&tb[r]);
        }
    }
done:
    free(tile);
    free(bk);
    free(bi);
    free(tb);
    free(c);
    return NULL;
}

/* ---- Few-queries path: fused dots + scan over units of base rows; each
 * worker keeps its own heaps for every query, merged at the end. */

typedef struct vec_worker {
    job *jb;
    kernels kern;
    topbuf *tb;  /* [nq] */
    float *bk;   /* [nq x cap] */
    int32_t *bi; /* [nq x cap] */
} vec_worker;

static void *vec_run(void *arg) {
    vec_worker *w = arg;
    job *jb = w->jb;
    const cb_knn_index *ix = jb->ix;
    const size_t d = ix->d, cap = jb->cap;
    const float *hn = jb->metric == CB_KNN_L2 ? ix->half_sqnorm : NULL;
    float dots[VEC_BLOCK];
    for (size_t q = 0; q < jb->nq; q++)
        topbuf_init(&w->tb[q], w->bk + q * (cap + TB_PAD), w->bi + q * (cap + TB_PAD), jb->k, jb->kcap, cap, band_of(jb, q));
    size_t u;
    while ((u = atomic_fetch_add(&jb->next_unit, 1)) < jb->n_units) {
        size_t u0 = u * VEC_UNIT, u1 = ix->n - u0 < VEC_UNIT ? ix->n : u0 + VEC_UNIT;
        for (size_t b0 = u0; b0 < u1; b0 += VEC_BLOCK) {
            size_t nb = u1 - b0 < VEC_BLOCK ? u1 - b0 : VEC_BLOCK;
            for (size_t q = 0; q < jb->nq; q++) {
                qexcl e = job_excl(jb, q);
                w->kern.dots(dots, jb->Q + q * d, ix->B + b0 * d, nb, d);
                w->kern.scan(dots, hn ? hn + b0 : NULL, nb, b0, &w->tb[q], &e);
            }
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Public search. */

static int check_args(const float *Q, size_t nq, const float *B, size_t n, size_t d, size_t k, cb_knn_metric metric,
                      const cb_knn_params *p, const int32_t *out_idx, cb_error *err) {
    if (metric != CB_KNN_DOT && metric != CB_KNN_L2 && metric != CB_KNN_L2_UNIT)
        return cb_fail(err, CB_EINVAL, "knn: unknown metric %d", (int)metric);
    if (d == 0 || n == 0) return cb_fail(err, CB_EINVAL, "knn: empty catalog (%zu rows of dimension %zu)", n, d);
    if (n >= (size_t)INT32_MAX || d > (size_t)INT32_MAX / 2)
        return cb_fail(err, CB_EINVAL, "knn: catalog too large (%zu x %zu)", n, d);
    if (k == 0) return cb_fail(err, CB_EINVAL, "knn: k must be at least 1");
    if (k > n) return cb_fail(err, CB_EINVAL, "knn: k = %zu is larger than the catalog (%zu items)", k, n);
    if ((nq && (!Q || !out_idx)) || !B) return cb_fail(err, CB_EINVAL, "knn: NULL matrix or output");
    if (p && p->exclude && p->exclude_stride && p->exclude_stride < (n + 63) / 64)
        return cb_fail(err, CB_EINVAL, "knn: exclude_stride %zu words is shorter than %zu rows", p->exclude_stride, n);
    if (p && p->self_index)
        for (size_t i = 0; i < nq; i++)
            if (p->self_index[i] >= (int64_t)n)
                return cb_fail(err, CB_EINVAL, "knn: self_index[%zu] = %d is outside the catalog", i,
                               (int)p->self_index[i]);
    return CB_OK;
}

int cb_knn_index_create(cb_knn_index **out, const float *B, size_t n, size_t d, cb_error *err) {
    *out = NULL;
    if (!B || n == 0 || d == 0) return cb_fail(err, CB_EINVAL, "knn: empty catalog (%zu rows of dimension %zu)", n, d);
    if (n >= (size_t)INT32_MAX || d > (size_t)INT32_MAX / 2)
        return cb_fail(err, CB_EINVAL, "knn: catalog too large (%zu x %zu)", n, d);
    cb_knn_index *ix = cb_calloc(1, sizeof *ix, err);
    if (!ix) return CB_ENOMEM;
    ix->half_sqnorm = cb_calloc(n, sizeof *ix->half_sqnorm, err);
    if (!ix->half_sqnorm) {
        free(ix);
        return CB_ENOMEM;
    }
    ix->B = B;
    ix->n = n;
    ix->d = d;
    double mx = 0.0;
    for (size_t j = 0; j < n; j++) {
        double s = 0.0;
        for (size_t t = 0; t < d; t++) s += (double)B[j * d + t] * B[j * d + t];
        ix->half_sqnorm[j] = (float)(0.5 * s);
        if (s > mx) mx = s;
    }
    ix->max_norm = sqrt(mx);
    *out = ix;
    return CB_OK;
}

void cb_knn_index_free(cb_knn_index *ix) {
    if (!ix) return;
    free(ix->half_sqnorm);
    free(ix);
}

size_t cb_knn_index_rows(const cb_knn_index *ix) { return ix->n; }
size_t cb_knn_index_dim(const cb_knn_index *ix) { return ix->d; }

static int search_job(const cb_knn_index *ix, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                      const cb_knn_params *params, bool self_identity, int32_t *out_idx, float *out_score,
                      cb_error *err) {
    static const cb_knn_params defaults = {0};
    const cb_knn_params *p = params ? params : &defaults;
    int rc = check_args(Q, nq, ix->B, ix->n, ix->d, k, metric, p, out_idx, err);
    if (rc) return rc;
    if (p->n_fallback) *p->n_fallback = 0;
    if (nq == 0) return CB_OK;

    job jb = {.ix = ix, .Q = Q, .nq = nq, .k = k, .metric = metric, .self_index = p->self_index,
              .self_identity = self_identity, .exclude = p->exclude, .exclude_stride = p->exclude_stride,
              .gemm_only = p->bench_gemm_only, .out_idx = out_idx, .out_score = out_score};
    jb.kcap = k + SPARE;
    jb.cap = jb.kcap < 8 ? 16 : 2 * jb.kcap;
    jb.query_tile = p->query_tile ? p->query_tile : DEFAULT_QUERY_TILE;
    jb.base_tile = p->base_tile ? p->base_tile : DEFAULT_BASE_TILE;
    jb.query_panel = p->query_panel ? p->query_panel : DEFAULT_QUERY_PANEL;
    if (jb.query_panel < jb.query_tile) jb.query_panel = jb.query_tile;
    if (jb.query_tile > (size_t)INT32_MAX / 2 || jb.base_tile > (size_t)INT32_MAX / 2 ||
        jb.query_tile * jb.base_tile > ((size_t)1 << 30))
        return cb_fail(err, CB_EINVAL, "knn: tile %zu x %zu is too large", jb.query_tile, jb.base_tile);
    atomic_init(&jb.next_unit, 0);
    atomic_init(&jb.n_fallback, 0);
    atomic_init(&jb.failed, 0);
    size_t batch_min = p->batch_min ? p->batch_min : DEFAULT_BATCH_MIN;
    int nthreads = cb_threads_resolve(p->threads, CB_THREADS_MAX);
    kernels kern = pick_kernels(ix->d);

    if (nq >= batch_min || p->bench_gemm_only) {
        jb.n_units = (nq + jb.query_panel - 1) / jb.query_panel;
        if ((size_t)nthreads > jb.n_units) nthreads = (int)jb.n_units;
        batch_worker *w = cb_calloc((size_t)nthreads, sizeof *w, err);
        if (!w) return CB_ENOMEM;
        for (int t = 0; t < nthreads; t++) w[t] = (batch_worker){&jb, kern};
        /* one OpenBLAS thread (the shared hold), or a benchmark's count (set and restored, not shared) */
        int want = p->blas_threads > 1 ? p->blas_threads : 1, saved = want > 1 ? openblas_get_num_threads() : 1;
        if (want > 1) openblas_set_num_threads(want);
        else cb_blas_hold_one();
        cb_threads_run(batch_run, w, sizeof *w, nthreads);
        if (want > 1) openblas_set_num_threads(saved);
        else cb_blas_release();
        free(w);
    } else {
        jb.n_units = (ix->n + VEC_UNIT - 1) / VEC_UNIT;
        /* Threads cost ~50 us to start: not worth it for small catalogs. */
        if (ix->n * ix->d * nq < ((size_t)1 << 20)) nthreads = 1;
        if ((size_t)nthreads > jb.n_units) nthreads = (int)jb.n_units;
        size_t cap = jb.cap, per = nq * (cap + TB_PAD), m = (size_t)nthreads * cap;
        vec_worker *w = cb_calloc((size_t)nthreads, sizeof *w, err);
        topbuf *tb = cb_calloc((size_t)nthreads * nq, sizeof *tb, err);
        float *bk = cb_calloc((size_t)nthreads * per, sizeof *bk, err);
        int32_t *bi = cb_calloc((size_t)nthreads * per, sizeof *bi, err);
        float *mk = cb_calloc(m, sizeof *mk, err);
        int32_t *mi = cb_calloc(m, sizeof *mi, err);
        const size_t cc = m > k ? m : k;
        cand *c = cb_calloc(cc, sizeof *c, err);
        if (!w || !tb || !bk || !bi || !mk || !mi || !c) {
            free(w), free(tb), free(bk), free(bi), free(mk), free(mi), free(c);
            return CB_ENOMEM;
        }
        for (int t = 0; t < nthreads; t++)
            w[t] = (vec_worker){&jb, kern, tb + (size_t)t * nq, bk + (size_t)t * per, bi + (size_t)t * per};
        cb_threads_run(vec_run, w, sizeof *w, nthreads);
        for (size_t q = 0; q < nq; q++) {
            size_t mm = 0, total = 0;
            float W = -INFINITY;
            for (int t = 0; t < nthreads; t++) total += w[t].tb[q].n;
            if (total > m) { /* grown buffers (near-ties) */
                float *nk = realloc(mk, total * sizeof *mk);
                if (nk) mk = nk;
                int32_t *ni = nk ? realloc(mi, total * sizeof *mi) : NULL;
                if (ni) mi = ni, m = total;
                else atomic_store(&jb.failed, CB_ENOMEM);
            }
            for (int t = 0; t < nthreads && total <= m; t++) {
                const topbuf *b = &w[t].tb[q];
                memcpy(mk + mm, b->key, b->n * sizeof *mk);
                memcpy(mi + mm, b->idx, b->n * sizeof *mi);
                mm += b->n;
                if (b->thr > W) W = b->thr;
            }
            if (total <= m) finalize(&jb, q, mk, mi, mm, W, c, cc);
            for (int t = 0; t < nthreads; t++) topbuf_release(&w[t].tb[q]);
        }
        free(w), free(tb), free(bk), free(bi), free(mk), free(mi), free(c);
    }
    if (p->n_fallback) *p->n_fallback = atomic_load(&jb.n_fallback);
    int failed = atomic_load(&jb.failed);
    if (failed) return cb_fail(err, failed, "knn: out of memory for per-thread scratch");
    return CB_OK;
}

int cb_knn_index_search(const cb_knn_index *ix, const float *Q, size_t nq, size_t k, cb_knn_metric metric,
                        const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err) {
    if (!ix) return cb_fail(err, CB_EINVAL, "knn: NULL index");
    return search_job(ix, Q, nq, k, metric, params, false, out_idx, out_score, err);
}

int cb_knn_search(const float *Q, size_t nq, const float *B, size_t n, size_t d, size_t k, cb_knn_metric metric,
                  const cb_knn_params *params, int32_t *out_idx, float *out_score, cb_error *err) {
    int rc = check_args(Q, nq, B, n, d, k, metric, params, out_idx, err);
    if (rc) return rc;
    cb_knn_index *ix;
    if ((rc = cb_knn_index_create(&ix, B, n, d, err))) return rc;
    rc = cb_knn_index_search(ix, Q, nq, k, metric, params, out_idx, out_score, err);
    cb_knn_index_free(ix);
    return rc;
}

int cb_knn_search_naive(const float *Q, size_t nq, const float *B, size_t n, size_t d, size_t k,
                        cb_knn_metric metric, const cb_knn_params *params, int32_t *out_idx, float *out_score,
                        cb_error *err) {
    static const cb_knn_params defaults = {0};
    const cb_knn_params *p = params ? params : &defaults;
    int rc = check_args(Q, nq, B, n, d, k, metric, p, out_idx, err);
    if (rc) return rc;
    cand *all = cb_calloc(n, sizeof *all, err);
    if (!all) return CB_ENOMEM;
    for (size_t q = 0; q < nq; q++) {
        const uint64_t *bits = p->exclude ? p->exclude + (p->exclude_stride ? q * p->exclude_stride : 0) : NULL;
        int64_t self = p->self_index ? p->self_index[q] : -1;
        size_t m = 0;
        for (size_t j = 0; j < n; j++) {
            if ((int64_t)j == self || (bits && ((bits[j / 64] >> (j % 64)) & 1))) continue;
            double g = canon_good(Q + q * d, B + j * d, d, metric);
            if (isnan(g)) continue;
            all[m++] = (cand){g, (int32_t)j};
        }
        qsort(all, m, sizeof *all, cb_knn_cand_cmp);
        for (size_t r = 0; r < k; r++) {
            out_idx[q * k + r] = r < m ? all[r].idx : -1;
            if (out_score) out_score[q * k + r] = r < m ? good_to_score(all[r].g, metric) : pad_score(metric);
        }
    }
    free(all);
    return CB_OK;
}

/* ---------------------------------------------------------------------------
 * Similar-items table. */

static int check_finite(const float *V, size_t n, size_t d, const char *what, cb_error *err) {
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(V[i])) return cb_fail(err, CB_EINVAL, "knn: %s row %zu has a non-finite value", what, i / d);
    return CB_OK;
}

/* Identical rows of V, grouped: rows i with the same bytes share group
 * group_of[i]; groups are numbered by their lowest row, and members[
 * first[u] .. first[u + 1]) lists group u's rows ascending. */
typedef struct groups {
    size_t n_groups;
    uint32_t *group_of; /* [n] */
    uint32_t *first;    /* [n_groups + 1] */
    uint32_t *members;  /* [n] */
} groups;

static void groups_free(groups *g) { free(g->group_of), free(g->first), free(g->members); }

static int groups_find(groups *g, const float *V, size_t n, size_t d, cb_error *err) {
    memset(g, 0, sizeof *g);
    size_t slots = 2;
    while (slots < 2 * n) slots <<= 1;
    uint32_t *slot = cb_malloc(slots * sizeof *slot, err); /* a group's lowest row + 1, 0 = empty */
    g->group_of = cb_malloc(n * sizeof *g->group_of, err);
    g->first = cb_calloc(n + 1, sizeof *g->first, err);
    g->members = cb_malloc(n * sizeof *g->members, err);
    if (!slot || !g->group_of || !g->first || !g->members) {
        free(slot), groups_free(g);
        return CB_ENOMEM;
    }
    memset(slot, 0, slots * sizeof *slot);
    const size_t row = d * sizeof(float);
    for (size_t i = 0; i < n; i++) {
        size_t s = (size_t)cb_hash64(V + i * d, row, 0) & (slots - 1);
        while (slot[s] && memcmp(V + (size_t)(slot[s] - 1) * d, V + i * d, row) != 0) s = (s + 1) & (slots - 1);
        if (!slot[s]) slot[s] = (uint32_t)i + 1, g->group_of[i] = (uint32_t)g->n_groups++;
        else g->group_of[i] = g->group_of[slot[s] - 1];
        g->first[g->group_of[i] + 1]++;
    }
    free(slot);
    for (size_t u = 0; u < g->n_groups; u++) g->first[u + 1] += g->first[u];
    uint32_t *fill = cb_malloc(g->n_groups * sizeof *fill, err);
    if (!fill) {
        groups_free(g);
        return CB_ENOMEM;
    }
    memcpy(fill, g->first, g->n_groups * sizeof *fill);
    for (size_t i = 0; i < n; i++) g->members[fill[g->group_of[i]]++] = (uint32_t)i;
    free(fill);
    return CB_OK;
}

/* Rows of group u's table from its distinct-vector neighbours nb[0..m) (U's
 * indices, canonical order): the k + 1 best rows of V (ranked by canonical g,
 * ties to the lower row; at most k + 1 per group are needed), then each
 * member's k best without itself. Returns false when the m groups may not
 * hold every row tied with the last one needed (a canonical tie between two
 * distinct vectors at the cut): the caller searches those members directly. */
static bool group_rows(const groups *g, const float *U, size_t n_groups, size_t d, size_t u, const int32_t *nb,
                       size_t m, size_t k, cand *c, cb_knn_table *t) {
    size_t nc = 0, j = 0;
    double last = 0.0;
    for (; j < m; j++) {
        double gv = canon_good(U + u * d, U + (size_t)nb[j] * d, d, CB_KNN_L2);
        if (nc >= k + 1 && gv < last) break;
        last = gv;
        size_t f = g->first[nb[j]], e = g->first[nb[j] + 1];
        if (e - f > k + 1) e = f + k + 1;
        for (; f < e; f++) c[nc++] = (cand){gv, (int32_t)g->members[f]};
    }
    if (j == m && m < n_groups) return false; /* the next group might tie */
    sort_cands(c, nc);
    for (size_t f = g->first[u]; f < g->first[u + 1]; f++) {
        uint32_t i = g->members[f];
        for (size_t r = 0, o = 0; o < k && r < nc; r++) {
            if (c[r].idx == (int32_t)i) continue;
            t->neighbors[i * k + o] = c[r].idx;
            t->distances[i * k + o++] = good_to_score(c[r].g, CB_KNN_L2);
        }
    }
    return true;
}

/* The table through distinct vectors: items sharing a vector (same
 * features) are searched once, as one row of U, and their lists expanded
 * from U's; near-ties between identical rows never reach the fast pass. */
static int similar_table_grouped(cb_knn_table *t, const float *V, size_t n, size_t d, size_t k, const groups *g,
                                 int threads, cb_error *err) {
    const size_t nu = g->n_groups, m = k + 2 < nu ? k + 2 : nu;
    float *U = cb_malloc(nu * d * sizeof *U, err);
    int32_t *nb = cb_malloc(nu * m * sizeof *nb, err), *redo = cb_malloc(n * sizeof *redo, err);
    cand *c = cb_malloc(m * (k + 1) * sizeof *c, err);
    cb_knn_index *ix = NULL;
    int rc = U && nb && redo && c ? CB_OK : CB_ENOMEM;
    if (!rc) {
        for (size_t u = 0; u < nu; u++) memcpy(U + u * d, V + (size_t)g->members[g->first[u]] * d, d * sizeof *U);
        cb_knn_params p = {.threads = threads};
        if (!(rc = cb_knn_index_create(&ix, U, nu, d, err)))
            rc = search_job(ix, U, nu, m, CB_KNN_L2, &p, false, nb, NULL, err);
    }
    size_t n_redo = 0;
    for (size_t u = 0; !rc && u < nu; u++)
        if (!group_rows(g, U, nu, d, u, nb + u * m, m, k, c, t))
            for (size_t f = g->first[u]; f < g->first[u + 1]; f++) redo[n_redo++] = (int32_t)g->members[f];
    cb_knn_index_free(ix);
    ix = NULL;
    if (!rc && n_redo) { /* rare: canonical ties between distinct vectors at the cut */
        float *Q = cb_malloc(n_redo * d * sizeof *Q, err);
        int32_t *oi = cb_malloc(n_redo * k * sizeof *oi, err);
        float *os = cb_malloc(n_redo * k * sizeof *os, err);
        rc = Q && oi && os ? cb_knn_index_create(&ix, V, n, d, err) : CB_ENOMEM;
        if (!rc) {
            for (size_t r = 0; r < n_redo; r++) memcpy(Q + r * d, V + (size_t)redo[r] * d, d * sizeof *Q);
            cb_knn_params p = {.threads = threads, .self_index = redo};
            rc = search_job(ix, Q, n_redo, k, CB_KNN_L2, &p, false, oi, os, err);
        }
        for (size_t r = 0; !rc && r < n_redo; r++) {
            memcpy(t->neighbors + (size_t)redo[r] * k, oi + r * k, k * sizeof *oi);
            memcpy(t->distances + (size_t)redo[r] * k, os + r * k, k * sizeof *os);
        }
        cb_knn_index_free(ix);
        free(Q), free(oi), free(os);
    }
    free(U), free(nb), free(redo), free(c);
    return rc;
}

int cb_knn_similar_table(cb_knn_table *table, const float *V, size_t n, size_t d, size_t k, int threads,
                         cb_error *err) {
    memset(table, 0, sizeof *table);
    if (n < 2) return cb_fail(err, CB_EINVAL, "knn: a similar-items table needs at least 2 items (got %zu)", n);
    if (k == 0 || k > n - 1)
        return cb_fail(err, CB_EINVAL, "knn: k = %zu must be between 1 and the number of other items (%zu)", k,
                       n - 1);
    int rc = check_finite(V, n, d, "item", err);
    if (rc) return rc;
    if (n >= (size_t)INT32_MAX || d > (size_t)INT32_MAX / 2)
        return cb_fail(err, CB_EINVAL, "knn: catalog too large (%zu x %zu)", n, d);
    groups g;
    if ((rc = groups_find(&g, V, n, d, err))) return rc;
    table->neighbors = cb_calloc(n * k, sizeof *table->neighbors, err);
    table->distances = cb_calloc(n * k, sizeof *table->distances, err);
    if (!table->neighbors || !table->distances) {
        rc = CB_ENOMEM;
    } else if (g.n_groups <= n - n / 8) { /* enough shared vectors to repay the second pass */
        rc = similar_table_grouped(table, V, n, d, k, &g, threads, err);
    } else {
        cb_knn_index *ix;
        if (!(rc = cb_knn_index_create(&ix, V, n, d, err))) {
            cb_knn_params p = {.threads = threads};
            rc = search_job(ix, V, n, k, CB_KNN_L2, &p, true, table->neighbors, table->distances, err);
            cb_knn_index_free(ix);
        }
    }
    groups_free(&g);
    if (rc) {
        cb_knn_table_free(table);
        return rc;
    }
    table->n_items = n;
    table->k = k;
    return CB_OK;
}

void cb_knn_table_free(cb_knn_table *table) {
    if (!table) return;
    free(table->neighbors);
    free(table->distances);
    memset(table, 0, sizeof *table);
}

int cb_knn_table_row(const cb_knn_table *table, size_t item, const int32_t **neighbors, const float **distances,
                     cb_error *err) {
    if (!table || item >= table->n_items)
        return cb_fail(err, CB_ENOTFOUND, "knn: item %zu is not in the similar-items table (%zu items)", item,
                       table ? table->n_items : 0);
    if (neighbors) *neighbors = table->neighbors + item * table->k;
    if (distances) *distances = table->distances + item * table->k;
    return CB_OK;
}

/* Is a new row at canonical distance g (index larger than every existing
 * one) strictly closer to item i than its neighbour at rank r? Floats decide
 * unless they are equal; then the canonical distance of that neighbour is
 * recomputed (it is what the table was ranked by). */
static bool closer_than(double g, const float *V, size_t d, size_t i, const cb_knn_table *t, size_t r) {
    float fg = (float)g, fr = t->distances[i * t->k + r];
    if (fg != fr) return fg < fr;
    size_t j = (size_t)t->neighbors[i * t->k + r];
    return g < canon_l2(V + i * d, V + j * d, d);
}

int cb_knn_table_insert(cb_knn_table *table, const float *V, size_t d, const float *new_vec, cb_error *err) {
    if (!table || !table->neighbors || table->k == 0)
        return cb_fail(err, CB_EINVAL, "knn: insert into an empty similar-items table");
    const size_t n = table->n_items, k = table->k;
    if (n + 1 >= (size_t)INT32_MAX) return cb_fail(err, CB_EINVAL, "knn: similar-items table is full");
    int rc = check_finite(new_vec, 1, d, "new item", err);
    if (rc) return rc;
    dheap h = {cb_calloc(k, sizeof(cand), err), k};
    if (!h.e) return CB_ENOMEM;
    /* Grow both arrays first: after this nothing can fail, so on failure the
     * table is unchanged (a larger allocation with the same n_items). */
    int32_t *nb = cb_realloc_array(table->neighbors, (n + 1) * k, sizeof *nb, err);
    if (!nb) {
        free(h.e);
        return CB_ENOMEM;
    }
    table->neighbors = nb;
    float *ds = cb_realloc_array(table->distances, (n + 1) * k, sizeof *ds, err);
    if (!ds) {
        free(h.e);
        return CB_ENOMEM;
    }
    table->distances = ds;

    dheap_init(&h);
    for (size_t i = 0; i < n; i++) {
        /* canon_l2 is symmetric bit for bit: (a-b)^2 == (b-a)^2. */
        double g = canon_l2(new_vec, V + i * d, d);
        dheap_offer(&h, -g, (int32_t)i);
        if (!closer_than(g, V, d, i, table, k - 1)) continue;
        size_t r = k - 1;
        while (r > 0 && closer_than(g, V, d, i, table, r - 1)) r--;
        int32_t *rn = nb + i * k;
        float *rd = ds + i * k;
        memmove(rn + r + 1, rn + r, (k - 1 - r) * sizeof *rn);
        memmove(rd + r + 1, rd + r, (k - 1 - r) * sizeof *rd);
        rn[r] = (int32_t)n;
        rd[r] = (float)g;
    }
    sort_cands(h.e, k);
    for (size_t r = 0; r < k; r++) {
        nb[n * k + r] = h.e[r].idx;
        ds[n * k + r] = (float)(-h.e[r].g);
    }
    free(h.e);
    table->n_items = n + 1;
    return CB_OK;
}

/* ---------------------------------------------------------------------------
 * Save / load. */

#define TABLE_FORMAT "cbrec-knn-table"
#define TABLE_VERSION 1

int cb_knn_table_save(const cb_knn_table *table, const char *path, const char *fingerprint, cb_error *err) {
    if (!table || !table->neighbors || table->n_items == 0)
        return cb_fail(err, CB_EINVAL, "knn: cannot save an empty similar-items table");
    if (!fingerprint || !*fingerprint)
        return cb_fail(err, CB_EINVAL, "knn: a similar-items table needs the model fingerprint");
    cb_st_writer *w = cb_st_writer_create(err);
    if (!w) return CB_ENOMEM;
    int64_t shape[2] = {(int64_t)table->n_items, (int64_t)table->k};
    int rc;
    if (!(rc = cb_st_add(w, "neighbors", CB_ST_I32, shape, 2, table->neighbors, err)) &&
        !(rc = cb_st_add(w, "distances", CB_ST_F32, shape, 2, table->distances, err)) &&
        !(rc = cb_st_set_meta(w, "fingerprint", fingerprint, err)))
        rc = cb_st_write(w, path, TABLE_FORMAT, TABLE_VERSION, err);
    cb_st_writer_free(w);
    return rc;
}

int cb_knn_table_load(cb_knn_table *table, const char *path, const char *fingerprint, cb_error *err) {
    memset(table, 0, sizeof *table);
    if (!fingerprint || !*fingerprint)
        return cb_fail(err, CB_EINVAL, "knn: loading a similar-items table needs the model fingerprint");
    cb_st *st;
    int rc = cb_st_open(&st, path, TABLE_FORMAT, TABLE_VERSION, err);
    if (rc) return rc;
    const char *fp = cb_st_meta(st, "fingerprint");
    int64_t sn[2], sd[2];
    const int32_t *nbr;
    const float *dist;
    if (!fp || strcmp(fp, fingerprint) != 0) {
        rc = cb_fail(err, CB_EFORMAT, "%s: similar-items table was built from another model (fingerprint %s, expected %s)",
                     path, fp ? fp : "(none)", fingerprint);
        goto out;
    }
    if (!(nbr = cb_st_tensor(st, "neighbors", CB_ST_I32, 2, sn, err)) ||
        !(dist = cb_st_tensor(st, "distances", CB_ST_F32, 2, sd, err))) {
        rc = CB_EFORMAT;
        goto out;
    }
    if (sn[0] != sd[0] || sn[1] != sd[1] || sn[0] < 2 || sn[1] < 1 || sn[1] >= sn[0] || sn[0] >= INT32_MAX) {
        rc = cb_fail(err, CB_EFORMAT, "%s: inconsistent table shapes [%" PRId64 ",%" PRId64 "] / [%" PRId64 ",%" PRId64 "]",
                     path, sn[0], sn[1], sd[0], sd[1]);
        goto out;
    }
    size_t n = (size_t)sn[0], k = (size_t)sn[1];
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < k; r++) {
            int32_t j = nbr[i * k + r];
            float dv = dist[i * k + r];
            if (j < 0 || (size_t)j >= n || (size_t)j == i || !(dv >= 0.0f) || !isfinite(dv) ||
                (r > 0 && dv < dist[i * k + r - 1])) {
                rc = cb_fail(err, CB_EFORMAT, "%s: row %zu of the similar-items table is invalid at rank %zu", path,
                             i, r);
                goto out;
            }
        }
    table->neighbors = cb_malloc(n * k * sizeof *table->neighbors, err);
    table->distances = cb_malloc(n * k * sizeof *table->distances, err);
    if (!table->neighbors || !table->distances) {
        cb_knn_table_free(table);
        rc = CB_ENOMEM;
        goto out;
    }
    memcpy(table->neighbors, nbr, n * k * sizeof *nbr);
    memcpy(table->distances, dist, n * k * sizeof *dist);
    table->n_items = n;
    table->k = k;
    rc = CB_OK;
out:
    cb_st_close(st);
    return rc;
}
