/* backbone.c: what resnet.c and vit.c share -- loading a model directory's
 * tensors by name with their shapes checked (or generating them, for a
 * model with random weights), refusing files no layer uses, and firing the
 * taps of a forward pass in depth order. It knows no architecture. */
#include "backbone.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

/* ==========================================================================
 * Taps */

int tap_fire(tap_seq *t, const char *name, const float *x)
{
    const int i = t->next++;
    if (i >= t->m->nloc || strcmp(t->m->loc[i].name, name) != 0) {
        /* the forward and the location list disagree: a bug, not bad input */
        fprintf(stderr, "tap_fire: location %d is '%s', but the forward fired '%s'\n", i,
                i < t->m->nloc ? t->m->loc[i].name : "(none)", name);
        abort();
    }
    t->cb(t->ctx, i, x, t->first, t->n);
    return i >= t->last;
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
        set_error("%s: cannot list the model directory: %s", L->dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    /* readdir returns NULL both at the end and on an error (errno says
     * which): a listing cut short must be a refusal, not a skipped check */
    while (rc == 0 && (errno = 0, e = readdir(d))) {
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
    if (rc == 0 && errno != 0) {
        set_error("%s: cannot list the model directory: %s", L->dir, strerror(errno));
        rc = -1;
    }
    closedir(d);
    return rc;
}
