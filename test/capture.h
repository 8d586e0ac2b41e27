/* test/capture.h: running a model over a fixture's images and capturing
 * every location, shared by test/test_resnet.c and test/test_vit.c.
 * capture_alloc sizes one buffer per location for n images; run_all
 * preprocesses and forwards in batches (set_threads: check.h, which the
 * including test has included first). */
#ifndef H2T_TEST_CAPTURE_H
#define H2T_TEST_CAPTURE_H

#include <stdint.h>
#include <string.h>

#include "../model.h"
#include "../npy.h"
#include "../util.h"

typedef struct {
    const model *m;
    float *buf[MODEL_MAX_LOCATIONS];   /* [n, location shape] */
    size_t done;                       /* images of earlier batches */
} capture;

static void capture_cb(void *vctx, int loc, const float *x, int first, int n)
{
    capture *c = vctx;
    size_t sz = location_size(&c->m->loc[loc]);
    memcpy(c->buf[loc] + (c->done + (size_t)first) * sz, x, (size_t)n * sz * sizeof(float));
}

static int capture_alloc(capture *c, const model *m, size_t n)
{
    memset(c, 0, sizeof *c);
    c->m = m;
    for (int i = 0; i < m->nloc; i++)
        if (!(c->buf[i] = alloc_array(n * location_size(&m->loc[i]), sizeof(float)))) return -1;
    return 0;
}

static void capture_free(capture *c)
{
    for (int i = 0; i < MODEL_MAX_LOCATIONS; i++) free_array(c->buf[i]);
}


/* Preprocess + forward all images in batches of `batch` (split: with
 * model_forward_split, each batch's images spread over the threads). */
static void run_all_with(model *m, const npy_array *img, int batch, capture *c, int split)
{
    const int n = (int)img->shape[0], H = (int)img->shape[1], W = (int)img->shape[2];
    const int C = img->ndim == 4 ? (int)img->shape[3] : 1;
    const size_t S = (size_t)m->input_size, per = (size_t)H * W * C;
    float *x = alloc_array((size_t)batch * S * S * 3, sizeof(float));
    c->done = 0;
    for (int i = 0; i < n; i += batch) {
        int b = n - i < batch ? n - i : batch;
        model_preprocess(m, (const uint8_t *)img->data + (size_t)i * per, b, H, W, C, x);
        if (split) model_forward_split(m, x, b, m->nloc - 1, capture_cb, c);
        else model_forward(m, x, b, m->nloc - 1, capture_cb, c);
        c->done += (size_t)b;
    }
    free_array(x);
}

static void run_all(model *m, const npy_array *img, int batch, capture *c) { run_all_with(m, img, batch, c, 0); }

/* model_forward_split against model_forward (c1: all n images, batches of
 * 2): every location the same bits, with batches of 3 images (shares of 1
 * and 2, a partial last batch) on 2 threads, which must have made one
 * replica (none without OpenMP). Shared by test_resnet.c and test_vit.c. */
static void check_split(const char *label, model *m, const npy_array *img, const capture *c1, size_t n)
{
    capture c3;
    set_threads(2);
    if (model_prepare_split(m, 3) || capture_alloc(&c3, m, n)) {
        check(0, "%s: model_prepare_split: %s", label, last_error());
        return;
    }
#ifdef _OPENMP
    check(m->nrep == 1, "%s: model_prepare_split on 2 threads makes 1 replica (made %d)", label, m->nrep);
#else
    check(m->nrep == 0, "%s: model_prepare_split without OpenMP makes no replica (made %d)", label, m->nrep);
#endif
    for (int threads = 2; threads >= 1; threads--) { /* prepared for 2, then run on 1: the same shares */
        set_threads(threads);
        run_all_with(m, img, 3, &c3, 1);
        for (int i = 0; i < m->nloc; i++) {
            char name[200];
            snprintf(name, sizeof name, "%s %s: each batch split in 2 shares on %d thread%s, same bits", label,
                     m->loc[i].name, threads, threads > 1 ? "s" : "");
            check_same(name, c1->buf[i], c3.buf[i], n * location_size(&m->loc[i]));
        }
    }
    set_threads(2);
    capture_free(&c3);
}

#endif
