/* run.c: a whole task end to end (`h2t run`) and the bundled demo
 * (`h2t demo`). See run.h. Sections:
 *   small helpers   paths, directories, comma lists, JSON strings
 *   run_task        features -> fit per method and T -> test features ->
 *                   test accuracy
 *   report, figures report.json, locations.svg, validation.svg
 *   demo            demo.cfg + tasks.tsv -> run_task per task -> table,
 *                   JSON report, summary figures
 * Nothing numerical happens here: features.c pools, lasso.c fits,
 * svg.c draws. */
#include "run.h"

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

#include "npy.h"
#include "svg.h"
#include "util.h"

#define PATH_CAP 1024

/* ==========================================================================
 * Small helpers */

/* out = a "/" b; -1 if it does not fit. */
static int join_path(char *out, size_t cap, const char *a, const char *b)
{
    if ((size_t)snprintf(out, cap, "%s/%s", a, b) >= cap) {
        set_error("path too long: %s/%s", a, b);
        return -1;
    }
    return 0;
}

/* A JSON string literal. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A JSON number, or null when not finite. */
static void json_num(FILE *f, double x)
{
    if (isfinite(x)) fprintf(f, "%.10g", x);
    else fputs("null", f);
}

/* Open path's temporary twin for writing; run_close renames it. */
static FILE *tmp_open(const char *path, char *tmp, size_t cap)
{
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) set_error("%s: cannot create: %s", path, strerror(errno));
    return f;
}

