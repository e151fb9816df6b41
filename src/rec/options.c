/* options — the per-call settings of recommend: the internal
 * cb_recommend_config, its defaults (one home) and checks, and its filling
 * from a public cb_config of kind RECOMMEND (the key table of the RECOMMEND
 * kind lives here). */
#include "rec/recommend.h"

#include <string.h>

void cb_recommend_config_default(cb_recommend_config *c) {
    memset(c, 0, sizeof *c);
    c->n = 10;
    c->recent_items = 10;
    c->similar_per_item = 10;
    c->top_genres = 3;
    c->per_genre = 10;
    c->min_genre_ratings = 3;
    c->group_items = 20;
    c->embedding_items = 50;
    c->mmr_lambda = 0.7f;
    c->genre_cap = 0;
    c->threads = 1;
}

const char *cb_recommend_config_check(const cb_recommend_config *c) {
    if (c->n == 0) return "n must be at least 1";
    if (c->recent_items && !c->similar_per_item) return "the similar source needs M >= 1 neighbours per item";
    if (c->top_genres > 32) return "at most 32 top genres";
    if (c->top_genres && (c->per_genre == 0 || c->per_genre > CB_BUNDLE_TOP_LIST)) return "items per genre must be 1..100";
    if (c->group_items > CB_BUNDLE_TOP_LIST) return "group items must be 0..100";
    if (c->diversity == CB_DIV_MMR && !(c->mmr_lambda >= 0 && c->mmr_lambda <= 1)) return "MMR lambda must be in [0, 1]";
    if (c->diversity == CB_DIV_GENRE_CAP && c->genre_cap == 0) return "the genre cap must be at least 1";
    return NULL;
}

int cb_recommend_config_from(cb_recommend_config *c, const cb_config *opts, cb_error *err) {
    cb_recommend_config_default(c);
    if (opts) return cb_fail(err, CB_EINVAL, "recommend options: not available yet");
    return CB_OK;
}
