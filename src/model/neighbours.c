/* neighbours — the item-item neighbour lists learned from the training
 * interactions, their scores, their section of the model file and the choice
 * of their settings on a validation carve. See neighbours.h. */
#include "model/neighbours.h"
#include "base/threads.h"

#include "model/comm.h"

#include <cblas.h>
#if CB_X86_SIMD
#include <immintrin.h>
#endif
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cb_neighbours_free(cb_neighbours *nb) {
    if (!nb) return;
    for (int i = 0; i < 3; i++) free(nb->owned[i]);
    free(nb->tuning);
    free(nb);
}

/* CSR of each row's distinct columns from the training ratings: by user
 * (row = user, col = item) or by item. off[n_rows + 1], col[...]. */
static int interactions(const cb_dataset *ds, const uint32_t *train, size_t n_train, bool by_item, size_t **off_out,
                        uint32_t **col_out, cb_error *err) {
    uint32_t n_rows = by_item ? cb_dataset_n_items(ds) : cb_dataset_n_users(ds);
    size_t *off = cb_calloc((size_t)n_rows + 2, sizeof *off, err);
    uint32_t *col = cb_malloc((n_train + 1) * sizeof *col, err);
    if (!off || !col) {
        free(off);
        free(col);
        return CB_ENOMEM;
    }
    for (size_t j = 0; j < n_train; j++) {
        const cb_rating *r = &ds->ratings[train[j]];
        off[(by_item ? r->item : r->user) + 2]++;
    }
    for (uint32_t u = 0; u < n_rows; u++) off[u + 2] += off[u + 1];
    for (size_t j = 0; j < n_train; j++) {
        const cb_rating *r = &ds->ratings[train[j]];
        col[off[(by_item ? r->item : r->user) + 1]++] = by_item ? r->user : r->item;
    }
    cb_csr_sort_unique(off, col, n_rows);
    *off_out = off;
    *col_out = col;
    return CB_OK;
}

/* A candidate neighbour; "better" = higher similarity, then lower item. */
typedef struct nb_cand {
    float sim;
    uint32_t item;
} nb_cand;

static inline bool better(nb_cand a, nb_cand b) { return a.sim > b.sim || (a.sim == b.sim && a.item < b.item); }

/* Min-heap on "better": the root is the worst kept candidate. */
static void heap_down(nb_cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && better(h[m], h[l])) m = l;
        if (r < n && better(h[m], h[r])) m = r;
        if (m == i) return;
        nb_cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* h[0..n) best first: heapified (a heap_push below k never was), then the
 * worst moved to the end one by one. "better" is a total order (the items
 * differ), so this is the order any sort gives, without qsort's calls. */
static void heap_sort_best_first(nb_cand *h, size_t n) {
    for (size_t s = n / 2; s-- > 0;) heap_down(h, n, s);
    for (size_t m = n; m > 1; m--) {
        nb_cand t = h[0];
        h[0] = h[m - 1];
        h[m - 1] = t;
        heap_down(h, m - 1, 0);
    }
}

/* Keep c among the k best in the heap h[0..*n). */
static void heap_push(nb_cand *h, size_t *n, uint32_t k, nb_cand c) {
    if (*n < k) {
        h[(*n)++] = c;
        if (*n == k)
            for (size_t s = k / 2; s-- > 0;) heap_down(h, k, s);
    } else if (better(c, h[0])) {
        h[0] = c;
        heap_down(h, k, 0);
    }
}

/* One stable counting pass of sort_best_first: src by byte `shift` of its
 * key (the item, or the similarity's bits inverted: ascending = best
 * first) into dst; false, and nothing moved, when every key has the same
 * byte there. */
static inline uint32_t radix_key(const nb_cand *c, bool by_item) {
    uint32_t key = c->item;
    if (!by_item) memcpy(&key, &c->sim, sizeof key), key = ~key;
    return key;
}

static bool radix_pass(nb_cand *dst, const nb_cand *src, size_t n, int shift, bool by_item) {
    size_t count[257] = {0};
    for (size_t t = 0; t < n; t++) count[(radix_key(&src[t], by_item) >> shift & 255) + 1]++;
    for (int b = 0; b < 256; b++)
        if (count[b + 1] == n) return false;
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    for (size_t t = 0; t < n; t++) dst[count[radix_key(&src[t], by_item) >> shift & 255]++] = src[t];
    return true;
}

/* c[0..n) (similarities > 0 and finite: their bits order as they do) best
 * first, by stable radix passes: the items' bytes unless `in_item_order`,
 * then the similarities'; the result in c or tmp (returned). "better" is a
 * total order, so this is the order any sort by it gives. */
static nb_cand *sort_best_first(nb_cand *c, nb_cand *tmp, size_t n, bool in_item_order, uint32_t n_items) {
    for (int by_item = in_item_order ? 0 : 1; by_item >= 0; by_item--)
        for (int shift = 0; shift < 32 && (!by_item || (uint64_t)n_items > (uint64_t)1 << shift); shift += 8)
            if (radix_pass(tmp, c, n, shift, by_item)) {
                nb_cand *t = c;
                c = tmp, tmp = t;
            }
    return c;
}

/* A list's candidates: kept whole and sorted (sort_best_first) while they are
 * at most SORT_ALL x k, else through the heap of the k best (cand_add): a
 * worker's scratch is 2 x SORT_ALL x k candidates, whatever the catalog. */
#define SORT_ALL 8

/* What fitting needs: the interactions both ways and per-kind state. The
 * cosine holds the items' users for one block of items at a time (ioff over
 * every item, empty outside the block): blocks of about an eighth of the
 * interactions (or one item's), each rebuilt from the users' items. */
#define FIT_BLOCKS 8
/* Items a worker takes at a time (fit_lists); EASE's user form makes up to
 * this many columns at once (ease_user_block). */
#define FIT_CHUNK 16
typedef struct fit_ctx {
    cb_neighbours_kind kind;
    uint32_t k, n_users, n_items;
    double param;                 /* shrinkage (cosine) or lambda (EASE) */
    const size_t *uoff;           /* CSR: users' items (the caller's) */
    const uint32_t *uitems;
    size_t *ioff;                 /* CSR: items' users (cosine: the block's items) */
    uint32_t *iusers;
    uint32_t *deg;                /* each item's number of users [n_items] */
    size_t block;                 /* cosine: a block's users at most, unless one item has more */
    bool user_form;               /* EASE: Woodbury over the users (fewer users than items) */
    double *inv;                  /* EASE: (X X^T + lambda I)^-1 [n_users^2] or (X^T X + lambda I)^-1 [n_items^2] */
    double *pdiag;                /* EASE: diag of P = (X^T X + lambda I)^-1 [n_items] */
    int threads;                  /* workers (resolved, >= 1) */
    const cb_train_comm *comm;    /* the ranks fitting these lists together (NULL: one process) */
} fit_ctx;

/* One worker's scratch for the per-item lists (read-only fit_ctx shared). */
typedef struct fit_scratch {
    uint32_t *count, *touched; /* cosine: co-counts [n_items], zero between items */
    double *v, *z;             /* EASE user form: [width x n_users], [n_items x width] (ease_user_block) */
    size_t width;              /* EASE user form: the columns of a block, a power of two <= FIT_CHUNK */
    nb_cand *cand, *heap;      /* [cap] an item's candidates, then [cap]: the sort's other half, or the heap */
    size_t cap, got;           /* cap: SORT_ALL x k (at most the catalog); got: the heap's size */
    bool spilled;              /* more than cap candidates: every one went through the heap of the k best */
} fit_scratch;

/* Offer candidate c of an item (h offered so far): kept while there are at
 * most cap, else all of them, in offer order, through the heap. */
static inline void cand_add(fit_scratch *s, uint32_t k, size_t *h, nb_cand c) {
    if (*h < s->cap) {
        s->cand[(*h)++] = c;
        return;
    }
    if (!s->spilled)
        for (size_t t = 0; t < s->cap; t++) heap_push(s->heap, &s->got, k, s->cand[t]);
    s->spilled = true;
    heap_push(s->heap, &s->got, k, c);
}

/* Cosine: item i's co-occurrence counts with every other item (through its
 * users), shrunk cosines, into the heap. */
static size_t cosine_list(const fit_ctx *f, fit_scratch *s, uint32_t i) {
    size_t n_touched = 0, h = 0;
    for (size_t a = f->ioff[i]; a < f->ioff[i + 1]; a++)
        for (size_t b = f->uoff[f->iusers[a]]; b < f->uoff[f->iusers[a] + 1]; b++) {
            uint32_t j = f->uitems[b];
            if (!s->count[j]++) s->touched[n_touched++] = j;
        }
    double n_i = (double)f->deg[i];
    for (size_t t = 0; t < n_touched; t++) {
        uint32_t j = s->touched[t];
        double n_j = (double)f->deg[j];
        nb_cand c = {(float)(s->count[j] / (sqrt(n_i * n_j) + f->param)), j};
        s->count[j] = 0;
        if (j != i && c.sim > 0) cand_add(s, f->k, &h, c);
    }
    return h;
}

/* The Gram matrix's rows [lo, hi) (of n) over the other side: each pair
 * of a row's columns adds 1.0 (whole counts: exact in any order). */
static void gram_rows(fit_ctx *f, size_t n, size_t lo, size_t hi) {
    const size_t *off = f->user_form ? f->ioff : f->uoff;
    const uint32_t *col = f->user_form ? f->iusers : f->uitems;
    size_t n_rows = f->user_form ? f->n_items : f->n_users;
    for (size_t r = 0; r < n_rows; r++)
        for (size_t a = off[r]; a < off[r + 1]; a++)
            if (col[a] >= lo && col[a] < hi)
                for (size_t b = off[r]; b < off[r + 1]; b++) f->inv[(size_t)col[a] * n + col[b]] += 1.0;
}

