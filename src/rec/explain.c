/* explain — the results: the reasons of every recommended item (the
 * sources that retrieved it, then the ranking criterion), the cb_list of the
 * public API with its getters, and the list as JSON (written once, here; the
 * CLI's --json prints it). */
#include "rec/recommend.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Append a formatted string to a growing array of strings. */
int cb_rec_push_str(char ***list, size_t *n, cb_error *err, const char *fmt, ...) {
    char **l = cb_realloc_array(*list, *n + 1, sizeof *l, err);
    if (!l) return CB_ENOMEM;
    *list = l;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int len = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (len < 0) return cb_fail(err, CB_ENOMEM, "out of memory");
    cb_utf8_repair(s); /* a name cut by a "%.80s" (an unknown genre 'xéé…') made the list's text invalid UTF-8 */
    l[(*n)++] = s;
    return CB_OK;
}

void cb_rec_free_strs(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

double cb_rec_shown(double v, int digits) {
    double half = 0.5 * pow(10.0, -digits);
    return fabs(v) < half ? 0.0 : v;
}

/* Ratings print as "5" or "4.5". */
static const char *fmt_y(char *buf, size_t size, float y) {
    snprintf(buf, size, "%g", (double)y);
    return buf;
}

void cb_recommend_result_free(cb_recommend_result *res) {
    if (!res) return;
    for (size_t i = 0; i < res->n; i++) {
        cb_rec_free_strs(res->items[i].reasons, res->items[i].n_reasons);
        free(res->items[i].id);
        free(res->items[i].title);
    }
    free(res->items);
    cb_rec_free_strs(res->notes, res->n_notes);
    memset(res, 0, sizeof *res);
}

/* The length of a content column's name as one of its values' kind: a
 * plural "s" dropped ("tags" as "tag", "languages" as "language"), the name
 * whole where it is no plain plural ("status", "class", "analysis",
 * "categories", "boxes", "matches": "status" read "statu", and a rule
 * keeping every "-es" whole read "favourite languages"). */
static int kind_len(const char *col) {
    size_t cl = strlen(col);
    if (cl <= 3 || col[cl - 1] != 's' || strchr("sui", col[cl - 2])) return (int)cl;
    if (col[cl - 2] == 'e' && (strchr("isxz", col[cl - 3]) || (col[cl - 3] == 'h' && strchr("cs", col[cl - 4]))))
        return (int)cl;
    return (int)cl - 1;
}

/* "top in your favourite genres Action and Drama", and per other content
 * column "top in your favourite tag 'jazz'" (the column's name, a plural
 * "s" dropped). */
static int explain_values(const cb_bundle *r, const cb_rec_cand *c, const uint32_t *genres, cb_list_entry *out,
                          cb_error *err) {
    char names[256] = "";
    int count = 0, rc = CB_OK;
    for (uint32_t s = 0; s < 32 && !rc; s++) {
        if (!(c->genre_slots & (1u << s))) continue;
        int facet = cb_features_value_facet(r->features, genres[s]);
        const char *value = cb_features_genre_name(r->features, genres[s]);
        if (facet < 0 || cb_features_facet_is_genre(r->features, (uint32_t)facet)) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", count++ ? " and " : "", value);
            continue;
        }
        const char *col = cb_features_facet_name(r->features, (uint32_t)facet);
        rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "top in your favourite %.*s '%s'", kind_len(col), col,
                             value);
    }
    if (!rc && count)
        rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "top in your favourite genre%s %s", count > 1 ? "s" : "",
                             names);
    return rc;
}

/* The neighbour component's reason, only where it lifted the item by at
 * least a tenth of its weight (a tenth of the user's strongest neighbour
 * score): the history item that contributes most (c->nb_anchor), and what
 * it added. */
bool cb_rec_neighbour_reason_due(const cb_recommender *rec, const cb_rec_cand *c) {
    const cb_neighbours *nb = rec->r->neighbours;
    return nb && c->neighbour >= 0.1f * nb->weight && c->neighbour > 0;
}

