/* test/test_tensor.c: every kernel of tensor.h and gemm.h against an
 * independent reference. Each fast kernel against its plain twin (gemm_ref,
 * conv2d_ref, conv2d_ep_ref, layernorm_ref, gelu_erf_ref, gelu_tanh_ref,
 * softmax_rows_ref: double sums in order, libm), and the twins themselves
 * against hand-worked cases; attention, pooling, the elementwise ops and
 * resize against naive double-precision versions written here. Odd sizes,
 * all transposes, beta 0/1, padded leading dimensions, strides 1/2,
 * asymmetric padding, kernels 1/3/7/16; with OpenMP, bitwise identity of
 * the outputs for 1 and 2 threads; and batch invariance of gemm rows.
 * (In the reference build the fast kernels are their twins, so a fast vs
 * twin check compares a twin with itself; the others still bite.)
 *
 * Tolerances, relative to the reference tensor's max magnitude (see
 * check_close): 1e-5 for GEMM / conv / conv2d_ep / attention / LayerNorm
 * (float accumulation vs double); 1e-6 for the pointwise functions; 1e-4
 * for resize against a reference whose source coordinate src = dst * in /
 * out is in double (the float one is off by up to ~in * 6e-8 pixels, times
 * a slope of up to 255 per pixel). Relative to each value (check_rel): 3e-6
 * for the GELUs, 3e-7 for softmax (our own exp/erf polynomials), 1.2e-7 (one
 * unit in the last place) for the twins' hand-worked cases. Exact
 * (bitwise): conv2d_ep against conv2d then scale_shift/add/relu (the same
 * sums in the same order), max pooling, ReLU, adds, hand-computed integer
 * cases, thread and batch invariance. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "../tensor.h"
#include "../util.h"


static rng_t rng;

static float *rand_array(size_t n, float lo, float hi)
{
    float *a = alloc_array(n ? n : 1, sizeof(float));
    if (!a) {
        fprintf(stderr, "test_tensor: %s\n", last_error());
        exit(2);
    }
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * (float)rng_uniform(&rng);
    return a;
}

/* ==========================================================================
 * GEMM */

/* One case: compare gemm against gemm_ref, with padded leading dimensions
 * (pad extra columns per row), NaN in C when beta = 0 (must be ignored) and
 * a sentinel in C's padding columns (must stay untouched: counted in
 * gemm_pad_writes, checked once at the end of test_gemm). */
static size_t gemm_pad_writes, gemm_pad_cases;

static void test_gemm_case(int ta, int tb, size_t M, size_t N, size_t K, size_t pad, float beta)
{
    size_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t arows = ta ? K : M, brows = tb ? N : K;
    float *A = rand_array(arows * lda, -1, 1), *B = rand_array(brows * ldb, -1, 1);
    float *C = rand_array(M * ldc, -1, 1), *R = alloc_array(M * ldc + 1, sizeof(float));
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++)
            if (j >= N) C[i * ldc + j] = 12345.0f;
            else if (beta == 0.0f) C[i * ldc + j] = NAN;
    memcpy(R, C, M * ldc * sizeof(float));
    gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    gemm_ref(ta, tb, M, N, K, A, lda, B, ldb, beta, R, ldc);
    /* compact the M x N results, count writes into the padding */
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++)
            if (j >= N) gemm_pad_writes += C[i * ldc + j] != 12345.0f;
            else C[i * N + j] = C[i * ldc + j], R[i * N + j] = R[i * ldc + j];
    gemm_pad_cases += pad > 0;
    char name[128];
    snprintf(name, sizeof name, "gemm tA=%d tB=%d M=%zu N=%zu K=%zu pad=%zu beta=%g", ta, tb, M, N, K, pad,
             (double)beta);
    check_close(name, C, R, M * N, 1e-5);
    free_array(A), free_array(B), free_array(C), free_array(R);
}

/* Few columns (N <= 48) take their own path (A read in place, one to three
 * vectors of columns), but each element is summed in the same order as in
 * the blocked path: the first 10 and 40 columns of a 60-column product
 * (blocked) are bitwise the 10- and 40-column products. */
static void test_gemm_few_columns(void)
{
    static const size_t shapes[][3] = {{1, 130, 700}, {0, 1500, 300}, {0, 37, 16500}, {1, 2100, 129}};
    static const size_t narrow[2] = {10, 40};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int ta = (int)shapes[s][0];
        const size_t M = shapes[s][1], K = shapes[s][2], lda = ta ? M : K;
        const float beta = s % 2 ? 1.0f : 0.0f;
        float *A = rand_array(M * K, -1, 1), *B = rand_array(K * 60, -1, 1), *C0 = rand_array(M * 60, -1, 1);
        float *C60 = alloc_array(M * 60, sizeof(float)), *Bn = alloc_array(K * 40, sizeof(float));
        float *Cn = alloc_array(M * 40, sizeof(float)), *C60n = alloc_array(M * 40, sizeof(float));
        memcpy(C60, C0, M * 60 * sizeof(float));
        gemm(ta, 0, M, 60, K, A, lda, B, 60, beta, C60, 60); /* the blocked path */
        for (int v = 0; v < 2; v++) {
            const size_t N = narrow[v];
            for (size_t i = 0; i < M; i++) memcpy(Cn + i * N, C0 + i * 60, N * sizeof(float));
            for (size_t p = 0; p < K; p++) memcpy(Bn + p * N, B + p * 60, N * sizeof(float));
            gemm(ta, 0, M, N, K, A, lda, Bn, N, beta, Cn, N);
            for (size_t i = 0; i < M; i++) memcpy(C60n + i * N, C60 + i * 60, N * sizeof(float));
            char name[128];
            snprintf(name, sizeof name, "gemm tA=%d M=%zu K=%zu beta=%g: %zu columns = the first %zu of 60, bitwise", ta,
                     M, K, (double)beta, N, N);
            check_same(name, C60n, Cn, M * N);
        }
        free_array(A), free_array(B), free_array(C0), free_array(C60), free_array(Bn), free_array(Cn);
        free_array(C60n);
    }
}

