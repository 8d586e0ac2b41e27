/* test/test_random.c: the backbones with random weights made in C
 * (model_init_random, used by h2t bench). Checked against torchvision's
 * own architectures: the number of values in the state dict (parameters
 * plus BatchNorm statistics: resnet50 25,610,152, vit_b_16 86,567,656;
 * `sum(v.numel() for v in torchvision.models.X().state_dict().values())`
 * less num_batches_tracked), the location shapes docs/ALGORITHM.md §2 gives for
 * 224 px, and a forward pass (at 64 px, for speed) whose every location is finite, of a sensible
 * scale and free of subnormal numbers (which would slow the timing), the
 * same for the same seed and different for another. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "../model.h"
#include "../util.h"

typedef struct {
    const model *m;
    int bad_loc;           /* first location with a non-finite value, or -1 */
    size_t subnormal;      /* count over all locations */
    double max_abs;
    double logit_sum, logit_sq;
    size_t logit_n;
    double checksum;       /* sum over all locations of x * (1 + index % 7) */
} stats;

static void stats_cb(void *vctx, int loc, const float *x, int first, int n)
{
    stats *s = vctx;
    const size_t sz = location_size(&s->m->loc[loc]) * (size_t)n, base = location_size(&s->m->loc[loc]) * (size_t)first;
    int is_logits = strcmp(s->m->loc[loc].name, "logits") == 0;
    for (size_t i = 0; i < sz; i++) {
        double v = x[i];
        if (!isfinite(v)) {
            if (s->bad_loc < 0) s->bad_loc = loc;
            continue;
        }
        if (v != 0 && fabs(v) < 1.17549435e-38) s->subnormal++;
        if (fabs(v) > s->max_abs) s->max_abs = fabs(v);
        s->checksum += v * (double)(1 + (base + i) % 7);
        if (is_logits) s->logit_sum += v, s->logit_sq += v * v, s->logit_n++;
    }
}

static int run(model *m, int batch, uint64_t seed, stats *s)
{
    memset(s, 0, sizeof *s);
    s->m = m, s->bad_loc = -1;
    size_t xn = (size_t)batch * m->input_size * m->input_size * 3;
    float *x = alloc_array(xn, sizeof(float));
    if (!x) return -1;
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < xn; i++) x[i] = (float)(4.0 * rng_uniform(&r) - 2.0);
    model_forward(m, x, batch, m->nloc - 1, stats_cb, s);
    free_array(x);
    return 0;
}

static const location *loc_named(const model *m, const char *name)
{
    int i = model_find_location(m, name);
    return i >= 0 ? &m->loc[i] : NULL;
}

static int dims_are(const model *m, const char *name, int rank, int d0, int d1, int d2)
{
    const location *l = loc_named(m, name);
    return l && l->rank == rank && l->dims[0] == d0 && (rank < 2 || l->dims[1] == d1) && (rank < 3 || l->dims[2] == d2);
}

static void test_arch(const char *arch, size_t want_params, int want_nloc, int seeds)
{
    model m, m2;
    int ok = model_init_random(arch, 0, 7, &m) == 0;
    check(ok, "random %s: init (%s)", arch, ok ? "ok" : last_error());
    if (!ok) {
        model_free(&m);
        return;
    }
    check(m.params == want_params, "random %s: %zu values, torchvision's state dict has %zu", arch, m.params,
          want_params);
    check(m.nloc == want_nloc && m.input_size == 224, "random %s: %d locations at %d px (want %d at 224)", arch,
          m.nloc, m.input_size, want_nloc);
    if (strcmp(arch, "resnet50") == 0) {
        check(dims_are(&m, "after_root", 3, 56, 56, 64) && dims_are(&m, "block1_unit1_layer1", 3, 56, 56, 64) &&
                  dims_are(&m, "block2_unit1_layer2", 3, 28, 28, 128) &&
                  dims_are(&m, "block4_unit3_layer0", 3, 7, 7, 2048) &&
                  dims_are(&m, "pre_logits_pre_pooling", 3, 7, 7, 2048) && dims_are(&m, "pre_logits", 1, 2048, 0, 0) &&
                  dims_are(&m, "logits", 1, 1000, 0, 0),
              "random resnet50: location shapes (after_root 56x56x64 ... pre_logits 2048, logits 1000)");
    } else {
        check(dims_are(&m, "root_output_with_cls", 2, 197, 768, 0) && dims_are(&m, "encoder_0_mlp_1", 2, 197, 3072, 0) &&
                  dims_are(&m, "encoder_11_mlp_2", 2, 197, 768, 0) && dims_are(&m, "cls_embedded", 1, 768, 0, 0) &&
                  dims_are(&m, "logits", 1, 1000, 0, 0),
              "random vit_b_16: location shapes (197 tokens x 768, MLP 3072, logits 1000)");
    }
    /* the forward pass at 64 px: the same code at a twelfth of the cost
     * (the suite also runs under the sanitizers) */
    model_free(&m);
    stats a, b, c;
    ok = model_init_random(arch, 64, 7, &m) == 0 && model_prepare(&m, 1) == 0;
    check(ok, "random %s: init and prepare at 64 px (%s)", arch, ok ? "ok" : last_error());
    if (!ok) {
        model_free(&m);
        return;
    }
    run(&m, 1, 1, &a);
    double mean = a.logit_sum / (double)a.logit_n, sd = sqrt(a.logit_sq / (double)a.logit_n - mean * mean);
    check(a.bad_loc < 0 && a.max_abs < 1e6 && a.subnormal == 0 && sd > 1e-3,
          "random %s: forward finite (first bad location %d), max |x| %.3g < 1e6, %zu subnormals, logits sd %.3g",
          arch, a.bad_loc, a.max_abs, a.subnormal, sd);
    if (seeds) { /* the generator is shared: checked on the cheaper network */
        ok = model_init_random(arch, 64, 7, &m2) == 0 && model_prepare(&m2, 1) == 0;
        if (ok) run(&m2, 1, 1, &b);
        check(ok && a.checksum == b.checksum, "random %s: the same seed gives the same network (checksum %.17g)", arch,
              a.checksum);
        model_free(&m2);
        ok = model_init_random(arch, 64, 8, &m2) == 0 && model_prepare(&m2, 1) == 0;
        if (ok) run(&m2, 1, 1, &c);
        check(ok && a.checksum != c.checksum, "random %s: another seed gives another network", arch);
        model_free(&m2);
    }
    model_free(&m);
}

int main(void)
{
    test_arch("resnet50", 25610152, 52, 1);
    test_arch("vit_b_16", 86567656, 54, 0);
    model m;
    int refused = model_init_random("resnet18", 0, 1, &m) != 0;
    const char *msg = last_error();
    check(refused && strstr(msg, "resnet18") != NULL, "random: an unknown name is refused (%s)", msg);
    model_free(&m);
    printf("test_random: %d passed, %d failed\n", check_passed, check_failed);
    return check_failed != 0;
}
