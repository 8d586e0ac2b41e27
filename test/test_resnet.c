/* test/test_resnet.c: resnet.c (through model.c) against PyTorch on the
 * committed fixtures written by test/make_fixtures.py:
 *   test/fixtures/resnet_v15  torchvision v1.5 classes, reduced width, RGB
 *   test/fixtures/resnet_v2   the pre-activation reference, TF conventions
 *                             ("same" padding, zero pool padding, eps 1e-3),
 *                             grayscale images
 * Checks: the locations (names and order) match PyTorch's; every location of
 * every image matches within 1e-4 of the tensor's largest magnitude (images
 * preprocessed by model_preprocess, run in batches of 2 so a partial batch
 * is exercised); the same bits with 1 and 2 OpenMP threads; and load-time
 * refusals (unknown config key, bad units, missing / extra / misshapen
 * tensor) with messages that name the problem. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"
#include "platform.h"
#include "../model.h"
#include "../npy.h"
#include "../util.h"

#define TOL 1e-4

/* ---- capturing every location of n images ------------------------------ */

#include "capture.h"

/* ---- one fixture ----------------------------------------------------------- */

/* winograd: the model option (0: off; 2, 4: the 3x3 stride-1 convs by
 * Winograd, which stays within TOL of PyTorch too, and keeps the bits for
 * any thread count and split) */
static void test_fixture(const char *dir, int winograd)
{
    char path[600], label[64];
    model m;
    const model_options o = {.winograd = winograd};
    snprintf(path, sizeof path, "%s/model", dir);
    int ok = model_load_with(path, &o, &m) == 0;
    check(ok, "%s: model_load%s%s", dir, ok ? "" : ": ", ok ? "" : last_error());
    if (!ok) return;
    snprintf(label, sizeof label, "%s%s", dir + strlen("test/fixtures/"),
             winograd == 2 ? " winograd 2" : winograd == 4 ? " winograd 4" : "");

    /* the locations, in PyTorch's depth order */
    snprintf(path, sizeof path, "%s/expected/order.txt", dir);
    FILE *f = fopen(path, "r");
    char line[128];
    int k = 0, same = f != NULL;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (k >= m.nloc || strcmp(line, m.loc[k].name) != 0) same = 0;
        k++;
    }
    if (f) fclose(f);
    check(same && k == m.nloc, "%s: %d locations in PyTorch's depth order (%d expected)", dir, m.nloc, k);

    npy_array img;
    snprintf(path, sizeof path, "%s/images.npy", dir);
    if (npy_read(path, NPY_U8, &img)) {
        check(0, "%s: %s", dir, last_error());
        model_free(&m);
        return;
    }
    const size_t n = img.shape[0];
    capture c1, c2;
    if (model_prepare(&m, 2) || capture_alloc(&c1, &m, n) || capture_alloc(&c2, &m, n)) {
        check(0, "%s: prepare: %s", dir, last_error());
        return;
    }

    /* every location against PyTorch */
    set_threads(2);
    run_all(&m, &img, 2, &c1);
    for (int i = 0; i < m.nloc; i++) {
        npy_array want;
        char name[300];
        snprintf(path, sizeof path, "%s/expected/%s.npy", dir, m.loc[i].name);
        snprintf(name, sizeof name, "%s %s", label, m.loc[i].name);
        size_t sz = n * location_size(&m.loc[i]);
        if (npy_read(path, NPY_F32, &want)) {
            check(0, "%s: %s", name, last_error());
            continue;
        }
        int shape_ok = want.count == sz && want.ndim == m.loc[i].rank + 1;
        for (int d = 0; shape_ok && d < m.loc[i].rank; d++) shape_ok = want.shape[d + 1] == (size_t)m.loc[i].dims[d];
        if (!shape_ok) check(0, "%s: shape differs from PyTorch's", name);
        else check_close(name, c1.buf[i], want.data, sz, TOL);
        npy_free(&want);
    }

    /* the same bits with one thread */
    set_threads(1);
    run_all(&m, &img, 2, &c2);
    set_threads(2);
    for (int i = 0; i < m.nloc; i++) {
        char name[300];
        snprintf(name, sizeof name, "%s %s 1 vs 2 threads", label, m.loc[i].name);
        check_same(name, c1.buf[i], c2.buf[i], n * location_size(&m.loc[i]));
    }

    /* the same bits with each batch's images spread over the threads */
    check_split(label, &m, &img, &c1, n);

    npy_free(&img);
    capture_free(&c1);
    capture_free(&c2);
    model_free(&m);
}