static void test_gemm(void)
{
    static const size_t shapes[][3] = {
        {1, 1, 1}, {0, 5, 3}, {5, 0, 3}, {4, 6, 0}, {1, 17, 9}, {13, 1, 7}, {7, 13, 5}, {33, 65, 17},
        {100, 37, 129}, {31, 97, 300}, {65, 130, 520},
    };
    const size_t nshapes = sizeof shapes / sizeof shapes[0];
    for (size_t s = 0; s < nshapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                test_gemm_case(ta, tb, M, N, K, (s % 3) * 3, (s + ta + tb) % 2 ? 1.0f : 0.0f);
            }
    /* the block edges of a packed GEMM: K past a KC block, N past an NC panel */
    test_gemm_case(0, 0, 37, 4200, 700, 1, 0.0f);
    test_gemm_case(1, 1, 300, 333, 1100, 0, 1.0f);
    test_gemm_case(0, 1, 600, 50, 257, 2, 1.0f);
    /* a wide B panel (N >= GEMM_NC / 2) with tall tiles, M past one of them */
    test_gemm_case(0, 0, 2030, 530, 40, 1, 1.0f);
    /* few columns (N <= 16, A read in place): partial row tiles, A^T
     * strips past one (about 1000 rows) with a partial tile, K past the
     * depth packed at once (about 15000), B transposed */
    test_gemm_case(1, 0, 300, 10, 130, 1, 0.0f);
    test_gemm_case(1, 1, 257, 16, 300, 0, 1.0f);
    test_gemm_case(1, 0, 1000, 2, 600, 3, 1.0f);
    test_gemm_case(1, 0, 2100, 10, 133, 2, 1.0f);
    test_gemm_case(0, 0, 130, 10, 6553, 1, 1.0f);
    test_gemm_case(0, 1, 61, 1, 16500, 0, 0.0f);
    test_gemm_case(1, 1, 45, 15, 16500, 2, 1.0f);
    test_gemm_case(0, 0, 100, 40, 3000, 1, 1.0f);
    test_gemm_case(1, 0, 1100, 33, 200, 2, 0.0f);
    test_gemm_case(0, 1, 29, 48, 9000, 0, 1.0f);
    test_gemm_case(1, 1, 13, 17, 300, 1, 1.0f);
    test_gemm_few_columns();
    check(gemm_pad_writes == 0, "gemm leaves C's padding columns alone (%zu cases with ldc > N, %zu writes)",
          gemm_pad_cases, gemm_pad_writes);
    /* batch invariance: rows 37..59 of a product computed alone are bitwise
     * the same rows of the whole product (an image's features must not
     * depend on the other images in its batch) */
    for (int ta = 0; ta < 3; ta++) {
        /* (ta = 2: A^T with 10 columns, the few-columns path) */
        size_t M = ta == 2 ? 300 : 100, N = ta == 2 ? 10 : 70, K = 600, r0 = 37, rn = 23;
        float *A = rand_array(M * K, -1, 1), *B = rand_array(K * N, -1, 1);
        float *C = rand_array(M * N, -1, 1), *Cs = rand_array(rn * N, -1, 1);
        gemm(ta > 0, 0, M, N, K, A, ta ? M : K, B, N, 0.0f, C, N);
        gemm(ta > 0, 0, rn, N, K, ta ? A + r0 : A + r0 * K, ta ? M : K, B, N, 0.0f, Cs, N);
        char name[96];
        snprintf(name, sizeof name, "gemm rows %zu..%zu alone = those rows of M=%zu (tA=%d N=%zu)", r0, r0 + rn - 1,
                 M, ta > 0, N);
        check_same(name, C + r0 * N, Cs, rn * N);
        free_array(A), free_array(B), free_array(C), free_array(Cs);
    }
    /* known values: [1 2; 3 4] [5 6; 7 8] = [19 22; 43 50] */
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4], want[4] = {19, 22, 43, 50};
    gemm(0, 0, 2, 2, 2, a, 2, b, 2, 0.0f, c, 2);
    check_same("gemm 2x2 known values", c, want, 4);
    gemm_ref(0, 0, 2, 2, 2, a, 2, b, 2, 0.0f, c, 2);
    check_same("gemm_ref 2x2 known values", c, want, 4);
}

/* ==========================================================================
 * Convolution */

typedef struct { int N, H, W, Cin, Cout; conv_spec s; } conv_case;

