/* pooling.c: the Head2Toe feature vector (docs/ALGORITHM.md §4, §5).
 *
 *   pooling         the plan of one location at target size T; pooling
 *                   one example (all features, or one feature by index)
 *   normalization   unit L2 norm per example and location; the same over
 *                   the selected features of each location
 *   layout          F.layout.tsv: make, write, read; --taps
 *
 * Numerics: a mean is a sum in double (positions in row-major order)
 * divided by the count in double, rounded once to float; a norm is a sum
 * of squares in double in index order. Every value depends only on its
 * own example, so results do not depend on the batch size, the shard or
 * the thread count. */
#include "pooling.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ==========================================================================
 * Pooling (docs/ALGORITHM.md §4) */

/* A conv map [H, H, C]: C >= T -> global mean; else n = (int) sqrt(T / C)
 * with integer division first, p = H / n; p == 0 -> global mean. */
static void plan_conv(long H, long C, long T, pool_plan *p)
{
    long pw = 0;
    if (C < T) {
        const long n = (long)sqrt((double)(T / C)); /* integer division first, then truncate */
        pw = H / n;
    }
    p->pool = (int)pw;
    p->grid = pw == 0 ? 1 : (int)(H / pw);          /* 'valid': trailing rows/cols dropped */
    p->dim = (size_t)p->grid * (size_t)p->grid * (size_t)C;
}

/* A token map [Tk, C]: C >= T -> mean over tokens; else groups = T / C in
 * floating point, p = (int)(Tk / groups); p == 0 -> mean over tokens. */
static void plan_tokens(long Tk, long C, long T, pool_plan *p)
{
    long pw = 0;
    if (C < T) {
        const double groups = (double)T / (double)C; /* float division here */
        pw = (long)((double)Tk / groups);
    }
    p->pool = (int)pw;
    p->grid = pw == 0 ? 1 : (int)(Tk / pw);
    p->dim = (size_t)p->grid * (size_t)C;
}

const char *const cls_mode_names[] = {"normal", "only-cls", "original+cls", NULL};

int pool_plan_make(const location *l, long T, pool_plan *p) { return pool_plan_cls(l, T, CLS_NORMAL, p); }

int pool_plan_cls(const location *l, long T, cls_mode cls, pool_plan *p)
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
        p->dim = (size_t)C;
    } else if (l->rank == 2 && cls == CLS_ONLY) { /* the class token alone */
        p->pool = -1;
        p->cls = cls;
        p->dim = (size_t)C;
    } else if (l->rank == 2 && cls == CLS_SEPARATE && l->dims[0] > 1) { /* class token + the others pooled */
        plan_tokens(l->dims[0] - 1, C, T, p);
        p->cls = cls;
        p->dim += (size_t)C;
    } else if (l->rank == 2) {
        plan_tokens(l->dims[0], C, T, p);
    } else if (l->dims[1] != l->dims[0]) {
        set_error("location %s: conv map %dx%d is not square (docs/ALGORITHM.md §4 pools square maps)", l->name,
                  l->dims[0], l->dims[1]);
        return -1;
    } else {
        plan_conv(l->dims[0], C, T, p);
    }
    return 0;
}

/* The window of output cell `cell` (row-major over the grid): its first
 * position (row, col) and side lengths in positions. A token map is a
 * conv map [Tk, 1, C]; a global mean is one window over the whole map
 * (original+cls: the windows start after the class token). */
static void window_of(const location *l, const pool_plan *p, size_t cell, int *r0, int *c0, int *nr, int *nc)
{
    const int skip = p->cls == CLS_SEPARATE, H = l->dims[0] - skip, W = l->rank == 3 ? l->dims[1] : 1;
    if (p->pool == 0) {
        *r0 = skip, *c0 = 0;
        *nr = H;
        *nc = W;
    } else if (l->rank == 3) {
        *r0 = (int)(cell / (size_t)p->grid) * p->pool;
        *c0 = (int)(cell % (size_t)p->grid) * p->pool;
        *nr = *nc = p->pool;
    } else {
        *r0 = skip + (int)cell * p->pool;
        *c0 = 0;
        *nr = p->pool;
        *nc = 1;
    }
}

