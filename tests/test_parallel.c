/* Tests for data-parallel training (model/parallel.c and train.c's steps):
 * the pool's split and reduction; a fixed thread count trains the same bits
 * twice; 1, 2 and 3 threads train the same model within float tolerance
 * (the objective `both`: in-batch softmax over the whole batch, rating head,
 * item ids, history bag, item and user dropout); and two ranks joined by an
 * in-process cb_train_comm (threads standing in for MPI processes) end with
 * identical parameters that match one process with the same global batch.
 * The same with sampled negatives, row weights and a learning-rate decay
 * (the negatives split across workers and ranks like the batch rows), and
 * with the sparse first layer (W0 trained transposed, some batches dense). */
#include "testutil.h"
#include "model/model.h"
#include "model/parallel.h"

#include <math.h>
#include <pthread.h>

typedef struct fixture {
    float *xu, *xm;
    cb_rating *r;
    uint32_t *idx, *h_off, *h_item;
    cb_train_data d;
    int sparse;              /* train the user tower's first layer sparse (cb_model_set_sparse_input) */
    uint64_t jitter;         /* deal W0's rows among the workers at random (cb_model_jitter_w0_shares), 0: not */
} fixture;

enum { N_EX = 900, N_USERS = 60, N_ITEMS = 45, UIN = 6, IIN = 5 };

static void fixture_make(fixture *f) {
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    f->xu = malloc(sizeof(float) * N_USERS * UIN);
    f->xm = malloc(sizeof(float) * N_ITEMS * IIN);
    for (int i = 0; i < N_USERS * UIN; i++) f->xu[i] = (float)cb_rng_normal(&rng);
    for (int i = 0; i < N_ITEMS * IIN; i++) f->xm[i] = (float)cb_rng_normal(&rng);
    f->r = malloc(sizeof(cb_rating) * N_EX);
    f->idx = malloc(sizeof(uint32_t) * N_EX);
    f->h_off = calloc(N_USERS + 1, sizeof(uint32_t));
    f->h_item = malloc(sizeof(uint32_t) * N_EX);
    for (int i = 0; i < N_EX; i++) {
        uint32_t u = (uint32_t)(i % N_USERS), m = (uint32_t)((i * 7 + i / N_USERS) % N_ITEMS);
        double s = tanh(f->xu[u * UIN] * f->xm[m * IIN] + 0.5 * f->xu[u * UIN + 1]);
        f->r[i] = (cb_rating){u, m, (float)s, 0};
        f->idx[i] = (uint32_t)i;
        f->h_off[u + 1]++;
    }
    for (int u = 0; u < N_USERS; u++) f->h_off[u + 1] += f->h_off[u];
    uint32_t fill[N_USERS] = {0};
    for (int i = 0; i < N_EX; i++) { /* each user's items, for the history bag */
        uint32_t u = f->r[i].user;
        f->h_item[f->h_off[u] + fill[u]++] = f->r[i].item;
    }
    f->sparse = 0;
    f->d = (cb_train_data){.user_x = f->xu, .n_users = N_USERS, .item_x = f->xm, .n_items = N_ITEMS,
                           .ratings = f->r, .train_idx = f->idx, .n_train = N_EX - 100,
                           .valid_idx = f->idx + N_EX - 100, .n_valid = 100,
                           .hist_off = f->h_off, .hist_item = f->h_item};
}

static void fixture_free(fixture *f) {
    free(f->xu), free(f->xm), free(f->r), free(f->idx), free(f->h_off), free(f->h_item);
}

/* The product's defaults (objective both, split heads, dropouts) on a small shape. */
static void config(cb_model_config *c) {
    cb_model_config_default(c);
    c->user_in = UIN, c->item_in = IIN;
    c->user_layers[0] = 16, c->user_layers[1] = 8;
    c->n_item_layers = 1, c->item_layers[0] = 12;
    c->dim = 4;
    c->item_ids = N_ITEMS;
    c->history_dim = 3, c->history_items = N_ITEMS;
    c->batch_size = 64, c->epochs = 2;
}

