/* api_eval — the public evaluation call of include/cbrec.h (cb_evaluate): the
 * protocol (fixed folds or the TRAIN config's split), every model of the EVAL
 * config on each split through evalrun.h, and the JSON report `cbrec eval
 * --json` prints. It sits in eval/, the top library folder: it drives
 * evalrun.c, which uses rec/ (the "cbrec" row goes through the public
 * recommender). */
#include "base/svg.h"
#include "eval/eval_config.h"
#include "model/bundle.h"
#include "model/comm.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FOLDS 16

typedef struct protocol {
    char names[MAX_FOLDS][32];
    cb_split splits[MAX_FOLDS];
    size_t n;
    char label[256];
} protocol;

static void protocol_free(protocol *p) {
    for (size_t i = 0; i < p->n; i++) cb_split_free(&p->splits[i]);
    p->n = 0;
}

/* Which part of the split is empty, and why, on data too small for it (it
 * said "an empty training or test part" alone). */
static int split_not_empty(cb_split *sp, const cb_dataset *ds, const char *split, double test_frac, cb_error *err) {
    if (sp->n_train && sp->n_test) return CB_OK;
    const char *why = "";
    if (!sp->n_test && (!strcmp(split, "per-user") || !strcmp(split, "temporal")))
        why = " (a user's only rating always stays in training: give users with two or more, or a larger "
              "--test-frac)";
    else if (!sp->n_test) why = " (a larger --test-frac, or more data)";
    int rc = cb_fail(err, CB_EINVAL, "the %s split of %zu ratings with test fraction %g leaves the %s part empty%s",
                     split, ds->n_ratings, test_frac, sp->n_test ? "training" : "test", why);
    cb_split_free(sp);
    return rc;
}

static int protocol_make(protocol *p, const char *folds, const cb_train_config *tc, const cb_dataset *ds, cb_error *err) {
    memset(p, 0, sizeof *p);
    if (folds) {
        const char *s = folds;
        while (*s) {
            size_t len = strcspn(s, ",");
            if (p->n == MAX_FOLDS || len == 0 || len >= sizeof p->names[0])
                return cb_fail(err, CB_EINVAL, "--folds: at most %d names of < 32 characters", MAX_FOLDS);
            memcpy(p->names[p->n], s, len);
            p->names[p->n][len] = 0;
            char base[4200], test[4200];
            snprintf(base, sizeof base, "%s/%s.base", ds->path, p->names[p->n]);
            snprintf(test, sizeof test, "%s/%s.test", ds->path, p->names[p->n]);
            int rc = cb_eval_split_from_files(&p->splits[p->n], ds, base, test, err);
            if (rc) return rc;
            p->n++;
            s += len;
            if (*s == ',') s++;
        }
        snprintf(p->label, sizeof p->label, "fixed folds %s", folds);
        return CB_OK;
    }
    cb_train_split kind = tc->split;
    const char *split = cb_train_split_name(kind);
    if (kind == CB_TRAIN_SPLIT_SKLEARN || kind == CB_TRAIN_SPLIT_NONE)
        return cb_fail(err, CB_EINVAL, "--split %s is not an evaluation protocol (random, temporal, cold-users, cold-items, per-user)",
                       split);
    int rc = cb_split_make(&p->splits[0], ds, (cb_split_kind)kind, tc->test_frac, tc->model.seed, err);
    if (!rc) rc = split_not_empty(&p->splits[0], ds, split, tc->test_frac, err);
    if (rc) return rc;
    snprintf(p->names[0], sizeof p->names[0], "%s", split);
    p->n = 1;
    /* without timestamps "latest" is the file's order (dataset.h): said, not assumed */
    bool file_order = kind == CB_TRAIN_SPLIT_TEMPORAL && !ds->has_timestamps;
    snprintf(p->label, sizeof p->label, "%s split%s, test fraction %g, seed %llu", split,
             file_order ? " (no timestamps: each user's last ratings in file order)" : "", tc->test_frac,
             (unsigned long long)tc->model.seed);
    return CB_OK;
}

/* The cold-items protocol: held-out items have no training interactions,
 * the question is which of them a user picks, so the lists (the retrieval
 * experiment's too) rank the new items only. */
