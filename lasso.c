/* lasso.c: the second half of Head2Toe on feature matrices
 * (docs/ALGORITHM.md §6-§8). See lasso.h. Sections, in the order the
 * method uses them:
 *   the head           allocation, Glorot initialization
 *   the plain step     one training step written as the equations read
 *   the fused step     the same step as one pass over W (the fast path)
 *   training           the run of steps over cycling batches; prediction
 *   selection          scores, top-k, gathering with renormalization, the
 *                      scoring run
 *   fitted heads       prediction with a finished head
 *
 * One step on a batch of B examples (nominal batch NB = 128), §6:
 *   z = X_b W + b                                   [B, K] logits
 *   loss = (1/NB) sum_b CE(z_b, y_b) + (B/NB) coef sum_i ||W_i||_2
 *   G = (softmax(z) - onehot(y)) / NB               dLoss/dz, [B, K]
 *   gW = X_b^T G + (B/NB) coef W_i / ||W_i||        (0 for a zero row: the
 *   gb = sum_b G_b                                  subgradient we choose)
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   W -= lr_t m / (sqrt(v) + 1e-7),  lr_t = lr_s sqrt(1-b2^t) / (1-b1^t),
 *   lr_s = lr0 (1 + cos(pi s / S)) / 2 for step s = 0..S-1, t = s + 1.
 * lasso_step_ref does exactly this. The fused step does it in one pass
 * over W, m and v: for each block of rows of W, its gradient, penalty and
 * Adam update, and, while the block is in cache, its share of the next
 * step's logits (X_next[:, block] W[block]), summed over groups of blocks
 * in a fixed order. Both agree to float rounding (test_lasso.c states the
 * tolerance); the REFERENCE build trains with the plain step. The fused
 * step also trains several heads over the same batches at once
 * (lasso_train_many): each step's two products are done for all heads in
 * one, their columns side by side, so that X is read from memory once for
 * all of them; a product sums each column as it would alone, and each
 * head's penalty and Adam are its own, so its bits are those of its run
 * alone.
 * Every parallel loop runs over independent rows (or groups of rows of W,
 * each with its own partial sum) and every sum has a fixed order, so
 * results are identical for any number of threads.
 *
 * Memory: the caller's feature matrix (folds and batches only index its
 * rows; nothing copies it), the head W, m, v and the plain step's gW
 * (16 D K bytes), one block of gradient rows per thread and the groups'
 * partial logits (at most 64 x batch x K floats). */
#include "lasso.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "tensor.h"
#include "util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define PI 3.14159265358979323846
#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-7f

/* ==========================================================================
 * The head */

/* The rows of W are cut into blocks of h->blk rows, and the blocks into at
 * most LASSO_GROUPS groups of consecutive blocks (group q: blocks
 * [q nblocks / ngroups, (q+1) nblocks / ngroups)). A group is the unit of
 * parallel work and has its own partial sum of the logits (h->zpart). Both
 * depend on d and k only, never on the number of threads. */
#define LASSO_GROUPS 64

static size_t head_blocks(const lasso_head *h, size_t d) { return (d + h->blk - 1) / h->blk; }

static size_t head_groups(const lasso_head *h, size_t d)
{
    size_t nb = head_blocks(h, d);
    return nb < LASSO_GROUPS ? nb : LASSO_GROUPS;
}

int lasso_head_alloc(lasso_head *h, size_t cap_d, int k, int batch)
{
    memset(h, 0, sizeof *h);
    if (cap_d < 1 || k < 1 || batch < 1) {
        set_error("lasso head: need at least 1 feature, 1 class and batch >= 1 (got %zu, %d, %d)", cap_d, k,
                  batch);
        return -1;
    }
    size_t dk;
    if (size_mul(cap_d, (size_t)k, &dk)) return -1;
    h->cap_d = cap_d;
    h->k = k;
    h->batch = batch;
    /* a block of W rows whose gradient (blk x k floats, 256 KiB) stays in cache */
    h->blk = 65536 / (size_t)k;
    if (h->blk < 16) h->blk = 16;
    h->nthreads = 1;
#ifdef _OPENMP
    h->nthreads = omp_get_max_threads();
#endif
    h->w = alloc_array(dk, sizeof(float));
    h->mw = alloc_array(dk, sizeof(float));
    h->vw = alloc_array(dk, sizeof(float));
    h->b = alloc_array((size_t)k, sizeof(float));
    h->mb = alloc_array((size_t)k, sizeof(float));
    h->vb = alloc_array((size_t)k, sizeof(float));
    h->gb = alloc_array((size_t)k, sizeof(float));
    h->gw = alloc_array(dk, sizeof(float));
    h->z = alloc_array((size_t)batch * (size_t)k, sizeof(float));
    h->gblk = alloc_array((size_t)h->nthreads * h->blk * (size_t)k, sizeof(float));
    h->blkpen = alloc_array(cap_d / h->blk + 1, sizeof(double));
    h->zpart = alloc_array(head_groups(h, cap_d) * (size_t)batch * (size_t)k, sizeof(float));
    h->run0 = alloc_array(2 * (size_t)batch, sizeof(size_t));
    h->runlen = alloc_array(2 * (size_t)batch, sizeof(size_t));
    if (!h->w || !h->mw || !h->vw || !h->b || !h->mb || !h->vb || !h->gb || !h->gw || !h->z || !h->gblk ||
        !h->blkpen || !h->zpart || !h->run0 || !h->runlen) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", last_error());
        lasso_head_free(h);
        set_error("lasso head of %zu x %d: %s", cap_d, k, msg);
        return -1;
    }
    return 0;
}

