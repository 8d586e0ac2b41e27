/* model.c: the glue between a model directory and the backbones. Reads
 * config.txt, picks resnet.c or vit.c by `arch`, and does the input side
 * every backbone shares: TF1 bilinear resize and the normalization the
 * config names. Keys read here (the backbone files read the rest):
 *   arch       = resnet50 | vit
 *   input_size = S          (images are resized to S x S)
 *   normalize  = imagenet   ((x/255 - ImageNet mean) / ImageNet std)
 *              | inception  (x/255 * 2 - 1, the paper's [-1, 1])
 * The tensor loader and the tap sequence both backbones use are
 * backbone.c's. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone.h"
#include "npy.h"
#include "resnet.h"
#include "tensor.h"
#include "vit.h"
#include "winograd.h"

const char *const tap_point_names[] = {"post-activation", "pre-activation", "pre-normalization", NULL};

/* With include_input: "input", the preprocessed image, becomes location 0
 * (docs/ALGORITHM.md §16); model_forward fires it before the backbone. */
static int add_input_location(model *m)
{
    if (m->nloc >= MODEL_MAX_LOCATIONS) {
        set_error("%s: no room for the input location (%d locations)", m->dir, m->nloc);
        return -1;
    }
    memmove(m->loc + 1, m->loc, (size_t)m->nloc * sizeof *m->loc);
    location *l = &m->loc[0];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "input");
    l->rank = 3;
    l->dims[0] = l->dims[1] = m->input_size, l->dims[2] = 3;
    l->is_default = 1;
    m->nloc++;
    return 0;
}

/* Everything after the config: input side, then the backbone's tensors. */
static int model_setup(model *m, const char *dir, const config *cfg, int random, uint64_t seed,
                       const model_options *o)
{
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    m->cfg = *cfg;
    m->random = random;
    m->random_seed = seed;
    if (o) m->opt = *o;

    static const char *const arches[] = {"resnet50", "vit", NULL};
    static const char *const norms[] = {"imagenet", "inception", NULL};
    int arch, norm;
    if (config_choice(&m->cfg, "arch", 1, arches, &arch)) return -1;
    if (config_int(&m->cfg, "input_size", 1, 8, 4096, &m->input_size)) return -1;
    if (config_choice(&m->cfg, "normalize", 1, norms, &norm)) return -1;
    if (norm == 0) {
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
        memcpy(m->mean, mean, sizeof mean);
        memcpy(m->std, std, sizeof std);
    } else {
        for (int c = 0; c < 3; c++) m->mean[c] = 0.5f, m->std[c] = 0.5f;
    }
    m->arch = arch == 0 ? ARCH_RESNET : ARCH_VIT;
    if (m->arch == ARCH_VIT && m->opt.point != TAP_POST_ACTIVATION) {
        set_error("--tap-point %s: only a ResNet's taps can move (%s is a ViT)", tap_point_names[m->opt.point], dir);
        return -1;
    }
    if (m->opt.winograd && m->arch != ARCH_RESNET) {
        set_error("--winograd %d: only a ResNet's convolutions have this option (%s is a ViT)", m->opt.winograd, dir);
        return -1;
    }
    if (m->opt.winograd && !winograd_supported(m->opt.winograd)) {
        set_error("--winograd %d: expected 0 (off), 2 or 4", m->opt.winograd);
        return -1;
    }
    if (m->arch == ARCH_RESNET ? resnet_load(m) : vit_load(m)) return -1;
    return m->opt.include_input ? add_input_location(m) : 0;
}

int model_load(const char *dir, model *m) { return model_load_with(dir, NULL, m); }

int model_load_with(const char *dir, const model_options *o, model *m)
{
    memset(m, 0, sizeof *m); /* model_free is safe after any failure */
    char path[600];
    snprintf(path, sizeof path, "%s/config.txt", dir);
    config c;
    if (config_read(path, &c)) return -1;
    return model_setup(m, dir, &c, 0, 0, o);
}

int model_init_random(const char *name, int input_size, uint64_t seed, model *m)
{
    return model_init_random_with(name, input_size, seed, NULL, m);
}

int model_init_random_with(const char *name, int input_size, uint64_t seed, const model_options *o, model *m)
{
    /* the configs weights/export.py writes for torchvision's models */
    static const char *const names[] = {"resnet50", "vit_b_16", NULL};
    static const char *const configs[] = {
        "arch = resnet50\nnormalize = imagenet\nvariant = v1.5\nbn_eps = 1e-05\n",
        "arch = vit\nnormalize = imagenet\npatch = 16\nwidth = 768\ndepth = 12\n"
        "heads = 12\nmlp_dim = 3072\nln_eps = 1e-06\ngelu = erf\nrepresentation = 0\nclasses = 1000\n",
    };
    memset(m, 0, sizeof *m);
    int i = 0;
    while (names[i] && strcmp(names[i], name) != 0) i++;
    if (!names[i]) {
        set_error("'%s': expected resnet50 or vit_b_16", name);
        return -1;
    }
    char text[400];
    snprintf(text, sizeof text, "%sinput_size = %d\n", configs[i], input_size > 0 ? input_size : 224);
    config c;
    if (config_parse(text, strlen(text), "(random weights)", &c)) return -1;
    return model_setup(m, "(random weights)", &c, 1, seed, o);
}

