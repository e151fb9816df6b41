/* cbrec — command-line entry point: dispatches to one command per file. */
#include "cli.h"

#include <jansson.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cbrec version: the version; --help its usage (it printed the version),
 * anything else a usage error (it was ignored). */
static int cmd_version(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return printf("usage: cbrec version   (prints the library's version: cbrec %s)\n", cb_version()), CLI_OK;
    if (argc > 1)
        return fprintf(stderr, "cbrec version: takes no options ('%s')\nusage: cbrec version\n", argv[1]), CLI_USAGE;
    printf("cbrec %s\n", cb_version());
    return CLI_OK;
}

/* Under mpirun a command either shares its work across the ranks (train,
 * eval, batch recommend, precompute: cli_mpi_begin in its file) or is rank
 * 0's alone: the other ranks leave at once, so a prediction is printed
 * once, a server binds its port once and a file is written by one process. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
    bool shared; /* under mpirun: the ranks share the work (else rank 0 alone) */
} command;

static const command commands[] = {
    {"version", cmd_version, "print the version", false},
    {"train", cmd_train, "train the two towers on a dataset and write a model file", true},
    {"predict", cmd_predict, "predict the rating of a user for an item", false},
    {"embed", cmd_embed, "export the item and user vectors of a model", false},
    {"inspect", cmd_inspect, "load a dataset and print what was loaded and its features", false},
    {"synth", cmd_synth, "generate a synthetic dataset with planted structure", false},
    {"similar", cmd_similar, "the items most similar to an item (by id or title)", false},
    {"precompute", cmd_precompute, "build the similar-items table of the whole catalog", true},
    {"index", cmd_index, "build the approximate nearest-neighbour index (HNSW) of a large catalog", false},
    {"recommend", cmd_recommend, "recommend items for a known or new user, with reasons", true},
    {"add-item", cmd_add_item, "embed a new item and insert it into a similar-items table", false},
    {"eval", cmd_eval, "measure the two-tower model beside the baselines (RMSE, top-N, coverage)", true},
    {"experiment", cmd_experiment, "experiment retrieval: how the retrieval size changes the final top-N", false},
    {"report", cmd_report, "write a Markdown report: evaluation, retrieval experiment, learning curve", false},
    {"serve", cmd_serve, "serve the HTTP API and web page over a model (live events, hot reload)", false},
    {"events", cmd_events, "events export: the server's stored live events as rating rows", false},
    
    
};

int cli_error(const char *cmd, const cb_error *err) {
    fprintf(stderr, "cbrec %s: %s\n", cmd, err->msg[0] ? err->msg : cb_strstatus(err->code));
    return CLI_ERROR;
}

/* The message is written whole, in one call: under mpirun the ranks share
 * stderr, and a line written in pieces could be cut by another rank's. */
int cli_fail(int status, const char *cmd, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cb_utf8_repair(msg); /* an input quoted by "%.80s" may be cut inside a character */
    fprintf(stderr, "cbrec %s: %s%s\n", cmd, msg, len >= (int)sizeof msg ? " [...]" : "");
    return status;
}

cb_recommender *cli_load_model(const char *cmd, const char *model, const char *table) {
    cb_error err = {0};
    cb_recommender *rec = NULL;
    if (cb_recommender_load_model(&rec, model, table, &err)) cli_error(cmd, &err);
    else cli_history_note(cmd, rec);
    return rec;
}

void cli_history_note(const char *cmd, const cb_recommender *rec) {
    if (*cb_recommender_history_note(rec) && cli_mpi_launched_rank() == 0)
        fprintf(stderr, "cbrec %s: note: %s\n", cmd, cb_recommender_history_note(rec));
}

bool cli_history_absent(const cb_recommender *rec) {
    char *doc = NULL;
    cb_error err = {0};
    if (cb_recommender_describe(rec, &doc, &err)) return false;
    json_t *o = json_loads(doc, 0, NULL);
    const char *history = json_string_value(json_object_get(o, "history"));
    bool absent = history && !strcmp(history, "absent");
    json_decref(o);
    free(doc);
    return absent;
}

const char *cli_line(const char *s, char *buf, size_t size) {
    if (!s) return "";
    const char *p = s;
    while (*p && (unsigned char)*p >= 0x20 && *p != 0x7F) p++;
    if (!*p || size < 4) return s;
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len && n < size - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
    }
    if (n == len) return buf[n] = 0, buf;
    n = size - 4; /* cut: "..." after the last whole character */
    while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80) n--;
    memcpy(buf + n, "...", 4);
    return buf;
}

