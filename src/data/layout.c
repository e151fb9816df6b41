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

static bool has(const char *dir, const char *name) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s/%s", dir, name) >= sizeof buf) return false;
    return cb_file_exists(buf);
}

int cb_dataset_load(cb_dataset **out, const char *path, const cb_load_options *opt, cb_error *err) {
    *out = NULL;
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
            return rc;
        }
        return cb_fail(err, CB_EIO, "%s: not a directory", path);
    }
    if (opt->schema) return cb_load_generic(out, path, opt->schema, opt, err);
    if (has(path, "cbrec.schema")) {
        char *schema = cb_path_join(path, "cbrec.schema", err);
        if (!schema) return CB_ENOMEM;
        int rc = cb_load_generic(out, path, schema, opt, err);
        free(schema);
        return rc;
    }
    if (has(path, "content_user_train.csv")) return cb_load_course_lab(out, path, opt, err);
    if (has(path, "u.data")) return cb_load_ml_100k(out, path, opt, err);
    if (has(path, "ratings.dat")) return cb_load_ml_1m(out, path, opt, err);
    if (has(path, "ratings.csv") && has(path, "movies.csv")) return cb_load_ml_small(out, path, opt, err);
    if (has(path, "ratings.csv")) return cb_load_ratings_only(out, path, opt, err);
    return cb_fail(err, CB_EIO,
                   "%s: no known dataset layout (expected cbrec.schema, ratings.csv + movies.csv, "
                   "u.data, ratings.dat or content_user_train.csv)",
                   path);
}


