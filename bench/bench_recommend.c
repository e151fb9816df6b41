/* bench_recommend — latency of one recommendation, in process.
 *
 * 1. ml-latest-small (skipped, saying so, when ../shared/data is absent):
 *    a quick model is trained (or $CBREC_BENCH_MODEL is loaded), then every
 *    user gets recommendations with the default sources (similar items from
 *    the precomputed table, genres, popularity, embedding retrieval over the
 *    whole catalog): p50 and p99 latency (goal: p99 < 1 ms), with the table
 *    and with exact similar-item search instead, and with the table and a
 *    neighbour budget of 20000 weights (cb_rec_neighbour_k). Then the batch
 *    (cb_recommender_recommend_batch, top 10 for every user, rated items
 *    filtered) against its peer, one sgemm of all user x item vectors plus a
 *    top-k scan of each row (goal: ratio <= 2), and against the loop of single
 *    recommend calls just measured; without and with the budget.
 * 2. A synthetic catalog of 1,000,000 random unit vectors x 32 with full
 *    embedding retrieval: p50 latency against the time to stream the item
 *    vectors from memory once (a plain sum over the matrix), measured in the
 *    same run (goal: ratio <= 2).
 * Usage: bench_recommend [n_items_synthetic]   (run by `make bench`). */
#include "rec/recommend.h"
#include "base/idtab.h"

#include <cblas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "bench_clock.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *t, size_t n, double p) {
    qsort(t, n, sizeof *t, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return t[i];
}

static int run_users(const cb_recommender *ctx, const cb_bundle *r, const char *label, uint32_t budget,
                     double *total) {
    cb_error err;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cfg.neighbour_budget = budget;
    double *t = malloc(r->n_users * sizeof *t), *tc = malloc(r->n_users * sizeof *tc);
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) { /* pass 0 warms caches and pages */
        n = 0;
        for (uint32_t u = 0; u < r->n_users; u++) {
            cb_profile p;
            cb_recommend_result res;
            double t0 = cb_now(), c0 = bench_thread_cpu();
            if (cb_recommend_profile_user(&p, r, u, &err) || cb_recommend(ctx, &p, &cfg, NULL, &res, &err)) {
                fprintf(stderr, "bench_recommend: %s\n", err.msg);
                free(t);
                free(tc);
                return 1;
            }
            tc[n] = bench_thread_cpu() - c0;
            t[n++] = cb_now() - t0;
            if (getenv("BENCH_DEBUG") && pass && t[n - 1] > 2e-3)
                fprintf(stderr, "slow user %u: %.2f ms, %d ratings\n", u, t[n - 1] * 1e3, r->seen_off[u + 1] - r->seen_off[u]);
            cb_recommend_result_free(&res);
            cb_recommend_profile_free(&p);
        }
    }
    *total = 0;
    for (size_t i = 0; i < n; i++) *total += t[i];
    double p50 = pct(t, n, 0.5), p99 = pct(t, n, 0.99), mx = t[n - 1];
    double c50 = pct(tc, n, 0.5), c99 = pct(tc, n, 0.99);
    printf("recommend ml-latest-small %-24s users=%zu wall p50=%.3f ms p99=%.3f ms max=%.3f ms | thread-cpu p50=%.3f ms "
           "p99=%.3f ms | p99/1ms wall=%.2f cpu=%.2f\n",
           label, n, p50 * 1e3, p99 * 1e3, mx * 1e3, c50 * 1e3, c99 * 1e3, p99 / 1e-3, c99 / 1e-3);
    free(t);
    free(tc);
    return 0;
}

/* The peer of the batch: one sgemm of every user vector against every item
 * vector, then a top-k scan of each row (no filtering). */
static void gemm_topk(const cb_bundle *r, size_t k, float *S, int32_t *best, float *bs) {
    size_t nu = r->n_users, ni = r->n_items, d = r->dim;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nu, (int)ni, (int)d, 1.0f, r->user_vecs, (int)d,
                r->item_vecs, (int)d, 0.0f, S, (int)ni);
    for (size_t u = 0; u < nu; u++) {
        const float *row = S + u * ni;
        int32_t *bi = best + u * k;
        float *bv = bs + u * k;
        size_t h = 0;
        for (size_t j = 0; j < ni; j++) {
            float v = row[j];
            if (h == k && v <= bv[k - 1]) continue;
            size_t pos = h < k ? h++ : k - 1;
            while (pos > 0 && bv[pos - 1] < v) {
                bv[pos] = bv[pos - 1];
                bi[pos] = bi[pos - 1];
                pos--;
            }
            bv[pos] = v;
            bi[pos] = (int32_t)j;
        }
    }
}

