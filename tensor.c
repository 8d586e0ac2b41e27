/* tensor.c: the numerical kernels of tensor.h -- GEMM, convolution, the
 * per-channel and elementwise ops, pooling, the transformer pieces and the
 * TF1 bilinear resize. Plain C11; OpenMP (when compiled with -fopenmp) only
 * splits independent outputs, so every result is bitwise identical for any
 * thread count. No model code and no allocation of activations here: every
 * caller passes its buffers (scratch sizes come from *_work_size()).
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
 * GEMM, reference: the naive triple loop, kept forever as the yardstick the
 * fast gemm() is tested against. Each C element is accumulated in double,
 * k = 0..K-1 in order, then rounded once to float (so it is slightly more
 * accurate than any float GEMM, not bitwise equal to one). */

void gemm_ref(int transA, int transB, size_t M, size_t N, size_t K,
              const float *A, size_t lda, const float *B, size_t ldb,
              float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double s = 0.0;
            for (size_t p = 0; p < K; p++) {
                float a = transA ? A[p * lda + i] : A[i * lda + p];
                float b = transB ? B[j * ldb + p] : B[p * ldb + j];
                s += (double)a * (double)b;
            }
            float *c = &C[i * ldc + j];
            *c = beta != 0.0f ? (float)((double)*c + s) : (float)s;
        }
}

/* ==========================================================================
 * GEMM, fast: cache-blocked and register-tiled (after BLIS / GotoBLAS), in
 * plain C that gcc -O3 -march=native turns into AVX-512 FMAs. The same
 * machinery computes convolutions (conv2d below) without an im2col matrix.
 *
 *   C is cut into tiles of mc x nc (nc at most GEMM_NC, mc see below); each
 *   tile is one task for one thread. For each depth block of at most GEMM_KC (in
 *   order):
 *     pack op(B)[block, tile columns] into Bp: slivers of GEMM_NR columns,
 *       each stored [kc][NR] (columns past N zero), so that the kernel
 *       reads B with unit stride; the panel, KC x NC, stays in L2;
 *     for each sliver of GEMM_MR rows of op(A):
 *       pack it into Ap, [MR][KC] (rows past M zero), which stays in L1;
 *       for each sliver of Bp, micro-kernel: acc[MR][NR] = sum_p
 *       op(A)[i, p] * Bp[p][j], p in order, then C += acc (C = acc for the
 *       first block when beta = 0).
 *   Two exceptions read op(A) in place: A^T (each p is MR contiguous
 *   floats already; only its last sliver, of fewer than MR rows, is copied,
 *   [kc][MR] zero-padded), and a convolution's sliver of MR input pixels of
 *   one output row (evenly spaced; other slivers are copied like A's rows).
 *
 * Tile height: every tile packs its own B panel, so with a wide panel
 * (large N) tiles are tall, up to GEMM_MC_WIDE rows: the fewer row tiles,
 * the fewer times B is read from memory, which is what limits large
 * products (their A and C tiles stream through). With a narrow panel, up
 * to GEMM_MC rows: the C tile then stays in L2 from one depth block to the
 * next.
 *
 * Every C element is summed the same way whatever the tile sizes,
 * the thread count and M: depth blocks in order, within a block p in order
 * into an accumulator starting at 0. So results are bitwise identical for
 * any number of threads, and a row of C does not depend on which other rows
 * are computed with it (an image's features do not depend on its batch).
 *
 * Multiply-add: fmaf (one rounding) where the C library says it is fast
 * (FP_FAST_FMAF, e.g. -march=native on x86-64), a*b+c otherwise; the
 * project builds with -std=c11, where gcc never fuses a*b+c by itself.
 *
 * Packing memory: one buffer per thread (GEMM_PACK_FLOATS floats, ~1 MiB),
 * allocated on first use in that thread and kept for the life of the thread
 * (_Thread_local), so gemm() does not allocate per call. Should that
 * allocation fail, gemm() falls back to gemm_ref (slow, never wrong).
 *
 * The block sizes may be overridden at compile time (-DGEMM_KC=...) when
 * porting; MR x NR should fill most of the vector registers. */

