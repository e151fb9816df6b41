/* bench_load — dataset loading speed and memory.
 *
 *  1. ml-latest-small (from ../shared/data or $CBREC_DATA; skipped, saying so,
 *     when absent): seconds for cb_dataset_load, a random split and fitting
 *     the feature transform — the issue asks for "well under a second".
 *  2. A synthetic MovieLens-style folder with N ratings (default 10 million;
 *     ratings.csv grouped by user like MovieLens, plus movies.csv), written
 *     once to /tmp/cbrec-bench-load-<N>/ by a fast writer here. After one
 *     read to warm the page cache, best of 3 runs each of:
 *        cb_dataset_load   full load: parse, ids -> indices, checks (duplicates)
 *        wc -l             counting lines (the floor for a line reader)
 *        cat > /dev/null   copying the bytes
 *     printed as MB/s and as the RATIO of load speed to wc -l and cat speed.
 *  3. Memory: bytes per rating of the ratings array (16), of the whole dataset
 *     (cb_dataset_bytes / n), and peak RSS of this process / n.
 *
 * Usage: bench_load [--ratings N] [--keep]   (--keep leaves the folder in /tmp)
 * Exit status is 0 unless loading fails. */
#include "base/csv.h"
#include "data/dataset.h"
#include "features/featurize.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "bench_clock.h"

