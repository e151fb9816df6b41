/* cbrec eval / experiment / report — measuring cbrec honestly: every model
 * beside the baselines on the same splits (one table, or one JSON object),
 * the retrieval-size experiment (a table and an SVG plot), and a Markdown
 * report holding both plus the learning curve. The work is the library's
 * (cb_evaluate, cb_evaluate_retrieval); this file parses options over the
 * EVAL and TRAIN key tables and prints the JSON reports as tables. */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- options shared by the three commands */

typedef struct opts {
    const char *data, *model_path, *out, *plot, *tsv, *json_out;
    bool json, quiet;
    cb_config *eval, *train;
} opts;

static void opts_free(opts *o) {
    cb_config_free(o->eval);
    cb_config_free(o->train);
}

/* The outputs given (--out, --plot, --tsv, --json-out, and more[0..n_more))
 * checked before the work: none over a file of the data, then
 * cli_check_output's checks (not the model or its history, writable).
 * -1 = go on, else the exit status. */
static int check_outputs(const char *cmd, const opts *o, const char *const *more, size_t n_more) {
    if (cli_mpi_launched_rank() > 0) return -1; /* under mpirun rank 0 alone writes: it alone checks */
    const char *given[] = {o->out, o->plot, o->tsv, o->json_out};
    cb_error err = {0};
    for (size_t i = 0; i < 4 + n_more; i++) {
        const char *path = i < 4 ? given[i] : more[i - 4];
        if (!path) continue;
        if (cb_dataset_check_not_input(o->data, o->train, path, &err)) return cli_error(cmd, &err);
        int st = cli_check_output(cmd, path, o->model_path, NULL, 0);
        if (st >= 0) return st;
    }
    return -1;
}

/* Parse argv into o (extra: the command's own options after the shared ones;
 * ignored: the EVAL keys the command does not read, ",a,b,", and why).
 * Returns -1 to continue, else an exit status. */
static int parse_opts(opts *o, const char *cmd, const char *usage, const cli_opt *extra, const char *ignored,
                      const char *why, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    cli_opt all[16] = {{"data", 'd', "PATH", "dataset folder (MovieLens, generic with cbrec.schema, ...)", &o->data, NULL, NULL},
                       {"quiet", 'q', NULL, "no progress output on stderr", NULL, &o->quiet, NULL}};
    size_t n = 2;
    for (; extra && extra->name && n < 15; extra++) all[n++] = *extra;
    cb_error err = {0};
    if (cb_config_create(&o->eval, CB_CONFIG_EVAL, &err) || cb_config_create(&o->train, CB_CONFIG_TRAIN, &err))
        return cli_error(cmd, &err);
    const cli_command c = {cmd, usage, all, CB_CONFIG_EVAL, NULL};
    int st = cli_parse2(&c, o->eval, CB_CONFIG_TRAIN, NULL, o->train, ignored, argc, argv);
    if (st >= 0) return st;
    if (!o->data) return cli_usage_error(&c, "--data PATH is required");
    if (cb_config_check(o->eval, &err) || cb_config_check(o->train, &err)) return cli_usage_error(&c, err.msg);
    const char *folds = cb_config_get(o->eval, "folds"), *unused = NULL; /* --patience without a carve: the check above */
    if (*folds && (unused = cli_ignored_key(o->train, CB_CONFIG_TRAIN, ",split,test-frac,")))
        why = "--folds gives the splits (DATA/NAME.base and DATA/NAME.test)";
    else if (ignored) unused = cli_ignored_key(o->eval, CB_CONFIG_EVAL, ignored);
    if (unused) {
        char msg[300];
        snprintf(msg, sizeof msg, "--%s: %s", unused, why);
        return cli_usage_error(&c, msg);
    }
    return -1;
}

/* Progress of the two-tower model: one line per epoch. */
typedef struct progress {
    bool quiet;
    double *train_loss, *valid_loss; /* per-epoch curve (may be NULL) */
    size_t n_curve, cap_curve;
} progress;

static int on_progress(const cb_progress *p, void *vctx) {
    progress *g = vctx;
    if (!p->end_of_epoch) return 0;
    if (g->train_loss && g->n_curve < g->cap_curve) {
        g->train_loss[g->n_curve] = p->train_loss;
        g->valid_loss[g->n_curve] = p->valid_loss;
        g->n_curve++;
    }
    if (!g->quiet) {
        fprintf(stderr, "  two-tower epoch %u/%u train_loss %.5f", p->epoch, p->epochs, p->train_loss);
        if (!isnan(p->valid_rmse)) fprintf(stderr, "  held-out rmse %.4f", p->valid_rmse);
        fprintf(stderr, "  %.1fs\n", p->seconds);
    }
    return 0;
}

/* The --folds files (DATA/NAME.base and DATA/NAME.test, as cb_evaluate
 * reads them) can be opened: under mpirun every rank checks before the
 * shared work, so a missing one is told once (cb_evaluate meets it on every
 * rank, each printing it and stopping the others). */
