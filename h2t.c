/* h2t.c: the command-line interface. main() dispatches to one function per
 * command; each command parses its flags with the small option parser below,
 * calls the library (model.c, extract.c, cv.c, run.c, ...) and reports errors
 * as one line on stderr with exit status 1.
 *
 * Exit status: 0 success, 1 any refusal (bad flag, bad input file, failed
 * write). Progress goes to stderr, results to files (and a summary line to
 * stdout where a command has one). */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"
#include "npy.h"
#include "tensor.h"
#include "model.h"
#include "extract.h"
#include "headio.h"
#include "scores.h"
#include "run.h"
#include "demo.h"
#include "winograd.h"

/* ==========================================================================
 * Option parsing: every command declares a table of opt; `--name value`
 * and `--name=value` are accepted; unknown flags, missing values and
 * missing required flags are refused; --help prints the table. */

typedef struct {
    const char *name;    /* "--model" */
    const char *meta;    /* "DIR"; NULL for a switch that takes no value */
    const char *help;
    const char *def;     /* default value shown in --help, or NULL */
    int required;
    const char *value;   /* after parsing: given value, else def; "1" for a given switch */
} opt;

static void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "h2t %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void opts_help(const char *cmd, const char *usage, const opt *o, int n)
{
    printf("usage: h2t %s %s\n\n", cmd, usage);
    for (int i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o[i].name, o[i].meta ? " " : "", o[i].meta ? o[i].meta : "");
        printf("  %-26s %s", left, o[i].help);
        if (o[i].required) printf(" (required)");
        else if (o[i].def) printf(" (default %s)", o[i].def);
        printf("\n");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

/* 0: run the command; 1: help was printed; -1: usage error (printed). */
static int opts_parse(const char *cmd, const char *usage, opt *o, int n, int argc, char **argv)
{
    for (int i = 0; i < n; i++) o[i].value = o[i].def;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            opts_help(cmd, usage, o, n);
            return 1;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        int k;
        for (k = 0; k < n; k++)
            if (strlen(o[k].name) == len && strncmp(o[k].name, arg, len) == 0) break;
        if (k == n) {
            cli_error(cmd, "unknown flag '%s' (see h2t %s --help)", arg, cmd);
            return -1;
        }
        if (!o[k].meta) {
            if (eq) {
                cli_error(cmd, "%s takes no value", o[k].name);
                return -1;
            }
            o[k].value = "1";
        } else if (eq) {
            o[k].value = eq + 1;
        } else if (a + 1 < argc) {
            o[k].value = argv[++a];
        } else {
            cli_error(cmd, "%s needs a value (%s)", o[k].name, o[k].meta);
            return -1;
        }
        if (o[k].meta && o[k].value[0] == 0) {
            cli_error(cmd, "%s: empty value, expected %s", o[k].name, o[k].meta);
            return -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (o[i].required && !o[i].value) {
            cli_error(cmd, "missing required flag %s %s", o[i].name, o[i].meta ? o[i].meta : "");
            return -1;
        }
    return 0;
}

static opt *opt_find(opt *o, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(o[i].name, name) == 0) return &o[i];
    fprintf(stderr, "h2t: internal error: no option %s\n", name);
    exit(1);
}

/* The value (or default) of a flag; NULL when neither was given. */
static const char *opt_str(opt *o, int n, const char *name) { return opt_find(o, n, name)->value; }

/* 1 if a switch was given. */
static int opt_flag(opt *o, int n, const char *name) { return opt_find(o, n, name)->value != NULL; }

/* Integer in [lo, hi]; -1 with a printed error otherwise. Absent -> *out unchanged. */
static int opt_long(const char *cmd, opt *o, int n, const char *name, long lo, long hi, long *out)
{
    const char *v = opt_str(o, n, name);
    if (!v) return 0;
    long x;
    if (parse_long(v, &x) || x < lo || x > hi) {
        cli_error(cmd, "%s: expected an integer in [%ld, %ld], got '%s'", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int opt_double(const char *cmd, opt *o, int n, const char *name, double lo, double hi, double *out)
{
    const char *v = opt_str(o, n, name);
    if (!v) return 0;
    double x;
    if (parse_double(v, &x) || x < lo || x > hi) {
        cli_error(cmd, "%s: expected a number in [%g, %g], got '%s'", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* A comma list of numbers in [lo, hi], at most max of them (util.c parse_list). */
static int opt_list(const char *cmd, opt *o, int n, const char *name, double lo, double hi,
                    double *out, int max, int *count)
{
    const char *v = opt_str(o, n, name);
    *count = 0;
    if (!v) return 0;
    if (parse_list(name, v, 0, lo, hi, out, max, count)) {
        cli_error(cmd, "%s", last_error());
        return -1;
    }
    return 0;
}

/* K/N (0 <= K < N <= 1000000) of flag name into *k, *n; absent: 0/1. */
static int opt_shard(const char *cmd, opt *o, int n, const char *name, long *k, long *of)
{
    const char *v = opt_str(o, n, name);
    *k = 0, *of = 1;
    if (!v) return 0;
    char a[32], b[32];
    const char *slash = strchr(v, '/');
    const size_t la = slash ? (size_t)(slash - v) : 0;
    if (slash && la > 0 && la < sizeof a && strlen(slash + 1) < sizeof b) {
        memcpy(a, v, la);
        a[la] = 0;
        strcpy(b, slash + 1);
        if (!parse_long(a, k) && !parse_long(b, of) && *of >= 1 && *of <= 1000000 && *k >= 0 && *k < *of) return 0;
    }
    cli_error(cmd, "%s: expected K/N with 0 <= K < N (K 0-based), got '%s'", name, v);
    return -1;
}

/* Target sizes T (whole numbers >= 1) of --target-size. */
static int opt_targets(const char *cmd, opt *o, int n, long *target, int *count)
{
    double ts[FEAT_MAX_TARGETS];
    const char *v = opt_str(o, n, "--target-size");
    *count = 0;
    if (v && parse_list("--target-size", v, 1, 1, 1e9, ts, FEAT_MAX_TARGETS, count)) {
        cli_error(cmd, "%s", last_error());
        return -1;
    }
    for (int i = 0; i < *count; i++) target[i] = (long)ts[i];
    return 0;
}

/* One of the NULL-terminated names, or -1 with "--flag: expected a, b or c". */
static int opt_choice(const char *cmd, opt *o, int n, const char *name, const char *const *names, int *out)
{
    const char *v = opt_str(o, n, name);
    if (!v) return 0;
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? (names[i + 1] ? ", " : " or ") : "",
                 names[i]);
    cli_error(cmd, "%s: expected %s, got '%s'", name, list, v);
    return -1;
}

/* Where the taps sit and the input location (docs/ALGORITHM.md §16): h2t
 * taps, features and run. */
#define MODEL_FLAGS                                                                                            \
    {"--tap-point", "WHERE", "ResNet taps: post-activation (after BN and ReLU, as published), pre-activation "  \
     "(before the ReLU), pre-normalization (before the BN)", "post-activation", 0, NULL},                      \
    {"--include-input", NULL, "the preprocessed image [S, S, 3] as a first location, 'input'", NULL, 0, NULL}, \
    WINOGRAD_FLAG

/* ResNet: 3x3 stride-1 convs by Winograd (docs/ALGORITHM.md §18): h2t taps,
 * features, run and bench. */
#define WINOGRAD_FLAG                                                                                          \
    {"--winograd", "M", "ResNet: 3x3 stride-1 convolutions by Winograd F(MxM, 3x3), M = 2 or 4: faster, not "  \
     "the same bits (docs/ALGORITHM.md section 18); 0: off", "0", 0, NULL}

/* Which locations become features and how a ViT's class token is pooled
 * (§16): h2t features and run. */
#define FEATURE_FLAGS                                                                                          \
    {"--tap-fraction", "1/K", "only every K-th location (pre_logits always kept): 1/16, 1/4 or 1", "1", 0, NULL}, \
    {"--cls", "MODE", "ViT token maps: normal (the class token pooled with the others), only-cls, "             \
     "original+cls (the class token, then the others pooled)", "normal", 0, NULL}

/* --winograd M: 0, or an M that winograd.c offers (refused here, before any output is begun) */
static int winograd_flag(const char *cmd, opt *o, int no, model_options *mo)
{
    long w = 0;
    if (opt_long(cmd, o, no, "--winograd", 0, 64, &w)) return -1;
    if (w && !winograd_supported((int)w)) {
        cli_error(cmd, "--winograd: expected 0 (off), 2 or 4, got %ld", w);
        return -1;
    }
    mo->winograd = (int)w;
    return 0;
}

static int model_flags(const char *cmd, opt *o, int no, model_options *mo)
{
    int point = 0;
    if (opt_choice(cmd, o, no, "--tap-point", tap_point_names, &point)) return -1;
    mo->point = (tap_point)point;
    mo->include_input = opt_flag(o, no, "--include-input");
    return winograd_flag(cmd, o, no, mo);
}

static int feature_flags(const char *cmd, opt *o, int no, long *every, cls_mode *cls)
{
    int c = 0;
    if (tap_fraction_parse(opt_str(o, no, "--tap-fraction"), every)) {
        cli_error(cmd, "%s", last_error());
        return -1;
    }
    if (opt_choice(cmd, o, no, "--cls", cls_mode_names, &c)) return -1;
    *cls = (cls_mode)c;
    return 0;
}

/* ==========================================================================
 * h2t taps: every location of the backbone as <name>.npy */

/* Where the tap callback writes: one streaming writer per location asked for. */
typedef struct {
    npy_writer *w;       /* [nloc]; w[i].f != NULL while open */
    const int *want;     /* [nloc] 1 = write this location */
    int failed;          /* a write failed (message in last_error) */
} taps_ctx;

/* A location's images come in order (model.h), so they are appended. */
static void taps_write(void *vctx, int loc, const float *x, int first, int n)
{
    (void)first;
    taps_ctx *c = vctx;
    if (c->failed || !c->want[loc]) return;
    if (npy_writer_rows(&c->w[loc], x, (size_t)n)) c->failed = 1;
}

/* --out DIR of h2t taps: an existing directory, or created (*made: 1). */
static int taps_make_out(const char *out, int *made)
{
    struct stat st;
    *made = stat(out, &st) != 0; /* made here: removed again if the command fails */
    return make_dir(out);
}

static int cmd_taps(int argc, char **argv)
{
    const char *cmd = "taps";
    opt o[] = {
        {"--model", "DIR", "model directory written by weights/export.py", NULL, 1, NULL},
        {"--images", "X.npy", "uint8 images [n, H, W, 3], [n, H, W, 1] or [n, H, W] (any H, W)", NULL, 1, NULL},
        {"--out", "DIR", "writes DIR/<location>.npy: conv maps [n, H, W, C], tokens [n, T, C], vectors [n, C]",
         NULL, 1, NULL},
        {"--batch", "N", "images per forward pass", "16", 0, NULL},
        {"--taps", "LIST", "comma list of location names, or all", "all", 0, NULL},
        MODEL_FLAGS,
        {"--quiet", NULL, "no progress on stderr", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    int rc = opts_parse(cmd, "--model DIR --images X.npy --out DIR [flags]\n\n"
                        "Runs the backbone on every image (resized and normalized as the model's config says)\n"
                        "and writes each location (docs/ALGORITHM.md §2, depth order) as DIR/<name>.npy, float32.",
                        o, no, argc, argv);
    if (rc) return rc > 0 ? 0 : 1;
    long batch = 16;
    model_options mo = {0};
    if (opt_long(cmd, o, no, "--batch", 1, 65536, &batch) || model_flags(cmd, o, no, &mo)) return 1;
    const char *out = opt_str(o, no, "--out");
    const int quiet = opt_flag(o, no, "--quiet");
    model *m = calloc(1, sizeof *m);
    image_source s = {0};
    npy_writer w[MODEL_MAX_LOCATIONS];
    memset(w, 0, sizeof w);
    int want[MODEL_MAX_LOCATIONS] = {0}, made_dir = 0, ret = 1, nwant = 0, closed = 0, last = 0;
    uint8_t *img = NULL;
    float *x = NULL;

    /* ---- check everything before creating anything */
    if (!m) {
        set_error("out of memory");
        goto fail;
    }
    if (images_open(opt_str(o, no, "--images"), &s) || model_load_with(opt_str(o, no, "--model"), &mo, m) ||
        taps_parse(m, opt_str(o, no, "--taps"), want))
        goto fail;
    if ((size_t)batch > s.n) batch = (long)s.n;
    const size_t S = (size_t)m->input_size;
    if (model_prepare(m, (int)batch) || !(img = alloc_array((size_t)batch, s.r.row_count)) ||
        !(x = alloc_array((size_t)batch * S * S * 3, sizeof(float))) || taps_make_out(out, &made_dir))
        goto fail;

    /* ---- one streaming writer per location, [n, per-example shape] */
    for (int i = 0; i < m->nloc; i++) {
        if (!want[i]) continue;
        char path[700];
        size_t shape[4] = {s.n, 0, 0, 0};
        for (int d = 0; d < m->loc[i].rank; d++) shape[d + 1] = (size_t)m->loc[i].dims[d];
        snprintf(path, sizeof path, "%s/%s.npy", out, m->loc[i].name);
        if (npy_writer_open(&w[i], path, NPY_F32, m->loc[i].rank + 1, shape)) goto fail;
        nwant++;
        last = i;
    }

    /* ---- batches: read, preprocess, forward up to the deepest location asked for (the callback writes) */
    taps_ctx ctx = {w, want, 0};
    double t0 = now_seconds(), shown = t0;
    for (size_t i = 0; i < s.n; i += (size_t)batch) {
        int b = (int)(s.n - i < (size_t)batch ? s.n - i : (size_t)batch);
        if (npy_read_rows(&s.r, i, (size_t)b, NPY_U8, img)) goto fail;
        model_preprocess(m, img, b, s.h, s.w, s.c, x);
        model_forward(m, x, b, last, taps_write, &ctx);
        if (ctx.failed) goto fail;
        double t = now_seconds();
        if (!quiet && (t - shown > 2.0 || i + (size_t)b == s.n)) {
            size_t done = i + (size_t)b;
            fprintf(stderr, "taps: %zu/%zu images, %.1f img/s\n", done, s.n, (double)done / (t - t0));
            shown = t;
        }
    }
    double secs = now_seconds() - t0;
    for (int i = 0; i < m->nloc; i++) {
        if (!want[i]) continue;
        if (npy_writer_close(&w[i])) goto fail;
        closed = i + 1;
    }
    printf("taps: %d locations of %zu images -> %s (%.2f s, %.1f img/s)\n", nwant, s.n, out, secs,
           (double)s.n / secs);
    ret = 0;
fail:
    if (ret) {
        cli_error(cmd, "%s", last_error());
        for (int i = 0; m && i < m->nloc; i++) {
            if (!want[i]) continue;
            if (i < closed) { /* already renamed: take it back */
                char path[700];
                snprintf(path, sizeof path, "%s/%s.npy", out, m->loc[i].name);
                remove(path);
            } else {
                npy_writer_abort(&w[i]);
            }
        }
        if (made_dir) remove(out);
    }
    images_close(&s);
    if (m) model_free(m);
    free(m);
    free_array(img);
    free_array(x);
    return ret;
}

/* ==========================================================================
 * h2t features: pooled, normalized Head2Toe features (extract.c) */

static int cmd_features(int argc, char **argv)
{
    const char *cmd = "features";
    opt o[] = {
        {"--model", "DIR", "model directory (config.txt + tensors, from weights/export.py)", NULL, 1, NULL},
        {"--images", "X.npy", "images, uint8 [n, H, W, 3] (or 1 channel, or [n, H, W])", NULL, 1, NULL},
        {"--target-size", "T[,T2..]", "target size(s) T of the pooling; several sizes share one backbone pass",
         NULL, 1, NULL},
        {"--out", "F.npy", "features float32 [n, D] + F.layout.tsv; several T: F.T<T>.npy + F.T<T>.layout.tsv",
         NULL, 1, NULL},
        {"--batch", "N", "images per backbone pass (memory grows with it, never with n)", "16", 0, NULL},
        {"--taps", "LIST", "locations: a,b,c or 'all' (default: the official set), always in depth order", NULL,
         0, NULL},
        FEATURE_FLAGS,
        MODEL_FLAGS,
        {"--select", "sel.npy", "only these features (int64 ascending indices into --layout's D), renormalized "
         "per location over the selected ones; --out gets [n, k], no layout", NULL, 0, NULL},
        {"--layout", "F.layout.tsv", "the layout --select refers to", NULL, 0, NULL},
        {"--shard", "K/N", "only the K-th (0-based) of N contiguous slices of the images", NULL, 0, NULL},
        {"--quiet", NULL, "no progress on stderr", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    int rc = opts_parse(cmd, "--model DIR --images X.npy --target-size T[,T2,...] --out F.npy [flags]", o, no,
                        argc, argv);
    if (rc) return rc > 0 ? 0 : 1;
    feat_opts fo;
    memset(&fo, 0, sizeof fo);
    long batch = 16;
    if (opt_targets(cmd, o, no, fo.target, &fo.ntarget) || opt_long(cmd, o, no, "--batch", 1, 4096, &batch) ||
        opt_shard(cmd, o, no, "--shard", &fo.shard_k, &fo.shard_n) || feature_flags(cmd, o, no, &fo.tap_every, &fo.cls) ||
        model_flags(cmd, o, no, &fo.model_opt))
        return 1;
    fo.model_dir = opt_str(o, no, "--model");
    fo.images = opt_str(o, no, "--images");
    fo.out = opt_str(o, no, "--out");
    fo.batch = (int)batch;
    fo.taps = opt_str(o, no, "--taps");
    fo.select = opt_str(o, no, "--select");
    fo.layout = opt_str(o, no, "--layout");
    fo.quiet = opt_flag(o, no, "--quiet");
    if (make_parent_dir(fo.out) || features_run(&fo)) {
        cli_error(cmd, "%s", last_error());
        return 1;
    }
    return 0;
}

/* ==========================================================================
 * h2t join: shards of `h2t features` back into one file (extract.c) */

static int cmd_join(int argc, char **argv)
{
    const char *cmd = "join";
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: h2t join --out F.npy SHARD0.npy SHARD1.npy ...\n\n"
               "Concatenates feature files row-wise, in the order given (same dtype and columns required).\n"
               "If the inputs have layouts (SHARD.layout.tsv beside SHARD.npy) they must be identical;\n"
               "one is written beside the output as F.layout.tsv. Output via a temporary name + rename.\n");
        return 0;
    }
    const char *out = NULL;
    char **in = argv + 1;
    int nin = 0;
    /* --out anywhere; everything else is an input, in order */
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--out") == 0 || strncmp(argv[a], "--out=", 6) == 0) {
            if (out) {
                cli_error(cmd, "--out given twice");
                return 1;
            }
            if (argv[a][5] == '=') out = argv[a] + 6;
            else if (a + 1 < argc) out = argv[++a];
            if (!out || !*out) {
                cli_error(cmd, "--out needs a value (F.npy)");
                return 1;
            }
        } else if (argv[a][0] == '-' && argv[a][1] == '-') {
            cli_error(cmd, "unknown flag '%s' (see h2t join --help)", argv[a]);
            return 1;
        } else {
            in[nin++] = argv[a];
        }
    }
    if (!out || nin == 0) {
        cli_error(cmd, "usage: h2t join --out F.npy SHARD0.npy SHARD1.npy ...");
        return 1;
    }
    if (features_join(out, in, nin)) {
        cli_error(cmd, "%s", last_error());
        return 1;
    }
    return 0;
}

/* ==========================================================================
 * Feature matrices for score and fit: float32 [n, D], n, D >= 1, every value
 * finite (the first NaN or Inf is reported by row and column). */

static int read_features(const char *path, npy_array *X)
{
    if (npy_read(path, NPY_F32, X)) return -1;
    if (X->ndim != 2 || X->shape[0] < 1 || X->shape[1] < 1) {
        set_error("%s: expected a feature matrix [n, D] with n, D >= 1, got %d dims", path, X->ndim);
        return -1;
    }
    const float *x = X->data;
    for (size_t i = 0; i < X->count; i++)
        if (!isfinite(x[i])) {
            set_error("%s: expected finite features, found %s at row %zu, column %zu", path,
                      isnan(x[i]) ? "NaN" : "Inf", i / X->shape[1], i % X->shape[1]);
            return -1;
        }
    return 0;
}

/* ==========================================================================
 * h2t score: feature scores -- the group-lasso scoring run (lasso.c), or
 * another score of scores.c */

/* --classes K (if given) may raise the count of classes of the labels. */
static int raise_classes(long classes, int *k)
{
    if (!classes) return 0;
    if (classes < *k) {
        set_error("--classes %ld: the labels go up to %d", classes, *k - 1);
        return -1;
    }
    *k = (int)classes;
    return 0;
}

/* The scoring run of h2t score: head h trained on all n rows of data from
 * W0 (ipath) or a Glorot head; its loss per step in losses. */
static int score_run(lasso_head *h, const lasso_data *data, const lasso_opts *lo, const char *ipath, long seed,
                     size_t *rows, double *losses, int quiet)
{
    npy_array W0 = {0};
    const size_t d = data->d;
    const int k = data->k;
    if (ipath) {
        if (npy_read(ipath, NPY_F32, &W0)) return -1;
        if (W0.ndim != 2 || W0.shape[0] != d || W0.shape[1] != (size_t)k) {
            set_error("%s: expected an initial head of shape [%zu, %d], got %d dims [%zu, %zu]", ipath, d, k,
                      W0.ndim, W0.shape[0], W0.ndim > 1 ? W0.shape[1] : 0);
            npy_free(&W0);
            return -1;
        }
        lasso_head_init_from(h, d, W0.data);
        npy_free(&W0);
    } else {
        lasso_head_init_glorot(h, d, (uint64_t)seed);
    }
    return lasso_train(h, data, rows, data->n, lo, losses, quiet ? NULL : "score");
}

static int cmd_score(int argc, char **argv)
{
    const char *cmd = "score";
    opt o[] = {
        {"--features", "F.npy", "feature matrix [n, D] (float32 or float64 .npy)", NULL, 1, NULL},
        {"--labels", "y.npy", "labels [n], integers in [0, K)", NULL, 1, NULL},
        {"--score", "NAME", "l2 (Head2Toe: sum_c W^2 of the scoring run), l1, linf, layer, layer-group (from its W), "
         "variance, random, f-classif, chi2 (no training)", "l2", 0, NULL},
        {"--layout", "F.layout.tsv", "locations of the features (--score layer, layer-group)", NULL, 0, NULL},
        {"--lr", "X", "initial learning rate, cosine decay to 0", "0.01", 0, NULL},
        {"--steps", "N", "Adam steps", "500", 0, NULL},
        {"--coef", "X", "group-lasso coefficient", "1e-5", 0, NULL},
        {"--batch", "N", "batch size (nominal; each pass ends with a partial batch)", "128", 0, NULL},
        {"--seed", "N", "seed of the Glorot-uniform initial head (--score random: of the draws)", "0", 0, NULL},
        {"--init", "W0.npy", "initial head [D, K] instead of Glorot (to compare runs step by step)", NULL, 0,
         NULL},
        {"--classes", "K", "number of classes (default: max label + 1)", NULL, 0, NULL},
        {"--out", "DIR", "writes DIR/scores.npy; with a scoring run also W.npy, b.npy, loss.tsv", NULL, 1, NULL},
        {"--quiet", NULL, "no progress on stderr", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    int rc = opts_parse(cmd, "--features F.npy --labels y.npy --out DIR [flags]", o, no, argc, argv);
    if (rc) return rc > 0 ? 0 : 1;
    lasso_opts lo = {0.01, 500, 1e-5, PENALTY_GROUP, 128};
    long batch = 128, seed = 0, classes = 0;
    score_kind kind;
    const char *sname = opt_str(o, no, "--score"), *lpath = opt_str(o, no, "--layout");
    if (opt_double(cmd, o, no, "--lr", 1e-12, 1e6, &lo.lr) ||
        opt_long(cmd, o, no, "--steps", 1, 1000000000L, &lo.steps) ||
        opt_double(cmd, o, no, "--coef", 0, 1e6, &lo.coef) ||
        opt_long(cmd, o, no, "--batch", 1, 1 << 20, &batch) ||
        opt_long(cmd, o, no, "--seed", 0, 0x7fffffffL, &seed) ||
        opt_long(cmd, o, no, "--classes", 1, 65536, &classes))
        return 1;
    if (score_parse("--score", sname, strlen(sname), &kind)) {
        cli_error(cmd, "%s", last_error());
        return 1;
    }
    if ((kind == SCORE_LAYER || kind == SCORE_LAYER_GROUP) && !lpath) {
        cli_error(cmd, "--score %s needs --layout F.layout.tsv (the locations of the features)", sname);
        return 1;
    }
    if (!score_uses_head(kind) && opt_str(o, no, "--init")) {
        cli_error(cmd, "--init: --score %s trains no head", sname);
        return 1;
    }
    lo.batch = (int)batch;
    const char *fpath = opt_str(o, no, "--features");
    npy_array X = {0};
    feat_layout *layout = lpath ? calloc(1, sizeof *layout) : NULL;
    int *y = NULL, k = 0, ret = 1;
    size_t *rows = NULL;
    double *losses = NULL, *scores = NULL;
    lasso_head h = {0};
    if (lpath && (!layout || layout_read(lpath, layout))) goto done;
    if (read_features(fpath, &X)) goto done;
    size_t n = X.shape[0], d = X.shape[1];
    if (lpath && layout->d != d) {
        set_error("%s describes %zu features but %s has %zu columns", lpath, layout->d, fpath, d);
        goto done;
    }
    if (labels_read(opt_str(o, no, "--labels"), n, &y, &k) || raise_classes(classes, &k)) goto done;
    if (!(rows = alloc_array(n, sizeof(size_t))) || !(scores = alloc_array(d, sizeof(double)))) goto done;
    for (size_t i = 0; i < n; i++) rows[i] = i;
    lasso_data data = {X.data, n, d, d, y, k};
    const char *out = opt_str(o, no, "--out");
    double t0 = now_seconds();
    if (!score_uses_head(kind)) {
        if (scores_from_data(kind, &data, rows, n, (uint64_t)seed, scores) || score_write(out, d, scores, NULL, NULL, NULL))
            goto done;
        printf("score: n %zu, D %zu, K %d, %s scores in %.2f s; wrote %s/scores.npy\n", n, d, k, sname,
               now_seconds() - t0, out);
        ret = 0;
        goto done;
    }
    if (lasso_head_alloc(&h, d, k, lo.batch) || !(losses = alloc_array((size_t)lo.steps, sizeof(double))) ||
        score_run(&h, &data, &lo, opt_str(o, no, "--init"), seed, rows, losses, opt_flag(o, no, "--quiet")))
        goto done;
    double secs = now_seconds() - t0;
    scores_from_head(kind, h.w, d, k, layout, scores);
    if (score_write(out, d, scores, &h, &lo, losses)) goto done;
    printf("score: n %zu, D %zu, K %d, %ld steps in %.2f s, loss %.6f -> %.6f, %s scores; wrote "
           "%s/{W,b,scores}.npy, loss.tsv\n", n, d, k, lo.steps, secs, losses[0], losses[lo.steps - 1], sname, out);
    ret = 0;
done:
    if (ret) cli_error(cmd, "%s", last_error());
    npy_free(&X);
    free(layout);
    free_array(y);
    free_array(rows);
    free_array(losses);
    free_array(scores);
    lasso_head_free(&h);
    return ret;
}

/* ==========================================================================
 * The grid flags of h2t fit and h2t run: lists left out take the paper's
 * values (cv.h GRID_*, filled in by fit_default_grid). */

#define GRID_FLAGS(coef_help)                                                                                  \
    {"--lr", "LIST", "learning rates (comma list)", GRID_LR, 0, NULL},                                        \
    {"--steps", "LIST", "Adam steps (comma list)", GRID_STEPS, 0, NULL},                                      \
    {"--coef", "LIST", coef_help, NULL, 0, NULL},                                                              \
    {"--fraction", "LIST", "fractions F of features kept (head2toe)", GRID_FRACTION, 0, NULL},                 \
    {"--batch", "N", "batch size of the heads", "128", 0, NULL},                                               \
    {"--seed", "N", "seed of the initial heads", "0", 0, NULL},                                                \
    {"--cv", NULL, "cross-validate even a single grid point", NULL, 0, NULL}
#define COEF_HELP "penalty coefficients (default " GRID_COEF "; all-*: " GRID_COEF_ALL ")"

/* Head2Toe's selection options and the training subset of h2t fit and h2t
 * run (docs/ALGORITHM.md §15, §16). */
#define SELECT_FLAGS                                                                                           \
    {"--score", "NAME", "what ranks the features (head2toe): l2 (Head2Toe), l1, linf, layer, layer-group, "     \
     "variance, random, f-classif, chi2", "l2", 0, NULL},                                                      \
    {"--average-over", "K", "scores: the mean of K runs with seeds seed .. seed+K-1", "1", 0, NULL},           \
    {"--keep-offset", "N", "skip the N best-ranked features: keep ranks N .. N+int(D F)-1", "0", 0, NULL},      \
    {"--score-interpolation", "C", "move each score towards its location's mean: s (1-C) + mean C", "0", 0,   \
     NULL},                                                                                                    \
    {"--train-fraction", "F", "train on a seeded stratified subset: int(n_c F) (at least 1) examples per class", \
     "1", 0, NULL}

/* The SELECT_FLAGS into g; *given: whether any selection option (not the
 * subset) differs from Head2Toe as published. */
static int select_from_opts(const char *cmd, opt *o, int no, fit_config *g, int *given)
{
    long avg = 1, offset = 0;
    const char *sname = opt_str(o, no, "--score");
    if (score_parse("--score", sname, strlen(sname), &g->score)) {
        cli_error(cmd, "%s", last_error());
        return -1;
    }
    if (opt_long(cmd, o, no, "--average-over", 1, 100, &avg) || opt_long(cmd, o, no, "--keep-offset", 0, LONG_MAX, &offset) ||
        opt_double(cmd, o, no, "--score-interpolation", 0, 1, &g->interpolation) ||
        opt_double(cmd, o, no, "--train-fraction", 1e-9, 1, &g->train_fraction))
        return -1;
    g->average_over = (int)avg;
    g->keep_offset = (size_t)offset;
    *given = g->score != SCORE_L2 || avg != 1 || offset != 0 || g->interpolation != 0;
    return 0;
}

/* The grid flags into g (g->method set by the caller; absent --coef: the method's default). */
static int grid_from_opts(const char *cmd, opt *o, int no, fit_config *g)
{
    double steps[GRID_MAX];
    long batch = GRID_BATCH, seed = 0;
    if (opt_list(cmd, o, no, "--lr", 1e-12, 1e6, g->lr, GRID_MAX, &g->nlr) ||
        opt_list(cmd, o, no, "--steps", 1, 1e9, steps, GRID_MAX, &g->nsteps) ||
        opt_list(cmd, o, no, "--coef", 0, 1e6, g->coef, GRID_MAX, &g->ncoef) ||
        opt_list(cmd, o, no, "--fraction", 1e-12, 1, g->frac, GRID_MAX, &g->nfrac) ||
        opt_long(cmd, o, no, "--batch", 1, 1 << 20, &batch) || opt_long(cmd, o, no, "--seed", 0, 0x7fffffffL, &seed))
        return -1;
    for (int i = 0; i < g->nsteps; i++) {
        if (steps[i] != floor(steps[i])) {
            cli_error(cmd, "--steps: expected whole numbers, got %g", steps[i]);
            return -1;
        }
        g->steps[i] = (long)steps[i];
    }
    g->batch = (int)batch;
    g->seed = (uint64_t)seed;
    g->force_cv = opt_flag(o, no, "--cv");
    g->quiet = opt_flag(o, no, "--quiet");
    fit_default_grid(g);
    return 0;
}

/* Labels [n] of path; --classes K (if given) may raise their count. */
static int read_labels_k(const char *path, size_t n, long classes, int **y, int *k)
{
    if (labels_read(path, n, y, k)) return -1;
    if (!classes) return 0;
    if (classes < *k) {
        set_error("--classes %ld: the labels go up to %d", classes, *k - 1);
        return -1;
    }
    *k = (int)classes;
    return 0;
}

/* ==========================================================================
 * h2t fit: selection + final head, with cross-validation (lasso.c) */

/* h2t fit --grid-shard K/N: the shard's units of the cross-validation
 * into OUT/cv.part.K-of-N.tsv. */
static int fit_shard(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const cv_shard *s,
                     const char *out)
{
    cv_result cv;
    textbuf grids = {0}, rows = {0};
    char id[1024];
    if (cv_run_shard(X, l, cfg, s, &cv)) return -1;
    cv_grid_id(cfg, X->n, X->d, X->k, id, sizeof id);
    cv_part_grid(&grids, cfg->method, 0, id);
    cv_part_rows(&rows, cfg->method, 0, &cv);
    const int units = cv_units(cfg);
    cv_result_free(&cv);
    if (cv_part_write(out, s, &grids, &rows)) return -1;
    printf("fit: shard %ld of %ld: %ld of %d cross-validation units -> %s/cv.part.%ld-of-%ld.tsv\n", s->k, s->n,
           (units - s->k + s->n - 1) / s->n, units, out, s->k, s->n);
    return 0;
}

/* h2t fit --collect DIRS: the grid's accuracies from the shards' parts. */
static int fit_collect(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const char *dirs,
                       cv_result *cv)
{
    textbuf grids = {0};
    char id[1024];
    cv_unit_result *rows = NULL;
    size_t n = 0;
    cv_grid_id(cfg, X->n, X->d, X->k, id, sizeof id);
    cv_part_grid(&grids, cfg->method, 0, id);
    int rc = grids.failed || cv_prepare(X, l, cfg, cv) || cv_parts_read(dirs, grids.s, &rows, &n) ||
             cv_merge(rows, n, cfg->method, 0, cv);
    tb_free(&grids);
    free(rows);
    return rc ? -1 : 0;
}

static int cmd_fit(int argc, char **argv)
{
    const char *cmd = "fit";
    opt o[] = {
        {"--features", "F.npy", "feature matrix [n, D] of the training examples", NULL, 1, NULL},
        {"--labels", "y.npy", "labels [n], integers in [0, K)", NULL, 1, NULL},
        {"--layout", "F.layout.tsv", "locations of the features (head2toe and linear need it)", NULL, 0,
         NULL},
        {"--method", "M", "head2toe | linear | all-l1 | all-l2 | all-l21", "head2toe", 0, NULL},
        GRID_FLAGS(COEF_HELP),
        SELECT_FLAGS,
        {"--select-from", "DIR", "head2toe: train on the features another fit selected (DIR/selected.npy, with "
         "the same layout), no scoring; grid over lr and steps", NULL, 0, NULL},
        {"--classes", "K", "number of classes (default: max label + 1)", NULL, 0, NULL},
        {"--grid-shard", "K/N", "run only shard K of N of the cross-validation; writes DIR/cv.part.K-of-N.tsv",
         NULL, 0, NULL},
        {"--collect", "DIR[,DIR]", "merge the cv.part files of every shard found there, then fit as one run",
         NULL, 0, NULL},
        {"--out", "DIR", "writes DIR/selected.npy W.npy b.npy cv.tsv report.json layout.tsv", NULL, 1,
         NULL},
        {"--quiet", NULL, "no progress on stderr", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    int rc = opts_parse(cmd, "--features F.npy --labels y.npy --layout F.layout.tsv --out DIR [flags]", o, no,
                        argc, argv);
    if (rc) return rc > 0 ? 0 : 1;
    fit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *mname = opt_str(o, no, "--method");
    if (method_parse("--method", mname, strlen(mname), &cfg.method)) {
        cli_error(cmd, "%s", last_error());
        return 1;
    }
    opt *frac = opt_find(o, no, "--fraction"); /* given on the command line: no longer the default */
    if (cfg.method != METHOD_HEAD2TOE && frac->value != frac->def) {
        cli_error(cmd, "--fraction: only --method head2toe selects features");
        return 1;
    }
    if (cfg.method == METHOD_LINEAR && opt_str(o, no, "--coef")) {
        cli_error(cmd, "--coef: --method linear has no penalty");
        return 1;
    }
    long classes = 0;
    cv_shard sh = {0, 1, 0};
    const char *collect = opt_str(o, no, "--collect");
    int selecting = 0;
    const char *from = opt_str(o, no, "--select-from");
    if (grid_from_opts(cmd, o, no, &cfg) || select_from_opts(cmd, o, no, &cfg, &selecting) ||
        opt_long(cmd, o, no, "--classes", 1, 65536, &classes) || opt_shard(cmd, o, no, "--grid-shard", &sh.k, &sh.n))
        return 1;
    if (sh.n > 1 && collect) {
        cli_error(cmd, "--grid-shard and --collect: a shard runs its part, --collect merges them (one or the other)");
        return 1;
    }
    if (cfg.method != METHOD_HEAD2TOE && (selecting || from)) {
        cli_error(cmd, "--score, --average-over, --keep-offset, --score-interpolation and --select-from: only "
                  "--method head2toe selects features");
        return 1;
    }
    if (from && (selecting || frac->value != frac->def || opt_str(o, no, "--coef"))) {
        cli_error(cmd, "--select-from: the selection is given, so --score, --average-over, --keep-offset, "
                  "--score-interpolation, --fraction and --coef do not apply");
        return 1;
    }
    const char *fpath = opt_str(o, no, "--features"), *lpath = opt_str(o, no, "--layout");
    if (!lpath && (cfg.method == METHOD_HEAD2TOE || cfg.method == METHOD_LINEAR)) {
        cli_error(cmd, "--method %s needs --layout F.layout.tsv (the locations of the features)", mname);
        return 1;
    }
    feat_layout *layout = lpath ? calloc(1, sizeof *layout) : NULL;
    npy_array X = {0};
    int *y = NULL, k = 0, ret = 1;
    int64_t *fixed = NULL;
    cv_result cv = {0};
    fitted_head head = {0};
    double t0 = now_seconds();
    if (lpath && (!layout || layout_read(lpath, layout))) goto fail;
    if (from && selection_read(from, layout, &fixed, &cfg.nfixed)) goto fail;
    cfg.fixed_sel = fixed;
    if (read_features(fpath, &X)) goto fail;
    const size_t n = X.shape[0], d = X.shape[1];
    if (lpath && layout->d != d) {
        set_error("%s describes %zu features but %s has %zu columns", lpath, layout->d, fpath, d);
        goto fail;
    }
    if (read_labels_k(opt_str(o, no, "--labels"), n, classes, &y, &k)) goto fail;
    const lasso_data data = {X.data, n, d, d, y, k};
    const char *out = opt_str(o, no, "--out");
    if (sh.n > 1) { /* this shard's part of the cross-validation, and stop */
        if ((rc = fit_shard(&data, layout, &cfg, &sh, out))) goto fail;
        ret = 0;
        goto fail;
    }
    if (collect ? fit_collect(&data, layout, &cfg, collect, &cv) : cv_run(&data, layout, &cfg, &cv)) goto fail;
    if (fit_final(&data, layout, &cfg, &cv.points[cv.best], &head)) goto fail;
    const double secs = now_seconds() - t0;
    if (fit_write(out, &cv, &head, &cfg, layout, n, secs)) goto fail;
    const grid_point *bp = &cv.points[cv.best];
    printf("fit: %s kept %zu of %zu features (lr %g, steps %ld", mname, head.nsel, d, bp->lr, bp->steps);
    if (cfg.method != METHOD_LINEAR && !from) printf(", coef %g", bp->coef);
    if (cfg.method == METHOD_HEAD2TOE && !from) printf(", F %g", bp->frac);
    if (from) printf(", the selection of %s", from);
    printf(")");
    if (cv.did_cv) printf(", cv accuracy %.4f +- %.4f over %d grid points", bp->mean, bp->std, cv.npoints);
    printf(", train accuracy %.4f, %.1f s -> %s\n", head.train_acc, secs, out);
    ret = 0;
fail:
    if (ret) cli_error(cmd, "%s", last_error());
    npy_free(&X);
    free_array(y);
    free_array(fixed);
    free(layout);
    cv_result_free(&cv);
    fitted_head_free(&head);
    return ret;
}

/* ==========================================================================
 * h2t eval: accuracy of a fitted head (lasso.c) */

static int cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    opt o[] = {
        {"--head", "DIR", "a head written by h2t fit", NULL, 1, NULL},
        {"--features", "F.npy", "features [m, D] (all) or [m, selected] (already selected)", NULL, 1, NULL},
        {"--labels", "y.npy", "labels [m]", NULL, 1, NULL},
        {"--layout", "F.layout.tsv", "layout of all-D features (default: DIR/layout.tsv)", NULL, 0, NULL},
        {"--out", "FILE.json", "also write accuracy and per-class accuracy as JSON", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    int rc = opts_parse(cmd, "--head DIR --features F.npy --labels y.npy [flags]", o, no, argc, argv);
    if (rc) return rc > 0 ? 0 : 1;
    const char *dir = opt_str(o, no, "--head"), *fpath = opt_str(o, no, "--features");
    const char *lpath = opt_str(o, no, "--layout"), *ypath = opt_str(o, no, "--labels");
    feat_layout *layout = NULL;
    fitted_head h;
    npy_reader r;
    int *y = NULL, k = 0, ret = 1;
    size_t *correct = NULL, *count = NULL;
    char dpath[700];
    if (head_read(dir, &h)) {
        cli_error(cmd, "%s", last_error());
        return 1;
    }
    if (npy_open(fpath, &r)) goto fail;
    size_t m = r.shape[0], c = r.ndim == 2 ? r.shape[1] : 0;
    npy_close(&r);
    if (c == 0) {
        set_error("%s: expected features [m, D] or [m, selected], got %d dims", fpath, r.ndim);
        goto fail;
    }
    if (c != h.nsel) { /* all features: the layout is needed to renormalize */
        if (!lpath) {
            snprintf(dpath, sizeof dpath, "%s/layout.tsv", dir);
            lpath = dpath;
        }
        if (!(layout = calloc(1, sizeof *layout)) || layout_read(lpath, layout)) goto fail;
    }
    if (labels_read(ypath, m, &y, &k)) goto fail;
    if (k > h.k) {
        set_error("%s: label %d is not a class of the head in %s (K = %d)", ypath, k - 1, dir, h.k);
        goto fail;
    }
    if (!(correct = alloc_zeros((size_t)h.k, sizeof(size_t))) || !(count = alloc_zeros((size_t)h.k, sizeof(size_t))))
        goto fail;
    if (eval_file(fpath, y, m, &h, layout, correct, count)) goto fail;
    const char *out = opt_str(o, no, "--out");
    if (out && eval_write(out, correct, count, h.k)) goto fail;
    size_t tc = 0;
    for (int i = 0; i < h.k; i++) tc += correct[i];
    printf("accuracy %.4f (%zu of %zu), %zu features%s\n", m ? (double)tc / (double)m : 0.0, tc, m, h.nsel,
           layout ? " gathered and renormalized per location" : " as given");
    for (int i = 0; i < h.k; i++) {
        if (count[i])
            printf("  class %d: %.4f (%zu of %zu)\n", i, (double)correct[i] / (double)count[i], correct[i],
                   count[i]);
        else
            printf("  class %d: no examples\n", i);
    }
    ret = 0;
fail:
    if (ret) cli_error(cmd, "%s", last_error());
    fitted_head_free(&h);
    free(layout);
    free_array(y);
    free_array(correct);
    free_array(count);
    return ret;
}

/* ==========================================================================
 * h2t run: one task end to end (run.c) */

/* --method LIST of h2t run: each method once, each with the grid g0. */
static int methods_from_opts(const char *cmd, const char *list, const fit_config *g0, run_opts *ro)
{
    const char *it;
    size_t len;
    for (const char *p = list; list_item(&p, &it, &len);) {
        fit_method m;
        if (method_parse("--method", it, len, &m)) {
            cli_error(cmd, "%s (a comma list)", last_error());
            return -1;
        }
        for (int i = 0; i < ro->nmethods; i++)
            if (ro->grid[i].method == m) {
                cli_error(cmd, "--method: %s given twice", method_names[m]);
                return -1;
            }
        if (ro->nmethods == PIPE_MAX_METHODS) {
            cli_error(cmd, "--method: at most %d methods", PIPE_MAX_METHODS);
            return -1;
        }
        fit_config *g = &ro->grid[ro->nmethods++];
        *g = *g0;
        g->method = m;
        if (m != METHOD_HEAD2TOE) /* the selection options are head2toe's; the subset is everyone's */
            g->score = SCORE_L2, g->average_over = 1, g->keep_offset = 0, g->interpolation = 0;
        if (g0->ncoef == 0) fit_default_grid(g); /* the method's own default coefficients */
    }
    return 0;
}

/* h2t run after its flags: the task, then a line per method. */
static int run_and_print(const char *cmd, const run_opts *ro)
{
    const double t0 = now_seconds();
    model *m = calloc(1, sizeof *m);
    pipeline_result r;
    int rc = m ? run_task(ro, m, &r) : (set_error("out of memory"), -1);
    if (rc) {
        cli_error(cmd, "%s", last_error());
    } else if (ro->shard.n > 1) {
        printf("run: shard %ld of %ld of the cross-validation -> %s/cv.part.%ld-of-%ld.tsv (%.1f s)\n", ro->shard.k,
               ro->shard.n, ro->out, ro->shard.k, ro->shard.n, now_seconds() - t0);
    } else {
        for (int i = 0; i < r.nmethods; i++) {
            const method_result *mr = &r.m[i];
            const grid_point *p = &mr->cv[mr->t].points[mr->cv[mr->t].best];
            char val[32] = "- (one grid point, no CV)";
            if (mr->cv[mr->t].did_cv) snprintf(val, sizeof val, "%.4f", p->mean);
            printf("run: %-8s T %ld, %zu of %zu features, validation %s, test accuracy %.4f (%zu/%zu)\n",
                   method_names[mr->method], ro->target[mr->t], mr->head.nsel, r.lay[mr->t].d, val, mr->test_acc,
                   mr->test_correct, mr->test_n);
        }
        printf("run: backbone passes: training %zu images (to %s), test %zu images (to %s)\n", r.train_pass.images,
               m->loc[r.train_pass.last].name, r.test_pass.images, m->loc[r.test_pass.last].name);
        printf("run: %.1f s -> %s/report.json\n", r.t_total, ro->out);
    }
    if (m) pipeline_result_free(&r), model_free(m);
    free(m);
    return rc ? 1 : 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *cmd = "run";
    opt o[] = {
        {"--model", "DIR", "model directory (from weights/export.py)", NULL, 1, NULL},
        {"--train-images", "X.npy", "training images, uint8 [n, H, W(, C)]", NULL, 1, NULL},
        {"--train-labels", "y.npy", "training labels [n]", NULL, 1, NULL},
        {"--test-images", "X.npy", "test images, uint8 [m, H, W(, C)]", NULL, 1, NULL},
        {"--test-labels", "y.npy", "test labels [m]", NULL, 1, NULL},
        {"--target-size", "LIST", "target sizes T (comma list; one backbone pass, CV picks one)", GRID_TARGET, 0,
         NULL},
        {"--method", "LIST", "head2toe, linear, all-l1, all-l2, all-l21 (comma list)", "head2toe", 0, NULL},
        GRID_FLAGS(COEF_HELP),
        SELECT_FLAGS,
        {"--taps", "LIST", "locations: a,b,c or 'all' (default: the official set)", NULL, 0, NULL},
        FEATURE_FLAGS,
        MODEL_FLAGS,
        {"--image-batch", "N", "images per backbone pass", "64", 0, NULL},
        {"--task", "NAME", "task name for the report (default: the --out directory)", NULL, 0, NULL},
        {"--keep-features", NULL, "also write the training features to DIR", NULL, 0, NULL},
        {"--grid-shard", "K/N", "run only shard K of N of every cross-validation; writes DIR/cv.part.K-of-N.tsv",
         NULL, 0, NULL},
        {"--collect", "DIR[,DIR]", "merge the cv.part files of every shard found there, then finish as one run",
         NULL, 0, NULL},
        {"--no-figures", NULL, "do not write the SVG figures", NULL, 0, NULL},
        {"--out", "DIR", "writes DIR/report.json and DIR/<method>/ (head, test.json, figures)", NULL, 1, NULL},
        {"--quiet", NULL, "no progress on stderr", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    int rc = opts_parse(cmd, "--model DIR --train-images X --train-labels y --test-images X --test-labels y "
                        "--out DIR [flags]", o, no, argc, argv);
    if (rc) return rc > 0 ? 0 : 1;
    run_opts ro;
    fit_config g0;
    long ibatch = 64;
    memset(&ro, 0, sizeof ro);
    memset(&g0, 0, sizeof g0);
    int selecting = 0;
    if (opt_targets(cmd, o, no, ro.target, &ro.ntarget) || opt_long(cmd, o, no, "--image-batch", 1, 4096, &ibatch) ||
        grid_from_opts(cmd, o, no, &g0) || opt_shard(cmd, o, no, "--grid-shard", &ro.shard.k, &ro.shard.n) ||
        select_from_opts(cmd, o, no, &g0, &selecting) || feature_flags(cmd, o, no, &ro.tap_every, &ro.cls) ||
        model_flags(cmd, o, no, &ro.model_opt))
        return 1;
    ro.collect = opt_str(o, no, "--collect");
    if (ro.shard.n > 1 && ro.collect) {
        cli_error(cmd, "--grid-shard and --collect: a shard runs its part, --collect merges them (one or the other)");
        return 1;
    }
    g0.ncoef = opt_str(o, no, "--coef") ? g0.ncoef : 0; /* absent: each method's own default */
    if (methods_from_opts(cmd, opt_str(o, no, "--method"), &g0, &ro)) return 1;
    if (selecting && !list_has(opt_str(o, no, "--method"), "head2toe")) {
        cli_error(cmd, "--score, --average-over, --keep-offset, --score-interpolation: only --method head2toe "
                  "selects features");
        return 1;
    }
    ro.model_dir = opt_str(o, no, "--model");
    ro.train_images = opt_str(o, no, "--train-images");
    ro.train_labels = opt_str(o, no, "--train-labels");
    ro.test_images = opt_str(o, no, "--test-images");
    ro.test_labels = opt_str(o, no, "--test-labels");
    ro.out = opt_str(o, no, "--out");
    ro.task = opt_str(o, no, "--task") ? opt_str(o, no, "--task") : ro.out;
    ro.taps = opt_str(o, no, "--taps");
    ro.image_batch = (int)ibatch;
    ro.keep_features = opt_flag(o, no, "--keep-features");
    ro.figures = !opt_flag(o, no, "--no-figures");
    ro.quiet = opt_flag(o, no, "--quiet");
    return run_and_print(cmd, &ro);
}

/* ==========================================================================
 * h2t demo: the bundled backbone and tasks, Linear vs Head2Toe (demo.c) */

static int cmd_demo(int argc, char **argv)
{
    const char *cmd = "demo";
    opt o[] = {
        {"--report", "FILE.json", "also write the results as JSON (accuracies as fractions)", NULL, 0, NULL},
        {"--dir", "DIR", "the demo directory: demo.cfg (backbone, tasks, grid), backbone/, tasks/", "demo", 0,
         NULL},
        {"--out", "DIR", "per-task runs (report.json, heads, figures) and the summary figures; with --experiments "
         "their figures and experiments.md", "demo_out", 0, NULL},
        {"--tasks", "LIST", "only these tasks (comma list of names in the task list)", NULL, 0, NULL},
        {"--experiments", "[LIST]", "instead of the table: the paper's analysis experiments in miniature (all, or "
         "fig6, fig7-transfer, fig7-scaling, fig11-overlap, fig11-offset, fig13, fig4, table6, table7): figures and "
         "DIR/experiments.md", NULL, 0, NULL},
        WINOGRAD_FLAG,
        {"--quiet", NULL, "no progress on stderr", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    /* --experiments takes an optional value: alone (last, or before another flag) it means all */
    char **args = malloc((size_t)(argc + 1) * sizeof *args);
    if (!args) return 1;
    for (int a = 0; a < argc; a++)
        args[a] = strcmp(argv[a], "--experiments") == 0 && (a + 1 == argc || strncmp(argv[a + 1], "--", 2) == 0)
                      ? "--experiments=all" : argv[a];
    int rc = opts_parse(cmd, "[--report FILE.json] [--experiments [LIST]] [flags]", o, no, argc, args);
    free(args);
    if (rc) return rc > 0 ? 0 : 1;
    model_options mo = {0};
    if (winograd_flag(cmd, o, no, &mo)) return 1;
    demo_opts d = {opt_str(o, no, "--dir"), opt_str(o, no, "--out"), opt_str(o, no, "--report"),
                   opt_str(o, no, "--tasks"), opt_str(o, no, "--experiments"), opt_flag(o, no, "--quiet"),
                   mo.winograd};
    if (d.experiments && d.report) {
        cli_error(cmd, "--report: the experiments write DIR/experiments.md instead");
        return 1;
    }
    if (d.experiments && d.winograd) {
        cli_error(cmd, "--winograd: the experiments run the plain convolutions (only the demo's table takes it)");
        return 1;
    }
    if (demo_run(&d)) {
        cli_error(cmd, "%s", last_error());
        return 1;
    }
    return 0;
}

/* ==========================================================================
 * h2t bench: forward throughput (random weights made here, or a model
 * directory) and GEMM GFLOP/s. Nothing is read or written. */

static void bench_tap(void *ctx, int loc, const float *x, int first, int n)
{
    (void)ctx, (void)loc, (void)x, (void)first, (void)n;
}

/* Batches of random inputs until `seconds` have passed (at least 2 after a
 * warm-up batch). Every location is computed, as in h2t taps/features; the
 * input resize is not timed (the comparison scripts time tensors too). */
static int bench_forward(const char *cmd, const char *arch, const char *dir, int size, int batch, double seconds,
                         uint64_t seed, const model_options *mo, int quiet)
{
    model m;
    double t0 = now_seconds();
    if ((dir ? model_load_with(dir, mo, &m) : model_init_random_with(arch, size, seed, mo, &m)) ||
        model_prepare_split(&m, batch)) {
        cli_error(cmd, "%s", last_error());
        model_free(&m);
        return 1;
    }
    const size_t xn = (size_t)batch * m.input_size * m.input_size * 3;
    float *x = alloc_array(xn, sizeof(float));
    if (!x) {
        cli_error(cmd, "%s", last_error());
        model_free(&m);
        return 1;
    }
    rng_t r;
    rng_seed(&r, seed ^ 0x5eedu);
    for (size_t i = 0; i < xn; i++) x[i] = (float)(4.0 * rng_uniform(&r) - 2.0);
    const char *name = dir ? dir : arch;
    if (!quiet)
        fprintf(stderr, "bench: %s (%s, %.2f M values), %d locations, input %dx%d, set up in %.1f s; warm-up batch\n",
                name, dir ? "weights from files" : "random weights", m.params * 1e-6, m.nloc, m.input_size,
                m.input_size, now_seconds() - t0);
    model_forward_split(&m, x, batch, m.nloc - 1, bench_tap, NULL);
    double total = 0, best = 1e30;
    int runs = 0;
    while (runs < 2 || total < seconds) {
        double t = now_seconds();
        model_forward_split(&m, x, batch, m.nloc - 1, bench_tap, NULL);
        t = now_seconds() - t;
        total += t, runs++;
        if (t < best) best = t;
        if (!quiet) fprintf(stderr, "bench: batch %d: %.3f s, %.2f img/s\n", runs, t, batch / t);
    }
    int threads = threads_max();
    char how[64] = "";
    if (mo->winograd)
        snprintf(how, sizeof how, ", Winograd F(%dx%d, 3x3)%s", mo->winograd, mo->winograd,
                 REFERENCE_BUILD ? " ignored (reference build)" : "");
    printf("bench: %s%s, batch %d, %d thread%s, %d batches in %.1f s (best batch %.2f img/s): %.2f img/s\n", name,
           how, batch, threads, threads == 1 ? "" : "s", runs, total, batch / best, runs * (double)batch / total);
    free_array(x);
    model_free(&m);
    return 0;
}

/* C[n,n] = A[n,n] B[n,n] at each size, best of repeats within the time. */
static int bench_gemm(const char *cmd, const double *sizes, int nsizes, double seconds, uint64_t seed)
{
    int threads = threads_max();
    for (int s = 0; s < nsizes; s++) {
        const size_t n = (size_t)sizes[s];
        float *a = alloc_array(n * n, sizeof(float)), *b = alloc_array(n * n, sizeof(float));
        float *c = alloc_array(n * n, sizeof(float));
        if (!a || !b || !c) {
            cli_error(cmd, "%s", last_error());
            free_array(a), free_array(b), free_array(c);
            return 1;
        }
        rng_t r;
        rng_seed(&r, seed);
        for (size_t i = 0; i < n * n; i++) a[i] = (float)rng_uniform(&r) - 0.5f, b[i] = (float)rng_uniform(&r) - 0.5f;
        double best = 1e30, end = now_seconds() + seconds / nsizes;
        int runs = 0;
        do {
            double t = now_seconds();
            gemm(0, 0, n, n, n, a, n, b, n, 0.0f, c, n);
            t = now_seconds() - t;
            if (t < best) best = t;
            runs++;
        } while (runs < 2 || now_seconds() < end);
        printf("bench: gemm %zux%zux%zu, %d thread%s, best of %d: %.1f GFLOP/s\n", n, n, n, threads,
               threads == 1 ? "" : "s", runs, 2.0 * n * n * n * 1e-9 / best);
        fflush(stdout);
        free_array(a), free_array(b), free_array(c);
    }
    return 0;
}

static int cmd_bench(int argc, char **argv)
{
    const char *cmd = "bench";
    opt o[] = {
        {"--arch", "NAME", "resnet50 | vit_b_16: torchvision's architecture, random weights made here", "resnet50",
         0, NULL},
        {"--input-size", "S", "input pixels for --arch (a ViT's: a multiple of 16)", "224", 0, NULL},
        {"--model", "DIR", "time this model directory instead of --arch", NULL, 0, NULL},
        {"--batch", "N", "images per forward pass, split over the threads as h2t features does", "16", 0, NULL},
        {"--seconds", "S", "time spent on timed batches (at least 2 are run, after a warm-up)", "10", 0, NULL},
        {"--gemm", NULL, "time square GEMMs (C = A B, fp32) instead of the forward pass", NULL, 0, NULL},
        {"--sizes", "LIST", "GEMM sizes for --gemm", "256,512,1024,2048", 0, NULL},
        {"--seed", "N", "seed of the random weights and inputs", "1", 0, NULL},
        WINOGRAD_FLAG,
        {"--quiet", NULL, "no progress on stderr", NULL, 0, NULL},
    };
    const int no = (int)(sizeof o / sizeof o[0]);
    int rc = opts_parse(cmd, "[--arch resnet50|vit_b_16] [--batch 16] [--seconds S] | --gemm [--sizes LIST]", o,
                        no, argc, argv);
    if (rc) return rc > 0 ? 0 : 1;
    long batch = 16, seed = 1, size = 224;
    double seconds = 10, sizes[16];
    int nsizes = 0;
    model_options mo = {0};
    if (winograd_flag(cmd, o, no, &mo) || opt_long(cmd, o, no, "--batch", 1, 4096, &batch) || opt_long(cmd, o, no, "--input-size", 8, 4096, &size) || opt_long(cmd, o, no, "--seed", 0, LONG_MAX, &seed) ||
        opt_double(cmd, o, no, "--seconds", 0, 1e6, &seconds) ||
        opt_list(cmd, o, no, "--sizes", 1, 16384, sizes, 16, &nsizes))
        return 1;
    for (int i = 0; i < nsizes; i++)
        if (sizes[i] != floor(sizes[i])) {
            cli_error(cmd, "--sizes: expected whole numbers, got '%s'", opt_str(o, no, "--sizes"));
            return 1;
        }
    if (opt_flag(o, no, "--gemm")) return bench_gemm(cmd, sizes, nsizes, seconds, (uint64_t)seed);
    const char *arch = opt_str(o, no, "--arch");
    if (strcmp(arch, "resnet50") != 0 && strcmp(arch, "vit_b_16") != 0) {
        cli_error(cmd, "--arch: expected resnet50 or vit_b_16, got '%s'", arch);
        return 1;
    }
    if (strcmp(arch, "vit_b_16") == 0 && size % 16 != 0) {
        cli_error(cmd, "--input-size: expected a multiple of 16 for vit_b_16, got %ld", size);
        return 1;
    }
    return bench_forward(cmd, arch, opt_str(o, no, "--model"), (int)size, (int)batch, seconds, (uint64_t)seed, &mo,
                         opt_flag(o, no, "--quiet"));
}

/* ==========================================================================
 * main */

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"taps", cmd_taps, "run the backbone, write every location as <name>.npy"},
    {"features", cmd_features, "Head2Toe features: pool + normalize every location"},
    {"join", cmd_join, "concatenate feature shards (h2t features --shard) row-wise"},
    {"score", cmd_score, "group-lasso scoring run: feature scores"},
    {"fit", cmd_fit, "select features and train the head (with cross-validation)"},
    {"eval", cmd_eval, "accuracy of a fitted head on a feature matrix"},
    {"run", cmd_run, "one task end to end: features, CV fit, test accuracy, report and figures"},
    {"demo", cmd_demo, "the bundled backbone and tasks: Linear vs Head2Toe in a table"},
    {"bench", cmd_bench, "forward throughput (random weights, no files) and GEMM GFLOP/s"},
};
static const int ncommands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f)
{
    fprintf(f,
            "h2t: Head2Toe transfer learning (Evci et al., ICML 2022) in C.\n"
            "Features from every layer of a frozen backbone, group-lasso selection, linear head.\n\n"
            "usage: h2t COMMAND [flags]    (h2t COMMAND --help for its flags)\n\ncommands:\n");
    for (int i = 0; i < ncommands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < ncommands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "h2t: unknown command '%s' (see h2t --help)\n", argv[1]);
    return 1;
}