#ifndef GEMM_MR
#define GEMM_MR 14   /* register tile rows: 14 x 2 accumulator vectors = 28 zmm */
#endif
#ifndef GEMM_NR
#define GEMM_NR 32   /* register tile columns: two 16-float vectors */
#endif
#ifndef GEMM_KC
#define GEMM_KC 256  /* depth block: an A sliver (MR x KC, 14 KiB) stays in L1 */
#endif
#ifndef GEMM_MC
#define GEMM_MC 252  /* tile rows at most (a multiple of MR), for a narrow B panel */
#endif
#ifndef GEMM_MC_WIDE
#define GEMM_MC_WIDE 2016 /* the same for a B panel of GEMM_NC / 2 columns or more */
#endif
#ifndef GEMM_NC
#define GEMM_NC 1024 /* tile columns (a multiple of NR): the B panel, 1 MiB, in L2 */
#endif
#define GEMM_PACK_FLOATS ((size_t)GEMM_KC * (GEMM_NC + GEMM_MR))

/* H2T_NO_FMA (set by PORTABLE=1): a*b+c everywhere, so the portable build
 * writes the same bytes on machines with and without a fast fmaf. */
#if defined(FP_FAST_FMAF) && !defined(H2T_NO_FMA)
#define MADD(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* gcc may prefer 256-bit vectors on some AVX-512 targets; the micro-kernel
 * is written for 512 (NR = 32 = two vectors). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#define KERNEL_ATTR __attribute__((target("prefer-vector-width=512")))
#else
#define KERNEL_ATTR
#endif
/* PREFETCH: into all cache levels; PREFETCH_L2: into L2, not L1 */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define PREFETCH(p) __builtin_prefetch(p)
#define PREFETCH_L2(p) __builtin_prefetch(p, 0, 2)
#else
#define ALWAYS_INLINE inline
#define PREFETCH(p) ((void)0)
#define PREFETCH_L2(p) ((void)0)
#endif

/* The micro-kernel: acc[i][j] = sum_p a[i*rsa + p*csa] * b[p*NR + j] over
 * p = 0..kc-1, then the full MR x NR tile C (+)= acc. The fixed-size loops
 * over i and j are unrolled and vectorized by the compiler, and acc stays in
 * registers. It is instantiated three times below with constant strides. (Partial
 * tiles at the edges of C go through a scratch tile, see gemm_tile.) The C
 * tile is fetched first, so that it arrives while acc is being summed. */
static ALWAYS_INLINE void gemm_kernel(size_t kc, const float *restrict a, size_t rsa, size_t csa,
                                      const float *restrict b, float *restrict c, size_t ldc, int accumulate)
{
    for (int i = 0; i < GEMM_MR; i++) PREFETCH(c + i * ldc), PREFETCH(c + i * ldc + GEMM_NR - 1);
    float acc[GEMM_MR][GEMM_NR] = {{0}};
    for (size_t p = 0; p < kc; p++, a += csa, b += GEMM_NR)
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) acc[i][j] = MADD(a[i * rsa], b[j], acc[i][j]);
    if (accumulate)
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) c[i * ldc + j] += acc[i][j];
    else
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) c[i * ldc + j] = acc[i][j];
}

/* How a sliver of op(A) is laid out, see a_sliver: which kernel reads it */
enum { SLIVER_PACKED, SLIVER_ROWS, SLIVER_COLS };

/* op(A)[i, p] = a[i*KC + p]: a sliver packed by rows (Ap) */
KERNEL_ATTR static void gemm_kernel_apacked(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                            int accumulate)
{
    gemm_kernel(kc, a, GEMM_KC, 1, b, c, ldc, accumulate);
}

/* op(A)[i, p] = a[i*lda + p]: a convolution's input pixels, in place */
KERNEL_ATTR static void gemm_kernel_arows(size_t kc, const float *a, size_t lda, const float *b, float *c,
                                          size_t ldc, int accumulate)
{
    gemm_kernel(kc, a, lda, 1, b, c, ldc, accumulate);
}

