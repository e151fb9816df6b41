/* bench_train — training speed of the two-tower model against PyTorch.
 *
 * Data of the course lab's shape (synthetic: 40,707 training rows, 14 user
 * and 16 item inputs, targets in [-1,1]); the lab's model (256-128-32 towers,
 * l2norm, MSE, Adam lr 0.01, batch 32). Measured in the same run:
 *   - cbrec examples/s vs the same model in PyTorch (bench/train_torch.py run
 *     with /usr/bin/python3, 2 threads) -> the speed RATIO;
 *   - cbrec at batch 1024: model FLOP/s vs a bare 2-thread sgemm peak;
 *   - peak RSS of each process.
 * Usage: bench_train [--epochs N] [--torch-epochs N] [--threads N] [--no-torch]
 * Exit status 0 whatever the figures (a benchmark reports, it does not judge). */
#include "model/model.h"
#include "model/nn.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_ROWS 40707
#define USER_IN 14
#define ITEM_IN 16

static double model_flops_per_example(const cb_model_config *c) {
    /* forward 2·in·out per layer; backward dW 2·in·out, dX 2·in·out except layer 0 */
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

typedef struct run_result { double ex_per_s, seconds, last_loss; } run_result;

static run_result train_once(cb_train_data *d, int batch, int epochs, int threads) {
    cb_model_config c;
    cb_model_config_default(&c);
    c.user_in = USER_IN, c.item_in = ITEM_IN;
    c.batch_size = (uint32_t)batch, c.epochs = (uint32_t)epochs, c.threads = threads;
    c.lr = 0.01f;
    cb_model *m;
    cb_error err;
    run_result rr = {0, 0, NAN};
    if (cb_model_create(&m, &c, &err) != CB_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    cb_train_result res;
    if (cb_model_train(m, d, NULL, NULL, &res, &err) != CB_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    rr.seconds = res.seconds;
    rr.ex_per_s = (double)d->n_train * res.epochs_run / res.seconds;
    rr.last_loss = res.train_loss;
    cb_model_free(m);
    return rr;
}

static int write_raw(const char *dir, const char *name, const void *p, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, bytes, f);
    return (fclose(f) == 0 && w == bytes) ? 0 : -1;
}

int main(int argc, char **argv) {
    int epochs = 30, torch_epochs = 3, threads = 2, run_torch = 1;
    static struct option opts[] = {{"epochs", required_argument, 0, 'e'},
                                   {"torch-epochs", required_argument, 0, 't'},
                                   {"threads", required_argument, 0, 'j'},
                                   {"no-torch", no_argument, 0, 'n'},
                                   {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'e') epochs = atoi(optarg);
        else if (ch == 't') torch_epochs = atoi(optarg);
        else if (ch == 'j') threads = atoi(optarg);
        else if (ch == 'n') run_torch = 0;
        else { fprintf(stderr, "usage: %s [--epochs N] [--torch-epochs N] [--threads N] [--no-torch]\n", argv[0]); return 2; }
    }
    /* data: row i pairs user row i with item row i (the lab's pre-joined layout) */
    float *xu = malloc(sizeof(float) * N_ROWS * USER_IN), *xm = malloc(sizeof(float) * N_ROWS * ITEM_IN);
    float *y = malloc(sizeof(float) * N_ROWS);
    cb_rating *ratings = malloc(sizeof(cb_rating) * N_ROWS);
    uint32_t *idx = malloc(sizeof(uint32_t) * N_ROWS);
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    for (int i = 0; i < N_ROWS * USER_IN; i++) xu[i] = (float)cb_rng_normal(&rng);
    for (int i = 0; i < N_ROWS * ITEM_IN; i++) xm[i] = (float)cb_rng_normal(&rng);
    for (int i = 0; i < N_ROWS; i++) {
        /* a learnable target: a smooth function of both sides, in [-1,1] */
        y[i] = (float)tanh(0.5 * (xu[i * USER_IN] * xm[i * ITEM_IN] + xu[i * USER_IN + 1] - xm[i * ITEM_IN + 2]));
        ratings[i] = (cb_rating){(uint32_t)i, (uint32_t)i, y[i], 0};
        idx[i] = (uint32_t)i;
    }
    cb_train_data d = {xu, N_ROWS, xm, N_ROWS, ratings, idx, N_ROWS, NULL, 0};

    cb_model_config c;
    cb_model_config_default(&c);
    c.user_in = USER_IN, c.item_in = ITEM_IN;
    double fpe = model_flops_per_example(&c);

    double peak2 = sgemm_peak(2), peak1 = sgemm_peak(1);
    openblas_set_num_threads(threads);
    run_result r32 = train_once(&d, 32, epochs, threads);
    run_result r1024 = train_once(&d, 1024, epochs < 10 ? epochs : 10, threads);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cb_rss_mb = ru.ru_maxrss / 1024.0;

    double torch_eps = NAN, torch_rss_mb = NAN, torch_loss = NAN;
    const char *skip = NULL;
    if (!run_torch) skip = "--no-torch";
    else if (access("/usr/bin/python3", X_OK) != 0) skip = "/usr/bin/python3 absent";
    else if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) skip = "torch not installed for /usr/bin/python3";
    if (!skip) {
        char dir[] = "/tmp/cbrec-bench-XXXXXX";
        if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
        if (write_raw(dir, "xu.f32", xu, sizeof(float) * N_ROWS * USER_IN) || write_raw(dir, "xm.f32", xm, sizeof(float) * N_ROWS * ITEM_IN) ||
            write_raw(dir, "y.f32", y, sizeof(float) * N_ROWS)) { perror("write"); return 1; }
        char cmd[8192];
        const char *script = getenv("CBREC_TORCH_SCRIPT") ? getenv("CBREC_TORCH_SCRIPT") : "bench/train_torch.py";
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %d %d %d %d %d", script, dir, N_ROWS, USER_IN, ITEM_IN, torch_epochs, threads);
        FILE *p = popen(cmd, "r");
        char line[512];
        while (p && fgets(line, sizeof line, p)) {
            double a, b, l;
            if (sscanf(line, "torch examples_per_s=%lf peak_rss_mb=%lf loss=%lf", &a, &b, &l) == 3) torch_eps = a, torch_rss_mb = b, torch_loss = l;
        }
        if (p) pclose(p);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
        if (isnan(torch_eps)) skip = "the torch script failed (see its stderr above)";
    }

    printf("bench_train: two-tower 14/16 -> 256-128-32, l2norm, MSE, Adam 0.01, %d rows, threads %d\n", N_ROWS, threads);
    printf("  %-34s %12s %10s\n", "run", "examples/s", "loss");
    printf("  %-34s %12.0f %10.4f\n", "cbrec batch 32", r32.ex_per_s, r32.last_loss);
    if (!skip) printf("  %-34s %12.0f %10.4f\n", "torch batch 32", torch_eps, torch_loss);
    printf("  %-34s %12.0f %10.4f\n", "cbrec batch 1024", r1024.ex_per_s, r1024.last_loss);
    printf("  model FLOPs/example (fwd+bwd)      %.0f\n", fpe);
    printf("  sgemm peak 1536^3: 2 threads %.1f GFLOP/s, 1 thread %.1f GFLOP/s\n", peak2, peak1);
    double g1024 = fpe * r1024.ex_per_s / 1e9;
    printf("RATIO speed cbrec/torch (batch 32)         %s%.1fx\n", skip ? "n/a " : "", skip ? 0.0 : r32.ex_per_s / torch_eps);
    printf("RATIO batch-1024 FLOP rate / sgemm peak   %.1f%% (%.1f of %.1f GFLOP/s)\n", 100 * g1024 / peak2, g1024, peak2);
    printf("RATIO batch-32 FLOP rate / sgemm peak     %.1f%% (%.1f GFLOP/s)\n", 100 * fpe * r32.ex_per_s / 1e9 / peak2, fpe * r32.ex_per_s / 1e9);
    if (!skip) printf("RATIO peak RSS cbrec/torch                 %.3f (%.1f MB vs %.1f MB)\n", cb_rss_mb / torch_rss_mb, cb_rss_mb, torch_rss_mb);
    else printf("torch skipped: %s; cbrec peak RSS %.1f MB\n", skip, cb_rss_mb);
    free(xu), free(xm), free(y), free(ratings), free(idx);
    return 0;
}
