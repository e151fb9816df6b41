/* neighbours — the item-item neighbour lists learned from the training
 * interactions, their scores, their section of the model file and the choice
 * of their settings on a validation carve. See neighbours.h. */
#include "model/neighbours.h"

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

static int cmp_cand_best_first(const void *a, const void *b) {
    nb_cand x = *(const nb_cand *)a, y = *(const nb_cand *)b;
    return better(x, y) ? -1 : better(y, x);
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

/* LAPACK's Cholesky factorisation and inverse (libopenblas has them; Debian
 * ships no lapack.h beside its cblas.h). Fortran convention: arguments by
 * reference, the hidden length of the character argument last. */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);

/* What fitting needs: the interactions both ways and per-kind state. */
typedef struct fit_ctx {
    cb_neighbours_kind kind;
    uint32_t k, n_users, n_items;
    double param;                 /* shrinkage (cosine) or lambda (EASE) */
    size_t *uoff, *ioff;          /* CSR: users' items, items' users */
    uint32_t *uitems, *iusers;
    uint32_t *count, *touched;    /* cosine: co-counts scratch [n_items] */
    bool user_form;               /* EASE: Woodbury over the users (fewer users than items) */
    double *inv;                  /* EASE: (X X^T + lambda I)^-1 [n_users^2] or (X^T X + lambda I)^-1 [n_items^2] */
    double *pdiag;                /* EASE: diag of P = (X^T X + lambda I)^-1 [n_items] */
    double *v, *z;                /* EASE user form scratch: [n_users], [n_items] */
} fit_ctx;

/* Cosine: item i's co-occurrence counts with every other item (through its
 * users), shrunk cosines, into the heap. */
static size_t cosine_list(fit_ctx *f, uint32_t i, nb_cand *heap) {
    size_t n_touched = 0, h = 0;
    for (size_t a = f->ioff[i]; a < f->ioff[i + 1]; a++)
        for (size_t b = f->uoff[f->iusers[a]]; b < f->uoff[f->iusers[a] + 1]; b++) {
            uint32_t j = f->uitems[b];
            if (!f->count[j]++) f->touched[n_touched++] = j;
        }
    double n_i = (double)(f->ioff[i + 1] - f->ioff[i]);
    for (size_t t = 0; t < n_touched; t++) {
        uint32_t j = f->touched[t];
        double n_j = (double)(f->ioff[j + 1] - f->ioff[j]);
        nb_cand c = {(float)(f->count[j] / (sqrt(n_i * n_j) + f->param)), j};
        f->count[j] = 0;
        if (j != i && c.sim > 0) heap_push(heap, &h, f->k, c);
    }
    return h;
}

/* EASE (Steck 2019): B = I - P diag(1/diag P) with the diagonal zeroed,
 * P = (X^T X + lambda I)^-1; row i of B gives item i's neighbours, B_ij =
 * -P_ij / P_jj. In the user form P = (I - X^T M X) / lambda with
 * M = (X X^T + lambda I)^-1, an n_users^2 inverse instead of n_items^2. */
