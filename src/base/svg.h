/* svg — small SVG line charts (learning curves, the retrieval-size plot),
 * so cbrec's plots need no external tool. Not evaluation: anything that
 * draws a few series of points uses it.
 * Threading: no shared state. */
#ifndef CB_SVG_H
#define CB_SVG_H

#include "base/util.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct cb_svg_series {
    const char *name;          /* legend entry */
    const double *x, *y;       /* n points; non-finite points are skipped */
    size_t n;
} cb_svg_series;

typedef struct cb_svg_chart {
    const char *title, *x_label, *y_label;
    bool log_x;                /* logarithmic x axis (x > 0 only) */
    int width, height;         /* pixels; 0 = 640 x 400 */
    bool legend_left;          /* legend in the top-left corner (default top-right) */
} cb_svg_chart;

/* Write a line chart of the series to `path` atomically (cb_atomic_open).
 * CB_EINVAL when there is no finite point, CB_EIO on write errors. */
int cb_svg_line_chart(const char *path, const cb_svg_chart *chart, const cb_svg_series *series, size_t n_series,
                      cb_error *err);

/* A learning curve: train and validation loss per epoch (valid may hold NANs
 * or be NULL) as an SVG chart. Epochs are 1..n. */
int cb_svg_learning_curve(const char *path, const double *train_loss, const double *valid_loss, size_t n,
                          const char *title, cb_error *err);

#endif /* CB_SVG_H */
