/* routes — the route table and the read endpoints of cbrec serve: the
 * catalog (meta, item search, one item), users (a picker list, one user's
 * history), similar items, recommendations (GET for a known user, POST for a
 * known user or a new-user profile, with filters and diversity; a user's live
 * events are applied at once; a known user's default request is answered
 * from the model's precomputed answers, answers.c), and the 2-D map.
 * Shapes: the README's Serving, /openapi.json (openapi.json). */
#include "serve/serve.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The query parameters of each /v1 route (a POST's options are in its body). */
static const char *const none[] = {NULL}, *const items_params[] = {"q", "limit", NULL},
                         *const similar_params[] = {"item", "k", NULL}, *const users_params[] = {"limit", "offset", NULL},
                         *const map_params[] = {"user", "n", NULL};
/* The options of a recommendation, in rec_params' order, after what names the user. */
static const char *const recommend_params[] = {"user", "n", "include_seen", "exclude", "allow", "block", "diversity",
                                               "rank_by", "genre_cap", "neighbours", NULL},
                         *const recommend_keys[] = {"user", "profile", "n", "include_seen", "exclude", "allow", "block",
                                                    "diversity", "rank_by", "genre_cap", "neighbours", NULL};

const sv_route sv_routes[] = {
    {"GET", "/healthz", sv_get_healthz, false, true, NULL},
    {"GET", "/metrics", sv_get_metrics, false, true, NULL},
    {"GET", "/v1/meta", sv_get_meta, false, true, none},
    {"GET", "/v1/items", sv_get_items, false, true, items_params},
    {"GET", "/v1/items/{id}", sv_get_item, false, true, none},
    {"GET", "/v1/similar", sv_get_similar, false, true, similar_params},
    {"GET", "/v1/users", sv_get_users, false, true, users_params},
    {"GET", "/v1/users/{id}", sv_get_user, false, true, none},
    {"POST", "/v1/users/{id}/events", sv_post_events, true, true, none},
    {"GET", "/v1/recommend", sv_get_recommend, false, true, recommend_params},
    {"POST", "/v1/recommend", sv_post_recommend, false, true, none},
    {"POST", "/v1/recommend/batch", sv_post_batch, false, true, none},
    {"GET", "/v1/map", sv_get_map, false, true, map_params},
    {"POST", "/v1/admin/reload", sv_post_reload, true, false, none},
};
const size_t sv_n_routes = sizeof sv_routes / sizeof sv_routes[0];

/* A JSON string of s, with invalid UTF-8 replaced (data files may hold some). */
static json_t *jstr(const char *s) {
    json_t *j = json_string(s ? s : "");
    if (j) return j;
    char *c = sv_utf8_clean(s);
    j = c ? json_string(c) : NULL;
    free(c);
    return j;
}

/* {"item", "title", "genres", ["content",] "n_ratings"} (+ "mean_rating", "new" when full). */
static json_t *item_json(const sv_model *m, size_t item, bool full) {
    json_t *o = json_pack("{s:o,s:o}", "item", jstr(cb_recommender_item_id(m->rec, item)), "title",
                          jstr(cb_recommender_item_title(m->rec, item)));
    if (o && json_object_update_new(o, sv_item_content(m, item))) o = (json_decref(o), NULL);
    if (o) json_object_set_new(o, "n_ratings", json_integer((json_int_t)m->counts[item]));
    if (o && full) {
        json_object_set_new(o, "mean_rating", isnan(m->means[item]) ? json_null() : json_real(m->means[item]));
        json_object_set_new(o, "new", json_boolean(item >= m->n_items - m->n_added));
    }
    return o;
}

