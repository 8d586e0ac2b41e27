/* headio.c: the files of a fit. See headio.h. */
#include "headio.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "util.h"

#define PI 3.14159265358979323846

int labels_read(const char *path, size_t n, int **y, int *k)
{
    npy_array a;
    *y = NULL;
    if (npy_read(path, NPY_I64, &a)) return -1;
    if (a.ndim != 1 || a.count != n) {
        set_error("%s: expected labels of shape [%zu] (one per example), got %d dims, %zu values", path, n,
                  a.ndim, a.count);
        npy_free(&a);
        return -1;
    }
    const int64_t *v = a.data;
    int *out = alloc_array(n ? n : 1, sizeof(int));
    if (!out) {
        npy_free(&a);
        return -1;
    }
    int mx = -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 0 || v[i] >= 65536) {
            set_error("%s: label %lld at index %zu is outside [0, 65536)", path, (long long)v[i], i);
            free_array(out);
            npy_free(&a);
            return -1;
        }
        out[i] = (int)v[i];
        if (out[i] > mx) mx = out[i];
    }
    npy_free(&a);
    *y = out;
    *k = mx + 1;
    return 0;
}

int score_write(const char *dir, size_t d, const double *scores, const lasso_head *h, const lasso_opts *o,
                const double *losses)
{
    char path[700];
    if (make_dir(dir)) return -1;
    size_t shape[2] = {d, h ? (size_t)h->k : 0};
    snprintf(path, sizeof path, "%s/scores.npy", dir);
    if (npy_write(path, NPY_F64, 1, shape, scores)) return -1;
    if (!h) return 0;
    snprintf(path, sizeof path, "%s/W.npy", dir);
    if (npy_write(path, NPY_F32, 2, shape, h->w)) return -1;
    snprintf(path, sizeof path, "%s/b.npy", dir);
    if (npy_write(path, NPY_F32, 1, shape + 1, h->b)) return -1;
    textbuf t = {0};
    tb_printf(&t, "step\tlr\tloss\n");
    for (long i = 0; i < o->steps; i++)
        tb_printf(&t, "%ld\t%.9g\t%.9g\n", i, o->lr * 0.5 * (1.0 + cos(PI * (double)i / (double)o->steps)),
                  losses[i]);
    snprintf(path, sizeof path, "%s/loss.tsv", dir);
    return tb_write(&t, path);
}

int selection_read(const char *dir, const feat_layout *l, int64_t **sel, size_t *n)
{
    char path[700];
    npy_array a = {0};
    feat_layout *own = malloc(sizeof *own);
    int rc = -1;
    *sel = NULL, *n = 0;
    snprintf(path, sizeof path, "%s/layout.tsv", dir);
    if (!own || layout_read(path, own)) goto done;
    if (!layout_equal(own, l)) {
        set_error("--select-from %s: its layout.tsv describes other features than --layout (%d locations, D %zu "
                  "vs %d, D %zu)", dir, own->n, own->d, l->n, l->d);
        goto done;
    }
    snprintf(path, sizeof path, "%s/selected.npy", dir);
    if (npy_read(path, NPY_I64, &a)) goto done;
    const int64_t *s = a.data;
    int ok = a.ndim == 1 && a.count >= 1;
    for (size_t q = 0; ok && q < a.count; q++) ok = s[q] >= 0 && (size_t)s[q] < l->d && (q == 0 || s[q] > s[q - 1]);
    if (!ok) {
        set_error("%s: expected 1 or more strictly ascending feature indices below %zu (int64 [k])", path, l->d);
        goto done;
    }
    if ((*sel = alloc_array(a.count, sizeof **sel))) {
        memcpy(*sel, s, a.count * sizeof **sel);
        *n = a.count;
        rc = 0;
    }
done:
    npy_free(&a);
    free(own);
    return rc;
}

