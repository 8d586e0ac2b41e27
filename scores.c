/* scores.c: the feature scores (docs/ALGORITHM.md §7, §15). See scores.h.
 * Sections:
 *   names              parsing --score
 *   from the head      l2, l1, linf, layer, layer-group from W [D, K]
 *   from the data      variance, random, f-classif, chi2 from the examples
 *   interpolation      scores moved towards their location's mean
 *
 * Numerics: every sum is in double, in index order (rows in the order
 * given, classes ascending, columns of W ascending), so the scores depend
 * on the data only, never on the thread count; loops over features are the
 * only parallel ones. f-classif and chi2 use only the classes that occur
 * among the rows, as scikit-learn's f_classif and chi2 do. */
#include "scores.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ==========================================================================
 * Names */

const char *const score_names[] = {"l2",       "l1",     "linf",      "layer", "layer-group",
                                   "variance", "random", "f-classif", "chi2",  NULL};

int score_parse(const char *what, const char *name, size_t len, score_kind *s)
{
    for (int i = 0; score_names[i]; i++)
        if (strlen(score_names[i]) == len && strncmp(score_names[i], name, len) == 0) {
            *s = (score_kind)i;
            return 0;
        }
    set_error("%s: expected l2, l1, linf, layer, layer-group, variance, random, f-classif or chi2, got '%.*s'", what,
              (int)len, name);
    return -1;
}

int score_uses_head(score_kind s) { return s <= SCORE_LAYER_GROUP; }

int score_uses_seed(score_kind s) { return score_uses_head(s) || s == SCORE_RANDOM; }

/* ==========================================================================
 * From the head W [d, k] */

/* sum_c |w_c| and max_c |w_c| of one row, sum in double. */
static double row_l1(const float *w, int k)
{
    double s = 0.0;
    for (int c = 0; c < k; c++) s += fabs((double)w[c]);
    return s;
}

static double row_linf(const float *w, int k)
{
    double m = 0.0;
    for (int c = 0; c < k; c++)
        if (fabs((double)w[c]) > m) m = fabs((double)w[c]);
    return m;
}

static double row_sq(const float *w, int k)
{
    double s = 0.0;
    for (int c = 0; c < k; c++) s += (double)w[c] * (double)w[c];
    return s;
}

/* layer / layer-group: one value per location, given to all its features:
 * the mean of the rows' norms, or the norm of the whole block. */
static void scores_per_location(score_kind kind, const float *w, int k, const feat_layout *l, double *s)
{
    for (int e = 0; e < l->n; e++) {
        const size_t o = l->e[e].offset, n = l->e[e].dim;
        double acc = 0.0;
        for (size_t i = o; i < o + n; i++) {
            const double sq = row_sq(w + i * (size_t)k, k);
            acc += kind == SCORE_LAYER ? sqrt(sq) : sq;
        }
        const double v = kind == SCORE_LAYER ? acc / (double)n : sqrt(acc);
        for (size_t i = o; i < o + n; i++) s[i] = v;
    }
}

void scores_from_head(score_kind kind, const float *w, size_t d, int k, const feat_layout *l, double *s)
{
    const long dl = (long)d;
    if (kind == SCORE_L2) {
        lasso_scores(w, d, k, s); /* Head2Toe's score: one home */
    } else if (kind == SCORE_LAYER || kind == SCORE_LAYER_GROUP) {
        scores_per_location(kind, w, k, l, s);
    } else {
#pragma omp parallel for schedule(static)
        for (long i = 0; i < dl; i++) {
            const float *wi = w + (size_t)i * (size_t)k;
            s[i] = kind == SCORE_L1 ? row_l1(wi, k) : row_linf(wi, k);
        }
    }
}

/* ==========================================================================
 * From the data */

/* Per-class counts n[k] and sums S[k, d] (and sums of squares Q[k, d] when
 * Q is not NULL) of the rows, rows in order; the number of classes that
 * occur goes to *present. */
static void class_sums(const lasso_data *X, const size_t *rows, size_t nrows, size_t *n, double *S, double *Q,
                       int *present)
{
    const size_t d = X->d, kd = (size_t)X->k * d;
    memset(n, 0, (size_t)X->k * sizeof *n);
    memset(S, 0, kd * sizeof *S);
    if (Q) memset(Q, 0, kd * sizeof *Q);
    for (size_t r = 0; r < nrows; r++) {
        const float *x = X->x + rows[r] * X->ld;
        const int y = X->y[rows[r]];
        double *Sy = S + (size_t)y * d, *Qy = Q ? Q + (size_t)y * d : NULL;
        n[y]++;
        for (size_t j = 0; j < d; j++) Sy[j] += (double)x[j];
        if (Qy)
            for (size_t j = 0; j < d; j++) Qy[j] += (double)x[j] * (double)x[j];
    }
    *present = 0;
    for (int c = 0; c < X->k; c++) *present += n[c] > 0;
}

/* The ANOVA F statistic of every feature (scikit-learn's f_classif):
 *   sstot = sum x^2 - (sum x)^2 / n,  ssbn = sum_c S_c^2 / n_c - (sum x)^2 / n,
 *   F = (ssbn / (kp - 1)) / ((sstot - ssbn) / (n - kp)),  kp classes present. */
