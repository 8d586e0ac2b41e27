/* tensor.c: the numerical kernels of tensor.h -- the per-channel and
 * elementwise ops, convolution, pooling, the transformer pieces and the TF1
 * bilinear resize. Not here: the matrix product and the blocked machinery
 * that also runs the convolutions (gemm.c), anything of a model.
 *
 * Every fast kernel has its plain twin right before it, named *_ref: the
 * definition written out, summed in order in double, with libm's exp, erf
 * and tanh. test_tensor.c holds each pair together. In the reference build
 * (make REFERENCE=1, REFERENCE_BUILD in util.h) the fast kernels hand over
 * to their twins at their first line, so that build runs the plain code
 * only; both are compiled in every build.
 *
 * Plain C11; OpenMP (when compiled with -fopenmp) only splits independent
 * outputs, so every result is bitwise identical for any thread count. No
 * allocation of activations here: every caller passes its buffers (scratch
 * sizes come from *_work_size()).
 *
 * Dimension legend (as in tensor.h):
 *   N  images in a batch          H, W  spatial height, width
 *   C  channels (Cin, Cout)       T     tokens
 *   M, N, K in a GEMM: C[M,N] = A[M,K] B[K,N]
 *   OH, OW  output height, width  KH, KW  kernel height, width
 * Activations are NHWC, conv weights HWIO ([KH,KW,Cin,Cout]). */
#include "tensor.h"

#include <math.h>
#include <string.h>

#include "util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* ==========================================================================
 * Elementwise and per-channel ops. Each output element depends on its own
 * input only, so the loops split over threads freely. */

#define PAR_MIN 65536 /* elements below which threads cost more than they save */

void bn_fold(const float *gamma, const float *beta, const float *mean, const float *var,
             float eps, int C, float *scale, float *shift)
{
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] / sqrtf(var[c] + eps);
        shift[c] = beta[c] - mean[c] * scale[c];
    }
}

void scale_shift(float *x, size_t rows, int C, const float *scale, const float *shift, int relu_after)
{
    const long rl = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)C >= PAR_MIN)
    for (long r = 0; r < rl; r++) {
        float *xr = x + (size_t)r * C;
        if (relu_after)
            for (int c = 0; c < C; c++) {
                float v = xr[c] * scale[c] + shift[c];
                xr[c] = v > 0.0f ? v : 0.0f;
            }
        else
            for (int c = 0; c < C; c++) xr[c] = xr[c] * scale[c] + shift[c];
    }
}

void relu(float *x, size_t n)
{
    const long nl = (long)n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < nl; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void add_inplace(float *y, const float *x, size_t n)
{
    const long nl = (long)n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < nl; i++) y[i] += x[i];
}

void add_bias(float *y, size_t rows, int C, const float *b)
{
    const long rl = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)C >= PAR_MIN)
    for (long r = 0; r < rl; r++) {
        float *yr = y + (size_t)r * C;
        for (int c = 0; c < C; c++) yr[c] += b[c];
    }
}

/* ==========================================================================
 * Convolution. y[N,OH,OW,Cout] = x[N,H,W,Cin] (*) w[KH,KW,Cin,Cout], zero
 * padding pad_t/pad_b rows above/below and pad_l/pad_r columns left/right:
 *   y[n,oy,ox,co] = sum_{ky,kx,ci} x[n, oy*s - pad_t + ky, ox*s - pad_l + kx, ci]
 *                                  * w[ky,kx,ci,co]
 * conv2d_ref is this definition, literally. conv2d computes it as the GEMM
 *   X[N*OH*OW, KH*KW*Cin] w[KH*KW*Cin, Cout]  with X the im2col matrix,
 *   X[(n*OH + oy)*OW + ox, (ky*KW + kx)*Cin + ci]
 * which is never built: gemm_conv (gemm.c) reads its rows straight from the
 * input. Padded convs first copy x into `work` with its zero border,
 * [N, H + pad_t + pad_b, W + pad_l + pad_r, Cin]. */

int conv_out_h(const conv_spec *s, int H) { return (H + s->pad_t + s->pad_b - s->kh) / s->stride + 1; }
int conv_out_w(const conv_spec *s, int W) { return (W + s->pad_l + s->pad_r - s->kw) / s->stride + 1; }

