/* cbrec train — load a dataset, split it, train the two towers, write the
 * model file. Every setting is a key of the TRAIN configuration (cbrec.h);
 * this file adds only the paths, progress output and the learning curve. */
#include "cli.h"

#include <jansson.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct progress_ctx {
    bool quiet, tty;
    int stage;             /* the stage of the last report (CB_STAGE_*) */
    double *train, *valid; /* learning curve, per epoch */
    size_t n_epochs, cap;
} progress_ctx;

/* The neighbour component's tuning, before the model's epochs: a line as
 * each of its parts starts, and on a terminal a bar through the carve's
 * epochs. */
static void print_tuning(const cb_progress *p, progress_ctx *ctx) {
    bool starts = p->stage != ctx->stage;
    ctx->stage = p->stage;
    if (ctx->tty && starts) fprintf(stderr, "\r%*s\r", 100, "");
    if (starts && p->stage == CB_STAGE_TUNE_TOWERS)
        fprintf(stderr, "tuning the neighbour component: towers on a carve of the training ratings (%u epoch%s)\n",
                p->epochs, p->epochs == 1 ? "" : "s");
    if (starts && p->stage == CB_STAGE_TUNE_GRID)
        fprintf(stderr, "tuning the neighbour component: its grid of settings, on the carve's held-out ratings\n");
    if (!ctx->tty || p->stage != CB_STAGE_TUNE_TOWERS || !p->n_batches) return;
    int width = 30, done = (int)(width * p->batch / p->n_batches);
    fprintf(stderr, "\rtuning: carve epoch %u/%u [%.*s%*s] loss %.4f ", p->epoch, p->epochs, done,
            "##############################", width - done, "", p->train_loss);
    fflush(stderr);
}

static int on_progress(const cb_progress *p, void *vctx) {
    progress_ctx *ctx = vctx;
    if (p->stage != CB_STAGE_TRAIN) {
        if (!ctx->quiet) print_tuning(p, ctx);
        return 0;
    }
    ctx->stage = p->stage;
    if (p->end_of_epoch && ctx->n_epochs < ctx->cap) {
        ctx->train[ctx->n_epochs] = p->train_loss;
        ctx->valid[ctx->n_epochs++] = p->valid_loss;
    }
    if (ctx->quiet) return 0;
    if (!p->end_of_epoch) {
        if (!ctx->tty || !p->n_batches) return 0;
        int width = 30, done = (int)(width * p->batch / p->n_batches);
        double eta = p->batch ? p->seconds * (double)(p->n_batches - p->batch) / (double)p->batch : 0;
        fprintf(stderr, "\repoch %u/%u [%.*s%*s] loss %.4f  %.0f ex/s  eta %.0fs ", p->epoch, p->epochs, done,
                "##############################", width - done, "", p->train_loss, p->examples_per_sec, eta);
        fflush(stderr);
        return 0;
    }
    if (ctx->tty) fprintf(stderr, "\r%*s\r", 100, "");
    fprintf(stderr, "epoch %3u/%u  train_loss %.5f", p->epoch, p->epochs, p->train_loss);
    if (!isnan(p->valid_loss)) fprintf(stderr, "  valid_loss %.5f", p->valid_loss);
    if (!isnan(p->valid_rmse)) fprintf(stderr, "  valid_rmse %.4f", p->valid_rmse);
    fprintf(stderr, "  %.0f ex/s  %.1fs  eta %.0fs%s\n", p->examples_per_sec, p->seconds,
            p->seconds * (double)(p->epochs - p->epoch), p->best ? "  *" : "");
    return 0;
}

/* The ranking's neighbour component, and what its tuning measured. */
static void print_neighbours(const cb_train_report *r) {
    if (!r->neighbours && !r->tune_users) return; /* none to tell of (a rating model, or turned off) */
    if (r->neighbours)
        fprintf(stderr, "neighbours: %s, K %u, %s %g, weight %g", r->neighbours, r->neighbours_k,
                strcmp(r->neighbours, "ease") ? "shrink" : "lambda", r->neighbours_param, r->neighbours_weight);
    else if (r->tune_users && r->tune_ndcg == r->tune_ndcg_towers)
        fprintf(stderr, "neighbours: none (the towers alone ranked best)");
    else
        fprintf(stderr, "neighbours: none (the training stopped before the lists were fitted)");
    if (r->tune_users)
        fprintf(stderr, "; tuned in %.1fs on %zu users of a carve: NDCG@10 %.4f", r->tune_seconds, r->tune_users,
                r->tune_ndcg);
    if (r->tune_users && !isnan(r->tune_ndcg_towers)) fprintf(stderr, ", the towers alone %.4f", r->tune_ndcg_towers);
    fputc('\n', stderr);
}

