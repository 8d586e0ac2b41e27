/* lasso.h: the second half of Head2Toe, on feature matrices
 * (docs/ALGORITHM.md §6-§8): a linear softmax head and its training run
 * (cross-entropy, group-lasso / L1 / L2 penalty, TF-style Adam with a
 * cosine rate), the scoring run and its scores, top-k selection, the
 * selected features gathered and renormalized, and the retrained head.
 * Cross-validation and the grid are cv.c's, files headio.c's; features
 * come from extract.c.
 *
 * Shapes: n examples, D features, K classes. A feature matrix X is [n, ld]
 * row-major and example r's features are X[r*ld .. r*ld + D) (ld = D for a
 * whole matrix). A head is W [D, K] and b [K]; logits = x W + b. */
#ifndef H2T_LASSO_H
#define H2T_LASSO_H

#include <stddef.h>
#include <stdint.h>

#include "pooling.h"

/* ==========================================================================
 * Data: a view of a feature matrix and its labels (nothing is copied). */

typedef struct {
    const float *x;      /* [n, ld] */
    size_t n, d, ld;     /* examples, features used (columns [0, d)), row stride */
    const int *y;        /* [n] labels in [0, k) */
    int k;               /* classes */
} lasso_data;

/* ==========================================================================
 * A linear head and its training run. lasso_head_alloc sizes every buffer
 * once for up to cap_d features; a training step allocates nothing. */

typedef enum { PENALTY_NONE, PENALTY_GROUP, PENALTY_L1, PENALTY_L2 } lasso_penalty;

typedef struct {
    double lr;           /* lr0 of the cosine decay */
    long steps;          /* S */
    double coef;         /* penalty coefficient */
    lasso_penalty penalty;
    int batch;           /* nominal batch size (128) */
} lasso_opts;

typedef struct {
    size_t cap_d, d;     /* capacity and current number of features */
    int k, batch;
    float *w, *b;        /* [d, k], [k]: the head */
    float *mw, *vw;      /* [d, k] Adam moments of W */
    float *mb, *vb;      /* [k] Adam moments of b */
    float *gw, *gb;      /* [d, k], [k] the gradient (the plain step) */
    float *z;            /* [batch, k] logits, then dLoss/dlogits */
    /* the fused step (lasso.c): W in blocks of blk rows, blocks in groups */
    size_t blk;
    int nthreads;        /* OpenMP threads the buffers are sized for */
    float *gblk;         /* [nthreads, blk, k] each thread's gradient of one block */
    double *blkpen;      /* [cap_d / blk + 1] penalty value of each block */
    float *zpart;        /* [groups, batch, k] partial logits of each group of blocks */
    size_t *run0;        /* [2, batch] the current and the next batch as pieces of */
    size_t *runlen;      /*            consecutive examples: start, length */
} lasso_head;

int lasso_head_alloc(lasso_head *h, size_t cap_d, int k, int batch);
void lasso_head_free(lasso_head *h);
/* Use the first d <= cap_d features; W Glorot-uniform (+-sqrt(6/(d+k)),
 * row-major draws from the project RNG seeded with seed); b = 0; Adam
 * state zeroed (docs/ALGORITHM.md §6). */
void lasso_head_init_glorot(lasso_head *h, size_t d, uint64_t seed);
/* Same with W copied from w0 [d, k]. */
void lasso_head_init_from(lasso_head *h, size_t d, const float *w0);

/* The loss of docs/ALGORITHM.md §6 on the batch rows[0..B) (B <= h->batch)
 * at the current head, and its gradient into h->gw [d, k], h->gb [k]. */
double lasso_loss_grad(lasso_head *h, const lasso_data *data, const size_t *rows, size_t B, const lasso_opts *o);
/* Step s (0-based) of the plain training run: lasso_loss_grad, then Adam
 * at the cosine rate of step s. Returns the loss before the update. The
 * fused step in lasso.c is an optimization of exactly this. */
double lasso_step_ref(lasso_head *h, const lasso_data *data, const size_t *rows, size_t B, const lasso_opts *o,
                      long s);

