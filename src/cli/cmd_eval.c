/* cbrec eval / experiment / report — measuring cbrec honestly: the two-tower
 * model beside the baselines on the same splits (one table, or one JSON
 * object), the retrieval-size experiment (a table and an SVG plot), and a
 * Markdown report holding both plus the learning curve. The work is done by
 * evalrun.h; this file parses options and prints. */
#include "cli.h"
#include "eval/evalrun.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FOLDS 16
#define MAX_SIZES 32

static const char *common_usage =
    "data and protocol:\n"
    "  --data PATH            dataset folder (MovieLens, generic with cbrec.schema, ...)\n"
    "  --schema FILE          schema for the generic layout   --skip-bad-rows  skip malformed rows\n"
    "  --folds LIST           fixed folds, e.g. u1,u2,u3,u4,u5 (reads PATH/u1.base + PATH/u1.test)\n"
    "  --split KIND           random | temporal | cold-users | cold-items (default random; ignored with --folds)\n"
    "  --test-frac F          held-out fraction (default 0.2)    --seed N  seed of split and model (default 1)\n"
    "  --k N                  list length K (default 10)         --threshold Y  relevant = rating >= Y (default 4)\n"
    "two-tower (defaults are the evaluation settings, see `cbrec eval --help`):\n"
    "  --epochs N --batch N --lr F --weight-decay F --dim N --user-layers LIST --item-layers LIST\n"
    "  --no-l2norm --no-scale-targets --valid-frac F --patience N --threads N\n"
    "  --top-k-popular N --age-buckets --exclude-cols LIST\n"
    "  --objective rating|retrieval|both   what the two-tower row is trained for (see model.h)\n"
    "  --temperature F --rating-weight F --popularity-prior F --no-logq: its retrieval settings\n"
    "  --id-embedding on|off  a learned vector per item added to the item tower's output\n"
    "  --split-heads on|off   objective both: separate output halves for ranking and rating\n"
    "  --implicit-epochs N    epochs of two-tower/implicit (the towers with objective retrieval;\n"
    "                         0 = --epochs)\n"
    "  --no-cold-impute       cold users keep the raw \"0 ratings\" feature row (see evalrun.h)\n"
    "  --cold-neighbours N    impute them from the N attribute-nearest training users (200)\n"
    "  -q, --quiet            no progress output on stderr\n";

/* ---- options shared by the three commands */

typedef struct opts {
    const char *data, *split, *folds, *models, *model_path, *out, *plot, *tsv, *sizes, *json_out;
    cb_load_options lo;
    double test_frac;
    cb_evalrun_config ec;
    bool json, quiet, no_topn;
    size_t max_users;
} opts;

enum {
    O_SCHEMA = 256, O_SKIP, O_SPLIT, O_FOLDS, O_TEST, O_SEED, O_MODELS, O_K, O_THR, O_JSON, O_NOTOPN, O_EPOCHS,
    O_BATCH, O_LR, O_WD, O_DIM, O_UL, O_IL, O_NOL2, O_NOSCALE, O_VALID, O_PAT, O_THREADS, O_TOPK, O_AGEB, O_EXCL,
    O_MODEL, O_OUT, O_PLOT, O_TSV, O_SIZES, O_USERS, O_JSONOUT, O_OBJ, O_IEP, O_NOCOLD, O_COLDK, O_TEMP, O_PRIOR, O_RW, O_NOLOGQ, O_IDEMB, O_SPLITH
};

static const struct option long_opts[] = {
    {"data", required_argument, 0, 'd'}, {"schema", required_argument, 0, O_SCHEMA},
    {"skip-bad-rows", no_argument, 0, O_SKIP}, {"split", required_argument, 0, O_SPLIT},
    {"folds", required_argument, 0, O_FOLDS}, {"test-frac", required_argument, 0, O_TEST},
    {"seed", required_argument, 0, O_SEED}, {"models", required_argument, 0, O_MODELS},
    {"k", required_argument, 0, O_K}, {"threshold", required_argument, 0, O_THR},
    {"json", no_argument, 0, O_JSON}, {"no-topn", no_argument, 0, O_NOTOPN},
    {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
    {"lr", required_argument, 0, O_LR}, {"weight-decay", required_argument, 0, O_WD},
    {"dim", required_argument, 0, O_DIM}, {"user-layers", required_argument, 0, O_UL},
    {"item-layers", required_argument, 0, O_IL}, {"no-l2norm", no_argument, 0, O_NOL2},
    {"no-scale-targets", no_argument, 0, O_NOSCALE}, {"valid-frac", required_argument, 0, O_VALID},
    {"patience", required_argument, 0, O_PAT}, {"threads", required_argument, 0, O_THREADS},
    {"top-k-popular", required_argument, 0, O_TOPK}, {"age-buckets", no_argument, 0, O_AGEB},
    {"exclude-cols", required_argument, 0, O_EXCL}, {"model", required_argument, 0, O_MODEL},
    {"out", required_argument, 0, O_OUT}, {"plot", required_argument, 0, O_PLOT},
    {"tsv", required_argument, 0, O_TSV}, {"sizes", required_argument, 0, O_SIZES},
    {"users", required_argument, 0, O_USERS}, {"json-out", required_argument, 0, O_JSONOUT},
    {"objective", required_argument, 0, O_OBJ}, {"implicit-epochs", required_argument, 0, O_IEP},
    {"no-cold-impute", no_argument, 0, O_NOCOLD}, {"cold-neighbours", required_argument, 0, O_COLDK},
    {"temperature", required_argument, 0, O_TEMP}, {"popularity-prior", required_argument, 0, O_PRIOR},
    {"rating-weight", required_argument, 0, O_RW}, {"no-logq", no_argument, 0, O_NOLOGQ},
    {"id-embedding", required_argument, 0, O_IDEMB}, {"split-heads", required_argument, 0, O_SPLITH},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};

static bool num_in(const char *s, double lo, double hi, double *out) {
    return cb_parse_double(s, strlen(s), out) && *out >= lo && *out <= hi;
}

static int parse_layers(const char *s, uint32_t *n, uint32_t *sizes) {
    *n = 0;
    if (!*s || !strcmp(s, "none")) return 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        int64_t v;
        if (*n == CB_MODEL_MAX_LAYERS || !cb_parse_i64(s, len, &v) || v < 1 || v > 65536) return -1;
        sizes[(*n)++] = (uint32_t)v;
        s += len;
        if (*s == ',') s++;
    }
    return 0;
}

