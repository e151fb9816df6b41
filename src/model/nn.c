/* nn — layers of the two-tower model (dense, ReLU, l2-normalise, dot, losses),
 * their backward passes, Adam/SGD and initialisers. The dense layer runs on
 * cblas_sgemm; the `_naive` twins are plain loops (double accumulators) kept
 * as the reference the tests compare against. See nn.h for the contracts. */
#include "model/nn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

/* ---- dense */

static void dense_forward(float *out, const float *inp, const float *w, bool transposed, const float *b, int B, int C,
                          int OC) {
    // inp (B,C), w (OC,C) or transposed (C,OC), b (OC), out (B,OC)
    if (B <= 0 || OC <= 0) return;
    float beta = 0.0f;
    if (b) {
        for (int r = 0; r < B; r++) memcpy(out + (size_t)r * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasNoTrans : CblasTrans, B, OC, C, 1.0f, inp, C, w,
                transposed ? OC : C, beta, out, OC);
}

void cb_nn_dense_forward(float *out, const float *inp, const float *w, const float *b,
                         int B, int C, int OC) {
    dense_forward(out, inp, w, false, b, B, C, OC);
}

void cb_nn_dense_forward_t(float *out, const float *inp, const float *wt, const float *b, int B, int C, int OC) {
    dense_forward(out, inp, wt, true, b, B, C, OC);
}

void cb_nn_dense_forward_naive(float *out, const float *inp, const float *w, const float *b,
                               int B, int C, int OC) {
    for (int r = 0; r < B; r++) {
        for (int o = 0; o < OC; o++) {
            double acc = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++) acc += (double)inp[(size_t)r * C + c] * w[(size_t)o * C + c];
            out[(size_t)r * OC + o] = (float)acc;
        }
    }
}

/* db[o] += the B rows' dout[., o], each column summed row after row (the
 * bits of the plain loop): 16 columns at a time held in registers, so db is
 * read and written once, not once a row (the compiler cannot keep it in
 * registers: db and dout might overlap). */
static void column_sums_add(float *db, const float *dout, int B, int OC) {
    int o = 0;
#if defined(__SSE2__)
    for (; o + 16 <= OC; o += 16) {
        __m128 a0 = _mm_loadu_ps(db + o), a1 = _mm_loadu_ps(db + o + 4), a2 = _mm_loadu_ps(db + o + 8),
               a3 = _mm_loadu_ps(db + o + 12);
        for (int r = 0; r < B; r++) {
            const float *row = dout + (size_t)r * OC + o;
            a0 = _mm_add_ps(a0, _mm_loadu_ps(row)), a1 = _mm_add_ps(a1, _mm_loadu_ps(row + 4));
            a2 = _mm_add_ps(a2, _mm_loadu_ps(row + 8)), a3 = _mm_add_ps(a3, _mm_loadu_ps(row + 12));
        }
        _mm_storeu_ps(db + o, a0), _mm_storeu_ps(db + o + 4, a1);
        _mm_storeu_ps(db + o + 8, a2), _mm_storeu_ps(db + o + 12, a3);
    }
#endif
    for (; o < OC; o++) {
        float acc = db[o];
        for (int r = 0; r < B; r++) acc += dout[(size_t)r * OC + o];
        db[o] = acc;
    }
}

void cb_nn_dense_backward(float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, int B, int C, int OC) {
    if (B <= 0) return;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC, 1.0f, dout, OC, w, C,
                    1.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f,
                dw, C);
    if (db) column_sums_add(db, dout, B, OC);
}

void cb_nn_bias_backward(float *db, const float *dout, int B, int OC) {
    if (B > 0) column_sums_add(db, dout, B, OC);
}

void cb_nn_dense_backward_wt(float *dwt, float *db, const float *dout, const float *inp, int B, int C, int OC) {
    if (B <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, B, 1.0f, inp, C, dout, OC, 1.0f, dwt, OC);
    if (db) column_sums_add(db, dout, B, OC);
}

void cb_nn_dense_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, int B, int C, int OC) {
    if (dinp) {
        for (int r = 0; r < B; r++)
            for (int c = 0; c < C; c++) {
                double acc = 0.0;
                for (int o = 0; o < OC; o++)
                    acc += (double)dout[(size_t)r * OC + o] * w[(size_t)o * C + c];
                dinp[(size_t)r * C + c] += (float)acc;
            }
    }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int r = 0; r < B; r++)
                acc += (double)dout[(size_t)r * OC + o] * inp[(size_t)r * C + c];
            dw[(size_t)o * C + c] += (float)acc;
        }
    if (db)
        for (int o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int r = 0; r < B; r++) acc += dout[(size_t)r * OC + o];
            db[o] += (float)acc;
        }
}

