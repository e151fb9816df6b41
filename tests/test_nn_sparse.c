/* Tests of the sparse first layer (model/nn_sparse.h) and of cb_rows
 * (base/rows.h): on random rows with a dense head and a 0/1 tail, the sparse
 * forward (AVX2 where the CPU has it, and the plain loops) gives the dense
 * layer's outputs, and the sparse backward its weight and bias gradients
 * (added into what was there), within float tolerance, leaving its scratch
 * zeroed, and by columns the row scatter's bits, also when split in two
 * halves over three workers' rows (cb_nn_sparse_grad_rows: the bits of the
 * workers' own gradients summed in order); the non-zero list holds
 * exactly a plain loop's non-zeros (NaN in, -0 out), and a batch with more
 * than the list holds is refused;
 * training with the sparse first layer gives the dense layer's model within
 * float tolerance, by another path (not the same bits); the user table as
 * rows equals the dense table; a dense head taken by sgemm beside the
 * listed tail gives the same layer, and split over workers the bits of
 * their own gradients summed in order. */
#include "testutil.h"
#include "features/featurize.h"
#include "model/model.h"
#include "model/nn.h"
#include "model/nn_sparse.h"
#include "base/threads.h"

#include <cblas.h>
#include <math.h>

static void assert_close(const float *a, const float *b, size_t n, double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double tol = atol + rtol * fmax(fabs(a[i]), fabs(b[i]));
        if (fabs((double)a[i] - b[i]) > tol) fail_msg("element %zu: %.9g vs %.9g (tol %.3g)", i, a[i], b[i], tol);
    }
}

