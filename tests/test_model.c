/* Tests for model: configuration checks, whole-model finite-difference
 * gradients (MSE and BCE, l2norm on and off), deterministic training (same
 * seed -> same bits, for 1 and 2 threads), resume, early stopping, NaN
 * handling, tensors round trip, prediction, and parity with PyTorch
 * (tests/ref/torch_parity.py, skipped when /usr/bin/python3 lacks torch). */
#include "testutil.h"
#include "model/model.h"
#include "model/negatives.h"

#include <math.h>

typedef struct fixture {
    float *xu, *xm;
    cb_rating *r;
    uint32_t *idx;
    size_t n;
    cb_train_data d;
} fixture;

/* n examples; example i uses user row i % n_users and item row i % n_items.
 * Targets in [-1, 1] follow the features (learnable), or 0/1 labels. */
static void fixture_make(fixture *f, size_t n, uint32_t n_users, uint32_t n_items, int uin, int iin,
                         int binary, uint64_t seed) {
    cb_rng rng;
    cb_rng_seed(&rng, seed);
    f->xu = malloc(sizeof(float) * n_users * uin);
    f->xm = malloc(sizeof(float) * n_items * iin);
    for (size_t i = 0; i < (size_t)n_users * uin; i++) f->xu[i] = (float)cb_rng_normal(&rng);
    for (size_t i = 0; i < (size_t)n_items * iin; i++) f->xm[i] = (float)cb_rng_normal(&rng);
    f->r = malloc(sizeof(cb_rating) * n);
    f->idx = malloc(sizeof(uint32_t) * n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(i % n_users), m = (uint32_t)((i * 7 + i / n_users) % n_items);
        double s = tanh(f->xu[u * uin] * f->xm[m * iin] + 0.5 * f->xu[u * uin + 1]);
        f->r[i] = (cb_rating){u, m, binary ? (float)(s > 0) : (float)s, 0};
        f->idx[i] = (uint32_t)i;
    }
    f->n = n;
    f->d = (cb_train_data){.user_x = f->xu, .n_users = n_users, .item_x = f->xm, .n_items = n_items, .ratings = f->r,
                           .train_idx = f->idx, .n_train = n};
}

static void fixture_free(fixture *f) { free(f->xu), free(f->xm), free(f->r), free(f->idx); }

static void small_config(cb_model_config *c, int uin, int iin) {
    cb_model_config_default(c);
    c->objective = CB_OBJECTIVE_RATING; /* the cases below choose theirs */
    c->user_in = (uint32_t)uin, c->item_in = (uint32_t)iin;
    c->user_layers[0] = 7, c->user_layers[1] = 5;
    c->n_item_layers = 1, c->item_layers[0] = 6;
    c->dim = 4;
    c->batch_size = 16, c->epochs = 3;
}

static void config_check(void **state) {
    (void)state;
    cb_model_config c;
    cb_model_config_default(&c);
    assert_non_null(cb_model_config_check(&c)); /* inputs unset */
    c.user_in = 14, c.item_in = 16;
    assert_null(cb_model_config_check(&c));
    c.lr = -1;
    assert_non_null(strstr(cb_model_config_check(&c), "lr"));
    c.lr = 0.01f, c.n_user_layers = 99;
    assert_non_null(cb_model_config_check(&c));
    c.n_user_layers = 2, c.batch_size = 0;
    assert_non_null(cb_model_config_check(&c));
    cb_model *m = (cb_model *)1;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_EINVAL);
    assert_null(m);
    cb_model_free(NULL);
}

static void n_params_and_tensors(void **state) {
    (void)state;
    cb_model_config c;
    cb_model_config_default(&c);
    c.objective = CB_OBJECTIVE_RATING; /* the lectures' model: one 32-unit vector per side */
    c.user_in = 14, c.item_in = 16;
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_OK);
    assert_int_equal(cb_model_n_params(m), 40864 + 41376 + 2);
    assert_int_equal(cb_model_n_tensors(m), 14);
    cb_tensor t;
    cb_model_tensor(m, 0, &t);
    assert_string_equal(t.name, "user.0.weight");
    assert_int_equal(t.shape[0], 256), assert_int_equal(t.shape[1], 14);
    cb_model_tensor(m, 11, &t);
    assert_string_equal(t.name, "item.2.bias");
    assert_int_equal(t.ndim, 1), assert_int_equal(t.shape[0], 32);
    cb_model_tensor(m, 12, &t);
    assert_string_equal(t.name, "head.scale");
    assert_true(t.data[0] == c.bce_scale_init);
    cb_model_free(m);
}

