/* cmd_synth — `cbrec synth --out DIR`: generate a synthetic dataset with
 * planted structure (see src/synth.c) and write it as a MovieLens-style
 * folder that `cbrec inspect --data DIR` and every other command can load. */
#include "cli.h"
#include "data/dataset.h"
#include "base/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: cbrec synth --out DIR [--users N] [--items N] [--ratings N] [--genres N]\n"
            "                   [--noise X] [--seed S]\n"
            "\n"
            "Generate synthetic ratings with planted structure: users' hidden genre tastes\n"
            "depend on their age, gender, occupation and region; items have 1-3 genres, a year\n"
            "and Zipf-like popularity; rating = clip(round_half(3.3 + 0.8 taste.genres + quality\n"
            "+ user bias + noise), 0.5, 5). Writes DIR/ratings.csv, movies.csv, users.csv and a\n"
            "cbrec.schema declaring the three (so the demographics load too).\n"
            "  --out DIR       output folder (created if missing; files replaced atomically)\n"
            "  --users N       number of users (default 1000)\n"
            "  --items N       number of items (default 2000)\n"
            "  --ratings N     number of ratings (default 100000; at most users x items/2)\n"
            "  --genres N      number of genres (default 12; the first 18 have MovieLens names)\n"
            "  --noise X       standard deviation of the rating noise (default 0.5)\n"
            "  --seed S        random seed (default 42); the same seed gives the same files\n");
}

static bool parse_u64(const char *s, uint64_t *out) {
    int64_t v;
    if (!cb_parse_i64(s, strlen(s), &v) || v < 0) return false;
    *out = (uint64_t)v;
    return true;
}

int cmd_synth(int argc, char **argv) {
    const char *cmd = "synth", *out_dir = NULL;
    cb_synth_config cfg;
    cb_synth_config_default(&cfg);
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},   {"users", required_argument, NULL, 'u'},
                                         {"items", required_argument, NULL, 'i'}, {"ratings", required_argument, NULL, 'r'},
                                         {"genres", required_argument, NULL, 'g'}, {"noise", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 's'},  {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        uint64_t v = 0;
        double d;
        switch (c) {
        case 'o': out_dir = optarg; break;
        case 'u': case 'i': case 'g':
            if (!parse_u64(optarg, &v) || v == 0 || v > UINT32_MAX - 1)
                return cli_fail(CLI_USAGE, cmd, "--%s needs a positive integer, got '%s'",
                                c == 'u' ? "users" : c == 'i' ? "items" : "genres", optarg);
            if (c == 'u') cfg.n_users = (uint32_t)v;
            else if (c == 'i') cfg.n_items = (uint32_t)v;
            else cfg.n_genres = (uint32_t)v;
            break;
        case 'r':
            if (!parse_u64(optarg, &v) || v == 0) return cli_fail(CLI_USAGE, cmd, "--ratings needs a positive integer, got '%s'", optarg);
            cfg.n_ratings = (size_t)v;
            break;
        case 's':
            if (!parse_u64(optarg, &v)) return cli_fail(CLI_USAGE, cmd, "--seed needs a non-negative integer, got '%s'", optarg);
            cfg.seed = v;
            break;
        case 'n':
            if (!cb_parse_double(optarg, strlen(optarg), &d) || d < 0)
                return cli_fail(CLI_USAGE, cmd, "--noise needs a number >= 0, got '%s'", optarg);
            cfg.noise = d;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: usage(stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!out_dir) {
        usage(stderr);
        return cli_fail(CLI_USAGE, cmd, "--out DIR is required");
    }
    cb_error err = {0};
    double t0 = cb_now();
    cb_dataset *ds = NULL;
    if (cb_synth_generate(&ds, &cfg, &err)) return cli_error(cmd, &err);
    double t1 = cb_now();
    int rc = cb_synth_write(ds, out_dir, &err);
    double t2 = cb_now();
    if (rc) {
        cb_dataset_free(ds);
        return cli_error(cmd, &err);
    }
    printf("wrote %s: %u users, %u items, %zu ratings, %u genres (seed %llu; generated in %.2f s, written in %.2f s)\n",
           out_dir, cb_dataset_n_users(ds), cb_dataset_n_items(ds), ds->n_ratings, cfg.n_genres,
           (unsigned long long)cfg.seed, t1 - t0, t2 - t1);
    cb_dataset_free(ds);
    return CLI_OK;
}