static int conv_is_padded(const conv_spec *s) { return s->pad_t || s->pad_l || s->pad_b || s->pad_r; }

/* a * b * c * d, or SIZE_MAX when that does not fit in size_t (the caller's
 * allocation of SIZE_MAX floats then refuses). */
static size_t product4(size_t a, size_t b, size_t c, size_t d)
{
    size_t p;
    return size_mul(a, b, &p) || size_mul(p, c, &p) || size_mul(p, d, &p) ? SIZE_MAX : p;
}

size_t conv2d_work_size(const conv_spec *s, int N, int H, int W, int Cin)
{
    if (!conv_is_padded(s)) return 0;
    return product4((size_t)N, (size_t)H + (size_t)s->pad_t + (size_t)s->pad_b,
                    (size_t)W + (size_t)s->pad_l + (size_t)s->pad_r, (size_t)Cin);
}

/* Reference: the definition above, literally, accumulated in double;
 * then, one output after another, the epilogue's steps (conv2d_ep_ref):
 * the same float operations as scale_shift, add_inplace and relu passes,
 * and each output's residual read just before the output is written (so
 * res may be y itself). */
void conv2d_ep_ref(const float *x, int N, int H, int W, int Cin, const float *w, int Cout, const conv_spec *s,
                   float *y, const conv_epilogue *ep)
{
    const int OH = conv_out_h(s, H), OW = conv_out_w(s, W);
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int co = 0; co < Cout; co++) {
                    double acc = 0.0;
                    for (int ky = 0; ky < s->kh; ky++) {
                        int iy = oy * s->stride - s->pad_t + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < s->kw; kx++) {
                            int ix = ox * s->stride - s->pad_l + kx;
                            if (ix < 0 || ix >= W) continue;
                            const float *xp = x + (((size_t)n * H + iy) * W + ix) * Cin;
                            const float *wp = w + ((size_t)ky * s->kw + kx) * Cin * Cout + co;
                            for (int ci = 0; ci < Cin; ci++) acc += (double)xp[ci] * wp[(size_t)ci * Cout];
                        }
                    }
                    const size_t i = (((size_t)n * OH + oy) * OW + ox) * Cout + co;
                    float v = (float)acc;
                    if (ep && ep->scale) v = v * ep->scale[co] + ep->shift[co];
                    else if (ep && ep->shift) v += ep->shift[co];
                    if (ep && ep->res) v += ep->res[i];
                    if (ep && ep->relu) v = v > 0.0f ? v : 0.0f;
                    y[i] = v;
                }
}

void conv2d_ref(const float *x, int N, int H, int W, int Cin,
                const float *w, int Cout, const conv_spec *s, float *y)
{
    conv2d_ep_ref(x, N, H, W, Cin, w, Cout, s, y, NULL);
}

/* xp[N, Hp, Wp, C] = x with pad_t/pad_b zero rows and pad_l/pad_r zero columns */
static void pad_input(const float *x, int N, int H, int W, int C, const conv_spec *s, float *xp)
{
    const int Hp = H + s->pad_t + s->pad_b, Wp = W + s->pad_l + s->pad_r;
    const size_t row = (size_t)Wp * C;
    const long rows = (long)N * Hp;
#pragma omp parallel for schedule(static) if ((size_t)rows * row >= 65536)
    for (long r = 0; r < rows; r++) {
        const int n = (int)(r / Hp), py = (int)(r % Hp), iy = py - s->pad_t;
        float *d = xp + (size_t)r * row;
        if (iy < 0 || iy >= H) {
            memset(d, 0, row * sizeof(float));
            continue;
        }
        memset(d, 0, (size_t)s->pad_l * C * sizeof(float));
        memcpy(d + (size_t)s->pad_l * C, x + ((size_t)n * H + iy) * W * C, (size_t)W * C * sizeof(float));
        memset(d + (size_t)(s->pad_l + W) * C, 0, (size_t)s->pad_r * C * sizeof(float));
    }
}

