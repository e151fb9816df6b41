/* nn_sparse — a dense layer over mostly-zero input rows; see nn_sparse.h.
 * Every product is an axpy of a contiguous OC-wide row: forward adds a row
 * of wt into the example's output row (L1-resident), backward adds the
 * example's dout row into a row of dwt. An earlier version walked the ones
 * per output unit, gathering from rows of w (C apart) in scalar code, and
 * measured 0.28-0.36x the speed of densify + sgemm (bench_sparse); 8-wide
 * FMA over contiguous rows is what makes the sparse layer pay. */
#include "model/nn_sparse.h"

#include "base/util.h"

#include <cblas.h>
#include <string.h>
#if CB_X86_SIMD || defined(__SSSE3__)
#include <immintrin.h>
#endif

#define TILE 16 /* transposes go by TILE x TILE blocks */

#if defined(__SSSE3__) && defined(__POPCNT__)
/* For the mask of the non-zero lanes of 4 floats: the byte shuffle that
 * packs those lanes first, in order (-1: a byte zeroed). */
static const int8_t PACK[16][16] = {
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, {0, 1, 2, 3, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
    {4, 5, 6, 7, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, {0, 1, 2, 3, 4, 5, 6, 7, -1, -1, -1, -1, -1, -1, -1, -1},
    {8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, {0, 1, 2, 3, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1},
    {4, 5, 6, 7, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -1, -1, -1, -1},
    {12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, {0, 1, 2, 3, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1},
    {4, 5, 6, 7, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1}, {0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, -1, -1, -1, -1},
    {8, 9, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1}, {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1},
    {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
#endif

/* row's non-zeros in columns [c0, C) (NaN included, -0 not) as (column,
 * value) pairs at col, val + n, which have room for C - c0 + 4 (whole
 * vectors are stored); returns the new n. Branch-free: ~13 % non-zero is
 * unpredictable. */
static size_t list_row(uint32_t *col, float *val, size_t n, const float *row, int c0, int C) {
    int c = c0;
#if defined(__SSSE3__) && defined(__POPCNT__)
    __m128i idx = _mm_setr_epi32(c0, c0 + 1, c0 + 2, c0 + 3);
    for (; c + 4 <= C; c += 4, idx = _mm_add_epi32(idx, _mm_set1_epi32(4))) {
        __m128 v = _mm_loadu_ps(row + c);
        int mask = _mm_movemask_ps(_mm_cmpneq_ps(v, _mm_setzero_ps()));
        __m128i pack = _mm_loadu_si128((const __m128i *)PACK[mask]);
        _mm_storeu_ps(val + n, _mm_castsi128_ps(_mm_shuffle_epi8(_mm_castps_si128(v), pack)));
        _mm_storeu_si128((__m128i *)(col + n), _mm_shuffle_epi8(idx, pack));
        n += (size_t)__builtin_popcount((unsigned)mask);
    }
#endif
    for (; c < C; c++) {
        col[n] = (uint32_t)c;
        val[n] = row[c];
        n += row[c] != 0.0f;
    }
    return n;
}

int cb_nn_csr_from_dense(cb_nn_csr *s, const float *x, int B, int C) { return cb_nn_csr_from_dense_tail(s, x, B, C, 0); }

int cb_nn_csr_from_dense_tail(cb_nn_csr *s, const float *x, int B, int C, int c0) {
    size_t n = 0;
    s->off[0] = 0;
    for (int r = 0; r < B; r++) {
        const float *row = x + (size_t)r * C;
        if (s->cap - n >= (size_t)(C - c0) + 4) /* room for the whole row */
            n = list_row(s->col, s->val, n, row, c0, C);
        else
            for (int c = c0; c < C; c++) {
                if (row[c] == 0.0f) continue;
                if (n == s->cap) return -1;
                s->col[n] = (uint32_t)c;
                s->val[n++] = row[c];
            }
        s->off[r + 1] = (uint32_t)n;
    }
    return 0;
}

/* dst (cols,rows) = the rows [r0, r1) of src (rows,cols) transposed, or
 * with `add` dst += them and src zeroed as it is read. */
static void transpose(float *dst, float *src, int rows, int cols, int r0, int r1, bool add) {
    for (int i0 = r0; i0 < r1; i0 += TILE)
        for (int j0 = 0; j0 < cols; j0 += TILE) {
            int i1 = i0 + TILE < r1 ? i0 + TILE : r1, j1 = j0 + TILE < cols ? j0 + TILE : cols;
            for (int j = j0; j < j1; j++) {
                float *d = dst + (size_t)j * rows;
                const float *sp = src + j;
                if (add)
                    for (int i = i0; i < i1; i++) d[i] += sp[(size_t)i * cols], src[(size_t)i * cols + j] = 0.0f;
                else
                    for (int i = i0; i < i1; i++) d[i] = sp[(size_t)i * cols];
            }
        }
}

void cb_nn_transpose(float *wt, const float *w, int OC, int C) { transpose(wt, (float *)w, OC, C, 0, OC, false); }

void cb_nn_transpose_rows(float *dst, const float *src, int rows, int cols, int r0, int r1) {
    transpose(dst, (float *)src, rows, cols, r0, r1, false);
}


/* y[0..n) += a · x[0..n) */
static void axpy_plain(float *y, float a, const float *x, int n) {
    for (int k = 0; k < n; k++) y[k] += a * x[k];
}

static void forward(float *out, const cb_nn_csr *s, const float *wt, const float *b, int B, int OC) {
    for (int r = 0; r < B; r++) {
        float *o = out + (size_t)r * OC;
        if (b) memcpy(o, b, (size_t)OC * sizeof *o);
        else memset(o, 0, (size_t)OC * sizeof *o);
        for (uint32_t j = s->off[r]; j < s->off[r + 1]; j++) axpy_plain(o, s->val[j], wt + (size_t)s->col[j] * OC, OC);
    }
}

/* dwt[col] += val · dout[r] over the non-zeros, db += column sums of dout. */
static void scatter(float *dwt, float *db, const float *dout, const cb_nn_csr *s, int B, int OC) {
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t)r * OC;
        if (db)
            for (int o = 0; o < OC; o++) db[o] += d[o];
        for (uint32_t j = s->off[r]; j < s->off[r + 1]; j++) axpy_plain(dwt + (size_t)s->col[j] * OC, s->val[j], d, OC);
    }
}

#if CB_X86_SIMD
/* The AVX2 kernels go by blocks of 64 output columns (8 registers): wt's or
 * dwt's block (C x 256 B, ~270 KB at the default shape) stays in L2 while
 * every row of the batch passes; the forward sums stay in registers. Output
 * columns past the last full block go 8 at a time, then one at a time. */
#define NV 8
#define UNROLL _Pragma("GCC unroll 8") /* so acc[] / d[] live in registers */

CB_TARGET_AVX2 static void forward_avx2(float *out, const cb_nn_csr *s, const float *wt, const float *b, int B,
                                        int OC) {
    const uint32_t *off = s->off, *col = s->col; /* locals: the stores could alias *s */
    const float *val = s->val;
    int k0 = 0;
    for (; k0 + 8 * NV <= OC; k0 += 8 * NV)
        for (int r = 0; r < B; r++) {
            __m256 acc[NV];
            UNROLL for (int i = 0; i < NV; i++) acc[i] = b ? _mm256_loadu_ps(b + k0 + 8 * i) : _mm256_setzero_ps();
            for (uint32_t j = off[r]; j < off[r + 1]; j++) {
                const float *w = wt + (size_t)col[j] * OC + k0;
                __m256 v = _mm256_set1_ps(val[j]);
                UNROLL for (int i = 0; i < NV; i++) acc[i] = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + 8 * i), acc[i]);
            }
            UNROLL for (int i = 0; i < NV; i++) _mm256_storeu_ps(out + (size_t)r * OC + k0 + 8 * i, acc[i]);
        }
    for (; k0 + 8 <= OC; k0 += 8)
        for (int r = 0; r < B; r++) {
            __m256 acc = b ? _mm256_loadu_ps(b + k0) : _mm256_setzero_ps();
            for (uint32_t j = off[r]; j < off[r + 1]; j++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(val[j]), _mm256_loadu_ps(wt + (size_t)col[j] * OC + k0), acc);
            _mm256_storeu_ps(out + (size_t)r * OC + k0, acc);
        }
    for (; k0 < OC; k0++)
        for (int r = 0; r < B; r++) {
            float acc = b ? b[k0] : 0.0f;
            for (uint32_t j = off[r]; j < off[r + 1]; j++) acc += val[j] * wt[(size_t)col[j] * OC + k0];
            out[(size_t)r * OC + k0] = acc;
        }
}

CB_TARGET_AVX2 static void scatter_avx2(float *dwt, float *db, const float *dout, const cb_nn_csr *s, int B, int OC) {
    const uint32_t *off = s->off, *col = s->col;
    const float *val = s->val;
    int k0 = 0;
    for (; k0 + 8 * NV <= OC; k0 += 8 * NV)
        for (int r = 0; r < B; r++) {
            __m256 d[NV];
            UNROLL for (int i = 0; i < NV; i++) d[i] = _mm256_loadu_ps(dout + (size_t)r * OC + k0 + 8 * i);
            for (uint32_t j = off[r]; j < off[r + 1]; j++) {
                float *g = dwt + (size_t)col[j] * OC + k0;
                __m256 v = _mm256_set1_ps(val[j]);
                UNROLL for (int i = 0; i < NV; i++) _mm256_storeu_ps(g + 8 * i, _mm256_fmadd_ps(v, d[i], _mm256_loadu_ps(g + 8 * i)));
            }
        }
    for (; k0 + 8 <= OC; k0 += 8)
        for (int r = 0; r < B; r++) {
            __m256 d = _mm256_loadu_ps(dout + (size_t)r * OC + k0);
            for (uint32_t j = off[r]; j < off[r + 1]; j++) {
                float *g = dwt + (size_t)col[j] * OC + k0;
                _mm256_storeu_ps(g, _mm256_fmadd_ps(_mm256_set1_ps(val[j]), d, _mm256_loadu_ps(g)));
            }
        }
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t)r * OC;
        if (db)
            for (int o = 0; o < OC; o++) db[o] += d[o];
        for (uint32_t j = off[r]; j < off[r + 1]; j++)
            for (int o = k0; o < OC; o++) dwt[(size_t)col[j] * OC + o] += val[j] * d[o];
    }
}
#endif

