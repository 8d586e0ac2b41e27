/* resnet.c: ResNet-50 written out (stem -> 4 blocks of bottleneck units ->
 * pooling -> classifier), with a tap at each of the Head2Toe locations of
 * docs/ALGORITHM.md §2. Two variants, chosen by the model directory's config:
 *
 *   v1.5 (torchvision, post-activation), unit(x) =
 *       relu( s + bn3(conv3( relu(bn2(conv2( relu(bn1(conv1(x))) ))) )) )
 *       s = x, or proj_bn(proj(x)) in the first unit of a block
 *   v2 (the paper: pre-activation with BatchNorm), with p = relu(bn1(x)):
 *       unit(x) = s + conv3( relu(bn3(conv2( relu(bn2(conv1(p))) ))) )
 *       s = x, or proj(p) (the projection takes the pre-activated input)
 *       and a final relu(final_bn(.)) after the last unit.
 * In both the stride of a block sits on the unit's 3x3 conv (conv2) and on
 * the projection. The stem is conv 7x7/2 (+ BN + ReLU in v1.5 only), then
 * max pool 3x3/2.
 *
 * Locations (depth order; per example, conv maps are [H, W, C]):
 *   after_root                  the stem output after the max pool
 *   block{i}_unit{k}_layer0     the tensor fed into the unit's conv1:
 *                                 v1.5: the unit input x;
 *                                 v2:   p = relu(bn1(x)), the pre-activated
 *                                       input (also fed to the projection)
 *   block{i}_unit{k}_layer1     fed into conv2: relu(bn(conv1(.)))
 *   block{i}_unit{k}_layer2     fed into conv3: relu(bn(conv2(.)))
 *   pre_logits_pre_pooling      the map that is pooled: v1.5 the last unit's
 *                               output, v2 relu(final_bn(last unit's output))
 *   pre_logits                  its global mean [C]
 *   logits                      pre_logits W + b [K]
 * Every location is an activation after normalization + activation and before
 * the next conv (v2's after_root is the raw stem output: v2 has no BN there).
 * The model option tap_point (docs/ALGORITHM.md §16) moves each tap that
 * reads a ReLU's output to the ReLU's input (pre-activation) or to the
 * BatchNorm's input (pre-normalization); the forward pass itself, and so
 * pre_logits and logits, stay the same. conv_to_tap / bn_to_tap compute a
 * tensor up to the tap point, after_tap the rest.
 * For v2 this is what the official code taps: the paper's backbone (the
 * TF bottleneck_v2 of the S4L/VTAB ResNet) feeds conv 'a' with
 * relu(batch_norm(x)), so the tensor "fed into the unit's first conv" is the
 * pre-activated input, not the raw residual stream.
 *
 * Widths are inferred from the tensor shapes (a reduced-width model runs
 * through the same code); units per block come from the config. BatchNorm
 * is folded at load into one scale and shift per channel (tensor.h bn_fold).
 * All activation memory is sized in resnet_prepare; resnet_forward allocates
 * nothing. Not here: reading config keys common to every backbone
 * (model.c), preprocessing (model.c), pooling for features (pooling.c, extract.c).
 *
 * Config keys read here (weights/README):
 *   variant      = v1.5 | v2                 (required)
 *   units        = 3,4,6,3                   (units per block; the default)
 *   bn_eps       = 1e-5                      (required: PyTorch 1e-5, TF 1e-3)
 *   padding      = symmetric | same          (convs; default symmetric:
 *                  (k-1)/2 on every side, as PyTorch and the TF code's
 *                  fixed_padding; same: TF "SAME", asymmetric when strided)
 *   pool_padding = ignore | zero             (stem max pool, padding 1;
 *                  ignore: padded cells never win (PyTorch MaxPool2d);
 *                  zero: padded cells are zeros that take part (the TF
 *                  code's fixed_padding + VALID pool, timm's 'fixed' stem)) */
#include "resnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"
#include "util.h"
#include "winograd.h"

#define RESNET_BLOCKS 4
/* 1 + 3 per unit + 3 locations must fit in MODEL_MAX_LOCATIONS */
#define RESNET_MAX_UNITS ((MODEL_MAX_LOCATIONS - 4) / 3)

/* ==========================================================================
 * The model: weights (BN already folded), geometry and activation buffers */

typedef struct {
    float *w;                  /* [KH, KW, Cin, Cout] */
    float *wpk;                /* w packed for gemm_conv (gemm.h gemm_pack), or NULL: packed per call */
    winograd_weights wino;     /* the model option winograd: its transformed weights, or wino.u NULL */
    int cin, cout;
    conv_spec spec;
    int h, w_in;               /* input spatial size (fixed by input_size) */
    int oh, ow;                /* output spatial size */
} conv_layer;

typedef struct {
    float *scale, *shift;      /* [C] each: y = x * scale + shift */
    int c;
} bn_layer;