/* op(A)[i, p] = a[p*lda + i]: A^T in place, or its last sliver copied (lda = MR) */
KERNEL_ATTR static void gemm_kernel_acols(size_t kc, const float *a, size_t lda, const float *b, float *c,
                                          size_t ldc, int accumulate)
{
    gemm_kernel(kc, a, 1, lda, b, c, ldc, accumulate);
}

static void gemm_kernel_sliver(int kind, size_t kc, const float *a, size_t lda, const float *b, float *c,
                               size_t ldc, int accumulate)
{
    if (kind == SLIVER_PACKED) gemm_kernel_apacked(kc, a, b, c, ldc, accumulate);
    else if (kind == SLIVER_ROWS) gemm_kernel_arows(kc, a, lda, b, c, ldc, accumulate);
    else gemm_kernel_acols(kc, a, lda, b, c, ldc, accumulate);
}

/* The operands of one blocked product C[M,N] (+)= op(A)[M,K] op(B)[K,N].
 * op(A) is a matrix (conv == NULL) or the implicit im2col matrix of a
 * convolution over an input already padded with zeros:
 *   op(A)[(n*OH + oy)*OW + ox, (ky*KW + kx)*C + c] = x[n, oy*s + ky, ox*s + kx, c]
 * For one ky the KW*C columns (kx, c) are contiguous in x, so depth blocks
 * never straddle two values of ky (run = KW*C; run = K for a matrix). */
typedef struct {
    const float *x;            /* [N, Hp, Wp, C], zero-padded */
    int Hp, Wp, C, KW, stride, OH, OW;
} conv_geom;

typedef struct {
    size_t M, N, K, run;
    int transA, transB;
    const float *A, *B;
    size_t lda, ldb;
    const conv_geom *conv;
    float beta;
    float *C;
    size_t ldc;
    int c_trans;               /* the product is C^T: element (i, j) goes to C[j*ldc + i] */
    const conv_epilogue *ep;   /* applied to each finished register tile (not with c_trans) */
} gemm_args;

/* The epilogue on rows [i, i+mr) and columns [j, j+nr) of C (c points at
 * C[i*ldc + j]); res has C's layout. Written as scale_shift, add_inplace
 * and relu write it, so the bits are the same. */
static void epilogue_apply(const conv_epilogue *ep, float *c, size_t ldc, size_t i, size_t j, size_t mr,
                           size_t nr)
{
    const float *restrict sc = ep->scale ? ep->scale + j : NULL, *restrict sh = ep->shift ? ep->shift + j : NULL;
    for (size_t r = 0; r < mr; r++) { /* one short vectorizable loop per step, the row in L1 */
        float *restrict y = c + r * ldc;
        if (sc)
            for (size_t u = 0; u < nr; u++) y[u] = y[u] * sc[u] + sh[u];
        if (ep->res) {
            const float *restrict res = ep->res + (i + r) * ldc + j;
            for (size_t u = 0; u < nr; u++) y[u] += res[u];
        }
        if (ep->relu)
            for (size_t u = 0; u < nr; u++) y[u] = y[u] > 0.0f ? y[u] : 0.0f;
    }
}

/* Where the sliver op(A)[i .. i+MR, p0 .. p0+kc) is: returns a pointer and
 * sets *ld and *kind so that op(A)[i+r, p0+q] is
 *   SLIVER_PACKED  ptr[r*KC + q]  a copy in Ap, [MR][KC], rows past mr zero:
 *                                 rows of A, or a convolution's pixels;
 *   SLIVER_ROWS    ptr[r*ld + q]  a convolution's MR pixels of one output
 *                                 row, evenly spaced: read in place;
 *   SLIVER_COLS    ptr[q*ld + r]  A^T in place, or its last sliver of
 *                                 mr < MR rows copied into Ap as [kc][MR]. */