static float *randn(size_t n, cb_rng *rng, double scale) {
    float *x = malloc((n + 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * cb_rng_normal(rng));
    return x;
}

/* The gradient in two halves (cb_nn_sparse_backward_start on three workers'
 * consecutive rows, cb_nn_sparse_grad_rows on two ranges of dwt's rows):
 * the bits of the workers' own gradients by columns summed in worker order
 * (what the reduction of their buffers gave), the whole batch's (want,
 * want_db) within tolerance; with the middle worker's part given as its
 * input rows (a dense batch), the bits of adding its own dwt made by sgemm. */
static void check_split(const float *x, int B, int C, int OC, const float *dout, const float *want,
                        const float *want_db) {
    enum { P = 3 };
    cb_nn_csr s[P], cols[P];
    cb_nn_grad_part parts[P];
    size_t n_w = (size_t)OC * C;
    float *dwt = calloc(n_w + 1, sizeof *dwt), *db = calloc((size_t)OC + 1, sizeof *db);
    float *own = calloc(n_w + 1, sizeof *own), *ref = calloc(n_w + 1, sizeof *ref);
    float *scratch = calloc((size_t)OC + 1, sizeof *scratch), *own1 = calloc(n_w + 1, sizeof *own1);
    for (int p = 0; p < P; p++) {
        int lo = B * p / P, hi = B * (p + 1) / P, n = hi - lo;
        size_t cap = (size_t)n * C + 4;
        s[p] = (cb_nn_csr){malloc(((size_t)n + 1) * sizeof(uint32_t)), malloc(cap * sizeof(uint32_t)),
                           malloc(cap * sizeof(float)), cap};
        cols[p] = (cb_nn_csr){malloc(((size_t)C + 1) * sizeof(uint32_t)), malloc(cap * sizeof(uint32_t)),
                              malloc(cap * sizeof(float)), cap};
        assert_int_equal(cb_nn_csr_from_dense(&s[p], x + (size_t)lo * C, n, C), 0);
        /* the reference: the worker's own dwt, summed in worker order */
        memset(own, 0, n_w * sizeof *own);
        cb_nn_sparse_backward_cols(own, scratch, &cols[p], dout + (size_t)lo * OC, &s[p], n, C, OC);
        for (size_t i = 0; i < n_w; i++) ref[i] = p ? ref[i] + own[i] : own[i];
        if (p == 1) /* the middle worker's dense batch: its own dwt by sgemm, into zeros */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, n, 1.0f, x + (size_t)lo * C, C,
                        dout + (size_t)lo * OC, OC, 0.0f, own1, OC);
        cb_nn_sparse_backward_start(db, &cols[p], dout + (size_t)lo * OC, &s[p], n, C, OC);
        parts[p] = (cb_nn_grad_part){.cols = &cols[p], .dout = dout + (size_t)lo * OC};
    }
    cb_nn_sparse_grad_rows(dwt, parts, P, 0, C / 2, OC);
    cb_nn_sparse_grad_rows(dwt, parts, P, C / 2, C, OC);
    assert_memory_equal(dwt, ref, n_w * sizeof *dwt);
    assert_close(dwt, want, n_w, 1e-5, 1e-5);
    assert_close(db, want_db, (size_t)OC, 1e-5, 1e-5);
    /* the middle worker's part as its dense input rows (a dense batch): the bits of adding its own dwt
     * made by sgemm, for calls cut at aligned rows */
    int lo1 = B / P, n1 = B * 2 / P - lo1;
    parts[1] = (cb_nn_grad_part){.x = x + (size_t)lo1 * C, .ldx = C, .rows = n1, .dout = dout + (size_t)lo1 * OC};
    for (int p = 0; p < P; p++) {
        int lo = B * p / P, hi = B * (p + 1) / P;
        memset(own, 0, n_w * sizeof *own);
        if (p == 1) memcpy(own, own1, n_w * sizeof *own);
        else cb_nn_sparse_backward_cols(own, NULL, &cols[p], dout + (size_t)lo * OC, &s[p], hi - lo, C, OC);
        for (size_t i = 0; i < n_w; i++) ref[i] = p ? ref[i] + own[i] : own[i];
    }
    memset(dwt, 0, n_w * sizeof *dwt);
    int cut1 = C / 3 - C / 3 % CB_NN_GRAD_ROWS_ALIGN, cut2 = 2 * C / 3 - 2 * C / 3 % CB_NN_GRAD_ROWS_ALIGN;
    cb_nn_sparse_grad_rows(dwt, parts, P, 0, cut1, OC); /* three workers' aligned cuts (at C 1052: 336, 672) */
    cb_nn_sparse_grad_rows(dwt, parts, P, cut1, cut2, OC);
    cb_nn_sparse_grad_rows(dwt, parts, P, cut2, C, OC);
    assert_memory_equal(dwt, ref, n_w * sizeof *dwt);
    assert_close(dwt, want, n_w, 1e-5, 1e-5);
    for (int p = 0; p < P; p++) free(s[p].off), free(s[p].col), free(s[p].val), free(cols[p].off), free(cols[p].col), free(cols[p].val);
    free(dwt), free(db), free(own), free(ref), free(scratch), free(own1);
}

/* A dense head of H columns taken by sgemm and only the tail listed
 * (cb_nn_csr_from_dense_tail, parts split at row `head`), as training does
 * for the rows form: the tail's non-zeros exactly, with their columns as in
 * the whole row; the forward and the transposed weight gradient the dense
 * layer's within tolerance (want_dwt: the whole batch's, transposed); split
 * over three workers' rows, the bits of each worker's own gradient (its
 * tail by columns, its head by sgemm) summed in worker order, with no
 * buffer of a worker's own (the head from its input rows). */
