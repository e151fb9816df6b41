/* layout — cb_dataset_load: which layout a path holds (a schema file,
 * cbrec.schema, the course lab, MovieLens 100K / 1M / latest-small, or a
 * folder with only ratings.csv), and the call to its loader. Nothing here
 * parses a file; the loaders (movielens.c, generic.c, course_lab.c) never
 * call back into this file. */
#include "data/loaders.h"
#include "data/textutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- detection */

/* dir/name exists and is not a folder. Not "is a regular file": a FIFO named
 * ratings.csv picks its layout, and the loader then refuses it by name
 * (cb_open_input) instead of "no known layout". */
static bool has(const char *dir, const char *name) {
    char buf[4096];
    struct stat sb;
    if ((size_t)snprintf(buf, sizeof buf, "%s/%s", dir, name) >= sizeof buf) return false;
    return stat(buf, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

static int chosen_layout(cb_dataset **out, const char *path, const cb_load_options *opt, const char **why,
                         cb_error *err);

int cb_dataset_load(cb_dataset **out, const char *path, const cb_load_options *opt, cb_error *err) {
    *out = NULL;
    cb_error_clear(err);
    cb_load_options defaults;
    if (!opt) {
        cb_load_options_default(&defaults);
        opt = &defaults;
    }
    if (!path || !*path) return cb_fail(err, CB_EINVAL, "no dataset path given");
    struct stat st;
    if (stat(path, &st) != 0)
        return cb_fail(err, CB_EIO, "%s: cannot open dataset folder: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        /* A schema file given as the path itself. */
        if (S_ISREG(st.st_mode) && !opt->schema) {
            char *dir = cb_strdup(path, err);
            if (!dir) return CB_ENOMEM;
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
            else strcpy(dir, ".");
            int rc = cb_load_generic(out, dir, path, opt, err);
            free(dir);
            if (rc == CB_OK) (*out)->layout_why = "the path is a schema file";
            return rc;
        }
        return cb_fail(err, CB_EIO, "%s: not a directory", path);
    }
    const char *why = NULL;
    int rc = chosen_layout(out, path, opt, &why, err);
    if (rc == CB_OK && *out) (*out)->layout_why = why;
    return rc;
}

/* The layout of a folder, by the files it holds, in this order; *why says
 * what decided it (printed by `cbrec inspect`). */
static int chosen_layout(cb_dataset **out, const char *path, const cb_load_options *opt, const char **why,
                         cb_error *err) {
    if (opt->schema) return *why = "a schema file was given", cb_load_generic(out, path, opt->schema, opt, err);
    if (has(path, "cbrec.schema")) {
        *why = "the folder has cbrec.schema";
        char *schema = cb_path_join(path, "cbrec.schema", err);
        if (!schema) return CB_ENOMEM;
        int rc = cb_load_generic(out, path, schema, opt, err);
        free(schema);
        return rc;
    }
    if (has(path, "content_user_train.csv"))
        return *why = "the folder has content_user_train.csv (course-lab rows)", cb_load_course_lab(out, path, opt, err);
    if (has(path, "u.data")) return *why = "the folder has u.data (MovieLens 100K)", cb_load_ml_100k(out, path, opt, err);
    if (has(path, "ratings.dat")) return *why = "the folder has ratings.dat (MovieLens 1M)", cb_load_ml_1m(out, path, opt, err);
    if (has(path, "ratings.csv") && has(path, "movies.csv"))
        return *why = "the folder has ratings.csv and movies.csv (MovieLens latest)", cb_load_ml_small(out, path, opt, err);
    if (has(path, "ratings.csv")) {
        char *ratings = cb_path_join(path, "ratings.csv", err);
        if (!ratings) return CB_ENOMEM;
        bool ml = cb_ml_ratings_header(ratings);
        free(ratings);
        /* A MovieLens ratings.csv without its catalog is a copy gone wrong,
         * not a ratings-only dataset: training without titles and genres
         * would quietly give another model. Asking for it is a schema. */
        if (ml)
            return cb_fail(err, CB_EIO,
                           "%s: ratings.csv has a MovieLens header (movieId) but movies.csv is missing: the MovieLens "
                           "layout needs it for titles and genres. To use the ratings alone, say so with a schema "
                           "(--schema FILE, or %s/cbrec.schema, holding the line `ratings = ratings.csv`)",
                           path, path);
        *why = "the folder has only ratings.csv (ratings without a catalog)";
        return cb_load_ratings_only(out, path, opt, err);
    }
    return cb_fail(err, CB_EIO,
                   "%s: no known dataset layout (expected cbrec.schema, ratings.csv + movies.csv, "
                   "u.data, ratings.dat or content_user_train.csv)",
                   path);
}


