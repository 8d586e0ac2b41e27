/* run.h: `h2t run` -- one task from files to files. Opens and checks the
 * inputs (model directory, images, labels) before anything is written,
 * runs the in-memory pipeline (pipeline.h), then writes each method's head
 * (out/<method>/: selected.npy, W.npy, b.npy, layout.tsv, cv.tsv,
 * report.json), its test accuracy (test.json) and figures, and
 * out/report.json. With --grid-shard K/N it writes only its part of the
 * cross-validation (out/cv.part.K-of-N.tsv); with --collect it reads every
 * shard's part instead of cross-validating. Nothing numerical happens here. */
#ifndef H2T_RUN_H
#define H2T_RUN_H

#include "pipeline.h"

typedef struct {
    const char *task;                   /* name in the report */
    const char *model_dir;
    const char *train_images, *train_labels, *test_images, *test_labels;
    long target[FEAT_MAX_TARGETS];      /* target sizes T, tried in this order */
    int ntarget;
    int nmethods;
    fit_config grid[PIPE_MAX_METHODS];  /* one per method (method, grid, batch, seed, quiet) */
    const char *taps;                   /* NULL: the official default set */
    long tap_every;                     /* keep every k-th location (0, 1: all) */
    cls_mode cls;                       /* token maps' class tokens */
    model_options model_opt;            /* tap point, input location */
    int image_batch;                    /* images per backbone batch */
    int keep_features;                  /* also write the training features to out/ */
    int figures;                        /* write the SVG figures */
    const char *out;                    /* directory (created; may exist) */
    int quiet;
    cv_shard shard;                     /* --grid-shard K/N (n 0 or 1: the whole grid) */
    const char *collect;                /* --collect DIR[,DIR]: the shards' parts, or NULL */
} run_opts;

/* The whole task; r holds the results (pipeline_result_free it). The
 * model stays loaded in *m (model_free it) for the caller's report. -1
 * with an error naming the file or stage. */
int run_task(const run_opts *o, model *m, pipeline_result *r);

#endif
