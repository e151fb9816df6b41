/* cmd_serve — the command-line side of the server: `cbrec serve` (options
 * into sv_options, then sv_run) and `cbrec events export` (the server's
 * stored live events as rating rows, to train on with the dataset). It lives
 * in src/serve, not src/cli, because it reaches the server's own header; the
 * dispatch table (src/cli/main.c, cli.h) names these two commands. */
#include "cli/cli.h"
#include "serve/serve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A positive integer option, or -1. */
static long positive(const char *s, long max) {
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 && v <= max ? v : -1;
}

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve", *precompute = "on", *threads = NULL, *max_body = NULL, *timeout = NULL,
               *inflight = NULL, *memory = NULL;
    bool quiet = false;
    sv_options o;
    sv_options_default(&o);
    const cli_opt opts[] = {
        {"model", 'm', "FILE", "the model file (cbrec train)", &o.model_path, NULL, NULL},
        {"table", 't', "FILE", "a similar-items table (cbrec precompute, cbrec add-item)", &o.table_path, NULL, NULL},
        {"block-file", 0, "FILE", "items never shown in a list (recommendations, similar items, title search, the map's "
                                  "points): lines \"item ID\", \"genre NAME\", \"COLUMN VALUE\" (tags violent) or an id; "
                                  "read again on every reload", &o.block_path, NULL, NULL},
        {"listen", 'l', "HOST:PORT", "address (default 127.0.0.1:8080; IPv6: [::1]:8080; a host name: its first address; port 0 = any free port, printed)",
         &o.listen, NULL, NULL},
        {"events", 'e', "FILE", "durable live events (SQLite, WAL); without it POST /v1/users/ID/events is refused",
         &o.events_path, NULL, NULL},
        {"token-file", 'k', "FILE", "bearer token for write and admin endpoints (without it they are refused)",
         &o.token_file, NULL, NULL},
        {"threads", 'j', "N", "workers answering the connections' requests (default 2)", &threads, NULL, NULL},
        {"max-body", 'b', "BYTES", "largest request body (default 1048576; larger: 413)", &max_body, NULL, NULL},
        {"timeout", 'T', "S", "idle connection timeout in seconds (default 10)", &timeout, NULL, NULL},
        {"max-inflight", 'I', "N", "requests waiting or running at once before 503 (default 256)", &inflight, NULL, NULL},
        {"precompute-answers", 'P', "on|off",
         "compute every known user's answer to the default GET /v1/recommend?user=ID (n 10, no other parameter) "
         "when the model loads, and answer those requests, and those with a smaller n, from it (default on)",
         &precompute, NULL, NULL},
        {"answers-memory", 'M', "MIB", "the precomputed answers' memory at most (default 256; past it: computed per request)",
         &memory, NULL, NULL},
        {"quiet", 'q', NULL, "no log lines on stderr", NULL, &quiet, NULL},
        {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {
        cmd,
        "usage: cbrec serve --model FILE [--table FILE] [--block-file FILE] [--listen 127.0.0.1:8080]\n"
        "                   [--events FILE.sqlite] [--token-file FILE] [--threads N] [--max-body BYTES]\n"
        "                   [--timeout S] [--max-inflight N] [--precompute-answers on|off] [--answers-memory MIB] [-q]\n"
        "Serves the JSON API (/v1/..., /healthz, /metrics, /openapi.json) and the web page (/).\n"
        "SIGHUP or POST /v1/admin/reload reloads the model, table and block files; a bad file is refused.\n",
        opts, 0, NULL};
    int st = cli_parse(&c, NULL, argc, argv);
    if (st >= 0) return st;
    if (!o.model_path) return cli_usage_error(&c, "give --model");
    char msg[600];
    if (!sv_listen_valid(o.listen, msg, sizeof msg)) return cli_usage_error(&c, msg); /* before the model loads */
    if (strcmp(precompute, "on") && strcmp(precompute, "off"))
        return cli_fail(CLI_USAGE, cmd, "--precompute-answers takes on or off, not '%s'", precompute);
    o.precompute_answers = !strcmp(precompute, "on");
    o.quiet = quiet;
    const struct { const char *name, *text; long max; } nums[] = {{"threads", threads, 100000},
                                                                  {"max-body", max_body, 1L << 30},
                                                                  {"timeout", timeout, 100000},
                                                                  {"max-inflight", inflight, 100000},
                                                                  {"answers-memory", memory, 1L << 20}};
    long v[5];
    for (int i = 0; i < 5; i++)
        if (nums[i].text && (v[i] = positive(nums[i].text, nums[i].max)) < 0)
            return cli_fail(CLI_USAGE, cmd, "--%s takes a positive integer, not '%s'", nums[i].name, nums[i].text);
    if (threads) o.threads = (int)v[0];
    if (max_body) o.max_body = (size_t)v[1];
    if (timeout) o.timeout_seconds = (unsigned)v[2];
    if (inflight) o.max_inflight = (unsigned)v[3];
    if (memory) o.answers_max_bytes = (size_t)v[4] << 20;
    return sv_run(&o) ? CLI_ERROR : CLI_OK;
}

int cmd_events(int argc, char **argv) {
    const char *cmd = "events", *events = NULL, *out = NULL, *click_text = NULL, *model = NULL;
    double click = NAN;
    const cli_opt opts[] = {{"events", 'e', "FILE.sqlite", "the store of cbrec serve --events", &events, NULL, NULL},
                            {"model", 'm', "FILE", "rows in the layout of this model's data (default: the served one's)",
                             &model, NULL, NULL},
                            {"out", 'o', "FILE", "the rating rows to write (replaced atomically)", &out, NULL, NULL},
                            {"click-rating", 'c', "R", "the rating a click becomes (default: clicks are left out)",
                             &click_text, NULL, NULL},
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {
        cmd,
        "usage: cbrec events export --events FILE.sqlite --out ratings.csv [--model FILE] [--click-rating R]\n"
        "Writes the live events stored by cbrec serve as rating rows, one per user and item: its\n"
        "newest event (clicks are left out unless --click-rating R), laid out as the ratings file of\n"
        "the data the model was trained on (its columns, names, delimiter; a header line when it has\n"
        "one): --model's, else the model the server last loaded (recorded in the store), else (a model\n"
        "or store of an earlier cbrec) as MovieLens latest-small's ratings.csv (userId,movieId,rating,\n"
        "timestamp). To train on them: copy the dataset folder, append the rows to its ratings file\n"
        "(tail -n +2 ratings.csv >> COPY/ratings.csv; the whole file when it has no header line), then\n"
        "cbrec train --data COPY --duplicates last (a live rating of an item the user had rated\n"
        "in the data replaces that rating). Data of events with no rating column (each row a pick)\n"
        "gets no row for a pair whose newest event is valued 0.\n",
        opts, 0, NULL};
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (!help && (argc < 2 || strcmp(argv[1], "export")))
        return cli_usage_error(&c, argc < 2 ? "give the subcommand: export" : "the one subcommand is export");
    int st = cli_parse(&c, NULL, help ? argc : argc - 1, help ? argv : argv + 1);
    if (st >= 0) return st;
    if (!events || !out) return cli_usage_error(&c, "give --events and --out");
    char *end;
    if (click_text && (click = strtod(click_text, &end), !*click_text || *end || !isfinite(click)))
        return cli_fail(CLI_USAGE, cmd, "--click-rating takes a finite number, not '%s'", click_text);
    char wal[4200], shm[4200]; /* the store's companions: SQLite's write-ahead log and its index */
    snprintf(wal, sizeof wal, "%s-wal", events);
    snprintf(shm, sizeof shm, "%s-shm", events);
    int checked = cli_check_output(cmd, out, model, CLI_INPUTS(events, wal, shm));
    if (checked >= 0) return checked;
    cb_recommender *rec = model ? cli_load_model(cmd, model, NULL) : NULL;
    if (model && !rec) return CLI_ERROR;
    const char *layout = rec ? cb_recommender_ratings_layout(rec) : NULL;
    if (rec && !layout)
        fprintf(stderr, "cbrec events: note: %s records no ratings layout (saved by an earlier cbrec, or trained on "
                        "pre-joined data): the MovieLens layout; retrain it to record its data's\n", model);
    sv_export_counts n;
    int failed = sv_events_export(events, out, click, layout, &n);
    cb_recommender_free(rec);
    if (failed) return CLI_ERROR;
    printf("wrote %s: %zu rating rows, one per user and item", out, n.rows);
    if (n.older) printf("; %zu older events of a pair replaced by its newest", n.older);
    if (n.clicks) printf("; %zu clicks left out (give --click-rating R to keep them)", n.clicks);
    if (n.unpicked)
        printf("; %zu pairs whose newest event is valued 0 left out (the data's rows are picks: it has no rating "
               "column)", n.unpicked);
    printf("\n");
    return CLI_OK;
}