/* Whole-model gradient check against central differences on every parameter. */
/* hist > 0: a history bag of that width; user u's history is items u % 4,
 * (u + 1) % 4 and 7 (past the table: skipped), so examples' own items are
 * left out of some bags and not others. */
static void gradcheck_case_n(cb_loss_kind loss, bool l2norm, cb_objective objective, uint32_t item_ids, bool split,
                             uint32_t hist, uint32_t negatives, float negatives_power, float below_weight) {
    fixture f;
    fixture_make(&f, 9, 5, 4, 3, 4, loss == CB_LOSS_BCE, 11);
    cb_model_config c;
    small_config(&c, 3, 4);
    c.loss = loss, c.l2norm = l2norm, c.bce_scale_init = 2.0f;
    c.objective = objective, c.temperature = 0.5f, c.rating_weight = 0.7f, c.item_ids = item_ids;
    c.split_heads = split;
    c.history_dim = hist, c.history_items = hist ? 4 : 0;
    c.negatives = negatives, c.negatives_power = negatives_power;
    c.positive_threshold = 0.2f, c.below_weight = below_weight;
    uint32_t h_off[6], h_item[15];
    for (uint32_t u = 0; u <= 5; u++) h_off[u] = 3 * u;
    for (uint32_t u = 0; u < 5; u++) h_item[3 * u] = u % 4, h_item[3 * u + 1] = (u + 1) % 4, h_item[3 * u + 2] = 7;
    if (hist) f.d.hist_off = h_off, f.d.hist_item = h_item;
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_OK);
    /* non-zero biases so their gradients are exercised in general position */
    for (size_t i = 0; i < cb_model_n_tensors(m); i++) {
        cb_tensor t;
        cb_model_tensor(m, i, &t);
        if (strstr(t.name, "bias")) for (uint32_t k = 0; k < t.shape[0]; k++) t.data[k] = 0.1f * (float)((int)(k % 5) - 2);
        if (strstr(t.name, "_embedding"))
            for (uint32_t k = 0; k < t.shape[0] * t.shape[1]; k++) t.data[k] = 0.2f * (float)((int)(k % 7) - 3);
    }
    double loss0;
    assert_int_equal(cb_model_loss_and_grad(m, &f.d, f.idx, f.n, &loss0, &err), CB_OK);
    size_t checked = 0;
    for (size_t i = 0; i < cb_model_n_tensors(m); i++) {
        cb_tensor t;
        cb_model_tensor(m, i, &t);
        bool head_trained = objective == CB_OBJECTIVE_BOTH || (objective == CB_OBJECTIVE_RATING && loss == CB_LOSS_BCE);
        if (!head_trained && strncmp(t.name, "head.", 5) == 0) continue;
        size_t n = t.ndim == 2 ? (size_t)t.shape[0] * t.shape[1] : t.shape[0];
        float *g = malloc(n * sizeof(float));
        /* gradients at the unperturbed point (the checks below overwrite them) */
        assert_int_equal(cb_model_loss_and_grad(m, &f.d, f.idx, f.n, &loss0, &err), CB_OK);
        memcpy(g, cb_model_tensor_grad(m, i), n * sizeof(float));
        for (size_t k = 0; k < n; k++) {
            float keep = t.data[k], h = 2e-3f;
            double lp, lm;
            t.data[k] = keep + h;
            assert_int_equal(cb_model_loss_and_grad(m, &f.d, f.idx, f.n, &lp, &err), CB_OK);
            t.data[k] = keep - h;
            assert_int_equal(cb_model_loss_and_grad(m, &f.d, f.idx, f.n, &lm, &err), CB_OK);
            t.data[k] = keep;
            double num = (lp - lm) / (2.0 * h);
            double tol = 2e-3 + 3e-2 * fmax(fabs(num), fabs(g[k]));
            if (fabs(num - g[k]) > tol)
                fail_msg("%s[%zu] (loss %d, l2norm %d): analytic %.6g numeric %.6g", t.name, k, loss, l2norm, g[k], num);
            checked++;
        }
        free(g);
    }
    assert_true(checked > 100);
    cb_model_free(m);
    fixture_free(&f);
}