static void check_head(const float *x, int B, int C, int H, int OC, const float *wt, const float *b, const float *y_want,
                       const float *dout, const float *want_dwt) {
    enum { P = 3 };
    size_t n_w = (size_t)OC * C, cap = (size_t)B * C + 4;
    cb_nn_csr s = {malloc(((size_t)B + 1) * sizeof(uint32_t)), malloc(cap * sizeof(uint32_t)), malloc(cap * sizeof(float)), cap};
    assert_int_equal(cb_nn_csr_from_dense_tail(&s, x, B, C, H), 0);
    size_t n = 0;
    for (int r = 0; r < B; r++) {
        for (int c = H; c < C; c++) {
            if (x[(size_t)r * C + c] == 0.0f) continue;
            assert_int_equal(s.col[n], c);
            assert_true(s.val[n++] == x[(size_t)r * C + c]);
        }
        assert_int_equal(s.off[r + 1], n);
    }
    float *y = malloc((size_t)B * OC * sizeof *y);
    cb_nn_sparse_forward(y, &s, wt, b, B, OC);
    if (H) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, OC, H, 1.0f, x, C, wt, OC, 1.0f, y, OC);
    assert_close(y, y_want, (size_t)B * OC, 1e-5, 1e-5);
    float *ref = calloc(n_w + 1, sizeof *ref), *dwt = calloc(n_w + 1, sizeof *dwt), *own[P];
    cb_nn_csr ps[P], cols[P], lone = {malloc(((size_t)C + 1) * sizeof(uint32_t)), malloc(cap * sizeof(uint32_t)),
                                      malloc(cap * sizeof(float)), cap};
    cb_nn_grad_part parts[P];
    for (int p = 0; p < P; p++) {
        int lo = B * p / P, hi = B * (p + 1) / P, m = hi - lo;
        const float *xp = x + (size_t)lo * C, *dp = dout + (size_t)lo * OC;
        ps[p] = (cb_nn_csr){malloc(((size_t)m + 1) * sizeof(uint32_t)), malloc(cap * sizeof(uint32_t)), malloc(cap * sizeof(float)), cap};
        cols[p] = (cb_nn_csr){malloc(((size_t)C + 1) * sizeof(uint32_t)), malloc(cap * sizeof(uint32_t)), malloc(cap * sizeof(float)), cap};
        assert_int_equal(cb_nn_csr_from_dense_tail(&ps[p], xp, m, C, H), 0);
        /* the worker alone: its tail by columns, then its head, into zeros */
        own[p] = calloc(n_w + 1, sizeof *own[p]);
        cb_nn_sparse_backward_cols(own[p], NULL, &lone, dp, &ps[p], m, C, OC);
        if (H && m) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, OC, m, 1.0f, xp, C, dp, OC, 1.0f, own[p], OC);
        for (size_t i = 0; i < n_w; i++) ref[i] = p ? ref[i] + own[p][i] : own[p][i];
        /* the split: its tail left by columns, its head by its input rows (the reduction's sgemm) */
        cb_nn_sparse_backward_start(NULL, &cols[p], dp, &ps[p], m, C, OC);
        parts[p] = (cb_nn_grad_part){.cols = &cols[p], .dout = dp, .head = H, .x = H ? xp : NULL, .ldx = C, .rows = m};
    }
    assert_close(ref, want_dwt, n_w, 1e-5, 1e-5);
    int cut = C / 2 - C / 2 % CB_NN_GRAD_ROWS_ALIGN; /* a worker's cut: aligned */
    cb_nn_sparse_grad_rows(dwt, parts, P, 0, cut, OC);
    cb_nn_sparse_grad_rows(dwt, parts, P, cut, C, OC);
    assert_memory_equal(dwt, ref, n_w * sizeof *dwt);
    for (int p = 0; p < P; p++) free(ps[p].off), free(ps[p].col), free(ps[p].val), free(cols[p].off), free(cols[p].col), free(cols[p].val), free(own[p]);
    free(s.off), free(s.col), free(s.val), free(lone.off), free(lone.col), free(lone.val), free(y), free(ref), free(dwt);
}

