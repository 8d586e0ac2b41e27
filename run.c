/* run.c: `h2t run`, one task from files to files. See run.h. Sections:
 *   inputs      images, labels, model: all checked before anything is written
 *   outputs     each method's head directory, test.json, figures; the
 *               training features with --keep-features
 *   report      out/report.json
 * The numbers come from pipeline.c; files go through util.c / npy.c /
 * headio.c writers (temporary name, then rename). */
#include "run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "headio.h"
#include "npy.h"
#include "svg.h"
#include "util.h"

#define PATH_CAP 1024

/* out = a "/" b; -1 if it does not fit. */
static int join_path(char *out, size_t cap, const char *a, const char *b)
{
    if ((size_t)snprintf(out, cap, "%s/%s", a, b) >= cap) {
        set_error("path too long: %s/%s", a, b);
        return -1;
    }
    return 0;
}

/* ==========================================================================
 * Inputs */

typedef struct {
    image_source train, test;
    int *ytr, *yte;
    int k;
} run_inputs;

static void inputs_free(run_inputs *in)
{
    images_close(&in->train);
    images_close(&in->test);
    free_array(in->ytr);
    free_array(in->yte);
}

static int inputs_open(const run_opts *o, run_inputs *in, model *m)
{
    int ktr, kte;
    memset(in, 0, sizeof *in);
    if (images_open(o->train_images, &in->train) || images_open(o->test_images, &in->test) ||
        labels_read(o->train_labels, in->train.n, &in->ytr, &ktr) ||
        labels_read(o->test_labels, in->test.n, &in->yte, &kte) || model_load_with(o->model_dir, &o->model_opt, m))
        return -1;
    in->k = ktr > kte ? ktr : kte;
    return 0;
}

/* ==========================================================================
 * Outputs of one method */

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

/* locations.svg: the share of the selected features per location. */
static int figure_locations(const char *dir, const run_opts *o, const pipeline_result *r, const method_result *mr)
{
    const feat_layout *l = &r->lay[mr->t];
    const grid_point *p = &mr->cv[mr->t].points[mr->cv[mr->t].best];
    const char *labels[MODEL_MAX_LOCATIONS];
    double share[MODEL_MAX_LOCATIONS];
    int group[MODEL_MAX_LOCATIONS];
    size_t kept[MODEL_MAX_LOCATIONS];
    char path[PATH_CAP], title[256];
    layout_count(l, mr->head.selected, mr->head.nsel, kept);
    for (int i = 0; i < l->n; i++) {
        labels[i] = l->e[i].name;
        share[i] = 100.0 * (double)kept[i] / (double)mr->head.nsel;
        group[i] = location_group(l->e[i].name);
    }
    snprintf(title, sizeof title, "%s: where the %zu selected features come from (T %ld, F %g)", o->task,
             mr->head.nsel, o->target[mr->t], p->frac);
    const svg_chart c = {title, "location (depth order; a colour per stage: stem, blocks, head)",
                         "share of selected features", 0, NAN, "%g%%"};
    return join_path(path, sizeof path, dir, "locations.svg") || svg_bars(path, &c, l->n, labels, 1, NULL, share, group);
}

/* validation.svg: validation accuracy against F, a line per T at its best
 * (lr, steps, coef). */
static int figure_validation(const char *dir, const run_opts *o, const method_result *mr, const fit_config *g)
{
    svg_series s[FEAT_MAX_TARGETS];
    char names[FEAT_MAX_TARGETS][96], path[PATH_CAP], title[256];
    double x[FEAT_MAX_TARGETS][GRID_MAX], y[FEAT_MAX_TARGETS][GRID_MAX], e[FEAT_MAX_TARGETS][GRID_MAX];
    int n = 0;
    for (int t = 0; t < mr->ncv; t++) {
        val_curve c;
        if (!pipeline_curve(mr, t, g, &c)) continue;
        snprintf(names[n], sizeof names[n], "T %ld (lr %g, steps %ld, coef %g)", o->target[t], c.points[0].lr,
                 c.points[0].steps, c.points[0].coef);
        for (int f = 0; f < g->nfrac; f++)
            x[n][f] = c.points[f].frac, y[n][f] = 100 * c.points[f].mean, e[n][f] = 100 * c.points[f].std;
        s[n] = (svg_series){names[n], g->nfrac, x[n], y[n], e[n]};
        n++;
    }
    if (n == 0) return 0;
    const grid_point *p = &mr->cv[mr->t].points[mr->cv[mr->t].best];
    snprintf(title, sizeof title, "%s: 5-fold validation accuracy against F", o->task);
    const svg_chart c = {title, "fraction of features kept (F)", "validation accuracy (%)", NAN, NAN, NULL};
    return join_path(path, sizeof path, dir, "validation.svg") || svg_lines(path, &c, 1, n, s, p->frac, 100 * p->mean);
}