/* ---- the early layers a few images at a time (model_options.early_chunk) ---------- */

/* Every location has the same bits as with the whole batch in one chunk:
 * chunks of 1 and 2 images, batches of 3 and 2 (fixtures of 3 and 2
 * images: uneven chunks; chunks after one whose output lies in the buffer
 * they work in), and a pass that stops inside the chunked layers (each
 * chunk stops there). */
static void test_chunks(const char *dir)
{
    char mdir[600], path[600];
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    snprintf(path, sizeof path, "%s/images.npy", dir);
    npy_array img;
    if (npy_read(path, NPY_U8, &img)) {
        check(0, "%s: %s", dir, last_error());
        return;
    }
    const int n = (int)img.shape[0];
    model_options whole = {TAP_POST_ACTIVATION, 0, n, 0};
    model m0;
    capture ref;
    int ok = model_load_with(mdir, &whole, &m0) == 0 && model_prepare(&m0, n) == 0 && capture_alloc(&ref, &m0, (size_t)n) == 0;
    if (ok) run_all(&m0, &img, n, &ref);
    check(ok, "%s: the whole batch in one chunk runs %s", dir, ok ? "" : last_error());
    const int chunks[] = {1, 2}, batches[] = {3, 2};
    for (int a = 0; ok && a < 2; a++)
        for (int b = 0; b < 2; b++) {
            model_options o = {TAP_POST_ACTIVATION, 0, chunks[a], 0};
            model mk;
            capture ck;
            int same = model_load_with(mdir, &o, &mk) == 0 && model_prepare(&mk, batches[b]) == 0 &&
                       capture_alloc(&ck, &mk, (size_t)n) == 0;
            if (same) run_all(&mk, &img, batches[b], &ck);
            for (int i = 0; same && i < m0.nloc; i++)
                same = !memcmp(ref.buf[i], ck.buf[i], (size_t)n * location_size(&m0.loc[i]) * sizeof(float));
            check(same, "%s: early layers in chunks of %d image(s), batches of %d: every location the same bits", dir,
                  chunks[a], batches[b]);
            capture_free(&ck);
            model_free(&mk);
        }
    /* stopping at the first unit's layer1, chunks of 1: the locations up to there, the same bits */
    model ms;
    capture cs;
    model_options one = {TAP_POST_ACTIVATION, 0, 1, 0};
    const int last = ok ? model_find_location(&m0, "block1_unit1_layer1") : -1;
    const size_t S = ok ? (size_t)m0.input_size : 0;
    float *x = ok ? alloc_array((size_t)n * S * S * 3, sizeof(float)) : NULL;
    int same = x && last > 0 && model_load_with(mdir, &one, &ms) == 0 && model_prepare(&ms, n) == 0 &&
               capture_alloc(&cs, &ms, (size_t)n) == 0;
    if (same) {
        model_preprocess(&ms, img.data, n, (int)img.shape[1], (int)img.shape[2], img.ndim == 4 ? (int)img.shape[3] : 1, x);
        model_forward(&ms, x, n, last, capture_cb, &cs);
        for (int i = 0; same && i <= last; i++)
            same = !memcmp(ref.buf[i], cs.buf[i], (size_t)n * location_size(&m0.loc[i]) * sizeof(float));
        capture_free(&cs);
        model_free(&ms);
    }
    check(same, "%s: a pass stopping at block1_unit1_layer1, chunks of 1: the same bits up to there", dir);
    free_array(x);
    if (ok) capture_free(&ref), model_free(&m0);
    npy_free(&img);
}

/* ---- tap points and the input location (docs/ALGORITHM.md §16) ------------------ */

