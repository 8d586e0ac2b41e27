/* vit.c: the Vision Transformer written out (patchify -> class token ->
 * position embedding -> L pre-LayerNorm encoder blocks -> final LayerNorm ->
 * class token -> optional representation layer -> classifier), with a tap at
 * each of the Head2Toe locations of docs/ALGORITHM.md §2.
 *
 * With S the input size, P the patch, G = S / P, T = 1 + G*G tokens, C the
 * width, M the MLP width, R the representation size, K the classes:
 *
 *   p   = conv PxP/P (x) + b                  [G*G, C]  patch embeddings
 *   h   = [cls; p]                            [T, C]    root_output_with_cls
 *   h   = h + pos                             [T, C]    position_embedded_input
 *   block i = 0..L-1:
 *     a = LN1(h)                              [T, C]    encoder_{i}_pre_attn
 *     y = MHSA(a) Wo + bo                     [T, C]    encoder_{i}_attn
 *     h = h + y
 *     m = GELU(LN2(h) W1 + b1)                [T, M]    encoder_{i}_mlp_1
 *     y = m W2 + b2                           [T, C]    encoder_{i}_mlp_2
 *     h = h + y
 *   e   = LN(h)                               [T, C]    encoded_sequence
 *   c   = e[0]                                [C]       cls_embedded
 *   r   = tanh(c Wr + br), or c if R = 0      [R or C]  pre_logits
 *   z   = r Wh + bh                           [K]       logits (extra)
 *
 * MHSA: qkv = a Wqkv + bqkv [T, 3C] (q, k, v side by side, head j = channels
 * [j*C/heads, (j+1)*C/heads) of each), softmax(q k^T / sqrt(C/heads)) v per
 * head (tensor.h attention), heads concatenated. GELU is exact (erf, PyTorch)
 * or the tanh approximation (jax.nn.gelu's default), per config.
 * `attn` and `mlp_2` are taken before their residual adds, `mlp_1` after the
 * GELU (the official code's taps).
 *
 * Config keys read here (weights/README; arch, input_size and normalize are
 * model.c's), all required:
 *   patch = P   width = C   depth = L   heads = H   mlp_dim = M
 *   ln_eps = 1e-6           gelu = erf | tanh
 *   representation = R      (0: no representation layer)
 *   classes = K
 * Each is cross-checked against the tensor shapes; an unknown key is refused.
 *
 * Tensors (DIR/<name>.npy, float32; the converter writes this one layout):
 *   patch_embed.w [P, P, 3, C]   patch_embed.b [C]   cls [C]   pos_embed [T, C]
 *   encoder_{i}.ln1.gamma, .ln1.beta [C]    encoder_{i}.qkv.w [C, 3C], .qkv.b [3C]
 *   encoder_{i}.out.w [C, C], .out.b [C]    encoder_{i}.ln2.gamma, .ln2.beta [C]
 *   encoder_{i}.mlp1.w [C, M], .mlp1.b [M]  encoder_{i}.mlp2.w [M, C], .mlp2.b [C]
 *   final_ln.gamma, final_ln.beta [C]
 *   pre_logits.w [C, R], pre_logits.b [R]   (only when R > 0)
 *   logits.w [R or C, K], logits.b [K]
 *
 * All activation memory is sized in vit_prepare; vit_forward allocates
 * nothing. Not here: config keys common to every backbone and preprocessing
 * (model.c), pooling for features (pooling.c, extract.c), the kernels (tensor.c). */
#include "vit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "tensor.h"
#include "util.h"

/* 2 + 4 per block + 3 default locations and logits must fit in MODEL_MAX_LOCATIONS */
#define VIT_MAX_DEPTH ((MODEL_MAX_LOCATIONS - 6) / 4)

/* ==========================================================================
 * The model: weights, geometry and activation buffers */

typedef struct {
    float *ln1_g, *ln1_b;      /* [C] */
    float *qkv_w, *qkv_b;      /* [C, 3C], [3C] */
    float *out_w, *out_b;      /* [C, C], [C] */
    float *ln2_g, *ln2_b;      /* [C] */
    float *mlp1_w, *mlp1_b;    /* [C, M], [M] */
    float *mlp2_w, *mlp2_b;    /* [M, C], [C] */
} block;