/* Where the steps' time went: the first worker's CPU, sampled (nothing with
 * fewer than 8 steps an epoch). */
static void print_steps(const cb_train_report *r, const cli_mpi *mp) {
    double all = r->step_towers + r->step_loss + r->step_update + r->step_waits;
    if (!(all > 0)) return;
    char ranks[48] = "";
    if (mp->size > 1) snprintf(ranks, sizeof ranks, " of each of %d ranks", mp->size);
    fprintf(stderr,
            "steps on %d thread%s%s (the first worker's CPU): towers %.2fs, loss %.2fs, gradient sum + update "
            "%.2fs, waits %.2fs\n",
            r->threads, r->threads == 1 ? "" : "s", ranks, r->step_towers, r->step_loss, r->step_update,
            r->step_waits);
}

/* The one line on stdout; the rating objective's held-out loss is the MSE on
 * the targets as trained (mapped to [-1, 1] unless --no-scale-targets). */
static void print_result(const cb_train_report *r, const cb_config *cfg) {
    const char *scaled = cb_config_get(cfg, "scale-targets");
    bool raw = scaled && !strcmp(scaled, "false");
    printf("epochs=%u best_epoch=%u train_loss=%.6f", r->epochs_run, r->best_epoch, r->train_loss);
    if (r->n_valid) printf(" valid_loss=%.6f valid_rmse=%.4f", r->valid_loss, r->valid_rmse);
    if (r->n_test && !isnan(r->test_rmse)) printf(" test_rmse=%.4f", r->test_rmse); /* none: a retrieval model */
    if (r->n_test)
        printf(" %s=%.4f",
               r->test_loss_is_logloss                             ? "test_logloss"
               : r->objective && !strcmp(r->objective, "rating") ? (raw ? "test_mse" : "test_mse_scaled")
                                                                   : "test_loss",
               r->test_loss);
    printf(" train_seconds=%.2f\n", r->seconds);
}

typedef struct train_args {
    const char *data, *model, *curve, *history;
    bool quiet, resume;
    bool follower;           /* an MPI rank other than 0: trains its part, prints and writes nothing */
} train_args;

/* A note when --threads asks for more workers than the machine has cores:
 * they take turns on the cores, and every step waits for the last of them. */
static void note_threads(const cb_config *cfg) {
    const char *t = cb_config_get(cfg, "threads"), *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long cores = sysconf(_SC_NPROCESSORS_ONLN), n = t ? strtol(t, NULL, 10) : 0, ranks = local ? atol(local) : 1;
    if (ranks < 1) ranks = 1;
    if (cores > 0 && n * ranks > cores && ranks > 1)
        fprintf(stderr, "note: %ld ranks here x --threads %ld is more than the %ld cores: the workers will take turns "
                        "on them, and each step waits for the last (--threads 0: the cores shared out)\n",
                ranks, n, cores);
    else if (cores > 0 && n > cores)
        fprintf(stderr, "note: --threads %ld is more than the %ld cores here: the workers will take turns on them, and "
                        "each step waits for the last (--threads 0: one per core)\n", n, cores);
}

/* A note when --split temporal meets data without timestamps: each user's
 * last ratings in file order are held out then. */
static void note_untimed_split(const cb_dataset *ds, const cb_config *cfg) {
    const char *split = cb_config_get(cfg, "split");
    char *doc = NULL;
    if (!split || strcmp(split, "temporal") || cb_dataset_describe(ds, NULL, &doc, NULL)) return;
    json_t *o = json_loads(doc, 0, NULL);
    if (o && json_is_false(json_object_get(o, "timestamps")))
        fprintf(stderr, "note: the data has no timestamps: --split temporal holds out each user's last ratings in "
                        "file order\n");
    json_decref(o);
    free(doc);
}

