/* test_serve — `cbrec serve` over real sockets on 127.0.0.1 (a free port the
 * server picks and prints): every endpoint, the errors (400/401/403/404/405/
 * 413/414), the token, reload good and bad (HTTP and SIGHUP), malformed HTTP
 * and JSON (truncated bodies, huge headers, slow clients, invalid UTF-8, wrong
 * types: a clean 4xx and the server keeps serving), live events changing a
 * user's list at once, a long request holding up no other connection, and
 * kill -9 during a stream of acknowledged events:
 * after a restart every acknowledged event is there. The model is trained by
 * the test on a synthetic dataset; servers are stopped by the test. */
#include "testutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#define TOKEN "test-token-0123456789abcdef"

static const char *cbrec(void) {
    const char *c = getenv("CBREC");
    return c ? c : "./cbrec";
}

typedef struct server {
    pid_t pid;
    unsigned port;
} server;

typedef struct fixture {
    char *dir, *data, *model, *model2, *events, *token;
    server srv;
} fixture;

static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Start `cbrec serve` with extra arguments; read the port from its first line
 * ("... http://HOST:PORT/ ..."; extra may give another --listen). */
static server start_server(const fixture *f, const char *events, const char *extra) {
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* a server outlives no failed test: killed with the test (cmocka's
         * failure jumps past stop_server; a server left running held the test
         * runner's output pipe open and hung `make test`) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) _exit(127);
        dup2(fd[1], 1);
        close(fd[0]);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "exec %s serve --model %s --listen 127.0.0.1:0 --token-file %s --timeout 2 -q %s%s %s",
                 cbrec(), f->model, f->token, events ? "--events " : "", events ? events : "", extra ? extra : "");
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[1024] = "";
    assert_non_null(fgets(line, sizeof line, in));
    fclose(in);
    const char *p = strstr(line, "http://");
    p = p ? strchr(p + 7, '/') : NULL;
    while (p && p > line && isdigit((unsigned char)p[-1])) p--;
    assert_non_null(p);
    server s = {pid, (unsigned)atoi(p)};
    assert_true(s.port > 0);
    return s;
}

static void stop_server(server *s, int sig) {
    if (s->pid <= 0) return;
    kill(s->pid, sig);
    int st;
    waitpid(s->pid, &st, 0);
    if (sig == SIGTERM) assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* a clean stop, no crash */
    s->pid = 0;
}

/* In a forked helper process a failed connect is an answer (-1), not a
 * failed assertion (cmocka's longjmp would run the rest of the suite there). */
static bool no_asserts_in_child;

static int connect_to(unsigned port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (no_asserts_in_child && connect(s, (struct sockaddr *)&a, sizeof a)) return close(s), -1;
    if (!no_asserts_in_child) assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {10, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
}

/* Send raw bytes, read the whole answer (status line, headers, body) to EOF
 * into a malloc'd text; NULL when no connection. */
static char *raw_answer(unsigned port, const char *bytes, size_t len) {
    int s = connect_to(port);
    if (s < 0) return NULL;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(s, bytes + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += (size_t)n;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = recv(s, buf + n, cap - n - 1, 0)) > 0) {
        n += (size_t)got;
        if (cap - n < 4096) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    close(s);
    return buf;
}

/* Send raw bytes, read the answer to EOF; returns the status (0: none), body malloc'd into *body. */
static int raw(unsigned port, const char *bytes, size_t len, char **body) {
    char *buf = raw_answer(port, bytes, len);
    if (!buf) {
        if (body) *body = strdup("");
        return 0;
    }
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    char *b = strstr(buf, "\r\n\r\n");
    if (body) *body = strdup(b ? b + 4 : "");
    free(buf);
    return status;
}

/* One HTTP/1.1 request; token: add the bearer header. */
static int http(const fixture *f, const char *method, const char *path, const char *body, int token, char **out) {
    size_t blen = body ? strlen(body) : 0, cap = blen + strlen(path) + 512;
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, token ? "Authorization: Bearer " : "", token == 2 ? "wrong-token-xxxxxxxxxx" : token ? TOKEN : "",
                     token ? "\r\n" : "", blen);
    if (body) memcpy(req + n, body, blen);
    int st = raw(f->srv.port, req, (size_t)n + blen, out);
    free(req);
    return st;
}

/* GET path, expect status, return the parsed JSON (caller decrefs). */
static json_t *get_json(const fixture *f, const char *path, int expect) {
    char *body;
    int st = http(f, "GET", path, NULL, 0, &body);
    if (st != expect) fprintf(stderr, "GET %s: %d %s\n", path, st, body);
    assert_int_equal(st, expect);
    json_t *j = json_loads(body, 0, NULL);
    if (!j) fprintf(stderr, "GET %s: not JSON: %.200s\n", path, body);
    assert_non_null(j);
    free(body);
    return j;
}

static json_t *post_json(const fixture *f, const char *path, const char *body, int token, int expect) {
    char *out;
    int st = http(f, "POST", path, body, token, &out);
    if (st != expect) fprintf(stderr, "POST %s %s: %d %s\n", path, body, st, out);
    assert_int_equal(st, expect);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    free(out);
    return j;
}

/* The error object of a 4xx/5xx answer has the status. */
static void expect_error(const fixture *f, const char *method, const char *path, const char *body, int token, int status) {
    char *out;
    int st = http(f, method, path, body, token, &out);
    if (st != status) fprintf(stderr, "%s %s: %d %s\n", method, path, st, out);
    assert_int_equal(st, status);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "status")), status);
    assert_true(json_string_length(json_object_get(json_object_get(j, "error"), "message")) > 0);
    json_decref(j);
    free(out);
}

/* A status whose answer holds the text `says`. */
static void expect_answer_saying(const fixture *f, const char *method, const char *path, const char *body, int status,
                                 const char *says) {
    char *out;
    assert_int_equal(http(f, method, path, body, 0, &out), status);
    if (!strstr(out, says)) fprintf(stderr, "%s %s: %s\n", method, path, out);
    assert_non_null(strstr(out, says));
    free(out);
}

static void still_serving(const fixture *f) {
    json_t *j = get_json(f, "/healthz", 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->data = tu_path(f->dir, "data");
    f->model = tu_path(f->dir, "m.cbrec");
    f->model2 = tu_path(f->dir, "m2.cbrec");
    f->events = tu_path(f->dir, "events.sqlite");
    f->token = tu_write(f->dir, "token", TOKEN "\n");
    assert_int_equal(sh("%s synth --out %s --users 120 --items 150 --ratings 6000 --genres 6 --seed 5 >/dev/null", cbrec(), f->data), 0);
    /* the neighbour component pinned by its weight: the tests compare lists with and without it */
    const char *train = "--user-layers 16 --item-layers 16 --dim 8 --epochs 2 --batch 64 --neighbour-weight 1 -q >/dev/null";
    assert_int_equal(sh("%s train --data %s --model %s %s --seed 1", cbrec(), f->data, f->model, train), 0);
    assert_int_equal(sh("%s train --data %s --model %s %s --seed 2", cbrec(), f->data, f->model2, train), 0);
    f->srv = start_server(f, f->events, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    stop_server(&f->srv, SIGTERM);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f->data);
    free(f->model);
    free(f->model2);
    free(f->events);
    free(f->token);
    free(f);
    return 0;
}

/* ---- read endpoints */

static bool in_list(json_t *items, const char *id) {
    size_t i;
    json_t *x;
    json_array_foreach(items, i, x) {
        const char *v = json_string_value(json_object_get(x, "item"));
        if (!v) v = json_string_value(x);
        if (v && !strcmp(v, id)) return true;
    }
    return false;
}

/* A list entry's "genres" and "content" (spliced into the list's text) are its item's, in order. */
static void assert_genres_of_item(const fixture *f, json_t *entry) {
    char path[256];
    snprintf(path, sizeof path, "/v1/items/%s", json_string_value(json_object_get(entry, "item")));
    json_t *it = get_json(f, path, 200);
    assert_true(json_array_size(json_object_get(entry, "genres")) >= 1);
    assert_true(json_equal(json_object_get(entry, "genres"), json_object_get(it, "genres")));
    assert_true(json_object_get(entry, "content") == json_object_get(it, "content") || /* both absent */
                json_equal(json_object_get(entry, "content"), json_object_get(it, "content")));
    json_decref(it);
}

/* A list answer is the library's list (cb_list_to_json, through `cbrec
 * recommend ARGS --json`) with "user" in front and each item's genres: the
 * server writes that text itself (listjson.c), so every field is compared. */
static void same_as_cli(const fixture *f, json_t *answer, const char *args) {
    char cmd[8192], *text = calloc(1, 1 << 20);
    snprintf(cmd, sizeof cmd, "%s recommend --model %s %s --json", cbrec(), f->model, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(text, 1, (1 << 20) - 1, p);
    assert_int_equal(pclose(p), 0);
    text[n] = 0;
    json_t *cli = json_loads(text, 0, NULL), *ours = json_deep_copy(answer), *x;
    assert_non_null(cli);
    free(text);
    size_t i;
    assert_int_equal(json_object_del(ours, "user"), 0);
    json_array_foreach(json_object_get(ours, "items"), i, x) {
        assert_int_equal(json_object_del(x, "genres"), 0);
        json_object_del(x, "content"); /* present when the item has values of other content columns */
    }
    assert_true(json_array_size(json_object_get(cli, "items")) > 0);
    if (!json_equal(ours, cli)) fprintf(stderr, "server: %s\ncli:    %s\n", json_dumps(ours, 0), json_dumps(cli, 0));
    assert_true(json_equal(ours, cli));
    json_decref(cli);
    json_decref(ours);
}

static void read_endpoints(void **state) {
    fixture *f = *state;
    size_t i;
    json_t *x;
    json_t *j = get_json(f, "/healthz", 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "model"), "items")), 150);
    assert_true(json_string_length(json_object_get(j, "model_version")) > 0);
    json_decref(j);
    j = get_json(f, "/v1/meta", 200);
    assert_int_equal(json_array_size(json_object_get(j, "genres")), 6);
    assert_non_null(json_object_get(json_object_get(j, "user_columns"), "gender"));
    json_decref(j);
    /* search: substring, case-insensitive, most rated first */
    j = get_json(f, "/v1/items?q=story&limit=5", 200);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 5);
    for (i = 1; i < 5; i++)
        assert_true(json_integer_value(json_object_get(json_array_get(items, i - 1), "n_ratings")) >=
                    json_integer_value(json_object_get(json_array_get(items, i), "n_ratings")));
    json_decref(j);
    j = get_json(f, "/v1/items?q=no+such+title+xyz", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    j = get_json(f, "/v1/items/1", 200);
    assert_string_equal(json_string_value(json_object_get(j, "item")), "1");
    assert_true(json_array_size(json_object_get(j, "genres")) >= 1);
    assert_true(json_is_false(json_object_get(j, "new")));
    assert_true(json_number_value(json_object_get(j, "mean_rating")) > 0);
    json_decref(j);
    j = get_json(f, "/v1/similar?item=1&k=4", 200);
    assert_string_equal(json_string_value(json_object_get(j, "criterion")), "cosine similarity");
    assert_int_equal(json_array_size(json_object_get(j, "items")), 4);
    assert_false(in_list(json_object_get(j, "items"), "1"));
    json_array_foreach(json_object_get(j, "items"), i, x) assert_genres_of_item(f, x);
    json_decref(j);
    /* k past the catalog: all the other items, and the note names the k asked (it said "k = 150") */
    j = get_json(f, "/v1/similar?item=1&k=1000", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 149);
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(j, "notes"), 0)), "k = 1000 is more"));
    json_decref(j);
    j = get_json(f, "/v1/users?limit=3", 200);
    assert_int_equal(json_array_size(json_object_get(j, "users")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 120);
    json_decref(j);
    j = get_json(f, "/v1/users/2", 200);
    json_t *hist = json_object_get(j, "history");
    assert_int_equal(json_array_size(hist), json_integer_value(json_object_get(j, "n_ratings")));
    assert_true(json_array_size(hist) > 0);
    /* recommend: n items, reasons on each, none the user rated */
    json_t *r = get_json(f, "/v1/recommend?user=2&n=5", 200);
    items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 5);
    assert_string_equal(json_string_value(json_object_get(r, "user")), "2");
    json_array_foreach(items, i, x) {
        assert_true(json_array_size(json_object_get(x, "reasons")) > 0);
        assert_false(in_list(hist, json_string_value(json_object_get(x, "item"))));
        assert_genres_of_item(f, x);
    }
    assert_non_null(json_object_get(r, "criterion")); /* the list's own fields follow "user" */
    same_as_cli(f, r, "--user 2 -n 5");
    /* neighbours=false: ranked by the towers alone, as the CLI's --no-neighbours */
    json_t *towers = get_json(f, "/v1/recommend?user=2&n=5&neighbours=false", 200);
    same_as_cli(f, towers, "--user 2 -n 5 --no-neighbours");
    assert_false(json_equal(json_object_get(towers, "items"), items)); /* the test model has the component */
    json_decref(towers);
    towers = post_json(f, "/v1/recommend", "{\"user\": 2, \"n\": 5, \"neighbours\": false}", 0, 200);
    same_as_cli(f, towers, "--user 2 -n 5 --no-neighbours");
    json_decref(towers);
    expect_error(f, "GET", "/v1/recommend?user=2&neighbours=maybe", NULL, 0, 400);
    /* exclude the first: it is gone; POST with the same user agrees with GET */
    char path[256], body[256];
    const char *top = json_string_value(json_object_get(json_array_get(items, 0), "item"));
    snprintf(path, sizeof path, "/v1/recommend?user=2&n=5&exclude=%s", top);
    json_t *r2 = get_json(f, path, 200);
    assert_false(in_list(json_object_get(r2, "items"), top));
    json_decref(r2);
    snprintf(body, sizeof body, "{\"user\": \"2\", \"n\": 5}");
    r2 = post_json(f, "/v1/recommend", body, 0, 200);
    assert_true(json_equal(json_object_get(r2, "items"), items));
    json_decref(r2);
    /* next to no diversity is next to the plain list: MMR's relevance is the
     * ranking score (the towers' dot alone reordered it, the neighbour component left out) */
    r2 = get_json(f, "/v1/recommend?user=2&n=5&diversity=0.001", 200);
    for (size_t k = 0; k < 5; k++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r2, "items"), k), "item")),
                            json_string_value(json_object_get(json_array_get(items, k), "item")));
    json_decref(r2);
    snprintf(body, sizeof body, "{\"user\": 2, \"n\": 5, \"block\": [\"%s\"], \"diversity\": 0.5, \"include_seen\": false}", top);
    r2 = post_json(f, "/v1/recommend", body, 0, 200);
    assert_int_equal(json_array_size(json_object_get(r2, "items")), 5);
    assert_false(in_list(json_object_get(r2, "items"), top));
    json_decref(r2);
    /* the map: points with coordinates, the user's top-n and history highlighted */
    json_t *m = get_json(f, "/v1/map?user=2&n=5", 200);
    assert_int_equal(json_array_size(json_object_get(m, "highlight")), 5);
    assert_int_equal(json_array_size(json_object_get(m, "history")), json_array_size(hist));
    assert_int_equal(json_array_size(json_object_get(m, "points")), 150);
    assert_true(json_is_real(json_object_get(json_array_get(json_object_get(m, "points"), 0), "x")));
    json_decref(m);
    json_decref(r);
    json_decref(j);
}

