/* cbrec similar / precompute / recommend / add-item — the front end of the
 * recommender: parse options, load the model (and table) as a cb_recommender,
 * call the public API (include/cbrec.h only), print for people or the
 * library's JSON. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool parse_count(const char *s, unsigned long lo, unsigned long hi, size_t *out) {
    char *end;
    if (!*s || *s == '-') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi) return false;
    *out = (size_t)v;
    return true;
}

/* --item ID|TITLE: print the candidates of an ambiguous title. */
static int find_item(const char *cmd, const cb_recommender *rec, const char *query, size_t *item) {
    cb_error err = {0};
    size_t cands[10], n_cands = 0;
    if (!cb_recommender_find_item(rec, query, item, cands, 10, &n_cands, &err)) return CLI_OK;
    cli_error(cmd, &err);
    if (n_cands) fprintf(stderr, "candidates (most rated first); choose one with --item ID:\n");
    char id[CLI_LINE_MAX], title[CLI_LINE_MAX];
    for (size_t i = 0; i < n_cands; i++) {
        const char *s = cli_line(cb_recommender_item_id(rec, cands[i]), id, sizeof id);
        fprintf(stderr, "  %-*s %s\n", cli_pad(s, 8), s, cli_line(cb_recommender_item_title(rec, cands[i]), title, sizeof title));
    }
    return CLI_ERROR;
}

static void print_notes(const cb_list *l) {
    char note[CLI_LINE_MAX];
    for (size_t i = 0; i < cb_list_n_notes(l); i++) fprintf(stderr, "note: %s\n", cli_line(cb_list_note(l, i), note, sizeof note));
}

/* The rows of a list for people: rank, id, score (`score_width` wide), title. */
static void print_rows(FILE *f, const cb_list *l, size_t i, int score_width, int decimals) {
    char id[CLI_LINE_MAX], title[CLI_LINE_MAX];
    const char *s = cli_line(cb_list_item_id(l, i), id, sizeof id);
    fprintf(f, "%3zu  %-*s %*.*f  %s\n", i + 1, cli_pad(s, 8), s, score_width, decimals, (double)cb_list_score(l, i),
            cli_line(cb_list_title(l, i), title, sizeof title));
}

/* An item for people, on one line: "TITLE (ID)", or with id_first "ID
 * (TITLE)"; the id alone when the item has no title. */
static void print_item_name(FILE *f, const cb_recommender *rec, size_t item, bool id_first) {
    char id[CLI_LINE_MAX], title[CLI_LINE_MAX];
    const char *t = cb_recommender_item_title(rec, item), *i = cli_line(cb_recommender_item_id(rec, item), id, sizeof id);
    if (!t || !*t) fputs(i, f);
    else if (id_first) fprintf(f, "%s (%s)", i, cli_line(t, title, sizeof title));
    else fprintf(f, "%s (%s)", cli_line(t, title, sizeof title), i);
}

/* The list as the library's JSON document, one line. */
static int print_json(const char *cmd, const cb_list *l) {
    cb_error err = {0};
    char *s = NULL;
    if (cb_list_to_json(l, &s, &err)) return cli_error(cmd, &err);
    puts(s);
    free(s);
    return CLI_OK;
}

/* ---- similar */

static const char *similar_usage =
    "usage: cbrec similar --model FILE --item ID|TITLE [-k 10] [--table TABLE] [--json]\n"
    "the k items nearest to an item (the item itself excluded); score = cosine similarity\n"
    "of the item vectors (higher = closer). --item takes an id, else a case-insensitive title\n"
    "(\"Toy Story\"); when several titles match, the candidates are listed and the status is 1.\n"
    "--table looks the answer up in a table from `cbrec precompute` (the same answer);\n"
    "--index searches an approximate index from `cbrec index` (large catalogs).\n";