int sv_get_meta(sv_request *rq, sv_reply *rep) {
    sv_model *m = rq->model;
    json_t *vocab = json_loads(m->vocab_json, 0, NULL), *about = json_loads(m->describe_json, 0, NULL);
    json_t *doc = vocab && about ? json_pack("{s:I,s:I,s:I,s:s,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:s?,s:s}", "items",
                                             (json_int_t)m->n_items, "users", (json_int_t)m->n_users, "dim",
                                             (json_int_t)cb_recommender_dim(m->rec), "criterion", m->criterion,
                                             "prediction", json_object_get(about, "prediction"), "binary",
                                             json_object_get(about, "binary"), "weighted",
                                             json_object_get(about, "weighted"), "rating_scale",
                                             json_object_get(about, "rating_scale"), "genres",
                                             json_object_get(vocab, "genres"), "columns",
                                             json_object_get(vocab, "item_columns"), "user_columns",
                                             json_object_get(vocab, "user_columns"), "map_column", m->map_column,
                                             "model_version", m->version)
                                 : NULL;
    json_decref(vocab);
    json_decref(about);
    return sv_reply_json(rep, 200, doc);
}

int sv_get_items(sv_request *rq, sv_reply *rep) {
    sv_model *m = rq->model;
    unsigned limit;
    if (!sv_query_uint(rq, rep, "limit", 20, 1, rq->srv->opt.max_n, &limit)) return rep->status;
    const char *q = sv_query(rq, "q");
    char *folded = q && *q ? strdup(q) : NULL; /* "CAFÉ" finds "café", as the CLI's title lookup */
    if (folded) cb_utf8_fold(folded);
    json_t *items = q && *q && !folded ? NULL : json_array();
    for (size_t k = 0; items && k < m->n_items && json_array_size(items) < limit; k++) {
        size_t i = m->by_popularity[k];
        bool match = !folded || strstr(m->folded_titles[i], folded) || !strcmp(cb_recommender_item_id(m->rec, i), q);
        if (match && !cb_recommender_item_blocked(m->rec, i)) json_array_append_new(items, item_json(m, i, false));
    }
    free(folded);
    return sv_reply_json(rep, 200, items ? json_pack("{s:o}", "items", items) : NULL);
}

int sv_get_item(sv_request *rq, sv_reply *rep) {
    int64_t item = sv_model_item(rq->model, rq->id);
    if (item < 0) return sv_reply_error(rep, 404, "unknown item '%s'", rq->id);
    return sv_reply_json(rep, 200, item_json(rq->model, (size_t)item, true));
}

/* A library error as a reply. */
static int lib_error(sv_reply *rep, int code, const cb_error *err) {
    return sv_reply_error(rep, sv_status_of(code), "%s", err->msg[0] ? err->msg : cb_strstatus(code));
}

/* The list as the reply, "key": value in front (listjson.c); l is consumed. */
static int list_reply(const sv_model *m, sv_reply *rep, cb_list *l, const char *key, const char *value) {
    char *out = sv_list_json(m, l, key, value);
    cb_list_free(l);
    return sv_reply_text(rep, 200, out, "application/json");
}

int sv_get_similar(sv_request *rq, sv_reply *rep) {
    const char *id = sv_query(rq, "item");
    unsigned k;
    if (!id || !*id) return sv_reply_error(rep, 400, "give ?item=ID");
    if (!sv_query_uint(rq, rep, "k", 10, 1, rq->srv->opt.max_n, &k)) return rep->status;
    int64_t item = sv_model_item(rq->model, id);
    if (item < 0) return sv_reply_error(rep, 404, "unknown item '%s'", id);
    cb_error err = {0};
    cb_list *l = NULL;
    int rc = cb_recommender_similar(rq->model->rec, (size_t)item, k, &l, &err);
    return rc ? lib_error(rep, rc, &err) : list_reply(rq->model, rep, l, "item", id);
}

int sv_get_users(sv_request *rq, sv_reply *rep) {
    sv_model *m = rq->model;
    unsigned limit, offset;
    if (!sv_query_uint(rq, rep, "limit", 50, 1, rq->srv->opt.max_n, &limit) ||
        !sv_query_uint(rq, rep, "offset", 0, 0, 0x7fffffff, &offset))
        return rep->status;
    json_t *users = json_array();
    for (size_t u = offset; users && u < m->n_users && u < (size_t)offset + limit; u++)
        json_array_append_new(users, json_pack("{s:o,s:I}", "user", jstr(cb_recommender_user_id(m->rec, u)),
                                               "n_ratings", (json_int_t)cb_recommender_user_n_ratings(m->rec, u)));
    return sv_reply_json(rep, 200, users ? json_pack("{s:o,s:I}", "users", users, "total", (json_int_t)m->n_users) : NULL);
}

