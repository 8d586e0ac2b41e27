/* winograd.c: a 3x3 stride-1 convolution by Winograd's minimal filtering
 * F(m x m, 3 x 3) (winograd.h; docs/ALGORITHM.md §18 says where the option
 * is used and what it costs in accuracy).
 *
 * One output tile of m x m pixels needs an input tile d of a x a pixels
 * (a = m + 2). For each pair of input and output channels,
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * where g is the 3x3 filter, .* is the product point by point, and B^T,
 * G, A^T are the small constant matrices below. Summed over the input
 * channels, the a*a products at each point form a matrix product: with
 * V[p][tile][cin] = (B^T d B) at point p and U[p][cin][cout] = (G g G^T)
 * at p,
 *     M[p] = V[p] U[p]      (a*a products of [tiles, cin] by [cin, cout])
 *     y(tile) = A^T M(tile) A.
 * That is a*a multiply-adds per m*m outputs and channel pair, against 9
 * per output for the convolution's sum: 2.25 times fewer for m = 2, 4
 * times for m = 4, plus the transforms, which are additions and small
 * multiples (linear in the channels, not their product).
 *
 * The convolution runs over chunks of tiles (a few dozen), so that the
 * chunk's V and M stay in cache: for each chunk, the input transform, the
 * a*a products (gemm_conv's plain product, with U packed once at load),
 * then the output transform with the epilogue. The tiles of a chunk may
 * come from several images; each row of a product does not depend on the
 * other rows (gemm.h), so an image's outputs do not depend on its batch.
 * Tiles at the right and bottom edges may reach past the output: their
 * input is read as zeros there, their extra outputs are not stored.
 *
 * The transforms work on 16 channels at a time (WINO_CB), each step a
 * multiply-add of one coefficient with 16 channels, which the compiler
 * turns into one vector instruction; zero coefficients are skipped. */
#include "winograd.h"

#include <string.h>

#include "util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define WINO_CB 16   /* channels per transform step */
#define WINO_A 6     /* the largest input tile side (m = 4) */

/* The transforms are written once for any m, with F's entries read from
 * the tables; each is instantiated for F2 and F4 (below), where, with the
 * loops over the tile unrolled (UNROLL), the compiler sees every
 * coefficient as a constant and drops the zeros (the generic loops ran 3x
 * slower). ONE_VECTOR, on each loop over the 16 channels of a block: gcc
 * 12 would unroll it completely and then fail to vectorize it (scalar
 * code, 3x slower); kept a loop, it becomes one vector instruction
 * (gemm.c's narrow kernels do the same). */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif
#if defined(__GNUC__) && !defined(__clang__) && !defined(__TINYC__)
#define UNROLL _Pragma("GCC unroll 6")
#define ONE_VECTOR _Pragma("GCC unroll 1")
#else
#define UNROLL
#define ONE_VECTOR
#endif

/* Floats of V and M for one chunk of tiles at most (1 MiB, one core's L2
 * on the development machine), and the fewest tiles in a chunk (two
 * register tiles of the products' rows, GEMM_MR = 14): deep layers, whose
 * tiles are large, then spill to L3 rather than read their transformed
 * weights from memory once per dozen tiles. */
#ifndef WINO_CHUNK_FLOATS
#define WINO_CHUNK_FLOATS (256 * 1024)
#endif
#define WINO_MIN_TILES 28

/* The matrices of F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray, section 4),
 * with the interpolation points 0, 1, -1 (and 2, -2 for m = 4). Rows past
 * a (or m) are zero. B^T and A^T have small integers, exact in float; G
 * has fractions and is used in double, on the weights, once. */
typedef struct {
    int m, a;
    float bt[WINO_A][WINO_A];  /* B^T [a][a] */
    double g[WINO_A][3];       /* G   [a][3] */
    float at[4][WINO_A];       /* A^T [m][a] */
} wino_matrices;

static const wino_matrices F2 = {
    2, 4,
    {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
    {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}},
    {{1, 1, 1, 0}, {0, 1, -1, -1}},
};

