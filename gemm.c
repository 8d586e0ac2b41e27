/* gemm.c: the matrix products of gemm.h -- gemm_ref, the naive triple loop
 * kept as the yardstick, and gemm, the cache-blocked, packed,
 * register-tiled product after BLIS / GotoBLAS, with its own path for
 * products with few columns (gemm_narrow) -- and gemm_conv, which runs
 * the same blocked machinery over a convolution's implicit im2col matrix.
 * Not here: convolution shapes, padding and the plain convolution
 * (tensor.c), or any other kernel. Plain C11; OpenMP (when compiled with
 * -fopenmp) splits independent tiles of C only, so every result is bitwise
 * identical for any thread count. Calls nothing in tensor.c. */
#include "gemm.h"

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
 * machinery computes convolutions (gemm_conv, at the end of this file)
 * without an im2col matrix.
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
 * Multiply-add: MADD (gemm.h), fmaf where the C library says it is fast.
 *
 * Packing memory: one buffer per thread (GEMM_PACK_FLOATS floats, ~1 MiB),
 * allocated on first use in that thread and kept for the life of the thread
 * (PER_THREAD), so gemm() does not allocate per call. Should that
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

/* gcc may prefer 256-bit vectors on some AVX-512 targets; the micro-kernel
 * is written for 512 (NR = 32 = two vectors). noinline: inlined into its
 * caller, a kernel loses the attribute (gcc 12 with -march=native on a
 * Rocket Lake Xeon then kept acc in memory in 256-bit halves: the ResNet-50
 * forward ran at 14 instead of 37 img/s). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#define KERNEL_ATTR __attribute__((target("prefer-vector-width=512"), noinline))
#else
#define KERNEL_ATTR
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define NOIPA __attribute__((noipa))
#else
#define NOIPA
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

/* The epilogue of one full register tile (conv_epilogue, gemm.h), its
 * pointers already moved to the tile: scale and shift at its first column,
 * res at its first element (res has C's layout, so row r is res + r*ldc). */
typedef struct {
    const float *scale, *shift, *res;
    int relu;
} tile_epilogue;

/* The micro-kernel: acc[i][j] = sum_p a[i*rsa + p*csa] * b[p*NR + j] over
 * p = 0..kc-1 -- or over nseg segments of kc values, segment s at
 * a + s*sstride, b read on (a convolution's pixels read in place over
 * several rows of its window) -- then the full MR x NR tile C (+)= acc,
 * and with ep its epilogue before the tile is stored (the operations of
 * scale_shift, add_inplace and relu, in their order: the same bits as
 * those passes). The fixed-size loops over i and j are unrolled and
 * vectorized by the compiler, and acc stays in registers. It is
 * instantiated twice below with constant strides. (Partial tiles at the
 * edges of C go through a scratch tile, see gemm_tile.) The C tile and the
 * residual tile are fetched first, so that they arrive while acc is being
 * summed. */
static ALWAYS_INLINE void gemm_kernel(size_t kc, size_t nseg, size_t sstride, const float *restrict a,
                                      size_t rsa, size_t csa, const float *restrict b, float *restrict c,
                                      size_t ldc, int accumulate, const tile_epilogue *ep)
{
    for (int i = 0; i < GEMM_MR; i++) PREFETCH(c + i * ldc), PREFETCH(c + i * ldc + GEMM_NR - 1);
    if (ep && ep->res)
        for (int i = 0; i < GEMM_MR; i++) PREFETCH(ep->res + i * ldc), PREFETCH(ep->res + i * ldc + GEMM_NR - 1);
    float acc[GEMM_MR][GEMM_NR] = {{0}};
    for (size_t s = 0; s < nseg; s++) {
        const float *restrict as = a + s * sstride;
        for (size_t p = 0; p < kc; p++, as += csa, b += GEMM_NR)
            for (int i = 0; i < GEMM_MR; i++)
                for (int j = 0; j < GEMM_NR; j++) acc[i][j] = MADD(as[i * rsa], b[j], acc[i][j]);
    }
    if (accumulate)
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) acc[i][j] += c[i * ldc + j];
    if (ep) {
        const float *restrict sc = ep->scale, *restrict sh = ep->shift, *restrict res = ep->res;
        if (sc)
            for (int i = 0; i < GEMM_MR; i++)
                for (int j = 0; j < GEMM_NR; j++) acc[i][j] = acc[i][j] * sc[j] + sh[j];
        else if (sh)
            for (int i = 0; i < GEMM_MR; i++)
                for (int j = 0; j < GEMM_NR; j++) acc[i][j] += sh[j];
        if (res)
            for (int i = 0; i < GEMM_MR; i++)
                for (int j = 0; j < GEMM_NR; j++) acc[i][j] += res[i * ldc + j];
        if (ep->relu)
            for (int i = 0; i < GEMM_MR; i++)
                for (int j = 0; j < GEMM_NR; j++) acc[i][j] = acc[i][j] > 0.0f ? acc[i][j] : 0.0f;
    }
    for (int i = 0; i < GEMM_MR; i++)
        for (int j = 0; j < GEMM_NR; j++) c[i * ldc + j] = acc[i][j];
}