static const float *a_sliver(const gemm_args *g, size_t i, size_t mr, size_t p0, size_t kc, float *Ap,
                             size_t *ld, int *kind)
{
    const conv_geom *cv = g->conv;
    *ld = GEMM_KC, *kind = SLIVER_PACKED;
    if (!cv && !g->transA) { /* rows of A, contiguous in p */
        for (size_t r = 0; r < GEMM_MR; r++) {
            const float *src = g->A + (i + r) * g->lda + p0;
            float *d = Ap + r * GEMM_KC;
            if (r < mr)
                for (size_t p = 0; p < kc; p++) d[p] = src[p];
            else
                for (size_t p = 0; p < kc; p++) d[p] = 0.0f;
        }
        /* the next sliver's rows, into L2: each row is a short run in
         * another page, too short for the hardware prefetcher to catch */
        for (size_t r = i + GEMM_MR; r < i + 2 * GEMM_MR && r < g->M; r++)
            for (size_t p = 0; p < kc; p += 16) PREFETCH_L2(g->A + r * g->lda + p0 + p);
        return Ap;
    }
    if (!cv) { /* A^T: op(A)[i+r, p0+q] = A[(p0+q)*lda + i + r] */
        *kind = SLIVER_COLS;
        if (mr == GEMM_MR) {
            *ld = g->lda;
            /* each p is another row of A, often another page: too many
             * streams for the hardware prefetcher, so fetch the next
             * sliver's floats ahead (2.5x faster on the lasso's X^T G) */
            for (size_t p = 0; p < kc; p++) PREFETCH(g->A + (p0 + p) * g->lda + i + GEMM_MR);
            return g->A + p0 * g->lda + i;
        }
        for (size_t p = 0; p < kc; p++)
            for (size_t r = 0; r < GEMM_MR; r++)
                Ap[p * GEMM_MR + r] = r < mr ? g->A[(p0 + p) * g->lda + i + r] : 0.0f;
        *ld = GEMM_MR;
        return Ap;
    }
    /* convolution: row i is output pixel (n, oy, ox); column p0 is (ky, q) */
    const size_t ohw = (size_t)cv->OH * cv->OW, ky = p0 / g->run, q = p0 % g->run;
    size_t n = i / ohw, oy = i % ohw / cv->OW, ox = i % cv->OW;
#define PIXEL(n_, oy_, ox_) \
    (cv->x + (((n_) * cv->Hp + (oy_) * cv->stride + ky) * cv->Wp + (ox_) * cv->stride) * cv->C + q)
    /* in place (no copy: often a depth block is short, KW*C, the copy would
     * cost as much as the product) */
    if (mr == GEMM_MR && ox + GEMM_MR <= (size_t)cv->OW) {
        *ld = (size_t)cv->stride * cv->C, *kind = SLIVER_ROWS;
        return PIXEL(n, oy, ox);
    }
    for (size_t r = 0; r < GEMM_MR; r++) {
        float *d = Ap + r * GEMM_KC;
        if (r < mr) {
            const float *src = PIXEL(n, oy, ox);
            for (size_t p = 0; p < kc; p++) d[p] = src[p];
            if (++ox == (size_t)cv->OW) { /* next pixel: the sliver may wrap rows and images */
                ox = 0;
                if (++oy == (size_t)cv->OH) oy = 0, n++;
            }
        } else {
            for (size_t p = 0; p < kc; p++) d[p] = 0.0f;
        }
    }
#undef PIXEL
    return Ap;
}

/* Bp[NR slivers][kc][NR] = op(B)[p0 .. p0+kc, j0 .. j0+nc), columns past nc zero. */
static void pack_b(int transB, const float *B, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc, float *Bp)
{
    const size_t full = nc / GEMM_NR * GEMM_NR, rest = nc - full; /* columns in full slivers, others */
    if (!transB) { /* op(B)[p,j] = B[p,j]: row by row, each read once, in order */
        for (size_t p = 0; p < kc; p++) {
            const float *src = B + (p0 + p) * ldb + j0;
            float *d = Bp + p * GEMM_NR;
            for (size_t jr = 0; jr < full; jr += GEMM_NR, d += kc * GEMM_NR)
                for (size_t j = 0; j < GEMM_NR; j++) d[j] = src[jr + j];
            if (rest) {
                for (size_t j = 0; j < rest; j++) d[j] = src[full + j];
                for (size_t j = rest; j < GEMM_NR; j++) d[j] = 0.0f;
            }
        }
        return;
    }
    /* op(B)[p,j] = B[j,p]: each column j contiguous in p */
    for (size_t jr = 0; jr < nc; jr += GEMM_NR, Bp += kc * GEMM_NR) {
        const size_t nr = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
        for (size_t j = 0; j < GEMM_NR; j++) {
            float *d = Bp + j;
            if (j < nr) {
                const float *src = B + (j0 + jr + j) * ldb + p0;
                for (size_t p = 0; p < kc; p++) d[p * GEMM_NR] = src[p];
            } else {
                for (size_t p = 0; p < kc; p++) d[p * GEMM_NR] = 0.0f;
            }
        }
    }
}

