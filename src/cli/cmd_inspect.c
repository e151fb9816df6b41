/* cmd_inspect — `cbrec inspect --data PATH`: load a dataset and print what was
 * loaded (layout, counts, rating range, attribute tables, skipped rows, memory)
 * and the feature columns the featurize module would build from it. */
#include "cli.h"
#include "data/dataset.h"
#include "features/featurize.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: cbrec inspect --data PATH [--schema FILE] [--skip-bad-rows] [--range MIN,MAX] [--json] [--no-features]\n"
            "\n"
            "Load a dataset and print what was loaded and the features it would give.\n"
            "  --data PATH        dataset folder (MovieLens latest-small / 100K / 1M, course lab,\n"
            "                     or a folder with cbrec.schema; see docs/data-formats.md)\n"
            "  --schema FILE      schema file describing the folder's files (generic layout)\n"
            "  --skip-bad-rows    skip malformed rows (and count them) instead of failing\n"
            "  --range MIN,MAX    declared rating range; ratings outside it are errors\n"
            "  --no-features      do not fit the feature transform\n"
            "  --json             print one JSON object instead of text\n");
}

static const char *kind_name(cb_col_kind k) {
    return k == CB_COL_NUMERIC ? "numeric" : k == CB_COL_CATEGORICAL ? "categorical" : "multi";
}

static size_t n_missing(const cb_table *t, const cb_column *c) {
    size_t m = 0;
    for (uint32_t r = 0; r < t->n_rows; r++) {
        if (c->kind == CB_COL_NUMERIC) m += isnan(c->num[r]);
        else if (c->kind == CB_COL_CATEGORICAL) m += c->cat[r] == CB_MISSING;
        else m += c->off[r + 1] == c->off[r];
    }
    return m;
}

static void print_table(const char *what, const cb_table *t) {
    printf("%s table: %u rows, %u columns\n", what, t->n_rows, t->n_cols);
    for (uint32_t i = 0; i < t->n_cols; i++) {
        const cb_column *c = &t->cols[i];
        printf("  %-24s %-12s", c->name, kind_name(c->kind));
        if (c->kind != CB_COL_NUMERIC) printf(" %6u levels", cb_vocab_size(c->levels));
        else printf(" %13s", "");
        size_t m = n_missing(t, c);
        if (m) printf("  (%zu %s)", m, c->kind == CB_COL_MULTI ? "empty" : "missing");
        if (c->kind != CB_COL_NUMERIC && cb_vocab_size(c->levels)) {
            uint32_t nl = cb_vocab_size(c->levels), show = nl < 6 ? nl : 6;
            printf("  e.g. ");
            for (uint32_t k = 0; k < show; k++) printf("%s%s", k ? ", " : "", cb_vocab_name(c->levels, k));
            if (show < nl) printf(", ...");
        }
        putchar('\n');
    }
}

/* Stem of a feature name: the part before '[' or '=' ("genre_avg[Action](z)" -> "genre_avg"). */
static size_t stem_len(const char *s) {
    size_t n = strcspn(s, "[=");
    return s[n] ? n : strlen(s);
}

/* Print names grouped by stem; long groups are abbreviated, short ones share
 * lines of about 100 characters. */
static void print_feature_names(const char *what, uint32_t dim, const char *(*name)(const cb_features *, uint32_t),
                                const cb_features *f) {
    printf("%s features (d=%u):", what, dim);
    size_t col = 1000; /* force a new line first */
    uint32_t j = 0;
    while (j < dim) {
        const char *first = name(f, j);
        size_t sl = stem_len(first);
        uint32_t e = j + 1;
        while (e < dim && stem_len(name(f, e)) == sl && !strncmp(name(f, e), first, sl) && name(f, e)[sl]) e++;
        uint32_t n = e - j;
        if (n > 12) {
            printf("\n  %s, %s, %s, ... %s (%u columns)", name(f, j), name(f, j + 1), name(f, j + 2),
                   name(f, e - 1), n);
            col = 1000;
        } else {
            for (uint32_t k = j; k < e; k++) {
                size_t len = strlen(name(f, k));
                if (col + len + 2 > 100) {
                    printf("\n  %s", name(f, k));
                    col = 2 + len;
                } else {
                    printf(", %s", name(f, k));
                    col += 2 + len;
                }
            }
        }
        if (n > 12 && e < dim) col = 1000;
        j = e;
    }
    putchar('\n');
}