typedef struct {
    int cin, cmid, cout, stride, has_proj;
    int h, w;                  /* input size */
    int oh, ow;                /* output size (after the stride) */
    conv_layer conv1, conv2, conv3, proj;
    /* v1.5: bnK follows convK; v2: bnK precedes convK (bn1 is the
     * pre-activation); proj_bn only in v1.5 */
    bn_layer bn1, bn2, bn3, proj_bn;
    int block, index;          /* block{block}_unit{index}_..., from 1 */
} unit;

typedef struct resnet {
    int v2;                    /* 0: v1.5, 1: v2 */
    tap_point tap;             /* where the taps sit (model option) */
    int units[RESNET_BLOCKS];
    int nunits;
    float eps;
    int same_padding, pool_zero_pad;

    conv_layer root;           /* 7x7/2, 3 -> C0 */
    bn_layer root_bn;          /* v1.5 only */
    int pool_h, pool_w;        /* after the max pool */
    unit u[RESNET_MAX_UNITS];
    bn_layer final_bn;         /* v2 only */
    int out_h, out_w, out_c;   /* the map that is pooled */
    float *fc_w;               /* [C4, K] */
    float *fc_b;               /* [K] */
    int classes;

    /* activation buffers (resnet_prepare), for up to max_batch images */
    int max_batch;
    float *s0, *s1;            /* the residual stream, ping-pong */
    float *aux;                /* stem conv output; v1.5 projected shortcut;
                                  v2 pre-activated unit input */
    float *t1, *t2;            /* inside a unit: conv1 and conv2 outputs */
    float *work;               /* conv2d scratch */
    float *pooled;             /* [N, C4] */
    float *logits;             /* [N, K] */
} resnet;

/* ==========================================================================
 * Loading layers (tensors by name and shape: model.c loader_load) */

/* A conv weight [k, k, cin, cout] (cout -1: inferred) with its geometry;
 * winograd (the model option, 2 or 4; 0: none): a 3x3 stride-1 conv's
 * weights transformed for Winograd F(m x m, 3 x 3) too (the fast build
 * only: the reference build runs the plain convolution). */
static int load_conv(tensor_loader *L, conv_layer *c, const char *prefix, int k, int stride, int cin, int cout,
                     int h, int w, int same, int winograd)
{
    char name[TENSOR_NAME_MAX];
    snprintf(name, sizeof name, "%s.w", prefix);
    long dims[4] = {k, k, cin, cout};
    if (!(c->w = loader_load(L, name, 4, dims))) return -1;
    c->cin = cin;
    c->cout = (int)dims[3];
    /* packed once (the fast build only): every batch then reads it as it
     * is, instead of each tile of each convolution packing its part again;
     * without the memory, each call packs (the same bits) */
    const size_t K = (size_t)k * k * cin;
    if (!REFERENCE_BUILD && (c->wpk = alloc_array(gemm_packed_size(K, (size_t)c->cout), sizeof(float))))
        gemm_pack(c->w, K, (size_t)c->cout, c->wpk);
    if (!REFERENCE_BUILD && winograd && k == 3 && stride == 1 &&
        winograd_prepare(c->w, cin, c->cout, winograd, &c->wino))
        return -1;
    c->h = h;
    c->w_in = w;
    conv_spec *s = &c->spec;
    s->kh = s->kw = k;
    s->stride = stride;
    if (same) { /* TF "SAME": out = ceil(in / stride), the odd pixel of padding at the end */
        int ph = ((h + stride - 1) / stride - 1) * stride + k - h;
        int pw = ((w + stride - 1) / stride - 1) * stride + k - w;
        if (ph < 0) ph = 0;
        if (pw < 0) pw = 0;
        s->pad_t = ph / 2, s->pad_b = ph - ph / 2;
        s->pad_l = pw / 2, s->pad_r = pw - pw / 2;
    } else {
        s->pad_t = s->pad_b = s->pad_l = s->pad_r = (k - 1) / 2;
    }
    c->oh = conv_out_h(s, h);
    c->ow = conv_out_w(s, w);
    if (c->oh < 1 || c->ow < 1) {
        set_error("%s/%s: a %dx%d input is too small for this conv", L->dir, name, h, w);
        return -1;
    }
    return 0;
}

/* prefix.{gamma,beta,mean,var} [c], folded into scale/shift. */
static int load_bn(tensor_loader *L, bn_layer *b, const char *prefix, int c, float eps)
{
    static const char *const part[4] = {"gamma", "beta", "mean", "var"};
    float *t[4] = {NULL, NULL, NULL, NULL};
    int rc = -1;
    for (int i = 0; i < 4; i++) {
        char name[TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "%s.%s", prefix, part[i]);
        long dims[1] = {c};
        if (!(t[i] = loader_load(L, name, 1, dims))) goto done;
    }
    for (int i = 0; i < c; i++)
        if (!(t[3][i] >= 0)) {
            set_error("%s/%s.var.npy: element %d is %g; a variance must be >= 0", L->dir, prefix, i, t[3][i]);
            goto done;
        }
    if (!(b->scale = alloc_array((size_t)c * 2, sizeof(float)))) goto done;
    b->shift = b->scale + c;
    b->c = c;
    bn_fold(t[0], t[1], t[2], t[3], eps, c, b->scale, b->shift);
    rc = 0;
done:
    for (int i = 0; i < 4; i++) free_array(t[i]);
    return rc;
}

