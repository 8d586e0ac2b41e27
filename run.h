/* run.h: one whole task, end to end -- `h2t run`, and every task of
 * `h2t demo`. Training features at all target sizes T (one backbone pass),
 * for each method model selection by 5-fold cross-validation over the grid
 * and over T, the final head on all training examples, test features for
 * the selected features only (a second backbone pass), test accuracy; then
 * report.json and SVG figures. Also the demo driver: the bundled tasks,
 * Linear vs Head2Toe on each, a table, a JSON report and two summary
 * figures. The steps themselves live in features.c, lasso.c and svg.c;
 * this file only strings them together and writes what they return. */
#ifndef H2T_RUN_H
#define H2T_RUN_H

#include <stddef.h>

#include "features.h"
#include "lasso.h"

#define RUN_MAX_METHODS 5

typedef struct {
    const char *task;                   /* name in the report (default: the out directory) */
    const char *model_dir;
    const char *train_images, *train_labels, *test_images, *test_labels;
    long target[FEAT_MAX_TARGETS];      /* target sizes T, tried in this order */
    int ntarget;
    int nmethods;
    lasso_method methods[RUN_MAX_METHODS];
    /* one grid per entry of methods[] (lasso_fit_config; its method field
     * is ignored): lr, steps, frac as given; coef as given when ncoef > 0,
     * else the method's default. quiet and seed are read from grid[0]. */
    lasso_fit_config grid[RUN_MAX_METHODS];
    const char *taps;                   /* NULL: the official default set */
    int image_batch;                    /* images per backbone pass */
    int keep_features;                  /* keep the training feature files in out/ */
    int figures;                        /* write the SVG figures */
    const char *out;                    /* directory (created; may exist) */
} run_opts;

/* What one method gave. */
typedef struct {
    lasso_method method;
    long target;                        /* chosen T */
    size_t d;                           /* features at that T */
    lasso_grid_point chosen;            /* hyperparameters and validation accuracy */
    int did_cv;
    size_t nsel;                        /* features of the final head */
    int k;
    double train_acc, test_acc;
    size_t test_correct, test_n;
    int nloc;                           /* locations of the chosen layout, depth order */
    char loc_name[MODEL_MAX_LOCATIONS][LOCATION_NAME_MAX];
    size_t loc_dim[MODEL_MAX_LOCATIONS], loc_kept[MODEL_MAX_LOCATIONS];
    /* the validation curve over F, per T, at the best (lr, steps, coef) for
     * that T (head2toe with CV) */
    int ncurve, nfrac;
    long curve_target[FEAT_MAX_TARGETS];
    double curve_lr[FEAT_MAX_TARGETS], curve_coef[FEAT_MAX_TARGETS];
    long curve_steps[FEAT_MAX_TARGETS];
    double frac[LASSO_GRID_MAX];
    double curve_mean[FEAT_MAX_TARGETS][LASSO_GRID_MAX], curve_std[FEAT_MAX_TARGETS][LASSO_GRID_MAX];
    double t_fit, t_test_features, t_eval;   /* seconds */
} run_method_result;

typedef struct {
    size_t n_train, n_test;
    int k;
    size_t d[FEAT_MAX_TARGETS];         /* features at each T */
    double t_train_features, t_total;
    run_method_result m[RUN_MAX_METHODS];
} run_result;

/* Run the task; writes out/<method>/ (the head: selected.npy, W.npy, b.npy,
 * cv.tsv, report.json, layout.tsv; test_features.npy; test.json; figures)
 * and out/report.json. -1 with an error naming the file or stage. */
int run_task(const run_opts *o, run_result *r);
int run_write_report(const char *path, const run_opts *o, const run_result *r);

/* The default coefficient grid of a method (h2t fit's defaults). */
void run_default_coefs(lasso_method m, lasso_fit_config *g);

/* ==========================================================================
 * The demo */

typedef struct {
    const char *dir;                    /* demo/ : demo.cfg, backbone/, tasks/ */
    const char *out;                    /* where per-task runs and figures go */
    const char *report;                 /* JSON report, or NULL */
    const char *only;                   /* run only this task (comma list), or NULL */
    int quiet;
} demo_opts;

int demo_run(const demo_opts *o);

#endif