int sv_get_user(sv_request *rq, sv_reply *rep) {
    sv_model *m = rq->model;
    size_t u = 0, n_live = rq->srv->events ? sv_events_count(rq->srv->events, rq->id) : 0;
    bool known = cb_recommender_find_user(m->rec, rq->id, &u, NULL) == CB_OK;
    if (!known && !n_live) return sv_reply_error(rep, 404, "unknown user '%s' (no training ratings, no live events)", rq->id);
    size_t n = known ? cb_recommender_user_n_ratings(m->rec, u) : 0;
    json_t *hist = json_array();
    for (size_t j = 0; hist && j < n; j++) {
        size_t item = 0;
        float rating = 0;
        int64_t t = 0;
        if (cb_recommender_user_rating(m->rec, u, j, &item, &rating, &t, NULL)) break;
        json_array_append_new(hist, json_pack("{s:o,s:o,s:f,s:I}", "item", jstr(cb_recommender_item_id(m->rec, item)),
                                              "title", jstr(cb_recommender_item_title(m->rec, item)), "rating",
                                              (double)rating, "time", (json_int_t)t));
    }
    return sv_reply_json(rep, 200, hist ? json_pack("{s:o,s:b,s:o,s:I,s:I}", "user", jstr(rq->id), "known", known,
                                                    "history", hist, "n_ratings", (json_int_t)n, "live_events",
                                                    (json_int_t)n_live)
                                        : NULL);
}

/* ---- recommend */

/* An event's item a live profile can take (an added item's events are left
 * out: the library would refuse the whole profile, and so every list). */
static bool known_item(const char *item, void *ctx) { return sv_model_trained_item(ctx, sv_model_item(ctx, item)); }

static char *live_profile(const sv_server *s, const sv_model *m, const char *user) {
    return s->events && user ? sv_events_profile_json(s->events, user, m->y_max, known_item, (void *)m) : NULL;
}

char *sv_live_profile(const sv_request *rq, const char *user) { return live_profile(rq->srv, rq->model, user); }

/* Request options, from the query or the POST body, as RECOMMEND keys. */
typedef struct rec_params {
    const char *include_seen, *exclude, *allow, *block, *diversity, *rank_by, *genre_cap, *neighbours;
    unsigned n;
} rec_params;

static int set_key(cb_config *c, sv_reply *rep, const char *key, const char *value, const char *param) {
    cb_error err = {0};
    if (!value || !cb_config_set(c, key, value, &err)) return 0;
    return sv_reply_error(rep, 400, "parameter '%s': %s", param, err.msg), -1;
}

/* *out: a kind RECOMMEND config for p; false after an error reply. */
static bool make_opts(const rec_params *p, sv_reply *rep, cb_config **out) {
    cb_error err = {0};
    char n[32], lambda[32], *excl = NULL;
    *out = NULL;
    if (p->allow && !p->allow[strspn(p->allow, " \t")]) /* the library reads an empty list as none: every item */
        return sv_reply_error(rep, 400, "parameter 'allow': the list names no item (leave it out to allow every item)"), false;
    if (cb_config_create(out, CB_CONFIG_RECOMMEND, &err)) return lib_error(rep, err.code, &err), false;
    snprintf(n, sizeof n, "%u", p->n);
    if (p->block) { /* blocked items join the excluded ones */
        size_t len = strlen(p->block) + (p->exclude ? strlen(p->exclude) : 0) + 2;
        if ((excl = malloc(len))) snprintf(excl, len, "%s%s%s", p->exclude ? p->exclude : "", p->exclude ? "," : "", p->block);
    }
    int bad = set_key(*out, rep, "n", n, "n") || set_key(*out, rep, "include-seen", p->include_seen, "include_seen") ||
              set_key(*out, rep, "exclude", excl ? excl : p->exclude, "exclude") ||
              set_key(*out, rep, "allow", p->allow, "allow") || set_key(*out, rep, "rank-by", p->rank_by, "rank_by") ||
              set_key(*out, rep, "genre-cap", p->genre_cap, "genre_cap") ||
              set_key(*out, rep, "neighbours", p->neighbours, "neighbours");
    free(excl);
    if (!bad && p->diversity) { /* a number d in [0, 1]: MMR with relevance weight 1 - d; or none|mmr */
        char *end;
        double d = strtod(p->diversity, &end);
        if (*p->diversity && !*end) {
            if (!(d >= 0 && d <= 1)) bad = sv_reply_error(rep, 400, "parameter 'diversity': a number in [0, 1]");
            snprintf(lambda, sizeof lambda, "%g", 1 - d);
            if (!bad && d > 0) bad = set_key(*out, rep, "diversity", "mmr", "diversity") ||
                                     set_key(*out, rep, "mmr-lambda", lambda, "diversity");
        } else {
            bad = set_key(*out, rep, "diversity", p->diversity, "diversity");
        }
    }
    if (bad) {
        cb_config_free(*out);
        *out = NULL;
    }
    return !bad;
}

