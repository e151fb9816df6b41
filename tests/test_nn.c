/* Tests for nn: BLAS kernels against their naive twins, finite-difference
 * gradient checks of every layer and loss, Adam/SGD against hand-computed
 * steps, and the initialisers. */
#include "testutil.h"
#include "model/nn.h"

#include <math.h>

static void fill(float *x, size_t n, cb_rng *rng, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * cb_rng_normal(rng));
}

static void assert_close(const float *a, const float *b, size_t n, double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double tol = atol + rtol * fmax(fabs(a[i]), fabs(b[i]));
        if (fabs((double)a[i] - b[i]) > tol)
            fail_msg("element %zu: %.9g vs %.9g (tol %.3g)", i, a[i], b[i], tol);
    }
}

static void dense_matches_naive(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 1);
    int shapes[][3] = {{1, 1, 1}, {7, 13, 9}, {32, 14, 256}, {33, 128, 32}, {5, 3, 20}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *x = malloc(sizeof(float) * B * C), *w = malloc(sizeof(float) * OC * C),
              *b = malloc(sizeof(float) * OC), *y1 = malloc(sizeof(float) * B * OC),
              *y2 = malloc(sizeof(float) * B * OC), *dy = malloc(sizeof(float) * B * OC);
        float *dx1 = malloc(sizeof(float) * B * C), *dx2 = malloc(sizeof(float) * B * C);
        float *dw1 = malloc(sizeof(float) * OC * C), *dw2 = malloc(sizeof(float) * OC * C);
        float *db1 = malloc(sizeof(float) * OC), *db2 = malloc(sizeof(float) * OC);
        fill(x, (size_t)B * C, &rng, 1), fill(w, (size_t)OC * C, &rng, 0.3), fill(b, OC, &rng, 1);
        fill(dy, (size_t)B * OC, &rng, 1);
        cb_nn_dense_forward(y1, x, w, b, B, C, OC);
        cb_nn_dense_forward_naive(y2, x, w, b, B, C, OC);
        assert_close(y1, y2, (size_t)B * OC, 1e-5, 1e-5);
        cb_nn_dense_forward(y1, x, w, NULL, B, C, OC);
        cb_nn_dense_forward_naive(y2, x, w, NULL, B, C, OC);
        assert_close(y1, y2, (size_t)B * OC, 1e-5, 1e-5);
        /* backward accumulates: start from the same non-zero values */
        fill(dx1, (size_t)B * C, &rng, 1), fill(dw1, (size_t)OC * C, &rng, 1), fill(db1, OC, &rng, 1);
        memcpy(dx2, dx1, sizeof(float) * B * C), memcpy(dw2, dw1, sizeof(float) * OC * C);
        memcpy(db2, db1, sizeof(float) * OC);
        float *db_rows = malloc(sizeof(float) * OC); /* the bias gradient: float sums row after row, bit for bit */
        memcpy(db_rows, db1, sizeof(float) * OC);
        for (int r = 0; r < B; r++)
            for (int o = 0; o < OC; o++) db_rows[o] += dy[(size_t)r * OC + o];
        cb_nn_dense_backward(dx1, dw1, db1, dy, x, w, B, C, OC);
        cb_nn_dense_backward_naive(dx2, dw2, db2, dy, x, w, B, C, OC);
        assert_memory_equal(db1, db_rows, sizeof(float) * OC);
        free(db_rows);
        assert_close(dx1, dx2, (size_t)B * C, 1e-5, 1e-5);
        assert_close(dw1, dw2, (size_t)OC * C, 1e-5, 1e-5);
        assert_close(db1, db2, OC, 1e-5, 1e-5);
        /* dinp = NULL leaves only dw/db */
        cb_nn_dense_backward(NULL, dw1, NULL, dy, x, w, B, C, OC);
        cb_nn_dense_backward_naive(NULL, dw2, NULL, dy, x, w, B, C, OC);
        assert_close(dw1, dw2, (size_t)OC * C, 1e-5, 1e-5);
        /* the first layer's gradient made transposed: dwt (C,OC) += the same, db too */
        float *dwt = malloc(sizeof(float) * OC * C);
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) dwt[(size_t)c * OC + o] = dw1[(size_t)o * C + c];
        memcpy(db1, db2, sizeof(float) * OC);
        cb_nn_dense_backward_wt(dwt, db1, dy, x, B, C, OC);
        cb_nn_dense_backward_naive(NULL, dw2, db2, dy, x, w, B, C, OC);
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) dw1[(size_t)o * C + c] = dwt[(size_t)c * OC + o];
        assert_close(dw1, dw2, (size_t)OC * C, 1e-5, 1e-5);
        assert_close(db1, db2, OC, 1e-5, 1e-5);
        free(dwt);
        free(x), free(w), free(b), free(y1), free(y2), free(dy), free(dx1), free(dx2);
        free(dw1), free(dw2), free(db1), free(db2);
    }
}

