/* test/test_features.c: the Head2Toe feature arithmetic (pooling.c, extract.c).
 *   - every branch of the pooling plan (docs/ALGORITHM.md §4) on shapes chosen so
 *     the expected window sizes and means can be worked out by hand;
 *   - pool_example (all features) against pool_feature (one feature) and
 *     against a naive reference written here, on random maps;
 *   - unit L2 normalization (docs/ALGORITHM.md §5);
 *   - --select arithmetic: the selected features renormalized per location
 *     equal lasso_gather's renormalization of the full vector's columns;
 *   - the feature-dimension table: ResNet-50 v2 at 240 px, T = 512 gives
 *     D = 30,440 (the paper's number); ViT-B/16 at T = 768 etc. by hand;
 *   - layout files, output naming, shard bounds;
 *   - end to end on the fixture model test/fixtures/resnet_v15: features_run
 *     full vs --select vs several target sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "platform.h"
#include "../extract.h"
#include "../lasso.h"
#include "../npy.h"
#include "../util.h"

static location mkloc(const char *name, int rank, int d0, int d1, int d2)
{
    location l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "%s", name);
    l.rank = rank;
    l.dims[0] = d0, l.dims[1] = d1, l.dims[2] = d2;
    l.is_default = 1;
    return l;
}

static int plan_is(const char *what, location l, long T, int pool, int grid, size_t dim)
{
    pool_plan p;
    int rc = pool_plan_make(&l, T, &p);
    int ok = rc == 0 && p.pool == pool && p.grid == grid && p.dim == dim;
    check(ok, "plan %s: T %ld -> pool %d grid %d dim %zu (want %d %d %zu)", what, T, p.pool, p.grid, p.dim, pool, grid,
          dim);
    return ok;
}

/* Pool one example of l at T and compare with want[] exactly. */
static void pooled_is(const char *what, location l, long T, const float *x, const float *want, size_t n)
{
    pool_plan p;
    float y[256];
    double acc[64];
    if (pool_plan_make(&l, T, &p) || p.dim != n || n > 256) {
        check(0, "pool %s: plan dim %zu, want %zu", what, p.dim, n);
        return;
    }
    pool_example(&l, &p, x, y, acc);
    char name[128];
    snprintf(name, sizeof name, "pool %s (values by hand)", what);
    check_same(name, y, want, n);
}

/* The naive reference, written from docs/ALGORITHM.md §4 without pooling.c's
 * window helper: feature j -> (cell, channel) -> window bounds. */
static void pool_naive(const location *l, long T, const float *x, double *y, size_t *dim)
{
    int C = l->dims[l->rank - 1];
    if (l->rank == 1) {
        for (int c = 0; c < C; c++) y[c] = x[c];
        *dim = (size_t)C;
        return;
    }
    int H = l->dims[0], W = l->rank == 3 ? l->dims[1] : 1, p = 0;
    if (l->rank == 3 && C < T) {
        int n = (int)sqrt((double)(T / C));
        p = H / n;
    } else if (l->rank == 2 && C < T) {
        p = (int)(H / ((double)T / C));
    }
    int gr = p ? H / p : 1, gc = l->rank == 3 ? (p ? W / p : 1) : 1;
    int wr = p ? p : H, wc = l->rank == 3 ? (p ? p : W) : 1;
    size_t j = 0;
    for (int a = 0; a < gr; a++)
        for (int b = 0; b < gc; b++)
            for (int c = 0; c < C; c++, j++) {
                double s = 0;
                for (int r = a * wr; r < (a + 1) * wr; r++)
                    for (int q = b * wc; q < (b + 1) * wc; q++) s += x[((size_t)r * W + q) * C + c];
                y[j] = s / (wr * wc);
            }
    *dim = j;
}

