/* bench_train — training speed of the two-tower model against PyTorch, each
 * at its best thread count, on the same feature tables, in the same run.
 *
 * The model on both sides: 256-128-32 ReLU towers, l2-normalised outputs,
 * dot product, MSE on targets in [-1, 1] (objective rating: no id
 * embedding, no history bag), Adam lr 0.01. Two shapes:
 *   default  the feature tables `cbrec train` builds (default features) for a
 *            synthetic MovieLens-like set (6,040 users, 3,700 items, 12
 *            genres): user input 1,052 wide (~13 % non-zero; its dense head
 *            declared, so the sparse first layer takes it by sgemm, as
 *            `cbrec train` does with the rows form), item input 16;
 *            examples are its ratings, rescaled to [-1, 1];
 *   lab      the course lab's shape: 40,707 pre-joined rows, 14 user and 16
 *            item inputs (Gaussian), a learnable target in [-1, 1].
 * For each shape and batch (256, 1024): cbrec at 1 and 2 threads, PyTorch
 * (bench/train_torch.py, /usr/bin/python3) at 1 and 2 threads
 * (torch.set_num_threads); the RATIO is cbrec's best over PyTorch's best.
 * The sgemm peak (1536³, 1 and 2 threads) is measured in the same run: the
 * dense part's FLOP rate (forward + backward of the layers) at cbrec's best
 * thread count is given as a share of the peak at that thread count, and
 * the same at the other thread count.
 * --vs-dense: each cbrec run is paired (A B) with one whose user tower's first
 * layer is forced dense (cb_model_set_sparse_input 0: sgemm, as before the
 * sparse layer), and the ratio sparse / dense is printed per batch and thread count.
 * Usage: bench_train [--ratings N] [--lab-epochs N] [--torch-examples N] [--no-torch] [--shape default|lab]
 *                    [--vs-dense]
 * Exit status 0 whatever the figures (a benchmark reports, it does not judge). */
#include "data/dataset.h"
#include "features/featurize.h"
#include "model/model.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAB_ROWS 40707
#define LAB_USER_IN 14
#define LAB_ITEM_IN 16
#define N_BATCHES 2
#define N_THREADS 2
static const int batches[N_BATCHES] = {256, 1024};

/* One shape: the tables and the examples (user row, item row, target). */
typedef struct shape {
    const char *name;
    float *xu, *xm;
    uint32_t n_users, user_in, n_items, item_in;
    uint32_t user_head;  /* the user table's dense head (the rows form's, as `cbrec train` has it) */
    cb_rating *ratings;
    uint32_t *idx;
    size_t n;
    int epochs;  /* cbrec epochs per run */
    double eps[N_BATCHES][N_THREADS], loss[N_BATCHES][N_THREADS];        /* cbrec */
    double dense_eps[N_BATCHES][N_THREADS];                               /* --vs-dense: first layer dense */
    double torch_eps[N_BATCHES][N_THREADS];                               /* PyTorch, NAN = not run */
} shape;

static void model_config(cb_model_config *c, const shape *s, int batch, int epochs, int threads) {
    cb_model_config_default(c);
    c->objective = CB_OBJECTIVE_RATING; /* the peer's model: MSE on the dot product, nothing else */
    c->loss = CB_LOSS_MSE;
    c->item_id_embedding = false;
    c->item_ids = 0;
    c->history_dim = c->history_items = 0;
    c->item_dropout = c->user_dropout = 0;
    c->n_user_layers = c->n_item_layers = 2;
    c->user_layers[0] = c->item_layers[0] = 256;
    c->user_layers[1] = c->item_layers[1] = 128;
    c->dim = 32;
    c->l2norm = true;
    c->target_scale = 1, c->target_shift = 0;
    c->lr = 0.01f;
    c->user_in = s->user_in, c->item_in = s->item_in;
    c->batch_size = (uint32_t)batch, c->epochs = (uint32_t)epochs, c->threads = threads;
}