static int folds_readable(const opts *o, cb_error *err) {
    const char *folds = cb_config_get(o->eval, "folds");
    for (const char *s = folds ? folds : ""; *s;) {
        size_t len = strcspn(s, ",");
        for (int part = 0; part < 2 && len; part++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%.*s.%s", o->data, (int)len, s, part ? "test" : "base");
            FILE *f = fopen(path, "rb");
            if (!f) {
                snprintf(err->msg, sizeof err->msg, "%.400s: cannot open the fold's file: %.60s", path, strerror(errno));
                return err->code = CB_EIO;
            }
            fclose(f);
        }
        s += len + (s[len] == ',');
    }
    return CB_OK;
}

static int open_data(cb_dataset **ds, const opts *o, cb_error *err) {
    int rc = cb_dataset_open(ds, o->data, o->train, err);
    if (!rc && !o->quiet)
        fprintf(stderr, "%s: %zu users, %zu items, %zu ratings\n", cb_dataset_layout(*ds), cb_dataset_user_count(*ds),
                cb_dataset_item_count(*ds), cb_dataset_rating_count(*ds));
    return rc;
}

/* Write text and a newline to path atomically (the library's writer). */
static int write_file(const char *path, const char *text, cb_error *err) {
    cb_output *o = NULL;
    int rc = cb_output_open(&o, path, err);
    if (rc) return rc;
    if (fputs(text, cb_output_file(o)) < 0 || fputc('\n', cb_output_file(o)) == EOF) {
        int errnum = errno; /* the failed write's (a full disk): the abort's calls may change it */
        cb_output_abort(o);
        err->code = CB_EIO;
        snprintf(err->msg, sizeof err->msg, "%.400s: write error: %.80s", path, strerror(errnum));
        return CB_EIO;
    }
    return cb_output_commit(o, err);
}

/* ---- printing the JSON report */