/* The sparse layer (naive: the plain loops) against the dense one on x (B,C). */
static void check_layer(const float *x, int B, int C, int H, int OC, bool naive, cb_rng *rng) {
    cb_nn_csr s = {malloc(((size_t)B + 1) * sizeof(uint32_t)), malloc(((size_t)B * C + 1) * sizeof(uint32_t)),
                   malloc(((size_t)B * C + 1) * sizeof(float)), (size_t)B * C};
    assert_int_equal(cb_nn_csr_from_dense(&s, x, B, C), 0);
    float *w = randn((size_t)OC * C, rng, 0.1), *b = randn((size_t)OC, rng, 1), *dout = randn((size_t)B * OC, rng, 1);
    float *wt = malloc(((size_t)OC * C + 1) * sizeof *wt), *y1 = malloc((size_t)B * OC * sizeof *y1),
          *y2 = malloc((size_t)B * OC * sizeof *y2), *dwt = calloc((size_t)OC * C + 1, sizeof *dwt);
    cb_nn_transpose(wt, w, OC, C);
    cb_nn_dense_forward(y1, x, w, b, B, C, OC);
    (naive ? cb_nn_sparse_forward_naive : cb_nn_sparse_forward)(y2, &s, wt, b, B, OC);
    assert_close(y1, y2, (size_t)B * OC, 1e-5, 1e-5);
    /* gradients add into what is there */
    float *dw1 = randn((size_t)OC * C, rng, 1), *db1 = randn((size_t)OC, rng, 1);
    float *dw2 = malloc((size_t)OC * C * sizeof *dw2), *db2 = malloc((size_t)OC * sizeof *db2);
    memcpy(dw2, dw1, (size_t)OC * C * sizeof *dw2);
    memcpy(db2, db1, (size_t)OC * sizeof *db2);
    cb_nn_dense_backward(NULL, dw1, db1, dout, x, w, B, C, OC);
    (naive ? cb_nn_sparse_backward_naive : cb_nn_sparse_backward)(dw2, db2, dwt, dout, &s, B, C, OC);
    assert_close(dw1, dw2, (size_t)OC * C, 1e-5, 1e-5);
    assert_close(db1, db2, (size_t)OC, 1e-5, 1e-5);
    for (size_t i = 0; i < (size_t)OC * C; i++) assert_true(dwt[i] == 0.0f);
    /* by columns: the same bits, left transposed (dw3: what the row scatter folds into zeros) */
    cb_nn_csr cols = {malloc(((size_t)C + 1) * sizeof(uint32_t)), malloc(s.cap * sizeof(uint32_t)),
                      malloc(s.cap * sizeof(float)), s.cap};
    float *dw3 = calloc((size_t)OC * C, sizeof *dw3), *db3 = calloc((size_t)OC, sizeof *db3);
    float *db4 = calloc((size_t)OC, sizeof *db4), *dw4 = malloc((size_t)OC * C * sizeof *dw4);
    cb_nn_sparse_backward(dw3, db3, dwt, dout, &s, B, C, OC);
    cb_nn_sparse_backward_cols(dwt, db4, &cols, dout, &s, B, C, OC);
    cb_nn_transpose(dw4, dwt, C, OC);
    for (size_t i = 0; i < (size_t)OC * C; i++) assert_true(dw3[i] == dw4[i]);
    assert_memory_equal(db3, db4, (size_t)OC * sizeof *db3);
    check_split(x, B, C, OC, dout, dwt, db4);
    if (!naive) check_head(x, B, C, H, OC, wt, b, y1, dout, dwt);
    free(cols.off), free(cols.col), free(cols.val), free(dw3), free(db3), free(dw4), free(db4);
    free(s.off), free(s.col), free(s.val);
    free(w), free(b), free(dout), free(wt), free(y1), free(y2), free(dwt), free(dw1), free(db1), free(dw2), free(db2);
}

