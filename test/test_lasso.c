/* test/test_lasso.c: the group-lasso head (lasso.c) against independent
 * references:
 *   - the loss and its gradient: a double-precision loss written here from
 *     docs/ALGORITHM.md §6 and central finite differences along random directions
 *     (group, l1 and l2 penalties, a batch of two runs, a zero row);
 *   - the first 10 steps of a small problem against values committed from
 *     test/lasso_ref.py (numpy, float64) with the same initial head;
 *   - 4 steps with several blocks of W rows against a double-precision loop;
 *   - selection (ties to the lower index, int(D*F)), fold boundaries,
 *     locating features in the layout, the per-location renormalization;
 *   - a planted problem whose informative features must be selected;
 *   - bitwise identical results for 1 and 2 threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"
#include "../cv.h"
#include "../headio.h"
#include "../npy.h"
#include "../util.h"

#define FIX "test/fixtures/lasso/"

/* ------------------------------------------------------------------------
 * A random problem: X [n, d] with unit-normalized locations of `loc` features,
 * labels uniform in [0, k); `inf` informative features (every d/inf-th,
 * offset 1) get +-strength depending on the class (classes 0 and 1 always
 * differ, so every informative feature carries information). */
typedef struct {
    size_t n, d;
    int k;
    float *x;
    int *y;
} problem;

static void make_problem(problem *p, size_t n, size_t d, int k, size_t loc, size_t inf, double strength,
                         uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    p->n = n;
    p->d = d;
    p->k = k;
    p->x = alloc_array(n * d, sizeof(float));
    p->y = alloc_array(n, sizeof(int));
    double *sign = alloc_array((size_t)k * (inf ? inf : 1), sizeof(double));
    for (size_t i = 0; i < (size_t)k * inf; i++) sign[i] = rng_uniform(&r) < 0.5 ? -1.0 : 1.0;
    for (size_t q = 0; q < inf && k > 1; q++) sign[inf + q] = -sign[q]; /* never the same for all classes */
    for (size_t i = 0; i < n; i++) {
        p->y[i] = (int)(rng_u64(&r) % (uint64_t)k);
        float *xi = p->x + i * d;
        for (size_t j = 0; j < d; j++) xi[j] = (float)rng_normal(&r);
        for (size_t q = 0; q < inf; q++) xi[1 + q * (d / inf)] += (float)(strength * sign[p->y[i] * inf + q]);
        for (size_t o = 0; o < d; o += loc) {
            size_t e = o + loc < d ? o + loc : d;
            double ss = 0;
            for (size_t j = o; j < e; j++) ss += (double)xi[j] * xi[j];
            for (size_t j = o; j < e; j++) xi[j] = (float)(xi[j] / sqrt(ss));
        }
    }
    free_array(sign);
}

static void free_problem(problem *p)
{
    free_array(p->x);
    free_array(p->y);
}

/* ------------------------------------------------------------------------
 * The loss of docs/ALGORITHM.md §6 in double, written independently of lasso.c. */
static double loss_double(const problem *p, const size_t *rows, size_t B, const double *W, const double *b,
                          int nominal, double coef, lasso_penalty pen)
{
    int k = p->k;
    double ce = 0;
    double z[64];
    for (size_t i = 0; i < B; i++) {
        const float *x = p->x + rows[i] * p->d;
        double mx = -INFINITY, s = 0;
        for (int c = 0; c < k; c++) {
            z[c] = b[c];
            for (size_t j = 0; j < p->d; j++) z[c] += (double)x[j] * W[j * k + c];
            if (z[c] > mx) mx = z[c];
        }
        for (int c = 0; c < k; c++) s += exp(z[c] - mx);
        ce += mx + log(s) - z[p->y[rows[i]]];
    }
    double P = 0;
    for (size_t j = 0; j < p->d; j++) {
        double g = 0;
        for (int c = 0; c < k; c++) {
            double w = W[j * k + c];
            if (pen == PENALTY_GROUP || pen == PENALTY_L2) g += w * w;
            else if (pen == PENALTY_L1) g += fabs(w);
        }
        P += pen == PENALTY_GROUP ? sqrt(g) : g;
    }
    return ce / nominal + (double)B / nominal * coef * P;
}