/* Dense FLOPs per example: forward 2·in·out per layer; backward dW 2·in·out,
 * dX 2·in·out except for the first layer. */
static double model_flops_per_example(const cb_model_config *c) {
    double f = 0;
    for (int side = 0; side < 2; side++) {
        uint32_t prev = side ? c->item_in : c->user_in;
        uint32_t n = side ? c->n_item_layers : c->n_user_layers;
        const uint32_t *w = side ? c->item_layers : c->user_layers;
        for (uint32_t l = 0; l <= n; l++) {
            uint32_t out = l < n ? w[l] : c->dim;
            double mac = (double)prev * out;
            f += 2 * mac + 2 * mac + (l > 0 ? 2 * mac : 0);
            prev = out;
        }
    }
    return f;
}

static double sgemm_peak(int threads) {
    openblas_set_num_threads(threads);
    int n = 1536;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = calloc((size_t)n * n, sizeof(float));
    if (!a || !b || !c) { fprintf(stderr, "bench_train: out of memory\n"); exit(1); }
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 13) * 0.01f;
    double best = 0;
    for (int r = 0; r < 6; r++) {
        double t0 = cb_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * n / (cb_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a), free(b), free(c);
    return best;
}

static void train_once(shape *s, int bi, int ti, bool dense) {
    cb_model_config c;
    model_config(&c, s, batches[bi], s->epochs, ti + 1);
    cb_train_data d = {.user_x = s->xu, .n_users = s->n_users, .item_x = s->xm, .n_items = s->n_items,
                       .ratings = s->ratings, .train_idx = s->idx, .n_train = s->n, .user_dense_head = s->user_head};
    cb_model *m;
    cb_error err;
    cb_train_result res;
    if (cb_model_create(&m, &c, &err) != CB_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        exit(1);
    }
    cb_model_set_sparse_input(m, dense ? 0 : -1);
    if (cb_model_train(m, &d, NULL, NULL, &res, &err) != CB_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        exit(1);
    }
    if (dense) {
        s->dense_eps[bi][ti] = (double)s->n * res.epochs_run / res.seconds;
        return cb_model_free(m);
    }
    s->eps[bi][ti] = (double)s->n * res.epochs_run / res.seconds;
    s->loss[bi][ti] = res.train_loss;
    cb_model_free(m);
}

/* ---- the two shapes */

static void shape_alloc(shape *s, size_t n) {
    s->xu = malloc(sizeof(float) * s->n_users * s->user_in);
    s->xm = malloc(sizeof(float) * s->n_items * s->item_in);
    s->ratings = malloc(sizeof(cb_rating) * n);
    s->idx = malloc(sizeof(uint32_t) * n);
    if (!s->xu || !s->xm || !s->ratings || !s->idx) { fprintf(stderr, "bench_train: out of memory\n"); exit(1); }
    s->n = n;
    for (size_t i = 0; i < n; i++) s->idx[i] = (uint32_t)i;
    for (int b = 0; b < N_BATCHES; b++)
        for (int t = 0; t < N_THREADS; t++) s->torch_eps[b][t] = NAN;
}

static void shape_lab(shape *s, int epochs) {
    *s = (shape){.name = "lab", .n_users = LAB_ROWS, .user_in = LAB_USER_IN, .n_items = LAB_ROWS,
                 .item_in = LAB_ITEM_IN, .epochs = epochs};
    shape_alloc(s, LAB_ROWS);
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    for (size_t i = 0; i < (size_t)LAB_ROWS * LAB_USER_IN; i++) s->xu[i] = (float)cb_rng_normal(&rng);
    for (size_t i = 0; i < (size_t)LAB_ROWS * LAB_ITEM_IN; i++) s->xm[i] = (float)cb_rng_normal(&rng);
    for (uint32_t i = 0; i < LAB_ROWS; i++) { /* row i pairs user row i with item row i (pre-joined) */
        const float *u = s->xu + (size_t)i * LAB_USER_IN, *m = s->xm + (size_t)i * LAB_ITEM_IN;
        float y = (float)tanh(0.5 * (u[0] * m[0] + u[1] - m[2]));
        s->ratings[i] = (cb_rating){i, i, y, 0};
    }
}

