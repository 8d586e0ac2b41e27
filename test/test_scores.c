/* test/test_scores.c: the feature scores (scores.c) and the selection
 * options of the fit (cv.c), docs/ALGORITHM.md §15, §16:
 *   - every score on a case worked by hand (W of 4 features in 2
 *     locations; 6 examples of 2 features in 2 classes, a third class
 *     absent), and the interpolation towards the location's mean;
 *   - by construction: an offset selection is the difference of two plain
 *     ones; --average-over 2 is the mean of the runs with seeds s and s+1,
 *     --average-over 1 is the default; the fit's selection with an offset
 *     is the ranks of fit_scores; layer scores select whole locations;
 *   - --select-from with a fit's own selection gives that fit's head, bit
 *     for bit; --train-fraction draws int(n_c f) (at least 1) examples of
 *     each class, ascending, reproducibly;
 *   - refusals: chi2 of negative features, an offset beyond D, selection
 *     options for another method.
 * The comparison with numpy and scikit-learn is test/parity_scores.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cv.h"
#include "headio.h"
#include "npy.h"
#include "scores.h"
#include "util.h"

#define FIX "test/fixtures/lasso/"

static int near(double a, double b) { return fabs(a - b) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1); }

/* Two locations A = features 0, 1 and B = features 2, 3. */
static void layout_ab(feat_layout *l)
{
    memset(l, 0, sizeof *l);
    l->n = 2, l->d = 4;
    strcpy(l->e[0].name, "A"), l->e[0].offset = 0, l->e[0].dim = 2, l->e[0].pool = -1;
    strcpy(l->e[1].name, "B"), l->e[1].offset = 2, l->e[1].dim = 2, l->e[1].pool = -1;
}

static void test_head_scores(void)
{
    /* W rows: (3, 4), (0, -1), (1, 1), (-2, 0): row norms 5, 1, sqrt 2, 2 */
    const float w[8] = {3, 4, 0, -1, 1, 1, -2, 0};
    const double want[5][4] = {
        {25, 1, 2, 4},                                      /* l2 */
        {7, 1, 2, 2},                                       /* l1 */
        {4, 1, 1, 2},                                       /* linf */
        {3, 3, (sqrt(2.0) + 2) / 2, (sqrt(2.0) + 2) / 2},   /* layer: mean row norm */
        {sqrt(26.0), sqrt(26.0), sqrt(6.0), sqrt(6.0)},     /* layer-group: norm of the block */
    };
    feat_layout l;
    layout_ab(&l);
    for (int k = 0; k < 5; k++) {
        double s[4];
        scores_from_head((score_kind)k, w, 4, 2, &l, s);
        int ok = 1;
        for (int i = 0; i < 4; i++) ok &= near(s[i], want[k][i]);
        check(ok, "scores: %s of a hand-worked W: %g %g %g %g", score_names[k], s[0], s[1], s[2], s[3]);
    }
    double s[4] = {25, 1, 2, 4};
    scores_interpolate(s, &l, 0.5); /* means 13 and 3 */
    check(near(s[0], 19) && near(s[1], 7) && near(s[2], 2.5) && near(s[3], 3.5),
          "scores: interpolation c 0.5 towards the location's mean: 19 7 2.5 3.5 (got %g %g %g %g)", s[0], s[1],
          s[2], s[3]);
}