static void test_gradient(void)
{
    problem p;
    make_problem(&p, 60, 30, 5, 10, 3, 1.0, 11);
    /* a batch of 37 examples in two runs: 0..19 and 35..51 */
    size_t rows[37];
    for (size_t i = 0; i < 20; i++) rows[i] = i;
    for (size_t i = 20; i < 37; i++) rows[i] = 15 + i;
    lasso_data data = {p.x, p.n, p.d, p.d, p.y, p.k};
    lasso_head h;
    check(lasso_head_alloc(&h, p.d, p.k, 128) == 0, "grad: head alloc");
    size_t dk = p.d * (size_t)p.k;
    float *gw = alloc_array(dk, sizeof(float)), gb[5];
    double *W = alloc_array(dk, sizeof(double)), *dW = alloc_array(dk, sizeof(double));
    double *Wp = alloc_array(dk, sizeof(double)), b[5], db[5], bp[5];
    const char *names[] = {"none", "group", "l1", "l2"};
    rng_t r;
    rng_seed(&r, 5);
    for (int pen = PENALTY_NONE; pen <= PENALTY_L2; pen++) {
        lasso_head_init_glorot(&h, p.d, 100 + (uint64_t)pen);
        for (int c = 0; c < p.k; c++) h.b[c] = (float)(0.1 * rng_normal(&r));
        if (pen == PENALTY_GROUP)   /* a zero row: its penalty gradient is defined as 0 */
            for (int c = 0; c < p.k; c++) h.w[7 * p.k + c] = 0.0f;
        lasso_opts o = {0.01, 1, 0.05, (lasso_penalty)pen, 128};
        double L = lasso_loss_grad(&h, &data, rows, 37, &o);
        memcpy(gw, h.gw, dk * sizeof(float));
        memcpy(gb, h.gb, sizeof gb);
        for (size_t i = 0; i < dk; i++) W[i] = h.w[i];
        for (int c = 0; c < p.k; c++) b[c] = h.b[c];
        double Lref = loss_double(&p, rows, 37, W, b, 128, o.coef, (lasso_penalty)pen);
        check(fabs(L - Lref) <= 1e-6 * fabs(Lref), "grad: loss (%s penalty) %.9f vs double %.9f", names[pen],
              L, Lref);
        for (int trial = 0; trial < 3; trial++) {
            double an = 0;
            for (size_t i = 0; i < dk; i++) {
                /* the zero row is not differentiable: keep it out of the direction */
                dW[i] = (pen == PENALTY_GROUP && i / (size_t)p.k == 7) ? 0.0 : rng_normal(&r);
                an += dW[i] * gw[i];
            }
            for (int c = 0; c < p.k; c++) {
                db[c] = rng_normal(&r);
                an += db[c] * gb[c];
            }
            const double eps = 1e-5;
            for (size_t i = 0; i < dk; i++) Wp[i] = W[i] + eps * dW[i];
            for (int c = 0; c < p.k; c++) bp[c] = b[c] + eps * db[c];
            double Lp = loss_double(&p, rows, 37, Wp, bp, 128, o.coef, (lasso_penalty)pen);
            for (size_t i = 0; i < dk; i++) Wp[i] = W[i] - eps * dW[i];
            for (int c = 0; c < p.k; c++) bp[c] = b[c] - eps * db[c];
            double Lm = loss_double(&p, rows, 37, Wp, bp, 128, o.coef, (lasso_penalty)pen);
            double fd = (Lp - Lm) / (2 * eps), err = fabs(fd - an) / fmax(fabs(fd), 1e-3);
            check(err <= 1e-4,
                  "grad: directional derivative (%s penalty, direction %d) fd %.8f analytic %.8f "
                  "rel err %.2g tol 1e-4", names[pen], trial, fd, an, err);
        }
        if (pen == PENALTY_GROUP) {
            /* the zero row's gradient is the cross-entropy part alone */
            lasso_opts o0 = o;
            o0.coef = 0.0;
            float g0[5 * 30];
            lasso_loss_grad(&h, &data, rows, 37, &o0);
            memcpy(g0, h.gw, sizeof g0);
            int same = 1;
            for (int c = 0; c < p.k; c++) same &= g0[7 * p.k + c] == gw[7 * p.k + c];
            check(same, "grad: a zero row gets no penalty gradient");
        }
    }
    free_array(gw);
    free_array(W);
    free_array(dW);
    free_array(Wp);
    lasso_head_free(&h);
    free_problem(&p);
}