static const wino_matrices F4 = {
    4, 6,
    {{4, 0, -5, 0, 1, 0},
     {0, -4, -4, 1, 1, 0},
     {0, 4, -4, -1, 1, 0},
     {0, -2, -1, 2, 1, 0},
     {0, 2, -1, -2, 1, 0},
     {0, 4, 0, -5, 0, 1}},
    {{1.0 / 4, 0, 0},
     {-1.0 / 6, -1.0 / 6, -1.0 / 6},
     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
     {1.0 / 24, 1.0 / 12, 1.0 / 6},
     {1.0 / 24, -1.0 / 12, 1.0 / 6},
     {0, 0, 1}},
    {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}},
};

static int round16(int c) { return (c + WINO_CB - 1) / WINO_CB * WINO_CB; }

static const wino_matrices *matrices(int m) { return m == 2 ? &F2 : m == 4 ? &F4 : NULL; }

int winograd_supported(int m) { return matrices(m) != NULL; }

/* ==========================================================================
 * The weights: U[p] = (G g G^T) at point p = (i, j), for every channel pair */

int winograd_prepare(const float *w, int cin, int cout, int m, winograd_weights *ww)
{
    memset(ww, 0, sizeof *ww);
    const wino_matrices *F = matrices(m);
    if (!F) {
        set_error("Winograd F(%dx%d, 3x3): expected m = 2 or 4", m, m);
        return -1;
    }
    const int a = F->a, cin16 = round16(cin), cout16 = round16(cout);
    const size_t pairs = (size_t)cin * cout, block = gemm_packed_size((size_t)cin16, (size_t)cout16);
    float *up = alloc_zeros((size_t)cin16 * cout16, sizeof(float)); /* zeros past cin, cout */
    ww->u = alloc_array((size_t)a * a * block, sizeof(float));
    if (!up || !ww->u) {
        free_array(up);
        winograd_free(ww);
        set_error("out of memory transforming a %dx%d convolution's weights for Winograd", cin, cout);
        return -1;
    }
    for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++) {
            /* up[ci][co] = sum_k sum_l G[i][k] g[k][l] G[j][l], g[k][l] = w[k][l][ci][co] */
            for (size_t q = 0; q < pairs; q++) {
                double s = 0.0;
                for (int k = 0; k < 3; k++)
                    for (int l = 0; l < 3; l++) s += F->g[i][k] * w[(size_t)(k * 3 + l) * pairs + q] * F->g[j][l];
                up[q / cout * cout16 + q % cout] = (float)s;
            }
            gemm_pack(up, (size_t)cin16, (size_t)cout16, ww->u + (size_t)(i * a + j) * block);
        }
    free_array(up);
    ww->m = m, ww->a = a, ww->cin = cin, ww->cout = cout, ww->block = block;
    return 0;
}

void winograd_free(winograd_weights *ww)
{
    free_array(ww->u);
    ww->u = NULL;
}

/* Tiles per chunk: as many as fit V and M in WINO_CHUNK_FLOATS, a multiple
 * of WINO_MIN_TILES, at least that. (The last chunk of a pass takes up to
 * half as many more, rather than leave a small remainder: winograd_conv.) */
static size_t chunk_tiles(const winograd_weights *ww)
{
    const size_t per_tile = (size_t)ww->a * ww->a * ((size_t)round16(ww->cin) + round16(ww->cout));
    size_t ct = WINO_CHUNK_FLOATS / per_tile / WINO_MIN_TILES * WINO_MIN_TILES;
    return ct < WINO_MIN_TILES ? WINO_MIN_TILES : ct;
}

size_t winograd_work_size(const winograd_weights *ww, int N, int H, int W, const conv_spec *s)
{
    const int m = ww->m, TH = (H + s->pad_t + s->pad_b - 2 + m - 1) / m, TW = (W + s->pad_l + s->pad_r - 2 + m - 1) / m;
    const size_t ct = chunk_tiles(ww) + chunk_tiles(ww) / 2;
    size_t vm = ct * ww->a * ww->a * ((size_t)round16(ww->cin) + round16(ww->cout)), xp, total;
    /* V and M, then the padded input */
    if (size_mul((size_t)N * (TH * m + 2), (size_t)(TW * m + 2) * round16(ww->cin), &xp) || size_add(vm, xp, &total))
        return SIZE_MAX;
    return total;
}