static void shape_default(shape *s, size_t n_ratings) {
    cb_synth_config sc;
    cb_synth_config_default(&sc);
    sc.n_users = 6040, sc.n_items = 3700, sc.n_genres = 12, sc.n_ratings = n_ratings, sc.seed = 42;
    cb_dataset *ds = NULL;
    cb_features *f = NULL;
    cb_error err;
    uint32_t *all = malloc(sizeof(uint32_t) * n_ratings);
    if (!all) exit(1);
    for (size_t i = 0; i < n_ratings; i++) all[i] = (uint32_t)i;
    if (cb_synth_generate(&ds, &sc, &err) || cb_features_fit(&f, ds, all, ds->n_ratings, NULL, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        exit(1);
    }
    *s = (shape){.name = "default", .n_users = cb_dataset_n_users(ds), .user_in = cb_features_user_dim(f),
                 .n_items = cb_dataset_n_items(ds), .item_in = cb_features_item_dim(f), .epochs = 1};
    shape_alloc(s, ds->n_ratings);
    cb_rows rows = {0};
    if (cb_features_users(f, ds, all, ds->n_ratings, s->xu, &err) || cb_features_items(f, ds, s->xm, &err) ||
        cb_features_user_rows(f, ds, all, ds->n_ratings, &rows, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        exit(1);
    }
    s->user_head = rows.head;
    cb_rows_free(&rows);
    for (size_t i = 0; i < s->n; i++) { /* ratings 0.5..5 -> [-1, 1] */
        cb_rating r = ds->ratings[i];
        r.y = (r.y - 2.75f) / 2.25f;
        s->ratings[i] = r;
    }
    cb_features_free(f);
    cb_dataset_free(ds);
    free(all);
}

static void shape_free(shape *s) { free(s->xu), free(s->xm), free(s->ratings), free(s->idx); }

/* ---- the PyTorch peer */

static int write_raw(const char *dir, const char *name, const void *p, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, bytes, f);
    return (fclose(f) == 0 && w == bytes) ? 0 : -1;
}

static int write_tables(const shape *s, const char *dir) {
    int32_t *u = malloc(sizeof(int32_t) * s->n), *m = malloc(sizeof(int32_t) * s->n);
    float *y = malloc(sizeof(float) * s->n);
    int rc = u && m && y ? 0 : -1;
    for (size_t i = 0; !rc && i < s->n; i++) u[i] = (int32_t)s->ratings[i].user, m[i] = (int32_t)s->ratings[i].item, y[i] = s->ratings[i].y;
    char shape_txt[200];
    snprintf(shape_txt, sizeof shape_txt, "%u %u %u %u %zu\n", s->n_users, s->user_in, s->n_items, s->item_in, s->n);
    if (!rc) rc = write_raw(dir, "shape.txt", shape_txt, strlen(shape_txt));
    if (!rc) rc = write_raw(dir, "xu.f32", s->xu, sizeof(float) * s->n_users * s->user_in);
    if (!rc) rc = write_raw(dir, "xm.f32", s->xm, sizeof(float) * s->n_items * s->item_in);
    if (!rc) rc = write_raw(dir, "u.i32", u, sizeof(int32_t) * s->n);
    if (!rc) rc = write_raw(dir, "m.i32", m, sizeof(int32_t) * s->n);
    if (!rc) rc = write_raw(dir, "y.f32", y, sizeof(float) * s->n);
    free(u), free(m), free(y);
    return rc;
}

/* Runs the torch script on s's tables; NULL, or why it did not run. */
static const char *run_torch(shape *s, size_t examples, double *rss_mb) {
    char dir[] = "/tmp/cbrec-bench-XXXXXX";
    if (!mkdtemp(dir)) return "mkdtemp failed";
    const char *why = NULL;
    if (write_tables(s, dir)) why = "could not write the tables";
    char cmd[8192];
    const char *script = getenv("CBREC_TORCH_SCRIPT") ? getenv("CBREC_TORCH_SCRIPT") : "bench/train_torch.py";
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %zu 256,1024 1,2", script, dir, examples);
    FILE *p = why ? NULL : popen(cmd, "r");
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        int batch, threads;
        double eps, loss;
        if (sscanf(line, "torch batch=%d threads=%d examples_per_s=%lf loss=%lf", &batch, &threads, &eps, &loss) == 4) {
            for (int b = 0; b < N_BATCHES; b++)
                if (batches[b] == batch && threads >= 1 && threads <= N_THREADS) s->torch_eps[b][threads - 1] = eps;
        } else sscanf(line, "torch peak_rss_mb=%lf", rss_mb);
    }
    if (p && pclose(p) != 0) why = "the torch script failed (see its stderr above)";
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return why;
}

