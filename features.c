/* features.c: the Head2Toe feature vector (SPEC sections 4 and 5) and the
 * streaming driver behind `h2t features` and `h2t join`.
 *
 *   pooling       the plan of one location at target size T; pooling one
 *                 example (all features, or one feature by index)
 *   normalization unit L2 norm per example and location
 *   layout        F.layout.tsv: make, write, read
 *   driver        images -> batches -> backbone -> tap callback pools each
 *                 location into the batch's rows -> rows streamed to .npy
 *   join          shards back into one file
 *
 * Numerics: a mean is a sum in double (positions in row-major order) divided
 * by the count in double, rounded once to float; a norm is a sum of squares
 * in double in index order. Every value depends only on its own example, so
 * results do not depend on the batch size, the shard or the thread count.
 * It does not run the backbone (model.c) and trains nothing (lasso.c). */
#include "features.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "util.h"

/* ==========================================================================
 * Pooling (SPEC section 4) */

int pool_plan_make(const location *l, long T, pool_plan *p)
{
    memset(p, 0, sizeof *p);
    if (T < 1) {
        set_error("target size must be at least 1, got %ld", T);
        return -1;
    }
    if (l->rank < 1 || l->rank > 3) {
        set_error("location %s: rank %d, expected 1 (vector), 2 (tokens) or 3 (conv map)", l->name, l->rank);
        return -1;
    }
    for (int i = 0; i < l->rank; i++)
        if (l->dims[i] < 1) {
            set_error("location %s: dimension %d is %d, expected >= 1", l->name, i, l->dims[i]);
            return -1;
        }
    const long C = l->dims[l->rank - 1];
    if (l->rank == 1) {                     /* vector: as it is */
        p->pool = -1;
        p->grid = 0;
        p->dim = (size_t)C;
        return 0;
    }
    if (l->rank == 3) {                     /* conv map [H, W, C] */
        const long H = l->dims[0];
        if (l->dims[1] != H) {
            set_error("location %s: conv map %dx%d is not square (SPEC section 4 pools square maps)", l->name,
                      l->dims[0], l->dims[1]);
            return -1;
        }
        long pw = 0;
        if (C < T) {
            long n = (long)sqrt((double)(T / C));   /* integer division first, then truncate */
            pw = H / n;
        }
        if (pw == 0) {                      /* C >= T, or the window would be empty */
            p->pool = 0;
            p->grid = 1;
        } else {
            p->pool = (int)pw;
            p->grid = (int)(H / pw);        /* 'valid': trailing rows/cols dropped */
        }
        p->dim = (size_t)p->grid * (size_t)p->grid * (size_t)C;
        return 0;
    }
    /* token map [Tk, C] */
    const long Tk = l->dims[0];
    long pw = 0;
    if (C < T) {
        double groups = (double)T / (double)C;        /* float division here */
        pw = (long)((double)Tk / groups);
    }
    if (pw == 0) {
        p->pool = 0;
        p->grid = 1;
    } else {
        p->pool = (int)pw;
        p->grid = (int)(Tk / pw);
    }
    p->dim = (size_t)p->grid * (size_t)C;
    return 0;
}

/* The window of output cell `cell` (row-major over the grid): its first
 * position (row, col) and side lengths in positions. A token map is a
 * conv map [Tk, 1, C]; a global mean is one window over the whole map. */
static void window_of(const location *l, const pool_plan *p, size_t cell, int *r0, int *c0, int *nr, int *nc)
{
    int H = l->dims[0], W = l->rank == 3 ? l->dims[1] : 1;
    if (p->pool == 0) {
        *r0 = *c0 = 0;
        *nr = H;
        *nc = W;
    } else if (l->rank == 3) {
        *r0 = (int)(cell / (size_t)p->grid) * p->pool;
        *c0 = (int)(cell % (size_t)p->grid) * p->pool;
        *nr = *nc = p->pool;
    } else {
        *r0 = (int)cell * p->pool;
        *c0 = 0;
        *nr = p->pool;
        *nc = 1;
    }
}