/* ==========================================================================
 * resnet_load: config, tensors, geometry, locations */

static void add_location(model *m, const char *name, int rank, int d0, int d1, int d2)
{
    location *l = &m->loc[m->nloc++];
    snprintf(l->name, sizeof l->name, "%s", name);
    l->rank = rank;
    l->dims[0] = d0, l->dims[1] = d1, l->dims[2] = d2;
    l->is_default = 1;
}

/* The config keys of this file (resnet.c's header comment). */
static int read_config(const config *cfg, resnet *r)
{
    static const char *const keys[] = {"arch", "input_size", "normalize", "variant", "units",
                                       "bn_eps", "padding", "pool_padding", NULL};
    static const char *const variants[] = {"v1.5", "v2", NULL};
    static const char *const paddings[] = {"symmetric", "same", NULL};
    static const char *const pool_paddings[] = {"ignore", "zero", NULL};
    int n = 4, total = 0;
    double eps = 0;
    r->units[0] = 3, r->units[1] = 4, r->units[2] = 6, r->units[3] = 3;
    if (config_check_keys(cfg, keys) || config_choice(cfg, "variant", 1, variants, &r->v2) ||
        config_int_list(cfg, "units", 0, r->units, RESNET_BLOCKS, &n) || config_double(cfg, "bn_eps", 1, &eps) ||
        config_choice(cfg, "padding", 0, paddings, &r->same_padding) ||
        config_choice(cfg, "pool_padding", 0, pool_paddings, &r->pool_zero_pad))
        return -1;
    for (int i = 0; i < RESNET_BLOCKS; i++) total += i < n && r->units[i] >= 1 ? r->units[i] : 1000;
    if (n != RESNET_BLOCKS || total > RESNET_MAX_UNITS) {
        set_error("%s: 'units = %s': expected 4 positive counts, at most %d units in all", cfg->path,
                  config_get(cfg, "units"), RESNET_MAX_UNITS);
        return -1;
    }
    if (!(eps > 0 && eps < 1)) {
        set_error("%s: 'bn_eps = %s': expected a number in (0, 1)", cfg->path, config_get(cfg, "bn_eps"));
        return -1;
    }
    r->eps = (float)eps;
    return 0;
}

/* The stem: conv 7x7/2 (+ BN + ReLU in v1.5), max pool 3x3/2 pad 1. Free
 * widths (-1) come from the files; a random model gets torchvision's. */
static int load_stem(model *m, resnet *r, tensor_loader *L)
{
    const int S = m->input_size;
    if (load_conv(L, &r->root, "root.conv", 7, 2, 3, loader_free_dim(L, 64), S, S, r->same_padding, 0)) return -1;
    const int c0 = r->root.cout;
    if (!r->v2 && load_bn(L, &r->root_bn, "root.bn", c0, r->eps)) return -1;
    r->pool_h = (r->root.oh + 2 - 3) / 2 + 1;
    r->pool_w = (r->root.ow + 2 - 3) / 2 + 1;
    add_location(m, "after_root", 3, r->pool_h, r->pool_w, c0);
    return 0;
}

/* The projection shortcut of unit u (block b, unit k, tensors p.proj*):
 * needed where the stride or the width changes, allowed only in a block's
 * first unit (timm's v2 has one there even when nothing changes). */
static int load_projection(tensor_loader *L, resnet *r, unit *u, const char *p, int b, int k)
{
    char q[64];
    const int need = u->stride != 1 || u->cin != u->cout;
    snprintf(q, sizeof q, "%s.proj.w", p);
    if (!(k == 0 && (need || loader_has(L, q)))) {
        if (!need) return 0;
        set_error("%s/%s.proj.w.npy: missing: unit %d of block %d changes the %s and needs a projection", L->dir, p,
                  k + 1, b + 1, u->stride != 1 ? "stride" : "width");
        return -1;
    }
    u->has_proj = 1;
    snprintf(q, sizeof q, "%s.proj", p);
    if (load_conv(L, &u->proj, q, 1, u->stride, u->cin, u->cout, u->h, u->w, r->same_padding, 0)) return -1;
    if (u->proj.oh != u->oh || u->proj.ow != u->ow) {
        set_error("%s/%s.proj.w.npy: the projection gives %dx%d, the unit %dx%d", L->dir, p, u->proj.oh,
                  u->proj.ow, u->oh, u->ow);
        return -1;
    }
    snprintf(q, sizeof q, "%s.proj_bn", p);
    return !r->v2 && load_bn(L, &u->proj_bn, q, u->cout, r->eps) ? -1 : 0;
}

/* Unit k of block b (from 0) on an input [h, w, cin]: its convolutions,
 * BatchNorms, projection and three locations. */