/* The BatchNorm (tensor prefix) whose output a post-activation tap reads
 * through a ReLU, or NULL: v1.5 layer1 <- bn1, layer2 <- bn2 (layer0, the
 * unit input, has none); v2 layer0 <- bn1, layer1 <- bn2, layer2 <- bn3,
 * pre_logits_pre_pooling <- final_bn. */
static const char *bn_of(const char *loc, int v2, char *buf, size_t cap)
{
    int b, u, l;
    if (sscanf(loc, "block%d_unit%d_layer%d", &b, &u, &l) == 3) {
        if (!v2 && l == 0) return NULL;
        snprintf(buf, cap, "block%d.unit%d.bn%d", b, u, v2 ? l + 1 : l);
        return buf;
    }
    return v2 && strcmp(loc, "pre_logits_pre_pooling") == 0 ? "final_bn" : NULL;
}

/* y[n, C] = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps)), in double. */
static int fold_bn(const char *mdir, const char *bn, double eps, const float *x, size_t count, float *y)
{
    static const char *const part[4] = {"gamma", "beta", "mean", "var"};
    npy_array t[4] = {{0}};
    char path[700];
    int rc = 0;
    for (int i = 0; i < 4 && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s.%s.npy", mdir, bn, part[i]);
        rc = npy_read(path, NPY_F32, &t[i]);
    }
    const size_t C = rc ? 1 : t[0].count;
    for (size_t j = 0; !rc && j < count; j++) {
        const float *g = t[0].data, *be = t[1].data, *mu = t[2].data, *v = t[3].data;
        const size_t c = j % C;
        const double sc = (double)g[c] / sqrt((double)v[c] + eps);
        y[j] = (float)((double)x[j] * sc + ((double)be[c] - (double)mu[c] * sc));
    }
    for (int i = 0; i < 4; i++) npy_free(&t[i]);
    return rc;
}