static void gradcheck_case_h(cb_loss_kind loss, bool l2norm, cb_objective objective, uint32_t item_ids, bool split,
                             uint32_t hist) {
    gradcheck_case_n(loss, l2norm, objective, item_ids, split, hist, 0, 0.0f, 1.0f);
}

static void gradcheck_case(cb_loss_kind loss, bool l2norm, cb_objective objective, uint32_t item_ids, bool split) {
    gradcheck_case_h(loss, l2norm, objective, item_ids, split, 0);
}

static void gradcheck_model(void **state) {
    (void)state;
    gradcheck_case(CB_LOSS_MSE, true, CB_OBJECTIVE_RATING, 0, false);
    gradcheck_case(CB_LOSS_MSE, false, CB_OBJECTIVE_RATING, 0, false);
    gradcheck_case(CB_LOSS_BCE, true, CB_OBJECTIVE_RATING, 0, false);
    gradcheck_case(CB_LOSS_BCE, false, CB_OBJECTIVE_RATING, 0, false);
    /* the in-batch softmax (items repeat in the batch: duplicates are masked),
     * with and without the rating head, and the item-id embedding (item 3
     * has none: ids past the table fall back to content) */
    gradcheck_case(CB_LOSS_MSE, true, CB_OBJECTIVE_RETRIEVAL, 0, false);
    gradcheck_case(CB_LOSS_MSE, false, CB_OBJECTIVE_RETRIEVAL, 3, false);
    gradcheck_case(CB_LOSS_MSE, true, CB_OBJECTIVE_BOTH, 3, false);
    gradcheck_case(CB_LOSS_MSE, true, CB_OBJECTIVE_RATING, 4, false);
    /* both with split heads: ranking and rating on separate output halves */
    gradcheck_case(CB_LOSS_MSE, true, CB_OBJECTIVE_BOTH, 3, true);
    gradcheck_case(CB_LOSS_MSE, false, CB_OBJECTIVE_BOTH, 0, true);
    /* the history bag (user.history_embedding and the bag's columns of user.0.weight) */
    gradcheck_case_h(CB_LOSS_MSE, true, CB_OBJECTIVE_BOTH, 3, true, 3);
    gradcheck_case_h(CB_LOSS_MSE, true, CB_OBJECTIVE_RATING, 0, false, 2);
    /* sampled negatives: 6 more item rows in the softmax (4 items: some are
     * the batch's own, masked for their rows), uniform and by popularity */
    gradcheck_case_n(CB_LOSS_MSE, true, CB_OBJECTIVE_BOTH, 3, true, 0, 6, 0.0f, 1.0f);
    gradcheck_case_n(CB_LOSS_MSE, false, CB_OBJECTIVE_RETRIEVAL, 3, false, 0, 6, 1.0f, 1.0f);
    /* picks rated below the threshold (targets < 0.2 here) weigh 0.25 in the softmax */
    gradcheck_case_n(CB_LOSS_MSE, true, CB_OBJECTIVE_BOTH, 3, true, 0, 6, 0.0f, 0.25f);
}

static cb_model *trained(fixture *f, cb_model_config *c, int rc_want) {
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, c, &err), CB_OK);
    int rc = cb_model_train(m, &f->d, NULL, NULL, NULL, &err);
    if (rc != rc_want) fail_msg("train returned %d (%s)", rc, err.msg);
    return m;
}

static int same_params(const cb_model *a, const cb_model *b) {
    for (size_t i = 0; i < cb_model_n_tensors(a); i++) {
        cb_tensor x, y;
        cb_model_tensor(a, i, &x), cb_model_tensor(b, i, &y);
        size_t n = x.ndim == 2 ? (size_t)x.shape[0] * x.shape[1] : x.shape[0];
        if (memcmp(x.data, y.data, n * sizeof(float)) != 0) return 0;
    }
    return 1;
}