static void test_plans(void)
{
    /* conv, C >= T: global mean */
    plan_is("conv C >= T", mkloc("a", 3, 4, 4, 8), 8, 0, 1, 8);
    plan_is("conv C > T", mkloc("a", 3, 4, 4, 8), 5, 0, 1, 8);
    /* conv: T/C = 20/3 = 6, sqrt 2.45 -> n 2, p = 5/2 = 2, 2x2 windows; row/col 4 dropped */
    plan_is("conv trailing dropped", mkloc("a", 3, 5, 5, 3), 20, 2, 2, 12);
    /* conv: T/C = 100, n = 10 > H = 3 -> p = 0 -> global mean */
    plan_is("conv p = 0 fallback", mkloc("a", 3, 3, 3, 2), 200, 0, 1, 2);
    /* conv: T/C = 2, n = 1, p = H: one window (pool = H, not 0) */
    plan_is("conv p = H", mkloc("a", 3, 4, 4, 8), 16, 4, 1, 8);
    /* ResNet-50 after_root 56x56x64 at T = 8192: T/C = 128, n = 11, p = 5, grid 11 */
    plan_is("conv 56x56x64 T 8192", mkloc("a", 3, 56, 56, 64), 8192, 5, 11, 11 * 11 * 64);
    /* tokens, C >= T: mean over tokens */
    plan_is("tokens C >= T", mkloc("t", 2, 4, 8, 0), 8, 0, 1, 8);
    /* tokens: groups = 5/2 = 2.5, p = (int)(5/2.5) = 2, grid 2 (token 4 dropped) */
    plan_is("tokens class token pooled", mkloc("t", 2, 5, 2, 0), 5, 2, 2, 4);
    /* tokens, float division: groups = 2.5, p = (int)(7/2.5) = 2 (integer T/C = 2 would give 3) */
    plan_is("tokens float division", mkloc("t", 2, 7, 2, 0), 5, 2, 3, 6);
    /* tokens p = 0: groups = 50 > Tk */
    plan_is("tokens p = 0 fallback", mkloc("t", 2, 3, 2, 0), 100, 0, 1, 2);
    /* ViT-B/16 at T = 15360: groups 20, p = (int)9.85 = 9, 197/9 = 21 windows */
    plan_is("tokens 197x768 T 15360", mkloc("t", 2, 197, 768, 0), 15360, 9, 21, 21 * 768);
    plan_is("vector", mkloc("v", 1, 10, 0, 0), 4, -1, 0, 10);
    plan_is("vector C < T", mkloc("v", 1, 10, 0, 0), 100000, -1, 0, 10);
    pool_plan p;
    location bad = mkloc("a", 3, 4, 5, 2);
    int rc = pool_plan_make(&bad, 8, &p);
    check(rc != 0 && strstr(last_error(), "not square"), "plan refuses a non-square map: %s", last_error());
    location z = mkloc("a", 3, 4, 4, 0);
    rc = pool_plan_make(&z, 8, &p);
    check(rc != 0 && strstr(last_error(), "dimension"), "plan refuses a zero dimension: %s", last_error());
}

/* The class token of a token map (docs/ALGORITHM.md §16): 5 tokens x 2
 * channels, x[t][c] = 10 t + c, worked by hand. */
static void test_cls(void)
{
    const location l = mkloc("t", 2, 5, 2, 0);
    float x[10];
    for (int t = 0; t < 5; t++)
        for (int c = 0; c < 2; c++) x[t * 2 + c] = (float)(10 * t + c);
    struct {
        const char *what;
        cls_mode cls;
        long T;
        size_t dim;
        float want[10];
    } cases[] = {
        {"only-cls: token 0", CLS_ONLY, 4, 2, {0, 1}},
        {"original+cls T 5: tokens 1-4 one by one", CLS_SEPARATE, 5, 10, {0, 1, 10, 11, 20, 21, 30, 31, 40, 41}},
        {"original+cls T 4: tokens 1-2, 3-4", CLS_SEPARATE, 4, 6, {0, 1, 15, 16, 35, 36}},
        {"original+cls T 2: C >= T, mean of tokens 1-4", CLS_SEPARATE, 2, 4, {0, 1, 25, 26}},
        {"normal T 4: tokens 0-1, 2-3 (4 dropped)", CLS_NORMAL, 4, 4, {5, 6, 25, 26}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        pool_plan p;
        float y[16], y1[16];
        double acc[8];
        int rc = pool_plan_cls(&l, cases[k].T, cases[k].cls, &p);
        if (rc || p.dim != cases[k].dim) {
            check(0, "cls %s: plan dim %zu, want %zu %s", cases[k].what, p.dim, cases[k].dim, rc ? last_error() : "");
            continue;
        }
        pool_example(&l, &p, x, y, acc);
        for (size_t j = 0; j < p.dim; j++) y1[j] = pool_feature(&l, &p, x, j);
        char name[160];
        snprintf(name, sizeof name, "cls %s (values by hand)", cases[k].what);
        check_same(name, y, cases[k].want, p.dim);
        snprintf(name, sizeof name, "cls %s: one feature at a time", cases[k].what);
        check_same(name, y1, y, p.dim);
    }
    static model m; /* a model with one conv map: no class token to treat */
    static feat_layout fl;
    int use[1] = {1};
    m.nloc = 1;
    m.loc[0] = mkloc("c", 3, 4, 4, 2);
    int rc = layout_make(&m, use, 8, CLS_ONLY, &fl);
    check(rc != 0 && strstr(last_error(), "token map"), "cls: refused without a token map: %s", last_error());
    m.nloc = 2;
    m.loc[1] = l;
    int use2[2] = {1, 1};
    rc = layout_make(&m, use2, 4, CLS_SEPARATE, &fl);
    check(rc == 0 && fl.d == 2 + 6 && fl.e[1].dim == 6 && strcmp(fl.e[1].pooled, "cls+2x2") == 0,
          "cls: the layout of original+cls: dim 6, pooled 'cls+2x2' (%s)", rc ? last_error() : fl.e[1].pooled);
}

static void test_taps_thin(void)
{
    static model m;
    int use[12];
    const char *names[12] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "pre_logits", "j", "k"};
    m.nloc = 12;
    for (int i = 0; i < 12; i++) m.loc[i] = mkloc(names[i], 1, 4, 0, 0), use[i] = 1;
    use[1] = 0; /* not used: not counted */
    taps_thin(&m, 4, use);
    /* counted: a c d e f g h i j k -> positions 0..9: keep 0 (a), 4 (f), 8 (j), and pre_logits */
    const int want[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0};
    check(memcmp(use, want, sizeof want) == 0, "taps: 1/4 keeps positions 0, 4, 8 of the used locations and pre_logits");
    long every = 0;
    check(tap_fraction_parse("1/16", &every) == 0 && every == 16 && tap_fraction_parse("1", &every) == 0 &&
              every == 1 && tap_fraction_parse("1/0", &every) != 0 && tap_fraction_parse("2/3", &every) != 0 &&
              tap_fraction_parse("0.25", &every) != 0,
          "taps: --tap-fraction takes 1 and 1/k, refuses 1/0, 2/3, 0.25");
}