void lasso_head_free(lasso_head *h)
{
    free_array(h->w);
    free_array(h->mw);
    free_array(h->vw);
    free_array(h->b);
    free_array(h->mb);
    free_array(h->vb);
    free_array(h->gb);
    free_array(h->gw);
    free_array(h->z);
    free_array(h->gblk);
    free_array(h->blkpen);
    free_array(h->zpart);
    free_array(h->run0);
    free_array(h->runlen);
    memset(h, 0, sizeof *h);
}

static void head_reset(lasso_head *h, size_t d)
{
    h->d = d;
    size_t dk = d * (size_t)h->k;
    memset(h->mw, 0, dk * sizeof(float));
    memset(h->vw, 0, dk * sizeof(float));
    for (int c = 0; c < h->k; c++) h->b[c] = h->mb[c] = h->vb[c] = 0.0f;
}

void lasso_head_init_glorot(lasso_head *h, size_t d, uint64_t seed)
{
    head_reset(h, d);
    double limit = sqrt(6.0 / ((double)d + (double)h->k));
    rng_t r;
    rng_seed(&r, seed);
    size_t dk = d * (size_t)h->k;
    for (size_t i = 0; i < dk; i++) h->w[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * limit);
}

void lasso_head_init_from(lasso_head *h, size_t d, const float *w0)
{
    head_reset(h, d);
    memcpy(h->w, w0, d * (size_t)h->k * sizeof(float));
}

/* ==========================================================================
 * What both steps share: the softmax cross-entropy, the penalties, Adam */

/* G entries smaller than this in magnitude are set to 0 (docs/ALGORITHM.md
 * §6 step 3): their products with features fall below float's normal
 * range, where x86 CPUs take a microcode slow path on every multiply-add
 * that touches one (a T 8192 scoring run ran 2.3x slower). Ours, as TF's
 * CPU threads flush such numbers to zero. */
#define G_FLUSH 0x1p-100

/* In place: z[B, k] logits -> G = (softmax(z) - onehot(y)) * scale, with
 * |G| < G_FLUSH set to 0. Returns sum_b CE_b (double). */
static double softmax_xent(float *z, size_t B, int k, const int *y, const size_t *rows, double scale)
{
    double ce = 0.0;
    for (size_t b = 0; b < B; b++) {
        float *zb = z + b * (size_t)k;
        int yb = y[rows[b]];
        float mx = zb[0];
        for (int c = 1; c < k; c++)
            if (zb[c] > mx) mx = zb[c];
        double sum = 0.0;
        for (int c = 0; c < k; c++) sum += exp((double)zb[c] - (double)mx);
        ce += log(sum) + (double)mx - (double)zb[yb];
        for (int c = 0; c < k; c++) {
            double p = exp((double)zb[c] - (double)mx) / sum;
            const double g = (p - (c == yb ? 1.0 : 0.0)) * scale;
            zb[c] = fabs(g) < G_FLUSH ? 0.0f : (float)g;
        }
    }
    return ce;
}

/* gb[k] = sum over the batch of G (fixed order). */
static void bias_grad(const float *g, size_t B, int k, float *gb)
{
    for (int c = 0; c < k; c++) gb[c] = 0.0f;
    for (size_t b = 0; b < B; b++)
        for (int c = 0; c < k; c++) gb[c] += g[b * (size_t)k + c];
}

/* sum_c w[c]^2 in double, in 8 interleaved partial sums (a fixed order, so
 * the compiler may vectorize it without changing the result). */
static inline double sum_squares(const float *w, int k)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int c = 0;
    for (; c + 8 <= k; c += 8)
        for (int q = 0; q < 8; q++) acc[q] += (double)w[c + q] * (double)w[c + q];
    for (; c < k; c++) acc[c % 8] += (double)w[c] * (double)w[c]; /* the tail: c % 8 < k % 8 */
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* One row w[k] of W: add the gradient of pen * P(w) to g[k] and return P(w).
 * Group: P = ||w||_2, gradient w / ||w|| (0 for a zero row: our choice of
 * subgradient). L1: P = sum |w|, gradient sign(w) (0 at 0). L2: sum w^2. */
static inline double penalty_row(lasso_penalty p, const float *w, float *g, int k, double pen)
{
    double v = 0.0;
    switch (p) {
    case PENALTY_NONE:
        break;
    case PENALTY_GROUP:
        v = sum_squares(w, k);
        v = sqrt(v);
        if (v > 0.0) {
            float s = (float)(pen / v);
            for (int c = 0; c < k; c++) g[c] += s * w[c];
        }
        break;
    case PENALTY_L1: {
        float s = (float)pen;
        for (int c = 0; c < k; c++) {
            v += fabs((double)w[c]);
            g[c] += w[c] > 0.0f ? s : w[c] < 0.0f ? -s : 0.0f;
        }
        break;
    }
    case PENALTY_L2: {
        float s = (float)(2.0 * pen);
        for (int c = 0; c < k; c++) {
            v += (double)w[c] * (double)w[c];
            g[c] += s * w[c];
        }
        break;
    }
    }
    return v;
}