static void new_profile_and_batch(void **state) {
    fixture *f = *state;
    json_t *j = post_json(f, "/v1/recommend", "{\"profile\": {\"ratings\": {\"1\": 5, \"2\": 4}, \"genre_ratings\": {\"Comedy\": 5}}, \"n\": 3}", 0, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 3);
    assert_false(in_list(json_object_get(j, "items"), "1")); /* rated in the profile */
    json_decref(j);
    j = post_json(f, "/v1/recommend/batch", "{\"users\": [\"1\", \"2\", 3], \"n\": 4}", 0, 200);
    json_t *res = json_object_get(j, "results");
    assert_int_equal(json_array_size(res), 3);
    assert_int_equal(json_array_size(json_object_get(json_array_get(res, 2), "items")), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 2), "user")), "3");
    json_decref(j);
}

/* The answer to method pattern ({id}: "x") with a query parameter no route
 * takes ("?zz=1", the token given, body "{}") has a status that op (the
 * OpenAPI operation) lists: a 400 was missing from GET /v1/meta, the
 * /v1/items/{id} and /v1/users/{id} pages and the reload. */
static void assert_status_listed(const fixture *f, json_t *op, const char *method, const char *pattern) {
    char path[160], *body, status[8];
    const char *id = strstr(pattern, "{id}");
    if (id) snprintf(path, sizeof path, "%.*sx%s?zz=1", (int)(id - pattern), pattern, id + 4);
    else snprintf(path, sizeof path, "%s?zz=1", pattern);
    int st = http(f, method, path, strcmp(method, "POST") ? NULL : "{}", 1, &body);
    snprintf(status, sizeof status, "%d", st);
    if (!json_object_get(json_object_get(op, "responses"), status))
        fprintf(stderr, "openapi.json: %s %s answers %d, not among its responses: %s\n", method, path, st, body);
    assert_non_null(json_object_get(json_object_get(op, "responses"), status));
    free(body);
}

static void static_assets_and_openapi(void **state) {
    fixture *f = *state;
    char *body;
    assert_int_equal(http(f, "GET", "/", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "<html"));
    free(body);
    assert_int_equal(http(f, "GET", "/metrics", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "cbrec_http_requests_total{route=\"GET /v1/recommend\",status=\"200\"}"));
    assert_non_null(strstr(body, "cbrec_http_request_duration_seconds_bucket"));
    assert_non_null(strstr(body, "cbrec_model_info{version=\""));
    free(body);
    /* every route of the route table (src/serve/routes.c) is in the OpenAPI document, and the
     * status it answers a query parameter it does not take with is one its operation lists */
    json_t *doc = get_json(f, "/openapi.json", 200);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    json_t *paths = json_object_get(doc, "paths");
    FILE *src = fopen("src/serve/routes.c", "r");
    assert_non_null(src);
    char line[512];
    int n_routes = 0;
    while (fgets(line, sizeof line, src)) {
        char method[16], pattern[128], lower[16];
        if (sscanf(line, " {\"%15[A-Z]\", \"%127[^\"]\"", method, pattern) != 2) continue;
        for (size_t i = 0; i <= strlen(method); i++) lower[i] = (char)tolower((unsigned char)method[i]);
        json_t *p = json_object_get(paths, pattern);
        if (!p || !json_object_get(p, lower)) fprintf(stderr, "openapi.json lacks %s %s\n", method, pattern);
        assert_non_null(p);
        assert_non_null(json_object_get(p, lower));
        assert_status_listed(f, json_object_get(p, lower), method, pattern);
        n_routes++;
    }
    fclose(src);
    assert_true(n_routes >= 14);
    json_decref(doc);
}

/* ---- the answers against the OpenAPI document's schemas */

/* The schema that ref ("#/components/schemas/List") names in doc, or schema itself. */
static json_t *deref(json_t *doc, json_t *schema) {
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    if (!ref) return schema;
    char path[256];
    snprintf(path, sizeof path, "%s", ref + 2); /* past "#/" */
    json_t *x = doc;
    for (char *part = strtok(path, "/"); part && x; part = strtok(NULL, "/")) x = json_object_get(x, part);
    return x;
}

/* Does v have the shape of schema (type, nullable, required, properties,
 * additionalProperties, items, minItems, maxItems: what openapi.json uses)?
 * false after a line on stderr naming where (at: a JSON path). */
static bool shape_ok(json_t *doc, json_t *schema, json_t *v, const char *at) {
    if (!schema) return true; /* an array without "items": any items */
    schema = deref(doc, schema);
    if (!schema) return fprintf(stderr, "%s: a $ref openapi.json does not hold\n", at), false;
    if (json_is_null(v) && json_is_true(json_object_get(schema, "nullable"))) return true;
    const char *type = json_string_value(json_object_get(schema, "type"));
    bool ok = !type || (!strcmp(type, "object") && json_is_object(v)) || (!strcmp(type, "array") && json_is_array(v)) ||
              (!strcmp(type, "string") && json_is_string(v)) || (!strcmp(type, "integer") && json_is_integer(v)) ||
              (!strcmp(type, "number") && json_is_number(v)) || (!strcmp(type, "boolean") && json_is_boolean(v));
    if (!ok) return fprintf(stderr, "%s: not of type %s\n", at, type), false;
    char sub[512];
    size_t i;
    const char *key;
    json_t *x, *props = json_object_get(schema, "properties"), *extra = json_object_get(schema, "additionalProperties");
    json_array_foreach(json_object_get(schema, "required"), i, x) {
        if (!json_object_get(v, json_string_value(x)))
            return fprintf(stderr, "%s: lacks the required \"%s\"\n", at, json_string_value(x)), false;
    }
    json_object_foreach(json_is_object(v) ? v : NULL, key, x) {
        json_t *sch = json_object_get(props, key) ? json_object_get(props, key) : json_is_object(extra) ? extra : NULL;
        snprintf(sub, sizeof sub, "%s.%s", at, key);
        if (sch && !shape_ok(doc, sch, x, sub)) return false;
    }
    json_t *min = json_object_get(schema, "minItems"), *max = json_object_get(schema, "maxItems");
    if ((min && json_array_size(v) < (size_t)json_integer_value(min)) || (max && json_array_size(v) > (size_t)json_integer_value(max)))
        return fprintf(stderr, "%s: %zu items, out of its bounds\n", at, json_array_size(v)), false;
    json_array_foreach(json_is_array(v) ? v : NULL, i, x) {
        snprintf(sub, sizeof sub, "%s[%zu]", at, i);
        if (!shape_ok(doc, json_object_get(schema, "items"), x, sub)) return false;
    }
    return true;
}

/* method path's answer (body: a POST's, else NULL; token given) has the
 * status expected and the shape openapi.json gives that status of pattern. */
static void answer_as_documented(const fixture *f, json_t *doc, const char *method, const char *pattern, const char *path,
                                 const char *body, int expect) {
    char lower[8], status[8], *out;
    for (size_t i = 0; i <= strlen(method) && i < sizeof lower; i++) lower[i] = (char)tolower((unsigned char)method[i]);
    snprintf(status, sizeof status, "%d", expect);
    int st = http(f, method, path, body, 1, &out);
    if (st != expect) fprintf(stderr, "%s %s: %d %s\n", method, path, st, out);
    assert_int_equal(st, expect);
    json_t *reply = deref(doc, json_object_get(json_object_get(json_object_get(json_object_get(doc, "paths"), pattern), lower),
                                               "responses"));
    reply = deref(doc, json_object_get(reply, status)); /* a response object, or a $ref to components.responses */
    json_t *schema = json_object_get(json_object_get(json_object_get(reply, "content"), "application/json"), "schema");
    json_t *v = json_loads(out, 0, NULL);
    if (!schema || !v) fprintf(stderr, "%s %s: no JSON schema for %d in openapi.json, or the answer is not JSON\n", method, path, expect);
    assert_true(schema && v);
    char at[300];
    snprintf(at, sizeof at, "%s %s", method, path);
    if (!shape_ok(doc, schema, v, at)) fprintf(stderr, "the answer: %.300s\n", out);
    assert_true(shape_ok(doc, schema, v, at));
    json_decref(v);
    free(out);
}