/* ---- ReLU */

/* Branch-free: half the units of a ReLU layer are active, so a branch per
 * element would mispredict half the time. `x > 0 ? x : 0` maps NaN to 0 in
 * both the SIMD and the scalar tail. */
void cb_nn_relu_forward(float *out, const float *inp, size_t n) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 x = _mm_loadu_ps(inp + i);
        _mm_storeu_ps(out + i, _mm_and_ps(x, _mm_cmpgt_ps(x, zero)));
    }
#endif
    for (; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void cb_nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 mask = _mm_cmpgt_ps(_mm_loadu_ps(out + i), zero);
        __m128 d = _mm_and_ps(_mm_loadu_ps(dout + i), mask);
        _mm_storeu_ps(dinp + i, _mm_add_ps(_mm_loadu_ps(dinp + i), d));
    }
#endif
    for (; i < n; i++) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void cb_nn_relu_backward_inplace(float *d, const float *out, size_t n) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 mask = _mm_cmpgt_ps(_mm_loadu_ps(out + i), zero);
        _mm_storeu_ps(d + i, _mm_and_ps(_mm_loadu_ps(d + i), mask));
    }
#endif
    for (; i < n; i++) d[i] = out[i] > 0.0f ? d[i] : 0.0f;
}

/* ---- l2-normalise */

void cb_nn_l2norm_forward(float *out, float *norm, const float *inp, int B, int D, float eps) {
    for (int r = 0; r < B; r++) {
        const float *x = inp + (size_t)r * D;
        float *y = out + (size_t)r * D;
        float ss = 0.0f;
        for (int d = 0; d < D; d++) ss += x[d] * x[d];
        float n = sqrtf(ss);
        norm[r] = n;
        float inv = 1.0f / (n > eps ? n : eps);
        for (int d = 0; d < D; d++) y[d] = x[d] * inv;
    }
}

void cb_nn_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                           int B, int D, float eps) {
    for (int r = 0; r < B; r++) {
        const float *y = out + (size_t)r * D, *dy = dout + (size_t)r * D;
        float *dx = dinp + (size_t)r * D;
        if (norm[r] > eps) {
            // y = x/|x|: dx = (dy - y <y,dy>) / |x|
            float yd = 0.0f;
            for (int d = 0; d < D; d++) yd += y[d] * dy[d];
            float inv = 1.0f / norm[r];
            for (int d = 0; d < D; d++) dx[d] += (dy[d] - y[d] * yd) * inv;
        } else {
            // the clamp is active: y = x/eps is linear in x
            for (int d = 0; d < D; d++) dx[d] += dy[d] / eps;
        }
    }
}

/* ---- row-wise dot */

void cb_nn_rowdot_forward(float *out, const float *a, const float *b, int B, int D) {
    for (int r = 0; r < B; r++) {
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += a[(size_t)r * D + d] * b[(size_t)r * D + d];
        out[r] = s;
    }
}

void cb_nn_rowdot_backward(float *da, float *db, const float *dout, const float *a,
                           const float *b, int B, int D) {
    for (int r = 0; r < B; r++) {
        float g = dout[r];
        if (da)
            for (int d = 0; d < D; d++) da[(size_t)r * D + d] += g * b[(size_t)r * D + d];
        if (db)
            for (int d = 0; d < D; d++) db[(size_t)r * D + d] += g * a[(size_t)r * D + d];
    }
}

/* ---- losses */

double cb_nn_mse_forward(const float *pred, const float *y, int B) {
    double s = 0.0;
    for (int r = 0; r < B; r++) {
        double e = (double)pred[r] - y[r];
        s += e * e;
    }
    return B > 0 ? s / B : 0.0;
}

void cb_nn_mse_backward(float *dpred, const float *pred, const float *y, int B) {
    float k = 2.0f / (float)B;
    for (int r = 0; r < B; r++) dpred[r] += k * (pred[r] - y[r]);
}