/* This thread's packing buffer (GEMM_PACK_FLOATS), or NULL if it cannot be had. */
static float *gemm_pack_buffer(void)
{
    static _Thread_local float *buf;
    if (!buf) buf = alloc_array(GEMM_PACK_FLOATS, sizeof(float));
    return buf;
}

/* One tile: C[i0 .. i0+mc, j0 .. j0+nc) of the product. Bp: the packing buffer. */
static void gemm_tile(const gemm_args *g, size_t i0, size_t mc, size_t j0, size_t nc, float *Bp)
{
    float *Ap = Bp + (size_t)GEMM_KC * GEMM_NC; /* [MR][KC]: a packed A sliver */
    float tile[GEMM_MR * GEMM_NR];               /* a partial tile of C */
    for (size_t p0 = 0; p0 < g->K;) {
        const size_t left = g->run - p0 % g->run, kc = left < GEMM_KC ? left : GEMM_KC;
        const int accumulate = p0 > 0 || g->beta != 0.0f;
        const conv_epilogue *ep = p0 + kc == g->K ? g->ep : NULL; /* after the last depth block */
        pack_b(g->transB, g->B, g->ldb, p0, kc, j0, nc, Bp);
        for (size_t ir = 0; ir < mc; ir += GEMM_MR) {
            const size_t mr = mc - ir < GEMM_MR ? mc - ir : GEMM_MR, i = i0 + ir;
            size_t la;
            int kind;
            const float *a = a_sliver(g, i, mr, p0, kc, Ap, &la, &kind);
            for (size_t jr = 0; jr < nc; jr += GEMM_NR) {
                const size_t nr = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
                const float *b = Bp + jr * kc;
                /* element (r, u) of the tile is at c + r*rs + u*cs */
                const size_t j = j0 + jr, rs = g->c_trans ? 1 : g->ldc, cs = g->c_trans ? g->ldc : 1;
                float *c = g->C + (g->c_trans ? j * g->ldc + i : i * g->ldc + j);
                if (mr == GEMM_MR && nr == GEMM_NR && !g->c_trans) { /* straight into C */
                    gemm_kernel_sliver(kind, kc, a, la, b, c, g->ldc, accumulate);
                    if (ep) epilogue_apply(ep, c, g->ldc, i, j, mr, nr);
                    continue;
                }
                gemm_kernel_sliver(kind, kc, a, la, b, tile, GEMM_NR, 0);
                for (size_t r = 0; r < mr; r++) /* C (+)= the tile's valid mr x nr part */
                    for (size_t u = 0; u < nr; u++) {
                        float *cc = c + r * rs + u * cs;
                        *cc = accumulate ? *cc + tile[r * GEMM_NR + u] : tile[r * GEMM_NR + u];
                    }
                if (ep) epilogue_apply(ep, c, g->ldc, i, j, mr, nr);
            }
        }
        p0 += kc;
    }
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
static size_t ceil_div(size_t x, size_t m) { return (x + m - 1) / m; }

/* The product described by g, split into tiles over the threads. Returns -1
 * (computing nothing) if a packing buffer cannot be allocated. */
static int gemm_blocked(const gemm_args *g)
{
    const size_t M = g->M, N = g->N;
    /* Tiles: tm x tn of them, at most GEMM_MC x GEMM_NC each. With several
     * threads, cut more (at least 3 per thread for balance) while a tile
     * keeps at least 4 slivers each way: every tile packs its own B panel. */
    int threads = 1;
#ifdef _OPENMP
    /* no threads of our own inside a parallel region, even an inactive one
     * (a nested team would start new threads on every call) */
    if (omp_get_level() == 0) threads = omp_get_max_threads();
#endif
    size_t tn = ceil_div(N, GEMM_NC), tm = ceil_div(M, ceil_div(N, tn) >= GEMM_NC / 2 ? GEMM_MC_WIDE : GEMM_MC);
    while (threads > 1 && tm * tn < (size_t)threads * 3) {
        if (ceil_div(N, tn + 1) >= 4 * GEMM_NR && ceil_div(N, tn) >= ceil_div(M, tm)) tn++;
        else if (ceil_div(M, tm + 1) >= 4 * GEMM_MR) tm++;
        else break;
    }
    const size_t mc = round_up(ceil_div(M, tm), GEMM_MR), nc = round_up(ceil_div(N, tn), GEMM_NR);
    tm = ceil_div(M, mc), tn = ceil_div(N, nc);
    const long tiles = (long)(tm * tn);
    int failed = 0;
    /* (threads only for more than ~0.4 MFLOP) */
#pragma omp parallel if (threads > 1 && tiles > 1 && (double)M * N * g->K > 2e5) reduction(| : failed)
    {
        float *buf = gemm_pack_buffer();
        if (!buf) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < tiles; t++) {
            const size_t i0 = (size_t)t / tn * mc, j0 = (size_t)t % tn * nc;
            if (buf) gemm_tile(g, i0, M - i0 < mc ? M - i0 : mc, j0, N - j0 < nc ? N - j0 : nc, buf);
        }
    }
    return failed ? -1 : 0;
}