/* Every endpoint's answers have the shapes openapi.json gives them (its
 * schemas were a bare "object": nothing for a client to check or generate). */
static void answers_match_openapi(void **state) {
    fixture *f = *state;
    json_t *doc = get_json(f, "/openapi.json", 200);
    const char *const gets[][3] = {{"/healthz", "/healthz"}, {"/v1/meta", "/v1/meta"}, {"/v1/items", "/v1/items?q=a&limit=5"},
                                   {"/v1/items/{id}", "/v1/items/1"}, {"/v1/similar", "/v1/similar?item=1&k=3"},
                                   {"/v1/users", "/v1/users?limit=3"}, {"/v1/users/{id}", "/v1/users/2"},
                                   {"/v1/recommend", "/v1/recommend?user=2"}, {"/v1/recommend", "/v1/recommend?user=2&n=20&diversity=0.5"},
                                   {"/v1/map", "/v1/map?user=2&n=3"}, {"/v1/map", "/v1/map?n=0"}};
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) answer_as_documented(f, doc, "GET", gets[i][0], gets[i][1], NULL, 200);
    answer_as_documented(f, doc, "POST", "/v1/users/{id}/events", "/v1/users/shape-user/events", "{\"item\": \"1\", \"rating\": 4}", 200);
    answer_as_documented(f, doc, "GET", "/v1/users/{id}", "/v1/users/shape-user", NULL, 200); /* known from its event only */
    answer_as_documented(f, doc, "POST", "/v1/recommend", "/v1/recommend", "{\"user\": \"shape-user\", \"n\": 3}", 200);
    answer_as_documented(f, doc, "POST", "/v1/recommend", "/v1/recommend", "{\"profile\": {\"ratings\": {\"1\": 5}}}", 200);
    answer_as_documented(f, doc, "POST", "/v1/recommend/batch", "/v1/recommend/batch", "{\"users\": [\"2\", \"shape-user\"], \"n\": 3}", 200);
    answer_as_documented(f, doc, "POST", "/v1/admin/reload", "/v1/admin/reload", NULL, 200);
    answer_as_documented(f, doc, "GET", "/v1/items/{id}", "/v1/items/no-such-item", NULL, 404);
    answer_as_documented(f, doc, "GET", "/v1/recommend", "/v1/recommend?user=2&n=0", NULL, 400);
    answer_as_documented(f, doc, "POST", "/v1/users/{id}/events", "/v1/users/2/events", "{\"item\": \"1\"}", 400);
    json_decref(doc);
}

/* ---- errors and malformed input: a clean 4xx each, and the server keeps serving */

static void clean_errors(void **state) {
    fixture *f = *state;
    expect_error(f, "GET", "/v1/items/no-such-item", NULL, 0, 404);
    expect_error(f, "GET", "/v1/users/no-such-user", NULL, 0, 404);
    expect_error(f, "GET", "/v1/recommend?user=no-such-user", NULL, 0, 404);
    expect_error(f, "GET", "/v1/similar?item=no-such-item", NULL, 0, 404);
    expect_error(f, "GET", "/v1/nothing-here", NULL, 0, 404);
    expect_error(f, "DELETE", "/v1/recommend", NULL, 0, 405);
    /* its Allow names HEAD beside GET (a HEAD is answered as a GET; it said GET alone) */
    const char *del = "DELETE /v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char *whole = raw_answer(f->srv.port, del, strlen(del));
    assert_non_null(whole);
    assert_non_null(strstr(whole, "\r\nAllow: GET, HEAD\r\n"));
    free(whole);
    expect_error(f, "POST", "/v1/items", "{}", 0, 405);
    expect_error(f, "GET", "/v1/recommend", NULL, 0, 400);
    expect_error(f, "GET", "/v1/recommend?user=1&n=0", NULL, 0, 400);
    expect_error(f, "GET", "/v1/recommend?user=1&n=100000", NULL, 0, 400);
    expect_error(f, "GET", "/v1/recommend?user=1&n=-3", NULL, 0, 400);
    expect_error(f, "GET", "/v1/recommend?user=1&diversity=7", NULL, 0, 400);
    expect_error(f, "GET", "/v1/recommend?user=1&rank_by=nonsense", NULL, 0, 400);
    expect_error(f, "GET", "/v1/similar?item=1&k=abc", NULL, 0, 400);
    expect_error(f, "GET", "/v1/similar?item=", NULL, 0, 400); /* no item given: not an unknown one (404) */
    /* JSON: truncated, not an object, wrong types, invalid UTF-8, duplicate keys */
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\"", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "[1, 2]", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": [1]}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"n\": \"ten\"}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"exclude\": {\"a\": 1}}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"profile\": \"x\"}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"profile\": {\"ratings\": {\"1\": \"five\"}}}", 0, 400);
    /* a profile the model cannot read is bad input (400), not an unknown resource */
    expect_error(f, "POST", "/v1/recommend", "{\"profile\": {\"ratings\": {\"no-such\": 5}}}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"profile\": {\"ratings\": {\"1\": 5}, \"shoe_size\": 30}}", 0, 400);
    /* so is an unknown id in a filter of a known user's request (the user is found) */
    expect_error(f, "GET", "/v1/recommend?user=1&exclude=no-such-item", NULL, 0, 400);
    expect_error(f, "GET", "/v1/recommend?user=1&allow=no-such-item", NULL, 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"block\": [\"no-such-item\"]}", 0, 400);
    /* a JSON list's id holding a comma or a quote is one id, not two */
    char *out;
    expect_answer_saying(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"exclude\": [\"2\", \"no,\\\"such\"]}", 400,
                         "unknown item id 'no,\\\"such'");
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"\xff\xfe\"}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"user\": \"2\"}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"profile\": {}}", 0, 400);
    expect_error(f, "POST", "/v1/recommend/batch", "{\"users\": \"1\"}", 0, 400);
    expect_error(f, "POST", "/v1/recommend/batch", "{\"users\": [\"nobody\"]}", 0, 404);
    expect_error(f, "GET", "/v1/users/\xff\xfe", NULL, 0, 404); /* invalid UTF-8 echoed cleanly */
    /* %00 is not decoded into a NUL that would end the id or value ("1%00x" was user 1) */
    expect_error(f, "GET", "/v1/recommend?user=1%00x", NULL, 0, 404);
    expect_error(f, "GET", "/v1/users/1%00x", NULL, 0, 404);
    expect_error(f, "GET", "/v1/recommend?user=1&n=5%00", NULL, 0, 400);
    /* an id longer than 511 bytes reaches its route (it was "no such page") */
    char path[700] = "/v1/users/";
    memset(path + strlen(path), 'u', 600);
    assert_int_equal(http(f, "GET", path, NULL, 0, &out), 404);
    assert_non_null(strstr(out, "unknown user 'uuu"));
    free(out);
    /* so does a body's "user" of 600 bytes (it was "must be a user id"); a NUL inside is refused */
    char body[700] = "{\"user\": \"";
    memset(body + strlen(body), 'u', 600);
    strcat(body, "\"}");
    assert_int_equal(http(f, "POST", "/v1/recommend", body, 0, &out), 404);
    assert_non_null(strstr(out, "unknown user 'uuu"));
    assert_non_null(strstr(out, "...' (no training ratings")); /* the id clipped, the reason kept */
    free(out);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\\u0000x\"}", 0, 400);
    /* a misspelt option is refused, naming it and what it may have meant (it
     * was ignored: the list came back with the item it meant to exclude) */
    expect_answer_saying(f, "GET", "/v1/recommend?user=1&excldue=2", NULL, 400,
                         "unknown query parameter 'excldue' (did you mean exclude?)");
    /* a parameter without a value was read as not given (include_seen alone: the seen items stayed out) */
    expect_answer_saying(f, "GET", "/v1/recommend?user=1&include_seen", NULL, 400,
                         "query parameter 'include_seen' has no value (give include_seen=VALUE)");
    expect_answer_saying(f, "GET", "/v1/recommend?user=1&", NULL, 200, "\"items\"");
    expect_answer_saying(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"excludes\": [\"2\"]}", 400,
                         "unknown key 'excludes' (did you mean exclude?)");
    expect_error(f, "POST", "/v1/recommend?user=1", "{\"user\": \"1\"}", 0, 400);
    expect_error(f, "POST", "/v1/recommend/batch", "{\"users\": [\"1\"], \"exclude\": [\"2\"]}", 0, 400);
    expect_error(f, "POST", "/v1/users/1/events", "{\"item\": \"2\", \"ratng\": 5}", 1, 400);
    expect_error(f, "GET", "/v1/similar?item=1&n=3", NULL, 0, 400);
    json_decref(get_json(f, "/v1/recommend?user=1&n=2&", 200)); /* a trailing '&' names no parameter */
    /* an empty allow list allows no item (it was read as none given: every item) */
    expect_error(f, "GET", "/v1/recommend?user=1&allow=", NULL, 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"user\": \"1\", \"allow\": []}", 0, 400);
    expect_error(f, "POST", "/v1/recommend", "{\"profile\": {}, \"allow\": [\"\"]}", 0, 400);
    still_serving(f);
}

