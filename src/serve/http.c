/* http — the libmicrohttpd glue of cbrec serve: one access handler that
 * collects the request body within the limit, refuses what is too long or
 * too many (413, 414, 503), hands the complete request to a worker
 * (queue.c; the connection is suspended until the answer is ready), which
 * matches the route (404, 405), checks the token of write and admin routes
 * (401, 403, constant-time), holds a reference on the model for the
 * request and runs the handler; libmicrohttpd's thread then sends the
 * reply. Every answer is counted in the metrics. Errors are JSON:
 * {"error": {"status", "message"}}. Also the listen address (IPv4 or [IPv6]). */
#include "serve/serve.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
} conn_ctx;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- replies */

char *sv_utf8_clean(const char *s) {
    size_t n = strlen(s);
    unsigned char *o = malloc(n + 1);
    if (!o) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, j = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len && i + len <= n && !(c < 0x20 && c != '\t');
        for (size_t k = 1; ok && k < len; k++) ok = (p[i + k] & 0xC0) == 0x80;
        if (ok && len == 2) ok = c >= 0xC2;
        if (ok && len == 3) ok = !(c == 0xE0 && p[i + 1] < 0xA0) && !(c == 0xED && p[i + 1] >= 0xA0);
        if (ok && len == 4) ok = c <= 0xF4 && !(c == 0xF0 && p[i + 1] < 0x90) && !(c == 0xF4 && p[i + 1] >= 0x90);
        if (!ok) {
            o[j++] = '?';
            i++;
            continue;
        }
        memcpy(o + j, p + i, len);
        i += len;
        j += len;
    }
    o[j] = 0;
    return (char *)o;
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

/* ---- routing */

/* Does path match pattern? A "{id}" segment matches one non-empty segment,
 * copied into id (id_size bytes). */
static bool route_match(const char *pattern, const char *path, char *id, size_t id_size) {
    while (*pattern && *path) {
        if (!strncmp(pattern, "{id}", 4)) {
            size_t n = strcspn(path, "/");
            if (!n || n >= id_size) return false;
            memcpy(id, path, n);
            id[n] = 0;
            pattern += 4;
            path += n;
            continue;
        }
        if (*pattern++ != *path++) return false;
    }
    return !*pattern && !*path;
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

/* Route and answer one complete request into rep; returns the metrics route index. */
static size_t dispatch(sv_server *s, struct MHD_Connection *c, const char *url, const char *method, conn_ctx *x,
                       sv_reply *rep) {
    size_t other = sv_n_routes;
    size_t qlen = strlen(url);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, sum_args, &qlen);
    if (qlen > s->opt.max_url) return sv_reply_error(rep, 414, "the URL is longer than %zu bytes", s->opt.max_url), other;
    if (x->too_large) return sv_reply_error(rep, 413, "the body is larger than %zu bytes", s->opt.max_body), other;
    const char *m = !strcmp(method, "HEAD") ? "GET" : method;
    char id[512];
    bool path_known = false;
    char allow[64] = "";
    for (size_t i = 0; i < sv_n_routes; i++) {
        const sv_route *r = &sv_routes[i];
        if (!route_match(r->pattern, url, id, sizeof id)) continue;
        path_known = true;
        if (strcmp(r->method, m)) {
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "", r->method);
            continue;
        }
        if (r->needs_token && !s->token[0])
            return sv_reply_error(rep, 403, "write and admin endpoints are off: start the server with --token-file"), i;
        if (r->needs_token && !token_ok(s, c))
            return sv_reply_error(rep, 401, "this endpoint needs the header 'Authorization: Bearer <token>'"), i;
        sv_request rq = {s, NULL, c, method, url, strstr(r->pattern, "{id}") ? id : NULL, x->body ? x->body : "", x->len};
        if (r->needs_model) rq.model = sv_acquire(s);
        r->handler(&rq, rep);
        if (rq.model) sv_release(s, rq.model);
        return i;
    }
    if (path_known) {
        sv_reply_error(rep, 405, "method %s is not allowed here (allowed: %s)", method, allow);
        rep->allow = strstr(allow, "POST") ? (strstr(allow, "GET") ? "GET, POST" : "POST") : "GET";
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
    if (rep->status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Requests this thread has read in its event loop's current round (one
 * epoll wake-up of the loop, loop_main): they were all waiting in the
 * socket buffers together, so the k-th of them had k - 1 ahead of it. */
static _Thread_local unsigned round_reads;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    sv_server *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) {
        if (!(x = calloc(1, sizeof *x))) return MHD_NO;
        x->t0 = now_seconds();
        *con_cls = x;
        /* in flight from its headers to its answer (a body still arriving holds a place),
         * plus the requests read before it in this round (answered by now, but they were
         * queued ahead of it) */
        unsigned inflight = __atomic_add_fetch(&s->inflight, 1, __ATOMIC_RELAXED) + round_reads++;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        bool no_body = (!cl || !strcmp(cl, "0")) &&
                       !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (inflight > s->opt.max_inflight) x->overloaded = 1;
        else if (cl && strtoull(cl, NULL, 10) > s->opt.max_body) x->too_large = 1;
        if (!x->overloaded && !x->too_large) return MHD_YES;
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
    sv_metrics_observe(s->metrics, x->route, status, now_seconds() - x->t0);
    return ret;
}