/* diag P for the items [lo, hi) from the inverse (n x n). */
static void pdiag_items(fit_ctx *f, size_t n, size_t lo, size_t hi) {
    for (size_t j = lo; j < hi; j++) {
        if (!f->user_form) {
            f->pdiag[j] = f->inv[j * n + j];
            continue;
        }
        double q = 0; /* x_j^T M x_j */
        for (size_t a = f->ioff[j]; a < f->ioff[j + 1]; a++)
            for (size_t b = f->ioff[j]; b < f->ioff[j + 1]; b++) q += f->inv[(size_t)f->iusers[a] * n + f->iusers[b]];
        f->pdiag[j] = (1.0 - q) / f->param;
    }
}

/* ease_prepare's loops on threads: ranges of the Gram matrix's rows (each
 * worker adds to its own rows only) or of the items' diag P (each an
 * independent sum in a fixed order): the same bits for any count. */
typedef struct ease_job {
    fit_ctx *f;
    bool diag; /* pdiag_items, else gram_rows */
    size_t n, n_parts;
} ease_job;

static void ease_part(void *ctx, size_t c, int worker) {
    (void)worker;
    const ease_job *e = ctx;
    size_t total = e->diag ? e->f->n_items : e->n, lo = total * c / e->n_parts, hi = total * (c + 1) / e->n_parts;
    if (e->diag) pdiag_items(e->f, e->n, lo, hi);
    else gram_rows(e->f, e->n, lo, hi);
}

static void ease_run(fit_ctx *f, size_t n, bool diag) {
    ease_job e = {.f = f, .diag = diag, .n = n, .n_parts = f->threads > 1 ? 4 * (size_t)f->threads : 1};
    cb_threads_for(0, e.n_parts, f->threads, ease_part, &e);
}

/* EASE (Steck 2019): B = I - P diag(1/diag P) with the diagonal zeroed,
 * P = (X^T X + lambda I)^-1; row i of B gives item i's neighbours, B_ij =
 * -P_ij / P_jj. In the user form P = (I - X^T M X) / lambda with
 * M = (X X^T + lambda I)^-1, an n_users^2 inverse instead of n_items^2.
 * The Gram matrix, the inverse and diag P on f->threads; the inverse's
 * later stages split across f->comm's ranks. */
static int ease_prepare(fit_ctx *f, cb_error *err) {
    size_t n = f->user_form ? f->n_users : f->n_items;
    if (n > CB_NEIGHBOURS_MAX_DENSE)
        return cb_fail(err, CB_EINVAL, "neighbours: EASE needs a dense %zu x %zu inverse (at most %u)", n, n,
                       CB_NEIGHBOURS_MAX_DENSE);
    f->inv = cb_calloc(n * n + 1, sizeof *f->inv, err);
    f->pdiag = cb_malloc(((size_t)f->n_items + 1) * sizeof *f->pdiag, err);
    if (!f->inv || !f->pdiag) return CB_ENOMEM;
    ease_run(f, n, false);
    int rc = cb_neighbours_ridge_inverse(f->inv, n, f->param, f->threads, f->comm, err);
    if (!rc) ease_run(f, n, true);
    return rc;
}

/* EASE's user form: z = -X^T (M x_i) / lambda for the items i of [lo, lo +
 * s->width) at once (those past f->n_items: zero), into s->z interleaved
 * (item j's values at j * width): for each, v = M x_i (the rows of M of its
 * users added in their order), then z_j -= v_u / lambda over every
 * interaction (u, j) in user order, each column exactly as alone; one pass
 * over the interactions serves them all. */
static void ease_user_block(const fit_ctx *f, fit_scratch *s, uint32_t lo) {
    size_t nu = f->n_users, W = s->width;
    for (size_t c = 0; c < W; c++) {
        double *v = s->v + c * nu;
        memset(v, 0, nu * sizeof *v);
        if (lo + c >= f->n_items) continue;
        for (size_t a = f->ioff[lo + c]; a < f->ioff[lo + c + 1]; a++) {
            const double *m = f->inv + (size_t)f->iusers[a] * nu;
            size_t u = 0;
#if CB_X86_SIMD /* two at a time (each sum elementwise: the same bits) */
            for (; u + 2 <= nu; u += 2) _mm_storeu_pd(v + u, _mm_add_pd(_mm_loadu_pd(v + u), _mm_loadu_pd(m + u)));
#endif
            for (; u < nu; u++) v[u] += m[u];
        }
    }
    memset(s->z, 0, (size_t)f->n_items * W * sizeof *s->z);
    double vu[FIT_CHUNK];
    for (size_t u = 0; u < nu; u++) {
        for (size_t c = 0; c < W; c++) vu[c] = s->v[c * nu + u] / f->param;
        for (size_t b = f->uoff[u]; b < f->uoff[u + 1]; b++) {
            double *z = s->z + (size_t)f->uitems[b] * W;
            size_t c = 0;
#if CB_X86_SIMD
            for (; c + 2 <= W; c += 2) _mm_storeu_pd(z + c, _mm_sub_pd(_mm_loadu_pd(z + c), _mm_loadu_pd(vu + c)));
#endif
            for (; c < W; c++) z[c] -= vu[c];
        }
    }
}

/* Item i's candidates; in the user form, ease_user_block has made its
 * column (i - lo of the block at lo). */
static size_t ease_list(const fit_ctx *f, fit_scratch *s, uint32_t i, uint32_t lo) {
    size_t h = 0, stride = 1;
    if (f->ioff[i + 1] == f->ioff[i]) return 0; /* no interactions: no neighbours */
    const double *p = f->inv + (size_t)i * f->n_items;
    if (f->user_form) p = s->z + (i - lo), stride = s->width; /* off the diagonal P_ij = z_j (ease_user_block) */
    for (uint32_t j = 0; j < f->n_items; j++) {
        if (j == i || f->ioff[j + 1] == f->ioff[j]) continue;
        nb_cand c = {(float)(-p[j * stride] / f->pdiag[j]), j};
        if (c.sim > 0 && isfinite(c.sim)) cand_add(s, f->k, &h, c);
    }
    return h;
}

/* The end of the cosine's block of items that starts at lo (of [lo, hi)):
 * at most f->block users, at least one item. */
static uint32_t block_end(const fit_ctx *f, uint32_t lo, uint32_t hi) {
    size_t sum = f->deg[lo];
    while (++lo < hi && sum + f->deg[lo] <= f->block) sum += f->deg[lo];
    return lo;
}

/* The cosine's items' users for the block [lo, hi) from the users' items
 * (users ascending, as interactions() orders them). */
static void block_users(fit_ctx *f, uint32_t lo, uint32_t hi) {
    size_t *off = f->ioff;
    memset(off, 0, ((size_t)f->n_items + 2) * sizeof *off);
    for (uint32_t i = lo; i < hi; i++) off[i + 2] = f->deg[i];
    for (uint32_t i = 0; i < f->n_items; i++) off[i + 2] += off[i + 1];
    for (uint32_t u = 0; u < f->n_users; u++)
        for (size_t b = f->uoff[u]; b < f->uoff[u + 1]; b++)
            if (f->uitems[b] >= lo && f->uitems[b] < hi) f->iusers[off[f->uitems[b] + 1]++] = u;
}

/* The items' degrees and users from the users' items: EASE's for every
 * item; for the cosine a block size for the items [lo, hi) (an eighth of
 * their users) and room for the largest block's users (filled later). */
static int items_prepare(fit_ctx *f, uint32_t lo, uint32_t hi, cb_error *err) {
    f->deg = cb_calloc((size_t)f->n_items + 1, sizeof *f->deg, err);
    f->ioff = f->deg ? cb_malloc(((size_t)f->n_items + 2) * sizeof *f->ioff, err) : NULL;
    if (!f->ioff) return CB_ENOMEM;
    size_t n = f->uoff[f->n_users], most = n + 1, total = 0;
    for (size_t b = 0; b < n; b++) f->deg[f->uitems[b]]++;
    bool cos = f->kind == CB_NEIGHBOURS_COSINE;
    if (cos) {
        for (uint32_t i = lo; i < hi; i++) total += f->deg[i];
        f->block = total / FIT_BLOCKS + 1, most = 1;
    }
    for (uint32_t b = lo, e; cos && b < hi; b = e) {
        size_t sum = 0;
        for (e = block_end(f, b, hi); b < e; b++) sum += f->deg[b];
        most = sum > most ? sum : most;
    }
    if (!(f->iusers = cb_malloc(most * sizeof *f->iusers, err))) return CB_ENOMEM;
    if (!cos) block_users(f, 0, f->n_items);
    return CB_OK;
}

static void fit_ctx_free(fit_ctx *f) {
    free(f->ioff);
    free(f->iusers);
    free(f->deg);
    free(f->inv);
    free(f->pdiag);
}

const char *cb_neighbours_kind_name(cb_neighbours_kind kind) { return kind == CB_NEIGHBOURS_EASE ? "ease" : "cosine"; }

bool cb_neighbours_ease_fits(const cb_dataset *ds) {
    uint32_t nu = cb_dataset_n_users(ds), ni = cb_dataset_n_items(ds);
    if ((nu < ni ? nu : ni) > CB_NEIGHBOURS_MAX_DENSE) return false;
    /* the user form (fewer users than items) rebuilds z over every
     * interaction for each item: items x interactions steps, per lambda */
    return nu >= ni || (double)ni * (double)ds->n_ratings <= CB_NEIGHBOURS_MAX_USER_FORM;
}

int cb_neighbours_check_k(uint32_t n_items, uint32_t *k, cb_error *err) {
    if (*k >= n_items) *k = n_items > 1 ? n_items - 1 : 1;
    if ((size_t)n_items * *k > INT32_MAX)
        return cb_fail(err, CB_EINVAL, "neighbours: %u items x %u neighbours exceed the model file's int32 offsets: "
                       "give at most %u neighbours per item", n_items, *k, (unsigned)(INT32_MAX / n_items));
    return CB_OK;
}