static int ease_prepare(fit_ctx *f, cb_error *err) {
    size_t n = f->user_form ? f->n_users : f->n_items;
    if (n > CB_NEIGHBOURS_MAX_DENSE)
        return cb_fail(err, CB_EINVAL, "neighbours: EASE needs a dense %zu x %zu inverse (at most %u)", n, n,
                       CB_NEIGHBOURS_MAX_DENSE);
    f->inv = cb_calloc(n * n + 1, sizeof *f->inv, err);
    f->pdiag = cb_malloc(((size_t)f->n_items + 1) * sizeof *f->pdiag, err);
    f->v = cb_malloc(((size_t)f->n_users + 1) * sizeof *f->v, err);
    f->z = cb_malloc(((size_t)f->n_items + 1) * sizeof *f->z, err);
    if (!f->inv || !f->pdiag || !f->v || !f->z) return CB_ENOMEM;
    const size_t *off = f->user_form ? f->ioff : f->uoff; /* the Gram matrix over the other side */
    const uint32_t *col = f->user_form ? f->iusers : f->uitems;
    size_t n_rows = f->user_form ? f->n_items : f->n_users;
    for (size_t r = 0; r < n_rows; r++)
        for (size_t a = off[r]; a < off[r + 1]; a++)
            for (size_t b = off[r]; b < off[r + 1]; b++) f->inv[(size_t)col[a] * n + col[b]] += 1.0;
    for (size_t a = 0; a < n; a++) f->inv[a * n + a] += f->param;
    int dim = (int)n, info = 0;
    dpotrf_("L", &dim, f->inv, &dim, &info, 1);
    if (info == 0) dpotri_("L", &dim, f->inv, &dim, &info, 1);
    if (info != 0) return cb_fail(err, CB_ENUMERIC, "neighbours: EASE's Cholesky inverse failed (LAPACK info %d)", info);
    for (size_t r = 0; r < n; r++)
        for (size_t c = r + 1; c < n; c++) f->inv[c * n + r] = f->inv[r * n + c];
    for (uint32_t j = 0; j < f->n_items; j++) {
        if (!f->user_form) {
            f->pdiag[j] = f->inv[(size_t)j * n + j];
            continue;
        }
        double q = 0; /* x_j^T M x_j */
        for (size_t a = f->ioff[j]; a < f->ioff[j + 1]; a++)
            for (size_t b = f->ioff[j]; b < f->ioff[j + 1]; b++) q += f->inv[(size_t)f->iusers[a] * n + f->iusers[b]];
        f->pdiag[j] = (1.0 - q) / f->param;
    }
    return CB_OK;
}

static size_t ease_list(fit_ctx *f, uint32_t i, nb_cand *heap) {
    size_t h = 0;
    if (f->ioff[i + 1] == f->ioff[i]) return 0; /* no interactions: no neighbours */
    const double *p = f->z;
    if (f->user_form) { /* z = X^T (M x_i); P_ij = (delta_ij - z_j) / lambda */
        size_t nu = f->n_users;
        memset(f->v, 0, nu * sizeof *f->v);
        for (size_t a = f->ioff[i]; a < f->ioff[i + 1]; a++) {
            const double *m = f->inv + (size_t)f->iusers[a] * nu;
            for (size_t u = 0; u < nu; u++) f->v[u] += m[u];
        }
        memset(f->z, 0, (size_t)f->n_items * sizeof *f->z);
        for (size_t u = 0; u < nu; u++)
            for (size_t b = f->uoff[u]; b < f->uoff[u + 1]; b++) f->z[f->uitems[b]] -= f->v[u] / f->param;
    } else {
        p = f->inv + (size_t)i * f->n_items;
    }
    for (uint32_t j = 0; j < f->n_items; j++) {
        if (j == i || f->ioff[j + 1] == f->ioff[j]) continue;
        nb_cand c = {(float)(-p[j] / f->pdiag[j]), j};
        if (c.sim > 0 && isfinite(c.sim)) heap_push(heap, &h, f->k, c);
    }
    return h;
}