/* One batch call's wall and CPU time (every thread of the process). */
static int time_batch(const cb_recommender *rec, size_t nu, const cb_config *opts, int64_t *items, float *scores,
                      double *wall, double *cpu, cb_error *err) {
    double t0 = cb_now(), c0 = bench_process_cpu();
    int rc = cb_recommender_recommend_batch(rec, NULL, nu, 10, opts, items, scores, err);
    *wall = cb_now() - t0, *cpu = bench_process_cpu() - c0;
    return rc;
}

static void time_peer(const cb_bundle *r, int blas, float *S, int32_t *best, float *bs, double *wall, double *cpu) {
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(blas);
    double t0 = cb_now(), c0 = bench_process_cpu();
    gemm_topk(r, 10, S, best, bs);
    *wall = cb_now() - t0, *cpu = bench_process_cpu() - c0;
    openblas_set_num_threads(saved);
    struct timespec idle = {0, 300000000}; /* OpenBLAS's threads spin ~0.1 s after a product: not in the next timing */
    nanosleep(&idle, NULL);
}

/* Batch recommend for every user (filters: rated items) against the peer and
 * against the loop of single recommend calls measured before (loop_total).
 * Each at its best, A B A B: CPU time of the batch on one thread against the
 * peer with OpenBLAS at one thread (its least CPU; at two, its threads spin
 * between products); wall time of the batch on every core against the
 * peer's better wall of OpenBLAS at one thread and at every core. */
static int bench_batch(const cb_recommender *rec, const cb_bundle *r, const char *budget, double loop_total) {
    enum { K = 10, RUNS = 7 };
    size_t nu = r->n_users, ni = r->n_items;
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char cores_text[16];
    snprintf(cores_text, sizeof cores_text, "%d", cores > 0 ? cores : 1);
    cb_error err;
    cb_config *one = NULL, *all = NULL;
    if (cb_config_create(&one, CB_CONFIG_RECOMMEND, &err) || cb_config_set(one, "neighbour-budget", budget, &err) ||
        cb_config_create(&all, CB_CONFIG_RECOMMEND, &err) || cb_config_set(all, "neighbour-budget", budget, &err) ||
        cb_config_set(all, "threads", cores_text, &err)) {
        fprintf(stderr, "bench_recommend: %s\n", err.msg);
        return 1;
    }
    int64_t *items = malloc(nu * K * sizeof *items);
    float *scores = malloc(nu * K * sizeof *scores), *S = malloc(nu * ni * sizeof *S), *bs = malloc(nu * K * sizeof *bs);
    int32_t *best = malloc(nu * K * sizeof *best);
    double w1[RUNS], c1[RUNS], wa[RUNS], ca[RUNS], pw1[RUNS], pc1[RUNS], pwa[RUNS], pca[RUNS];
    int rc = items && scores && S && bs && best ? CB_OK : CB_ENOMEM;
    for (int run = 0; !rc && run < RUNS; run++) {
        rc = time_batch(rec, nu, one, items, scores, &w1[run], &c1[run], &err);
        time_peer(r, 1, S, best, bs, &pw1[run], &pc1[run]);
        if (!rc) rc = time_batch(rec, nu, all, items, scores, &wa[run], &ca[run], &err);
        time_peer(r, cores, S, best, bs, &pwa[run], &pca[run]);
    }
    if (rc) {
        fprintf(stderr, "bench_recommend: batch: %s\n", rc == CB_ENOMEM ? "out of memory" : err.msg);
    } else {
        double b1 = pct(c1, RUNS, 0.5), p1 = pct(pc1, RUNS, 0.5), bw = pct(wa, RUNS, 0.5), bw1 = pct(w1, RUNS, 0.5);
        double pw = pct(pw1, RUNS, 0.5), pwall = pct(pwa, RUNS, 0.5), pbest = pw < pwall ? pw : pwall;
        printf("recommend batch ml-latest-small neighbour-budget=%s users=%zu items=%zu top-%d: "
               "cpu, 1 thread: batch p50=%.1f ms, one sgemm + top-k scan (OpenBLAS 1 thread) p50=%.1f ms, ratio=%.2f "
               "(goal <= 2) | wall, %s threads: batch p50=%.1f ms (1 thread %.1f ms), peer's best p50=%.1f ms "
               "(OpenBLAS 1 thread %.1f, %s threads %.1f ms; its cpu %.1f ms), ratio=%.2f (goal <= 2) | "
               "loop of %zu single recommend calls=%.1f ms wall (%.1fx the 1-thread batch)\n",
               budget, nu, ni, K, b1 * 1e3, p1 * 1e3, b1 / p1, cores_text, bw * 1e3, bw1 * 1e3, pbest * 1e3,
               pw * 1e3, cores_text, pwall * 1e3, pct(pca, RUNS, 0.5) * 1e3, bw / pbest, nu, loop_total * 1e3,
               loop_total / bw1);
    }
    cb_config_free(one);
    cb_config_free(all);
    free(items);
    free(scores);
    free(S);
    free(bs);
    free(best);
    return rc ? 1 : 0;
}

