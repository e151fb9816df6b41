/* negatives — the sampled negatives of the retrieval objective (see
 * negatives.c): which catalog items join a batch's softmax beside the
 * batch's own items, and the logQ correction of the mixed column set. */
#ifndef CB_NEGATIVES_H
#define CB_NEGATIVES_H

#include "base/util.h"
#include "data/dataset.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cb_negatives {
    uint32_t n_items, m;   /* catalog size, negatives per batch */
    double *cdf;           /* [n_items] cumulative q_neg; NULL when uniform */
    double *q;             /* [n_items] q_neg */
} cb_negatives;

/* q_neg(j) ∝ (training count of j + 1)^power over the n_items items (power
 * 0: uniform over the catalog, items without interactions included), m
 * draws per batch. */
int cb_negatives_init(cb_negatives *s, const cb_rating *ratings, const uint32_t *idx, size_t n, uint32_t n_items,
                      uint32_t m, float power, cb_error *err);
void cb_negatives_free(cb_negatives *s);

/* log_q [n_items]: in, log q_batch(j) (cb_model_log_q); out, the log of the
 * expected count of j among a batch's B + m softmax columns,
 * log(B·q_batch(j) + m·q_neg(j)). */
void cb_negatives_log_q(const cb_negatives *s, float *log_q, uint32_t B);

/* n draws from q_neg into out, from the generator seeded with seed. */
void cb_negatives_draw(const cb_negatives *s, uint32_t *out, size_t n, uint64_t seed);

#endif
