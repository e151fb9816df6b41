/* pipeline — cb_recommend: the retrieval sources (similar, genre, group /
 * popular, embedding), the merge, the ranking by THE ranking score
 * (cb_rec_rank_score, also used by the batch), and the hand-over to
 * diversity.c and explain.c. */
#include "rec/recommend.h"

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *cb_recommend_source_name(cb_source s) {
    static const char *const names[CB_SRC_COUNT] = {"similar", "genre", "group", "popular", "embedding"};
    return (unsigned)s < CB_SRC_COUNT ? names[s] : "?";
}

typedef struct hit {
    uint32_t item;
    uint8_t source;
    uint8_t slot;     /* genre slot (GENRE) */
    int32_t anchor;   /* index into the profile's ratings (SIMILAR) */
    float dist;       /* distance to the anchor (SIMILAR) */
    uint32_t rank;    /* rank in the embedding retrieval (EMBEDDING) */
} hit;


static int cmp_hit(const void *a, const void *b) {
    const hit *x = a, *y = b;
    return x->item < y->item ? -1 : x->item > y->item;
}

static int cmp_cand_score(const void *a, const void *b) {
    const cb_rec_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->dot != y->dot) return x->dot > y->dot ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

typedef struct hits {
    hit *h;
    size_t n, cap;
} hits;