void conv2d(const float *x, int N, int H, int W, int Cin,
            const float *w, int Cout, const conv_spec *s, float *y, float *work)
{
    conv2d_ep(x, N, H, W, Cin, w, NULL, Cout, s, y, work, NULL);
}

void conv2d_ep(const float *x, int N, int H, int W, int Cin, const float *w, const float *wpk, int Cout,
               const conv_spec *s, float *y, float *work, const conv_epilogue *ep)
{
    if (REFERENCE_BUILD) {
        conv2d_ep_ref(x, N, H, W, Cin, w, Cout, s, y, ep);
        return;
    }
    const int OH = conv_out_h(s, H), OW = conv_out_w(s, W);
    const size_t M = (size_t)N * OH * OW, K = (size_t)s->kh * s->kw * Cin;
    if (M == 0 || Cout == 0) return;
    /* an empty sum: y = 0, then the epilogue; or y in place of the
     * residual with a sum of several depth blocks (gemm.h) */
    if (K == 0 || (ep && ep->res == y && K > GEMM_KC)) {
        conv2d_ep_ref(x, N, H, W, Cin, w, Cout, s, y, ep);
        return;
    }
    const float *xp = x;
    if (conv_is_padded(s)) {
        pad_input(x, N, H, W, Cin, s, work);
        xp = work;
    }
    const conv_geom cv = {xp, N, H + s->pad_t + s->pad_b, W + s->pad_l + s->pad_r, Cin, s->kh, s->kw, s->stride,
                          OH, OW};
    if (gemm_conv(&cv, w, wpk, Cout, y, ep) != 0) /* no packing buffer: slow, never wrong */
        conv2d_ep_ref(x, N, H, W, Cin, w, Cout, s, y, ep);
}

/* ==========================================================================
 * Pooling */

/* PyTorch MaxPool2d (ceil_mode = false): window of output (oy, ox) covers
 * input rows oy*stride - pad .. + k - 1 (same for columns); cells outside
 * the image are skipped, never counted as zeros. */
void maxpool2d(const float *x, int N, int H, int W, int C, int k, int stride, int pad, float *y)
{
    const int OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    const long rows = (long)N * OH;
#pragma omp parallel for schedule(static) if ((size_t)rows * OW * C >= PAR_MIN / 4)
    for (long r = 0; r < rows; r++) {
        const int n = (int)(r / OH), oy = (int)(r % OH);
        for (int ox = 0; ox < OW; ox++) {
            float *yp = y + ((size_t)r * OW + ox) * C;
            for (int c = 0; c < C; c++) yp[c] = -INFINITY;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * stride - pad + ky;
                if (iy < 0 || iy >= H) continue;
                for (int kx = 0; kx < k; kx++) {
                    int ix = ox * stride - pad + kx;
                    if (ix < 0 || ix >= W) continue;
                    const float *xp = x + (((size_t)n * H + iy) * W + ix) * C;
                    for (int c = 0; c < C; c++) yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];
                }
            }
        }
    }
}

/* Mean over positions: per channel, a double sum over p = 0..HW-1 in order,
 * divided by HW, rounded once to float. (Channels go in groups of 256 so
 * that x is read row by row.) */
void global_avgpool(const float *x, int N, int HW, int C, float *y)
{
#pragma omp parallel for schedule(static) if ((size_t)N * HW * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * HW * C;
        for (int c0 = 0; c0 < C; c0 += 256) {
            const int cn = C - c0 < 256 ? C - c0 : 256;
            double s[256] = {0};
            for (int p = 0; p < HW; p++)
                for (int c = 0; c < cn; c++) s[c] += xn[(size_t)p * C + c0 + c];
            for (int c = 0; c < cn; c++) y[(size_t)n * C + c0 + c] = (float)(s[c] / HW);
        }
    }
}

/* ==========================================================================
 * Transformer pieces. The plain twins come first in each part: sums in
 * order, libm's exp, erf and tanh in double. The fast kernels after them
 * vectorize: a double sum over a row is a chain of dependent adds (4 cycles
 * each), and libm's expf, erff and tanhf are scalar calls (10-40 ns each
 * here) of which a ViT forward makes ~10^8 per batch, more time than its
 * matrix products take. */

