/* shards — who runs cbrec serve's connections: the listening socket, 8
 * libmicrohttpd daemons ("shards", http.c makes them) per --threads worker,
 * and one shared queue of ready shards that any worker takes from. A worker
 * holds a shard while it answers that shard's ready requests, so a slow
 * request holds up only the few connections of its shard: the other workers
 * take every other ready shard (with one event loop per thread, a slow
 * request held up all the connections of its thread). Also the listen
 * address (IPv4 or [IPv6]).
 *
 * The queue: every shard's epoll set (its daemon's epoll fd, an inbox of new
 * connections, a timer for idle timeouts) is in one shared epoll set,
 * EPOLLONESHOT, so a ready shard is reported once and nobody else touches it
 * until its holder re-arms it. A worker with nothing to run either polls that
 * set (one at a time) and queues what is ready, keeping one shard for itself,
 * or waits for the queue. Admission (http.c, sv_shard_ahead): the requests
 * admitted since a shard was queued were ahead of the requests it holds, but
 * no more than the connections of the shards queued or running before it (a
 * worker that lost its core while the others went on was overtaken, not
 * queued behind). */
#include "serve/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SHARDS_PER_WORKER 8
#define INBOX 64

typedef struct inbox_conn {
    int fd;
    struct sockaddr_storage addr;
    socklen_t len;
} inbox_conn;

struct sv_shard {
    struct MHD_Daemon *d;
    int epfd;                /* the daemon's epoll fd, the inbox, the timer */
    int inbox_fd;            /* eventfd: connections were put in the inbox */
    int timer_fd;            /* the daemon's next idle timeout */
    bool timer_armed;
    double timer_due;        /* monotonic seconds, when armed */
    pthread_mutex_t inbox_mu;
    inbox_conn inbox[INBOX];
    size_t n_inbox;
    unsigned conns;          /* atomic: connections given to it, not yet closed */
    uint64_t ready_at;       /* the server's admitted count when it was queued */
    unsigned ahead_cap;      /* the connections of the shards queued or running before it, and its own */
    unsigned queued_conns;   /* its connections when queued */
};

struct sv_pool {
    sv_server *srv;
    int epfd;                /* every shard's epfd, the listening socket, the stop eventfd */
    int listen_fd, stop_fd;
    int spare_fd;            /* /dev/null held open: given up to accept (and close) a connection
                                when the process is out of file descriptors (shed_one) */
    struct sv_shard *shards;
    unsigned n_shards;
    pthread_t *workers;
    unsigned n_workers, n_started;
    pthread_mutex_t mu;      /* guards what follows */
    pthread_cond_t cv;       /* the queue has a shard, nobody polls, or stopping */
    struct sv_shard **ready; /* [n_shards] a ring */
    unsigned head, n_ready;
    unsigned busy_conns;     /* the connections of the shards queued or running */
    bool polling, stopping;
};

/* The shard this thread is running (for sv_shard_ahead). */
static _Thread_local struct sv_shard *running;

unsigned sv_shard_ahead(const sv_server *s) {
    if (!running) return 0;
    uint64_t since = __atomic_load_n(&s->admitted, __ATOMIC_RELAXED) - running->ready_at;
    return since < running->ahead_cap ? (unsigned)since : running->ahead_cap;
}

void sv_shard_closed(struct sv_shard *sh) { __atomic_sub_fetch(&sh->conns, 1, __ATOMIC_RELAXED); }

static bool watch(int epfd, int op, int fd, uint32_t events, void *ptr) {
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    return !epoll_ctl(epfd, op, fd, &ev);
}

/* ---- running a shard (its holder only) */

/* Arm the timer for the daemon's next timeout when it is not armed (a
 * connection's timeout only moves later with activity), or now when the
 * daemon has work left over (timeout 0). */
static void arm_timer(struct sv_shard *sh) {
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(sh->d, &ms) != MHD_YES || (sh->timer_armed && ms)) return;
    struct itimerspec t = {.it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L}};
    if (!ms) t.it_value.tv_nsec = 1;
    double due = sv_now() + 1e-3 * (double)ms; /* not after the timer fires */
    if (!timerfd_settime(sh->timer_fd, 0, &t, NULL)) sh->timer_armed = true, sh->timer_due = due;
}

/* The timer and the inbox are read only when they have something (no system
 * call per run otherwise); a fired one left unread keeps the shard ready. */