void gemm(int transA, int transB, size_t M, size_t N, size_t K,
          const float *A, size_t lda, const float *B, size_t ldb,
          float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0) return;
    if (K == 0) { /* C = beta * C with beta 0 or 1 */
        if (beta == 0.0f)
            for (size_t i = 0; i < M; i++) memset(C + i * ldc, 0, N * sizeof(float));
        return;
    }
    gemm_args g = {.M = M, .N = N, .K = K, .run = K, .transA = transA, .transB = transB, .A = A, .B = B,
                   .lda = lda, .ldb = ldb, .beta = beta, .C = C, .ldc = ldc};
    /* A few columns and many rows of A^T (the lasso's X^T G with few
     * classes): padding N up to NR would waste most of the work, so compute
     * C^T = op(B)^T A instead, where A's rows become the packed, contiguous
     * B side. Each element gets the very same sum (same products, same
     * order), so the result is bitwise the same either way. */
    if (transA && N <= GEMM_NR / 2 && M >= 4 * GEMM_NR) {
        gemm_args t = {.M = N, .N = M, .K = K, .run = K, .transA = !transB, .transB = 0, .A = B, .B = A,
                       .lda = ldb, .ldb = lda, .beta = beta, .C = C, .ldc = ldc, .c_trans = 1};
        g = t;
    }
    if (gemm_blocked(&g)) gemm_ref(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* ==========================================================================
 * Convolution. y[N,OH,OW,Cout] = x[N,H,W,Cin] (*) w[KH,KW,Cin,Cout], zero
 * padding pad_t/pad_b rows above/below and pad_l/pad_r columns left/right:
 *   y[n,oy,ox,co] = sum_{ky,kx,ci} x[n, oy*s - pad_t + ky, ox*s - pad_l + kx, ci]
 *                                  * w[ky,kx,ci,co]
 * This is the GEMM  X[N*OH*OW, KH*KW*Cin] w[KH*KW*Cin, Cout]  with X the
 * im2col matrix, X[(n*OH + oy)*OW + ox, (ky*KW + kx)*Cin + ci]. X is never
 * built: the blocked GEMM reads its rows straight from the input (see
 * conv_geom). A 1x1 stride-1 unpadded conv is a plain gemm on x itself.
 * Padded convs first copy x into `work` with its zero border,
 * [N, H + pad_t + pad_b, W + pad_l + pad_r, Cin]. */

int conv_out_h(const conv_spec *s, int H) { return (H + s->pad_t + s->pad_b - s->kh) / s->stride + 1; }
int conv_out_w(const conv_spec *s, int W) { return (W + s->pad_l + s->pad_r - s->kw) / s->stride + 1; }

static int conv_is_padded(const conv_spec *s) { return s->pad_t || s->pad_l || s->pad_b || s->pad_r; }

size_t conv2d_work_size(const conv_spec *s, int N, int H, int W, int Cin)
{
    if (!conv_is_padded(s)) return 0;
    return (size_t)N * (H + s->pad_t + s->pad_b) * (W + s->pad_l + s->pad_r) * Cin;
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
    conv2d_ep(x, N, H, W, Cin, w, Cout, s, y, work, NULL);
}

void conv2d_ep(const float *x, int N, int H, int W, int Cin, const float *w, int Cout, const conv_spec *s,
               float *y, float *work, const conv_epilogue *ep)
{
    const int OH = conv_out_h(s, H), OW = conv_out_w(s, W);
    const size_t M = (size_t)N * OH * OW, K = (size_t)s->kh * s->kw * Cin;
    if (M == 0 || Cout == 0) return;
    gemm_args g = {.M = M, .N = (size_t)Cout, .K = K, .run = (size_t)s->kw * Cin, .B = w, .ldb = (size_t)Cout,
                   .beta = 0.0f, .C = y, .ldc = (size_t)Cout, .ep = ep};
    conv_geom cv;
    int tiled = 0; /* the blocked GEMM ran, and applied the epilogue tile by tile */
    if (K == 0) {
        memset(y, 0, M * (size_t)Cout * sizeof(float));
    } else if (s->kh == 1 && s->kw == 1 && s->stride == 1 && !conv_is_padded(s)) {
        g.A = x, g.lda = (size_t)Cin; /* a plain GEMM on x itself */
        if (!(tiled = gemm_blocked(&g) == 0))
            gemm_ref(0, 0, M, (size_t)Cout, K, x, (size_t)Cin, w, (size_t)Cout, 0.0f, y, (size_t)Cout);
    } else {
        const float *xp = x;
        if (conv_is_padded(s)) {
            pad_input(x, N, H, W, Cin, s, work);
            xp = work;
        }
        cv = (conv_geom){xp, H + s->pad_t + s->pad_b, W + s->pad_l + s->pad_r, Cin, s->kw, s->stride, OH, OW};
        g.conv = &cv;
        if (!(tiled = gemm_blocked(&g) == 0)) conv2d_ref(x, N, H, W, Cin, w, Cout, s, y);
    }
    if (!tiled && ep) /* K == 0 or the reference ran: one pass over y */
        epilogue_apply(ep, y, (size_t)Cout, 0, 0, M, (size_t)Cout);
}

/* Reference: the definition above, literally, accumulated in double. */
void conv2d_ref(const float *x, int N, int H, int W, int Cin,
                const float *w, int Cout, const conv_spec *s, float *y)
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
                    y[(((size_t)n * OH + oy) * OW + ox) * Cout + co] = (float)acc;
                }
}

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
 * Transformer pieces */

