/* extract.c: images in, Head2Toe features out, in one backbone pass. See
 * extract.h. Sections:
 *   images         opening and checking an image file
 *   the pass       batches -> backbone -> each tap pools into the rows of
 *                  every target that uses its location; the pass stops
 *                  after the deepest location any target needs
 *   h2t features   layouts (or a selection), writers, shards, summary
 *   join           shards back into one file
 * The arithmetic of pooling and normalization is pooling.c's. */
#include "extract.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ==========================================================================
 * Images */

int images_open(const char *path, image_source *s)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    if (npy_open(path, &s->r)) return -1;
    const npy_reader *r = &s->r;
    if (r->file_dtype != NPY_U8) {
        set_error("%s: expected uint8 images (|u1), found %s", path, npy_dtype_name(r->file_dtype));
        goto bad;
    }
    if (!(r->ndim == 3 || (r->ndim == 4 && (r->shape[3] == 1 || r->shape[3] == 3))) || r->shape[0] < 1 ||
        r->shape[1] < 1 || r->shape[2] < 1 || r->shape[1] > 65536 || r->shape[2] > 65536) {
        char got[128] = "";
        for (int d = 0; d < r->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? ", " : "", r->shape[d]);
        set_error("%s: expected images [n, H, W, 3], [n, H, W, 1] or [n, H, W] with n >= 1 and H, W in 1..65536, "
                  "found [%s]", path, got);
        goto bad;
    }
    s->n = r->shape[0];
    s->h = (int)r->shape[1];
    s->w = (int)r->shape[2];
    s->c = r->ndim == 4 ? (int)r->shape[3] : 1;
    return 0;
bad:
    npy_close(&s->r);
    memset(s, 0, sizeof *s);
    return -1;
}

void images_close(image_source *s)
{
    if (s->path) npy_close(&s->r);
    memset(s, 0, sizeof *s);
}

/* ==========================================================================
 * The pass */

size_t extract_columns(const extract_target *t) { return t->sel ? t->nsel : t->lay->d; }

/* What the tap callback needs for one target. */
typedef struct {
    const extract_target *t;
    size_t cols;
    float *rows;                                  /* [batch, cols] this batch's rows */
    int entry[MODEL_MAX_LOCATIONS];               /* model location -> layout entry, or -1 */
    /* with a selection: entry e's selected features are sel[first[e] .. first[e] + count[e]) */
    size_t first[MODEL_MAX_LOCATIONS], count[MODEL_MAX_LOCATIONS];
} pass_target;

typedef struct {
    const model *m;
    pass_target *pt;                              /* [nt] */
    int nt;
    double *acc;                                  /* [batch, maxc] pooling scratch, one row per example */
    size_t maxc;
} pass_ctx;

/* Pool location loc of examples first .. first+n-1 (x) into those rows of
 * target p: every feature of the location, unit-normalized (§4, §5), or
 * only the selected ones (renormalized later, once the row is complete). */
static void pool_into(const pass_ctx *c, const pass_target *p, int loc, const float *x, int first, int n)
{
    const location *l = &c->m->loc[loc];
    const int e = p->entry[loc];
    const pool_plan *plan = &p->t->lay->plan[e];
    const size_t size = location_size(l), cols = p->cols;
    if (!p->t->sel) {
        const size_t off = p->t->lay->e[e].offset;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            float *y = p->rows + (size_t)(first + i) * cols + off;
            /* scratch row of the image in the batch: the shares of model_forward_split pool at once */
            pool_example(l, plan, x + (size_t)i * size, y, c->acc + (size_t)(first + i) * c->maxc);
            l2_normalize(y, plan->dim);
        }
        return;
    }
    const size_t sel0 = p->first[e], cnt = p->count[e], off = p->t->lay->e[e].offset;
    const int64_t *sel = p->t->sel + sel0;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *y = p->rows + (size_t)(first + i) * cols + sel0;
        const float *xi = x + (size_t)i * size;
        for (size_t q = 0; q < cnt; q++) y[q] = pool_feature(l, plan, xi, (size_t)sel[q] - off);
    }
}