int model_prepare(model *m, int max_batch)
{
    if (max_batch < 1) {
        set_error("batch size must be at least 1");
        return -1;
    }
    return m->arch == ARCH_RESNET ? resnet_prepare(m, max_batch) : vit_prepare(m, max_batch);
}

/* The replicas of model_prepare_split, if any. */
static void free_replicas(model *m)
{
    for (int k = 0; k < m->nrep; k++) {
        if (m->arch == ARCH_RESNET) resnet_replica_free(m->rep[k]);
        else vit_replica_free(m->rep[k]);
        m->rep[k] = NULL;
    }
    m->nrep = 0;
}

int model_prepare_split(model *m, int max_batch)
{
    free_replicas(m);
    if (model_prepare(m, max_batch)) return -1;
    int T = threads_max() < max_batch ? threads_max() : max_batch;
    if (T > MODEL_MAX_REPLICAS + 1) T = MODEL_MAX_REPLICAS + 1;
    const int share = (max_batch + T - 1) / T;
    for (int k = 0; k + 1 < T; k++) {
        m->rep[k] = m->arch == ARCH_RESNET ? resnet_replica(m, share) : vit_replica(m, share);
        if (!m->rep[k]) break; /* no memory for it: split over fewer threads, or none */
        m->nrep = k + 1;
    }
    return 0;
}

void model_free(model *m)
{
    free_replicas(m);
    if (!m->impl) return;
    if (m->arch == ARCH_RESNET) resnet_free(m);
    else vit_free(m);
    m->impl = NULL;
}

int model_find_location(const model *m, const char *name)
{
    for (int i = 0; i < m->nloc; i++)
        if (strcmp(m->loc[i].name, name) == 0) return i;
    return -1;
}

size_t location_size(const location *l)
{
    size_t s = 1;
    for (int i = 0; i < l->rank; i++) s *= (size_t)l->dims[i];
    return s;
}

void model_preprocess(const model *m, const uint8_t *imgs, int n, int H, int W, int Cin, float *x)
{
    const int S = m->input_size;
    const size_t in_size = (size_t)H * W * Cin, out_size = (size_t)S * S * 3;
    /* per-channel affine: x = (p / 255 - mean) / std = p * a + b */
    float a[3], b[3];
    for (int c = 0; c < 3; c++) {
        a[c] = 1.0f / (255.0f * m->std[c]);
        b[c] = -m->mean[c] / m->std[c];
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *y = x + (size_t)i * out_size;
        resize_bilinear_tf1(imgs + (size_t)i * in_size, H, W, Cin, S, y);
        for (size_t p = 0; p < (size_t)S * S; p++)
            for (int c = 0; c < 3; c++) y[p * 3 + c] = y[p * 3 + c] * a[c] + b[c];
    }
}

/* A share's taps, passed on with their image numbers in the whole batch */
typedef struct {
    tap_fn cb;
    void *ctx;
    int first;
} share_ctx;

static void share_tap(void *vctx, int loc, const float *x, int first, int n)
{
    const share_ctx *s = vctx;
    s->cb(s->ctx, loc, x, s->first + first, n);
}

void model_forward_split(model *m, const float *x, int n, int last, tap_fn cb, void *ctx)
{
    /* T shares, as many as there are copies (each share then fits its
     * copy's buffers), on as many threads as there are now, at most T */
    const int T = m->nrep + 1 < n ? m->nrep + 1 : n, team = threads_max() < T ? threads_max() : T;
    if (T < 2) {
        model_forward(m, x, n, last, cb, ctx);
        return;
    }
    const size_t per_image = (size_t)m->input_size * m->input_size * 3;
#pragma omp parallel for schedule(static, 1) num_threads(team)
    for (int k = 0; k < T; k++) {
        const int i0 = (int)((long)n * k / T), i1 = (int)((long)n * (k + 1) / T);
        model part = *m; /* the same model on replica k - 1's buffers */
        part.impl = k ? m->rep[k - 1] : m->impl;
        share_ctx s = {cb, ctx, i0};
        model_forward(&part, x + (size_t)i0 * per_image, i1 - i0, last, share_tap, &s);
    }
}

void model_forward(model *m, const float *x, int n, int last, tap_fn cb, void *ctx)
{
    tap_seq t = {.m = m, .first = 0, .n = n, .next = 0, .last = last < m->nloc ? last : m->nloc - 1, .cb = cb, .ctx = ctx};
    if (m->opt.include_input && tap_fire(&t, "input", x)) return;
    if (m->arch == ARCH_RESNET) resnet_forward(m, x, &t);
    else vit_forward(m, x, &t);
}