void pool_example(const location *l, const pool_plan *p, const float *x, float *y, double *acc)
{
    const int C = l->dims[l->rank - 1];
    if (p->pool < 0) {                       /* vector */
        memcpy(y, x, (size_t)C * sizeof *y);
        return;
    }
    const int W = l->rank == 3 ? l->dims[1] : 1;
    const size_t cells = p->dim / (size_t)C;
    for (size_t cell = 0; cell < cells; cell++) {
        int r0, c0, nr, nc;
        window_of(l, p, cell, &r0, &c0, &nr, &nc);
        for (int c = 0; c < C; c++) acc[c] = 0.0;
        for (int r = r0; r < r0 + nr; r++)
            for (int q = c0; q < c0 + nc; q++) {
                const float *xp = x + ((size_t)r * W + q) * C;
                for (int c = 0; c < C; c++) acc[c] += (double)xp[c];
            }
        const double count = (double)nr * (double)nc;
        float *yc = y + cell * (size_t)C;
        for (int c = 0; c < C; c++) yc[c] = (float)(acc[c] / count);
    }
}

float pool_feature(const location *l, const pool_plan *p, const float *x, size_t j)
{
    const int C = l->dims[l->rank - 1];
    if (p->pool < 0) return x[j];
    const int W = l->rank == 3 ? l->dims[1] : 1;
    const size_t cell = j / (size_t)C, c = j % (size_t)C;
    int r0, c0, nr, nc;
    window_of(l, p, cell, &r0, &c0, &nr, &nc);
    double s = 0.0;
    for (int r = r0; r < r0 + nr; r++)
        for (int q = c0; q < c0 + nc; q++) s += (double)x[((size_t)r * W + q) * C + c];
    return (float)(s / ((double)nr * (double)nc));
}

/* ==========================================================================
 * Normalization (SPEC section 5) */

void l2_normalize(float *x, size_t d)
{
    double ss = 0.0;
    for (size_t i = 0; i < d; i++) ss += (double)x[i] * (double)x[i];
    if (ss == 0.0) return;                   /* zero stays zero; no epsilon */
    const double norm = sqrt(ss);
    for (size_t i = 0; i < d; i++) x[i] = (float)((double)x[i] / norm);
}

/* ==========================================================================
 * Layout */

static void shape_str(char *s, size_t cap, int rank, const int *dims)
{
    size_t k = 0;
    s[0] = 0;
    for (int i = 0; i < rank && k < cap; i++) k += (size_t)snprintf(s + k, cap - k, i ? "x%d" : "%d", dims[i]);
}

int layout_make(const model *m, const int *use, long T, feat_layout *l)
{
    memset(l, 0, sizeof *l);
    for (int i = 0; i < m->nloc; i++) {
        if (!use[i]) continue;
        const location *lc = &m->loc[i];
        int k = l->n;
        if (pool_plan_make(lc, T, &l->plan[k])) return -1;
        layout_entry *e = &l->e[k];
        snprintf(e->name, sizeof e->name, "%s", lc->name);
        e->offset = l->d;
        e->dim = l->plan[k].dim;
        e->pool = l->plan[k].pool;
        shape_str(e->shape, sizeof e->shape, lc->rank, lc->dims);
        int pd[3], C = lc->dims[lc->rank - 1];
        if (lc->rank == 1) shape_str(e->pooled, sizeof e->pooled, 1, &C);
        else if (lc->rank == 2) {
            pd[0] = l->plan[k].grid, pd[1] = C;
            shape_str(e->pooled, sizeof e->pooled, 2, pd);
        } else {
            pd[0] = pd[1] = l->plan[k].grid, pd[2] = C;
            shape_str(e->pooled, sizeof e->pooled, 3, pd);
        }
        l->loc[k] = i;
        if (size_add(l->d, e->dim, &l->d)) return -1;
        l->n++;
    }
    if (l->n == 0) {
        set_error("no locations selected");
        return -1;
    }
    return 0;
}

