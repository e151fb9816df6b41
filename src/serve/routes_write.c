/* routes_write — the endpoints that change state or describe the server:
 * live events (durable before the answer), reload, the batch, health,
 * metrics, and the static assets (the page and openapi.json). */
#include "serve/serve.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ID_BYTES 256
#define MAX_BATCH_USERS 1000

static const char *const event_keys[] = {"item", "rating", "event", "time", NULL}, *const batch_keys[] = {"users", "n", NULL};

/* An id from a JSON string or integer into buf; NULL when it is neither. */
static const char *json_id(json_t *v, char *buf, size_t size) {
    if (json_is_integer(v)) return snprintf(buf, size, "%lld", (long long)json_integer_value(v)), buf;
    if (json_is_string(v) && json_string_length(v) && json_string_length(v) < size && !memchr(json_string_value(v), 0, json_string_length(v)))
        return json_string_value(v);
    return NULL;
}

static bool valid_user_id(const char *id) {
    char *c = sv_utf8_clean(id);
    /* commas are fine (the export quotes them, as training reads them) */
    bool ok = c && !strcmp(c, id) && *id && strlen(id) < MAX_ID_BYTES && !strpbrk(id, "\n\r\t");
    free(c);
    return ok;
}

/* An event's "time": integer unix seconds or a text cb_time_parse reads,
 * from 1970 on and below 2^40 (the events store's range). */
static bool event_time(const json_t *jt, int64_t *t) {
    int64_t v;
    if (json_is_integer(jt)) v = json_integer_value(jt);
    else if (!json_is_string(jt) || !cb_time_parse(json_string_value(jt), json_string_length(jt), &v)) return false;
    if (v < 0 || v >= (int64_t)1 << 40) return false;
    *t = v;
    return true;
}

int sv_post_events(sv_request *rq, sv_reply *rep) {
    sv_server *s = rq->srv;
    sv_model *m = rq->model;
    if (!s->events) { /* retrying will not help: no Retry-After */
        rep->lasting = true;
        return sv_reply_error(rep, 503, "live events are off: start the server with --events FILE.sqlite");
    }
    if (!valid_user_id(rq->id))
        return sv_reply_error(rep, 400, "the user id must be 1 to %d bytes of UTF-8 without control characters",
                              MAX_ID_BYTES - 1);
    json_error_t je;
    json_t *body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body) return sv_reply_error(rep, 400, "the body is not valid JSON: line %d, column %d: %s", je.line, je.column, je.text);
    char ibuf[MAX_ID_BYTES], msg[600];
    const char *item = json_id(json_object_get(body, "item"), ibuf, sizeof ibuf);
    json_t *jr = json_object_get(body, "rating"), *je_ = json_object_get(body, "event"), *jt = json_object_get(body, "time");
    double rating = NAN;
    int64_t t = (int64_t)time(NULL), seq = 0, found = item ? sv_model_item(m, item) : -1;
    if (!json_is_object(body)) sv_reply_error(rep, 400, "the body must be an object {\"item\": ID, \"rating\": 4.5}");
    else if (!sv_body_keys_known(body, event_keys, rep)) /* replied */;
    else if (!item) sv_reply_error(rep, 400, "\"item\" must be an item id (a string or an integer)");
    else if (found < 0) sv_reply_error(rep, 404, "unknown item '%s'", item);
    else if (!sv_model_trained_item(m, found))
        sv_reply_error(rep, 409, "item '%s' was added after training: the model takes live events only on the items "
                                 "it was trained on (retrain with it in the data)", item);
    else if (!jr == !je_) sv_reply_error(rep, 400, "give exactly one of \"rating\" (a number) and \"event\": \"click\"");
    else if (jr && !(json_is_number(jr) && json_number_value(jr) >= m->y_min && json_number_value(jr) <= m->y_max))
        sv_reply_error(rep, 400, "\"rating\" must be a number in [%g, %g]", m->y_min, m->y_max);
    else if (jr && m->binary && json_number_value(jr) != 0 && json_number_value(jr) != 1)
        sv_reply_error(rep, 400, "\"rating\" must be 0 or 1: the model learnt 0/1 labels (a 0.5 would be exported "
                                 "into data that refuses it)");
    else if (je_ && !(json_is_string(je_) && !strcmp(json_string_value(je_), "click")))
        sv_reply_error(rep, 400, "\"event\" must be \"click\"");
    else if (jt && !event_time(jt, &t))
        sv_reply_error(rep, 400, "\"time\" must be unix seconds (an integer, 0 or more) or an ISO 8601 text "
                                 "(\"2024-05-01T12:30:00Z\") from 1970 on");
    else {
        if (jr) rating = json_number_value(jr);
        if (sv_events_append(s->events, rq->id, item, rating, t, &seq, msg, sizeof msg))
            sv_reply_error(rep, 503, "the event was not stored: %s", msg);
        else
            sv_reply_json(rep, 200, json_pack("{s:b,s:I,s:s,s:s,s:I}", "stored", 1, "seq", (json_int_t)seq, "user", rq->id,
                                              "item", item, "live_events", (json_int_t)sv_events_count(s->events, rq->id)));
    }
    json_decref(body);
    return rep->status;
}