typedef struct vit {
    int patch, grid, tokens;   /* P, G = S / P, T = 1 + G*G */
    int width, depth, heads;   /* C, L, H */
    int mlp_dim;               /* M */
    int rep;                   /* R (0: no representation layer) */
    int classes;               /* K */
    float eps;
    int gelu_tanh;             /* 0: erf, 1: tanh approximation */
    conv_spec patch_spec;      /* PxP, stride P, no padding */

    float *patch_w;            /* [P, P, 3, C] */
    float *patch_b;            /* [C] */
    float *cls;                /* [C] */
    float *pos;                /* [T, C] */
    block b[VIT_MAX_DEPTH];
    float *norm_g, *norm_b;    /* [C] */
    float *rep_w, *rep_b;      /* [C, R], [R]; NULL when R = 0 */
    float *head_w, *head_b;    /* [R or C, K], [K] */

    /* activation buffers (vit_prepare), for up to max_batch images */
    int max_batch;
    float *h;                  /* [N, T, C] the residual stream */
    float *a;                  /* [N, T, C] LayerNorm output; the final one */
    float *big;                /* [N, T, max(3C, M)] qkv, or the MLP hidden */
    float *o;                  /* [N, T, C] attention core output */
    float *y;                  /* [N, T, C] dense output before a residual add;
                                  also the patch conv output [N, G, G, C] */
    float *work;               /* conv2d and attention scratch */
    float *c;                  /* [N, C] class token after the final LN */
    float *r;                  /* [N, R] after the representation layer */
    float *z;                  /* [N, K] logits */
} vit;

/* ==========================================================================
 * Loading tensors by name, with shape checks (model.c loader_load) */

/* DIR/<name>.npy as float32 of exactly shape d0 (, d1 (, d2, d3)); ndim
 * dims are used. NULL + an error naming the file otherwise. */
static float *load_tensor(tensor_loader *L, const char *name, int ndim, size_t d0, size_t d1, size_t d2, size_t d3)
{
    long want[4] = {(long)d0, (long)d1, (long)d2, (long)d3};
    return loader_load(L, name, ndim, want);
}

/* The size of dimension dim of DIR/<name>.npy (header only), or -1. */
static long tensor_dim(const tensor_loader *L, const char *name, int ndim, int dim)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.npy", L->dir, name);
    npy_reader rd;
    if (npy_open(path, &rd)) return -1;
    long d = rd.ndim == ndim ? (long)rd.shape[dim] : -1;
    npy_close(&rd);
    if (d < 0) set_error("%s: expected %d dimensions, found %d", path, ndim, rd.ndim);
    return d;
}

/* ==========================================================================
 * vit_load: config, tensors, geometry, locations */

static void add_location(model *m, const char *name, int rank, int d0, int d1, int is_default)
{
    location *l = &m->loc[m->nloc++];
    snprintf(l->name, sizeof l->name, "%s", name);
    l->rank = rank;
    l->dims[0] = d0, l->dims[1] = d1, l->dims[2] = 0;
    l->is_default = is_default;
}

/* The config keys of this file (vit.c's header comment), cross-checked
 * with each other and the input size. */
