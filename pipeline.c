/* pipeline.c: Head2Toe end to end, in memory (docs/ALGORITHM.md §1). See
 * pipeline.h. pipeline_run is the paper's pipeline in four calls; the
 * functions above it are its steps. */
#include "pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headio.h"
#include "util.h"

/* ==========================================================================
 * 1. Training features: every T from one backbone pass */

static int train_features(const pipeline_in *in, pipeline_result *r)
{
    extract_target t[FEAT_MAX_TARGETS];
    int use[MODEL_MAX_LOCATIONS];
    if (taps_parse(in->m, in->taps, use)) return -1;
    if (in->tap_every > 1) taps_thin(in->m, in->tap_every, use);
    if (!(r->lay = calloc((size_t)in->ntarget, sizeof *r->lay))) {
        set_error("out of memory");
        return -1;
    }
    for (int i = 0; i < in->ntarget; i++) {
        size_t size;
        if (layout_make(in->m, use, in->target[i], in->cls, &r->lay[i]) || size_mul(r->n_train, r->lay[i].d, &size))
            return -1;
        for (int q = 0; q < in->nmethods; q++) /* before the backbone runs */
            if (fit_check_features(&in->grid[q], r->lay[i].d)) return -1;
        if (!(r->xtr[i] = alloc_array(size, sizeof(float)))) return -1;
        t[i] = (extract_target){&r->lay[i], NULL, 0, rows_to_memory, r->xtr[i]};
    }
    r->ntarget = in->ntarget;
    extract_stats st;
    if (extract_pass(in->m, in->train, 0, r->n_train, t, in->ntarget, in->image_batch,
                     in->quiet ? NULL : "run: training features", &st))
        return -1;
    r->train_pass = (backbone_pass){st.images, st.last, st.seconds};
    return 0;
}

/* ==========================================================================
 * 2. Each method: cross-validation over its grid and over T, the final head */

void pipeline_grids(const pipeline_in *in, const pipeline_result *r, textbuf *grids)
{
    char id[1024];
    for (int i = 0; i < in->nmethods; i++)
        for (int t = 0; t < (in->grid[i].method == METHOD_LINEAR ? 1 : r->ntarget); t++) {
            cv_grid_id(&in->grid[i], r->n_train, r->lay[t].d, in->k, id, sizeof id);
            cv_part_grid(grids, in->grid[i].method, in->target[t], id);
        }
}

/* The cross-validation of method i at T index t: run (all of it, or this
 * shard's units, numbered on from *unit), or merged from the shards. */
static int cross_validate(const pipeline_in *in, pipeline_result *r, int i, int t, const fit_config *cfg,
                          const cv_unit_result *rows, size_t nrows, long *unit)
{
    const lasso_data X = {r->xtr[t], r->n_train, r->lay[t].d, r->lay[t].d, in->ytr, in->k};
    cv_result *cv = &r->m[i].cv[t];
    if (!in->quiet) fprintf(stderr, "run: %s at T %ld (D %zu)\n", method_names[cfg->method], in->target[t], X.d);
    if (in->collect) return cv_prepare(&X, &r->lay[t], cfg, cv) || cv_merge(rows, nrows, cfg->method, in->target[t], cv);
    if (in->shard.n <= 1) return cv_run(&X, &r->lay[t], cfg, cv);
    const cv_shard s = {in->shard.k, in->shard.n, *unit};
    *unit += cv_units(cfg);
    return cv_run_shard(&X, &r->lay[t], cfg, &s, cv);
}

static int fit_one_method(const pipeline_in *in, pipeline_result *r, int i, const cv_unit_result *rows,
                          size_t nrows, long *unit)
{
    method_result *mr = &r->m[i];
    fit_config cfg = in->grid[i];
    const double t0 = now_seconds();
    mr->method = cfg.method;
    mr->ncv = cfg.method == METHOD_LINEAR ? 1 : r->ntarget; /* pre_logits is the same at every T */
    if (mr->ncv > 1) cfg.force_cv = 1;                       /* the T compete by validation accuracy */
    mr->t = 0;
    for (int t = 0; t < mr->ncv; t++) {
        const double tc = now_seconds();
        if (cross_validate(in, r, i, t, &cfg, rows, nrows, unit)) return -1;
        mr->t_cv[t] = now_seconds() - tc;
        const cv_result *a = &mr->cv[t], *b = &mr->cv[mr->t];
        if (a->points[a->best].mean > b->points[b->best].mean) mr->t = t; /* ties: the earlier T */
    }
    if (in->shard.n > 1) return 0; /* a shard stops at its part of the CV */
    const int t = mr->t;
    const lasso_data X = {r->xtr[t], r->n_train, r->lay[t].d, r->lay[t].d, in->ytr, in->k};
    const double tf = now_seconds();
    if (fit_final(&X, &r->lay[t], &cfg, &mr->cv[t].points[mr->cv[t].best], &mr->head)) return -1;
    mr->t_final = now_seconds() - tf;
    mr->t_fit = now_seconds() - t0;
    return 0;
}

/* 2. for every method: CV over its grid and T, the final head (or, for a
 * shard, only its units of the CV; with collect, the shards' results). */
