/* lasso.c: Head2Toe's feature selection and heads (SPEC sections 5, 6, 7).
 *
 * Sections, in the order the method uses them:
 *   layout      which location a column belongs to (F.layout.tsv, features.c)
 *   head        a linear softmax head: forward, cross-entropy, penalties,
 *               TF-style Adam with cosine decay, one fused pass per step
 *   selection   scores, top-k with ties to the lower index, per-location
 *               renormalization of the selected features
 *   fit         5-fold cross-validation over a grid and the final head,
 *               for Head2Toe and the Linear / All-l* baselines
 *   files       labels, the head directory, cv.tsv, report.json, eval
 *
 * One step of training on a batch of B examples (nominal batch NB = 128):
 *   z = X_b W + b                                   gemm, [B, K]
 *   loss = (1/NB) sum_b CE(z_b, y_b) + (B/NB) coef sum_i ||W_i||_2
 *   G = (softmax(z) - onehot(y)) / NB               dLoss/dz, [B, K]
 *   then for each block of rows of W (one pass over W, m, v):
 *     g = X_b[:, block]^T G                         gemm, [blk, K]
 *     g_i += (B/NB) coef W_i / ||W_i||              (0 for a zero row: the
 *                                                   subgradient we choose)
 *     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *     W -= lr_t m / (sqrt(v) + 1e-7),  lr_t = lr_s sqrt(1-b2^t) / (1-b1^t),
 *     lr_s = lr0 (1 + cos(pi s / S)) / 2 for step s = 0..S-1, t = s + 1,
 *     and, while the block is in cache, its share of the next step's logits
 *     X_next[:, block] W[block]                     gemm, [B, K]
 * so one step reads W, m, v and each batch's features once. The logits are
 * summed over groups of blocks: each group's partial sum, then the groups in
 * order (the same sums whether or not the forward pass is fused).
 * Every parallel loop runs over independent rows (or groups of rows of W,
 * each with its own partial sum) and every sum has a fixed order, so
 * results are identical for any number of threads.
 *
 * Memory: the caller's feature matrix (4 n D bytes; folds and batches only
 * index its rows, nothing copies it), the scoring head W, m, v (12 D K
 * bytes), one block of gradient rows per thread, the groups' partial logits
 * (at most 64 x batch x K floats), and for the final heads the selected
 * columns of all n examples (4 n D F bytes). At n = 1000, D = 3M, K = 10
 * `h2t score` peaks at 12.1 GB, `h2t fit` at 12.2 GB (bench/lasso_memory.sh). */
#include "lasso.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "npy.h"
#include "tensor.h"
#include "util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define PI 3.14159265358979323846

/* ==========================================================================
 * Layout (the file format and its reader are features.c's) */

int lasso_location_of(const feat_layout *l, size_t j)
{
    if (j >= l->d) return -1;
    int lo = 0, hi = l->n - 1; /* the last location with offset <= j */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->e[mid].offset <= j) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int layout_index(const feat_layout *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->e[i].name, name) == 0) return i;
    return -1;
}

/* ==========================================================================
 * Head: allocation and initialization */

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
    h->z = alloc_array((size_t)batch * (size_t)k, sizeof(float));
    h->gblk = alloc_array((size_t)h->nthreads * h->blk * (size_t)k, sizeof(float));
    h->blkpen = alloc_array(cap_d / h->blk + 1, sizeof(double));
    h->zpart = alloc_array(head_groups(h, cap_d) * (size_t)batch * (size_t)k, sizeof(float));
    h->run0 = alloc_array(2 * (size_t)batch, sizeof(size_t));
    h->runlen = alloc_array(2 * (size_t)batch, sizeof(size_t));
    if (!h->w || !h->mw || !h->vw || !h->b || !h->mb || !h->vb || !h->gb || !h->z || !h->gblk ||
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
 * Head: the pieces of one step */

#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-7f

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

/* Block bi's share of the logits: zp[B, k] (+)= X[rows, block] W[block].
 * gemm gives a row of zp the same bits whatever other rows it computes. */
static void forward_block(const lasso_head *h, const lasso_data *data, const batch_view *bv, size_t bi,
                          int accumulate, float *zp)
{
    size_t k = (size_t)h->k, d0 = bi * h->blk, nb = h->d - d0 < h->blk ? h->d - d0 : h->blk;
    for (size_t r = 0; r < bv->nruns; r++) {
        size_t i = bv->run0[r];
        gemm(0, 0, bv->runlen[r], k, nb, data->x + bv->rows[i] * data->ld + d0, data->ld, h->w + d0 * k, k,
             accumulate ? 1.0f : 0.0f, zp + i * k, k);
    }
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
        forward_block(h, data, bv, bi, bi > b0, h->zpart + q * (size_t)h->batch * (size_t)h->k);
}

/* z[B, k] = X[rows] W + b, group by group: in parallel over the groups, or,
 * for a single group, outside any parallel region so that gemm uses the
 * threads (a gemm inside a parallel region runs on one: a nested team
 * would start new threads on every call). */
static void forward(lasso_head *h, const lasso_data *data, const size_t *rows, size_t B)
{
    batch_view bv = batch_make(rows, B, h->run0, h->runlen);
    long ng = (long)head_groups(h, h->d);
    if (ng == 1) {
        forward_group(h, data, &bv, 0);
    } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(h->nthreads)
        for (long q = 0; q < ng; q++) forward_group(h, data, &bv, (size_t)q);
    }
    sum_groups(h, B);
}