/* ---- report */

static int best_of(const double *v) { return v[1] > v[0] ? 1 : 0; }

static void report(const shape *s, const double peak[N_THREADS], bool torch, bool vs_dense) {
    cb_model_config c;
    model_config(&c, s, 256, 1, 1);
    double fpe = model_flops_per_example(&c);
    printf("\nshape %s: user input %u wide, item input %u, %zu examples; dense part %.2f MFLOP per example\n", s->name,
           s->user_in, s->item_in, s->n, fpe / 1e6);
    printf("  %-6s %12s %12s %12s %12s %9s %22s\n", "batch", "cbrec 1t", "cbrec 2t", "torch 1t", "torch 2t", "ratio",
           "cbrec dense / peak");
    for (int b = 0; b < N_BATCHES; b++) {
        int cb = best_of(s->eps[b]), tb = best_of(s->torch_eps[b]);
        double gflops = fpe * s->eps[b][cb] / 1e9;
        printf("  %-6d %12.0f %12.0f %12.0f %12.0f %8.2fx %7.1f%% (%.1f GFLOP/s)\n", batches[b], s->eps[b][0],
               s->eps[b][1], s->torch_eps[b][0], s->torch_eps[b][1],
               torch ? s->eps[b][cb] / s->torch_eps[b][tb] : NAN, 100 * gflops / peak[cb], gflops);
    }
    for (int b = 0; b < N_BATCHES; b++)
        for (int t = 0; vs_dense && t < N_THREADS; t++)
            printf("RATIO %s batch %d, %d thread%s: sparse first layer / dense (paired runs)  %.2fx (%.0f vs %.0f)\n",
                   s->name, batches[b], t + 1, t ? "s" : "", s->eps[b][t] / s->dense_eps[b][t], s->eps[b][t],
                   s->dense_eps[b][t]);
    for (int b = 0; b < N_BATCHES; b++) {
        int cb = best_of(s->eps[b]), tb = best_of(s->torch_eps[b]);
        if (torch)
            printf("RATIO %s batch %d: cbrec (%d thread%s) / torch at its best (%d thread%s)  %.2fx\n", s->name,
                   batches[b], cb + 1, cb ? "s" : "", tb + 1, tb ? "s" : "", s->eps[b][cb] / s->torch_eps[b][tb]);
        printf("RATIO %s batch %d: cbrec dense FLOP rate / sgemm peak (%d thread%s)  %.1f%%\n", s->name, batches[b],
               cb + 1, cb ? "s" : "", 100 * fpe * s->eps[b][cb] / 1e9 / peak[cb]);
        /* the same at the other thread count: the kernels' share apart from what splitting the batch costs */
        printf("  (at %d thread%s: %.1f%% of that thread count's peak)\n", 2 - cb, cb ? "" : "s",
               100 * fpe * s->eps[b][1 - cb] / 1e9 / peak[1 - cb]);
    }
}