static void test_conv_case(const conv_case *cc)
{
    const conv_spec *s = &cc->s;
    int OH = conv_out_h(s, cc->H), OW = conv_out_w(s, cc->W);
    size_t xn = (size_t)cc->N * cc->H * cc->W * cc->Cin, wn = (size_t)s->kh * s->kw * cc->Cin * cc->Cout;
    size_t yn = (size_t)cc->N * OH * OW * cc->Cout, wk = conv2d_work_size(s, cc->N, cc->H, cc->W, cc->Cin);
    float *x = rand_array(xn, -1, 1), *w = rand_array(wn, -1, 1);
    float *y = rand_array(yn, -1, 1), *r = rand_array(yn, -1, 1);
    float *work = wk ? malloc(wk * sizeof(float)) : NULL; /* exact size: sanitizer sees overruns */
    conv2d(x, cc->N, cc->H, cc->W, cc->Cin, w, cc->Cout, s, y, work);
    conv2d_ref(x, cc->N, cc->H, cc->W, cc->Cin, w, cc->Cout, s, r);
    char name[160];
    snprintf(name, sizeof name, "conv2d N=%d %dx%dx%d->%d k=%dx%d s=%d pad=t%d,l%d,b%d,r%d -> %dx%d work=%zu",
             cc->N, cc->H, cc->W, cc->Cin, cc->Cout, s->kh, s->kw, s->stride, s->pad_t, s->pad_l, s->pad_b,
             s->pad_r, OH, OW, wk);
    check_close(name, y, r, yn, 1e-5);

    /* conv2d_ep: the same bits as conv2d then scale_shift, add_inplace, relu */
    float *sc = rand_array((size_t)cc->Cout, 0.5f, 2), *sh = rand_array((size_t)cc->Cout, -1, 1);
    float *res = rand_array(yn, -2, 2), *fused = rand_array(yn, -1, 1);
    static const int combos[4][3] = {{1, 0, 1}, {1, 1, 1}, {0, 1, 0}, {1, 0, 0}}; /* bn, res, relu */
    const size_t kk = (size_t)s->kh * s->kw * cc->Cin;
    float *wpk = alloc_array(gemm_packed_size(kk, (size_t)cc->Cout) + 1, sizeof(float));
    if (wpk) gemm_pack(w, kk, (size_t)cc->Cout, wpk);
    int same = wpk != NULL;
    for (int k = 0; k < 4; k++) {
        const int bn = combos[k][0], rs = combos[k][1], rl = combos[k][2];
        conv2d(x, cc->N, cc->H, cc->W, cc->Cin, w, cc->Cout, s, r, work);
        if (bn) scale_shift(r, yn / (size_t)cc->Cout, cc->Cout, sc, sh, 0);
        if (rs) add_inplace(r, res, yn);
        if (rl) relu(r, yn);
        conv_epilogue ep = {bn ? sc : NULL, bn ? sh : NULL, rs ? res : NULL, rl, NULL};
        conv2d_ep(x, cc->N, cc->H, cc->W, cc->Cin, w, k % 2 ? wpk : NULL, cc->Cout, s, fused, work, &ep);
        same = same && memcmp(fused, r, yn * sizeof(float)) == 0;
    }
    free_array(wpk);
    check(same, "conv2d_ep (bn+relu, bn+res+relu, res, bn; w packed by gemm_pack for the 2nd and 4th) bitwise = "
          "conv2d then scale_shift/add/relu, %dx%dx%d->%d k=%d s=%d", cc->H, cc->W, cc->Cin, cc->Cout, s->kh, s->stride);
    /* and against its plain twin: conv2d_ref, then the three passes */
    conv_epilogue all = {sc, sh, res, 1, NULL};
    conv2d_ep(x, cc->N, cc->H, cc->W, cc->Cin, w, NULL, cc->Cout, s, fused, work, &all);
    conv2d_ep_ref(x, cc->N, cc->H, cc->W, cc->Cin, w, cc->Cout, s, r, &all);
    snprintf(name, sizeof name, "conv2d_ep (bn+res+relu) vs conv2d_ep_ref, %dx%dx%d->%d k=%d s=%d", cc->H, cc->W,
             cc->Cin, cc->Cout, s->kh, s->stride);
    check_close(name, fused, r, yn, 1e-5);
    /* the output written over the residual (res = y): the same bits as
     * beside it -- the fast path for a sum of one depth block, the plain
     * twin for longer ones (gemm.h) -- and the plain twin's own bits */
    float *over = rand_array(yn, -1, 1);
    memcpy(over, res, yn * sizeof(float));
    conv_epilogue in_place = {sc, sh, over, 1, NULL};
    conv2d_ep(x, cc->N, cc->H, cc->W, cc->Cin, w, NULL, cc->Cout, s, over, work, &in_place);
    const int one_block = (size_t)s->kh * s->kw * cc->Cin <= GEMM_KC;
    check(!memcmp(over, one_block ? fused : r, yn * sizeof(float)),
          "conv2d_ep with y over the residual bitwise = beside it (%s), %dx%dx%d->%d k=%d s=%d",
          one_block ? "one depth block: the fast path" : "longer sums: conv2d_ep_ref", cc->H, cc->W, cc->Cin, cc->Cout,
          s->kh, s->stride);
    memcpy(over, res, yn * sizeof(float));
    conv2d_ep_ref(x, cc->N, cc->H, cc->W, cc->Cin, w, cc->Cout, s, over, &in_place);
    check(!memcmp(over, r, yn * sizeof(float)), "conv2d_ep_ref with y over the residual bitwise = beside it, %dx%dx%d->%d k=%d s=%d",
          cc->H, cc->W, cc->Cin, cc->Cout, s->kh, s->stride);
    free_array(over);
    free_array(sc), free_array(sh), free_array(res), free_array(fused);
#ifdef _OPENMP
    float *y1 = rand_array(yn, -1, 1);
    set_threads(1);
    conv2d(x, cc->N, cc->H, cc->W, cc->Cin, w, cc->Cout, s, y1, work);
    set_threads(2);
    conv2d(x, cc->N, cc->H, cc->W, cc->Cin, w, cc->Cout, s, y, work);
    snprintf(name, sizeof name, "conv2d threads 1 vs 2, %dx%dx%d->%d k=%d s=%d", cc->H, cc->W, cc->Cin, cc->Cout,
             s->kh, s->stride);
    check_same(name, y1, y, yn);
    free_array(y1);
#endif
    free(work);
    free_array(x), free_array(w), free_array(y), free_array(r);
}

