/* http — the libmicrohttpd glue of cbrec serve: one access handler that
 * collects the request body within the limit, refuses what is too long or
 * too many (413, 414, 503), matches the route by the path's segments as
 * sent, each decoded after the split (404, 405), checks the token
 * of write and admin routes (401, 403, constant-time), holds a reference on
 * the model for the request, runs the handler and queues the reply. Every
 * answer is counted in the metrics. Errors are JSON:
 * {"error": {"status", "message"}}. Also the daemon of a shard (shards.c
 * runs them). */
#include "serve/serve.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct conn_ctx {
    double t0;
    char *body;
    size_t len, cap;
    int too_large;
    int overloaded;  /* more requests in flight than --max-inflight when it arrived */
    sv_reply rep;
    size_t route;    /* for the metrics */
    bool begun;      /* the access handler has seen the request */
    char raw_path[]; /* the path as sent, before any %HH decoding (on_uri) */
} conn_ctx;

double sv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- replies */

char *sv_utf8_clean(const char *s) {
    char *o = strdup(s);
    if (!o) return NULL;
    cb_utf8_repair(o);
    for (char *p = o; *p; p++) /* control characters too (a tab stays) */
        if ((unsigned char)*p < 0x20 && *p != '\t') *p = '?';
    return o;
}

int sv_reply_text(sv_reply *rep, int status, char *text, const char *content_type) {
    free(rep->body);
    rep->body = text;
    rep->static_body = NULL;
    rep->len = text ? strlen(text) : 0;
    rep->status = text ? status : 500;
    rep->content_type = content_type;
    if (!text) {
        static const char oom[] = "{\"error\": {\"status\": 500, \"message\": \"out of memory\"}}";
        rep->static_body = oom;
        rep->len = sizeof oom - 1;
        rep->content_type = "application/json";
    }
    return rep->status;
}

int sv_reply_json(sv_reply *rep, int status, void *doc) {
    char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(doc);
    return sv_reply_text(rep, status, s, "application/json");
}

int sv_reply_error(sv_reply *rep, int status, const char *fmt, ...) {
    char raw[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    char *msg = sv_utf8_clean(raw);
    json_t *doc = msg ? json_pack("{s:{s:i,s:s}}", "error", "status", status, "message", msg) : NULL;
    free(msg);
    return sv_reply_json(rep, status, doc);
}

int sv_status_of(int code) {
    switch (code) {
    case CB_ENOTFOUND: return 404;
    case CB_EINVAL:
    case CB_EPARSE: return 400;
    case CB_ENUMERIC: return 422; /* the request's profile or events make the model degenerate (cb_bundle_check_vector) */
    case CB_ENOMEM: return 503;
    default: return 500;
    }
}

const char *sv_query(const sv_request *rq, const char *name) {
    return MHD_lookup_connection_value((struct MHD_Connection *)rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool sv_query_uint(const sv_request *rq, sv_reply *rep, const char *name, unsigned def, unsigned lo, unsigned hi,
                   unsigned *v) {
    const char *s = sv_query(rq, name);
    *v = def;
    if (!s) return true;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-' || x < lo || x > hi) {
        sv_reply_error(rep, 400, "query parameter '%s' must be an integer in [%u, %u]", name, lo, hi);
        return false;
    }
    *v = (unsigned)x;
    return true;
}

bool sv_known_name(const char *name, const char *const *names, const char *what, sv_reply *rep) {
    size_t n = 0;
    while (names[n] && strcmp(names[n], name)) n++;
    if (names[n]) return true;
    while (names[n]) n++;
    char near[256] = "", all[512] = "";
    for (size_t k = 0; k < n; k++) snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", k ? ", " : "", names[k]);
    bool close = cb_config_near_names(name, names, n, NULL, near, sizeof near) > 0;
    sv_reply_error(rep, 400, "unknown %s '%.80s'%s%s%s; this endpoint takes %s%s", what, name, close ? " (did you mean " : "",
                   near, close ? "?)" : "", n ? "only: " : "none", all);
    return false;
}

bool sv_body_keys_known(json_t *body, const char *const *names, sv_reply *rep) {
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) if (!sv_known_name(key, names, "key", rep)) return false;
    return true;
}

typedef struct params_check {
    const char *const *names;
    sv_reply *rep;
    bool ok;
} params_check;

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    params_check *p = cls;
    p->ok = !*key || sv_known_name(key, p->names, "query parameter", p->rep); /* "?a=1&": an empty name, no parameter */
    if (p->ok && *key && !value) /* "?include_seen" alone: it was read as not given */
        p->ok = false, sv_reply_error(p->rep, 400, "query parameter '%s' has no value (give %s=VALUE)", key, key);
    return p->ok ? MHD_YES : MHD_NO;
}

/* ---- routing */

/* The path's segments, each %HH-decoded on its own (%00 kept, as unescape
 * keeps it): routing on the raw segments, so an id holding "/" (sent as %2F,
 * "team/a", a category path) is one segment, never more path. */