/* The tap callback: every target that uses location loc. */
static void on_tap(void *vctx, int loc, const float *x, int first, int n)
{
    const pass_ctx *c = vctx;
    for (int k = 0; k < c->nt; k++) {
        const pass_target *p = &c->pt[k];
        const int e = p->entry[loc];
        if (e >= 0 && (!p->t->sel || p->count[e] > 0)) pool_into(c, p, loc, x, first, n);
    }
}

/* Which model location each layout entry is, and (with a selection) which
 * selected features each entry holds. Returns the deepest model location
 * the target needs. */
static int target_setup(const extract_target *t, pass_target *p)
{
    const feat_layout *lay = t->lay;
    int deepest = -1;
    p->t = t;
    p->cols = extract_columns(t);
    for (int i = 0; i < MODEL_MAX_LOCATIONS; i++) p->entry[i] = -1;
    size_t q = 0;
    for (int e = 0; e < lay->n; e++) {
        p->entry[lay->loc[e]] = e;
        const size_t end = lay->e[e].offset + lay->e[e].dim;
        p->first[e] = q;
        while (t->sel && q < t->nsel && (size_t)t->sel[q] < end) q++;
        p->count[e] = q - p->first[e];
        if ((!t->sel || p->count[e] > 0) && lay->loc[e] > deepest) deepest = lay->loc[e];
    }
    return deepest;
}

/* The batch's rows of target p are complete: renormalize a selection per
 * location (§5), then store them. */
static int target_store(const pass_target *p, size_t row0, int nb)
{
    const extract_target *t = p->t;
    if (t->sel) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < nb; i++) renormalize_selected(p->rows + (size_t)i * p->cols, t->sel, t->nsel, t->lay);
    }
    return t->out(t->out_ctx, p->rows, row0, (size_t)nb, p->cols);
}

int rows_to_memory(void *mem, const float *rows, size_t row0, size_t nrows, size_t cols)
{
    memcpy((float *)mem + row0 * cols, rows, nrows * cols * sizeof(float));
    return 0;
}

int rows_to_writer(void *w, const float *rows, size_t row0, size_t nrows, size_t cols)
{
    (void)row0, (void)cols;
    return npy_writer_rows(w, rows, nrows);
}

/* Every buffer of the pass, sized for batches of B images. */
typedef struct {
    pass_ctx c;
    uint8_t *imgs;                                /* [B, H, W, C] */
    float *x;                                     /* [B, S, S, 3] */
} pass_buffers;

static void buffers_free(pass_buffers *b, int nt)
{
    for (int k = 0; b->c.pt && k < nt; k++) free_array(b->c.pt[k].rows);
    free(b->c.pt);
    free_array(b->c.acc);
    free_array(b->imgs);
    free_array(b->x);
}

static int buffers_alloc(pass_buffers *b, const model *m, const image_source *s, int nt, int B)
{
    const size_t S = (size_t)m->input_size;
    for (int i = 0; i < m->nloc; i++) {
        const size_t c = (size_t)m->loc[i].dims[m->loc[i].rank - 1];
        if (c > b->c.maxc) b->c.maxc = c;
    }
    size_t img, x, acc;
    if (size_mul((size_t)s->h * (size_t)s->w, (size_t)s->c * (size_t)B, &img) || size_mul(S * S * 3, (size_t)B, &x) ||
        size_mul(b->c.maxc, (size_t)B, &acc))
        return -1;
    if (!(b->c.pt = calloc((size_t)nt, sizeof *b->c.pt))) {
        set_error("out of memory");
        return -1;
    }
    if (!(b->imgs = alloc_array(img, 1)) || !(b->x = alloc_array(x, sizeof(float))) ||
        !(b->c.acc = alloc_array(acc, sizeof(double))))
        return -1;
    return 0;
}

static void progress_line(const char *label, size_t done, size_t n, double t0)
{
    const double dt = now_seconds() - t0, rate = (double)done / (dt > 1e-9 ? dt : 1e-9);
    const double eta = (double)(n - done) / rate;
    fprintf(stderr, "%s: %zu/%zu images, %.1f img/s, ETA %.0f s\n", label, done, n, rate, eta);
}

