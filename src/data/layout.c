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

/* ------------------------------------------------------ outputs vs inputs */

/* Every file name a folder's layout may read (of every layout: an output
 * over any of them would destroy data, whichever layout is chosen). */
static const char *const LAYOUT_FILES[] = {
    "ratings.csv", "movies.csv", "tags.csv", "links.csv", "u.data", "u.item", "u.user", "u.genre", "u.occupation",
    "ratings.dat", "movies.dat", "users.dat", "content_user_train.csv", "content_user_train_header.txt",
    "content_item_train.csv", "content_item_train_header.txt", "content_y_train.csv", "content_movie_list.csv"};

/* `out` against the schema file and the files it names (dir: where they resolve). */
static int check_schema_files(const char *schema, const char *dir, const char *out, cb_error *err) {
    char *files[3];
    int rc = cb_check_not_input(out, schema, err);
    if (rc) return rc;
    if (cb_schema_files(schema, dir, files, err)) return cb_error_clear(err), CB_OK; /* a bad schema: the load says so */
    for (int i = 0; i < 3 && !rc; i++) rc = files[i] ? cb_check_not_input(out, files[i], err) : CB_OK;
    for (int i = 0; i < 3; i++) free(files[i]);
    return rc;
}

int cb_dataset_load_check_output(const char *path, const cb_load_options *opt, const char *out, cb_error *err) {
    struct stat st;
    if (!path || !out || stat(path, &st) != 0) return CB_OK; /* no data: the load will say so */
    if (!S_ISDIR(st.st_mode)) {
        char *dir = cb_strdup(path, err), *slash = dir ? strrchr(dir, '/') : NULL;
        if (!dir) return CB_ENOMEM;
        if (slash) *slash = '\0';
        int rc = check_schema_files(path, slash ? dir : ".", out, err);
        free(dir);
        return rc;
    }
    char *schema = opt && opt->schema ? cb_strdup(opt->schema, err) : cb_path_join(path, "cbrec.schema", err);
    if (!schema) return CB_ENOMEM;
    int rc = opt && opt->schema ? check_schema_files(schema, path, out, err)
             : has(path, "cbrec.schema") ? check_schema_files(schema, path, out, err) : CB_OK;
    free(schema);
    for (size_t i = 0; !rc && i < sizeof LAYOUT_FILES / sizeof *LAYOUT_FILES; i++) {
        char *file = cb_path_join(path, LAYOUT_FILES[i], err);
        rc = file ? cb_check_not_input(out, file, err) : CB_ENOMEM;
        free(file);
    }
    return rc;
}
