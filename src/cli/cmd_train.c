/* cbrec train — load a dataset, split it, train the two towers, write the
 * model file; also `cbrec predict` and `cbrec embed`, which read one. */
#include "cli.h"
#include "eval/evalrun.h"
#include "model/bundle.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *train_usage =
    "usage: cbrec train --data PATH --model FILE [options]\n"
    "data and split:\n"
    "  --data PATH            dataset folder (MovieLens, course-lab rows, or generic with cbrec.schema)\n"
    "  --schema FILE          schema for the generic layout   --skip-bad-rows  skip malformed rows\n"
    "  --split KIND           random | temporal | cold-users | cold-items | sklearn (row split of\n"
    "                         the course lab, reproducing sklearn's train_test_split) | none\n"
    "  --test-frac F          held-out fraction (default 0.2)\n"
    "  --valid-frac F         fraction of the training part used for validation (default 0.1)\n"
    "  --seed N               seed of the split, initialisation and shuffling (default 1)\n"
    "features:\n"
    "  --top-k-popular N      multi-hot of the N most popular items (default 1000; 0 = off)\n"
    "  --age-buckets          age as buckets instead of standardised\n"
    "  --exclude-cols LIST    comma-separated attribute columns to leave out\n"
    "  --user-skip-cols N     pre-joined rows: leading user columns that are not inputs (default 3)\n"
    "  --item-skip-cols N     pre-joined rows: leading item columns that are not inputs (default 1)\n"
    "  --scaler-rows all|train  pre-joined rows: fit the scalers on all rows (lab) or training rows\n"
    "model:\n"
    "  --user-layers LIST     hidden ReLU widths of the user tower (default 256,128)\n"
    "  --item-layers LIST     hidden ReLU widths of the item tower (default 256,128)\n"
    "  --dim N                output units of both towers (default 32)\n"
    "  --no-l2norm            do not l2-normalise the tower outputs\n"
    "  --loss mse|bce         squared error on ratings, or sigmoid cross-entropy on 0/1 labels\n"
    "  --no-scale-targets     train on raw ratings instead of ratings mapped to [-1, 1]\n"
    "training:\n"
    "  --optimizer adam|sgd --lr F (0.002) --weight-decay F (0) --batch N (256) --epochs N (10)\n"
    "                         (the settings measured best by `cbrec eval` on MovieLens; the lab's\n"
    "                         protocol is --lr 0.01 --batch 32 --epochs 30, see examples/course-lab)\n"
    "  --patience N           early stopping after N epochs without validation improvement\n"
    "  --threads N            1 or 2 (default 2)\n"
    "  --resume               continue training the model in --model on the same data\n"
    "  --curve FILE.svg       plot the learning curve (train and validation loss per epoch)\n"
    "  -q, --quiet            no progress output\n";

typedef struct {
    bool quiet, tty;
    double train[4096], valid[4096]; /* learning curve, per epoch */
    size_t n_epochs;
} progress_ctx;

static int on_epoch(const cb_epoch_report *r, void *vctx) {
    progress_ctx *ctx = vctx;
    if (r->end_of_epoch && ctx->n_epochs < 4096) {
        ctx->train[ctx->n_epochs] = r->train_loss;
        ctx->valid[ctx->n_epochs++] = r->valid_loss;
    }
    if (ctx->quiet) return 0;
    if (!r->end_of_epoch) {
        if (!ctx->tty || !r->n_batches) return 0;
        int width = 30, done = (int)(width * r->batch / r->n_batches);
        double eta = r->batch ? r->seconds * (double)(r->n_batches - r->batch) / (double)r->batch : 0;
        fprintf(stderr, "\repoch %u/%u [%.*s%*s] loss %.4f  %.0f ex/s  eta %.0fs ", r->epoch, r->epochs, done,
                "##############################", width - done, "", r->train_loss, r->examples_per_sec, eta);
        fflush(stderr);
        return 0;
    }
    if (ctx->tty) fprintf(stderr, "\r%*s\r", 100, "");
    double eta = r->seconds * (double)(r->epochs - r->epoch);
    fprintf(stderr, "epoch %3u/%u  train_loss %.5f", r->epoch, r->epochs, r->train_loss);
    if (!isnan(r->valid_loss)) fprintf(stderr, "  valid_loss %.5f", r->valid_loss);
    if (!isnan(r->valid_rmse)) fprintf(stderr, "  valid_rmse %.4f", r->valid_rmse);
    fprintf(stderr, "  %.0f ex/s  %.1fs  eta %.0fs%s\n", r->examples_per_sec, r->seconds, eta, r->best ? "  *" : "");
    return 0;
}

