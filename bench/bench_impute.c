/* bench_impute — imputing cold users' rating-derived features (the step of
 * `cbrec eval` for users without training ratings, src/features/impute.c)
 * against the plain reference (every training user scanned in double, a full
 * sort per cold user) in the same run, and how the fast path grows with the
 * number of users.
 *
 * Data: `cbrec synth`'s generator with 10 ratings per user and 20,000 items
 * (1M ratings = 100,000 users), a cold-users split (20 % of users held out),
 * default features (user input ~1,052 wide), k = 200 neighbours (eval's
 * default). Per size: seconds of the fast path (CPU and wall), of the
 * reference where asked (--reference-max, default the smallest size only:
 * it is quadratic), their ratio, and whether the two tables are identical.
 * Usage: bench_impute [--sizes 100000,250000,500000,1000000] [--reference-max N]
 * Exit status 0 whatever the figures, 1 if the two paths disagree. */
#include "data/dataset.h"
#include "features/featurize.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_clock.h"

typedef int (*impute_fn)(const cb_features *, float *, const uint8_t *, uint32_t, uint32_t, size_t *, cb_error *);

/* Time one imputation of a copy of X; the copy is returned in *out. */
static void time_one(impute_fn fn, const cb_features *f, const float *X, size_t bytes, const uint8_t *has,
                     uint32_t n_users, float **out, double *cpu, double *wall) {
    float *Y = malloc(bytes);
    if (!Y) { fprintf(stderr, "bench_impute: out of memory\n"); exit(1); }
    memcpy(Y, X, bytes);
    size_t n_cold;
    cb_error err;
    double c0 = bench_process_cpu(), w0 = cb_now();
    if (fn(f, Y, has, n_users, 200, &n_cold, &err)) { fprintf(stderr, "bench_impute: %s\n", err.msg); exit(1); }
    *cpu = bench_process_cpu() - c0, *wall = cb_now() - w0;
    *out = Y;
}

int main(int argc, char **argv) {
    char sizes_arg[512] = "100000,250000,500000,1000000";
    size_t reference_max = 100000;
    static struct option opts[] = {{"sizes", required_argument, 0, 's'}, {"reference-max", required_argument, 0, 'r'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 's') snprintf(sizes_arg, sizeof sizes_arg, "%s", optarg);
        else if (ch == 'r') reference_max = strtoull(optarg, NULL, 10);
        else { fprintf(stderr, "usage: %s [--sizes N,N,...] [--reference-max N]\n", argv[0]); return 2; }
    }
    int status = 0;
    printf("bench_impute: cold-users split 0.2, 10 ratings per user, 20,000 items, k = 200\n");
    printf("  %9s %7s %6s %6s %10s %10s %10s %10s %8s %10s %9s\n", "ratings", "users", "cold", "dim", "fast cpu",
           "fast wall", "ref cpu", "ref wall", "ref/fast", "us/user", "identical");
    for (char *tok = strtok(sizes_arg, ","); tok; tok = strtok(NULL, ",")) {
        size_t n_ratings = strtoull(tok, NULL, 10);
        cb_synth_config sc;
        cb_synth_config_default(&sc);
        sc.n_users = (uint32_t)(n_ratings / 10), sc.n_items = 20000, sc.n_ratings = n_ratings, sc.seed = 42;
        cb_dataset *ds = NULL;
        cb_features *f = NULL;
        cb_split sp;
        cb_error err;
        if (cb_synth_generate(&ds, &sc, &err) || cb_split_make(&sp, ds, CB_SPLIT_COLD_USERS, 0.2, 1, &err) ||
            cb_features_fit(&f, ds, sp.train, sp.n_train, NULL, &err)) {
            fprintf(stderr, "bench_impute: %s\n", err.msg);
            return 1;
        }
        uint32_t n_users = cb_dataset_n_users(ds), du = cb_features_user_dim(f);
        size_t bytes = (size_t)n_users * du * sizeof(float), n_cold = 0;
        float *X = malloc(bytes), *fast = NULL, *ref = NULL;
        uint8_t *has = calloc(n_users, 1);
        if (!X || !has || cb_features_users(f, ds, sp.train, sp.n_train, X, &err)) { fprintf(stderr, "bench_impute: setup failed\n"); return 1; }
        for (size_t j = 0; j < sp.n_train; j++) has[ds->ratings[sp.train[j]].user] = 1;
        for (uint32_t u = 0; u < n_users; u++) n_cold += !has[u];
        double fc, fw, rc = 0, rw = 0;
        time_one(cb_features_impute_cold, f, X, bytes, has, n_users, &fast, &fc, &fw);
        bool with_ref = n_ratings <= reference_max;
        if (with_ref) time_one(cb_features_impute_cold_reference, f, X, bytes, has, n_users, &ref, &rc, &rw);
        bool same = with_ref && !memcmp(fast, ref, bytes);
        if (with_ref && !same) status = 1;
        char rcs[16] = "-", rws[16] = "-", ratio[16] = "-";
        if (with_ref) {
            snprintf(rcs, sizeof rcs, "%.2f", rc);
            snprintf(rws, sizeof rws, "%.2f", rw);
            snprintf(ratio, sizeof ratio, "%.0fx", rc / fc);
        }
        printf("  %9zu %7u %6zu %6u %10.2f %10.2f %10s %10s %8s %10.1f %9s\n", n_ratings, n_users, n_cold, du, fc, fw,
               rcs, rws, ratio, 1e6 * fc / n_users, with_ref ? (same ? "yes" : "NO") : "-");
        fflush(stdout);
        free(X), free(fast), free(ref), free(has);
        cb_features_free(f);
        cb_split_free(&sp);
        cb_dataset_free(ds);
    }
    printf("(cpu: this process's CPU seconds, OpenBLAS threads included; us/user: fast CPU microseconds per user)\n");
    return status;
}