/* The other ranks' lists (comm): each rank fitted the items [lo, hi) of its
 * share, their lengths in off[lo + 1 .. hi + 1) and their n_mine entries at
 * the front of *items, *sims; afterwards off holds every item's offsets and
 * *items, *sims (reallocated) every list. */
static int gather_lists(int32_t *off, int32_t **items, float **sims, size_t n_mine, uint32_t ni,
                        const cb_train_comm *comm, cb_error *err) {
    int n = cb_comm_ranks(comm), me = cb_comm_rank(comm);
    size_t *bytes = cb_calloc(2 * (size_t)n, sizeof *bytes, err), *offset = bytes ? bytes + n : NULL;
    if (!bytes) return CB_ENOMEM;
    for (int r = 0; r < n; r++) {
        size_t lo, hi;
        cb_split_range(ni, n, r, &lo, &hi);
        bytes[r] = (hi - lo) * sizeof *off;
        offset[r] = (lo + 1) * sizeof *off;
    }
    int rc = cb_comm_allgather_bytes(comm, off, bytes, offset, err);
    for (uint32_t i = 0; !rc && i < ni; i++) off[i + 1] += off[i];
    size_t total = rc ? 0 : (size_t)off[ni];
    int32_t *all_items = rc ? NULL : cb_malloc((total + 1) * sizeof *all_items, err);
    float *all_sims = all_items ? cb_malloc((total + 1) * sizeof *all_sims, err) : NULL;
    if (!rc && !all_sims) rc = CB_ENOMEM;
    for (int r = 0; !rc && r < n; r++) {
        size_t lo, hi;
        cb_split_range(ni, n, r, &lo, &hi);
        bytes[r] = (size_t)(off[hi] - off[lo]) * 4;
        offset[r] = (size_t)off[lo] * 4;
        if (r == me) {
            memcpy(all_items + off[lo], *items, n_mine * sizeof *all_items);
            memcpy(all_sims + off[lo], *sims, n_mine * sizeof *all_sims);
        }
    }
    if (!rc && !(rc = cb_comm_allgather_bytes(comm, all_items, bytes, offset, err)))
        rc = cb_comm_allgather_bytes(comm, all_sims, bytes, offset, err);
    if (!rc) {
        free(*items), free(*sims);
        *items = all_items, *sims = all_sims;
    } else {
        free(all_items), free(all_sims);
    }
    free(bytes);
    return rc;
}

/* ---- the per-item lists on threads: workers take chunks of FIT_CHUNK items
 * from a shared counter and write item i's list, computed exactly as on one
 * thread, into its own slot of k entries, (i - lo) * k, of one allocation
 * for every worker (pages no list reaches are never resident); the lists are
 * then moved up in item order and the rest given back (the same bits for
 * any number of threads, and no second copy of them). */
typedef struct fit_run {
    const fit_ctx *f;
    uint32_t lo, hi;           /* this rank's items */
    uint32_t blo, bhi;         /* the block of them fitted now */
    int32_t *off;              /* off[i + 1] = item i's list length */
    int32_t *items;            /* item i's list at (i - lo) * k */
    float *sims;
} fit_run;

typedef struct fit_worker {
    fit_run *run;
    fit_scratch s;
    cb_error err;
} fit_worker;

static void fit_worker_free(fit_worker *w) {
    free(w->s.count), free(w->s.touched), free(w->s.v), free(w->s.z), free(w->s.cand);
}

static int fit_worker_init(fit_worker *w, fit_run *run) {
    const fit_ctx *f = run->f;
    size_t ni = (size_t)f->n_items + 1;
    *w = (fit_worker){.run = run};
    bool cos = f->kind == CB_NEIGHBOURS_COSINE, user = !cos && f->user_form;
    size_t cap = (size_t)SORT_ALL * f->k < ni ? (size_t)SORT_ALL * f->k : ni;
    w->s.cap = cap;
    w->s.cand = cb_malloc(2 * (cap + 1) * sizeof *w->s.cand, &w->err);
    w->s.heap = w->s.cand ? w->s.cand + cap + 1 : NULL;
    if (cos) {
        w->s.count = cb_calloc(ni, sizeof *w->s.count, &w->err);
        w->s.touched = cb_malloc(ni * sizeof *w->s.touched, &w->err);
    }
    if (user) {
        size_t width = FIT_CHUNK; /* the block's columns: z at most ~1M doubles */
        while (width > 1 && width * ni > ((size_t)1 << 20)) width /= 2;
        w->s.width = width;
        w->s.v = cb_malloc(((size_t)f->n_users + 1) * width * sizeof *w->s.v, &w->err);
        w->s.z = cb_malloc(ni * width * sizeof *w->s.z, &w->err);
    }
    bool ok = w->s.heap && (!cos || (w->s.count && w->s.touched)) && (!user || (w->s.v && w->s.z));
    return ok ? CB_OK : CB_ENOMEM;
}

/* Item i's list, best first, into its slot; its length in off (lo: the
 * first item of ease_user_block's block). */
static void fit_one(fit_worker *w, uint32_t i, uint32_t lo) {
    fit_run *r = w->run;
    const fit_ctx *f = r->f;
    bool ease = f->kind == CB_NEIGHBOURS_EASE; /* EASE offers its candidates in item order */
    w->s.got = 0, w->s.spilled = false;
    size_t n = ease ? ease_list(f, &w->s, i, lo) : cosine_list(f, &w->s, i), got = w->s.got;
    const nb_cand *best = w->s.heap;
    if (!w->s.spilled) {
        best = sort_best_first(w->s.cand, w->s.heap, n, ease, f->n_items);
        got = n < f->k ? n : f->k;
    } else {
        heap_sort_best_first(w->s.heap, got);
    }
    size_t at = (size_t)(i - r->lo) * f->k;
    for (size_t t = 0; t < got; t++) {
        r->items[at + t] = (int32_t)best[t].item;
        r->sims[at + t] = best[t].sim;
    }
    r->off[i + 1] = (int32_t)got;
}

/* Chunk c of the block's items, on worker `worker`'s scratch (ctx: the workers). */
static void fit_chunk(void *ctx, size_t c, int worker) {
    fit_worker *w = (fit_worker *)ctx + worker;
    const fit_run *r = w->run;
    uint32_t lo = r->blo + (uint32_t)c * FIT_CHUNK, hi = r->bhi - lo > FIT_CHUNK ? lo + FIT_CHUNK : r->bhi;
    const fit_ctx *f = r->f;
    bool block = f->kind == CB_NEIGHBOURS_EASE && f->user_form;
    for (uint32_t i = lo; i < hi; i++) {
        uint32_t b = block ? lo + (i - lo) / (uint32_t)w->s.width * (uint32_t)w->s.width : i;
        if (block && b == i) ease_user_block(f, &w->s, b);
        fit_one(w, i, b);
    }
}

/* The slots' lists moved up to the front in item order (each move forward:
 * a list never lands past its slot's start), the rest given back; *n their
 * entries. */
static void fit_compact(fit_run *r, size_t *n) {
    size_t at = 0, k = r->f->k;
    for (uint32_t i = r->lo; i < r->hi; i++) {
        size_t len = (size_t)r->off[i + 1], slot = (size_t)(i - r->lo) * k;
        if (at != slot) {
            memmove(r->items + at, r->items + slot, len * sizeof *r->items);
            memmove(r->sims + at, r->sims + slot, len * sizeof *r->sims);
        }
        at += len;
    }
    int32_t *pi = realloc(r->items, (at + 1) * sizeof *r->items); /* shrinking: on failure the old block stays */
    float *ps = realloc(r->sims, (at + 1) * sizeof *r->sims);
    if (pi) r->items = pi;
    if (ps) r->sims = ps;
    *n = at;
}

/* Items [lo, hi)'s lists on n_threads workers (the cosine's block by
 * block): lengths in off[lo + 1 .. hi + 1), the lists in item order in
 * *items, *sims (*n entries). */
static int fit_lists(fit_ctx *f, uint32_t lo, uint32_t hi, int n_threads, int32_t *off, int32_t **items,
                     float **sims, size_t *n, cb_error *err) {
    uint32_t n_chunks = (hi - lo + FIT_CHUNK - 1) / FIT_CHUNK;
    int n_w = n_threads < 1 || n_chunks < 2 ? 1 : (uint32_t)n_threads > n_chunks ? (int)n_chunks : n_threads;
    size_t slots = (size_t)(hi - lo) * f->k + 1;
    fit_run r = {.f = f, .lo = lo, .hi = hi, .off = off};
    r.items = cb_malloc(slots * sizeof *r.items, err);
    r.sims = r.items ? cb_malloc(slots * sizeof *r.sims, err) : NULL;
    fit_worker *w = r.sims ? cb_calloc((size_t)n_w, sizeof *w, err) : NULL;
    int rc = w ? CB_OK : CB_ENOMEM;
    for (int t = 0; !rc && t < n_w; t++)
        if ((rc = fit_worker_init(&w[t], &r))) *err = w[t].err;
    for (r.blo = lo; !rc && r.blo < hi; r.blo = r.bhi) {
        bool cos = f->kind == CB_NEIGHBOURS_COSINE;
        r.bhi = cos ? block_end(f, r.blo, hi) : hi;
        if (cos) block_users(f, r.blo, r.bhi);
        cb_threads_for(0, (r.bhi - r.blo + FIT_CHUNK - 1) / FIT_CHUNK, n_w, fit_chunk, w);
    }
    if (!rc) {
        fit_compact(&r, n);
        *items = r.items, *sims = r.sims;
    } else {
        free(r.items), free(r.sims);
    }
    for (int t = 0; w && t < n_w; t++) fit_worker_free(&w[t]);
    free(w);
    return rc;
}

int cb_neighbours_fit(cb_neighbours **out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                      cb_neighbours_kind kind, uint32_t k, float param, cb_error *err) {
    return cb_neighbours_fit_shared(out, ds, train, n_train, kind, k, param, NULL, 1, err);
}

