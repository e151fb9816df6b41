/* cmd_inspect — `cbrec inspect --data PATH`: load a dataset and print what was
 * loaded (layout, counts, rating range, attribute tables, skipped rows, memory)
 * and the feature columns it would give: the library's JSON description
 * (cb_dataset_describe) as text, or as it is with --json. */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define S(o, k) json_string_value(json_object_get(o, k))
#define I(o, k) ((size_t)json_integer_value(json_object_get(o, k)))
#define R(o, k) json_number_value(json_object_get(o, k))
#define B(o, k) json_is_true(json_object_get(o, k))

static void print_table(const char *what, size_t n_rows, const json_t *cols) {
    printf("%s table: %zu rows, %zu columns\n", what, n_rows, json_array_size(cols));
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
        const char *kind = S(c, "kind");
        printf("  %-*s %-12s", cli_pad(S(c, "name"), 24), S(c, "name"), kind);
        json_t *ex = json_object_get(c, "examples");
        if (ex) printf(" %6zu levels", I(c, "levels"));
        else printf(" %13s", "");
        if (I(c, "missing")) printf("  (%zu %s)", I(c, "missing"), strcmp(kind, "multi") ? "missing" : "empty");
        if (json_object_get(c, "values_seen"))
            printf("  [vocabulary: %zu values seen, %zu kept, %zu dropped%s]", I(c, "values_seen"),
                   I(c, "values_seen") - I(c, "dropped"), I(c, "dropped"),
                   I(c, "hash_buckets") ? " into hash buckets \"#k\"" : "");
        if (json_array_size(ex)) {
            printf("  e.g. ");
            for (size_t k = 0; k < json_array_size(ex); k++) { /* "Zeta, Inc." quoted: not two values */
                char buf[CLI_LINE_MAX];
                const char *v = cli_line(json_string_value(json_array_get(ex, k)), buf, sizeof buf);
                printf(strchr(v, ',') || strchr(v, '"') || *v == ' ' ? "%s\"%s\"" : "%s%s", k ? ", " : "", v);
            }
            if (json_array_size(ex) < I(c, "levels")) printf(", ...");
        }
        putchar('\n');
    }
}

/* Stem of a feature name: the part before '[' or '=' ("genre_avg[Action](z)" -> "genre_avg"). */
static size_t stem_len(const char *s) {
    size_t n = strcspn(s, "[=");
    return s[n] ? n : strlen(s);
}

#define NAME(j) json_string_value(json_array_get(names, j))

/* Print names grouped by stem; long groups are abbreviated, short ones share
 * lines of about 100 characters. */
static void print_feature_names(const char *what, const json_t *names) {
    size_t dim = json_array_size(names), col = 1000; /* force a new line first */
    printf("%s features (d=%zu):", what, dim);
    for (size_t j = 0, e; j < dim; j = e) {
        const char *first = NAME(j);
        size_t sl = stem_len(first);
        for (e = j + 1; e < dim && stem_len(NAME(e)) == sl && !strncmp(NAME(e), first, sl) && NAME(e)[sl];) e++;
        if (e - j > 12) {
            printf("\n  %s, %s, %s, ... %s (%zu columns)", NAME(j), NAME(j + 1), NAME(j + 2), NAME(e - 1), e - j);
            col = 1000;
            continue;
        }
        for (size_t k = j; k < e; k++) {
            size_t len = strlen(NAME(k));
            if (col + len + 2 > 100) printf("\n  %s", NAME(k)), col = 2 + len;
            else printf(", %s", NAME(k)), col += 2 + len;
        }
    }
    putchar('\n');
}