static void malformed_http(void **state) {
    fixture *f = *state;
    char *body = NULL;
    /* a body over the limit: 413 before it is read */
    const char *big = "POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n{";
    int st = raw(f->srv.port, big, strlen(big), &body);
    assert_int_equal(st, 413);
    assert_non_null(strstr(body, "\"status\":413"));
    free(body);
    /* a chunked body over the limit, without Content-Length */
    size_t cap = (1 << 21) + 4096, n;
    char *req = malloc(cap);
    n = (size_t)snprintf(req, cap, "POST /v1/recommend HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int c = 0; c < 2; c++) {
        n += (size_t)snprintf(req + n, cap - n, "%x\r\n", 700000);
        memset(req + n, ' ', 700000);
        n += 700000;
        n += (size_t)snprintf(req + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(req + n, cap - n, "0\r\n\r\n");
    assert_int_equal(raw(f->srv.port, req, n, &body), 413);
    free(body);
    /* a huge header: refused (libmicrohttpd answers 431 itself, with an HTML body), never a crash */
    n = (size_t)snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', 200000);
    n += 200000;
    n += (size_t)snprintf(req + n, cap - n, "\r\nConnection: close\r\n\r\n");
    st = raw(f->srv.port, req, n, NULL);
    assert_int_equal(st, 431);
    /* a long query: 414 */
    n = (size_t)snprintf(req, cap, "GET /v1/items?q=");
    memset(req + n, 'a', 6000);
    n += 6000;
    n += (size_t)snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(raw(f->srv.port, req, n, NULL), 414);
    free(req);
    /* garbage and a request line without a version */
    int garbage = raw(f->srv.port, "\x01\x02garbage\r\n\r\n", 13, NULL);
    assert_true(garbage == 0 || (garbage >= 400 && garbage < 500));
    /* a truncated body: the client promises 100 bytes, sends 10 and hangs up */
    const char *trunc = "POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user\": \"";
    int s = connect_to(f->srv.port);
    assert_true(send(s, trunc, strlen(trunc), MSG_NOSIGNAL) > 0);
    close(s);
    still_serving(f);
    /* a slow client: while it dribbles, others are served; the server drops it after --timeout 2 */
    s = connect_to(f->srv.port);
    assert_true(send(s, "GET /heal", 9, MSG_NOSIGNAL) == 9);
    still_serving(f);
    struct pollfd pfd = {s, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 6000), 1); /* closed by the server (EOF) within the timeout */
    char c;
    assert_true(recv(s, &c, 1, 0) <= 0);
    close(s);
    still_serving(f);
}

/* ---- token, events */

/* POST /v1/recommend/batch takes a user's live events at once, as GET does
 * (run after token_and_events' events: "newcomer" exists only as a click). */
static void batch_uses_live_events(const fixture *f) {
    json_t *b = post_json(f, "/v1/recommend/batch", "{\"users\": [\"6\", \"1\"], \"n\": 5}", 0, 200);
    json_t *row6 = json_object_get(json_array_get(json_object_get(b, "results"), 0), "items");
    char top[64], other[64], body[128];
    snprintf(top, sizeof top, "%s", json_string_value(json_object_get(json_array_get(row6, 0), "item")));
    snprintf(other, sizeof other, "%s",
             json_string_value(json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(b, "results"), 1), "items"), 0), "item")));
    json_decref(b);
    snprintf(body, sizeof body, "{\"item\": \"%s\", \"rating\": 1}", top);
    json_decref(post_json(f, "/v1/users/6/events", body, 1, 200));
    b = post_json(f, "/v1/recommend/batch", "{\"users\": [\"6\", \"1\", \"newcomer\"], \"n\": 5}", 0, 200);
    json_t *res = json_object_get(b, "results");
    assert_int_equal(json_array_size(res), 3);
    assert_int_equal(json_array_size(json_object_get(json_array_get(res, 0), "items")), 5);
    assert_false(in_list(json_object_get(json_array_get(res, 0), "items"), top)); /* now rated: out */
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(json_array_get(res, 1), "items"), 0), "item")),
                        other); /* a user without events: unchanged */
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 2), "user")), "newcomer");
    assert_int_equal(json_array_size(json_object_get(json_array_get(res, 2), "items")), 5);
    assert_false(in_list(json_object_get(json_array_get(res, 2), "items"), "7")); /* its click */
    json_decref(b);
    expect_error(f, "POST", "/v1/recommend/batch", "{\"users\": [\"never-seen\"]}", 0, 404);
}

static void token_and_events(void **state) {
    fixture *f = *state;
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"rating\": 5}", 0, 401);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"rating\": 5}", 2, 401);
    expect_error(f, "POST", "/v1/admin/reload", NULL, 0, 401);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"no-such\", \"rating\": 5}", 1, 404);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"rating\": 99}", 1, 400);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"rating\": \"5\"}", 1, 400);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\"}", 1, 400);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"event\": \"purchase\"}", 1, 400);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"rating\": 5, \"time\": -1}", 1, 400);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"rating\": 5, \"time\": \"2023-02-29\"}", 1, 400);
    expect_error(f, "POST", "/v1/users/2/events", "{\"item\": \"1\", \"rating\": 5, \"time\": 1.5}", 1, 400);
    /* a rating for the user's top item: it leaves the list at once (now rated) */
    json_t *r = get_json(f, "/v1/recommend?user=4&n=5", 200);
    char top[64], body[128];
    snprintf(top, sizeof top, "%s", json_string_value(json_object_get(json_array_get(json_object_get(r, "items"), 0), "item")));
    json_decref(r);
    snprintf(body, sizeof body, "{\"item\": \"%s\", \"rating\": 1, \"time\": 1700000000}", top);
    json_t *ack = post_json(f, "/v1/users/4/events", body, 1, 200);
    assert_true(json_is_true(json_object_get(ack, "stored")));
    assert_true(json_integer_value(json_object_get(ack, "seq")) >= 1);
    json_decref(ack);
    r = get_json(f, "/v1/recommend?user=4&n=5", 200);
    assert_false(in_list(json_object_get(r, "items"), top));
    json_decref(r);
    r = get_json(f, "/v1/users/4", 200);
    assert_int_equal(json_integer_value(json_object_get(r, "live_events")), 1);
    json_decref(r);
    /* a user the model never saw, known from a click only */
    expect_error(f, "GET", "/v1/recommend?user=newcomer", NULL, 0, 404);
    json_decref(post_json(f, "/v1/users/newcomer/events", "{\"item\": 7, \"event\": \"click\"}", 1, 200));
    r = get_json(f, "/v1/recommend?user=newcomer&n=3", 200);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 3);
    assert_false(in_list(json_object_get(r, "items"), "7"));
    char *notes = json_dumps(json_object_get(r, "notes"), 0);
    assert_non_null(strstr(notes, "not in the model"));
    free(notes);
    json_decref(r);
    r = get_json(f, "/v1/users/newcomer", 200);
    assert_true(json_is_false(json_object_get(r, "known")));
    json_decref(r);
    /* a user id with a comma and UTF-8 (training reads such ids from quoted fields) */
    json_decref(post_json(f, "/v1/users/Zo%C3%AB%2C%20tester/events", "{\"item\": 7, \"event\": \"click\"}", 1, 200));
    r = get_json(f, "/v1/users/Zo%C3%AB%2C%20tester", 200);
    assert_int_equal(json_integer_value(json_object_get(r, "live_events")), 1);
    expect_error(f, "POST", "/v1/users/a%0Ab/events", "{\"item\": 7, \"event\": \"click\"}", 1, 400);
    json_decref(r);
    /* an id with "/" (sent as %2F, decoded after routing): one id, not more path */
    json_decref(post_json(f, "/v1/users/team%2Fa/events", "{\"item\": 7, \"event\": \"click\"}", 1, 200));
    r = get_json(f, "/v1/users/team%2Fa", 200);
    assert_string_equal(json_string_value(json_object_get(r, "user")), "team/a");
    assert_int_equal(json_integer_value(json_object_get(r, "live_events")), 1);
    json_decref(r);
    expect_error(f, "GET", "/v1/users/4/events", NULL, 0, 405);
    /* routed on the path as sent: "x%2Fevents" is the user "x/events", not the events route */
    expect_error(f, "GET", "/v1/users/x%2Fevents", NULL, 0, 404);
    json_decref(post_json(f, "/v1/users/x%2Fevents/events", "{\"item\": 7, \"event\": \"click\"}", 1, 200));
    r = get_json(f, "/v1/users/x%2Fevents", 200);
    assert_string_equal(json_string_value(json_object_get(r, "user")), "x/events");
    json_decref(r);
    expect_error(f, "GET", "/v1/users/team/a", NULL, 0, 404); /* a "/" not escaped is more path */
    json_decref(get_json(f, "/v1/%6Deta", 200));                /* fixed segments are decoded too */
    /* the map of a user known from events: its history is the clicked item, its top-n highlighted */
    r = get_json(f, "/v1/map?user=newcomer&n=3", 200);
    assert_true(in_list(json_object_get(r, "history"), "7"));
    assert_int_equal(json_array_size(json_object_get(r, "highlight")), 3);
    json_decref(r);
    r = get_json(f, "/v1/map", 200);
    assert_int_equal(json_array_size(json_object_get(r, "highlight")), 0);
    json_t *point = json_array_get(json_object_get(r, "points"), 0);
    assert_true(json_array_size(json_object_get(point, "genres")) >= 1);
    assert_true(json_equal(json_object_get(point, "colour"), json_array_get(json_object_get(point, "genres"), 0)));
    json_decref(r);
    expect_error(f, "GET", "/v1/map?user=nobody-at-all", NULL, 0, 404);
    batch_uses_live_events(f);
}

/* ---- overload: a request in flight (its body still arriving) holds the only place */

static void overload_is_503(void **state) {
    fixture *f = *state;
    fixture g = *f;
    g.srv = start_server(f, NULL, "--max-inflight 1 --timeout 30"); /* the held request outlives the polls */
    const char *part = "POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user\": ";
    int hold = connect_to(g.srv.port);
    assert_true(send(hold, part, strlen(part), MSG_NOSIGNAL) > 0);
    int st = 0;
    char *out = NULL;
    for (int tries = 0; tries < 100 && st != 503; tries++) { /* once the server has read its headers */
        free(out);
        out = NULL;
        st = http(&g, "GET", "/v1/meta", NULL, 0, &out);
        if (st == 503) break;
        /* the loops run in parallel: a probe in flight when the held request's
         * headers were read took the place, and the held one was answered 503
         * (and closed); hold the place again */
        struct pollfd pf = {.fd = hold, .events = POLLIN};
        if (poll(&pf, 1, 0) > 0) {
            close(hold);
            hold = connect_to(g.srv.port);
            assert_true(send(hold, part, strlen(part), MSG_NOSIGNAL) > 0);
        }
        usleep(20000);
    }
    assert_int_equal(st, 503);
    assert_non_null(strstr(out, "\"status\":503"));
    free(out);
    close(hold); /* the place is free again */
    for (int tries = 0; tries < 100 && st != 200; tries++) {
        st = http(&g, "GET", "/v1/meta", NULL, 0, NULL);
        if (st != 200) usleep(20000);
    }
    assert_int_equal(st, 200);
    stop_server(&g.srv, SIGTERM);
}

/* ---- overload: a burst of requests beyond --max-inflight is answered 503 at
 * once (JSON, Retry-After), the admitted ones 200, none waits for a place */

/* Send one request on each of n sockets before reading any answer; the
 * statuses into st, the 503s' answers checked for JSON and for Retry-After
 * (present when retry, else absent). */
static void burst(unsigned port, const char *req, int n, int *st, bool retry) {
    int fds[64];
    for (int i = 0; i < n; i++) {
        fds[i] = connect_to(port);
        assert_true(send(fds[i], req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    }
    for (int i = 0; i < n; i++) {
        char buf[1 << 16];
        size_t len = 0;
        ssize_t got;
        while (len < sizeof buf - 1 && (got = recv(fds[i], buf + len, sizeof buf - 1 - len, 0)) > 0) len += (size_t)got;
        buf[len] = 0;
        close(fds[i]);
        st[i] = 0;
        sscanf(buf, "HTTP/1.%*d %d", &st[i]);
        if (st[i] != 503) continue;
        assert_true(!strcasestr(buf, "\r\nRetry-After: 1\r\n") == !retry);
        char *b = strstr(buf, "\r\n\r\n");
        json_t *j = b ? json_loads(b + 4, 0, NULL) : NULL;
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "status")), 503);
        json_decref(j);
    }
}

static void overload_burst_is_503(void **state) {
    fixture *f = *state;
    fixture g = *f;
    g.srv = start_server(f, NULL, "--threads 1 --max-inflight 4");
    /* a slow request (MMR over a long list), so the burst is read before the worker is through */
    const char *req = "GET /v1/recommend?user=5&n=100&diversity=0.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int st[64], ok = 0, busy = 0;
    for (int round = 0; round < 5 && !busy; round++) { /* the timing is the machine's: a few tries */
        burst(g.srv.port, req, 48, st, true);
        ok = busy = 0;
        for (int i = 0; i < 48; i++) {
            if (st[i] != 200 && st[i] != 503) fprintf(stderr, "burst: status %d\n", st[i]);
            assert_true(st[i] == 200 || st[i] == 503);
            ok += st[i] == 200, busy += st[i] == 503;
        }
    }
    assert_true(ok >= 1);
    assert_true(busy >= 1);
    char *text;
    assert_int_equal(http(&g, "GET", "/metrics", NULL, 0, &text), 200); /* the 503s are counted */
    assert_non_null(strstr(text, "status=\"503\""));
    free(text);
    json_decref(get_json(&g, "/healthz", 200)); /* and the server serves on */
    /* a 503 that retrying will not change (no event store) has no Retry-After */
    const char *ev = "POST /v1/users/1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                     "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    burst(g.srv.port, ev, 1, st, false);
    assert_int_equal(st[0], 503);
    stop_server(&g.srv, SIGTERM);
}