static int tmp_close(FILE *f, const char *tmp, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad || replace_file(tmp, path) != 0) {
        set_error("%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

void run_default_coefs(lasso_method m, lasso_fit_config *g)
{
    if (m == METHOD_HEAD2TOE || m == METHOD_LINEAR) {
        g->ncoef = 2;
        g->coef[0] = 1e-3;
        g->coef[1] = 1e-5;
    } else {
        g->ncoef = 3;
        g->coef[0] = 1e-5;
        g->coef[1] = 1e-4;
        g->coef[2] = 1e-3;
    }
}

/* Colour group of a location for the bar chart: the ResNet block or a
 * third of the ViT's depth; 0 for the stem, 5 for the head. */
static int location_group(const char *name)
{
    int i;
    if (sscanf(name, "block%d", &i) == 1) return i;
    if (sscanf(name, "encoder_%d", &i) == 1) return 1 + i / 3;
    if (strcmp(name, "after_root") == 0 || strncmp(name, "root", 4) == 0 ||
        strcmp(name, "position_embedded_input") == 0)
        return 0;
    return 5;
}

/* ==========================================================================
 * Figures of one method */

static int method_figures(const char *dir, const run_opts *o, const run_method_result *mr)
{
    char path[PATH_CAP], title[256];
    const char *labels[MODEL_MAX_LOCATIONS];
    double share[MODEL_MAX_LOCATIONS];
    int group[MODEL_MAX_LOCATIONS];
    for (int i = 0; i < mr->nloc; i++) {
        labels[i] = mr->loc_name[i];
        share[i] = mr->nsel ? 100.0 * (double)mr->loc_kept[i] / (double)mr->nsel : 0;
        group[i] = location_group(mr->loc_name[i]);
    }
    snprintf(title, sizeof title, "%s: where the %zu selected features come from (T %ld, F %g)",
             o->task ? o->task : "", mr->nsel, mr->target, mr->chosen.frac);
    svg_chart c = {title, "location (depth order; a colour per stage: stem, blocks, head)",
                   "share of selected features", 0, NAN, "%g%%"};
    if (join_path(path, sizeof path, dir, "locations.svg") ||
        svg_bars(path, &c, mr->nloc, labels, 1, NULL, share, group))
        return -1;
    if (mr->ncurve < 1) return 0;

    svg_series s[FEAT_MAX_TARGETS];
    char names[FEAT_MAX_TARGETS][96];
    double y[FEAT_MAX_TARGETS][LASSO_GRID_MAX], e[FEAT_MAX_TARGETS][LASSO_GRID_MAX];
    for (int t = 0; t < mr->ncurve; t++) {
        snprintf(names[t], sizeof names[t], "T %ld (lr %g, steps %ld, coef %g)", mr->curve_target[t],
                 mr->curve_lr[t], mr->curve_steps[t], mr->curve_coef[t]);
        for (int f = 0; f < mr->nfrac; f++) {
            y[t][f] = 100 * mr->curve_mean[t][f];
            e[t][f] = 100 * mr->curve_std[t][f];
        }
        s[t] = (svg_series){names[t], mr->nfrac, mr->frac, y[t], e[t]};
    }
    snprintf(title, sizeof title, "%s: 5-fold validation accuracy against F", o->task ? o->task : "");
    svg_chart c2 = {title, "fraction of features kept (F)", "validation accuracy (%)", NAN, NAN, NULL};
    if (join_path(path, sizeof path, dir, "validation.svg") ||
        svg_lines(path, &c2, 1, mr->ncurve, s, mr->chosen.frac, 100 * mr->chosen.mean))
        return -1;
    return 0;
}

/* ==========================================================================
 * run_task */

/* Fit one method on the training features of every T it needs; keep the T
 * with the best mean validation accuracy (ties: the earlier T). */
static int fit_method(const run_opts *o, run_result *r, lasso_method method, const lasso_fit_config *grid,
                      const int *y, int k,
                      const char (*npy)[PATH_CAP], const char (*tsv)[PATH_CAP], run_method_result *mr,
                      lasso_fit_result *best, feat_layout *best_layout, int *best_t, lasso_fit_config *cfg)
{
    int nt = method == METHOD_LINEAR ? 1 : o->ntarget;   /* pre_logits is the same at every T */
    static feat_layout lay;
    *cfg = *grid;
    cfg->method = method;
    if (cfg->ncoef == 0) run_default_coefs(method, cfg);
    if (nt > 1) cfg->force_cv = 1;
    memset(best, 0, sizeof *best);
    *best_t = -1;
    mr->method = method;
    mr->ncurve = 0;
    double t0 = now_seconds();
    for (int t = 0; t < nt; t++) {
        npy_array a;
        if (layout_read(tsv[t], &lay)) return -1;
        if (npy_read(npy[t], NPY_F32, &a)) return -1;
        if (a.ndim != 2 || a.shape[0] != r->n_train || a.shape[1] != lay.d) {
            set_error("%s: expected [%zu, %zu] features", npy[t], r->n_train, lay.d);
            npy_free(&a);
            return -1;
        }
        lasso_data X = {a.data, a.shape[0], a.shape[1], a.shape[1], y, k};
        lasso_fit_result res;
        if (!grid->quiet)
            fprintf(stderr, "run: %s at T %ld (D %zu)\n", lasso_method_names[method], o->target[t], lay.d);
        int rc = lasso_fit(&X, &lay, cfg, &res);
        npy_free(&a);
        if (rc) return -1;
        /* the curve over F at this T's best (lr, steps, coef) */
        if (method == METHOD_HEAD2TOE && res.did_cv) {
            int nf = cfg->nfrac, g0 = res.best / nf * nf, c = mr->ncurve++;
            mr->nfrac = nf;
            mr->curve_target[c] = o->target[t];
            mr->curve_lr[c] = res.points[g0].lr;
            mr->curve_steps[c] = res.points[g0].steps;
            mr->curve_coef[c] = res.points[g0].coef;
            for (int f = 0; f < nf; f++) {
                mr->frac[f] = res.points[g0 + f].frac;
                mr->curve_mean[c][f] = res.points[g0 + f].mean;
                mr->curve_std[c][f] = res.points[g0 + f].std;
            }
        }
        if (*best_t < 0 || res.points[res.best].mean > best->points[best->best].mean) {
            lasso_fit_result_free(best);
            *best = res;
            *best_layout = lay;
            *best_t = t;
        } else {
            lasso_fit_result_free(&res);
        }
    }
    mr->t_fit = now_seconds() - t0;
    return 0;
}

int run_task(const run_opts *o, run_result *r)
{
    memset(r, 0, sizeof *r);
    double t_start = now_seconds();
    int ret = -1, *ytr = NULL, *yte = NULL, several = o->ntarget > 1;
    char (*npy)[PATH_CAP] = calloc(FEAT_MAX_TARGETS, PATH_CAP);
    char (*tsv)[PATH_CAP] = calloc(FEAT_MAX_TARGETS, PATH_CAP);
    size_t *correct = NULL, *count = NULL;
    lasso_fit_result best = {0};
    static feat_layout best_layout;
    if (!npy || !tsv) {
        set_error("out of memory");
        goto done;
    }
    if (o->ntarget < 1 || o->ntarget > FEAT_MAX_TARGETS || o->nmethods < 1 || o->nmethods > RUN_MAX_METHODS) {
        set_error("need 1 to %d target sizes and 1 to %d methods", FEAT_MAX_TARGETS, RUN_MAX_METHODS);
        goto done;
    }
    /* ---- labels (their counts must match the images), before anything is written */
    npy_reader rd;
    if (npy_open(o->train_images, &rd)) goto done;
    r->n_train = rd.shape[0];
    npy_close(&rd);
    if (npy_open(o->test_images, &rd)) goto done;
    r->n_test = rd.shape[0];
    npy_close(&rd);
    int ktr, kte;
    if (lasso_read_labels(o->train_labels, r->n_train, &ytr, &ktr) ||
        lasso_read_labels(o->test_labels, r->n_test, &yte, &kte))
        goto done;
    r->k = ktr > kte ? ktr : kte;
    if (make_dir(o->out)) goto done;

    /* ---- training features at every T: one backbone pass */
    char base[PATH_CAP];
    if (join_path(base, sizeof base, o->out, "train_features.npy")) goto done;
    for (int t = 0; t < o->ntarget; t++)
        if (feat_out_paths(base, o->target[t], several, npy[t], tsv[t], PATH_CAP)) goto done;
    feat_opts fo = {0};
    fo.model_dir = o->model_dir;
    fo.images = o->train_images;
    fo.out = base;
    memcpy(fo.target, o->target, sizeof fo.target);
    fo.ntarget = o->ntarget;
    fo.batch = o->image_batch;
    fo.taps = o->taps;
    fo.shard_k = 0;
    fo.shard_n = 1;
    fo.quiet = o->grid[0].quiet;
    double t0 = now_seconds();
    if (features_run(&fo)) goto done;
    r->t_train_features = now_seconds() - t0;

    /* ---- each method: fit, test features of the selected, accuracy */
    for (int mi = 0; mi < o->nmethods; mi++) {
        run_method_result *mr = &r->m[mi];
        lasso_fit_config cfg;
        int bt;
        if (fit_method(o, r, o->methods[mi], &o->grid[mi], ytr, r->k, (const char(*)[PATH_CAP])npy,
                       (const char(*)[PATH_CAP])tsv, mr, &best, &best_layout, &bt, &cfg))
            goto done;
        for (int t = 0; t < o->ntarget; t++) {
            static feat_layout l2;
            if (layout_read(tsv[t], &l2)) goto done;
            r->d[t] = l2.d;
        }
        mr->target = o->target[bt];
        mr->d = best.d;
        mr->chosen = best.points[best.best];
        mr->did_cv = best.did_cv;
        mr->nsel = best.nsel;
        mr->k = best.k;
        mr->train_acc = best.train_acc;

        char mdir[PATH_CAP], sel[PATH_CAP], tf[PATH_CAP], tj[PATH_CAP];
        if (join_path(mdir, sizeof mdir, o->out, lasso_method_names[o->methods[mi]]) ||
            join_path(sel, sizeof sel, mdir, "selected.npy") || join_path(tf, sizeof tf, mdir, "test_features.npy") ||
            join_path(tj, sizeof tj, mdir, "test.json"))
            goto done;
        if (lasso_write_fit(mdir, &best, &cfg, &best_layout, r->n_train)) goto done;

        /* test features: the selected ones only, renormalized per location */
        feat_opts ft = fo;
        ft.images = o->test_images;
        ft.out = tf;
        ft.target[0] = mr->target;
        ft.ntarget = 1;
        ft.select = sel;
        ft.layout = tsv[bt];
        t0 = now_seconds();
        if (features_run(&ft)) goto done;
        mr->t_test_features = now_seconds() - t0;

        t0 = now_seconds();
        lasso_saved_head h = {best.nsel, best.k, best.selected, best.w, best.b};
        correct = calloc((size_t)r->k, sizeof *correct);
        count = calloc((size_t)r->k, sizeof *count);
        if (!correct || !count) {
            set_error("out of memory");
            goto done;
        }
        if (lasso_eval_file(tf, yte, r->n_test, &h, &best_layout, correct, count) ||
            lasso_write_eval(tj, correct, count, r->k))
            goto done;
        for (int c = 0; c < r->k; c++) mr->test_correct += correct[c], mr->test_n += count[c];
        mr->test_acc = mr->test_n ? (double)mr->test_correct / (double)mr->test_n : NAN;
        free(correct);
        free(count);
        correct = count = NULL;
        mr->t_eval = now_seconds() - t0;

        /* features kept per location */
        mr->nloc = best_layout.n;
        for (int i = 0; i < best_layout.n; i++) {
            snprintf(mr->loc_name[i], LOCATION_NAME_MAX, "%s", best_layout.e[i].name);
            mr->loc_dim[i] = best_layout.e[i].dim;
            mr->loc_kept[i] = 0;
        }
        for (size_t j = 0; j < best.nsel; j++) {
            int loc = lasso_location_of(&best_layout, (size_t)best.selected[j]);
            if (loc >= 0) mr->loc_kept[loc]++;
        }
        lasso_fit_result_free(&best);
        if (o->figures && o->methods[mi] == METHOD_HEAD2TOE && method_figures(mdir, o, mr)) goto done;
        if (!o->grid[0].quiet) {
            char val[32] = "- (one grid point, no CV)";
            if (mr->did_cv) snprintf(val, sizeof val, "%.4f", mr->chosen.mean);
            fprintf(stderr, "run: %s: T %ld, %zu features, validation %s, test %.4f\n",
                    lasso_method_names[o->methods[mi]], mr->target, mr->nsel, val, mr->test_acc);
        }
    }
    r->t_total = now_seconds() - t_start;
    char rep[PATH_CAP];
    if (join_path(rep, sizeof rep, o->out, "report.json") || run_write_report(rep, o, r)) goto done;
    ret = 0;
done:
    if (!o->keep_features && npy && tsv)
        for (int t = 0; t < o->ntarget; t++) {
            if (npy[t][0]) remove(npy[t]);
            if (tsv[t][0]) remove(tsv[t]);
        }
    lasso_fit_result_free(&best);
    free(correct);
    free(count);
    free_array(ytr);
    free_array(yte);
    free(npy);
    free(tsv);
    return ret;
}

/* ==========================================================================
 * report.json */

static void json_method(FILE *f, const run_method_result *mr)
{
    const lasso_grid_point *g = &mr->chosen;
    fprintf(f, "    {\"method\": ");
    json_str(f, lasso_method_names[mr->method]);
    fprintf(f, ", \"target_size\": %ld, \"features_total\": %zu, \"features\": %zu,\n", mr->target, mr->d, mr->nsel);
    fprintf(f, "     \"lr\": ");
    json_num(f, g->lr);
    fprintf(f, ", \"steps\": %ld, \"coef\": ", g->steps);
    json_num(f, mr->method == METHOD_LINEAR ? NAN : g->coef);
    fprintf(f, ", \"fraction\": ");
    json_num(f, mr->method == METHOD_HEAD2TOE ? g->frac : NAN);
    fprintf(f, ",\n     \"cross_validated\": %s, \"validation_accuracy\": ", mr->did_cv ? "true" : "false");
    json_num(f, g->mean);
    fprintf(f, ", \"validation_std\": ");
    json_num(f, g->std);
    fprintf(f, ", \"train_accuracy\": ");
    json_num(f, mr->train_acc);
    fprintf(f, ", \"test_accuracy\": ");
    json_num(f, mr->test_acc);
    fprintf(f, ", \"test_correct\": %zu, \"test_examples\": %zu,\n", mr->test_correct, mr->test_n);
    fprintf(f, "     \"seconds\": {\"fit\": %.3f, \"test_features\": %.3f, \"eval\": %.3f},\n", mr->t_fit,
            mr->t_test_features, mr->t_eval);
    fprintf(f, "     \"locations\": [");
    int first = 1;
    for (int i = 0; i < mr->nloc; i++) {
        if (!mr->loc_kept[i] && mr->method != METHOD_HEAD2TOE) continue;
        fprintf(f, "%s\n       {\"name\": ", first ? "" : ",");
        json_str(f, mr->loc_name[i]);
        fprintf(f, ", \"dim\": %zu, \"kept\": %zu}", mr->loc_dim[i], mr->loc_kept[i]);
        first = 0;
    }
    fprintf(f, "]");
    if (mr->ncurve > 0) {
        fprintf(f, ",\n     \"validation_curves\": [");
        for (int c = 0; c < mr->ncurve; c++) {
            fprintf(f, "%s\n       {\"target_size\": %ld, \"lr\": ", c ? "," : "", mr->curve_target[c]);
            json_num(f, mr->curve_lr[c]);
            fprintf(f, ", \"steps\": %ld, \"coef\": ", mr->curve_steps[c]);
            json_num(f, mr->curve_coef[c]);
            fprintf(f, ", \"fraction\": [");
            for (int i = 0; i < mr->nfrac; i++) fprintf(f, "%s%g", i ? ", " : "", mr->frac[i]);
            fprintf(f, "], \"mean\": [");
            for (int i = 0; i < mr->nfrac; i++) fprintf(f, "%s", i ? ", " : ""), json_num(f, mr->curve_mean[c][i]);
            fprintf(f, "], \"std\": [");
            for (int i = 0; i < mr->nfrac; i++) fprintf(f, "%s", i ? ", " : ""), json_num(f, mr->curve_std[c][i]);
            fprintf(f, "]}");
        }
        fprintf(f, "]");
    }
    fprintf(f, "}");
}

int run_write_report(const char *path, const run_opts *o, const run_result *r)
{
    char tmp[PATH_CAP + 32];
    FILE *f = tmp_open(path, tmp, sizeof tmp);
    if (!f) return -1;
    fprintf(f, "{\"task\": ");
    json_str(f, o->task);
    fprintf(f, ",\n \"backbone\": ");
    json_str(f, o->model_dir);
    fprintf(f, ", \"taps\": ");
    json_str(f, o->taps ? o->taps : "default");
    fprintf(f, ",\n \"train_images\": ");
    json_str(f, o->train_images);
    fprintf(f, ", \"test_images\": ");
    json_str(f, o->test_images);
    fprintf(f, ",\n \"train_examples\": %zu, \"test_examples\": %zu, \"classes\": %d, \"seed\": %llu,\n",
            r->n_train, r->n_test, r->k, (unsigned long long)o->grid[0].seed);
    fprintf(f, " \"target_sizes\": [");
    for (int t = 0; t < o->ntarget; t++) fprintf(f, "%s{\"T\": %ld, \"D\": %zu}", t ? ", " : "", o->target[t], r->d[t]);
    fprintf(f, "],\n \"methods\": [\n");
    for (int i = 0; i < o->nmethods; i++) {
        json_method(f, &r->m[i]);
        fprintf(f, "%s\n", i + 1 < o->nmethods ? "," : "");
    }
    fprintf(f, " ],\n \"seconds\": {\"train_features\": %.3f, \"total\": %.3f}}\n", r->t_train_features, r->t_total);
    return tmp_close(f, tmp, path);
}

/* ==========================================================================
 * The demo: demo.cfg names the backbone, the task list and the grid. */

#define DEMO_MAX_TASKS 16

typedef struct {
    char name[64];
    int ood, classes;
    char desc[160];
} demo_task;

static int read_tasks(const char *path, demo_task *t, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int ln = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == '#' || line[0] == 0) continue;
        char name[64] = "";
        int ood, k, used = 0;
        if (sscanf(line, "%63[^\t]\t%d\t%d\t%n", name, &ood, &k, &used) != 3 || used == 0 || (ood != 0 && ood != 1) ||
            k < 2 || strchr(name, '/') || *n >= DEMO_MAX_TASKS) {
            set_error("%s:%d: expected 'name<TAB>ood (0|1)<TAB>classes<TAB>description' (at most %d tasks)", path,
                      ln, DEMO_MAX_TASKS);
            fclose(f);
            return -1;
        }
        snprintf(t[*n].name, sizeof t[*n].name, "%s", name);
        snprintf(t[*n].desc, sizeof t[*n].desc, "%s", line + used);
        t[*n].ood = ood;
        t[*n].classes = k;
        (*n)++;
    }
    fclose(f);
    if (*n == 0) {
        set_error("%s: no tasks", path);
        return -1;
    }
    return 0;
}