static bool new_items_only(const cb_eval_config *e, const cb_train_config *tc) {
    return !(e && e->folds && *e->folds) && tc->split == CB_TRAIN_SPLIT_COLD_ITEMS;
}

typedef struct run {
    const cb_dataset *ds;
    protocol proto;
    cb_eval_result *results;
    size_t n_results;
    double seconds;
    const cb_evalrun_config *ec; /* its vs_sum / vs_count: over several splits, per user */
} run;

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* What a relevant held-out item is, in words: "rating >= 0" had stood for
 * every event of implicit data. */
static json_t *relevant_words(const cb_dataset *ds, float threshold) {
    char text[96];
    if (ds->implicit && (threshold <= ds->y_min || (ds->binary && threshold <= 1))) /* y = 1 per event */
        snprintf(text, sizeof text, "every held-out event");
    else if (ds->implicit && !ds->binary) snprintf(text, sizeof text, "held-out weight >= %g", (double)threshold);
    else if (ds->binary && threshold > 0 && threshold <= 1) snprintf(text, sizeof text, "held-out label 1");
    else snprintf(text, sizeof text, "held-out rating >= %g", (double)threshold);
    return json_string(text);
}

/* Top-N was measured and no list met a relevant item (--threshold above
 * every held-out rating): the empty accuracy columns need their reason. */
static bool no_relevant_user(const run *R) {
    bool measured = false;
    for (size_t k = 0; k < R->n_results; k++) {
        if (!R->results[k].has_topn) continue;
        if (R->results[k].topn.n_users_evaluated) return false;
        measured = true;
    }
    return measured;
}

/* A row against the split's strongest baseline (cb_eval_compare). */
static json_t *vs_json(const char *model, double diff, double se, size_t users) {
    return json_pack("{s:s,s:o,s:o,s:I}", "model", model, "ndcg_diff", jnum(diff), "se", jnum(se), "users",
                     (json_int_t)users);
}

/* The same over a model's splits (m its index): the mean over every
 * (user, split) pair compared, its standard error clustered by user (a user
 * in several splits' test parts counts once: cb_eval_compare_clustered;
 * with one split the paired figure itself); the baseline's name, or "per
 * split" where the strongest differed; "users" the distinct users,
 * "user_splits" the pairs. One split only: its own figures. NULL: the
 * model was not compared. */
static json_t *vs_over_folds(const run *R, const char *model, int m) {
    const char *ref = NULL;
    const cb_eval_result *last = NULL;
    for (size_t k = 0; k < R->n_results; k++) {
        const cb_eval_result *r = &R->results[k];
        if (strcmp(r->model, model) || !r->vs_model[0]) continue;
        ref = !ref || !strcmp(ref, r->vs_model) ? r->vs_model : "per split";
        last = r;
    }
    if (!ref) return NULL;
    if (!R->ec->vs_sum) /* a lone split */
        return vs_json(ref, last->vs_ndcg_diff, last->vs_ndcg_se, last->vs_users);
    uint32_t n_users = cb_dataset_n_users(R->ds);
    double diff, se;
    size_t users, pairs;
    cb_eval_compare_clustered(&diff, &se, &users, &pairs, R->ec->vs_sum + (size_t)m * n_users,
                              R->ec->vs_count + (size_t)m * n_users, n_users);
    json_t *j = vs_json(ref, diff, se, users);
    json_object_set_new(j, "user_splits", json_integer((json_int_t)pairs));
    return j;
}

