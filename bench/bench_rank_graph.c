/* bench_rank_graph — the default recommend through the index's ranking
 * graph against --exact (its peer, the same calls in the same run): recall@10
 * of the approximate lists against the exact ones, and the per-call time of
 * both (wall and process CPU, each user's call repeated; the ratio is the
 * figure, not the times).
 * Usage: bench_rank_graph MODEL INDEX [n_users 50] [repeats 5]
 * (e.g. on `cbrec synth --users 2000 --items 100000 --ratings 60000`, trained
 * with `cbrec train --epochs 1` and indexed with `cbrec index --threads 1`). */
#include "cbrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "bench_clock.h"

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* user's list under mode, and the wall / CPU seconds of `repeats` calls */
static cb_list *timed(cb_recommender *rec, cb_search_mode mode, const char *user, const cb_config *opts, int repeats,
                      double *t_wall, double *t_cpu) {
    cb_error err;
    cb_list *l = NULL;
    if (cb_recommender_set_search(rec, mode, 0, &err)) {
        fprintf(stderr, "bench_rank_graph: %s\n", err.msg);
        exit(1);
    }
    double w0 = wall(), c0 = bench_process_cpu();
    for (int r = 0; r < repeats; r++) {
        cb_list_free(l);
        l = NULL;
        if (cb_recommender_recommend(rec, user, NULL, opts, &l, &err)) {
            fprintf(stderr, "bench_rank_graph: user %s: %s\n", user, err.msg);
            exit(1);
        }
    }
    *t_wall += wall() - w0, *t_cpu += bench_process_cpu() - c0;
    return l;
}

int main(int argc, char **argv) {
    if (argc < 3) { /* make bench runs it bare: a trained model is the caller's to give */
        printf("skipped: usage: bench_rank_graph MODEL INDEX [n_users] [repeats]\n");
        return 0;
    }
    int n_users = argc > 3 ? atoi(argv[3]) : 50, repeats = argc > 4 ? atoi(argv[4]) : 5;
    cb_error err;
    cb_recommender *rec = NULL;
    cb_config *opts = NULL;
    if (cb_recommender_load(&rec, argv[1], NULL, &err) || cb_recommender_load_index(rec, argv[2], &err) ||
        cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err) || cb_config_set(opts, "threads", "1", &err)) {
        fprintf(stderr, "bench_rank_graph: %s\n", err.msg);
        return 1;
    }
    double ex_wall = 0, ex_cpu = 0, ap_wall = 0, ap_cpu = 0;
    size_t found = 0, total = 0, calls = 0;
    for (int u = 1; u <= n_users; u++) {
        char id[16];
        snprintf(id, sizeof id, "%d", u);
        cb_list *ex = timed(rec, CB_SEARCH_EXACT, id, opts, repeats, &ex_wall, &ex_cpu);
        cb_list *ap = timed(rec, CB_SEARCH_APPROX, id, opts, repeats, &ap_wall, &ap_cpu);
        for (size_t r = 0; r < cb_list_size(ex); r++)
            for (size_t j = 0; j < cb_list_size(ap); j++) found += cb_list_item(ap, j) == cb_list_item(ex, r);
        total += cb_list_size(ex);
        calls += (size_t)repeats;
        cb_list_free(ex), cb_list_free(ap);
    }
    printf("%zu items, %d users x %d calls: recall@10 %.3f (%zu of %zu)\n", cb_recommender_item_count(rec), n_users,
           repeats, total ? (double)found / (double)total : 0.0, found, total);
    printf("per call: exact %.3f ms wall, %.3f ms CPU; index %.3f ms wall, %.3f ms CPU\n", 1e3 * ex_wall / calls,
           1e3 * ex_cpu / calls, 1e3 * ap_wall / calls, 1e3 * ap_cpu / calls);
    printf("speed-up (exact / index): %.2fx wall, %.2fx CPU\n", ex_wall / ap_wall, ex_cpu / ap_cpu);
    cb_config_free(opts);
    cb_recommender_free(rec);
    return 0;
}