/* Parse argv into o. Returns -1 to continue, else an exit status. */
static int parse_opts(opts *o, const char *cmd, const char *usage, int argc, char **argv) {
    double v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "d:qh", long_opts, NULL)) != -1) {
        cb_model_config *mc = &o->ec.model;
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'q': o->quiet = true; break;
        case 'h': fputs(usage, stdout); fputs(common_usage, stdout); return CLI_OK;
        case O_SCHEMA: o->lo.schema = optarg; break;
        case O_SKIP: o->lo.skip_bad_rows = true; break;
        case O_SPLIT: o->split = optarg; break;
        case O_FOLDS: o->folds = optarg; break;
        case O_TEST:
            if (!num_in(optarg, 0.001, 0.99, &o->test_frac)) return cli_fail(CLI_USAGE, cmd, "--test-frac must be in (0, 0.99]");
            break;
        case O_SEED:
            if (!num_in(optarg, 0, 4294967295.0, &v)) return cli_fail(CLI_USAGE, cmd, "--seed must be 0..2^32-1");
            mc->seed = (uint64_t)v;
            break;
        case O_MODELS: o->models = optarg; break;
        case O_K:
            if (!num_in(optarg, 1, 1000, &v)) return cli_fail(CLI_USAGE, cmd, "--k must be 1..1000");
            o->ec.topn.k = (uint32_t)v;
            break;
        case O_THR:
            if (!num_in(optarg, -1e9, 1e9, &v)) return cli_fail(CLI_USAGE, cmd, "bad --threshold");
            o->ec.topn.threshold = (float)v;
            break;
        case O_JSON: o->json = true; break;
        case O_JSONOUT: o->json_out = optarg; break;
        case O_OBJ:
            if (cb_objective_parse(optarg, &mc->objective))
                return cli_fail(CLI_USAGE, cmd, "--objective must be rating, retrieval or both");
            break;
        case O_IEP:
            if (!num_in(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --implicit-epochs");
            o->ec.implicit_epochs = (uint32_t)v;
            break;
        case O_NOCOLD: o->ec.cold_impute = false; break;
        case O_COLDK:
            if (!num_in(optarg, 1, 1e9, &v)) return cli_fail(CLI_USAGE, cmd, "bad --cold-neighbours");
            o->ec.cold_neighbours = (uint32_t)v;
            break;
        case O_TEMP:
            if (!num_in(optarg, 1e-4, 100, &v)) return cli_fail(CLI_USAGE, cmd, "--temperature must be in [1e-4, 100]");
            mc->temperature = (float)v;
            break;
        case O_PRIOR:
            if (!num_in(optarg, -10, 10, &v)) return cli_fail(CLI_USAGE, cmd, "--popularity-prior must be in [-10, 10]");
            mc->popularity_prior = (float)v;
            break;
        case O_RW:
            if (!num_in(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --rating-weight");
            mc->rating_weight = (float)v;
            break;
        case O_NOLOGQ: mc->logq = false; break;
        case O_IDEMB:
            if (strcmp(optarg, "on") && strcmp(optarg, "off")) return cli_fail(CLI_USAGE, cmd, "--id-embedding must be on or off");
            mc->item_id_embedding = !strcmp(optarg, "on");
            break;
        case O_SPLITH:
            if (strcmp(optarg, "on") && strcmp(optarg, "off")) return cli_fail(CLI_USAGE, cmd, "--split-heads must be on or off");
            mc->split_heads = !strcmp(optarg, "on");
            break;
        case O_NOTOPN: o->no_topn = true; break;
        case O_EPOCHS:
            if (!num_in(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --epochs");
            mc->epochs = (uint32_t)v;
            break;
        case O_BATCH:
            if (!num_in(optarg, 1, 1 << 20, &v)) return cli_fail(CLI_USAGE, cmd, "bad --batch");
            mc->batch_size = (uint32_t)v;
            break;
        case O_LR:
            if (!num_in(optarg, 1e-9, 100, &v)) return cli_fail(CLI_USAGE, cmd, "bad --lr");
            mc->lr = (float)v;
            break;
        case O_WD:
            if (!num_in(optarg, 0, 100, &v)) return cli_fail(CLI_USAGE, cmd, "bad --weight-decay");
            mc->weight_decay = (float)v;
            break;
        case O_DIM:
            if (!num_in(optarg, 1, 4096, &v)) return cli_fail(CLI_USAGE, cmd, "--dim must be 1..4096");
            mc->dim = (uint32_t)v;
            break;
        case O_UL:
            if (parse_layers(optarg, &mc->n_user_layers, mc->user_layers)) return cli_fail(CLI_USAGE, cmd, "bad --user-layers '%s'", optarg);
            break;
        case O_IL:
            if (parse_layers(optarg, &mc->n_item_layers, mc->item_layers)) return cli_fail(CLI_USAGE, cmd, "bad --item-layers '%s'", optarg);
            break;
        case O_NOL2: mc->l2norm = false; break;
        case O_NOSCALE: o->ec.scale_targets = false; break;
        case O_VALID:
            if (!num_in(optarg, 0, 0.9, &o->ec.valid_frac)) return cli_fail(CLI_USAGE, cmd, "--valid-frac must be in [0, 0.9]");
            break;
        case O_PAT:
            if (!num_in(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --patience");
            mc->patience = (uint32_t)v;
            break;
        case O_THREADS:
            if (!num_in(optarg, 1, 64, &v)) return cli_fail(CLI_USAGE, cmd, "bad --threads");
            mc->threads = (int)v;
            break;
        case O_TOPK:
            if (!num_in(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --top-k-popular");
            o->ec.features.top_k_popular = (uint32_t)v;
            break;
        case O_AGEB: o->ec.features.age_mode = CB_AGE_BUCKETS; break;
        case O_EXCL: o->ec.features.exclude_cols = optarg; break;
        case O_MODEL: o->model_path = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_PLOT: o->plot = optarg; break;
        case O_TSV: o->tsv = optarg; break;
        case O_SIZES: o->sizes = optarg; break;
        case O_USERS:
            if (!num_in(optarg, 0, 1e9, &v)) return cli_fail(CLI_USAGE, cmd, "bad --users");
            o->max_users = (size_t)v;
            break;
        default: fputs(usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!o->data) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    const char *why = cb_feature_config_check(&o->ec.features);
    if (why) return cli_fail(CLI_USAGE, cmd, "%s", why);
    if (o->no_topn) o->ec.topn_enabled = false;
    return -1;
}

static void opts_init(opts *o) {
    memset(o, 0, sizeof *o);
    cb_load_options_default(&o->lo);
    cb_evalrun_config_default(&o->ec);
    o->split = "random";
    o->test_frac = 0.2;
}

/* ---- the protocol: a list of splits */

typedef struct protocol {
    char names[MAX_FOLDS][32];
    cb_split splits[MAX_FOLDS];
    size_t n;
    char label[128];
} protocol;

static void protocol_free(protocol *p) {
    for (size_t i = 0; i < p->n; i++) cb_split_free(&p->splits[i]);
    p->n = 0;
}

static int protocol_make(protocol *p, const opts *o, const cb_dataset *ds, cb_error *err) {
    memset(p, 0, sizeof *p);
    if (o->folds) {
        const char *s = o->folds;
        while (*s) {
            size_t len = strcspn(s, ",");
            if (p->n == MAX_FOLDS || len == 0 || len >= sizeof p->names[0])
                return cb_fail(err, CB_EINVAL, "--folds: at most %d names of < 32 characters", MAX_FOLDS);
            memcpy(p->names[p->n], s, len);
            p->names[p->n][len] = 0;
            char base[4200], test[4200];
            snprintf(base, sizeof base, "%s/%s.base", o->data, p->names[p->n]);
            snprintf(test, sizeof test, "%s/%s.test", o->data, p->names[p->n]);
            int rc = cb_eval_split_from_files(&p->splits[p->n], ds, base, test, err);
            if (rc) return rc;
            p->n++;
            s += len;
            if (*s == ',') s++;
        }
        snprintf(p->label, sizeof p->label, "fixed folds %s", o->folds);
        return CB_OK;
    }
    cb_split_kind kind;
    if (!strcmp(o->split, "random")) kind = CB_SPLIT_RANDOM;
    else if (!strcmp(o->split, "temporal")) kind = CB_SPLIT_TEMPORAL;
    else if (!strcmp(o->split, "cold-users")) kind = CB_SPLIT_COLD_USERS;
    else if (!strcmp(o->split, "cold-items")) kind = CB_SPLIT_COLD_ITEMS;
    else return cb_fail(err, CB_EINVAL, "unknown --split '%s' (random, temporal, cold-users, cold-items)", o->split);
    int rc = cb_split_make(&p->splits[0], ds, kind, o->test_frac, o->ec.model.seed, err);
    if (rc) return rc;
    snprintf(p->names[0], sizeof p->names[0], "%s", o->split);
    p->n = 1;
    snprintf(p->label, sizeof p->label, "%s split, test fraction %g, seed %llu", o->split, o->test_frac,
             (unsigned long long)o->ec.model.seed);
    return CB_OK;
}

/* ---- running the evaluation */

typedef struct progress {
    bool quiet;
    const char *fold;
    double *train_loss, *valid_loss; /* per-epoch curve of the first fold (may be NULL) */
    size_t n_curve, cap_curve;
} progress;

static int on_epoch(const cb_epoch_report *r, void *vctx) {
    progress *p = vctx;
    if (!r->end_of_epoch) return 0;
    if (p->train_loss && p->n_curve < p->cap_curve) {
        p->train_loss[p->n_curve] = r->train_loss;
        p->valid_loss[p->n_curve] = r->valid_loss;
        p->n_curve++;
    }
    if (!p->quiet) {
        fprintf(stderr, "  [%s] two-tower epoch %u/%u train_loss %.5f", p->fold, r->epoch, r->epochs, r->train_loss);
        if (!isnan(r->valid_rmse)) fprintf(stderr, "  held-out rmse %.4f", r->valid_rmse);
        fprintf(stderr, "  %.1fs\n", r->seconds);
    }
    return 0;
}

typedef struct run {
    cb_dataset *ds;
    protocol proto;
    cb_eval_result *results;
    size_t n_results;
    cb_bundle *first_rec;       /* the two-tower model of the first split */
    double seconds;
} run;

static void run_free(run *r) {
    protocol_free(&r->proto);
    free(r->results);
    cb_bundle_free(r->first_rec);
    cb_dataset_free(r->ds);
}

static int run_eval(run *R, opts *o, progress *pg, bool keep_rec, cb_error *err) {
    int rc = cb_dataset_load(&R->ds, o->data, &o->lo, err);
    if (rc) return rc;
    if ((rc = protocol_make(&R->proto, o, R->ds, err))) return rc;
    o->ec.on_epoch = on_epoch;
    o->ec.epoch_ctx = pg;
    if (!o->quiet)
        fprintf(stderr, "%s: %u users, %u items, %zu ratings; %s\n", R->ds->name, cb_dataset_n_users(R->ds),
                cb_dataset_n_items(R->ds), R->ds->n_ratings, R->proto.label);
    double t0 = cb_now();
    for (size_t f = 0; f < R->proto.n; f++) {
        pg->fold = R->proto.names[f];
        cb_bundle *rec = NULL;
        size_t before = R->n_results;
        rc = cb_evalrun_split(&R->results, &R->n_results, &o->ec, R->ds, &R->proto.splits[f],
                              o->folds ? (int)f + 1 : 0, keep_rec && f == 0 ? &rec : NULL, NULL, err);
        if (rc) return rc;
        if (rec) R->first_rec = rec;
        pg->train_loss = NULL; /* the curve is the first split's */
        if (!o->quiet)
            for (size_t i = before; i < R->n_results; i++)
                fprintf(stderr, "  [%s] %-19s rmse %.4f  fit %.1fs  eval %.1fs\n", pg->fold, R->results[i].model,
                        R->results[i].rating.rmse, R->results[i].fit_seconds, R->results[i].eval_seconds);
    }
    R->seconds = cb_now() - t0;
    return CB_OK;
}

/* ---- printing */

static void print_num(FILE *f, double v, int width, int prec) {
    if (isnan(v)) fprintf(f, " %*s", width, "-");
    else fprintf(f, " %*.*f", width, prec, v);
}

static void print_table(FILE *f, const run *R, const opts *o, bool markdown) {
    const protocol *p = &R->proto;
    cb_error err;
    const char *sep = markdown ? " |" : "";
    uint32_t K = o->ec.topn.k;
    if (!markdown)
        fprintf(f, "%s (%s): %u users, %u items, %zu ratings; %s; top-N: K=%u, relevant = rating >= %g\n",
                R->ds->name, o->data, cb_dataset_n_users(R->ds), cb_dataset_n_items(R->ds), R->ds->n_ratings,
                p->label, K, (double)o->ec.topn.threshold);
    fprintf(f, "%s%-19s%s", markdown ? "| " : "", "model", sep);
    if (p->n > 1)
        for (size_t s = 0; s < p->n; s++) fprintf(f, " %6.6s%s", p->names[s], sep);
    fprintf(f, " %15s%s %6s%s", p->n > 1 ? "RMSE mean±std" : "RMSE", sep, "MAE", sep);
    char h[6][16];
    snprintf(h[0], 16, "P@%u", K), snprintf(h[1], 16, "R@%u", K), snprintf(h[2], 16, "NDCG@%u", K);
    snprintf(h[3], 16, "MAP@%u", K), snprintf(h[4], 16, "HR@%u", K);
    for (int i = 0; i < 5; i++) fprintf(f, " %7s%s", h[i], sep);
    fprintf(f, " %6s%s %6s%s %6s%s %7s%s\n", "cover", sep, "divers", sep, "pop×", sep, "fit s", sep);
    if (markdown) {
        fprintf(f, "|---|");
        for (size_t s = 0; s < (p->n > 1 ? p->n : 0) + 11; s++) fprintf(f, "---:|");
        fputc('\n', f);
    }
    for (int m = 0; m < CB_EVALRUN_N_MODELS; m++) {
        const char *name = cb_evalrun_model_name((cb_evalrun_model)m);
        cb_eval_summary s;
        if (cb_eval_summarize(&s, R->results, R->n_results, name, &err)) continue;
        fprintf(f, "%s%-19s%s", markdown ? "| " : "", name, sep);
        if (p->n > 1)
            for (size_t k = 0; k < R->n_results; k++)
                if (!strcmp(R->results[k].model, name)) {
                    print_num(f, R->results[k].rating.rmse, 6, 4);
                    fputs(sep, f);
                }
        if (isnan(s.rmse.mean)) fprintf(f, " %15s%s", "-", sep);
        else if (p->n > 1) fprintf(f, "  %.4f ± %.4f%s", s.rmse.mean, s.rmse.std, sep);
        else fprintf(f, " %15.4f%s", s.rmse.mean, sep);
        print_num(f, s.mae.mean, 6, 4), fputs(sep, f);
        double tn[5] = {s.precision.mean, s.recall.mean, s.ndcg.mean, s.map.mean, s.hit_rate.mean};
        for (int i = 0; i < 5; i++) print_num(f, tn[i], 7, 4), fputs(sep, f);
        print_num(f, s.coverage.mean, 6, 3), fputs(sep, f);
        print_num(f, s.diversity.mean, 6, 3), fputs(sep, f);
        print_num(f, s.pop_ratio.mean, 6, 2), fputs(sep, f);
        print_num(f, s.fit_seconds.mean, 7, 1), fputs(sep, f);
        fputc('\n', f);
    }
}

static void print_settings(FILE *f, const opts *o) {
    const cb_model_config *mc = &o->ec.model;
    fprintf(f, "two-tower: user layers");
    for (uint32_t i = 0; i < mc->n_user_layers; i++) fprintf(f, "%s%u", i ? "," : " ", mc->user_layers[i]);
    fprintf(f, ", item layers");
    for (uint32_t i = 0; i < mc->n_item_layers; i++) fprintf(f, "%s%u", i ? "," : " ", mc->item_layers[i]);
    fprintf(f, ", dim %u, l2norm %s, %s, lr %g, batch %u, epochs %u, weight decay %g, top-k-popular %u, "
               "scaled targets %s, valid frac %g, seed %llu; objective %s (temperature %g, logq %s, rating weight %g, "
               "popularity prior %g); implicit: %u epochs; cold users: %s\n",
            mc->dim, mc->l2norm ? "on" : "off", mc->optimizer == CB_OPT_SGD ? "sgd" : "adam", (double)mc->lr,
            mc->batch_size, mc->epochs, (double)mc->weight_decay, o->ec.features.top_k_popular,
            o->ec.scale_targets ? "yes" : "no", o->ec.valid_frac, (unsigned long long)mc->seed,
            cb_objective_name(mc->objective), (double)mc->temperature, mc->logq ? "on" : "off",
            (double)mc->rating_weight, (double)mc->popularity_prior,
            o->ec.implicit_epochs ? o->ec.implicit_epochs : mc->epochs,
            o->ec.cold_impute ? "rating features imputed from attribute-nearest users" : "raw attribute row");
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *results_json(const run *R, const opts *o) {
    json_t *root = json_object(), *models = json_array(), *names = json_array();
    for (size_t s = 0; s < R->proto.n; s++) json_array_append_new(names, json_string(R->proto.names[s]));
    json_object_set_new(root, "dataset", json_string(R->ds->name));
    json_object_set_new(root, "path", json_string(o->data));
    json_object_set_new(root, "protocol", json_string(R->proto.label));
    json_object_set_new(root, "splits", names);
    json_object_set_new(root, "k", json_integer(o->ec.topn.k));
    json_object_set_new(root, "threshold", json_real(o->ec.topn.threshold));
    json_object_set_new(root, "seed", json_integer((json_int_t)o->ec.model.seed));
    json_object_set_new(root, "seconds", json_real(R->seconds));
    cb_error err;
    for (int m = 0; m < CB_EVALRUN_N_MODELS; m++) {
        const char *name = cb_evalrun_model_name((cb_evalrun_model)m);
        cb_eval_summary s;
        if (cb_eval_summarize(&s, R->results, R->n_results, name, &err)) continue;
        json_t *jm = json_object(), *rmse = json_array(), *mae = json_array(), *folds = json_array();
        json_object_set_new(jm, "name", json_string(name));
        json_object_set_new(jm, "mean_rmse", jnum(s.rmse.mean));
        json_object_set_new(jm, "std_rmse", jnum(s.rmse.std));
        json_object_set_new(jm, "mean_mae", jnum(s.mae.mean));
        json_object_set_new(jm, "std_mae", jnum(s.mae.std));
        const struct {
            const char *key;
            cb_eval_stat st;
        } st[] = {{"precision", s.precision}, {"recall", s.recall},     {"ndcg", s.ndcg},
                  {"map", s.map},             {"hit_rate", s.hit_rate}, {"coverage", s.coverage},
                  {"diversity", s.diversity}, {"pop_ratio", s.pop_ratio}, {"fit_seconds", s.fit_seconds},
                  {"eval_seconds", s.eval_seconds}};
        for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) json_object_set_new(jm, st[i].key, jnum(st[i].st.mean));
        for (size_t k = 0; k < R->n_results; k++) {
            const cb_eval_result *r = &R->results[k];
            if (strcmp(r->model, name)) continue;
            json_array_append_new(rmse, jnum(r->rating.rmse));
            json_array_append_new(mae, jnum(r->rating.mae));
            json_t *jf = json_object();
            json_object_set_new(jf, "fold", json_integer(r->fold));
            json_object_set_new(jf, "n_train", json_integer((json_int_t)r->n_train));
            json_object_set_new(jf, "n_test", json_integer((json_int_t)r->n_test));
            json_object_set_new(jf, "rmse", jnum(r->rating.rmse));
            json_object_set_new(jf, "mae", jnum(r->rating.mae));
            if (r->has_topn) {
                const cb_topn_metrics *t = &r->topn;
                json_object_set_new(jf, "precision", jnum(t->precision));
                json_object_set_new(jf, "recall", jnum(t->recall));
                json_object_set_new(jf, "ndcg", jnum(t->ndcg));
                json_object_set_new(jf, "map", jnum(t->map));
                json_object_set_new(jf, "hit_rate", jnum(t->hit_rate));
                json_object_set_new(jf, "coverage", jnum(t->coverage));
                json_object_set_new(jf, "diversity", jnum(t->diversity));
                json_object_set_new(jf, "pop_recommended", jnum(t->pop_recommended));
                json_object_set_new(jf, "pop_rated", jnum(t->pop_rated));
                json_object_set_new(jf, "pop_ratio", jnum(t->pop_ratio));
                json_object_set_new(jf, "n_users_evaluated", json_integer((json_int_t)t->n_users_evaluated));
            }
            json_object_set_new(jf, "fit_seconds", json_real(r->fit_seconds));
            json_object_set_new(jf, "eval_seconds", json_real(r->eval_seconds));
            json_array_append_new(folds, jf);
        }
        json_object_set_new(jm, "rmse", rmse);
        json_object_set_new(jm, "mae", mae);
        json_object_set_new(jm, "folds", folds);
        json_array_append_new(models, jm);
    }
    json_object_set_new(root, "models", models);
    const cb_model_config *mc = &o->ec.model;
    json_t *ul = json_array(), *il = json_array();
    for (uint32_t i = 0; i < mc->n_user_layers; i++) json_array_append_new(ul, json_integer(mc->user_layers[i]));
    for (uint32_t i = 0; i < mc->n_item_layers; i++) json_array_append_new(il, json_integer(mc->item_layers[i]));
    json_object_set_new(root, "two_tower",
                        json_pack("{s:o,s:o,s:I,s:b,s:f,s:I,s:I,s:f,s:I,s:b,s:f,s:s,s:f,s:b,s:f,s:f,s:I,s:b,s:I}", "user_layers", ul, "item_layers",
                                  il, "dim", (json_int_t)mc->dim, "l2norm", mc->l2norm, "lr", (double)mc->lr,
                                  "batch", (json_int_t)mc->batch_size, "epochs", (json_int_t)mc->epochs,
                                  "weight_decay", (double)mc->weight_decay, "top_k_popular",
                                  (json_int_t)o->ec.features.top_k_popular, "scale_targets", o->ec.scale_targets,
                                  "valid_frac", o->ec.valid_frac, "objective", cb_objective_name(mc->objective),
                                  "temperature", (double)mc->temperature, "logq", mc->logq, "rating_weight",
                                  (double)mc->rating_weight, "popularity_prior", (double)mc->popularity_prior,
                                  "implicit_epochs", (json_int_t)o->ec.implicit_epochs, "cold_impute",
                                  o->ec.cold_impute, "cold_neighbours", (json_int_t)o->ec.cold_neighbours));
    return root;
}

static const char *eval_usage =
    "usage: cbrec eval --data PATH [--folds u1,u2,u3,u4,u5 | --split KIND] [options]\n"
    "Trains the two-tower model and the baselines on the same split(s) and prints one table: RMSE per\n"
    "fold with mean ± std (population), MAE, top-N precision / recall / NDCG / MAP / hit rate at K over\n"
    "the full catalog with the user's training items excluded, catalog coverage, genre diversity and\n"
    "popularity ratio (mean training count of recommended items / of items the users rated).\n"
    "  --models LIST          twotower,pipeline,implicit,global,bias,popularity,svd (default all;\n"
    "                         pipeline = the two-tower's top-N through retrieval -> ranking with the\n"
    "                         cheap sources; implicit = the same pipeline with objective retrieval)\n"
    "  --json                 print one JSON object {\"models\": [{\"name\", \"mean_rmse\", ...}], ...}\n"
    "  --json-out FILE        also write that JSON object to FILE (the table still prints)\n"
    "  --no-topn              rating metrics only\n"
    "Protocol cold-users: users held out entirely; the two-tower ranks the catalog for them from\n"
    "their attributes alone (no ratings, rating-derived features imputed: --cold-neighbours), to\n"
    "compare with popularity on NDCG@K.\n";

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    opts o;
    opts_init(&o);
    int st = parse_opts(&o, cmd, eval_usage, argc, argv);
    if (st >= 0) return st;
    cb_error err;
    cb_error_clear(&err);
    if (o.models && cb_evalrun_models_parse(o.models, &o.ec.models, &err)) return cli_fail(CLI_USAGE, cmd, "%s", err.msg);
    run R = {0};
    progress pg = {.quiet = o.quiet};
    int rc = run_eval(&R, &o, &pg, false, &err), status = CLI_OK;
    if (!rc && o.json_out) { /* written atomically, like every file cbrec writes */
        json_t *j = results_json(&R, &o);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(j);
        cb_atomic_file af;
        if (!s) rc = cb_fail(&err, CB_ENOMEM, "%s: out of memory", o.json_out);
        else if (!(rc = cb_atomic_open(&af, o.json_out, &err))) {
            fprintf(af.fp, "%s\n", s);
            rc = cb_atomic_commit(&af, &err);
        }
        free(s);
    }
    if (rc) {
        status = cli_error(cmd, &err);
    } else if (o.json) {
        json_t *j = results_json(&R, &o);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (s) puts(s);
        free(s);
        json_decref(j);
    } else {
        print_table(stdout, &R, &o, false);
        print_settings(stdout, &o);
        printf("total %.1fs\n", R.seconds);
    }
    run_free(&R);
    return status;
}

/* ---- the retrieval-size experiment */

static int parse_sizes(const char *s, uint32_t *sizes, size_t *n) {
    *n = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        int64_t v;
        if (*n == MAX_SIZES) return -1;
        if (len == 4 && !strncmp(s, "full", 4)) v = 0;
        else if (!cb_parse_i64(s, len, &v) || v < 1 || v > 100000000) return -1;
        sizes[(*n)++] = (uint32_t)v;
        s += len;
        if (*s == ',') s++;
    }
    return *n ? 0 : -1;
}

static void print_retrieval(FILE *f, const cb_retrieval_row *rows, size_t n, uint32_t K, bool markdown) {
    const char *sep = markdown ? " |" : "";
    char h[4][24];
    snprintf(h[0], 24, "recall@%u", K), snprintf(h[1], 24, "NDCG@%u", K);
    snprintf(h[2], 24, "mean score@%u", K), snprintf(h[3], 24, "overlap@%u", K);
    fprintf(f, "%s%9s%s %10s%s %9s%s %8s%s %13s%s %10s%s %12s%s\n", markdown ? "| " : "", "retrieval", sep,
            "candidates", sep, h[0], sep, h[1], sep, h[2], sep, h[3], sep, "latency µs", sep);
    if (markdown) fprintf(f, "|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n; i++) {
        char sz[16];
        if (rows[i].size) snprintf(sz, sizeof sz, "%u", rows[i].size);
        else snprintf(sz, sizeof sz, "full");
        fprintf(f, "%s%9s%s %10.1f%s %9.4f%s %8.4f%s %13.4f%s %10.4f%s %12.1f%s\n", markdown ? "| " : "", sz, sep,
                rows[i].mean_candidates, sep, rows[i].recall, sep, rows[i].ndcg, sep, rows[i].mean_score, sep,
                rows[i].overlap, sep, rows[i].latency_us, sep);
    }
}

static int retrieval_plot(const char *path, const cb_retrieval_row *rows, size_t n, uint32_t K, cb_error *err) {
    double x[MAX_SIZES], rec[MAX_SIZES], ov[MAX_SIZES], sc[MAX_SIZES], nd[MAX_SIZES];
    double smin = INFINITY, smax = -INFINITY;
    for (size_t i = 0; i < n; i++) smin = fmin(smin, rows[i].mean_score), smax = fmax(smax, rows[i].mean_score);
    for (size_t i = 0; i < n; i++) {
        x[i] = rows[i].mean_candidates;
        rec[i] = rows[i].recall;
        nd[i] = rows[i].ndcg;
        ov[i] = rows[i].overlap;
        /* the mean score rescaled to [0, 1] over the sizes, to share the axis */
        sc[i] = smax > smin ? (rows[i].mean_score - smin) / (smax - smin) : 1.0;
    }
    char t[4][64];
    snprintf(t[0], 64, "recall@%u", K), snprintf(t[1], 64, "NDCG@%u", K);
    snprintf(t[2], 64, "overlap with full top-%u", K);
    snprintf(t[3], 64, "mean score@%u (%.2f..%.2f → 0..1)", K, smin, smax);
    cb_svg_series s[4] = {{t[0], x, rec, n}, {t[1], x, nd, n}, {t[2], x, ov, n}, {t[3], x, sc, n}};
    cb_svg_chart ch = {"Retrieval size: where more candidates stop paying off",
                       "candidates retrieved per user (log scale; rightmost = full catalog)", "value", true, 760, 440, true};
    return cb_evalrun_svg(path, &ch, s, 4, err);
}

static const char *experiment_usage =
    "usage: cbrec experiment retrieval --data PATH [--model FILE] [--sizes 25,50,100,200,500,1000,full]\n"
    "                                  [--users N] [--plot FILE.svg] [--tsv FILE] [--json] [options]\n"
    "For each retrieval budget, the cheap sources of the retrieval -> ranking pipeline (similar to the\n"
    "user's recent liked items 60%, best genres 20%, group / popularity 20%) bring about that many\n"
    "candidates, the model ranks them, and the final top-K is compared with the full-catalog ranking:\n"
    "recall and NDCG of held-out relevant items, mean predicted score, overlap, latency per user.\n"
    "Without --model the two-tower model is trained on the split (or the first of --folds); with\n"
    "--model, give the same --data / --split / --seed / --test-frac it was trained with.\n";

int cmd_experiment(int argc, char **argv) {
    const char *cmd = "experiment";
    if (argc < 2 || (strcmp(argv[1], "retrieval") && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))) {
        fputs(experiment_usage, stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "retrieval")) {
        fputs(experiment_usage, stdout);
        fputs(common_usage, stdout);
        return CLI_OK;
    }
    opts o;
    opts_init(&o);
    int st = parse_opts(&o, cmd, experiment_usage, argc - 1, argv + 1);
    if (st >= 0) return st;
    uint32_t sizes[MAX_SIZES];
    size_t n_sizes;
    if (parse_sizes(o.sizes ? o.sizes : "25,50,100,200,500,1000,full", sizes, &n_sizes))
        return cli_fail(CLI_USAGE, cmd, "--sizes: a comma-separated list of positive numbers or 'full'");
    cb_error err;
    cb_error_clear(&err);
    cb_dataset *ds = NULL;
    protocol proto = {0};
    cb_bundle *rec = NULL;
    cb_retrieval_row rows[MAX_SIZES];
    int rc, status = CLI_ERROR;
    if ((rc = cb_dataset_load(&ds, o.data, &o.lo, &err))) goto out;
    if ((rc = protocol_make(&proto, &o, ds, &err))) goto out;
    if (o.model_path) {
        rc = cb_bundle_load(&rec, o.model_path, &err);
    } else {
        progress pg = {.quiet = o.quiet, .fold = proto.names[0]};
        o.ec.on_epoch = on_epoch;
        o.ec.epoch_ctx = &pg;
        if (!o.quiet) fprintf(stderr, "training the two-tower model on %s (%s)\n", ds->name, proto.label);
        rc = cb_evalrun_train(&rec, &o.ec, ds, &proto.splits[0], NULL, &err);
    }
    if (rc) goto out;
    if ((rc = cb_evalrun_retrieval(rows, sizes, n_sizes, rec, ds, &proto.splits[0], &o.ec.topn, o.max_users, &err)))
        goto out;
    if (o.json) {
        json_t *root = json_object(), *arr = json_array();
        for (size_t i = 0; i < n_sizes; i++)
            json_array_append_new(
                arr, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "size",
                               rows[i].size ? json_integer(rows[i].size) : json_string("full"), "mean_candidates",
                               jnum(rows[i].mean_candidates), "recall", jnum(rows[i].recall), "ndcg",
                               jnum(rows[i].ndcg), "mean_score", jnum(rows[i].mean_score), "overlap",
                               jnum(rows[i].overlap), "latency_us", jnum(rows[i].latency_us), "n_users",
                               (json_int_t)rows[i].n_users));
        json_object_set_new(root, "dataset", json_string(ds->name));
        json_object_set_new(root, "protocol", json_string(proto.label));
        json_object_set_new(root, "k", json_integer(o.ec.topn.k));
        json_object_set_new(root, "rows", arr);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (s) puts(s);
        free(s);
        json_decref(root);
    } else {
        printf("%s: retrieval-size experiment over %zu test users with a relevant held-out item (%s), K=%u\n",
               ds->name, rows[0].n_users, proto.label, o.ec.topn.k);
        print_retrieval(stdout, rows, n_sizes, o.ec.topn.k, false);
    }
    if (o.tsv) {
        cb_atomic_file af;
        if ((rc = cb_atomic_open(&af, o.tsv, &err))) goto out;
        fprintf(af.fp, "size\tcandidates\trecall\tndcg\tmean_score\toverlap\tlatency_us\n");
        for (size_t i = 0; i < n_sizes; i++)
            fprintf(af.fp, "%u\t%.3f\t%.6f\t%.6f\t%.6f\t%.6f\t%.3f\n", rows[i].size, rows[i].mean_candidates,
                    rows[i].recall, rows[i].ndcg, rows[i].mean_score, rows[i].overlap, rows[i].latency_us);
        if ((rc = cb_atomic_commit(&af, &err))) goto out;
    }
    if (o.plot && (rc = retrieval_plot(o.plot, rows, n_sizes, o.ec.topn.k, &err))) goto out;
    if (o.plot && !o.quiet) fprintf(stderr, "wrote %s\n", o.plot);
    status = CLI_OK;
out:
    if (status != CLI_OK) cli_error(cmd, &err);
    cb_bundle_free(rec);
    protocol_free(&proto);
    cb_dataset_free(ds);
    return status;
}

/* ---- the report */

static const char *report_usage =
    "usage: cbrec report --data PATH --out report.md [--folds LIST | --split KIND] [--seed N] [options]\n"
    "Runs the evaluation, the retrieval-size experiment on the first split's two-tower model and\n"
    "records its learning curve (held-out loss per epoch, for monitoring only), then writes one\n"
    "Markdown page with the table, the experiment table and two SVG plots next to it\n"
    "(<out>-retrieval.svg, <out>-curve.svg). The same seed reproduces the same page (timings aside).\n";

int cmd_report(int argc, char **argv) {
    const char *cmd = "report";
    opts o;
    opts_init(&o);
    int st = parse_opts(&o, cmd, report_usage, argc, argv);
    if (st >= 0) return st;
    if (!o.out) return cli_fail(CLI_USAGE, cmd, "--out FILE.md is required");
    {
        /* create the report's folder (one level) so `make report` can write report/report.md */
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", o.out);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = 0;
            if (mkdir(parent, 0777) && errno != EEXIST)
                return cli_fail(CLI_ERROR, cmd, "cannot create %s: %s", parent, strerror(errno));
        }
    }
    cb_error err;
    cb_error_clear(&err);
    if (o.models && cb_evalrun_models_parse(o.models, &o.ec.models, &err)) return cli_fail(CLI_USAGE, cmd, "%s", err.msg);
    o.ec.models |= 1u << CB_EVALRUN_TWOTOWER;
    if (o.ec.valid_frac == 0) o.ec.monitor_test = true;
    uint32_t sizes[MAX_SIZES];
    size_t n_sizes;
    if (parse_sizes(o.sizes ? o.sizes : "25,50,100,200,500,1000,full", sizes, &n_sizes))
        return cli_fail(CLI_USAGE, cmd, "--sizes: a comma-separated list of positive numbers or 'full'");
    size_t cap = o.ec.model.epochs + 1;
    double *tl = calloc(cap, sizeof *tl), *vl = calloc(cap, sizeof *vl);
    if (!tl || !vl) return cli_fail(CLI_ERROR, cmd, "out of memory");
    progress pg = {.quiet = o.quiet, .train_loss = tl, .valid_loss = vl, .cap_curve = cap};
    run R = {0};
    cb_retrieval_row rows[MAX_SIZES];
    int status = CLI_ERROR, rc = run_eval(&R, &o, &pg, true, &err);
    char base[4096], curve_path[4200], ret_path[4200];
    snprintf(base, sizeof base, "%s", o.out);
    char *dot = strrchr(base, '.');
    if (dot && !strchr(dot, '/')) *dot = 0;
    snprintf(curve_path, sizeof curve_path, "%s-curve.svg", base);
    snprintf(ret_path, sizeof ret_path, "%s-retrieval.svg", base);
    const char *curve_name = strrchr(curve_path, '/') ? strrchr(curve_path, '/') + 1 : curve_path;
    const char *ret_name = strrchr(ret_path, '/') ? strrchr(ret_path, '/') + 1 : ret_path;
    if (rc) goto out;
    if (!R.first_rec) {
        rc = cb_fail(&err, CB_EINVAL, "the two-tower model was not trained");
        goto out;
    }
    if (!o.quiet) fprintf(stderr, "retrieval-size experiment on %s\n", R.proto.names[0]);
    if ((rc = cb_evalrun_retrieval(rows, sizes, n_sizes, R.first_rec, R.ds, &R.proto.splits[0], &o.ec.topn,
                                   o.max_users, &err)))
        goto out;
    if ((rc = retrieval_plot(ret_path, rows, n_sizes, o.ec.topn.k, &err))) goto out;
    if ((rc = cb_evalrun_curve_svg(curve_path, tl, vl, pg.n_curve, "two-tower learning curve (first split)", &err)))
        goto out;
    cb_atomic_file af;
    if ((rc = cb_atomic_open(&af, o.out, &err))) goto out;
    FILE *f = af.fp;
    fprintf(f, "# cbrec evaluation report\n\n");
    fprintf(f, "Dataset **%s** (`%s`): %u users, %u items, %zu ratings. Protocol: %s. Top-N: K = %u, relevant = "
               "held-out rating ≥ %g, ranked over the full catalog with the user's training items excluded.\n\n",
            R.ds->name, o.data, cb_dataset_n_users(R.ds), cb_dataset_n_items(R.ds), R.ds->n_ratings, R.proto.label,
            o.ec.topn.k, (double)o.ec.topn.threshold);
    fprintf(f, "Reproduce: `cbrec report --data %s %s%s --seed %llu --out %s` (cbrec %s).\n\n", o.data,
            o.folds ? "--folds " : "--split ", o.folds ? o.folds : o.split, (unsigned long long)o.ec.model.seed,
            o.out, cb_version());
    fprintf(f, "## Evaluation\n\n");
    print_table(f, &R, &o, true);
    fprintf(f, "\n");
    print_settings(f, &o);
    fprintf(f, "\ncover = catalog coverage of the top-K lists; divers = mean intra-list genre Jaccard distance; "
               "pop× = mean training popularity of recommended items / of items the same users rated (> 1: "
               "the model favours popular items). fit s = wall seconds to fit (2 shared cores: noisy). Total "
               "%.1f s.\n\n",
            R.seconds);
    fprintf(f, "## Retrieval size (first split: %s)\n\n", R.proto.names[0]);
    print_retrieval(f, rows, n_sizes, o.ec.topn.k, true);
    fprintf(f, "\nretrieval = nominal candidate budget of the cheap sources (similar items 60%%, genres 20%%, "
               "group/popular 20%%; \"full\" = the whole catalog by v_u·v_m); candidates = distinct unseen "
               "candidates actually retrieved; overlap = share of the full-catalog top-%u kept.\n\n![retrieval](%s)\n\n",
            o.ec.topn.k, ret_name);
    fprintf(f, "## Learning curve (two-tower, first split)\n\n![curve](%s)\n\n| epoch | train loss | held-out loss |\n"
               "|---:|---:|---:|\n",
            curve_name);
    for (size_t e = 0; e < pg.n_curve; e++) fprintf(f, "| %zu | %.5f | %.5f |\n", e + 1, tl[e], vl[e]);
    fprintf(f, "\nLosses are MSE on targets scaled to [-1, 1]. The held-out loss is watched only (patience 0): "
               "it selects nothing.\n");
    if (ferror(f)) {
        cb_atomic_abort(&af);
        rc = cb_fail(&err, CB_EIO, "%s: write error", o.out);
        goto out;
    }
    if ((rc = cb_atomic_commit(&af, &err))) goto out;
    if (!o.quiet) fprintf(stderr, "wrote %s, %s, %s\n", o.out, ret_path, curve_path);
    status = CLI_OK;
out:
    if (status != CLI_OK) cli_error(cmd, &err);
    free(tl);
    free(vl);
    run_free(&R);
    return status;
}