static double num(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void print_num(FILE *f, double v, int width, int prec) {
    if (isnan(v)) fprintf(f, " %*s", width, "-");
    else fprintf(f, " %*.*f", width, prec, v);
}

static void print_header(FILE *f, const json_t *splits, unsigned K, unsigned RK, bool markdown) {
    const char *sep = markdown ? " |" : "";
    size_t n = json_array_size(splits);
    fprintf(f, "%s%-19s%s", markdown ? "| " : "", "model", sep);
    if (n > 1)
        for (size_t s = 0; s < n; s++) fprintf(f, " %6.6s%s", json_string_value(json_array_get(splits, s)), sep);
    fprintf(f, " %15s%s %6s%s", n > 1 ? "RMSE mean±std" : "RMSE", sep, "MAE", sep);
    char h[7][16];
    snprintf(h[0], 16, "P@%u", K), snprintf(h[1], 16, "R@%u", K), snprintf(h[2], 16, "NDCG@%u", K);
    snprintf(h[3], 16, "MAP@%u", K), snprintf(h[4], 16, "HR@%u", K), snprintf(h[5], 16, "R@%u", RK);
    snprintf(h[6], 16, "pop@%u", K);
    for (int i = 0; i < 6; i++) fprintf(f, " %7s%s", h[i], sep);
    fprintf(f, " %6s%s %6s%s %6s%s %7s%s %5s%s %7s%s\n", "cover", sep, "divers", sep, "pop×", sep, h[6], sep, "tail",
            sep, "fit s", sep);
    if (markdown) {
        fprintf(f, "|---|");
        for (size_t s = 0; s < (n > 1 ? n : 0) + 14; s++) fprintf(f, "---:|");
        fputc('\n', f);
    }
}

static void print_table(FILE *f, const json_t *root, bool markdown) {
    const char *sep = markdown ? " |" : "";
    unsigned K = (unsigned)json_integer_value(json_object_get(root, "k"));
    unsigned RK = (unsigned)json_integer_value(json_object_get(root, "recall_k"));
    const json_t *splits = json_object_get(root, "splits"), *models = json_object_get(root, "models");
    size_t n_splits = json_array_size(splits);
    if (!markdown)
        fprintf(f, "%s (%s): %lld users, %lld items, %lld ratings; %s; top-N: K=%u, relevant = %s\n",
                json_string_value(json_object_get(root, "dataset")), json_string_value(json_object_get(root, "path")),
                json_integer_value(json_object_get(root, "users")), json_integer_value(json_object_get(root, "items")),
                json_integer_value(json_object_get(root, "ratings")),
                json_string_value(json_object_get(root, "protocol")), K,
                json_string_value(json_object_get(root, "relevant")));
    print_header(f, splits, K, RK, markdown);
    char key[40];
    for (size_t m = 0; m < json_array_size(models); m++) {
        const json_t *jm = json_array_get(models, m);
        fprintf(f, "%s%-19s%s", markdown ? "| " : "", json_string_value(json_object_get(jm, "name")), sep);
        const json_t *rmse = json_object_get(jm, "rmse");
        if (n_splits > 1)
            for (size_t s = 0; s < json_array_size(rmse); s++) {
                const json_t *v = json_array_get(rmse, s);
                print_num(f, json_is_number(v) ? json_number_value(v) : NAN, 6, 4);
                fputs(sep, f);
            }
        double mr = num(jm, "mean_rmse");
        if (isnan(mr)) fprintf(f, " %15s%s", "-", sep);
        else if (n_splits > 1) fprintf(f, "  %.4f ± %.4f%s", mr, num(jm, "std_rmse"), sep);
        else fprintf(f, " %15.4f%s", mr, sep);
        print_num(f, num(jm, "mean_mae"), 6, 4), fputs(sep, f);
        snprintf(key, sizeof key, "mean_recall%u", RK);
        double tn[6] = {num(jm, "precision"), num(jm, "recall"), num(jm, "ndcg"), num(jm, "map"), num(jm, "hit_rate"),
                        RK ? num(jm, key) : NAN};
        for (int i = 0; i < 6; i++) print_num(f, tn[i], 7, 4), fputs(sep, f);
        print_num(f, num(jm, "coverage"), 6, 3), fputs(sep, f);
        print_num(f, num(jm, "diversity"), 6, 3), fputs(sep, f);
        print_num(f, num(jm, "pop_ratio"), 6, 2), fputs(sep, f);
        snprintf(key, sizeof key, "mean_pop%u", K), print_num(f, num(jm, key), 7, 1), fputs(sep, f);
        snprintf(key, sizeof key, "mean_long_tail%u", K), print_num(f, num(jm, key), 5, 3), fputs(sep, f);
        print_num(f, num(jm, "fit_seconds"), 7, 1), fputs(sep, f);
        fputc('\n', f);
    }
}

/* The settings chosen on a validation carve, per model and split. */
static void print_chosen(FILE *f, const json_t *root, bool markdown) {
    const json_t *models = json_object_get(root, "models"), *splits = json_object_get(root, "splits");
    for (size_t m = 0; m < json_array_size(models); m++) {
        const json_t *jm = json_array_get(models, m), *folds = json_object_get(jm, "folds");
        for (size_t k = 0; k < json_array_size(folds); k++) {
            const json_t *jf = json_array_get(folds, k);
            const char *settings = json_string_value(json_object_get(jf, "settings"));
            json_int_t fold = json_integer_value(json_object_get(jf, "fold"));
            const json_t *name = json_array_get(splits, fold > 0 ? (size_t)fold - 1 : 0);
            if (settings)
                fprintf(f, "%s%s [%s]: %s\n", markdown ? "- " : "", json_string_value(json_object_get(jm, "name")),
                        json_string_value(name), settings);
        }
    }
}

/* A row whose top-N means cover only some of the splits (the others could
 * not rank: no figure), said: a mean over 3 of 5 folds had read as all 5. */
static void print_partial_means(FILE *f, const json_t *root, bool markdown) {
    const json_t *models = json_object_get(root, "models");
    for (size_t m = 0; m < json_array_size(models); m++) {
        const json_t *jm = json_array_get(models, m), *part = json_object_get(jm, "topn_splits");
        if (part)
            fprintf(f, "%s%s: the accuracy figures (P, R, NDCG, MAP, HR, the longer R) are means over %lld of the %lld splits (the "
                    "others have none: their candidates scored alike)\n",
                    markdown ? "- " : "", json_string_value(json_object_get(jm, "name")),
                    (long long)json_integer_value(json_object_get(part, "measured")),
                    (long long)json_integer_value(json_object_get(part, "of")));
    }
}

/* Our rows against the strongest simple baseline, user by user (the
 * paired difference of NDCG@K and its standard error), and what that tells:
 * a difference inside two standard errors does not tell the two apart. */
static void print_vs(FILE *f, const json_t *root, bool markdown) {
    const json_t *models = json_object_get(root, "models");
    unsigned K = (unsigned)json_integer_value(json_object_get(root, "k"));
    size_t n_splits = json_array_size(json_object_get(root, "splits"));
    for (size_t m = 0; m < json_array_size(models); m++) {
        const json_t *jm = json_array_get(models, m), *vs = json_object_get(jm, "vs_baseline");
        if (!vs) continue;
        double d = num(vs, "ndcg_diff"), se = num(vs, "se");
        const char *ref = json_string_value(json_object_get(vs, "model"));
        fprintf(f, "%s%s against %s (the strongest simple baseline%s), NDCG@%u user by user: %+.4f", markdown ? "- " : "",
                json_string_value(json_object_get(jm, "name")), strcmp(ref, "per split") ? ref : "each split's",
                n_splits > 1 ? " of each split; over the splits" : " here", K, d);
        if (isnan(se)) {
            fprintf(f, " (too few users for a standard error)\n");
            continue;
        }
        long long users = json_integer_value(json_object_get(vs, "users"));
        const json_t *pairs = json_object_get(vs, "user_splits");
        if (pairs) /* a user in several test parts: one cluster */
            fprintf(f, " ± %.4f (paired standard error clustered by user: %lld users, %lld user-splits): ", se, users,
                    (long long)json_integer_value(pairs));
        else fprintf(f, " ± %.4f (paired standard error, %lld users): ", se, users);
        if (se > 0 && fabs(d) >= 2 * se) fprintf(f, "%s it by %.1f standard errors\n", d > 0 ? "above" : "below", fabs(d) / se);
        else fprintf(f, "not told apart (within two standard errors)\n");
    }
}

/* What the diversity column measures, in words: "'genres' sets" (markdown:
 * `genres`), or why there is none. */
static const char *diversity_sets(const json_t *root, bool markdown, char *buf, size_t size) {
    const char *col = json_string_value(json_object_get(root, "diversity_column"));
    if (!col) return "value sets (none: the catalog has no multi-valued item column)";
    snprintf(buf, size, markdown ? "`%s` sets" : "'%s' sets", col);
    return buf;
}

static const char *const legend =
    "R@%u = recall at the longer list; pop@%u = mean training count of the recommended items; divers = mean "
    "intra-list Jaccard distance of the items' %s; tail = share of recommended slots holding a long-tail "
    "item (outside the most popular items that make up 80%% of the training interactions); ease / item-knn "
    "settings chosen on a per-user validation carve of training (each user's latest under --split temporal); "
    "cbrec = `cbrec train` + `cbrec recommend` with the training settings below (their defaults unless given).";

/* text as lines of at most `width` bytes, broken at spaces (a longer word
 * stands alone), each ended by a newline: the legend's own breaks had left
 * a 150-column line where the diversity sets' words were long. */
static void print_wrapped(FILE *f, const char *text, int width) {
    while (*text) {
        int len = (int)strlen(text), cut = len;
        if (len > width) {
            for (cut = width; cut > 0 && text[cut] != ' '; cut--) {}
            if (cut == 0) cut = (int)strcspn(text, " ");
        }
        fprintf(f, "%.*s\n", cut, text);
        text += cut;
        while (*text == ' ') text++;
    }
}

/* The objective the two-tower rows trained with: the setting, as the data
 * resolved it (events without ratings train retrieval whatever was asked). */
static const char *trained_objective(const json_t *root, const opts *o) {
    const char *v = json_string_value(json_object_get(json_object_get(root, "two_tower"), "objective"));
    return v ? v : cb_config_get(o->train, "objective");
}

static void print_settings(FILE *f, const json_t *root, const opts *o) {
    static const char *const tk[] = {"user-layers", "item-layers", "dim", "l2norm", "optimizer", "lr", "batch",
                                     "epochs", "weight-decay", "top-k-popular", "scale-targets", "valid-frac", "seed",
                                     "objective", "temperature", "logq", "rating-weight", "popularity-prior",
                                     "id-embedding", "split-heads", "below-weight", "negatives", "lr-decay"};
    static const char *const ek[] = {"twotower-valid-frac", "implicit-epochs", "cold-impute", "cold-neighbours"};
    fprintf(f, "training:");
    for (size_t i = 0; i < sizeof tk / sizeof *tk; i++)
        fprintf(f, "%s %s %s", i ? "," : "", tk[i],
                strcmp(tk[i], "objective") ? cb_config_get(o->train, tk[i]) : trained_objective(root, o));
    /* and every other key given a value other than its default (--neighbours 0, ...) */
    for (size_t i = 0; i < cb_config_n_keys(CB_CONFIG_TRAIN); i++) {
        cb_config_key_info k;
        const char *v = cli_changed_key(o->train, CB_CONFIG_TRAIN, i, &k);
        bool listed = false;
        for (size_t j = 0; v && j < sizeof tk / sizeof *tk && !listed; j++) listed = !strcmp(tk[j], k.name);
        if (v && !listed && strcmp(k.section, "data")) fprintf(f, ", %s %s", k.name, v);
    }
    fprintf(f, "\ntwo-tower rows:");
    for (size_t i = 0; i < sizeof ek / sizeof *ek; i++) fprintf(f, "%s %s %s", i ? "," : "", ek[i], cb_config_get(o->eval, ek[i]));
    fputc('\n', f);
}

static void print_evaluation(FILE *f, const json_t *root, const opts *o, bool markdown) {
    unsigned K = (unsigned)json_integer_value(json_object_get(root, "k"));
    unsigned RK = (unsigned)json_integer_value(json_object_get(root, "recall_k"));
    print_table(f, root, markdown);
    if (markdown) fputc('\n', f);
    const char *note = json_string_value(json_object_get(root, "note"));
    if (note) fprintf(f, "%s%s\n", markdown ? "- " : "", note);
    print_chosen(f, root, markdown);
    print_partial_means(f, root, markdown);
    print_vs(f, root, markdown);
    if (markdown) fputc('\n', f);
    char sets[96];
    char words[1024];
    snprintf(words, sizeof words, legend, RK, K, diversity_sets(root, false, sets, sizeof sets));
    print_wrapped(f, words, 105);
    if (markdown) fputc('\n', f);
    print_settings(f, root, o);
}

static const char *eval_usage =
    "usage: cbrec eval --data PATH [--folds u1,u2,u3,u4,u5 | --split KIND] [options]\n"
    "Trains every model on the same split(s) and prints one table: RMSE per fold with mean ± std\n"
    "(population), MAE, top-N precision / recall / NDCG / MAP / hit rate at K over the full catalog with\n"
    "the user's training items excluded, catalog coverage, diversity (of the items' genres, or of the\n"
    "first multi-valued item column, a shop's tags) and popularity ratio (mean training count of\n"
    "recommended items / of items the users rated). Protocol cold-users: users held out entirely; the\n"
    "models rank the catalog for them from their attributes alone.\n";

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    opts o;
    const cli_opt ex[] = {
        {"json", 0, NULL, "print one JSON object {\"models\": [{\"name\", \"mean_rmse\", \"mean_ndcg10\", ...}], ...}",
         NULL, &o.json, NULL},
        {"json-out", 0, "FILE", "also write that JSON object to FILE (the table still prints)", &o.json_out, NULL, NULL},
        {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    int st = parse_opts(&o, cmd, eval_usage, ex, ",sizes,users,",
                        "cbrec eval runs no retrieval experiment (cbrec experiment retrieval and cbrec report do)",
                        argc, argv);
    if (st < 0) st = check_outputs(cmd, &o, NULL, 0);
    if (st >= 0) return opts_free(&o), st;
    cb_error err = {0};
    cb_dataset *ds = NULL;
    char *report = NULL;
    progress pg = {.quiet = o.quiet};
    double t0 = cli_now();
    cli_mpi mp = {.size = 1}; /* under mpirun the ranks share the splits; rank 0 prints and writes */
    int status = cli_mpi_begin(&mp, cmd, o.train);
    if (mp.rank) pg.quiet = o.quiet = true; /* rank 0 prints */
    int rc = status >= 0 ? CB_OK : open_data(&ds, &o, &err);
    if (status < 0) status = cli_mpi_told(&mp, cmd, rc, &err); /* the same data on every rank: told once */
    if (status < 0) status = cli_mpi_told(&mp, cmd, folds_readable(&o, &err), &err);
    if (!rc && status < 0) rc = cb_evaluate(ds, o.eval, o.train, on_progress, &pg, &report, &err);
    bool together = !rc && status < 0; /* every rank passed the evaluation's gathers: rank 0's write is settled with all */
    json_error_t je;
    json_t *root = rc || mp.rank || status >= 0 ? NULL : json_loads(report, 0, &je);
    if (!rc && o.json_out && !mp.rank && status < 0) rc = write_file(o.json_out, report, &err);
    if (status >= 0) ;
    else if (rc && together) status = cli_error(cmd, &err); /* rank 0's --json-out */
    else if (rc) status = cli_mpi_failed(&mp, cmd, rc, &err); /* every rank alike (a bad fold's line): told once */
    else if (mp.rank) status = CLI_OK;
    else if (o.json) puts(report), status = CLI_OK;
    else {
        status = CLI_OK;
        if (root) print_evaluation(stdout, root, &o, false), printf("total %.1fs\n", cli_now() - t0);
    }
    int settled = together ? cli_mpi_settle(&mp, status != CLI_OK) : -1; /* none stopped by another */
    if (settled >= 0) status = settled;
    status = cli_mpi_end(&mp, cmd, status);
    json_decref(root);
    free(report);
    cb_dataset_close(ds);
    opts_free(&o);
    return status;
}

/* ---- the retrieval-size experiment */

/* The retrieval experiment's figures of a row, in the table's and the TSV's order. */
static const char *const retrieval_keys[6] = {"mean_candidates", "recall", "ndcg", "mean_score", "overlap",
                                              "latency_us"};

static void print_retrieval(FILE *f, const json_t *root, bool markdown) {
    const char *sep = markdown ? " |" : "";
    unsigned K = (unsigned)json_integer_value(json_object_get(root, "k"));
    char h[4][24];
    snprintf(h[0], 24, "recall@%u", K), snprintf(h[1], 24, "NDCG@%u", K);
    snprintf(h[2], 24, "mean score@%u", K), snprintf(h[3], 24, "overlap@%u", K);
    fprintf(f, "%s%9s%s %10s%s %9s%s %8s%s %13s%s %10s%s %12s%s\n", markdown ? "| " : "", "retrieval", sep,
            "candidates", sep, h[0], sep, h[1], sep, h[2], sep, h[3], sep, "latency µs", sep);
    if (markdown) fprintf(f, "|---:|---:|---:|---:|---:|---:|---:|\n");
    const json_t *rows = json_object_get(root, "rows");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *r = json_array_get(rows, i), *size = json_object_get(r, "size");
        char sz[16];
        if (json_is_integer(size)) snprintf(sz, sizeof sz, "%lld", json_integer_value(size));
        else snprintf(sz, sizeof sz, "full");
        fprintf(f, "%s%9s%s", markdown ? "| " : "", sz, sep);
        const int width[6] = {10, 9, 8, 13, 10, 12}, prec[6] = {1, 4, 4, 4, 4, 1};
        for (int c = 0; c < 6; c++) print_num(f, num(r, retrieval_keys[c]), width[c], prec[c]), fputs(sep, f); /* null: "-" */
        fputc('\n', f);
    }
}

static int write_tsv(const char *path, const json_t *root, cb_error *err) {
    const json_t *rows = json_object_get(root, "rows");
    size_t cap = 128 * (json_array_size(rows) + 1), len = 0;
    char *buf = malloc(cap);
    if (!buf) return CB_ENOMEM;
    len += (size_t)snprintf(buf, cap, "size\tcandidates\trecall\tndcg\tmean_score\toverlap\tlatency_us");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *r = json_array_get(rows, i);
        const json_t *size = json_object_get(r, "size");
        len += json_is_integer(size) ? (size_t)snprintf(buf + len, cap - len, "\n%lld", json_integer_value(size))
                                     : (size_t)snprintf(buf + len, cap - len, "\nfull"); /* it wrote 0 */
        for (size_t k = 0; k < 6; k++) { /* no figure: an empty field (it read "nan") */
            double v = num(r, retrieval_keys[k]);
            len += (size_t)(isfinite(v) ? snprintf(buf + len, cap - len, "\t%.*f", k == 0 || k == 5 ? 3 : 6, v)
                                        : snprintf(buf + len, cap - len, "\t"));
        }
    }
    int rc = write_file(path, buf, err);
    free(buf);
    return rc;
}