/* ---- a long request holds up no other connection: the workers take any
 * ready shard, and each connection has its shard (the emptiest) */

/* GET path on an open keep-alive connection; its status (0: no answer). */
static int keepalive_get(int fd, const char *path) {
    char req[256], buf[1 << 14];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) return 0;
    size_t len = 0, need = 0;
    char *end = NULL;
    for (ssize_t got; (!end || len < need) && len < sizeof buf - 1 && (got = recv(fd, buf + len, sizeof buf - 1 - len, 0)) > 0;) {
        buf[len += (size_t)got] = 0;
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            need = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
        }
    }
    int st = 0;
    return end && len >= need && sscanf(buf, "HTTP/1.%*d %d", &st) == 1 ? st : 0;
}

static void long_request_holds_up_no_other(void **state) {
    fixture *f = *state;
    fixture g = *f;
    g.srv = start_server(f, NULL, "--threads 2");
    /* a batch of 1000 users x 150 items: 0.4-1 s on this model, against a few ms for /healthz */
    size_t cap = 16384, off = 0;
    char *body = malloc(cap);
    off += (size_t)snprintf(body, cap, "{\"n\": 150, \"users\": [");
    for (int i = 0; i < 1000; i++) off += (size_t)snprintf(body + off, cap - off, "%s\"%d\"", i ? "," : "", 1 + i % 120);
    snprintf(body + off, cap - off, "]}");
    char req[17000];
    int rlen = snprintf(req, sizeof req, "POST /v1/recommend/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    free(body);
    bool before = false;
    for (int round = 0; round < 3 && !before; round++) { /* a loaded machine may finish the batch first */
        int slow = connect_to(g.srv.port), quick[7];
        for (int i = 0; i < 7; i++) { /* open before the long request, each on its own shard */
            quick[i] = connect_to(g.srv.port);
            assert_int_equal(keepalive_get(quick[i], "/healthz"), 200);
        }
        assert_int_equal(send(slow, req, (size_t)rlen, MSG_NOSIGNAL), rlen);
        usleep(100000); /* a worker is on it */
        for (int i = 0; i < 7; i++) assert_int_equal(keepalive_get(quick[i], "/healthz"), 200);
        struct pollfd pf = {.fd = slow, .events = POLLIN};
        before = poll(&pf, 1, 0) == 0; /* every quick answer came while the batch was still running */
        int st = 0;
        char buf[1 << 16];
        ssize_t got = recv(slow, buf, sizeof buf - 1, 0);
        if (got > 0) buf[got] = 0, sscanf(buf, "HTTP/1.%*d %d", &st);
        assert_int_equal(st, 200);
        close(slow);
        for (int i = 0; i < 7; i++) close(quick[i]);
    }
    assert_true(before);
    stop_server(&g.srv, SIGTERM);
}

/* ---- content columns beside genres */

/* Does the JSON array a hold the string s? */
static bool has_string(json_t *a, const char *s) {
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) if (!strcmp(json_string_value(x), s)) return true;
    return false;
}

/* A profile the model cannot tell items apart for (a catalog of bare ids
 * rated alike, trained without item-id embeddings: every item the same
 * vector) is a 422
 * with the reason; it was a 500, the server's fault to a client. */
static void degenerate_profile_is_422(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "bare-ids");
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(sh("cd %s && printf 'user,item,rating\\n' > ratings.csv && for u in 1 2 3 4 5 6; do for i in a b c d; "
                        "do echo \"$u,$i,$(( (u + ${#i}) %% 5 + 1 ))\" >> ratings.csv; done; done && "
                        "printf 'ratings = ratings.csv\\n' > cbrec.schema", d), 0);
    g.model = tu_path(d, "m.cbrec");
    assert_int_equal(sh("%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 --split none "
                        "--no-id-embedding -q >/dev/null", cbrec(), d, g.model), 0);
    g.srv = start_server(&g, NULL, NULL);
    json_t *j = post_json(&g, "/v1/recommend", "{\"profile\": {}}", 0, 422);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "every item scores the same"));
    json_decref(j);
    char *metrics;
    assert_int_equal(http(&g, "GET", "/metrics", NULL, 0, &metrics), 200); /* counted as itself, not "other" */
    assert_non_null(strstr(metrics, "route=\"POST /v1/recommend\",status=\"422\"} 1"));
    free(metrics);
    stop_server(&g.srv, SIGTERM);
    free(g.model);
    free(d);
}

/* A catalog with genres, tags (one spelt like a genre) and a brand: "genres"
 * everywhere (health's count, meta, items, lists) holds the genre column's values only, the
 * other columns' values come under "content" by column, and the meta's user
 * columns are what a profile gives (no "brand_avg": ["Acme](z"]). */
static void content_columns_apart(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "content");
    assert_int_equal(mkdir(d, 0700), 0);
    const char *const genres[3] = {"Sci-Fi", "Comedy", "Drama|Sci-Fi"}, *const tags[2] = {"sci-fi;aliens", "funny"};
    tu_write_content_catalog(d, genres, tags);
    g.model = tu_path(d, "m.cbrec");
    assert_int_equal(sh("%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 --neighbours 0 "
                        "-q >/dev/null", cbrec(), d, g.model), 0);
    g.srv = start_server(&g, NULL, NULL);
    json_t *j = get_json(&g, "/healthz", 200), *x; /* the genre column's 3 values, not with tags and brands 8 */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "model"), "genres")), 3);
    json_decref(j);
    j = get_json(&g, "/v1/meta", 200);
    char *text = json_dumps(json_object_get(j, "genres"), JSON_COMPACT);
    assert_string_equal(text, "[\"Sci-Fi\",\"Comedy\",\"Drama\"]");
    free(text);
    assert_true(has_string(json_object_get(json_object_get(j, "columns"), "tags"), "sci-fi"));
    assert_int_equal(json_object_size(json_object_get(j, "user_columns")), 0); /* the data has no user attributes */
    assert_string_equal(json_string_value(json_object_get(j, "prediction")), "predicted rating"); /* the page's stars */
    assert_true(json_is_false(json_object_get(j, "binary")) && json_is_false(json_object_get(j, "weighted")));
    assert_string_equal(json_string_value(json_object_get(j, "map_column")), "genres"); /* genres before tags */
    json_decref(j);
    j = get_json(&g, "/v1/items/i0", 200);
    text = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(text, "\"genres\":[\"Sci-Fi\"],\"content\":{\"tags\":[\"sci-fi\",\"aliens\"],\"brand\":[\"Acme\"]}"));
    free(text);
    json_decref(j);
    j = get_json(&g, "/v1/recommend?user=u0&n=5", 200);
    size_t i;
    json_array_foreach(json_object_get(j, "items"), i, x) {
        assert_false(has_string(json_object_get(x, "genres"), "sci-fi"));
        assert_false(has_string(json_object_get(x, "genres"), "Acme") || has_string(json_object_get(x, "genres"), "Zed"));
        assert_int_equal(json_array_size(json_object_get(json_object_get(x, "content"), "brand")), 1);
        assert_genres_of_item(&g, x);
    }
    json_decref(j);
    stop_server(&g.srv, SIGTERM);
    free(g.model);
    free(d);
}

/* Train a small model on the catalog in d (g->model: the caller frees it),
 * add the item of item_json to it (d/added.cbrec) and start a server on both. */
static void serve_with_added_item(fixture *g, const char *d, const char *item_json, const char *events) {
    char *item_file = tu_write(d, "new.json", item_json), *added = tu_path(d, "added.cbrec"), extra[4200];
    g->model = tu_path(d, "m.cbrec");
    assert_int_equal(sh("%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 -q "
                        ">/dev/null && %s add-item --model %s --item-json %s --out %s >/dev/null 2>&1",
                        cbrec(), d, g->model, cbrec(), g->model, item_file, added),
                     0);
    snprintf(extra, sizeof extra, "--table %s", added);
    g->srv = start_server(g, events, extra);
    free(item_file), free(added);
}

/* An added item's content on /v1/items/{id}: every value add-item was given
 * (200 tags: it kept 64), and a number for a categorical column as its text. */
static void added_item_content_whole(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "many"), item[2048] = "{\"id\": \"new\", \"brand\": 7, \"tags\": \"";
    assert_int_equal(mkdir(d, 0700), 0);
    tu_write_many_tags_catalog(d);
    for (int t = 0; t < 200; t++) snprintf(item + strlen(item), sizeof item - strlen(item), "%st%d", t ? ";" : "", t);
    strcat(item, "\"}");
    serve_with_added_item(&g, d, item, NULL);
    json_t *j = get_json(&g, "/v1/items/new", 200), *content = json_object_get(j, "content");
    json_t *tags = json_object_get(content, "tags");
    assert_int_equal(json_array_size(tags), 200);
    assert_true(has_string(tags, "t0") && has_string(tags, "t199"));
    char *brand = json_dumps(json_object_get(content, "brand"), JSON_COMPACT);
    assert_string_equal(brand, "[\"7\"]");
    free(brand);
    json_decref(j);
    stop_server(&g.srv, SIGTERM);
    free(g.model), free(d);
}

/* Title search folds Unicode case as the CLI's lookup does: "ÜBER CAFÉ"
 * finds "Über Café" (strcasestr folded ASCII only). */
static void title_search_folds(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "folds");
    assert_int_equal(mkdir(d, 0700), 0);
    const char *const genres[3] = {"Action", "Comedy", "Drama"};
    tu_write_content_catalog(d, genres, NULL);
    serve_with_added_item(&g, d, "{\"id\": \"new\", \"title\": \"Das \u00dcber Caf\u00e9 (2024)\"}", NULL);
    const char *queries[3] = {"%C3%9CBER%20CAF%C3%89", "%C3%BCber%20caf%C3%A9", "uber"};
    for (int k = 0; k < 3; k++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/items?q=%s", queries[k]);
        json_t *j = get_json(&g, path, 200), *items = json_object_get(j, "items");
        assert_int_equal(json_array_size(items), k < 2);
        if (k < 2) assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "item")), "new");
        json_decref(j);
    }
    stop_server(&g.srv, SIGTERM);
    free(g.model), free(d);
}

/* Does a list answer hold an item of brand b? */
static bool answer_has_brand(json_t *j, const char *b) {
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(j, "items"), i, x)
        if (has_string(json_object_get(json_object_get(x, "content"), "brand"), b)) return true;
    return false;
}

/* serve --block-file: no list shows a blocked item (recommend, its
 * precomputed answers, similar), and a reload reads the file again. */