static json_t *results_json(const run *R, const cb_evalrun_config *ec) {
    json_t *root = json_object(), *models = json_array(), *names = json_array();
    for (size_t s = 0; s < R->proto.n; s++) json_array_append_new(names, json_string(R->proto.names[s]));
    json_object_set_new(root, "dataset", json_string(R->ds->name));
    json_object_set_new(root, "path", json_string(R->ds->path ? R->ds->path : ""));
    json_object_set_new(root, "users", json_integer(cb_dataset_n_users(R->ds)));
    json_object_set_new(root, "items", json_integer(cb_dataset_n_items(R->ds)));
    json_object_set_new(root, "ratings", json_integer((json_int_t)R->ds->n_ratings));
    json_object_set_new(root, "protocol", json_string(R->proto.label));
    json_object_set_new(root, "splits", names);
    json_object_set_new(root, "k", json_integer(ec->topn.k));
    json_object_set_new(root, "threshold", json_real(ec->topn.threshold));
    json_object_set_new(root, "relevant", relevant_words(R->ds, ec->topn.threshold));
    json_object_set_new(root, "ranked", json_string(ec->topn.new_items_only
                                                        ? "the new items (those without training interactions) only"
                                                        : "the full catalog with the user's training items excluded"));
    if (no_relevant_user(R))
        json_object_set_new(root, "note",
                            json_sprintf("no test user has a relevant held-out item (%s): no top-N accuracy",
                                         json_string_value(json_object_get(root, "relevant"))));
    json_object_set_new(root, "recall_k", json_integer(ec->topn.recall_k));
    int dcol = cb_eval_diversity_column(R->ds);
    json_object_set_new(root, "diversity_column",
                        dcol < 0 ? json_null() : json_string(R->ds->item_attr.cols[dcol].name));
    json_object_set_new(root, "long_tail",
                        json_string("items outside the most popular ones that make up 80% of the training interactions"));
    json_object_set_new(root, "seed", json_integer((json_int_t)ec->model.seed));
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
        /* the headline figures under names that carry their list length */
        char key[40];
        const uint32_t K = ec->topn.k, RK = ec->topn.recall_k;
        snprintf(key, sizeof key, "mean_ndcg%u", K), json_object_set_new(jm, key, jnum(s.ndcg.mean));
        snprintf(key, sizeof key, "mean_hit_rate%u", K), json_object_set_new(jm, key, jnum(s.hit_rate.mean));
        snprintf(key, sizeof key, "mean_recall%u", K), json_object_set_new(jm, key, jnum(s.recall.mean));
        if (RK) snprintf(key, sizeof key, "mean_recall%u", RK), json_object_set_new(jm, key, jnum(s.recall_at.mean));
        json_object_set_new(jm, "mean_coverage", jnum(s.coverage.mean));
        snprintf(key, sizeof key, "mean_pop%u", K), json_object_set_new(jm, key, jnum(s.pop_recommended.mean));
        snprintf(key, sizeof key, "mean_long_tail%u", K), json_object_set_new(jm, key, jnum(s.long_tail.mean));
        json_t *chosen = json_array();
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
                json_object_set_new(jf, "n_users_skipped", json_integer((json_int_t)t->n_users_skipped));
                json_object_set_new(jf, "n_users_tied", json_integer((json_int_t)t->n_users_tied));
            }
            if (r->has_topn) {
                json_object_set_new(jf, "recall_at", jnum(r->topn.recall_at));
                json_object_set_new(jf, "recall_k", json_integer(r->topn.recall_k));
                json_object_set_new(jf, "long_tail", jnum(r->topn.long_tail));
            }
            if (r->vs_model[0]) json_object_set_new(jf, "vs_baseline", vs_json(r->vs_model, r->vs_ndcg_diff, r->vs_ndcg_se, r->vs_users));
            if (r->settings[0]) {
                json_object_set_new(jf, "settings", json_string(r->settings));
                json_array_append_new(chosen, json_string(r->settings));
            }
            json_object_set_new(jf, "fit_seconds", json_real(r->fit_seconds));
            json_object_set_new(jf, "eval_seconds", json_real(r->eval_seconds));
            json_array_append_new(folds, jf);
        }
        json_object_set_new(jm, "rmse", rmse);
        json_object_set_new(jm, "mae", mae);
        json_object_set_new(jm, "folds", folds);
        if (json_array_size(chosen)) json_object_set_new(jm, "settings", chosen);
        else json_decref(chosen);
        /* top-N means over the splits that ranked (a split whose candidates all tied has none): said */
        if (s.ndcg.n && s.ndcg.n < s.n_folds)
            json_object_set_new(jm, "topn_splits", json_pack("{s:I,s:I}", "measured", (json_int_t)s.ndcg.n, "of",
                                                             (json_int_t)s.n_folds));
        json_t *vs = vs_over_folds(R, name, m);
        if (vs) json_object_set_new(jm, "vs_baseline", vs);
        json_array_append_new(models, jm);
    }
    json_object_set_new(root, "models", models);
    cb_model_config resolved = ec->model; /* the objective and loss the two-tower rows trained with on these data */
    cb_bundle_objective_for_data(&resolved, R->ds);
    const cb_model_config *mc = &resolved;
    json_t *ul = json_array(), *il = json_array();
    for (uint32_t i = 0; i < mc->n_user_layers; i++) json_array_append_new(ul, json_integer(mc->user_layers[i]));
    for (uint32_t i = 0; i < mc->n_item_layers; i++) json_array_append_new(il, json_integer(mc->item_layers[i]));
    json_object_set_new(root, "two_tower",
                        json_pack("{s:o,s:o,s:I,s:b,s:f,s:I,s:I,s:f,s:I,s:b,s:f,s:I,s:b,s:I,s:s,s:f,s:b,s:f,s:f,s:b,s:b}",
                                  "user_layers", ul, "item_layers", il, "dim", (json_int_t)mc->dim, "l2norm",
                                  mc->l2norm, "lr", (double)mc->lr, "batch", (json_int_t)mc->batch_size, "epochs",
                                  (json_int_t)mc->epochs, "weight_decay", (double)mc->weight_decay, "top_k_popular",
                                  (json_int_t)ec->features.top_k_popular, "scale_targets", ec->scale_targets,
                                  "valid_frac", ec->valid_frac, "implicit_epochs", (json_int_t)ec->implicit_epochs,
                                  "cold_impute", ec->cold_impute, "cold_neighbours", (json_int_t)ec->cold_neighbours,
                                  "objective", cb_objective_name(mc->objective), "temperature",
                                  (double)mc->temperature, "logq", mc->logq, "rating_weight", (double)mc->rating_weight,
                                  "popularity_prior", (double)mc->popularity_prior, "id_embedding",
                                  mc->item_id_embedding, "split_heads", mc->split_heads));
    json_object_set_new(json_object_get(root, "two_tower"), "loss", json_string(mc->loss == CB_LOSS_BCE ? "bce" : "mse"));
    return root;
}