/* An item of the user's history as reasons name it: its title, else its id. */
static const char *history_name(const cb_recommender *rec, uint32_t item) {
    const char *t = cb_recommender_item_title(rec, item);
    return *t ? t : cb_recommender_item_id(rec, item);
}

static int explain_neighbours(const cb_recommender *rec, const cb_profile *p, const cb_rec_cand *c,
                              cb_list_entry *out, cb_error *err) {
    if (!cb_rec_neighbour_reason_due(rec, c)) return CB_OK;
    int32_t at = c->nb_anchor; /* found for the picked items by the pipeline (neighbour_anchors) */
    if (at < 0) return CB_OK;
    const char *t = history_name(rec, p->items[at]);
    char yb[32];
    const char *y = fmt_y(yb, sizeof yb, p->ys[at]);
    if (rec->r->binary && p->ys[at] > 0) /* a 0 label is no pick: said as its rating below */
        return cb_rec_push_str(&out->reasons, &out->n_reasons, err,
                               "because you picked %s: users who picked it also picked this (+%.2f to its score)", t,
                               (double)c->neighbour);
    if (rec->r->weighted) /* a summed weight is no rating */
        return cb_rec_push_str(&out->reasons, &out->n_reasons, err,
                               "because you picked %s (weight %s): users who picked it also picked this (+%.2f to its "
                               "score)", t, y, (double)c->neighbour);
    return cb_rec_push_str(&out->reasons, &out->n_reasons, err, /* not "you rated Ocean's 11 4" */
                           "users who picked %s, which you rated %s, also picked this (+%.2f to its score)", t, y,
                           (double)c->neighbour);
}

/* "similar to Heat, which you rated 5 (and to 2 more of your ratings)"; events
 * quote no rating: "which you picked (and to 2 more of your picks)", with
 * weights "which you picked (weight 6; and to 2 more of your picks)". */
static int explain_similar(const cb_recommender *rec, const cb_profile *p, const cb_rec_cand *c, cb_list_entry *out,
                           cb_error *err) {
    const cb_bundle *r = rec->r;
    const char *t = history_name(rec, p->items[c->anchor]);
    char yb[32], more[64] = "";
    const char *y = fmt_y(yb, sizeof yb, p->ys[c->anchor]);
    if (c->n_anchors > 1)
        snprintf(more, sizeof more, "and to %u more of your %s", c->n_anchors - 1,
                 r->binary || r->weighted ? "picks" : "ratings");
    const char *open = *more ? " (" : "", *close = *more ? ")" : "";
    if (r->binary && p->ys[c->anchor] > 0)
        return cb_rec_push_str(&out->reasons, &out->n_reasons, err, "similar to %s, which you picked%s%s%s", t, open,
                               more, close);
    if (r->weighted)
        return cb_rec_push_str(&out->reasons, &out->n_reasons, err, "similar to %s, which you picked (weight %s%s%s)", t,
                               y, *more ? "; " : "", more);
    return cb_rec_push_str(&out->reasons, &out->n_reasons, err, "similar to %s, which you rated %s%s%s%s", t, y, open,
                           more, close);
}