static cb_model *trained(const fixture *f, const cb_model_config *c, cb_train_result *res) {
    cb_model *m;
    cb_error err;
    assert_int_equal(cb_model_create(&m, c, &err), CB_OK);
    if (f->sparse) cb_model_set_sparse_input(m, 1);
    if (f->jitter) cb_model_jitter_w0_shares(m, f->jitter);
    int rc = cb_model_train(m, &f->d, NULL, NULL, res, &err);
    if (rc != CB_OK) fail_msg("train: %s", err.msg);
    return m;
}

/* max |a - b| over every parameter, relative to max |a| (0: the same bits). */
static double param_diff(const cb_model *a, const cb_model *b, int *same_bits) {
    double worst = 0.0, scale = 0.0;
    *same_bits = 1;
    for (size_t i = 0; i < cb_model_n_tensors(a); i++) {
        cb_tensor x, y;
        cb_model_tensor(a, i, &x), cb_model_tensor(b, i, &y);
        size_t n = x.ndim == 2 ? (size_t)x.shape[0] * x.shape[1] : x.shape[0];
        if (memcmp(x.data, y.data, n * sizeof(float))) *same_bits = 0;
        for (size_t j = 0; j < n; j++) {
            double d = fabs((double)x.data[j] - y.data[j]);
            if (d > worst) worst = d;
            if (fabs(x.data[j]) > scale) scale = fabs(x.data[j]);
        }
    }
    return worst / (scale > 0 ? scale : 1.0);
}

static void split_and_reduce(void **state) {
    (void)state;
    /* the parts tile the range, in order, cut at multiples of align */
    for (size_t n = 0; n < 200; n += 13)
        for (int parts = 1; parts <= 5; parts++) {
            size_t prev = 0;
            for (int i = 0; i < parts; i++) {
                size_t lo, hi;
                cb_pool_split(n, parts, i, 16, &lo, &hi);
                assert_int_equal(lo, prev);
                assert_true(hi >= lo && hi <= n);
                if (i < parts - 1) assert_int_equal(hi % 16, 0);
                prev = hi;
            }
            assert_int_equal(prev, n);
        }
    float a[37], b[37], c[37], out[37];
    for (int i = 0; i < 37; i++) a[i] = (float)i, b[i] = 0.5f * (float)i, c[i] = -1.0f;
    float *src[3] = {a, b, c};
    memset(out, 0, sizeof out);
    cb_pool_reduce(out, src, 3, 5, 30);
    for (int i = 0; i < 37; i++) assert_true(out[i] == (i >= 5 && i < 30 ? (a[i] + b[i]) + c[i] : 0.0f));
}

/* Every worker adds its id at each of many barriers: a lost wake-up hangs,
 * a barrier that lets one through early gives a wrong sum. */
typedef struct pool_job {
    cb_pool *pool;
    int slot[8];
    int rounds, bad;
} pool_job;

static void pool_fn(void *ctx, int w) {
    pool_job *j = ctx;
    int n = cb_pool_size(j->pool);
    for (int r = 0; r < j->rounds; r++) {
        j->slot[w] = r * 10 + w;
        cb_pool_barrier(j->pool);
        int sum = 0;
        for (int v = 0; v < n; v++) sum += j->slot[v] - r * 10;
        if (sum != n * (n - 1) / 2) j->bad = 1;
        cb_pool_barrier(j->pool);
    }
}

static void pool_barrier(void **state) {
    (void)state;
    for (int n = 1; n <= 4; n++) {
        cb_pool *p;
        cb_error err;
        assert_int_equal(cb_pool_create(&p, n, &err), CB_OK);
        assert_int_equal(cb_pool_size(p), n);
        pool_job j = {.pool = p, .rounds = 2000};
        cb_pool_run(p, pool_fn, &j);
        cb_pool_run(p, pool_fn, &j); /* the pool is reused across runs (epochs) */
        assert_false(j.bad);
        cb_pool_free(p);
    }
    cb_pool_free(NULL);
}