static void deterministic(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 300, 40, 30, 5, 6, 0, 3);
    cb_model_config c;
    small_config(&c, 5, 6);
    c.threads = 2;
    cb_model *a = trained(&f, &c, CB_OK), *b = trained(&f, &c, CB_OK);
    assert_true(same_params(a, b));
    c.threads = 1; /* each thread count trains the same bits (across counts: test_parallel.c) */
    cb_model *d1 = trained(&f, &c, CB_OK), *d2 = trained(&f, &c, CB_OK);
    assert_true(same_params(d1, d2));
    cb_model_free(d2);
    c.seed = 2;
    cb_model *e = trained(&f, &c, CB_OK);
    assert_false(same_params(a, e));
    /* resume: 3 epochs == 1 epoch then 2 more (Adam state and epoch count carry over) */
    c.seed = 1, c.threads = 2, c.epochs = 1;
    cb_model *r = trained(&f, &c, CB_OK);
    c.epochs = 2;
    cb_error err;
    assert_int_equal(cb_model_set_train_config(r, &c, &err), CB_OK);
    assert_int_equal(cb_model_train(r, &f.d, NULL, NULL, NULL, &err), CB_OK);
    assert_true(same_params(a, r));
    c.dim = 5;
    assert_int_equal(cb_model_set_train_config(r, &c, &err), CB_EINVAL);
    cb_model_free(a), cb_model_free(b), cb_model_free(d1), cb_model_free(e), cb_model_free(r);
    fixture_free(&f);
}

/* The item-id embedding's rows (a copy). */
static float *emb_copy(const cb_model *m, size_t *n) {
    for (size_t i = 0; i < cb_model_n_tensors(m); i++) {
        cb_tensor t;
        cb_model_tensor(m, i, &t);
        if (strcmp(t.name, "item.id_embedding")) continue;
        *n = (size_t)t.shape[0] * t.shape[1];
        float *p = malloc(*n * sizeof *p);
        memcpy(p, t.data, *n * sizeof *p);
        return p;
    }
    fail_msg("no item.id_embedding tensor");
    return NULL;
}

/* Lazy Adam on the id embedding: a row of an item no batch holds stays as
 * it was (its moments too: a later step moves it as if no time had passed);
 * with lazy-embedding off, its momentum still moves it. Trained first on
 * examples of items 0..19, then resumed on those of items 0..9 only. */
static void lazy_embedding(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 600, 40, 30, 5, 6, 0, 4);
    cb_model_config c;
    small_config(&c, 5, 6);
    c.objective = CB_OBJECTIVE_BOTH, c.item_ids = 30, c.epochs = 1, c.threads = 2;
    uint32_t *first = malloc(f.n * sizeof *first), *later = malloc(f.n * sizeof *later);
    size_t n1 = 0, n2 = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (f.r[i].item < 20) first[n1++] = (uint32_t)i;
        if (f.r[i].item < 10) later[n2++] = (uint32_t)i;
    }
    for (int lazy = 0; lazy < 2; lazy++) {
        c.lazy_embedding = lazy;
        f.d.train_idx = first, f.d.n_train = n1;
        cb_model *m = trained(&f, &c, CB_OK);
        size_t n;
        float *before = emb_copy(m, &n);
        f.d.train_idx = later, f.d.n_train = n2;
        cb_error err;
        assert_int_equal(cb_model_train(m, &f.d, NULL, NULL, NULL, &err), CB_OK);
        float *after = emb_copy(m, &n);
        size_t D = n / 30, moved_rest = 0, moved_held = 0;
        for (size_t j = 0; j < n; j++) {
            if (after[j] == before[j]) continue;
            if (j / D < 10) moved_held++;
            else moved_rest++;
        }
        assert_true(moved_held > 0);          /* the rows of the batches' items trained */
        if (lazy) assert_int_equal(moved_rest, 0); /* items 10..19 (and 20..29, never seen) stayed */
        else assert_true(moved_rest > 0);     /* Adam's momentum moved items 10..19 on */
        free(before), free(after);
        cb_model_free(m);
    }
    free(first), free(later);
    f.d.train_idx = f.idx, f.d.n_train = f.n;
    fixture_free(&f);
}

/* Sampled negatives: the draws follow q_neg ∝ (count + 1)^power, the mixed
 * logQ is log(B·q_batch + m·q_neg), and training with them is deterministic
 * (a fixed thread count: the same bits; 1 vs 2 threads agree within float
 * tolerance: test_parallel.c) and differs from in-batch only. */