void cb_nn_sparse_forward(float *out, const cb_nn_csr *s, const float *wt, const float *b, int B, int OC) {
#if CB_X86_SIMD
    if (cb_cpu_avx2()) return forward_avx2(out, s, wt, b, B, OC);
#endif
    forward(out, s, wt, b, B, OC);
}

void cb_nn_sparse_forward_naive(float *out, const cb_nn_csr *s, const float *wt, const float *b, int B, int OC) {
    forward(out, s, wt, b, B, OC);
}

void cb_nn_sparse_backward(float *dw, float *db, float *dwt, const float *dout, const cb_nn_csr *s, int B, int C,
                           int OC) {
#if CB_X86_SIMD
    if (cb_cpu_avx2()) scatter_avx2(dwt, db, dout, s, B, OC);
    else
#endif
        scatter(dwt, db, dout, s, B, OC);
    transpose(dw, dwt, C, OC, 0, C, true);
}

/* cols = s's non-zeros listed by column, (row, value) pairs, rows ascending. */
static void by_columns(cb_nn_csr *cols, const cb_nn_csr *s, int B, int C) {
    uint32_t *off = cols->off, n = s->off[B];
    memset(off, 0, ((size_t)C + 1) * sizeof *off);
    for (uint32_t j = 0; j < n; j++) off[s->col[j] + 1]++;
    for (int c = 0; c < C; c++) off[c + 1] += off[c];
    for (int r = 0; r < B; r++) /* off[c] runs ahead as column c fills, then is shifted back */
        for (uint32_t j = s->off[r]; j < s->off[r + 1]; j++) {
            uint32_t k = off[s->col[j]]++;
            cols->col[k] = (uint32_t)r;
            cols->val[k] = s->val[j];
        }
    memmove(off + 1, off, (size_t)C * sizeof *off);
    off[0] = 0;
}