/* Train (or resume), save, plot; returns the exit status. */
static int train(const train_args *a, const cb_config *cfg, progress_ctx *pc, cli_mpi *mp) {
    const char *cmd = "train";
    cb_error err = {0};
    cb_dataset *ds = NULL;
    cb_recommender *rec = NULL;
    cb_train_report rep = {.size = sizeof rep};
    double t0 = cli_now();
    int rc = cb_dataset_open(&ds, a->data, cfg, &err), told = cli_mpi_told(mp, cmd, rc, &err);
    if (told >= 0) return told; /* every rank reads the same data: a bad file told once */
    if (!rc && !a->quiet) {
        if (cb_dataset_skipped_count(ds)) fprintf(stderr, "skipped %zu bad rows\n", cb_dataset_skipped_count(ds));
        if (cb_dataset_folded_count(ds))
            fprintf(stderr, "a user's repeated rating of an item: %zu later rows %s (--duplicates %s)\n",
                    cb_dataset_folded_count(ds), strcmp(cb_config_get(cfg, "duplicates"), "last") ? "dropped" : "replaced the earlier",
                    cb_config_get(cfg, "duplicates"));
        if (cb_dataset_unlisted_count(ds))
            fprintf(stderr, "%zu users of the ratings are not in the users file: kept, their attributes missing "
                            "(--unlisted-users keep)\n", cb_dataset_unlisted_count(ds));
        fprintf(stderr, "%s: %zu users, %zu items, %zu ratings; split %s\n", cb_dataset_layout(ds),
                cb_dataset_user_count(ds), cb_dataset_item_count(ds), cb_dataset_rating_count(ds),
                cb_config_get(cfg, "split"));
        note_threads(cfg);
        note_untimed_split(ds, cfg);
    }
    if (!rc && a->resume && !(rc = cb_recommender_load_files(&rec, a->model, a->history, NULL, &err))) {
        if (!a->follower && cli_history_absent(rec)) /* resuming keeps the model's history: it has none to keep */
            fprintf(stderr, "cbrec train: note: %s has no history file: the resumed model is saved without one (known "
                            "users' rated items are not filtered out); train without --resume to write it\n", a->model);
        rc = cb_train_resume(rec, ds, cfg, on_progress, pc, &rep, &err);
    }
    else if (!rc && !a->resume)
        rc = cb_train(&rec, ds, cfg, on_progress, pc, &rep, &err);
    bool diverged = rc == CB_ENUMERIC; /* every rank's loss is the same: all diverge at the same step */
    bool together = rc == CB_OK || diverged; /* so every rank is here: rank 0's save is told to all, none stopped */
    if (rec && together && !a->follower) {
        char why[sizeof err.msg], saving[sizeof err.msg];
        snprintf(why, sizeof why, "%s", err.msg);
        int rc_save = cb_recommender_save_files(rec, a->model, a->history, &err);
        snprintf(saving, sizeof saving, "%s", err.msg);
        if (rc_save && diverged) /* both told, on one line: why it stopped, and why the save failed */
            snprintf(err.msg, sizeof err.msg, "%.200s; the last good parameters could not be saved: %.200s", why, saving);
        else if (diverged) snprintf(err.msg, sizeof err.msg, "%.250s; wrote the last good parameters to %.200s", why, a->model);
        if (rc_save) rc = rc_save; /* trained, not saved: the save's error alone */
    }
    told = together ? cli_mpi_told(mp, cmd, a->follower ? CB_OK : rc, &err) : -1; /* rank 0's outcome, told by it */
    if (!rc && !a->quiet)
        fprintf(stderr, "split: %zu train, %zu validation, %zu test\nwrote %s (user features %zu, item features %zu, "
                        "%zu parameters) in %.1fs total\n",
                rep.n_train, rep.n_valid, rep.n_test, a->model, rep.n_user_features, rep.n_item_features,
                rep.n_params, cli_now() - t0);
    if (!rc && !a->quiet && rep.n_valid + rep.n_test) /* the model a user ships should learn from every rating */
        fprintf(stderr, "note: the model learnt from %zu of the %zu ratings (the other %zu measured it; they are still "
                        "filtered as rated); %s%s%s learns from all of them\n",
                rep.n_train, rep.n_train + rep.n_valid + rep.n_test, rep.n_valid + rep.n_test,
                rep.n_test ? "--split none" : "", rep.n_test && rep.n_valid ? " with " : "",
                rep.n_valid ? "--valid-frac 0 (and --patience 0)" : "");
    if (!rc && !a->quiet) print_neighbours(&rep), print_steps(&rep, mp);
    if (!rc && a->curve && pc->n_epochs && !a->follower) {
        char title[256];
        snprintf(title, sizeof title, "cbrec train: %s", cb_dataset_layout(ds));
        rc = cb_plot_curve_svg(a->curve, pc->train, rep.n_valid ? pc->valid : NULL, pc->n_epochs, title, &err);
        if (!rc && !a->quiet) fprintf(stderr, "wrote the learning curve to %s\n", a->curve);
    }
    if (!rc && !a->follower) print_result(&rep, cfg);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    if (told >= 0) return told; /* a failed save or a divergence: every rank stops, none stopped by another */
    return rc ? cli_mpi_failed(mp, cmd, rc, &err) : CLI_OK; /* every rank alike (no training ratings): told once */
}