/* ==========================================================================
 * The transforms, 16 channels at a time */

/* The geometry of one call. */
typedef struct {
    const wino_matrices *F;
    float *xp;                 /* the input padded: [N, Hp, Wp, cin16] (pad_tiles writes it) */
    int Hp, Wp;
    int cin, cout;
    int cin16, cout16;         /* rounded up to whole blocks of 16: V's and M's rows */
    int pad_t, pad_l, OH, OW;
    int TH, TW;                /* tiles down and across one image */
} wino_geom;

/* out[c] = sum over i < a of coef[i] * src[i * stride + c], c < 16, the
 * zero coefficients skipped: one row of a transform matrix applied to a
 * column of 16-channel blocks. Both transforms are two such passes. */
static ALWAYS_INLINE void combine(const float *coef, int a, const float *src, size_t stride, float *out)
{
    float acc[WINO_CB] = {0};
    UNROLL
    for (int i = 0; i < a; i++) {
        if (coef[i] == 0.0f) continue;
        ONE_VECTOR
        for (int c = 0; c < WINO_CB; c++) acc[c] = MADD(coef[i], src[i * stride + c], acc[c]);
    }
    memcpy(out, acc, sizeof acc);
}

/* v[p * vstride + c] = (B^T d B)[p], c < 16, where d[i][j][c] = x[i * rs
 * + j * cs + c] is the tile's input (16 channels of the padded copy, Xp
 * below). Row k of B^T d B needs only row k of B^T d: one row at a time. */
static ALWAYS_INLINE void input_tile(const wino_matrices *F, const float *x, size_t rs, size_t cs, float *v,
                                     size_t vstride)
{
    const int a = F->a;
    UNROLL
    for (int k = 0; k < a; k++) {
        float t[WINO_A][WINO_CB]; /* row k of B^T d: t[j] = sum_i B^T[k][i] d[i][j] */
        UNROLL
        for (int j = 0; j < a; j++) combine(F->bt[k], a, x + j * cs, rs, t[j]);
        UNROLL
        for (int l = 0; l < a; l++) combine(F->bt[l], a, t[0], WINO_CB, v + (size_t)(k * a + l) * vstride);
    }
}

/* The outputs of one tile, o [m][m][16] (rows past mh, columns past mw
 * lie outside the output), finished and stored: the epilogue (as
 * conv2d_ep_ref: scale and shift, residual, ReLU) on channels c0 .. c0+len,
 * then y. A function of its own: inlined into the unrolled transform, gcc
 * 12 turned its loops into scalar code. */
static void finish_tile(float *restrict o, int m, int mh, int mw, int len, const wino_geom *g, int n, int oy0,
                        int ox0, int c0, float *restrict y, const conv_epilogue *ep)
{
    const float *restrict sc = ep && ep->scale ? ep->scale + c0 : NULL;
    const float *restrict sh = ep && ep->shift ? ep->shift + c0 : NULL;
    for (int i = 0; i < mh; i++)
        for (int j = 0; j < mw; j++) {
            float *restrict v = o + (size_t)(i * m + j) * WINO_CB;
            const size_t at = (((size_t)n * g->OH + oy0 + i) * g->OW + ox0 + j) * g->cout + c0;
            const float *restrict res = ep && ep->res ? ep->res + at : NULL;
            if (len < WINO_CB) { /* the last block of a width that is not a multiple of 16 */
                ONE_VECTOR
                for (int c = 0; c < len; c++) {
                    if (sc) v[c] = v[c] * sc[c] + sh[c];
                    else if (sh) v[c] += sh[c];
                    if (res) v[c] += res[c];
                    if (ep && ep->relu) v[c] = v[c] > 0.0f ? v[c] : 0.0f;
                }
                memcpy(y + at, v, (size_t)len * sizeof(float));
                continue;
            }
            if (sc)
                ONE_VECTOR
                for (int c = 0; c < WINO_CB; c++) v[c] = v[c] * sc[c] + sh[c];
            else if (sh)
                ONE_VECTOR
                for (int c = 0; c < WINO_CB; c++) v[c] += sh[c];
            if (res)
                ONE_VECTOR
                for (int c = 0; c < WINO_CB; c++) v[c] += res[c];
            if (ep && ep->relu)
                ONE_VECTOR
                for (int c = 0; c < WINO_CB; c++) v[c] = v[c] > 0.0f ? v[c] : 0.0f;
            memcpy(y + at, v, WINO_CB * sizeof(float));
        }
}

