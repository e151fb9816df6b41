/* options — the per-call settings of recommend: the RECOMMEND key table of
 * cb_config (the one home of their defaults, names and ranges), the internal
 * cb_recommend_config it fills, and the checks across keys. */
#include "rec/recommend.h"
#include "base/config.h"

#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(cb_diversity) == sizeof(int) && sizeof(cb_rank_by) == sizeof(int),
               "enum fields must be int-sized");

#define RC(field) offsetof(cb_recommend_config, field)

static const cb_config_choice diversities[] = {{"none", CB_DIV_NONE}, {"mmr", CB_DIV_MMR}, {NULL, 0}};
static const cb_config_choice rank_bys[] = {
    {"auto", CB_RANK_AUTO}, {"rating", CB_RANK_RATING}, {"dot", CB_RANK_DOT}, {NULL, 0}};

static const cb_config_key_def keys[] = {
    {"n", "N", "10", "items to return", "recommend", CB_KEY_U32, RC(n), 0, 1, 1e9, 0, NULL},
    {"recent", "N", "10", "(1) similar items of the user's last N liked ratings (0 = source off)", "sources",
     CB_KEY_U32, RC(recent_items), 0, 0, 1 << 20, 0, NULL},
    {"similar-per-item", "M", "10", "... M nearest items each", "sources", CB_KEY_U32, RC(similar_per_item), 0, 1,
     1 << 20, 0, NULL},
    {"all-anchors", "", "false", "use every rating as an anchor, not only the liked ones (at or above the user's mean and the "
     "middle of the rating scale)",
     "sources", CB_KEY_BOOL, RC(anchors_all), 0, 0, 0, 0, NULL},
    {"top-genres", "N", "3", "(2) the best items of the user's top N genres, those rated at least the middle of the scale on "
     "average (0 = off)", "sources", CB_KEY_U32,
     RC(top_genres), 0, 0, 32, 0, NULL},
    {"per-genre", "N", "10", "... N items each", "sources", CB_KEY_U32, RC(per_genre), 0, 1, CB_BUNDLE_TOP_LIST, 0,
     NULL},
    {"min-genre-ratings", "N", "3", "ratings a genre needs to count as a favourite", "sources", CB_KEY_U32,
     RC(min_genre_ratings), 0, 0, 1e9, 0, NULL},
    {"group-items", "N", "20", "(3) popular among users like them, else overall (0 = off)", "sources", CB_KEY_U32,
     RC(group_items), 0, 0, CB_BUNDLE_TOP_LIST, 0, NULL},
    {"group-by", "COLUMN", "", "the attribute defining \"like them\" (none: region, else country, else location, in any case, when present)", "sources",
     CB_KEY_STRING, RC(group_by), 0, 0, 0, 0, NULL},
    {"embedding", "N", "50", "(4) top N by v_u . v_m over the whole catalog (0 = off)", "sources", CB_KEY_U32,
     RC(embedding_items), 0, 0, 1e9, 0, NULL},
    {"include-seen", "", "false", "keep items the user already rated", "filters", CB_KEY_BOOL, RC(include_seen), 0, 0,
     0, 0, NULL},
    {"exclude", "LIST", "", "comma-separated item ids never to return (an id with a comma in quotes: \"sku,5\")", "filters", CB_KEY_STRING, RC(exclude), 0, 0, 0,
     0, NULL},
    {"allow", "LIST", "", "comma-separated item ids: return only these (quoted as for --exclude; not given: every item)",
     "filters", CB_KEY_STRING, RC(allow), 0, 0, 0, 0, NULL},
    {"block-file", "FILE", "", "never return these: lines \"item ID\", \"genre NAME\", \"COLUMN VALUE\" (tags violent) or an id", "filters",
     CB_KEY_STRING, RC(block_file), 0, 0, 0, 0, NULL},
    {"diversity", "none|mmr", "none", "maximal marginal relevance re-rank (weight: mmr-lambda)", "ranking",
     CB_KEY_ENUM, RC(diversity), 0, 0, 0, 0, diversities},
    {"mmr-lambda", "F", "0.7", "relevance weight of MMR in [0, 1]", "ranking", CB_KEY_F32, RC(mmr_lambda), 0, 0, 1, 0,
     NULL},
    {"genre-cap", "N", "0", "at most N items per genre (0 = no cap; not with diversity mmr)", "ranking", CB_KEY_U32, RC(genre_cap), 0, 0, 1e9,
     0, NULL},
    {"rank-by", "auto|rating|dot", "auto",
     "the ranking criterion: auto = the model's (a retrieval or both model: its retrieval score with the "
     "popularity prior; a rating model: the predicted rating), rating, or dot = v_u . v_m", "ranking",
     CB_KEY_ENUM, RC(rank_by), 0, 0, 0, 0, rank_bys},
    {"neighbours", "", "true", "rank with the model's neighbour component (items picked with those in the user's "
     "history) when it has one; false: by the towers alone", "ranking", CB_KEY_BOOL, RC(neighbours), 0, 0, 0, 0,
     NULL},
    {"neighbour-budget", "N", "0", "... reading at most about N neighbour weights: a longer history uses fewer "
     "(the most similar) neighbours of each of its items; 0 = all of them", "ranking", CB_KEY_U32,
     RC(neighbour_budget), 0, 0, 1e9, 0, NULL},
    /* 0 = every core, as --threads is everywhere else (it was refused here alone) */
    {"threads", "N", "1", "threads of the exact searches and of a batch (0 = every core; never changes the result)",
     "recommend", CB_KEY_INT, RC(threads), 0, 0, 256, 0, NULL},
};

