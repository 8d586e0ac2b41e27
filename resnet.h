/* resnet.h: ResNet-50 (torchvision v1.5 post-activation, or the paper's
 * pre-activation v2 with BatchNorm), any width and input size, with taps
 * at the 52 Head2Toe locations. See resnet.c. */
#ifndef H2T_RESNET_H
#define H2T_RESNET_H

#include "backbone.h"

struct resnet;
/* Reads the model directory's tensors, checks shapes against cfg, and fills
 * m->loc / m->nloc with the locations (names, per-example shapes). */
int resnet_load(model *m);
int resnet_prepare(model *m, int max_batch);
void resnet_forward(model *m, const float *x, tap_seq *t);
void resnet_free(model *m);
/* A copy of m's backbone that shares its weights, with activation buffers
 * of its own for max_batch images (model_prepare_split), or NULL; freed by
 * resnet_replica_free, which leaves the weights alone. */
void *resnet_replica(const model *m, int max_batch);
void resnet_replica_free(void *rep);

#endif