static void test_tap_points(const char *dir, int v2, double eps)
{
    char mdir[600], path[600];
    model m[3];
    capture c[3];
    npy_array img;
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    snprintf(path, sizeof path, "%s/images.npy", dir);
    if (npy_read(path, NPY_U8, &img)) return;
    const size_t n = img.shape[0];
    int ok = 1;
    for (int p = 0; p < 3; p++) {
        model_options o = {(tap_point)p, 0, 0, 0};
        ok &= model_load_with(mdir, &o, &m[p]) == 0 && model_prepare(&m[p], 2) == 0 && capture_alloc(&c[p], &m[p], n) == 0;
        if (ok) run_all(&m[p], &img, 2, &c[p]);
    }
    check(ok, "%s: the three tap points load and run %s", dir, ok ? "" : last_error());
    int same_out = 1, relu_ok = 1, bn_ok = 1, stream_ok = 1;
    float *tmp = NULL;
    for (int i = 0; ok && i < m[0].nloc; i++) {
        const char *name = m[0].loc[i].name;
        const size_t sz = n * location_size(&m[0].loc[i]);
        char bnb[64];
        const char *bn = bn_of(name, v2, bnb, sizeof bnb);
        free_array(tmp);
        tmp = alloc_array(sz, sizeof(float));
        if (!strcmp(name, "pre_logits") || !strcmp(name, "logits")) {
            same_out &= !memcmp(c[0].buf[i], c[1].buf[i], sz * 4) && !memcmp(c[0].buf[i], c[2].buf[i], sz * 4);
            continue;
        }
        if (!strcmp(name, "after_root")) continue;               /* v2: the raw stem; v1.5: max pools, below */
        for (size_t j = 0; j < sz; j++) tmp[j] = c[1].buf[i][j] > 0 ? c[1].buf[i][j] : 0.0f;
        relu_ok &= !memcmp(tmp, c[0].buf[i], sz * 4);            /* post = relu(pre-activation), bit for bit */
        if (bn) {                                                /* pre-activation = bn(pre-normalization) */
            ok &= fold_bn(mdir, bn, eps, c[2].buf[i], sz, tmp) == 0;
            double mx = 0, err = 0;
            for (size_t j = 0; j < sz; j++) {
                mx = fmax(mx, fabs(c[1].buf[i][j]));
                err = fmax(err, fabs((double)tmp[j] - c[1].buf[i][j]));
            }
            bn_ok &= err <= 1e-5 * (mx > 1 ? mx : 1);
        } else {                                                 /* v1.5 unit inputs: the same pre-ReLU sum */
            stream_ok &= !memcmp(c[1].buf[i], c[2].buf[i], sz * 4);
        }
    }
    free_array(tmp);
    check(ok && same_out, "%s: pre_logits and logits are the same bits at every tap point", dir);
    check(ok && relu_ok, "%s: every post-activation tap is relu(its pre-activation tap), bit for bit", dir);
    check(ok && bn_ok, "%s: every pre-activation tap is its BatchNorm (folded here from the .npy files) of the "
          "pre-normalization tap, within 1e-5", dir);
    if (!v2) check(ok && stream_ok, "%s: v1.5 unit inputs and pre_logits_pre_pooling: the pre-ReLU sum at both pre- "
                   "tap points", dir);
    /* the input location: first, the preprocessed images; every other location unchanged */
    model mi;
    capture ci;
    model_options oi = {TAP_POST_ACTIVATION, 1, 0, 0};
    int iok = model_load_with(mdir, &oi, &mi) == 0 && model_prepare(&mi, 2) == 0 && capture_alloc(&ci, &mi, n) == 0;
    if (iok) run_all(&mi, &img, 2, &ci);
    iok = iok && mi.nloc == m[0].nloc + 1 && !strcmp(mi.loc[0].name, "input") && mi.loc[0].dims[2] == 3;
    const size_t S = iok ? (size_t)mi.input_size : 0;
    float *x = iok ? alloc_array(n * S * S * 3, sizeof(float)) : NULL;
    if (x) model_preprocess(&mi, img.data, (int)n, (int)img.shape[1], (int)img.shape[2], img.ndim == 4 ? (int)img.shape[3] : 1, x);
    iok = iok && x && !memcmp(x, ci.buf[0], n * S * S * 3 * sizeof(float));
    for (int i = 0; iok && i < m[0].nloc; i++)
        iok = !memcmp(ci.buf[i + 1], c[0].buf[i], n * location_size(&m[0].loc[i]) * sizeof(float));
    check(iok, "%s: include_input: 'input' first, the preprocessed images, the other locations unchanged", dir);
    free_array(x);
    capture_free(&ci);
    model_free(&mi);
    for (int p = 0; p < 3; p++) capture_free(&c[p]), model_free(&m[p]);
    npy_free(&img);
}

/* ---- load-time refusals ------------------------------------------------------ */

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int rc = a && b ? 0 : -1;
    char buf[65536];
    size_t got;
    while (rc == 0 && (got = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, got, b) != got) rc = -1;
    if (a) fclose(a);
    if (b && fclose(b) != 0) rc = -1;
    return rc;
}

/* dst gets every file of src except `skip` (may be NULL); config.txt gets
 * extra_config appended. */
static int copy_model(const char *src, const char *dst, const char *skip, const char *extra_config)
{
    DIR *d = opendir(src);
    struct dirent *e;
    int rc = d ? 0 : -1;
    while (rc == 0 && (errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.' || (skip && strcmp(e->d_name, skip) == 0)) continue;
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        rc = copy_file(a, b);
    }
    if (rc == 0 && errno != 0) rc = -1; /* readdir failed (e.g. EOVERFLOW on a 32-bit host without large files) */
    if (d) closedir(d);
    if (rc != 0) check(0, "copy %s to %s: %s", src, dst, strerror(errno));
    if (rc == 0 && extra_config) {
        char p[700];
        snprintf(p, sizeof p, "%s/config.txt", dst);
        FILE *f = fopen(p, "a");
        if (!f || fputs(extra_config, f) < 0) rc = -1;
        if (f) fclose(f);
    }
    return rc;
}

static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    if (d) closedir(d);
}

/* model_load must fail with a message containing `want`. */
static void expect_refusal(const char *what, const char *dir, const char *want)
{
    model m;
    int rc = model_load(dir, &m);
    const char *msg = rc ? last_error() : "(loaded)";
    check(rc != 0 && strstr(msg, want) != NULL, "refuses %s: %s", what, msg);
    if (rc == 0) model_free(&m);
}