/* ---- sums, exp and GELU that vectorize ------------------------------------
 * A double sum over a row is a chain of dependent adds (4 cycles each);
 * sum8 keeps 8 partial sums, element j going to sum j % 8, and adds them in
 * a fixed tree: the same order on every run and thread count, and the
 * compiler can do the 8 lanes at once.
 *
 * libm's expf, erff and tanhf are scalar calls (10-40 ns each here) and a
 * ViT forward makes ~10^8 of them per batch, more time than its matrix
 * products take. exp_f and the GELUs below are branch-free (selects, no
 * calls), so gcc vectorizes the loops that use them. They agree with the
 * double-precision functions to a few units in the last place (tested in
 * test_tensor.c). The polynomial coefficients are near-minimax
 * least-squares fits made in double precision (numpy):
 *   exp:  e^r on |r| <= ln2/2, degree 6          (relative error 3e-9)
 *   erf:  erf(z)/z in z^2 on |z| <= 1, degree 6  (relative error 1.2e-8)
 *   erfc: log erfc(a) on 1 <= a <= 4 in t = (a - 2.5) / 1.5, degree 9
 *         (absolute error 1.5e-8) */

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

/* e^x: x = n ln2 + r, |r| <= ln2/2 (ln2 in two parts, so n*ln2_hi is
 * exact), e^x = 2^n p(r). Below -87 the result is 0 (true value < 1.7e-38),
 * above 88 it is e^88; NaN stays NaN. */