/* ------------------------------------------------------------------------
 * 10 steps against test/lasso_ref.py */
static void test_reference_steps(void)
{
    npy_array X, W0, rl, rW, rb;
    int *y = NULL, k = 0;
    if (npy_read(FIX "X.npy", NPY_F32, &X) || npy_read(FIX "W0.npy", NPY_F32, &W0) ||
        npy_read(FIX "ref_losses.npy", NPY_F64, &rl) || npy_read(FIX "ref_W10.npy", NPY_F32, &rW) ||
        npy_read(FIX "ref_b10.npy", NPY_F32, &rb) || labels_read(FIX "y.npy", 300, &y, &k)) {
        check(0, "ref: read fixtures: %s", last_error());
        return;
    }
    size_t n = X.shape[0], d = X.shape[1];
    lasso_data data = {X.data, n, d, d, y, k};
    lasso_head h;
    lasso_head_alloc(&h, d, k, 128);
    lasso_head_init_from(&h, d, W0.data);
    size_t *rows = alloc_array(n, sizeof(size_t));
    for (size_t i = 0; i < n; i++) rows[i] = i;
    lasso_opts o = {0.05, 10, 0.01, PENALTY_GROUP, 128};
    double losses[10];
    int rc = lasso_train(&h, &data, rows, n, &o, losses, NULL);
    const double *ref = rl.data;
    double worst = 0;
    for (int s = 0; s < 10; s++) worst = fmax(worst, fabs(losses[s] - ref[s]) / fabs(ref[s]));
    check(rc == 0 && worst <= 1e-5,
          "ref: first 10 losses vs numpy (batches 128,128,44 cycling) max rel err %.2g tol 1e-5 "
          "(loss[0] %.7f vs %.7f, loss[2] %.7f vs %.7f)", worst, losses[0], ref[0], losses[2], ref[2]);
    check_close("ref: W after 10 steps vs numpy", h.w, rW.data, d * (size_t)k, 1e-4);
    check_close("ref: b after 10 steps vs numpy", h.b, rb.data, (size_t)k, 1e-4);
    free_array(rows);
    free_array(y);
    lasso_head_free(&h);
    npy_free(&X);
    npy_free(&W0);
    npy_free(&rl);
    npy_free(&rW);
    npy_free(&rb);
}

/* ------------------------------------------------------------------------
 * G entries below 2^-100 are set to 0 (docs/ALGORITHM.md §6 step 3): one
 * example, x = (1, 0.5), two classes, logits 80 and 60 apart. exp(-80)/128
 * = 1.4e-37 is dropped, exp(-60)/128 = 6.9e-29 is kept (the gradient of
 * W[0, 1] is x_0 G_1 exactly: one product, no penalty). */
static void test_flush(void)
{
    const float x[2] = {1.0f, 0.5f};
    const int y[1] = {0};
    const size_t row = 0;
    lasso_data data = {x, 1, 2, 2, y, 2};
    lasso_head h;
    lasso_head_alloc(&h, 2, 2, 128);
    const lasso_opts o = {0.1, 1, 0.0, PENALTY_NONE, 128};
    const double gap[2] = {80.0, 60.0};
    for (int i = 0; i < 2; i++) {
        const float w0[4] = {(float)gap[i], 0.0f, 0.0f, 0.0f}; /* z = (gap, 0) */
        lasso_head_init_from(&h, 2, w0);
        lasso_loss_grad(&h, &data, &row, 1, &o);
        const double want = i == 0 ? 0.0 : (double)(float)(exp(-gap[i]) / (1.0 + exp(-gap[i])) / 128.0);
        check(h.gw[1] == (float)want, "flush: logits %g apart: dLoss/dW[0,1] = %g (want %g: G %s 2^-100)", gap[i],
              (double)h.gw[1], want, i == 0 ? "below" : "above");
    }
    lasso_head_free(&h);
}

/* ------------------------------------------------------------------------
 * selection, folds, layout, gather */