static int read_config(const config *cfg, int S, vit *v)
{
    static const char *const keys[] = {"arch", "input_size", "normalize", "patch", "width", "depth", "heads",
                                       "mlp_dim", "ln_eps", "gelu", "representation", "classes", NULL};
    static const char *const gelus[] = {"erf", "tanh", NULL};
    double eps = 0;
    if (config_check_keys(cfg, keys) || config_int(cfg, "patch", 1, 1, 4096, &v->patch) ||
        config_int(cfg, "width", 1, 1, 65536, &v->width) ||
        config_int(cfg, "depth", 1, 1, VIT_MAX_DEPTH, &v->depth) ||
        config_int(cfg, "heads", 1, 1, 4096, &v->heads) ||
        config_int(cfg, "mlp_dim", 1, 1, 1 << 20, &v->mlp_dim) || config_double(cfg, "ln_eps", 1, &eps) ||
        config_choice(cfg, "gelu", 1, gelus, &v->gelu_tanh) ||
        config_int(cfg, "representation", 1, 0, 1 << 20, &v->rep) ||
        config_int(cfg, "classes", 1, 1, 1 << 24, &v->classes))
        return -1;
    if (!(eps > 0 && eps < 1)) {
        set_error("%s: 'ln_eps = %s': expected a number in (0, 1)", cfg->path, config_get(cfg, "ln_eps"));
        return -1;
    }
    v->eps = (float)eps;
    if (S % v->patch != 0) {
        set_error("%s: input_size %d is not a multiple of patch %d", cfg->path, S, v->patch);
        return -1;
    }
    if (v->width % v->heads != 0) {
        set_error("%s: width %d is not a multiple of heads %d", cfg->path, v->width, v->heads);
        return -1;
    }
    v->grid = S / v->patch;
    v->tokens = 1 + v->grid * v->grid;
    v->patch_spec = (conv_spec){v->patch, v->patch, v->patch, 0, 0, 0, 0};
    return 0;
}

/* Patch embeddings, class token, position embeddings. */
static int load_embedding(model *m, vit *v, tensor_loader *L)
{
    const int S = m->input_size, P = v->patch, C = v->width, T = v->tokens;
    if (!(v->patch_w = load_tensor(L, "patch_embed.w", 4, P, P, 3, C)) ||
        !(v->patch_b = load_tensor(L, "patch_embed.b", 1, C, 0, 0, 0)) ||
        !(v->cls = load_tensor(L, "cls", 1, C, 0, 0, 0)))
        return -1;
    long pt = L->random ? T : tensor_dim(L, "pos_embed", 2, 0);
    if (pt >= 0 && pt != T) { /* name the likely cause before the generic shape error */
        set_error("%s/pos_embed.npy: %ld tokens, but input_size %d with patch %d gives %d (resizing position "
                  "embeddings is not supported: export at the checkpoint's input size)",
                  L->dir, pt, S, P, T);
        return -1;
    }
    if (!(v->pos = load_tensor(L, "pos_embed", 2, T, C, 0, 0))) return -1;
    add_location(m, "root_output_with_cls", 2, T, C, 1);
    add_location(m, "position_embedded_input", 2, T, C, 1);
    return 0;
}

/* Encoder block i: its tensors and four locations. */
static int load_block(model *m, vit *v, tensor_loader *L, int i)
{
    block *b = &v->b[i];
    const int C = v->width, M = v->mlp_dim, T = v->tokens;
    char q[TENSOR_NAME_MAX], ln[LOCATION_NAME_MAX];
#define NAME(part) (snprintf(q, sizeof q, "encoder_%d.%s", i, part), q)
    if (!(b->ln1_g = load_tensor(L, NAME("ln1.gamma"), 1, C, 0, 0, 0)) ||
        !(b->ln1_b = load_tensor(L, NAME("ln1.beta"), 1, C, 0, 0, 0)) ||
        !(b->qkv_w = load_tensor(L, NAME("qkv.w"), 2, C, 3 * (size_t)C, 0, 0)) ||
        !(b->qkv_b = load_tensor(L, NAME("qkv.b"), 1, 3 * (size_t)C, 0, 0, 0)) ||
        !(b->out_w = load_tensor(L, NAME("out.w"), 2, C, C, 0, 0)) ||
        !(b->out_b = load_tensor(L, NAME("out.b"), 1, C, 0, 0, 0)) ||
        !(b->ln2_g = load_tensor(L, NAME("ln2.gamma"), 1, C, 0, 0, 0)) ||
        !(b->ln2_b = load_tensor(L, NAME("ln2.beta"), 1, C, 0, 0, 0)) ||
        !(b->mlp1_w = load_tensor(L, NAME("mlp1.w"), 2, C, M, 0, 0)) ||
        !(b->mlp1_b = load_tensor(L, NAME("mlp1.b"), 1, M, 0, 0, 0)) ||
        !(b->mlp2_w = load_tensor(L, NAME("mlp2.w"), 2, M, C, 0, 0)) ||
        !(b->mlp2_b = load_tensor(L, NAME("mlp2.b"), 1, C, 0, 0, 0)))
        return -1;
#undef NAME
    if (i + 1 == v->depth && loader_has(L, (snprintf(q, sizeof q, "encoder_%d.ln1.gamma", i + 1), q))) {
        set_error("%s/%s.npy: a block beyond depth = %d (config and tensors disagree)", L->dir, q, v->depth);
        return -1;
    }
    static const char *const taps[4] = {"pre_attn", "attn", "mlp_1", "mlp_2"};
    for (int t = 0; t < 4; t++) {
        snprintf(ln, sizeof ln, "encoder_%d_%s", i, taps[t]);
        add_location(m, ln, 2, T, t == 2 ? M : C, 1);
    }
    return 0;
}

