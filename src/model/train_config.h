/* train_config — the TRAIN kind of cb_config: every setting of training a
 * model, from loading the data to the optimiser, as one plain struct and its
 * key table (config.h). The table is the one home of the product's training
 * defaults (lr 0.003 decaying 0.8 per epoch, batch 256, 10 epochs: the settings `cbrec eval`
 * measured best on MovieLens; model.c keeps the lectures' lower-level
 * defaults for fields no key reaches) and of the split names and the layer
 * list syntax: `cbrec train`, `cbrec eval` and cb_train all parse through it. */
#ifndef CB_TRAIN_CONFIG_H
#define CB_TRAIN_CONFIG_H

#include "base/config.h"
#include "data/dataset.h"
#include "features/featurize.h"
#include "model/model.h"

/* How the ratings are split into training and held-out parts. The first five
 * are cb_split_kind's; sklearn is the course lab's row split
 * (cb_split_sklearn); none keeps every rating for training. */
typedef enum cb_train_split {
    CB_TRAIN_SPLIT_RANDOM = CB_SPLIT_RANDOM,
    CB_TRAIN_SPLIT_TEMPORAL = CB_SPLIT_TEMPORAL,
    CB_TRAIN_SPLIT_COLD_USERS = CB_SPLIT_COLD_USERS,
    CB_TRAIN_SPLIT_COLD_ITEMS = CB_SPLIT_COLD_ITEMS,
    CB_TRAIN_SPLIT_PER_USER = CB_SPLIT_PER_USER,
    CB_TRAIN_SPLIT_SKLEARN = 16,
    CB_TRAIN_SPLIT_NONE = 17
} cb_train_split;

typedef struct cb_train_config {
    cb_load_options load;        /* schema, skip-bad-rows, range */
    cb_train_split split;
    double test_frac, valid_frac;
    cb_feature_config features;
    cb_model_config model;       /* seed is the split's seed too; user_in / item_in unset */
    bool scale_targets;
    const cb_train_comm *comm;   /* no key: cb_config_set_train_comm (NULL: one process) */
    /* the neighbour component (model/neighbours.h): K (0 = off), the
     * shrinkage and the blend weight; CB_NEIGHBOURS_AUTO: chosen on a
     * per-user validation carve of the training ratings (each user's latest
     * under a temporal split: cb_train_carve_kind) */
    uint32_t neighbours;
    int neighbour_kind;          /* cb_neighbours_kind, or -1: auto */
    float neighbour_shrink, neighbour_lambda, neighbour_weight;
} cb_train_config;

#define CB_NEIGHBOURS_AUTO UINT32_MAX      /* "auto" of the key neighbours */
#define CB_NEIGHBOURS_AUTO_F (-1.0f)       /* "auto" of neighbour-shrink / neighbour-weight */

extern const cb_config_table cb_train_config_table;

/* The table's defaults without a cb_config: for callers that keep their own
 * structs (the evaluation harness should take its model and feature defaults
 * from here). */
void cb_train_config_default(cb_train_config *c);
/* The checks of TRAIN settings that cannot work, before any work: CB_OK, or
 * CB_EINVAL saying why (the feature settings' reasons prefixed "features: ";
 * epochs 0, which would give an untrained model). Every way to train
 * (cb_train, cb_train_resume, cb_evaluate) and cb_config_check ask it. */
int cb_train_config_check(const cb_train_config *c, cb_error *err);
/* The shared parsers of the "split" key and the layer lists (key
 * "user-layers" or "item-layers"), for callers with their own option structs
 * (cmd_eval): CB_EINVAL naming the key and the accepted values. */
int cb_train_parse_split(const char *name, cb_train_split *out, cb_error *err);
const char *cb_train_split_name(cb_train_split s);
/* The kind of a validation carve cut from the training part of split s:
 * temporal under a temporal split (each user's latest training ratings
 * stand in for the future the test part holds), else `otherwise` (random
 * or per-user, as its caller measures). */
cb_split_kind cb_train_carve_kind(cb_train_split s, cb_split_kind otherwise);
int cb_train_parse_layers(const char *key, const char *list, uint32_t *n, uint32_t *sizes, cb_error *err);

#endif /* CB_TRAIN_CONFIG_H */
