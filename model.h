/* model.h: a frozen backbone as the rest of the program sees it.
 *
 * A model directory (written by weights/export.py) holds config.txt and one
 * .npy per tensor. model_load reads config.txt, picks the architecture
 * (`arch = resnet50` or `arch = vit`), and the backbone file (resnet.c,
 * vit.c) loads and checks its tensors. A forward pass over a batch calls a
 * tap callback at every location (docs/ALGORITHM.md §2), in depth order.
 * This file does not pool or normalize features (that is pooling.c and extract.c). */
#ifndef H2T_MODEL_H
#define H2T_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* 128: ViT-L/16 (24 blocks: 4 * 24 + 6 = 102 locations) and ResNet-101 (33
 * units: 3 * 33 + 4 = 103) fit; vit.c and resnet.c derive their caps from it */
#define MODEL_MAX_LOCATIONS 128
#define LOCATION_NAME_MAX 48
/* threads that model_forward_split spreads a batch over, at most */
#define MODEL_MAX_REPLICAS 63

/* One tap. Per-example shape: rank 3 = conv map [H,W,C], rank 2 = token map
 * [T,C], rank 1 = vector [C]. */
typedef struct {
    char name[LOCATION_NAME_MAX];
    int rank;
    int dims[3];
    int is_default;            /* in the official default set */
} location;

/* Called with every example of a batch at every location: x holds examples
 * first .. first+n-1 of the batch, of the location's per-example shape,
 * contiguous. Locations come in depth order, the examples of each in order,
 * but a backbone may run its early layers (whose maps are largest) a few
 * examples at a time, so that they stay in cache: their locations then come
 * chunk by chunk (depth order within a chunk), interleaved. */
typedef void (*tap_fn)(void *ctx, int loc, const float *x, int first, int n);

typedef enum { ARCH_RESNET, ARCH_VIT } model_arch;

/* Settings of a model that are not in its directory's config: where the
 * taps sit (docs/ALGORITHM.md §16). Zero values: §2 as published. */
typedef enum { TAP_POST_ACTIVATION, TAP_PRE_ACTIVATION, TAP_PRE_NORMALIZATION } tap_point;
extern const char *const tap_point_names[];  /* "post-activation", "pre-activation", "pre-normalization", NULL */
typedef struct {
    tap_point point;           /* ResNet: after BN and ReLU (§2), before the ReLU, or before the BN */
    int include_input;         /* the preprocessed image [S, S, 3] as a first location, "input" */
    int early_chunk;           /* ResNet: stem and first block this many images at a time (0: automatic,
                                  resnet.c); the bits do not depend on it */
    int winograd;              /* ResNet: 0, or m = 2 or 4: its 3x3 stride-1 convs by Winograd F(m x m, 3 x 3)
                                  (winograd.h; docs/ALGORITHM.md §18): faster, close to but not the same
                                  bits; the fast build only (the reference build ignores it) */
} model_options;

typedef struct model {
    char dir[512];             /* "(random weights)" for model_init_random */
    int random;                /* weights from random_seed, not from dir */
    size_t params;             /* elements of all tensors loaded (BN statistics included) */
    uint64_t random_seed;
    config cfg;
    model_options opt;         /* read by model.c and resnet.c */
    model_arch arch;
    int input_size;            /* S: images are resized to S x S */
    float mean[3], std[3];     /* x = (pixel / 255 - mean) / std */
    int nloc;
    location loc[MODEL_MAX_LOCATIONS];
    void *impl;                /* struct resnet * or struct vit * */
    int nrep;                  /* model_prepare_split: copies of impl sharing its weights, */
    void *rep[MODEL_MAX_REPLICAS]; /* each with buffers of its own, one per extra thread */
} model;

int model_load(const char *dir, model *m);
/* The same with options (NULL: the defaults); a tap point other than
 * post-activation is refused for a ViT. */
int model_load_with(const char *dir, const model_options *o, model *m);
/* A standard backbone with random weights generated here, no files:
 * name "resnet50" (torchvision v1.5) or "vit_b_16" (torchvision ViT-B/16),
 * at input_size pixels (0: their 224; a ViT's must be a multiple of 16).
 * For timing (h2t bench) and tests; the numbers it computes mean nothing. */
int model_init_random(const char *name, int input_size, uint64_t seed, model *m);
/* The same with options (NULL: the defaults). */
int model_init_random_with(const char *name, int input_size, uint64_t seed, const model_options *o, model *m);
/* Allocate activation buffers for batches of up to max_batch images. */
int model_prepare(model *m, int max_batch);
/* The same, and for model_forward_split: with T OpenMP threads (T > 1), T - 1
 * copies of the backbone sharing its weights, each with buffers for a 1/T
 * share of the batch. A split pass touches only its share of the first
 * copy's buffers, so it holds about as much memory as model_forward. */
int model_prepare_split(model *m, int max_batch);
void model_free(model *m);
/* Index of a location by name, or -1. */
int model_find_location(const model *m, const char *name);
/* Elements per example of location i. */
size_t location_size(const location *l);

/* imgs[n,H,W,Cin] uint8 (Cin 1 or 3) -> x[n,S,S,3] normalized floats. */
void model_preprocess(const model *m, const uint8_t *imgs, int n, int H, int W, int Cin, float *x);
/* Run the backbone on x[n,S,S,3] (n <= max_batch), calling cb at every
 * location (default and extra) in depth order, up to and including
 * location `last` (m->nloc - 1: all of them): the pass stops there, so
 * a caller that needs only shallow locations pays only for those. */
void model_forward(model *m, const float *x, int n, int last, tap_fn cb, void *ctx);
/* model_forward with the batch's images split over the threads instead of
 * each product: share k of T consecutive shares (T = the copies
 * model_prepare_split made + 1, at most n) is a whole pass on copy k, its
 * products single-threaded, the shares dealt to the threads there are now.
 * No thread waits for another until the end of the pass (README,
 * Performance: threads over images). The same bits: an image's values do
 * not depend on the batch it is computed in. cb is called from several threads at once,
 * for disjoint images (first .. first + n - 1 of the whole batch), each
 * share's locations in depth order, the shares interleaved: it must be
 * safe for that. Without copies (model_prepare, or one thread), this is
 * model_forward. */
void model_forward_split(model *m, const float *x, int n, int last, tap_fn cb, void *ctx);

#endif