/* penalty_row over the n rows of w [n, k] (gradients g [n, k]): their
 * penalty values added to sum, in row order. The group penalty 8 rows at a time,
 * with the same arithmetic per row as penalty_row, so that the compiler can
 * do the 8 rows' square roots and divisions in vector registers. */
static double penalty_rows(lasso_penalty p, const float *w, float *g, size_t n, int k, double pen, double sum)
{
    size_t j = 0;
    for (; p == PENALTY_GROUP && j + 8 <= n; j += 8) {
        double v[8], s[8];
        for (int r = 0; r < 8; r++) v[r] = sum_squares(w + (j + (size_t)r) * (size_t)k, k);
        for (int r = 0; r < 8; r++) v[r] = sqrt(v[r]);
        for (int r = 0; r < 8; r++) s[r] = pen / v[r]; /* used only where v > 0 */
        for (int r = 0; r < 8; r++) {
            const size_t o = (j + (size_t)r) * (size_t)k;
            if (v[r] > 0.0)
                for (int c = 0; c < k; c++) g[o + (size_t)c] += (float)s[r] * w[o + (size_t)c];
            sum += v[r];
        }
    }
    for (; j < n; j++) sum += penalty_row(p, w + j * (size_t)k, g + j * (size_t)k, k, pen);
    return sum;
}

/* TF Adam on one row (docs/ALGORITHM.md §6): the bias correction is folded into lr_t. (Vectorized
 * by the compiler: sqrtf and the division are correctly rounded either way;
 * -fno-math-errno lets sqrtf be the plain instruction.) */
static inline void adam_row(float *restrict w, float *restrict m, float *restrict v, const float *restrict g,
                            int k, float lr_t)
{
    const float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (int c = 0; c < k; c++) {
        m[c] = b1 * m[c] + c1 * g[c];
        v[c] = b2 * v[c] + c2 * g[c] * g[c];
        w[c] -= lr_t * m[c] / (sqrtf(v[c]) + ADAM_EPS);
    }
}

/* lr_t of step s (0-based): the cosine rate lr_s with Adam's bias
 * correction folded in (TF), rounded once to float. */
static float adam_rate(const lasso_opts *o, long s)
{
    const double lr_s = o->lr * 0.5 * (1.0 + cos(PI * (double)s / (double)o->steps));
    const double t = (double)(s + 1);
    return (float)(lr_s * sqrt(1.0 - pow(ADAM_B2, t)) / (1.0 - pow(ADAM_B1, t)));
}

/* ==========================================================================
 * The plain step: docs/ALGORITHM.md §6 as written */

double lasso_loss_grad(lasso_head *h, const lasso_data *X, const size_t *rows, size_t B, const lasso_opts *o)
{
    const size_t k = (size_t)h->k, NB = (size_t)o->batch;
    for (size_t i = 0; i < B; i++) /* z_i = x_i W */
        gemm(0, 0, 1, k, h->d, X->x + rows[i] * X->ld, X->ld, h->w, k, 0.0f, h->z + i * k, k);
    add_bias(h->z, B, h->k, h->b); /* + b */
    /* z -> G = (softmax(z) - onehot(y)) / NB, and the cross-entropy */
    const double ce = softmax_xent(h->z, B, h->k, X->y, rows, 1.0 / (double)NB);
    bias_grad(h->z, B, h->k, h->gb); /* gb = sum_i G_i */
    for (size_t i = 0; i < B; i++)   /* gW = sum_i x_i^T G_i */
        gemm(1, 0, h->d, k, 1, X->x + rows[i] * X->ld, X->ld, h->z + i * k, k, i ? 1.0f : 0.0f, h->gw, k);
    const double pen = (double)B / (double)NB * o->coef; /* + (B/NB) coef dP/dW_i, and P */
    double P = 0.0;
    for (size_t j = 0; j < h->d; j++) P += penalty_row(o->penalty, h->w + j * k, h->gw + j * k, h->k, pen);
    return ce / (double)NB + pen * P;
}

double lasso_step_ref(lasso_head *h, const lasso_data *X, const size_t *rows, size_t B, const lasso_opts *o, long s)
{
    const size_t k = (size_t)h->k;
    const double loss = lasso_loss_grad(h, X, rows, B, o);
    const float lr_t = adam_rate(o, s);
    for (size_t j = 0; j < h->d; j++) adam_row(h->w + j * k, h->mw + j * k, h->vw + j * k, h->gw + j * k, h->k, lr_t);
    adam_row(h->b, h->mb, h->vb, h->gb, h->k, lr_t);
    return loss;
}

/* ==========================================================================
 * The fused step: the plain step as one pass over W (the fast path) */

/* A batch of examples rows[0..B) as pieces of consecutive examples (runs),
 * each one strided block of X for gemm (a fold's training rows are two
 * ranges): piece r is rows[run0[r] .. run0[r] + runlen[r]). */
typedef struct {
    const size_t *rows;
    size_t B, nruns;
    const size_t *run0, *runlen;
} batch_view;

