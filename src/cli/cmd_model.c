/* cbrec predict / embed — read a model file and answer from it. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int cmd_predict(int argc, char **argv) {
    const char *cmd = "predict", *model = NULL, *user = NULL;
    const char *items[256];
    int n_items = 0, c;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"user", required_argument, 0, 'u'},
                                         {"item", required_argument, 0, 'i'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *usage = "usage: cbrec predict --model FILE --user ID --item ID [--item ID ...]\n"
                        "prints one line per item: user, item, predicted rating (or probability for 0/1\n"
                        "labels, summed weight for weighted events), title\n";
    const cli_command cc = {cmd, usage, NULL, 0, NULL}; /* for the usage line of an error */
    optind = 1;
    opterr = 0; /* our messages: the reason, then the usage line, as cli_parse's */
    while ((c = getopt_long(argc, argv, ":m:u:i:h", opts, NULL)) != -1) {
        char msg[300];
        if (c == 'm') model = optarg;
        else if (c == 'u') user = optarg;
        else if (c == 'i' && n_items == 256) return cli_usage_error(&cc, "at most 256 --item");
        else if (c == 'i') items[n_items++] = optarg;
        else if (c == 'h') return fputs(usage, stdout), CLI_OK;
        else if (c == ':') return snprintf(msg, sizeof msg, "%.80s needs a value", argv[optind - 1]), cli_usage_error(&cc, msg);
        else return snprintf(msg, sizeof msg, "unknown option '%.80s'", argv[optind - 1]), cli_usage_error(&cc, msg);
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !user || !n_items) return cli_usage_error(&cc, "give --model, --user and at least one --item");
    cb_error err = {0};
    cb_recommender *rec = cli_load_model(cmd, model, NULL);
    if (!rec) return CLI_ERROR;
    int status = CLI_OK;
    for (int k = 0; k < n_items && status == CLI_OK; k++) {
        float p;
        size_t item;
        if (cb_recommender_predict(rec, user, items[k], &p, &err)) {
            status = cli_fail(CLI_ERROR, cmd, "%s (in %s)", err.msg, model);
            break;
        }
        cb_recommender_find_item(rec, items[k], &item, NULL, 0, NULL, &err);
        printf("%s\t%s\t%.4f\t%s\n", user, items[k], p, cb_recommender_item_title(rec, item));
    }
    cb_recommender_free(rec);
    return status;
}

int cmd_embed(int argc, char **argv) {
    const char *cmd = "embed", *model = NULL, *out = NULL, *format = "npy";
    const cli_opt opts[] = {{"model", 'm', "FILE", "the model file", &model, NULL},
                            {"out", 'o', "DIR", "the folder to write (created if missing)", &out, NULL},
                            {"format", 'f', "npy|st", "the files' format (default npy)", &format, NULL},
                            {NULL, 0, NULL, NULL, NULL, NULL}};
    const cli_command c = {
        cmd,
        "usage: cbrec embed --model FILE --out DIR [--format npy|st]\n"
        "writes the item and user vectors of the model:\n"
        "  npy: DIR/item_vectors.npy, DIR/user_vectors.npy (float32 [n x dim]), DIR/item_ids.txt, DIR/user_ids.txt\n"
        "       (line i: the id of row i, a backslash, CR or LF in it written as \\\\, \\r, \\n)\n"
        "  st:  DIR/embeddings.safetensors (tensors item_vectors, user_vectors; ids in the metadata)\n",
        opts, 0, NULL};
    int st = cli_parse(&c, NULL, argc, argv);
    if (st >= 0) return st;
    if (!model || !out) return cli_usage_error(&c, "give --model and --out");
    if (strcmp(format, "npy") && strcmp(format, "st")) return cli_fail(CLI_USAGE, cmd, "--format is npy or st");
    cb_error err = {0};
    cb_recommender *rec = cli_load_model(cmd, model, NULL);
    if (!rec) return CLI_ERROR;
    int rc = cb_recommender_export_vectors(rec, out, format, &err);
    if (!rc)
        fprintf(stderr, "wrote %zu item and %zu user vectors of dimension %zu to %s\n", cb_recommender_item_count(rec),
                cb_recommender_user_count(rec), cb_recommender_dim(rec), out);
    cb_recommender_free(rec);
    return rc ? cli_error(cmd, &err) : CLI_OK;
}
