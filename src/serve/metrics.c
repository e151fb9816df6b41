/* metrics — the Prometheus counters of the server: requests by route and
 * status, a latency histogram per route, the model version and reloads,
 * events stored. Counters are atomics: requests on any thread add to them. */
#include "serve/serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bucket_le[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
#define N_BUCKETS (sizeof bucket_le / sizeof bucket_le[0])
/* every status the server answers (a 409: a live event on an added item was "other") */
static const int statuses[] = {200, 400, 401, 403, 404, 405, 409, 413, 414, 422, 429, 500, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0])

typedef struct route_metrics {
    uint64_t by_status[N_STATUS + 1]; /* last: any other status */
    uint64_t buckets[N_BUCKETS];      /* non-cumulative here; summed when printed */
    uint64_t count;
    uint64_t sum_us;
} route_metrics;

struct sv_metrics {
    size_t n_routes;
    const char *const *names;
    route_metrics *routes;  /* [n_routes] */
};

sv_metrics *sv_metrics_create(size_t n_routes, const char *const *route_names) {
    sv_metrics *m = calloc(1, sizeof *m);
    if (m && !(m->routes = calloc(n_routes, sizeof *m->routes))) {
        free(m);
        return NULL;
    }
    if (m) {
        m->n_routes = n_routes;
        m->names = route_names;
    }
    return m;
}

void sv_metrics_free(sv_metrics *m) {
    if (!m) return;
    free(m->routes);
    free(m);
}

void sv_metrics_observe(sv_metrics *m, size_t route, int status, double seconds) {
    if (!m || route >= m->n_routes) return;
    route_metrics *r = &m->routes[route];
    size_t s = 0;
    while (s < N_STATUS && statuses[s] != status) s++;
    __atomic_add_fetch(&r->by_status[s], 1, __ATOMIC_RELAXED);
    size_t b = 0;
    while (b < N_BUCKETS && seconds > bucket_le[b]) b++;
    if (b < N_BUCKETS) __atomic_add_fetch(&r->buckets[b], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&r->count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&r->sum_us, (uint64_t)(seconds * 1e6), __ATOMIC_RELAXED);
}

typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->failed ? -1 : vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        char *g = realloc(t->s, t->cap * 2 + (size_t)n);
        if (!g) {
            t->failed = 1;
            return;
        }
        t->s = g;
        t->cap = t->cap * 2 + (size_t)n;
    }
}

static void put_route(text *t, const char *name, const route_metrics *r) {
    for (size_t s = 0; s <= N_STATUS; s++) {
        uint64_t v = __atomic_load_n(&r->by_status[s], __ATOMIC_RELAXED);
        if (!v) continue;
        if (s < N_STATUS) put(t, "cbrec_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", name, statuses[s], (unsigned long long)v);
        else put(t, "cbrec_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", name, (unsigned long long)v);
    }
}

static void put_histogram(text *t, const char *name, const route_metrics *r) {
    uint64_t count = __atomic_load_n(&r->count, __ATOMIC_RELAXED), cum = 0;
    if (!count) return;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cum += __atomic_load_n(&r->buckets[b], __ATOMIC_RELAXED);
        put(t, "cbrec_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", name, bucket_le[b],
            (unsigned long long)cum);
    }
    put(t, "cbrec_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
    put(t, "cbrec_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
        (double)__atomic_load_n(&r->sum_us, __ATOMIC_RELAXED) * 1e-6);
    put(t, "cbrec_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name, (unsigned long long)count);
}

char *sv_metrics_text(sv_metrics *m, const char *model_version, double loaded_at, uint64_t reloads,
                      uint64_t reload_failures, int64_t events) {
    text t = {malloc(8192), 0, 8192, 0};
    if (!t.s) return NULL;
    put(&t, "# HELP cbrec_http_requests_total HTTP requests answered, by route and status.\n");
    put(&t, "# TYPE cbrec_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_routes; i++) put_route(&t, m->names[i], &m->routes[i]);
    put(&t, "# HELP cbrec_http_request_duration_seconds Time from the request's arrival to its answer.\n");
    put(&t, "# TYPE cbrec_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->n_routes; i++) put_histogram(&t, m->names[i], &m->routes[i]);
    put(&t, "# HELP cbrec_model_info The model being served (its fingerprint).\n# TYPE cbrec_model_info gauge\n");
    put(&t, "cbrec_model_info{version=\"%s\"} 1\n", model_version);
    put(&t, "# HELP cbrec_model_loaded_timestamp_seconds When the model was loaded.\n");
    put(&t, "# TYPE cbrec_model_loaded_timestamp_seconds gauge\ncbrec_model_loaded_timestamp_seconds %.0f\n", loaded_at);
    put(&t, "# HELP cbrec_model_reloads_total Reloads, by result.\n# TYPE cbrec_model_reloads_total counter\n");
    put(&t, "cbrec_model_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)reloads);
    put(&t, "cbrec_model_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)reload_failures);
    put(&t, "# HELP cbrec_events_stored Live events in the event store.\n# TYPE cbrec_events_stored gauge\n");
    put(&t, "cbrec_events_stored %lld\n", (long long)events);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