void cb_nn_sparse_backward_cols(float *dwt, float *db, cb_nn_csr *cols, const float *dout, const cb_nn_csr *s, int B,
                                int C, int OC) {
    cb_nn_sparse_backward_start(db, cols, dout, s, B, C, OC);
    cb_nn_grad_part whole = {.cols = cols, .dout = dout}; /* one part: its sum stored as it is */
    cb_nn_sparse_grad_rows(dwt, &whole, 1, 0, C, OC);
}

void cb_nn_sparse_backward_naive(float *dw, float *db, float *dwt, const float *dout, const cb_nn_csr *s, int B,
                                 int C, int OC) {
    scatter(dwt, db, dout, s, B, OC);
    transpose(dw, dwt, C, OC, 0, C, true);
}

void cb_nn_sparse_backward_start(float *db, cb_nn_csr *cols, const float *dout, const cb_nn_csr *s, int B, int C,
                                 int OC) {
    by_columns(cols, s, B, C);
    for (int r = 0; db && r < B; r++)
        for (int o = 0; o < OC; o++) db[o] += dout[(size_t)r * OC + o];
}

#if CB_X86_SIMD
/* Row c, columns [k0, k0 + 8 * W) of the parts' sum: each part's sum in
 * registers from zero (a sparse part's FMAs in its order, as
 * cb_nn_sparse_backward_cols), the first stored, the next ones added to it
 * in part order, as summing each part's own dwt would. W is a constant at
 * each call (always inlined), so acc[] lives in registers. */