static void sparse_matches_dense(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 3);
    /* B, C, H, OC; the last two: the default user tower's shape at 20M ratings
     * (OC not a multiple of 32 or 8 in the others: the vector tails) */
    int shapes[][4] = {{1, 3, 0, 2}, {5, 9, 4, 7}, {17, 40, 40, 8}, {9, 300, 20, 45}, {64, 1052, 52, 256}};
    cb_blas_hold_one(); /* as training holds it: a threaded sgemm's bits may depend on its shape */
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        int B = shapes[sh][0], C = shapes[sh][1], H = shapes[sh][2], OC = shapes[sh][3];
        float *x = calloc((size_t)B * C + 1, sizeof *x);
        for (int r = 0; r < B; r++) /* a dense head, then ~13 % ones, as the top-items multi-hot */
            for (int c = 0; c < C; c++)
                x[(size_t)r * C + c] = c < H ? (float)cb_rng_normal(&rng) : cb_rng_uniform(&rng) < 0.13 ? 1.0f : 0.0f;
        check_layer(x, B, C, H, OC, false, &rng);
        check_layer(x, B, C, H, OC, true, &rng);
        free(x);
    }
    cb_blas_release();
    /* more non-zeros than the list holds: refused */
    float x[6] = {1, 0, 2, 3, 0, 4};
    uint32_t off[3], col[3];
    float val[3];
    cb_nn_csr s = {off, col, val, 3};
    assert_int_equal(cb_nn_csr_from_dense(&s, x, 2, 3), -1);
    uint32_t col4[4];
    float val4[4];
    s = (cb_nn_csr){off, col4, val4, 4};
    assert_int_equal(cb_nn_csr_from_dense(&s, x, 2, 3), 0);
    assert_true(off[0] == 0 && off[1] == 2 && off[2] == 4 && col4[1] == 2 && col4[2] == 0 && val4[3] == 4.0f);
    /* the list (4 lanes at a time, then the tail) holds exactly a plain loop's non-zeros, NaN in, -0 out;
     * a list just too short for whole vectors takes the careful path */
    for (int C = 1; C <= 11; C++)
        for (size_t cap = (size_t)3 * C; cap <= (size_t)3 * C + 8; cap += 4) {
            float xs[33], vs[41];
            uint32_t offs[4], cs[41];
            for (int i = 0; i < 3 * C; i++) {
                double u = cb_rng_uniform(&rng);
                xs[i] = u < 0.5 ? 0.0f : u < 0.6 ? -0.0f : u < 0.65 ? NAN : (float)cb_rng_normal(&rng);
            }
            cb_nn_csr t = {offs, cs, vs, cap};
            assert_int_equal(cb_nn_csr_from_dense(&t, xs, 3, C), 0);
            size_t k = 0;
            for (int r = 0; r < 3; r++) {
                assert_int_equal(offs[r], k);
                for (int c = 0; c < C; c++) {
                    float v = xs[r * C + c];
                    if (v == 0.0f) continue;
                    assert_int_equal(cs[k], c);
                    assert_memory_equal(&vs[k], &v, sizeof v);
                    k++;
                }
            }
            assert_int_equal(offs[3], k);
        }
}

/* A model trained with the user tower's first layer sparse and dense. */
static float *train_params(const float *xu, uint32_t nu, uint32_t in, const float *xm, const cb_rating *rt, size_t n,
                           int sparse, cb_opt_kind opt, size_t *np) {
    cb_model_config c;
    cb_model_config_default(&c);
    c.objective = CB_OBJECTIVE_RATING, c.loss = CB_LOSS_MSE, c.item_id_embedding = false, c.item_ids = 0;
    c.history_dim = c.history_items = 0, c.item_dropout = c.user_dropout = 0;
    c.n_user_layers = c.n_item_layers = 1, c.user_layers[0] = c.item_layers[0] = 40, c.dim = 8;
    c.user_in = in, c.item_in = 6, c.batch_size = 64, c.epochs = 2, c.threads = 2, c.optimizer = opt;
    c.lr = opt == CB_OPT_SGD ? 0.05f : 0.001f;
    uint32_t *idx = malloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
    cb_train_data d = {.user_x = xu, .n_users = nu, .item_x = xm, .n_items = 50, .ratings = rt, .train_idx = idx,
                       .n_train = n};
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_OK);
    cb_model_set_sparse_input(m, sparse);
    assert_int_equal(cb_model_train(m, &d, NULL, NULL, NULL, &err), CB_OK);
    *np = 0;
    float *p = malloc(cb_model_n_params(m) * sizeof *p);
    for (size_t i = 0; i < cb_model_n_tensors(m); i++) {
        cb_tensor t;
        cb_model_tensor(m, i, &t);
        size_t k = (size_t)t.shape[0] * (t.ndim > 1 ? t.shape[1] : 1);
        memcpy(p + *np, t.data, k * sizeof *p);
        *np += k;
    }
    cb_model_free(m);
    free(idx);
    return p;
}