int sv_recommend_text(const sv_server *s, const sv_model *m, const char *user, const char *profile_json,
                      const cb_config *opts, char **text, cb_error *err) {
    char *live = live_profile(s, m, user);
    size_t u;
    *text = NULL;
    if (user && !live && cb_recommender_find_user(m->rec, user, &u, NULL) != CB_OK)
        return snprintf(err->msg, sizeof err->msg, "unknown user '%.80s%s' (no training ratings, no live events)", user,
                        strlen(user) > 80 ? "..." : ""), 404;
    cb_list *l = NULL;
    int rc = cb_recommender_recommend(m->rec, user, live ? live : profile_json, opts, &l, err);
    free(live);
    if (rc) {
        if (!err->msg[0]) snprintf(err->msg, sizeof err->msg, "%s", cb_strstatus(rc));
        /* the user was found above, so what the model does not know is in the
         * client's own input (a profile's attribute, genre or item; an id of
         * exclude, allow or block): bad input, not a missing resource */
        return rc == CB_ENOTFOUND ? 400 : sv_status_of(rc);
    }
    *text = user ? sv_list_json(m, l, "user", user) : sv_list_json(m, l, "profile", "new user");
    cb_list_free(l);
    return *text ? 0 : (snprintf(err->msg, sizeof err->msg, "out of memory"), 500);
}

/* sv_recommend_text as the reply. */
static int recommend_reply(sv_request *rq, sv_reply *rep, const char *user, const char *profile_json,
                           const cb_config *opts) {
    cb_error err = {0};
    char *text = NULL;
    int status = sv_recommend_text(rq->srv, rq->model, user, profile_json, opts, &text, &err);
    return status ? sv_reply_error(rep, status, "%s", err.msg) : sv_reply_text(rep, 200, text, "application/json");
}

cb_config *sv_recommend_default_opts(void) {
    rec_params p = {.n = SV_DEFAULT_N};
    sv_reply rep = {0};
    cb_config *opts = NULL;
    if (!make_opts(&p, &rep, &opts)) free(rep.body);
    return opts;
}

/* The last GET options each thread made, reused while requests ask for the
 * same (most ask for the defaults): comparing the parameters costs less
 * than making the config again. Keyed by the parameters' lengths and texts. */
typedef struct opts_cache {
    char key[512];
    cb_config *opts;
} opts_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static void cache_free(void *c) { cb_config_free(((opts_cache *)c)->opts), free(c); }
static void cache_init(void) {
    if (pthread_key_create(&cache_key, cache_free)) abort();
}

static opts_cache *thread_cache(void) {
    pthread_once(&cache_once, cache_init);
    opts_cache *c = pthread_getspecific(cache_key);
    if (!c && (c = calloc(1, sizeof *c)) && pthread_setspecific(cache_key, c)) free(c), c = NULL;
    return c;
}