/* 1, 2 and 3 threads train the same model within float tolerance (2e-5 of
 * the largest parameter after 26 Adam steps: 3 threads with the sparse
 * layer's dense head measure 1.0e-5, 2-4e-6 elsewhere); a fixed count the
 * same bits twice, and with the sparse layer the same bits again when W0's
 * rows are dealt among the workers at random each step (the shares that
 * follow the workers' times move the work, never the model); seed 2
 * differs by > 1e-2 (the tolerance could fail). */
static void threads_agree(const fixture *f, cb_model_config c) {
    cb_model *by_n[4] = {0};
    for (int n = 1; n <= 3; n++) {
        c.threads = n;
        cb_train_result res;
        by_n[n] = trained(f, &c, &res);
        assert_int_equal(res.threads, n);
        if (n == 2) { /* a fixed thread count: the same bits on a second run */
            int same;
            cb_model *again = trained(f, &c, NULL);
            param_diff(by_n[2], again, &same);
            assert_true(same);
            cb_model_free(again);
        }
        if (n >= 2 && f->sparse) {
            fixture g = *f;
            g.jitter = 0x9E3779B97F4A7C15u + (uint64_t)n;
            cb_model *dealt = trained(&g, &c, NULL);
            int same;
            param_diff(by_n[n], dealt, &same);
            if (!same) fail_msg("%d threads: W0's rows dealt at random changed the model", n);
            cb_model_free(dealt);
        }
    }
    for (int n = 2; n <= 3; n++) {
        int same;
        double d = param_diff(by_n[1], by_n[n], &same);
        print_message("threads 1 vs %d: worst parameter difference %.2e of the largest parameter\n", n, d);
        assert_true(d < 2e-5);
    }
    /* a different seed is a different model: the tolerance above could fail */
    c.threads = 1, c.seed = 2;
    cb_model *other = trained(f, &c, NULL);
    int same;
    assert_true(param_diff(by_n[1], other, &same) > 1e-2);
    cb_model_free(other);
    for (int n = 1; n <= 3; n++) cb_model_free(by_n[n]);
}

/* The held-out loss and RMSE (cb_model_evaluate: its batches on the
 * model's threads) are the same bits on 1, 2 and 3 threads, and a second
 * model's differ. */
static void threads_same_evaluation(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f);
    cb_model_config c;
    config(&c);
    c.threads = 1;
    cb_model *m = trained(&f, &c, NULL);
    cb_error err;
    double loss[4], rmse[4];
    for (int n = 1; n <= 3; n++) {
        c.threads = n;
        assert_int_equal(cb_model_set_train_config(m, &c, &err), CB_OK);
        assert_int_equal(cb_model_evaluate(m, &f.d, f.idx, N_EX, &loss[n], &rmse[n], &err), CB_OK);
        assert_true(isfinite(loss[n]) && rmse[n] > 0);
    }
    assert_memory_equal(&loss[1], &loss[2], sizeof(double));
    assert_memory_equal(&loss[1], &loss[3], sizeof(double));
    assert_memory_equal(&rmse[1], &rmse[2], sizeof(double));
    assert_memory_equal(&rmse[1], &rmse[3], sizeof(double));
    c.seed = 2;
    cb_model *other = trained(&f, &c, NULL);
    assert_int_equal(cb_model_evaluate(other, &f.d, f.idx, N_EX, &loss[0], &rmse[0], &err), CB_OK);
    assert_true(loss[0] != loss[1]);
    cb_model_free(other);
    cb_model_free(m);
    fixture_free(&f);
}

static void threads_same_model(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f);
    cb_model_config c;
    config(&c);
    threads_agree(&f, c);
    fixture_free(&f);
}

/* Sampled negatives (forwarded by the workers that own them, their id rows
 * in the touched lists), half-weight picks below 0 and lr decay. */
static void negatives_config(cb_model_config *c) {
    config(c);
    c->negatives = 24, c->negatives_power = 0.5f;
    c->positive_threshold = 0.0f, c->below_weight = 0.5f;
    c->lr_decay = 0.5f, c->epochs = 3;
}

