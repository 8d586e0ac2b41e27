/* lasso.h: the second half of Head2Toe (SPEC sections 5, 6, 7), on feature
 * matrices: the group-lasso scoring run, feature selection, linear softmax
 * heads trained with TF-style Adam, the per-location renormalization of the
 * selected features, 5-fold cross-validation over a grid, the Linear and
 * All-l1 / All-l2 / All-l2,1 baselines, and the files of a fitted head.
 * It does not compute features (features.c) and knows nothing of backbones;
 * it uses the layout type of features.h.
 *
 * Shapes: n examples, D features, K classes. A feature matrix X is [n, ld]
 * row-major and example r's features are X[r*ld .. r*ld + D) (ld = D for a
 * whole matrix). A head is W [D, K] and b [K]; logits = x W + b. */
#ifndef H2T_LASSO_H
#define H2T_LASSO_H

#include <stddef.h>
#include <stdint.h>

#include "features.h"

/* ==========================================================================
 * Layout: which columns of a feature matrix belong to which location is the
 * features module's feat_layout (features.h: F.layout.tsv, read with
 * layout_read, written with layout_write). */

/* The location (index into l->e) holding feature j, or -1 if j >= l->d. */
int lasso_location_of(const feat_layout *l, size_t j);

/* ==========================================================================
 * Data: a view of a feature matrix and its labels (nothing is copied). */

typedef struct {
    const float *x;      /* [n, ld] */
    size_t n, d, ld;     /* examples, features used (columns [0, d)), row stride */
    const int *y;        /* [n] labels in [0, k) */
    int k;               /* classes */
} lasso_data;

/* ==========================================================================
 * A linear head and its trainer. lasso_head_alloc sizes every buffer once
 * for up to cap_d features; a training step allocates nothing. */

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
    size_t blk;          /* rows of W per block of the fused gradient + update pass */
    int nthreads;        /* OpenMP threads the buffers are sized for */
    float *w, *b;        /* [d, k], [k]: the head */
    float *mw, *vw;      /* [d, k] Adam moments of W */
    float *mb, *vb, *gb; /* [k] Adam moments and gradient of b */
    float *z;            /* [batch, k] logits, then dLoss/dlogits */
    float *gblk;         /* [nthreads, blk, k] each thread's gradient of one block of rows */
    double *blkpen;      /* [cap_d / blk + 1] penalty value of each block */
    float *zpart;        /* [groups, batch, k] partial logits of each group of blocks (lasso.c) */
    size_t *run0;        /* [2, batch] the current and the next batch as pieces of consecutive */
    size_t *runlen;      /*            examples: start in the batch, length */
} lasso_head;

int lasso_head_alloc(lasso_head *h, size_t cap_d, int k, int batch);
void lasso_head_free(lasso_head *h);
/* Use the first d <= cap_d features; W Glorot-uniform (+-sqrt(6/(d+k)),
 * row-major draws from the project RNG seeded with seed); b = 0; Adam
 * state zeroed. */
void lasso_head_init_glorot(lasso_head *h, size_t d, uint64_t seed);
/* Same with W copied from w0 [d, k]. */
void lasso_head_init_from(lasso_head *h, size_t d, const float *w0);

/* The training run of SPEC section 6 on the examples rows[0..nrows) (in
 * this order; batches of o->batch, cycling, each pass ending with a partial
 * batch). losses[steps] (may be NULL) gets the loss of every step, evaluated
 * before that step's update. progress: a label for a progress line on stderr
 * every few seconds, or NULL for silence. -1 (with an error) if the loss
 * becomes non-finite. */
int lasso_train(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows,
                const lasso_opts *o, double *losses, const char *progress);

/* The loss of SPEC section 6 on the batch rows[0..B) (B <= h->batch) at the
 * current head, and its gradient gw [d, k], gb [k]. For tests: it shares the
 * forward, softmax and penalty code of lasso_train. */
double lasso_loss_grad(lasso_head *h, const lasso_data *data, const size_t *rows, size_t B,
                       const lasso_opts *o, float *gw, float *gb);

/* pred[i] = argmax_c of the logits of example rows[i] (ties: lowest c);
 * pred may be NULL. Returns the number of correct predictions. */
size_t lasso_predict(lasso_head *h, const lasso_data *data, const size_t *rows, size_t nrows, int *pred);

/* ==========================================================================
 * Scores and selection (SPEC sections 5, 6) */

/* s[i] = sum_c W[i,c]^2, summed in double. */
void lasso_scores(const float *w, size_t d, int k, double *s);
/* int(d * fraction), but at least 1 and at most d. */
size_t lasso_keep_count(size_t d, double fraction);
/* The keep features with the highest scores (ties to the lower index; NaN
 * ranks last), written ascending to sel[keep]. */