static const char *experiment_usage =
    "usage: cbrec experiment retrieval --data PATH [--model FILE] [--sizes 25,50,100,200,500,1000,full]\n"
    "                                  [--users N] [--plot FILE.svg] [--tsv FILE] [--json] [options]\n"
    "For each retrieval budget, the cheap sources of the retrieval -> ranking pipeline (similar to the\n"
    "user's recent liked items 60%, best genres 20%, group / popularity 20%) bring about that many\n"
    "candidates, the model ranks them, and the final top-K is compared with the full-catalog ranking:\n"
    "recall and NDCG of held-out relevant items, mean predicted score, overlap, latency per user.\n"
    "Without --model the two-tower model is trained on the split (or the first of --folds); with\n"
    "--model, give the same --data / --split / --seed / --test-frac it was trained with (its towers\n"
    "never saw the held-out part; its history and similar-item lists, built from every rating, did:\n"
    "the held-out items are taken out of each user's history, the lists stay as saved).\n";

int cmd_experiment(int argc, char **argv) {
    const char *cmd = "experiment";
    if (argc < 2 || (strcmp(argv[1], "retrieval") && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))) {
        const cli_command c = {cmd, experiment_usage, NULL, 0, NULL};
        if (argc < 2) return cli_usage_error(&c, "give the experiment: retrieval");
        char msg[200];
        snprintf(msg, sizeof msg, "unknown experiment '%.80s' (the one experiment is retrieval)", argv[1]);
        return cli_usage_error(&c, msg);
    }
    opts o;
    const cli_opt ex[] = {{"model", 'm', "FILE", "a model made by cbrec train on the same split", &o.model_path, NULL, NULL},
                          {"plot", 0, "FILE.svg", "write the chart", &o.plot, NULL, NULL},
                          {"tsv", 0, "FILE", "write the rows as TSV", &o.tsv, NULL, NULL},
                          {"json", 0, NULL, "print the JSON report", NULL, &o.json, NULL},
                          {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    bool help = strcmp(argv[1], "retrieval") != 0;
    int st = parse_opts(&o, cmd, experiment_usage, ex, ",models,recall-k,topn,tune-frac,implicit-epochs,",
                        "the retrieval experiment measures one two-tower model at K (cbrec eval and cbrec report "
                        "compare the models)", help ? argc : argc - 1, help ? argv : argv + 1);
    if (st < 0) st = check_outputs(cmd, &o, NULL, 0);
    if (st >= 0) return opts_free(&o), st;
    cb_error err = {0};
    cb_dataset *ds = NULL;
    cb_recommender *rec = NULL;
    char *report = NULL;
    progress pg = {.quiet = o.quiet};
    int rc = open_data(&ds, &o, &err);
    if (!rc && o.model_path) rc = cb_recommender_load(&rec, o.model_path, NULL, &err);
    if (!rc && !o.model_path && !o.quiet) fprintf(stderr, "training the two-tower model\n");
    if (!rc) rc = cb_evaluate_retrieval(ds, o.eval, o.train, rec, on_progress, &pg, &report, &err);
    json_error_t je;
    json_t *root = rc ? NULL : json_loads(report, 0, &je);
    if (!rc && o.json) puts(report);
    else if (root) {
        const json_t *rows = json_object_get(root, "rows");
        printf("%s: retrieval-size experiment over %lld test users with a relevant held-out item (%s), K=%lld\n",
               json_string_value(json_object_get(root, "dataset")),
               json_integer_value(json_object_get(json_array_get(rows, 0), "n_users")),
               json_string_value(json_object_get(root, "protocol")), json_integer_value(json_object_get(root, "k")));
        print_retrieval(stdout, root, false);
    }
    if (!rc && o.tsv) rc = write_tsv(o.tsv, root, &err);
    if (!rc && o.plot) rc = cb_plot_retrieval_svg(o.plot, report, &err);
    if (!rc && o.plot && !o.quiet) fprintf(stderr, "wrote %s\n", o.plot);
    int status = rc ? cli_error(cmd, &err) : CLI_OK;
    json_decref(root);
    free(report);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    opts_free(&o);
    return status;
}

/* ---- the report */

static const char *report_usage =
    "usage: cbrec report --data PATH --out report.md [--folds LIST | --split KIND] [--seed N] [options]\n"
    "Runs the evaluation, the retrieval-size experiment on a two-tower model trained on the first split\n"
    "and records its learning curve (held-out loss per epoch: the test part's, for monitoring only, or with\n"
    "--twotower-valid-frac a validation carve's, which --patience stops on), then writes one\n"
    "Markdown page with the table, the experiment table and two SVG plots next to it\n"
    "(<out>-retrieval.svg, <out>-curve.svg). The same seed reproduces the same page (timings aside).\n";

static int make_parent(const char *path) {
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent) return 0;
    *slash = 0;
    return mkdir(parent, 0777) && errno != EEXIST ? -1 : 0;
}