/* Across a communicator (train_cfg's: `mpirun cbrec eval`): every rank's
 * results handed to every rank, ordered by split as one process orders them
 * (each rank ran its splits in order; results are plain data). */
static int gather_results(run *R, const cb_train_comm *comm, cb_error *err) {
    int n = cb_comm_ranks(comm), me = cb_comm_rank(comm);
    size_t *bytes = cb_calloc(2 * (size_t)n, sizeof *bytes, err), *offset = bytes ? bytes + n : NULL;
    int32_t *counts = bytes ? cb_calloc((size_t)n, sizeof *counts, err) : NULL;
    if (!counts) return free(bytes), CB_ENOMEM;
    counts[me] = (int32_t)R->n_results;
    for (int r = 0; r < n; r++) bytes[r] = sizeof *counts, offset[r] = (size_t)r * sizeof *counts;
    int rc = cb_comm_allgather_bytes(comm, counts, bytes, offset, err);
    size_t total = 0;
    for (int r = 0; !rc && r < n; r++) {
        bytes[r] = (size_t)counts[r] * sizeof(cb_eval_result);
        offset[r] = total * sizeof(cb_eval_result);
        total += (size_t)counts[r];
    }
    cb_eval_result *all = rc ? NULL : cb_calloc(total + 1, sizeof *all, err), *sorted = all ? cb_calloc(total + 1, sizeof *all, err) : NULL;
    if (!rc && !sorted) rc = CB_ENOMEM;
    if (!rc) {
        if (R->n_results) /* a rank without a split has none (and results NULL) */
            memcpy((char *)all + offset[me], R->results, R->n_results * sizeof *all);
        rc = cb_comm_allgather_bytes(comm, all, bytes, offset, err);
    }
    size_t at = 0;
    for (size_t f = 0; !rc && f <= R->proto.n; f++) /* folds are numbered 1.., a lone split 0 */
        for (size_t i = 0; i < total; i++)
            if (all[i].fold == (int)f) sorted[at++] = all[i];
    if (!rc) {
        free(R->results);
        R->results = sorted, R->n_results = at;
        sorted = NULL;
    }
    free(sorted);
    free(all);
    free(counts);
    free(bytes);
    return rc;
}

