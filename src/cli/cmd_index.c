/* cbrec index — build the approximate nearest-neighbour index (HNSW) of a
 * model's catalog and write it; and the --index / --exact / --ef options the
 * searching commands share (cli_search_apply). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static bool parse_size(const char *s, size_t lo, size_t hi, size_t *out) {
    char *end;
    if (!s || !*s || *s == '-') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi) return false;
    *out = (size_t)v;
    return true;
}

int cli_search_apply(const char *cmd, cb_recommender *rec, const cli_search *s, cli_mpi *mp) {
    cb_error err = {0};
    size_t ef = 0;
    bool bad_ef = s->ef && !parse_size(s->ef, 1, 1000000, &ef);
    int rc = bad_ef ? (snprintf(err.msg, sizeof err.msg, "--ef must be an integer in 1..1000000"), CB_EINVAL) : CB_OK;
    if (!rc && s->index) rc = cb_recommender_load_index(rec, s->index, &err);
    if (!rc) rc = cb_recommender_set_search(rec, s->exact ? CB_SEARCH_EXACT : CB_SEARCH_AUTO, ef, &err);
    /* every rank applies the same options and files: a failure told once */
    int told = mp ? cli_mpi_told(mp, cmd, rc, &err) : rc ? cli_error(cmd, &err) : -1;
    if (told >= 0) return bad_ef ? CLI_USAGE : told;
    if (s->ef && !s->index && strcmp(cmd, "precompute") && cli_mpi_launched_rank() == 0) /* precompute builds one */
        fprintf(stderr, "cbrec %s: note: --ef has no effect without --index: the search is exact\n", cmd);
    if (s->index && !s->exact && !cb_recommender_search_is_approximate(rec) && cli_mpi_launched_rank() == 0)
        fprintf(stderr, "cbrec %s: note: the catalog's %zu items are searched exactly: the index is used from "
                CLI_STR(CB_ANN_AUTO_MIN_ITEMS) " items on\n", cmd, cb_recommender_item_count(rec));
    int counted = 1;
    size_t indexed = 0, unreached = cb_recommender_index_unreached(rec, &indexed, &counted);
    if (unreached && !counted && cb_recommender_search_is_approximate(rec) && cli_mpi_launched_rank() == 0)
        fprintf(stderr,
                "cbrec %s: note: %s, an index from an older cbrec, leaves %zu of its %zu items out of the graph's "
                "reach: approximate searches never return them (cbrec index rebuilds it with the repair that "
                "links them; --exact searches without it)\n",
                cmd, s->index, unreached, indexed);
    return CLI_OK;
}

static const char *index_usage =
    "usage: cbrec index --model FILE --out INDEX [--m 16] [--ef-construction 200] [--threads N]\n"
    "the approximate nearest-neighbour index (an HNSW graph) of the model's item vectors, and a\n"
    "second graph over the vectors recommend ranks by (the ranking half and the prior), written\n"
    "atomically (checksummed, memory-mapped when loaded). Pass it to `cbrec similar`,\n"
    "`cbrec recommend` and `cbrec precompute` with --index INDEX: catalogs of " CLI_STR(CB_ANN_AUTO_MIN_ITEMS)
    " items or more\nare then searched approximately (recall@10 >= 0.95 at the default --ef), smaller ones exactly;\n"
    "--exact always searches exactly. Larger --m / --ef-construction: better graph, slower build.\n"
    "The build uses every core (--threads 0); --threads 1 gives the same file on every run.\n";

int cmd_index(int argc, char **argv) {
    const char *cmd = "index", *model = NULL, *out = NULL, *m_text = "16", *efc_text = "200", *threads_text = "0";
    size_t m, efc, threads;
    const cli_opt opts[] = {{"model", 'm', "FILE", "the model file", &model, NULL, NULL},
                            {"out", 'o', "INDEX", "the index file to write", &out, NULL, NULL},
                            {"m", 0, "M", "links per node (16; 2M on the bottom layer)", &m_text, NULL, NULL},
                            {"ef-construction", 0, "EF", "build beam width (200)", &efc_text, NULL, NULL},
                            {"threads", 0, "N", "threads inserting at once (0 = all CPUs)", &threads_text, NULL, NULL},
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {cmd, index_usage, opts, 0, NULL};
    int st = cli_parse(&c, NULL, argc, argv);
    if (st >= 0) return st;
    if (!model || !out) return cli_usage_error(&c, "give --model and --out");
    if (!parse_size(m_text, 2, 256, &m)) return cli_usage_error(&c, "--m must be an integer in 2..256");
    if (!parse_size(efc_text, 1, 100000, &efc)) return cli_usage_error(&c, "--ef-construction must be in 1..100000");
    if (!parse_size(threads_text, 0, 256, &threads)) return cli_usage_error(&c, "--threads must be 0..256");
    cb_error err;
    cb_recommender *rec = NULL;
    int checked = cli_check_output(cmd, out, model, NULL, 0);
    if (checked >= 0) return checked;
    if (!(rec = cli_load_model(cmd, model, NULL))) return CLI_ERROR;
    int status = CLI_ERROR;
    double t0 = cli_now();
    if (cb_recommender_build_index(rec, m, efc, (int)threads, &err) || cb_recommender_save_index(rec, out, &err)) {
        cli_error(cmd, &err);
    } else {
        size_t unreached = cb_recommender_index_unreached(rec, NULL, NULL);
        /* the build's beam holds M at least (hnsw.c): it said the 1 asked for of a graph built with 16 */
        fprintf(stderr, "wrote %s: %zu items, M = %zu, ef_construction = %zu%s (%.2fs)", out,
                cb_recommender_item_count(rec), m, efc < m ? m : efc,
                efc < m ? " (--ef-construction below --m is raised to it)" : "", cli_now() - t0);
        if (unreached) /* none seen since equal rows are grouped (docs/scale.md) */
            fprintf(stderr, "; %zu items out of the graph's reach: exact search finds them", unreached);
        fputc('\n', stderr);
        status = CLI_OK;
    }
    cb_recommender_free(rec);
    return status;
}
