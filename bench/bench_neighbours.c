/* bench_neighbours — what fitting the ranking's neighbour component costs
 * (model/neighbours.h): wall time and peak memory of the lists (cosine, and
 * EASE where its dense inverse fits) on a dataset folder, beside one pass of
 * loading that folder (the peer measured in the same run), and the bytes
 * the lists add to the model file.
 *
 * Usage: bench_neighbours DATA_DIR [K]   (K neighbours per item, default 100)
 * Exit status is 0 unless loading or fitting fails. */
#include "data/dataset.h"
#include "model/neighbours.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static long peak_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int fit(const cb_dataset *ds, const uint32_t *all, cb_neighbours_kind kind, uint32_t k, float param,
               double load_s) {
    cb_error err;
    cb_neighbours *nb = NULL;
    double t0 = cb_now();
    if (cb_neighbours_fit(&nb, ds, all, ds->n_ratings, kind, k, param, &err)) {
        fprintf(stderr, "bench_neighbours: %s\n", err.msg);
        return 1;
    }
    double s = cb_now() - t0;
    size_t nnz = (size_t)nb->off[nb->n_items];
    printf("%-6s K %u: fit %.2f s = %.2fx loading the folder (%.2f s); %zu weights, %.1f MB in the model file "
           "(%.1f B per rating); peak RSS %.0f MB\n",
           cb_neighbours_kind_name(kind), k, s, s / load_s, load_s, nnz,
           (double)((nb->n_items + 1) * 4 + nnz * 8) / 1e6, (double)((nb->n_items + 1) * 4 + nnz * 8) / ds->n_ratings,
           peak_kb() / 1024.0);
    cb_neighbours_free(nb);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_neighbours DATA_DIR [K]\n");
        return 2;
    }
    uint32_t k = argc > 2 ? (uint32_t)atoi(argv[2]) : 100;
    cb_error err;
    cb_dataset *ds = NULL;
    cb_load_options lo;
    cb_load_options_default(&lo);
    double t0 = cb_now();
    if (cb_dataset_load(&ds, argv[1], &lo, &err)) {
        fprintf(stderr, "bench_neighbours: %s\n", err.msg);
        return 1;
    }
    double load_s = cb_now() - t0;
    printf("%s: %u users, %u items, %zu ratings\n", argv[1], cb_dataset_n_users(ds), cb_dataset_n_items(ds),
           ds->n_ratings);
    uint32_t *all = malloc(ds->n_ratings * sizeof *all);
    for (size_t j = 0; j < ds->n_ratings; j++) all[j] = (uint32_t)j;
    int rc = fit(ds, all, CB_NEIGHBOURS_COSINE, k, 10.0f, load_s);
    if (!rc && cb_neighbours_ease_fits(ds)) rc = fit(ds, all, CB_NEIGHBOURS_EASE, k, 300.0f, load_s);
    else if (!rc) printf("ease: the fewer of users and items exceeds %u: not tried\n", CB_NEIGHBOURS_MAX_DENSE);
    free(all);
    cb_dataset_free(ds);
    return rc;
}