static void test_selection(void)
{
    double s[8] = {1, 3, 3, 2, 3, 0, NAN, 3};
    int64_t sel[8];
    lasso_select(s, 8, 2, sel);
    check(sel[0] == 1 && sel[1] == 2, "select: ties go to the lower index (keep 2 of 4 tied: %lld %lld)",
          (long long)sel[0], (long long)sel[1]);
    lasso_select(s, 8, 5, sel);
    check(sel[0] == 1 && sel[1] == 2 && sel[2] == 3 && sel[3] == 4 && sel[4] == 7,
          "select: keep 5 -> 1 2 3 4 7 ascending (got %lld %lld %lld %lld %lld)", (long long)sel[0],
          (long long)sel[1], (long long)sel[2], (long long)sel[3], (long long)sel[4]);
    lasso_select(s, 8, 8, sel);
    check(sel[7] == 7 && sel[6] == 6, "select: NaN ranks last but is kept when everything is");
    check(lasso_keep_count(3000, 0.02) == 60 && lasso_keep_count(30440, 0.001) == 30 &&
              lasso_keep_count(1000, 0.0005) == 1 && lasso_keep_count(10, 1.0) == 10 &&
              lasso_keep_count(2048, 0.1) == 204,
          "select: keep = int(D*F), at least 1");
}

static void test_folds(void)
{
    size_t a, b;
    int ok = 1;
    for (int f = 0; f < 5; f++) {
        fold_bounds(1000, 5, f, &a, &b);
        ok &= a == (size_t)200 * f && b == a + 200;
    }
    check(ok, "folds: n=1000 -> [200k, 200k+200)");
    size_t want[6] = {0, 200, 401, 601, 802, 1003};
    ok = 1;
    for (int f = 0; f < 5; f++) {
        fold_bounds(1003, 5, f, &a, &b);
        ok &= a == want[f] && b == want[f + 1];
    }
    check(ok, "folds: n=1003 -> 0 200 401 601 802 1003 (sizes differ by at most one, all covered)");
    fold_bounds(7, 5, 0, &a, &b);
    ok = a == 0 && b == 1;
    fold_bounds(7, 5, 4, &a, &b);
    ok &= a == 5 && b == 7;
    check(ok, "folds: n=7 -> first [0,1), last [5,7)");
}

static void test_layout_and_gather(void)
{
    static feat_layout l;
    int rc = layout_read(FIX "X.layout.tsv", &l);
    int loc_ok = layout_location_of(&l, 0) == 0 && layout_location_of(&l, 9) == 0 &&
                 layout_location_of(&l, 10) == 1 && layout_location_of(&l, 29) == 1 &&
                 layout_location_of(&l, 39) == 2 && layout_location_of(&l, 40) == -1;
    check(rc == 0 && l.n == 3 && l.d == 40 && l.e[2].offset == 30 && l.e[1].dim == 20 && loc_ok,
          "layout: the fixture's layout read, features located %s", rc ? last_error() : "");

    /* gather: 2 examples, locations [0,10) [10,30) [30,40); select 3, 12, 13, 35 */
    float x[80];
    for (int i = 0; i < 80; i++) x[i] = (float)(i % 7) - 2.5f;
    int64_t sel[4] = {3, 12, 13, 35};
    float out[8];
    lasso_gather(x, 2, 40, &l, sel, 4, out);
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        const float *xi = x + i * 40, *oi = out + i * 4;
        double n1 = fabs(xi[3]), n3 = fabs(xi[35]);
        double n2 = sqrt((double)xi[12] * xi[12] + (double)xi[13] * xi[13]);
        ok &= fabs(oi[0] - xi[3] / n1) < 1e-6 && fabs(oi[1] - xi[12] / n2) < 1e-6 &&
              fabs(oi[2] - xi[13] / n2) < 1e-6 && fabs(oi[3] - xi[35] / n3) < 1e-6;
    }
    check(ok, "gather: selected columns renormalized per location");
    float xz[40] = {0};
    xz[12] = 3.0f;
    lasso_gather(xz, 1, 40, &l, sel, 4, out);
    check(out[0] == 0.0f && out[1] == 1.0f && out[2] == 0.0f && out[3] == 0.0f,
          "gather: a zero group stays zero (no epsilon)");
}

/* ------------------------------------------------------------------------
 * planted features must be selected */