static void run_shard(struct sv_shard *sh) {
    uint64_t n;
    if (sh->timer_armed && sv_now() >= sh->timer_due && read(sh->timer_fd, &n, sizeof n) == sizeof n)
        sh->timer_armed = false;
    if (__atomic_load_n(&sh->n_inbox, __ATOMIC_RELAXED) && read(sh->inbox_fd, &n, sizeof n) == sizeof n) {
        pthread_mutex_lock(&sh->inbox_mu);
        inbox_conn got[INBOX];
        size_t k = sh->n_inbox;
        memcpy(got, sh->inbox, k * sizeof *got);
        __atomic_store_n(&sh->n_inbox, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&sh->inbox_mu);
        for (size_t i = 0; i < k; i++)
            if (MHD_add_connection(sh->d, got[i].fd, (const struct sockaddr *)&got[i].addr, got[i].len) != MHD_YES)
                sv_shard_closed(sh); /* refused (over the limit): MHD closed it */
    }
    running = sh;
    MHD_run(sh->d);
    running = NULL;
    arm_timer(sh);
}

/* ---- accepting */

/* Out of file descriptors (EMFILE): accept the next waiting connection with
 * the spare descriptor and close it, so the client is told at once and the
 * listening socket does not stay readable (the worker that polls woke for it
 * again and again: a core spun while clients held every descriptor).
 * false: no spare to give up, or nothing accepted. */
static bool shed_one(struct sv_pool *p) {
    if (p->spare_fd < 0) p->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* lost to another thread last time */
    if (p->spare_fd < 0) return false;
    close(p->spare_fd);
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) close(fd);
    p->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0;
}

/* Accept what is waiting; each connection goes to the shard with the fewest,
 * through its inbox (another worker may hold it). Only the worker that polls
 * accepts. */