static double sigmoid_d(double z) {
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

double cb_nn_bce_forward(float *prob, const float *v, const float *y, float scale, float bias,
                         int B) {
    double s = 0.0;
    for (int r = 0; r < B; r++) {
        double z = (double)scale * v[r] + bias;
        s += (z > 0 ? z : 0.0) - z * y[r] + log1p(exp(-fabs(z)));
        if (prob) prob[r] = (float)sigmoid_d(z);
    }
    return B > 0 ? s / B : 0.0;
}

void cb_nn_bce_backward(float *dv, float *dscale, float *dbias, const float *v, const float *y,
                        float scale, float bias, int B) {
    double ds = 0.0, dc = 0.0;
    for (int r = 0; r < B; r++) {
        double z = (double)scale * v[r] + bias;
        double dz = (sigmoid_d(z) - y[r]) / B;
        if (dv) dv[r] += (float)(scale * dz);
        ds += dz * v[r];
        dc += dz;
    }
    if (dscale) *dscale += (float)ds;
    if (dbias) *dbias += (float)dc;
}

/* ---- exp in float
 * x = n·ln2 + r with |r| <= ln2/2 (n rounded by the 1.5·2^23 trick, ln2 in
 * two parts so n·ln2 is exact enough), e^r by Cephes' degree-6 polynomial,
 * 2^n built in the exponent bits. The clamp keeps n in [-127, 127]: 2^-127
 * is encoded as 0, so inputs below ~-87.3 (and -INFINITY) give 0. The clamp
 * is written `lo > x ? lo : x` (max_ps(lo, x)), which keeps a NaN. */
#define EXP_HI 88.3762626647949f
#define EXP_LO (-88.0f)
#define EXP_LOG2E 1.44269504088896341f
#define EXP_MAGIC 12582912.0f /* 1.5·2^23: adding it rounds to an integer in the low mantissa bits */
#define EXP_C1 0.693359375f
#define EXP_C2 (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static inline float exp_one(float x) {
    x = EXP_HI < x ? EXP_HI : x;
    x = EXP_LO > x ? EXP_LO : x;
    float t = x * EXP_LOG2E + EXP_MAGIC;
    float n = t - EXP_MAGIC;
    float r = x - n * EXP_C1;
    r = r - n * EXP_C2;
    float y = EXP_P0;
    y = y * r + EXP_P1;
    y = y * r + EXP_P2;
    y = y * r + EXP_P3;
    y = y * r + EXP_P4;
    y = y * r + EXP_P5;
    y = y * (r * r) + r + 1.0f;
    int32_t ti, mi;
    memcpy(&ti, &t, 4);
    float magic = EXP_MAGIC;
    memcpy(&mi, &magic, 4);
    int32_t bits = (int32_t)((uint32_t)(ti - mi + 127) << 23);
    float scale;
    memcpy(&scale, &bits, 4);
    return y * scale;
}

void cb_nn_exp(float *x, size_t n) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 hi = _mm_set1_ps(EXP_HI), lo = _mm_set1_ps(EXP_LO), log2e = _mm_set1_ps(EXP_LOG2E);
    const __m128 magic = _mm_set1_ps(EXP_MAGIC), c1 = _mm_set1_ps(EXP_C1), c2 = _mm_set1_ps(EXP_C2);
    const __m128 one = _mm_set1_ps(1.0f);
    const __m128i bias = _mm_set1_epi32(127), magic_i = _mm_castps_si128(magic);
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        v = _mm_min_ps(hi, v);
        v = _mm_max_ps(lo, v);
        __m128 t = _mm_add_ps(_mm_mul_ps(v, log2e), magic);
        __m128 k = _mm_sub_ps(t, magic);
        __m128 r = _mm_sub_ps(v, _mm_mul_ps(k, c1));
        r = _mm_sub_ps(r, _mm_mul_ps(k, c2));
        __m128 y = _mm_set1_ps(EXP_P0);
        y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(EXP_P1));
        y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(EXP_P2));
        y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(EXP_P3));
        y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(EXP_P4));
        y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(EXP_P5));
        y = _mm_add_ps(_mm_add_ps(_mm_mul_ps(y, _mm_mul_ps(r, r)), r), one);
        __m128i e = _mm_slli_epi32(_mm_add_epi32(_mm_sub_epi32(_mm_castps_si128(t), magic_i), bias), 23);
        _mm_storeu_ps(x + i, _mm_mul_ps(y, _mm_castsi128_ps(e)));
    }
#endif
    for (; i < n; i++) x[i] = exp_one(x[i]);
}

/* ---- sampled softmax cross-entropy */

/* Row i's logits z (N) -> w·softmax in place with left-out columns at 0;
 * returns w·(logsumexp - z_ii), in double from the double-precision
 * reference. */