/* The texts of p's options (NULL: absent) into v[8]. */
static void param_values(const rec_params *p, const char **v) {
    const char *all[8] = {p->include_seen, p->exclude, p->allow, p->block, p->diversity, p->rank_by, p->genre_cap, p->neighbours};
    memcpy(v, all, sizeof all);
}

/* p as a cache key; false when it does not fit. */
static bool params_key(const rec_params *p, char *key, size_t size) {
    const char *v[8];
    param_values(p, v);
    size_t off = (size_t)snprintf(key, size, "%u", p->n);
    for (int k = 0; k < 8 && off < size; k++)
        off += (size_t)(v[k] ? snprintf(key + off, size - off, "|%zu:%s", strlen(v[k]), v[k]) : snprintf(key + off, size - off, "|-"));
    return off < size;
}

int sv_get_recommend(sv_request *rq, sv_reply *rep) {
    rec_params p = {sv_query(rq, "include_seen"), sv_query(rq, "exclude"), sv_query(rq, "allow"), sv_query(rq, "block"),
                    sv_query(rq, "diversity"), sv_query(rq, "rank_by"), sv_query(rq, "genre_cap"),
                    sv_query(rq, "neighbours"), SV_DEFAULT_N};
    const char *user = sv_query(rq, "user");
    if (!user || !*user) return sv_reply_error(rep, 400, "give ?user=ID (or POST a profile)");
    const char **flags[2] = {&p.include_seen, &p.neighbours}; /* 1 and 0 as well as true and false */
    for (int k = 0; k < 2; k++) {
        if (*flags[k] && !strcmp(*flags[k], "1")) *flags[k] = "true";
        if (*flags[k] && !strcmp(*flags[k], "0")) *flags[k] = "false";
    }
    if (!sv_query_uint(rq, rep, "n", SV_DEFAULT_N, 1, rq->srv->opt.max_n, &p.n)) return rep->status;
    const char *v[8];
    param_values(&p, v);
    bool plain = p.n <= SV_DEFAULT_N; /* the default request, or fewer: precomputed (answers.c) */
    for (int k = 0; k < 8; k++) plain = plain && !v[k];
    sv_answer_ticket ticket = {SIZE_MAX, 0};
    if (plain && sv_answers_reply(rq, user, p.n, rep, &ticket)) return rep->status;
    opts_cache *c = thread_cache();
    char key[sizeof c->key];
    bool keyed = c && params_key(&p, key, sizeof key);
    cb_config *own = NULL;
    const cb_config *opts = keyed && c->opts && !strcmp(c->key, key) ? c->opts : NULL;
    if (!opts) {
        if (!make_opts(&p, rep, &own)) return rep->status;
        opts = own;
        if (keyed) { /* the cache owns it now */
            cb_config_free(c->opts);
            c->opts = own, own = NULL;
            memcpy(c->key, key, sizeof key);
        }
    }
    recommend_reply(rq, rep, user, NULL, opts);
    cb_config_free(own);
    if (plain) sv_answers_store(rq, &ticket, rep);
    return rep->status;
}

/* A JSON value as a RECOMMEND value: strings as they are, numbers, booleans,
 * lists of strings or integers joined by commas (malloc'd into *owned); NULL
 * when absent; *bad after an error reply. */
static const char *param_text(json_t *body, const char *key, char **owned, sv_reply *rep, bool *bad) {
    json_t *v = json_object_get(body, key);
    *owned = NULL;
    if (!v || json_is_null(v)) return NULL;
    if (json_is_string(v)) return json_string_value(v);
    char num[64];
    if (json_is_boolean(v) || json_is_number(v)) {
        if (json_is_boolean(v)) snprintf(num, sizeof num, "%s", json_is_true(v) ? "true" : "false");
        else if (json_is_integer(v)) snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        else snprintf(num, sizeof num, "%.17g", json_real_value(v));
        return *owned = strdup(num);
    }
    /* the list as the one CSV record the library's id lists are: an id holding a
     * comma, a quote, a line break or outer blanks in quotes ("a,b #1" was two ids) */
    size_t i, len = 1;
    json_t *x;
    json_array_foreach(v, i, x) len += (json_is_string(x) ? 2 * json_string_length(x) + 2 : 24) + 1;
    char *s = json_is_array(v) ? calloc(len, 1) : NULL, *end = s;
    json_array_foreach(v, i, x) {
        if (!s) break;
        if (!json_is_string(x) && !json_is_integer(x)) {
            free(s);
            s = NULL;
            break;
        }
        if (i) *end++ = ',';
        if (json_is_integer(x)) {
            end += snprintf(end, len - (size_t)(end - s), "%lld", (long long)json_integer_value(x));
            continue;
        }
        end += cb_id_list_field(end, json_string_value(x));
    }
    if (!s) {
        *bad = true;
        sv_reply_error(rep, 400, "\"%s\" must be a string, a number, a boolean or a list of item ids", key);
    }
    return *owned = s;
}

