/* pooling.h: the Head2Toe feature vector (docs/ALGORITHM.md §4, §5).
 * Pools one location to about a target size T with the official
 * arithmetic, scales it to unit L2 norm per example, and describes which
 * columns of the concatenated vector hold which location (the layout,
 * F.layout.tsv). Also the renormalization over the selected features of
 * each location, used wherever selected features are made.
 * It runs no backbone (extract.c does) and trains nothing (lasso.c). */
#ifndef H2T_POOLING_H
#define H2T_POOLING_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* ==========================================================================
 * Pooling one location to target size T (docs/ALGORITHM.md §4)
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

/* What a token map's class token (token 0) becomes (docs/ALGORITHM.md §16;
 * the official cls_token_pool): pooled with the other tokens (normal), the
 * class token alone (only-cls: [C], no pooling), or the class token
 * followed by the other tokens pooled as a map of Tk - 1 tokens
 * (original+cls: [C + grid * C], the official 'nopool_cls'). */
typedef enum { CLS_NORMAL, CLS_ONLY, CLS_SEPARATE } cls_mode;
extern const char *const cls_mode_names[];   /* "normal", "only-cls", "original+cls", NULL */

typedef struct {
    int pool;        /* window side p; 0 = global mean; -1 = vector as is (or a class token alone) */
    int grid;        /* windows per side (conv) or along the tokens (token map);
                        1 for a global mean; 0 for a vector */
    cls_mode cls;    /* token maps: what the class token becomes */
    size_t dim;      /* features out: grid^2 * C (conv), grid * C (tokens), C;
                        only-cls C; original+cls C + grid * C */
} pool_plan;

/* The plan of location l at target size T >= 1. -1 (with an error) for a
 * non-square conv map or a dimension < 1. */
int pool_plan_make(const location *l, long T, pool_plan *p);
/* The same with the class token of a token map treated as cls says
 * (conv maps and vectors: as pool_plan_make). */
int pool_plan_cls(const location *l, long T, cls_mode cls, pool_plan *p);

/* y[dim] = the pooled features of one example x (l's per-example shape).
 * acc: scratch of C doubles (C = l's last dimension). */
void pool_example(const location *l, const pool_plan *p, const float *x, float *y, double *acc);

/* Feature j (0 <= j < dim) alone: the same sums in the same order as
 * pool_example, so the same bits. Also the naive reference pool_example is
 * tested against. */
float pool_feature(const location *l, const pool_plan *p, const float *x, size_t j);

/* x[d] /= ||x||_2 (docs/ALGORITHM.md §5): squares summed in double in index
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
 * use[i] != 0 (use[m->nloc]), in depth order; token maps' class tokens as
 * cls says (refused when no used location is a token map). */
int layout_make(const model *m, const int *use, long T, cls_mode cls, feat_layout *l);
/* A layout read from a file, checked against model m at target size T:
 * every location exists, in depth order, with the dim and pool m gives
 * at T (and cls); fills l->plan and l->loc. path names the file in errors. */
int layout_bind(const model *m, long T, cls_mode cls, const char *path, feat_layout *l);
int layout_write(const char *path, const feat_layout *l);   /* via a temp name + rename */
/* Reads a layout file; checks the header, 4 to 6 fields per line, integers,
 * contiguous offsets, unique names. -1 with "file:line: ..." on error. */
int layout_read(const char *path, feat_layout *l);

/* Which locations of m a --taps value names: NULL -> the default set,
 * "all" -> every location, else a comma list of names (any order; the
 * output is always in depth order). use[m->nloc]. */
int taps_parse(const model *m, const char *taps, int *use);
/* --tap-fraction "1/k" (k >= 1) or "1": *every = k. */
int tap_fraction_parse(const char *s, long *every);
/* Keep every k-th location of use (docs/ALGORITHM.md §16): counting the
 * used locations other than pre_logits in depth order from 0, those at
 * positions 0, k, 2k, ...; pre_logits stays if it was used. k = 1 keeps all. */
void taps_thin(const model *m, long every, int *use);

/* The location (index into l->e) holding feature j, or -1 if j >= l->d. */
int layout_location_of(const feat_layout *l, size_t j);
/* Index of the location named name, or -1. */
int layout_find(const feat_layout *l, const char *name);
/* Whether a and b list the same locations with the same offsets and sizes. */
int layout_equal(const feat_layout *a, const feat_layout *b);

/* count[e] = how many of sel[0..nsel) lie in location e (count[l->n]). */
void layout_count(const feat_layout *l, const int64_t *sel, size_t nsel, size_t *count);

/* After selection (docs/ALGORITHM.md §5): row[0..nsel) holds the features
 * sel[0..nsel) (ascending indices into l) of one example; each location's
 * selected features are scaled to unit L2 norm together (l2_normalize on
 * each location's run of the row). The one renormalization of the
 * project: the selected test features and the gathered training
 * features both go through it. */
void renormalize_selected(float *row, const int64_t *sel, size_t nsel, const feat_layout *l);

#endif