int extract_pass(model *m, image_source *s, size_t start, size_t end, const extract_target *t, int nt, int batch,
                 const char *progress, extract_stats *st)
{
    const size_t n = end - start;
    const int B = (int)((size_t)batch < n ? (size_t)batch : (n > 0 ? n : 1));
    pass_buffers b = {0};
    int ret = -1, last = -1;
    double t0 = now_seconds(), shown = t0;
    if (buffers_alloc(&b, m, s, nt, B) || model_prepare_split(m, B)) goto done;
    b.c.m = m;
    b.c.nt = nt;
    for (int k = 0; k < nt; k++) {
        const int deepest = target_setup(&t[k], &b.c.pt[k]);
        if (deepest > last) last = deepest;
        size_t rs;
        if (size_mul(b.c.pt[k].cols, (size_t)B, &rs) || !(b.c.pt[k].rows = alloc_array(rs ? rs : 1, sizeof(float))))
            goto done;
    }
    for (size_t b0 = start; b0 < end; b0 += (size_t)B) {
        const int nb = (int)(end - b0 < (size_t)B ? end - b0 : (size_t)B);
        if (npy_read_rows(&s->r, b0, (size_t)nb, NPY_U8, b.imgs)) goto done;
        model_preprocess(m, b.imgs, nb, s->h, s->w, s->c, b.x);
        if (last >= 0) model_forward_split(m, b.x, nb, last, on_tap, &b.c); /* on_tap: any thread, any share */
        for (int k = 0; k < nt; k++)
            if (target_store(&b.c.pt[k], b0 - start, nb)) goto done;
        const size_t done_n = b0 + (size_t)nb - start;
        if (progress && (now_seconds() - shown >= 5.0 || done_n == n)) {
            progress_line(progress, done_n, n, t0);
            shown = now_seconds();
        }
    }
    st->images = n;
    st->last = last;
    st->seconds = now_seconds() - t0;
    ret = 0;
done:
    buffers_free(&b, nt);
    return ret;
}

/* ==========================================================================
 * `h2t features` */

int feat_out_paths(const char *out, long T, int several, char *npy, char *tsv, size_t cap)
{
    size_t len = strlen(out);
    if (len < 5 || strcmp(out + len - 4, ".npy") != 0) {
        set_error("--out %s: expected a file name ending in .npy", out);
        return -1;
    }
    int base = (int)(len - 4), a, b;
    if (several) {
        a = snprintf(npy, cap, "%.*s.T%ld.npy", base, out, T);
        b = snprintf(tsv, cap, "%.*s.T%ld.layout.tsv", base, out, T);
    } else {
        a = snprintf(npy, cap, "%s", out);
        b = snprintf(tsv, cap, "%.*s.layout.tsv", base, out);
    }
    if (a < 0 || b < 0 || (size_t)a >= cap || (size_t)b >= cap) {
        set_error("--out %s: path too long", out);
        return -1;
    }
    return 0;
}

void shard_bounds(size_t n_img, long k, long n, size_t *start, size_t *end)
{
    /* n_img * k fits: n_img comes from a file shape, k < n <= 1e6 */
    *start = (size_t)((unsigned long long)n_img * (unsigned long long)k / (unsigned long long)n);
    *end = (size_t)((unsigned long long)n_img * (unsigned long long)(k + 1) / (unsigned long long)n);
}

/* One output of `h2t features`: a target size, its layout, its files. */
typedef struct {
    feat_layout lay;
    extract_target t;
    npy_writer w;
    int w_open, renamed;
    char npy[640], tsv[640];
} feat_output;

static int check_opts(const feat_opts *o)
{
    if (o->ntarget < 1 || o->ntarget > FEAT_MAX_TARGETS) {
        set_error("--target-size: expected 1 to %d sizes", FEAT_MAX_TARGETS);
        return -1;
    }
    for (int t = 0; t < o->ntarget; t++)
        for (int u = 0; u < t; u++)
            if (o->target[u] == o->target[t]) {
                set_error("--target-size: %ld appears twice", o->target[t]);
                return -1;
            }
    if (o->batch < 1) {
        set_error("--batch: expected at least 1");
        return -1;
    }
    if (o->shard_n < 1 || o->shard_k < 0 || o->shard_k >= o->shard_n) {
        set_error("--shard %ld/%ld: expected K/N with 0 <= K < N", o->shard_k, o->shard_n);
        return -1;
    }
    if (!!o->select != !!o->layout) {
        set_error("--select and --layout go together (the indices refer to that layout)");
        return -1;
    }
    if (o->select && (o->ntarget != 1 || o->taps || o->tap_every > 1)) {
        set_error("--select: give exactly one --target-size (the layout's) and no --taps or --tap-fraction (the "
                  "layout names the locations)");
        return -1;
    }
    return 0;
}