static void test_values(void)
{
    /* conv 5x5x3, x = 100 ch + 10 r + c; T = 20 -> 2x2 windows of 2x2;
     * window (a,b) covers rows 2a..2a+1, cols 2b..2b+1: mean 100ch + 10(2a+.5) + (2b+.5) */
    float x[5 * 5 * 3], want[12];
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 5; c++)
            for (int ch = 0; ch < 3; ch++) x[(r * 5 + c) * 3 + ch] = (float)(100 * ch + 10 * r + c);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int ch = 0; ch < 3; ch++) want[(a * 2 + b) * 3 + ch] = 100.0f * ch + 10.0f * (2 * a + 0.5f) + (2 * b + 0.5f);
    pooled_is("conv 5x5x3 T 20 (row, col, channel; row 4 and col 4 dropped)", mkloc("a", 3, 5, 5, 3), 20, x, want, 12);
    /* same map, C >= T: global mean 100ch + 20 + 2 */
    for (int ch = 0; ch < 3; ch++) want[ch] = 100.0f * ch + 22.0f;
    pooled_is("conv 5x5x3 T 3 (global mean)", mkloc("a", 3, 5, 5, 3), 3, x, want, 3);
    /* 3x3x2, p = 0: global mean over 3x3 = 100ch + 10 + 1 */
    float x3[3 * 3 * 2];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            for (int ch = 0; ch < 2; ch++) x3[(r * 3 + c) * 2 + ch] = (float)(100 * ch + 10 * r + c);
    want[0] = 11, want[1] = 111;
    pooled_is("conv 3x3x2 T 200 (p = 0: global mean)", mkloc("a", 3, 3, 3, 2), 200, x3, want, 2);
    /* tokens x[t][ch] = 10 t + ch, token 0 the class token */
    float xt[7 * 2];
    for (int t = 0; t < 7; t++)
        for (int ch = 0; ch < 2; ch++) xt[t * 2 + ch] = (float)(10 * t + ch);
    float w5[4] = {5, 6, 25, 26};
    pooled_is("tokens 5x2 T 5 (class token with token 1; token 4 dropped)", mkloc("t", 2, 5, 2, 0), 5, xt, w5, 4);
    float w7[6] = {5, 6, 25, 26, 45, 46};
    pooled_is("tokens 7x2 T 5 (3 windows of 2; token 6 dropped)", mkloc("t", 2, 7, 2, 0), 5, xt, w7, 6);
    float wm[2] = {10, 11};
    pooled_is("tokens 3x2 T 100 (p = 0: mean over tokens)", mkloc("t", 2, 3, 2, 0), 100, xt, wm, 2);
    float wv[5] = {0, 1, 10, 11, 20};
    pooled_is("vector as is", mkloc("v", 1, 5, 0, 0), 3, xt, wv, 5);
}