/* The user id of a body's "user": a string (the body's), or an integer
 * written into buf; NULL when absent. */
static const char *body_user(json_t *body, char *buf, size_t size, sv_reply *rep, bool *bad) {
    json_t *u = json_object_get(body, "user");
    if (!u || json_is_null(u)) return NULL;
    if (json_is_integer(u)) return snprintf(buf, size, "%lld", (long long)json_integer_value(u)), buf;
    if (json_is_string(u) && json_string_length(u) && strlen(json_string_value(u)) == json_string_length(u))
        return json_string_value(u); /* the body's own string, of any length ("\u0000" inside: refused) */
    *bad = true;
    sv_reply_error(rep, 400, "\"user\" must be a user id (a non-empty string without NUL, or an integer)");
    return NULL;
}

int sv_post_recommend(sv_request *rq, sv_reply *rep) {
    json_error_t je;
    json_t *body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body) return sv_reply_error(rep, 400, "the body is not valid JSON: line %d, column %d: %s", je.line, je.column, je.text);
    bool bad = !json_is_object(body);
    if (bad) sv_reply_error(rep, 400, "the body must be a JSON object {\"user\": ID} or {\"profile\": {...}}");
    else bad = !sv_body_keys_known(body, recommend_keys, rep);
    char ubuf[512], *owned[8] = {0};
    const char *user = bad ? NULL : body_user(body, ubuf, sizeof ubuf, rep, &bad);
    json_t *profile = json_object_get(body, "profile"), *jn = json_object_get(body, "n");
    if (!bad && !user == !profile)
        bad = sv_reply_error(rep, 400, "give exactly one of \"user\" and \"profile\"");
    if (!bad && profile && !json_is_object(profile))
        bad = sv_reply_error(rep, 400, "\"profile\" must be an object like {\"ratings\": {\"260\": 5}}");
    rec_params p = {0};
    p.n = SV_DEFAULT_N;
    if (!bad && jn && (!json_is_integer(jn) || json_integer_value(jn) < 1 || json_integer_value(jn) > rq->srv->opt.max_n))
        bad = sv_reply_error(rep, 400, "\"n\" must be an integer in [1, %u]", rq->srv->opt.max_n);
    else if (jn) p.n = (unsigned)json_integer_value(jn);
    const char *const *keys = recommend_keys + 3;
    const char **vals[8] = {&p.include_seen, &p.exclude, &p.allow, &p.block, &p.diversity, &p.rank_by, &p.genre_cap,
                            &p.neighbours};
    for (int k = 0; k < 8 && !bad; k++) *vals[k] = param_text(body, keys[k], &owned[k], rep, &bad);
    cb_config *opts = NULL;
    char *profile_text = !bad && profile ? json_dumps(profile, JSON_COMPACT) : NULL;
    if (!bad && make_opts(&p, rep, &opts)) recommend_reply(rq, rep, user, profile_text, opts);
    cb_config_free(opts);
    free(profile_text);
    for (int k = 0; k < 8; k++) free(owned[k]);
    json_decref(body);
    return rep->status;
}

/* ---- the map */

/* {"item", "x", "y", "title", "genres", "colour"}: colour, the item's first
 * value of the column that colours the map (m->map_column), or null. */