static int add_hit(hits *hs, hit h, cb_error *err) {
    if (hs->n == hs->cap) {
        size_t cap = hs->cap ? 2 * hs->cap : 256;
        hit *p = cb_realloc_array(hs->h, cap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        hs->h = p;
        hs->cap = cap;
    }
    hs->h[hs->n++] = h;
    return CB_OK;
}

typedef struct genre_stat {
    uint32_t genre, count;
    double mean;
} genre_stat;

static int cmp_genre_stat(const void *a, const void *b) {
    const genre_stat *x = a, *y = b;
    if (x->mean != y->mean) return x->mean > y->mean ? -1 : 1;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->genre < y->genre ? -1 : x->genre > y->genre;
}

/* A stated preference that makes its value a favourite: rated at least the
 * middle of the rating range (a lower one is a dislike). */
static bool liked_pref(const cb_bundle *r, float y) { return y >= (r->y_min + r->y_max) / 2; }

/* A rating (or a value's mean rating) that counts as liked: at least the
 * middle of the range too, so that a user who rated only 1s has no
 * favourite genre and no anchor to find items "similar to" (each was its
 * own mean); summed weights of events are counts, every one a pick. */
static bool liked_rating(const cb_bundle *r, double y) { return r->weighted || liked_pref(r, (float)y); }

/* The user's top genres: explicit preferences at or above the scale's middle
 * (best first), then genres by the user's average rating among those with at
 * least min_count of their ratings (any count when none has that many), if
 * liked (liked_rating). */
static int top_genres(const cb_bundle *r, const cb_profile *p, uint32_t want, uint32_t min_count, uint32_t *out,
                      uint32_t *n_out, cb_error *err) {
    *n_out = 0;
    uint32_t ng = r->features ? cb_features_n_genres(r->features) : 0;
    if (!ng || !want) return CB_OK;
    genre_stat *st = cb_calloc(ng, sizeof *st, err);
    if (!st) return CB_ENOMEM;
    genre_stat *prefs = cb_calloc(p->n_prefs + 1, sizeof *prefs, err);
    if (!prefs) {
        free(st);
        return CB_ENOMEM;
    }
    uint32_t np = 0;
    for (size_t i = 0; i < p->n_prefs; i++)
        if (liked_pref(r, p->pref_ys[i])) prefs[np++] = (genre_stat){p->pref_genres[i], 1, p->pref_ys[i]};
    qsort(prefs, np, sizeof *prefs, cmp_genre_stat);
    for (uint32_t i = 0; i < np && *n_out < want; i++) out[(*n_out)++] = prefs[i].genre;
    for (uint32_t g = 0; g < ng; g++) st[g].genre = g;
    for (size_t i = 0; i < p->n_ratings; i++) {
        const uint32_t *gl;
        uint32_t n = 0;
        if (cb_features_item_genres(r->features, p->items[i], &gl, &n)) continue;
        for (uint32_t k = 0; k < n; k++) {
            st[gl[k]].count++;
            st[gl[k]].mean += p->ys[i];
        }
    }
    uint32_t n_ok = 0, m = 0;
    for (uint32_t g = 0; g < ng; g++) n_ok += st[g].count >= min_count && st[g].count > 0;
    for (uint32_t g = 0; g < ng; g++)
        if (st[g].count && (st[g].count >= min_count || !n_ok) && liked_rating(r, st[g].mean / st[g].count))
            st[m++] = (genre_stat){g, st[g].count, st[g].mean / st[g].count};
    qsort(st, m, sizeof *st, cmp_genre_stat);
    for (uint32_t i = 0; i < m && *n_out < want; i++) {
        bool dup = false;
        for (uint32_t k = 0; k < *n_out; k++) dup |= out[k] == st[i].genre;
        if (!dup) out[(*n_out)++] = st[i].genre;
    }
    free(st);
    free(prefs);
    return CB_OK;
}

/* The rank of a location-like user column's name (region 0, country 1,
 * location 2, in any case: a users file's "Country" has the role too), or -1. */
int cb_rec_location_rank(const char *column) {
    static const char *const location[] = {"region", "country", "location"};
    for (int k = 0; k < 3; k++)
        if (!strcasecmp(column, location[k])) return k;
    return -1;
}

/* The group to use: cfg->group_by, else a location-like column. -1: none. */
static int pick_group(const cb_bundle *r, const char *group_by, int *out, cb_error *err) {
    *out = -1;
    if (group_by) {
        for (uint32_t g = 0; g < r->n_groups; g++)
            if (!strcmp(r->groups[g].column, group_by)) {
                *out = (int)g;
                return CB_OK;
            }
        char known[256] = "";
        for (uint32_t g = 0; g < r->n_groups && strlen(known) < 200; g++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", g ? ", " : "", r->groups[g].column);
        return cb_fail(err, CB_ENOTFOUND, "group-by '%s': the model has no such categorical user attribute (%s%s)",
                       group_by, r->n_groups ? "it has: " : "it has none", known);
    }
    int best = 3;
    for (uint32_t g = 0; g < r->n_groups; g++) {
        int k = cb_rec_location_rank(r->groups[g].column);
        if (k >= 0 && k < best) best = k, *out = (int)g;
    }
    return CB_OK;
}


/* ---- THE ranking score */

/* The criterion: AUTO ranks by the retrieval score when the model was
 * trained for retrieval (objective retrieval or both), else by the predicted
 * rating; RATING by the predicted rating (a model with a rating head only);
 * DOT by the raw dot product of the part AUTO would use. */
static bool by_retrieval(const cb_recommender *rec, cb_rank_by by) {
    return by != CB_RANK_RATING && cb_bundle_has_retrieval(rec->r);
}

int cb_rec_rank_check(const cb_recommender *rec, cb_rank_by by, cb_error *err) {
    if (by == CB_RANK_RATING && !cb_bundle_has_rating(rec->r))
        return cb_fail(err, CB_EINVAL, "rank-by rating: this model has no rating head (objective %s); use auto or dot",
                       cb_objective_name(cb_model_config_of(rec->r->model)->objective));
    return CB_OK;
}

/* A genre cap needs a genre column: in a catalog with only tags or a brand it
 * capped nothing, and the list came back as if no cap had been asked for. */
static int genre_cap_check(const cb_recommender *rec, const cb_recommend_config *cfg, cb_error *err) {
    const cb_features *f = rec->r->features;
    if (!cfg->genre_cap && cfg->diversity != CB_DIV_GENRE_CAP) return CB_OK;
    for (uint32_t g = 0; f && g < cb_features_n_genres(f); g++)
        if (cb_features_value_is_genre(f, g)) return CB_OK;
    return cb_fail(err, CB_EINVAL, "genre-cap: this model has no genre column, so there is nothing to cap (other "
                                   "content columns, such as tags or a brand, are not capped)");
}

void cb_rec_query_part(const cb_recommender *rec, cb_rank_by by, uint32_t *off, uint32_t *len) {
    if (by_retrieval(rec, by)) cb_bundle_rank_part(rec->r, off, len);
    else cb_model_rating_part(rec->r->model, off, len);
}

void cb_rec_query(const cb_recommender *rec, cb_rank_by by, const float *user_vec, float *q) {
    uint32_t off, len, dim = rec->r->dim;
    cb_rec_query_part(rec, by, &off, &len);
    for (uint32_t k = 0; k < dim; k++) q[k] = k >= off && k < off + len ? user_vec[k] : 0.0f;
}

/* Items added after training (item >= n_items) are scored from their vector
 * exactly like model items by the bundle's formula (cb_bundle_rank_of_dot);
 * the per-item term (the popularity prior, cb_bundle_rank_bias) is bias[item]
 * for model items; an added item has none learned and takes rec->added_bias
 * (the catalog's mean, cb_rec_added_item_bias, cached by cb_rec_rank_prepare). */
static float item_bias(const cb_recommender *rec, const float *bias, uint32_t item) {
    return item < rec->r->n_items ? (bias ? bias[item] : 0.0f) : rec->added_bias;
}

/* One model item's retrieval score, and its neighbour addition (0: none):
 * the one home of this arithmetic (the row's pass, the ranking graph's
 * candidates), so both give the same floats. */
static inline float affine_score(float a, float c0, float dot, float bias, float nb_add) {
    float s = a * dot + c0 + bias;
    return s + nb_add;
}

/* The retrieval score is affine in the dot (cb_bundle_rank_of_dot): a·dot +
 * c0 + bias, one multiply-add per item, the same in single and batch calls. */
void cb_rec_rank_affine(const cb_bundle *r, float *a, float *c0) {
    *c0 = cb_bundle_rank_of_dot(r, 0.0f, 0.0f);
    *a = cb_bundle_rank_of_dot(r, 1.0f, 0.0f) - *c0;
}

float cb_rec_rank_score(const cb_recommender *rec, cb_rank_by by, float dot, uint32_t item) {
    if (by == CB_RANK_DOT) return dot;
    const cb_bundle *r = rec->r;
    if (!by_retrieval(rec, by)) return cb_model_score_to_prediction(r->model, dot);
    float a, c0;
    cb_rec_rank_affine(r, &a, &c0);
    return a * dot + c0 + item_bias(rec, cb_bundle_rank_bias(r), item);
}

void cb_rec_rank_row(const cb_recommender *rec, cb_rank_by by, float *row, size_t n, const float *nb_raw, float nb_max) {
    const cb_bundle *r = rec->r;
    size_t nm = r->n_items < n ? r->n_items : n, j = 0;
    float w = nb_raw && r->neighbours ? r->neighbours->weight : 0.0f;
    if (!(nb_max > 0) || w == 0) nb_raw = NULL; /* as cb_neighbours_blend: nothing to add */
    if (by == CB_RANK_DOT || !by_retrieval(rec, by)) {
        for (; by != CB_RANK_DOT && j < n; j++) row[j] = cb_model_score_to_prediction(r->model, row[j]);
        if (nb_raw) cb_neighbours_blend(row, nb_raw, nm, nb_max, w);
        return;
    }
    float a, c0, scale = nb_raw ? w / nb_max : 0.0f;
    cb_rec_rank_affine(r, &a, &c0);
    const float *bias = cb_bundle_rank_bias(r);
    if (bias && nb_raw) /* the blend's own arithmetic, in the same pass */
        for (; j < nm; j++) row[j] = affine_score(a, c0, row[j], bias[j], scale * nb_raw[j]);
    if (bias)
        for (; j < nm; j++) row[j] = a * row[j] + c0 + bias[j];
    for (; j < n; j++) row[j] = a * row[j] + c0 + item_bias(rec, bias, (uint32_t)j);
    if (nb_raw && !bias) cb_neighbours_blend(row, nb_raw, nm, nb_max, w);
}

float cb_rec_rating(const cb_recommender *rec, const float *user_vec, uint32_t item) {
    const cb_bundle *r = rec->r;
    if (!cb_bundle_has_rating(r)) return NAN;
    uint32_t off, len;
    cb_model_rating_part(r->model, &off, &len);
    const float *v = cb_rec_item_vec(rec, item);
    float dot = 0;
    for (uint32_t k = off; k < off + len; k++) dot += user_vec[k] * v[k];
    float y = cb_model_score_to_prediction(r->model, dot);
    /* a rating the scale has (5.1 on 0.5-5 was shown): what cbrec eval's RMSE measures; the
     * ranking by rating keeps the unclipped value (no ties at the ends) */
    if (r->y_max > r->y_min) y = y < r->y_min ? r->y_min : y > r->y_max ? r->y_max : y;
    return y;
}

/* The mean, not the minimum: an added item is judged by its content as an
 * average item. The minimum would put every new item below every trained
 * item of the same v_u . v_m, so new items would hardly ever be recommended,
 * which defeats adding them; the mean keeps "as likely as a typical item
 * with this vector" and lets the user's taste decide. */
float cb_rec_added_item_bias(const float *bias, uint32_t n) {
    if (!bias || !n) return 0.0f;
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += bias[i];
    return (float)(sum / n);
}

void cb_rec_rank_prepare(cb_recommender *rec) {
    rec->added_bias = cb_rec_added_item_bias(cb_bundle_rank_bias(rec->r), rec->r->n_items);
}

bool cb_rec_rank_monotone(const cb_recommender *rec, cb_rank_by by) {
    return by == CB_RANK_DOT || !by_retrieval(rec, by) || !cb_bundle_rank_bias(rec->r);
}

bool cb_rec_neighbours_on(const cb_recommender *rec, const cb_recommend_config *cfg) {
    const cb_neighbours *nb = rec->r->neighbours;
    return nb && nb->weight > 0 && cfg->neighbours && cfg->rank_by == CB_RANK_AUTO && by_retrieval(rec, cfg->rank_by);
}

uint32_t cb_rec_neighbour_k(uint32_t list_k, uint32_t budget, size_t n_hist) {
    if (!budget || !n_hist || (double)n_hist * list_k <= budget) return 0;
    size_t per = budget / n_hist;
    if (per < CB_REC_NEIGHBOUR_K_MIN) per = CB_REC_NEIGHBOUR_K_MIN;
    return per >= list_k ? 0 : (uint32_t)per;
}

float cb_rec_neighbour_row(const cb_recommender *rec, const uint32_t *hist, size_t n_hist, uint32_t k, float *raw) {
    const cb_neighbours *nb = rec->r->neighbours;
    return cb_neighbours_divisor(nb, cb_neighbours_row(nb, hist, n_hist, k, raw));
}

const char *cb_rec_criterion(const cb_recommender *rec, cb_rank_by by) {
    if (by == CB_RANK_DOT) return "dot product";
    if (by_retrieval(rec, by)) return "retrieval score";
    return cb_rec_prediction_name(rec->r);
}

const char *cb_rec_prediction_name(const cb_bundle *r) {
    return r->binary ? "predicted probability" : r->weighted ? "predicted weight" : "predicted rating";
}

/* ---- one call's state */

typedef struct run {
    const cb_recommender *rec;
    const cb_profile *p;
    const cb_recommend_config *cfg;
    const uint64_t *excl;   /* per-call exclusions over model items */
    const float *q;         /* the ranking query: v_u on the criterion's part (cb_rec_query) */
    uint32_t q_off, q_len;  /* that part: q is zero outside [q_off, q_off + q_len) */
    float *nb_raw;          /* the neighbour scores of the profile's history [n_items], or NULL (off) */
    float nb_max;           /* their divisor (cb_rec_neighbour_row; > 0 when nb_raw is set) */
    uint32_t nb_k;          /* neighbours read per history item (cb_rec_neighbour_k; 0: all) */
    hits hs;
    uint32_t genres[32], n_genres;
    int group;
    cb_recommend_result *res;
} run;

/* (1) similar to the user's last liked items */
static int src_similar(run *x, cb_error *err) {
    const cb_profile *p = x->p;
    const cb_recommend_config *cfg = x->cfg;
    uint32_t ni = x->rec->r->n_items, n_all = (uint32_t)cb_recommender_item_count(x->rec);
    if (!cfg->recent_items || !p->n_ratings || ni < 2) return CB_OK;
    double mean = 0;
    for (size_t i = 0; i < p->n_ratings; i++) mean += p->ys[i];
    mean /= (double)p->n_ratings;
    uint32_t *anchors = cb_malloc((size_t)cfg->recent_items * sizeof *anchors, err);
    uint32_t *anchor_pos = anchors ? cb_malloc((size_t)cfg->recent_items * sizeof *anchor_pos, err) : NULL;
    int32_t *nb_idx = NULL;
    float *nb_dist = NULL;
    size_t na = 0;
    int rc = anchor_pos ? CB_OK : CB_ENOMEM;
    for (size_t i = p->n_ratings; !rc && i-- > 0 && na < cfg->recent_items;)
        if (cfg->anchors_all || (p->ys[i] >= mean - 1e-6 && liked_rating(x->rec->r, p->ys[i]))) {
            anchor_pos[na] = (uint32_t)i;
            anchors[na++] = p->items[i];
        }
    size_t m = cfg->similar_per_item < ni - 1 ? cfg->similar_per_item : ni - 1;
    if (!rc && m < cfg->similar_per_item)
        rc = cb_rec_push_str(&x->res->notes, &x->res->n_notes, err,
                             "M = %u similar items per rated item is more than the catalog allows; using %zu",
                             cfg->similar_per_item, m);
    bool used_table;
    if (!rc && na) {
        nb_idx = cb_malloc(na * m * sizeof *nb_idx, err);
        nb_dist = cb_malloc(na * m * sizeof *nb_dist, err);
        rc = (nb_idx && nb_dist)
                 ? cb_rec_neighbors_of(x->rec, anchors, na, m, cfg->threads, nb_idx, nb_dist, &used_table, err)
                 : CB_ENOMEM;
    }
    for (size_t a = 0; !rc && a < na; a++)
        for (size_t j = 0; !rc && j < m; j++) {
            int32_t it = nb_idx[a * m + j];
            if (it < 0 || (uint32_t)it >= n_all || cb_bit_get(x->excl, (size_t)it)) continue;
            rc = add_hit(&x->hs, (hit){(uint32_t)it, CB_SRC_SIMILAR, 0, (int32_t)anchor_pos[a], nb_dist[a * m + j], 0},
                         err);
        }
    free(anchors);
    free(anchor_pos);
    free(nb_idx);
    free(nb_dist);
    return rc;
}

/* Up to `want` unexcluded items of a precomputed list. */
static int take_list(run *x, const int32_t *list, uint32_t want, uint8_t src, uint8_t slot, cb_error *err) {
    uint32_t taken = 0;
    int rc = CB_OK;
    for (uint32_t t = 0; !rc && list && t < CB_BUNDLE_TOP_LIST && taken < want && list[t] >= 0; t++) {
        if (cb_bit_get(x->excl, (size_t)list[t])) continue;
        rc = add_hit(&x->hs, (hit){(uint32_t)list[t], src, slot, -1, 0, 0}, err);
        taken++;
    }
    return rc;
}

/* (2) the best items of the user's top genres; (3) popular with users like them, else overall */
static int src_lists(run *x, cb_error *err) {
    const cb_bundle *r = x->rec->r;
    const cb_recommend_config *cfg = x->cfg;
    int rc = CB_OK;
    if (cfg->top_genres) rc = top_genres(r, x->p, cfg->top_genres, cfg->min_genre_ratings, x->genres, &x->n_genres, err);
    for (uint32_t s = 0; !rc && s < x->n_genres; s++)
        rc = take_list(x, r->genre_top + (size_t)x->genres[s] * CB_BUNDLE_TOP_LIST, cfg->per_genre, CB_SRC_GENRE,
                       (uint8_t)s, err);
    if (rc || !cfg->group_items) return rc;
    if ((rc = pick_group(r, cfg->group_by, &x->group, err))) return rc;
    const int32_t *list = r->popular;
    uint8_t src = CB_SRC_POPULAR;
    if (x->group >= 0 && x->p->group_level[x->group] >= 0) {
        list = r->groups[x->group].top + (size_t)x->p->group_level[x->group] * CB_BUNDLE_TOP_LIST;
        src = CB_SRC_GROUP;
    } else if (x->group >= 0) {
        rc = cb_rec_push_str(&x->res->notes, &x->res->n_notes, err,
                             "the user's %s is unknown: using overall popularity", r->groups[x->group].column);
        x->group = -1;
    }
    return rc ? rc : take_list(x, list, cfg->group_items, src, 0, err);
}

/* u . v_item over the query's part [off, off + len) (u is zero elsewhere:
 * the same sum without its zero terms) */
static float dot_of(const cb_recommender *rec, const float *u, uint32_t off, uint32_t len, uint32_t item) {
    const float *v = cb_rec_item_vec(rec, item);
    float dot = 0;
    for (uint32_t k = off; k < off + len; k++) dot += u[k] * v[k];
    return dot;
}

/* Merge the added items into the model's top-k idx[0..k) (best first, as the
 * index ranked them, kept in that order): an added item goes before the first
 * entry of a lower v_u . v_m; the list stays at most k long. dots[k] is scratch. */
static void merge_added(const cb_recommender *rec, const float *u, const uint64_t *excl, int32_t *idx, float *dots,
                        size_t k) {
    uint32_t ni = rec->r->n_items, dim = rec->r->dim;
    for (size_t j = 0; j < k && idx[j] >= 0; j++) dots[j] = dot_of(rec, u, 0, dim, (uint32_t)idx[j]);
    for (uint32_t a = 0; a < rec->table.n_extra; a++) {
        if (cb_bit_get(excl, (size_t)ni + a)) continue;
        float d = dot_of(rec, u, 0, dim, ni + a);
        size_t pos = 0;
        while (pos < k && idx[pos] >= 0 && dots[pos] >= d) pos++;
        if (pos == k) continue;
        memmove(idx + pos + 1, idx + pos, (k - pos - 1) * sizeof *idx);
        memmove(dots + pos + 1, dots + pos, (k - pos - 1) * sizeof *dots);
        idx[pos] = (int32_t)(ni + a);
        dots[pos] = d;
    }
}

/* The k model items of highest ranking score (not excluded), best first:
 * one pass over the catalog when the score is not a function of the dot
 * alone (a per-item prior), so no exact-search shortcut applies. The
 * product reads only the query's part of the item vectors (half of them
 * for a model with a rating head beside the retrieval one). */
static int top_by_score(run *x, int32_t *idx, size_t k, cb_error *err) {
    const cb_bundle *r = x->rec->r;
    float *S = cb_malloc(((size_t)r->n_items + 1) * sizeof *S, err);
    int64_t *it = cb_malloc((k + 1) * sizeof *it, err);
    float *sc = cb_malloc((k + 1) * sizeof *sc, err);
    int rc = S && it && sc ? CB_OK : CB_ENOMEM;
    if (!rc) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)r->n_items, (int)x->q_len, 1.0f, r->item_vecs + x->q_off,
                    (int)r->dim, x->q + x->q_off, 1, 0.0f, S, 1);
        cb_rec_rank_row(x->rec, x->cfg->rank_by, S, r->n_items, x->nb_raw, x->nb_max);
        size_t words = ((size_t)r->n_items + 63) / 64; /* the excluded: by set bit, not a test per item */
        for (size_t w = 0; w < words; w++)
            for (uint64_t bits = x->excl[w]; bits; bits &= bits - 1) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
                if (i < r->n_items) S[i] = -INFINITY;
            }
        cb_rec_top_n(S, r->n_items, k, it, sc);
        for (size_t j = 0; j < k; j++) idx[j] = (int32_t)it[j];
    }
    free(S);
    free(it);
    free(sc);
    return rc;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* top_by_score through the ranking graph g (cb_rec_rank_ann): its top 2k by
 * the ranking vectors' dot (the score's order without the neighbour
 * addition), and every item the neighbour component adds to (only those in
 * the history's lists; the addition may lift any of them past the graph's
 * picks), each scored exactly as the row's pass does (affine_score); the k
 * best of those, ties to the lower item. Excluded items never enter. */