#define SV_MAX_SEGMENTS 8
typedef struct path_segments {
    const char *seg[SV_MAX_SEGMENTS];
    size_t n;
    bool too_many;
} path_segments;

static size_t unescape(void *cls, struct MHD_Connection *c, char *s);

/* Split raw (a copy, modified: its "/" become NULs) into decoded segments. */
static void split_path(char *raw, path_segments *p) {
    p->n = 0;
    p->too_many = false;
    for (char *s = raw;; s++) {
        char *slash = strchr(s, '/');
        if (slash) *slash = 0;
        if (p->n == SV_MAX_SEGMENTS) p->too_many = true;
        else unescape(NULL, NULL, s), p->seg[p->n++] = s;
        if (!slash) return;
        s = slash;
    }
}

/* Do the path's segments match pattern's ("/v1/users/{id}")? A "{id}"
 * segment matches one non-empty segment, set in *id. */
static bool route_match(const char *pattern, const path_segments *p, const char **id) {
    if (p->too_many) return false;
    size_t k = 0;
    for (const char *s = pattern;; s++, k++) {
        size_t len = strcspn(s, "/");
        if (k == p->n) return false;
        if (len == 4 && !strncmp(s, "{id}", 4)) {
            if (!p->seg[k][0]) return false;
            *id = p->seg[k];
        } else if (strlen(p->seg[k]) != len || strncmp(s, p->seg[k], len)) {
            return false;
        }
        s += len;
        if (!*s) return k + 1 == p->n;
    }
}

/* Constant-time comparison of the request's bearer token with the server's. */
static bool token_ok(const sv_server *s, struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    const char *given = h + 7;
    size_t n = strlen(s->token), m = strlen(given);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(s->token[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

static enum MHD_Result sum_args(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 2;
    return MHD_YES;
}

/* Route and answer one complete request into rep, by the path's segments;
 * returns the metrics route index. url (decoded) names a page or the path
 * in a 404. */
static size_t route(sv_server *s, struct MHD_Connection *c, const char *url, const char *method, conn_ctx *x,
                    sv_reply *rep, const path_segments *p) {
    size_t other = sv_n_routes;
    const char *m = !strcmp(method, "HEAD") ? "GET" : method;
    bool path_known = false;
    char allow[64] = "";
    for (size_t i = 0; i < sv_n_routes; i++) {
        const sv_route *r = &sv_routes[i];
        const char *id = NULL;
        if (!route_match(r->pattern, p, &id)) continue;
        path_known = true;
        if (strcmp(r->method, m)) {
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "", r->method);
            continue;
        }
        if (r->needs_token && !s->token[0])
            return sv_reply_error(rep, 403, "write and admin endpoints are off: start the server with --token-file"), i;
        if (r->needs_token && !token_ok(s, c))
            return sv_reply_error(rep, 401, "this endpoint needs the header 'Authorization: Bearer <token>'"), i;
        params_check check = {r->params, rep, true};
        if (r->params) MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_param, &check);
        if (!check.ok) return i;
        sv_request rq = {s, NULL, c, method, url, id, x->body ? x->body : "", x->len};
        if (r->needs_model) rq.model = sv_acquire(s);
        r->handler(&rq, rep);
        if (rq.model) sv_release(s, rq.model);
        return i;
    }
    if (path_known) {
        sv_reply_error(rep, 405, "method %s is not allowed here (allowed: %s)", method, allow);
        rep->allow = strstr(allow, "POST") ? (strstr(allow, "GET") ? "GET, HEAD, POST" : "POST") : "GET, HEAD";
        return other;
    }
    if (!strcmp(m, "GET")) {
        sv_request rq = {s, NULL, c, method, url, NULL, "", 0};
        sv_get_asset(&rq, rep);
        return other;
    }
    sv_reply_error(rep, 404, "no such endpoint: %s %s", method, url);
    return other;
}

/* Route and answer one complete request into rep; returns the metrics route
 * index. The raw path (x->raw_path, kept by on_uri) is split into segments
 * before any is decoded; an id is as long as the URL allows (a 600-byte URL
 * as an item id was "no such page" past a fixed 511 bytes). */
static size_t dispatch(sv_server *s, struct MHD_Connection *c, const char *url, const char *method, conn_ctx *x,
                       sv_reply *rep) {
    size_t other = sv_n_routes;
    size_t qlen = strlen(url);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, sum_args, &qlen);
    if (qlen > s->opt.max_url) return sv_reply_error(rep, 414, "the URL is longer than %zu bytes", s->opt.max_url), other;
    if (x->too_large) return sv_reply_error(rep, 413, "the body is larger than %zu bytes", s->opt.max_body), other;
    path_segments p;
    split_path(x->raw_path, &p);
    return route(s, c, url, method, x, rep, &p);
}

