/* test/test_winograd.c: winograd.c, Winograd's 3x3 convolution (the model
 * option winograd), against tensor.c's plain convolution conv2d_ep_ref
 * (each output summed in double, then the epilogue).
 *
 * Winograd's transforms round differently from the convolution's sum, so
 * the check is a bound, not bits: for each output,
 *     |y - ref| <= tol * S * max(1, |scale|) + 1e-6 * |ref|,
 * S = sum over the window of |x| |w| (the sum of the magnitudes that are
 * added: an error bound for any summation order grows with it), scale the
 * output's BatchNorm factor. tol is 5e-7 for F(2x2, 3x3) and 1e-5 for
 * F(4x4, 3x3), about 4 times the largest ratio seen here (1.2e-7 and
 * 2.2e-6 with gcc -O3 -march=native; F(4x4)'s points +-2 and its larger
 * coefficients make the transforms round more); a wrong entry in a
 * transform matrix or a misplaced tile is off by O(S). Shapes: channels
 * not a multiple of 16, tiles that reach past the output, asymmetric
 * padding, no padding, a 1x1 output, and several chunks of tiles.
 * Also: the same bits with 1 and 2 threads and for an image alone or in a
 * batch, and the refusals (m = 3; an epilogue that adds in place or has an
 * activation, which the caller runs by conv2d_ep). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "../tensor.h"
#include "../util.h"
#include "../winograd.h"

typedef struct {
    int N, H, W, cin, cout;
    int pad_t, pad_l, pad_b, pad_r;
} shape;

static float *random_array(size_t n, rng_t *r, double lo, double hi)
{
    float *a = alloc_array(n, sizeof(float));
    for (size_t i = 0; a && i < n; i++) a[i] = (float)(lo + (hi - lo) * rng_uniform(r));
    return a;
}

/* One shape, one m, one epilogue form (0: none, 1: BN + ReLU, 2: bias + residual). */
static void test_shape(const shape *sh, int m, int form, double tol)
{
    rng_t r;
    rng_seed(&r, (uint64_t)(sh->H * 131 + sh->cin * 7 + m + form));
    const conv_spec s = {3, 3, 1, sh->pad_t, sh->pad_l, sh->pad_b, sh->pad_r};
    const int OH = conv_out_h(&s, sh->H), OW = conv_out_w(&s, sh->W);
    const size_t nx = (size_t)sh->N * sh->H * sh->W * sh->cin, nw = (size_t)9 * sh->cin * sh->cout;
    const size_t ny = (size_t)sh->N * OH * OW * sh->cout, per_image = ny / sh->N;
    float *x = random_array(nx, &r, -1, 1), *w = random_array(nw, &r, -0.5, 0.5);
    float *scale = random_array((size_t)sh->cout, &r, -2, 2), *shift = random_array((size_t)sh->cout, &r, -1, 1);
    float *res = random_array(ny, &r, -1, 1);
    float *ax = alloc_array(nx, sizeof(float)), *aw = alloc_array(nw, sizeof(float));
    float *ref = alloc_array(ny, sizeof(float)), *mag = alloc_array(ny, sizeof(float));
    float *y1 = alloc_array(ny, sizeof(float)), *y2 = alloc_array(ny, sizeof(float)), *y3 = alloc_array(ny, sizeof(float));
    winograd_weights ww;
    char name[160];
    snprintf(name, sizeof name, "winograd F(%dx%d,3x3) N%d %dx%d %d->%d pad %d,%d,%d,%d epilogue %d", m, m, sh->N,
             sh->H, sh->W, sh->cin, sh->cout, sh->pad_t, sh->pad_l, sh->pad_b, sh->pad_r, form);
    if (!x || !w || !scale || !shift || !res || !ax || !aw || !ref || !mag || !y1 || !y2 || !y3 ||
        winograd_prepare(w, sh->cin, sh->cout, m, &ww)) {
        check(0, "%s: setup: %s", name, last_error());
        return;
    }
    const size_t nwork = winograd_work_size(&ww, sh->N, sh->H, sh->W, &s);
    float *work = alloc_array(nwork, sizeof(float)), *work1 = alloc_array(nwork, sizeof(float));
    conv_epilogue ep = {NULL, NULL, NULL, 0, NULL};
    if (form == 1) ep.scale = scale, ep.shift = shift, ep.relu = 1;
    if (form == 2) ep.shift = shift, ep.res = res;

    for (size_t i = 0; i < nx; i++) ax[i] = fabsf(x[i]);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
    conv2d_ep_ref(ax, sh->N, sh->H, sh->W, sh->cin, aw, sh->cout, &s, mag, NULL);
    conv2d_ep_ref(x, sh->N, sh->H, sh->W, sh->cin, w, sh->cout, &s, ref, form ? &ep : NULL);

    set_threads(2);
    int rc = winograd_conv(x, sh->N, sh->H, sh->W, &ww, &s, y1, work, form ? &ep : NULL);
    double worst = 0;
    size_t bad = ny;
    for (size_t i = 0; rc == 0 && i < ny; i++) {
        const double sc = form == 1 ? fabs(scale[i % sh->cout]) : 1.0;
        const double bound = tol * mag[i] * (sc > 1 ? sc : 1) + 1e-6 * fabs(ref[i]);
        const double d = fabs((double)y1[i] - ref[i]);
        if (!(d <= bound) && bad == ny) bad = i;
        if (mag[i] > 0 && d / (mag[i] * (sc > 1 ? sc : 1)) > worst) worst = d / (mag[i] * (sc > 1 ? sc : 1));
    }
    check(rc == 0 && bad == ny, "%s: |y - ref| <= %.0e * S (largest |y - ref| / S %.2e)%s", name, tol, worst,
          rc ? ": failed" : bad < ny ? ": out of bounds" : "");

    /* the same bits with one thread, and for each image alone */
    set_threads(1);
    rc = winograd_conv(x, sh->N, sh->H, sh->W, &ww, &s, y2, work, form ? &ep : NULL);
    set_threads(2);
    check_same(name, y1, y2, rc == 0 ? ny : 0);
    int same = 1;
    for (int n = 0; n < sh->N; n++) {
        conv_epilogue e1 = ep;
        if (ep.res) e1.res = res + n * per_image;
        if (winograd_conv(x + n * (nx / sh->N), 1, sh->H, sh->W, &ww, &s, y3 + n * per_image, work1,
                          form ? &e1 : NULL))
            same = 0;
    }
    same = same && memcmp(y1, y3, ny * sizeof(float)) == 0;
    check(same, "%s: each image alone gives the same bits as in the batch", name);

    winograd_free(&ww);
    free_array(work), free_array(work1);
    free_array(x), free_array(w), free_array(scale), free_array(shift), free_array(res), free_array(ax);
    free_array(aw), free_array(ref), free_array(mag), free_array(y1), free_array(y2), free_array(y3);
}