static void fit_ctx_free(fit_ctx *f) {
    free(f->uoff);
    free(f->uitems);
    free(f->ioff);
    free(f->iusers);
    free(f->count);
    free(f->touched);
    free(f->inv);
    free(f->pdiag);
    free(f->v);
    free(f->z);
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

int cb_neighbours_fit(cb_neighbours **out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                      cb_neighbours_kind kind, uint32_t k, float param, cb_error *err) {
    *out = NULL;
    uint32_t ni = cb_dataset_n_items(ds);
    if (k == 0 || !(param >= 0) || !isfinite(param) || (kind == CB_NEIGHBOURS_EASE && !(param > 0)))
        return cb_fail(err, CB_EINVAL, "neighbours: k must be >= 1, the shrinkage finite and >= 0, lambda > 0");
    int rc = cb_neighbours_check_k(ni, &k, err);
    if (rc) return rc;
    for (size_t j = 0; j < n_train; j++)
        if (train[j] >= ds->n_ratings) return cb_fail(err, CB_EINVAL, "neighbours: training index out of range");
    cb_neighbours *nb = cb_calloc(1, sizeof *nb, err);
    if (!nb) return CB_ENOMEM;
    *nb = (cb_neighbours){.kind = kind, .n_items = ni, .k = k};
    if (kind == CB_NEIGHBOURS_EASE) nb->lambda = param;
    else nb->shrink = param;
    fit_ctx f = {.kind = kind, .k = k, .n_users = cb_dataset_n_users(ds), .n_items = ni, .param = param};
    f.user_form = f.n_users < ni;
    rc = interactions(ds, train, n_train, false, &f.uoff, &f.uitems, err);
    if (!rc) rc = interactions(ds, train, n_train, true, &f.ioff, &f.iusers, err);
    if (!rc && kind == CB_NEIGHBOURS_COSINE) {
        f.count = cb_calloc((size_t)ni + 1, sizeof *f.count, err);
        f.touched = cb_malloc(((size_t)ni + 1) * sizeof *f.touched, err);
        if (!f.count || !f.touched) rc = CB_ENOMEM;
    }
    if (!rc && kind == CB_NEIGHBOURS_EASE) rc = ease_prepare(&f, err);
    nb_cand *heap = rc ? NULL : cb_malloc(((size_t)k + 1) * sizeof *heap, err);
    int32_t *off = rc ? NULL : cb_calloc((size_t)ni + 1, sizeof *off, err);
    if (!rc && (!heap || !off)) rc = CB_ENOMEM;
    /* the lists grow item by item; capacity doubles from the first estimate */
    size_t cap = ni ? (size_t)ni * (k < 16 ? k : 16) : 1, n_nb = 0;
    int32_t *items = rc ? NULL : cb_malloc(cap * sizeof *items, err);
    float *sims = rc ? NULL : cb_malloc(cap * sizeof *sims, err);
    if (!rc && (!items || !sims)) rc = CB_ENOMEM;
    for (uint32_t i = 0; !rc && i < ni; i++) {
        size_t got = kind == CB_NEIGHBOURS_EASE ? ease_list(&f, i, heap) : cosine_list(&f, i, heap);
        qsort(heap, got, sizeof *heap, cmp_cand_best_first);
        if (n_nb + got > cap) {
            while (n_nb + got > cap) cap *= 2;
            int32_t *pi = cb_realloc_array(items, cap, sizeof *items, err);
            if (pi) items = pi;
            float *ps = pi ? cb_realloc_array(sims, cap, sizeof *sims, err) : NULL;
            if (ps) sims = ps;
            if (!pi || !ps) rc = CB_ENOMEM;
        }
        for (size_t t = 0; !rc && t < got; t++) {
            items[n_nb] = (int32_t)heap[t].item;
            sims[n_nb++] = heap[t].sim;
        }
        off[i + 1] = (int32_t)n_nb;
    }
    fit_ctx_free(&f);
    free(heap);
    nb->off = nb->owned[0] = off;
    nb->item = nb->owned[1] = items;
    nb->sim = nb->owned[2] = sims;
    if (rc) cb_neighbours_free(nb);
    else *out = nb;
    return rc;
}

float cb_neighbours_row(const cb_neighbours *nb, const uint32_t *hist, size_t n_hist, uint32_t k, float *row) {
    memset(row, 0, (size_t)nb->n_items * sizeof *row);
    float max = 0;
    for (size_t h = 0; h < n_hist; h++) {
        uint32_t j = hist[h];
        if (j >= nb->n_items) continue;
        int32_t end = nb->off[j + 1];
        if (k && nb->off[j] + (int32_t)k < end) end = nb->off[j] + (int32_t)k;
        for (int32_t t = nb->off[j]; t < end; t++) {
            float v = row[nb->item[t]] += nb->sim[t];
            if (v > max) max = v;
        }
    }
    return max;
}

float cb_neighbours_divisor(const cb_neighbours *nb, float max) { return !(max > 0) ? 0 : nb->raw ? 1 : max; }

void cb_neighbours_blend(float *row, const float *raw, size_t n, float max, float w) {
    if (!(max > 0) || w == 0) return;
    float scale = w / max;
    for (size_t i = 0; i < n; i++) row[i] += scale * raw[i];
}

int64_t cb_neighbours_top_contributor(const cb_neighbours *nb, const uint32_t *hist, size_t n_hist, uint32_t item,
                                      float *sim) {
    int64_t best = -1;
    *sim = 0;
    for (size_t h = 0; h < n_hist; h++) {
        uint32_t j = hist[h];
        if (j >= nb->n_items) continue;
        for (int32_t t = nb->off[j]; t < nb->off[j + 1]; t++)
            if ((uint32_t)nb->item[t] == item) {
                if (nb->sim[t] > *sim) *sim = nb->sim[t], best = (int64_t)h;
                break;
            }
    }
    return best;
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
    int64_t nnz = rc ? 0 : nb->off[n_items];
    if (!rc && (nnz < 0 || (!(nb->item = cb_st_tensor(st, "neighbours.items", CB_ST_I32, 1, shape, err))) ||
                shape[0] != nnz || !(nb->sim = cb_st_tensor(st, "neighbours.weights", CB_ST_F32, 1, shape, err)) ||
                shape[0] != nnz))
        rc = nnz < 0 || (nb->item && nb->sim)
                 ? cb_fail(err, CB_EFORMAT, "%s: the neighbours' tensors disagree on their length", path)
                 : CB_EFORMAT;
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
#define TOP 10
#define RECALL_AT 20

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

/* NDCG@10 and recall@20 of row (training items already -INFINITY) against
 * the sorted relevant items rel[0..n_rel), n_rel > 0, as cb_eval_topn
 * counts them: recall = hits in the top 20 / n_rel. */
static void list_metrics(const float *row, uint32_t n_items, const uint32_t *rel, size_t n_rel, double *ndcg,
                         double *recall) {
    uint32_t top[RECALL_AT];
    float sc[RECALL_AT];
    size_t n = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        float v = row[i];
        if (v == -INFINITY || (n == RECALL_AT && !(v > sc[RECALL_AT - 1]))) continue;
        size_t p = n < RECALL_AT ? n++ : RECALL_AT - 1;
        while (p > 0 && v > sc[p - 1]) {
            sc[p] = sc[p - 1];
            top[p] = top[p - 1];
            p--;
        }
        sc[p] = v;
        top[p] = i;
    }
    double dcg = 0, idcg = 0;
    size_t hits = 0;
    for (size_t r = 0; r < n; r++)
        if (bsearch(&top[r], rel, n_rel, sizeof *rel, cb_cmp_u32)) {
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

/* Accumulate sums[metric][divisor][k][w] for one fitted list over every
 * measured user (metric 0: NDCG@10, 1: recall@20; divisor 0: the user's
 * maximum, 1: one). */
#define SUM(m, d, a, b) (((((m) * 2 + (d)) * N_K + (a)) * N_W) + (b))
static void tune_one_shrink(const cb_neighbours *nb, const tune_users *t, cb_tower_row_fn tower_row, void *ctx,
                            const axis *ks, const axis *ws, float *tower, float *raw, float *row, double *sums) {
    uint32_t ni = nb->n_items;
    for (size_t s = 0; s < t->n_list; s++) {
        uint32_t u = t->list[s];
        const uint32_t *hist = t->titem + t->toff[u];
        size_t n_hist = t->toff[u + 1] - t->toff[u];
        tower_row(ctx, u, tower);
        for (size_t h = 0; h < n_hist; h++) tower[hist[h]] = -INFINITY;
        for (size_t a = 0; a < ks->n; a++) {
            float max = cb_neighbours_row(nb, hist, n_hist, (uint32_t)ks->v[a], raw);
            for (size_t d = 0; d < 2; d++)
                for (size_t b = 0; b < ws->n; b++) {
                    double ndcg, recall;
                    memcpy(row, tower, (size_t)ni * sizeof *row);
                    cb_neighbours_blend(row, raw, ni, d && max > 0 ? 1.0f : max, ws->v[b]);
                    list_metrics(row, ni, t->ritem + t->roff[u], t->roff[u + 1] - t->roff[u], &ndcg, &recall);
                    sums[SUM(0, d, a, b)] += ndcg;
                    sums[SUM(1, d, a, b)] += recall;
                }
        }
    }
}

int cb_neighbours_tune(cb_neighbours_choice *best, char **tuning_json, const cb_neighbours_choice *fixed,
                       const cb_dataset *ds, const cb_split *carve, float threshold, size_t max_users,
                       cb_tower_row_fn tower_row, void *ctx, cb_error *err) {
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
    axis ks = axis_of(fixed->k ? (float)fixed->k : -1, NULL, grid_k, large ? 2 : N_K);
    axis ws = axis_of(fixed->weight, grid_w, NULL, N_W);
    uint32_t k_max = 0;
    for (size_t a = 0; a < ks.n; a++) k_max = (uint32_t)ks.v[a] > k_max ? (uint32_t)ks.v[a] : k_max;
    tune_users t;
    int rc = tune_users_make(&t, ds, carve, threshold, max_users, err);
    if (rc) return rc;
    float *tower = cb_malloc(((size_t)ni + 1) * sizeof *tower, err);
    float *raw = cb_malloc(((size_t)ni + 1) * sizeof *raw, err);
    float *row = cb_malloc(((size_t)ni + 1) * sizeof *row, err);
    double *sums = cb_calloc(2 * 2 * N_K * N_W, sizeof *sums, err);
    json_t *grid = json_array();
    if (!tower || !raw || !row || !sums || !grid) rc = CB_ENOMEM;
    cb_neighbours_kind first = try_kind[0] ? CB_NEIGHBOURS_COSINE : CB_NEIGHBOURS_EASE;
    *best = (cb_neighbours_choice){first, false, (uint32_t)ks.v[ks.n - 1], params[first].v[0], 0, -1, NAN, NAN, NAN,
                                   t.n_list};
    for (int kind = 0; kind < 2; kind++)
        for (size_t a = 0; !rc && try_kind[kind] && a < params[kind].n && t.n_list; a++) {
            cb_neighbours *nb = NULL;
            float param = params[kind].v[a];
            if ((rc = cb_neighbours_fit(&nb, ds, carve->train, carve->n_train, (cb_neighbours_kind)kind, k_max, param,
                                        err)))
                break;
            memset(sums, 0, 2 * 2 * N_K * N_W * sizeof *sums);
            tune_one_shrink(nb, &t, tower_row, ctx, &ks, &ws, tower, raw, row, sums);
            cb_neighbours_free(nb);
            for (size_t d = 0; d < 2; d++)
                for (size_t b = 0; b < ks.n; b++)
                    for (size_t c = 0; c < ws.n; c++) {
                        double v = sums[SUM(0, d, b, c)] / (double)t.n_list;
                        double r = sums[SUM(1, d, b, c)] / (double)t.n_list;
                        json_array_append_new(
                            grid, json_pack("{s:s,s:f,s:i,s:s,s:f,s:f,s:f}", "kind",
                                            cb_neighbours_kind_name((cb_neighbours_kind)kind), "param", (double)param,
                                            "k", (int)ks.v[b], "divisor", d ? "one" : "max", "weight",
                                            (double)ws.v[c], "ndcg10", v, "recall20", r));
                        if (ws.v[c] == 0) best->ndcg_towers = v, best->recall_towers = r;
                        if (v > best->ndcg) { /* recall@20 as the criterion: train_config.c */
                            *best = (cb_neighbours_choice){(cb_neighbours_kind)kind, d == 1, (uint32_t)ks.v[b], param,
                                                           ws.v[c], v, best->ndcg_towers, r, best->recall_towers,
                                                           t.n_list};
                        }
                    }
        }
    if (!rc && tuning_json) {
        json_t *doc = json_pack("{s:s,s:f,s:I,s:f,s:f,s:O}", "carve",
                                "per-user validation carve of the training ratings", "threshold", (double)threshold,
                                "users", (json_int_t)t.n_list, "towers_ndcg10",
                                isnan(best->ndcg_towers) ? -1.0 : best->ndcg_towers, "towers_recall20",
                                isnan(best->recall_towers) ? -1.0 : best->recall_towers, "grid", grid);
        if (!doc || !(*tuning_json = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(5))))
            rc = cb_fail(err, CB_ENOMEM, "out of memory");
        json_decref(doc);
    }
    json_decref(grid);
    free(tower);
    free(raw);
    free(row);
    free(sums);
    tune_users_free(&t);
    return rc;
}