static inline float exp_f(float x)
{
    float xc = x > -87.0f ? x : -87.0f; /* (NaN goes to -87 here, see the end) */
    xc = xc < 88.0f ? xc : 88.0f;
    const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    float p = 1.39804623933778e-03f;
    p = MADD(p, r, 8.37460908911345e-03f);
    p = MADD(p, r, 4.166548665192091e-02f);
    p = MADD(p, r, 1.6666422727168365e-01f);
    p = MADD(p, r, 5.000000586102799e-01f);
    p = MADD(p, r, 1.0000000357800687f);
    p = MADD(p, r, 9.999999993671758e-01f);
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* 2^n, n in [-126, 127] */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x == x ? (x < -87.0f ? 0.0f : p * two_n) : x;
}

/* 0.5 x (1 + erf(x / sqrt 2)). With z = x / sqrt 2, 1 + erf(z) is
 *   1 + z P(z^2)            |z| < 1
 *   2 - erfc(z)             z >= 1   (erfc(z) = e^Q(t), z capped at 4)
 *   erfc(-z)                z <= -1  (no cancellation; 0 below -4)  */
static inline float gelu_erf_one(float x)
{
    const float z = x * 0.70710678118654752f, a = fabsf(z), s = z * z;
    float p = 7.5057904737760306e-05f;
    p = MADD(p, s, -7.8961427313196941e-04f);
    p = MADD(p, s, 5.1739228546674731e-03f);
    p = MADD(p, s, -2.6845050885694791e-02f);
    p = MADD(p, s, 1.1283324876106141e-01f);
    p = MADD(p, s, -3.7612592439453663e-01f);
    p = MADD(p, s, 1.1283791533061507f);
    const float t = ((a < 4.0f ? a : 4.0f) - 2.5f) * 0.66666667f;
    float q = -1.2885247584470960e-06f;
    q = MADD(q, t, 4.1688987545640543e-05f);
    q = MADD(q, t, -2.2445624872968750e-04f);
    q = MADD(q, t, 8.8094775198621633e-04f);
    q = MADD(q, t, -3.1927251660739397e-03f);
    q = MADD(q, t, 1.0961500577824523e-02f);
    q = MADD(q, t, -3.6646854711009258e-02f);
    q = MADD(q, t, -2.1237607633665863f);
    q = MADD(q, t, -8.0290210712463743f);
    q = MADD(q, t, -7.8068152748954311f);
    const float ec = exp_f(q);
    const float one_plus_erf = a < 1.0f ? 1.0f + z * p : z > 0.0f ? 2.0f - ec : z < -4.0f ? 0.0f : ec;
    return 0.5f * x * one_plus_erf;
}

/* 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), written as the
 * identical x / (1 + e^(-2u)) (1 + tanh u = 2 / (1 + e^(-2u))), which has no
 * cancellation for negative x. */
static inline float gelu_tanh_one(float x)
{
    const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return x / (1.0f + exp_f(-2.0f * u));
}

/* Per row: mean and biased variance (two passes, in double, sum8), then
 * y = (x - mean) * rstd * gamma + beta in float, rstd = 1 / sqrt(var + eps). */
void layernorm(const float *x, size_t rows, int C, const float *gamma, const float *beta,
               float eps, float *y)
{
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

void gelu_erf(float *x, size_t n)
{
    const long nl = (long)n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN / 4)
    for (long i = 0; i < nl; i++) x[i] = gelu_erf_one(x[i]);
}

void gelu_tanh(float *x, size_t n)
{
    const long nl = (long)n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN / 4)
    for (long i = 0; i < nl; i++) x[i] = gelu_tanh_one(x[i]);
}

void tanh_inplace(float *x, size_t n)
{
    const long nl = (long)n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN / 8)
    for (long i = 0; i < nl; i++) x[i] = tanhf(x[i]);
}

/* One row: e_j = exp(x_j - max x), their sum in double (sum8), x_j = e_j * (1 / sum). */
static void softmax_row(float *x, size_t cols)
{
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
    return (size_t)N * heads * T * T;
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