static void test_conv(void)
{
    /* conv2d_ref on a hand-computed case: 3x3 image 1..9, 2x2 kernel of ones,
     * stride 1, pad bottom/right 1 -> 3x3 sums of 2x2 windows (zeros beyond) */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, y[9];
    float want[9] = {12, 16, 9, 24, 28, 15, 15, 17, 9};
    conv_spec hs = {2, 2, 1, 0, 0, 1, 1};
    conv2d_ref(x, 1, 3, 3, 1, w, 1, &hs, y);
    check_same("conv2d_ref hand-computed 3x3, 2x2 kernel, pad b/r", y, want, 9);
    /* conv2d_ep_ref on it: y * 0.5 - 10, + res = 0..8, ReLU:
     * [-4 -2 -5.5; 2 4 -2.5; -2.5 -1.5 -5.5] + res -> [-4 -1 -3.5; 5 8 2.5; 3.5 5.5 2.5] */
    float sc1 = 0.5f, sh1 = -10.0f, res[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    float want_ep[9] = {0, 0, 0, 5, 8, 2.5f, 3.5f, 5.5f, 2.5f};
    conv_epilogue hep = {&sc1, &sh1, res, 1, NULL};
    conv2d_ep_ref(x, 1, 3, 3, 1, w, 1, &hs, y, &hep);
    check_same("conv2d_ep_ref hand-computed: the same conv, * 0.5 - 10, + 0..8, ReLU", y, want_ep, 9);

    conv_spec s224 = {7, 7, 2, 3, 3, 3, 3}, same = {3, 3, 2, 0, 0, 1, 1};
    check(conv_out_h(&s224, 224) == 112 && conv_out_w(&s224, 224) == 112 && conv_out_h(&same, 224) == 112 &&
              conv_out_w(&same, 8) == 4,
          "conv_out_h/w: 224 k7 s2 p3 -> 112, TF SAME k3 s2 (0,1) -> 112, 8 -> 4");
    conv_spec plain = {1, 1, 1, 0, 0, 0, 0};
    check(conv2d_work_size(&plain, 8, 56, 56, 256) == 0, "conv2d_work_size is 0 for a 1x1 stride-1 conv");
    check(conv2d_work_size(&s224, 2, 224, 224, 3) == (size_t)2 * 230 * 230 * 3 &&
              conv2d_work_size(&s224, INT_MAX, INT_MAX, INT_MAX, INT_MAX) == SIZE_MAX &&
              attention_work_size(2, 197, 12) == (size_t)2 * 12 * 197 * 197 &&
              attention_work_size(INT_MAX, INT_MAX, INT_MAX) == SIZE_MAX,
          "conv2d_work_size / attention_work_size: N (H+pads) (W+pads) Cin and N heads T T; SIZE_MAX when that does "
          "not fit in size_t");

    static const conv_case cases[] = {
        {2, 5, 7, 8, 12, {1, 1, 1, 0, 0, 0, 0}},     /* 1x1: straight GEMM */
        {2, 9, 8, 6, 10, {1, 1, 2, 0, 0, 0, 0}},     /* 1x1 strided: gather */
        {1, 6, 6, 5, 3, {1, 1, 1, 1, 1, 1, 1}},      /* 1x1 padded */
        {2, 7, 9, 5, 11, {3, 3, 1, 1, 1, 1, 1}},     /* 3x3 same */
        {2, 9, 8, 4, 7, {3, 3, 2, 1, 1, 1, 1}},      /* 3x3 stride 2 */
        {1, 8, 11, 3, 5, {3, 3, 2, 0, 0, 1, 1}},     /* TF SAME: pad bottom/right only */
        {1, 10, 9, 3, 4, {3, 3, 2, 1, 0, 0, 2}},     /* every side different */
        {1, 5, 6, 2, 3, {3, 1, 1, 1, 0, 1, 0}},      /* non-square kernel */
        {2, 23, 19, 3, 16, {7, 7, 2, 3, 3, 3, 3}},   /* ResNet stem */
        {1, 40, 64, 3, 16, {7, 7, 2, 3, 3, 3, 3}},   /* stem, output rows wider than a sliver */
        {1, 30, 33, 8, 20, {3, 3, 2, 1, 1, 1, 1}},   /* stride 2, wide rows */
        {1, 6, 40, 5, 9, {1, 1, 2, 0, 0, 0, 0}},     /* 1x1 stride 2, wide rows */
        {1, 9, 35, 4, 6, {3, 3, 2, 0, 0, 1, 1}},     /* TF SAME, wide rows */
        {1, 32, 48, 3, 8, {16, 16, 16, 0, 0, 0, 0}}, /* ViT patchify */
        {2, 56, 56, 64, 16, {3, 3, 1, 1, 1, 1, 1}},  /* ResNet stage 1 (tiles, threads) */
        /* full register tiles (32 columns, 14 rows) and partial ones: the
         * epilogue in the kernel and in finish_partial */
        {2, 20, 21, 24, 70, {1, 1, 1, 0, 0, 0, 0}},  /* 1x1, one depth block */
        {1, 15, 30, 40, 64, {3, 3, 1, 1, 1, 1, 1}},  /* 3x3, blocks of one window row */
        {2, 36, 44, 3, 64, {7, 7, 2, 3, 3, 3, 3}},   /* stem, 64 channels: one block, window rows in place */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_conv_case(&cases[i]);
}

/* ==========================================================================
 * Elementwise and per-channel ops */

static void test_elementwise(void)
{
    const int C = 13;
    const size_t rows = 37, n = rows * C;
    float *g = rand_array(C, 0.5f, 2), *b = rand_array(C, -1, 1), *m = rand_array(C, -1, 1);
    float *v = rand_array(C, 0.1f, 3), *sc = rand_array(C, 0, 1), *sh = rand_array(C, 0, 1);
    float want_sc[13], want_sh[13];
    bn_fold(g, b, m, v, 1e-3f, C, sc, sh);
    for (int c = 0; c < C; c++) {
        double s = g[c] / sqrt((double)v[c] + 1e-3);
        want_sc[c] = (float)s;
        want_sh[c] = (float)(b[c] - m[c] * s);
    }
    check_close("bn_fold scale", sc, want_sc, C, 1e-6);
    check_close("bn_fold shift", sh, want_sh, C, 1e-6);

    float *x = rand_array(n, -2, 2), *y = rand_array(n, 0, 1), *want = rand_array(n, 0, 1);
    for (int relu_after = 0; relu_after < 2; relu_after++) {
        memcpy(y, x, n * sizeof(float));
        scale_shift(y, rows, C, sc, sh, relu_after);
        for (size_t i = 0; i < n; i++) {
            double t = (double)x[i] * sc[i % C] + sh[i % C];
            want[i] = (float)(relu_after && t < 0 ? 0 : t);
        }
        check_close(relu_after ? "scale_shift + relu" : "scale_shift", y, want, n, 1e-6);
    }
    memcpy(y, x, n * sizeof(float));
    relu(y, n);
    for (size_t i = 0; i < n; i++) want[i] = x[i] > 0 ? x[i] : 0.0f;
    check_same("relu", y, want, n);

    float *z = rand_array(n, -1, 1);
    memcpy(y, x, n * sizeof(float));
    add_inplace(y, z, n);
    for (size_t i = 0; i < n; i++) want[i] = x[i] + z[i];
    check_same("add_inplace", y, want, n);
    memcpy(y, x, n * sizeof(float));
    add_bias(y, rows, C, b);
    for (size_t i = 0; i < n; i++) want[i] = x[i] + b[i % C];
    check_same("add_bias", y, want, n);
    free_array(g), free_array(b), free_array(m), free_array(v), free_array(sc), free_array(sh);
    free_array(x), free_array(y), free_array(want), free_array(z);
}

/* ==========================================================================
 * Pooling */

static void maxpool_naive(const float *x, int N, int H, int W, int C, int k, int s, int pad, float *y)
{
    int OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int c = 0; c < C; c++) {
                    float mx = -INFINITY;
                    for (int iy = oy * s - pad; iy < oy * s - pad + k; iy++)
                        for (int ix = ox * s - pad; ix < ox * s - pad + k; ix++)
                            if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                                float t = x[(((size_t)n * H + iy) * W + ix) * C + c];
                                if (t > mx) mx = t;
                            }
                    y[(((size_t)n * OH + oy) * OW + ox) * C + c] = mx;
                }
}