int layout_write(const char *path, const feat_layout *l)
{
    /* at most MODEL_MAX_LOCATIONS lines of < 200 characters */
    size_t cap = 64 + (size_t)l->n * 200, k = 0;
    char *s = malloc(cap);
    if (!s) {
        set_error("%s: out of memory", path);
        return -1;
    }
    k += (size_t)snprintf(s + k, cap - k, "location\toffset\tdim\tpool\tshape\tpooled\n");
    for (int i = 0; i < l->n; i++) {
        const layout_entry *e = &l->e[i];
        k += (size_t)snprintf(s + k, cap - k, "%s\t%zu\t%zu\t%d\t%s\t%s\n", e->name, e->offset, e->dim, e->pool,
                              e->shape[0] ? e->shape : "-", e->pooled[0] ? e->pooled : "-");
    }
    int r = write_file_atomic(path, s, k);
    free(s);
    return r;
}

int layout_read(const char *path, feat_layout *l)
{
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "r");
    if (!f) {
        set_error("%s: cannot open layout file: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            set_error("%s:%d: line too long", path, lineno);
            goto fail;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (lineno == 1) {
            if (strncmp(line, "location", 8) != 0) {
                set_error("%s:1: expected the header line 'location offset dim pool ...'", path);
                goto fail;
            }
            continue;
        }
        char *field[7];
        int nf = 0;
        for (char *p = line; *p && nf < 7;) {
            while (*p == ' ' || *p == '\t') p++;
            if (!*p) break;
            field[nf++] = p;
            while (*p && *p != ' ' && *p != '\t') p++;
            if (*p) *p++ = 0;
        }
        if (nf == 0) continue;
        if (nf < 4 || nf > 6) {
            set_error("%s:%d: expected 4 to 6 fields (location offset dim pool [shape pooled]), found %d", path,
                      lineno, nf);
            goto fail;
        }
        if (l->n == MODEL_MAX_LOCATIONS) {
            set_error("%s:%d: more than %d locations", path, lineno, MODEL_MAX_LOCATIONS);
            goto fail;
        }
        layout_entry *e = &l->e[l->n];
        long off, dim, pool;
        if (strlen(field[0]) >= sizeof e->name) {
            set_error("%s:%d: location name longer than %zu characters", path, lineno, sizeof e->name - 1);
            goto fail;
        }
        if (parse_long(field[1], &off) || parse_long(field[2], &dim) || parse_long(field[3], &pool) || off < 0 ||
            dim < 1 || pool < -1 || pool > 1000000) {
            set_error("%s:%d: expected offset >= 0, dim >= 1, pool >= -1 (integers), got '%s %s %s'", path,
                      lineno, field[1], field[2], field[3]);
            goto fail;
        }
        if ((size_t)off != l->d) {
            set_error("%s:%d: offset %ld of '%s' should be %zu (offsets are contiguous from 0)", path, lineno, off,
                      field[0], l->d);
            goto fail;
        }
        for (int i = 0; i < l->n; i++)
            if (strcmp(l->e[i].name, field[0]) == 0) {
                set_error("%s:%d: location '%s' appears twice", path, lineno, field[0]);
                goto fail;
            }
        for (int k = 4; k < nf; k++)
            if (strlen(field[k]) >= LAYOUT_SHAPE_MAX) {
                set_error("%s:%d: shape field '%s' too long", path, lineno, field[k]);
                goto fail;
            }
        strcpy(e->name, field[0]);
        e->offset = (size_t)off;
        e->dim = (size_t)dim;
        e->pool = (int)pool;
        if (nf > 4) strcpy(e->shape, field[4]);
        if (nf > 5) strcpy(e->pooled, field[5]);
        l->loc[l->n] = -1;
        if (size_add(l->d, (size_t)dim, &l->d)) goto fail;
        l->n++;
    }
    if (ferror(f)) {
        set_error("%s: read error", path);
        goto fail;
    }
    if (l->n == 0) {
        set_error("%s: no locations (expected a header line, then: location offset dim pool)", path);
        goto fail;
    }
    fclose(f);
    return 0;
fail:
    fclose(f);
    return -1;
}