static int load_unit(model *m, resnet *r, tensor_loader *L, int b, int k, int cin, int h, int w)
{
    unit *u = &r->u[r->nunits++];
    char p[40], q[64], ln[LOCATION_NAME_MAX];
    const int same = r->same_padding;
    u->block = b + 1, u->index = k + 1;
    u->cin = cin, u->h = h, u->w = w;
    u->stride = k == 0 && b > 0 ? 2 : 1;
#define NAME(part) (snprintf(q, sizeof q, "%s.%s", p, part), q)
    snprintf(p, sizeof p, "block%d.unit%d", b + 1, k + 1);
    if (load_conv(L, &u->conv1, NAME("conv1"), 1, 1, cin, loader_free_dim(L, 64L << b), h, w, same, 0)) return -1;
    u->cmid = u->conv1.cout;
    if (load_conv(L, &u->conv2, NAME("conv2"), 3, u->stride, u->cmid, u->cmid, h, w, same, m->opt.winograd) ||
        load_conv(L, &u->conv3, NAME("conv3"), 1, 1, u->cmid, loader_free_dim(L, 4L * u->cmid), u->conv2.oh,
                  u->conv2.ow, same, 0))
        return -1;
    u->cout = u->conv3.cout;
    u->oh = u->conv2.oh, u->ow = u->conv2.ow;
    /* v1.5: bnJ normalizes convJ's output; v2: convJ's input */
    const int c1 = r->v2 ? cin : u->cmid, c3 = r->v2 ? u->cmid : u->cout;
    if (load_bn(L, &u->bn1, NAME("bn1"), c1, r->eps) || load_bn(L, &u->bn2, NAME("bn2"), u->cmid, r->eps) ||
        load_bn(L, &u->bn3, NAME("bn3"), c3, r->eps) || load_projection(L, r, u, p, b, k))
        return -1;
#undef NAME
    snprintf(ln, sizeof ln, "block%d_unit%d_layer0", b + 1, k + 1);
    add_location(m, ln, 3, h, w, cin);
    snprintf(ln, sizeof ln, "block%d_unit%d_layer1", b + 1, k + 1);
    add_location(m, ln, 3, h, w, u->cmid);
    snprintf(ln, sizeof ln, "block%d_unit%d_layer2", b + 1, k + 1);
    add_location(m, ln, 3, u->oh, u->ow, u->cmid);
    return 0;
}

/* The head: (v2: final BN + ReLU), global mean, dense. */
static int load_head(model *m, resnet *r, tensor_loader *L)
{
    const int cin = r->out_c;
    if (r->v2 && load_bn(L, &r->final_bn, "final_bn", cin, r->eps)) return -1;
    long dw[2] = {cin, loader_free_dim(L, 1000)};
    if (!(r->fc_w = loader_load(L, "logits.w", 2, dw))) return -1;
    r->classes = (int)dw[1];
    long db[1] = {r->classes};
    if (!(r->fc_b = loader_load(L, "logits.b", 1, db))) return -1;
    add_location(m, "pre_logits_pre_pooling", 3, r->out_h, r->out_w, cin);
    add_location(m, "pre_logits", 1, cin, 0, 0);
    add_location(m, "logits", 1, r->classes, 0, 0);
    return 0;
}

/* stem -> 4 blocks of bottleneck units -> head, in depth order, so that the
 * locations are listed in the order the forward pass fires them. */
static int load_all(model *m, resnet *r, tensor_loader *L)
{
    if (read_config(&m->cfg, r) || load_stem(m, r, L)) return -1;
    int cin = r->root.cout, h = r->pool_h, w = r->pool_w;
    for (int b = 0; b < RESNET_BLOCKS; b++)
        for (int k = 0; k < r->units[b]; k++) {
            if (load_unit(m, r, L, b, k, cin, h, w)) return -1;
            const unit *u = &r->u[r->nunits - 1];
            cin = u->cout, h = u->oh, w = u->ow;
        }
    r->out_h = h, r->out_w = w, r->out_c = cin;
    if (load_head(m, r, L)) return -1;
    char what[64];
    snprintf(what, sizeof what, "a variant = %s ResNet with these units", r->v2 ? "v2" : "v1.5");
    return loader_check_extra(L, what);
}

int resnet_load(model *m)
{
    resnet *r = calloc(1, sizeof *r);
    if (!r) {
        set_error("out of memory loading %s", m->dir);
        return -1;
    }
    m->impl = r;
    m->nloc = 0;
    r->tap = m->opt.point;
    tensor_loader L;
    int rc = loader_init(&L, m, "ResNet", 2048) ? -1 : load_all(m, r, &L);
    m->params = L.elements;
    loader_free(&L);
    if (rc) {
        resnet_free(m);
        m->nloc = 0;
    }
    return rc;
}

/* ==========================================================================
 * resnet_prepare: every activation buffer, sized for max_batch images */

/* Every activation buffer let go: freed, or only forgotten when they are
 * another copy's (owned 0: a replica just copied from it, below) */
