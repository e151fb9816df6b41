/* recommender_internal — what the library's own layers (training: rec/api_train.c)
 * need of the public cb_recommender beyond include/cbrec.h: making one over a
 * freshly trained bundle, and reaching that bundle to continue training it. */
#ifndef CB_RECOMMENDER_INTERNAL_H
#define CB_RECOMMENDER_INTERNAL_H

#include "model/bundle.h"
#include "model/train_config.h"

/* A new recommender over b. Takes ownership of b, also on failure (then b is
 * freed and *out is NULL). */
int cb_recommender_from_bundle(cb_recommender **out, cb_bundle *b, cb_error *err);
/* The bundle rec serves (owned by rec), to be changed in place [exclusive];
 * call cb_recommender_bundle_changed afterwards. */
cb_bundle *cb_recommender_bundle(cb_recommender *rec);
/* Rebuild what rec derived from its bundle after the bundle's vectors changed
 * (training resumed): the search context; a similar-items table built from the
 * old vectors is dropped, and so are items added with cb_recommender_add_item
 * (their vectors came from the old item tower: add them again). */
int cb_recommender_bundle_changed(cb_recommender *rec, cb_error *err);

/* The public progress callback behind a cb_epoch_fn: pass cb_progress_adapt
 * as the epoch function and a cb_progress_adapter as its context. */
typedef struct cb_progress_adapter {
    cb_progress_fn fn;
    void *ctx;
    double t0;            /* cb_now() when the call began (cb_progress.elapsed) */
} cb_progress_adapter;
int cb_progress_adapt(const cb_epoch_report *r, void *adapter);

/* Training as cb_train does it, on a GIVEN split: carve tc->valid_frac of
 * sp->train (seeded by tc->model.seed, data/split.c's cb_split_carve) for
 * validation, fit features and towers on the rest with tc's settings, and
 * measure sp->test after training (skipped when empty). resume == NULL: a new
 * bundle into *out; else resume trains `resume` in place. seen_all_ratings:
 * the "already rated" lists from every rating (a model to serve, cb_train) or
 * from sp->train only (evaluation: eval/evalrun.c's "cbrec" row); with
 * seen_all_ratings the lists are left to the caller (cb_bundle_build_lists
 * from every rating), to build once it has freed sp. sp is not changed. On CB_ENUMERIC *out may hold the last good parameters. */
typedef struct cb_train_outcome {
    cb_train_result res;
    size_t n_train, n_valid;     /* after the carve */
    double test_loss, test_rmse; /* NAN without a test part */
    cb_neighbours_choice tuned;  /* what the tuning chose and measured (tuned.n_users 0: not tuned) */
    double tune_seconds;
} cb_train_outcome;
int cb_train_on_split(cb_bundle **out, cb_bundle *resume, const cb_dataset *ds, const cb_train_config *tc,
                      const cb_split *sp, bool seen_all_ratings, cb_epoch_fn on_epoch, void *ctx,
                      cb_train_outcome *outcome, cb_error *err);

#endif
