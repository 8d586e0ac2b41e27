/* tensor.h: the numerical kernels the backbones and the lasso need (the
 * matrix products are in gemm.h, included here).
 *
 * Dimension legend (used in every shape comment in the project):
 *   N  images in a batch          H, W  spatial height, width
 *   C  channels (Cin, Cout)       T     tokens
 *   D  features                   K     classes (or a GEMM's inner size)
 *   M, N, K in a GEMM: C[M,N] = A[M,K] B[K,N]
 * Tensors are float arrays, row-major and contiguous; activations are NHWC
 * ([N,H,W,C]) or [N,T,C]. Conv weights are [KH,KW,Cin,Cout] ("HWIO") so
 * that a convolution is an im2col matrix [N*OH*OW, KH*KW*Cin] times
 * the weight matrix. Dense weights are [Cin,Cout].
 *
 * Determinism: OpenMP splits only independent outputs (rows/columns of C,
 * images, channels, heads) and every reduction runs in a fixed order, so
 * results are bitwise identical for any number of threads. */
#ifndef H2T_TENSOR_H
#define H2T_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h" /* gemm, gemm_ref, conv_epilogue */

/* ---- convolution --------------------------------------------------------
 * Explicit padding on each side (PyTorch: pad_t = pad_b = pad_l = pad_r;
 * TF "SAME" may be asymmetric). Zero padding. */
typedef struct { int kh, kw, stride, pad_t, pad_l, pad_b, pad_r; } conv_spec;
int conv_out_h(const conv_spec *s, int H);
int conv_out_w(const conv_spec *s, int W);
/* Scratch floats conv2d needs for this input (0 for 1x1 stride-1; SIZE_MAX
 * when the count does not fit in size_t). */
size_t conv2d_work_size(const conv_spec *s, int N, int H, int W, int Cin);
/* y[N,OH,OW,Cout] = conv(x[N,H,W,Cin], w[KH,KW,Cin,Cout]) */
void conv2d(const float *x, int N, int H, int W, int Cin,
            const float *w, int Cout, const conv_spec *s, float *y, float *work);
void conv2d_ref(const float *x, int N, int H, int W, int Cin,
                const float *w, int Cout, const conv_spec *s, float *y);
/* conv2d followed by the epilogue ep (gemm.h): BatchNorm, residual, ReLU
 * applied to each output tile while it is in cache. wpk: w packed once by
 * gemm_pack(w, KH*KW*Cin, Cout) for a layer run again and again (the same
 * bits, without packing w on every call), or NULL. ep->res may be y
 * itself (gemm.h). conv2d_ep_ref: each output as conv2d_ref sums it, then
 * the operations of scale_shift, add_inplace and relu, as it is written. */
void conv2d_ep(const float *x, int N, int H, int W, int Cin, const float *w, const float *wpk, int Cout,
               const conv_spec *s, float *y, float *work, const conv_epilogue *ep);
void conv2d_ep_ref(const float *x, int N, int H, int W, int Cin, const float *w, int Cout, const conv_spec *s,
                   float *y, const conv_epilogue *ep);

/* ---- elementwise / per-channel ------------------------------------------ */
/* Inference BatchNorm folded into one multiply-add per channel:
 * scale = gamma / sqrt(var + eps), shift = beta - mean * scale. */
void bn_fold(const float *gamma, const float *beta, const float *mean, const float *var,
             float eps, int C, float *scale, float *shift);
/* x[rows,C] = x * scale + shift (per channel), then ReLU if relu != 0. */
void scale_shift(float *x, size_t rows, int C, const float *scale, const float *shift, int relu);
void relu(float *x, size_t n);
void add_inplace(float *y, const float *x, size_t n);            /* y += x */
void add_bias(float *y, size_t rows, int C, const float *b);     /* y[r,c] += b[c] */

/* ---- pooling ------------------------------------------------------------- */
/* Max pool, square window k, stride, symmetric padding pad (padded cells are
 * ignored, as in PyTorch). y[N,OH,OW,C], OH = (H + 2 pad - k) / stride + 1. */
void maxpool2d(const float *x, int N, int H, int W, int C, int k, int stride, int pad, float *y);
/* y[N,C] = mean over the HW positions of x[N,HW,C]. */
void global_avgpool(const float *x, int N, int HW, int C, float *y);

/* ---- transformer pieces --------------------------------------------------
 * Each *_ref is the plain twin of the kernel before it: the definition,
 * in double, with libm (the fast ones use sums of 8 lanes and polynomials). */
/* y[rows,C] = (x - mean) / sqrt(var + eps) * gamma + beta (biased variance). */
void layernorm(const float *x, size_t rows, int C, const float *gamma, const float *beta,
               float eps, float *y);
void layernorm_ref(const float *x, size_t rows, int C, const float *gamma, const float *beta,
                   float eps, float *y);
/* GELUs on the calling thread: a dense layer's epilogue runs them on each
 * output tile as it is finished (gemm.h gemm_dense) */
void gelu_erf(float *x, size_t n);     /* 0.5 x (1 + erf(x / sqrt 2)) */
void gelu_erf_ref(float *x, size_t n);
void gelu_tanh(float *x, size_t n);    /* 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) */
void gelu_tanh_ref(float *x, size_t n);
void tanh_inplace(float *x, size_t n);
void tanh_inplace_ref(float *x, size_t n);   /* libm tanh in double */
void softmax_rows(float *x, size_t rows, size_t cols);   /* max-subtracted, per row */
void softmax_rows_ref(float *x, size_t rows, size_t cols);
/* Multi-head self-attention core. qkv[N,T,3C] holds q, k, v (each [T,C],
 * head h = channels [h*C/heads, (h+1)*C/heads)). out[N,T,C] gets
 * softmax(q k^T / sqrt(dh)) v per head, heads concatenated.
 * work: attention_work_size(...) floats (SIZE_MAX when that count does not
 * fit in size_t). */
size_t attention_work_size(int N, int T, int heads);
void attention(const float *qkv, int N, int T, int C, int heads, float *out, float *work);

/* ---- image preprocessing -------------------------------------------------- */
/* TF1 legacy bilinear resize (align_corners = false, half_pixel_centers =
 * false): src = dst * in / out, y0 = floor(src), y1 = min(y0 + 1, in - 1).
 * img[H,W,Cin] uint8 with Cin 1 or 3 (1 is tiled to 3) -> out[S,S,3] float
 * in the 0..255 range (normalization is the model's business). */
void resize_bilinear_tf1(const uint8_t *img, int H, int W, int Cin, int S, float *out);

#endif
