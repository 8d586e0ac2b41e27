/* vit.h: Vision Transformer (ViT-B/16 and smaller/larger variants from the
 * config), with taps at the 53 Head2Toe locations plus `logits`. See vit.c. */
#ifndef H2T_VIT_H
#define H2T_VIT_H

#include "backbone.h"

struct vit;
int vit_load(model *m);
int vit_prepare(model *m, int max_batch);
void vit_forward(model *m, const float *x, tap_seq *t);
void vit_free(model *m);
/* A copy of m's backbone that shares its weights, with activation buffers
 * of its own for max_batch images (model_prepare_split), or NULL; freed by
 * vit_replica_free, which leaves the weights alone. */
void *vit_replica(const model *m, int max_batch);
void vit_replica_free(void *rep);

#endif