static void sampled_negatives(void **state) {
    (void)state;
    cb_rating r[12];
    uint32_t idx[12];
    for (int i = 0; i < 12; i++) r[i] = (cb_rating){0, i < 9 ? 0u : 2u, 1.0f, 0}, idx[i] = (uint32_t)i;
    cb_negatives s;
    cb_error err;
    for (int pw = 0; pw < 2; pw++) {
        assert_int_equal(cb_negatives_init(&s, r, idx, 12, 3, 4, (float)pw, &err), CB_OK);
        enum { N = 60000 };
        uint32_t *out = malloc(N * sizeof *out);
        cb_negatives_draw(&s, out, N, 7);
        double cnt[3] = {0}, want[2][3] = {{1 / 3.0, 1 / 3.0, 1 / 3.0}, {10 / 15.0, 1 / 15.0, 4 / 15.0}};
        for (int k = 0; k < N; k++) cnt[out[k]] += 1.0 / N;
        for (int i = 0; i < 3; i++) assert_true(fabs(cnt[i] - want[pw][i]) < 0.01);
        float lq[3] = {logf(0.5f), logf(0.25f), logf(0.25f)};
        cb_negatives_log_q(&s, lq, 16);
        for (int i = 0; i < 3; i++) {
            double qb = i == 0 ? 0.5 : 0.25;
            assert_true(fabs(lq[i] - log(16 * qb + 4 * want[pw][i])) < 1e-5);
        }
        free(out);
        cb_negatives_free(&s);
    }
    fixture f;
    fixture_make(&f, 300, 40, 30, 5, 6, 0, 3);
    cb_model_config c;
    small_config(&c, 5, 6);
    c.objective = CB_OBJECTIVE_BOTH, c.split_heads = true, c.temperature = 0.2f, c.rating_weight = 1.0f;
    c.negatives = 8, c.threads = 2;
    cb_model *a = trained(&f, &c, CB_OK);
    cb_model *b = trained(&f, &c, CB_OK);
    assert_true(same_params(a, b));
    c.threads = 1;
    c.negatives = 0;
    cb_model *d = trained(&f, &c, CB_OK);
    assert_false(same_params(a, d));
    cb_model_free(a), cb_model_free(b), cb_model_free(d);
    fixture_free(&f);
}

typedef struct cb_log { int ends, ticks; double last_valid; int stop_at; } cb_log;
static int on_epoch(const cb_epoch_report *r, void *p) {
    cb_log *l = p;
    if (!r->end_of_epoch) { l->ticks++; return 0; }
    l->ends++;
    assert_true(isfinite(r->train_loss) && r->examples_per_sec > 0);
    l->last_valid = r->valid_rmse;
    return l->stop_at && (int)r->epoch >= l->stop_at;
}

static void learns_and_reports(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 4000, 200, 150, 5, 6, 0, 5);
    f.d.n_train = 3200, f.d.valid_idx = f.idx + 3200, f.d.n_valid = 800;
    cb_model_config c;
    small_config(&c, 5, 6);
    c.user_layers[0] = 32, c.user_layers[1] = 16, c.item_layers[0] = 32, c.dim = 8;
    c.epochs = 8, c.batch_size = 16;
    c.target_scale = 0.5f, c.target_shift = 0.25f; /* the model sees y' = y/2 + 1/4 */
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_OK);
    double rmse0;
    assert_int_equal(cb_model_evaluate(m, &f.d, f.d.valid_idx, f.d.n_valid, NULL, &rmse0, &err), CB_OK);
    cb_log log = {0};
    cb_train_result res;
    assert_int_equal(cb_model_train(m, &f.d, on_epoch, &log, &res, &err), CB_OK);
    assert_int_equal(log.ends, 8);
    assert_true(log.ticks > 0);
    assert_int_equal(res.epochs_run, 8);
    double rmse1;
    assert_int_equal(cb_model_evaluate(m, &f.d, f.d.valid_idx, f.d.n_valid, NULL, &rmse1, &err), CB_OK);
    assert_true(fabs(rmse1 - res.valid_rmse) < 1e-9);
    assert_true(rmse1 < 0.8 * rmse0);
    /* predict == vectors + dot + unscaling */
    float vu[8], vm[8], p;
    uint32_t u = f.r[3200].user, it = f.r[3200].item;
    assert_int_equal(cb_model_user_vectors(m, f.xu + u * 5, 1, vu, &err), CB_OK);
    assert_int_equal(cb_model_item_vectors(m, f.xm + it * 6, 1, vm, &err), CB_OK);
    assert_int_equal(cb_model_predict(m, f.xu, f.xm, &u, &it, 1, &p, &err), CB_OK);
    float dot = 0;
    for (int k = 0; k < 8; k++) dot += vu[k] * vm[k];
    assert_true(fabsf(p - (dot - 0.25f) / 0.5f) < 1e-5f);
    /* the callback can stop training */
    cb_log log2 = {0, 0, 0, 2};
    assert_int_equal(cb_model_train(m, &f.d, on_epoch, &log2, &res, &err), CB_OK);
    assert_int_equal(res.epochs_run, 2);
    cb_model_free(m);
    fixture_free(&f);
}