/* Final norm, representation layer, head. */
static int load_head(model *m, vit *v, tensor_loader *L)
{
    const int C = v->width, R = v->rep, Cr = R > 0 ? R : C, K = v->classes, T = v->tokens;
    if (!(v->norm_g = load_tensor(L, "final_ln.gamma", 1, C, 0, 0, 0)) ||
        !(v->norm_b = load_tensor(L, "final_ln.beta", 1, C, 0, 0, 0)))
        return -1;
    if (R > 0) {
        if (!(v->rep_w = load_tensor(L, "pre_logits.w", 2, C, R, 0, 0)) ||
            !(v->rep_b = load_tensor(L, "pre_logits.b", 1, R, 0, 0, 0)))
            return -1;
    } else if (loader_has(L, "pre_logits.w")) {
        set_error("%s/pre_logits.w.npy: present, but config says representation = 0", L->dir);
        return -1;
    }
    if (!(v->head_w = load_tensor(L, "logits.w", 2, Cr, K, 0, 0)) ||
        !(v->head_b = load_tensor(L, "logits.b", 1, K, 0, 0, 0)))
        return -1;
    add_location(m, "encoded_sequence", 2, T, C, 1);
    add_location(m, "cls_embedded", 1, C, 0, 1);
    add_location(m, "pre_logits", 1, Cr, 0, 1);
    add_location(m, "logits", 1, K, 0, 0);
    return 0;
}

/* embedding -> blocks -> head, in depth order (the order of the taps). */
static int load_all(model *m, vit *v, tensor_loader *L)
{
    if (read_config(&m->cfg, m->input_size, v) || load_embedding(m, v, L)) return -1;
    for (int i = 0; i < v->depth; i++)
        if (load_block(m, v, L, i)) return -1;
    if (load_head(m, v, L)) return -1;
    return loader_check_extra(L, "a ViT with this config");
}

int vit_load(model *m)
{
    vit *v = calloc(1, sizeof *v);
    if (!v) {
        set_error("out of memory loading %s", m->dir);
        return -1;
    }
    m->impl = v;
    m->nloc = 0;
    tensor_loader L;
    int rc = loader_init(&L, m, "ViT", 16 + 12 * VIT_MAX_DEPTH) ? -1 : load_all(m, v, &L);
    m->params = L.elements;
    loader_free(&L);
    if (rc) {
        vit_free(m);
        m->nloc = 0;
    }
    return rc;
}

/* ==========================================================================
 * vit_prepare: every activation buffer, sized for max_batch images */

/* Every activation buffer let go: freed, or only forgotten when they are
 * another copy's (owned 0: a replica just copied from it, below) */
static void free_buffers(vit *v, int owned)
{
    float **b[] = {&v->h, &v->a, &v->big, &v->o, &v->y, &v->work, &v->c, &v->r, &v->z};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        if (owned) free_array(*b[i]);
        *b[i] = NULL;
    }
    v->max_batch = 0;
}