/* Random maps: pool_example == pool_feature bitwise, and == naive within 1e-6. */
static void test_random(void)
{
    struct { location l; long T; } cases[] = {
        {mkloc("c1", 3, 13, 13, 6), 100},   /* n = 4, p = 3, grid 4, row/col 12 dropped */
        {mkloc("c2", 3, 13, 13, 6), 6},     /* C >= T */
        {mkloc("c3", 3, 13, 13, 6), 5000},  /* n = 28 > 13: p = 0 */
        {mkloc("c4", 3, 7, 7, 16), 64},     /* n = 2, p = 3, grid 2 */
        {mkloc("t1", 2, 197, 12, 0), 240},  /* groups 20, p = 9, grid 21 */
        {mkloc("t2", 2, 197, 12, 0), 12},   /* C >= T */
        {mkloc("t3", 2, 9, 12, 0), 1000},   /* p = 0 */
        {mkloc("v", 1, 33, 0, 0), 8},
    };
    rng_t rng;
    rng_seed(&rng, 42);
    static float x[13 * 13 * 16 * 20], y[20000], y1[20000], yr[20000];
    static double acc[64], ref[20000];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        location *l = &cases[k].l;
        size_t n = location_size(l), dim;
        for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(&rng);
        pool_plan p;
        pool_plan_make(l, cases[k].T, &p);
        pool_example(l, &p, x, y, acc);
        for (size_t j = 0; j < p.dim; j++) y1[j] = pool_feature(l, &p, x, j);
        pool_naive(l, cases[k].T, x, ref, &dim);
        for (size_t j = 0; j < dim; j++) yr[j] = (float)ref[j];
        char name[128];
        snprintf(name, sizeof name, "pool_feature == pool_example, %.40s T %ld", l->name, cases[k].T);
        check_same(name, y1, y, p.dim);
        check(dim == p.dim, "naive reference dim %zu == plan dim %zu (%s)", dim, p.dim, l->name);
        snprintf(name, sizeof name, "pool_example vs naive reference, %.40s T %ld", l->name, cases[k].T);
        check_close(name, y, yr, p.dim, 1e-6);
    }
}

static void test_normalize(void)
{
    float a[3] = {3, -4, 0}, wa[3] = {0.6f, -0.8f, 0};
    l2_normalize(a, 3);
    check_close("l2_normalize [3, -4, 0] -> [0.6, -0.8, 0]", a, wa, 3, 1e-7);
    float z[4] = {0, 0, 0, 0}, wz[4] = {0, 0, 0, 0};
    l2_normalize(z, 4);
    check_same("l2_normalize: a zero vector stays zero", z, wz, 4);
    float t[2] = {3e-30f, 4e-30f}, wt[2] = {0.6f, 0.8f};
    l2_normalize(t, 2);
    check_close("l2_normalize: tiny values reach unit norm (no epsilon)", t, wt, 2, 1e-6);
    rng_t rng;
    rng_seed(&rng, 7);
    float r[1000];
    for (int i = 0; i < 1000; i++) r[i] = (float)(rng_normal(&rng) * 50);
    l2_normalize(r, 1000);
    double ss = 0;
    for (int i = 0; i < 1000; i++) ss += (double)r[i] * r[i];
    check(fabs(ss - 1) < 1e-6, "l2_normalize: random vector has norm^2 %.9f", ss);
}

/* The --select arithmetic on a synthetic 3-location example: pool only the
 * selected features, renormalize per location over them; compare with
 * lasso_gather (lasso.c's renormalization of the full vector's columns). */
