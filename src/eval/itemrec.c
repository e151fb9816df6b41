/* itemrec — EASE and item-kNN over the binary training matrix, and the
 * choice of their settings on a validation carve. See itemrec.h. */
#include "eval/itemrec.h"
#include "model/neighbours.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's Cholesky factorisation and inverse, from libopenblas (Debian ships
 * them in the library but no lapack.h beside its cblas.h). Fortran calling
 * convention: every argument by reference, the hidden length of the
 * character argument last (ignored by OpenBLAS's own C implementations). */
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);

#define NO_ITEM UINT32_MAX

struct cb_itemrec {
    cb_itemrec_config cfg;
    uint32_t n_users, n_items, n_active;
    uint32_t *active;               /* [n_items] index among the active items, NO_ITEM when none */
    uint32_t *item_of;              /* [n_active] catalog index of an active item */
    size_t *user_off;               /* [n_users + 1] CSR of each user's distinct training items */
    uint32_t *user_items;           /* (active indices, ascending) */
    float *B;                       /* EASE, item form: [n_active^2], row = from, column = to */
    /* EASE, user form (P = (I - X^T M X) / lambda, M = (X X^T + lambda I)^-1): */
    uint32_t n_act_users;           /* users with training items */
    uint32_t *act_user;             /* [n_users] index among them, NO_ITEM when none */
    size_t *iu_off;                 /* [n_active + 1] CSR: each active item's active users */
    uint32_t *iu_user;
    double *M;                      /* [n_act_users^2] */
    double *inv_pdiag;              /* [n_active] 1 / P_jj */
    size_t *nb_off;                 /* ITEM_KNN: [n_active + 1] CSR of the kept neighbours */
    uint32_t *nb_item;              /* (active indices, most similar first) */
    float *nb_w;
};

void cb_itemrec_config_default(cb_itemrec_config *c, cb_itemrec_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->lambda = 500.0;
    c->knn_k = 100;
    c->shrink = 0.0;
}

const char *cb_itemrec_config_check(const cb_itemrec_config *c) {
    if (!c) return "no configuration";
    if (c->kind != CB_ITEMREC_EASE && c->kind != CB_ITEMREC_ITEM_KNN) return "unknown item model kind";
    if (c->kind == CB_ITEMREC_EASE && !(c->lambda > 0 && isfinite(c->lambda))) return "EASE lambda must be a finite number > 0";
    if (c->ease_form < CB_EASE_AUTO || c->ease_form > CB_EASE_USERS) return "unknown EASE form";
    if (!(c->shrink >= 0 && isfinite(c->shrink))) return "item-kNN shrink must be a finite number >= 0";
    return NULL;
}

const char *cb_itemrec_kind_name(cb_itemrec_kind kind) {
    return kind == CB_ITEMREC_EASE ? "ease" : kind == CB_ITEMREC_ITEM_KNN ? "item-knn" : "unknown";
}

void cb_itemrec_config_describe(const cb_itemrec_config *c, char *buf, size_t size) {
    if (c->kind == CB_ITEMREC_EASE) snprintf(buf, size, "lambda %g", c->lambda);
    else snprintf(buf, size, "k %u, shrink %g", c->knn_k, c->shrink);
}

void cb_itemrec_free(cb_itemrec *m) {
    if (!m) return;
    free(m->active);
    free(m->item_of);
    free(m->user_off);
    free(m->user_items);
    free(m->B);
    free(m->act_user);
    free(m->iu_off);
    free(m->iu_user);
    free(m->M);
    free(m->inv_pdiag);
    free(m->nb_off);
    free(m->nb_item);
    free(m->nb_w);
    free(m);
}