static int top_by_graph(run *x, const cb_hnsw *g, int32_t *idx, size_t k, cb_error *err) {
    const cb_recommender *rec = x->rec;
    const cb_bundle *r = rec->r;
    size_t ni = r->n_items, k_graph = 2 * k < ni ? 2 * k : ni, n_nb = 0;
    for (size_t i = 0; x->nb_raw && i < ni; i++) n_nb += x->nb_raw[i] > 0 && !cb_bit_get(x->excl, i);
    float *q = cb_malloc(((size_t)x->q_len + 1) * sizeof *q, err);
    float *S = cb_malloc((k_graph + n_nb + k + 1) * sizeof *S, err); /* the candidates' scores, then the top k's */
    int32_t *cand = cb_malloc((k_graph + n_nb + 1) * sizeof *cand, err);
    int64_t *it = cb_malloc((k + 1) * sizeof *it, err);
    int rc = q && S && cand && it ? CB_OK : CB_ENOMEM;
    size_t m = 0;
    if (!rc) {
        memcpy(q, x->q + x->q_off, x->q_len * sizeof *q);
        q[x->q_len] = 1.0f; /* times bias_i / a */
        size_t ef = rec->ann_ef ? rec->ann_ef : 2 * CB_HNSW_DEFAULT_EF;
        cb_knn_params kp = {.threads = 1, .exclude = x->excl, .ef = ef > k_graph ? ef : k_graph};
        rc = cb_hnsw_search(g, q, 1, k_graph, CB_KNN_DOT, &kp, cand, NULL, err);
    }
    for (size_t j = 0; !rc && j < k_graph; j++)
        if (cand[j] >= 0) cand[m++] = cand[j];
    for (size_t i = 0; !rc && x->nb_raw && i < ni; i++)
        if (x->nb_raw[i] > 0 && !cb_bit_get(x->excl, i)) cand[m++] = (int32_t)i;
    if (!rc) {
        qsort(cand, m, sizeof *cand, cmp_i32);
        size_t u = 0;
        for (size_t j = 0; j < m; j++)
            if (!u || cand[u - 1] != cand[j]) cand[u++] = cand[j];
        m = u;
        float a, c0, w = x->nb_raw ? r->neighbours->weight : 0.0f, scale = x->nb_raw ? w / x->nb_max : 0.0f;
        const float *bias = cb_bundle_rank_bias(r);
        cb_rec_rank_affine(r, &a, &c0);
        for (size_t j = 0; j < m; j++) {
            float dot = dot_of(rec, x->q, x->q_off, x->q_len, (uint32_t)cand[j]);
            float nb_add = x->nb_raw ? scale * x->nb_raw[cand[j]] : 0.0f;
            S[j] = x->cfg->rank_by == CB_RANK_DOT ? dot : affine_score(a, c0, dot, bias ? bias[cand[j]] : 0.0f, nb_add);
        }
        size_t kk = k < m ? k : m;
        cb_rec_top_n(S, m, kk, it, S + m);
        for (size_t j = 0; !rc && j < kk; j++) idx[j] = it[j] >= 0 ? cand[it[j]] : -1;
    }
    free(q);
    free(S);
    free(cand);
    free(it);
    return rc;
}