int cmd_similar(int argc, char **argv) {
    const char *cmd = "similar", *model = NULL, *query = NULL, *table = NULL, *k_text = "10";
    bool json = false;
    size_t k;
    cli_search search = {0};
    const cli_opt opts[] = {{"model", 'm', "FILE", "the model file", &model, NULL, NULL},
                            {"item", 'i', "ID|TITLE", "the item, by id or title", &query, NULL, NULL},
                            {"k", 'k', "K", "how many (10)", &k_text, NULL, NULL},
                            {"table", 't', "TABLE", "a table from `cbrec precompute`", &table, NULL, NULL},
                            CLI_SEARCH_OPTS(search),
                            {"json", 'j', NULL, "the list as one JSON document: {criterion, items: [{rank, item, title, score, rating, sources, reasons}], notes} (a recommend list's shape: rating null, sources and reasons empty)", NULL, &json, NULL},
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {cmd, similar_usage, opts, 0, NULL};
    int st = cli_parse(&c, NULL, argc, argv);
    if (st >= 0) return st;
    if (!model || !query || !query[strspn(query, " \t")])
        return cli_usage_error(&c, "give --model and --item (an id or a title)");
    if (!parse_count(k_text, 1, 1u << 30, &k)) return cli_usage_error(&c, "-k must be a positive integer");
    cb_error err = {0};
    cb_list *l = NULL;
    size_t item;
    int status = CLI_ERROR;
    cb_recommender *rec = cli_load_model(cmd, model, table);
    if (!rec || (status = cli_search_apply(cmd, rec, &search, NULL)) || (status = CLI_ERROR, find_item(cmd, rec, query, &item)))
        goto done;
    if (cb_recommender_similar(rec, item, k, &l, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    print_notes(l);
    if (json) {
        status = print_json(cmd, l);
        goto done;
    }
    printf("items similar to ");
    print_item_name(stdout, rec, item, false);
    printf(", by %s:\n", cb_list_criterion(l));
    for (size_t i = 0; i < cb_list_size(l); i++) print_rows(stdout, l, i, 0, 4);
    status = CLI_OK;
done:
    cb_list_free(l);
    cb_recommender_free(rec);
    return status;
}

/* ---- precompute */

static const char *precompute_usage =
    "usage: cbrec precompute --model FILE --out TABLE [-k 20] [--threads N] [--index INDEX | --exact]\n"
    "the similar-items table of the whole catalog (k nearest per item), written atomically;\n"
    "use it with `cbrec similar --table` and `cbrec recommend --table`. Catalogs of "
    CLI_STR(CB_ANN_AUTO_MIN_ITEMS) " items\nor more are searched approximately: with --index, or an index built on the spot\n"
    "(`cbrec index`; recall@10 >= 0.95); --exact always computes the exact table.\n";

/* The exact table across the ranks: each computes its share of the rows,
 * rank 0 gathers them (in order: the bits of one process) and installs them. */
static int build_shared(const char *cmd, cb_recommender *rec, size_t k, int threads, cli_mpi *mp, bool *gathered) {
    size_t n = cb_recommender_item_count(rec), lo, hi, got[2] = {0, 0};
    if (k > n - 1) k = n - 1;
    cli_mpi_share(mp, n, 1, &lo, &hi);
    int32_t *nb = malloc(((hi - lo) * k + 1) * sizeof *nb);
    float *dist = malloc(((hi - lo) * k + 1) * sizeof *dist);
    char *all[2] = {NULL, NULL};
    cb_error err = {0};
    int status = nb && dist ? -1 : cli_fail(CLI_ERROR, cmd, "out of memory");
    /* a refusal (a catalog of one item) comes on every rank: told once */
    if (status < 0)
        status = cli_mpi_told(mp, cmd, cb_recommender_table_rows(rec, k, threads, lo, hi - lo, nb, dist, &err), &err);
    if (status < 0) status = cli_mpi_gather(mp, cmd, nb, (hi - lo) * k * sizeof *nb, &all[0], &got[0]);
    if (!status) status = cli_mpi_gather(mp, cmd, dist, (hi - lo) * k * sizeof *dist, &all[1], &got[1]);
    *gathered = !status; /* every rank passed the gathers: what rank 0 does next is settled with all */
    if (!status && !mp->rank && (got[0] != n * k * sizeof *nb || got[1] != n * k * sizeof *dist))
        status = cli_fail(CLI_ERROR, cmd, "the ranks' table rows add up to %zu and %zu bytes, not %zu", got[0], got[1],
                          n * k * sizeof *nb);
    if (!status && !mp->rank && cb_recommender_set_table(rec, k, (int32_t *)(void *)all[0], (float *)(void *)all[1], &err))
        status = cli_error(cmd, &err);
    free(nb), free(dist), free(all[0]), free(all[1]);
    return status;
}

int cmd_precompute(int argc, char **argv) {
    const char *cmd = "precompute", *model = NULL, *out = NULL, *k_text = "20", *threads_text = "0";
    size_t k, threads;
    cli_search search = {0};
    const cli_opt opts[] = {{"model", 'm', "FILE", "the model file", &model, NULL, NULL},
                            {"out", 'o', "TABLE", "the table to write", &out, NULL, NULL},
                            {"k", 'k', "K", "neighbours per item (20)", &k_text, NULL, NULL},
                            {"threads", 0, "N", "threads of the search (0 = all CPUs)", &threads_text, NULL, NULL},
                            CLI_SEARCH_OPTS(search),
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {cmd, precompute_usage, opts, 0, NULL};
    int st = cli_parse(&c, NULL, argc, argv);
    if (st >= 0) return st;
    if (!model || !out) return cli_usage_error(&c, "give --model and --out");
    if (!parse_count(k_text, 1, 1u << 20, &k)) return cli_usage_error(&c, "-k must be 1..2^20");
    if (!parse_count(threads_text, 0, 256, &threads)) return cli_usage_error(&c, "--threads must be 0..256");
    cb_error err = {0};
    int status = cli_check_output(cmd, out, model, CLI_INPUTS(search.index));
    if (status >= 0) return status;
    cb_recommender *rec = NULL;
    bool gathered = false;
    cli_mpi mp = {.size = 1}; /* under mpirun the ranks share the exact table's rows */
    if ((status = cli_mpi_begin(&mp, cmd, NULL)) >= 0 ||
        (status = cli_mpi_told(&mp, cmd, cb_recommender_load_model(&rec, model, NULL, &err), &err)) >= 0 ||
        (cli_history_note(cmd, rec), status = cli_search_apply(cmd, rec, &search, &mp)) ||
        (status = cli_mpi_agree_model(&mp, cmd, rec)) >= 0)
        goto done;
    status = CLI_ERROR;
    threads = cli_mpi_threads(&mp, threads);
    size_t n_items = cb_recommender_item_count(rec);
    /* ids + scores: 8 bytes a neighbour (rank 0 says it); below 2 items the build's error says all, and
     * from the catalog's size on the note that k is clamped */
    if (!mp.rank && n_items >= 2 && k * 2 >= n_items && k < n_items)
        fprintf(stderr, "warning: -k %zu is near the catalog's %zu items: the table will hold about %zu x %zu neighbours "
                        "(%.1f MB); similar-items lists rarely need more than 100\n",
                k, n_items, n_items, k, (double)n_items * (double)k * 8.0 / 1e6);
    double t0 = cli_now(); /* --out was checked writable before the model was loaded (cli_check_output) */
    if (mp.size > 1 && !search.exact && (search.index || n_items >= CB_ANN_AUTO_MIN_ITEMS)) {
        if (!mp.rank) fprintf(stderr, "note: the approximate table is built by rank 0 alone (--exact shares the exact one)\n");
        else {
            status = CLI_OK;
            goto done;
        }
        mp.size = 1;
    }
    if (!search.exact && !search.index && n_items >= CB_ANN_AUTO_MIN_ITEMS) {
        /* ef_construction 64, not the index's default 200: the table (each walk
         * from the item itself) keeps recall@10 >= 0.95 (README, Approximate search) */
        if (cb_recommender_build_index(rec, 0, 64, (int)threads, &err)) {
            cli_error(cmd, &err);
            goto done;
        }
        fprintf(stderr, "note: %zu items: built an approximate index (%.2fs); --exact for the exact table\n",
                n_items, cli_now() - t0);
    }
    if (mp.size > 1 ? build_shared(cmd, rec, k, (int)threads, &mp, &gathered) : cb_recommender_build_table(rec, k, (int)threads, &err) ? cli_error(cmd, &err) : CLI_OK)
        goto done;
    if (mp.rank) { /* the table is rank 0's to write */
        status = CLI_OK;
        goto done;
    }
    size_t kk = cb_recommender_table_k(rec);
    if (kk < k) fprintf(stderr, "note: k = %zu is more than the other items in the catalog; using %zu\n", k, kk);
    double t1 = cli_now();
    if (cb_recommender_save_table(rec, out, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    fprintf(stderr, "wrote %s: %zu items x %zu neighbours (search %.2fs)\n", out, cb_recommender_item_count(rec), kk,
            t1 - t0);
    status = CLI_OK;
done:
    if (gathered) { /* rank 0's table (installed, then written): every rank stops with it, none stopped */
        int settled = cli_mpi_settle(&mp, status != CLI_OK);
        if (settled >= 0) status = settled;
    }
    status = cli_mpi_end(&mp, cmd, status);
    cb_recommender_free(rec);
    return status;
}

/* ---- add-item */

static const char *add_item_usage =
    "usage: cbrec add-item --model FILE [--table TABLE] --item-json FILE --out TABLE2\n"
    "embed a new item from its features (no retraining) and add it to the catalog. With --table\n"
    "(from `cbrec precompute`, or an earlier TABLE2) it is inserted into the neighbour lists too;\n"
    "without, TABLE2 holds only the added items (their ids, titles, genres, other content and vectors; no lists).\n"
    "Either way `cbrec recommend --table TABLE2` can recommend it and `cbrec similar --table TABLE2`\n"
    "shows it. FILE: {\"id\": \"x1\", \"title\": \"T (2024)\", \"genres\": [\"Adventure\"], ...}\n";

/* A user-given text file (--item-json, --new-user, --users FILE): regular
 * files only, at most max_len bytes, without the UTF-8 byte-order mark a
 * Windows editor writes first (the data files accept one too); NULL with
 * why in err. */
static char *user_file_text(const char *path, size_t max_len, cb_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (!cb_file_read(path, max_len, &text, &len, err) && len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        memmove(text, text + 3, len - 2); /* with the NUL */
    return text;
}

/* The same, NULL after printing why. */
static char *read_user_file(const char *cmd, const char *path, size_t max_len) {
    cb_error err = {0};
    char *text = user_file_text(path, max_len, &err);
    if (!text) cli_error(cmd, &err);
    return text;
}

int cmd_add_item(int argc, char **argv) {
    const char *cmd = "add-item", *model = NULL, *table = NULL, *item_json = NULL, *out = NULL;
    const cli_opt opts[] = {{"model", 'm', "FILE", "the model file", &model, NULL, NULL},
                            {"table", 't', "TABLE", "the table (or added-items file) to add to", &table, NULL, NULL},
                            {"item-json", 'i', "FILE", "the new item", &item_json, NULL, NULL},
                            {"out", 'o', "TABLE2", "the grown table (or added-items file) to write", &out, NULL, NULL},
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {cmd, add_item_usage, opts, 0, NULL};
    int st = cli_parse(&c, NULL, argc, argv);
    if (st >= 0) return st;
    if (!model || !item_json || !out) return cli_usage_error(&c, "give --model, --item-json and --out");
    int status = cli_check_output(cmd, out, model, CLI_INPUTS(table, item_json));
    if (status >= 0) return status;
    cb_error err = {0};
    cb_list *l = NULL;
    size_t item;
    status = CLI_ERROR;
    char *text = read_user_file(cmd, item_json, 16u << 20);
    if (!text) return CLI_ERROR;
    cb_recommender *rec = cli_load_model(cmd, model, table);
    if (!rec) goto done;
    if (cb_recommender_add_item(rec, text, &item, &err) || cb_recommender_save_table(rec, out, &err)) {
        fprintf(stderr, "cbrec %s: %s: %s\n", cmd, item_json, err.msg);
        goto done;
    }
    if (*cb_recommender_add_item_note(rec))
        fprintf(stderr, "cbrec %s: warning: %s: %s\n", cmd, item_json, cb_recommender_add_item_note(rec));
    size_t k = cb_recommender_table_k(rec) < 10 ? cb_recommender_table_k(rec) : 10;
    if (k == 0) { /* no neighbour lists: nothing to show but the item */
        fprintf(stderr, "wrote %s: added item ", out);
        print_item_name(stderr, rec, item, true);
        fprintf(stderr, " (an added-items file without similar-items lists; for `similar`, add to a table from "
                        "`cbrec precompute`)\n");
        status = CLI_OK;
        goto done;
    }
    if (cb_recommender_similar(rec, item, k, &l, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    fprintf(stderr, "wrote %s: added item ", out);
    print_item_name(stderr, rec, item, true);
    fprintf(stderr, "; its nearest items (%s):\n", cb_list_criterion(l));
    for (size_t i = 0; i < cb_list_size(l); i++) print_rows(stderr, l, i, 0, 4);
    status = CLI_OK;
done:
    free(text);
    cb_list_free(l);
    cb_recommender_free(rec);
    return status;
}

/* ---- recommend */

static const char *recommend_usage =
    "usage: cbrec recommend --model FILE (--user ID | --new-user FILE.json | --users all|FILE) [-n 10] [options]\n"
    "retrieval from several sources, filtering, ranking by one criterion (--rank-by auto: a model trained\n"
    "for retrieval, the default, ranks by its retrieval score plus the neighbour component; a rating\n"
    "model by the predicted rating), with the reasons for every item. --users ranks\n"
    "many users over the whole catalog at once (one GEMM per block; the sources are not used) and writes\n"
    "one JSON line per user to --out: {\"user\", \"criterion\", \"items\": [{\"item\", \"score\"}]}.\n"
    "Aliases: -n N = --n N; --block FILE = --block-file FILE; --no-similar, --no-genre, --no-group,\n"
    "--no-embedding = --recent 0, --top-genres 0, --group-items 0, --embedding 0;\n"
    "--diversity mmr:LAMBDA = --diversity mmr --mmr-lambda LAMBDA.\n";

typedef struct rec_args {
    const char *model, *user, *new_user, *users, *out, *table, *history;
    bool json, explain;
} rec_args;

/* argv with the aliases above spelt as keys (strings are static or argv's). */
static char **rewrite_aliases(int argc, char **argv, int *argc_out) {
    char **out = calloc(2 * (size_t)argc + 1, sizeof *out);
    int n = 0;
    static const char *const off[][2] = {{"--no-similar", "--recent=0"},
                                         {"--no-genre", "--top-genres=0"},
                                         {"--no-group", "--group-items=0"},
                                         {"--no-embedding", "--embedding=0"}};
    for (int i = 0; out && i < argc; i++) {
        const char *a = argv[i];
        bool done = false;
        for (size_t k = 0; k < 4 && !done; k++)
            if (!strcmp(a, off[k][0])) out[n++] = (char *)off[k][1], done = true;
        if (done) continue;
        if (!strcmp(a, "-n")) out[n++] = "--n";
        else if (!strcmp(a, "--block")) out[n++] = "--block-file";
        else if (!strcmp(a, "--diversity") && i + 1 < argc && !strncmp(argv[i + 1], "mmr:", 4)) {
            out[n++] = "--diversity=mmr";
            out[n++] = "--mmr-lambda";
            out[n++] = argv[++i] + 4;
        } else out[n++] = (char *)a;
    }
    *argc_out = n;
    return out;
}

/* err: "out of memory" */
static int no_memory(cb_error *err) {
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return err->code = CB_ENOMEM;
}

/* The user numbers of --users all|FILE; a status and err (not printed). */
static int batch_users(const cb_recommender *rec, const char *spec, size_t **out, size_t *n_out, cb_error *err) {
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    if (!strcmp(spec, "all")) return *n_out = cb_recommender_user_count(rec), CB_OK;
    char *text = user_file_text(spec, (size_t)64 << 20, err), *save = NULL;
    if (!text) return err->code ? err->code : CB_EIO;
    size_t cap = 64, *users = malloc(cap * sizeof *users);
    char *id = malloc(strlen(text) + 1); /* a line's id: never longer than the line */
    int status = users && id ? CB_OK : no_memory(err);
    size_t lineno = 0;
    for (char *p = text, *line; !status && p; p = save) {
        line = p;
        save = strchr(p, '\n');
        if (save) *save++ = 0;
        lineno++;
        line[strcspn(line, "\r")] = 0;
        size_t u = 0;
        cb_error why = {0};
        bool escaped = !cb_id_line_unescape(id, line, &why); /* as `cbrec embed` writes ids */
        bool found = escaped && id[0] && !cb_recommender_find_user(rec, id, &u, &why);
        /* '#' starts a comment, unless the line is a user's id ("#u1" was skipped without a word) */
        if (!found && (!line[0] || line[0] == '#')) continue;
        if (!escaped || !found) {
            if (!escaped) snprintf(err->msg, sizeof err->msg, "%.200s:%zu: %.280s", spec, lineno, why.msg);
            else snprintf(err->msg, sizeof err->msg, "%.200s:%zu: unknown user '%.80s%s'", spec, lineno, line,
                          strlen(line) > 80 ? "..." : "");
            cb_utf8_repair(err->msg); /* a line quoted by "%.80s" may be cut inside a character */
            status = err->code = CB_EINVAL;
        } else {
            size_t *grown = n == cap ? realloc(users, (cap *= 2) * sizeof *users) : users;
            if (!grown) status = no_memory(err);
            else (users = grown)[n++] = u;
        }
    }
    free(text);
    free(id);
    if (status) free(users);
    else *out = users, *n_out = n;
    return status;
}

/* The JSON lines of users[0..n_users) (NULL: users first..) into f; a
 * status and err (not printed). */
static int batch_lines(const cb_recommender *rec, const size_t *users, size_t first, size_t n_users, size_t n,
                       const cb_config *cfg, FILE *f, cb_error *err) {
    size_t n_all = cb_recommender_item_count(rec);
    if (n > n_all) n = n_all ? n_all : 1; /* a row holds every item at most: -n 100000000 was 800 MB a user */
    int64_t *items = malloc((n_users * n + 1) * sizeof *items);
    float *scores = malloc((n_users * n + 1) * sizeof *scores);
    size_t *ids = users ? NULL : malloc((n_users + 1) * sizeof *ids); /* every user: this share's numbers */
    int status = items && scores && (users || ids) ? CB_OK : no_memory(err);
    for (size_t i = 0; ids && i < n_users; i++) ids[i] = first + i;
    if (!status) status = cb_recommender_recommend_batch(rec, users ? users : ids, n_users, n, cfg, items, scores, err);
    for (size_t i = 0; !status && i < n_users; i++) {
        char *line = NULL;
        status = cb_recommender_batch_row_json(rec, users ? users[i] : first + i, items + i * n, scores + i * n, n, cfg,
                                               &line, err);
        if (!status) fprintf(f, "%s\n", line);
        free(line);
    }
    free(items);
    free(scores);
    free(ids);
    return status;
}

/* The batch's lines could not be written: where, and why (errnum). */
static int write_failed(const char *cmd, const rec_args *a, int errnum) {
    return cli_fail(CLI_ERROR, cmd, "%s: writing the lines failed: %s",
                    a->out && strcmp(a->out, "-") ? a->out : "standard output", strerror(errnum));
}

/* A batch over a model without its history file cannot leave out the
 * users' rated items: said once (one user's list says it in its notes; the
 * batch's lines said nothing). */
static void note_batch_history(const char *cmd, const cb_recommender *rec, const cb_config *cfg) {
    if (strcmp(cb_config_get(cfg, "include-seen"), "true") && cli_history_absent(rec))
        fprintf(stderr, "cbrec %s: note: the model's history file is absent: the users' rated items are not filtered "
                        "out (--history FILE names it)\n", cmd);
}

/* --users: under mpirun each rank ranks its share of the users and rank 0
 * writes every rank's lines, in order (the bytes one process writes). */
static int run_batch(const char *cmd, const cb_recommender *rec, const rec_args *a, const cb_config *cfg,
                     cli_mpi *mp) {
    size_t *users = NULL, n_users = 0, n = (size_t)atol(cb_config_get(cfg, "n")), lo, hi;
    cb_error err = {0};
    /* every rank reads the same --users file and ranks under the same
     * options: an error they all meet (an unknown user, id or block file)
     * is told once (each rank had printed it, then its abort) */
    int status = cli_mpi_told(mp, cmd, batch_users(rec, a->users, &users, &n_users, &err), &err);
    if (status >= 0) return status;
    status = CLI_OK;
    if (!mp->rank) note_batch_history(cmd, rec, cfg);
    cli_mpi_share(mp, n_users, cb_recommender_batch_block(rec), &lo, &hi); /* the bits of one process */
    cb_output *o = NULL; /* --out FILE is written atomically: the old file or the whole new one */
    int opened = !mp->rank && a->out && strcmp(a->out, "-") ? cb_output_open(&o, a->out, &err) : CB_OK;
    FILE *f = o ? cb_output_file(o) : stdout;
    char *part = NULL, *all = NULL;
    size_t part_bytes = 0, all_bytes = 0;
    FILE *mem = mp->size > 1 ? open_memstream(&part, &part_bytes) : NULL;
    if (mp->size > 1 && !mem) status = cli_fail(CLI_ERROR, cmd, "out of memory");
    double t0 = cli_now();
    if (!status) { /* rank 0 that cannot open --out tells it with the others' outcome (it waited alone) */
        int lines = opened ? opened : batch_lines(rec, users ? users + lo : NULL, lo, hi - lo, n, cfg, mem ? mem : f, &err);
        if ((status = cli_mpi_told(mp, cmd, lines, &err)) < 0) status = CLI_OK;
    }
    if (mem && fclose(mem) && !status) status = cli_fail(CLI_ERROR, cmd, "out of memory");
    bool gathered = false; /* every rank passed the gather: rank 0's write is settled with all (below) */
    if (mem && !status && (gathered = !(status = cli_mpi_gather(mp, cmd, part, part_bytes, &all, &all_bytes))) && all &&
        fwrite(all, 1, all_bytes, f) != all_bytes)
        status = write_failed(cmd, a, errno);
    if (!status && !mp->rank && !o && (fflush(stdout) || ferror(stdout))) /* errno: the failed write's */
        status = write_failed(cmd, a, errno ? errno : EIO);
    double t1 = cli_now();
    if (o && status) cb_output_abort(o);
    else if (o && cb_output_commit(o, &err)) status = cli_error(cmd, &err);
    int settled = gathered ? cli_mpi_settle(mp, status != CLI_OK) : -1;
    if (settled >= 0) status = settled;
    if (!status && o)
        fprintf(stderr, "wrote %s: top %zu for %zu users (ranking %.3fs%s)\n", a->out, n, n_users, t1 - t0,
                mp->size > 1 ? ", across the ranks" : "");
    free(users);
    free(part);
    free(all);
    return status;
}

static int run_one(const char *cmd, const cb_recommender *rec, const rec_args *a, const cb_config *cfg) {
    cb_error err = {0};
    cb_list *l = NULL;
    char *json = NULL;
    int status = CLI_OK;
    if (a->new_user && !(json = read_user_file(cmd, a->new_user, 16u << 20))) return CLI_ERROR;
    if (cb_recommender_recommend(rec, a->user, json, cfg, &l, &err)) {
        status = CLI_ERROR;
        if (json && !strncmp(err.msg, "new-user JSON", 13))
            fprintf(stderr, "cbrec %s: %s%s\n", cmd, a->new_user, err.msg + 13);
        else cli_error(cmd, &err);
    } else {
        print_notes(l);
        if (a->json) status = print_json(cmd, l);
        char reason[CLI_LINE_MAX];
        for (size_t i = 0; !a->json && i < cb_list_size(l); i++) {
            print_rows(stdout, l, i, 6, 3);
            for (size_t k = 0; a->explain && k < cb_list_n_reasons(l, i); k++)
                printf("       - %s\n", cli_line(cb_list_reason(l, i, k), reason, sizeof reason));
        }
        if (a->explain && !a->json) printf("ranked by the model's %s\n", cb_list_criterion(l));
    }
    free(json);
    cb_list_free(l);
    return status;
}

/* --out FILE before the model is loaded: writable, and none of the inputs. */
static int check_out(const char *cmd, const rec_args *a, const cli_search *search, const cb_config *cfg) {
    const char *block = cb_config_get(cfg, "block-file"), *users = a->users && strcmp(a->users, "all") ? a->users : NULL;
    return cli_check_output(cmd, a->out, a->model,
                            CLI_INPUTS(a->history, a->table, a->new_user, search->index, users, block && *block ? block : NULL));
}

/* An option the chosen mode would ignore, as a usage error (NULL: none):
 * --users ranks the whole catalog per user, with no reasons, no re-rank and
 * no retrieval sources, so --explain, --diversity, --genre-cap, --mmr-lambda
 * and the sources' options would leave its lists as they are (they were
 * taken and ignored); --out is where --users writes, and one list goes to
 * standard output. */
static const char *unused_option(const rec_args *a, const cb_config *cfg) {
    static char msg[200];
    if (a->users && a->explain)
        return "--explain: --users writes no reasons (a JSON line of items and scores per user); one user's with --user ID";
    const char *key = a->users ? cb_recommend_batch_unused(cfg) : NULL;
    if (key) {
        snprintf(msg, sizeof msg, "--%s: --users ranks the whole catalog per user, without the retrieval sources or a "
                 "re-rank; one user's list with --user ID", key);
        return msg;
    }
    if (!a->users && a->out)
        return "--out: only --users writes to a file; the list of --user or --new-user goes to standard output";
    return NULL;
}

int cmd_recommend(int argc, char **argv) {
    const char *cmd = "recommend";
    rec_args a = {0};
    cli_search search = {0};
    const cli_opt opts[] = {
        {"model", 'm', "FILE", "the model file (cbrec train)", &a.model, NULL, NULL},
        {"user", 'u', "ID", "a known user", &a.user, NULL, NULL},
        {"new-user", 0, "FILE", "a new user: {\"genre_ratings\": {\"Adventure\": 5}, \"preferences\": {\"tags\": "
                                "{\"jazz\": 5}}, \"ratings\": {\"260\": 5}, \"<user column>\": value, \"strict\": "
                                "true} (all optional; strict: unknown values are errors, not notes)", &a.new_user, NULL, NULL},
        {"users", 0, "all|FILE", "batch: every known user, or the ids of FILE (one a line, as `cbrec embed` writes them: \\\\, \\n, \\r for a backslash, LF, CR; a '#' line that is no user's id is a comment)", &a.users, NULL, NULL},
        {"out", 'o', "FILE", "batch: where the JSON lines go (default: standard output)", &a.out, NULL, NULL},
        {"table", 0, "TABLE", "table from `cbrec precompute` or `cbrec add-item` (its added items are recommended too)", &a.table, NULL, NULL},
        {"history", 0, "FILE", "the users' histories (default: the model's path + .history, when present)", &a.history, NULL, NULL},
        CLI_SEARCH_OPTS(search),
        {"explain", 0, NULL, "print the reasons (for people)", NULL, &a.explain, NULL},
        {"json", 0, NULL, "the list as one JSON document (cb_list_to_json)", NULL, &a.json, NULL},
        {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {cmd, recommend_usage, opts, CB_CONFIG_RECOMMEND, NULL};
    cb_error err = {0};
    cb_config *cfg = NULL;
    if (cb_config_create(&cfg, CB_CONFIG_RECOMMEND, &err)) return cli_error(cmd, &err);
    int n_args = 0;
    char **args = rewrite_aliases(argc, argv, &n_args);
    int status = args ? cli_parse(&c, cfg, n_args, args) : cli_fail(CLI_ERROR, cmd, "out of memory");
    if (status < 0 && (!a.model || !!a.user + !!a.new_user + !!a.users != 1))
        status = cli_usage_error(&c, "give --model and exactly one of --user ID, --new-user FILE or --users all|FILE");
    const char *unused = status < 0 ? unused_option(&a, cfg) : NULL; /* first: what the mode leaves unused */
    if (unused) status = cli_usage_error(&c, unused);
    if (status < 0 && cb_config_check(cfg, &err)) status = cli_usage_error(&c, err.msg); /* settings that contradict */
    if (status < 0 && a.out && strcmp(a.out, "-")) status = check_out(cmd, &a, &search, cfg);
    cb_recommender *rec = NULL;
    cli_mpi mp = {.size = 1}; /* under mpirun a batch is shared by the ranks; one user is rank 0's alone */
    if (status < 0) status = cli_mpi_begin(&mp, cmd, NULL);
    if (status < 0) cli_mpi_config_threads(&mp, cfg); /* --threads 0: the rank's share of the cores */
    if (status < 0) /* every rank loads the same files: a bad one told once */
        status = cli_mpi_told(&mp, cmd, cb_recommender_load_files(&rec, a.model, a.history, a.table, &err), &err);
    if (status < 0 && cli_search_apply(cmd, rec, &search, &mp)) status = CLI_ERROR;
    if (status < 0) status = cli_mpi_agree_model(&mp, cmd, rec);
    if (status < 0 && !a.users && mp.rank) status = CLI_OK;
    if (status < 0) status = a.users ? run_batch(cmd, rec, &a, cfg, &mp) : run_one(cmd, rec, &a, cfg);
    status = cli_mpi_end(&mp, cmd, status);
    cb_recommender_free(rec);
    cb_config_free(cfg);
    free(args);
    return status;
}