static void test_select(void)
{
    location locs[3] = {mkloc("c", 3, 9, 9, 4), mkloc("t", 2, 11, 6, 0), mkloc("v", 1, 7, 0, 0)};
    const long T = 40;
    static float x[3][9 * 9 * 4], full[2][200], selo[2][200], gath[400];
    static double acc[16];
    pool_plan p[3];
    static feat_layout ll;
    memset(&ll, 0, sizeof ll);
    rng_t rng;
    rng_seed(&rng, 3);
    size_t D = 0;
    for (int k = 0; k < 3; k++) {
        pool_plan_make(&locs[k], T, &p[k]);
        snprintf(ll.e[k].name, sizeof ll.e[k].name, "%.40s", locs[k].name);
        ll.e[k].offset = D;
        ll.e[k].dim = p[k].dim;
        ll.e[k].pool = p[k].pool;
        D += p[k].dim;
    }
    ll.n = 3;
    ll.d = D;
    /* selection: every 3rd feature of location 0, none of location 1, two of location 2 */
    int64_t sel[200];
    size_t nsel = 0;
    for (size_t j = 0; j < p[0].dim; j += 3) sel[nsel++] = (int64_t)j;
    sel[nsel++] = (int64_t)(p[0].dim + p[1].dim + 1);
    sel[nsel++] = (int64_t)(p[0].dim + p[1].dim + 5);
    for (int e = 0; e < 2; e++) { /* two examples */
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; i < location_size(&locs[k]); i++) x[k][i] = (float)(rng_normal(&rng) + 0.3);
        for (int k = 0; k < 3; k++) {
            pool_example(&locs[k], &p[k], x[k], full[e] + ll.e[k].offset, acc);
            l2_normalize(full[e] + ll.e[k].offset, p[k].dim);
        }
        /* select path: as extract.c's tap callback does it */
        size_t q = 0;
        for (int k = 0; k < 3; k++) {
            size_t q0 = q;
            for (; q < nsel && (size_t)sel[q] < ll.e[k].offset + ll.e[k].dim; q++)
                selo[e][q] = pool_feature(&locs[k], &p[k], x[k], (size_t)(sel[q] - (int64_t)ll.e[k].offset));
            l2_normalize(selo[e] + q0, q - q0);
        }
    }
    lasso_gather(&full[0][0], 2, 200, &ll, sel, nsel, gath);
    float a[400], b[400];
    for (int e = 0; e < 2; e++)
        for (size_t q = 0; q < nsel; q++) a[e * nsel + q] = selo[e][q], b[e * nsel + q] = gath[e * nsel + q];
    check_close("select: pooled selected + renormalized == lasso_gather(full columns)", a, b, 2 * nsel, 1e-6);
    double ss = 0;
    for (size_t q = 0; q + 2 < nsel; q++) ss += (double)selo[0][q] * selo[0][q];
    check(fabs(ss - 1) < 1e-6, "select: a location's selected features have unit norm (%.9f)", ss);
}

/* ResNet-50 location shapes from the architecture: stem conv 7x7/2 and
 * max-pool 3x3/2 ("SAME", ceil) -> after_root; blocks of 3, 4, 6, 3
 * bottleneck units with widths 64, 128, 256, 512 (out 4x); the v2 (slim)
 * placement puts the stride-2 3x3 conv in the last unit of blocks 1-3, the
 * v1.5 (torchvision) placement in the first unit of blocks 2-4. layer0 =
 * unit input [s, s, cin], layer1 = [s, s, w], layer2 = [s', s', w] after
 * the 3x3 conv. Then pre_logits_pre_pooling [s, s, 2048], pre_logits
 * [2048], logits [1000]. */
static int resnet50_locations(int S, int v2, location *out)
{
    int n = 0, s = (S + 1) / 2;
    s = (s + 1) / 2;
    out[n++] = mkloc("after_root", 3, s, s, 64);
    const int units[4] = {3, 4, 6, 3}, width[4] = {64, 128, 256, 512};
    int cin = 64;
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < units[b]; k++) {
            int stride = v2 ? (k == units[b] - 1 && b < 3 ? 2 : 1) : (k == 0 && b > 0 ? 2 : 1);
            char name[48];
            snprintf(name, sizeof name, "block%d_unit%d_layer0", b + 1, k + 1);
            out[n++] = mkloc(name, 3, s, s, cin);
            snprintf(name, sizeof name, "block%d_unit%d_layer1", b + 1, k + 1);
            out[n++] = mkloc(name, 3, s, s, width[b]);
            s = (s + stride - 1) / stride;
            snprintf(name, sizeof name, "block%d_unit%d_layer2", b + 1, k + 1);
            out[n++] = mkloc(name, 3, s, s, width[b]);
            cin = 4 * width[b];
        }
    out[n++] = mkloc("pre_logits_pre_pooling", 3, s, s, 2048);
    out[n++] = mkloc("pre_logits", 1, 2048, 0, 0);
    out[n++] = mkloc("logits", 1, 1000, 0, 0);
    return n;
}

/* ViT-B/16 at 224: 197 tokens of 768 (mlp_1 3072); cls_embedded and
 * pre_logits are vectors of 768; 53 default locations. */
static int vitb16_locations(location *out)
{
    int n = 0;
    out[n++] = mkloc("root_output_with_cls", 2, 197, 768, 0);
    out[n++] = mkloc("position_embedded_input", 2, 197, 768, 0);
    for (int i = 0; i < 12; i++) {
        out[n++] = mkloc("pre_attn", 2, 197, 768, 0);
        out[n++] = mkloc("attn", 2, 197, 768, 0);
        out[n++] = mkloc("mlp_1", 2, 197, 3072, 0);
        out[n++] = mkloc("mlp_2", 2, 197, 768, 0);
    }
    out[n++] = mkloc("encoded_sequence", 2, 197, 768, 0);
    out[n++] = mkloc("cls_embedded", 1, 768, 0, 0);
    out[n++] = mkloc("pre_logits", 1, 768, 0, 0);
    return n;
}