static void served_block_list(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "blocked"), extra[4200];
    assert_int_equal(mkdir(d, 0700), 0);
    const char *const genres[3] = {"Action", "Comedy", "Drama"};
    tu_write_content_catalog(d, genres, NULL);
    char *block = tu_write(d, "block.txt", "brand Acme\n");
    g.model = tu_path(d, "m.cbrec");
    assert_int_equal(sh("%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 -q >/dev/null",
                        cbrec(), d, g.model), 0);
    snprintf(extra, sizeof extra, "--block-file %s", block);
    g.srv = start_server(&g, NULL, extra);
    const char *paths[3] = {"/v1/recommend?user=u1", "/v1/recommend?user=u2&n=30", "/v1/similar?item=i1&k=29"};
    for (int pass = 0; pass < 2; pass++) { /* Acme blocked, then Zed after a reload */
        for (int k = 0; k < 3; k++) {
            json_t *j = get_json(&g, paths[k], 200);
            assert_true(json_array_size(json_object_get(j, "items")) > 0);
            assert_false(answer_has_brand(j, pass ? "Zed" : "Acme"));
            assert_true(answer_has_brand(j, pass ? "Acme" : "Zed") || k == 0);
            json_decref(j);
        }
        /* the title search and the map's points leave them out too (Acme: the even items) */
        const char *lists[2] = {"/v1/items?q=item&limit=100", "/v1/map"};
        for (int k = 0; k < 2; k++) {
            json_t *j = get_json(&g, lists[k], 200), *x;
            size_t i, n = 0;
            json_array_foreach(json_object_get(j, k ? "points" : "items"), i, x) {
                int num = atoi(json_string_value(json_object_get(x, "item")) + 1);
                assert_int_equal(num % 2, pass ? 0 : 1);
                n++;
            }
            assert_int_equal(n, 15);
            json_decref(j);
        }
        free(tu_write(d, "block.txt", "brand Zed\n"));
        if (!pass) json_decref(post_json(&g, "/v1/admin/reload", NULL, 1, 200));
    }
    stop_server(&g.srv, SIGTERM);
    free(g.model), free(d), free(block);
}

/* A live event on an item added after training is refused (409): the
 * library's new-user JSON does not know added items, so once stored it made
 * every later list of that user a 400 (the map's silently empty). */
static void added_item_events_refused(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "added-events"), *events = tu_path(d, "events.sqlite");
    assert_int_equal(mkdir(d, 0700), 0);
    const char *const genres[3] = {"Sci-Fi", "Comedy", "Drama"}, *const tags[2] = {"jazz", "rock"};
    tu_write_content_catalog(d, genres, tags);
    serve_with_added_item(&g, d, "{\"id\": \"new/caf\u00e9\", \"tags\": \"jazz\", \"brand\": \"Acme\"}", events);
    json_decref(get_json(&g, "/v1/items/new%2Fcaf%C3%A9", 200));
    expect_error(&g, "POST", "/v1/users/u0/events", "{\"item\": \"new/caf\u00e9\", \"event\": \"click\"}", 1, 409);
    char *metrics; /* counted as a 409, not as "other" */
    assert_int_equal(http(&g, "GET", "/metrics", NULL, 0, &metrics), 200);
    assert_non_null(strstr(metrics, "{route=\"POST /v1/users/{id}/events\",status=\"409\"} 1\n"));
    free(metrics);
    json_decref(post_json(&g, "/v1/users/u0/events", "{\"item\": \"i1\", \"rating\": 4}", 1, 200));
    json_t *r = get_json(&g, "/v1/recommend?user=u0&n=3", 200);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 3);
    json_decref(r);
    r = get_json(&g, "/v1/map?user=u0&n=3", 200);
    assert_int_equal(json_array_size(json_object_get(r, "highlight")), 3);
    json_decref(r);
    stop_server(&g.srv, SIGTERM);
    free(g.model), free(events), free(d);
}

/* On a model of 0/1 picks (implicit events) a live rating is 0 or 1: a 0.5
 * was stored, and exported into data whose labels refuse it. */
static void binary_model_ratings(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "picks"), rows[8192] = "user_id,item_id,timestamp\n";
    assert_int_equal(mkdir(d, 0700), 0);
    for (int u = 0; u < 30; u++)
        for (int k = 0; k < 6; k++)
            snprintf(rows + strlen(rows), sizeof rows - strlen(rows), "u %d,item/%d,%d\n", u, (u * 7 + k * 5) % 25, 1000 + k);
    free(tu_write(d, "ratings.csv", rows));
    char *events = tu_path(d, "events.sqlite");
    g.model = tu_path(d, "m.cbrec");
    assert_int_equal(sh("%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 -q >/dev/null",
                        cbrec(), d, g.model), 0);
    g.srv = start_server(&g, events, NULL);
    json_t *j = get_json(&g, "/v1/meta", 200);
    assert_true(json_is_true(json_object_get(j, "binary")));
    char *scale = json_dumps(json_object_get(j, "rating_scale"), JSON_COMPACT); /* what the page's stars map onto */
    assert_string_equal(scale, "[0.0,1.0]");
    free(scale);
    json_decref(j);
    expect_error(&g, "POST", "/v1/users/u%201/events", "{\"item\": \"item/3\", \"rating\": 0.5}", 1, 400);
    json_decref(post_json(&g, "/v1/users/u%201/events", "{\"item\": \"item/3\", \"rating\": 1}", 1, 200));
    json_decref(post_json(&g, "/v1/users/u%201/events", "{\"item\": \"item/4\", \"event\": \"click\"}", 1, 200));
    json_decref(post_json(&g, "/v1/users/u%202/events", "{\"item\": \"item/5\", \"rating\": 0}", 1, 200));
    json_decref(get_json(&g, "/v1/recommend?user=u%201&n=3", 200));
    stop_server(&g.srv, SIGTERM);
    /* exported as the data's rows, each a pick: the 0 gets none (it was "u 2,item/5,TIME", a pick) */
    char *csv = tu_path(d, "live.csv");
    assert_int_equal(sh("%s events export --events %s --out %s --click-rating 1 > %s.log", cbrec(), events, csv, csv), 0);
    assert_int_equal(sh("grep -q '^u 1,item/3,' %s && grep -q '^u 1,item/4,' %s", csv, csv), 0);
    assert_int_equal(sh("grep -q 'item/5' %s", csv), 1);
    assert_int_equal(sh("grep -q '1 pairs whose newest event is valued 0 left out' %s.log", csv), 0);
    free(csv), free(g.model), free(events), free(d);
}

/* ---- listening on IPv6 */

/* GET /healthz over the connected socket s (closed): a 200 and status ok. */
static void healthz_answers(int s, const char *host) {
    char req[256], buf[4096] = "";
    snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host);
    assert_true(send(s, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    size_t len = 0;
    ssize_t got;
    while (len < sizeof buf - 1 && (got = recv(s, buf + len, sizeof buf - 1 - len, 0)) > 0) len += (size_t)got;
    buf[len] = 0;
    close(s);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "\"status\":\"ok\""));
}

static void listen_ipv6(void **state) {
    fixture *f = *state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
    if (probe >= 0) close(probe);
    if (!have_v6) {
        fprintf(stderr, "listen_ipv6: SKIPPED (no IPv6 loopback on this machine)\n");
        return;
    }
    fixture g = *f;
    g.srv = start_server(f, NULL, "--listen [::1]:0");
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    a.sin6_port = htons((uint16_t)g.srv.port);
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
    healthz_answers(s, "[::1]");
    stop_server(&g.srv, SIGTERM);
    /* an IPv6 address without brackets, or a bad one: refused with a reason */
    assert_int_equal(sh("%s serve --model %s --listen ::1:0 2>/dev/null", cbrec(), f->model), 2); /* usage */
    assert_int_equal(sh("%s serve --model %s --listen '[::zz]:0' 2>/dev/null", cbrec(), f->model), 2);
}

/* A host name in --listen (localhost:8080) is the resolver's first IPv4
 * address for it (else its first IPv6 one); it was refused ("give an IPv4
 * address"). */
static void listen_host_name(void **state) {
    fixture *f = *state;
    /* digits and dots are an address, never a name the resolver reads its own way (1.2.3 as 1.2.0.3) */
    assert_int_equal(sh("%s serve --model %s --listen 1.2.3:0 2>/dev/null", cbrec(), f->model), 2);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo("localhost", NULL, &hints, &res) || !res) {
        fprintf(stderr, "listen_host_name: SKIPPED (this machine has no IPv4 address for localhost)\n");
        return;
    }
    fixture g = *f;
    g.srv = start_server(f, NULL, "--listen localhost:0");
    freeaddrinfo(res);
    healthz_answers(connect_to(g.srv.port), "localhost"); /* on 127.0.0.1, whatever family the resolver lists first */
    stop_server(&g.srv, SIGTERM);
}

/* ---- reload */

static char *version(const fixture *f) {
    json_t *j = get_json(f, "/healthz", 200);
    char *v = strdup(json_string_value(json_object_get(j, "model_version")));
    json_decref(j);
    return v;
}

static void reload_good_and_bad(void **state) {
    fixture *f = *state;
    char *v1 = version(f), *backup = tu_path(f->dir, "m.backup");
    assert_int_equal(sh("cp %s %s && cp %s.history %s.history", f->model, backup, f->model, backup), 0);
    /* a new model file (its history first), renamed into place: HTTP reload swaps it in */
    assert_int_equal(sh("cp %s.history %s.history.tmp && mv %s.history.tmp %s.history", f->model2, f->model, f->model, f->model), 0);
    assert_int_equal(sh("cp %s %s.tmp && mv %s.tmp %s", f->model2, f->model, f->model, f->model), 0);
    json_t *j = post_json(f, "/v1/admin/reload", NULL, 1, 200);
    char *v2 = version(f);
    assert_string_equal(json_string_value(json_object_get(j, "model_version")), v2);
    assert_string_not_equal(v1, v2);
    json_decref(j);
    json_decref(get_json(f, "/v1/recommend?user=2&n=3", 200));
    /* a bad file: refused, the old model keeps serving */
    assert_int_equal(sh("printf 'not a model' > %s.tmp && mv %s.tmp %s", f->model, f->model, f->model), 0);
    expect_error(f, "POST", "/v1/admin/reload", NULL, 1, 500);
    char *v3 = version(f);
    assert_string_equal(v3, v2);
    json_decref(get_json(f, "/v1/recommend?user=2&n=3", 200));
    /* SIGHUP: the first model back */
    assert_int_equal(sh("cp %s.history %s.history.tmp && mv %s.history.tmp %s.history", backup, f->model, f->model, f->model), 0);
    assert_int_equal(sh("cp %s %s.tmp && mv %s.tmp %s", backup, f->model, f->model, f->model), 0);
    kill(f->srv.pid, SIGHUP);
    char *v4 = NULL;
    for (int tries = 0; tries < 100; tries++) {
        free(v4);
        v4 = version(f);
        if (!strcmp(v4, v1)) break;
        usleep(50000);
    }
    assert_string_equal(v4, v1);
    /* SIGHUPs in a burst, requests between them: every answer 200, the server alive */
    for (int k = 0; k < 5; k++) {
        kill(f->srv.pid, SIGHUP);
        json_decref(get_json(f, "/v1/recommend?user=3&n=3", 200));
    }
    still_serving(f);
    char *metrics;
    assert_int_equal(http(f, "GET", "/metrics", NULL, 0, &metrics), 200);
    assert_non_null(strstr(metrics, "cbrec_model_reloads_total{result=\"failed\"} 1"));
    free(metrics);
    free(v1);
    free(v2);
    free(v3);
    free(v4);
    free(backup);
}

/* ---- precomputed answers (answers.c) */

/* The body of a 200 to GET path (malloc'd). */
static char *get_text(const fixture *f, const char *path) {
    char *body;
    int st = http(f, "GET", path, NULL, 0, &body);
    if (st != 200) fprintf(stderr, "GET %s: %d %s\n", path, st, body);
    assert_int_equal(st, 200);
    return body;
}