int cb_rec_explain(const cb_recommender *rec, const cb_profile *p, const cb_recommend_config *cfg,
                   const cb_rec_cand *c, const uint32_t *genres, int group, cb_list_entry *out, cb_error *err) {
    const cb_bundle *r = rec->r;
    int rc = CB_OK;
    *out = (cb_list_entry){.item = c->item, .score = c->score, .dot = c->dot, .sources = c->sources,
                           .rating = cb_rec_rating(rec, p->vec, c->item),
                           .added = cb_rec_is_added(rec, c->item)};
    int rc0 = cb_rec_entry_names(out, rec, err);
    if (rc0) return rc0;
    if (c->sources & (1u << CB_SRC_SIMILAR)) rc = explain_similar(rec, p, c, out, err);
    if (!rc) rc = explain_neighbours(rec, p, c, out, err);
    if (!rc && (c->sources & (1u << CB_SRC_GENRE))) rc = explain_values(r, c, genres, out, err);
    if (!rc && (c->sources & (1u << CB_SRC_GROUP))) {
        const cb_bundle_group *g = &r->groups[group];
        const char *level = g->levels[p->group_level[group]];
        if (cb_rec_location_rank(g->column) >= 0)
            rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "popular with users in your %s %s", g->column, level);
        else
            rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "popular with users who share your %s (%s)", g->column,
                          level);
    }
    if (!rc && (c->sources & (1u << CB_SRC_POPULAR)))
        rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "among the most %s items overall",
                             r->binary || r->weighted ? "picked" : "rated");
    /* the embedding source's rank is among the items the call may return: under an allow list, those */
    const char *among = cfg->allow && *cfg->allow ? "the allowed items" : "the catalog";
    if (!rc && out->added && (c->sources & (1u << CB_SRC_EMBEDDING)))
        rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err,
                             "new in the catalog: close to your taste vector (#%u of %s by v_u.v_m)", c->emb_rank + 1,
                             among);
    else if (!rc && out->added)
        rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "new in the catalog: close to your taste vector");
    else if (!rc && (c->sources & (1u << CB_SRC_EMBEDDING)))
        rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "close match to your taste vector (#%u of %s)",
                             c->emb_rank + 1, among);
    if (!rc) {
        double score = cb_rec_shown(c->score, 2), towers = cb_rec_shown(c->score - c->neighbour, 2),
               nb = cb_rec_shown(c->neighbour, 2);
        const char *div = cfg->diversity == CB_DIV_MMR ? "; picked for diversity by MMR"
                          : cfg->diversity == CB_DIV_GENRE_CAP || cfg->genre_cap ? "; within the per-genre cap"
                                                               : "";
        const char *what = cb_rec_prediction_name(r);
        int digits = r->binary ? 2 : 1;
        char rating[64] = "";
        if (!isnan(out->rating))
            snprintf(rating, sizeof rating, "; %s %.*f", what, digits, cb_rec_shown(out->rating, digits));
        if (cfg->rank_by == CB_RANK_DOT)
            rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "ranked by v_u.v_m %.3f%s%s",
                                 cb_rec_shown(c->dot, 3), rating, div);
        else if (!strcmp(cb_rec_criterion(rec, cfg->rank_by), "retrieval score"))
            rc = c->neighbour > 0
                     ? cb_rec_push_str(&out->reasons, &out->n_reasons, err,
                                       "ranked by how likely you are to pick it (retrieval score %.2f: towers %.2f + "
                                       "neighbours %.2f)%s%s",
                                       score, towers, nb, rating, div)
                     : cb_rec_push_str(&out->reasons, &out->n_reasons, err,
                                       "ranked by how likely you are to pick it (retrieval score %.2f)%s%s", score,
                                       rating, div);
        else
            rc = cb_rec_push_str(&out->reasons, &out->n_reasons, err, "%s %.*f%s", what, digits,
                                 cb_rec_shown(out->rating, digits), div);
    }
    return rc;
}


int cb_rec_entry_names(cb_list_entry *e, const cb_recommender *rec, cb_error *err) {
    e->id = cb_strdup(cb_recommender_item_id(rec, e->item), err);
    e->title = cb_strdup(cb_recommender_item_title(rec, e->item), err);
    return e->id && e->title ? CB_OK : CB_ENOMEM;
}

/* ---- the public cb_list */

CB_API void cb_list_free(cb_list *l) {
    cb_recommend_result_free(l);
    free(l);
}

static const cb_list_entry *entry(const cb_list *l, size_t i) { return l && i < l->n ? &l->items[i] : NULL; }