/* A path from demo.cfg: relative ones are relative to the demo directory. */
static int cfg_path(const config *c, const char *key, const char *dir, char *out, size_t cap)
{
    const char *v = config_get(c, key);
    if (!v) {
        set_error("%s: missing key '%s'", c->path, key);
        return -1;
    }
    if (v[0] == '/') return (size_t)snprintf(out, cap, "%s", v) < cap ? 0 : (set_error("%s: path too long", c->path), -1);
    return join_path(out, cap, dir, v);
}

static int cfg_list(const config *c, const char *key, double lo, double hi, double *out, int *n)
{
    const char *v = config_get(c, key);
    char what[PATH_CAP];
    snprintf(what, sizeof what, "%s: %s", c->path, key);
    if (!v) {
        set_error("%s: missing key '%s'", c->path, key);
        return -1;
    }
    return parse_list(what, v, 0, lo, hi, out, LASSO_GRID_MAX, n);
}

/* Steps list of key into g. */
static int cfg_steps(const config *c, const char *key, lasso_fit_config *g)
{
    double v[LASSO_GRID_MAX];
    if (cfg_list(c, key, 1, 1e9, v, &g->nsteps)) return -1;
    for (int i = 0; i < g->nsteps; i++) {
        if ((double)(long)v[i] != v[i]) {
            set_error("%s: %s: expected whole numbers, got %g", c->path, key, v[i]);
            return -1;
        }
        g->steps[i] = (long)v[i];
    }
    return 0;
}