/* (4) embedding retrieval over the whole catalog, model and added items */
static int src_embedding(run *x, cb_error *err) {
    uint32_t ni = x->rec->r->n_items, n_all = (uint32_t)cb_recommender_item_count(x->rec);
    if (!x->cfg->embedding_items) return CB_OK;
    size_t k = x->cfg->embedding_items < n_all ? x->cfg->embedding_items : n_all;
    size_t k_model = k < ni ? k : ni;
    int32_t *idx = cb_malloc(k * sizeof *idx, err);
    float *dots = x->rec->table.n_extra ? cb_malloc(k * sizeof *dots, err) : NULL;
    if (!idx || (x->rec->table.n_extra && !dots)) {
        free(idx);
        return CB_ENOMEM;
    }
    for (size_t j = 0; j < k; j++) idx[j] = -1;
    cb_knn_params kp = {.threads = x->cfg->threads, .exclude = x->excl}; /* 0: every core */
    const cb_hnsw *rank_graph = cb_rec_rank_ann(x->rec, x->cfg->rank_by);
    int rc = rank_graph ? top_by_graph(x, rank_graph, idx, k_model, err)
             : cb_rec_rank_monotone(x->rec, x->cfg->rank_by) && !x->nb_raw
                 ? cb_rec_search(x->rec, x->q, 1, k_model, CB_KNN_DOT, &kp, idx, NULL, err)
                 : top_by_score(x, idx, k_model, err);
    if (!rc && dots) merge_added(x->rec, x->q, x->excl, idx, dots, k);
    free(dots);
    for (size_t j = 0; !rc && j < k; j++)
        if (idx[j] >= 0) rc = add_hit(&x->hs, (hit){(uint32_t)idx[j], CB_SRC_EMBEDDING, 0, -1, 0, (uint32_t)j}, err);
    free(idx);
    return rc;
}