/* " --key VALUE" for every key of cfg set away from its default (booleans as
 * --key / --no-key), but those in `skip` (comma-separated): what a command
 * line needs to give these settings again. */
static void print_changed_keys(FILE *f, const cb_config *cfg, cb_config_kind kind, const char *skip) {
    for (size_t i = 0; i < cb_config_n_keys(kind); i++) {
        cb_config_key_info k;
        const char *v = cli_changed_key(cfg, kind, i, &k);
        if (!v || cli_key_listed(skip, k.name)) continue;
        if (k.is_bool) fprintf(f, " --%s%s", strcmp(v, "true") ? "no-" : "", k.name);
        else fprintf(f, strpbrk(v, " \t'\"$`\\") || !*v ? " --%s '%s'" : " --%s %s", k.name, v);
    }
}

/* What the learning curve's losses are: the loss of the objective the
 * two-tower rows trained with. */
static void print_loss(FILE *f, const json_t *ev, const opts *o) {
    const json_t *tt = json_object_get(ev, "two_tower");
    const char *objective = trained_objective(ev, o), *loss = json_string_value(json_object_get(tt, "loss"));
    const char *scaled = json_is_false(json_object_get(tt, "scale_targets")) ? "" : " (targets scaled to [-1, 1])";
    if (strcmp(objective, "rating"))
        fprintf(f, "the softmax cross-entropy of each pick over the items of its batch");
    if (!strcmp(objective, "both"))
        fprintf(f, " plus %g × the squared error of the rating half%s", num(tt, "rating_weight"), scaled);
    else if (!strcmp(objective, "rating") && loss && !strcmp(loss, "bce"))
        fprintf(f, "the sigmoid cross-entropy on the 0/1 labels");
    else if (!strcmp(objective, "rating"))
        fprintf(f, "the squared error of the predicted rating%s", scaled);
    fprintf(f, " (objective %s)", objective);
}