/* In place: z[B, k] logits -> G = (softmax(z) - onehot(y)) * scale.
 * Returns sum_b CE_b (double). */
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
            zb[c] = (float)((p - (c == yb ? 1.0 : 0.0)) * scale);
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
    for (; c < k; c++) acc[c - (k & ~7)] += (double)w[c] * (double)w[c];
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

/* TF Adam on one row: the bias correction is folded into lr_t. (Vectorized
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

/* The fused pass over W: for each block of rows, the cross-entropy gradient
 * X_b[:, block]^T G (gemm into the thread's cache-sized buffer), plus the
 * penalty, then Adam, row by row, then (if there is a next batch) the
 * block's share of the next logits. Groups of blocks are independent and go
 * to the threads (a gemm inside a parallel loop runs on one thread; a single
 * block lets gemm use them); the blocks' penalty values are summed
 * afterwards in block order. Returns the penalty P(W) before the update. */
static void update_block(lasso_head *h, const lasso_data *data, const batch_view *bv, lasso_penalty p,
                         double pen, float lr_t, size_t bi, float *g)
{
    size_t k = (size_t)h->k, d0 = bi * h->blk, nb = h->d - d0 < h->blk ? h->d - d0 : h->blk;
    for (size_t r = 0; r < bv->nruns; r++) {
        size_t i = bv->run0[r];
        gemm(1, 0, nb, k, bv->runlen[r], data->x + bv->rows[i] * data->ld + d0, data->ld, h->z + i * k, k,
             r ? 1.0f : 0.0f, g, k);
    }
    double sum = 0.0;
    for (size_t j = 0; j < nb; j++) {
        size_t o = (d0 + j) * k;
        sum += penalty_row(p, h->w + o, g + j * k, (int)k, pen);
        adam_row(h->w + o, h->mw + o, h->vw + o, g + j * k, (int)k, lr_t);
    }
    h->blkpen[bi] = sum;
}

/* Group q's blocks: update, then (next) their share of the next logits;
 * t: the thread's gradient scratch. */
static void update_group(lasso_head *h, const lasso_data *data, const batch_view *cur, const batch_view *next,
                         lasso_penalty p, double pen, float lr_t, size_t q, int t)
{
    size_t b0, b1;
    group_blocks(h, q, &b0, &b1);
    for (size_t bi = b0; bi < b1; bi++) {
        update_block(h, data, cur, p, pen, lr_t, bi, h->gblk + (size_t)t * h->blk * h->k);
        if (next) forward_block(h, data, next, bi, bi > b0, h->zpart + q * (size_t)h->batch * (size_t)h->k);
    }
}

static double update_w(lasso_head *h, const lasso_data *data, const batch_view *cur, const batch_view *next,
                       lasso_penalty p, double pen, float lr_t)
{
    long ng = (long)head_groups(h, h->d);
    if (ng == 1) { /* outside a parallel region, as in forward() */
        update_group(h, data, cur, next, p, pen, lr_t, 0, 0);
    } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(h->nthreads)
        for (long q = 0; q < ng; q++) {
            int t = 0;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            update_group(h, data, cur, next, p, pen, lr_t, (size_t)q, t);
        }
    }
    double total = 0.0;
    size_t nblocks = head_blocks(h, h->d);
    for (size_t bi = 0; bi < nblocks; bi++) total += h->blkpen[bi];
    return total;
}

/* ==========================================================================
 * Head: training, loss and gradient, prediction */

static int train_steps(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows,
                const lasso_opts *o, double *losses, const char *progress)
{
    if (o->batch < 1 || o->batch > h->batch || nrows == 0 || o->steps < 1 || h->d > data->d ||
        data->k != h->k) {
        set_error("lasso_train: inconsistent sizes (batch %d of %d, %zu rows, %ld steps, d %zu of %zu, "
                  "k %d/%d)", o->batch, h->batch, nrows, o->steps, h->d, data->d, h->k, data->k);
        return -1;
    }
    size_t NB = (size_t)o->batch, pos = 0, B = nrows < NB ? nrows : NB;
    double t_start = now_seconds(), t_last = t_start;
    forward(h, data, rows, B); /* later steps get their logits from the fused pass */
    for (long s = 0; s < o->steps; s++) {
        const size_t *br = rows + pos;
        size_t npos = pos + B == nrows ? 0 : pos + B, nB = nrows - npos < NB ? nrows - npos : NB;
        double ce = softmax_xent(h->z, B, h->k, data->y, br, 1.0 / (double)NB);
        bias_grad(h->z, B, h->k, h->gb);
        batch_view cur = batch_make(br, B, h->run0, h->runlen);
        batch_view next = batch_make(rows + npos, nB, h->run0 + h->batch, h->runlen + h->batch);

        double lr_s = o->lr * 0.5 * (1.0 + cos(PI * (double)s / (double)o->steps));
        double t = (double)(s + 1);
        float lr_t = (float)(lr_s * sqrt(1.0 - pow(ADAM_B2, t)) / (1.0 - pow(ADAM_B1, t)));
        double pen = (double)B / (double)NB * o->coef;
        int last = s + 1 == o->steps;
        double pval = update_w(h, data, &cur, last ? NULL : &next, o->penalty, pen, lr_t);
        adam_row(h->b, h->mb, h->vb, h->gb, h->k, lr_t);
        if (!last) sum_groups(h, nB); /* the next step's logits, with the new b */

        double loss = ce / (double)NB + pen * pval;
        if (losses) losses[s] = loss;
        if (!isfinite(loss)) {
            set_error("training diverged: loss %g at step %ld (lr %g, coef %g)", loss, s, o->lr, o->coef);
            return -1;
        }
        pos = npos;
        B = nB;
        if (progress) {
            double now = now_seconds();
            if (now - t_last >= 2.0) {
                fprintf(stderr, "%s: step %ld/%ld loss %.5f (%.1f s)\n", progress, s + 1, o->steps, loss,
                        now - t_start);
                t_last = now;
            }
        }
    }
    return 0;
}