static void early_stopping(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 600, 60, 50, 5, 6, 0, 8);
    /* noise targets in validation: nothing to learn, so it stops early */
    cb_rng rng;
    cb_rng_seed(&rng, 1);
    for (size_t i = 400; i < 600; i++) f.r[i].y = (float)(2 * cb_rng_uniform(&rng) - 1);
    f.d.n_train = 400, f.d.valid_idx = f.idx + 400, f.d.n_valid = 200;
    cb_model_config c;
    small_config(&c, 5, 6);
    c.epochs = 60, c.patience = 2, c.lr = 0.05f;
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_OK);
    cb_train_result res;
    assert_int_equal(cb_model_train(m, &f.d, NULL, NULL, &res, &err), CB_OK);
    assert_true(res.early_stopped);
    assert_true(res.epochs_run < 60);
    assert_int_equal(res.best_epoch + 2, res.epochs_run);
    cb_model_free(m);
    fixture_free(&f);
}

static void nan_stops(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 200, 20, 20, 5, 6, 0, 9);
    f.xu[7 * 5 + 2] = INFINITY; /* user 7's features poison every batch holding it */
    cb_model_config c;
    small_config(&c, 5, 6);
    cb_model *m, *m0;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_OK);
    assert_int_equal(cb_model_create(&m0, &c, &err), CB_OK);
    cb_train_result res;
    assert_int_equal(cb_model_train(m, &f.d, NULL, NULL, &res, &err), CB_ENUMERIC);
    assert_non_null(strstr(err.msg, "NaN"));
    assert_true(same_params(m, m0)); /* the initial parameters were the last good ones */
    /* bad examples are refused before any work */
    f.xu[7 * 5 + 2] = 0;
    f.r[5].item = 999;
    assert_int_equal(cb_model_train(m, &f.d, NULL, NULL, &res, &err), CB_EINVAL);
    cb_model_free(m), cb_model_free(m0);
    fixture_free(&f);
}

static void tensors_roundtrip(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 200, 20, 20, 5, 6, 1, 10);
    cb_model_config c;
    small_config(&c, 5, 6);
    c.loss = CB_LOSS_BCE;
    cb_model *m = trained(&f, &c, CB_OK), *m2;
    cb_error err;
    size_t n = cb_model_n_tensors(m);
    cb_tensor *ts = calloc(n, sizeof *ts);
    for (size_t i = 0; i < n; i++) cb_model_tensor(m, i, &ts[i]);
    assert_true(ts[n - 2].data[0] != c.bce_scale_init); /* the head learned */
    assert_int_equal(cb_model_create_from_tensors(&m2, &c, ts, n, &err), CB_OK);
    assert_true(same_params(m, m2));
    float p1[20], p2[20];
    assert_int_equal(cb_model_predict(m, f.xu, f.xm, f.idx, f.idx, 20, p1, &err), CB_OK);
    assert_int_equal(cb_model_predict(m2, f.xu, f.xm, f.idx, f.idx, 20, p2, &err), CB_OK);
    assert_memory_equal(p1, p2, sizeof p1);
    for (int i = 0; i < 20; i++) assert_true(p1[i] > 0 && p1[i] < 1);
    cb_model_free(m2);
    /* missing, misshaped, unknown and non-finite tensors are refused */
    assert_int_equal(cb_model_create_from_tensors(&m2, &c, ts, n - 1, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "head.bias"));
    ts[0].shape[1]++;
    assert_int_equal(cb_model_create_from_tensors(&m2, &c, ts, n, &err), CB_EFORMAT);
    ts[0].shape[1]--;
    strcpy(ts[1].name, "user.9.bias");
    assert_int_equal(cb_model_create_from_tensors(&m2, &c, ts, n, &err), CB_EFORMAT);
    cb_model_tensor(m, 1, &ts[1]);
    float keep = ts[2].data[0];
    ts[2].data[0] = NAN;
    assert_int_equal(cb_model_create_from_tensors(&m2, &c, ts, n, &err), CB_EFORMAT);
    ts[2].data[0] = keep;
    free(ts);
    cb_model_free(m);
    fixture_free(&f);
}