void pool_example(const location *l, const pool_plan *p, const float *x, float *y, double *acc)
{
    const int C = l->dims[l->rank - 1];
    if (p->pool < 0) {                       /* vector, or a class token alone (token 0) */
        memcpy(y, x, (size_t)C * sizeof *y);
        return;
    }
    if (p->cls == CLS_SEPARATE) {            /* the class token first, as it is */
        memcpy(y, x, (size_t)C * sizeof *y);
        y += C;
    }
    const int W = l->rank == 3 ? l->dims[1] : 1;
    const size_t cells = (p->dim - (p->cls == CLS_SEPARATE ? (size_t)C : 0)) / (size_t)C;
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
    if (p->cls == CLS_SEPARATE) {
        if (j < (size_t)C) return x[j];      /* the class token */
        j -= (size_t)C;
    }
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
 * Normalization (docs/ALGORITHM.md §5) */

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

/* The pooled shape of entry k for the layout file: "2x2x256", "21x768",
 * a class token alone "768", a class token and pooled tokens "cls+21x768". */
static void pooled_str(const location *lc, const pool_plan *p, char *s, size_t cap)
{
    int pd[3], C = lc->dims[lc->rank - 1];
    if (lc->rank == 1 || p->pool < 0) {
        shape_str(s, cap, 1, &C);
    } else if (lc->rank == 2) {
        pd[0] = p->grid, pd[1] = C;
        const int k = p->cls == CLS_SEPARATE ? snprintf(s, cap, "cls+") : 0;
        shape_str(s + k, cap - (size_t)k, 2, pd);
    } else {
        pd[0] = pd[1] = p->grid, pd[2] = C;
        shape_str(s, cap, 3, pd);
    }
}

int layout_make(const model *m, const int *use, long T, cls_mode cls, feat_layout *l)
{
    memset(l, 0, sizeof *l);
    int tokens = 0;
    for (int i = 0; i < m->nloc; i++) tokens += use[i] && m->loc[i].rank == 2;
    if (cls != CLS_NORMAL && !tokens) {
        set_error("--cls %s: none of the locations is a token map (a ViT's), so there is no class token",
                  cls_mode_names[cls]);
        return -1;
    }
    for (int i = 0; i < m->nloc; i++) {
        if (!use[i]) continue;
        const location *lc = &m->loc[i];
        int k = l->n;
        if (pool_plan_cls(lc, T, cls, &l->plan[k])) return -1;
        layout_entry *e = &l->e[k];
        snprintf(e->name, sizeof e->name, "%s", lc->name);
        e->offset = l->d;
        e->dim = l->plan[k].dim;
        e->pool = l->plan[k].pool;
        shape_str(e->shape, sizeof e->shape, lc->rank, lc->dims);
        pooled_str(lc, &l->plan[k], e->pooled, sizeof e->pooled);
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

int layout_bind(const model *m, long T, cls_mode cls, const char *path, feat_layout *l)
{
    int prev = -1;
    for (int e = 0; e < l->n; e++) {
        const layout_entry *le = &l->e[e];
        const int i = model_find_location(m, le->name);
        if (i < 0) {
            set_error("%s: location '%s' is not in the model in %s", path, le->name, m->dir);
            return -1;
        }
        if (i <= prev) {
            set_error("%s: location '%s' is out of depth order", path, le->name);
            return -1;
        }
        prev = i;
        pool_plan *p = &l->plan[e];
        if (pool_plan_cls(&m->loc[i], T, cls, p)) return -1;
        if (p->dim != le->dim || p->pool != le->pool) {
            set_error("%s: location '%s' has dim %zu pool %d, but the model in %s at target size %ld gives dim %zu "
                      "pool %d (a layout of another model, --target-size or --cls?)", path, le->name, le->dim,
                      le->pool, m->dir, T, p->dim, p->pool);
            return -1;
        }
        l->loc[e] = i;
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

/* One line "location offset dim pool [shape pooled]" of a layout file into
 * the next entry of l (line is modified). */
static int layout_line(const char *path, int lineno, char *line, feat_layout *l)
{
    char *field[7];
    int nf = 0;
    for (char *p = line; *p && nf < 7;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        field[nf++] = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        if (*p) *p++ = 0;
    }
    if (nf == 0) return 0;
    if (nf < 4 || nf > 6) {
        set_error("%s:%d: expected 4 to 6 fields (location offset dim pool [shape pooled]), found %d", path,
                  lineno, nf);
        return -1;
    }
    if (l->n == MODEL_MAX_LOCATIONS) {
        set_error("%s:%d: more than %d locations", path, lineno, MODEL_MAX_LOCATIONS);
        return -1;
    }
    layout_entry *e = &l->e[l->n];
    long off, dim, pool;
    if (strlen(field[0]) >= sizeof e->name) {
        set_error("%s:%d: location name longer than %zu characters", path, lineno, sizeof e->name - 1);
        return -1;
    }
    if (parse_long(field[1], &off) || parse_long(field[2], &dim) || parse_long(field[3], &pool) || off < 0 ||
        dim < 1 || pool < -1 || pool > 1000000) {
        set_error("%s:%d: expected offset >= 0, dim >= 1, pool >= -1 (integers), got '%s %s %s'", path, lineno,
                  field[1], field[2], field[3]);
        return -1;
    }
    if ((size_t)off != l->d) {
        set_error("%s:%d: offset %ld of '%s' should be %zu (offsets are contiguous from 0)", path, lineno, off,
                  field[0], l->d);
        return -1;
    }
    if (layout_find(l, field[0]) >= 0) {
        set_error("%s:%d: location '%s' appears twice", path, lineno, field[0]);
        return -1;
    }
    for (int k = 4; k < nf; k++)
        if (strlen(field[k]) >= LAYOUT_SHAPE_MAX) {
            set_error("%s:%d: shape field '%s' too long", path, lineno, field[k]);
            return -1;
        }
    strcpy(e->name, field[0]);
    e->offset = (size_t)off;
    e->dim = (size_t)dim;
    e->pool = (int)pool;
    if (nf > 4) strcpy(e->shape, field[4]);
    if (nf > 5) strcpy(e->pooled, field[5]);
    l->loc[l->n] = -1;
    if (size_add(l->d, (size_t)dim, &l->d)) return -1;
    l->n++;
    return 0;
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
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        lineno++;
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            set_error("%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (lineno > 1) rc = layout_line(path, lineno, line, l);
        else if (strncmp(line, "location", 8) != 0) {
            set_error("%s:1: expected the header line 'location offset dim pool ...'", path);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        set_error("%s: read error", path);
        rc = -1;
    }
    if (rc == 0 && l->n == 0) {
        set_error("%s: no locations (expected a header line, then: location offset dim pool)", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

int taps_parse(const model *m, const char *taps, int *use)
{
    const int all = taps && strcmp(taps, "all") == 0;
    for (int i = 0; i < m->nloc; i++) use[i] = taps == NULL ? m->loc[i].is_default : all;
    if (taps == NULL || all) return 0;
    const char *it;
    size_t len;
    for (const char *p = taps; list_item(&p, &it, &len);) {
        char name[LOCATION_NAME_MAX];
        int i = -1;
        if (len > 0 && len < sizeof name) {
            memcpy(name, it, len);
            name[len] = 0;
            i = model_find_location(m, name);
        }
        if (i < 0) {
            set_error("--taps: '%.*s' is not a location of %s (first %s, last %s; 'all' takes every one)", (int)len,
                      it, m->dir, m->loc[0].name, m->loc[m->nloc - 1].name);
            return -1;
        }
        use[i] = 1;
    }
    return 0;
}

int tap_fraction_parse(const char *s, long *every)
{
    long k = 1;
    const int ok = strcmp(s, "1") == 0 || (strncmp(s, "1/", 2) == 0 && !parse_long(s + 2, &k) && k >= 1);
    if (!ok) {
        set_error("--tap-fraction: expected 1 or 1/k (k a whole number >= 1, e.g. 1/4, 1/16), got '%s'", s);
        return -1;
    }
    *every = k;
    return 0;
}

void taps_thin(const model *m, long every, int *use)
{
    long pos = 0;
    for (int i = 0; i < m->nloc; i++) {
        if (!use[i] || strcmp(m->loc[i].name, "pre_logits") == 0) continue;
        use[i] = pos % every == 0;
        pos++;
    }
}

int layout_location_of(const feat_layout *l, size_t j)
{
    if (j >= l->d) return -1;
    int lo = 0, hi = l->n - 1; /* the last location with offset <= j */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->e[mid].offset <= j) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int layout_find(const feat_layout *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->e[i].name, name) == 0) return i;
    return -1;
}

int layout_equal(const feat_layout *a, const feat_layout *b)
{
    if (a->n != b->n || a->d != b->d) return 0;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->e[i].name, b->e[i].name) != 0 || a->e[i].offset != b->e[i].offset || a->e[i].dim != b->e[i].dim)
            return 0;
    return 1;
}

void renormalize_selected(float *row, const int64_t *sel, size_t nsel, const feat_layout *l)
{
    /* sel is ascending, so each location's selected features are one run */
    for (size_t j = 0; j < nsel;) {
        const int e = layout_location_of(l, (size_t)sel[j]);
        const size_t end = l->e[e].offset + l->e[e].dim;
        size_t j1 = j;
        while (j1 < nsel && (size_t)sel[j1] < end) j1++;
        l2_normalize(row + j, j1 - j);
        j = j1;
    }
}

void layout_count(const feat_layout *l, const int64_t *sel, size_t nsel, size_t *count)
{
    for (int e = 0; e < l->n; e++) count[e] = 0;
    for (size_t j = 0; j < nsel; j++) {
        const int e = layout_location_of(l, (size_t)sel[j]);
        if (e >= 0) count[e]++;
    }
}