/* Below this many multiply-adds per step, a run uses one thread: the time of
 * a parallel region (and, on a busy machine, of threads waiting for a core)
 * would exceed the work. The results are the same either way. */
#define LASSO_PARALLEL_MIN ((size_t)1 << 24)

int lasso_train(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows,
                const lasso_opts *o, double *losses, const char *progress)
{
#ifdef _OPENMP
    if ((size_t)h->batch * h->d * (size_t)h->k < LASSO_PARALLEL_MIN && h->nthreads > 1) {
        int nt = h->nthreads, saved = omp_get_max_threads();
        h->nthreads = 1;
        omp_set_num_threads(1);
        int rc = train_steps(h, data, rows, nrows, o, losses, progress);
        omp_set_num_threads(saved);
        h->nthreads = nt;
        return rc;
    }
#endif
    return train_steps(h, data, rows, nrows, o, losses, progress);
}

double lasso_loss_grad(lasso_head *h, const lasso_data *data, const size_t *rows, size_t B,
                       const lasso_opts *o, float *gw, float *gb)
{
    size_t k = (size_t)h->k, NB = (size_t)o->batch;
    forward(h, data, rows, B);
    double ce = softmax_xent(h->z, B, h->k, data->y, rows, 1.0 / (double)NB);
    bias_grad(h->z, B, h->k, gb);
    batch_view bv = batch_make(rows, B, h->run0, h->runlen);
    for (size_t r = 0; r < bv.nruns; r++) {
        size_t i = bv.run0[r];
        gemm(1, 0, h->d, k, bv.runlen[r], data->x + rows[i] * data->ld, data->ld, h->z + i * k, k,
             r ? 1.0f : 0.0f, gw, k);
    }
    double pen = (double)B / (double)NB * o->coef, pval = 0.0;
    for (size_t j = 0; j < h->d; j++) pval += penalty_row(o->penalty, h->w + j * k, gw + j * k, h->k, pen);
    return ce / (double)NB + pen * pval;
}

size_t lasso_predict(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows, int *pred)
{
    size_t correct = 0, k = (size_t)h->k;
    for (size_t pos = 0; pos < nrows; pos += (size_t)h->batch) {
        size_t B = nrows - pos < (size_t)h->batch ? nrows - pos : (size_t)h->batch;
        forward(h, data, rows + pos, B);
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
 * Selection: scores, top-k, per-location renormalization */

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
    if (keep > d) keep = d;
    scored *a = alloc_array(d, sizeof *a);
    if (!a) return -1;
    for (size_t i = 0; i < d; i++) {
        a[i].s = s[i];
        a[i].i = (int64_t)i;
    }
    qsort(a, d, sizeof *a, cmp_scored);
    for (size_t i = 0; i < keep; i++) sel[i] = a[i].i;
    qsort(sel, keep, sizeof *sel, cmp_i64);
    free_array(a);
    return 0;
}

void lasso_gather(const float *x, size_t n, size_t ld, const feat_layout *l, const int64_t *sel,
                  size_t nsel, float *out)
{
    long nl = (long)n;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < nl; i++) {
        const float *xi = x + (size_t)i * ld;
        float *oi = out + (size_t)i * nsel;
        for (size_t j = 0; j < nsel; j++) oi[j] = xi[sel[j]];
        /* sel is ascending, so each location's selected columns are one run */
        for (size_t j = 0; j < nsel;) {
            int loc = lasso_location_of(l, (size_t)sel[j]);
            size_t end = l->e[loc].offset + l->e[loc].dim, j1 = j;
            double ss = 0.0;
            for (; j1 < nsel && (size_t)sel[j1] < end; j1++) ss += (double)oi[j1] * (double)oi[j1];
            if (ss > 0.0) {
                double norm = sqrt(ss);
                for (size_t q = j; q < j1; q++) oi[q] = (float)((double)oi[q] / norm);
            }
            j = j1;
        }
    }
}

void lasso_fold_bounds(size_t n, int nfolds, int fold, size_t *start, size_t *end)
{
    *start = (size_t)fold * n / (size_t)nfolds;
    *end = (size_t)(fold + 1) * n / (size_t)nfolds;
}

/* ==========================================================================
 * Fit: cross-validation over the grid and the final head (SPEC section 7).
 * Head2Toe, for each (lr, steps, coef) and fold: one group-lasso scoring run
 * on the fold's training examples, then for each fraction F: select, gather
 * and renormalize, train a fresh head without penalty (same lr and steps),
 * validate. Linear: a head on the pre_logits location. All-l*: a head on all
 * features with the penalty. Seeds: the scoring head of fold f (f = 5 for
 * the final fit) is drawn from seed_mix(seed, 1, f) and the trained head
 * from seed_mix(seed, 2, f), so every grid point of a fold starts alike. */

const char *const lasso_method_names[] = {"head2toe", "linear", "all-l1", "all-l2", "all-l21", NULL};

static uint64_t seed_mix(uint64_t seed, uint64_t what, uint64_t fold)
{
    return seed ^ (what * 0x9E3779B97F4A7C15ull) ^ ((fold + 1) * 0xD1B54A32D192ED03ull);
}