int fit_write(const char *dir, const cv_result *cv, const fitted_head *r, const fit_config *cfg,
              const feat_layout *l, size_t n, double seconds)
{
    char path[700];
    if (make_dir(dir)) return -1;
    size_t shape[2] = {r->nsel, (size_t)r->k};
    snprintf(path, sizeof path, "%s/selected.npy", dir);
    if (npy_write(path, NPY_I64, 1, shape, r->selected)) return -1;
    snprintf(path, sizeof path, "%s/W.npy", dir);
    if (npy_write(path, NPY_F32, 2, shape, r->w)) return -1;
    snprintf(path, sizeof path, "%s/b.npy", dir);
    if (npy_write(path, NPY_F32, 1, shape + 1, r->b)) return -1;
    if (l) {
        snprintf(path, sizeof path, "%s/layout.tsv", dir);
        if (layout_write(path, l)) return -1;
    }

    textbuf t = {0};
    tb_printf(&t, "lr\tsteps\tcoef\tfraction\tfeatures\tmean_acc\tstd_acc");
    for (int f = 0; f < CV_FOLDS; f++) tb_printf(&t, "\tacc_fold%d", f + 1);
    tb_printf(&t, "\n");
    for (int p = 0; p < cv->npoints; p++) {
        const grid_point *g = &cv->points[p];
        tb_printf(&t, "%g\t%ld\t%g\t%g\t%zu\t%.6f\t%.6f", g->lr, g->steps, g->coef, g->frac, g->features,
                  g->mean, g->std);
        for (int f = 0; f < CV_FOLDS; f++) tb_printf(&t, "\t%.6f", g->fold_acc[f]);
        tb_printf(&t, "\n");
    }
    snprintf(path, sizeof path, "%s/cv.tsv", dir);
    if (tb_write(&t, path)) return -1;

    const grid_point *bp = &cv->points[cv->best];
    fit_method m = cfg->method;
    tb_printf(&t, "{\n  \"method\": \"%s\",\n", method_names[m]);
    tb_printf(&t, "  \"examples\": %zu,\n  \"features\": %zu,\n  \"classes\": %d,\n", n, r->d, r->k);
    tb_printf(&t, "  \"seed\": %llu,\n  \"batch\": %d,\n", (unsigned long long)cfg->seed, cfg->batch);
    tb_printf(&t, "  \"train_fraction\": ");
    tb_json_num(&t, cfg->train_fraction > 0 ? cfg->train_fraction : 1.0);
    tb_printf(&t, ",\n  \"examples_used\": %zu,\n", r->examples);
    if (m == METHOD_HEAD2TOE) {
        tb_printf(&t, "  \"selection\": {\"score\": \"%s\", \"average_over\": %d, \"keep_offset\": %zu, "
                      "\"score_interpolation\": ", cfg->fixed_sel ? "given" : score_names[cfg->score],
                  cfg->average_over > 1 ? cfg->average_over : 1, cfg->keep_offset);
        tb_json_num(&t, cfg->interpolation);
        tb_printf(&t, "},\n");
    }
    tb_printf(&t, "  \"cross_validated\": %s,\n  \"folds\": %d,\n  \"grid_points\": %d,\n",
              cv->did_cv ? "true" : "false", cv->did_cv ? CV_FOLDS : 0, cv->npoints);
    tb_printf(&t, "  \"chosen\": {\"lr\": ");
    tb_json_num(&t, bp->lr);
    tb_printf(&t, ", \"steps\": %ld, \"coef\": ", bp->steps);
    tb_json_num(&t, m == METHOD_LINEAR ? NAN : bp->coef);
    tb_printf(&t, ", \"fraction\": ");
    tb_json_num(&t, m == METHOD_HEAD2TOE ? bp->frac : NAN);
    tb_printf(&t, "},\n  \"cv_mean_accuracy\": ");
    tb_json_num(&t, bp->mean);
    tb_printf(&t, ",\n  \"cv_std_accuracy\": ");
    tb_json_num(&t, bp->std);
    tb_printf(&t, ",\n  \"features_kept\": %zu,\n  \"features_per_location\": [", r->nsel);
    if (l) {
        size_t j = 0;
        for (int i = 0; i < l->n; i++) {
            size_t kept = 0, end = l->e[i].offset + l->e[i].dim;
            while (j < r->nsel && (size_t)r->selected[j] < end) j++, kept++;
            tb_printf(&t, "%s\n    {\"location\": \"%s\", \"dim\": %zu, \"kept\": %zu}", i ? "," : "",
                      l->e[i].name, l->e[i].dim, kept);
        }
        tb_printf(&t, "\n  ");
    }
    tb_printf(&t, "],\n  \"train_accuracy\": ");
    tb_json_num(&t, r->train_acc);
    tb_printf(&t, ",\n  \"seconds\": %.3f\n}\n", seconds);
    snprintf(path, sizeof path, "%s/report.json", dir);
    return tb_write(&t, path);
}

