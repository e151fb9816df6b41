/* train_and_recommend — the whole life of a model through include/cbrec.h
 * only: generate a small synthetic dataset (or use yours), configure and
 * train the two towers, save the model, load it back and recommend.
 *
 *   make examples      (builds build/examples/train_and_recommend against
 *                       include/ and the static libcbrec.a; no install needed)
 *   build/examples/train_and_recommend WORKDIR [DATA_DIR]     (WORKDIR is created if missing)
 *
 * Elsewhere: cc -Iinclude examples/train_and_recommend.c libcbrec.a \
 *   $(pkg-config --libs openblas jansson) -lm -lpthread
 * `make test` runs it (tests/test_examples.c). */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#include "cbrec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int on_progress(const cb_progress *p, void *ctx) {
    (void)ctx;
    if (!p->end_of_epoch) return 0;
    printf("epoch %u/%u train_loss %.4f", p->epoch, p->epochs, p->train_loss);
    if (!isnan(p->valid_loss)) printf(" valid_loss %.4f", p->valid_loss); /* NAN: no validation carve (valid-frac 0) */
    printf("\n");
    return 0; /* non-zero would stop training here */
}

static void print_list(const char *what, const cb_list *l) {
    printf("%s (score: %s):\n", what, cb_list_criterion(l));
    for (size_t i = 0; i < cb_list_size(l); i++)
        printf("  %zu. %s %s (%.3f)\n", i + 1, cb_list_item_id(l, i), cb_list_title(l, i), (double)cb_list_score(l, i));
}

/* Set key=value pairs; NULL ends the list. */
static int configure(cb_config *cfg, const char *const *kv, cb_error *err) {
    for (; kv[0]; kv += 2)
        if (cb_config_set(cfg, kv[0], kv[1], err)) return err->code;
    return CB_OK;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s WORKDIR [DATA_DIR]   (WORKDIR: created if missing; gets data/ and model.cbrec)\n",
                argv[0]);
        return 2;
    }
    if (mkdir(argv[1], 0777) && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", argv[0], argv[1], strerror(errno));
        return 1;
    }
    char data[4096], model[4096];
    snprintf(data, sizeof data, "%s/data", argv[1]);
    snprintf(model, sizeof model, "%s/model.cbrec", argv[1]);
    const char *synth_keys[] = {"users", "200", "items", "300", "ratings", "8000", "genres", "6", "seed", "3", NULL};
    const char *train_keys[] = {"user-layers", "32", "item-layers", "32", "dim", "8", "epochs", "3",
                                "top-k-popular", "50", "seed", "7", NULL};
    cb_error err = {0};
    cb_config *synth = NULL, *train = NULL;
    cb_dataset *ds = NULL;
    cb_recommender *rec = NULL;
    cb_list *list = NULL;
    cb_train_report report = {.size = sizeof report};
    int status = 1;
    if (argc < 3) { /* no data given: write a synthetic dataset */
        if (cb_config_create(&synth, CB_CONFIG_SYNTH, &err) || configure(synth, synth_keys, &err) ||
            cb_synth_write_folder(data, synth, &err))
            goto fail;
    }
    if (cb_config_create(&train, CB_CONFIG_TRAIN, &err) || configure(train, train_keys, &err)) goto fail;
    printf("training with lr %s, batch %s, split %s\n", cb_config_get(train, "lr"), cb_config_get(train, "batch"),
           cb_config_get(train, "split"));
    if (cb_dataset_open(&ds, argc < 3 ? data : argv[2], train, &err)) goto fail;
    printf("%zu users, %zu items, %zu ratings\n", cb_dataset_user_count(ds), cb_dataset_item_count(ds),
           cb_dataset_rating_count(ds));
    if (cb_train(&rec, ds, train, on_progress, NULL, &report, &err)) goto fail;
    printf("trained %u epochs on %zu ratings: test RMSE %.4f on %zu held-out ratings\n", report.epochs_run,
           report.n_train, report.test_rmse, report.n_test);
    if (cb_recommender_save(rec, model, &err)) goto fail;
    cb_recommender_free(rec);
    rec = NULL;
    if (cb_recommender_load(&rec, model, NULL, &err)) goto fail;
    cb_config *opts = NULL; /* per-call options: 5 items */
    int rc = cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err);
    if (!rc) rc = cb_config_set(opts, "n", "5", &err);
    if (!rc) rc = cb_recommender_recommend(rec, cb_recommender_user_id(rec, 0), NULL, opts, &list, &err);
    cb_config_free(opts);
    if (rc) goto fail;
    print_list("recommended for the first user", list);
    status = cb_list_size(list) == 5 && isfinite(report.test_rmse) ? 0 : 1;
    goto done;
fail:
    fprintf(stderr, "train_and_recommend: %s (%s)\n", err.msg, cb_strstatus(err.code));
done:
    cb_list_free(list);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    cb_config_free(train);
    cb_config_free(synth);
    return status;
}
