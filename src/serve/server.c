/* server — `cbrec serve` as a whole: options and their defaults, the token
 * file, the model slot (a refcounted pointer: a request holds the model it
 * started on, a reload swaps in a fully loaded new one and frees the old
 * once its last request is through), reload on SIGHUP, and the main loop
 * waiting for signals while the workers (shards.c) serve. */
#include "serve/serve.h"

#include <cblas.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sv_options_default(sv_options *o) {
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8080";
    o->threads = 2;
    o->max_body = 1 << 20;
    o->max_url = 4096;
    o->max_n = 1000;
    o->max_inflight = 256;
    o->timeout_seconds = 10;
    o->precompute_answers = true;
    o->answers_max_bytes = (size_t)256 << 20;
}

/* ---- the model slot */

sv_model *sv_acquire(sv_server *s) {
    pthread_mutex_lock(&s->slot_mu);
    sv_model *m = s->model;
    m->refs++;
    pthread_mutex_unlock(&s->slot_mu);
    return m;
}

void sv_release(sv_server *s, sv_model *m) {
    pthread_mutex_lock(&s->slot_mu);
    int left = --m->refs;
    pthread_mutex_unlock(&s->slot_mu);
    if (!left) sv_model_free(m); /* the slot gave up its reference: nobody else can reach it */
}

int sv_reload(sv_server *s, char *msg, size_t msg_size) {
    pthread_mutex_lock(&s->reload_mu);
    sv_model *fresh = sv_model_load(&s->opt, msg, msg_size);
    if (fresh && sv_answers_build(s, fresh, msg, msg_size)) { /* before the swap: it arrives with its answers */
        sv_model_free(fresh);
        fresh = NULL;
    }
    if (!fresh) {
        __atomic_add_fetch(&s->reload_failures, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&s->reload_mu);
        return -1;
    }
    fresh->refs = 1; /* the slot's reference */
    pthread_mutex_lock(&s->slot_mu);
    sv_model *old = s->model;
    s->model = fresh;
    pthread_mutex_unlock(&s->slot_mu);
    __atomic_add_fetch(&s->reloads, 1, __ATOMIC_RELAXED);
    char note[512]; /* the store's export layout follows the model; a store that cannot take it is only told */
    if (s->events && sv_events_note_layout(s->events, cb_recommender_ratings_layout(fresh->rec), note, sizeof note))
        fprintf(stderr, "cbrec serve: %s\n", note);
    pthread_mutex_unlock(&s->reload_mu);
    /* The requests still on the old model finish on it; it is freed here, once
     * they have, not by the last of them (freeing a whole model in an event
     * loop would hold up that loop's other connections). */
    for (;;) {
        pthread_mutex_lock(&s->slot_mu);
        int refs = old->refs;
        pthread_mutex_unlock(&s->slot_mu);
        if (refs == 1) break;
        usleep(1000);
    }
    sv_release(s, old);
    return 0;
}

/* ---- start and stop */

/* The token file: one line of 16..size-2 characters without spaces, read
 * through the library's regular-file reader (a FIFO never blocks). */
static int read_token(const char *path, char *token, size_t size, char *msg, size_t msg_size) {
    cb_error err = {0};
    char *text = NULL;
    size_t n = 0;
    if (cb_file_read(path, size - 1, &text, &n, &err))
        return snprintf(msg, msg_size, "cannot read the token file: %s", err.msg), -1;
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) text[--n] = 0;
    int bad = n < 16 || n >= size || strpbrk(text, " \t\r\n");
    if (!bad) memcpy(token, text, n + 1);
    free(text);
    if (bad)
        return snprintf(msg, msg_size, "%s: the token must be one line of 16 to %zu characters without spaces", path,
                        size - 2), -1;
    return 0;
}

static const char *const *route_names(void) {
    static char names[64][64];
    static const char *ptrs[65];
    for (size_t i = 0; i < sv_n_routes && i < 64; i++) {
        snprintf(names[i], sizeof names[i], "%s %s", sv_routes[i].method, sv_routes[i].pattern);
        ptrs[i] = names[i];
    }
    ptrs[sv_n_routes] = "other";
    return ptrs;
}

/* Signals reach the main loop through a pipe: a handler (on whichever thread
 * the kernel picks: libraries such as OpenBLAS start threads of their own, so
 * blocking the signals in ours is not enough) writes the signal's number. */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    if (write(signal_pipe[1], &c, 1) < 0) { /* full: a reload is pending anyway */
    }
    errno = saved;
}