/* ---- LayerNorm ------------------------------------------------------------ */

/* Reference: per row, mean and biased variance as sums in order, in double;
 * y = (x - mean) / sqrt(var + eps) * gamma + beta, rounded once. */
void layernorm_ref(const float *x, size_t rows, int C, const float *gamma, const float *beta,
                   float eps, float *y)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mean += xr[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (xr[c] - mean) * (xr[c] - mean);
        var /= C;
        for (int c = 0; c < C; c++)
            y[r * C + c] = (float)((xr[c] - mean) / sqrt(var + (double)eps) * gamma[c] + beta[c]);
    }
}

/* sum8 keeps 8 partial sums, element j going to sum j % 8, and adds them
 * in a fixed tree: the same order on every run and thread count, and the
 * compiler can do the 8 lanes at once. */
static double sum8(const float *x, size_t n)
{
    double s[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) s[k] += x[j + k];
    for (int k = 0; j < n; j++, k++) s[k] += x[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* sum of (x_j - m)^2, same order as sum8 */
static double sum8_sq_dev(const float *x, size_t n, double m)
{
    double s[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) s[k] += (x[j + k] - m) * (x[j + k] - m);
    for (int k = 0; j < n; j++, k++) s[k] += (x[j] - m) * (x[j] - m);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Per row: mean and biased variance (two passes, in double, sum8), then
 * y = (x - mean) * rstd * gamma + beta in float, rstd = 1 / sqrt(var + eps). */
void layernorm(const float *x, size_t rows, int C, const float *gamma, const float *beta,
               float eps, float *y)
{
    if (REFERENCE_BUILD) {
        layernorm_ref(x, rows, C, gamma, beta, eps, y);
        return;
    }
    const long rl = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)C >= PAR_MIN)
    for (long r = 0; r < rl; r++) {
        const float *xr = x + (size_t)r * C;
        float *yr = y + (size_t)r * C;
        const double mean = sum8(xr, (size_t)C) / C;
        const double var = sum8_sq_dev(xr, (size_t)C, mean) / C;
        const float m = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)eps));
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - m) * rstd * gamma[c] + beta[c];
    }
}

/* ---- GELU ------------------------------------------------------------------ */

/* References: the definitions in double, rounded once. */
void gelu_erf_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

void gelu_tanh_ref(float *x, size_t n)
{
    const double k = sqrt(2.0 / 3.14159265358979323846);
    for (size_t i = 0; i < n; i++) {
        const double t = x[i];
        x[i] = (float)(0.5 * t * (1.0 + tanh(k * (t + 0.044715 * t * t * t))));
    }
}

/* exp_f and the GELUs below are branch-free (selects, no calls), so gcc
 * vectorizes the loops that use them. They agree with the double-precision
 * functions to a few units in the last place (tested in test_tensor.c
 * against the references above). The polynomial coefficients are
 * near-minimax least-squares fits made in double precision (numpy):
 *   exp:  e^r on |r| <= ln2/2, degree 6          (relative error 3e-9)
 *   erf:  erf(z)/z in z^2 on |z| <= 1, degree 6  (relative error 1.2e-8)
 *   erfc: log erfc(a) on 1 <= a <= 4 in t = (a - 2.5) / 1.5, degree 9
 *         (absolute error 1.5e-8)
 *   tanh: (tanh(x) - x) / x^3 in x^2 on |x| <= 0.625, degree 5
 *         (relative error 1.7e-10) */

/* c0 + c1 x + ... + c6 x^6, x2 = x*x, in Estrin's form: pairs, then pairs
 * of pairs, a chain of 3 multiply-adds (after x2 and x2^2) instead of
 * Horner's 6. A vectorized loop over the functions below is held up by
 * their longest chain of dependent operations more than by their count. */
static inline float estrin6(float x, float x2, float c0, float c1, float c2, float c3, float c4, float c5,
                            float c6)
{
    const float a0 = MADD(c1, x, c0), a1 = MADD(c3, x, c2), a2 = MADD(c5, x, c4);
    return MADD(MADD(c6, x2, a2), x2 * x2, MADD(a1, x2, a0));
}