int head_read(const char *dir, fitted_head *h)
{
    char path[700];
    npy_array s = {0}, w = {0}, b = {0};
    memset(h, 0, sizeof *h);
    snprintf(path, sizeof path, "%s/selected.npy", dir);
    if (npy_read(path, NPY_I64, &s)) return -1;
    snprintf(path, sizeof path, "%s/W.npy", dir);
    if (npy_read(path, NPY_F32, &w)) goto fail;
    snprintf(path, sizeof path, "%s/b.npy", dir);
    if (npy_read(path, NPY_F32, &b)) goto fail;
    if (s.ndim != 1 || s.count < 1 || w.ndim != 2 || w.shape[0] != s.count || w.shape[1] < 1 ||
        w.shape[1] > 65536 || b.ndim != 1 || b.count != w.shape[1]) {
        set_error("%s: inconsistent head: selected.npy [n], W.npy [n, K] and b.npy [K] expected", dir);
        goto fail;
    }
    const int64_t *sel = s.data;
    for (size_t j = 0; j < s.count; j++)
        if (sel[j] < 0 || (j > 0 && sel[j] <= sel[j - 1])) {
            set_error("%s/selected.npy: indices must be >= 0 and strictly ascending (index %zu)", dir, j);
            goto fail;
        }
    h->nsel = s.count;
    h->k = (int)w.shape[1];
    h->selected = s.data;
    h->w = w.data;
    h->b = b.data;
    return 0;
fail:
    npy_free(&s);
    npy_free(&w);
    npy_free(&b);
    return -1;
}

/* Checks the feature file against the head: already selected, or all D
 * columns of layout l (then *gather = 1). */
static int eval_check(const char *path, const npy_reader *r, size_t m, const fitted_head *h, const feat_layout *l,
                      int *gather)
{
    const size_t c = r->ndim == 2 ? r->shape[1] : 0;
    if (r->ndim != 2 || r->shape[0] != m) {
        set_error("%s: expected features of shape [%zu, D] (one row per label)", path, m);
        return -1;
    }
    *gather = c != h->nsel;
    if (!*gather) return 0;
    if (!l) {
        set_error("%s: %zu columns but the head has %zu features: give the layout of all the features "
                  "(--layout) or the selected features only", path, c, h->nsel);
        return -1;
    }
    if (l->d != c || (size_t)h->selected[h->nsel - 1] >= c) {
        set_error("%s: %zu columns, but the layout describes %zu features (head indices up to %lld)", path, c,
                  l->d, (long long)h->selected[h->nsel - 1]);
        return -1;
    }
    return 0;
}

int eval_file(const char *path, const int *y, size_t m, const fitted_head *h, const feat_layout *l,
              size_t *correct, size_t *count)
{
    for (size_t i = 0; i < m; i++)
        if (y[i] < 0 || y[i] >= h->k) {
            set_error("label %d of example %zu is not a class of the head (K = %d)", y[i], i, h->k);
            return -1;
        }
    npy_reader r;
    if (npy_open(path, &r)) return -1;
    float *buf = NULL, *xs = NULL, *z = NULL;
    int *pred = NULL, gather, ret = -1;
    if (eval_check(path, &r, m, h, l, &gather)) goto done;
    const size_t c = r.shape[1];
    /* chunks of rows: at most 256, and at most 2^26 floats (256 MiB) of input */
    size_t chunk = ((size_t)1 << 26) / (c ? c : 1);
    chunk = chunk > 256 ? 256 : chunk < 1 ? 1 : chunk;
    if (!(buf = alloc_array(chunk * c, sizeof(float))) || !(z = alloc_array(chunk * (size_t)h->k, sizeof(float))) ||
        !(pred = alloc_array(chunk, sizeof(int))) || (gather && !(xs = alloc_array(chunk * h->nsel, sizeof(float)))))
        goto done;
    for (int i = 0; i < h->k; i++) correct[i] = count[i] = 0;
    for (size_t r0 = 0; r0 < m; r0 += chunk) {
        const size_t cn = m - r0 < chunk ? m - r0 : chunk;
        if (npy_read_rows(&r, r0, cn, NPY_F32, buf)) goto done;
        if (gather) lasso_gather(buf, cn, c, l, h->selected, h->nsel, xs);
        head_predict(h, gather ? xs : buf, cn, h->nsel, z, pred);
        tally(pred, y + r0, cn, correct, count);
    }
    ret = 0;
done:
    npy_close(&r);
    free_array(buf);
    free_array(xs);
    free_array(z);
    free_array(pred);
    return ret;
}