static size_t total_dim(const location *l, int n, long T)
{
    size_t d = 0;
    for (int i = 0; i < n; i++) {
        pool_plan p;
        if (pool_plan_make(&l[i], T, &p)) return 0;
        d += p.dim;
    }
    return d;
}

static void test_dim_table(void)
{
    location l[64];
    int n = resnet50_locations(240, 1, l);
    check(n == 52 && l[0].dims[0] == 60 && l[n - 4].dims[0] == 8,
          "ResNet-50 v2 at 240: 52 locations, after_root 60x60x64, final map 8x8x2048 (%d, %d, %d)", n, l[0].dims[0],
          l[n - 4].dims[0]);
    size_t d = total_dim(l, n, 512);
    check(d == 30440, "ResNet-50 v2 at 240, T = 512: D = %zu (paper: 30,440)", d);
    n = resnet50_locations(240, 0, l); /* the stride placement does not change it */
    d = total_dim(l, n, 512);
    check(d == 30440, "ResNet-50 v1.5 stride placement at 240, T = 512: D = %zu (30,440)", d);
    /* ViT-B/16, by hand. T = 768: every token map has C >= T -> C features:
     * 39 maps of 768 (root, pos-embedded, 12 x {pre_attn, attn, mlp_2},
     * encoded_sequence) + 12 mlp_1 of 3072 + 2 vectors of 768
     * = 29952 + 36864 + 1536 = 68352.
     * T = 15360: C = 768: groups 20, p = 9, 21 windows -> 16128 each;
     * C = 3072: groups 5, p = (int)39.4 = 39, 5 windows -> 15360 each;
     * 39 * 16128 + 12 * 15360 + 1536 = 814848.
     * T = 32448: C = 768: groups 42.25, p = 4, 49 windows -> 37632;
     * C = 3072: groups 10.5625, p = 18, 10 windows -> 30720;
     * 39 * 37632 + 12 * 30720 + 1536 = 1837824. */
    n = vitb16_locations(l);
    check(n == 53, "ViT-B/16: 53 default locations (%d)", n);
    d = total_dim(l, n, 768);
    check(d == 68352, "ViT-B/16, T = 768: D = %zu (68352 by hand)", d);
    d = total_dim(l, n, 15360);
    check(d == 814848, "ViT-B/16, T = 15360: D = %zu (814848 by hand)", d);
    d = total_dim(l, n, 32448);
    check(d == 1837824, "ViT-B/16, T = 32448: D = %zu (1837824 by hand)", d);
}

static char tmpdir[256];

static int write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(s, f);
    return fclose(f);
}

static void test_layout_files(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/l.layout.tsv", tmpdir);
    static feat_layout a, b;
    memset(&a, 0, sizeof a);
    const char *names[3] = {"after_root", "block1_unit1_layer0", "pre_logits"};
    size_t dims[3] = {12, 40, 2048};
    int pools[3] = {2, 0, -1};
    for (int i = 0; i < 3; i++) {
        snprintf(a.e[i].name, sizeof a.e[i].name, "%s", names[i]);
        a.e[i].offset = a.d;
        a.e[i].dim = dims[i];
        a.e[i].pool = pools[i];
        snprintf(a.e[i].shape, sizeof a.e[i].shape, "%dx%dx%d", i & 7, i & 7, i & 7);
        snprintf(a.e[i].pooled, sizeof a.e[i].pooled, "%d", i);
        a.d += dims[i];
    }
    a.n = 3;
    int rc = layout_write(path, &a) || layout_read(path, &b);
    int same = !rc && b.n == 3 && b.d == a.d;
    for (int i = 0; same && i < 3; i++)
        same = strcmp(a.e[i].name, b.e[i].name) == 0 && a.e[i].offset == b.e[i].offset && a.e[i].dim == b.e[i].dim &&
               a.e[i].pool == b.e[i].pool && strcmp(a.e[i].shape, b.e[i].shape) == 0 &&
               strcmp(a.e[i].pooled, b.e[i].pooled) == 0;
    check(same, "layout: write then read gives the same %d locations, D %zu", b.n, b.d);
    check(layout_location_of(&b, 11) == 0 && layout_location_of(&b, 12) == 1 && layout_location_of(&b, 2099) == 2 &&
              layout_location_of(&b, 2100) == -1,
          "layout: layout_location_of finds the locations of columns 11, 12, 2099, 2100");
    write_text(path, "location\toffset\tdim\tpool\na\t0\t4\t0\n");
    check(layout_read(path, &b) == 0 && b.n == 1 && b.e[0].shape[0] == 0, "layout: 4 columns are enough");
    struct { const char *text, *want; } bad[] = {
        {"name\toffset\tdim\tpool\na\t0\t4\t0\n", ":1:"},
        {"location\toffset\tdim\tpool\na\t0\t4\t0\nb\t5\t4\t0\n", "contiguous"},
        {"location\toffset\tdim\tpool\na\t0\t4\t0\na\t4\t4\t0\n", "twice"},
        {"location\toffset\tdim\tpool\na\t0\t0\t0\n", "dim >= 1"},
        {"location\toffset\tdim\tpool\na\t0\tx\t0\n", "integers"},
        {"location\toffset\tdim\tpool\na\t0\t4\n", "4 to 6 fields"},
        {"location\toffset\tdim\tpool\n", "no locations"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i].text);
        rc = layout_read(path, &b);
        check(rc != 0 && strstr(last_error(), bad[i].want) && strstr(last_error(), path),
              "layout: refuses bad file %zu: %s", i, last_error());
    }
    snprintf(path, sizeof path, "%s/missing.tsv", tmpdir);
    check(layout_read(path, &b) != 0 && strstr(last_error(), "missing.tsv"), "layout: missing file: %s", last_error());
}