static sv_server *s_of(void *cls) { return cls; }

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    conn_ctx *x = *con_cls;
    if (x) {
        __atomic_sub_fetch(&s_of(cls)->inflight, 1, __ATOMIC_RELAXED);
        free(x->body);
        free(x->rep.body); /* an answer never sent (the client left) */
    }
    free(x);
    *con_cls = NULL;
}

/* HOST:PORT with an IPv4 address, or [IPv6]:PORT, into sa. */
static bool parse_listen(const char *listen, struct sockaddr_storage *sa, char *msg, size_t msg_size) {
    char host[256];
    const char *colon = strrchr(listen, ':'), *h = listen;
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    memset(sa, 0, sizeof *sa);
    bool v6 = listen[0] == '[';
    if (v6 && hlen >= 2 && listen[hlen - 1] == ']') h++, hlen -= 2;
    else if (v6) colon = NULL;
    if (!colon || hlen >= sizeof host) {
        snprintf(msg, msg_size, "--listen '%s': give HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080", listen);
        return false;
    }
    snprintf(host, sizeof host, "%.*s", (int)hlen, h);
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    struct sockaddr_in *a4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)sa;
    bool ok = colon[1] && !*end && port <= 65535 &&
              (v6 ? inet_pton(AF_INET6, host, &a6->sin6_addr) : inet_pton(AF_INET, host, &a4->sin_addr)) == 1;
    if (!ok) {
        snprintf(msg, msg_size, "--listen '%s': give an IPv4 address and a port (127.0.0.1:8080) or an IPv6 address "
                 "in brackets and a port ([::1]:8080)", listen);
        return false;
    }
    if (v6) a6->sin6_family = AF_INET6, a6->sin6_port = htons((uint16_t)port);
    else a4->sin_family = AF_INET, a4->sin_port = htons((uint16_t)port);
    return true;
}

/* One event loop per --threads, each its own libmicrohttpd daemon (external
 * polling, epoll, no listening socket of its own): a loop answers the
 * requests of its connections itself, in the order they became ready. No
 * hand-off between threads per request (the earlier design, one reading
 * thread and a queue of workers, cost a suspend and a resume per request:
 * two epoll_ctl, an eventfd write and read, a futex wake and two more thread
 * wake-ups). The loops share the listening socket (EPOLLEXCLUSIVE: one is
 * woken); the one that accepts a connection gives it to the loop with the
 * fewest (through that loop's inbox when it is another), so a burst of new
 * connections is spread evenly (left to libmicrohttpd, the first loop awake
 * accepted all 64 of wrk's). */
#define INBOX 64