static int method_outputs(const run_opts *o, const pipeline_result *r, int i)
{
    const method_result *mr = &r->m[i];
    const fit_config *g = &o->grid[i];
    char dir[PATH_CAP], path[PATH_CAP];
    if (join_path(dir, sizeof dir, o->out, method_names[mr->method]) ||
        fit_write(dir, &mr->cv[mr->t], &mr->head, g, &r->lay[mr->t], r->n_train, mr->t_fit) ||
        join_path(path, sizeof path, dir, "test.json") || eval_write(path, mr->correct, mr->count, r->k))
        return -1;
    if (o->figures && mr->method == METHOD_HEAD2TOE &&
        (figure_locations(dir, o, r, mr) || figure_validation(dir, o, mr, g)))
        return -1;
    return 0;
}

/* --keep-features: the training features of every T, and their layouts. */
static int keep_features(const run_opts *o, const pipeline_result *r)
{
    char base[PATH_CAP], npy[PATH_CAP], tsv[PATH_CAP];
    if (join_path(base, sizeof base, o->out, "train_features.npy")) return -1;
    for (int t = 0; t < r->ntarget; t++) {
        const size_t shape[2] = {r->n_train, r->lay[t].d};
        if (feat_out_paths(base, o->target[t], r->ntarget > 1, npy, tsv, sizeof npy) ||
            npy_write(npy, NPY_F32, 2, shape, r->xtr[t]) || layout_write(tsv, &r->lay[t]))
            return -1;
    }
    return 0;
}

/* ==========================================================================
 * report.json */

static void json_pass(textbuf *t, const model *m, const backbone_pass *p, const char *what)
{
    tb_printf(t, "{\"for\": \"%s\", \"images\": %zu, \"locations_computed\": %d, \"of\": %d, \"stopped_after\": ",
              what, p->images, p->last + 1, m->nloc);
    tb_json_str(t, p->last >= 0 ? m->loc[p->last].name : "");
    tb_printf(t, ", \"seconds\": %.3f}", p->seconds);
}

static void json_curves(textbuf *t, const run_opts *o, const method_result *mr, const fit_config *g)
{
    int first = 1;
    for (int c = 0; c < mr->ncv; c++) {
        val_curve v;
        if (!pipeline_curve(mr, c, g, &v)) continue;
        tb_printf(t, "%s\n       {\"target_size\": %ld, \"lr\": ", first ? ",\n     \"validation_curves\": [" : ",",
                  o->target[c]);
        tb_json_num(t, v.points[0].lr);
        tb_printf(t, ", \"steps\": %ld, \"coef\": ", v.points[0].steps);
        tb_json_num(t, v.points[0].coef);
        tb_printf(t, ", \"fraction\": [");
        for (int f = 0; f < g->nfrac; f++) tb_printf(t, "%s%g", f ? ", " : "", v.points[f].frac);
        tb_printf(t, "], \"mean\": [");
        for (int f = 0; f < g->nfrac; f++) tb_printf(t, "%s", f ? ", " : ""), tb_json_num(t, v.points[f].mean);
        tb_printf(t, "], \"std\": [");
        for (int f = 0; f < g->nfrac; f++) tb_printf(t, "%s", f ? ", " : ""), tb_json_num(t, v.points[f].std);
        tb_printf(t, "]}");
        first = 0;
    }
    if (!first) tb_printf(t, "]");
}

