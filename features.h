/* features.h: the Head2Toe feature vector (SPEC sections 4 and 5).
 * Pools every location of a backbone to about a target size T with the
 * official arithmetic, scales each location to unit L2 norm per example,
 * concatenates the locations in depth order, and describes the result in a
 * layout file. Also the streaming driver behind `h2t features` (batches of
 * images in, rows of features out, several T from one backbone pass,
 * selected features only, shards) and `h2t join` (shards back together).
 * It does not run the backbone itself (model.c) or train heads (lasso.c). */
#ifndef H2T_FEATURES_H
#define H2T_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* ==========================================================================
 * Pooling one location to target size T (SPEC section 4)
 *
 * Conv map [H, W, C] (square): C >= T -> global mean; else
 *   n = (int) sqrt(T / C) (integer division first), p = H / n;
 *   p == 0 -> global mean; else p x p windows, stride p, 'valid',
 *   out [H/p, H/p, C] flattened row, col, channel.
 * Token map [Tk, C]: C >= T -> mean over tokens; else
 *   p = (int)(Tk / ((double)T / C)); p == 0 -> mean over tokens;
 *   else windows of p tokens, stride p, 'valid', out [Tk/p, C].
 * Vector [C]: as it is.
 *
 * Arithmetic of a mean (so that every build gives the same bits): the
 * window's values are summed in double, positions in row-major order
 * (row, then column; tokens in order), then divided by the number of
 * positions in double and rounded once to float. */

typedef struct {
    int pool;        /* window side p; 0 = global mean; -1 = vector as is */
    int grid;        /* windows per side (conv) or along the tokens (token map);
                        1 for a global mean; 0 for a vector */
    size_t dim;      /* features out: grid^2 * C (conv), grid * C (tokens), C */
} pool_plan;

/* The plan of location l at target size T >= 1. -1 (with an error) for a
 * non-square conv map or a dimension < 1. */
int pool_plan_make(const location *l, long T, pool_plan *p);

/* y[dim] = the pooled features of one example x (l's per-example shape).
 * acc: scratch of C doubles (C = l's last dimension). */
void pool_example(const location *l, const pool_plan *p, const float *x, float *y, double *acc);

/* Feature j (0 <= j < dim) alone: the same sums in the same order as
 * pool_example, so the same bits. Also the naive reference pool_example is
 * tested against. */
float pool_feature(const location *l, const pool_plan *p, const float *x, size_t j);

/* x[d] /= ||x||_2 (SPEC section 5): squares summed in double in index
 * order, each value divided by the norm in double and rounded once to
 * float; a zero vector stays zero (no epsilon). */
void l2_normalize(float *x, size_t d);

/* ==========================================================================
 * Layout: which columns of a feature matrix hold which location.
 * F.layout.tsv: a header line, then one tab-separated line per location in
 * depth order:
 *   location  offset  dim  pool  shape  pooled
 * pool as in pool_plan (window; 0 global mean; -1 vector), shape the
 * location's per-example shape ("56x56x256", "197x768", "2048"), pooled
 * the shape after pooling ("28x28x256"). Readers need only the first four
 * columns; offsets are contiguous from 0. */

#define LAYOUT_SHAPE_MAX 32

typedef struct {
    char name[LOCATION_NAME_MAX];
    size_t offset, dim;
    int pool;
    char shape[LAYOUT_SHAPE_MAX];   /* "" when the file lacks the column */
    char pooled[LAYOUT_SHAPE_MAX];
} layout_entry;

typedef struct {
    int n;                          /* locations */
    size_t d;                       /* features = sum of dims */
    layout_entry e[MODEL_MAX_LOCATIONS];
    int loc[MODEL_MAX_LOCATIONS];   /* index into the model's locations (-1 if read from a file) */
    pool_plan plan[MODEL_MAX_LOCATIONS];   /* (layout_make only) */
} feat_layout;

/* The layout of model m at target size T over the locations with
 * use[i] != 0 (use[m->nloc]), in depth order. */
int layout_make(const model *m, const int *use, long T, feat_layout *l);
int layout_write(const char *path, const feat_layout *l);   /* via a temp name + rename */
/* Reads a layout file; checks the header, 4 to 6 fields per line, integers,
 * contiguous offsets, unique names. -1 with "file:line: ..." on error. */
int layout_read(const char *path, feat_layout *l);

/* Which locations of m a --taps value names: NULL -> the default set,
 * "all" -> every location, else a comma list of names (any order; the
 * output is always in depth order). use[m->nloc]. */
int taps_parse(const model *m, const char *taps, int *use);

/* ==========================================================================
 * Output naming. One target size: exactly --out (which must end in .npy)
 * and <out without .npy>.layout.tsv. Several: <base>.T<T>.npy and
 * <base>.T<T>.layout.tsv for each T (F.npy -> F.T1024.npy, F.T1024.layout.tsv).
 * -1 if out does not end in .npy or the name does not fit. */
int feat_out_paths(const char *out, long T, int several, char *npy, char *tsv, size_t cap);

/* ==========================================================================
 * The driver of `h2t features` */

#define FEAT_MAX_TARGETS 16

typedef struct {
    const char *model_dir;
    const char *images;      /* X.npy: uint8 [n, H, W, C] (C 1 or 3) or [n, H, W] */
    const char *out;         /* F.npy */
    long target[FEAT_MAX_TARGETS];
    int ntarget;
    int batch;
    const char *taps;        /* NULL (default set), "all", or "a,b,c" */
    const char *select;      /* selected.npy: int64 ascending indices into the layout's D, or NULL */
    const char *layout;      /* the layout the indices refer to (with select) */
    long shard_k, shard_n;   /* 0-based shard k of n contiguous slices (n = 1: everything) */
    int quiet;
} feat_opts;

/* Images -> features files. Memory: the model's batch buffers plus
 * batch x D floats per target size, never n x D. All outputs go to
 * temporary names and are renamed when complete; on failure nothing is
 * left at the output paths. Prints a summary line per output on stdout. */
int features_run(const feat_opts *o);

/* Rows of shard k of n images: [k*n_img/n, (k+1)*n_img/n). */
void shard_bounds(size_t n_img, long k, long n, size_t *start, size_t *end);

/* `h2t join`: concatenates 2-D .npy files row-wise into out (same dtype and
 * column count required). If the inputs have layouts (<in>.layout.tsv
 * beside <in>.npy), they must be identical and one is copied beside out. */
int features_join(const char *out, char *const *inputs, int ninputs);

#endif