static void f_classif(const lasso_data *X, const size_t *n, const double *S, const double *Q, int kp, size_t nrows,
                      double *s)
{
    const size_t d = X->d;
    for (size_t j = 0; j < d; j++) {
        double sum = 0.0, sq = 0.0, between = 0.0;
        for (int c = 0; c < X->k; c++) {
            if (!n[c]) continue;
            const double Sc = S[(size_t)c * d + j];
            sum += Sc;
            sq += Q[(size_t)c * d + j];
            between += Sc * Sc / (double)n[c];
        }
        const double all = sum * sum / (double)nrows, sstot = sq - all, ssbn = between - all;
        const double msb = ssbn / (double)(kp - 1), msw = (sstot - ssbn) / (double)(nrows - (size_t)kp);
        s[j] = msb / msw;
    }
}

/* The chi-squared statistic of every feature (scikit-learn's chi2): with
 * observed O_c = S_c (the class's sum of the feature) and expected
 * E_c = (n_c / n) sum x, chi2 = sum_c (O_c - E_c)^2 / E_c over the classes
 * present. */
static void chi2(const lasso_data *X, const size_t *n, const double *S, size_t nrows, double *s)
{
    const size_t d = X->d;
    for (size_t j = 0; j < d; j++) {
        double total = 0.0, chi = 0.0;
        for (int c = 0; c < X->k; c++) total += n[c] ? S[(size_t)c * d + j] : 0.0;
        for (int c = 0; c < X->k; c++) {
            if (!n[c]) continue;
            const double e = (double)n[c] / (double)nrows * total, o = S[(size_t)c * d + j];
            chi += (o - e) * (o - e) / e;
        }
        s[j] = chi;
    }
}

/* The population standard deviation of every feature: mean first, then
 * the mean squared deviation (two passes, rows in order). */
static void variance(const lasso_data *X, const size_t *rows, size_t nrows, double *s)
{
    const long dl = (long)X->d;
#pragma omp parallel for schedule(static)
    for (long j = 0; j < dl; j++) {
        double m = 0.0, v = 0.0;
        for (size_t r = 0; r < nrows; r++) m += (double)X->x[rows[r] * X->ld + (size_t)j];
        m /= (double)nrows;
        for (size_t r = 0; r < nrows; r++) {
            const double dv = (double)X->x[rows[r] * X->ld + (size_t)j] - m;
            v += dv * dv;
        }
        s[j] = sqrt(v / (double)nrows);
    }
}

int scores_check_data(score_kind kind, const lasso_data *X, const size_t *rows, size_t nrows)
{
    if (kind == SCORE_CHI2)
        for (size_t r = 0; r < nrows; r++) {
            const float *x = X->x + rows[r] * X->ld;
            for (size_t j = 0; j < X->d; j++)
                if (x[j] < 0) {
                    set_error("--score chi2: needs non-negative features, but feature %zu of example %zu is %g "
                              "(choose locations without negative values, e.g. no logits)", j, rows[r], x[j]);
                    return -1;
                }
        }
    if (kind == SCORE_F_CLASSIF) {
        unsigned char *seen = alloc_zeros((size_t)X->k, 1);
        int kp = 0;
        if (!seen) return -1;
        for (size_t r = 0; r < nrows; r++) {
            kp += !seen[X->y[rows[r]]];
            seen[X->y[rows[r]]] = 1;
        }
        free_array(seen);
        if (kp < 2 || nrows <= (size_t)kp) {
            set_error("--score f-classif: needs at least 2 classes and more examples than classes (%d classes in %zu "
                      "examples)", kp, nrows);
            return -1;
        }
    }
    return 0;
}

int scores_from_data(score_kind kind, const lasso_data *X, const size_t *rows, size_t nrows, uint64_t seed,
                     double *s)
{
    if (scores_check_data(kind, X, rows, nrows)) return -1;
    if (kind == SCORE_VARIANCE) {
        variance(X, rows, nrows, s);
        return 0;
    }
    if (kind == SCORE_RANDOM) {
        rng_t r;
        rng_seed(&r, seed);
        for (size_t j = 0; j < X->d; j++) s[j] = rng_normal(&r);
        return 0;
    }
    const size_t kd = (size_t)X->k * X->d;
    size_t *n = alloc_array((size_t)X->k, sizeof *n);
    double *S = alloc_array(kd, sizeof *S), *Q = kind == SCORE_F_CLASSIF ? alloc_array(kd, sizeof *Q) : NULL;
    int kp, rc = -1;
    if (n && S && (Q || kind != SCORE_F_CLASSIF)) {
        class_sums(X, rows, nrows, n, S, Q, &kp);
        if (kind == SCORE_F_CLASSIF) f_classif(X, n, S, Q, kp, nrows, s);
        else chi2(X, n, S, nrows, s);
        rc = 0;
    }
    free_array(n);
    free_array(S);
    free_array(Q);
    return rc;
}

/* ==========================================================================
 * Interpolation towards each location's mean */

void scores_interpolate(double *s, const feat_layout *l, double c)
{
    for (int e = 0; e < l->n; e++) {
        const size_t o = l->e[e].offset, n = l->e[e].dim;
        double mean = 0.0;
        for (size_t i = o; i < o + n; i++) mean += s[i];
        mean /= (double)n;
        for (size_t i = o; i < o + n; i++) s[i] = s[i] * (1.0 - c) + mean * c;
    }
}