/* The active items and every user's distinct training items (CSR). */
static int build_interactions(cb_itemrec *m, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                              cb_error *err) {
    m->active = cb_malloc(((size_t)m->n_items + 1) * sizeof *m->active, err);
    m->item_of = cb_malloc(((size_t)m->n_items + 1) * sizeof *m->item_of, err);
    m->user_off = cb_calloc((size_t)m->n_users + 2, sizeof *m->user_off, err);
    m->user_items = cb_malloc((n_train + 1) * sizeof *m->user_items, err);
    if (!m->active || !m->item_of || !m->user_off || !m->user_items) return CB_ENOMEM;
    for (uint32_t i = 0; i < m->n_items; i++) m->active[i] = NO_ITEM;
    for (size_t j = 0; j < n_train; j++) {
        if (train[j] >= ds->n_ratings)
            return cb_fail(err, CB_EINVAL, "%s: training index %u out of range (%zu ratings)",
                           cb_itemrec_kind_name(m->cfg.kind), train[j], ds->n_ratings);
        const cb_rating *r = &ds->ratings[train[j]];
        if (r->user >= m->n_users || r->item >= m->n_items)
            return cb_fail(err, CB_EINVAL, "%s: rating %u names an unknown user or item", cb_itemrec_kind_name(m->cfg.kind),
                           train[j]);
        m->active[r->item] = 0;
        m->user_off[r->user + 2]++;
    }
    for (uint32_t i = 0; i < m->n_items; i++)
        if (m->active[i] == 0) {
            m->item_of[m->n_active] = i;
            m->active[i] = m->n_active++;
        }
    for (uint32_t u = 0; u < m->n_users; u++) m->user_off[u + 2] += m->user_off[u + 1];
    for (size_t j = 0; j < n_train; j++) {
        const cb_rating *r = &ds->ratings[train[j]];
        m->user_items[m->user_off[r->user + 1]++] = m->active[r->item];
    }
    cb_csr_sort_unique(m->user_off, m->user_items, m->n_users);
    return CB_OK;
}

/* G = X^T X over the active items, dense [n_active^2]: co-occurrence counts. */
static float *gram(const cb_itemrec *m, cb_error *err) {
    size_t n = m->n_active;
    float *G = cb_calloc(n * n + 1, sizeof *G, err);
    if (!G) return NULL;
    for (uint32_t u = 0; u < m->n_users; u++) {
        const uint32_t *it = m->user_items + m->user_off[u];
        size_t n_u = m->user_off[u + 1] - m->user_off[u];
        for (size_t a = 0; a < n_u; a++) {
            float *row = G + (size_t)it[a] * n;
            for (size_t b = 0; b < n_u; b++) row[it[b]] += 1.0f;
        }
    }
    return G;
}

/* EASE: B from P = (G + lambda I)^-1, in place in G. */
static int fit_ease(cb_itemrec *m, float *G, cb_error *err) {
    const int n = (int)m->n_active;
    for (int i = 0; i < n; i++) G[(size_t)i * n + i] += (float)m->cfg.lambda;
    int info = 0;
    /* column-major 'L' = row-major upper triangle; the matrix is symmetric */
    spotrf_("L", &n, G, &n, &info, 1);
    if (info == 0) spotri_("L", &n, G, &n, &info, 1);
    if (info != 0) return cb_fail(err, CB_ENUMERIC, "ease: Cholesky inverse failed (LAPACK info %d)", info);
    for (int r = 0; r < n; r++)
        for (int c = r + 1; c < n; c++) G[(size_t)c * n + r] = G[(size_t)r * n + c];
    float *inv_diag = cb_malloc(((size_t)n + 1) * sizeof *inv_diag, err);
    if (!inv_diag) return CB_ENOMEM;
    for (int c = 0; c < n; c++) inv_diag[c] = 1.0f / G[(size_t)c * n + c];
    for (int r = 0; r < n; r++) {
        float *row = G + (size_t)r * n;
        for (int c = 0; c < n; c++) row[c] = -row[c] * inv_diag[c];
        row[r] = 0.0f;
    }
    free(inv_diag);
    m->B = G;
    return CB_OK;
}

/* EASE in the user form, for fewer users than items (Woodbury):
 * (X^T X + lambda I)^-1 = (I - X^T M X) / lambda with M = (X X^T + lambda I)^-1,
 * an n_users^2 inverse instead of an n_items^2 one. Keeps M, the item ->
 * users lists and 1 / diag(P); scores are x_u - (x_u P) / diag(P). */