static void test_naming_and_shards(void)
{
    char npy[256], tsv[256];
    int ok = feat_out_paths("out/F.npy", 512, 0, npy, tsv, sizeof npy) == 0 && strcmp(npy, "out/F.npy") == 0 &&
             strcmp(tsv, "out/F.layout.tsv") == 0;
    check(ok, "naming: one T: %s + %s", npy, tsv);
    ok = feat_out_paths("out/F.npy", 1024, 1, npy, tsv, sizeof npy) == 0 && strcmp(npy, "out/F.T1024.npy") == 0 &&
         strcmp(tsv, "out/F.T1024.layout.tsv") == 0;
    check(ok, "naming: several T: %s + %s", npy, tsv);
    int rc = feat_out_paths("F.txt", 1, 0, npy, tsv, sizeof npy);
    check(rc != 0 && strstr(last_error(), ".npy"), "naming: refuses an --out without .npy: %s", last_error());
    /* shards: contiguous, cover everything, sizes differ by at most 1 */
    int good = 1;
    size_t ns[] = {0, 1, 7, 10, 2000, 50001};
    long ks[] = {1, 2, 3, 8, 13};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++) {
            size_t prev = 0, lo = (size_t)-1, hi = 0;
            for (long k = 0; k < ks[b]; k++) {
                size_t s, e;
                shard_bounds(ns[a], k, ks[b], &s, &e);
                if (s != prev || e < s) good = 0;
                prev = e;
                if (e - s < lo) lo = e - s;
                if (e - s > hi) hi = e - s;
            }
            if (prev != ns[a] || hi - lo > 1) good = 0;
        }
    check(good, "shard_bounds: shards are contiguous, cover [0, n), sizes differ by at most 1");
}

/* ---- end to end on the fixture model ------------------------------------ */

static int read_f32(const char *path, npy_array *a)
{
    memset(a, 0, sizeof *a);
    return npy_read(path, NPY_F32, a);
}