static void test_pool(void)
{
    static const int cases[][7] = {/* N H W C k stride pad */
                                   {2, 7, 7, 5, 3, 2, 1}, {1, 8, 9, 3, 3, 2, 1}, {2, 6, 5, 4, 2, 2, 0},
                                   {1, 112, 112, 8, 3, 2, 1}, {1, 5, 5, 2, 3, 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        int OH = (c[1] + 2 * c[6] - c[4]) / c[5] + 1, OW = (c[2] + 2 * c[6] - c[4]) / c[5] + 1;
        size_t xn = (size_t)c[0] * c[1] * c[2] * c[3], yn = (size_t)c[0] * OH * OW * c[3];
        /* all negative: padding counted as zero would show up as 0 */
        float *x = rand_array(xn, -3, -0.5f), *y = rand_array(yn, 0, 1), *r = rand_array(yn, 0, 1);
        maxpool2d(x, c[0], c[1], c[2], c[3], c[4], c[5], c[6], y);
        maxpool_naive(x, c[0], c[1], c[2], c[3], c[4], c[5], c[6], r);
        char name[96];
        snprintf(name, sizeof name, "maxpool2d %dx%dx%d k=%d s=%d pad=%d (negative input)", c[1], c[2], c[3],
                 c[4], c[5], c[6]);
        check_same(name, y, r, yn);
        free_array(x), free_array(y), free_array(r);
    }
    static const int gcases[][3] = {{3, 49, 21}, {2, 7, 600}}; /* N HW C */
    for (size_t i = 0; i < sizeof gcases / sizeof gcases[0]; i++) {
        const int N = gcases[i][0], HW = gcases[i][1], C = gcases[i][2];
        float *x = rand_array((size_t)N * HW * C, -1, 3), *y = rand_array((size_t)N * C, 0, 1);
        float *r = rand_array((size_t)N * C, 0, 1);
        global_avgpool(x, N, HW, C, y);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int p = 0; p < HW; p++) s += x[((size_t)n * HW + p) * C + c];
                r[n * C + c] = (float)(s / HW);
            }
        char name[64];
        snprintf(name, sizeof name, "global_avgpool N=%d HW=%d C=%d", N, HW, C);
        check_close(name, y, r, (size_t)N * C, 1e-6);
        free_array(x), free_array(y), free_array(r);
    }
}

/* ==========================================================================
 * Transformer pieces */

/* Element by element, relative to each value: max |got - want| / |want|
 * over the entries with |want| >= floor (NaN counts as worst); prints it and
 * the max abs error. */
static int check_rel(const char *name, const float *got, const float *want, size_t n, double floor, double tol)
{
    double max_abs = 0, max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs(want[i]) >= floor)) continue;
        double d = fabs((double)got[i] - want[i]), e = d / fabs(want[i]);
        if (!(d <= max_abs)) max_abs = d;
        if (!(e <= max_rel)) max_rel = e;
    }
    check(max_rel <= tol, "%s n=%zu where |ref| >= %g: max_abs=%.3g max_rel=%.3g tol=%.2g (relative)", name, n,
          floor, max_abs, max_rel, tol);
    return max_rel <= tol;
}

/* The plain twins on hand-worked values (to one unit in the last place,
 * 1.2e-7): GELU-erf is x Phi(x), Phi from tables of the normal distribution
 * (Phi(1) = 0.8413447460685429, Phi(2) = 0.9772498680518208, Phi(-3) =
 * 0.0013498980316301); GELU-tanh at the same points from its formula, in
 * double; softmax [2, 1, 0] = [e^2, e, 1] / (e^2 + e + 1) and a row of
 * equal entries 1/4 each; LayerNorm of [1 2 3 4] (mean 2.5, variance 1.25):
 * +-1.5 / sqrt 1.25 = +-1.3416407865, +-0.5 / sqrt 1.25 = +-0.4472135955,
 * then gamma [1 1 2 2], beta [0 0 0 1]. */
