/* eval_config — the EVAL key table (see eval_config.h). To add a key: one line
 * in `keys` (and its field in cb_evalrun_config or cb_eval_config). */
#include "eval/eval_config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define EC(field) offsetof(cb_eval_config, field)
#define RUN(field) offsetof(cb_eval_config, run.field)

static const cb_config_choice threshold_auto[] = {{"auto", CB_THRESHOLD_AUTO}, {NULL, 0}};

static const cb_config_key_def keys[] = {
    {"models", "LIST", "",
     "cbrec,cbrec-towers,twotower,pipeline,implicit,global,bias,popularity,svd,ease,item-knn,content-knn,random "
     "(empty: all); cbrec = `cbrec train` + `cbrec recommend` with the TRAIN settings; cbrec-towers = the same "
     "model ranking by its towers alone (`recommend --no-neighbours`; only when it has the neighbour component); "
     "pipeline = the two-tower's top-N through the cheap retrieval sources; implicit = the two-tower rows' "
     "settings with objective retrieval",
     "evaluation", CB_KEY_STRING, EC(models), 0, 0, 0, 0, NULL},
    {"folds", "LIST", "", "fixed folds, e.g. u1,u2,u3,u4,u5 (reads DATA/u1.base + DATA/u1.test: lines of tab-separated "
     "user, item, rating[, timestamp], no header, each a rating of the data; they are the splits: --split and "
     "--test-frac are refused beside them)",
     "evaluation", CB_KEY_STRING, EC(folds), 0, 0, 0, 0, NULL},
    {"k", "N", "10", "list length K", "evaluation", CB_KEY_U32, RUN(topn.k), 0, 1, 1000, 0, NULL},
    {"threshold", "auto|Y", "auto", "relevant = held-out rating >= Y (auto: every held-out event of implicit data; "
     "on ratings the top quarter of the range, min + 0.75 (max - min): 4 on 1-5)", "evaluation", CB_KEY_F32,
     RUN(topn.threshold), 0, -1e9, 1e9, 0, threshold_auto},
    {"recall-k", "N", "20", "also recall@N (0 = off)", "evaluation", CB_KEY_U32, RUN(topn.recall_k), 0, 0, 1000, 0,
     NULL},
    {"topn", "", "true", "top-N metrics (--no-topn: rating metrics only)", "evaluation", CB_KEY_BOOL,
     RUN(topn_enabled), 0, 0, 0, 0, NULL},
    {"tune-frac", "F", "0.2", "per-user validation carve of the training part that chooses the ease / item-knn "
     "settings (each user's latest under --split temporal; never the test part)", "evaluation", CB_KEY_F64, RUN(tune_frac), 0, 0.01, 0.9, 0, NULL},
    {"twotower-valid-frac", "F", "0", "validation carve of the two-tower rows (the cbrec row uses --valid-frac, as "
     "cbrec train does)", "two-tower", CB_KEY_F64, RUN(valid_frac), 0, 0, 0.9, 0, NULL},
    {"implicit-epochs", "N", "0", "two-tower/implicit: epochs (0: --epochs)", "two-tower", CB_KEY_U32,
     RUN(implicit_epochs), 0, 0, 1e6, 0, NULL},
    {"cold-impute", "", "true", "impute cold users' rating-derived features from attribute-nearest training users",
     "two-tower", CB_KEY_BOOL, RUN(cold_impute), 0, 0, 0, 0, NULL},
    {"cold-neighbours", "N", "200", "... from this many of them", "two-tower", CB_KEY_U32, RUN(cold_neighbours), 0,
     1, 1e9, 0, NULL},
    {"sizes", "LIST", "25,50,100,200,500,1000,full", "retrieval experiment: candidate budgets", "retrieval",
     CB_KEY_STRING, EC(sizes), 0, 0, 0, 0, NULL},
    {"users", "N", "0", "retrieval experiment: at most N test users (0 = all)", "retrieval", CB_KEY_SIZE,
     EC(max_users), 0, 0, 1e9, 0, NULL},
};