/* Cut rows[0..B) into runs, stored in run0[], runlen[] (room for B each). */
static batch_view batch_make(const size_t *rows, size_t B, size_t *run0, size_t *runlen)
{
    size_t nr = 0;
    for (size_t i = 0; i < B;) {
        size_t j = i + 1;
        while (j < B && rows[j] == rows[j - 1] + 1) j++;
        run0[nr] = i;
        runlen[nr] = j - i;
        nr++;
        i = j;
    }
    batch_view v = {rows, B, nr, run0, runlen};
    return v;
}

/* What one step does to one head's W: its penalty, the penalty's weight
 * (B/NB) coef, and the step's Adam rate. */
typedef struct {
    lasso_penalty p;
    double pen;
    float lr_t;
} step_rule;

/* A block of W's rows is processed in slices of LASSO_SLICE rows, so that
 * the slice of X a step reads (batch x LASSO_SLICE floats, 512 KiB) stays
 * in cache while every head trained together uses it. A multiple of
 * gemm's depth block, so that cutting a product's depth into slices
 * changes no bit (gemm.h). */
#define LASSO_SLICE (4 * GEMM_KC)

/* Rows [j0, j0+len) of block bi's share of the logits: zp[B, k] (+)=
 * X[rows, slice] W[slice] (added unless this is the group's first block's
 * first slice). gemm gives a row of zp the same bits whatever other rows
 * it computes. */
static void forward_slice(const lasso_head *h, const lasso_data *data, const batch_view *bv, size_t bi,
                          size_t j0, size_t len, int accumulate, float *zp)
{
    const size_t k = (size_t)h->k, d0 = bi * h->blk + j0;
    for (size_t r = 0; r < bv->nruns; r++) {
        size_t i = bv->run0[r];
        gemm(0, 0, bv->runlen[r], k, len, data->x + bv->rows[i] * data->ld + d0, data->ld, h->w + d0 * k, k,
             accumulate || j0 > 0 ? 1.0f : 0.0f, zp + i * k, k);
    }
}

/* Rows [j0, j0+len) of block bi of W, given their cross-entropy gradient
 * g [len, k]: plus the penalty, then Adam. Returns the penalty value of the
 * slice's rows before the update, summed in row order onto sum. */
static double apply_slice(lasso_head *h, const step_rule *rule, size_t bi, size_t j0, size_t len, float *g,
                          double sum)
{
    const size_t k = (size_t)h->k, d0 = bi * h->blk + j0;
    sum = penalty_rows(rule->p, h->w + d0 * k, g, len, (int)k, rule->pen, sum);
    const size_t o = d0 * k; /* Adam is elementwise: the slice's rows as one run */
    adam_row(h->w + o, h->mw + o, h->vw + o, g, (int)(len * k), rule->lr_t);
    return sum;
}

/* Rows [j0, j0+len) of block bi of W: the cross-entropy gradient
 * X_b[:, slice]^T G (gemm into the thread's buffer g), then apply_slice. */
static double update_slice(lasso_head *h, const lasso_data *data, const batch_view *bv, const step_rule *rule,
                           size_t bi, size_t j0, size_t len, float *g, double sum)
{
    const size_t k = (size_t)h->k, d0 = bi * h->blk + j0;
    for (size_t r = 0; r < bv->nruns; r++) {
        size_t i = bv->run0[r];
        gemm(1, 0, len, k, bv->runlen[r], data->x + bv->rows[i] * data->ld + d0, data->ld, h->z + i * k, k,
             r ? 1.0f : 0.0f, g, k);
    }
    return apply_slice(h, rule, bi, j0, len, g, sum);
}

/* The number of rows in block bi. */
static size_t block_rows(const lasso_head *h, size_t bi)
{
    const size_t d0 = bi * h->blk;
    return h->d - d0 < h->blk ? h->d - d0 : h->blk;
}

/* z[B, k] = the groups' partial sums, added in group order, + b. */
static void sum_groups(lasso_head *h, size_t B)
{
    size_t n = B * (size_t)h->k, ng = head_groups(h, h->d), stride = (size_t)h->batch * (size_t)h->k;
    float *z = h->z;
    memcpy(z, h->zpart, n * sizeof(float));
    for (size_t q = 1; q < ng; q++) {
        const float *zp = h->zpart + q * stride;
        for (size_t i = 0; i < n; i++) z[i] += zp[i];
    }
    add_bias(z, B, h->k, h->b);
}

/* The blocks of group q: [*b0, *b1). */
static void group_blocks(const lasso_head *h, size_t q, size_t *b0, size_t *b1)
{
    size_t nb = head_blocks(h, h->d), ng = head_groups(h, h->d);
    *b0 = q * nb / ng;
    *b1 = (q + 1) * nb / ng;
}

static void forward_group(lasso_head *h, const lasso_data *data, const batch_view *bv, size_t q)
{
    size_t b0, b1;
    group_blocks(h, q, &b0, &b1);
    for (size_t bi = b0; bi < b1; bi++)
        forward_slice(h, data, bv, bi, 0, block_rows(h, bi), bi > b0, h->zpart + q * (size_t)h->batch * (size_t)h->k);
}

