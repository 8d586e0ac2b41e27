/* scores.h: the feature scores features are ranked by (docs/ALGORITHM.md
 * §7, §15). Head2Toe's is l2; the others are the ones the official code
 * carries and the paper compares against.
 *
 * From the scoring run's head W [D, K] (the group-lasso run of lasso.c):
 *   l2           sum_c W_ic^2                         (Head2Toe's; = lasso_scores)
 *   l1           sum_c |W_ic|
 *   linf         max_c |W_ic|
 *   layer        the mean of ||W_j||_2 over the rows j of feature i's
 *                location: every feature of a location scores alike, so
 *                whole locations are selected (the paper's layer-wise)
 *   layer-group  ||W_L||_2, the l2 norm of the whole block of W of
 *                feature i's location L (the paper's "layer-wise (group)")
 * From the training examples, without training:
 *   variance     the feature's standard deviation (population form)
 *   random       a standard normal draw per feature (seeded)
 *   f-classif    the ANOVA F statistic of the feature between classes
 *   chi2         the chi-squared statistic of a non-negative feature
 * and the one change the official code makes to scores before the top-k:
 * each score moved towards its location's mean.
 * Averaging runs, the top-k and its offset are cv.c's and lasso.c's. */
#ifndef H2T_SCORES_H
#define H2T_SCORES_H

#include <stddef.h>
#include <stdint.h>

#include "lasso.h"

typedef enum {
    SCORE_L2, SCORE_L1, SCORE_LINF, SCORE_LAYER, SCORE_LAYER_GROUP,
    SCORE_VARIANCE, SCORE_RANDOM, SCORE_F_CLASSIF, SCORE_CHI2
} score_kind;
extern const char *const score_names[];   /* "l2", "l1", ..., "chi2", NULL */

/* The score called name[0..len); -1 with "<what>: expected l2, l1, ..." otherwise. */
int score_parse(const char *what, const char *name, size_t len, score_kind *s);
/* Whether the score needs a scoring run (l2 .. layer-group). */
int score_uses_head(score_kind s);
/* Whether two runs with different seeds can give different scores (the
 * ones from a scoring run, and random). */
int score_uses_seed(score_kind s);

/* s[D] from the head w [d, k]; l (the layout of the d features) is needed
 * by layer and layer-group only. */
void scores_from_head(score_kind kind, const float *w, size_t d, int k, const feat_layout *l, double *s);

/* Whether X can be scored by kind: chi2 needs every feature of the given
 * rows to be >= 0 (-1 with an error naming the first negative one);
 * f-classif needs at least 2 classes and more rows than classes. */
int scores_check_data(score_kind kind, const lasso_data *X, const size_t *rows, size_t nrows);
/* s[D] from the examples rows[0..nrows) of X (variance, random, f-classif,
 * chi2); random draws from the project RNG seeded with seed. -1 with an
 * error if scores_check_data refuses or memory runs out. */
int scores_from_data(score_kind kind, const lasso_data *X, const size_t *rows, size_t nrows, uint64_t seed,
                     double *s);

/* s[i] <- s[i] (1 - c) + mean_L c, mean_L the mean score of feature i's
 * location (summed in double in index order), 0 <= c <= 1. */
void scores_interpolate(double *s, const feat_layout *l, double c);

#endif
