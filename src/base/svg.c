/* svg — small SVG line charts written without any plotting tool: the
 * learning curves of `cbrec train` / `cbrec report` and the retrieval-size
 * plot. See svg.h. */
#include "base/svg.h"

#include <math.h>
#include <stdlib.h>


static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void svg_text_escaped(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int cb_svg_line_chart(const char *path, const cb_svg_chart *chart, const cb_svg_series *series, size_t n_series,
                      cb_error *err) {
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    bool log_x = chart->log_x;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_x && x <= 0)) continue;
            if (log_x) x = log10(x);
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (!(x0 <= x1)) return cb_fail(err, CB_EINVAL, "%s: no finite point to plot", path);
    if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-12) y0 -= fabs(y0) * 0.05 + 0.5, y1 += fabs(y1) * 0.05 + 0.5;
    double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    int W = chart->width > 0 ? chart->width : 640, H = chart->height > 0 ? chart->height : 400;
    double L = 70, R = W - 20.0, T = 40, B = H - 55.0;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (R - L))
#define PY(y) (B - ((y) - y0) / (y1 - y0) * (B - T))
    cb_atomic_file af;
    int rc = cb_atomic_open(&af, path, err);
    if (rc) return rc;
    FILE *f = af.fp;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    svg_text_escaped(f, chart->title);
    fprintf(f, "</text>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
            L, T, R - L, B - T);
    /* y ticks */
    double ys = nice_step(y1 - y0, 6);
    for (double y = ceil(y0 / ys) * ys; y <= y1 + ys * 1e-9; y += ys)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"end\">%g</text>\n",
                L, R, PY(y), PY(y), L - 5, PY(y) + 4, fabs(y) < ys * 1e-9 ? 0.0 : y);
    /* x ticks */
    if (log_x) {
        for (int e = (int)floor(x0); e <= (int)ceil(x1); e++)
            for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
                double lx = e + log10(m);
                if (lx < x0 - 1e-9 || lx > x1 + 1e-9) continue;
                fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" "
                           "y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                        PX(lx), PX(lx), T, B, PX(lx), B + 16, pow(10, lx));
            }
    } else {
        double xs = nice_step(x1 - x0, 8);
        for (double x = ceil(x0 / xs) * xs; x <= x1 + xs * 1e-9; x += xs)
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" "
                       "y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                    PX(x), PX(x), T, B, PX(x), B + 16, x);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (L + R) / 2, H - 15);
    svg_text_escaped(f, chart->x_label);
    fprintf(f, "</text>\n<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">", (T + B) / 2);
    svg_text_escaped(f, chart->y_label);
    fputs("</text>\n", f);
    double lg = chart->legend_left ? L + 10 : R - 170;
    for (size_t s = 0; s < n_series; s++) {
        const char *col = colors[s % (sizeof colors / sizeof colors[0])];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_x && x <= 0)) continue;
            fprintf(f, "%.1f,%.1f ", PX(log_x ? log10(x) : x), PY(y));
        }
        fputs("\"/>\n", f);
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_x && x <= 0)) continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(log_x ? log10(x) : x), PY(y), col);
        }
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/><text "
                   "x=\"%.1f\" y=\"%.1f\">",
                lg, lg + 20, T + 15 + 16.0 * (double)s, T + 15 + 16.0 * (double)s, col, lg + 25,
                T + 19 + 16.0 * (double)s);
        svg_text_escaped(f, series[s].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
    if (ferror(f)) {
        cb_atomic_abort(&af);
        return cb_fail(err, CB_EIO, "%s: write error", path);
    }
    return cb_atomic_commit(&af, err);
}

int cb_svg_learning_curve(const char *path, const double *train_loss, const double *valid_loss, size_t n,
                          const char *title, cb_error *err) {
    double *x = cb_malloc((n + 1) * sizeof *x, err);
    if (!x) return CB_ENOMEM;
    for (size_t i = 0; i < n; i++) x[i] = (double)(i + 1);
    cb_svg_series s[2] = {{"train loss", x, train_loss, n}, {"validation loss", x, valid_loss, valid_loss ? n : 0}};
    cb_svg_chart ch = {title ? title : "learning curve", "epoch", "loss (scaled targets)", false, 0, 0, false};
    int rc = cb_svg_line_chart(path, &ch, s, valid_loss ? 2 : 1, err);
    free(x);
    return rc;
}

CB_API int cb_plot_curve_svg(const char *path, const double *train_loss, const double *valid_loss, size_t n_epochs,
                             const char *title, cb_error *err) {
    if (!path || !train_loss) return cb_fail(err, CB_EINVAL, "cb_plot_curve_svg: NULL argument");
    return cb_svg_learning_curve(path, train_loss, valid_loss, n_epochs, title ? title : "", err);
}