static int fit_ease_users(cb_itemrec *m, cb_error *err) {
    m->act_user = cb_malloc(((size_t)m->n_users + 1) * sizeof *m->act_user, err);
    m->iu_off = cb_calloc((size_t)m->n_active + 2, sizeof *m->iu_off, err);
    m->iu_user = cb_malloc((m->user_off[m->n_users] + 1) * sizeof *m->iu_user, err);
    if (!m->act_user || !m->iu_off || !m->iu_user) return CB_ENOMEM;
    for (uint32_t u = 0; u < m->n_users; u++)
        m->act_user[u] = m->user_off[u + 1] > m->user_off[u] ? m->n_act_users++ : NO_ITEM;
    for (size_t j = 0; j < m->user_off[m->n_users]; j++) m->iu_off[m->user_items[j] + 2]++;
    for (uint32_t i = 0; i < m->n_active; i++) m->iu_off[i + 2] += m->iu_off[i + 1];
    for (uint32_t u = 0; u < m->n_users; u++)
        for (size_t j = m->user_off[u]; j < m->user_off[u + 1]; j++)
            m->iu_user[m->iu_off[m->user_items[j] + 1]++] = m->act_user[u];
    const int n = (int)m->n_act_users;
    const double lambda = m->cfg.lambda;
    m->M = cb_calloc((size_t)n * n + 1, sizeof *m->M, err);
    m->inv_pdiag = cb_malloc(((size_t)m->n_active + 1) * sizeof *m->inv_pdiag, err);
    if (!m->M || !m->inv_pdiag) return CB_ENOMEM;
    for (uint32_t i = 0; i < m->n_active; i++) /* X X^T: users' co-occurrence counts */
        for (size_t a = m->iu_off[i]; a < m->iu_off[i + 1]; a++) {
            double *row = m->M + (size_t)m->iu_user[a] * n;
            for (size_t b = m->iu_off[i]; b < m->iu_off[i + 1]; b++) row[m->iu_user[b]] += 1.0;
        }
    int rc = cb_neighbours_ridge_inverse(m->M, (size_t)n, lambda, 1, NULL, err);
    if (rc) return rc;
    for (uint32_t j = 0; j < m->n_active; j++) { /* P_jj = (1 - x_j^T M x_j) / lambda */
        double q = 0;
        for (size_t a = m->iu_off[j]; a < m->iu_off[j + 1]; a++) {
            const double *row = m->M + (size_t)m->iu_user[a] * n;
            for (size_t b = m->iu_off[j]; b < m->iu_off[j + 1]; b++) q += row[m->iu_user[b]];
        }
        m->inv_pdiag[j] = lambda / (1.0 - q);
    }
    return CB_OK;
}

/* x_i^T M x_j over the active users of items i and j (user form). */
static double user_form_quad(const cb_itemrec *m, uint32_t i, uint32_t j) {
    double q = 0;
    for (size_t a = m->iu_off[i]; a < m->iu_off[i + 1]; a++) {
        const double *row = m->M + (size_t)m->iu_user[a] * m->n_act_users;
        for (size_t b = m->iu_off[j]; b < m->iu_off[j + 1]; b++) q += row[m->iu_user[b]];
    }
    return q;
}