int sv_post_reload(sv_request *rq, sv_reply *rep) {
    char msg[600];
    if (sv_reload(rq->srv, msg, sizeof msg)) return sv_reply_error(rep, 500, "reload refused, the old model keeps serving: %s", msg);
    sv_model *m = sv_acquire(rq->srv);
    sv_reply_json(rep, 200, json_pack("{s:b,s:s,s:I}", "reloaded", 1, "model_version", m->version, "items",
                                      (json_int_t)m->n_items));
    sv_release(rq->srv, m);
    return rep->status;
}

static json_t *batch_row(const sv_model *m, const char *user, const int64_t *items, const float *scores, size_t n) {
    json_t *list = json_array();
    for (size_t j = 0; list && j < n && items[j] >= 0; j++)
        json_array_append_new(list, json_pack("{s:s,s:f}", "item", cb_recommender_item_id(m->rec, (size_t)items[j]),
                                              "score", (double)scores[j]));
    return list ? json_pack("{s:s,s:o}", "user", user, "items", list) : NULL;
}

/* The batch row of a user with live events: the same ranking as the batch
 * (the whole catalog by the ranking criterion, rated items out, no other
 * source, no diversity: checked equal to cb_recommender_recommend_batch on
 * ml-latest-small) through cb_recommender_recommend, which takes the live
 * ratings. 0, or a library error code with err set. */
static int live_row(const sv_model *m, const char *user, const char *live, size_t n, int64_t *items, float *scores,
                    cb_error *err) {
    cb_config *o = NULL;
    cb_list *l = NULL;
    char num[32], all[32];
    snprintf(num, sizeof num, "%zu", n);
    snprintf(all, sizeof all, "%zu", cb_recommender_item_count(m->rec));
    int rc = cb_config_create(&o, CB_CONFIG_RECOMMEND, err);
    if (!rc) rc = cb_config_set(o, "n", num, err) || cb_config_set(o, "recent", "0", err) ||
                  cb_config_set(o, "top-genres", "0", err) || cb_config_set(o, "group-items", "0", err) ||
                  cb_config_set(o, "embedding", all, err) ? err->code : 0;
    if (!rc) rc = cb_recommender_recommend(m->rec, user, live, o, &l, err);
    for (size_t j = 0; j < n; j++) {
        bool have = !rc && j < cb_list_size(l);
        items[j] = have ? (int64_t)cb_list_item(l, j) : -1;
        scores[j] = have ? cb_list_score(l, j) : -INFINITY;
    }
    cb_list_free(l);
    cb_config_free(o);
    return rc;
}

/* {"users": [...], "n": 10}: known users in one cb_recommender_recommend_batch;
 * users with live events (known or not) each through live_row. */
