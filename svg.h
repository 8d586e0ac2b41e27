/* svg.h: the figures h2t writes, as standalone SVG 1.1 files made with
 * fprintf (no plotting dependency). Three chart kinds cover them:
 *   - bars:    where the selected features come from (one bar per
 *              location, in depth order: the paper's Fig. 12), and Linear
 *              vs Head2Toe per task (grouped bars: the paper's Fig. 2);
 *   - lines:   validation accuracy against the fraction F kept (log x),
 *              one line per setting of the other hyperparameters;
 *   - heatmap: tasks x locations, the share of each task's selected
 *              features (the demo's version of Fig. 12).
 * Every bar, point and cell carries a <title> (a tooltip in a browser) with
 * its exact value. Files are written to a temporary name and renamed.
 * Nothing here knows about models or Head2Toe; callers pass plain arrays. */
#ifndef H2T_SVG_H
#define H2T_SVG_H

#include <stddef.h>

typedef struct {
    const char *title;          /* NULL: none */
    const char *xlabel, *ylabel;
    double ymin, ymax;          /* y range; NaN: from the data (ymin 0 for bars) */
    const char *yformat;        /* printf format of y tick labels, e.g. "%.0f%%"; NULL "%g" */
} svg_chart;

/* Bars: n categories (labels[n], drawn rotated when long), nseries bars
 * per category, values [nseries, n] (NaN: no bar). series_names[nseries]
 * make a legend when nseries > 1 (may be NULL when nseries == 1).
 * color[n] (may be NULL) picks a palette colour per category for a single
 * series (e.g. one colour per ResNet stage); otherwise colour = series. */
int svg_bars(const char *path, const svg_chart *c, int n, const char *const *labels,
             int nseries, const char *const *series_names, const double *values, const int *color);

/* One line of a line chart: n points (x[i], y[i]), optional error bar
 * +-err[i] (err may be NULL; NaN y: point skipped). */
typedef struct {
    const char *name;
    int n;
    const double *x, *y, *err;
} svg_series;

/* Lines with markers; log_x: logarithmic x axis (x > 0 required).
 * (mark_x, mark_y), if both finite, is ringed (the chosen point). */
int svg_lines(const char *path, const svg_chart *c, int log_x, int nseries, const svg_series *s,
              double mark_x, double mark_y);

/* Heat map: v [rows, cols] >= 0 (NaN: blank), shaded white -> dark blue
 * from 0 to the largest value, with a colour scale; the ylabel is unused. */
int svg_heatmap(const char *path, const svg_chart *c, int rows, const char *const *row_labels,
                int cols, const char *const *col_labels, const double *v);

/* For tests: writes text with &, <, >, " and ' escaped, as SVG needs. */
void svg_escape(char *out, size_t cap, const char *text);

#endif