typedef struct {
    const lasso_data *data;
    const feat_layout *l;
    const lasso_fit_config *cfg;
    lasso_head sc;       /* head2toe: the scoring head, [D, K] */
    lasso_head hd;       /* the head that is trained and validated */
    float *xs;           /* [n, nsel] the selected features, renormalized (head2toe, linear) */
    double *scores;      /* [D] head2toe */
    int64_t *sel;        /* [nsel] */
    size_t nsel;
    size_t *trows, *vrows; /* [n] training and validation examples */
} fit_ctx;

static void fit_ctx_free(fit_ctx *c)
{
    lasso_head_free(&c->sc);
    lasso_head_free(&c->hd);
    free_array(c->xs);
    free_array(c->scores);
    free_array(c->sel);
    free_array(c->trows);
    free_array(c->vrows);
}

/* Train for one (lr, steps, coef) on c->trows[0..ntr); for head2toe, one
 * scoring run and then one head per fraction fracs[0..nf). With nval > 0,
 * acc[f] = accuracy on c->vrows[0..nval). Afterwards c->hd (and c->sel,
 * c->nsel) hold the head of the last fraction. */
static int run_point(fit_ctx *c, double lr, long steps, double coef, const double *fracs, int nf,
                     size_t ntr, size_t nval, int fold, double *acc)
{
    const lasso_data *X = c->data;
    const lasso_fit_config *cfg = c->cfg;
    const lasso_opts plain = {lr, steps, 0.0, PENALTY_NONE, cfg->batch};
    char label[96];
    if (fold < LASSO_FOLDS)
        snprintf(label, sizeof label, "fit: fold %d lr %g steps %ld", fold + 1, lr, steps);
    else
        snprintf(label, sizeof label, "fit: final head lr %g steps %ld", lr, steps);
    const char *progress = cfg->quiet ? NULL : label;
    uint64_t head_seed = seed_mix(cfg->seed, 2, (uint64_t)fold);

    if (cfg->method == METHOD_HEAD2TOE) {
        const lasso_opts so = {lr, steps, coef, PENALTY_GROUP, cfg->batch};
        lasso_head_init_glorot(&c->sc, X->d, seed_mix(cfg->seed, 1, (uint64_t)fold));
        if (lasso_train(&c->sc, X, c->trows, ntr, &so, NULL, progress)) return -1;
        lasso_scores(c->sc.w, X->d, X->k, c->scores);
        for (int f = 0; f < nf; f++) {
            size_t keep = lasso_keep_count(X->d, fracs[f]);
            if (lasso_select(c->scores, X->d, keep, c->sel)) return -1;
            c->nsel = keep;
            lasso_gather(X->x, X->n, X->ld, c->l, c->sel, keep, c->xs);
            lasso_data xv = {c->xs, X->n, keep, keep, X->y, X->k};
            lasso_head_init_glorot(&c->hd, keep, head_seed);
            if (lasso_train(&c->hd, &xv, c->trows, ntr, &plain, NULL, progress)) return -1;
            if (nval) acc[f] = (double)lasso_predict(&c->hd, &xv, c->vrows, nval, NULL) / (double)nval;
        }
        return 0;
    }
    if (cfg->method == METHOD_LINEAR) {
        lasso_data xv = {c->xs, X->n, c->nsel, c->nsel, X->y, X->k};
        lasso_head_init_glorot(&c->hd, c->nsel, head_seed);
        if (lasso_train(&c->hd, &xv, c->trows, ntr, &plain, NULL, progress)) return -1;
        if (nval) acc[0] = (double)lasso_predict(&c->hd, &xv, c->vrows, nval, NULL) / (double)nval;
        return 0;
    }
    lasso_penalty pen = cfg->method == METHOD_ALL_L1 ? PENALTY_L1
                        : cfg->method == METHOD_ALL_L2 ? PENALTY_L2
                                                        : PENALTY_GROUP;
    const lasso_opts ao = {lr, steps, coef, pen, cfg->batch};
    lasso_head_init_glorot(&c->hd, X->d, head_seed);
    if (lasso_train(&c->hd, X, c->trows, ntr, &ao, NULL, progress)) return -1;
    if (nval) acc[0] = (double)lasso_predict(&c->hd, X, c->vrows, nval, NULL) / (double)nval;
    return 0;
}

static int check_grid(const lasso_fit_config *cfg)
{
    const char *what = NULL;
    int coefs = cfg->method != METHOD_LINEAR, fracs = cfg->method == METHOD_HEAD2TOE;
    if (cfg->nlr < 1 || cfg->nlr > LASSO_GRID_MAX) what = "learning rates";
    else if (cfg->nsteps < 1 || cfg->nsteps > LASSO_GRID_MAX) what = "step counts";
    else if (coefs && (cfg->ncoef < 1 || cfg->ncoef > LASSO_GRID_MAX)) what = "coefficients";
    else if (fracs && (cfg->nfrac < 1 || cfg->nfrac > LASSO_GRID_MAX)) what = "fractions";
    if (what) {
        set_error("need 1 to %d %s in the grid", LASSO_GRID_MAX, what);
        return -1;
    }
    int ok = cfg->batch >= 1;
    for (int i = 0; i < cfg->nlr; i++) ok &= cfg->lr[i] > 0;
    for (int i = 0; i < cfg->nsteps; i++) ok &= cfg->steps[i] >= 1;
    for (int i = 0; coefs && i < cfg->ncoef; i++) ok &= cfg->coef[i] >= 0;
    for (int i = 0; fracs && i < cfg->nfrac; i++) ok &= cfg->frac[i] > 0 && cfg->frac[i] <= 1;
    if (!ok) {
        set_error("grid values out of range (lr > 0, steps >= 1, coef >= 0, 0 < fraction <= 1, batch >= 1)");
        return -1;
    }
    return 0;
}

