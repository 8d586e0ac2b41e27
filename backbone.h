/* backbone.h: what the backbones (resnet.c, vit.c) share: a model
 * directory's tensors by name, shape-checked, and the taps of a forward
 * pass. The rest of the program sees a backbone through model.h only. */
#ifndef H2T_BACKBONE_H
#define H2T_BACKBONE_H

#include "model.h"

/* ---- Firing taps (resnet.c, vit.c): the backbone names each location
 * where it computes it; tap_fire checks the name against the location list
 * the loader made (same order) and says when the pass may stop. */
typedef struct {
    const model *m;
    int first, n;              /* the images being computed: first .. first+n-1 of the batch */
    int next;                  /* index of the next location to fire */
    int last;                  /* stop after this location */
    tap_fn cb;
    void *ctx;
} tap_seq;

/* Fire the next location, which must be `name`, on x (images first ..
 * first+n-1);
 * returns 1 when it was the last one wanted (the forward returns). */
int tap_fire(tap_seq *t, const char *name, const float *x);

/* ---- Loading a model directory's tensors by name (resnet.c, vit.c) */

#define TENSOR_NAME_MAX 96

typedef struct {
    const char *dir;
    const char *arch;                 /* "ResNet", "ViT": in the missing-file error */
    int random;                       /* generate tensors from rng, read no file */
    rng_t rng;
    char (*names)[TENSOR_NAME_MAX];   /* every tensor loaded, for loader_check_extra */
    size_t elements;                  /* their sizes, summed */
    int n, cap;
} tensor_loader;

/* Room for cap tensor names; loader_free releases it. For a model from
 * model_init_random, loader_load generates each tensor instead of reading
 * it (so no size may be free: the backbone passes loader_free_dim's
 * standard size), loader_has is false and loader_check_extra passes. */
int loader_init(tensor_loader *L, const model *m, const char *arch, int cap);
/* -1 (free: the file decides) when reading files, standard otherwise. */
long loader_free_dim(const tensor_loader *L, long standard);
void loader_free(tensor_loader *L);
/* Whether DIR/<name>.npy exists (and can be opened). */
int loader_has(const tensor_loader *L, const char *name);
/* DIR/<name>.npy as float32 of shape want[0..ndim) (ndim <= 4); a want[i]
 * of -1 is free: the file's size (1..1000000) is stored there. Returns the
 * data (free_array) or NULL + an error naming the file, expected vs found. */
float *loader_load(tensor_loader *L, const char *name, int ndim, long *want);
/* Refuse any .npy in DIR that was not loaded: "DIR/x.npy: unexpected
 * tensor: <what> does not use it". */
int loader_check_extra(const tensor_loader *L, const char *what);

#endif
