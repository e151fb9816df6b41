/* answers — a loaded model's precomputed answers: for every user the model
 * knows, the body of the default request GET /v1/recommend?user=ID (n =
 * SV_DEFAULT_N, no other parameter, the user's live events applied), exactly
 * the text routes.c would write (it is made by the same sv_recommend_text),
 * computed on --threads threads when the model is loaded, before it serves
 * (at a reload, before the swap: the new model arrives with its answers).
 * A default request for a known user is then a copy of its text, and one
 * with a smaller n and no other parameter a copy of its first n items and
 * its notes (a full list's only); any other parameter, a larger n, a POST, a
 * user the model does not know go the usual way.
 * Why not cb_recommender_recommend_batch: it ranks the whole catalog by the
 * score alone and returns items and scores, while the answer is the
 * retrieval sources' candidates with sources and reasons; the batch call
 * cannot give that text.
 * Live events: an entry holds the user's live-event count when it was
 * computed (read before the profile). An event raises the count, so the
 * entry no longer matches: the next request computes the answer and stores
 * it with the new count. This holds across a reload too (an event during the
 * new model's build leaves its entry unmatched). Counts only grow.
 * Threads and generations: the answers belong to their sv_model (freed with
 * it); a request uses those of the model it acquired. Entries are guarded by
 * striped mutexes (held for a copy); a reply gets its own copy, because the
 * model may be freed before the reply is sent.
 * Memory: the bodies (5.5 KB per user for n = 10 on ml-latest-small: the
 * reasons are most of it; 3.2 MiB for its 610 users, built in ~0.2 s on 2
 * threads) and 72 bytes per user (the entry and its offsets), at most opt.answers_max_bytes (256 MiB:
 * ~48,000 such users); a reload holds the old and the new answers until the
 * old model's last request is through. Past the cap the build stops
 * (users left are computed per request, stderr says so) and nothing more is
 * stored. */
#include "serve/serve.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64

typedef struct answer {
    char *body; /* NULL: none */
    size_t len, events;
    uint32_t item_end[SV_DEFAULT_N]; /* where the text of item i ends */
    uint32_t notes_at;               /* where "],\"notes\":[" starts */
    uint32_t n_items;                /* items in the list (SV_DEFAULT_N: a prefix answers a smaller n) */
} answer;

/* e's offsets in its body (sv_list_json's text: an unescaped quote only
 * ever stands for the structure, so these marks cannot occur in a string). */
static void find_items(answer *e) {
    const char *items = strstr(e->body, "\"items\":[{\"rank\":"), *notes = strstr(e->body, "],\"notes\":[");
    e->n_items = 0;
    if (!items || !notes || e->len > UINT32_MAX) return;
    for (const char *p = items; (p = strstr(p + 1, ",{\"rank\":")) && p < notes && e->n_items < SV_DEFAULT_N;)
        e->item_end[e->n_items++] = (uint32_t)(p - e->body);
    if (e->n_items < SV_DEFAULT_N) e->item_end[e->n_items++] = (uint32_t)(notes - e->body);
    e->notes_at = (uint32_t)(notes - e->body);
}

/* The answer for n items (malloc'd): the whole body, or for n below a full
 * list's, its first n items and the notes (the list for n is the same
 * ranking cut at n, the same reasons and notes: test_serve compares them for
 * every user and n). NULL: out of memory, or a short list (its note says
 * how many it asked for). */
static char *answer_text(const answer *e, unsigned n) {
    bool whole = n >= SV_DEFAULT_N;
    if (!whole && e->n_items < SV_DEFAULT_N) return NULL;
    size_t head = whole ? e->len : e->item_end[n - 1], tail = whole ? 0 : e->len - e->notes_at;
    char *t = malloc(head + tail + 1);
    if (!t) return NULL;
    memcpy(t, e->body, head);
    memcpy(t + head, e->body + e->notes_at, tail);
    t[head + tail] = 0;
    return t;
}

struct sv_answers {
    size_t n_users, max_bytes;
    answer *a;             /* [n_users] */
    atomic_size_t bytes;   /* the bodies and the array */
    atomic_size_t stored;  /* entries with a body */
    pthread_mutex_t mu[STRIPES];
};