static enum MHD_Result queue(struct MHD_Connection *c, sv_reply *rep) {
    struct MHD_Response *r =
        rep->body ? MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE)
                  : MHD_create_response_from_buffer(rep->len, (void *)rep->static_body, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(rep->body);
        rep->body = NULL;
        return MHD_NO;
    }
    rep->body = NULL; /* the response owns it */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type ? rep->content_type : "application/json");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (rep->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->status == 503 && !rep->lasting) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    sv_server *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) return MHD_NO; /* on_uri found no memory */
    if (!x->begun) {
        x->begun = true;
        /* in flight from its headers to its answer (a body still arriving holds a place),
         * plus the requests admitted ahead of it since its shard was found ready
         * (answered by now, but it waited for them: shards.c) */
        unsigned inflight = __atomic_add_fetch(&s->inflight, 1, __ATOMIC_RELAXED) + sv_shard_ahead(s);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        bool no_body = (!cl || !strcmp(cl, "0")) &&
                       !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (inflight > s->opt.max_inflight) x->overloaded = 1;
        else if (cl && strtoull(cl, NULL, 10) > s->opt.max_body) x->too_large = 1;
        if (!x->overloaded && !x->too_large) {
            __atomic_add_fetch(&s->admitted, 1, __ATOMIC_RELAXED);
            return MHD_YES;
        }
        /* A request without a body is answered at the next call (at once: nothing to
         * read), which keeps the connection open; one with a body is answered now,
         * without reading it, and the connection then closes (a client that is told
         * 503 on every request would otherwise reconnect every time). */
        if (no_body) return MHD_YES;
    } else if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (x->too_large) return MHD_YES;
        if (x->len + n > s->opt.max_body) {
            x->too_large = 1;
            return MHD_YES;
        }
        if (x->len + n + 1 > x->cap) {
            size_t cap = (x->len + n + 1) * 2;
            char *g = realloc(x->body, cap);
            if (!g) return MHD_NO;
            x->body = g;
            x->cap = cap;
        }
        memcpy(x->body + x->len, upload_data, n);
        x->len += n;
        x->body[x->len] = 0;
        return MHD_YES;
    }
    if (x->overloaded) {
        x->route = sv_n_routes;
        sv_reply_error(&x->rep, 503, "overloaded: %u requests in flight; retry in a second", s->opt.max_inflight);
    } else {
        x->route = dispatch(s, c, url, method, x, &x->rep);
    }
    int status = x->rep.status;
    enum MHD_Result ret = queue(c, &x->rep);
    sv_metrics_observe(s->metrics, x->route, status, sv_now() - x->t0);
    return ret;
}

static sv_server *s_of(void *cls) { return cls; }

/* Every request's context, made when its request line is read: the URI is
 * still as sent, so its path is kept for routing (dispatch); libmicrohttpd
 * then passes the context to on_request as *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)cls, (void)c;
    size_t len = strcspn(uri, "?");
    conn_ctx *x = calloc(1, sizeof *x + len + 1);
    if (!x) return NULL;
    memcpy(x->raw_path, uri, len);
    x->t0 = sv_now();
    return x;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    conn_ctx *x = *con_cls;
    if (x) {
        if (x->begun) __atomic_sub_fetch(&s_of(cls)->inflight, 1, __ATOMIC_RELAXED);
        free(x->body);
        free(x->rep.body); /* an answer never sent (the client left) */
    }
    free(x);
    *con_cls = NULL;
}


static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)c, (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) sv_shard_closed(cls);
}

/* libmicrohttpd's %HH decoding of the path and the query, except that "%00"
 * stays as it is: the routes read ids and parameters as C strings, which a
 * decoded NUL would end ("user=1%00x" was user 1, "n=5%00" was 5); kept, it
 * is an id no one has (404) or a value refused (400). */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls, (void)c;
    char *out = s, *in = s;
    for (;;) {
        char *nul = strstr(in, "%00");
        if (nul) *nul = 0;
        size_t n = MHD_http_unescape(in);
        memmove(out, in, n);
        out += n;
        if (!nul) break;
        memcpy(out, "%00", 3); /* out + 3 <= nul + 3: nothing unread is overwritten */
        out += 3;
        in = nul + 3;
    }
    *out = 0;
    return (size_t)(out - s);
}

/* Each connection's buffer (SV_CONN_MEMORY) bounds a request's headers (431
 * beyond) and is zeroed by libmicrohttpd after every request: at 64 KiB that
 * zeroing was a quarter of a precomputed answer's CPU. */
#define SV_CONN_MEMORY ((size_t)16384)

struct MHD_Daemon *sv_http_daemon(sv_server *s, unsigned conn_limit, bool v6, struct sv_shard *shard) {
    unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_NO_LISTEN_SOCKET | (v6 ? MHD_USE_IPv6 : 0);
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, s->opt.timeout_seconds, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            SV_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, shard, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
                            NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_END);
}