static json_t *point_json(const sv_model *m, size_t item) {
    json_t *content = sv_item_content(m, item), *genres = json_object_get(content, "genres");
    json_t *values = !m->map_column                      ? NULL
                     : !strcmp(m->map_column, "genres") ? genres
                                                         : json_object_get(json_object_get(content, "content"), m->map_column);
    json_t *o = json_pack("{s:o,s:f,s:f,s:o,s:O,s:O?}", "item", jstr(cb_recommender_item_id(m->rec, item)), "x",
                          (double)m->xy[2 * item], "y", (double)m->xy[2 * item + 1], "title",
                          jstr(cb_recommender_item_title(m->rec, item)), "genres", genres, "colour",
                          json_array_get(values, 0));
    json_decref(content);
    return o;
}

#define MAP_POINTS 3000

typedef struct map_doc {
    const sv_model *m;
    unsigned char *in; /* [n_items] 1: a point already */
    json_t *points, *highlight, *history;
} map_doc;

static void map_add(map_doc *d, size_t item, json_t *list) {
    if (list) json_array_append_new(list, jstr(cb_recommender_item_id(d->m->rec, item)));
    if (item < d->m->n_items && !d->in[item]++) json_array_append_new(d->points, point_json(d->m, item));
}

/* The user's history (training, then live events) and top-n (with its live events). */
static int map_user(sv_request *rq, map_doc *d, const char *user, unsigned n, sv_reply *rep) {
    const sv_model *m = d->m;
    size_t u = 0;
    bool known = cb_recommender_find_user(m->rec, user, &u, NULL) == CB_OK;
    char *live = sv_live_profile(rq, user);
    if (!known && !live) return sv_reply_error(rep, 404, "unknown user '%s' (no training ratings, no live events)", user);
    for (size_t j = 0; known && j < cb_recommender_user_n_ratings(m->rec, u); j++) {
        size_t item = 0;
        float y;
        if (!cb_recommender_user_rating(m->rec, u, j, &item, &y, NULL, NULL)) map_add(d, item, d->history);
    }
    json_t *lj = live ? json_loads(live, 0, NULL) : NULL;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(lj, "ratings"), key, v) {
        int64_t item = sv_model_item(m, key);
        if (item >= 0) map_add(d, (size_t)item, d->history);
    }
    json_decref(lj);
    cb_config *opts = NULL;
    char nbuf[32];
    cb_list *l = NULL;
    snprintf(nbuf, sizeof nbuf, "%u", n);
    if (n && !cb_config_create(&opts, CB_CONFIG_RECOMMEND, NULL) && !cb_config_set(opts, "n", nbuf, NULL) &&
        !cb_recommender_recommend(m->rec, user, live, opts, &l, NULL))
        for (size_t i = 0; i < cb_list_size(l); i++) map_add(d, cb_list_item(l, i), d->highlight);
    cb_list_free(l);
    cb_config_free(opts);
    free(live);
    return 0;
}

int sv_get_map(sv_request *rq, sv_reply *rep) {
    sv_model *m = rq->model;
    const char *user = sv_query(rq, "user");
    unsigned n;
    if (!sv_query_uint(rq, rep, "n", 10, 0, rq->srv->opt.max_n, &n)) return rep->status;
    map_doc d = {m, calloc(m->n_items + 1, 1), json_array(), json_array(), json_array()};
    int status = d.in && d.points && d.highlight && d.history ? 0 : sv_reply_error(rep, 503, "out of memory");
    for (size_t k = 0; !status && k < m->n_items && k < MAP_POINTS; k++) /* blocked items: no point of their own */
        if (!cb_recommender_item_blocked(m->rec, m->by_popularity[k])) map_add(&d, m->by_popularity[k], NULL);
    if (!status && user && *user) status = map_user(rq, &d, user, n, rep);
    free(d.in);
    if (!status)
        return sv_reply_json(rep, 200, json_pack("{s:o,s:o,s:o}", "points", d.points, "highlight", d.highlight, "history",
                                                 d.history));
    json_decref(d.points);
    json_decref(d.highlight);
    json_decref(d.history);
    return rep->status;
}