int eval_write(const char *path, const size_t *correct, const size_t *count, int k)
{
    size_t c = 0, m = 0;
    for (int i = 0; i < k; i++) c += correct[i], m += count[i];
    textbuf t = {0};
    tb_printf(&t, "{\n  \"accuracy\": ");
    tb_json_num(&t, m ? (double)c / (double)m : NAN);
    tb_printf(&t, ",\n  \"correct\": %zu,\n  \"examples\": %zu,\n  \"per_class\": [", c, m);
    for (int i = 0; i < k; i++) {
        tb_printf(&t, "%s\n    {\"class\": %d, \"accuracy\": ", i ? "," : "", i);
        tb_json_num(&t, count[i] ? (double)correct[i] / (double)count[i] : NAN);
        tb_printf(&t, ", \"correct\": %zu, \"count\": %zu}", correct[i], count[i]);
    }
    tb_printf(&t, "\n  ]\n}\n");
    return tb_write(&t, path);
}

/* ==========================================================================
 * Parts of the cross-validation (--grid-shard, --collect) */

void cv_part_rows(textbuf *rows, fit_method m, long target, const cv_result *r)
{
    for (int p = 0; p < r->npoints; p++) {
        const grid_point *g = &r->points[p];
        for (int f = 0; f < CV_FOLDS; f++)
            if (!isnan(g->fold_acc[f]))
                tb_printf(rows, "%s\t%ld\t%d\t%d\t%.17g\t%ld\t%.17g\t%.17g\t%.17g\n", method_names[m], target, p, f,
                          g->lr, g->steps, g->coef, g->frac, g->fold_acc[f]);
    }
}

void cv_part_grid(textbuf *grids, fit_method m, long target, const char *id)
{
    tb_printf(grids, "# grid %s T %ld: %s\n", method_names[m], target, id);
}

#define PART_HEADER "method\ttarget\tpoint\tfold\tlr\tsteps\tcoef\tfraction\taccuracy\n"

int cv_part_write(const char *dir, const cv_shard *s, textbuf *grids, textbuf *rows)
{
    char path[1024];
    textbuf t = {0};
    tb_printf(&t, "# h2t cross-validation part: shard %ld of %ld\n%s" PART_HEADER "%s", s->k, s->n,
              grids->s ? grids->s : "", rows->s ? rows->s : "");
    t.failed |= grids->failed || rows->failed;
    tb_free(grids);
    tb_free(rows);
    if ((size_t)snprintf(path, sizeof path, "%s/cv.part.%ld-of-%ld.tsv", dir, s->k, s->n) >= sizeof path) {
        tb_free(&t);
        set_error("%s: path too long", dir);
        return -1;
    }
    if (make_dir(dir)) {
        tb_free(&t);
        return -1;
    }
    return tb_write(&t, path);
}

/* One line of a part into *u. */
static int part_row(const char *path, int ln, char *line, cv_unit_result *u)
{
    char *f[9];
    int nf = 0;
    for (char *p = line; nf < 9; p = NULL) {
        char *tok = strtok(p, "\t");
        if (!tok) break;
        f[nf++] = tok;
    }
    long point, fold;
    if (nf == 9 && method_parse("method", f[0], strlen(f[0]), &u->method) == 0 && parse_long(f[1], &u->target) == 0 &&
        parse_long(f[2], &point) == 0 && parse_long(f[3], &fold) == 0 && parse_double(f[8], &u->acc) == 0 &&
        point >= 0 && point < 1000000 && fold >= 0 && fold < CV_FOLDS && u->acc >= 0 && u->acc <= 1) {
        u->point = (int)point, u->fold = (int)fold;
        return 0;
    }
    set_error("%s:%d: expected method, target, point, fold, lr, steps, coef, fraction, accuracy in [0, 1]", path, ln);
    return -1;
}