/* The lists on the users' items uoff, uitems (interactions() by user of
 * the training ratings; the caller's): cb_neighbours_fit_shared's work. */
static int fit_on_users(cb_neighbours **out, const cb_dataset *ds, const size_t *uoff, const uint32_t *uitems,
                        cb_neighbours_kind kind, uint32_t k, float param, const cb_train_comm *comm, int threads,
                        cb_error *err) {
    *out = NULL;
    uint32_t ni = cb_dataset_n_items(ds);
    if (k == 0 || !(param >= 0) || !isfinite(param) || (kind == CB_NEIGHBOURS_EASE && !(param > 0)))
        return cb_fail(err, CB_EINVAL, "neighbours: k must be >= 1, the shrinkage finite and >= 0, lambda > 0");
    int rc = cb_neighbours_check_k(ni, &k, err);
    if (rc) return rc;
    cb_neighbours *nb = cb_calloc(1, sizeof *nb, err);
    if (!nb) return CB_ENOMEM;
    *nb = (cb_neighbours){.kind = kind, .n_items = ni, .k = k};
    if (kind == CB_NEIGHBOURS_EASE) nb->lambda = param;
    else nb->shrink = param;
    fit_ctx f = {.kind = kind, .k = k, .n_users = cb_dataset_n_users(ds), .n_items = ni, .param = param,
                 .uoff = uoff, .uitems = uitems, .threads = cb_threads_resolve(threads, CB_THREADS_MAX),
                 .comm = comm};
    f.user_form = f.n_users < ni;
    size_t lo, hi, n_nb = 0; /* this rank's items */
    cb_split_range(ni, cb_comm_ranks(comm), cb_comm_rank(comm), &lo, &hi);
    rc = items_prepare(&f, (uint32_t)lo, (uint32_t)hi, err);
    if (!rc && kind == CB_NEIGHBOURS_EASE) rc = ease_prepare(&f, err);
    int32_t *off = rc ? NULL : cb_calloc((size_t)ni + 1, sizeof *off, err), *items = NULL;
    float *sims = NULL;
    if (!rc && !off) rc = CB_ENOMEM;
    if (!rc) rc = fit_lists(&f, (uint32_t)lo, (uint32_t)hi, f.threads, off, &items, &sims, &n_nb, err);
    if (!rc && cb_comm_ranks(comm) > 1) rc = gather_lists(off, &items, &sims, n_nb, ni, comm, err);
    else
        for (uint32_t i = 0; !rc && i < ni; i++) off[i + 1] += off[i];
    fit_ctx_free(&f);
    nb->off = nb->owned[0] = off;
    nb->item = nb->owned[1] = items;
    nb->sim = nb->owned[2] = sims;
    if (rc) cb_neighbours_free(nb);
    else *out = nb;
    return rc;
}

int cb_neighbours_fit_shared(cb_neighbours **out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                             cb_neighbours_kind kind, uint32_t k, float param, const cb_train_comm *comm,
                             int threads, cb_error *err) {
    *out = NULL;
    for (size_t j = 0; j < n_train; j++)
        if (train[j] >= ds->n_ratings) return cb_fail(err, CB_EINVAL, "neighbours: training index out of range");
    size_t *uoff = NULL;
    uint32_t *uitems = NULL;
    int rc = interactions(ds, train, n_train, false, &uoff, &uitems, err);
    if (!rc) rc = fit_on_users(out, ds, uoff, uitems, kind, k, param, comm, threads, err);
    free(uoff);
    free(uitems);
    return rc;
}

/* The k-capped extent [*lo, end) of item j's list (k 0: all kept). */
static inline int32_t list_span(const cb_neighbours *nb, uint32_t j, uint32_t k, int32_t *lo) {
    int32_t end = nb->off[j + 1];
    *lo = nb->off[j];
    return k && *lo + (int32_t)k < end ? *lo + (int32_t)k : end;
}

/* Ask for the next list's ids and weights while the current one scatters:
 * a list starts at a cache line the row's updates do not bring in. */
static inline void prefetch_list(const cb_neighbours *nb, const uint32_t *hist, size_t n_hist, size_t h, uint32_t k) {
    if (h >= n_hist || hist[h] >= nb->n_items) return;
    int32_t lo, end = list_span(nb, hist[h], k, &lo);
    for (int32_t t = lo; t < end; t += 16) {
        __builtin_prefetch(nb->item + t);
        __builtin_prefetch(nb->sim + t);
    }
}

/* The largest of row[0..n) and 0 (SSE, four lanes; max is exact, so the
 * order does not matter). */
static float row_max(const float *row, size_t n) {
    float max = 0;
    size_t i = 0;
#if CB_X86_SIMD
    __m128 m = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) m = _mm_max_ps(m, _mm_loadu_ps(row + i));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    max = _mm_cvtss_f32(m);
#endif
    for (; i < n; i++) max = row[i] > max ? row[i] : max;
    return max;
}

/* The scatter is the cost of a recommendation with neighbours (|H| x K
 * read-modify-writes), so its loop carries nothing else: the maximum is taken
 * afterwards over the row, which is the same value (every similarity is
 * > 0, so each sum only grows and the largest partial sum is a final one).
 * Unrolled by 4 (a list's items are distinct, so the adds keep their
 * order per item: the same sums as the plain loop), the next list prefetched. */
float cb_neighbours_row(const cb_neighbours *nb, const uint32_t *hist, size_t n_hist, uint32_t k, float *row) {
    memset(row, 0, (size_t)nb->n_items * sizeof *row);
    prefetch_list(nb, hist, n_hist, 0, k);
    for (size_t h = 0; h < n_hist; h++) {
        prefetch_list(nb, hist, n_hist, h + 1, k);
        uint32_t j = hist[h];
        if (j >= nb->n_items) continue;
        int32_t lo, end = list_span(nb, j, k, &lo), len = end - lo, t = 0;
        const int32_t *it = nb->item + lo;
        const float *sim = nb->sim + lo;
        for (; t + 4 <= len; t += 4) {
            int32_t a = it[t], b = it[t + 1], c = it[t + 2], d = it[t + 3];
            float fa = sim[t], fb = sim[t + 1], fc = sim[t + 2], fd = sim[t + 3];
            row[a] += fa, row[b] += fb, row[c] += fc, row[d] += fd;
        }
        for (; t < len; t++) row[it[t]] += sim[t];
    }
    return row_max(row, nb->n_items);
}

float cb_neighbours_divisor(const cb_neighbours *nb, float max) { return !(max > 0) ? 0 : nb->raw ? 1 : max; }

/* What cb_neighbours_blend multiplies the raw row by (0: it adds nothing). */
static inline float blend_scale(float max, float w) { return max > 0 && w != 0 ? w / max : 0.0f; }

void cb_neighbours_blend(float *row, const float *raw, size_t n, float max, float w) {
    float scale = blend_scale(max, w);
    if (scale == 0) return;
    for (size_t i = 0; i < n; i++) row[i] += scale * raw[i];
}

/* The contributors' search: the distinct items asked about (sorted), the
 * best similarity and its history position found so far for each, and
 * `bound`, the least of those bests (0 while one has none): an entry weaker
 * than bound replaces nothing, and neither does the rest of its list (lists
 * are sorted strongest first). */
typedef struct contrib {
    uint32_t *item;
    float *best;
    int64_t *pos;
    size_t m;
    float bound;
    uint64_t *asked; /* bitset of item[] over the catalog */
} contrib;

static void contrib_offer(contrib *c, uint32_t it, float s, int64_t h) {
    size_t lo = 0, hi = c->m; /* it is asked: find it */
    while (lo + 1 < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->item[mid] <= it) lo = mid;
        else hi = mid;
    }
    if (!(s > c->best[lo] || (s == c->best[lo] && h < c->pos[lo]))) return; /* ties: the first in the history */
    bool was_bound = c->best[lo] == c->bound;
    c->best[lo] = s, c->pos[lo] = h;
    if (!was_bound) return;
    float b = c->best[0];
    for (size_t i = 1; i < c->m; i++) b = c->best[i] < b ? c->best[i] : b;
    c->bound = b;
}

static void contrib_scan(contrib *c, const int32_t *id, const float *sim, int32_t t, int32_t end, int64_t h) {
    for (; t < end && !(sim[t] < c->bound); t++)
        if (c->asked[(uint32_t)id[t] >> 6] >> (id[t] & 63) & 1) contrib_offer(c, (uint32_t)id[t], sim[t], h);
}

/* Offer the entries [t, end) of a list (position h in the history) that are
 * asked about, eight at a time, stopping at the first eight that start below
 * the bound. AVX2: the eight ids against every asked item at once (the
 * matches are rare); plain: the bitset per entry. */
CB_TARGET_AVX2 static void contrib_scan_avx2(contrib *c, const int32_t *id, const float *sim, int32_t t,
                                             int32_t end, int64_t h) {
#if CB_X86_SIMD
    for (; t + 8 <= end && !(sim[t] < c->bound); t += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(id + t)), hit = _mm256_setzero_si256();
        for (size_t i = 0; i < c->m; i++)
            hit = _mm256_or_si256(hit, _mm256_cmpeq_epi32(v, _mm256_set1_epi32((int32_t)c->item[i])));
        if (_mm256_testz_si256(hit, hit)) continue;
        for (int32_t u = t; u < t + 8; u++)
            if (c->asked[(uint32_t)id[u] >> 6] >> (id[u] & 63) & 1) contrib_offer(c, (uint32_t)id[u], sim[u], h);
    }
#endif
    contrib_scan(c, id, sim, t, end, h); /* the tail */
}

#define CONTRIB_HEAD 8   /* the first pass: each list's strongest entries */
#define CONTRIB_AVX2_MAX 16 /* more asked items: the bitset per entry */