static void free_buffers(resnet *r, int owned)
{
    float **b[] = {&r->s0, &r->s1, &r->aux, &r->t1, &r->t2, &r->work, &r->pooled, &r->logits};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        if (owned) free_array(*b[i]);
        *b[i] = NULL;
    }
    r->max_batch = 0;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

static size_t conv_work(const conv_layer *c, int n)
{
    const size_t plain = conv2d_work_size(&c->spec, n, c->h, c->w_in, c->cin);
    return c->wino.u ? max_z(plain, winograd_work_size(&c->wino, n, c->h, c->w_in, &c->spec)) : plain;
}

int resnet_prepare(model *m, int max_batch)
{
    resnet *r = m->impl;
    free_buffers(r, 1);
    /* per-example sizes of each buffer's largest content */
    size_t stream = (size_t)r->pool_h * r->pool_w * r->root.cout;
    size_t aux = (size_t)r->root.oh * r->root.ow * r->root.cout, t1 = 1, t2 = 1;
    for (int i = 0; i < r->nunits; i++) {
        const unit *u = &r->u[i];
        stream = max_z(stream, (size_t)u->oh * u->ow * u->cout);
        aux = max_z(aux, max_z((size_t)u->h * u->w * u->cin, (size_t)u->oh * u->ow * u->cout));
        t1 = max_z(t1, (size_t)u->h * u->w * u->cmid);
        t2 = max_z(t2, (size_t)u->oh * u->ow * u->cmid);
    }
    /* conv2d scratch for a whole batch (it may not scale linearly) */
    size_t work = conv_work(&r->root, max_batch);
    for (int i = 0; i < r->nunits; i++) {
        const unit *u = &r->u[i];
        work = max_z(work, max_z(conv_work(&u->conv1, max_batch), conv_work(&u->conv2, max_batch)));
        work = max_z(work, conv_work(&u->conv3, max_batch));
        if (u->has_proj) work = max_z(work, conv_work(&u->proj, max_batch));
    }
    size_t nb = (size_t)max_batch;
    if (size_mul(stream, nb, &stream) || size_mul(aux, nb, &aux) || size_mul(t1, nb, &t1) ||
        size_mul(t2, nb, &t2))
        return -1;
    if (!(r->s0 = alloc_array(stream, sizeof(float))) || !(r->s1 = alloc_array(stream, sizeof(float))) ||
        !(r->aux = alloc_array(aux, sizeof(float))) || !(r->t1 = alloc_array(t1, sizeof(float))) ||
        !(r->t2 = alloc_array(t2, sizeof(float))) || !(r->work = alloc_array(work ? work : 1, sizeof(float))) ||
        !(r->pooled = alloc_array(nb * (size_t)r->out_c, sizeof(float))) ||
        !(r->logits = alloc_array(nb * (size_t)r->classes, sizeof(float)))) {
        free_buffers(r, 1);
        return -1;
    }
    r->max_batch = max_batch;
    return 0;
}

/* ==========================================================================
 * resnet_forward */

/* conv2d_ep, or Winograd's convolution where the layer has its weights
 * (the model option winograd); should that fail (no packing buffer), the
 * plain one. */
static void conv_ep(const conv_layer *c, const float *x, int n, float *y, float *work, const conv_epilogue *ep)
{
    if (c->wino.u && winograd_conv(x, n, c->h, c->w_in, &c->wino, &c->spec, y, work, ep) == 0) return;
    conv2d_ep(x, n, c->h, c->w_in, c->cin, c->w, c->wpk, c->cout, &c->spec, y, work, ep);
}

static void conv_run(const conv_layer *c, const float *x, int n, float *y, float *work)
{
    conv_ep(c, x, n, y, work, NULL);
}

/* conv, then (bn: y * scale + shift), (res: + res), (relu: max(., 0)),
 * fused into the convolution's output tiles (tensor.h conv2d_ep): the same
 * bits as conv_run, bn_run, add_inplace and relu one after the other. */
static void conv_bn_run(const conv_layer *c, const float *x, int n, float *y, float *work, const bn_layer *bn,
                        const float *res, int relu)
{
    conv_epilogue ep = {bn ? bn->scale : NULL, bn ? bn->shift : NULL, res, relu, NULL};
    conv_ep(c, x, n, y, work, &ep);
}

static void bn_run(const bn_layer *b, float *x, size_t rows, int relu)
{
    scale_shift(x, rows, b->c, b->scale, b->shift, relu);
}

/* After a max pool whose padded cells were ignored, make them count as
 * zeros (pool_padding = zero): an output whose window reaches into the
 * padding becomes max(y, 0). Window of output i: rows [i*stride - pad,
 * i*stride - pad + k). */
static void pool_zero_padding(float *y, int n, int H, int W, int C, int OH, int OW, int k, int stride, int pad)
{
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0 = oy * stride - pad, x0 = ox * stride - pad;
                if (y0 >= 0 && x0 >= 0 && y0 + k <= H && x0 + k <= W) continue;
                float *p = y + (((size_t)i * OH + oy) * OW + ox) * C;
                for (int c = 0; c < C; c++)
                    if (p[c] < 0) p[c] = 0;
            }
}