struct sv_loop {
    sv_server *srv;
    struct MHD_Daemon *d;
    int epfd;                /* the daemon's epoll fd, the listening socket, the inbox, the stop eventfd */
    int inbox_fd;            /* eventfd: connections were put in the inbox */
    pthread_mutex_t inbox_mu;
    struct inbox_conn {
        int fd;
        struct sockaddr_storage addr;
        socklen_t len;
    } inbox[INBOX];
    size_t n_inbox;
    unsigned conns;          /* atomic: connections open on this loop (given to it, not yet closed) */
    pthread_t thread;
    bool running;
};

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)c, (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) __atomic_sub_fetch(&((struct sv_loop *)cls)->conns, 1, __ATOMIC_RELAXED);
}

/* Hand an accepted connection to the daemon of l (l's own thread only). */
static void add_connection(struct sv_loop *l, const struct inbox_conn *ic) {
    if (MHD_add_connection(l->d, ic->fd, (const struct sockaddr *)&ic->addr, ic->len) != MHD_YES)
        __atomic_sub_fetch(&l->conns, 1, __ATOMIC_RELAXED); /* refused (over the limit): MHD closed it */
}

/* Accept what is waiting on the listening socket; each connection goes to
 * the loop with the fewest (this one on a tie). */
static void accept_all(struct sv_loop *self) {
    sv_server *s = self->srv;
    for (int k = 0; k < 64; k++) {
        struct inbox_conn ic = {.len = sizeof ic.addr};
        ic.fd = accept4(s->listen_fd, (struct sockaddr *)&ic.addr, &ic.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (ic.fd < 0) return; /* EAGAIN: another loop took it, or none left */
        struct sv_loop *to = self;
        for (unsigned i = 0; i < s->n_loops; i++)
            if (__atomic_load_n(&s->loops[i].conns, __ATOMIC_RELAXED) < __atomic_load_n(&to->conns, __ATOMIC_RELAXED))
                to = &s->loops[i];
        __atomic_add_fetch(&to->conns, 1, __ATOMIC_RELAXED);
        bool queued = false;
        if (to != self) {
            pthread_mutex_lock(&to->inbox_mu);
            if ((queued = to->n_inbox < INBOX)) to->inbox[to->n_inbox++] = ic;
            pthread_mutex_unlock(&to->inbox_mu);
            uint64_t one = 1;
            if (queued && write(to->inbox_fd, &one, sizeof one) < 0) { /* the eventfd is already readable */
            }
        }
        if (!queued) {
            if (to != self) {
                __atomic_sub_fetch(&to->conns, 1, __ATOMIC_RELAXED);
                __atomic_add_fetch(&self->conns, 1, __ATOMIC_RELAXED);
            }
            add_connection(self, &ic);
        }
    }
}

/* The connections other loops gave this one. */
static void drain_inbox(struct sv_loop *l) {
    uint64_t n;
    if (read(l->inbox_fd, &n, sizeof n) < 0) { /* EAGAIN: drained already */
    }
    pthread_mutex_lock(&l->inbox_mu);
    struct inbox_conn got[INBOX];
    size_t k = l->n_inbox;
    memcpy(got, l->inbox, k * sizeof *got);
    l->n_inbox = 0;
    pthread_mutex_unlock(&l->inbox_mu);
    for (size_t i = 0; i < k; i++) add_connection(l, &got[i]);
}

static void *loop_main(void *arg) {
    struct sv_loop *l = arg;
    sv_server *s = l->srv;
    for (;;) {
        MHD_UNSIGNED_LONG_LONG to = 0;
        int timeout = MHD_get_timeout(l->d, &to) == MHD_YES ? (to > 60000 ? 60000 : (int)to) : -1;
        struct epoll_event ev[4];
        int n = epoll_wait(l->epfd, ev, 4, timeout);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.fd == s->stop_fd) return NULL;
            if (ev[i].data.fd == s->listen_fd) accept_all(l);
            if (ev[i].data.fd == l->inbox_fd) drain_inbox(l);
        }
        round_reads = 0;
        MHD_run(l->d);
    }
}