/* A line "NAME VALUE" of /metrics (name ends with its space), its value. */
static long long metric(const fixture *f, const char *name) {
    char *text = get_text(f, "/metrics"), needle[128];
    snprintf(needle, sizeof needle, "\n%s", name);
    char *line = strstr(text, needle);
    assert_non_null(line);
    long long v = atoll(line + strlen(needle));
    free(text);
    return v;
}
#define HITS "cbrec_answers_total{result=\"hit\"} "
#define MISSES "cbrec_answers_total{result=\"miss\"} "

/* Every user's default answer from the precomputed ones is byte for byte
 * the computed one: the server without them, the same server asked with an
 * equivalent non-default query (computed), and n=10 given (precomputed);
 * so is every n below 10 (the precomputed answer cut at n). */
static void answers_equal_computed_ones(void **state) {
    fixture *f = *state, on = *f, off = *f;
    on.srv = start_server(f, NULL, NULL);
    off.srv = start_server(f, NULL, "--precompute-answers off");
    json_t *doc = get_json(&on, "/v1/users?limit=1000", 200), *users = json_object_get(doc, "users");
    assert_int_equal(json_array_size(users), 120);
    long long hits = metric(&on, HITS), misses = metric(&on, MISSES);
    size_t i;
    json_t *x;
    json_array_foreach(users, i, x) {
        char path[256], *a, *b, *c, *d;
        int n = snprintf(path, sizeof path, "/v1/recommend?user=%s", json_string_value(json_object_get(x, "user")));
        a = get_text(&on, path);
        b = get_text(&off, path);
        snprintf(path + n, sizeof path - (size_t)n, "&include_seen=false");
        c = get_text(&on, path);
        snprintf(path + n, sizeof path - (size_t)n, "&n=10");
        d = get_text(&on, path);
        assert_non_null(strstr(a, "\"reasons\":[\""));
        assert_string_equal(a, b);
        assert_string_equal(a, c);
        assert_string_equal(a, d);
        free(a), free(b), free(c), free(d);
        for (int k = 1; k < 10; k++) {
            snprintf(path + n, sizeof path - (size_t)n, "&n=%d", k);
            a = get_text(&on, path);
            snprintf(path + n, sizeof path - (size_t)n, "&n=%d&include_seen=false", k);
            b = get_text(&on, path);
            assert_string_equal(a, b);
            free(a), free(b);
        }
    }
    assert_int_equal(metric(&on, HITS) - hits, 11 * 120); /* a, d and n < 10; c bypassed them */
    assert_int_equal(metric(&on, MISSES) - misses, 0);
    assert_int_equal(metric(&off, HITS), 0);
    assert_int_equal(metric(&on, "cbrec_answers_users "), 120);
    assert_int_equal(metric(&off, "cbrec_answers_users "), 0);
    json_decref(doc);
    stop_server(&on.srv, SIGTERM);
    stop_server(&off.srv, SIGTERM);
    expect_error(f, "GET", "/v1/recommend?user=no-such-user", NULL, 0, 404); /* unknown: not from the answers */
    assert_int_equal(sh("%s serve --model %s --precompute-answers maybe >/dev/null 2>&1", cbrec(), f->model), 2);
}

/* A live event makes the next default answer computed again, with the event;
 * the one after is precomputed again and the same. */
static void answers_follow_events(void **state) {
    fixture *f = *state;
    char *before = get_text(f, "/v1/recommend?user=5"), body[128], top[64];
    json_t *j = json_loads(before, 0, NULL);
    snprintf(top, sizeof top, "%s", json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "item")));
    json_decref(j);
    snprintf(body, sizeof body, "{\"item\": \"%s\", \"rating\": 1}", top);
    json_decref(post_json(f, "/v1/users/5/events", body, 1, 200));
    long long hits = metric(f, HITS), misses = metric(f, MISSES);
    char *after = get_text(f, "/v1/recommend?user=5"), *computed = get_text(f, "/v1/recommend?user=5&include_seen=false");
    assert_string_not_equal(before, after);
    j = json_loads(after, 0, NULL);
    assert_false(in_list(json_object_get(j, "items"), top)); /* now rated */
    json_decref(j);
    assert_string_equal(after, computed);
    assert_int_equal(metric(f, MISSES) - misses, 1);
    char *again = get_text(f, "/v1/recommend?user=5"); /* stored by the miss */
    assert_string_equal(after, again);
    assert_int_equal(metric(f, HITS) - hits, 1);
    free(before), free(after), free(computed), free(again);
}

/* A reload swaps the answers with the model; a refused one keeps the old. */
static void answers_swap_on_reload(void **state) {
    fixture *f = *state, g = *f;
    g.model = tu_path(f->dir, "answers.cbrec");
    assert_int_equal(sh("cp %s.history %s.history && cp %s %s", f->model, g.model, f->model, g.model), 0);
    g.srv = start_server(&g, NULL, NULL);
    char *first = get_text(&g, "/v1/recommend?user=2");
    assert_int_equal(sh("cp %s.history %s.history && cp %s %s.tmp && mv %s.tmp %s", f->model2, g.model, f->model2,
                        g.model, g.model, g.model), 0);
    json_decref(post_json(&g, "/v1/admin/reload", NULL, 1, 200));
    long long hits = metric(&g, HITS);
    char *second = get_text(&g, "/v1/recommend?user=2"), *computed = get_text(&g, "/v1/recommend?user=2&include_seen=false");
    assert_string_not_equal(first, second);
    assert_string_equal(second, computed);
    assert_int_equal(metric(&g, HITS) - hits, 1);
    assert_int_equal(metric(&g, "cbrec_answers_users "), 120);
    assert_int_equal(sh("printf 'not a model' > %s.tmp && mv %s.tmp %s", g.model, g.model, g.model), 0);
    expect_error(&g, "POST", "/v1/admin/reload", NULL, 1, 500);
    char *third = get_text(&g, "/v1/recommend?user=2");
    assert_string_equal(second, third);
    stop_server(&g.srv, SIGTERM);
    free(first), free(second), free(computed), free(third);
    free(g.model);
}

/* SIGHUPs sent while a reload runs make one reload more, not one each (30
 * sent within about half a reload's time were 18-26 reloads in a row, and
 * a SIGTERM behind them waited for them all). */