/* ---- the tap point (model option tap_point): y = relu(bn(conv(x))) is
 * computed up to where the tap sits, the tap fires, then the rest:
 *   post-activation    all of it (fused), then nothing
 *   pre-activation     bn(conv(x)) (fused), then the ReLU
 *   pre-normalization  conv(x), then BN and ReLU
 * Either way y ends with the same bits (the fused epilogue equals the
 * separate passes, tensor.h conv2d_ep). */
static void conv_to_tap(const resnet *r, const conv_layer *c, const float *x, int n, float *y, const bn_layer *bn)
{
    if (r->tap == TAP_PRE_NORMALIZATION) conv_run(c, x, n, y, r->work);
    else conv_bn_run(c, x, n, y, r->work, bn, NULL, r->tap == TAP_POST_ACTIVATION);
}

/* The same for y = relu(bn(y)) in place (v2's pre-activation and final BN). */
static void bn_to_tap(const resnet *r, const bn_layer *bn, float *y, size_t rows)
{
    if (r->tap != TAP_PRE_NORMALIZATION) bn_run(bn, y, rows, r->tap == TAP_POST_ACTIVATION);
}

/* What is left after the tap: y [rows, bn->c]; bn NULL for a bare ReLU
 * (a v1.5 unit's output, whose BN comes before the residual add). */
static void after_tap(const resnet *r, const bn_layer *bn, float *y, size_t rows, int c)
{
    if (r->tap == TAP_PRE_ACTIVATION || (r->tap == TAP_PRE_NORMALIZATION && !bn)) relu(y, rows * (size_t)c);
    else if (r->tap == TAP_PRE_NORMALIZATION) bn_run(bn, y, rows, 1);
}

/* Fire the unit's tap block{i}_unit{k}_<layer>. */
static int tap_unit(tap_seq *t, const unit *u, const char *layer, const float *x)
{
    char name[LOCATION_NAME_MAX];
    snprintf(name, sizeof name, "block%d_unit%d_%s", u->block, u->index, layer);
    return tap_fire(t, name, x);
}

/* Whether a unit's last conv may write its output over the residual it
 * adds (gemm.h conv_epilogue): a sum of one depth block. */
static int conv3_in_place(const unit *u) { return (size_t)u->cmid <= GEMM_KC; }

/* v1.5 (post-activation) unit: x [N, h, w, cin] -> [N, oh, ow, cout] in y,
 * or over x itself when x is the shortcut and conv3 can add in place.
 * Returns where the output is, or NULL when the pass stops at one of its
 * taps. With a tap point other than post-activation, x and the output are
 * the unit's input and output before their final ReLU, which the unit
 * applies to x after the layer0 tap. */
static float *unit_v15(resnet *r, const unit *u, float *x, float *y, tap_seq *t)
{
    const int n = t->n;
    const size_t in_rows = (size_t)n * u->h * u->w, mid_rows = (size_t)n * u->oh * u->ow;
    if (tap_unit(t, u, "layer0", x)) return NULL;
    after_tap(r, NULL, x, in_rows, u->cin);                             /* the previous unit's ReLU */
    conv_to_tap(r, &u->conv1, x, n, r->t1, &u->bn1);                    /* relu(bn1(conv1(x))) */
    if (tap_unit(t, u, "layer1", r->t1)) return NULL;
    after_tap(r, &u->bn1, r->t1, in_rows, u->cmid);
    conv_to_tap(r, &u->conv2, r->t1, n, r->t2, &u->bn2);
    if (tap_unit(t, u, "layer2", r->t2)) return NULL;
    after_tap(r, &u->bn2, r->t2, mid_rows, u->cmid);
    const float *shortcut = x;
    if (u->has_proj) {
        conv_bn_run(&u->proj, x, n, r->aux, r->work, &u->proj_bn, NULL, 0);
        shortcut = r->aux;
    } else if (conv3_in_place(u)) {
        y = x;
    }
    /* relu(bn3(conv3) + s); the ReLU waits for the next tap unless post-activation */
    conv_bn_run(&u->conv3, r->t2, n, y, r->work, &u->bn3, shortcut, r->tap == TAP_POST_ACTIVATION);
    return y;
}

/* v2 (pre-activation) unit: x [N, h, w, cin] -> [N, oh, ow, cout] in y, or
 * over x when conv3 can add in place. x is overwritten by the projected
 * shortcut when the unit has one. Returns where the output is, or NULL
 * when the pass stops at one of its taps. */