const cb_config_table cb_recommend_config_table = {CB_CONFIG_RECOMMEND, "recommend", keys,
                                                   sizeof keys / sizeof keys[0], sizeof(cb_recommend_config), NULL};

void cb_recommend_config_default(cb_recommend_config *c) {
    /* the table's defaults, parsed by the table's own parser (no string key has a default) */
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].type != CB_KEY_STRING) cb_config_key_parse(&keys[i], keys[i].default_value, c, NULL);
}

/* A config holding key name's default, the rest zero (the table's own
 * parse of it): for a check that asks whether a key was changed. */
static cb_recommend_config default_of(const char *name) {
    cb_recommend_config d;
    memset(&d, 0, sizeof d);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(keys[i].name, name)) cb_config_key_parse(&keys[i], keys[i].default_value, &d, NULL);
    return d;
}

static const char *const mmr_lambda_alone =
    "an MMR lambda weighs the MMR re-rank alone: give diversity mmr too (or leave the lambda out)";

const char *cb_recommend_config_check(const cb_recommend_config *c) {
    if (c->n == 0) return "n must be at least 1";
    if (c->recent_items && !c->similar_per_item) return "the similar source needs M >= 1 neighbours per item";
    if (c->top_genres > 32) return "at most 32 top genres";
    if (c->top_genres && (c->per_genre == 0 || c->per_genre > CB_BUNDLE_TOP_LIST)) return "items per genre must be 1..100";
    if (c->group_items > CB_BUNDLE_TOP_LIST) return "group items must be 0..100";
    if (c->diversity == CB_DIV_MMR && !(c->mmr_lambda >= 0 && c->mmr_lambda <= 1)) return "MMR lambda must be in [0, 1]";
    if (c->diversity != CB_DIV_MMR && c->mmr_lambda != default_of("mmr-lambda").mmr_lambda) /* else ignored */
        return mmr_lambda_alone;
    if (c->diversity == CB_DIV_GENRE_CAP && c->genre_cap == 0) return "the genre cap must be at least 1";
    if (c->diversity == CB_DIV_MMR && c->genre_cap) /* diversify() applies one of them: the cap was dropped */
        return "a genre cap does not combine with MMR diversity: give one of them";
    return NULL;
}

const char *cb_recommend_options_check(const cb_config *opts) {
    const cb_recommend_config *v = cb_config_values(opts, CB_CONFIG_RECOMMEND);
    const char *why = v ? cb_recommend_config_check(v) : NULL;
    /* its default written out is a lambda left unused too (the value check above cannot tell it) */
    if (!why && v && v->diversity != CB_DIV_MMR && cb_config_given(opts, "mmr-lambda")) why = mmr_lambda_alone;
    return why;
}

CB_API const char *cb_recommend_batch_unused(const cb_config *opts) {
    const cb_recommend_config *v = opts ? cb_config_values(opts, CB_CONFIG_RECOMMEND) : NULL;
    if (!v) return NULL;
    if (v->diversity != CB_DIV_NONE) return "diversity";
    if (v->genre_cap) return "genre-cap";
    static const char *const unused[] = {"mmr-lambda", "recent", "similar-per-item", "all-anchors", "top-genres",
                                         "per-genre", "min-genre-ratings", "group-items", "group-by", "embedding"};
    for (size_t i = 0; i < sizeof unused / sizeof *unused; i++)
        if (cb_config_given(opts, unused[i])) return unused[i];
    return NULL;
}

int cb_recommend_config_from(cb_recommend_config *c, const cb_config *opts, cb_error *err) {
    if (!opts) {
        cb_recommend_config_default(c);
        return CB_OK;
    }
    const cb_recommend_config *v = cb_config_values(opts, CB_CONFIG_RECOMMEND);
    if (!v) return cb_fail(err, CB_EINVAL, "recommend options must be a cb_config of kind RECOMMEND");
    *c = *v;
    const char *why = cb_recommend_options_check(opts);
    return why ? cb_fail(err, CB_EINVAL, "%s", why) : CB_OK;
}