static void test_data_scores(void)
{
    /* 6 examples, 2 features; classes 0, 0, 0, 1, 1, 1 of K = 3 (class 2 absent) */
    const float x[12] = {1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 2};
    const int y[6] = {0, 0, 0, 1, 1, 1};
    const size_t rows[6] = {0, 1, 2, 3, 4, 5};
    const lasso_data X = {x, 6, 2, 2, y, 3};
    double s[2];
    int rc = scores_from_data(SCORE_VARIANCE, &X, rows, 6, 0, s);
    check(rc == 0 && near(s[0], sqrt(17.5 / 6)) && near(s[1], sqrt(5.0 / 36)),
          "scores: variance = population std: %g %g", s[0], s[1]);
    /* feature 0: class means 2, 5, grand 3.5: ssbn 13.5, sswn 4 -> F = 13.5 / (4 / 4);
     * feature 1: ssbn 1/6, sswn 2/3 -> F = (1/6) / ((2/3) / 4) = 1 */
    rc = scores_from_data(SCORE_F_CLASSIF, &X, rows, 6, 0, s);
    check(rc == 0 && near(s[0], 13.5) && near(s[1], 1.0), "scores: f-classif by hand 13.5 and 1 (got %g %g), the "
          "absent class ignored", s[0], s[1]);
    /* feature 0: total 21, expected 10.5 per class, observed 6 and 15;
     * feature 1: total 7, expected 3.5, observed 3 and 4 */
    rc = scores_from_data(SCORE_CHI2, &X, rows, 6, 0, s);
    check(rc == 0 && near(s[0], 2 * 4.5 * 4.5 / 10.5) && near(s[1], 2 * 0.25 / 3.5),
          "scores: chi2 by hand %g and %g (got %g %g)", 2 * 4.5 * 4.5 / 10.5, 2 * 0.25 / 3.5, s[0], s[1]);
    double r1[2], r2[2];
    rc = scores_from_data(SCORE_RANDOM, &X, rows, 6, 5, r1) || scores_from_data(SCORE_RANDOM, &X, rows, 6, 5, r2);
    check(rc == 0 && r1[0] == r2[0] && r1[1] == r2[1] && r1[0] != r1[1], "scores: random is reproducible for a seed");
    const float neg[12] = {1, 1, 2, 1, 3, -1, 4, 1, 5, 1, 6, 2};
    const lasso_data Xn = {neg, 6, 2, 2, y, 3};
    rc = scores_from_data(SCORE_CHI2, &Xn, rows, 6, 0, s);
    check(rc != 0 && strstr(last_error(), "non-negative") && strstr(last_error(), "feature 1 of example 2"),
          "scores: chi2 refuses a negative feature: %s", last_error());
    rc = scores_from_data(SCORE_F_CLASSIF, &X, rows, 3, 0, s);
    check(rc != 0 && strstr(last_error(), "2 classes"), "scores: f-classif refuses a single class: %s", last_error());
}

static void test_offset(void)
{
    double s[50];
    rng_t r;
    rng_seed(&r, 11);
    for (int i = 0; i < 50; i++) s[i] = (double)(rng_u64(&r) % 20); /* many ties */
    int64_t a[50], b[50], o[50];
    int ok = 1;
    for (size_t off = 0; off <= 40; off += 7)
        for (size_t k = 1; off + k <= 50; k += 6) {
            lasso_select(s, 50, off + k, a);   /* ranks 0 .. off+k-1 */
            lasso_select(s, 50, off, b);       /* ranks 0 .. off-1 */
            lasso_select_offset(s, 50, off, k, o);
            size_t q = 0, j = 0;
            for (size_t i = 0; i < off + k; i++) {
                while (j < off && b[j] < a[i]) j++;
                if (j < off && b[j] == a[i]) continue;
                ok &= q < k && o[q] == a[i];
                q++;
            }
            ok &= q == k;
        }
    check(ok, "select: ranks N .. N+k-1 = the top N+k without the top N (ties to the lower index), N 0..35, k 1..49");
}

/* The fixture problem of test_lasso (300 x 40, 4 classes, locations 10 | 20 | 10). */
typedef struct {
    npy_array X;
    int *y, k;
    feat_layout l;
    lasso_data data;
} fixture;

static int fixture_read(fixture *f)
{
    memset(f, 0, sizeof *f);
    if (npy_read(FIX "X.npy", NPY_F32, &f->X) || labels_read(FIX "y.npy", 300, &f->y, &f->k) ||
        layout_read(FIX "X.layout.tsv", &f->l))
        return -1;
    f->data = (lasso_data){f->X.data, 300, 40, 40, f->y, f->k};
    return 0;
}