static void test_transformer_twins(void)
{
    const float x[5] = {-3, -1, 0, 1, 2};
    const float want_erf[5] = {-0.00404969409489031f, -0.15865525393145707f, 0, 0.8413447460685429f,
                               1.9544997361036416f};
    const float want_tanh[5] = {-0.0036373920817729943f, -0.15880800939172324f, 0, 0.8411919906082768f,
                                1.954597694087775f};
    float y[5];
    memcpy(y, x, sizeof y);
    gelu_erf_ref(y, 5);
    check_rel("gelu_erf_ref at -3, -1, 0, 1, 2 = x Phi(x)", y, want_erf, 5, 0, 1.2e-7);
    memcpy(y, x, sizeof y);
    gelu_tanh_ref(y, 5);
    check_rel("gelu_tanh_ref at -3, -1, 0, 1, 2", y, want_tanh, 5, 0, 1.2e-7);

    float sm[7] = {2, 1, 0, 5, 5, 5, 5};
    const float want_sm[7] = {0.6652409557748219f, 0.24472847105479764f, 0.09003057317038046f, 0.25f, 0.25f, 0.25f,
                              0.25f};
    softmax_rows_ref(sm, 1, 3);
    softmax_rows_ref(sm + 3, 1, 4);
    check_rel("softmax_rows_ref [2, 1, 0] and [5, 5, 5, 5]", sm, want_sm, 7, 0, 1.2e-7);

    const float lx[4] = {1, 2, 3, 4}, lg[4] = {1, 1, 2, 2}, lb[4] = {0, 0, 0, 1};
    const float want_ln[4] = {-1.3416407864998738f, -0.4472135954999579f, 0.8944271909999159f, 3.6832815729997477f};
    float ly[4];
    layernorm_ref(lx, 1, 4, lg, lb, 0.0f, ly);
    check_rel("layernorm_ref [1 2 3 4], gamma [1 1 2 2], beta [0 0 0 1], eps 0", ly, want_ln, 4, 0, 1.2e-7);
}

/* GELU and the exp inside softmax are our own polynomial code (tensor.c):
 * against their plain twins (libm in double), element by element, relative
 * to each value, on a dense sweep (measured: 1.6e-6 for the GELUs, which
 * libm's erff/tanhf in the same formula miss by 6e-4 at x near -4 through
 * cancellation; 1.5e-7 for exp). Softmax of [0, t] against its closed form
 * e^t / (1 + e^t), the twin too. */
static void test_pointwise_relative(void)
{
    const size_t n = 200001;
    float *x = rand_array(n, 0, 1), *y = rand_array(n, 0, 1), *r = rand_array(n, 0, 1);
    for (size_t i = 0; i < n; i++) x[i] = -10.0f + 20.0f * (float)i / (float)(n - 1);
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    gelu_erf(y, n), gelu_erf_ref(r, n);
    check_rel("gelu_erf vs gelu_erf_ref on [-10, 10]", y, r, n, 1e-4, 3e-6);
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    gelu_tanh(y, n), gelu_tanh_ref(r, n);
    check_rel("gelu_tanh vs gelu_tanh_ref on [-10, 10]", y, r, n, 1e-4, 3e-6);
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    tanh_inplace(y, n), tanh_inplace_ref(r, n);
    check_rel("tanh_inplace vs tanh_inplace_ref on [-10, 10]", y, r, n, 1e-30, 2.5e-7);
    float tiny[6] = {1e-30f, -3e-8f, 0.6249f, -0.6251f, 40.0f, -100.0f}, want[6];
    for (int i = 0; i < 6; i++) want[i] = (float)tanh((double)tiny[i]);
    tanh_inplace(tiny, 6);
    check_rel("tanh_inplace at 1e-30, -3e-8, both sides of 0.625, 40, -100", tiny, want, 6, 1e-37, 1.2e-7);
    /* softmax of rows [0, t], t in [-87, 0]: p = e^t / (1 + e^t) */
    for (size_t i = 0; i < n / 2; i++) x[2 * i] = 0.0f, x[2 * i + 1] = -87.0f * (float)i / (float)(n / 2);
    float *p = rand_array(n, 0, 1);
    for (size_t i = 0; i < n / 2; i++) {
        double t = x[2 * i + 1];
        p[2 * i] = (float)(1 / (1 + exp(t))), p[2 * i + 1] = (float)(exp(t) / (1 + exp(t)));
    }
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    softmax_rows(y, n / 2, 2), softmax_rows_ref(r, n / 2, 2);
    check_rel("softmax of [0, t], t in [-87, 0], vs e^t / (1 + e^t)", y, p, n - 1, 1e-37, 3e-7);
    check_rel("softmax_rows_ref of [0, t], t in [-87, 0], vs e^t / (1 + e^t)", r, p, n - 1, 1e-37, 1.2e-7);
    check_rel("softmax_rows vs softmax_rows_ref on those rows", y, r, n - 1, 1e-37, 3e-7);
    free_array(x), free_array(y), free_array(r), free_array(p);
}