static int fit_methods(const pipeline_in *in, pipeline_result *r)
{
    cv_unit_result *rows = NULL;
    size_t nrows = 0;
    long unit = 0;
    int rc = 0;
    if (in->collect) {
        textbuf grids = {0};
        pipeline_grids(in, r, &grids);
        rc = grids.failed ? (set_error("out of memory"), -1) : in->collect(in->collect_ctx, grids.s, &rows, &nrows);
        tb_free(&grids);
    }
    for (int i = 0; rc == 0 && i < in->nmethods; i++) rc = fit_one_method(in, r, i, rows, nrows, &unit);
    free(rows);
    return rc;
}

/* ==========================================================================
 * 3 and 4. The test features of every method's selection, one pass; each
 * batch's rows are classified as they come (the rows are never stored) */

static int classify_rows(void *ctx, const float *rows, size_t row0, size_t nrows, size_t cols);

typedef struct {
    const pipeline_in *in;
    method_result *mr;
    float *z;                                  /* [batch, k] logits */
    int *pred;                                 /* [batch] */
} classifier;

static int classify_rows(void *ctx, const float *rows, size_t row0, size_t nrows, size_t cols)
{
    classifier *c = ctx;
    head_predict(&c->mr->head, rows, nrows, cols, c->z, c->pred);
    tally(c->pred, c->in->yte + row0, nrows, c->mr->correct, c->mr->count);
    return 0;
}

static int test_accuracy(const pipeline_in *in, pipeline_result *r)
{
    extract_target t[PIPE_MAX_METHODS];
    classifier c[PIPE_MAX_METHODS] = {{0}};
    const size_t B = (size_t)in->image_batch, K = (size_t)r->k;
    int ret = -1;
    for (int i = 0; i < r->nmethods; i++) {
        method_result *mr = &r->m[i];
        const feat_layout *lay = &r->lay[mr->t];
        const int all = mr->head.nsel == lay->d;     /* the all-* baselines: no selection to apply */
        c[i] = (classifier){in, mr, alloc_array(B * K, sizeof(float)), alloc_array(B, sizeof(int))};
        mr->correct = alloc_zeros(K, sizeof(size_t));
        mr->count = alloc_zeros(K, sizeof(size_t));
        if (!c[i].z || !c[i].pred || !mr->correct || !mr->count) goto done;
        t[i] = (extract_target){lay, all ? NULL : mr->head.selected, mr->head.nsel, classify_rows, &c[i]};
    }
    extract_stats st;
    if (extract_pass(in->m, in->test, 0, r->n_test, t, r->nmethods, in->image_batch,
                     in->quiet ? NULL : "run: test features", &st))
        goto done;
    r->test_pass = (backbone_pass){st.images, st.last, st.seconds};
    for (int i = 0; i < r->nmethods; i++) {
        method_result *mr = &r->m[i];
        for (size_t q = 0; q < K; q++) mr->test_correct += mr->correct[q], mr->test_n += mr->count[q];
        mr->test_acc = mr->test_n ? (double)mr->test_correct / (double)mr->test_n : NAN;
    }
    ret = 0;
done:
    for (int i = 0; i < r->nmethods; i++) {
        free_array(c[i].z);
        free_array(c[i].pred);
    }
    return ret;
}

/* ==========================================================================
 * The pipeline */

int pipeline_run(const pipeline_in *in, pipeline_result *r)
{
    const double t0 = now_seconds();
    memset(r, 0, sizeof *r);
    r->n_train = in->train->n, r->n_test = in->test->n, r->k = in->k, r->nmethods = in->nmethods;
    if (in->ntarget < 1 || in->ntarget > FEAT_MAX_TARGETS || in->nmethods < 1 || in->nmethods > PIPE_MAX_METHODS) {
        set_error("need 1 to %d target sizes and 1 to %d methods", FEAT_MAX_TARGETS, PIPE_MAX_METHODS);
        return -1;
    }
    /* 1. features of the training images at every T: one backbone pass (§4, §5) */
    if (train_features(in, r)) return -1;
    /* 2. each method: CV over its grid and T, scores, top-k, the final head (§6-§10) */
    if (fit_methods(in, r)) return -1;
    if (in->shard.n > 1) return 0; /* a shard of the grid: its part of the CV is all */
    /* 3, 4. the test images' features restricted to what the methods selected, one
     * backbone pass stopped after the deepest location they need; test accuracy */
    if (test_accuracy(in, r)) return -1;
    r->t_total = now_seconds() - t0;
    return 0;
}

void pipeline_result_free(pipeline_result *r)
{
    for (int t = 0; t < FEAT_MAX_TARGETS; t++) free_array(r->xtr[t]);
    free(r->lay);
    for (int i = 0; i < PIPE_MAX_METHODS; i++) {
        method_result *mr = &r->m[i];
        for (int t = 0; t < mr->ncv; t++) cv_result_free(&mr->cv[t]);
        fitted_head_free(&mr->head);
        free_array(mr->correct);
        free_array(mr->count);
    }
    memset(r, 0, sizeof *r);
}

int pipeline_curve(const method_result *mr, int t, const fit_config *cfg, val_curve *c)
{
    const cv_result *cv = &mr->cv[t];
    if (mr->method != METHOD_HEAD2TOE || t >= mr->ncv || !cv->did_cv) return 0;
    /* F is the innermost axis of the grid: the best point's row of F values */
    c->points = cv->points + cv->best / cfg->nfrac * cfg->nfrac;
    return 1;
}