/* Read demo.cfg into the run options shared by every task: methods
 * linear (grid linear_lr x linear_steps) and head2toe (lr x steps x coef
 * x fraction), both cross-validated. */
static int read_demo_cfg(const char *dir, run_opts *ro, char *model_dir, char *tasks, size_t cap)
{
    static const char *const keys[] = {"model", "tasks", "target_size", "lr", "steps", "coef", "fraction",
                                       "linear_lr", "linear_steps", "batch", "image_batch", "seed", NULL};
    char path[PATH_CAP];
    config c;
    if (join_path(path, sizeof path, dir, "demo.cfg") || config_read(path, &c) || config_check_keys(&c, keys) ||
        cfg_path(&c, "model", dir, model_dir, cap) || cfg_path(&c, "tasks", dir, tasks, cap))
        return -1;
    double v[LASSO_GRID_MAX];
    int n;
    if (cfg_list(&c, "target_size", 1, 1e9, v, &n)) return -1;
    if (n > FEAT_MAX_TARGETS) n = FEAT_MAX_TARGETS;
    ro->ntarget = n;
    for (int i = 0; i < n; i++) {
        if ((double)(long)v[i] != v[i]) {
            set_error("%s: target_size: expected whole numbers, got %g", c.path, v[i]);
            return -1;
        }
        ro->target[i] = (long)v[i];
    }
    lasso_fit_config *gl = &ro->grid[0], *gh = &ro->grid[1];
    if (cfg_list(&c, "linear_lr", 1e-12, 1e3, gl->lr, &gl->nlr) || cfg_steps(&c, "linear_steps", gl) ||
        cfg_list(&c, "lr", 1e-12, 1e3, gh->lr, &gh->nlr) || cfg_steps(&c, "steps", gh) ||
        cfg_list(&c, "coef", 0, 1e3, gh->coef, &gh->ncoef) || cfg_list(&c, "fraction", 1e-9, 1, gh->frac, &gh->nfrac))
        return -1;
    int batch = 128, ibatch = 64, seed = 0;
    if (config_int(&c, "batch", 0, 1, 1 << 20, &batch) || config_int(&c, "image_batch", 0, 1, 4096, &ibatch) ||
        config_int(&c, "seed", 0, 0, 2147483647, &seed))
        return -1;
    for (int m = 0; m < 2; m++) {
        ro->grid[m].batch = batch;
        ro->grid[m].seed = (uint64_t)seed;
        ro->grid[m].force_cv = 1;        /* a validation accuracy for every method, even a single point */
        ro->grid[m].quiet = 1;
    }
    ro->image_batch = ibatch;
    ro->nmethods = 2;
    ro->methods[0] = METHOD_LINEAR;
    ro->methods[1] = METHOD_HEAD2TOE;
    return 0;
}

