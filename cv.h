/* cv.h: model selection (docs/ALGORITHM.md §9, §10). The methods --
 * Head2Toe and the Linear and All-l1 / All-l2 / All-l2,1 baselines -- and
 * their grids (the paper's defaults live here and nowhere else), 5-fold
 * cross-validation over a grid, and the final head at the chosen point.
 * The training itself (scoring run, selection, heads) is lasso.c's; the
 * files of a fit are headio.c's. */
#ifndef H2T_CV_H
#define H2T_CV_H

#include <stddef.h>
#include <stdint.h>

#include "lasso.h"
#include "scores.h"

typedef enum { METHOD_HEAD2TOE, METHOD_LINEAR, METHOD_ALL_L1, METHOD_ALL_L2, METHOD_ALL_L21 } fit_method;
extern const char *const method_names[];   /* "head2toe", "linear", "all-l1", "all-l2", "all-l21", NULL */
/* The method called name; -1 with "<what>: expected head2toe, ..." otherwise. */
int method_parse(const char *what, const char *name, size_t len, fit_method *m);

/* ==========================================================================
 * The grid. The paper's values (docs/ALGORITHM.md §9, §10), as comma lists:
 * the CLI shows them in --help and fit_default_grid parses them. */

#define GRID_LR "0.1,0.01"
#define GRID_STEPS "500,5000"
#define GRID_COEF "1e-3,1e-5"                 /* head2toe (and linear: unused) */
#define GRID_COEF_ALL "1e-5,1e-4,1e-3"        /* the all-* baselines */
#define GRID_FRACTION "0.0005,0.001,0.002,0.005,0.01,0.02,0.05,0.1"
#define GRID_TARGET "1024"                    /* target sizes T (h2t run; the paper also uses 16384, 40000) */
#define GRID_BATCH 128

#define GRID_MAX 16
#define CV_FOLDS 5
#define CV_STACK 4                        /* scoring runs of a fold trained together, at most (§11) */
#define CV_STACK_BYTES (1024.0 * 1024 * 1024) /* and their heads' memory, at most */

typedef struct {
    fit_method method;
    int nlr, nsteps, ncoef, nfrac;
    double lr[GRID_MAX];
    long steps[GRID_MAX];
    double coef[GRID_MAX];            /* unused by linear */
    double frac[GRID_MAX];            /* head2toe only */
    int batch;                        /* nominal batch (128) */
    uint64_t seed;
    int force_cv;                     /* cross-validate even a single grid point */
    int quiet;                        /* no progress on stderr */
    /* head2toe's selection (docs/ALGORITHM.md §15); all zero: as published */
    score_kind score;                 /* what the features are ranked by (SCORE_L2) */
    int average_over;                 /* scores: the mean of this many runs, seeds seed, seed+1, .. (0, 1: one) */
    size_t keep_offset;               /* the keep_offset best-ranked features are skipped */
    double interpolation;             /* each score moved this share (0..1) towards its location's mean */
    const int64_t *fixed_sel;         /* --select-from: train on these features (ascending), no scoring */
    size_t nfixed;
    /* every method (docs/ALGORITHM.md §16) */
    double train_fraction;            /* in (0, 1): a seeded stratified subset of the examples; 0 or 1: all */
} fit_config;

/* Every list of c that is empty (n == 0) gets the paper's values for
 * c->method; batch 0 becomes 128. */
void fit_default_grid(fit_config *c);

/* ==========================================================================
 * Cross-validation */

typedef struct {
    double lr;
    long steps;
    double coef, frac;                /* 0 and 1 where the method has none */
    size_t features;                  /* features of the head */
    double mean, std;                 /* validation accuracy over the folds (NaN without CV) */
    double fold_acc[CV_FOLDS];
} grid_point;

typedef struct {
    int npoints, best, did_cv;
    grid_point *points;               /* [npoints], grid order: lr, steps, coef, frac */
} cv_result;