/* Strongest first: each list's first CONTRIB_HEAD entries, then the rest of
 * each while it is not below the bound. The result is the plain rule's (the
 * largest similarity, the first in the history of equals), as the ties are
 * compared by position and only entries that replace nothing are skipped. */
int cb_neighbours_top_contributors(const cb_neighbours *nb, const uint32_t *hist, size_t n_hist, uint32_t k,
                                   const uint32_t *items, size_t n, int64_t *pos, float *sim, cb_error *err) {
    for (size_t i = 0; i < n; i++) pos[i] = -1, sim[i] = 0;
    if (!n) return CB_OK;
    contrib c = {.item = cb_malloc(n * sizeof *c.item, err)};
    c.best = c.item ? cb_calloc(n, sizeof *c.best, err) : NULL;
    c.pos = c.best ? cb_malloc(n * sizeof *c.pos, err) : NULL;
    c.asked = c.pos ? cb_calloc(((size_t)nb->n_items + 63) / 64 + 1, sizeof *c.asked, err) : NULL;
    if (!c.asked) {
        free(c.item), free(c.best), free(c.pos);
        return CB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i] < nb->n_items && !(c.asked[items[i] >> 6] >> (items[i] & 63) & 1)) {
            c.item[c.m++] = items[i];
            c.asked[items[i] >> 6] |= 1ull << (items[i] & 63);
        }
    qsort(c.item, c.m, sizeof *c.item, cb_cmp_u32);
    for (size_t i = 0; i < c.m; i++) c.pos[i] = -1;
    bool avx2 = c.m <= CONTRIB_AVX2_MAX && cb_cpu_avx2();
    for (int pass = 0; c.m && pass < 2; pass++)
        for (size_t h = 0; h < n_hist; h++) {
            if (hist[h] >= nb->n_items) continue;
            int32_t lo, end = list_span(nb, hist[h], k, &lo), mid = end - lo > CONTRIB_HEAD ? lo + CONTRIB_HEAD : end;
            int32_t a = pass ? mid : lo, b = pass ? end : mid;
            if (avx2) contrib_scan_avx2(&c, nb->item, nb->sim, a, b, (int64_t)h);
            else contrib_scan(&c, nb->item, nb->sim, a, b, (int64_t)h);
        }
    for (size_t i = 0; i < n; i++) {
        if (items[i] >= nb->n_items) continue;
        const uint32_t *f = bsearch(&items[i], c.item, c.m, sizeof *c.item, cb_cmp_u32);
        pos[i] = c.pos[f - c.item], sim[i] = c.pos[f - c.item] < 0 ? 0 : c.best[f - c.item];
    }
    free(c.item), free(c.best), free(c.pos), free(c.asked);
    return CB_OK;
}

/* ---- the model file section */

int cb_neighbours_save(const cb_neighbours *nb, cb_st_writer *w, cb_error *err) {
    int64_t n_off = (int64_t)nb->n_items + 1, nnz = nb->off[nb->n_items];
    json_t *tuning = NULL;
    if (nb->tuning) {
        json_error_t je;
        tuning = json_loads(nb->tuning, 0, &je);
    }
    json_t *meta = json_pack("{s:s,s:I,s:f,s:f,s:f,s:s,s:o*}", "kind", cb_neighbours_kind_name(nb->kind), "k",
                             (json_int_t)nb->k, "shrink", (double)nb->shrink, "lambda", (double)nb->lambda, "weight",
                             (double)nb->weight, "divisor", nb->raw ? "one" : "max", "tuning", tuning);
    char *s = meta ? json_dumps(meta, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(meta);
    if (!s) return cb_fail(err, CB_ENOMEM, "out of memory serialising the neighbours");
    int rc = cb_st_add(w, "neighbours.offsets", CB_ST_I32, &n_off, 1, nb->off, err);
    if (!rc) rc = cb_st_add(w, "neighbours.items", CB_ST_I32, &nnz, 1, nb->item, err);
    if (!rc) rc = cb_st_add(w, "neighbours.weights", CB_ST_F32, &nnz, 1, nb->sim, err);
    if (!rc) rc = cb_st_set_meta(w, CB_NEIGHBOURS_META, s, err);
    free(s);
    return rc;
}

/* The lists' invariants: monotone offsets within k, items in range and not
 * the list's own, similarities finite and > 0. NULL or why. */
static const char *lists_why(const cb_neighbours *nb, char *why, size_t size) {
    if (nb->off[0] != 0) return "offsets do not start at 0";
    for (uint32_t i = 0; i < nb->n_items; i++) /* all offsets first: the lists are read through them */
        if (nb->off[i + 1] < nb->off[i] || nb->off[i + 1] - nb->off[i] > (int32_t)nb->k)
            return snprintf(why, size, "offsets of item %u are not monotone or exceed k = %u", i, nb->k), why;
    for (uint32_t i = 0; i < nb->n_items; i++)
        for (int32_t t = nb->off[i]; t < nb->off[i + 1]; t++) {
            if (nb->item[t] < 0 || (uint32_t)nb->item[t] >= nb->n_items || (uint32_t)nb->item[t] == i)
                return snprintf(why, size, "item %u lists neighbour %d (out of range or itself)", i, nb->item[t]), why;
            if (!isfinite(nb->sim[t]) || !(nb->sim[t] > 0))
                return snprintf(why, size, "item %u has a similarity %g (must be finite and > 0)", i,
                                (double)nb->sim[t]), why;
        }
    return NULL;
}

int cb_neighbours_load(cb_neighbours **out, const cb_st *st, uint32_t n_items, cb_error *err) {
    *out = NULL;
    const char *meta = cb_st_meta(st, CB_NEIGHBOURS_META);
    if (!meta) return CB_OK;
    const char *path = cb_st_path(st);
    json_error_t je;
    json_t *j = json_loads(meta, 0, &je), *tuning = NULL;
    const char *kind = NULL, *divisor = "max";
    json_int_t k = 0;
    double shrink = NAN, lambda = 0, weight = NAN;
    if (!j || json_unpack(j, "{s:s,s:I,s:F,s?F,s:F,s?s,s?o}", "kind", &kind, "k", &k, "shrink", &shrink, "lambda",
                          &lambda, "weight", &weight, "divisor", &divisor, "tuning", &tuning)) {
        json_decref(j);
        return cb_fail(err, CB_EFORMAT, "%s: metadata '%s' is not {kind, k, shrink, lambda, weight}", path,
                       CB_NEIGHBOURS_META);
    }
    int rc = CB_OK;
    bool ease = !strcmp(kind, "ease");
    if (!ease && strcmp(kind, "cosine"))
        rc = cb_fail(err, CB_EFORMAT, "%s: neighbours of kind '%s' (this cbrec reads 'cosine' and 'ease')", path, kind);
    else if (k < 1 || k > INT32_MAX || !isfinite(shrink) || shrink < 0 || !isfinite(weight) || weight < 0 ||
             weight > 1e6 || !isfinite(lambda) || lambda < 0 || (ease && !(lambda > 0)) ||
             (strcmp(divisor, "max") && strcmp(divisor, "one")))
        rc = cb_fail(err, CB_EFORMAT, "%s: neighbours: k %lld, shrink %g, lambda %g, weight %g, divisor '%s' out of range",
                     path, (long long)k, shrink, lambda, weight, divisor);
    cb_neighbours *nb = rc ? NULL : cb_calloc(1, sizeof *nb, err);
    if (!rc && !nb) rc = CB_ENOMEM;
    if (!rc) {
        *nb = (cb_neighbours){.kind = ease ? CB_NEIGHBOURS_EASE : CB_NEIGHBOURS_COSINE, .n_items = n_items,
                              .k = (uint32_t)k, .shrink = (float)shrink, .lambda = (float)lambda,
                              .weight = (float)weight, .raw = !strcmp(divisor, "one")};
        if (tuning && !(nb->tuning = json_dumps(tuning, JSON_COMPACT | JSON_ENSURE_ASCII))) rc = CB_ENOMEM;
    }
    int64_t shape[1] = {0};
    if (!rc && (!(nb->off = cb_st_tensor(st, "neighbours.offsets", CB_ST_I32, 1, shape, err)) ||
                shape[0] != (int64_t)n_items + 1))
        rc = nb->off ? cb_fail(err, CB_EFORMAT, "%s: tensor 'neighbours.offsets' has an unexpected shape", path)
                     : CB_EFORMAT;
    int64_t nnz = rc ? 0 : nb->off[n_items], n_sim = 0;
    if (!rc && (!(nb->item = cb_st_tensor(st, "neighbours.items", CB_ST_I32, 1, shape, err)) ||
                !(nb->sim = cb_st_tensor(st, "neighbours.weights", CB_ST_F32, 1, &n_sim, err))))
        rc = CB_EFORMAT; /* the message says which */
    if (!rc && (nnz < 0 || shape[0] != nnz || n_sim != nnz))
        rc = cb_fail(err, CB_EFORMAT, "%s: the neighbours' tensors disagree on their length", path);
    char why[160];
    const char *bad = rc ? NULL : lists_why(nb, why, sizeof why);
    if (bad) rc = cb_fail(err, CB_EFORMAT, "%s: neighbours: %s", path, bad);
    json_decref(j);
    if (rc) cb_neighbours_free(nb);
    else *out = nb;
    return rc;
}

/* ---- choosing the settings on a validation carve */

/* The grid: per kind its parameter (the cosine's shrinkage, EASE's lambda;
 * EASE only where its dense inverse fits), K and w. Large catalogs (more
 * than LARGE_CATALOG items) try one shrinkage and two K, as each parameter
 * is one more fit and each K one more scatter per user. */
static const float grid_shrink[] = {0, 10, 50};
static const float grid_lambda[] = {100, 300, 1000};
static const uint32_t grid_k[] = {20, 50, 100, 200, 500};
static const float grid_w[] = {0, 0.5f, 1, 2, 3, 4, 6, 8, 12, 16};
#define N_PARAM 3
#define N_K (sizeof grid_k / sizeof *grid_k)
#define N_W (sizeof grid_w / sizeof *grid_w)
#define LARGE_CATALOG 100000u
#define K500_CATALOG 20000u /* K 500 only below: 500 neighbours x 8 B an item per fit */
#define TOP 10
#define RECALL_AT 20
/* K's cost-aware tie-break (cb_neighbours_tune): the smallest K whose best
 * carve NDCG@10 is the grid best's equal: within one standard error of their
 * paired difference (k_margin), and never closer than K_MARGIN. A
 * recommendation's cost is |history| x K scattered weights, and the carve
 * barely tells large K apart: a fixed margin of 0.001 sat inside the carve's
 * own noise (ml-latest-small's 594 carve users: each K's best 0.0007-0.0031
 * below the best, one standard error of those differences 0.0020-0.0029), so
 * any change of rounding could move K between 20 and 500 (docs/scale.md).
 * K_MARGIN alone keeps the towers alone (w = 0, no lists at all) when no cell
 * beats them by more: whether the lists are blended in at all changes the
 * list a user gets, not only its cost, so that margin is not widened to the
 * error (it would drop the lists on ml-100k, whose carve has them +0.0026,
 * 0.7 standard errors). */
#define K_MARGIN 0.001

/* One axis of the grid: the given value alone, or the grid's (the first n). */
typedef struct axis {
    float v[N_W > N_K ? N_W : N_K];
    size_t n;
} axis;

static axis axis_of(float given, const float *grid_f, const uint32_t *grid_u, size_t n) {
    axis a = {.n = given >= 0 ? 1 : n};
    for (size_t i = 0; i < a.n; i++) a.v[i] = given >= 0 ? given : grid_f ? grid_f[i] : (float)grid_u[i];
    return a;
}

/* A user's best RECALL_AT items by (score descending, index ascending),
 * whatever order they are offered in; -inf never enters (nor does NaN:
 * blended_top offers only values that compare >= its bound). */
typedef struct top_list {
    uint32_t id[RECALL_AT];
    float sc[RECALL_AT];
    size_t n;
} top_list;

static inline void top_offer(top_list *t, uint32_t i, float v) {
    if (v == -INFINITY) return;
    if (t->n == RECALL_AT && !(v > t->sc[RECALL_AT - 1] || (v == t->sc[RECALL_AT - 1] && i < t->id[RECALL_AT - 1])))
        return;
    size_t p = t->n < RECALL_AT ? t->n++ : RECALL_AT - 1;
    while (p > 0 && (v > t->sc[p - 1] || (v == t->sc[p - 1] && i < t->id[p - 1]))) {
        t->sc[p] = t->sc[p - 1];
        t->id[p] = t->id[p - 1];
        p--;
    }
    t->sc[p] = v;
    t->id[p] = i;
}

#if CB_X86_SIMD
/* blended_top's scan eight at a time, from item 0; returns where it stopped
 * (the same operations per item as the SSE and plain loops: the same list). */
CB_TARGET_AVX2 static uint32_t blended_top_avx2(top_list *t, const float *tower, const float *raw, uint32_t n,
                                                float scale, float bound) {
    __m256 s = _mm256_set1_ps(scale);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(tower + i), _mm256_mul_ps(s, _mm256_loadu_ps(raw + i)));
        __m256 last = _mm256_set1_ps(t->n == RECALL_AT ? t->sc[RECALL_AT - 1] : bound);
        int m = _mm256_movemask_ps(_mm256_cmp_ps(v, last, _CMP_GE_OQ));
        if (!m) continue;
        float lane[8];
        _mm256_storeu_ps(lane, v);
        for (int q = 0; q < 8; q++)
            if (m >> q & 1) top_offer(t, i + (uint32_t)q, lane[q]);
    }
    return i;
}
#endif