/* Over several splits: the per-user sums the clustered comparison needs
 * (ec->vs_sum / vs_count), zeroed; every rank allocates or none goes on. */
static int keep_user_sums(cb_evalrun_config *ec, const run *R, const cb_train_comm *comm, cb_error *err) {
    if (R->proto.n < 2 || !ec->topn_enabled) return CB_OK;
    size_t n = (size_t)CB_EVALRUN_N_MODELS * cb_dataset_n_users(R->ds) + 1;
    ec->vs_sum = calloc(n, sizeof *ec->vs_sum);
    ec->vs_count = calloc(n, sizeof *ec->vs_count);
    return cb_comm_all_ok(comm, ec->vs_sum && ec->vs_count, err);
}

/* Across ranks (each ran its own splits): every rank's sums added up on every rank. */
static int sum_user_sums(cb_evalrun_config *ec, const run *R, const cb_train_comm *comm, cb_error *err) {
    int ranks = cb_comm_ranks(comm), me = cb_comm_rank(comm);
    if (ranks < 2 || !ec->vs_sum) return CB_OK;
    size_t n = (size_t)CB_EVALRUN_N_MODELS * cb_dataset_n_users(R->ds) + 1;
    size_t *bytes = calloc(2 * (size_t)ranks, sizeof *bytes), *offset = bytes ? bytes + ranks : NULL;
    double *all = calloc(n * (size_t)ranks, sizeof *all);
    uint32_t *all_n = calloc(n * (size_t)ranks, sizeof *all_n);
    int rc = cb_comm_all_ok(comm, bytes && all && all_n, err);
    for (int pass = 0; !rc && pass < 2; pass++) {
        size_t size = pass ? sizeof *all_n : sizeof *all;
        for (int r = 0; r < ranks; r++) bytes[r] = n * size, offset[r] = (size_t)r * n * size;
        memcpy(pass ? (void *)(all_n + (size_t)me * n) : (void *)(all + (size_t)me * n),
               pass ? (void *)ec->vs_count : (void *)ec->vs_sum, n * size);
        rc = cb_comm_allgather_bytes(comm, pass ? (void *)all_n : (void *)all, bytes, offset, err);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        ec->vs_sum[i] = 0, ec->vs_count[i] = 0;
        for (int r = 0; r < ranks; r++) ec->vs_sum[i] += all[(size_t)r * n + i], ec->vs_count[i] += all_n[(size_t)r * n + i];
    }
    free(bytes), free(all), free(all_n);
    return rc;
}

CB_API int cb_evaluate(const cb_dataset *ds, const cb_config *eval_cfg, const cb_config *train_cfg,
                       cb_progress_fn progress, void *progress_ctx, char **json_report, cb_error *err) {
    if (!ds || !json_report) return cb_fail(err, CB_EINVAL, "cb_evaluate: NULL argument");
    *json_report = NULL;
    cb_evalrun_config ec;
    int rc = cb_eval_config_resolve(&ec, eval_cfg, train_cfg, false, err);
    cb_topn_threshold_resolve(&ec.topn, ds);
    if (rc) return rc;
    const cb_eval_config *e = eval_cfg ? cb_config_values(eval_cfg, CB_CONFIG_EVAL) : NULL;
    cb_progress_adapter pa = {progress, progress_ctx, cb_now()};
    ec.on_epoch = progress ? cb_progress_adapt : NULL;
    ec.epoch_ctx = &pa;
    if (!ec.topn_enabled && ds->binary) /* every row would be empty: no rating error is measured on 0/1 values */
        return cb_fail(err, CB_EINVAL, "--no-topn measures the rating error alone, and %s have no ratings to measure "
                       "it on (0/1 values): the top-N metrics are what there is",
                       ds->implicit ? "events" : "0/1 labels");
    run R = {.ds = ds, .ec = &ec};
    if ((rc = protocol_make(&R.proto, e && e->folds && *e->folds ? e->folds : NULL, &ec.train, ds, err))) goto out;
    ec.topn.new_items_only = new_items_only(e, &ec.train);
    double t0 = cb_now();
    /* across processes each rank takes every K-th split and trains on it alone */
    const cb_train_comm *comm = ec.train.comm;
    int ranks = cb_comm_ranks(comm), rank = cb_comm_rank(comm);
    ec.train.comm = NULL;
    if ((rc = keep_user_sums(&ec, &R, comm, err))) goto out;
    for (size_t f = 0; f < R.proto.n && !rc; f++)
        if ((int)(f % (size_t)ranks) == rank)
            rc = cb_evalrun_split(&R.results, &R.n_results, &ec, ds, &R.proto.splits[f],
                                  R.proto.n > 1 || (e && e->folds && *e->folds) ? (int)f + 1 : 0, NULL, NULL, err);
    if (!rc && ranks > 1) rc = gather_results(&R, comm, err);
    if (!rc) rc = sum_user_sums(&ec, &R, comm, err);
    R.seconds = cb_now() - t0;
    if (rc) goto out;
    json_t *j = results_json(&R, &ec);
    *json_report = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(j);
    if (!*json_report) rc = cb_fail(err, CB_ENOMEM, "cb_evaluate: out of memory");
out:
    protocol_free(&R.proto);
    free(R.results);
    free(ec.vs_sum);
    free(ec.vs_count);
    return rc;
}