int lasso_fit(const lasso_data *data, const feat_layout *l, const lasso_fit_config *cfg,
              lasso_fit_result *res)
{
    memset(res, 0, sizeof *res);
    double t0 = now_seconds();
    if (check_grid(cfg)) return -1;
    const lasso_data *X = data;
    size_t n = X->n, D = X->d;
    lasso_method method = cfg->method;
    int ncoef = method == METHOD_LINEAR ? 1 : cfg->ncoef;
    int nfrac = method == METHOD_HEAD2TOE ? cfg->nfrac : 1;
    static const double zero = 0.0, one = 1.0;
    const double *coefs = method == METHOD_LINEAR ? &zero : cfg->coef;
    const double *fracs = method == METHOD_HEAD2TOE ? cfg->frac : &one;
    res->npoints = cfg->nlr * cfg->nsteps * ncoef * nfrac;
    res->did_cv = res->npoints > 1 || cfg->force_cv;
    int linear_loc = -1, label_ok = 1;
    for (size_t i = 0; i < n; i++) label_ok &= X->y[i] >= 0 && X->y[i] < X->k;
    if (n < 1 || D < 1 || X->k < 1) {
        set_error("empty problem (%zu examples, %zu features)", n, D);
        return -1;
    }
    if (!label_ok) {
        set_error("labels out of range [0, %d)", X->k);
        return -1;
    }
    if ((method == METHOD_HEAD2TOE || method == METHOD_LINEAR) && !l) {
        set_error("--method %s needs the layout of the features", lasso_method_names[method]);
        return -1;
    }
    if (l && l->d != D) {
        set_error("the layout describes %zu features but the matrix has %zu", l->d, D);
        return -1;
    }
    if (method == METHOD_LINEAR && (linear_loc = layout_index(l, "pre_logits")) < 0) {
        set_error("--method linear needs a location named pre_logits in the layout");
        return -1;
    }
    if (res->did_cv && n < LASSO_FOLDS) {
        set_error("cross-validation needs at least %d examples, got %zu", LASSO_FOLDS, n);
        return -1;
    }

    /* buffers, sized once */
    fit_ctx c = {0};
    c.data = X;
    c.l = l;
    c.cfg = cfg;
    size_t cap = D;
    if (method == METHOD_HEAD2TOE) {
        cap = 0;
        for (int f = 0; f < nfrac; f++) {
            size_t keep = lasso_keep_count(D, fracs[f]);
            if (keep > cap) cap = keep;
        }
    } else if (method == METHOD_LINEAR) {
        cap = l->e[linear_loc].dim;
    }
    size_t ncap;
    res->points = calloc((size_t)res->npoints, sizeof *res->points);
    c.trows = alloc_array(n, sizeof(size_t));
    c.vrows = alloc_array(n, sizeof(size_t));
    c.sel = alloc_array(cap, sizeof(int64_t));
    if (!res->points || !c.trows || !c.vrows || !c.sel || lasso_head_alloc(&c.hd, cap, X->k, cfg->batch))
        goto fail_oom;
    if (method == METHOD_HEAD2TOE || method == METHOD_LINEAR) {
        if (size_mul(n, cap, &ncap) || !(c.xs = alloc_array(ncap, sizeof(float)))) goto fail_oom;
    }
    if (method == METHOD_HEAD2TOE) {
        if (!(c.scores = alloc_array(D, sizeof(double))) || lasso_head_alloc(&c.sc, D, X->k, cfg->batch))
            goto fail_oom;
    }
    if (method == METHOD_LINEAR) { /* the pre_logits columns, renormalized, once */
        c.nsel = cap;
        for (size_t j = 0; j < cap; j++) c.sel[j] = (int64_t)(l->e[linear_loc].offset + j);
        lasso_gather(X->x, n, X->ld, l, c.sel, cap, c.xs);
    }

    /* the grid, in order lr, steps, coef, frac */
    for (int a = 0, p = 0; a < cfg->nlr; a++)
        for (int s = 0; s < cfg->nsteps; s++)
            for (int q = 0; q < ncoef; q++)
                for (int f = 0; f < nfrac; f++, p++) {
                    lasso_grid_point *g = &res->points[p];
                    g->lr = cfg->lr[a];
                    g->steps = cfg->steps[s];
                    g->coef = coefs[q];
                    g->frac = fracs[f];
                    g->features = method == METHOD_HEAD2TOE ? lasso_keep_count(D, fracs[f])
                                  : method == METHOD_LINEAR ? cap
                                                            : D;
                    g->mean = g->std = NAN;
                    for (int k = 0; k < LASSO_FOLDS; k++) g->fold_acc[k] = NAN;
                }

    res->best = 0;
    if (res->did_cv) {
        double acc[LASSO_GRID_MAX];
        for (int a = 0, p = 0; a < cfg->nlr; a++)
            for (int s = 0; s < cfg->nsteps; s++)
                for (int q = 0; q < ncoef; q++, p += nfrac)
                    for (int fold = 0; fold < LASSO_FOLDS; fold++) {
                        double tf = now_seconds();
                        size_t vs, ve, ntr = 0, nval = 0;
                        lasso_fold_bounds(n, LASSO_FOLDS, fold, &vs, &ve);
                        for (size_t i = 0; i < n; i++) {
                            if (i >= vs && i < ve) c.vrows[nval++] = i;
                            else c.trows[ntr++] = i;
                        }
                        if (run_point(&c, cfg->lr[a], cfg->steps[s], coefs[q], fracs, nfrac, ntr, nval, fold,
                                      acc))
                            goto fail;
                        for (int f = 0; f < nfrac; f++) res->points[p + f].fold_acc[fold] = acc[f];
                        if (!cfg->quiet) {
                            fprintf(stderr, "fit: cv fold %d/%d lr %g steps %ld", fold + 1, LASSO_FOLDS,
                                    cfg->lr[a], cfg->steps[s]);
                            if (method != METHOD_LINEAR) fprintf(stderr, " coef %g", coefs[q]);
                            fprintf(stderr, ": val acc");
                            for (int f = 0; f < nfrac; f++) {
                                if (method == METHOD_HEAD2TOE) fprintf(stderr, " F=%g", fracs[f]);
                                fprintf(stderr, " %.4f", acc[f]);
                            }
                            fprintf(stderr, " (%.1f s)\n", now_seconds() - tf);
                        }
                    }
        for (int p = 0; p < res->npoints; p++) {
            lasso_grid_point *g = &res->points[p];
            double m = 0.0, v = 0.0;
            for (int k = 0; k < LASSO_FOLDS; k++) m += g->fold_acc[k];
            m /= LASSO_FOLDS;
            for (int k = 0; k < LASSO_FOLDS; k++) v += (g->fold_acc[k] - m) * (g->fold_acc[k] - m);
            g->mean = m;
            g->std = sqrt(v / LASSO_FOLDS);
            if (g->mean > res->points[res->best].mean) res->best = p; /* ties: the first */
        }
    }

    /* the final fit on all examples with the chosen point */
    const lasso_grid_point *bp = &res->points[res->best];
    if (!cfg->quiet && res->did_cv) {
        fprintf(stderr, "fit: chose lr %g steps %ld", bp->lr, bp->steps);
        if (method != METHOD_LINEAR) fprintf(stderr, " coef %g", bp->coef);
        if (method == METHOD_HEAD2TOE) fprintf(stderr, " F %g", bp->frac);
        fprintf(stderr, " (mean val acc %.4f +- %.4f)\n", bp->mean, bp->std);
    }
    for (size_t i = 0; i < n; i++) c.trows[i] = i;
    if (run_point(&c, bp->lr, bp->steps, bp->coef, &bp->frac, 1, n, 0, LASSO_FOLDS, NULL)) goto fail;
    const lasso_data xv = {c.xs, n, c.nsel, c.nsel, X->y, X->k};
    const lasso_data *final = method == METHOD_HEAD2TOE || method == METHOD_LINEAR ? &xv : X;
    res->train_acc = (double)lasso_predict(&c.hd, final, c.trows, n, NULL) / (double)n;

    /* hand the head over */
    res->d = D;
    res->k = X->k;
    res->nsel = method == METHOD_HEAD2TOE || method == METHOD_LINEAR ? c.nsel : D;
    if (method == METHOD_HEAD2TOE || method == METHOD_LINEAR) {
        res->selected = c.sel;
        c.sel = NULL;
    } else {
        if (!(res->selected = alloc_array(D, sizeof(int64_t)))) goto fail_oom;
        for (size_t j = 0; j < D; j++) res->selected[j] = (int64_t)j;
    }
    res->w = c.hd.w;
    res->b = c.hd.b;
    c.hd.w = c.hd.b = NULL;
    fit_ctx_free(&c);
    res->seconds = now_seconds() - t0;
    return 0;

fail_oom:
    {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", last_error());
        set_error("%s (n %zu, D %zu, K %d)", msg, n, D, X->k);
    }
fail:
    fit_ctx_free(&c);
    lasso_fit_result_free(res);
    return -1;
}