/* The best of tower + scale x raw over n items: the row
 * cb_neighbours_blend makes from the tower's (scale w / divisor; 0: the
 * tower's own), without writing it. `seed` (or NULL): a full list of any
 * items, whose least blended value bounds the RECALL_AT-th best from below
 * (there are RECALL_AT items at least that good); a value is offered only
 * where it reaches that bound and the list's last score (AVX2: eight at a
 * time; SSE: four), so the list is the one a scan of the whole row gives,
 * with few offers: a neighbouring grid cell's list is a close bound. */
static void blended_top(top_list *t, const float *tower, const float *raw, uint32_t n, float scale,
                        const top_list *seed) {
    float bound = seed && seed->n == RECALL_AT ? INFINITY : -INFINITY;
    for (size_t r = 0; bound > -INFINITY && r < RECALL_AT; r++) {
        float v = tower[seed->id[r]] + scale * raw[seed->id[r]];
        bound = v != v ? -INFINITY : v < bound ? v : bound; /* a NaN is not "at least as good": no bound */
    }
    t->n = 0;
    uint32_t i = 0;
#if CB_X86_SIMD
    if (cb_cpu_avx2()) i = blended_top_avx2(t, tower, raw, n, scale, bound);
    __m128 s = _mm_set1_ps(scale);
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_add_ps(_mm_loadu_ps(tower + i), _mm_mul_ps(s, _mm_loadu_ps(raw + i)));
        __m128 last = _mm_set1_ps(t->n == RECALL_AT ? t->sc[RECALL_AT - 1] : bound);
        int m = _mm_movemask_ps(_mm_cmpge_ps(v, last));
        if (!m) continue;
        float lane[4];
        _mm_storeu_ps(lane, v);
        for (int q = 0; q < 4; q++)
            if (m >> q & 1) top_offer(t, i + (uint32_t)q, lane[q]);
    }
#endif
    for (; i < n; i++) {
        float v = tower[i] + scale * raw[i];
        if (v >= bound) top_offer(t, i, v);
    }
}

/* NDCG@TOP and recall@RECALL_AT of a top list against the sorted relevant
 * items rel[0..n_rel), n_rel > 0, as cb_eval_topn counts them: recall = hits
 * in the top 20 / n_rel. */
static void list_metrics(const top_list *t, const uint32_t *rel, size_t n_rel, double *ndcg, double *recall) {
    double dcg = 0, idcg = 0;
    size_t hits = 0;
    for (size_t r = 0; r < t->n; r++)
        if (bsearch(&t->id[r], rel, n_rel, sizeof *rel, cb_cmp_u32)) {
            hits++;
            if (r < TOP) dcg += 1.0 / log2((double)r + 2);
        }
    for (size_t r = 0; r < n_rel && r < TOP; r++) idcg += 1.0 / log2((double)r + 2);
    *ndcg = idcg > 0 ? dcg / idcg : 0;
    *recall = (double)hits / (double)n_rel;
}

typedef struct tune_users {
    size_t *toff;    /* [n_users + 1] training items (the carve's train part) */
    uint32_t *titem;
    size_t *roff;    /* [n_users + 1] relevant validation items, sorted */
    uint32_t *ritem;
    uint32_t *list;  /* users measured */
    size_t n_list;
} tune_users;

static void tune_users_free(tune_users *t) {
    free(t->toff);
    free(t->titem);
    free(t->roff);
    free(t->ritem);
    free(t->list);
}

static int tune_users_make(tune_users *t, const cb_dataset *ds, const cb_split *carve, float threshold,
                           size_t max_users, cb_error *err) {
    memset(t, 0, sizeof *t);
    uint32_t nu = cb_dataset_n_users(ds);
    uint32_t *rel = cb_malloc((carve->n_test + 1) * sizeof *rel, err);
    size_t n_rel = 0;
    if (!rel) return CB_ENOMEM;
    for (size_t j = 0; j < carve->n_test; j++)
        if (ds->ratings[carve->test[j]].y >= threshold) rel[n_rel++] = carve->test[j];
    int rc = interactions(ds, carve->train, carve->n_train, false, &t->toff, &t->titem, err);
    if (!rc) rc = interactions(ds, rel, n_rel, false, &t->roff, &t->ritem, err);
    free(rel);
    if (!rc && !(t->list = cb_malloc(((size_t)nu + 1) * sizeof *t->list, err))) rc = CB_ENOMEM;
    for (uint32_t u = 0; !rc && u < nu; u++)
        if (t->roff[u + 1] > t->roff[u] && t->toff[u + 1] > t->toff[u]) t->list[t->n_list++] = u;
    if (!rc && max_users && t->n_list > max_users) { /* every (n / max)-th eligible user */
        for (size_t s = 0; s < max_users; s++) t->list[s] = t->list[s * t->n_list / max_users];
        t->n_list = max_users;
    }
    if (rc) tune_users_free(t);
    return rc;
}

/* Accumulate sums[metric][divisor][k][w] for one fitted list over the
 * measured users t->list[lo..hi) (metric 0: NDCG@10, 1: recall@20; divisor 0:
 * the user's maximum, 1: one). */
#define N_CELLS (2 * 2 * N_K * N_W)
#define SUM(m, d, a, b) (((((m) * 2 + (d)) * N_K + (a)) * N_W) + (b))
static void tune_block(const cb_neighbours *nb, const tune_users *t, size_t lo, size_t hi, cb_tower_row_fn tower_row,
                       void *ctx, const axis *ks, const axis *ws, float *tower, float *raw, double *sums) {
    uint32_t ni = nb->n_items;
    for (size_t s = lo; s < hi; s++) {
        uint32_t u = t->list[s];
        const uint32_t *hist = t->titem + t->toff[u], *rel = t->ritem + t->roff[u];
        size_t n_hist = t->toff[u + 1] - t->toff[u], n_rel = t->roff[u + 1] - t->roff[u];
        tower_row(ctx, u, tower);
        for (size_t h = 0; h < n_hist; h++) tower[hist[h]] = -INFINITY;
        top_list alone, top, prev; /* the tower's own list (scale 0: the same for every K), the last cell's */
        bool have_alone = false;
        prev.n = 0;
        for (size_t a = 0; a < ks->n; a++) {
            float max = cb_neighbours_row(nb, hist, n_hist, (uint32_t)ks->v[a], raw);
            for (size_t d = 0; d < 2; d++)
                for (size_t b = 0; b < ws->n; b++) {
                    float scale = blend_scale(d && max > 0 ? 1.0f : max, ws->v[b]);
                    if (scale == 0 && have_alone) {
                        top = alone;
                    } else {
                        blended_top(&top, tower, raw, ni, scale, &prev);
                        if (scale == 0) alone = top, have_alone = true;
                    }
                    prev = top;
                    double ndcg, recall;
                    list_metrics(&top, rel, n_rel, &ndcg, &recall);
                    sums[SUM(0, d, a, b)] += ndcg;
                    sums[SUM(1, d, a, b)] += recall;
                }
        }
    }
}