/* e^x: x = n ln2 + r, n = round(x log2 e), |r| <= ln2/2 (ln2 in two
 * parts, so n*ln2_hi is exact), e^x = 2^n p(r). Below -87 the result is 0
 * (true value < 1.7e-38), above 88 it is e^88; NaN stays NaN.
 * n comes from rintf, which gcc inlines (vroundps with -march=native), not
 * from the classic (t + 1.5*2^23) - 1.5*2^23: that sum rounds t to a whole
 * number only when float arithmetic is done in float. Where it is done
 * wider (FLT_EVAL_METHOD 2 on x87, 1 on s390x; or -ffast-math's
 * reassociation) n was not whole and e^x was off by up to 2x. test_tensor
 * and test_vit run built with -mfpmath=387 to keep it so (Makefile). */
/* The core, for x already in [-87, 88] (no checks) */
static inline float exp_in_range(float x)
{
    const float n = rintf(x * 1.44269504f);
    const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    const float p = estrin6(r, r * r, 9.999999993671758e-01f, 1.0000000357800687f, 5.000000586102799e-01f,
                            1.6666422727168365e-01f, 4.166548665192091e-02f, 8.37460908911345e-03f,
                            1.39804623933778e-03f);
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* 2^n, n in [-126, 127] */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

static inline float exp_f(float x)
{
    float xc = x > -87.0f ? x : -87.0f; /* (NaN goes to -87 here, see the end) */
    xc = xc < 88.0f ? xc : 88.0f;
    const float e = exp_in_range(xc);
    return x == x ? (x < -87.0f ? 0.0f : e) : x;
}

/* 0.5 x (1 + erf(x / sqrt 2)) = x Phi(x), with z = x / sqrt 2, a = |z|:
 * Phi(x) = 1 - h for z > 0, else h, where h = Phi(-|x|) = erfc(a) / 2 is
 *   (1 - a P(a^2)) / 2      a < 1
 *   e^Q(t) / 2              1 <= a <= 4   (log erfc, no cancellation)
 *   0                       a > 4
 * Both polynomials are computed for every x and one is picked (selects,
 * not branches); two selects in all, so the loop vectorizes tightly. */
static inline float gelu_erf_one(float x)
{
    const float z = x * 0.70710678118654752f, a = fabsf(z), s = z * z;
    const float p = estrin6(s, s * s, 1.1283791533061507f, -3.7612592439453663e-01f, 1.1283324876106141e-01f,
                            -2.6845050885694791e-02f, 5.1739228546674731e-03f, -7.8961427313196941e-04f,
                            7.5057904737760306e-05f);
    /* Q's small high terms in Estrin's form, its three large low ones by
     * Horner (the last roundings, which set the error of e^Q) */
    const float t = ((a < 4.0f ? a : 4.0f) - 2.5f) * 0.66666667f;
    float q = estrin6(t, t * t, -3.6646854711009258e-02f, 1.0961500577824523e-02f, -3.1927251660739397e-03f,
                      8.8094775198621633e-04f, -2.2445624872968750e-04f, 4.1688987545640543e-05f,
                      -1.2885247584470960e-06f);
    q = MADD(q, t, -2.1237607633665863f);
    q = MADD(q, t, -8.0290210712463743f);
    q = MADD(q, t, -7.8068152748954311f);
    /* h = Phi(-|x|) = erfc(|z|) / 2, 0 for |z| > 4. t is in [-5/3, 1] for
     * any x, where Q is in [-18, 0.001]: e^Q needs no range checks. */
    const float h = a < 1.0f ? MADD(-0.5f * a, p, 0.5f) : a <= 4.0f ? 0.5f * exp_in_range(q) : 0.0f;
    return x * (z > 0.0f ? 1.0f - h : h);
}

/* 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), written as the
 * identical x / (1 + e^(-2u)) (1 + tanh u = 2 / (1 + e^(-2u))), which has no
 * cancellation for negative x. */
static inline float gelu_tanh_one(float x)
{
    const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return x / (1.0f + exp_f(-2.0f * u));
}

void gelu_erf(float *x, size_t n)
{
    if (REFERENCE_BUILD) gelu_erf_ref(x, n);
    else
        for (size_t i = 0; i < n; i++) x[i] = gelu_erf_one(x[i]);
}

void gelu_tanh(float *x, size_t n)
{
    if (REFERENCE_BUILD) gelu_tanh_ref(x, n);
    else
        for (size_t i = 0; i < n; i++) x[i] = gelu_tanh_one(x[i]);
}

/* ---- tanh (the ViT's representation layer) ----------------------------------- */

/* Reference: the C library's tanh in double, rounded once. */
void tanh_inplace_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)tanh((double)x[i]);
}