int lasso_select(const double *s, size_t d, size_t keep, int64_t *sel);
/* out[i, :] = columns sel[0..nsel) of example i of x [n, ld], scaled to unit
 * L2 norm per location over the selected columns (SPEC section 5; a zero
 * group stays zero). sel ascending and < l->d. out: [n, nsel]. */
void lasso_gather(const float *x, size_t n, size_t ld, const feat_layout *l, const int64_t *sel,
                  size_t nsel, float *out);

/* ==========================================================================
 * Cross-validation folds (SPEC section 7): fold f of nfolds validates the
 * consecutive examples [f*n/nfolds, (f+1)*n/nfolds) (integer division: for
 * n not divisible by nfolds the folds differ in size by at most one, and
 * every example is validated exactly once) and trains on all the others, in
 * their original order. */
void lasso_fold_bounds(size_t n, int nfolds, int fold, size_t *start, size_t *end);

/* ==========================================================================
 * Model selection and the final head (`h2t fit`) */

typedef enum { METHOD_HEAD2TOE, METHOD_LINEAR, METHOD_ALL_L1, METHOD_ALL_L2, METHOD_ALL_L21 } lasso_method;
extern const char *const lasso_method_names[];  /* "head2toe", "linear", "all-l1", ..., NULL */

#define LASSO_GRID_MAX 16
#define LASSO_FOLDS 5

typedef struct {
    lasso_method method;
    int nlr, nsteps, ncoef, nfrac;
    double lr[LASSO_GRID_MAX];
    long steps[LASSO_GRID_MAX];
    double coef[LASSO_GRID_MAX];      /* unused by linear */
    double frac[LASSO_GRID_MAX];      /* head2toe only */
    int batch;                        /* nominal batch (128) */
    uint64_t seed;
    int force_cv;                     /* cross-validate even a single grid point */
    int quiet;                        /* no progress on stderr */
} lasso_fit_config;

typedef struct {
    double lr;
    long steps;
    double coef, frac;                /* 0 and 1 where the method has none */
    size_t features;                  /* features of the head */
    double mean, std;                 /* validation accuracy over the folds (NaN without CV) */
    double fold_acc[LASSO_FOLDS];
} lasso_grid_point;

typedef struct {
    int npoints, best, did_cv;
    lasso_grid_point *points;         /* [npoints], grid order: lr, steps, coef, frac */
    size_t nsel;
    int64_t *selected;                /* [nsel] global feature indices, ascending */
    size_t d;                         /* features of the input (all locations) */
    int k;
    float *w, *b;                     /* [nsel, k], [k] */
    double train_acc;
    double seconds;
} lasso_fit_result;

/* Model selection (more than one grid point, or force_cv) and the final fit
 * on all examples. l (with l->d == data->d) is required by head2toe and
 * linear; the all-* methods use it only for the report. */
int lasso_fit(const lasso_data *data, const feat_layout *l, const lasso_fit_config *cfg,
              lasso_fit_result *res);
void lasso_fit_result_free(lasso_fit_result *res);

/* ==========================================================================
 * Files. Every writer goes through a temporary name and a rename. */

/* Labels [n] of any integer .npy type, each in [0, 65536); *k = max + 1. */
int lasso_read_labels(const char *path, size_t n, int **y, int *k);
/* DIR/ W.npy [d, k], b.npy [k], scores.npy [d] (float64, sum_c W^2) and
 * loss.tsv (step, learning rate, loss) of a scoring run. DIR is created. */
int lasso_write_score(const char *dir, const lasso_head *h, const lasso_opts *o, const double *losses);
/* DIR/ selected.npy (int64), W.npy, b.npy, cv.tsv, report.json and, with a
 * layout, layout.tsv (the input layout, for `h2t eval`). DIR is created. */
int lasso_write_fit(const char *dir, const lasso_fit_result *r, const lasso_fit_config *cfg,
                    const feat_layout *l, size_t n);

/* A fitted head read back from a directory written by lasso_write_fit. */
typedef struct {
    size_t nsel;
    int k;
    int64_t *selected;                /* [nsel] */
    float *w, *b;                     /* [nsel, k], [k] */
} lasso_saved_head;
int lasso_read_head(const char *dir, lasso_saved_head *h);
void lasso_saved_head_free(lasso_saved_head *h);

/* Accuracy of a saved head on the feature file path ([m, c] float) with
 * labels y[m] (< h->k). c == h->nsel: the features are already the selected
 * ones; otherwise c must equal l->d and the selected columns are gathered
 * and renormalized per location (l required). Rows stream through in
 * chunks, so memory does not grow with m. correct[k], count[k] get the
 * per-class tallies. */
int lasso_eval_file(const char *path, const int *y, size_t m, const lasso_saved_head *h,
                    const feat_layout *l, size_t *correct, size_t *count);
/* JSON: {"accuracy", "correct", "examples", "per_class": [{class, accuracy, correct, count}]}. */
int lasso_write_eval(const char *path, const size_t *correct, const size_t *count, int k);

#endif