static fit_config one_point(void)
{
    fit_config c;
    memset(&c, 0, sizeof c);
    c.method = METHOD_HEAD2TOE;
    c.nlr = 1, c.lr[0] = 0.05;
    c.nsteps = 1, c.steps[0] = 40;
    c.ncoef = 1, c.coef[0] = 1e-2;
    c.nfrac = 1, c.frac[0] = 0.25;
    c.batch = 128;
    c.seed = 1;
    c.quiet = 1;
    return c;
}

static grid_point point_of(const fit_config *c)
{
    grid_point p = {c->lr[0], c->steps[0], c->coef[0], c->frac[0], 0, NAN, NAN, {0}};
    return p;
}

static void test_fit_options(const fixture *f)
{
    fit_config c = one_point(), c1 = c, c2 = c;
    const grid_point p = point_of(&c);
    double avg[40], a[40], b[40], dflt[40];
    c.average_over = 2;
    c2.seed = 2;
    int rc = fit_scores(&f->data, &f->l, &c, &p, avg, NULL) || fit_scores(&f->data, &f->l, &c1, &p, a, NULL) ||
             fit_scores(&f->data, &f->l, &c2, &p, b, NULL);
    int ok = rc == 0;
    for (int i = 0; ok && i < 40; i++) {
        const double mean = (double)((a[i] + b[i]) / 2); /* the cast rounds x87's long double to double */
        ok = avg[i] == mean && a[i] != b[i];
    }
    check(ok, "fit: --average-over 2 = the mean of the runs with seeds 1 and 2, bit for bit %s", rc ? last_error() : "");
    c1.average_over = 1;
    rc = fit_scores(&f->data, &f->l, &c1, &p, dflt, NULL);
    check(rc == 0 && memcmp(dflt, a, sizeof a) == 0, "fit: --average-over 1 is the default");

    /* an offset: the final selection = ranks 3 .. 12 of the scores */
    fit_config co = one_point();
    fitted_head h = {0};
    int64_t want[40];
    co.keep_offset = 3;
    rc = fit_final(&f->data, &f->l, &co, &p, &h);
    lasso_select_offset(a, 40, 3, 10, want);
    check(rc == 0 && h.nsel == 10 && memcmp(h.selected, want, sizeof(int64_t) * 10) == 0,
          "fit: --keep-offset 3 keeps ranks 3 .. 12 of the fit's scores %s", rc ? last_error() : "");
    fitted_head_free(&h);
    co.keep_offset = 31; /* 31 + int(40 * 0.25) > 40 */
    rc = fit_final(&f->data, &f->l, &co, &p, &h);
    check(rc != 0 && strstr(last_error(), "--keep-offset 31"), "fit: an offset beyond D is refused: %s", last_error());

    /* layer scores: the 10 features are whole locations, in score order */
    fit_config cl = one_point();
    cl.score = SCORE_LAYER;
    rc = fit_final(&f->data, &f->l, &cl, &p, &h);
    int e0 = rc ? -1 : layout_location_of(&f->l, (size_t)h.selected[0]);
    ok = rc == 0 && h.nsel == 10;
    for (size_t j = 0; ok && j < h.nsel; j++) ok = layout_location_of(&f->l, (size_t)h.selected[j]) == e0;
    check(ok, "fit: --score layer keeps 10 features of one location (%s)", e0 >= 0 ? f->l.e[e0].name : "?");
    fitted_head_free(&h);
}

static void test_select_from(const fixture *f)
{
    fit_config c = one_point();
    const grid_point p = point_of(&c);
    fitted_head own = {0}, again = {0};
    int rc = fit_final(&f->data, &f->l, &c, &p, &own);
    fit_config cf = c;
    cf.fixed_sel = own.selected;
    cf.nfixed = own.nsel;
    cf.ncoef = 0, cf.nfrac = 0; /* not used with a given selection */
    const grid_point pf = {c.lr[0], c.steps[0], 0, 1, 0, NAN, NAN, {0}};
    rc = rc || fit_final(&f->data, &f->l, &cf, &pf, &again);
    check(rc == 0 && again.nsel == own.nsel && memcmp(again.selected, own.selected, own.nsel * sizeof(int64_t)) == 0 &&
              memcmp(again.w, own.w, own.nsel * (size_t)own.k * sizeof(float)) == 0 && again.train_acc == own.train_acc,
          "fit: --select-from the fit's own selection gives its head bit for bit (train acc %.4f) %s", own.train_acc,
          rc ? last_error() : "");
    cv_result r = {0};
    cf.nlr = 2, cf.lr[1] = 0.01;
    rc = cv_run(&f->data, &f->l, &cf, &r);
    check(rc == 0 && r.npoints == 2 && r.did_cv && r.points[0].features == own.nsel,
          "fit: --select-from cross-validates lr only (2 points of %zu features)", own.nsel);
    cv_result_free(&r);
    fitted_head_free(&own);
    fitted_head_free(&again);
}