static void test_planted(void)
{
    problem p;
    make_problem(&p, 500, 400, 4, 100, 8, 1.0, 3);
    lasso_data data = {p.x, p.n, p.d, p.d, p.y, p.k};
    lasso_head h;
    lasso_head_alloc(&h, p.d, p.k, 128);
    lasso_head_init_glorot(&h, p.d, 1);
    size_t *rows = alloc_array(p.n, sizeof(size_t));
    for (size_t i = 0; i < p.n; i++) rows[i] = i;
    lasso_opts o = {0.01, 200, 1e-3, PENALTY_GROUP, 128};
    lasso_train(&h, &data, rows, p.n, &o, NULL, NULL);
    double s[400];
    int64_t sel[8];
    lasso_scores(h.w, p.d, p.k, s);
    lasso_select(s, p.d, 8, sel);
    int hit = 0;
    for (int q = 0; q < 8; q++) hit += sel[q] == (int64_t)(1 + q * 50);
    check(hit == 8, "planted: %d of 8 informative features selected as the top 8 of 400", hit);
    free_array(rows);
    lasso_head_free(&h);
    free_problem(&p);
}

/* ------------------------------------------------------------------------
 * cross-validated fit on the committed fixture */
/* cv_run + fit_final, as h2t fit does them */
static int fit(const lasso_data *X, const feat_layout *l, const fit_config *cfg, cv_result *cv, fitted_head *h)
{
    memset(h, 0, sizeof *h);
    if (cv_run(X, l, cfg, cv)) return -1;
    return fit_final(X, l, cfg, &cv->points[cv->best], h);
}

static void test_fit(void)
{
    npy_array X;
    int *y = NULL, k = 0;
    static feat_layout l;
    if (npy_read(FIX "X.npy", NPY_F32, &X) || labels_read(FIX "y.npy", 300, &y, &k) ||
        layout_read(FIX "X.layout.tsv", &l)) {
        check(0, "fit: read fixtures: %s", last_error());
        return;
    }
    lasso_data data = {X.data, 300, 40, 40, y, k};
    fit_config cfg = {0};
    cfg.method = METHOD_HEAD2TOE;
    cfg.nlr = 1, cfg.lr[0] = 0.05;
    cfg.nsteps = 1, cfg.steps[0] = 60;
    cfg.ncoef = 2, cfg.coef[0] = 1e-2, cfg.coef[1] = 1e-4;
    cfg.nfrac = 2, cfg.frac[0] = 0.1, cfg.frac[1] = 0.5;
    cfg.batch = 128;
    cfg.quiet = 1;
    cv_result r;
    fitted_head hd;
    int rc = fit(&data, &l, &cfg, &r, &hd);
    check(rc == 0 && r.did_cv && r.npoints == 4, "fit: 4-point grid cross-validated %s",
          rc ? last_error() : "");
    if (rc) return;
    int ok = 1;
    for (int p = 0; p < 4; p++) {
        double m = 0;
        for (int f = 0; f < 5; f++) m += r.points[p].fold_acc[f];
        ok &= fabs(m / 5 - r.points[p].mean) < 1e-12 && r.points[p].mean > 0.5;
        ok &= r.points[p].mean <= r.points[r.best].mean;
    }
    check(ok, "fit: mean over folds, best point has the highest mean (best %d: %.3f)", r.best,
          r.points[r.best].mean);
    int hit = 0;
    for (size_t j = 0; j < hd.nsel; j++) {
        int64_t q = hd.selected[j];
        hit += q == 3 || q == 17 || q == 25 || q == 38;
    }
    check(hit == 4 && hd.train_acc > 0.8, "fit: final head keeps the 4 informative features (%d of %zu kept), "
          "train acc %.3f", hit, hd.nsel, hd.train_acc);

    /* the head directory round trip, and eval on all-D and on already-selected features */
    make_dir("test/out");
    const char *dir = "test/out/lasso_head", *selpath = "test/out/lasso_selected.npy";
    size_t correct[4], count[4], correct2[4], count2[4], tc = 0, tc2 = 0, m = 0;
    fitted_head sh = {0};
    float *xs = alloc_array(300 * hd.nsel, sizeof(float));
    size_t shape[2] = {300, hd.nsel};
    lasso_gather(X.data, 300, 40, &l, hd.selected, hd.nsel, xs);
    rc = fit_write(dir, &r, &hd, &cfg, &l, 300, 1.0) || head_read(dir, &sh) ||
         npy_write(selpath, NPY_F32, 2, shape, xs) ||
         eval_file(FIX "X.npy", y, 300, &sh, &l, correct, count) ||
         eval_file(selpath, y, 300, &sh, NULL, correct2, count2);
    for (int c = 0; c < 4 && !rc; c++) tc += correct[c], tc2 += correct2[c], m += count[c];
    check(rc == 0 && sh.nsel == hd.nsel && sh.k == 4 && memcmp(sh.w, hd.w, hd.nsel * 4 * sizeof(float)) == 0 &&
              tc == tc2 && m == 300 && fabs((double)tc / 300 - hd.train_acc) < 1e-12,
          "eval: head read back; all-D features (gathered) and selected features give %zu = %zu correct, "
          "= train acc %.4f %s", tc, tc2, hd.train_acc, rc ? last_error() : "");
    rc = eval_file(FIX "X.npy", y, 300, &sh, NULL, correct, count);
    check(rc != 0 && strstr(last_error(), "layout"), "eval: all-D features without a layout are refused");
    remove(selpath);
    free_array(xs);
    fitted_head_free(&sh);
    fitted_head_free(&hd);
    cv_result_free(&r);

    cfg.method = METHOD_LINEAR;
    rc = fit(&data, &l, &cfg, &r, &hd);
    check(rc == 0 && r.npoints == 1 && !r.did_cv && hd.nsel == 10 && hd.selected[0] == 30 &&
              hd.selected[9] == 39,
          "fit: linear uses exactly the pre_logits columns 30..39");
    fitted_head_free(&hd);
    cv_result_free(&r);
    cfg.method = METHOD_ALL_L1;
    cfg.force_cv = 1;
    cfg.ncoef = 1;
    rc = fit(&data, &l, &cfg, &r, &hd);
    check(rc == 0 && r.npoints == 1 && r.did_cv && hd.nsel == 40 && r.points[0].mean > 0.5,
          "fit: all-l1 on all 40 features, forced CV mean acc %.3f", rc ? 0 : r.points[0].mean);
    fitted_head_free(&hd);
    cv_result_free(&r);
    free_array(y);
    npy_free(&X);
}