/* z[B, k] = X[rows] W + b for each of the nh heads (same d and k), group
 * by group: in parallel over the groups, or, for a single group, outside
 * any parallel region so that gemm uses the threads (a gemm inside a
 * parallel region runs on one: a nested team would start new threads on
 * every call). */
static void forward(lasso_head *const *h, int nh, const lasso_data *data, const size_t *rows, size_t B)
{
    batch_view bv = batch_make(rows, B, h[0]->run0, h[0]->runlen);
    long ng = (long)head_groups(h[0], h[0]->d);
    if (ng == 1) {
        for (int i = 0; i < nh; i++) forward_group(h[i], data, &bv, 0);
    } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(h[0]->nthreads)
        for (long q = 0; q < ng; q++)
            for (int i = 0; i < nh; i++) forward_group(h[i], data, &bv, (size_t)q);
    }
    for (int i = 0; i < nh; i++) sum_groups(h[i], B);
}

/* Group q's blocks of one head: update, then (next) their share of the
 * next logits, slice by slice; blkpen gets each block's penalty value.
 * t: the thread's gradient scratch. */
static void update_group(lasso_head *h, const step_rule *r, const lasso_data *data, const batch_view *cur,
                         const batch_view *next, size_t q, int t)
{
    size_t b0, b1;
    group_blocks(h, q, &b0, &b1);
    for (size_t bi = b0; bi < b1; bi++) {
        const size_t nb = block_rows(h, bi);
        double sum = 0.0;
        for (size_t j0 = 0; j0 < nb; j0 += LASSO_SLICE) {
            const size_t len = nb - j0 < LASSO_SLICE ? nb - j0 : LASSO_SLICE;
            sum = update_slice(h, data, cur, r, bi, j0, len, h->gblk + (size_t)t * h->blk * h->k, sum);
            if (next) forward_slice(h, data, next, bi, j0, len, bi > b0, h->zpart + q * (size_t)h->batch * h->k);
        }
        h->blkpen[bi] = sum;
    }
}

/* Several heads side by side (lasso_train_many): their G, W slices and
 * gradients interleaved, nh k columns, so that one product serves them
 * all (gemm: each column summed as alone, so each head gets its own bits).
 * The buffers, allocated once per run: */
typedef struct {
    int nh;
    size_t kk;   /* nh k columns */
    float *gs;   /* [batch, kk] the step's G of every head */
    float *zs;   /* [groups, batch, kk] each group's partial next logits */
    float *ws;   /* [threads, LASSO_SLICE, kk] a slice of every head's W */
    float *gws;  /* [threads, LASSO_SLICE, kk] their gradients */
} head_stack;

static void stack_free(head_stack *st)
{
    free_array(st->gs);
    free_array(st->zs);
    free_array(st->ws);
    free_array(st->gws);
}

static int stack_alloc(head_stack *st, lasso_head *const *h, int nh)
{
    const size_t kk = (size_t)nh * (size_t)h[0]->k, slice = (size_t)h[0]->nthreads * LASSO_SLICE * kk;
    *st = (head_stack){nh, kk, NULL, NULL, NULL, NULL};
    st->gs = alloc_array((size_t)h[0]->batch * kk, sizeof(float));
    st->zs = alloc_array(head_groups(h[0], h[0]->d) * (size_t)h[0]->batch * kk, sizeof(float));
    st->ws = alloc_array(slice, sizeof(float));
    st->gws = alloc_array(slice, sizeof(float));
    if (st->gs && st->zs && st->ws && st->gws) return 0;
    stack_free(st);
    return -1;
}

/* Group q's blocks of every head, as update_group does for one: the
 * gradient of a slice of all heads in one product, then each head's
 * penalty and Adam (from its columns, copied out), then the slice of all
 * heads' new W side by side and its share of all next logits in one
 * product, into the group's partial sums, copied to each head's at the end. */
static void update_group_stacked(const head_stack *st, lasso_head *const *h, const step_rule *r,
                                 const lasso_data *data, const batch_view *cur, const batch_view *next, size_t q,
                                 int t)
{
    const size_t k = (size_t)h[0]->k, kk = st->kk, nbatch = (size_t)h[0]->batch;
    float *ws = st->ws + (size_t)t * LASSO_SLICE * kk, *gws = st->gws + (size_t)t * LASSO_SLICE * kk;
    float *zs = st->zs + q * nbatch * kk;
    size_t b0, b1;
    group_blocks(h[0], q, &b0, &b1);
    for (size_t bi = b0; bi < b1; bi++) {
        const size_t nb = block_rows(h[0], bi);
        double sum[LASSO_MANY] = {0};
        for (size_t j0 = 0; j0 < nb; j0 += LASSO_SLICE) {
            const size_t len = nb - j0 < LASSO_SLICE ? nb - j0 : LASSO_SLICE, d0 = bi * h[0]->blk + j0;
            for (size_t u = 0; u < cur->nruns; u++) {
                const size_t i = cur->run0[u];
                gemm(1, 0, len, kk, cur->runlen[u], data->x + cur->rows[i] * data->ld + d0, data->ld, st->gs + i * kk,
                     kk, u ? 1.0f : 0.0f, gws, kk);
            }
            for (int m = 0; m < st->nh; m++) {
                float *g = h[m]->gblk + (size_t)t * h[m]->blk * k;
                for (size_t j = 0; j < len; j++) memcpy(g + j * k, gws + j * kk + (size_t)m * k, k * sizeof(float));
                sum[m] = apply_slice(h[m], &r[m], bi, j0, len, g, sum[m]);
            }
            if (!next) continue;
            for (size_t j = 0; j < len; j++)
                for (int m = 0; m < st->nh; m++)
                    memcpy(ws + j * kk + (size_t)m * k, h[m]->w + (d0 + j) * k, k * sizeof(float));
            for (size_t u = 0; u < next->nruns; u++) {
                const size_t i = next->run0[u];
                gemm(0, 0, next->runlen[u], kk, len, data->x + next->rows[i] * data->ld + d0, data->ld, ws, kk,
                     bi > b0 || j0 > 0 ? 1.0f : 0.0f, zs + i * kk, kk);
            }
        }
        for (int m = 0; m < st->nh; m++) h[m]->blkpen[bi] = sum[m];
    }
    for (size_t b = 0; next && b < next->B; b++)
        for (int m = 0; m < st->nh; m++)
            memcpy(h[m]->zpart + (q * nbatch + b) * k, zs + b * kk + (size_t)m * k, k * sizeof(float));
}