/* The output tile at output row oy0, column ox0 of image n, channels c0 ..
 * c0+16 (those below cout stored): A^T M A from mo[p * mstride + c], then
 * finish_tile. Row i of A^T M A needs row i of A^T M. */
static ALWAYS_INLINE void output_tile(const wino_matrices *F, const wino_geom *g, int n, int oy0, int ox0, int c0,
                                      const float *mo, size_t mstride, float *y, const conv_epilogue *ep)
{
    const int a = F->a, m = F->m;
    float o[4 * 4 * WINO_CB]; /* [m][m][16] */
    UNROLL
    for (int i = 0; i < m; i++) {
        float t[WINO_A][WINO_CB]; /* row i of A^T M: t[l] = sum_k A^T[i][k] M[k][l] */
        UNROLL
        for (int l = 0; l < a; l++) combine(F->at[i], a, mo + (size_t)l * mstride, (size_t)a * mstride, t[l]);
        UNROLL
        for (int j = 0; j < m; j++) combine(F->at[j], a, t[0], WINO_CB, o + (size_t)(i * m + j) * WINO_CB);
    }
    const int mh = g->OH - oy0 < m ? g->OH - oy0 : m, mw = g->OW - ox0 < m ? g->OW - ox0 : m;
    finish_tile(o, m, mh, mw, g->cout - c0 < WINO_CB ? g->cout - c0 : WINO_CB, g, n, oy0, ox0, c0, y, ep);
}

/* ==========================================================================
 * The convolution: chunk after chunk, transform in, a*a products, transform out */

/* The input transform of tile q into row t of V [a*a][ct][cin], all its
 * channels; the output transform of tile q from row t of M [a*a][ct][cout]
 * into y. */
static ALWAYS_INLINE void input_one(const wino_matrices *F, const wino_geom *g, long q, long t, size_t ct, float *V)
{
    const long per_image = (long)g->TH * g->TW, n = q / per_image, r = q % per_image;
    const size_t rs = (size_t)g->Wp * g->cin16;
    const float *x = g->xp + ((size_t)n * g->Hp + (size_t)(r / g->TW) * F->m) * rs + (size_t)(r % g->TW) * F->m * g->cin16;
    for (int c0 = 0; c0 < g->cin16; c0 += WINO_CB)
        input_tile(F, x + c0, rs, (size_t)g->cin16, V + (size_t)t * g->cin16 + c0, ct * g->cin16);
}

static ALWAYS_INLINE void output_one(const wino_matrices *F, const wino_geom *g, long q, long t, size_t ct,
                                     const float *M, float *y, const conv_epilogue *ep)
{
    const long per_image = (long)g->TH * g->TW, n = q / per_image, r = q % per_image;
    const int oy0 = (int)(r / g->TW) * F->m, ox0 = (int)(r % g->TW) * F->m;
    for (int c0 = 0; c0 < g->cout; c0 += WINO_CB)
        output_tile(F, g, (int)n, oy0, ox0, c0, M + (size_t)t * g->cout16 + c0, ct * g->cout16, y, ep);
}

/* The transforms of tiles t0 .. t0+nt, over the threads unless inside a
 * parallel region already: an instance for each F, its entries constants
 * in the loop (see ALWAYS_INLINE above). */
static void input_tiles2(const wino_geom *g, long t0, long nt, size_t ct, float *V, int nested)
{
#pragma omp parallel for schedule(static) if (!nested && nt > 1)
    for (long t = 0; t < nt; t++) input_one(&F2, g, t0 + t, t, ct, V);
}

static void input_tiles4(const wino_geom *g, long t0, long nt, size_t ct, float *V, int nested)
{
#pragma omp parallel for schedule(static) if (!nested && nt > 1)
    for (long t = 0; t < nt; t++) input_one(&F4, g, t0 + t, t, ct, V);
}