/* ------------------------------------------------------------------------
 * several blocks of W rows (the fused gradient + update + next logits pass,
 * logits summed over groups of blocks) against docs/ALGORITHM.md §6 as a plain
 * double-precision loop written here: a fold's rows (two runs), batches
 * 128, 12 cycling, group penalty */
static void test_blocks(void)
{
    problem p;
    make_problem(&p, 150, 4000, 40, 500, 8, 1.0, 6); /* k 40: blocks of 1638 rows, so 3 */
    size_t rows[140], nr = 0, d = p.d, k = (size_t)p.k, dk = d * k;
    for (size_t i = 0; i < p.n; i++)
        if (i < 30 || i >= 40) rows[nr++] = i;
    lasso_data data = {p.x, p.n, d, d, p.y, p.k};
    lasso_head h;
    lasso_head_alloc(&h, d, p.k, 128);
    lasso_head_init_glorot(&h, d, 5);
    double *W = alloc_array(dk, sizeof(double)), *m = alloc_zeros(dk, sizeof(double));
    double *v = alloc_zeros(dk, sizeof(double)), *g = alloc_array(dk, sizeof(double));
    double b[40] = {0}, mb[40] = {0}, vb[40] = {0}, gb[40], z[40];
    for (size_t i = 0; i < dk; i++) W[i] = h.w[i];
    const long steps = 4;
    const double lr = 0.01, coef = 1e-3;
    lasso_opts o = {lr, steps, coef, PENALTY_GROUP, 128};
    double losses[4], losses_ref[4], worst = 0, worst_ref = 0;
    lasso_head hp; /* the same run with the plain step (lasso_step_ref) */
    lasso_head_alloc(&hp, d, p.k, 128);
    lasso_head_init_glorot(&hp, d, 5);
    int rc = lasso_train(&h, &data, rows, nr, &o, losses, NULL);
    int rc_ref = lasso_train_ref(&hp, &data, rows, nr, &o, losses_ref);
    for (long s = 0, pos = 0; s < steps; s++) {
        size_t B = nr - (size_t)pos < 128 ? nr - (size_t)pos : 128;
        const size_t *br = rows + pos;
        double L = loss_double(&p, br, B, W, b, 128, coef, PENALTY_GROUP);
        worst = fmax(worst, fabs(losses[s] - L) / fabs(L));
        worst_ref = fmax(worst_ref, fabs(losses_ref[s] - L) / fabs(L));
        memset(g, 0, dk * sizeof(double));
        memset(gb, 0, sizeof gb);
        for (size_t i = 0; i < B; i++) { /* cross-entropy gradient */
            const float *x = p.x + br[i] * d;
            double mx = -INFINITY, sum = 0;
            for (size_t c = 0; c < k; c++) {
                z[c] = b[c];
                for (size_t j = 0; j < d; j++) z[c] += (double)x[j] * W[j * k + c];
                mx = fmax(mx, z[c]);
            }
            for (size_t c = 0; c < k; c++) sum += exp(z[c] - mx);
            for (size_t c = 0; c < k; c++) {
                double dz = (exp(z[c] - mx) / sum - (c == (size_t)p.y[br[i]])) / 128;
                gb[c] += dz;
                for (size_t j = 0; j < d; j++) g[j * k + c] += (double)x[j] * dz;
            }
        }
        for (size_t j = 0; j < d; j++) { /* group penalty */
            double nrm = 0;
            for (size_t c = 0; c < k; c++) nrm += W[j * k + c] * W[j * k + c];
            nrm = sqrt(nrm);
            for (size_t c = 0; c < k && nrm > 0; c++) g[j * k + c] += (double)B / 128 * coef * W[j * k + c] / nrm;
        }
        double t = (double)(s + 1), lr_s = lr * 0.5 * (1 + cos(3.14159265358979323846 * (double)s / steps));
        double lr_t = lr_s * sqrt(1 - pow(0.999, t)) / (1 - pow(0.9, t));
        for (size_t i = 0; i < dk + k; i++) { /* Adam on W, then b */
            double *pw = i < dk ? W + i : b + (i - dk), *pm = i < dk ? m + i : mb + (i - dk);
            double *pv = i < dk ? v + i : vb + (i - dk), gi = i < dk ? g[i] : gb[i - dk];
            *pm = 0.9 * *pm + 0.1 * gi;
            *pv = 0.999 * *pv + 0.001 * gi * gi;
            *pw -= lr_t * *pm / (sqrt(*pv) + 1e-7);
        }
        pos = pos + (long)B == (long)nr ? 0 : pos + (long)B;
    }
    float *Wf = alloc_array(dk, sizeof(float)), bf[40];
    for (size_t i = 0; i < dk; i++) Wf[i] = (float)W[i];
    for (size_t c = 0; c < k; c++) bf[c] = (float)b[c];
    check(rc == 0 && worst <= 1e-5, "blocks: 4 losses (3 blocks of W rows, batches 128, 12) vs double max rel err %.2g "
          "tol 1e-5", worst);
    check_close("blocks: W after 4 steps vs double", h.w, Wf, dk, 1e-4);
    check_close("blocks: b after 4 steps vs double", h.b, bf, k, 1e-4);
    check(rc_ref == 0 && worst_ref <= 1e-5, "blocks: the plain step's 4 losses vs double max rel err %.2g tol 1e-5",
          worst_ref);
    check_close("blocks: plain step's W after 4 steps vs double", hp.w, Wf, dk, 1e-4);
    check_close("blocks: plain step's b after 4 steps vs double", hp.b, bf, k, 1e-4);
    /* fused vs plain: the same arithmetic but for the order of the sums in
     * the logits and X^T G (float rounding only) */
    check_close("blocks: fused W vs plain-step W after 4 steps (measured 7.3e-6 of max|W|)", h.w, hp.w, dk, 2e-5);
    lasso_head_free(&hp);
    free_array(W);
    free_array(m);
    free_array(v);
    free_array(g);
    free_array(Wf);
    lasso_head_free(&h);
    free_problem(&p);
}

