/* model.c: the glue between a model directory and the backbones. Reads
 * config.txt, picks resnet.c or vit.c by `arch`, and does the input side
 * every backbone shares: TF1 bilinear resize and the normalization the
 * config names. Keys read here (the backbone files read the rest):
 *   arch       = resnet50 | vit
 *   input_size = S          (images are resized to S x S)
 *   normalize  = imagenet   ((x/255 - ImageNet mean) / ImageNet std)
 *              | inception  (x/255 * 2 - 1, the paper's [-1, 1])
 * It also holds the tensor loader both backbones use (loader_load: a named
 * .npy with its shape checked; loader_check_extra: no unused files). */
#include "model.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "resnet.h"
#include "tensor.h"
#include "vit.h"

/* Everything after the config: input side, then the backbone's tensors. */
static int model_setup(model *m, const char *dir, const config *cfg, int random, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    m->cfg = *cfg;
    m->random = random;
    m->random_seed = seed;

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
    return m->arch == ARCH_RESNET ? resnet_load(m) : vit_load(m);
}

int model_load(const char *dir, model *m)
{
    memset(m, 0, sizeof *m); /* model_free is safe after any failure */
    char path[600];
    snprintf(path, sizeof path, "%s/config.txt", dir);
    config c;
    if (config_read(path, &c)) return -1;
    return model_setup(m, dir, &c, 0, 0);
}

int model_init_random(const char *name, int input_size, uint64_t seed, model *m)
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
    return model_setup(m, "(random weights)", &c, 1, seed);
}

int model_prepare(model *m, int max_batch)
{
    if (max_batch < 1) {
        set_error("batch size must be at least 1");
        return -1;
    }
    return m->arch == ARCH_RESNET ? resnet_prepare(m, max_batch) : vit_prepare(m, max_batch);
}

void model_free(model *m)
{
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

void model_forward(model *m, const float *x, int n, tap_fn cb, void *ctx)
{
    if (m->arch == ARCH_RESNET) resnet_forward(m, x, n, cb, ctx);
    else vit_forward(m, x, n, cb, ctx);
}

/* ==========================================================================
 * Loading tensors by name, with shape checks (shared by resnet.c and vit.c) */

int loader_init(tensor_loader *L, const model *m, const char *arch, int cap)
{
    L->dir = m->dir, L->arch = arch, L->n = 0, L->cap = cap, L->elements = 0;
    L->random = m->random;
    rng_seed(&L->rng, m->random_seed);
    L->names = malloc((size_t)cap * sizeof *L->names);
    if (!L->names) {
        set_error("out of memory loading %s", m->dir);
        return -1;
    }
    return 0;
}

long loader_free_dim(const tensor_loader *L, long standard) { return L->random ? standard : -1; }

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* A generated tensor, by the role its name gives it: BatchNorm/LayerNorm
 * scales and variances 1, shifts, means and biases 0, weights uniform with
 * variance 2 / fan_in (He; fan_in = all sizes but the last), embeddings
 * with standard deviation 0.02. Activations then keep a sensible scale
 * through the network (no overflow, no subnormals to slow the timing). */
static float *random_tensor(tensor_loader *L, const char *name, int ndim, const long *want)
{
    size_t n = 1, fan_in = 1;
    for (int i = 0; i < ndim; i++) {
        if (want[i] < 1) {
            set_error("%s: a random %s needs every size of this tensor", name, L->arch);
            return NULL;
        }
        n *= (size_t)want[i];
        if (i + 1 < ndim) fan_in *= (size_t)want[i];
    }
    float *t = alloc_array(n, sizeof(float));
    if (!t) return NULL;
    L->elements += n;
    float fill = -1, a;
    if (ends_with(name, ".gamma") || ends_with(name, ".var")) fill = 1;
    else if (ends_with(name, ".beta") || ends_with(name, ".mean") || ends_with(name, ".b")) fill = 0;
    if (fill >= 0) {
        for (size_t i = 0; i < n; i++) t[i] = fill;
        return t;
    }
    a = ndim >= 2 && strcmp(name, "pos_embed") != 0 ? sqrtf(6.0f / (float)fan_in) : 0.02f * sqrtf(3.0f);
    for (size_t i = 0; i < n; i++) t[i] = a * (2.0f * (float)rng_uniform(&L->rng) - 1.0f);
    return t;
}

void loader_free(tensor_loader *L)
{
    free(L->names);
    L->names = NULL;
}

/* "[3, 3, *, 64]": a negative size (free) prints as '*' */
static void dims_str(char *buf, size_t cap, int ndim, const long *dims)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++) {
        if (dims[i] < 0) k += (size_t)snprintf(buf + k, cap - k, "%s*", i ? ", " : "");
        else k += (size_t)snprintf(buf + k, cap - k, "%s%ld", i ? ", " : "", dims[i]);
    }
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

int loader_has(const tensor_loader *L, const char *name)
{
    if (L->random) return 0;
    char path[700];
    snprintf(path, sizeof path, "%s/%s.npy", L->dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

float *loader_load(tensor_loader *L, const char *name, int ndim, long *want)
{
    char path[700], es[128], fs[128];
    if (L->random) return random_tensor(L, name, ndim, want);
    snprintf(path, sizeof path, "%s/%s.npy", L->dir, name);
    dims_str(es, sizeof es, ndim, want);
    if (!loader_has(L, name)) {
        set_error("%s: missing (this %s needs it, shape %s; see weights/README)", path, L->arch, es);
        return NULL;
    }
    npy_array a;
    if (npy_read(path, NPY_F32, &a)) return NULL;
    int ok = a.ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = want[i] < 0 ? a.shape[i] >= 1 && a.shape[i] <= 1000000 : a.shape[i] == (size_t)want[i];
    if (!ok) {
        long f[NPY_MAX_DIMS];
        for (int i = 0; i < a.ndim; i++) f[i] = (long)a.shape[i];
        dims_str(fs, sizeof fs, a.ndim, f);
        set_error("%s: expected shape %s, found %s", path, es, fs);
        npy_free(&a);
        return NULL;
    }
    if (L->n == L->cap) { /* cannot happen: the caller's cap covers its largest model */
        set_error("%s: too many tensors", path);
        npy_free(&a);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) want[i] = (long)a.shape[i];
    snprintf(L->names[L->n++], TENSOR_NAME_MAX, "%s", name);
    L->elements += a.count;
    return a.data;
}

int loader_check_extra(const tensor_loader *L, const char *what)
{
    if (L->random) return 0;
    DIR *d = opendir(L->dir);
    if (!d) {
        set_error("%s: cannot list the model directory", L->dir);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".npy") != 0) continue;
        int found = 0;
        for (int i = 0; i < L->n && !found; i++)
            found = strlen(L->names[i]) == len - 4 && strncmp(L->names[i], e->d_name, len - 4) == 0;
        if (!found) {
            set_error("%s/%s: unexpected tensor: %s does not use it", L->dir, e->d_name, what);
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}