static void test_train_fraction(const fixture *f)
{
    fit_config c = one_point();
    size_t rows[300], rows2[300], n, n2, per[4] = {0}, kept[4] = {0};
    for (int i = 0; i < 300; i++) per[f->y[i]]++;
    c.train_fraction = 0.3;
    int rc = fit_rows(&f->data, &c, rows, &n) || fit_rows(&f->data, &c, rows2, &n2);
    int ok = rc == 0 && n == n2 && memcmp(rows, rows2, n * sizeof *rows) == 0 && n == fit_examples(&f->data, 0.3);
    for (size_t i = 0; ok && i < n; i++) {
        ok = i == 0 || rows[i] > rows[i - 1];
        kept[f->y[rows[i]]]++;
    }
    for (int k = 0; k < 4; k++) ok &= kept[k] == (size_t)((double)per[k] * 0.3);
    check(ok, "fit: --train-fraction 0.3 keeps int(0.3 n_c) of each class (%zu %zu %zu %zu of %zu %zu %zu %zu), "
          "ascending, reproducibly", kept[0], kept[1], kept[2], kept[3], per[0], per[1], per[2], per[3]);
    c.seed = 2;
    rc = fit_rows(&f->data, &c, rows2, &n2);
    check(rc == 0 && n2 == n && memcmp(rows, rows2, n * sizeof *rows) != 0, "fit: another seed draws other examples");
    c.train_fraction = 0.001;
    check(fit_examples(&f->data, 0.001) == 4 && fit_examples(&f->data, 1.0) == 300 && fit_examples(&f->data, 0) == 300,
          "fit: at least one example per class; 1 and 0 mean all");
    c.train_fraction = 0.5;
    fitted_head h = {0};
    const grid_point p = point_of(&c);
    rc = fit_final(&f->data, &f->l, &c, &p, &h);
    check(rc == 0 && h.examples == fit_examples(&f->data, 0.5), "fit: the final head trains on the %zu examples",
          h.examples);
    fitted_head_free(&h);
}

static void test_refusals(const fixture *f)
{
    fit_config c = one_point();
    cv_result r = {0};
    c.score = SCORE_CHI2;
    int rc = cv_run(&f->data, &f->l, &c, &r);
    check(rc != 0 && strstr(last_error(), "non-negative"), "fit: chi2 of negative features refused: %s", last_error());
    c = one_point();
    c.method = METHOD_LINEAR;
    c.score = SCORE_VARIANCE;
    rc = cv_run(&f->data, &f->l, &c, &r);
    check(rc != 0 && strstr(last_error(), "head2toe only"), "fit: --score with --method linear refused: %s",
          last_error());
    c = one_point();
    c.interpolation = 1.5;
    rc = cv_run(&f->data, &f->l, &c, &r);
    check(rc != 0 && strstr(last_error(), "out of range"), "fit: --score-interpolation 1.5 refused: %s", last_error());
}

int main(void)
{
    test_head_scores();
    test_data_scores();
    test_offset();
    fixture f;
    if (fixture_read(&f)) {
        check(0, "scores: read the lasso fixture: %s", last_error());
        return check_done();
    }
    test_fit_options(&f);
    test_select_from(&f);
    test_train_fraction(&f);
    test_refusals(&f);
    npy_free(&f.X);
    free_array(f.y);
    return check_done();
}