int main(int argc, char **argv) {
    size_t n_ratings = 200000, torch_examples = 50000;
    int lab_epochs = 3, want_torch = 1, vs_dense = 0;
    const char *only = NULL; /* --shape: one shape only (e.g. under perf) */
    static struct option opts[] = {{"ratings", required_argument, 0, 'r'},
                                   {"lab-epochs", required_argument, 0, 'e'},
                                   {"torch-examples", required_argument, 0, 't'},
                                   {"no-torch", no_argument, 0, 'n'},
                                   {"shape", required_argument, 0, 's'},
                                   {"vs-dense", no_argument, 0, 'd'},
                                   {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'r') n_ratings = strtoull(optarg, NULL, 10);
        else if (ch == 'e') lab_epochs = atoi(optarg);
        else if (ch == 't') torch_examples = strtoull(optarg, NULL, 10);
        else if (ch == 'n') want_torch = 0;
        else if (ch == 's') only = optarg;
        else if (ch == 'd') vs_dense = 1;
        else {
            fprintf(stderr, "usage: %s [--ratings N] [--lab-epochs N] [--torch-examples N] [--no-torch] [--shape default|lab] [--vs-dense]\n",
                    argv[0]);
            return 2;
        }
    }
    if (only && strcmp(only, "default") && strcmp(only, "lab")) {
        fprintf(stderr, "bench_train: --shape is default or lab\n");
        return 2;
    }
    if (n_ratings < 10000 || lab_epochs < 1 || torch_examples < 1024) {
        fprintf(stderr, "bench_train: --ratings >= 10000, --lab-epochs >= 1, --torch-examples >= 1024\n");
        return 2;
    }
    const char *skip = NULL;
    if (!want_torch) skip = "--no-torch";
    else if (access("/usr/bin/python3", X_OK) != 0) skip = "/usr/bin/python3 absent";
    else if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) skip = "torch not installed for /usr/bin/python3";

    double peak[N_THREADS] = {sgemm_peak(1), sgemm_peak(2)};
    double torch_rss = NAN;
    shape shapes[2];
    shape_default(&shapes[0], n_ratings);
    shape_lab(&shapes[1], lab_epochs);
    for (int k = 0; k < 2; k++) {
        shape *s = &shapes[k];
        if (only && strcmp(only, s->name)) continue;
        for (int b = 0; b < N_BATCHES; b++)
            for (int t = 0; t < N_THREADS; t++) {
                train_once(s, b, t, false);
                if (vs_dense) train_once(s, b, t, true);
            }
        const char *why = skip ? skip : run_torch(s, torch_examples, &torch_rss);
        if (why && !skip) skip = why;
    }
    double again[N_THREADS] = {sgemm_peak(1), sgemm_peak(2)}; /* the machine may have been busier at the start */
    for (int t = 0; t < N_THREADS; t++) peak[t] = again[t] > peak[t] ? again[t] : peak[t];

    printf("bench_train: two towers 256-128-32, l2norm, MSE, Adam 0.01; examples per second (wall), each side at 1 "
           "and 2 threads\n");
    printf("sgemm peak 1536^3 (best of the start and the end of the run): 1 thread %.1f GFLOP/s, 2 threads %.1f "
           "GFLOP/s\n", peak[0], peak[1]);
    for (int k = 0; k < 2; k++)
        if (!only || !strcmp(only, shapes[k].name)) report(&shapes[k], peak, !skip, vs_dense);
    if (skip) printf("torch skipped: %s\n", skip);
    else printf("torch peak RSS %.1f MB\n", torch_rss);
    for (int k = 0; k < 2; k++) shape_free(&shapes[k]);
    return 0;
}
