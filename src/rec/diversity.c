/* diversity — optional re-ranking of the ranked candidates: maximal
 * marginal relevance (MMR) over the item vectors, or a cap per genre. */
#include "rec/recommend.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool item_has_genre_over(const cb_bundle *r, uint32_t item, const uint32_t *genre_count, uint32_t cap) {
    const uint32_t *gl;
    uint32_t n = 0;
    if (!r->features || cb_features_item_genres(r->features, item, &gl, &n)) return false;
    for (uint32_t k = 0; k < n; k++) /* genres only: tags and other content columns are not capped */
        if (genre_count[gl[k]] >= cap && cb_features_value_is_genre(r->features, gl[k])) return true;
    return false;
}

float cb_rec_cosine(const float *a, const float *b, uint32_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (uint32_t k = 0; k < d; k++) {
        ab += (double)a[k] * b[k];
        aa += (double)a[k] * a[k];
        bb += (double)b[k] * b[k];
    }
    return aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
}

/* MMR's relevance of each candidate: its ranking score (the list's own
 * order, the neighbour component and the popularity prior included) rescaled
 * to [0, 1] over the candidates, the scale of the cosine it is weighed
 * against. The towers' dot alone reordered the list at any diversity, even
 * 0.001, with the neighbour component left out. */
static void mmr_relevance(const cb_rec_cand *c, size_t m, float *rel) {
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < m; i++)
        if (isfinite(c[i].score)) lo = fminf(lo, c[i].score), hi = fmaxf(hi, c[i].score);
    for (size_t i = 0; i < m; i++) /* a score that is not finite: an end of the scale, never NaN */
        rel[i] = !isfinite(c[i].score) ? (c[i].score > 0 ? 1.0f : 0.0f)
                 : hi > lo              ? (c[i].score - lo) / (hi - lo)
                                        : 1.0f;
}

/* Pick n of the sorted candidates c[0..m) into sel; returns how many. */
size_t cb_rec_diversify(const cb_recommender *rec, const cb_recommend_config *cfg, const cb_rec_cand *c, size_t m,
                        size_t n, uint32_t *sel, cb_error *err, int *rc) {
    const cb_bundle *r = rec->r;
    *rc = CB_OK;
    if (cfg->diversity == CB_DIV_NONE && cfg->genre_cap == 0) {
        size_t k = m < n ? m : n;
        for (size_t i = 0; i < k; i++) sel[i] = (uint32_t)i;
        return k;
    }
    if (cfg->diversity == CB_DIV_GENRE_CAP || (cfg->diversity == CB_DIV_NONE && cfg->genre_cap > 0)) {
        uint32_t ng = r->features ? cb_features_n_genres(r->features) : 0;
        uint32_t *count = cb_calloc(ng + 1, sizeof *count, err);
        if (!count) return *rc = CB_ENOMEM, 0;
        size_t k = 0;
        for (size_t i = 0; i < m && k < n; i++) {
            if (item_has_genre_over(r, c[i].item, count, cfg->genre_cap)) continue;
            sel[k++] = (uint32_t)i;
            const uint32_t *gl;
            uint32_t g = 0;
            if (r->features && !cb_features_item_genres(r->features, c[i].item, &gl, &g))
                for (uint32_t j = 0; j < g; j++) count[gl[j]]++;
        }
        free(count);
        return k;
    }
    /* MMR: argmax lambda * relevance - (1 - lambda) * max similarity to the picked (mmr_relevance) */
    float *maxsim = cb_malloc(2 * (m + 1) * sizeof *maxsim, err), *rel = maxsim ? maxsim + m + 1 : NULL;
    bool *taken = cb_calloc(m + 1, sizeof *taken, err);
    if (!maxsim || !taken) {
        free(maxsim);
        free(taken);
        return *rc = CB_ENOMEM, 0;
    }
    for (size_t i = 0; i < m; i++) maxsim[i] = -1.0f;
    mmr_relevance(c, m, rel);
    size_t k = 0;
    float lambda = cfg->mmr_lambda;
    while (k < n && k < m) {
        size_t best = m;
        float best_v = -INFINITY;
        for (size_t i = 0; i < m; i++) {
            if (taken[i]) continue;
            float v = lambda * rel[i] - (1 - lambda) * (k ? maxsim[i] : 0.0f);
            if (v > best_v) best_v = v, best = i;
        }
        taken[best] = true;
        sel[k++] = (uint32_t)best;
        const float *vb = cb_rec_item_vec(rec, c[best].item);
        for (size_t i = 0; i < m; i++) {
            if (taken[i]) continue;
            float s = cb_rec_cosine(cb_rec_item_vec(rec, c[i].item), vb, r->dim);
            if (s > maxsim[i]) maxsim[i] = s;
        }
    }
    free(maxsim);
    free(taken);
    return k;
}