static double softmax_row_naive(float *z, const cb_nn_softmax *s, int i) {
    const float *log_q = s->log_q;
    const uint32_t *ids = s->ids;
    double zmax = -INFINITY, wi = s->w ? s->w[i] : 1.0;
    for (int j = 0; j < s->N; j++) {
        if (log_q) z[j] -= log_q[j];
        if (ids && j != i && ids[j] == ids[i]) z[j] = -INFINITY;
        if (z[j] > zmax) zmax = z[j];
    }
    double zi = z[i], sum = 0.0;
    for (int j = 0; j < s->N; j++) sum += exp((double)z[j] - zmax);
    for (int j = 0; j < s->N; j++) z[j] = (float)(wi * exp((double)z[j] - zmax) / sum);
    return wi * (zmax + log(sum) - zi);
}

/* The same in float: plain loops gcc vectorises, cb_nn_exp, the sum of the
 * exponentials in double (N terms of float would lose ~N·eps). */
static double softmax_row(float *z, const cb_nn_softmax *s, int i) {
    const int N = s->N;
    if (s->log_q)
        for (int j = 0; j < N; j++) z[j] -= s->log_q[j];
    float zi = z[i];
    if (s->ids) {
        const uint32_t me = s->ids[i];
        for (int j = 0; j < N; j++) z[j] = s->ids[j] == me ? -INFINITY : z[j];
        z[i] = zi;
    }
    float zmax = zi;
    for (int j = 0; j < N; j++) zmax = z[j] > zmax ? z[j] : zmax;
    if (!isfinite(zmax)) { /* an overflowed logit: a non-finite loss stops training */
        for (int j = 0; j < N; j++) z[j] = NAN;
        return NAN;
    }
    for (int j = 0; j < N; j++) z[j] -= zmax;
    cb_nn_exp(z, (size_t)N);
    double part[4] = {0.0, 0.0, 0.0, 0.0}; /* four chains: the adds overlap */
    int col = 0;
    for (; col + 4 <= N; col += 4)
        for (int l = 0; l < 4; l++) part[l] += z[col + l];
    for (; col < N; col++) part[0] += z[col];
    double sum = (part[0] + part[1]) + (part[2] + part[3]);
    double wi = s->w ? s->w[i] : 1.0;
    float scale = (float)(wi / sum);
    for (int j = 0; j < N; j++) z[j] *= scale;
    return wi * ((double)zmax + log(sum) - zi);
}

double cb_nn_softmax_xent_forward(float *prob, const float *u, const float *v, const cb_nn_softmax *s, int row0,
                                  int rows) {
    // u (rows, ld), v (N, ld), prob (rows, N)
    if (rows <= 0) return 0.0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, s->N, s->D, s->inv_temp, u, s->ld, v, s->ld, 0.0f,
                prob, s->N);
    double loss = 0.0;
    for (int r = 0; r < rows; r++) loss += softmax_row(prob + (size_t)r * s->N, s, row0 + r);
    return loss / s->B;
}

double cb_nn_softmax_xent_forward_naive(float *prob, const float *u, const float *v, const cb_nn_softmax *s,
                                        int row0, int rows) {
    double loss = 0.0;
    for (int r = 0; r < rows; r++) {
        float *z = prob + (size_t)r * s->N;
        for (int j = 0; j < s->N; j++) {
            double acc = 0.0;
            for (int d = 0; d < s->D; d++) acc += (double)u[(size_t)r * s->ld + d] * v[(size_t)j * s->ld + d];
            z[j] = (float)(s->inv_temp * acc);
        }
        loss += softmax_row_naive(z, s, row0 + r);
    }
    return s->B > 0 ? loss / s->B : 0.0;
}

void cb_nn_softmax_xent_backward(float *du, float *dv, const float *prob, const float *u, const float *v,
                                 const cb_nn_softmax *s, int row0, int rows) {
    if (rows <= 0) return;
    const int N = s->N, D = s->D, ld = s->ld;
    float k = s->inv_temp / (float)s->B;
    /* g = (prob - diag(w))/B: the product with prob by sgemm, the diagonal part by hand */
    if (du) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, N, k, prob, N, v, ld, 1.0f, du, ld);
        for (int r = 0; r < rows; r++) {
            int i = row0 + r;
            float ki = s->w ? k * s->w[i] : k;
            for (int d = 0; d < D; d++) du[(size_t)r * ld + d] -= ki * v[(size_t)i * ld + d];
        }
    }
    if (dv) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, rows, k, prob, N, u, ld, 1.0f, dv, ld);
        for (int r = 0; r < rows; r++) {
            int i = row0 + r;
            float ki = s->w ? k * s->w[i] : k;
            for (int d = 0; d < D; d++) dv[(size_t)i * ld + d] -= ki * u[(size_t)r * ld + d];
        }
    }
}

