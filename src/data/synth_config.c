/* synth_config — the SYNTH key table: the options of `cbrec synth` and
 * cb_synth_write_folder. The defaults equal cb_synth_config_default's
 * (tests/test_config.c checks that they agree). */
#include "data/synth_config.h"

#include <stddef.h>

#define SC(field) offsetof(cb_synth_config, field)

static const cb_config_choice layouts[] = {{"movielens", CB_SYNTH_MOVIELENS}, {"generic", CB_SYNTH_GENERIC}, {NULL, 0}};

static const cb_config_key_def keys[] = {
    {"users", "N", "1000", "number of users", "synth", CB_KEY_U32, SC(n_users), 0, 1, 4294967294.0, 0, NULL},
    {"items", "N", "2000", "number of items", "synth", CB_KEY_U32, SC(n_items), 0, 1, 4294967294.0, 0, NULL},
    {"ratings", "N", "100000", "number of ratings (at most users x items/2)", "synth", CB_KEY_SIZE, SC(n_ratings), 0,
     1, 1e15, 0, NULL},
    {"genres", "N", "12", "number of genres (the first 18 have MovieLens names)", "synth", CB_KEY_U32, SC(n_genres),
     0, 1, 4294967294.0, 0, NULL},
    {"noise", "X", "0.5", "standard deviation of the rating noise", "synth", CB_KEY_F64, SC(noise), 0, 0, 1e6, 0,
     NULL},
    {"layout", "L", "movielens", "movielens (ratings/movies/users.csv) or generic (a shop-like catalog: string ids, "
     "quoted UTF-8 fields, ;-separated tags, a brand, a text column, never-rated items and users, planted classes "
     "in truth.csv)", "synth", CB_KEY_ENUM, SC(layout), 0, 0, 0, 0, layouts},
    {"seed", "S", "42", "random seed; the same seed gives the same files", "synth", CB_KEY_U64, SC(seed), 0, 0,
     9007199254740992.0, 0, NULL},
};

const cb_config_table cb_synth_config_table = {CB_CONFIG_SYNTH, "synth", keys, sizeof keys / sizeof keys[0],
                                               sizeof(cb_synth_config), NULL};