/* --select: indices [k], k >= 1, int64, strictly ascending, < D of the layout. */
static int read_selection(const char *path, const char *layout, size_t D, npy_array *sel)
{
    if (npy_read(path, NPY_I64, sel)) return -1;
    if (sel->ndim != 1 || sel->count < 1) {
        set_error("%s: expected selected feature indices [k], k >= 1 (int64), got %d dims", path, sel->ndim);
        return -1;
    }
    const int64_t *s = sel->data;
    for (size_t q = 0; q < sel->count; q++) {
        if (s[q] < 0 || (uint64_t)s[q] >= D) {
            set_error("%s: index %lld at position %zu is outside [0, %zu) (D of %s)", path, (long long)s[q], q, D,
                      layout);
            return -1;
        }
        if (q > 0 && s[q] <= s[q - 1]) {
            set_error("%s: indices must be strictly ascending (position %zu: %lld after %lld)", path, q,
                      (long long)s[q], (long long)s[q - 1]);
            return -1;
        }
    }
    return 0;
}

/* The layouts (one per T, or the --layout file bound to the model) and the
 * selection, before anything is written. */
static int setup_outputs(const feat_opts *o, const model *m, feat_output *out, npy_array *sel)
{
    if (o->select) {
        if (layout_read(o->layout, &out[0].lay) || layout_bind(m, o->target[0], o->cls, o->layout, &out[0].lay) ||
            read_selection(o->select, o->layout, out[0].lay.d, sel))
            return -1;
        out[0].t = (extract_target){&out[0].lay, sel->data, sel->count, rows_to_writer, &out[0].w};
        return 0;
    }
    int use[MODEL_MAX_LOCATIONS];
    if (taps_parse(m, o->taps, use)) return -1;
    if (o->tap_every > 1) taps_thin(m, o->tap_every, use);
    for (int t = 0; t < o->ntarget; t++) {
        if (layout_make(m, use, o->target[t], o->cls, &out[t].lay)) return -1;
        out[t].t = (extract_target){&out[t].lay, NULL, 0, rows_to_writer, &out[t].w};
    }
    return 0;
}

/* Rename the feature files, then write the layouts beside them. */
static int finish_outputs(const feat_opts *o, feat_output *out, size_t n, double secs)
{
    for (int t = 0; t < o->ntarget; t++) {
        out[t].w_open = 0;
        if (npy_writer_close(&out[t].w)) return -1;
        out[t].renamed = 1;
    }
    for (int t = 0; t < o->ntarget; t++) {
        const size_t cols = extract_columns(&out[t].t);
        if (!o->select && layout_write(out[t].tsv, &out[t].lay)) return -1;
        if (o->quiet) continue;
        if (o->select)
            printf("features: wrote %s [%zu, %zu]: %zu selected features of %s (D %zu, T %ld) in %.1f s\n",
                   out[t].npy, n, cols, cols, o->layout, out[t].lay.d, o->target[t], secs);
        else
            printf("features: wrote %s [%zu, %zu] and %s (%d locations, T %ld) in %.1f s\n", out[t].npy, n, cols,
                   out[t].tsv, out[t].lay.n, o->target[t], secs);
    }
    return 0;
}