void cb_nn_softmax_xent_backward_naive(float *du, float *dv, const float *prob, const float *u, const float *v,
                                       const cb_nn_softmax *s, int row0, int rows) {
    const int N = s->N, D = s->D, ld = s->ld;
    for (int r = 0; r < rows; r++) {
        int i = row0 + r;
        for (int j = 0; j < N; j++) {
            double g = ((double)prob[(size_t)r * N + j] - (i == j) * (s->w ? (double)s->w[i] : 1.0)) * s->inv_temp / s->B;
            for (int d = 0; d < D; d++) {
                if (du) du[(size_t)r * ld + d] += (float)(g * v[(size_t)j * ld + d]);
                if (dv) dv[(size_t)j * ld + d] += (float)(g * u[(size_t)r * ld + d]);
            }
        }
    }
}

void cb_nn_softmax_xent_backward_cols(float *dv, const float *prob, const float *u, const cb_nn_softmax *s, int col0,
                                      int ncols) {
    if (ncols <= 0) return;
    const int ld = s->ld;
    float k = s->inv_temp / (float)s->B;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ncols, s->D, s->B, k, prob + col0, s->N, u, ld, 1.0f, dv, ld);
    for (int j = col0; j < col0 + ncols && j < s->B; j++) { /* the diagonal: column j is row j's positive */
        float kj = s->w ? k * s->w[j] : k;
        for (int d = 0; d < s->D; d++) dv[(size_t)(j - col0) * ld + d] -= kj * u[(size_t)j * ld + d];
    }
}

void cb_nn_softmax_xent_backward_cols_naive(float *dv, const float *prob, const float *u, const cb_nn_softmax *s,
                                            int col0, int ncols) {
    const int ld = s->ld;
    for (int c = 0; c < ncols; c++) {
        int j = col0 + c;
        for (int d = 0; d < s->D; d++) {
            double acc = 0.0;
            for (int i = 0; i < s->B; i++)
                acc += ((double)prob[(size_t)i * s->N + j] - (i == j) * (s->w ? (double)s->w[i] : 1.0)) *
                       u[(size_t)i * ld + d];
            dv[(size_t)c * ld + d] += (float)(acc * s->inv_temp / s->B);
        }
    }
}

/* ---- optimisers
 * The SIMD and naive Adam perform the same IEEE operations in the same order
 * (no FMA contraction in ISO C mode, sqrt and division correctly rounded), so
 * they agree bit for bit. Scalars are derived in double, then rounded once. */

typedef struct adam_consts {
    float b1, omb1, b2, omb2, eps, step, bc2_sqrt, wd;
} adam_consts;

static adam_consts adam_prepare(const cb_nn_adam *h, uint64_t t) {
    adam_consts k;
    double bc1 = 1.0 - pow((double)h->beta1, (double)t);
    double bc2 = 1.0 - pow((double)h->beta2, (double)t);
    k.b1 = h->beta1;
    k.omb1 = 1.0f - h->beta1;
    k.b2 = h->beta2;
    k.omb2 = 1.0f - h->beta2;
    k.eps = h->eps;
    k.step = (float)((double)h->lr / bc1);
    k.bc2_sqrt = (float)sqrt(bc2);
    k.wd = h->weight_decay;
    return k;
}

static inline void adam_one(float *p, float g, float *m, float *v, const adam_consts *k) {
    float mi = k->b1 * *m + k->omb1 * g;
    float vi = k->b2 * *v + k->omb2 * (g * g);
    *m = mi;
    *v = vi;
    float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
    *p = *p - k->step * (mi / denom);
}

void cb_nn_adam_update_naive(float *p, const float *g, float *m, float *v, size_t n,
                             size_t n_decay, const cb_nn_adam *h, uint64_t t) {
    adam_consts k = adam_prepare(h, t);
    for (size_t i = 0; i < n; i++) {
        float gi = i < n_decay ? g[i] + k.wd * p[i] : g[i];
        adam_one(&p[i], gi, &m[i], &v[i], &k);
    }
}