/* ---- the retrieval-size experiment */

#define MAX_SIZES 32

static int parse_sizes(const char *s, uint32_t *sizes, size_t *n, cb_error *err) {
    *n = 0;
    while (s && *s) {
        size_t len = strcspn(s, ",");
        int64_t v;
        if (*n == MAX_SIZES) return cb_fail(err, CB_EINVAL, "sizes: at most %d", MAX_SIZES);
        if (len == 4 && !strncmp(s, "full", 4)) v = 0;
        else if (!cb_parse_i64(s, len, &v) || v < 1 || v > 100000000)
            return cb_fail(err, CB_EINVAL, "sizes: a comma-separated list of positive numbers or 'full'");
        sizes[(*n)++] = (uint32_t)v;
        s += len;
        if (*s == ',') s++;
    }
    return *n ? CB_OK : cb_fail(err, CB_EINVAL, "sizes: a comma-separated list of positive numbers or 'full'");
}

static json_t *retrieval_json(const cb_dataset *ds, const protocol *p, uint32_t k, const cb_retrieval_row *rows,
                              size_t n) {
    json_t *root = json_object(), *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "size",
                           rows[i].size ? json_integer(rows[i].size) : json_string("full"), "mean_candidates",
                           jnum(rows[i].mean_candidates), "recall", jnum(rows[i].recall), "ndcg", jnum(rows[i].ndcg),
                           "mean_score", jnum(rows[i].mean_score), "overlap", jnum(rows[i].overlap), "latency_us",
                           jnum(rows[i].latency_us), "n_users", (json_int_t)rows[i].n_users));
    json_object_set_new(root, "dataset", json_string(ds->name));
    json_object_set_new(root, "protocol", json_string(p->label));
    json_object_set_new(root, "split", json_string(p->names[0]));
    json_object_set_new(root, "k", json_integer(k));
    json_object_set_new(root, "rows", arr);
    return root;
}

