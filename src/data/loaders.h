/* loaders — the entry point of each dataset layout, called by layout.c's
 * cb_dataset_load (and by tests). Each file holding one includes this header;
 * none of them calls back into layout.c. Internal to libcbrec. */
#ifndef CB_LOADERS_H
#define CB_LOADERS_H

#include "data/dataset.h"

/* Layout loaders (path is the directory). */
int cb_load_ml_small(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
int cb_load_ml_100k(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
int cb_load_ml_1m(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
int cb_load_course_lab(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);
/* schema_path: the schema file; dir: where relative file names resolve. */
int cb_load_generic(cb_dataset **out, const char *dir, const char *schema_path,
                    const cb_load_options *opt, cb_error *err);
/* The files a schema names (ratings, items, users; NULL where it names
 * none), resolved against dir; each malloc'd, the caller frees them. */
int cb_schema_files(const char *schema_path, const char *dir, char *files[3], cb_error *err);
/* A folder holding only ratings.csv: generic with default settings. */
int cb_load_ratings_only(cb_dataset **out, const char *dir, const cb_load_options *opt, cb_error *err);

/* True when the file's first line is a MovieLens ratings header (it names a
 * movieId column): such a ratings.csv belongs to the MovieLens layout, which
 * needs its movies.csv. */
bool cb_ml_ratings_header(const char *path);

#endif /* CB_LOADERS_H */