/* |x| < 0.625: x + x^3 R(x^2), R a degree-5 fit of (tanh(x) - x) / x^3
 * (relative error 1.7e-10); else sign(x) (1 - e) / (1 + e), e = e^(-2|x|)
 * <= 0.29, so no cancellation. Branch-free, and the same bits on every C
 * library (libm's tanhf differs between them by an ulp or two). */
static inline float tanh_one(float x)
{
    const float a = fabsf(x), s = x * x;
    float r = 2.13820749709117e-03f;
    r = MADD(r, s, -8.171768754441146e-03f);
    r = MADD(r, s, 2.169820165760894e-02f);
    r = MADD(r, s, -5.394625145410537e-02f);
    r = MADD(r, s, 1.3333201332788513e-01f);
    r = MADD(r, s, -3.33333306573499e-01f);
    const float small = MADD(x * s, r, x);
    const float e = exp_f(-2.0f * a);
    const float big = copysignf((1.0f - e) / (1.0f + e), x);
    return a < 0.625f ? small : big;
}

void tanh_inplace(float *x, size_t n)
{
    if (REFERENCE_BUILD) {
        tanh_inplace_ref(x, n);
        return;
    }
    const long nl = (long)n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN / 8)
    for (long i = 0; i < nl; i++) x[i] = tanh_one(x[i]);
}

/* ---- softmax ---------------------------------------------------------------- */

/* Reference, one row: e_j = exp(x_j - max x) in double, x_j = e_j / sum e,
 * the sum in order. */
static void softmax_row_ref(float *x, size_t cols)
{
    float mx = -INFINITY;
    for (size_t j = 0; j < cols; j++) mx = x[j] > mx ? x[j] : mx;
    double sum = 0.0;
    for (size_t j = 0; j < cols; j++) sum += exp((double)x[j] - mx);
    for (size_t j = 0; j < cols; j++) x[j] = (float)(exp((double)x[j] - mx) / sum);
}

void softmax_rows_ref(float *x, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) softmax_row_ref(x + r * cols, cols);
}

