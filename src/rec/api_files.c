/* api_files — the public face of the input-file and output-file checks of
 * base/util (cb_open_input, cb_atomic_*), for front ends that read and write
 * their own files (the CLI's --new-user, --item-json, --users FILE, its
 * reports and batch lists; the server's event export). */
#include <stdlib.h>
#include <sys/stat.h>
#include "base/util.h"
#include "data/dataset.h"

CB_API int cb_file_read(const char *path, size_t max_len, char **text_out, size_t *len, cb_error *err) {
    cb_error_clear(err);
    if (!text_out) return cb_fail(err, CB_EINVAL, "cb_file_read: NULL argument");
    return cb_read_small_file(path, text_out, len, max_len, err);
}

CB_API int cb_file_check_writable(const char *path, cb_error *err) {
    cb_error_clear(err);
    if (!path) return cb_fail(err, CB_EINVAL, "cb_file_check_writable: NULL path");
    return cb_atomic_check_writable(path, err);
}

CB_API int cb_file_check_not_input(const char *out, const char *input, cb_error *err) {
    cb_error_clear(err);
    if (!out || !input) return cb_fail(err, CB_EINVAL, "cb_file_check_not_input: NULL path");
    return cb_check_not_input(out, input, err);
}

CB_API const char *cb_dataset_layout_reason(const cb_dataset *ds) {
    return ds && ds->layout_why ? ds->layout_why : "";
}

struct cb_output {
    cb_atomic_file af;
};

CB_API int cb_output_open(cb_output **out, const char *path, cb_error *err) {
    cb_error_clear(err);
    if (!out || !path) return cb_fail(err, CB_EINVAL, "cb_output_open: NULL argument");
    *out = NULL;
    cb_output *o = calloc(1, sizeof *o);
    if (!o) return cb_fail(err, CB_ENOMEM, "%s: out of memory", path);
    int rc = cb_atomic_open(&o->af, path, err);
    if (rc) free(o);
    else *out = o;
    return rc;
}

CB_API FILE *cb_output_file(cb_output *o) { return o ? o->af.fp : NULL; }

CB_API int cb_output_commit(cb_output *o, cb_error *err) {
    cb_error_clear(err);
    if (!o) return cb_fail(err, CB_EINVAL, "cb_output_commit: NULL handle");
    int rc = cb_atomic_commit(&o->af, err);
    free(o);
    return rc;
}

CB_API void cb_output_abort(cb_output *o) {
    if (!o) return;
    cb_atomic_abort(&o->af);
    free(o);
}

CB_API int cb_file_write(const char *path, const char *text, size_t len, cb_error *err) {
    if (!text && len) return cb_fail(err, CB_EINVAL, "cb_file_write: NULL text");
    cb_output *o = NULL;
    int rc = cb_output_open(&o, path, err);
    if (rc) return rc;
    if (len && fwrite(text, 1, len, o->af.fp) != len) {
        cb_output_abort(o);
        return cb_fail(err, CB_EIO, "%s: write error", path);
    }
    return cb_output_commit(o, err);
}