static void loops_free(sv_server *s) {
    for (unsigned i = 0; s->loops && i < s->n_loops; i++) {
        struct sv_loop *l = &s->loops[i];
        for (size_t k = 0; k < l->n_inbox; k++) close(l->inbox[k].fd);
        if (l->d) MHD_stop_daemon(l->d);
        if (l->epfd >= 0) close(l->epfd);
        if (l->inbox_fd >= 0) close(l->inbox_fd);
        pthread_mutex_destroy(&l->inbox_mu);
    }
    free(s->loops);
    if (s->stop_fd >= 0) close(s->stop_fd);
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->loops = NULL, s->n_loops = 0, s->stop_fd = s->listen_fd = -1;
}

/* The listening socket on sa (non-blocking: the loops share it); -1 + message. */
static int listen_on(const struct sockaddr_storage *sa, const char *listen_text, char *msg, size_t msg_size) {
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    socklen_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd >= 0 && sa->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (fd < 0 || bind(fd, (const struct sockaddr *)sa, len) || listen(fd, 512)) {
        if (fd >= 0) close(fd);
        snprintf(msg, msg_size, "cannot listen on %s (in use, or not an address of this machine?)", listen_text);
        return -1;
    }
    return fd;
}

static bool watch(int epfd, int fd, uint32_t events) {
    struct epoll_event ev = {.events = events};
    ev.data.fd = fd;
    return !epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* One loop's daemon and its epoll set; false when it fails. */
static bool loop_start(sv_server *s, struct sv_loop *l, unsigned conn_limit, bool v6) {
    l->srv = s;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->inbox_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epfd < 0 || l->inbox_fd < 0) return false;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_NO_LISTEN_SOCKET | (v6 ? MHD_USE_IPv6 : 0);
    l->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, s->opt.timeout_seconds, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)65536, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, l, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = l->d ? MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    return info && watch(l->epfd, info->epoll_fd, EPOLLIN) && watch(l->epfd, s->stop_fd, EPOLLIN) &&
           watch(l->epfd, l->inbox_fd, EPOLLIN) && watch(l->epfd, s->listen_fd, EPOLLIN | EPOLLEXCLUSIVE);
}

int sv_http_start(sv_server *s, unsigned *port, char *msg, size_t msg_size) {
    struct sockaddr_storage sa;
    if (!parse_listen(s->opt.listen, &sa, msg, msg_size)) return -1;
    if ((s->listen_fd = listen_on(&sa, s->opt.listen, msg, msg_size)) < 0) return -1;
    unsigned n = (unsigned)(s->opt.threads > 0 ? s->opt.threads : 1);
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->loops = calloc(n, sizeof *s->loops);
    for (unsigned i = 0; s->loops && i < n; i++) {
        s->loops[i].epfd = s->loops[i].inbox_fd = -1;
        pthread_mutex_init(&s->loops[i].inbox_mu, NULL);
    }
    bool ok = s->stop_fd >= 0 && s->loops;
    if (s->loops) s->n_loops = n;
    for (unsigned i = 0; ok && i < n; i++) ok = loop_start(s, &s->loops[i], (1000 + n - 1) / n, sa.ss_family == AF_INET6);
    for (unsigned i = 0; ok && i < n; i++)
        ok = !pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]) && (s->loops[i].running = true);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (ok && !getsockname(s->listen_fd, (struct sockaddr *)&bound, &blen))
        *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    if (!ok) {
        sv_http_stop(s);
        snprintf(msg, msg_size, "cannot start %u HTTP event loops", n);
        return -1;
    }
    return 0;
}

/* The loops finish the round they are in (every request read is answered),
 * then each daemon closes its connections. */
void sv_http_stop(sv_server *s) {
    if (s->stop_fd >= 0) {
        uint64_t one = 1;
        if (write(s->stop_fd, &one, sizeof one) < 0) { /* cannot fail on a fresh eventfd */
        }
    }
    for (unsigned i = 0; s->loops && i < s->n_loops; i++)
        if (s->loops[i].running) pthread_join(s->loops[i].thread, NULL);
    loops_free(s);
}