CB_API int cb_evaluate_retrieval(const cb_dataset *ds, const cb_config *eval_cfg, const cb_config *train_cfg,
                                 const cb_recommender *model, cb_progress_fn progress, void *progress_ctx,
                                 char **json_report, cb_error *err) {
    if (!ds || !json_report) return cb_fail(err, CB_EINVAL, "cb_evaluate_retrieval: NULL argument");
    *json_report = NULL;
    cb_evalrun_config ec;
    int rc = cb_eval_config_resolve(&ec, eval_cfg, train_cfg, true, err);
    cb_topn_threshold_resolve(&ec.topn, ds);
    if (rc) return rc;
    cb_eval_config e;
    if (eval_cfg) e = *(const cb_eval_config *)cb_config_values(eval_cfg, CB_CONFIG_EVAL);
    else if ((rc = cb_config_table_defaults(&cb_eval_config_table, &e, err))) return rc;
    uint32_t sizes[MAX_SIZES];
    size_t n_sizes;
    if ((rc = parse_sizes(e.sizes, sizes, &n_sizes, err))) return rc;
    cb_progress_adapter pa = {progress, progress_ctx, cb_now()};
    ec.on_epoch = progress ? cb_progress_adapt : NULL;
    ec.epoch_ctx = &pa;
    ec.monitor_test = ec.valid_frac == 0; /* the curve shows the held-out loss; it selects nothing */
    ec.topn.new_items_only = new_items_only(&e, &ec.train);
    protocol p;
    cb_bundle *trained = NULL;
    cb_retrieval_row rows[MAX_SIZES];
    if ((rc = protocol_make(&p, e.folds && *e.folds ? e.folds : NULL, &ec.train, ds, err))) goto out;
    const cb_bundle *b = model ? cb_recommender_bundle((cb_recommender *)model) : NULL; /* read only */
    if (!b && !(rc = cb_evalrun_train(&trained, &ec, ds, &p.splits[0], NULL, err))) b = trained;
    if (!rc) rc = cb_evalrun_retrieval(rows, sizes, n_sizes, b, ds, &p.splits[0], &ec.topn, e.max_users, err);
    if (!rc) {
        json_t *j = retrieval_json(ds, &p, ec.topn.k, rows, n_sizes);
        *json_report = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
        json_decref(j);
        if (!*json_report) rc = cb_fail(err, CB_ENOMEM, "cb_evaluate_retrieval: out of memory");
    }
out:
    cb_bundle_free(trained);
    protocol_free(&p);
    return rc;
}

/* A JSON number, NAN for null (a figure with nothing to measure), which the
 * chart leaves out: read as 0 it drew a point and stretched the score scale. */
static double number_or_nan(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

CB_API int cb_plot_retrieval_svg(const char *path, const char *retrieval_json, cb_error *err) {
    json_error_t je;
    json_t *root = retrieval_json ? json_loads(retrieval_json, 0, &je) : NULL;
    json_t *arr = json_object_get(root, "rows");
    size_t n = json_array_size(arr);
    if (!n || n > MAX_SIZES) {
        json_decref(root);
        return cb_fail(err, CB_EPARSE, "cb_plot_retrieval_svg: not a retrieval report with 1..%d rows", MAX_SIZES);
    }
    uint32_t K = (uint32_t)json_integer_value(json_object_get(root, "k"));
    double x[MAX_SIZES], rec[MAX_SIZES], ov[MAX_SIZES], sc[MAX_SIZES], nd[MAX_SIZES], ms[MAX_SIZES];
    double smin = INFINITY, smax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(arr, i);
        x[i] = number_or_nan(r, "mean_candidates");
        rec[i] = number_or_nan(r, "recall");
        nd[i] = number_or_nan(r, "ndcg");
        ov[i] = number_or_nan(r, "overlap");
        ms[i] = number_or_nan(r, "mean_score"); /* null: no list had a slot (fmin / fmax pass over it) */
        smin = fmin(smin, ms[i]), smax = fmax(smax, ms[i]);
    }
    json_decref(root);
    /* the mean score rescaled to [0, 1] over the sizes, to share the axis */
    for (size_t i = 0; i < n; i++) sc[i] = smax > smin ? (ms[i] - smin) / (smax - smin) : 1.0;
    char t[4][64];
    snprintf(t[0], 64, "recall@%u", K), snprintf(t[1], 64, "NDCG@%u", K);
    snprintf(t[2], 64, "overlap with full top-%u", K);
    snprintf(t[3], 64, "mean score@%u (%.2f..%.2f → 0..1)", K, smin, smax);
    cb_svg_series s[4] = {{t[0], x, rec, n}, {t[1], x, nd, n}, {t[2], x, ov, n}, {t[3], x, sc, n}};
    cb_svg_chart ch = {"Retrieval size: where more candidates stop paying off",
                       "candidates retrieved per user (log scale; rightmost = full catalog)", "value", true, 760, 440, true};
    return cb_svg_line_chart(path, &ch, s, 4, err);
}