/* ---- finite differences: objective L = Σ r_i · f(x)_i for a fixed random r */
typedef void (*layer_fn)(float *out, const float *x, void *ctx);

static double objective(layer_fn f, const float *x, const float *r, float *out, size_t n_out, void *ctx) {
    f(out, x, ctx);
    double s = 0;
    for (size_t i = 0; i < n_out; i++) s += (double)r[i] * out[i];
    return s;
}

/* Compare analytic dL/dx (given) to central differences on every input. */
static void fd_check(layer_fn f, float *x, size_t n_in, size_t n_out, const float *r,
                     const float *grad, void *ctx, const char *what) {
    float *out = malloc(sizeof(float) * n_out);
    for (size_t i = 0; i < n_in; i++) {
        float keep = x[i];
        float h = 1e-3f * fmaxf(1.0f, fabsf(keep));
        x[i] = keep + h;
        double lp = objective(f, x, r, out, n_out, ctx);
        x[i] = keep - h;
        double lm = objective(f, x, r, out, n_out, ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double tol = 3e-3 + 1e-2 * fmax(fabs(num), fabs(grad[i]));
        if (fabs(num - grad[i]) > tol) fail_msg("%s: d/dx[%zu] analytic %.6g numeric %.6g", what, i, grad[i], num);
    }
    free(out);
}

typedef struct dense_ctx { const float *w, *b; float *x_as_w; int B, C, OC, wrt; } dense_ctx;

static void dense_fn(float *out, const float *v, void *p) {
    dense_ctx *c = p;
    if (c->wrt == 0) cb_nn_dense_forward(out, v, c->w, c->b, c->B, c->C, c->OC);
    else if (c->wrt == 1) cb_nn_dense_forward(out, c->x_as_w, v, c->b, c->B, c->C, c->OC);
    else cb_nn_dense_forward(out, c->x_as_w, c->w, v, c->B, c->C, c->OC);
}

static void grad_dense(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 2);
    int B = 5, C = 6, OC = 4;
    float x[30], w[24], b[4], r[20], dx[30] = {0}, dw[24] = {0}, db[4] = {0};
    fill(x, 30, &rng, 1), fill(w, 24, &rng, 0.5), fill(b, 4, &rng, 1), fill(r, 20, &rng, 1);
    cb_nn_dense_backward(dx, dw, db, r, x, w, B, C, OC); /* dL/dout = r */
    dense_ctx c = {w, b, x, B, C, OC, 0};
    fd_check(dense_fn, x, 30, 20, r, dx, &c, "dense dX");
    c.wrt = 1;
    fd_check(dense_fn, w, 24, 20, r, dw, &c, "dense dW");
    c.wrt = 2;
    fd_check(dense_fn, b, 4, 20, r, db, &c, "dense db");
}

static void relu_fn(float *out, const float *x, void *p) { cb_nn_relu_forward(out, x, *(size_t *)p); }

static void grad_relu(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 3);
    size_t n = 23;
    float x[23], y[23], r[23], dx[23];
    fill(x, n, &rng, 1), fill(r, n, &rng, 1);
    for (size_t i = 0; i < n; i++) if (fabsf(x[i]) < 0.01f) x[i] = 0.5f; /* keep away from the kink */
    cb_nn_relu_forward(y, x, n);
    for (size_t i = 0; i < n; i++) { assert_true(y[i] >= 0); dx[i] = 1.0f; }
    cb_nn_relu_backward(dx, r, y, n); /* accumulates onto 1 */
    for (size_t i = 0; i < n; i++) dx[i] -= 1.0f;
    fd_check(relu_fn, x, n, n, r, dx, &n, "relu");
    float d2[23];
    memcpy(d2, r, sizeof d2);
    cb_nn_relu_backward_inplace(d2, y, n);
    assert_close(d2, dx, n, 1e-6, 1e-6);
}