/* The training run of docs/ALGORITHM.md §6 on the examples rows[0..nrows)
 * (in this order; batches of o->batch, cycling, each pass ending with a
 * partial batch): o->steps fused steps (plain ones in the REFERENCE build).
 * losses[steps] (may be NULL) gets the loss of every step, evaluated
 * before that step's update. progress: a label for a progress line on
 * stderr every few seconds, or NULL. -1 (with an error) if the loss
 * becomes non-finite. */
int lasso_train(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows,
                const lasso_opts *o, double *losses, const char *progress);
/* At most this many heads in one lasso_train_many. */
#define LASSO_MANY 8
/* The training runs of nh heads (allocated alike, initialized as each
 * wants) over the same batches of rows[0..nrows): head i with o[i]'s lr,
 * coef and penalty; steps and batch alike. Each head ends bitwise as
 * lasso_train would leave it, but the pass over X is shared: each step's
 * products are done for all heads at once, their columns side by side, so
 * X is read from memory once per step for all of them (docs/ALGORITHM.md
 * §11). progress: as lasso_train's, for head 0. */
int lasso_train_many(lasso_head *const *h, const lasso_opts *o, int nh, const lasso_data *X, const size_t *rows,
                     size_t nrows, const char *progress);
/* The same run with the plain step, in any build (for tests). */
int lasso_train_ref(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows,
                    const lasso_opts *o, double *losses);

/* pred[i] = argmax_c of the logits of example rows[i] (ties: lowest c);
 * pred may be NULL. Returns the number of correct predictions. */
size_t lasso_predict(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows, int *pred);

/* ==========================================================================
 * Scores and selection (docs/ALGORITHM.md §7, §5) */

/* s[i] = sum_c W[i,c]^2, summed in double. */
void lasso_scores(const float *w, size_t d, int k, double *s);
/* int(d * fraction), but at least 1 and at most d. */
size_t lasso_keep_count(size_t d, double fraction);
/* The keep features with the highest scores (ties to the lower index; NaN
 * ranks last), written ascending to sel[keep]. */
int lasso_select(const double *s, size_t d, size_t keep, int64_t *sel);
/* The same order, ranks offset .. offset + keep - 1 of it (the official
 * keep_fraction_offset: the offset best features are skipped), written
 * ascending to sel[keep]; keep is cut to d - offset. */
int lasso_select_offset(const double *s, size_t d, size_t offset, size_t keep, int64_t *sel);
/* out[i, :] = columns sel[0..nsel) of example i of x [n, ld],
 * renormalized per location (pooling.h renormalize_selected). */
void lasso_gather(const float *x, size_t n, size_t ld, const feat_layout *l, const int64_t *sel,
                  size_t nsel, float *out);

/* The scoring run (docs/ALGORITHM.md §6, §7): a group-lasso head
 * (coefficient o->coef) trained on rows[0..nrows) of X from a Glorot head
 * seeded with seed, and its scores s[D]. sc: a head allocated for X->d. */
int lasso_scoring_run(lasso_head *sc, const lasso_data *X, const size_t *rows, size_t nrows, const lasso_opts *o,
                      uint64_t seed, double *s, const char *progress);

/* ==========================================================================
 * A fitted head, in memory or read from a directory (headio.c). */

typedef struct {
    size_t nsel;                      /* features the head reads */
    int k;
    size_t d;                         /* features of the input it selects from */
    int64_t *selected;                /* [nsel] ascending indices into the input's D */
    float *w, *b;                     /* [nsel, k], [k] */
    double train_acc;                 /* on the examples it was trained on */
    size_t examples;                  /* how many (all, or a --train-fraction subset) */
} fitted_head;

void fitted_head_free(fitted_head *h);
/* pred[i] = argmax of x_i W + b for the n rows of x [n, ld] (the head's
 * nsel features, already selected and renormalized). z: scratch [n, k]. */
void head_predict(const fitted_head *h, const float *x, size_t n, size_t ld, float *z, int *pred);
/* Per-class tallies of pred against y[n] (< k): correct[k], count[k] (added to). */
void tally(const int *pred, const int *y, size_t n, size_t *correct, size_t *count);

#endif