static int bench_movielens(void) {
    char data[4096];
    snprintf(data, sizeof data, "%s/ml-latest-small", getenv("CBREC_DATA") ? getenv("CBREC_DATA") : "../shared/data");
    const char *model = getenv("CBREC_BENCH_MODEL");
    struct stat st;
    if (!model && stat(data, &st) != 0) {
        printf("recommend ml-latest-small: skipped (no %s; set CBREC_DATA layout or CBREC_BENCH_MODEL)\n", data);
        return 0;
    }
    cb_error err;
    cb_bundle *r = NULL;
    int rc;
    if (model) {
        rc = cb_bundle_load(&r, model, &err);
    } else {
        cb_dataset *ds = NULL;
        cb_load_options lo;
        cb_load_options_default(&lo);
        cb_split sp = {0};
        rc = cb_dataset_load(&ds, data, &lo, &err);
        if (!rc) rc = cb_split_make(&sp, ds, CB_SPLIT_RANDOM, 0.0, 1, &err);
        if (!rc) {
            cb_model_config mc;
            cb_model_config_default(&mc);
            mc.epochs = 1; /* latency does not depend on how well it is trained */
            mc.batch_size = 256;
            cb_bundle_train_input in = {.ds = ds, .train_idx = sp.train, .n_train = sp.n_train, .model = mc,
                                     .scale_targets = true};
            rc = cb_bundle_train(&r, &in, NULL, &err);
        }
        cb_split_free(&sp);
        cb_dataset_free(ds);
    }
    cb_recommender *with_table = NULL, *exact = NULL;
    if (!rc) rc = cb_recommender_wrap(&with_table, r, &err);
    if (!rc) rc = cb_recommender_build_table(with_table, 20, 0, &err);
    if (!rc) rc = cb_recommender_wrap(&exact, r, &err);
    double loop_table = 0, loop_exact = 0;
    if (rc) {
        fprintf(stderr, "bench_recommend: %s\n", err.msg);
    } else {
        double loop_budget = 0;
        rc = run_users(with_table, r, "(table)", 0, &loop_table);
        if (!rc) rc = run_users(with_table, r, "(table, budget 20000)", 20000, &loop_budget);
        if (!rc) rc = run_users(exact, r, "(exact similar)", 0, &loop_exact);
        if (!rc) rc = bench_batch(exact, r, "0", loop_table);
        if (!rc) rc = bench_batch(exact, r, "20000", loop_budget);
    }
    cb_recommender_free(with_table);
    cb_recommender_free(exact);
    cb_bundle_free(r);
    return rc;
}