int taps_parse(const model *m, const char *taps, int *use)
{
    for (int i = 0; i < m->nloc; i++) use[i] = taps == NULL ? m->loc[i].is_default : strcmp(taps, "all") == 0;
    if (taps == NULL || strcmp(taps, "all") == 0) return 0;
    for (const char *p = taps;;) {
        size_t len = strcspn(p, ",");
        char name[LOCATION_NAME_MAX];
        if (len == 0 || len >= sizeof name) {
            set_error("--taps: expected 'all' or a comma list of location names, got '%s'", taps);
            return -1;
        }
        memcpy(name, p, len);
        name[len] = 0;
        int i = model_find_location(m, name);
        if (i < 0) {
            set_error("--taps: the model in %s has no location '%s' (h2t taps --help lists them)", m->dir, name);
            return -1;
        }
        use[i] = 1;
        p += len;
        if (!*p) return 0;
        p++;
    }
}

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

/* ==========================================================================
 * The driver: one backbone pass, every target size pooled from the taps */

typedef struct {
    feat_layout lay;
    int entry[MODEL_MAX_LOCATIONS];   /* model location -> layout entry, or -1 */
    float *rows;                      /* [batch, d] the batch's output rows */
    size_t d;                         /* columns written (layout d, or nsel) */
    npy_writer w;
    int w_open, renamed;
    char npy[640], tsv[640];
} feat_target;

typedef struct {
    const model *m;
    int nt;
    feat_target *t;                   /* [nt] */
    double *acc;                      /* [batch, maxc] pooling scratch per example */
    size_t maxc;
    /* --select: one target; the selected features of layout entry e are
     * sel_local[sel_first[e] .. + sel_count[e]) (indices within the entry),
     * written to the same columns of the output row */
    int selecting;
    int64_t *sel_local;               /* [nsel] */
    size_t sel_first[MODEL_MAX_LOCATIONS], sel_count[MODEL_MAX_LOCATIONS];
} feat_ctx;

/* The tap callback: pool location loc of the n examples in x into the rows
 * of every target size that uses it. */
static void on_tap(void *vctx, int loc, const float *x, int n)
{
    feat_ctx *c = vctx;
    const location *l = &c->m->loc[loc];
    const size_t size = location_size(l);
    for (int t = 0; t < c->nt; t++) {
        feat_target *ft = &c->t[t];
        const int e = ft->entry[loc];
        if (e < 0) continue;
        const pool_plan *p = &ft->lay.plan[e];
        if (!c->selecting) {
            const size_t off = ft->lay.e[e].offset, d = ft->d;
#pragma omp parallel for schedule(static)
            for (int i = 0; i < n; i++) {
                float *y = ft->rows + (size_t)i * d + off;
                pool_example(l, p, x + (size_t)i * size, y, c->acc + (size_t)i * c->maxc);
                l2_normalize(y, p->dim);
            }
        } else {
            const size_t first = c->sel_first[e], cnt = c->sel_count[e], d = ft->d;
            if (cnt == 0) continue;
            const int64_t *js = c->sel_local + first;
#pragma omp parallel for schedule(static)
            for (int i = 0; i < n; i++) {
                float *y = ft->rows + (size_t)i * d + first;
                const float *xi = x + (size_t)i * size;
                for (size_t q = 0; q < cnt; q++) y[q] = pool_feature(l, p, xi, (size_t)js[q]);
                l2_normalize(y, cnt);
            }
        }
    }
}