static void json_method(textbuf *t, const run_opts *o, const pipeline_result *r, int i)
{
    const method_result *mr = &r->m[i];
    const cv_result *cv = &mr->cv[mr->t];
    const grid_point *g = &cv->points[cv->best];
    const feat_layout *l = &r->lay[mr->t];
    size_t kept[MODEL_MAX_LOCATIONS];
    tb_printf(t, "    {\"method\": \"%s\", \"target_size\": %ld, \"features_total\": %zu, \"features\": %zu,\n",
              method_names[mr->method], o->target[mr->t], l->d, mr->head.nsel);
    tb_printf(t, "     \"lr\": ");
    tb_json_num(t, g->lr);
    tb_printf(t, ", \"steps\": %ld, \"coef\": ", g->steps);
    tb_json_num(t, mr->method == METHOD_LINEAR ? NAN : g->coef);
    tb_printf(t, ", \"fraction\": ");
    tb_json_num(t, mr->method == METHOD_HEAD2TOE ? g->frac : NAN);
    tb_printf(t, ",\n     \"cross_validated\": %s, \"validation_accuracy\": ", cv->did_cv ? "true" : "false");
    tb_json_num(t, g->mean);
    tb_printf(t, ", \"validation_std\": ");
    tb_json_num(t, g->std);
    tb_printf(t, ", \"train_accuracy\": ");
    tb_json_num(t, mr->head.train_acc);
    tb_printf(t, ", \"test_accuracy\": ");
    tb_json_num(t, mr->test_acc);
    tb_printf(t, ", \"test_correct\": %zu, \"test_examples\": %zu,\n", mr->test_correct, mr->test_n);
    const fit_config *fc = &o->grid[i];
    tb_printf(t, "     \"train_examples_used\": %zu", mr->head.examples);
    if (mr->method == METHOD_HEAD2TOE) {
        tb_printf(t, ", \"selection\": {\"score\": \"%s\", \"average_over\": %d, \"keep_offset\": %zu, "
                     "\"score_interpolation\": ", score_names[fc->score], fc->average_over > 1 ? fc->average_over : 1,
                  fc->keep_offset);
        tb_json_num(t, fc->interpolation);
        tb_printf(t, "}");
    }
    tb_printf(t, ",\n");
    tb_printf(t, "     \"seconds\": {\"fit\": %.3f, \"cv\": [", mr->t_fit);
    for (int c = 0; c < mr->ncv; c++) tb_printf(t, "%s%.3f", c ? ", " : "", mr->t_cv[c]);
    tb_printf(t, "], \"final\": %.3f},\n     \"locations\": [", mr->t_final);
    layout_count(l, mr->head.selected, mr->head.nsel, kept);
    for (int e = 0, first = 1; e < l->n; e++) {
        if (!kept[e] && mr->method != METHOD_HEAD2TOE) continue;
        tb_printf(t, "%s\n       {\"name\": ", first ? "" : ",");
        tb_json_str(t, l->e[e].name);
        tb_printf(t, ", \"dim\": %zu, \"kept\": %zu}", l->e[e].dim, kept[e]);
        first = 0;
    }
    tb_printf(t, "]");
    json_curves(t, o, mr, &o->grid[i]);
    tb_printf(t, "}");
}