/* ------------------------------------------------------------------------
 * several heads over the same batches (lasso_train_many): each bitwise the
 * head lasso_train gives alone (fast build) or lasso_train_ref (the
 * reference build trains them one by one with the plain step). Sizes where
 * the fused step runs its groups in parallel (3 blocks) and where it runs
 * on one thread; different lr, coef and penalty per head. */
static void test_many(void)
{
    /* d, k: 3 heads side by side are 15, 30, 42 and 60 columns (one, two or
     * three vectors in gemm's few-columns path; the blocked path) */
    static const size_t sizes[][2] = {{30000, 5}, {700, 10}, {1500, 14}, {2000, 20}};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        problem p;
        make_problem(&p, 300, sizes[z][0], (int)sizes[z][1], sizes[z][0] / 30, 10, 1.0, 4);
        size_t rows[240], nr = 0, dk = p.d * (size_t)p.k;
        for (size_t i = 0; i < 300; i++)
            if (i < 60 || i >= 120) rows[nr++] = i; /* a fold: two runs */
        lasso_data data = {p.x, p.n, p.d, p.d, p.y, p.k};
        const lasso_opts o[3] = {{0.1, 7, 1e-3, PENALTY_GROUP, 128},
                                 {0.01, 7, 1e-5, PENALTY_GROUP, 128},
                                 {0.05, 7, 1e-4, PENALTY_L1, 128}};
        lasso_head h[3], alone;
        lasso_head *hp[3] = {&h[0], &h[1], &h[2]};
        for (int i = 0; i < 3; i++) {
            lasso_head_alloc(&h[i], p.d, p.k, 128);
            lasso_head_init_glorot(&h[i], p.d, 11);
        }
        const int rc = lasso_train_many(hp, o, 3, &data, rows, nr, NULL);
        lasso_head_alloc(&alone, p.d, p.k, 128);
        for (int i = 0; i < 3; i++) {
            lasso_head_init_glorot(&alone, p.d, 11);
            const int rc1 = REFERENCE_BUILD ? lasso_train_ref(&alone, &data, rows, nr, &o[i], NULL)
                                            : lasso_train(&alone, &data, rows, nr, &o[i], NULL, NULL);
            char name[128];
            snprintf(name, sizeof name, "many: head %d of 3 (lr %g, coef %g, d %zu, k %d) = trained alone, bitwise", i,
                     o[i].lr, o[i].coef, p.d, p.k);
            check(rc == 0 && rc1 == 0 && memcmp(h[i].w, alone.w, dk * sizeof(float)) == 0 &&
                      memcmp(h[i].b, alone.b, (size_t)p.k * sizeof(float)) == 0,
                  "%s", name);
        }
        lasso_head_free(&alone);
        for (int i = 0; i < 3; i++) lasso_head_free(&h[i]);
        free_problem(&p);
    }
}