/* Scores of the user form: x_u - (x_u P) / diag(P), x_u P = (x_u - (X^T M X x_u)) / lambda. */
static int score_ease_users(const cb_itemrec *m, uint32_t user, float *scores, cb_error *err) {
    const size_t n = m->n_act_users;
    double *v = cb_calloc(2 * n + 1, sizeof *v, err), *w = v ? v + n : NULL;
    if (!v) return CB_ENOMEM;
    const uint32_t *it = m->user_items + m->user_off[user];
    size_t n_u = m->user_off[user + 1] - m->user_off[user];
    for (size_t k = 0; k < n_u; k++) /* v = X x_u */
        for (size_t a = m->iu_off[it[k]]; a < m->iu_off[it[k] + 1]; a++) v[m->iu_user[a]] += 1.0;
    cblas_dsymv(CblasRowMajor, CblasUpper, (int)n, 1.0, m->M, (int)n, v, 1, 0.0, w, 1); /* w = M v */
    for (uint32_t j = 0, k = 0; j < m->n_active; j++) {
        double z = 0, x = 0; /* z = (X^T w)_j, x = x_u[j] */
        for (size_t a = m->iu_off[j]; a < m->iu_off[j + 1]; a++) z += w[m->iu_user[a]];
        while (k < n_u && it[k] < j) k++;
        if (k < n_u && it[k] == j) x = 1.0;
        scores[m->item_of[j]] = (float)(x - (x - z) / m->cfg.lambda * m->inv_pdiag[j]);
    }
    free(v);
    return CB_OK;
}

/* item-kNN: each active item's knn_k most similar others (similarity > 0). */
static int fit_knn(cb_itemrec *m, const float *G, cb_error *err) {
    const uint32_t n = m->n_active, k = m->cfg.knn_k && m->cfg.knn_k < n ? m->cfg.knn_k : n;
    float *norm = cb_malloc(((size_t)n + 1) * sizeof *norm, err);
    float *sim = cb_malloc(((size_t)n + 1) * sizeof *sim, err);
    uint32_t *self = cb_calloc((size_t)n + 1, sizeof *self, err);
    uint32_t *top = cb_malloc(((size_t)k + 1) * sizeof *top, err);
    m->nb_off = cb_calloc((size_t)n + 1, sizeof *m->nb_off, err);
    m->nb_item = cb_malloc(((size_t)n * k + 1) * sizeof *m->nb_item, err);
    m->nb_w = cb_malloc(((size_t)n * k + 1) * sizeof *m->nb_w, err);
    int rc = norm && sim && self && top && m->nb_off && m->nb_item && m->nb_w ? CB_OK : CB_ENOMEM;
    for (uint32_t i = 0; !rc && i < n; i++) norm[i] = sqrtf(G[(size_t)i * n + i]);
    size_t w = 0;
    for (uint32_t i = 0; !rc && i < n; i++) {
        const float *row = G + (size_t)i * n;
        for (uint32_t j = 0; j < n; j++)
            sim[j] = row[j] / (float)((double)norm[i] * norm[j] + m->cfg.shrink);
        self[i] = i + 1; /* excludes the item itself from its own neighbours */
        uint32_t got = cb_eval_top_k(top, k, sim, n, self, i + 1);
        for (uint32_t t = 0; t < got && sim[top[t]] > 0; t++) {
            m->nb_item[w] = top[t];
            m->nb_w[w++] = sim[top[t]];
        }
        m->nb_off[i + 1] = w;
    }
    free(norm);
    free(sim);
    free(self);
    free(top);
    return rc;
}