/* The fused pass over W of each head: every block updated and, if there
 * is a next batch, its share of the next logits computed while it is in
 * cache. Groups of blocks are independent and go to the threads (a gemm
 * inside a parallel loop runs on one thread; a single group lets gemm use
 * them); the blocks' penalty values are summed afterwards in block order.
 * st: several heads side by side (NULL: one head). P[i]: head i's penalty
 * P(W) before the update. */
static void update_w(lasso_head *const *h, const step_rule *r, int nh, const head_stack *st,
                     const lasso_data *data, const batch_view *cur, const batch_view *next, double *P)
{
    long ng = (long)head_groups(h[0], h[0]->d);
    if (ng == 1) { /* outside a parallel region, as in forward() */
        if (st) update_group_stacked(st, h, r, data, cur, next, 0, 0);
        else update_group(h[0], r, data, cur, next, 0, 0);
    } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(h[0]->nthreads)
        for (long q = 0; q < ng; q++) {
            int t = 0;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            if (st) update_group_stacked(st, h, r, data, cur, next, (size_t)q, t);
            else update_group(h[0], r, data, cur, next, (size_t)q, t);
        }
    }
    size_t nblocks = head_blocks(h[0], h[0]->d);
    for (int i = 0; i < nh; i++) {
        P[i] = 0.0;
        for (size_t bi = 0; bi < nblocks; bi++) P[i] += h[i]->blkpen[bi];
    }
}

/* ==========================================================================
 * Training: the run of steps over cycling batches; prediction */

/* The batch at pos has min(NB, nrows - pos) rows; the next one starts
 * after it, or at 0 when the pass over rows is done (§6). */
static size_t batch_at(size_t pos, size_t nrows, size_t NB) { return nrows - pos < NB ? nrows - pos : NB; }
static size_t next_pos(size_t pos, size_t B, size_t nrows) { return pos + B == nrows ? 0 : pos + B; }

typedef struct {
    const char *label;        /* NULL: silent */
    double t0, shown;
} step_progress;

/* After step s: record the loss, refuse a non-finite one, report progress. */
static int after_step(const lasso_opts *o, long s, double loss, double *losses, step_progress *p)
{
    if (losses) losses[s] = loss;
    if (!isfinite(loss)) {
        set_error("training diverged: loss %g at step %ld (lr %g, coef %g)", loss, s, o->lr, o->coef);
        return -1;
    }
    if (p->label) {
        const double now = now_seconds();
        if (now - p->shown >= 2.0) {
            fprintf(stderr, "%s: step %ld/%ld loss %.5f (%.1f s)\n", p->label, s + 1, o->steps, loss, now - p->t0);
            p->shown = now;
        }
    }
    return 0;
}

static int train_plain(lasso_head *h, const lasso_data *X, const size_t *rows, size_t nrows, const lasso_opts *o,
                       double *losses, step_progress *p)
{
    size_t pos = 0;
    for (long s = 0; s < o->steps; s++) {
        const size_t B = batch_at(pos, nrows, (size_t)o->batch);
        if (after_step(o, s, lasso_step_ref(h, X, rows + pos, B, o, s), losses, p)) return -1;
        pos = next_pos(pos, B, nrows);
    }
    return 0;
}

/* The fused run of nh heads over the same batches (o[i]: head i's lr,
 * coef and penalty; the steps and batch size are o[0]'s): the first
 * logits come from a forward pass, every later step's from the previous
 * step's pass over W. Each head's arithmetic is the same as alone. */