int sv_post_batch(sv_request *rq, sv_reply *rep) {
    sv_model *m = rq->model;
    json_error_t je;
    json_t *body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body) return sv_reply_error(rep, 400, "the body is not valid JSON: line %d, column %d: %s", je.line, je.column, je.text);
    json_t *users = json_object_get(body, "users"), *jn = json_object_get(body, "n");
    size_t n_users = json_array_size(users), n = jn ? (size_t)json_integer_value(jn) : 10, n_plain = 0;
    size_t *idx = NULL, *plain = NULL;
    int64_t *items = NULL, *plain_items = NULL;
    float *scores = NULL, *plain_scores = NULL;
    char **ids = NULL, **live = NULL, buf[MAX_ID_BYTES];
    if (!sv_body_keys_known(body, batch_keys, rep)) /* replied */;
    else if (!json_is_array(users) || !n_users || n_users > MAX_BATCH_USERS)
        sv_reply_error(rep, 400, "\"users\" must be a list of 1 to %d user ids", MAX_BATCH_USERS);
    else if (jn && (!json_is_integer(jn) || n < 1 || n > rq->srv->opt.max_n))
        sv_reply_error(rep, 400, "\"n\" must be an integer in [1, %u]", rq->srv->opt.max_n);
    else if (!(idx = calloc(n_users, sizeof *idx)) || !(plain = calloc(n_users, sizeof *plain)) ||
             !(ids = calloc(n_users, sizeof *ids)) || !(live = calloc(n_users, sizeof *live)) ||
             !(items = calloc(n_users * n, sizeof *items)) || !(scores = calloc(n_users * n, sizeof *scores)) ||
             !(plain_items = calloc(n_users * n, sizeof *plain_items)) ||
             !(plain_scores = calloc(n_users * n, sizeof *plain_scores)))
        sv_reply_error(rep, 503, "out of memory");
    for (size_t i = 0; plain_scores && !rep->status && i < n_users; i++) {
        const char *id = json_id(json_array_get(users, i), buf, sizeof buf);
        bool known = id && cb_recommender_find_user(m->rec, id, &idx[i], NULL) == CB_OK;
        if (!id) sv_reply_error(rep, 400, "\"users\"[%zu] is not a user id", i);
        else if (!(ids[i] = strdup(id))) sv_reply_error(rep, 503, "out of memory");
        else if (!(live[i] = sv_live_profile(rq, id)) && !known)
            sv_reply_error(rep, 404, "unknown user '%s' (no training ratings, no live events)", id);
        else if (!live[i]) plain[n_plain++] = idx[i];
    }
    cb_error err = {0};
    int rc = rep->status || !n_plain ? 0 : cb_recommender_recommend_batch(m->rec, plain, n_plain, n, NULL, plain_items, plain_scores, &err);
    for (size_t i = 0, p = 0; !rep->status && !rc && i < n_users; i++) {
        if (live[i]) rc = live_row(m, ids[i], live[i], n, items + i * n, scores + i * n, &err);
        else memcpy(items + i * n, plain_items + p * n, n * sizeof *items), memcpy(scores + i * n, plain_scores + p++ * n, n * sizeof *scores);
    }
    if (rc) sv_reply_error(rep, sv_status_of(rc), "%s", err.msg);
    json_t *results = rep->status ? NULL : json_array();
    for (size_t i = 0; results && i < n_users; i++)
        json_array_append_new(results, batch_row(m, live[i] ? ids[i] : cb_recommender_user_id(m->rec, idx[i]), items + i * n,
                                                 scores + i * n, n));
    if (!rep->status) sv_reply_json(rep, 200, results ? json_pack("{s:s,s:o}", "criterion", m->criterion, "results", results) : NULL);
    for (size_t i = 0; ids && live && i < n_users; i++) free(ids[i]), free(live[i]);
    free(idx), free(plain), free(ids), free(live);
    free(items), free(scores), free(plain_items), free(plain_scores);
    json_decref(body);
    return rep->status;
}

int sv_get_healthz(sv_request *rq, sv_reply *rep) {
    sv_model *m = rq->model;
    json_t *model = json_loads(m->describe_json, 0, NULL);
    /* loaded_at in whole seconds: the replies' 7-digit reals would round it by minutes */
    return sv_reply_json(rep, 200, model ? json_pack("{s:s,s:o,s:s,s:I,s:I,s:I}", "status", "ok", "model", model,
                                                     "model_version", m->version, "loaded_at",
                                                     (json_int_t)m->loaded_at, "reloads",
                                                     (json_int_t)__atomic_load_n(&rq->srv->reloads, __ATOMIC_RELAXED), "events",
                                                     (json_int_t)(rq->srv->events ? sv_events_total(rq->srv->events) : 0))
                                         : NULL);
}

int sv_get_metrics(sv_request *rq, sv_reply *rep) {
    sv_server *s = rq->srv;
    char *text = sv_metrics_text(s->metrics, rq->model->version, rq->model->loaded_at,
                                 __atomic_load_n(&s->reloads, __ATOMIC_RELAXED),
                                 __atomic_load_n(&s->reload_failures, __ATOMIC_RELAXED),
                                 s->events ? sv_events_total(s->events) : 0);
    char *answers = sv_answers_metrics(s, rq->model), *both = NULL;
    if (text && answers && asprintf(&both, "%s%s", text, answers) < 0) both = NULL;
    free(text);
    free(answers);
    return sv_reply_text(rep, 200, both, "text/plain; version=0.0.4; charset=utf-8");
}

int sv_get_asset(sv_request *rq, sv_reply *rep) {
    const char *path = !strcmp(rq->path, "/") ? "/index.html" : rq->path;
    for (size_t i = 0; i < sv_n_assets; i++)
        if (!strcmp(sv_assets[i].path, path)) {
            rep->status = 200;
            rep->static_body = sv_assets[i].data;
            rep->len = sv_assets[i].len;
            rep->content_type = sv_assets[i].content_type;
            return 200;
        }
    return sv_reply_error(rep, 404, "no such page or endpoint: %s", rq->path);
}