/* What the curve's held-out loss is: the test part's, watched only; or,
 * with --twotower-valid-frac, a validation carve's, which --patience may stop
 * the training on (it said "watched only" then too). */
static void print_held_out(FILE *f, const opts *o) {
    const char *carve = cb_config_get(o->eval, "twotower-valid-frac"), *patience = cb_config_get(o->train, "patience");
    if (strtod(carve, NULL) <= 0) {
        fputs("The held-out loss is the test part's, watched only (patience 0): it selects nothing.", f);
        return;
    }
    fprintf(f, "The held-out loss is a validation carve's (%s of the training part, --twotower-valid-frac)", carve);
    if (strcmp(patience, "0")) fprintf(f, "; --patience %s stops the training when it has not improved for that many "
                                          "epochs.", patience);
    else fputs(", watched only (patience 0): it selects nothing.", f);
}

static void write_report(FILE *f, const opts *o, const json_t *ev, const json_t *rt, const progress *pg,
                         const char *ret_name, const char *curve_name, double seconds) {
    unsigned K = (unsigned)json_integer_value(json_object_get(ev, "k"));
    const char *folds = cb_config_get(o->eval, "folds");
    fprintf(f, "# cbrec evaluation report\n\n");
    fprintf(f, "Dataset **%s** (`%s`): %lld users, %lld items, %lld ratings. Protocol: %s. Top-N: K = %u, relevant = "
               "%s, ranked over %s.\n\n",
            json_string_value(json_object_get(ev, "dataset")), o->data, json_integer_value(json_object_get(ev, "users")),
            json_integer_value(json_object_get(ev, "items")), json_integer_value(json_object_get(ev, "ratings")),
            json_string_value(json_object_get(ev, "protocol")), K, json_string_value(json_object_get(ev, "relevant")),
            json_string_value(json_object_get(ev, "ranked")));
    fprintf(f, "Reproduce: `cbrec report --data %s %s%s --seed %s", o->data, *folds ? "--folds " : "--split ",
            *folds ? folds : cb_config_get(o->train, "split"), cb_config_get(o->train, "seed"));
    print_changed_keys(f, o->train, CB_CONFIG_TRAIN, ",split,seed,");
    print_changed_keys(f, o->eval, CB_CONFIG_EVAL, ",folds,");
    fprintf(f, " --out %s` (cbrec %s).\n\n", o->out, cb_version());
    fprintf(f, "## Evaluation\n\n");
    print_evaluation(f, ev, o, true);
    char sets[96];
    fprintf(f, "\ncover = catalog coverage of the top-K lists; divers = mean intra-list Jaccard distance of the items' "
               "%s; pop× = mean training popularity of recommended items / of items the same users rated (> 1: "
               "the model favours popular items). fit s = wall seconds to fit (2 shared cores: noisy). Total "
               "%.1f s.\n\n", diversity_sets(ev, true, sets, sizeof sets), seconds);
    fprintf(f, "## Retrieval size (first split: %s)\n\n", json_string_value(json_object_get(rt, "split")));
    print_retrieval(f, rt, true);
    fprintf(f, "\nretrieval = nominal candidate budget of the cheap sources (similar items 60%%, genres 20%%, "
               "group/popular 20%%; \"full\" = the whole catalog by v_u·v_m); candidates = distinct unseen "
               "candidates actually retrieved; overlap = share of the full-catalog top-%u kept.\n\n![retrieval](%s)\n\n",
            K, ret_name);
    fprintf(f, "## Learning curve (two-tower, first split)\n\n![curve](%s)\n\n| epoch | train loss | held-out loss |\n"
               "|---:|---:|---:|\n", curve_name);
    for (size_t e = 0; e < pg->n_curve; e++) fprintf(f, "| %zu | %.5f | %.5f |\n", e + 1, pg->train_loss[e], pg->valid_loss[e]);
    fprintf(f, "\nLosses are ");
    print_loss(f, ev, o);
    fputs(". ", f);
    print_held_out(f, o);
    fputc('\n', f);
}