static void test_transformer_pointwise(void)
{
    test_transformer_twins();
    const int C = 77;
    const size_t rows = 9, n = rows * C;
    /* LayerNorm: rows with an offset of 3 and different spreads */
    float *x = rand_array(n, -1, 1), *g = rand_array(C, 0.5f, 1.5f), *b = rand_array(C, -1, 1);
    float *y = rand_array(n, 0, 1), *r = rand_array(n, 0, 1);
    for (size_t i = 0; i < n; i++) x[i] = 3.0f + x[i] * (float)(1 + i / C);
    layernorm(x, rows, C, g, b, 1e-6f, y);
    layernorm_ref(x, rows, C, g, b, 1e-6f, r);
    check_close("layernorm vs layernorm_ref (biased variance, eps 1e-6)", y, r, n, 1e-5);

    /* pointwise functions over [-6, 6] */
    for (size_t i = 0; i < n; i++) x[i] = -6.0f + 12.0f * (float)i / (float)(n - 1);
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    gelu_erf(y, n), gelu_erf_ref(r, n);
    check_close("gelu_erf vs gelu_erf_ref", y, r, n, 1e-6);
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    gelu_tanh(y, n), gelu_tanh_ref(r, n);
    check_close("gelu_tanh vs gelu_tanh_ref", y, r, n, 1e-6);
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    tanh_inplace(y, n), tanh_inplace_ref(r, n);
    check_close("tanh_inplace vs tanh_inplace_ref", y, r, n, 1e-6);
    test_pointwise_relative();

    /* softmax: random rows, one with a huge entry (overflows without the max) */
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_uniform(&rng) * 20 - 10);
    x[3 * C + 5] = 1000.0f;
    memcpy(y, x, n * sizeof(float)), memcpy(r, x, n * sizeof(float));
    softmax_rows(y, rows, C), softmax_rows_ref(r, rows, C);
    check_close("softmax_rows vs softmax_rows_ref (one row holds 1000)", y, r, n, 1e-6);
    check(y[3 * C + 5] == 1.0f && r[3 * C + 5] == 1.0f,
          "softmax_rows, softmax_rows_ref: the 1000 entry gets probability 1 (got %g, %g)", (double)y[3 * C + 5],
          (double)r[3 * C + 5]);
    free_array(x), free_array(g), free_array(b), free_array(y), free_array(r);
}

/* out[n,t,h*dh + d] = sum_s softmax_s(q_t . k_s / sqrt(dh)) v_s[d], in double */
static void attention_naive(const float *qkv, int N, int T, int C, int heads, float *out)
{
    int dh = C / heads;
    double *p = malloc((size_t)T * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int h = 0; h < heads; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)n * T + t) * 3 * C + h * dh;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s < T; s++) {
                    const float *k = qkv + ((size_t)n * T + s) * 3 * C + C + h * dh;
                    double d = 0;
                    for (int i = 0; i < dh; i++) d += (double)q[i] * k[i];
                    p[s] = d / sqrt((double)dh);
                    if (p[s] > mx) mx = p[s];
                }
                for (int s = 0; s < T; s++) sum += (p[s] = exp(p[s] - mx));
                for (int i = 0; i < dh; i++) {
                    double o = 0;
                    for (int s = 0; s < T; s++) o += p[s] / sum * qkv[((size_t)n * T + s) * 3 * C + 2 * C + h * dh + i];
                    out[((size_t)n * T + t) * C + h * dh + i] = (float)o;
                }
            }
    free(p);
}