void sv_answers_free(sv_answers *a) {
    if (!a) return;
    for (size_t u = 0; u < a->n_users; u++) free(a->a[u].body);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&a->mu[i]);
    free(a->a);
    free(a);
}

static sv_answers *create(size_t n_users, size_t max_bytes) {
    sv_answers *a = calloc(1, sizeof *a);
    if (!a || !(a->a = calloc(n_users + 1, sizeof *a->a))) return free(a), NULL;
    a->n_users = n_users, a->max_bytes = max_bytes;
    atomic_init(&a->bytes, n_users * sizeof *a->a);
    atomic_init(&a->stored, 0);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&a->mu[i], NULL);
    return a;
}

/* The user's live-event count: what its entry is valid for. */
static size_t events_of(const sv_server *s, const char *user) { return s->events ? sv_events_count(s->events, user) : 0; }

/* Store body (taken: freed when not kept) as user's answer for `events`
 * events; false when the memory cap would be passed. An entry for more
 * events (computed later) is kept. */
static bool put(sv_answers *a, size_t user, size_t events, char *body, size_t len) {
    if (atomic_fetch_add(&a->bytes, len) + len > a->max_bytes) {
        atomic_fetch_sub(&a->bytes, len);
        free(body);
        return false;
    }
    answer *e = &a->a[user];
    pthread_mutex_lock(&a->mu[user % STRIPES]);
    bool keep_old = e->body && e->events > events;
    char *old = keep_old ? body : e->body;
    size_t old_len = keep_old ? len : e->len;
    if (!keep_old) {
        *e = (answer){.body = body, .len = len, .events = events};
        find_items(e);
    }
    pthread_mutex_unlock(&a->mu[user % STRIPES]);
    if (!old) atomic_fetch_add(&a->stored, 1);
    atomic_fetch_sub(&a->bytes, old ? old_len : 0);
    free(old);
    return true;
}

/* ---- the build */

typedef struct build {
    sv_server *s;
    sv_model *m;
    cb_config *opts;
    atomic_size_t next;      /* the next user to do */
    atomic_int stop;         /* 1: the cap is reached; 2: a user failed */
    pthread_mutex_t mu;      /* guards err */
    cb_error err;
    size_t failed_user;
} build;

static void *build_worker(void *arg) {
    build *b = arg;
    const cb_recommender *rec = b->m->rec;
    for (size_t u; !atomic_load(&b->stop) && (u = atomic_fetch_add(&b->next, 1)) < b->m->n_users;) {
        const char *id = cb_recommender_user_id(rec, u);
        size_t events = events_of(b->s, id); /* before the profile is read */
        char *text = NULL;
        cb_error err = {0};
        if (sv_recommend_text(b->s, b->m, id, NULL, b->opts, &text, &err)) {
            pthread_mutex_lock(&b->mu);
            if (atomic_exchange(&b->stop, 2) != 2) b->err = err, b->failed_user = u;
            pthread_mutex_unlock(&b->mu);
        } else if (!put(b->m->answers, u, events, text, strlen(text))) {
            int none = 0;
            atomic_compare_exchange_strong(&b->stop, &none, 1);
        }
    }
    return NULL;
}

/* Run build_worker on `threads` threads (this one included). */
static void run_threads(build *b, int threads) {
    pthread_t t[64];
    int started = 0;
    for (; started < threads - 1 && started < 64; started++)
        if (pthread_create(&t[started], NULL, build_worker, b)) break;
    build_worker(b);
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
}

