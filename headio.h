/* headio.h: the files of a fit, at the edges of the program. Labels in;
 * a scoring run's directory, a fitted head's directory (selected.npy,
 * W.npy, b.npy, layout.tsv, cv.tsv, report.json) and an evaluation's JSON
 * out; a head read back and evaluated on a feature file. Every writer goes
 * through a temporary name and a rename. Nothing here trains or selects
 * (lasso.c, cv.c). */
#ifndef H2T_HEADIO_H
#define H2T_HEADIO_H

#include <stddef.h>

#include "cv.h"

/* Labels [n] of any integer .npy type, each in [0, 65536); *k = max + 1. */
int labels_read(const char *path, size_t n, int **y, int *k);

/* DIR/ scores.npy [d] (float64: scores[d]) and, for a scoring run (h not
 * NULL), W.npy [d, k], b.npy [k] and loss.tsv (step, learning rate, loss).
 * DIR is created. */
int score_write(const char *dir, size_t d, const double *scores, const lasso_head *h, const lasso_opts *o,
                const double *losses);

/* The selection of a fitted head's directory (--select-from): DIR/selected.npy,
 * checked against DIR/layout.tsv, which must describe the same features as l
 * (same locations, offsets and sizes). *sel: [*n] ascending (free_array). */
int selection_read(const char *dir, const feat_layout *l, int64_t **sel, size_t *n);

/* DIR/ selected.npy (int64), W.npy, b.npy, cv.tsv, report.json and, with a
 * layout, layout.tsv (the input layout, for `h2t eval`). n: training
 * examples; seconds: the fit's time. DIR is created. */
int fit_write(const char *dir, const cv_result *cv, const fitted_head *h, const fit_config *cfg,
              const feat_layout *l, size_t n, double seconds);

/* ==========================================================================
 * The grid across machines: a shard's part of the cross-validation,
 * DIR/cv.part.K-of-N.tsv: a first line naming the shard, a line per grid
 * it ran ("# grid <method> T <T>: <cv_grid_id>"), then one line per unit
 * result: method, target, point, fold, the point's lr, steps, coef,
 * fraction, and the accuracy printed exactly (%.17g). */

/* Append r's results that were run (not NaN) to rows. */
void cv_part_rows(textbuf *rows, fit_method m, long target, const cv_result *r);
/* Append the "# grid" line of one (method, T) to grids. */
void cv_part_grid(textbuf *grids, fit_method m, long target, const char *id);
/* Write DIR/cv.part.K-of-N.tsv (DIR created); frees grids and rows. */
int cv_part_write(const char *dir, const cv_shard *s, textbuf *grids, textbuf *rows);
/* Every part in the folders of the comma list dirs: all of one split
 * (the same N, each K once), all with exactly these grid lines. The unit
 * results of all of them into *rows (free()). */
int cv_parts_read(const char *dirs, const char *grids, cv_unit_result **rows, size_t *n);

/* A head written by fit_write (selected, W, b; train_acc NaN). */
int head_read(const char *dir, fitted_head *h);

/* Accuracy of head h on the feature file path ([m, c] float) with labels
 * y[m]. c == h->nsel: the features are already the selected ones;
 * otherwise c must equal l->d and the selected columns are gathered and
 * renormalized per location (l required). Rows stream through in chunks,
 * so memory does not grow with m. correct[k], count[k]: per-class tallies. */
int eval_file(const char *path, const int *y, size_t m, const fitted_head *h, const feat_layout *l,
              size_t *correct, size_t *count);
/* JSON: {"accuracy", "correct", "examples", "per_class": [{class, accuracy, correct, count}]}. */
int eval_write(const char *path, const size_t *correct, const size_t *count, int k);

#endif
