/* cbrec predict / embed — read a model file and answer from it. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_predict(int argc, char **argv) {
    const char *cmd = "predict", *model = NULL, *user = NULL, *ids[256];
    cli_list items = {ids, 0, sizeof ids / sizeof *ids};
    const cli_opt opts[] = {{"model", 'm', "FILE", "the model file", &model, NULL, NULL},
                            {"user", 'u', "ID", "a known user", &user, NULL, NULL},
                            {"item", 'i', "ID", "an item (repeat the option for several)", NULL, NULL, &items},
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {cmd,
                           "usage: cbrec predict --model FILE --user ID --item ID [--item ID ...]\n"
                           "prints one line per item: user, item, predicted rating (or probability for 0/1\n"
                           "labels, summed weight for weighted events), title\n",
                           opts, 0, NULL};
    int st = cli_parse(&c, NULL, argc, argv);
    if (st >= 0) return st;
    if (!model || !user || !items.n) return cli_usage_error(&c, "give --model, --user and at least one --item");
    cb_error err = {0};
    cb_recommender *rec = cli_load_model(cmd, model, NULL);
    if (!rec) return CLI_ERROR;
    int status = CLI_OK;
    for (size_t k = 0; k < items.n && status == CLI_OK; k++) {
        float p;
        size_t item;
        if (cb_recommender_predict(rec, user, ids[k], &p, &err)) {
            status = cli_fail(CLI_ERROR, cmd, "%s (in %s)", err.msg, model);
            break;
        }
        cb_recommender_find_item(rec, ids[k], &item, NULL, 0, NULL, &err);
        char u[CLI_LINE_MAX], i[CLI_LINE_MAX], title[CLI_LINE_MAX];
        printf("%s\t%s\t%.4f\t%s\n", cli_line(user, u, sizeof u), cli_line(ids[k], i, sizeof i), p,
               cli_line(cb_recommender_item_title(rec, item), title, sizeof title));
    }
    cb_recommender_free(rec);
    return status;
}

int cmd_embed(int argc, char **argv) {
    const char *cmd = "embed", *model = NULL, *out = NULL, *format = "npy";
    const cli_opt opts[] = {{"model", 'm', "FILE", "the model file", &model, NULL, NULL},
                            {"out", 'o', "DIR", "the folder to write (created if missing)", &out, NULL, NULL},
                            {"format", 'f', "npy|st", "the files' format (default npy)", &format, NULL, NULL},
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {
        cmd,
        "usage: cbrec embed --model FILE --out DIR [--format npy|st]\n"
        "writes the item and user vectors of the model:\n"
        "  npy: DIR/item_vectors.npy, DIR/user_vectors.npy (float32 [n x dim]), DIR/item_ids.txt, DIR/user_ids.txt\n"
        "       (line i: the id of row i, a backslash, CR or LF in it written as \\\\, \\r, \\n;\n"
        "       `cbrec recommend --users DIR/user_ids.txt` reads them back)\n"
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