int features_run(const feat_opts *o)
{
    image_source s = {0};
    model *m = calloc(1, sizeof *m);            /* large (config + locations): not on the stack */
    feat_output *out = calloc((size_t)(o->ntarget > 0 ? o->ntarget : 1), sizeof *out);
    npy_array sel = {0};
    extract_target targets[FEAT_MAX_TARGETS];
    extract_stats st;
    int ret = -1;
    if (!m || !out) {
        set_error("out of memory");
        goto done;
    }
    if (check_opts(o)) goto done;
    for (int t = 0; t < o->ntarget; t++)
        if (feat_out_paths(o->out, o->target[t], o->ntarget > 1, out[t].npy, out[t].tsv, sizeof out[t].npy))
            goto done;
    if (images_open(o->images, &s) || model_load_with(o->model_dir, &o->model_opt, m) || setup_outputs(o, m, out, &sel)) goto done;
    size_t start, end;
    shard_bounds(s.n, o->shard_k, o->shard_n, &start, &end);
    for (int t = 0; t < o->ntarget; t++) {
        size_t shape[2] = {end - start, extract_columns(&out[t].t)};
        if (npy_writer_open(&out[t].w, out[t].npy, NPY_F32, 2, shape)) goto done;
        out[t].w_open = 1;
        targets[t] = out[t].t;
    }
    if (!o->quiet)
        fprintf(stderr, "features: %zu images (rows %zu..%zu of %s), batch %d, %d target size%s, %s\n", end - start,
                start, end, o->images, o->batch, o->ntarget, o->ntarget > 1 ? "s" : "", m->dir);
    if (extract_pass(m, &s, start, end, targets, o->ntarget, o->batch, o->quiet ? NULL : "features", &st) ||
        finish_outputs(o, out, end - start, st.seconds))
        goto done;
    ret = 0;
done:
    for (int t = 0; out && t < o->ntarget; t++) {
        if (out[t].w_open) npy_writer_abort(&out[t].w);
        if (ret && out[t].renamed) {
            remove(out[t].npy);
            if (!o->select) remove(out[t].tsv);
        }
    }
    free(out);
    images_close(&s);
    if (m) model_free(m);
    free(m);
    npy_free(&sel);
    return ret;
}

/* ==========================================================================
 * Join: shards back into one file */

/* The whole of a small text file; NULL (no error set) if it does not exist. */
static char *slurp(const char *path, size_t *len, int *err)
{
    *err = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) {
            set_error("%s: cannot open: %s", path, strerror(errno));
            *err = 1;
        }
        return NULL;
    }
    size_t cap = 4096, k = 0;
    char *s = malloc(cap);
    while (s) {
        k += fread(s + k, 1, cap - k, f);
        if (k < cap) break;
        char *s2 = cap < ((size_t)1 << 24) ? realloc(s, cap * 2) : NULL;
        if (!s2) {
            free(s);
            s = NULL;
            break;
        }
        s = s2;
        cap *= 2;
    }
    if (!s || ferror(f)) {
        set_error("%s: cannot read (or larger than 16 MB)", path);
        free(s);
        fclose(f);
        *err = 1;
        return NULL;
    }
    fclose(f);
    *len = k;
    return s;
}

/* The layout text beside input in (<in>.layout.tsv), or NULL when there is
 * none; -1 on a read error. */
static int join_layout(const char *in, char **text, size_t *len)
{
    char tsv[640];
    size_t n = strlen(in);
    int err = 0;
    *text = NULL, *len = 0;
    if (n >= 4 && strcmp(in + n - 4, ".npy") == 0 &&
        snprintf(tsv, sizeof tsv, "%.*s.layout.tsv", (int)(n - 4), in) < (int)sizeof tsv)
        *text = slurp(tsv, len, &err);
    return err ? -1 : 0;
}

/* Every input: a 2-D matrix like the first, with the same layout (all or
 * none); *rows = their rows; *lay0 = the layout text, checked against the
 * columns. */
