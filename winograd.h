/* winograd.h: 3x3 stride-1 convolutions by Winograd's minimal filtering
 * F(m x m, 3 x 3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", CVPR 2016), an option of the ResNet forward pass, off by
 * default (docs/ALGORITHM.md §18). It does fewer multiplications than the
 * convolution's sum (m = 2: 2.25 times fewer, m = 4: 4 times), but its
 * transforms round differently: its results are close to conv2d's, not the
 * same bits (test/test_winograd.c states how close). Not here: the plain
 * convolution it is checked against (tensor.c conv2d_ep_ref). */
#ifndef H2T_WINOGRAD_H
#define H2T_WINOGRAD_H

#include <stddef.h>

#include "gemm.h"
#include "tensor.h"

/* The transformed weights of one 3x3 convolution: for each of the a*a
 * (a = m + 2) points of a transformed tile, the [cin, cout] matrix
 * G g G^T at that point, packed by gemm_pack, one after another. */
typedef struct {
    int m, a;                  /* output tile m x m, input tile a x a */
    int cin, cout;
    size_t block;              /* floats of one point's packed matrix */
    float *u;                  /* [a*a][block] */
} winograd_weights;

/* Whether F(m x m, 3 x 3) is offered for this m (2 or 4). */
int winograd_supported(int m);
/* w [3, 3, cin, cout] (conv2d's layout) -> ww. Returns -1 (ww->u NULL,
 * set_error) when out of memory or m is not supported. */
int winograd_prepare(const float *w, int cin, int cout, int m, winograd_weights *ww);
void winograd_free(winograd_weights *ww);
/* Scratch floats winograd_conv needs for this input (SIZE_MAX when the
 * count does not fit in size_t). */
size_t winograd_work_size(const winograd_weights *ww, int N, int H, int W, const conv_spec *s);
/* y = conv2d of x [N, H, W, cin] with the 3x3 stride-1 weights in ww and
 * the padding of s, then ep (may be NULL; as conv2d_ep, act not allowed),
 * all outputs computed by Winograd's transforms. work: winograd_work_size
 * floats. Returns -1, having computed nothing, when a product's packing
 * buffer cannot be had (the caller then runs conv2d_ep); 0 otherwise. */
int winograd_conv(const float *x, int N, int H, int W, const winograd_weights *ww, const conv_spec *s, float *y,
                  float *work, const conv_epilogue *ep);

#endif