static void accept_all(struct sv_pool *p) {
    for (int k = 0; k < 64; k++) {
        inbox_conn ic = {.len = sizeof ic.addr};
        ic.fd = accept4(p->listen_fd, (struct sockaddr *)&ic.addr, &ic.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (ic.fd < 0 && (errno == EMFILE || errno == ENFILE) && shed_one(p)) continue;
        if (ic.fd < 0) return; /* EAGAIN: none left */
        struct sv_shard *to = &p->shards[0];
        for (unsigned i = 1; i < p->n_shards; i++)
            if (__atomic_load_n(&p->shards[i].conns, __ATOMIC_RELAXED) < __atomic_load_n(&to->conns, __ATOMIC_RELAXED))
                to = &p->shards[i];
        pthread_mutex_lock(&to->inbox_mu);
        bool queued = to->n_inbox < INBOX;
        if (queued) {
            to->inbox[to->n_inbox] = ic;
            __atomic_store_n(&to->n_inbox, to->n_inbox + 1, __ATOMIC_RELEASE);
            __atomic_add_fetch(&to->conns, 1, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&to->inbox_mu);
        uint64_t one = 1;
        if (!queued) close(ic.fd); /* INBOX connections arrived at once on the emptiest shard */
        else if (write(to->inbox_fd, &one, sizeof one) < 0) { /* the eventfd is already readable */
        }
    }
}

/* ---- the workers */

/* Poll the shared set (mu not held); queue what is ready; returns with mu held. */
static void poll_ready(struct sv_pool *p) {
    struct epoll_event ev[64];
    int n = epoll_wait(p->epfd, ev, 64, -1);
    bool accept = false;
    for (int i = 0; i < n; i++) accept |= ev[i].data.ptr == (void *)p;
    if (accept) {
        accept_all(p);
        watch(p->epfd, EPOLL_CTL_MOD, p->listen_fd, EPOLLIN | EPOLLONESHOT, p);
    }
    pthread_mutex_lock(&p->mu);
    p->polling = false;
    uint64_t admitted = __atomic_load_n(&p->srv->admitted, __ATOMIC_RELAXED);
    for (int i = 0; i < n; i++) {
        void *x = ev[i].data.ptr;
        if (x == (void *)&p->stop_fd) p->stopping = true;
        if (x == (void *)p || x == (void *)&p->stop_fd) continue;
        struct sv_shard *sh = x;
        sh->ready_at = admitted;
        sh->queued_conns = __atomic_load_n(&sh->conns, __ATOMIC_RELAXED);
        p->busy_conns += sh->queued_conns;
        sh->ahead_cap = p->busy_conns;
        p->ready[(p->head + p->n_ready++) % p->n_shards] = sh;
    }
    pthread_cond_broadcast(&p->cv); /* another may poll now, or take a shard */
}

static void *worker_main(void *arg) {
    struct sv_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        if (p->n_ready) {
            struct sv_shard *sh = p->ready[p->head];
            p->head = (p->head + 1) % p->n_shards;
            p->n_ready--;
            pthread_mutex_unlock(&p->mu);
            run_shard(sh);
            pthread_mutex_lock(&p->mu);
            p->busy_conns -= sh->queued_conns;
            watch(p->epfd, EPOLL_CTL_MOD, sh->epfd, EPOLLIN | EPOLLONESHOT, sh);
        } else if (!p->polling) {
            p->polling = true;
            pthread_mutex_unlock(&p->mu);
            poll_ready(p);
        } else {
            pthread_cond_wait(&p->cv, &p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- start and stop */

/* A host name (localhost, a machine's name) as one address from the
 * system's resolver (/etc/hosts, DNS) into sa: its first IPv4 address, else
 * its first IPv6 one (glibc lists ::1 first for localhost, and a server on
 * ::1 alone did not answer http://127.0.0.1, which the docs' examples use). */
static bool resolve_host(const char *host, struct sockaddr_storage *sa) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) || !res) return false;
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        if ((a->ai_family == AF_INET && (!pick || pick->ai_family != AF_INET)) || (a->ai_family == AF_INET6 && !pick))
            pick = a;
    bool ok = pick && pick->ai_addrlen <= sizeof *sa;
    if (ok) memcpy(sa, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    return ok;
}

/* HOST:PORT with an IPv4 address or a host name, or [IPv6]:PORT, into sa. */
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
    bool port_ok = colon[1] && !*end && port <= 65535;
    bool ok = port_ok &&
              (v6 ? inet_pton(AF_INET6, host, &a6->sin6_addr) : inet_pton(AF_INET, host, &a4->sin_addr)) == 1;
    if (ok) sa->ss_family = v6 ? AF_INET6 : AF_INET;
    else if (port_ok && !v6 && *host && !strchr(host, ':') && strspn(host, "0123456789.") != strlen(host)) {
        if (!(ok = resolve_host(host, sa))) /* a name (localhost:8080) the resolver does not know */
            return snprintf(msg, msg_size, "--listen '%s': the host name '%s' does not resolve to an address", listen,
                            host), false;
    }
    if (!ok) {
        snprintf(msg, msg_size, "--listen '%s': give an IPv4 address or a host name and a port (127.0.0.1:8080, "
                 "localhost:8080) or an IPv6 address in brackets and a port ([::1]:8080)", listen);
        return false;
    }
    if (sa->ss_family == AF_INET6) a6->sin6_port = htons((uint16_t)port);
    else a4->sin_port = htons((uint16_t)port);
    return true;
}

bool sv_listen_valid(const char *listen, char *msg, size_t msg_size) {
    struct sockaddr_storage sa;
    return parse_listen(listen, &sa, msg, msg_size);
}

/* The listening socket on sa (non-blocking); -1 + message. */
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

/* One shard's daemon and its epoll set, in the shared set; false when it fails. */
static bool shard_start(struct sv_pool *p, struct sv_shard *sh, unsigned conn_limit, bool v6) {
    sh->epfd = epoll_create1(EPOLL_CLOEXEC);
    sh->inbox_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    sh->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (sh->epfd < 0 || sh->inbox_fd < 0 || sh->timer_fd < 0) return false;
    sh->d = sv_http_daemon(p->srv, conn_limit, v6, sh);
    const union MHD_DaemonInfo *info = sh->d ? MHD_get_daemon_info(sh->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    return info && watch(sh->epfd, EPOLL_CTL_ADD, info->epoll_fd, EPOLLIN, NULL) &&
           watch(sh->epfd, EPOLL_CTL_ADD, sh->inbox_fd, EPOLLIN, NULL) &&
           watch(sh->epfd, EPOLL_CTL_ADD, sh->timer_fd, EPOLLIN, NULL) &&
           watch(p->epfd, EPOLL_CTL_ADD, sh->epfd, EPOLLIN | EPOLLONESHOT, sh);
}

static void pool_free(struct sv_pool *p) {
    for (unsigned i = 0; p->shards && i < p->n_shards; i++) {
        struct sv_shard *sh = &p->shards[i];
        for (size_t k = 0; k < sh->n_inbox; k++) close(sh->inbox[k].fd);
        if (sh->d) MHD_stop_daemon(sh->d);
        int fds[3] = {sh->epfd, sh->inbox_fd, sh->timer_fd};
        for (int k = 0; k < 3; k++)
            if (fds[k] >= 0) close(fds[k]);
        pthread_mutex_destroy(&sh->inbox_mu);
    }
    int fds[4] = {p->epfd, p->listen_fd, p->stop_fd, p->spare_fd};
    for (int k = 0; k < 4; k++)
        if (fds[k] >= 0) close(fds[k]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->shards);
    free(p->ready);
    free(p->workers);
    free(p);
}

/* The pool's sockets, shards and queue (no thread yet); false when any fails. */
static bool pool_init(struct sv_pool *p, sv_server *s, const struct sockaddr_storage *sa, char *msg, size_t msg_size) {
    p->srv = s;
    p->epfd = p->stop_fd = p->spare_fd = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if ((p->listen_fd = listen_on(sa, s->opt.listen, msg, msg_size)) < 0) return false;
    p->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* none: no shedding, as before */
    p->n_workers = (unsigned)(s->opt.threads > 0 ? s->opt.threads : 1);
    p->n_shards = p->n_workers * SHARDS_PER_WORKER;
    p->shards = calloc(p->n_shards, sizeof *p->shards);
    p->ready = calloc(p->n_shards, sizeof *p->ready);
    p->workers = calloc(p->n_workers, sizeof *p->workers);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    bool ok = p->shards && p->ready && p->workers && p->epfd >= 0 && p->stop_fd >= 0;
    for (unsigned i = 0; p->shards && i < p->n_shards; i++) {
        p->shards[i].epfd = p->shards[i].inbox_fd = p->shards[i].timer_fd = -1;
        pthread_mutex_init(&p->shards[i].inbox_mu, NULL);
    }
    for (unsigned i = 0; ok && i < p->n_shards; i++)
        ok = shard_start(p, &p->shards[i], (1000 + p->n_shards - 1) / p->n_shards, sa->ss_family == AF_INET6);
    ok = ok && watch(p->epfd, EPOLL_CTL_ADD, p->stop_fd, EPOLLIN, &p->stop_fd) &&
         watch(p->epfd, EPOLL_CTL_ADD, p->listen_fd, EPOLLIN | EPOLLONESHOT, p);
    if (!ok) snprintf(msg, msg_size, "cannot start %u HTTP shards", p->n_shards);
    return ok;
}

int sv_http_start(sv_server *s, unsigned *port, char *msg, size_t msg_size) {
    struct sockaddr_storage sa;
    if (!parse_listen(s->opt.listen, &sa, msg, msg_size)) return -1;
    struct sv_pool *p = calloc(1, sizeof *p);
    if (!p) return snprintf(msg, msg_size, "out of memory"), -1;
    s->pool = p;
    bool ok = pool_init(p, s, &sa, msg, msg_size);
    for (; ok && p->n_started < p->n_workers; p->n_started++)
        if (pthread_create(&p->workers[p->n_started], NULL, worker_main, p)) {
            snprintf(msg, msg_size, "cannot start %u HTTP workers", p->n_workers);
            ok = false;
            break;
        }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (ok && !getsockname(p->listen_fd, (struct sockaddr *)&bound, &blen))
        *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    if (!ok) sv_http_stop(s);
    return ok ? 0 : -1;
}

/* Every worker finishes the shard it holds (every request read is
 * answered), then each daemon closes its connections. */
void sv_http_stop(sv_server *s) {
    struct sv_pool *p = s->pool;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true; /* for the workers between shards */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    uint64_t one = 1;    /* for the one in epoll_wait */
    if (p->stop_fd >= 0 && write(p->stop_fd, &one, sizeof one) < 0) { /* cannot fail on a fresh eventfd */
    }
    for (unsigned i = 0; i < p->n_started; i++) pthread_join(p->workers[i], NULL);
    pool_free(p);
    s->pool = NULL;
}