typedef struct l2_ctx { int B, D; float eps; float norm[8]; } l2_ctx;
static void l2_fn(float *out, const float *x, void *p) {
    l2_ctx *c = p;
    cb_nn_l2norm_forward(out, c->norm, x, c->B, c->D, c->eps);
}

static void grad_l2norm(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 4);
    l2_ctx c = {4, 5, 1e-12f, {0}};
    float x[20], y[20], r[20], dx[20] = {0};
    fill(x, 20, &rng, 1), fill(r, 20, &rng, 1);
    cb_nn_l2norm_forward(y, c.norm, x, 4, 5, c.eps);
    for (int b = 0; b < 4; b++) {
        double s = 0;
        for (int d = 0; d < 5; d++) s += (double)y[b * 5 + d] * y[b * 5 + d];
        assert_true(fabs(s - 1.0) < 1e-5);
    }
    cb_nn_l2norm_backward(dx, r, y, c.norm, 4, 5, c.eps);
    fd_check(l2_fn, x, 20, 20, r, dx, &c, "l2norm");
    /* the clamped branch: a row smaller than eps is scaled by 1/eps */
    c.eps = 1.0f;
    for (int i = 0; i < 5; i++) x[i] *= 1e-3f;
    memset(dx, 0, sizeof dx);
    cb_nn_l2norm_forward(y, c.norm, x, 4, 5, c.eps);
    cb_nn_l2norm_backward(dx, r, y, c.norm, 4, 5, c.eps);
    fd_check(l2_fn, x, 20, 20, r, dx, &c, "l2norm clamped");
}

typedef struct dot_ctx { const float *other; int B, D; } dot_ctx;
static void dot_fn(float *out, const float *a, void *p) {
    dot_ctx *c = p;
    cb_nn_rowdot_forward(out, a, c->other, c->B, c->D);
}

static void grad_rowdot(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 5);
    float a[12], b[12], r[3], da[12] = {0}, db[12] = {0};
    fill(a, 12, &rng, 1), fill(b, 12, &rng, 1), fill(r, 3, &rng, 1);
    cb_nn_rowdot_backward(da, db, r, a, b, 3, 4);
    dot_ctx c = {b, 3, 4};
    fd_check(dot_fn, a, 12, 3, r, da, &c, "rowdot da");
    c.other = a;
    fd_check(dot_fn, b, 12, 3, r, db, &c, "rowdot db"); /* symmetric */
}

typedef struct loss_ctx { const float *y; int B; int bce; float s, c; int wrt; float *v; } loss_ctx;
static void loss_fn(float *out, const float *p, void *q) {
    loss_ctx *c = q;
    if (!c->bce) { out[0] = (float)cb_nn_mse_forward(p, c->y, c->B); return; }
    if (c->wrt == 0) out[0] = (float)cb_nn_bce_forward(NULL, p, c->y, c->s, c->c, c->B);
    else if (c->wrt == 1) out[0] = (float)cb_nn_bce_forward(NULL, c->v, c->y, p[0], c->c, c->B);
    else out[0] = (float)cb_nn_bce_forward(NULL, c->v, c->y, c->s, p[0], c->B);
}

static void grad_losses(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 6);
    float v[6], y[6], lab[6] = {1, 0, 1, 1, 0, 0}, one = 1.0f, dv[6] = {0};
    fill(v, 6, &rng, 1), fill(y, 6, &rng, 1);
    loss_ctx c = {y, 6, 0, 0, 0, 0, v};
    cb_nn_mse_backward(dv, v, y, 6);
    fd_check(loss_fn, v, 6, 1, &one, dv, &c, "mse");
    double l = cb_nn_mse_forward(v, v, 6);
    assert_true(l == 0.0);
    /* BCE w.r.t. v, scale and bias */
    c = (loss_ctx){lab, 6, 1, 3.0f, -0.5f, 0, v};
    float ds = 0, dc = 0;
    memset(dv, 0, sizeof dv);
    cb_nn_bce_backward(dv, &ds, &dc, v, lab, c.s, c.c, 6);
    fd_check(loss_fn, v, 6, 1, &one, dv, &c, "bce dv");
    c.wrt = 1;
    float s = c.s;
    fd_check(loss_fn, &s, 1, 1, &one, &ds, &c, "bce dscale");
    c.wrt = 2;
    float cc = c.c;
    fd_check(loss_fn, &cc, 1, 1, &one, &dc, &c, "bce dbias");
    /* stable for huge logits, and matches log(2) at z = 0 */
    float big = 1e4f, yy = 0.0f, zero = 0.0f;
    assert_true(fabs(cb_nn_bce_forward(NULL, &big, &yy, 1.0f, 0.0f, 1) - 1e4) < 1e-3);
    assert_true(fabs(cb_nn_bce_forward(NULL, &zero, &yy, 1.0f, 0.0f, 1) - log(2.0)) < 1e-9);
    float p;
    cb_nn_bce_forward(&p, &big, &yy, -1.0f, 0.0f, 1);
    assert_true(p == 0.0f);
}