/* ---- the tuning grid's work across a communicator's ranks
 *
 * The work is (point, user block) units: a point is a kind and its parameter
 * (one fit each), a block TUNE_BLOCK measured users (sums of their NDCG@10 and recall@20,
 * added up in block order afterwards, whatever the ranks: the same bits for
 * any number of processes). With R ranks and P >= R points, the P - P mod R
 * costliest go whole to one rank each (the costliest first, to the least
 * loaded: longest processing time first, costs estimated from the sizes),
 * and the P mod R left are shared: every rank fits its share of the point's
 * lists (cb_neighbours_fit_shared; the later stages of EASE's inverse
 * split too) and scores its share of the blocks (3 EASE points on 2 ranks:
 * one whole each, the third halved, against 2:1 whole). One point is shared too. With 1 < P < R, each
 * point's blocks are split across its group of ranks (rank r serves point r
 * mod P), each of which fits it whole. A point's blocks are dealt to its
 * ranks in turn, not in runs: the measured users are in user order, and on
 * a synthetic set the first half of them cost 1.7x the second to score.
 * The blocks' sums are also what k_margin's spread is estimated from: 16
 * users a block gives ml-latest-small's 594 carve users 38 blocks (and a
 * small carve of 107 users 7), where 64 gave 10 (and 2). */
#define TUNE_BLOCK 16

typedef struct tune_point {
    int kind;
    float param;
    double cost; /* estimated: the fit, then scoring every block */
    bool shared; /* fitted by every rank together (tune_assign) */
} tune_point;

/* Rough costs in one unit ~ one scored item of one user and one (K, w): a
 * cosine fit visits every pair of a user's items (~30 units a pair); EASE
 * inverts a dense matrix of the fewer side (n^3 / 12) and, in its user form,
 * rebuilds a row over every interaction per item. Only the balance depends on them. */
static double fit_cost(int kind, const cb_dataset *ds, const tune_users *t, size_t n_train) {
    uint32_t nu = cb_dataset_n_users(ds), ni = cb_dataset_n_items(ds);
    if (kind == CB_NEIGHBOURS_EASE) {
        double n = nu < ni ? nu : ni;
        return n * n * n / 12 + (nu < ni ? (double)ni * (double)n_train : 0);
    }
    double pairs = 0;
    for (uint32_t u = 0; u < nu; u++) pairs += (double)(t->toff[u + 1] - t->toff[u]) * (double)(t->toff[u + 1] - t->toff[u]);
    return 30 * pairs;
}

/* owner[p * n_blocks + b]: the rank that scores block b of point p; pt[p].shared
 * for the points every rank fits. */
static void tune_assign(int *owner, tune_point *pt, size_t n_pt, size_t n_blocks, int n_ranks) {
    size_t R = (size_t)n_ranks;
    if (!n_pt) return; /* no points (no measured users): nothing to own */
    if (R > n_pt && n_pt > 1) {
        for (size_t p = 0; p < n_pt; p++) {
            size_t group = (R - 1 - p) / n_pt + 1; /* ranks p, p + P, p + 2P, ... */
            for (size_t b = 0; b < n_blocks; b++) owner[p * n_blocks + b] = (int)(p + n_pt * (b % group));
        }
        return;
    }
    size_t n_whole = R <= n_pt ? n_pt - n_pt % R : 0;
    double load[R];
    bool done[n_pt];
    memset(load, 0, sizeof load);
    memset(done, 0, sizeof done);
    for (size_t step = 0; step < n_pt; step++) {
        size_t p = n_pt, r = 0;
        for (size_t q = 0; q < n_pt; q++)
            if (!done[q] && (p == n_pt || pt[q].cost > pt[p].cost)) p = q;
        for (size_t s = 1; s < R; s++)
            if (load[s] < load[r]) r = s;
        done[p] = true;
        pt[p].shared = step >= n_whole;
        if (!pt[p].shared) load[r] += pt[p].cost;
        for (size_t b = 0; b < n_blocks; b++) owner[p * n_blocks + b] = (int)(pt[p].shared ? b % R : r);
    }
}

/* Every unit's sums in part[(p * n_blocks + b) * n_cells ..]: this rank's
 * computed, the others' gathered (packed by rank, in unit order). */
static int tune_gather(double *part, const int *owner, size_t n_units, size_t n_cells, const cb_train_comm *comm,
                       cb_error *err) {
    int n = cb_comm_ranks(comm);
    if (n == 1) return CB_OK;
    size_t *bytes = cb_calloc(2 * (size_t)n, sizeof *bytes, err);
    double *packed = bytes ? cb_malloc((n_units * n_cells + 1) * sizeof *packed, err) : NULL;
    if (!packed) return free(bytes), CB_ENOMEM;
    size_t *offset = bytes + n, cell = n_cells * sizeof(double);
    for (size_t u = 0; u < n_units; u++) bytes[owner[u]] += cell;
    for (int r = 1; r < n; r++) offset[r] = offset[r - 1] + bytes[r - 1];
    size_t at = offset[cb_comm_rank(comm)] / sizeof(double);
    for (size_t u = 0; u < n_units; u++)
        if (owner[u] == cb_comm_rank(comm)) memcpy(packed + at, part + u * n_cells, cell), at += n_cells;
    int rc = cb_comm_allgather_bytes(comm, packed, bytes, offset, err);
    for (size_t u = 0; !rc && u < n_units; u++) {
        memcpy(part + u * n_cells, packed + offset[owner[u]] / sizeof(double), cell);
        offset[owner[u]] += cell;
    }
    free(packed);
    free(bytes);
    return rc;
}

/* One point's blocks on threads (cb_threads_for): the workers score those
 * this rank owns into their own cells of part (each block's sums exactly as
 * on one thread). */
typedef struct tune_job {
    const cb_neighbours *nb; /* the point's fit */
    const int *owner;        /* the point's row of owners */
    double *part;            /* the point's cells */
    const tune_users *t;
    size_t n_blocks;
    int rank;
    cb_tower_row_fn tower_row;
    void *ctx;
    const axis *ks, *ws;
    size_t n_items;
    float *scratch;          /* [workers x 2 x n_items]: each worker's tower row, then its raw row */
} tune_job;

/* Block b of the point, when this rank owns it, on worker `worker`'s rows. */
static void tune_unit(void *ctx, size_t b, int worker) {
    const tune_job *j = ctx;
    if (j->owner[b] != j->rank) return;
    size_t lo = b * TUNE_BLOCK, hi = lo + TUNE_BLOCK < j->t->n_list ? lo + TUNE_BLOCK : j->t->n_list;
    float *tower = j->scratch + 2 * j->n_items * (size_t)worker;
    tune_block(j->nb, j->t, lo, hi, j->tower_row, j->ctx, j->ks, j->ws, tower, tower + j->n_items,
               j->part + b * N_CELLS);
}

/* This rank's units of the grid: fit each point it has blocks of (one fit
 * held at a time, on every thread), score its blocks on the threads
 * (OpenBLAS held at one for the towers' rows, whatever the count: the same
 * bits). */
static int tune_units(double *part, const int *owner, const tune_point *pt, size_t n_pt, uint32_t k_max,
                      const cb_dataset *ds, tune_job *job, const cb_train_comm *comm,
                      int threads, cb_error *err) {
    size_t ni = cb_dataset_n_items(ds), n_blocks = job->n_blocks;
    int n_w = n_blocks && (size_t)threads > n_blocks ? (int)n_blocks : threads;
    job->n_items = ni;
    job->scratch = cb_malloc((2 * ni * (size_t)n_w + 1) * sizeof *job->scratch, err);
    int rc = job->scratch ? CB_OK : CB_ENOMEM;
    cb_blas_hold_one();
    for (size_t p = 0; !rc && p < n_pt; p++) {
        bool mine = pt[p].shared; /* a shared fit is collective: every rank joins it */
        for (size_t b = 0; b < n_blocks; b++) mine |= owner[p * n_blocks + b] == job->rank;
        cb_neighbours *nb = NULL;
        if (!mine || (rc = fit_on_users(&nb, ds, job->t->toff, job->t->titem, (cb_neighbours_kind)pt[p].kind, k_max,
                                        pt[p].param, pt[p].shared ? comm : NULL, threads, err))) /* the carve's users' items, once */
            continue;
        job->nb = nb, job->owner = owner + p * n_blocks, job->part = part + p * n_blocks * N_CELLS;
        cb_threads_for(0, n_blocks, n_w, tune_unit, job);
        cb_neighbours_free(nb);
    }
    cb_blas_release();
    free(job->scratch);
    job->scratch = NULL;
    return rc;
}

/* One cell of the grid (point p, divisor d, K index b, w index c): its
 * NDCG@10 and recall@20 summed over the blocks in block order, / n_users. */
static void grid_cell(const double *part, size_t p, size_t n_blocks, size_t n_cells, size_t d, size_t b, size_t c,
                      double n_users, double *ndcg, double *recall) {
    double sum[2] = {0, 0};
    for (size_t blk = 0; blk < n_blocks; blk++)
        for (int m = 0; m < 2; m++) sum[m] += part[(p * n_blocks + blk) * n_cells + SUM(m, d, b, c)];
    *ndcg = sum[0] / n_users, *recall = sum[1] / n_users;
}