/* What can be known before an hour of training: an unwritable --model or
 * --curve, --history naming the model file, an output (the model, its
 * history, the curve) over a file of the data or over another output, or
 * --epochs 0 (it would write an untrained model). -1 = go on. */
static int check_before_training(const cli_command *c, const train_args *a, const cb_config *cfg) {
    cb_error err = {0};
    const char *epochs = cb_config_get(cfg, "epochs");
    if (epochs && strtoul(epochs, NULL, 10) == 0)
        return cli_usage_error(c, "--epochs 0 would write an untrained model: give 1 or more");
    if (cli_mpi_launched_rank() > 0) return -1; /* under mpirun rank 0 alone writes: it alone checks */
    char beside[4096];
    const char *history = a->history ? a->history : beside;
    if (!a->history && (size_t)snprintf(beside, sizeof beside, "%s.history", a->model) >= sizeof beside)
        return cli_fail(CLI_ERROR, "train", "%s: path too long", a->model);
    const char *outputs[] = {a->model, history, a->curve};
    for (size_t i = 0; i < 3; i++)
        if (outputs[i] && cb_dataset_check_not_input(a->data, cfg, outputs[i], &err)) return cli_error("train", &err);
    if (cb_file_check_writable(a->model, &err)) return cli_error("train", &err);
    if (a->curve && cli_check_output("train", a->curve, a->model, CLI_INPUTS(a->history)) >= 0) return CLI_ERROR;
    if (a->history && cb_file_check_writable(a->history, &err)) return cli_error("train", &err);
    if (cb_recommender_check_files(a->model, a->history, &err)) return cli_error("train", &err);
    return -1;
}

int cmd_train(int argc, char **argv) {
    train_args a = {0};
    const cli_opt opts[] = {
        {"data", 'd', "PATH", "dataset folder (MovieLens, course-lab rows, or generic with cbrec.schema)", &a.data, NULL, NULL},
        {"model", 'm', "FILE", "the model file to write (replaced atomically)", &a.model, NULL, NULL},
        {"history", 0, "FILE", "where the users' histories go (default: the model's path + .history)", &a.history, NULL, NULL},
        {"resume", 0, NULL, "continue training the model in --model on the same data", NULL, &a.resume, NULL},
        {"curve", 0, "FILE.svg", "plot the learning curve (train and validation loss per epoch)", &a.curve, NULL, NULL},
        {"quiet", 'q', NULL, "no progress output", NULL, &a.quiet, NULL},
        {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {"train", "usage: cbrec train --data PATH --model FILE [options]\n"
                                    "       mpirun -np K cbrec train ...   (K processes, data-parallel)\n", opts, CB_CONFIG_TRAIN,
                           NULL};
    cb_error err = {0};
    cb_config *cfg = NULL;
    if (cb_config_create(&cfg, CB_CONFIG_TRAIN, &err)) return cli_error("train", &err);
    int status = cli_parse(&c, cfg, argc, argv);
    if (status < 0 && (!a.data || !a.model)) status = cli_usage_error(&c, "--data PATH and --model FILE are required");
    progress_ctx pc = {.quiet = a.quiet, .tty = isatty(2), .stage = CB_STAGE_TRAIN, .cap = 4096};
    pc.train = calloc(pc.cap, sizeof *pc.train);
    pc.valid = calloc(pc.cap, sizeof *pc.valid);
    if (status < 0 && (!pc.train || !pc.valid)) status = cli_fail(CLI_ERROR, "train", "out of memory");
    if (status < 0) status = check_before_training(&c, &a, cfg);
    if (status < 0 && cb_config_check(cfg, &err)) status = cli_usage_error(&c, err.msg); /* before the data is read */
    cli_mpi mp = {.size = 1};
    if (status < 0) status = cli_mpi_begin(&mp, "train", cfg);
    if (mp.rank > 0) a.follower = true, a.quiet = pc.quiet = true;
    if (status < 0) status = train(&a, cfg, &pc, &mp);
    status = cli_mpi_end(&mp, "train", status);
    free(pc.train);
    free(pc.valid);
    cb_config_free(cfg);
    return status;
}