static int write_report(const char *path, const run_opts *o, const model *m, const pipeline_result *r)
{
    textbuf t = {0};
    tb_printf(&t, "{\"task\": ");
    tb_json_str(&t, o->task);
    tb_printf(&t, ",\n \"backbone\": ");
    tb_json_str(&t, o->model_dir);
    tb_printf(&t, ", \"taps\": ");
    tb_json_str(&t, o->taps ? o->taps : "default");
    tb_printf(&t, ", \"tap_fraction\": \"1/%ld\", \"tap_point\": \"%s\", \"include_input\": %s, \"cls\": \"%s\"",
              o->tap_every > 1 ? o->tap_every : 1, tap_point_names[o->model_opt.point],
              o->model_opt.include_input ? "true" : "false", cls_mode_names[o->cls]);
    tb_printf(&t, ", \"winograd\": %d", REFERENCE_BUILD ? 0 : o->model_opt.winograd);
    tb_printf(&t, ",\n \"train_images\": ");
    tb_json_str(&t, o->train_images);
    tb_printf(&t, ", \"test_images\": ");
    tb_json_str(&t, o->test_images);
    tb_printf(&t, ",\n \"train_examples\": %zu, \"test_examples\": %zu, \"classes\": %d, \"seed\": %llu,\n",
              r->n_train, r->n_test, r->k, (unsigned long long)o->grid[0].seed);
    tb_printf(&t, " \"target_sizes\": [");
    for (int i = 0; i < r->ntarget; i++) tb_printf(&t, "%s{\"T\": %ld, \"D\": %zu}", i ? ", " : "", o->target[i], r->lay[i].d);
    tb_printf(&t, "],\n \"backbone_passes\": [\n    ");
    json_pass(&t, m, &r->train_pass, "training features");
    tb_printf(&t, ",\n    ");
    json_pass(&t, m, &r->test_pass, "test features of the selected features");
    tb_printf(&t, "],\n \"methods\": [\n");
    for (int i = 0; i < r->nmethods; i++) {
        json_method(&t, o, r, i);
        tb_printf(&t, "%s\n", i + 1 < r->nmethods ? "," : "");
    }
    tb_printf(&t, " ],\n \"seconds\": {\"train_features\": %.3f, \"test_features\": %.3f, \"total\": %.3f}}\n",
              r->train_pass.seconds, r->test_pass.seconds, r->t_total);
    return tb_write(&t, path);
}

/* ==========================================================================
 * The grid across machines */

/* --collect: every shard's part in the folders o->collect names. */
static int collect_parts(void *ctx, const char *grids, cv_unit_result **rows, size_t *n)
{
    const run_opts *o = ctx;
    return cv_parts_read(o->collect, grids, rows, n);
}

/* --grid-shard: this shard's unit results as out/cv.part.K-of-N.tsv. */
static int write_part(const run_opts *o, const pipeline_in *in, const pipeline_result *r)
{
    textbuf grids = {0}, rows = {0};
    pipeline_grids(in, r, &grids);
    for (int i = 0; i < r->nmethods; i++)
        for (int t = 0; t < r->m[i].ncv; t++) cv_part_rows(&rows, r->m[i].method, o->target[t], &r->m[i].cv[t]);
    return cv_part_write(o->out, &o->shard, &grids, &rows);
}

/* ==========================================================================
 * The task */

int run_task(const run_opts *o, model *m, pipeline_result *r)
{
    run_inputs in;
    char path[PATH_CAP];
    struct stat st;
    const int existed = stat(o->out, &st) == 0;
    int ret = -1;
    memset(r, 0, sizeof *r);
    memset(m, 0, sizeof *m);
    if (inputs_open(o, &in, m)) goto done;
    pipeline_in p = {.m = m, .train = &in.train, .test = &in.test, .ytr = in.ytr, .yte = in.yte, .k = in.k,
                     .ntarget = o->ntarget, .taps = o->taps, .tap_every = o->tap_every, .cls = o->cls,
                     .nmethods = o->nmethods, .image_batch = o->image_batch, .quiet = o->quiet, .shard = o->shard,
                     .collect = o->collect ? collect_parts : NULL, .collect_ctx = (void *)o};
    memcpy(p.target, o->target, sizeof p.target);
    memcpy(p.grid, o->grid, sizeof p.grid);
    if (pipeline_run(&p, r) || make_dir(o->out)) goto done; /* nothing is written before the work is done */
    if (o->shard.n > 1) {
        ret = write_part(o, &p, r);
        goto done;
    }
    for (int i = 0; i < r->nmethods; i++)
        if (method_outputs(o, r, i)) goto done;
    if ((o->keep_features && keep_features(o, r)) || join_path(path, sizeof path, o->out, "report.json") ||
        write_report(path, o, m, r))
        goto done;
    ret = 0;
done:
    if (ret && !existed) rmdir(o->out); /* a refusal leaves no empty folder behind (only empty: rmdir) */
    inputs_free(&in);
    return ret;
}