/* ---- PyTorch parity */

static void write_file(const char *dir, const char *name, const void *p, size_t bytes) {
    char *path = tu_path(dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, bytes, fp), bytes);
    assert_int_equal(fclose(fp), 0);
    free(path);
}

static void read_file(const char *dir, const char *name, void *p, size_t bytes) {
    char *path = tu_path(dir, name);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("torch did not write %s", path);
    assert_int_equal(fread(p, 1, bytes, fp), bytes);
    fclose(fp);
    free(path);
}

static double rel_err(double a, double b) { return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), 1e-6); }

#define P_STEPS 100
#define P_BATCH 32
#define P_N 256

static void parity_case(cb_loss_kind loss, bool l2norm, float wd) {
    char *dir = tu_tmpdir();
    fixture f;
    fixture_make(&f, P_N, P_N, P_N, 14, 16, loss == CB_LOSS_BCE, 21);
    /* one user row and one item row per example, as the torch script reads them */
    for (uint32_t i = 0; i < P_N; i++) f.r[i].user = f.r[i].item = i;
    cb_model_config c;
    cb_model_config_default(&c);
    c.user_in = 14, c.item_in = 16, c.loss = loss, c.l2norm = l2norm, c.weight_decay = wd;
    c.objective = CB_OBJECTIVE_RATING;
    c.user_layers[0] = c.item_layers[0] = 64, c.user_layers[1] = c.item_layers[1] = 32, c.dim = 16;
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, &c, &err), CB_OK);
    char *cfg_path = tu_path(dir, "config.txt");
    FILE *cf = fopen(cfg_path, "w");
    assert_non_null(cf);
    free(cfg_path);
    fprintf(cf, "loss %s\nl2norm %d\neps %.9g\nlr %.9g\nbeta1 %.9g\nbeta2 %.9g\nadam_eps %.9g\nwd %.9g\n",
            loss == CB_LOSS_MSE ? "mse" : "bce", l2norm, c.l2norm_eps, c.lr, c.adam_beta1, c.adam_beta2, c.adam_eps, wd);
    fprintf(cf, "steps %d\nbatch %d\nuser_in 14\nitem_in 16\nn_examples %d\n", P_STEPS, P_BATCH, P_N);
    size_t nt = cb_model_n_tensors(m);
    for (size_t i = 0; i < nt; i++) {
        cb_tensor t;
        cb_model_tensor(m, i, &t);
        if (t.ndim == 2) fprintf(cf, "tensor %s %u %u\n", t.name, t.shape[0], t.shape[1]);
        else fprintf(cf, "tensor %s %u\n", t.name, t.shape[0]);
        char fn[64];
        snprintf(fn, sizeof fn, "%s.f32", t.name);
        write_file(dir, fn, t.data, sizeof(float) * (t.ndim == 2 ? t.shape[0] * t.shape[1] : t.shape[0]));
    }
    assert_int_equal(fclose(cf), 0);
    write_file(dir, "xu.f32", f.xu, sizeof(float) * P_N * 14);
    write_file(dir, "xm.f32", f.xm, sizeof(float) * P_N * 16);
    float y[P_N];
    for (int i = 0; i < P_N; i++) y[i] = f.r[i].y;
    write_file(dir, "y.f32", y, sizeof y);
    static uint32_t batches[P_STEPS][P_BATCH];
    cb_rng rng;
    cb_rng_seed(&rng, 4);
    for (int s = 0; s < P_STEPS; s++)
        for (int b = 0; b < P_BATCH; b++) batches[s][b] = (uint32_t)cb_rng_below(&rng, P_N);
    write_file(dir, "batches.u32", batches, sizeof batches);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/torch_parity.py %s", dir);
    assert_int_equal(system(cmd), 0);

    /* loss and every gradient on batch 0 */
    double loss0;
    assert_int_equal(cb_model_loss_and_grad(m, &f.d, batches[0], P_BATCH, &loss0, &err), CB_OK);
    char *lp = tu_path(dir, "torch_loss0.txt");
    FILE *lf = fopen(lp, "r");
    assert_non_null(lf);
    double tl0;
    assert_int_equal(fscanf(lf, "%lf", &tl0), 1);
    fclose(lf), free(lp);
    if (rel_err(loss0, tl0) > 1e-5) fail_msg("loss %.9g vs torch %.9g", loss0, tl0);
    double worst = 0;
    for (size_t i = 0; i < nt; i++) {
        cb_tensor t;
        cb_model_tensor(m, i, &t);
        if (loss == CB_LOSS_MSE && strncmp(t.name, "head.", 5) == 0) continue;
        size_t n = t.ndim == 2 ? (size_t)t.shape[0] * t.shape[1] : t.shape[0];
        float *tg = malloc(n * sizeof(float)), *g = cb_model_tensor_grad(m, i);
        char fn[64];
        snprintf(fn, sizeof fn, "%s.grad.f32", t.name);
        read_file(dir, fn, tg, n * sizeof(float));
        /* relative error of the tensor as a whole: |g - g_torch| / |g_torch| (max norm) */
        double num = 0, den = 0;
        for (size_t k = 0; k < n; k++) {
            num = fmax(num, fabs((double)g[k] - tg[k]));
            den = fmax(den, fabs((double)tg[k]));
        }
        double e = num / fmax(den, 1e-12);
        if (e > 1e-4) fail_msg("gradient of %s: relative error %.3g vs torch", t.name, e);
        worst = fmax(worst, e);
        free(tg);
    }
    /* 100 Adam steps on the same batches: the loss trajectories agree */
    double tl[P_STEPS];
    lp = tu_path(dir, "torch_losses.txt");
    lf = fopen(lp, "r");
    assert_non_null(lf);
    for (int s = 0; s < P_STEPS; s++) assert_int_equal(fscanf(lf, "%lf", &tl[s]), 1);
    fclose(lf), free(lp);
    double worst_traj = 0;
    for (int s = 0; s < P_STEPS; s++) {
        double l;
        assert_int_equal(cb_model_loss_and_grad(m, &f.d, batches[s], P_BATCH, &l, &err), CB_OK);
        cb_model_optimizer_step(m);
        double e = rel_err(l, tl[s]);
        worst_traj = fmax(worst_traj, e);
        if (e > 1e-3) fail_msg("step %d: loss %.9g vs torch %.9g", s, l, tl[s]);
    }
    printf("parity (%s, l2norm %d, wd %g): loss rel err %.2g, worst gradient rel err %.2g, worst loss rel err over %d Adam steps %.2g (first %.4f last %.4f)\n",
           loss == CB_LOSS_MSE ? "mse" : "bce", l2norm, wd, rel_err(loss0, tl0), worst, P_STEPS, worst_traj, tl[0], tl[P_STEPS - 1]);
    cb_model_free(m);
    fixture_free(&f);
    tu_rmrf(dir);
    free(dir);
}

static void torch_parity(void **state) {
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) TU_SKIP("/usr/bin/python3 is absent (scripts/install-deps.sh installs it)");
    if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0)
        TU_SKIP("/usr/bin/python3 has no torch/numpy (Debian python3-torch, scripts/install-deps.sh)");
    parity_case(CB_LOSS_MSE, true, 0.0f);
    parity_case(CB_LOSS_BCE, false, 1e-3f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_check),      cmocka_unit_test(n_params_and_tensors),
        cmocka_unit_test(gradcheck_model),   cmocka_unit_test(deterministic),
        cmocka_unit_test(learns_and_reports), cmocka_unit_test(early_stopping),
        cmocka_unit_test(nan_stops),         cmocka_unit_test(tensors_roundtrip),
        cmocka_unit_test(torch_parity),      cmocka_unit_test(sampled_negatives),
        cmocka_unit_test(lazy_embedding),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
