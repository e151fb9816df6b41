/* bench_csv — throughput of the csv reader against `wc -l` and `cat`.
 *
 * Usage: bench_csv [file.csv [megabytes]]
 * Without a file it uses /tmp/cbrec-bench-ratings.csv, generating it first
 * (default ~200 MB of "user,item,rating,timestamp" rows, MovieLens-like) when
 * it is missing or of another size. The file is read once to warm the page
 * cache, then each reader runs three times and the best time counts:
 *   cbrec csv   every record read and split (cb_csv_next, default options)
 *   wc -l       counting lines, the floor for any line-oriented reader
 *   cat         copying the bytes to /dev/null
 * It prints MB/s for each (wall clock, and CPU time = user + system, which
 * is steadier on a busy machine) and the ratios cbrec time / wc -l time
 * (lower is better; 1.0 means as fast as wc -l). Exit status 1 if reading
 * fails or the record count disagrees with wc -l. */
#include "base/csv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define DEFAULT_PATH "/tmp/cbrec-bench-ratings.csv"

static int generate(const char *path, size_t megabytes) {
    size_t target = megabytes << 20;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) { perror(tmp); return -1; }
    cb_rng rng;
    cb_rng_seed(&rng, 42);
    static char buf[1 << 16];
    size_t len = 0, total = 0;
    len += (size_t)snprintf(buf, sizeof buf, "userId,movieId,rating,timestamp\n");
    while (total + len < target) {
        uint64_t user = 1 + cb_rng_below(&rng, 200000), item = 1 + cb_rng_below(&rng, 60000);
        unsigned half_stars = 1 + (unsigned)cb_rng_below(&rng, 10);
        uint64_t ts = 789652009 + cb_rng_below(&rng, 800000000);
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%" PRIu64 ",%" PRIu64 ",%u.%u,%" PRIu64 "\n",
                                user, item, half_stars / 2, half_stars % 2 ? 5u : 0u, ts);
        if (len > sizeof buf - 128) {
            if (fwrite(buf, 1, len, f) != len) { perror(tmp); fclose(f); return -1; }
            total += len;
            len = 0;
        }
    }
    if (fwrite(buf, 1, len, f) != len || fclose(f) != 0) { perror(tmp); return -1; }
    if (rename(tmp, path) != 0) { perror(path); return -1; }
    return 0;
}

static double cpu_seconds(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

typedef struct timing {
    double wall, cpu; /* best of three runs each */
} timing;

static void keep_best(timing *t, double wall, double cpu) {
    if (wall < t->wall) t->wall = wall;
    if (cpu < t->cpu) t->cpu = cpu;
}

/* A shell command's best wall and CPU time (its children's CPU) of three runs. */
static timing time_cmd(const char *cmd) {
    timing best = {1e30, 1e30};
    for (int i = 0; i < 3; i++) {
        double t0 = cb_now(), c0 = cpu_seconds(RUSAGE_CHILDREN);
        if (system(cmd) != 0) { fprintf(stderr, "bench_csv: failed: %s\n", cmd); exit(1); }
        keep_best(&best, cb_now() - t0, cpu_seconds(RUSAGE_CHILDREN) - c0);
    }
    return best;
}

static timing time_cbrec(const char *path, size_t *records) {
    timing best = {1e30, 1e30};
    for (int i = 0; i < 3; i++) {
        double t0 = cb_now(), c0 = cpu_seconds(RUSAGE_SELF);
        cb_csv *c;
        cb_error err;
        if (cb_csv_open(&c, path, NULL, &err) != CB_OK) { fprintf(stderr, "bench_csv: %s\n", err.msg); exit(1); }
        char **f;
        size_t *l, n, count = 0, bytes = 0;
        int rc;
        while ((rc = cb_csv_next(c, &f, &l, &n, &err)) == 1) {
            count++;
            bytes += l[n - 1]; /* touch the result */
        }
        cb_csv_close(c);
        if (rc < 0) { fprintf(stderr, "bench_csv: %s\n", err.msg); exit(1); }
        keep_best(&best, cb_now() - t0, cpu_seconds(RUSAGE_SELF) - c0);
        *records = count + (bytes == (size_t)-1);
    }
    return best;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : DEFAULT_PATH;
    size_t megabytes = argc > 2 ? strtoul(argv[2], NULL, 10) : 200;
    struct stat st;
    size_t target = megabytes << 20;
    if (argc <= 1 && (stat(path, &st) != 0 || (size_t)st.st_size + (1 << 20) < target ||
                      (size_t)st.st_size > target + (1 << 20))) {
        fprintf(stderr, "bench_csv: generating %s (%zu MB)\n", path, megabytes);
        if (generate(path, megabytes) != 0) return 1;
    }
    if (stat(path, &st) != 0) { perror(path); return 1; }
    double mb = (double)st.st_size / 1e6;
    if (strchr(path, '\'')) { fprintf(stderr, "bench_csv: quote in path\n"); return 1; }

    char cmd[4400];
    snprintf(cmd, sizeof cmd, "cat '%s' > /dev/null", path);
    if (system(cmd) != 0) return 1; /* warm the page cache */
    timing t_cat = time_cmd(cmd);
    snprintf(cmd, sizeof cmd, "wc -l '%s' > /dev/null", path);
    timing t_wc = time_cmd(cmd);
    size_t records = 0;
    timing t_cb = time_cbrec(path, &records);

    snprintf(cmd, sizeof cmd, "wc -l < '%s'", path);
    FILE *p = popen(cmd, "r");
    size_t lines = 0;
    if (!p || fscanf(p, "%zu", &lines) != 1) { fprintf(stderr, "bench_csv: wc -l failed\n"); return 1; }
    pclose(p);

    printf("csv: %s, %.1f MB, %zu records\n", path, mb, records);
    printf("csv:                 wall MB/s   CPU MB/s\n");
    printf("csv: cbrec csv     %10.1f %10.1f\n", mb / t_cb.wall, mb / t_cb.cpu);
    printf("csv: wc -l         %10.1f %10.1f\n", mb / t_wc.wall, mb / t_wc.cpu);
    printf("csv: cat           %10.1f %10.1f\n", mb / t_cat.wall, mb / t_cat.cpu);
    printf("csv: ratio cbrec/wc-l time: wall %.2f, CPU %.2f\n", t_cb.wall / t_wc.wall, t_cb.cpu / t_wc.cpu);
    printf("csv: ratio cbrec/cat  time: wall %.2f, CPU %.2f\n", t_cb.wall / t_cat.wall, t_cb.cpu / t_cat.cpu);
    if (records != lines) {
        fprintf(stderr, "bench_csv: %zu records but wc -l counts %zu lines\n", records, lines);
        return 1;
    }
    return 0;
}