/* A cell of the summed grid: point p, divisor d, K index b, w index c; its
 * NDCG@10 and recall@20. */
typedef struct grid_at {
    size_t p, d, b, c;
    double v, r;
} grid_at;

/* The grid's per-block sums, for the spread of a difference between cells. */
typedef struct grid_se {
    const double *part;
    size_t n_blocks, n_cells, n_users;
} grid_se;

/* How far below the best cell `g` may be and still count as its equal:
 * K_MARGIN, or one standard error of the mean NDCG@10 difference between
 * the two (paired by user; by batch means over the user blocks: the users
 * are independent, so the blocks' summed differences spread around their
 * share of the mean as the mean's error says), whichever is more. Fewer
 * than MARGIN_BLOCKS blocks (80 users) make too rough an error: K_MARGIN. */
#define MARGIN_BLOCKS 5
static double k_margin(const grid_se *s, const grid_at *best, const grid_at *g) {
    size_t nb = s->n_blocks, i = SUM(0, best->d, best->b, best->c), j = SUM(0, g->d, g->b, g->c);
    if (nb < MARGIN_BLOCKS) return K_MARGIN;
#define DIFF(b) (s->part[(best->p * nb + (b)) * s->n_cells + i] - s->part[(g->p * nb + (b)) * s->n_cells + j])
    double mean = 0, ss = 0;
    for (size_t b = 0; b < nb; b++) mean += DIFF(b);
    mean /= (double)s->n_users;
    for (size_t b = 0; b < nb; b++) {
        double e = DIFF(b) - mean * (double)(b + 1 < nb ? TUNE_BLOCK : s->n_users - b * TUNE_BLOCK);
        ss += e * e;
    }
#undef DIFF
    double se = sqrt(ss * (double)nb / (double)(nb - 1)) / (double)s->n_users;
    return se > K_MARGIN ? se : K_MARGIN;
}

int cb_neighbours_tune(cb_neighbours_choice *best, char **tuning_json, const cb_neighbours_choice *fixed,
                       const cb_dataset *ds, const cb_split *carve, float threshold, size_t max_users,
                       cb_tower_row_fn tower_row, void *ctx, const cb_train_comm *comm, int threads,
                       cb_error *err) {
    memset(best, 0, sizeof *best);
    if (tuning_json) *tuning_json = NULL;
    uint32_t ni = cb_dataset_n_items(ds);
    bool large = ni > LARGE_CATALOG;
    axis params[2] = {axis_of(fixed->param, grid_shrink, NULL, large ? 1 : N_PARAM),
                      axis_of(fixed->param, grid_lambda, NULL, N_PARAM)};
    if (large && fixed->param < 0) params[0].v[0] = grid_shrink[1];
    /* "auto": EASE where its inverse fits, the cosine elsewhere (choosing
     * between them on the carve picked the cosine on noise: train_config.c) */
    bool fits = cb_neighbours_ease_fits(ds), any = fixed->kind < 0;
    bool try_kind[2] = {fixed->kind == CB_NEIGHBOURS_COSINE || (any && !fits),
                        (fixed->kind == CB_NEIGHBOURS_EASE || any) && fits};
    axis ks = axis_of(fixed->k ? (float)fixed->k : -1, NULL, grid_k, large ? 2 : ni > K500_CATALOG ? N_K - 1 : N_K);
    axis ws = axis_of(fixed->weight, grid_w, NULL, N_W);
    uint32_t k_max = 0;
    for (size_t a = 0; a < ks.n; a++) k_max = (uint32_t)ks.v[a] > k_max ? (uint32_t)ks.v[a] : k_max;
    tune_users t;
    int rc = tune_users_make(&t, ds, carve, threshold, max_users, err);
    if (rc) return rc;
    tune_point pt[2 * N_PARAM];
    size_t n_pt = 0, n_blocks = (t.n_list + TUNE_BLOCK - 1) / TUNE_BLOCK, n_cells = N_CELLS;
    for (int kind = 0; kind < 2; kind++)
        for (size_t a = 0; try_kind[kind] && a < params[kind].n && t.n_list; a++)
            pt[n_pt++] = (tune_point){kind, params[kind].v[a],
                                      fit_cost(kind, ds, &t, carve->n_train) +
                                          (double)t.n_list * (double)(ks.n * 2 * ws.n) * ni, false};
    int *owner = cb_malloc((n_pt * n_blocks + 1) * sizeof *owner, err);
    double *part = cb_calloc(n_pt * n_blocks * n_cells + 1, sizeof *part, err);
    json_t *grid = json_array();
    if (!owner || !part || !grid) rc = CB_ENOMEM;
    if (!rc) tune_assign(owner, pt, n_pt, n_blocks, cb_comm_ranks(comm));
    tune_job job = {.t = &t, .n_blocks = n_blocks, .rank = cb_comm_rank(comm), .tower_row = tower_row,
                    .ctx = ctx, .ks = &ks, .ws = &ws};
    if (!rc) rc = tune_units(part, owner, pt, n_pt, k_max, ds, &job, comm,
                             cb_threads_resolve(threads, CB_THREADS_MAX), err);
    if (!rc) rc = tune_gather(part, owner, n_pt * n_blocks, n_cells, comm, err);
    cb_neighbours_kind first = try_kind[0] ? CB_NEIGHBOURS_COSINE : CB_NEIGHBOURS_EASE;
    *best = (cb_neighbours_choice){first, false, (uint32_t)ks.v[ks.n - 1], params[first].v[0], 0, -1, NAN, NAN, NAN,
                                   t.n_list};
    /* Every cell in grid order; the best (the first of equals) and each K's
     * best with lists (w > 0, unless w is given as 0); then the choice: the
     * smallest K whose best cell comes within its margin of the best
     * (k_margin), that cell's divisor and w; the towers alone below. */
    grid_at cells[2 * N_PARAM * 2 * N_K * N_W], top = {.v = -1}, at_k[N_K];
    size_t n_grid = 0;
    for (size_t b = 0; b < ks.n; b++) at_k[b] = (grid_at){.v = -1};
    for (size_t p = 0; !rc && p < n_pt; p++)
        for (size_t d = 0; d < 2; d++)
            for (size_t b = 0; b < ks.n; b++)
                for (size_t c = 0; c < ws.n; c++) {
                    grid_at g = {p, d, b, c, 0, 0};
                    grid_cell(part, p, n_blocks, n_cells, d, b, c, (double)t.n_list, &g.v, &g.r);
                    cells[n_grid++] = g;
                    if (ws.v[c] == 0) best->ndcg_towers = g.v, best->recall_towers = g.r;
                    if (g.v > top.v) top = g;
                    if (g.v > at_k[b].v && (ws.v[c] > 0 || ws.n == 1)) at_k[b] = g; /* w = 0: no K at all */
                }
    grid_se se = {part, n_blocks, n_cells, t.n_list};
    const grid_at *pick = NULL;
    for (size_t b = 0; !pick && b < ks.n; b++) /* at_k's v < 0: no cell (no points, no users) */
        if (at_k[b].v >= 0 && at_k[b].v >= top.v - k_margin(&se, &top, &at_k[b])) pick = &at_k[b];
    if (!pick && top.v >= 0) pick = &top; /* the towers alone are the best, every K's lists short of them */
    if (!rc && pick) /* chosen on NDCG@10; recall@20 lost on the carves: train_config.c */
        *best = (cb_neighbours_choice){(cb_neighbours_kind)pt[pick->p].kind, pick->d == 1,
                                       (uint32_t)ks.v[pick == &top ? 0 : pick->b], pt[pick->p].param,
                                       ws.v[pick->c], pick->v, best->ndcg_towers, pick->r, best->recall_towers,
                                       t.n_list};
    for (size_t i = 0; i < n_grid; i++) { /* the grid as JSON, each cell's margin beside it */
        const grid_at *g = &cells[i];
        json_array_append_new(grid, json_pack("{s:s,s:f,s:i,s:s,s:f,s:f,s:f,s:f}", "kind",
                                              cb_neighbours_kind_name((cb_neighbours_kind)pt[g->p].kind), "param",
                                              (double)pt[g->p].param, "k", (int)ks.v[g->b], "divisor",
                                              g->d ? "one" : "max", "weight", (double)ws.v[g->c], "ndcg10", g->v,
                                              "recall20", g->r, "margin", k_margin(&se, &top, g)));
    }
    /* No component is cheaper still than the smallest K: w = 0 where the
     * towers alone come within K_MARGIN of the best (a 100k synthetic set:
     * towers 0.1595, the best w 0.5 cell 0.1599 at one thread and below the
     * towers at two, whose towers differ in the last bits: the choice
     * followed the noise, and with it a fit of the lists) */
    if (!rc && best->weight > 0 && best->ndcg_towers >= top.v - K_MARGIN)
        best->weight = 0, best->ndcg = best->ndcg_towers, best->recall = best->recall_towers;
    if (!rc && tuning_json) {
        json_t *doc = json_pack("{s:s,s:f,s:I,s:f,s:f,s:O}", "carve",
                                "a per-user validation carve of the training ratings (each user's latest under a temporal split)", "threshold", (double)threshold,
                                "users", (json_int_t)t.n_list, "towers_ndcg10",
                                isnan(best->ndcg_towers) ? -1.0 : best->ndcg_towers, "towers_recall20",
                                isnan(best->recall_towers) ? -1.0 : best->recall_towers, "grid", grid);
        if (!doc || !(*tuning_json = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(5))))
            rc = cb_fail(err, CB_ENOMEM, "out of memory");
        json_decref(doc);
    }
    json_decref(grid);
    free(owner);
    free(part);
    tune_users_free(&t);
    return rc;
}
