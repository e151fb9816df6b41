/* cbrec predict / embed — read a model file and answer from it. */
#include "cli.h"
#include "model/bundle.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cmd_predict(int argc, char **argv) {
    const char *cmd = "predict", *model = NULL, *user = NULL;
    const char *items[256];
    int n_items = 0, c;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"user", required_argument, 0, 'u'},
                                         {"item", required_argument, 0, 'i'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *usage = "usage: cbrec predict --model FILE --user ID --item ID [--item ID ...]\n"
                        "prints one line per item: user, item, predicted rating (or probability), title\n";
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:u:i:h", opts, NULL)) != -1) {
        if (c == 'm') model = optarg;
        else if (c == 'u') user = optarg;
        else if (c == 'i' && n_items < 256) items[n_items++] = optarg;
        else if (c == 'h') return fputs(usage, stdout), CLI_OK;
        else return fputs(usage, stderr), CLI_USAGE;
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !user || !n_items) return fputs(usage, stderr), CLI_USAGE;
    cb_error err;
    cb_bundle *r;
    if (cb_bundle_load(&r, model, &err)) return cli_error(cmd, &err);
    int status = CLI_OK;
    int64_t u = cb_bundle_user(r, user);
    if (u < 0) status = cli_fail(CLI_ERROR, cmd, "unknown user '%s' (not in %s; use `cbrec recommend --new-user` for new users)", user, model);
    for (int k = 0; k < n_items && status == CLI_OK; k++) {
        int64_t i = cb_bundle_item(r, items[k]);
        if (i < 0) {
            status = cli_fail(CLI_ERROR, cmd, "unknown item '%s' (not in %s)", items[k], model);
            break;
        }
        float p = cb_bundle_predict_vec(r, r->user_vecs + (size_t)u * r->dim, (uint32_t)i);
        printf("%s\t%s\t%.4f\t%s\n", user, items[k], p, r->titles[i] ? r->titles[i] : "");
    }
    cb_bundle_free(r);
    return status;
}

static int write_ids(const char *path, const cb_vocab *v, cb_error *err) {
    cb_atomic_file af;
    int rc = cb_atomic_open(&af, path, err);
    if (rc) return rc;
    for (uint32_t i = 0; i < cb_vocab_size(v); i++) fprintf(af.fp, "%s\n", cb_vocab_name(v, i));
    return cb_atomic_commit(&af, err);
}

int cmd_embed(int argc, char **argv) {
    const char *cmd = "embed", *model = NULL, *out = NULL, *format = "npy";
    int c;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"out", required_argument, 0, 'o'},
                                         {"format", required_argument, 0, 'f'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *usage =
        "usage: cbrec embed --model FILE --out DIR [--format npy|st]\n"
        "writes the item and user vectors of the model:\n"
        "  npy: DIR/item_vectors.npy, DIR/user_vectors.npy (float32 [n x dim]), DIR/item_ids.txt, DIR/user_ids.txt\n"
        "  st:  DIR/embeddings.safetensors (tensors item_vectors, user_vectors; ids in the metadata)\n";
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:f:h", opts, NULL)) != -1) {
        if (c == 'm') model = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'f') format = optarg;
        else if (c == 'h') return fputs(usage, stdout), CLI_OK;
        else return fputs(usage, stderr), CLI_USAGE;
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !out) return fputs(usage, stderr), CLI_USAGE;
    if (strcmp(format, "npy") && strcmp(format, "st")) return cli_fail(CLI_USAGE, cmd, "--format is npy or st");
    if (mkdir(out, 0777) != 0 && errno != EEXIST) return cli_fail(CLI_ERROR, cmd, "%s: cannot create: %s", out, strerror(errno));
    cb_error err;
    cb_bundle *r;
    if (cb_bundle_load(&r, model, &err)) return cli_error(cmd, &err);
    char path[4096];
    int rc;
    if (!strcmp(format, "npy")) {
        snprintf(path, sizeof path, "%s/item_vectors.npy", out);
        rc = cb_npy_write_f32(path, r->item_vecs, r->n_items, r->dim, &err);
        snprintf(path, sizeof path, "%s/user_vectors.npy", out);
        if (!rc) rc = cb_npy_write_f32(path, r->user_vecs, r->n_users, r->dim, &err);
        snprintf(path, sizeof path, "%s/item_ids.txt", out);
        if (!rc) rc = write_ids(path, r->items, &err);
        snprintf(path, sizeof path, "%s/user_ids.txt", out);
        if (!rc) rc = write_ids(path, r->users, &err);
    } else {
        cb_st_writer *w = cb_st_writer_create(&err);
        rc = w ? CB_OK : CB_ENOMEM;
        int64_t si[2] = {r->n_items, r->dim}, su[2] = {r->n_users, r->dim};
        if (!rc) rc = cb_st_add(w, "item_vectors", CB_ST_F32, si, 2, r->item_vecs, &err);
        if (!rc) rc = cb_st_add(w, "user_vectors", CB_ST_F32, su, 2, r->user_vecs, &err);
        if (!rc) rc = cb_st_set_meta(w, "item_ids", cb_st_meta(r->file, "items"), &err);
        if (!rc) rc = cb_st_set_meta(w, "user_ids", cb_st_meta(r->file, "users"), &err);
        if (!rc) rc = cb_st_set_meta(w, "fingerprint", r->fingerprint, &err);
        snprintf(path, sizeof path, "%s/embeddings.safetensors", out);
        if (!rc) rc = cb_st_write(w, path, "cbrec-embeddings", 1, &err);
        cb_st_writer_free(w);
    }
    if (!rc) fprintf(stderr, "wrote %u item and %u user vectors of dimension %u to %s\n", r->n_items, r->n_users, r->dim, out);
    cb_bundle_free(r);
    return rc ? cli_error(cmd, &err) : CLI_OK;
}