int vit_prepare(model *m, int max_batch)
{
    vit *v = m->impl;
    free_buffers(v, 1);
    const size_t nb = (size_t)max_batch, C = (size_t)v->width;
    const size_t wide = 3 * C > (size_t)v->mlp_dim ? 3 * C : (size_t)v->mlp_dim;
    size_t rows, stream, big;   /* rows = N*T */
    if (size_mul(nb, (size_t)v->tokens, &rows) || size_mul(rows, C, &stream) || size_mul(rows, wide, &big))
        return -1;
    const int S = m->input_size;
    size_t work = conv2d_work_size(&v->patch_spec, max_batch, S, S, 3);
    size_t aw = attention_work_size(max_batch, v->tokens, v->heads);
    if (aw > work) work = aw;
    if (!(v->h = alloc_array(stream, sizeof(float))) || !(v->a = alloc_array(stream, sizeof(float))) ||
        !(v->big = alloc_array(big, sizeof(float))) || !(v->o = alloc_array(stream, sizeof(float))) ||
        !(v->y = alloc_array(stream, sizeof(float))) || !(v->work = alloc_array(work ? work : 1, sizeof(float))) ||
        !(v->c = alloc_array(nb * C, sizeof(float))) ||
        !(v->r = alloc_array(nb * (size_t)(v->rep > 0 ? v->rep : 1), sizeof(float))) ||
        !(v->z = alloc_array(nb * (size_t)v->classes, sizeof(float)))) {
        free_buffers(v, 1);
        return -1;
    }
    v->max_batch = max_batch;
    return 0;
}

/* ==========================================================================
 * vit_forward */

/* y[rows, cout] = act(x[rows, cin] w[cin, cout] + b), act NULL or a GELU:
 * the bias and act applied to each output tile in cache (gemm.h gemm_dense) */
static void dense(const float *x, size_t rows, int cin, const float *w, const float *b,
                  void (*act)(float *, size_t), int cout, float *y)
{
    gemm_dense(rows, (size_t)cout, (size_t)cin, x, w, b, act, y);
}

/* Fire encoder_{i}_<what>. */
static int tap_block(tap_seq *t, int i, const char *what, const float *x)
{
    char name[LOCATION_NAME_MAX];
    snprintf(name, sizeof name, "encoder_%d_%s", i, what);
    return tap_fire(t, name, x);
}

/* Patch embeddings y [N, G*G, C], the class token in front: h [N, T, C];
 * then the position embeddings added. */
static int embed(vit *v, int S, const float *x, tap_seq *t)
{
    const int n = t->n, C = v->width, G2 = v->grid * v->grid;
    const size_t tc = (size_t)v->tokens * C;
    conv2d(x, n, S, S, 3, v->patch_w, C, &v->patch_spec, v->y, v->work);
    add_bias(v->y, (size_t)n * G2, C, v->patch_b);
    for (int i = 0; i < n; i++) {
        float *hi = v->h + (size_t)i * tc;
        memcpy(hi, v->cls, (size_t)C * sizeof(float));
        memcpy(hi + C, v->y + (size_t)i * G2 * C, (size_t)G2 * C * sizeof(float));
    }
    if (tap_fire(t, "root_output_with_cls", v->h)) return 1;
    for (int i = 0; i < n; i++) add_inplace(v->h + (size_t)i * tc, v->pos, tc);
    return tap_fire(t, "position_embedded_input", v->h);
}

/* Encoder block i on the residual stream h [N, T, C]:
 * h += MHSA(LN1(h)); h += MLP(LN2(h)). */