static void test_end_to_end(void)
{
    const char *mdir = "test/fixtures/resnet_v15/model";
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/config.txt", mdir);
    if (access(cfg, R_OK) != 0) {
        check(0, "end to end: fixture model %s is missing", mdir);
        return;
    }
    char imgs[512], f1[512], f2[512], fs[512], lay[512], selp[512], fmulti[512], tmp[512];
    snprintf(imgs, sizeof imgs, "%s/x.npy", tmpdir);
    snprintf(f1, sizeof f1, "%s/F.npy", tmpdir);
    snprintf(lay, sizeof lay, "%s/F.layout.tsv", tmpdir);
    snprintf(fs, sizeof fs, "%s/S.npy", tmpdir);
    snprintf(selp, sizeof selp, "%s/sel.npy", tmpdir);
    snprintf(fmulti, sizeof fmulti, "%s/M.npy", tmpdir);
    /* 5 random images 20x20x3 */
    rng_t rng;
    rng_seed(&rng, 11);
    static uint8_t px[5 * 20 * 20 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(rng_u64(&rng) & 255);
    size_t shape[4] = {5, 20, 20, 3};
    npy_write(imgs, NPY_U8, 4, shape, px);

    feat_opts o;
    memset(&o, 0, sizeof o);
    o.model_dir = mdir, o.images = imgs, o.out = f1, o.target[0] = 64, o.ntarget = 1, o.batch = 2;
    o.shard_n = 1, o.quiet = 1, o.taps = "all";
    int rc = features_run(&o);
    check(rc == 0, "end to end: features_run T 64 --taps all (%s)", rc ? last_error() : "ok");
    if (rc) return;
    npy_array F, S, M;
    static feat_layout fl;
    if (read_f32(f1, &F) || layout_read(lay, &fl)) {
        check(0, "end to end: read outputs: %s", last_error());
        return;
    }
    check(F.ndim == 2 && F.shape[0] == 5 && F.shape[1] == fl.d, "end to end: F [%zu, %zu], layout D %zu", F.shape[0],
          F.shape[1], fl.d);
    /* every location has unit norm (or is zero) */
    double worst = 0;
    for (size_t i = 0; i < F.shape[0]; i++)
        for (int e = 0; e < fl.n; e++) {
            double ss = 0;
            const float *v = (const float *)F.data + i * fl.d + fl.e[e].offset;
            for (size_t j = 0; j < fl.e[e].dim; j++) ss += (double)v[j] * v[j];
            if (ss > 0 && fabs(ss - 1) > worst) worst = fabs(ss - 1);
        }
    check(worst < 1e-5, "end to end: every location of every row has unit norm (max |norm^2 - 1| %.2g)", worst);

    /* --select: a spread of indices (every 7th, plus the last), none in location 1 */
    int64_t *sel = alloc_array(fl.d, sizeof(int64_t));
    size_t nsel = 0;
    for (size_t j = 0; j < fl.d; j += 7)
        if (fl.n < 2 || j < fl.e[1].offset || j >= fl.e[1].offset + fl.e[1].dim) sel[nsel++] = (int64_t)j;
    if (sel[nsel - 1] != (int64_t)fl.d - 1) sel[nsel++] = (int64_t)fl.d - 1;
    size_t sshape[1] = {nsel};
    npy_write(selp, NPY_I64, 1, sshape, sel);
    feat_opts os = o;
    os.out = fs, os.taps = NULL, os.select = selp, os.layout = lay, os.batch = 3;
    rc = features_run(&os);
    check(rc == 0, "end to end: features_run --select (%zu of %zu) (%s)", nsel, fl.d, rc ? last_error() : "ok");
    if (rc == 0 && read_f32(fs, &S) == 0) {
        float *g = alloc_array(5 * nsel, sizeof(float));
        lasso_gather(F.data, 5, fl.d, &fl, sel, nsel, g);
        check(S.ndim == 2 && S.shape[0] == 5 && S.shape[1] == nsel, "end to end: --select output [%zu, %zu]",
              S.shape[0], S.ndim > 1 ? S.shape[1] : 0);
        if (S.count == 5 * nsel)
            check_close("end to end: --select == full run's columns renormalized per location (lasso_gather)", S.data,
                        g, 5 * nsel, 1e-6);
        free_array(g);
        npy_free(&S);
    }
    /* several target sizes from one pass: the T = 64 output equals the single run */
    feat_opts om = o;
    om.out = fmulti, om.ntarget = 3, om.target[0] = 16, om.target[1] = 64, om.target[2] = 100000;
    rc = features_run(&om);
    snprintf(f2, sizeof f2, "%s/M.T64.npy", tmpdir);
    if (rc == 0 && read_f32(f2, &M) == 0) {
        check(M.count == F.count, "end to end: several T: M.T64.npy has the single run's shape");
        if (M.count == F.count) check_same("end to end: several T: M.T64.npy == single run", M.data, F.data, F.count);
        npy_free(&M);
    } else {
        check(0, "end to end: several T: %s", last_error());
    }
    /* a failing run leaves nothing behind */
    snprintf(tmp, sizeof tmp, "%s/bad.npy", tmpdir);
    feat_opts ob = o;
    ob.out = tmp, ob.taps = "no_such_location";
    rc = features_run(&ob);
    check(rc != 0 && access(tmp, F_OK) != 0 && strstr(last_error(), "no_such_location"),
          "end to end: unknown tap refused, nothing written: %s", last_error());
    free_array(sel);
    npy_free(&F);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/h2t_test_features_XXXXXX");
    if (!temp_dir(tmpdir)) {
        perror("temp_dir");
        return 1;
    }
    test_plans();
    test_cls();
    test_taps_thin();
    test_values();
    test_random();
    test_normalize();
    test_select();
    test_dim_table();
    test_layout_files();
    test_naming_and_shards();
    test_end_to_end();
    if (remove_tree(tmpdir) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done();
}