/* How a sliver of op(A) is laid out, see a_sliver: which kernel reads it */
enum { SLIVER_ROWS, SLIVER_COLS };

/* op(A)[i, p] = a[i*lda + p]: a sliver packed by rows (Ap, lda = KC) or a
 * convolution's input pixels in place. (An instance of its own for the
 * packed sliver, with the constant stride KC, made gcc 12 keep acc in
 * memory: 3x slower.) */
KERNEL_ATTR static void gemm_kernel_arows(size_t kc, size_t nseg, size_t sstride, const float *a, size_t lda,
                                          const float *b, float *c, size_t ldc, int accumulate,
                                          const tile_epilogue *ep)
{
    gemm_kernel(kc, nseg, sstride, a, lda, 1, b, c, ldc, accumulate, ep);
}

/* op(A)[i, p] = a[p*lda + i]: A^T in place, or its last sliver copied (lda = MR) */
KERNEL_ATTR static void gemm_kernel_acols(size_t kc, const float *a, size_t lda, const float *b, float *c,
                                          size_t ldc, int accumulate, const tile_epilogue *ep)
{
    gemm_kernel(kc, 1, 0, a, 1, lda, b, c, ldc, accumulate, ep);
}

/* A sliver of op(A), rows [i, i+MR) and a depth block [p0, p0+kc), as
 * a_sliver finds it: op(A)[i+r, p0+q] is
 *   SLIVER_ROWS  a[r*ld + s*sstride + u], q = s*(kc/nseg) + u: nseg = 1
 *                for rows packed in Ap (ld = KC) and for a convolution's
 *                pixels read in place within one row of its window; a
 *                segment per row of the window (sstride apart in the
 *                input) for its pixels read in place across the rows;
 *   SLIVER_COLS  a[q*ld + r]: A^T in place, or its last sliver of mr < MR
 *                rows copied into Ap as [kc][MR]. */
typedef struct {
    const float *a;
    size_t ld, nseg, sstride;
    int kind;
} sliver;

static void gemm_kernel_sliver(const sliver *s, size_t kc, const float *b, float *c, size_t ldc, int accumulate,
                               const tile_epilogue *ep)
{
    if (s->kind == SLIVER_ROWS) gemm_kernel_arows(kc / s->nseg, s->nseg, s->sstride, s->a, s->ld, b, c, ldc, accumulate, ep);
    else gemm_kernel_acols(kc, s->a, s->ld, b, c, ldc, accumulate, ep);
}

/* The operands of one blocked product C[M,N] (+)= op(A)[M,K] op(B)[K,N].
 * op(A) is a matrix (conv == NULL) or the implicit im2col matrix of a
 * convolution over an input already padded with zeros (conv_geom, gemm.h):
 *   op(A)[(n*OH + oy)*OW + ox, (ky*KW + kx)*C + c] = x[n, oy*s + ky, ox*s + kx, c]
 * For one ky the KW*C columns (kx, c) are contiguous in x, so depth blocks
 * stay within one value of ky (run = KW*C), unless the whole window fits
 * in one depth block (run = K, as for a matrix). */
typedef struct {
    size_t M, N, K, run;
    int transA, transB;
    const float *A, *B;
    size_t lda, ldb;
    const float *Bpk;          /* op(B) packed whole (gemm_pack), or NULL: packed per tile */
    const conv_geom *conv;
    float beta;
    float *C;
    size_t ldc;
    const conv_epilogue *ep;   /* applied to each finished register tile */
} gemm_args;