/* Merge the hits into distinct candidates and rank them by the ranking score. */
static int merge_rank(run *x, cb_rec_cand **out, size_t *n_out, cb_error *err) {
    const cb_profile *p = x->p;
    *out = NULL;
    *n_out = 0;
    if (!x->hs.n) return CB_OK;
    qsort(x->hs.h, x->hs.n, sizeof *x->hs.h, cmp_hit);
    cb_rec_cand *cs = cb_calloc(x->hs.n, sizeof *cs, err);
    if (!cs) return CB_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < x->hs.n; i++) {
        const hit *h = &x->hs.h[i];
        if (!m || cs[m - 1].item != h->item) cs[m++] = (cb_rec_cand){.item = h->item, .anchor = -1, .nb_anchor = -1};
        cb_rec_cand *c = &cs[m - 1];
        c->sources |= 1u << h->source;
        if (h->source == CB_SRC_GENRE) c->genre_slots |= 1u << h->slot;
        if (h->source == CB_SRC_EMBEDDING) c->emb_rank = h->rank;
        if (h->source == CB_SRC_SIMILAR) {
            c->n_anchors++;
            bool better = c->anchor < 0 || p->ys[h->anchor] > p->ys[c->anchor] ||
                          (p->ys[h->anchor] == p->ys[c->anchor] && h->anchor > c->anchor);
            if (better) c->anchor = h->anchor, c->dist = h->dist;
        }
    }
    for (size_t i = 0; i < m; i++) {
        float dot = dot_of(x->rec, x->q, x->q_off, x->q_len, cs[i].item);
        cs[i].dot = dot;
        cs[i].score = cb_rec_rank_score(x->rec, x->cfg->rank_by, dot, cs[i].item);
        if (x->nb_raw && cs[i].item < x->rec->r->n_items) {
            cs[i].neighbour = x->rec->r->neighbours->weight * x->nb_raw[cs[i].item] / x->nb_max;
            cs[i].score += cs[i].neighbour;
        }
    }
    qsort(cs, m, sizeof *cs, cmp_cand_score);
    *out = cs;
    *n_out = m;
    return CB_OK;
}