static void sighup_burst_reloads_once_more(void **state) {
    fixture g = *(fixture *)*state;
    g.srv = start_server(&g, NULL, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_decref(post_json(&g, "/v1/admin/reload", NULL, 1, 200));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long reload_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
    for (int k = 0; k < 30; k++) kill(g.srv.pid, SIGHUP), usleep((useconds_t)(reload_us / 60)); /* apart: each one handled */
    json_int_t reloads = -1, seen;
    for (int tries = 0; tries < 100; tries++, reloads = seen) { /* until a second passes without one */
        usleep(1000000);
        json_t *h = get_json(&g, "/healthz", 200);
        seen = json_integer_value(json_object_get(h, "reloads"));
        json_decref(h);
        if (seen == reloads) break;
    }
    if (reloads > 1 + 8) fprintf(stderr, "30 SIGHUPs within ~%ld us (half a reload's time): %lld reloads\n", reload_us / 2, (long long)reloads - 1);
    assert_true(reloads >= 1 + 1);
    assert_true(reloads <= 1 + 8);
    for (int k = 0; k < 30; k++) kill(g.srv.pid, SIGHUP);
    stop_server(&g.srv, SIGTERM);
}

/* The CPU seconds process pid has used (user + system). */
static double cpu_seconds(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    unsigned long utime = 0, stime = 0; /* fields 14 and 15, after the ")" that ends the name */
    assert_int_equal(sscanf(strrchr(buf, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime), 2);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Out of file descriptors (clients holding them all), the server closes the
 * connections it cannot take instead of waking for them in a loop (a core
 * spun: ~0.9 CPU seconds in 2 s), and serves again once they are gone. */
static void out_of_descriptors_no_spin(void **state) {
    fixture g = *(fixture *)*state;
    struct rlimit saved, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = 128; /* the server's limit: it inherits it */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    g.srv = start_server(&g, NULL, "--threads 1");
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    enum { CONNS = 200 };
    int fds[CONNS];
    for (int k = 0; k < CONNS; k++) fds[k] = connect_to(g.srv.port);
    usleep(300000);
    double before = cpu_seconds(g.srv.pid);
    usleep(2000000);
    double used = cpu_seconds(g.srv.pid) - before;
    if (used > 0.3) fprintf(stderr, "out of descriptors: %.2f CPU seconds in 2 s\n", used);
    assert_true(used <= 0.3);
    for (int k = 0; k < CONNS; k++) close(fds[k]);
    usleep(300000);
    still_serving(&g);
    stop_server(&g.srv, SIGTERM);
}

/* Reloads on one worker while another answers /healthz and /metrics, which
 * read the reload counters: every answer 200, the count exact, and the server
 * stops cleanly (under make test-tsan any data race TSan sees between the
 * reload and the readers makes it exit 66; the counters' own window, between
 * the swap and the next lock of the slot, is too short for it to be seen
 * every run, which is why they are atomics by reading, not by report). */
static void reloads_while_counted(void **state) {
    fixture g = *(fixture *)*state;
    g.srv = start_server(&g, NULL, "--threads 2");
    enum { RELOADS = 6 };
    pid_t reloader = fork();
    assert_true(reloader >= 0);
    if (reloader == 0) {
        no_asserts_in_child = true;
        int ok = 0;
        for (int k = 0; k < RELOADS; k++) ok += http(&g, "POST", "/v1/admin/reload", NULL, 1, NULL) == 200;
        _exit(ok == RELOADS ? 0 : 1);
    }
    int st = 0;
    while (waitpid(reloader, &st, WNOHANG) == 0) {
        json_decref(get_json(&g, "/healthz", 200));
        free(get_text(&g, "/metrics"));
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    json_t *h = get_json(&g, "/healthz", 200);
    assert_int_equal(json_integer_value(json_object_get(h, "reloads")), RELOADS);
    json_decref(h);
    stop_server(&g.srv, SIGTERM);
}

/* ---- kill -9 during a stream of acknowledged events */

static void kill9_keeps_acknowledged_events(void **state) {
    fixture *f = *state;
    char *store = tu_path(f->dir, "crash.sqlite"), *csv = tu_path(f->dir, "crash.csv");
    fixture g = *f;
    g.srv = start_server(f, store, NULL);
    int acks[2];
    assert_int_equal(pipe(acks), 0);
    pid_t writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) { /* streams events until the server dies; reports each acknowledged item */
        no_asserts_in_child = true; /* the server is killed under it: a refused connect ends the stream */
        close(acks[0]);
        for (int k = 1; k <= 150; k++) {
            char body[96], *out = NULL;
            snprintf(body, sizeof body, "{\"item\": \"%d\", \"rating\": 4}", k);
            int st = http(&g, "POST", "/v1/users/crash-user/events", body, 1, &out);
            bool stored = st == 200 && out && strstr(out, "\"stored\":true");
            free(out);
            if (!stored) break;
            if (write(acks[1], &k, sizeof k) != sizeof k) break;
        }
        _exit(0);
    }
    close(acks[1]);
    int k, n_acked = 0, acked[200];
    while (read(acks[0], &k, sizeof k) == sizeof k) {
        acked[n_acked++] = k;
        if (n_acked == 20) kill(g.srv.pid, SIGKILL); /* mid-stream: more requests are on their way */
    }
    close(acks[0]);
    waitpid(writer, NULL, 0);
    stop_server(&g.srv, SIGKILL);
    assert_true(n_acked >= 20);
    /* restart on the same store: every acknowledged event is there */
    g.srv = start_server(f, store, NULL);
    char path[64];
    snprintf(path, sizeof path, "/v1/users/crash-user");
    json_t *u = get_json(&g, path, 200);
    assert_true(json_integer_value(json_object_get(u, "live_events")) >= n_acked);
    json_decref(u);
    stop_server(&g.srv, SIGTERM);
    assert_int_equal(sh("%s events export --events %s --out %s >/dev/null", cbrec(), store, csv), 0);
    FILE *in = fopen(csv, "r");
    assert_non_null(in);
    char line[256];
    bool seen[200] = {0};
    while (fgets(line, sizeof line, in)) {
        int item;
        if (sscanf(line, "crash-user,%d,4,", &item) == 1 && item > 0 && item < 200) seen[item] = true;
    }
    fclose(in);
    for (int i = 0; i < n_acked; i++) assert_true(seen[acked[i]]);
    free(store);
    free(csv);
}

/* ---- the README's recipe: live events exported, appended to the data, trained on */

/* The rating csv gives user u for item it ("" when no row), from its last such row. */
static void csv_rating(const char *csv, const char *u, const char *it, char *out, size_t size) {
    FILE *in = fopen(csv, "r");
    assert_non_null(in);
    char line[256], want[96];
    int n = snprintf(want, sizeof want, "%s,%s,", u, it);
    out[0] = 0;
    while (fgets(line, sizeof line, in))
        if (!strncmp(line, want, (size_t)n)) snprintf(out, size, "%.*s", (int)strcspn(line + n, ","), line + n);
    fclose(in);
}

static void export_then_retrain(void **state) {
    fixture *f = *state;
    char *store = tu_path(f->dir, "retrain.sqlite"), *csv = tu_path(f->dir, "live.csv"),
         *copy = tu_path(f->dir, "data_live"), *model = tu_path(f->dir, "live.cbrec"), item[64] = "", got[32];
    char *ratings = tu_path(f->data, "ratings.csv");
    FILE *in = fopen(ratings, "r");
    assert_non_null(in);
    char line[256];
    while (fgets(line, sizeof line, in)) /* an item user 1 rated in the data */
        if (sscanf(line, "1,%63[^,],", item) == 1) break;
    fclose(in);
    assert_true(item[0]);
    fixture g = *f;
    g.srv = start_server(f, store, NULL);
    const char *ratings_posted[] = {"1", "2", NULL}; /* a re-rating of a rated item, then another */
    for (int k = 0; ratings_posted[k]; k++) {
        char body[128];
        snprintf(body, sizeof body, "{\"item\": \"%s\", \"rating\": %s}", item, ratings_posted[k]);
        assert_int_equal(http(&g, "POST", "/v1/users/1/events", body, 1, NULL), 200);
    }
    stop_server(&g.srv, SIGTERM);
    assert_int_equal(sh("%s events export --events %s --out %s >/dev/null", cbrec(), store, csv), 0);
    csv_rating(csv, "1", item, got, sizeof got);
    assert_string_equal(got, "2"); /* one row for the pair: the newest */
    assert_int_equal(sh("grep -c '^1,%s,' %s | grep -qx 1", item, csv), 0);
    assert_int_equal(sh("cp -r %s %s && tail -n +2 %s >> %s/ratings.csv", f->data, copy, csv, copy), 0);
    const char *train = "--user-layers 8 --item-layers 8 --dim 4 --epochs 1 --neighbours 0 -q";
    assert_int_equal(sh("%s train --data %s --model %s %s >/dev/null 2>&1", cbrec(), copy, model, train), 1);
    assert_int_equal(sh("%s train --data %s --model %s %s 2>&1 | grep -q 'duplicate rating'", cbrec(), copy, model,
                        train), 0);
    assert_int_equal(sh("%s train --data %s --model %s %s --duplicates last >/dev/null 2>&1", cbrec(), copy, model,
                        train), 0);
    free(store), free(csv), free(copy), free(model), free(ratings);
}

/* The export of a model trained on its own layout (cbrec.schema: other
 * column names and order, an ignored column, ';' between fields, string ids)
 * writes that layout (it wrote userId,movieId,... whatever the data), so
 * that the rows append to the data's ratings file and train; a live user
 * the data's users file does not list trains under --unlisted-users keep. */
static void export_generic_layout(void **state) {
    fixture g = *(fixture *)*state;
    char *d = tu_path(g.dir, "own-layout"), *store = tu_path(g.dir, "own-layout.sqlite"),
         *csv = tu_path(g.dir, "own-layout.csv");
    assert_int_equal(mkdir(d, 0700), 0);
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nratings.delim = ;\n"
                                     "ratings.columns = who:user, what:item, note:ignore, stars:rating, when:timestamp\n"
                                     "items = i.csv\nitems.columns = id, name:title, tags:multi(|)\n"
                                     "users = u.csv\nusers.columns = id, country:categorical\n"));
    char *items = tu_path(d, "i.csv"), *ratings = tu_path(d, "r.csv"), *users = tu_path(d, "u.csv");
    FILE *f = fopen(items, "w"), *r = fopen(ratings, "w"), *u_f = fopen(users, "w");
    assert_true(f && r && u_f);
    free(items), free(ratings), free(users);
    fprintf(f, "id,name,tags\n");
    fprintf(r, "who;what;note;stars;when\n");
    fprintf(u_f, "id,country\n");
    for (int i = 0; i < 30; i++) fprintf(f, "sku-%d,Item %d,t%d|t%d\n", i, i, i % 3, i % 5);
    for (int u = 0; u < 20; u++) {
        fprintf(u_f, "cust-%d,%s\n", u, u % 2 ? "FR" : "JP");
        for (int k = 0; k < 6; k++) fprintf(r, "cust-%d;sku-%d;x;%d;%d\n", u, (u * 7 + k * 3) % 30, 1 + (u + k) % 5, 1000 + k);
    }
    fclose(f), fclose(r), fclose(u_f);
    g.model = tu_path(d, "m.cbrec");
    assert_int_equal(sh("%s train --data %s --model %s --user-layers 8 --item-layers 8 --dim 4 --epochs 1 --neighbours 0 "
                        "-q >/dev/null", cbrec(), d, g.model), 0);
    g.srv = start_server(&g, store, NULL);
    json_decref(post_json(&g, "/v1/users/cust-1/events", "{\"item\": \"sku-2\", \"rating\": 5, \"time\": 2000}", 1, 200));
    json_decref(post_json(&g, "/v1/users/cust-2/events", "{\"item\": \"sku-29\", \"rating\": 1, \"time\": \"1970-01-01T00:33:21Z\"}", 1, 200));
    json_decref(post_json(&g, "/v1/users/cust-new/events", "{\"item\": \"sku-3\", \"rating\": 4, \"time\": 2002}", 1, 200));
    stop_server(&g.srv, SIGTERM);
    /* the layout of the model the server served (recorded in the store), or of --model's */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(sh("%s events export --events %s --out %s %s %s >/dev/null", cbrec(), store, csv,
                            k ? "--model" : "", k ? g.model : ""), 0);
        char *text = NULL;
        size_t len = 0;
        FILE *in = fopen(csv, "r");
        assert_non_null(in);
        assert_int_equal(getdelim(&text, &len, 0, in) > 0, 1);
        fclose(in);
        assert_string_equal(text, "who;what;note;stars;when\ncust-1;sku-2;;5;2000\ncust-2;sku-29;;1;2001\n"
                                  "cust-new;sku-3;;4;2002\n");
        free(text);
    }
    /* appended to a copy of the data, they train (a re-rating replacing the data's; the new user kept) */
    assert_int_equal(sh("cp -r %s %s-copy && tail -n +2 %s >> %s-copy/r.csv", d, d, csv, d), 0);
    const char *train = "--user-layers 8 --item-layers 8 --dim 4 --epochs 1 --neighbours 0 --duplicates last";
    assert_int_equal(sh("%s train --data %s-copy --model %s-copy/m.cbrec %s -q 2>&1 | grep -q "
                        "\"r.csv:124: unknown user id 'cust-new' (not in u.csv; --unlisted-users keep\"", cbrec(), d, d,
                        train), 0);
    assert_int_equal(sh("%s train --data %s-copy --model %s-copy/m.cbrec %s --unlisted-users keep >%s-copy/log 2>&1",
                        cbrec(), d, d, train, d), 0);
    assert_int_equal(sh("grep -q '^1 users of the ratings are not in the users file' %s-copy/log", d), 0);
    assert_int_equal(sh("%s recommend --model %s-copy/m.cbrec --user cust-new >/dev/null", cbrec(), d), 0);
    free(d), free(store), free(csv), free(g.model);
}

/* ---- starting: bad options and files are clear errors, no server */

static void bad_start(void **state) {
    fixture *f = *state;
    char *bad = tu_write(f->dir, "bad.cbrec", "not a model"), *short_token = tu_write(f->dir, "short", "abc\n");
    assert_int_equal(sh("%s serve >/dev/null 2>&1", cbrec()), 2);
    assert_int_equal(sh("%s serve --model %s --threads 0 >/dev/null 2>&1", cbrec(), f->model), 2);
    assert_int_equal(sh("%s serve --model %s --listen 127.0.0.1:0 >/dev/null 2>&1", cbrec(), bad), 1);
    assert_int_equal(sh("%s serve --model %s --listen nowhere >/dev/null 2>&1", cbrec(), f->model), 2);
    assert_int_equal(sh("%s serve --model %s --listen 127.0.0.1:0 --token-file %s >/dev/null 2>&1", cbrec(), f->model,
                        short_token), 1);
    assert_int_equal(sh("%s serve --model %s --listen 127.0.0.1:0 --events %s/no/such/dir/e.sqlite >/dev/null 2>&1",
                        cbrec(), f->model, f->dir), 1);
    assert_int_equal(sh("%s events export --events %s --out %s/x.csv >/dev/null 2>&1", cbrec(), bad, f->dir), 1);
    free(bad);
    free(short_token);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_endpoints),         cmocka_unit_test(new_profile_and_batch),
        cmocka_unit_test(export_then_retrain),    cmocka_unit_test(export_generic_layout),
        cmocka_unit_test(static_assets_and_openapi), cmocka_unit_test(answers_match_openapi),
        cmocka_unit_test(clean_errors),
        cmocka_unit_test(malformed_http),         cmocka_unit_test(token_and_events),
        cmocka_unit_test(reload_good_and_bad),    cmocka_unit_test(reloads_while_counted),
        cmocka_unit_test(sighup_burst_reloads_once_more), cmocka_unit_test(out_of_descriptors_no_spin),
        cmocka_unit_test(kill9_keeps_acknowledged_events),
        cmocka_unit_test(answers_equal_computed_ones), cmocka_unit_test(answers_follow_events),
        cmocka_unit_test(answers_swap_on_reload),
        cmocka_unit_test(overload_is_503),        cmocka_unit_test(overload_burst_is_503),
        cmocka_unit_test(long_request_holds_up_no_other),
        cmocka_unit_test(content_columns_apart),  cmocka_unit_test(added_item_content_whole),
        cmocka_unit_test(title_search_folds),      cmocka_unit_test(served_block_list),
        cmocka_unit_test(added_item_events_refused), cmocka_unit_test(binary_model_ratings),
        cmocka_unit_test(listen_ipv6),            cmocka_unit_test(degenerate_profile_is_422),            cmocka_unit_test(listen_host_name),            cmocka_unit_test(bad_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