#if defined(__SSE2__)
static void adam_sse(float *p, const float *g, float *m, float *v, size_t n, float wd,
                     const adam_consts *k) {
    const __m128 b1 = _mm_set1_ps(k->b1), omb1 = _mm_set1_ps(k->omb1);
    const __m128 b2 = _mm_set1_ps(k->b2), omb2 = _mm_set1_ps(k->omb2);
    const __m128 eps = _mm_set1_ps(k->eps), step = _mm_set1_ps(k->step);
    const __m128 bc2 = _mm_set1_ps(k->bc2_sqrt), vwd = _mm_set1_ps(wd);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128 pi = _mm_loadu_ps(p + i), gi = _mm_loadu_ps(g + i);
        if (wd != 0.0f) gi = _mm_add_ps(gi, _mm_mul_ps(vwd, pi));
        __m128 mi = _mm_add_ps(_mm_mul_ps(b1, _mm_loadu_ps(m + i)), _mm_mul_ps(omb1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(b2, _mm_loadu_ps(v + i)),
                               _mm_mul_ps(omb2, _mm_mul_ps(gi, gi)));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), bc2), eps);
        _mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_mul_ps(step, _mm_div_ps(mi, denom))));
    }
    for (; i < n; i++) adam_one(&p[i], wd != 0.0f ? g[i] + wd * p[i] : g[i], &m[i], &v[i], k);
}
#endif

#if CB_X86_SIMD
/* adam_sse 8 wide: the same operations (no FMA), so the same bits. */
CB_TARGET_AVX2 static void adam_avx2(float *p, const float *g, float *m, float *v, size_t n, float wd,
                                     const adam_consts *k) {
    const __m256 b1 = _mm256_set1_ps(k->b1), omb1 = _mm256_set1_ps(k->omb1);
    const __m256 b2 = _mm256_set1_ps(k->b2), omb2 = _mm256_set1_ps(k->omb2);
    const __m256 eps = _mm256_set1_ps(k->eps), step = _mm256_set1_ps(k->step);
    const __m256 bc2 = _mm256_set1_ps(k->bc2_sqrt), vwd = _mm256_set1_ps(wd);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pi = _mm256_loadu_ps(p + i), gi = _mm256_loadu_ps(g + i);
        if (wd != 0.0f) gi = _mm256_add_ps(gi, _mm256_mul_ps(vwd, pi));
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(omb1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(omb2, _mm256_mul_ps(gi, gi)));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, _mm256_mul_ps(step, _mm256_div_ps(mi, denom))));
    }
    adam_sse(p + i, g + i, m + i, v + i, n - i, wd, k);
}
#endif

void cb_nn_adam_update(float *p, const float *g, float *m, float *v, size_t n, size_t n_decay,
                       const cb_nn_adam *h, uint64_t t) {
#if defined(__SSE2__)
    adam_consts k = adam_prepare(h, t);
#if CB_X86_SIMD
    if (cb_cpu_avx2()) {
        adam_avx2(p, g, m, v, n_decay, k.wd, &k);
        adam_avx2(p + n_decay, g + n_decay, m + n_decay, v + n_decay, n - n_decay, 0.0f, &k);
        return;
    }
#endif
    adam_sse(p, g, m, v, n_decay, k.wd, &k);
    adam_sse(p + n_decay, g + n_decay, m + n_decay, v + n_decay, n - n_decay, 0.0f, &k);
#else
    cb_nn_adam_update_naive(p, g, m, v, n, n_decay, h, t);
#endif
}

void cb_nn_sgd_update(float *p, const float *g, size_t n, size_t n_decay, float lr,
                      float weight_decay) {
    for (size_t i = 0; i < n; i++) {
        float gi = i < n_decay ? g[i] + weight_decay * p[i] : g[i];
        p[i] -= lr * gi;
    }
}

/* ---- initialisers */

static void init_uniform(float *w, size_t n, double limit, cb_rng *rng) {
    for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * cb_rng_uniform(rng) - 1.0) * limit);
}

void cb_nn_init_he(float *w, size_t n, int fan_in, cb_rng *rng) {
    init_uniform(w, n, sqrt(6.0 / (fan_in > 0 ? fan_in : 1)), rng);
}

void cb_nn_init_glorot(float *w, size_t n, int fan_in, int fan_out, cb_rng *rng) {
    int fans = fan_in + fan_out;
    init_uniform(w, n, sqrt(6.0 / (fans > 0 ? fans : 1)), rng);
}

int cb_nn_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}
