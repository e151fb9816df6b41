/* api_plot — the public cb_plot_curve_svg (include/cbrec.h) over evalrun's
 * SVG charts (to move with them when they get their own module in base/). */
#include "eval/evalrun.h"

CB_API int cb_plot_curve_svg(const char *path, const double *train_loss, const double *valid_loss, size_t n_epochs,
                             const char *title, cb_error *err) {
    if (!path || !train_loss) return cb_fail(err, CB_EINVAL, "cb_plot_curve_svg: NULL argument");
    return cb_evalrun_curve_svg(path, train_loss, valid_loss, n_epochs, title ? title : "", err);
}