static int parse_layers(const char *s, uint32_t *n, uint32_t *sizes) {
    *n = 0;
    if (!*s || !strcmp(s, "none")) return 0;
    char *copy = strdup(s), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (*n == CB_MODEL_MAX_LAYERS || !cb_parse_i64(tok, strlen(tok), &v) || v < 1 || v > 65536) {
            rc = -1;
            break;
        }
        sizes[(*n)++] = (uint32_t)v;
    }
    free(copy);
    return rc;
}

static bool parse_num(const char *s, double lo, double hi, double *out) {
    return cb_parse_double(s, strlen(s), out) && *out >= lo && *out <= hi;
}

/* Carve a seeded validation subset out of the training indices. */
static int carve_validation(cb_split *sp, double frac, uint64_t seed, uint32_t **valid, size_t *n_valid,
                            cb_error *err) {
    *valid = NULL;
    *n_valid = 0;
    if (frac <= 0 || sp->n_train < 10) return CB_OK;
    cb_rng rng;
    cb_rng_seed(&rng, seed ^ 0x5eed5eedULL);
    uint32_t *perm = cb_malloc(sp->n_train * sizeof *perm, err);
    if (!perm) return CB_ENOMEM;
    memcpy(perm, sp->train, sp->n_train * sizeof *perm);
    cb_rng_shuffle_u32(&rng, perm, sp->n_train);
    size_t nv = (size_t)(frac * (double)sp->n_train);
    *valid = cb_malloc((nv ? nv : 1) * sizeof **valid, err);
    if (!*valid) {
        free(perm);
        return CB_ENOMEM;
    }
    memcpy(*valid, perm, nv * sizeof *perm);
    memmove(sp->train, perm + nv, (sp->n_train - nv) * sizeof *perm);
    sp->n_train -= nv;
    *n_valid = nv;
    free(perm);
    return CB_OK;
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train", *data = NULL, *model_path = NULL, *split_kind = "random", *curve = NULL;
    cb_load_options lo;
    cb_load_options_default(&lo);
    cb_feature_config fc;
    cb_feature_config_default(&fc);
    cb_model_config mc;
    cb_model_config_default(&mc); /* the measured defaults live there */
    double test_frac = 0.2, valid_frac = 0.1, v;
    bool scale = true, resume = false;
    static progress_ctx pctx; /* large: not on the stack */
    memset(&pctx, 0, sizeof pctx);
    pctx.tty = isatty(2);
    enum { O_SCHEMA = 256, O_SKIP, O_SPLIT, O_TEST, O_VALID, O_SEED, O_TOPK, O_AGEB, O_EXCL, O_USKIP, O_ISKIP,
           O_SCALER, O_UL, O_IL, O_DIM, O_NOL2, O_LOSS, O_NOSCALE, O_OPT, O_LR, O_WD, O_BATCH, O_EPOCHS, O_PAT,
           O_THREADS, O_RESUME, O_CURVE };
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"model", required_argument, 0, 'm'},
        {"schema", required_argument, 0, O_SCHEMA}, {"skip-bad-rows", no_argument, 0, O_SKIP},
        {"split", required_argument, 0, O_SPLIT}, {"test-frac", required_argument, 0, O_TEST},
        {"valid-frac", required_argument, 0, O_VALID}, {"seed", required_argument, 0, O_SEED},
        {"top-k-popular", required_argument, 0, O_TOPK}, {"age-buckets", no_argument, 0, O_AGEB},
        {"exclude-cols", required_argument, 0, O_EXCL}, {"user-skip-cols", required_argument, 0, O_USKIP},
        {"item-skip-cols", required_argument, 0, O_ISKIP}, {"scaler-rows", required_argument, 0, O_SCALER},
        {"user-layers", required_argument, 0, O_UL}, {"item-layers", required_argument, 0, O_IL},
        {"dim", required_argument, 0, O_DIM}, {"no-l2norm", no_argument, 0, O_NOL2},
        {"loss", required_argument, 0, O_LOSS}, {"no-scale-targets", no_argument, 0, O_NOSCALE},
        {"optimizer", required_argument, 0, O_OPT}, {"lr", required_argument, 0, O_LR},
        {"weight-decay", required_argument, 0, O_WD}, {"batch", required_argument, 0, O_BATCH},
        {"epochs", required_argument, 0, O_EPOCHS}, {"patience", required_argument, 0, O_PAT},
        {"threads", required_argument, 0, O_THREADS}, {"resume", no_argument, 0, O_RESUME}, {"curve", required_argument, 0, O_CURVE},
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:m:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'm': model_path = optarg; break;
        case 'q': pctx.quiet = true; break;
        case 'h': fputs(train_usage, stdout); return CLI_OK;
        case O_SCHEMA: lo.schema = optarg; break;
        case O_SKIP: lo.skip_bad_rows = true; break;
        case O_SPLIT: split_kind = optarg; break;
        case O_TEST:
            if (!parse_num(optarg, 0, 0.99, &test_frac)) return cli_fail(CLI_USAGE, cmd, "--test-frac must be in [0, 0.99]");
            break;
        case O_VALID:
            if (!parse_num(optarg, 0, 0.9, &valid_frac)) return cli_fail(CLI_USAGE, cmd, "--valid-frac must be in [0, 0.9]");
            break;
        case O_SEED:
            if (!parse_num(optarg, 0, 4294967295.0, &v)) return cli_fail(CLI_USAGE, cmd, "--seed must be 0..2^32-1");
            mc.seed = (uint64_t)v;
            break;
        case O_TOPK:
            if (!parse_num(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --top-k-popular");
            fc.top_k_popular = (uint32_t)v;
            break;
        case O_AGEB: fc.age_mode = CB_AGE_BUCKETS; break;
        case O_EXCL: fc.exclude_cols = optarg; break;
        case O_USKIP:
            if (!parse_num(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --user-skip-cols");
            fc.user_skip_cols = (uint32_t)v;
            break;
        case O_ISKIP:
            if (!parse_num(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --item-skip-cols");
            fc.item_skip_cols = (uint32_t)v;
            break;
        case O_SCALER:
            if (!strcmp(optarg, "all")) fc.scaler_rows = CB_SCALER_ALL;
            else if (!strcmp(optarg, "train")) fc.scaler_rows = CB_SCALER_TRAIN;
            else return cli_fail(CLI_USAGE, cmd, "--scaler-rows is all or train");
            break;
        case O_UL:
            if (parse_layers(optarg, &mc.n_user_layers, mc.user_layers)) return cli_fail(CLI_USAGE, cmd, "bad --user-layers '%s'", optarg);
            break;
        case O_IL:
            if (parse_layers(optarg, &mc.n_item_layers, mc.item_layers)) return cli_fail(CLI_USAGE, cmd, "bad --item-layers '%s'", optarg);
            break;
        case O_DIM:
            if (!parse_num(optarg, 1, 4096, &v)) return cli_fail(CLI_USAGE, cmd, "--dim must be 1..4096");
            mc.dim = (uint32_t)v;
            break;
        case O_NOL2: mc.l2norm = false; break;
        case O_LOSS:
            if (!strcmp(optarg, "mse")) mc.loss = CB_LOSS_MSE;
            else if (!strcmp(optarg, "bce")) mc.loss = CB_LOSS_BCE;
            else return cli_fail(CLI_USAGE, cmd, "--loss is mse or bce");
            break;
        case O_NOSCALE: scale = false; break;
        case O_OPT:
            if (!strcmp(optarg, "adam")) mc.optimizer = CB_OPT_ADAM;
            else if (!strcmp(optarg, "sgd")) mc.optimizer = CB_OPT_SGD;
            else return cli_fail(CLI_USAGE, cmd, "--optimizer is adam or sgd");
            break;
        case O_LR:
            if (!parse_num(optarg, 1e-9, 100, &v)) return cli_fail(CLI_USAGE, cmd, "bad --lr");
            mc.lr = (float)v;
            break;
        case O_WD:
            if (!parse_num(optarg, 0, 100, &v)) return cli_fail(CLI_USAGE, cmd, "bad --weight-decay");
            mc.weight_decay = (float)v;
            break;
        case O_BATCH:
            if (!parse_num(optarg, 1, 1 << 20, &v)) return cli_fail(CLI_USAGE, cmd, "bad --batch");
            mc.batch_size = (uint32_t)v;
            break;
        case O_EPOCHS:
            if (!parse_num(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --epochs");
            mc.epochs = (uint32_t)v;
            break;
        case O_PAT:
            if (!parse_num(optarg, 0, 1e6, &v)) return cli_fail(CLI_USAGE, cmd, "bad --patience");
            mc.patience = (uint32_t)v;
            break;
        case O_THREADS:
            if (!parse_num(optarg, 1, 64, &v)) return cli_fail(CLI_USAGE, cmd, "bad --threads");
            mc.threads = (int)v;
            break;
        case O_RESUME: resume = true; break;
        case O_CURVE: curve = optarg; break;
        default: fputs(train_usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!data || !model_path) {
        fputs(train_usage, stderr);
        return CLI_USAGE;
    }
    const char *why = cb_feature_config_check(&fc);
    if (why) return cli_fail(CLI_USAGE, cmd, "%s", why);

    cb_error err;
    cb_error_clear(&err);
    cb_dataset *ds = NULL;
    cb_bundle *rec = NULL;
    cb_split sp = {0};
    uint32_t *valid = NULL;
    size_t n_valid = 0;
    int status = CLI_ERROR, rc;
    double t0 = cb_now();
    if ((rc = cb_dataset_load(&ds, data, &lo, &err))) goto out;
    if (ds->n_skipped && !pctx.quiet) fprintf(stderr, "skipped %zu bad rows\n", ds->n_skipped);
    if (!strcmp(split_kind, "sklearn")) rc = cb_split_sklearn(&sp, ds->n_ratings, 1.0 - test_frac, (uint32_t)mc.seed, &err);
    else if (!strcmp(split_kind, "random")) rc = cb_split_make(&sp, ds, CB_SPLIT_RANDOM, test_frac, mc.seed, &err);
    else if (!strcmp(split_kind, "temporal")) rc = cb_split_make(&sp, ds, CB_SPLIT_TEMPORAL, test_frac, mc.seed, &err);
    else if (!strcmp(split_kind, "cold-users")) rc = cb_split_make(&sp, ds, CB_SPLIT_COLD_USERS, test_frac, mc.seed, &err);
    else if (!strcmp(split_kind, "cold-items")) rc = cb_split_make(&sp, ds, CB_SPLIT_COLD_ITEMS, test_frac, mc.seed, &err);
    else if (!strcmp(split_kind, "none")) rc = cb_split_make(&sp, ds, CB_SPLIT_RANDOM, 0.0, mc.seed, &err);
    else {
        status = cli_fail(CLI_USAGE, cmd, "unknown --split '%s'", split_kind);
        goto out;
    }
    if (rc) goto out;
    if ((rc = carve_validation(&sp, valid_frac, mc.seed, &valid, &n_valid, &err))) goto out;
    if (!pctx.quiet)
        fprintf(stderr, "%s: %u users, %u items, %zu ratings; split %s: %zu train, %zu validation, %zu test\n",
                ds->name, cb_dataset_n_users(ds), cb_dataset_n_items(ds), ds->n_ratings, split_kind, sp.n_train,
                n_valid, sp.n_test);
    if (ds->binary && mc.objective == CB_OBJECTIVE_RATING) mc.loss = CB_LOSS_BCE; /* 0/1 labels */
    cb_bundle_train_input in = {.ds = ds, .train_idx = sp.train, .n_train = sp.n_train, .valid_idx = valid,
                             .n_valid = n_valid, .features = &fc, .model = mc, .scale_targets = scale, .seen_all_ratings = true,
                             .on_epoch = on_epoch, .ctx = &pctx, .test_idx = sp.test, .n_test = sp.n_test};
    cb_train_result res = {0};
    double t1 = cb_now();
    if (resume) {
        if ((rc = cb_bundle_load(&rec, model_path, &err))) goto out;
        rc = cb_bundle_resume(rec, &in, &res, &err);
    } else {
        rc = cb_bundle_train(&rec, &in, &res, &err);
    }
    double train_seconds = cb_now() - t1;
    if (rc == CB_ENUMERIC && rec) {
        fprintf(stderr, "cbrec train: %s — saving the last good parameters\n", err.msg);
    } else if (rc) {
        goto out;
    }
    int rc_save = cb_bundle_save(rec, model_path, &err);
    if (rc_save) {
        rc = rc_save;
        goto out;
    }
    if (!pctx.quiet)
        fprintf(stderr, "wrote %s (user features %u, item features %u, %zu parameters) in %.1fs total\n", model_path,
                cb_features_user_dim(rec->features), cb_features_item_dim(rec->features),
                cb_model_n_params(rec->model), cb_now() - t0);
    if (curve && pctx.n_epochs) {
        char title[256];
        snprintf(title, sizeof title, "cbrec train: %s", ds->name);
        if ((rc = cb_evalrun_curve_svg(curve, pctx.train, n_valid ? pctx.valid : NULL, pctx.n_epochs, title, &err)))
            goto out;
        if (!pctx.quiet) fprintf(stderr, "wrote the learning curve to %s\n", curve);
    }
    printf("epochs=%u best_epoch=%u train_loss=%.6f", res.epochs_run, res.best_epoch, res.train_loss);
    if (n_valid) printf(" valid_loss=%.6f valid_rmse=%.4f", res.valid_loss, res.valid_rmse);
    if (sp.n_test) {
        printf(" test_rmse=%.4f", res.test_rmse);
        if (cb_model_config_of(rec->model)->loss == CB_LOSS_MSE) printf(" test_mse_scaled=%.4f", res.test_loss);
        else printf(" test_logloss=%.4f", res.test_loss);
    }
    printf(" train_seconds=%.2f\n", train_seconds);
    status = rc == CB_OK ? CLI_OK : CLI_ERROR;
out:
    if (rc && status == CLI_ERROR && err.msg[0]) cli_error(cmd, &err);
    free(valid);
    cb_split_free(&sp);
    cb_bundle_free(rec);
    cb_dataset_free(ds);
    return status;
}