/* A partial tile, rows [i, i+mr) and columns [j, j+nr) of C (c points at
 * C[i*ldc + j]), from the kernel's scratch tile: C (+)= tile, then the
 * epilogue, each element in a register and stored once (ep->res may be C
 * itself). The kernel's operations, in their order: the same bits. */
static void finish_partial(const conv_epilogue *ep, const float *tile, int accumulate, float *c, size_t ldc,
                           size_t i, size_t j, size_t mr, size_t nr)
{
    for (size_t r = 0; r < mr; r++)
        for (size_t u = 0; u < nr; u++) {
            float *cc = c + r * ldc + u, y = accumulate ? *cc + tile[r * GEMM_NR + u] : tile[r * GEMM_NR + u];
            if (ep && ep->scale) y = y * ep->scale[j + u] + ep->shift[j + u];
            else if (ep && ep->shift) y += ep->shift[j + u];
            if (ep && ep->res) y += ep->res[(i + r) * ldc + j + u];
            if (ep && ep->relu) y = y > 0.0f ? y : 0.0f;
            *cc = y;
        }
    for (size_t r = 0; ep && ep->act && r < mr; r++) ep->act(c + r * ldc, nr);
}

/* Where the sliver op(A)[i .. i+MR, p0 .. p0+kc) is (sliver, above): in
 * place, or copied into Ap -- rows of A, [MR][KC], rows past mr zero; the
 * last sliver of A^T, [kc][MR]; a convolution's pixels, like rows. */
static sliver a_sliver(const gemm_args *g, size_t i, size_t mr, size_t p0, size_t kc, float *Ap)
{
    const conv_geom *cv = g->conv;
    sliver s = {Ap, GEMM_KC, 1, 0, SLIVER_ROWS};
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
        return s;
    }
    if (!cv) { /* A^T: op(A)[i+r, p0+q] = A[(p0+q)*lda + i + r] */
        s.kind = SLIVER_COLS;
        if (mr == GEMM_MR) {
            /* each p is another row of A, often another page: too many
             * streams for the hardware prefetcher, so fetch the next
             * sliver's floats ahead (2.5x faster on the lasso's X^T G) */
            for (size_t p = 0; p < kc; p++) PREFETCH(g->A + (p0 + p) * g->lda + i + GEMM_MR);
            s.a = g->A + p0 * g->lda + i, s.ld = g->lda;
            return s;
        }
        for (size_t p = 0; p < kc; p++)
            for (size_t r = 0; r < GEMM_MR; r++)
                Ap[p * GEMM_MR + r] = r < mr ? g->A[(p0 + p) * g->lda + i + r] : 0.0f;
        s.ld = GEMM_MR;
        return s;
    }
    /* convolution: row i is output pixel (n, oy, ox); column p is (ky, q),
     * q < wrun = KW*C, the values of one row of the window, contiguous in x */
    const size_t ohw = (size_t)cv->OH * cv->OW, wrun = (size_t)cv->KW * cv->C, ky0 = p0 / wrun, q0 = p0 % wrun;
    size_t n = i / ohw, oy = i % ohw / cv->OW, ox = i % cv->OW;
#define PIXEL(n_, oy_, ox_, ky_) \
    (cv->x + (((n_) * cv->Hp + (oy_) * cv->stride + (ky_)) * cv->Wp + (ox_) * cv->stride) * cv->C)
    /* in place (no copy: often a depth block is short, KW*C, the copy would
     * cost as much as the product) when the MR pixels are in one output
     * row: evenly spaced, ld apart; a block across rows of the window
     * (whole rows: gemm_conv) as one segment per row, a row of x apart */
    if (mr == GEMM_MR && ox + GEMM_MR <= (size_t)cv->OW) {
        s.a = PIXEL(n, oy, ox, ky0) + q0, s.ld = (size_t)cv->stride * cv->C;
        if (q0 + kc > wrun) s.nseg = kc / wrun, s.sstride = (size_t)cv->Wp * cv->C;
        return s;
    }
    for (size_t r = 0; r < GEMM_MR; r++) {
        float *d = Ap + r * GEMM_KC;
        if (r < mr) {
            /* the block's values of this pixel, row of the window by row */
            for (size_t p = 0, ky = ky0, q = q0; p < kc; ky++, q = 0) {
                const float *src = PIXEL(n, oy, ox, ky) + q;
                const size_t len = wrun - q < kc - p ? wrun - q : kc - p;
                for (size_t u = 0; u < len; u++) d[p + u] = src[u];
                p += len;
            }
            if (++ox == (size_t)cv->OW) { /* next pixel: the sliver may wrap rows and images */
                ox = 0;
                if (++oy == (size_t)cv->OH) oy = 0, n++;
            }
        } else {
            for (size_t p = 0; p < kc; p++) d[p] = 0.0f;
        }
    }