static void fmt_duration(char *s, size_t cap, double sec)
{
    if (!(sec >= 0) || sec > 1e8) {
        snprintf(s, cap, "?");
        return;
    }
    long t = (long)(sec + 0.5);
    if (t >= 3600) snprintf(s, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(s, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(s, cap, "%lds", t);
}

/* --select with --layout: check the layout against the model at this T,
 * read and check the indices, fill the target's entries and the context. */
static int setup_select(const feat_opts *o, const model *m, feat_target *ft, feat_ctx *c, npy_array *sel)
{
    feat_layout *lay = &ft->lay;
    if (layout_read(o->layout, lay)) return -1;
    const long T = o->target[0];
    int prev = -1;
    for (int e = 0; e < lay->n; e++) {
        int i = model_find_location(m, lay->e[e].name);
        if (i < 0) {
            set_error("%s: location '%s' is not in the model in %s", o->layout, lay->e[e].name, m->dir);
            return -1;
        }
        if (i <= prev) {
            set_error("%s: location '%s' is out of depth order", o->layout, lay->e[e].name);
            return -1;
        }
        prev = i;
        if (pool_plan_make(&m->loc[i], T, &lay->plan[e])) return -1;
        if (lay->plan[e].dim != lay->e[e].dim || lay->plan[e].pool != lay->e[e].pool) {
            set_error("%s: location '%s' has dim %zu pool %d, but the model in %s at target size %ld gives dim %zu "
                      "pool %d (a layout of another model or --target-size?)", o->layout, lay->e[e].name,
                      lay->e[e].dim, lay->e[e].pool, m->dir, T, lay->plan[e].dim, lay->plan[e].pool);
            return -1;
        }
        lay->loc[e] = i;
        ft->entry[i] = e;
    }
    if (npy_read(o->select, NPY_I64, sel)) return -1;
    if (sel->ndim != 1 || sel->count < 1) {
        set_error("%s: expected selected feature indices [k], k >= 1 (int64), got %d dims", o->select, sel->ndim);
        return -1;
    }
    const int64_t *s = sel->data;
    for (size_t q = 0; q < sel->count; q++) {
        if (s[q] < 0 || (uint64_t)s[q] >= lay->d) {
            set_error("%s: index %lld at position %zu is outside [0, %zu) (D of %s)", o->select, (long long)s[q], q,
                      lay->d, o->layout);
            return -1;
        }
        if (q > 0 && s[q] <= s[q - 1]) {
            set_error("%s: indices must be strictly ascending (position %zu: %lld after %lld)", o->select, q,
                      (long long)s[q], (long long)s[q - 1]);
            return -1;
        }
    }
    if (!(c->sel_local = alloc_array(sel->count, sizeof(int64_t)))) return -1;
    size_t q = 0;
    for (int e = 0; e < lay->n; e++) {
        c->sel_first[e] = q;
        size_t end = lay->e[e].offset + lay->e[e].dim;
        for (; q < sel->count && (size_t)s[q] < end; q++) c->sel_local[q] = s[q] - (int64_t)lay->e[e].offset;
        c->sel_count[e] = q - c->sel_first[e];
    }
    c->selecting = 1;
    ft->d = sel->count;
    return 0;
}

int features_run(const feat_opts *o)
{
    static model m;                 /* large (config + locations): not on the stack */
    npy_reader r;
    npy_array sel = {0};
    feat_ctx c;
    feat_target *ts = NULL;
    uint8_t *imgs = NULL;
    float *x = NULL;
    int ret = -1, have_r = 0, have_m = 0;
    memset(&c, 0, sizeof c);

    if (o->ntarget < 1 || o->ntarget > FEAT_MAX_TARGETS) {
        set_error("--target-size: expected 1 to %d sizes", FEAT_MAX_TARGETS);
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
    if (o->select && (o->ntarget != 1 || o->taps)) {
        set_error("--select: give exactly one --target-size (the layout's) and no --taps (the layout names them)");
        return -1;
    }
    if (!(ts = calloc((size_t)o->ntarget, sizeof *ts))) {
        set_error("out of memory");
        return -1;
    }
    c.t = ts;
    c.nt = o->ntarget;
    for (int t = 0; t < o->ntarget; t++) {
        for (int u = 0; u < t; u++)
            if (o->target[u] == o->target[t]) {
                set_error("--target-size: %ld appears twice", o->target[t]);
                goto done;
            }
        if (feat_out_paths(o->out, o->target[t], o->ntarget > 1, ts[t].npy, ts[t].tsv, sizeof ts[t].npy)) goto done;
        for (int i = 0; i < MODEL_MAX_LOCATIONS; i++) ts[t].entry[i] = -1;
    }

    /* ---- images: uint8 [n, H, W, C] with C 1 or 3, or [n, H, W] */
    if (npy_open(o->images, &r)) goto done;
    have_r = 1;
    if (!(r.ndim == 4 && (r.shape[3] == 1 || r.shape[3] == 3)) && r.ndim != 3) {
        set_error("%s: expected images [n, H, W, 3], [n, H, W, 1] or [n, H, W] (uint8), got %d dims", o->images,
                  r.ndim);
        goto done;
    }
    if (r.shape[1] < 1 || r.shape[2] < 1 || r.shape[1] > 65536 || r.shape[2] > 65536) {
        set_error("%s: image size %zux%zu, expected 1..65536 on each side", o->images, r.shape[1], r.shape[2]);
        goto done;
    }
    /* the same rules as h2t taps: uint8 pixels, at least one image in the
     * file (a shard of it may still be empty, e.g. shard 0/11 of 10 images) */
    if (r.file_dtype != NPY_U8) {
        set_error("%s: expected uint8 images (|u1), found %s", o->images, npy_dtype_name(r.file_dtype));
        goto done;
    }
    if (r.shape[0] < 1) {
        set_error("%s: 0 images; expected images [n, H, W(, C)] with n >= 1", o->images);
        goto done;
    }
    const int H = (int)r.shape[1], W = (int)r.shape[2], Cin = r.ndim == 4 ? (int)r.shape[3] : 1;
    size_t start, end;
    shard_bounds(r.shape[0], o->shard_k, o->shard_n, &start, &end);
    const size_t n = end - start;

    /* ---- model, layouts, buffers (all sized here, before the first batch) */
    if (model_load(o->model_dir, &m)) goto done;
    have_m = 1;
    if (o->select) {
        if (setup_select(o, &m, &ts[0], &c, &sel)) goto done;
    } else {
        int use[MODEL_MAX_LOCATIONS];
        if (taps_parse(&m, o->taps, use)) goto done;
        for (int t = 0; t < o->ntarget; t++) {
            if (layout_make(&m, use, o->target[t], &ts[t].lay)) goto done;
            for (int e = 0; e < ts[t].lay.n; e++) ts[t].entry[ts[t].lay.loc[e]] = e;
            ts[t].d = ts[t].lay.d;
        }
    }
    const int B = (int)((size_t)o->batch < n ? (size_t)o->batch : (n > 0 ? n : 1));
    if (model_prepare(&m, B)) goto done;
    for (int i = 0; i < m.nloc; i++)
        if ((size_t)m.loc[i].dims[m.loc[i].rank - 1] > c.maxc) c.maxc = (size_t)m.loc[i].dims[m.loc[i].rank - 1];
    c.m = &m;
    size_t img_size, x_size, acc_size;
    const size_t S = (size_t)m.input_size;
    if (size_mul((size_t)H * (size_t)W, (size_t)Cin * (size_t)B, &img_size) ||
        size_mul(S * S * 3, (size_t)B, &x_size) || size_mul(c.maxc, (size_t)B, &acc_size))
        goto done;
    if (!(imgs = alloc_array(img_size, 1)) || !(x = alloc_array(x_size, sizeof(float))) ||
        !(c.acc = alloc_array(acc_size, sizeof(double))))
        goto done;
    for (int t = 0; t < o->ntarget; t++) {
        size_t rs;
        if (size_mul(ts[t].d, (size_t)B, &rs) || !(ts[t].rows = alloc_array(rs, sizeof(float)))) goto done;
        size_t shape[2] = {n, ts[t].d};
        if (npy_writer_open(&ts[t].w, ts[t].npy, NPY_F32, 2, shape)) goto done;
        ts[t].w_open = 1;
    }

    /* ---- the pass */
    double t0 = now_seconds(), last = t0;
    if (!o->quiet)
        fprintf(stderr, "features: %zu images (rows %zu..%zu of %s), batch %d, %d target size%s, %s\n", n, start,
                end, o->images, B, o->ntarget, o->ntarget > 1 ? "s" : "", m.dir);
    for (size_t b0 = start; b0 < end; b0 += (size_t)B) {
        const int nb = (int)(end - b0 < (size_t)B ? end - b0 : (size_t)B);
        if (npy_read_rows(&r, b0, (size_t)nb, NPY_U8, imgs)) goto done;
        model_preprocess(&m, imgs, nb, H, W, Cin, x);
        model_forward(&m, x, nb, m.nloc - 1, on_tap, &c);
        for (int t = 0; t < o->ntarget; t++)
            if (npy_writer_rows(&ts[t].w, ts[t].rows, (size_t)nb)) goto done;
        double now = now_seconds();
        size_t done_n = b0 + (size_t)nb - start;
        if (!o->quiet && (now - last >= 5.0 || done_n == n)) {
            double rate = (double)done_n / (now - t0 > 1e-9 ? now - t0 : 1e-9);
            char eta[32];
            fmt_duration(eta, sizeof eta, (double)(n - done_n) / rate);
            fprintf(stderr, "features: %zu/%zu images, %.1f img/s, ETA %s\n", done_n, n, rate, eta);
            last = now;
        }
    }

    /* ---- finish: rename the feature files, then write the layouts */
    for (int t = 0; t < o->ntarget; t++) {
        ts[t].w_open = 0;
        if (npy_writer_close(&ts[t].w)) goto done;
        ts[t].renamed = 1;
    }
    for (int t = 0; t < o->ntarget; t++) {
        if (!c.selecting && layout_write(ts[t].tsv, &ts[t].lay)) goto done;
        if (o->quiet)
            continue;
        if (c.selecting)
            printf("features: wrote %s [%zu, %zu]: %zu selected features of %s (D %zu, T %ld) in %.1f s\n", ts[t].npy,
                   n, ts[t].d, ts[t].d, o->layout, ts[t].lay.d, o->target[t], now_seconds() - t0);
        else
            printf("features: wrote %s [%zu, %zu] and %s (%d locations, T %ld) in %.1f s\n", ts[t].npy, n, ts[t].d,
                   ts[t].tsv, ts[t].lay.n, o->target[t], now_seconds() - t0);
    }
    ret = 0;
done:
    for (int t = 0; ts && t < o->ntarget; t++) {
        if (ts[t].w_open) npy_writer_abort(&ts[t].w);
        if (ret && ts[t].renamed) {
            remove(ts[t].npy);
            if (!c.selecting) remove(ts[t].tsv);
        }
        free_array(ts[t].rows);
    }
    free(ts);
    if (have_r) npy_close(&r);
    if (have_m) model_free(&m);
    npy_free(&sel);
    free_array(c.sel_local);
    free_array(c.acc);
    free_array(imgs);
    free_array(x);
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

int features_join(const char *out, char *const *inputs, int ninputs)
{
    char out_npy[640], out_tsv[640], tsv[640];
    npy_reader *rs = NULL;
    npy_writer w;
    int nopen = 0, w_open = 0, ret = -1;
    char *lay0 = NULL, *lay = NULL;
    size_t lay0_len = 0;
    void *buf = NULL;
    if (ninputs < 1) {
        set_error("join: no input files");
        return -1;
    }
    if (feat_out_paths(out, 0, 0, out_npy, out_tsv, sizeof out_npy)) return -1;
    if (!(rs = calloc((size_t)ninputs, sizeof *rs))) {
        set_error("out of memory");
        return -1;
    }
    size_t rows = 0;
    for (int i = 0; i < ninputs; i++) {
        if (npy_open(inputs[i], &rs[i])) goto done;
        nopen++;
        if (rs[i].ndim != 2) {
            set_error("%s: expected a feature matrix [n, D], got %d dims", inputs[i], rs[i].ndim);
            goto done;
        }
        if (i > 0 && (rs[i].shape[1] != rs[0].shape[1] || rs[i].file_dtype != rs[0].file_dtype)) {
            set_error("%s: [%zu, %zu] %s does not match %s: [%zu, %zu] %s", inputs[i], rs[i].shape[0],
                      rs[i].shape[1], npy_dtype_name(rs[i].file_dtype), inputs[0], rs[0].shape[0], rs[0].shape[1],
                      npy_dtype_name(rs[0].file_dtype));
            goto done;
        }
        if (size_add(rows, rs[i].shape[0], &rows)) goto done;
        /* layouts: all or none, and identical */
        size_t len = strlen(inputs[i]), l2 = 0;
        int err;
        if (len >= 4 && strcmp(inputs[i] + len - 4, ".npy") == 0 &&
            snprintf(tsv, sizeof tsv, "%.*s.layout.tsv", (int)(len - 4), inputs[i]) < (int)sizeof tsv)
            lay = slurp(tsv, &l2, &err);
        else
            lay = NULL, err = 0;
        if (err) goto done;
        if (i == 0) {
            lay0 = lay, lay0_len = l2, lay = NULL;
        } else if (!lay != !lay0 || (lay && (l2 != lay0_len || memcmp(lay, lay0, l2) != 0))) {
            set_error("%s: its layout file differs from that of %s (or one of them has none): shards of different "
                      "runs?", inputs[i], inputs[0]);
            goto done;
        }
        free(lay);
        lay = NULL;
    }
    if (lay0) { /* the layout must describe the columns */
        feat_layout fl;
        size_t len = strlen(inputs[0]);
        snprintf(tsv, sizeof tsv, "%.*s.layout.tsv", (int)(len - 4), inputs[0]);
        if (layout_read(tsv, &fl)) goto done;
        if (fl.d != rs[0].shape[1]) {
            set_error("%s describes %zu features but %s has %zu columns", tsv, fl.d, inputs[0], rs[0].shape[1]);
            goto done;
        }
    }
    const npy_dtype dt = rs[0].file_dtype;
    const size_t rc = rs[0].row_count > 0 ? rs[0].row_count : 1, es = npy_dtype_size(dt);
    size_t chunk = ((size_t)1 << 24) / (rc * es); /* ~16 MB per read */
    if (chunk < 1) chunk = 1;
    if (!(buf = alloc_array(chunk * rc, es))) goto done;
    size_t shape[2] = {rows, rs[0].shape[1]};
    if (npy_writer_open(&w, out_npy, dt, 2, shape)) goto done;
    w_open = 1;
    for (int i = 0; i < ninputs; i++)
        for (size_t r0 = 0; r0 < rs[i].shape[0]; r0 += chunk) {
            size_t nr = rs[i].shape[0] - r0 < chunk ? rs[i].shape[0] - r0 : chunk;
            if (npy_read_rows(&rs[i], r0, nr, dt, buf) || npy_writer_rows(&w, buf, nr)) goto done;
        }
    w_open = 0;
    if (npy_writer_close(&w)) goto done;
    if (lay0 && write_file_atomic(out_tsv, lay0, lay0_len)) {
        remove(out_npy);
        goto done;
    }
    printf("join: wrote %s [%zu, %zu] from %d files%s%s\n", out_npy, rows, rs[0].shape[1], ninputs,
           lay0 ? " and " : "", lay0 ? out_tsv : "");
    ret = 0;
done:
    if (w_open) npy_writer_abort(&w);
    for (int i = 0; i < nopen; i++) npy_close(&rs[i]);
    free(rs);
    free(lay0);
    free(lay);
    free_array(buf);
    return ret;
}