static char *fmt_u(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

/* users rate 40..160 distinct items each (user u: items (u*7919 + k*13) mod P,
 * distinct for k < P because 13 is invertible mod the prime P). */
static int generate(const char *dir, size_t n_ratings) {
    const uint64_t n_items = 20011; /* prime */
    char path[4300], tmp[4400];
    if (mkdir(dir, 0755) != 0 && access(dir, W_OK) != 0) {
        perror(dir);
        return -1;
    }
    snprintf(path, sizeof path, "%s/movies.csv", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    static const char *const genres[] = {"Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller"};
    fputs("movieId,title,genres\n", f);
    for (uint64_t i = 1; i <= n_items; i++)
        fprintf(f, "%llu,Movie %llu (%llu),%s|%s\n", (unsigned long long)i, (unsigned long long)i,
                (unsigned long long)(1950 + i % 70), genres[i % 7], genres[(i / 7) % 7]);
    if (fclose(f) != 0) return -1;

    snprintf(path, sizeof path, "%s/ratings.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!f) return -1;
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 256), *p = buf;
    p += sprintf(p, "userId,movieId,rating,timestamp\n");
    cb_rng rng;
    cb_rng_seed(&rng, 7);
    size_t done = 0;
    for (uint64_t u = 1; done < n_ratings; u++) {
        size_t n_u = 40 + (size_t)cb_rng_below(&rng, 121);
        if (n_u > n_ratings - done) n_u = n_ratings - done;
        for (size_t k = 0; k < n_u; k++) {
            uint64_t item = 1 + (u * 7919 + k * 13) % n_items;
            unsigned half = 1 + (unsigned)cb_rng_below(&rng, 10);
            p = fmt_u(p, u);
            *p++ = ',';
            p = fmt_u(p, item);
            *p++ = ',';
            p = fmt_u(p, half / 2);
            *p++ = '.';
            *p++ = half % 2 ? '5' : '0';
            *p++ = ',';
            p = fmt_u(p, 900000000 + u * 1000 + k * 7);
            *p++ = '\n';
            if ((size_t)(p - buf) >= cap) {
                if (fwrite(buf, 1, (size_t)(p - buf), f) != (size_t)(p - buf)) return -1;
                p = buf;
            }
        }
        done += n_u;
    }
    if (fwrite(buf, 1, (size_t)(p - buf), f) != (size_t)(p - buf)) return -1;
    free(buf);
    if (fclose(f) != 0 || rename(tmp, path) != 0) return -1;
    return 0;
}

/* A measurement: wall seconds and CPU seconds (the machine may be shared, so
 * CPU time is the fairer comparison; both are printed). */
typedef struct timing {
    double wall, cpu;
} timing;

static double cpu_children(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static void keep_best(timing *best, double wall, double cpu) {
    if (wall < best->wall) best->wall = wall;
    if (cpu < best->cpu) best->cpu = cpu;
}

static timing time_cmd(const char *cmd) {
    timing best = {1e30, 1e30};
    for (int r = 0; r < 3; r++) {
        double c0 = cpu_children(), t0 = cb_now();
        if (system(cmd) != 0) return (timing){-1, -1};
        keep_best(&best, cb_now() - t0, cpu_children() - c0);
    }
    return best;
}

/* The CSV reader alone over the same file: the floor for any loader built on it. */
static timing time_csv(const char *file) {
    timing best = {1e30, 1e30};
    for (int r = 0; r < 3; r++) {
        double c0 = bench_process_cpu(), t0 = cb_now();
        cb_csv_options o;
        cb_csv_options_default(&o);
        cb_csv *c;
        cb_error err;
        if (cb_csv_open(&c, file, &o, &err)) return (timing){-1, -1};
        char **f;
        size_t *fl, nf, n = 0;
        while (cb_csv_next(c, &f, &fl, &nf, &err) > 0) n += nf;
        cb_csv_close(c);
        keep_best(&best, cb_now() - t0, bench_process_cpu() - c0);
        if (n == 0) return (timing){-1, -1};
    }
    return best;
}

static long peak_rss_kb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

static int bench_small(void) {
    const char *roots[2] = {getenv("CBREC_DATA"), "../shared/data"};
    char path[4096];
    struct stat st;
    bool found = false;
    for (int i = 0; i < 2 && !found; i++) {
        if (!roots[i]) continue;
        snprintf(path, sizeof path, "%s/ml-latest-small", roots[i]);
        found = stat(path, &st) == 0;
    }
    if (!found) {
        printf("ml-latest-small: skipped (not found in $CBREC_DATA or ../shared/data)\n");
        return 0;
    }
    cb_error err;
    double best_load = 1e30, best_split = 1e30, best_feat = 1e30;
    size_t n = 0;
    for (int r = 0; r < 3; r++) {
        cb_dataset *ds;
        double t0 = cb_now();
        if (cb_dataset_load(&ds, path, NULL, &err)) {
            fprintf(stderr, "bench_load: %s\n", err.msg);
            return -1;
        }
        double t1 = cb_now();
        cb_split sp;
        if (cb_split_make(&sp, ds, CB_SPLIT_RANDOM, 0.2, 1, &err)) {
            fprintf(stderr, "bench_load: %s\n", err.msg);
            return -1;
        }
        double t2 = cb_now();
        cb_features *f;
        if (cb_features_fit(&f, ds, sp.train, sp.n_train, NULL, &err)) {
            fprintf(stderr, "bench_load: %s\n", err.msg);
            return -1;
        }
        double t3 = cb_now();
        n = ds->n_ratings;
        if (t1 - t0 < best_load) best_load = t1 - t0;
        if (t2 - t1 < best_split) best_split = t2 - t1;
        if (t3 - t2 < best_feat) best_feat = t3 - t2;
        cb_features_free(f);
        cb_split_free(&sp);
        cb_dataset_free(ds);
    }
    printf("ml-latest-small (%zu ratings, best of 3): load %.3f s + random split %.4f s + feature fit %.3f s "
           "= %.3f s\n", n, best_load, best_split, best_feat, best_load + best_split + best_feat);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"ratings", required_argument, NULL, 'n'}, {"keep", no_argument, NULL, 'k'}, {NULL, 0, NULL, 0}};
    size_t n_ratings = 10000000;
    bool keep = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "n:k", longopts, NULL)) != -1) {
        if (ch == 'n') n_ratings = (size_t)strtoull(optarg, NULL, 10);
        else if (ch == 'k') keep = true;
        else {
            fprintf(stderr, "usage: bench_load [--ratings N] [--keep]\n");
            return 2;
        }
    }
    if (n_ratings < 1000) n_ratings = 1000;

    if (bench_small()) return 1;

    char dir[256], file[300], cmd[700];
    snprintf(dir, sizeof dir, "/tmp/cbrec-bench-load-%zu", n_ratings);
    snprintf(file, sizeof file, "%s/ratings.csv", dir);
    struct stat st;
    double t0 = cb_now();
    bool made = false;
    if (stat(file, &st) != 0) {
        if (generate(dir, n_ratings) != 0) {
            fprintf(stderr, "bench_load: cannot write %s\n", dir);
            return 1;
        }
        made = true;
        stat(file, &st);
    }
    double mb = (double)st.st_size / 1e6;
    printf("synthetic: %zu ratings, %s (%.0f MB)%s\n", n_ratings, file, mb,
           made ? "" : " (reused from an earlier run)");
    if (made) printf("  written in %.2f s\n", cb_now() - t0);

    snprintf(cmd, sizeof cmd, "cat '%s' > /dev/null", file);
    if (system(cmd) != 0) return 1; /* warm the page cache */
    timing t_cat = time_cmd(cmd);
    snprintf(cmd, sizeof cmd, "wc -l '%s' > /dev/null", file);
    timing t_wc = time_cmd(cmd);
    timing t_csv = time_csv(file);

    cb_error err;
    timing t_load = {1e30, 1e30};
    size_t n = 0, bytes = 0;
    uint32_t nu = 0, ni = 0;
    for (int r = 0; r < 3; r++) {
        cb_dataset *ds;
        double a = cb_now(), c0 = bench_process_cpu();
        if (cb_dataset_load(&ds, dir, NULL, &err)) {
            fprintf(stderr, "bench_load: %s\n", err.msg);
            return 1;
        }
        keep_best(&t_load, cb_now() - a, bench_process_cpu() - c0);
        n = ds->n_ratings;
        bytes = cb_dataset_bytes(ds);
        nu = cb_dataset_n_users(ds);
        ni = cb_dataset_n_items(ds);
        cb_dataset_free(ds);
    }
    long rss = peak_rss_kb();
    printf("  loaded %zu ratings, %u users, %u items (best of 3; wall and CPU time, the machine may be shared)\n",
           n, nu, ni);
    printf("  %-18s %8s %9s %8s %9s\n", "", "wall s", "MB/s", "CPU s", "MB/s(CPU)");
    const char *names[4] = {"cb_dataset_load", "csv reader alone", "wc -l", "cat >/dev/null"};
    timing *ts[4] = {&t_load, &t_csv, &t_wc, &t_cat};
    for (int k = 0; k < 4; k++)
        printf("  %-18s %8.3f %9.0f %8.3f %9.0f\n", names[k], ts[k]->wall, mb / ts[k]->wall, ts[k]->cpu,
               ts[k]->cpu > 0 ? mb / ts[k]->cpu : 0.0);
    printf("  ratio (load speed / peer speed, 1.0 = as fast): wall: %.2fx csv reader, %.2fx wc -l, %.2fx cat; "
           "CPU: %.2fx csv reader, %.2fx wc -l, %.2fx cat\n",
           t_csv.wall / t_load.wall, t_wc.wall / t_load.wall, t_cat.wall / t_load.wall, t_csv.cpu / t_load.cpu,
           t_wc.cpu / t_load.cpu, t_cat.cpu / t_load.cpu);
    printf("memory: ratings %zu bytes/rating; dataset %.1f bytes/rating (cb_dataset_bytes); "
           "peak RSS %.0f MB = %.1f bytes/rating\n",
           sizeof(cb_rating), (double)bytes / (double)n, rss / 1e3, rss * 1024.0 / (double)n);
    if (!keep) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "bench_load: could not remove %s\n", dir);
    }
    return 0;
}