int sv_answers_build(sv_server *s, sv_model *m, char *msg, size_t msg_size) {
    const sv_options *o = &s->opt;
    if (!o->precompute_answers || !m->n_users) return 0;
    double t0 = sv_now();
    if (m->n_users * sizeof(answer) > o->answers_max_bytes) {
        fprintf(stderr, "cbrec serve: answers not precomputed: %zu users need more than --answers-memory %zu MiB\n",
                m->n_users, o->answers_max_bytes >> 20);
        return 0;
    }
    build b = {.s = s, .m = m, .opts = sv_recommend_default_opts()};
    m->answers = b.opts ? create(m->n_users, o->answers_max_bytes) : NULL;
    if (!m->answers) {
        cb_config_free(b.opts);
        return snprintf(msg, msg_size, "out of memory for the precomputed answers"), -1;
    }
    atomic_init(&b.next, 0);
    atomic_init(&b.stop, 0);
    pthread_mutex_init(&b.mu, NULL);
    run_threads(&b, o->threads < 1 ? 1 : o->threads);
    pthread_mutex_destroy(&b.mu);
    cb_config_free(b.opts);
    size_t stored = atomic_load(&m->answers->stored), bytes = atomic_load(&m->answers->bytes);
    if (atomic_load(&b.stop) == 2) {
        snprintf(msg, msg_size, "precomputing the answers: user %s: %s", cb_recommender_user_id(m->rec, b.failed_user),
                 b.err.msg);
        sv_answers_free(m->answers);
        m->answers = NULL;
        return -1;
    }
    if (stored < m->n_users)
        fprintf(stderr, "cbrec serve: answers precomputed for %zu of %zu users only (--answers-memory %zu MiB reached); "
                        "the others are computed per request\n", stored, m->n_users, o->answers_max_bytes >> 20);
    else if (!o->quiet)
        fprintf(stderr, "cbrec serve: answers precomputed for %zu users (%.1f MiB, %.0f ms)\n", stored,
                (double)bytes / (1 << 20), (sv_now() - t0) * 1e3);
    return 0;
}

/* ---- requests */

bool sv_answers_reply(sv_request *rq, const char *user, unsigned n, sv_reply *rep, sv_answer_ticket *t) {
    sv_answers *a = rq->model->answers;
    const cb_recommender *rec = rq->model->rec;
    size_t u;
    t->user = SIZE_MAX;
    /* the model's own spelling only: the answer's text holds the id as asked */
    if (!a || cb_recommender_find_user(rec, user, &u, NULL) != CB_OK || strcmp(cb_recommender_user_id(rec, u), user))
        return false;
    size_t events = events_of(rq->srv, user);
    if (n == SV_DEFAULT_N) *t = (sv_answer_ticket){u, events}; /* the whole answer is stored, never a cut one */
    answer *e = &a->a[u];
    pthread_mutex_lock(&a->mu[u % STRIPES]);
    char *copy = e->body && e->events == events ? answer_text(e, n) : NULL;
    pthread_mutex_unlock(&a->mu[u % STRIPES]);
    __atomic_add_fetch(copy ? &rq->srv->answer_hits : &rq->srv->answer_misses, 1, __ATOMIC_RELAXED);
    if (copy) sv_reply_text(rep, 200, copy, "application/json");
    return copy != NULL;
}

void sv_answers_store(sv_request *rq, const sv_answer_ticket *t, const sv_reply *rep) {
    sv_answers *a = rq->model->answers;
    if (!a || t->user == SIZE_MAX || rep->status != 200 || !rep->body) return;
    char *copy = malloc(rep->len + 1);
    if (copy) memcpy(copy, rep->body, rep->len + 1);
    if (copy) put(a, t->user, t->events, copy, rep->len);
}

char *sv_answers_metrics(const sv_server *s, const sv_model *m) {
    sv_answers *a = m->answers;
    char *text = NULL;
    int n = asprintf(&text,
                     "# HELP cbrec_answers_total GET /v1/recommend requests of known users without parameters "
                     "but n <= 10: from the precomputed answers (hit) or computed (miss)\n"
                     "# TYPE cbrec_answers_total counter\n"
                     "cbrec_answers_total{result=\"hit\"} %llu\n"
                     "cbrec_answers_total{result=\"miss\"} %llu\n"
                     "# HELP cbrec_answers_users users of the current model with a precomputed answer\n"
                     "# TYPE cbrec_answers_users gauge\n"
                     "cbrec_answers_users %zu\n"
                     "# HELP cbrec_answers_bytes memory of the current model's precomputed answers\n"
                     "# TYPE cbrec_answers_bytes gauge\n"
                     "cbrec_answers_bytes %zu\n",
                     (unsigned long long)__atomic_load_n(&s->answer_hits, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&s->answer_misses, __ATOMIC_RELAXED),
                     a ? atomic_load(&a->stored) : 0, a ? atomic_load(&a->bytes) : 0);
    return n < 0 ? NULL : text;
}