void lasso_fit_result_free(lasso_fit_result *res)
{
    free(res->points);
    free_array(res->selected);
    free_array(res->w);
    free_array(res->b);
    memset(res, 0, sizeof *res);
}

/* ==========================================================================
 * Files: labels, the head directory, cv.tsv, report.json, evaluation */

int lasso_read_labels(const char *path, size_t n, int **y, int *k)
{
    npy_array a;
    *y = NULL;
    if (npy_read(path, NPY_I64, &a)) return -1;
    if (a.ndim != 1 || a.count != n) {
        set_error("%s: expected labels of shape [%zu] (one per example), got %d dims, %zu values", path, n,
                  a.ndim, a.count);
        npy_free(&a);
        return -1;
    }
    const int64_t *v = a.data;
    int *out = alloc_array(n ? n : 1, sizeof(int));
    if (!out) {
        npy_free(&a);
        return -1;
    }
    int mx = -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 0 || v[i] >= 65536) {
            set_error("%s: label %lld at index %zu is outside [0, 65536)", path, (long long)v[i], i);
            free_array(out);
            npy_free(&a);
            return -1;
        }
        out[i] = (int)v[i];
        if (out[i] > mx) mx = out[i];
    }
    npy_free(&a);
    *y = out;
    *k = mx + 1;
    return 0;
}