static void print_text(const json_t *o, const char *layout_why, double load_s) {
    size_t nu = I(o, "users"), ni = I(o, "items"), nr = I(o, "ratings");
    struct rusage ru;
    long rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    printf("layout: %s (%s)%s%s\n", S(o, "layout"), S(o, "path"), layout_why[0] ? ": " : "", layout_why);
    printf("%zu users, %zu items, %zu ratings\n", nu, ni, nr);
    printf("ratings: %s, range %g .. %g, %s, density %.4f%%%s\n", B(o, "implicit") ? (B(o, "binary") ? "implicit events" : "implicit events, weighted")
           : B(o, "binary") ? "binary 0/1 labels" : "explicit",
           R(o, "rating_min"), R(o, "rating_max"), B(o, "timestamps") ? "with timestamps" : "no timestamps",
           nu && ni ? 100.0 * (double)nr / ((double)nu * (double)ni) : 0.0,
           B(o, "prejoined") ? ", pre-joined rows (duplicates allowed)" : "");
    if (I(o, "merged_rows")) printf("repeated (user, item) events merged: %zu rows\n", I(o, "merged_rows"));
    if (I(o, "folded_rows")) printf("repeated (user, item) ratings folded (--duplicates): %zu rows\n", I(o, "folded_rows"));
    if (I(o, "unlisted_users"))
        printf("users not in the users file, kept without attributes (--unlisted-users keep): %zu\n", I(o, "unlisted_users"));
    if (B(o, "prejoined"))
        printf("leading columns that are not model inputs: user %zu, item %zu\n", I(o, "user_lead_cols"),
               I(o, "item_lead_cols"));
    print_table("user", nu, json_object_get(o, "user_columns"));
    print_table("item", ni, json_object_get(o, "item_columns"));
    printf("titles: %zu of %zu items\n", I(o, "titles"), ni);
    printf("skipped rows: %zu\n", I(o, "skipped_rows"));
    printf("memory: %.1f MB in the dataset, %.1f bytes per rating (ratings alone: %zu bytes each), peak RSS %.1f MB\n",
           (double)I(o, "bytes") / 1e6, R(o, "bytes_per_rating"), I(o, "bytes_per_rating_record"), (double)rss_kb / 1e3);
    printf("time: load %.3f s, features %.3f s\n", load_s, R(o, "features_seconds"));
    if (json_object_get(o, "user_features")) {
        printf("features fitted on all %zu ratings:\n", nr);
        print_feature_names("user", json_object_get(o, "user_features"));
        print_feature_names("item", json_object_get(o, "item_features"));
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(o, "content_columns"), i, c)
            printf("%scontent column %s: %zu of its %zu values are features%s\n", i ? "" : "\n", S(c, "name"),
                   I(c, "values"), I(c, "levels"),
                   I(c, "values") < I(c, "levels") ? " (values of training-rated items; without a schema the 50 most "
                                                     "frequent of a multi column, 64 of a categorical one)" : "");
    }
}

/* Describe the dataset and print the description; returns the exit status. */
static int inspect(const char *data, const cb_config *cfg, bool features, bool as_json) {
    cb_error err = {0};
    cb_dataset *ds = NULL;
    char *doc = NULL;
    double t0 = cli_now();
    if (cb_dataset_open(&ds, data, cfg, &err)) return cli_error("inspect", &err);
    double load_s = cli_now() - t0;
    int rc = cb_dataset_describe(ds, features ? cfg : NULL, &doc, &err);
    char why[256];
    snprintf(why, sizeof why, "%s", cb_dataset_layout_reason(ds));
    cb_dataset_close(ds);
    if (rc) return cli_error("inspect", &err);
    json_t *o = json_loads(doc, 0, NULL);
    free(doc);
    if (!o) return cli_fail(CLI_ERROR, "inspect", "out of memory");
    json_object_set_new(o, "load_seconds", json_real(load_s));
    if (as_json) {
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
    } else {
        print_text(o, why, load_s);
    }
    json_decref(o);
    return CLI_OK;
}

int cmd_inspect(int argc, char **argv) {
    const char *data = NULL;
    bool as_json = false, no_features = false;
    const cli_opt opts[] = {
        {"data", 'd', "PATH", "dataset folder (MovieLens latest-small / 100K / 1M, course lab, or a folder with "
                              "cbrec.schema; see docs/data-formats.md)", &data, NULL, NULL},
        {"no-features", 0, NULL, "do not fit the feature transform", NULL, &no_features, NULL},
        {"json", 0, NULL, "print one JSON object instead of text", NULL, &as_json, NULL},
        {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {"inspect",
                           "usage: cbrec inspect --data PATH [options]\n\n"
                           "Load a dataset and print what was loaded and the features it would give.\n",
                           opts, CB_CONFIG_TRAIN, "data,features"};
    cb_error err = {0};
    cb_config *cfg = NULL;
    if (cb_config_create(&cfg, CB_CONFIG_TRAIN, &err)) return cli_error("inspect", &err);
    int status = cli_parse(&c, cfg, argc, argv);
    if (status < 0 && !data) status = cli_usage_error(&c, "--data PATH is required");
    if (status < 0) status = inspect(data, cfg, !no_features, as_json);
    cb_config_free(cfg);
    return status;
}