static float *unit_v2(resnet *r, const unit *u, float *x, float *y, tap_seq *t)
{
    const int n = t->n;
    const size_t in_rows = (size_t)n * u->h * u->w;
    const size_t mid_rows = (size_t)n * u->oh * u->ow;
    float *p = r->aux; /* p = relu(bn1(x)) [N, h, w, cin] */
    memcpy(p, x, in_rows * (size_t)u->cin * sizeof(float));
    bn_to_tap(r, &u->bn1, p, in_rows);
    if (tap_unit(t, u, "layer0", p)) return NULL;
    after_tap(r, &u->bn1, p, in_rows, u->cin);
    conv_to_tap(r, &u->conv1, p, n, r->t1, &u->bn2);                  /* relu(bn2(conv1(p))) */
    if (tap_unit(t, u, "layer1", r->t1)) return NULL;
    after_tap(r, &u->bn2, r->t1, in_rows, u->cmid);
    conv_to_tap(r, &u->conv2, r->t1, n, r->t2, &u->bn3);
    if (tap_unit(t, u, "layer2", r->t2)) return NULL;
    after_tap(r, &u->bn3, r->t2, mid_rows, u->cmid);
    if (u->has_proj) conv_run(&u->proj, p, n, x, r->work); /* x itself is not needed any more */
    if (conv3_in_place(u)) y = x;
    conv_bn_run(&u->conv3, r->t2, n, y, r->work, NULL, x, 0);          /* conv3(.) + shortcut */
    return y;
}

/* The head: (v2: final BN + ReLU) -> pre_logits_pre_pooling -> global mean
 * -> pre_logits -> dense -> logits. x [N, out_h, out_w, C4]. */
static void head(resnet *r, float *x, tap_seq *t)
{
    const int n = t->n, hw = r->out_h * r->out_w, c = r->out_c;
    const size_t rows = (size_t)n * hw;
    if (r->v2) bn_to_tap(r, &r->final_bn, x, rows);
    if (tap_fire(t, "pre_logits_pre_pooling", x)) return;
    after_tap(r, r->v2 ? &r->final_bn : NULL, x, rows, c); /* v1.5: the last unit's ReLU */
    global_avgpool(x, n, hw, c, r->pooled);
    if (tap_fire(t, "pre_logits", r->pooled)) return;
    gemm(0, 0, (size_t)n, (size_t)r->classes, (size_t)c, r->pooled, (size_t)c, r->fc_w, (size_t)r->classes, 0.0f,
         r->logits, (size_t)r->classes);
    add_bias(r->logits, (size_t)n, r->classes, r->fc_b);
    tap_fire(t, "logits", r->logits);
}

/* y = the stem's max pool of aux (ReLU and max pool commute, so under
 * pre-activation this is the pool of the ReLU's input). */
static void stem_pool(resnet *r, int n, float *y)
{
    const int c0 = r->root.cout;
    maxpool2d(r->aux, n, r->root.oh, r->root.ow, c0, 3, 2, 1, y);
    if (r->pool_zero_pad) pool_zero_padding(y, n, r->root.oh, r->root.ow, c0, r->pool_h, r->pool_w, 3, 2, 1);
}

/* The early layers -- the stem and the units of the first block, whose
 * maps are the largest (a batch of 16 at 224 px: 51 MB each) -- run a few
 * images at a time, so that each map is still in cache when the next layer
 * reads it: images whose first-block output fits in RESNET_CHUNK_BYTES, at
 * least one per thread (the taps of these locations pool images in
 * parallel). A row of a convolution does not depend on the other rows
 * computed with it (gemm.c), so the bits are those of the whole batch. */
#ifndef RESNET_CHUNK_BYTES
#define RESNET_CHUNK_BYTES (8u << 20)
#endif

static int early_units(const resnet *r)
{
    int k = 0;
    while (k < r->nunits && r->u[k].block == r->u[0].block) k++;
    return k;
}

/* Values per image of the early layers' output, the last unit's. */
static size_t early_size(const resnet *r)
{
    const unit *u = &r->u[early_units(r) - 1];
    return (size_t)u->oh * u->ow * u->cout;
}

/* Images per chunk. A chunk puts every map of the stream at its first
 * image's place in the early output (forward_early), so chunking needs
 * every such map to be no larger per image than that output (true of a
 * ResNet: the stem's map is narrower, the units of a block all alike). */
static int chunk_images(const resnet *r, int asked, int n)
{
    const size_t out = early_size(r);
    int fits = (size_t)r->pool_h * r->pool_w * r->root.cout <= out;
    for (int i = 0; i < early_units(r); i++) fits &= (size_t)r->u[i].oh * r->u[i].ow * r->u[i].cout <= out;
    if (!fits) return n;
    if (asked > 0) return asked < n ? asked : n;
    const size_t per = out * sizeof(float);
    int c = per > 0 && per < RESNET_CHUNK_BYTES ? (int)(RESNET_CHUNK_BYTES / per) : 1;
    if (c < threads_max()) c = threads_max();
    return c < n ? c : n;
}

/* Unit i on the stream, its maps at offset off of s0 and s1: its input in
 * *cur, its output into *next or over the input (unit_v15, unit_v2); the
 * two swap when the output went to *next. Returns 1 when the pass stops at
 * one of its taps. */