CB_API size_t cb_list_size(const cb_list *l) { return l ? l->n : 0; }
CB_API size_t cb_list_item(const cb_list *l, size_t i) { return entry(l, i) ? entry(l, i)->item : SIZE_MAX; }
CB_API const char *cb_list_item_id(const cb_list *l, size_t i) { return entry(l, i) ? entry(l, i)->id : NULL; }
CB_API const char *cb_list_title(const cb_list *l, size_t i) { return entry(l, i) ? entry(l, i)->title : NULL; }
CB_API float cb_list_score(const cb_list *l, size_t i) { return entry(l, i) ? entry(l, i)->score : NAN; }
CB_API float cb_list_rating(const cb_list *l, size_t i) { return entry(l, i) ? entry(l, i)->rating : NAN; }
CB_API const char *cb_list_criterion(const cb_list *l) { return l && l->criterion ? l->criterion : ""; }
CB_API size_t cb_list_n_reasons(const cb_list *l, size_t i) { return entry(l, i) ? entry(l, i)->n_reasons : 0; }
CB_API const char *cb_list_reason(const cb_list *l, size_t i, size_t j) {
    const cb_list_entry *e = entry(l, i);
    return e && j < e->n_reasons ? e->reasons[j] : NULL;
}
CB_API size_t cb_list_n_sources(const cb_list *l, size_t i) {
    const cb_list_entry *e = entry(l, i);
    return e ? (size_t)__builtin_popcount(e->sources) : 0;
}
CB_API const char *cb_list_source(const cb_list *l, size_t i, size_t j) {
    const cb_list_entry *e = entry(l, i);
    for (int s = 0; e && s < CB_SRC_COUNT; s++)
        if ((e->sources & (1u << s)) && j-- == 0) return cb_recommend_source_name((cb_source)s);
    return NULL;
}
CB_API size_t cb_list_n_notes(const cb_list *l) { return l ? l->n_notes : 0; }
CB_API const char *cb_list_note(const cb_list *l, size_t j) { return l && j < l->n_notes ? l->notes[j] : NULL; }

static json_t *str_array(char *const *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(s[i]));
    return a;
}

/* A float as JSON, null when it is not a number (JSON has no NaN). */
static json_t *json_num(float x) { return isfinite(x) ? json_real((double)x) : json_null(); }

/* The one JSON style of every result the library prints: compact, ASCII,
 * keys in order, 7 significant digits. Takes doc (NULL: out of memory). */
int cb_rec_json_dump(json_t *doc, char **json_out, cb_error *err) {
    size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7);
    char *s = doc ? json_dumps(doc, flags) : NULL;
    json_decref(doc);
    if (!s) return cb_fail(err, CB_ENOMEM, "out of memory");
    *json_out = s;
    return CB_OK;
}

/* `cbrec serve` writes the same document without jansson (src/serve/listjson.c,
 * from the cb_list accessors): a field added here must be added there too
 * (test_serve compares the two answers field by field). */
CB_API int cb_list_to_json(const cb_list *l, char **json_out, cb_error *err) {
    if (!json_out) return cb_fail(err, CB_EINVAL, "cb_list_to_json: json_out is NULL");
    *json_out = NULL;
    if (!l) return cb_fail(err, CB_EINVAL, "cb_list_to_json: NULL list");
    json_t *items = json_array();
    for (size_t i = 0; items && i < l->n; i++) {
        const cb_list_entry *e = &l->items[i];
        const char *src[CB_SRC_COUNT];
        size_t ns = 0;
        for (int s = 0; s < CB_SRC_COUNT; s++)
            if (e->sources & (1u << s)) src[ns++] = cb_recommend_source_name((cb_source)s);
        json_t *jsrc = str_array((char *const *)src, ns);
        json_t *it = json_pack("{s:I,s:s,s:s,s:o,s:o,s:o,s:o}", "rank", (json_int_t)(i + 1), "item", e->id, "title",
                               e->title, "score", json_num(e->score), "rating", json_num(e->rating), "sources", jsrc,
                               "reasons", str_array(e->reasons, e->n_reasons));
        if (it && e->added) json_object_set_new(it, "new", json_true()); /* only on added items: others unchanged */
        json_array_append_new(items, it);
    }
    json_t *doc = items ? json_pack("{s:s,s:o,s:o}", "criterion", cb_list_criterion(l), "items", items, "notes",
                                    str_array(l->notes, l->n_notes))
                        : NULL;
    return cb_rec_json_dump(doc, json_out, err);
}