#undef PIXEL
    return s;
}

/* Bp[NR slivers][kc][NR] = op(B)[p0 .. p0+kc, j0 .. j0+nc), columns past nc zero. */
static void pack_b(int transB, const float *B, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc, float *Bp)
{
    const size_t full = nc / GEMM_NR * GEMM_NR, rest = nc - full; /* columns in full slivers, others */
    if (!transB) { /* op(B)[p,j] = B[p,j]: sliver by sliver, each written in order (row by row, the
                    * writes of one row would land kc*NR floats apart, in the same cache sets) */
        for (size_t jr = 0; jr < full; jr += GEMM_NR, Bp += kc * GEMM_NR)
            for (size_t p = 0; p < kc; p++) {
                const float *src = B + (p0 + p) * ldb + j0 + jr;
                for (size_t j = 0; j < GEMM_NR; j++) Bp[p * GEMM_NR + j] = src[j];
            }
        if (rest)
            for (size_t p = 0; p < kc; p++) {
                const float *src = B + (p0 + p) * ldb + j0 + full;
                for (size_t j = 0; j < GEMM_NR; j++) Bp[p * GEMM_NR + j] = j < rest ? src[j] : 0.0f;
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

size_t gemm_packed_size(size_t K, size_t N) { return (N + GEMM_NR - 1) / GEMM_NR * GEMM_NR * K; }

/* pack_b over the whole depth and width: sliver s of B is Bpk[s*K*NR ..],
 * [K][NR], so a depth block [p0, p0+kc) of it is what pack_b would make. */
void gemm_pack(const float *B, size_t K, size_t N, float *Bpk) { pack_b(0, B, N, 0, K, 0, N, Bpk); }

/* One packing buffer per OpenMP thread. Without OpenMP the program has one
 * thread, and compilers without C11 thread storage (tcc) need none. */
#ifdef _OPENMP
#define PER_THREAD _Thread_local
#else
#define PER_THREAD
#endif

/* This thread's packing buffer (GEMM_PACK_FLOATS), or NULL if it cannot be had. */
static float *gemm_pack_buffer(void)
{
    static PER_THREAD float *buf;
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
        if (!g->Bpk) pack_b(g->transB, g->B, g->ldb, p0, kc, j0, nc, Bp);
        for (size_t ir = 0; ir < mc; ir += GEMM_MR) {
            const size_t mr = mc - ir < GEMM_MR ? mc - ir : GEMM_MR, i = i0 + ir;
            const sliver a = a_sliver(g, i, mr, p0, kc, Ap);
            for (size_t jr = 0; jr < nc; jr += GEMM_NR) {
                const size_t nr = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
                const float *b = g->Bpk ? g->Bpk + ((j0 + jr) / GEMM_NR * g->K + p0) * GEMM_NR : Bp + jr * kc;
                const size_t j = j0 + jr;
                float *c = g->C + i * g->ldc + j;
                if (mr == GEMM_MR && nr == GEMM_NR) { /* straight into C, the epilogue on the way */
                    const tile_epilogue te = {ep && ep->scale ? ep->scale + j : NULL,
                                              ep && ep->shift ? ep->shift + j : NULL,
                                              ep && ep->res ? ep->res + i * g->ldc + j : NULL, ep && ep->relu};
                    gemm_kernel_sliver(&a, kc, b, c, g->ldc, accumulate, ep ? &te : NULL);
                    for (size_t r = 0; ep && ep->act && r < GEMM_MR; r++) ep->act(c + r * g->ldc, GEMM_NR);
                    continue;
                }
                gemm_kernel_sliver(&a, kc, b, tile, GEMM_NR, 0, NULL);
                finish_partial(ep, tile, accumulate, c, g->ldc, i, j, mr, nr);
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
    /* Columns: tn tiles of nc (the last one narrower). Rows: the S slivers
     * of MR rows dealt out to tm tiles, S / tm each or one more, tm grown
     * until the threads get the same number of tiles (7 tiles on 2 threads
     * would leave one thread idle for a seventh of the product). */
    const size_t nc = round_up(ceil_div(N, tn), GEMM_NR), S = ceil_div(M, GEMM_MR);
    tn = ceil_div(N, nc);
    if (tm > S) tm = S;
    while (threads > 1 && (tm * tn) % (size_t)threads != 0 && tm < S) tm++;
    const long tiles = (long)(tm * tn);
    int failed = 0;
    /* (threads only for more than ~0.4 MFLOP) */
#pragma omp parallel if (threads > 1 && tiles > 1 && (double)M * N * g->K > 2e5) reduction(| : failed)
    {
        float *buf = gemm_pack_buffer();
        if (!buf) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < tiles; t++) {
            /* row tile r: S / tm slivers, one more for the first S % tm tiles */
            const size_t r = (size_t)t / tn, j0 = (size_t)t % tn * nc, q = S / tm, e = S % tm;
            const size_t i0 = (r * q + (r < e ? r : e)) * GEMM_MR, i1 = i0 + (q + (r < e)) * GEMM_MR;
            if (buf) gemm_tile(g, i0, (i1 < M ? i1 : M) - i0, j0, N - j0 < nc ? N - j0 : nc, buf);
        }
    }
    return failed ? -1 : 0;
}

/* ==========================================================================
 * GEMM with few columns (N <= GEMM_NWIDE): the lasso's X W and X^T G with
 * a few classes (or several heads side by side), a head's logits. Packing
 * op(A) would cost more than the product (each element of A meets only N
 * elements of B), so A is read in place and only B, small, is packed:
 * Bn[p][w], w = nv GEMM_NW columns (nv = 1, 2 or 3 vectors), past N zero.
 * The kernel holds R rows of C x nv vectors in registers (R = GEMM_NMR /
 * nv) and for each p broadcasts each row's element of op(A) and multiplies
 * it by Bn's row p. Each element of C is summed as in gemm_tile (depth
 * blocks of GEMM_KC in order, p in order within a block into an
 * accumulator from 0, then C = acc or C += acc), so the bits are the same
 * as the blocked path's.
 *
 * Rows of A (X W): a tile of R rows of C reads its R rows of A along p.
 * A^T (X^T G): a tile's R elements of op(A) for one p are consecutive in
 * row p of A, and the next p is another row, often another page. So a
 * strip of GEMM_NMC rows of C is done GEMM_NCH values of p at a time, tile
 * after tile, each tile's accumulator kept in a buffer in between (floats,
 * exactly what the registers would hold): the strip reads GEMM_NCH rows of
 * A along their length. */

#ifndef GEMM_NW
#define GEMM_NW 16   /* one vector of columns */
#endif
#define GEMM_NWIDE (3 * GEMM_NW)
#ifndef GEMM_NMR
#if defined(__AVX512F__)
#define GEMM_NMR 28  /* rows x vectors: 28 accumulators of 32 zmm */
#elif defined(__AVX__)
#define GEMM_NMR 6   /* of 16 ymm, each row vector two of them */
#else
#define GEMM_NMR 3   /* of 16 xmm, each row vector four of them */
#endif
#endif
#define NARROW_ROWS(nv) (GEMM_NMR / (nv) > 0 ? GEMM_NMR / (nv) : 1)
#ifndef GEMM_NCH
#define GEMM_NCH 32  /* A^T: values of p per pass over a strip */
#endif
#define GEMM_NMC 1008 /* A^T: rows of C in a strip (a multiple of 28, 14 and 9) */

/* The packing buffer holds a strip's accumulators and at least one depth
 * block of Bn beside them (gemm_narrow), whatever the block sizes are set to. */
_Static_assert((size_t)GEMM_PACK_FLOATS >= (size_t)(GEMM_NMC + GEMM_KC) * GEMM_NWIDE,
               "gemm.c: GEMM_PACK_FLOATS too small for the few-columns path (GEMM_NMC, GEMM_KC)");

/* gcc 12 unrolls a 16-long loop over j completely and then vectorizes
 * over the rows, shuffling acc on every p (5x slower): keep j a loop (one
 * vector) and unroll the rows and vectors instead. */
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL_ROWS _Pragma("GCC unroll 28")
#define ONE_VECTOR _Pragma("GCC unroll 1")
#else
#define UNROLL_ROWS
#define ONE_VECTOR
#endif

/* The kernel for nv vectors of columns: acc = 0 (with cont: acc = out);
 * acc[i][j] += a[i*rsa + p*csa] * b[p*w + j] for p = 0..kc-1 in order;
 * out = acc, the whole R x w tile (a store of only N columns would keep acc
 * in memory; the caller adds N columns to C). op(A)[i, p] = a[i*rsa +
 * p*csa]: rows of A (csa = 1), A^T (rsa = 1) or a partial tile's copy.
 * NOIPA: the strides stay unknown to the compiler in every call (a copy
 * specialized for rsa = 1 was vectorized badly by gcc 12). */
#define NARROW_KERNEL(name, nv)                                                                                  \
    KERNEL_ATTR NOIPA static void name(size_t kc, const float *restrict a, size_t rsa, size_t csa,                \
                                       const float *restrict b, float *restrict out, int cont)                    \
    {                                                                                                            \
        float acc[NARROW_ROWS(nv)][nv][GEMM_NW] = {{{0}}};                                                       \
        if (cont)                                                                                                \
            for (int i = 0; i < NARROW_ROWS(nv); i++)                                                            \
                for (int v = 0; v < (nv); v++)                                                                   \
                    for (int j = 0; j < GEMM_NW; j++) acc[i][v][j] = out[(i * (nv) + v) * GEMM_NW + j];          \
        for (size_t p = 0; p < kc; p++, a += csa, b += (nv) * GEMM_NW)                                           \
            UNROLL_ROWS for (int i = 0; i < NARROW_ROWS(nv); i++) {                                              \
                const float x = a[i * rsa];                                                                      \
                UNROLL_ROWS for (int v = 0; v < (nv); v++)                                                       \
                    ONE_VECTOR for (int j = 0; j < GEMM_NW; j++)                                                 \
                        acc[i][v][j] = MADD(x, b[v * GEMM_NW + j], acc[i][v][j]);                                \
            }                                                                                                    \
        for (int i = 0; i < NARROW_ROWS(nv); i++)                                                                \
            for (int v = 0; v < (nv); v++)                                                                       \
                for (int j = 0; j < GEMM_NW; j++) out[(i * (nv) + v) * GEMM_NW + j] = acc[i][v][j];              \
    }
NARROW_KERNEL(gemm_narrow1, 1)
NARROW_KERNEL(gemm_narrow2, 2)
NARROW_KERNEL(gemm_narrow3, 3)

typedef void (*narrow_fn)(size_t, const float *, size_t, size_t, const float *, float *, int);

/* One product of the few-columns path: nv vectors, R rows per tile. */
typedef struct {
    const gemm_args *g;
    int nv;
    size_t w, rows; /* nv GEMM_NW columns in Bn and a tile; R */
    narrow_fn kernel;
} narrow_plan;

/* C[i+r, 0..N) (+)= tile[r][0..N) for r < mr. */
static void narrow_store(const narrow_plan *np, size_t i, size_t mr, const float *tile, int accumulate)
{
    const gemm_args *g = np->g;
    for (size_t r = 0; r < mr; r++)
        for (size_t j = 0; j < g->N; j++) {
            float *cc = g->C + (i + r) * g->ldc + j;
            *cc = accumulate ? *cc + tile[r * np->w + j] : tile[r * np->w + j];
        }
}

/* Rows of A: rows [i, i+mr) of C (mr <= R) over the depth rows [p0,
 * p0+kn), whose B is packed in Bn, depth block by depth block. A tile of
 * fewer than R rows is copied first (zero rows below). */
static void narrow_rows(const narrow_plan *np, size_t i, size_t mr, size_t p0, size_t kn, const float *Bn)
{
    const gemm_args *g = np->g;
    float Ap[GEMM_NMR * GEMM_KC], tile[GEMM_NMR * GEMM_NW];
    for (size_t q = 0; q < kn; q += GEMM_KC) {
        const size_t kc = kn - q < GEMM_KC ? kn - q : GEMM_KC, p = p0 + q;
        const float *a = g->A + i * g->lda + p;
        if (mr < np->rows) {
            for (size_t r = 0; r < np->rows; r++)
                for (size_t u = 0; u < kc; u++) Ap[r * GEMM_KC + u] = r < mr ? a[r * g->lda + u] : 0.0f;
            np->kernel(kc, Ap, GEMM_KC, 1, Bn + q * np->w, tile, 0);
        } else {
            np->kernel(kc, a, g->lda, 1, Bn + q * np->w, tile, 0);
        }
        narrow_store(np, i, mr, tile, p > 0 || g->beta != 0.0f);
    }
}

/* A^T: one tile, mr <= R rows of C from a (op(A)[r, v] = a[v*lda + r]),
 * over ku values of p: the kernel into out (cont: continuing its sums). A
 * partial tile is copied into Ap first, as rows [R][ku] (zeros past mr). */
static void strip_tile(const narrow_plan *np, const float *a, size_t mr, size_t ku, const float *b, float *out,
                       int cont, float *Ap)
{
    const size_t lda = np->g->lda;
    if (mr == np->rows) {
        np->kernel(ku, a, 1, lda, b, out, cont);
        return;
    }
    for (size_t r = 0; r < np->rows; r++)
        for (size_t v = 0; v < ku; v++) Ap[r * ku + v] = r < mr ? a[v * lda + r] : 0.0f;
    np->kernel(ku, Ap, ku, 1, b, out, cont);
}

/* A^T: the strip of rows [i, i+mc) of C (mc <= NMC) over the depth rows
 * [p0, p0+kn), GEMM_NCH values of p at a time, tile after tile; acc: the
 * strip's tiles, [mc][w]. Without acc (no buffer could be had), tile by
 * tile over whole depth blocks: the same sums, slower. */
static void narrow_strip(const narrow_plan *np, size_t i, size_t mc, size_t p0, size_t kn, const float *Bn,
                         float *acc)
{
    const gemm_args *g = np->g;
    const size_t R = np->rows;
    float Ap[GEMM_NMR * GEMM_KC], tile[GEMM_NMR * GEMM_NW];
    for (size_t q = 0; q < kn; q += GEMM_KC) {
        const size_t kc = kn - q < GEMM_KC ? kn - q : GEMM_KC;
        const float *a0 = g->A + (p0 + q) * g->lda + i, *b = Bn + q * np->w;
        const int accumulate = p0 + q > 0 || g->beta != 0.0f;
        for (size_t r0 = 0; !acc && r0 < mc; r0 += R) {
            const size_t mr = mc - r0 < R ? mc - r0 : R;
            strip_tile(np, a0 + r0, mr, kc, b, tile, 0, Ap);
            narrow_store(np, i + r0, mr, tile, accumulate);
        }
        if (!acc) continue;
        for (size_t u = 0; u < kc; u += GEMM_NCH) {
            const size_t ku = kc - u < GEMM_NCH ? kc - u : GEMM_NCH;
            for (size_t r0 = 0; r0 < mc; r0 += R) {
                const float *a = a0 + u * g->lda + r0;
                for (size_t v = 0; v < ku; v++) /* this tile's rows of A, 4 tiles ahead: each its own stream */
                    PREFETCH(a + v * g->lda + 4 * R), PREFETCH(a + v * g->lda + 5 * R - 1);
                strip_tile(np, a, mc - r0 < R ? mc - r0 : R, ku, b + u * np->w, acc + r0 * np->w, u > 0, Ap);
            }
        }
        narrow_store(np, i, mc, acc, accumulate);
    }
}

/* C[M, N <= GEMM_NWIDE] (+)= op(A) op(B): B packed, as many depth rows as
 * the calling thread's buffer holds beside a strip (whole GEMM_KC blocks),
 * then the row tiles (A^T: strips) over the threads; each thread's strip
 * accumulators at the end of its own buffer. Returns -1 (computing
 * nothing) if the calling thread's buffer cannot be had. */
static int gemm_narrow(const gemm_args *g)
{
    static const narrow_fn kernels[3] = {gemm_narrow1, gemm_narrow2, gemm_narrow3};
    narrow_plan np = {g, (int)ceil_div(g->N, GEMM_NW), 0, 0, NULL};
    np.w = (size_t)np.nv * GEMM_NW, np.rows = NARROW_ROWS(np.nv), np.kernel = kernels[np.nv - 1];
    const size_t strip = GEMM_NMC * np.w, nkc = (GEMM_PACK_FLOATS - strip) / np.w / GEMM_KC * GEMM_KC;
    float *Bn = gemm_pack_buffer();
    int threads = 1, failed = !Bn;
#ifdef _OPENMP
    if (omp_get_level() == 0) threads = omp_get_max_threads();
#endif
    const size_t rows = g->transA ? GEMM_NMC : np.rows;
    const long tiles = (long)ceil_div(g->M, rows);
    const int parallel = threads > 1 && tiles > 1 && (double)g->M * g->N * g->K > 2e5;
    for (size_t p0 = 0; p0 < g->K && !failed; p0 += nkc) {
        const size_t kn = g->K - p0 < nkc ? g->K - p0 : nkc;
        for (size_t p = 0; p < kn; p++)
            for (size_t j = 0; j < np.w; j++)
                Bn[p * np.w + j] = j >= g->N ? 0.0f : g->transB ? g->B[j * g->ldb + p0 + p] : g->B[(p0 + p) * g->ldb + j];
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
        for (long t = 0; t < tiles; t++) {
            const size_t i = (size_t)t * rows, m = g->M - i < rows ? g->M - i : rows;
            float *buf = g->transA ? gemm_pack_buffer() : NULL;
            if (g->transA) narrow_strip(&np, i, m, p0, kn, Bn, buf ? buf + GEMM_PACK_FLOATS - strip : NULL);
            else narrow_rows(&np, i, m, p0, kn, Bn);
        }
    }
    return failed ? -1 : 0;
}

void gemm(int transA, int transB, size_t M, size_t N, size_t K,
          const float *A, size_t lda, const float *B, size_t ldb,
          float beta, float *C, size_t ldc)
{
    if (REFERENCE_BUILD) {
        gemm_ref(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (M == 0 || N == 0) return;
    if (K == 0) { /* C = beta * C with beta 0 or 1 */
        if (beta == 0.0f)
            for (size_t i = 0; i < M; i++) memset(C + i * ldc, 0, N * sizeof(float));
        return;
    }
    gemm_args g = {.M = M, .N = N, .K = K, .run = K, .transA = transA, .transB = transB, .A = A, .B = B,
                   .lda = lda, .ldb = ldb, .beta = beta, .C = C, .ldc = ldc};
    /* A few columns (the lasso's X W and X^T G with few classes): A in place */
    if (N <= GEMM_NWIDE) {
        if (gemm_narrow(&g)) gemm_ref(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (gemm_blocked(&g)) gemm_ref(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gemm_dense(size_t M, size_t N, size_t K, const float *x, const float *w, const float *b,
                void (*act)(float *, size_t), float *y)
{
    const conv_epilogue ep = {NULL, b, NULL, 0, act};
    const gemm_args g = {.M = M, .N = N, .K = K, .run = K, .A = x, .lda = K, .B = w, .ldb = N, .C = y, .ldc = N,
                         .ep = b || act ? &ep : NULL};
    if (M == 0 || N == 0) return;
    /* the blocked product, the bias and act on each finished tile; else
     * (the reference build, a few columns, no buffer) the same in passes */
    if (!REFERENCE_BUILD && N > GEMM_NWIDE && K > 0 && gemm_blocked(&g) == 0) return;
    gemm(0, 0, M, N, K, x, K, w, N, 0.0f, y, N);
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; b && j < N; j++) y[i * N + j] += b[j];
        if (act) act(y + i * N, N);
    }
}

/* ==========================================================================
 * Convolution as an implicit GEMM (conv_geom, gemm.h): a_sliver reads the
 * rows of the im2col matrix straight from the padded input, so it is never
 * built. A 1x1 stride-1 convolution is a plain product on x itself. */

int gemm_conv(const conv_geom *cv, const float *w, const float *wpk, int Cout, float *y, const conv_epilogue *ep)
{
    const size_t M = (size_t)cv->N * cv->OH * cv->OW, K = (size_t)cv->KH * cv->KW * cv->C;
    /* depth blocks within one row of the window, unless the whole window
     * fits in one block (a stem's 7x7x3: one block of 147, not 7 of 21) */
    const size_t run = K <= GEMM_KC ? K : (size_t)cv->KW * cv->C;
    gemm_args g = {.M = M, .N = (size_t)Cout, .K = K, .run = run, .B = w, .ldb = (size_t)Cout, .Bpk = wpk,
                   .beta = 0.0f, .C = y, .ldc = (size_t)Cout, .ep = ep};
    if (cv->KH == 1 && cv->KW == 1 && cv->stride == 1)
        g.A = cv->x, g.lda = (size_t)cv->C;
    else
        g.conv = cv;
    return gemm_blocked(&g);
}