static int stream_unit(resnet *r, int i, size_t off, float **cur, float **next, tap_seq *t)
{
    const unit *u = &r->u[i];
    float *x = *cur + off, *y = *next + off;
    float *out = r->v2 ? unit_v2(r, u, x, y, t) : unit_v15(r, u, x, y, t);
    if (!out) return 1;
    if (out == y) {
        float *tmp = *cur;
        *cur = *next, *next = tmp;
    }
    return 0;
}

/* Stem and early units on images c0 .. c0+n-1 of the batch (x: those
 * images; n = t->n), their output at image c0 of the stream buffer
 * returned in *out. The stream ping-pongs between s0 and s1; every map of
 * the chunk starts where image c0 of the early output does, and is no
 * larger per image (chunk_images), so a chunk writes only where its own
 * images of that output go, never on an earlier chunk's, and the output
 * is whole for the batch once every chunk is done. Returns 1 when the
 * pass stops at one of its taps. */
static int forward_early(resnet *r, const float *x, size_t c0, tap_seq *t, float **out)
{
    const int n = t->n;
    /* ---- stem: x [n, S, S, 3] -> aux [n, H1, W1, C0] -> cur [n, H2, W2, C0] */
    const size_t off = c0 * early_size(r);
    float *cur = r->s0, *next = r->s1, *y = cur + off;
    if (r->v2) conv_run(&r->root, x, n, r->aux, r->work);
    else conv_to_tap(r, &r->root, x, n, r->aux, &r->root_bn); /* relu(bn(conv)), up to the tap point */
    stem_pool(r, n, y);
    if (tap_fire(t, "after_root", y)) return 1;
    if (!r->v2 && r->tap == TAP_PRE_NORMALIZATION) { /* the stream goes on from bn(conv), before its ReLU */
        bn_run(&r->root_bn, r->aux, (size_t)n * r->root.oh * r->root.ow, 0);
        stem_pool(r, n, y);
    }
    for (int i = 0; i < early_units(r); i++)
        if (stream_unit(r, i, off, &cur, &next, t)) return 1;
    *out = cur;
    return 0;
}

void resnet_forward(model *m, const float *x, tap_seq *t)
{
    resnet *r = m->impl;
    const int n = t->n;
    if (n < 1 || n > r->max_batch) {
        fprintf(stderr, "resnet_forward: batch of %d images, prepared for %d (call model_prepare)\n", n,
                r->max_batch);
        abort();
    }
    /* ---- the early layers, chunk by chunk; each chunk fires the same locations */
    const int chunk = chunk_images(r, m->opt.early_chunk, n), loc0 = t->next;
    const size_t per_image = (size_t)m->input_size * m->input_size * 3;
    float *cur = NULL;
    int stop = 0;
    for (int c0 = 0; c0 < n; c0 += chunk) {
        tap_seq tc = *t;
        tc.first = t->first + c0, tc.n = n - c0 < chunk ? n - c0 : chunk, tc.next = loc0;
        stop = forward_early(r, x + (size_t)c0 * per_image, (size_t)c0, &tc, &cur);
        t->next = tc.next;
    }
    if (stop) return;

    /* ---- the other units on the whole batch, the stream ping-ponging between s0 and s1 */
    float *next = cur == r->s0 ? r->s1 : r->s0;
    for (int i = early_units(r); i < r->nunits; i++)
        if (stream_unit(r, i, 0, &cur, &next, t)) return;
    head(r, cur, t);
}

/* ==========================================================================
 * replicas (model_prepare_split): the same weights, buffers of their own */

void *resnet_replica(const model *m, int max_batch)
{
    resnet *c = malloc(sizeof *c);
    if (!c) {
        set_error("out of memory copying the ResNet for a thread");
        return NULL;
    }
    *c = *(const resnet *)m->impl;
    free_buffers(c, 0);
    model part = *m;
    part.impl = c;
    if (resnet_prepare(&part, max_batch)) {
        free(c);
        return NULL;
    }
    return c;
}

void resnet_replica_free(void *rep)
{
    if (!rep) return;
    free_buffers(rep, 1);
    free(rep);
}

/* ==========================================================================
 * resnet_free */

static void free_bn(bn_layer *b) { free_array(b->scale); b->scale = b->shift = NULL; }

void resnet_free(model *m)
{
    resnet *r = m->impl;
    if (!r) return;
    free_buffers(r, 1);
    free_array(r->root.w), free_array(r->root.wpk);
    free_bn(&r->root_bn);
    for (int i = 0; i < r->nunits; i++) {
        unit *u = &r->u[i];
        free_array(u->conv1.w), free_array(u->conv2.w), free_array(u->conv3.w), free_array(u->proj.w);
        free_array(u->conv1.wpk), free_array(u->conv2.wpk), free_array(u->conv3.wpk), free_array(u->proj.wpk);
        winograd_free(&u->conv2.wino);
        free_bn(&u->bn1), free_bn(&u->bn2), free_bn(&u->bn3), free_bn(&u->proj_bn);
    }
    free_bn(&r->final_bn);
    free_array(r->fc_w);
    free_array(r->fc_b);
    free(r);
    m->impl = NULL;
}