/* The terminal columns of code point c: 2 for East Asian wide and emoji
 * ranges (Unicode's East_Asian_Width W and F, the common blocks), 0 for
 * combining marks and zero-width characters (the common blocks), else 1. */
static int columns_of(uint32_t c) {
    static const uint32_t zero[][2] = {{0x300, 0x36F},   {0x483, 0x489},   {0x591, 0x5BD},   {0x610, 0x61A},
                                       {0x64B, 0x65F},   {0x900, 0x903},   {0x93A, 0x94F},   {0x1AB0, 0x1AFF},
                                       {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x20D0, 0x20FF}, {0xFE00, 0xFE0F},
                                       {0xFE20, 0xFE2F}};
    static const uint32_t two[][2] = {{0x1100, 0x115F},   {0x231A, 0x231B},   {0x23E9, 0x23EC},  {0x25FD, 0x25FE},
                                      {0x2614, 0x2615},   {0x2648, 0x2653},   {0x26A1, 0x26A1},  {0x26AA, 0x26AB},
                                      {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26D4, 0x26D4},  {0x26EA, 0x26EA},
                                      {0x26F2, 0x26F5},   {0x26FA, 0x26FD},   {0x2705, 0x2705},  {0x270A, 0x270B},
                                      {0x2728, 0x2728},   {0x274C, 0x274C},   {0x2753, 0x2757},  {0x2795, 0x2797},
                                      {0x27B0, 0x27B0},   {0x27BF, 0x27BF},   {0x2B1B, 0x2B1C},  {0x2B50, 0x2B55},
                                      {0x2E80, 0x303E},   {0x3041, 0xA4CF},   {0xAC00, 0xD7A3},  {0xF900, 0xFAFF},
                                      {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},  {0x1F300, 0x1F64F},
                                      {0x1F680, 0x1F6FF}, {0x1F900, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x3FFFD}};
    for (size_t i = 0; i < sizeof zero / sizeof *zero; i++)
        if (c >= zero[i][0] && c <= zero[i][1]) return 0;
    for (size_t i = 0; i < sizeof two / sizeof *two; i++)
        if (c >= two[i][0] && c <= two[i][1]) return 2;
    return 1;
}

int cli_pad(const char *s, int columns) {
    size_t len = s ? strlen(s) : 0, used = 0;
    for (size_t i = 0, n; i < len; i += n) {
        uint32_t c;
        n = cb_utf8_decode(s + i, len - i, &c);
        if (!n) n = 1, c = '?'; /* printed as it is: one column, as the terminal's replacement */
        used += (size_t)columns_of(c);
    }
    return used >= (size_t)columns ? 0 : columns + (int)(len - used);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f) {
    fprintf(f, "usage: cbrec <command> [options]   (cbrec <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

/* An unknown command: told as a usage error (cli_mpi_usage: under mpirun
 * once, by rank 0), with the list of commands. */
static int unknown_command(const char *name) {
    const char *names[sizeof commands / sizeof commands[0]];
    char near[200], *rest = NULL;
    size_t len = 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) names[i] = commands[i].name;
    FILE *f = open_memstream(&rest, &len);
    if (!f) return CLI_USAGE;
    if (cb_config_near_names(name, names, sizeof commands / sizeof commands[0], NULL, near, sizeof near))
        fprintf(f, ": unknown command '%s' (did you mean %s?)\n", name, near);
    else
        fprintf(f, ": unknown command '%s'\n", name);
    usage(f);
    int status = fclose(f) ? CLI_USAGE : cli_mpi_usage("cbrec", rest);
    free(rest);
    return status;
}

int main(int argc, char **argv) {
    const command *cmd = NULL;
    for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) cmd = &commands[i];
    cli_mpi_args(argc, argv, !cmd || cmd->shared);
    if (argc < 2) {
        if (cli_mpi_launched_rank() == 0) usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        int st = cli_mpi_alone("cbrec"); /* under mpirun rank 0 prints it */
        if (st < 0) usage(stdout);
        return st < 0 ? CLI_OK : st;
    }
    if (!strcmp(argv[1], "--version")) {
        int st = cli_mpi_alone("cbrec");
        if (st < 0) printf("cbrec %s\n", cb_version());
        return st < 0 ? CLI_OK : st;
    }
    if (!cmd) return unknown_command(argv[1]);
    int st = cmd->shared ? -1 : cli_mpi_alone(cmd->name); /* under mpirun the other ranks leave */
    return st >= 0 ? st : cmd->run(argc - 1, argv + 1);
}