static void test_attention(void)
{
    static const int cases[][4] = {{2, 7, 12, 3}, {1, 50, 64, 4}, {2, 65, 96, 6}, {1, 197, 48, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int N = cases[i][0], T = cases[i][1], C = cases[i][2], heads = cases[i][3];
        size_t on = (size_t)N * T * C, wk = attention_work_size(N, T, heads);
        float *qkv = rand_array(on * 3, -2, 2), *y = rand_array(on, 0, 1), *r = rand_array(on, 0, 1);
        float *work = malloc(wk * sizeof(float));
        attention(qkv, N, T, C, heads, y, work);
        attention_naive(qkv, N, T, C, heads, r);
        char name[96];
        snprintf(name, sizeof name, "attention N=%d T=%d C=%d heads=%d", N, T, C, heads);
        check_close(name, y, r, on, 1e-5);
#ifdef _OPENMP
        float *y1 = rand_array(on, 0, 1);
        set_threads(1);
        attention(qkv, N, T, C, heads, y1, work);
        set_threads(2);
        attention(qkv, N, T, C, heads, y, work);
        snprintf(name, sizeof name, "attention threads 1 vs 2, N=%d T=%d heads=%d", N, T, heads);
        check_same(name, y1, y, on);
        free_array(y1);
#endif
        free(work);
        free_array(qkv), free_array(y), free_array(r);
    }
}

/* ==========================================================================
 * Resize */

/* TF1 legacy bilinear with the source coordinate in double */
static void resize_naive(const uint8_t *img, int H, int W, int Cin, int S, float *out)
{
    for (int oy = 0; oy < S; oy++)
        for (int ox = 0; ox < S; ox++)
            for (int c = 0; c < 3; c++) {
                double fy = oy * (double)H / S, fx = ox * (double)W / S;
                int y0 = (int)floor(fy), x0 = (int)floor(fx);
                int y1 = y0 + 1 < H ? y0 + 1 : H - 1, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
                double ly = fy - y0, lx = fx - x0;
                int ci = Cin == 1 ? 0 : c;
#define PX(yy, xx) ((double)img[((size_t)(yy) * W + (xx)) * Cin + ci])
                double top = PX(y0, x0) + (PX(y0, x1) - PX(y0, x0)) * lx;
                double bot = PX(y1, x0) + (PX(y1, x1) - PX(y1, x0)) * lx;
#undef PX
                out[((size_t)oy * S + ox) * 3 + c] = (float)(top + (bot - top) * ly);
            }
}

static void test_resize(void)
{
    /* hand-computed: 2x2 gray [0 30; 60 90] -> 3x3, scale 2/3:
     * src = 0, 2/3, 4/3 -> (y0, y1, ly) = (0,1,0), (0,1,2/3), (1,1,1/3) */
    const uint8_t img[4] = {0, 30, 60, 90};
    float out[27], want[27];
    const float w9[9] = {0, 20, 30, 40, 60, 70, 60, 80, 90};
    for (int i = 0; i < 27; i++) want[i] = w9[i / 3];
    resize_bilinear_tf1(img, 2, 2, 1, 3, out);
    check_close("resize_bilinear_tf1 2x2 gray -> 3x3 (hand-computed, tiled to 3 channels)", out, want, 27, 1e-6);

    static const int cases[][4] = {{37, 50, 3, 24}, {10, 7, 3, 32}, {224, 224, 3, 224}, {300, 200, 1, 224},
                                   {5, 9, 1, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int H = cases[i][0], W = cases[i][1], Cin = cases[i][2], S = cases[i][3];
        size_t in_n = (size_t)H * W * Cin, on = (size_t)S * S * 3;
        uint8_t *im = malloc(in_n);
        for (size_t j = 0; j < in_n; j++) im[j] = (uint8_t)(rng_u64(&rng) & 255);
        float *y = rand_array(on, 0, 1), *r = rand_array(on, 0, 1);
        resize_bilinear_tf1(im, H, W, Cin, S, y);
        resize_naive(im, H, W, Cin, S, r);
        char name[96];
        snprintf(name, sizeof name, "resize_bilinear_tf1 %dx%dx%d -> %d vs double reference", H, W, Cin, S);
        check_close(name, y, r, on, 1e-4);
        if (H == S && W == S) {
            float *id = rand_array(on, 0, 1);
            for (size_t j = 0; j < on; j++) id[j] = im[j];
            check_same("resize_bilinear_tf1 to the same size is the identity", y, id, on);
            free_array(id);
        }
        free(im), free_array(y), free_array(r);
    }
}

/* ==========================================================================
 * Thread invariance of gemm on shapes big enough to be split */

static void test_gemm_threads(void)
{
#ifdef _OPENMP
    static const size_t shapes[][5] = {/* tA tB M N K */
                                       {0, 0, 301, 257, 300}, {1, 0, 200, 99, 513}, {0, 1, 77, 400, 64},
                                       {1, 1, 150, 150, 150}, {0, 0, 3000, 64, 64}, {0, 0, 20, 3000, 70},
                                       {1, 0, 3000, 10, 128}, {0, 0, 128, 10, 3000}, {0, 0, 600, 600, 300},
                                       {1, 0, 5000, 16, 40}, {0, 1, 3000, 3, 500},
                                       {1, 0, 3000, 40, 128}, {0, 0, 300, 40, 3000}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int ta = (int)shapes[s][0], tb = (int)shapes[s][1];
        size_t M = shapes[s][2], N = shapes[s][3], K = shapes[s][4];
        float *A = rand_array(M * K, -1, 1), *B = rand_array(K * N, -1, 1);
        float *C1 = rand_array(M * N, -1, 1), *C2 = alloc_array(M * N, sizeof(float));
        memcpy(C2, C1, M * N * sizeof(float));
        set_threads(1);
        gemm(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 1.0f, C1, N);
        set_threads(2);
        gemm(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 1.0f, C2, N);
        char name[96];
        snprintf(name, sizeof name, "gemm threads 1 vs 2, tA=%d tB=%d M=%zu N=%zu K=%zu", ta, tb, M, N, K);
        check_same(name, C1, C2, M * N);
        free_array(A), free_array(B), free_array(C1), free_array(C2);
    }
#endif
}

/* gemm_dense (a ViT's dense layers): the bias and the GELU applied to each
 * output tile are the same bits as gemm, then the bias added row by row,
 * then gelu_erf over the output -- for register tiles full and partial,
 * one depth block and three (K > GEMM_KC: the epilogue after the last
 * only), and a few columns (N <= 48: gemm's own path, then the passes);
 * with the bias alone, the GELU alone, and neither. And within 1e-5 of the
 * plain products (gemm_ref, the bias, gelu_erf_ref). */
static void test_gemm_dense(void)
{
    static const size_t shapes[][3] = {{42, 64, 100}, {53, 70, 30}, {33, 96, 600}, {29, 40, 20}, {5, 200, 257}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = rand_array(M * K, -1, 1), *w = rand_array(K * N, -1, 1), *b = rand_array(N, -1, 1);
        float *y = rand_array(M * N, -1, 1), *r = rand_array(M * N, -1, 1), *ref = rand_array(M * N, -1, 1);
        for (int mode = 0; mode < 4; mode++) {
            const float *bias = mode & 1 ? b : NULL;
            void (*act)(float *, size_t) = mode & 2 ? gelu_erf : NULL;
            gemm_dense(M, N, K, x, w, bias, act, y);
            gemm(0, 0, M, N, K, x, K, w, N, 0.0f, r, N);
            gemm_ref(0, 0, M, N, K, x, K, w, N, 0.0f, ref, N);
            if (bias) add_bias(r, M, (int)N, bias), add_bias(ref, M, (int)N, bias);
            if (act) gelu_erf(r, M * N), gelu_erf_ref(ref, M * N);
            char name[160];
            snprintf(name, sizeof name, "gemm_dense M=%zu N=%zu K=%zu%s%s bitwise = gemm, then the passes", M, N, K,
                     bias ? " +bias" : "", act ? " +gelu" : "");
            check_same(name, y, r, M * N);
            snprintf(name, sizeof name, "gemm_dense M=%zu N=%zu K=%zu%s%s ~ gemm_ref, the bias, gelu_erf_ref", M, N,
                     K, bias ? " +bias" : "", act ? " +gelu" : "");
            check_close(name, y, ref, M * N, 1e-5);
        }
        free_array(x), free_array(w), free_array(b), free_array(y), free_array(r), free_array(ref);
    }
}

int main(void)
{
    rng_seed(&rng, 20220101);
    test_gemm();
    test_gemm_dense();
    test_gemm_threads();
    test_conv();
    test_elementwise();
    test_pool();
    test_transformer_pointwise();
    test_attention();
    test_resize();
    return check_done();
}