static void threads_same_model_negatives(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f);
    cb_model_config c;
    negatives_config(&c);
    threads_agree(&f, c);
    /* the options change the model: the agreement above is not in-batch training's */
    cb_model *a = trained(&f, &c, NULL);
    for (int k = 0; k < 3; k++) {
        cb_model_config o = c;
        if (k == 0) o.negatives = 0;
        if (k == 1) o.below_weight = 1.0f;
        if (k == 2) o.lr_decay = 1.0f;
        cb_model *b = trained(&f, &o, NULL);
        int same;
        double d = param_diff(a, b, &same);
        print_message("negatives: option %d off changes the parameters by %.2e\n", k, d);
        assert_true(d > 1e-3);
        cb_model_free(b);
    }
    cb_model_free(a);
    fixture_free(&f);
}

/* ---- two ranks in one process: threads and a shared buffer stand in for MPI */

typedef struct fake_world {
    pthread_barrier_t bar;
    float *slot[2];   /* each rank's buffer, while a call runs */
    size_t n[2];      /* each rank's all-reduce length: the ranks must agree */
} fake_world;

typedef struct fake_rank {
    fake_world *w;
    cb_train_comm comm;
    const fixture *f;
    cb_model_config c;
    cb_model *m;
    int rc;
    double loss, rmse; /* the held-out loss of all N_EX examples, evaluated across the ranks */
} fake_rank;

static int fake_allgather(void *ctx, float *buf, const int *count, const int *offset) {
    fake_rank *r = ctx;
    int me = r->comm.rank, other = 1 - me;
    r->w->slot[me] = buf;
    pthread_barrier_wait(&r->w->bar);
    memcpy(buf + offset[other], r->w->slot[other] + offset[other], (size_t)count[other] * sizeof(float));
    pthread_barrier_wait(&r->w->bar);
    return 0;
}

static int fake_allreduce(void *ctx, float *buf, size_t n) {
    fake_rank *r = ctx;
    int me = r->comm.rank;
    float *mine = malloc(n * sizeof(float));
    memcpy(mine, buf, n * sizeof(float));
    r->w->slot[me] = mine;
    r->w->n[me] = n;
    pthread_barrier_wait(&r->w->bar);
    if (r->w->n[0] != r->w->n[1]) { /* the other rank's buffer has another length: fail, not read past it */
        pthread_barrier_wait(&r->w->bar);
        free(mine);
        return 1;
    }
    for (size_t i = 0; i < n; i++) buf[i] = r->w->slot[0][i] + r->w->slot[1][i]; /* rank order on both */
    pthread_barrier_wait(&r->w->bar);
    free(mine);
    return 0;
}

static void *fake_main(void *arg) {
    fake_rank *r = arg;
    cb_error err;
    r->rc = cb_model_create(&r->m, &r->c, &err);
    if (!r->rc && r->f->sparse) cb_model_set_sparse_input(r->m, 1);
    cb_train_data d = r->f->d;
    d.comm = &r->comm;
    if (!r->rc) r->rc = cb_model_train(r->m, &d, NULL, NULL, NULL, &err);
    if (!r->rc) r->rc = cb_model_evaluate(r->m, &d, r->f->idx, N_EX, &r->loss, &r->rmse, &err);
    return NULL;
}

static void two_ranks_vs_one(const fixture *f, cb_model_config c) {
    c.threads = 1;
    cb_model *one = trained(f, &c, NULL);
    for (int threads = 1; threads <= 2; threads++) {
        fake_world w;
        pthread_barrier_init(&w.bar, NULL, 2);
        fake_rank r[2];
        pthread_t th[2];
        for (int k = 0; k < 2; k++) {
            r[k] = (fake_rank){.w = &w, .f = f, .c = c};
            r[k].c.threads = threads;
            r[k].comm = (cb_train_comm){k, 2, &r[k], fake_allgather, fake_allreduce};
            assert_int_equal(pthread_create(&th[k], NULL, fake_main, &r[k]), 0);
        }
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        assert_int_equal(r[0].rc, CB_OK);
        assert_int_equal(r[1].rc, CB_OK);
        int same;
        param_diff(r[0].m, r[1].m, &same);
        assert_true(same); /* every rank holds the same parameters */
        double loss, rmse; /* the ranks' evaluation (half the batches each): one process's bits */
        cb_error err;
        assert_int_equal(cb_model_evaluate(r[0].m, &f->d, f->idx, N_EX, &loss, &rmse, &err), CB_OK);
        assert_true(isfinite(loss));
        for (int k = 0; k < 2; k++) {
            assert_memory_equal(&r[k].loss, &loss, sizeof loss);
            assert_memory_equal(&r[k].rmse, &rmse, sizeof rmse);
        }
        double d = param_diff(one, r[0].m, &same);
        print_message("2 ranks x %d thread(s) vs one process: worst parameter difference %.2e\n", threads, d);
        assert_true(d < 1e-5);
        cb_model_free(r[0].m), cb_model_free(r[1].m);
        pthread_barrier_destroy(&w.bar);
    }
    cb_model_free(one);
}