typedef struct xent_ctx { const float *u, *v; cb_nn_softmax s; int wrt; } xent_ctx;
static void xent_fn(float *out, const float *p, void *q) {
    xent_ctx *c = q;
    float prob[6 * 9];
    out[0] = (float)cb_nn_softmax_xent_forward_naive(prob, c->wrt == 0 ? p : c->u, c->wrt == 1 ? p : c->v, &c->s, 0,
                                                     c->s.B);
}

/* Sampled softmax: fast vs naive, probabilities, left-out duplicates, and
 * finite differences with respect to both towers' outputs; unweighted and
 * with row weights (w = 0 drops a row). The vectors are the first D of
 * rows of width ld (a part of wider rows). Blocks of rows give the whole
 * batch's loss and gradients. */
static void softmax_xent_case(const float *w) {
    cb_rng rng;
    cb_rng_seed(&rng, 11);
    enum { B = 6, N = 9, D = 5, LD = 7 };
    float u[B * LD], v[N * LD], log_q[N], p1[B * N], p2[B * N], one = 1.0f;
    float du1[B * LD] = {0}, du2[B * LD] = {0}, dv1[N * LD] = {0}, dv2[N * LD] = {0};
    uint32_t ids[N] = {0, 1, 2, 3, 2, 5, 6, 7, 1}; /* item 2 twice in the batch, item 1 also sampled */
    fill(u, B * LD, &rng, 1), fill(v, N * LD, &rng, 1), fill(log_q, N, &rng, 1);
    cb_nn_softmax s = {log_q, ids, w, 4.0f, B, N, D, LD};
    double l1 = cb_nn_softmax_xent_forward(p1, u, v, &s, 0, B);
    double l2 = cb_nn_softmax_xent_forward_naive(p2, u, v, &s, 0, B);
    assert_true(fabs(l1 - l2) < 1e-5 * fmax(1.0, fabs(l2)));
    assert_close(p1, p2, B * N, 1e-5, 1e-6);
    for (int i = 0; i < B; i++) {
        double sum = 0;
        for (int j = 0; j < N; j++) sum += p1[i * N + j];
        assert_true(fabs(sum - (w ? w[i] : 1.0)) < 1e-5);
    }
    assert_true(p1[2 * N + 4] == 0.0f && p1[4 * N + 2] == 0.0f && p1[1 * N + 8] == 0.0f);
    assert_true(p1[2 * N + 2] > 0.0f && p1[0 * N + 8] > 0.0f);
    cb_nn_softmax_xent_backward(du1, dv1, p1, u, v, &s, 0, B);
    cb_nn_softmax_xent_backward_naive(du2, dv2, p2, u, v, &s, 0, B);
    assert_close(du1, du2, B * LD, 1e-4, 1e-6);
    assert_close(dv1, dv2, N * LD, 1e-4, 1e-6);
    for (int i = 0; i < B; i++) /* the columns past D are not the vectors': untouched */
        for (int d = D; d < LD; d++) assert_true(du1[i * LD + d] == 0.0f);
    /* two blocks of rows [0, 2) and [2, 6): the loss and du add up, dv sums */
    float pb[B * N], du3[B * LD] = {0}, dva[N * LD] = {0}, dvb[N * LD] = {0};
    double la = cb_nn_softmax_xent_forward(pb, u, v, &s, 0, 2);
    double lb = cb_nn_softmax_xent_forward(pb + 2 * N, u + 2 * LD, v, &s, 2, B - 2);
    assert_true(fabs(la + lb - l1) < 1e-6 * fmax(1.0, fabs(l1)));
    assert_close(pb, p1, B * N, 1e-6, 1e-7);
    cb_nn_softmax_xent_backward(du3, dva, pb, u, v, &s, 0, 2);
    cb_nn_softmax_xent_backward(du3 + 2 * LD, dvb, pb + 2 * N, u + 2 * LD, v, &s, 2, B - 2);
    for (int i = 0; i < N * LD; i++) dva[i] += dvb[i];
    assert_close(du3, du1, B * LD, 1e-5, 1e-6);
    assert_close(dva, dv1, N * LD, 1e-5, 1e-6);
    /* the item side by columns [0, 4) and [4, 9) over all rows: the naive
     * twin's values, and the bits of one call over all columns */
    float dc1[N * LD] = {0}, dc2[N * LD] = {0}, dcn[N * LD] = {0};
    cb_nn_softmax_xent_backward_cols(dc1, p1, u, &s, 0, N);
    cb_nn_softmax_xent_backward_cols(dc2, p1, u, &s, 0, 4);
    cb_nn_softmax_xent_backward_cols(dc2 + 4 * LD, p1, u, &s, 4, N - 4);
    cb_nn_softmax_xent_backward_cols_naive(dcn, p1, u, &s, 0, N);
    assert_memory_equal(dc1, dc2, sizeof dc1);
    assert_close(dc1, dv1, N * LD, 1e-5, 1e-6);
    assert_close(dcn, dv1, N * LD, 1e-5, 1e-6);
    /* finite differences on the contiguous vectors */
    float uc[B * D], vc[N * D], duc[B * D] = {0}, dvc[N * D] = {0};
    for (int i = 0; i < B; i++) memcpy(uc + i * D, u + i * LD, D * sizeof(float));
    for (int j = 0; j < N; j++) memcpy(vc + j * D, v + j * LD, D * sizeof(float));
    xent_ctx c = {uc, vc, {log_q, ids, w, 4.0f, B, N, D, D}, 0};
    cb_nn_softmax_xent_forward(p1, uc, vc, &c.s, 0, B);
    cb_nn_softmax_xent_backward(duc, dvc, p1, uc, vc, &c.s, 0, B);
    fd_check(xent_fn, uc, B * D, 1, &one, duc, &c, "softmax xent du");
    c.wrt = 1;
    fd_check(xent_fn, vc, N * D, 1, &one, dvc, &c, "softmax xent dv");
}

