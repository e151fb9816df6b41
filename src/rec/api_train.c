/* api_train — the public datasets and training calls of include/cbrec.h
 * (cb_dataset_*, cb_synth_write_folder, cb_train, cb_train_resume,
 * cb_plot_curve_svg's neighbours): a thin layer that reads a TRAIN or SYNTH
 * cb_config and drives data/, features/ and model/bundle.h. It sits in rec/
 * because a trained model is handed out as the public cb_recommender, which
 * lives here; everything it uses is in the folders below.
 *
 * The split and the validation carve are made here, once, for every caller
 * of cb_train (the CLI, examples, bindings). */
#include "data/synth_config.h"
#include "model/bundle.h"
#include "model/train_config.h"
#include "rec/recommender_internal.h"

#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- datasets */

/* cfg's TRAIN values, or the defaults into *def. */
static int train_values(const cb_config *cfg, cb_train_config *def, const cb_train_config **out, cb_error *err) {
    if (cfg) {
        *out = cb_config_values(cfg, CB_CONFIG_TRAIN);
        return *out ? CB_OK : cb_fail(err, CB_EINVAL, "the configuration is not of kind TRAIN");
    }
    *out = def;
    cb_train_config_default(def);
    return CB_OK;
}

CB_API int cb_dataset_open(cb_dataset **out, const char *path, const cb_config *cfg, cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_dataset_open: out is NULL");
    *out = NULL;
    cb_train_config def;
    const cb_train_config *tc;
    int rc = train_values(cfg, &def, &tc, err);
    return rc ? rc : cb_dataset_load(out, path, &tc->load, err);
}

CB_API int cb_dataset_check_not_input(const char *path, const cb_config *cfg, const char *out, cb_error *err) {
    cb_error_clear(err);
    if (!path || !out) return cb_fail(err, CB_EINVAL, "cb_dataset_check_not_input: NULL path");
    cb_train_config def;
    const cb_train_config *tc;
    int rc = train_values(cfg, &def, &tc, err);
    return rc ? rc : cb_dataset_load_check_output(path, &tc->load, out, err);
}

CB_API void cb_dataset_close(cb_dataset *ds) { cb_dataset_free(ds); }
CB_API size_t cb_dataset_user_count(const cb_dataset *ds) { return ds ? cb_dataset_n_users(ds) : 0; }
CB_API size_t cb_dataset_item_count(const cb_dataset *ds) { return ds ? cb_dataset_n_items(ds) : 0; }
CB_API size_t cb_dataset_rating_count(const cb_dataset *ds) { return ds ? ds->n_ratings : 0; }
CB_API const char *cb_dataset_layout(const cb_dataset *ds) { return ds && ds->name ? ds->name : ""; }
CB_API size_t cb_dataset_skipped_count(const cb_dataset *ds) { return ds ? ds->n_skipped : 0; }
CB_API size_t cb_dataset_folded_count(const cb_dataset *ds) { return ds ? ds->n_folded : 0; }
CB_API size_t cb_dataset_unlisted_count(const cb_dataset *ds) { return ds ? ds->n_unlisted : 0; }

static const char *kind_name(cb_col_kind k) {
    return k == CB_COL_NUMERIC ? "numeric" : k == CB_COL_CATEGORICAL ? "categorical" : "multi";
}

static size_t n_missing(const cb_table *t, const cb_column *c) {
    size_t m = 0;
    for (uint32_t r = 0; r < t->n_rows; r++) {
        if (c->kind == CB_COL_NUMERIC) m += isnan(c->num[r]);
        else if (c->kind == CB_COL_CATEGORICAL) m += c->cat[r] == CB_MISSING;
        else m += c->off[r + 1] == c->off[r];
    }
    return m;
}