int cb_itemrec_fit(cb_itemrec **out, const cb_itemrec_config *c, const cb_dataset *ds, const uint32_t *train,
                   size_t n_train, cb_error *err) {
    *out = NULL;
    const char *why = cb_itemrec_config_check(c);
    if (why) return cb_fail(err, CB_EINVAL, "item model: %s", why);
    if (!n_train) return cb_fail(err, CB_EINVAL, "%s: empty training set", cb_itemrec_kind_name(c->kind));
    cb_itemrec *m = cb_calloc(1, sizeof *m, err);
    if (!m) return CB_ENOMEM;
    m->cfg = *c;
    m->n_users = cb_dataset_n_users(ds);
    m->n_items = cb_dataset_n_items(ds);
    int rc = build_interactions(m, ds, train, n_train, err);
    uint32_t n_act_users = 0;
    for (uint32_t u = 0; !rc && u < m->n_users; u++) n_act_users += m->user_off[u + 1] > m->user_off[u];
    /* EASE inverts the smaller of the two Gram matrices (users' or items') unless told */
    bool user_form = c->kind == CB_ITEMREC_EASE &&
                     (c->ease_form == CB_EASE_USERS || (c->ease_form == CB_EASE_AUTO && n_act_users < m->n_active));
    uint32_t dense = user_form ? n_act_users : m->n_active;
    if (!rc && dense > CB_ITEMREC_MAX_DENSE)
        rc = cb_fail(err, CB_EINVAL, "%s: %u %s with interactions; the dense Gram matrix allows at most %u",
                     cb_itemrec_kind_name(c->kind), dense, user_form ? "users" : "items", CB_ITEMREC_MAX_DENSE);
    float *G = NULL;
    if (!rc && user_form) {
        rc = fit_ease_users(m, err);
    } else if (!rc && !(G = gram(m, err))) {
        rc = CB_ENOMEM;
    } else if (!rc && c->kind == CB_ITEMREC_EASE) {
        rc = fit_ease(m, G, err);
        if (!rc) G = NULL; /* now m->B */
    } else if (!rc) {
        rc = fit_knn(m, G, err);
    }
    free(G);
    if (rc) cb_itemrec_free(m);
    else *out = m;
    return rc;
}

/* End of item a's neighbours within the first cfg.knn_k: the lists are kept
 * best first, so a model fitted with a larger k and read with a smaller one
 * equals the model fitted with the smaller k (cb_itemrec_tune uses this). */
static size_t nb_end(const cb_itemrec *m, uint32_t a) {
    size_t end = m->nb_off[a + 1];
    return m->cfg.knn_k && m->nb_off[a] + m->cfg.knn_k < end ? m->nb_off[a] + m->cfg.knn_k : end;
}

int cb_itemrec_score_cb(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    const cb_itemrec *m = ctx;
    if (n_items != m->n_items)
        return cb_fail(err, CB_EINVAL, "%s: asked for %u items, fitted on %u", cb_itemrec_kind_name(m->cfg.kind),
                       n_items, m->n_items);
    memset(scores, 0, (size_t)n_items * sizeof *scores);
    if (user >= m->n_users || m->user_off[user + 1] == m->user_off[user]) return CB_OK;
    if (m->M) return score_ease_users(m, user, scores, err);
    const size_t n = m->n_active;
    for (size_t j = m->user_off[user]; j < m->user_off[user + 1]; j++) {
        uint32_t a = m->user_items[j];
        if (m->B) {
            const float *row = m->B + (size_t)a * n;
            for (size_t t = 0; t < n; t++) scores[m->item_of[t]] += row[t];
        } else {
            for (size_t t = m->nb_off[a]; t < nb_end(m, a); t++) scores[m->item_of[m->nb_item[t]]] += m->nb_w[t];
        }
    }
    return CB_OK;
}

float cb_itemrec_weight(const cb_itemrec *m, uint32_t from, uint32_t to) {
    if (from >= m->n_items || to >= m->n_items) return 0.0f;
    uint32_t a = m->active[from], b = m->active[to];
    if (a == NO_ITEM || b == NO_ITEM) return 0.0f;
    if (m->B) return m->B[(size_t)a * m->n_active + b];
    if (m->M) /* a != b: P_ab = -x_a^T M x_b / lambda, B_ab = -P_ab / P_bb */
        return a == b ? 0.0f : (float)(user_form_quad(m, a, b) / m->cfg.lambda * m->inv_pdiag[b]);
    for (size_t t = m->nb_off[a]; t < nb_end(m, a); t++)
        if (m->nb_item[t] == b) return m->nb_w[t];
    return 0.0f;
}