static int in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (l == len && strncmp(p, name, len) == 0) return 1;
        p += l;
        if (*p) p++;
    }
    return 0;
}

/* The three locations holding most of the selected features, as "a, b, c". */
static void top_locations(const run_method_result *mr, char *out, size_t cap, int *idx, int nidx)
{
    int used[MODEL_MAX_LOCATIONS] = {0};
    size_t o = 0;
    out[0] = 0;
    for (int r = 0; r < nidx; r++) {
        int b = -1;
        for (int i = 0; i < mr->nloc; i++)
            if (!used[i] && mr->loc_kept[i] > 0 && (b < 0 || mr->loc_kept[i] > mr->loc_kept[b])) b = i;
        idx[r] = b;
        if (b < 0) continue;
        used[b] = 1;
        o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s", r ? ", " : "", mr->loc_name[b]);
    }
}

int demo_run(const demo_opts *o)
{
    double t_start = now_seconds();
    static run_opts base;
    static char model_dir[PATH_CAP], tasks_path[PATH_CAP], tdir[PATH_CAP];
    static demo_task tasks[DEMO_MAX_TASKS];
    static run_result res[DEMO_MAX_TASKS];
    int ntask, done_tasks = 0, ran[DEMO_MAX_TASKS] = {0};
    memset(&base, 0, sizeof base);
    if (read_demo_cfg(o->dir, &base, model_dir, tasks_path, PATH_CAP) || read_tasks(tasks_path, tasks, &ntask))
        return -1;
    for (const char *p = o->only; p && *p;) {            /* every name in --tasks must exist */
        size_t len = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < ntask; i++) found |= strlen(tasks[i].name) == len && strncmp(tasks[i].name, p, len) == 0;
        if (!found) {
            set_error("--tasks: no task '%.*s' in %s", (int)len, p, tasks_path);
            return -1;
        }
        p += len;
        if (*p) p++;
    }
    if (make_dir(o->out)) return -1;
    snprintf(tdir, sizeof tdir, "%s", tasks_path);
    char *slash = strrchr(tdir, '/');
    if (slash) *slash = 0;
    else snprintf(tdir, sizeof tdir, ".");
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if (!o->quiet)
        fprintf(stderr, "demo: backbone %s, %d tasks from %s, %d thread%s\n", model_dir, ntask, tasks_path, threads,
                threads == 1 ? "" : "s");

    for (int i = 0; i < ntask; i++) {
        if (o->only && !in_list(o->only, tasks[i].name)) continue;
        static char paths[5][PATH_CAP], sub[PATH_CAP];
        const char *files[4] = {"train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy"};
        if (join_path(sub, sizeof sub, tdir, tasks[i].name)) return -1;
        for (int k = 0; k < 4; k++)
            if (join_path(paths[k], PATH_CAP, sub, files[k])) return -1;
        if (join_path(paths[4], PATH_CAP, o->out, tasks[i].name)) return -1;
        run_opts ro = base;
        ro.task = tasks[i].name;
        ro.model_dir = model_dir;
        ro.train_images = paths[0];
        ro.train_labels = paths[1];
        ro.test_images = paths[2];
        ro.test_labels = paths[3];
        ro.out = paths[4];
        ro.figures = 1;
        double t0 = now_seconds();
        if (!o->quiet) fprintf(stderr, "demo: %s (%s) ...\n", tasks[i].name, tasks[i].desc);
        if (run_task(&ro, &res[i])) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", last_error());
            set_error("task %s: %s", tasks[i].name, msg);
            return -1;
        }
        ran[i] = 1;
        done_tasks++;
        if (!o->quiet)
            fprintf(stderr, "demo: %s: linear %.1f%%, head2toe %.1f%% (%.1f s)\n", tasks[i].name,
                    100 * res[i].m[0].test_acc, 100 * res[i].m[1].test_acc, now_seconds() - t0);
    }
    if (done_tasks == 0) {
        set_error("--tasks '%s': no task to run", o->only ? o->only : "");
        return -1;
    }
    double secs = now_seconds() - t_start;

    /* ---- the table */
    printf("%-14s %-4s %7s %9s %7s %6s %6s  %s\n", "task", "dist", "Linear", "Head2Toe", "gain", "T", "F",
           "most-used locations (Head2Toe)");
    for (int i = 0; i < ntask; i++) {
        if (!ran[i]) continue;
        const run_method_result *l = &res[i].m[0], *h = &res[i].m[1];
        char top[256];
        int idx[3];
        top_locations(h, top, sizeof top, idx, 3);
        printf("%-14s %-4s %6.1f%% %8.1f%% %+7.1f %6ld %6g  %s\n", tasks[i].name, tasks[i].ood ? "out" : "in",
               100 * l->test_acc, 100 * h->test_acc, 100 * (h->test_acc - l->test_acc), h->target, h->chosen.frac,
               top);
    }
    printf("demo: %d tasks in %.1f s on %d thread%s; per-task runs and figures in %s/\n", done_tasks, secs, threads,
           threads == 1 ? "" : "s", o->out);

    /* ---- summary figures */
    const char *names[DEMO_MAX_TASKS], *locs[MODEL_MAX_LOCATIONS];
    double acc[2 * DEMO_MAX_TASKS], *heat = NULL;
    int nt = 0, nloc = 0, ti[DEMO_MAX_TASKS];
    for (int i = 0; i < ntask; i++)
        if (ran[i]) ti[nt++] = i;
    for (int j = 0; j < nt; j++) {
        names[j] = tasks[ti[j]].name;
        acc[j] = 100 * res[ti[j]].m[0].test_acc;
        acc[nt + j] = 100 * res[ti[j]].m[1].test_acc;
    }
    char path[PATH_CAP];
    const char *series[2] = {"Linear", "Head2Toe"};
    svg_chart ca = {"Linear vs Head2Toe: test accuracy per task", NULL, "test accuracy", 0, 100, "%.0f%%"};
    if (join_path(path, sizeof path, o->out, "accuracy.svg") || svg_bars(path, &ca, nt, names, 2, series, acc, NULL))
        return -1;
    /* heat map over the locations of the first task's layout (all tasks share the backbone) */
    const run_method_result *h0 = &res[ti[0]].m[1];
    nloc = h0->nloc;
    heat = calloc((size_t)nt * (size_t)(nloc ? nloc : 1), sizeof *heat);
    if (!heat) {
        set_error("out of memory");
        return -1;
    }
    for (int k = 0; k < nloc; k++) locs[k] = h0->loc_name[k];
    for (int j = 0; j < nt; j++) {
        const run_method_result *h = &res[ti[j]].m[1];
        for (int k = 0; k < nloc; k++) {
            heat[(size_t)j * nloc + k] = NAN;
            for (int q = 0; q < h->nloc; q++)
                if (strcmp(h->loc_name[q], locs[k]) == 0)
                    heat[(size_t)j * nloc + k] = h->nsel ? (double)h->loc_kept[q] / (double)h->nsel : 0;
        }
    }
    svg_chart ch = {"Head2Toe: share of each task's selected features per location", "location (depth order)",
                    NULL, NAN, NAN, NULL};
    int rc = join_path(path, sizeof path, o->out, "locations.svg") ||
             svg_heatmap(path, &ch, nt, names, nloc, locs, heat);
    free(heat);
    if (rc) return -1;

    /* ---- the JSON report */
    if (o->report) {
        char tmp[PATH_CAP + 32];
        FILE *f = tmp_open(o->report, tmp, sizeof tmp);
        if (!f) return -1;
        fprintf(f, "{\"backbone\": ");
        json_str(f, model_dir);
        fprintf(f, ", \"threads\": %d, \"seconds\": %.2f,\n \"tasks\": [", threads, secs);
        for (int j = 0; j < nt; j++) {
            const demo_task *t = &tasks[ti[j]];
            const run_result *r = &res[ti[j]];
            const run_method_result *l = &r->m[0], *h = &r->m[1];
            char top[256];
            int idx[3];
            top_locations(h, top, sizeof top, idx, 3);
            fprintf(f, "%s\n  {\"name\": ", j ? "," : "");
            json_str(f, t->name);
            fprintf(f, ", \"ood\": %s, \"classes\": %d, \"description\": ", t->ood ? "true" : "false", r->k);
            json_str(f, t->desc);
            fprintf(f, ",\n   \"linear\": ");
            json_num(f, l->test_acc);
            fprintf(f, ", \"head2toe\": ");
            json_num(f, h->test_acc);
            fprintf(f, ", \"gain\": ");
            json_num(f, h->test_acc - l->test_acc);
            fprintf(f, ",\n   \"linear_validation\": ");
            json_num(f, l->chosen.mean);
            fprintf(f, ", \"head2toe_validation\": ");
            json_num(f, h->chosen.mean);
            fprintf(f, ",\n   \"linear_lr\": ");
            json_num(f, l->chosen.lr);
            fprintf(f, ", \"linear_steps\": %ld, \"target_size\": %ld, \"features_total\": %zu, \"features\": %zu, "
                       "\"fraction\": ", l->chosen.steps, h->target, h->d, h->nsel);
            json_num(f, h->chosen.frac);
            fprintf(f, ", \"lr\": ");
            json_num(f, h->chosen.lr);
            fprintf(f, ", \"steps\": %ld, \"coef\": ", h->chosen.steps);
            json_num(f, h->chosen.coef);
            fprintf(f, ",\n   \"top_locations\": [");
            for (int q = 0; q < 3; q++)
                if (idx[q] >= 0) {
                    fprintf(f, "%s", q ? ", " : "");
                    json_str(f, h->loc_name[idx[q]]);
                }
            fprintf(f, "], \"seconds\": %.2f}", r->t_total);
        }
        fprintf(f, "\n ]}\n");
        if (tmp_close(f, tmp, o->report)) return -1;
    }
    return 0;
}