/* The history item behind each picked candidate's neighbour reason (where
 * explain.c gives one): one pass over the history's lists for the k picks,
 * not one per pick. */
static int neighbour_anchors(run *x, cb_rec_cand *cs, const uint32_t *sel, size_t k, cb_error *err) {
    const cb_neighbours *nb = x->rec->r->neighbours;
    uint32_t *items = cb_malloc((k + 1) * sizeof *items, err);
    size_t *which = cb_malloc((k + 1) * sizeof *which, err);
    int64_t *pos = cb_malloc((k + 1) * sizeof *pos, err);
    float *sim = cb_malloc((k + 1) * sizeof *sim, err);
    int rc = items && which && pos && sim ? CB_OK : CB_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; !rc && i < k; i++) {
        const cb_rec_cand *c = &cs[sel[i]];
        if (cb_rec_neighbour_reason_due(x->rec, c)) which[m] = sel[i], items[m++] = c->item;
    }
    if (!rc) rc = cb_neighbours_top_contributors(nb, x->p->items, x->p->n_ratings, x->nb_k, items, m, pos, sim, err);
    for (size_t i = 0; !rc && i < m; i++) cs[which[i]].nb_anchor = (int32_t)pos[i];
    free(items);
    free(which);
    free(pos);
    free(sim);
    return rc;
}