CB_TARGET_AVX2 static inline __attribute__((always_inline)) void
grad_row(float *out, const cb_nn_grad_part *parts, int n_parts, int c, int k0, int OC, const int W, bool add) {
    for (int p = 0; p < n_parts; p++) {
        __m256 acc[NV];
        UNROLL for (int i = 0; i < W; i++) acc[i] = _mm256_setzero_ps();
        const cb_nn_csr *cs = c >= parts[p].head ? parts[p].cols : NULL;
        if (cs) {
            const uint32_t *row = cs->col;
            const float *val = cs->val, *dout = parts[p].dout;
            for (uint32_t j = cs->off[c]; j < cs->off[c + 1]; j++) {
                const float *d = dout + (size_t)row[j] * OC + k0;
                __m256 v = _mm256_set1_ps(val[j]);
                UNROLL for (int i = 0; i < W; i++) acc[i] = _mm256_fmadd_ps(v, _mm256_loadu_ps(d + 8 * i), acc[i]);
            }
        }
        UNROLL for (int i = 0; i < W; i++)
            _mm256_storeu_ps(out + 8 * i, p || add ? _mm256_add_ps(_mm256_loadu_ps(out + 8 * i), acc[i]) : acc[i]);
    }
}

CB_TARGET_AVX2 static void grad_row_block(float *out, const cb_nn_grad_part *parts, int n_parts, int c, int k0, int OC,
                                          bool add) {
    grad_row(out, parts, n_parts, c, k0, OC, NV, add);
}

CB_TARGET_AVX2 static void grad_row_vec(float *out, const cb_nn_grad_part *parts, int n_parts, int c, int k0, int OC,
                                        bool add) {
    grad_row(out, parts, n_parts, c, k0, OC, 1, add);
}
#endif