int cmd_report(int argc, char **argv) {
    const char *cmd = "report";
    opts o;
    const cli_opt ex[] = {{"out", 'o', "FILE.md", "the report to write (required)", &o.out, NULL, NULL},
                          {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    int st = parse_opts(&o, cmd, report_usage, ex, NULL, NULL, argc, argv);
    if (st >= 0) return opts_free(&o), st;
    if (!o.out) return opts_free(&o), cli_fail(CLI_USAGE, cmd, "--out FILE.md is required");
    char base[4096], curve_path[4200], ret_path[4200]; /* the plots beside the page */
    snprintf(base, sizeof base, "%s", o.out);
    char *dot = strrchr(base, '.');
    if (dot && !strchr(dot, '/')) *dot = 0;
    snprintf(curve_path, sizeof curve_path, "%s-curve.svg", base);
    snprintf(ret_path, sizeof ret_path, "%s-retrieval.svg", base);
    if (make_parent(o.out)) return opts_free(&o), cli_fail(CLI_ERROR, cmd, "cannot create the folder of %s: %s", o.out, strerror(errno));
    const char *plots[] = {curve_path, ret_path};
    if ((st = check_outputs(cmd, &o, plots, 2)) >= 0) return opts_free(&o), st;
    size_t cap = (size_t)strtoul(cb_config_get(o.train, "epochs"), NULL, 10) + 1;
    double *tl = calloc(cap, sizeof *tl), *vl = calloc(cap, sizeof *vl);
    progress pg = {.quiet = o.quiet, .train_loss = tl, .valid_loss = vl, .cap_curve = cap};
    cb_error err = {0};
    cb_dataset *ds = NULL;
    char *ev_text = NULL, *rt_text = NULL;
    json_t *ev = NULL, *rt = NULL;
    json_error_t je;
    const char *curve_name = strrchr(curve_path, '/') ? strrchr(curve_path, '/') + 1 : curve_path;
    const char *ret_name = strrchr(ret_path, '/') ? strrchr(ret_path, '/') + 1 : ret_path;
    double t0 = cli_now();
    int rc = tl && vl ? open_data(&ds, &o, &err) : (err.code = CB_ENOMEM);
    progress quiet_pg = {.quiet = o.quiet};
    if (!rc) rc = cb_evaluate(ds, o.eval, o.train, on_progress, &quiet_pg, &ev_text, &err);
    double seconds = cli_now() - t0;
    if (!rc && !o.quiet) fprintf(stderr, "retrieval-size experiment (two-tower model on the first split)\n");
    if (!rc) rc = cb_evaluate_retrieval(ds, o.eval, o.train, NULL, on_progress, &pg, &rt_text, &err);
    if (!rc && (!(ev = json_loads(ev_text, 0, &je)) || !(rt = json_loads(rt_text, 0, &je))))
        rc = err.code = CB_EPARSE, snprintf(err.msg, sizeof err.msg, "report JSON: %s", je.text);
    if (!rc) rc = cb_plot_retrieval_svg(ret_path, rt_text, &err);
    if (!rc) rc = cb_plot_curve_svg(curve_path, tl, vl, pg.n_curve, "two-tower learning curve (first split)", &err);
    if (!rc) {
        cb_output *out = NULL;
        rc = cb_output_open(&out, o.out, &err);
        if (!rc) {
            write_report(cb_output_file(out), &o, ev, rt, &pg, ret_name, curve_name, seconds);
            rc = cb_output_commit(out, &err);
        }
    }
    if (!rc && !o.quiet) fprintf(stderr, "wrote %s, %s, %s\n", o.out, ret_path, curve_path);
    int status = rc ? cli_error(cmd, &err) : CLI_OK;
    json_decref(ev);
    json_decref(rt);
    free(ev_text);
    free(rt_text);
    free(tl);
    free(vl);
    cb_dataset_close(ds);
    opts_free(&o);
    return status;
}