/* A new profile that states its taste only as genre preferences (no
 * ratings): the retrieval half learned from which items users picked, and
 * such a profile has picked none, so its taste vector alone would return the
 * catalog's blockbusters. The user told us what they want: candidates come
 * from the top items of their liked genres only (at least n per genre),
 * ranked by the usual criterion; a note says so. Dislikes alone name nothing
 * to take: the usual sources then (an empty list, else). */
static bool stated_taste_only(const cb_recommender *rec, const cb_profile *p, const cb_recommend_config *cfg) {
    bool liked = false;
    for (size_t i = 0; i < p->n_prefs; i++) liked = liked || liked_pref(rec->r, p->pref_ys[i]);
    return cfg->rank_by == CB_RANK_AUTO && liked && p->n_ratings == 0 && cfg->top_genres > 0 &&
           cb_bundle_has_retrieval(rec->r);
}

int cb_recommend(const cb_recommender *rec, const cb_profile *p, const cb_recommend_config *call_cfg,
                 const cb_blocklist *bl, cb_recommend_result *res, cb_error *err) {
    memset(res, 0, sizeof *res);
    const char *why = cb_recommend_config_check(call_cfg);
    if (why) return cb_fail(err, CB_EINVAL, "%s", why);
    cb_recommend_config cfg_copy = *call_cfg;
    const cb_recommend_config *cfg = &cfg_copy;
    bool stated = stated_taste_only(rec, p, cfg);
    if (stated) {
        cfg_copy.embedding_items = cfg_copy.group_items = 0;
        uint32_t per = call_cfg->n < CB_BUNDLE_TOP_LIST ? call_cfg->n : CB_BUNDLE_TOP_LIST;
        if (cfg_copy.per_genre < per) cfg_copy.per_genre = per;
    }
    res->criterion = cb_rec_criterion(rec, cfg->rank_by);
    uint64_t *excl = NULL;
    int rc = cb_rec_rank_check(rec, cfg->rank_by, err);
    if (!rc) rc = genre_cap_check(rec, cfg, err);
    if (rc) return rc;
    rc = cb_recommend_exclusions(rec, cfg, bl, p->items, p->n_ratings, &excl, err);
    if (rc) return rc;
    float *q = cb_malloc(rec->r->dim * sizeof *q, err);
    if (!q) {
        free(excl);
        return CB_ENOMEM;
    }
    cb_rec_query(rec, cfg->rank_by, p->vec, q);
    run x = {.rec = rec, .p = p, .cfg = cfg, .excl = excl, .q = q, .group = -1, .res = res};
    cb_rec_query_part(rec, cfg->rank_by, &x.q_off, &x.q_len);
    cb_rec_cand *cs = NULL;
    uint32_t *sel = NULL;
    size_t m = 0, k = 0, n = cfg->n;
    if (p->note[0]) rc = cb_rec_push_str(&res->notes, &res->n_notes, err, "%s", p->note);
    if (!rc && stated)
        rc = cb_rec_push_str(&res->notes, &res->n_notes, err,
                             "candidates from your stated preferences only: with no ratings yet, the taste vector "
                             "alone would return the catalog's most popular items");
    size_t n_all = cb_recommender_item_count(rec);
    if (!rc && n > n_all) {
        rc = cb_rec_push_str(&res->notes, &res->n_notes, err, "n = %zu is larger than the catalog (%zu items); using %zu",
                             n, n_all, n_all);
        n = n_all;
    }
    if (!rc && p->n_ratings && cb_rec_neighbours_on(rec, cfg)) {
        if (!(x.nb_raw = cb_malloc(((size_t)rec->r->n_items + 1) * sizeof *x.nb_raw, err))) rc = CB_ENOMEM;
        else if (!((x.nb_max = cb_rec_neighbour_row(rec, p->items, p->n_ratings,
                                                     x.nb_k = cb_rec_neighbour_k(rec->r->neighbours->k, cfg->neighbour_budget,
                                                                                p->n_ratings), x.nb_raw)) > 0)) {
            free(x.nb_raw); /* nothing in the history has neighbours: the towers alone */
            x.nb_raw = NULL;
        }
    }
    if (!rc) rc = src_similar(&x, err);
    if (!rc) rc = src_lists(&x, err);
    if (!rc) rc = src_embedding(&x, err);
    if (!rc) rc = merge_rank(&x, &cs, &m, err);
    res->n_candidates = m;
    if (!rc && m) {
        sel = cb_malloc(n * sizeof *sel, err);
        if (!sel) rc = CB_ENOMEM;
        else k = cb_rec_diversify(rec, cfg, cs, m, n, sel, err, &rc);
    }
    if (!rc && k < n) { /* the catalog itself short (all else rated or excluded), or the sources too narrow */
        size_t open = n_all;
        for (size_t i = 0; i < n_all; i++) open -= cb_bit_get(excl, i) ? 1 : 0;
        rc = open <= k ? cb_rec_push_str(&res->notes, &res->n_notes, err,
                                         "only %zu item%s of the catalog left that the user has not rated and no "
                                         "filter excludes (asked for %zu)", k, k == 1 ? "" : "s", n)
                       : cb_rec_push_str(&res->notes, &res->n_notes, err,
                                         "only %zu item%s left after retrieval and filtering (asked for %zu); enable "
                                         "or widen the sources", k, k == 1 ? "" : "s", n);
    }
    if (!rc && k && !(res->items = cb_calloc(k, sizeof *res->items, err))) rc = CB_ENOMEM;
    if (!rc && x.nb_raw) rc = neighbour_anchors(&x, cs, sel, k, err);
    for (size_t i = 0; !rc && i < k; i++) {
        rc = cb_rec_explain(rec, p, cfg, &cs[sel[i]], x.genres, x.group, &res->items[i], err);
        res->n = i + 1;
    }
    free(excl);
    free(q);
    free(x.nb_raw);
    free(x.hs.h);
    free(cs);
    free(sel);
    if (rc) cb_recommend_result_free(res);
    return rc;
}