/* The same for columns [k0, k1) in plain loops (a sparse part's sum as the
 * row scatter's: its rows in order). */
static void grad_row_plain(float *out, cb_nn_grad_part *parts, int n_parts, int c, int k0, int k1, int OC, bool add) {
    float part[64];
    for (int p = 0; p < n_parts; p++)
        for (int a = k0; a < k1; a += 64) {
            int n = k1 - a < 64 ? k1 - a : 64;
            memset(part, 0, (size_t)n * sizeof *part);
            const cb_nn_csr *cs = c >= parts[p].head ? parts[p].cols : NULL;
            if (cs) {
                for (uint32_t j = cs->off[c]; j < cs->off[c + 1]; j++)
                    axpy_plain(part, cs->val[j], parts[p].dout + (size_t)cs->col[j] * OC + a, n);
            }
            float *o = out + (a - k0);
            for (int k = 0; k < n; k++) o[k] = p || add ? o[k] + part[k] : part[k];
        }
}

/* Rows [c0, c1) of parts' sum (no dense part among them), stored, or with
 * `add` added to what dwt holds. */
static void grad_rows(float *dwt, cb_nn_grad_part *parts, int n_parts, int c0, int c1, int OC, bool add) {
    int k0 = 0;
#if CB_X86_SIMD
    if (cb_cpu_avx2()) { /* forward_avx2's blocks: 64 columns, then 8, then one at a time */
        for (; k0 + 8 * NV <= OC; k0 += 8 * NV)
            for (int c = c0; c < c1; c++) grad_row_block(dwt + (size_t)c * OC + k0, parts, n_parts, c, k0, OC, add);
        for (; k0 + 8 <= OC; k0 += 8)
            for (int c = c0; c < c1; c++) grad_row_vec(dwt + (size_t)c * OC + k0, parts, n_parts, c, k0, OC, add);
        for (; k0 < OC; k0++)
            for (int c = c0; c < c1; c++)
                grad_row_plain(dwt + (size_t)c * OC + k0, parts, n_parts, c, k0, k0 + 1, OC, add);
        return;
    }
#endif
    for (int c = c0; c < c1; c++) grad_row_plain(dwt + (size_t)c * OC, parts, n_parts, c, 0, OC, OC, add);
}

/* Rows [a, b) of part q's sum by sgemm from its input rows, stored (p 0)
 * or added (C += the product). */
static void dense_rows(float *dwt, const cb_nn_grad_part *q, bool add, int a, int b, int OC) {
    if (a >= b) return;
    if (q->rows > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b - a, OC, q->rows, 1.0f, q->x + a, q->ldx, q->dout, OC,
                    add ? 1.0f : 0.0f, dwt + (size_t)a * OC, OC);
    else if (!add)
        memset(dwt + (size_t)a * OC, 0, (size_t)(b - a) * OC * sizeof *dwt);
}

void cb_nn_sparse_grad_rows(float *dwt, cb_nn_grad_part *parts, int n_parts, int c0, int c1, int OC) {
    bool dense = false;
    for (int p = 0; p < n_parts; p++) dense |= parts[p].x && c0 < (parts[p].cols ? parts[p].head : c1);
    if (!dense) { /* every part's rows here are non-zeros: all parts at once, a row's block in registers */
        grad_rows(dwt, parts, n_parts, c0, c1, OC, false);
        return;
    }
    for (int p = 0; p < n_parts; p++) { /* part after part, each added to the sum so far */
        const cb_nn_grad_part *q = &parts[p];
        int cut = !q->x ? c0 : q->cols ? (q->head < c1 ? (q->head > c0 ? q->head : c0) : c1) : c1;
        dense_rows(dwt, q, p > 0, c0, cut, OC);
        if (q->cols || !q->x) grad_rows(dwt, parts + p, 1, cut, c1, OC, p > 0);
    }
}