/* One row: e_j = exp(x_j - max x), their sum in double (sum8), x_j = e_j * (1 / sum). */
static void softmax_row(float *x, size_t cols)
{
    if (REFERENCE_BUILD) {
        softmax_row_ref(x, cols);
        return;
    }
    float m8[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    size_t j = 0;
    for (; j + 8 <= cols; j += 8)
        for (int k = 0; k < 8; k++) m8[k] = x[j + k] > m8[k] ? x[j + k] : m8[k];
    for (; j < cols; j++) m8[0] = x[j] > m8[0] ? x[j] : m8[0];
    float mx = m8[0];
    for (int k = 1; k < 8; k++) mx = m8[k] > mx ? m8[k] : mx;
    for (j = 0; j < cols; j++) x[j] = exp_f(x[j] - mx);
    const float inv = (float)(1.0 / sum8(x, cols));
    for (j = 0; j < cols; j++) x[j] *= inv;
}

void softmax_rows(float *x, size_t rows, size_t cols)
{
    const long rl = (long)rows;
#pragma omp parallel for schedule(static) if (rows * cols >= PAR_MIN / 8)
    for (long r = 0; r < rl; r++) softmax_row(x + (size_t)r * cols, cols);
}

/* Attention. qkv[N,T,3C] rows are [q(C) | k(C) | v(C)] (the torchvision /
 * timm order); head h owns columns h*dh .. (h+1)*dh - 1 of each, dh = C/heads.
 * Per image n and head h:
 *   S[T,T] = q_h k_h^T * (1/sqrt(dh))     gemm, then a scale
 *   P = softmax over each row (keys)      softmax_row
 *   out_h[T,dh] = P v_h                   gemm into out's columns of head h
 * The (n, h) pairs are independent and split over threads; each owns its
 * T*T slice of work, and the gemm calls inside run single-threaded (nested
 * parallel regions are off), so the result does not depend on threads. */
size_t attention_work_size(int N, int T, int heads)
{
    return product4((size_t)N, (size_t)heads, (size_t)T, (size_t)T);
}

void attention(const float *qkv, int N, int T, int C, int heads, float *out, float *work)
{
    const int dh = C / heads;
    const size_t ld = (size_t)3 * C, TT = (size_t)T * T;
    const float scale = 1.0f / sqrtf((float)dh);
    const long pairs = (long)N * heads;
#pragma omp parallel for schedule(dynamic, 1)
    for (long p = 0; p < pairs; p++) {
        const int n = (int)(p / heads), h = (int)(p % heads);
        const float *q = qkv + (size_t)n * T * ld + (size_t)h * dh;   /* [T, dh], row stride 3C */
        const float *k = q + C, *v = q + 2 * (size_t)C;
        float *S = work + (size_t)p * TT;                              /* [T, T] */
        gemm(0, 1, (size_t)T, (size_t)T, (size_t)dh, q, ld, k, ld, 0.0f, S, (size_t)T);
        for (size_t i = 0; i < TT; i++) S[i] *= scale;
        for (int t = 0; t < T; t++) softmax_row(S + (size_t)t * T, (size_t)T);
        gemm(0, 0, (size_t)T, (size_t)dh, (size_t)T, S, (size_t)T, v, ld, 0.0f,
             out + (size_t)n * T * C + (size_t)h * dh, (size_t)C);
    }
}

/* ==========================================================================
 * Image preprocessing: TF1 legacy bilinear resize
 * (tf.compat.v1.image.resize_bilinear, align_corners = false,
 * half_pixel_centers = false). All arithmetic in float, as TF does:
 *   scale = (float)in / out
 *   src   = dst * scale          y0 = floor(src), y1 = min(y0 + 1, in - 1)
 *   ly    = src - y0              (same for x: x0, x1, lx)
 *   top    = a + (b - a) * lx     a = img[y0,x0], b = img[y0,x1]
 *   bottom = c + (d - c) * lx     c = img[y1,x0], d = img[y1,x1]
 *   out    = top + (bottom - top) * ly
 * (TF takes x1 = min(ceil(src), in - 1); it differs from y0 + 1 only when
 * src is whole, and then the weight ly or lx is 0, so the result is equal.)
 * A grayscale image (Cin 1) is tiled to the 3 output channels. */
void resize_bilinear_tf1(const uint8_t *img, int H, int W, int Cin, int S, float *out)
{
    const float sy = (float)H / (float)S, sx = (float)W / (float)S;
#pragma omp parallel for schedule(static) if ((size_t)S * S >= 16384)
    for (int oy = 0; oy < S; oy++) {
        const float fy = (float)oy * sy;
        int y0 = (int)floorf(fy);
        if (y0 > H - 1) y0 = H - 1;
        const int y1 = y0 + 1 < H ? y0 + 1 : H - 1;
        const float ly = fy - (float)y0;
        for (int ox = 0; ox < S; ox++) {
            const float fx = (float)ox * sx;
            int x0 = (int)floorf(fx);
            if (x0 > W - 1) x0 = W - 1;
            const int x1 = x0 + 1 < W ? x0 + 1 : W - 1;
            const float lx = fx - (float)x0;
            float *o = out + ((size_t)oy * S + ox) * 3;
            for (int c = 0; c < Cin; c++) {
                const float a = img[((size_t)y0 * W + x0) * Cin + c], b = img[((size_t)y0 * W + x1) * Cin + c];
                const float cc = img[((size_t)y1 * W + x0) * Cin + c], d = img[((size_t)y1 * W + x1) * Cin + c];
                const float top = a + (b - a) * lx, bottom = cc + (d - cc) * lx;
                o[c] = top + (bottom - top) * ly;
            }
            if (Cin == 1) o[1] = o[2] = o[0];
        }
    }
}