static void two_ranks_match_one(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f);
    cb_model_config c;
    config(&c);
    two_ranks_vs_one(&f, c);
    negatives_config(&c); /* every rank draws the same negatives; each forwards its part */
    two_ranks_vs_one(&f, c);
    fixture_free(&f);
}

/* The sparse first layer: W0 and its moments trained transposed, its
 * gradient summed by rows over the workers' parts (train.c w0_rows), the
 * history bag's columns read from the transposed copy. The user rows are
 * the fixture's six columns and 90 mostly-zero ones (~20 % non-zero with
 * the bag), but one user in twenty is dense, so some shards exceed the
 * sparse layer's quarter of non-zeros and take the dense path in the same
 * epochs; 12 batches of 64 and one of a single row, so some workers have
 * no rows in a step (and leave nothing for W0's sum). */
static void check_sparse_first_layer(uint32_t head) {
    enum { WIDE = UIN + 90 };
    fixture f;
    fixture_make(&f);
    cb_rng rng;
    cb_rng_seed(&rng, 11);
    float *xu = malloc(sizeof(float) * N_USERS * WIDE);
    for (int u = 0; u < N_USERS; u++)
        for (int j = 0; j < WIDE; j++)
            xu[u * WIDE + j] = j < UIN ? f.xu[u * UIN + j] : u % 20 == 0 ? (float)cb_rng_normal(&rng)
                                                         : cb_rng_uniform(&rng) < 0.08 ? 1.0f : 0.0f;
    free(f.xu);
    f.xu = xu, f.d.user_x = xu, f.d.user_dense_head = head;
    f.d.n_train = 12 * 64 + 1;
    cb_model_config c;
    config(&c);
    c.user_in = WIDE, c.threads = 1;
    cb_model *dense = trained(&f, &c, NULL);
    f.sparse = 1;
    cb_model *sparse = trained(&f, &c, NULL);
    int same;
    double d = param_diff(dense, sparse, &same);
    print_message("sparse (dense head %u) vs dense first layer, 1 thread: worst parameter difference %.2e\n", head, d);
    assert_true(d < 1e-5); /* W0 trained in its copy and put back */
    assert_false(same);    /* the sparse path did run */
    cb_model_free(dense), cb_model_free(sparse);
    threads_agree(&f, c);
    two_ranks_vs_one(&f, c);
    negatives_config(&c);
    threads_agree(&f, c);
    fixture_free(&f);
}

static void sparse_first_layer(void **state) {
    (void)state;
    check_sparse_first_layer(0);
}

/* The same with the fixture's six columns declared a dense head
 * (cb_train_data.user_dense_head, as the rows form's head): a sparse batch
 * takes them by sgemm and lists only the 90 others. */
static void sparse_first_layer_dense_head(void **state) {
    (void)state;
    check_sparse_first_layer(UIN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_and_reduce),
        cmocka_unit_test(pool_barrier),
        cmocka_unit_test(threads_same_model),
        cmocka_unit_test(threads_same_evaluation),
        cmocka_unit_test(threads_same_model_negatives),
        cmocka_unit_test(two_ranks_match_one),
        cmocka_unit_test(sparse_first_layer),
        cmocka_unit_test(sparse_first_layer_dense_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
