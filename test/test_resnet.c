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
}

/* ---- one fixture ----------------------------------------------------------- */

static void test_fixture(const char *dir)
{
    char path[600];
    model m;
    snprintf(path, sizeof path, "%s/model", dir);
    int ok = model_load(path, &m) == 0;
    check(ok, "%s: model_load%s%s", dir, ok ? "" : ": ", ok ? "" : last_error());
    if (!ok) return;

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
        char name[200];
        snprintf(path, sizeof path, "%s/expected/%s.npy", dir, m.loc[i].name);
        snprintf(name, sizeof name, "%s %s", dir + strlen("test/fixtures/"), m.loc[i].name);
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
        char name[200];
        snprintf(name, sizeof name, "%s %s 1 vs 2 threads", dir + strlen("test/fixtures/"), m.loc[i].name);
        check_same(name, c1.buf[i], c2.buf[i], n * location_size(&m.loc[i]));
    }

    npy_free(&img);
    capture_free(&c1);
    capture_free(&c2);
    model_free(&m);
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
    test_fixture("test/fixtures/resnet_v15");
    test_fixture("test/fixtures/resnet_v2");
    test_refusals();
    return check_done();
}
