/* eval_config — the EVAL kind of cb_config: the options of `cbrec eval`,
 * `cbrec experiment retrieval` and `cbrec report` that are not training
 * settings (which models, the protocol's folds, K, the threshold, the
 * baselines' tuning carve, the two-tower/implicit and cold-user knobs, the
 * retrieval experiment's sizes). The data, split, seed, feature, model and
 * training settings are the TRAIN table's (model/train_config.h): an
 * evaluation takes one EVAL and one TRAIN config (cb_evaluate). The defaults
 * live in the table, applied over cb_evalrun_config_default. */
#ifndef CB_EVAL_CONFIG_H
#define CB_EVAL_CONFIG_H

#include "base/config.h"
#include "eval/evalrun.h"

typedef struct cb_eval_config {
    cb_evalrun_config run;   /* models is set from `models` by cb_eval_config_resolve */
    const char *models;      /* comma-separated names (cb_evalrun_models_parse); NULL: all */
    const char *folds;       /* fixed folds u1,u2,... read from DATA/<name>.base|.test; NULL: the TRAIN split */
    const char *sizes;       /* retrieval budgets, "25,50,...,full" */
    size_t max_users;        /* retrieval experiment: at most this many test users (0 = all) */
} cb_eval_config;

extern const cb_config_table cb_eval_config_table;

/* The run's settings from an EVAL config (NULL: defaults) and a TRAIN config
 * (NULL: defaults): the model mask parsed, the TRAIN settings copied into
 * run.train and the two-tower rows' features / model / target scaling (the
 * seed too: of the split, the towers and the baselines). `retrieval`: for
 * the retrieval experiment, which trains a two-tower model whatever the mask
 * (its patience needs --twotower-valid-frac as the two-tower rows' does). */
int cb_eval_config_resolve(cb_evalrun_config *out, const cb_config *eval_cfg, const cb_config *train_cfg, bool retrieval,
                           cb_error *err);

#endif