static void test_refusals(void)
{
    float w[9 * 2 * 3] = {0}, x[4 * 4 * 2] = {0}, y[2 * 2 * 3];
    winograd_weights ww;
    const int rc = winograd_prepare(w, 2, 3, 3, &ww);
    check(rc == -1 && ww.u == NULL && strstr(last_error(), "m = 2 or 4"), "winograd_prepare refuses m = 3: %s",
          last_error());
    check(!winograd_supported(0) && winograd_supported(2) && winograd_supported(4) && !winograd_supported(6),
          "winograd_supported: 2 and 4 only");
    if (winograd_prepare(w, 2, 3, 2, &ww)) {
        check(0, "winograd_prepare: %s", last_error());
        return;
    }
    const conv_spec s = {3, 3, 1, 0, 0, 0, 0};
    float *work = alloc_array(winograd_work_size(&ww, 1, 4, 4, &s), sizeof(float));
    conv_epilogue in_place = {NULL, NULL, y, 0, NULL}, act = {NULL, NULL, NULL, 0, relu};
    check(winograd_conv(x, 1, 4, 4, &ww, &s, y, work, &in_place) == -1, "winograd_conv refuses res == y");
    check(winograd_conv(x, 1, 4, 4, &ww, &s, y, work, &act) == -1, "winograd_conv refuses an activation");
    free_array(work);
    winograd_free(&ww);
}

int main(void)
{
    static const shape shapes[] = {
        {2, 7, 9, 5, 7, 1, 1, 1, 1},      /* channels past 16-blocks, tiles past the edge */
        {1, 8, 8, 16, 32, 1, 1, 1, 1},    /* whole tiles */
        {3, 13, 6, 33, 20, 0, 1, 2, 0},   /* asymmetric padding */
        {2, 3, 3, 4, 4, 0, 0, 0, 0},      /* a 1x1 output, no padding */
        {3, 30, 30, 64, 64, 1, 1, 1, 1},  /* several chunks of tiles */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int form = 0; form < 3; form++) {
            test_shape(&shapes[i], 2, form, 5e-7);
            test_shape(&shapes[i], 4, form, 1e-5);
        }
    test_refusals();
    return check_done();
}