static int install_signals(void) {
    if (pipe(signal_pipe)) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int sigs[3] = {SIGHUP, SIGINT, SIGTERM};
    for (int i = 0; i < 3; i++)
        if (sigaction(sigs[i], &sa, NULL)) return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Wait for signals: SIGHUP reloads, SIGINT / SIGTERM stop. The wait is a
 * poll, the read only once a byte is there: ThreadSanitizer runs a handler
 * when the thread it interrupted is in a call it knows may block (poll is
 * one, read is not), and a signal that lands on this thread in read (which
 * SA_RESTART resumes) would wait there for ever (make test-tsan). The
 * signals that arrived are read at once: SIGHUPs sent during a reload make
 * one reload more, not one each (10 were 10 reloads in a row), and a SIGTERM
 * behind them stops the server without doing them first. */
static void signal_loop(sv_server *s) {
    for (;;) {
        unsigned char sig[512];
        struct pollfd pfd = {.fd = signal_pipe[0], .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        ssize_t n = read(signal_pipe[0], sig, sizeof sig);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || memchr(sig, SIGINT, (size_t)n) || memchr(sig, SIGTERM, (size_t)n)) return;
        char msg[600];
        if (sv_reload(s, msg, sizeof msg))
            fprintf(stderr, "cbrec serve: reload refused, the old model keeps serving: %s\n", msg);
        else if (!s->opt.quiet)
            fprintf(stderr, "cbrec serve: reloaded %s\n", s->opt.model_path);
    }
}

int sv_start(sv_server *s, const sv_options *o, unsigned *port, char *msg, size_t msg_size) {
    memset(s, 0, sizeof *s);
    s->opt = *o;
    /* The request threads are the parallelism: a request's one sgemv must not
     * fan out to OpenBLAS's own threads, which spin (sched_yield) between
     * calls and take the cores from the other requests (measured on
     * ml-latest-small, 1 request thread: 3.6k vs 0.6k recommends/s). */
    openblas_set_num_threads(1);
    pthread_mutex_init(&s->slot_mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    if (o->token_file && read_token(o->token_file, s->token, sizeof s->token, msg, msg_size)) return -1;
    if (!(s->model = sv_model_load(o, msg, msg_size))) return -1;
    s->model->refs = 1;
    if ((o->events_path && (sv_events_open(&s->events, o->events_path, msg, msg_size) ||
                            sv_events_note_layout(s->events, cb_recommender_ratings_layout(s->model->rec), msg, msg_size))) ||
        sv_answers_build(s, s->model, msg, msg_size)) { /* after the events: the answers apply them */
        sv_events_close(s->events);
        sv_model_free(s->model);
        return -1;
    }
    s->metrics = sv_metrics_create(sv_n_routes + 1, route_names());
    if (!s->metrics) snprintf(msg, msg_size, "out of memory");
    if (!s->metrics || sv_http_start(s, port, msg, msg_size)) {
        sv_events_close(s->events);
        sv_metrics_free(s->metrics);
        sv_model_free(s->model);
        return -1;
    }
    return 0;
}

void sv_stop(sv_server *s) {
    sv_http_stop(s);
    sv_events_close(s->events);
    sv_metrics_free(s->metrics);
    sv_model_free(s->model);
    s->events = NULL, s->metrics = NULL, s->model = NULL;
}

int sv_run(const sv_options *o) {
    static sv_server srv; /* one per process: signals are per process */
    sv_server *s = &srv;
    /* from the start: a SIGHUP while loading waits for the loop (then reloads) */
    if (signal_pipe[0] < 0 && install_signals()) return fprintf(stderr, "cbrec serve: cannot set up signals\n"), 1;
    char msg[600];
    unsigned port = 0;
    if (sv_start(s, o, &port, msg, sizeof msg)) return fprintf(stderr, "cbrec serve: %s\n", msg), 1;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(o->listen, ':') - o->listen), o->listen);
    /* The workers already answer: a POST /v1/reload may swap the slot (and
     * free this model) while the line is written, so it is read through a
     * reference like a request's. */
    sv_model *m = sv_acquire(s);
    printf("cbrec serve: listening on http://%s:%u/ (model %s, version %s, %zu items, %zu users; events %s; "
           "write endpoints %s)\n",
           host, port, o->model_path, m->version, m->n_items, m->n_users, o->events_path ? o->events_path : "off",
           s->token[0] ? "need the token" : "off");
    fflush(stdout);
    sv_release(s, m);
    signal_loop(s);
    sv_stop(s);
    if (!o->quiet) fprintf(stderr, "cbrec serve: stopped\n");
    return 0;
}