static void output_tiles2(const wino_geom *g, long t0, long nt, size_t ct, const float *M, float *y,
                          const conv_epilogue *ep, int nested)
{
#pragma omp parallel for schedule(static) if (!nested && nt > 1)
    for (long t = 0; t < nt; t++) output_one(&F2, g, t0 + t, t, ct, M, y, ep);
}

static void output_tiles4(const wino_geom *g, long t0, long nt, size_t ct, const float *M, float *y,
                          const conv_epilogue *ep, int nested)
{
#pragma omp parallel for schedule(static) if (!nested && nt > 1)
    for (long t = 0; t < nt; t++) output_one(&F4, g, t0 + t, t, ct, M, y, ep);
}

/* g->xp = x [N, H, W, cin] with pad_t rows and pad_l columns of zeros
 * before, zeros after up to [N, Hp, Wp], and channels zero-padded to
 * cin16: every tile then reads a whole a x a window of 16-channel blocks. */
static void pad_tiles(const float *x, int N, int H, int W, const wino_geom *g, int nested)
{
    const size_t row = (size_t)g->Wp * g->cin16;
    const long rows = (long)N * g->Hp;
#pragma omp parallel for schedule(static) if (!nested && rows > 1)
    for (long r = 0; r < rows; r++) {
        const int n = (int)(r / g->Hp), iy = (int)(r % g->Hp) - g->pad_t;
        float *d = g->xp + (size_t)r * row;
        memset(d, 0, row * sizeof(float));
        if (iy < 0 || iy >= H) continue;
        const float *src = x + ((size_t)n * H + iy) * W * g->cin;
        for (int ix = 0; ix < W; ix++)
            memcpy(d + (size_t)(ix + g->pad_l) * g->cin16, src + (size_t)ix * g->cin, (size_t)g->cin * sizeof(float));
    }
}

int winograd_conv(const float *x, int N, int H, int W, const winograd_weights *ww, const conv_spec *s, float *y,
                  float *work, const conv_epilogue *ep)
{
    if (ep && (ep->act || (ep->res && ep->res == y))) return -1; /* not offered: the caller's conv2d_ep */
    const wino_matrices *F = matrices(ww->m);
    const int m = F->m, a = F->a, OH = H + s->pad_t + s->pad_b - 2, OW = W + s->pad_l + s->pad_r - 2;
    if (N <= 0 || OH <= 0 || OW <= 0) return 0;
    const int TH = (OH + m - 1) / m, TW = (OW + m - 1) / m;
    /* chunks of `chunk` tiles, the last one up to ct = 1.5 chunk (rows of V and M) */
    const size_t chunk = chunk_tiles(ww), ct = chunk + chunk / 2;
    float *V = work, *M = V + ct * a * a * (size_t)round16(ww->cin), *Xp = M + ct * a * a * (size_t)round16(ww->cout);
    const wino_geom g = {F, Xp, TH * m + 2, TW * m + 2, ww->cin, ww->cout, round16(ww->cin), round16(ww->cout),
                         s->pad_t, s->pad_l, OH, OW, TH, TW};
    int nested = 0;
#ifdef _OPENMP
    nested = omp_get_level() > 0;
#endif
    pad_tiles(x, N, H, W, &g, nested);
    const long tiles = (long)N * g.TH * g.TW;
    for (long t0 = 0, nt; t0 < tiles; t0 += nt) {
        nt = tiles - t0 <= (long)ct ? tiles - t0 : (long)chunk;
        if (m == 2) input_tiles2(&g, t0, nt, ct, V, nested);
        else input_tiles4(&g, t0, nt, ct, V, nested);
        for (int p = 0; p < a * a; p++) {
            /* M[p] = V[p] U[p]: a plain product, as a 1x1 convolution over nt pixels */
            const conv_geom cv = {V + (size_t)p * ct * g.cin16, 1, 1, (int)nt, g.cin16, 1, 1, 1, 1, (int)nt};
            if (gemm_conv(&cv, NULL, ww->u + (size_t)p * ww->block, g.cout16, M + (size_t)p * ct * g.cout16, NULL))
                return -1;
        }
        if (m == 2) output_tiles2(&g, t0, nt, ct, M, y, ep, nested);
        else output_tiles4(&g, t0, nt, ct, M, y, ep, nested);
    }
    return 0;
}