/* Replace the first `from` in dir/config.txt by `to` (same length or not). */
static void edit_config(const char *dir, const char *from, const char *to)
{
    char p[700], cfg[4096], out[4200];
    snprintf(p, sizeof p, "%s/config.txt", dir);
    FILE *f = fopen(p, "rb");
    size_t len = f ? fread(cfg, 1, sizeof cfg - 1, f) : 0;
    if (f) fclose(f);
    cfg[len] = 0;
    char *at = strstr(cfg, from);
    if (!at) return;
    *at = 0;
    snprintf(out, sizeof out, "%s%s%s", cfg, to, at + strlen(from));
    if ((f = fopen(p, "wb"))) fputs(out, f), fclose(f);
}

static void test_refusals(void)
{
    const char *v15 = "test/fixtures/resnet_v15/model", *v2 = "test/fixtures/resnet_v2/model";
    char tmp[] = "/tmp/h2t_test_resnet_XXXXXX", p[700];
    if (!temp_dir(tmp)) {
        check(0, "cannot create a temporary directory");
        return;
    }
    size_t shape[4] = {3, 3, 6, 7};
    static float zeros[3 * 3 * 6 * 7];

    copy_model(v15, tmp, NULL, "stem_width = 64\n");
    expect_refusal("an unknown config key", tmp, "unknown key 'stem_width'");
    clear_dir(tmp);

    copy_model(v15, tmp, NULL, NULL);
    edit_config(tmp, "units = 1,1,2,1", "units = 1,1,3,1");
    expect_refusal("a unit the directory lacks", tmp, "block3.unit3.conv1.w.npy: missing");
    edit_config(tmp, "units = 1,1,3,1", "units = 1,1,2");
    expect_refusal("three blocks of units", tmp, "expected 4 positive counts");
    clear_dir(tmp);

    copy_model(v15, tmp, "block2.unit1.proj.w.npy", NULL);
    expect_refusal("a missing projection", tmp, "block2.unit1.proj.w.npy: missing");
    clear_dir(tmp);

    copy_model(v15, tmp, NULL, NULL);
    snprintf(p, sizeof p, "%s/block1.unit1.conv2.w.npy", tmp);
    npy_write(p, NPY_F32, 4, shape, zeros);
    expect_refusal("a misshapen tensor", tmp, "conv2.w.npy: expected shape [3, 3, 6, 6], found [3, 3, 6, 7]");
    clear_dir(tmp);

    copy_model(v15, tmp, NULL, NULL);
    snprintf(p, sizeof p, "%s/block4.unit2.conv1.w.npy", tmp);
    npy_write(p, NPY_F32, 4, shape, zeros);
    expect_refusal("an extra tensor", tmp, "block4.unit2.conv1.w.npy: unexpected tensor");
    clear_dir(tmp);

    copy_model(v15, tmp, NULL, NULL);
    edit_config(tmp, "variant = v1.5", "variant = v2");
    expect_refusal("v1.5 tensors under variant = v2", tmp, "expected shape");
    clear_dir(tmp);

    copy_model(v2, tmp, NULL, NULL);
    edit_config(tmp, "variant = v2", "variant = v1");
    expect_refusal("an unknown variant", tmp, "'variant = v1': expected one of v1.5, v2");
    edit_config(tmp, "variant = v1", "variant = v2");
    edit_config(tmp, "bn_eps = 0.001", "bn_eps = -1");
    expect_refusal("a negative bn_eps", tmp, "bn_eps");
    clear_dir(tmp);
    remove_dir(tmp);
}

int main(void)
{
    test_fixture("test/fixtures/resnet_v15", 0);
    test_fixture("test/fixtures/resnet_v2", 0);
    test_fixture("test/fixtures/resnet_v15", 4);
    test_fixture("test/fixtures/resnet_v2", 2);
    test_tap_points("test/fixtures/resnet_v15", 0, 1e-5);
    test_tap_points("test/fixtures/resnet_v2", 1, 1e-3);
    test_chunks("test/fixtures/resnet_v15");
    test_chunks("test/fixtures/resnet_v2");
    test_refusals();
    return check_done();
}