/* Fold f of nfolds validates the consecutive examples [f*n/nfolds,
 * (f+1)*n/nfolds) and trains on all the others, in their original order. */
void fold_bounds(size_t n, int nfolds, int fold, size_t *start, size_t *end);

/* Checks cfg and the data (labels, layout: head2toe and linear need one
 * with X->d features, linear a location named pre_logits). */
int fit_check(const lasso_data *X, const feat_layout *l, const fit_config *cfg);
/* The part of fit_check that needs only the number of features d (the
 * --keep-offset must leave int(d F) features for every F). */
int fit_check_features(const fit_config *cfg, size_t d);
/* Every grid point; with more than one (or force_cv), each is
 * cross-validated and best is the highest mean accuracy (ties: the first
 * in grid order); otherwise the single point has NaN accuracies. */
int cv_run(const lasso_data *X, const feat_layout *l, const fit_config *cfg, cv_result *r);
void cv_result_free(cv_result *r);

/* ==========================================================================
 * The grid across machines (--grid-shard K/N, --collect). The work of
 * cv_run is a list of units: a row (lr, steps, coef) of the grid -- its F
 * are swept inside the unit, after one scoring run -- times a fold:
 * unit u = row * CV_FOLDS + fold, numbered on from `first` (the units of
 * earlier target sizes in h2t run). Shard k of n runs the units with
 * (first + u) % n == k, so slow and fast rows spread evenly. */

typedef struct {
    long k, n;          /* shard k of n (0 <= k < n) */
    long first;         /* units before this grid */
} cv_shard;

/* Units of cfg's grid (0 when it is not cross-validated: a single point
 * without force_cv). */
int cv_units(const fit_config *cfg);
/* cv_run restricted to the units of shard s: their fold accuracies are
 * set, the others stay NaN; nothing is summarized (cv_summarize, once the
 * shards are merged). */
int cv_run_shard(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const cv_shard *s,
                 cv_result *r);
/* Means and standard deviations over the folds; best = the highest mean
 * (ties: the first in grid order). */
void cv_summarize(cv_result *r);

/* One unit's result as a shard reports it: the accuracy of grid point
 * `point` (index into cv_result.points) on fold `fold`. */
typedef struct {
    fit_method method;
    long target;        /* T (h2t run), 0 (h2t fit) */
    int point, fold;
    double acc;
} cv_unit_result;

/* The grid's points, accuracies NaN, nothing run (for cv_merge); did_cv
 * as cv_run would set it. */
int cv_prepare(const lasso_data *X, const feat_layout *l, const fit_config *cfg, cv_result *r);
/* The rows of method m at target T into r (made by cv_prepare for the same
 * grid): each point and fold exactly once, every one present; then
 * cv_summarize. -1 naming the first missing or repeated unit. */
int cv_merge(const cv_unit_result *rows, size_t n, fit_method m, long target, cv_result *r);
/* A text naming the grid, the data's sizes and the seed: shards of one run
 * carry the same one, --collect refuses parts that do not. */
void cv_grid_id(const fit_config *cfg, size_t n, size_t d, int k, char *out, size_t cap);
/* The final head on all examples at point p (docs/ALGORITHM.md §8), with
 * its training accuracy (on the examples the fit used). */
int fit_final(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const grid_point *p, fitted_head *h);
/* The scores s[D] the final fit at point p ranks the features by
 * (head2toe without --select-from: every option of docs/ALGORITHM.md §15
 * applied but the offset), and, when w is not NULL and the score comes
 * from a scoring run, that run's head W [D, K] (the last run's). */
int fit_scores(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const grid_point *p, double *s,
               float *w);
/* How many of the n examples a fit with train_fraction f uses (all for f 0 or 1). */
size_t fit_examples(const lasso_data *X, double f);
/* Which: rows[0..*n) ascending (rows: room for X->n), the subset of
 * docs/ALGORITHM.md §16 drawn with cfg->seed, or all of them. */
int fit_rows(const lasso_data *X, const fit_config *cfg, size_t *rows, size_t *n);

#endif