static int train_fused(lasso_head *const *h, const lasso_opts *o, int nh, const head_stack *st, const lasso_data *X,
                       const size_t *rows, size_t nrows, double *losses, step_progress *p)
{
    const size_t NB = (size_t)o[0].batch;
    size_t pos = 0, B = batch_at(0, nrows, NB);
    step_rule r[LASSO_MANY];
    double P[LASSO_MANY], ce[LASSO_MANY];
    step_progress quiet = {NULL, 0, 0}; /* heads after the first: no progress lines */
    forward(h, nh, X, rows, B);
    for (long s = 0; s < o[0].steps; s++) {
        const size_t *br = rows + pos, npos = next_pos(pos, B, nrows), nB = batch_at(npos, nrows, NB);
        for (int i = 0; i < nh; i++) {
            ce[i] = softmax_xent(h[i]->z, B, h[i]->k, X->y, br, 1.0 / (double)NB);
            bias_grad(h[i]->z, B, h[i]->k, h[i]->gb);
            r[i] = (step_rule){o[i].penalty, (double)B / (double)NB * o[i].coef, adam_rate(&o[i], s)};
        }
        for (size_t b = 0; st && b < B; b++) /* the heads' G side by side */
            for (int i = 0; i < nh; i++)
                memcpy(st->gs + b * st->kk + (size_t)i * h[i]->k, h[i]->z + b * h[i]->k, (size_t)h[i]->k * sizeof(float));
        const batch_view cur = batch_make(br, B, h[0]->run0, h[0]->runlen);
        const batch_view next = batch_make(rows + npos, nB, h[0]->run0 + h[0]->batch, h[0]->runlen + h[0]->batch);
        const int last = s + 1 == o[0].steps;
        update_w(h, r, nh, st, X, &cur, last ? NULL : &next, P);
        for (int i = 0; i < nh; i++) {
            adam_row(h[i]->b, h[i]->mb, h[i]->vb, h[i]->gb, h[i]->k, r[i].lr_t);
            if (!last) sum_groups(h[i], nB); /* the next step's logits, with the new b */
            if (after_step(&o[i], s, ce[i] / (double)NB + r[i].pen * P[i], nh == 1 ? losses : NULL, i ? &quiet : p))
                return -1;
        }
        pos = npos;
        B = nB;
    }
    return 0;
}

static int check_sizes(const lasso_head *h, const lasso_data *X, size_t nrows, const lasso_opts *o)
{
    if (o->batch < 1 || o->batch > h->batch || nrows == 0 || o->steps < 1 || h->d > X->d || X->k != h->k) {
        set_error("lasso_train: inconsistent sizes (batch %d of %d, %zu rows, %ld steps, d %zu of %zu, "
                  "k %d/%d)", o->batch, h->batch, nrows, o->steps, h->d, X->d, h->k, X->k);
        return -1;
    }
    return 0;
}

int lasso_train_ref(lasso_head *h, const lasso_data *X, const size_t *rows, size_t nrows, const lasso_opts *o,
                    double *losses)
{
    step_progress p = {NULL, 0, 0};
    return check_sizes(h, X, nrows, o) ? -1 : train_plain(h, X, rows, nrows, o, losses, &p);
}

/* Below this many multiply-adds per step, a run uses one thread: the time of
 * a parallel region (and, on a busy machine, of threads waiting for a core)
 * would exceed the work. The results are the same either way. */
#define LASSO_PARALLEL_MIN ((size_t)1 << 24)

/* train_fused on one thread when the run is small (LASSO_PARALLEL_MIN). */
static int train_fused_sized(lasso_head *const *h, const lasso_opts *o, int nh, const head_stack *st,
                             const lasso_data *X, const size_t *rows, size_t nrows, double *losses, step_progress *p)
{
#ifdef _OPENMP
    const int nt = h[0]->nthreads, saved = omp_get_max_threads();
    if (nt > 1 && (size_t)nh * (size_t)h[0]->batch * h[0]->d * (size_t)h[0]->k < LASSO_PARALLEL_MIN) {
        for (int i = 0; i < nh; i++) h[i]->nthreads = 1;
        omp_set_num_threads(1);
        const int rc = train_fused(h, o, nh, st, X, rows, nrows, losses, p);
        omp_set_num_threads(saved);
        for (int i = 0; i < nh; i++) h[i]->nthreads = nt;
        return rc;
    }
#endif
    return train_fused(h, o, nh, st, X, rows, nrows, losses, p);
}

int lasso_train(lasso_head *h, const lasso_data *X, const size_t *rows, size_t nrows, const lasso_opts *o,
                double *losses, const char *label)
{
    if (check_sizes(h, X, nrows, o)) return -1;
    step_progress p = {label, now_seconds(), now_seconds()};
    if (REFERENCE_BUILD) return train_plain(h, X, rows, nrows, o, losses, &p);
    return train_fused_sized(&h, o, 1, NULL, X, rows, nrows, losses, &p);
}

