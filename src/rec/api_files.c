/* api_files — the public face of the input-file and output-file checks of
 * base/util (cb_open_input, cb_atomic_*), for front ends that read their own
 * files (the CLI's --new-user, --item-json, --users FILE). */
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

CB_API const char *cb_dataset_layout_reason(const cb_dataset *ds) {
    return ds && ds->layout_why ? ds->layout_why : "";
}