/* ------------------------------------------------------------------------
 * thread invariance */
#ifdef _OPENMP
static void train_once(const problem *p, const size_t *rows, size_t nrows, float *w_out)
{
    lasso_data data = {p->x, p->n, p->d, p->d, p->y, p->k};
    lasso_head h;
    lasso_head_alloc(&h, p->d, p->k, 128);
    lasso_head_init_glorot(&h, p->d, 9);
    lasso_opts o = {0.01, 6, 1e-3, PENALTY_GROUP, 128};
    lasso_train(&h, &data, rows, nrows, &o, NULL, NULL);
    memcpy(w_out, h.w, p->d * (size_t)p->k * sizeof(float));
    lasso_head_free(&h);
}
#endif

static void test_threads(void)
{
#ifdef _OPENMP
    problem p;
    make_problem(&p, 300, 30000, 5, 1000, 10, 1.0, 4); /* 3 blocks of W rows, big enough to run parallel */
    size_t rows[240], nr = 0;                           /* a fold: two runs */
    for (size_t i = 0; i < 300; i++)
        if (i < 60 || i >= 120) rows[nr++] = i;
    size_t dk = p.d * (size_t)p.k;
    float *w1 = alloc_array(dk, sizeof(float)), *w2 = alloc_array(dk, sizeof(float));
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    train_once(&p, rows, nr, w1);
    omp_set_num_threads(2);
    train_once(&p, rows, nr, w2);
    omp_set_num_threads(saved);
    check_same("threads: W after 6 steps, 1 vs 2 threads", w1, w2, dk);
    free_array(w1);
    free_array(w2);
    free_problem(&p);
#else
    printf("SKIP threads: built without OpenMP\n");
#endif
}

int main(void)
{
    double t0 = now_seconds();
    test_gradient();
    test_reference_steps();
    test_blocks();
    test_many();
    test_flush();
    test_selection();
    test_folds();
    test_layout_and_gather();
    test_planted();
    test_fit();
    test_threads();
    printf("test_lasso: %.1f s\n", now_seconds() - t0);
    return check_done();
}