int lasso_write_score(const char *dir, const lasso_head *h, const lasso_opts *o, const double *losses)
{
    char path[700];
    if (make_dir(dir)) return -1;
    size_t shape[2] = {h->d, (size_t)h->k};
    double *s = alloc_array(h->d, sizeof(double));
    if (!s) return -1;
    lasso_scores(h->w, h->d, h->k, s);
    int rc = 0;
    snprintf(path, sizeof path, "%s/scores.npy", dir);
    rc = npy_write(path, NPY_F64, 1, shape, s);
    free_array(s);
    if (rc) return -1;
    snprintf(path, sizeof path, "%s/W.npy", dir);
    if (npy_write(path, NPY_F32, 2, shape, h->w)) return -1;
    snprintf(path, sizeof path, "%s/b.npy", dir);
    if (npy_write(path, NPY_F32, 1, shape + 1, h->b)) return -1;
    textbuf t = {0};
    tb_printf(&t, "step\tlr\tloss\n");
    for (long i = 0; i < o->steps; i++)
        tb_printf(&t, "%ld\t%.9g\t%.9g\n", i, o->lr * 0.5 * (1.0 + cos(PI * (double)i / (double)o->steps)),
                  losses[i]);
    snprintf(path, sizeof path, "%s/loss.tsv", dir);
    return tb_write(&t, path);
}

int lasso_write_fit(const char *dir, const lasso_fit_result *r, const lasso_fit_config *cfg,
                    const feat_layout *l, size_t n)
{
    char path[700];
    if (make_dir(dir)) return -1;
    size_t shape[2] = {r->nsel, (size_t)r->k};
    snprintf(path, sizeof path, "%s/selected.npy", dir);
    if (npy_write(path, NPY_I64, 1, shape, r->selected)) return -1;
    snprintf(path, sizeof path, "%s/W.npy", dir);
    if (npy_write(path, NPY_F32, 2, shape, r->w)) return -1;
    snprintf(path, sizeof path, "%s/b.npy", dir);
    if (npy_write(path, NPY_F32, 1, shape + 1, r->b)) return -1;
    if (l) {
        snprintf(path, sizeof path, "%s/layout.tsv", dir);
        if (layout_write(path, l)) return -1;
    }

    textbuf t = {0};
    tb_printf(&t, "lr\tsteps\tcoef\tfraction\tfeatures\tmean_acc\tstd_acc");
    for (int f = 0; f < LASSO_FOLDS; f++) tb_printf(&t, "\tacc_fold%d", f + 1);
    tb_printf(&t, "\n");
    for (int p = 0; p < r->npoints; p++) {
        const lasso_grid_point *g = &r->points[p];
        tb_printf(&t, "%g\t%ld\t%g\t%g\t%zu\t%.6f\t%.6f", g->lr, g->steps, g->coef, g->frac, g->features,
                  g->mean, g->std);
        for (int f = 0; f < LASSO_FOLDS; f++) tb_printf(&t, "\t%.6f", g->fold_acc[f]);
        tb_printf(&t, "\n");
    }
    snprintf(path, sizeof path, "%s/cv.tsv", dir);
    if (tb_write(&t, path)) return -1;

    const lasso_grid_point *bp = &r->points[r->best];
    lasso_method m = cfg->method;
    tb_printf(&t, "{\n  \"method\": \"%s\",\n", lasso_method_names[m]);
    tb_printf(&t, "  \"examples\": %zu,\n  \"features\": %zu,\n  \"classes\": %d,\n", n, r->d, r->k);
    tb_printf(&t, "  \"seed\": %llu,\n  \"batch\": %d,\n", (unsigned long long)cfg->seed, cfg->batch);
    tb_printf(&t, "  \"cross_validated\": %s,\n  \"folds\": %d,\n  \"grid_points\": %d,\n",
              r->did_cv ? "true" : "false", r->did_cv ? LASSO_FOLDS : 0, r->npoints);
    tb_printf(&t, "  \"chosen\": {\"lr\": ");
    tb_json_num(&t, bp->lr);
    tb_printf(&t, ", \"steps\": %ld, \"coef\": ", bp->steps);
    tb_json_num(&t, m == METHOD_LINEAR ? NAN : bp->coef);
    tb_printf(&t, ", \"fraction\": ");
    tb_json_num(&t, m == METHOD_HEAD2TOE ? bp->frac : NAN);
    tb_printf(&t, "},\n  \"cv_mean_accuracy\": ");
    tb_json_num(&t, bp->mean);
    tb_printf(&t, ",\n  \"cv_std_accuracy\": ");
    tb_json_num(&t, bp->std);
    tb_printf(&t, ",\n  \"features_kept\": %zu,\n  \"features_per_location\": [", r->nsel);
    if (l) {
        size_t j = 0;
        for (int i = 0; i < l->n; i++) {
            size_t kept = 0, end = l->e[i].offset + l->e[i].dim;
            while (j < r->nsel && (size_t)r->selected[j] < end) j++, kept++;
            tb_printf(&t, "%s\n    {\"location\": \"%s\", \"dim\": %zu, \"kept\": %zu}", i ? "," : "",
                      l->e[i].name, l->e[i].dim, kept);
        }
        tb_printf(&t, "\n  ");
    }
    tb_printf(&t, "],\n  \"train_accuracy\": ");
    tb_json_num(&t, r->train_acc);
    tb_printf(&t, ",\n  \"seconds\": %.3f\n}\n", r->seconds);
    snprintf(path, sizeof path, "%s/report.json", dir);
    return tb_write(&t, path);
}