/* A part file: its first line must name shard k of n, its grid lines must
 * be `grids`; its rows are appended to rows[*n] (capacity *cap). */
static int part_read(const char *path, long k, long n, const char *grids, cv_unit_result **rows, size_t *nrows,
                     size_t *cap)
{
    FILE *f = fopen(path, "r");
    char line[2048], want[128];
    textbuf g = {0};
    int ln = 0, rc = -1;
    if (!f) {
        set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    snprintf(want, sizeof want, "# h2t cross-validation part: shard %ld of %ld\n", k, n);
    while (fgets(line, sizeof line, f)) {
        ln++;
        if (ln == 1 && strcmp(line, want) != 0) {
            set_error("%s:1: expected '%.*s'", path, (int)strlen(want) - 1, want);
            goto done;
        }
        if (ln == 1) continue;
        if (strncmp(line, "# grid ", 7) == 0) {
            tb_printf(&g, "%s", line);
            continue;
        }
        if (strcmp(line, PART_HEADER) == 0) {
            if (g.failed || strcmp(g.s ? g.s : "", grids) != 0) {
                set_error("%s: a part of another run (its grid, data sizes or seed differ from this one's)", path);
                goto done;
            }
            continue;
        }
        line[strcspn(line, "\r\n")] = 0;
        if (*nrows == *cap) {
            cv_unit_result *r2 = realloc(*rows, (*cap = *cap * 2 + 64) * sizeof **rows);
            if (!r2) {
                set_error("out of memory");
                goto done;
            }
            *rows = r2;
        }
        if (part_row(path, ln, line, &(*rows)[*nrows])) goto done;
        (*nrows)++;
    }
    rc = ferror(f) ? (set_error("%s: read error", path), -1) : 0;
done:
    tb_free(&g);
    fclose(f);
    return rc;
}

/* The parts in folder dir: *n (the split, shared by all), seen[k]. */
static int parts_in(const char *dir, const char *grids, long *split, unsigned char *seen, cv_unit_result **rows,
                    size_t *nrows, size_t *cap)
{
    DIR *d = opendir(dir);
    if (!d) {
        set_error("--collect %s: cannot list the folder: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    errno = 0;
    while (rc == 0 && (e = readdir(d))) {
        long k, n;
        char name[256], path[1400];
        if (sscanf(e->d_name, "cv.part.%ld-of-%ld.tsv", &k, &n) != 2) continue;
        snprintf(name, sizeof name, "cv.part.%ld-of-%ld.tsv", k, n);
        if (strcmp(name, e->d_name) != 0 || n < 1 || n > 100000 || k < 0 || k >= n) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (*split && n != *split) {
            set_error("%s: a part of a %ld-way split among parts of a %ld-way split", path, n, *split);
            rc = -1;
        } else if (seen[k]) {
            set_error("%s: shard %ld of %ld comes twice", path, k, n);
            rc = -1;
        } else {
            *split = n;
            seen[k] = 1;
            rc = part_read(path, k, n, grids, rows, nrows, cap);
        }
        errno = 0;
    }
    if (rc == 0 && errno != 0) rc = (set_error("--collect %s: cannot list the folder: %s", dir, strerror(errno)), -1);
    closedir(d);
    return rc;
}

int cv_parts_read(const char *dirs, const char *grids, cv_unit_result **rows, size_t *n)
{
    unsigned char *seen = calloc(100000, 1);
    size_t cap = 0;
    long split = 0;
    const char *it;
    size_t len;
    int rc = seen ? 0 : (set_error("out of memory"), -1);
    *rows = NULL, *n = 0;
    for (const char *p = dirs; rc == 0 && list_item(&p, &it, &len);) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%.*s", (int)len, it);
        rc = parts_in(dir, grids, &split, seen, rows, n, &cap);
    }
    if (rc == 0 && split == 0) rc = (set_error("--collect %s: no cv.part.K-of-N.tsv files there", dirs), -1);
    for (long k = 0; rc == 0 && k < split; k++)
        if (!seen[k]) rc = (set_error("--collect %s: shard %ld of %ld is missing", dirs, k, split), -1);
    free(seen);
    if (rc) {
        free(*rows);
        *rows = NULL, *n = 0;
    }
    return rc;
}