static void softmax_xent(void **state) {
    (void)state;
    softmax_xent_case(NULL);
    const float w[6] = {1.0f, 0.5f, 2.0f, 0.0f, 1.0f, 0.25f};
    softmax_xent_case(w);
    /* without log_q and ids: a perfectly separated batch has loss near 0 */
    float eu[2 * 2] = {1, 0, 0, 1}, pe[4];
    cb_nn_softmax s = {NULL, NULL, NULL, 50.0f, 2, 2, 2, 2};
    assert_true(cb_nn_softmax_xent_forward(pe, eu, eu, &s, 0, 2) < 1e-6);
    s.inv_temp = 0.0f;
    assert_true(fabs(cb_nn_softmax_xent_forward(pe, eu, eu, &s, 0, 2) - log(2.0)) < 1e-6);
    /* a row of weight 0 adds nothing to the loss */
    float w0[2] = {1.0f, 0.0f};
    s.w = w0;
    double l1 = cb_nn_softmax_xent_forward(pe, eu, eu, &s, 0, 2);
    assert_true(fabs(l1 - log(2.0) / 2) < 1e-6);
    /* an overflowed logit makes the loss non-finite (training stops) */
    float big[2 * 2] = {INFINITY, 0, 0, 1};
    s.w = NULL, s.inv_temp = 1.0f;
    assert_false(isfinite(cb_nn_softmax_xent_forward(pe, big, eu, &s, 0, 2)));
}

/* cb_nn_exp against expf: within 3 ulp-ish (4e-7 relative) on the range the
 * softmax uses; exact 1 at 0; 0 at -INFINITY and far below; NaN stays NaN;
 * the SIMD body and the scalar tail give the same bits for the same input. */