int lasso_train_many(lasso_head *const *h, const lasso_opts *o, int nh, const lasso_data *X, const size_t *rows,
                     size_t nrows, const char *label)
{
    if (nh < 1 || nh > LASSO_MANY) {
        set_error("lasso_train_many: 1 to %d heads, got %d", LASSO_MANY, nh);
        return -1;
    }
    for (int i = 0; i < nh; i++) {
        if (check_sizes(h[i], X, nrows, &o[i])) return -1;
        if (h[i]->d != h[0]->d || h[i]->k != h[0]->k || h[i]->batch != h[0]->batch || h[i]->blk != h[0]->blk ||
            h[i]->nthreads != h[0]->nthreads || o[i].steps != o[0].steps || o[i].batch != o[0].batch) {
            set_error("lasso_train_many: the heads differ in size, batch or steps");
            return -1;
        }
    }
    step_progress p = {label, now_seconds(), now_seconds()};
    if (REFERENCE_BUILD) { /* the plain runs, one after the other */
        for (int i = 0; i < nh; i++)
            if (train_plain(h[i], X, rows, nrows, &o[i], NULL, &p)) return -1;
        return 0;
    }
    if (nh == 1) return train_fused_sized(h, o, 1, NULL, X, rows, nrows, NULL, &p);
    head_stack st;
    if (stack_alloc(&st, h, nh)) return -1;
    const int rc = train_fused_sized(h, o, nh, &st, X, rows, nrows, NULL, &p);
    stack_free(&st);
    return rc;
}

size_t lasso_predict(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows, int *pred)
{
    size_t correct = 0, k = (size_t)h->k;
    for (size_t pos = 0; pos < nrows; pos += (size_t)h->batch) {
        size_t B = nrows - pos < (size_t)h->batch ? nrows - pos : (size_t)h->batch;
        forward(&h, 1, data, rows + pos, B);
        for (size_t b = 0; b < B; b++) {
            const float *zb = h->z + b * k;
            int best = 0;
            for (int c = 1; c < h->k; c++)
                if (zb[c] > zb[best]) best = c;
            if (pred) pred[pos + b] = best;
            correct += best == data->y[rows[pos + b]];
        }
    }
    return correct;
}

/* ==========================================================================
 * Selection: scores, top-k, gathering with renormalization, the scoring run */

void lasso_scores(const float *w, size_t d, int k, double *s)
{
    long dl = (long)d;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < dl; i++) s[i] = sum_squares(w + (size_t)i * (size_t)k, k);
}

size_t lasso_keep_count(size_t d, double fraction)
{
    double x = (double)d * fraction; /* Python's int(D * F) */
    size_t keep = x >= (double)d ? d : (size_t)x;
    return keep < 1 ? 1 : keep;
}

typedef struct {
    double s;
    int64_t i;
} scored;

/* Descending score, NaN last, ties to the lower index: a total order, so
 * the result does not depend on the qsort implementation. */
static int cmp_scored(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    int an = isnan(a->s) != 0, bn = isnan(b->s) != 0; /* isnan: any nonzero (-1 on mingw-w64) */
    if (an != bn) return an - bn;
    if (!an && a->s != b->s) return a->s > b->s ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int cmp_i64(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

int lasso_select(const double *s, size_t d, size_t keep, int64_t *sel)
{
    return lasso_select_offset(s, d, 0, keep, sel);
}

int lasso_select_offset(const double *s, size_t d, size_t offset, size_t keep, int64_t *sel)
{
    if (offset > d) offset = d;
    if (keep > d - offset) keep = d - offset;
    scored *a = alloc_array(d, sizeof *a);
    if (!a) return -1;
    for (size_t i = 0; i < d; i++) {
        a[i].s = s[i];
        a[i].i = (int64_t)i;
    }
    qsort(a, d, sizeof *a, cmp_scored);
    for (size_t i = 0; i < keep; i++) sel[i] = a[offset + i].i;
    qsort(sel, keep, sizeof *sel, cmp_i64);
    free_array(a);
    return 0;
}

void lasso_gather(const float *x, size_t n, size_t ld, const feat_layout *l, const int64_t *sel,
                  size_t nsel, float *out)
{
    const long nl = (long)n;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < nl; i++) {
        const float *xi = x + (size_t)i * ld;
        float *oi = out + (size_t)i * nsel;
        for (size_t j = 0; j < nsel; j++) oi[j] = xi[sel[j]];
        renormalize_selected(oi, sel, nsel, l);
    }
}

int lasso_scoring_run(lasso_head *sc, const lasso_data *X, const size_t *rows, size_t nrows, const lasso_opts *o,
                      uint64_t seed, double *s, const char *progress)
{
    lasso_head_init_glorot(sc, X->d, seed);
    if (lasso_train(sc, X, rows, nrows, o, NULL, progress)) return -1;
    lasso_scores(sc->w, X->d, X->k, s);
    return 0;
}

/* ==========================================================================
 * Fitted heads */

void fitted_head_free(fitted_head *h)
{
    free_array(h->selected);
    free_array(h->w);
    free_array(h->b);
    memset(h, 0, sizeof *h);
}

void head_predict(const fitted_head *h, const float *x, size_t n, size_t ld, float *z, int *pred)
{
    const size_t k = (size_t)h->k;
    gemm(0, 0, n, k, h->nsel, x, ld, h->w, k, 0.0f, z, k);
    add_bias(z, n, h->k, h->b);
    for (size_t i = 0; i < n; i++) {
        const float *zi = z + i * k;
        size_t best = 0;
        for (size_t c = 1; c < k; c++)
            if (zi[c] > zi[best]) best = c;
        pred[i] = (int)best;
    }
}

void tally(const int *pred, const int *y, size_t n, size_t *correct, size_t *count)
{
    for (size_t i = 0; i < n; i++) {
        count[y[i]]++;
        correct[y[i]] += pred[i] == y[i];
    }
}
