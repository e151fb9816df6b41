/* bench_sparse — the user tower's first layer at the default shape (1,052
 * inputs: a 52-column dense head and the top-1000 multi-hot at ~13 % ones;
 * 256 outputs), one training step's worth (forward + weight gradient), two
 * ways in the same run, paired A B A B:
 *   dense:  densify the batch's rows (cb_rows_get) + cb_nn_dense_forward/_backward
 *           (what training does today);
 *   sparse: the same densify, then what training does with it: list the
 *           non-zeros (cb_nn_csr_from_dense), transpose w, and
 *           cb_nn_sparse_forward/_backward (AVX2 unless CBREC_NO_AVX2=1).
 * Prints the median of each and the ratio dense / sparse (> 1: sparse faster).
 * Usage: bench_sparse [--batch B] [--density D] [--reps N]. Exit status 0. */
#include "base/rows.h"
#include "model/nn.h"
#include "model/nn_sparse.h"

#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C = 1052, H = 52, OC = 256, T = C - H, STEPS = 20 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int B = 256, reps = 9;
    double density = 0.13;
    static const struct option opts[] = {{"batch", 1, 0, 'b'}, {"density", 1, 0, 'd'}, {"reps", 1, 0, 'r'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "b:d:r:", opts, NULL)) != -1;) {
        if (c == 'b') B = atoi(optarg);
        else if (c == 'd') density = atof(optarg);
        else if (c == 'r') reps = atoi(optarg);
        else return fprintf(stderr, "usage: bench_sparse [--batch B] [--density D] [--reps N]\n"), 2;
    }
    if (B < 1 || reps < 1 || !(density >= 0 && density <= 1)) return fprintf(stderr, "bad arguments\n"), 2;
    openblas_set_num_threads(1);
    cb_rng rng;
    cb_rng_seed(&rng, 1);
    cb_rows rows = {.n_rows = (uint32_t)B, .width = C, .head = H};
    rows.dense = malloc((size_t)B * H * sizeof(float));
    rows.hot_off = calloc((size_t)B + 1, sizeof *rows.hot_off);
    rows.hot_col = malloc((size_t)B * T * sizeof *rows.hot_col);
    for (size_t i = 0; i < (size_t)B * H; i++) rows.dense[i] = (float)cb_rng_normal(&rng);
    for (int r = 0; r < B; r++) {
        rows.hot_off[r + 1] = rows.hot_off[r];
        for (int c = 0; c < T; c++)
            if (cb_rng_uniform(&rng) < density) rows.hot_col[rows.hot_off[r + 1]++] = (uint16_t)c;
    }
    float *x = malloc((size_t)B * C * sizeof *x), *w = malloc((size_t)OC * C * sizeof *w), *b = calloc(OC, sizeof *b);
    float *out = malloc((size_t)B * OC * sizeof *out), *dout = malloc((size_t)B * OC * sizeof *dout);
    float *dw = calloc((size_t)OC * C, sizeof *dw), *db = calloc(OC, sizeof *db), *wt = malloc((size_t)OC * C * sizeof *wt);
    float *dwt = calloc((size_t)OC * C, sizeof *dwt);
    cb_nn_csr csr = {malloc(((size_t)B + 1) * sizeof(uint32_t)), malloc((size_t)B * C * sizeof(uint32_t)),
                     malloc((size_t)B * C * sizeof(float)), (size_t)B * C};
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = (float)(0.05 * cb_rng_normal(&rng));
    for (size_t i = 0; i < (size_t)B * OC; i++) dout[i] = (float)cb_rng_normal(&rng);
    double *td = malloc(reps * sizeof *td), *ts = malloc(reps * sizeof *ts);
    for (int k = 0; k < reps; k++) {
        double t0 = cb_now();
        for (int s = 0; s < STEPS; s++) {
            for (int r = 0; r < B; r++) cb_rows_get(&rows, (uint32_t)r, x + (size_t)r * C);
            cb_nn_dense_forward(out, x, w, b, B, C, OC);
            cb_nn_dense_backward(NULL, dw, db, dout, x, w, B, C, OC);
        }
        double t1 = cb_now();
        for (int s = 0; s < STEPS; s++) {
            for (int r = 0; r < B; r++) cb_rows_get(&rows, (uint32_t)r, x + (size_t)r * C);
            cb_nn_csr_from_dense(&csr, x, B, C);
            cb_nn_transpose(wt, w, OC, C);
            cb_nn_sparse_forward(out, &csr, wt, b, B, OC);
            cb_nn_sparse_backward(dw, db, dwt, dout, &csr, B, C, OC);
        }
        td[k] = (t1 - t0) / STEPS;
        ts[k] = (cb_now() - t1) / STEPS;
    }
    qsort(td, reps, sizeof *td, cmp_double);
    qsort(ts, reps, sizeof *ts, cmp_double);
    printf("first layer %d inputs (head %d, %.0f %% ones in the tail) -> %d outputs, batch %d, 1 thread, median of %d x %d steps:\n",
           C, H, 100 * density, OC, B, reps, STEPS);
    printf("  dense (densify + sgemm fwd/bwd):   %.3f ms/step\n  sparse (densify + list + fwd/bwd): %.3f ms/step\n"
           "  ratio dense/sparse: %.2fx\n", td[reps / 2] * 1e3, ts[reps / 2] * 1e3, td[reps / 2] / ts[reps / 2]);
    cb_rows_free(&rows);
    free(csr.off), free(csr.col), free(csr.val);
    free(x), free(w), free(b), free(out), free(dout), free(dw), free(db), free(wt), free(dwt), free(td), free(ts);
    return 0;
}