static void exp_float(void **state) {
    (void)state;
    enum { N = 20001 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * (float)i / (N - 1);
    memcpy(y, x, N * sizeof(float));
    cb_nn_exp(y, N);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]);
        worst = fmax(worst, fabs(y[i] - want) / want);
    }
    print_message("cb_nn_exp: worst relative error %.2e on [-87, 88]\n", worst);
    assert_true(worst < 4e-7);
    float sp[7] = {0.0f, -INFINITY, -100.0f, -1e30f, NAN, 1.0f, -0.5f};
    cb_nn_exp(sp, 7);
    assert_true(sp[0] == 1.0f && sp[1] == 0.0f && sp[2] == 0.0f && sp[3] == 0.0f && isnan(sp[4]));
    for (int off = 0; off < 4; off++) { /* x[k] at every lane and in the tail */
        float a[7], b[7];
        for (int i = 0; i < 7; i++) a[i] = b[i] = -3.7f + 0.61f * (float)((i + off) % 7);
        cb_nn_exp(a, 7);
        for (int i = 0; i < 7; i++) cb_nn_exp(&b[i], 1);
        assert_memory_equal(a, b, sizeof a);
    }
    free(x), free(y);
}

static void adam_and_sgd(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    size_t n = 103, nd = 61;
    float *p1 = malloc(n * 4), *p2 = malloc(n * 4), *g = malloc(n * 4), *m1 = calloc(n, 4),
          *m2 = calloc(n, 4), *v1 = calloc(n, 4), *v2 = calloc(n, 4);
    fill(p1, n, &rng, 1);
    memcpy(p2, p1, n * 4);
    cb_nn_adam h = {0.01f, 0.9f, 0.999f, 1e-8f, 0.1f};
    for (uint64_t t = 1; t <= 5; t++) {
        fill(g, n, &rng, 1);
        cb_nn_adam_update(p1, g, m1, v1, n, nd, &h, t);
        cb_nn_adam_update_naive(p2, g, m2, v2, n, nd, &h, t);
        assert_memory_equal(p1, p2, n * 4); /* same operations in the same order: bit for bit */
        assert_memory_equal(m1, m2, n * 4);
        assert_memory_equal(v1, v2, n * 4);
    }
    /* first step from zero moments moves each parameter by ~lr·sign(g) */
    float p = 1.0f, gg = -0.37f, m = 0, v = 0;
    cb_nn_adam h0 = {0.01f, 0.9f, 0.999f, 1e-7f, 0.0f};
    cb_nn_adam_update(&p, &gg, &m, &v, 1, 0, &h0, 1);
    assert_true(fabsf(p - 1.01f) < 1e-6f);
    /* weight decay reaches the first n_decay entries only */
    float q[2] = {1.0f, 1.0f}, zg[2] = {0, 0};
    cb_nn_sgd_update(q, zg, 2, 1, 0.5f, 0.2f);
    assert_true(q[0] == 0.9f && q[1] == 1.0f);
    float q2[2] = {1.0f, 2.0f}, g2[2] = {1.0f, -2.0f};
    cb_nn_sgd_update(q2, g2, 2, 0, 0.5f, 0.0f);
    assert_true(q2[0] == 0.5f && q2[1] == 3.0f);
    free(p1), free(p2), free(g), free(m1), free(m2), free(v1), free(v2);
}

static void init_ranges(void **state) {
    (void)state;
    cb_rng a, b;
    cb_rng_seed(&a, 9), cb_rng_seed(&b, 9);
    float w1[1000], w2[1000];
    cb_nn_init_he(w1, 1000, 24, &a);
    cb_nn_init_he(w2, 1000, 24, &b);
    assert_memory_equal(w1, w2, sizeof w1);
    double lim = sqrt(6.0 / 24), mx = 0, mean = 0;
    for (int i = 0; i < 1000; i++) { mx = fmax(mx, fabs(w1[i])); mean += w1[i] / 1000.0; }
    assert_true(mx <= lim && mx > 0.9 * lim && fabs(mean) < 0.05);
    cb_nn_init_glorot(w1, 1000, 128, 32, &a);
    lim = sqrt(6.0 / 160);
    mx = 0;
    for (int i = 0; i < 1000; i++) mx = fmax(mx, fabs(w1[i]));
    assert_true(mx <= lim && mx > 0.9 * lim);
    assert_true(cb_nn_all_finite(w1, 1000));
    w1[500] = NAN;
    assert_false(cb_nn_all_finite(w1, 1000));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dense_matches_naive), cmocka_unit_test(grad_dense),
        cmocka_unit_test(grad_relu),           cmocka_unit_test(grad_l2norm),
        cmocka_unit_test(grad_rowdot),         cmocka_unit_test(grad_losses),
        cmocka_unit_test(softmax_xent),        cmocka_unit_test(exp_float),
        cmocka_unit_test(adam_and_sgd),        cmocka_unit_test(init_ranges),
    };
    return cmocka_run_group_tests_name("nn", tests, NULL, NULL);
}