static int encoder_block(vit *v, int i, tap_seq *t)
{
    const block *b = &v->b[i];
    const int C = v->width, M = v->mlp_dim;
    const size_t rows = (size_t)t->n * v->tokens;
    layernorm(v->h, rows, C, b->ln1_g, b->ln1_b, v->eps, v->a);
    if (tap_block(t, i, "pre_attn", v->a)) return 1;
    dense(v->a, rows, C, b->qkv_w, b->qkv_b, NULL, 3 * C, v->big); /* [N, T, 3C] */
    attention(v->big, t->n, v->tokens, C, v->heads, v->o, v->work);
    dense(v->o, rows, C, b->out_w, b->out_b, NULL, C, v->y);
    if (tap_block(t, i, "attn", v->y)) return 1;
    add_inplace(v->h, v->y, rows * C);
    layernorm(v->h, rows, C, b->ln2_g, b->ln2_b, v->eps, v->a);
    /* [N, T, M], the GELU on each output tile */
    dense(v->a, rows, C, b->mlp1_w, b->mlp1_b, v->gelu_tanh ? gelu_tanh : gelu_erf, M, v->big);
    if (tap_block(t, i, "mlp_1", v->big)) return 1;
    dense(v->big, rows, M, b->mlp2_w, b->mlp2_b, NULL, C, v->y);
    if (tap_block(t, i, "mlp_2", v->y)) return 1;
    add_inplace(v->h, v->y, rows * C);
    return 0;
}

/* Final LayerNorm, the class token, the representation layer, the head. */
static void head(vit *v, tap_seq *t)
{
    const int n = t->n, C = v->width;
    const size_t rows = (size_t)n * v->tokens, tc = (size_t)v->tokens * C;
    layernorm(v->h, rows, C, v->norm_g, v->norm_b, v->eps, v->a);
    if (tap_fire(t, "encoded_sequence", v->a)) return;
    for (int i = 0; i < n; i++) memcpy(v->c + (size_t)i * C, v->a + (size_t)i * tc, (size_t)C * sizeof(float));
    if (tap_fire(t, "cls_embedded", v->c)) return;
    const float *pre = v->c;
    int cr = C;
    if (v->rep > 0) {
        dense(v->c, (size_t)n, C, v->rep_w, v->rep_b, NULL, v->rep, v->r);
        tanh_inplace(v->r, (size_t)n * v->rep);
        pre = v->r, cr = v->rep;
    }
    if (tap_fire(t, "pre_logits", pre)) return;
    dense(pre, (size_t)n, cr, v->head_w, v->head_b, NULL, v->classes, v->z);
    tap_fire(t, "logits", v->z);
}

void vit_forward(model *m, const float *x, tap_seq *t)
{
    vit *v = m->impl;
    if (t->n < 1 || t->n > v->max_batch) {
        fprintf(stderr, "vit_forward: batch of %d images, prepared for %d (call model_prepare)\n", t->n,
                v->max_batch);
        abort();
    }
    if (embed(v, m->input_size, x, t)) return;
    for (int i = 0; i < v->depth; i++)
        if (encoder_block(v, i, t)) return;
    head(v, t);
}

/* ==========================================================================
 * replicas (model_prepare_split): the same weights, buffers of their own */

void *vit_replica(const model *m, int max_batch)
{
    vit *c = malloc(sizeof *c);
    if (!c) {
        set_error("out of memory copying the ViT for a thread");
        return NULL;
    }
    *c = *(const vit *)m->impl;
    free_buffers(c, 0);
    model part = *m;
    part.impl = c;
    if (vit_prepare(&part, max_batch)) {
        free(c);
        return NULL;
    }
    return c;
}

void vit_replica_free(void *rep)
{
    if (!rep) return;
    free_buffers(rep, 1);
    free(rep);
}

/* ==========================================================================
 * vit_free */

void vit_free(model *m)
{
    vit *v = m->impl;
    if (!v) return;
    free_buffers(v, 1);
    float **w[] = {&v->patch_w, &v->patch_b, &v->cls, &v->pos, &v->norm_g, &v->norm_b,
                   &v->rep_w, &v->rep_b, &v->head_w, &v->head_b};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) free_array(*w[i]);
    for (int i = 0; i < VIT_MAX_DEPTH; i++) {
        block *b = &v->b[i];
        float *p[] = {b->ln1_g, b->ln1_b, b->qkv_w, b->qkv_b, b->out_w, b->out_b,
                      b->ln2_g, b->ln2_b, b->mlp1_w, b->mlp1_b, b->mlp2_w, b->mlp2_b};
        for (size_t k = 0; k < sizeof p / sizeof p[0]; k++) free_array(p[k]);
    }
    free(v);
    m->impl = NULL;
}