int lasso_read_head(const char *dir, lasso_saved_head *h)
{
    char path[700];
    npy_array s = {0}, w = {0}, b = {0};
    memset(h, 0, sizeof *h);
    snprintf(path, sizeof path, "%s/selected.npy", dir);
    if (npy_read(path, NPY_I64, &s)) return -1;
    snprintf(path, sizeof path, "%s/W.npy", dir);
    if (npy_read(path, NPY_F32, &w)) goto fail;
    snprintf(path, sizeof path, "%s/b.npy", dir);
    if (npy_read(path, NPY_F32, &b)) goto fail;
    if (s.ndim != 1 || s.count < 1 || w.ndim != 2 || w.shape[0] != s.count || w.shape[1] < 1 ||
        w.shape[1] > 65536 || b.ndim != 1 || b.count != w.shape[1]) {
        set_error("%s: inconsistent head: selected.npy [n], W.npy [n, K] and b.npy [K] expected", dir);
        goto fail;
    }
    const int64_t *sel = s.data;
    for (size_t j = 0; j < s.count; j++)
        if (sel[j] < 0 || (j > 0 && sel[j] <= sel[j - 1])) {
            set_error("%s/selected.npy: indices must be >= 0 and strictly ascending (index %zu)", dir, j);
            goto fail;
        }
    h->nsel = s.count;
    h->k = (int)w.shape[1];
    h->selected = s.data;
    h->w = w.data;
    h->b = b.data;
    return 0;
fail:
    npy_free(&s);
    npy_free(&w);
    npy_free(&b);
    return -1;
}

void lasso_saved_head_free(lasso_saved_head *h)
{
    free_array(h->selected);
    free_array(h->w);
    free_array(h->b);
    memset(h, 0, sizeof *h);
}

int lasso_eval_file(const char *path, const int *y, size_t m, const lasso_saved_head *h,
                    const feat_layout *l, size_t *correct, size_t *count)
{
    npy_reader r;
    if (npy_open(path, &r)) return -1;
    float *buf = NULL, *xs = NULL, *z = NULL;
    int ret = -1;
    size_t c = r.ndim == 2 ? r.shape[1] : 0, k = (size_t)h->k;
    if (r.ndim != 2 || r.shape[0] != m) {
        set_error("%s: expected features of shape [%zu, D] (one row per label)", path, m);
        goto done;
    }
    int gather = c != h->nsel;
    if (gather) {
        if (!l) {
            set_error("%s: %zu columns but the head has %zu features: give the layout of all the features "
                      "(--layout) or the selected features only", path, c, h->nsel);
            goto done;
        }
        if (l->d != c || (size_t)h->selected[h->nsel - 1] >= c) {
            set_error("%s: %zu columns, but the layout describes %zu features (head indices up to %lld)",
                      path, c, l->d, (long long)h->selected[h->nsel - 1]);
            goto done;
        }
    }
    /* chunks of rows: at most 256, and at most 2^26 floats (256 MiB) of input */
    size_t chunk = ((size_t)1 << 26) / (c ? c : 1);
    if (chunk > 256) chunk = 256;
    if (chunk < 1) chunk = 1;
    buf = alloc_array(chunk * c, sizeof(float));
    z = alloc_array(chunk * k, sizeof(float));
    if (gather) xs = alloc_array(chunk * h->nsel, sizeof(float));
    if (!buf || !z || (gather && !xs)) goto done;
    for (size_t i = 0; i < k; i++) correct[i] = count[i] = 0;
    for (size_t r0 = 0; r0 < m; r0 += chunk) {
        size_t cn = m - r0 < chunk ? m - r0 : chunk;
        if (npy_read_rows(&r, r0, cn, NPY_F32, buf)) goto done;
        const float *x = buf;
        if (gather) {
            lasso_gather(buf, cn, c, l, h->selected, h->nsel, xs);
            x = xs;
        }
        gemm(0, 0, cn, k, h->nsel, x, h->nsel, h->w, k, 0.0f, z, k);
        add_bias(z, cn, h->k, h->b);
        for (size_t i = 0; i < cn; i++) {
            const float *zi = z + i * k;
            size_t best = 0;
            for (size_t q = 1; q < k; q++)
                if (zi[q] > zi[best]) best = q;
            int yi = y[r0 + i];
            if (yi < 0 || (size_t)yi >= k) {
                set_error("label %d of example %zu is not a class of the head (K = %zu)", yi, r0 + i, k);
                goto done;
            }
            count[yi]++;
            correct[yi] += best == (size_t)yi;
        }
    }
    ret = 0;
done:
    npy_close(&r);
    free_array(buf);
    free_array(xs);
    free_array(z);
    return ret;
}

int lasso_write_eval(const char *path, const size_t *correct, const size_t *count, int k)
{
    size_t c = 0, m = 0;
    for (int i = 0; i < k; i++) c += correct[i], m += count[i];
    textbuf t = {0};
    tb_printf(&t, "{\n  \"accuracy\": ");
    tb_json_num(&t, m ? (double)c / (double)m : NAN);
    tb_printf(&t, ",\n  \"correct\": %zu,\n  \"examples\": %zu,\n  \"per_class\": [", c, m);
    for (int i = 0; i < k; i++) {
        tb_printf(&t, "%s\n    {\"class\": %d, \"accuracy\": ", i ? "," : "", i);
        tb_json_num(&t, count[i] ? (double)correct[i] / (double)count[i] : NAN);
        tb_printf(&t, ", \"correct\": %zu, \"count\": %zu}", correct[i], count[i]);
    }
    tb_printf(&t, "\n  ]\n}\n");
    return tb_write(&t, path);
}
