/* cmd_serve — the command-line side of the server: `cbrec serve` (options
 * into sv_options, then sv_run) and `cbrec events export` (the server's
 * stored live events as rating rows, to train on with the dataset). It lives
 * in src/serve, not src/cli, because it reaches the server's own header; the
 * dispatch table (src/cli/main.c, cli.h) names these two commands. */
#include "cli/cli.h"
#include "serve/serve.h"

#include <getopt.h>
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
    const char *cmd = "serve";
    sv_options o;
    sv_options_default(&o);
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"table", required_argument, 0, 't'},
        {"listen", required_argument, 0, 'l'},    {"events", required_argument, 0, 'e'},
        {"token-file", required_argument, 0, 'k'}, {"threads", required_argument, 0, 'j'},
        {"max-body", required_argument, 0, 'b'},  {"timeout", required_argument, 0, 'T'},
        {"max-inflight", required_argument, 0, 'I'}, {"quiet", no_argument, 0, 'q'},
        {"precompute-answers", required_argument, 0, 'P'}, {"answers-memory", required_argument, 0, 'M'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *usage =
        "usage: cbrec serve --model FILE [--table FILE] [--listen 127.0.0.1:8080] [--events FILE.sqlite]\n"
        "                   [--token-file FILE] [--threads N] [--max-body BYTES] [--timeout S] [--max-inflight N]\n"
        "                   [--precompute-answers on|off] [--answers-memory MIB] [-q]\n"
        "Serves the JSON API (/v1/..., /healthz, /metrics, /openapi.json) and the web page (/).\n"
        "  --listen HOST:PORT  address (default 127.0.0.1:8080; IPv6: [::1]:8080; port 0 = any free port, printed)\n"
        "  --events FILE       durable live events (SQLite, WAL); without it POST /v1/users/ID/events is refused\n"
        "  --token-file FILE   bearer token for write and admin endpoints (without it they are refused)\n"
        "  --threads N         workers answering the connections' requests (default 2)\n"
        "  --max-body BYTES    largest request body (default 1048576; larger: 413)\n"
        "  --timeout S         idle connection timeout in seconds (default 10)\n"
        "  --max-inflight N    requests waiting or running at once before 503 (default 256)\n"
        "  --precompute-answers on|off  compute every known user's GET /v1/recommend?user=ID answer (default n,\n"
        "                      no other parameter) when the model loads, and answer those requests, and those with\n"
        "                      a smaller n, from it (default on)\n"
        "  --answers-memory MIB  the precomputed answers' memory at most (default 256; past it: computed per request)\n"
        "SIGHUP or POST /v1/admin/reload reloads the model and table files; a bad file is refused.\n";
    int c;
    long v = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:l:e:k:j:b:T:I:P:M:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model_path = optarg; break;
        case 't': o.table_path = optarg; break;
        case 'l': o.listen = optarg; break;
        case 'e': o.events_path = optarg; break;
        case 'k': o.token_file = optarg; break;
        case 'q': o.quiet = true; break;
        case 'P':
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                return cli_fail(CLI_USAGE, cmd, "--precompute-answers takes on or off, not '%s'", optarg);
            o.precompute_answers = !strcmp(optarg, "on");
            break;
        case 'h': return fputs(usage, stdout), CLI_OK;
        case 'j': case 'b': case 'T': case 'I': case 'M':
            if ((v = positive(optarg, c == 'b' ? (1L << 30) : c == 'M' ? (1L << 20) : 100000)) < 0)
                return cli_fail(CLI_USAGE, cmd, "--%s takes a positive integer, not '%s'",
                                c == 'j' ? "threads" : c == 'b' ? "max-body" : c == 'T' ? "timeout" :
                                c == 'M' ? "answers-memory" : "max-inflight", optarg);
            if (c == 'j') o.threads = (int)v;
            else if (c == 'M') o.answers_max_bytes = (size_t)v << 20;
            else if (c == 'b') o.max_body = (size_t)v;
            else if (c == 'T') o.timeout_seconds = (unsigned)v;
            else o.max_inflight = (unsigned)v;
            break;
        default: return fputs(usage, stderr), CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model_path) return fputs(usage, stderr), CLI_USAGE;
    return sv_run(&o) ? CLI_ERROR : CLI_OK;
}

int cmd_events(int argc, char **argv) {
    const char *cmd = "events", *events = NULL, *out = NULL;
    double click = NAN;
    static const struct option opts[] = {{"events", required_argument, 0, 'e'}, {"out", required_argument, 0, 'o'},
                                         {"click-rating", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *usage =
        "usage: cbrec events export --events FILE.sqlite --out ratings.csv [--click-rating R]\n"
        "Writes the live events stored by cbrec serve as rating rows \"userId,movieId,rating,timestamp\"\n"
        "(the MovieLens latest-small ratings.csv layout), one per user and item: its newest event\n"
        "(clicks are left out unless --click-rating R). To train on them: copy the dataset folder,\n"
        "append the rows to its ratings file (tail -n +2 ratings.csv >> COPY/ratings.csv), then\n"
        "cbrec train --data COPY --duplicates last (a live rating of an item the user had rated\n"
        "in the data replaces that rating).\n";
    if (argc < 2 || strcmp(argv[1], "export")) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(usage, stdout), CLI_OK;
        return fputs(usage, stderr), CLI_USAGE;
    }
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "e:o:c:h", opts, NULL)) != -1) {
        char *end;
        if (c == 'e') events = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'c' && (click = strtod(optarg, &end), *optarg && !*end && isfinite(click))) continue;
        else if (c == 'h') return fputs(usage, stdout), CLI_OK;
        else return fputs(usage, stderr), CLI_USAGE;
    }
    if (optind < argc - 1) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (!events || !out) return fputs(usage, stderr), CLI_USAGE;
    char wal[4200], shm[4200]; /* the store's companions: SQLite's write-ahead log and its index */
    snprintf(wal, sizeof wal, "%s-wal", events);
    snprintf(shm, sizeof shm, "%s-shm", events);
    int checked = cli_check_output(cmd, out, NULL, CLI_INPUTS(events, wal, shm));
    if (checked >= 0) return checked;
    sv_export_counts n;
    if (sv_events_export(events, out, click, &n)) return CLI_ERROR;
    printf("wrote %s: %zu rating rows, one per user and item", out, n.rows);
    if (n.older) printf("; %zu older events of a pair replaced by its newest", n.older);
    if (n.clicks) printf("; %zu clicks left out (give --click-rating R to keep them)", n.clicks);
    printf("\n");
    return CLI_OK;
}
