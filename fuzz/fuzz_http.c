/* libFuzzer target for the HTTP request handling of `cbrec serve`: the real
 * server (sv_start: libmicrohttpd, the routes, the event store, the token) runs
 * in this process on 127.0.0.1, and each input is sent as the raw bytes of one
 * connection (request line, headers, body: whatever the fuzzer makes), then
 * the answer is read. A crash, a sanitizer report, or a server that stops
 * answering a plain /healthz afterwards is a finding. The model is
 * $CBREC_FUZZ_MODEL, the token file $CBREC_FUZZ_TOKEN, the event store
 * $CBREC_FUZZ_EVENTS (scripts/fuzz-targets.sh makes them in a scratch folder). */
#include "serve/serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static sv_server srv;
static unsigned port;

static int start(void) {
    sv_options o;
    sv_options_default(&o);
    o.model_path = getenv("CBREC_FUZZ_MODEL");
    o.token_file = getenv("CBREC_FUZZ_TOKEN");
    o.events_path = getenv("CBREC_FUZZ_EVENTS"); /* NULL: the event routes answer 503 */
    o.listen = "127.0.0.1:0";
    o.timeout_seconds = 1;
    o.quiet = true;
    char msg[600];
    if (!o.model_path || sv_start(&srv, &o, &port, msg, sizeof msg)) {
        fprintf(stderr, "fuzz_http: cannot start the server: %s\n", o.model_path ? msg : "set CBREC_FUZZ_MODEL");
        abort();
    }
    return 0;
}

/* Send data on a new connection and read the answer: wait up to first_ms for
 * its first bytes (a server still waiting for the rest of a fuzzed request
 * sends none), then until the server closes or is quiet for 50 ms. Returns
 * the bytes read (the first ones in head). */
static size_t exchange(const void *data, size_t size, char *head, size_t head_size, int first_ms) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        if (size) (void)!send(fd, data, size, MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        char buf[4096];
        for (;;) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, got ? 50 : first_ms) <= 0) break;
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            if (got < head_size - 1) {
                size_t c = (size_t)n < head_size - 1 - got ? (size_t)n : head_size - 1 - got;
                memcpy(head + got, buf, c);
            }
            got += (size_t)n;
        }
    }
    close(fd);
    head[got < head_size - 1 ? got : head_size - 1] = 0;
    return got;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static int started;
    if (!started) started = !start();
    char head[64];
    exchange(data, size, head, sizeof head, 300);
    /* whatever came before, the server still answers: a complete request, so
     * a wait of seconds (an fsync'd event before it, a loaded machine, ASan)
     * is slowness, and only no answer at all is a finding */
    static const char probe[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    exchange(probe, sizeof probe - 1, head, sizeof head, 10000);
    if (strncmp(head, "HTTP/1.1 200", 12)) { /* once more, longer: a shared machine's disk can hold an fsync for seconds */
        fprintf(stderr, "fuzz_http: no answer to /healthz within 10 s (got '%s'); asking again for 60 s\n", head);
        exchange(probe, sizeof probe - 1, head, sizeof head, 60000);
    }
    if (strncmp(head, "HTTP/1.1 200", 12)) {
        fprintf(stderr, "fuzz_http: the server stopped answering /healthz (got '%s')\n", head);
        abort();
    }
    return 0;
}
