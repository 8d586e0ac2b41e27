/* pipeline.h: Head2Toe end to end, in memory (docs/ALGORITHM.md §1).
 *
 *   1. features of the training images at every target size T: one
 *      backbone pass (extract.c)
 *   2. for each method: cross-validation over its grid and over T, then the
 *      final head at the chosen point (cv.c, lasso.c)
 *   3. the test images' features, only those the methods selected: one
 *      backbone pass for all methods, stopped after the deepest location
 *      any selected feature needs
 *   4. test accuracy
 *
 * Stages meet through arrays; nothing is written and read back. `h2t run`
 * and `h2t demo` (run.c, demo.c) open the inputs and write the outputs. */
#ifndef H2T_PIPELINE_H
#define H2T_PIPELINE_H

#include <stddef.h>

#include "cv.h"
#include "extract.h"

#define PIPE_MAX_METHODS 5

typedef struct {
    model *m;                                 /* loaded */
    image_source *train, *test;               /* opened */
    const int *ytr, *yte;                     /* labels [n_train], [n_test], in [0, k) */
    int k;
    long target[FEAT_MAX_TARGETS];            /* target sizes T, in this order (ties: the earlier) */
    int ntarget;
    const char *taps;                         /* NULL: the default locations */
    long tap_every;                           /* keep every k-th of them (0, 1: all; docs/ALGORITHM.md §16) */
    cls_mode cls;                             /* token maps' class tokens (§16) */
    int nmethods;
    fit_config grid[PIPE_MAX_METHODS];        /* one per method: its method, grid, batch, seed */
    int image_batch;                          /* images per backbone batch */
    int quiet;
    /* The grid across machines (cv.h): shard.n > 1 runs only that shard's
     * units of every method's cross-validation and stops there (n 0 or 1:
     * the whole grid); collect
     * (if set) supplies all the shards' results instead of running it. */
    cv_shard shard;
    int (*collect)(void *ctx, const char *grids, cv_unit_result **rows, size_t *n);
    void *collect_ctx;
} pipeline_in;

/* What one backbone pass did. */
typedef struct {
    size_t images;
    int last;                                 /* deepest location computed (index into m->loc) */
    double seconds;
} backbone_pass;

/* The validation curve over F at the best (lr, steps, coef) of one T. */
typedef struct {
    const grid_point *points;                 /* [nfrac] into that T's cv_result */
} val_curve;

typedef struct {
    fit_method method;
    int ncv;                                  /* target sizes tried (linear: 1, pre_logits is the same at every T) */
    cv_result cv[FEAT_MAX_TARGETS];           /* the grid at each of them */
    int t;                                    /* the chosen one; its point: cv[t].points[cv[t].best] */
    fitted_head head;                         /* the final head */
    size_t *correct, *count;                  /* [k] test tallies per class */
    size_t test_correct, test_n;
    double test_acc;
    double t_cv[FEAT_MAX_TARGETS];            /* seconds: the cross-validation at each T */
    double t_final, t_fit;                    /* the final head; all of the method's fitting */
} method_result;

typedef struct {
    size_t n_train, n_test;
    int k, ntarget;
    feat_layout *lay;                         /* [ntarget] the layouts of the training features */
    float *xtr[FEAT_MAX_TARGETS];             /* [n_train, lay[t].d] the training features */
    int nmethods;
    method_result m[PIPE_MAX_METHODS];
    backbone_pass train_pass, test_pass;
    double t_total;
} pipeline_result;

int pipeline_run(const pipeline_in *in, pipeline_result *r);
/* The "# grid" lines of every method and T (headio.h cv_part_grid), once
 * the training features are known: what a shard's part must carry. */
void pipeline_grids(const pipeline_in *in, const pipeline_result *r, textbuf *grids);
void pipeline_result_free(pipeline_result *r);

/* The best (lr, steps, coef) of T index t's cross-validation and its curve
 * over F (head2toe, cross-validated). 0 if there is none. */
int pipeline_curve(const method_result *mr, int t, const fit_config *cfg, val_curve *c);

#endif
