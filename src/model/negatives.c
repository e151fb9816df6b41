/* negatives — mixed negative sampling for the retrieval objective (Yang et
 * al., "Mixed Negative Sampling for Learning Two-tower Neural Networks in
 * Recommendations", WWW 2020): besides the batch's own items (drawn, in
 * effect, by popularity) each batch's softmax has m more columns, items
 * drawn from q_neg over the whole catalog, run through the item tower like
 * the others. Every column j then subtracts the log of its expected count
 * among the B + m columns, log(B·q_batch(j) + m·q_neg(j)): the logQ
 * correction of the mixed proposal. Owns the distribution, the draws and
 * that correction; train.c appends the draws to the item side's batch. */
#include "model/negatives.h"

#include <math.h>
#include <stdlib.h>

int cb_negatives_init(cb_negatives *s, const cb_rating *ratings, const uint32_t *idx, size_t n, uint32_t n_items,
                      uint32_t m, float power, cb_error *err) {
    s->n_items = n_items;
    s->m = m;
    s->cdf = NULL;
    s->q = cb_malloc(((size_t)n_items + 1) * sizeof *s->q, err);
    if (!s->q) return CB_ENOMEM;
    for (uint32_t i = 0; i < n_items; i++) s->q[i] = 1.0;
    if (power != 0.0f) {
        s->cdf = cb_malloc(((size_t)n_items + 1) * sizeof *s->cdf, err);
        if (!s->cdf) {
            cb_negatives_free(s);
            return CB_ENOMEM;
        }
        for (size_t j = 0; j < n; j++) s->q[ratings[idx[j]].item] += 1.0;
        for (uint32_t i = 0; i < n_items; i++) s->q[i] = pow(s->q[i], (double)power);
    }
    double total = 0.0;
    for (uint32_t i = 0; i < n_items; i++) total += s->q[i];
    for (uint32_t i = 0; i < n_items; i++) {
        s->q[i] /= total;
        if (s->cdf) s->cdf[i] = (i ? s->cdf[i - 1] : 0.0) + s->q[i];
    }
    return CB_OK;
}

void cb_negatives_free(cb_negatives *s) {
    free(s->cdf);
    free(s->q);
    s->cdf = s->q = NULL;
}

void cb_negatives_log_q(const cb_negatives *s, float *log_q, uint32_t B) {
    for (uint32_t i = 0; i < s->n_items; i++)
        log_q[i] = (float)log((double)B * exp((double)log_q[i]) + (double)s->m * s->q[i]);
}

void cb_negatives_draw(const cb_negatives *s, uint32_t *out, size_t n, uint64_t seed) {
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    for (size_t k = 0; k < n; k++) {
        if (!s->cdf) {
            out[k] = (uint32_t)cb_rng_below(&rng, s->n_items);
            continue;
        }
        double u = cb_rng_uniform(&rng) * s->cdf[s->n_items - 1];
        uint32_t lo = 0, hi = s->n_items - 1; /* the first i with cdf[i] > u */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (s->cdf[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        out[k] = lo;
    }
}
