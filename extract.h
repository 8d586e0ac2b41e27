/* extract.h: images in, Head2Toe features out, in one backbone pass.
 *
 * The images go through the backbone in batches; at every location the
 * tap pools the batch (pooling.h) into the rows of each target that uses
 * that location; the pass stops after the deepest location any target
 * needs. A target is the layout at one target size T, with all its
 * features or only a selection of them (renormalized per location over the
 * selected ones, docs/ALGORITHM.md §5). Its rows go to memory (the
 * pipeline) or to a .npy file (`h2t features`).
 *
 * Also: the image source (the one place image files are checked), the
 * driver of `h2t features` (several T, --select, shards) and `h2t join`.
 * It trains nothing (lasso.c) and writes no head (headio.c). */
#ifndef H2T_EXTRACT_H
#define H2T_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "npy.h"
#include "pooling.h"

/* ==========================================================================
 * Images: uint8 [n, H, W, 3], [n, H, W, 1] or [n, H, W], n, H, W >= 1 */

typedef struct {
    const char *path;
    npy_reader r;
    size_t n;          /* images */
    int h, w, c;       /* c: 1 (gray, tiled to 3 by the resize) or 3 */
} image_source;

/* Opens and checks path (refusals name the file and what was expected). */
int images_open(const char *path, image_source *s);
void images_close(image_source *s);

/* ==========================================================================
 * One backbone pass */

/* Where a target's rows go, a batch at a time: rows [nrows, cols] are the
 * features of images row0 .. row0 + nrows - 1 (counted from the pass's
 * first image). */
typedef int (*rows_fn)(void *ctx, const float *rows, size_t row0, size_t nrows, size_t cols);
int rows_to_memory(void *mem, const float *rows, size_t row0, size_t nrows, size_t cols);  /* mem: float [n, cols] */
int rows_to_writer(void *w, const float *rows, size_t row0, size_t nrows, size_t cols);    /* w: an open npy_writer */

typedef struct {
    const feat_layout *lay;   /* locations at this T, with their plans (layout_make / layout_bind) */
    const int64_t *sel;       /* NULL: every feature of lay; else nsel ascending indices into lay */
    size_t nsel;
    rows_fn out;              /* where the rows go */
    void *out_ctx;
} extract_target;

/* Columns of a target's rows: nsel, or lay->d. */
size_t extract_columns(const extract_target *t);

typedef struct {
    size_t images;            /* images that went through the backbone */
    int last;                 /* deepest location computed (index into m->loc) */
    double seconds;
} extract_stats;

/* Images [start, end) of s through m in batches of `batch`, every target
 * filled from the same pass. All memory is sized before the first batch.
 * progress: a label for progress lines on stderr, or NULL for silence. */
int extract_pass(model *m, image_source *s, size_t start, size_t end, const extract_target *t, int nt, int batch,
                 const char *progress, extract_stats *st);

/* ==========================================================================
 * `h2t features` */

#define FEAT_MAX_TARGETS 16

typedef struct {
    const char *model_dir;
    const char *images;      /* X.npy */
    const char *out;         /* F.npy */
    long target[FEAT_MAX_TARGETS];
    int ntarget;
    int batch;
    const char *taps;        /* NULL (default set), "all", or "a,b,c" */
    long tap_every;          /* keep every k-th of them (0, 1: all; docs/ALGORITHM.md §16) */
    cls_mode cls;            /* token maps' class tokens (§16) */
    model_options model_opt; /* tap point, input location (§16) */
    const char *select;      /* selected.npy: int64 ascending indices into the layout's D, or NULL */
    const char *layout;      /* the layout the indices refer to (with select) */
    long shard_k, shard_n;   /* 0-based shard k of n contiguous slices (n = 1: everything) */
    int quiet;
} feat_opts;

/* Images -> feature files (F.npy + F.layout.tsv per T). Memory: the
 * model's batch buffers plus batch x D floats per target size, never
 * n x D. Outputs go to temporary names, renamed when complete; on failure
 * nothing is left at the output paths. A summary line per output on
 * stdout. */
int features_run(const feat_opts *o);

/* Output naming. One target size: exactly out (which must end in .npy)
 * and <out without .npy>.layout.tsv. Several: <base>.T<T>.npy and
 * <base>.T<T>.layout.tsv for each T. -1 if out does not end in .npy or a
 * name does not fit in cap. */
int feat_out_paths(const char *out, long T, int several, char *npy, char *tsv, size_t cap);

/* Rows of shard k of n images: [k*n_img/n, (k+1)*n_img/n). */
void shard_bounds(size_t n_img, long k, long n, size_t *start, size_t *end);

/* `h2t join`: concatenates 2-D .npy files row-wise into out (same dtype and
 * column count required). If the inputs have layouts (<in>.layout.tsv
 * beside <in>.npy), they must be identical and one is copied beside out. */
int features_join(const char *out, char *const *inputs, int ninputs);

#endif