static void training_sparse_matches_dense(void **state) {
    (void)state;
    cb_rng rng;
    cb_rng_seed(&rng, 9);
    uint32_t nu = 80, in = 300;
    size_t n = 1500;
    float *xu = calloc((size_t)nu * in, sizeof *xu), *xm = malloc(50 * 6 * sizeof *xm);
    for (uint32_t u = 0; u < nu; u++) /* 4 dense columns, then ~12 % ones */
        for (uint32_t c = 0; c < in; c++)
            xu[(size_t)u * in + c] = c < 4 ? (float)cb_rng_normal(&rng) : cb_rng_uniform(&rng) < 0.12 ? 1.0f : 0.0f;
    for (int i = 0; i < 50 * 6; i++) xm[i] = (float)cb_rng_normal(&rng);
    cb_rating *rt = malloc(n * sizeof *rt);
    for (size_t i = 0; i < n; i++)
        rt[i] = (cb_rating){.user = (uint32_t)(i % nu), .item = (uint32_t)(cb_rng_uniform(&rng) * 50),
                            .y = (float)(2 * cb_rng_uniform(&rng) - 1)};
    for (int opt = 0; opt < 2; opt++) {
        size_t n1, n2;
        float *p1 = train_params(xu, nu, in, xm, rt, n, 0, (cb_opt_kind)opt, &n1);
        float *p2 = train_params(xu, nu, in, xm, rt, n, 1, (cb_opt_kind)opt, &n2);
        assert_int_equal(n1, n2);
        double big = 0;
        for (size_t i = 0; i < n1; i++) big = fmax(big, fabs(p1[i]));
        assert_close(p1, p2, n1, 0, 1e-4 * big);
        assert_true(memcmp(p1, p2, n1 * sizeof *p1) != 0); /* the sparse path did run */
        free(p1), free(p2);
    }
    free(xu), free(xm), free(rt);
}

/* The user table as rows holds exactly cb_features_users' values. */
static void user_rows_match_table(void **state) {
    (void)state;
    cb_synth_config sc;
    cb_synth_config_default(&sc);
    sc.n_users = 90, sc.n_items = 70, sc.n_ratings = 2500, sc.seed = 4;
    cb_dataset *ds = NULL;
    cb_error err;
    assert_int_equal(cb_synth_generate(&ds, &sc, &err), CB_OK);
    uint32_t *idx = malloc(ds->n_ratings * sizeof *idx);
    size_t n = 0;
    for (size_t j = 0; j < ds->n_ratings; j += 1 + (j % 3 == 0)) idx[n++] = (uint32_t)j;
    cb_feature_config fc;
    cb_feature_config_default(&fc);
    fc.top_k_popular = 25;
    cb_features *f = NULL;
    assert_int_equal(cb_features_fit(&f, ds, idx, n, &fc, &err), CB_OK);
    uint32_t du = cb_features_user_dim(f), nu = cb_dataset_n_users(ds);
    float *X = malloc((size_t)nu * du * sizeof *X), *row = malloc(du * sizeof *row);
    assert_int_equal(cb_features_users(f, ds, idx, n, X, &err), CB_OK);
    cb_rows rows;
    assert_int_equal(cb_features_user_rows(f, ds, idx, n, &rows, &err), CB_OK);
    assert_int_equal(rows.width, du);
    assert_int_equal(rows.head, du - 25); /* the multi-hot is the tail */
    assert_true(rows.hot_off[nu] > 0);
    for (uint32_t u = 0; u < nu; u++) {
        cb_rows_get(&rows, u, row);
        assert_memory_equal(row, X + (size_t)u * du, du * sizeof *row);
    }
    cb_rows_free(&rows);
    cb_features_free(f);
    free(X), free(row), free(idx);
    cb_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(sparse_matches_dense), cmocka_unit_test(training_sparse_matches_dense),
                                       cmocka_unit_test(user_rows_match_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
