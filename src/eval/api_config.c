/* api_config — which key table serves which public cb_config_kind, and the
 * kind-level calls of include/cbrec.h (cb_config_create, cb_config_n_keys,
 * cb_config_key). It lives in eval/, the top library folder, because the
 * tables live next to what they configure in the folders below it (data/,
 * model/, rec/, eval/); the mechanism itself is base/config.c. */
#include "base/config.h"
#include "data/synth_config.h"
#include "eval/eval_config.h"
#include "model/train_config.h"
#include "rec/recommend.h"

static const cb_config_table *table_of(cb_config_kind kind) {
    switch (kind) {
    case CB_CONFIG_TRAIN: return &cb_train_config_table;
    case CB_CONFIG_SYNTH: return &cb_synth_config_table;
    case CB_CONFIG_RECOMMEND: return &cb_recommend_config_table;
    case CB_CONFIG_EVAL: return &cb_eval_config_table;
    }
    return NULL;
}

CB_API int cb_config_create(cb_config **out, cb_config_kind kind, cb_error *err) {
    if (out) *out = NULL;
    const cb_config_table *t = table_of(kind);
    if (!t) return cb_fail(err, CB_EINVAL, "cb_config_create: unknown configuration kind %d", (int)kind);
    return cb_config_create_from_table(out, t, err);
}

CB_API size_t cb_config_n_keys(cb_config_kind kind) {
    const cb_config_table *t = table_of(kind);
    return t ? t->n_keys : 0;
}

CB_API int cb_config_key(cb_config_kind kind, size_t i, cb_config_key_info *out) {
    return cb_config_table_key(table_of(kind), i, out);
}

CB_API int cb_config_check(const cb_config *c, cb_error *err) {
    if (!c) return cb_fail(err, CB_EINVAL, "cb_config_check: no configuration");
    const cb_train_config *tc = cb_config_values(c, CB_CONFIG_TRAIN);
    int rc = tc ? cb_train_config_check(tc, err) : CB_OK;
    if (rc) return rc;
    const char *why = cb_recommend_options_check(c);
    if (why) return cb_fail(err, CB_EINVAL, "%s", why);
    cb_evalrun_config ec;
    return cb_config_values(c, CB_CONFIG_EVAL) ? cb_eval_config_resolve(&ec, c, NULL, false, err) : CB_OK;
}