int cb_itemrec_tune(cb_itemrec_config *best, double *best_ndcg, double *ndcg, const cb_itemrec_config *grid,
                    size_t n_grid, const cb_dataset *ds, const cb_split *carve, const cb_topn_config *topn,
                    cb_error *err) {
    if (!n_grid) return cb_fail(err, CB_EINVAL, "item model tuning: empty grid");
    if (!carve->n_train || !carve->n_test)
        return cb_fail(err, CB_EINVAL, "item model tuning: the validation carve has an empty part");
    *best_ndcg = NAN;
    *best = grid[0];
    cb_itemrec *knn = NULL; /* item-kNN fitted once per shrink with the grid's largest k, read with each k */
    for (size_t g = 0; g < n_grid; g++) {
        cb_itemrec *m = NULL;
        cb_topn_metrics tm;
        int rc = CB_OK;
        if (grid[g].kind == CB_ITEMREC_ITEM_KNN) {
            if (!knn || knn->cfg.shrink != grid[g].shrink) {
                cb_itemrec_config wide = grid[g];
                for (size_t h = 0; h < n_grid; h++)
                    if (grid[h].kind == CB_ITEMREC_ITEM_KNN && grid[h].shrink == wide.shrink && wide.knn_k &&
                        (!grid[h].knn_k || grid[h].knn_k > wide.knn_k))
                        wide.knn_k = grid[h].knn_k;
                cb_itemrec_free(knn);
                knn = NULL;
                rc = cb_itemrec_fit(&knn, &wide, ds, carve->train, carve->n_train, err);
            }
            if (!rc) knn->cfg.knn_k = grid[g].knn_k;
        } else {
            rc = cb_itemrec_fit(&m, &grid[g], ds, carve->train, carve->n_train, err);
        }
        if (!rc) rc = cb_eval_topn(&tm, topn, ds, carve, cb_itemrec_score_cb, m ? m : knn, err);
        cb_itemrec_free(m);
        if (rc) {
            cb_itemrec_free(knn);
            return rc;
        }
        if (ndcg) ndcg[g] = tm.ndcg;
        if (!isnan(tm.ndcg) && (isnan(*best_ndcg) || tm.ndcg > *best_ndcg)) {
            *best_ndcg = tm.ndcg;
            *best = grid[g];
        }
    }
    cb_itemrec_free(knn);
    return CB_OK;
}

/* ---- content-kNN (see itemrec.h) */

struct cb_contentknn {
    uint32_t n_users, n_items, dim;
    float *X;      /* [n_items x dim] L2-normalised content rows */
    float *P;      /* [n_users x dim] profiles (the global profile for cold users) */
};

void cb_contentknn_free(cb_contentknn *m) {
    if (!m) return;
    free(m->X);
    free(m->P);
    free(m);
}

/* m->X: the content columns of the item table (no "rating_*" column), rows normalised. */
static int content_rows(cb_contentknn *m, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                        const cb_feature_config *fc, cb_error *err) {
    cb_feature_config cfg;
    if (fc) cfg = *fc;
    else cb_feature_config_default(&cfg);
    cfg.item_stats = false;
    cb_features *f = NULL;
    int rc = cb_features_fit(&f, ds, train, n_train, &cfg, err);
    if (rc) return rc;
    uint32_t d = cb_features_item_dim(f);
    float *full = cb_malloc((size_t)m->n_items * d * sizeof *full + 1, err);
    uint32_t *keep = cb_malloc(((size_t)d + 1) * sizeof *keep, err);
    if (!full || !keep) rc = CB_ENOMEM;
    if (!rc) rc = cb_features_items(f, ds, full, err);
    for (uint32_t j = 0; !rc && j < d; j++)
        if (strncmp(cb_features_item_name(f, j), "rating_", 7)) keep[m->dim++] = j;
    if (!rc && !(m->X = cb_calloc((size_t)m->n_items * m->dim + 1, sizeof *m->X, err))) rc = CB_ENOMEM;
    for (uint32_t i = 0; !rc && i < m->n_items; i++) {
        float *x = m->X + (size_t)i * m->dim;
        double nn = 0;
        for (uint32_t j = 0; j < m->dim; j++) {
            x[j] = full[(size_t)i * d + keep[j]];
            nn += (double)x[j] * x[j];
        }
        if (nn > 0)
            for (uint32_t j = 0; j < m->dim; j++) x[j] = (float)(x[j] / sqrt(nn));
    }
    free(full);
    free(keep);
    cb_features_free(f);
    return rc;
}