static int join_check(char *const *inputs, int ninputs, npy_reader *rs, size_t *rows, char **lay0, size_t *lay0_len)
{
    for (int i = 0; i < ninputs; i++) {
        char *lay;
        size_t len;
        if (rs[i].ndim != 2) {
            set_error("%s: expected a feature matrix [n, D], got %d dims", inputs[i], rs[i].ndim);
            return -1;
        }
        if (i > 0 && (rs[i].shape[1] != rs[0].shape[1] || rs[i].file_dtype != rs[0].file_dtype)) {
            set_error("%s: [%zu, %zu] %s does not match %s: [%zu, %zu] %s", inputs[i], rs[i].shape[0],
                      rs[i].shape[1], npy_dtype_name(rs[i].file_dtype), inputs[0], rs[0].shape[0], rs[0].shape[1],
                      npy_dtype_name(rs[0].file_dtype));
            return -1;
        }
        if (size_add(*rows, rs[i].shape[0], rows) || join_layout(inputs[i], &lay, &len)) return -1;
        if (i == 0) {
            *lay0 = lay, *lay0_len = len;
            continue;
        }
        const int same = !lay == !*lay0 && (!lay || (len == *lay0_len && memcmp(lay, *lay0, len) == 0));
        free(lay);
        if (!same) {
            set_error("%s: its layout file differs from that of %s (or one of them has none): shards of different "
                      "runs?", inputs[i], inputs[0]);
            return -1;
        }
    }
    if (!*lay0) return 0;
    feat_layout *fl = malloc(sizeof *fl); /* the layout must describe the columns */
    char tsv[640];
    snprintf(tsv, sizeof tsv, "%.*s.layout.tsv", (int)(strlen(inputs[0]) - 4), inputs[0]);
    int rc = !fl ? (set_error("out of memory"), -1) : layout_read(tsv, fl);
    if (rc == 0 && fl->d != rs[0].shape[1]) {
        set_error("%s describes %zu features but %s has %zu columns", tsv, fl->d, inputs[0], rs[0].shape[1]);
        rc = -1;
    }
    free(fl);
    return rc;
}

/* The inputs' rows, in order, into out_npy (through a temporary name). */
static int join_copy(npy_reader *rs, int ninputs, const char *out_npy, size_t rows)
{
    const npy_dtype dt = rs[0].file_dtype;
    const size_t rc = rs[0].row_count > 0 ? rs[0].row_count : 1, es = npy_dtype_size(dt);
    size_t chunk = ((size_t)1 << 24) / (rc * es); /* ~16 MB per read */
    if (chunk < 1) chunk = 1;
    void *buf = alloc_array(chunk * rc, es);
    size_t shape[2] = {rows, rs[0].shape[1]};
    npy_writer w;
    if (!buf || npy_writer_open(&w, out_npy, dt, 2, shape)) {
        free_array(buf);
        return -1;
    }
    for (int i = 0; i < ninputs; i++)
        for (size_t r0 = 0; r0 < rs[i].shape[0]; r0 += chunk) {
            size_t nr = rs[i].shape[0] - r0 < chunk ? rs[i].shape[0] - r0 : chunk;
            if (npy_read_rows(&rs[i], r0, nr, dt, buf) || npy_writer_rows(&w, buf, nr)) {
                npy_writer_abort(&w);
                free_array(buf);
                return -1;
            }
        }
    free_array(buf);
    return npy_writer_close(&w);
}

int features_join(const char *out, char *const *inputs, int ninputs)
{
    char out_npy[640], out_tsv[640], *lay0 = NULL;
    size_t lay0_len = 0, rows = 0;
    int nopen = 0, ret = -1;
    if (ninputs < 1) {
        set_error("join: no input files");
        return -1;
    }
    if (feat_out_paths(out, 0, 0, out_npy, out_tsv, sizeof out_npy)) return -1;
    npy_reader *rs = calloc((size_t)ninputs, sizeof *rs);
    if (!rs) {
        set_error("out of memory");
        return -1;
    }
    while (nopen < ninputs && npy_open(inputs[nopen], &rs[nopen]) == 0) nopen++;
    if (nopen < ninputs || join_check(inputs, ninputs, rs, &rows, &lay0, &lay0_len) ||
        join_copy(rs, ninputs, out_npy, rows))
        goto done;
    if (lay0 && write_file_atomic(out_tsv, lay0, lay0_len)) {
        remove(out_npy);
        goto done;
    }
    printf("join: wrote %s [%zu, %zu] from %d files%s%s\n", out_npy, rows, rs[0].shape[1], ninputs,
           lay0 ? " and " : "", lay0 ? out_tsv : "");
    ret = 0;
done:
    for (int i = 0; i < nopen; i++) npy_close(&rs[i]);
    free(rs);
    free(lay0);
    return ret;
}