static void init(void *values) {
    cb_eval_config *c = values;
    memset(c, 0, sizeof *c);
    cb_evalrun_config_default(&c->run);
}

const cb_config_table cb_eval_config_table = {CB_CONFIG_EVAL, "eval", keys, sizeof keys / sizeof keys[0],
                                              sizeof(cb_eval_config), init};

/* Models named in c->models that only rank, with top-N off: they would be
 * left out of the table in silence (all models, the default, leave them out
 * as asked). */
static int rank_only_named(const cb_evalrun_config *c, cb_error *err) {
    const unsigned rank_only = (1u << CB_EVALRUN_PIPELINE) | (1u << CB_EVALRUN_IMPLICIT) | (1u << CB_EVALRUN_EASE) |
                               (1u << CB_EVALRUN_ITEM_KNN) | (1u << CB_EVALRUN_CONTENT_KNN) |
                               (1u << CB_EVALRUN_CBREC_TOWERS) | (1u << CB_EVALRUN_RANDOM);
    if (c->topn_enabled || !(c->models & rank_only)) return CB_OK;
    char names[256] = "";
    for (int m = 0; m < CB_EVALRUN_N_MODELS; m++)
        if (c->models & rank_only & (1u << m)) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "",
                     cb_evalrun_model_name((cb_evalrun_model)m));
        }
    return cb_fail(err, CB_EINVAL, "--no-topn measures ratings alone, and %s only rank: leave them out of --models, "
                   "or drop --no-topn", names);
}

int cb_eval_config_resolve(cb_evalrun_config *out, const cb_config *eval_cfg, const cb_config *train_cfg,
                           bool retrieval, cb_error *err) {
    cb_eval_config def;
    const cb_eval_config *ec = eval_cfg ? cb_config_values(eval_cfg, CB_CONFIG_EVAL) : &def;
    if (!ec) return cb_fail(err, CB_EINVAL, "the evaluation configuration is not of kind EVAL");
    if (!eval_cfg && cb_config_table_defaults(&cb_eval_config_table, &def, err)) return CB_EINVAL;
    cb_train_config tdef;
    const cb_train_config *tc = train_cfg ? cb_config_values(train_cfg, CB_CONFIG_TRAIN) : &tdef;
    if (!tc) return cb_fail(err, CB_EINVAL, "the training configuration is not of kind TRAIN");
    if (!train_cfg) cb_train_config_default(&tdef);
    int rc = cb_train_config_check(tc, err);
    if (rc) return rc;
    static const char *const split_keys[] = {"split", "test-frac"}; /* what folds decide (the CLI refuses them first) */
    for (size_t i = 0; ec->folds && *ec->folds && train_cfg && i < sizeof split_keys / sizeof *split_keys; i++)
        if (cb_config_given(train_cfg, split_keys[i]))
            return cb_fail(err, CB_EINVAL, "%s: the folds give the splits (NAME.base and NAME.test): leave it out, "
                           "or the folds", split_keys[i]);
    *out = ec->run;
    if (ec->models && *ec->models && (rc = cb_evalrun_models_parse(ec->models, &out->models, err))) return rc;
    if (ec->models && *ec->models && (rc = rank_only_named(out, err))) return rc;
    out->train = *tc;
    out->features = tc->features;
    out->model = tc->model;
    out->scale_targets = tc->scale_targets;
    /* the two-tower rows carve by --twotower-valid-frac, not --valid-frac
     * (cb_train_config_check's): without it their patience went unused */
    unsigned twotower = 1u << CB_EVALRUN_TWOTOWER | 1u << CB_EVALRUN_PIPELINE | 1u << CB_EVALRUN_IMPLICIT;
    if (tc->model.patience && out->valid_frac == 0.0 && (out->models & twotower || retrieval))
        return cb_fail(err, CB_EINVAL, "patience %u: %s no validation carve to stop on: give --twotower-valid-frac too%s",
                       tc->model.patience, retrieval ? "the retrieval experiment's two-tower model has" : "the "
                       "two-tower rows have", retrieval ? "" : ", or leave them out (--models)");
    return CB_OK;
}