/* [{"name", "kind", "levels", "missing", "examples": first levels}] */
static json_t *table_json(const cb_table *t) {
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < t->n_cols; i++) {
        const cb_column *c = &t->cols[i];
        json_t *o = json_pack("{s:s,s:s,s:I}", "name", c->name, "kind", c->text ? "text" : kind_name(c->kind), "missing",
                              (json_int_t)n_missing(t, c));
        if (c->kind != CB_COL_NUMERIC && o) {
            uint32_t nl = cb_vocab_size(c->levels);
            json_t *ex = json_array();
            for (uint32_t k = 0; k < nl && k < 6; k++) json_array_append_new(ex, json_string(cb_vocab_name(c->levels, k)));
            json_object_set_new(o, "levels", json_integer(nl));
            json_object_set_new(o, "examples", ex);
            if (c->n_values_seen) { /* the schema's vocabulary control ran on it */
                json_object_set_new(o, "values_seen", json_integer(c->n_values_seen));
                json_object_set_new(o, "dropped", json_integer(c->n_dropped));
                json_object_set_new(o, "hash_buckets", json_integer(c->hash_buckets));
            }
        }
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *names_json(uint32_t dim, const char *(*name)(const cb_features *, uint32_t), const cb_features *f) {
    json_t *a = json_array();
    for (uint32_t j = 0; a && j < dim; j++) json_array_append_new(a, json_string(name(f, j)));
    return a;
}

/* [{"name", "values": kept as features, "levels": in the data}] per content column. */
static json_t *content_columns_json(const cb_features *f, const cb_dataset *ds) {
    json_t *a = json_array();
    for (uint32_t k = 0; a && k < cb_features_n_facets(f); k++) {
        size_t kept = 0;
        for (uint32_t g = 0; g < cb_features_n_genres(f); g++) kept += cb_features_value_facet(f, g) == (int)k;
        int c = cb_table_find(&ds->item_attr, cb_features_facet_name(f, k));
        json_array_append_new(a, json_pack("{s:s,s:I,s:I}", "name", cb_features_facet_name(f, k), "values", (json_int_t)kept,
                                           "levels", (json_int_t)(c >= 0 ? cb_vocab_size(ds->item_attr.cols[c].levels) : 0)));
    }
    return a;
}

/* Features of `tc` fitted on every rating: describe says what the data gives,
 * it does not evaluate. */
static int features_json(json_t *o, const cb_dataset *ds, const cb_train_config *tc, cb_error *err) {
    const char *why = cb_feature_config_check(&tc->features);
    if (why) return cb_fail(err, CB_EINVAL, "features: %s", why);
    uint32_t *all = cb_malloc((ds->n_ratings ? ds->n_ratings : 1) * sizeof *all, err);
    if (!all) return CB_ENOMEM;
    for (size_t i = 0; i < ds->n_ratings; i++) all[i] = (uint32_t)i;
    cb_features *f = NULL;
    double t0 = cb_now();
    int rc = cb_features_fit(&f, ds, all, ds->n_ratings, &tc->features, err);
    free(all);
    if (rc) return rc;
    json_object_set_new(o, "features_seconds", json_real(cb_now() - t0));
    json_object_set_new(o, "user_features", names_json(cb_features_user_dim(f), cb_features_user_name, f));
    json_object_set_new(o, "item_features", names_json(cb_features_item_dim(f), cb_features_item_name, f));
    json_object_set_new(o, "content_columns", content_columns_json(f, ds));
    cb_features_free(f);
    return CB_OK;
}

CB_API int cb_dataset_describe(const cb_dataset *ds, const cb_config *cfg, char **json_out, cb_error *err) {
    if (!ds || !json_out) return cb_fail(err, CB_EINVAL, "cb_dataset_describe: NULL argument");
    *json_out = NULL;
    const cb_train_config *tc = cfg ? cb_config_values(cfg, CB_CONFIG_TRAIN) : NULL;
    if (cfg && !tc) return cb_fail(err, CB_EINVAL, "cb_dataset_describe: the configuration is not of kind TRAIN");
    uint32_t nu = cb_dataset_n_users(ds), ni = cb_dataset_n_items(ds);
    size_t n_titles = 0, bytes = cb_dataset_bytes(ds);
    for (uint32_t i = 0; ds->titles && i < ni; i++) n_titles += ds->titles[i] != NULL;
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:f,s:f,s:b,s:b,s:b,s:I,s:I,s:I,s:o,s:o,s:I,s:I,s:f,s:I}", "layout",
                          ds->name ? ds->name : "", "path", ds->path ? ds->path : "", "users", (json_int_t)nu, "items",
                          (json_int_t)ni, "ratings", (json_int_t)ds->n_ratings, "rating_min", (double)ds->y_min,
                          "rating_max", (double)ds->y_max, "binary", ds->binary, "timestamps", ds->has_timestamps,
                          "prejoined", ds->prejoined, "user_lead_cols", (json_int_t)ds->user_lead_cols,
                          "item_lead_cols", (json_int_t)ds->item_lead_cols, "titles", (json_int_t)n_titles,
                          "user_columns", table_json(&ds->user_attr), "item_columns", table_json(&ds->item_attr),
                          "skipped_rows", (json_int_t)ds->n_skipped, "bytes", (json_int_t)bytes, "bytes_per_rating",
                          ds->n_ratings ? (double)bytes / (double)ds->n_ratings : 0.0, "bytes_per_rating_record",
                          (json_int_t)sizeof(cb_rating));
    if (o) {
        json_object_set_new(o, "implicit", json_boolean(ds->implicit));
        json_object_set_new(o, "merged_rows", json_integer((json_int_t)ds->n_merged));
        json_object_set_new(o, "folded_rows", json_integer((json_int_t)ds->n_folded));
        json_object_set_new(o, "unlisted_users", json_integer((json_int_t)ds->n_unlisted));
    }
    if (!o) return cb_fail(err, CB_ENOMEM, "out of memory");
    int rc = tc ? features_json(o, ds, tc, err) : CB_OK;
    if (!rc && !(*json_out = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
        rc = cb_fail(err, CB_ENOMEM, "out of memory");
    json_decref(o);
    return rc;
}

CB_API int cb_synth_write_folder(const char *dir, const cb_config *cfg, cb_error *err) {
    if (!dir) return cb_fail(err, CB_EINVAL, "cb_synth_write_folder: no folder");
    cb_config *def = NULL; /* NULL cfg: the SYNTH table's defaults */
    int rc = cfg ? CB_OK : cb_config_create_from_table(&def, &cb_synth_config_table, err);
    const cb_synth_config *sc = rc ? NULL : cb_config_values(cfg ? cfg : def, CB_CONFIG_SYNTH);
    if (!rc && !sc) rc = cb_fail(err, CB_EINVAL, "cb_synth_write_folder: the configuration is not of kind SYNTH");
    cb_dataset *ds = NULL;
    if (!rc && sc->layout == CB_SYNTH_GENERIC) {
        rc = cb_synth_write_generic(sc, dir, err);
    } else if (!rc) {
        rc = cb_synth_generate(&ds, sc, err);
        if (!rc) rc = cb_synth_write(ds, dir, err);
    }
    cb_dataset_free(ds);
    cb_config_free(def);
    return rc;
}

/* ---- training */

/* The held-out split cfg asks for. */
static int make_split(cb_split *sp, const cb_dataset *ds, const cb_train_config *tc, cb_error *err) {
    uint64_t seed = tc->model.seed;
    switch (tc->split) {
    case CB_TRAIN_SPLIT_SKLEARN: return cb_split_sklearn(sp, ds->n_ratings, 1.0 - tc->test_frac, (uint32_t)seed, err);
    case CB_TRAIN_SPLIT_NONE: return cb_split_make(sp, ds, CB_SPLIT_RANDOM, 0.0, seed, err);
    default: return cb_split_make(sp, ds, (cb_split_kind)tc->split, tc->test_frac, seed, err);
    }
}

int cb_progress_adapt(const cb_epoch_report *r, void *vctx) {
    const cb_progress_adapter *a = vctx;
    cb_progress p = {sizeof p,     r->epoch,        r->epochs,           r->batch,   r->n_batches,
                     r->end_of_epoch, r->train_loss, r->valid_loss,    r->valid_rmse, r->examples_per_sec,
                     r->seconds,   r->best,         r->stage,            cb_now() - a->t0};
    return a->fn(&p, a->ctx);
}

/* The freed heap's whole pages back to the system at the end of a phase:
 * glibc keeps freed blocks below its top resident for reuse (at 20M ratings
 * ~98 MB after the tuning, ~70 MB when the lists start), which the next
 * phase's larger blocks, mapped anew, do not reuse. */
static void heap_trim(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* ---- the neighbour component (model/neighbours.h), fitted after the towers */

static void tower_row(void *ctx, uint32_t user, float *row) {
    const cb_bundle *b = ctx;
    cb_bundle_rank_scores(b, b->user_vecs + (size_t)user * b->dim, row);
}

/* The carve's tower training (the neighbour component's tuning, before the
 * model trains) passes its ticks and epoch ends to the caller's progress
 * function, so the caller can show it and stop it (Ctrl-C in Python): each
 * as a tick (end_of_epoch 0, so the epochs the caller counts are those of
 * its model) of stage CB_STAGE_TUNE_TOWERS with the carve's epoch, batch and
 * loss (an epoch's end: all its batches), and a small data set's carve,
 * whose epochs have no ticks within them, still reports (its Ctrl-C went
 * unseen for the whole carve training). */
typedef struct tuning_progress {
    const cb_bundle_train_input *in; /* the caller's */
    bool stopped;                    /* the caller stopped: no further report */
} tuning_progress;

static int tuning_tick(const cb_epoch_report *r, void *ctx) {
    tuning_progress *tp = ctx;
    cb_epoch_report t = *r; /* an epoch's end has batch = n_batches */
    t.end_of_epoch = false;
    t.stage = CB_STAGE_TUNE_TOWERS;
    if (!tp->stopped && tp->in->on_epoch(&t, tp->in->ctx)) tp->stopped = true;
    return tp->stopped;
}

/* The tick that says the tuning's grid starts (the carve's towers are
 * trained); non-zero: the caller stops here (no component, as a stop in the
 * carve's training). */
static int grid_tick(const cb_bundle_train_input *in, const cb_train_result *carve) {
    if (!in->on_epoch) return 0;
    cb_epoch_report t = {.epoch = carve->epochs_run, .epochs = carve->epochs_run, .train_loss = carve->train_loss,
                         .valid_loss = NAN, .valid_rmse = NAN, .stage = CB_STAGE_TUNE_GRID};
    return in->on_epoch(&t, in->ctx);
}

/* The progress function of a run the caller stopped in the tuning (ctx: the
 * caller's cb_bundle_train_input): the model stops at its first tick, and
 * the caller gets that stopped epoch's end (as for a stop inside an epoch). */
static int stopped_in_tuning(const cb_epoch_report *r, void *ctx) {
    const cb_bundle_train_input *in = ctx;
    return r->end_of_epoch ? in->on_epoch(r, in->ctx) : 1;
}

/* The progress function stopped the training before its last epoch (not early stopping). */
static bool stopped_by_caller(const cb_train_result *res, const cb_model_config *mc) {
    return res->epochs_run < mc->epochs && !res->early_stopped;
}

/* The parameter of the kind tc fixes (the shrinkage or lambda), -1 when tuned. */
static float neighbour_param(const cb_train_config *tc) {
    if (tc->neighbour_kind == CB_NEIGHBOURS_COSINE) return tc->neighbour_shrink;
    if (tc->neighbour_kind == CB_NEIGHBOURS_EASE) return tc->neighbour_lambda;
    return -1;
}

/* Choose K, shrink and w where tc says "auto": towers trained like `in` on a
 * per-user carve (20 %) of in's training ratings (each user's latest under a
 * temporal split: cb_train_carve_kind), the neighbour lists fitted
 * on the same part, NDCG@10 on the carved-out ratings (relevant: the top
 * quarter of the rating scale, every event for implicit data). */
static int tune_neighbours(cb_neighbours_choice *ch, char **tuning, bool *stopped, const cb_bundle_train_input *in,
                           const cb_train_config *tc, cb_error *err) {
    const cb_dataset *ds = in->ds;
    cb_split carve;
    int rc = cb_split_carve(&carve, ds, in->train_idx, in->n_train, cb_train_carve_kind(tc->split, CB_SPLIT_PER_USER),
                            0.2, tc->model.seed, err);
    if (rc) return rc;
    cb_bundle_train_input ti = *in;
    ti.train_idx = carve.train;
    ti.n_train = carve.n_train;
    ti.valid_idx = ti.test_idx = NULL;
    ti.n_valid = ti.n_test = 0;
    ti.seen_all_ratings = false;
    ti.lists_later = true; /* the carve's towers only rank (tower_row): no history, no lists */
    tuning_progress tp = {in, false};
    ti.on_epoch = in->on_epoch ? tuning_tick : NULL;
    ti.ctx = &tp;
    cb_bundle *tb = NULL;
    cb_train_result tres = {0};
    rc = cb_bundle_train(&tb, &ti, &tres, err);
    bool diverged = rc == CB_ENUMERIC; /* the model's own training will say so; the carve tells nothing */
    if (diverged) rc = CB_OK;
    if (!rc && !diverged && !tp.stopped) tp.stopped = grid_tick(in, &tres) != 0;
    if (!rc && (diverged || tp.stopped)) { /* no component (weight 0) */
        ch->weight = 0;
        *stopped = tp.stopped;
        cb_bundle_free(tb);
        cb_split_free(&carve);
        return CB_OK;
    }
    cb_neighbours_choice fixed = {.kind = tc->neighbour_kind,
                                  .k = tc->neighbours == CB_NEIGHBOURS_AUTO ? 0 : tc->neighbours,
                                  .param = neighbour_param(tc), .weight = tc->neighbour_weight};
    float threshold = cb_dataset_relevant_from(ds); /* weighted events: every event (a quarter of the weights' range
                                                       had left almost no user with a relevant pick) */
    if (!rc) rc = cb_neighbours_tune(ch, tuning, &fixed, ds, &carve, threshold, 2000, tower_row, tb, tc->comm,
                                           tc->model.threads, err);
    cb_bundle_free(tb);
    cb_split_free(&carve);
    heap_trim();
    return rc;
}

/* The neighbour settings tc gives, tuned where "auto" (tune_neighbours;
 * "auto" tries EASE only where it fits, an explicit EASE that does not fit
 * is CB_EINVAL at the fit): chosen before the model itself is trained, so
 * the carve's towers and the model's are never held together (the peak
 * memory of a large training run). ch->weight 0: no component (turned off,
 * a model that does not rank by retrieval, or the carve's choice). *stopped:
 * the caller's progress function stopped the carve's training. */
static int choose_neighbours(cb_neighbours_choice *ch, char **tuning, bool *stopped, const cb_bundle_train_input *in,
                             const cb_train_config *tc, cb_error *err) {
    *ch = (cb_neighbours_choice){.kind = tc->neighbour_kind, .k = tc->neighbours, .param = neighbour_param(tc),
                                 .weight = tc->neighbour_weight, .ndcg = NAN, .ndcg_towers = NAN,
                                 .recall = NAN, .recall_towers = NAN};
    *tuning = NULL;
    if (tc->neighbours == 0 || in->model.objective == CB_OBJECTIVE_RATING) {
        ch->weight = 0;
        return CB_OK;
    }
    bool tuned = tc->neighbours == CB_NEIGHBOURS_AUTO || neighbour_param(tc) < 0 || tc->neighbour_weight < 0;
    return tuned ? tune_neighbours(ch, tuning, stopped, in, tc, err) : CB_OK;
}

/* Fit the neighbour lists of choice ch on in's training ratings and attach
 * them to b (taking *tuning); nothing when ch's weight is 0. */
static int fit_neighbours(cb_bundle *b, const cb_bundle_train_input *in, const cb_train_config *tc,
                          const cb_neighbours_choice *ch, char **tuning, cb_error *err) {
    if (!(ch->weight > 0)) return CB_OK;
    cb_neighbours *nb = NULL;
    int rc = cb_neighbours_fit_shared(&nb, in->ds, in->train_idx, in->n_train, (cb_neighbours_kind)ch->kind, ch->k,
                                      ch->param, tc->comm, tc->model.threads, err);
    if (nb) {
        nb->weight = ch->weight;
        nb->raw = ch->raw;
        nb->tuning = *tuning;
        *tuning = NULL;
        cb_neighbours_free(b->neighbours);
        b->neighbours = nb;
    }
    return rc;
}

/* What fit_neighbours would refuse only after training (K neighbours that
 * overflow the lists' int32 offsets), refused before it. */
static int neighbours_fit_check(const cb_dataset *ds, const cb_train_config *tc, const cb_model_config *mc,
                                cb_error *err) {
    if (tc->neighbours == 0 || tc->neighbours == CB_NEIGHBOURS_AUTO || mc->objective == CB_OBJECTIVE_RATING)
        return CB_OK;
    uint32_t k = tc->neighbours;
    return cb_neighbours_check_k(cb_dataset_n_items(ds), &k, err);
}

int cb_train_on_split(cb_bundle **out, cb_bundle *resume, const cb_dataset *ds, const cb_train_config *tc,
                      const cb_split *sp, bool seen_all_ratings, cb_epoch_fn epoch_fn, void *ctx,
                      cb_train_outcome *o, cb_error *err) {
    if (out) *out = NULL;
    memset(o, 0, sizeof *o);
    o->test_loss = o->test_rmse = NAN;
    int rc = cb_train_config_check(tc, err);
    if (rc) return rc;
    cb_split carve = {0}; /* the seeded validation carve, made here for every caller; none (and
                             no copy of sp->train: 4 B per rating) when valid_frac is 0 */
    bool carved = tc->valid_frac != 0.0;
    rc = carved ? cb_split_carve(&carve, ds, sp->train, sp->n_train, cb_train_carve_kind(tc->split, CB_SPLIT_RANDOM),
                                 tc->valid_frac, tc->model.seed, err)
                : CB_OK;
    if (rc) return rc;
    if (!carved) carve.n_train = sp->n_train;
    cb_bundle_train_input in = {.ds = ds, .train_idx = carved ? carve.train : sp->train, .n_train = carve.n_train,
                                .valid_idx = carve.n_test ? carve.test : NULL, .n_valid = carve.n_test,
                                .features = &tc->features, .model = tc->model, .scale_targets = tc->scale_targets,
                                .seen_all_ratings = seen_all_ratings, .lists_later = seen_all_ratings,
                                .on_epoch = epoch_fn, .ctx = ctx,
                                .test_idx = sp->n_test ? sp->test : NULL, .n_test = sp->n_test,
                                .comm = tc->comm};
    if (!resume) cb_bundle_objective_for_data(&in.model, ds);
    if (!resume && (rc = neighbours_fit_check(ds, tc, &in.model, err))) {
        cb_split_free(&carve);
        return rc;
    }
    cb_neighbours_choice ch = {.weight = 0};
    char *tuning = NULL;
    bool stopped = false;
    double t_tune = cb_now();
    if (!resume && (rc = choose_neighbours(&ch, &tuning, &stopped, &in, tc, err))) {
        cb_split_free(&carve);
        return rc;
    }
    o->tuned = ch;
    o->tune_seconds = ch.n_users ? cb_now() - t_tune : 0;
    cb_bundle_train_input caller = in;
    if (stopped) in.on_epoch = stopped_in_tuning, in.ctx = &caller;
    rc = resume ? cb_bundle_resume(resume, &in, &o->res, err) : cb_bundle_train(out, &in, &o->res, err);
    if (!resume && *out && (rc == CB_OK || rc == CB_ENUMERIC) && (*out)->item_vecs &&
        !stopped_by_caller(&o->res, &in.model)) {
        int nrc = fit_neighbours(*out, &in, tc, &ch, &tuning, err);
        if (nrc) {
            cb_bundle_free(*out);
            *out = NULL;
            rc = nrc;
        }
    }
    free(tuning);
    o->n_train = carve.n_train;
    o->n_valid = carve.n_test;
    o->test_loss = o->res.test_loss;
    o->test_rmse = o->res.test_rmse;
    cb_split_free(&carve);
    return rc;
}

/* The report's neighbour component (nb NULL: none) and its tuning (o). */
static void report_neighbours(cb_train_report *r, const cb_neighbours *nb, const cb_train_outcome *o) {
    bool on = nb && nb->weight > 0, tuned = o->tuned.n_users > 0;
    r->neighbours = on ? cb_neighbours_kind_name(nb->kind) : NULL;
    r->neighbours_k = on ? nb->k : 0;
    r->neighbours_param = !on ? 0 : nb->kind == CB_NEIGHBOURS_EASE ? nb->lambda : nb->shrink;
    r->neighbours_weight = on ? nb->weight : 0;
    r->tune_ndcg = tuned ? o->tuned.ndcg : NAN;
    r->tune_ndcg_towers = tuned ? o->tuned.ndcg_towers : NAN;
    r->tune_users = tuned ? o->tuned.n_users : 0;
    r->tune_seconds = o->tune_seconds;
}

/* One training run: split, then cb_train_on_split (b == NULL: a new bundle
 * into *out; else resume b), fill the report. */
static int run(cb_bundle **out, cb_bundle *b, const cb_dataset *ds, const cb_config *cfg, cb_progress_fn progress,
               void *progress_ctx, cb_train_report *report, cb_error *err) {
    if (report && report->size < sizeof report->size)
        return cb_fail(err, CB_EINVAL, "cb_train: set report->size = sizeof(cb_train_report)");
    cb_train_config def;
    const cb_train_config *tc;
    int rc = train_values(cfg, &def, &tc, err);
    if (rc) return rc;
    cb_split sp = {0};
    cb_progress_adapter pa = {progress, progress_ctx, cb_now()};
    if ((rc = make_split(&sp, ds, tc, err))) {
        cb_split_free(&sp);
        return rc;
    }
    cb_train_outcome o;
    double t0 = cb_now();
    rc = cb_train_on_split(out, b, ds, tc, &sp, true, progress ? cb_progress_adapt : NULL, &pa, &o, err);
    /* the lists (the history: 12 B per rating) once the split (4 B per
     * rating) is freed: the two are never held together at the peak */
    size_t n_test = sp.n_test;
    cb_split_free(&sp);
    heap_trim();
    if (!b && out && *out && (*out)->item_vecs && (rc == CB_OK || rc == CB_ENUMERIC)) {
        int lrc = cb_bundle_build_lists(*out, ds, NULL, ds->n_ratings, err);
        if (lrc) {
            cb_bundle_free(*out);
            *out = NULL;
            rc = lrc;
        }
    }
    const cb_bundle *trained = b ? b : out ? *out : NULL;
    if (report && trained && (rc == CB_OK || rc == CB_ENUMERIC)) {
        const cb_train_result *res = &o.res;
        /* a caller built against an older header gets the fields it knows */
        cb_train_report full = {sizeof full, res->epochs_run, res->best_epoch, res->train_loss, res->valid_loss,
                                res->valid_rmse, o.test_rmse, o.test_loss,
                                cb_model_config_of(trained->model)->loss == CB_LOSS_BCE, o.n_train, o.n_valid,
                                n_test, cb_features_user_dim(trained->features),
                                cb_features_item_dim(trained->features), cb_model_n_params(trained->model),
                                cb_now() - t0, rc == CB_ENUMERIC, .neighbours = NULL};
        report_neighbours(&full, trained->neighbours, &o);
        full.objective = cb_objective_name(cb_model_config_of(trained->model)->objective);
        full.threads = res->threads;
        full.step_towers = res->phase_seconds[0], full.step_loss = res->phase_seconds[1];
        full.step_update = res->phase_seconds[2], full.step_waits = res->phase_seconds[3];
        size_t size = report->size < sizeof full ? report->size : sizeof full;
        memcpy((char *)report + sizeof full.size, (char *)&full + sizeof full.size, size - sizeof full.size);
    }
    return rc;
}

CB_API int cb_train(cb_recommender **out, const cb_dataset *ds, const cb_config *cfg, cb_progress_fn progress,
                    void *progress_ctx, cb_train_report *report, cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_train: out is NULL");
    *out = NULL;
    if (!ds) return cb_fail(err, CB_EINVAL, "cb_train: no dataset");
    cb_bundle *b = NULL;
    int rc = run(&b, NULL, ds, cfg, progress, progress_ctx, report, err);
    /* diverged: the last good parameters are still a model, but only once its vectors exist */
    if (rc == CB_ENUMERIC && b && !b->item_vecs) {
        cb_bundle_free(b);
        return rc;
    }
    if (rc != CB_OK && rc != CB_ENUMERIC) return rc;
    cb_error werr;
    int wrc = cb_recommender_from_bundle(out, b, &werr);
    if (wrc && err) *err = werr;
    return wrc ? wrc : rc;
}

CB_API int cb_config_set_train_comm(cb_config *cfg, const cb_train_comm *comm, cb_error *err) {
    cb_train_config *tc = (cb_train_config *)cb_config_values(cfg, CB_CONFIG_TRAIN); /* the config's own values */
    if (!tc) return cb_fail(err, CB_EINVAL, "cb_config_set_train_comm: the configuration is not of kind TRAIN");
    if (comm && (comm->n_ranks < 1 || comm->rank < 0 || comm->rank >= comm->n_ranks ||
                 (comm->n_ranks > 1 && (!comm->allgather || !comm->allreduce_sum))))
        return cb_fail(err, CB_EINVAL, "cb_config_set_train_comm: rank %d of %d, or a call missing", comm->rank,
                       comm->n_ranks);
    tc->comm = comm;
    return CB_OK;
}

CB_API int cb_train_resume(cb_recommender *rec, const cb_dataset *ds, const cb_config *cfg, cb_progress_fn progress,
                           void *progress_ctx, cb_train_report *report, cb_error *err) {
    cb_bundle *b = cb_recommender_bundle(rec);
    if (!b || !ds) return cb_fail(err, CB_EINVAL, "cb_train_resume: NULL argument");
    int rc = run(NULL, b, ds, cfg, progress, progress_ctx, report, err);
    cb_error werr;
    int wrc = cb_recommender_bundle_changed(rec, &werr);
    if (wrc && err) *err = werr;
    return wrc ? wrc : rc;
}