static int bench_synthetic(size_t n_items) {
    const uint32_t dim = 32;
    cb_error err;
    cb_rng rng;
    cb_rng_seed(&rng, 12345);
    float *V = malloc(n_items * dim * sizeof *V);
    if (!V) return fprintf(stderr, "bench_recommend: out of memory\n"), 1;
    for (size_t i = 0; i < n_items; i++) {
        double norm = 0;
        for (uint32_t k = 0; k < dim; k++) {
            V[i * dim + k] = (float)cb_rng_normal(&rng);
            norm += (double)V[i * dim + k] * V[i * dim + k];
        }
        for (uint32_t k = 0; k < dim; k++) V[i * dim + k] /= (float)sqrt(norm);
    }
    /* a bare recommender: vectors, a model for the score mapping, no lists */
    cb_model_config mc;
    cb_model_config_default(&mc);
    mc.user_in = mc.item_in = 1;
    mc.n_user_layers = mc.n_item_layers = 0;
    mc.dim = dim;
    mc.target_scale = 2.0f / 4.5f;
    mc.target_shift = -1.0f - 0.5f * mc.target_scale;
    int32_t seen_off[2] = {0, 0}, popular[CB_BUNDLE_TOP_LIST];
    for (int i = 0; i < CB_BUNDLE_TOP_LIST; i++) popular[i] = -1;
    cb_bundle r = {.n_items = (uint32_t)n_items, .n_users = 1, .dim = dim, .item_vecs = V, .seen_off = seen_off,
                .popular = popular, .y_min = 0.5f, .y_max = 5.0f};
    cb_recommender *ctx = NULL;
    /* item ids "0".."n-1" (the lists name their items) */
    char *id_bytes = malloc(n_items * 24), **ids = malloc(n_items * sizeof *ids);
    int rc = id_bytes && ids ? CB_OK : cb_fail(&err, CB_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n_items; i++) {
        ids[i] = id_bytes + i * 24;
        snprintf(ids[i], 24, "%zu", i);
    }
    if (!rc) rc = cb_idtab_from_names(&r.items, (const char *const *)ids, (uint32_t)n_items, true, "item", &err);
    if (!rc) rc = cb_model_create(&r.model, &mc, &err);
    if (!rc) rc = cb_recommender_wrap(&ctx, &r, &err);
    if (rc) {
        fprintf(stderr, "bench_recommend: %s\n", err.msg);
        free(V);
        free(ids);
        free(id_bytes);
        cb_idtab_free(r.items);
        cb_model_free(r.model);
        return 1;
    }
    float uvec[32];
    uint32_t item;
    cb_profile p = {.user = -1, .vec = uvec, .group_level = NULL, .items = &item};
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    enum { RUNS = 31 };
    double t_rec[RUNS], t_stream[RUNS];
    volatile float sink = 0;
    for (int run = 0; run < RUNS; run++) {
        for (uint32_t k = 0; k < dim; k++) uvec[k] = (float)cb_rng_normal(&rng) / sqrtf((float)dim);
        cb_recommend_result res;
        double t0 = cb_now();
        rc = cb_recommend(ctx, &p, &cfg, NULL, &res, &err);
        t_rec[run] = cb_now() - t0;
        if (rc || res.n != cfg.n) {
            fprintf(stderr, "bench_recommend: %s\n", rc ? err.msg : "short result");
            rc = 1;
            break;
        }
        cb_recommend_result_free(&res);
        /* the peer: read every item vector once, 8 independent sums */
        t0 = cb_now();
        float acc[8] = {0};
        for (size_t i = 0; i < n_items * dim; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += V[i + k];
        t_stream[run] = cb_now() - t0;
        for (int k = 0; k < 8; k++) sink += acc[k];
    }
    if (!rc) {
        double rec50 = pct(t_rec, RUNS, 0.5), str50 = pct(t_stream, RUNS, 0.5);
        printf("recommend synthetic %zu x %u embedding retrieval: p50=%.2f ms stream-once p50=%.2f ms (%.0f MB) "
               "ratio=%.2f (goal <= 2)\n",
               n_items, dim, rec50 * 1e3, str50 * 1e3, (double)n_items * dim * 4 / 1e6, rec50 / str50);
    }
    cb_recommender_free(ctx);
    cb_model_free(r.model);
    cb_idtab_free(r.items);
    free(ids);
    free(id_bytes);
    free(V);
    return rc;
}

int main(int argc, char **argv) {
    size_t n_items = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    int rc = bench_movielens();
    if (!rc) rc = bench_synthetic(n_items ? n_items : 1000000);
    return rc;
}
