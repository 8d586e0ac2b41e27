/* gemm.h: matrix products -- the plain reference gemm_ref and the fast
 * blocked gemm -- and the implicit-GEMM driver that computes a convolution
 * without building its im2col matrix (gemm_conv). Not here: padding,
 * output shapes and the plain convolution (tensor.h), anything of a model.
 *
 * Matrices are float arrays, row-major: M, N, K in C[M,N] = A[M,K] B[K,N];
 * a leading dimension (lda, ldb, ldc) is the distance between rows. */
#ifndef H2T_GEMM_H
#define H2T_GEMM_H

#include <math.h>
#include <stddef.h>

/* a*b + c for the kernels (the micro-kernel here, the polynomials of
 * tensor.c): fmaf (one rounding) where the C library says it is fast
 * (FP_FAST_FMAF, e.g. -march=native on x86-64), a*b+c otherwise; the
 * project builds with -std=c11, where gcc never fuses a*b+c by itself.
 * H2T_NO_FMA (set by PORTABLE=1): a*b+c everywhere, so the portable build
 * writes the same bytes on machines with and without a fast fmaf. */
#if defined(FP_FAST_FMAF) && !defined(H2T_NO_FMA)
#define MADD(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* The depth block of gemm (the fast one): each element of C is summed over
 * blocks of GEMM_KC values of k in order, each from 0 in float, then added
 * to C. So cutting a product's depth at multiples of GEMM_KC into several
 * calls (the later ones with beta = 1) gives the very same bits. An A
 * sliver (MR x KC, 14 KiB) stays in L1. */
#ifndef GEMM_KC
#define GEMM_KC 256
#endif

/* C[M,N] = op(A)[M,K] * op(B)[K,N] + beta * C, beta is 0 or 1.
 * op(A) = A (stored [M,K], lda >= K) or, with transA, A^T (A stored [K,M],
 * lda >= M); likewise op(B) with B stored [K,N] or [N,K].
 * gemm_ref: the triple loop, each element summed in double (the yardstick).
 * gemm: cache-blocked and vectorized, float sums in a fixed order (bitwise
 * the same for any thread count); gemm_ref in the reference build. */
void gemm_ref(int transA, int transB, size_t M, size_t N, size_t K,
              const float *A, size_t lda, const float *B, size_t ldb,
              float beta, float *C, size_t ldc);
void gemm(int transA, int transB, size_t M, size_t N, size_t K,
          const float *A, size_t lda, const float *B, size_t ldb,
          float beta, float *C, size_t ldc);

/* What conv2d_ep does to every output y[i, c] after its sum, in this order,
 * each step skipped when its pointer (flag) is 0:
 *   y = y * scale[c] + shift[c]    (shift alone: y += shift[c], a bias)
 *   y += res[i * Cout + c];   y = max(y, 0);   act(y)
 * The same arithmetic as conv2d followed by scale_shift, add_inplace and
 * relu, so the same bits, but done on each output tile while it is still in
 * cache instead of in three more passes over memory (BatchNorm, residual,
 * ReLU of a ResNet unit). */
typedef struct {
    const float *scale, *shift;  /* [Cout]; shift alone: y += shift[c] (a bias) */
    const float *res;            /* [N*OH*OW, Cout]: y itself, or not overlapping y */
    int relu;
    void (*act)(float *y, size_t n); /* last, in place on n finished outputs of one row, or NULL */
} conv_epilogue;
/* res = y (the output written over the residual, one map less to stream
 * through memory) works when each output is stored once: a sum of one
 * depth block (K <= GEMM_KC). Longer sums would store partial sums over
 * the residual before the epilogue reads it; conv2d_ep then runs its plain
 * twin, whose outputs are each written once. */

/* A convolution over an input already padded with zeros, as the product of
 * its im2col matrix X[N*OH*OW, KH*KW*C] and the weights w[KH*KW*C, Cout]:
 *   X[(n*OH + oy)*OW + ox, (ky*KW + kx)*C + c] = x[n, oy*stride + ky, ox*stride + kx, c]
 * (OH = (Hp - KH) / stride + 1, OW likewise). */
typedef struct {
    const float *x;              /* [N, Hp, Wp, C], zero-padded */
    int N, Hp, Wp, C, KH, KW, stride, OH, OW;
} conv_geom;
/* A matrix B[K, N] packed once, as gemm packs op(B) for each tile --
 * column slivers one after another, each [K][its columns], zeros past N --
 * for products that use it again and again (a model's weights): gemm_conv
 * then reads it in place instead of packing it on every call. The size in
 * floats, and the packing. */
size_t gemm_packed_size(size_t K, size_t N);
void gemm_pack(const float *B, size_t K, size_t N, float *Bpk);

/* A dense layer: y[M, N] = act(x[M, K] w[K, N] + b[N]) (b, act may be
 * NULL; x, w, y contiguous): the same bits as gemm, then b added to each
 * row, then act on each row -- in the fast path both done on each output
 * tile while it is in cache (the epilogue's shift alone, then its act),
 * which saves two passes over y. act: a function of each element alone
 * (a GELU). */
void gemm_dense(size_t M, size_t N, size_t K, const float *x, const float *w, const float *b,
                void (*act)(float *, size_t), float *y);

/* y[N*OH*OW, Cout] = X w, then ep (may be NULL) on each finished tile;
 * wpk: w packed by gemm_pack (the same bits), or NULL.
 * The sums are gemm's, except where its depth blocks start: one block when
 * the whole window fits in one (K <= GEMM_KC, a stem's 7x7x3), else blocks
 * of at most GEMM_KC within each row of the window (ky), row after row.
 * Needs N*OH*OW, Cout and KH*KW*C all > 0. Returns -1, having computed
 * nothing, when this thread's packing buffer cannot be allocated (the
 * caller then uses its plain convolution); 0 otherwise. The fast path
 * only: its caller, conv2d_ep (tensor.c), runs its plain twin
 * conv2d_ep_ref instead in the reference build. */
int gemm_conv(const conv_geom *cv, const float *w, const float *wpk, int Cout, float *y, const conv_epilogue *ep);

#endif