/* m->P: per user, the mean row of the items rated >= the user's mean; cold users the global profile. */
static int content_profiles(cb_contentknn *m, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                            cb_error *err) {
    const size_t d = m->dim;
    double *sum = cb_calloc((size_t)m->n_users + 1, sizeof *sum, err);
    uint32_t *cnt = cb_calloc((size_t)m->n_users + 1, sizeof *cnt, err);
    uint32_t *used = cb_calloc((size_t)m->n_users + 1, sizeof *used, err);
    float *g = cb_calloc(d + 1, sizeof *g, err);
    m->P = cb_calloc((size_t)m->n_users * d + 1, sizeof *m->P, err);
    int rc = sum && cnt && used && g && m->P ? CB_OK : CB_ENOMEM;
    for (size_t j = 0; !rc && j < n_train; j++) {
        const cb_rating *r = &ds->ratings[train[j]];
        sum[r->user] += r->y;
        cnt[r->user]++;
    }
    for (size_t j = 0; !rc && j < n_train; j++) {
        const cb_rating *r = &ds->ratings[train[j]];
        if (!ds->binary && r->y < sum[r->user] / cnt[r->user]) continue;
        cblas_saxpy((int)d, 1.0f, m->X + (size_t)r->item * d, 1, m->P + (size_t)r->user * d, 1);
        used[r->user]++;
    }
    for (uint32_t u = 0; !rc && u < m->n_users; u++) {
        if (!used[u]) continue;
        cblas_sscal((int)d, 1.0f / used[u], m->P + (size_t)u * d, 1);
        cblas_saxpy((int)d, 1.0f, m->P + (size_t)u * d, 1, g, 1);
    }
    for (uint32_t u = 0; !rc && u < m->n_users; u++)
        if (!used[u]) memcpy(m->P + (size_t)u * d, g, d * sizeof *g); /* scale-free: cosine ranks alike */
    free(sum);
    free(cnt);
    free(used);
    free(g);
    return rc;
}

int cb_contentknn_fit(cb_contentknn **out, const cb_dataset *ds, const uint32_t *train, size_t n_train,
                      const cb_feature_config *fc, cb_error *err) {
    *out = NULL;
    if (!n_train) return cb_fail(err, CB_EINVAL, "content-knn: no training ratings");
    for (size_t j = 0; j < n_train; j++)
        if (train[j] >= ds->n_ratings)
            return cb_fail(err, CB_EINVAL, "content-knn: training index %u out of range (%zu ratings)", train[j],
                           ds->n_ratings);
    cb_contentknn *m = cb_calloc(1, sizeof *m, err);
    if (!m) return CB_ENOMEM;
    m->n_users = cb_dataset_n_users(ds);
    m->n_items = cb_dataset_n_items(ds);
    int rc = content_rows(m, ds, train, n_train, fc, err);
    if (!rc) rc = content_profiles(m, ds, train, n_train, err);
    if (rc) cb_contentknn_free(m);
    else *out = m;
    return rc;
}

int cb_contentknn_score_cb(void *ctx, uint32_t user, float *scores, uint32_t n_items, cb_error *err) {
    const cb_contentknn *m = ctx;
    if (n_items != m->n_items)
        return cb_fail(err, CB_EINVAL, "content-knn: asked for %u items, fitted on %u", n_items, m->n_items);
    memset(scores, 0, (size_t)n_items * sizeof *scores);
    if (user >= m->n_users || !m->dim) return CB_OK;
    const float *p = m->P + (size_t)user * m->dim;
    float pn = cblas_snrm2((int)m->dim, p, 1);
    if (pn > 0)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_items, (int)m->dim, 1.0f / pn, m->X, (int)m->dim, p, 1, 0.0f,
                    scores, 1);
    return CB_OK;
}

const float *cb_contentknn_item_row(const cb_contentknn *m, uint32_t item, uint32_t *dim) {
    *dim = m->dim;
    return item < m->n_items ? m->X + (size_t)item * m->dim : NULL;
}