static json_t *table_json(const cb_table *t) {
    json_t *a = json_array();
    for (uint32_t i = 0; i < t->n_cols; i++) {
        const cb_column *c = &t->cols[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(c->name));
        json_object_set_new(o, "kind", json_string(kind_name(c->kind)));
        if (c->kind != CB_COL_NUMERIC) json_object_set_new(o, "levels", json_integer(cb_vocab_size(c->levels)));
        json_object_set_new(o, "missing", json_integer((json_int_t)n_missing(t, c)));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *names_json(uint32_t dim, const char *(*name)(const cb_features *, uint32_t), const cb_features *f) {
    json_t *a = json_array();
    for (uint32_t j = 0; j < dim; j++) json_array_append_new(a, json_string(name(f, j)));
    return a;
}

static long peak_rss_kb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

int cmd_inspect(int argc, char **argv) {
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},    {"schema", required_argument, NULL, 's'},
        {"skip-bad-rows", no_argument, NULL, 'k'}, {"range", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},          {"no-features", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *data = NULL;
    bool as_json = false, features = true;
    cb_load_options opt;
    cb_load_options_default(&opt);
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "d:s:kr:jnh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 's': opt.schema = optarg; break;
        case 'k': opt.skip_bad_rows = true; break;
        case 'j': as_json = true; break;
        case 'n': features = false; break;
        case 'r': {
            char *end;
            opt.y_min = strtof(optarg, &end);
            if (*end != ',') return cli_fail(CLI_USAGE, "inspect", "--range wants MIN,MAX (e.g. 1,5)");
            opt.y_max = strtof(end + 1, &end);
            if (*end || !(opt.y_min < opt.y_max))
                return cli_fail(CLI_USAGE, "inspect", "--range wants MIN,MAX with MIN < MAX");
            break;
        }
        case 'h': usage(stdout); return CLI_OK;
        default: usage(stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, "inspect", "unexpected argument '%s'", argv[optind]);
    if (!data) {
        usage(stderr);
        return cli_fail(CLI_USAGE, "inspect", "--data PATH is required");
    }

    cb_error err = {0};
    cb_dataset *ds = NULL;
    double t0 = cb_now();
    if (cb_dataset_load(&ds, data, &opt, &err)) return cli_error("inspect", &err);
    double load_s = cb_now() - t0;

    cb_features *feat = NULL;
    double feat_s = 0;
    if (features) {
        /* Fitted on every rating: inspect describes the data, it does not evaluate. */
        uint32_t *all = malloc((ds->n_ratings ? ds->n_ratings : 1) * sizeof *all);
        if (!all) {
            cb_dataset_free(ds);
            return cli_fail(CLI_ERROR, "inspect", "out of memory");
        }
        for (size_t i = 0; i < ds->n_ratings; i++) all[i] = (uint32_t)i;
        t0 = cb_now();
        int rc = cb_features_fit(&feat, ds, all, ds->n_ratings, NULL, &err);
        feat_s = cb_now() - t0;
        free(all);
        if (rc) {
            cb_dataset_free(ds);
            return cli_error("inspect", &err);
        }
    }

    uint32_t nu = cb_dataset_n_users(ds), ni = cb_dataset_n_items(ds);
    size_t bytes = cb_dataset_bytes(ds);
    size_t n_titles = 0;
    if (ds->titles)
        for (uint32_t i = 0; i < ni; i++) n_titles += ds->titles[i] != NULL;
    double density = nu && ni ? (double)ds->n_ratings / ((double)nu * ni) : 0;

    if (as_json) {
        json_t *o = json_object();
        json_object_set_new(o, "layout", json_string(ds->name));
        json_object_set_new(o, "path", json_string(ds->path));
        json_object_set_new(o, "users", json_integer(nu));
        json_object_set_new(o, "items", json_integer(ni));
        json_object_set_new(o, "ratings", json_integer((json_int_t)ds->n_ratings));
        json_object_set_new(o, "rating_min", json_real(ds->y_min));
        json_object_set_new(o, "rating_max", json_real(ds->y_max));
        json_object_set_new(o, "binary", json_boolean(ds->binary));
        json_object_set_new(o, "timestamps", json_boolean(ds->has_timestamps));
        json_object_set_new(o, "prejoined", json_boolean(ds->prejoined));
        json_object_set_new(o, "titles", json_integer((json_int_t)n_titles));
        json_object_set_new(o, "user_columns", table_json(&ds->user_attr));
        json_object_set_new(o, "item_columns", table_json(&ds->item_attr));
        json_object_set_new(o, "skipped_rows", json_integer((json_int_t)ds->n_skipped));
        json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
        json_object_set_new(o, "bytes_per_rating", json_real(ds->n_ratings ? (double)bytes / ds->n_ratings : 0));
        json_object_set_new(o, "load_seconds", json_real(load_s));
        if (feat) {
            json_object_set_new(o, "user_features",
                                names_json(cb_features_user_dim(feat), cb_features_user_name, feat));
            json_object_set_new(o, "item_features",
                                names_json(cb_features_item_dim(feat), cb_features_item_name, feat));
        }
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (s) puts(s);
        free(s);
    } else {
        printf("layout: %s (%s)\n", ds->name, ds->path);
        printf("%u users, %u items, %zu ratings\n", nu, ni, ds->n_ratings);
        printf("ratings: %s, range %g .. %g, %s, density %.4f%%%s\n", ds->binary ? "binary 0/1 labels" : "explicit",
               ds->y_min, ds->y_max, ds->has_timestamps ? "with timestamps" : "no timestamps", 100.0 * density,
               ds->prejoined ? ", pre-joined rows (duplicates allowed)" : "");
        if (ds->prejoined)
            printf("leading columns that are not model inputs: user %u, item %u\n", ds->user_lead_cols,
                   ds->item_lead_cols);
        print_table("user", &ds->user_attr);
        print_table("item", &ds->item_attr);
        printf("titles: %zu of %u items\n", n_titles, ni);
        printf("skipped rows: %zu\n", ds->n_skipped);
        printf("memory: %.1f MB in the dataset, %.1f bytes per rating (ratings alone: %zu bytes each), "
               "peak RSS %.1f MB\n",
               bytes / 1e6, ds->n_ratings ? (double)bytes / ds->n_ratings : 0.0, sizeof(cb_rating),
               peak_rss_kb() / 1e3);
        printf("time: load %.3f s, features %.3f s\n", load_s, feat_s);
        if (feat) {
            printf("features fitted on all %zu ratings:\n", ds->n_ratings);
            print_feature_names("user", cb_features_user_dim(feat), cb_features_user_name, feat);
            print_feature_names("item", cb_features_item_dim(feat), cb_features_item_name, feat);
        }
    }
    cb_features_free(feat);
    cb_dataset_free(ds);
    return CLI_OK;
}
